// ptx_cases.cu — the cuda/ptx.cuh wrappers through the emulator, each against an independent host
// construction from the PTX fragment tables (/work/shared/notes/ptx_fragments.md):
//   a cp.async → ldmatrix → mma.sync m16n8k16 GEMM (bf16 and f16) vs a float64 reference of the
//   rounded inputs; ldmatrix x1/x2/x4 (+ .trans) round trips; mma.sync m16n8k8 (f16, bf16, tf32);
//   cp.async groups with wait_group and zfill; mma.sp m16n8k16/k32 against the densified matrix;
//   wgmma m64n256k16 through 128B-swizzle descriptors; a chain of programmatic dependent launches.
// Planted bugs: an off-by-one tile index, a wrong ldmatrix lane mapping, a read before wait_group,
// invalid 2:4 metadata, a shared write during an in-flight wgmma, a descriptor without the swizzle,
// and a launch_pdl kernel that reads or writes before pdl_wait what its predecessors may still touch.
#include <cuda_runtime.h>

#include <algorithm>

#include "harness.h"
#include "launch.cuh"
#include "ptx.cuh"
#include "tma.cuh"

using namespace harness;

static uint16_t to_bits(float x, bool bf16) { return bf16 ? emu::f32_to_bf16_rn(x) : emu::f32_to_f16_rn(x); }
static double from_bits(uint16_t h, bool bf16) { return bf16 ? emu::bf16_to_f32(h) : emu::f16_to_f32(h); }
static std::string last_msg() {
  char msg[2048];
  structura_emu_last_error(msg, sizeof msg);
  return msg;
}

// ---- GEMM tile: C[M,N] = A[M,K] · B[K,N], one warp per 16×8 tile --------------------------------

struct GemmParams {
  const void* a;  // [m, k] row-major, 16-bit
  const void* b;  // [k, n] row-major, 16-bit
  float* c;       // [m, n]
  int m, n, k;    // multiples of 16, 8, 16
};

// kPlant: 0 correct, 1 off-by-one tile row index, 2 wrong ldmatrix lane → row mapping for A
template <class T, int kPlant>
__global__ void mma_gemm_kernel(GemmParams p) {
  SMEM(T, As, [16][16]);
  SMEM(T, Bs, [16][8]);
  const dev_ptr<const T> A = gptr(static_cast<const T*>(p.a));
  const dev_ptr<const T> B = gptr(static_cast<const T*>(p.b));
  const int lane = threadIdx.x;
  const int row0 = (blockIdx.x + (kPlant == 1 ? 1 : 0)) * 16, col0 = blockIdx.y * 8;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int k0 = 0; k0 < p.k; k0 += 16) {
    const int r = lane >> 1, ch = lane & 1;  // 16 rows × two 16-byte chunks of A
    ptx::cp_async_cg(&As[r][ch * 8], A + (int64_t)(row0 + r) * p.k + k0 + ch * 8);
    if (lane < 16) ptx::cp_async_cg(&Bs[lane][0], B + (int64_t)(k0 + lane) * p.n + col0);
    ptx::cp_async_commit();
    ptx::cp_async_wait<0>();
    __syncthreads();
    uint32_t a[4], b[2];
    if (kPlant == 2) ptx::ldmatrix_x4(a, &As[lane / 2][(lane % 2) * 8]);
    else ptx::ldmatrix_x4(a, &As[lane % 16][(lane / 16) * 8]);
    ptx::ldmatrix_x2_trans(b, &Bs[lane % 16][0]);
    if (std::is_same<T, __nv_bfloat16>::value) ptx::mma_m16n8k16_bf16(acc, a, b, acc);
    else ptx::mma_m16n8k16_f16(acc, a, b, acc);
    __syncthreads();
  }
  const int g = lane >> 2, t = lane % 4;
  const dev_ptr<float> C = gptr(p.c);
  C[(int64_t)(row0 + g) * p.n + col0 + 2 * t] = acc[0];
  C[(int64_t)(row0 + g) * p.n + col0 + 2 * t + 1] = acc[1];
  C[(int64_t)(row0 + g + 8) * p.n + col0 + 2 * t] = acc[2];
  C[(int64_t)(row0 + g + 8) * p.n + col0 + 2 * t + 1] = acc[3];
}

// Runs the GEMM; "" if it matched the reference, "mismatch: …" if it ran but differs, else the error.
template <class T, int kPlant>
static std::string gemm_case(int m, int n, int k, std::string* detail) {
  const bool bf16 = std::is_same<T, __nv_bfloat16>::value;
  Rng rng(case_seed() + (uint64_t)m * 7 + (uint64_t)k);
  std::vector<uint16_t> a((size_t)m * k), b((size_t)k * n);
  for (auto& x : a) x = to_bits((float)rng.uniform(-1, 1), bf16);
  for (auto& x : b) x = to_bits((float)rng.uniform(-1, 1), bf16);
  DevBuf<uint16_t> da(a.size()), db(b.size());
  DevBuf<float> dc((size_t)m * n);
  da.upload(a);
  db.upload(b);
  GemmParams p{da.p, db.p, dc.p, m, n, k};
  cudaError_t e = structura::launch<mma_gemm_kernel<T, kPlant>>(dim3(m / 16, n / 8), 32, 0, nullptr, p);
  if (e != cudaSuccess) return "error: " + last_msg();
  const std::vector<float> c = dc.download();
  double worst = 0;
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double ref = 0, s = 0;
      for (int q = 0; q < k; q++) {
        const double pr = from_bits(a[(size_t)i * k + q], bf16) * from_bits(b[(size_t)q * n + j], bf16);
        ref += pr;
        s += std::fabs(pr);
      }
      // (K_total + steps) · 2^-23 · Σ|a·b| (notes §6.3)
      const double tol = (k + k / 16) * 0x1p-23 * s + 1e-30;
      const double err = std::fabs((double)c[(size_t)i * n + j] - ref);
      worst = std::max(worst, err / (s + 1e-30));
      if (!(err <= tol))
        return fmt("mismatch: C[%g][%g] = %.9g, reference %.9g", i, j, c[(size_t)i * n + j], ref);
    }
  if (detail) *detail = fmt("%gx%gx%g, max |err|/sum|ab| = %.2e", m, n, k, worst);
  return "";
}

