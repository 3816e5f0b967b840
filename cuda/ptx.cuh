// ptx.cuh — every inline PTX instruction the kernels use, behind one wrapper each. On nvcc the
// wrapper is the asm; with -DSTRUCTURA_CUDA_EMU it is the CPU emulation (cuda/emu/ptx_emu.cc), which
// gathers the registers of all 32 lanes and computes by the PTX ISA fragment layouts (sections cited
// beside each wrapper, PTX ISA 9.1 numbering; tables in /work/shared/notes/ptx_fragments.md).
// All need sm_80+ (wgmma: sm_90a). Fragments are arrays of 32-bit registers exactly as the PTX operands list them.
//
//   mma_m16n8k16_{f16,bf16}(d[4], a[4], b[2], c[4])     d = a·b + c, f32 accumulators
//   mma_m16n8k8_{f16,bf16}(d[4], a[2], b[1], c[4])
//   mma_m16n8k8_tf32(d[4], a[4], b[2], c[4])            a/b: f32 bit patterns (see to_tf32)
//   mma_sp_m16n8k16_{f16,bf16}<sel>(d[4], a[2], b[2], c[4], e)   2:4 sparse A, sel 0..3
//   mma_sp_m16n8k32_{f16,bf16}<sel>(d[4], a[4], b[4], c[4], e)   sel 0..1
//   ldmatrix_x{1,2,4}[_trans](r[N], row)                row: this lane's 16-byte shared row address
//   cp_async_ca<bytes>(dst, src) / cp_async_cg(dst, src) (16 B) / *_zfill(dst, src, src_bytes)
//   cp_async_commit(), cp_async_wait<N>(), cp_async_wait_all()
//   wgmma_m64n256k16_{bf16,f16}(d[128], desc_a, desc_b), wgmma_desc_sw128, smem_addr, wgmma_fence,
//   wgmma_commit, wgmma_wait<N>, fence_proxy_async     (sm_90a only; see below)
//   mbar_*, tma_load_2d                                 mbarriers and TMA loads (sm_90a)
//   pdl_trigger(), pdl_wait()                           griddepcontrol (sm_90+; no-ops before)
//   ld_stream_v4(p)                                     16-byte streaming load, L2 256-byte prefetch
//   prefetch_l2(p, bytes)                               bulk L2 prefetch (sm_90+; no-op before)
//   flag_release(p), flag_wait(p)                       a release/acquire flag between the blocks of a grid
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

// ---- streaming loads -------------------------------------------------------------------------------
// ld_stream_v4(p): 16 bytes of read-only global memory that this kernel will not read again (a weight
// streamed once by the decode GEMV): ld.global.nc.L1::no_allocate.L2::256B.v4.u32 (PTX ISA: ld; sm_80+)
// — not kept in L1, and L2 asked to fetch the whole 256-byte block around it, so the neighbouring
// pieces that other warps read next are already on their way. Emulation: a checked 16-byte load.
#ifdef STRUCTURA_CUDA_EMU
inline uint4 ld_stream_v4(dev_ptr<const uint4> p) { return p[0]; }
#else
__device__ __forceinline__ uint4 ld_stream_v4(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
#endif

// prefetch_l2(p, bytes): cp.async.bulk.prefetch.L2.global (sm_90; PTX ISA: cp.async.bulk.prefetch) —
// asks L2 to fetch [p, p + bytes) (16-byte aligned, a multiple of 16) without reading it into the
// kernel, so it is safe before pdl_wait. Older GPUs: nothing. Emulation: a bounds check only.
#ifdef STRUCTURA_CUDA_EMU
inline void prefetch_l2(dev_ptr<const uint16_t> p, uint32_t bytes) { ::emu::prefetch_check(p.r, p.p, bytes); }
#else
__device__ __forceinline__ void prefetch_l2(const uint16_t* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
  (void)p, (void)bytes;
#endif
}
#endif

// ---- programmatic dependent launch (PTX ISA: griddepcontrol; sm_90+) -----------------------------
// pdl_trigger(): the next kernel in the stream, if launched with structura::launch_pdl, may start
// once every block of this one has run it. pdl_wait(): block until the kernels this one depends on
// have finished and their writes are visible. On older GPUs (and without launch_pdl) the stream has
// already ordered the kernels: both do nothing. The emulator checks that a launch_pdl kernel touches
// nothing its predecessors wrote before pdl_wait (cuda/emu/README.md).
#ifdef STRUCTURA_CUDA_EMU
inline void pdl_trigger() {}
inline void pdl_wait() { ::emu::pdl_wait(); }
#else
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
#endif

// ---- a flag between the blocks of one grid (cuda/dense.cu's one-launch lora) ---------------------
// flag_release(p): *p = 1 with release semantics at GPU scope (st.release.gpu): the writes this block
// made visible before it (__threadfence, then __syncthreads) are seen by whoever acquires the flag.
// flag_wait(p): spins (ld.acquire.gpu, with __nanosleep between tries) until *p != 0 (a trap after kWaitLimitNs). The waiter must
// not need the raiser's SM (the raiser is already running). Emulation: blocks run one after another,
// so a flag not yet raised when a block waits would never be: that is reported (barrier-divergence).
#ifdef STRUCTURA_CUDA_EMU
inline void flag_release(dev_ptr<int> p) { atomicExch(p, 1); }
inline void flag_wait(dev_ptr<int> p) {
  const int v = p[0];
  if (v == 0)
    ::emu::fail(::emu::ErrorKind::BarrierDivergence,
                "flag_wait on a flag that no block ahead of this one raised (blocks run in order here, so no later one "
                "can; on a GPU the wait would never end if the raiser needs this block's SM)");
}
#else
__device__ __forceinline__ void flag_release(int* p) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;" ::"l"(p), "r"(1) : "memory");
}
// The waits below (flag_wait, mbar_wait) give up after kWaitLimitNs of %globaltimer and trap: the
// launch fails (reported at the next call that synchronizes, under that op's name) where a wait that
// can never end (a flag nobody raises, a TMA that never lands) would hang the process, and with it the
// short GPU runs these kernels are checked in. A trap is sticky: the process's CUDA context is lost
// and later CUDA calls fail too — which is why test/gpu/probe.ts gives each kernel a process of its
// own. No legitimate wait comes near it: each covers one k-tile's loads, or the few CTAs that make
// lora's T, microseconds on a GPU.
constexpr unsigned long long kWaitLimitNs = 10ull * 1000 * 1000 * 1000;
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void flag_wait(int* p) {
  unsigned long long t0 = 0;
  for (;;) {
    int v;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    if (v != 0) return;
    const unsigned long long t = global_ns();
    if (t0 == 0) t0 = t;
    else if (t - t0 > kWaitLimitNs) __trap();
    __nanosleep(64);
  }
}
#endif

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

