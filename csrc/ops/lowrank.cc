// ops/lowrank.cc — argument checks and dispatch of the lowrank family (kernels: cpu/lowrank.cc).
// Every function checks what it is given again (a raw call from plain JS must throw, never crash):
//
//   lowrankLora(x [M, in], W [out, in] | null, A [r, in], B [out, r], rank, scale, bias [out] | null) → y [M, out]
//       y = x·Wᵀ + scale·(x·A[:rank]ᵀ)·B[:, :rank]ᵀ + bias; W null gives lowrank.linear.
//   lowrankLoraBatched(x [M, in], W [out, in], A [E, r, in], B [E, out, r], ids int32 [M], scale) → y [M, out]
//       row m uses adapter ids[m] (−1: none).
//   lowrankLoraMixture(x [M, in], W, A [E, r, in], B [E, out, r], gates [M, E], scale) → y [M, out]
//   lowrankSparsePlusLowRank(x [M, in], A [r, in], B [out, r], indices int32 [nnz], values [nnz], bias | null) → y
//       y = x·(B·A + S)ᵀ + bias, S [out, in] with entries at the sorted, unique flat indices row·in + col.
//   lowrankSpmm(in, indices, values, out, inFeatures, transpose) → x [M, in] ↦ x·Sᵀ [M, out], or
//       (transpose) g [M, out] ↦ g·S [M, in].
//   lowrankSddmm(g [M, out], x [M, in], indices) → [nnz]: Σ_m g[m, row]·x[m, col] at each entry.
//   lowrankSvd(W [out, in], rank, energy, seed, powerIters) → {A [k, in], B [out, k], s [k]}: W ≈ B·A,
//       rank 0 = no rank limit, energy < 0 = no energy limit.
// float32 and float64; float16 / bfloat16 are computed in float32 and rounded once.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/lowrank.h"
#include "cuda_abi.h"
#include "device.h"
#include "ops/ops.h"
#include "tensor.h"

