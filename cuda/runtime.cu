// runtime.cu — device discovery for backend() (how many GPUs, their names, and why there are none)
// and the device-memory C ABI the addon's caching allocator (csrc/device.cc) sits on: malloc/free,
// stream-ordered memset and h2d/d2h/d2d copies (large host copies through pinned staging buffers),
// stream synchronize, and error reports.
// cudart is linked statically and dlopens libcuda.so.1, so a machine without the driver lands here
// with cudaErrorInsufficientDriver / cudaErrorNoDevice and the CPU backend carries on.
// The same file builds the emulated device (STRUCTURA_CUDA_EMU: names structura_emu_*, see
// structura_cuda.h), where every call is on host memory and a failed launch carries the emulator's report.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "structura_cuda.h"
#ifdef STRUCTURA_CUDA_EMU
#include "structura_emu.h"
#endif

namespace {
// A failed call leaves its code as the "last error" (and, in emulation, queued for the next
// synchronize); the caller has the code already, so drop both to report each failure once.
void clear_error() {
  cudaGetLastError();
#ifdef STRUCTURA_CUDA_EMU
  cudaDeviceSynchronize();
#endif
}
int result(cudaError_t e) {
  if (e != cudaSuccess) clear_error();
  return (int)e;
}
}  // namespace

extern "C" int STRUCTURA_CUDA_FN(cuda_compiled)(void) { return 1; }

extern "C" int STRUCTURA_CUDA_FN(cuda_probe)(int* device_count, int* runtime_version, int* driver_version,
                                             char* msg, size_t msg_len) {
  *device_count = 0;
  *runtime_version = 0;
  *driver_version = 0;
  cudaRuntimeGetVersion(runtime_version);
  cudaDriverGetVersion(driver_version);
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    // What to do, where the runtime's own words do not say it: no driver at all reads as "insufficient".
    if (e == cudaErrorInsufficientDriver && *driver_version == 0)
      std::snprintf(msg, msg_len, "no NVIDIA driver found (libcuda cannot be loaded): install the NVIDIA driver to use a GPU");
    else if (e == cudaErrorInsufficientDriver)
      std::snprintf(msg, msg_len, "the NVIDIA driver supports CUDA %d.%d but this binary's runtime is %d.%d: update the driver",
                    *driver_version / 1000, *driver_version % 1000 / 10, *runtime_version / 1000, *runtime_version % 1000 / 10);
    else
      std::snprintf(msg, msg_len, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    cudaGetLastError();  // clear the sticky-free error so later probes start clean
    return 0;
  }
  *device_count = n;
  if (n == 0) std::snprintf(msg, msg_len, "no CUDA device found");
  else if (msg_len) msg[0] = 0;
  return 0;
}

extern "C" int STRUCTURA_CUDA_FN(cuda_device_props)(int idx, char* name, size_t name_len, int* cc_major,
                                                    int* cc_minor, size_t* total_mem) {
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, idx);
  if (e != cudaSuccess) return result(e);
  std::snprintf(name, name_len, "%s", p.name);
  *cc_major = p.major;
  *cc_minor = p.minor;
  *total_mem = p.totalGlobalMem;
  return 0;
}

// ---- the current device, and programmatic dependent launch -----------------------------------------
// Compute capability and SM count of each device, read once (cudaGetDeviceProperties is slow, and
// launch_pdl and cuda/dense.cu's kernel choice ask at every launch), packed into one atomic int:
// bit 31 set once read, major in bits 20–27, minor 16–19, SMs 0–15.
namespace {
std::atomic<int> g_device_info[64];
std::atomic<int> g_pdl_on{1};
}  // namespace

extern "C" int STRUCTURA_CUDA_FN(cuda_current_device)(int* cc_major, int* cc_minor, int* sms) {
  *cc_major = *cc_minor = *sms = 0;
  int d = 0;
  if (cudaError_t e = cudaGetDevice(&d)) return result(e);
  if (d < 0 || d >= 64) return (int)cudaErrorInvalidDevice;
  int v = g_device_info[d].load(std::memory_order_relaxed);
  if (v == 0) {
    cudaDeviceProp p;
    if (cudaError_t e = cudaGetDeviceProperties(&p, d)) return result(e);
    v = (int)(0x80000000u | ((unsigned)(p.major & 0xff) << 20) | ((unsigned)(p.minor & 0xf) << 16) |
              (unsigned)(p.multiProcessorCount & 0xffff));
    g_device_info[d].store(v, std::memory_order_relaxed);
  }
  *cc_major = (v >> 20) & 0xff, *cc_minor = (v >> 16) & 0xf, *sms = v & 0xffff;
  return 0;
}

