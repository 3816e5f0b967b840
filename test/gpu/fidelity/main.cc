// main.cc — the emulator-fidelity test (issue 4 item 7): runs every cuda/ptx.cuh wrapper and the
// emulated intrinsics the kernels rely on, on the GPU (fid_gpu_*) and in the emulator (fid_emu_*), on
// the same seeded random inputs, and compares:
//   * bitwise: ldmatrix, cp.async, conversions, packing, half arithmetic, shuffles/votes/redux,
//     atomics' final values, and mma on integer-valued inputs (every product and partial sum is an
//     integer below 2^12, exact in fp32, so neither summation order nor rounding can matter);
//   * mma on random real inputs: |d_gpu − d_emu| ≤ (K + 1)·2⁻²³·S with S = |c| + Σ_k |a_k·b_k| of that
//     output (see mma_bound below); the max difference in fp32 ulps is reported.
// Each case is also checked against an independent host reference built from the PTX ISA tables and
// exact arithmetic (emulator vs reference). That is the whole test when there is no GPU, and a
// diagnostic (who is right) when the GPU and the emulator disagree.
//
//   emu-fidelity [SEED] [--json PATH] [--only SUBSTR] [--examples N]
// Prints one line per case (case, elements compared, mismatches, max ulp diff, PASS/FAIL/INFO, detail)
// and a SUMMARY line. Exit: 0 all cases pass (GPU compared with the emulator; or, in a build with
// -DFIDELITY_EMU_ONLY, the emulator with the references); 1 a case failed; 2 no usable GPU (the
// emulator half still ran against the references, and a failure there gives 1); 3 bad arguments.
// INFO cases (behaviour the PTX leaves unspecified) are reported but never fail.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#ifndef FIDELITY_EMU_ONLY
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#define FID_FN(name) fid_emu_##name
#include "fidelity.h"
#undef FID_FN
#ifndef FIDELITY_EMU_ONLY
#define FID_FN(name) fid_gpu_##name
#include "fidelity.h"
#undef FID_FN
#endif

namespace {

// ---- random numbers ----------------------------------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t u32() { return (uint32_t)(next() >> 32); }
  int below(int n) { return (int)(next() % (uint64_t)n); }
  int range(int lo, int hi) { return lo + below(hi - lo + 1); }  // inclusive
  bool coin() { return next() >> 63; }
};

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint64_t f64_bits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}
double bits_f64(uint64_t u) {
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}

// ---- reference arithmetic: floating-point formats, rounded from exact (double) values ---------------

struct Fmt {
  int p;     // significand bits, the implicit one included
  int emin;  // exponent of the smallest normal
  int emax;  // exponent of the largest finite
  int ebits;
};
const Fmt kF16{11, -14, 15, 5}, kBF16{8, -126, 127, 8}, kTF32{11, -126, 127, 8}, kF32{24, -126, 127, 8};

// x rounded to the format (to nearest, ties to even or away from zero); ±inf past the largest finite.
// Exact: scaling by a power of two and rounding to an integer are exact in double.
double round_fmt(double x, const Fmt& f, bool ties_away = false) {
  if (std::isnan(x) || std::isinf(x) || x == 0) return x;
  int e;
  std::frexp(std::fabs(x), &e);
  const int E = std::max(e - 1, f.emin);
  const double q = std::ldexp(1.0, E - (f.p - 1));
  const double r = x / q;
  const double n = ties_away ? std::round(r) : std::nearbyint(r);
  const double y = n * q;
  if (std::fabs(y) >= std::ldexp(1.0, f.emax + 1)) return std::copysign(INFINITY, x);
  return y;
}
// Bits of a value exactly representable in the format (after round_fmt), in the low 1+ebits+p-1 bits.
uint32_t enc(double y, const Fmt& f) {
  const int mbits = f.p - 1, bias = (1 << (f.ebits - 1)) - 1;
  const uint32_t sign = std::signbit(y) ? 1u << (f.ebits + mbits) : 0u;
  const uint32_t emask = (1u << f.ebits) - 1;
  if (std::isnan(y)) return (emask << mbits) | (1u << (mbits - 1));
  if (std::isinf(y)) return sign | (emask << mbits);
  if (y == 0) return sign;
  int e;
  std::frexp(std::fabs(y), &e);
  const int E = e - 1;
  if (E < f.emin) return sign | (uint32_t)(std::fabs(y) / std::ldexp(1.0, f.emin - mbits));
  const uint32_t m = (uint32_t)(std::fabs(y) / std::ldexp(1.0, E - mbits)) - (1u << mbits);
  return sign | ((uint32_t)(E + bias) << mbits) | m;
}
double dec(uint32_t bits, const Fmt& f) {
  const int mbits = f.p - 1, bias = (1 << (f.ebits - 1)) - 1;
  const uint32_t emask = (1u << f.ebits) - 1;
  const bool neg = bits >> (f.ebits + mbits) & 1;
  const uint32_t e = bits >> mbits & emask, m = bits & ((1u << mbits) - 1);
  double v;
  if (e == emask) v = m ? NAN : INFINITY;
  else if (e == 0) v = std::ldexp((double)m, f.emin - mbits);
  else v = std::ldexp((double)(m | (1u << mbits)), (int)e - bias - mbits);
  return neg ? -v : v;
}
bool is_nan_bits(uint32_t bits, const Fmt& f) {
  const int mbits = f.p - 1;
  const uint32_t emask = (1u << f.ebits) - 1;
  return (bits >> mbits & emask) == emask && (bits & ((1u << mbits) - 1));
}
// s + err (err the exact remainder of s) rounded to odd at double precision: a later round_fmt to
// p ≤ 51 bits is then the single correct rounding of the exact value.
double to_odd(double s, double err) {
  if (err == 0 || std::isinf(s) || std::isnan(s)) return s;
  if (f64_bits(s) & 1) return s;
  return std::nextafter(s, err > 0 ? INFINITY : -INFINITY);
}
double two_sum_odd(double a, double b) {
  const double s = a + b, bb = s - a, err = (a - (s - bb)) + (b - bb);
  return to_odd(s, err);
}
// a·b + c exactly (a·b is exact: ≤ 22 significant bits), rounded to odd
double fma_odd(double a, double b, double c) { return two_sum_odd(a * b, c); }

// ---- cases and results -----------------------------------------------------------------------------

struct Run {
  int rc = -1;
  std::string msg;
  std::vector<uint32_t> out, out2;
};

struct Result {
  std::string name, what;
  size_t compared = 0, mismatches = 0, ref_mismatches = 0, zero_sign_only = 0;
  size_t bitwise_equal = 0;   // mma real: outputs identical bit for bit
  double max_ulp = -1;        // fp cases: max |Δ| in fp32 ulps (GPU vs emulator, or emulator vs reference)
  double max_metric = -1;     // mma real: max |Δ| / (2⁻²³·S)
  double bound = -1;          // mma real: the allowed metric (K + 1)
  bool info = false;
  std::string status, detail;
  std::vector<std::string> examples;
};

// The GPU half runs in a child process (the worker, see collect_gpu_runs): a CUDA error such as an
// illegal address poisons the context for the rest of a process, so after any error the worker exits
// and a fresh one continues with the next case. Both processes generate every case's inputs from the
// seed in the same order; the worker sends its outputs through a pipe and runs nothing else.
enum class Role { Main, Worker };
struct Ctx {
  uint64_t seed = 1;
  bool gpu = false;
  int max_examples = 8;
  std::string only;
  std::vector<Result> results;
  Role role = Role::Main;
  int counter = 0;                  // GPU parts reached so far, in case order
  int from = 0;                     // worker: first case to run
  int wfd = -1;                     // worker: the pipe to the main process
  std::map<std::string, Run> gpu_runs;  // main: the worker's results by case name
};

uint64_t case_seed(const Ctx& c, const std::string& name) {
  uint64_t h = c.seed ^ 0x9e3779b97f4a7c15ull;
  for (char ch : name) h = (h ^ (uint64_t)(unsigned char)ch) * 0x100000001b3ull;
  return h;
}
bool selected(const Ctx& c, const std::string& name) { return c.only.empty() || name.find(c.only) != std::string::npos; }

std::string hex(uint32_t w) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", w);
  return b;
}
int64_t ord(uint32_t u) { return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u; }
double ulp_dist(uint32_t a, uint32_t b) {
  if (std::isnan(bits_f32(a)) || std::isnan(bits_f32(b))) return (std::isnan(bits_f32(a)) && std::isnan(bits_f32(b))) ? 0 : 1e30;
  return (double)std::llabs(ord(a) - ord(b));
}

// Fills status from the runs (an error on either side fails the case).
bool runs_ok(Result& r, const Run& emu, const Run* gpu) {
  if (emu.rc != 0) {
    r.status = "FAIL";
    r.detail = "emulator error: " + emu.msg;
    return false;
  }
  if (gpu && gpu->rc != 0) {
    r.status = "FAIL";
    r.detail = "GPU error: " + gpu->msg;
    return false;
  }
  return true;
}

void finish_status(Result& r, bool gpu) {
  const size_t bad = gpu ? r.mismatches : r.ref_mismatches;
  if (r.info) r.status = "INFO";
  else r.status = bad ? "FAIL" : "PASS";
  std::string d = r.what;
  if (gpu && r.ref_mismatches) d += "; emulator vs host reference: " + std::to_string(r.ref_mismatches) + " differ";
  if (r.zero_sign_only) d += "; " + std::to_string(r.zero_sign_only) + " of the mismatches are only the sign of a zero";
  if (r.max_metric >= 0) {
    char b[160];
    std::snprintf(b, sizeof b, "; max |d_%s - d_%s| = %.3g x 2^-23*S (bound %.0f)", gpu ? "gpu" : "emu", gpu ? "emu" : "ref",
                  r.max_metric, r.bound);
    d += b;
    d += "; bitwise equal " + std::to_string(r.bitwise_equal) + "/" + std::to_string(r.compared);
  }
  r.detail = d;
}

