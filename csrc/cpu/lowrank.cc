// cpu/lowrank.cc — CPU kernels of the lowrank family (shapes and contracts in cpu/lowrank.h).
//
// The LoRA forwards make one pass over W with the shared GEMM core (cpu/gemm.h): the small
// T = scale·x·Aᵀ [M, r] is computed first, and every finished block C[i0:i1, j0:j1] of x·Wᵀ gets
// T[i0:i1]·Bᵀ[:, j0:j1] added by the GEMM's epilogue hook while it is still in cache, so W is read once
// and y written once. The rank-r update (O(M·N·r), r/K of the GEMM's work) is itself a GEMM with K = r
// run inline in the hook (register-tiled); blocks of one or two rows use a plain loop compiled three
// times (baseline, AVX2+FMA, AVX-512) and chosen at run time like the GEMM kernels.
// spmm / sddmm walk the sorted flat indices of S (row-major, so a row's entries are contiguous); from 8
// rows of x on, on transposed copies so that each nonzero multiplies a 64-byte run of rows (a training
// step of sparsePlusLowRank at M = 64 went from 97 to 19 ms).
// svd_randomized: Halko–Martinsson–Tropp range finder with power iterations, Gram–Schmidt twice
// (re-orthogonalised) in float64, then one-sided (Hestenes) Jacobi on the small l×n matrix QᵀW.
#include "cpu/lowrank.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cpu/cpuinfo.h"
#include "cpu/gemm.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#define STRUCTURA_LR_X86 1
#else
#define STRUCTURA_LR_X86 0
#endif

namespace structura {

// ---------------------------------------------------------------------------------------------
// the epilogue's rank-k update: c[rows, cols] += t[rows, k] · bt[k, cols] (row strides ldt, ldb, ldc)

#define STRUCTURA_LR_UPDATE(NAME, T)                                                                             \
  void NAME(int64_t rows, int64_t cols, int64_t k, const T* __restrict t, int64_t ldt, const T* __restrict bt,   \
            int64_t ldb, T* __restrict c, int64_t ldc) {                                                         \
    for (int64_t i = 0; i < rows; i++) {                                                                         \
      T* __restrict ci = c + i * ldc;                                                                            \
      const T* ti = t + i * ldt;                                                                                 \
      for (int64_t p = 0; p < k; p++) {                                                                          \
        const T a = ti[p];                                                                                       \
        const T* __restrict bp = bt + p * ldb;                                                                   \
        for (int64_t j = 0; j < cols; j++) ci[j] += a * bp[j];                                                   \
      }                                                                                                          \
    }                                                                                                            \
  }

// The sparse kernels for many rows (M ≥ 8): x, g and y transposed to [cols, Mp] (Mp = M rounded
// up to W = 64 bytes of lanes, zero padded), so that every nonzero of S multiplies W contiguous lanes:
//   rows:  yT[j, m0:m0+W) = Σ_{e in row j of S} val[e]·xT[col_e, m0:m0+W)            (x·Sᵀ, rows j0..j1)
//   cols:  yT[c, m0:m0+W) = Σ_{e in column c} val[perm]·gT[row_e, m0:m0+W)            (g·S, columns c0..c1)
//   dots:  out[e] = Σ_m gT[row_e, m]·xT[col_e, m]                                      (SDDMM, e0..e1)
// ptr / other / perm: S compressed by rows (other = column) or by columns (other = row, perm = the
// entry's position in val). Sums run in e order, W lanes at a time.
#define STRUCTURA_LR_SPARSE(T, SUFFIX)                                                                               \
  void sparse_rows_##SUFFIX(int64_t j0, int64_t j1, const int32_t* ptr, const int32_t* other, const T* val,           \
                            const int32_t* perm, const T* __restrict xT, int64_t Mp, T* __restrict yT) {             \
    constexpr int W = 64 / (int)sizeof(T);                                                                           \
    for (int64_t j = j0; j < j1; j++)                                                                                \
      for (int64_t m0 = 0; m0 < Mp; m0 += W) {                                                                       \
        T acc[W] = {};                                                                                               \
        for (int64_t e = ptr[j]; e < ptr[j + 1]; e++) {                                                              \
          const T v = val[perm ? perm[e] : e];                                                                       \
          const T* __restrict xr = xT + (int64_t)other[e] * Mp + m0;                                                 \
          for (int i = 0; i < W; i++) acc[i] += v * xr[i];                                                           \
        }                                                                                                            \
        T* __restrict yr = yT + j * Mp + m0;                                                                         \
        for (int i = 0; i < W; i++) yr[i] = acc[i];                                                                  \
      }                                                                                                              \
  }                                                                                                                  \
  void sparse_dots_##SUFFIX(int64_t e0, int64_t e1, const int32_t* idx, int64_t K, const T* __restrict gT,            \
                            const T* __restrict xT, int64_t Mp, T* out) {                                            \
    constexpr int W = 64 / (int)sizeof(T);                                                                           \
    if (e0 >= e1) return;                                                                                            \
    int64_t row = idx[e0] / K, base = row * K; /* sorted: the row advances, no division per entry */               \
    for (int64_t e = e0; e < e1; e++) {                                                                              \
      while (idx[e] >= base + K) row++, base += K;                                                                   \
      const T* __restrict gr = gT + row * Mp;                                                                        \
      const T* __restrict xr = xT + (int64_t)(idx[e] - base) * Mp;                                                   \
      T acc[W] = {};                                                                                                 \
      for (int64_t m0 = 0; m0 < Mp; m0 += W)                                                                         \
        for (int i = 0; i < W; i++) acc[i] += gr[m0 + i] * xr[m0 + i];                                              \
      T s = T(0);                                                                                                    \
      for (int i = 0; i < W; i++) s += acc[i];                                                                       \
      out[e] = s;                                                                                                    \
    }                                                                                                                \
  }


