// ops/lowrank.cc — argument checks and dispatch of the lowrank family (kernels: cpu/lowrank.cc).
// Every function checks what it is given again (a raw call from plain JS must throw, never crash):
//
//   lowrankLora(x [M, in], W [out, in] | null, A [r, in], B [out, r], rank, scale, bias [out] | null) → y [M, out]
//       y = x·Wᵀ + scale·(x·A[:rank]ᵀ)·B[:, :rank]ᵀ + bias; W null gives lowrank.linear.
//   lowrankLoraBatched(x [M, in], W [out, in], A [E, r, in], B [E, out, r], ids int32 [M], scale, bias [out] | null)
//       → y [M, out]; row m uses adapter ids[m] (−1: none).
//   lowrankLoraMixture(x [M, in], W, A [E, r, in], B [E, out, r], gates [M, E], scale, bias [out] | null) → y [M, out]
//   lowrankSparsePlusLowRank(x [M, in], A [r, in], B [out, r], indices int32 [nnz], values [nnz], bias | null) → y
//       y = x·(B·A + S)ᵀ + bias, S [out, in] with entries at the sorted, unique flat indices row·in + col.
//   lowrankSpmm(in, indices, values, out, inFeatures, transpose) → x [M, in] ↦ x·Sᵀ [M, out], or
//       (transpose) g [M, out] ↦ g·S [M, in].
//   lowrankSddmm(g [M, out], x [M, in], indices) → [nnz]: Σ_m g[m, row]·x[m, col] at each entry.
//   lowrankSparsePattern(indices, rows, cols) → a checked pattern of S (a private copy of the indices,
//       and its CSR / CSC on a device), accepted wherever `indices` is; lowrankSparsePatternDispose(it).
//   lowrankSvd(W [out, in], rank, energy, seed, powerIters) → {A [k, in], B [out, k], s [k]}: W ≈ B·A,
//       rank 0 = no rank limit, energy < 0 = no energy limit.
// float32 and float64; float16 / bfloat16 are computed in float32 and rounded once.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/lowrank.h"
#include "cuda_abi.h"
#include "device.h"
#include "ops/ops.h"
#include "tensor.h"
#include "threadpool.h"

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

// The optional tensor argument i (the ops' bias), held in `holder`; null when absent.
const Tensor* optional_arg(const Napi::CallbackInfo& info, size_t i, const char* name, Tensor& holder) {
  if (absent(info, i)) return nullptr;
  holder = unwrap(info[i], name);
  return &holder;
}

