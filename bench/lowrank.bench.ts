// lowrank.bench.ts — float32, in = out = 4096 (a transformer projection):
//   lora (fused: one pass over W, the rank-r term in the GEMM epilogue) at M ∈ {1, 16, 512, 4096} ×
//   r ∈ {8, 16, 64}, against dense x·Wᵀ alone (the target: ≤ 1.05× its time at M = 512, r = 16)
//   and against the unfused three matmuls x·Wᵀ + scale·(x·Aᵀ)·Bᵀ;
//   lowrank.linear (r = 64, 256) against the dense product of the same shape;
//   loraBatched with 8 adapters (M = 512, r = 16, rows in 8 interleaved groups) against 8 separate lora calls
//   and PEFT's mixed batch in PyTorch;
//   a training step of sparsePlusLowRank (M = 64, r = 16, a 3% support prepared by lowrank.sparse) against
//   the same with a plain S, the dense layer's step, and SLTrain's step in PyTorch (it forms W = B·A + S);
//   lowrank.svd of a 4096² matrix to rank 64 and 256 against torch.svd_lowrank (same sketch and iterations);
//   nn.LoRALinear in inference over a bfloat16 base (M = 1; plain and DoRA): its kept casts and norms against
//   lowrank.lora on bfloat16 adapters and against the same layer made to redo them each call;
//   nn.MultiLoRALinear serving 8 requests of one row each, each with its own adapter (bfloat16 base, r = 16):
//   one call for the batch against lowrank.loraBatched itself (the layer's overhead) and against each request
//   through its own nn.LoRALinear over the shared base (8 calls, W read 8 times).
// One call of lora is 2·M·in·out + 4·M·r·(in + out)/2 flops (the base GEMM plus the two thin ones).
// CUDA (issue 5): lora in bfloat16, in = out = 4096, M ∈ {1, 16, 512, 4096} × r ∈ {8, 16, 64}, against
// PyTorch's
// x·Wᵀ alone (target at M = 4096: at most 1.10× its time, i.e. ≥ 0.91× its throughput) and its unfused
// lora (bench/torch/cuda.py, CUDA events), and against our own dense x·Wᵀ. The decode shapes (M ≤ 16)
// are bandwidth-bound: they report GB/s (W, x, A, B read once, y written once), rotate over 4 copies of
// W (128 MiB, past the L2 cache) on both sides, and compare with our device-to-device copy
// (bench/bandwidth.ts; target ≥ 80% of it), and with the same lora as the chain of three launches
// (T's partial products, lora_t, the product: 'chain', setLoraDecode) instead of one; and both without
// programmatic dependent launches ('no-pdl', 'chain-no-pdl': no call overlaps the previous one's end,
// and the chain's final product waits for T instead of streaming W meanwhile). loraBatched at M = 16
// against its chain.
// loraBatched in bfloat16 with 8 adapters (r = 16, M ∈ {16, 4096}, row i uses adapter i % 8) against
// 8 separate lora calls and PyTorch's per-adapter index_add. lora at M > 16 also runs forced onto our
// wgmma kernels (cp.async and TMA; sm_90; setGemmKernel). sparsePlusLowRank in bfloat16 (M = 4096,
// in = out = 4096, r = 64, a random 3% support, S prepared once by lowrank.sparse) against dense x·Wᵀ
// (ours and cuBLAS) and against the same with a plain S (checked and compressed each call): unstructured 3%
// sparsity is not expected to beat tensor cores; the figure tracks the spmm. lowrank.linear in bfloat16
// (M = 16 at r = 64; M = 512 at r ∈ {64, 256}) against the dense x·Wᵀ of the same in and out (ours and
// cuBLAS), and at M = 16 against its chain of three launches.
// On 'cuda-emu' (--quick only) the same at in = out = 64.
import type { BenchCase, BenchContext, LocalBaseline } from './run';
import { matmul, randn, tensor, lowrank, tidy, narrow, nn, type Tensor } from '../lib/index';
import { copyBandwidthBaseline } from './bandwidth';
import { forcedKernel, noPdl, switched, withSwitch } from './switches';
import { native } from '../lib/native';

const IN = 4096, OUT = 4096;

