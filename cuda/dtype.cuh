// dtype.cuh — device-side element access and dtype conversions for the core-op kernels (copy.cu,
// elementwise.cu, reduce.cu), written to equal the CPU's (csrc/tensor.cc) bit for bit:
//   half_to_float / float_to_half / bf16_to_float / float_to_bf16   the CPU's scalar conversions
//   widen(x) / narrow(d)     float ↔ double as x86 does it (cvtss2sd / cvtsd2ss): a NaN is made quiet
//                            and keeps its sign and payload (a GPU cvt would give the canonical NaN)
//   load_as_double / store_from_double   the CPU's generic cast path (every dtype through double)
//   Elems                    a global tensor of runtime dtype: one checked pointer per element size
//   Ty<DT>                   a dtype's storage and compute types, for kernels templated on it
// Plain integer and IEEE operations only (no intrinsics whose NaN or rounding rules differ between
// the GPU and the host), so the same code gives the same bits on the GPU and in the emulator.
// Everything has internal linkage (see cuda/structura_cuda.h).
#ifndef STRUCTURA_DTYPE_CUH
#define STRUCTURA_DTYPE_CUH
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "launch.cuh"
#include "structura_cuda.h"

namespace {
namespace dt {

__host__ __device__ __forceinline__ int size_of(int t) {
  return t == STRUCTURA_T_F64 ? 8 : (t == STRUCTURA_T_F32 || t == STRUCTURA_T_I32) ? 4 : t == STRUCTURA_T_U8 ? 1 : 2;
}

__device__ __forceinline__ float f32(uint32_t u) { return __uint_as_float(u); }
__device__ __forceinline__ uint32_t bits(float f) { return __float_as_uint(f); }
__device__ __forceinline__ double f64(uint64_t u) { return __longlong_as_double((long long)u); }
__device__ __forceinline__ uint64_t bits64(double d) { return (uint64_t)__double_as_longlong(d); }

__device__ __forceinline__ float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return f32(u);
}

__device__ __forceinline__ uint16_t float_to_half(float f) {
  const uint32_t u = bits(f);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00;  // ≥ 65520 rounds to inf
  if (a < 0x38800000u) {                       // subnormal or zero
    if (a < 0x33000000u) return sign;
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7fffff) | 0x800000;
    const int s = 126 - (int)e;
    uint32_t res = m >> s;
    const uint32_t rem = m & ((1u << s) - 1);
    const uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (res & 1))) res++;
    return sign | (uint16_t)res;
  }
  const uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;
  return sign | (uint16_t)(r >> 13);
}

__device__ __forceinline__ float bf16_to_float(uint16_t b) { return f32((uint32_t)b << 16); }