namespace structura {

namespace {

[[noreturn]] void bad_range(Napi::Env env, const std::string& op, const std::string& msg) {
  throw_range(env, "structura.lowrank." + op + ": " + msg);
}
[[noreturn]] void bad_type(Napi::Env env, const std::string& op, const std::string& msg) {
  throw_type(env, "structura.lowrank." + op + ": " + msg);
}

bool absent(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() <= i || info[i].IsUndefined() || info[i].IsNull();
}

struct Arg {
  const Tensor* t;
  const char* name;
};

// The floating operands: live, on one device (the CPU unless on_device), one floating dtype, with the
// given ranks.
void check_floats(Napi::Env env, const std::string& op, const std::vector<Arg>& args, const std::vector<int>& ndims,
                  bool on_device = false) {
  const Tensor& a = *args[0].t;
  for (size_t i = 0; i < args.size(); i++) {
    const Tensor& t = *args[i].t;
    if (t.device() != a.device())
      bad_type(env, op, std::string("'") + args[i].name + "' is on " + t.device().str() + " but '" + args[0].name +
                            "' is on " + a.device().str() + "; move one with .to()");
    if (!on_device) require_cpu(env, t, ("lowrank." + op).c_str(), args[i].name);
    if (!is_floating(t.dtype))
      bad_type(env, op, std::string("'") + args[i].name + "' must be a floating tensor, got " + dtype_name(t.dtype));
    if (t.dtype != a.dtype)
      bad_type(env, op, std::string("'") + args[i].name + "' " + shape_str(t.shape) + " is " + dtype_name(t.dtype) +
                            " but '" + args[0].name + "' " + shape_str(a.shape) + " is " + dtype_name(a.dtype));
    if (t.ndim() != ndims[i])
      bad_range(env, op, std::string("'") + args[i].name + "' must be " + std::to_string(ndims[i]) + "-D, got " +
                             shape_str(t.shape));
  }
}

void check_int32(Napi::Env env, const std::string& op, const Tensor& t, const Tensor& ref, const char* name, int64_t n) {
  if (t.device() != ref.device())
    bad_type(env, op, std::string("'") + name + "' is on " + t.device().str() + " but 'x' is on " + ref.device().str());
  if (t.dtype != DType::i32)
    bad_type(env, op, std::string("'") + name + "' must be int32, got " + dtype_name(t.dtype));
  if (t.ndim() != 1 || (n >= 0 && t.shape[0] != n))
    bad_range(env, op, std::string("'") + name + "' must have shape [" + (n >= 0 ? std::to_string(n) : "nnz") +
                           "], got " + shape_str(t.shape));
}

// The compute copy of a floating operand: itself for float32/float64, float32 for the half types.
Tensor compute_of(const Tensor& t) {
  if (t.dtype == DType::f16 || t.dtype == DType::bf16) return cast_contiguous(t, DType::f32);
  return t;
}

template <class T>
MatRef<T> mat(const Tensor& t) {
  MatRef<T> m;
  m.p = t.data<T>();
  m.rs = t.strides[0];
  m.cs = t.strides[1];
  return m;
}

// The result in the inputs' dtype (the float32 buffer rounded once for the half types).
Napi::Value finish(Napi::Env env, Tensor y, DType dt) {
  if (y.dtype == dt) return wrap(env, std::move(y));
  Tensor h = Tensor::empty(dt, y.shape, y.device());
  copy_to_contiguous(y, h);
  return wrap(env, std::move(h));
}

double get_scale(const Napi::CallbackInfo& info, size_t i, const std::string& op) {
  const double s = get_number(info, i, "scale");
  if (!std::isfinite(s)) bad_range(info.Env(), op, "'scale' must be finite, got " + std::to_string(s));
  return s;
}

// x [M, in] and W [out, in] agree; returns M.
void check_base(Napi::Env env, const std::string& op, const Tensor& x, const Tensor& W) {
  if (W.shape[1] != x.shape[1])
    bad_range(env, op, "'x' " + shape_str(x.shape) + " has " + std::to_string(x.shape[1]) + " features but 'W' " +
                           shape_str(W.shape) + " takes in = " + std::to_string(W.shape[1]));
}

// ---- on a device: two launches of cuda/dense.cu -------------------------------------------------

// A 2-D device view whose last dim is unit-stride (as the kernel reads it), gathered on the device
// when it is not (rare: a transposed parameter).
Tensor rows_view(const Tensor& t) { return t.shape[1] <= 1 || t.strides[1] == 1 ? t : contiguous(t); }

int64_t row_stride(const Tensor& t) { return t.shape[0] <= 1 ? t.shape[1] : t.strides[0]; }

// T = scale·x·A[:k]ᵀ [M, k] (the input dtype: for float16 / bfloat16 T is rounded once, as an
// unfused product would be), then
//   lora:   y = x·Wᵀ + T·B[:, :k]ᵀ + bias          (W read once: on tensor cores the rank-k term is k more
//                                                  steps of the GEMM's main loop, else its epilogue)
//   linear: y = T·B[:, :k]ᵀ + bias
Napi::Value device_lora(Napi::Env env, const std::string& op, const Tensor& x0, const Tensor* W0, const Tensor& A0,
                        const Tensor& B0, const Tensor* bias0, int64_t k, double scale) {
  if (x0.dtype == DType::f64)
    bad_type(env, op, "float64 is not implemented on " + x0.device().str() +
                          " (float32, float16 and bfloat16 are); cast, or compute on the CPU");
  const Device dev = x0.device();
  const Tensor x = rows_view(x0), A = rows_view(A0), B = rows_view(B0);
  const Tensor W = W0 ? rows_view(*W0) : Tensor();
  Tensor bias;
  if (bias0) bias = bias0->strides[0] == 1 || bias0->shape[0] <= 1 ? *bias0 : contiguous(*bias0);
  const int64_t M = x.shape[0], K = x.shape[1], N = B.shape[0];
  const int dt = gemm_dtype(x.dtype);
  const std::string what = "lowrank." + op;
  Tensor y = Tensor::empty(x.dtype, {M, N}, dev);
  if (M == 0 || N == 0) return wrap(env, std::move(y));
  // T = x·A[:k]ᵀ [M, k] is tall and thin: the tiled kernel gives it only ceil(M / 128) CTAs (32 at
  // M = 4096: 0.15 ms on an H200, as long as a fifth of the whole lora). Transposed, Tᵀ = A[:k]·xᵀ
  // [k, M] is a decode-shaped product (k ≤ 16 rows times x stored [M, in]) that streams x over
  // ceil(M / 16) CTAs; a small gather (cuda/copy.cu) then lays T out row-major.
  const bool aligned = K % 8 == 0 && row_stride(x) % 8 == 0 && row_stride(A) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 && reinterpret_cast<uintptr_t>(A.raw()) % 16 == 0;
  const bool transposed_t = dt != STRUCTURA_DT_F32 && M > 16 && k <= 16 && aligned;
  Tensor T = Tensor::empty(x.dtype, transposed_t ? Shape{k, M} : Shape{M, k}, dev);
  structura_gemm_params p{};
  p.dtype = p.out_dtype = dt;
  p.alpha = 1.f;
  p.batch = 1;
  p.k = K;
  p.trans_b = 1;
  if (transposed_t) {
    p.out = T.raw(), p.a = A.raw(), p.b = x.raw();  // A[:k] [k, in] · (x [M, in])ᵀ
    p.m = k, p.n = M, p.lda = row_stride(A), p.ldb = row_stride(x), p.ldc = M;
  } else {
    p.out = T.raw(), p.a = x.raw(), p.b = A.raw();  // x · (A[:k] [k, in])ᵀ
    p.m = M, p.n = k, p.lda = row_stride(x), p.ldb = row_stride(A), p.ldc = k;
  }
  // lora: T carries the scale, so that the second product is [x | T]·[W | B]ᵀ with one alpha, which
  // the tensor-core kernel runs as k + in extra k-steps of its main loop (cuda/dense.cu)
  if (W0) p.alpha = (float)scale;
  device_launch(env, what.c_str(), dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &p, nullptr); });
  if (transposed_t) {
    Tensor view = T;  // Tᵀ read as [M, k]
    view.shape = {M, k};
    view.strides = {1, M};
    T = contiguous(view);
  }
  structura_gemm_params q{};
  q.dtype = q.out_dtype = dt;
  q.batch = 1;
  q.out = y.raw(), q.ldc = N, q.m = M, q.n = N, q.trans_b = 1;
  q.bias = bias0 ? bias.raw() : nullptr;
  if (W0) {
    q.a = x.raw(), q.lda = row_stride(x), q.k = K, q.alpha = 1.f;
    q.b = W.raw(), q.ldb = row_stride(W);
    q.lr_t = T.raw(), q.ldt = k, q.lr_r = B.raw(), q.ldr = row_stride(B), q.r = k, q.lr_scale = 1.f;
  } else {
    q.a = T.raw(), q.lda = k, q.k = k, q.alpha = (float)scale;
    q.b = B.raw(), q.ldb = row_stride(B);
  }
  device_launch(env, what.c_str(), dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &q, nullptr); });
  return wrap(env, std::move(y));
}

