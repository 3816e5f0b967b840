// elementwise.test.ts — native unary / binary / where against the float64 references of
// test/reference/core.ts: every op, every float dtype (and int32 where defined), odd sizes, broadcasting,
// strided views, the out= path with aliasing, NaN, empty tensors, each SIMD level, and bad arguments.
//
// Tolerances (per element, see kernel_util.tolerance): k units of roundoff of the compute type times a
// scale, where k comes from the kernel's error bound —
//   k = 0  exact ops (neg, abs, relu, sign, step, clamp, maximum, minimum, comparisons);
//   k = 2  one correctly rounded operation (≤ 1 ulp with margin for the double reference's own rounding);
//   k = 3–4 two roundings (rsqrt = 1/√x, x³, 1/x²) or the Cephes polynomials (exp, log, tanh: ≤ 1.3 ulp
//          measured over 2·10⁶ points; erf: 1.6 ulp), and glibc's powf/sinf/cosf (< 1 ulp);
//   k = 6–8 compositions (sigmoid 2.5 ulp measured, silu, silu'), scaled by the size of the terms where
//          the formula cancels: gelu = x·Φ(x) by |x| + |y| (1 + erf(x/√2) cancels for x < 0, as in
//          PyTorch's formula), gelu' and silu' by 1 + |x| (their terms cancel near their zeros).
// float64 uses libm against JS Math (each ≤ 1 ulp): k = 2 for arithmetic, 8 for transcendental, 16
// where the reference's erf (≈ 5e-16) is involved. float16 / bfloat16 are computed in float32 and
// rounded once: one ulp of the dtype plus the float32 error.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { BinaryOp, DType, Handle, UnaryOp } from '../../lib/native';
import * as R from '../reference/core';
import * as S from '../../lib/index';
import {
  N, SEED, FLOAT_DTYPES, atEachSimdLevel, check, checkExact, code, input, keep, leakCheck, poisonHeap, poisoned,
  rngFor, stridedView, tensor, throwsLike, tolerance, values,
} from './kernel_util';

const t = suite('elementwise');
leakCheck(t);

type Gen = (rng: R.Rng, n: number) => Float64Array;
interface UnarySpec {
  k: number; // float32 error bound in units of roundoff
  k64: number;
  scale?: (x: number, ref: number) => number;
  domain?: Gen;
  scalars?: [number, number?][];
}

const normal3: Gen = (rng, n) => rng.normals(n, 3);
const positive: Gen = (rng, n) => {
  const a = rng.uniforms(n, -3, 2);
  return a.map((v) => Math.pow(10, v)); // 0.001 … 100, log-uniform
};
const mixedSign: Gen = (rng, n) => rng.uniforms(n, -4, 4);
const absScale = (x: number, r: number) => Math.abs(x) + Math.abs(r);
const onePlusX = (x: number) => 1 + Math.abs(x);

const UNARY: Record<UnaryOp, UnarySpec> = {
  neg: { k: 0, k64: 0 },
  exp: { k: 4, k64: 8, domain: (rng, n) => rng.normals(n, 2.5) },
  log: { k: 4, k64: 8, domain: positive },
  sqrt: { k: 2, k64: 2, domain: positive },
  rsqrt: { k: 3, k64: 3, domain: positive },
  abs: { k: 0, k64: 0 },
  relu: { k: 0, k64: 0 },
  gelu: { k: 4, k64: 16, scale: absScale },
  silu: { k: 8, k64: 8 },
  tanh: { k: 4, k64: 8 },
  sigmoid: { k: 6, k64: 8 },
  square: { k: 2, k64: 2 },
  reciprocal: { k: 2, k64: 2 },
  sign: { k: 0, k64: 0 },
  step: { k: 0, k64: 0 },
  erf: { k: 4, k64: 16, domain: mixedSign },
  sin: { k: 2, k64: 8 },
  cos: { k: 2, k64: 8 },
  gelu_grad: { k: 6, k64: 16, scale: onePlusX },
  silu_grad: { k: 8, k64: 8, scale: onePlusX },
  add_scalar: { k: 2, k64: 2, scalars: [[1.5], [-3]] },
  mul_scalar: { k: 2, k64: 2, scalars: [[0.7], [-2]] },
  pow_scalar: { k: 4, k64: 8, domain: positive, scalars: [[2], [3], [0.5], [-0.5], [-1], [-2], [1.7], [0]] },
  rsub_scalar: { k: 2, k64: 2, scalars: [[1]] },
  rdiv_scalar: { k: 2, k64: 2, scalars: [[2]] },
  clamp: { k: 0, k64: 0, scalars: [[-1, 1.5], [0, Infinity], [-Infinity, -0.5]] },
};
const UNARY_OPS = Object.keys(UNARY) as UnaryOp[];
const INT32_UNARY: UnaryOp[] = ['neg', 'abs', 'sign', 'square', 'add_scalar', 'mul_scalar', 'clamp'];

