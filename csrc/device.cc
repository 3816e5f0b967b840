// device.cc — device storage: the per-device caching allocator, host↔device copies, and the launch of
// the device kernels, over the C ABI of cuda/structura_cuda.h. Both device types go through the same
// code: 'cuda:N' calls the nvcc-built structura_* functions, 'cuda-emu' the host-built structura_emu_*
// ones (same cuda/*.cu source, run by cuda/emu/), chosen by one table per type.
//
// The allocator. Each device has one cache of free blocks, keyed by size class:
//   ≤ 1 MiB: multiples of 512 bytes; above: the next of 8 steps per power of two (≤ 12.5 % slack).
// A block is only handed out again for the same class. All work runs on the device's default stream,
// so a block freed by one op may be reused by any later op at once: stream order makes the new
// writes come after the old reads (a second stream would need an event per block; none exists yet).
// On out-of-memory the cache is given back to the device (cudaFree, which waits for the device) and
// the allocation is tried once more before a catchable Error. In emulation the checked bounds of a
// handed-out block are narrowed to the bytes asked for, so the emulator's out-of-bounds checks see
// the tensor, not the size class.
#include "device.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

// structura_* (nvcc build, or csrc/cuda_none.cc) and structura_emu_* (cuda/*.cu built for the
// emulator), and STRUCTURA_KERNEL to pick one
#include "cuda_abi.h"
#include "threadpool.h"
#ifdef STRUCTURA_HAVE_CUDA_EMU
#include "emu/structura_emu.h"
#endif

