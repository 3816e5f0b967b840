// ops/dense.cc — dense products on the CPU GEMM core (cpu/gemm.h).
//
//   matmul(a, b, transA, transB) → c [..., M, N]
//     a [..., M, K] (or [..., K, M] when transA), b [..., K, N] (or [..., N, K] when transB); the batch
//     dimensions broadcast (numpy rules). A 1-D operand is numpy's vector: a [K] acts as [1, K] and b [K]
//     as [K, 1], and that dimension is dropped from c (the trans flag of a 1-D operand is ignored).
//     float32 and float64 natively; float16 / bfloat16 are computed in float32 and rounded once.
//   gemm(C, A, B, alpha, beta, transA, transB, bias?, probe?): C[M, N] = alpha·op(A)·op(B) + beta·C (+ bias[N]),
//     on a device float32 with C row-major (cuda/dense.cu, one launch);
//     in place, for 2-D float32/float64 tensors with any strides (C may be a view; it must not overlap
//     itself, A or B). probe is a test hook for the GEMM's per-block epilogue (see run_gemm).
//   gemmBlocking(dtype) → {mr, nr, kc}: the register tile and K block at the current SIMD level (tests).
//
// Operands are read through their strides when each matrix has a unit stride in one of its last two
// dimensions (transposes and row slices are free); anything else is made contiguous first.
#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "cuda_abi.h"
#include "device.h"
#include "ops/ops.h"
#include "tensor.h"
#include "threadpool.h"