const SHAPES: number[][] = [[], [1], [3], [17], [129], [1000], [17, 129], [3, 5, 7], [100003]];

function unaryTol(op: UnaryOp, dt: DType, x: Float64Array, ref: Float64Array) {
  const s = UNARY[op];
  const k = dt === 'float64' ? s.k64 : s.k;
  return (i: number) => tolerance(dt, k, s.scale ? s.scale(x[i], ref[i]) : Math.abs(ref[i]), ref[i]);
}

function runUnary(op: UnaryOp, dt: DType, h: Handle, x: R.Arr, alpha: number | undefined, beta: number | undefined, ctx: string) {
  const n = R.numel(x.shape);
  poisonHeap(n * 8);
  const y = keep(N.unary(op, h, alpha, beta));
  // Scalars are rounded to the compute type (float32 unless float64), as PyTorch does.
  const ra = dt === 'float64' ? alpha ?? 0 : Math.fround(alpha ?? 0);
  const rb = dt === 'float64' ? beta ?? 0 : Math.fround(beta ?? 0);
  const ref = R.unary(op as R.UnaryName, x.data, ra, rb);
  check(values(y), ref, unaryTol(op, dt, x.data, ref), ctx, dt);
}

for (const op of UNARY_OPS) {
  t(`unary ${op}: float32/float64/float16/bfloat16, odd sizes and a strided view, vs float64`, () => {
    const rng = rngFor(`unary ${op}`);
    const spec = UNARY[op];
    const gen = spec.domain ?? normal3;
    for (const dt of FLOAT_DTYPES) {
      for (const shape of SHAPES) {
        for (const [alpha, beta] of spec.scalars ?? [[undefined, undefined]]) {
          const { h, x } = input(dt, shape, gen(rng, R.numel(shape)));
          runUnary(op, dt, h, x, alpha, beta, `${op}(${dt} ${JSON.stringify(shape)}, ${alpha}, ${beta})`);
        }
      }
      // A view with permuted, spaced strides and an offset.
      const shape = [17, 5, 3];
      const vals = gen(rng, R.numel(shape));
      const { x } = input(dt, shape, vals);
      const v = stridedView(rng, dt, x);
      const [alpha, beta] = (spec.scalars ?? [[undefined, undefined]])[0];
      runUnary(op, dt, v, x, alpha, beta, `${op}(strided ${dt} view)`);
    }
  });
}

t('unary: special values (±0, ±inf, NaN, negatives, large) for float32 and float64', () => {
  const specials = [0, -0, Infinity, -Infinity, NaN, -1, 1, -2.5, 1e30, -1e30, 100, -100, 88.7, -87, 1e-30, 3e38];
  for (const dt of ['float32', 'float64'] as const) {
    for (const op of UNARY_OPS) {
      for (const [alpha, beta] of UNARY[op].scalars ?? [[undefined, undefined]]) {
        const { h, x } = input(dt, [specials.length], specials);
        runUnary(op, dt, h, x, alpha, beta, `${op}(${dt} specials, ${alpha}, ${beta})`);
      }
    }
  }
});

