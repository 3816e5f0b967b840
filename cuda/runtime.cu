// runtime.cu — device discovery for backend() (how many GPUs, their names, and why there are none)
// and the device-memory C ABI the addon's caching allocator (csrc/device.cc) sits on: malloc/free,
// stream-ordered memset and h2d/d2h/d2d copies, stream synchronize, and error reports.
// cudart is linked statically and dlopens libcuda.so.1, so a machine without the driver lands here
// with cudaErrorInsufficientDriver / cudaErrorNoDevice and the CPU backend carries on.
// The same file builds the emulated device (STRUCTURA_CUDA_EMU: names structura_emu_*, see
// structura_cuda.h), where every call is on host memory and a failed launch carries the emulator's report.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

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
// From pageable host memory, cudaMemcpyAsync returns once the source has been staged, so the caller
// may free or change it right away.
extern "C" int STRUCTURA_CUDA_FN(cuda_memcpy_h2d)(int device, void* dst, const void* src, size_t bytes, void* stream) {
  return copy(device, dst, src, bytes, cudaMemcpyHostToDevice, stream);
}
extern "C" int STRUCTURA_CUDA_FN(cuda_memcpy_d2h)(int device, void* dst, const void* src, size_t bytes, void* stream) {
  return copy(device, dst, src, bytes, cudaMemcpyDeviceToHost, stream);
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