// The row kernels of lowrank.svd's Gram–Schmidt and Jacobi sweeps, on rows of n doubles. Compiled per
// SIMD level like the others (the file's own baseline is SSE2: the Jacobi sweeps of rank 256 of a 4096²
// matrix took 83 ms on it). 16 partial sums per sum (two AVX-512 registers), combined in a fixed order.
#define STRUCTURA_LR_SVD                                                                                          \
  double svd_dot(const double* __restrict a, const double* __restrict b, int64_t n) {                            \
    double p[16] = {};                                                                                           \
    int64_t i = 0;                                                                                               \
    for (; i + 16 <= n; i += 16)                                                                                 \
      for (int k = 0; k < 16; k++) p[k] += a[i + k] * b[i + k];                                                  \
    for (int k = 0; k < 8; k++) p[k] += p[k + 8];                                                                \
    double s = ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));                                \
    for (; i < n; i++) s += a[i] * b[i];                                                                         \
    return s;                                                                                                    \
  }                                                                                                              \
  /* r[0] = p·p, r[1] = q·q, r[2] = p·q in one pass */                                                           \
  void svd_dot3(const double* __restrict p, const double* __restrict q, int64_t n, double* r) {                 \
    double a[8] = {}, b[8] = {}, g[8] = {};                                                                      \
    int64_t i = 0;                                                                                               \
    for (; i + 8 <= n; i += 8)                                                                                   \
      for (int k = 0; k < 8; k++) {                                                                              \
        a[k] += p[i + k] * p[i + k];                                                                             \
        b[k] += q[i + k] * q[i + k];                                                                             \
        g[k] += p[i + k] * q[i + k];                                                                             \
      }                                                                                                          \
    double sa = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));                               \
    double sb = ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7]));                               \
    double sg = ((g[0] + g[4]) + (g[1] + g[5])) + ((g[2] + g[6]) + (g[3] + g[7]));                               \
    for (; i < n; i++) sa += p[i] * p[i], sb += q[i] * q[i], sg += p[i] * q[i];                                  \
    r[0] = sa, r[1] = sb, r[2] = sg;                                                                             \
  }                                                                                                              \
  /* (p, q) ← (c·p − s·q, s·p + c·q) */                                                                          \
  void svd_rotate(double* __restrict p, double* __restrict q, int64_t n, double c, double s) {                  \
    for (int64_t i = 0; i < n; i++) {                                                                            \
      const double u = p[i], v = q[i];                                                                           \
      p[i] = c * u - s * v;                                                                                      \
      q[i] = s * u + c * v;                                                                                      \
    }                                                                                                            \
  }                                                                                                              \
  /* v −= d·u */                                                                                                 \
  void svd_axpy(double* __restrict v, const double* __restrict u, double d, int64_t n) {                        \
    for (int64_t i = 0; i < n; i++) v[i] -= d * u[i];                                                            \
  }

namespace lr_base {
STRUCTURA_LR_SVD
STRUCTURA_LR_UPDATE(update_f32, float)
STRUCTURA_LR_UPDATE(update_f64, double)
STRUCTURA_LR_SPARSE(float, f32)
STRUCTURA_LR_SPARSE(double, f64)
}  // namespace lr_base

#if STRUCTURA_LR_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace lr_avx2 {
STRUCTURA_LR_SVD
STRUCTURA_LR_UPDATE(update_f32, float)
STRUCTURA_LR_UPDATE(update_f64, double)
STRUCTURA_LR_SPARSE(float, f32)
STRUCTURA_LR_SPARSE(double, f64)
}  // namespace lr_avx2
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#endif
namespace lr_avx512 {
STRUCTURA_LR_SVD
STRUCTURA_LR_UPDATE(update_f32, float)
STRUCTURA_LR_UPDATE(update_f64, double)
STRUCTURA_LR_SPARSE(float, f32)
STRUCTURA_LR_SPARSE(double, f64)
}  // namespace lr_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // STRUCTURA_LR_X86

