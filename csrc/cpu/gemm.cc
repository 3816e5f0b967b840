// cpu/gemm.cc — the packed, cache-blocked, multithreaded GEMM core (see gemm.h for the contract).
//
//   C[M, N] = alpha · A[M, K] · B[K, N] + beta · C (+ bias[N]),  float and double, any strides.
//
// Goto/BLIS five loops (kernels_design.md §1):
//   jc over N in NC blocks → pc over K in KC blocks (pack B[KC, NC] into NR-wide micro-panels, shared by
//   the threads) → ic over each thread's rows in MC blocks (pack A[MC, KC] into MR-tall micro-panels,
//   one buffer per thread) → jr over B micro-panels → ir over A micro-panels → micro-kernel.
// The micro-kernel keeps an MR×NR tile of C in registers, vectors along N (rows of C are contiguous
// in the common row-major case) and broadcasts of A. One kernel per row count m ≤ MR, so row edges
// cost only what they compute; column edges use masked loads/stores (strided C: a tile in memory).
//   AVX-512:  float 12×32, double 12×16   (24 zmm accumulators + 2 B vectors + 1 broadcast)
//   AVX2+FMA: float 6×16,  double 6×8     (12 ymm accumulators + 2 + 1)
//   scalar:   4×8                          (plain C++, whatever the baseline compiler vectorises)
// The SIMD kernels live in gemm_kernels.inc, included once per instruction set with its target
// attribute, so this file compiles with plain -O3 and picks the kernels at run time (simd_level()).
// Threads: rows are split into equal MR-aligned ranges, all threads packing and sharing each B panel
// (a barrier after packing, one before repacking); with too few rows, columns are split instead.
// Skinny problems (M ≤ 16; long-K x·Wᵀ to 64 rows, 128 as bfloat16 pairs: B read once) skip packing if B
// has a unit stride: row-major B streams row by row through register tiles with software prefetch
// (nn_rows), Bᵀ row-major (x·Wᵀ) becomes dot products with the rows of W (nt_tile: 4 × 6 tiles, K in
// L1-sized chunks when several row tiles share W's rows); each thread takes its own columns. When N is
// tiny (or ≤ 16 at the SIMD levels) and M is not, the problem is transposed (Cᵀ = Bᵀ·Aᵀ, free with
// strides) so the short side becomes M and A is streamed instead of packed.
// With N ≤ 64 and row-major A, the kernels read A in place (kern_ua): packing A, a transpose, would
// cost about as much as the few products each of its elements takes part in.
// A thin B (few columns or few rows, ≤ 1 MB packed) is packed whole before the threads start, so
// splitting rows costs one barrier instead of two per K×N block (many, and short, when B is thin).
// Packed buffers are per thread and per nesting level: a block hook may itself call gemm().
// gemm_half (16-bit operands): widened while packing, in registers on the skinny x·Wᵀ path, or — both
// bfloat16, AVX512-BF16 — run as a float problem over K/2 whose "floats" are bfloat16 pairs, with the
// same driver and packers and vdpbf16ps kernels (kern, kern_ua, nt_tile). An operand whose pairs are
// not adjacent in memory (x·W, a Linear's backward) is interleaved into pairs by its packer.
#include "cpu/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/cpuinfo.h"
#include "cpu/elementwise.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define STRUCTURA_X86 1
#endif
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 warns about the deliberately undefined pass-through operand inside its own AVX-512
// intrinsics (_mm512_cvtepu16_epi32, _mm512_slli_epi32), as in cpu/elementwise.cc.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace structura {

namespace {

constexpr int kMaxMR = 12;

template <class T>
using MicroKernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t rs_c, int64_t cs_c, int n, T alpha,
                             T beta, const T* bias, int64_t bias_stride);
template <class T>
using MicroKernelUA = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, T* c, int64_t rs_c, int64_t cs_c,
                               int n, T alpha, T beta, const T* bias, int64_t bias_stride);
template <class T>
using SkinnyNN = void (*)(int64_t kb, const T* A, int64_t rs_a, int64_t cs_a, const T* B, int64_t rs_b, int64_t width,
                          T* acc, int64_t ld, bool first);
template <class T>
using SkinnyNT = void (*)(int64_t K, const T* A, int64_t lda, const T* W, int64_t ldw, T* out, int64_t ld_out,
                          void* part, int flags, int64_t pf);
template <class T>
using PackFn = void (*)(const T* src, int64_t rs, int64_t cs, int64_t len, int64_t kc, T* dst);
// nt with W as 16-bit float bits (float only; gemm_half)
using SkinnyNT16 = void (*)(int64_t K, const float* A, int64_t lda, const uint16_t* W, int64_t ldw, float* out,
                            int64_t ld_out, void* part, int flags, int64_t pf);

// The largest skinny x·Wᵀ tile (nt_tile): AVX-512's 4 × 6 (24 accumulators, 4 A vectors and W's in
// 32 registers). On the 2-core Zen 5, 4 × 6 over 4 × 4 made 16 × 4096 × 4096 x·Wᵀ 1.23 → 1.08 ms in
// bfloat16 and 2.83 → 2.32 ms in float32 (fewer loads an FMA: 10 per 24 against 8 per 16); 5 × 5, 6 × 4,
// 8 × 3 and 3 × 8 were slower than 4 × 6 (the tile's 4 rows of W fit L1 beside A's chunk).
constexpr int kNtMI = 4, kNtNJ = 6;
// nt_tile's flags: start from the vector sums in part (not the first K chunk); leave them there unsummed
// (not the last). kNtMaxRows: the most rows skinny_nt takes (its output tile is on the stack).
// kNtChunkBytes: skinny_nt's K chunk, a row of A or W. On the 2-core Zen 5 (16 / 32 / 64 × 4096 × 4096
// x·Wᵀ) 4 KB chunks made bfloat16 1.09–1.18 → 0.95–1.03, 1.93–2.05 → 1.58–1.64 and 3.54–3.64 → 2.87–2.98
// ms, float32 2.36–2.41 → 2.27–2.30, 4.08–4.23 → 3.46–3.47 and 7.9–8.1 → 6.3–6.4 ms (2 and 8 KB were
// slower; 8 rows, two row tiles, lost 7% in float32, so they stay unchunked).
constexpr int kNtLoad = 1, kNtStore = 2;
constexpr int64_t kNtMaxRows = 128, kNtChunkBytes = 4096;

// One ISA's kernels and blocking. mc, kc, nc: cache blocks (measured on the AMD EPYC dev box: 32 KB L1d,
// 1 MB L2 per core, shared L3); the packed B micro-panel (kc·NR) is the one every A micro-panel reuses.
template <class T>
struct Impl {
  int mr, nr, kc, mc, nc;
  MicroKernel<T> kern[kMaxMR + 1];  // kern[m] computes m ≤ mr rows
  MicroKernelUA<T> kern_ua[kMaxMR + 1] = {};  // the same, A row-major in place (SIMD levels only)
  PackFn<T> pack_a;                 // len rows of A → MR-tall micro-panels
  PackFn<T> pack_b;                 // len columns of B → NR-wide micro-panels
  // skinny path (SIMD levels only; null in the scalar table): nn[m] for m ≤ 16 rows, nt[mi][nj] for
  // tiles of mi ≤ nt_mi rows of A and nj ≤ nt_nj rows of W
  int lanes = 0, nt_mi = 0, nt_nj = 0;
  SkinnyNN<T> nn[17] = {};
  SkinnyNT<T> nt[kNtMI + 1][kNtNJ + 1] = {};
  SkinnyNT16 nt16[2][kNtMI + 1][kNtNJ + 1] = {};  // [bf16, f16][mi][nj] (float tables only)
};

// ---------------------------------------------------------------------------------------------
// packing (generic bodies, instantiated inside each ISA's target so the compiler may vectorise them)

// A[len, kc] (strides rs, cs) → ceil(len/MR) panels of kc·MR: panel p, step k holds rows p·MR .. p·MR+MR-1.
// Rows past len are zero, so a kernel that reads them adds nothing.
template <class T, int MR>
__attribute__((always_inline)) inline void pack_a_body(const T* A, int64_t rs, int64_t cs, int64_t len, int64_t kc,
                                                       T* dst) {
  for (int64_t p = 0; p < len; p += MR, dst += MR * kc) {
    const int m = (int)std::min<int64_t>(MR, len - p);
    const T* src = A + p * rs;
    if (m == MR && rs == 1) {
      for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) dst[k * MR + r] = src[k * cs + r];
      }
    } else if (m == MR && cs == 1) {
      // Row-major A: a transpose. Blocks of 8 k keep the MR source rows' lines in use together.
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
          const T* s = src + r * rs + k;
#pragma GCC unroll 8
          for (int q = 0; q < 8; q++) dst[(k + q) * MR + r] = s[q];
        }
      }
      for (; k < kc; k++)
        for (int r = 0; r < MR; r++) dst[k * MR + r] = src[r * rs + k];
    } else {
      for (int64_t k = 0; k < kc; k++) {
        for (int r = 0; r < m; r++) dst[k * MR + r] = src[r * rs + k * cs];
        for (int r = m; r < MR; r++) dst[k * MR + r] = T(0);
      }
    }
  }
}

