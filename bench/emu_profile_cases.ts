// emu_profile_cases.ts — the memory-access profile of the CUDA kernels on the emulated device: each
// case runs ops on 'cuda-emu' under the emulator's profile (cuda/emu/profile.h), which rebuilds every
// warp-wide access and reports, per kernel and per code site,
//   shared memory: the wavefronts taken against the fewest the bytes need (1.00 = no bank conflicts);
//   global memory: the 32-byte sectors touched against ⌈bytes / 32⌉ (1.00 = fully coalesced).
// What a GPU's memory pipeline makes of the code, read without a GPU. It is a model (no caches, no
// timing): it says whether a kernel's access pattern can reach the bandwidth, not what it reaches.
// Shapes are the kernels' steady state at emulator size: whole tiles, aligned rows.
// Used by bench/emu_profile.ts (the table) and test/emu_profile.test.ts (the bounds kernels are held to).
import {
  add, mul, exp, where, gt, sum, max, mean, softmax, logSoftmax, crossEntropy, argmax, matmul, randn, tensor, cast,
  contiguous, lowrank, tidy, type Tensor, type DType,
} from '../lib/index';
import { native, type GemmKernel } from '../lib/native';

const device = 'cuda-emu';

export interface Counts { requests: number; actual: number; ideal: number; bytes: number }
export interface SiteProfile {
  offset: string; module: string; space: 'shared' | 'global'; access: 'load' | 'store'; width: number; counts: Counts;
  /** file:line (function) when the binary has line tables (STRUCTURA_EMU_LINES), else the function */
  where?: string;
}
export interface KernelProfile {
  name: string; launches: number;
  shared: { loads: Counts; stores: Counts };
  global: { loads: Counts; stores: Counts };
  sites: SiteProfile[];
}

/** Runs `fn` with the profile on and returns what the launches it made did (every kernel, every site). */
export function profileOf(fn: () => void): KernelProfile[] {
  const n = native();
  n.emuProfile('start');
  try {
    fn();
    return (JSON.parse(n.emuProfile('report')) as { kernels: KernelProfile[] }).kernels;
  } finally {
    n.emuProfile('stop');
  }
}

/** actual / ideal (1 when nothing was asked for): wavefronts per ideal one, or sectors per ideal one. */
export const factor = (c: Counts): number => (c.ideal ? c.actual / c.ideal : 1);

const rnd = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype, device });
/** A leaf that gets a gradient (the backward cases). */
const leaf = (shape: number[], seed: number, dtype: DType) => randn(shape, { seed, dtype, device, requiresGrad: true });
/** Backward of sum(y · a fixed random weight) into the leaves; their gradients, to be read. */
function grads(y: Tensor, leaves: Tensor[]): Tensor[] {
  sum(mul(y, rnd(y.shape as number[], 99, y.dtype))).backward();
  return leaves.map((t) => t.grad!);
}

/** `fn` with one process-wide kernel switch set, restored after. */
function withSetting<T>(set: (v: T) => T, v: T, fn: () => void): () => void {
  return () => {
    const old = set(v);
    try {
      fn();
    } finally {
      set(old);
    }
  };
}
const gemmKernel = (k: GemmKernel, fn: () => void) => withSetting((v: GemmKernel) => native().setGemmKernel(v), k, fn);
const decodeKernel = (v: 1 | 2, fn: () => void) => withSetting((x: 0 | 1 | 2) => native().setDecodeKernel(x), v, fn);
const loraDecode = (m: 'fused' | 'chain', fn: () => void) =>
  withSetting((x: 'fused' | 'chain') => native().setLoraDecode(x), m, fn);

/** A case: its ops run inside tidy, so every tensor it makes is freed. */
export interface ProfileCase { name: string; run: () => void }
const c = (name: string, body: () => Tensor | Tensor[] | void): ProfileCase => ({
  name,
  run: () => tidy(() => {
    const r = body();
    for (const t of Array.isArray(r) ? r : r ? [r] : []) t.data();
  }),
});