namespace {

void rank_update(int64_t rows, int64_t cols, int64_t k, const float* t, int64_t ldt, const float* bt, int64_t ldb,
                 float* c, int64_t ldc) {
#if STRUCTURA_LR_X86
  const Simd s = simd_level();
  if (s == Simd::avx512) return lr_avx512::update_f32(rows, cols, k, t, ldt, bt, ldb, c, ldc);
  if (s == Simd::avx2) return lr_avx2::update_f32(rows, cols, k, t, ldt, bt, ldb, c, ldc);
#endif
  lr_base::update_f32(rows, cols, k, t, ldt, bt, ldb, c, ldc);
}

void rank_update(int64_t rows, int64_t cols, int64_t k, const double* t, int64_t ldt, const double* bt, int64_t ldb,
                 double* c, int64_t ldc) {
#if STRUCTURA_LR_X86
  const Simd s = simd_level();
  if (s == Simd::avx512) return lr_avx512::update_f64(rows, cols, k, t, ldt, bt, ldb, c, ldc);
  if (s == Simd::avx2) return lr_avx2::update_f64(rows, cols, k, t, ldt, bt, ldb, c, ldc);
#endif
  lr_base::update_f64(rows, cols, k, t, ldt, bt, ldb, c, ldc);
}

// The sparse block kernels of the SIMD level in use (STRUCTURA_LR_SPARSE).
#if STRUCTURA_LR_X86
#define STRUCTURA_LR_PICK(NS_FN, ...)                                         \
  do {                                                                        \
    const Simd s = simd_level();                                              \
    if (s == Simd::avx512) return lr_avx512::NS_FN(__VA_ARGS__);              \
    if (s == Simd::avx2) return lr_avx2::NS_FN(__VA_ARGS__);                  \
    return lr_base::NS_FN(__VA_ARGS__);                                       \
  } while (0)
#else
#define STRUCTURA_LR_PICK(NS_FN, ...) return lr_base::NS_FN(__VA_ARGS__)
#endif
void sparse_rows(int64_t j0, int64_t j1, const int32_t* ptr, const int32_t* other, const float* val, const int32_t* perm,
                 const float* xT, int64_t Mp, float* yT) {
  STRUCTURA_LR_PICK(sparse_rows_f32, j0, j1, ptr, other, val, perm, xT, Mp, yT);
}
void sparse_rows(int64_t j0, int64_t j1, const int32_t* ptr, const int32_t* other, const double* val,
                 const int32_t* perm, const double* xT, int64_t Mp, double* yT) {
  STRUCTURA_LR_PICK(sparse_rows_f64, j0, j1, ptr, other, val, perm, xT, Mp, yT);
}
void sparse_dots(int64_t e0, int64_t e1, const int32_t* idx, int64_t K, const float* gT, const float* xT, int64_t Mp,
                 float* out) {
  STRUCTURA_LR_PICK(sparse_dots_f32, e0, e1, idx, K, gT, xT, Mp, out);
}
void sparse_dots(int64_t e0, int64_t e1, const int32_t* idx, int64_t K, const double* gT, const double* xT, int64_t Mp,
                 double* out) {
  STRUCTURA_LR_PICK(sparse_dots_f64, e0, e1, idx, K, gT, xT, Mp, out);
}
double svd_dot(const double* a, const double* b, int64_t n) { STRUCTURA_LR_PICK(svd_dot, a, b, n); }
void svd_dot3(const double* p, const double* q, int64_t n, double* r) { STRUCTURA_LR_PICK(svd_dot3, p, q, n, r); }
void svd_rotate(double* p, double* q, int64_t n, double c, double sn) { STRUCTURA_LR_PICK(svd_rotate, p, q, n, c, sn); }
void svd_axpy(double* v, const double* u, double d, int64_t n) { STRUCTURA_LR_PICK(svd_axpy, v, u, d, n); }
#undef STRUCTURA_LR_PICK

// From this many rows of x (or g) on, spmm / sddmm work on transposed copies W lanes at a time; spmm
// without a kept form from kSparseRowsBuild on (building one costs ~10–20 ns an entry: the scatter by
// columns misses cache).
constexpr int64_t kSparseRows = 8, kSparseRowsBuild = 32;

// aT [cols, Mp] = a [M, cols]ᵀ, zero in the padding lanes m ≥ M; 16 × 16 tiles, so that both sides
// touch whole cache lines.
template <class T>
std::vector<T> transpose_padded(const T* a, int64_t M, int64_t cols, int64_t Mp) {
  std::vector<T> t((size_t)(cols * Mp), T(0));
  parallel_for((cols + 15) / 16, std::max<int64_t>(1, 1024 / std::max<int64_t>(1, M)), [&](int64_t q0, int64_t q1) {
    for (int64_t m0 = 0; m0 < M; m0 += 16)
      for (int64_t q = q0; q < q1; q++)
        for (int64_t c = 16 * q; c < std::min(cols, 16 * q + 16); c++)
          for (int64_t m = m0; m < std::min(M, m0 + 16); m++) t[(size_t)(c * Mp + m)] = a[m * cols + c];
  });
  return t;
}

// c[rows, cols] += t[rows, k]·bt[k, cols] for a finished block of the GEMM: a register-tiled product
// of the GEMM core itself (run inline on this thread, with its own buffers: cpu/gemm.h allows a gemm in
// a block hook): 1.6× (r = 16) to 2.6× (r = 64) faster than the row-by-row loop on 240×4096 blocks.
template <class T>
void rank_term(int64_t rows, int64_t cols, int64_t k, const T* t, int64_t ldt, const T* bt, int64_t ldb, T* c,
               int64_t ldc) {
  if (rows <= 2) return rank_update(rows, cols, k, t, ldt, bt, ldb, c, ldc);
  gemm<T>(rows, cols, k, T(1), t, ldt, 1, bt, ldb, 1, T(1), c, ldc, 1);
}

// bt[(e·r + p)·N + j] = B_e[j, p] for E stacked [N, r] factors given by strides (e-th at B + e·bs_e).
template <class T>
void transpose_factors(int64_t E, int64_t N, int64_t r, const T* B, int64_t bs_e, int64_t rs, int64_t cs, T* bt) {
  // In 32×32 tiles: a row of B (r contiguous values when B is row-major) is read once from memory,
  // not once per rank (a column walk would touch a new cache line for every element).
  constexpr int64_t TB = 32;
  auto body = [&](int64_t q0, int64_t q1) {
    for (int64_t j0 = 0; j0 < N; j0 += TB) {
      const int64_t j1 = std::min<int64_t>(N, j0 + TB);
      for (int64_t q = q0; q < q1; q++) {
        const int64_t e = q / r, p = q % r;
        const T* src = B + e * bs_e + p * cs;
        T* dst = bt + q * N;
        for (int64_t j = j0; j < j1; j++) dst[j] = src[j * rs];
      }
    }
  };
  // Up to a million elements (well under a millisecond) on this thread: waking the pool for it costs
  // more, most of all on a busy machine, and the GEMM that follows wakes it anyway.
  if (E * r * N <= (1 << 20)) return body(0, E * r);
  parallel_for(E * r, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)), body);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// LoRA forwards

