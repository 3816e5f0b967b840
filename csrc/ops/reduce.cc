// ops/reduce.cc — argument checks and dispatch of the reductions (kernels: cpu/reduce.cc; on cuda and
// cuda-emu cuda/reduce.cu):
//   reduce(op, a, axes, keepDims)      sum | mean | max | min over axes (sorted, unique, in [0, ndim))
//   argReduce(op, a, axis, keepDims)   argmax | argmin along axis → int32
//   softmax(a, axis, log)              softmax or log-softmax along axis, a's shape and dtype
//   crossEntropy(logits [M, C], labels int32 [M], ignoreIndex, smoothing, reduction, weight [C])
//       reduction 0 mean (over the rows not ignored) | 1 sum → 0-d; 2 none → [M], a loss per row
//   crossEntropyBackward(logits, labels, g, ignoreIndex, smoothing, reduction, weight)
//       g 0-d (mean, sum) or [M] (none) → [M, C] = (softmax − (1 − s)·onehot − s/C)·g_row
//   mseLoss(pred, target)   CPU float32 / float64 only       → 0-d, mean((pred − target)²) in one pass
// Single axes may be negative (counted from the end); a 0-d tensor has the one axis 0 (or −1).
#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/reduce.h"
#include "cuda_abi.h"
#include "device.h"
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

// ---- the device paths (cuda/reduce.cu) ----------------------------------------------------------

// Dimensions `dims` of t (shape, and strides per operand) collapsed; false if more than the kernels'
// STRUCTURA_MAX_DIMS remain.
bool plan(const Shape& shape, const std::vector<Shape>& strides, Shape& cs, std::vector<Shape>& cst) {
  collapse_dims(shape, strides, cs, cst);
  return cs.size() <= STRUCTURA_MAX_DIMS;
}

Tensor device_reduce(Napi::Env env, const std::string& name, ReduceOp op, const Tensor& a,
                     const std::vector<int64_t>& axes, const Shape& out_shape) {
  const Device dev = a.device();
  Tensor out = Tensor::empty(a.dtype, out_shape, dev);
  if (out.numel() == 0) return out;
  Shape ks, kst, rs, rst;
  std::vector<bool> red(a.ndim(), false);
  for (auto ax : axes) red[ax] = true;
  for (int64_t d = 0; d < a.ndim(); d++) {
    (red[d] ? rs : ks).push_back(a.shape[d]);
    (red[d] ? rst : kst).push_back(a.strides[d]);
  }
  Shape cks, crs;
  std::vector<Shape> ckst, crst;
  if (!plan(ks, {kst}, cks, ckst) || !plan(rs, {rst}, crs, crst)) {
    // More dimensions than one launch walks: the CPU's result, moved over.
    Tensor r = cpu_reduce(op, to_device(a, Device{}), axes, out_shape);
    return to_device(r, dev);
  }
  structura_reduce_params p{};
  p.out = out.raw();
  p.a = a.raw();
  p.op = (int)op;
  p.dtype = (int)a.dtype;
  p.ondim = (int)cks.size();
  p.rndim = (int)crs.size();
  p.n_out = out.numel();
  p.count = 1;
  for (auto d : rs) p.count *= d;
  for (size_t d = 0; d < cks.size(); d++) p.oshape[d] = cks[d], p.ostrides[d] = ckst[0][d];
  for (size_t d = 0; d < crs.size(); d++) p.rshape[d] = crs[d], p.rstrides[d] = crst[0][d];
  // Few long rows: cut each into pieces of ≥ 16K elements (≤ 1024 of them), a block each, so that a
  // full reduction of a large tensor is not one block's work; the partial results live in `partial`
  // (freed stream-ordered, after the second kernel).
  // Few wide columns (structura_reduce_is_columns): pieces so that about 256 blocks share the work.
  p.splits = 1;
  if (structura_reduce_is_columns(&p)) p.splits = structura_reduce_column_splits(&p);
  else if (p.n_out < 512 && p.count >= (int64_t(1) << 16)) p.splits = std::min<int64_t>(1024, p.count >> 14);
  Tensor partial;
  if (p.splits > 1) {
    partial = Tensor::empty(DType::f64, {p.n_out * p.splits}, dev);
    p.partial = partial.raw();
  }
  static_assert((int)ReduceOp::sum == STRUCTURA_RED_SUM && (int)ReduceOp::mean == STRUCTURA_RED_MEAN &&
                    (int)ReduceOp::max == STRUCTURA_RED_MAX && (int)ReduceOp::min == STRUCTURA_RED_MIN,
                "ReduceOp = structura_reduce_op");
  device_launch(env, name.c_str(), dev, [&](bool emu) { return STRUCTURA_KERNEL(reduce, emu, &p, nullptr); });
  return out;
}