// B[kc, len] (strides rs, cs) → ceil(len/NR) panels of kc·NR: panel q, step k holds columns q·NR .. +NR-1,
// zero-padded past len.
template <class T, int NR>
__attribute__((always_inline)) inline void pack_b_body(const T* B, int64_t rs, int64_t cs, int64_t len, int64_t kc,
                                                       T* dst) {
  const int64_t full = len / NR;
  if (cs == 1) {
    // Row-major B: walk each row of the block once, left to right, so the reads stream from memory.
    for (int64_t k = 0; k < kc; k++) {
      const T* s = B + k * rs;
      T* d = dst + k * NR;
      for (int64_t q = 0; q < full; q++, s += NR, d += NR * kc) {
#pragma GCC unroll 32
        for (int j = 0; j < NR; j++) d[j] = s[j];
      }
      const int n = (int)(len - full * NR);
      if (n) {
        for (int j = 0; j < n; j++) d[j] = s[j];
        for (int j = n; j < NR; j++) d[j] = T(0);
      }
    }
    return;
  }
  for (int64_t q = 0; q < len; q += NR, dst += NR * kc) {
    const int n = (int)std::min<int64_t>(NR, len - q);
    const T* src = B + q * cs;
    if (n == NR && rs == 1) {
      // Bᵀ stored row-major (x·Wᵀ): a transpose, in blocks of 8 k.
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        for (int j = 0; j < NR; j++) {
          const T* s = src + j * cs + k;
#pragma GCC unroll 8
          for (int q2 = 0; q2 < 8; q2++) dst[(k + q2) * NR + j] = s[q2];
        }
      }
      for (; k < kc; k++)
        for (int j = 0; j < NR; j++) dst[k * NR + j] = src[j * cs + k];
    } else {
      for (int64_t k = 0; k < kc; k++) {
        for (int j = 0; j < n; j++) dst[k * NR + j] = src[k * rs + j * cs];
        for (int j = n; j < NR; j++) dst[k * NR + j] = T(0);
      }
    }
  }
}

// The store every kernel falls back to (column edge, strided C, strided bias): tile t[m][NR] holds A·B.
template <class T, int NR>
__attribute__((always_inline)) inline void store_tile(int m, int n, const T* t, T* c, int64_t rs_c, int64_t cs_c,
                                                      T alpha, T beta, const T* bias, int64_t bs) {
  for (int i = 0; i < m; i++) {
    T* cr = c + i * rs_c;
    for (int j = 0; j < n; j++) {
      T v = alpha * t[i * NR + j];
      if (beta != T(0)) v += beta * cr[j * cs_c];  // beta = 0 never reads C (it may hold NaN)
      if (bias) v += bias[j * bs];
      cr[j * cs_c] = v;
    }
  }
}

// Independent accumulator sets for short m: one m-row tile alone has too few FMA chains to hide latency.
constexpr int unroll_sets(int m, int chains_per_row, int want) {
  return m * chains_per_row >= want ? 1 : (m * chains_per_row * 2 >= want ? 2 : 4);
}

// ---------------------------------------------------------------------------------------------
// scalar kernels (MR = 4, NR = 8)

template <class T, int M>
void kern_scalar(int64_t kc, const T* __restrict a, const T* __restrict b, T* c, int64_t rs_c, int64_t cs_c, int n,
                 T alpha, T beta, const T* bias, int64_t bs) {
  constexpr int MR = 4, NR = 8;
  T acc[M][NR];
#pragma GCC unroll 4
  for (int i = 0; i < M; i++)
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) acc[i][j] = T(0);
  for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 4
    for (int i = 0; i < M; i++) {
      const T av = a[i];
#pragma GCC unroll 8
      for (int j = 0; j < NR; j++) acc[i][j] += av * b[j];
    }
    a += MR;
    b += NR;
  }
  store_tile<T, NR>(M, n, &acc[0][0], c, rs_c, cs_c, alpha, beta, bias, bs);
}

template <class T>
void pack_a_scalar(const T* s, int64_t rs, int64_t cs, int64_t len, int64_t kc, T* d) {
  pack_a_body<T, 4>(s, rs, cs, len, kc, d);
}
template <class T>
void pack_b_scalar(const T* s, int64_t rs, int64_t cs, int64_t len, int64_t kc, T* d) {
  pack_b_body<T, 8>(s, rs, cs, len, kc, d);
}

#ifdef STRUCTURA_X86
// ---------------------------------------------------------------------------------------------
// vector traits (see gemm_kernels.inc): AVX2+FMA (MR = 6, NR = 2 ymm) and AVX-512 (MR = 12, NR = 2 zmm)

#define STRUCTURA_AVX2_INL __attribute__((target("avx2,fma,f16c"), always_inline)) inline
#define STRUCTURA_AVX512_INL __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c"), always_inline)) inline