// Bitwise comparison of word outputs. counted(i): whether word i is an output; ref_ok(i, w): whether the
// emulator's word agrees with the host reference; where(i): a description of word i for examples.
void compare_words(Ctx& c, Result& r, const Run& emu, const Run* gpu, const std::function<bool(size_t)>& counted,
                   const std::function<bool(size_t, uint32_t)>& ref_ok, const std::function<std::string(size_t)>& where,
                   bool float_words = false) {
  if (!runs_ok(r, emu, gpu)) return;
  for (size_t i = 0; i < emu.out.size(); i++) {
    if (!counted(i)) continue;
    r.compared++;
    const bool rok = ref_ok(i, emu.out[i]);
    if (!rok) r.ref_mismatches++;
    bool bad;
    if (gpu) {
      bad = gpu->out[i] != emu.out[i];
      if (bad) {
        r.mismatches++;
        if ((gpu->out[i] | emu.out[i]) == 0x80000000u && float_words) r.zero_sign_only++;
      }
      if (float_words) r.max_ulp = std::max(r.max_ulp, ulp_dist(gpu->out[i], emu.out[i]));
    } else {
      bad = !rok;
      if (bad) r.mismatches++;
    }
    if (bad && (int)r.examples.size() < c.max_examples)
      r.examples.push_back(where(i) + ": emu " + hex(emu.out[i]) + (gpu ? " gpu " + hex(gpu->out[i]) : std::string()) +
                           (rok ? " (emu = ref)" : " (emu != ref)"));
  }
  if (float_words && r.max_ulp < 0) r.max_ulp = 0;
  finish_status(r, gpu != nullptr);
}

Result& add_result(Ctx& c, const std::string& name, const std::string& what) {
  c.results.push_back(Result{});
  Result& r = c.results.back();
  r.name = name;
  r.what = what;
  return r;
}

template <class F> Run run_side(F f) {
  Run r;
  char msg[4096] = "";
  r.rc = f(r.out, msg, sizeof msg);
  r.msg = msg;
  return r;
}

// ---- the GPU worker's messages (pipe): kind, case index, then the payload --------------------------

enum : uint32_t { kMsgProbe = 1, kMsgBegin = 2, kMsgResult = 3 };
constexpr int kWorkerRestart = 75;  // worker exit code: a case failed on the GPU, continue in a new process

#ifndef FIDELITY_EMU_ONLY
void put_bytes(int fd, const void* p, size_t n) {
  const char* b = static_cast<const char*>(p);
  while (n) {
    const ssize_t w = write(fd, b, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      _exit(kWorkerRestart);  // the main process is gone
    }
    b += w, n -= (size_t)w;
  }
}
void put_u32(int fd, uint32_t v) { put_bytes(fd, &v, 4); }
void put_str(int fd, const std::string& s) {
  put_u32(fd, (uint32_t)s.size());
  put_bytes(fd, s.data(), s.size());
}
void put_words(int fd, const std::vector<uint32_t>& v) {
  put_u32(fd, (uint32_t)v.size());
  put_bytes(fd, v.data(), v.size() * 4);
}
#endif

// A case's GPU half. Worker: runs it (from case `from` on), sends the result, returns false (the case
// ends there). Main: takes the worker's result, returns true (the case goes on with the emulator).
template <class F> bool gpu_part(Ctx& c, const std::string& name, F run_gpu, Run& out) {
  const int idx = c.counter++;
#ifndef FIDELITY_EMU_ONLY
  if (c.role == Role::Worker) {
    if (idx < c.from) return false;
    put_u32(c.wfd, kMsgBegin), put_u32(c.wfd, (uint32_t)idx), put_str(c.wfd, name);
#ifdef FIDELITY_FAKE_GPU
    // self-test of the worker restarts (build.js --fake-gpu: the "GPU" half is a second emulator copy)
    if (const char* e = std::getenv("EMU_FIDELITY_FAKE_CRASH"); e && name == e) std::abort();
    if (const char* e = std::getenv("EMU_FIDELITY_FAKE_ERROR"); e && name == e) {
      Run bad;
      bad.rc = 719;
      bad.msg = "fake cudaErrorLaunchFailure";
      put_u32(c.wfd, kMsgResult), put_u32(c.wfd, (uint32_t)idx), put_u32(c.wfd, (uint32_t)bad.rc), put_str(c.wfd, bad.msg);
      put_words(c.wfd, bad.out), put_words(c.wfd, bad.out2);
      _exit(kWorkerRestart);
    }
#endif
    const Run r = run_gpu();
    put_u32(c.wfd, kMsgResult), put_u32(c.wfd, (uint32_t)idx), put_u32(c.wfd, (uint32_t)r.rc), put_str(c.wfd, r.msg);
    put_words(c.wfd, r.out), put_words(c.wfd, r.out2);
    if (r.rc != 0) _exit(kWorkerRestart);
    return false;
  }
#endif
  (void)run_gpu;
  if (!c.gpu) return true;
  auto it = c.gpu_runs.find(name);
  if (it != c.gpu_runs.end()) out = it->second;
  else out.rc = -1, out.msg = "the GPU worker returned no result for this case";
  return true;
}

// ---- mma ---------------------------------------------------------------------------------------------

struct MmaShape {
  int op, K;
  const char* name;
  int na, nb;  // registers per lane
  bool sparse, tf32, bf16;
};
const MmaShape kMma[] = {
    {FID_MMA_K16_F16, 16, "mma.m16n8k16.f16", 4, 2, false, false, false},
    {FID_MMA_K16_BF16, 16, "mma.m16n8k16.bf16", 4, 2, false, false, true},
    {FID_MMA_K8_F16, 8, "mma.m16n8k8.f16", 2, 1, false, false, false},
    {FID_MMA_K8_BF16, 8, "mma.m16n8k8.bf16", 2, 1, false, false, true},
    {FID_MMA_K8_TF32, 8, "mma.m16n8k8.tf32", 4, 2, false, true, false},
    {FID_MMA_K8_TF32_CVT, 8, "mma.m16n8k8.tf32+to_tf32", 4, 2, false, true, false},
    {FID_MMA_SP_K16_F16, 16, "mma.sp.m16n8k16.f16", 2, 2, true, false, false},
    {FID_MMA_SP_K16_BF16, 16, "mma.sp.m16n8k16.bf16", 2, 2, true, false, true},
    {FID_MMA_SP_K32_F16, 32, "mma.sp.m16n8k32.f16", 4, 4, true, false, false},
    {FID_MMA_SP_K32_BF16, 32, "mma.sp.m16n8k32.bf16", 4, 4, true, false, true},
};

// The dense matrices of one tile, decoded from the lanes' registers by the PTX ISA fragment tables
// (PTX ISA 9.1: §9.7.14.5.8 m16n8k16, §9.7.14.5.7 m16n8k8 f16/bf16/tf32, §9.7.14.6.2.1–2 mma.sp;
// g = lane >> 2, t = lane % 4). tf32 registers are read as f32 with the low 13 bits cleared.
struct Tile {
  double A[16][32] = {}, B[32][8] = {}, C[16][8] = {};
};
Tile decode_tile(const MmaShape& s, int sel, const uint32_t* a, const uint32_t* b, const float* c, const uint32_t* e) {
  Tile T;
  const Fmt& f = s.bf16 ? kBF16 : kF16;
  auto half = [&](uint32_t reg, int h) { return dec(h ? reg >> 16 : reg & 0xffffu, f); };
  auto tf = [](uint32_t reg) { return (double)bits_f32(reg & 0xffffe000u); };
  for (int l = 0; l < 32; l++) {
    const int g = l >> 2, t = l % 4;
    const uint32_t* al = a + l * 4;
    const uint32_t* bl = b + l * 4;
    for (int i = 0; i < 4; i++) T.C[g + 8 * (i >> 1)][2 * t + (i & 1)] = c[l * 4 + i];
    if (s.tf32) {
      for (int i = 0; i < 4; i++) T.A[g + 8 * (i & 1)][t + 4 * (i >> 1)] = tf(al[i]);
      for (int i = 0; i < 2; i++) T.B[t + 4 * i][g] = tf(bl[i]);
    } else if (!s.sparse && s.K == 16) {
      for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++) T.A[g + 8 * (i & 1)][2 * t + h + 8 * (i >> 1)] = half(al[i], h);
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) T.B[2 * t + h + 8 * i][g] = half(bl[i], h);
    } else if (!s.sparse) {
      for (int i = 0; i < 2; i++)
        for (int h = 0; h < 2; h++) T.A[g + 8 * i][2 * t + h] = half(al[i], h);
      for (int h = 0; h < 2; h++) T.B[2 * t + h][g] = half(bl[0], h);
    } else {
      // A register i holds the two kept values of (row, 4-column chunk); their column offsets are the
      // nibble of that row and chunk in the metadata of lane 4·(row mod 8) + sel (k16) or
      // 4·(row mod 8) + 2·sel + (chunk ≥ 4) (k32), at bits 16·(row ≥ 8) + 4·(chunk mod 4).
      for (int i = 0; i < s.na; i++) {
        const int row = s.K == 16 ? g + 8 * i : g + 8 * (i & 1);
        const int ch = s.K == 16 ? t : t + 4 * (i >> 1);
        const int ml = 4 * (row % 8) + (s.K == 16 ? sel : 2 * sel + (ch >> 2));
        const unsigned nib = e[ml] >> (16 * (row >= 8) + 4 * (ch % 4)) & 0xfu;
        T.A[row][4 * ch + (nib & 3)] = half(al[i], 0);
        T.A[row][4 * ch + (nib >> 2)] = half(al[i], 1);
      }
      for (int j = 0; j < s.nb; j++)
        for (int h = 0; h < 2; h++) T.B[8 * j + 2 * t + h][g] = half(bl[j], h);
    }
  }
  return T;
}

// Register words of a value: integer kind → small integers (exact everywhere), real → random sign,
// exponent in [-5, 0] and full significand.
uint32_t rand_elem(Rng& g, const Fmt& f, bool integer) {
  if (integer) return enc((double)g.range(-8, 8), f);
  const double m = 1.0 + (double)(g.next() >> 11) * 0x1p-53;
  const double v = std::ldexp(m, g.range(-5, 0)) * (g.coin() ? -1 : 1);
  return enc(round_fmt(v, f), f);
}
float rand_acc(Rng& g, bool integer) {
  if (integer) return (float)g.range(-64, 64);
  const double m = 1.0 + (double)(g.next() >> 11) * 0x1p-53;
  return (float)(std::ldexp(m, g.range(-4, 1)) * (g.coin() ? -1 : 1));
}

