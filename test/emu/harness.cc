// harness.cc — main() of the emulator test binary (see harness.h for the output format).
#include "harness.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace harness {
namespace {
struct Case {
  const char* name;
  CaseFn fn;
};
std::vector<Case>& cases() {
  static std::vector<Case> v;
  return v;
}
uint64_t g_seed = 0, g_case_seed = 0;
std::string g_detail;
}  // namespace

void add_case(const char* name, CaseFn fn) { cases().push_back({name, fn}); }
uint64_t case_seed() { return g_case_seed; }
void set_detail(const std::string& d) { g_detail = d; }

std::string expect_error(cudaError_t got, const char* kind, std::string* detail) {
  char msg[2048];
  const int k = structura_emu_last_error(msg, sizeof msg);
  if (detail) *detail = msg;
  if (got == cudaSuccess) return std::string("expected a '") + kind + "' error, but the launch succeeded";
  if (std::strcmp(structura_emu_error_kind_name(k), kind) != 0)
    return std::string("expected a '") + kind + "' error, got '" + structura_emu_error_kind_name(k) + "': " + msg;
  return "";
}
}  // namespace harness

int main(int argc, char** argv) {
  using namespace harness;
  const char* env = std::getenv("STRUCTURA_TEST_SEED");
  g_seed = env ? std::strtoull(env, nullptr, 10)
               : (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count() % 2147483647ull;
  int passed = 0, failed = 0;
  for (const Case& c : cases()) {
    bool selected = argc < 2;
    for (int i = 1; i < argc; i++) selected |= std::strstr(c.name, argv[i]) != nullptr;
    if (!selected) continue;
    uint64_t h = g_seed ^ 0x9e3779b97f4a7c15ull;
    for (const char* p = c.name; *p; p++) h = (h ^ (uint64_t)*p) * 0x100000001b3ull;
    g_case_seed = h;
    g_detail.clear();
    const auto t0 = std::chrono::steady_clock::now();
    std::string why;
    try {
      why = c.fn();
    } catch (const std::exception& e) {
      why = std::string("threw: ") + e.what();
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    cudaGetLastError();
    cudaDeviceSynchronize();
    if (why.empty()) {
      passed++;
      std::printf("PASS %s | %.0f ms | %s\n", c.name, ms, g_detail.c_str());
    } else {
      failed++;
      std::printf("FAIL %s | seed %llu | %s\n", c.name, (unsigned long long)g_seed, why.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("SUMMARY %d passed %d failed seed %llu\n", passed, failed, (unsigned long long)g_seed);
  return failed ? 1 : 0;
}