// ---- wgmma (sm_90a; PTX §9.7.15): warpgroup MMA, operands from shared memory by descriptor --------
// The four warps of a warpgroup (threads 128w … 128w + 127) issue it together; warp i of the group
// owns accumulator rows 16i … 16i + 15. Only the form the GEMM uses is wrapped: both operands
// K-major in the 128-byte swizzle (rows of 64 16-bit elements, 128 bytes, 16-byte chunk c of row r
// stored at chunk c ^ (r % 8), 8-row groups SBO bytes apart, tile base 1024-byte aligned), f32
// accumulation added to d (scale-d = 1), no negation or transpose.
//   smem_addr(p)                     p's shared-window address (the emulator: its offset in the launch's
//                                    dynamic shared memory, which is the only shared memory allowed here)
//   wgmma_desc_sw128(addr, sbo)      the matrix descriptor (§9.7.15.5.1): start address, SBO, 128B swizzle
//   wgmma_m64n256k16_{bf16,f16}(d[128], desc_a, desc_b)   D[64×256] += A[64×16]·B[16×256]; A is 64
//                                    K-major rows at desc_a, B 256 K-major rows (B stored [N, K]) at desc_b.
//                                    d[4j + v] of lane l of warp i holds (row 16i + l/4 + 8·(v >> 1),
//                                    column 8j + 2·(l % 4) + (v & 1)), as mma.sync's C/D per n8 block.
//   wgmma_fence()                    before the first wgmma, and after the accumulators were touched
//   wgmma_commit() / wgmma_wait<N>() group the issued wgmma; wait until at most N groups are pending
//   fence_proxy_async()              make this thread's generic-proxy shared writes (cp.async included)
//                                    visible to wgmma's async-proxy reads; then a barrier
//   fence_operands(d)                keep the compiler from moving accumulator accesses across this point
//                                    (after their initialization, after the final wait_group)
//   mbar_init(bar, count) / fence_mbarrier_init()   an mbarrier in shared memory (PTX §9.7.13.15); the
//                                    fence (and a barrier) before other threads use it
//   mbar_arrive(bar) / mbar_arrive_expect_tx(bar, bytes)   arrive (having announced `bytes` of TMA)
//   mbar_wait(bar, parity)           spin on mbarrier.try_wait.parity until that phase has completed
//                                    (a trap after kWaitLimitNs: see flag_wait)
//   tma_load_2d(dst, map, c0, c1, bar)   cp.async.bulk.tensor.2d: the box at (c0 inner, c1 outer) of the
//                                    tensor map at `map` (a __grid_constant__ CUtensorMap, cuda/tma.cuh)
//                                    into shared dst (1024-byte aligned for the 128-byte swizzle),
//                                    completing its bytes on bar
// In emulation a wgmma reads shared memory and computes when it is issued (each warp its 16 rows); the
// bytes it read stay "in flight" until the warp's wgmma_wait covers its group, and a shared write to
// them before that is reported as a race (cuda/emu/README.md).
STRUCTURA_PTX_FN uint64_t wgmma_desc_sw128(uint32_t addr, uint32_t sbo_bytes) {
  return (uint64_t)((addr & 0x3ffffu) >> 4) | ((uint64_t)1 << 16) | ((uint64_t)((sbo_bytes & 0x3ffffu) >> 4) << 32) |
         ((uint64_t)1 << 62);
}
#ifdef STRUCTURA_CUDA_EMU
template <class P> inline uint32_t smem_addr(const P& p) { return ::emu::ptx::smem_addr(::emu::ptr<const void>(p)); }
inline void wgmma_m64n256k16_bf16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  ::emu::ptx::wgmma(256, ::emu::ptx::Type::BF16, d, desc_a, desc_b);
}
inline void wgmma_m64n256k16_f16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  ::emu::ptx::wgmma(256, ::emu::ptx::Type::F16, d, desc_a, desc_b);
}
template <int N> inline void fence_operands(float (&)[N]) {}
inline void wgmma_fence() {}
inline void wgmma_commit() { ::emu::wgmma_commit(); }
template <int N> inline void wgmma_wait() { ::emu::wgmma_wait(N); }
inline void fence_proxy_async() {}
inline void mbar_init(uint32_t bar, unsigned count) { ::emu::mbar_init(bar, count); }
inline void fence_mbarrier_init() {}
inline void mbar_arrive(uint32_t bar) { ::emu::mbar_arrive(bar, 0); }
inline void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) { ::emu::mbar_arrive(bar, bytes); }
inline void mbar_wait(uint32_t bar, uint32_t parity) { ::emu::mbar_wait(bar, parity); }
inline void tma_load_2d(uint32_t dst, const void* map, int c0, int c1, uint32_t bar) {
  ::emu::tma_load_2d(dst, map, c0, c1, bar);
}
#else
template <class P> __device__ __forceinline__ uint32_t smem_addr(const P& p) { return (uint32_t)__cvta_generic_to_shared(p); }
// Pins the accumulators at this point of the instruction stream: the compiler sees them as read and
// rewritten here, so it neither moves their initialization past the first wgmma nor their use above
// the wait_group that completes them (the wgmma asm's outputs look available at once otherwise).
template <int N> __device__ __forceinline__ void fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define STRUCTURA_WGMMA256(fn, T)                                                                   \
  __device__ __forceinline__ void fn(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {             \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                    \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." T "." T " {"                         \
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"                                                 \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])                                                                                 \
                 : "l"(desc_a), "l"(desc_b), "r"(1));                                                         \
  }
