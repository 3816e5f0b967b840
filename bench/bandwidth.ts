// bandwidth.ts — the device's measured DRAM bandwidth as a bench baseline: a device-to-device copy of
// 2^26 float32 (256 MiB each way, far past the L2 cache) with Tensor.clone(), which on a device is
// cuda/copy.cu's copy_bytes kernel (csrc/device.cc device_copy_d2d; the driver's memcpy was 1.7× slower
// on an H200, see transfer.bench.ts). One call moves 2·4·2^26 bytes (read and write). The
// cases comparing with it state their own bytes, so the ratio is their GB/s over the copy's: the
// fraction of attainable DRAM bandwidth (issue 3: add ≥ 85%; issue 5: decode lora ≥ 80%).
import type { BenchContext, LocalBaseline } from './run';
import { randn, type Tensor } from '../lib/index';

/** Elements of the copy: 2^26 on a GPU, 2^12 on cuda-emu (a smoke test). */
export const copyElements = (ctx: BenchContext) => (ctx.emu ? 1 << 12 : 1 << 26);

export function copyBandwidthBaseline(ctx: BenchContext): LocalBaseline {
  const n = copyElements(ctx);
  let src: Tensor | undefined;
  return {
    kind: 'local',
    label: `device-to-device copy of 2^${Math.log2(n)} float32 (clone)`,
    bytes: 2 * 4 * n,
    setup() {
      src = randn([n], { seed: 7, device: ctx.device });
    },
    run() {
      src!.clone().dispose();
    },
    teardown() {
      src?.dispose();
      src = undefined;
    },
  };
}
