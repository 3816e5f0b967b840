// elementwise.cc — CPU elementwise kernels: y = op(a) (unary), y = op(a, b) with numpy broadcasting
// (binary), y = cond ? a : b (where), and dropout (contiguous x: y = x·(kept ? scale : 0), the mask
// from the counter-based stream). Inputs are views of any strides and shapes broadcasting to the
// output's; the output is contiguous. See elementwise.h for the dtype rules.
//
// How: the output shape and every operand's (broadcast) strides are collapsed (size-1 dimensions
// dropped, dimensions merged where all operands are contiguous across them), then the elements
// [0, numel) are split over the thread pool, and each thread walks its range as runs of the
// innermost dimension. A float32 run whose inputs step by 1 (or 0: broadcast) goes straight to the
// SIMD row kernels; anything else (other strides, float16, bfloat16) is gathered and converted to
// float32 in blocks first. A large input laid out transposed is first copied to contiguous in
// 64 × 64 tiles (cpu_convert), which beats striding through it. float64 and int32 use plain loops
// (-O3 vectorises the contiguous ones). The row kernels are compiled three times below (baseline,
// AVX2+FMA+F16C, AVX-512) and chosen per call by simd_level().
#include "cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu/cpuinfo.h"
#include "threadpool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define STRUCTURA_X86 1
#else
#define STRUCTURA_X86 0
#endif

namespace structura {

// ---------------------------------------------------------------------------------------------
// row kernels, one copy per SIMD level

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
// GCC 12 warns about the deliberately undefined pass-through operand inside its own AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define SX_NS rows_base
#define SX_W 4
#define SX_F16C 0
#include "cpu/elementwise_rows.inc"
#undef SX_NS
#undef SX_W
#undef SX_F16C

#if STRUCTURA_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define SX_NS rows_avx2
#define SX_W 8
#define SX_F16C 1
#include "cpu/elementwise_rows.inc"
#undef SX_NS
#undef SX_W
#undef SX_F16C
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")
#endif
#define SX_NS rows_avx512
#define SX_W 16
#define SX_F16C 1
#include "cpu/elementwise_rows.inc"
#undef SX_NS
#undef SX_W
#undef SX_F16C
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // STRUCTURA_X86

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#define SX_TABLE(NS)                                                                                        \
  F32Rows {                                                                                                 \
    NS::unary, NS::binary, NS::sum, NS::sum_rows, NS::sqdiff_sum, NS::minmax, NS::col_sum, NS::col_minmax,  \
        NS::exp_sum, NS::scale_sub, NS::wspread, NS::softmax_cols, NS::argminmax, NS::f16_to_f32,           \
        NS::f32_to_f16, NS::bf16_to_f32, NS::f32_to_bf16, NS::transpose32, NS::random_fill, NS::dropout_mask \
  }

const F32Rows& f32_rows() {
  static const F32Rows base = SX_TABLE(rows_base);
#if STRUCTURA_X86
  // AVX2 without F16C does not exist in practice, but cpuinfo does not promise it: check.
  static const bool f16c = __builtin_cpu_supports("f16c");
  static const F32Rows avx2 = [] {
    F32Rows t = SX_TABLE(rows_avx2);
    if (!f16c) t.f16_to_f32 = rows_base::f16_to_f32, t.f32_to_f16 = rows_base::f32_to_f16;
    return t;
  }();
  static const F32Rows avx512 = SX_TABLE(rows_avx512);
  switch (simd_level()) {
    case Simd::avx512: return avx512;
    case Simd::avx2: return avx2;
    default: return base;
  }
#else
  return base;
#endif
}

// ---------------------------------------------------------------------------------------------
// op names and capabilities

static const char* const kUnaryNames[] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "relu", "gelu", "silu", "tanh", "sigmoid", "square", "reciprocal",
    "sign", "step", "erf", "sin", "cos", "gelu_grad", "silu_grad", "add_scalar", "mul_scalar", "pow_scalar",
    "rsub_scalar", "rdiv_scalar", "clamp"};
static const char* const kBinaryNames[] = {"add",     "sub", "mul", "div", "pow", "maximum", "minimum",
                                           "eq",      "ne",  "lt",  "le",  "gt",  "ge"};
static_assert(sizeof kUnaryNames / sizeof *kUnaryNames == (size_t)UnaryOp::count, "unary names");
static_assert(sizeof kBinaryNames / sizeof *kBinaryNames == (size_t)BinaryOp::count, "binary names");

const char* op_name(UnaryOp op) { return kUnaryNames[(int)op]; }
const char* op_name(BinaryOp op) { return kBinaryNames[(int)op]; }