Napi::Value Lora(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool has_w = !absent(info, 1);
  const std::string op = has_w ? "lora" : "linear";
  const Tensor& x = unwrap(info[0], "x");
  const Tensor Wv = has_w ? unwrap(info[1], "W") : Tensor();
  const Tensor* W = has_w ? &Wv : nullptr;
  const Tensor& A = unwrap(info[2], "A");
  const Tensor& B = unwrap(info[3], "B");
  const Tensor biasv = absent(info, 6) ? Tensor() : unwrap(info[6], "bias");
  const Tensor* bias = absent(info, 6) ? nullptr : &biasv;
  std::vector<Arg> args{{&x, "x"}, {&A, "A"}, {&B, "B"}};
  std::vector<int> nd{2, 2, 2};
  if (W) args.push_back({W, "W"}), nd.push_back(2);
  if (bias) args.push_back({bias, "bias"}), nd.push_back(1);
  check_floats(env, op, args, nd, /*on_device=*/true);
  const int64_t M = x.shape[0], K = x.shape[1], r = A.shape[0], N = B.shape[0];
  if (A.shape[1] != K)
    bad_range(env, op, "'A' " + shape_str(A.shape) + " must be [r, in] with in = " + std::to_string(K) + " (from 'x' " +
                           shape_str(x.shape) + ")");
  if (B.shape[1] != r)
    bad_range(env, op, "'B' " + shape_str(B.shape) + " must be [out, r] with r = " + std::to_string(r) + " (from 'A' " +
                           shape_str(A.shape) + ")");
  if (r < 1) bad_range(env, op, "'A' " + shape_str(A.shape) + " has rank r = 0; r must be at least 1");
  if (W) {
    check_base(env, op, x, *W);
    if (W->shape[0] != N)
      bad_range(env, op, "'B' " + shape_str(B.shape) + " has out = " + std::to_string(N) + " rows but 'W' " +
                             shape_str(W->shape) + " has out = " + std::to_string(W->shape[0]));
  }
  if (bias && bias->shape[0] != N)
    bad_range(env, op, "'bias' " + shape_str(bias->shape) + " must have shape [" + std::to_string(N) + "] (out)");
  if (info.Length() <= 4 || !info[4].IsNumber()) bad_type(env, op, "'rank' must be an integer");
  const double rk = info[4].As<Napi::Number>().DoubleValue();
  if (!(rk >= 1 && rk <= (double)r && rk == std::floor(rk)))
    bad_range(env, op, "'rank' must be an integer in [1, " + std::to_string(r) + "] (r of 'A' " + shape_str(A.shape) +
                           "), got " + std::to_string(rk));
  const int64_t k = (int64_t)rk;
  const double scale = get_scale(info, 5, op);
  if (x.device().type != DeviceType::cpu) return device_lora(env, op, x, W, A, B, bias, k, scale);

  Tensor xc = compute_of(x), Ac = compute_of(A), Bc = compute_of(B);
  Tensor Wc = W ? compute_of(*W) : Tensor();
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  const DType cdt = xc.dtype;
  Tensor y = Tensor::empty(cdt, {M, N}, x.device());
  if (cdt == DType::f64) {
    lora_forward<double>(M, N, K, k, mat<double>(xc), W ? mat<double>(Wc) : MatRef<double>{}, mat<double>(Ac),
                         mat<double>(Bc), scale, bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0,
                         y.data<double>());
  } else {
    lora_forward<float>(M, N, K, k, mat<float>(xc), W ? mat<float>(Wc) : MatRef<float>{}, mat<float>(Ac),
                        mat<float>(Bc), (float)scale, bias ? bc.data<float>() : nullptr, bias ? bc.strides[0] : 0,
                        y.data<float>());
  }
  return finish(env, std::move(y), x.dtype);
}