namespace avx2 {
template <class T> struct Vec;
template <> struct Vec<float> {
  using T = float;
  using V = __m256;
  static constexpr int L = 8, MR = 6;
  // skinny path: vectors per row of B for R rows (R·U accumulators + U + 1 ≤ 16 registers)
  static constexpr int nn_unroll(int r) { return r <= 2 ? 4 : r == 3 ? 3 : r <= 6 ? 2 : 1; }
  // L 16-bit floats (src 1: bfloat16, a shift; 2: float16, F16C) as a vector
  static STRUCTURA_AVX2_INL V widen16(const uint16_t* p, int src) {
    const __m128i h = _mm_loadu_si128((const __m128i*)p);
    if (src == 1) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
  }
  static STRUCTURA_AVX2_INL __m256i lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static STRUCTURA_AVX2_INL V zero() { return _mm256_setzero_ps(); }
  static STRUCTURA_AVX2_INL V load(const T* p) { return _mm256_load_ps(p); }
  static STRUCTURA_AVX2_INL V loadu(const T* p) { return _mm256_loadu_ps(p); }
  static STRUCTURA_AVX2_INL V loadn(const T* p, int n) { return _mm256_maskload_ps(p, lanes(n)); }
  static STRUCTURA_AVX2_INL void store(T* p, V v) { _mm256_store_ps(p, v); }
  static STRUCTURA_AVX2_INL void storeu(T* p, V v) { _mm256_storeu_ps(p, v); }
  static STRUCTURA_AVX2_INL void storen(T* p, int n, V v) { _mm256_maskstore_ps(p, lanes(n), v); }
  static STRUCTURA_AVX2_INL V set1(T x) { return _mm256_set1_ps(x); }
  static STRUCTURA_AVX2_INL V bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static STRUCTURA_AVX2_INL V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static STRUCTURA_AVX2_INL V mac(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static STRUCTURA_AVX2_INL V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static STRUCTURA_AVX2_INL V add(V a, V b) { return _mm256_add_ps(a, b); }
  // dst[k·ldd + j] = src[j·ld + k] for j, k < 8 (pack_b's transpose of a row-major Bᵀ)
  static STRUCTURA_AVX2_INL void transpose(const T* src, int64_t ld, T* dst, int64_t ldd) {
    V r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld);
    for (int i = 0; i < 4; i++) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
      r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
      _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
      _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
    }
  }
  static STRUCTURA_AVX2_INL T hsum(V v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
};
template <> struct Vec<double> {
  using T = double;
  using V = __m256d;
  static constexpr int L = 4, MR = 6;
  static constexpr int nn_unroll(int r) { return r <= 2 ? 4 : r == 3 ? 3 : r <= 6 ? 2 : 1; }
  static STRUCTURA_AVX2_INL __m256i lanes(int n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static STRUCTURA_AVX2_INL V zero() { return _mm256_setzero_pd(); }
  static STRUCTURA_AVX2_INL V load(const T* p) { return _mm256_load_pd(p); }
  static STRUCTURA_AVX2_INL V loadu(const T* p) { return _mm256_loadu_pd(p); }
  static STRUCTURA_AVX2_INL V loadn(const T* p, int n) { return _mm256_maskload_pd(p, lanes(n)); }
  static STRUCTURA_AVX2_INL void store(T* p, V v) { _mm256_store_pd(p, v); }
  static STRUCTURA_AVX2_INL void storeu(T* p, V v) { _mm256_storeu_pd(p, v); }
  static STRUCTURA_AVX2_INL void storen(T* p, int n, V v) { _mm256_maskstore_pd(p, lanes(n), v); }
  static STRUCTURA_AVX2_INL V set1(T x) { return _mm256_set1_pd(x); }
  static STRUCTURA_AVX2_INL V bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static STRUCTURA_AVX2_INL V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static STRUCTURA_AVX2_INL V mac(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static STRUCTURA_AVX2_INL V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static STRUCTURA_AVX2_INL V add(V a, V b) { return _mm256_add_pd(a, b); }
  static STRUCTURA_AVX2_INL T hsum(V v) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
};
#define STRUCTURA_KATTR __attribute__((target("avx2,fma,f16c")))
#include "cpu/gemm_kernels.inc"
#undef STRUCTURA_KATTR
}  // namespace avx2

namespace avx512 {
template <class T> struct Vec;
template <> struct Vec<float> {
  using T = float;
  using V = __m512;
  static constexpr int L = 16, MR = 12;
  static constexpr int nn_unroll(int r) { return r <= 2 ? 8 : r <= 4 ? 6 : r <= 6 ? 4 : 3; }
  static STRUCTURA_AVX512_INL V widen16(const uint16_t* p, int src) {
    const __m256i h = _mm256_loadu_si256((const __m256i*)p);
    if (src == 1) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
  }
  static STRUCTURA_AVX512_INL __mmask16 lanes(int n) { return (__mmask16)((1u << n) - 1); }
  static STRUCTURA_AVX512_INL V zero() { return _mm512_setzero_ps(); }
  static STRUCTURA_AVX512_INL V load(const T* p) { return _mm512_load_ps(p); }
  static STRUCTURA_AVX512_INL V loadu(const T* p) { return _mm512_loadu_ps(p); }
  static STRUCTURA_AVX512_INL V loadn(const T* p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
  static STRUCTURA_AVX512_INL void store(T* p, V v) { _mm512_store_ps(p, v); }
  static STRUCTURA_AVX512_INL void storeu(T* p, V v) { _mm512_storeu_ps(p, v); }
  static STRUCTURA_AVX512_INL void storen(T* p, int n, V v) { _mm512_mask_storeu_ps(p, lanes(n), v); }
  static STRUCTURA_AVX512_INL V set1(T x) { return _mm512_set1_ps(x); }
  static STRUCTURA_AVX512_INL V bcast(const T* p) { return _mm512_set1_ps(*p); }
  static STRUCTURA_AVX512_INL V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static STRUCTURA_AVX512_INL V mac(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static STRUCTURA_AVX512_INL V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static STRUCTURA_AVX512_INL V add(V a, V b) { return _mm512_add_ps(a, b); }
  // dst[k·ldd + j] = src[j·ld + k] for j, k < 16 (pack_b's transpose of a row-major Bᵀ: x·Wᵀ, and
  // the bfloat16-pair problems, whose "floats" are W's pairs)
  static STRUCTURA_AVX512_INL void transpose(const T* src, int64_t ld, T* dst, int64_t ldd) {
    V r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ld);
    for (int i = 0; i < 8; i++) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
      r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
      t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
      t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
      t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
      t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 8; i++) {
      _mm512_storeu_ps(dst + i * ldd, _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88));
      _mm512_storeu_ps(dst + (i + 8) * ldd, _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD));
    }
  }
  // (GCC 12's _mm512_reduce_add_* and 512→128 casts trip -Wuninitialized; the maskz forms do not.)
  static STRUCTURA_AVX512_INL T hsum(V v) {
    v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4((__mmask16)-1, v, v, 0x4E));
    v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4((__mmask16)-1, v, v, 0xB1));
    v = _mm512_add_ps(v, _mm512_maskz_permute_ps((__mmask16)-1, v, 0x4E));
    v = _mm512_add_ps(v, _mm512_maskz_permute_ps((__mmask16)-1, v, 0xB1));
    return _mm512_cvtss_f32(v);
  }
};
template <> struct Vec<double> {
  using T = double;
  using V = __m512d;
  static constexpr int L = 8, MR = 12;
  static constexpr int nn_unroll(int r) { return r <= 2 ? 8 : r <= 4 ? 6 : r <= 6 ? 4 : 3; }
  static STRUCTURA_AVX512_INL __mmask8 lanes(int n) { return (__mmask8)((1u << n) - 1); }
  static STRUCTURA_AVX512_INL V zero() { return _mm512_setzero_pd(); }
  static STRUCTURA_AVX512_INL V load(const T* p) { return _mm512_load_pd(p); }
  static STRUCTURA_AVX512_INL V loadu(const T* p) { return _mm512_loadu_pd(p); }
  static STRUCTURA_AVX512_INL V loadn(const T* p, int n) { return _mm512_maskz_loadu_pd(lanes(n), p); }
  static STRUCTURA_AVX512_INL void store(T* p, V v) { _mm512_store_pd(p, v); }
  static STRUCTURA_AVX512_INL void storeu(T* p, V v) { _mm512_storeu_pd(p, v); }
  static STRUCTURA_AVX512_INL void storen(T* p, int n, V v) { _mm512_mask_storeu_pd(p, lanes(n), v); }
  static STRUCTURA_AVX512_INL V set1(T x) { return _mm512_set1_pd(x); }
  static STRUCTURA_AVX512_INL V bcast(const T* p) { return _mm512_set1_pd(*p); }
  static STRUCTURA_AVX512_INL V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static STRUCTURA_AVX512_INL V mac(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static STRUCTURA_AVX512_INL V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static STRUCTURA_AVX512_INL V add(V a, V b) { return _mm512_add_pd(a, b); }
  static STRUCTURA_AVX512_INL T hsum(V v) {
    v = _mm512_add_pd(v, _mm512_maskz_shuffle_f64x2((__mmask8)-1, v, v, 0x4E));
    v = _mm512_add_pd(v, _mm512_maskz_shuffle_f64x2((__mmask8)-1, v, v, 0xB1));
    v = _mm512_add_pd(v, _mm512_maskz_permute_pd((__mmask8)-1, v, 0x55));
    return _mm512_cvtsd_f64(v);
  }
};
#define STRUCTURA_KATTR __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c")))
#include "cpu/gemm_kernels.inc"
#undef STRUCTURA_KATTR
}  // namespace avx512

// AVX512-BF16 (Zen 4, Sapphire Rapids): the same packed micro-kernel over bfloat16 pairs. A float
// lane of the packed panels holds two bfloat16 of consecutive k, and mac is vdpbf16ps: two products
// a step, exact in float32 and added with round-to-nearest, subnormals flushed (the instruction's
// own rule, whatever MXCSR says) — twice the float32 FMA rate for a bfloat16 x·Wᵀ (gemm_half's pair path).
namespace avx512bf16 {
template <class T>
struct Vec;
template <>
struct Vec<float> : avx512::Vec<float> {
  static __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16"), always_inline)) inline V mac(
      V a, V b, V c) {
    return _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)b);
  }
};
#define STRUCTURA_KATTR __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,avx512bf16")))
#include "cpu/gemm_kernels.inc"
#undef STRUCTURA_KATTR
}  // namespace avx512bf16
#endif  // STRUCTURA_X86

// ---------------------------------------------------------------------------------------------
// kernel tables

template <class T, size_t... I>
void fill_scalar(MicroKernel<T>* out, std::index_sequence<I...>) {
  ((out[I + 1] = &kern_scalar<T, (int)I + 1>), ...);
}

template <class T>
Impl<T> make_scalar() {
  Impl<T> im{};
  im.mr = 4, im.nr = 8, im.kc = 256, im.mc = 128, im.nc = 2048;
  fill_scalar<T>(im.kern, std::make_index_sequence<4>{});
  im.pack_a = &pack_a_scalar<T>;
  im.pack_b = &pack_b_scalar<T>;
  return im;
}