bool parse_op(const std::string& name, UnaryOp& op) {
  for (int i = 0; i < (int)UnaryOp::count; i++)
    if (name == kUnaryNames[i]) return op = (UnaryOp)i, true;
  return false;
}
bool parse_op(const std::string& name, BinaryOp& op) {
  for (int i = 0; i < (int)BinaryOp::count; i++)
    if (name == kBinaryNames[i]) return op = (BinaryOp)i, true;
  return false;
}

int scalar_args(UnaryOp op) {
  if (op == UnaryOp::clamp) return 2;
  return op >= UnaryOp::add_scalar ? 1 : 0;
}

bool int32_ok(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: case UnaryOp::abs: case UnaryOp::sign: case UnaryOp::square:
    case UnaryOp::add_scalar: case UnaryOp::mul_scalar: case UnaryOp::clamp:
      return true;
    default:
      return false;
  }
}
bool int32_ok(BinaryOp op) { return op != BinaryOp::div && op != BinaryOp::pow; }

// Ops costly enough per element to deserve smaller chunks of parallel work.
static bool heavy(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp: case UnaryOp::log: case UnaryOp::gelu: case UnaryOp::silu: case UnaryOp::tanh:
    case UnaryOp::sigmoid: case UnaryOp::erf: case UnaryOp::sin: case UnaryOp::cos: case UnaryOp::gelu_grad:
    case UnaryOp::silu_grad: case UnaryOp::pow_scalar:
      return true;
    default:
      return false;
  }
}
static constexpr int64_t kGrainLight = 1 << 15, kGrainHeavy = 1 << 12;

// ---------------------------------------------------------------------------------------------
// strided iteration

