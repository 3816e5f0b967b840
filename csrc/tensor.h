// tensor.h — native tensors: a refcounted Storage (one allocation on one device) and a Tensor view
// of it (dtype, shape, strides and offset in elements, row-major by default). JS holds a Tensor
// through a handle: a number naming a slot of this environment's handle table and its generation, so
// a foreign or stale number is rejected, never read as some other tensor.
// Every native buffer is counted (per device: live buffers and bytes) and reported to V8 as external
// memory, so tests can check for leaks and the GC sees the pressure.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "small_vector.h"

namespace structura {

// The numbering is part of the JS ↔ native contract (lib/native.ts DTYPE_CODES).
enum class DType : int32_t { f32 = 0, f64 = 1, f16 = 2, bf16 = 3, i32 = 4, u8 = 5, u16 = 6 };
constexpr int kNumDTypes = 7;
size_t dtype_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16; }

// 'cpu' = 0; 'cuda:N' = 1 (issue 3 adds the allocator); 'cuda-emu' = 2 (issue 4).
enum class DeviceType : int32_t { cpu = 0, cuda = 1, cuda_emu = 2 };
struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;
};

// One allocation. CPU memory is 64-byte aligned so SIMD kernels may use aligned loads on fresh outputs.
// Device memory (cuda, cuda-emu) comes from the device's caching allocator (device.h); `data` is then a
// device pointer, which only device code and the copy functions may touch.
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  // Bumped by every op that writes into an existing tensor (an `out` argument, copyInto, gemm's C), so
  // that a value derived from it (nn.LoRALinear's adapters cast to the base's dtype) knows when to be
  // made again. A new native that writes in place must bump it too.
  uint64_t version = 0;
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

 private:
  void* base_ = nullptr;  // what malloc returned (data is base_ rounded up to 64 bytes)
  void count_alloc();
};

// Shapes and strides: up to 8 dimensions in place (tensors have at most 64; few pass 8).
using Shape = SmallVector<int64_t, 8>;

struct Tensor {
  std::shared_ptr<Storage> storage;
  DType dtype = DType::f32;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements

  int64_t ndim() const { return (int64_t)shape.size(); }
  int64_t numel() const;
  bool is_contiguous() const;
  Device device() const { return storage->device; }
  void* raw() const { return (char*)storage->data + offset * (int64_t)dtype_size(dtype); }
  template <class T> T* data() const { return (T*)raw(); }
  // size(-1) style access for axis arguments already normalised by the caller.
  int64_t size(int64_t axis) const { return shape[axis < 0 ? axis + ndim() : axis]; }

  // A fresh contiguous tensor (uninitialised memory).
  static Tensor empty(DType dtype, const Shape& shape, Device device);
  static Shape contiguous_strides(const Shape& shape);
};

std::string shape_str(const Shape& s);

// ---- memory accounting -----------------------------------------------------------------------
struct MemoryCounters {
  int64_t buffers = 0;
  int64_t bytes = 0;
};
MemoryCounters memory_counters(DeviceType t);
// Registers the env whose V8 heap is told about external memory (per-env, set by addon init).
void adjust_external_memory(int64_t delta);

// ---- handles ---------------------------------------------------------------------------------
// Unwraps a tensor handle; throws a TypeError naming `arg` if v is not a live structura tensor.
// Returns a copy (it shares the storage): reading a later argument can run JS (a getter) that
// disposes this handle, and the op must keep its storage alive until it returns.
Tensor unwrap(const Napi::Value& v, const char* arg);
bool is_tensor_handle(const Napi::Value& v);
Napi::Value wrap(Napi::Env env, Tensor t);
// Creates this environment's handle table (addon init); its cleanup hook frees what is left in it.
void init_handles(napi_env env);
// Releases the handle's reference to its storage (dispose). Idempotent; false if already disposed.
bool release(const Napi::Value& v);

