// cuda_none.cc — the structura_* CUDA ABI (cuda/structura_cuda.h) of a binary without nvcc-compiled
// CUDA (STRUCTURA_CUDA=OFF, or no nvcc at build time): the probe says why, and everything else fails
// with cudaErrorNoDevice (100). The addon never calls the memory functions here, because get_device()
// rejects 'cuda' when structura_cuda_compiled() is 0. (The emulated device's structura_emu_* names
// come from cuda/*.cu compiled for the host, independently of this file.)
#include <cstdio>

#include "structura_cuda.h"

namespace {
constexpr int kNoDevice = 100;  // cudaErrorNoDevice

// The process-wide switches (setCopyStaging, setDependentLaunch, setGemmKernel, setDecodeKernel,
// setLoraDecode) keep their state here too, with the CUDA build's defaults, so that they read back
// alike in a binary without CUDA.
size_t g_staging = size_t(32) << 20;
int g_pdl = 1, g_gemm_kernel = 0, g_decode = 1, g_lora_fused = 1, g_row_tiles = 65535;
template <class T> T swap_setting(T& state, T v) {
  const T old = state;
  state = v;
  return old;
}
}  // namespace

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
int structura_cuda_set_device(int) { return kNoDevice; }
int structura_cuda_malloc(int, void** p, size_t) {
  *p = nullptr;
  return kNoDevice;
}
int structura_cuda_free(int, void*) { return kNoDevice; }
int structura_cuda_memset(int, void*, int, size_t, void*) { return kNoDevice; }
int structura_cuda_memcpy_h2d(int, void*, const void*, size_t, void*) { return kNoDevice; }
int structura_cuda_memcpy_d2h(int, void*, const void*, size_t, void*) { return kNoDevice; }
int structura_cuda_memcpy_d2d(int, void*, const void*, size_t, void*) { return kNoDevice; }
int structura_cuda_stream_synchronize(int, void*) { return kNoDevice; }
void structura_cuda_set_host_memcpy(structura_host_memcpy_fn) {}
size_t structura_cuda_set_staging(size_t min_bytes) { return swap_setting(g_staging, min_bytes); }
int structura_cuda_set_pdl(int on) { return swap_setting(g_pdl, on ? 1 : 0); }
int structura_cuda_disabled(int) { return 0; }  // nothing runs to switch off
const char* structura_cuda_switch_name(int) { return nullptr; }
int structura_cuda_mem_info(int, size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = 0;
  return kNoDevice;
}
void structura_cuda_describe_error(int code, char* msg, size_t msg_len) {
  std::snprintf(msg, msg_len, "error %d: this binary was built without CUDA", code);
}
int structura_cuda_last_error(char* msg, size_t msg_len) {
  if (msg_len) msg[0] = 0;
  return 0;
}
int structura_gemm_set_kernel(int mode) { return mode < 0 || mode > 3 ? -1 : swap_setting(g_gemm_kernel, mode); }
int structura_gemm_set_decode(int version) { return version < 0 || version > 2 ? -1 : swap_setting(g_decode, version); }
int structura_gemm_set_row_tiles(int tiles) { return tiles < 1 || tiles > 65535 ? -1 : swap_setting(g_row_tiles, tiles); }
int structura_gemm_wgmma_active(void) { return 0; }
int structura_add_f32(const structura_add_f32_params*, void*) { return kNoDevice; }
int structura_copy(const structura_copy_params*, void*) { return kNoDevice; }
int structura_copy_bytes(const structura_copy_bytes_params*, void*) { return kNoDevice; }
int structura_binary(const structura_binary_params*, void*) { return kNoDevice; }
int structura_unary(const structura_unary_params*, void*) { return kNoDevice; }
int structura_reduce(const structura_reduce_params*, void*) { return kNoDevice; }
int structura_softmax(const structura_softmax_params*, void*) { return kNoDevice; }
int structura_cross_entropy(const structura_cross_entropy_params*, void*) { return kNoDevice; }
int structura_cross_entropy_backward(const structura_cross_entropy_backward_params*, void*) { return kNoDevice; }
int structura_where(const structura_where_params*, void*) { return kNoDevice; }
int structura_dropout(const structura_dropout_params*, void*) { return kNoDevice; }
int structura_arg_reduce(const structura_arg_reduce_params*, void*) { return kNoDevice; }
int structura_lora_t(const structura_lora_t_params*, void*) { return kNoDevice; }
int structura_lora_decode(const structura_gemm_params*, const structura_lora_t_params*, const void*, int64_t, int64_t,
                          int64_t, int* taken, void*) {
  *taken = 0;
  return kNoDevice;
}
int structura_lora_set_fused(int on) { return swap_setting(g_lora_fused, on != 0 ? 1 : 0); }
int structura_lora_gather(const structura_lora_gather_params*, void*) { return kNoDevice; }
int structura_spmm(const structura_spmm_params*, void*) { return kNoDevice; }
int structura_sddmm(const structura_sddmm_params*, void*) { return kNoDevice; }
int structura_cuda_selftest(char* msg, size_t msg_len) {
  std::snprintf(msg, msg_len, "built without CUDA");
  return 1;
}
}
