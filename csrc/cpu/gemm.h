// cpu/gemm.h — the shared packed GEMM core every CPU op builds on (dense matmul, lowrank, monarch,
// sparse24's dense fallbacks, s4's batched products).
//
//   C[i, j] = alpha · Σ_k A[i, k] · B[k, j] + beta · C[i, j]      for i < M, j < N, k < K
//
// Operands are given by pointer and (row stride, column stride) in elements, so transposes and
// strided views cost nothing: A(i, k) = A[i·rs_a + k·cs_a]. Any strides work (packing reads them);
// unit stride along one of the two dimensions is the fast case. beta = 0 never reads C (it may hold
// NaN); alpha = 0 or K = 0 never reads A or B. C must not overlap A, B or itself.
// Goto/BLIS five loops: packed KC×NC panels of B and MC×KC blocks of A, an MR×NR register micro-kernel
// chosen at run time (AVX-512, AVX2+FMA, scalar; cpu/cpuinfo.h), threads over M (over N when M is
// small) on the shared pool. Skinny problems (M ≤ 16, bandwidth-bound) with a unit stride in B skip
// packing and stream B once, each thread its own columns. Tiny problems (M·N·K ≤ 4096) take a direct
// loop; few columns (N < NR/2, or N ≤ 16 at the SIMD levels) and more rows are computed as Cᵀ = Bᵀ·Aᵀ,
// which is skinny. A thin B (≤ 1 MB packed) is packed whole once, so the threads never wait on each other.
// Called from inside a parallel region (e.g. one gemm per batch item on the pool), it runs inline on
// the calling thread. Packed buffers are 64-byte aligned, per calling thread, reused across calls.
#pragma once
#include <cstdint>
#include <functional>

namespace structura {

template <class T>
struct GemmEpilogue {
  // Optional: added to every row of C after alpha/beta: C[i, j] += bias[j·bias_stride].
  const T* bias = nullptr;
  int64_t bias_stride = 1;
  // Optional: called once per finished block of C (all of K accumulated, bias added), by the thread
  // that computed it, with the block's row and column ranges [i0, i1) × [j0, j1). Used by fused ops
  // (e.g. lowrank adds its rank-r term here) and activations. The blocks of one call tile C exactly
  // once and never overlap; they may run concurrently on different threads. An exception thrown by
  // the hook is rethrown by gemm() once every thread has stopped. The hook may call gemm() itself (it
  // runs inline on the hook's thread, with buffers of its own).
  std::function<void(int64_t i0, int64_t i1, int64_t j0, int64_t j1)> block;
};

// T = float or double.
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B,
          int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c,
          const GemmEpilogue<T>* epilogue = nullptr);

// The bits of a 16-bit float operand of gemm_half.
enum class Half { none, bf16, f16 };

// float32 gemm with A and/or B given as bfloat16 / float16 bits (kind ≠ none; same strides, in
// elements): each is converted to float32 on the way in — while packing, or a few rows at a time into a
// small scratch on the skinny paths — so no float32 copy of a 16-bit operand is made and a skinny
// product (x·Wᵀ at decode) reads W at half the bytes. Results are those of gemm<float> on the
// converted operands (the conversion is exact), except that with both operands bfloat16 on a CPU
// with AVX512-BF16 the products are summed two at a time by vdpbf16ps (which flushes subnormals
// whatever setFlushDenormal says; the same float32 accumulation bound).
void gemm_half(int64_t M, int64_t N, int64_t K, float alpha, const void* A, Half a_kind, int64_t rs_a, int64_t cs_a,
               const void* B, Half b_kind, int64_t rs_b, int64_t cs_b, float beta, float* C, int64_t rs_c, int64_t cs_c,
               const GemmEpilogue<float>* epilogue = nullptr);

// `batch` independent GEMMs; operand p of batch b starts at p + b·batch_stride_p (0 broadcasts A or B;
// the C matrices must be distinct). Small products run side by side on the pool, large ones in turn.
template <class T>
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t bs_a, int64_t rs_a,
                  int64_t cs_a, const T* B, int64_t bs_b, int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t bs_c,
                  int64_t rs_c, int64_t cs_c);

// The same with the operands of batch b given by a callback (batch dimensions with arbitrary strides,
// numpy broadcasting). `operands` may be called from several threads at once.
template <class T>
void gemm_batched_fn(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, int64_t rs_a, int64_t cs_a,
                     int64_t rs_b, int64_t cs_b, T beta, int64_t rs_c, int64_t cs_c,
                     const std::function<void(int64_t b, const T** A, const T** B, T** C)>& operands);

// The plain triple loop, accumulated in double (tests, and the reference for the GEMM benchmark).
template <class T>
void gemm_naive(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B,
                int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c);

// The register tile (MR × NR) and K block of the kernel in use at the current SIMD level, so tests can
// aim at the edges.
int gemm_block_mr(bool is_double);
int gemm_block_nr(bool is_double);
int gemm_block_kc(bool is_double);

}  // namespace structura