t('unary int32: exact, with two\'s-complement wrapping at the extremes', () => {
  const rng = rngFor('unary int32');
  const extremes = [-2147483648, 2147483647, -2147483647, 0, -1, 1, 46341, -46341, 65536];
  for (const op of INT32_UNARY) {
    const scalars: [number, number?][] = op === 'clamp' ? [[-5, 7], [0, Infinity], [-Infinity, -3]] :
      op === 'add_scalar' ? [[5], [2147483647], [-2147483648]] : op === 'mul_scalar' ? [[3], [-1], [65537]] : [[0]];
    for (const shape of [[1], [17], [1000], [5, 129]]) {
      for (const [alpha, beta] of scalars) {
        const vals = rng.ints(R.numel(shape), -100000, 100000);
        for (let i = 0; i < Math.min(extremes.length, vals.length); i++) vals[i] = extremes[i];
        const { h, x } = input('int32', shape, vals);
        const y = keep(N.unary(op, h, alpha, beta));
        checkExact(values(y), R.unaryInt32(op as R.UnaryName, x.data, alpha ?? 0, beta ?? 0), `int32 ${op}(${alpha}, ${beta})`);
      }
    }
  }
});

t('unary at every SIMD level: all ops, float32 and float16, sizes around the vector width', () => {
  const rng = rngFor('unary simd');
  atEachSimdLevel((level) => {
    for (const op of UNARY_OPS) {
      const gen = UNARY[op].domain ?? normal3;
      for (const dt of ['float32', 'float16', 'bfloat16'] as const) {
        for (const n of [1, 7, 15, 16, 17, 33, 1000]) {
          const [alpha, beta] = (UNARY[op].scalars ?? [[undefined, undefined]])[0];
          const { h, x } = input(dt, [n], gen(rng, n));
          runUnary(op, dt, h, x, alpha, beta, `${level}: ${op}(${dt}[${n}])`);
        }
      }
    }
  });
});

// ---- binary ---------------------------------------------------------------------------------------

interface BinarySpec {
  k: number;
  k64: number;
  a?: Gen;
  b?: Gen;
}
const smallInts: Gen = (rng, n) => rng.ints(n, -3, 3); // ties for comparisons and max/min
const BINARY: Record<BinaryOp, BinarySpec> = {
  add: { k: 2, k64: 2 },
  sub: { k: 2, k64: 2 },
  mul: { k: 2, k64: 2 },
  div: { k: 2, k64: 2 },
  pow: { k: 2, k64: 4, a: (rng, n) => rng.uniforms(n, 0.1, 3), b: (rng, n) => rng.normals(n, 1.5) },
  maximum: { k: 0, k64: 0, a: smallInts, b: normal3 },
  minimum: { k: 0, k64: 0, a: smallInts, b: normal3 },
  eq: { k: 0, k64: 0, a: smallInts, b: smallInts },
  ne: { k: 0, k64: 0, a: smallInts, b: smallInts },
  lt: { k: 0, k64: 0, a: smallInts, b: smallInts },
  le: { k: 0, k64: 0, a: smallInts, b: smallInts },
  gt: { k: 0, k64: 0, a: smallInts, b: smallInts },
  ge: { k: 0, k64: 0, a: smallInts, b: smallInts },
};
const BINARY_OPS = Object.keys(BINARY) as BinaryOp[];
const INT32_BINARY: BinaryOp[] = BINARY_OPS.filter((op) => op !== 'div' && op !== 'pow');

const PAIRS: [number[], number[]][] = [
  [[], []], [[1], [1]], [[3], [3]], [[17], [17]], [[129], [129]], [[1000], [1000]], [[1000], [1]], [[1], [1000]],
  [[], [17]], [[3, 1], [1, 4]], [[17], [5, 17]], [[2, 1, 3], [4, 1]], [[17, 129], [129]], [[17, 129], [17, 1]],
  [[5, 1, 7], [1, 3, 1]], [[1, 1, 129], [3, 17, 1]], [[100003], [100003]], [[333, 301], [301]], [[301, 1], [301, 333]],
];

function runBinary(op: BinaryOp, dt: DType, a: { h: Handle; x: R.Arr }, b: { h: Handle; x: R.Arr }, ctx: string) {
  const ref = R.binary(op as R.BinaryName, a.x, b.x, { int32: dt === 'int32' });
  poisonHeap(ref.data.length * 8);
  const y = keep(N.binary(op, a.h, b.h));
  const s = BINARY[op];
  const k = dt === 'float64' ? s.k64 : s.k;
  if (dt === 'int32') return checkExact(values(y), ref.data, ctx);
  check(values(y), ref.data, (i) => tolerance(dt, k, Math.abs(ref.data[i]), ref.data[i]), ctx, dt);
}