// The stacked adapters of loraBatched / loraMixture: A [E, r, in], B [E, out, r]; returns E, r.
void check_stacked(Napi::Env env, const std::string& op, const Tensor& x, const Tensor& W, const Tensor& A,
                   const Tensor& B) {
  check_base(env, op, x, W);
  const int64_t K = x.shape[1], N = W.shape[0];
  if (A.shape[2] != K)
    bad_range(env, op, "'A' " + shape_str(A.shape) + " must be [E, r, in] with in = " + std::to_string(K) +
                           " (from 'x' " + shape_str(x.shape) + ")");
  if (A.shape[1] < 1) bad_range(env, op, "'A' " + shape_str(A.shape) + " has rank r = 0; r must be at least 1");
  if (B.shape[0] != A.shape[0] || B.shape[1] != N || B.shape[2] != A.shape[1])
    bad_range(env, op, "'B' " + shape_str(B.shape) + " must be [E, out, r] = [" + std::to_string(A.shape[0]) + ", " +
                           std::to_string(N) + ", " + std::to_string(A.shape[1]) + "] (from 'A' " + shape_str(A.shape) +
                           " and 'W' " + shape_str(W.shape) + ")");
}

Napi::Value LoraBatched(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "loraBatched";
  const Tensor& x = unwrap(info[0], "x");
  const Tensor& W = unwrap(info[1], "W");
  const Tensor& A = unwrap(info[2], "A");
  const Tensor& B = unwrap(info[3], "B");
  const Tensor& ids = unwrap(info[4], "ids");
  check_floats(env, op, {{&x, "x"}, {&W, "W"}, {&A, "A"}, {&B, "B"}}, {2, 2, 3, 3});
  check_stacked(env, op, x, W, A, B);
  const int64_t M = x.shape[0], K = x.shape[1], N = W.shape[0], E = A.shape[0], r = A.shape[1];
  check_int32(env, op, ids, x, "ids", M);
  const double scale = get_scale(info, 5, op);
  Tensor idc = contiguous(ids);
  const int32_t* id = idc.data<int32_t>();
  for (int64_t m = 0; m < M; m++)
    if (id[m] < -1 || id[m] >= E)
      bad_range(env, op, "'ids' [" + std::to_string(M) + "] must hold adapter numbers in [-1, " + std::to_string(E) +
                             ") (E from 'A' " + shape_str(A.shape) + "), but ids[" + std::to_string(m) + "] = " +
                             std::to_string(id[m]));
  Tensor xc = compute_of(x), Wc = compute_of(W);
  Tensor Ac = contiguous(compute_of(A)), Bc = contiguous(compute_of(B));
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64)
    lora_batched<double>(M, N, K, E, r, mat<double>(xc), mat<double>(Wc), Ac.data<double>(), Bc.data<double>(), id,
                         scale, y.data<double>());
  else
    lora_batched<float>(M, N, K, E, r, mat<float>(xc), mat<float>(Wc), Ac.data<float>(), Bc.data<float>(), id,
                        (float)scale, y.data<float>());
  return finish(env, std::move(y), x.dtype);
}

