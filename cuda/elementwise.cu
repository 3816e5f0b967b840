// elementwise.cu — elementwise kernels on the GPU.
//   add_f32: out[i] = a[i] + b[i], contiguous float32, n elements.
// Versions: 1 (this one) — grid-stride loop, float4 (16-byte) loads when all pointers are aligned,
// scalar tail. The broadcasting kernels of the CUDA issue will join it here.
// Memory goes through gptr()/dev_cast() and launches through structura::launch (cuda/launch.cuh), so
// the same source runs checked under the CPU emulation (cuda/emu/).
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include "launch.cuh"
#include "structura_cuda.h"

// ------------------------------------------------------------------------------------------------
// kernels (internal linkage: the nvcc and the emulated build of this file share one binary)

namespace {

__global__ void add_f32_vec4_kernel(structura_add_f32_params p) {
  const int64_t n4 = p.n / 4;
  const dev_ptr<const float4> a = dev_cast<const float4>(gptr(p.a));
  const dev_ptr<const float4> b = dev_cast<const float4>(gptr(p.b));
  const dev_ptr<float4> out = dev_cast<float4>(gptr(p.out));
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
    float4 x = a[i], y = b[i];
    out[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
  }
  // the tail (n % 4 elements) is done by the first threads of block 0
  if (blockIdx.x == 0 && threadIdx.x < p.n - n4 * 4) {
    int64_t i = n4 * 4 + threadIdx.x;
    gptr(p.out)[i] = gptr(p.a)[i] + gptr(p.b)[i];
  }
}

__global__ void add_f32_kernel(structura_add_f32_params p) {
  const dev_ptr<const float> a = gptr(p.a), b = gptr(p.b);
  const dev_ptr<float> out = gptr(p.out);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i];
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// launchers

extern "C" int STRUCTURA_CUDA_FN(add_f32)(const structura_add_f32_params* p, void* stream) {
  if (p->n <= 0) return 0;
  const int threads = 256;
  const bool aligned = ((reinterpret_cast<uintptr_t>(p->a) | reinterpret_cast<uintptr_t>(p->b) |
                         reinterpret_cast<uintptr_t>(p->out)) & 15) == 0;
  const int64_t work = aligned ? (p->n + 3) / 4 : p->n;
  int blocks = (int)((work + threads - 1) / threads);
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  if (aligned) return (int)structura::launch<add_f32_vec4_kernel>(blocks, threads, 0, (cudaStream_t)stream, *p);
  return (int)structura::launch<add_f32_kernel>(blocks, threads, 0, (cudaStream_t)stream, *p);
}

extern "C" int STRUCTURA_CUDA_FN(cuda_selftest)(char* msg, size_t msg_len) {
  const int n = 1001;
  std::vector<float> a(n), b(n), out(n, -1.f);
  for (int i = 0; i < n; i++) {
    a[i] = (float)i;
    b[i] = 0.5f * (float)(n - i);
  }
  float *da = nullptr, *db = nullptr, *dout = nullptr;
  cudaError_t e = cudaMalloc(&da, n * 4);
  if (e == cudaSuccess) e = cudaMalloc(&db, n * 4);
  if (e == cudaSuccess) e = cudaMalloc(&dout, n * 4);
  if (e == cudaSuccess) e = cudaMemcpy(da, a.data(), n * 4, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(db, b.data(), n * 4, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    structura_add_f32_params p{dout, da, db, n};
    e = (cudaError_t)STRUCTURA_CUDA_FN(add_f32)(&p, nullptr);
  }
  if (e == cudaSuccess) e = cudaMemcpy(out.data(), dout, n * 4, cudaMemcpyDeviceToHost);
  cudaFree(da);
  cudaFree(db);
  cudaFree(dout);
  if (e != cudaSuccess) {
    std::snprintf(msg, msg_len, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
  }
  for (int i = 0; i < n; i++)
    if (out[i] != a[i] + b[i]) {
      std::snprintf(msg, msg_len, "add_f32 wrote %g at %d, expected %g", out[i], i, a[i] + b[i]);
      return 1;
    }
  if (msg_len) msg[0] = 0;
  return 0;
}
