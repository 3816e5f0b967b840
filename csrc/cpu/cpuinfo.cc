// cpuinfo.cc — CPUID + XGETBV checks (AVX2+FMA; AVX-512 F/DQ/BW/VL with OS support for zmm state;
// AVX512-BF16).
#include "cpu/cpuinfo.h"

#include <atomic>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace structura {

static Simd detect() {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Simd::scalar;
  bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!(fma && osxsave && avx)) return Simd::scalar;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  if ((lo & 0x06) != 0x06) return Simd::scalar;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Simd::scalar;
  bool avx2 = b & (1u << 5);
  bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  if (f && dq && bw && vl && (lo & 0xE6) == 0xE6) return Simd::avx512;
  return avx2 ? Simd::avx2 : Simd::scalar;
#else
  return Simd::scalar;
#endif
}

static Simd env_cap() {
  const char* e = std::getenv("STRUCTURA_SIMD");
  if (!e) return Simd::avx512;
  if (!std::strcmp(e, "scalar")) return Simd::scalar;
  if (!std::strcmp(e, "avx2")) return Simd::avx2;
  // A misspelt cap would run every kernel at a level the user meant to exclude: say so (once: the cap
  // is read once), as an unknown STRUCTURA_CUDA_DISABLE kernel is.
  if (*e && std::strcmp(e, "avx512"))
    std::fprintf(stderr, "structura: STRUCTURA_SIMD='%s' is not scalar, avx2 or avx512 (ignored)\n", e);
  return Simd::avx512;
}

static std::atomic<int> g_cap{-1};

Simd simd_hardware() {
  static Simd hw = detect();
  return hw;
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool has = [] {
    if (simd_hardware() != Simd::avx512) return false;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;  // CPUID.(EAX=7, ECX=1):EAX[5] = AVX512_BF16
  }();
  return has;
#else
  return false;
#endif
}

Simd simd_level() {
  int cap = g_cap.load();
  if (cap < 0) {
    cap = (int)env_cap();
    g_cap.store(cap);
  }
  int hw = (int)simd_hardware();
  return (Simd)(cap < hw ? cap : hw);
}

Simd set_simd_cap(Simd cap) {
  g_cap.store((int)cap);
  return simd_level();
}

const char* simd_name(Simd s) {
  switch (s) {
    case Simd::avx512: return "avx512";
    case Simd::avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace structura
