// reduce.bench.ts — on a device (cuda/reduce.cu), bandwidth-bound, each against PyTorch on the same
// shapes (bench/torch/cuda.py, CUDA events) and the device's own copy bandwidth (bench/bandwidth.ts):
//   sum over the last axis of [4096, 4096] float32 (one read of 64 MiB)
//   softmax over the last axis of [4096, 4096] float32 and bfloat16 (one read, one write)
//   crossEntropy of [4096, 32768] float32 logits (a 32k vocabulary) against int32 labels (one read)
// On 'cuda-emu' (--quick only) the same ops on [64, 96].
// On the CPU, against PyTorch in the same run (bench/torch/core.py): sum of [4096, 4096] float32 over
// each axis (rows: the SIMD row kernels; columns: eight rows a pass into double accumulators), sum of
// [2048, 2048] bfloat16 and max of float32 over rows (in cache: the kernels, not memory, decide), softmax
// of [4096, 4096] float32 and bfloat16 (row by row through a float32 row), crossEntropy of
// [1024, 32768] float32, the same with class weights forward and backward, and mseLoss of two
// [2048, 1024] float32 (one fused pass).
import type { BenchCase, BenchContext } from './run';
import { sum, max, softmax, crossEntropy, mseLoss, randn, rand, tensor, type Tensor } from '../lib/index';
import { copyBandwidthBaseline } from './bandwidth';

function cpuCase(ctx: BenchContext, op: 'sum' | 'max' | 'softmax' | 'crossEntropy' | 'mseLoss', rows: number, cols: number, dtype: DT, axis = -1): BenchCase {
  let x: Tensor | undefined, labels: Tensor | undefined, y: Tensor | undefined;
  const n = rows * cols;
  return {
    op,
    shape: op === 'crossEntropy' || op === 'mseLoss' ? `[${rows}, ${cols}]` : `[${rows}, ${cols}] axis ${axis}`,
    dtype,
    device: ctx.device,
    bytes: (op === 'softmax' || op === 'mseLoss' ? 2 : 1) * size[dtype] * n,
    setup() {
      x = randn([rows, cols], { seed: 1, dtype });
      if (op === 'crossEntropy') labels = tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % cols), { dtype: 'int32' });
      if (op === 'mseLoss') y = randn([rows, cols], { seed: 2, dtype });
    },
    run() {
      (op === 'sum' ? sum(x!, axis) : op === 'max' ? max(x!, axis) : op === 'softmax' ? softmax(x!, -1) : op === 'mseLoss' ? mseLoss(x!, y!) : crossEntropy(x!, labels!)).dispose();
    },
    teardown() {
      x?.dispose();
      labels?.dispose();
      y?.dispose();
    },
    baselines: {
      torch: {
        kind: 'torch',
        script: 'core.py',
        spec: { op: op === 'crossEntropy' ? 'cross_entropy' : op === 'mseLoss' ? 'mse' : op, m: rows, n: cols, dtype, axis },
        label: op === 'sum' ? `x.sum(${axis})` : op === 'max' ? `x.amax(${axis})` : op === 'softmax' ? 'torch.softmax(x, -1)' : op === 'mseLoss' ? 'F.mse_loss' : 'F.cross_entropy',
      },
    },
  };
}

type DT = 'float32' | 'bfloat16';
const size: Record<DT, number> = { float32: 4, bfloat16: 2 };

function rowCase(ctx: BenchContext, op: 'sum' | 'softmax', rows: number, cols: number, dtype: DT): BenchCase {
  let x: Tensor | undefined;
  const n = rows * cols;
  return {
    op,
    shape: `[${rows}, ${cols}] axis -1`,
    dtype,
    device: ctx.device,
    bytes: (op === 'sum' ? 1 : 2) * size[dtype] * n,
    setup() {
      x = randn([rows, cols], { seed: 1, device: ctx.device, dtype });
    },
    run() {
      (op === 'sum' ? sum(x!, -1) : softmax(x!, -1)).dispose();
    },
    teardown() {
      x?.dispose();
    },
    baselines: {
      copy: copyBandwidthBaseline(ctx),
      'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op, m: rows, n: cols, dtype }, label: `torch ${op}(x, -1)` },
    },
  };
}

function crossEntropyCase(ctx: BenchContext, rows: number, classes: number): BenchCase {
  let logits: Tensor | undefined, labels: Tensor | undefined;
  return {
    op: 'crossEntropy',
    shape: `[${rows}, ${classes}]`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 4 * rows * classes,
    setup() {
      logits = randn([rows, classes], { seed: 1, device: ctx.device });
      labels = tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % classes), { dtype: 'int32', device: ctx.device });
    },
    run() {
      crossEntropy(logits!, labels!).dispose();
    },
    teardown() {
      logits?.dispose();
      labels?.dispose();
    },
    baselines: {
      copy: copyBandwidthBaseline(ctx),
      'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'cross_entropy', m: rows, n: classes, dtype: 'float32' }, label: 'F.cross_entropy' },
    },
  };
}

/** crossEntropy of [rows, classes] float32 with class weights (rand [classes]), forward and backward,
 * against F.cross_entropy(weight=…) and its backward: the weighted kernels' own loops. */
function weightedCrossEntropyCase(ctx: BenchContext, rows: number, classes: number): BenchCase {
  let x: Tensor | undefined, labels: Tensor | undefined, w: Tensor | undefined;
  return {
    op: 'crossEntropy',
    shape: `[${rows}, ${classes}] weighted, fwd+bwd`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 3 * 4 * rows * classes,
    setup() {
      x = randn([rows, classes], { seed: 1, requiresGrad: true });
      labels = tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7919) % classes), { dtype: 'int32' });
      w = rand([classes], { seed: 2 });
    },
    run() {
      const l = crossEntropy(x!, labels!, { weight: w! });
      l.backward();
      l.dispose();
      x!.zeroGrad();
    },
    teardown() {
      x?.dispose();
      labels?.dispose();
      w?.dispose();
    },
    baselines: {
      torch: { kind: 'torch', script: 'core.py', spec: { op: 'cross_entropy_weighted', m: rows, n: classes, dtype: 'float32' }, label: 'F.cross_entropy(weight=w), backward' },
    },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (!ctx.onDevice)
    return [
      cpuCase(ctx, 'sum', 4096, 4096, 'float32', -1),
      cpuCase(ctx, 'sum', 4096, 4096, 'float32', 0),
      cpuCase(ctx, 'sum', 2048, 2048, 'bfloat16', -1),
      cpuCase(ctx, 'max', 2048, 2048, 'float32', -1),
      cpuCase(ctx, 'softmax', 4096, 4096, 'float32'),
      cpuCase(ctx, 'softmax', 4096, 4096, 'bfloat16'),
      cpuCase(ctx, 'crossEntropy', 1024, 32768, 'float32'),
      weightedCrossEntropyCase(ctx, 1024, 32768),
      cpuCase(ctx, 'mseLoss', 2048, 1024, 'float32'),
    ];
  const [r, c] = ctx.emu ? [64, 96] : [4096, 4096];
  return [
    rowCase(ctx, 'sum', r, c, 'float32'),
    rowCase(ctx, 'softmax', r, c, 'float32'),
    rowCase(ctx, 'softmax', r, c, 'bfloat16'),
    crossEntropyCase(ctx, r, ctx.emu ? 96 : 32768),
  ];
}