Napi::Value LoraMixture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "loraMixture";
  const Tensor& x = unwrap(info[0], "x");
  const Tensor& W = unwrap(info[1], "W");
  const Tensor& A = unwrap(info[2], "A");
  const Tensor& B = unwrap(info[3], "B");
  const Tensor& G = unwrap(info[4], "gates");
  check_floats(env, op, {{&x, "x"}, {&W, "W"}, {&A, "A"}, {&B, "B"}, {&G, "gates"}}, {2, 2, 3, 3, 2});
  check_stacked(env, op, x, W, A, B);
  const int64_t M = x.shape[0], K = x.shape[1], N = W.shape[0], E = A.shape[0], r = A.shape[1];
  if (G.shape[0] != M || G.shape[1] != E)
    bad_range(env, op, "'gates' " + shape_str(G.shape) + " must be [M, E] = [" + std::to_string(M) + ", " +
                           std::to_string(E) + "] (from 'x' " + shape_str(x.shape) + " and 'A' " + shape_str(A.shape) +
                           ")");
  const double scale = get_scale(info, 5, op);
  Tensor xc = compute_of(x), Wc = compute_of(W);
  Tensor Ac = contiguous(compute_of(A)), Bc = contiguous(compute_of(B)), Gc = contiguous(compute_of(G));
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64)
    lora_mixture<double>(M, N, K, E, r, mat<double>(xc), mat<double>(Wc), Ac.data<double>(), Bc.data<double>(),
                         Gc.data<double>(), scale, y.data<double>());
  else
    lora_mixture<float>(M, N, K, E, r, mat<float>(xc), mat<float>(Wc), Ac.data<float>(), Bc.data<float>(),
                        Gc.data<float>(), (float)scale, y.data<float>());
  return finish(env, std::move(y), x.dtype);
}

// indices: int32 [nnz], strictly increasing, in [0, rows·cols); values [nnz] of x's dtype.
Tensor checked_indices(Napi::Env env, const std::string& op, const Tensor& indices, const Tensor& x, int64_t rows,
                       int64_t cols, int64_t nnz) {
  check_int32(env, op, indices, x, "indices", nnz);
  if (rows * cols > 2147483647LL)
    bad_range(env, op, "S of shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                           "] has more than 2^31 − 1 positions, which int32 'indices' cannot address");
  Tensor ic = contiguous(indices);
  const int32_t* p = ic.data<int32_t>();
  const int64_t n = ic.shape[0];
  for (int64_t e = 0; e < n; e++) {
    if (p[e] < 0 || (int64_t)p[e] >= rows * cols)
      bad_range(env, op, "'indices' [" + std::to_string(n) + "]: indices[" + std::to_string(e) + "] = " +
                             std::to_string(p[e]) + " is out of range for S of shape [" + std::to_string(rows) + ", " +
                             std::to_string(cols) + "] (flat row·in + col must be in [0, " +
                             std::to_string(rows * cols) + "))");
    if (e > 0 && p[e] <= p[e - 1])
      bad_range(env, op, "'indices' [" + std::to_string(n) + "] must be sorted and unique, but indices[" +
                             std::to_string(e - 1) + "] = " + std::to_string(p[e - 1]) + " and indices[" +
                             std::to_string(e) + "] = " + std::to_string(p[e]) +
                             (p[e] == p[e - 1] ? " (duplicate)" : " (unsorted)"));
  }
  return ic;
}