// The optional bias [out] (1-D: check_floats saw it), every op of the family alike.
void check_bias(Napi::Env env, const std::string& op, const Tensor* bias, int64_t N) {
  if (bias && bias->shape[0] != N)
    bad_range(env, op, "'bias' " + shape_str(bias->shape) + " must have shape [" + std::to_string(N) + "] (out)");
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

// host_ok: t may also be on the CPU whatever ref's device (loraBatched's ids: the plan is made on the host).
void check_int32(Napi::Env env, const std::string& op, const Tensor& t, const Tensor& ref, const char* name, int64_t n,
                 bool host_ok = false) {
  if (t.device() != ref.device() && !(host_ok && t.device().type == DeviceType::cpu))
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

// A 16-bit t as stored, into m's h / kind / hrs / hcs; false (m untouched) for other dtypes.
bool set_half(MatRef<float>& m, const Tensor& t) {
  if (t.dtype != DType::bf16 && t.dtype != DType::f16) return false;
  m.h = t.data<uint16_t>();
  m.kind = t.dtype == DType::bf16 ? Half::bf16 : Half::f16;
  m.hrs = t.strides[0];
  m.hcs = t.strides[1];
  return true;
}

// A weight W for the float32 kernels: a bfloat16 / float16 W is left as stored and read in place
// (gemm_half), any other is compute_of(W) (kept alive in *keep).
MatRef<float> weight_f32(const Tensor& W, Tensor* keep) {
  MatRef<float> m;
  if (set_half(m, W)) return m;
  *keep = compute_of(W);
  m.p = keep->data<float>();
  m.rs = keep->strides[0];
  m.cs = keep->strides[1];
  return m;
}

// x for the float32 kernels: xc = compute_of(x), and a 16-bit x as stored beside it (x_wt reads that
// when W is of the same kind).
MatRef<float> input_f32(const Tensor& x, const Tensor& xc) {
  MatRef<float> m;
  m.p = xc.data<float>();
  m.rs = xc.strides[0];
  m.cs = xc.strides[1];
  set_half(m, x);
  return m;
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
  return wrap(env, y.dtype == dt ? std::move(y) : cast_contiguous(y, dt));
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

// ---- on a device: cuda/dense.cu for the products, cuda/lowrank.cu around them ----------------------
//
// Every lora-like op is two GEMMs. First T = scale·gate·x·Aᵀ [M, R] (split along `in` into float32
// partial products, then summed, gated and rounded once by lora_t), then the one pass over W:
// y = [x | T]·[W | B]ᵀ + bias (on tensor cores the rank-R term is R more k-steps of the GEMM's main
// loop; cuda/dense.cu). loraBatched and loraMixture are the same with the adapters side by side as one
// adapter of rank R = n·r: the mixture's gates, or the one-hot of the batch's ids, fold into T's
// columns (X-LoRA's formulation). For a batch that uses n of E adapters the work grows with n·r, not r
// (Punica's SGMV would not): fine for the usual few adapters per batch, and W is still read once.

[[noreturn]] void refuse_f64(Napi::Env env, const std::string& op, const Tensor& x) {
  bad_type(env, op, "float64 is not implemented on " + x.device().str() +
                        " (float32, float16 and bfloat16 are); cast, or compute on the CPU");
}

// A 2-D device view whose last dim is unit-stride and whose rows do not overlap (as the kernels read
// it: a leading dimension ≥ the row length), gathered on the device when it is not (rare: a transposed
// parameter, or an expand()ed one, whose row stride 0 the GEMM refused as an invalid argument).
Tensor rows_view(const Tensor& t) {
  const bool rows_ok = t.shape[1] <= 1 || t.strides[1] == 1;
  const bool apart = t.shape[0] <= 1 || t.strides[0] >= t.shape[1];
  return rows_ok && apart ? t : contiguous(t);
}

int64_t row_stride(const Tensor& t) { return t.shape[0] <= 1 ? t.shape[1] : t.strides[0]; }

// A contiguous host copy (device → host waits for the device).
Tensor on_host(const Tensor& t) { return contiguous(to_device(t, Device{})); }

// Host-built int32 indices on dev.
Tensor upload_i32(const std::vector<int32_t>& v, const Device& dev) {
  Tensor h = Tensor::empty(DType::i32, {(int64_t)v.size()}, Device{});
  if (!v.empty()) std::memcpy(h.raw(), v.data(), v.size() * sizeof(int32_t));
  return to_device(h, dev);
}

// t as a contiguous float32 tensor on its device (bias and gates in the GEMM epilogue / lora_t).
Tensor f32_on_device(const Tensor& t) {
  if (t.dtype == DType::f32 && t.is_contiguous()) return t;
  Tensor o = Tensor::empty(DType::f32, t.shape, t.device());
  device_copy(t, t.strides, o, "lowrank");
  return o;
}

size_t elem_bytes(const Tensor& t) { return dtype_size(t.dtype); }

// How T's product x·A[:R]ᵀ is split along `in` (K) so that about 256 CTAs share the reading (at
// decode, M = 1 and R = 16, one CTA would read all of A alone: ~8 µs on an H200) when the product
// itself has `ctas` CTAs: slices of kc, at least 512 and a multiple of 8 (the decode kernel's 16-byte
// alignment). Returns the number of slices.
int64_t t_splits(int64_t K, int64_t ctas, int64_t& kc) {
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>((256 + ctas - 1) / ctas, K / 512));
  kc = K;
  if (splits > 1) {
    kc = ((K + splits - 1) / splits + 7) / 8 * 8;
    splits = (K + kc - 1) / kc;
  }
  return splits;
}

// lora_t's parameters: T [M, R] from part [splits, rows, cols] (rows × cols = M × R, or R × M when
// T's product ran transposed), scaled and gated (slot: int32 [M]; gates32: float32 [M, ·]).
structura_lora_t_params t_params(const Tensor& T, const Tensor& part, int64_t splits, double scale, const Tensor* slot,
                                 const Tensor* gates32, int64_t group, bool transposed) {
  const int64_t M = T.shape[0], R = T.shape[1];
  structura_lora_t_params t{};
  t.t = T.raw();
  t.part = part.data<float>();
  t.slot = slot ? slot->data<int32_t>() : nullptr;
  t.gates = gates32 ? gates32->data<float>() : nullptr;
  t.gates_rs = gates32 && gates32->ndim() == 2 ? gates32->shape[1] : 0;
  t.dtype = (int)T.dtype;
  t.m = M, t.cols = R, t.group = group, t.splits = splits, t.part_stride = M * R, t.ldt = R;
  t.part_rs = transposed ? 1 : R;
  t.part_cs = transposed ? M : 1;
  t.scale = (float)scale;
  return t;
}

// T [M, R] (x's dtype) = round(scale · gate(m, c / group) · (x·A[:R]ᵀ)[m, c]); A's first R rows (unit
// column stride). gate: none, the one-hot of slot (int32 [M] on the device) or gates32 (float32 [M, ·]).
Tensor device_t(const char* what, const Tensor& x, const Tensor& A, int64_t R, double scale, const Tensor* slot,
                const Tensor* gates32, int64_t group) {
  const Device dev = x.device();
  const int64_t M = x.shape[0], K = x.shape[1];
  const int dt = gemm_dtype(x.dtype);
  // T is tall and thin: the tiled kernel would give it only ceil(M / 128) CTAs. Transposed, Tᵀ =
  // A[:R]·xᵀ [R, M] is a decode-shaped product (≤ 16 rows times x stored [M, in]) that streams x over
  // ceil(M / 16) CTAs.
  const bool aligned = K % 8 == 0 && row_stride(x) % 8 == 0 && row_stride(A) % 8 == 0 &&
                       reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0 && reinterpret_cast<uintptr_t>(A.raw()) % 16 == 0;
  const bool transposed = dt != STRUCTURA_DT_F32 && M > 16 && R <= 16 && aligned;
  const int64_t rows = transposed ? R : M, cols = transposed ? M : R;
  const bool decode = dt != STRUCTURA_DT_F32 && aligned && rows <= 16;
  const int64_t ctas = decode ? (cols + 15) / 16 : ((rows + 127) / 128) * ((cols + 127) / 128);
  int64_t kc;
  const int64_t splits = t_splits(K, ctas, kc);
  Tensor part = Tensor::empty(DType::f32, {splits, rows, cols}, dev);
  structura_gemm_params p{};
  p.dtype = dt;
  p.out_dtype = STRUCTURA_DT_F32;
  p.alpha = 1.f;
  p.trans_b = 1;
  p.m = rows, p.n = cols, p.ldc = cols;
  if (transposed) {
    p.a = A.raw(), p.b = x.raw(), p.lda = row_stride(A), p.ldb = row_stride(x);  // A[:R] · (x [M, in])ᵀ
  } else {
    p.a = x.raw(), p.b = A.raw(), p.lda = row_stride(x), p.ldb = row_stride(A);  // x · (A[:R] [R, in])ᵀ
  }
  const int64_t full = kc == 0 ? 1 : K / kc, tail = kc == 0 ? 0 : K - full * kc;
  p.out = part.raw();
  p.k = kc;
  p.batch = full;
  p.stride_a = p.stride_b = kc;  // slice s starts kc·s elements into every row of both operands
  p.stride_out = rows * cols;
  p.pdl = 2;  // an ordinary launch: the chain of dependent launches that ends in lora's product starts here
  device_launch(what, dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &p, nullptr); });
  if (tail > 0) {
    structura_gemm_params q = p;
    const size_t off = (size_t)(full * kc) * elem_bytes(x);
    q.a = static_cast<const char*>(p.a) + off;
    q.b = static_cast<const char*>(p.b) + off;
    q.out = part.data<float>() + full * rows * cols;
    q.k = tail;
    q.batch = 1;
    device_launch(what, dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &q, nullptr); });
  }
  Tensor T = Tensor::empty(x.dtype, {M, R}, dev);
  structura_lora_t_params t = t_params(T, part, splits, scale, slot, gates32, group, transposed);
  device_launch(what, dev, [&](bool emu) { return STRUCTURA_KERNEL(lora_t, emu, &t, nullptr); });
  return T;
}

