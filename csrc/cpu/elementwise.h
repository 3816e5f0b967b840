// elementwise.h — CPU elementwise kernels (csrc/cpu/elementwise.cc): unary ops, numpy-broadcasting
// binary ops and where(), on inputs of any strides, writing a contiguous output. Also the float32
// row kernels of the SIMD level in use (csrc/cpu/elementwise_rows.inc), which the reductions,
// softmax and cross-entropy of csrc/cpu/reduce.cc share.
//
// dtypes: float32 and float64 natively; float16 and bfloat16 computed in float32 and rounded once
// on store; int32 for the ops int32_ok() accepts (wrapping arithmetic, as PyTorch). The ops layer
// (csrc/ops/elementwise.cc) checks everything before calling in here.
#pragma once
#include <cstdint>

#include "splitmix.h"
#include "tensor.h"

namespace structura {

// The counter-based generator's mixer (rand / randn: ops/creation.cc; dropout: ops/elementwise.cc), the
// device's own definition (cuda/splitmix.h).
inline uint64_t splitmix64(uint64_t x) { return structura_splitmix64(x); }

// The order is internal (names are the contract, lib/native.ts UnaryOp / BinaryOp).
enum class UnaryOp : int {
  neg, exp, log, sqrt, rsqrt, abs, relu, gelu, silu, tanh, sigmoid, square, reciprocal, sign, step, erf, sin, cos,
  gelu_grad, silu_grad,
  add_scalar, mul_scalar, pow_scalar, rsub_scalar, rdiv_scalar, clamp,
  count
};
enum class BinaryOp : int { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, count };

const char* op_name(UnaryOp op);
const char* op_name(BinaryOp op);
// Looks up a name; false if there is no such op.
bool parse_op(const std::string& name, UnaryOp& op);
bool parse_op(const std::string& name, BinaryOp& op);
// Number of scalar arguments (alpha, beta) the op reads: 0, 1 or 2 (clamp).
int scalar_args(UnaryOp op);
// Ops defined on int32 tensors (the rest need a float dtype).
bool int32_ok(UnaryOp op);
bool int32_ok(BinaryOp op);

// out is contiguous, of the (broadcast) shape and of the inputs' dtype. An input may be exactly out
// (same storage, offset and shape, contiguous) but must not otherwise overlap it.
void cpu_unary(UnaryOp op, const Tensor& a, double alpha, double beta, Tensor& out);
void cpu_binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
// out = cond != 0 ? a : b (cond of any dtype; NaN counts as nonzero).
void cpu_where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);
// Dropout, x and out contiguous of one float dtype: out[i] = x[i]·scale where element i is kept, x[i]·0
// where not (f32_rows().dropout_mask; float16 / bfloat16 in float32, float64 with scale64).
void cpu_dropout(const Tensor& x, uint64_t key, uint64_t threshold, float scale, double scale64, Tensor& out);
// t as a contiguous tensor of dtype dt: t itself if it already is one, else a converted copy.
Tensor cpu_convert(const Tensor& t, DType dt);

// Float32 row kernels; n elements, contiguous unless a step argument says otherwise.
struct F32Rows {
  void (*unary)(int op, const float* x, float* y, int64_t n, float alpha, float beta);  // y may be x
  // a and b: steps 1 (a run) or 0 (one value broadcast); y may be a or b
  void (*binary)(int op, const float* a, int sa, const float* b, int sb, float* y, int64_t n);
  double (*sum)(const float* x, int64_t n);  // accumulated in double
  // out[r] = sum(x + r·ld, n) for r < rows (the same bits), two rows read side by side
  void (*sum_rows)(const float* x, int64_t ld, int64_t rows, int64_t n, double* out);
  double (*sqdiff_sum)(const float* a, const float* b, int64_t n);  // Σ (a − b)², accumulated in double
  float (*minmax)(const float* x, int64_t n, bool is_max);  // NaN if any NaN; ∓inf if n = 0
  void (*col_sum)(const float* x, int64_t ld, int64_t rows, double* acc, int64_t n);  // acc[i] += Σ_r x[r·ld + i]
  void (*col_minmax)(const float* x, float* acc, int64_t n, bool is_max);
  // Σ exp(x[i] − shift) in double, storing exp(x[i] − shift) to y unless y is null
  double (*exp_sum)(const float* x, float* y, int64_t n, float shift);
  // y[i] = (double)y[i]·scale − spread·w[i] (w[i]: doubles; no such term when w is null), in double and
  // rounded once to float, subnormals kept even under the pool's optional FTZ (double_to_float_exact); the same bits at
  // every SIMD level (the weighted cross-entropy gradient)
  void (*scale_sub)(float* y, int64_t n, double scale, double spread, const double* w);
  // out[j] = Σ_i w[i]·(l[j] − (double)x[j][i]) for rows ≤ 8 rows x[j], each summed in order over i (a
  // scalar loop's bits), the rows side by side (the weighted cross-entropy's label-smoothing sums)
  void (*wspread)(const float* const* x, int rows, int64_t n, const double* w, const double* l, double* out);
  // softmax / log-softmax down n ≤ 256 columns of x [R, I] (row stride I) into y (same layout)
  void (*softmax_cols)(const float* x, float* y, int64_t R, int64_t I, int64_t n, bool log);
  // index of the first max (min) of x[0, n), n ≥ 1, or of the first NaN
  int64_t (*argminmax)(const float* x, int64_t n, bool is_max);
  void (*f16_to_f32)(const uint16_t* x, int64_t step, float* y, int64_t n);
  void (*f32_to_f16)(const float* x, uint16_t* y, int64_t n);
  void (*bf16_to_f32)(const uint16_t* x, int64_t step, float* y, int64_t n);
  void (*f32_to_bf16)(const float* x, uint16_t* y, int64_t n);
  // dst[i·ld + j] = src[j·ls + i] for i < rows, j < cols: a transpose of 4-byte elements
  void (*transpose32)(const uint32_t* src, int64_t ls, uint32_t* dst, int64_t ld, int64_t rows, int64_t cols);
  // out[j] = draw i0 + j of the counter-based stream of key = splitmix64(seed) (ops/creation.cc), normal
  // (Box–Muller) or uniform in (0, 1); the same bits at every SIMD level
  void (*random)(uint64_t key, uint64_t i0, int64_t n, bool normal, double* out);
  // m[j] = draw i0 + j of that stream is kept ((h >> 11) ≥ threshold: its uniform value ≥ dropout's p)
  // ? scale : 0, the same bits at every SIMD level
  void (*dropout_mask)(uint64_t key, uint64_t i0, int64_t n, uint64_t threshold, float scale, float* m);
};
// The kernels of simd_level() (checked on each call, so setSimd takes effect at once).
const F32Rows& f32_rows();

}  // namespace structura
