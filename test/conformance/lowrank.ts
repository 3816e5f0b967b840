// conformance/lowrank.ts — lowrank.lora and lowrank.linear on a device (two launches of cuda/dense.cu:
// T = x·A[:k]ᵀ, then x·Wᵀ with scale·T·B[:, :k]ᵀ and the bias added in the GEMM epilogue), one suite
// for every device: registered by test/lowrank_devices.test.ts ('cuda-emu', and 'cuda' when present)
// and test/gpu/lowrank.test.ts ('cuda', larger shapes).
//
// Each case: seeded inputs rounded to the dtype, the op on the device, every element against the
// float64 reference of those inputs (output block poisoned with NaN first, see conformance/dense.ts).
//   float32: |y − ref| ≤ (K + k + 2)·2⁻²⁴·S per element, S = |x|·|W|ᵀ + |s|·(|x|·|A|ᵀ)·|B|ᵀ + |bias|.
//   float16 / bfloat16 (T is rounded to the dtype once, as an unfused product would; y once at the end):
//     per element |y − ref| ≤ u·|ref| + u·(1 + u)·L + (K + k + 2)·2⁻²⁴·S·(1 + u)² + tiny, with
//     L = |s|·|T|·|B|ᵀ; and over a whole output of 64 elements or more ‖y − ref‖ ≤ 2·‖ref_dt − ref‖ (DESIGN §5), ref_dt
//     being the same op computed in the dtype the unfused way (every product and sum rounded).
import * as assert from 'uvu/assert';
import * as S from '../../lib/index';
import type { Tensor } from '../../lib/index';
import { roundTo } from '../reference/core';
import { native } from '../../lib/native';
import { rng, seededTests } from '../helpers';

type Test = (name: string, fn: () => void | Promise<void>) => void;
type DT = 'float32' | 'float16' | 'bfloat16';
const U: Record<DT, number> = { float32: 2 ** -24, float16: 2 ** -11, bfloat16: 2 ** -8 };
const TINY: Record<DT, number> = { float32: 0, float16: 2 ** -24, bfloat16: 0 };

export interface LoraCase {
  m: number;
  k: number; // in
  n: number; // out
  r: number;
  rank?: number;
  bias?: boolean;
  linear?: boolean; // lowrank.linear (no W)
  scale?: number;
}

function onDevice(v: Float64Array, shape: number[], dt: DT, dev: string): Tensor {
  const c = S.tensor(v, { shape, dtype: 'float64' });
  const h = c.cast(dt);
  const t = h.to(dev);
  c.dispose();
  h.dispose();
  return t;
}

