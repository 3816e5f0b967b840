// dense.test.ts — matmul (numpy/torch semantics): 2-D, 1-D promotion, batched, broadcast batch
// dimensions, views as inputs, odd sizes; forward against the float64 reference, gradients with
// gradcheck (incl. the shared-weight path), float16/bfloat16 forwards, leak checks, bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../lib/index';
import type { Tensor } from '../lib/index';
import * as R from './reference/ops';
import { checkOp, throwsLike, liveCounts, assertNoLeak, freshSeed, type Tol } from './helpers';
import { checkMatmul, type DenseCase } from './conformance/dense';
import { atEachSimdLevel } from './kernels/kernel_util';

// float32 / float64: ‖out − ref‖/‖|A|·|B|‖ (MM_SCALE: a dot product's rounding is relative to Σ|aᵢbᵢ|, not
// to a sum that cancels — [17]·[17] with Σ|ab| = 19.7 summing to 6.8e−4 was 3.5e−4 of ‖ref‖ and 1.2e−8 of
// this); float32 accumulation over K ≤ 129 terms stays within a few 1e−7·√K. float16/bfloat16:
// ‖out − ref‖/‖ref‖, since their inputs are exact in the reference and the output's rounding (2⁻¹¹, 2⁻⁸),
// relative to the result, is most of the error.
const MM_TOL: Partial<Record<S.DType, Tol>> = {
  float64: { relNorm: 1e-13 },
  float32: { relNorm: 1e-5 },
  float16: { relNorm: 1e-3 },
  bfloat16: { relNorm: 8e-3 },
};

const MM_SCALE = (a: R.NDArray, b: R.NDArray) => R.matmul(R.map(a, Math.abs), R.map(b, Math.abs));

const cases: [number[], number[]][] = [
  [[3, 17], [17, 5]],
  [[1, 1], [1, 1]],
  [[129, 3], [3, 17]],
  [[3, 129], [129, 1]],
  [[17], [17]],
  [[17], [17, 3]],
  [[3, 17], [17]],
  [[2, 3, 4], [2, 4, 5]],
  [[2, 1, 3, 4], [5, 4, 6]],
  [[2, 3, 4], [4, 5]],
  [[4, 5], [2, 5, 3]],
  [[3], [2, 3, 4]],
  [[2, 4, 3], [3]],
  [[0, 3], [3, 4]],
  [[3, 0], [0, 4]],
];

for (const [a, b] of cases) {
  test(`matmul ${JSON.stringify(a)} · ${JSON.stringify(b)}`, () => {
    checkOp({ shapes: [a, b], fn: S.matmul, ref: R.matmul, tol: MM_TOL, scale: MM_SCALE });
  });
}

test('matmul with transposed and narrowed views as inputs', () => {
  checkOp({ shapes: [[5, 7], [7, 3]], fn: S.matmul, ref: R.matmul, layout: 'transposed', tol: MM_TOL, scale: MM_SCALE });
  checkOp({ shapes: [[2, 5, 7], [7, 3]], fn: S.matmul, ref: R.matmul, layout: 'transposed', tol: MM_TOL, scale: MM_SCALE });
  checkOp({ shapes: [[5, 7], [7, 3]], fn: S.matmul, ref: R.matmul, layout: 'narrowed', tol: MM_TOL, scale: MM_SCALE });
  checkOp({ shapes: [[4, 6], [5, 6]], fn: (a, b) => S.tidy(() => a.matmul(b.T)), ref: (a, b) => R.matmul(a, R.permute(b, [1, 0])), tol: MM_TOL, scale: (a, b) => MM_SCALE(a, R.permute(b, [1, 0])) });
});

test('matmul at larger odd sizes (float32 forward only)', () => {
  checkOp({ shapes: [[129, 65], [65, 33]], fn: S.matmul, ref: R.matmul, dtype: 'float32', grad: false, tol: MM_TOL, scale: MM_SCALE });
  checkOp({ shapes: [[3, 17, 129], [129, 17]], fn: S.matmul, ref: R.matmul, dtype: 'float32', grad: false, tol: MM_TOL, scale: MM_SCALE });
});