for (const op of BINARY_OPS) {
  t(`binary ${op}: every dtype, odd sizes, broadcasting and strided views, vs float64`, () => {
    const rng = rngFor(`binary ${op}`);
    const s = BINARY[op];
    for (const dt of [...FLOAT_DTYPES, ...(INT32_BINARY.includes(op) ? ['int32' as const] : [])]) {
      const ga: Gen = dt === 'int32' ? (r, n) => r.ints(n, -50000, 50000) : s.a ?? normal3;
      const gb: Gen = dt === 'int32' ? (op === 'mul' ? (r, n) => r.ints(n, -70000, 70000) : (r, n) => r.ints(n, -50000, 50000)) : s.b ?? normal3;
      for (const [sa, sb] of PAIRS) {
        const a = input(dt, sa, ga(rng, R.numel(sa)));
        const b = input(dt, sb, gb(rng, R.numel(sb)));
        runBinary(op, dt, a, b, `${op}(${dt} ${JSON.stringify(sa)}, ${JSON.stringify(sb)})`);
        if (sa.length >= 2 || sb.length >= 2) {
          const va = { h: stridedView(rng, dt, a.x), x: a.x };
          const vb = { h: stridedView(rng, dt, b.x), x: b.x };
          runBinary(op, dt, va, b, `${op}(strided ${dt} ${JSON.stringify(sa)}, ${JSON.stringify(sb)})`);
          runBinary(op, dt, va, vb, `${op}(strided ${dt} ${JSON.stringify(sa)}, strided ${JSON.stringify(sb)})`);
        }
      }
    }
  });
}

t('binary at every SIMD level: float32 runs, broadcasts and tails; float16 and bfloat16', () => {
  const rng = rngFor('binary simd');
  atEachSimdLevel((level) => {
    for (const op of BINARY_OPS) {
      for (const dt of ['float32', 'float16', 'bfloat16'] as const) {
        for (const [sa, sb] of [[[33], [33]], [[33], [1]], [[1], [33]], [[7, 15], [15]], [[7, 15], [7, 1]]] as [number[], number[]][]) {
          const a = input(dt, sa, (BINARY[op].a ?? normal3)(rng, R.numel(sa)));
          const b = input(dt, sb, (BINARY[op].b ?? normal3)(rng, R.numel(sb)));
          runBinary(op, dt, a, b, `${level}: ${op}(${dt} ${sa}, ${sb})`);
        }
      }
    }
  });
});

t('large transposed and permuted views (the tiled copy path): unary, binary, broadcasting', () => {
  const rng = rngFor('large views');
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    for (const shape of [[257, 129], [5, 67, 61], [40, 3, 300]]) {
      const gen: Gen = dt === 'int32' ? (r, n) => r.ints(n, -1000, 1000) : normal3;
      const a = input(dt, shape, gen(rng, R.numel(shape)));
      const b = input(dt, shape.slice(1), gen(rng, R.numel(shape.slice(1))));
      for (let rep = 0; rep < 3; rep++) {
        const va = { h: stridedView(rng, dt, a.x), x: a.x };
        runBinary('add', dt, va, b, `add(strided ${dt} ${shape}, ${shape.slice(1)})`);
        runBinary('mul', dt, va, { h: stridedView(rng, dt, a.x), x: a.x }, `mul(strided ${dt} ${shape} twice)`);
        if (dt !== 'int32') runUnary('tanh', dt, va.h, a.x, undefined, undefined, `tanh(strided ${dt} ${shape})`);
        else checkExact(values(keep(N.unary('neg', va.h))), R.unaryInt32('neg', a.x.data), `neg(strided int32 ${shape})`);
      }
    }
  }
});

/** For each element of base.permute(perm) in row-major order, its offset in the contiguous base [shape]. */
function permutedOffsets(shape: number[], perm: number[]): Int32Array {
  const oshape = perm.map((p) => shape[p]);
  const sstr = shape.map((_, d) => shape.slice(d + 1).reduce((x, y) => x * y, 1));
  const out = new Int32Array(R.numel(shape));
  for (let f = 0; f < out.length; f++) {
    let rem = f;
    for (let d = oshape.length - 1; d >= 0; d--) {
      out[f] += (rem % oshape[d]) * sstr[perm[d]];
      rem = Math.floor(rem / oshape[d]);
    }
  }
  return out;
}

