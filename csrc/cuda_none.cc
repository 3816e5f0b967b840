// cuda_none.cc — the CUDA probe of a CPU-only build (STRUCTURA_CUDA=OFF, or no nvcc at build time).
#include <cstdio>

#include "structura_cuda.h"

extern "C" {
int structura_cuda_compiled(void) { return 0; }
int structura_cuda_probe(int* device_count, int* runtime_version, int* driver_version, char* msg, size_t msg_len) {
  *device_count = 0;
  *runtime_version = 0;
  *driver_version = 0;
  std::snprintf(msg, msg_len, "this binary was built without CUDA (no nvcc at build time, or STRUCTURA_CUDA=OFF)");
  return 0;
}
int structura_cuda_device_props(int, char* name, size_t name_len, int* cc_major, int* cc_minor, size_t* total_mem) {
  if (name_len) name[0] = 0;
  *cc_major = *cc_minor = 0;
  *total_mem = 0;
  return 1;
}
int structura_add_f32(const structura_add_f32_params*, void*) { return 1; }
int structura_cuda_selftest(char* msg, size_t msg_len) {
  std::snprintf(msg, msg_len, "built without CUDA");
  return 1;
}
}
