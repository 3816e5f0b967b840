// fidelity_kernels.cu — the kernels of the emulator-fidelity test (issue 4 item 7): every cuda/ptx.cuh
// wrapper and the emulated intrinsics the kernels rely on, each in a small kernel whose outputs are
// plain words, so that main.cc can compare the GPU with the emulator bit for bit.
//
// Compiled twice (see fidelity.h): nvcc → fid_gpu_* (the inline PTX on silicon), and
// g++ -x c++ -DSTRUCTURA_CUDA_EMU -Icuda -Icuda/emu → fid_emu_* (cuda/emu). Kernels and helpers have
// internal linkage: the nvcc host stub of a kernel and its emulated twin share a C++ name.
// Memory is touched only through gptr / dev_ptr / SMEM / DYN_SMEM (cuda/emu/README.md), so the
// emulator checks every access these kernels make.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fidelity.h"
#include "launch.cuh"
#include "ptx.cuh"
#include "tma.cuh"
#ifdef STRUCTURA_CUDA_EMU
#include "structura_emu.h"
#endif

namespace {

// ---- host side: buffers and error reporting ---------------------------------------------------------

// "where: cudaErrorX: description" (+ the emulator's report) into msg; returns the code.
int report(cudaError_t e, const char* where, char* msg, size_t len) {
  if (e == cudaSuccess) {
    if (len) msg[0] = 0;
    return 0;
  }
#ifdef STRUCTURA_CUDA_EMU
  char emu_msg[2048] = "";
  structura_emu_last_error(emu_msg, sizeof emu_msg);
  snprintf(msg, len, "%s: %s: %s%s%s", where, cudaGetErrorName(e), cudaGetErrorString(e), emu_msg[0] ? " — " : "",
           emu_msg);
#else
  snprintf(msg, len, "%s: %s: %s", where, cudaGetErrorName(e), cudaGetErrorString(e));
#endif
  cudaGetLastError();
  return (int)e;
}

// Device copies of host arrays, freed together; the first failure is kept and reported once.
struct Dev {
  void* p[16];
  int n = 0;
  cudaError_t err = cudaSuccess;
  const char* where = "";
  ~Dev() {
    for (int i = 0; i < n; i++) cudaFree(p[i]);
  }
  template <class T> T* alloc(size_t count, const T* host = nullptr) {
    if (err != cudaSuccess) return nullptr;
    void* q = nullptr;
    cudaError_t e = cudaMalloc(&q, count * sizeof(T));
    if (e != cudaSuccess) return fail(e, "cudaMalloc"), nullptr;
    p[n++] = q;
    if (host) e = cudaMemcpy(q, host, count * sizeof(T), cudaMemcpyHostToDevice);
    else e = cudaMemset(q, 0, count * sizeof(T));
    if (e != cudaSuccess) return fail(e, "cudaMemcpy h2d"), nullptr;
    return static_cast<T*>(q);
  }
  template <class T> void download(T* host, const T* dev, size_t count) {
    if (err != cudaSuccess) return;
    cudaError_t e = cudaMemcpy(host, dev, count * sizeof(T), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) fail(e, "cudaMemcpy d2h");
  }
  void launched(cudaError_t e, const char* kernel) {
    if (err != cudaSuccess) return;
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) fail(e, kernel);
  }
  void fail(cudaError_t e, const char* w) {
    err = e;
    where = w;
  }
  int result(char* msg, size_t len) { return report(err, where, msg, len); }
};

// ---- mma.sync / mma.sp ---------------------------------------------------------------------------

struct MmaParams {
  const uint32_t* a;
  const uint32_t* b;
  const float* c;
  const uint32_t* e;
  float* d;
  int ntiles;
};

// One tile per warp: lane l loads its registers from [tile][l][0..3], runs the mma, stores d.
template <int Op, int Sel>
__global__ void mma_kernel(MmaParams p) {
  const int lane = threadIdx.x % 32;
  const int tile = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (tile >= p.ntiles) return;  // whole warps only: ntiles counts warps
  const dev_ptr<const uint32_t> A = gptr(p.a), B = gptr(p.b), E = gptr(p.e);
  const dev_ptr<const float> C = gptr(p.c);
  const dev_ptr<float> D = gptr(p.d);
  const int64_t base = ((int64_t)tile * 32 + lane) * 4;
  uint32_t a[4], b[4];
  float c[4], d[4];
  for (int i = 0; i < 4; i++) {
    a[i] = A[base + i];
    b[i] = B[base + i];
    c[i] = C[base + i];
  }
  if constexpr (Op == FID_MMA_K16_F16) {
    ptx::mma_m16n8k16_f16(d, a, *reinterpret_cast<const uint32_t(*)[2]>(b), c);
  } else if constexpr (Op == FID_MMA_K16_BF16) {
    ptx::mma_m16n8k16_bf16(d, a, *reinterpret_cast<const uint32_t(*)[2]>(b), c);
  } else if constexpr (Op == FID_MMA_K8_F16 || Op == FID_MMA_K8_BF16) {
    const uint32_t a2[2] = {a[0], a[1]}, b1[1] = {b[0]};
    if (Op == FID_MMA_K8_F16) ptx::mma_m16n8k8_f16(d, a2, b1, c);
    else ptx::mma_m16n8k8_bf16(d, a2, b1, c);
  } else if constexpr (Op == FID_MMA_K8_TF32 || Op == FID_MMA_K8_TF32_CVT) {
    uint32_t at[4], bt[2];
    for (int i = 0; i < 4; i++) at[i] = Op == FID_MMA_K8_TF32_CVT ? ptx::to_tf32(__uint_as_float(a[i])) : a[i];
    for (int i = 0; i < 2; i++) bt[i] = Op == FID_MMA_K8_TF32_CVT ? ptx::to_tf32(__uint_as_float(b[i])) : b[i];
    ptx::mma_m16n8k8_tf32(d, at, bt, c);
  } else {
    const uint32_t e = E[(int64_t)tile * 32 + lane];
    if constexpr (Op == FID_MMA_SP_K16_F16 || Op == FID_MMA_SP_K16_BF16) {
      const uint32_t a2[2] = {a[0], a[1]}, b2[2] = {b[0], b[1]};
      if (Op == FID_MMA_SP_K16_F16) ptx::mma_sp_m16n8k16_f16<Sel>(d, a2, b2, c, e);
      else ptx::mma_sp_m16n8k16_bf16<Sel>(d, a2, b2, c, e);
    } else {
      if (Op == FID_MMA_SP_K32_F16) ptx::mma_sp_m16n8k32_f16<Sel>(d, a, b, c, e);
      else ptx::mma_sp_m16n8k32_bf16<Sel>(d, a, b, c, e);
    }
  }
  for (int i = 0; i < 4; i++) D[base + i] = d[i];
}

