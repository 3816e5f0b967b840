// lowrank.test.ts — lowrank.linear / lora / loraBatched / loraMixture / sparsePlusLowRank / svd against
// the float64 references of test/reference/lowrank.ts on seeded random inputs of odd sizes (every
// element compared), gradcheck in float64 for every floating input, rank truncation, ids with −1, the
// fused GEMM paths (skinny, packed, transposed) at every SIMD level, half dtypes, bad input (TS and raw
// native calls), and leak checks (checkOp does them).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import { native } from '../lib/native';
import * as R from './reference/lowrank';
import { checkOp, throwsLike, liveCounts, assertNoLeak, rng, freshSeed, type Tol } from './helpers';
import { checkLora, type LoraCase } from './conformance/lowrank';
import { checkAdapters, checkPreparedSparse, type AdapterCase } from './conformance/lowrank_family';
import { atEachSimdLevel } from './kernels/kernel_util';

const { lowrank } = S;

// ‖out − ref‖/‖ref‖: float32 accumulation over K ≤ 129 (+ r) terms stays within a few 1e−7·√K, as the
// dense tests; float64 a few ulps·√K.
const TOL: Partial<Record<S.DType, Tol>> = {
  float64: { relNorm: 1e-13 },
  float32: { relNorm: 1e-5 },
  float16: { relNorm: 2e-3 },
  bfloat16: { relNorm: 1.6e-2 },
};

/** Sorted unique flat indices of a random support (about `density` of out·in), as int32. */
function support(r: () => number, out: number, inF: number, density: number): Tensor {
  const idx: number[] = [];
  for (let f = 0; f < out * inF; f++) if (r() < density) idx.push(f);
  return S.tensor(Int32Array.from(idx), { shape: [idx.length], dtype: 'int32' });
}

function idsTensor(r: () => number, M: number, E: number): Tensor {
  const ids = new Int32Array(M);
  for (let m = 0; m < M; m++) ids[m] = Math.floor(r() * (E + 1)) - 1; // −1 … E−1
  if (M > 1) ids[0] = -1;
  return S.tensor(ids, { shape: [M], dtype: 'int32' });
}

const SIZES: [number, number, number, number][] = [
  // M, in, out, r
  [1, 5, 7, 3],
  [3, 17, 9, 5],
  [17, 9, 13, 1],
  [3, 1, 3, 3],
  // the sparse kernels on transposed rows: from 8 rows with a prepared S, from 32 with a plain one
  [9, 20, 11, 2],
  [40, 33, 21, 4],
];

// More rows than one GEMM row block (240) with out ≥ 4·M: the CPU GEMM's threads take columns, each
// running several row blocks and the rank-term epilogue per block.
test('lora 245×40 → 990, r=4 (threads split columns, several row blocks): forward with bias', () => {
  checkOp({
    shapes: [[245, 40], [990, 40], [4, 40], [990, 4], [990]],
    fn: (x, W, A, B, b) => lowrank.lora(x, W, A, B, { scale: 0.5, bias: b }),
    ref: (x, W, A, B, b) => R.lora(x, W, A, B, 0.5, b),
    tol: TOL,
    grad: false,
  });
});