type LoraDecode = 'fused' | 'chain';
/** `run` with lora-like ops at decode as the chain of three launches instead of one (setLoraDecode). */
const asChain = (run: () => void, what: string) =>
  switched(`${what} as three launches (setLoraDecode('chain'))`, (v: LoraDecode) => native().setLoraDecode(v), 'chain', run);

/** A local baseline: our dense x·Wᵀ, W [out, in] read transposed in place (a view). */
function denseLinear(label: string, x: () => Tensor, W: () => Tensor): LocalBaseline {
  return {
    kind: 'local',
    label,
    run: () => {
      const wt = W().T;
      matmul(x(), wt).dispose();
      wt.dispose();
    },
  };
}
function loraCase(ctx: BenchContext, m: number, r: number): BenchCase {
  let x: Tensor, W: Tensor, A: Tensor, B: Tensor, WT: Tensor, AT: Tensor, BT: Tensor;
  return {
    op: 'lowrank.lora',
    shape: `M=${m} ${IN}→${OUT} r=${r}`,
    dtype: 'float32',
    device: ctx.device,
    flops: 2 * m * IN * OUT + 2 * m * r * (IN + OUT),
    setup() {
      x = randn([m, IN], { seed: 1 });
      W = randn([OUT, IN], { seed: 2 });
      A = randn([r, IN], { seed: 3 });
      B = randn([OUT, r], { seed: 4 });
      WT = W.T;
      AT = A.T;
      BT = B.T;
    },
    run() {
      lowrank.lora(x, W, A, B, { scale: 0.5 }).dispose();
    },
    teardown() {
      for (const t of [x, W, A, B, WT, AT, BT]) t.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'lowrank.py', spec: { op: 'lora', m, in: IN, out: OUT, r, scale: 0.5 } },
      dense: { kind: 'local', label: 'dense x·Wᵀ alone', run: () => matmul(x, WT).dispose() },
      unfused: {
        kind: 'local',
        label: 'unfused x·Wᵀ + s·(x·Aᵀ)·Bᵀ (3 matmuls)',
        run: () => tidy(() => matmul(x, WT).add(matmul(matmul(x, AT), BT).mul(0.5))).dispose(),
      },
    },
  };
}

function linearCase(ctx: BenchContext, m: number, r: number): BenchCase {
  let x: Tensor, A: Tensor, B: Tensor, D: Tensor;
  return {
    op: 'lowrank.linear',
    shape: `M=${m} ${IN}→${OUT} r=${r}`,
    dtype: 'float32',
    device: ctx.device,
    flops: 2 * m * r * (IN + OUT),
    setup() {
      x = randn([m, IN], { seed: 1 });
      A = randn([r, IN], { seed: 3 });
      B = randn([OUT, r], { seed: 4 });
      D = randn([IN, OUT], { seed: 5 });
    },
    run() {
      lowrank.linear(x, A, B).dispose();
    },
    teardown() {
      for (const t of [x, A, B, D]) t.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'lowrank.py', spec: { op: 'linear', m, in: IN, out: OUT, r } },
      dense: { kind: 'local', label: 'dense x·W (same in, out)', run: () => matmul(x, D).dispose() },
    },
  };
}

function batchedCase(ctx: BenchContext, m: number, r: number, E: number): BenchCase {
  let x: Tensor, W: Tensor, A: Tensor, B: Tensor, ids: Tensor;
  let xs: Tensor[] = [], As: Tensor[] = [], Bs: Tensor[] = [];
  return {
    op: 'lowrank.loraBatched',
    shape: `M=${m} ${IN}→${OUT} r=${r} E=${E}`,
    dtype: 'float32',
    device: ctx.device,
    flops: 2 * m * IN * OUT + 2 * m * r * (IN + OUT),
    setup() {
      x = randn([m, IN], { seed: 1 });
      W = randn([OUT, IN], { seed: 2 });
      A = randn([E, r, IN], { seed: 3 });
      B = randn([E, OUT, r], { seed: 4 });
      ids = tensor(Int32Array.from({ length: m }, (_, i) => i % E), { dtype: 'int32' });
      // the same rows grouped per adapter, for the separate calls
      const per = m / E;
      xs = Array.from({ length: E }, (_, e) => randn([per, IN], { seed: 10 + e }));
      As = Array.from({ length: E }, (_, e) => tidy(() => narrow(A, 0, e, 1).reshape([r, IN]).contiguous()));
      Bs = Array.from({ length: E }, (_, e) => tidy(() => narrow(B, 0, e, 1).reshape([OUT, r]).contiguous()));
    },
    run() {
      lowrank.loraBatched(x, W, A, B, ids, { scale: 0.5 }).dispose();
    },
    teardown() {
      for (const t of [x, W, A, B, ids, ...xs, ...As, ...Bs]) t.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'lowrank.py', spec: { op: 'lora_batched', m, in: IN, out: OUT, r, E, scale: 0.5 }, label: "PEFT's mixed batch (x·Wᵀ, then index_select / index_add_ per adapter)" },
      separate: {
        kind: 'local',
        label: `${E} separate lora calls (${m / E} rows each)`,
        run: () => {
          for (let e = 0; e < E; e++) lowrank.lora(xs[e], W, As[e], Bs[e], { scale: 0.5 }).dispose();
        },
      },
    },
  };
}

