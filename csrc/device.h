// device.h — device storage and the device half of dispatch, for 'cuda:N' (nvcc-compiled cuda/*.cu)
// and 'cuda-emu' (the same files compiled for the host and run by cuda/emu/): one C ABI table per
// device type (cuda/structura_cuda.h), one caching allocator per device, host↔device copies on the
// device's default stream, and kernel-error reports that name the op.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

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
void device_synchronize(const Device& d, const char* what);
// Waits for every device of every type that has allocated memory.
void synchronize_all(const char* what);

// t on `dev`: t itself when it is already there; otherwise a fresh contiguous copy (device ↔ host by
// the copy engine, device ↔ other device through the host). Only contiguous data crosses; a strided
// view is copied as the span it covers and made contiguous on the host.
Tensor to_device(const Tensor& t, const Device& dev);

// ---- dispatch of the device kernels ------------------------------------------------------------
// out = a + b for contiguous float32 tensors of one shape on one device (checked by the caller
// through device_add_supported). Throws a JS Error "structura.<op>: kernel failed on <device>: ..."
// with the emulator's report in emulation.
bool device_add_supported(const Tensor& a, const Tensor& b);
void device_add_f32(Napi::Env env, const char* op, const Tensor& a, const Tensor& b, Tensor& out);

}  // namespace structura