template <int Op, int Sel>
cudaError_t launch_mma(const MmaParams& p) {
  return structura::launch<mma_kernel<Op, Sel>>(dim3((p.ntiles + 3) / 4), dim3(128), 0, nullptr, p);
}

// ---- ldmatrix ----------------------------------------------------------------------------------------

template <int Num, bool Trans>
__global__ void ldmatrix_kernel(const uint32_t* rows_raw, const int32_t* rowsel_raw, uint32_t* out_raw) {
  SMEM(uint32_t, buf, [64][4]);  // 64 rows of 8 b16 = 16 bytes each
  const int lane = threadIdx.x;
  const dev_ptr<const uint32_t> rows = gptr(rows_raw) + (int64_t)blockIdx.x * 256;
  for (int i = lane; i < 256; i += 32) buf[i / 4][i % 4] = rows[i];
  __syncthreads();
  const int row = gptr(rowsel_raw)[(int64_t)blockIdx.x * 32 + lane];
  uint32_t r[4] = {0, 0, 0, 0};
  uint32_t(&rn)[Num] = *reinterpret_cast<uint32_t(*)[Num]>(r);
  if constexpr (Num == 1) {
    if (Trans) ptx::ldmatrix_x1_trans(rn, &buf[row][0]);
    else ptx::ldmatrix_x1(rn, &buf[row][0]);
  } else if constexpr (Num == 2) {
    if (Trans) ptx::ldmatrix_x2_trans(rn, &buf[row][0]);
    else ptx::ldmatrix_x2(rn, &buf[row][0]);
  } else {
    if (Trans) ptx::ldmatrix_x4_trans(rn, &buf[row][0]);
    else ptx::ldmatrix_x4(rn, &buf[row][0]);
  }
  const dev_ptr<uint32_t> out = gptr(out_raw) + ((int64_t)blockIdx.x * 32 + lane) * 4;
  for (int i = 0; i < 4; i++) out[i] = r[i];
}

template <int Num, bool Trans>
cudaError_t launch_ldmatrix(int nblocks, const uint32_t* rows, const int32_t* rowsel, uint32_t* out) {
  return structura::launch<ldmatrix_kernel<Num, Trans>>(dim3(nblocks), dim3(32), 0, nullptr, rows, rowsel, out);
}

// ---- cp.async ----------------------------------------------------------------------------------------

// Per thread a 128-byte slot (32 words) in shared memory, prefilled with 0xA5A5A5A5 before the copies:
//   group 0: ca4 → word 0, ca8 → word 2, ca16 → word 4, cg16 → word 8
//   group 1: the same four with zfill (src sizes plan[10..13]) → words 12, 14, 16, 20
//   group 2: cg16 → word 24, cg16 zfill (src size plan[15]) → word 28
// plan[0..9]: source word offsets of the 10 copies (aligned to their size); plan[10..15]: src sizes of
// the zfill copies 4..9 (copies 8 is not zfill: its entry is ignored).
constexpr int kCpThreads = 64;
constexpr int kCpPlan = 16;

__global__ void cp_async_kernel(const uint32_t* src_raw, const int32_t* plan_raw, uint32_t* out_raw) {
  DYN_SMEM(uint32_t, slots);  // [64][32]
  const int t = threadIdx.x;
  const dev_ptr<const uint32_t> src = gptr(src_raw);
  const dev_ptr<const int32_t> plan = gptr(plan_raw) + ((int64_t)blockIdx.x * kCpThreads + t) * kCpPlan;
  const dev_ptr<uint32_t> out = gptr(out_raw) + ((int64_t)blockIdx.x * kCpThreads + t) * 128;
  const dev_ptr<uint32_t> slot = slots + t * 32;
  for (int i = 0; i < 32; i++) slot[i] = 0xA5A5A5A5u;
  __syncthreads();
  int off[10], sz[6];
  for (int i = 0; i < 10; i++) off[i] = plan[i];
  for (int i = 0; i < 6; i++) sz[i] = plan[10 + i];
  ptx::cp_async_ca<4>(slot + 0, src + off[0]);
  ptx::cp_async_ca<8>(slot + 2, src + off[1]);
  ptx::cp_async_ca<16>(slot + 4, src + off[2]);
  ptx::cp_async_cg(slot + 8, src + off[3]);
  ptx::cp_async_commit();
  ptx::cp_async_ca_zfill<4>(slot + 12, src + off[4], sz[0]);
  ptx::cp_async_ca_zfill<8>(slot + 14, src + off[5], sz[1]);
  ptx::cp_async_ca_zfill<16>(slot + 16, src + off[6], sz[2]);
  ptx::cp_async_cg_zfill(slot + 20, src + off[7], sz[3]);
  ptx::cp_async_commit();
  ptx::cp_async_cg(slot + 24, src + off[8]);
  ptx::cp_async_cg_zfill(slot + 28, src + off[9], sz[5]);
  ptx::cp_async_commit();
  ptx::cp_async_wait<2>();
  for (int i = 0; i < 12; i++) out[i] = slot[i];
  ptx::cp_async_wait<1>();
  for (int i = 12; i < 24; i++) out[32 + i] = slot[i];
  ptx::cp_async_wait_all();
  for (int i = 24; i < 32; i++) out[64 + i] = slot[i];
  __syncthreads();
  const dev_ptr<uint32_t> next = slots + ((t + 1) % kCpThreads) * 32;
  for (int i = 0; i < 32; i++) out[96 + i] = next[i];
}