namespace structura {

namespace {

bool opt_bool(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  if (info.Length() <= i || info[i].IsUndefined()) return false;
  return get_bool(info, i, arg);
}

std::string flag_str(const char* name, bool v) { return std::string(name) + "=" + (v ? "true" : "false"); }

// (row stride, column stride) of the logical matrix op(X) held in the last two dims of t.
void matrix_strides(const Tensor& t, bool trans, int64_t& rs, int64_t& cs) {
  const int64_t nd = t.ndim();
  const int64_t s0 = t.strides[nd - 2], s1 = t.strides[nd - 1];
  rs = trans ? s1 : s0;
  cs = trans ? s0 : s1;
}

// True if the last two dims can be read in place: one of them has unit stride (or size 1).
bool readable_in_place(const Tensor& t) {
  const int64_t nd = t.ndim();
  if (nd < 2) return true;
  const bool u0 = t.shape[nd - 2] <= 1 || t.strides[nd - 2] == 1;
  const bool u1 = t.shape[nd - 1] <= 1 || t.strides[nd - 1] == 1;
  return u0 || u1;
}

// Element offsets of every matrix of t (ndim ≥ 2) over the broadcast batch shape `batch`.
// Whether t holds more than one matrix (a batch dimension above 1), rather than one shared by the batch.
bool batched(const Tensor& t) {
  for (int64_t d = 0; d < t.ndim() - 2; d++)
    if (t.shape[d] > 1) return true;
  return false;
}

std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch, int64_t count) {
  const int64_t nb = (int64_t)batch.size(), tb = t.ndim() - 2;
  Shape st(nb, 0);
  for (int64_t d = 0; d < tb; d++) {
    const int64_t o = nb - tb + d;
    st[o] = (t.shape[d] == 1 && batch[o] != 1) ? 0 : t.strides[d];
  }
  std::vector<int64_t> off((size_t)count);
  std::vector<int64_t> idx((size_t)nb, 0);
  int64_t cur = 0;
  for (int64_t b = 0; b < count; b++) {
    off[(size_t)b] = cur;
    for (int64_t d = nb - 1; d >= 0; d--) {  // odometer increment
      idx[d]++;
      cur += st[d];
      if (idx[d] < batch[d]) break;
      cur -= st[d] * batch[d];
      idx[d] = 0;
    }
  }
  return off;
}

// If every batch matrix of a is the next block of rows of one taller matrix (a row-major stack, the
// x·W case), returns true: the batch folds into M and one large GEMM replaces many small ones.
bool batch_folds_into_rows(const Tensor& a, const Shape& batch, int64_t M, int64_t rs_a) {
  const int64_t nb = (int64_t)batch.size(), tb = a.ndim() - 2;
  int64_t expect = M * rs_a;
  for (int64_t o = nb - 1; o >= 0; o--) {
    if (batch[o] == 1) continue;
    const int64_t d = o - (nb - tb);
    if (d < 0 || a.shape[d] != batch[o] || a.strides[d] != expect) return false;
    expect *= batch[o];
  }
  return true;
}

template <class T>
void run_matmul(const Tensor& a, const Tensor& b, Tensor& c, bool ta, bool tb, const Shape& batch, int64_t count,
                int64_t M, int64_t N, int64_t K, bool b_batched) {
  int64_t rs_a, cs_a, rs_b, cs_b;
  matrix_strides(a, ta, rs_a, cs_a);
  matrix_strides(b, tb, rs_b, cs_b);
  const T* A = a.data<T>();
  const T* B = b.data<T>();
  T* C = c.data<T>();
  if (count == 1 || (!b_batched && batch_folds_into_rows(a, batch, M, rs_a))) {
    gemm<T>(count * M, N, K, T(1), A, rs_a, cs_a, B, rs_b, cs_b, T(0), C, N, 1);
    return;
  }
  std::vector<int64_t> oa = batch_offsets(a, batch, count), ob = batch_offsets(b, batch, count);
  gemm_batched_fn<T>(count, M, N, K, T(1), rs_a, cs_a, rs_b, cs_b, T(0), N, 1,
                     [&](int64_t i, const T** pa, const T** pb, T** pc) {
                       *pa = A + oa[(size_t)i];
                       *pb = B + ob[(size_t)i];
                       *pc = C + i * M * N;
                     });
}

// float16 / bfloat16 on the CPU: one product (or a batch that folds into rows) goes to gemm_half,
// which converts the operands to float32 as it packs them (or a few rows at a time on the skinny
// paths), in place and with any strides: no float32 copy of either, and a decode-shaped x·Wᵀ reads W
// at half the bytes. A batch of separate products large enough to use every thread each goes to it
// product by product; false for a batch of small ones (the caller converts them and runs them side by
// side on the pool).
bool run_matmul_half(const Tensor& a, const Tensor& b, Tensor& c, bool ta, bool tb, const Shape& batch, int64_t count,
                     int64_t M, int64_t N, int64_t K) {
  int64_t rs_a, cs_a, rs_b, cs_b;
  matrix_strides(a, ta, rs_a, cs_a);
  matrix_strides(b, tb, rs_b, cs_b);
  const bool b_batched = batched(b);
  auto kind = [](DType dt) { return dt == DType::bf16 ? Half::bf16 : dt == DType::f16 ? Half::f16 : Half::none; };
  if (count == 1 || (!b_batched && batch_folds_into_rows(a, batch, M, rs_a))) {
    gemm_half(count * M, N, K, 1.f, a.raw(), kind(a.dtype), rs_a, cs_a, b.raw(), kind(b.dtype), rs_b, cs_b, 0.f,
              c.data<float>(), N, 1);
    return true;
  }
  // gemm_batched_fn's rule: below this a product runs on one thread, several side by side
  if ((double)M * (double)N * (double)K < 64.0 * 64.0 * 256.0 * num_threads()) return false;
  const std::vector<int64_t> oa = batch_offsets(a, batch, count), ob = batch_offsets(b, batch, count);
  const uint16_t* A = a.data<uint16_t>();
  const uint16_t* B = b.data<uint16_t>();
  for (int64_t i = 0; i < count; i++)
    gemm_half(M, N, K, 1.f, A + oa[(size_t)i], kind(a.dtype), rs_a, cs_a, B + ob[(size_t)i], kind(b.dtype), rs_b, cs_b,
              0.f, c.data<float>() + i * M * N, N, 1);
  return true;
}

// ---- on a device: cuda/dense.cu ----------------------------------------------------------------

// The (trans, leading dimension) pair of cuda/dense.cu for a logical rows×cols matrix with strides
// (rs, cs): row-major when its columns are unit-stride, else stored transposed when its rows are.
// A dimension of size 1 has no stride to respect. False when neither holds (the caller copies).
bool dense_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int& trans, int64_t& ld) {
  if (cs == 1 || cols == 1) {
    trans = 0;
    ld = rows == 1 ? cols : rs;
    return ld >= cols;
  }
  if (rs == 1 || rows == 1) {
    trans = 1;
    ld = cols == 1 ? rows : cs;
    return ld >= rows;
  }
  return false;
}

