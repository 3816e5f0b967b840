// cuda_runtime.h (emulation shim) — what `#include <cuda_runtime.h>` gives a .cu file compiled by the
// host C++ compiler with -DSTRUCTURA_CUDA_EMU -Icuda/emu: the CUDA keywords, per-fiber
// threadIdx/blockIdx/blockDim/gridDim, __syncthreads, warp intrinsics, atomics, the device math
// intrinsics kernels use, and the runtime API subset (memory, streams, events, attributes, device
// properties, errors) on host memory. See cuda/emu/README.md.
#ifndef STRUCTURA_EMU_CUDA_RUNTIME_H
#define STRUCTURA_EMU_CUDA_RUNTIME_H
#ifndef STRUCTURA_CUDA_EMU
#error "cuda/emu/cuda_runtime.h is the emulation shim: compile with -DSTRUCTURA_CUDA_EMU"
#endif
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "emu.h"

// ---- keywords -----------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __grid_constant__
// The driver's opaque tensor map (cuda.h); the emulator keeps its own encoding in it (emu::TmaMap).
// Not 64-byte aligned as on the GPU: g++ notes an ABI change for passing such a type by value (the
// kernels take it so, as __grid_constant__ parameters), and the host has no use for the alignment.
struct CUtensorMap {
  unsigned long long opaque[16];
};
// Shared memory must be declared through SMEM(...) / DYN_SMEM(...) (cuda/launch.cuh), which give
// per-block, checked storage here; a plain __shared__ would silently become per-thread.
#define __shared__ static_assert(false, "declare shared memory with SMEM()/DYN_SMEM() from launch.cuh");

#define threadIdx (::emu::ids().threadIdx)
#define blockIdx (::emu::ids().blockIdx)
#define blockDim (::emu::ids().blockDim)
#define gridDim (::emu::ids().gridDim)
constexpr int warpSize = 32;

// ---- barriers and warp collectives ----------------------------------------------------------------
#define __syncthreads() ((void)::emu::syncthreads(__FILE__, __LINE__, 0, 0))
#define __syncthreads_count(p) ::emu::syncthreads(__FILE__, __LINE__, 1, (p) ? 1 : 0)
#define __syncthreads_and(p) ::emu::syncthreads(__FILE__, __LINE__, 2, (p) ? 1 : 0)
#define __syncthreads_or(p) ::emu::syncthreads(__FILE__, __LINE__, 3, (p) ? 1 : 0)

namespace emu {
uint64_t shfl(unsigned mask, uint64_t bits, int mode, int b, int width);  // mode 0 idx,1 up,2 down,3 xor
unsigned vote(unsigned mask, int pred, int kind);                          // 0 ballot, 1 any, 2 all
uint32_t redux(unsigned mask, uint32_t v, int kind);  // 0 add, 1 min.u, 2 max.u, 3 min.s, 4 max.s, 5 and, 6 or, 7 xor
unsigned match_any(unsigned mask, uint64_t v);
void syncwarp(unsigned mask);
unsigned activemask();
template <class T>
T shfl_t(unsigned mask, T v, int mode, int b, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a value over 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shfl(mask, bits, mode, b, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
}  // namespace emu

template <class T> T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {
  return ::emu::shfl_t(mask, v, 0, src, width);
}
template <class T> T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = warpSize) {
  return ::emu::shfl_t(mask, v, 1, (int)d, width);
}
template <class T> T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = warpSize) {
  return ::emu::shfl_t(mask, v, 2, (int)d, width);
}
template <class T> T __shfl_xor_sync(unsigned mask, T v, int m, int width = warpSize) {
  return ::emu::shfl_t(mask, v, 3, m, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::emu::vote(mask, pred, 0); }
inline int __any_sync(unsigned mask, int pred) { return (int)::emu::vote(mask, pred, 1); }
inline int __all_sync(unsigned mask, int pred) { return (int)::emu::vote(mask, pred, 2); }
inline unsigned __activemask() { return ::emu::activemask(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::syncwarp(mask); }
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 0); }
inline int __reduce_add_sync(unsigned mask, int v) { return (int)::emu::redux(mask, (uint32_t)v, 0); }
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 1); }
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 2); }
inline int __reduce_min_sync(unsigned mask, int v) { return (int)::emu::redux(mask, (uint32_t)v, 3); }
inline int __reduce_max_sync(unsigned mask, int v) { return (int)::emu::redux(mask, (uint32_t)v, 4); }
inline unsigned __reduce_and_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 5); }
inline unsigned __reduce_or_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 6); }
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) { return ::emu::redux(mask, v, 7); }
template <class T> unsigned __match_any_sync(unsigned mask, T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "match of a 32- or 64-bit value");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return ::emu::match_any(mask, bits);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

