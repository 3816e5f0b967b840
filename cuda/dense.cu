// dense.cu — batched dense GEMM with a fused epilogue, hand-written (no cuBLAS).
//
//   for b in [0, batch):                         (every pointer advanced by its own batch stride;
//     z   = alpha · op(A_b)·op(B_b)                a stride of 0 shares one operand across the batch)
//         + lr_scale · T_b · R_bᵀ                  rank-r term: T [M, r], R [N, r] (lora: T = x·Aᵀ)
//         + bias_b[n] + beta · C_b[m, n]           C is not read when beta == 0
//     out_b[m, n] = act(z) + residual_b[m, n]      act: none | relu | gelu (exact erf form)
//   op(A) = A [M, K] (row stride lda), or with trans_a A is stored [K, M] and op(A) = Aᵀ;
//   op(B) = B [K, N] (row stride ldb), or with trans_b B is stored [N, K] (a Linear weight) and op(B) = Bᵀ.
//   dtype of a, b, lr_t, lr_r: bf16 / f16 → tensor cores, f32 accumulation; f32 → the SIMT kernel.
//   out_dtype of out, c, bias, residual: f32, or the input dtype. Any M, N, K ≥ 1 (K = 0 gives the
//   epilogue of a zero product); no alignment is required (aligned operands take the fast loads).
//
// Versions
//   3 (this one; compiles for every architecture, runs in the emulator, NOT YET RUN ON A GPU):
//   * every kernel below that has not yet run on a GPU can be switched off (STRUCTURA_CUDA_DISABLE,
//     structura_cuda.h; the dispatch then takes the kernel it replaced), and test/gpu/probe.ts tries each
//     alone before a GPU run's suites, so that scripts/gpu-check.sh switches off those that fail; the
//     waits on other parts of the grid (mbarriers, lora's flag) trap after 10 s instead of hanging.
//   * TMA warp-specialized wgmma kernel (gemm_tma_kernel, setGemmKernel('wgmma-tma')): the wgmma
//     kernel's tile and math, operands loaded by TMA from one producer lane through 4 mbarrier-handed
//     stages, no __syncthreads in the main loop, persistent over the output tiles (one CTA an SM).
//     Batch 1.
//   * lora at decode in one launch (lora_decode_kernel, lora_decode): the decode kernel's grid plus a
//     few CTAs that make T's split-K partials and T (by ticket: the first CTAs to start), a
//     release/acquire flag to the others, which stream W meanwhile and wait only before the epilogue.
//     The chain of three launches it replaces took 22 µs for lora M = 1 on the H200 against 13.4 µs for
//     x·Wᵀ. Same bits as the chain (setLoraDecode('chain')). A dependent launch (L2 prefetch of W
//     before its wait, tickets after). ptxas (CUDA 13.0, sm_90a): bf16 60 registers, no spills; f16 48
//     registers and a 4-byte spill (an 8-byte stack frame). The default, not yet run on a GPU.
//   * split-K decode: when the 16-bit decode kernel's ceil(N/16) CTAs would be fewer than two an SM
//     (a GQA k/v projection, 4096 → 1024, has 64) and K ≥ 2048, gridDim.y slices of K (≥ 1024 each,
//     at most 8), their float32 partials through a per-device scratch, the last CTA of a column tile
//     (a counter) adding them in slice order and running the epilogue. Not yet on a GPU.
//   * float32 decode kernel (gemm_decode_f32_kernel): M ≤ 16 times Wᵀ in float32 went to the SIMT tile
//     kernel (128 rows for one); now FMA over W streamed once by 16-byte loads, a thread 4 rows of W
//     (each x element it loads serves 4), 16 rows a CTA. ptxas (CUDA 13.0, sm_90a): 78 registers for
//     M ≤ 4; 128 and a 16-byte spill for M ≤ 16 (two k-steps of loads in flight). Not yet on a GPU.
//   * float32 N-major decode kernel (gemm_decode_nmajor_f32_kernel): M ≤ 16 times W stored [K, N] in
//     float32 (x·W; dY·W), FMA with 8 rows of W in flight a thread, 32 columns a CTA. ptxas (CUDA
//     13.0, sm_90a): 76 registers for M ≤ 4, 147 for M ≤ 16, no spills. Not yet on a GPU.
//   * N-major decode kernel (gemm_decode_nmajor_kernel): M ≤ 16 times W stored [K, N] (x·W; dY·W in a
//     Linear's backward), which went to the tile kernels (1×4096×4096 bf16 0.13 ms on the H200, 0.19×
//     cuBLAS: a 128-row tile for one row, 32 CTAs). A CTA 32 columns × all of K, 16 warps over
//     16-row chunks, W by 16-byte loads, 4 chunks in flight a warp, B fragments through a per-warp
//     shared stage and ldmatrix.trans. ptxas (CUDA 13.0): 86 registers on sm_90a, 94 on sm_80, no
//     spills. The default, since it runs only instructions the H200 already ran in the mma kernel
//     (mma.sync, ldmatrix.trans) — but itself not yet on a GPU.
//   * decode kernel as a programmatic dependent launch (sm_90+): it triggers its dependents at once, and
//     before it waits for the kernels ahead it has L2 prefetch its rows of W (cp.async.bulk.prefetch),
//     so back-to-back decode products (and the kernels between them, which trigger at once too)
//     overlap their launch and ramp; lora's final product (p.pdl = 1) streams W before it waits, while
//     T = x·Aᵀ and lora_t finish (their two launches were ~9 µs of lora M = 1's 22 µs on the H200,
//     against 13.4 µs for x·Wᵀ alone).
//   * wgmma kernel for sm_90a (gemm_wgmma_kernel): x·Wᵀ layouts, CTA tile 128×256×64, two warpgroups
//     each issuing wgmma.m64n256k16 from 128-byte-swizzled K-major shared tiles (descriptors), 4
//     cp.async stages of 48 KiB, fence.proxy.async before each barrier, one wgmma group in flight;
//     158 registers, no spills (ptxas, CUDA 13.0). Runs on sm_90 (with sm_90a code in the build)
//     when asked for (setGemmKernel('wgmma')); 'auto' will pick it for N > 128, M > 64 once it has
//     passed on a GPU (kWgmmaByDefault, false until then); the caller
//     (csrc/ops/dense.cc) transposes an N-major B of a large product so that it fits. The emulator
//     runs it (cuda/emu: wgmma per warp at issue), and test/gpu/fidelity compares the emulated wgmma
//     with silicon on the next GPU run. Not yet: TMA, producer/consumer warp specialization, MN-major
//     B through the transpose bit, a coalesced (shared-memory staged) epilogue.
//   2, measured on an NVIDIA H200 (npm run bench:gpu, torch 2.11 in the same process):
//     bf16 4096³ 0.68 ms = 202 TFLOP/s = 0.30× cuBLAS (v1: 143 TFLOP/s, 0.21×), 8192³ 224 TFLOP/s;
//     f32 SIMT 4096³ 30 TFLOP/s = 0.60× torch's FP32; decode x·Wᵀ 1×4096×4096 bf16 0.0137 ms
//     (2458 GB/s, 1.27–1.80× faster than torch's F.linear over the runs). Every kernel passes
//     test/gpu there.
//   * mma main loop with its integer work taken out. Nsight Compute measured v1 bound by address
//     arithmetic (ALU the busiest pipe at 38.5%, issue slots 46.8% busy, IPC 1.89, L2 hit 85%, DRAM
//     3.5%; 5 stages instead of 3 changed nothing; bench/results/nvidia-h200-2026-11-27-ncu-gemm.txt).
//     Now each lane's ldmatrix offset inside a stage is computed once (LdsmOffsets, one register an
//     operand; the lora T·Rᵀ tiles recompute theirs, they are few) and, for k-tiles wholly inside M, N,
//     K with 16-byte aligned rows, each thread's cp.async destinations and sources (TileCopier,
//     sources advanced a k-tile at a time; edge tiles, unaligned operands and the lora tiles keep
//     load_tile); stages are a ring offset. pinned() keeps NVVM from rematerializing those offsets
//     from threadIdx inside the loop. PTX a k-tile on the interior path: 338 instructions → 119 (32
//     mma and 12 ldmatrix in both).
//   * lora's rank term in the main loop: with lr_scale == alpha the kernel runs [A | T]·[B ; Rᵀ], the
//     r extra k as K-major tiles after the A·B ones (the epilogue's per-output r-term loop made lora
//     1.6× dense on the H200; with this and T computed transposed through the decode kernel
//     (csrc/ops/lowrank.cc), lora M = 4096 takes 1.03× dense).
//   * decode kernel (M ≤ 16, x row-major times W stored [N, K], K % 8 == 0, rows 16-byte aligned): W
//     streamed with 16-byte loads straight into mma fragments, K split over 8 warps.
//   * f32 tile loads straight-line: a dynamically indexed 4-element array made the H200 load past K
//     (K % 16 == 8) while the emulator and the PTX were right.
//   ptxas (CUDA 13.0): sm_86/89/90a no spills (mma 127–128 registers, 2 CTAs an SM; f32 125–126;
//   decode 64); sm_80 spills ~0.8 KB of loads in the mma kernels (v1 did too) — untimed, no A100 yet.
//   1
//   * mma kernel (sm_80+): CTA tile 128×128×32, 8 warps as 2 (M) × 4 (N), warp tile 64×32 = 4×4
//     mma.sync m16n8k16 tiles (64 f32 accumulators a thread). 3-stage cp.async.cg ring, 16 KiB a
//     stage, 48 KiB of dynamic shared memory. Occupancy is register-bound at 2 CTAs (16 warps) an SM.
//     128×128×32 with 8 warps and 3 stages is one of CUTLASS's sm80 tensor-op tiles. K-contiguous
//     tiles (64-byte rows) are swizzled chunk ^= (row >> 1) & 3, MN-contiguous tiles (256-byte rows)
//     chunk ^= row & 7: both make the 8 rows of every ldmatrix phase hit 8 distinct 16-byte bank
//     groups. Tails (M, N, K not multiples of the tile) are zero-filled with the cp.async src-size
//     form. Operands whose rows are not 16-byte aligned (ld % 8 ≠ 0, odd base or batch stride) are
//     staged with checked scalar loads into the same swizzled layout.
//   * SIMT f32 kernel: CTA 128×128×16, 256 threads, 8×8 outputs a thread (two 4×4 quadrants 64 apart
//     so the float4 shared reads are broadcasts / contiguous), As stored k-major; float4 global loads
//     when the operand is 16-byte aligned along its contiguous dimension.
//   * Epilogue through a per-warp shared stage (mma: 32×32 at a time; wgmma: 16×256; TMA: 16×32), read
//     back as 4-column quads (one 16- or 8-byte store when aligned) in a loop that is not unrolled:
//     compact kernels (dense.cu's build 13× faster) and coalesced stores. The SIMT f32 kernel's
//     threads hold quads already: they go straight out, in the same kind of loop.
//   Not yet (v1/v2): larger mma.sync tiles (128×256) with fragment double-buffering, L2 rasterization.
// Memory goes through gptr()/dev_cast()/DYN_SMEM and launches through structura::launch, so the same
// source runs checked in the CPU emulator (cuda/emu/README.md).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdint.h>

#include "launch.cuh"
#include "lora_t.cuh"
#include "ptx.cuh"
#include "tma.cuh"
#include "structura_cuda.h"

namespace {

// ------------------------------------------------------------------------------------------------
// shapes

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kThreads = 256;
constexpr int kTileElems = kBM * kBK;                     // one operand's stage (BM == BN), 16-bit
constexpr int kStageElems = 2 * kTileElems;
constexpr size_t kMmaSmemBytes = (size_t)kStages * kStageElems * 2;  // 49152 (5 stages, 80 KiB opted in, ran no faster on an H200)
constexpr int kSBM = 128, kSBN = 128, kSBK = 16;          // SIMT f32
constexpr int kDecN = 16, kDecMaxM = 16;                  // decode: columns a CTA, rows at most

// ------------------------------------------------------------------------------------------------
// device helpers

__device__ __forceinline__ float bits_to_f32(uint16_t b, int dt) {
  return dt == STRUCTURA_DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(b)) : __half2float(__ushort_as_half(b));
}
__device__ __forceinline__ uint16_t f32_to_bits(float x, int dt) {
  return dt == STRUCTURA_DT_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x)) : __half_as_ushort(__float2half_rn(x));
}

// A global tensor of runtime dtype (f32 or a 16-bit float), read as f32.
struct AnyIn {
  dev_ptr<const float> f;
  dev_ptr<const uint16_t> h;
  int dt;
  __device__ float operator()(int64_t i) const {
    if (dt == STRUCTURA_DT_F32) return f[i];
    const uint16_t b = h[i];
    return bits_to_f32(b, dt);
  }
};
__device__ __forceinline__ AnyIn any_in(const void* p, int dt, int64_t off) {
  return AnyIn{gptr(static_cast<const float*>(p)) + (dt == STRUCTURA_DT_F32 ? off : 0),
               gptr(static_cast<const uint16_t*>(p)) + (dt == STRUCTURA_DT_F32 ? 0 : off), dt};
}

__device__ __forceinline__ float activate(float z, int act) {
  if (act == STRUCTURA_ACT_RELU) return z > 0.f ? z : 0.f;
  if (act == STRUCTURA_ACT_GELU) return 0.5f * z * (1.f + erff(z * 0.70710678118654752f));
  return z;
}

// Everything the epilogue reads, already offset to this batch.
struct Epilogue {
  dev_ptr<float> of;
  dev_ptr<uint16_t> oh;
  AnyIn c, bias, res, t, r;
  int out_dt, act, rank;
  bool has_c, has_bias, has_res;
  bool quad_ok;  // out rows 4-element-strided and 4-element aligned: four columns are one store
  float alpha, beta, scale;
  int64_t ldc, ldres, ldt, ldr;

  __device__ float value(int row, int col, float acc) const {
    float z = alpha * acc;
    if (rank > 0) {
      float s = 0.f;
      for (int q = 0; q < rank; q++) s += t((int64_t)row * ldt + q) * r((int64_t)col * ldr + q);
      z += scale * s;
    }
    if (has_bias) z += bias(col);
    if (has_c) z += beta * c((int64_t)row * ldc + col);
    z = activate(z, act);
    if (has_res) z += res((int64_t)row * ldres + col);
    return z;
  }
  // Stores one element (skipped past M / N).
  __device__ void store_one(int row, int col, float acc, int M, int N) const {
    if (row >= M || col >= N) return;
    const float v = value(row, col, acc);
    const int64_t i = (int64_t)row * ldc + col;
    if (out_dt == STRUCTURA_DT_F32) of[i] = v;
    else oh[i] = f32_to_bits(v, out_dt);
  }
  // Stores columns col … col + 3 of row (col % 4 == 0), each skipped past M / N: one 16-byte (f32) or
  // 8-byte (16-bit) store when all four are in range and quad_ok.
  __device__ void store_quad(int row, int col, float4 a, int M, int N) const {
    if (row >= M || col >= N) return;
    const int n = N - col;
    float v[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int j = 0; j < 4; j++)
      if (j < n) v[j] = value(row, col + j, v[j]);
    const int64_t i = (int64_t)row * ldc + col;
    if (n >= 4 && quad_ok) {
      if (out_dt == STRUCTURA_DT_F32) {
        dev_cast<float4>(of + i)[0] = make_float4(v[0], v[1], v[2], v[3]);
      } else {
        const uint32_t lo = (uint32_t)f32_to_bits(v[0], out_dt) | ((uint32_t)f32_to_bits(v[1], out_dt) << 16);
        const uint32_t hi = (uint32_t)f32_to_bits(v[2], out_dt) | ((uint32_t)f32_to_bits(v[3], out_dt) << 16);
        dev_cast<uint2>(oh + i)[0] = make_uint2(lo, hi);
      }
      return;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
      if (j >= n) break;
      if (out_dt == STRUCTURA_DT_F32) of[i + j] = v[j];
      else oh[i + j] = f32_to_bits(v[j], out_dt);
    }
  }
};