// ---- element-wise: conversions, packing, half arithmetic --------------------------------------------

__device__ __forceinline__ uint32_t h_bits(__half h) { return __half_as_ushort(h); }
__device__ __forceinline__ uint32_t b_bits(__nv_bfloat16 h) { return __bfloat16_as_ushort(h); }
__device__ __forceinline__ __half h_of(uint32_t w) { return __ushort_as_half((unsigned short)(w & 0xffffu)); }
__device__ __forceinline__ __nv_bfloat16 b_of(uint32_t w) { return __ushort_as_bfloat16((unsigned short)(w & 0xffffu)); }
template <class H2> __device__ __forceinline__ H2 h2_of(uint32_t w) {
  H2 v;
  memcpy(&v, &w, 4);
  return v;
}
template <class H2> __device__ __forceinline__ uint32_t h2_bits(H2 v) {
  uint32_t w;
  memcpy(&w, &v, 4);
  return w;
}

template <int Op>
__global__ void elementwise_kernel(const uint32_t* in_raw, uint32_t* out_raw, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  constexpr int IW = FID_EW_IN_WORDS(Op), OW = FID_EW_OUT_WORDS(Op);
  const dev_ptr<const uint32_t> in = gptr(in_raw) + (int64_t)i * IW;
  const dev_ptr<uint32_t> out = gptr(out_raw) + (int64_t)i * OW;
  uint32_t x[3];
  for (int j = 0; j < IW; j++) x[j] = in[j];
  if constexpr (Op == FID_EW_F32_TO_F16) {
    out[0] = h_bits(__float2half_rn(__uint_as_float(x[0])));
  } else if constexpr (Op == FID_EW_F32_TO_BF16) {
    out[0] = b_bits(__float2bfloat16_rn(__uint_as_float(x[0])));
  } else if constexpr (Op == FID_EW_F16_TO_F32) {
    out[0] = __float_as_uint(__half2float(h_of(x[0])));
  } else if constexpr (Op == FID_EW_BF16_TO_F32) {
    out[0] = __float_as_uint(__bfloat162float(b_of(x[0])));
  } else if constexpr (Op == FID_EW_F64_TO_F16 || Op == FID_EW_F64_TO_BF16) {
    const double v = __longlong_as_double((long long)(((uint64_t)x[1] << 32) | x[0]));
    out[0] = Op == FID_EW_F64_TO_F16 ? h_bits(__double2half(v)) : b_bits(__double2bfloat16(v));
  } else if constexpr (Op == FID_EW_TO_TF32) {
    out[0] = ptx::to_tf32(__uint_as_float(x[0]));
  } else if constexpr (Op == FID_EW_PACK_F16) {
    out[0] = ptx::pack_f16(__uint_as_float(x[0]), __uint_as_float(x[1]));
  } else if constexpr (Op == FID_EW_PACK_BF16) {
    out[0] = ptx::pack_bf16(__uint_as_float(x[0]), __uint_as_float(x[1]));
  } else if constexpr (Op == FID_EW_HALF2_ARITH) {
    const __half2 a = h2_of<__half2>(x[0]), b = h2_of<__half2>(x[1]), c = h2_of<__half2>(x[2]);
    out[0] = h2_bits(__hadd2(a, b));
    out[1] = h2_bits(__hsub2(a, b));
    out[2] = h2_bits(__hmul2(a, b));
    out[3] = h2_bits(__hfma2(a, b, c));
  } else if constexpr (Op == FID_EW_BF162_ARITH) {
    const __nv_bfloat162 a = h2_of<__nv_bfloat162>(x[0]), b = h2_of<__nv_bfloat162>(x[1]),
                         c = h2_of<__nv_bfloat162>(x[2]);
    out[0] = h2_bits(__hadd2(a, b));
    out[1] = h2_bits(__hsub2(a, b));
    out[2] = h2_bits(__hmul2(a, b));
    out[3] = h2_bits(__hfma2(a, b, c));
  } else if constexpr (Op == FID_EW_HALF_ARITH) {
    const __half a = h_of(x[0]), b = h_of(x[1]), c = h_of(x[2]);
    out[0] = h_bits(__hadd(a, b));
    out[1] = h_bits(__hsub(a, b));
    out[2] = h_bits(__hmul(a, b));
    out[3] = h_bits(__hfma(a, b, c));
  } else {
    const __nv_bfloat16 a = b_of(x[0]), b = b_of(x[1]), c = b_of(x[2]);
    out[0] = b_bits(__hadd(a, b));
    out[1] = b_bits(__hsub(a, b));
    out[2] = b_bits(__hmul(a, b));
    out[3] = b_bits(__hfma(a, b, c));
  }
}