/** lora on the device, bfloat16; decode shapes (M ≤ 16) rotate over `rotate` copies of W. */
function deviceLoraCase(ctx: BenchContext, m: number, n: number, r: number): BenchCase {
  const decode = m <= 16;
  const rotate = decode ? (ctx.emu ? 2 : 4) : 1;
  const dtype = 'bfloat16' as const;
  const opts = (seed: number) => ({ seed, device: ctx.device, dtype });
  let x: Tensor | undefined, A: Tensor | undefined, B: Tensor | undefined;
  let Ws: Tensor[] = [];
  let next = 0;
  const W = () => {
    const w = Ws[next];
    next = (next + 1) % Ws.length;
    return w;
  };
  const c: BenchCase = {
    op: 'lowrank.lora',
    shape: `M=${m} ${n}→${n} r=${r}`,
    dtype,
    device: ctx.device,
    flops: 2 * m * n * n + 2 * m * r * (n + n),
    bytes: decode ? 2 * (m * n + n * n + r * n + n * r + m * n) : undefined,
    setup() {
      x = randn([m, n], opts(1));
      A = randn([r, n], opts(3));
      B = randn([n, r], opts(4));
      for (let i = 0; i < rotate; i++) Ws.push(randn([n, n], opts(10 + i)));
    },
    run() {
      lowrank.lora(x!, W(), A!, B!, { scale: 0.5 }).dispose();
    },
    teardown() {
      for (const t of [x, A, B, ...Ws]) t?.dispose();
      Ws = [];
    },
    baselines: {
      'torch-linear': { kind: 'torch', script: 'cuda.py', spec: { op: 'linear', m, in: n, out: n, dtype, rotate }, label: 'x·Wᵀ alone (cuBLAS)' },
      'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'lora', m, in: n, out: n, r, scale: 0.5, dtype, rotate }, label: 'unfused lora' },
      dense: denseLinear('our dense x·Wᵀ alone', () => x!, W),
      ...(decode
        ? {
            hbm: copyBandwidthBaseline(ctx),
            'no-pdl': noPdl(() => c.run(), 'the same lora'),
            chain: asChain(() => c.run(), 'the same lora'),
            'chain-no-pdl': noPdl(() => withSwitch((v: LoraDecode) => native().setLoraDecode(v), 'chain', () => c.run()), 'the same lora as the chain,'),
          }
        : {}),
      ...(!decode
        ? {
            wgmma: forcedKernel('wgmma', () => c.run(), 'the same lora on our'),
            'wgmma-tma': forcedKernel('wgmma-tma', () => c.run(), 'the same lora on our'),
          }
        : {}),
    },
  };
  if (!ctx.emu && m === 4096)
    c.targets = [{ baseline: 'torch-linear', min: 1 / 1.1, goal: 'bfloat16 lora M=4096 ≤ 1.10× the time of torch x·Wᵀ (issue 5)' }];
  if (!ctx.emu && decode)
    c.targets = [{ baseline: 'hbm', min: 0.8, goal: `bfloat16 lora M=${m} ≥ 80% of DRAM bandwidth (issue 5)` }];
  return c;
}