// Whether the rank-r term is present, and whether the tensor-core kernel takes it in its main loop as
// r extra k (the product [A | T]·[B ; Rᵀ] with one alpha): only when lr_scale == alpha.
__host__ __device__ __forceinline__ bool has_lowrank(const structura_gemm_params& p) {
  return p.lr_t && p.lr_r && p.lr_scale != 0.f && p.r > 0;
}
__host__ __device__ __forceinline__ bool lowrank_in_mainloop(const structura_gemm_params& p) {
  return p.dtype != STRUCTURA_DT_F32 && has_lowrank(p) && p.lr_scale == p.alpha;
}

__device__ Epilogue make_epilogue(const structura_gemm_params& p, int64_t b, bool lowrank_done = false) {
  Epilogue e;
  const int od = p.out_dtype;
  e.of = gptr(static_cast<float*>(p.out)) + (od == STRUCTURA_DT_F32 ? b * p.stride_out : 0);
  e.oh = gptr(static_cast<uint16_t*>(p.out)) + (od == STRUCTURA_DT_F32 ? 0 : b * p.stride_out);
  e.c = any_in(p.c, od, b * p.stride_c);
  e.bias = any_in(p.bias, od, b * p.stride_bias);
  e.res = any_in(p.residual, od, b * p.stride_res);
  e.t = any_in(p.lr_t, p.dtype, b * p.stride_t);
  e.r = any_in(p.lr_r, p.dtype, b * p.stride_r);
  e.out_dt = od;
  e.act = p.act;
  e.rank = has_lowrank(p) && !lowrank_done ? (int)p.r : 0;
  e.has_c = p.c != nullptr && p.beta != 0.f;
  e.has_bias = p.bias != nullptr;
  e.has_res = p.residual != nullptr;
  const int esz = od == STRUCTURA_DT_F32 ? 4 : 2;
  const uintptr_t base = reinterpret_cast<uintptr_t>(p.out) + (uintptr_t)(b * p.stride_out * esz);
  e.quad_ok = (p.ldc % 4 == 0) && (base % (4 * esz) == 0);
  e.alpha = p.alpha;
  e.beta = p.beta;
  e.scale = p.lr_scale;
  e.ldc = p.ldc;
  e.ldres = p.ldres;
  e.ldt = p.ldt;
  e.ldr = p.ldr;
  return e;
}

// ---- the tile kernels' epilogue, through shared memory ---------------------------------------------
// Applied straight to the mma fragments, the epilogue inlined value() once per accumulator (64 a
// thread in the mma kernel, 128 in wgmma): about 90% of this file's PTX and of its build time (sm_80:
// 232 s; 17 s with a trivial epilogue, 18 s with this one), its stores were 8 bytes scattered over 8
// rows, and the sm_80 mma kernel spilled. Instead a warp writes its accumulators to a private shared
// stage and reads them back by rows, 4 consecutive columns a lane, in a loop that is not unrolled:
// value() appears 8 (mma) to 32 (TMA) times in a kernel, and a warp's stores cover whole rows (128
// bytes of f32 or 64 of 16-bit per 8 lanes).
// A stage's pitch (floats) is 8 more than a multiple of 32: the float2 fragment writes of a half-warp
// (rows g, g + 1, g + 2, g + 3; columns 2t) then fall on 16 distinct bank pairs.
template <int kCols>
constexpr int stage_pitch() { return kCols + 8; }

// Writes a 16-row block of mma D fragments at st (pitch ld): f(j, e) is element e of the fragment of
// columns 8j … 8j + 7, j < kJ (lane (g, t): e = 0, 1 → row g, columns 2t, 2t + 1; e = 2, 3 → row g + 8).
template <int kJ, class Frag>
__device__ __forceinline__ void stage_rows16(dev_ptr<float> st, int ld, int lane, const Frag& f) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < kJ; j++) {
    dev_cast<float2>(st + g * ld + 8 * j + 2 * t)[0] = make_float2(f(j, 0), f(j, 1));
    dev_cast<float2>(st + (g + 8) * ld + 8 * j + 2 * t)[0] = make_float2(f(j, 2), f(j, 3));
  }
}
// rows × kCols staged floats (pitch ld) through the epilogue, as output rows row0 …, columns col0 …
// (clipped to M, N). The warp's own stage: __syncwarp orders it against the writes before and after.
template <int kCols>
__device__ __forceinline__ void epilogue_staged(const Epilogue& e, dev_ptr<float> st, int ld, int rows, int lane, int row0,
                                                int col0, int M, int N) {
  constexpr int kQuads = kCols / 4;  // a row's
  __syncwarp();
#pragma unroll 1
  for (int q = lane; q < rows * kQuads; q += 32) {
    const int r = q / kQuads, c = 4 * (q % kQuads);
    e.store_quad(row0 + r, col0 + c, dev_cast<float4>(st + r * ld + c)[0], M, N);
  }
  __syncwarp();
}

// A 16-bit operand of this CTA's batch: the stored pointer advanced by its batch offset (elements).
__device__ __forceinline__ dev_ptr<const uint16_t> operand16(const void* p, int64_t off) {
  return gptr(static_cast<const uint16_t*>(p)) + off;
}

// ---- 16-bit tiles in shared memory --------------------------------------------------------------
// KMajor: [128 rows (m or n)][32 k] — 4 16-byte chunks a row, chunk ^= (row >> 1) & 3.
// MNMajor: [32 k][128 (m or n)] — 16 chunks a row, chunk ^= row & 7.
__device__ __forceinline__ int kmajor_off(int row, int k) {
  return row * kBK + ((((k >> 3) ^ (row >> 1)) & 3) << 3) + (k & 7);
}
__device__ __forceinline__ int mnmajor_off(int k, int mn) {
  return k * kBM + (((mn >> 3) ^ (k & 7)) << 3) + (mn & 7);
}

// Stages one operand's 128×32 tile (K-slab k0) into tile. kMN: the operand is stored with the M/N
// dimension contiguous (A with trans_a, B without trans_b), else with K contiguous.
// rows/cols of the stored matrix: g(i, j) = src[i * ld + j]; for kMN, i = k and j = m/n.
// The general path: any bounds, any alignment (vec: every row 16-byte aligned). Full tiles of aligned
// operands take TileCopier instead.
template <bool kMN>
__device__ __forceinline__ void load_tile(dev_ptr<uint16_t> tile, dev_ptr<const uint16_t> src, int64_t ld,
                                          int mn0, int MN, int k0, int K, bool vec) {
  for (int q = threadIdx.x; q < kTileElems / 8; q += kThreads) {
    int i, j, off, lim;  // chunk q: 8 consecutive elements of stored row i from column j
    if (kMN) {
      const int kr = q >> 4, c = q & 15;
      i = k0 + kr, j = mn0 + 8 * c, off = mnmajor_off(kr, 8 * c);
      lim = i < K ? MN - j : 0;
    } else {
      const int r = q >> 2, c = q & 3;
      i = mn0 + r, j = k0 + 8 * c, off = kmajor_off(r, 8 * c);
      lim = i < MN ? K - j : 0;
    }
    lim = lim < 0 ? 0 : lim > 8 ? 8 : lim;
    if (vec) {
      // src-size 0 reads nothing, so a fully outside chunk may keep the base address
      ptx::cp_async_cg_zfill(tile + off, lim > 0 ? src + (int64_t)i * ld + j : src, 2 * lim);
    } else {
      uint64_t lo = 0, hi = 0;  // two words, not an array: a dynamically indexed one lives in local memory
      for (int e = 0; e < lim; e++) {
        const uint16_t x = src[(int64_t)i * ld + j + e];
        if (e < 4) lo |= (uint64_t)x << (16 * e);
        else hi |= (uint64_t)x << (16 * (e - 4));
      }
      dev_cast<uint4>(tile + off)[0] = make_uint4((uint32_t)lo, (uint32_t)(lo >> 32), (uint32_t)hi, (uint32_t)(hi >> 32));
    }
  }
}

// Hides a value computed before the main loop from the compiler, so that it stays in a register:
// without this NVVM rematerialized the per-thread offsets below from threadIdx inside the loop, the
// swizzle math again every k-tile.
__device__ __forceinline__ int pinned(int x) {
#ifndef STRUCTURA_CUDA_EMU
  asm volatile("" : "+r"(x));
#endif
  return x;
}

// The fast path of load_tile for a tile wholly inside the operand, rows 16-byte aligned: a thread's
// two chunks (q = threadIdx.x and q + 256 of load_tile) sit at the same places in every k-tile, so
// their shared offsets and global sources are set up once and the sources advanced a k-tile at a time.
// Chunk q + 256 is 64 rows (K-major) or 16 k rows (MN-major) below chunk q: in shared memory 2048
// elements further in both layouts, as the swizzle terms ((row >> 1) & 3, k & 7) repeat.
static_assert(kTileElems / 8 == 2 * kThreads, "TileCopier: two 16-byte chunks a thread and operand");
template <bool kMN>
struct TileCopier {
  dev_ptr<const uint16_t> src;  // chunk q's source in the current k-tile
  int64_t second, step;         // chunk q + 256's source minus chunk q's; one k-tile's
  int dst;                      // chunk q's offset in the tile

  __device__ __forceinline__ TileCopier(dev_ptr<const uint16_t> g, int64_t ld, int mn0) {
    const int q = threadIdx.x;
    if (kMN) {
      const int kr = q >> 4, c = q & 15;
      src = g + (int64_t)kr * ld + mn0 + 8 * c, second = 16 * ld, step = kBK * ld;
      dst = pinned(mnmajor_off(kr, 8 * c));
    } else {
      const int r = q >> 2, c = q & 3;
      src = g + (int64_t)(mn0 + r) * ld + 8 * c, second = 64 * ld, step = kBK;
      dst = pinned(kmajor_off(r, 8 * c));
    }
  }
  __device__ __forceinline__ void copy(dev_ptr<uint16_t> tile) const {
    ptx::cp_async_cg(tile + dst, src);
    ptx::cp_async_cg(tile + (dst + 2048), src + second);
  }
  __device__ __forceinline__ void advance() { src += step; }
};

template <bool kBf16>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if (kBf16) ptx::mma_m16n8k16_bf16(d, a, b, d);
  else ptx::mma_m16n8k16_f16(d, a, b, d);
}

// Where this lane's ldmatrix rows lie inside a stage: the same in every k-tile, so computed once
// before the main loop, as the offset o of k16 half 0, 16-row (A) or 16-column (B) block 0. The
// others follow from the swizzles: in a K-major tile, block blk is 512 elements further (the term
// (row >> 1) & 3 repeats every 8 rows) and half h flips chunk bit 1 (offset ^ 16); in an MN-major
// tile, half h is 2048 elements further (k & 7 repeats) and block blk flips chunk bits 1–2
// (offset ^ 16·blk). One register an operand. msel / ksel: which of this lane's ldmatrix matrix
// index bits select the +8 in m/n and in k. pin: keep o in a register (the main loop's layouts).
template <bool kMN>
struct LdsmOffsets {
  int o;
  __device__ __forceinline__ LdsmOffsets(int mn0, int lane, bool a_operand, bool pin) {
    const int li = lane >> 3, lr = lane & 7;  // ldmatrix: matrix li, row lr
    const int msel = 8 * (a_operand ? li & 1 : li >> 1), ksel = 8 * (a_operand ? li >> 1 : li & 1);
    const int v = kMN ? mnmajor_off(lr + ksel, mn0 + msel) : kmajor_off(mn0 + lr + msel, ksel);
    o = pin ? pinned(v) : v;
  }
  __device__ __forceinline__ int at(int h, int blk) const {
    return kMN ? (o ^ (16 * blk)) + 2048 * h : (o ^ (16 * h)) + 512 * blk;
  }
};

// One 128×128×32 stage from shared memory into the warp's 64×32 accumulators: 2 k16 steps of 4×4
// mma.sync tiles. kTA / kTB: the stage's layouts (MN-major for a transposed A or a plain B); ao / bo:
// this lane's ldmatrix offsets for A (warp rows wm…) and B (warp columns wn…).
template <bool kBf16, bool kTA, bool kTB>
__device__ __forceinline__ void mma_tile(float (&acc)[4][4][4], dev_ptr<uint16_t> sa, dev_ptr<uint16_t> sb,
                                         const LdsmOffsets<kTA>& ao, const LdsmOffsets<!kTB>& bo) {
#pragma unroll
  for (int h = 0; h < 2; h++) {
    uint32_t af[4][4], bfr[4][2];
#pragma unroll
    for (int i = 0; i < 4; i++) {
      // matrices: 0 (m 0-7, k 0-7), 1 (m 8-15, k 0-7), 2 (m 0-7, k 8-15), 3 (m 8-15, k 8-15)
      if (kTA) ptx::ldmatrix_x4_trans(af[i], sa + ao.at(h, i));
      else ptx::ldmatrix_x4(af[i], sa + ao.at(h, i));
    }
#pragma unroll
    for (int j = 0; j < 4; j += 2) {
      // matrices: 0 (n 0-7, k 0-7), 1 (n 0-7, k 8-15), 2 (n 8-15, k 0-7), 3 (n 8-15, k 8-15)
      uint32_t r[4];
      if (kTB) ptx::ldmatrix_x4(r, sb + bo.at(h, j / 2));
      else ptx::ldmatrix_x4_trans(r, sb + bo.at(h, j / 2));
      bfr[j][0] = r[0], bfr[j][1] = r[1], bfr[j + 1][0] = r[2], bfr[j + 1][1] = r[3];
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < 4; j++) mma16816<kBf16>(acc[i][j], af[i], bfr[j]);
  }
}

// ------------------------------------------------------------------------------------------------
// kernels