export function checkLora(dev: string, dt: DT, c: LoraCase, seed: number): void {
  const r = rng(seed);
  const { m, k: K, n: N, r: R } = c;
  const rank = c.rank ?? R;
  const scale = c.linear ? 1 : c.scale ?? 0.75;
  const rnd = (len: number, amp = 1) => {
    const v = new Float64Array(len);
    for (let i = 0; i < len; i++) v[i] = roundTo(dt, amp * (2 * r() - 1));
    return v;
  };
  const x = rnd(m * K), W = rnd(N * K), A = rnd(R * K), B = rnd(N * R), bias = rnd(N);
  const rd = (v: number) => roundTo(dt, v);
  // float64 reference, its error scales, and the unfused same-precision reference
  const ref = new Float64Array(m * N), sc = new Float64Array(m * N), lowAbs = new Float64Array(m * N), refDt = new Float64Array(m * N);
  const T = new Float64Array(rank), Tabs = new Float64Array(rank), Th = new Float64Array(rank);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < rank; j++) {
      let s = 0, sa = 0;
      for (let p = 0; p < K; p++) {
        s += x[i * K + p] * A[j * K + p];
        sa += Math.abs(x[i * K + p] * A[j * K + p]);
      }
      T[j] = s;
      Tabs[j] = sa;
      Th[j] = rd(s);
    }
    for (let o = 0; o < N; o++) {
      let d = 0, da = 0;
      if (!c.linear)
        for (let p = 0; p < K; p++) {
          d += x[i * K + p] * W[o * K + p];
          da += Math.abs(x[i * K + p] * W[o * K + p]);
        }
      let l = 0, la = 0, lh = 0, lT = 0;
      for (let j = 0; j < rank; j++) {
        l += T[j] * B[o * R + j];
        la += Tabs[j] * Math.abs(B[o * R + j]);
        lh += Th[j] * B[o * R + j];
        lT += Math.abs(Th[j] * B[o * R + j]);
      }
      const bv = c.bias ? bias[o] : 0;
      const e = i * N + o;
      ref[e] = d + scale * l + bv;
      sc[e] = da + Math.abs(scale) * la + Math.abs(bv);
      lowAbs[e] = Math.abs(scale) * lT;
      refDt[e] = c.linear ? rd(rd(rd(scale * rd(lh))) + bv) : rd(rd(rd(d) + rd(scale * rd(lh))) + bv);
    }
  }
  const tx = onDevice(x, [m, K], dt, dev), tW = onDevice(W, [N, K], dt, dev), tA = onDevice(A, [R, K], dt, dev);
  const tB = onDevice(B, [N, R], dt, dev), tb = onDevice(bias, [N], dt, dev);
  S.full([m, N], NaN, { dtype: dt, device: dev }).dispose();
  const y = c.linear
    ? S.lowrank.linear(tx, tA, tB, { rank, bias: c.bias ? tb : undefined })
    : S.lowrank.lora(tx, tW, tA, tB, { rank, scale, bias: c.bias ? tb : undefined });
  const host = y.to('cpu');
  const got = host.dataSync();
  const what = `lowrank.${c.linear ? 'linear' : 'lora'} ${dt} on ${dev}: x [${m}, ${K}], out ${N}, r ${R}, rank ${rank}${c.bias ? ', bias' : ''}`;
  try {
    assert.equal(y.shape, [m, N], `${what}: shape`);
    assert.is(y.dtype, dt, `${what}: dtype`);
    const u = U[dt], acc = (K + rank + 2) * 2 ** -24;
    let num = 0, refErr = 0;
    for (let e = 0; e < got.length; e++) {
      const g = Number(got[e]), want = ref[e];
      const bound = dt === 'float32' ? acc * sc[e] : u * Math.abs(want) + u * (1 + u) * lowAbs[e] + acc * sc[e] * (1 + u) ** 2 + TINY[dt];
      const err = Math.abs(g - want);
      if (!(err <= bound)) assert.unreachable(`${what}: element ${e} is ${g}, reference ${want}, error ${err.toExponential(3)} > bound ${bound.toExponential(3)}`);
      num += err * err;
      refErr += (refDt[e] - want) ** 2;
    }
    // a norm over few elements says nothing: the per-element bound above is the check there
    if (dt !== 'float32' && got.length >= 64)
      assert.ok(Math.sqrt(num) <= 2 * Math.sqrt(refErr), `${what}: ‖y − ref‖ = ${Math.sqrt(num).toExponential(3)} > 2·‖ref_${dt} − ref‖ = ${(2 * Math.sqrt(refErr)).toExponential(3)}`);
  } finally {
    for (const t of [tx, tW, tA, tB, tb, y, host]) t.dispose();
  }
}