__device__ __forceinline__ uint16_t float_to_bf16(float f) {
  uint32_t u = bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

// (double)x with x86's NaN rule.
__device__ __forceinline__ double widen(float x) {
  if (x != x) {
    const uint32_t u = bits(x);
    return f64(((uint64_t)(u & 0x80000000u) << 32) | 0x7ff8000000000000ull | ((uint64_t)(u & 0x7fffffu) << 29));
  }
  return (double)x;
}
// (float)d with x86's NaN rule; round to nearest even otherwise.
__device__ __forceinline__ float narrow(double d) {
  if (d != d) {
    const uint64_t u = bits64(d);
    return f32((uint32_t)((u >> 32) & 0x80000000u) | 0x7fc00000u | (uint32_t)((u >> 29) & 0x7fffffu));
  }
  return (float)d;
}

// A 16-bit float's bits → float, for the f32-computing dtypes (F32 handled by the caller).
__device__ __forceinline__ float h16_to_float(uint16_t b, int t) {
  return t == STRUCTURA_T_BF16 ? bf16_to_float(b) : half_to_float(b);
}
__device__ __forceinline__ uint16_t float_to_h16(float x, int t) {
  return t == STRUCTURA_T_BF16 ? float_to_bf16(x) : float_to_half(x);
}

// The bits of one element (zero-extended) → its value as the CPU's load_as_double gives it.
__device__ __forceinline__ double load_as_double(uint64_t b, int t) {
  switch (t) {
    case STRUCTURA_T_F32: return widen(f32((uint32_t)b));
    case STRUCTURA_T_F64: return f64(b);
    case STRUCTURA_T_F16: return widen(half_to_float((uint16_t)b));
    case STRUCTURA_T_BF16: return widen(bf16_to_float((uint16_t)b));
    case STRUCTURA_T_I32: return (double)(int32_t)(uint32_t)b;
    case STRUCTURA_T_U8: return (double)(uint8_t)b;
    default: return (double)(uint16_t)b;
  }
}

// NaN → 0, out of range → the nearest end, else truncated toward zero (the CPU's saturate_int).
__device__ __forceinline__ int64_t saturate(double v, double lo, double hi) {
  if (v != v) return 0;
  if (v <= lo) return (int64_t)lo;
  if (v >= hi) return (int64_t)hi;
  return (int64_t)trunc(v);
}

// A value → the bits of one element of dtype t, as the CPU's store_from_double writes it.
__device__ __forceinline__ uint64_t store_from_double(double v, int t) {
  switch (t) {
    case STRUCTURA_T_F32: return bits(narrow(v));
    case STRUCTURA_T_F64: return bits64(v);
    case STRUCTURA_T_F16: return float_to_half(narrow(v));
    case STRUCTURA_T_BF16: return float_to_bf16(narrow(v));
    case STRUCTURA_T_I32: return (uint32_t)(int32_t)saturate(v, -2147483648.0, 2147483647.0);
    case STRUCTURA_T_U8: return (uint64_t)saturate(v, 0.0, 255.0);
    default: return (uint64_t)saturate(v, 0.0, 65535.0);
  }
}

// A global tensor of runtime dtype, element-indexed (its bits, zero-extended). The pointers are made
// once per thread (in emulation gptr() looks the allocation up).
struct In {
  dev_ptr<const uint8_t> b1;
  dev_ptr<const uint16_t> b2;
  dev_ptr<const uint32_t> b4;
  dev_ptr<const uint64_t> b8;
  int size;
  __device__ uint64_t bits(int64_t i) const {
    switch (size) {
      case 1: { const uint8_t v = b1[i]; return v; }
      case 2: { const uint16_t v = b2[i]; return v; }
      case 4: { const uint32_t v = b4[i]; return v; }
      default: { const uint64_t v = b8[i]; return v; }
    }
  }
};
__device__ __forceinline__ In in(const void* p, int t) {
  return In{gptr(static_cast<const uint8_t*>(p)), gptr(static_cast<const uint16_t*>(p)),
            gptr(static_cast<const uint32_t*>(p)), gptr(static_cast<const uint64_t*>(p)), size_of(t)};
}

struct Out {
  dev_ptr<uint8_t> b1;
  dev_ptr<uint16_t> b2;
  dev_ptr<uint32_t> b4;
  dev_ptr<uint64_t> b8;
  int size;
  __device__ void set(int64_t i, uint64_t v) const {
    switch (size) {
      case 1: b1[i] = (uint8_t)v; break;
      case 2: b2[i] = (uint16_t)v; break;
      case 4: b4[i] = (uint32_t)v; break;
      default: b8[i] = v; break;
    }
  }
};
__device__ __forceinline__ Out out(void* p, int t) {
  return Out{gptr(static_cast<uint8_t*>(p)), gptr(static_cast<uint16_t*>(p)), gptr(static_cast<uint32_t*>(p)),
             gptr(static_cast<uint64_t*>(p)), size_of(t)};
}

// Row-major index i of shape → element offsets through up to two sets of strides. With `narrow`
// (every index of the walk is below 2³¹, so every dimension is too) the divisions are 32-bit: a
// 64-bit division is a long instruction sequence on the GPU.
__device__ __forceinline__ void offsets2(int64_t i, int nd, const int64_t* shape, const int64_t* s0,
                                         const int64_t* s1, int64_t& o0, int64_t& o1, bool narrow = false) {
  o0 = 0, o1 = 0;
  if (narrow) {
    uint32_t u = (uint32_t)i;
#pragma unroll
    for (int d = STRUCTURA_MAX_DIMS - 1; d >= 0; d--) {
      if (d < nd) {
        const uint32_t n = (uint32_t)shape[d], q = u / n, idx = u - q * n;
        u = q;
        o0 += (int64_t)idx * s0[d];
        o1 += (int64_t)idx * s1[d];
      }
    }
    return;
  }
#pragma unroll
  for (int d = STRUCTURA_MAX_DIMS - 1; d >= 0; d--) {
    if (d < nd) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      o0 += idx * s0[d];
      o1 += idx * s1[d];
    }
  }
}
__device__ __forceinline__ int64_t offset1(int64_t i, int nd, const int64_t* shape, const int64_t* s0,
                                           bool narrow = false) {
  int64_t o0 = 0;
  if (narrow) {
    uint32_t u = (uint32_t)i;
#pragma unroll
    for (int d = STRUCTURA_MAX_DIMS - 1; d >= 0; d--) {
      if (d < nd) {
        const uint32_t n = (uint32_t)shape[d], q = u / n, idx = u - q * n;
        u = q;
        o0 += (int64_t)idx * s0[d];
      }
    }
    return o0;
  }
#pragma unroll
  for (int d = STRUCTURA_MAX_DIMS - 1; d >= 0; d--) {
    if (d < nd) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      o0 += idx * s0[d];
    }
  }
  return o0;
}
constexpr int64_t kNarrowLimit = int64_t(1) << 31;

// A 1-D grid covering `work` items with `threads` a block, capped (the kernels loop grid-stride).
inline unsigned grid_for(int64_t work, int threads) {
  int64_t b = (work + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 8) b = 65535 * 8;
  return (unsigned)b;
}

// Ty<STRUCTURA_T_*>: the storage type S of a dtype, the type C the CPU computes it in, and the
// conversions between them (the core-op kernels are templates over the dtype).
template <int DT> struct Ty;
template <> struct Ty<STRUCTURA_T_F32> {
  using S = float;
  using C = float;
  __device__ static C ld(S s) { return s; }
  __device__ static S st(C c) { return c; }
};
template <> struct Ty<STRUCTURA_T_F64> {
  using S = double;
  using C = double;
  __device__ static C ld(S s) { return s; }
  __device__ static S st(C c) { return c; }
};
template <> struct Ty<STRUCTURA_T_F16> {
  using S = uint16_t;
  using C = float;
  __device__ static C ld(S s) { return half_to_float(s); }
  __device__ static S st(C c) { return float_to_half(c); }
};
template <> struct Ty<STRUCTURA_T_BF16> {
  using S = uint16_t;
  using C = float;
  __device__ static C ld(S s) { return bf16_to_float(s); }
  __device__ static S st(C c) { return float_to_bf16(c); }
};
template <> struct Ty<STRUCTURA_T_I32> {
  using S = int32_t;
  using C = int32_t;
  __device__ static C ld(S s) { return s; }
  __device__ static S st(C c) { return c; }
};

}  // namespace dt
using dt::Ty;  // the kernels name it unqualified
}  // namespace

#endif