namespace {

constexpr int64_t kBlock = 512;  // elements per gathered/converted block (on the stack)

struct Iter {
  Shape shape;             // collapsed, at least one dimension
  std::vector<Shape> st;   // per operand, in elements
  int64_t numel = 1;
  int64_t step(int q) const { return st[q].back(); }
};

// Drops size-1 dimensions and merges neighbours across which every operand is contiguous.
Iter make_iter(const Shape& shape, const std::vector<Shape>& strides) {
  Iter it;
  const size_t k = strides.size();
  it.st.resize(k);
  for (size_t d = 0; d < shape.size(); d++) {
    it.numel *= shape[d];
    if (shape[d] == 1) continue;
    bool merge = !it.shape.empty();
    for (size_t q = 0; merge && q < k; q++) merge = it.st[q].back() == strides[q][d] * shape[d];
    if (merge) {
      it.shape.back() *= shape[d];
      for (size_t q = 0; q < k; q++) it.st[q].back() = strides[q][d];
    } else {
      it.shape.push_back(shape[d]);
      for (size_t q = 0; q < k; q++) it.st[q].push_back(strides[q][d]);
    }
  }
  if (it.shape.empty()) {
    it.shape.push_back(1);
    for (size_t q = 0; q < k; q++) it.st[q].push_back(0);
  }
  return it;
}

// Calls fn(offs, len) for the runs of the innermost dimension covering elements [begin, end) in
// row-major order; offs[q] is operand q's element offset at the start of the run.
template <class F>
void walk(const Iter& it, int64_t begin, int64_t end, F&& fn) {
  const int nd = (int)it.shape.size();
  const int k = (int)it.st.size();
  const int64_t inner = it.shape[nd - 1];
  int64_t idx[64];
  int64_t offs[4];
  int64_t row = begin / inner, col = begin % inner;
  for (int q = 0; q < k; q++) offs[q] = col * it.st[q][nd - 1];
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = row % it.shape[d];
    row /= it.shape[d];
    for (int q = 0; q < k; q++) offs[q] += idx[d] * it.st[q][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t len = std::min(inner - col, end - pos);
    fn((const int64_t*)offs, len);
    pos += len;
    if (pos >= end) break;
    for (int q = 0; q < k; q++) offs[q] -= col * it.st[q][nd - 1];
    col = 0;
    for (int d = nd - 2; d >= 0; d--) {
      for (int q = 0; q < k; q++) offs[q] += it.st[q][d];
      if (++idx[d] < it.shape[d]) break;
      for (int q = 0; q < k; q++) offs[q] -= it.shape[d] * it.st[q][d];
      idx[d] = 0;
    }
  }
}

template <class F>
void parallel_walk(const Iter& it, int64_t grain, F&& fn) {
  if (it.numel == 0) return;
  parallel_for(it.numel, grain, [&](int64_t b, int64_t e) { walk(it, b, e, fn); });
}

Iter iter_for(const Tensor& out, std::initializer_list<const Tensor*> ins) {
  std::vector<Shape> st{out.strides};
  for (const Tensor* t : ins) st.push_back(broadcast_strides(*t, out.shape));
  return make_iter(out.shape, st);
}

// n elements of a float32/float16/bfloat16 tensor at p (stepping `step`) → float buf.
inline void load_f(const F32Rows& K, DType dt, const void* p, int64_t step, float* buf, int64_t n) {
  switch (dt) {
    case DType::f32: {
      const float* x = (const float*)p;
      if (step == 1) std::memcpy(buf, x, n * 4);
      else for (int64_t i = 0; i < n; i++) buf[i] = x[i * step];
      return;
    }
    case DType::f16: return K.f16_to_f32((const uint16_t*)p, step, buf, n);
    case DType::bf16: return K.bf16_to_f32((const uint16_t*)p, step, buf, n);
    default: return;
  }
}

// float buf → n contiguous elements at p.
inline void store_f(const F32Rows& K, DType dt, const float* buf, void* p, int64_t n) {
  switch (dt) {
    case DType::f32: std::memcpy(p, buf, n * 4); return;
    case DType::f16: return K.f32_to_f16(buf, (uint16_t*)p, n);
    case DType::bf16: return K.f32_to_bf16(buf, (uint16_t*)p, n);
    default: return;
  }
}

inline bool is_f32_family(DType dt) { return dt == DType::f32 || dt == DType::f16 || dt == DType::bf16; }
inline const char* at(const Tensor& t, int64_t off) { return (const char*)t.raw() + off * (int64_t)dtype_size(t.dtype); }
inline char* at_mut(Tensor& t, int64_t off) { return (char*)t.raw() + off * (int64_t)dtype_size(t.dtype); }

// ---------------------------------------------------------------------------------------------
// float64 and int32 element functions

inline double d_maximum(double a, double b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
inline double d_minimum(double a, double b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }
inline double d_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double d_erf_cdf(double x) { return 0.5 * (1.0 + std::erf(x * 0.70710678118654752440)); }

inline double d_pow_scalar(double x, double e) {
  if (e == 2) return x * x;
  if (e == 3) return x * x * x;
  if (e == 0.5) return std::sqrt(x);
  if (e == -0.5) return 1.0 / std::sqrt(x);
  if (e == -1) return 1.0 / x;
  if (e == -2) return 1.0 / (x * x);
  return std::pow(x, e);
}

inline double d_unary(UnaryOp op, double x, double alpha, double beta) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return 1.0 / std::sqrt(x);
    case UnaryOp::abs: return std::fabs(x);
    case UnaryOp::relu: return x > 0 || x != x ? x : 0.0;
    case UnaryOp::gelu: return x * d_erf_cdf(x);
    case UnaryOp::silu: return x * d_sigmoid(x);
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return d_sigmoid(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::reciprocal: return 1.0 / x;
    case UnaryOp::sign: return x != x ? x : (double)((x > 0) - (x < 0));
    case UnaryOp::step: return x > 0 ? 1.0 : 0.0;
    case UnaryOp::erf: return std::erf(x);
    case UnaryOp::sin: return std::sin(x);
    case UnaryOp::cos: return std::cos(x);
    case UnaryOp::gelu_grad: return d_erf_cdf(x) + x * std::exp(-0.5 * x * x) * 0.39894228040143267794;
    case UnaryOp::silu_grad: {
      double s = d_sigmoid(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case UnaryOp::add_scalar: return x + alpha;
    case UnaryOp::mul_scalar: return x * alpha;
    case UnaryOp::pow_scalar: return d_pow_scalar(x, alpha);
    case UnaryOp::rsub_scalar: return alpha - x;
    case UnaryOp::rdiv_scalar: return alpha / x;
    case UnaryOp::clamp: return d_minimum(d_maximum(x, alpha), beta);
    default: return x;
  }
}

inline double d_binary(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return std::pow(a, b);
    case BinaryOp::maximum: return d_maximum(a, b);
    case BinaryOp::minimum: return d_minimum(a, b);
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    default: return a;
  }
}

// int32 arithmetic wraps (two's complement), as PyTorch; done in uint32 so it is defined behaviour.
inline int32_t wrap(uint32_t u) { return (int32_t)u; }

inline int32_t i_binary(BinaryOp op, int32_t a, int32_t b) {
  switch (op) {
    case BinaryOp::add: return wrap((uint32_t)a + (uint32_t)b);
    case BinaryOp::sub: return wrap((uint32_t)a - (uint32_t)b);
    case BinaryOp::mul: return wrap((uint32_t)a * (uint32_t)b);
    case BinaryOp::maximum: return a > b ? a : b;
    case BinaryOp::minimum: return a < b ? a : b;
    case BinaryOp::eq: return a == b;
    case BinaryOp::ne: return a != b;
    case BinaryOp::lt: return a < b;
    case BinaryOp::le: return a <= b;
    case BinaryOp::gt: return a > b;
    case BinaryOp::ge: return a >= b;
    default: return 0;
  }
}

// Loops over a run with each op's switch hoisted out, so every loop body is one op.
template <class T, class F>
inline void map1_loop(const T* x, int64_t sx, T* y, int64_t n, F f) {
  if (sx == 1) for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
  else for (int64_t i = 0; i < n; i++) y[i] = f(x[i * sx]);
}

template <class T, class F>
inline void map2_loop(const T* a, int64_t sa, const T* b, int64_t sb, T* y, int64_t n, F f) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++) y[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T bv = *b;
    for (int64_t i = 0; i < n; i++) y[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const T av = *a;
    for (int64_t i = 0; i < n; i++) y[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = f(a[i * sa], b[i * sb]);
  }
}

#define SX_CASE1(OP, EXPR) \
  case OP: return map1_loop(x, sx, y, n, [&](T v) -> T { return EXPR; });
#define SX_CASE2(OP, EXPR) \
  case OP: return map2_loop(a, sa, b, sb, y, n, [&](T p, T q) -> T { return EXPR; });

void f64_unary_run(UnaryOp op, const double* x, int64_t sx, double* y, int64_t n, double alpha, double beta) {
  using T = double;
  switch (op) {
    SX_CASE1(UnaryOp::neg, -v)
    SX_CASE1(UnaryOp::abs, std::fabs(v))
    SX_CASE1(UnaryOp::square, v * v)
    SX_CASE1(UnaryOp::add_scalar, v + alpha)
    SX_CASE1(UnaryOp::mul_scalar, v * alpha)
    SX_CASE1(UnaryOp::rsub_scalar, alpha - v)
    SX_CASE1(UnaryOp::rdiv_scalar, alpha / v)
    SX_CASE1(UnaryOp::reciprocal, 1.0 / v)
    SX_CASE1(UnaryOp::sqrt, std::sqrt(v))
    default: return map1_loop(x, sx, y, n, [&](T v) { return d_unary(op, v, alpha, beta); });
  }
}

void f64_binary_run(BinaryOp op, const double* a, int64_t sa, const double* b, int64_t sb, double* y, int64_t n) {
  using T = double;
  switch (op) {
    SX_CASE2(BinaryOp::add, p + q)
    SX_CASE2(BinaryOp::sub, p - q)
    SX_CASE2(BinaryOp::mul, p * q)
    SX_CASE2(BinaryOp::div, p / q)
    SX_CASE2(BinaryOp::maximum, d_maximum(p, q))
    SX_CASE2(BinaryOp::minimum, d_minimum(p, q))
    default: return map2_loop(a, sa, b, sb, y, n, [&](T p, T q) { return d_binary(op, p, q); });
  }
}

void i32_unary_run(UnaryOp op, const int32_t* x, int64_t sx, int32_t* y, int64_t n, int32_t ia, int32_t ib) {
  using T = int32_t;
  switch (op) {
    SX_CASE1(UnaryOp::neg, wrap(0u - (uint32_t)v))
    SX_CASE1(UnaryOp::abs, v < 0 ? wrap(0u - (uint32_t)v) : v)
    SX_CASE1(UnaryOp::sign, (v > 0) - (v < 0))
    SX_CASE1(UnaryOp::square, wrap((uint32_t)v * (uint32_t)v))
    SX_CASE1(UnaryOp::add_scalar, wrap((uint32_t)v + (uint32_t)ia))
    SX_CASE1(UnaryOp::mul_scalar, wrap((uint32_t)v * (uint32_t)ia))
    SX_CASE1(UnaryOp::clamp, std::min(std::max(v, ia), ib))
    default: return;
  }
}

void i32_binary_run(BinaryOp op, const int32_t* a, int64_t sa, const int32_t* b, int64_t sb, int32_t* y, int64_t n) {
  using T = int32_t;
  switch (op) {
    SX_CASE2(BinaryOp::add, wrap((uint32_t)p + (uint32_t)q))
    SX_CASE2(BinaryOp::sub, wrap((uint32_t)p - (uint32_t)q))
    SX_CASE2(BinaryOp::mul, wrap((uint32_t)p * (uint32_t)q))
    SX_CASE2(BinaryOp::maximum, p > q ? p : q)
    SX_CASE2(BinaryOp::minimum, p < q ? p : q)
    default: return map2_loop(a, sa, b, sb, y, n, [&](T p, T q) { return i_binary(op, p, q); });
  }
}

#undef SX_CASE1
#undef SX_CASE2

// An int32 scalar argument: finite integers clamp to the int32 range, ±inf to its ends (the ops
// layer has already rejected fractions and NaN).
int32_t to_i32(double v) {
  if (v <= (double)std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  if (v >= (double)std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  return (int32_t)v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// drivers

namespace {

// For a copy whose source steps by more than one element along the innermost dimension (a
// transposed or permuted view): the outer dimension along which the source is densest, if walking
// square tiles of it and the innermost dimension beats walking rows. −1 if rows are fine.
int tile_dim(const Iter& it) {
  const int nd = (int)it.shape.size();
  const int64_t sj = it.st[1][nd - 1];
  if (sj == 0 || sj == 1 || it.shape[nd - 1] < 8) return -1;
  int best = -1;
  for (int d = 0; d < nd - 1; d++)
    if (it.shape[d] >= 8 && it.st[1][d] < sj && (best < 0 || it.st[1][d] < it.st[1][best])) best = d;
  return best;
}

constexpr int64_t kTile = 64;

// Calls tile(os, od, i0, j0, ni, nj) for every kTile × kTile tile of dimensions (k, innermost) of
// it.shape, in parallel: os / od the offsets of the tile's outer indices in the source (it.st[1]) and
// destination (it.st[0]); rows i0 … i0 + ni of dimension k, columns j0 … j0 + nj of the last.
template <class Tile>
void for_each_tile(const Iter& it, int k, Tile tile) {
  const int nd = (int)it.shape.size();
  const int64_t nk = it.shape[k], nj = it.shape[nd - 1];
  const int64_t tk = (nk + kTile - 1) / kTile, tj = (nj + kTile - 1) / kTile;
  int64_t rest = 1;
  for (int d = 0; d < nd - 1; d++)
    if (d != k) rest *= it.shape[d];
  parallel_for(rest * tk * tj, 4, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int64_t r = t / (tk * tj), i0 = (t / tj) % tk * kTile, j0 = t % tj * kTile;
      int64_t od = 0, os = 0;
      for (int d = nd - 2; d >= 0; d--) {
        if (d == k) continue;
        int64_t idx = r % it.shape[d];
        r /= it.shape[d];
        od += idx * it.st[0][d];
        os += idx * it.st[1][d];
      }
      tile(os, od, i0, j0, std::min(nk - i0, kTile), std::min(nj - j0, kTile));
    }
  });
}

// dst (contiguous, it.st[0]) = conv(src (it.st[1])) in kTile × kTile tiles of dimensions (k, innermost).
// Each tile is read along k (the source's dense direction) into a buffer, then written out along the
// innermost dimension (the destination's): both sides stream, and no two lines of a large power-of-two
// source stride fight over the same L1 set.
template <class S, class D, class Conv>
void tiled_copy(const Iter& it, int k, const S* src, D* dst, Conv conv) {
  const int nd = (int)it.shape.size();
  const int64_t sdk = it.st[0][k], ssk = it.st[1][k], ssj = it.st[1][nd - 1];
  for_each_tile(it, k, [&](int64_t os, int64_t od, int64_t i0, int64_t j0, int64_t ni, int64_t nj1) {
    D buf[kTile][kTile];
    for (int64_t j = 0; j < nj1; j++) {
      const S* scol = src + os + i0 * ssk + (j0 + j) * ssj;
      for (int64_t i = 0; i < ni; i++) buf[i][j] = conv(scol[i * ssk]);
    }
    for (int64_t i = 0; i < ni; i++) {
      D* drow = dst + od + (i0 + i) * sdk + j0;
      for (int64_t j = 0; j < nj1; j++) drow[j] = buf[i][j];
    }
  });
}

template <class E>
void tiled_same(const Iter& it, int k, const Tensor& t, Tensor& out) {
  tiled_copy(it, k, (const E*)t.raw(), (E*)out.raw(), [](E v) { return v; });
}

// 4-byte elements whose source runs along the tile's k dimension (a transposed matrix, the common
// case): each tile through the row kernels' register transpose instead of the scalar buffer
// (contiguous() of a transposed [4096, 4096] float32: 20 → 6.7 ms; torch 1.13: 60).
void tiled_same32(const Iter& it, int k, const Tensor& t, Tensor& out) {
  if (it.st[1][k] != 1) return tiled_same<uint32_t>(it, k, t, out);
  const auto transpose = f32_rows().transpose32;
  const uint32_t* src = (const uint32_t*)t.raw();
  uint32_t* dst = (uint32_t*)out.raw();
  const int64_t sdk = it.st[0][k], ssj = it.st[1][it.shape.size() - 1];
  for_each_tile(it, k, [&](int64_t os, int64_t od, int64_t i0, int64_t j0, int64_t ni, int64_t nj1) {
    transpose(src + os + i0 + j0 * ssj, ssj, dst + od + i0 * sdk + j0, sdk, ni, nj1);
  });
}

// 2-byte elements (bfloat16, float16) likewise, as pairs: source rows j = 2q and 2q + 1 are interleaved
// into 4-byte words (w[q][i] = src[2q][i] | src[2q + 1][i] << 16), whose 4-byte transpose is the
// destination's rows read as words (dst[i][2q], dst[i][2q + 1]). Needs whole words in the destination:
// an even last dimension (then every row, and every tile of it, starts and ends on one).
// (contiguous() of a transposed [4096, 4096] bfloat16: 11.5 → 5.5 ms.)
void tiled_same16(const Iter& it, int k, const Tensor& t, Tensor& out) {
  const int nd = (int)it.shape.size();
  if (it.st[1][k] != 1 || it.shape[nd - 1] % 2 != 0) return tiled_same<uint16_t>(it, k, t, out);
  const auto transpose = f32_rows().transpose32;
  const uint16_t* src = (const uint16_t*)t.raw();
  uint16_t* dst = (uint16_t*)out.raw();
  const int64_t sdk = it.st[0][k], ssj = it.st[1][nd - 1];
  for_each_tile(it, k, [&](int64_t os, int64_t od, int64_t i0, int64_t j0, int64_t ni, int64_t nj1) {
    uint32_t w[kTile / 2][kTile];
    const uint16_t* s0 = src + os + i0 + j0 * ssj;
    uint16_t* d0 = dst + od + i0 * sdk + j0;
    const int64_t pairs = nj1 / 2;  // nj1 is even: the last dimension is
    for (int64_t q = 0; q < pairs; q++) {
      const uint16_t* a = s0 + 2 * q * ssj;
      const uint16_t* b = a + ssj;
      for (int64_t i = 0; i < ni; i++) w[q][i] = (uint32_t)a[i] | (uint32_t)b[i] << 16;
    }
    transpose(&w[0][0], kTile, reinterpret_cast<uint32_t*>(d0), sdk / 2, ni, pairs);
  });
}

// A large input laid out transposed is copied to contiguous first (tiled), so the elementwise walk
// reads it in order: far fewer cache and TLB misses than striding through it.
Tensor untransposed(const Tensor& t) {
  if (t.numel() < (1 << 14)) return t;
  Tensor dense;
  dense.shape = t.shape;
  dense.strides = Tensor::contiguous_strides(t.shape);
  Iter it = make_iter(t.shape, {dense.strides, t.strides});
  return tile_dim(it) >= 0 ? cpu_convert(t, t.dtype) : t;
}

}  // namespace


void cpu_unary(UnaryOp op, const Tensor& a_in, double alpha, double beta, Tensor& out) {
  const Tensor a = untransposed(a_in);
  Iter it = iter_for(out, {&a});
  const int64_t grain = heavy(op) ? kGrainHeavy : kGrainLight;
  const int64_t sx = it.step(1);
  const DType dt = a.dtype;
  if (dt == DType::f64) {
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      f64_unary_run(op, (const double*)at(a, o[1]), sx, (double*)at_mut(out, o[0]), n, alpha, beta);
    });
  } else if (dt == DType::i32) {
    // int32 add_scalar/mul_scalar wrap like the tensor arithmetic: reduce alpha mod 2³² first.
    int32_t ia = op == UnaryOp::clamp ? to_i32(alpha) : (int32_t)(uint32_t)(int64_t)alpha;
    int32_t ib = to_i32(beta);
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      i32_unary_run(op, (const int32_t*)at(a, o[1]), sx, (int32_t*)at_mut(out, o[0]), n, ia, ib);
    });
  } else {
    const F32Rows& K = f32_rows();
    const float fa = (float)alpha, fb = (float)beta;
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      const char* x = at(a, o[1]);
      char* y = at_mut(out, o[0]);
      if (dt == DType::f32 && sx == 1) return K.unary((int)op, (const float*)x, (float*)y, n, fa, fb);
      float buf[kBlock];
      const int64_t es = (int64_t)dtype_size(dt);
      for (int64_t c = 0; c < n; c += kBlock) {
        int64_t m = std::min(kBlock, n - c);
        load_f(K, dt, x + c * sx * es, sx, buf, m);
        if (dt == DType::f32) {
          K.unary((int)op, buf, (float*)y + c, m, fa, fb);
        } else {
          K.unary((int)op, buf, buf, m, fa, fb);
          store_f(K, dt, buf, y + c * es, m);
        }
      }
    });
  }
}