// grid (ceil(N/128), ceil(M/128), batch), 256 threads, kMmaSmemBytes of dynamic shared memory.
template <bool kBf16, bool kTA, bool kTB>
__global__ void __launch_bounds__(kThreads) gemm_mma_kernel(const structura_gemm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  DYN_SMEM(uint16_t, smem);
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const uint16_t> A = operand16(p.a, b * p.stride_a), B = operand16(p.b, b * p.stride_b);
  const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
  // 16-byte cp.async needs every row start 16-byte aligned
  const bool vec_a = p.lda % 8 == 0 && (reinterpret_cast<uintptr_t>(p.a) + (uintptr_t)(b * p.stride_a * 2)) % 16 == 0;
  const bool vec_b = p.ldb % 8 == 0 && (reinterpret_cast<uintptr_t>(p.b) + (uintptr_t)(b * p.stride_b * 2)) % 16 == 0;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;  // warp tile origin inside the CTA tile

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  // k-tiles of A·B, then (lora) those of T·Rᵀ: T [M, r] and R [N, r] are both K-contiguous
  const int ktiles = (K + kBK - 1) / kBK;
  const bool ext = lowrank_in_mainloop(p);
  const int R = ext ? (int)p.r : 0, xtiles = (R + kBK - 1) / kBK, ttiles = ktiles + xtiles;
  const dev_ptr<const uint16_t> T = gptr(static_cast<const uint16_t*>(p.lr_t)) + (ext ? b * p.stride_t : 0);
  const dev_ptr<const uint16_t> Rm = gptr(static_cast<const uint16_t*>(p.lr_r)) + (ext ? b * p.stride_r : 0);
  const bool vec_t = ext && p.ldt % 8 == 0 && (reinterpret_cast<uintptr_t>(p.lr_t) + (uintptr_t)(b * p.stride_t * 2)) % 16 == 0;
  const bool vec_r = ext && p.ldr % 8 == 0 && (reinterpret_cast<uintptr_t>(p.lr_r) + (uintptr_t)(b * p.stride_r * 2)) % 16 == 0;

  // Nsight Compute (H200, bf16 4096³) found version 1 bound by integer instructions, not by the tensor
  // cores or memory: what does not change from one k-tile to the next is computed here, once.
  // The first kfull k-tiles of an interior CTA with aligned operands need no bounds: TileCopier.
  const bool fast = vec_a && vec_b && m0 + kBM <= M && n0 + kBN <= N;
  const int kfull = fast ? K / kBK : 0;
  TileCopier<kTA> copy_a(A, p.lda, m0);
  TileCopier<!kTB> copy_b(B, p.ldb, n0);
  const LdsmOffsets<kTA> ao(wm, lane, true, true);
  const LdsmOffsets<!kTB> bo(wn, lane, false, true);

  // load_stage is called for kt = 0, 1, 2, … in order, so the copiers stay at tile kt
  auto load_stage = [&](int stage_off, int kt) {
    const dev_ptr<uint16_t> sa = smem + stage_off, sb = sa + kTileElems;
    if (kt < ktiles) {
      if (kt < kfull) {
        copy_a.copy(sa);
        copy_b.copy(sb);
      } else {
        load_tile<kTA>(sa, A, p.lda, m0, M, kt * kBK, K, vec_a);
        load_tile<!kTB>(sb, B, p.ldb, n0, N, kt * kBK, K, vec_b);
      }
      copy_a.advance();
      copy_b.advance();
    } else {
      load_tile<false>(sa, T, p.ldt, m0, M, (kt - ktiles) * kBK, R, vec_t);
      load_tile<false>(sb, Rm, p.ldr, n0, N, (kt - ktiles) * kBK, R, vec_r);
    }
  };
  // stage offsets as a ring, not kt % kStages
  constexpr int kLastStage = (kStages - 1) * kStageElems;
  auto next_stage = [](int s) { return s == kLastStage ? 0 : s + kStageElems; };
#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < ttiles) load_stage(s * kStageElems, s);
    ptx::cp_async_commit();
  }

  int rs = 0, ws = kLastStage;  // the stages read (tile kt) and refilled (tile kt + kStages - 1)
  for (int kt = 0; kt < ttiles; kt++) {
    ptx::cp_async_wait<kStages - 2>();  // this thread's copies of tile kt have landed ...
    __syncthreads();                    // ... everyone's have, and everyone finished tile kt - 1
    // refill the stage tile kt - 1 used; the barrier above is what makes that safe
    if (kt + kStages - 1 < ttiles) load_stage(ws, kt + kStages - 1);
    ptx::cp_async_commit();

    const dev_ptr<uint16_t> sa = smem + rs, sb = sa + kTileElems;
    if (kt < ktiles) mma_tile<kBf16, kTA, kTB>(acc, sa, sb, ao, bo);
    else  // T·Rᵀ tiles, both K-major: their offsets are recomputed (a few tiles; registers are at 128)
      mma_tile<kBf16, false, true>(acc, sa, sb, LdsmOffsets<false>(wm, lane, true, false),
                                   LdsmOffsets<false>(wn, lane, false, false));
    rs = next_stage(rs), ws = next_stage(ws);
  }
  ptx::cp_async_wait_all();  // only empty groups remain; leave nothing in flight at exit

  // Every warp is done with the operand stages: they hold the epilogue's, 32 rows × 32 columns a warp
  // at a time (40 KiB of the 48). Each half is staged whole before its loop, so no accumulator of it
  // stays live through the loop (they did, and spilled, with one 16-row block at a time).
  constexpr int kLd = stage_pitch<32>();
  static_assert(8 * 32 * kLd * sizeof(float) <= kMmaSmemBytes, "mma epilogue stage");
  __syncthreads();
  const dev_ptr<float> st = dev_cast<float>(smem) + warp * 32 * kLd;
  const Epilogue e = make_epilogue(p, b, ext);
#pragma unroll
  for (int h = 0; h < 2; h++) {  // the warp's rows 32h … 32h + 31
#pragma unroll
    for (int i = 0; i < 2; i++) stage_rows16<4>(st + 16 * i * kLd, kLd, lane, [&](int j, int q) { return acc[2 * h + i][j][q]; });
    epilogue_staged<32>(e, st, kLd, 32, lane, m0 + wm + 32 * h, n0 + wn, M, N);
  }
}

// ---- wgmma kernel (sm_90a) ----------------------------------------------------------------------
// x·Wᵀ layouts only (A stored [M, K], B stored [N, K], both K-contiguous), 16-bit, K % 8 == 0, rows
// 16-byte aligned. CTA tile 128×256×64, 256 threads = 2 warpgroups, warpgroup w owning rows 64w …
// 64w + 63 and all 256 columns: per k-tile 4 wgmma.m64n256k16 (128 f32 accumulators a thread).
// Operands staged by cp.async (16-byte chunks, zero-filled past M, N, K) into the canonical K-major
// 128-byte-swizzle layout the descriptors describe (ptx.cuh): row r of a tile at 128·r bytes, its
// 16-byte chunk c at chunk c ^ (r % 8). 4 stages of 48 KiB, tiles loaded 2 ahead. Thread t copies
// chunk t % 8 of rows t / 8 + 32i (A: 4 rows, B: 8), so its swizzled destination chunk,
// (t % 8) ^ ((t / 8) % 8), is the same in every row. Each k-tile: wait for the copies,
// fence.proxy.async (cp.async writes are generic-proxy, wgmma reads through the async proxy),
// barrier, refill the stage of two k-tiles back, issue the 4 wgmma, then wait until only they are in
// flight (wait<1>: the next barrier then guarantees that no wgmma still reads the stage refilled
// after it). lora's rank term runs as extra K-major k-tiles when its operands qualify
// (wgmma_rank_ok), else in the epilogue.
constexpr int kWBM = 128, kWBN = 256, kWBK = 64, kWStages = 4, kWThreads = 256;
constexpr int kWTileA = kWBM * kWBK, kWTileB = kWBN * kWBK, kWStageElems = kWTileA + kWTileB;  // 16-bit elements
constexpr size_t kWgmmaSmemBytes = (size_t)kWStages * kWStageElems * 2 + 1024;  // 197632: + the 1024-byte alignment
constexpr int kWAhead = 2;  // k-tiles loaded ahead of the one computed (kWStages − 2: one stage is still being read)

__host__ __device__ __forceinline__ bool rows16(const void* p, int64_t ld, int64_t stride) {
  return ld % 8 == 0 && stride % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0;
}
// The rank term's operands as wgmma k-tiles: T [M, r] and R [N, r] with 16-byte rows, r % 8 == 0.
__host__ __device__ __forceinline__ bool wgmma_rank_ok(const structura_gemm_params& p) {
  return lowrank_in_mainloop(p) && p.r % 8 == 0 && rows16(p.lr_t, p.ldt, p.stride_t) && rows16(p.lr_r, p.ldr, p.stride_r);
}

// One 64-deep k-tile of a warpgroup's 64×256 product: 4 wgmma k16 steps, A's 64 rows at a_addr and
// B's 256 at b_addr (K-major, 128-byte swizzled in 1024-byte atoms), each step 32 bytes further.
template <bool kBf16>
__device__ __forceinline__ void wgmma_ktile(float (&acc)[128], uint32_t a_addr, uint32_t b_addr) {
#pragma unroll
  for (int kk = 0; kk < kWBK / 16; kk++) {
    const uint64_t da = ptx::wgmma_desc_sw128(a_addr + 32u * kk, 1024), db = ptx::wgmma_desc_sw128(b_addr + 32u * kk, 1024);
    if (kBf16) ptx::wgmma_m64n256k16_bf16(acc, da, db);
    else ptx::wgmma_m64n256k16_f16(acc, da, db);
  }
}

// A warpgroup's warp: its 16 × 256 accumulators (lane (g, t) holds rows g and g + 8, columns 8j + 2t, + 1
// in acc[4j …], the wgmma D layout) through a stage at st: all at once (kCols = 256, the cp.async
// kernel) or 32 columns at a time (the TMA kernel, whose operand stages stay in use). The chunks of
// the latter are unrolled: in a loop all 128 accumulators stay live to its end, which with the
// epilogue's state spilled under a 168-register cap; unrolled, each chunk's die once staged (8 copies
// of the loop, not 128 of value()). (The TMA kernel's 9 warps now allow 224 registers a thread.)
template <int kCols>
__device__ __forceinline__ void store_wgmma_tile(const Epilogue& e, const float (&acc)[128], dev_ptr<float> st, int lane,
                                                 int row0, int n0, int M, int N) {
  constexpr int kLd = stage_pitch<kCols>(), kJ = kCols / 8;
#pragma unroll
  for (int ch = 0; ch < kWBN / kCols; ch++) {
    stage_rows16<kJ>(st, kLd, lane, [&](int j, int q) { return acc[4 * (kJ * ch + j) + q]; });
    epilogue_staged<kCols>(e, st, kLd, 16, lane, row0, n0 + kCols * ch, M, N);
  }
}

template <bool kBf16>
__global__ void __launch_bounds__(kWThreads, 1) gemm_wgmma_kernel(const structura_gemm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  DYN_SMEM(uint16_t, smem_raw);
  // the swizzle works on shared-window address bits 4–9: tiles start 1024-byte aligned
  const uint32_t raw_addr = ptx::smem_addr(smem_raw);
  const int pad = (int)((1024u - (raw_addr & 1023u)) & 1023u) / 2;
  const dev_ptr<uint16_t> smem = smem_raw + pad;
  const uint32_t sbase = raw_addr + 2u * (uint32_t)pad;

  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const uint16_t> A = operand16(p.a, b * p.stride_a), B = operand16(p.b, b * p.stride_b);
  const int m0 = blockIdx.y * kWBM, n0 = blockIdx.x * kWBN;
  const bool ext = wgmma_rank_ok(p);
  const int R = ext ? (int)p.r : 0;
  const dev_ptr<const uint16_t> T = gptr(static_cast<const uint16_t*>(p.lr_t)) + (ext ? b * p.stride_t : 0);
  const dev_ptr<const uint16_t> Rm = gptr(static_cast<const uint16_t*>(p.lr_r)) + (ext ? b * p.stride_r : 0);
  const int ktiles = (K + kWBK - 1) / kWBK, ttiles = ktiles + (R + kWBK - 1) / kWBK;

  const int tid = threadIdx.x, c = tid & 7, r0 = tid >> 3;
  const int dst = r0 * kWBK + ((c ^ (r0 & 7)) << 3);  // row r0's chunk; rows r0 + 32i are 32·64·i further

  auto load_stage = [&](int stage, int kt) {
    const dev_ptr<uint16_t> sa = smem + stage * kWStageElems, sb = sa + kWTileA;
    const bool main = kt < ktiles;
    const dev_ptr<const uint16_t> ga = main ? A : T, gb = main ? B : Rm;
    const int64_t lda = main ? p.lda : p.ldt, ldb = main ? p.ldb : p.ldr;
    const int k = (main ? kt : kt - ktiles) * kWBK + 8 * c;
    const bool kin = k < (main ? K : R);  // K % 8 == 0 (and R): a chunk is wholly inside or outside
#pragma unroll
    for (int i = 0; i < kWBM / 32; i++) {
      const int row = m0 + r0 + 32 * i;
      const bool in = kin && row < M;
      ptx::cp_async_cg_zfill(sa + dst + 32 * kWBK * i, in ? ga + (int64_t)row * lda + k : ga, in ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kWBN / 32; i++) {
      const int row = n0 + r0 + 32 * i;
      const bool in = kin && row < N;
      ptx::cp_async_cg_zfill(sb + dst + 32 * kWBK * i, in ? gb + (int64_t)row * ldb + k : gb, in ? 16 : 0);
    }
  };

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; i++) acc[i] = 0.f;
  ptx::fence_operands(acc);

#pragma unroll
  for (int s = 0; s < kWAhead; s++) {
    if (s < ttiles) load_stage(s, s);
    ptx::cp_async_commit();
  }
  const int wg = tid >> 7;  // warpgroup: accumulator rows 64·wg …
  // One wgmma group stays in flight while the next k-tile is prepared. At iteration kt the barrier
  // comes after every thread's wait<1> of iteration kt − 1, so both warpgroups are done with tile
  // kt − 2: its stage, (kt + 2) % 4, is refilled with tile kt + 2.
  for (int kt = 0; kt < ttiles; kt++) {
    ptx::cp_async_wait<kWAhead - 1>();  // this thread's copies of tile kt have landed
    ptx::fence_proxy_async();           // ... and are visible to wgmma's async proxy
    __syncthreads();
    if (kt + kWAhead < ttiles) load_stage((kt + kWAhead) % kWStages, kt + kWAhead);
    ptx::cp_async_commit();
    const uint32_t sa = sbase + 2u * (uint32_t)((kt % kWStages) * kWStageElems);
    const uint32_t a_addr = sa + (uint32_t)wg * 64u * 128u, b_addr = sa + 2u * kWTileA;
    ptx::wgmma_fence();
    wgmma_ktile<kBf16>(acc, a_addr, b_addr);
    ptx::wgmma_commit();
    ptx::wgmma_wait<1>();  // the group of tile kt − 1 is done
  }
  ptx::wgmma_wait<0>();
  ptx::fence_operands(acc);  // the epilogue reads them only now
  ptx::cp_async_wait_all();
  ptx::fence_proxy_async();  // the stages, read by wgmma (async proxy), are rewritten below by plain stores
  __syncthreads();           // both warpgroups are done with them: they hold the epilogue's, 16 rows a warp

  const int lane = tid & 31, warp = tid >> 5, wq = warp & 3;
  static_assert(8 * 16 * stage_pitch<kWBN>() * sizeof(float) <= kWgmmaSmemBytes - 1024, "wgmma epilogue stage");
  store_wgmma_tile<kWBN>(make_epilogue(p, b, ext), acc, dev_cast<float>(smem) + warp * 16 * stage_pitch<kWBN>(), lane,
                         m0 + 64 * wg + 16 * wq, n0, M, N);
}

