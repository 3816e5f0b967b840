// ops/reduce.cc — argument checks and dispatch of the reductions (kernels: cpu/reduce.cc):
//   reduce(op, a, axes, keepDims)      sum | mean | max | min over axes (sorted, unique, in [0, ndim))
//   argReduce(op, a, axis, keepDims)   argmax | argmin along axis → int32
//   softmax(a, axis, log)              softmax or log-softmax along axis, a's shape and dtype
//   crossEntropy(logits [M, C], labels int32 [M])            → 0-d, mean over rows
//   crossEntropyBackward(logits, labels, g 0-d)              → [M, C] = (softmax − onehot)·g/M
// Single axes may be negative (counted from the end); a 0-d tensor has the one axis 0 (or −1).
#include <cmath>
#include <string>
#include <vector>

#include "cpu/reduce.h"
#include "ops/ops.h"
#include "tensor.h"

namespace structura {

namespace {

// Float dtypes everywhere; int32 where the result is exact (sum, max, min, argmax, argmin).
void check_dtype(Napi::Env env, const std::string& op, const Tensor& t, const char* arg, bool int_ok) {
  if (is_floating(t.dtype)) return;
  if (t.dtype == DType::i32 && int_ok) return;
  throw_type(env, "structura." + op + ": '" + arg + "' is " + dtype_name(t.dtype) + ", which " + op +
                      " does not support; cast it to a float dtype" + (int_ok && t.dtype != DType::i32 ? " or int32" : "") +
                      " first");
}

// axes: an array of integers, strictly increasing, each in [0, ndim).
std::vector<int64_t> get_axes(const Napi::CallbackInfo& info, size_t i, const std::string& op, const Shape& shape) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsArray())
    throw_type(env, "structura." + op + ": 'axes' must be an array of integers");
  Napi::Array arr = info[i].As<Napi::Array>();
  const uint32_t n = arr.Length();
  const int64_t nd = (int64_t)shape.size();
  if (n > (uint32_t)nd)
    throw_range(env, "structura." + op + ": 'axes' has " + std::to_string(n) + " entries but the tensor of shape " +
                         shape_str(shape) + " has " + std::to_string(nd) + " dimensions");
  std::vector<int64_t> axes;
  for (uint32_t k = 0; k < n; k++) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw_type(env, "structura." + op + ": 'axes' must be an array of integers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d < (double)nd && d == std::floor(d)))
      throw_range(env, "structura." + op + ": 'axes[" + std::to_string(k) + "]' = " + std::to_string(d) +
                           " is not an axis of shape " + shape_str(shape) + " (expected an integer in [0, " +
                           std::to_string(nd) + "))");
    if (!axes.empty() && (int64_t)d <= axes.back())
      throw_range(env, "structura." + op + ": 'axes' must be sorted and unique, got axes[" + std::to_string(k) +
                           "] = " + std::to_string((int64_t)d) + " after " + std::to_string(axes.back()));
    axes.push_back((int64_t)d);
  }
  return axes;
}

// One axis in [−ndim, ndim), normalised; a 0-d tensor accepts 0 and −1.
int64_t get_axis(const Napi::CallbackInfo& info, size_t i, const std::string& op, const Shape& shape) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) throw_type(env, "structura." + op + ": 'axis' must be an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  const int64_t nd = std::max<int64_t>((int64_t)shape.size(), 1);
  if (!(d >= -(double)nd && d < (double)nd && d == std::floor(d)))
    throw_range(env, "structura." + op + ": 'axis' = " + std::to_string(d) + " is not an axis of shape " +
                         shape_str(shape) + " (expected an integer in [" + std::to_string(-nd) + ", " +
                         std::to_string(nd) + "))");
  int64_t a = (int64_t)d;
  return a < 0 ? a + nd : a;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& axes, bool keep) {
  Shape out;
  size_t k = 0;
  for (int64_t d = 0; d < (int64_t)shape.size(); d++) {
    bool red = k < axes.size() && axes[k] == d;
    if (red) k++;
    if (!red) out.push_back(shape[d]);
    else if (keep) out.push_back(1);
  }
  return out;
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = get_string(info, 0, "op");
  ReduceOp op;
  if (name == "sum") op = ReduceOp::sum;
  else if (name == "mean") op = ReduceOp::mean;
  else if (name == "max") op = ReduceOp::max;
  else if (name == "min") op = ReduceOp::min;
  else throw_range(env, "structura.reduce: 'op' must be one of sum, mean, max, min, got '" + name + "'");
  Tensor a = unwrap(info[1], "a");
  require_cpu(env, a, name.c_str(), "a");
  check_dtype(env, name, a, "a", op != ReduceOp::mean);
  std::vector<int64_t> axes = get_axes(info, 2, name, a.shape);
  bool keep = get_bool(info, 3, "keepDims");
  if (op == ReduceOp::max || op == ReduceOp::min)
    for (auto ax : axes)
      if (a.shape[ax] == 0)
        throw_range(env, "structura." + name + ": cannot reduce over axis " + std::to_string(ax) + " of size 0 (shape " +
                             shape_str(a.shape) + "): the " + name + " of no elements is undefined");
  return wrap(env, cpu_reduce(op, a, axes, reduced_shape(a.shape, axes, keep)));
}

