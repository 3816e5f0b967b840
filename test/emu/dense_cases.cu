// dense_cases.cu — cuda/dense.cu (structura_gemm) through the emulator: the mma.sync bf16/f16 kernel
// and the SIMT f32 kernel against a float64 reference computed from the inputs as stored (already
// rounded to bf16/f16), for M, N, K over {1, 15, 16, 17, 127, 128, 129}, all four transpose layouts,
// 16-byte-aligned operands (cp.async / float4 path) and tight or offset ones (scalar path), batched
// with per-batch and shared (stride 0) operands, and every epilogue option. Outputs are NaN-filled
// first; every element is checked, and the padding columns and gaps between batches must stay NaN.
// The emulator's race / bounds / cp.async checks run throughout: any report fails the case.
// Tolerance, |err| ≤ 1e-4·S + u_out·|ref| + 2^-21·|residual|, where S = |alpha|·Σ|a·b| + |s|·Σ|t·r| +
// |bias| + |beta·c| (kernels_design.md §2: 1e-4·(|A||B|)ij for the product, the same bound for the
// f32 epilogue terms; gelu's slope is ≤ 1.13 so it does not grow it past that) and u_out the output's
// unit roundoff (2^-8 bf16, 2^-11 f16, 2^-22 f32) for the final rounding, + half the output's subnormal
// spacing (2^-25 for f16; 2^-126 otherwise) for results below its normal range.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "harness.h"
#include "structura_cuda.h"

using namespace harness;

namespace {

struct Cfg {
  int dt = STRUCTURA_DT_BF16, out_dt = STRUCTURA_DT_F32;
  int m = 1, n = 1, k = 1, batch = 1;
  bool ta = false, tb = false;
  int align = 1;          // 1: ld rounded up to 8 and 256-byte bases; 0: tight ld, bases offset by 1 element
  bool bias = false, c = false, res = false;
  int rank = 0;
  int act = STRUCTURA_ACT_NONE;
  bool share_b = false;   // B, bias and R with batch stride 0
  bool inplace = false;   // c == out
  float alpha = 1.f, beta = 0.f, scale = 0.f;
};

double dt_round(double x, int dt) {
  if (dt == STRUCTURA_DT_F32) return (double)(float)x;
  if (dt == STRUCTURA_DT_BF16) return emu::bf16_to_f32(emu::f32_to_bf16_rn((float)x));
  return emu::f16_to_f32(emu::f32_to_f16_rn((float)x));
}
size_t dt_size(int dt) { return dt == STRUCTURA_DT_F32 ? 4 : 2; }

// A host matrix of `batch` slabs [rows, ld] (slab stride `stride`), values already in dtype, plus its
// bytes at element offset `off` in a device buffer.
struct Mat {
  int dt = STRUCTURA_DT_F32;
  int64_t rows = 0, cols = 0, ld = 0, stride = 0, off = 0, batches = 0;
  std::vector<double> v;      // the values as stored (rounded), [batches][rows][ld]; padding 0
  void* dev = nullptr;
  size_t bytes = 0;
  const double& at(int64_t b, int64_t i, int64_t j) const { return v[(size_t)(b * stride + i * ld + j)]; }
  ~Mat() { cudaFree(dev); }
};

void make_mat(Mat& M, Rng& rng, int dt, int64_t rows, int64_t cols, int batches, int align, bool shared, double lo,
              double hi) {
  M.dt = dt, M.rows = rows, M.cols = cols;
  M.ld = align ? (cols + 7) / 8 * 8 : cols;
  M.stride = shared ? 0 : rows * M.ld + (align ? 0 : 1);
  M.off = align ? 0 : 1;
  M.batches = shared ? 1 : batches;
  const int64_t total = M.off + (M.batches - 1) * M.stride + rows * M.ld;
  M.v.assign((size_t)(total - M.off), 0.0);
  for (int64_t b = 0; b < M.batches; b++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) M.v[(size_t)(b * M.stride + i * M.ld + j)] = dt_round(rng.uniform(lo, hi), dt);
  M.bytes = (size_t)total * dt_size(dt);
  std::vector<unsigned char> host(M.bytes, 0);
  for (size_t e = 0; e < M.v.size(); e++) {
    unsigned char* d = host.data() + (e + (size_t)M.off) * dt_size(dt);
    if (dt == STRUCTURA_DT_F32) {
      const float f = (float)M.v[e];
      std::memcpy(d, &f, 4);
    } else {
      const uint16_t h = dt == STRUCTURA_DT_BF16 ? emu::f32_to_bf16_rn((float)M.v[e]) : emu::f32_to_f16_rn((float)M.v[e]);
      std::memcpy(d, &h, 2);
    }
  }
  cudaMalloc(&M.dev, M.bytes);
  cudaMemcpy(M.dev, host.data(), M.bytes, cudaMemcpyHostToDevice);
}
const void* dptr(const Mat& M) { return M.dev ? (const unsigned char*)M.dev + M.off * dt_size(M.dt) : nullptr; }
const double& bat(const Mat& M, int64_t b, int64_t i, int64_t j) { return M.at(M.stride ? b : 0, i, j); }

std::string last_msg() {
  char msg[2048];
  structura_emu_last_error(msg, sizeof msg);
  return msg;
}

std::string describe(const Cfg& c) {
  const char* dn[] = {"f32", "f16", "bf16"};
  const char* an[] = {"none", "relu", "gelu"};
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "%s->%s M=%d N=%d K=%d batch=%d ta=%d tb=%d aligned=%d bias=%d c=%d res=%d rank=%d act=%s "
                "shared=%d inplace=%d alpha=%g beta=%g scale=%g",
                dn[c.dt], dn[c.out_dt], c.m, c.n, c.k, c.batch, c.ta, c.tb, c.align, c.bias, c.c, c.res, c.rank,
                an[c.act], c.share_b, c.inplace, c.alpha, c.beta, c.scale);
  return buf;
}

