// native.ts — the typed interface of the addon (csrc/) and its loader.
//
// Tensors cross the boundary as opaque handles (numbers naming a slot of the addon's handle table).
// Every function validates its arguments again in C++ (a bad call from plain JS throws a
// TypeError/RangeError, never crashes).
// The loader explains itself: which binary it loaded, and why CUDA is unavailable.
import * as path from 'node:path';
import * as fs from 'node:fs';

/** An opaque native tensor handle. */
export type Handle = number & { readonly __structuraHandle: unique symbol };
/** A checked sparsity pattern of S (lowrankSparsePattern): accepted wherever an `indices` handle is. */
export type PatternHandle = { readonly __structuraPattern: unique symbol };

/** dtype codes shared with csrc/tensor.h (enum DType). */
export const DTYPE_CODES = {
  float32: 0,
  float64: 1,
  float16: 2,
  bfloat16: 3,
  int32: 4,
  uint8: 5,
  uint16: 6,
} as const;
export type DType = keyof typeof DTYPE_CODES;
/** Bytes per element of each dtype (csrc/tensor.cc dtype_size). */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { float32: 4, float64: 8, float16: 2, bfloat16: 2, int32: 4, uint8: 1, uint16: 2 };

/** device type codes shared with csrc/tensor.h (enum DeviceType). */
export const DEVICE_CODES = { cpu: 0, cuda: 1, 'cuda-emu': 2 } as const;

export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'relu' | 'gelu' | 'silu' | 'tanh' | 'sigmoid'
  | 'square' | 'reciprocal' | 'sign' | 'step' | 'erf' | 'sin' | 'cos'
  // derivatives used by the gradients: gelu'(x), silu'(x)
  | 'gelu_grad' | 'silu_grad'
  // scalar forms: x + alpha, x * alpha, x ** alpha, alpha - x, alpha / x, clamp(x, alpha, beta)
  | 'add_scalar' | 'mul_scalar' | 'pow_scalar' | 'rsub_scalar' | 'rdiv_scalar' | 'clamp';
export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  // comparisons give 1 or 0 in the inputs' dtype
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type ReduceOp = 'sum' | 'mean' | 'max' | 'min';

export interface BackendInfo {
  /** Tensors can live on 'cuda' (compiled in and a GPU found); otherwise `reason` says why. */
  cuda: boolean;
  cudaCompiled: boolean;
  /** The emulated device 'cuda-emu' is compiled in (CMake option STRUCTURA_CUDA_EMU, on by default; not in node-gyp builds). */
  cudaEmu: boolean;
  reason?: string;
  devices: { name: string; cc: string; memory: number }[];
  /** The SIMD level in use (STRUCTURA_SIMD may cap it below the hardware's). */
  simd: 'avx512' | 'avx2' | 'scalar';
  /** The SIMD level the CPU has. */
  simdHardware: 'avx512' | 'avx2' | 'scalar';
  threads: number;
  version: string;
  binary: string;
  /** Kernels switched off by STRUCTURA_CUDA_DISABLE (README, "Switching kernels off"); empty by default. */
  cudaDisabled: string[];
  cudaRuntimeVersion?: number;
  driverVersion?: number;
}

export interface MemoryInfo {
  /** Per device: live buffers and their bytes; devices add their caching allocator's free cached bytes and blocks, and all bytes reserved from the device (live + cached, in size classes); the CPU its cache of large buffers (cached, cachedBlocks). */
  [device: string]: { buffers: number; bytes: number; cached?: number; cachedBlocks?: number; reserved?: number };
}

/** The tensor-core kernels of cuda/dense.cu that setGemmKernel can force. */
export type GemmKernel = 'auto' | 'mma' | 'wgmma' | 'wgmma-tma';