/** loraBatched on the device, bfloat16, E adapters, row i uses adapter i % E. */
function deviceBatchedCase(ctx: BenchContext, m: number, n: number, r: number, E: number): BenchCase {
  const dtype = 'bfloat16' as const;
  const opts = (seed: number) => ({ seed, device: ctx.device, dtype });
  let x: Tensor | undefined, W: Tensor | undefined, A: Tensor | undefined, B: Tensor | undefined, ids: Tensor | undefined;
  let xs: Tensor[] = [], As: Tensor[] = [], Bs: Tensor[] = [];
  return {
    op: 'lowrank.loraBatched',
    shape: `M=${m} ${n}→${n} r=${r} E=${E}`,
    dtype,
    device: ctx.device,
    flops: 2 * m * n * n + 2 * m * r * (n + n),
    setup() {
      x = randn([m, n], opts(1));
      W = randn([n, n], opts(2));
      A = randn([E, r, n], opts(3));
      B = randn([E, n, r], opts(4));
      ids = tensor(Int32Array.from({ length: m }, (_, i) => i % E), { dtype: 'int32', device: ctx.device });
      const per = Math.max(1, Math.floor(m / E));
      xs = Array.from({ length: Math.min(E, m) }, (_, e) => randn([per, n], opts(10 + e)));
      As = Array.from({ length: E }, (_, e) => tidy(() => narrow(A!, 0, e, 1).reshape([r, n]).contiguous()));
      Bs = Array.from({ length: E }, (_, e) => tidy(() => narrow(B!, 0, e, 1).reshape([n, r]).contiguous()));
    },
    run() {
      lowrank.loraBatched(x!, W!, A!, B!, ids!, { scale: 0.5 }).dispose();
    },
    teardown() {
      for (const t of [x, W, A, B, ids, ...xs, ...As, ...Bs]) t?.dispose();
      xs = As = Bs = [];
    },
    baselines: {
      separate: {
        kind: 'local',
        label: `${Math.min(E, m)} separate lora calls (the rows grouped)`,
        run: () => {
          for (let e = 0; e < xs.length; e++) lowrank.lora(xs[e], W!, As[e], Bs[e], { scale: 0.5 }).dispose();
        },
      },
      'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'lora_batched', m, in: n, out: n, r, E, scale: 0.5, dtype }, label: 'PyTorch per-adapter index_add' },
      'torch-linear': { kind: 'torch', script: 'cuda.py', spec: { op: 'linear', m, in: n, out: n, dtype }, label: 'x·Wᵀ alone (cuBLAS)' },
      ...(m <= 16 ? { chain: asChain(() => lowrank.loraBatched(x!, W!, A!, B!, ids!, { scale: 0.5 }).dispose(), 'the same loraBatched') } : {}),
    },
  };
}

/** lowrank.linear on the device, bfloat16, against the dense x·Wᵀ of the same in and out (ours and cuBLAS). */
function deviceLinearCase(ctx: BenchContext, m: number, n: number, r: number): BenchCase {
  const dtype = 'bfloat16' as const;
  const opts = (seed: number) => ({ seed, device: ctx.device, dtype });
  let x: Tensor | undefined, A: Tensor | undefined, B: Tensor | undefined, W: Tensor | undefined;
  const c: BenchCase = {
    op: 'lowrank.linear',
    shape: `M=${m} ${n}→${n} r=${r}`,
    dtype,
    device: ctx.device,
    flops: 2 * m * r * (n + n),
    setup() {
      x = randn([m, n], opts(1));
      A = randn([r, n], opts(3));
      B = randn([n, r], opts(4));
      W = randn([n, n], opts(2));
    },
    run() {
      lowrank.linear(x!, A!, B!).dispose();
    },
    teardown() {
      for (const t of [x, A, B, W]) t?.dispose();
    },
    baselines: {
      dense: denseLinear('our dense x·Wᵀ (same in, out)', () => x!, () => W!),
      'torch-linear': { kind: 'torch', script: 'cuda.py', spec: { op: 'linear', m, in: n, out: n, dtype }, label: 'dense x·Wᵀ (cuBLAS)' },
      ...(m <= 16 ? { chain: asChain(() => c.run(), 'the same product') } : {}),
    },
  };
  return c;
}

