// dense.ts — the float64 reference for matrix products, written the obvious way (a triple loop per
// batch item on row-major Float64Arrays), with numpy matmul semantics:
//   a [..., M, K] (or [..., K, M] with transA), b [..., K, N] (or [..., N, K] with transB) → [batch..., M, N];
//   batch dimensions broadcast; a 1-D a is a row [1, K] and a 1-D b a column [K, 1], the added axis is
//   dropped from the result (the trans flag of a 1-D operand is ignored).
// Every product also returns |A|·|B| (the same sums over absolute values), the scale of the rounding
// error bound |C − Ĉ| ≤ c·K·u·(|A|·|B|) that the GEMM tests use.
import { type Arr, broadcastShapes, numel, stridesOf } from './core';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

export interface MatmulResult {
  out: Arr;
  /** |A|·|B| per output element, row-major like out. */
  abs: Float64Array;
  /** The inner dimension K. */
  k: number;
}

/** Offsets (in elements of x's row-major data) of the matrix of x used by batch index `bi` of `batch`. */
function batchOffset(x: Arr, batch: number[], bi: number): number {
  const xb = x.shape.length - 2;
  const strides = stridesOf(x.shape);
  let off = 0, rem = bi;
  for (let d = batch.length - 1; d >= 0; d--) {
    const i = rem % batch[d];
    rem = Math.floor(rem / batch[d]);
    const xd = d - (batch.length - xb);
    if (xd >= 0 && x.shape[xd] !== 1) off += i * strides[xd];
  }
  return off;
}

/** numpy matmul with transpose flags, in float64, and |A|·|B|. Throws on mismatched shapes. */
export function matmulWithAbs(a: Arr, b: Arr, opts: MatmulOptions = {}): MatmulResult {
  if (a.shape.length === 0 || b.shape.length === 0) throw new Error('reference matmul: 0-d operand');
  const aVec = a.shape.length === 1, bVec = b.shape.length === 1;
  const A: Arr = aVec ? { data: a.data, shape: [1, a.shape[0]] } : a;
  const B: Arr = bVec ? { data: b.data, shape: [b.shape[0], 1] } : b;
  const ta = !aVec && !!opts.transA, tb = !bVec && !!opts.transB;
  const ra = A.shape.length, rb = B.shape.length;
  const m = ta ? A.shape[ra - 1] : A.shape[ra - 2];
  const ka = ta ? A.shape[ra - 2] : A.shape[ra - 1];
  const kb = tb ? B.shape[rb - 1] : B.shape[rb - 2];
  const n = tb ? B.shape[rb - 2] : B.shape[rb - 1];
  if (ka !== kb) throw new Error(`reference matmul: inner dimensions differ (${ka} vs ${kb})`);
  const batch = broadcastShapes(A.shape.slice(0, ra - 2), B.shape.slice(0, rb - 2));
  if (!batch) throw new Error('reference matmul: batch dimensions do not broadcast');
  const count = numel(batch);
  // element (i, k) of op(A) inside one matrix: row-major [M, K], or [K, M] read transposed
  const colsA = A.shape[ra - 1], colsB = B.shape[rb - 1];
  const out = new Float64Array(count * m * n), abs = new Float64Array(count * m * n);
  for (let bi = 0; bi < count; bi++) {
    const oa = batchOffset(A, batch, bi), ob = batchOffset(B, batch, bi);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0, sa = 0;
        for (let k = 0; k < ka; k++) {
          const x = A.data[oa + (ta ? k * colsA + i : i * colsA + k)];
          const y = B.data[ob + (tb ? j * colsB + k : k * colsB + j)];
          s += x * y;
          sa += Math.abs(x * y);
        }
        out[(bi * m + i) * n + j] = s;
        abs[(bi * m + i) * n + j] = sa;
      }
    }
  }
  const shape = [...batch, ...(aVec ? [] : [m]), ...(bVec ? [] : [n])];
  return { out: { data: out, shape }, abs, k: ka };
}

/** numpy matmul with transpose flags, in float64. */
export function matmul(a: Arr, b: Arr, opts: MatmulOptions = {}): Arr {
  return matmulWithAbs(a, b, opts).out;
}

/**
 * The BLAS update C ← alpha·op(A)·op(B) + beta·C (+ bias[j]) for 2-D operands, as a new array.
 * beta = 0 ignores C (it may hold NaN); alpha = 0 ignores A and B. abs is the matching error scale
 * |alpha|·|A|·|B| + |beta·C| + |bias|.
 */
export function gemm(c: Arr, a: Arr, b: Arr, alpha: number, beta: number, opts: MatmulOptions & { bias?: Float64Array } = {}):
  { out: Arr; abs: Float64Array } {
  const [m, n] = c.shape;
  const p = alpha === 0 ? null : matmulWithAbs(a, b, opts);
  const out = new Float64Array(m * n), abs = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const e = i * n + j;
      let v = p ? alpha * p.out.data[e] : 0;
      let s = p ? Math.abs(alpha) * p.abs[e] : 0;
      if (beta !== 0) {
        v += beta * c.data[e];
        s += Math.abs(beta * c.data[e]);
      }
      if (opts.bias) {
        v += opts.bias[j];
        s += Math.abs(opts.bias[j]);
      }
      out[e] = v;
      abs[e] = s;
    }
  }
  return { out: { data: out, shape: [m, n] }, abs };
}