export interface NativeBinding {
  // ---- tensors ----
  /** A new tensor holding a copy of `data` (its element type must match dtype; float16/bfloat16 take Uint16Array bits or Float32Array values). */
  fromArray(dtype: number, shape: number[], data: ArrayBufferView, device: number, deviceIndex: number): Handle;
  empty(dtype: number, shape: number[], device: number, deviceIndex: number): Handle;
  full(dtype: number, shape: number[], value: number, device: number, deviceIndex: number): Handle;
  /** start + i·step for i < n. */
  arange(dtype: number, start: number, step: number, n: number, device: number, deviceIndex: number): Handle;
  /** Counter-based (splitmix64(seed, index)) so every device draws the same numbers. kind: 'normal' | 'uniform'. */
  random(kind: 'normal' | 'uniform', dtype: number, shape: number[], seed: number, device: number, deviceIndex: number): Handle;
  /** A view of h's storage with the given shape, strides and offset (elements); bounds are checked. */
  view(h: Handle, shape: number[], strides: number[], offset: number): Handle;
  /** view() with [shape[0..ndim), strides[0..ndim)] in one Float64Array (no arrays read element by element). */
  viewPacked(h: Handle, layout: Float64Array, ndim: number, offset: number): Handle;
  /** A second handle on h's storage with h's layout. */
  alias(h: Handle): Handle;
  /** The elements in logical (row-major) order. float16/bfloat16 read as Float32Array. */
  read(h: Handle): Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;
  /** The value of a one-element tensor. */
  item(h: Handle): number;
  /** The raw element bits (float16/bfloat16 as Uint16Array), for serialisation. */
  readRaw(h: Handle): Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;
  /** Releases the handle's reference to its storage. false if it was already released. */
  dispose(h: Handle): boolean;
  isDisposed(h: Handle): boolean;
  /** An id of the storage (views of one storage share it). */
  storageId(h: Handle): number;
  /** A count of the calls that may have written into the tensor's storage in place (out=, copyInto, gemm's C): it changes at least whenever the contents do. */
  version(h: Handle): number;
  contiguous(h: Handle): Handle;
  cast(h: Handle, dtype: number): Handle;
  /** Copies src (broadcast to dst's shape, cast to dst's dtype) into dst, which may be a strided view. */
  copyInto(dst: Handle, src: Handle): void;
  concat(hs: Handle[], axis: number): Handle;
  /** A contiguous copy of h on another device (host ↔ device by copy; a new handle on the same storage if h is there already). */
  to(h: Handle, device: number, deviceIndex: number): Handle;

  // ---- elementwise (csrc/ops/elementwise.cc) ----
  /** Broadcasting binary op; a and b share dtype and device. If out is given, writes there (out must be contiguous, of the broadcast shape) and returns it. */
  binary(op: BinaryOp, a: Handle, b: Handle, out?: Handle): Handle;
  unary(op: UnaryOp, a: Handle, alpha?: number, beta?: number, out?: Handle): Handle;
  /** where(cond != 0, a, b), broadcasting. */
  where(cond: Handle, a: Handle, b: Handle): Handle;
  /** x·mask/(1 − p), contiguous: element i dropped iff draw i of seed's rand() stream (float64) is < p; p = 1 drops all. */
  dropout(x: Handle, p: number, seed: number): Handle;

  // ---- reductions (csrc/ops/reduce.cc) ----
  /** Reduces over `axes` (already normalised, sorted, unique). An empty axes list reduces nothing. */
  reduce(op: ReduceOp, a: Handle, axes: number[], keepDims: boolean): Handle;
  /** Index of the max (or min) along one axis, as int32. */
  argReduce(op: 'argmax' | 'argmin', a: Handle, axis: number, keepDims: boolean): Handle;
  softmax(a: Handle, axis: number, log: boolean): Handle;
  /**
   * −log softmax(logits)[label] a row (with smoothing s: logsumexp − (1 − s)·x[label] − s·mean(x)),
   * 0 where label = ignoreIndex; logits [M, C], labels int32 [M]. reduction 0: mean over the rows not
   * ignored (with class weights [C]: divided by the sum of their labels' weights), 1: sum (both 0-d),
   * 2: none ([M]).
   */
  crossEntropy(logits: Handle, labels: Handle, ignoreIndex?: number, smoothing?: number, reduction?: 0 | 1 | 2, weight?: Handle | null): Handle;
  /** mean((pred − target)²) in one pass: CPU, float32 or float64, one shape (→ 0-d). */
  mseLoss(pred: Handle, target: Handle): Handle;
  /** d loss / d logits: row r (softmax − (1 − s)·onehot − s/C)·g_r; g 0-d (reduction 0, 1) or [M] (2). */
  crossEntropyBackward(logits: Handle, labels: Handle, g: Handle, ignoreIndex?: number, smoothing?: number, reduction?: 0 | 1 | 2, weight?: Handle | null): Handle;