// ---- TMA warp-specialized wgmma kernel (sm_90a) --------------------------------------------------
// The same CTA tile, stages and wgmma as gemm_wgmma_kernel (128×256×64; warpgroups 0 and 1 each own 64
// rows and issue wgmma.m64n256k16 from 128-byte-swizzled K-major stages), but the operands arrive by
// TMA (cp.async.bulk.tensor.2d through tensor maps, cuda/tma.cuh) issued by one lane of a ninth,
// producer warp, and the stages are handed over by mbarriers instead of __syncthreads: full[s] (the
// producer announces the stage's 48 KiB; the TMA completes them) and empty[s] (lane 0 of each of the 8
// consumer warps arrives once its wgmma that read the stage are done). A consumer keeps one wgmma
// group in flight: at k-tile kt, after wait<1>, tile kt − 1's stage is released. The consumers issue
// no loads and no address arithmetic, and no barrier stalls the whole CTA each k-tile (what the
// cp.async kernel spends per tile: 12 cp.async a thread, a wait and a __syncthreads). Persistent: one
// CTA an SM walks the output tiles, so the producer fills the stages for the next tile while the
// consumers run this one's epilogue (a 1-CTA-an-SM kernel cannot hide it otherwise). 288 threads fit
// 224 registers each without setmaxnreg. Batch 1 only (2-D tensor maps); lora's rank term as extra
// k-tiles from two more maps (T, R) when wgmma_rank_ok, else in the epilogue; as lora's product (p.pdl
// = 1) a dependent launch whose producer waits for lora_t only before the rank term's k-tiles. Not yet
// run on a GPU.
constexpr int kTThreads = 288;
constexpr size_t kTmaStageBytes = (size_t)kWStageElems * 2;
constexpr size_t kTmaBarBytes = 8 * 2 * kWStages;  // full[] and empty[] mbarriers
// + alignment + mbarriers + the 8 consumer warps' epilogue stages: persistent, so the operand stages
// are being refilled for the next tile while the epilogue runs and cannot hold it (218176 bytes)
constexpr size_t kTmaStFloats = 16 * stage_pitch<32>();  // a consumer warp's epilogue stage: 16 rows × 32 columns
constexpr size_t kTmaSmemBytes = kWStages * kTmaStageBytes + 1024 + kTmaBarBytes + 8 * kTmaStFloats * sizeof(float);

template <bool kBf16>
__global__ void __launch_bounds__(kTThreads, 1)
    gemm_tma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                    const __grid_constant__ CUtensorMap map_t, const __grid_constant__ CUtensorMap map_r,
                    const structura_gemm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  DYN_SMEM(uint16_t, smem_raw);
  const uint32_t raw_addr = ptx::smem_addr(smem_raw);
  const uint32_t sbase = raw_addr + ((1024u - (raw_addr & 1023u)) & 1023u);  // the swizzle wants 1024-byte tiles
  const uint32_t bars = sbase + (uint32_t)(kWStages * kTmaStageBytes);
  auto full = [&](int s) { return bars + 8u * (uint32_t)s; };
  auto empty = [&](int s) { return bars + 8u * (uint32_t)(kWStages + s); };

  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int tiles_n = (N + kWBN - 1) / kWBN, ntiles = tiles_n * ((M + kWBM - 1) / kWBM);
  const bool ext = wgmma_rank_ok(p);
  const int R = ext ? (int)p.r : 0;
  const int ktiles = (K + kWBK - 1) / kWBK, ttiles = ktiles + (R + kWBK - 1) / kWBK;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;

  if (tid == 0) {
    for (int s = 0; s < kWStages; s++) {
      ptx::mbar_init(full(s), 1);
      ptx::mbar_init(empty(s), 8);
    }
    ptx::fence_mbarrier_init();
  }
  __syncthreads();  // the last CTA-wide barrier: the producer warp leaves after its loop

  // Persistent: CTA b takes tiles b, b + gridDim.x, … (N fastest, as a grid would run them), and `it`
  // counts its k-tiles across them, so the stage ring and the mbarrier phases run on from one tile to
  // the next — the producer loads the next tile while the consumers write this one out.
  if (warp == 8) {  // the producer
    if (lane != 0) return;
    int it = 0;
    for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
      const int m0 = tile / tiles_n * kWBM, n0 = tile % tiles_n * kWBN;
      for (int kt = 0; kt < ttiles; kt++, it++) {
        const int s = it % kWStages;
        // the stage's previous k-tile, it − 4, must be released by all 8 consumer warps
        if (it >= kWStages) ptx::mbar_wait(empty(s), (uint32_t)((it / kWStages) - 1) & 1u);
        const uint32_t sa = sbase + (uint32_t)(s * kTmaStageBytes), sb = sa + 2u * kWTileA;
        // lora's product (p.pdl = 1, a dependent launch after lora_t): x and W were complete before that
        // chain began, T is lora_t's — wait for it only now, after the main k-tiles are on their way
        if (kt == ktiles) ptx::pdl_wait();
        ptx::mbar_arrive_expect_tx(full(s), (uint32_t)kTmaStageBytes);
        if (kt < ktiles) {
          ptx::tma_load_2d(sa, &map_a, kt * kWBK, m0, full(s));
          ptx::tma_load_2d(sb, &map_b, kt * kWBK, n0, full(s));
        } else {
          ptx::tma_load_2d(sa, &map_t, (kt - ktiles) * kWBK, m0, full(s));
          ptx::tma_load_2d(sb, &map_r, (kt - ktiles) * kWBK, n0, full(s));
        }
      }
    }
    return;
  }

  const int wg = tid >> 7;  // consumer warpgroup: accumulator rows 64·wg …
  const int wq = warp & 3;
  const dev_ptr<float> stage =
      dev_cast<float>(smem_raw + (sbase - raw_addr + kWStages * kTmaStageBytes + kTmaBarBytes) / 2) + warp * kTmaStFloats;
  int it = 0;
  for (int tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
    const int m0 = tile / tiles_n * kWBM, n0 = tile % tiles_n * kWBN;
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; i++) acc[i] = 0.f;
    ptx::fence_operands(acc);
    for (int kt = 0; kt < ttiles; kt++, it++) {
      const int s = it % kWStages;
      ptx::mbar_wait(full(s), (uint32_t)(it / kWStages) & 1u);
      const uint32_t sa = sbase + (uint32_t)(s * kTmaStageBytes);
      const uint32_t a_addr = sa + (uint32_t)wg * 64u * 128u, b_addr = sa + 2u * kWTileA;
      ptx::wgmma_fence();
      wgmma_ktile<kBf16>(acc, a_addr, b_addr);
      ptx::wgmma_commit();
      ptx::wgmma_wait<1>();  // k-tile it − 1's wgmma are done: its stage goes back to the producer
      if (kt > 0 && lane == 0) ptx::mbar_arrive(empty((it - 1) % kWStages));
      __syncwarp();  // the warp reconverges before the next k-tile's .sync.aligned wgmma.fence
    }
    ptx::wgmma_wait<0>();
    ptx::fence_operands(acc);
    // the tile's last stage, for the next tile (none without k-tiles: empty(-1) would be full(3))
    if (ttiles > 0 && lane == 0) ptx::mbar_arrive(empty((it - 1) % kWStages));
    __syncwarp();
    ptx::pdl_wait();  // the epilogue's inputs and out belong to the kernels ahead until they finish

    store_wgmma_tile<32>(make_epilogue(p, 0, ext), acc, stage, lane, m0 + 64 * wg + 16 * wq, n0, M, N);
  }
}

// Decode shapes: op(A) = x [M ≤ 16, K] row-major, op(B) = Wᵀ with W stored [N, K] (a Linear weight),
// 16-bit, K % 8 == 0 and every row 16-byte aligned. W is streamed once with 16-byte loads straight
// into mma.sync fragments (no shared-memory staging: nothing is reused). A CTA owns 16 columns;
// its 8 warps split K into 32-wide chunks (warp w: chunks w, w + 8, …) and are summed through
// shared memory at the end, in a fixed order. Lane (g, t) = (lane / 4, lane % 4) loads elements
// 8t … 8t + 7 of a chunk from x rows g, g + 8 and W rows n0 + g, n0 + 8 + g. Inside a chunk the
// k order is permuted — mma step s ∈ {0, 1} takes a lane's elements 4s … 4s + 3 as its fragment
// slots (2t, 2t + 1, 2t + 8, 2t + 9) — the same permutation for A and B, so the dot product is
// unchanged: a k slot belongs to the same lane t in both fragments (PTX §9.7.14.5.8).
// grid (ceil(N/16), 1, batch), 256 threads, 8 KiB of static shared memory.
// kStream: W read with ld_stream_v4 (no L1 allocation, 256-byte L2 prefetch) — v2, not yet timed on
// a GPU, so not the default (setDecodeKernel; bench/dense.bench.ts times both); else plain loads (v1).
// The decode main loop of one CTA: acc (this lane's mma fragments, 16 rows × 16 columns between
// the 8 warps) += Σ over k < K of x[row][k]·W[col][k], x rows g and g + 8 and W rows (the CTA's
// columns) g and 8 + g as given (already at the first k; rows flagged out read as zeros).
template <bool kBf16, bool kStream>
__device__ __forceinline__ void decode_accumulate(float (&acc)[2][4], const dev_ptr<const uint16_t>& x0,
                                                  const dev_ptr<const uint16_t>& x1, bool x0_in, bool x1_in,
                                                  const dev_ptr<const uint16_t>& w0, const dev_ptr<const uint16_t>& w1,
                                                  bool w0_in, bool w1_in, int K) {
  const int warp = threadIdx.x >> 5, t = threadIdx.x & 3;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  // (Issuing 4 chunks of loads before their mma, by hand, was slower on an H200 — 0.0182 against
  // 0.0138 ms for 1×4096×4096 — so the unrolled loop is left to ptxas' scheduling.)
#pragma unroll 4
  for (int kc = warp * 32; kc < K; kc += kThreads) {  // kThreads = 8 warps × 32-wide chunks
    const int k = kc + 8 * t;
    const bool kin = k < K;  // K % 8 == 0: a lane's 8 elements are all inside or all outside
    const uint4 xa = kin && x0_in ? dev_cast<const uint4>(x0 + k)[0] : zero;
    const uint4 xb = kin && x1_in ? dev_cast<const uint4>(x1 + k)[0] : zero;
    uint4 wa = zero, wb = zero;
    if (kStream) {
      if (kin && w0_in) wa = ptx::ld_stream_v4(dev_cast<const uint4>(w0 + k));
      if (kin && w1_in) wb = ptx::ld_stream_v4(dev_cast<const uint4>(w1 + k));
    } else {
      if (kin && w0_in) wa = dev_cast<const uint4>(w0 + k)[0];
      if (kin && w1_in) wb = dev_cast<const uint4>(w1 + k)[0];
    }
    {
      const uint32_t a[4] = {xa.x, xb.x, xa.y, xb.y};
      const uint32_t b0[2] = {wa.x, wa.y}, b1[2] = {wb.x, wb.y};
      mma16816<kBf16>(acc[0], a, b0);
      mma16816<kBf16>(acc[1], a, b1);
    }
    {
      const uint32_t a[4] = {xa.z, xb.z, xa.w, xb.w};
      const uint32_t b0[2] = {wa.z, wa.w}, b1[2] = {wb.z, wb.w};
      mma16816<kBf16>(acc[0], a, b0);
      mma16816<kBf16>(acc[1], a, b1);
    }
  }
}

// Whether a decode kernel (16-bit or float32) takes the rank term as r more k of its main loop —
// [x | T]·[W | R]ᵀ, as the tile kernels do (one alpha: lr_scale == alpha) — which needs T's and R's
// rows to be 16-byte aligned and a multiple of 16 bytes long. In the epilogue each output would read
// R's row r elements away from its neighbour's: 16 sectors a warp access (bench/emu_profile.ts), L1
// traffic that grows with r and the adapters.
__device__ __forceinline__ bool decode_rank_in_loop(const structura_gemm_params& p, int64_t b) {
  const int esz = p.dtype == STRUCTURA_DT_F32 ? 4 : 2, q = 16 / esz;  // elements in 16 bytes
  if (!has_lowrank(p) || p.lr_scale != p.alpha || p.r % q || p.ldt % q || p.ldr % q) return false;
  const uintptr_t t = reinterpret_cast<uintptr_t>(p.lr_t) + (uintptr_t)(b * p.stride_t * esz);
  const uintptr_t r = reinterpret_cast<uintptr_t>(p.lr_r) + (uintptr_t)(b * p.stride_r * esz);
  return (t | r) % 16 == 0;
}
// acc += T[rows g, g + 8]·R[the CTA's columns n0 + g, n0 + 8 + g]ᵀ over the r columns of both.
template <bool kBf16>
__device__ __forceinline__ void decode_accumulate_rank(float (&acc)[2][4], const structura_gemm_params& p, int64_t b,
                                                       int n0, int g, bool x0_in, bool x1_in, bool w0_in, bool w1_in) {
  const dev_ptr<const uint16_t> T = gptr(static_cast<const uint16_t*>(p.lr_t)) + b * p.stride_t;
  const dev_ptr<const uint16_t> R = gptr(static_cast<const uint16_t*>(p.lr_r)) + b * p.stride_r;
  decode_accumulate<kBf16, false>(acc, T + (x0_in ? (int64_t)g * p.ldt : 0), T + (x1_in ? (int64_t)(g + 8) * p.ldt : 0),
                                  x0_in, x1_in, R + (w0_in ? (int64_t)(n0 + g) * p.ldr : 0),
                                  R + (w1_in ? (int64_t)(n0 + 8 + g) * p.ldr : 0), w0_in, w1_in, (int)p.r);
}

// The 8 warps' fragments summed in warp order through red ([8][16 rows][16 columns] floats): returns
// the sum of output (threadIdx.x / 16, threadIdx.x % 16). Ends with red read (no barrier after).
// Column c of row r sits at c ^ 8·((r >> 1) & 1): rows 2 apart share banks (16 floats a row), so the
// flip keeps a half-warp's float2 stores (rows g … g + 3) on distinct banks (bench/emu_profile.ts).
__device__ __forceinline__ float decode_sum(const dev_ptr<float>& red, const float (&acc)[2][4]) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int flip = ((g >> 1) & 1) * 8;  // the same for rows g and g + 8
  // accumulator fragment: (row g, cols 2t, 2t + 1) and (row g + 8, same cols) of n-group j
#pragma unroll
  for (int j = 0; j < 2; j++) {
    const int o = (warp * 16 + g) * kDecN + ((8 * j + 2 * t) ^ flip);
    dev_cast<float2>(red + o)[0] = make_float2(acc[j][0], acc[j][1]);
    dev_cast<float2>(red + o + 8 * kDecN)[0] = make_float2(acc[j][2], acc[j][3]);
  }
  __syncthreads();
  const int row = threadIdx.x / kDecN, col = threadIdx.x % kDecN;  // 256 threads = 16 × 16 outputs
  const int c = col ^ (((row >> 1) & 1) * 8);
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; w++) s += red[(w * 16 + row) * kDecN + c];
  return s;
}

// Split-K of the decode kernel (gridDim.y slices of K): each CTA's 16 × 16 partial goes to ws
// [split][16][N] (float32), and the CTA that counts last on its column tile (ctr[blockIdx.x], zeroed
// again by it) adds the slices in split order and runs the epilogue. Both live as long as the process
// (decode_split_scratch). Null when gridDim.y == 1.
struct SplitK {
  float* ws;
  int* ctr;
};
// K-slice length of split-K decode: the same on the host and in the kernel (a multiple of 8).
__host__ __device__ __forceinline__ int decode_slice(int K, int splits) { return ((K + splits - 1) / splits + 7) / 8 * 8; }