test('matmul in float16 and bfloat16', () => {
  checkOp({ shapes: [[17, 33], [33, 9]], fn: S.matmul, ref: R.matmul, dtype: ['float16', 'bfloat16'], grad: false, tol: MM_TOL });
});

// float16 / bfloat16 on the CPU: the GEMM reads the 16-bit operands in place (gemm_half) and widens
// them while packing, or in registers on the skinny x·Wᵀ path, so each case below aims at one of its
// paths — the tiny direct loop, the skinny x·Wᵀ and x·W paths (tails of K and of the 512-column
// chunks), few columns (the transposed problem), packed products across a K block in all four
// layouts, bfloat16 pairs (vdpbf16ps, where the CPU has it) and their fallbacks, an unaligned view, a
// batch folded into rows and one that is not — at every SIMD level and on 1 and 2 threads. Every element against the float64 product of the stored inputs (checkMatmul:
// one rounding of the output plus float32 accumulation), integers exactly.
test('float16 and bfloat16 read in place by the CPU GEMM: every path, per element', () => {
  const cases: DenseCase[] = [
    { m: 3, k: 5, n: 7 },
    { m: 1, k: 203, n: 37, transB: true },
    { m: 5, k: 203, n: 37, transB: true },
    { m: 16, k: 64, n: 33, transB: true },
    { m: 40, k: 1031, n: 37, transB: true }, // long-K x·Wᵀ stays skinny to 64 rows (A widened first)
    { m: 64, k: 1025, n: 70, transB: true },
    { m: 100, k: 2050, n: 40, transB: true }, // and to 128 rows as bfloat16 pairs
    { m: 4, k: 100, n: 64, transA: true, transB: true },
    { m: 3, k: 150, n: 600 },
    { m: 1, k: 40, n: 1030 },
    { m: 300, k: 65, n: 7, transB: true },
    { m: 300, k: 65, n: 7 },
    { m: 70, k: 300, n: 90 },
    { m: 70, k: 300, n: 90, transA: true },
    { m: 70, k: 300, n: 90, transB: true },
    { m: 70, k: 300, n: 90, transA: true, transB: true },
    { m: 129, k: 33, n: 200, offsetA: true },
    { m: 40, k: 64, n: 50, batchA: [2] },
    { m: 8, k: 16, n: 8, batchA: [3], batchB: [3] },
    // separate products large enough to go one by one to the 16-bit GEMM
    { m: 64, k: 256, n: 130, batchA: [2], batchB: [2], transB: true },
    { m: 70, k: 300, n: 100, batchA: [2], batchB: [2] },
    { m: 33, k: 70, n: 41, transB: true, integers: true },
    // bfloat16 x·Wᵀ with K even runs as bfloat16 pairs on AVX512-BF16 CPUs (vdpbf16ps; packed above 128 rows):
    // several K blocks of pairs with a tail, the fallback (odd K), and an A one element off alignment
    // (its pairs interleaved from the 16-bit rows by the packer)
    { m: 40, k: 1030, n: 50, transB: true },
    { m: 150, k: 600, n: 70, transB: true }, // pairs, packed (more than 128 rows)
    { m: 150, k: 2090, n: 70, transB: true }, // packed pairs over two K blocks (512 pairs each) and a tail
    { m: 40, k: 1031, n: 50, transB: true },
    { m: 129, k: 64, n: 200, transB: true, offsetA: true },
    { m: 20, k: 600, n: 70, transB: true, batchA: [3] },
    { m: 1, k: 1030, n: 37, transB: true }, // pairs at decode: the skinny dot products
    { m: 300, k: 64, n: 7, transB: true }, // pairs with few columns: the transposed problem
    { m: 2, k: 300, n: 70, integers: true },
    // bfloat16 with k strided in B (x·W) or A (xᵀ·W), from 64 rows and columns: the packers interleave
    // rows k and k + 1 into pairs for the vdpbf16ps kernels — panel edges, two K blocks of pairs with a
    // tail, the smallest such product, and A read in place (N = 64) beside an interleaved B
    { m: 70, k: 258, n: 300 },
    { m: 300, k: 130, n: 70, transA: true },
    { m: 64, k: 32, n: 64, transA: true },
    { m: 65, k: 2100, n: 66 },
    { m: 100, k: 200, n: 64 },
  ];
  const threads = S.getNumThreads();
  try {
    atEachSimdLevel((level) => {
      for (const nt of [1, 2]) {
        S.setNumThreads(nt);
        // float32 x·Wᵀ with a long K on the same skinny dot products up to 64 rows, just past them, short K
        for (const c of [{ m: 17, k: 1030, n: 37 }, { m: 64, k: 1100, n: 70 }, { m: 65, k: 1024, n: 33 }, { m: 40, k: 300, n: 33 }])
          checkMatmul('cpu', 'float32', { ...c, transB: true }, freshSeed());
        for (const dt of ['float16', 'bfloat16'] as const)
          cases.forEach((c, i) => {
            try {
              checkMatmul('cpu', dt, c, freshSeed() + i);
            } catch (e) {
              console.error(`  (SIMD ${level}, ${nt} thread(s))`);
              throw e;
            }
          });
      }
    });
  } finally {
    S.setNumThreads(threads);
  }
});