Tensor device_softmax(Napi::Env env, const Tensor& a, int64_t axis, bool log) {
  const Device dev = a.device();
  Tensor out = Tensor::empty(a.dtype, a.shape, dev);
  if (out.numel() == 0) return out;
  Shape ks, kst, ko;
  for (int64_t d = 0; d < a.ndim(); d++)
    if (d != axis) ks.push_back(a.shape[d]), kst.push_back(a.strides[d]), ko.push_back(out.strides[d]);
  Shape cks;
  std::vector<Shape> cst;
  if (!plan(ks, {kst, ko}, cks, cst)) return to_device(cpu_softmax(to_device(a, Device{}), axis, log), dev);
  structura_softmax_params p{};
  p.out = out.raw();
  p.a = a.raw();
  p.dtype = (int)a.dtype;
  p.log = log ? 1 : 0;
  p.ondim = (int)cks.size();
  p.rows = 1;
  for (auto d : ks) p.rows *= d;
  p.len = a.ndim() ? a.shape[axis] : 1;
  p.stride = a.ndim() ? a.strides[axis] : 0;
  p.out_stride = a.ndim() ? out.strides[axis] : 0;
  for (size_t d = 0; d < cks.size(); d++) p.oshape[d] = cks[d], p.ostrides[d] = cst[0][d], p.out_ostrides[d] = cst[1][d];
  device_launch(env, log ? "logSoftmax" : "softmax", dev, [&](bool emu) { return STRUCTURA_KERNEL(softmax, emu, &p, nullptr); });
  return out;
}

Tensor device_arg_reduce(Napi::Env env, const std::string& name, const Tensor& a, int64_t axis, const Shape& out_shape) {
  const Device dev = a.device();
  Tensor out = Tensor::empty(DType::i32, out_shape, dev);
  if (out.numel() == 0) return out;
  Shape ks, kst;
  for (int64_t d = 0; d < a.ndim(); d++)
    if (d != axis) ks.push_back(a.shape[d]), kst.push_back(a.strides[d]);
  Shape cks;
  std::vector<Shape> cst;
  if (!plan(ks, {kst}, cks, cst))
    return to_device(cpu_arg_reduce(name == "argmax", to_device(a, Device{}), axis, out_shape), dev);
  structura_arg_reduce_params p{};
  p.out = out.data<int32_t>();
  p.a = a.raw();
  p.dtype = (int)a.dtype;
  p.is_max = name == "argmax" ? 1 : 0;
  p.ondim = (int)cks.size();
  p.rows = out.numel();
  p.len = a.ndim() ? a.shape[axis] : 1;
  p.stride = a.ndim() ? a.strides[axis] : 0;
  for (size_t d = 0; d < cks.size(); d++) p.oshape[d] = cks[d], p.ostrides[d] = cst[0][d];
  device_launch(env, name.c_str(), dev, [&](bool emu) { return STRUCTURA_KERNEL(arg_reduce, emu, &p, nullptr); });
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
  check_dtype(env, name, a, "x", op != ReduceOp::mean);  // the public functions call it x
  std::vector<int64_t> axes = get_axes(info, 2, name, a.shape);
  bool keep = get_bool(info, 3, "keepDims");
  if (op == ReduceOp::max || op == ReduceOp::min)
    for (auto ax : axes)
      if (a.shape[ax] == 0)
        throw_range(env, "structura." + name + ": cannot reduce over axis " + std::to_string(ax) + " of size 0 (shape " +
                             shape_str(a.shape) + "): the " + name + " of no elements is undefined");
  const Shape out_shape = reduced_shape(a.shape, axes, keep);
  check_result_size(env, name, out_shape);  // an empty a ([0, 2^40, 2^40]) can reduce to a huge result
  if (a.device().type != DeviceType::cpu) return wrap(env, device_reduce(env, name, op, a, axes, out_shape));
  return wrap(env, cpu_reduce(op, a, axes, out_shape));
}