template <int Op>
cudaError_t launch_ew(const uint32_t* in, uint32_t* out, int n) {
  return structura::launch<elementwise_kernel<Op>>(dim3((n + 255) / 256), dim3(256), 0, nullptr, in, out, n);
}

// ---- warp collectives --------------------------------------------------------------------------------

__global__ void warp_kernel(const fid_warp_cfg* cfg_raw, const uint32_t* in_raw, const int32_t* arg_raw,
                            uint32_t* out_raw, int nwarps) {
  const int lane = threadIdx.x % 32;
  const int w = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (w >= nwarps) return;
  const dev_ptr<const fid_warp_cfg> cfgs = gptr(cfg_raw);
  const fid_warp_cfg cfg = cfgs[w];
  const int64_t at = (int64_t)w * 32 + lane;
  const dev_ptr<uint32_t> out = gptr(out_raw) + at * 2;
  if (!(cfg.mask >> lane & 1u)) {  // not a member: takes no part
    out[0] = 0xDEADBEEFu;
    out[1] = 0xDEADBEEFu;
    return;
  }
  const uint32_t lo = gptr(in_raw)[at * 2], hi = gptr(in_raw)[at * 2 + 1];
  const int la = gptr(arg_raw)[at];
  const unsigned m = cfg.mask;
  uint32_t r0 = 0, r1 = 0;
  switch (cfg.op) {
    case FID_WARP_SHFL_IDX: r0 = __shfl_sync(m, lo, la, cfg.width); break;
    case FID_WARP_SHFL_UP: r0 = __shfl_up_sync(m, lo, (unsigned)cfg.arg, cfg.width); break;
    case FID_WARP_SHFL_DOWN: r0 = __shfl_down_sync(m, lo, (unsigned)cfg.arg, cfg.width); break;
    case FID_WARP_SHFL_XOR: r0 = __shfl_xor_sync(m, lo, cfg.arg, cfg.width); break;
    case FID_WARP_SHFL_IDX64: {
      const unsigned long long v = __shfl_sync(m, ((unsigned long long)hi << 32) | lo, la, cfg.width);
      r0 = (uint32_t)v;
      r1 = (uint32_t)(v >> 32);
      break;
    }
    case FID_WARP_SHFL_F32: r0 = __float_as_uint(__shfl_xor_sync(m, __uint_as_float(lo), cfg.arg, cfg.width)); break;
    case FID_WARP_BALLOT: r0 = __ballot_sync(m, la); break;
    case FID_WARP_ANY: r0 = (uint32_t)__any_sync(m, la); break;
    case FID_WARP_ALL: r0 = (uint32_t)__all_sync(m, la); break;
    case FID_WARP_REDUCE_ADD: r0 = __reduce_add_sync(m, (unsigned)lo); break;
    case FID_WARP_REDUCE_MIN_U: r0 = __reduce_min_sync(m, (unsigned)lo); break;
    case FID_WARP_REDUCE_MAX_U: r0 = __reduce_max_sync(m, (unsigned)lo); break;
    case FID_WARP_REDUCE_MIN_I: r0 = (uint32_t)__reduce_min_sync(m, (int)lo); break;
    case FID_WARP_REDUCE_MAX_I: r0 = (uint32_t)__reduce_max_sync(m, (int)lo); break;
    case FID_WARP_REDUCE_AND: r0 = __reduce_and_sync(m, (unsigned)lo); break;
    case FID_WARP_REDUCE_OR: r0 = __reduce_or_sync(m, (unsigned)lo); break;
    case FID_WARP_REDUCE_XOR: r0 = __reduce_xor_sync(m, (unsigned)lo); break;
    default: r0 = __match_any_sync(m, lo); break;
  }
  out[0] = r0;
  out[1] = r1;
}

// ---- atomics -----------------------------------------------------------------------------------------

template <int Op>
__global__ void atomic_kernel(const uint32_t* vals_raw, uint32_t* targets_raw, uint32_t* old_raw, int n, int ntargets) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const dev_ptr<uint32_t> targets = gptr(targets_raw);
  if constexpr (Op == FID_ATOM_ADD_F32_SHARED || Op == FID_ATOM_ADD_I32_SHARED) {
    SMEM(uint32_t, acc, [256]);
    for (int j = threadIdx.x; j < ntargets; j += blockDim.x) acc[j] = 0;
    __syncthreads();
    if (i < n) {
      const uint32_t v = gptr(vals_raw)[i];
      uint32_t old;
      if (Op == FID_ATOM_ADD_F32_SHARED)
        old = __float_as_uint(atomicAdd(dev_cast<float>(dev_ptr<uint32_t>(&acc[i % ntargets])), __uint_as_float(v)));
      else old = (uint32_t)atomicAdd(dev_cast<int>(dev_ptr<uint32_t>(&acc[i % ntargets])), (int)v);
      gptr(old_raw)[i] = old;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < ntargets; j += blockDim.x) {
      const uint32_t s = acc[j];
      if (Op == FID_ATOM_ADD_F32_SHARED) atomicAdd(dev_cast<float>(targets + j), __uint_as_float(s));
      else atomicAdd(dev_cast<int>(targets + j), (int)s);
    }
  } else {
    if (i >= n) return;
    const uint32_t v = gptr(vals_raw)[i];
    const dev_ptr<uint32_t> t = targets + i % ntargets;
    uint32_t old;
    if constexpr (Op == FID_ATOM_ADD_F32_GLOBAL) old = __float_as_uint(atomicAdd(dev_cast<float>(t), __uint_as_float(v)));
    else if constexpr (Op == FID_ATOM_ADD_I32_GLOBAL) old = (uint32_t)atomicAdd(dev_cast<int>(t), (int)v);
    else if constexpr (Op == FID_ATOM_ADD_U32_GLOBAL) old = atomicAdd(t, (unsigned)v);
    else if constexpr (Op == FID_ATOM_MAX_I32_GLOBAL) old = (uint32_t)atomicMax(dev_cast<int>(t), (int)v);
    else if constexpr (Op == FID_ATOM_MIN_I32_GLOBAL) old = (uint32_t)atomicMin(dev_cast<int>(t), (int)v);
    else {
      unsigned cur = *t, seen;
      do {
        seen = cur;
        cur = atomicCAS(t, seen, seen + v);
      } while (cur != seen);
      old = seen;
    }
    gptr(old_raw)[i] = old;
  }
}

