// ops/dense.ts — matmul (numpy/torch semantics) and its gradient, on the native packed GEMM.
//
//   a [..., M, K] · b [..., K, N] → [batch..., M, N], batch dimensions broadcast.
//   A 1-D a is a row [1, K] and a 1-D b a column [K, 1]; the added axis is removed from the result.
//   Gradients: dA = g·Bᵀ, dB = Aᵀ·g (through the GEMM's transpose flags, no copies), summed over
//   broadcast batch dimensions; when b is a plain matrix shared by a batch, dB is one GEMM over the
//   flattened batch; when b is a transposed view (W.T), dB is made as (gᵀ·A)ᵀ, in W's layout.
import { native } from '../native';
import { Tensor, fromHandle, checkTensor, checkSameKind, checkFloating } from '../tensor';
import { record } from '../autograd';
import { shapeStr, broadcastShapes, rangeError } from '../errors';
import { reshape } from './shape';
import { sumTo } from './reduce';

/** The GEMM with transpose flags (no recording): a [..., M, K] (or [..., K, M] if ta), b [..., K, N] (or [..., N, K] if tb). */
function gemm(a: Tensor, b: Tensor, ta: boolean, tb: boolean): Tensor {
  const ra = a._shape.length, rb = b._shape.length;
  const m = ta ? a._shape[ra - 1] : a._shape[ra - 2];
  const n = tb ? b._shape[rb - 2] : b._shape[rb - 1];
  const batch = broadcastShapes(a._shape.slice(0, ra - 2), b._shape.slice(0, rb - 2))!;
  return fromHandle(native().matmul(a._h, b._h, ta, tb), a.dtype, [...batch, m, n], a._dev);
}

/** t [..., n] as rows [rows, n] (a reshape), or t itself when 2-D: a batch folded into one GEMM. */
const asRows = (t: Tensor): Tensor => (t._shape.length > 2 ? reshape(t, [-1, t._shape[t._shape.length - 1]]) : t);

/** a [..., M, K] · b [..., K, N], both at least 2-D, shapes checked. */
function matmulND(a: Tensor, b: Tensor): Tensor {
  const out = gemm(a, b, false, false);
  const sa = a._shape, sb = b._shape;
  return record('Matmul', [a, b], out, [a, b], (g, [x, y], needs) => {
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (needs[0]) ga = sumTo(gemm(g, y, false, true), sa);
    if (needs[1]) {
      if (sb.length === 2 && y._strides[0] === 1 && y._strides[1] >= sb[0] && sb[1] > 1) {
        // b is a transposed view of a row-major [N, K] matrix (x·Wᵀ through W.T, as nn.Linear does):
        // its gradient is made as gᵀ·x [N, K], in W's own layout, and handed back transposed (a view),
        // so the Transpose node's backward gives W a contiguous gradient — no transposing copy per step
        const gbT = gemm(asRows(g), asRows(x), true, false);
        gb = gbT.T;
        gbT.dispose();
      } else if (sb.length === 2 && sa.length > 2) {
        // one weight matrix for the whole batch: Σ_batch xᵀ·g as a single [K, rows]·[rows, N] GEMM
        gb = gemm(asRows(x), asRows(g), true, false);
      } else {
        gb = sumTo(gemm(x, g, true, false), sb);
      }
    }
    return [ga, gb];
  });
}

/**
 * x [..., K] · Wᵀ with W [N, K] (a Linear weight) → [..., N], recorded as one op, so that W's gradient
 * gᵀ·x is made in W's own layout: through matmul(x, W.T) it comes back as a transposed view, which the
 * leaf's .grad then copies. For nn.Linear; x of at least 2 dimensions, shapes checked by the caller.
 */
export function linearNT(x: Tensor, W: Tensor): Tensor {
  checkSameKind('nn.Linear', ['x', 'weight'], [x, W]);
  checkFloating('nn.Linear', 'x', x);
  const out = gemm(x, W, false, true);
  return record('Linear', [x, W], out, [x, W], (g, [xs, w], needs) => [
    needs[0] ? gemm(g, w, false, false) : null,
    needs[1] ? gemm(asRows(g), asRows(xs), true, false) : null,
  ]);
}

/**
 * Matrix product with numpy/PyTorch semantics: 1-D operands are promoted (a row for a, a column for
 * b) and the added axis dropped; batch dimensions broadcast. Floating dtypes; gradients for both.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const fn = 'matmul';
  checkTensor(fn, 'a', a);
  checkTensor(fn, 'b', b);
  checkSameKind(fn, ['a', 'b'], [a, b]);
  checkFloating(fn, 'a', a);
  if (a._shape.length === 0 || b._shape.length === 0)
    rangeError(fn, `'a' ${shapeStr(a._shape)} and 'b' ${shapeStr(b._shape)}: both must have at least one dimension`);
  const ka = a._shape[a._shape.length - 1];
  const kb = b._shape.length === 1 ? b._shape[0] : b._shape[b._shape.length - 2];
  if (ka !== kb)
    rangeError(fn, `'a' ${shapeStr(a._shape)} and 'b' ${shapeStr(b._shape)}: inner dimensions ${ka} and ${kb} differ`);
  const batchA = a._shape.slice(0, Math.max(0, a._shape.length - 2));
  const batchB = b._shape.slice(0, Math.max(0, b._shape.length - 2));
  const batch = broadcastShapes(batchA, batchB);
  if (!batch)
    rangeError(fn, `'a' ${shapeStr(a._shape)} and 'b' ${shapeStr(b._shape)}: batch dimensions ${shapeStr(batchA)} and ${shapeStr(batchB)} do not broadcast`);
  const a2 = a._shape.length === 1 ? reshape(a, [1, ka]) : a;
  const b2 = b._shape.length === 1 ? reshape(b, [kb, 1]) : b;
  try {
    const out = matmulND(a2, b2);
    if (a2 === a && b2 === b) return out;
    // drop the promoted axes
    const shape = out._shape.slice();
    if (b2 !== b) shape.splice(shape.length - 1, 1);
    if (a2 !== a) shape.splice(shape.length - (b2 !== b ? 1 : 2), 1);
    const r = reshape(out, shape);
    out.dispose();
    return r;
  } finally {
    if (a2 !== a) a2.dispose();
    if (b2 !== b) b2.dispose();
  }
}