for (const [M, inF, out, r] of SIZES) {
  test(`linear M=${M} in=${inF} out=${out} r=${r}: forward, rank prefix, bias, gradients`, () => {
    checkOp({ shapes: [[M, inF], [r, inF], [out, r]], fn: (x, A, B) => lowrank.linear(x, A, B), ref: (x, A, B) => R.linear(x, A, B), tol: TOL });
    const k = Math.max(1, r - 2);
    checkOp({
      shapes: [[M, inF], [r, inF], [out, r], [out]],
      fn: (x, A, B, b) => lowrank.linear(x, A, B, { bias: b, rank: k }),
      ref: (x, A, B, b) => R.linear(x, A, B, b, k),
      tol: TOL,
    });
  });

  test(`lora M=${M} in=${inF} out=${out} r=${r}: forward, scale, rank prefix, bias, gradients`, () => {
    checkOp({ shapes: [[M, inF], [out, inF], [r, inF], [out, r]], fn: (x, W, A, B) => lowrank.lora(x, W, A, B), ref: (x, W, A, B) => R.lora(x, W, A, B), tol: TOL });
    const k = Math.max(1, r - 1);
    checkOp({
      shapes: [[M, inF], [out, inF], [r, inF], [out, r], [out]],
      fn: (x, W, A, B, b) => lowrank.lora(x, W, A, B, { scale: 0.75, bias: b, rank: k }),
      ref: (x, W, A, B, b) => R.lora(x, W, A, B, 0.75, b, k),
      tol: TOL,
    });
  });

  test(`loraBatched / loraMixture M=${M} in=${inF} out=${out} r=${r} E=3: ids with −1, gates, gradients`, () => {
    const E = 3;
    checkOp({
      shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r]],
      extra: (rr) => [idsTensor(rr, M, E)],
      fn: (x, W, A, B, ids) => lowrank.loraBatched(x, W, A, B, ids, { scale: 1.5 }),
      ref: (x, W, A, B, ids) => R.loraBatched(x, W, A, B, ids.data, 1.5),
      tol: TOL,
    });
    checkOp({
      shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r], [M, E]],
      fn: (x, W, A, B, g) => lowrank.loraMixture(x, W, A, B, g, { scale: 0.5 }),
      ref: (x, W, A, B, g) => R.loraMixture(x, W, A, B, g, 0.5),
      tol: TOL,
    });
    // with a bias (its gradient: the column sums of g)
    checkOp({
      shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r], [out]],
      extra: (rr) => [idsTensor(rr, M, E)],
      fn: (x, W, A, B, b, ids) => lowrank.loraBatched(x, W, A, B, ids, { scale: -0.75, bias: b }),
      ref: (x, W, A, B, b, ids) => R.loraBatched(x, W, A, B, ids.data, -0.75, b),
      tol: TOL,
    });
    checkOp({
      shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r], [M, E], [out]],
      fn: (x, W, A, B, g, b) => lowrank.loraMixture(x, W, A, B, g, { scale: 2, bias: b }),
      ref: (x, W, A, B, g, b) => R.loraMixture(x, W, A, B, g, 2, b),
      tol: TOL,
    });
  });

  test(`sparsePlusLowRank M=${M} in=${inF} out=${out} r=${r}: forward, bias, gradients (values at the support)`, () => {
    checkOp({
      shapes: [[M, inF], [r, inF], [out, r]],
      extra: (rr) => [support(rr, out, inF, 0.3)],
      fn: (x, A, B, idx) =>
        S.tidy(() => {
          // values: a deterministic function of the support so they carry no gradient here
          const v = S.arange(idx.shape[0], { dtype: x.dtype }).mul(0.25).sub(1);
          return lowrank.sparsePlusLowRank(x, A, B, { indices: idx, values: v, shape: [out, inF] });
        }),
      ref: (x, A, B, idx) => R.sparsePlusLowRank(x, A, B, idx.data, { data: Float64Array.from(idx.data, (_, e) => e * 0.25 - 1), shape: [idx.data.length] }),
      tol: TOL,
    });
    // values and bias as random differentiable inputs on a fixed support
    const seed = freshSeed();
    const idx = support(rng(seed), out, inF, 0.4);
    const nnz = idx.shape[0];
    // the same with S prepared once (lowrank.sparse keeps S's forms: the transposed-rows kernels from 8
    // rows); its pattern goes with a spread, so each call brings checkOp's values
    const zv = S.zeros([nnz]);
    const P = lowrank.sparse({ indices: idx, values: zv, shape: [out, inF] });
    try {
      if (nnz > 0)
        for (const prepared of [false, true])
          checkOp({
            seed,
            shapes: [[M, inF], [r, inF], [out, r], [nnz], [out]],
            fn: (x, A, B, v, b) =>
              lowrank.sparsePlusLowRank(x, A, B, prepared ? { ...P, values: v } : { indices: idx, values: v, shape: [out, inF] }, { bias: b }),
            ref: (x, A, B, v, b) => R.sparsePlusLowRank(x, A, B, idx.dataSync(), v, b),
            tol: TOL,
          });
    } finally {
      P.dispose();
      zv.dispose();
      idx.dispose();
    }
  });
}

test('lowrank.sparse on the CPU: a prepared S gives the plain S\'s bits forward and backward, keeps its own indices, fails clearly', () => {
  const seed = freshSeed();
  try {
    checkPreparedSparse('cpu', seed);
  } catch (e) {
    (e as Error).message += ` (seed ${seed})`;
    throw e;
  }
});