  // ---- dense (csrc/ops/dense.cc on csrc/cpu/gemm) ----
  /**
   * Batched matmul with broadcast batch dimensions: a [..., M, K] (or [..., K, M] if transA), b [..., K, N] (or
   * [..., N, K] if transB) → [batch..., M, N]. A 1-D operand is numpy's vector (a [K] as [1, K], b [K] as [K, 1], that
   * dimension dropped from the result; its trans flag is ignored). float32/float64 natively; float16/bfloat16 computed
   * in float32 and rounded once; int dtypes throw a TypeError, as do differing dtypes or devices. Differing inner
   * dimensions, or batch dimensions that do not broadcast, throw a RangeError showing both shapes. Strided views are
   * read in place when each matrix has a unit stride in one of its last two dimensions.
   */
  matmul(a: Handle, b: Handle, transA: boolean, transB: boolean): Handle;
  /**
   * In place: C = alpha·op(A)·op(B) + beta·C (+ bias[j]) for 2-D float32/float64 tensors of one dtype; op(X) = Xᵀ when
   * its flag is set. C may be a strided view ([M, N]); it must not share storage with A, B or bias, nor overlap itself
   * (RangeError). beta = 0 never reads C; alpha = 0 never reads A or B. bias: [N], any stride.
   * probe (tests of the GEMM's per-block epilogue hook): 'check' returns {blocks, coverage, final} — whether the blocks
   * reported tiled C exactly once, and C held its final values when each was reported; 'throw' makes the hook throw
   * on the block holding C's last element, and that error must reach the caller.
   */
  gemm(C: Handle, A: Handle, B: Handle, alpha: number, beta: number, transA: boolean, transB: boolean,
       bias?: Handle | null, probe?: 'check' | 'throw'): void | { blocks: number; coverage: boolean; final: boolean };
  /** The GEMM's register tile (mr × nr) and K block at the current SIMD level, for dtype float32 or float64 (tests). */
  gemmBlocking(dtype: number): { mr: number; nr: number; kc: number };

  // ---- lowrank (csrc/ops/lowrank.cc on csrc/cpu/lowrank.cc) ----
  // 2-D x [M, in]; float32/float64 natively, float16/bfloat16 computed in float32 and rounded once.
  /** y = x·Wᵀ + scale·(x·A[:rank]ᵀ)·B[:, :rank]ᵀ + bias; W [out, in] (null: no base term), A [r, in], B [out, r], 1 ≤ rank ≤ r. */
  lowrankLora(x: Handle, W: Handle | null, A: Handle, B: Handle, rank: number, scale: number, bias: Handle | null): Handle;
  /** Row m: x[m]·Wᵀ + scale·(x[m]·A[ids[m]]ᵀ)·B[ids[m]]ᵀ + bias; A [E, r, in], B [E, out, r], ids int32 [M] in [−1, E). */
  lowrankLoraBatched(x: Handle, W: Handle, A: Handle, B: Handle, ids: Handle, scale: number, bias?: Handle | null): Handle;
  /** x·Wᵀ + Σ_e gates[:, e]·scale·(x·A_eᵀ)·B_eᵀ + bias; gates [M, E]. */
  lowrankLoraMixture(x: Handle, W: Handle, A: Handle, B: Handle, gates: Handle, scale: number, bias?: Handle | null): Handle;
  /** x·(B·A + S)ᵀ + bias, S [out, in] from sorted unique int32 flat indices (row·in + col) and values [nnz]. */
  lowrankSparsePlusLowRank(x: Handle, A: Handle, B: Handle, indices: Handle | PatternHandle, values: Handle, bias: Handle | null): Handle;
  /** x [M, in] → x·Sᵀ [M, out]; with transpose, g [M, out] → g·S [M, in]. */
  lowrankSpmm(x: Handle, indices: Handle | PatternHandle, values: Handle, out: number, inFeatures: number, transpose: boolean): Handle;
  /** [nnz]: Σ_m g[m, row]·x[m, col] at each entry of S (g [M, out], x [M, in]). */
  lowrankSddmm(g: Handle, x: Handle, indices: Handle | PatternHandle): Handle;
  /** S's support checked once (in range, sorted, unique), copied, and compressed for the device spmm. */
  lowrankSparsePattern(indices: Handle, rows: number, cols: number): PatternHandle;
  /** Frees a pattern's memory now; false if it was already disposed. */
  lowrankSparsePatternDispose(pattern: PatternHandle): boolean;
  /** W [out, in] ≈ B·A: randomized truncated SVD in float64; rank 0 = no rank limit, energy < 0 = none. */
  lowrankSvd(W: Handle, rank: number, energy: number, seed: number, powerIters: number): { A: Handle; B: Handle; s: Handle };