// Runs one GEMM and checks everything; adds the number of checked outputs to *checked and the worst
// err/tol to *worst.
std::string run(const Cfg& c, int64_t* checked, double* worst) {
  Rng rng(case_seed() ^ ((uint64_t)c.m * 1000003u + (uint64_t)c.n * 10007u + (uint64_t)c.k * 101u + (uint64_t)c.ta * 2 + c.tb));
  const int B = c.batch;
  Mat A, Bm, C, bias, res, T, R;
  make_mat(A, rng, c.dt, c.ta ? c.k : c.m, c.ta ? c.m : c.k, B, c.align, false, -1, 1);
  make_mat(Bm, rng, c.dt, c.tb ? c.n : c.k, c.tb ? c.k : c.n, B, c.align, c.share_b, -1, 1);
  if (c.c) make_mat(C, rng, c.out_dt, c.m, c.n, B, c.align, false, -1, 1);
  if (c.bias) make_mat(bias, rng, c.out_dt, 1, c.n, B, c.align, c.share_b, -1, 1);
  if (c.res) make_mat(res, rng, c.out_dt, c.m, c.n, B, c.align, false, -1, 1);
  if (c.rank) {
    make_mat(T, rng, c.dt, c.m, c.rank, B, c.align, false, -1, 1);
    make_mat(R, rng, c.dt, c.n, c.rank, B, c.align, c.share_b, -1, 1);
  }
  // out: ldc = N + 3 padding columns, a 5-element gap between batches, all NaN (0xFF bytes)
  const int64_t ldc = c.n + 3, so = c.m * ldc + 5;
  const size_t osz = dt_size(c.out_dt), out_elems = (size_t)(B * so);
  void* out = nullptr;
  cudaMalloc(&out, out_elems * osz);
  std::vector<unsigned char> nan_fill(out_elems * osz, 0xFF);
  cudaMemcpy(out, nan_fill.data(), nan_fill.size(), cudaMemcpyHostToDevice);

  structura_gemm_params p;
  std::memset(&p, 0, sizeof p);
  p.dtype = c.dt, p.out_dtype = c.out_dt;
  p.out = out, p.a = dptr(A), p.b = dptr(Bm);
  p.c = c.c ? dptr(C) : nullptr;
  p.bias = c.bias ? dptr(bias) : nullptr;
  p.residual = c.res ? dptr(res) : nullptr;
  p.lr_t = c.rank ? dptr(T) : nullptr;
  p.lr_r = c.rank ? dptr(R) : nullptr;
  p.m = c.m, p.n = c.n, p.k = c.k, p.r = c.rank, p.batch = B;
  p.lda = A.ld, p.ldb = Bm.ld, p.ldc = ldc, p.ldres = res.ld, p.ldt = T.ld, p.ldr = R.ld;
  p.stride_a = A.stride, p.stride_b = Bm.stride, p.stride_out = so, p.stride_c = C.stride;
  p.stride_bias = bias.stride, p.stride_res = res.stride, p.stride_t = T.stride, p.stride_r = R.stride;
  p.trans_a = c.ta, p.trans_b = c.tb, p.act = c.act;
  p.alpha = c.alpha, p.beta = c.beta, p.lr_scale = c.scale;
  // C shares ldc with out: give it out's layout
  Mat Cl;
  if (c.c) {
    Cl.dt = c.out_dt, Cl.rows = c.m, Cl.cols = c.n, Cl.ld = ldc, Cl.stride = so, Cl.batches = B;
    Cl.v.assign(out_elems, 0.0);
    std::vector<unsigned char> host(out_elems * osz, 0xFF);  // NaN outside C (out's padding)
    for (int b = 0; b < B; b++)
      for (int i = 0; i < c.m; i++)
        for (int j = 0; j < c.n; j++) {
          // with beta 0 C must not be read: make it NaN, which would poison any output that read it
          const double x = c.beta != 0.f ? C.at(b, i, j) : std::nan("");
          const size_t e = (size_t)(b * so + i * ldc + j);
          Cl.v[e] = x;
          if (c.out_dt == STRUCTURA_DT_F32) {
            const float f = (float)x;
            std::memcpy(&host[e * 4], &f, 4);
          } else {
            const uint16_t h = c.out_dt == STRUCTURA_DT_BF16 ? emu::f32_to_bf16_rn((float)x) : emu::f32_to_f16_rn((float)x);
            std::memcpy(&host[e * 2], &h, 2);
          }
        }
    if (c.inplace) {
      cudaMemcpy(out, host.data(), host.size(), cudaMemcpyHostToDevice);
      p.c = out;
    } else {
      Cl.bytes = host.size();
      cudaMalloc(&Cl.dev, Cl.bytes);
      cudaMemcpy(Cl.dev, host.data(), Cl.bytes, cudaMemcpyHostToDevice);
      p.c = Cl.dev;
    }
    p.stride_c = so;
  }

  const int rc = STRUCTURA_CUDA_FN(gemm)(&p, nullptr);
  std::vector<unsigned char> got(out_elems * osz);
  cudaMemcpy(got.data(), out, got.size(), cudaMemcpyDeviceToHost);
  cudaFree(out);
  if (rc) return describe(c) + fmt(": launcher returned %g: ", rc) + last_msg();

  const double u_out = c.out_dt == STRUCTURA_DT_BF16 ? 0x1p-8 : c.out_dt == STRUCTURA_DT_F16 ? 0x1p-11 : 0x1p-22;
  // half the spacing of the output's subnormals: the absolute rounding error below its normal range
  const double sub_out = c.out_dt == STRUCTURA_DT_F16 ? 0x1p-25 : 0x1p-126;
  for (int b = 0; b < B; b++)
    for (int64_t i = 0; i < so; i++) {
      const int64_t row = i / ldc, col = i % ldc;
      const size_t e = (size_t)(b * so + i);
      double g;
      if (c.out_dt == STRUCTURA_DT_F32) {
        float f;
        std::memcpy(&f, &got[e * 4], 4);
        g = f;
      } else {
        uint16_t h;
        std::memcpy(&h, &got[e * 2], 2);
        g = c.out_dt == STRUCTURA_DT_BF16 ? emu::bf16_to_f32(h) : emu::f16_to_f32(h);
      }
      if (row >= c.m || col >= c.n) {  // padding and gaps: untouched
        bool untouched = true;
        for (size_t q = 0; q < osz; q++) untouched &= got[e * osz + q] == 0xFF;
        if (!untouched) return describe(c) + fmt(": wrote outside the output: batch %g offset %g", b, (double)i);
        continue;
      }
      double ab = 0, sab = 0, tr = 0, str = 0;
      for (int q = 0; q < c.k; q++) {
        const double x = c.ta ? bat(A, b, q, row) : bat(A, b, row, q);
        const double y = c.tb ? bat(Bm, b, col, q) : bat(Bm, b, q, col);
        ab += x * y, sab += std::fabs(x * y);
      }
      for (int q = 0; q < c.rank; q++) {
        const double x = bat(T, b, row, q), y = bat(R, b, col, q);
        tr += x * y, str += std::fabs(x * y);
      }
      double z = c.alpha * ab, S = std::fabs(c.alpha) * sab;
      if (c.rank) z += c.scale * tr, S += std::fabs(c.scale) * str;
      if (c.bias) z += bat(bias, b, 0, col), S += std::fabs(bat(bias, b, 0, col));
      if (c.c && c.beta != 0.f) z += c.beta * Cl.at(b, row, col), S += std::fabs(c.beta * Cl.at(b, row, col));
      if (c.act == STRUCTURA_ACT_RELU) z = z > 0 ? z : 0;
      if (c.act == STRUCTURA_ACT_GELU) z = 0.5 * z * (1 + std::erf(z / std::sqrt(2.0)));
      double rv = 0;
      if (c.res) rv = bat(res, b, row, col), z += rv;
      const double tol = 1e-4 * S + u_out * std::fabs(z) + 0x1p-21 * std::fabs(rv) + sub_out;
      const double err = std::fabs(g - z);
      if (!(err <= tol))
        return describe(c) + fmt(": out[%g][%g][%g] = %.9g", b, (double)row, (double)col, g) +
               fmt(", reference %.9g (tolerance %.3g)", z, tol);
      *worst = std::max(*worst, err / tol);
      (*checked)++;
    }
  return "";
}