t('contiguous() of transposed 4- and 2-byte views: the register transpose, bit for bit, ragged edges, every SIMD level', () => {
  // [rows, cols] viewed transposed, and 3-D permutations whose source runs along the tile's k dimension;
  // sizes with 64-element tile edges and 16 / 8 / 4-lane block edges; float32 bits (NaN payloads
  // included) and int32 copied exactly
  const cases: [number[], number[]][] = [[[257, 129], [1, 0]], [[16, 16], [1, 0]], [[33, 70], [1, 0]], [[3, 1], [1, 0]], [[5, 67, 61], [0, 2, 1]], [[20, 9, 37], [2, 1, 0]]];
  const rng = rngFor('transpose32');
  atEachSimdLevel((level) => {
    for (const dt of ['float32', 'int32'] as const)
      for (const [shape, perm] of cases) {
        const n = R.numel(shape);
        const bits = new Int32Array(n);
        for (let i = 0; i < n; i++) bits[i] = Math.floor(rng.uniforms(1, -(2 ** 31), 2 ** 31)[0]);
        if (dt === 'float32') bits[0] = 0x7fc01234; // a NaN with a payload
        const base = S.tensor(dt === 'int32' ? bits : new Float32Array(bits.buffer), { shape, dtype: dt });
        const view = base.permute(perm);
        const out = view.contiguous();
        const got = new Int32Array((out.dataSync() as Float32Array | Int32Array).buffer.slice(0));
        const src = permutedOffsets(shape, perm);
        let bad = -1;
        for (let f = 0; f < n && bad < 0; f++) if (got[f] !== bits[src[f]]) bad = f;
        assert.is(bad, -1, `${level} ${dt} [${shape}] permuted (${perm}): element ${bad} differs`);
        S.dispose([base, view, out]);
      }
    // 2-byte elements: as interleaved pairs of rows when the output's last dimension is even (130, 66,
    // 38), element by element when it is odd (257, 67)
    const cases16: [number[], number[]][] = [[[130, 75], [1, 0]], [[66, 33], [1, 0]], [[20, 9, 38], [2, 1, 0]], [[129, 257], [1, 0]], [[5, 67, 61], [0, 2, 1]]];
    for (const dt of ['bfloat16', 'float16'] as const)
      for (const [shape, perm] of cases16) {
        const n = R.numel(shape);
        const base = S.tensor(Float32Array.from(rng.normals(n, 100)), { shape, dtype: dt });
        const vals = base.dataSync();
        const view = base.permute(perm);
        const out = view.contiguous();
        const got = out.dataSync();
        const src = permutedOffsets(shape, perm);
        let bad = -1;
        for (let f = 0; f < n && bad < 0; f++) if (!Object.is(got[f], vals[src[f]])) bad = f;
        assert.is(bad, -1, `${level} ${dt} [${shape}] permuted (${perm}): element ${bad} differs`);
        S.dispose([base, view, out]);
      }
  });
});

t('binary int32: wrapping add/sub/mul at the extremes, exact comparisons', () => {
  const xs = [2147483647, -2147483648, 2147483647, -2147483648, 65536, 46341, -1, 0];
  const ys = [1, -1, 2147483647, -2147483648, 65536, 46341, -2147483648, -2147483648];
  for (const op of INT32_BINARY) {
    const a = input('int32', [xs.length], xs);
    const b = input('int32', [ys.length], ys);
    runBinary(op, 'int32', a, b, `int32 ${op} extremes`);
  }
});

t('binary: NaN propagates through maximum/minimum and arithmetic; comparisons with NaN', () => {
  const xs = [NaN, 1, NaN, -Infinity, Infinity, 0, -0, 2];
  const ys = [1, NaN, NaN, NaN, -Infinity, -0, 0, Infinity];
  for (const dt of FLOAT_DTYPES) {
    for (const op of BINARY_OPS) {
      const a = input(dt, [xs.length], xs);
      const b = input(dt, [ys.length], ys);
      runBinary(op, dt, a, b, `${op}(${dt}) with NaN/inf`);
    }
  }
});

// ---- out= ---------------------------------------------------------------------------------------

