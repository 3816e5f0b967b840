// profile_cases.cu — the emulator's memory-access profile (cuda/emu/profile.h) on access patterns
// whose cost is known from the hardware's rules: shared-memory wavefronts (32 banks of 4 bytes; 8-byte
// accesses in half-warps, 16-byte ones and ldmatrix rows in quarter-warps; a word read by several
// lanes is one access) and global 32-byte sectors. Each case launches one pattern with the profile
// on and requires the exact counts.
#include <cuda_runtime.h>

#include <cstring>

#include "harness.h"
#include "launch.cuh"
#include "ptx.cuh"

using namespace harness;

namespace {

std::string last_msg() {
  char msg[2048];
  structura_emu_last_error(msg, sizeof msg);
  return msg;
}

struct Counts {
  unsigned long long requests = 0, actual = 0, ideal = 0, bytes = 0;
};
struct Profile {
  bool found = false;
  Counts sld, sst, gld, gst;
};

// The counts of `key` ("loads" / "stores") after position `from` in the report.
Counts counts_after(const std::string& json, size_t from, const char* key) {
  Counts c;
  const size_t at = json.find(std::string("\"") + key + "\":{", from);
  if (at != std::string::npos)
    std::sscanf(json.c_str() + at + std::strlen(key) + 4, "\"requests\":%llu,\"actual\":%llu,\"ideal\":%llu,\"bytes\":%llu",
                &c.requests, &c.actual, &c.ideal, &c.bytes);
  return c;
}

// The profile of the kernel named `name` in the report of the launches since profile_start.
Profile profile_of(const char* name) {
  std::string json(structura_emu_profile_report(nullptr, 0), '\0');
  structura_emu_profile_report(&json[0], json.size());
  Profile p;
  const size_t k = json.find(std::string("{\"name\":\"") + name + "\"");
  if (k == std::string::npos) return p;
  p.found = true;
  const size_t sh = json.find("\"shared\":", k), gl = json.find("\"global\":", k);
  p.sld = counts_after(json, sh, "loads");
  p.sst = counts_after(json, sh, "stores");
  p.gld = counts_after(json, gl, "loads");
  p.gst = counts_after(json, gl, "stores");
  return p;
}

std::string expect(const char* what, const Counts& c, unsigned long long requests, unsigned long long actual,
                   unsigned long long ideal) {
  if (c.requests == requests && c.actual == actual && c.ideal == ideal) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %llu requests, %llu actual, %llu ideal; expected %llu, %llu, %llu", what, c.requests,
                c.actual, c.ideal, requests, actual, ideal);
  return buf;
}

// Shared memory: one warp, one barrier interval each pattern.
//   mode 0: word lane            (1 wavefront)     mode 1: word 32·lane      (32: one bank)
//   mode 2: word 2·lane          (2)               mode 3: word 0            (1: a broadcast)
//   mode 4: float4 at 4·lane     (4 = ideal)       mode 5: float4 at 8·lane  (8: two lanes a bank quad)
//   mode 6: column of [32][33]   (1)               mode 7: lanes < 16 word lane (1); lanes 16…31, at
//                                                          another site, float2 at word 64·(lane − 16):
//                                                          16 (one half-warp on banks 0–1): two requests
__global__ void smem_pattern_kernel(float* out_raw, int mode) {
  SMEM(float, s, [32 * 33 * 4]);
  const dev_ptr<float> out = gptr(out_raw);
  const int l = threadIdx.x;
  for (int i = l; i < 32 * 33 * 4; i += 32) s[i] = (float)i;  // 4-byte stores, lanes consecutive: ideal
  __syncthreads();
  float v = 0.f;
  switch (mode) {
    case 0: v = s[l]; break;
    case 1: v = s[32 * l]; break;
    case 2: v = s[2 * l]; break;
    case 3: v = s[0]; break;
    case 4: { const float4 q = dev_cast<float4>(s + 4 * l)[0]; v = q.x + q.w; break; }
    case 5: { const float4 q = dev_cast<float4>(s + 8 * l)[0]; v = q.x + q.w; break; }
    case 6: v = s[33 * l + 5]; break;
    default:
      if (l < 16) v = s[l];
      else { const float2 q = dev_cast<float2>(s + 64 * (l - 16))[0]; v = q.y; }
  }
  out[l] = v;
}

// Global memory: one warp, 4-byte loads. mode 0: a[lane] (4 sectors); mode 1: a[8·lane] (32 sectors,
// ideal 4); mode 2: a[lane + 1] (5 sectors: one past the 128-byte run); mode 3: a[0] (1).
__global__ void gmem_pattern_kernel(const float* a_raw, float* out_raw, int mode) {
  const dev_ptr<const float> a = gptr(a_raw);
  const dev_ptr<float> out = gptr(out_raw);
  const int l = threadIdx.x;
  const int i = mode == 0 ? l : mode == 1 ? 8 * l : mode == 2 ? l + 1 : 0;
  const float v = a[i];
  out[l] = v;
}