// The product y [M, N] = x·Wᵀ + T·Bᵀ + bias (W null: T·Bᵀ + bias; T null: x·Wᵀ + bias) in out_dtype
// (x's dtype or float32; a float32 output takes a float32 bias). B [N, R] rows, T [M, R] contiguous.
// Allocates y (and b, the bias as the kernel reads it) and fills q; launches nothing.
struct RankGemm {
  Tensor y, b;
  structura_gemm_params q{};
};
RankGemm rank_gemm(const Tensor& x, const Tensor* W, const Tensor* T, const Tensor* B, const Tensor* bias, DType out_dtype) {
  RankGemm g;
  const int64_t M = x.shape[0], N = W ? W->shape[0] : B->shape[0];
  g.y = Tensor::empty(out_dtype, {M, N}, x.device());
  if (bias)
    g.b = out_dtype == DType::f32 ? f32_on_device(*bias) : bias->strides[0] == 1 || bias->shape[0] <= 1 ? *bias : contiguous(*bias);
  structura_gemm_params& q = g.q;
  q.dtype = gemm_dtype(x.dtype);
  q.out_dtype = gemm_dtype(out_dtype);
  q.batch = 1;
  q.out = g.y.raw(), q.ldc = N, q.m = M, q.n = N, q.trans_b = 1, q.alpha = 1.f;
  q.bias = bias ? g.b.raw() : nullptr;
  if (W) {
    q.a = x.raw(), q.lda = row_stride(x), q.k = x.shape[1];
    q.b = W->raw(), q.ldb = row_stride(*W);
    if (T) {
      const int64_t R = T->shape[1];
      q.lr_t = T->raw(), q.ldt = R, q.lr_r = B->raw(), q.ldr = row_stride(*B), q.r = R, q.lr_scale = 1.f;
    }
  } else {
    q.a = T->raw(), q.lda = T->shape[1], q.k = T->shape[1];
    q.b = B->raw(), q.ldb = row_stride(*B);
  }
  return g;
}

// rank_gemm's product, launched. t_just_made: T was just made by device_t (its chain: the partial
// products, then lora_t), after x, W and B were complete, so at decode the product may stream W while
// T is finished (cuda/dense.cu, p.pdl).
Tensor device_rank_gemm(const char* what, const Tensor& x, const Tensor* W, const Tensor* T, const Tensor* B,
                        const Tensor* bias, DType out_dtype, bool t_just_made = false) {
  RankGemm g = rank_gemm(x, W, T, B, bias, out_dtype);
  if (g.q.m == 0 || g.q.n == 0) return g.y;
  if (W && T) g.q.pdl = t_just_made ? 1 : 0;
  device_launch(what, x.device(), [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &g.q, nullptr); });
  return g.y;
}

// A fused lora: y = x·Wᵀ + T·Bᵀ + bias with T = round(scale · gate · x·A[:R]ᵀ) (device_t's gates); W
// null: y = T·Bᵀ + bias (lowrank.linear). At decode (M ≤ 16) one launch where it fits (cuda/dense.cu
// lora_decode: CTAs of the product's grid make T while the others stream W; with W the same bits as
// the chain), else device_t's chain and the product.
Tensor device_lora_gemm(const char* what, const Tensor& x, const Tensor* W, const Tensor& A, int64_t R, const Tensor& B,
                        const Tensor* bias, double scale, const Tensor* slot, const Tensor* gates32, int64_t group) {
  const Device dev = x.device();
  const int64_t M = x.shape[0], K = x.shape[1];
  if (M >= 1 && M <= 16 && x.dtype != DType::f32) {
    int64_t kc;
    const int64_t splits = t_splits(K, (R + 15) / 16, kc);
    Tensor part = Tensor::empty(DType::f32, {splits, M, R}, dev);
    Tensor T = Tensor::empty(x.dtype, {M, R}, dev);
    RankGemm g = rank_gemm(x, W, &T, &B, bias, x.dtype);
    if (!W) {  // x·0 + T·Bᵀ: x is the T-makers' input, the product has no k of its own
      structura_gemm_params& q = g.q;
      q.a = x.raw(), q.lda = row_stride(x), q.k = 0, q.b = nullptr, q.ldb = 0;
      q.lr_t = T.raw(), q.ldt = R, q.lr_r = B.raw(), q.ldr = row_stride(B), q.r = R, q.lr_scale = 1.f;
    }
    const structura_lora_t_params t = t_params(T, part, splits, scale, slot, gates32, group, false);
    int taken = 0;
    device_launch(what, dev, [&](bool emu) {
      return STRUCTURA_KERNEL(lora_decode, emu, &g.q, &t, A.raw(), row_stride(A), K, kc, &taken, nullptr);
    });
    if (taken) return g.y;
  }
  const Tensor T = device_t(what, x, A, R, scale, slot, gates32, group);
  return device_rank_gemm(what, x, W, &T, &B, bias, x.dtype, true);
}

//   lora:   y = x·Wᵀ + T·B[:, :k]ᵀ + bias,   linear: y = T·B[:, :k]ᵀ + bias,   T = scale·x·A[:k]ᵀ
Napi::Value device_lora(Napi::Env env, const std::string& op, const Tensor& x0, const Tensor* W0, const Tensor& A0,
                        const Tensor& B0, const Tensor* bias, int64_t k, double scale) {
  if (x0.dtype == DType::f64) refuse_f64(env, op, x0);
  const std::string what = "lowrank." + op;
  const Tensor x = rows_view(x0), A = rows_view(A0), B = rows_view(B0);
  const Tensor W = W0 ? rows_view(*W0) : Tensor();
  if (x.shape[0] == 0 || B.shape[0] == 0) return wrap(env, Tensor::empty(x.dtype, {x.shape[0], B.shape[0]}, x.device()));
  return wrap(env, device_lora_gemm(what.c_str(), x, W0 ? &W : nullptr, A, k, B, bias, scale, nullptr, nullptr, k));
}