// ---- argument checks (messages name the argument, as better-sqlite3's REQUIRE_ARGUMENT_*) -------
[[noreturn]] void throw_type(Napi::Env env, const std::string& msg);
[[noreturn]] void throw_range(Napi::Env env, const std::string& msg);
// A non-negative integer ≤ max, else RangeError/TypeError naming arg.
int64_t get_int(const Napi::CallbackInfo& info, size_t i, const char* arg, int64_t lo, int64_t hi);
double get_number(const Napi::CallbackInfo& info, size_t i, const char* arg);
bool get_bool(const Napi::CallbackInfo& info, size_t i, const char* arg);
std::string get_string(const Napi::CallbackInfo& info, size_t i, const char* arg);
// An array of integers (each in [lo, hi]), e.g. a shape.
Shape get_int_array(const Napi::CallbackInfo& info, size_t i, const char* arg, int64_t lo, int64_t hi);
Shape get_shape(const Napi::CallbackInfo& info, size_t i, const char* arg);
// True when the product of the sizes (each in [0, kMaxNumel]) passes kMaxNumel.
bool too_many_elements(const Shape& s);
// RangeError "structura.<op>: the result would have shape … (more than 2^40 elements)" when it would:
// a broadcast of two cheap expand() views, or a reduction of an empty tensor, can name a shape whose
// element count wraps int64 (checked before anything is allocated or indexed).
void check_result_size(Napi::Env env, const std::string& op, const Shape& shape);
DType get_dtype(const Napi::CallbackInfo& info, size_t i, const char* arg);
Device get_device(const Napi::CallbackInfo& info, size_t i, const char* arg);
// Throws unless t lives on the CPU: the one place that says an op has no device kernel yet
// ("structura.<op>: not implemented on <device> yet (CPU only in this version)").
void require_cpu(Napi::Env env, const Tensor& t, const char* op, const char* arg);
void require_same_device(Napi::Env env, const Tensor& a, const Tensor& b, const char* op);
void require_dtype(Napi::Env env, const Tensor& t, DType dt, const char* op, const char* arg);
void require_floating(Napi::Env env, const Tensor& t, const char* op, const char* arg);
// Largest element count a tensor may have (and largest single dimension).
constexpr int64_t kMaxNumel = int64_t(1) << 40;

// ---- scalar conversions (float16 / bfloat16 stored as uint16 bits) -----------------------------
float half_to_float(uint16_t h);  // exact; a NaN comes back quiet (as F16C and double make it)
uint16_t float_to_half(float f);  // round to nearest even, overflow → inf, NaN kept
inline float bf16_to_float(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16(float f) {  // round to nearest even, NaN stays NaN
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
// float32 ↔ float64 as IEEE converts, whatever MXCSR says: with setFlushDenormal(true) the pool's jobs
// run with FTZ/DAZ (threadpool.h), under which cvtss2sd reads a float32 subnormal as 0 and cvtsd2ss flushes a result
// below 2^-126 to 0, so a cast large enough to be split lost subnormals that a small one and the
// devices keep. A cast moves data; it should not depend on the size of the job.
inline double float_to_double_exact(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (u & 0x7f800000u) return (double)x;
  const double m = (double)(u & 0x7fffffu) * 0x1p-149;  // a subnormal (or ±0): its mantissa · 2^-149
  return (u >> 31) ? -m : m;
}
inline float double_to_float_exact(double x) {
  if (!(std::fabs(x) < 0x1p-126)) return (float)x;  // normal results, ±inf, NaN
  // A multiple of 2^-149: |x| · 2^149 (exact, < 2^23) rounded to nearest even by adding and taking
  // away 2^52. 2^23 itself is FLT_MIN's bit pattern, the right answer for a value that rounds up to it.
  const uint32_t m = (uint32_t)((std::fabs(x) * 0x1p149 + 0x1p52) - 0x1p52);
  const uint32_t u = m | (std::signbit(x) ? 0x80000000u : 0u);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Reads/writes element i of a contiguous buffer of dtype dt as double (the generic slow path).
double load_as_double(const void* p, DType dt, int64_t i);
void store_from_double(void* p, DType dt, int64_t i, double v);

// ---- broadcasting ------------------------------------------------------------------------------
// Numpy broadcasting of two shapes; false if incompatible.
bool broadcast_shapes(const Shape& a, const Shape& b, Shape& out);
// t's strides seen through a broadcast to `shape` (0 on broadcast dimensions); t.ndim() ≤ shape.size()
// and every dimension of t is 1 or equal to shape's.
Shape broadcast_strides(const Tensor& t, const Shape& shape);
// Element offsets (in elements, relative to each tensor's raw()) of a walk over `shape` in row-major
// order, for up to 4 operands: calls fn(row, off[0..k)) for each row of the innermost dimension,
// rows split over the thread pool. strides[k] are per operand (already broadcast).
void for_each_row(const Shape& shape, const std::vector<Shape>& strides,
                  const std::function<void(int64_t row, const int64_t* offs)>& fn, int64_t grain_rows = 0);

// Copies src (any strides) into a contiguous tensor of dtype `dst.dtype` (casting as needed).
void copy_to_contiguous(const Tensor& src, Tensor& dst);
// Copies src into dst (any strides for both), broadcasting src to dst's shape and casting.
void copy_into(const Tensor& src, Tensor& dst);
// Returns t itself if contiguous, else a contiguous copy (on a device: gathered there by cuda/copy.cu).
Tensor contiguous(const Tensor& t);
// Returns t converted to dtype dt (t itself if it already is and is contiguous).
Tensor cast_contiguous(const Tensor& t, DType dt);

}  // namespace structura