// float64 x·Wᵀ on the CPU against dot products in JS, every element within (k + 2)·2^−53·Σ|a||w|.
function checkF64NT(m: number, k: number, n: number, seed: number): void {
  const x = S.randn([m, k], { dtype: 'float64', seed }), w = S.randn([n, k], { dtype: 'float64', seed: seed + 1 });
  const y = S.matmul(x, w.T);
  const xv = x.dataSync() as Float64Array, wv = w.dataSync() as Float64Array, got = y.dataSync() as Float64Array;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let ref = 0, abs = 0;
      for (let q = 0; q < k; q++) ref += xv[i * k + q] * wv[j * k + q], abs += Math.abs(xv[i * k + q] * wv[j * k + q]);
      const e = Math.abs(got[i * n + j] - ref);
      if (!(e <= (k + 2) * 2 ** -53 * abs)) assert.unreachable(`float64 ${m}×${k}×${n} x·Wᵀ: element [${i}, ${j}] is ${got[i * n + j]}, reference ${ref}`);
    }
  x.dispose(), w.dispose(), y.dispose();
}

// The skinny x·Wᵀ dot products run in tiles of up to 4 rows × 6 columns (AVX-512; 2 × 4 on AVX2), and
// with more than two row tiles in K chunks of 4 KB a row: every row and column remainder, split over 1
// and 2 threads, in float32 (K past the tiny direct loop, several chunks and a tail), float64, bfloat16
// pairs (even K: one chunk, and several) and bfloat16 W widened in registers (odd K).
test('skinny x·Wᵀ tiles: every row and column remainder, every SIMD level', () => {
  const threads = S.getNumThreads();
  try {
    atEachSimdLevel((level) => {
      for (const nt of [1, 2]) {
        S.setNumThreads(nt);
        for (const m of [1, 2, 3, 4, 5, 6, 7, 9])
          for (let n = 1; n <= 13; n++)
            for (const [dt, k] of [['float32', 4101], ['float64', 4101], ['bfloat16', 4100], ['bfloat16', 130], ['bfloat16', 4101]] as const) {
              try {
                if (dt === 'float64') checkF64NT(m, k, n, freshSeed());
                else checkMatmul('cpu', dt, { m, k, n, transB: true }, freshSeed());
              } catch (e) {
                console.error(`  (SIMD ${level}, ${nt} thread(s), ${dt} ${m}×${k}×${n})`);
                throw e;
              }
            }
      }
    });
  } finally {
    S.setNumThreads(threads);
  }
});

