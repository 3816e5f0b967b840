// cpu/gemm.h — the shared packed GEMM core every CPU op builds on (dense matmul, lowrank, monarch,
// sparse24's dense fallbacks, s4's batched products).
//
//   C[i, j] = alpha · Σ_k A[i, k] · B[k, j] + beta · C[i, j]      for i < M, j < N, k < K
//
// Operands are given by pointer and (row stride, column stride) in elements, so transposes and
// strided views cost nothing: A(i, k) = A[i·rs_a + k·cs_a]. beta = 0 never reads C (it may hold NaN).
// Goto/BLIS five loops: packed KC×NC panels of B and MC×KC blocks of A, an MR×NR register micro-kernel
// chosen at run time (AVX-512, AVX2+FMA, scalar; cpu/cpuinfo.h), threads over M (and N when M is small)
// on the shared pool, small/skinny problems (M ≤ 16, or tiny K) on an unpacked path.
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
  // that computed it, with the block's row and column ranges. Used by fused ops (e.g. lowrank adds its
  // rank-r term here) and activations. Blocks of different calls never overlap.
  std::function<void(int64_t i0, int64_t i1, int64_t j0, int64_t j1)> block;
};

// T = float or double.
template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B,
          int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c,
          const GemmEpilogue<T>* epilogue = nullptr);

// `batch` independent GEMMs; operand p of batch b starts at p + b·batch_stride_p (0 broadcasts).
template <class T>
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t bs_a, int64_t rs_a,
                  int64_t cs_a, const T* B, int64_t bs_b, int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t bs_c,
                  int64_t rs_c, int64_t cs_c);

// The plain triple loop in double (tests, and the reference for the GEMM benchmark).
template <class T>
void gemm_naive(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B,
                int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c);

}  // namespace structura
