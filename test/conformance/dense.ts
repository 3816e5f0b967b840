// conformance/dense.ts — matmul on a device (cuda/dense.cu through the addon), one suite for every
// device: registered by test/dense_devices.test.ts for 'cuda-emu' (and 'cuda' when present) and by
// test/gpu/dense.test.ts for 'cuda' with larger shapes.
//
// Each case: seeded random inputs on the CPU, the product on the device, every element compared with
// the float64 reference of the (rounded) inputs. The output block is poisoned first: a NaN-filled
// tensor of the same size is freed just before the call, so the caching allocator hands that block to
// matmul's output and an element the kernel never writes reads NaN.
//   float32 (SIMT kernel): |out − ref| ≤ (K + 2)·2⁻²⁴·(|A|·|B|) per element (any summation order).
//   float16 / bfloat16 (tensor cores, float32 accumulation, one rounding): per element
//     |out − ref| ≤ u·|ref| + (K + 2)·2⁻²⁴·(|A|·|B|)·(1 + u) + the smallest subnormal, u = 2⁻¹¹ / 2⁻⁸,
//   and over a whole output of 64 elements or more ‖out − ref‖ ≤ 2·‖round(ref) − ref‖ + (K + 2)·2⁻²⁴·‖|A|·|B|‖
//   (DESIGN §5).
//   Small-integer inputs: exact equality (every partial sum is exact in float32).
import * as assert from 'uvu/assert';
import * as S from '../../lib/index';
import type { Tensor, DType } from '../../lib/index';
import { matmulWithAbs } from '../reference/dense';
import { roundTo } from '../reference/core';
import { native } from '../../lib/native';
import { freshSeed, rng, seededTests } from '../helpers';

type Test = (name: string, fn: () => void | Promise<void>) => void;
export type DenseDType = 'float32' | 'float16' | 'bfloat16';
const U: Record<DenseDType, number> = { float32: 2 ** -24, float16: 2 ** -11, bfloat16: 2 ** -8 };
const TINY: Record<DenseDType, number> = { float32: 0, float16: 2 ** -24, bfloat16: 0 };

export interface DenseCase {
  m: number;
  k: number;
  n: number;
  transA?: boolean;
  transB?: boolean;
  /** Leading batch dims of a and b (broadcast like numpy). */
  batchA?: number[];
  batchB?: number[];
  /** Take the operand as a view one element into a larger buffer (unaligned rows: the scalar staging path). */
  offsetA?: boolean;
  /** Small integers in [-2, 2]: the result must be exact. */
  integers?: boolean;
}

function values(r: () => number, n: number, integers: boolean, dt: DenseDType): Float64Array {
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = integers ? Math.floor(r() * 5) - 2 : roundTo(dt, 2 * r() - 1);
  return v;
}

/** A device tensor of `shape` holding v (already representable in dt), optionally a view one element in. */
function deviceTensor(v: Float64Array, shape: number[], dt: DenseDType, dev: string, offset: boolean): Tensor {
  if (!offset) {
    const c = S.tensor(v, { shape, dtype: 'float64' });
    const d = c.cast(dt);
    c.dispose();
    const t = d.to(dev);
    d.dispose();
    return t;
  }
  const padded = new Float64Array(v.length + 1);
  padded.set(v, 1);
  const c = S.tensor(padded, { dtype: 'float64' });
  const d = c.cast(dt);
  c.dispose();
  const big = d.to(dev);
  d.dispose();
  const t = big.narrow(0, 1, v.length).reshape(shape);
  big.dispose();
  return t;
}

// The last few references: a case checked on each forced kernel in turn (wgmma, TMA, mma.sync) has the
// same inputs, and its float64 product (25 G multiply-adds for the large cases) is the suite's cost on
// the GPU machine's CPU, against its minutes of device time.
const refCache = new Map<string, { va: Float64Array; vb: Float64Array; ref: ReturnType<typeof matmulWithAbs> }>();