template <bool kBf16, bool kStream>
__global__ void __launch_bounds__(kThreads) gemm_decode_kernel(const structura_gemm_params p, const SplitK sk) {
  SMEM(float, red, [kThreads / 32][16][kDecN]);
  SMEM(int, last, [1]);
  // A kernel launched after this one with launch_pdl (the next decode product, or lora's final product
  // after lora_t, itself after this T = x·Aᵀ) may start now; it waits for us before it reads what we write.
  ptx::pdl_trigger();
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const uint16_t> A = operand16(p.a, b * p.stride_a), B = operand16(p.b, b * p.stride_b);
  const int g = (threadIdx.x & 31) >> 2;
  const int n0 = blockIdx.x * kDecN;
  const bool x0_in = g < M, x1_in = g + 8 < M, w0_in = n0 + g < N, w1_in = n0 + 8 + g < N;
  // rows past M / N are never dereferenced; their offsets are clamped to row 0
  // this CTA's slice of K (all of it unless split)
  const int splits = (int)gridDim.y, kc = splits > 1 ? decode_slice(K, splits) : K, k0 = (int)blockIdx.y * kc;
  const int len = K - k0 < kc ? K - k0 : kc;
  const dev_ptr<const uint16_t> x0 = A + k0 + (x0_in ? (int64_t)g * p.lda : 0), x1 = A + k0 + (x1_in ? (int64_t)(g + 8) * p.lda : 0);
  const dev_ptr<const uint16_t> w0 = B + k0 + (w0_in ? (int64_t)(n0 + g) * p.ldb : 0);
  const dev_ptr<const uint16_t> w1 = B + k0 + (w1_in ? (int64_t)(n0 + 8 + g) * p.ldb : 0);
  if (p.pdl != 1) {
    // Whatever is ahead in the stream may still be writing x (or even W): only ask L2 for our 16 rows of
    // W meanwhile (a bulk prefetch reads nothing into the kernel), then wait for it to finish.
    if (threadIdx.x < kDecN && n0 + (int)threadIdx.x < N)
      ptx::prefetch_l2(B + k0 + (int64_t)(n0 + threadIdx.x) * p.ldb, (uint32_t)len * 2u);
    ptx::pdl_wait();
  }
  float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
  decode_accumulate<kBf16, kStream>(acc, x0, x1, x0_in, x1_in, w0, w1, w0_in, w1_in, len);
  // With p.pdl == 1, W was streamed above while the kernels ahead (T = x·Aᵀ, lora_t) ran; the
  // epilogue's inputs (T, B, bias, …) and out are theirs to finish first — and the split scratch
  // (the kernel ahead may be another split decode). Else already waited: a no-op.
  const bool rank_in_loop = decode_rank_in_loop(p, b);
  if (rank_in_loop) {
    ptx::pdl_wait();
    if (blockIdx.y == 0) decode_accumulate_rank<kBf16>(acc, p, b, n0, g, x0_in, x1_in, w0_in, w1_in);  // once over the slices
  }
  const float s = decode_sum(dev_cast<float>(red), acc);
  ptx::pdl_wait();
  const int row = threadIdx.x / kDecN, col = threadIdx.x % kDecN;
  if (splits == 1) {
    make_epilogue(p, b, rank_in_loop).store_one(row, n0 + col, s, M, N);
    return;
  }
  const dev_ptr<float> ws = gptr(sk.ws);
  const dev_ptr<int> ctr = gptr(sk.ctr);
  if (n0 + col < N) ws[((int64_t)blockIdx.y * 16 + row) * N + n0 + col] = s;
  __threadfence();  // our slice before our count
  __syncthreads();
  if (threadIdx.x == 0) {
    last[0] = atomicAdd(&ctr[blockIdx.x], 1) == splits - 1 ? 1 : 0;
    __threadfence();  // with the count read above: an acquire of the other slices
  }
  __syncthreads();
  const int is_last = last[0];
  if (!is_last) return;
  float tot = 0.f;
  if (n0 + col < N)
    for (int sp = 0; sp < splits; sp++) tot += ws[((int64_t)sp * 16 + row) * N + n0 + col];
  make_epilogue(p, b, rank_in_loop).store_one(row, n0 + col, tot, M, N);
  if (threadIdx.x == 0) atomicExch(&ctr[blockIdx.x], 0);  // for the next launch, which starts after us
}

// lora at decode in one launch: y = x·Wᵀ + T·Bᵀ (+ bias), T = lora_t(x·Aᵀ) (cuda/lora_t.cuh; lowrank.linear
// the same without W: p.k = 0, the consumers' epilogue alone), where the
// chain of three launches (T's split-K partials, lora_t, the product) took 22 µs against 13.4 µs for
// x·Wᵀ alone on the H200. The grid is the decode kernel's ceil(N/16) CTAs plus `producers` more; a
// CTA's role is the order in which it started (a ticket), not its blockIdx, so the producers are
// among the first CTAs to run: a consumer waits only on CTAs already running, never on one that may
// need its SM. Producer i (i < groups·splits) computes the partial x·A[16g…]ᵀ over K-slice s of kc
// (the decode main loop with A's rows as the columns) into t.part; the last producer to finish sums
// them into T (lora_t_element) and raises a flag. Consumers stream their 16 rows of W meanwhile and
// wait for the flag only before the epilogue, which reads T. The last CTA to finish zeroes the
// counters (sync: tickets, producers done, T ready, CTAs done) for the next launch. Launched with
// launch_pdl: before pdl_wait a CTA only asks L2 for the W rows it will most likely stream (tickets
// mostly follow blockIdx), so its launch and ramp overlap the kernel ahead; it takes its ticket after
// the wait, when the launch ahead (another lora, say) has finished and zeroed the counters. Same
// arithmetic as the chain: the same partials, the same T, the same bits.
// grid (producers + ceil(N/16)), 256 threads, 8 KiB of static shared memory.
// What the T-making CTAs read besides p and t: A's rows (row stride lda_a) over x's kx columns in
// slices of kc, `groups` 16-column groups of T; sync: the four counters.
struct LoraFold {
  const void* a;
  int64_t lda_a, kx, kc;
  int groups;
  int* sync;
};

template <bool kBf16>
__global__ void __launch_bounds__(kThreads) lora_decode_kernel(const structura_gemm_params p, const structura_lora_t_params t,
                                                               const LoraFold f) {
  SMEM(float, red, [kThreads / 32][16][kDecN]);
  SMEM(int, role, [2]);
  ptx::pdl_trigger();
  const int groups = f.groups, producers = groups * (int)t.splits;
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;  // K = 0: no W (lowrank.linear), the rank term alone
  if (K > 0) {
    const int guess = ((int)blockIdx.x - producers) * kDecN + (int)threadIdx.x;
    if (threadIdx.x < kDecN && guess >= 0 && guess < N)
      ptx::prefetch_l2(gptr(static_cast<const uint16_t*>(p.b)) + (int64_t)guess * p.ldb, (uint32_t)K * 2u);
  }
  ptx::pdl_wait();
  const dev_ptr<int> cnt = gptr(f.sync);
  if (threadIdx.x == 0) role[0] = atomicAdd(&cnt[0], 1);
  __syncthreads();
  const int ticket = role[0];
  const dev_ptr<const uint16_t> X = gptr(static_cast<const uint16_t*>(p.a));
  const int g = (threadIdx.x & 31) >> 2;
  const bool x0_in = g < M, x1_in = g + 8 < M;
  const int row = threadIdx.x / kDecN, col = threadIdx.x % kDecN;
  float acc[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
  if (ticket < producers) {
    const int j0 = (ticket % groups) * kDecN, s = ticket / groups, R = (int)t.cols;
    const int64_t k0 = (int64_t)s * f.kc;
    const int len = (int)(f.kx - k0 < f.kc ? f.kx - k0 : f.kc);
    const dev_ptr<const uint16_t> Ar = gptr(static_cast<const uint16_t*>(f.a)) + k0;
    const bool w0_in = j0 + g < R, w1_in = j0 + 8 + g < R;
    const dev_ptr<const uint16_t> x0 = X + k0 + (x0_in ? (int64_t)g * p.lda : 0), x1 = X + k0 + (x1_in ? (int64_t)(g + 8) * p.lda : 0);
    const dev_ptr<const uint16_t> w0 = Ar + (w0_in ? (int64_t)(j0 + g) * f.lda_a : 0);
    const dev_ptr<const uint16_t> w1 = Ar + (w1_in ? (int64_t)(j0 + 8 + g) * f.lda_a : 0);
    decode_accumulate<kBf16, false>(acc, x0, x1, x0_in, x1_in, w0, w1, w0_in, w1_in, len);
    const float v = decode_sum(dev_cast<float>(red), acc);
    if (row < M && j0 + col < R) gptr(const_cast<float*>(t.part))[s * t.part_stride + row * t.part_rs + (j0 + col) * t.part_cs] = v;
    __threadfence();  // our partial before our count
    __syncthreads();
    if (threadIdx.x == 0) {
      role[1] = atomicAdd(&cnt[1], 1) == producers - 1 ? 1 : 0;
      __threadfence();  // with the count read above: an acquire of the other producers' partials
    }
    __syncthreads();
    const int last = role[1];
    if (last) {  // every partial is in: T, then the flag
      __threadfence();
      for (int64_t i = threadIdx.x; i < (int64_t)M * R; i += kThreads)
        lora_t_element<kBf16 ? STRUCTURA_T_BF16 : STRUCTURA_T_F16>(t, i);
      __threadfence();
      __syncthreads();
      if (threadIdx.x == 0) ptx::flag_release(&cnt[2]);
    }
  } else {
    const int n0 = (ticket - producers) * kDecN;
    const dev_ptr<const uint16_t> W = gptr(static_cast<const uint16_t*>(p.b));
    const bool w0_in = n0 + g < N, w1_in = n0 + 8 + g < N;
    const dev_ptr<const uint16_t> x0 = X + (x0_in ? (int64_t)g * p.lda : 0), x1 = X + (x1_in ? (int64_t)(g + 8) * p.lda : 0);
    const dev_ptr<const uint16_t> w0 = W + (w0_in ? (int64_t)(n0 + g) * p.ldb : 0);
    const dev_ptr<const uint16_t> w1 = W + (w1_in ? (int64_t)(n0 + 8 + g) * p.ldb : 0);
    decode_accumulate<kBf16, false>(acc, x0, x1, x0_in, x1_in, w0, w1, w0_in, w1_in, K);
    if (threadIdx.x == 0) ptx::flag_wait(&cnt[2]);
    __syncthreads();  // the flag seen by thread 0 (acquire) orders T before every thread's reads
    const bool rank_in_loop = decode_rank_in_loop(p, 0);
    if (rank_in_loop) decode_accumulate_rank<kBf16>(acc, p, 0, n0, g, x0_in, x1_in, w0_in, w1_in);
    const float v = decode_sum(dev_cast<float>(red), acc);
    make_epilogue(p, 0, rank_in_loop).store_one(row, n0 + col, v, M, N);
  }
  __syncthreads();
  if (threadIdx.x == 0 && atomicAdd(&cnt[3], 1) == (int)gridDim.x - 1) {
    // every other CTA has finished: ready for the next launch
    atomicExch(&cnt[0], 0);
    atomicExch(&cnt[1], 0);
    atomicExch(&cnt[2], 0);
    atomicExch(&cnt[3], 0);
  }
}

// Decode shapes with W stored [K, N] (op(B) = B, N contiguous): x·W, and dY·W in the backward of a
// Linear (W [out, in], dY [M ≤ 16, out]). The tile kernels would spend a 128-row tile on M ≤ 16 rows
// and give a 4096-column product only 32 CTAs (0.13 ms for 1×4096×4096 on the H200, 0.19× cuBLAS).
// Here a CTA owns 32 columns and its 16 warps split K into 16-row chunks (warp w: chunks w, w + 16,
// …). A warp loads a chunk's 16 rows × 32 columns of W with 16-byte loads (lane (r, c) = (lane / 4,
// lane % 4): rows r, r + 8, columns 8c … 8c + 7; each row piece is one 64-byte segment), kDnUnroll
// chunks in flight, stages each chunk in its own 1 KiB of shared memory and reads it back with
// ldmatrix.trans as mma.sync B fragments (k pairs of one column). Then the 16 warps' 16 × 32 partial
// sums meet in shared memory (the staging bytes reused) and are added in warp order. Rows of a
// staged chunk are 64 bytes: chunk ^= (row >> 1) & 3 puts the 8 rows an ldmatrix reads in 8
// distinct 16-byte bank groups. Preconditions (decode_nmajor_ok): M ≤ 16, x row-major and W stored
// [K, N], K % 8 == 0, N % 8 == 0, every row of both 16-byte aligned.
// grid (ceil(N/32), 1, batch), 512 threads, kDnSmemBytes of dynamic shared memory.
constexpr int kDnN = 32, kDnWarps = 16, kDnThreads = 32 * kDnWarps, kDnUnroll = 4;
constexpr size_t kDnSmemBytes = (size_t)kDnWarps * 16 * kDnN * 4;  // the partial sums; staging is its first half

template <bool kBf16>
__global__ void __launch_bounds__(kDnThreads) gemm_decode_nmajor_kernel(const structura_gemm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  DYN_SMEM(uint16_t, smem);
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const uint16_t> A = operand16(p.a, b * p.stride_a), B = operand16(p.b, b * p.stride_b);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int n0 = blockIdx.x * kDnN;
  // p.pdl == 1 (W and x complete before the chain ahead began): stream them now, wait before the
  // epilogue; else wait for the kernels ahead first.
  if (p.pdl != 1) ptx::pdl_wait();

  // loads: rows g and g + 8 of a chunk, columns n0 + 8t … (N % 8 == 0: a piece is all in or all out)
  const bool col_in = n0 + 8 * t < N;
  const dev_ptr<const uint16_t> wcol = B + (col_in ? n0 + 8 * t : 0);
  const int st = g * kDnN + (((t ^ (g >> 1)) & 3) << 3);  // row g + 8: the same chunk swizzle, 8 rows on
  // ldmatrix.x4.trans h (columns 16h … 16h + 15): lane supplies row k = (lane & 7) + 8·(q & 1) of
  // 8-column chunk 2h + (q >> 1), q = lane / 8 — matrices (k 0–7 | 8–15) × (chunk 2h | 2h + 1)
  const int lk = (lane & 7) + 8 * ((lane >> 3) & 1), lch = lane >> 4;
  const int ld0 = lk * kDnN + ((((lch) ^ (lk >> 1)) & 3) << 3), ld1 = lk * kDnN + ((((2 + lch) ^ (lk >> 1)) & 3) << 3);
  const dev_ptr<uint16_t> stage = smem + warp * (16 * kDnN);
  // x rows g, g + 8 (rows past M read as zeros, their offsets clamped to row 0)
  const bool x0_in = g < M, x1_in = g + 8 < M;
  const dev_ptr<const uint16_t> x0 = A + (x0_in ? (int64_t)g * p.lda : 0), x1 = A + (x1_in ? (int64_t)(g + 8) * p.lda : 0);
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);

  float acc[4][4];
#pragma unroll
  for (int j = 0; j < 4; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc[j][e] = 0.f;

  const int chunks = (K + 15) / 16;
  for (int c0 = warp; c0 < chunks; c0 += kDnWarps * kDnUnroll) {
    uint4 w[kDnUnroll][2];
    uint32_t xa[kDnUnroll][4];
#pragma unroll
    for (int u = 0; u < kDnUnroll; u++) {
      const int k0 = (c0 + u * kDnWarps) * 16;  // past K when the chunk does not exist: all zeros
      const bool r0 = col_in && k0 + g < K, r1 = col_in && k0 + g + 8 < K;
      w[u][0] = r0 ? dev_cast<const uint4>(wcol + (int64_t)(k0 + g) * p.ldb)[0] : zero;
      w[u][1] = r1 ? dev_cast<const uint4>(wcol + (int64_t)(k0 + g + 8) * p.ldb)[0] : zero;
      // A fragment: (row g, k 2t, 2t + 1), (row g + 8, same), (row g, k 2t + 8, +9), (row g + 8, same);
      // K % 8 == 0: a pair is all in or all out
      const int ka = k0 + 2 * t, kb = ka + 8;
      xa[u][0] = x0_in && ka < K ? dev_cast<const uint32_t>(x0 + ka)[0] : 0u;
      xa[u][1] = x1_in && ka < K ? dev_cast<const uint32_t>(x1 + ka)[0] : 0u;
      xa[u][2] = x0_in && kb < K ? dev_cast<const uint32_t>(x0 + kb)[0] : 0u;
      xa[u][3] = x1_in && kb < K ? dev_cast<const uint32_t>(x1 + kb)[0] : 0u;
    }
#pragma unroll
    for (int u = 0; u < kDnUnroll; u++) {
      dev_cast<uint4>(stage + st)[0] = w[u][0];
      dev_cast<uint4>(stage + st + 8 * kDnN)[0] = w[u][1];
      __syncwarp();
      uint32_t bf[2][4];
      ptx::ldmatrix_x4_trans(bf[0], stage + ld0);
      ptx::ldmatrix_x4_trans(bf[1], stage + ld1);
      __syncwarp();  // the next chunk overwrites the stage
      const uint32_t (&a)[4] = xa[u];
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const uint32_t b0[2] = {bf[h][0], bf[h][1]}, b1[2] = {bf[h][2], bf[h][3]};
        mma16816<kBf16>(acc[2 * h], a, b0);
        mma16816<kBf16>(acc[2 * h + 1], a, b1);
      }
    }
  }
  __syncthreads();  // every warp is done with its stage: the buffer now holds the partial sums
  // [warp][16 rows][32 columns], column c of row r at c ^ 8·(r & 3): every row starts on bank 0, so
  // the flip puts a half-warp's float2 stores (rows g … g + 3) on distinct banks
  const dev_ptr<float> red = dev_cast<float>(smem);
  const int flip = (g & 3) * 8;  // the same for rows g and g + 8
#pragma unroll
  for (int j = 0; j < 4; j++) {
    const int o = warp * 16 * kDnN + g * kDnN + ((8 * j + 2 * t) ^ flip);
    dev_cast<float2>(red + o)[0] = make_float2(acc[j][0], acc[j][1]);
    dev_cast<float2>(red + o + 8 * kDnN)[0] = make_float2(acc[j][2], acc[j][3]);
  }
  __syncthreads();
  ptx::pdl_wait();  // with p.pdl == 1 the epilogue's inputs and out are the kernels ahead's; else a no-op
  const int row = threadIdx.x / kDnN, col = threadIdx.x % kDnN;  // 512 threads = 16 × 32 outputs
  const int c = col ^ ((row & 3) * 8);
  float s = 0.f;
#pragma unroll
  for (int w2 = 0; w2 < kDnWarps; w2++) s += red[w2 * 16 * kDnN + row * kDnN + c];
  make_epilogue(p, b).store_one(row, n0 + col, s, M, N);
}