#ifdef STRUCTURA_X86
// The same tables for both instruction sets, from the namespace's kernels.
#define STRUCTURA_FILL_SIMD(NS)                                                                    \
  template <class T, size_t... I>                                                                  \
  void fill_##NS(Impl<T>& im, std::index_sequence<I...>) {                                        \
    ((im.kern[I + 1] = &NS::kern<T, (int)I + 1>), ...);                                            \
    ((im.kern_ua[I + 1] = &NS::kern_ua<T, (int)I + 1>), ...);                                      \
  }                                                                                                \
  template <class T, size_t... I>                                                                  \
  void fill_##NS##_nn(Impl<T>& im, std::index_sequence<I...>) {                                   \
    ((im.nn[I + 1] = &NS::nn_rows<T, (int)I + 1>), ...);                                           \
  }                                                                                                \
  template <class T, int MI, size_t... J>                                                          \
  void fill_##NS##_nt_row(Impl<T>& im, std::index_sequence<J...>) {                                \
    ((im.nt[MI][J + 1] = &NS::nt_tile<T, MI, (int)J + 1>), ...);                                   \
  }                                                                                                \
  template <class T, int NJ, size_t... I>                                                          \
  void fill_##NS##_nt(Impl<T>& im, std::index_sequence<I...>) {                                    \
    im.nt_mi = (int)sizeof...(I), im.nt_nj = NJ;                                                   \
    (fill_##NS##_nt_row<T, (int)I + 1>(im, std::make_index_sequence<NJ>{}), ...);                  \
  }                                                                                                \
  template <int Src, int MI, size_t... J>                                                          \
  void fill_##NS##_nt16_row(Impl<float>& im, std::index_sequence<J...>) {                          \
    ((im.nt16[Src - 1][MI][J + 1] = &NS::nt_tile<float, MI, (int)J + 1, Src>), ...);               \
  }                                                                                                \
  template <class T, int NJ, size_t... I>                                                          \
  void fill_##NS##_nt16(Impl<T>& im, std::index_sequence<I...>) {                                  \
    if constexpr (std::is_same<T, float>::value) {                                                 \
      (fill_##NS##_nt16_row<1, (int)I + 1>(im, std::make_index_sequence<NJ>{}), ...);             \
      (fill_##NS##_nt16_row<2, (int)I + 1>(im, std::make_index_sequence<NJ>{}), ...);             \
    }                                                                                              \
  }
STRUCTURA_FILL_SIMD(avx2)
STRUCTURA_FILL_SIMD(avx512)
STRUCTURA_FILL_SIMD(avx512bf16)
#undef STRUCTURA_FILL_SIMD

template <class T>
Impl<T> make_avx2() {
  Impl<T> im{};
  im.mr = avx2::Vec<T>::MR, im.nr = 2 * avx2::Vec<T>::L;
  im.kc = 256;
  im.mc = sizeof(T) == 4 ? 144 : 72;
  im.nc = 4080;
  im.lanes = avx2::Vec<T>::L;
  fill_avx2<T>(im, std::make_index_sequence<6>{});
  fill_avx2_nn<T>(im, std::make_index_sequence<16>{});
  // 2 × 4 tiles: 8 accumulators + 2 A vectors + 1 W vector fit the 16 ymm registers
  fill_avx2_nt<T, 4>(im, std::make_index_sequence<2>{});
  fill_avx2_nt16<T, 4>(im, std::make_index_sequence<2>{});
  im.pack_a = &avx2::pack_a<T>;
  im.pack_b = &avx2::pack_b<T>;
  return im;
}

template <class T>
Impl<T> make_avx512() {
  Impl<T> im{};
  im.mr = avx512::Vec<T>::MR, im.nr = 2 * avx512::Vec<T>::L;
  // float: a K block of 512 (a 64 KB B micro-panel, read from L2 rather than L1): C's tile is loaded and
  // stored half as often as with 256, which cost ~10% of the kernel's time (the micro-kernel alone over
  // cached panels, 1 core: 195 GFLOP/s at 256 k, 224 at 1024 k in bfloat16 pairs, 234 the vdpbf16ps
  // peak); bfloat16 512×4096×4096 x·Wᵀ 52 → 47 ms, float32 2048³ x·Wᵀ 85 → 81 ms (2-core Zen 4, the best
  // of several noisy runs each).
  im.kc = sizeof(T) == 4 ? 512 : 256;
  im.mc = sizeof(T) == 4 ? 240 : 120;
  im.nc = 4096;
  im.lanes = avx512::Vec<T>::L;
  fill_avx512<T>(im, std::make_index_sequence<12>{});
  fill_avx512_nn<T>(im, std::make_index_sequence<16>{});
  fill_avx512_nt<T, kNtNJ>(im, std::make_index_sequence<kNtMI>{});
  fill_avx512_nt16<T, kNtNJ>(im, std::make_index_sequence<kNtMI>{});
  im.pack_a = &avx512::pack_a<T>;
  im.pack_b = &avx512::pack_b<T>;
  return im;
}
#endif

template <class T>
const Impl<T>& impl_for(Simd s) {
  static const Impl<T> scalar = make_scalar<T>();
#ifdef STRUCTURA_X86
  static const Impl<T> avx2_impl = make_avx2<T>();
  static const Impl<T> avx512_impl = make_avx512<T>();
  if (s == Simd::avx512) return avx512_impl;
  if (s == Simd::avx2) return avx2_impl;
#else
  (void)s;
#endif
  return scalar;
}

// The bfloat16-pair table (float operands whose lanes are pairs; see namespace avx512bf16): the
// AVX-512 packers with the vdpbf16ps micro-kernels (packed and in place) and skinny x·Wᵀ dot products.
// No skinny x·W kernels: a pair problem's B is never row-major (its k runs are pairs, K/2 ≥ 16 apart).
#ifdef STRUCTURA_X86
const Impl<float>& bf16_pair_impl() {
  static const Impl<float> im = [] {
    Impl<float> t{};
    const Impl<float>& base = impl_for<float>(Simd::avx512);
    // The float32 blocking: 512 pairs (1024 k) a K block, the 64 KB B micro-panel read from L2.
    t.mr = base.mr, t.nr = base.nr, t.kc = base.kc, t.mc = base.mc, t.nc = base.nc;
    t.lanes = base.lanes;
    fill_avx512bf16<float>(t, std::make_index_sequence<12>{});
    fill_avx512bf16_nt<float, kNtNJ>(t, std::make_index_sequence<kNtMI>{});
    t.pack_a = base.pack_a;
    t.pack_b = base.pack_b;
    return t;
  }();
  return im;
}
#endif

// Whether the bfloat16-pair kernels may run: AVX-512 in use and the CPU has AVX512-BF16.
bool bf16_pairs_available() {
#ifdef STRUCTURA_X86
  return simd_level() == Simd::avx512 && cpu_has_avx512_bf16();
#else
  return false;
#endif
}

// ---------------------------------------------------------------------------------------------
// workspace: packed buffers, 64-byte aligned, kept per calling thread and reused across calls

struct AlignedBuf {
  void* p = nullptr;
  size_t cap = 0;
  AlignedBuf() = default;
  AlignedBuf(const AlignedBuf&) = delete;
  AlignedBuf& operator=(const AlignedBuf&) = delete;
  AlignedBuf(AlignedBuf&& o) noexcept : p(o.p), cap(o.cap) { o.p = nullptr, o.cap = 0; }
  ~AlignedBuf() { std::free(p); }
  void* get(size_t bytes) {
    if (bytes > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      size_t r = (bytes + 4095) / 4096 * 4096;
      p = std::aligned_alloc(64, r);
      if (!p) throw std::bad_alloc();
      cap = r;
    }
    return p;
  }
};

struct Workspace {
  AlignedBuf shared_b;          // the B panel all threads pack into and read (row split); skinny x·Wᵀ: A
  std::vector<AlignedBuf> a;    // per thread: its A block
  std::vector<AlignedBuf> b;    // per thread: its own B panel (column split) or skinny sums
};
// One workspace per nesting level on each thread: a gemm called from another gemm's block hook (a fused
// epilogue that is itself a product) runs on a thread whose outer call may still be using its buffers.
thread_local std::deque<Workspace> t_ws;
thread_local int t_depth = 0;

// The calling thread's workspace for the duration of one gemm.
struct WorkspaceScope {
  Workspace& ws;
  WorkspaceScope() : ws(level()) { t_depth++; }
  ~WorkspaceScope() { t_depth--; }
  WorkspaceScope(const WorkspaceScope&) = delete;
  WorkspaceScope& operator=(const WorkspaceScope&) = delete;
  static Workspace& level() {
    while ((int)t_ws.size() <= t_depth) t_ws.emplace_back();  // a deque: references stay valid
    return t_ws[(size_t)t_depth];
  }
};

// ---------------------------------------------------------------------------------------------
// the driver

template <class T>
struct Problem {
  int64_t M, N, K;
  T alpha, beta;
  const T* A;
  int64_t rs_a, cs_a;
  const T* B;
  int64_t rs_b, cs_b;
  T* C;
  int64_t rs_c, cs_c;
  const T* bias;       // per column of C (null after a transpose: then applied by finish_block)
  int64_t bias_stride;
  const GemmEpilogue<T>* epi;
  bool transposed;     // C, A, B are the caller's Cᵀ, Bᵀ, Aᵀ
  // gemm_half: an operand stored as 16-bit floats (same strides; A or B is then null), converted to
  // float32 as it is packed, or a few rows at a time on the skinny paths
  const uint16_t* A16 = nullptr;
  const uint16_t* B16 = nullptr;
  Half a16 = Half::none, b16 = Half::none;
  // float only: A and B are bfloat16 pairs along k seen as floats (K counts pairs): the vdpbf16ps table
  bool bf16_pairs = false;
};

// ---- 16-bit operands (gemm_half) ----------------------------------------------------------------
// n elements of a bfloat16 / float16 operand, `step` apart, to float32 (the elementwise module's
// SIMD converters: a shift for bfloat16, F16C for float16).
inline void half_to_f32(Half kind, const uint16_t* x, int64_t step, float* y, int64_t n) {
  const F32Rows& K = f32_rows();
  if (kind == Half::bf16) K.bf16_to_f32(x, step, y, n);
  else K.f16_to_f32(x, step, y, n);
}
// A per-thread float32 scratch for converted rows: used only between a conversion and the packing or
// kernel call right after it, so a gemm nested in a block hook cannot be holding it.
float* half_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
// rows × cols of a 16-bit operand (element (i, k) at x[i·rs + k·cs]) as a row-major float32 matrix.
std::vector<float> half_matrix(Half kind, const uint16_t* x, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  std::vector<float> out((size_t)(rows * cols));
  for (int64_t i = 0; i < rows; i++) half_to_f32(kind, x + i * rs, cs, out.data() + i * cols, cols);
  return out;
}

// After all of K has been accumulated into C[i0:i1, j0:j1] (in the problem's own coordinates): the
// row bias of a transposed problem, then the caller's block hook in the caller's coordinates.
template <class T>
void finish_block(const Problem<T>& p, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  const GemmEpilogue<T>* e = p.epi;
  if (!e) return;
  if (p.transposed && e->bias) {
    for (int64_t i = i0; i < i1; i++) {
      const T bv = e->bias[i * e->bias_stride];
      T* cr = p.C + i * p.rs_c;
      for (int64_t j = j0; j < j1; j++) cr[j * p.cs_c] += bv;
    }
  }
  if (e->block) {
    if (p.transposed) e->block(j0, j1, i0, i1);
    else e->block(i0, i1, j0, j1);
  }
}

// Cache blocks of one call: the ISA's defaults, or for skinny problems sizes that make the B reads long
// contiguous runs (see gemm_impl).
struct Blocking {
  int64_t kc, mc, nc;
  bool unpacked_a = false;  // the kernels read row-major A in place (kern_ua)
};

// out[j] = the float whose bits are lo[j·step] | hi[j·step] << 16, for j < n: a bfloat16 pair (k, k + 1)
// as the vdpbf16ps kernels read it.
inline void pair_words(const uint16_t* lo, const uint16_t* hi, int64_t step, int64_t n, float* out) {
  if (step == 1) {
    for (int64_t j = 0; j < n; j++) {
      const uint32_t w = (uint32_t)lo[j] | ((uint32_t)hi[j] << 16);
      std::memcpy(out + j, &w, 4);
    }
  } else {
    for (int64_t j = 0; j < n; j++) {
      const uint32_t w = (uint32_t)lo[j * step] | ((uint32_t)hi[j * step] << 16);
      std::memcpy(out + j, &w, 4);
    }
  }
}

// Columns [c0, c1) (multiples of NR apart from the end) of the K rows [pc, pc + kc) of B, packed into the
// layout the kernels read: panel q of the block at dst + q·NR·kc.
// A 16-bit B is converted on the way: row-major B straight into the panels (a panel's row k is B's row k),
// other layouts a panel's columns at a time into a float32 scratch that the float32 packer then reads.
template <class T>
void pack_b_cols(const Impl<T>& im, const Problem<T>& p, int64_t pc, int64_t kc, int64_t c0, int64_t c1, T* dst) {
  if (c1 <= c0) return;
  if (!p.B16) {
    im.pack_b(p.B + pc * p.rs_b + c0 * p.cs_b, p.rs_b, p.cs_b, c1 - c0, kc, dst + c0 * kc);
    return;
  }
  if constexpr (std::is_same<T, float>::value) {
    const int64_t NR = im.nr;
    T* d = dst + c0 * kc;
    if (p.bf16_pairs) {  // pc, kc count pairs: panel step k is the word (B(2k, j), B(2k + 1, j))
      for (int64_t q = c0; q < c1; q += NR, d += NR * kc) {
        const int64_t n = std::min<int64_t>(NR, c1 - q);
        for (int64_t k = 0; k < kc; k++) {
          const uint16_t* lo = p.B16 + 2 * (pc + k) * p.rs_b + q * p.cs_b;
          pair_words(lo, lo + p.rs_b, p.cs_b, n, d + k * NR);
          for (int64_t j = n; j < NR; j++) d[k * NR + j] = 0.f;
        }
      }
      return;
    }
    for (int64_t q = c0; q < c1; q += NR, d += NR * kc) {
      const int64_t n = std::min<int64_t>(NR, c1 - q);
      const uint16_t* src = p.B16 + pc * p.rs_b + q * p.cs_b;
      if (p.cs_b == 1) {
        for (int64_t k = 0; k < kc; k++) {
          half_to_f32(p.b16, src + k * p.rs_b, 1, d + k * NR, n);
          for (int64_t j = n; j < NR; j++) d[k * NR + j] = 0.f;
        }
      } else {
        float* tmp = half_scratch((size_t)(NR * kc));  // [n][kc]: B(k, j) at tmp[j·kc + k]
        for (int64_t j = 0; j < n; j++) half_to_f32(p.b16, src + j * p.cs_b, p.rs_b, tmp + j * kc, kc);
        im.pack_b(tmp, 1, kc, n, kc, d);
      }
    }
  }
}

// Rows [i0, i0 + len) × K columns [k0, k0 + kc) of A packed into MR-tall panels; a 16-bit A an MR-row
// panel at a time through a float32 scratch (its rows converted, then the float32 packer).
template <class T>
void pack_a_rows(const Impl<T>& im, const Problem<T>& p, int64_t i0, int64_t k0, int64_t len, int64_t kc, T* dst) {
  if (!p.A16) {
    im.pack_a(p.A + i0 * p.rs_a + k0 * p.cs_a, p.rs_a, p.cs_a, len, kc, dst);
    return;
  }
  if constexpr (std::is_same<T, float>::value) {
    const int64_t MR = im.mr;
    if (p.bf16_pairs) {  // k0, kc count pairs: panel step k holds the words (A(i, 2k), A(i, 2k + 1))
      for (int64_t q = 0; q < len; q += MR, dst += MR * kc) {
        const int64_t m = std::min<int64_t>(MR, len - q);
        for (int64_t k = 0; k < kc; k++) {
          const uint16_t* lo = p.A16 + (i0 + q) * p.rs_a + 2 * (k0 + k) * p.cs_a;
          pair_words(lo, lo + p.cs_a, p.rs_a, m, dst + k * MR);
          for (int64_t r = m; r < MR; r++) dst[k * MR + r] = 0.f;
        }
      }
      return;
    }
    float* tmp = half_scratch((size_t)(MR * kc));  // [m][kc], row-major
    for (int64_t q = 0; q < len; q += MR, dst += MR * kc) {
      const int64_t m = std::min<int64_t>(MR, len - q);
      const uint16_t* src = p.A16 + (i0 + q) * p.rs_a + k0 * p.cs_a;
      for (int64_t r = 0; r < m; r++) half_to_f32(p.a16, src + r * p.rs_a, p.cs_a, tmp + r * kc, kc);
      im.pack_a(tmp, kc, 1, m, kc, dst);
    }
  }
}

// All of B packed at once (K block after K block, each block all N columns wide: block pc starts at
// dst + pc·Npad), the `share` threads each packing their part of every block.
template <class T>
void pack_b_whole(const Impl<T>& im, const Blocking& bk, const Problem<T>& p, T* dst, int tid, int share) {
  const int64_t NR = im.nr, Q = (p.N + NR - 1) / NR, Npad = Q * NR;
  const int64_t q0 = Q * tid / share, q1 = Q * (tid + 1) / share;
  for (int64_t pc = 0; pc < p.K; pc += bk.kc) {
    const int64_t kc = std::min<int64_t>(bk.kc, p.K - pc);
    pack_b_cols(im, p, pc, kc, q0 * NR, std::min<int64_t>(p.N, q1 * NR), dst + pc * Npad);
  }
}

// Rows [i0, i1) × columns [j0, j1) of p. `share` threads (ids tid) pack each B panel together into
// `bbuf` and meet at barriers; share = 1 runs alone. With `whole` (all of B already packed by
// pack_b_whole, j0 = 0) there is neither packing nor a barrier. Exceptions from the block hook are kept
// in *err and the thread keeps meeting the barriers (a thread that left would hang the others).
template <class T>
void run_range(const Impl<T>& im, const Blocking& bk, const Problem<T>& p, int64_t i0, int64_t i1, int64_t j0,
               int64_t j1, T* bbuf, bool whole, T* abuf, int tid, int share, std::exception_ptr* err,
               std::mutex* err_mu) {
  const int64_t MR = im.mr, NR = im.nr;
  const int64_t Npad = (p.N + NR - 1) / NR * NR;
  const int64_t rows = i1 - i0;
  // Equal MR-aligned row blocks no larger than MC: no small leftover block.
  const int64_t nblk = rows > 0 ? (rows + bk.mc - 1) / bk.mc : 0;
  const int64_t rpanels = (rows + MR - 1) / MR;
  bool failed = false;
  for (int64_t jc = j0; jc < j1; jc += bk.nc) {
    const int64_t nc = std::min<int64_t>(bk.nc, j1 - jc);
    for (int64_t pc = 0; pc < p.K; pc += bk.kc) {
      const int64_t kc = std::min<int64_t>(bk.kc, p.K - pc);
      const bool first = pc == 0, last = pc + kc == p.K;
      // this block's packed B: panel jr at bblk + jr·kc
      const T* bblk = whole ? bbuf + pc * Npad + jc * kc : bbuf;
      if (!whole) {
        const int64_t Q = (nc + NR - 1) / NR;
        const int64_t q0 = Q * tid / share, q1 = Q * (tid + 1) / share;
        Problem<T> q = p;
        q.B = p.B ? p.B + jc * p.cs_b : nullptr;
        q.B16 = p.B16 ? p.B16 + jc * p.cs_b : nullptr;
        pack_b_cols(im, q, pc, kc, q0 * NR, std::min<int64_t>(nc, q1 * NR), bbuf);
        if (share > 1) region_barrier();
      }
      const T beta = first ? p.beta : T(1);
      const T* bias = last && p.bias ? p.bias + jc * p.bias_stride : nullptr;
      for (int64_t b = 0; b < nblk && !failed; b++) {
        const int64_t ib = i0 + (rpanels * b / nblk) * MR;
        const int64_t ie = std::min<int64_t>(i1, i0 + (rpanels * (b + 1) / nblk) * MR);
        if (ie <= ib) continue;
        const int64_t mc = ie - ib;
        if (!bk.unpacked_a) pack_a_rows(im, p, ib, pc, mc, kc, abuf);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int n = (int)std::min<int64_t>(NR, nc - jr);
          const T* bp = bblk + jr * kc;
          T* cj = p.C + (jc + jr) * p.cs_c;
          const T* bj = bias ? bias + jr * p.bias_stride : nullptr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int m = (int)std::min<int64_t>(MR, mc - ir);
            if (bk.unpacked_a)
              im.kern_ua[m](kc, p.A + (ib + ir) * p.rs_a + pc, p.rs_a, bp, cj + (ib + ir) * p.rs_c, p.rs_c, p.cs_c, n,
                            p.alpha, beta, bj, p.bias_stride);
            else
              im.kern[m](kc, abuf + ir * kc, bp, cj + (ib + ir) * p.rs_c, p.rs_c, p.cs_c, n, p.alpha, beta, bj,
                         p.bias_stride);
          }
        }
        if (last && p.epi) {
          try {
            finish_block(p, ib, ie, jc, jc + nc);
          } catch (...) {
            std::lock_guard<std::mutex> g(*err_mu);
            if (!*err) *err = std::current_exception();
            failed = true;
          }
        }
      }
      // Nobody repacks B while another thread still reads it (after the last panel, the end of the
      // parallel region is the barrier).
      if (!whole && share > 1 && !(last && jc + nc >= j1)) region_barrier();
    }
  }
}