// loraBatched (slot: each row's position in `used`, −1 none) and loraMixture (gates [M, E]) on a
// device: the n adapters `used` (all E when empty and n == E) side by side, then one fused lora.
Napi::Value device_stacked(Napi::Env env, const std::string& op, const Tensor& x0, const Tensor& W0, const Tensor& A0,
                           const Tensor& B0, const std::vector<int32_t>* used, const std::vector<int32_t>* slot,
                           const Tensor* gates, double scale, const Tensor* bias) {
  if (x0.dtype == DType::f64) refuse_f64(env, op, x0);
  const std::string what = "lowrank." + op;
  const Device dev = x0.device();
  const Tensor x = rows_view(x0), W = rows_view(W0);
  const int64_t M = x.shape[0], K = x.shape[1], N = W.shape[0], E = A0.shape[0], r = A0.shape[1];
  const int64_t n = used ? (int64_t)used->size() : E;
  if (M == 0 || N == 0 || n == 0) return wrap(env, device_rank_gemm(what.c_str(), x, &W, nullptr, nullptr, bias, x.dtype));
  const bool all = n == E && (!used || [&] {
    for (int64_t i = 0; i < n; i++)
      if ((*used)[(size_t)i] != i) return false;
    return true;
  }());
  const Tensor A = contiguous(A0), B = contiguous(B0);
  Tensor idx = all ? Tensor() : upload_i32(*used, dev);
  auto gather = [&](const Tensor& src, Tensor& dst, int64_t outer, int64_t block, int64_t src_outer, int64_t src_idx) {
    structura_lora_gather_params g{};
    g.dst = dst.raw(), g.src = src.raw(), g.idx = all ? nullptr : idx.data<int32_t>();
    g.elem_size = (int)elem_bytes(src);
    g.outer = outer, g.n_idx = n, g.block = block, g.src_outer = src_outer, g.src_idx = src_idx;
    device_launch(what.c_str(), dev, [&](bool emu) { return STRUCTURA_KERNEL(lora_gather, emu, &g, nullptr); });
  };
  Tensor Acat;  // [n·r, in]
  if (all) {
    Acat = A;
    Acat.shape = {E * r, K};
    Acat.strides = {K, 1};
  } else {
    Acat = Tensor::empty(A.dtype, {n * r, K}, dev);
    gather(A, Acat, 1, r * K, 0, r * K);
  }
  Tensor Bcat = Tensor::empty(B.dtype, {N, n * r}, dev);  // [out, n·r]
  gather(B, Bcat, N, r, r, N * r);
  Tensor slots = slot ? upload_i32(*slot, dev) : Tensor();
  Tensor g32 = gates ? f32_on_device(*gates) : Tensor();
  return wrap(env, device_lora_gemm(what.c_str(), x, &W, Acat, n * r, Bcat, bias, scale, slot ? &slots : nullptr,
                                    gates ? &g32 : nullptr, r));
}

// tᵀ contiguous (a device gather: cuda/copy.cu's tiled transpose).
Tensor transposed_contiguous(const Tensor& t) {
  Tensor v = t;
  v.shape = {t.shape[1], t.shape[0]};
  v.strides = {t.strides[1], t.strides[0]};
  return contiguous(v);
}

// S compressed for spmm (cpu/lowrank.h SparseForm: by rows, or by columns with perm) on the device.
struct DeviceCompressed {
  Tensor ptr, other, perm;
};
DeviceCompressed upload(const SparseForm& c, const Device& dev) {
  return DeviceCompressed{upload_i32(c.ptr, dev), upload_i32(c.other, dev),
                          c.perm.empty() ? Tensor() : upload_i32(c.perm, dev)};
}