test('batched inputs [..., in] for linear, lora and sparsePlusLowRank', () => {
  checkOp({ shapes: [[2, 3, 5], [3, 5], [7, 3]], fn: (x, A, B) => lowrank.linear(x, A, B), ref: (x, A, B) => R.linear(x, A, B), tol: TOL });
  checkOp({
    shapes: [[2, 3, 5], [7, 5], [3, 5], [7, 3]],
    fn: (x, W, A, B) => lowrank.lora(x, W, A, B, { scale: 2 }),
    ref: (x, W, A, B) => R.lora(x, W, A, B, 2),
    tol: TOL,
  });
  checkOp({
    shapes: [[2, 3, 5], [3, 5], [7, 3]],
    extra: (rr) => [support(rr, 7, 5, 0.5)],
    fn: (x, A, B, idx) => S.tidy(() => lowrank.sparsePlusLowRank(x, A, B, { indices: idx, values: S.onesLike(idx, { dtype: x.dtype }), shape: [7, 5] })),
    ref: (x, A, B, idx) => R.sparsePlusLowRank(x, A, B, idx.data, { data: new Float64Array(idx.data.length).fill(1), shape: [idx.data.length] }),
    tol: TOL,
  });
});

test('views as inputs: transposed and narrowed factors, weights and x', () => {
  checkOp({ shapes: [[5, 9], [7, 9], [3, 9], [7, 3]], fn: (x, W, A, B) => lowrank.lora(x, W, A, B, { rank: 2 }), ref: (x, W, A, B) => R.lora(x, W, A, B, 1, null, 2), layout: 'transposed', tol: TOL });
  checkOp({ shapes: [[5, 9], [7, 9], [3, 9], [7, 3]], fn: (x, W, A, B) => lowrank.lora(x, W, A, B), ref: (x, W, A, B) => R.lora(x, W, A, B), layout: 'narrowed', tol: TOL });
  checkOp({ shapes: [[5, 9], [3, 9], [7, 3]], fn: (x, A, B) => lowrank.linear(x, A, B, { rank: 1 }), ref: (x, A, B) => R.linear(x, A, B, null, 1), layout: 'narrowed', tol: TOL });
  // up to 16 rows the rank term reads B in place, block by block: here B is a transposed view, over
  // several column blocks, with a rank prefix
  checkOp({
    shapes: [[16, 40], [600, 40], [12, 40], [600, 12]],
    fn: (x, W, A, B) => lowrank.lora(x, W, A, B, { rank: 10, scale: -0.5 }),
    ref: (x, W, A, B) => R.lora(x, W, A, B, -0.5, null, 10),
    layout: 'transposed',
    grad: false,
    tol: TOL,
  });
});

test('the fused GEMM paths at larger odd sizes (skinny, packed, transposed) at every SIMD level', () => {
  const n = native() as unknown as { setSimd(level: string): string };
  const hw = S.backend().simd;
  const levels = ['scalar', 'avx2', 'avx512'].slice(0, ['scalar', 'avx2', 'avx512'].indexOf(hw) + 1);
  try {
    for (const level of levels) {
      n.setSimd(level);
      for (const [M, inF, out, r] of [[1, 129, 257, 17], [13, 257, 129, 9], [16, 70, 1100, 24], [17, 70, 1100, 24], [129, 65, 67, 16], [300, 129, 3, 5], [257, 200, 301, 7]]) {
        const shapes = [[M, inF], [out, inF], [r, inF], [out, r], [out]];
        checkOp({
          shapes,
          fn: (x, W, A, B, b) => lowrank.lora(x, W, A, B, { scale: 0.3, bias: b, rank: r - 1 || 1 }),
          ref: (x, W, A, B, b) => R.lora(x, W, A, B, 0.3, b, r - 1 || 1),
          grad: false,
          tol: TOL,
        });
        const E = 4;
        checkOp({
          shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r]],
          extra: (rr) => [idsTensor(rr, M, E)],
          fn: (x, W, A, B, ids) => lowrank.loraBatched(x, W, A, B, ids, { scale: 0.5 }),
          ref: (x, W, A, B, ids) => R.loraBatched(x, W, A, B, ids.data, 0.5),
          grad: false,
          tol: TOL,
        });
        // the bias through both epilogue forms (in-place B up to 16 rows, transposed B beyond)
        checkOp({
          shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r], [out]],
          extra: (rr) => [idsTensor(rr, M, E)],
          fn: (x, W, A, B, b, ids) => lowrank.loraBatched(x, W, A, B, ids, { scale: 0.5, bias: b }),
          ref: (x, W, A, B, b, ids) => R.loraBatched(x, W, A, B, ids.data, 0.5, b),
          grad: false,
          tol: TOL,
        });
        checkOp({
          shapes: [[M, inF], [out, inF], [E, r, inF], [E, out, r], [M, E], [out]],
          fn: (x, W, A, B, g, b) => lowrank.loraMixture(x, W, A, B, g, { scale: 0.5, bias: b }),
          ref: (x, W, A, B, g, b) => R.loraMixture(x, W, A, B, g, 0.5, b),
          grad: false,
          tol: TOL,
        });
      }
    }
  } finally {
    n.setSimd(hw);
  }
});