test('a linear layer: gradients of x·Wᵀ + b for x, W and b', () => {
  // W.T is a transposed view: W's gradient is made in W's layout (gᵀ·x) and handed back transposed;
  // 3-D and 2-D x, and one output (W [1, 5]: its transpose is also a plain column)
  for (const [xs, out] of [[[2, 3, 5], 4], [[7, 5], 4], [[3, 5], 1]] as [number[], number][])
    checkOp({
      shapes: [xs, [out, 5], [out]],
      fn: (x, w, b) => S.tidy(() => x.matmul(w.T).add(b)),
      ref: (x, w, b) => R.zip([R.matmul(x, R.permute(w, [1, 0])), b], (p, q) => p + q),
      tol: MM_TOL,
      scale: (x, w, b) => R.zip([MM_SCALE(x, R.permute(w, [1, 0])), R.map(b, Math.abs)], (p, q) => p + q),
    });
  // W's .grad is a plain contiguous tensor of W's shape
  const w = S.randn([4, 5], { seed: 3, requiresGrad: true });
  const x = S.randn([6, 5], { seed: 4 });
  const y = S.tidy(() => x.matmul(w.T).sum());
  y.backward();
  assert.equal(w.grad!.shape, [4, 5]);
  assert.ok(w.grad!.isContiguous);
  const colSums = S.sum(x, 0).dataSync();
  const g = w.grad!.dataSync();
  for (let i = 0; i < 20; i++) assert.ok(Math.abs(g[i] - colSums[i % 5]) < 1e-5, `dW[${i}] = ${g[i]}, want ${colSums[i % 5]}`);
  S.dispose([w, x, y]);
});

test('the gradient of a weight shared by a batch equals the sum over the batch', () => {
  const before = liveCounts();
  const x = S.randn([3, 2, 4], { seed: 5 });
  const w = S.randn([4, 5], { seed: 6, requiresGrad: true });
  const y = S.tidy(() => x.matmul(w).sum());
  y.backward();
  const want = S.tidy(() => {
    const ones = S.ones([3, 2, 5]);
    return S.sum(S.matmul(x.transpose(-2, -1), ones), 0);
  });
  const got = Array.from(w.grad!.dataSync());
  Array.from(want.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - got[i]) < 1e-4, `element ${i}: ${got[i]} vs ${v}`));
  for (const t of [x, w, y, want]) t.dispose();
  assertNoLeak(before, 'shared weight');
});

test('bad arguments', () => {
  const before = liveCounts();
  const a = S.zeros([2, 3]);
  const b = S.zeros([4, 5]);
  const c = S.zeros([2, 3, 4]);
  const d = S.zeros([3, 4, 5]);
  const f64 = S.zeros([3, 2], { dtype: 'float64' });
  const i32 = S.zeros([2, 3], { dtype: 'int32' });
  const s = S.zeros([]);
  throwsLike(() => S.matmul(a, b), RangeError, /^structura\.matmul: 'a' \[2, 3\] and 'b' \[4, 5\]: inner dimensions 3 and 4 differ$/);
  throwsLike(() => S.matmul(c, d), RangeError, /batch dimensions \[2\] and \[3\] do not broadcast/);
  throwsLike(() => S.matmul(a, f64), TypeError, /'a' \[2, 3\] is float32 but 'b' \[3, 2\] is float64/);
  throwsLike(() => S.matmul(i32, i32), TypeError, /must be a floating tensor/);
  throwsLike(() => S.matmul(s, a), RangeError, /at least one dimension/);
  throwsLike(() => S.matmul(a, [[1]] as unknown as Tensor), TypeError, /'b' must be a Tensor, got an array/);
  throwsLike(() => a.matmul(undefined as unknown as Tensor), TypeError, /'b' must be a Tensor, got undefined/);
  for (const t of [a, b, c, d, f64, i32, s]) t.dispose();
  assertNoLeak(before, 'bad arguments');
});

test.run();