EMU_CASE(mma_m16n8k16_bf16_gemm) {
  std::string d, r;
  for (int m : {16, 48})
    if (!(r = gemm_case<__nv_bfloat16, 0>(m, 24, 48, &d)).empty()) return r;
  set_detail(d);
  return "";
}
EMU_CASE(mma_m16n8k16_f16_gemm) {
  std::string d, r;
  for (int m : {16, 48})
    if (!(r = gemm_case<__half, 0>(m, 24, 48, &d)).empty()) return r;
  set_detail(d);
  return "";
}
EMU_CASE(planted_off_by_one_tile_index) {
  std::string r = gemm_case<__nv_bfloat16, 1>(48, 16, 32, nullptr);
  char msg[2048];
  const int kind = structura_emu_last_error(msg, sizeof msg);
  if (r.rfind("error: ", 0) != 0) return "expected an out-of-bounds error, got: " + (r.empty() ? std::string("success") : r);
  if (std::string(structura_emu_error_kind_name(kind)) != "out-of-bounds") return "wrong error kind: " + r;
  set_detail(msg);
  return "";
}
EMU_CASE(planted_wrong_ldmatrix_mapping) {
  std::string r = gemm_case<__half, 2>(32, 16, 32, nullptr);
  if (r.rfind("mismatch: ", 0) != 0)
    return "expected the reference comparison to catch the wrong mapping, got: " + (r.empty() ? std::string("a match") : r);
  set_detail(r);
  return "";
}

// ---- ldmatrix round trips ------------------------------------------------------------------------

__global__ void ldmatrix_kernel(const uint16_t* in, uint32_t* out, int mode) {
  SMEM(uint16_t, tile, [16][16]);
  const int lane = threadIdx.x;
  const dev_ptr<const uint16_t> src = gptr(in);
  for (int i = lane; i < 256; i += 32) tile[i / 16][i % 16] = src[i];
  __syncthreads();
  uint32_t r[4] = {0, 0, 0, 0};
  if (mode == 0) {
    ptx::ldmatrix_x4(r, &tile[lane % 16][(lane / 16) * 8]);
  } else if (mode == 1) {
    ptx::ldmatrix_x4_trans(r, &tile[lane % 16][(lane / 16) * 8]);
  } else if (mode == 2) {
    uint32_t r2[2];
    ptx::ldmatrix_x2_trans(r2, &tile[lane % 16][0]);
    r[0] = r2[0], r[1] = r2[1];
  } else if (mode == 3) {
    uint32_t r2[2];
    ptx::ldmatrix_x2(r2, &tile[lane % 16][8]);
    r[0] = r2[0], r[1] = r2[1];
  } else {
    uint32_t r1[1];
    ptx::ldmatrix_x1_trans(r1, tile[lane % 8] + 8);
    r[0] = r1[0];
  }
  const dev_ptr<uint32_t> o = gptr(out);
  for (int i = 0; i < 4; i++) o[lane * 4 + i] = r[i];
}

EMU_CASE(ldmatrix_round_trips) {
  Rng rng(case_seed());
  std::vector<uint16_t> tile(256);
  for (int i = 0; i < 256; i++) tile[i] = (uint16_t)i;
  for (int i = 255; i > 0; i--) std::swap(tile[i], tile[rng.below(i + 1)]);  // distinct values
  auto T = [&](int r, int c) { return (uint32_t)tile[r * 16 + c]; };
  DevBuf<uint16_t> din(256);
  DevBuf<uint32_t> dout(128);
  din.upload(tile);
  for (int mode = 0; mode < 5; mode++) {
    if (structura::launch<ldmatrix_kernel>(1, 32, 0, nullptr, (const uint16_t*)din.p, dout.p, mode) != cudaSuccess)
      return "error: " + last_msg();
    const std::vector<uint32_t> o = dout.download();
    std::vector<int> seen(256, 0);
    for (int l = 0; l < 32; l++) {
      const int g = l >> 2, t = l % 4;
      const int nreg = mode <= 1 ? 4 : mode <= 3 ? 2 : 1;
      for (int i = 0; i < nreg; i++)
        for (int h = 0; h < 2; h++) {
          int row, col;
          if (mode == 0) row = g + 8 * (i & 1), col = 2 * t + h + 8 * (i >> 1);           // = mma A fragment
          else if (mode == 1) row = 8 * (i & 1) + 2 * t + h, col = 8 * (i >> 1) + g;     // transposed 8×8 blocks
          else if (mode == 2) row = 2 * t + h + 8 * i, col = g;                          // = mma B fragment (K×N)
          else if (mode == 3) row = 8 * i + g, col = 8 + 2 * t + h;
          else row = 2 * t + h, col = 8 + g;
          const uint32_t got = (o[l * 4 + i] >> (16 * h)) & 0xffffu;
          if (got != T(row, col))
            return fmt("mode %g lane %g reg %g half %g: ", mode, l, i, h) +
                   fmt("got %g, expected tile[%g][%g] = %g", got, row, col, T(row, col));
          seen[row * 16 + col]++;
        }
    }
    const int covered = (int)std::count(seen.begin(), seen.end(), 1);
    const int expect = mode <= 1 ? 256 : mode <= 3 ? 128 : 64;
    if (covered != expect) return fmt("mode %g covered %g elements once, expected %g", mode, covered, expect);
  }
  set_detail("x4, x4.trans, x2.trans (= B fragment), x2, x1.trans");
  return "";
}

