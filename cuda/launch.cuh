// launch.cuh — how kernels are launched and how they touch memory, written once for both builds:
// nvcc (the GPU) and the CPU emulation (-DSTRUCTURA_CUDA_EMU -Icuda/emu, see cuda/emu/README.md).
//
//   structura::launch<kernel>(grid, block, smem_bytes, stream, args...)   — the only way to launch;
//       returns cudaGetLastError() after the launch.
//   structura::launch_pdl<kernel>(…)  the same as a programmatic dependent launch (sm_90+, when
//       cuda_pdl_active()): the kernel may start once the kernel before it in the stream has run
//       ptx::pdl_trigger() in every block, before that kernel ends. Until it has run ptx::pdl_wait(),
//       it may read only memory that was complete before that chain of kernels began, and write no
//       global memory (the emulator checks both). Elsewhere an ordinary launch; if the driver refuses
//       the attribute, the launch is retried in plain stream order and dependent launches are turned
//       off for the process (setDependentLaunch reads false then). Every kernel in cuda/
//       runs ptx::pdl_trigger() first, so that a dependent launch behind it (the decode GEMV) can
//       start early: safe, because such a kernel waits before it touches what its predecessors wrote.
//   gptr(p)                 a kernel's view of a global pointer p (T*): raw on the GPU, a checked
//                           pointer bound to p's cudaMalloc allocation in emulation.
//   dev_ptr<T>              the type of such a pointer (global or shared), for device helpers.
//   dev_cast<U>(p)          reinterpret a dev_ptr (or a SMEM row) as a pointer to U (e.g. float4).
//   SMEM(T, name, [d0][d1]) a static __shared__ array (per block; checked and race-detected in emulation).
//   DYN_SMEM(T, name)       the launch's dynamic shared memory (extern __shared__) as a dev_ptr<T>.
// In emulation `x = a[i]` reads through a checked reference: write `float x = a[i];`, not `auto`.
#ifndef STRUCTURA_LAUNCH_CUH
#define STRUCTURA_LAUNCH_CUH
#include <cuda_runtime.h>

#include <utility>

#include "structura_cuda.h"

#ifdef STRUCTURA_CUDA_EMU
// ---- CPU emulation -------------------------------------------------------------------------------
template <class T> using dev_ptr = ::emu::ptr<T>;
template <class T> inline dev_ptr<T> gptr(T* p) { return dev_ptr<T>(p, ::emu::find_global(p)); }
template <class U, class T> inline dev_ptr<U> dev_cast(const ::emu::ptr<T>& p) {
  return dev_ptr<U>(reinterpret_cast<U*>(p.p), p.r);
}
template <class U, class A> inline dev_ptr<U> dev_cast(const ::emu::aview<A>& v) {
  return dev_ptr<U>(reinterpret_cast<U*>(v.p), v.r);
}
#define SMEM(T, name, dims)                                          \
  static ::emu::shared_array<T dims> name##_emu_storage_(#name);   \
  const auto name = name##_emu_storage_.view()
#define DYN_SMEM(T, name) const dev_ptr<T> name = dev_cast<T>(::emu::dynamic_smem())

namespace structura {
template <auto K, class... Args>
cudaError_t run_emulated(bool pdl, dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  using Params = typename ::emu::kernel_params<decltype(K)>::tuple;
  Params params(std::forward<Args>(args)...);  // converted to the kernel's parameter types, as <<<>>> does
  static const std::string name = ::emu::kernel_name_from_signature(__PRETTY_FUNCTION__);
  ::emu::run_kernel(name.c_str(), reinterpret_cast<const void*>(K), grid, block, smem_bytes, stream,
                    [](void* ctx) { std::apply(K, *static_cast<Params*>(ctx)); }, &params, pdl);
  return cudaGetLastError();
}
template <auto K, class... Args>
cudaError_t launch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  return run_emulated<K>(false, grid, block, smem_bytes, stream, std::forward<Args>(args)...);
}
template <auto K, class... Args>
cudaError_t launch_pdl(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  return run_emulated<K>(STRUCTURA_CUDA_FN(cuda_pdl_active)() != 0, grid, block, smem_bytes, stream,
                         std::forward<Args>(args)...);
}
}  // namespace structura

#else
// ---- nvcc ------------------------------------------------------------------------------------------
template <class T> using dev_ptr = T*;
template <class T> __host__ __device__ __forceinline__ T* gptr(T* p) { return p; }
template <class U, class T> __host__ __device__ __forceinline__ U* dev_cast(T* p) { return reinterpret_cast<U*>(p); }
#define SMEM(T, name, dims) __shared__ __align__(16) T name dims
extern __shared__ __align__(16) unsigned char structura_dyn_smem[];
#define DYN_SMEM(T, name) T* const name = reinterpret_cast<T*>(structura_dyn_smem)

namespace structura {
template <auto K, class... Args>
cudaError_t launch(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  K<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);
  return cudaGetLastError();
}
template <auto K, class... Args>
cudaError_t launch_pdl(dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream, const Args&... args) {
  if (!STRUCTURA_CUDA_FN(cuda_pdl_active)()) return launch<K>(grid, block, smem_bytes, stream, args...);
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem_bytes;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  // The launch's own result, not cudaGetLastError(): an error left pending by an earlier call would
  // read as a refusal, and the kernel, which did run, would be launched a second time below.
  const cudaError_t e = cudaLaunchKernelEx(&cfg, K, args...);
  if (e == cudaSuccess) return e;
  (void)cudaGetLastError();  // the refusal is not sticky: clear it, so the plain launch reports its own
  // Refused (a driver or stream that does not take the attribute): the same launch in plain stream
  // order, and no more dependent launches in this process if that one goes through.
  const cudaError_t plain = launch<K>(grid, block, smem_bytes, stream, args...);
  if (plain == cudaSuccess) STRUCTURA_CUDA_FN(cuda_set_pdl)(0);
  return plain;
}
}  // namespace structura
#endif

#endif