// The f32 decode main loop of one thread: acc[m][r] += Σ over its k (4·gl + 256·i, 4 at a time) of
// X[m][k]·w_r[k] for the CTA group's 4 rows w_r (rows flagged out read as zeros); len % 4 == 0.
template <int kRows>
__device__ __forceinline__ void decode_f32_accumulate(float (&acc)[kRows][4], const dev_ptr<const float>& X, int64_t ldx,
                                                      const dev_ptr<const float> (&w)[4], const bool (&rin)[4], int M,
                                                      int len, int gl) {
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 2
  for (int k = 4 * gl; k < len; k += 256) {  // len % 4 == 0: a thread's 4 elements are all in
    float4 wv[4];
#pragma unroll
    for (int r = 0; r < 4; r++) wv[r] = rin[r] ? dev_cast<const float4>(w[r] + k)[0] : zero;
#pragma unroll
    for (int m = 0; m < kRows; m++) {
      if (m < M) {
        const float4 xv = dev_cast<const float4>(X + (int64_t)m * ldx + k)[0];
#pragma unroll
        for (int r = 0; r < 4; r++) {
          float a = acc[m][r];
          a = fmaf(xv.x, wv[r].x, a);
          a = fmaf(xv.y, wv[r].y, a);
          a = fmaf(xv.z, wv[r].z, a);
          a = fmaf(xv.w, wv[r].w, a);
          acc[m][r] = a;
        }
      }
    }
  }
}

// Decode shapes in float32: x [M ≤ 16, K] times Wᵀ, W stored [N, K] (a Linear weight), K % 4 == 0,
// rows 16-byte aligned. No tensor cores (float32 stays float32): W streamed once with 16-byte loads
// into FMA. A CTA owns 16 rows of W as 4 groups of 4; a group's 64 threads (two warps) walk K 4
// elements a thread, 256 a step, each thread holding its 4 rows of W so that every x element it loads
// serves 4 rows (x comes through L1: M/4 bytes of x a byte of W). The group's partial sums meet by
// butterfly shuffles (fixed order) and through shared memory between its two warps.
// grid (ceil(N/16), 1, batch), 256 threads, 2 KiB of static shared memory. kRows: the x rows a thread
// keeps accumulators for (4 when M ≤ 4, else 16).
template <int kRows>
__global__ void __launch_bounds__(kThreads) gemm_decode_f32_kernel(const structura_gemm_params p) {
  // [warp][m][row of the group], a warp's 64 floats padded to 68 so the final reads (warps 2·g2 for
  // g2 = 0…3 at once) fall on distinct banks
  constexpr int kRedPitch = 16 * 4 + 4;
  SMEM(float, red, [kThreads / 32 * kRedPitch]);
  ptx::pdl_trigger();  // a dependent launch after this one may start (it waits for us)
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const float> X = gptr(static_cast<const float*>(p.a)) + b * p.stride_a;
  const dev_ptr<const float> W = gptr(static_cast<const float*>(p.b)) + b * p.stride_b;
  const int warp = threadIdx.x >> 5, grp = warp >> 1, gl = threadIdx.x & 63;  // group, thread in group
  const int n0 = blockIdx.x * kDecN, r0 = n0 + 4 * grp;
  if (p.pdl != 1) {
    if (threadIdx.x < kDecN && n0 + (int)threadIdx.x < N)
      ptx::prefetch_l2(dev_cast<const uint16_t>(W + (int64_t)(n0 + threadIdx.x) * p.ldb), (uint32_t)K * 4u);
    ptx::pdl_wait();
  }
  bool rin[4];
  dev_ptr<const float> w[4];
#pragma unroll
  for (int r = 0; r < 4; r++) {
    rin[r] = r0 + r < N;
    w[r] = W + (rin[r] ? (int64_t)(r0 + r) * p.ldb : 0);  // rows past N are never read
  }
  float acc[kRows][4];
#pragma unroll
  for (int m = 0; m < kRows; m++)
#pragma unroll
    for (int r = 0; r < 4; r++) acc[m][r] = 0.f;
  decode_f32_accumulate<kRows>(acc, X, p.lda, w, rin, M, K, gl);
  const bool rank_in_loop = decode_rank_in_loop(p, b);  // T·Rᵀ as r more k
  if (rank_in_loop) {
    ptx::pdl_wait();  // T belongs to the kernels ahead until they finish
    const dev_ptr<const float> T = gptr(static_cast<const float*>(p.lr_t)) + b * p.stride_t;
    const dev_ptr<const float> R = gptr(static_cast<const float*>(p.lr_r)) + b * p.stride_r;
    dev_ptr<const float> rr[4];
#pragma unroll
    for (int r = 0; r < 4; r++) rr[r] = R + (rin[r] ? (int64_t)(r0 + r) * p.ldr : 0);
    decode_f32_accumulate<kRows>(acc, T, p.ldt, rr, rin, M, (int)p.r, gl);
  }
#pragma unroll
  for (int m = 0; m < kRows; m++)
#pragma unroll
    for (int r = 0; r < 4; r++) {
      float v = acc[m][r];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      acc[m][r] = v;
    }
  if ((threadIdx.x & 31) == 0) {
#pragma unroll
    for (int m = 0; m < kRows; m++)
#pragma unroll
      for (int r = 0; r < 4; r++) red[warp * kRedPitch + m * 4 + r] = acc[m][r];
  }
  __syncthreads();
  ptx::pdl_wait();  // with p.pdl == 1 the epilogue's inputs and out are the kernels ahead's; else a no-op
  const int row = threadIdx.x / kDecN, col = threadIdx.x % kDecN;  // 256 threads = 16 × 16 outputs
  if (row < kRows) {
    const int g2 = col >> 2, r = col & 3;
    const float s = red[2 * g2 * kRedPitch + row * 4 + r] + red[(2 * g2 + 1) * kRedPitch + row * 4 + r];
    make_epilogue(p, b, rank_in_loop).store_one(row, n0 + col, s, M, N);
  }
}

// Decode shapes in float32 with W stored [K, N] (x·W; dY·W in a Linear's backward): M ≤ 16, N % 4 == 0,
// rows 16-byte aligned. A CTA owns 32 columns: lane (r, q) = (lane / 8, lane % 8) of warp w takes
// columns 4q … 4q + 3 of rows k ≡ 4w + r (mod 32), 8 rows of W in flight a thread (16-byte loads), and
// every x element it loads serves its 4 columns. Sums over the 4 rows of a warp by shuffles, over the
// 8 warps through shared memory in warp order. grid (ceil(N/32), 1, batch), 256 threads, 16 KiB of
// static shared memory. kRows: the x rows a thread keeps accumulators for (4 when M ≤ 4, else 16).
constexpr int kFnN = 32, kFnUnroll = 8;

template <int kRows>
__global__ void __launch_bounds__(kThreads) gemm_decode_nmajor_f32_kernel(const structura_gemm_params p) {
  SMEM(float, red, [kThreads / 32][16][kFnN]);
  ptx::pdl_trigger();  // a dependent launch after this one may start (it waits for us)
  if (p.pdl != 1) ptx::pdl_wait();
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const float> X = gptr(static_cast<const float*>(p.a)) + b * p.stride_a;
  const dev_ptr<const float> W = gptr(static_cast<const float*>(p.b)) + b * p.stride_b;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, q = lane & 7;
  const int n0 = blockIdx.x * kFnN, c0 = n0 + 4 * q;
  const bool cin = c0 < N;  // N % 4 == 0: a thread's 4 columns are all in or all out
  const dev_ptr<const float> wc = W + (cin ? c0 : 0);
  float acc[kRows][4];
#pragma unroll
  for (int m = 0; m < kRows; m++)
#pragma unroll
    for (int c = 0; c < 4; c++) acc[m][c] = 0.f;
  const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int k0 = 4 * warp + (lane >> 3); k0 < K; k0 += 32 * kFnUnroll) {
    float4 wv[kFnUnroll];
#pragma unroll
    for (int u = 0; u < kFnUnroll; u++) {
      const int k = k0 + 32 * u;
      wv[u] = cin && k < K ? dev_cast<const float4>(wc + (int64_t)k * p.ldb)[0] : zero;
    }
#pragma unroll
    for (int u = 0; u < kFnUnroll; u++) {
      const int k = k0 + 32 * u;
      if (k >= K) break;
#pragma unroll
      for (int m = 0; m < kRows; m++) {
        if (m < M) {
          const float xv = X[(int64_t)m * p.lda + k];
          acc[m][0] = fmaf(xv, wv[u].x, acc[m][0]);
          acc[m][1] = fmaf(xv, wv[u].y, acc[m][1]);
          acc[m][2] = fmaf(xv, wv[u].z, acc[m][2]);
          acc[m][3] = fmaf(xv, wv[u].w, acc[m][3]);
        }
      }
    }
  }
  // the warp's 4 rows (lanes q, q + 8, q + 16, q + 24) into lane q
#pragma unroll
  for (int m = 0; m < kRows; m++)
#pragma unroll
    for (int c = 0; c < 4; c++) {
      float v = acc[m][c];
      v += __shfl_xor_sync(0xffffffffu, v, 8);
      v += __shfl_xor_sync(0xffffffffu, v, 16);
      acc[m][c] = v;
    }
  if (lane < 8) {
#pragma unroll
    for (int m = 0; m < kRows; m++)
#pragma unroll
      for (int c = 0; c < 4; c++) red[warp][m][4 * q + c] = acc[m][c];
  }
  __syncthreads();
  ptx::pdl_wait();  // with p.pdl == 1 the epilogue's inputs and out are the kernels ahead's; else a no-op
  const Epilogue e = make_epilogue(p, b);
  for (int o = threadIdx.x; o < kRows * kFnN; o += kThreads) {  // outputs (row o / 32, column o % 32)
    const int row = o / kFnN, col = o % kFnN;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kThreads / 32; w++) sum += red[w][row][col];
    e.store_one(row, n0 + col, sum, M, N);
  }
}

// Column mn of row k of a staged f32 tile: mn ^ 8·((k >> 2) & 3). The k-contiguous loader's warp
// stores 8 consecutive mn at 4 values of k (k0 + 0, 4, 8, 12); unflipped they share 8 banks (a row is
// 128 floats); the flip moves each k's run to its own 8 banks and keeps float4 groups whole.
__device__ __forceinline__ int f32_tile_col(int k, int mn) { return mn ^ (((k >> 2) & 3) << 3); }

// Stages a 128 (m or n) × 16 (k) f32 tile into dst[k][mn] (mn contiguous, flipped by f32_tile_col).
// kMN: the operand is stored with m/n contiguous (g(i = k, j = mn)), else k contiguous (g(i = mn, j = k)).
template <bool kMN>
__device__ __forceinline__ void load_tile_f32(dev_ptr<float> dst, dev_ptr<const float> src, int64_t ld, int mn0,
                                              int MN, int k0, int K, bool vec) {
  for (int q = threadIdx.x; q < kSBM * kSBK / 4; q += kThreads) {
    int i, j, lim, kr, mr;  // 4 consecutive elements of stored row i from column j
    if (kMN) {
      kr = q >> 5, mr = (q & 31) * 4;
      i = k0 + kr, j = mn0 + mr;
      lim = i < K ? MN - j : 0;
    } else {
      mr = q >> 2, kr = (q & 3) * 4;
      i = mn0 + mr, j = k0 + kr;
      lim = i < MN ? K - j : 0;
    }
    // Four named values, not an array: a dynamically indexed array (v[e] for e < lim) went wrong on
    // an H200 (elements past K were loaded as if in range; compute-sanitizer saw the reads) while the
    // emulator and the PTX were right, so the loads are straight-line and each one is guarded.
    float v0 = 0.f, v1 = 0.f, v2 = 0.f, v3 = 0.f;
    if (lim > 0) {
      const int64_t o = (int64_t)i * ld + j;
      if (vec && lim >= 4) {
        const float4 x = dev_cast<const float4>(src + o)[0];
        v0 = x.x, v1 = x.y, v2 = x.z, v3 = x.w;
      } else {
        v0 = src[o];
        if (lim > 1) v1 = src[o + 1];
        if (lim > 2) v2 = src[o + 2];
        if (lim > 3) v3 = src[o + 3];
      }
    }
    if (kMN) {
      dev_cast<float4>(dst + kr * kSBM + f32_tile_col(kr, mr))[0] = make_float4(v0, v1, v2, v3);
    } else {  // kr % 4 == 0: kr … kr + 3 share a flip
      const int c = f32_tile_col(kr, mr);
      dst[kr * kSBM + c] = v0;
      dst[(kr + 1) * kSBM + c] = v1;
      dst[(kr + 2) * kSBM + c] = v2;
      dst[(kr + 3) * kSBM + c] = v3;
    }
  }
}