// ---- dense m16n8k8 (f16, bf16, tf32) with host-packed registers -----------------------------------

template <int kKind>  // 0 f16, 1 bf16, 2 tf32
__global__ void mma_k8_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  const int lane = threadIdx.x;
  uint32_t ra[4], rb[2];
  float rc[4], rd[4];
  for (int i = 0; i < 4; i++) ra[i] = gptr(a)[lane * 4 + i], rc[i] = gptr(c)[lane * 4 + i];
  for (int i = 0; i < 2; i++) rb[i] = gptr(b)[lane * 2 + i];
  if (kKind == 2) {
    ptx::mma_m16n8k8_tf32(rd, ra, rb, rc);
  } else {
    const uint32_t a2[2] = {ra[0], ra[1]}, b1[1] = {rb[0]};
    if (kKind == 0) ptx::mma_m16n8k8_f16(rd, a2, b1, rc);
    else ptx::mma_m16n8k8_bf16(rd, a2, b1, rc);
  }
  for (int i = 0; i < 4; i++) gptr(d)[lane * 4 + i] = rd[i];
}

template <int kKind>
static std::string k8_case() {
  Rng rng(case_seed() + kKind);
  double A[16][8], B[8][8], C[16][8];
  std::vector<uint32_t> ra(128, 0), rb(64, 0);
  std::vector<float> rc(128);
  auto val = [&](double x) -> std::pair<double, uint32_t> {
    if (kKind == 2) {
      const uint32_t u = emu::f32_bits((float)x) & 0xffffe000u;  // exactly tf32
      return {(double)emu::bits_f32(u), u};
    }
    const uint16_t h = to_bits((float)x, kKind == 1);
    return {from_bits(h, kKind == 1), h};
  };
  for (int r = 0; r < 16; r++)
    for (int c = 0; c < 8; c++) C[r][c] = (float)rng.uniform(-1, 1);
  for (int l = 0; l < 32; l++) {
    const int g = l >> 2, t = l % 4;
    if (kKind == 2) {  // §9.7.14.5.7 .tf32
      for (int i = 0; i < 4; i++) {
        auto v = val(rng.uniform(-1, 1));
        A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = v.first;
        ra[l * 4 + i] = v.second;
      }
      for (int i = 0; i < 2; i++) {
        auto v = val(rng.uniform(-1, 1));
        B[t + 4 * i][g] = v.first;
        rb[l * 2 + i] = v.second;
      }
    } else {  // §9.7.14.5.7 .f16/.bf16
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) {
          auto v = val(rng.uniform(-1, 1));
          A[g + 8 * i][2 * t + h] = v.first;
          ra[l * 4 + i] |= v.second << (16 * h);
        }
      for (int h = 0; h < 2; h++) {
        auto v = val(rng.uniform(-1, 1));
        B[2 * t + h][g] = v.first;
        rb[l * 2] |= v.second << (16 * h);
      }
    }
    for (int i = 0; i < 4; i++) rc[l * 4 + i] = (float)C[g + 8 * (i >> 1)][2 * t + (i & 1)];
  }
  DevBuf<uint32_t> da(128), db(64);
  DevBuf<float> dc(128), dd(128);
  da.upload(ra);
  db.upload(rb);
  dc.upload(rc);
  if (structura::launch<mma_k8_kernel<kKind>>(1, 32, 0, nullptr, (const uint32_t*)da.p, (const uint32_t*)db.p,
                                               (const float*)dc.p, dd.p) != cudaSuccess)
    return "error: " + last_msg();
  const std::vector<float> d = dd.download();
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const int r = (l >> 2) + 8 * (i >> 1), n = 2 * (l % 4) + (i & 1);
      double ref = C[r][n], s = std::fabs(C[r][n]);
      for (int k = 0; k < 8; k++) ref += A[r][k] * B[k][n], s += std::fabs(A[r][k] * B[k][n]);
      if (!(std::fabs(d[l * 4 + i] - ref) <= 9 * 0x1p-23 * s))
        return fmt("D[%g][%g] = %.9g, reference %.9g", r, n, d[l * 4 + i], ref);
    }
  return "";
}
EMU_CASE(mma_m16n8k8_f16) { return k8_case<0>(); }
EMU_CASE(mma_m16n8k8_bf16) { return k8_case<1>(); }
EMU_CASE(mma_m16n8k8_tf32) { return k8_case<2>(); }

// ---- cp.async groups --------------------------------------------------------------------------

