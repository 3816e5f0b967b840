// reduce.h — CPU reductions, arg-reductions, softmax and cross-entropy (csrc/cpu/reduce.cc).
// Inputs are views of any strides; results are fresh contiguous tensors. The ops layer
// (csrc/ops/reduce.cc) has checked dtypes, axes and labels before anything here runs.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor.h"

namespace structura {

enum class ReduceOp : int { sum, mean, max, min };

// Reduces a over `axes` (sorted, unique, in range) into a tensor of shape out_shape (keepDims or
// not: only the element count matters) and a's dtype. sum and mean of float32, float16 and bfloat16
// accumulate in double; int32 sums in int64 and wrap to int32 on store. max/min propagate NaN.
// An empty reduction gives 0 (sum), NaN (mean); max/min over nothing must be rejected by the caller.
Tensor cpu_reduce(ReduceOp op, const Tensor& a, const std::vector<int64_t>& axes, const Shape& out_shape);
// Index (int32) of the first max (or min) along `axis` (size ≥ 1); NaN counts as the extreme.
Tensor cpu_arg_reduce(bool is_max, const Tensor& a, int64_t axis, const Shape& out_shape);
// softmax (or log-softmax) along axis, numerically stable (the max is subtracted first).
Tensor cpu_softmax(const Tensor& a, int64_t axis, bool log);
// logits [M, C] (float dtype), labels[M] ∈ [0, C) or == ignore: rows[m] = logsumexp(row) −
// (1 − eps)·row[label] − eps·mean(row), in double; 0 for an ignored row. With class weights w
// (double [C], or null): (1 − eps)·w[label]·(lse − row[label]) + eps/C·Σ_c w[c]·(lse − row[c]).
void cpu_cross_entropy_rows(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps, double* rows,
                            const double* weight = nullptr);
// mean((pred − target)²) of two contiguous float32 or float64 tensors of n elements (NaN for n = 0):
// fixed chunks on the pool, their double sums added in order (the same result on any thread count).
double cpu_mse(const Tensor& pred, const Tensor& target);
// Row m: (softmax(row) − (1 − eps)·onehot(label) − eps/C)·g_m, of the logits' dtype; 0 for an
// ignored row. g_m = g_rows[m] when g_rows is given (double, [M]), else g. With class weights w
// (double [C], weight_sum = Σ w): (a·softmax(row) − (1 − eps)·w[label]·onehot(label) − eps/C·w)·g_m,
// a = (1 − eps)·w[label] + eps/C·weight_sum.
Tensor cpu_cross_entropy_backward(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps, double g,
                                  const double* g_rows, const double* weight = nullptr, double weight_sum = 0);

}  // namespace structura
