// tensor.cc — storage allocation and accounting, handles, argument checks, dtype conversions and
// the strided copy every op uses to make an input contiguous.
#include "tensor.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <new>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/elementwise.h"
#include "device.h"
#include "host_cache.h"
#include "threadpool.h"

namespace structura {

// ---------------------------------------------------------------------------------------------
// dtypes and devices

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::u8: return 1;
    case DType::u16: return 2;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    case DType::i32: return "int32";
    case DType::u8: return "uint8";
    case DType::u16: return "uint16";
  }
  return "?";
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::cpu: return "cpu";
    case DeviceType::cuda: return "cuda:" + std::to_string(index);
    case DeviceType::cuda_emu: return "cuda-emu";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// ---------------------------------------------------------------------------------------------
// storage and accounting

static std::atomic<int64_t> g_buffers[3];
static std::atomic<int64_t> g_bytes[3];
// The env of the current thread's Node instance (one per main/worker thread), for V8's external
// memory accounting. Cleared by the env cleanup hook: storages freed after it only update counters.
static thread_local napi_env t_env = nullptr;

void set_thread_env(napi_env env) { t_env = env; }

void adjust_external_memory(int64_t delta) {
  if (!t_env) return;
  int64_t ignored;
  napi_adjust_external_memory(t_env, delta, &ignored);
}

MemoryCounters memory_counters(DeviceType t) {
  MemoryCounters c;
  c.buffers = g_buffers[(int)t].load();
  c.bytes = g_bytes[(int)t].load();
  return c;
}

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  if (dev.type != DeviceType::cpu) {
    data = device_alloc(dev, nbytes);  // the device's caching allocator (device.cc); throws on OOM
    count_alloc();
    return;
  }
  if (nbytes >= kHostCachedBlock) {
    data = host_alloc_cached(nbytes);  // host_cache.h: cached, so not faulted in again
  } else {
    // malloc + manual 64-byte alignment rather than aligned_alloc: glibc hands a freed malloc block
    // (below its mmap threshold) straight back to the next request, while aligned_alloc's never are,
    // so every fresh output page-faulted again (≈10 ms per 16 MB measured here).
    base_ = std::malloc(nbytes + 64);
    data = base_ ? (void*)(((uintptr_t)base_ + 64) & ~(uintptr_t)63) : nullptr;
  }
  if (!data) {
    throw std::runtime_error("structura: out of memory allocating " + std::to_string(nbytes) + " bytes on " +
                             dev.str());
  }
  count_alloc();
}

void Storage::count_alloc() {
  g_buffers[(int)device.type]++;
  g_bytes[(int)device.type] += (int64_t)bytes;
  adjust_external_memory((int64_t)bytes);
}

Storage::~Storage() {
  if (device.type != DeviceType::cpu) device_free(device, data, bytes);
  else if (bytes >= kHostCachedBlock) host_free_cached(data, bytes);
  else std::free(base_);
  g_buffers[(int)device.type]--;
  g_bytes[(int)device.type] -= (int64_t)bytes;
  adjust_external_memory(-(int64_t)bytes);
}

// ---------------------------------------------------------------------------------------------
// tensors

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int64_t i = ndim() - 1; i >= 0; i--) {
    if (shape[i] != 1 && strides[i] != expect) return false;
    expect *= shape[i];
  }
  return true;
}

Shape Tensor::contiguous_strides(const Shape& shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)shape.size() - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

Tensor Tensor::empty(DType dtype, const Shape& shape, Device device) {
  Tensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.strides = contiguous_strides(shape);
  // the count checked without overflow (a product of sizes up to 2^40 each can wrap int64 to a small n)
  for (auto d : shape)
    if (d < 0) throw std::range_error("structura: tensor of shape " + shape_str(shape) + " has a negative size");
  if (too_many_elements(shape)) throw std::range_error("structura: tensor of shape " + shape_str(shape) + " is too large");
  const int64_t n = t.numel();
  t.storage = std::make_shared<Storage>((size_t)n * dtype_size(dtype), device);
  return t;
}

// ---------------------------------------------------------------------------------------------
// handles