template <int Op>
cudaError_t launch_atomic(const uint32_t* vals, uint32_t* targets, uint32_t* old, int n, int ntargets) {
  return structura::launch<atomic_kernel<Op>>(dim3((n + 255) / 256), dim3(256), 0, nullptr, vals, targets, old, n,
                                               ntargets);
}

// ---- wgmma (sm_90a) ---------------------------------------------------------------------------------

constexpr size_t kWgSmem = (64 + 256) * 64 * 2 + 1024;  // A and B tiles, and 1024-byte alignment slack

// The block's product once A [64][64] and B [256][64] sit in shared memory (K-major, 128-byte swizzle)
// at a_addr and b_addr: thread tid's 128 accumulators from c_raw, 4 wgmma k16 steps, out to d_raw.
template <bool kBf16>
__device__ __forceinline__ void wgmma_block(uint32_t a_addr, uint32_t b_addr, const float* c_raw, float* d_raw) {
  const int tid = threadIdx.x;
  const dev_ptr<const float> C = gptr(c_raw) + ((int64_t)blockIdx.x * 128 + tid) * 128;
  float d[128];
  for (int i = 0; i < 128; i++) d[i] = C[i];
  ptx::fence_operands(d);
  ptx::wgmma_fence();
  for (int kk = 0; kk < 4; kk++) {
    const uint64_t da = ptx::wgmma_desc_sw128(a_addr + 32u * kk, 1024), db = ptx::wgmma_desc_sw128(b_addr + 32u * kk, 1024);
    if (kBf16) ptx::wgmma_m64n256k16_bf16(d, da, db);
    else ptx::wgmma_m64n256k16_f16(d, da, db);
  }
  ptx::wgmma_commit();
  ptx::wgmma_wait<0>();
  ptx::fence_operands(d);
  const dev_ptr<float> D = gptr(d_raw) + ((int64_t)blockIdx.x * 128 + tid) * 128;
  for (int i = 0; i < 128; i++) D[i] = d[i];
}

template <bool kBf16>
__global__ void wgmma_kernel(const uint32_t* a_raw, const uint32_t* b_raw, const float* c_raw, float* d_raw) {
  DYN_SMEM(uint16_t, raw);
  const uint32_t addr0 = ptx::smem_addr(raw);
  const int pad = (int)((1024u - (addr0 & 1023u)) & 1023u) / 2;
  const dev_ptr<uint16_t> sa = raw + pad, sb = sa + 64 * 64;
  const uint32_t a_addr = addr0 + 2u * (uint32_t)pad, b_addr = a_addr + 2u * 64u * 64u;
  const dev_ptr<const uint16_t> ga = dev_cast<const uint16_t>(gptr(a_raw) + (int64_t)blockIdx.x * 2048);
  const dev_ptr<const uint16_t> gb = dev_cast<const uint16_t>(gptr(b_raw) + (int64_t)blockIdx.x * 8192);
  const int tid = threadIdx.x;
  // element (r, k) of a K-major tile: row r at 64 elements (128 bytes), chunk k / 8 at chunk (k / 8) ^ (r % 8)
  for (int i = tid; i < 64 * 64; i += 128) {
    const int r = i / 64, k = i % 64;
    const uint16_t v = ga[i];
    sa[r * 64 + (((k >> 3) ^ (r & 7)) << 3) + (k & 7)] = v;
  }
  for (int i = tid; i < 256 * 64; i += 128) {
    const int r = i / 64, k = i % 64;
    const uint16_t v = gb[i];
    sb[r * 64 + (((k >> 3) ^ (r & 7)) << 3) + (k & 7)] = v;
  }
  ptx::fence_proxy_async();
  __syncthreads();
  wgmma_block<kBf16>(a_addr, b_addr, c_raw, d_raw);
}

template <bool kBf16>
cudaError_t launch_wgmma(int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  cudaError_t e = cudaFuncSetAttribute(wgmma_kernel<kBf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kWgSmem);
  if (e != cudaSuccess) return e;
  return structura::launch<wgmma_kernel<kBf16>>(dim3(nblocks), dim3(128), kWgSmem, nullptr, a, b, c, d);
}

