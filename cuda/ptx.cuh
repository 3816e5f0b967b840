// ptx.cuh — every inline PTX instruction the kernels use, behind one wrapper each. On nvcc the
// wrapper is the asm; with -DSTRUCTURA_CUDA_EMU it is the CPU emulation (cuda/emu/ptx_emu.cc), which
// gathers the registers of all 32 lanes and computes by the PTX ISA fragment layouts (sections cited
// beside each wrapper, PTX ISA 9.1 numbering; tables in /work/shared/notes/ptx_fragments.md).
// All need sm_80+. Fragments are arrays of 32-bit registers exactly as the PTX operands list them.
//
//   mma_m16n8k16_{f16,bf16}(d[4], a[4], b[2], c[4])     d = a·b + c, f32 accumulators
//   mma_m16n8k8_{f16,bf16}(d[4], a[2], b[1], c[4])
//   mma_m16n8k8_tf32(d[4], a[4], b[2], c[4])            a/b: f32 bit patterns (see to_tf32)
//   mma_sp_m16n8k16_{f16,bf16}<sel>(d[4], a[2], b[2], c[4], e)   2:4 sparse A, sel 0..3
//   mma_sp_m16n8k32_{f16,bf16}<sel>(d[4], a[4], b[4], c[4], e)   sel 0..1
//   ldmatrix_x{1,2,4}[_trans](r[N], row)                row: this lane's 16-byte shared row address
//   cp_async_ca<bytes>(dst, src) / cp_async_cg(dst, src) (16 B) / *_zfill(dst, src, src_bytes)
//   cp_async_commit(), cp_async_wait<N>(), cp_async_wait_all()
#ifndef STRUCTURA_PTX_CUH
#define STRUCTURA_PTX_CUH
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "launch.cuh"

#ifdef STRUCTURA_CUDA_EMU
#include "ptx_emu.h"
#define STRUCTURA_PTX_FN inline
#else
#define STRUCTURA_PTX_FN __device__ __forceinline__
#endif