t('binary/unary out=: poisoned output written entirely and returned; broadcast into out', () => {
  const rng = rngFor('out');
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    const gen: Gen = dt === 'int32' ? (r, n) => r.ints(n, -100, 100) : normal3;
    const a = input(dt, [17, 1], gen(rng, 17));
    const b = input(dt, [1, 129], gen(rng, 129));
    const out = poisoned(dt, [17, 129]);
    const r = N.binary('mul', a.h, b.h, out);
    assert.ok(r === out, 'binary returns the out handle itself');
    const ref = R.binary('mul', a.x, b.x, { int32: dt === 'int32' });
    check(values(out), ref.data, (i) => tolerance(dt, 2, Math.abs(ref.data[i]), ref.data[i]), `mul out= ${dt}`, dt);
    const u = poisoned(dt, [17, 1]);
    assert.ok(N.unary('neg', a.h, undefined, undefined, u) === u, 'unary returns the out handle itself');
    checkExact(values(u), R.unary('neg', a.x.data), `neg out= ${dt}`);
  }
});

t('binary/unary out= aliasing an input exactly (in-place p = p − lr·g) and overlapping views', () => {
  const rng = rngFor('alias');
  for (const dt of FLOAT_DTYPES) {
    for (const n of [1, 17, 1000, 100003]) {
      // p = p − lr·g, as an optimizer does it: out = p.
      const p = input(dt, [n], rng.normals(n));
      const g = input(dt, [n], rng.normals(n));
      const lr = keep(N.full(code(dt), [], 0.1, 0, 0));
      const step = keep(N.binary('mul', g.h, lr));
      const stepv = values(step);
      assert.ok(N.binary('sub', p.h, step, p.h) === p.h);
      const ref = p.x.data.map((v, i) => v - stepv[i]);
      check(values(p.h), ref, (i) => tolerance(dt, 2, Math.abs(ref[i]), ref[i]), `in-place sub ${dt}[${n}]`, dt);
      // out = b
      const q = input(dt, [n], rng.normals(n));
      N.binary('sub', g.h, q.h, q.h);
      const ref2 = g.x.data.map((v, i) => v - q.x.data[i]);
      check(values(q.h), ref2, (i) => tolerance(dt, 2, Math.abs(ref2[i]), ref2[i]), `out=b ${dt}[${n}]`, dt);
      // unary in place
      const e = input(dt, [n], rng.normals(n));
      N.unary('tanh', e.h, undefined, undefined, e.h);
      const ref3 = R.unary('tanh', e.x.data);
      check(values(e.h), ref3, unaryTol('tanh', dt, e.x.data, ref3), `in-place tanh ${dt}[${n}]`, dt);
    }
    // out overlapping an input that is not exactly out: out = P, a = Pᵀ (a view of P's storage).
    for (const m of [3, 17, 64]) {
      const P = input(dt, [m, m], rng.normals(m * m));
      const PT = keep(N.view(P.h, [m, m], [1, m], 0));
      const b = input(dt, [m], rng.normals(m));
      N.binary('add', PT, b.h, P.h);
      const xt = { data: P.x.data.map((_, k) => P.x.data[(k % m) * m + Math.floor(k / m)]), shape: [m, m] };
      const ref = R.binary('add', xt, b.x).data;
      check(values(P.h), ref, (i) => tolerance(dt, 2, Math.abs(ref[i]), ref[i]), `out = P, a = Pᵀ (${dt} ${m}×${m})`, dt);
      const Q = input(dt, [m, m], rng.normals(m * m));
      const QT = keep(N.view(Q.h, [m, m], [1, m], 0));
      N.unary('square', QT, undefined, undefined, Q.h);
      const refq = Q.x.data.map((_, k) => Q.x.data[(k % m) * m + Math.floor(k / m)] ** 2);
      check(values(Q.h), refq, (i) => tolerance(dt, 2, refq[i], refq[i]), `out = Q, a = Qᵀ square (${dt})`, dt);
    }
  }
});