// Random valid ordered 2:4 metadata nibble: offsets o0 < o1.
uint32_t rand_nibble(Rng& g) {
  static const int P[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  const int* p = P[g.below(6)];
  return (uint32_t)(p[0] | (p[1] << 2));
}

// kind: 0 integer (bitwise), 1 real (bounded), 2 real with raw f32 tf32 registers (INFO)
void mma_case(Ctx& c, const MmaShape& s, int sel, int kind) {
  std::string name = s.name;
  if (s.sparse) name += ".sel" + std::to_string(sel);
  name += kind == 0 ? "/int" : kind == 1 ? "/real" : "/raw-f32";
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int ntiles = 128;
  const size_t n4 = (size_t)ntiles * 128;
  std::vector<uint32_t> a(n4), b(n4), e((size_t)ntiles * 32);
  std::vector<float> cc(n4);
  const Fmt& f = s.bf16 ? kBF16 : kF16;
  for (size_t i = 0; i < n4; i++) {
    const int lane_reg = (int)(i % 4);
    auto word = [&](int nregs) -> uint32_t {
      if (lane_reg >= nregs) return g.u32();  // unused register: garbage, ignored by both sides
      if (s.tf32) {
        if (kind == 0) return f32_bits((float)g.range(-8, 8));
        const float v = bits_f32((g.u32() & 0x807fffffu) | ((uint32_t)(127 + g.range(-5, 0)) << 23));
        // real: exact tf32 values, except the to_tf32 and raw kinds, which get full f32 significands
        return (s.op == FID_MMA_K8_TF32_CVT || kind == 2) ? f32_bits(v) : (f32_bits(v) & 0xffffe000u);
      }
      return rand_elem(g, f, kind == 0) | (rand_elem(g, f, kind == 0) << 16);
    };
    a[i] = word(s.na);
    b[i] = word(s.nb);
    cc[i] = rand_acc(g, kind == 0);
  }
  for (auto& w : e) {
    w = 0;
    for (int j = 0; j < 8; j++) w |= rand_nibble(g) << (4 * j);
  }
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign(n4, 0);
      float* d = reinterpret_cast<float*>(out.data());
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_mma(s.op, sel, ntiles, a.data(), b.data(), cc.data(), e.data(), d, msg, len);
#endif
      (void)gpu;
      return fid_emu_mma(s.op, sel, ntiles, a.data(), b.data(), cc.data(), e.data(), d, msg, len);
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  const char* kinds[3] = {"integer inputs, bitwise", "random real inputs, |d_gpu - d_emu| <= (K+1)*2^-23*S",
                          "raw f32 registers (low 13 bits set): how the mma reads them is unspecified"};
  Result& r = add_result(c, name, std::string(kinds[kind]) + ", " + std::to_string(ntiles) + " tiles");
  r.info = kind == 2;
  if (!runs_ok(r, emu, c.gpu ? &gpu : nullptr)) return;
  r.max_ulp = 0;
  if (kind != 0) r.bound = s.K + 1, r.max_metric = 0;
  for (int tile = 0; tile < ntiles; tile++) {
    const size_t o = (size_t)tile * 128;
    std::vector<uint32_t> av(a.begin() + o, a.begin() + o + 128), bv(b.begin() + o, b.begin() + o + 128);
    if (s.op == FID_MMA_K8_TF32_CVT)  // the kernel rounds with cvt.rna (ties away)
      for (auto* v : {&av, &bv})
        for (auto& w : *v) w = enc(round_fmt(bits_f32(w), kTF32, true), kF32) & 0xffffe000u;
    const Tile T = decode_tile(s, sel, av.data(), bv.data(), cc.data() + o, e.data() + (size_t)tile * 32);
    for (int l = 0; l < 32; l++)
      for (int i = 0; i < 4; i++) {
        const int row = (l >> 2) + 8 * (i >> 1), col = 2 * (l % 4) + (i & 1);
        double ref = T.C[row][col], S = std::fabs(T.C[row][col]);
        for (int k = 0; k < s.K; k++) ref += T.A[row][k] * T.B[k][col], S += std::fabs(T.A[row][k] * T.B[k][col]);
        const uint32_t ref_bits = f32_bits((float)ref);
        const size_t idx = o + (size_t)l * 4 + i;
        const uint32_t we = emu.out[idx];
        r.compared++;
        // the emulator rounds the exact sum once; so does the reference (both through double)
        const bool rok = kind == 0 ? we == ref_bits
                                   : (ulp_dist(we, ref_bits) <= 1 || std::fabs(bits_f32(we) - ref) <= 0x1p-40 * S);
        if (!rok) r.ref_mismatches++;
        const uint32_t other = c.gpu ? gpu.out[idx] : ref_bits;
        bool bad;
        double metric = 0;
        if (c.gpu) {
          // mma_bound: the emulator's d is the exact sum rounded once (error ≤ 2⁻²⁴·S). Hardware adds
          // K exact products and c in some order with fp32 (or wider) partial sums, each addition
          // rounded or truncated: error ≤ K·2⁻²³·S to first order. So |d_gpu − d_emu| ≤ (K + 1)·2⁻²³·S.
          // A wrong fragment layout gives errors of order S itself.
          metric = std::fabs((double)bits_f32(other) - (double)bits_f32(we)) / (0x1p-23 * (S > 0 ? S : 1e-300));
          bad = kind == 0 ? other != we : !(metric <= r.bound);
          if (kind == 0 && bad && (other | we) == 0x80000000u) r.zero_sign_only++;
        } else {
          metric = std::fabs((double)bits_f32(we) - ref) / (0x1p-23 * (S > 0 ? S : 1e-300));
          bad = !rok;
        }
        if (kind != 0) r.max_metric = std::max(r.max_metric, std::isnan(metric) ? 1e30 : metric);
        r.max_ulp = std::max(r.max_ulp, ulp_dist(other, we));
        if (other == we) r.bitwise_equal++;
        if (bad) {
          r.mismatches++;
          if ((int)r.examples.size() < c.max_examples) {
            char buf[256];
            std::snprintf(buf, sizeof buf, "tile %d D[%d][%d] (lane %d d%d): emu %.9g%s%.9g, ref %.9g, S %.4g", tile, row, col, l,
                          i, (double)bits_f32(we), c.gpu ? " gpu " : " ref ", (double)bits_f32(other), ref, S);
            r.examples.push_back(buf);
          }
        }
      }
  }
  finish_status(r, c.gpu);
}

// ---- wgmma ---------------------------------------------------------------------------------------------

// wgmma.m64n256k16 through 128-byte-swizzle descriptors: small integers (|a|, |b| ≤ 3, |c| ≤ 64), so
// every product and sum is exact in float32 and GPU, emulator and the host reference must agree bit for
// bit — a wrong swizzle, descriptor field, row or accumulator placement shows as a mismatch.
// tma: the tiles reach shared memory by TMA (FID_FN(wgmma_tma)) instead of plain swizzled stores.
void wgmma_case(Ctx& c, bool bf16, bool tma = false) {
  const std::string name = std::string(tma ? "tma+" : "") + "wgmma.m64n256k16." + (bf16 ? "bf16" : "f16") + ".sw128";
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int nblocks = 4;
  // b16 bits of the integers −3 … 3
  const uint16_t kBf[7] = {0xc040, 0xc000, 0xbf80, 0x0000, 0x3f80, 0x4000, 0x4040};
  const uint16_t kF16[7] = {0xc200, 0xc000, 0xbc00, 0x0000, 0x3c00, 0x4000, 0x4200};
  std::vector<int> av((size_t)nblocks * 64 * 64), bv((size_t)nblocks * 256 * 64);
  for (int& v : av) v = g.below(7) - 3;
  for (int& v : bv) v = g.below(7) - 3;
  auto pack = [&](const std::vector<int>& v) {
    std::vector<uint32_t> w(v.size() / 2);
    for (size_t i = 0; i < w.size(); i++) {
      const uint16_t lo = (bf16 ? kBf : kF16)[v[2 * i] + 3], hi = (bf16 ? kBf : kF16)[v[2 * i + 1] + 3];
      w[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    return w;
  };
  const std::vector<uint32_t> aw = pack(av), bw = pack(bv);
  std::vector<float> cv((size_t)nblocks * 128 * 128);
  for (float& v : cv) v = (float)(g.below(129) - 64);
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      std::vector<float> d(cv.size(), 0.f);
      int rc;
#ifndef FIDELITY_EMU_ONLY
      if (gpu) rc = (tma ? fid_gpu_wgmma_tma : fid_gpu_wgmma)(bf16, nblocks, aw.data(), bw.data(), cv.data(), d.data(), msg, len);
      else
#endif
        rc = (tma ? fid_emu_wgmma_tma : fid_emu_wgmma)(bf16, nblocks, aw.data(), bw.data(), cv.data(), d.data(), msg, len);
      (void)gpu;
      out.resize(d.size());
      std::memcpy(out.data(), d.data(), d.size() * 4);
      return rc;
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, "integer inputs (exact sums), " + std::to_string(nblocks) + " warpgroups, bitwise");
  // PTX §9.7.15.5.1: thread 32w + l, register 4j + v holds D(16w + l/4 + 8·(v >> 1), 8j + 2·(l % 4) + (v & 1))
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, [](size_t) { return true; },
      [&](size_t idx, uint32_t w) {
        const int blk = (int)(idx / (128 * 128)), tid = (int)(idx / 128 % 128), i = (int)(idx % 128);
        const int wq = tid / 32, l = tid % 32, j = i / 4, v = i % 4;
        const int row = 16 * wq + l / 4 + 8 * (v >> 1), col = 8 * j + 2 * (l % 4) + (v & 1);
        double acc = cv[idx];
        for (int k = 0; k < 64; k++)
          acc += (double)av[((size_t)blk * 64 + row) * 64 + k] * bv[((size_t)blk * 256 + col) * 64 + k];
        float f = (float)acc;
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        return w == bits;
      },
      [&](size_t idx) {
        return "block " + std::to_string(idx / (128 * 128)) + " thread " + std::to_string(idx / 128 % 128) + " d" +
               std::to_string(idx % 128);
      },
      true);
}

// ---- TMA ----------------------------------------------------------------------------------------------

// cp.async.bulk.tensor.2d with the 128-byte swizzle (cuda/tma.cuh's tensor map, an mbarrier): boxes of
// 64 × 32 16-bit elements from a [37][152] matrix of which 150 columns are the tensor, at coordinates
// inside, overlapping the right and bottom edges, and wholly outside. The raw shared bytes must be the
// matrix's, byte (r, i) of the box at offset 128·r + 2i with its 16-byte chunk XORed with r % 8, zeros
// outside the tensor — the layout the wgmma descriptors read (wgmma.*.sw128 above).
void tma_case(Ctx& c) {
  const std::string name = "tma.2d.sw128.box64x32";
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int rows = 37, cols = 150, ld = 152, box_rows = 32;
  const std::vector<int32_t> c0 = {0, 64, 128, 96, 0, 192, -64, 8}, c1 = {0, 5, 16, 30, 36, 0, 0, 1};
  const int nblocks = (int)c0.size();
  std::vector<uint32_t> src((size_t)rows * ld / 2);
  for (auto& w : src) w = g.u32() | 0x00010001u;  // no zero halves: a zero means "outside" below
  auto elem = [&](int r, int col) -> uint16_t {
    if (r < 0 || col < 0 || r >= rows || col >= cols) return 0;
    const uint32_t w = src[((size_t)r * ld + col) / 2];
    return (uint16_t)(col % 2 ? w >> 16 : w & 0xffff);
  };
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign((size_t)nblocks * box_rows * 32, 0);
      int rc;
#ifndef FIDELITY_EMU_ONLY
      if (gpu) rc = fid_gpu_tma(nblocks, src.data(), rows, cols, ld, box_rows, c0.data(), c1.data(), out.data(), msg, len);
      else
#endif
        rc = fid_emu_tma(nblocks, src.data(), rows, cols, ld, box_rows, c0.data(), c1.data(), out.data(), msg, len);
      (void)gpu;
      return rc;
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, std::to_string(nblocks) + " boxes, edges and outside included, bitwise");
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, [](size_t) { return true; },
      [&](size_t idx, uint32_t w) {
        const int blk = (int)(idx / (box_rows * 32));
        const uint32_t off = (uint32_t)(idx % (box_rows * 32)) * 4;  // byte offset in the box's shared bytes
        bool ok = true;
        for (uint32_t h = 0; h < 2; h++) {
          const uint32_t a = off + 2 * h;
          const uint32_t row = a / 128, chunk = (a / 16) % 8, in_chunk = a % 16;
          const uint32_t src_chunk = chunk ^ (row % 8);  // the swizzle is its own inverse
          const int col = (int)(src_chunk * 8 + in_chunk / 2);
          ok = ok && elem(c1[blk] + (int)row, c0[blk] + col) == (uint16_t)(w >> (16 * h));
        }
        return ok;
      },
      [&](size_t idx) {
        return "box " + std::to_string(idx / (box_rows * 32)) + " byte " + std::to_string(idx % (box_rows * 32) * 4);
      });
}