namespace {
// A handle is a number: a slot of this module instance's table plus its generation · 2^32. The
// generation changes when the slot is freed, so a stale handle (its tensor disposed, the slot since
// reused) is told apart from a live one, never read as another tensor; a slot whose generation
// reaches the limit is retired rather than wrapped (2^53 handles would have to be made first). Each
// table starts its generations at a random base, so a handle posted to another worker, or a number
// made up, does not name that worker's tensors. Numbers rather than Externals: an External with a
// finalizer costs a weak reference, a tracked napi reference and a deferred finalizer on every op's
// output (≈ 40% of a small op's time, measured with perf), while the JS Tensor already has a
// FinalizationRegistry backstop that disposes what it holds. The table is the instance data of the
// addon's napi environment (one per Node environment and load), freed with it: what JS never
// disposed is freed then. Slots live in chunks of 1024, and beyond 16 chunks with no live slot the
// oldest emptied are freed, so a burst of live tensors does not keep its memory after they are
// disposed (a Tensor is ~200 bytes) while a loop that makes and disposes one does not free and
// remake a chunk every time.
constexpr uint64_t kGenLimit = uint64_t(1) << 21;  // slot + generation · 2^32 < 2^53: exact in a double
constexpr uint32_t kChunkBits = 10;
constexpr uint32_t kChunk = 1u << kChunkBits;
struct HandleTable {
  std::vector<uint32_t> gens;  // each slot's current generation, in [1, kGenLimit]; kGenLimit = retired
  std::vector<uint8_t> live;
  std::vector<uint32_t> free_slots;
  std::vector<std::unique_ptr<Tensor[]>> chunks;  // kChunk slots each; null when none of them is live
  std::vector<uint32_t> chunk_live;
  std::deque<uint32_t> emptied;  // chunks in the order they first emptied (some since live again)
  std::vector<uint8_t> queued;   // chunk is in `emptied`
  size_t empty_chunks = 0;       // allocated chunks with no live slot
  uint32_t base_gen = 1;
  Tensor& at(uint32_t slot) { return chunks[slot >> kChunkBits][slot & (kChunk - 1)]; }
  void trim() {
    while (empty_chunks > 16 && !emptied.empty()) {
      const uint32_t c = emptied.front();
      emptied.pop_front();
      queued[c] = 0;
      if (chunks[c] && chunk_live[c] == 0) chunks[c].reset(), empty_chunks--;
    }
  }
};

HandleTable* table_of(napi_env env) {
  void* data = nullptr;
  if (napi_get_instance_data(env, &data) != napi_ok) return nullptr;
  return static_cast<HandleTable*>(data);
}

enum class Lookup { live, stale, foreign };
Lookup lookup(const Napi::Value& v, HandleTable*& tab, uint32_t& slot) {
  tab = table_of(v.Env());
  if (!tab || !v.IsNumber()) return Lookup::foreign;
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 0x1p53) || d != std::floor(d)) return Lookup::foreign;
  const uint64_t u = (uint64_t)d;
  slot = (uint32_t)u;
  const uint64_t gen = u >> 32;
  if (slot >= tab->gens.size() || gen < tab->base_gen || gen >= kGenLimit) return Lookup::foreign;
  // a free slot's current generation has not been handed out yet
  if (gen == tab->gens[slot]) return tab->live[slot] ? Lookup::live : Lookup::foreign;
  // an earlier generation was handed out and disposed; a later one never was
  return gen < tab->gens[slot] ? Lookup::stale : Lookup::foreign;
}
}  // namespace

