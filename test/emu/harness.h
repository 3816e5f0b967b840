// harness.h — a tiny runner for the emulator tests: EMU_CASE(name) registers a case that returns ""
// when it passed, else the reason. main() (harness.cc) runs them all, or those whose names contain one
// of its arguments, and prints one line per case:
//   PASS <name> | <detail>        FAIL <name> | <reason>
// then `SUMMARY <passed> passed <failed> failed seed <seed>`. Inputs are seeded from
// STRUCTURA_TEST_SEED (else the clock) mixed with the case name; every FAIL line repeats the seed.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "structura_emu.h"

namespace harness {
using CaseFn = std::string (*)();
void add_case(const char* name, CaseFn fn);
struct Registrar {
  Registrar(const char* name, CaseFn fn) { add_case(name, fn); }
};
uint64_t case_seed();  // seed of the running case

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * (double)(next() >> 11) * 0x1.0p-53; }
  int below(int n) { return (int)(next() % (uint64_t)n); }
};

// A device buffer of n T (cudaMalloc'd; freed on scope exit).
template <class T>
struct DevBuf {
  T* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) {
    if (cudaMalloc(&p, count * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void upload(const std::vector<T>& v) { cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> v(n);
    cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
};

inline std::string fmt(const char* f, double a = 0, double b = 0, double c = 0, double d = 0) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, a, b, c, d);
  return buf;
}

// For planted bugs: "" if the last launch failed with error kind `kind` (its name, e.g. "shared-race"),
// else the reason. `detail` receives the emulator's message.
std::string expect_error(cudaError_t got, const char* kind, std::string* detail);
// The detail printed after PASS (set by a case).
void set_detail(const std::string& d);
}  // namespace harness

#define EMU_CASE(name)                                                 \
  static std::string emu_case_##name();                                \
  static harness::Registrar emu_reg_##name(#name, emu_case_##name);    \
  static std::string emu_case_##name()