// C = beta·C (+ bias), then the block hook: what every path reduces to when K = 0 or alpha = 0.
template <class T>
void scale_only(const Problem<T>& p) {
  for (int64_t i = 0; i < p.M; i++) {
    T* cr = p.C + i * p.rs_c;
    for (int64_t j = 0; j < p.N; j++) {
      T v = p.beta == T(0) ? T(0) : p.beta * cr[j * p.cs_c];
      if (p.bias) v += p.bias[j * p.bias_stride];
      cr[j * p.cs_c] = v;
    }
  }
  finish_block(p, 0, p.M, 0, p.N);
}

// Tiny problems: packing and thread wake-up would cost more than the arithmetic.
template <class T>
void small_direct(const Problem<T>& p) {
  for (int64_t i = 0; i < p.M; i++) {
    T* cr = p.C + i * p.rs_c;
    for (int64_t j = 0; j < p.N; j++) {
      T s = T(0);
      const T* a = p.A + i * p.rs_a;
      const T* b = p.B + j * p.cs_b;
      for (int64_t k = 0; k < p.K; k++) s += a[k * p.cs_a] * b[k * p.rs_b];
      T v = p.alpha * s;
      if (p.beta != T(0)) v += p.beta * cr[j * p.cs_c];
      if (p.bias) v += p.bias[j * p.bias_stride];
      cr[j * p.cs_c] = v;
    }
  }
  finish_block(p, 0, p.M, 0, p.N);
}

