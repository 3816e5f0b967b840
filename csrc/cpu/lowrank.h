// cpu/lowrank.h — CPU kernels of the lowrank family (argument checks live in ops/lowrank.cc).
//
// A matrix operand is (pointer, row stride, column stride) in elements, so views (a rank prefix of
// the factors, transposes) are read in place. Shapes: x [M, K] (K = in), W [N, K] (N = out),
// A [≥k, K], B [N, ≥k]; y [M, N] is a fresh contiguous output.
//
//   lora_forward      y = x·Wᵀ + (scale·x·A[:k]ᵀ)·B[:, :k]ᵀ + bias; W may be null (lowrank.linear).
//                     With W the rank-k term is added in the epilogue of the one GEMM pass over W.
//   lora_batched      y = x·Wᵀ + scale·(x[m]·A[ids[m]]ᵀ)·B[ids[m]]ᵀ + bias per row (ids[m] = −1: none);
//                     A [E, r, K], B [E, N, r] contiguous.
//   lora_mixture      y = x·Wᵀ + Σ_e gates[m, e]·scale·(x·A_eᵀ)·B_eᵀ + bias; the gates are folded into T.
//   (bias may be null; bias_stride is its element stride.)
//   spmm              y[M, N] (+)= x[M, K]·Sᵀ, or (transpose) y[M, K] = g[M, N]·S, S [N, K] given by
//                     sorted flat indices (row·K + col) and values.
//   sddmm             out[e] = Σ_m g[m, row_e]·x[m, col_e]: the gradient of S's values at its support.
//   svd_randomized    W [m, n] (float64) ≈ U·diag(s)·Vᵀ truncated by rank and/or kept energy.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/gemm.h"
#include "host_cache.h"

namespace structura {

template <class T>
struct MatRef {
  const T* p = nullptr;
  int64_t rs = 0, cs = 0;
  // T = float, a 16-bit operand as stored (strides hrs, hcs): for W it replaces p (null then) and is
  // read in place by gemm_half; for x it is beside p (x in float32, for the small products) and is
  // what x·Wᵀ reads when W has the same kind (both bfloat16: the vdpbf16ps kernels)
  const uint16_t* h = nullptr;
  Half kind = Half::none;
  int64_t hrs = 0, hcs = 0;
};

template <class T>
void lora_forward(int64_t M, int64_t N, int64_t K, int64_t k, MatRef<T> x, MatRef<T> W, MatRef<T> A, MatRef<T> B,
                  T scale, const T* bias, int64_t bias_stride, T* y);

template <class T>
void lora_batched(int64_t M, int64_t N, int64_t K, int64_t E, int64_t r, MatRef<T> x, MatRef<T> W, const T* A,
                  const T* B, const int32_t* ids, T scale, const T* bias, int64_t bias_stride, T* y);

template <class T>
void lora_mixture(int64_t M, int64_t N, int64_t K, int64_t E, int64_t r, MatRef<T> x, MatRef<T> W, const T* A,
                  const T* B, const T* gates, T scale, const T* bias, int64_t bias_stride, T* y);

// S [N, K] from its sorted flat indices, compressed by rows (other = the column of each entry) or by
// columns (other = the row, perm = the entry's position in S's values; within a column, row order).
struct SparseForm {
  std::vector<int32_t> ptr, other, perm;
};
SparseForm sparse_form(const int32_t* idx, int64_t nnz, int64_t N, int64_t K, bool by_cols);

// x, g, y contiguous; accumulate: add into y instead of overwriting it. form: S by rows (x·Sᵀ) or by
// columns (transpose: g·S) when the caller keeps it (lowrank.sparse); else it is built when worth it.
template <class T>
void spmm(int64_t M, int64_t N, int64_t K, const T* in, const int32_t* idx, const T* val, int64_t nnz, bool transpose,
          bool accumulate, T* y, const SparseForm* form = nullptr);

template <class T>
void sddmm(int64_t M, int64_t N, int64_t K, const T* g, const T* x, const int32_t* idx, int64_t nnz, T* out);

// float64 scratch of lowrank.svd, from the host cache (its buffers are large and made on every call)
using SvdBuffer = std::vector<double, HostCachedAllocator<double>>;
struct SvdResult {
  int64_t k = 0;
  SvdBuffer U;            // [m, k] row-major
  std::vector<double> s;  // [k], descending
  SvdBuffer V;            // [n, k] row-major
};
// rank ≤ 0: no rank limit; energy < 0: no energy limit (at least one of them is given).
SvdResult svd_randomized(const double* W, int64_t m, int64_t n, int64_t rank, double energy, uint64_t seed,
                         int power_iters);

}  // namespace structura