// ldmatrix.x4 of four 8×8 b16 matrices: pitch 8 halves a row (16 bytes, every row its own bank quad:
// 4 wavefronts = ideal) or pitch 64 halves (128 bytes: the 8 rows of a matrix on one bank quad: 8 each).
__global__ void ldmatrix_pattern_kernel(float* out_raw, int pitch) {
  SMEM(uint16_t, s, [32 * 64]);
  const dev_ptr<float> out = gptr(out_raw);
  const int l = threadIdx.x;
  for (int i = l; i < 32 * 64; i += 32) s[i] = (uint16_t)i;
  __syncthreads();
  uint32_t r[4];
  ptx::ldmatrix_x4(r, &s[l * pitch]);
  out[l] = (float)(r[0] + r[1] + r[2] + r[3]);
}

std::string run_smem(int mode, Counts* loads, Counts* stores) {
  DevBuf<float> out(32);
  structura_emu_profile_start();
  const cudaError_t e = structura::launch<smem_pattern_kernel>(1, 32, 0, nullptr, out.p, mode);
  const Profile p = profile_of("smem_pattern_kernel");
  structura_emu_profile_stop();
  if (e != cudaSuccess) return "launch failed: " + last_msg();
  if (!p.found) return "the kernel is not in the profile report";
  *loads = p.sld;
  *stores = p.sst;
  return "";
}

}  // namespace

EMU_CASE(profile_shared_bank_conflicts) {
  // mode → (requests, wavefronts, ideal) of the pattern's loads
  const unsigned long long want[8][3] = {{1, 1, 1}, {1, 32, 1}, {1, 2, 1}, {1, 1, 1}, {1, 4, 4}, {1, 8, 4}, {1, 1, 1}, {2, 17, 2}};
  for (int mode = 0; mode < 8; mode++) {
    Counts ld, st;
    std::string r = run_smem(mode, &ld, &st);
    if (!r.empty()) return fmt("mode %g: ", mode) + r;
    r = expect("loads", ld, want[mode][0], want[mode][1], want[mode][2]);
    if (!r.empty()) return fmt("mode %g: ", mode) + r;
    // the fill: 132 lane-consecutive 4-byte stores of 32 lanes, one wavefront each
    r = expect("fill stores", st, 132, 132, 132);
    if (!r.empty()) return fmt("mode %g: ", mode) + r;
  }
  return "";
}

EMU_CASE(profile_global_sectors) {
  const unsigned long long want[4][3] = {{1, 4, 4}, {1, 32, 4}, {1, 5, 4}, {1, 1, 1}};
  DevBuf<float> a(512), out(32);
  a.upload(std::vector<float>(512, 1.f));
  for (int mode = 0; mode < 4; mode++) {
    structura_emu_profile_start();
    const cudaError_t e = structura::launch<gmem_pattern_kernel>(1, 32, 0, nullptr, (const float*)a.p, out.p, mode);
    const Profile p = profile_of("gmem_pattern_kernel");
    structura_emu_profile_stop();
    if (e != cudaSuccess) return "launch failed: " + last_msg();
    std::string r = expect("loads", p.gld, want[mode][0], want[mode][1], want[mode][2]);
    if (!r.empty()) return fmt("mode %g: ", mode) + r;
    r = expect("stores", p.gst, 1, 4, 4);
    if (!r.empty()) return fmt("mode %g: ", mode) + r;
  }
  return "";
}

EMU_CASE(profile_ldmatrix_rows) {
  const int pitches[2] = {8, 64};
  const unsigned long long waves[2] = {4, 32};
  DevBuf<float> out(32);
  for (int i = 0; i < 2; i++) {
    structura_emu_profile_start();
    const cudaError_t e = structura::launch<ldmatrix_pattern_kernel>(1, 32, 0, nullptr, out.p, pitches[i]);
    const Profile p = profile_of("ldmatrix_pattern_kernel");
    structura_emu_profile_stop();
    if (e != cudaSuccess) return "launch failed: " + last_msg();
    const std::string r = expect("ldmatrix", p.sld, 1, waves[i], 4);
    if (!r.empty()) return fmt("pitch %g: ", pitches[i]) + r;
  }
  return "";
}

EMU_CASE(profile_off_records_nothing) {
  DevBuf<float> out(32);
  structura_emu_profile_start();
  structura_emu_profile_stop();
  if (structura::launch<smem_pattern_kernel>(1, 32, 0, nullptr, out.p, 1) != cudaSuccess) return "launch failed: " + last_msg();
  if (profile_of("smem_pattern_kernel").found) return "a launch after profile_stop was recorded";
  return "";
}