// wgmma_kernel's product with the tiles brought by TMA: thread 0 announces 40 KiB on one mbarrier and
// issues both loads; everyone waits for the phase, then the same 4 wgmma k16 steps.
template <bool kBf16>
__global__ void wgmma_tma_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                                 const float* c_raw, float* d_raw) {
  DYN_SMEM(uint16_t, raw);
  const uint32_t addr0 = ptx::smem_addr(raw);
  const uint32_t a_addr = addr0 + ((1024u - (addr0 & 1023u)) & 1023u), b_addr = a_addr + 2u * 64u * 64u;
  const uint32_t bar = b_addr + 2u * 256u * 64u;
  const int tid = threadIdx.x;
  if (tid == 0) {
    ptx::mbar_init(bar, 1);
    ptx::fence_mbarrier_init();
  }
  __syncthreads();
  if (tid == 0) {
    ptx::mbar_arrive_expect_tx(bar, 2u * (64u + 256u) * 64u);
    ptx::tma_load_2d(a_addr, &map_a, 0, 64 * (int)blockIdx.x, bar);
    ptx::tma_load_2d(b_addr, &map_b, 0, 256 * (int)blockIdx.x, bar);
  }
  ptx::mbar_wait(bar, 0);
  wgmma_block<kBf16>(a_addr, b_addr, c_raw, d_raw);
}

template <bool kBf16>
cudaError_t launch_wgmma_tma(int nblocks, const CUtensorMap& ma, const CUtensorMap& mb, const float* c, float* d) {
  const size_t smem = kWgSmem + 8;  // + the mbarrier
  cudaError_t e = cudaFuncSetAttribute(wgmma_tma_kernel<kBf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  return structura::launch<wgmma_tma_kernel<kBf16>>(dim3(nblocks), dim3(128), smem, nullptr, ma, mb, c, d);
}

// ---- TMA (sm_90) -------------------------------------------------------------------------------------

// One box a block, landed through an mbarrier, then the raw shared bytes copied out (no un-swizzling:
// what is compared is where the TMA put each byte).
__global__ void tma_kernel(const __grid_constant__ CUtensorMap map, const int32_t* c0, const int32_t* c1, uint32_t* out,
                           int box_rows) {
  DYN_SMEM(uint32_t, raw);
  const uint32_t addr0 = ptx::smem_addr(raw);
  const uint32_t pad = (1024u - (addr0 & 1023u)) & 1023u, base = addr0 + pad;
  const uint32_t bytes = 128u * (uint32_t)box_rows, bar = base + bytes;
  if (threadIdx.x == 0) {
    ptx::mbar_init(bar, 1);
    ptx::fence_mbarrier_init();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    ptx::mbar_arrive_expect_tx(bar, bytes);
    ptx::tma_load_2d(base, &map, gptr(c0)[blockIdx.x], gptr(c1)[blockIdx.x], bar);
  }
  ptx::mbar_wait(bar, 0);
  const dev_ptr<const uint32_t> s = raw + pad / 4;
  const dev_ptr<uint32_t> o = gptr(out) + (int64_t)blockIdx.x * (bytes / 4);
  for (uint32_t i = threadIdx.x; i < bytes / 4; i += blockDim.x) {
    const uint32_t v = s[i];
    o[i] = v;
  }
}

}  // namespace

// ---- entries ---------------------------------------------------------------------------------------------

extern "C" int FID_FN(probe)(char* msg, size_t msg_len) {
  int n = 0, drv = 0, rt = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  if (e != cudaSuccess || n == 0) {
    snprintf(msg, msg_len, "no usable CUDA device: %s (%s); driver API version %d, runtime %d",
             e != cudaSuccess ? cudaGetErrorName(e) : "0 devices", e != cudaSuccess ? cudaGetErrorString(e) : "",
             drv, rt);
    cudaGetLastError();
    return e != cudaSuccess ? (int)e : (int)cudaErrorNoDevice;
  }
  cudaDeviceProp prop;
  e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) return report(e, "cudaGetDeviceProperties", msg, msg_len);
  snprintf(msg, msg_len, "%s, sm_%d%d, %d SMs, driver API %d.%d, runtime %d.%d", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
  if (prop.major < 8) return (int)cudaErrorNotSupported;  // mma.sync bf16, cp.async, ldmatrix need sm_80
  return 0;
}