test('lora in float16 and bfloat16 (computed in float32)', () => {
  checkOp({
    shapes: [[17, 33], [9, 33], [5, 33], [9, 5]],
    fn: (x, W, A, B) => lowrank.lora(x, W, A, B, { scale: 0.5 }),
    ref: (x, W, A, B) => R.lora(x, W, A, B, 0.5),
    dtype: ['float16', 'bfloat16'],
    grad: false,
    tol: TOL,
  });
});

// A float16 / bfloat16 W on the CPU is read in place by the GEMM (gemm_half: widened while packing,
// or in registers at decode): lora, lowrank.linear, loraBatched and loraMixture at decode and
// prefill shapes, every element within the conformance bound, at every SIMD level.
test('lora family in float16 and bfloat16 with W read in place: decode and prefill shapes, per element', () => {
  const lora: LoraCase[] = [
    { m: 1, k: 203, n: 37, r: 8, bias: true },
    { m: 16, k: 64, n: 33, r: 16, rank: 13 },
    { m: 70, k: 300, n: 90, r: 8, bias: true, scale: -2 },
    { m: 300, k: 40, n: 7, r: 4 },
  ];
  const adapters: AdapterCase[] = [
    { m: 1, k: 200, n: 37, r: 4, E: 3, scale: 0.5, ids: 'random' },
    { m: 9, k: 64, n: 70, r: 8, E: 4, scale: 2, ids: 'random' },
    { m: 70, k: 300, n: 90, r: 4, E: 3, scale: -1, ids: 'random' },
  ];
  atEachSimdLevel(() => {
    for (const dt of ['float16', 'bfloat16'] as const) {
      lora.forEach((c, i) => {
        checkLora('cpu', dt, c, freshSeed() + i);
        checkLora('cpu', dt, { ...c, linear: true }, freshSeed() + i);
      });
      adapters.forEach((c, i) => {
        checkAdapters('cpu', dt, 'batched', c, freshSeed() + i);
        checkAdapters('cpu', dt, 'mixture', c, freshSeed() + i);
      });
    }
  });
});

test('W gets no gradient unless it requires one; A and B do', () => {
  const before = liveCounts();
  const x = S.randn([4, 6], { seed: 1 });
  const W = S.randn([5, 6], { seed: 2 });
  const A = S.randn([3, 6], { seed: 3, requiresGrad: true });
  const B = S.randn([5, 3], { seed: 4, requiresGrad: true });
  const y = lowrank.lora(x, W, A, B, { rank: 2 });
  const l = y.sum();
  l.backward();
  assert.is(W.grad, null);
  assert.ok(A.grad && B.grad);
  // rows / columns beyond the rank prefix get zero gradient
  const ga = A.grad!.dataSync();
  for (let c = 0; c < 6; c++) assert.is(ga[2 * 6 + c], 0);
  const gb = B.grad!.dataSync();
  for (let j = 0; j < 5; j++) assert.is(gb[j * 3 + 2], 0);
  for (const t of [x, W, A, B, y, l]) t.dispose();
  assertNoLeak(before, 'no grad for W');
});