/** Every CUDA kernel family at emulator size (the decode and lora shapes at in = out = 256). */
export function profileCases(): ProfileCase[] {
  const bf = 'bfloat16' as const;
  const loraArgs = (m: number, k: number, n: number, r: number) =>
    [rnd([m, k], 1, bf), rnd([n, k], 2, bf), rnd([r, k], 3, bf), rnd([n, r], 4, bf)] as const;
  return [
    // elementwise (cuda/elementwise.cu)
    c('add f32 [65536] (vec4)', () => add(rnd([65536], 1), rnd([65536], 2))),
    c('add f32 [256, 256] + [256] (broadcast)', () => add(rnd([256, 256], 1), rnd([256], 2))),
    c('add f32 [256, 256] + [256, 1] (broadcast)', () => add(rnd([256, 256], 1), rnd([256, 1], 2))),
    c('mul bf16 [65536]', () => mul(rnd([65536], 1, bf), rnd([65536], 2, bf))),
    c('exp f32 [65536]', () => exp(rnd([65536], 1))),
    c('exp bf16 [65536]', () => exp(rnd([65536], 1, bf))),
    c('where f32 [256, 256]', () => { const a = rnd([256, 256], 1); return where(gt(a, 0), a, rnd([256, 256], 2)); }),
    // copies (cuda/copy.cu)
    c('transpose f32 [256, 384] → contiguous', () => contiguous(rnd([256, 384], 1).T)),
    c('cast f32 → bf16 [65536]', () => cast(rnd([65536], 1), bf)),
    // reductions (cuda/reduce.cu)
    c('sum f32 [64, 4096] over rows', () => sum(rnd([64, 4096], 1), -1)),
    c('sum f32 [4096, 64] over columns', () => sum(rnd([4096, 64], 1), 0)),
    c('sum f32 [262144] (all)', () => sum(rnd([262144], 1))),
    c('max f32 [64, 4096] over rows', () => max(rnd([64, 4096], 1), -1)),
    c('mean bf16 [64, 4096] over rows', () => mean(rnd([64, 4096], 1, bf), -1)),
    c('argmax f32 [64, 4096]', () => argmax(rnd([64, 4096], 1), -1)),
    c('softmax f32 [64, 4096]', () => softmax(rnd([64, 4096], 1))),
    c('softmax bf16 [64, 4096]', () => softmax(rnd([64, 4096], 1, bf))),
    c('logSoftmax f32 [64, 1000]', () => logSoftmax(rnd([64, 1000], 1))),
    c('crossEntropy f32 [64, 4096]', () =>
      crossEntropy(rnd([64, 4096], 1), tensor(Int32Array.from({ length: 64 }, (_, i) => (i * 37) % 4096), { dtype: 'int32', device }))),
    // the tile GEMMs (cuda/dense.cu), bf16 x·Wᵀ 256×256×256 on each kernel, and the other layouts
    c('matmul bf16 256×256×256 x·Wᵀ (mma)', gemmKernel('mma', () => matmul(rnd([256, 256], 1, bf), rnd([256, 256], 2, bf).T))),
    c('matmul bf16 256×256×256 x·Wᵀ (wgmma)', gemmKernel('wgmma', () => matmul(rnd([256, 256], 1, bf), rnd([256, 256], 2, bf).T))),
    c('matmul bf16 256×256×256 x·Wᵀ (wgmma-tma)', gemmKernel('wgmma-tma', () => matmul(rnd([256, 256], 1, bf), rnd([256, 256], 2, bf).T))),
    c('matmul bf16 256×256×256 x·W (mma)', gemmKernel('mma', () => matmul(rnd([256, 256], 1, bf), rnd([256, 256], 2, bf)))),
    c('matmul bf16 256×256×256 xᵀ·W (mma)', gemmKernel('mma', () => matmul(rnd([256, 256], 1, bf).T, rnd([256, 256], 2, bf)))),
    c('matmul f16 256×256×256 x·W (wgmma)', gemmKernel('wgmma', () => matmul(rnd([256, 256], 1, 'float16'), rnd([256, 256], 2, 'float16')))),
    c('matmul f32 128×256×128 (SIMT)', () => matmul(rnd([128, 256], 1), rnd([256, 128], 2))),
    c('matmul f32 128×256×128 x·Wᵀ (SIMT)', () => matmul(rnd([128, 256], 1), rnd([128, 256], 2).T)),
    // decode (M ≤ 16): W streamed once
    c('matmul bf16 1×512×512 x·Wᵀ (decode v1)', decodeKernel(1, () => matmul(rnd([1, 512], 1, bf), rnd([512, 512], 2, bf).T))),
    c('matmul bf16 16×512×512 x·Wᵀ (decode v1)', decodeKernel(1, () => matmul(rnd([16, 512], 1, bf), rnd([512, 512], 2, bf).T))),
    c('matmul bf16 1×512×512 x·Wᵀ (decode v2)', decodeKernel(2, () => matmul(rnd([1, 512], 1, bf), rnd([512, 512], 2, bf).T))),
    c('matmul bf16 1×512×512 x·W (N-major decode)', () => matmul(rnd([1, 512], 1, bf), rnd([512, 512], 2, bf))),
    c('matmul f32 1×512×512 x·Wᵀ', () => matmul(rnd([1, 512], 1), rnd([512, 512], 2).T)),
    // lowrank (cuda/lowrank.cu and the GEMM epilogue)
    c('lora bf16 M=1 512→512 r=16 (fused)', loraDecode('fused', () => {
      const [x, W, A, B] = loraArgs(1, 512, 512, 16);
      return lowrank.lora(x, W, A, B, { scale: 0.5 });
    })),
    c('lora bf16 M=16 512→512 r=16 (chain)', loraDecode('chain', () => {
      const [x, W, A, B] = loraArgs(16, 512, 512, 16);
      return lowrank.lora(x, W, A, B, { scale: 0.5 });
    })),
    c('lora f32 M=1 512→512 r=16', () => {
      const x = rnd([1, 512], 1), W = rnd([512, 512], 2), A = rnd([16, 512], 3), B = rnd([512, 16], 4);
      return lowrank.lora(x, W, A, B, { scale: 0.5 });
    }),
    c('lora f32 M=16 512→512 r=16', () => {
      const x = rnd([16, 512], 1), W = rnd([512, 512], 2), A = rnd([16, 512], 3), B = rnd([512, 16], 4);
      return lowrank.lora(x, W, A, B, { scale: 0.5 });
    }),
    c('lora bf16 M=256 256→256 r=16', () => {
      const [x, W, A, B] = loraArgs(256, 256, 256, 16);
      return lowrank.lora(x, W, A, B, { scale: 0.5 });
    }),
    c('loraBatched bf16 M=16 512→512 r=16 ×4', () => {
      const x = rnd([16, 512], 1, bf), W = rnd([512, 512], 2, bf), A = rnd([4, 16, 512], 3, bf), B = rnd([4, 512, 16], 4, bf);
      const ids = tensor(Int32Array.from({ length: 16 }, (_, i) => (i % 5) - 1), { dtype: 'int32', device });
      return lowrank.loraBatched(x, W, A, B, ids, { scale: 0.5 });
    }),
    c('loraMixture bf16 M=16 512→512 r=16 ×4', () => {
      const x = rnd([16, 512], 1, bf), W = rnd([512, 512], 2, bf), A = rnd([4, 16, 512], 3, bf), B = rnd([4, 512, 16], 4, bf);
      return lowrank.loraMixture(x, W, A, B, rnd([16, 4], 5, bf), { scale: 0.5 });
    }),
    c('sparsePlusLowRank bf16 M=64 256→256 r=16 5%', () => {
      const n = 256, picked: number[] = [];
      for (let f = 0; f + 20 <= n * n; f += 20) picked.push(f + ((f * 7) % 19));
      const S = { indices: tensor(Int32Array.from(picked), { dtype: 'int32', device }), values: rnd([picked.length], 5, bf), shape: [n, n] as [number, number] };
      return lowrank.sparsePlusLowRank(rnd([64, n], 1, bf), rnd([16, n], 2, bf), rnd([n, 16], 3, bf), S);
    }),
    // backward: the transposed layouts of the GEMMs, the transposed spmm and the sddmm
    c('matmul bf16 128×256×256 x·Wᵀ backward', () => {
      const x = leaf([128, 256], 1, bf), W = leaf([256, 256], 2, bf);
      return grads(matmul(x, W.T), [x, W]);
    }),
    c('lora bf16 M=128 256→256 r=16 backward', () => {
      const x = leaf([128, 256], 1, bf), W = leaf([256, 256], 2, bf), A = leaf([16, 256], 3, bf), B = leaf([256, 16], 4, bf);
      return grads(lowrank.lora(x, W, A, B, { scale: 0.5 }), [x, W, A, B]);
    }),
    c('sparsePlusLowRank bf16 M=64 256→256 r=16 5% backward', () => {
      const n = 256, picked: number[] = [];
      for (let f = 0; f + 20 <= n * n; f += 20) picked.push(f + ((f * 7) % 19));
      const values = leaf([picked.length], 5, bf), x = leaf([64, n], 1, bf);
      const S = { indices: tensor(Int32Array.from(picked), { dtype: 'int32', device }), values, shape: [n, n] as [number, number] };
      return grads(lowrank.sparsePlusLowRank(x, rnd([16, n], 2, bf), rnd([n, 16], 3, bf), S), [x, values]);
    }),
    c('linear-style f32 backward: bias gradient (sum over rows)', () => {
      const x = leaf([256, 128], 1, 'float32'), W = leaf([64, 128], 2, 'float32'), b = leaf([64], 3, 'float32');
      return grads(add(matmul(x, W.T), b), [x, W, b]);
    }),
  ];
}