Napi::Value ArgReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = get_string(info, 0, "op");
  if (name != "argmax" && name != "argmin")
    throw_range(env, "structura.argReduce: 'op' must be 'argmax' or 'argmin', got '" + name + "'");
  Tensor a = unwrap(info[1], "a");
  check_dtype(env, name, a, "x", true);
  int64_t axis = get_axis(info, 2, name, a.shape);
  bool keep = get_bool(info, 3, "keepDims");
  if (a.ndim() > 0 && a.shape[axis] == 0)
    throw_range(env, "structura." + name + ": axis " + std::to_string(axis) + " of shape " + shape_str(a.shape) +
                         " is empty; there is no index to return");
  if (a.ndim() > 0 && a.shape[axis] > (int64_t)INT32_MAX)
    throw_range(env, "structura." + name + ": axis " + std::to_string(axis) + " of shape " + shape_str(a.shape) +
                         " is longer than an int32 index can count");
  Shape out_shape = a.ndim() == 0 ? Shape{} : reduced_shape(a.shape, {axis}, keep);
  check_result_size(env, name, out_shape);
  if (a.device().type != DeviceType::cpu) return wrap(env, device_arg_reduce(env, name, a, axis, out_shape));
  return wrap(env, cpu_arg_reduce(name == "argmax", a, axis, out_shape));
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor a = unwrap(info[0], "a");
  require_floating(env, a, "softmax", "a");
  int64_t axis = get_axis(info, 1, "softmax", a.shape);
  bool log = get_bool(info, 2, "log");
  if (a.device().type != DeviceType::cpu) return wrap(env, device_softmax(env, a, axis, log));
  return wrap(env, cpu_softmax(a, axis, log));
}

// The options both take after their tensors, from argument `i` on, each optional: ignoreIndex (an
// int32; absent: none), smoothing in [0, 1] (0), reduction 0 mean / 1 sum / 2 none (mean).
struct CeOptions {
  bool has_ignore = false;
  int32_t ignore = INT32_MIN;  // the kernels' value when none: every label was checked to be in [0, C)
  double eps = 0;
  int reduction = STRUCTURA_CE_MEAN;
};
bool arg_absent(const Napi::CallbackInfo& info, size_t i) { return info.Length() <= i || info[i].IsUndefined(); }
CeOptions ce_options(const Napi::CallbackInfo& info, size_t i, const char* op) {
  CeOptions o;
  if (!arg_absent(info, i)) o.ignore = (int32_t)get_int(info, i, "ignoreIndex", INT32_MIN, INT32_MAX), o.has_ignore = true;
  if (!arg_absent(info, i + 1)) o.eps = get_number(info, i + 1, "smoothing");
  if (!(o.eps >= 0 && o.eps <= 1))
    throw_range(info.Env(), std::string("structura.") + op + ": 'smoothing' must be in [0, 1], got " + std::to_string(o.eps));
  if (!arg_absent(info, i + 2)) o.reduction = (int)get_int(info, i + 2, "reduction", STRUCTURA_CE_MEAN, STRUCTURA_CE_NONE);
  return o;
}