std::string run_all(const std::vector<Cfg>& cfgs) {
  const size_t live = structura_emu_live_allocations();
  int64_t checked = 0;
  double worst = 0;
  for (const Cfg& c : cfgs) {
    std::string r = run(c, &checked, &worst);
    if (!r.empty()) return r;
  }
  if (structura_emu_live_allocations() != live) return "device buffers leaked";
  set_detail(fmt("%g GEMMs, %g outputs checked, worst err/tol %.3f", (double)cfgs.size(), (double)checked, worst));
  return "";
}

// (M, N, K) over {1, 15, 16, 17, 127, 128, 129}³, all 343 combinations (tile-exact, one under, one
// over, thin and flat), cycling through the four layouts and both load paths.
std::vector<Cfg> shape_sweep(int dt, int out_dt) {
  const int sizes[] = {1, 15, 16, 17, 127, 128, 129};
  std::vector<Cfg> v;
  int i = 0;
  for (int m : sizes)
    for (int n : sizes)
      for (int k : sizes) {
        Cfg c;
        c.dt = dt, c.out_dt = out_dt;
        c.m = m, c.n = n, c.k = k;
        c.ta = (i >> 1) & 1, c.tb = i & 1;
        c.align = (i / 4 + i / 28) % 2 == 0;  // 28 = 4·7: the path pattern does not lock to one size
        v.push_back(c);
        i++;
      }
  return v;
}