// out [M, n_out] (out's dtype) = acc + (x·Sᵀ or x·S) by cuda/lowrank.cu's spmm, which reads x
// transposed (its lanes run along rows m).
void device_spmm(const char* what, Tensor& out, const Tensor* acc32, const Tensor& x0, const Tensor& values,
                 const DeviceCompressed& c) {
  const Tensor xT = transposed_contiguous(x0), val = contiguous(values);
  structura_spmm_params p{};
  p.out = out.raw(), p.acc = acc32 ? acc32->data<float>() : nullptr, p.x = xT.raw(), p.val = val.raw();
  // (a default Tensor is a 0-d one: numel() 1, no storage)
  p.ptr = c.ptr.data<int32_t>(), p.other = !c.other.storage || c.other.numel() == 0 ? nullptr : c.other.data<int32_t>();
  p.perm = !c.perm.storage || c.perm.numel() == 0 ? nullptr : c.perm.data<int32_t>();
  p.dtype = (int)out.dtype;
  p.rows = out.shape[0], p.n_out = out.shape[1], p.ldo = out.shape[1], p.ldacc = out.shape[1];
  p.x_ms = 1, p.x_cs = out.shape[0];  // xᵀ [cols, M]
  device_launch(what, out.device(), [&](bool emu) { return STRUCTURA_KERNEL(spmm, emu, &p, nullptr); });
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
  Tensor biasv;
  const Tensor* bias = optional_arg(info, 6, "bias", biasv);
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
  check_bias(env, op, bias, N);
  // (before any work: a device would compute T first; M and N each fit, their product may not)
  check_result_size(env, "lowrank." + op, {M, N});
  if (info.Length() <= 4 || !info[4].IsNumber()) bad_type(env, op, "'rank' must be an integer");
  const double rk = info[4].As<Napi::Number>().DoubleValue();
  if (!(rk >= 1 && rk <= (double)r && rk == std::floor(rk)))
    bad_range(env, op, "'rank' must be an integer in [1, " + std::to_string(r) + "] (r of 'A' " + shape_str(A.shape) +
                           "), got " + std::to_string(rk));
  const int64_t k = (int64_t)rk;
  const double scale = get_scale(info, 5, op);
  if (x.device().type != DeviceType::cpu) return device_lora(env, op, x, W, A, B, bias, k, scale);

  Tensor xc = compute_of(x), Ac = compute_of(A), Bc = compute_of(B);
  Tensor Wc = W && xc.dtype == DType::f64 ? *W : Tensor();  // float64: mat<double> reads W itself
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  const DType cdt = xc.dtype;
  Tensor y = Tensor::empty(cdt, {M, N}, x.device());
  if (cdt == DType::f64) {
    lora_forward<double>(M, N, K, k, mat<double>(xc), W ? mat<double>(Wc) : MatRef<double>{}, mat<double>(Ac),
                         mat<double>(Bc), scale, bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0,
                         y.data<double>());
  } else {
    lora_forward<float>(M, N, K, k, input_f32(x, xc), W ? weight_f32(*W, &Wc) : MatRef<float>{}, mat<float>(Ac),
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
  Tensor biasv;
  const Tensor* bias = optional_arg(info, 6, "bias", biasv);
  std::vector<Arg> args{{&x, "x"}, {&W, "W"}, {&A, "A"}, {&B, "B"}};
  std::vector<int> nd{2, 2, 3, 3};
  if (bias) args.push_back({bias, "bias"}), nd.push_back(1);
  check_floats(env, op, args, nd, /*on_device=*/true);
  check_stacked(env, op, x, W, A, B);
  check_bias(env, op, bias, W.shape[0]);
  const int64_t M = x.shape[0], K = x.shape[1], N = W.shape[0], E = A.shape[0], r = A.shape[1];
  check_result_size(env, "lowrank." + op, {M, N});
  // ids on the CPU with x on a device: planned from them directly, with no read back (a synchronization)
  check_int32(env, op, ids, x, "ids", M, /*host_ok=*/true);
  const double scale = get_scale(info, 5, op);
  if (x.device().type != DeviceType::cpu && x.dtype == DType::f64) refuse_f64(env, op, x);
  Tensor idc = on_host(ids);  // checked here, and the device plan is made from them
  const int32_t* id = idc.data<int32_t>();
  for (int64_t m = 0; m < M; m++)
    if (id[m] < -1 || id[m] >= E)
      bad_range(env, op, "'ids' [" + std::to_string(M) + "] must hold adapter numbers in [-1, " + std::to_string(E) +
                             ") (E from 'A' " + shape_str(A.shape) + "), but ids[" + std::to_string(m) + "] = " +
                             std::to_string(id[m]));
  if (x.device().type != DeviceType::cpu) {
    // the adapters the batch uses, in order, and each row's position among them
    std::vector<int32_t> pos((size_t)E, -1), used, slot((size_t)M, -1);
    for (int64_t m = 0; m < M; m++)
      if (id[m] >= 0) pos[(size_t)id[m]] = 0;
    for (int64_t e = 0; e < E; e++)
      if (pos[(size_t)e] == 0) pos[(size_t)e] = (int32_t)used.size(), used.push_back((int32_t)e);
    for (int64_t m = 0; m < M; m++)
      if (id[m] >= 0) slot[(size_t)m] = pos[(size_t)id[m]];
    return device_stacked(env, op, x, W, A, B, &used, &slot, nullptr, scale, bias);
  }
  Tensor xc = compute_of(x), Wc = xc.dtype == DType::f64 ? W : Tensor();
  Tensor Ac = contiguous(compute_of(A)), Bc = contiguous(compute_of(B));
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64)
    lora_batched<double>(M, N, K, E, r, mat<double>(xc), mat<double>(Wc), Ac.data<double>(), Bc.data<double>(), id,
                         scale, bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0, y.data<double>());
  else
    lora_batched<float>(M, N, K, E, r, input_f32(x, xc), weight_f32(W, &Wc), Ac.data<float>(), Bc.data<float>(), id,
                        (float)scale, bias ? bc.data<float>() : nullptr, bias ? bc.strides[0] : 0, y.data<float>());
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
  Tensor biasv;
  const Tensor* bias = optional_arg(info, 6, "bias", biasv);
  std::vector<Arg> args{{&x, "x"}, {&W, "W"}, {&A, "A"}, {&B, "B"}, {&G, "gates"}};
  std::vector<int> nd{2, 2, 3, 3, 2};
  if (bias) args.push_back({bias, "bias"}), nd.push_back(1);
  check_floats(env, op, args, nd, /*on_device=*/true);
  check_stacked(env, op, x, W, A, B);
  check_bias(env, op, bias, W.shape[0]);
  const int64_t M = x.shape[0], K = x.shape[1], N = W.shape[0], E = A.shape[0], r = A.shape[1];
  check_result_size(env, "lowrank." + op, {M, N});
  if (G.shape[0] != M || G.shape[1] != E)
    bad_range(env, op, "'gates' " + shape_str(G.shape) + " must be [M, E] = [" + std::to_string(M) + ", " +
                           std::to_string(E) + "] (from 'x' " + shape_str(x.shape) + " and 'A' " + shape_str(A.shape) +
                           ")");
  const double scale = get_scale(info, 5, op);
  if (x.device().type != DeviceType::cpu) return device_stacked(env, op, x, W, A, B, nullptr, nullptr, &G, scale, bias);
  Tensor xc = compute_of(x), Wc = xc.dtype == DType::f64 ? W : Tensor();
  Tensor Ac = contiguous(compute_of(A)), Bc = contiguous(compute_of(B)), Gc = contiguous(compute_of(G));
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64)
    lora_mixture<double>(M, N, K, E, r, mat<double>(xc), mat<double>(Wc), Ac.data<double>(), Bc.data<double>(),
                         Gc.data<double>(), scale, bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0,
                         y.data<double>());
  else
    lora_mixture<float>(M, N, K, E, r, input_f32(x, xc), weight_f32(W, &Wc), Ac.data<float>(), Bc.data<float>(),
                        Gc.data<float>(), (float)scale, bias ? bc.data<float>() : nullptr, bias ? bc.strides[0] : 0,
                        y.data<float>());
  return finish(env, std::move(y), x.dtype);
}