t('out= errors: wrong shape (RangeError), wrong dtype (TypeError), not contiguous (RangeError)', () => {
  const a = tensor('float32', [3, 4], new Float32Array(12).fill(1));
  const b = tensor('float32', [4], new Float32Array(4).fill(2));
  throwsLike(() => N.binary('add', a, b, tensor('float32', [4, 3], new Float32Array(12))), RangeError, [/'out'/, /\[4, 3\]/, /\[3, 4\]/], 'out shape');
  throwsLike(() => N.binary('add', a, b, tensor('float64', [3, 4], new Float64Array(12))), TypeError, [/'out'/, /float64/, /float32/], 'out dtype');
  const big = tensor('float32', [4, 3], new Float32Array(12));
  const nc = keep(N.view(big, [3, 4], [1, 3], 0));
  throwsLike(() => N.binary('add', a, b, nc), RangeError, [/'out'/, /contiguous/], 'out strided');
  throwsLike(() => N.unary('exp', a, undefined, undefined, b), RangeError, [/'out'/], 'unary out shape');
  throwsLike(() => N.binary('add', a, b, {} as Handle), TypeError, [/'out'/], 'out not a tensor');
});

// ---- empty tensors --------------------------------------------------------------------------------

t('empty tensors: unary, binary (broadcast with size 1) and where give empty results', () => {
  for (const dt of [...FLOAT_DTYPES, 'int32' as const]) {
    for (const shape of [[0], [3, 0], [0, 5]]) {
      const e = tensor(dt, shape, []);
      assert.is(N.read(keep(N.unary('neg', e))).length, 0);
      const one = tensor(dt, [1], [2]);
      assert.is(N.read(keep(N.binary('add', e, one))).length, 0);
      assert.is(N.read(keep(N.binary('maximum', one, e))).length, 0);
      assert.is(N.read(keep(N.where(one, e, one))).length, 0);
    }
  }
  throwsLike(() => N.binary('add', tensor('float32', [0], []), tensor('float32', [3], [1, 2, 3])), RangeError, [/\[0\]/, /\[3\]/], '[0] vs [3]');
});

// ---- where --------------------------------------------------------------------------------------

t('where: broadcasting over cond, a and b; cond of any dtype (NaN true, ±0 false); strided inputs', () => {
  const rng = rngFor('where');
  const shapes: [number[], number[], number[]][] = [
    [[17], [17], [17]], [[3, 1], [1, 4], [4]], [[129], [], [5, 129]], [[2, 1, 3], [4, 1], [1]], [[1000], [1000], [1]],
    [[100003], [100003], [100003]],
  ];
  const conds: [DType, Gen][] = [
    ['float32', (r, n) => r.ints(n, -1, 1).map((v) => (v < 0 ? NaN : v === 0 ? (r.uniform() < 0.5 ? -0 : 0) : v))],
    ['float64', (r, n) => r.ints(n, 0, 1)],
    ['float16', (r, n) => r.ints(n, 0, 1).map((v) => (v ? r.normal() : -0))],
    ['int32', (r, n) => r.ints(n, -2, 2)],
    ['uint8', (r, n) => r.ints(n, 0, 3)],
  ];
  for (const dt of [...FLOAT_DTYPES, 'int32' as const, 'uint8' as const]) {
    for (const [cdt, cgen] of conds) {
      for (const [sc, sa, sb] of shapes) {
        const c = input(cdt, sc, cgen(rng, R.numel(sc)));
        const gen: Gen = dt === 'uint8' ? (r, n) => r.ints(n, 0, 255) : dt === 'int32' ? (r, n) => r.ints(n, -1e6, 1e6) : normal3;
        const a = input(dt, sa, gen(rng, R.numel(sa)));
        const b = input(dt, sb, gen(rng, R.numel(sb)));
        const ref = R.where(c.x, a.x, b.x);
        poisonHeap(ref.data.length * 8);
        checkExact(values(keep(N.where(c.h, a.h, b.h))), ref.data, `where(${cdt} ${sc}, ${dt} ${sa}, ${sb})`);
        if (sa.length >= 2) {
          const va = stridedView(rng, dt, a.x);
          checkExact(values(keep(N.where(c.h, va, b.h))), ref.data, `where(strided ${dt} ${sa})`);
        }
      }
    }
  }
});

t('where errors: a/b dtype mismatch (TypeError), shapes that do not broadcast (RangeError)', () => {
  const c = tensor('uint8', [3], [1, 0, 1]);
  throwsLike(() => N.where(c, tensor('float32', [3], [1, 2, 3]), tensor('float64', [3], [1, 2, 3])), TypeError, [/'a'/, /'b'/, /float32/, /float64/], 'where dtype');
  throwsLike(() => N.where(c, tensor('float32', [4], [1, 2, 3, 4]), tensor('float32', [4], [1, 2, 3, 4])), RangeError, [/\[3\]/, /\[4\]/, /'cond'/], 'where shape');
  throwsLike(() => N.where(null as unknown as Handle, c, c), TypeError, [/'cond'/], 'where cond');
});