// The skinny path's final update of C[0:M, j0:j0+width] from the sums in acc (row stride ld).
template <class T>
void write_out(const Problem<T>& p, const T* acc, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t width) {
  for (int64_t i = i0; i < i1; i++) {
    T* cr = p.C + i * p.rs_c + j0 * p.cs_c;
    const T* ar = acc + (i - i0) * ld;
    const T* bias = p.bias ? p.bias + j0 * p.bias_stride : nullptr;
    for (int64_t j = 0; j < width; j++) {
      T v = p.alpha * ar[j];
      if (p.beta != T(0)) v += p.beta * cr[j * p.cs_c];
      if (bias) v += bias[j * p.bias_stride];
      cr[j * p.cs_c] = v;
    }
  }
}

// Skinny, row-major B: columns [j0, j1) of C from rows of B streamed in order, KB rows at a time
// (KB concurrent streams, each read left to right). acc: M × ld sums. KB measured on the dev box
// (1×, 4×, 8×, 16× 4096×4096, 1 and 2 threads): few streams while the rows of A fit one register
// group, long blocks (fewer passes over acc) when they take two.
template <class T>
void skinny_nn(const Impl<T>& im, const Problem<T>& p, int64_t j0, int64_t j1, T* acc) {
  const int64_t KB = p.M <= 4 ? 8 : p.M <= 8 ? 16 : 128;
  const int64_t width = j1 - j0;
  const int64_t ld = (width + im.lanes - 1) / im.lanes * im.lanes;
  if (p.B16) {
    // 16-bit B: KB rows × 512 columns at a time converted into a float32 scratch (≤ 256 KB, in L2),
    // which the float32 kernel then streams; B itself is read from memory once, at half the bytes.
    if constexpr (std::is_same<T, float>::value) {
      constexpr int64_t CW = 512;
      for (int64_t c0 = j0; c0 < j1; c0 += CW) {
        const int64_t cw = std::min<int64_t>(CW, j1 - c0);
        for (int64_t k0 = 0; k0 < p.K; k0 += KB) {
          const int64_t kb = std::min<int64_t>(KB, p.K - k0);
          float* tmp = half_scratch((size_t)(kb * cw));
          for (int64_t k = 0; k < kb; k++) half_to_f32(p.b16, p.B16 + (k0 + k) * p.rs_b + c0, 1, tmp + k * cw, cw);
          im.nn[p.M](kb, p.A + k0 * p.cs_a, p.rs_a, p.cs_a, tmp, cw, cw, acc + (c0 - j0), ld, k0 == 0);
        }
      }
    }
  } else {
    for (int64_t k0 = 0; k0 < p.K; k0 += KB) {
      const int64_t kb = std::min<int64_t>(KB, p.K - k0);
      im.nn[p.M](kb, p.A + k0 * p.cs_a, p.rs_a, p.cs_a, p.B + k0 * p.rs_b + j0 * p.cs_b, p.rs_b, width, acc, ld, k0 == 0);
    }
  }
  write_out(p, acc, ld, 0, p.M, j0, width);
}

// Skinny, Bᵀ row-major (B(k, j) = W[j·cs_b + k]): each C element is a dot product of a row of A (A: rows
// contiguous, lda apart) with a row of W; tiles of nt_mi × nt_nj of them, every row of W read from memory
// once.
// With more than two row tiles, K goes in chunks of kNtChunkBytes a row: the tile's rows of W for one
// chunk stay in L1 while every row tile uses them (their vector sums kept in part between chunks),
// where unchunked the rows of A streaming through evicted them and the later row tiles read W from L2.
// part: one row tile's kNtMI × kNtNJ vectors for each row tile.
template <class T>
void skinny_nt(const Impl<T>& im, const Problem<T>& p, int64_t j0, int64_t j1, const T* A, int64_t lda, void* part) {
  const int NJ = im.nt_nj;
  T out[kNtMaxRows * kNtNJ];
  // 512 bytes ahead in a row of W (the hardware prefetcher alone left the loads waiting)
  const int64_t pf_ahead = 512 / (p.B16 ? 2 : (int64_t)sizeof(T));
  const bool chunked = p.M > 2 * im.nt_mi;
  const int64_t kc =
      chunked ? std::max<int64_t>(im.lanes, kNtChunkBytes / (int64_t)sizeof(T) / im.lanes * im.lanes) : p.K;
  const size_t tile_bytes = (size_t)kNtMI * kNtNJ * im.lanes * sizeof(T);
  for (int64_t j = j0; j < j1; j += NJ) {
    const int nj = (int)std::min<int64_t>(NJ, j1 - j);
    for (int64_t k0 = 0; k0 < p.K; k0 += kc) {
      const int64_t kb = std::min<int64_t>(kc, p.K - k0);
      const int flags = (k0 > 0 ? kNtLoad : 0) | (k0 + kb < p.K ? kNtStore : 0);
      for (int64_t i = 0, t = 0; i < p.M; i += im.nt_mi, t++) {
        const int mi = (int)std::min<int64_t>(im.nt_mi, p.M - i);
        void* vp = static_cast<char*>(part) + t * tile_bytes;
        const int64_t pf = t == 0 ? pf_ahead : 0;  // the first row tile brings the chunk of W in
        T* o = out + i * NJ;
        if constexpr (std::is_same<T, float>::value) {
          if (p.B16) {  // 16-bit W, widened in registers by the kernel
            im.nt16[(int)p.b16 - 1][mi][nj](kb, A + i * lda + k0, lda, p.B16 + j * p.cs_b + k0, p.cs_b, o, NJ, vp,
                                            flags, pf);
            continue;
          }
        }
        im.nt[mi][nj](kb, A + i * lda + k0, lda, p.B + j * p.cs_b + k0, p.cs_b, o, NJ, vp, flags, pf);
      }
    }
    write_out(p, out, NJ, 0, p.M, j, nj);
  }
}

template <class T>
const Impl<T>& impl_of(const Problem<T>& p) {
#ifdef STRUCTURA_X86
  if constexpr (std::is_same<T, float>::value)
    if (p.bf16_pairs) return bf16_pair_impl();
#endif
  return impl_for<T>(simd_level());
}