// Class weights (argument `i`, optional): a tensor [C] of the logits' dtype and device, held as doubles
// on the host (the CPU kernels; the mean's divisor) and, for logits on a device, there too.
struct CeWeight {
  Tensor host, dev;  // float64 [C], contiguous; both without storage when there are no weights
  double sum = 0;
  bool any() const { return host.storage != nullptr; }
  const double* host_ptr() const { return any() ? host.data<double>() : nullptr; }
  const double* dev_ptr() const { return dev.storage ? dev.data<double>() : nullptr; }
};
CeWeight ce_weight(const Napi::CallbackInfo& info, size_t i, const char* op, const Tensor& logits) {
  CeWeight w;
  if (arg_absent(info, i) || info[i].IsNull()) return w;
  Napi::Env env = info.Env();
  const Tensor t = unwrap(info[i], "weight");
  require_same_device(env, logits, "logits", t, "weight", op);
  if (t.dtype != logits.dtype)
    throw_type(env, std::string("structura.") + op + ": 'weight' is " + dtype_name(t.dtype) + " but 'logits' is " +
                        dtype_name(logits.dtype));
  if (t.ndim() != 1 || t.shape[0] != logits.shape[1])
    throw_range(env, std::string("structura.") + op + ": 'weight' must have shape [" + std::to_string(logits.shape[1]) +
                         "] (one weight a class) to match 'logits' " + shape_str(logits.shape) + ", got " +
                         shape_str(t.shape));
  // read within this call only (the CPU kernels are synchronous), so it may be the caller's own storage
  w.host = cast_contiguous(t.device().type == DeviceType::cpu ? t : to_device(t, Device{}), DType::f64);
  for (int64_t c = 0; c < w.host.numel(); c++) w.sum += w.host.data<double>()[c];
  if (t.device().type != DeviceType::cpu) w.dev = to_device(w.host, t.device());
  return w;
}

// logits [M, C] (float), labels int32 [M] with every label in [0, C) or the ignored index: returns
// the labels, contiguous, on the host (a device's labels are read back to be checked), and in *kept
// the number of rows not ignored; `dev_labels`, for logits on a device, gets them contiguous there.
Tensor check_cross_entropy(const Napi::CallbackInfo& info, const char* op, Tensor& logits, Tensor& dev_labels,
                           const CeOptions& o, int64_t* kept) {
  Napi::Env env = info.Env();
  logits = unwrap(info[0], "logits");
  Tensor labels = unwrap(info[1], "labels");
  require_same_device(env, logits, "logits", labels, "labels", op);
  require_floating(env, logits, op, "logits");
  require_dtype(env, labels, DType::i32, op, "labels");
  if (logits.ndim() != 2)
    throw_range(env, std::string("structura.") + op + ": 'logits' must be 2-D [M, C], got shape " +
                         shape_str(logits.shape));
  if (labels.ndim() != 1 || labels.shape[0] != logits.shape[0])
    throw_range(env, std::string("structura.") + op + ": 'labels' must have shape [" + std::to_string(logits.shape[0]) +
                         "] to match 'logits' " + shape_str(logits.shape) + ", got " + shape_str(labels.shape));
  Tensor lab;
  if (labels.device().type == DeviceType::cpu) {
    lab = contiguous(labels);
  } else {
    lab = to_device(labels, Device{});
    dev_labels = contiguous(labels);
  }
  const int32_t* l = lab.data<int32_t>();
  const int64_t C = logits.shape[1];
  if (C == 0 && logits.shape[0] > 0)
    throw_range(env, std::string("structura.") + op + ": 'logits' " + shape_str(logits.shape) + " has no classes");
  *kept = 0;
  for (int64_t m = 0; m < logits.shape[0]; m++) {
    if (o.has_ignore && l[m] == o.ignore) continue;
    if (l[m] < 0 || l[m] >= C)
      throw_range(env, std::string("structura.") + op + ": labels[" + std::to_string(m) + "] = " + std::to_string(l[m]) +
                           " is not a class index in [0, " + std::to_string(C) + ") (row " + std::to_string(m) +
                           " of 'logits' " + shape_str(logits.shape) + ")" +
                           (o.has_ignore ? " nor the ignored index " + std::to_string(o.ignore) : std::string()));
    ++*kept;
  }
  return lab;
}