// Per lane: group 0 = 16 B (cg), group 1 = 2 × 8 B (ca), group 2 = 16 B zfill (odd lanes copy 8 B,
// even lanes 0 B from an out-of-range address, which must not be read). out = [buf0 | buf1 | buf2 |
// the next lane's buf0 after a barrier]. plant 1: reads group 1 after wait_group 1 (too early);
// plant 2: reads the next lane's group-0 data without a barrier.
__global__ void cp_async_kernel(const float* src_raw, float* out_raw, int plant) {
  SMEM(float, buf, [3][128]);
  const int lane = threadIdx.x;
  const dev_ptr<const float> src = gptr(src_raw);
  const dev_ptr<float> out = gptr(out_raw);
  ptx::cp_async_cg(&buf[0][lane * 4], src + lane * 4);
  ptx::cp_async_commit();
  ptx::cp_async_ca<8>(&buf[1][lane * 4], src + 128 + lane * 4);
  ptx::cp_async_ca<8>(&buf[1][lane * 4 + 2], src + 128 + lane * 4 + 2);
  ptx::cp_async_commit();
  if (lane % 2) ptx::cp_async_cg_zfill(&buf[2][lane * 4], src + 256 + lane * 4, 8);
  else ptx::cp_async_cg_zfill(&buf[2][lane * 4], src + 100000, 0);
  ptx::cp_async_commit();
  ptx::cp_async_wait<2>();
  for (int i = 0; i < 4; i++) out[lane * 4 + i] = buf[0][lane * 4 + i];
  if (plant == 1) out[128 + lane * 4] = buf[1][lane * 4];
  if (plant == 2) out[384 + lane * 4] = buf[0][((lane + 1) % 32) * 4];
  ptx::cp_async_wait<1>();
  for (int i = 0; i < 4; i++) out[128 + lane * 4 + i] = buf[1][lane * 4 + i];
  ptx::cp_async_wait_all();
  for (int i = 0; i < 4; i++) out[256 + lane * 4 + i] = buf[2][lane * 4 + i];
  __syncthreads();
  for (int i = 0; i < 4; i++) out[384 + lane * 4 + i] = buf[0][((lane + 1) % 32) * 4 + i];
}

static cudaError_t run_cp_async(int plant, std::vector<float>* src, std::vector<float>* out) {
  Rng rng(case_seed());
  src->resize(384);
  for (auto& x : *src) x = (float)rng.uniform(-1, 1);
  DevBuf<float> ds(384), dout(512);
  ds.upload(*src);
  cudaError_t e = structura::launch<cp_async_kernel>(1, 32, 0, nullptr, (const float*)ds.p, dout.p, plant);
  *out = dout.download();
  return e;
}

EMU_CASE(cp_async_wait_group) {
  std::vector<float> s, o;
  if (run_cp_async(0, &s, &o) != cudaSuccess) return "error: " + last_msg();
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const float want[4] = {s[l * 4 + i], s[128 + l * 4 + i], (l % 2 && i < 2) ? s[256 + l * 4 + i] : 0.f,
                             s[((l + 1) % 32) * 4 + i]};
      for (int part = 0; part < 4; part++)
        if (o[part * 128 + l * 4 + i] != want[part])
          return fmt("part %g lane %g element %g: %.9g", part, l, i, o[part * 128 + l * 4 + i]) + fmt(" expected %.9g", want[part]);
    }
  return "";
}
EMU_CASE(planted_read_before_wait_group) {
  std::vector<float> s, o;
  std::string d;
  std::string r = expect_error(run_cp_async(1, &s, &o), "async-copy", &d);
  set_detail(d);
  return r;
}
EMU_CASE(planted_cp_async_no_barrier) {
  std::vector<float> s, o;
  std::string d;
  std::string r = expect_error(run_cp_async(2, &s, &o), "shared-race", &d);
  set_detail(d);
  return r;
}

// ---- mma.sp ------------------------------------------------------------------------------------

struct SpParams {
  const uint32_t* a;  // [32][4] compressed A registers per lane
  const uint32_t* b;  // [32][4]
  const uint32_t* e;  // [32] metadata
  const float* c;     // [32][4]
  float* d;           // [32][4]
};
template <int K, bool kBf16, int Sel>
__global__ void mma_sp_kernel(SpParams p) {
  const int lane = threadIdx.x;
  constexpr int NR = K == 16 ? 2 : 4;
  uint32_t a[NR], b[NR];
  float c[4], d[4];
  for (int i = 0; i < NR; i++) a[i] = gptr(p.a)[lane * 4 + i], b[i] = gptr(p.b)[lane * 4 + i];
  for (int i = 0; i < 4; i++) c[i] = gptr(p.c)[lane * 4 + i];
  const uint32_t e = gptr(p.e)[lane];
  if constexpr (K == 16) {
    if (kBf16) ptx::mma_sp_m16n8k16_bf16<Sel>(d, a, b, c, e);
    else ptx::mma_sp_m16n8k16_f16<Sel>(d, a, b, c, e);
  } else {
    if (kBf16) ptx::mma_sp_m16n8k32_bf16<Sel>(d, a, b, c, e);
    else ptx::mma_sp_m16n8k32_f16<Sel>(d, a, b, c, e);
  }
  for (int i = 0; i < 4; i++) gptr(p.d)[lane * 4 + i] = d[i];
}