namespace structura {

namespace {

struct Api {
  int (*compiled)(void);
  int (*probe)(int*, int*, int*, char*, size_t);
  int (*malloc_)(int, void**, size_t);
  int (*free_)(int, void*);
  int (*memcpy_h2d)(int, void*, const void*, size_t, void*);
  int (*memcpy_d2h)(int, void*, const void*, size_t, void*);
  int (*memcpy_d2d)(int, void*, const void*, size_t, void*);
  int (*sync)(int, void*);
  int (*set_device)(int);
  void (*describe)(int, char*, size_t);
  int (*mem_info)(int, size_t*, size_t*);
};

const Api kCuda = {structura_cuda_compiled,  structura_cuda_probe,       structura_cuda_malloc,
                   structura_cuda_free,      structura_cuda_memcpy_h2d,  structura_cuda_memcpy_d2h,
                   structura_cuda_memcpy_d2d, structura_cuda_stream_synchronize, structura_cuda_set_device,
                   structura_cuda_describe_error, structura_cuda_mem_info};
#ifdef STRUCTURA_HAVE_CUDA_EMU
const Api kEmu = {structura_emu_cuda_compiled,  structura_emu_cuda_probe,      structura_emu_cuda_malloc,
                  structura_emu_cuda_free,      structura_emu_cuda_memcpy_h2d, structura_emu_cuda_memcpy_d2h,
                  structura_emu_cuda_memcpy_d2d, structura_emu_cuda_stream_synchronize,
                  structura_emu_cuda_set_device, structura_emu_cuda_describe_error, structura_emu_cuda_mem_info};
#endif

const Api& api(const Device& d) {
#ifdef STRUCTURA_HAVE_CUDA_EMU
  if (d.type == DeviceType::cuda_emu) return kEmu;
#endif
  if (d.type != DeviceType::cuda) throw std::logic_error("structura: no device API for " + d.str());
  return kCuda;
}

// The default stream of every device (the legacy NULL stream of the device made current).
void* const kDefaultStream = nullptr;

std::string describe(const Api& a, int code) {
  char msg[1400] = {0};
  a.describe(code, msg, sizeof msg);
  return msg;
}

[[noreturn]] void fail(const Device& d, const char* what, int code) {
  throw std::runtime_error(std::string("structura.") + what + ": " + d.str() + " error: " + describe(api(d), code));
}

// Under compute-sanitizer (scripts/test.js --sanitizer sets STRUCTURA_SANITIZER) every block is the
// bytes asked for and goes back to the device when freed: memcheck then sees an overrun past a tensor's
// end, which a size class's slack or a reused block would hide.
bool exact_blocks() {
  static const bool on = std::getenv("STRUCTURA_SANITIZER") != nullptr;
  return on;
}

size_t size_class(size_t bytes) {
  if (exact_blocks()) return bytes;
  if (bytes <= (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  size_t p = size_t(1) << (63 - __builtin_clzll((unsigned long long)bytes));  // ≤ bytes
  if (p == bytes) return bytes;
  size_t step = p / 8;
  return (bytes + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free;  // size class → blocks
  int64_t cached_bytes = 0, cached_blocks = 0, reserved_bytes = 0;
};

// Caches live for the process (leaked, never destroyed: storages may be freed during exit, after
// static destructors have run).
std::mutex& g_caches_mu = *new std::mutex();
std::map<std::pair<int, int>, Cache*>& g_caches = *new std::map<std::pair<int, int>, Cache*>();

Cache& cache_of(const Device& d) {
  std::lock_guard<std::mutex> g(g_caches_mu);
  Cache*& c = g_caches[{(int)d.type, d.index}];
  if (!c) c = new Cache();
  return *c;
}

// Frees every cached block of c (caller holds c.mu).
void release_cached(const Device& d, Cache& c) {
  const Api& a = api(d);
  for (auto& kv : c.free)
    for (void* p : kv.second) {
      a.free_(d.index, p);
      c.reserved_bytes -= (int64_t)kv.first;
    }
  c.free.clear();
  c.cached_bytes = c.cached_blocks = 0;
}

void narrow(const Device& d, void* p, size_t bytes) {
#ifdef STRUCTURA_HAVE_CUDA_EMU
  if (d.type == DeviceType::cuda_emu) structura_emu_set_extent(p, bytes);
#else
  (void)d, (void)p, (void)bytes;
#endif
}

}  // namespace

void device_launch(const char* op, const Device& d, const std::function<int(bool emu)>& launch) {
  const Api& ap = api(d);
  int rc = ap.set_device(d.index);
  if (rc == 0) rc = launch(d.type == DeviceType::cuda_emu);
  if (rc != 0)
    throw std::runtime_error(std::string("structura.") + op + ": kernel failed on " + d.str() + ": " + describe(ap, rc));
}

void device_launch(Napi::Env, const char* op, const Device& d, const std::function<int(bool emu)>& launch) {
  device_launch(op, d, launch);
}

bool cuda_emu_compiled() {
#ifdef STRUCTURA_HAVE_CUDA_EMU
  return true;
#else
  return false;
#endif
}

bool device_available(const Device& d, std::string* why) {
  if (d.type == DeviceType::cpu) return true;
  if (d.type == DeviceType::cuda_emu) {
    if (!cuda_emu_compiled()) {
      *why = "this binary was built without the emulated device (rebuild with the CMake option "
             "STRUCTURA_CUDA_EMU=ON, e.g. npx cmake-js compile --CDSTRUCTURA_CUDA_EMU=ON; the node-gyp build has none)";
      return false;
    }
    if (d.index != 0) {
      *why = "the emulated device has index 0 only";
      return false;
    }
    return true;
  }
  int count = 0, rt = 0, drv = 0;
  char msg[512] = {0};
  structura_cuda_probe(&count, &rt, &drv, msg, sizeof msg);
  if (!structura_cuda_compiled() || count == 0) {
    *why = msg;
    return false;
  }
  if (d.index >= count) {
    *why = "there are " + std::to_string(count) + " CUDA device(s)";
    return false;
  }
  return true;
}

std::string human_bytes(double b) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, u++;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

// PyTorch's out-of-memory message says what holds the memory; so does this one: the request, what
// this process's tensors hold on the device, and the device's own free / total (other processes
// included). Called with c.mu held, after the cache was emptied and the allocation retried.
std::string out_of_memory_message(const Device& d, const Api& a, const Cache& c, size_t bytes, size_t cls,
                                  bool retried) {
  std::string m = "structura: out of memory on " + d.str() + " allocating " + human_bytes((double)bytes) + " (" +
                  std::to_string(bytes) + " bytes" +
                  (cls != bytes ? ", rounded to a " + human_bytes((double)cls) + " block)" : ")");
  m += ": this process's tensors hold " + human_bytes((double)(c.reserved_bytes - c.cached_bytes)) + " there";
  size_t free_b = 0, total_b = 0;
  if (a.mem_info(d.index, &free_b, &total_b) == 0 && total_b)
    m += ", the device has " + human_bytes((double)free_b) + " free of " + human_bytes((double)total_b);
  return m + (retried ? " (after emptying the allocator's cache)" : "") + "; free tensors with dispose() or tidy()";
}

void* device_alloc(const Device& d, size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  Cache& c = cache_of(d);
  std::lock_guard<std::mutex> g(c.mu);
  auto it = c.free.find(cls);
  if (it != c.free.end() && !it->second.empty()) {
    void* p = it->second.back();
    it->second.pop_back();
    c.cached_bytes -= (int64_t)cls;
    c.cached_blocks--;
    narrow(d, p, bytes);
    return p;
  }
  const Api& a = api(d);
  void* p = nullptr;
  int rc = a.malloc_(d.index, &p, cls);
  const bool retry = rc != 0 && c.cached_blocks > 0;
  if (retry) {
    release_cached(d, c);
    rc = a.malloc_(d.index, &p, cls);
  }
  if (rc != 0) {
    if (rc == 2 /* cudaErrorMemoryAllocation */)
      throw std::runtime_error(out_of_memory_message(d, a, c, bytes, cls, retry));
    fail(d, "alloc", rc);
  }
  c.reserved_bytes += (int64_t)cls;
  narrow(d, p, bytes);
  return p;
}

void device_free(const Device& d, void* p, size_t bytes) {
  if (!p) return;
  const size_t cls = size_class(bytes);
  Cache& c = cache_of(d);
  std::lock_guard<std::mutex> g(c.mu);
  if (exact_blocks()) {
    api(d).free_(d.index, p);
    c.reserved_bytes -= (int64_t)cls;
    return;
  }
  c.free[cls].push_back(p);
  c.cached_bytes += (int64_t)cls;
  c.cached_blocks++;
}

DeviceCacheStats device_cache_stats(DeviceType t) {
  DeviceCacheStats s;
  std::lock_guard<std::mutex> g(g_caches_mu);
  for (auto& kv : g_caches) {
    if (kv.first.first != (int)t) continue;
    std::lock_guard<std::mutex> g2(kv.second->mu);
    s.cached_bytes += kv.second->cached_bytes;
    s.cached_blocks += kv.second->cached_blocks;
    s.reserved_bytes += kv.second->reserved_bytes;
  }
  return s;
}

void device_empty_cache(DeviceType t) {
  std::lock_guard<std::mutex> g(g_caches_mu);
  for (auto& kv : g_caches) {
    if (kv.first.first != (int)t) continue;
    std::lock_guard<std::mutex> g2(kv.second->mu);
    release_cached(Device{t, kv.first.second}, *kv.second);
  }
}

void device_copy_h2d(const Device& d, void* dst, const void* src, size_t bytes, const char* what) {
  if (!bytes) return;
  if (int rc = api(d).memcpy_h2d(d.index, dst, src, bytes, kDefaultStream)) fail(d, what, rc);
}

void device_copy_d2h(const Device& d, void* dst, const void* src, size_t bytes, const char* what) {
  if (!bytes) return;
  const Api& a = api(d);
  if (int rc = a.memcpy_d2h(d.index, dst, src, bytes, kDefaultStream)) fail(d, what, rc);
  if (int rc = a.sync(d.index, kDefaultStream)) fail(d, what, rc);
}

// Same-device copies run cuda/copy.cu's copy_bytes kernel: the driver's cudaMemcpyAsync moved 2.45 TB/s
// on an H200 where a kernel moves ~4 (setDeviceCopy('driver') puts it back, for the bench).
std::atomic<bool> g_d2d_kernel{true};

bool set_d2d_kernel(bool on) { return g_d2d_kernel.exchange(on); }

void device_copy_d2d(const Device& d, void* dst, const void* src, size_t bytes, const char* what) {
  if (!bytes) return;
  if (!g_d2d_kernel) {
    if (int rc = api(d).memcpy_d2d(d.index, dst, src, bytes, kDefaultStream)) fail(d, what, rc);
    return;
  }
  const structura_copy_bytes_params p{dst, src, (int64_t)bytes};
  device_launch(what, d, [&](bool emu) { return STRUCTURA_KERNEL(copy_bytes, emu, &p, kDefaultStream); });
}

void host_memcpy_parallel(void* dst, const void* src, size_t bytes) {
  constexpr size_t kPiece = size_t(1) << 20;
  const int64_t pieces = (int64_t)((bytes + kPiece - 1) / kPiece);
  parallel_for(pieces, 1, [&](int64_t a, int64_t b) {
    const size_t lo = (size_t)a * kPiece, hi = std::min(bytes, (size_t)b * kPiece);
    std::memcpy(static_cast<char*>(dst) + lo, static_cast<const char*>(src) + lo, hi - lo);
  });
}

void device_synchronize(const Device& d, const char* what) {
  if (int rc = api(d).sync(d.index, kDefaultStream)) fail(d, what, rc);
}

void synchronize_all(const char* what) {
  std::vector<Device> ds;
  {
    std::lock_guard<std::mutex> g(g_caches_mu);
    for (auto& kv : g_caches) ds.push_back(Device{(DeviceType)kv.first.first, kv.first.second});
  }
  for (auto& d : ds) device_synchronize(d, what);
}

Tensor to_device(const Tensor& t, const Device& dev) {
  if (t.device() == dev) return t;
  const size_t es = dtype_size(t.dtype);
  if (t.device().type == DeviceType::cpu) {
    Tensor src = t.is_contiguous() ? t : contiguous(t);
    Tensor out = Tensor::empty(t.dtype, t.shape, dev);
    device_copy_h2d(dev, out.raw(), src.raw(), (size_t)out.numel() * es, "to");
    return out;
  }
  // From a device: a strided view is first gathered to contiguous on its device (cuda/copy.cu).
  Tensor dense = t;
  if (t.numel() > 0 && !t.is_contiguous()) {
    dense = Tensor::empty(t.dtype, t.shape, t.device());
    device_copy(t, t.strides, dense, "to");
  }
  Tensor host = Tensor::empty(t.dtype, t.shape, Device{});
  device_copy_d2h(t.device(), host.raw(), dense.raw(), (size_t)t.numel() * es, "to");
  return dev.type == DeviceType::cpu ? host : to_device(host, dev);
}

void require_same_device(Napi::Env env, const Tensor& a, const char* aname, const Tensor& b, const char* bname,
                         const std::string& op) {
  if (a.device() != b.device())
    throw Napi::TypeError::New(env, "structura." + op + ": '" + aname + "' is on " + a.device().str() + " but '" + bname +
                                        "' is on " + b.device().str() +
                                        ": tensors on different devices; move one with .to()");
}

void collapse_dims(const Shape& shape, const std::vector<Shape>& strides, Shape& out_shape,
                   std::vector<Shape>& out_strides) {
  const size_t k = strides.size();
  out_shape.clear();
  out_strides.assign(k, Shape());
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    bool merge = !out_shape.empty();
    for (size_t q = 0; merge && q < k; q++) merge = out_strides[q].back() == strides[q][d] * shape[d];
    if (merge) {
      out_shape.back() *= shape[d];
      for (size_t q = 0; q < k; q++) out_strides[q].back() = strides[q][d];
    } else {
      out_shape.push_back(shape[d]);
      for (size_t q = 0; q < k; q++) out_strides[q].push_back(strides[q][d]);
    }
  }
  if (out_shape.empty()) {
    out_shape.push_back(1);
    for (size_t q = 0; q < k; q++) out_strides[q].push_back(0);
  }
}

namespace {
// One launch of cuda/copy.cu for ≤ STRUCTURA_MAX_DIMS dimensions; more are split over the outermost.
void copy_launch(const Device& d, const char* op, char* dst, DType ddt, const char* src, DType sdt, const Shape& shape,
                 const Shape& dst_st, const Shape& src_st, size_t dim0) {
  const size_t nd = shape.size() - dim0;
  if (nd > STRUCTURA_MAX_DIMS) {
    for (int64_t i = 0; i < shape[dim0]; i++)
      copy_launch(d, op, dst + i * dst_st[dim0] * (int64_t)dtype_size(ddt), ddt,
                  src + i * src_st[dim0] * (int64_t)dtype_size(sdt), sdt, shape, dst_st, src_st, dim0 + 1);
    return;
  }
  structura_copy_params p{};
  p.dst = dst;
  p.src = src;
  p.dst_dtype = (int)ddt;
  p.src_dtype = (int)sdt;
  p.ndim = (int)nd;
  p.n = 1;
  for (size_t i = 0; i < nd; i++) {
    p.shape[i] = shape[dim0 + i];
    p.dst_strides[i] = dst_st[dim0 + i];
    p.src_strides[i] = src_st[dim0 + i];
    p.n *= p.shape[i];
  }
  device_launch(op, d, [&](bool emu) { return STRUCTURA_KERNEL(copy, emu, &p, kDefaultStream); });
}
}  // namespace

void device_copy(const Tensor& src, const Shape& src_strides, Tensor& dst, const char* op) {
  if (dst.numel() == 0) return;
  Shape shape;
  std::vector<Shape> st;
  collapse_dims(dst.shape, {dst.strides, src_strides}, shape, st);
  copy_launch(dst.device(), op, (char*)dst.raw(), dst.dtype, (const char*)src.raw(), src.dtype, shape, st[0], st[1], 0);
}



}  // namespace structura