// Up to this many rows lora's epilogue reads B in place instead of a transposed copy (see lora_forward).
constexpr int64_t kLoraInPlaceRows = 16;

// y [M, N] = x·Wᵀ with the epilogue: W as T, or (float) its 16-bit bits widened by gemm_half as it
// packs or streams them, so a bfloat16 / float16 weight is never copied to float32.
template <class T>
void x_wt(int64_t M, int64_t N, int64_t K, MatRef<T> x, MatRef<T> W, T* y, const GemmEpilogue<T>* epi) {
  if constexpr (std::is_same<T, float>::value) {
    if (W.h) {
      if (x.h && x.kind == W.kind)
        gemm_half(M, N, K, 1.f, x.h, x.kind, x.hrs, x.hcs, W.h, W.kind, W.hcs, W.hrs, 0.f, y, N, 1, epi);
      else
        gemm_half(M, N, K, 1.f, x.p, Half::none, x.rs, x.cs, W.h, W.kind, W.hcs, W.hrs, 0.f, y, N, 1, epi);
      return;
    }
  }
  gemm<T>(M, N, K, T(1), x.p, x.rs, x.cs, W.p, W.cs, W.rs, T(0), y, N, 1, epi);
}

template <class T>
void lora_forward(int64_t M, int64_t N, int64_t K, int64_t k, MatRef<T> x, MatRef<T> W, MatRef<T> A, MatRef<T> B,
                  T scale, const T* bias, int64_t bias_stride, T* y) {
  if (M <= 0 || N <= 0) return;
  // T = scale·x·A[:k]ᵀ: op(B) of the GEMM is A's first k rows read transposed (no copy)
  std::vector<T> t((size_t)(M * k));
  gemm<T>(M, k, K, scale, x.p, x.rs, x.cs, A.p, A.cs, A.rs, T(0), t.data(), k, 1);
  GemmEpilogue<T> epi;
  epi.bias = bias;
  epi.bias_stride = bias_stride;
  if (!W.p && !W.h) {
    gemm<T>(M, N, k, T(1), t.data(), k, 1, B.p, B.cs, B.rs, T(0), y, N, 1, bias ? &epi : nullptr);
    return;
  }
  const T* tp = t.data();
  if (M <= kLoraInPlaceRows) {
    // A few rows (decode): each block's rank term is a GEMM over B's rows in place (B [N, k] read as
    // op(B) = Bᵀ), so B is read once, in parallel, by the threads that own its columns. Transposing it
    // first cost ~0.15 ms of the calling thread at N = 4096, r = 64 (while the other threads waited):
    // about 7% of the whole call at M = 1.
    const T* bp = B.p;
    const int64_t brs = B.rs, bcs = B.cs;
    epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      gemm<T>(i1 - i0, j1 - j0, k, T(1), tp + i0 * k, k, 1, bp + j0 * brs, bcs, brs, T(1), y + i0 * N + j0, N, 1);
    };
    return x_wt<T>(M, N, K, x, W, y, &epi);
  }
  // Bᵀ[:k] as rows, so the epilogue's inner loop runs along contiguous columns of C.
  std::vector<T> bt((size_t)(k * N));
  transpose_factors<T>(1, N, k, B.p, 0, B.rs, B.cs, bt.data());
  const T* btp = bt.data();
  epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    rank_term(i1 - i0, j1 - j0, k, tp + i0 * k, k, btp + j0, N, y + i0 * N + j0, N);
  };
  x_wt<T>(M, N, K, x, W, y, &epi);
}

template <class T>
void lora_batched(int64_t M, int64_t N, int64_t K, int64_t E, int64_t r, MatRef<T> x, MatRef<T> W, const T* A,
                  const T* B, const int32_t* ids, T scale, const T* bias, int64_t bias_stride, T* y) {
  if (M <= 0 || N <= 0) return;
  // Rows grouped by adapter (Punica's SGMV): one small GEMM per adapter present in the batch.
  std::vector<std::vector<int64_t>> rows((size_t)E);
  for (int64_t m = 0; m < M; m++)
    if (ids[m] >= 0) rows[(size_t)ids[m]].push_back(m);
  std::vector<T> t((size_t)(M * r), T(0));
  std::vector<T> xe, te;
  for (int64_t e = 0; e < E; e++) {
    const std::vector<int64_t>& R = rows[(size_t)e];
    const int64_t n = (int64_t)R.size();
    if (n == 0) continue;
    const T* Ae = A + e * r * K;
    if (R.back() - R.front() + 1 == n) {  // a contiguous run of rows: read x in place
      gemm<T>(n, r, K, scale, x.p + R.front() * x.rs, x.rs, x.cs, Ae, 1, K, T(0), t.data() + R.front() * r, r, 1);
      continue;
    }
    xe.resize((size_t)(n * K));
    te.resize((size_t)(n * r));
    parallel_for(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) {
        const T* src = x.p + R[(size_t)i] * x.rs;
        T* dst = xe.data() + i * K;
        for (int64_t c = 0; c < K; c++) dst[c] = src[c * x.cs];
      }
    });
    gemm<T>(n, r, K, scale, xe.data(), K, 1, Ae, 1, K, T(0), te.data(), r, 1);
    for (int64_t i = 0; i < n; i++) std::memcpy(t.data() + R[(size_t)i] * r, te.data() + i * r, sizeof(T) * (size_t)r);
  }
  const T* tp = t.data();
  GemmEpilogue<T> epi;
  epi.bias = bias;
  epi.bias_stride = bias_stride;
  if (M <= kLoraInPlaceRows) {  // B_e [N, r] read in place (lora_forward says why)
    epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      for (int64_t i = i0; i < i1; i++)
        if (ids[i] >= 0)
          gemm<T>(1, j1 - j0, r, T(1), tp + i * r, r, 1, B + ((int64_t)ids[i] * N + j0) * r, 1, r, T(1), y + i * N + j0, N, 1);
    };
    return x_wt<T>(M, N, K, x, W, y, &epi);
  }
  std::vector<T> bt((size_t)(E * r * N));
  transpose_factors<T>(E, N, r, B, N * r, r, 1, bt.data());
  const T* btp = bt.data();
  epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    for (int64_t i = i0; i < i1; i++) {
      const int32_t e = ids[i];
      if (e < 0) continue;
      rank_update(1, j1 - j0, r, tp + i * r, r, btp + (int64_t)e * r * N + j0, N, y + i * N + j0, N);
    }
  };
  x_wt<T>(M, N, K, x, W, y, &epi);
}