// ---- kernels switched off by STRUCTURA_CUDA_DISABLE (structura_cuda.h) ------------------------------
namespace {
const char* const kSwitchNames[STRUCTURA_SW_COUNT] = {"wgmma",         "wgmma-tma",  "lora-decode",
                                                      "decode-splitk", "decode-stream", "decode-f32",
                                                      "decode-nmajor", "decode-nmajor-f32", "pdl"};
// The mask, parsed on first use: names separated by commas or spaces; unknown ones reported once per
// process. Both copies of this file (nvcc's and the emulator's) parse the variable; the report's flag
// is a weak symbol, which the linker makes one for both (they printed it twice).
}  // namespace
extern "C" {
__attribute__((weak)) int structura_cuda_disable_reported = 0;
}
namespace {
int disabled_mask() {
  static const int mask = [] {
    const char* env = std::getenv("STRUCTURA_CUDA_DISABLE");
    int m = 0;
    std::string unknown;
    for (const char* s = env ? env : ""; *s;) {
      while (*s == ',' || *s == ' ') s++;
      const char* e = s;
      while (*e && *e != ',' && *e != ' ') e++;
      if (e == s) break;
      const std::string name(s, e);
      int i = 0;
      while (i < STRUCTURA_SW_COUNT && name != kSwitchNames[i]) i++;
      if (i < STRUCTURA_SW_COUNT) m |= 1 << i;
      else unknown += std::string(unknown.empty() ? "'" : ", '") + name + "'";
      s = e;
    }
    if (!unknown.empty() && __atomic_exchange_n(&structura_cuda_disable_reported, 1, __ATOMIC_RELAXED) == 0) {
      std::string known;
      for (const char* k : kSwitchNames) known += std::string(known.empty() ? "" : ", ") + k;
      std::fprintf(stderr, "structura: STRUCTURA_CUDA_DISABLE: unknown kernel %s (ignored; known: %s)\n", unknown.c_str(),
                   known.c_str());
    }
    return m;
  }();
  return mask;
}
}  // namespace

extern "C" int STRUCTURA_CUDA_FN(cuda_disabled)(int sw) {
  return sw >= 0 && sw < STRUCTURA_SW_COUNT && (disabled_mask() >> sw & 1) ? 1 : 0;
}

extern "C" const char* STRUCTURA_CUDA_FN(cuda_switch_name)(int sw) {
  return sw >= 0 && sw < STRUCTURA_SW_COUNT ? kSwitchNames[sw] : nullptr;
}

// launch_pdl (cuda/launch.cuh) lets a kernel start while the one before it in the stream finishes
// (griddepcontrol, sm_90+); never while STRUCTURA_CUDA_DISABLE names pdl.
extern "C" int STRUCTURA_CUDA_FN(cuda_set_pdl)(int on) { return g_pdl_on.exchange(on ? 1 : 0); }

extern "C" int STRUCTURA_CUDA_FN(cuda_pdl_active)(void) {
  if (!g_pdl_on || STRUCTURA_CUDA_FN(cuda_disabled)(STRUCTURA_SW_PDL)) return 0;
  int major = 0, minor = 0, sms = 0;
  return STRUCTURA_CUDA_FN(cuda_current_device)(&major, &minor, &sms) == 0 && major >= 9;
}

// ---- device memory ---------------------------------------------------------------------------------

extern "C" int STRUCTURA_CUDA_FN(cuda_set_device)(int device) { return result(cudaSetDevice(device)); }

extern "C" int STRUCTURA_CUDA_FN(cuda_malloc)(int device, void** p, size_t bytes) {
  *p = nullptr;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMalloc(p, bytes);
  return result(e);
}