Napi::Value SparsePlusLowRank(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "sparsePlusLowRank";
  const Tensor& x = unwrap(info[0], "x");
  const Tensor& A = unwrap(info[1], "A");
  const Tensor& B = unwrap(info[2], "B");
  const Tensor& indices = unwrap(info[3], "indices");
  const Tensor& values = unwrap(info[4], "values");
  const Tensor biasv = absent(info, 5) ? Tensor() : unwrap(info[5], "bias");
  const Tensor* bias = absent(info, 5) ? nullptr : &biasv;
  std::vector<Arg> args{{&x, "x"}, {&A, "A"}, {&B, "B"}, {&values, "values"}};
  std::vector<int> nd{2, 2, 2, 1};
  if (bias) args.push_back({bias, "bias"}), nd.push_back(1);
  check_floats(env, op, args, nd);
  const int64_t M = x.shape[0], K = x.shape[1], r = A.shape[0], N = B.shape[0], nnz = values.shape[0];
  if (A.shape[1] != K)
    bad_range(env, op, "'A' " + shape_str(A.shape) + " must be [r, in] with in = " + std::to_string(K) + " (from 'x' " +
                           shape_str(x.shape) + ")");
  if (B.shape[1] != r || r < 1)
    bad_range(env, op, "'B' " + shape_str(B.shape) + " must be [out, r] with r = " + std::to_string(r) +
                           " ≥ 1 (from 'A' " + shape_str(A.shape) + ")");
  if (bias && bias->shape[0] != N)
    bad_range(env, op, "'bias' " + shape_str(bias->shape) + " must have shape [" + std::to_string(N) + "] (out)");
  Tensor ic = checked_indices(env, op, indices, x, N, K, nnz);
  Tensor xc = contiguous(compute_of(x)), Ac = compute_of(A), Bc = compute_of(B), vc = contiguous(compute_of(values));
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64) {
    lora_forward<double>(M, N, K, r, mat<double>(xc), MatRef<double>{}, mat<double>(Ac), mat<double>(Bc), 1.0,
                         bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0, y.data<double>());
    spmm<double>(M, N, K, xc.data<double>(), ic.data<int32_t>(), vc.data<double>(), nnz, false, true, y.data<double>());
  } else {
    lora_forward<float>(M, N, K, r, mat<float>(xc), MatRef<float>{}, mat<float>(Ac), mat<float>(Bc), 1.0f,
                        bias ? bc.data<float>() : nullptr, bias ? bc.strides[0] : 0, y.data<float>());
    spmm<float>(M, N, K, xc.data<float>(), ic.data<int32_t>(), vc.data<float>(), nnz, false, true, y.data<float>());
  }
  return finish(env, std::move(y), x.dtype);
}

Napi::Value Spmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "spmm";
  const Tensor& in = unwrap(info[0], "x");
  const Tensor& indices = unwrap(info[1], "indices");
  const Tensor& values = unwrap(info[2], "values");
  const int64_t N = get_int(info, 3, "out", 0, kMaxNumel), K = get_int(info, 4, "in", 0, kMaxNumel);
  const bool tr = get_bool(info, 5, "transpose");
  check_floats(env, op, {{&in, "x"}, {&values, "values"}}, {2, 1});
  const int64_t M = in.shape[0], nnz = values.shape[0];
  if (in.shape[1] != (tr ? N : K))
    bad_range(env, op, "'x' " + shape_str(in.shape) + " must have " + std::to_string(tr ? N : K) + " columns (" +
                           (tr ? "out" : "in") + ")");
  Tensor ic = checked_indices(env, op, indices, in, N, K, nnz);
  Tensor xc = contiguous(compute_of(in)), vc = contiguous(compute_of(values));
  Tensor y = Tensor::empty(xc.dtype, {M, tr ? K : N}, in.device());
  if (xc.dtype == DType::f64)
    spmm<double>(M, N, K, xc.data<double>(), ic.data<int32_t>(), vc.data<double>(), nnz, tr, false, y.data<double>());
  else
    spmm<float>(M, N, K, xc.data<float>(), ic.data<int32_t>(), vc.data<float>(), nnz, tr, false, y.data<float>());
  return finish(env, std::move(y), in.dtype);
}