// grid (ceil(N/128), ceil(M/128), batch), 256 threads, static shared memory 16 KiB.
template <bool kTA, bool kTB>
__global__ void __launch_bounds__(kThreads) gemm_f32_kernel(const structura_gemm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  SMEM(float, As, [kSBK * kSBM]);
  SMEM(float, Bs, [kSBK * kSBN]);
  const dev_ptr<float> as = As + 0, bs = Bs + 0;
  const int M = (int)p.m, N = (int)p.n, K = (int)p.k;
  const int64_t b = blockIdx.z;
  const dev_ptr<const float> A = gptr(static_cast<const float*>(p.a)) + b * p.stride_a;
  const dev_ptr<const float> B = gptr(static_cast<const float*>(p.b)) + b * p.stride_b;
  const int m0 = blockIdx.y * kSBM, n0 = blockIdx.x * kSBN;
  const bool vec_a = p.lda % 4 == 0 && (reinterpret_cast<uintptr_t>(p.a) + (uintptr_t)(b * p.stride_a * 4)) % 16 == 0;
  const bool vec_b = p.ldb % 4 == 0 && (reinterpret_cast<uintptr_t>(p.b) + (uintptr_t)(b * p.stride_b * 4)) % 16 == 0;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += kSBK) {
    load_tile_f32<kTA>(as, A, p.lda, m0, M, k0, K, vec_a);
    load_tile_f32<!kTB>(bs, B, p.ldb, n0, N, k0, K, vec_b);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSBK; kk++) {
      float a[8], bb[8];
      const float4 a0 = dev_cast<float4>(as + kk * kSBM + f32_tile_col(kk, 4 * ty))[0];
      const float4 a1 = dev_cast<float4>(as + kk * kSBM + f32_tile_col(kk, 64 + 4 * ty))[0];
      const float4 b0 = dev_cast<float4>(bs + kk * kSBN + f32_tile_col(kk, 4 * tx))[0];
      const float4 b1 = dev_cast<float4>(bs + kk * kSBN + f32_tile_col(kk, 64 + 4 * tx))[0];
      a[0] = a0.x, a[1] = a0.y, a[2] = a0.z, a[3] = a0.w, a[4] = a1.x, a[5] = a1.y, a[6] = a1.z, a[7] = a1.w;
      bb[0] = b0.x, bb[1] = b0.y, bb[2] = b0.z, bb[3] = b0.w, bb[4] = b1.x, bb[5] = b1.y, bb[6] = b1.z, bb[7] = b1.w;
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], bb[j], acc[i][j]);
    }
    __syncthreads();  // the next slab overwrites As/Bs
  }

  // A thread's columns come in quads already: each goes through the epilogue in a loop that is not
  // unrolled (value() 4 times in the code, not 64: see the tensor-core kernels' epilogue).
  const Epilogue e = make_epilogue(p, b);
#pragma unroll 1
  for (int q = 0; q < 16; q++) {  // row i = q / 2 of the thread's 8, column half h = q % 2
    const int i = q >> 1, h = q & 1;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int qq = 0; qq < 16; qq++) {  // constant indices into acc: it stays in registers
      const int ii = qq >> 1, j = 4 * (qq & 1);
      if (qq == q) v = make_float4(acc[ii][j], acc[ii][j + 1], acc[ii][j + 2], acc[ii][j + 3]);
    }
    const int row = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
    e.store_quad(row, n0 + 64 * h + 4 * tx, v, M, N);
  }
}

// Dynamic shared memory above 48 KiB must be allowed per kernel (and per device), once.
template <auto K>
cudaError_t allow_smem(size_t bytes) {
  static std::atomic<uint64_t> done{0};  // one bit a device
  int dev = 0;
  if (cudaError_t e = cudaGetDevice(&dev)) return e;
  const uint64_t bit = 1ull << (dev & 63);
  if (done.load(std::memory_order_acquire) & bit) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(K, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
  if (e == cudaSuccess) done.fetch_or(bit, std::memory_order_acq_rel);
  return e;
}

template <bool kBf16, bool kTA, bool kTB>
cudaError_t launch_mma_kernel(const structura_gemm_params& p, dim3 grid, cudaStream_t s) {
  if (cudaError_t e = allow_smem<gemm_mma_kernel<kBf16, kTA, kTB>>(kMmaSmemBytes)) return e;
  return structura::launch<gemm_mma_kernel<kBf16, kTA, kTB>>(grid, dim3(kThreads), kMmaSmemBytes, s, p);
}

template <bool kBf16>
cudaError_t launch_mma(const structura_gemm_params& p, dim3 grid, cudaStream_t s) {
  if (p.trans_a) return p.trans_b ? launch_mma_kernel<kBf16, true, true>(p, grid, s) : launch_mma_kernel<kBf16, true, false>(p, grid, s);
  return p.trans_b ? launch_mma_kernel<kBf16, false, true>(p, grid, s) : launch_mma_kernel<kBf16, false, false>(p, grid, s);
}

// Which kernel takes the 16-bit products: 0 auto (wgmma on sm_90 when the build has sm_90a code and
// the layout fits, else mma.sync), 1 mma.sync always, 2 wgmma whenever the layout fits (tests), 3 the
// TMA wgmma kernel whenever it fits (a batched product: the cp.async wgmma kernel).
std::atomic<int> g_gemm_kernel{0};
// gemm_set_row_tiles: the row tiles one launch covers (grid.y's limit; lowered by tests)
std::atomic<int> g_gemm_row_tiles{65535};

#if defined(STRUCTURA_CUDA_EMU) || defined(STRUCTURA_HAVE_SM90A)
constexpr bool kHaveWgmma = true;
#else
constexpr bool kHaveWgmma = false;
#endif

// Whether the current device is compute capability 9.0 (the one sm_90a code runs on).
bool device_is_sm90() {
  int major = 0, minor = 0, sms = 0;
  return STRUCTURA_CUDA_FN(cuda_current_device)(&major, &minor, &sms) == 0 && major == 9 && minor == 0;
}

// The wgmma kernel's layout: x·Wᵀ (A [M, K], B [N, K]), K ≥ 8 with K % 8 == 0, 16-byte rows.
bool wgmma_fits(const structura_gemm_params& p) {
  return !p.trans_a && p.trans_b && p.k >= 8 && p.k % 8 == 0 && rows16(p.a, p.lda, p.stride_a) && rows16(p.b, p.ldb, p.stride_b);
}

// Whether 'auto' may pick the wgmma kernel. False until it has passed test:gpu and the fidelity
// wgmma cases on a real sm_90 device: until then it runs only when asked for (setGemmKernel('wgmma'),
// as test/conformance and the GPU bench do), so nobody gets an unverified kernel by default.
constexpr bool kWgmmaByDefault = false;

// Whether 'auto' may pick the TMA kernel (false until it has run on a GPU), independently of
// kWgmmaByDefault: with only this set, 'auto' takes the TMA kernel where it fits and mma.sync elsewhere.
constexpr bool kTmaByDefault = false;

// Whether STRUCTURA_CUDA_DISABLE switched a kernel off (structura_cuda.h): the dispatch below then
// takes the kernel it replaced.
bool disabled(int sw) { return STRUCTURA_CUDA_FN(cuda_disabled)(sw) != 0; }

// Whether `mode` may run either wgmma kernel on the current device (then callers give large products
// B stored [N, K]: gemm_wgmma_active).
bool wgmma_allowed(int mode) {
  if (mode == 1 || (mode == 0 && !kWgmmaByDefault && !kTmaByDefault)) return false;
  if (disabled(STRUCTURA_SW_WGMMA) && disabled(STRUCTURA_SW_WGMMA_TMA)) return false;
  return kHaveWgmma && device_is_sm90();
}

// The shapes the wgmma kernels take: the x·Wᵀ layout, and in 'auto' only products wide enough for a
// 128×256 tile (on a thin one it wastes most of its work, where mma.sync's 128×128 wastes less).
bool wgmma_shape(const structura_gemm_params& p, int mode) {
  return wgmma_fits(p) && (mode != 0 || (p.n > 128 && p.m > 64));
}

// The TMA kernel: asked for (mode 3; a batched product then takes the cp.async wgmma kernel), or in
// 'auto' once kTmaByDefault; one batch (2-D tensor maps).
bool use_tma(const structura_gemm_params& p) {
  const int mode = g_gemm_kernel.load(std::memory_order_relaxed);
  if ((mode != 3 && !(mode == 0 && kTmaByDefault)) || disabled(STRUCTURA_SW_WGMMA_TMA)) return false;
  return p.batch == 1 && wgmma_allowed(mode) && wgmma_shape(p, mode);
}

// The cp.async wgmma kernel: asked for (mode 2, or mode 3 where the TMA kernel does not fit), or in
// 'auto' once kWgmmaByDefault.
bool use_wgmma(const structura_gemm_params& p) {
  const int mode = g_gemm_kernel.load(std::memory_order_relaxed);
  if ((mode != 2 && mode != 3 && !(mode == 0 && kWgmmaByDefault)) || disabled(STRUCTURA_SW_WGMMA)) return false;
  return wgmma_allowed(mode) && wgmma_shape(p, mode);
}

// CTAs of the persistent TMA kernel: one an SM (197 KiB of shared memory each). In emulation 3, so that
// the suites' small products give a CTA several tiles.
int persistent_ctas() {
#ifdef STRUCTURA_CUDA_EMU
  return 3;
#else
  int major = 0, minor = 0, sms = 0;
  return STRUCTURA_CUDA_FN(cuda_current_device)(&major, &minor, &sms) == 0 && sms > 0 ? sms : 132;
#endif
}

// lora's product (p.pdl = 1) as a dependent launch: its main k-tiles stream while T is finished.
template <auto K>
int launch_tma(const structura_gemm_params& p, const CUtensorMap (&maps)[4], dim3 grid, cudaStream_t s) {
  if (cudaError_t e = allow_smem<K>(kTmaSmemBytes)) return (int)e;
  if (p.pdl == 1)
    return (int)structura::launch_pdl<K>(grid, dim3(kTThreads), kTmaSmemBytes, s, maps[0], maps[1], maps[2], maps[3], p);
  return (int)structura::launch<K>(grid, dim3(kTThreads), kTmaSmemBytes, s, maps[0], maps[1], maps[2], maps[3], p);
}

// Encodes the four tensor maps of gemm_tma_kernel: A [M, K] and B [N, K] in 128- and 256-row boxes of
// 64 k, and the rank term's T [M, r] and R [N, r] the same way when it runs as k-tiles (else copies
// of A's and B's maps, never read).
int tma_maps(const structura_gemm_params& p, CUtensorMap (&m)[4]) {
  if (int e = tma_encode_2d(&m[0], p.a, (uint64_t)p.k, (uint64_t)p.m, (uint64_t)p.lda * 2, kWBK, kWBM)) return e;
  if (int e = tma_encode_2d(&m[1], p.b, (uint64_t)p.k, (uint64_t)p.n, (uint64_t)p.ldb * 2, kWBK, kWBN)) return e;
  if (!wgmma_rank_ok(p)) {
    m[2] = m[0];
    m[3] = m[1];
    return 0;
  }
  if (int e = tma_encode_2d(&m[2], p.lr_t, (uint64_t)p.r, (uint64_t)p.m, (uint64_t)p.ldt * 2, kWBK, kWBM)) return e;
  return tma_encode_2d(&m[3], p.lr_r, (uint64_t)p.r, (uint64_t)p.n, (uint64_t)p.ldr * 2, kWBK, kWBN);
}

// Which decode kernels run (setDecodeKernel): 1 (the default: x·Wᵀ on v1, plain loads, timed on the
// H200), 2 (x·Wᵀ on v2, kStream), both with the N-major decode kernel for x·W; 0: none (M ≤ 16 goes
// to the tile kernels, as before the decode kernels: a baseline for the bench, and a way around them).
std::atomic<int> g_decode_version{1};

template <auto K, class... Extra>
int launch_decode(const structura_gemm_params& p, dim3 grid, cudaStream_t s, Extra... extra) {
  if (p.pdl != 2) return (int)structura::launch_pdl<K>(grid, dim3(kThreads), 0, s, p, extra...);
  return (int)structura::launch<K>(grid, dim3(kThreads), 0, s, p, extra...);
}

// A zeroed allocation on the current device, made on first use and kept for the life of the process
// (like a GEMM library's workspace; its CUDA context lives as long): one per slot — kScratchLora, the
// one-launch lora's four counters, zeroed again by each launch's last CTA; kScratchSplit, the split-K
// decode's float32 slices and tile counters (the counters likewise zeroed by the CTAs that use them).
// Per device, not per stream: correct while every launch of a device goes to its one stream (csrc/device.cc);
// two streams running these kernels at once would share the counters, so a second stream needs them per stream.
enum { kScratchLora = 0, kScratchSplit = 1, kScratchSlots = 2 };
constexpr int64_t kSplitWsFloats = int64_t(1) << 20, kSplitCtrs = 8192;  // 4 MiB of slices, 8192 counters
int persistent_scratch(int slot, size_t bytes, void** out) {
  static std::mutex mu;
  static void* bufs[kScratchSlots][64] = {};
  int dev = 0;
  if (cudaError_t e = cudaGetDevice(&dev)) return (int)e;
  if (dev < 0 || dev >= 64) return (int)cudaErrorInvalidDevice;
  std::lock_guard<std::mutex> lock(mu);
  if (!bufs[slot][dev]) {
    void* p = nullptr;
    if (cudaError_t e = cudaMalloc(&p, bytes)) return (int)e;
    if (cudaError_t e = cudaMemset(p, 0, bytes)) {
      cudaFree(p);
      return (int)e;
    }
    bufs[slot][dev] = p;
  }
  *out = bufs[slot][dev];
  return 0;
}

int decode_split_scratch(SplitK* out) {
  void* p = nullptr;
  if (int e = persistent_scratch(kScratchSplit, (size_t)kSplitWsFloats * 4 + (size_t)kSplitCtrs * 4, &p)) return e;
  out->ws = static_cast<float*>(p);
  out->ctr = reinterpret_cast<int*>(static_cast<float*>(p) + kSplitWsFloats);
  return 0;
}

// How many K-slices the 16-bit decode kernel takes: 1, unless its ceil(N/16) CTAs would leave much of
// the GPU idle (fewer than two an SM: a 1024-column GQA k/v projection has 64) and K is long enough
// that slices of at least 1024 remain; then up to 8, so that about two CTAs an SM stream W.
int decode_splits(const structura_gemm_params& p) {
  if (p.batch != 1 || p.k < 2048 || disabled(STRUCTURA_SW_DECODE_SPLITK)) return 1;
  const int64_t tiles = (p.n + kDecN - 1) / kDecN, want = 2 * (int64_t)persistent_ctas();
  if (tiles >= want || tiles > kSplitCtrs) return 1;
  int64_t splits = std::min<int64_t>({(want + tiles - 1) / tiles, p.k / 1024, 8});
  if (splits < 2) return 1;
  splits = (p.k + decode_slice((int)p.k, (int)splits) - 1) / decode_slice((int)p.k, (int)splits);
  if (splits < 2 || splits * 16 * p.n > kSplitWsFloats) return 1;
  return (int)splits;
}

// The decode kernel's preconditions: M ≤ 16, x row-major and W stored [N, K], K % 8 == 0, every row
// of both 16-byte aligned in every batch.
bool decode_ok(const structura_gemm_params& p) {
  if (p.m > kDecMaxM || p.trans_a || !p.trans_b || p.k % 8 != 0 || p.k == 0) return false;
  if (p.lda % 8 != 0 || p.ldb % 8 != 0 || p.stride_a % 8 != 0 || p.stride_b % 8 != 0) return false;
  return reinterpret_cast<uintptr_t>(p.a) % 16 == 0 && reinterpret_cast<uintptr_t>(p.b) % 16 == 0;
}

// The float32 decode kernel's preconditions: M ≤ 16, x row-major and W stored [N, K], K % 4 == 0,
// every row of both 16-byte aligned in every batch.
bool decode_f32_ok(const structura_gemm_params& p) {
  if (p.m > kDecMaxM || p.trans_a || !p.trans_b || p.k % 4 != 0 || p.k == 0) return false;
  if (p.lda % 4 != 0 || p.ldb % 4 != 0 || p.stride_a % 4 != 0 || p.stride_b % 4 != 0) return false;
  return reinterpret_cast<uintptr_t>(p.a) % 16 == 0 && reinterpret_cast<uintptr_t>(p.b) % 16 == 0;
}

// The float32 N-major decode kernel's preconditions: M ≤ 16, x row-major and W stored [K, N], N % 4 == 0,
// W's rows 16-byte aligned in every batch (x is read by element).
bool decode_nmajor_f32_ok(const structura_gemm_params& p) {
  if (p.m > kDecMaxM || p.trans_a || p.trans_b || p.k == 0 || p.n % 4 != 0) return false;
  if (p.ldb % 4 != 0 || p.stride_b % 4 != 0) return false;
  return reinterpret_cast<uintptr_t>(p.b) % 16 == 0;
}

// The N-major decode kernel's preconditions: M ≤ 16, x row-major and W stored [K, N], K % 8 == 0,
// N % 8 == 0, every row of both 16-byte aligned in every batch.
bool decode_nmajor_ok(const structura_gemm_params& p) {
  if (p.m > kDecMaxM || p.trans_a || p.trans_b || p.k % 8 != 0 || p.k == 0 || p.n % 8 != 0) return false;
  if (p.lda % 8 != 0 || p.ldb % 8 != 0 || p.stride_a % 8 != 0 || p.stride_b % 8 != 0) return false;
  return reinterpret_cast<uintptr_t>(p.a) % 16 == 0 && reinterpret_cast<uintptr_t>(p.b) % 16 == 0;
}

template <auto K>
int launch_decode_nmajor(const structura_gemm_params& p, cudaStream_t s) {
  const dim3 grid((unsigned)((p.n + kDnN - 1) / kDnN), 1u, (unsigned)p.batch);
  if (p.pdl != 2) return (int)structura::launch_pdl<K>(grid, dim3(kDnThreads), kDnSmemBytes, s, p);
  return (int)structura::launch<K>(grid, dim3(kDnThreads), kDnSmemBytes, s, p);
}

// Whether lora at decode runs as one launch (lora_decode_kernel) or as the chain (setLoraDecode).
std::atomic<bool> g_lora_fused{true};

}  // namespace

