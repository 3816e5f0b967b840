// elementwise_cases.cc — the real cuda/elementwise.cu add_f32 launcher run through the emulator:
// odd sizes, the float4 path (aligned buffers) and the scalar path (offset pointers), every element
// compared with the float64 reference (exact: one f32 add), nothing written past n, no leaked buffers.
#include "harness.h"
#include "structura_cuda.h"

using namespace harness;

static std::string run_add(int64_t n, int offset, int64_t* checked) {
  Rng rng(case_seed() + (uint64_t)n * 31 + (uint64_t)offset);
  const size_t total = (size_t)(n + offset + 1);
  std::vector<float> a(total), b(total);
  for (auto& x : a) x = (float)rng.uniform(-10, 10);
  for (auto& x : b) x = (float)rng.uniform(-10, 10);
  DevBuf<float> da(total), db(total), dout(total);
  da.upload(a);
  db.upload(b);
  std::vector<float> sentinel(total, -12345.f);
  dout.upload(sentinel);
  structura_add_f32_params p{dout.p + offset, da.p + offset, db.p + offset, n};
  const int rc = STRUCTURA_CUDA_FN(add_f32)(&p, nullptr);
  if (rc) {
    char msg[2048];
    structura_emu_last_error(msg, sizeof msg);
    return fmt("n=%g offset=%g: launcher returned %g: ", (double)n, offset, rc) + msg;
  }
  const std::vector<float> out = dout.download();
  for (int64_t i = 0; i < (int64_t)total; i++) {
    const bool inside = i >= offset && i < offset + n;
    const double ref = inside ? (double)a[i] + (double)b[i] : -12345.0;
    const float want = (float)ref;
    if (out[i] != want)
      return fmt("n=%g offset=%g: element %g is %.9g, expected %.9g", (double)n, offset, (double)(i - offset), out[i]) +
             fmt(" (%.9g)", want);
  }
  *checked += n;
  return "";
}

EMU_CASE(elementwise_add_f32_odd_sizes) {
  const size_t live = structura_emu_live_allocations();
  int64_t checked = 0;
  for (int64_t n : {1, 3, 4, 17, 129, 1000, 4099, 70001})
    for (int offset : {0, 1}) {  // 0: float4 kernel (256-byte aligned buffers); 1: scalar kernel
      std::string r = run_add(n, offset, &checked);
      if (!r.empty()) return r;
    }
  if (structura_emu_live_allocations() != live) return "device buffers leaked";
  set_detail(fmt("%g elements checked on both kernels", (double)checked));
  return "";
}

EMU_CASE(elementwise_selftest) {
  char msg[512];
  if (STRUCTURA_CUDA_FN(cuda_selftest)(msg, sizeof msg) != 0) return std::string("selftest failed: ") + msg;
  return "";
}

EMU_CASE(runtime_bounds_checks) {
  // the runtime API checks device ranges too: a copy past an allocation's end is refused
  DevBuf<float> d(10);
  std::vector<float> h(11, 1.f);
  if (cudaMemcpy(d.p, h.data(), 11 * sizeof(float), cudaMemcpyHostToDevice) != cudaErrorInvalidValue)
    return "cudaMemcpy of 44 bytes into a 40-byte allocation was not refused";
  if (cudaMemset(d.p + 5, 0, 6 * sizeof(float)) != cudaErrorInvalidValue) return "cudaMemset past the end was not refused";
  if (cudaFree(h.data()) != cudaErrorInvalidValue) return "cudaFree of a host pointer was not refused";
  cudaGetLastError();
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess || prop.major != 9 || prop.warpSize != 32)
    return "device properties";
  return "";
}