// ---- ldmatrix ----------------------------------------------------------------------------------------

void ldmatrix_case(Ctx& c, int num, bool trans) {
  const std::string name = std::string("ldmatrix.x") + std::to_string(num) + (trans ? ".trans" : "");
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int nblocks = 64;
  std::vector<uint32_t> rows((size_t)nblocks * 256);
  std::vector<int32_t> sel((size_t)nblocks * 32);
  for (auto& w : rows) w = g.u32();
  for (int blk = 0; blk < nblocks; blk++) {  // each lane a distinct random row of the 64
    std::vector<int32_t> perm(64);
    for (int i = 0; i < 64; i++) perm[i] = i;
    for (int i = 63; i > 0; i--) std::swap(perm[i], perm[g.below(i + 1)]);
    for (int l = 0; l < 32; l++) sel[(size_t)blk * 32 + l] = perm[l];
  }
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign((size_t)nblocks * 128, 0);
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_ldmatrix(num, trans, nblocks, rows.data(), sel.data(), out.data(), msg, len);
#endif
      (void)gpu;
      return fid_emu_ldmatrix(num, trans, nblocks, rows.data(), sel.data(), out.data(), msg, len);
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, "random b16 rows at random row addresses, " + std::to_string(nblocks) + " warps, bitwise");
  // PTX §9.7.14.5.15: lane 8i + r gives row r of matrix i. Register i of lane l holds elements
  // (l>>2, 2(l%4)) and (l>>2, 2(l%4)+1) of matrix i, or with .trans (2(l%4), l>>2) and (2(l%4)+1, l>>2).
  auto elem = [&](int blk, int i, int row, int col) -> uint32_t {
    const int src = sel[(size_t)blk * 32 + 8 * i + row];
    const uint32_t w = rows[(size_t)blk * 256 + src * 4 + col / 2];
    return col % 2 ? w >> 16 : w & 0xffffu;
  };
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, [&](size_t i) { return (int)(i % 4) < num; },
      [&](size_t idx, uint32_t w) {
        const int blk = (int)(idx / 128), l = (int)(idx % 128 / 4), i = (int)(idx % 4);
        const int g4 = l >> 2, t = l % 4;
        const uint32_t lo = trans ? elem(blk, i, 2 * t, g4) : elem(blk, i, g4, 2 * t);
        const uint32_t hi = trans ? elem(blk, i, 2 * t + 1, g4) : elem(blk, i, g4, 2 * t + 1);
        return w == (lo | hi << 16);
      },
      [&](size_t idx) {
        return "block " + std::to_string(idx / 128) + " lane " + std::to_string(idx % 128 / 4) + " r" + std::to_string(idx % 4);
      });
}

// ---- cp.async ----------------------------------------------------------------------------------------

void cp_async_case(Ctx& c) {
  const std::string name = "cp.async.ca4/8/16+cg16+zfill+groups";
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int nblocks = 16, nthreads = 64, nsrc = 4096;
  static const int kSize[10] = {4, 8, 16, 16, 4, 8, 16, 16, 16, 16};
  static const int kDst[10] = {0, 2, 4, 8, 12, 14, 16, 20, 24, 28};  // destination word in the slot
  static const int kGroup[10] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
  std::vector<uint32_t> src(nsrc);
  for (auto& w : src) w = g.u32();
  std::vector<int32_t> plan((size_t)nblocks * nthreads * 16);
  for (size_t t = 0; t < (size_t)nblocks * nthreads; t++) {
    int32_t* p = &plan[t * 16];
    for (int i = 0; i < 10; i++) p[i] = g.below(nsrc / (kSize[i] / 4)) * (kSize[i] / 4);
    for (int i = 4; i < 10; i++) p[10 + i - 4] = g.range(0, kSize[i]);  // src sizes: any byte count 0..cp-size
  }
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign((size_t)nblocks * nthreads * 128, 0);
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_cp_async(nblocks, src.data(), nsrc, plan.data(), out.data(), msg, len);
#endif
      (void)gpu;
      return fid_emu_cp_async(nblocks, src.data(), nsrc, plan.data(), out.data(), msg, len);
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, "random offsets and src sizes, reads after wait_group 2/1/all and after a barrier, bitwise");
  // the slot each thread should hold once everything landed: 0xA5 fill, then each copy's src-size bytes
  // of the source followed by zeros up to its cp-size
  auto slot_of = [&](size_t t) {
    std::vector<uint8_t> slot(128, 0xA5);
    const int32_t* p = &plan[t * 16];
    for (int i = 0; i < 10; i++) {
      const int bytes = (i >= 4 && i != 8) ? p[10 + i - 4] : kSize[i];
      const uint8_t* s = reinterpret_cast<const uint8_t*>(&src[p[i]]);
      for (int k = 0; k < kSize[i]; k++) slot[kDst[i] * 4 + k] = k < bytes ? s[k] : 0;
    }
    return slot;
  };
  auto group_of_word = [&](int w) {
    for (int i = 0; i < 10; i++)
      if (w >= kDst[i] && w < kDst[i] + kSize[i] / 4) return kGroup[i];
    return w < 12 ? 0 : w < 24 ? 1 : 2;  // fill words read with the copies around them
  };
  // out part q (0..2) holds the words of group q; part 3 the neighbour's whole slot
  auto counted = [&](size_t idx) {
    const int w = (int)(idx % 128);
    if (w >= 96) return true;
    const int part = w / 32, sw = w % 32;
    return (part == 0 && sw < 12) || (part == 1 && sw >= 12 && sw < 24) || (part == 2 && sw >= 24);
  };
  (void)group_of_word;
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, counted,
      [&](size_t idx, uint32_t got) {
        const size_t t = idx / 128;
        const int w = (int)(idx % 128);
        const size_t blk = t / nthreads, th = t % nthreads;
        const size_t owner = w >= 96 ? blk * nthreads + (th + 1) % nthreads : t;
        const std::vector<uint8_t> slot = slot_of(owner);
        uint32_t want;
        std::memcpy(&want, &slot[(w % 32) * 4], 4);
        return got == want;
      },
      [&](size_t idx) {
        return "block " + std::to_string(idx / 128 / nthreads) + " thread " + std::to_string(idx / 128 % nthreads) + " out word " +
               std::to_string(idx % 128);
      });
}

// ---- element-wise ------------------------------------------------------------------------------------

// Inputs with the edge values of each conversion: zeros, subnormals (largest, smallest, ties between
// subnormals), the largest finite and the overflow threshold, infinities, exact ties (even and odd
// below), and one-ulp-off ties; plus random values over the whole exponent range of the source.
std::vector<float> f32_edges(const Fmt& to) {
  std::vector<float> v = {0.f, -0.f, INFINITY, -INFINITY, 1.f, -1.f, 3.4028235e38f, -3.4028235e38f,
                          bits_f32(1), bits_f32(0x007fffff), bits_f32(0x00800000), bits_f32(0x80000001)};
  const int mbits = to.p - 1;
  // largest finite of the target, the midpoint to the next power (rounds to Inf under RNE), and one
  // float below that midpoint
  const double maxf = std::ldexp(2.0 - std::ldexp(1.0, -mbits), to.emax);
  const double mid = maxf + std::ldexp(1.0, to.emax - mbits - 1);
  for (double x : {maxf, mid}) {
    v.push_back((float)x);
    v.push_back(-(float)x);
    v.push_back(std::nextafter((float)x, 0.f));
    v.push_back(std::nextafter((float)x, INFINITY));
  }
  // around the smallest subnormal / normal of the target
  for (int k = -3; k <= 3; k++) {
    const double sub = std::ldexp(1.0, to.emin - mbits);
    for (double m : {0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 3.0})
      if (std::ldexp(m * sub, k) >= 1e-45) v.push_back((float)std::ldexp(m * sub, k));
    v.push_back((float)std::ldexp(1.0, to.emin + k));
  }
  return v;
}