test('svd: exact recovery of a low-rank matrix, singular values, Eckart–Young error, energy truncation', () => {
  const before = liveCounts();
  const seed = freshSeed();
  try {
    // the last two: sketches of 50 and 43 rows, so Gram–Schmidt runs in blocks of 32 (the second block
    // projected off the first by GEMMs) and rows of the rank-deficient sketch become zero
    for (const [m, n, rk] of [[17, 9, 3], [9, 29, 5], [40, 33, 7], [120, 90, 40], [70, 200, 33]]) {
      // W = U·V with rank rk exactly
      const U = S.randn([m, rk], { seed, dtype: 'float64' });
      const V = S.randn([rk, n], { seed: seed + 1, dtype: 'float64' });
      const W = S.matmul(U, V);
      const { A, B, s } = lowrank.svd(W, { rank: rk, seed: 3 });
      assert.equal(A.shape, [rk, n]);
      assert.equal(B.shape, [m, rk]);
      const BA = S.matmul(B, A);
      const w = W.dataSync(), ba = BA.dataSync();
      let err = 0, nrm = 0;
      for (let i = 0; i < w.length; i++) {
        err += (w[i] - ba[i]) ** 2;
        nrm += w[i] ** 2;
      }
      assert.ok(Math.sqrt(err / nrm) < 1e-11, `[seed ${seed}] ${m}×${n} rank ${rk}: relative error ${Math.sqrt(err / nrm)}`);
      const ref = R.singularValues({ data: Float64Array.from(w), shape: [m, n] });
      const sv = Array.from(s.dataSync());
      sv.forEach((v, i) => assert.ok(Math.abs(v - ref[i]) <= 1e-9 * ref[0], `[seed ${seed}] σ${i} ${v} vs ${ref[i]}`));
      for (const t of [U, V, W, A, B, s, BA]) t.dispose();
    }
    // a full-rank matrix: the rank-k error is at least Σ_{i≥k} σ_i² (Eckart–Young) and, the sketch's power
    // iterations converging, reaches it: to roundoff with 16 of them; with the default 4 the excess decays
    // as (σ_{l+1}/σ_k)^(4q+2) and depends on W's spectrum (over 300 random 23 × 19 matrices it was at most
    // 2.1e−6 of ‖W‖², 1e−11 with 8 and 6e−16 with 16), so it is held to 1e−4 there. σ match, energy picks k.
    const [m, n] = [23, 19];
    const W = S.randn([m, n], { seed: seed + 2, dtype: 'float64' });
    const ref = R.singularValues({ data: Float64Array.from(W.dataSync()), shape: [m, n] });
    const total = ref.reduce((a, v) => a + v * v, 0);
    for (const k of [1, 6, 19])
      for (const [powerIters, excess] of [[4, 1e-4], [16, 1e-12]]) {
        const { A, B, s } = lowrank.svd(W, { rank: k, powerIters });
        const BA = S.matmul(B, A);
        const w = W.dataSync(), ba = BA.dataSync();
        let err = 0;
        for (let i = 0; i < w.length; i++) err += (w[i] - ba[i]) ** 2;
        const tail = ref.slice(k).reduce((a, v) => a + v * v, 0);
        const what = `[seed ${seed}] rank ${k}, ${powerIters} power iterations: ‖W − BA‖² ${err} vs Σσ² tail ${tail}`;
        assert.ok(err >= tail - 1e-12 * total, `${what}: below the optimum`);
        assert.ok(err - tail <= excess * total, `${what}: more than ${excess}·‖W‖² above the optimum`);
        Array.from(s.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) <= (powerIters === 16 ? 1e-9 : 1e-3) * ref[0], `[seed ${seed}] rank ${k} σ${i}: ${v} vs ${ref[i]}`));
        for (const t of [A, B, s, BA]) t.dispose();
      }
    // the sketch holding all of W's range (l = min(m, n) = 45, two Gram–Schmidt blocks): exact, so the
    // truncation error is the Eckart–Young tail to roundoff
    {
      const W2 = S.randn([50, 45], { seed: seed + 3, dtype: 'float64' });
      const ref2 = R.singularValues({ data: Float64Array.from(W2.dataSync()), shape: [50, 45] });
      const total2 = ref2.reduce((a, v) => a + v * v, 0);
      for (const k of [36, 45]) {
        const { A, B, s } = lowrank.svd(W2, { rank: k });
        const BA = S.matmul(B, A);
        const w = W2.dataSync(), ba = BA.dataSync();
        let err = 0;
        for (let i = 0; i < w.length; i++) err += (w[i] - ba[i]) ** 2;
        const tail = ref2.slice(k).reduce((a, v) => a + v * v, 0);
        assert.ok(Math.abs(err - tail) <= 1e-10 * total2, `[seed ${seed}] 50×45 rank ${k}: ‖W − BA‖² ${err} vs Σσ² tail ${tail}`);
        Array.from(s.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - ref2[i]) <= 1e-9 * ref2[0], `[seed ${seed}] 50×45 σ${i}: ${v} vs ${ref2[i]}`));
        for (const t of [A, B, s, BA]) t.dispose();
      }
      W2.dispose();
    }
    for (const energy of [0.5, 0.9, 0.999, 1]) {
      const { A, B, s } = lowrank.svd(W, { energy });
      let cum = 0, want = ref.length;
      for (let i = 0; i < ref.length; i++) {
        cum += ref[i] ** 2;
        if (cum >= energy * total * (1 - 1e-12)) {
          want = i + 1;
          break;
        }
      }
      assert.is(s.shape[0], want, `[seed ${seed}] energy ${energy}: kept ${s.shape[0]}, expected ${want}`);
      for (const t of [A, B, s]) t.dispose();
    }
    // float32 in, float32 out
    const W32 = W.cast('float32');
    const r32 = lowrank.svd(W32, { rank: 4 });
    assert.is(r32.A.dtype, 'float32');
    assert.is(r32.s.dtype, 'float32');
    Array.from(r32.s.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) <= 1e-3 * ref[0]));
    for (const t of [W, W32, r32.A, r32.B, r32.s]) t.dispose();
  } catch (e) {
    if (e instanceof Error) e.message = `[seed ${seed}] ${e.message}`;
    throw e;
  }
  assertNoLeak(before, 'svd');
});