// The mean's divisor: the rows not ignored, or with weights the sum of their labels' weights (PyTorch's).
double mean_divisor(const Tensor& labels, const CeOptions& o, const CeWeight& w, int64_t kept) {
  if (!w.any()) return (double)kept;
  const int32_t* l = labels.data<int32_t>();
  double d = 0;
  for (int64_t m = 0; m < labels.numel(); m++)
    if (!(o.has_ignore && l[m] == o.ignore)) d += w.host.data<double>()[l[m]];
  return d;
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CeOptions o = ce_options(info, 2, "crossEntropy");
  Tensor logits, dev_labels;
  int64_t kept = 0;
  Tensor labels = check_cross_entropy(info, "crossEntropy", logits, dev_labels, o, &kept);
  const CeWeight w = ce_weight(info, 5, "crossEntropy", logits);
  const double divisor = mean_divisor(labels, o, w, kept);
  const int64_t M = logits.shape[0];
  const bool none = o.reduction == STRUCTURA_CE_NONE;
  Tensor out = Tensor::empty(logits.dtype, none ? Shape{M} : Shape{}, logits.device());
  if (logits.device().type != DeviceType::cpu) {
    const Device dev = logits.device();
    Tensor row_loss = Tensor::empty(DType::f64, {none ? 0 : M}, dev);  // scratch: freed stream-ordered
    structura_cross_entropy_params p{};
    p.loss = out.numel() ? out.raw() : nullptr;
    p.row_loss = row_loss.numel() ? row_loss.data<double>() : nullptr;
    p.logits = logits.raw();
    p.labels = dev_labels.numel() ? dev_labels.data<int32_t>() : nullptr;
    p.dtype = (int)logits.dtype;
    p.reduction = o.reduction;
    p.ignore_index = o.ignore;
    p.smoothing = o.eps;
    p.divisor = divisor;
    p.weight = w.dev_ptr();
    p.weight_sum = w.sum;
    p.m = M;
    p.c = logits.shape[1];
    p.ld = logits.strides[0];
    p.ldc = logits.strides[1];
    device_launch(env, "crossEntropy", dev, [&](bool emu) { return STRUCTURA_KERNEL(cross_entropy, emu, &p, nullptr); });
    return wrap(env, std::move(out));
  }
  std::vector<double> rows((size_t)M);
  cpu_cross_entropy_rows(logits, labels.data<int32_t>(), o.ignore, o.eps, rows.data(), w.host_ptr());
  if (none) {
    for (int64_t m = 0; m < M; m++) store_from_double(out.raw(), out.dtype, m, rows[m]);
  } else {
    double total = 0;
    for (double l : rows) total += l;
    // mean over the rows not ignored, or by the sum of their weights: no row kept (or only weights 0)
    // is NaN, torch's 0 / 0 (a quiet NaN of fixed bits, the devices' too); kept weights that cancel to 0
    // under a loss that does not give ±inf, as torch; sum of no rows is 0. With label smoothing torch
    // divides its two parts by the weight sum apart, and the label part's 0 / 0 makes it NaN (the sum
    // would have been ±inf)
    const double v = o.reduction == STRUCTURA_CE_SUM ? total
                     : divisor == 0 && (total == 0 || o.eps != 0) ? std::nan("") : total / divisor;
    store_from_double(out.raw(), out.dtype, 0, v);
  }
  return wrap(env, std::move(out));
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CeOptions o = ce_options(info, 3, "crossEntropyBackward");
  Tensor logits, dev_labels;
  int64_t kept = 0;
  Tensor labels = check_cross_entropy(info, "crossEntropyBackward", logits, dev_labels, o, &kept);
  const CeWeight w = ce_weight(info, 6, "crossEntropyBackward", logits);
  const double divisor = mean_divisor(labels, o, w, kept);
  Tensor g = unwrap(info[2], "g");
  require_same_device(env, logits, "logits", g, "g", "crossEntropyBackward");
  const int64_t M = logits.shape[0];
  const bool none = o.reduction == STRUCTURA_CE_NONE;
  if (g.dtype != logits.dtype)
    throw_type(env, std::string("structura.crossEntropyBackward: 'g' is ") + dtype_name(g.dtype) + " but 'logits' is " +
                        dtype_name(logits.dtype));
  if (none ? (g.ndim() != 1 || g.shape[0] != M) : g.ndim() != 0)
    throw_range(env, "structura.crossEntropyBackward: 'g' must be " + std::string(none ? "[" + std::to_string(M) + "]" : "0-d") +
                         " for this reduction, got shape " + shape_str(g.shape));
  // mean: every row's share is g / divisor (the rows not ignored, or their labels' weights)
  // 1 / 0 = inf when no row is kept: those rows' gradients are written as 0 without it; kept weights
  // that cancel to 0 give inf and NaN gradients, as torch's
  const double per = o.reduction == STRUCTURA_CE_MEAN ? 1.0 / divisor : 1.0;
  if (logits.device().type != DeviceType::cpu) {
    const Device dev = logits.device();
    Tensor out = Tensor::empty(logits.dtype, logits.shape, dev);
    Tensor gc = none ? contiguous(g) : Tensor();
    Tensor gh = none ? Tensor() : to_device(g, Device{});  // one value, read back (waits for the op that made it)
    structura_cross_entropy_backward_params p{};
    p.grad = out.numel() ? out.raw() : nullptr;
    p.logits = logits.raw();
    p.labels = dev_labels.numel() ? dev_labels.data<int32_t>() : nullptr;
    p.g_rows = none && gc.numel() ? gc.raw() : nullptr;
    p.dtype = (int)logits.dtype;
    p.ignore_index = o.ignore;
    p.m = M;
    p.c = logits.shape[1];
    p.ld = logits.strides[0];
    p.ldc = logits.strides[1];
    p.g = none ? 0 : load_as_double(gh.raw(), gh.dtype, 0) * per;
    p.smoothing = o.eps;
    p.weight = w.dev_ptr();
    p.weight_sum = w.sum;
    device_launch(env, "crossEntropyBackward", dev,
                  [&](bool emu) { return STRUCTURA_KERNEL(cross_entropy_backward, emu, &p, nullptr); });
    return wrap(env, std::move(out));
  }
  std::vector<double> g_rows;
  if (none) {
    const Tensor gc = contiguous(g);
    g_rows.resize((size_t)M);
    for (int64_t m = 0; m < M; m++) g_rows[m] = load_as_double(gc.raw(), gc.dtype, m);
  }
  const double gv = none ? 0 : load_as_double(g.raw(), g.dtype, 0) * per;
  return wrap(env, cpu_cross_entropy_backward(logits, labels.data<int32_t>(), o.ignore, o.eps, gv,
                                              none ? g_rows.data() : nullptr, w.host_ptr(), w.sum));
}