uint32_t rand_f32_any(Rng& g) {  // finite, any exponent (subnormals included), any sign
  uint32_t u;
  do u = g.u32();
  while ((u & 0x7f800000u) == 0x7f800000u);
  return u;
}
// A random float that is an exact tie (or one ulp beside one) when rounded to p bits.
uint32_t rand_tie(Rng& g, const Fmt& to, int bias_exp_lo, int bias_exp_hi) {
  const int drop = 24 - to.p;  // significand bits dropped
  uint32_t e = (uint32_t)g.range(std::max(bias_exp_lo, 1), std::min(bias_exp_hi, 254));  // normal floats
  uint32_t m = g.u32() & 0x7fffffu;
  m = (m >> drop << drop) | (1u << (drop - 1));  // exactly halfway
  const int off = g.range(-1, 1);
  uint32_t u = (g.coin() ? 0x80000000u : 0) | (e << 23) | m;
  return u + off;
}
std::vector<uint32_t> nan_inputs32(Rng& g, int n) {
  std::vector<uint32_t> v = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0xffffffffu,
                             0x7fa00000u, 0x7f802000u, 0x7f801000u, 0x7fbfffffu};
  while ((int)v.size() < n) v.push_back((g.coin() ? 0x80000000u : 0) | 0x7f800000u | std::max(1u, g.u32() & 0x7fffffu));
  return v;
}

struct EwSpec {
  int op;
  std::string name, what;
  std::vector<uint32_t> in;  // n × in-words
  // reference check of one element: in-words, emu out-words → ok
  std::function<bool(const uint32_t*, const uint32_t*)> ref_ok;
  bool float_out = false;
  bool info = false;
};

void ew_run(Ctx& c, const EwSpec& s) {
  if (!selected(c, s.name)) return;
  const int iw = FID_EW_IN_WORDS(s.op), ow = FID_EW_OUT_WORDS(s.op);
  const int n = (int)(s.in.size() / iw);
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign((size_t)n * ow, 0);
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_elementwise(s.op, n, s.in.data(), out.data(), msg, len);
#endif
      (void)gpu;
      return fid_emu_elementwise(s.op, n, s.in.data(), out.data(), msg, len);
    });
  };
  Run gpu;
  if (!gpu_part(c, s.name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, s.name, s.what + ", " + std::to_string(n) + " elements, bitwise");
  r.info = s.info;
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, [](size_t) { return true; },
      [&](size_t idx, uint32_t) {
        const size_t e = idx / ow;
        return s.ref_ok(&s.in[e * iw], &emu.out[e * ow]);
      },
      [&](size_t idx) {
        const size_t e = idx / ow;
        std::string in;
        for (int j = 0; j < iw; j++) in += (j ? "," : "") + hex(s.in[e * iw + j]);
        return "element " + std::to_string(e) + " in (" + in + ") out " + std::to_string(idx % ow);
      },
      s.float_out);
}

void elementwise_cases(Ctx& c) {
  const uint64_t base = case_seed(c, "elementwise");
  Rng g(base);
  // --- f32 → f16 / bf16, finite and infinite, then NaN
  for (int bf = 0; bf < 2; bf++) {
    const Fmt& f = bf ? kBF16 : kF16;
    const char* tname = bf ? "bf16" : "f16";
    std::vector<uint32_t> in;
    for (float x : f32_edges(f)) in.push_back(f32_bits(x));
    for (int i = 0; i < 3000; i++) in.push_back(rand_f32_any(g));
    for (int i = 0; i < 3000; i++) in.push_back(rand_tie(g, f, 127 + f.emin - 12, 127 + f.emax));
    for (int i = 0; i < 1000; i++) in.push_back(f32_bits((float)std::ldexp((double)(g.u32() >> 8) * 0x1p-24, g.range(f.emin - 12, f.emax + 1))));
    auto ok = [f](const uint32_t* x, const uint32_t* y) { return y[0] == enc(round_fmt(bits_f32(x[0]), f), f); };
    ew_run(c, {bf ? FID_EW_F32_TO_BF16 : FID_EW_F32_TO_F16, std::string("cvt.f32->") + tname, "__float2" + std::string(bf ? "bfloat16" : "half") + "_rn: edges, ties, subnormals, overflow, random", in, ok});
    const std::vector<uint32_t> nans = nan_inputs32(g, 256);
    auto nan_ok = [f](const uint32_t*, const uint32_t* y) { return is_nan_bits(y[0] & 0xffffu, f); };
    ew_run(c, {bf ? FID_EW_F32_TO_BF16 : FID_EW_F32_TO_F16, std::string("cvt.f32->") + tname + ".nan", "NaN inputs (quiet, signalling, payloads)", nans, nan_ok});
    // f64 → f16 / bf16: one rounding from double (double-rounding traps: a hair above a tie)
    std::vector<uint32_t> in64;
    auto push64 = [&](double d) {
      in64.push_back((uint32_t)f64_bits(d));
      in64.push_back((uint32_t)(f64_bits(d) >> 32));
    };
    for (float x : f32_edges(f)) push64(x);
    for (int i = 0; i < 2000; i++) {
      const double tie = (double)bits_f32(rand_tie(g, f, 127 + f.emin - 12, 127 + f.emax) & ~1u);
      push64(tie);
      push64(std::nextafter(tie, 0.0));
      push64(std::nextafter(tie, INFINITY * tie));
    }
    for (int i = 0; i < 2000; i++) push64(std::ldexp((double)(g.next() >> 11) * 0x1p-53 + 0.5, g.range(f.emin - 14, f.emax + 1)) * (g.coin() ? -1 : 1));
    push64(1e300);
    push64(-1e300);
    push64(1e-300);
    auto ok64 = [f](const uint32_t* x, const uint32_t* y) {
      const double d = bits_f64(((uint64_t)x[1] << 32) | x[0]);
      return y[0] == enc(round_fmt(d, f), f);
    };
    ew_run(c, {bf ? FID_EW_F64_TO_BF16 : FID_EW_F64_TO_F16, std::string("cvt.f64->") + tname, "__double2" + std::string(bf ? "bfloat16" : "half") + ": ties from double, a hair beside ties, random", in64, ok64});
    // f16 / bf16 → f32: every bit pattern (NaNs separately)
    std::vector<uint32_t> all, allnan;
    for (uint32_t h = 0; h < 65536; h++) (is_nan_bits(h, f) ? allnan : all).push_back(h);
    auto up_ok = [f](const uint32_t* x, const uint32_t* y) { return y[0] == f32_bits((float)dec(x[0], f)); };
    // f16 → f32: the GPU returns the canonical NaN 0x7FFFFFFF; bf16 → f32 is a shift (payload kept)
    auto up_nan_ok = [bf](const uint32_t* x, const uint32_t* y) { return bf ? y[0] == (x[0] & 0xffffu) << 16 : y[0] == 0x7fffffffu; };
    EwSpec up{bf ? FID_EW_BF16_TO_F32 : FID_EW_F16_TO_F32, std::string("cvt.") + tname + "->f32", "every non-NaN bit pattern", all, up_ok, true};
    ew_run(c, up);
    ew_run(c, {bf ? FID_EW_BF16_TO_F32 : FID_EW_F16_TO_F32, std::string("cvt.") + tname + "->f32.nan", "every NaN bit pattern", allnan, up_nan_ok, true});
    // packing (ptx::pack_f16 / pack_bf16): two floats, each rounded like the conversion
    std::vector<uint32_t> pin;
    const std::vector<float> edges = f32_edges(f);
    for (size_t i = 0; i < edges.size(); i++) {
      pin.push_back(f32_bits(edges[i]));
      pin.push_back(f32_bits(edges[(i * 7 + 3) % edges.size()]));
    }
    for (int i = 0; i < 2000; i++) {
      pin.push_back(g.coin() ? rand_tie(g, f, 127 + f.emin - 12, 127 + f.emax) : rand_f32_any(g));
      pin.push_back(g.coin() ? rand_tie(g, f, 127 + f.emin - 12, 127 + f.emax) : rand_f32_any(g));
    }
    auto pack_ok = [f](const uint32_t* x, const uint32_t* y) {
      return y[0] == (enc(round_fmt(bits_f32(x[0]), f), f) | enc(round_fmt(bits_f32(x[1]), f), f) << 16);
    };
    ew_run(c, {bf ? FID_EW_PACK_BF16 : FID_EW_PACK_F16, std::string("pack_") + tname, std::string("ptx::pack_") + tname + "(lo, hi): edges, ties, random", pin, pack_ok});
    // arithmetic: scalar and x2 (add, sub, mul, fma), random values over the whole range, edge values
    // (subnormals, the largest finite, infinities, zeros of both signs); NaN inputs separately
    auto rand_h = [&](bool with_nan) -> uint32_t {
      const int k = g.below(10);
      if (k == 0) {  // edges
        static const uint32_t e16[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x3c00, 0x3c01};
        static const uint32_t eb16[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x3f80, 0x3f81};
        return bf ? eb16[g.below(12)] : e16[g.below(12)];
      }
      if (k == 1 && with_nan) return bf ? 0x7f80u | (1 + g.below(127)) | (g.coin() ? 0x8000u : 0) : 0x7c00u | (1 + g.below(1023)) | (g.coin() ? 0x8000u : 0);
      if (k <= 4) {  // near 1: results that need rounding, ties included
        const double v = (1.0 + g.below(1 << (f.p - 1)) * std::ldexp(1.0, 1 - f.p)) * std::ldexp(1.0, g.range(-3, 3)) * (g.coin() ? -1 : 1);
        return enc(v, f);
      }
      uint32_t h;
      do h = g.u32() & 0xffffu;
      while (is_nan_bits(h, f));
      return h;
    };
    for (int nan = 0; nan < 2; nan++)
      for (int x2 = 0; x2 < 2; x2++) {
        std::vector<uint32_t> ain;
        for (int i = 0; i < 6000; i++)
          for (int j = 0; j < 3; j++) {
            uint32_t w = rand_h(nan);
            if (x2) w |= rand_h(nan) << 16;
            ain.push_back(w);
          }
        auto ar_ok = [f, x2](const uint32_t* x, const uint32_t* y) {
          for (int h = 0; h < (x2 ? 2 : 1); h++) {
            const int sh = 16 * h;
            const double a = dec(x[0] >> sh & 0xffffu, f), b = dec(x[1] >> sh & 0xffffu, f), cc = dec(x[2] >> sh & 0xffffu, f);
            const double want[4] = {round_fmt(two_sum_odd(a, b), f), round_fmt(two_sum_odd(a, -b), f), round_fmt(a * b, f),
                                    round_fmt(fma_odd(a, b, cc), f)};
            for (int o = 0; o < 4; o++) {
              const uint32_t got = y[o] >> sh & 0xffffu;
              if (std::isnan(want[o]) ? !is_nan_bits(got, f) : got != enc(want[o], f)) return false;
            }
          }
          return true;
        };
        const int op = bf ? (x2 ? FID_EW_BF162_ARITH : FID_EW_BF16_ARITH) : (x2 ? FID_EW_HALF2_ARITH : FID_EW_HALF_ARITH);
        const std::string nm = std::string(bf ? (x2 ? "bf162" : "bf16") : (x2 ? "half2" : "half")) + ".add/sub/mul/fma" + (nan ? ".nan" : "");
        ew_run(c, {op, nm, std::string(x2 ? "__hadd2/__hsub2/__hmul2/__hfma2" : "__hadd/__hsub/__hmul/__hfma") + (nan ? " with NaN inputs mixed in" : ": edges, ties, random"), ain, ar_ok});
      }
  }
  // --- to_tf32 (cvt.rna.tf32.f32): ties away from zero
  {
    std::vector<uint32_t> in;
    for (float x : f32_edges(kTF32)) in.push_back(f32_bits(x));
    for (int i = 0; i < 3000; i++) in.push_back(rand_f32_any(g));
    for (int i = 0; i < 3000; i++) in.push_back(rand_tie(g, kTF32, 1, 254));
    in.push_back(0x7f7fffffu);
    in.push_back(0x7f7ff000u);
    in.push_back(0x7f7fefffu);
    auto ok = [](const uint32_t* x, const uint32_t* y) { return y[0] == enc(round_fmt(bits_f32(x[0]), kTF32, true), kF32); };
    ew_run(c, {FID_EW_TO_TF32, "to_tf32", "ptx::to_tf32 (cvt.rna.tf32.f32): ties away, subnormals, overflow, random", in, ok, true});
    // the GPU clears the low 13 bits of a NaN too (a payload only there leaves an infinity)
    auto nan_ok = [](const uint32_t* x, const uint32_t* y) { return y[0] == (x[0] & 0xffffe000u); };
    ew_run(c, {FID_EW_TO_TF32, "to_tf32.nan", "NaN inputs", nan_inputs32(g, 256), nan_ok, true});
  }
}