// every layout × both load paths at one ragged size, batched
std::vector<Cfg> layout_sweep(int dt, int out_dt) {
  std::vector<Cfg> v;
  for (int l = 0; l < 8; l++) {
    Cfg c;
    c.dt = dt, c.out_dt = out_dt;
    c.m = 129, c.n = 17, c.k = 47, c.batch = 2;
    c.ta = l & 1, c.tb = (l >> 1) & 1, c.align = l >> 2;
    v.push_back(c);
  }
  return v;
}

// each epilogue option alone, then all together, batched, with shared (stride 0) B / bias / R
std::vector<Cfg> epilogue_sweep(int dt, int out_dt) {
  std::vector<Cfg> v;
  Cfg base;
  base.dt = dt, base.out_dt = out_dt;
  base.m = 33, base.n = 17, base.k = 40, base.batch = 3;
  auto add = [&](auto f) {
    Cfg c = base;
    f(c);
    v.push_back(c);
  };
  add([](Cfg& c) { c.alpha = -0.75f; });
  add([](Cfg& c) { c.bias = true; });
  add([](Cfg& c) { c.c = true, c.beta = 0.5f; });
  add([](Cfg& c) { c.c = true, c.beta = 0.f; });
  add([](Cfg& c) { c.c = c.inplace = true, c.beta = -1.f, c.tb = true; });  // beta 0: C must not be read (NaN there would show)
  add([](Cfg& c) { c.res = true, c.align = 0; });
  add([](Cfg& c) { c.act = STRUCTURA_ACT_RELU; });
  add([](Cfg& c) { c.act = STRUCTURA_ACT_GELU, c.tb = true; });
  add([](Cfg& c) { c.rank = 3, c.scale = 0.5f; });
  add([](Cfg& c) { c.k = 0, c.bias = true, c.rank = 2, c.scale = 1.f; });  // an empty product: the epilogue alone
  add([](Cfg& c) { c.rank = 16, c.scale = 2.f, c.share_b = true, c.ta = true; });
  add([](Cfg& c) {
    c.bias = c.c = c.res = c.share_b = true;
    c.rank = 5, c.scale = -1.5f, c.alpha = 1.25f, c.beta = -0.5f, c.act = STRUCTURA_ACT_GELU, c.tb = true;
  });
  add([](Cfg& c) {
    c.bias = c.c = c.res = true;
    c.rank = 2, c.scale = 0.25f, c.beta = 2.f, c.act = STRUCTURA_ACT_RELU, c.align = 0, c.ta = c.tb = true;
    c.m = 1, c.n = 129, c.k = 1;
  });
  return v;
}