template <class T>
void lora_mixture(int64_t M, int64_t N, int64_t K, int64_t E, int64_t r, MatRef<T> x, MatRef<T> W, const T* A,
                  const T* B, const T* gates, T scale, const T* bias, int64_t bias_stride, T* y) {
  if (M <= 0 || N <= 0) return;
  // The E adapters side by side are one adapter of rank E·r whose T columns carry the gates (X-LoRA).
  const int64_t R = E * r;
  std::vector<T> t((size_t)(M * R));
  gemm<T>(M, R, K, scale, x.p, x.rs, x.cs, A, 1, K, T(0), t.data(), R, 1);
  for (int64_t m = 0; m < M; m++)
    for (int64_t e = 0; e < E; e++) {
      const T g = gates[m * E + e];
      T* tr = t.data() + m * R + e * r;
      for (int64_t p = 0; p < r; p++) tr[p] *= g;
    }
  const T* tp = t.data();
  GemmEpilogue<T> epi;
  epi.bias = bias;
  epi.bias_stride = bias_stride;
  if (M <= kLoraInPlaceRows) {  // each B_e [N, r] read in place (lora_forward says why)
    epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      for (int64_t e = 0; e < E; e++)
        gemm<T>(i1 - i0, j1 - j0, r, T(1), tp + i0 * R + e * r, R, 1, B + (e * N + j0) * r, 1, r, T(1), y + i0 * N + j0, N, 1);
    };
    return x_wt<T>(M, N, K, x, W, y, &epi);
  }
  std::vector<T> bt((size_t)(R * N));
  transpose_factors<T>(E, N, r, B, N * r, r, 1, bt.data());
  const T* btp = bt.data();
  epi.block = [=](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    rank_term(i1 - i0, j1 - j0, R, tp + i0 * R, R, btp + j0, N, y + i0 * N + j0, N);
  };
  x_wt<T>(M, N, K, x, W, y, &epi);
}

// ---------------------------------------------------------------------------------------------
// sparse S [N, K]: SpMM and SDDMM

SparseForm sparse_form(const int32_t* idx, int64_t nnz, int64_t N, int64_t K, bool by_cols) {
  SparseForm f;
  const int64_t n = by_cols ? K : N;
  f.ptr.assign((size_t)n + 1, 0);
  f.other.resize((size_t)nnz);
  // rows by a walk over the sorted indices (a division per entry costs more than the product at small M)
  if (!by_cols) {
    for (int64_t e = 0, row = 0, base = 0; e < nnz; e++) {
      while (idx[e] >= base + K) row++, base += K;
      f.ptr[(size_t)row + 1]++;
      f.other[(size_t)e] = (int32_t)(idx[e] - base);
    }
    for (int64_t j = 0; j < n; j++) f.ptr[(size_t)j + 1] += f.ptr[(size_t)j];
    return f;
  }
  for (int64_t e = 0, base = 0; e < nnz; e++) {
    while (idx[e] >= base + K) base += K;
    f.ptr[(size_t)(idx[e] - base) + 1]++;
  }
  for (int64_t j = 0; j < n; j++) f.ptr[(size_t)j + 1] += f.ptr[(size_t)j];
  f.perm.resize((size_t)nnz);
  std::vector<int32_t> fill(f.ptr.begin(), f.ptr.end() - 1);
  for (int64_t e = 0, row = 0, base = 0; e < nnz; e++) {  // in row order, so each column's rows come out sorted
    while (idx[e] >= base + K) row++, base += K;
    const int32_t at = fill[(size_t)(idx[e] - base)]++;
    f.other[(size_t)at] = (int32_t)row;
    f.perm[(size_t)at] = (int32_t)e;
  }
  return f;
}