Napi::Value ArgReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = get_string(info, 0, "op");
  if (name != "argmax" && name != "argmin")
    throw_range(env, "structura.argReduce: 'op' must be 'argmax' or 'argmin', got '" + name + "'");
  Tensor a = unwrap(info[1], "a");
  require_cpu(env, a, name.c_str(), "a");
  check_dtype(env, name, a, "a", true);
  int64_t axis = get_axis(info, 2, name, a.shape);
  bool keep = get_bool(info, 3, "keepDims");
  if (a.ndim() > 0 && a.shape[axis] == 0)
    throw_range(env, "structura." + name + ": axis " + std::to_string(axis) + " of shape " + shape_str(a.shape) +
                         " is empty; there is no index to return");
  if (a.ndim() > 0 && a.shape[axis] > (int64_t)INT32_MAX)
    throw_range(env, "structura." + name + ": axis " + std::to_string(axis) + " of shape " + shape_str(a.shape) +
                         " is longer than an int32 index can count");
  Shape out_shape = a.ndim() == 0 ? Shape{} : reduced_shape(a.shape, {axis}, keep);
  return wrap(env, cpu_arg_reduce(name == "argmax", a, axis, out_shape));
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor a = unwrap(info[0], "a");
  require_cpu(env, a, "softmax", "a");
  require_floating(env, a, "softmax", "a");
  int64_t axis = get_axis(info, 1, "softmax", a.shape);
  bool log = get_bool(info, 2, "log");
  return wrap(env, cpu_softmax(a, axis, log));
}

// logits [M, C] (float), labels int32 [M] with every label in [0, C): returns the labels, contiguous.
Tensor check_cross_entropy(const Napi::CallbackInfo& info, const char* op, Tensor& logits) {
  Napi::Env env = info.Env();
  logits = unwrap(info[0], "logits");
  Tensor labels = unwrap(info[1], "labels");
  require_cpu(env, logits, op, "logits");
  require_same_device(env, logits, labels, op);
  require_floating(env, logits, op, "logits");
  require_dtype(env, labels, DType::i32, op, "labels");
  if (logits.ndim() != 2)
    throw_range(env, std::string("structura.") + op + ": 'logits' must be 2-D [M, C], got shape " +
                         shape_str(logits.shape));
  if (labels.ndim() != 1 || labels.shape[0] != logits.shape[0])
    throw_range(env, std::string("structura.") + op + ": 'labels' must have shape [" + std::to_string(logits.shape[0]) +
                         "] to match 'logits' " + shape_str(logits.shape) + ", got " + shape_str(labels.shape));
  Tensor lab = contiguous(labels);
  const int32_t* l = lab.data<int32_t>();
  const int64_t C = logits.shape[1];
  for (int64_t m = 0; m < logits.shape[0]; m++)
    if (l[m] < 0 || l[m] >= C)
      throw_range(env, std::string("structura.") + op + ": labels[" + std::to_string(m) + "] = " + std::to_string(l[m]) +
                           " is not a class index in [0, " + std::to_string(C) + ") (row " + std::to_string(m) +
                           " of 'logits' " + shape_str(logits.shape) + ")");
  return lab;
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor logits;
  Tensor labels = check_cross_entropy(info, "crossEntropy", logits);
  double loss = cpu_cross_entropy(logits, labels.data<int32_t>());
  Tensor out = Tensor::empty(logits.dtype, {}, logits.device());
  store_from_double(out.raw(), out.dtype, 0, loss);
  return wrap(env, std::move(out));
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor logits;
  Tensor labels = check_cross_entropy(info, "crossEntropyBackward", logits);
  Tensor g = unwrap(info[2], "g");
  require_same_device(env, logits, g, "crossEntropyBackward");
  require_floating(env, g, "crossEntropyBackward", "g");
  if (g.numel() != 1)
    throw_range(env, "structura.crossEntropyBackward: 'g' must be a 0-d tensor (one element), got shape " +
                         shape_str(g.shape));
  double gv = load_as_double(g.raw(), g.dtype, 0);
  return wrap(env, cpu_cross_entropy_backward(logits, labels.data<int32_t>(), gv));
}

}  // namespace

void register_reduce(Napi::Env env, Napi::Object exports) {
  exports.Set("reduce", Napi::Function::New(env, Reduce, "reduce"));
  exports.Set("argReduce", Napi::Function::New(env, ArgReduce, "argReduce"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward, "crossEntropyBackward"));
}

}  // namespace structura