void init_handles(napi_env env) {
  if (table_of(env)) return;
  auto tab = std::make_unique<HandleTable>();
  // any base in [1, 2^20): at least 2^20 generations a slot before it retires
  uint64_t seed = (uint64_t)(uintptr_t)tab.get() ^ (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
  seed ^= seed >> 31, seed *= 0x9e3779b97f4a7c15ULL, seed ^= seed >> 29;
  tab->base_gen = 1 + (uint32_t)(seed % ((kGenLimit >> 1) - 1));
  const napi_status st = napi_set_instance_data(
      env, tab.get(), [](napi_env, void* data, void*) { delete static_cast<HandleTable*>(data); }, nullptr);
  if (st != napi_ok) throw std::runtime_error("structura: could not set up the tensor handle table");
  tab.release();
}

Napi::Value wrap(Napi::Env env, Tensor t) {
  HandleTable* tab = table_of(env);
  if (!tab) throw std::runtime_error("structura: the addon is not initialised in this environment");
  if (tab->free_slots.empty()) {
    if (tab->gens.size() >= 0xffffffffu) throw std::range_error("structura: more than 2^32 − 1 live tensors");
    tab->gens.push_back(tab->base_gen);
    tab->live.push_back(0);
    tab->free_slots.push_back((uint32_t)(tab->gens.size() - 1));
  }
  const uint32_t slot = tab->free_slots.back();
  // The number first: if making it throws (a worker being terminated), the slot stays free and t is
  // freed by its destructor here.
  Napi::Value h = Napi::Number::New(env, (double)tab->gens[slot] * 0x1p32 + (double)slot);
  const uint32_t chunk = slot >> kChunkBits;
  if (chunk >= tab->chunks.size()) {
    tab->chunks.resize(chunk + 1);
    tab->chunk_live.resize(chunk + 1, 0);
    tab->queued.resize(chunk + 1, 0);
  }
  if (!tab->chunks[chunk]) tab->chunks[chunk].reset(new Tensor[kChunk]);
  else if (tab->chunk_live[chunk] == 0) tab->empty_chunks--;  // an emptied chunk in use again
  tab->free_slots.pop_back();
  tab->at(slot) = std::move(t);
  tab->live[slot] = 1;
  tab->chunk_live[chunk]++;
  return h;
}

bool is_tensor_handle(const Napi::Value& v) {
  HandleTable* tab;
  uint32_t slot;
  return lookup(v, tab, slot) != Lookup::foreign;
}

Tensor unwrap(const Napi::Value& v, const char* arg) {
  HandleTable* tab = nullptr;
  uint32_t slot = 0;
  switch (lookup(v, tab, slot)) {
    case Lookup::live: return tab->at(slot);
    case Lookup::stale: throw_type(v.Env(), std::string("structura: argument '") + arg + "' is a disposed tensor");
    default: throw_type(v.Env(), std::string("structura: argument '") + arg + "' must be a tensor handle");
  }
}

bool release(const Napi::Value& v) {
  HandleTable* tab = nullptr;
  uint32_t slot = 0;
  switch (lookup(v, tab, slot)) {
    case Lookup::stale: return false;
    case Lookup::foreign: throw_type(v.Env(), "structura: dispose expects a tensor handle");
    default: break;
  }
  // Out of the table before the storage is freed (when t goes out of scope here).
  Tensor t = std::move(tab->at(slot));
  tab->at(slot) = Tensor{};
  tab->live[slot] = 0;
  if (++tab->gens[slot] < kGenLimit) tab->free_slots.push_back(slot);  // else retired: never handed out again
  const uint32_t chunk = slot >> kChunkBits;
  if (--tab->chunk_live[chunk] == 0) {
    tab->empty_chunks++;
    if (!tab->queued[chunk]) tab->emptied.push_back(chunk), tab->queued[chunk] = 1;
    tab->trim();
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// argument checks

void throw_type(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
void throw_range(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

double get_number(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw_type(info.Env(), std::string("structura: argument '") + arg + "' must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t get_int(const Napi::CallbackInfo& info, size_t i, const char* arg, int64_t lo, int64_t hi) {
  double d = get_number(info, i, arg);
  if (!std::isfinite(d) || d != std::floor(d))
    throw_range(info.Env(), std::string("structura: argument '") + arg + "' must be an integer, got " +
                                std::to_string(d));
  if (d < (double)lo || d > (double)hi)
    throw_range(info.Env(), std::string("structura: argument '") + arg + "' must be in [" + std::to_string(lo) +
                                ", " + std::to_string(hi) + "], got " + std::to_string((int64_t)d));
  return (int64_t)d;
}

bool get_bool(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  if (info.Length() <= i || !info[i].IsBoolean())
    throw_type(info.Env(), std::string("structura: argument '") + arg + "' must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string get_string(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  if (info.Length() <= i || !info[i].IsString())
    throw_type(info.Env(), std::string("structura: argument '") + arg + "' must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Shape get_int_array(const Napi::CallbackInfo& info, size_t i, const char* arg, int64_t lo, int64_t hi) {
  if (info.Length() <= i || !info[i].IsArray())
    throw_type(info.Env(), std::string("structura: argument '") + arg + "' must be an array of integers");
  auto a = info[i].As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > 64) throw_range(info.Env(), std::string("structura: argument '") + arg + "' has more than 64 entries");
  Shape s(n);
  for (uint32_t k = 0; k < n; k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber())
      throw_type(info.Env(), std::string("structura: argument '") + arg + "' must be an array of integers");
    double d = e.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < (double)lo || d > (double)hi) {
      char got[32];
      std::snprintf(got, sizeof got, "%.17g", d);  // as JavaScript would print it: 1.5, not 1.500000
      throw_range(info.Env(), std::string("structura: argument '") + arg + "[" + std::to_string(k) +
                                  "]' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                  "], got " + got);
    }
    s[k] = (int64_t)d;
  }
  return s;
}

bool too_many_elements(const Shape& s) {
  long double n = 1;  // overflow-safe: each size is at most kMaxNumel
  for (auto d : s) n *= (long double)d;
  return n > (long double)kMaxNumel;
}

void check_result_size(Napi::Env env, const std::string& op, const Shape& shape) {
  if (too_many_elements(shape))
    throw_range(env, "structura." + op + ": the result would have shape " + shape_str(shape) + ", more than 2^40 elements");
}

Shape get_shape(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  Shape s = get_int_array(info, i, arg, 0, kMaxNumel);
  if (too_many_elements(s))
    throw_range(info.Env(), std::string("structura: argument '") + arg + "' " + shape_str(s) + " has too many elements");
  return s;
}

DType get_dtype(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  int64_t c = get_int(info, i, arg, 0, kNumDTypes - 1);
  return (DType)c;
}

Device get_device(const Napi::CallbackInfo& info, size_t i, const char* arg) {
  Device d;
  d.type = (DeviceType)get_int(info, i, arg, 0, 2);
  d.index = (int)get_int(info, i + 1, "deviceIndex", 0, 63);
  std::string why;
  if (!device_available(d, &why))
    throw_type(info.Env(), std::string("structura: device ") + d.str() + " is not available: " + why);
  return d;
}

void require_cpu(Napi::Env env, const Tensor& t, const char* op, const char* arg) {
  (void)arg;
  if (t.device().type != DeviceType::cpu)
    throw_type(env, std::string("structura.") + op + ": not implemented on " + t.device().str() +
                        " yet (CPU only in this version)");
}

void require_same_device(Napi::Env env, const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device())
    throw_type(env, std::string("structura.") + op + ": tensors are on different devices (" + a.device().str() +
                        " and " + b.device().str() + "); move one with .to()");
}

void require_dtype(Napi::Env env, const Tensor& t, DType dt, const char* op, const char* arg) {
  if (t.dtype != dt)
    throw_type(env, std::string("structura.") + op + ": '" + arg + "' must be " + dtype_name(dt) + ", got " +
                        dtype_name(t.dtype));
}

void require_floating(Napi::Env env, const Tensor& t, const char* op, const char* arg) {
  if (!is_floating(t.dtype))
    throw_type(env, std::string("structura.") + op + ": '" + arg + "' must be a floating dtype, got " +
                        dtype_name(t.dtype));
}

// ---------------------------------------------------------------------------------------------
// conversions

float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {  // ±inf, or a NaN made quiet as vcvtph2ps and every trip through double make it
    u = sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00;  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00;  // ≥ 65520 rounds to inf
  if (a < 0x38800000u) {                      // below the smallest normal half: subnormal or zero
    if (a < 0x33000000u) return sign;          // < 2^-25: rounds to zero
    // value = m · 2^(e-150); in half-subnormal units of 2^-24 that is m >> (126 - e), rounded.
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffff) | 0x800000;
    int s = 126 - (int)e;  // right shift amount
    uint32_t res = m >> s;
    uint32_t rem = m & ((1u << s) - 1);
    uint32_t half = 1u << (s - 1);
    if (rem > half || (rem == half && (res & 1))) res++;
    return sign | (uint16_t)res;
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u;  // rebias exponent, round to nearest even
  return sign | (uint16_t)(r >> 13);
}

double load_as_double(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::f32: return float_to_double_exact(((const float*)p)[i]);
    case DType::f64: return ((const double*)p)[i];
    case DType::f16: return half_to_float(((const uint16_t*)p)[i]);  // always a normal float32
    case DType::bf16: return float_to_double_exact(bf16_to_float(((const uint16_t*)p)[i]));
    case DType::i32: return ((const int32_t*)p)[i];
    case DType::u8: return ((const uint8_t*)p)[i];
    case DType::u16: return ((const uint16_t*)p)[i];
  }
  return 0;
}

template <class T>
static T saturate_int(double v) {
  if (std::isnan(v)) return 0;
  if (v <= (double)std::numeric_limits<T>::lowest()) return std::numeric_limits<T>::lowest();
  if (v >= (double)std::numeric_limits<T>::max()) return std::numeric_limits<T>::max();
  return (T)std::trunc(v);
}

void store_from_double(void* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::f32: ((float*)p)[i] = double_to_float_exact(v); break;
    case DType::f64: ((double*)p)[i] = v; break;
    case DType::f16: ((uint16_t*)p)[i] = float_to_half((float)v); break;  // below 2^-126 it is ±0 either way
    case DType::bf16: ((uint16_t*)p)[i] = float_to_bf16(double_to_float_exact(v)); break;
    case DType::i32: ((int32_t*)p)[i] = saturate_int<int32_t>(v); break;
    case DType::u8: ((uint8_t*)p)[i] = saturate_int<uint8_t>(v); break;
    case DType::u16: ((uint16_t*)p)[i] = saturate_int<uint16_t>(v); break;
  }
}

// ---------------------------------------------------------------------------------------------
// strided copy

// y[j] = the bits of bfloat16 x[j·stride] as float32, a NaN made quiet (as the trip through double makes
// it): one pass, eight at a time with SSE2.
static void bf16_to_f32_quiet(const uint16_t* x, int64_t stride, uint32_t* y, int64_t n) {
  int64_t j = 0;
#if defined(__SSE2__)
  if (stride == 1) {
    const __m128i zero = _mm_setzero_si128(), abs = _mm_set1_epi32(0x7fffffff), inf = _mm_set1_epi32(0x7f800000),
                  qbit = _mm_set1_epi32(0x00400000);
    for (; j + 8 <= n; j += 8) {
      const __m128i h = _mm_loadu_si128((const __m128i*)(x + j));
      __m128i lo = _mm_unpacklo_epi16(zero, h), hi = _mm_unpackhi_epi16(zero, h);  // h << 16 in each lane
      lo = _mm_or_si128(lo, _mm_and_si128(_mm_cmpgt_epi32(_mm_and_si128(lo, abs), inf), qbit));
      hi = _mm_or_si128(hi, _mm_and_si128(_mm_cmpgt_epi32(_mm_and_si128(hi, abs), inf), qbit));
      _mm_storeu_si128((__m128i*)(y + j), lo);
      _mm_storeu_si128((__m128i*)(y + j + 4), hi);
    }
  }
#endif
  for (; j < n; j++) {
    const uint32_t u = (uint32_t)x[j * stride] << 16;
    y[j] = u | (uint32_t)((u & 0x7fffffffu) > 0x7f800000u) << 22;
  }
}

// y[j] = saturate_int<T>(x[j·stride]) for T = int32 / uint8, computed in float: NaN → 0, the ends of
// T's range beyond it, else truncated. Four (int32) or sixteen (uint8) at a time with SSE2.
template <class T>
static void f32_to_int_row(const float* x, int64_t stride, T* y, int64_t n) {
  int64_t j = 0;
#if defined(__SSE2__)
  if (stride == 1 && std::is_same<T, int32_t>::value) {
    const __m128 big = _mm_set1_ps(2147483648.f);
    const __m128i imax = _mm_set1_epi32(std::numeric_limits<int32_t>::max());
    for (; j + 4 <= n; j += 4) {
      const __m128 v = _mm_loadu_ps(x + j);
      __m128i t = _mm_cvttps_epi32(v);  // out of range and NaN: INT32_MIN
      const __m128i over = _mm_castps_si128(_mm_cmpge_ps(v, big));
      t = _mm_or_si128(_mm_andnot_si128(over, t), _mm_and_si128(over, imax));
      t = _mm_andnot_si128(_mm_castps_si128(_mm_cmpunord_ps(v, v)), t);
      _mm_storeu_si128((__m128i*)(y + j), t);
    }
  } else if (stride == 1) {  // uint8: clamp in float (maxps gives 0 for NaN), then pack
    const __m128 zero = _mm_setzero_ps(), top = _mm_set1_ps(255.f);
    for (; j + 16 <= n; j += 16) {
      __m128i q[4];
      for (int k = 0; k < 4; k++) q[k] = _mm_cvttps_epi32(_mm_min_ps(_mm_max_ps(_mm_loadu_ps(x + j + 4 * k), zero), top));
      const __m128i w = _mm_packus_epi16(_mm_packs_epi32(q[0], q[1]), _mm_packs_epi32(q[2], q[3]));
      _mm_storeu_si128((__m128i*)(y + j), w);
    }
  }
#endif
  for (; j < n; j++) {
    const float v = x[j * stride];
    const float lo = (float)std::numeric_limits<T>::lowest(), hi = std::is_same<T, int32_t>::value ? 2147483648.f : 255.f;
    y[j] = v != v ? T(0) : v <= lo ? std::numeric_limits<T>::lowest() : v >= hi ? std::numeric_limits<T>::max() : (T)v;
  }
}

// n elements from src (dtype sd, `stride` elements apart) to elements i0… of dst (dtype dd), for the pairs
// whose typed conversion gives exactly store_from_double(load_as_double(x)), bits and NaNs included:
// float32 ↔ float64 (subnormals kept under the pool's FTZ/DAZ, tensor.h's *_exact), and float32 /
// float64 to float16 / bfloat16 (through float, as store_from_double does; float_to_half makes every NaN
// its canonical one and float_to_bf16 sets the quiet bit, so a float32 NaN's trip through double
// changes nothing). Per element through the dtype switch a 4096² cast took 27–40 ms; typed, 2.5–12 ms
// (float16: its scalar rounding). One path for contiguous and strided sources, so a view converts as
// its copy would. False for the other pairs (the generic loop).
static bool convert_row(const char* src, int64_t stride, DType sd, char* dst, DType dd, int64_t i0, int64_t n) {
  auto run = [&](auto* s, auto* d, auto f) {
    if (stride == 1)
      for (int64_t j = 0; j < n; j++) d[i0 + j] = f(s[j]);
    else
      for (int64_t j = 0; j < n; j++) d[i0 + j] = f(s[j * stride]);
    return true;
  };
  const float* f32 = (const float*)src;
  const double* f64 = (const double*)src;
  if (sd == DType::f32 && dd == DType::f64) return run(f32, (double*)dst, float_to_double_exact);
  if (sd == DType::f64 && dd == DType::f32) return run(f64, (float*)dst, double_to_float_exact);
  if (sd == DType::f32 && dd == DType::bf16 && stride == 1) {
    f32_rows().f32_to_bf16(f32, (uint16_t*)dst + i0, n);  // float_to_bf16 in vectors (2048 × 1024: 0.30 → 0.08 ms)
    return true;
  }
  if (sd == DType::f32 && dd == DType::bf16) return run(f32, (uint16_t*)dst, [](float x) { return float_to_bf16(x); });
  if (sd == DType::f32 && dd == DType::f16 && stride == 1) {
    // The row kernels' vcvtps2ph (its rounding, overflow and half subnormals are float_to_half's, FTZ
    // and DAZ notwithstanding), a NaN made the canonical 0x7e00 in the same pass (float_to_half's and
    // the devices' NaN; vcvtps2ph keeps the payload). 4096²: 12.6 → 2.5 → 1.7 ms; 2048²: 1.2 → 0.22 ms (torch 0.42).
    f32_rows().f32_to_f16(f32, (uint16_t*)dst + i0, n);
    return true;
  }
  if (sd == DType::f32 && dd == DType::f16) return run(f32, (uint16_t*)dst, [](float x) { return float_to_half(x); });
  if (sd == DType::f64 && dd == DType::bf16) return run(f64, (uint16_t*)dst, [](double x) { return float_to_bf16(double_to_float_exact(x)); });
  if (sd == DType::f64 && dd == DType::f16) return run(f64, (uint16_t*)dst, [](double x) { return float_to_half((float)x); });
  // Widening 16-bit floats: exact, except that the trip through double makes a NaN quiet (x86's rule,
  // which cuda/dtype.cuh's widen / narrow reproduce). bfloat16: shifted, the quiet bit set with integer
  // operations; float16: the row kernel (F16C, which keeps float16 subnormals under DAZ and quiets NaNs
  // itself, and half_to_float, which does the same), so no FTZ/DAZ flushes a subnormal as the generic
  // loop's cvtss2sd did in the pool. Integers: int32 →
  // float32 rounds once either way; float32 → an integer saturates, NaN → 0, else truncates, as
  // saturate_int does on the widened value. Per element through the dtype switch these took 7.7–17 ms
  // for 2048², 25–60× torch's x.to().
  if (sd == DType::bf16 && dd == DType::f32) {
    bf16_to_f32_quiet((const uint16_t*)src, stride, (uint32_t*)dst + i0, n);
    return true;
  }
  if (sd == DType::f16 && dd == DType::f32) {
    f32_rows().f16_to_f32((const uint16_t*)src, stride, (float*)dst + i0, n);
    return true;
  }
  if (sd == DType::i32 && dd == DType::f32) return run((const int32_t*)src, (float*)dst, [](int32_t x) { return (float)x; });
  if (sd == DType::u8 && dd == DType::f32) return run((const uint8_t*)src, (float*)dst, [](uint8_t x) { return (float)x; });
  if (sd == DType::f32 && dd == DType::i32) {
    f32_to_int_row(f32, stride, (int32_t*)dst + i0, n);
    return true;
  }
  if (sd == DType::f32 && dd == DType::u8) {
    f32_to_int_row(f32, stride, (uint8_t*)dst + i0, n);
    return true;
  }
  return false;
}

// n elements of es bytes from src (si elements apart) to dst (di apart): one memcpy when both are
// contiguous, else a typed loop (a memcpy call per element, es being known only at run time, made a
// concat along the last axis 20× slower than torch's).
static void copy_run(char* dst, int64_t di, const char* src, int64_t si, size_t es, int64_t n) {
  if (di == 1 && si == 1) {
    std::memcpy(dst, src, (size_t)n * es);
  } else if (es == 4) {
    for (int64_t j = 0; j < n; j++) ((uint32_t*)dst)[j * di] = ((const uint32_t*)src)[j * si];
  } else if (es == 8) {
    for (int64_t j = 0; j < n; j++) ((uint64_t*)dst)[j * di] = ((const uint64_t*)src)[j * si];
  } else if (es == 2) {
    for (int64_t j = 0; j < n; j++) ((uint16_t*)dst)[j * di] = ((const uint16_t*)src)[j * si];
  } else {
    for (int64_t j = 0; j < n; j++) dst[j * di] = src[j * si];  // 1-byte elements (every dtype's size is 1, 2, 4 or 8)
  }
}

void copy_to_contiguous(const Tensor& src, Tensor& dst) {
  const int64_t n = src.numel();
  if (n == 0) return;
  const int64_t nd = src.ndim();
  const size_t es = dtype_size(src.dtype);
  const char* sp = (const char*)src.raw();
  char* dp = (char*)dst.raw();
  if (src.is_contiguous() && src.dtype == dst.dtype) {
    parallel_for(n * (int64_t)es, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(dp + b, sp + b, e - b); });
    return;
  }
  // Walk the output in order; rows of the innermost dimension are the unit of work.
  const int64_t inner = nd ? src.shape[nd - 1] : 1;
  const int64_t istride = nd ? src.strides[nd - 1] : 1;
  const int64_t rows = n / inner;
  const bool same = src.dtype == dst.dtype;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t r0, int64_t r1) {
    // The source index of row r0 once (divisions), then counted up row by row: with short rows (a
    // permute that keeps 64-float runs) the divisions cost as much as the copy.
    std::vector<int64_t> idx((size_t)std::max<int64_t>(nd - 1, 1), 0);
    int64_t off = 0;
    for (int64_t d = nd - 2, rem = r0; d >= 0; d--) {
      idx[(size_t)d] = rem % src.shape[d];
      rem /= src.shape[d];
      off += idx[(size_t)d] * src.strides[d];
    }
    for (int64_t r = r0; r < r1; r++) {
      if (r > r0)
        for (int64_t d = nd - 2; d >= 0; d--) {
          off += src.strides[d];
          if (++idx[(size_t)d] < src.shape[d]) break;
          off -= src.shape[d] * src.strides[d];
          idx[(size_t)d] = 0;
        }
      if (same) {
        copy_run(dp + r * inner * es, 1, sp + off * es, istride, es, inner);
      } else if (!convert_row(sp + off * es, istride, src.dtype, dp, dst.dtype, r * inner, inner)) {
        for (int64_t j = 0; j < inner; j++)
          store_from_double(dp, dst.dtype, r * inner + j, load_as_double(sp, src.dtype, off + j * istride));
      }
    }
  });
}

