// runtime.cu — device discovery for backend(): how many GPUs, their names, and why there are none.
// cudart is linked statically and dlopens libcuda.so.1, so a machine without the driver lands here
// with cudaErrorInsufficientDriver / cudaErrorNoDevice and the CPU backend carries on.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "structura_cuda.h"

extern "C" int structura_cuda_compiled(void) { return 1; }

extern "C" int structura_cuda_probe(int* device_count, int* runtime_version, int* driver_version, char* msg,
                                    size_t msg_len) {
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

extern "C" int structura_cuda_device_props(int idx, char* name, size_t name_len, int* cc_major, int* cc_minor,
                                           size_t* total_mem) {
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, idx);
  if (e != cudaSuccess) return (int)e;
  std::snprintf(name, name_len, "%s", p.name);
  *cc_major = p.major;
  *cc_minor = p.minor;
  *total_mem = p.totalGlobalMem;
  return 0;
}