extern "C" int FID_FN(mma)(int op, int sel, int ntiles, const uint32_t* a, const uint32_t* b, const float* c,
                           const uint32_t* e, float* d, char* msg, size_t msg_len) {
  Dev dev;
  const size_t n4 = (size_t)ntiles * 128;
  MmaParams p{dev.alloc(n4, a), dev.alloc(n4, b), dev.alloc(n4, c), dev.alloc((size_t)ntiles * 32, e),
              dev.alloc<float>(n4), ntiles};
  if (dev.err == cudaSuccess) {
    cudaError_t r = cudaErrorInvalidValue;
    switch (op * 4 + sel) {
#define FID_MMA_CASE(OP, SEL) \
  case OP * 4 + SEL: r = launch_mma<OP, SEL>(p); break;
      FID_MMA_CASE(FID_MMA_K16_F16, 0)
      FID_MMA_CASE(FID_MMA_K16_BF16, 0)
      FID_MMA_CASE(FID_MMA_K8_F16, 0)
      FID_MMA_CASE(FID_MMA_K8_BF16, 0)
      FID_MMA_CASE(FID_MMA_K8_TF32, 0)
      FID_MMA_CASE(FID_MMA_K8_TF32_CVT, 0)
      FID_MMA_CASE(FID_MMA_SP_K16_F16, 0)
      FID_MMA_CASE(FID_MMA_SP_K16_F16, 1)
      FID_MMA_CASE(FID_MMA_SP_K16_F16, 2)
      FID_MMA_CASE(FID_MMA_SP_K16_F16, 3)
      FID_MMA_CASE(FID_MMA_SP_K16_BF16, 0)
      FID_MMA_CASE(FID_MMA_SP_K16_BF16, 1)
      FID_MMA_CASE(FID_MMA_SP_K16_BF16, 2)
      FID_MMA_CASE(FID_MMA_SP_K16_BF16, 3)
      FID_MMA_CASE(FID_MMA_SP_K32_F16, 0)
      FID_MMA_CASE(FID_MMA_SP_K32_F16, 1)
      FID_MMA_CASE(FID_MMA_SP_K32_BF16, 0)
      FID_MMA_CASE(FID_MMA_SP_K32_BF16, 1)
#undef FID_MMA_CASE
      default: return snprintf(msg, msg_len, "mma: no op %d with selector %d", op, sel), (int)cudaErrorInvalidValue;
    }
    dev.launched(r, "mma_kernel");
  }
  dev.download(d, p.d, n4);
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(ldmatrix)(int num, int trans, int nblocks, const uint32_t* rows, const int32_t* rowsel,
                                uint32_t* out, char* msg, size_t msg_len) {
  Dev dev;
  const uint32_t* drows = dev.alloc((size_t)nblocks * 256, rows);
  const int32_t* dsel = dev.alloc((size_t)nblocks * 32, rowsel);
  uint32_t* dout = dev.alloc<uint32_t>((size_t)nblocks * 128);
  if (dev.err == cudaSuccess) {
    cudaError_t r = cudaErrorInvalidValue;
    if (num == 1) r = trans ? launch_ldmatrix<1, true>(nblocks, drows, dsel, dout) : launch_ldmatrix<1, false>(nblocks, drows, dsel, dout);
    else if (num == 2) r = trans ? launch_ldmatrix<2, true>(nblocks, drows, dsel, dout) : launch_ldmatrix<2, false>(nblocks, drows, dsel, dout);
    else if (num == 4) r = trans ? launch_ldmatrix<4, true>(nblocks, drows, dsel, dout) : launch_ldmatrix<4, false>(nblocks, drows, dsel, dout);
    dev.launched(r, "ldmatrix_kernel");
  }
  dev.download(out, dout, (size_t)nblocks * 128);
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(cp_async)(int nblocks, const uint32_t* src, int nsrc, const int32_t* plan, uint32_t* out,
                                char* msg, size_t msg_len) {
  Dev dev;
  const uint32_t* dsrc = dev.alloc((size_t)nsrc, src);
  const int32_t* dplan = dev.alloc((size_t)nblocks * kCpThreads * kCpPlan, plan);
  uint32_t* dout = dev.alloc<uint32_t>((size_t)nblocks * kCpThreads * 128);
  if (dev.err == cudaSuccess)
    dev.launched(structura::launch<cp_async_kernel>(dim3(nblocks), dim3(kCpThreads), kCpThreads * 128, nullptr, dsrc,
                                                    dplan, dout),
                 "cp_async_kernel");
  dev.download(out, dout, (size_t)nblocks * kCpThreads * 128);
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(elementwise)(int op, int n, const uint32_t* in, uint32_t* out, char* msg, size_t msg_len) {
  if (op < 0 || op >= FID_EW_COUNT) return snprintf(msg, msg_len, "elementwise: no op %d", op), (int)cudaErrorInvalidValue;
  Dev dev;
  const uint32_t* din = dev.alloc((size_t)n * FID_EW_IN_WORDS(op), in);
  uint32_t* dout = dev.alloc<uint32_t>((size_t)n * FID_EW_OUT_WORDS(op));
  if (dev.err == cudaSuccess) {
    cudaError_t r = cudaErrorInvalidValue;
    switch (op) {
#define FID_EW_CASE(OP) \
  case OP: r = launch_ew<OP>(din, dout, n); break;
      FID_EW_CASE(FID_EW_F32_TO_F16)
      FID_EW_CASE(FID_EW_F32_TO_BF16)
      FID_EW_CASE(FID_EW_F16_TO_F32)
      FID_EW_CASE(FID_EW_BF16_TO_F32)
      FID_EW_CASE(FID_EW_F64_TO_F16)
      FID_EW_CASE(FID_EW_F64_TO_BF16)
      FID_EW_CASE(FID_EW_TO_TF32)
      FID_EW_CASE(FID_EW_PACK_F16)
      FID_EW_CASE(FID_EW_PACK_BF16)
      FID_EW_CASE(FID_EW_HALF2_ARITH)
      FID_EW_CASE(FID_EW_BF162_ARITH)
      FID_EW_CASE(FID_EW_HALF_ARITH)
      FID_EW_CASE(FID_EW_BF16_ARITH)
#undef FID_EW_CASE
    }
    dev.launched(r, "elementwise_kernel");
  }
  dev.download(out, dout, (size_t)n * FID_EW_OUT_WORDS(op));
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(warp)(int nwarps, const fid_warp_cfg* cfg, const uint32_t* in, const int32_t* lane_arg,
                            uint32_t* out, char* msg, size_t msg_len) {
  Dev dev;
  const fid_warp_cfg* dcfg = dev.alloc((size_t)nwarps, cfg);
  const uint32_t* din = dev.alloc((size_t)nwarps * 64, in);
  const int32_t* darg = dev.alloc((size_t)nwarps * 32, lane_arg);
  uint32_t* dout = dev.alloc<uint32_t>((size_t)nwarps * 64);
  if (dev.err == cudaSuccess)
    dev.launched(structura::launch<warp_kernel>(dim3((nwarps + 3) / 4), dim3(128), 0, nullptr, dcfg, din, darg, dout,
                                                nwarps),
                 "warp_kernel");
  dev.download(out, dout, (size_t)nwarps * 64);
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(atomic)(int op, int n, int ntargets, const uint32_t* init, const uint32_t* vals,
                              uint32_t* final_out, uint32_t* old_out, char* msg, size_t msg_len) {
  if ((op == FID_ATOM_ADD_F32_SHARED || op == FID_ATOM_ADD_I32_SHARED) && ntargets > 256)
    return snprintf(msg, msg_len, "atomic: shared variants take at most 256 targets"), (int)cudaErrorInvalidValue;
  Dev dev;
  const uint32_t* dvals = dev.alloc((size_t)n, vals);
  uint32_t* dt = dev.alloc((size_t)ntargets, init);
  uint32_t* dold = dev.alloc<uint32_t>((size_t)n);
  if (dev.err == cudaSuccess) {
    cudaError_t r = cudaErrorInvalidValue;
    switch (op) {
#define FID_ATOM_CASE(OP) \
  case OP: r = launch_atomic<OP>(dvals, dt, dold, n, ntargets); break;
      FID_ATOM_CASE(FID_ATOM_ADD_F32_GLOBAL)
      FID_ATOM_CASE(FID_ATOM_ADD_F32_SHARED)
      FID_ATOM_CASE(FID_ATOM_ADD_I32_GLOBAL)
      FID_ATOM_CASE(FID_ATOM_ADD_I32_SHARED)
      FID_ATOM_CASE(FID_ATOM_ADD_U32_GLOBAL)
      FID_ATOM_CASE(FID_ATOM_MAX_I32_GLOBAL)
      FID_ATOM_CASE(FID_ATOM_MIN_I32_GLOBAL)
      FID_ATOM_CASE(FID_ATOM_CAS_U32_GLOBAL)
#undef FID_ATOM_CASE
    }
    dev.launched(r, "atomic_kernel");
  }
  dev.download(final_out, dt, (size_t)ntargets);
  dev.download(old_out, dold, (size_t)n);
  return dev.result(msg, msg_len);
}

// The wgmma product of FID_FN(wgmma) (tma 0: tiles staged by plain stores) and FID_FN(wgmma_tma) (tma 1:
// tiles brought by TMA through tensor maps over a and b).
static int wgmma_case_run(int bf16, int tma, int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d,
                          char* msg, size_t msg_len) {
  Dev dev;
  const uint32_t* da = dev.alloc((size_t)nblocks * 2048, a);
  const uint32_t* db = dev.alloc((size_t)nblocks * 8192, b);
  const float* dc = dev.alloc((size_t)nblocks * 128 * 128, c);
  float* dd = dev.alloc<float>((size_t)nblocks * 128 * 128);
  if (dev.err == cudaSuccess && !tma)
    dev.launched(bf16 ? launch_wgmma<true>(nblocks, da, db, dc, dd) : launch_wgmma<false>(nblocks, da, db, dc, dd), "wgmma_kernel");
  if (dev.err == cudaSuccess && tma) {
    CUtensorMap ma, mb;
    cudaError_t r = (cudaError_t)tma_encode_2d(&ma, da, 64, (uint64_t)nblocks * 64, 128, 64, 64);
    if (r == cudaSuccess) r = (cudaError_t)tma_encode_2d(&mb, db, 64, (uint64_t)nblocks * 256, 128, 64, 256);
    if (r == cudaSuccess) r = bf16 ? launch_wgmma_tma<true>(nblocks, ma, mb, dc, dd) : launch_wgmma_tma<false>(nblocks, ma, mb, dc, dd);
    dev.launched(r, "wgmma_tma_kernel");
  }
  dev.download(d, dd, (size_t)nblocks * 128 * 128);
  return dev.result(msg, msg_len);
}

extern "C" int FID_FN(wgmma)(int bf16, int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d,
                             char* msg, size_t msg_len) {
  return wgmma_case_run(bf16, 0, nblocks, a, b, c, d, msg, msg_len);
}

extern "C" int FID_FN(wgmma_tma)(int bf16, int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d,
                                 char* msg, size_t msg_len) {
  return wgmma_case_run(bf16, 1, nblocks, a, b, c, d, msg, msg_len);
}

extern "C" int FID_FN(tma)(int nblocks, const uint32_t* src, int rows, int cols, int ld, int box_rows, const int32_t* c0,
                           const int32_t* c1, uint32_t* out, char* msg, size_t msg_len) {
  Dev dev;
  const uint32_t* dsrc = dev.alloc((size_t)rows * ld / 2, src);
  const int32_t* dc0 = dev.alloc((size_t)nblocks, c0);
  const int32_t* dc1 = dev.alloc((size_t)nblocks, c1);
  uint32_t* dout = dev.alloc<uint32_t>((size_t)nblocks * box_rows * 32);
  if (dev.err == cudaSuccess) {
    CUtensorMap map;
    const size_t smem = 1024 + 128 * (size_t)box_rows + 8;
    cudaError_t r = (cudaError_t)tma_encode_2d(&map, dsrc, (uint64_t)cols, (uint64_t)rows, (uint64_t)ld * 2, 64, (uint32_t)box_rows);
    if (r == cudaSuccess) r = cudaFuncSetAttribute(tma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (r == cudaSuccess) r = structura::launch<tma_kernel>(dim3(nblocks), dim3(128), smem, nullptr, map, dc0, dc1, dout, box_rows);
    dev.launched(r, "tma_kernel");
  }
  dev.download(out, dout, (size_t)nblocks * box_rows * 32);
  return dev.result(msg, msg_len);
}