bool broadcast_shapes(const Shape& a, const Shape& b, Shape& out) {
  size_t n = std::max(a.size(), b.size());
  out.assign(n, 1);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    out[i] = da == 1 ? db : da;
  }
  return true;
}

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  size_t n = shape.size(), k = t.shape.size();
  Shape s(n, 0);
  for (size_t i = 0; i < k; i++) {
    size_t o = n - k + i;
    s[o] = t.shape[i] == 1 && shape[o] != 1 ? 0 : t.strides[i];
  }
  return s;
}

void for_each_row(const Shape& shape, const std::vector<Shape>& strides,
                  const std::function<void(int64_t, const int64_t*)>& fn, int64_t grain_rows) {
  const int64_t nd = (int64_t)shape.size();
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n == 0) return;
  const int64_t inner = nd ? shape[nd - 1] : 1;
  const int64_t rows = n / inner;
  const size_t k = strides.size();
  if (grain_rows <= 0) grain_rows = std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1));
  parallel_for(rows, grain_rows, [&](int64_t r0, int64_t r1) {
    int64_t offs[8] = {0};
    for (int64_t r = r0; r < r1; r++) {
      for (size_t q = 0; q < k; q++) offs[q] = 0;
      int64_t rem = r;
      for (int64_t d = nd - 2; d >= 0; d--) {
        int64_t idx = rem % shape[d];
        rem /= shape[d];
        for (size_t q = 0; q < k; q++) offs[q] += idx * strides[q][d];
      }
      fn(r, offs);
    }
  });
}