// ---- warp collectives --------------------------------------------------------------------------------

struct WarpOpInfo {
  int op;
  const char* name;
};
const WarpOpInfo kWarpOps[] = {
    {FID_WARP_SHFL_IDX, "shfl.idx"},        {FID_WARP_SHFL_UP, "shfl.up"},         {FID_WARP_SHFL_DOWN, "shfl.down"},
    {FID_WARP_SHFL_XOR, "shfl.xor"},        {FID_WARP_SHFL_IDX64, "shfl.idx.u64"}, {FID_WARP_SHFL_F32, "shfl.xor.f32"},
    {FID_WARP_BALLOT, "ballot"},            {FID_WARP_ANY, "any"},                 {FID_WARP_ALL, "all"},
    {FID_WARP_REDUCE_ADD, "reduce.add"},    {FID_WARP_REDUCE_MIN_U, "reduce.min.u32"}, {FID_WARP_REDUCE_MAX_U, "reduce.max.u32"},
    {FID_WARP_REDUCE_MIN_I, "reduce.min.s32"}, {FID_WARP_REDUCE_MAX_I, "reduce.max.s32"}, {FID_WARP_REDUCE_AND, "reduce.and"},
    {FID_WARP_REDUCE_OR, "reduce.or"},      {FID_WARP_REDUCE_XOR, "reduce.xor"},   {FID_WARP_MATCH_ANY, "match_any"},
};

// Host reference of one lane, by the CUDA programming guide's description of each intrinsic (segments of
// `width` lanes; reads outside a lane's reach return its own value).
uint64_t warp_ref(const fid_warp_cfg& cfg, const uint32_t* in, const int32_t* arg, int lane) {
  const int w = cfg.width, seg = lane / w * w;
  auto val = [&](int l) { return (uint64_t)in[l * 2] | (uint64_t)in[l * 2 + 1] << 32; };
  const uint32_t m = cfg.mask;
  switch (cfg.op) {
    case FID_WARP_SHFL_IDX:
    case FID_WARP_SHFL_IDX64: {
      const uint64_t v = val(seg + (arg[lane] & (w - 1)));
      return cfg.op == FID_WARP_SHFL_IDX ? (v & 0xffffffffu) : v;
    }
    case FID_WARP_SHFL_UP: {
      const int s = lane - cfg.arg;
      return (s >= seg ? val(s) : val(lane)) & 0xffffffffu;
    }
    case FID_WARP_SHFL_DOWN: {
      const int s = lane + cfg.arg;
      return (s < seg + w ? val(s) : val(lane)) & 0xffffffffu;
    }
    case FID_WARP_SHFL_XOR:
    case FID_WARP_SHFL_F32: {
      const int s = lane ^ cfg.arg;
      return (s < seg + w ? val(s) : val(lane)) & 0xffffffffu;  // earlier segments are readable, later not
    }
    default: break;
  }
  uint32_t ballot = 0, add = 0, umin = ~0u, umax = 0, band = ~0u, bor = 0, bxor = 0, match = 0;
  int32_t imin = INT32_MAX, imax = INT32_MIN;
  for (int l = 0; l < 32; l++) {
    if (!(m >> l & 1)) continue;
    const uint32_t v = in[l * 2];
    if (arg[l]) ballot |= 1u << l;
    add += v, umin = std::min(umin, v), umax = std::max(umax, v), band &= v, bor |= v, bxor ^= v;
    imin = std::min(imin, (int32_t)v), imax = std::max(imax, (int32_t)v);
    if (v == in[lane * 2]) match |= 1u << l;
  }
  switch (cfg.op) {
    case FID_WARP_BALLOT: return ballot;
    case FID_WARP_ANY: return ballot != 0;
    case FID_WARP_ALL: return ballot == m;
    case FID_WARP_REDUCE_ADD: return add;
    case FID_WARP_REDUCE_MIN_U: return umin;
    case FID_WARP_REDUCE_MAX_U: return umax;
    case FID_WARP_REDUCE_MIN_I: return (uint32_t)imin;
    case FID_WARP_REDUCE_MAX_I: return (uint32_t)imax;
    case FID_WARP_REDUCE_AND: return band;
    case FID_WARP_REDUCE_OR: return bor;
    case FID_WARP_REDUCE_XOR: return bxor;
    default: return match;
  }
}

void warp_case(Ctx& c, const WarpOpInfo& op) {
  const std::string name = op.name;
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  const int nwarps = 256;
  const bool shfl = op.op <= FID_WARP_SHFL_F32;
  std::vector<fid_warp_cfg> cfg(nwarps);
  std::vector<uint32_t> in((size_t)nwarps * 64);
  std::vector<int32_t> arg((size_t)nwarps * 32);
  for (int w = 0; w < nwarps; w++) {
    fid_warp_cfg& k = cfg[w];
    k.op = op.op;
    k.width = shfl ? 1 << g.below(6) : 32;
    const bool partial = g.below(3) == 0;
    if (!partial) k.mask = 0xffffffffu;
    else if (shfl) {  // whole segments, so that every lane reads only members
      do {
        k.mask = 0;
        for (int s = 0; s < 32; s += k.width)
          if (g.coin()) k.mask |= (k.width == 32 ? 0xffffffffu : ((1u << k.width) - 1) << s);
      } while (!k.mask);
    } else {
      do k.mask = g.u32() & g.u32();
      while (!k.mask);
    }
    k.arg = g.below(32);
    if (op.op == FID_WARP_SHFL_XOR || op.op == FID_WARP_SHFL_F32) {
      // a member's partner must be a member: within its segment when the mask is partial
      if (partial) k.arg = g.below(k.width);
    } else if (op.op == FID_WARP_SHFL_UP || op.op == FID_WARP_SHFL_DOWN) {
      k.arg = g.below(k.width + 1 < 32 ? k.width + 1 : 32);
    }
    const int density = g.below(4);  // vote predicates: all false, all true, sparse, random
    for (int l = 0; l < 32; l++) {
      uint32_t lo = g.u32(), hi = g.u32();
      if (op.op >= FID_WARP_REDUCE_ADD && g.below(4) == 0) lo = g.u32() & 0xffu;  // small and repeated values
      if (op.op == FID_WARP_MATCH_ANY) lo = g.below(4) == 0 ? g.u32() : (uint32_t)g.below(3);
      if (op.op == FID_WARP_SHFL_F32 && g.below(4) == 0) lo = 0x7f800001u | g.u32();  // NaN payloads must travel
      in[((size_t)w * 32 + l) * 2] = lo;
      in[((size_t)w * 32 + l) * 2 + 1] = hi;
      int32_t a = (int32_t)(g.u32() % 97) - 32;  // idx: negative and ≥ 32 source lanes too
      if (op.op >= FID_WARP_BALLOT && op.op <= FID_WARP_ALL)
        a = density == 0 ? 0 : density == 1 ? 7 : density == 2 ? g.below(16) == 0 : g.coin();
      arg[(size_t)w * 32 + l] = a;
    }
  }
  auto side = [&](bool gpu) {
    return run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign((size_t)nwarps * 64, 0);
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_warp(nwarps, cfg.data(), in.data(), arg.data(), out.data(), msg, len);
#endif
      (void)gpu;
      return fid_emu_warp(nwarps, cfg.data(), in.data(), arg.data(), out.data(), msg, len);
    });
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, std::string(shfl ? "random widths 1..32, full and segment masks" : "full and random partial masks") +
                                      ", " + std::to_string(nwarps) + " warps, bitwise");
  const bool wide = op.op == FID_WARP_SHFL_IDX64;
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr,
      [&](size_t idx) {
        const size_t lane_at = idx / 2;
        return (cfg[lane_at / 32].mask >> (lane_at % 32) & 1) && (idx % 2 == 0 || wide);
      },
      [&](size_t idx, uint32_t got) {
        const size_t lane_at = idx / 2, w = lane_at / 32;
        const uint64_t want = warp_ref(cfg[w], &in[w * 64], &arg[w * 32], (int)(lane_at % 32));
        return got == (uint32_t)(idx % 2 ? want >> 32 : want);
      },
      [&](size_t idx) {
        const size_t lane_at = idx / 2, w = lane_at / 32;
        char b[160];
        std::snprintf(b, sizeof b, "warp %zu (width %d mask 0x%08x arg %d) lane %zu word %zu", w, cfg[w].width, cfg[w].mask, cfg[w].arg,
                      lane_at % 32, idx % 2);
        return std::string(b);
      });
}