export function registerLowrank(test: Test, dev: string, opts: { large?: boolean } = {}): void {
  const withSeed = seededTests(test, dev);
  const cases: LoraCase[] = [
    { m: 1, k: 1, n: 1, r: 1 },
    { m: 3, k: 5, n: 7, r: 2, bias: true },
    { m: 17, k: 33, n: 9, r: 4, rank: 3 },
    { m: 130, k: 40, n: 129, r: 16, bias: true },
    { m: 5, k: 64, n: 48, r: 8, rank: 5, scale: -2 },
    // in ≥ 1024: T's product is split along in (float32 partials summed by lora_t), with a tail slice
    { m: 2, k: 1032, n: 20, r: 16, rank: 12, bias: true },
    { m: 40, k: 1040, n: 8, r: 8 },
    // at decode (16-bit, in % 8 == 0): one launch, with T in three 16-column groups
    { m: 16, k: 72, n: 33, r: 40, rank: 37, bias: true },
  ];
  if (opts.large) cases.push({ m: 257, k: 1024, n: 1000, r: 16, bias: true }, { m: 1, k: 4096, n: 4096, r: 16 }, { m: 16, k: 4096, n: 1024, r: 64, rank: 48, bias: true });
  for (const dt of ['float32', 'float16', 'bfloat16'] as DT[]) {
    withSeed(`lowrank.lora ${dt}: odd sizes, rank prefixes, bias; every element within the rounding bound`, (seed) => {
      for (const c of cases) checkLora(dev, dt, c, seed + c.m + c.k);
    });
    withSeed(`lowrank.linear ${dt}: odd sizes, rank prefixes, bias`, (seed) => {
      for (const c of cases) checkLora(dev, dt, { ...c, linear: true }, seed + c.n);
    });
  }
  // lora's second product on the wgmma kernel: the rank term as extra k-tiles (rank % 8 == 0) or in
  // the epilogue (rank 12)
  for (const dt of ['float16', 'bfloat16'] as DT[])
    for (const kernel of ['wgmma', 'wgmma-tma'] as const)
      withSeed(`lowrank.lora ${dt} on the ${kernel} kernel: rank term in the main loop and in the epilogue`, (seed) => {
        const old = native().setGemmKernel(kernel);
        try {
          // the last case: 8 k-tiles of x·Wᵀ, then the rank term's on the ninth (a second lap of the stages)
          const cases: LoraCase[] = [{ m: 130, k: 64, n: 260, r: 16, bias: true }, { m: 70, k: 40, n: 300, r: 16, rank: 12 }, { m: 20, k: 96, n: 257, r: 8, scale: -1.5 }, { m: 40, k: 512, n: 260, r: 16 }];
          // on a GPU, 162 tiles of 128×256: some of the persistent TMA kernel's CTAs take two, the rank
          // term's k-tiles (T and R through their own tensor maps) following each tile's main ones
          if (opts.large) cases.push({ m: 1100, k: 200, n: 4400, r: 16, bias: true });
          for (const c of cases) checkLora(dev, dt, c, seed + c.m);
        } finally {
          native().setGemmKernel(old);
        }
      });

  // At decode (M ≤ 16) lora-like ops run as one launch (cuda/dense.cu lora_decode_kernel: CTAs of the
  // product's grid make T while the others stream W) unless setLoraDecode('chain'): the chain of T's
  // partial products, lora_t and the product. Both sum the same partials in the same order, so the
  // outputs must be the same bits: rank prefixes and bias, several 16-column groups of T (R > 16),
  // K split into slices with a shorter last one, rows of x up to 16, adapters' ids with −1, gates.
  for (const dt of ['float16', 'bfloat16'] as DT[])
    withSeed(`lowrank.lora, loraBatched and loraMixture ${dt} at decode: one launch gives the chain's bits`, (seed) => {
      // [m, k, n, r, rank]
      const shapes = opts.large
        ? [[1, 4096, 4096, 16, 16], [16, 4096, 1000, 64, 48], [7, 11272, 520, 8, 8]]
        : [[1, 64, 40, 8, 8], [16, 1032, 33, 40, 37], [5, 24, 17, 4, 3], [3, 1560, 24, 16, 16], [16, 8, 8, 1, 1]];
      for (const [m, k, n, r, rank] of shapes) {
        const mk = (sh: number[], i: number) => S.randn(sh, { seed: seed + i, dtype: dt, device: dev });
        const [x, W, A, B, bias] = [mk([m, k], 1), mk([n, k], 2), mk([r, k], 3), mk([n, r], 4), mk([n], 5)];
        const [As, Bs] = [mk([3, r, k], 6), mk([3, n, r], 7)];
        const ids = S.tensor(Array.from({ length: m }, (_, i) => (i % 4) - 1), { dtype: 'int32', device: dev });
        const gates = S.tensor(Array.from({ length: m * 3 }, (_, i) => [0.5, 0, -1.25][i % 3] * (1 + (i % 5))), { shape: [m, 3], dtype: dt, device: dev });
        // x and W written by a kernel just before each call: the one-launch kernel is a dependent launch
        // (sm_90), and one that read them before its wait would race with that kernel (the emulator
        // reports it)
        const run = () =>
          [
            (xk: Tensor, Wk: Tensor) => S.lowrank.lora(xk, Wk, A, B, { scale: 0.75, bias, rank }),
            (xk: Tensor, Wk: Tensor) => S.lowrank.loraBatched(xk, Wk, As, Bs, ids, { scale: 2 }),
            (xk: Tensor, Wk: Tensor) => S.lowrank.loraMixture(xk, Wk, As, Bs, gates, { scale: 0.5 }),
          ].map((f) => {
            const [xk, Wk] = [S.mul(x, 1), S.mul(W, 1)];
            const y = f(xk, Wk);
            S.dispose([xk, Wk]);
            return y;
          });
        const old = native().setLoraDecode('fused');
        let fused: Tensor[], chain: Tensor[];
        try {
          fused = run();
          native().setLoraDecode('chain');
          chain = run();
        } finally {
          native().setLoraDecode(old);
        }
        ['lora', 'loraBatched', 'loraMixture'].forEach((name, i) => {
          const a = fused[i].to('cpu').cast('float32').dataSync(), b = chain[i].to('cpu').cast('float32').dataSync();
          assert.is(a.length, m * n, `${name}: length`);
          for (let j = 0; j < b.length; j++) {
            if (!Number.isFinite(b[j])) assert.unreachable(`${name} ${m}×${k}→${n} r=${r} [${j}]: the chain gave ${b[j]}`);
            if (!Object.is(a[j], b[j])) assert.unreachable(`${name} ${m}×${k}→${n} r=${r} [${j}]: ${a[j]} in one launch, ${b[j]} from the chain`);
          }
        });
        S.dispose([x, W, A, B, bias, As, Bs, ids, gates, ...fused!, ...chain!]);
      }
    });

  // lora's chain (setLoraDecode('chain') at decode; and the TMA kernel) ends in two programmatic
  // dependent launches (sm_90; the emulator checks their ordering): with them off the same kernels run
  // in stream order, so the outputs must be the same bits. loraBatched ends in the same chain.
  for (const dt of ['float16', 'bfloat16'] as DT[])
    withSeed(`lowrank.lora and loraBatched ${dt} at decode and on the TMA kernel: the same bits with dependent launches on and off`, (seed) => {
      // [m, k, n, r]; rows past 16 run forced onto the TMA wgmma kernel, whose producer waits for lora_t
      // only before the rank term's k-tiles
      const shapes = opts.large
        ? [[1, 4096, 4096, 16], [16, 4096, 1024, 64], [3, 1032, 520, 8], [1024, 2048, 2048, 16]]
        : [[1, 64, 40, 8], [16, 1032, 33, 16], [5, 24, 17, 4], [130, 72, 260, 16], [70, 40, 300, 12]];
      const oldKernel = native().setGemmKernel('wgmma-tma');
      const oldLora = native().setLoraDecode('chain');
      try {
        for (const [m, k, n, r] of shapes) {
          const mk = (sh: number[], i: number) => S.randn(sh, { seed: seed + i, dtype: dt, device: dev });
          const [x, W, A, B, bias] = [mk([m, k], 1), mk([n, k], 2), mk([r, k], 3), mk([n, r], 4), mk([n], 5)];
          const [As, Bs] = [mk([3, r, k], 6), mk([3, n, r], 7)];
          const ids = S.tensor(Array.from({ length: m }, (_, i) => (i % 4) - 1), { dtype: 'int32', device: dev });
          // x and W written by a kernel just before each call: a dependent launch that read them before its
          // wait would race with it (the emulator reports that)
          const run = () => {
            const [xk, Wk] = [S.mul(x, 1), S.mul(W, 1)];
            const ys = [S.lowrank.lora(xk, Wk, A, B, { scale: 0.75, bias })];
            const [xk2, Wk2] = [S.mul(x, 1), S.mul(W, 1)];
            ys.push(S.lowrank.loraBatched(xk2, Wk2, As, Bs, ids, { scale: 2 }));
            S.dispose([xk, Wk, xk2, Wk2]);
            return ys;
          };
          const old = native().setDependentLaunch(true);
          let on: Tensor[], off: Tensor[];
          try {
            on = run();
            native().setDependentLaunch(false);
            off = run();
          } finally {
            native().setDependentLaunch(old);
          }
          ['lora', 'loraBatched'].forEach((name, i) => {
            const a = on[i].to('cpu').cast('float32').dataSync(), b = off[i].to('cpu').cast('float32').dataSync();
            assert.is(a.length, m * n, `${name}: length`);
            for (let j = 0; j < b.length; j++)
              if (!Object.is(a[j], b[j])) assert.unreachable(`${name} ${m}×${k}→${n} r=${r} [${j}]: ${a[j]} with dependent launches, ${b[j]} without`);
          });
          S.dispose([x, W, A, B, bias, As, Bs, ids, ...on!, ...off!]);
        }
      } finally {
        native().setGemmKernel(oldKernel);
        native().setLoraDecode(oldLora);
      }
    });

  withSeed(`lowrank.lora float32: gradients of x, W, A, B and bias on the device equal the CPU's`, (seed) => {
    const run = (d: string) => {
      const ps = [[6, 24], [20, 24], [4, 24], [20, 4], [20]].map((sh, i) => {
        const t = S.randn(sh, { seed: seed + i }).to(d);
        t.requiresGrad = true;
        return t;
      });
      const [x, W, A, B, bias] = ps;
      const y = S.lowrank.lora(x, W, A, B, { scale: 0.5, rank: 3, bias });
      y.backward(S.randn(y.shape, { seed: seed + 9 }).to(d));
      return ps.map((t) => t.grad!.to('cpu').dataSync());
    };
    const cpu = run('cpu'), got = run(dev);
    ['x', 'W', 'A', 'B', 'bias'].forEach((name, i) => {
      assert.is(got[i].length, cpu[i].length, `grad of ${name}: length`);
      // float32 sums of at most 24 terms of size ≲ 10, in another order
      for (let j = 0; j < cpu[i].length; j++)
        assert.ok(Math.abs(got[i][j] - cpu[i][j]) <= 1e-5 * (1 + Math.abs(cpu[i][j])), `grad of ${name}[${j}]: ${got[i][j]} on ${dev}, ${cpu[i][j]} on the CPU`);
    });
  });

  // expand()ed operands (row stride 0: a broadcast x, a tied row) reach the kernels gathered: the GEMM
  // refused a leading dimension smaller than the row as an invalid argument
  withSeed(`lowrank.linear / lora / loraBatched / sparsePlusLowRank with expand()ed operands equal the CPU's`, (seed) => {
    const run = (d: string) =>
      S.tidy(() => {
        const row = (n: number, k: number, sd: number) => S.randn([1, k], { seed: sd }).to(d).expand([n, k]);
        const x = row(5, 8, seed), W = row(6, 8, seed + 1), A = S.randn([3, 8], { seed: seed + 2 }).to(d), B = row(6, 3, seed + 3);
        const A3 = S.randn([2, 3, 8], { seed: seed + 4 }).to(d), B3 = S.randn([2, 6, 3], { seed: seed + 5 }).to(d);
        const ids = S.tensor([0, -1, 1, 1, 0], { dtype: 'int32' }).to(d);
        const S_ = { indices: S.tensor([1, 9, 47], { dtype: 'int32' }).to(d), values: S.tensor([0.5, -1, 2]).to(d), shape: [6, 8] as [number, number] };
        const x3 = S.randn([1, 1, 8], { seed: seed + 6 }).to(d).expand([2, 3, 8]);
        return [
          S.lowrank.linear(x, A, B), S.lowrank.lora(x, W, A, B, { scale: 0.5 }), S.lowrank.lora(x3, W, A, B),
          S.lowrank.loraBatched(x, W, A3, B3, ids), S.lowrank.sparsePlusLowRank(x, A, B, S_),
        ].map((y) => Array.from(y.to('cpu').dataSync()));
      });
    const cpu = run('cpu'), got = run(dev);
    cpu.forEach((want, i) =>
      want.forEach((v, j) => assert.ok(Math.abs(got[i][j] - v) <= 1e-5 * (1 + Math.abs(v)), `case ${i} element ${j}: ${got[i][j]} on ${dev}, ${v} on the CPU`)),
    );
  });

  test(`lowrank.lora: float64 on the device is a TypeError; mixed devices name the argument [${dev}]`, () => {
    const x = S.zeros([2, 3], { dtype: 'float64', device: dev }), W = S.zeros([4, 3], { dtype: 'float64', device: dev });
    const A = S.zeros([2, 3], { dtype: 'float64', device: dev }), B = S.zeros([4, 2], { dtype: 'float64', device: dev });
    assert.throws(() => S.lowrank.lora(x, W, A, B), (e: Error) => e instanceof TypeError && /float64/.test(e.message));
    const xc = S.zeros([2, 3]), Wd = S.zeros([4, 3], { device: dev }), Ad = S.zeros([2, 3], { device: dev }), Bd = S.zeros([4, 2], { device: dev });
    assert.throws(() => S.lowrank.lora(xc, Wd, Ad, Bd), (e: Error) => e instanceof TypeError && /'W'|'x'/.test(e.message) && e.message.includes(dev));
    for (const t of [x, W, A, B, xc, Wd, Ad, Bd]) t.dispose();
  });
}