Napi::Value Sddmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "sddmm";
  const Tensor& g = unwrap(info[0], "g");
  const Tensor& x = unwrap(info[1], "x");
  const Tensor& indices = unwrap(info[2], "indices");
  check_floats(env, op, {{&g, "g"}, {&x, "x"}}, {2, 2});
  const int64_t M = g.shape[0], N = g.shape[1], K = x.shape[1];
  if (x.shape[0] != M)
    bad_range(env, op, "'g' " + shape_str(g.shape) + " and 'x' " + shape_str(x.shape) + " must have the same rows");
  Tensor ic = checked_indices(env, op, indices, x, N, K, -1);
  const int64_t nnz = ic.shape[0];
  Tensor gc = contiguous(compute_of(g)), xc = contiguous(compute_of(x));
  Tensor out = Tensor::empty(gc.dtype, {nnz}, x.device());
  if (gc.dtype == DType::f64)
    sddmm<double>(M, N, K, gc.data<double>(), xc.data<double>(), ic.data<int32_t>(), nnz, out.data<double>());
  else
    sddmm<float>(M, N, K, gc.data<float>(), xc.data<float>(), ic.data<int32_t>(), nnz, out.data<float>());
  return finish(env, std::move(out), g.dtype);
}

Napi::Value Svd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "svd";
  const Tensor& W = unwrap(info[0], "W");
  check_floats(env, op, {{&W, "W"}}, {2});
  const int64_t m = W.shape[0], n = W.shape[1], mn = std::min(m, n);
  if (mn < 1) bad_range(env, op, "'W' " + shape_str(W.shape) + " must not be empty");
  const int64_t rank = get_int(info, 1, "rank", 0, mn);
  const double energy = get_number(info, 2, "energy");
  if (!(energy < 0 || (energy > 0 && energy <= 1)))
    bad_range(env, op, "'energy' must be in (0, 1] (or negative for none), got " + std::to_string(energy));
  if (rank == 0 && energy < 0) bad_range(env, op, "give 'rank' or 'energy' (or both)");
  const int64_t seed = get_int(info, 3, "seed", 0, 9007199254740991LL);
  const int iters = (int)get_int(info, 4, "powerIters", 0, 64);
  Tensor Wd = cast_contiguous(W, DType::f64);
  for (int64_t i = 0; i < m * n; i++)
    if (!std::isfinite(Wd.data<double>()[i]))
      bad_range(env, op, "'W' " + shape_str(W.shape) + " holds a non-finite value at flat index " + std::to_string(i));
  SvdResult res = svd_randomized(Wd.data<double>(), m, n, rank, energy, (uint64_t)seed, iters);
  const int64_t k = res.k;
  Tensor A = Tensor::empty(DType::f64, {k, n}, W.device()), B = Tensor::empty(DType::f64, {m, k}, W.device());
  Tensor s = Tensor::empty(DType::f64, {k}, W.device());
  // The balanced split (as PiSSA): B = U·√Σ, A = √Σ·Vᵀ, so both factors carry the same scale.
  for (int64_t i = 0; i < k; i++) {
    const double sq = std::sqrt(res.s[(size_t)i]);
    s.data<double>()[i] = res.s[(size_t)i];
    for (int64_t c = 0; c < n; c++) A.data<double>()[i * n + c] = sq * res.V[(size_t)(c * k + i)];
    for (int64_t a = 0; a < m; a++) B.data<double>()[a * k + i] = sq * res.U[(size_t)(a * k + i)];
  }
  Napi::Object out = Napi::Object::New(env);
  auto conv = [&](Tensor t) -> Napi::Value {
    if (W.dtype == DType::f64) return wrap(env, std::move(t));
    Tensor o = Tensor::empty(W.dtype, t.shape, t.device());
    copy_to_contiguous(t, o);
    return wrap(env, std::move(o));
  };
  out.Set("A", conv(A));
  out.Set("B", conv(B));
  out.Set("s", conv(s));
  return out;
}

}  // namespace

void register_lowrank(Napi::Env env, Napi::Object exports) {
  exports.Set("lowrankLora", Napi::Function::New(env, Lora, "lowrankLora"));
  exports.Set("lowrankLoraBatched", Napi::Function::New(env, LoraBatched, "lowrankLoraBatched"));
  exports.Set("lowrankLoraMixture", Napi::Function::New(env, LoraMixture, "lowrankLoraMixture"));
  exports.Set("lowrankSparsePlusLowRank", Napi::Function::New(env, SparsePlusLowRank, "lowrankSparsePlusLowRank"));
  exports.Set("lowrankSpmm", Napi::Function::New(env, Spmm, "lowrankSpmm"));
  exports.Set("lowrankSddmm", Napi::Function::New(env, Sddmm, "lowrankSddmm"));
  exports.Set("lowrankSvd", Napi::Function::New(env, Svd, "lowrankSvd"));
}

}  // namespace structura