// ---- atomics -----------------------------------------------------------------------------------------

void atomic_case(Ctx& c, int op, const std::string& name, int n, int ntargets, const std::string& what,
                 const std::function<void(Rng&, std::vector<uint32_t>&, std::vector<uint32_t>&)>& gen, bool float_words,
                 bool check_counter_olds = false, bool info = false) {
  if (!selected(c, name)) return;
  Rng g(case_seed(c, name));
  std::vector<uint32_t> init(ntargets), vals(n);
  gen(g, init, vals);
  auto side = [&](bool gpu) {
    std::vector<uint32_t> olds(n, 0);
    Run r = run_side([&](std::vector<uint32_t>& out, char* msg, size_t len) {
      out.assign(ntargets, 0);
#ifndef FIDELITY_EMU_ONLY
      if (gpu) return fid_gpu_atomic(op, n, ntargets, init.data(), vals.data(), out.data(), olds.data(), msg, len);
#endif
      (void)gpu;
      return fid_emu_atomic(op, n, ntargets, init.data(), vals.data(), out.data(), olds.data(), msg, len);
    });
    r.out2 = olds;
    return r;
  };
  Run gpu;
  if (!gpu_part(c, name, [&] { return side(true); }, gpu)) return;
  const Run emu = side(false);
  Result& r = add_result(c, name, what + ", " + std::to_string(n) + " threads on " + std::to_string(ntargets) + " targets, final values bitwise");
  r.info = info;
  // final value of target j from the exact contributions (the float inputs are chosen so that every
  // partial sum is exact, or each target gets one addition)
  auto ref_final = [&](size_t j) -> uint32_t {
    if (op == FID_ATOM_ADD_F32_GLOBAL || op == FID_ATOM_ADD_F32_SHARED) {
      int cnt = 0;
      double s = bits_f32(init[j]);
      float one = 0;
      for (size_t i = j; i < (size_t)n; i += ntargets) s += bits_f32(vals[i]), cnt++, one = bits_f32(vals[i]);
      // atom.add.f32 flushes subnormal inputs and results to sign-preserving zero (an H200 does)
      auto ftz = [](float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; };
      if (cnt == 1) return f32_bits(ftz(ftz(bits_f32(init[j])) + ftz(one)));  // one rounding, as add.rn
      return f32_bits((float)s);
    }
    uint32_t v = init[j];
    for (size_t i = j; i < (size_t)n; i += ntargets) {
      const uint32_t x = vals[i];
      if (op == FID_ATOM_MAX_I32_GLOBAL) v = (uint32_t)std::max((int32_t)v, (int32_t)x);
      else if (op == FID_ATOM_MIN_I32_GLOBAL) v = (uint32_t)std::min((int32_t)v, (int32_t)x);
      else v += x;
    }
    return v;
  };
  compare_words(
      c, r, emu, c.gpu ? &gpu : nullptr, [](size_t) { return true; }, [&](size_t j, uint32_t got) { return got == ref_final(j); },
      [&](size_t j) { return "target " + std::to_string(j) + " init " + hex(init[j]); }, float_words);
  if (check_counter_olds && r.status == "PASS") {
    // atomicAdd(target, 1) returns init, init+1, …: each value exactly once per target, on each side
    for (int s = 0; s < (c.gpu ? 2 : 1); s++) {
      const std::vector<uint32_t>& olds = s ? gpu.out2 : emu.out2;
      for (int j = 0; j < ntargets; j++) {
        std::vector<uint32_t> got;
        for (int i = j; i < n; i += ntargets) got.push_back(olds[i]);
        std::sort(got.begin(), got.end());
        for (size_t k = 0; k < got.size(); k++)
          if (got[k] != init[j] + (uint32_t)k) {
            r.status = "FAIL";
            r.detail += std::string("; ") + (s ? "GPU" : "emulator") + " returned values of target " + std::to_string(j) +
                        " are not init + 0..count-1";
            j = ntargets;
            break;
          }
      }
    }
    if (r.status == "PASS") r.detail += "; returned values: each of init + 0..count-1 once";
  }
}

void atomic_cases(Ctx& c) {
  // dyadic values k·2⁻⁸ with |k| < 2^10: any order of 4096 additions is exact in fp32
  auto dyadic = [](Rng& g, std::vector<uint32_t>& init, std::vector<uint32_t>& vals) {
    for (auto& w : init) w = f32_bits((float)g.range(-1000, 1000) / 256.f);
    for (auto& w : vals) w = f32_bits((float)g.range(-1000, 1000) / 256.f);
  };
  atomic_case(c, FID_ATOM_ADD_F32_GLOBAL, "atomicAdd.f32.global", 4096, 7, "dyadic values (exact sums in any order)", dyadic, true);
  atomic_case(c, FID_ATOM_ADD_F32_SHARED, "atomicAdd.f32.shared", 4096, 13, "dyadic values, shared then global", dyadic, true);
  atomic_case(c, FID_ATOM_ADD_F32_GLOBAL, "atomicAdd.f32.rounding", 4096, 4096, "one random real addition per target (round to nearest)",
              [](Rng& g, std::vector<uint32_t>& init, std::vector<uint32_t>& vals) {
                for (size_t i = 0; i < vals.size(); i++) {
                  const int e = g.range(100, 150);
                  init[i] = (g.u32() & 0x807fffffu) | (uint32_t)e << 23;
                  vals[i] = (g.u32() & 0x807fffffu) | (uint32_t)(e + g.range(-30, 2)) << 23;
                }
              },
              true);
  atomic_case(c, FID_ATOM_ADD_F32_GLOBAL, "atomicAdd.f32.subnormal", 1024, 1024,
              "one addition per target, subnormal operands and results", [](Rng& g, std::vector<uint32_t>& init, std::vector<uint32_t>& vals) {
                for (size_t i = 0; i < vals.size(); i++) {
                  init[i] = (g.u32() & 0x807fffffu) | (g.below(4) == 0 ? 1u << 23 : 0u);
                  vals[i] = (g.u32() & 0x807fffffu);
                }
              },
              true, false, /*required: atom.add.f32 flushes subnormals (seen on an H200; the emulator does too)*/ false);
  auto ints = [](Rng& g, std::vector<uint32_t>& init, std::vector<uint32_t>& vals) {
    for (auto& w : init) w = g.u32();
    for (auto& w : vals) w = g.u32();
  };
  atomic_case(c, FID_ATOM_ADD_I32_GLOBAL, "atomicAdd.s32.global", 4096, 5, "random 32-bit values (wrapping sums)", ints, false);
  atomic_case(c, FID_ATOM_ADD_I32_SHARED, "atomicAdd.s32.shared", 4096, 31, "random 32-bit values, shared then global", ints, false);
  atomic_case(c, FID_ATOM_ADD_U32_GLOBAL, "atomicAdd.u32.counter", 4096, 3, "counters (+1)",
              [](Rng& g, std::vector<uint32_t>& init, std::vector<uint32_t>& vals) {
                for (auto& w : init) w = g.u32() >> 4;
                for (auto& w : vals) w = 1;
              },
              false, true);
  atomic_case(c, FID_ATOM_MAX_I32_GLOBAL, "atomicMax.s32", 4096, 9, "random signed values", ints, false);
  atomic_case(c, FID_ATOM_MIN_I32_GLOBAL, "atomicMin.s32", 4096, 9, "random signed values", ints, false);
  atomic_case(c, FID_ATOM_CAS_U32_GLOBAL, "atomicCAS.u32.loop", 2048, 4, "compare-and-swap add loops", ints, false);
}