template <class T>
void spmm(int64_t M, int64_t N, int64_t K, const T* in, const int32_t* idx, const T* val, int64_t nnz, bool transpose,
          bool accumulate, T* y, const SparseForm* form) {
  if (M <= 0) return;
  if (M >= (form ? kSparseRows : kSparseRowsBuild)) {
    // S by rows (x·Sᵀ) or by columns (g·S); out = the rows of yT: N or K
    constexpr int64_t W = 64 / (int64_t)sizeof(T);
    const int64_t Mp = (M + W - 1) / W * W, n_in = transpose ? N : K, n_out = transpose ? K : N;
    SparseForm built;
    if (!form) built = sparse_form(idx, nnz, N, K, transpose), form = &built;
    const std::vector<T> inT = transpose_padded(in, M, n_in, Mp);
    std::vector<T> yT((size_t)(n_out * Mp));
    const int64_t per_row = std::max<int64_t>(1, (nnz / std::max<int64_t>(1, n_out) + 1) * Mp);
    parallel_for(n_out, std::max<int64_t>(1, 65536 / per_row), [&](int64_t j0, int64_t j1) {
      sparse_rows(j0, j1, form->ptr.data(), form->other.data(), val, transpose ? form->perm.data() : nullptr, inT.data(),
                  Mp, yT.data());
    });
    // back to y [M, n_out], 16 × 16 tiles
    parallel_for((M + 15) / 16, std::max<int64_t>(1, 1024 / std::max<int64_t>(1, n_out)), [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; q++)
        for (int64_t j0 = 0; j0 < n_out; j0 += 16)
          for (int64_t m = 16 * q; m < std::min(M, 16 * q + 16); m++) {
            T* yr = y + m * n_out;
            for (int64_t j = j0; j < std::min(n_out, j0 + 16); j++)
              yr[j] = accumulate ? yr[j] + yT[(size_t)(j * Mp + m)] : yT[(size_t)(j * Mp + m)];
          }
    });
    return;
  }
  if (!transpose) {
    // y[m, j] (+)= Σ_{e in row j} val[e]·x[m, col_e]; row j's entries are [ptr[j], ptr[j+1])
    SparseForm built;
    if (!form) built = sparse_form(idx, nnz, N, K, false), form = &built;
    const int32_t* ptr = form->ptr.data();
    const int32_t* col = form->other.data();
    const int64_t work = std::max<int64_t>(1, nnz + N);
    parallel_for(M, std::max<int64_t>(1, 65536 / work), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++) {
        const T* xr = in + m * K;
        T* yr = y + m * N;
        for (int64_t j = 0; j < N; j++) {
          T s = T(0);
          for (int64_t e = ptr[j]; e < ptr[j + 1]; e++) s += val[e] * xr[col[e]];
          yr[j] = accumulate ? yr[j] + s : s;
        }
      }
    });
    return;
  }
  // y[m, c] = Σ_e g[m, row_e]·val[e] at c = col_e: each row of y is written by one thread
  parallel_for(M, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, nnz + K)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const T* gr = in + m * N;
      T* yr = y + m * K;
      if (!accumulate) std::fill(yr, yr + K, T(0));
      for (int64_t e = 0; e < nnz; e++) {
        const int64_t f = idx[e];
        yr[f % K] += gr[f / K] * val[e];
      }
    }
  });
}