// An operand of cuda/dense.cu: op(t) is rows×cols (t's last two dims, transposed when `trans`); sets
// the kernel's (trans, ld) and returns t, gathered contiguous on its device first when neither of its
// last two dims is unit-stride. rs / cs receive the strides of op(t) as read.
Tensor device_operand(const Tensor& t, bool trans, int64_t rows, int64_t cols, int& k_trans, int64_t& ld, int64_t& rs,
                      int64_t& cs) {
  matrix_strides(t, trans, rs, cs);
  if (dense_layout(rows, cols, rs, cs, k_trans, ld)) return t;
  Tensor g = contiguous(t);
  matrix_strides(g, trans, rs, cs);
  dense_layout(rows, cols, rs, cs, k_trans, ld);
  return g;
}

// The batch stride that maps batch i to off[i] = off[0] + i·stride, if there is one.
bool uniform_stride(const std::vector<int64_t>& off, int64_t& stride) {
  stride = off.size() > 1 ? off[1] - off[0] : 0;
  for (size_t i = 1; i < off.size(); i++)
    if (off[i] - off[i - 1] != stride) return false;
  return true;
}

// c [count·M, N] (contiguous) = op(a)·op(b) for every batch matrix, on a's device, in a's dtype
// (float32 on the SIMT kernel; float16 / bfloat16 on tensor cores with float32 accumulation).
void device_matmul(Napi::Env env, Tensor a, Tensor b, Tensor& c, bool ta, bool tb, const Shape& batch, int64_t count,
                   int64_t M, int64_t N, int64_t K) {
  int64_t rs_a, cs_a, rs_b, cs_b;
  structura_gemm_params p{};
  p.dtype = p.out_dtype = gemm_dtype(a.dtype);
  p.alpha = 1.f;
  a = device_operand(a, ta, M, K, p.trans_a, p.lda, rs_a, cs_a);
  b = device_operand(b, tb, K, N, p.trans_b, p.ldb, rs_b, cs_b);
  const bool b_batched = batched(b);
  // The wgmma kernel (sm_90) reads B stored [N, K] only: for a large 16-bit product with B stored
  // [K, N], transposing B first (cuda/copy.cu's tiled transpose: 2·K·N elements moved, against
  // 2·M·N·K flops) lets it run instead of mma.sync.
  int wgmma = 0;
  if (p.dtype != STRUCTURA_DT_F32 && !p.trans_a && !p.trans_b && !b_batched && M * count >= 256 && N >= 256 &&
      K >= 256 && K % 8 == 0)
    device_launch(env, "matmul", a.device(), [&](bool emu) {
      wgmma = STRUCTURA_KERNEL(gemm_wgmma_active, emu);
      return 0;
    });
  if (wgmma) {
    Tensor bt = b;  // the logical [K, N] matrix of b, viewed as [N, K], then gathered
    bt.shape = {N, K};
    bt.strides = {cs_b, rs_b};
    b = contiguous(bt);
    p.trans_b = 1;
    p.ldb = K;
    rs_b = 1, cs_b = K;
  }
  p.m = M, p.n = N, p.k = K, p.ldc = N;
  p.out = c.raw();
  const size_t es = dtype_size(a.dtype);
  std::vector<int64_t> oa, ob;
  int64_t sa = 0, sb = 0;
  if (count > 1 && !b_batched && !p.trans_a && rs_a >= K && batch_folds_into_rows(a, batch, M, rs_a)) {
    p.m = count * M;  // a row-major stack times one matrix: one tall product
    p.lda = rs_a;
    count = 1;
  }
  if (count > 1) {
    oa = batch_offsets(a, batch, count);
    ob = batch_offsets(b, batch, count);
  }
  const bool uniform = count <= 1 || (uniform_stride(oa, sa) && uniform_stride(ob, sb));
  const Device dev = a.device();
  // One launch per run of batch indices the kernel can take at once (grid.z ≤ 65535, uniform strides).
  const int64_t chunk = uniform ? 65535 : 1;
  for (int64_t b0 = 0; b0 < std::max<int64_t>(count, 1); b0 += chunk) {
    structura_gemm_params q = p;
    q.batch = std::min<int64_t>(chunk, std::max<int64_t>(count, 1) - b0);
    q.a = (const char*)a.raw() + (count > 1 ? oa[(size_t)b0] : 0) * (int64_t)es;
    q.b = (const char*)b.raw() + (count > 1 ? ob[(size_t)b0] : 0) * (int64_t)es;
    q.out = (char*)c.raw() + b0 * M * N * (int64_t)es;
    q.stride_a = sa, q.stride_b = sb, q.stride_out = M * N;
    device_launch(env, "matmul", dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &q, nullptr); });
  }
}

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Tensor a0 = unwrap(info[0], "a");
  const Tensor b0 = unwrap(info[1], "b");
  const bool ta_in = opt_bool(info, 2, "transA"), tb_in = opt_bool(info, 3, "transB");
  if (a0.device() != b0.device())
    throw_type(env, "structura.matmul: 'a' is on " + a0.device().str() + " but 'b' is on " + b0.device().str() +
                        "; move one with .to()");
  if (!is_floating(a0.dtype))
    throw_type(env, std::string("structura.matmul: 'a' must be a floating dtype, got ") + dtype_name(a0.dtype));
  if (!is_floating(b0.dtype))
    throw_type(env, std::string("structura.matmul: 'b' must be a floating dtype, got ") + dtype_name(b0.dtype));
  if (a0.dtype != b0.dtype)
    throw_type(env, std::string("structura.matmul: 'a' is ") + dtype_name(a0.dtype) + " but 'b' is " +
                        dtype_name(b0.dtype) + "; cast one of them");
  if (a0.ndim() < 1) throw_range(env, "structura.matmul: 'a' must have at least 1 dimension, got shape []");
  if (b0.ndim() < 1) throw_range(env, "structura.matmul: 'b' must have at least 1 dimension, got shape []");

  // Views with the 1-D operands promoted (no copy): a [K] → [1, K], b [K] → [K, 1].
  Tensor a = a0, b = b0;
  const bool a_vec = a.ndim() == 1, b_vec = b.ndim() == 1;
  bool ta = ta_in && !a_vec, tb = tb_in && !b_vec;
  if (a_vec) {
    a.shape = {1, a0.shape[0]};
    a.strides = {0, a0.strides[0]};
  }
  if (b_vec) {
    b.shape = {b0.shape[0], 1};
    b.strides = {b0.strides[0], 0};
  }
  const int64_t na = a.ndim(), nbd = b.ndim();
  const int64_t M = ta ? a.shape[na - 1] : a.shape[na - 2];
  const int64_t Ka = ta ? a.shape[na - 2] : a.shape[na - 1];
  const int64_t Kb = tb ? b.shape[nbd - 1] : b.shape[nbd - 2];
  const int64_t N = tb ? b.shape[nbd - 2] : b.shape[nbd - 1];
  if (Ka != Kb)
    throw_range(env, "structura.matmul: inner dimensions differ: 'a' " + shape_str(a0.shape) + " (" +
                         flag_str("transA", ta) + ") has K = " + std::to_string(Ka) + ", 'b' " + shape_str(b0.shape) +
                         " (" + flag_str("transB", tb) + ") has K = " + std::to_string(Kb));
  const int64_t K = Ka;
  Shape a_batch(a.shape.begin(), a.shape.end() - 2), b_batch(b.shape.begin(), b.shape.end() - 2), batch;
  if (!broadcast_shapes(a_batch, b_batch, batch))
    throw_range(env, "structura.matmul: batch dimensions of 'a' " + shape_str(a0.shape) + " and 'b' " +
                         shape_str(b0.shape) + " do not broadcast");
  long double total = 1;
  for (auto d : batch) total *= (long double)d;
  if (total * (long double)M * (long double)N > (long double)kMaxNumel)
    throw_range(env, "structura.matmul: the result of 'a' " + shape_str(a0.shape) + " · 'b' " + shape_str(b0.shape) +
                         " would be too large");
  int64_t count = 1;
  for (auto d : batch) count *= d;

  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(M);
  if (!b_vec) out_shape.push_back(N);
  const DType dt = a0.dtype;
  if (a0.device().type != DeviceType::cpu) {
    if (dt == DType::f64)
      throw_type(env, "structura.matmul: float64 is not implemented on " + a0.device().str() +
                          " (float32, float16 and bfloat16 are); cast, or compute on the CPU");
    Tensor c = Tensor::empty(dt, out_shape, a0.device());
    if (c.numel() > 0) device_matmul(env, a, b, c, ta, tb, batch, count, M, N, K);
    return wrap(env, std::move(c));
  }
  const bool half = dt == DType::f16 || dt == DType::bf16;
  const DType cdt = half ? DType::f32 : dt;
  Tensor c = Tensor::empty(cdt, out_shape, a0.device());
  if (c.numel() > 0 && !(half && run_matmul_half(a, b, c, ta, tb, batch, count, M, N, K))) {
    // Half types (a batch of separate products): one conversion to float32 (contiguous); otherwise in
    // place when the strides allow.
    Tensor ac = half ? cast_contiguous(a, DType::f32) : (readable_in_place(a) ? a : contiguous(a));
    Tensor bc = half ? cast_contiguous(b, DType::f32) : (readable_in_place(b) ? b : contiguous(b));
    const bool b_batched = batched(bc);
    if (cdt == DType::f64) run_matmul<double>(ac, bc, c, ta, tb, batch, count, M, N, K, b_batched);
    else run_matmul<float>(ac, bc, c, ta, tb, batch, count, M, N, K, b_batched);
  }
  // (cast_contiguous: the elementwise module's SIMD rounding; copy_to_contiguous's per-element
  // conversion through double was 7% of a bfloat16 512×4096×4096 product)
  if (half) return wrap(env, cast_contiguous(c, dt));
  return wrap(env, std::move(c));
}