// indices: int32 [nnz], strictly increasing, in [0, rows·cols); values [nnz] of x's dtype. Returns
// them on the host (copied from a device), checked. `name` is the argument as the caller knows it (the
// JS API checks only the shapes and leaves the index scan, one host read, to this).
Tensor checked_indices(Napi::Env env, const std::string& op, const Tensor& indices, const Tensor& x, int64_t rows,
                       int64_t cols, int64_t nnz, const std::string& name = "indices") {
  check_int32(env, op, indices, x, name.c_str(), nnz);
  // in double: rows and cols up to 2^53 each would wrap an int64 product past the check
  if ((double)rows * (double)cols > 2147483647.0)
    bad_range(env, op, "S of shape [" + std::to_string(rows) + ", " + std::to_string(cols) +
                           "] has more than 2^31 − 1 positions, which int32 'indices' cannot address");
  Tensor ic = on_host(indices);
  const int32_t* p = ic.data<int32_t>();
  const int64_t n = ic.shape[0];
  for (int64_t e = 0; e < n; e++) {
    if (p[e] < 0 || (int64_t)p[e] >= rows * cols)
      bad_range(env, op, "'" + name + "' [" + std::to_string(n) + "]: indices[" + std::to_string(e) + "] = " +
                             std::to_string(p[e]) + " is out of range for S of shape [" + std::to_string(rows) + ", " +
                             std::to_string(cols) + "] (flat row·in + col must be in [0, " +
                             std::to_string(rows * cols) + "))");
    if (e > 0 && p[e] <= p[e - 1])
      bad_range(env, op, "'" + name + "' [" + std::to_string(n) + "] must be sorted and unique, but indices[" +
                             std::to_string(e - 1) + "] = " + std::to_string(p[e - 1]) + " and indices[" +
                             std::to_string(e) + "] = " + std::to_string(p[e]) +
                             (p[e] == p[e - 1] ? " (duplicate)" : " (unsorted)"));
  }
  return ic;
}

// A checked sparsity pattern of S [rows, cols] (lowrank.sparse): the indices scanned once, kept as a
// private copy (later writes to the caller's tensor are not seen), with the CSR and CSC forms the
// device spmm reads — so that sparsePlusLowRank's forward and backward neither read the indices back
// to the host nor compress them again on every call.
struct SparsePattern {
  int64_t rows = 0, cols = 0, nnz = 0;
  Device dev;
  Tensor host_idx;                     // int32 [nnz] on the host: the CPU kernels and the checks
  Tensor idx;                          // the same on dev (the device sddmm)
  SparseForm rows_form, cols_form;     // S by rows and by columns: the CPU spmm's (empty on a device)
  DeviceCompressed by_rows, by_cols;   // the same on a device
  bool disposed = false;
};
const napi_type_tag kPatternTag = {0x51c0e7a3d94b2f68ULL, 0x8e2d4c19b7a0f356ULL};

SparsePattern* pattern_of(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  auto ext = v.As<Napi::External<SparsePattern>>();
  return ext.CheckTypeTag(&kPatternTag) ? ext.Data() : nullptr;
}

// lowrankSparsePattern(indices int32 [nnz], rows, cols) → a pattern handle.
Napi::Value MakeSparsePattern(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "sparse";
  const Tensor& indices = unwrap(info[0], "indices");
  const int64_t rows = get_int(info, 1, "rows", 0, kMaxNumel), cols = get_int(info, 2, "cols", 0, kMaxNumel);
  Tensor ic = checked_indices(env, op, indices, indices, rows, cols, -1, "S.indices");
  // owned here until the External holds it: a throw on the way (a device allocation, a terminated
  // worker's environment refusing the External) frees it
  auto pat = std::make_unique<SparsePattern>();
  pat->rows = rows, pat->cols = cols, pat->nnz = ic.shape[0], pat->dev = indices.device();
  // a private copy: ic may share the caller's storage (a contiguous host tensor)
  pat->host_idx = Tensor::empty(DType::i32, {pat->nnz}, Device{});
  if (pat->nnz) std::memcpy(pat->host_idx.raw(), ic.raw(), (size_t)pat->nnz * sizeof(int32_t));
  const int32_t* p = pat->host_idx.data<int32_t>();
  if (pat->dev.type == DeviceType::cpu) {
    pat->idx = pat->host_idx;
    pat->rows_form = sparse_form(p, pat->nnz, rows, cols, false);
    pat->cols_form = sparse_form(p, pat->nnz, rows, cols, true);
  } else {  // the host forms are only uploaded
    pat->idx = to_device(pat->host_idx, pat->dev);
    pat->by_rows = upload(sparse_form(p, pat->nnz, rows, cols, false), pat->dev);
    pat->by_cols = upload(sparse_form(p, pat->nnz, rows, cols, true), pat->dev);
  }
  auto ext = Napi::External<SparsePattern>::New(env, pat.get(), [](Napi::Env, SparsePattern* q) { delete q; });
  pat.release();
  ext.TypeTag(&kPatternTag);
  return ext;
}

// lowrankSparsePatternDispose(pattern): frees its memory now (otherwise when it is collected).
Napi::Value DisposeSparsePattern(const Napi::CallbackInfo& info) {
  SparsePattern* pat = info.Length() > 0 ? pattern_of(info[0]) : nullptr;
  if (!pat) bad_type(info.Env(), "sparse", "dispose expects a sparsity pattern handle");
  if (pat->disposed) return Napi::Boolean::New(info.Env(), false);
  *pat = SparsePattern{};
  pat->disposed = true;
  return Napi::Boolean::New(info.Env(), true);
}

// The support of S for an op: a pattern (checked when it was made: its shape and device must match)
// or an indices tensor (checked, and compressed for the device, now).
struct Support {
  const SparsePattern* pat = nullptr;
  Tensor host_idx;  // checked, on the host
  Tensor idx;       // on the op's device
  int64_t nnz = 0;
};
Support support_of(Napi::Env env, const std::string& op, const Napi::Value& v, const Tensor& x, int64_t rows,
                   int64_t cols, int64_t nnz, const std::string& name) {
  Support s;
  if (const SparsePattern* pat = pattern_of(v)) {
    if (pat->disposed) bad_type(env, op, "'" + name + "' is a disposed sparsity pattern");
    if (pat->dev != x.device())
      bad_type(env, op, "'" + name + "' (a sparsity pattern) is on " + pat->dev.str() + " but 'x' is on " + x.device().str());
    if (pat->rows != rows || pat->cols != cols)
      bad_range(env, op, "'" + name + "' is a sparsity pattern of S [" + std::to_string(pat->rows) + ", " +
                             std::to_string(pat->cols) + "], but S must be [" + std::to_string(rows) + ", " +
                             std::to_string(cols) + "] here");
    if (nnz >= 0 && pat->nnz != nnz)
      bad_range(env, op, "'" + name + "' has " + std::to_string(pat->nnz) + " entries but 'values' has " + std::to_string(nnz));
    s.pat = pat, s.host_idx = pat->host_idx, s.idx = pat->idx, s.nnz = pat->nnz;
    return s;
  }
  const Tensor& indices = unwrap(v, name.c_str());
  s.host_idx = checked_indices(env, op, indices, x, rows, cols, nnz, name);
  s.idx = indices;
  s.nnz = s.host_idx.shape[0];
  return s;
}
// S compressed for the device spmm (by rows: x·Sᵀ; by columns: x·S): the pattern's, or built now.
DeviceCompressed compressed_of(const Support& s, int64_t rows, int64_t cols, bool by_cols, const Device& dev) {
  if (s.pat) return by_cols ? s.pat->by_cols : s.pat->by_rows;
  return upload(sparse_form(s.host_idx.data<int32_t>(), s.nnz, rows, cols, by_cols), dev);
}