// the epilogue sweep at decode shapes (M = 5 ≤ 16, K = 40, N = 24, rows 16-byte aligned): x·Wᵀ (tb)
// runs the decode kernel (16-bit, or float32's own), x·W the N-major one (16-bit); the options whose
// layout does not fit (A transposed, unaligned rows) fall back to the tile kernels
std::vector<Cfg> decode_epilogue_sweep(int dt, int out_dt) {
  std::vector<Cfg> v;
  for (Cfg c : epilogue_sweep(dt, out_dt)) {
    c.m = 5, c.n = 24, c.k = c.k == 0 ? 0 : 40;
    for (const bool tb : {true, false}) {
      c.tb = tb;
      v.push_back(c);
    }
  }
  return v;
}

}  // namespace

EMU_CASE(dense_bf16_shapes) { return run_all(shape_sweep(STRUCTURA_DT_BF16, STRUCTURA_DT_F32)); }
EMU_CASE(dense_f16_shapes) { return run_all(shape_sweep(STRUCTURA_DT_F16, STRUCTURA_DT_F16)); }
EMU_CASE(dense_f32_shapes) { return run_all(shape_sweep(STRUCTURA_DT_F32, STRUCTURA_DT_F32)); }
EMU_CASE(dense_bf16_layouts_batched) {
  std::vector<Cfg> v = layout_sweep(STRUCTURA_DT_BF16, STRUCTURA_DT_BF16);
  for (Cfg& c : layout_sweep(STRUCTURA_DT_F16, STRUCTURA_DT_F32)) v.push_back(c);
  return run_all(v);
}
EMU_CASE(dense_f32_layouts_batched) { return run_all(layout_sweep(STRUCTURA_DT_F32, STRUCTURA_DT_F32)); }
EMU_CASE(dense_bf16_epilogue) {
  std::vector<Cfg> v = epilogue_sweep(STRUCTURA_DT_BF16, STRUCTURA_DT_BF16);
  for (Cfg& c : epilogue_sweep(STRUCTURA_DT_BF16, STRUCTURA_DT_F32)) v.push_back(c);
  return run_all(v);
}
EMU_CASE(dense_f16_epilogue) { return run_all(epilogue_sweep(STRUCTURA_DT_F16, STRUCTURA_DT_F16)); }
EMU_CASE(dense_f32_epilogue) { return run_all(epilogue_sweep(STRUCTURA_DT_F32, STRUCTURA_DT_F32)); }
EMU_CASE(dense_decode_epilogue) {
  std::vector<Cfg> v = decode_epilogue_sweep(STRUCTURA_DT_BF16, STRUCTURA_DT_BF16);
  for (Cfg& c : decode_epilogue_sweep(STRUCTURA_DT_F16, STRUCTURA_DT_F32)) v.push_back(c);
  for (Cfg& c : decode_epilogue_sweep(STRUCTURA_DT_F32, STRUCTURA_DT_F32)) v.push_back(c);
  return run_all(v);
}