// ---- atomics: checked pointers (dev_ptr) and raw pointers ---------------------------------------
#define STRUCTURA_EMU_ATOMIC(name, expr)                                                            \
  template <class T, class U> T name(::emu::ptr<T> a, U v) {                                        \
    const T val = (T)v;                                                                            \
    return ::emu::atomic_rmw(a, [&](T old) -> T { return expr; });                                 \
  }                                                                                                \
  template <class T, class U> T name(T* a, U v) {                                                   \
    const T val = (T)v;                                                                            \
    const T o = *a;                                                                                      \
    *a = [&](T old) -> T { return expr; }(o);                                                      \
    return o;                                                                                      \
  }
// atom.add.f32 flushes subnormal inputs and results to sign-preserving zero (PTX ISA §9.7.13.5, and
// seen on an H200 by test/gpu/emu-fidelity); the other types add exactly as written.
namespace emu_detail {
inline float ftz(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
template <class T> inline T atomic_sum(T old, T val) { return old + val; }
template <> inline float atomic_sum<float>(float old, float val) { return ftz(ftz(old) + ftz(val)); }
}  // namespace emu_detail
STRUCTURA_EMU_ATOMIC(atomicAdd, ::emu_detail::atomic_sum<T>(old, val))
STRUCTURA_EMU_ATOMIC(atomicSub, old - val)
STRUCTURA_EMU_ATOMIC(atomicExch, val)
STRUCTURA_EMU_ATOMIC(atomicMin, val < old ? val : old)
STRUCTURA_EMU_ATOMIC(atomicMax, val > old ? val : old)
STRUCTURA_EMU_ATOMIC(atomicAnd, old & val)
STRUCTURA_EMU_ATOMIC(atomicOr, old | val)
STRUCTURA_EMU_ATOMIC(atomicXor, old ^ val)
STRUCTURA_EMU_ATOMIC(atomicInc, (old >= val) ? 0 : old + 1)
STRUCTURA_EMU_ATOMIC(atomicDec, (old == 0 || old > val) ? val : old - 1)
#undef STRUCTURA_EMU_ATOMIC
template <class T, class U> T atomicCAS(::emu::ptr<T> a, U compare, U v) {
  return ::emu::atomic_rmw(a, [&](T old) -> T { return old == (T)compare ? (T)v : old; });
}
template <class T, class U> T atomicCAS(T* a, U compare, U v) {
  T old = *a;
  if (old == (T)compare) *a = (T)v;
  return old;
}

// ---- device math intrinsics (computed with the host's libm: the fast-math __expf & co. are NOT
// bit-exact to the GPU's approximations) -----------------------------------------------------------
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanhf(float x) { return std::tanh(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __frsqrt_rn(float x) { return (float)(1.0 / std::sqrt((double)x)); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : (x == x ? x : 0.f)); }
inline int __float2int_rn(float x) { return (int)std::nearbyint(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float_as_int(float x) { return (int)::emu::f32_bits(x); }
inline unsigned __float_as_uint(float x) { return ::emu::f32_bits(x); }
inline float __int_as_float(int x) { return ::emu::bits_f32((uint32_t)x); }
inline float __uint_as_float(unsigned x) { return ::emu::bits_f32(x); }
inline long long __double_as_longlong(double x) { long long r; std::memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; std::memcpy(&r, &x, 8); return r; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const uint64_t v = ((uint64_t)y << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; i++) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
  return r;
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((int64_t)a * b) >> 32); }
template <class T> T __ldg(const T* p) { return *p; }
template <class T> std::remove_cv_t<T> __ldg(::emu::ptr<T> p) { return *p; }

// ---- runtime API ----------------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
struct CUstream_st;
struct CUevent_st;
typedef CUstream_st* cudaStream_t;
typedef CUevent_st* cudaEvent_t;
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
#define cudaEventDisableTiming 0x02
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem, sharedMemPerBlock, sharedMemPerBlockOptin, sharedMemPerMultiprocessor;
  size_t totalConstMem, memPitch;
  int regsPerBlock, regsPerMultiprocessor, warpSize, maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3];
  int clockRate, major, minor, multiProcessorCount, maxThreadsPerMultiProcessor, maxBlocksPerMultiProcessor;
  int l2CacheSize, memoryClockRate, memoryBusWidth, concurrentKernels, asyncEngineCount, unifiedAddressing;
  int ECCEnabled, pciBusID, pciDeviceID, pciDomainID, integrated, canMapHostMemory, computeMode;
};

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T> cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
template <class T> cudaError_t cudaMallocHost(T** p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = 0);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <class T> cudaError_t cudaFuncSetAttribute(T* func, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}

#endif