test('bad input: TS checks', () => {
  const before = liveCounts();
  const x = S.zeros([4, 6]);
  const W = S.zeros([5, 6]);
  const A = S.zeros([3, 6]);
  const B = S.zeros([5, 3]);
  const A3 = S.zeros([2, 3, 6]);
  const B3 = S.zeros([2, 5, 3]);
  const x64 = S.zeros([4, 6], { dtype: 'float64' });
  const ids = S.tensor([0, 1, -1, 2], { dtype: 'int32' });
  const idsF = S.tensor([0, 1, -1, 1]);
  const gates = S.zeros([4, 3]);
  const v = S.zeros([3]);
  const unsorted = S.tensor([5, 3, 9], { dtype: 'int32' });
  const dup = S.tensor([3, 3, 9], { dtype: 'int32' });
  const oob = S.tensor([3, 4, 30], { dtype: 'int32' });
  try {
    throwsLike(() => lowrank.linear(x, A, B, { rank: 4 }), RangeError, /lowrank\.linear: 'rank' must be an integer in \[1, 3\] \(r of 'A' \[3, 6\]\), got 4/);
    throwsLike(() => lowrank.lora(x, W, A, B, { rank: 0 }), RangeError, /'rank' must be an integer in \[1, 3\]/);
    throwsLike(() => lowrank.lora(x, W, A, S.zeros([5, 2])), RangeError, /'B' \[5, 2\] must be \[out, r\] with r = 3/);
    throwsLike(() => lowrank.lora(S.zeros([4, 7]), W, A, B), RangeError, /'x' \[4, 7\] has 7 features but 'A' \[3, 6\] takes in = 6/);
    throwsLike(() => lowrank.lora(x, S.zeros([4, 6]), A, B), RangeError, /'W' \[4, 6\] has out = 4 but 'B' \[5, 3\] has out = 5/);
    throwsLike(() => lowrank.lora(x64, W, A, B), TypeError, /'x' \[4, 6\] is float64 but 'W' \[5, 6\] is float32/);
    throwsLike(() => lowrank.lora(x, W, A, B, { bias: S.zeros([4]) }), RangeError, /'bias' \[4\] must have shape \[5\]/);
    throwsLike(() => lowrank.lora(x, W, A, B, { scale: NaN }), RangeError, /'scale' must be finite/);
    throwsLike(() => lowrank.lora(x, W, A, 3 as unknown as Tensor), TypeError, /'B' must be a Tensor, got number 3/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, S.tensor([0, 1, 2, 0], { dtype: 'int32' })), RangeError, /'ids' \[4\] must hold adapter numbers in \[-1, 2\).*ids\[2\] = 2/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, S.tensor([0, -2, 1, 0], { dtype: 'int32' })), RangeError, /ids\[1\] = -2/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, idsF), TypeError, /'ids' must be int32, got float32/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, S.tensor([0, 1], { dtype: 'int32' })), RangeError, /'ids' \[2\] must have shape \[4\]/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, S.zeros([2, 5, 2]), ids), RangeError, /'B' \[2, 5, 2\] must be \[E, out, r\] = \[2, 5, 3\]/);
    throwsLike(() => lowrank.loraMixture(x, W, A3, B3, gates), RangeError, /'gates' \[4, 3\] must be \[M, E\] = \[4, 2\]/);
    throwsLike(() => lowrank.loraMixture(x, W, A3, B3, S.zeros([4, 2], { dtype: 'float64' })), TypeError, /'gates' \[4, 2\] is float64/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, ids, { bias: S.zeros([4]) }), RangeError, /loraBatched: 'bias' \[4\] must have shape \[5\] \(out\)/);
    throwsLike(() => lowrank.loraBatched(x, W, A3, B3, ids, { bias: S.zeros([5], { dtype: 'float64' }) }), TypeError, /loraBatched: 'x' \[4, 6\] is float32 but 'bias' \[5\] is float64/);
    throwsLike(() => lowrank.loraMixture(x, W, A3, B3, S.zeros([4, 2]), { bias: S.zeros([1, 5]) }), RangeError, /loraMixture: 'bias' \[1, 5\] must have shape \[5\]/);
    throwsLike(() => lowrank.loraMixture(x, W, A3, B3, S.zeros([4, 2]), { bias: 5 as never }), TypeError, /loraMixture: 'bias' must be a Tensor/);
    const Sp = (indices: Tensor) => ({ indices, values: v, shape: [5, 6] });
    throwsLike(() => lowrank.sparsePlusLowRank(x, A, B, Sp(unsorted)), RangeError, /must be sorted and unique, but indices\[0\] = 5 and indices\[1\] = 3 \(unsorted\)/);
    throwsLike(() => lowrank.sparsePlusLowRank(x, A, B, Sp(dup)), RangeError, /\(duplicate\)/);
    throwsLike(() => lowrank.sparsePlusLowRank(x, A, B, Sp(oob)), RangeError, /indices\[2\] = 30 is out of range for S of shape \[5, 6\]/);
    throwsLike(() => lowrank.sparsePlusLowRank(x, A, B, { indices: dup, values: v, shape: [6, 5] }), RangeError, /'S.shape' \[6, 5\] must be \[out, in\] = \[5, 6\]/);
    throwsLike(() => lowrank.sparsePlusLowRank(x, A, B, { indices: S.tensor([1, 2], { dtype: 'int32' }), values: v, shape: [5, 6] }), RangeError, /'S.values' \[3\] must have shape \[2\]/);
    throwsLike(() => lowrank.svd(W, { rank: 6 }), RangeError, /'rank' must be an integer in \[1, 5\]/);
    throwsLike(() => lowrank.svd(W, { energy: 1.5 }), RangeError, /'energy' must be in \(0, 1\]/);
    throwsLike(() => lowrank.svd(W, {} as never), TypeError, /give 'rank' or 'energy'/);
  } finally {
    S.dispose([x, W, A, B, A3, B3, x64, ids, idsF, gates, v, unsorted, dup, oob]);
  }
  // tensors made inline above are collected by the GC, not leaked by the ops; count only what we own
  void before;
});