// mseLoss(pred, target) on the CPU, float32 / float64 of one shape: the fused pass (cpu_mse). Other
// dtypes and devices are composed in lib/ops/reduce.ts.
Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor& pred = unwrap(info[0], "pred");
  const Tensor& target = unwrap(info[1], "target");
  require_cpu(env, pred, "mseLoss", "pred");
  require_cpu(env, target, "mseLoss", "target");
  if (pred.dtype != target.dtype || (pred.dtype != DType::f32 && pred.dtype != DType::f64))
    throw_type(env, std::string("structura.mseLoss: the fused pass takes two float32 or two float64 tensors, got ") +
                        dtype_name(pred.dtype) + " and " + dtype_name(target.dtype));
  if (pred.shape != target.shape)
    throw_range(env, "structura.mseLoss: 'pred' " + shape_str(pred.shape) + " and 'target' " + shape_str(target.shape) +
                         " must have the same shape");
  const double loss = cpu_mse(contiguous(pred), contiguous(target));
  Tensor out = Tensor::empty(pred.dtype, {}, pred.device());
  store_from_double(out.raw(), out.dtype, 0, loss);
  return wrap(env, std::move(out));
}

}  // namespace

void register_reduce(Napi::Env env, Napi::Object exports) {
  exports.Set("mseLoss", Napi::Function::New(env, MseLoss, "mseLoss"));
  exports.Set("reduce", Napi::Function::New(env, Reduce, "reduce"));
  exports.Set("argReduce", Napi::Function::New(env, ArgReduce, "argReduce"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, CrossEntropyBackward, "crossEntropyBackward"));
}

}  // namespace structura