void cpu_binary(BinaryOp op, const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  const Tensor a = untransposed(a_in), b = untransposed(b_in);
  Iter it = iter_for(out, {&a, &b});
  const int64_t grain = op == BinaryOp::pow ? kGrainHeavy : kGrainLight;
  const int64_t sa = it.step(1), sb = it.step(2);
  const DType dt = a.dtype;
  if (dt == DType::f64) {
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      f64_binary_run(op, (const double*)at(a, o[1]), sa, (const double*)at(b, o[2]), sb, (double*)at_mut(out, o[0]), n);
    });
  } else if (dt == DType::i32) {
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      i32_binary_run(op, (const int32_t*)at(a, o[1]), sa, (const int32_t*)at(b, o[2]), sb, (int32_t*)at_mut(out, o[0]),
                     n);
    });
  } else {
    const F32Rows& K = f32_rows();
    const bool direct = dt == DType::f32 && (sa == 0 || sa == 1) && (sb == 0 || sb == 1);
    const int64_t es = (int64_t)dtype_size(dt);
    parallel_walk(it, grain, [&](const int64_t* o, int64_t n) {
      const char* pa = at(a, o[1]);
      const char* pb = at(b, o[2]);
      char* y = at_mut(out, o[0]);
      if (direct) return K.binary((int)op, (const float*)pa, (int)sa, (const float*)pb, (int)sb, (float*)y, n);
      float ba[kBlock], bb[kBlock], by[kBlock];
      for (int64_t c = 0; c < n; c += kBlock) {
        int64_t m = std::min(kBlock, n - c);
        // Each input: a float32 run used in place, one broadcast value, or a gathered block.
        const float* xa;
        int ka = 1;
        if (sa == 0) load_f(K, dt, pa, 0, ba, 1), xa = ba, ka = 0;
        else if (dt == DType::f32 && sa == 1) xa = (const float*)pa + c;
        else load_f(K, dt, pa + c * sa * es, sa, ba, m), xa = ba;
        const float* xb;
        int kb = 1;
        if (sb == 0) load_f(K, dt, pb, 0, bb, 1), xb = bb, kb = 0;
        else if (dt == DType::f32 && sb == 1) xb = (const float*)pb + c;
        else load_f(K, dt, pb + c * sb * es, sb, bb, m), xb = bb;
        if (dt == DType::f32) {
          K.binary((int)op, xa, ka, xb, kb, (float*)y + c, m);
        } else {
          K.binary((int)op, xa, ka, xb, kb, by, m);
          store_f(K, dt, by, y + c * es, m);
        }
      }
    });
  }
}