/** Runs one product on dev and checks it; returns the max relative error seen (for the log). */
export function checkMatmul(dev: string, dt: DenseDType, c: DenseCase, seed: number): number {
  const { m, k, n } = c;
  const ta = !!c.transA, tb = !!c.transB;
  const shapeA = [...(c.batchA ?? []), ...(ta ? [k, m] : [m, k])];
  const shapeB = [...(c.batchB ?? []), ...(tb ? [n, k] : [k, n])];
  const key = JSON.stringify([dt, c, seed]);
  let cached = refCache.get(key);
  if (!cached) {
    const r = rng(seed);
    const va = values(r, shapeA.reduce((x, y) => x * y, 1), !!c.integers, dt);
    const vb = values(r, shapeB.reduce((x, y) => x * y, 1), !!c.integers, dt);
    cached = { va, vb, ref: matmulWithAbs({ data: va, shape: shapeA }, { data: vb, shape: shapeB }, { transA: ta, transB: tb }) };
    if (refCache.size >= 16) refCache.delete(refCache.keys().next().value!);
    refCache.set(key, cached);
  }
  const { va, vb, ref } = cached;
  const A = deviceTensor(va, shapeA, dt, dev, !!c.offsetA);
  const B = deviceTensor(vb, shapeB, dt, dev, false);
  const a = ta ? A.transpose(-2, -1) : A;
  const b = tb ? B.transpose(-2, -1) : B;
  // poison: the output's block is handed out NaN-filled
  S.full(ref.out.shape, NaN, { dtype: dt, device: dev }).dispose();
  const out = S.matmul(a, b);
  const host = out.to('cpu');
  const got = host.dataSync();
  const what = `matmul ${dt} on ${dev}: a ${JSON.stringify(shapeA)}${ta ? 'ᵀ' : ''} · b ${JSON.stringify(shapeB)}${tb ? 'ᵀ' : ''}`;
  try {
    assert.equal(out.shape, ref.out.shape, `${what}: shape`);
    assert.is(out.dtype, dt, `${what}: dtype`);
    assert.is(got.length, ref.out.data.length, `${what}: length`);
    const u = U[dt], acc = (k + 2) * 2 ** -24;
    let num = 0, den = 0, refErr = 0, absNorm = 0, worst = 0;
    for (let i = 0; i < got.length; i++) {
      const x = Number(got[i]), y = ref.out.data[i];
      if (c.integers) {
        // integer sums are exact in the float32 accumulators; the output rounds them once to its dtype
        if (x !== roundTo(dt, y)) assert.unreachable(`${what}: element ${i} is ${x}, exactly ${roundTo(dt, y)} (${y} rounded) expected (integer inputs)`);
        continue;
      }
      const bound = dt === 'float32' ? acc * ref.abs[i] : u * Math.abs(y) + acc * ref.abs[i] * (1 + u) + TINY[dt];
      const e = Math.abs(x - y);
      if (!(e <= bound)) assert.unreachable(`${what}: element ${i} is ${x}, reference ${y}, error ${e.toExponential(3)} > bound ${bound.toExponential(3)}`);
      num += e * e;
      den += y * y;
      const rd = roundTo(dt, y) - y;
      refErr += rd * rd;
      absNorm += ref.abs[i] * ref.abs[i];
      if (Math.abs(y) > 0) worst = Math.max(worst, e / Math.abs(y));
    }
    if (!c.integers && dt !== 'float32' && den > 0 && got.length >= 64) { // the per-element bound covers small outputs
      const lim = 2 * Math.sqrt(refErr) + acc * Math.sqrt(absNorm);
      assert.ok(Math.sqrt(num) <= lim, `${what}: ‖out − ref‖ = ${Math.sqrt(num).toExponential(3)} > 2·‖round(ref) − ref‖ + accumulation = ${lim.toExponential(3)}`);
    }
    return den > 0 ? Math.sqrt(num / den) : 0;
  } finally {
    for (const t of [out, host, A, B, a, b]) t.dispose();
  }
}

const DTYPES: DenseDType[] = ['float32', 'float16', 'bfloat16'];