// ---- output ------------------------------------------------------------------------------------------

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\', o += (char)ch;
    else if (ch == '\n') o += "\\n";
    else if (ch < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", ch);
      o += b;
    } else o += (char)ch;
  }
  return o + "\"";
}
std::string json_num(double v) {
  if (v < 0 || std::isnan(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

std::string table_line(const Result& r) {
  char b[512];
  std::snprintf(b, sizeof b, "%-40s %8zu %8zu %10s  %-4s  ", r.name.c_str(), r.compared, r.mismatches,
                r.max_ulp < 0 ? "-" : (r.max_ulp >= 1e29 ? "nan" : json_num(r.max_ulp).c_str()), r.status.c_str());
  return b + r.detail;
}

// Every case, in a fixed order (the GPU worker relies on it). Main role: prints each table line as it
// completes.
void run_all_cases(Ctx& c) {
  size_t printed = 0;
  auto flush_lines = [&]() {
    if (c.role != Role::Main) return;
    for (; printed < c.results.size(); printed++) {
      const Result& r = c.results[printed];
      std::printf("%s\n", table_line(r).c_str());
      if (r.status == "FAIL" || r.status == "INFO")
        for (const std::string& e : r.examples) std::printf("    %s\n", e.c_str());
      std::fflush(stdout);
    }
  };
  for (const MmaShape& s : kMma) {
    const int nsel = !s.sparse ? 1 : s.K == 16 ? 4 : 2;
    for (int sel = 0; sel < nsel; sel++)
      for (int kind = 0; kind < 2; kind++) {
        mma_case(c, s, sel, kind);
        flush_lines();
      }
    if (s.op == FID_MMA_K8_TF32) {
      mma_case(c, s, 0, 2);
      flush_lines();
    }
  }
  for (int num : {1, 2, 4})
    for (bool trans : {false, true}) {
      ldmatrix_case(c, num, trans);
      flush_lines();
    }
  cp_async_case(c);
  flush_lines();
  for (bool tma : {false, true})
    for (bool bf16 : {true, false}) {
      wgmma_case(c, bf16, tma);
      flush_lines();
    }
  tma_case(c);
  flush_lines();
  elementwise_cases(c);
  flush_lines();
  for (const WarpOpInfo& op : kWarpOps) {
    warp_case(c, op);
    flush_lines();
  }
  atomic_cases(c);
  flush_lines();

}

#ifndef FIDELITY_EMU_ONLY
// ---- the GPU worker ------------------------------------------------------------------------------------

bool get_bytes(int fd, void* p, size_t n) {
  char* b = static_cast<char*>(p);
  while (n) {
    const ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r, n -= (size_t)r;
  }
  return true;
}
bool get_u32(int fd, uint32_t* v) { return get_bytes(fd, v, 4); }
bool get_str(int fd, std::string* s) {
  uint32_t n;
  if (!get_u32(fd, &n) || n > (1u << 20)) return false;
  s->resize(n);
  return get_bytes(fd, &(*s)[0], n);
}
bool get_words(int fd, std::vector<uint32_t>* v) {
  uint32_t n;
  if (!get_u32(fd, &n) || n > (1u << 26)) return false;
  v->resize(n);
  return get_bytes(fd, v->data(), (size_t)n * 4);
}

[[noreturn]] void worker_main(Ctx c, int from, int wfd) {
  c.role = Role::Worker;
  c.gpu = true;
  c.from = from;
  c.wfd = wfd;
  char msg[1024] = "";
  const int rc = fid_gpu_probe(msg, sizeof msg);
  put_u32(wfd, kMsgProbe), put_u32(wfd, 0), put_u32(wfd, (uint32_t)rc), put_str(wfd, msg);
  if (rc == 0) run_all_cases(c);
  _exit(0);
}

// Runs the GPU half of every case in worker processes and keeps the results in c.gpu_runs. A worker
// that reports an error, dies or exceeds kCaseTimeoutS on one case is replaced by a fresh one that
// starts at the next case. Returns whether the GPU is usable; `device` gets its description.
constexpr int kCaseTimeoutS = 60;
bool collect_gpu_runs(Ctx& c, std::string* device) {
  int from = 0, restarts = 0;
  bool probed = false, usable = false;
  for (;;) {
    std::fflush(stdout);
    std::fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0) {
      *device = std::string("pipe failed: ") + std::strerror(errno);
      return usable;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      *device = std::string("fork failed: ") + std::strerror(errno);
      return usable;
    }
    if (pid == 0) {
      close(fds[0]);
      worker_main(c, from, fds[1]);
    }
    close(fds[1]);
    const int fd = fds[0];
    int cur = -1, last_done = from - 1;
    std::string cur_name;
    bool timed_out = false, this_probe_ok = false;
    for (;;) {
      pollfd pfd{fd, POLLIN, 0};
      const int pr = poll(&pfd, 1, kCaseTimeoutS * 1000);
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) {
        timed_out = true;
        kill(pid, SIGKILL);
        break;
      }
      uint32_t kind, idx;
      if (!get_u32(fd, &kind) || !get_u32(fd, &idx)) break;
      if (kind == kMsgProbe) {
        uint32_t rc;
        std::string msg;
        if (!get_u32(fd, &rc) || !get_str(fd, &msg)) break;
        this_probe_ok = rc == 0;
        if (!probed) {
          probed = true;
          usable = this_probe_ok;
          *device = msg;
        }
      } else if (kind == kMsgBegin) {
        cur = (int)idx;
        if (!get_str(fd, &cur_name)) break;
      } else if (kind == kMsgResult) {
        Run r;
        uint32_t rc;
        if (!get_u32(fd, &rc) || !get_str(fd, &r.msg) || !get_words(fd, &r.out) || !get_words(fd, &r.out2)) break;
        r.rc = (int)rc;
        c.gpu_runs[cur_name] = r;
        last_done = (int)idx;
        cur = -1;
      } else {
        break;
      }
    }
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!usable) return false;
    if (!this_probe_ok) return true;  // a fresh worker found no GPU: the remaining cases report no result
    if (cur >= 0) {  // died or hung inside a case
      Run r;
      r.rc = -1;
      if (timed_out) r.msg = "the GPU worker timed out (" + std::to_string(kCaseTimeoutS) + " s) in this case and was killed";
      else if (WIFSIGNALED(status)) r.msg = "the GPU worker was killed by signal " + std::to_string(WTERMSIG(status)) + " in this case";
      else r.msg = "the GPU worker exited (status " + std::to_string(WEXITSTATUS(status)) + ") in this case";
      c.gpu_runs[cur_name] = r;
      last_done = cur;
    } else if (!(WIFEXITED(status) && WEXITSTATUS(status) == kWorkerRestart)) {
      return true;  // finished every case
    }
    from = last_done + 1;
    if (++restarts > 40) return true;
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  Ctx c;
  std::string json_path;
  bool force_emu_only = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--only" && i + 1 < argc) c.only = argv[++i];
    else if (a == "--examples" && i + 1 < argc) c.max_examples = std::atoi(argv[++i]);
    else if (a == "--emu-only") force_emu_only = true;
    else if (a == "--seed" && i + 1 < argc) c.seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!a.empty() && a.find_first_not_of("0123456789") == std::string::npos) c.seed = std::strtoull(a.c_str(), nullptr, 10);
    else {
      std::fprintf(stderr,
                   "usage: emu-fidelity [SEED] [--json PATH] [--only SUBSTR] [--examples N] [--emu-only]\n"
                   "  exit 0: all pass; 1: a case failed; 2: no usable GPU (emulator checked against references); 3: usage\n");
      return 3;
    }
  }
  std::string device = "none", mode;
  int exit_no_gpu = 0;
#ifdef FIDELITY_EMU_ONLY
  mode = "emu-only build: emulator vs host references";
  (void)force_emu_only;
#else
  if (force_emu_only) {
    mode = "--emu-only: emulator vs host references";
  } else if (std::string msg; collect_gpu_runs(c, &msg)) {
    c.gpu = true;
    device = msg;
    mode = "GPU vs emulator";
  } else {
    device = std::string("NO GPU: ") + msg;
    mode = "NO GPU: emulator vs host references only";
    exit_no_gpu = 2;
    std::printf("emu-fidelity: NO USABLE GPU (%s).\n  Running the emulator half against the host references only; exit code 2.\n",
                msg.c_str());
  }
#endif
  std::printf("emu-fidelity: seed %llu, %s%s%s\n", (unsigned long long)c.seed, mode.c_str(), c.gpu ? ", device " : "",
              c.gpu ? device.c_str() : "");
  std::printf("%-40s %8s %8s %10s  %-4s  %s\n", "case", "compared", "mismatch", "max ulp", "", "detail");
  std::fflush(stdout);

  run_all_cases(c);

  int passed = 0, failed = 0, info = 0;
  for (const Result& r : c.results) (r.status == "PASS" ? passed : r.status == "INFO" ? info : failed)++;
  char summary[512];
  std::snprintf(summary, sizeof summary, "SUMMARY %d cases: %d passed, %d failed, %d info; %s; seed %llu", (int)c.results.size(), passed,
                failed, info, mode.c_str(), (unsigned long long)c.seed);
  std::printf("%s\n", summary);
  if (c.results.empty()) std::printf("emu-fidelity: no case matched --only '%s'\n", c.only.c_str());

  if (!json_path.empty()) {
    std::string j = "{\n  \"test\": \"emu-fidelity\",\n  \"seed\": " + std::to_string(c.seed) + ",\n  \"mode\": " + json_str(mode) +
                    ",\n  \"gpu\": " + (c.gpu ? "true" : "false") + ",\n  \"device\": " + json_str(device) +
                    ",\n  \"summary\": {\"cases\": " + std::to_string(c.results.size()) + ", \"passed\": " + std::to_string(passed) +
                    ", \"failed\": " + std::to_string(failed) + ", \"info\": " + std::to_string(info) + ", \"line\": " + json_str(summary) +
                    "},\n  \"cases\": [\n";
    for (size_t i = 0; i < c.results.size(); i++) {
      const Result& r = c.results[i];
      j += "    {\"case\": " + json_str(r.name) + ", \"compared\": " + std::to_string(r.compared) +
           ", \"mismatches\": " + std::to_string(r.mismatches) + ", \"max_ulp\": " + json_num(r.max_ulp) +
           ", \"max_err_over_2^-23S\": " + json_num(r.max_metric) + ", \"bound\": " + json_num(r.bound) +
           ", \"emu_vs_ref_mismatches\": " + std::to_string(r.ref_mismatches) + ", \"status\": " + json_str(r.status) +
           ", \"detail\": " + json_str(r.detail) + ", \"examples\": [";
      for (size_t k = 0; k < r.examples.size(); k++) j += (k ? ", " : "") + json_str(r.examples[k]);
      j += std::string("]}") + (i + 1 < c.results.size() ? "," : "") + "\n";
    }
    j += "  ]\n}\n";
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f || std::fwrite(j.data(), 1, j.size(), f) != j.size()) {
      std::fprintf(stderr, "emu-fidelity: cannot write %s\n", json_path.c_str());
      if (f) std::fclose(f);
      return 1;
    }
    std::fclose(f);
  }
  if (failed || c.results.empty()) return 1;
  return exit_no_gpu;
}