namespace {

// mask[i] = cond element i (stepping `step`) is nonzero; NaN is nonzero, ±0 is zero.
void nonzero(DType dt, const char* p, int64_t step, uint8_t* mask, int64_t n) {
  switch (dt) {
    case DType::f32: for (int64_t i = 0; i < n; i++) mask[i] = ((const float*)p)[i * step] != 0.0f; return;
    case DType::f64: for (int64_t i = 0; i < n; i++) mask[i] = ((const double*)p)[i * step] != 0.0; return;
    case DType::f16:
    case DType::bf16: for (int64_t i = 0; i < n; i++) mask[i] = (((const uint16_t*)p)[i * step] & 0x7fff) != 0; return;
    case DType::i32: for (int64_t i = 0; i < n; i++) mask[i] = ((const int32_t*)p)[i * step] != 0; return;
    case DType::u8: for (int64_t i = 0; i < n; i++) mask[i] = ((const uint8_t*)p)[i * step] != 0; return;
    case DType::u16: for (int64_t i = 0; i < n; i++) mask[i] = ((const uint16_t*)p)[i * step] != 0; return;
  }
}

// Both values read, then blended by the mask's bits: `mask[i] ? a : b` compiled to a branch, and a
// random condition mispredicted half of them (where() of [2048, 1024] took 4 ms, 20× an add).
template <class E>
void select_run(const uint8_t* mask, const E* a, int64_t sa, const E* b, int64_t sb, E* y, int64_t n) {
  const auto pick = [](uint8_t m, E va, E vb) {
    const E k = (E)0 - (E)m;  // all ones where m is 1
    return (E)((va & k) | (vb & (E)~k));
  };
  if (sa == 1 && sb == 1)
    for (int64_t i = 0; i < n; i++) y[i] = pick(mask[i], a[i], b[i]);
  else
    for (int64_t i = 0; i < n; i++) y[i] = pick(mask[i], a[i * sa], b[i * sb]);
}

}  // namespace