static void require_host(const Tensor& t, const char* fn);

void copy_into(const Tensor& src, Tensor& dst) {
  require_host(src, "copy_into");
  require_host(dst, "copy_into");
  if (dst.is_contiguous() && src.shape == dst.shape) {
    copy_to_contiguous(src, dst);
    return;
  }
  Shape ss = broadcast_strides(src, dst.shape);
  const int64_t nd = dst.ndim();
  const int64_t inner = nd ? dst.shape[nd - 1] : 1;
  const int64_t si = nd ? ss[nd - 1] : 0, di = nd ? dst.strides[nd - 1] : 0;
  const char* sp = (const char*)src.raw();
  char* dp = (char*)dst.raw();
  const size_t es = dtype_size(src.dtype);
  const bool same = src.dtype == dst.dtype;
  for_each_row(dst.shape, {dst.strides, ss}, [&](int64_t, const int64_t* o) {
    const char* q = sp + o[1] * es;
    if (same) {
      copy_run(dp + o[0] * es, di, q, si, es, inner);
    } else if (di != 1 || !convert_row(q, si, src.dtype, dp, dst.dtype, o[0], inner)) {
      for (int64_t j = 0; j < inner; j++)
        store_from_double(dp, dst.dtype, o[0] + j * di, load_as_double(sp, src.dtype, o[1] + j * si));
    }
  });
}

// Both go through the elementwise module's tiled converter: a transposed input is copied in 64×64
// tiles, several times faster than walking it element by element.
// Host memory only: a device tensor reaching a CPU copy is a missing dispatch, not something to read.
static void require_host(const Tensor& t, const char* fn) {
  if (t.device().type != DeviceType::cpu)
    throw std::logic_error(std::string("structura: internal error: ") + fn + " on a tensor on " + t.device().str());
}

Tensor contiguous(const Tensor& t) {
  if (t.device().type != DeviceType::cpu) {  // on a device: the strided gather of cuda/copy.cu
    if (t.is_contiguous()) return t;
    Tensor out = Tensor::empty(t.dtype, t.shape, t.device());
    if (out.numel() > 0) device_copy(t, t.strides, out, "contiguous");
    return out;
  }
  return cpu_convert(t, t.dtype);
}

Tensor cast_contiguous(const Tensor& t, DType dt) {
  require_host(t, "cast_contiguous");
  return cpu_convert(t, dt);
}

}  // namespace structura
