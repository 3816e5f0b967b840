// device.h — device storage and the device half of dispatch, for 'cuda:N' (nvcc-compiled cuda/*.cu)
// and 'cuda-emu' (the same files compiled for the host and run by cuda/emu/): one C ABI table per
// device type (cuda/structura_cuda.h), one caching allocator per device, host↔device copies on the
// device's default stream, and kernel-error reports that name the op.
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor.h"

namespace structura {

// Whether tensors can live on `d` in this process; if not, why (for a TypeError).
bool device_available(const Device& d, std::string* why);
// True when the emulated device was compiled in (STRUCTURA_CUDA_EMU).
bool cuda_emu_compiled();

// ---- the caching allocator --------------------------------------------------------------------
// Returns a block of at least `bytes` on d (nullptr for 0 bytes). Reuses a cached block of the same
// size class; on out-of-memory frees d's cache and retries once, then throws std::runtime_error
// "structura: out of memory on <device> allocating N bytes".
void* device_alloc(const Device& d, size_t bytes);
// Gives a block back to d's cache (stream-ordered: later work on the default stream may reuse it).
void device_free(const Device& d, void* p, size_t bytes);
struct DeviceCacheStats {
  int64_t cached_bytes = 0;   // in free blocks held by the cache
  int64_t cached_blocks = 0;
  int64_t reserved_bytes = 0; // obtained from the device (live blocks + cached), in size-class bytes
};
// Summed over every device of the type.
DeviceCacheStats device_cache_stats(DeviceType t);
// Frees every cached block of every device of type t.
void device_empty_cache(DeviceType t);

// ---- copies and synchronisation (throw std::runtime_error naming `what` on a device error) ------
// Every copy is on the device's default stream; device → host waits for it.
void device_copy_h2d(const Device& d, void* dst, const void* src, size_t bytes, const char* what);
void device_copy_d2h(const Device& d, void* dst, const void* src, size_t bytes, const char* what);
void device_copy_d2d(const Device& d, void* dst, const void* src, size_t bytes, const char* what);
// Whether device_copy_d2d runs cuda/copy.cu's kernel (true, the default) or the driver's memcpy;
// returns the previous setting. For the bench.
bool set_d2d_kernel(bool on);
void device_synchronize(const Device& d, const char* what);
// Waits for every device of every type that has allocated memory.
void synchronize_all(const char* what);
// memcpy split over the thread pool in 1 MiB pieces: the host side of cuda/runtime.cu's staged copies
// (the addon installs it at load).
void host_memcpy_parallel(void* dst, const void* src, size_t bytes);

// t on `dev`: t itself when it is already there; otherwise a fresh contiguous copy (device ↔ host by
// the copy engine, device ↔ other device through the host). Only contiguous data crosses; a strided
// device view is first gathered to contiguous on its device (cuda/copy.cu), a host view on the host.
Tensor to_device(const Tensor& t, const Device& dev);

// ---- dispatch of the device kernels ------------------------------------------------------------
// Runs one launcher of cuda/structura_cuda.h for d (see csrc/cuda_abi.h): makes d current, then calls
// launch(emu), emu = (d is 'cuda-emu'). A non-zero return becomes a JS Error
// "structura.<op>: kernel failed on <device>: <description>" (in emulation with the emulator's report
// naming kernel, block, thread and address). Launches are asynchronous on a GPU: a fault inside the
// kernel surfaces at the next synchronizing call (data(), synchronize()) and names that call.
// (node-addon-api turns the std::runtime_error into a JS Error; the env overload is for the op files.)
void device_launch(const char* op, const Device& d, const std::function<int(bool emu)>& launch);
void device_launch(Napi::Env env, const char* op, const Device& d, const std::function<int(bool emu)>& launch);

// Throws a TypeError naming both arguments unless a and b live on one device:
// "structura.<op>: 'a' is on cuda-emu but 'b' is on cpu: tensors on different devices; move one with .to()".
void require_same_device(Napi::Env env, const Tensor& a, const char* aname, const Tensor& b, const char* bname,
                         const std::string& op);

// ---- strided views for the core-op kernels (cuda/copy.cu, elementwise.cu, reduce.cu) -----------
// shape with its size-1 dimensions dropped and neighbours merged where every operand's strides are
// contiguous across them (strides[q] per operand, one entry per dimension of shape). At least one
// dimension comes out (a 0-d or all-ones shape gives [1] with stride 0).
void collapse_dims(const Shape& shape, const std::vector<Shape>& strides, Shape& out_shape,
                   std::vector<Shape>& out_strides);
// dst[idx] = src[idx] converted to dst's dtype (the CPU's cast, bit for bit) for every idx of dst's
// shape, src read through src_strides (broadcast strides allowed, one per dimension of dst), both on
// one device; dst must not overlap src. Any number of dimensions. Throws std::runtime_error
// "structura.<op>: kernel failed on <device>: ..." on a device error.
void device_copy(const Tensor& src, const Shape& src_strides, Tensor& dst, const char* op);

}  // namespace structura