namespace ptx {

// ---- register packing helpers -------------------------------------------------------------------
STRUCTURA_PTX_FN uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}
STRUCTURA_PTX_FN uint32_t pack_f16(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, 4);
  return r;
}
// cvt.rna.tf32.f32 (PTX §9.7.9.21): round to nearest, ties away from zero, to 10 mantissa bits.
// Infinities and NaNs have their low 13 bits cleared (so a NaN whose payload lives there becomes an
// infinity), as an H200 does (test/gpu/emu-fidelity).
STRUCTURA_PTX_FN uint32_t to_tf32(float x) {
#ifdef STRUCTURA_CUDA_EMU
  uint32_t u = ::emu::f32_bits(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  else u &= 0xffffe000u;
  return u;
#else
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#endif
}

// ---- mma.sync (PTX §9.7.14.5.14; fragments §9.7.14.5.8 for k16, §9.7.14.5.7 for k8) ----------------
#ifdef STRUCTURA_CUDA_EMU
#define STRUCTURA_MMA(fn, K, T, NA, NB)                                                              \
  inline void fn(float (&d)[4], const uint32_t (&a)[NA], const uint32_t (&b)[NB], const float (&c)[4]) { \
    ::emu::ptx::mma(K, ::emu::ptx::Type::T, d, a, b, c);                                           \
  }
STRUCTURA_MMA(mma_m16n8k16_f16, 16, F16, 4, 2)
STRUCTURA_MMA(mma_m16n8k16_bf16, 16, BF16, 4, 2)
STRUCTURA_MMA(mma_m16n8k8_f16, 8, F16, 2, 1)
STRUCTURA_MMA(mma_m16n8k8_bf16, 8, BF16, 2, 1)
STRUCTURA_MMA(mma_m16n8k8_tf32, 8, TF32, 4, 2)
#undef STRUCTURA_MMA
#else
#define STRUCTURA_MMA4(fn, INSTR)                                                                   \
  __device__ __forceinline__ void fn(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],  \
                                     const float (&c)[4]) {                                          \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"                \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),      \
                   "f"(c[1]), "f"(c[2]), "f"(c[3]));                                                 \
  }
STRUCTURA_MMA4(mma_m16n8k16_f16, "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32")
STRUCTURA_MMA4(mma_m16n8k16_bf16, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")
STRUCTURA_MMA4(mma_m16n8k8_tf32, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32")
#undef STRUCTURA_MMA4
#define STRUCTURA_MMA2(fn, INSTR)                                                                   \
  __device__ __forceinline__ void fn(float (&d)[4], const uint32_t (&a)[2], const uint32_t (&b)[1],  \
                                     const float (&c)[4]) {                                          \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};\n"                            \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));     \
  }
STRUCTURA_MMA2(mma_m16n8k8_f16, "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32")
STRUCTURA_MMA2(mma_m16n8k8_bf16, "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32")
#undef STRUCTURA_MMA2
#endif

// ---- mma.sp::ordered_metadata (PTX §9.7.14.6.3; storage and metadata §9.7.14.6.1, fragments
// §9.7.14.6.2.1 for k16 and §9.7.14.6.2.2 for k32). A holds the two kept values of each 4-column
// chunk; e's nibble per chunk gives their column offsets (low 2 bits: the low half's).
#ifdef STRUCTURA_CUDA_EMU
#define STRUCTURA_MMA_SP(fn, K, T, NA, NB)                                                           \
  template <int Sel>                                                                               \
  inline void fn(float (&d)[4], const uint32_t (&a)[NA], const uint32_t (&b)[NB], const float (&c)[4], \
                 uint32_t e) {                                                                      \
    ::emu::ptx::mma_sp(K, ::emu::ptx::Type::T, d, a, b, c, e, Sel);                                \
  }
STRUCTURA_MMA_SP(mma_sp_m16n8k16_f16, 16, F16, 2, 2)
STRUCTURA_MMA_SP(mma_sp_m16n8k16_bf16, 16, BF16, 2, 2)
STRUCTURA_MMA_SP(mma_sp_m16n8k32_f16, 32, F16, 4, 4)
STRUCTURA_MMA_SP(mma_sp_m16n8k32_bf16, 32, BF16, 4, 4)
#undef STRUCTURA_MMA_SP
#else
#define STRUCTURA_MMA_SP16(fn, INSTR)                                                               \
  template <int Sel>                                                                               \
  __device__ __forceinline__ void fn(float (&d)[4], const uint32_t (&a)[2], const uint32_t (&b)[2],  \
                                     const float (&c)[4], uint32_t e) {                              \
    static_assert(Sel >= 0 && Sel <= 3, "m16n8k16 sparsity selector is 0..3");                     \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11}, %12, %13;\n"             \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),      \
                   "f"(c[3]), "r"(e), "n"(Sel));                                                     \
  }
STRUCTURA_MMA_SP16(mma_sp_m16n8k16_f16, "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32")
STRUCTURA_MMA_SP16(mma_sp_m16n8k16_bf16, "mma.sp::ordered_metadata.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32")
#undef STRUCTURA_MMA_SP16
#define STRUCTURA_MMA_SP32(fn, INSTR)                                                               \
  template <int Sel>                                                                               \
  __device__ __forceinline__ void fn(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4],  \
                                     const float (&c)[4], uint32_t e) {                              \
    static_assert(Sel >= 0 && Sel <= 1, "m16n8k32 sparsity selector is 0..1");                     \
    asm volatile(INSTR " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%12,%13,%14,%15}, %16, %17;\n" \
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                    \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]),      \
                   "r"(b[3]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]), "r"(e), "n"(Sel));         \
  }
STRUCTURA_MMA_SP32(mma_sp_m16n8k32_f16, "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32")
STRUCTURA_MMA_SP32(mma_sp_m16n8k32_bf16, "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32")
#undef STRUCTURA_MMA_SP32
#endif

// ---- ldmatrix (PTX §9.7.14.5.15): lane 8i + r passes the address of row r of matrix i ------------
#ifdef STRUCTURA_CUDA_EMU
#define STRUCTURA_LDSM(fn, N, TRANS)                                                                 \
  template <class P> inline void fn(uint32_t (&r)[N], const P& row) {                               \
    ::emu::ptx::ldmatrix(N, sizeof(TRANS) > 1, r, ::emu::ptr<const void>(row));                     \
  }