// The in-place update, with the optional bias epilogue. probe (tests of the block hook of cpu/gemm.h):
// 'check' records every block handed to the hook and returns {blocks, coverage, final}: whether the
// blocks tiled C exactly once and whether C already held its final values when its block was reported;
// 'throw' makes the hook throw on the block holding C's last element (the error must reach JS).
template <class T>
Napi::Value run_gemm(Napi::Env env, Tensor& C, const Tensor& A, const Tensor& B, const Tensor* bias, int64_t M,
                     int64_t N, int64_t K, double alpha, double beta, int64_t rs_a, int64_t cs_a, int64_t rs_b,
                     int64_t cs_b, const std::string& probe) {
  const int64_t rs = C.strides[0], cs = C.strides[1];
  T* c = C.data<T>();
  GemmEpilogue<T> epi;
  if (bias) {
    epi.bias = bias->data<T>();
    epi.bias_stride = bias->strides[0];
  }
  std::mutex mu;
  std::vector<int> count;
  std::vector<T> snap;
  int64_t blocks = 0;
  if (probe == "check") {
    count.assign((size_t)(M * N), 0);
    snap.assign((size_t)(M * N), T(0));
    epi.block = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      std::lock_guard<std::mutex> g(mu);
      blocks++;
      for (int64_t i = std::max<int64_t>(i0, 0); i < std::min(i1, M); i++)
        for (int64_t j = std::max<int64_t>(j0, 0); j < std::min(j1, N); j++) {
          count[(size_t)(i * N + j)]++;
          snap[(size_t)(i * N + j)] = c[i * rs + j * cs];
        }
    };
  } else if (probe == "throw") {
    epi.block = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      if (i0 <= M - 1 && M - 1 < i1 && j0 <= N - 1 && N - 1 < j1)
        throw std::runtime_error("structura.gemm: probe exception from the block hook");
    };
  }
  gemm<T>(M, N, K, (T)alpha, A.data<T>(), rs_a, cs_a, B.data<T>(), rs_b, cs_b, (T)beta, c, rs, cs,
          bias || !probe.empty() ? &epi : nullptr);
  if (probe != "check") return env.Undefined();
  bool coverage = true, final_values = true;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      const size_t e = (size_t)(i * N + j);
      if (count[e] != 1) coverage = false;
      const T v = c[i * rs + j * cs];
      if (!(snap[e] == v || (snap[e] != snap[e] && v != v))) final_values = false;
    }
  Napi::Object r = Napi::Object::New(env);
  r.Set("blocks", (double)blocks);
  r.Set("coverage", coverage);
  r.Set("final", final_values);
  return r;
}