/** sparsePlusLowRank on the device, bfloat16: rank r plus a random 3% support, against dense x·Wᵀ. */
function deviceSplrCase(ctx: BenchContext, m: number, n: number, r: number): BenchCase {
  const dtype = 'bfloat16' as const;
  const opts = (seed: number) => ({ seed, device: ctx.device, dtype });
  let x: Tensor | undefined, A: Tensor | undefined, B: Tensor | undefined, W: Tensor | undefined;
  let idx: Tensor | undefined, vals: Tensor | undefined, S: lowrank.PreparedSparseMatrix | undefined;
  const nnz = Math.max(1, Math.round(0.03 * n * n));
  return {
    op: 'lowrank.sparsePlusLowRank',
    shape: `M=${m} ${n}→${n} r=${r} 3%`,
    dtype,
    device: ctx.device,
    flops: 2 * m * r * (n + n) + 2 * m * nnz,
    setup() {
      x = randn([m, n], opts(1));
      A = randn([r, n], opts(2));
      B = randn([n, r], opts(3));
      W = randn([n, n], opts(4));
      // nnz distinct sorted flat indices: every position kept with probability 3% (a fixed stride pattern
      // with jitter would do; this is simpler and seeded)
      let seed = 12345;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
      const picked: number[] = [];
      for (let f = 0; f < n * n && picked.length < nnz; f++) if (rand() < 0.03) picked.push(f);
      idx = tensor(Int32Array.from(picked), { dtype: 'int32', device: ctx.device });
      vals = randn([picked.length], opts(5));
      S = lowrank.sparse({ indices: idx, values: vals, shape: [n, n] });
    },
    run() {
      lowrank.sparsePlusLowRank(x!, A!, B!, S!).dispose();
    },
    teardown() {
      S?.dispose();
      for (const t of [x, A, B, W, idx, vals]) t?.dispose();
    },
    baselines: {
      // a plain {indices, values, shape}: the indices read back, scanned and compressed on every call
      'plain-S': {
        kind: 'local',
        label: 'the same with a plain S (checked and compressed each call)',
        run: () => lowrank.sparsePlusLowRank(x!, A!, B!, { indices: idx!, values: vals!, shape: [n, n] }).dispose(),
      },
      dense: denseLinear('our dense x·Wᵀ of the same shape', () => x!, () => W!),
      'torch-linear': { kind: 'torch', script: 'cuda.py', spec: { op: 'linear', m, in: n, out: n, dtype }, label: 'x·Wᵀ (cuBLAS)' },
    },
  };
}

/** One training step of sparsePlusLowRank on the CPU (float32; forward and the gradients of x, A, B and
 * S.values): S prepared once by lowrank.sparse, against a plain S (checked and compressed each call) and
 * against the dense layer's step (x·Wᵀ forward, g·W and gᵀ·x backward) of the same shape. */
function splrStepCase(ctx: BenchContext, m: number, n: number, r: number): BenchCase {
  let x: Tensor, A: Tensor, B: Tensor, W: Tensor, idx: Tensor, vals: Tensor, g: Tensor, S: lowrank.PreparedSparseMatrix;
  let nnz = 0;
  const step = (Sm: lowrank.SparseMatrix) =>
    tidy(() => {
      lowrank.sparsePlusLowRank(x, A, B, Sm).backward(g);
      for (const t of [x, A, B, vals]) {
        t.grad?.dispose();
        t.grad = null;
      }
    });
  return {
    op: 'lowrank.sparsePlusLowRank step',
    shape: `M=${m} ${n}→${n} r=${r} 3%`,
    dtype: 'float32',
    device: ctx.device,
    get flops() {
      return 3 * (2 * m * r * 2 * n + 2 * m * nnz);
    },
    setup() {
      x = randn([m, n], { seed: 1, requiresGrad: true });
      A = randn([r, n], { seed: 2, requiresGrad: true });
      B = randn([n, r], { seed: 3, requiresGrad: true });
      W = randn([n, n], { seed: 4 });
      g = randn([m, n], { seed: 6 });
      let seed = 12345;
      const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
      const picked: number[] = [];
      for (let f = 0; f < n * n; f++) if (rand() < 0.03) picked.push(f);
      nnz = picked.length;
      idx = tensor(Int32Array.from(picked), { dtype: 'int32' });
      vals = randn([nnz], { seed: 5, requiresGrad: true });
      S = lowrank.sparse({ indices: idx, values: vals, shape: [n, n] });
    },
    run() {
      step(S);
    },
    teardown() {
      S.dispose();
      for (const t of [x, A, B, W, idx, vals, g]) t.dispose();
    },
    baselines: {
      get torch() {
        return { kind: 'torch' as const, script: 'lowrank.py', spec: { op: 'splr_step', m, in: n, out: n, r, nnz }, label: "SLTrain's step (dense W = B·A + S each call, autograd)" };
      },
      'plain-S': { kind: 'local', label: 'the same step with a plain S (checked and compressed each call)', run: () => step({ indices: idx, values: vals, shape: [n, n] }) },
      dense: {
        kind: 'local',
        label: "the dense layer's step: x·Wᵀ, g·W, gᵀ·x",
        run: () => tidy(() => {
          matmul(x, W.T);
          matmul(g, W);
          matmul(g.T, x);
        }),
      },
    },
  };
}