#else
#define STRUCTURA_LDSM(fn, N, TRANS) STRUCTURA_LDSM_##N(fn, TRANS)
#define STRUCTURA_LDSM_1(fn, T)                                                                     \
  template <class P> __device__ __forceinline__ void fn(uint32_t (&r)[1], const P& row) {           \
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(row);                                     \
    asm volatile("ldmatrix.sync.aligned.m8n8.x1" T ".shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(a)); \
  }
#define STRUCTURA_LDSM_2(fn, T)                                                                     \
  template <class P> __device__ __forceinline__ void fn(uint32_t (&r)[2], const P& row) {           \
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(row);                                     \
    asm volatile("ldmatrix.sync.aligned.m8n8.x2" T ".shared.b16 {%0,%1}, [%2];\n"                   \
                 : "=r"(r[0]), "=r"(r[1]) : "r"(a));                                                \
  }
#define STRUCTURA_LDSM_4(fn, T)                                                                     \
  template <class P> __device__ __forceinline__ void fn(uint32_t (&r)[4], const P& row) {           \
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(row);                                     \
    asm volatile("ldmatrix.sync.aligned.m8n8.x4" T ".shared.b16 {%0,%1,%2,%3}, [%4];\n"             \
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));                        \
  }
#endif
STRUCTURA_LDSM(ldmatrix_x1, 1, "")
STRUCTURA_LDSM(ldmatrix_x2, 2, "")
STRUCTURA_LDSM(ldmatrix_x4, 4, "")
STRUCTURA_LDSM(ldmatrix_x1_trans, 1, ".trans")
STRUCTURA_LDSM(ldmatrix_x2_trans, 2, ".trans")
STRUCTURA_LDSM(ldmatrix_x4_trans, 4, ".trans")
#undef STRUCTURA_LDSM

// ---- cp.async (PTX §9.7.9.25.3.1–3): global → shared, asynchronous, completed by wait_group -------
// zfill forms copy src_bytes (0..bytes) and zero the rest; with src_bytes == 0 src is not read.
#ifdef STRUCTURA_CUDA_EMU
template <int Bytes, class D, class S> inline void cp_async_ca(const D& dst, const S& src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  ::emu::cp_async(::emu::ptr<void>(dst), ::emu::ptr<const void>(src), Bytes, Bytes);
}
template <int Bytes, class D, class S> inline void cp_async_ca_zfill(const D& dst, const S& src, int src_bytes) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  ::emu::cp_async(::emu::ptr<void>(dst), ::emu::ptr<const void>(src), Bytes, src_bytes);
}
template <class D, class S> inline void cp_async_cg(const D& dst, const S& src) {
  ::emu::cp_async(::emu::ptr<void>(dst), ::emu::ptr<const void>(src), 16, 16);
}
template <class D, class S> inline void cp_async_cg_zfill(const D& dst, const S& src, int src_bytes) {
  ::emu::cp_async(::emu::ptr<void>(dst), ::emu::ptr<const void>(src), 16, src_bytes);
}
inline void cp_async_commit() { ::emu::cp_async_commit(); }
template <int N> inline void cp_async_wait() { ::emu::cp_async_wait(N); }
inline void cp_async_wait_all() { ::emu::cp_async_wait_all(); }
#else
template <int Bytes, class D, class S> __device__ __forceinline__ void cp_async_ca(const D& dst, const S& src) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(d), "l"(src), "n"(Bytes));
}
template <int Bytes, class D, class S>
__device__ __forceinline__ void cp_async_ca_zfill(const D& dst, const S& src, int src_bytes) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async.ca copies 4, 8 or 16 bytes");
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src), "n"(Bytes), "r"(src_bytes));
}
template <class D, class S> __device__ __forceinline__ void cp_async_cg(const D& dst, const S& src) {
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src));
}
template <class D, class S> __device__ __forceinline__ void cp_async_cg_zfill(const D& dst, const S& src, int src_bytes) {
  const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }
#endif

}  // namespace ptx

#undef STRUCTURA_PTX_FN
#endif