test('bad input: raw native calls throw, never crash', () => {
  const n = native();
  S.tidy(() => {
    const x = S.zeros([4, 6]), W = S.zeros([5, 6]), A = S.zeros([3, 6]), B = S.zeros([5, 3]);
    const A3 = S.zeros([2, 3, 6]), B3 = S.zeros([2, 5, 3]), v = S.zeros([3]);
    const i32 = (a: number[]) => S.tensor(a, { dtype: 'int32' });
    throwsLike(() => n.lowrankLora(x._h, W._h, A._h, B._h, 4, 1, null), RangeError, /lowrank\.lora: 'rank' must be an integer in \[1, 3\]/);
    throwsLike(() => n.lowrankLora(x._h, null, A._h, B._h, 1.5, 1, null), RangeError, /lowrank\.linear: 'rank'/);
    throwsLike(() => n.lowrankLora(x._h, W._h, B._h, A._h, 1, 1, null), RangeError, /'A' \[5, 3\] must be \[r, in\] with in = 6/);
    throwsLike(() => n.lowrankLora(x._h, W._h, A._h, B._h, 1, 1, A._h), RangeError, /'bias' \[3, 6\] must be 1-D|'bias' must be 1-D/);
    throwsLike(() => n.lowrankLora(x._h, S.zeros([5, 6], { dtype: 'float64' })._h, A._h, B._h, 1, 1, null), TypeError, /'W' \[5, 6\] is float64 but 'x' \[4, 6\] is float32/);
    throwsLike(() => n.lowrankLora({} as never, W._h, A._h, B._h, 1, 1, null), TypeError, /'x'/);
    throwsLike(() => n.lowrankLora(x._h, W._h, A._h, B._h, 1, Infinity, null), RangeError, /'scale' must be finite/);
    throwsLike(() => n.lowrankLoraBatched(x._h, W._h, A3._h, B3._h, i32([0, 1, 2, 0])._h, 1), RangeError, /ids\[2\] = 2/);
    throwsLike(() => n.lowrankLoraBatched(x._h, W._h, A3._h, B3._h, S.zeros([4])._h, 1), TypeError, /'ids' must be int32/);
    throwsLike(() => n.lowrankLoraBatched(x._h, W._h, A3._h, B3._h, i32([0])._h, 1), RangeError, /'ids' must have shape \[4\]/);
    throwsLike(() => n.lowrankLoraMixture(x._h, W._h, A3._h, B3._h, S.zeros([4, 3])._h, 1), RangeError, /'gates' \[4, 3\] must be \[M, E\] = \[4, 2\]/);
    throwsLike(() => n.lowrankLoraBatched(x._h, W._h, A3._h, B3._h, i32([0, 1, -1, 0])._h, 1, S.zeros([6])._h), RangeError, /loraBatched: 'bias' \[6\] must have shape \[5\]/);
    // a result of more than 2^40 elements from legal expand() views: refused before any work (a device
    // computed x·Aᵀ first, for minutes)
    for (const dev of ['cpu', ...(S.backend().cudaEmu ? ['cuda-emu'] : [])]) {
      const big = (rows: number, cols: number) => S.ones([1, cols], { device: dev }).expand([rows, cols]);
      throwsLike(() => lowrank.lora(big(2 ** 24, 1), big(2 ** 20, 1), S.ones([1, 1], { device: dev }), big(2 ** 20, 1)), RangeError,
        /lowrank\.lora: the result would have shape \[16777216, 1048576\], more than 2\^40 elements/);
      throwsLike(() => lowrank.loraBatched(big(2 ** 24, 1), big(2 ** 20, 1), S.ones([1, 1, 1], { device: dev }), S.ones([1, 1, 1], { device: dev }).expand([1, 2 ** 20, 1]),
        S.zeros([2 ** 24], { dtype: 'int32' })), RangeError, /lowrank\.loraBatched: the result would have shape/);
    }
    // rows·cols past int64 (2^34 · 2^30 would wrap to 2^30 in int64 arithmetic): refused, not allocated
    throwsLike(() => n.lowrankSparsePattern(i32([5])._h, 2 ** 34 + 1, 2 ** 30), RangeError, /S of shape \[17179869185, 1073741824\] has more than 2\^31 − 1 positions/);
    throwsLike(() => n.lowrankLoraBatched(x._h, W._h, A3._h, B3._h, i32([0, 1, -1, 0])._h, 1, A._h), RangeError, /loraBatched: 'bias'.* must be 1-D|'bias' must be 1-D/);
    throwsLike(() => n.lowrankLoraMixture(x._h, W._h, A3._h, B3._h, S.zeros([4, 2])._h, 1, S.zeros([5], { dtype: 'bfloat16' })._h), TypeError, /loraMixture: 'bias' \[5\] is bfloat16/);
    throwsLike(() => n.lowrankLoraMixture(x._h, W._h, A3._h, B3._h, S.zeros([4, 2])._h, 1, 7 as never), TypeError, /'bias'/);
    throwsLike(() => n.lowrankLoraMixture(x._h, W._h, A._h, B._h, S.zeros([4, 2])._h, 1), RangeError, /'A' must be 3-D/);
    throwsLike(() => n.lowrankSparsePlusLowRank(x._h, A._h, B._h, i32([5, 3, 9])._h, v._h, null), RangeError, /\(unsorted\)/);
    throwsLike(() => n.lowrankSparsePlusLowRank(x._h, A._h, B._h, i32([3, 3, 9])._h, v._h, null), RangeError, /\(duplicate\)/);
    throwsLike(() => n.lowrankSparsePlusLowRank(x._h, A._h, B._h, i32([3, 4, 30])._h, v._h, null), RangeError, /indices\[2\] = 30 is out of range/);
    throwsLike(() => n.lowrankSparsePlusLowRank(x._h, A._h, B._h, i32([-1, 4, 8])._h, v._h, null), RangeError, /indices\[0\] = -1 is out of range/);
    throwsLike(() => n.lowrankSparsePlusLowRank(x._h, A._h, B._h, i32([1, 2])._h, v._h, null), RangeError, /'S.indices' must have shape \[3\]/);
    throwsLike(() => n.lowrankSpmm(x._h, i32([1, 2, 3])._h, v._h, 5, 6, true), RangeError, /'x' \[4, 6\] must have 5 columns/);
    throwsLike(() => n.lowrankSddmm(S.zeros([3, 5])._h, x._h, i32([1])._h), RangeError, /same rows/);
    throwsLike(() => n.lowrankSvd(W._h, 6, -1, 0, 4), RangeError, /'rank' must be in \[0, 5\]/);
    throwsLike(() => n.lowrankSvd(W._h, 0, -1, 0, 4), RangeError, /give 'rank' or 'energy'/);
    throwsLike(() => n.lowrankSvd(S.full([2, 2], NaN)._h, 1, -1, 0, 4), RangeError, /non-finite/);
    throwsLike(() => n.lowrankSvd(S.zeros([2, 2], { dtype: 'int32' })._h, 1, -1, 0, 4), TypeError, /must be a floating tensor/);
  });
});

test.run();