Napi::Value SparsePlusLowRank(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "sparsePlusLowRank";
  const Tensor& x = unwrap(info[0], "x");
  const Tensor& A = unwrap(info[1], "A");
  const Tensor& B = unwrap(info[2], "B");
  const Tensor& values = unwrap(info[4], "values");
  Tensor biasv;
  const Tensor* bias = optional_arg(info, 5, "bias", biasv);
  std::vector<Arg> args{{&x, "x"}, {&A, "A"}, {&B, "B"}, {&values, "values"}};
  std::vector<int> nd{2, 2, 2, 1};
  if (bias) args.push_back({bias, "bias"}), nd.push_back(1);
  check_floats(env, op, args, nd, /*on_device=*/true);
  const int64_t M = x.shape[0], K = x.shape[1], r = A.shape[0], N = B.shape[0], nnz = values.shape[0];
  check_result_size(env, "lowrank." + op, {M, N});
  if (A.shape[1] != K)
    bad_range(env, op, "'A' " + shape_str(A.shape) + " must be [r, in] with in = " + std::to_string(K) + " (from 'x' " +
                           shape_str(x.shape) + ")");
  if (B.shape[1] != r || r < 1)
    bad_range(env, op, "'B' " + shape_str(B.shape) + " must be [out, r] with r = " + std::to_string(r) +
                           " ≥ 1 (from 'A' " + shape_str(A.shape) + ")");
  check_bias(env, op, bias, N);
  if (x.device().type != DeviceType::cpu && x.dtype == DType::f64) refuse_f64(env, op, x);
  const Support sup = support_of(env, op, info[3], x, N, K, nnz, "S.indices");
  const Tensor& ic = sup.host_idx;
  if (x.device().type != DeviceType::cpu) {
    // y = round(float32: T·Bᵀ + bias + x·Sᵀ), T = x·Aᵀ rounded to the dtype as lowrank.linear's is
    const char* what = "lowrank.sparsePlusLowRank";
    const Tensor xr = rows_view(x), Ar = rows_view(A), Br = rows_view(B);
    Tensor y = Tensor::empty(x.dtype, {M, N}, x.device());
    if (M == 0 || N == 0) return wrap(env, std::move(y));
    const Tensor T = device_t(what, xr, Ar, r, 1.0, nullptr, nullptr, r);
    const Tensor low = device_rank_gemm(what, xr, nullptr, &T, &Br, bias, DType::f32);
    device_spmm(what, y, &low, xr, values, compressed_of(sup, N, K, false, x.device()));
    return wrap(env, std::move(y));
  }
  Tensor xc = contiguous(compute_of(x)), Ac = compute_of(A), Bc = compute_of(B), vc = contiguous(compute_of(values));
  Tensor bc = bias ? compute_of(*bias) : Tensor();
  Tensor y = Tensor::empty(xc.dtype, {M, N}, x.device());
  if (xc.dtype == DType::f64) {
    lora_forward<double>(M, N, K, r, mat<double>(xc), MatRef<double>{}, mat<double>(Ac), mat<double>(Bc), 1.0,
                         bias ? bc.data<double>() : nullptr, bias ? bc.strides[0] : 0, y.data<double>());
    spmm<double>(M, N, K, xc.data<double>(), ic.data<int32_t>(), vc.data<double>(), nnz, false, true, y.data<double>(),
                 sup.pat ? &sup.pat->rows_form : nullptr);
  } else {
    lora_forward<float>(M, N, K, r, mat<float>(xc), MatRef<float>{}, mat<float>(Ac), mat<float>(Bc), 1.0f,
                        bias ? bc.data<float>() : nullptr, bias ? bc.strides[0] : 0, y.data<float>());
    spmm<float>(M, N, K, xc.data<float>(), ic.data<int32_t>(), vc.data<float>(), nnz, false, true, y.data<float>(),
                sup.pat ? &sup.pat->rows_form : nullptr);
  }
  return finish(env, std::move(y), x.dtype);
}

Napi::Value Spmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "spmm";
  const Tensor& in = unwrap(info[0], "x");
  const Tensor& values = unwrap(info[2], "values");
  const int64_t N = get_int(info, 3, "out", 0, kMaxNumel), K = get_int(info, 4, "in", 0, kMaxNumel);
  const bool tr = get_bool(info, 5, "transpose");
  check_floats(env, op, {{&in, "x"}, {&values, "values"}}, {2, 1}, /*on_device=*/true);
  const int64_t M = in.shape[0], nnz = values.shape[0];
  check_result_size(env, "lowrank." + op, {M, tr ? K : N});
  if (in.shape[1] != (tr ? N : K))
    bad_range(env, op, "'x' " + shape_str(in.shape) + " must have " + std::to_string(tr ? N : K) + " columns (" +
                           (tr ? "out" : "in") + ")");
  if (in.device().type != DeviceType::cpu && in.dtype == DType::f64) refuse_f64(env, op, in);
  const Support sup = support_of(env, op, info[1], in, N, K, nnz, "indices");
  const Tensor& ic = sup.host_idx;
  if (in.device().type != DeviceType::cpu) {
    Tensor y = Tensor::empty(in.dtype, {M, tr ? K : N}, in.device());
    if (M > 0) device_spmm("lowrank.spmm", y, nullptr, in, values, compressed_of(sup, N, K, tr, in.device()));
    return wrap(env, std::move(y));
  }
  Tensor xc = contiguous(compute_of(in)), vc = contiguous(compute_of(values));
  Tensor y = Tensor::empty(xc.dtype, {M, tr ? K : N}, in.device());
  const SparseForm* form = sup.pat ? (tr ? &sup.pat->cols_form : &sup.pat->rows_form) : nullptr;
  if (xc.dtype == DType::f64)
    spmm<double>(M, N, K, xc.data<double>(), ic.data<int32_t>(), vc.data<double>(), nnz, tr, false, y.data<double>(), form);
  else
    spmm<float>(M, N, K, xc.data<float>(), ic.data<int32_t>(), vc.data<float>(), nnz, tr, false, y.data<float>(), form);
  return finish(env, std::move(y), in.dtype);
}