// Encodes a 2:4 A (16×K) per notes §2.3–2.4; pattern < 0: random kept pairs, else the §2.6 example
// pattern P[(r + 2c) mod 6]. corrupt: replaces one selected nibble with 0b0101.
template <int K, bool kBf16, int Sel>
static std::string sp_case(bool example_pattern, bool corrupt, std::vector<uint32_t>* e_out) {
  static const int P[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  Rng rng(case_seed() + K + Sel * 3 + kBf16 * 5);
  double A[16][32] = {}, B[32][8], C[16][8];
  int kept[16][8][2];
  std::vector<uint32_t> ra(128, 0), rb(128, 0), re(32, 0);
  std::vector<float> rc(128);
  for (int r = 0; r < 16; r++)
    for (int ch = 0; ch < K / 4; ch++) {
      const int* pr = P[example_pattern ? (r + 2 * ch) % 6 : rng.below(6)];
      kept[r][ch][0] = pr[0], kept[r][ch][1] = pr[1];
      for (int h = 0; h < 2; h++) {
        const uint16_t bits = to_bits((float)rng.uniform(-1, 1), kBf16);
        A[r][4 * ch + pr[h]] = from_bits(bits, kBf16);
      }
      const int lane = 4 * (r % 8) + (K == 16 ? Sel : 2 * Sel + (ch >> 2));
      re[lane] |= (uint32_t)(pr[0] | (pr[1] << 2)) << (16 * (r >= 8) + 4 * (ch % 4));
    }
  auto bits_of = [&](int r, int ch, int h) { return (uint32_t)to_bits((float)A[r][4 * ch + kept[r][ch][h]], kBf16); };
  for (int k = 0; k < K; k++)
    for (int n = 0; n < 8; n++) B[k][n] = from_bits(to_bits((float)rng.uniform(-1, 1), kBf16), kBf16);
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++) C[r][n] = (float)rng.uniform(-1, 1);
  for (int l = 0; l < 32; l++) {
    const int g = l >> 2, t = l % 4;
    const int NR = K == 16 ? 2 : 4;
    for (int i = 0; i < NR; i++) {
      const int row = K == 16 ? g + 8 * i : g + 8 * (i & 1), ch = K == 16 ? t : t + 4 * (i >> 1);
      ra[l * 4 + i] = bits_of(row, ch, 0) | (bits_of(row, ch, 1) << 16);
      for (int h = 0; h < 2; h++) {
        const int k = 8 * i + 2 * t + h;  // k16: regs 0,1 → k = 2t+h (+8); k32: 8j + 2t + h
        rb[l * 4 + i] |= (uint32_t)to_bits((float)B[k][g], kBf16) << (16 * h);
      }
    }
    for (int i = 0; i < 4; i++) rc[l * 4 + i] = (float)C[g + 8 * (i >> 1)][2 * t + (i & 1)];
  }
  if (corrupt) {
    const int lane = 4 * 3 + (K == 16 ? Sel : 2 * Sel);
    re[lane] = (re[lane] & ~0xf0u) | 0x50u;  // row 3, chunk 1: offsets (1, 1)
  }
  if (e_out) *e_out = re;
  DevBuf<uint32_t> da(128), db(128), de(32);
  DevBuf<float> dc(128), dd(128);
  da.upload(ra);
  db.upload(rb);
  de.upload(re);
  dc.upload(rc);
  SpParams p{da.p, db.p, de.p, dc.p, dd.p};
  if (structura::launch<mma_sp_kernel<K, kBf16, Sel>>(1, 32, 0, nullptr, p) != cudaSuccess) return "error: " + last_msg();
  const std::vector<float> d = dd.download();
  for (int l = 0; l < 32; l++)
    for (int i = 0; i < 4; i++) {
      const int r = (l >> 2) + 8 * (i >> 1), n = 2 * (l % 4) + (i & 1);
      double ref = C[r][n], s = std::fabs(C[r][n]);
      for (int k = 0; k < K; k++) ref += A[r][k] * B[k][n], s += std::fabs(A[r][k] * B[k][n]);
      if (!(std::fabs(d[l * 4 + i] - ref) <= (K + 1) * 0x1p-23 * s))
        return fmt("K=%g sel=%g: D[%g][%g] = ", K, Sel, r, n) + fmt("%.9g, densified reference %.9g", d[l * 4 + i], ref);
    }
  return "";
}

EMU_CASE(mma_sp_valid_metadata) {
  std::string r;
  if (!(r = sp_case<16, false, 0>(false, false, nullptr)).empty()) return r;
  if (!(r = sp_case<16, true, 2>(false, false, nullptr)).empty()) return r;
  if (!(r = sp_case<16, false, 3>(false, false, nullptr)).empty()) return r;
  if (!(r = sp_case<32, false, 0>(false, false, nullptr)).empty()) return r;
  if (!(r = sp_case<32, true, 1>(false, false, nullptr)).empty()) return r;
  if (!(r = sp_case<32, true, 0>(false, false, nullptr)).empty()) return r;
  set_detail("m16n8k16 f16 sel 0/3, bf16 sel 2; m16n8k32 f16 sel 0, bf16 sel 0/1 (unselected lanes hold invalid nibbles)");
  return "";
}

EMU_CASE(mma_sp_notes_worked_example) {
  // the §2.6 example: m16n8k32, selector 0; metadata per lane as tabulated in the notes
  std::vector<uint32_t> e;
  std::string r = sp_case<32, false, 0>(true, false, &e);
  if (!r.empty()) return r;
  const uint32_t want[8][2] = {{0xC4DC4DC4, 0xDC4DC4DC}, {0x98E98E98, 0xE98E98E9}, {0xDC4DC4DC, 0x4DC4DC4D},
                               {0xE98E98E9, 0x8E98E98E}, {0x4DC4DC4D, 0xC4DC4DC4}, {0x8E98E98E, 0x98E98E98},
                               {0xC4DC4DC4, 0xDC4DC4DC}, {0x98E98E98, 0xE98E98E9}};
  for (int g = 0; g < 8; g++)
    for (int t = 0; t < 2; t++)
      if (e[4 * g + t] != want[g][t]) return fmt("lane %g metadata 0x%08x, the notes give 0x%08x", 4 * g + t, e[4 * g + t], want[g][t]);
  return "";
}

EMU_CASE(planted_invalid_metadata) {
  std::string r = sp_case<32, true, 1>(false, true, nullptr);
  char msg[2048];
  const int kind = structura_emu_last_error(msg, sizeof msg);
  if (r.rfind("error: ", 0) != 0 || std::string(structura_emu_error_kind_name(kind)) != "invalid-metadata")
    return "expected an invalid-metadata error, got: " + (r.empty() ? std::string("success") : r);
  r = sp_case<16, false, 1>(false, true, nullptr);
  if (r.rfind("error: ", 0) != 0) return "k16: expected an invalid-metadata error, got: " + (r.empty() ? std::string("success") : r);
  set_detail(msg);
  return "";
}

