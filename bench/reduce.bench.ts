// reduce.bench.ts — on a device (cuda/reduce.cu), bandwidth-bound, each against PyTorch on the same
// shapes (bench/torch/cuda.py, CUDA events) and the device's own copy bandwidth (bench/bandwidth.ts):
//   sum over the last axis of [4096, 4096] float32 (one read of 64 MiB)
//   softmax over the last axis of [4096, 4096] float32 and bfloat16 (one read, one write)
//   crossEntropy of [4096, 32768] float32 logits (a 32k vocabulary) against int32 labels (one read)
// On 'cuda-emu' (--quick only) the same ops on [64, 96]. No CPU cases (the CPU bench is dense and lowrank).
import type { BenchCase, BenchContext } from './run';
import { sum, softmax, crossEntropy, randn, tensor, type Tensor } from '../lib/index';
import { copyBandwidthBaseline } from './bandwidth';

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

export function cases(ctx: BenchContext): BenchCase[] {
  if (!ctx.onDevice) return [];
  const [r, c] = ctx.emu ? [64, 96] : [4096, 4096];
  return [
    rowCase(ctx, 'sum', r, c, 'float32'),
    rowCase(ctx, 'softmax', r, c, 'float32'),
    rowCase(ctx, 'softmax', r, c, 'bfloat16'),
    crossEntropyCase(ctx, r, ctx.emu ? 96 : 32768),
  ];
}