void cpu_where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  Iter it = iter_for(out, {&cond, &a, &b});
  const int64_t sc = it.step(1), sa = it.step(2), sb = it.step(3);
  const size_t es = dtype_size(out.dtype);
  parallel_walk(it, kGrainLight, [&](const int64_t* o, int64_t n) {
    uint8_t mask[kBlock];
    const char* pc = at(cond, o[1]);
    const char* pa = at(a, o[2]);
    const char* pb = at(b, o[3]);
    char* y = at_mut(out, o[0]);
    const int64_t ecs = (int64_t)dtype_size(cond.dtype);
    for (int64_t c = 0; c < n; c += kBlock) {
      int64_t m = std::min(kBlock, n - c);
      nonzero(cond.dtype, pc + c * sc * ecs, sc, mask, m);
      const char* xa = pa + c * sa * (int64_t)es;
      const char* xb = pb + c * sb * (int64_t)es;
      char* yc = y + c * (int64_t)es;
      switch (es) {
        case 1: select_run(mask, (const uint8_t*)xa, sa, (const uint8_t*)xb, sb, (uint8_t*)yc, m); break;
        case 2: select_run(mask, (const uint16_t*)xa, sa, (const uint16_t*)xb, sb, (uint16_t*)yc, m); break;
        case 4: select_run(mask, (const uint32_t*)xa, sa, (const uint32_t*)xb, sb, (uint32_t*)yc, m); break;
        default: select_run(mask, (const uint64_t*)xa, sa, (const uint64_t*)xb, sb, (uint64_t*)yc, m); break;
      }
    }
  });
}