// ---- every wrapper in one kernel (test/emu/wrappers_compile.cu): runs clean, writes every output --

struct WrapperParams {
  const uint16_t* src;
  float* out;
};
cudaError_t structura_emu_wrappers_launch(const WrapperParams& p, cudaStream_t s);
EMU_CASE(all_wrappers_run) {
  std::vector<uint16_t> src(512);
  for (int i = 0; i < 512; i++) src[i] = to_bits((float)((i % 13) - 6) / 8.f, (i & 1) != 0);
  DevBuf<uint16_t> ds(512);
  DevBuf<float> dout(128);
  ds.upload(src);
  if (structura_emu_wrappers_launch(WrapperParams{ds.p, dout.p}, nullptr) != cudaSuccess) return "error: " + last_msg();
  const std::vector<float> o = dout.download();
  for (int i = 0; i < 128; i++)
    if (std::isnan(o[i])) return fmt("output %g not written (NaN poison)", i);
  return "";
}

// ---- wgmma (emulated at issue; its shared reads stay in flight until wait_group) -------------------
// One warpgroup: A [64][64] and B [256][64] of bf16 ones in the 128-byte swizzle (every element 1, so
// every output is 64 = Σ over the 4 k16 steps of 16 products — placement is checked by the fidelity
// test against the GPU). plant 1: thread 0 rewrites an A element while the wgmma is in flight
// (before wait_group 0); plant 2: a descriptor without the 128-byte swizzle.
__global__ void wgmma_kernel(float* out_raw, int plant) {
  DYN_SMEM(uint16_t, raw);
  const uint32_t addr0 = ptx::smem_addr(raw);
  const int pad = (int)((1024u - (addr0 & 1023u)) & 1023u) / 2;
  const dev_ptr<uint16_t> s = raw + pad;
  const uint32_t a_addr = addr0 + 2u * (uint32_t)pad, b_addr = a_addr + 2u * 64u * 64u;
  for (int i = threadIdx.x; i < (64 + 256) * 64; i += 128) s[i] = 0x3f80;  // bf16 1.0
  ptx::fence_proxy_async();
  __syncthreads();
  float d[128];
  for (int i = 0; i < 128; i++) d[i] = 0.f;
  ptx::fence_operands(d);
  ptx::wgmma_fence();
  for (int kk = 0; kk < 4; kk++) {
    uint64_t da = ptx::wgmma_desc_sw128(a_addr + 32u * kk, 1024), db = ptx::wgmma_desc_sw128(b_addr + 32u * kk, 1024);
    if (plant == 2) da &= ~(3ull << 62);
    ptx::wgmma_m64n256k16_bf16(d, da, db);
  }
  ptx::wgmma_commit();
  if (plant == 1 && threadIdx.x == 0) s[5] = 0;
  ptx::wgmma_wait<0>();
  ptx::fence_operands(d);
  if (threadIdx.x == 0) s[5] = 0;  // fine now: the group has been waited for
  const dev_ptr<float> out = gptr(out_raw) + threadIdx.x * 128;
  for (int i = 0; i < 128; i++) out[i] = d[i];
}

static cudaError_t run_wgmma(int plant, std::vector<float>* out) {
  DevBuf<float> dout(128 * 128);
  const size_t smem = (64 + 256) * 64 * 2 + 1024;
  cudaFuncSetAttribute(wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  cudaError_t e = structura::launch<wgmma_kernel>(1, 128, smem, nullptr, dout.p, plant);
  *out = dout.download();
  return e;
}

EMU_CASE(wgmma_m64n256k16_all_ones) {
  std::vector<float> o;
  if (run_wgmma(0, &o) != cudaSuccess) return "error: " + last_msg();
  for (size_t i = 0; i < o.size(); i++)
    if (o[i] != 64.f) return fmt("accumulator %g of thread %g is %.9g, expected 64", (double)(i % 128), (double)(i / 128), o[i]);
  return "";
}
EMU_CASE(planted_write_during_wgmma) {
  std::vector<float> o;
  std::string d;
  std::string r = expect_error(run_wgmma(1, &o), "shared-race", &d);
  set_detail(d);
  return r;
}
EMU_CASE(planted_wgmma_descriptor_without_swizzle) {
  std::vector<float> o;
  std::string d;
  std::string r = expect_error(run_wgmma(2, &o), "invalid-argument", &d);
  set_detail(d);
  return r;
}

// ---- programmatic dependent launch (launch_pdl, pdl_trigger / pdl_wait) --------------------------
// produce: out[i] = in[i] + 1 (an ordinary launch, or launch_pdl when it waits first). consume: out[i]
// = early[i] + late[i], launched with launch_pdl: `early` read before pdl_wait (it must predate the
// chain), `late` after it; `plant` 1 reads `late` early, 2 writes out early.
__global__ void pdl_produce_kernel(const float* in, float* out, int n, int wait_first) {
  ptx::pdl_trigger();
  if (wait_first) ptx::pdl_wait();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    const float v = gptr(in)[i];
    gptr(out)[i] = v + 1.f;
  }
}
__global__ void pdl_consume_kernel(const float* early, const float* late, float* out, int n, int plant) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float e = 0.f, l = 0.f;
  if (i < n) {
    e = gptr(early)[i];
    if (plant == 1) l = gptr(late)[i];
    if (plant == 2) gptr(out)[i] = 0.f;
  }
  ptx::pdl_wait();
  if (i < n) {
    if (plant != 1) l = gptr(late)[i];
    gptr(out)[i] = e + l;
  }
}