/**
 * nn.LoRALinear in inference (eval, frozen float32 adapters over a bfloat16 base, M = 1, r = 16): the
 * layer keeps its adapters cast to bfloat16 (and DoRA its row norms) between calls, against lowrank.lora
 * on bfloat16 adapters (what the layer should cost) and, as 'recast', the layer's work redone every call
 * (a write to loraA between calls makes both again, as before the kept values).
 */
function layerCase(ctx: BenchContext, dora: boolean): BenchCase {
  let layer: nn.LoRALinear | undefined, x: Tensor | undefined, A16: Tensor | undefined, B16: Tensor | undefined;
  const bytes = 2 * IN * OUT;
  const forward = () => tidy(() => {
    layer!.forward(x!);
  });
  return {
    op: 'nn.LoRALinear eval',
    shape: `M=1 ${IN}→${OUT} r=16${dora ? ' DoRA' : ''}`,
    dtype: 'bfloat16',
    device: ctx.device,
    bytes,
    setup() {
      layer = new nn.LoRALinear(new nn.Linear(IN, OUT, { dtype: 'bfloat16', seed: 1 }), { r: 16, dora, seed: 2 });
      for (const p of layer.parameters()) p.requiresGrad = false;
      layer.eval();
      x = randn([1, IN], { seed: 3, dtype: 'bfloat16' });
      A16 = layer.loraA.cast('bfloat16');
      B16 = layer.loraB.cast('bfloat16');
    },
    run: forward,
    teardown() {
      for (const t of [x, A16, B16]) t?.dispose();
      layer?.dispose();
    },
    baselines: {
      ...(dora ? {} : {
        'bf16-lora': { kind: 'local', label: 'lowrank.lora, bfloat16 adapters', run: () => tidy(() => {
          lowrank.lora(x!, layer!.base.weight, A16!, B16!, { scale: layer!.scale, bias: layer!.base.bias });
        }) } as LocalBaseline,
      }),
      recast: { kind: 'local', label: 'kept values made again each call', run: () => {
        native().unary('mul_scalar', layer!.loraA._h, 1, undefined, layer!.loraA._h); // a write: versions change
        forward();
      } },
    },
  };
}

/**
 * nn.MultiLoRALinear at decode: E requests of one row each, request i with adapter i (bfloat16 base
 * 4096 → 4096, r = 16, float32 factors added to the slots), against lowrank.loraBatched on the slots
 * (what the layer should cost) and against E nn.LoRALinear layers over the same base, one call each.
 */