// ------------------------------------------------------------------------------------------------
// launchers

extern "C" int STRUCTURA_CUDA_FN(lora_decode)(const structura_gemm_params* p, const structura_lora_t_params* t,
                                              const void* a, int64_t lda_a, int64_t kx, int64_t kc, int* taken,
                                              void* stream) {
  *taken = 0;
  if (!g_lora_fused.load(std::memory_order_relaxed) || g_decode_version.load(std::memory_order_relaxed) == 0 ||
      disabled(STRUCTURA_SW_LORA_DECODE))
    return 0;
  if ((p->dtype != STRUCTURA_DT_BF16 && p->dtype != STRUCTURA_DT_F16) || p->batch != 1 || p->m < 1 || p->m > kDecMaxM ||
      p->n < 1 || !has_lowrank(*p) || p->lr_t != t->t || p->r != t->cols || p->ldt < p->r || p->ldr < p->r)
    return 0;
  // x row-major with 16-byte aligned rows; W (when there is one) as the decode kernel reads it
  if (p->trans_a || p->lda % 8 != 0 || reinterpret_cast<uintptr_t>(p->a) % 16 != 0 || p->k < 0 ||
      (p->k > 0 && (!decode_ok(*p) || p->k != kx)))
    return 0;
  // T is x's dtype, rows of A are 16-byte aligned slices of kc (a multiple of 8) along kx
  if (t->dtype != (p->dtype == STRUCTURA_DT_BF16 ? STRUCTURA_T_BF16 : STRUCTURA_T_F16) || t->m != p->m ||
      lda_a % 8 != 0 || reinterpret_cast<uintptr_t>(a) % 16 != 0 || kx < 8 || kx % 8 != 0 || kx > INT32_MAX ||
      kc < 8 || kc % 8 != 0 || t->splits != (kx + kc - 1) / kc || t->group < 1)
    return 0;
  const int64_t groups = (t->cols + kDecN - 1) / kDecN, producers = groups * t->splits;
  const int64_t ctas = producers + (p->n + kDecN - 1) / kDecN;
  if (ctas > INT32_MAX || groups > INT32_MAX) return 0;
  LoraFold f{a, lda_a, kx, kc, (int)groups, nullptr};
  void* sync = nullptr;
  if (int e = persistent_scratch(kScratchLora, 4 * sizeof(int), &sync)) return e;
  f.sync = static_cast<int*>(sync);
  *taken = 1;
  const cudaStream_t s = (cudaStream_t)stream;
  const dim3 grid((unsigned)ctas);
  const int e = p->dtype == STRUCTURA_DT_BF16
                    ? (int)structura::launch_pdl<lora_decode_kernel<true>>(grid, dim3(kThreads), 0, s, *p, *t, f)
                    : (int)structura::launch_pdl<lora_decode_kernel<false>>(grid, dim3(kThreads), 0, s, *p, *t, f);
  if (e != 0) cudaMemsetAsync(f.sync, 0, 4 * sizeof(int), s);  // a launch that stopped half-way leaves counts behind
  return e;
}

extern "C" int STRUCTURA_CUDA_FN(lora_set_fused)(int on) { return g_lora_fused.exchange(on != 0) ? 1 : 0; }

extern "C" int STRUCTURA_CUDA_FN(gemm_wgmma_active)(void) {
  return wgmma_allowed(g_gemm_kernel.load(std::memory_order_relaxed)) ? 1 : 0;
}

extern "C" int STRUCTURA_CUDA_FN(gemm_set_decode)(int version) {
  if (version < 0 || version > 2) return -1;
  return g_decode_version.exchange(version);
}

extern "C" int STRUCTURA_CUDA_FN(gemm_set_kernel)(int mode) {
  if (mode < 0 || mode > 3) return -1;
  return g_gemm_kernel.exchange(mode);
}

extern "C" int STRUCTURA_CUDA_FN(gemm_set_row_tiles)(int tiles) {
  if (tiles < 1 || tiles > 65535) return -1;
  return g_gemm_row_tiles.exchange(tiles);
}

extern "C" int STRUCTURA_CUDA_FN(gemm)(const structura_gemm_params* p, void* stream) {
  const bool dt_ok = p->dtype == STRUCTURA_DT_F32 || p->dtype == STRUCTURA_DT_F16 || p->dtype == STRUCTURA_DT_BF16;
  if (!dt_ok || (p->out_dtype != STRUCTURA_DT_F32 && p->out_dtype != p->dtype)) return (int)cudaErrorInvalidValue;
  if (p->act < STRUCTURA_ACT_NONE || p->act > STRUCTURA_ACT_GELU) return (int)cudaErrorInvalidValue;
  if (p->m < 0 || p->n < 0 || p->k < 0 || p->batch < 0 || p->r < 0) return (int)cudaErrorInvalidValue;
  if (p->m == 0 || p->n == 0 || p->batch == 0) return 0;
  if (!p->out || (p->k > 0 && (!p->a || !p->b))) return (int)cudaErrorInvalidValue;  // K = 0 reads neither
  // the stored row lengths: op(A) is M×K, op(B) is K×N
  const int64_t a_cols = p->trans_a ? p->m : p->k, b_cols = p->trans_b ? p->k : p->n;
  if (p->lda < a_cols || p->ldb < b_cols || p->ldc < p->n) return (int)cudaErrorInvalidValue;
  if (p->residual && p->ldres < p->n) return (int)cudaErrorInvalidValue;
  if (p->lr_t && p->lr_r && p->lr_scale != 0.f && (p->ldt < p->r || p->ldr < p->r)) return (int)cudaErrorInvalidValue;
  const int64_t tiles_m = (p->m + kBM - 1) / kBM, tiles_n = (p->n + kBN - 1) / kBN;
  if (p->m > INT32_MAX - kBM || p->n > INT32_MAX - kBN || p->k > INT32_MAX - kBK || p->r > INT32_MAX ||
      p->batch > 65535 || tiles_n > INT32_MAX)
    return (int)cudaErrorInvalidValue;
  const int row_tiles = g_gemm_row_tiles.load(std::memory_order_relaxed);
  if (tiles_m > row_tiles) {
    // More row tiles than grid.y holds (8.4 M rows: a batch of tokens folded into rows): in launches of
    // 65535 tiles, each pointer that walks M moved to the chunk's first row (A's column with trans_a).
    const int64_t rows = int64_t(row_tiles) * kBM;
    const int64_t ei = p->dtype == STRUCTURA_DT_F32 ? 4 : 2, eo = p->out_dtype == STRUCTURA_DT_F32 ? 4 : 2;
    for (int64_t m0 = 0; m0 < p->m; m0 += rows) {
      structura_gemm_params q = *p;
      q.m = std::min(rows, p->m - m0);
      q.out = static_cast<char*>(p->out) + m0 * p->ldc * eo;
      if (p->a) q.a = static_cast<const char*>(p->a) + (p->trans_a ? m0 : m0 * p->lda) * ei;
      if (p->c) q.c = static_cast<const char*>(p->c) + m0 * p->ldc * eo;
      if (p->residual) q.residual = static_cast<const char*>(p->residual) + m0 * p->ldres * eo;
      if (p->lr_t) q.lr_t = static_cast<const char*>(p->lr_t) + m0 * p->ldt * ei;
      if (int e = STRUCTURA_CUDA_FN(gemm)(&q, stream)) return e;
    }
    return 0;
  }
  const cudaStream_t s = (cudaStream_t)stream;
  const int decode = g_decode_version.load(std::memory_order_relaxed);
  if (p->dtype != STRUCTURA_DT_F32 && decode > 0 && decode_ok(*p)) {
    const int splits = decode_splits(*p);
    SplitK sk{nullptr, nullptr};
    if (splits > 1)
      if (int e = decode_split_scratch(&sk)) return e;
    const dim3 dgrid((unsigned)((p->n + kDecN - 1) / kDecN), (unsigned)splits, (unsigned)p->batch);
    const bool stream = decode == 2;
    if (p->dtype == STRUCTURA_DT_BF16)
      return stream ? launch_decode<gemm_decode_kernel<true, true>>(*p, dgrid, s, sk) : launch_decode<gemm_decode_kernel<true, false>>(*p, dgrid, s, sk);
    return stream ? launch_decode<gemm_decode_kernel<false, true>>(*p, dgrid, s, sk) : launch_decode<gemm_decode_kernel<false, false>>(*p, dgrid, s, sk);
  }
  if (p->dtype == STRUCTURA_DT_F32 && decode > 0 && decode_f32_ok(*p) && !disabled(STRUCTURA_SW_DECODE_F32)) {
    const dim3 dgrid((unsigned)((p->n + kDecN - 1) / kDecN), 1u, (unsigned)p->batch);
    if (p->m <= 4) return launch_decode<gemm_decode_f32_kernel<4>>(*p, dgrid, s);
    return launch_decode<gemm_decode_f32_kernel<16>>(*p, dgrid, s);
  }
  if (p->dtype == STRUCTURA_DT_F32 && decode > 0 && decode_nmajor_f32_ok(*p) && !disabled(STRUCTURA_SW_DECODE_NMAJOR_F32)) {
    const dim3 dgrid((unsigned)((p->n + kFnN - 1) / kFnN), 1u, (unsigned)p->batch);
    if (p->m <= 4) return launch_decode<gemm_decode_nmajor_f32_kernel<4>>(*p, dgrid, s);
    return launch_decode<gemm_decode_nmajor_f32_kernel<16>>(*p, dgrid, s);
  }
  if (p->dtype != STRUCTURA_DT_F32 && decode > 0 && decode_nmajor_ok(*p) && !disabled(STRUCTURA_SW_DECODE_NMAJOR)) {
    if (p->dtype == STRUCTURA_DT_BF16) return launch_decode_nmajor<gemm_decode_nmajor_kernel<true>>(*p, s);
    return launch_decode_nmajor<gemm_decode_nmajor_kernel<false>>(*p, s);
  }
  if (p->dtype != STRUCTURA_DT_F32 && use_tma(*p)) {
    CUtensorMap maps[4];
    if (int e = tma_maps(*p, maps)) return e;
    const int64_t tiles = ((p->n + kWBN - 1) / kWBN) * ((p->m + kWBM - 1) / kWBM);
    const dim3 tgrid((unsigned)std::min<int64_t>(tiles, persistent_ctas()), 1u, 1u);
    if (p->dtype == STRUCTURA_DT_BF16) return launch_tma<gemm_tma_kernel<true>>(*p, maps, tgrid, s);
    return launch_tma<gemm_tma_kernel<false>>(*p, maps, tgrid, s);
  }
  if (p->dtype != STRUCTURA_DT_F32 && use_wgmma(*p)) {
    const dim3 wgrid((unsigned)((p->n + kWBN - 1) / kWBN), (unsigned)((p->m + kWBM - 1) / kWBM), (unsigned)p->batch);
    if (p->dtype == STRUCTURA_DT_BF16) {
      if (cudaError_t e = allow_smem<gemm_wgmma_kernel<true>>(kWgmmaSmemBytes)) return (int)e;
      return (int)structura::launch<gemm_wgmma_kernel<true>>(wgrid, dim3(kWThreads), kWgmmaSmemBytes, s, *p);
    }
    if (cudaError_t e = allow_smem<gemm_wgmma_kernel<false>>(kWgmmaSmemBytes)) return (int)e;
    return (int)structura::launch<gemm_wgmma_kernel<false>>(wgrid, dim3(kWThreads), kWgmmaSmemBytes, s, *p);
  }
  const dim3 grid((unsigned)tiles_n, (unsigned)tiles_m, (unsigned)p->batch);
  if (p->dtype == STRUCTURA_DT_BF16) return (int)launch_mma<true>(*p, grid, s);
  if (p->dtype == STRUCTURA_DT_F16) return (int)launch_mma<false>(*p, grid, s);
  const dim3 block(kThreads);
  if (p->trans_a) {
    if (p->trans_b) return (int)structura::launch<gemm_f32_kernel<true, true>>(grid, block, 0, s, *p);
    return (int)structura::launch<gemm_f32_kernel<true, false>>(grid, block, 0, s, *p);
  }
  if (p->trans_b) return (int)structura::launch<gemm_f32_kernel<false, true>>(grid, block, 0, s, *p);
  return (int)structura::launch<gemm_f32_kernel<false, false>>(grid, block, 0, s, *p);
}