// A chain: produce (ordinary) → produce (launch_pdl, waits first) → consume (launch_pdl); `bridge`
// puts a cudaMemcpy between the first producer and the rest, which ends the chain.
static cudaError_t pdl_chain(int plant, bool read_first_in_chain, bool bridge, std::vector<float>* out_host) {
  const int n = 70;
  DevBuf<float> x(n), a(n), b(n), out(n), tmp(n);
  std::vector<float> xs(n);
  for (int i = 0; i < n; i++) xs[i] = (float)i;
  x.upload(xs);
  cudaError_t e = structura::launch<pdl_produce_kernel>(3, 32, 0, nullptr, (const float*)x.p, a.p, n, 0);
  if (e != cudaSuccess) return e;
  if (bridge) cudaMemcpy(tmp.p, x.p, n * sizeof(float), cudaMemcpyDeviceToDevice);
  e = structura::launch_pdl<pdl_produce_kernel>(3, 32, 0, nullptr, (const float*)a.p, b.p, n, 1);
  if (e != cudaSuccess) return e;
  // early: x (before the chain), or a (written by the chain's first kernel, which may still run)
  e = structura::launch_pdl<pdl_consume_kernel>(3, 32, 0, nullptr, (const float*)(read_first_in_chain ? a.p : x.p),
                                               (const float*)b.p, out.p, n, plant);
  if (e == cudaSuccess && out_host) *out_host = out.download();
  return e;
}

EMU_CASE(pdl_chain_waits_before_reading) {
  std::vector<float> out;
  if (cudaError_t e = pdl_chain(0, false, false, &out)) return "chain failed: " + last_msg() + fmt(" (%g)", (double)e);
  for (int i = 0; i < 70; i++)
    if (out[i] != (float)i + (float)i + 2.f) return fmt("out[%g] = %g, expected %g", i, out[i], 2.0 * i + 2);
  // after a copy the chain starts over: a, written before it, may be read early
  if (cudaError_t e = pdl_chain(0, true, true, &out)) return "chain after a copy failed: " + last_msg() + fmt(" (%g)", (double)e);
  // with dependent launches off, launch_pdl is an ordinary launch: no check applies
  const int old = structura_emu_cuda_set_pdl(0);
  const cudaError_t e = pdl_chain(1, true, false, nullptr);
  structura_emu_cuda_set_pdl(old);
  if (e != cudaSuccess) return "launch_pdl with dependent launches off was checked: " + last_msg();
  return "";
}
EMU_CASE(planted_pdl_read_before_wait) {
  std::string d;
  std::string r = expect_error(pdl_chain(1, false, false, nullptr), "dependent-launch", &d);
  set_detail(d);
  return r;
}
EMU_CASE(planted_pdl_write_before_wait) {
  std::string d;
  std::string r = expect_error(pdl_chain(2, false, false, nullptr), "dependent-launch", &d);
  set_detail(d);
  return r;
}
// The first kernel of the chain was an ordinary launch, but the launch_pdl after it may have started
// it early: reading its output before pdl_wait two launches later is still a race.
EMU_CASE(planted_pdl_read_of_chain_start) {
  std::string d;
  std::string r = expect_error(pdl_chain(0, true, false, nullptr), "dependent-launch", &d);
  set_detail(d);
  return r;
}

// ---- a flag between the blocks of one grid (ptx::flag_release / flag_wait) ------------------------
// The first block to start (ticket 0, an atomic counter) writes data[i] = i + 1 for i < n and raises
// the flag; every other block waits for it and copies data[i] into its row of out. plant 1: the
// producer never raises the flag (on a GPU the waiters would spin forever).
__global__ void flag_kernel(int* counters, float* data, float* out, int n, int plant) {
  SMEM(int, ticket, [1]);
  const dev_ptr<int> cnt = gptr(counters);
  if (threadIdx.x == 0) ticket[0] = atomicAdd(&cnt[0], 1);
  __syncthreads();
  const int tk = ticket[0];
  if (tk == 0) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) gptr(data)[i] = (float)(i + 1);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0 && plant != 1) ptx::flag_release(&cnt[1]);
  } else {
    if (threadIdx.x == 0) ptx::flag_wait(&cnt[1]);
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const float v = gptr(data)[i];
      gptr(out)[(tk - 1) * n + i] = v;
    }
  }
}

static cudaError_t flag_run(int plant, std::vector<float>* out_host) {
  const int n = 40, blocks = 4;
  DevBuf<int> cnt(2);
  DevBuf<float> data(n), out((blocks - 1) * n);
  cudaMemset(cnt.p, 0, 2 * sizeof(int));
  const cudaError_t e = structura::launch<flag_kernel>(blocks, 32, 0, nullptr, cnt.p, data.p, out.p, n, plant);
  if (e == cudaSuccess && out_host) *out_host = out.download();
  return e;
}

EMU_CASE(grid_flag_hand_over) {
  std::vector<float> out;
  if (cudaError_t e = flag_run(0, &out)) return "flag kernel failed: " + last_msg() + fmt(" (%g)", (double)e);
  for (int b = 0; b < 3; b++)
    for (int i = 0; i < 40; i++)
      if (out[b * 40 + i] != (float)(i + 1)) return fmt("out[%g][%g] = %g, expected %g", b, i, out[b * 40 + i], i + 1.0);
  return "";
}
EMU_CASE(planted_flag_never_raised) {
  std::string d;
  std::string r = expect_error(flag_run(1, nullptr), "barrier-divergence", &d);
  set_detail(d);
  return r;
}

