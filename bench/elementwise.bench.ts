// elementwise.bench.ts — on a device: add of two float32 tensors of 2^26 elements (cuda/elementwise.cu),
// one call moving 3·4·n bytes (two reads, one write), against the device's own device-to-device copy
// of the same n (2·4·n bytes; bench/bandwidth.ts) — the ratio is the add's GB/s over the copy's, and
// the target (issue 3) is at least 85% — and against PyTorch's a + b and copy_ on the same n (CUDA
// events). On 'cuda-emu' (--quick only) n = 2^12. No CPU cases: the CPU bench is dense and lowrank.
import type { BenchCase, BenchContext } from './run';
import { add, randn, type Tensor } from '../lib/index';
import { copyBandwidthBaseline, copyElements } from './bandwidth';

export function cases(ctx: BenchContext): BenchCase[] {
  if (!ctx.onDevice) return [];
  const n = copyElements(ctx);
  let a: Tensor | undefined, b: Tensor | undefined;
  return [
    {
      op: 'add',
      shape: `2^${Math.log2(n)}`,
      dtype: 'float32',
      device: ctx.device,
      bytes: 3 * 4 * n,
      setup() {
        a = randn([n], { seed: 1, device: ctx.device });
        b = randn([n], { seed: 2, device: ctx.device });
      },
      run() {
        add(a!, b!).dispose();
      },
      teardown() {
        a?.dispose();
        b?.dispose();
      },
      baselines: {
        copy: copyBandwidthBaseline(ctx),
        'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: 'add', n, dtype: 'float32' }, label: 'a + b' },
        'torch-copy': { kind: 'torch', script: 'cuda.py', spec: { op: 'copy', n, dtype: 'float32' }, label: 'copy_', bytes: 2 * 4 * n },
      },
      targets: ctx.emu ? undefined : [{ baseline: 'copy', min: 0.85, goal: 'float32 add of 2^26 ≥ 85% of the device-to-device copy bandwidth (issue 3)' }],
    },
  ];
}