// gemm on a device (float32): C = alpha·op(A)·op(B) + beta·C + bias in one launch, C row-major
// (unit column stride) as the kernel writes it; alpha = 0 reads neither A nor B (K = 0 gives the
// epilogue alone).
void device_gemm(Napi::Env env, Tensor& C, Tensor A, Tensor B, const Tensor* bias, bool ta, bool tb, int64_t M,
                 int64_t N, int64_t K, double alpha, double beta) {
  if (!(N <= 1 || C.strides[1] == 1))
    throw_range(env, "structura.gemm: on " + C.device().str() + " 'C' must have unit column stride (strides " +
                         shape_str(C.strides) + "); pass a row-major view");
  int64_t rs, cs;
  structura_gemm_params p{};
  p.dtype = p.out_dtype = STRUCTURA_DT_F32;
  A = device_operand(A, ta, M, K, p.trans_a, p.lda, rs, cs);
  B = device_operand(B, tb, K, N, p.trans_b, p.ldb, rs, cs);
  Tensor b;
  if (bias) b = bias->strides[0] == 1 || N <= 1 ? *bias : contiguous(*bias);
  p.out = C.raw();
  p.ldc = M <= 1 ? N : C.strides[0];
  p.m = M, p.n = N, p.k = alpha == 0 ? 0 : K, p.batch = 1;
  p.a = A.raw(), p.b = B.raw();
  p.alpha = (float)alpha;
  p.beta = (float)beta;
  p.c = beta != 0 ? C.raw() : nullptr;
  p.bias = bias ? b.raw() : nullptr;
  device_launch(env, "gemm", C.device(), [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &p, nullptr); });
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor C = unwrap(info[0], "C");
  const Tensor A = unwrap(info[1], "A");
  const Tensor B = unwrap(info[2], "B");
  const double alpha = get_number(info, 3, "alpha"), beta = get_number(info, 4, "beta");
  const bool ta = opt_bool(info, 5, "transA"), tb = opt_bool(info, 6, "transB");
  if (A.device() != C.device() || B.device() != C.device())
    throw_type(env, "structura.gemm: 'C', 'A' and 'B' must be on one device, got " + C.device().str() + ", " +
                        A.device().str() + " and " + B.device().str());
  if (C.device().type != DeviceType::cpu && C.dtype == DType::f64)
    throw_type(env, "structura.gemm: float64 is not implemented on " + C.device().str() +
                        " (float32 is); compute on the CPU");
  if (C.dtype != DType::f32 && C.dtype != DType::f64)
    throw_type(env, std::string("structura.gemm: 'C' must be float32 or float64, got ") + dtype_name(C.dtype));
  require_dtype(env, A, C.dtype, "gemm", "A");
  require_dtype(env, B, C.dtype, "gemm", "B");
  if (C.ndim() != 2 || A.ndim() != 2 || B.ndim() != 2)
    throw_range(env, "structura.gemm: 'C', 'A' and 'B' must be 2-D, got " + shape_str(C.shape) + ", " +
                         shape_str(A.shape) + " and " + shape_str(B.shape));
  const int64_t M = ta ? A.shape[1] : A.shape[0], Ka = ta ? A.shape[0] : A.shape[1];
  const int64_t Kb = tb ? B.shape[1] : B.shape[0], N = tb ? B.shape[0] : B.shape[1];
  if (Ka != Kb || C.shape[0] != M || C.shape[1] != N)
    throw_range(env, "structura.gemm: shapes do not match: 'C' " + shape_str(C.shape) + ", 'A' " + shape_str(A.shape) +
                         " (" + flag_str("transA", ta) + "), 'B' " + shape_str(B.shape) + " (" + flag_str("transB", tb) +
                         ")");
  if (C.storage == A.storage || C.storage == B.storage)
    throw_range(env, std::string("structura.gemm: 'C' shares its storage with '") +
                         (C.storage == A.storage ? "A" : "B") + "'; the result would overwrite its own input");
  // C's elements must be distinct (threads write disjoint tiles): one stride spans the other dimension.
  const int64_t rs = C.strides[0], cs = C.strides[1];
  const bool rows_ok = M <= 1 || rs >= 1, cols_ok = N <= 1 || cs >= 1;
  const bool disjoint = M <= 1 || N <= 1 || rs >= N * cs || cs >= M * rs;
  if (!(rows_ok && cols_ok && disjoint))
    throw_range(env, "structura.gemm: 'C' (shape " + shape_str(C.shape) + ", strides " + shape_str(C.strides) +
                         ") has overlapping elements");
  Tensor bias_holder;
  const Tensor* bias = nullptr;
  if (info.Length() > 7 && !info[7].IsUndefined() && !info[7].IsNull()) {
    bias_holder = unwrap(info[7], "bias");
    bias = &bias_holder;
    if (bias->device() != C.device())
      throw_type(env, "structura.gemm: 'bias' is on " + bias->device().str() + " but 'C' is on " + C.device().str());
    require_dtype(env, *bias, C.dtype, "gemm", "bias");
    if (bias->ndim() != 1 || bias->shape[0] != N)
      throw_range(env, "structura.gemm: 'bias' must have shape [" + std::to_string(N) + "], got " +
                           shape_str(bias->shape));
    if (bias->storage == C.storage)
      throw_range(env, "structura.gemm: 'bias' shares its storage with 'C'");
  }
  std::string probe;
  if (info.Length() > 8 && !info[8].IsUndefined()) {
    probe = get_string(info, 8, "probe");
    if (probe != "check" && probe != "throw")
      throw_range(env, "structura.gemm: 'probe' must be 'check' or 'throw', got '" + probe + "'");
  }
  int64_t rs_a, cs_a, rs_b, cs_b;
  matrix_strides(A, ta, rs_a, cs_a);
  matrix_strides(B, tb, rs_b, cs_b);
  if (C.device().type != DeviceType::cpu && !probe.empty())
    throw_range(env, "structura.gemm: 'probe' tests the CPU GEMM's epilogue hook; C is on " + C.device().str());
  // written in place (Storage::version), once every argument has been checked: a refused call
  // changes nothing, and a graph that saved C is not failed by it
  C.storage->version++;
  if (C.device().type != DeviceType::cpu) {
    device_gemm(env, C, A, B, bias, ta, tb, M, N, Ka, alpha, beta);
    return env.Undefined();
  }
  if (C.dtype == DType::f64)
    return run_gemm<double>(env, C, A, B, bias, M, N, Ka, alpha, beta, rs_a, cs_a, rs_b, cs_b, probe);
  return run_gemm<float>(env, C, A, B, bias, M, N, Ka, alpha, beta, rs_a, cs_a, rs_b, cs_b, probe);
}

Napi::Value GemmBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DType dt = get_dtype(info, 0, "dtype");
  if (dt != DType::f32 && dt != DType::f64)
    throw_type(env, std::string("structura.gemmBlocking: 'dtype' must be float32 or float64, got ") + dtype_name(dt));
  const bool d = dt == DType::f64;
  Napi::Object r = Napi::Object::New(env);
  r.Set("mr", gemm_block_mr(d));
  r.Set("nr", gemm_block_nr(d));
  r.Set("kc", gemm_block_kc(d));
  return r;
}

}  // namespace

void register_dense(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  exports.Set("gemmBlocking", Napi::Function::New(env, GemmBlocking, "gemmBlocking"));
}

}  // namespace structura