// several CTAs in M and N, 8 K-slabs (the 3-stage ring wraps), sizes one off the tile in every way
EMU_CASE(dense_multi_tile) {
  std::vector<Cfg> v;
  const int dts[][2] = {{STRUCTURA_DT_BF16, STRUCTURA_DT_BF16}, {STRUCTURA_DT_F16, STRUCTURA_DT_F32}, {STRUCTURA_DT_F32, STRUCTURA_DT_F32}};
  for (const auto& d : dts) {
    Cfg c;
    c.dt = d[0], c.out_dt = d[1];
    c.m = 257, c.n = 255, c.k = 256, c.batch = 2, c.tb = d[0] != STRUCTURA_DT_F16, c.ta = d[0] == STRUCTURA_DT_F16;
    c.bias = c.res = true, c.act = STRUCTURA_ACT_GELU, c.rank = 4, c.scale = 0.5f;
    v.push_back(c);
    c.m = 256, c.n = 257, c.k = 255, c.align = 0, c.ta = !c.ta, c.tb = !c.tb;
    c.bias = c.res = false, c.act = STRUCTURA_ACT_NONE, c.rank = 0;
    v.push_back(c);
  }
  return run_all(v);
}

EMU_CASE(dense_bad_arguments) {
  structura_gemm_params p;
  std::memset(&p, 0, sizeof p);
  float dummy_host[4] = {0, 0, 0, 0};
  p.dtype = STRUCTURA_DT_BF16, p.out_dtype = STRUCTURA_DT_F32;
  p.out = dummy_host, p.a = dummy_host, p.b = dummy_host;
  p.m = 4, p.n = 4, p.k = 4, p.batch = 1, p.lda = 4, p.ldb = 4, p.ldc = 4, p.alpha = 1.f;
  auto expect = [&](const char* what, int want) -> std::string {
    const int rc = STRUCTURA_CUDA_FN(gemm)(&p, nullptr);
    cudaGetLastError();
    return rc == want ? "" : std::string(what) + fmt(": returned %g, expected %g", rc, want);
  };
  std::string r;
  structura_gemm_params ok = p;
  p.out_dtype = STRUCTURA_DT_F16;  // bf16 in, f16 out
  if (!(r = expect("mixed 16-bit out dtype", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.dtype = 7;
  if (!(r = expect("unknown dtype", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.act = 3;
  if (!(r = expect("unknown activation", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.lda = 3;
  if (!(r = expect("lda < K", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.trans_b = 1, p.n = 8;  // stored [N, K]: ldb ≥ K = 4 fine, but ldc 4 < N = 8
  if (!(r = expect("ldc < N", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.k = -1;
  if (!(r = expect("negative K", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.a = nullptr;
  if (!(r = expect("null A", cudaErrorInvalidValue)).empty()) return r;
  p = ok, p.m = 0;
  if (!(r = expect("M = 0 is a no-op", 0)).empty()) return r;
  p = ok, p.batch = 0;
  if (!(r = expect("batch = 0 is a no-op", 0)).empty()) return r;
  return "";
}