template <class T>
void gemm_impl(Problem<T> p) {
  if (p.M <= 0 || p.N <= 0) return;
  if (p.K <= 0 || p.alpha == T(0)) {
    scale_only(p);
    return;
  }
  const Impl<T>& im = impl_of(p);
  // A handful of columns wastes most of each NR-wide tile; the transposed problem has them as rows,
  // which the m-row kernels compute without waste. Up to 16 columns (a low-rank projection x·Aᵀ),
  // the transposed problem is skinny: A is streamed once instead of packed (each element of A is used
  // only N times, so packing it would cost about as much as the arithmetic).
  const bool to_skinny = im.lanes > 0 && p.N <= 16 && p.M > 16 && (p.rs_a == 1 || p.cs_a == 1);
  if ((p.N < im.nr / 2 || to_skinny) && p.M > p.N) {
    std::swap(p.M, p.N);
    std::swap(p.A, p.B);
    std::swap(p.A16, p.B16);
    std::swap(p.a16, p.b16);
    std::swap(p.rs_a, p.cs_b);
    std::swap(p.cs_a, p.rs_b);
    std::swap(p.rs_c, p.cs_c);
    p.bias = nullptr;
    p.transposed = true;
  }
  const double work = (double)p.M * (double)p.N * (double)p.K;
  // 16-bit operands: a tiny problem, and the few rows of A on the skinny paths, are converted whole
  // up front (M·K or N·K elements, next to M·N·K multiply-adds); the rest is converted while packing.
  std::vector<float> a32, b32;
  auto widen_a = [&]() {
    if constexpr (std::is_same<T, float>::value) {
      a32 = half_matrix(p.a16, p.A16, p.M, p.K, p.rs_a, p.cs_a);
      p.A = a32.data(), p.rs_a = p.K, p.cs_a = 1, p.A16 = nullptr, p.a16 = Half::none;
    }
  };
  if (work <= 4096.0 && !p.bf16_pairs) {
    if (p.A16) widen_a();
    if constexpr (std::is_same<T, float>::value) {
      if (p.B16) {
        b32 = half_matrix(p.b16, p.B16, p.K, p.N, p.rs_b, p.cs_b);
        p.B = b32.data(), p.rs_b = p.N, p.cs_b = 1, p.B16 = nullptr, p.b16 = Half::none;
      }
    }
    small_direct(p);
    return;
  }
  // Threads: about 2^17 multiply-adds each at least (a few µs), or waking them costs more than it saves.
  int nt = (int)std::min<double>(num_threads(), std::max(1.0, work / 131072.0));
  const int64_t MR = im.mr, NR = im.nr;
  const int64_t rpanels = (p.M + MR - 1) / MR;
  // Skinny (few rows): B is read once and barely reused, so the time is reading B. With a long K,
  // x·Wᵀ (W's rows contiguous: the nt_tile dot products, W read in place) stays skinny to more rows,
  // packing W costing more than the reuse it buys; with a short K the dot products' horizontal sums
  // cost more (K = 64: 2.6× the packed time a row). Measured on the 2-core Zen 4: float32 with K ≥
  // 1024 to 64 rows (×4096×4096: M = 17 5.5 ms against 12 packed, M = 64 14 against 21–24, M = 128
  // even; K = 512 even), bfloat16 pairs with K ≥ 2048 to 128 (M = 128: 14–17 ms against 21 at K =
  // 4096, 58 µs a row against 105 at K = 2048; K = 1024 even). x·W's row kernels stop at 16 rows.
  const int64_t nt_rows = p.bf16_pairs ? (p.K >= 1024 ? 128 : 16) : (p.K >= 1024 ? 64 : 16);
  static_assert(kNtMaxRows >= 128, "skinny_nt's output tile holds every row the skinny x·Wᵀ path takes");
  // (pairs interleaved from a 16-bit operand exist only in the packers: no skinny path for them)
  const bool skinny = !(p.bf16_pairs && (p.A16 || p.B16)) &&
                      (p.M <= 16 || (p.M <= nt_rows && p.rs_b == 1 && im.lanes > 0));
  if (p.A16 && skinny) widen_a();
  // Threads split the rows and share each packed B panel (packing it together, meeting at two barriers
  // a K block), unless B is much the larger operand: then each takes its own columns, packs its part of
  // B and all of A (small), and never waits for the other. On the shared 2-core Zen 4 that made a
  // bfloat16 512×4096×4096 x·Wᵀ 43–46 ms instead of 49–54 while another tenant was busy (a thread
  // descheduled between barriers stalls both), and the same 42 ms when it was quiet; float32 86–90
  // against 95–100 ms; 1024³ and 2048³ (rows) unchanged.
  const int64_t npanels = (p.N + NR - 1) / NR;
  const bool by_columns = p.N >= 4 * p.M && npanels >= 2 * nt;
  const bool split_rows = !skinny && rpanels >= 2 * nt && !by_columns;
  if (!split_rows) nt = (int)std::min<int64_t>(nt, npanels);
  if (nt < 1) nt = 1;
  std::exception_ptr err;
  std::mutex err_mu;
  auto finish = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    if (!p.epi) return;
    try {
      finish_block(p, i0, i1, j0, j1);
    } catch (...) {
      std::lock_guard<std::mutex> g(err_mu);
      if (!err) err = std::current_exception();
    }
  };
  // Skinny with a unit stride in B: no packing at all (SIMD levels). Threads take equal column ranges.
  if (skinny && im.lanes > 0 && (p.cs_b == 1 || p.rs_b == 1)) {
    WorkspaceScope scope;
    Workspace& ws = scope.ws;
    if (p.cs_b == 1 && p.M <= 16) {
      const int64_t vecs = (p.N + im.lanes - 1) / im.lanes;
      nt = (int)std::min<int64_t>(nt, vecs);
      if ((int)ws.b.size() < nt) ws.b.resize(nt);
      // Each thread sizes its own buffer: the pool may run fewer threads than asked (no barriers here,
      // so an allocation failure simply propagates).
      parallel_region(nt, [&](int tid, int n_threads) {
        const int64_t j0 = std::min<int64_t>(p.N, vecs * tid / n_threads * im.lanes);
        const int64_t j1 = std::min<int64_t>(p.N, vecs * (tid + 1) / n_threads * im.lanes);
        if (j1 <= j0) return;
        T* acc = (T*)ws.b[tid].get(sizeof(T) * (size_t)(p.M * ((j1 - j0 + im.lanes - 1) / im.lanes * im.lanes)));
        skinny_nn(im, p, j0, j1, acc);
        finish(0, p.M, j0, j1);
      });
    } else {
      // A's rows must be contiguous for the dot products; A is small here (≤ 16 rows), so copy if not.
      const T* A = p.A;
      int64_t lda = p.rs_a;
      if (p.cs_a != 1) {
        T* a = (T*)ws.shared_b.get(sizeof(T) * (size_t)(p.M * p.K));
        for (int64_t i = 0; i < p.M; i++)
          for (int64_t k = 0; k < p.K; k++) a[i * p.K + k] = p.A[i * p.rs_a + k * p.cs_a];
        A = a, lda = p.K;
      }
      const int64_t NJ = im.nt_nj, tiles = (p.N + NJ - 1) / NJ;
      nt = (int)std::min<int64_t>(nt, tiles);
      if ((int)ws.b.size() < nt) ws.b.resize(nt);
      parallel_region(nt, [&](int tid, int n_threads) {
        const int64_t j0 = std::min<int64_t>(p.N, tiles * tid / n_threads * NJ);
        const int64_t j1 = std::min<int64_t>(p.N, tiles * (tid + 1) / n_threads * NJ);
        if (j1 <= j0) return;
        void* part = ws.b[tid].get(sizeof(T) * (size_t)((p.M + im.nt_mi - 1) / im.nt_mi * kNtMI * kNtNJ * im.lanes));
        skinny_nt(im, p, j0, j1, A, lda, part);
        finish(0, p.M, j0, j1);
      });
    }
    if (err) std::rethrow_exception(err);
    return;
  }
  // Packed skinny (the scalar level, or B without a unit stride): columns go to the threads (each
  // packs and streams its own part of B) and the B block is sized for long contiguous reads — whole
  // row segments when B is row-major, whole columns (rows of Bᵀ) otherwise — about 384 KB, so it
  // stays in L2 while the kernel sweeps it.
  Blocking bk{im.kc, im.mc, im.nc};
  if (skinny) {
    const int64_t budget = (384 << 10) / (int64_t)sizeof(T);
    const int64_t width = (npanels + nt - 1) / nt * NR;  // one thread's columns
    if (p.cs_b == 1 && p.rs_b != 1) {
      bk.nc = std::min<int64_t>(width, std::max<int64_t>(NR, budget / 16 / NR * NR));
      bk.kc = std::max<int64_t>(16, budget / bk.nc);
    } else if (p.rs_b == 1) {
      bk.kc = std::min<int64_t>(p.K, std::max<int64_t>(im.kc, budget / NR));
      bk.nc = std::max<int64_t>(NR, budget / bk.kc / NR * NR);
    }
  }
  bk.kc = std::min<int64_t>(bk.kc, p.K);
  // Thin B (N ≤ 64) and row-major A: each element of A takes part in at most 64 products, so packing A
  // (a transpose) would cost about as much as the arithmetic; the kernels read A's rows in place.
  // Measured (4096×N×4096, one thread, AVX-512 and AVX2): N = 32 in 0.6–0.8× the time, N = 64 in
  // 0.75–0.85×; at N = 96 and 128 it was no better than packing.
  bk.unpacked_a = !skinny && !p.A16 && im.kern_ua[1] && p.cs_a == 1 && p.N <= 64;

  WorkspaceScope scope;
  Workspace& ws = scope.ws;
  if ((int)ws.a.size() < nt) ws.a.resize(nt);
  for (int t = 0; t < nt; t++)
    ws.a[t].get(sizeof(T) * (size_t)(std::min<int64_t>(bk.mc, rpanels * MR) + 2 * MR) * bk.kc);
  T* shared_b = nullptr;
  // A small B (thin: few columns or few rows; up to 1 MB packed) is packed whole, once, with a single
  // barrier: the threads then run without meeting again. Otherwise every K×N block costs two barriers,
  // and a thin B makes those blocks so short that waiting (worst when the machine is busy and a thread
  // is descheduled) costs more than the arithmetic.
  const bool whole = split_rows && nt > 1 && (double)p.K * (double)(npanels * NR) * sizeof(T) <= (1 << 20) &&
                     (p.K > bk.kc || p.N > bk.nc);
  if (split_rows) {
    // Allocated before the region: a thread failing between barriers would hang the others.
    const int64_t ncols = std::min<int64_t>(bk.nc, npanels * NR);
    shared_b = (T*)ws.shared_b.get(sizeof(T) * (size_t)(whole ? npanels * NR * p.K : ncols * bk.kc));
  } else if ((int)ws.b.size() < nt) {
    ws.b.resize(nt);
  }
  parallel_region(nt, [&](int tid, int n_threads) {
    T* abuf = (T*)ws.a[tid].p;
    if (split_rows) {
      const int64_t i0 = std::min<int64_t>(p.M, rpanels * tid / n_threads * MR);
      const int64_t i1 = std::min<int64_t>(p.M, rpanels * (tid + 1) / n_threads * MR);
      if (whole) {
        pack_b_whole(im, bk, p, shared_b, tid, n_threads);
        if (n_threads > 1) region_barrier();
      }
      run_range(im, bk, p, i0, i1, 0, p.N, shared_b, whole, abuf, tid, n_threads, &err, &err_mu);
    } else {
      const int64_t Q = (p.N + NR - 1) / NR;
      const int64_t j0 = std::min<int64_t>(p.N, Q * tid / n_threads * NR);
      const int64_t j1 = std::min<int64_t>(p.N, Q * (tid + 1) / n_threads * NR);
      if (j1 <= j0) return;
      // sized here, from the range this thread really got (no barriers in this mode)
      T* bbuf = (T*)ws.b[tid].get(sizeof(T) * (size_t)std::min<int64_t>(bk.nc, j1 - j0 + NR) * bk.kc);
      run_range(im, bk, p, 0, p.M, j0, j1, bbuf, false, abuf, 0, 1, &err, &err_mu);
    }
  });
  if (err) std::rethrow_exception(err);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// public entry points