function multiLoraCase(ctx: BenchContext, E: number): BenchCase {
  let bank: nn.MultiLoRALinear | undefined, x: Tensor | undefined, ids: Tensor | undefined;
  let layers: nn.LoRALinear[] = [], rows: Tensor[] = [];
  const names = Array.from({ length: E }, (_, e) => `adapter${e}`);
  return {
    op: 'nn.MultiLoRALinear serve',
    shape: `M=${E} ${IN}→${OUT} r=16 E=${E}`,
    dtype: 'bfloat16',
    device: ctx.device,
    bytes: 2 * IN * OUT,
    setup() {
      const base = new nn.Linear(IN, OUT, { dtype: 'bfloat16', seed: 1 });
      bank = new nn.MultiLoRALinear(base, { slots: E, r: 16 });
      layers = names.map((_, e) => {
        const l = new nn.LoRALinear(base, { r: 16, alpha: 32, seed: 10 + e });
        tidy(() => {
          native().copyInto(l.loraB._h, randn([OUT, 16], { seed: 20 + e })._h);
          bank!.addAdapter(names[e], l.loraA, l.loraB, { alpha: 32 });
        });
        for (const p of l.parameters()) p.requiresGrad = false;
        return l.eval();
      });
      x = randn([E, IN], { seed: 3, dtype: 'bfloat16' });
      rows = names.map((_, e) => narrow(x!, 0, e, 1));
      ids = tensor(Int32Array.from({ length: E }, (_, e) => e), { dtype: 'int32' });
    },
    run: () => tidy(() => {
      bank!.forward(x!, { adapters: names });
    }),
    teardown() {
      for (const t of [x, ids, ...rows]) t?.dispose();
      // the layers share the bank's base: their adapters first, the base once with the bank
      for (const l of layers) l.unload({ merge: false });
      bank?.dispose();
    },
    baselines: {
      op: { kind: 'local', label: 'lowrank.loraBatched on the slots', run: () => tidy(() => {
        lowrank.loraBatched(x!, bank!.base.weight, bank!.loraA, bank!.loraB, ids!, { bias: bank!.base.bias });
      }) },
      separate: { kind: 'local', label: `${E} nn.LoRALinear layers, one request each`, run: () => tidy(() => {
        for (let e = 0; e < E; e++) layers[e].forward(rows[e]);
      }) },
    },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (ctx.onDevice) {
    const n = ctx.emu ? 64 : IN;
    // the grid: M ∈ {1, 16, 512, 4096} × r ∈ {8, 16, 64}
    const lora = ctx.emu
      ? [1, 16, 64].map((m) => deviceLoraCase(ctx, m, n, 8))
      : [1, 16, 512, 4096].flatMap((m) => [8, 16, 64].map((r) => deviceLoraCase(ctx, m, n, r)));
    return [
      ...lora,
      ...(ctx.emu ? [[1, 8]] : [[16, 64], [512, 64], [512, 256]]).map(([m, r]) => deviceLinearCase(ctx, m, n, r)),
      ...(ctx.emu ? [16] : [16, 4096]).map((m) => deviceBatchedCase(ctx, m, n, ctx.emu ? 4 : 16, 8)),
      deviceSplrCase(ctx, ctx.emu ? 40 : 4096, n, ctx.emu ? 4 : 64),
    ];
  }
  const out: BenchCase[] = [];
  for (const m of [1, 16, 512, 4096]) for (const r of [8, 16, 64]) out.push(loraCase(ctx, m, r));
  out.push(linearCase(ctx, 512, 64), linearCase(ctx, 512, 256));
  out.push(batchedCase(ctx, 512, 16, 8));
  out.push(splrStepCase(ctx, 64, IN, 16));
  out.push(svdCase(ctx, 64), svdCase(ctx, 256));
  out.push(layerCase(ctx, false), layerCase(ctx, true));
  out.push(multiLoraCase(ctx, 8));
  return out;
}

/** lowrank.svd of a [4096, 4096] float32 matrix to `rank` (oversampling 10, 4 power iterations, float64
 * inside) against torch.svd_lowrank with the same sketch size and iterations (float32 inside). */
function svdCase(ctx: BenchContext, rank: number): BenchCase {
  let W: Tensor | undefined;
  const l = rank + 10, iters = 4;
  return {
    op: 'lowrank.svd',
    shape: `${IN}×${OUT} rank ${rank}`,
    dtype: 'float32',
    device: ctx.device,
    // the sketch's 2 + 2·iters products with W (2·l·in·out each)
    flops: (2 + 2 * iters) * 2 * l * IN * OUT,
    setup() {
      W = randn([OUT, IN], { seed: 7 });
    },
    run() {
      const r = lowrank.svd(W!, { rank, powerIters: iters });
      r.A.dispose();
      r.B.dispose();
      r.s.dispose();
    },
    teardown() {
      W?.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'lowrank.py', spec: { op: 'svd', m: OUT, n: IN, rank, iters }, label: 'torch.svd_lowrank' },
    },
  };
}