// ---- mbarrier + TMA pipeline (cuda/tma.cuh, ptx::mbar_*, ptx::tma_load_2d) ----------------------
// A [6, 300] 16-bit matrix (rows 608 bytes apart) through two 1 KiB stages, box 8 rows × 64: warp 0's
// lane 0 produces (waits for the stage to be released, announces 1024 bytes, issues the TMA), warp 1
// consumes: lane l sums 16 elements of row l % 8 of each k-tile, un-swizzling the address, then
// releases the stage. Rows 6, 7 and columns past 300 are outside the matrix: zeros. plant 1: the
// consumer skips its wait; 2: the producer skips its wait (a lap ahead); 3: the last tile is never
// issued (the consumer waits forever).
__global__ void tma_pipe_kernel(const __grid_constant__ CUtensorMap map, float* out, int ktiles, int plant) {
  DYN_SMEM(unsigned char, raw);
  const uint32_t raw_addr = ptx::smem_addr(raw);
  const uint32_t pad = (1024u - (raw_addr & 1023u)) & 1023u, base = raw_addr + pad;
  const uint32_t full[2] = {base + 2048, base + 2056}, empty[2] = {base + 2064, base + 2072};
  if (threadIdx.x == 0) {
    for (int s = 0; s < 2; s++) {
      ptx::mbar_init(full[s], 1);
      ptx::mbar_init(empty[s], 32);
    }
    ptx::fence_mbarrier_init();
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (warp == 0) {
    if (lane != 0) return;
    for (int kt = 0; kt < ktiles; kt++) {
      const int s = kt % 2;
      if (plant == 3 && kt == ktiles - 1) break;
      if (kt >= 2 && plant != 2) ptx::mbar_wait(empty[s], ((kt / 2) - 1) & 1);
      ptx::mbar_arrive_expect_tx(full[s], 1024);
      ptx::tma_load_2d(base + 1024u * s, &map, kt * 64, 0, full[s]);
    }
    return;
  }
  const int row = lane % 8, k0 = (lane / 8) * 16;
  for (int kt = 0; kt < ktiles; kt++) {
    const int s = kt % 2;
    if (plant != 1) ptx::mbar_wait(full[s], (kt / 2) & 1);
    float acc = 0.f;
    for (int k = k0; k < k0 + 16; k++) {
      uint32_t a = 1024u * s + 128u * row + 2u * k;  // offset from base (1024-aligned): swizzle on it
      a ^= ((a >> 7) & 7u) << 4;
      const uint16_t v = dev_cast<const uint16_t>(raw + pad + a)[0];
      acc += emu::bf16_to_f32(v);
    }
    gptr(out)[kt * 32 + lane] = acc;
    ptx::mbar_arrive(empty[s]);
  }
}

static cudaError_t tma_pipe(int plant, std::vector<float>* got, std::vector<float>* want) {
  const int rows = 6, cols = 300, ld = 304, ktiles = 5;
  std::vector<uint16_t> a((size_t)rows * ld);
  if (want) want->assign(ktiles * 32, 0.f);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < ld; c++) a[(size_t)r * ld + c] = to_bits((float)((r * 7 + c * 3) % 17 - 8), true);
  if (want)
    for (int kt = 0; kt < ktiles; kt++)
      for (int l = 0; l < 32; l++)
        for (int k = (l / 8) * 16; k < (l / 8) * 16 + 16; k++) {
          const int r = l % 8, c = kt * 64 + k;
          if (r < rows && c < cols) (*want)[kt * 32 + l] += (float)from_bits(a[(size_t)r * ld + c], true);
        }
  DevBuf<uint16_t> da(a.size());
  da.upload(a);
  DevBuf<float> dout(ktiles * 32);
  CUtensorMap map;
  if (tma_encode_2d(&map, da.p, cols, rows, ld * 2, 64, 8) != 0) return cudaErrorInvalidValue;
  const size_t smem = 1024 + 2048 + 32;
  cudaError_t e = structura::launch<tma_pipe_kernel>(1, 64, smem, nullptr, map, dout.p, ktiles, plant);
  if (e == cudaSuccess && got) *got = dout.download();
  return e;
}

EMU_CASE(tma_mbarrier_pipeline) {
  std::vector<float> got, want;
  if (cudaError_t e = tma_pipe(0, &got, &want)) return "pipeline failed: " + last_msg() + fmt(" (%g)", (double)e);
  for (size_t i = 0; i < want.size(); i++)
    if (got[i] != want[i]) return fmt("out[%g] = %g, expected %g (rows 6, 7 and columns ≥ 300 read as zeros)", (double)i, got[i], want[i]);
  // the encoder refuses what the TMA cannot do: an unaligned base, a row stride not a multiple of 16
  CUtensorMap m;
  DevBuf<uint16_t> d(64);
  if (tma_encode_2d(&m, d.p + 1, 64, 1, 128, 64, 8) == 0) return "an unaligned base was encoded";
  if (tma_encode_2d(&m, d.p, 60, 1, 120, 64, 8) == 0) return "a 120-byte row stride was encoded";
  return "";
}
EMU_CASE(planted_tma_read_before_wait) {
  std::string d;
  std::string r = expect_error(tma_pipe(1, nullptr, nullptr), "async-copy", &d);
  set_detail(d);
  return r;
}
EMU_CASE(planted_tma_refill_before_release) {
  std::string d;
  std::string r = expect_error(tma_pipe(2, nullptr, nullptr), "mbarrier", &d);
  set_detail(d);
  return r;
}
EMU_CASE(planted_mbarrier_never_completes) {
  std::string d;
  std::string r = expect_error(tma_pipe(3, nullptr, nullptr), "barrier-divergence", &d);
  set_detail(d);
  return r;
}