STRUCTURA_WGMMA256(wgmma_m64n256k16_bf16, "bf16")
STRUCTURA_WGMMA256(wgmma_m64n256k16_f16, "f16")
#undef STRUCTURA_WGMMA256
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_mbarrier_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(bar), "r"(parity)
               : "memory");
  return done != 0;
}
// The clock is read only once the first try has failed (try_wait itself suspends a while in hardware).
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  if (mbar_try_wait(bar, parity)) return;
  const unsigned long long t0 = global_ns();
  while (!mbar_try_wait(bar, parity))
    if (global_ns() - t0 > kWaitLimitNs) __trap();
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const void* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
#else
// Not sm_90a (sm_80–89 SASS, compute_90 PTX): wgmma does not exist; the launcher never runs these.
__device__ __forceinline__ void wgmma_m64n256k16_bf16(float (&)[128], uint64_t, uint64_t) { __trap(); }
__device__ __forceinline__ void wgmma_m64n256k16_f16(float (&)[128], uint64_t, uint64_t) { __trap(); }
__device__ __forceinline__ void wgmma_fence() {}
__device__ __forceinline__ void wgmma_commit() {}
template <int N> __device__ __forceinline__ void wgmma_wait() {}
__device__ __forceinline__ void fence_proxy_async() {}
__device__ __forceinline__ void mbar_init(uint32_t, unsigned) {}
__device__ __forceinline__ void fence_mbarrier_init() {}
__device__ __forceinline__ void mbar_arrive(uint32_t) {}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t, uint32_t) {}
__device__ __forceinline__ void mbar_wait(uint32_t, uint32_t) {}
__device__ __forceinline__ void tma_load_2d(uint32_t, const void*, int, int, uint32_t) { __trap(); }
#endif
#endif

}  // namespace ptx

#undef STRUCTURA_PTX_FN
#endif