  // ---- environment ----
  backend(): Omit<BackendInfo, 'binary'>;
  memory(): MemoryInfo;
  /** Waits for the work queued on every device in use; a device error from an earlier op is thrown here. */
  synchronize(): void;
  /** Gives the caching allocator's free blocks of a device type (0 cpu: its large buffers, 1 cuda, 2 cuda-emu) back. */
  emptyCache(device: number): void;
  /** Host↔device copies of at least `bytes` go through pinned staging buffers (0: never; default 32 MiB). Returns the previous threshold. */
  setCopyStaging(bytes: number): number;
  /** How same-device copies (clone(), same-dtype cast(), copyInto()) run: 'kernel' (cuda/copy.cu, the default) or 'driver' (cudaMemcpyAsync). Returns the previous one. For the bench. */
  setDeviceCopy(mode: 'kernel' | 'driver'): 'kernel' | 'driver';
  /** Whether kernels written for it start as programmatic dependent launches (sm_90+ and the emulator, which checks them): on by default. Returns the previous setting. For the bench and tests. */
  setDependentLaunch(on: boolean): boolean;
  /** Which decode kernels (float16/bfloat16, M ≤ 16) run on the devices: 1 (the default: x·Wᵀ on plain loads) or 2 (x·Wᵀ with W streamed under an L2 prefetch hint; not yet timed on a GPU), each with the N-major kernel for x·W; 0 neither (the tile kernels take M ≤ 16). Returns the previous one. */
  setDecodeKernel(version: 0 | 1 | 2): 0 | 1 | 2;
  /** The most 128-row tiles one GEMM launch covers on the devices (1..65535, the default: grid.y's limit); taller products run as several launches. Returns the previous limit. For tests. */
  setGemmRowTiles(tiles: number): number;
  /** How lora, loraBatched and loraMixture run at decode (M ≤ 16) on the devices: 'fused' (one launch: CTAs of the product's grid make T while the others stream W; the default) or 'chain' (T's partial products, lora_t, then the product). Returns the previous one. */
  setLoraDecode(mode: 'fused' | 'chain'): 'fused' | 'chain';
  /** Which kernel runs float16 / bfloat16 products on the devices: 'auto' (mma.sync until the wgmma kernel has passed on a GPU), 'mma', 'wgmma' (sm_90 and the emulator, where the layout fits) or 'wgmma-tma' (the TMA warp-specialized wgmma kernel, the same layouts with one batch). Returns the previous one. */
  setGemmKernel(kernel: GemmKernel): GemmKernel;
  /** The emulator's memory-access profile (cuda/emu/profile.h): 'start' clears it and records every later 'cuda-emu' launch, 'stop' ends that, 'report' returns the statistics so far as JSON (an EmuProfile). Throws in a binary without 'cuda-emu'. */
  emuProfile(action: 'start' | 'stop'): void;
  emuProfile(action: 'report'): string;
  setNumThreads(n: number): void;
  /** FTZ/DAZ in the CPU pool's jobs (torch.set_flush_denormal); false where the CPU has no such mode. */
  setFlushDenormal(mode: boolean): boolean;
  getNumThreads(): number;
}

let loaded: NativeBinding | undefined;
let loadedFrom = '';

/** The package root: dist/cjs/native.js → ../.., lib/native.ts → .. */
function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 4; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'CMakeLists.txt'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..');
}

/** Loads the addon once: STRUCTURA_BINARY (a path) if set, else node-gyp-build's search (build/Release, then prebuilds/). */
export function native(): NativeBinding {
  if (loaded) return loaded;
  const root = packageRoot();
  const errors: string[] = [];
  const explicit = process.env.STRUCTURA_BINARY;
  if (explicit) {
    try {
      loaded = require(path.resolve(explicit)) as NativeBinding;
      loadedFrom = path.resolve(explicit);
      return loaded;
    } catch (e) {
      errors.push(
        fs.existsSync(path.resolve(explicit))
          ? `STRUCTURA_BINARY=${explicit}: ${(e as Error).message.split('\n')[0]}`
          : `STRUCTURA_BINARY=${explicit}: no such file (${path.resolve(explicit)}); unset STRUCTURA_BINARY to load the package's own build, or point it at an existing structura.node`,
      );
    }
  } else {
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
      loadedFrom = nodeGypBuild.resolve(root);
      loaded = require(loadedFrom) as NativeBinding;
      return loaded;
    } catch (e) {
      errors.push(`node-gyp-build(${root}): ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    'structura: could not load its native addon.\n' +
      errors.map((e) => '  - ' + e).join('\n') +
      `\n  platform: ${process.platform}-${process.arch}, node ${process.version} (Node-API ${process.versions.napi})\n` +
      '  Possible solutions:\n' +
      '  - build it from source: `npm rebuild structura` (needs cmake and a C++17 compiler; nvcc for CUDA)\n' +
      '  - without cmake, `npm rebuild structura` builds the CPU backend with npm\'s node-gyp (needs python3, make and a C++17 compiler)\n' +
      '  - or point STRUCTURA_BINARY at a structura.node you built',
  );
}

/** Where the addon was loaded from. */
export function nativePath(): string {
  native();
  return loadedFrom;
}
