// profile.ts — one GPU product to put under a profiler (scripts/gpu-check.sh run ncu): a warm-up call,
// then `calls` timed ones, synchronized at the end; nothing else runs on the device.
//
//   node --import tsx bench/profile.ts <case> [calls] [device]   (device: cuda, default; cuda-emu
//                                                                 runs the same at 64 for a smoke test)
//     gemm:<kernel>   bfloat16 x·Wᵀ 4096×4096×4096 forced onto <kernel> (mma, wgmma, wgmma-tma)
//     decode:<v>      bfloat16 x·Wᵀ 1×4096×4096 on decode kernel v1 or v2
//     decode-nmajor   bfloat16 x·W 1×4096×4096, W stored [K, N] (the N-major decode kernel)
//     lora-decode     bfloat16 lora M = 1, 4096→4096, r = 16 (its chain of three launches)
// Prints the case and the mean wall time per call (host clock; for the profiler's sake, not a bench).
import { cuda, lowrank, matmul, randn, type Tensor } from '../lib/index';
import { native } from '../lib/native';

const [name = '', callsArg = '3', device = 'cuda'] = process.argv.slice(2);
const calls = Math.max(1, Number(callsArg) | 0);
const S = device === 'cuda-emu' ? 64 : 4096;  // 4096 in the comments above
const bf16 = (shape: number[], seed: number) => randn(shape, { seed, dtype: 'bfloat16', device });

function setup(): () => Tensor {
  const [kind, arg] = name.split(':');
  if (kind === 'gemm') {
    if (!['mma', 'wgmma', 'wgmma-tma'].includes(arg)) throw new RangeError(`gemm:<kernel>: mma, wgmma or wgmma-tma, got '${arg}'`);
    native().setGemmKernel(arg as 'mma' | 'wgmma' | 'wgmma-tma');
    const x = bf16([S, S], 1), W = bf16([S, S], 2);
    return () => matmul(x, W.T);
  }
  if (kind === 'decode') {
    if (arg !== '1' && arg !== '2') throw new RangeError(`decode:<v>: 1 or 2, got '${arg}'`);
    native().setDecodeKernel(Number(arg) as 1 | 2);
    const x = bf16([1, S], 1), W = bf16([S, S], 2);
    return () => matmul(x, W.T);
  }
  if (kind === 'decode-nmajor') {  // x·W, W stored [K, N]
    const x = bf16([1, S], 1), W = bf16([S, S], 2);
    return () => matmul(x, W);
  }
  if (kind === 'lora-decode') {
    const x = bf16([1, S], 1), W = bf16([S, S], 2), A = bf16([16, S], 3), B = bf16([S, 16], 4);
    return () => lowrank.lora(x, W, A, B, { scale: 0.5 });
  }
  throw new RangeError(`unknown case '${name}' (gemm:<kernel>, decode:<v>, decode-nmajor, lora-decode)`);
}

if (device === 'cuda' && !cuda.isAvailable()) throw new Error('bench/profile.ts needs a CUDA device (or cuda-emu)');
const run = setup();
run().dispose();
cuda.synchronize();
const t0 = performance.now();
for (let i = 0; i < calls; i++) run().dispose();
cuda.synchronize();
console.log(`${name}: ${((performance.now() - t0) / calls).toFixed(4)} ms a call (${calls} calls)`);