extern "C" int STRUCTURA_CUDA_FN(cuda_free)(int device, void* p) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaFree(p);
  return result(e);
}

extern "C" int STRUCTURA_CUDA_FN(cuda_memset)(int device, void* p, int value, size_t bytes, void* stream) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemsetAsync(p, value, bytes, (cudaStream_t)stream);
  return result(e);
}

static int copy(int device, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, void* stream) {
  if (!bytes) return 0;
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemcpyAsync(dst, src, bytes, kind, (cudaStream_t)stream);
  return result(e);
}

// ---- pinned staging of large host copies ----------------------------------------------------------
// The copy engine reads and writes only pinned host memory; from pageable memory the driver stages
// through small buffers of its own. Copies of at least g_stage_min bytes go through two pinned
// buffers of kStageChunk bytes per device instead, so that the host memcpy into (or out of) one
// overlaps the DMA of the other, and the memcpy runs on the addon's threads. An event per buffer says
// when its DMA is done. The buffers are made on first use; if that fails the copy takes the driver's path.
namespace {
constexpr size_t kStageChunk = size_t(8) << 20;
// The host side of a staged copy: the addon passes a memcpy that splits the chunk over its thread
// pool (one thread's memcpy, ~10 GB/s, would be slower than PCIe; the driver's own staging is one thread).
structura_host_memcpy_fn g_memcpy = nullptr;
void host_memcpy(void* dst, const void* src, size_t n) {
  if (g_memcpy) g_memcpy(dst, src, n);
  else std::memcpy(dst, src, n);
}
constexpr int kMaxStagedDevices = 64;
size_t g_stage_min = size_t(32) << 20;
std::mutex g_stage_mu;  // one staged copy at a time (the buffers are shared); guards g_stage_min too
struct Staging {
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  bool failed = false;
} g_stage[kMaxStagedDevices];

// The device's staging buffers (device current), or nullptr.
Staging* staging(int device) {
  if (device < 0 || device >= kMaxStagedDevices) return nullptr;
  Staging& st = g_stage[device];
  if (st.failed) return nullptr;
  if (st.buf[0]) return &st;
  for (int i = 0; i < 2; i++) {
    if (cudaMallocHost(&st.buf[i], kStageChunk) != cudaSuccess ||
        cudaEventCreateWithFlags(&st.done[i], cudaEventDisableTiming) != cudaSuccess) {
      cudaGetLastError();
      st.failed = true;
      return nullptr;
    }
  }
  return &st;
}

// Host → device through the pinned buffers. Returns when every source byte is in a pinned buffer
// (the caller may free the source), the last DMA possibly still running.
cudaError_t staged_h2d(Staging& st, char* dst, const char* src, size_t bytes, cudaStream_t s) {
  for (size_t off = 0, k = 0; off < bytes; off += kStageChunk, k++) {
    const int i = (int)(k & 1);
    const size_t n = bytes - off < kStageChunk ? bytes - off : kStageChunk;
    if (cudaError_t e = cudaEventSynchronize(st.done[i])) return e;  // its previous DMA has read it
    host_memcpy(st.buf[i], src + off, n);
    if (cudaError_t e = cudaMemcpyAsync(dst + off, st.buf[i], n, cudaMemcpyHostToDevice, s)) return e;
    if (cudaError_t e = cudaEventRecord(st.done[i], s)) return e;
  }
  return cudaSuccess;
}

// Device → host through the pinned buffers: chunk k+1's DMA runs while chunk k is copied out.
// Returns with every byte in dst (stream order: after the work queued before it).
cudaError_t staged_d2h(Staging& st, char* dst, const char* src, size_t bytes, cudaStream_t s) {
  const size_t chunks = (bytes + kStageChunk - 1) / kStageChunk;
  auto issue = [&](size_t k) -> cudaError_t {
    const int i = (int)(k & 1);
    const size_t off = k * kStageChunk, n = bytes - off < kStageChunk ? bytes - off : kStageChunk;
    if (cudaError_t e = cudaMemcpyAsync(st.buf[i], src + off, n, cudaMemcpyDeviceToHost, s)) return e;
    return cudaEventRecord(st.done[i], s);
  };
  if (cudaError_t e = issue(0)) return e;
  for (size_t k = 0; k < chunks; k++) {
    if (k + 1 < chunks)
      if (cudaError_t e = issue(k + 1)) return e;  // its buffer was copied out in step k − 1
    const int i = (int)(k & 1);
    const size_t off = k * kStageChunk, n = bytes - off < kStageChunk ? bytes - off : kStageChunk;
    if (cudaError_t e = cudaEventSynchronize(st.done[i])) return e;
    host_memcpy(dst + off, st.buf[i], n);
  }
  return cudaSuccess;
}

int host_copy(int device, void* dst, const void* src, size_t bytes, bool to_device, void* stream) {
  if (!bytes) return 0;
  {
    std::lock_guard<std::mutex> lock(g_stage_mu);
    if (g_stage_min && bytes >= g_stage_min) {
      cudaError_t e = cudaSetDevice(device);
      if (e != cudaSuccess) return result(e);
      if (Staging* st = staging(device)) {
        e = to_device ? staged_h2d(*st, (char*)dst, (const char*)src, bytes, (cudaStream_t)stream)
                      : staged_d2h(*st, (char*)dst, (const char*)src, bytes, (cudaStream_t)stream);
        return result(e);
      }
    }
  }
  return copy(device, dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, stream);
}
}  // namespace