Napi::Value Sddmm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = "sddmm";
  const Tensor& g = unwrap(info[0], "g");
  const Tensor& x = unwrap(info[1], "x");
  check_floats(env, op, {{&g, "g"}, {&x, "x"}}, {2, 2}, /*on_device=*/true);
  const int64_t M = g.shape[0], N = g.shape[1], K = x.shape[1];
  if (x.shape[0] != M)
    bad_range(env, op, "'g' " + shape_str(g.shape) + " and 'x' " + shape_str(x.shape) + " must have the same rows");
  if (x.device().type != DeviceType::cpu && x.dtype == DType::f64) refuse_f64(env, op, x);
  const Support sup = support_of(env, op, info[2], x, N, K, -1, "indices");
  const Tensor& ic = sup.host_idx;
  const int64_t nnz = sup.nnz;
  if (x.device().type != DeviceType::cpu) {
    if (nnz == 0) return wrap(env, Tensor::empty(g.dtype, {0}, x.device()));  // nothing to read (x may have no columns)
    // gᵀ [N, M] and xᵀ [K, M] contiguous, so that a warp's lanes (over rows m) read neighbours
    const Tensor gT = transposed_contiguous(g), xT = transposed_contiguous(x), idx = contiguous(sup.idx);
    Tensor out = Tensor::empty(g.dtype, {nnz}, x.device());
    structura_sddmm_params p{};
    p.out = out.raw(), p.g = gT.raw(), p.x = xT.raw(), p.idx = idx.data<int32_t>();
    p.dtype = (int)g.dtype;
    p.nnz = nnz, p.rows = M, p.cols = K, p.g_ms = 1, p.g_rs = M, p.x_ms = 1, p.x_cs = M;
    device_launch("lowrank.sddmm", x.device(), [&](bool emu) { return STRUCTURA_KERNEL(sddmm, emu, &p, nullptr); });
    return wrap(env, std::move(out));
  }
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
  check_floats(env, op, {{&W, "W"}}, {2}, /*on_device=*/true);
  const int64_t m = W.shape[0], n = W.shape[1], mn = std::min(m, n);
  if (mn < 1) bad_range(env, op, "'W' " + shape_str(W.shape) + " must not be empty");
  const int64_t rank = get_int(info, 1, "rank", 0, mn);
  const double energy = get_number(info, 2, "energy");
  if (!(energy < 0 || (energy > 0 && energy <= 1)))
    bad_range(env, op, "'energy' must be in (0, 1] (or negative for none), got " + std::to_string(energy));
  if (rank == 0 && energy < 0) bad_range(env, op, "give 'rank' or 'energy' (or both)");
  const int64_t seed = get_int(info, 3, "seed", 0, 9007199254740991LL);
  const int iters = (int)get_int(info, 4, "powerIters", 0, 64);
  // On a device too the SVD runs here in float64 (a one-off factorisation, not a per-step op: the
  // sketch products are O(m·n·k) and the Jacobi sweeps need float64); the factors go back to W's device.
  Tensor Wd = cast_contiguous(on_host(W), DType::f64);
  {
    // the first non-finite value, in parallel (found on the pool, reported here on the JS thread)
    const double* w = Wd.data<double>();
    constexpr int64_t kPart = 1 << 16;
    const int64_t parts = (m * n + kPart - 1) / kPart;
    std::vector<int64_t> bad((size_t)parts, -1);
    parallel_for(parts, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; c++) {
        const int64_t e = std::min(m * n, (c + 1) * kPart);
        bool ok = true;
        for (int64_t i = c * kPart; i < e; i++) ok &= std::isfinite(w[i]);
        if (!ok)
          for (int64_t i = c * kPart; i < e; i++)
            if (!std::isfinite(w[i])) {
              bad[(size_t)c] = i;
              break;
            }
      }
    });
    for (int64_t i : bad)
      if (i >= 0) bad_range(env, op, "'W' " + shape_str(W.shape) + " holds a non-finite value at flat index " + std::to_string(i));
  }
  SvdResult res = svd_randomized(Wd.data<double>(), m, n, rank, energy, (uint64_t)seed, iters);
  const int64_t k = res.k;
  Tensor A = Tensor::empty(DType::f64, {k, n}, Device{}), B = Tensor::empty(DType::f64, {m, k}, Device{});
  Tensor s = Tensor::empty(DType::f64, {k}, Device{});
  // The balanced split (as PiSSA): B = U·√Σ, A = √Σ·Vᵀ, so both factors carry the same scale.
  for (int64_t i = 0; i < k; i++) {
    const double sq = std::sqrt(res.s[(size_t)i]);
    s.data<double>()[i] = res.s[(size_t)i];
    for (int64_t c = 0; c < n; c++) A.data<double>()[i * n + c] = sq * res.V[(size_t)(c * k + i)];
    for (int64_t a = 0; a < m; a++) B.data<double>()[a * k + i] = sq * res.U[(size_t)(a * k + i)];
  }
  Napi::Object out = Napi::Object::New(env);
  auto conv = [&](Tensor t) -> Napi::Value {
    if (W.dtype != DType::f64) t = cast_contiguous(t, W.dtype);
    return wrap(env, to_device(t, W.device()));
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
  exports.Set("lowrankSparsePattern", Napi::Function::New(env, MakeSparsePattern, "lowrankSparsePattern"));
  exports.Set("lowrankSparsePatternDispose", Napi::Function::New(env, DisposeSparsePattern, "lowrankSparsePatternDispose"));
  exports.Set("lowrankSvd", Napi::Function::New(env, Svd, "lowrankSvd"));
}

}  // namespace structura