void cpu_dropout(const Tensor& x, uint64_t key, uint64_t threshold, float scale, double scale64, Tensor& out) {
  const int64_t n = x.numel();
  const DType dt = x.dtype;
  const char* px = (const char*)x.raw();
  char* py = (char*)out.raw();
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    const F32Rows& K = f32_rows();
    float m[kBlock], v[kBlock];
    for (int64_t c = b; c < e; c += kBlock) {
      const int64_t k = std::min(kBlock, e - c);
      K.dropout_mask(key, (uint64_t)c, k, threshold, scale, m);
      switch (dt) {
        case DType::f32: K.binary((int)BinaryOp::mul, (const float*)px + c, 1, m, 1, (float*)py + c, k); break;
        case DType::f16:
          K.f16_to_f32((const uint16_t*)px + c, 1, v, k);
          K.binary((int)BinaryOp::mul, v, 1, m, 1, v, k);
          K.f32_to_f16(v, (uint16_t*)py + c, k);
          break;
        case DType::bf16:
          K.bf16_to_f32((const uint16_t*)px + c, 1, v, k);
          K.binary((int)BinaryOp::mul, v, 1, m, 1, v, k);
          K.f32_to_bf16(v, (uint16_t*)py + c, k);
          break;
        default:  // f64 (the ops layer passes float dtypes only)
          for (int64_t j = 0; j < k; j++) ((double*)py)[c + j] = ((const double*)px)[c + j] * (m[j] != 0.f ? scale64 : 0.0);
      }
    }
  });
}