template <class T>
void sddmm(int64_t M, int64_t N, int64_t K, const T* g, const T* x, const int32_t* idx, int64_t nnz, T* out) {
  if (M >= kSparseRows) {
    constexpr int64_t W = 64 / (int64_t)sizeof(T);
    const int64_t Mp = (M + W - 1) / W * W;
    const std::vector<T> gT = transpose_padded(g, M, N, Mp), xT = transpose_padded(x, M, K, Mp);
    parallel_for(nnz, std::max<int64_t>(1, 65536 / Mp), [&](int64_t e0, int64_t e1) {
      sparse_dots(e0, e1, idx, K, gT.data(), xT.data(), Mp, out);
    });
    return;
  }
  // Chunks of the support; inside a chunk the rows of g and x are walked in order (cache friendly).
  parallel_for(nnz, 1024, [&](int64_t e0, int64_t e1) {
    std::fill(out + e0, out + e1, T(0));
    for (int64_t m = 0; m < M; m++) {
      const T* gr = g + m * N;
      const T* xr = x + m * K;
      for (int64_t e = e0; e < e1; e++) {
        const int64_t f = idx[e];
        out[e] += gr[f / K] * xr[f % K];
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// randomized truncated SVD (float64 throughout)

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Box–Muller on splitmix64's stream. Pair k uses the stream's draws 2k + 1 and 2k + 2, and splitmix64's
// state after j draws is the seed's plus j·γ, so each task starts its pairs where a serial loop would be
// (the same numbers on any number of threads).
void gaussian(SvdBuffer& out, uint64_t seed) {
  const uint64_t s0 = seed * 0x2545f4914f6cdd1dull + 1;
  const double two_pi = 6.283185307179586476925286766559;
  const int64_t pairs = (int64_t)(out.size() + 1) / 2;
  parallel_for(pairs, 4096, [&](int64_t k0, int64_t k1) {
    uint64_t s = s0 + 2 * (uint64_t)k0 * 0x9e3779b97f4a7c15ull;
    for (int64_t k = k0; k < k1; k++) {
      const size_t i = (size_t)(2 * k);
      const double u1 = ((double)(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
      const double u2 = (double)(splitmix64(s) >> 11) * 0x1.0p-53;
      const double rad = std::sqrt(-2.0 * std::log(u1));
      out[i] = rad * std::cos(two_pi * u2);
      if (i + 1 < out.size()) out[i + 1] = rad * std::sin(two_pi * u2);
    }
  });
}

// Orthonormalises the l rows (length n) of Q in place: Gram–Schmidt, twice ("twice is enough"). A row
// that is (numerically) in the span of the earlier ones becomes zero. Blocked: each block of kGsBlock
// rows is first projected off all earlier rows by two GEMMs (block classical Gram–Schmidt, twice), then
// orthonormalised within itself row by row (modified, twice), so the bulk (l²·n of the work) runs on the
// threaded GEMM. Row by row it was most of lowrank.svd's time (rank 256 of a 4096² matrix: 24%, with
// the small SVD's Jacobi 41%). Blocks of 8, not 32: the rows within a block are the serial part
// (l·b·n of the work); at rank 256 of 4096² the orthonormalisations went from ~140 to ~100 ms.
void orthonormalize_rows(double* Q, int64_t l, int64_t n) {
  constexpr int64_t kGsBlock = 8;
  SvdBuffer C;
  std::vector<double> orig((size_t)kGsBlock);
  for (int64_t i0 = 0; i0 < l; i0 += kGsBlock) {
    const int64_t b = std::min(kGsBlock, l - i0);
    double* V = Q + i0 * n;
    for (int64_t i = 0; i < b; i++) orig[(size_t)i] = std::sqrt(svd_dot(V + i * n, V + i * n, n));
    if (i0 > 0) {
      C.resize((size_t)(b * i0));
      for (int pass = 0; pass < 2; pass++) {
        gemm<double>(b, i0, n, 1.0, V, n, 1, Q, 1, n, 0.0, C.data(), i0, 1);   // C = V·Q[:i0]ᵀ
        gemm<double>(b, n, i0, -1.0, C.data(), i0, 1, Q, n, 1, 1.0, V, n, 1);  // V −= C·Q[:i0]
      }
    }
    for (int64_t i = 0; i < b; i++) {
      double* v = V + i * n;
      for (int pass = 0; pass < 2; pass++)
        for (int64_t j = 0; j < i; j++) {
          const double* u = V + j * n;
          svd_axpy(v, u, svd_dot(u, v, n), n);
        }
      const double nrm = std::sqrt(svd_dot(v, v, n));
      if (!(nrm > 1e-12 * orig[(size_t)i]) || nrm == 0) {
        std::fill(v, v + n, 0.0);
      } else {
        for (int64_t c = 0; c < n; c++) v[c] /= nrm;
      }
    }
  }
}

// One-sided Jacobi on the rows of Bs [l, n]: rotations R (accumulated into Rt, which starts as I) make
// the rows mutually orthogonal, so Bs = Rtᵀ·(R·Bs) with R·Bs = Σ·Vᵀ. Pairs in round-robin order: each
// of a sweep's rounds pairs every row with another once, disjointly, so a round's rotations run in
// parallel (and give the same result on any number of threads).
void jacobi_rows(double* Bs, double* Rt, int64_t l, int64_t n) {
  const int64_t L = l + (l & 1);  // an odd l gets a bye: a row ≥ l sits its round out
  std::vector<int64_t> seat((size_t)L);
  std::iota(seat.begin(), seat.end(), 0);
  std::vector<char> turned((size_t)(L / 2));
  const int64_t grain = std::max<int64_t>(1, 8192 / (n + l));
  for (int sweep = 0; sweep < 80; sweep++) {
    bool rotated = false;
    for (int64_t round = 0; round + 1 < L; round++) {
      parallel_for(L / 2, grain, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; i++) {
          const int64_t p = std::min(seat[(size_t)i], seat[(size_t)(L - 1 - i)]);
          const int64_t q = std::max(seat[(size_t)i], seat[(size_t)(L - 1 - i)]);
          turned[(size_t)i] = 0;
          if (q >= l) continue;
          double* rp = Bs + p * n;
          double* rq = Bs + q * n;
          double d[3];
          svd_dot3(rp, rq, n, d);
          const double a = d[0], b = d[1], g = d[2];
          if (a == 0 || b == 0 || std::fabs(g) <= 1e-15 * std::sqrt(a * b)) continue;
          turned[(size_t)i] = 1;
          const double zeta = (b - a) / (2 * g);
          const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
          const double c = 1 / std::sqrt(1 + t * t), sn = c * t;
          svd_rotate(rp, rq, n, c, sn);
          svd_rotate(Rt + p * l, Rt + q * l, l, c, sn);
        }
      });
      for (char v : turned) rotated |= v != 0;
      std::rotate(seat.begin() + 1, seat.end() - 1, seat.end());  // seat 0 stays, the others move one on
    }
    if (!rotated) break;
  }
}

struct Factorization {
  SvdBuffer Ut;           // [l, m]
  std::vector<double> s;  // [l], descending
  SvdBuffer Vt;           // [l, n]
};

Factorization factor(const double* W, int64_t m, int64_t n, int64_t l, uint64_t seed, int power_iters) {
  const int64_t mn = std::min(m, n);
  SvdBuffer Qt((size_t)(l * m)), Zt((size_t)(l * n));
  gaussian(Zt, seed);  // Ωᵀ [l, n]
  // Qᵀ = (W·Ω)ᵀ = Ωᵀ·Wᵀ
  gemm<double>(l, m, n, 1.0, Zt.data(), n, 1, W, 1, n, 0.0, Qt.data(), m, 1);
  orthonormalize_rows(Qt.data(), l, m);
  // With l = min(m, n) the range is already all of W's: power iterations cannot improve it.
  for (int it = 0; it < (l < mn ? power_iters : 0); it++) {
    gemm<double>(l, n, m, 1.0, Qt.data(), m, 1, W, n, 1, 0.0, Zt.data(), n, 1);  // (Wᵀ·Q)ᵀ
    orthonormalize_rows(Zt.data(), l, n);
    gemm<double>(l, m, n, 1.0, Zt.data(), n, 1, W, 1, n, 0.0, Qt.data(), m, 1);  // (W·Z)ᵀ
    orthonormalize_rows(Qt.data(), l, m);
  }
  SvdBuffer Bs((size_t)(l * n)), Rt((size_t)(l * l), 0.0);
  gemm<double>(l, n, m, 1.0, Qt.data(), m, 1, W, n, 1, 0.0, Bs.data(), n, 1);  // Qᵀ·W
  // The small SVD on l×l instead of l×n: Bs's rows orthonormalised give P [l, n] (Bsᵀ = Pᵀ·R, a QR),
  // so Bs = S·P with S = Bs·Pᵀ [l, l]; one-sided Jacobi on S's rows (l³ a sweep, not l²·n: on the l×n
  // rows it was 41% of the time at rank 256 of 4096²) makes R·S = Σ·V_Sᵀ, so Bs = Rᵀ·Σ·(V_Sᵀ·P).
  SvdBuffer P(Bs);
  orthonormalize_rows(P.data(), l, n);
  SvdBuffer Sm((size_t)(l * l));
  gemm<double>(l, l, n, 1.0, Bs.data(), n, 1, P.data(), 1, n, 0.0, Sm.data(), l, 1);  // S = Bs·Pᵀ
  for (int64_t i = 0; i < l; i++) Rt[(size_t)(i * l + i)] = 1.0;
  jacobi_rows(Sm.data(), Rt.data(), l, l);
  gemm<double>(l, n, l, 1.0, Sm.data(), l, 1, P.data(), n, 1, 0.0, Bs.data(), n, 1);  // Bs ← Σ·Vᵀ = (R·S)·P
  SvdBuffer Ut((size_t)(l * m));
  gemm<double>(l, m, l, 1.0, Rt.data(), l, 1, Qt.data(), m, 1, 0.0, Ut.data(), m, 1);  // (Q·Rtᵀ)ᵀ
  std::vector<double> sig((size_t)l);
  for (int64_t i = 0; i < l; i++) sig[(size_t)i] = std::sqrt(svd_dot(Sm.data() + i * l, Sm.data() + i * l, l));
  std::vector<int64_t> order((size_t)l);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sig[(size_t)a] > sig[(size_t)b]; });
  Factorization f;
  f.Ut.resize((size_t)(l * m));
  f.Vt.assign((size_t)(l * n), 0.0);
  f.s.resize((size_t)l);
  for (int64_t i = 0; i < l; i++) {
    const int64_t o = order[(size_t)i];
    const double sv = sig[(size_t)o];
    f.s[(size_t)i] = sv;
    std::memcpy(f.Ut.data() + i * m, Ut.data() + o * m, sizeof(double) * (size_t)m);
    if (sv > 0)
      for (int64_t c = 0; c < n; c++) f.Vt[(size_t)(i * n + c)] = Bs[(size_t)(o * n + c)] / sv;
  }
  return f;
}

}  // namespace

SvdResult svd_randomized(const double* W, int64_t m, int64_t n, int64_t rank, double energy, uint64_t seed,
                         int power_iters) {
  const int64_t mn = std::min(m, n);
  const bool by_energy = energy >= 0;
  // ‖W‖²_F, needed only to keep a share of the energy: fixed chunks, summed in order (the same total
  // on any number of threads)
  double total = 0;
  if (by_energy) {
    constexpr int64_t kPart = 1 << 16;
    std::vector<double> part((size_t)((m * n + kPart - 1) / kPart));
    parallel_for((int64_t)part.size(), 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; c++)
        part[(size_t)c] = svd_dot(W + c * kPart, W + c * kPart, std::min(kPart, m * n - c * kPart));
    });
    for (double v : part) total += v;
  }
  // Oversampling of 10 (Halko et al.); by energy alone, the sketch doubles until it holds enough.
  int64_t l = rank > 0 ? std::min(mn, rank + 10) : std::min<int64_t>(mn, 32);
  Factorization f;
  for (;;) {
    f = factor(W, m, n, l, seed, power_iters);
    if (rank > 0 || !by_energy || l == mn) break;
    double captured = 0;
    for (double v : f.s) captured += v * v;
    if (captured >= energy * total * (1 - 1e-12)) break;
    l = std::min(mn, 2 * l);
  }
  int64_t k = rank > 0 ? std::min(rank, l) : l;
  if (by_energy) {
    double cum = 0;
    int64_t ke = l;
    for (int64_t i = 0; i < l; i++) {
      cum += f.s[(size_t)i] * f.s[(size_t)i];
      if (cum >= energy * total * (1 - 1e-12)) {
        ke = i + 1;
        break;
      }
    }
    k = std::max<int64_t>(1, std::min(k, ke));
  }
  SvdResult r;
  r.k = k;
  r.s.assign(f.s.begin(), f.s.begin() + k);
  r.U.resize((size_t)(m * k));
  r.V.resize((size_t)(n * k));
  for (int64_t i = 0; i < k; i++) {
    for (int64_t a = 0; a < m; a++) r.U[(size_t)(a * k + i)] = f.Ut[(size_t)(i * m + a)];
    for (int64_t c = 0; c < n; c++) r.V[(size_t)(c * k + i)] = f.Vt[(size_t)(i * n + c)];
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// instantiations

#define STRUCTURA_LOWRANK_INSTANTIATE(T)                                                                            \
  template void lora_forward<T>(int64_t, int64_t, int64_t, int64_t, MatRef<T>, MatRef<T>, MatRef<T>, MatRef<T>, T,  \
                                const T*, int64_t, T*);                                                            \
  template void lora_batched<T>(int64_t, int64_t, int64_t, int64_t, int64_t, MatRef<T>, MatRef<T>, const T*,        \
                                const T*, const int32_t*, T, const T*, int64_t, T*);                               \
  template void lora_mixture<T>(int64_t, int64_t, int64_t, int64_t, int64_t, MatRef<T>, MatRef<T>, const T*,        \
                                const T*, const T*, T, const T*, int64_t, T*);                                     \
  template void spmm<T>(int64_t, int64_t, int64_t, const T*, const int32_t*, const T*, int64_t, bool, bool, T*,      \
                        const SparseForm*);                                                                         \
  template void sddmm<T>(int64_t, int64_t, int64_t, const T*, const T*, const int32_t*, int64_t, T*);
STRUCTURA_LOWRANK_INSTANTIATE(float)
STRUCTURA_LOWRANK_INSTANTIATE(double)

}  // namespace structura
