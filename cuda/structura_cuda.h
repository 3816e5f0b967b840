/* structura_cuda.h — the plain C ABI between the addon (csrc/) and the CUDA kernels (cuda/).
 * Launchers take one params struct and a stream, and return 0 or a CUDA error code; no Node headers
 * here. csrc/cuda_none.cc implements the probe for builds without CUDA. */
#ifndef STRUCTURA_CUDA_H
#define STRUCTURA_CUDA_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- runtime (cuda/runtime.cu) ---------------------------------------------------------------- */
/* 1 if this binary was built with CUDA. */
int structura_cuda_compiled(void);
/* Number of usable devices, or 0 with the driver's error in msg ("cudaErrorNoDevice: ..."). */
int structura_cuda_probe(int* device_count, int* runtime_version, int* driver_version, char* msg, size_t msg_len);
/* Name, compute capability and memory of device idx; 0 on success. */
int structura_cuda_device_props(int idx, char* name, size_t name_len, int* cc_major, int* cc_minor,
                                size_t* total_mem);

/* ---- elementwise (cuda/elementwise.cu) -------------------------------------------------------- */
typedef struct {
  float* out;       /* [n] */
  const float* a;   /* [n] */
  const float* b;   /* [n] */
  int64_t n;
} structura_add_f32_params;
/* out = a + b, contiguous float32; 16-byte loads when all three pointers are 16-byte aligned. */
int structura_add_f32(const structura_add_f32_params* p, void* stream);

/* A self-test used by backend(): runs the add kernel on device 0 on 1000 floats; 0 if it matched. */
int structura_cuda_selftest(char* msg, size_t msg_len);

#ifdef __cplusplus
}
#endif
#endif
