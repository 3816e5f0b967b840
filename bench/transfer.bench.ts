// transfer.bench.ts — host↔device copies of 2^26 float32 (256 MiB) from pageable host memory, as
// t.to('cuda') and t.to('cpu') do them: through cuda/runtime.cu's two pinned staging buffers (8 MiB
// chunks; the default for copies of ≥ 32 MiB), against the driver's own staging of the same copy
// (setCopyStaging(0), same process) and PyTorch's .to() from pageable and from pinned memory (CUDA
// events). Issue 3 asks for pinned staging of large copies: this says whether ours pays.
// Also clone() of 2^26 float32 on the device (cuda/copy.cu's copy_bytes kernel) against the driver's
// cudaMemcpyAsync of the same bytes (setDeviceCopy('driver'), same process) and PyTorch's copy_: the
// copy the bench uses as its DRAM-bandwidth yardstick (bench/bandwidth.ts).
// On 'cuda-emu' (--quick only) 2^22 elements, the staging threshold lowered to 1 MiB.
import type { BenchCase, BenchContext } from './run';
import { native } from '../lib/native';
import { randn, type Tensor } from '../lib/index';
import { copyBandwidthBaseline, copyElements } from './bandwidth';
import { switched } from './switches';

function transferCase(ctx: BenchContext, dir: 'h2d' | 'd2h'): BenchCase {
  const n = ctx.emu ? 1 << 22 : 1 << 26;
  const threshold = ctx.emu ? 1 << 20 : 32 << 20;
  let src: Tensor | undefined;
  const once = () => (dir === 'h2d' ? src!.to(ctx.device) : src!.to('cpu')).dispose();
  return {
    op: dir === 'h2d' ? "to(device)" : "to('cpu')",
    shape: `2^${Math.log2(n)}`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 4 * n,
    setup() {
      src = randn([n], { seed: 1, device: dir === 'h2d' ? 'cpu' : ctx.device });
      native().setCopyStaging(threshold);
    },
    run: once,
    teardown() {
      src?.dispose();
      native().setCopyStaging(32 << 20);
    },
    baselines: {
      driver: switched("the driver's pageable path (no staging of ours)", (b: number) => native().setCopyStaging(b), 0, once),
      'torch-cuda': { kind: 'torch', script: 'cuda.py', spec: { op: dir, n, dtype: 'float32' }, label: `torch ${dir} from pageable memory` },
      'torch-pinned': { kind: 'torch', script: 'cuda.py', spec: { op: dir, n, dtype: 'float32', pinned: true }, label: `torch ${dir} from pinned memory` },
    },
  };
}

function cloneCase(ctx: BenchContext): BenchCase {
  const n = copyElements(ctx);
  const base = copyBandwidthBaseline(ctx);
  return {
    op: 'clone()',
    shape: `2^${Math.log2(n)}`,
    dtype: 'float32',
    device: ctx.device,
    bytes: 2 * 4 * n,
    setup: base.setup,
    run: base.run,
    teardown: base.teardown,
    baselines: {
      driver: switched("the driver's device-to-device cudaMemcpyAsync", (m: 'kernel' | 'driver') => native().setDeviceCopy(m), 'driver', base.run, 2 * 4 * n),
      'torch-copy': { kind: 'torch', script: 'cuda.py', spec: { op: 'copy', n, dtype: 'float32' }, label: 'copy_', bytes: 2 * 4 * n },
    },
  };
}

export function cases(ctx: BenchContext): BenchCase[] {
  if (!ctx.onDevice) return [];
  return [transferCase(ctx, 'h2d'), transferCase(ctx, 'd2h'), cloneCase(ctx)];
}