/** Registers the matmul conformance cases for `dev`. `large` adds shapes too slow for the emulator. */
export function registerDense(test: Test, dev: string, opts: { large?: boolean } = {}): void {
  const withSeed = seededTests(test, dev);

  const shapes: [number, number, number][] = [[1, 1, 1], [3, 5, 7], [17, 33, 9], [1, 70, 3], [129, 40, 131]];
  if (opts.large) shapes.push([255, 1000, 257]);
  for (const dt of DTYPES) {
    withSeed(`matmul ${dt}: every transpose, odd sizes, every element within the rounding bound`, (seed) => {
      for (const [m, k, n] of shapes)
        for (const transA of [false, true]) for (const transB of [false, true]) checkMatmul(dev, dt, { m, k, n, transA, transB }, seed + m + k + n);
    });
    if (opts.large)
      withSeed(`matmul ${dt}: large products (1024³, a 4096-row one, a 384-batch) against float64`, (seed) => {
        checkMatmul(dev, dt, { m: 1024, k: 1024, n: 1024 }, seed);
        checkMatmul(dev, dt, { m: 4096, k: 64, n: 300, transA: true }, seed + 1);
        checkMatmul(dev, dt, { m: 33, k: 48, n: 40, batchA: [384], batchB: [384], transB: true }, seed + 2);
      });
    withSeed(`matmul ${dt}: small-integer inputs give the exact product`, (seed) => {
      checkMatmul(dev, dt, { m: 37, k: 60, n: 45, integers: true }, seed);
      checkMatmul(dev, dt, { m: 130, k: 48, n: 19, transB: true, integers: true }, seed + 1);
      if (opts.large) checkMatmul(dev, dt, { m: 512, k: 60, n: 640, transA: true, integers: true }, seed + 2);
    });
    // the decode kernels (cuda/dense.cu; M ≤ 16): x·Wᵀ (16-bit: v1 plain loads, v2 W through streaming
    // loads; float32: its own SIMT kernel under both) and x·W (W stored [K, N]: the N-major kernels,
    // 16-bit and float32, under both versions); version 0 runs the same products on the tile kernels
    withSeed(`matmul ${dt}: decode shapes (M ≤ 16 rows times W or a Linear weight Wᵀ, K a multiple of 8), every decode kernel`, (seed) => {
      for (const version of [1, 2, 0] as const) {
        const old = native().setDecodeKernel(version);
        try {
          checkMatmul(dev, dt, { m: 1, k: 64, n: 37, transB: true }, seed);
          checkMatmul(dev, dt, { m: 16, k: 264, n: 130, transB: true }, seed + 1);
          checkMatmul(dev, dt, { m: 5, k: 8, n: 17, transB: true, batchA: [3] }, seed + 2); // folds into 15 rows
          checkMatmul(dev, dt, { m: 7, k: 40, n: 33, transB: true, batchA: [2], batchB: [2] }, seed + 3); // batch strides
          checkMatmul(dev, dt, { m: 3, k: 48, n: 24, transB: true, integers: true }, seed + 4);
          checkMatmul(dev, dt, { m: 9, k: 32, n: 20, transB: true, offsetA: true }, seed + 5); // unaligned: general kernel
          checkMatmul(dev, dt, { m: 4, k: 36, n: 21, transB: true }, seed + 17); // K % 8 = 4: the float32 kernel only
          // few column tiles and a long K: 16-bit x·Wᵀ splits K over CTAs (the emulator reports 3 SMs)
          checkMatmul(dev, dt, { m: 3, k: 2056, n: 40, transB: true }, seed + 20); // 2 slices, the last shorter
          checkMatmul(dev, dt, { m: 16, k: 4096, n: 24, transB: true }, seed + 21); // 3 slices
          // W stored [K, N] (N % 8 == 0): column tiles of 32 with an 8-column tail, K chunks of 16 with
          // an 8-row tail, K at its minimum, rows past M, batches
          checkMatmul(dev, dt, { m: 1, k: 64, n: 40 }, seed + 6);
          checkMatmul(dev, dt, { m: 16, k: 264, n: 136 }, seed + 7);
          checkMatmul(dev, dt, { m: 11, k: 8, n: 8 }, seed + 8);
          checkMatmul(dev, dt, { m: 5, k: 24, n: 16, batchA: [3] }, seed + 9); // folds into 15 rows
          checkMatmul(dev, dt, { m: 7, k: 40, n: 32, batchA: [2], batchB: [2] }, seed + 10); // batch strides
          checkMatmul(dev, dt, { m: 3, k: 1032, n: 72, integers: true }, seed + 11); // 65 chunks: every warp, more than one round
          checkMatmul(dev, dt, { m: 2, k: 32, n: 20 }, seed + 12); // N % 8 ≠ 0: float32's N-major kernel, else the tile kernels
          checkMatmul(dev, dt, { m: 6, k: 37, n: 12 }, seed + 18); // K odd: float32's N-major kernel (x read by element)
          checkMatmul(dev, dt, { m: 13, k: 300, n: 44, offsetA: true }, seed + 19); // x unaligned: float32's N-major kernel still
          if (opts.large) {
            checkMatmul(dev, dt, { m: 1, k: 4096, n: 4096, transB: true }, seed + 13);
            checkMatmul(dev, dt, { m: 16, k: 4096, n: 1000, transB: true }, seed + 14);
            checkMatmul(dev, dt, { m: 1, k: 4096, n: 4096 }, seed + 15);
            checkMatmul(dev, dt, { m: 16, k: 4104, n: 1000 }, seed + 16);
            checkMatmul(dev, dt, { m: 1, k: 4096, n: 1024, transB: true }, seed + 22); // a GQA k/v projection: split K
            checkMatmul(dev, dt, { m: 8, k: 14336, n: 520, transB: true }, seed + 23);
          }
        } catch (e) {
          console.error(`  (decode kernels, version ${version})`);
          throw e;
        } finally {
          native().setDecodeKernel(old);
        }
      }
    });
    withSeed(`matmul ${dt}: batched and broadcast batch dims, a batch folded into rows, unaligned views`, (seed) => {
      checkMatmul(dev, dt, { m: 9, k: 20, n: 11, batchA: [2, 3], batchB: [3] }, seed);
      checkMatmul(dev, dt, { m: 5, k: 24, n: 7, batchA: [1, 2], batchB: [3, 1], transA: true }, seed + 1);
      checkMatmul(dev, dt, { m: 7, k: 16, n: 13, batchA: [4], transB: true }, seed + 2); // x·Wᵀ over a batch: one tall GEMM
      checkMatmul(dev, dt, { m: 21, k: 19, n: 35, offsetA: true }, seed + 3);
      checkMatmul(dev, dt, { m: 16, k: 32, n: 24, offsetA: true, transA: true, batchA: [2] }, seed + 4);
    });
    // More than 65535 row tiles (8.4 M rows, e.g. a batch of tokens folded into rows) run as several
    // launches; with the limit lowered to 2 tiles (256 rows) the same path at small sizes: every operand
    // that walks M (A, A stored [K, M], the rank term T of lora) moved to each launch's first row.
    withSeed(`matmul ${dt}: products taller than one launch's row tiles run in several launches`, (seed) => {
      const old = native().setGemmRowTiles(2);
      try {
        checkMatmul(dev, dt, { m: 600, k: 24, n: 40 }, seed);
        checkMatmul(dev, dt, { m: 520, k: 16, n: 33, transA: true }, seed + 1);
        checkMatmul(dev, dt, { m: 130, k: 8, n: 20, batchA: [3], transB: true }, seed + 2); // folded: 390 rows
        const r = rng(seed + 3);
        const mk = (shape: number[]) => S.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => r() * 2 - 1), { shape });
        S.tidy(() => {
          const [x, W, A, B, bias] = [mk([600, 24]), mk([40, 24]), mk([5, 24]), mk([40, 5]), mk([40])];
          const on = (t: Tensor) => t.cast(dt).to(dev);
          const want = S.lowrank.lora(x.cast(dt), W.cast(dt), A.cast(dt), B.cast(dt), { scale: 0.5, bias: bias.cast(dt) }).cast('float32').dataSync();
          const got = S.lowrank.lora(on(x), on(W), on(A), on(B), { scale: 0.5, bias: on(bias) }).to('cpu').cast('float32').dataSync();
          const tol = dt === 'float32' ? 1e-5 : dt === 'float16' ? 4e-3 : 3e-2;
          for (let i = 0; i < want.length; i++)
            if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) assert.unreachable(`lora ${dt} element ${i} (row ${Math.floor(i / 40)}): ${got[i]} on ${dev}, ${want[i]} on the CPU`);
        });
      } finally {
        native().setGemmRowTiles(old);
      }
    });
  }

  // The 16-bit x·Wᵀ products have three tensor-core kernels (cuda/dense.cu): mma.sync, and on sm_90
  // (the emulator reports sm_90) wgmma fed by cp.async and wgmma fed by TMA from a producer warp (one
  // batch; batched products fall back to the cp.async one). 'auto' picks by shape; here each is forced.
  for (const dt of ['float16', 'bfloat16'] as DenseDType[])
    withSeed(`matmul ${dt}: x·Wᵀ on the wgmma kernels (cp.async, TMA) and on the mma.sync kernel, tails, batches, exact integers`, (seed) => {
      const cases: DenseCase[] = [
        { m: 130, k: 72, n: 300, transB: true },
        { m: 65, k: 200, n: 257, transB: true },
        { m: 3, k: 8, n: 5, transB: true, batchA: [7] }, // folded: 21 rows, K at its minimum
        { m: 33, k: 48, n: 40, batchA: [3], batchB: [3], transB: true }, // batch strides
        { m: 70, k: 136, n: 260, transB: true, integers: true },
        { m: 256, k: 264, n: 272 }, // B stored [K, N]: transposed first for the wgmma kernel
        { m: 70, k: 600, n: 260, transB: true }, // 10 k-tiles: the 4 stages go round 2.5 times
      ];
      // 272 output tiles of 128×256, more than two an SM on an H100 (132) or H200: the persistent TMA
      // kernel's CTAs each take two or three, its 4-stage ring and mbarrier phases running on across them
      // (4 k-tiles a tile, the last partial); on the emulator (3 CTAs) the small cases above do that
      if (opts.large) cases.push({ m: 1024, k: 1024, n: 1024, transB: true }, { m: 300, k: 4096, n: 1000, transB: true }, { m: 2048, k: 200, n: 4352, transB: true });
      for (const kernel of ['wgmma', 'wgmma-tma', 'mma'] as const) {
        const old = native().setGemmKernel(kernel);
        try {
          cases.forEach((c, i) => checkMatmul(dev, dt, c, seed + i));
        } catch (e) {
          console.error(`  (the ${kernel} kernel)`);
          throw e;
        } finally {
          native().setGemmKernel(old);
        }
      }
    });

  test(`matmul: 1-D operands and a stepped view (copied first) [${dev}]`, () => {
    const r = rng(freshSeed());
    const w = S.tensor(Array.from({ length: 6 * 5 }, () => r() - 0.5), { shape: [6, 5] });
    // views of views keep their parents alive; tidy frees the intermediates
    const v = S.tensor(Array.from({ length: 12 }, () => r() - 0.5));
    const vs = v.reshape([6, 2]).narrow(1, 0, 1).squeeze(1); // [6], stride 2
    const want = S.matmul(vs, w).dataSync();
    const wd = w.to(dev), vd = v.to(dev), vsd = vd.reshape([6, 2]).narrow(1, 0, 1).squeeze(1);
    const got = S.matmul(vsd, wd);
    assert.equal(got.shape, [5]);
    const g = got.to('cpu').dataSync();
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(g[i] - want[i]) <= 1e-6, `element ${i}: ${g[i]} vs ${want[i]}`);
    for (const t of [w, v, vs, wd, vd, vsd, got]) t.dispose();
  });

  withSeed(`matmul float32: gradients on the device equal the CPU's (broadcast batch, summed back)`, (seed) => {
    const run = (d: string) => {
      const a = S.randn([5, 8], { seed }).to(d), b = S.randn([3, 8, 6], { seed: seed + 1 }).to(d);
      a.requiresGrad = true;
      b.requiresGrad = true;
      const y = S.matmul(a, b);
      y.backward(S.randn(y.shape, { seed: seed + 2 }).to(d));
      return [a.grad!.to('cpu').dataSync(), b.grad!.to('cpu').dataSync()];
    };
    const cpu = run('cpu'), got = run(dev);
    // the same sums in float32, in another order: K = 8 terms (dA) and 3·6 = 18 (dB), |terms| ≲ 10
    ['a', 'b'].forEach((name, i) => {
      assert.is(got[i].length, cpu[i].length, `grad of ${name}: length`);
      for (let j = 0; j < cpu[i].length; j++)
        assert.ok(Math.abs(got[i][j] - cpu[i][j]) <= 1e-5 * (1 + Math.abs(cpu[i][j])), `grad of ${name}[${j}]: ${got[i][j]} on ${dev}, ${cpu[i][j]} on the CPU`);
    });
  });

  test(`matmul: float64 on the device and mixed devices are TypeErrors naming the argument [${dev}]`, () => {
    const a = S.zeros([2, 2], { dtype: 'float64', device: dev });
    assert.throws(() => S.matmul(a, a), (e: Error) => e instanceof TypeError && /float64/.test(e.message) && e.message.includes(dev));
    const b = S.zeros([2, 2], { device: dev }), c = S.zeros([2, 2]);
    assert.throws(() => S.matmul(b, c), (e: Error) => e instanceof TypeError && /'a'/.test(e.message) && /'b'/.test(e.message));
    for (const t of [a, b, c]) t.dispose();
  });
}

export const DENSE_DTYPES: readonly DType[] = DTYPES;
