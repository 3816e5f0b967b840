// ops/elementwise.cc — argument checks and dispatch of the elementwise ops (kernels: cpu/elementwise.cc;
// on cuda and cuda-emu cuda/elementwise.cu):
//   binary(op, a, b, out?)              a, b broadcast (numpy rules) to S; result [S], dtype of a and b
//   unary(op, a, alpha?, beta?, out?)   result of a's shape and dtype
//   where(cond, a, b)                   cond, a, b broadcast to S; result [S], dtype of a and b
//   dropout(x, p, seed)                 x·mask/(1 − p), the mask drawn from seed's rand() stream; contiguous
// `out`, when given, must be contiguous, of the result's shape and dtype; it may be one of the inputs
// (p = p − lr·g with out = p). An input that overlaps `out` any other way is copied first, so the
// result is always as if the inputs were read before anything was written.
#include <cmath>
#include <limits>
#include <string>

#include "cpu/elementwise.h"
#include "cuda_abi.h"
#include "device.h"
#include "ops/ops.h"
#include "tensor.h"

namespace structura {

namespace {

template <class Op>
std::string op_list(Op count) {
  std::string s;
  for (int i = 0; i < (int)count; i++) s += std::string(i ? ", " : "") + op_name((Op)i);
  return s;
}

// Element range [lo, hi] that t reaches in its storage (strides are never negative).
void extent(const Tensor& t, int64_t& lo, int64_t& hi) {
  lo = hi = t.offset;
  for (int64_t d = 0; d < t.ndim(); d++) hi += (t.shape[d] - 1) * t.strides[d];
}

// The input to read: `in` itself unless it overlaps `out` without being exactly `out`.
Tensor safe_input(const Tensor& in, const Tensor& out) {
  if (in.storage != out.storage || in.numel() == 0 || out.numel() == 0) return in;
  if (in.offset == out.offset && in.shape == out.shape && in.is_contiguous()) return in;
  int64_t a0, a1, b0, b1;
  extent(in, a0, a1);
  extent(out, b0, b1);
  if (a1 < b0 || b1 < a0) return in;
  Tensor copy = Tensor::empty(in.dtype, in.shape, in.device());
  if (in.device().type != DeviceType::cpu) device_copy(in, in.strides, copy, "elementwise");
  else copy_to_contiguous(in, copy);
  return copy;
}

// The device kernels (cuda/elementwise.cu) take the ops by the C ABI's numbering.
static_assert((int)BinaryOp::add == STRUCTURA_BIN_ADD && (int)BinaryOp::ge == STRUCTURA_BIN_GE &&
                  (int)BinaryOp::count == STRUCTURA_BIN_COUNT, "BinaryOp order = structura_binary_op");
static_assert((int)UnaryOp::neg == STRUCTURA_UN_NEG && (int)UnaryOp::cos == STRUCTURA_UN_COS &&
                  (int)UnaryOp::clamp == STRUCTURA_UN_CLAMP && (int)UnaryOp::count == STRUCTURA_UN_COUNT,
              "UnaryOp order = structura_unary_op");
static_assert((int)DType::f32 == STRUCTURA_T_F32 && (int)DType::f64 == STRUCTURA_T_F64 &&
                  (int)DType::f16 == STRUCTURA_T_F16 && (int)DType::bf16 == STRUCTURA_T_BF16 &&
                  (int)DType::i32 == STRUCTURA_T_I32 && (int)DType::u8 == STRUCTURA_T_U8 &&
                  (int)DType::u16 == STRUCTURA_T_U16,
              "DType codes = structura_tensor_dtype");

// Inputs seen through out's shape, collapsed to ≤ STRUCTURA_MAX_DIMS dimensions; an input whose
// collapsed walk needs more is first materialised (broadcast, contiguous) on its device.
void device_plan(std::vector<Tensor>& ins, const Tensor& out, Shape& shape, std::vector<Shape>& st) {
  std::vector<Shape> bs;
  for (auto& t : ins) bs.push_back(broadcast_strides(t, out.shape));
  collapse_dims(out.shape, bs, shape, st);
  if (shape.size() <= STRUCTURA_MAX_DIMS) return;
  bs.clear();
  for (auto& t : ins) {
    Tensor dense = Tensor::empty(t.dtype, out.shape, t.device());
    device_copy(t, broadcast_strides(t, out.shape), dense, "elementwise");
    t = dense;
    bs.push_back(dense.strides);
  }
  collapse_dims(out.shape, bs, shape, st);
}

void device_binary(Napi::Env env, const std::string& where, BinaryOp op, Tensor a, Tensor b, Tensor& out) {
  if (out.numel() == 0) return;
  std::vector<Tensor> ins{a, b};
  Shape shape;
  std::vector<Shape> st;
  device_plan(ins, out, shape, st);
  structura_binary_params p{};
  p.out = out.raw();
  p.a = ins[0].raw();
  p.b = ins[1].raw();
  p.op = (int)op;
  p.dtype = (int)out.dtype;
  p.ndim = (int)shape.size();
  p.n = out.numel();
  for (size_t d = 0; d < shape.size(); d++) p.shape[d] = shape[d], p.a_strides[d] = st[0][d], p.b_strides[d] = st[1][d];
  device_launch(env, where.c_str(), out.device(), [&](bool emu) { return STRUCTURA_KERNEL(binary, emu, &p, nullptr); });
}

void device_unary(Napi::Env env, const std::string& where, UnaryOp op, Tensor a, double alpha, double beta,
                  int32_t ia, int32_t ib, Tensor& out) {
  if (out.numel() == 0) return;
  std::vector<Tensor> ins{a};
  Shape shape;
  std::vector<Shape> st;
  device_plan(ins, out, shape, st);
  structura_unary_params p{};
  p.out = out.raw();
  p.a = ins[0].raw();
  p.op = (int)op;
  p.dtype = (int)out.dtype;
  p.ndim = (int)shape.size();
  p.n = out.numel();
  for (size_t d = 0; d < shape.size(); d++) p.shape[d] = shape[d], p.a_strides[d] = st[0][d];
  p.alpha = alpha;
  p.beta = beta;
  p.ialpha = ia;
  p.ibeta = ib;
  device_launch(env, where.c_str(), out.device(), [&](bool emu) { return STRUCTURA_KERNEL(unary, emu, &p, nullptr); });
}

void device_where(Napi::Env env, const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  if (out.numel() == 0) return;
  std::vector<Tensor> ins{cond, a, b};
  Shape shape;
  std::vector<Shape> st;
  device_plan(ins, out, shape, st);
  structura_where_params p{};
  p.out = out.raw();
  p.cond = ins[0].raw();
  p.a = ins[1].raw();
  p.b = ins[2].raw();
  p.cond_dtype = (int)cond.dtype;
  p.dtype = (int)out.dtype;
  p.ndim = (int)shape.size();
  p.n = out.numel();
  for (size_t d = 0; d < shape.size(); d++)
    p.shape[d] = shape[d], p.cond_strides[d] = st[0][d], p.a_strides[d] = st[1][d], p.b_strides[d] = st[2][d];
  device_launch(env, "where", out.device(), [&](bool emu) { return STRUCTURA_KERNEL(where, emu, &p, nullptr); });
}

// An int32 scalar as the CPU's int32 kernels see it: finite integers clamp to the int32 range, ±inf
// to its ends.
int32_t to_i32(double v) {
  if (v <= (double)std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::min();
  if (v >= (double)std::numeric_limits<int32_t>::max()) return std::numeric_limits<int32_t>::max();
  return (int32_t)v;
}

bool absent(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() <= i || info[i].IsUndefined() || info[i].IsNull();
}

// The output: a fresh tensor, or the checked `out` argument at index i.
Tensor make_out(const Napi::CallbackInfo& info, size_t i, const std::string& op, const Shape& shape, DType dt,
                Device dev) {
  if (absent(info, i)) return Tensor::empty(dt, shape, dev);
  Napi::Env env = info.Env();
  Tensor out = unwrap(info[i], "out");
  if (out.device() != dev)
    throw_type(env, "structura." + op + ": 'out' is on " + out.device().str() + " but the inputs are on " + dev.str());
  if (out.dtype != dt)
    throw_type(env, "structura." + op + ": 'out' is " + dtype_name(out.dtype) + " but the result is " + dtype_name(dt));
  if (out.shape != shape)
    throw_range(env, "structura." + op + ": 'out' has shape " + shape_str(out.shape) + " but the result has shape " +
                         shape_str(shape));
  if (!out.is_contiguous())
    throw_range(env, "structura." + op + ": 'out' must be contiguous (its strides are " + shape_str(out.strides) + ")");
  out.storage->version++;  // written in place (Storage::version)
  return out;
}

// dtypes with arithmetic: the float ones, and int32 for the ops that stay integers.
void check_arith_dtype(Napi::Env env, const std::string& op, const Tensor& t, const char* arg, bool int_ok) {
  if (is_floating(t.dtype)) return;
  if (t.dtype == DType::i32) {
    if (int_ok) return;
    throw_type(env, "structura." + op + ": '" + arg + "' is int32, which " + op +
                        " does not support; cast it to a float dtype first");
  }
  throw_type(env, "structura." + op + ": '" + arg + "' is " + dtype_name(t.dtype) +
                      "; elementwise ops take float32, float64, float16, bfloat16 or int32 (cast it first)");
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = get_string(info, 0, "op");
  BinaryOp op;
  if (!parse_op(name, op))
    throw_range(env, "structura.binary: 'op' must be one of " + op_list(BinaryOp::count) + ", got '" + name + "'");
  const std::string where = "binary(" + name + ")";
  Tensor a = unwrap(info[1], "a");
  Tensor b = unwrap(info[2], "b");
  require_same_device(env, a, "a", b, "b", where);
  if (a.dtype != b.dtype)
    throw_type(env, "structura." + where + ": 'a' is " + dtype_name(a.dtype) + " but 'b' is " + dtype_name(b.dtype) +
                        "; cast one of them first");
  check_arith_dtype(env, where, a, "a", int32_ok(op));
  Shape shape;
  if (!broadcast_shapes(a.shape, b.shape, shape))
    throw_range(env, "structura." + where + ": shapes " + shape_str(a.shape) + " ('a') and " + shape_str(b.shape) +
                         " ('b') do not broadcast");
  check_result_size(env, where, shape);
  Tensor out = make_out(info, 3, where, shape, a.dtype, a.device());
  if (a.device().type != DeviceType::cpu) device_binary(env, where, op, safe_input(a, out), safe_input(b, out), out);
  else cpu_binary(op, safe_input(a, out), safe_input(b, out), out);
  return absent(info, 3) ? wrap(env, std::move(out)) : info[3];
}

// A scalar argument: a number (possibly ±inf or NaN for floats); for int32 tensors an integer.
double scalar_arg(const Napi::CallbackInfo& info, size_t i, const char* arg, const std::string& where, DType dt,
                  bool allow_inf) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber())
    throw_type(env, "structura." + where + ": '" + arg + "' must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (dt == DType::i32) {
    bool inf = std::isinf(v);
    if (std::isnan(v) || (inf && !allow_inf) || (!inf && v != std::floor(v)))
      throw_type(env, "structura." + where + ": '" + arg + "' is " + std::to_string(v) +
                          ", not an integer, and 'a' is int32; cast 'a' to a float dtype first");
    if (!inf && (v < (double)std::numeric_limits<int32_t>::min() || v > (double)std::numeric_limits<int32_t>::max()))
      throw_range(env, "structura." + where + ": '" + arg + "' = " + std::to_string(v) + " is outside the int32 range");
  }
  return v;
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = get_string(info, 0, "op");
  UnaryOp op;
  if (!parse_op(name, op))
    throw_range(env, "structura.unary: 'op' must be one of " + op_list(UnaryOp::count) + ", got '" + name + "'");
  const std::string where = "unary(" + name + ")";
  Tensor a = unwrap(info[1], "a");
  check_arith_dtype(env, where, a, "a", int32_ok(op));
  const int nscalars = scalar_args(op);
  double alpha = 0, beta = 0;
  if (nscalars >= 1) alpha = scalar_arg(info, 2, "alpha", where, a.dtype, op == UnaryOp::clamp);
  else if (!absent(info, 2) && !info[2].IsNumber()) throw_type(env, "structura." + where + ": 'alpha' must be a number");
  if (nscalars >= 2) beta = scalar_arg(info, 3, "beta", where, a.dtype, true);
  else if (!absent(info, 3) && !info[3].IsNumber()) throw_type(env, "structura." + where + ": 'beta' must be a number");
  Tensor out = make_out(info, 4, where, a.shape, a.dtype, a.device());
  if (a.device().type != DeviceType::cpu) {
    // int32 add_scalar/mul_scalar wrap like the tensor arithmetic (alpha mod 2³²), as on the CPU.
    const int32_t ia = op == UnaryOp::clamp ? to_i32(alpha) : (int32_t)(uint32_t)(int64_t)alpha;
    device_unary(env, where, op, safe_input(a, out), alpha, beta, ia, to_i32(beta), out);
  } else {
    cpu_unary(op, safe_input(a, out), alpha, beta, out);
  }
  return absent(info, 4) ? wrap(env, std::move(out)) : info[4];
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor cond = unwrap(info[0], "cond");
  Tensor a = unwrap(info[1], "a");
  Tensor b = unwrap(info[2], "b");
  require_same_device(env, a, "a", cond, "cond", "where");
  require_same_device(env, a, "a", b, "b", "where");
  if (a.dtype != b.dtype)
    throw_type(env, std::string("structura.where: 'a' is ") + dtype_name(a.dtype) + " but 'b' is " +
                        dtype_name(b.dtype) + "; cast one of them first");
  Shape ab, shape;
  if (!broadcast_shapes(a.shape, b.shape, ab) || !broadcast_shapes(cond.shape, ab, shape))
    throw_range(env, "structura.where: shapes " + shape_str(cond.shape) + " ('cond'), " + shape_str(a.shape) +
                         " ('a') and " + shape_str(b.shape) + " ('b') do not broadcast");
  check_result_size(env, "where", shape);
  Tensor out = Tensor::empty(a.dtype, shape, a.device());
  if (a.device().type != DeviceType::cpu) device_where(env, cond, a, b, out);
  else cpu_where(cond, a, b, out);
  return wrap(env, std::move(out));
}

// Dropout's threshold: the number of 53-bit draws q whose uniform value u(q) = ((double)q + 0.5)·2^−53
// (creation.cc's rand(), rounded as it is) is below p. u is non-decreasing in q, so this is a binary
// search, and "(h >> 11) < threshold" drops exactly the elements whose rand() draw (float64) is < p.
uint64_t dropout_threshold(double p) {
  uint64_t lo = 0, hi = uint64_t(1) << 53;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (((double)mid + 0.5) * 0x1p-53 >= p) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// dropout(x, p, seed): x (float dtype, any strides) → a contiguous tensor with each element dropped
// (× 0) when its draw of seed's rand() stream is below p, else scaled by 1/(1 − p); p = 1 drops all.
Napi::Value Dropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor x = unwrap(info[0], "x");
  if (!is_floating(x.dtype))
    throw_type(env, std::string("structura.dropout: 'x' is ") + dtype_name(x.dtype) + "; dropout takes a float dtype");
  const double p = get_number(info, 1, "p");
  if (!(p >= 0 && p <= 1)) throw_range(env, "structura.dropout: 'p' must be in [0, 1], got " + std::to_string(p));
  const double seedd = get_number(info, 2, "seed");
  if (!std::isfinite(seedd)) throw_range(env, "structura.dropout: 'seed' must be a finite number");
  const uint64_t key = splitmix64((uint64_t)(int64_t)seedd);
  const uint64_t threshold = p == 1 ? uint64_t(1) << 53 : dropout_threshold(p);
  // PyTorch's scale: 1/(1 − p) in the compute type (float for float32 / float16 / bfloat16).
  const float scale = p == 1 ? 0.f : 1.0f / (float)(1.0 - p);
  const double scale64 = p == 1 ? 0.0 : 1.0 / (1.0 - p);
  const Device dev = x.device();
  x = contiguous(x);  // element i is the i-th in row-major order, as rand()'s draws
  Tensor out = Tensor::empty(x.dtype, x.shape, dev);
  if (x.numel() == 0) return wrap(env, std::move(out));
  if (dev.type != DeviceType::cpu) {
    structura_dropout_params prm{};
    prm.out = out.raw();
    prm.x = x.raw();
    prm.dtype = (int)x.dtype;
    prm.n = x.numel();
    prm.key = key;
    prm.threshold = threshold;
    prm.scale = scale;
    prm.scale64 = scale64;
    device_launch(env, "dropout", dev, [&](bool emu) { return STRUCTURA_KERNEL(dropout, emu, &prm, nullptr); });
  } else {
    cpu_dropout(x, key, threshold, scale, scale64, out);
  }
  return wrap(env, std::move(out));
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binary", Napi::Function::New(env, Binary, "binary"));
  exports.Set("unary", Napi::Function::New(env, Unary, "unary"));
  exports.Set("where", Napi::Function::New(env, Where, "where"));
  exports.Set("dropout", Napi::Function::New(env, Dropout, "dropout"));
}

}  // namespace structura