// ---- errors -------------------------------------------------------------------------------------

t('binary errors name the argument: dtypes, shapes, int32 div/pow, uint8/uint16, op names, handles', () => {
  const f32 = tensor('float32', [2, 3], [1, 2, 3, 4, 5, 6]);
  const f64 = tensor('float64', [3], [1, 2, 3]);
  const i32 = tensor('int32', [3], [1, 2, 3]);
  throwsLike(() => N.binary('add', f32, f64), TypeError, [/'a'/, /'b'/, /float32/, /float64/], 'dtype mismatch');
  throwsLike(() => N.binary('add', f32, tensor('float32', [4], [1, 2, 3, 4])), RangeError, [/\[2, 3\]/, /\[4\]/, /'a'/, /'b'/], 'shapes');
  throwsLike(() => N.binary('div', i32, i32), TypeError, [/int32/, /cast/], 'int32 div');
  throwsLike(() => N.binary('pow', i32, i32), TypeError, [/int32/, /cast/], 'int32 pow');
  const u8 = tensor('uint8', [3], [1, 2, 3]);
  const u16 = tensor('uint16', [3], [1, 2, 3]);
  throwsLike(() => N.binary('add', u8, u8), TypeError, [/uint8/, /'a'/], 'uint8');
  throwsLike(() => N.binary('mul', u16, u16), TypeError, [/uint16/], 'uint16');
  throwsLike(() => N.binary('bogus' as BinaryOp, f32, f32), RangeError, [/'op'/, /bogus/], 'op name');
  throwsLike(() => N.binary(3 as unknown as BinaryOp, f32, f32), TypeError, [/'op'/], 'op type');
  throwsLike(() => N.binary('add', {} as Handle, f32), TypeError, [/'a'/], 'a not a tensor');
  throwsLike(() => N.binary('add', f32, 1 as unknown as Handle), TypeError, [/'b'/], 'b not a tensor');
  const gone = N.fromArray(code('float32'), [3], new Float32Array(3), 0, 0);
  N.dispose(gone);
  throwsLike(() => N.binary('add', gone, f64), TypeError, [/'a'/, /disposed/], 'disposed a');
});

t('unary errors: missing or non-integer scalars, int32-only restrictions, op names', () => {
  const f32 = tensor('float32', [3], [1, 2, 3]);
  const i32 = tensor('int32', [3], [1, 2, 3]);
  for (const op of ['add_scalar', 'mul_scalar', 'pow_scalar', 'rsub_scalar', 'rdiv_scalar', 'clamp'] as UnaryOp[])
    throwsLike(() => N.unary(op, f32), TypeError, [/'alpha'/], `${op} without alpha`);
  throwsLike(() => N.unary('clamp', f32, 0), TypeError, [/'beta'/], 'clamp without beta');
  throwsLike(() => N.unary('add_scalar', f32, '1' as unknown as number), TypeError, [/'alpha'/], 'string alpha');
  throwsLike(() => N.unary('exp', i32), TypeError, [/int32/, /cast/], 'int32 exp');
  throwsLike(() => N.unary('mul_scalar', i32, 0.5), TypeError, [/'alpha'/, /int32/], 'int32 fractional alpha');
  throwsLike(() => N.unary('add_scalar', i32, 2 ** 40), RangeError, [/'alpha'/, /int32/], 'int32 alpha range');
  throwsLike(() => N.unary('clamp', i32, 0, NaN), TypeError, [/'beta'/], 'int32 NaN bound');
  throwsLike(() => N.unary('neg', tensor('uint8', [1], [1])), TypeError, [/uint8/], 'uint8');
  throwsLike(() => N.unary('nope' as UnaryOp, f32), RangeError, [/'op'/, /nope/], 'op name');
  throwsLike(() => N.unary('exp', f32, {} as unknown as number), TypeError, [/'alpha'/], 'alpha object for a non-scalar op');
});

t.run();
void SEED;