Tensor cpu_convert(const Tensor& t, DType dt) {
  if (t.dtype == dt && t.is_contiguous()) return t;
  Tensor out = Tensor::empty(dt, t.shape, t.device());
  const bool same = t.dtype == dt;
  if (!same && !(is_f32_family(t.dtype) && is_f32_family(dt))) {
    copy_to_contiguous(t, out);
    return out;
  }
  Iter it = iter_for(out, {&t});
  if (it.numel == 0) return out;
  const int k = tile_dim(it);
  if (k >= 0) {
    if (same) {
      switch (dtype_size(dt)) {
        case 1: tiled_same<uint8_t>(it, k, t, out); break;
        case 2: tiled_same16(it, k, t, out); break;
        case 4: tiled_same32(it, k, t, out); break;
        default: tiled_same<uint64_t>(it, k, t, out); break;
      }
    } else if (dt == DType::f32) {
      auto cv = t.dtype == DType::f16 ? half_to_float : bf16_to_float;
      tiled_copy(it, k, (const uint16_t*)t.raw(), out.data<float>(), cv);
    } else if (t.dtype == DType::f32) {
      auto cv = dt == DType::f16 ? float_to_half : float_to_bf16;
      tiled_copy(it, k, t.data<float>(), (uint16_t*)out.raw(), cv);
    } else {  // float16 ↔ bfloat16
      const bool from_half = t.dtype == DType::f16;
      tiled_copy(it, k, (const uint16_t*)t.raw(), (uint16_t*)out.raw(), [from_half](uint16_t v) {
        return from_half ? float_to_bf16(half_to_float(v)) : float_to_half(bf16_to_float(v));
      });
    }
    return out;
  }
  if (same) {
    copy_to_contiguous(t, out);
    return out;
  }
  const int64_t sx = it.step(1);
  const F32Rows& K = f32_rows();
  const int64_t es = (int64_t)dtype_size(t.dtype), eo = (int64_t)dtype_size(dt);
  parallel_walk(it, kGrainLight, [&](const int64_t* o, int64_t n) {
    const char* x = at(t, o[1]);
    char* y = at_mut(out, o[0]);
    float buf[kBlock];
    for (int64_t c = 0; c < n; c += kBlock) {
      int64_t m = std::min(kBlock, n - c);
      if (dt == DType::f32) {
        load_f(K, t.dtype, x + c * sx * es, sx, (float*)y + c, m);
      } else {
        load_f(K, t.dtype, x + c * sx * es, sx, buf, m);
        store_f(K, dt, buf, y + c * eo, m);
      }
    }
  });
  return out;
}

}  // namespace structura