// The caller's epilogue, if it does anything (a bias, a block hook).
template <class T>
void attach_epilogue(Problem<T>& p, const GemmEpilogue<T>* epilogue) {
  if (!epilogue || !(epilogue->bias || epilogue->block)) return;
  p.epi = epilogue;
  p.bias = epilogue->bias;
  p.bias_stride = epilogue->bias_stride;
}

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B, int64_t rs_b,
          int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c, const GemmEpilogue<T>* epilogue) {
  Problem<T> p{M, N, K, alpha, beta, A, rs_a, cs_a, B, rs_b, cs_b, C, rs_c, cs_c, nullptr, 0, nullptr, false};
  attach_epilogue(p, epilogue);
  gemm_impl(p);
}

void gemm_half(int64_t M, int64_t N, int64_t K, float alpha, const void* A, Half a_kind, int64_t rs_a, int64_t cs_a,
               const void* B, Half b_kind, int64_t rs_b, int64_t cs_b, float beta, float* C, int64_t rs_c, int64_t cs_c,
               const GemmEpilogue<float>* epilogue) {
  Problem<float> p{M, N, K, alpha, beta, nullptr, rs_a, cs_a, nullptr, rs_b, cs_b, C, rs_c, cs_c, nullptr, 0, nullptr, false};
  // Both bfloat16 with pairs of consecutive k adjacent and 4-byte aligned in each (x·Wᵀ: x and W
  // row-major): the problem becomes a float problem over K/2 pairs, computed by the vdpbf16ps kernels
  // (packed, or the skinny dot products at decode). The float packers move the pairs unchanged (a zero
  // float is a zero pair); the tiny direct loop, which would multiply them as floats, is skipped.
  // An operand whose k pairs are not adjacent (x·W with W row-major, both products of a Linear's
  // backward) stays 16-bit and its packer interleaves rows k and k + 1 into pair words as it packs
  // (pack_b_cols / pack_a_rows): no widening to float32, at the packing's own cost — for products
  // with enough rows and columns to run packed (the skinny paths read pairs in place). bfloat16 2048³
  // x·W: 41 ms widened, 20 as pairs (x·Wᵀ 20, torch 19.5; 2-core Zen 5).
  const auto pairs_ok = [](const void* p, int64_t pair_stride, int64_t other) {
    return other == 1 && pair_stride % 2 == 0 && reinterpret_cast<uintptr_t>(p) % 4 == 0;
  };
  const bool a_pairs = pairs_ok(A, rs_a, cs_a), b_pairs = pairs_ok(B, cs_b, rs_b);
  if (a_kind == Half::bf16 && b_kind == Half::bf16 && K >= 32 && K % 2 == 0 &&
      ((a_pairs && b_pairs) || (M >= 64 && N >= 64)) && bf16_pairs_available()) {
    p.K = K / 2;
    p.bf16_pairs = true;
    if (a_pairs) p.A = static_cast<const float*>(A), p.rs_a = rs_a / 2, p.cs_a = 1;
    else p.A16 = static_cast<const uint16_t*>(A), p.a16 = Half::bf16;
    if (b_pairs) p.B = static_cast<const float*>(B), p.cs_b = cs_b / 2, p.rs_b = 1;
    else p.B16 = static_cast<const uint16_t*>(B), p.b16 = Half::bf16;
  } else {
    if (a_kind == Half::none) p.A = static_cast<const float*>(A);
    else p.A16 = static_cast<const uint16_t*>(A), p.a16 = a_kind;
    if (b_kind == Half::none) p.B = static_cast<const float*>(B);
    else p.B16 = static_cast<const uint16_t*>(B), p.b16 = b_kind;
  }
  attach_epilogue(p, epilogue);
  gemm_impl(p);
}

template <class T>
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t bs_a, int64_t rs_a,
                  int64_t cs_a, const T* B, int64_t bs_b, int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t bs_c,
                  int64_t rs_c, int64_t cs_c) {
  gemm_batched_fn<T>(
      batch, M, N, K, alpha, rs_a, cs_a, rs_b, cs_b, beta, rs_c, cs_c, [&](int64_t b, const T** a, const T** bb, T** c) {
        *a = A + b * bs_a;
        *bb = B + b * bs_b;
        *c = C + b * bs_c;
      });
}

template <class T>
void gemm_batched_fn(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, int64_t rs_a, int64_t cs_a,
                     int64_t rs_b, int64_t cs_b, T beta, int64_t rs_c, int64_t cs_c,
                     const std::function<void(int64_t b, const T** A, const T** B, T** C)>& operands) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const double work = (double)M * (double)N * (double)std::max<int64_t>(K, 1);
  const int nt = num_threads();
  // Small products side by side on separate threads (each one single-threaded: a gemm called inside a
  // parallel region runs inline); large ones one after another, each on every thread.
  if (nt > 1 && batch > 1 && work < 64.0 * 64.0 * 256.0 * nt) {
    parallel_for(batch, std::max<int64_t>(1, (int64_t)(131072.0 / work)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        const T *a, *bb;
        T* c;
        operands(b, &a, &bb, &c);
        gemm<T>(M, N, K, alpha, a, rs_a, cs_a, bb, rs_b, cs_b, beta, c, rs_c, cs_c, nullptr);
      }
    });
    return;
  }
  for (int64_t b = 0; b < batch; b++) {
    const T *a, *bb;
    T* c;
    operands(b, &a, &bb, &c);
    gemm<T>(M, N, K, alpha, a, rs_a, cs_a, bb, rs_b, cs_b, beta, c, rs_c, cs_c, nullptr);
  }
}

template <class T>
void gemm_naive(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a, const T* B,
                int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += (double)A[i * rs_a + k * cs_a] * (double)B[k * rs_b + j * cs_b];
      double v = (double)alpha * s;
      if (beta != T(0)) v += (double)beta * (double)C[i * rs_c + j * cs_c];
      C[i * rs_c + j * cs_c] = (T)v;
    }
}

int gemm_block_mr(bool is_double) {
  return is_double ? impl_for<double>(simd_level()).mr : impl_for<float>(simd_level()).mr;
}
int gemm_block_nr(bool is_double) {
  return is_double ? impl_for<double>(simd_level()).nr : impl_for<float>(simd_level()).nr;
}
int gemm_block_kc(bool is_double) {
  return is_double ? impl_for<double>(simd_level()).kc : impl_for<float>(simd_level()).kc;
}

#define STRUCTURA_GEMM_INSTANTIATE(T)                                                                              \
  template void gemm<T>(int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*, int64_t, int64_t, T, T*, \
                        int64_t, int64_t, const GemmEpilogue<T>*);                                                  \
  template void gemm_batched<T>(int64_t, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, int64_t,         \
                                const T*, int64_t, int64_t, int64_t, T, T*, int64_t, int64_t, int64_t);             \
  template void gemm_batched_fn<T>(int64_t, int64_t, int64_t, int64_t, T, int64_t, int64_t, int64_t, int64_t, T,    \
                                   int64_t, int64_t, const std::function<void(int64_t, const T**, const T**, T**)>&); \
  template void gemm_naive<T>(int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*, int64_t, int64_t, \
                              T, T*, int64_t, int64_t);
STRUCTURA_GEMM_INSTANTIATE(float)
STRUCTURA_GEMM_INSTANTIATE(double)

}  // namespace structura