extern "C" void STRUCTURA_CUDA_FN(cuda_set_host_memcpy)(structura_host_memcpy_fn fn) {
  std::lock_guard<std::mutex> lock(g_stage_mu);
  g_memcpy = fn;
}

extern "C" size_t STRUCTURA_CUDA_FN(cuda_set_staging)(size_t min_bytes) {
  std::lock_guard<std::mutex> lock(g_stage_mu);
  const size_t old = g_stage_min;
  g_stage_min = min_bytes;
  return old;
}

// From pageable host memory, cudaMemcpyAsync returns once the source has been staged, so the caller
// may free or change it right away; the same holds for our own staging.
extern "C" int STRUCTURA_CUDA_FN(cuda_memcpy_h2d)(int device, void* dst, const void* src, size_t bytes, void* stream) {
  return host_copy(device, dst, src, bytes, true, stream);
}
// The caller synchronizes the stream before reading dst (the staged path has already waited).
extern "C" int STRUCTURA_CUDA_FN(cuda_memcpy_d2h)(int device, void* dst, const void* src, size_t bytes, void* stream) {
  return host_copy(device, dst, src, bytes, false, stream);
}
extern "C" int STRUCTURA_CUDA_FN(cuda_memcpy_d2d)(int device, void* dst, const void* src, size_t bytes, void* stream) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}

extern "C" int STRUCTURA_CUDA_FN(cuda_stream_synchronize)(int device, void* stream) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaStreamSynchronize((cudaStream_t)stream);
  return result(e);
}

extern "C" int STRUCTURA_CUDA_FN(cuda_mem_info)(int device, size_t* free_bytes, size_t* total_bytes) {
  cudaError_t e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaMemGetInfo(free_bytes, total_bytes);
  return result(e);
}

extern "C" void STRUCTURA_CUDA_FN(cuda_describe_error)(int code, char* msg, size_t msg_len) {
  if (!msg_len) return;
  const cudaError_t e = (cudaError_t)code;
  int n = std::snprintf(msg, msg_len, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
#ifdef STRUCTURA_CUDA_EMU
  // The emulator's report of the failed launch (or copy), if the error came from one.
  char detail[1024];
  if (structura_emu_last_error(detail, sizeof detail) != 0 && n >= 0 && (size_t)n < msg_len)
    std::snprintf(msg + n, msg_len - n, " (%s)", detail);
#else
  (void)n;
#endif
  clear_error();
}

extern "C" int STRUCTURA_CUDA_FN(cuda_last_error)(char* msg, size_t msg_len) {
  const cudaError_t e = cudaPeekAtLastError();
  if (e == cudaSuccess) {
    if (msg_len) msg[0] = 0;
    return 0;
  }
  STRUCTURA_CUDA_FN(cuda_describe_error)((int)e, msg, msg_len);
  return (int)e;
}
