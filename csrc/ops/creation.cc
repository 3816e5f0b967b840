// ops/creation.cc — making tensors (from arrays, empty, full, arange, random), views with bounds
// checks, reading back, dispose, storage versions (version(): bumped by every in-place write, see
// Storage::version), contiguous/cast/copyInto/concat, and to() between devices.
// On a device (cuda, cuda-emu) the values are made on the host by the same code, then copied over, so
// every device holds the same numbers (random() is counter-based: the same draws everywhere).
// contiguous/cast/copyInto/concat of device tensors run cuda/copy.cu on their device (the CPU's
// conversions bit for bit); tensors on different devices are refused with a TypeError.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/elementwise.h"
#include "device.h"
#include "ops/ops.h"
#include "tensor.h"
#include "threadpool.h"

namespace structura {

namespace {

// The expected TypedArray for each dtype (float16/bfloat16 also accept Float32Array values).
napi_typedarray_type array_type(DType dt) {
  switch (dt) {
    case DType::f32: return napi_float32_array;
    case DType::f64: return napi_float64_array;
    case DType::f16:
    case DType::bf16:
    case DType::u16: return napi_uint16_array;
    case DType::i32: return napi_int32_array;
    case DType::u8: return napi_uint8_array;
  }
  return napi_uint8_array;
}

const char* array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    default: return "a BigInt array";
  }
}

// The random stream (random(), rand, randn): uniform draw i of a seed is ((h >> 11) + 0.5)·2^−53 with
// h = splitmix64(splitmix64(seed) ^ i·0xd1b54a32d192ed03), in (0, 1) (never 0, so log() in Box–Muller
// stays finite); normal draw i is √(−2 ln u_{2i})·cos(2π u_{2i+1}). Counter-based, so any thread count
// and every device holds the same numbers; f32_rows().random computes it (elementwise_rows.inc).

Napi::Value FromArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DType dt = get_dtype(info, 0, "dtype");
  Shape shape = get_shape(info, 1, "shape");
  if (info.Length() < 3 || !info[2].IsTypedArray())
    throw_type(env, std::string("structura.tensor: 'data' must be a TypedArray (") +
                        array_name(array_type(dt)) + " for " + dtype_name(dt) + ")");
  Device dev = get_device(info, 3, "device");
  auto ta = info[2].As<Napi::TypedArray>();
  napi_typedarray_type have = ta.TypedArrayType();
  bool values_f32 = (dt == DType::f16 || dt == DType::bf16) && have == napi_float32_array;
  if (have != array_type(dt) && !values_f32)
    throw_type(env, std::string("structura.tensor: 'data' is a ") + array_name(have) + " but dtype " +
                        dtype_name(dt) + " needs a " + array_name(array_type(dt)));
  Tensor t = Tensor::empty(dt, shape, Device{});
  int64_t n = t.numel();
  if ((int64_t)ta.ElementLength() != n)
    throw_range(env, "structura.tensor: 'data' has " + std::to_string(ta.ElementLength()) + " elements but shape " +
                         shape_str(shape) + " needs " + std::to_string(n));
  const char* src = (const char*)ta.ArrayBuffer().Data() + ta.ByteOffset();
  if (values_f32) {
    const float* f = (const float*)src;
    uint16_t* d = t.data<uint16_t>();
    if (dt == DType::f16) for (int64_t i = 0; i < n; i++) d[i] = float_to_half(f[i]);
    else for (int64_t i = 0; i < n; i++) d[i] = float_to_bf16(f[i]);
  } else if (n) {
    std::memcpy(t.raw(), src, (size_t)n * dtype_size(dt));
  }
  return wrap(env, to_device(t, dev));
}

Napi::Value Empty(const Napi::CallbackInfo& info) {
  DType dt = get_dtype(info, 0, "dtype");
  Shape shape = get_shape(info, 1, "shape");
  Device dev = get_device(info, 2, "device");
  return wrap(info.Env(), Tensor::empty(dt, shape, dev));
}

void fill(Tensor& t, double v) {
  int64_t n = t.numel();
  if (n == 0) return;
  // One element's bytes, replicated by a typed loop (vector stores; a memcpy call per element of a
  // size known only at run time made zeros([2048, 2048]) 3.5 ms, torch 0.09), or memset when they
  // are all zero bytes.
  char one[8] = {0};
  store_from_double(one, t.dtype, 0, v);
  const size_t es = dtype_size(t.dtype);
  char* p = (char*)t.raw();
  bool zero = true;
  for (size_t k = 0; k < es; k++) zero = zero && one[k] == 0;
  auto rep = [&](auto* q, int64_t b, int64_t e) {
    using T = std::remove_pointer_t<decltype(q)>;
    T x;
    std::memcpy(&x, one, sizeof x);
    for (int64_t i = b; i < e; i++) q[i] = x;
  };
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    if (zero) std::memset(p + b * es, 0, (size_t)(e - b) * es);
    else if (es == 4) rep((uint32_t*)p, b, e);
    else if (es == 2) rep((uint16_t*)p, b, e);
    else if (es == 8) rep((uint64_t*)p, b, e);
    else rep((uint8_t*)p, b, e);
  });
}

Napi::Value Full(const Napi::CallbackInfo& info) {
  DType dt = get_dtype(info, 0, "dtype");
  Shape shape = get_shape(info, 1, "shape");
  double v = get_number(info, 2, "value");
  Device dev = get_device(info, 3, "device");
  if (dev.type != DeviceType::cpu) {
    // Made on the device from one element, broadcast by cuda/copy.cu: no host buffer of the whole
    // size (whose out-of-memory error named the CPU) and no transfer.
    Tensor one = Tensor::empty(dt, {}, Device{});
    fill(one, v);
    const Tensor src = to_device(one, dev);
    Tensor out = Tensor::empty(dt, shape, dev);
    device_copy(src, Shape(shape.size(), 0), out, "full");
    return wrap(info.Env(), std::move(out));
  }
  Tensor t = Tensor::empty(dt, shape, Device{});
  fill(t, v);
  return wrap(info.Env(), std::move(t));
}

Napi::Value Arange(const Napi::CallbackInfo& info) {
  DType dt = get_dtype(info, 0, "dtype");
  double start = get_number(info, 1, "start");
  double step = get_number(info, 2, "step");
  int64_t n = get_int(info, 3, "n", 0, kMaxNumel);
  Device dev = get_device(info, 4, "device");
  Tensor t = Tensor::empty(dt, {n}, Device{});
  void* p = t.raw();
  // start + i·step in double, then stored as the dtype; typed for the common dtypes (through
  // store_from_double's switch, element by element on one thread, arange(2^22) took 12 ms; torch 0.6).
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
    if (dt == DType::f32) {
      // Blocks of 1024: a plain (vectorized) conversion unless the block's values come near float32's
      // subnormals, which the pool's FTZ (setFlushDenormal) would flush (double_to_float_exact keeps them).
      for (int64_t c = b; c < e; c += 1024) {
        const int64_t ce = std::min<int64_t>(e, c + 1024);
        const double v0 = start + (double)c * step, v1 = start + (double)(ce - 1) * step;
        if ((v0 <= 0) != (v1 <= 0) || std::fabs(v0) < 0x1p-125 || std::fabs(v1) < 0x1p-125)
          for (int64_t i = c; i < ce; i++) ((float*)p)[i] = double_to_float_exact(start + (double)i * step);
        else
          for (int64_t i = c; i < ce; i++) ((float*)p)[i] = (float)(start + (double)i * step);
      }
    }
    else if (dt == DType::f64)
      for (int64_t i = b; i < e; i++) ((double*)p)[i] = start + (double)i * step;
    else if (dt == DType::i32 && start == std::floor(start) && step == std::floor(step) && std::fabs(start) < 0x1p31 &&
             std::fabs(start + (double)(n - 1) * step) < 0x1p31) {
      // integer arithmetic, every value being an int32 (the first and the last are; otherwise the
      // generic loop below saturates, as store_from_double does)
      const uint32_t s0 = (uint32_t)(int64_t)start, st = (uint32_t)(int64_t)step;
      for (int64_t i = b; i < e; i++) ((int32_t*)p)[i] = (int32_t)(s0 + (uint32_t)i * st);
    }
    else
      for (int64_t i = b; i < e; i++) store_from_double(p, dt, i, start + (double)i * step);
  });
  return wrap(info.Env(), to_device(t, dev));
}

Napi::Value Random(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string kind = get_string(info, 0, "kind");
  if (kind != "normal" && kind != "uniform")
    throw_range(env, "structura.random: 'kind' must be 'normal' or 'uniform', got '" + kind + "'");
  DType dt = get_dtype(info, 1, "dtype");
  if (!is_floating(dt)) throw_type(env, std::string("structura.random: dtype must be floating, got ") + dtype_name(dt));
  Shape shape = get_shape(info, 2, "shape");
  double seedd = get_number(info, 3, "seed");
  if (!std::isfinite(seedd)) throw_range(env, "structura.random: 'seed' must be a finite number");
  uint64_t seed = (uint64_t)(int64_t)seedd;
  Device dev = get_device(info, 4, "device");
  Tensor t = Tensor::empty(dt, shape, Device{});
  int64_t n = t.numel();
  void* p = t.raw();
  const bool normal = kind == "normal";
  // The draws of uniform01 (and Box–Muller on them), computed by the row kernel a block at a time.
  const uint64_t key = splitmix64(seed);
  const F32Rows& K = f32_rows();
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    double buf[1024];
    for (int64_t c = b; c < e; c += 1024) {
      const int64_t m = std::min<int64_t>(1024, e - c);
      K.random(key, (uint64_t)c, m, normal, buf);
      if (dt == DType::f64) std::memcpy((double*)p + c, buf, (size_t)m * 8);
      else if (dt == DType::f32) for (int64_t k = 0; k < m; k++) ((float*)p)[c + k] = (float)buf[k];
      else for (int64_t k = 0; k < m; k++) store_from_double(p, dt, c + k, buf[k]);
    }
  });
  return wrap(env, to_device(t, dev));
}

// The checks and the view of base with this layout (both entry points below).
Napi::Value make_view(Napi::Env env, const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  if (strides.size() != shape.size())
    throw_range(env, "structura.view: 'strides' " + shape_str(strides) + " must have one entry per dimension of " +
                         shape_str(shape));
  const int64_t capacity = (int64_t)(base.storage->bytes / dtype_size(base.dtype));
  bool empty = false;
  for (int64_t d : shape) empty = empty || d == 0;
  if (!empty) {
    // The last element addressed, summed without overflow: (shape − 1)·stride can pass 2^63 (2^40 · 2^40),
    // so each term is compared with the room left before it is added.
    int64_t last = offset;
    bool past = offset >= capacity;
    for (size_t i = 0; i < shape.size(); i++)
      if (strides[i] > kMaxNumel)
        throw_range(env, "structura.view: 'strides[" + std::to_string(i) + "]' is " + std::to_string(strides[i]) +
                             ", more than " + std::to_string(kMaxNumel) + " (only an empty tensor's may be)");
    for (size_t i = 0; i < shape.size() && !past; i++) {
      if (shape[i] == 1 || strides[i] == 0) continue;
      if (shape[i] - 1 > (capacity - 1 - last) / strides[i]) past = true;
      else last += (shape[i] - 1) * strides[i];
    }
    if (past)
      throw_range(env, "structura.view: shape " + shape_str(shape) + ", strides " + shape_str(strides) +
                           " and offset " + std::to_string(offset) + " reach past the end of a storage of " +
                           std::to_string(capacity) + " elements");
  }
  Tensor t;
  t.storage = base.storage;
  t.dtype = base.dtype;
  t.shape = shape;
  t.strides = strides;
  t.offset = offset;
  return wrap(env, std::move(t));
}

Napi::Value View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // A copy, not a reference: reading the shape array can run JS (a getter) that disposes the handle.
  Tensor base = unwrap(info[0], "tensor");
  Shape shape = get_shape(info, 1, "shape");
  // An empty tensor's contiguous strides may pass 2^40 (zeros([0, 2^30, 2^20]): 2^50) and are never
  // used to address anything: up to 2^53 (every integer a JS number holds) then.
  Shape strides = get_int_array(info, 2, "strides", 0, (int64_t)1 << 53);
  int64_t offset = get_int(info, 3, "offset", 0, kMaxNumel);
  return make_view(env, base, shape, strides, offset);
}

// viewPacked(tensor, layout Float64Array, ndim, offset): view() with the shape and the strides in one
// typed array, [shape[0..ndim), strides[0..ndim)], which lib/tensor.ts reuses for every view: reading
// two JS arrays element by element through napi was a third of a view's cost.
Napi::Value ViewPacked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor base = unwrap(info[0], "tensor");
  const int64_t nd = get_int(info, 2, "ndim", 0, 64);
  if (info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw_type(env, "structura.viewPacked: argument 'layout' must be a Float64Array");
  auto layout = info[1].As<Napi::Float64Array>();
  if ((int64_t)layout.ElementLength() < 2 * nd)
    throw_range(env, "structura.viewPacked: 'layout' has " + std::to_string(layout.ElementLength()) +
                         " entries, fewer than 2 · ndim = " + std::to_string(2 * nd));
  const int64_t offset = get_int(info, 3, "offset", 0, kMaxNumel);
  const double* v = layout.Data();
  Shape shape((size_t)nd), strides((size_t)nd);
  for (int64_t i = 0; i < 2 * nd; i++) {
    const double d = v[i];
    const bool is_shape = i < nd;
    const double hi = is_shape ? (double)kMaxNumel : 0x1p53;
    if (!(d >= 0 && d <= hi) || d != std::floor(d))
      throw_range(env, std::string("structura.viewPacked: ") + (is_shape ? "shape[" : "strides[") +
                           std::to_string(is_shape ? i : i - nd) + "] must be an integer in [0, " +
                           (is_shape ? std::to_string(kMaxNumel) : std::string("2^53")) + "], got " + std::to_string(d));
    (is_shape ? shape[i] : strides[i - nd]) = (int64_t)d;
  }
  if (too_many_elements(shape)) throw_range(env, "structura.viewPacked: shape " + shape_str(shape) + " has too many elements");
  return make_view(env, base, shape, strides, offset);
}

// alias(tensor): a second handle on the same storage and layout (what the graph saves for backward),
// without reading a shape back from JS.
Napi::Value Alias(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unwrap(info[0], "tensor"));
}

Napi::Value ReadImpl(const Napi::CallbackInfo& info, bool raw) {
  Napi::Env env = info.Env();
  Tensor t = unwrap(info[0], "tensor");
  // From a device: wait for the work queued on it, then copy the values over.
  if (t.device().type != DeviceType::cpu) t = to_device(t, Device{});
  int64_t n = t.numel();
  bool widen = !raw && (t.dtype == DType::f16 || t.dtype == DType::bf16);
  DType out_dt = widen ? DType::f32 : t.dtype;
  size_t es = dtype_size(out_dt);
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, (size_t)n * es);
  if (n > 0) {
    Tensor c = cast_contiguous(t, out_dt);
    std::memcpy(buf.Data(), c.raw(), (size_t)n * es);
  }
  napi_typedarray_type at = widen ? napi_float32_array : array_type(out_dt);
  napi_value arr;
  napi_create_typedarray(env, at, (size_t)n, buf, 0, &arr);
  return Napi::Value(env, arr);
}

// item(tensor): the value of a one-element tensor as a number, without the typed array read() makes.
Napi::Value Item(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  if (t.numel() != 1)
    throw_range(info.Env(), "structura.item: only a one-element tensor has an item, this one has shape " + shape_str(t.shape));
  if (t.device().type != DeviceType::cpu) t = to_device(t, Device{});  // waits for the device's queued work
  return Napi::Number::New(info.Env(), load_as_double(t.raw(), t.dtype, 0));
}

Napi::Value Read(const Napi::CallbackInfo& info) { return ReadImpl(info, false); }
Napi::Value ReadRaw(const Napi::CallbackInfo& info) { return ReadImpl(info, true); }

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) throw_type(info.Env(), "structura.dispose: expects a tensor handle");
  return Napi::Boolean::New(info.Env(), release(info[0]));
}

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !is_tensor_handle(info[0])) throw_type(info.Env(), "structura.isDisposed: expects a tensor handle");
  try {
    unwrap(info[0], "tensor");
    return Napi::Boolean::New(info.Env(), false);
  } catch (const Napi::Error&) {
    return Napi::Boolean::New(info.Env(), true);
  }
}

Napi::Value StorageId(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  return Napi::Number::New(info.Env(), (double)(uintptr_t)t.storage.get());
}

// The write count of t's storage (Storage::version).
Napi::Value Version(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  return Napi::Number::New(info.Env(), (double)t.storage->version);
}

Napi::Value Contiguous(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  if (t.device().type != DeviceType::cpu) {
    if (t.is_contiguous()) return wrap(info.Env(), t);
    Tensor out = Tensor::empty(t.dtype, t.shape, t.device());
    device_copy(t, t.strides, out, "contiguous");  // the strided gather of cuda/copy.cu
    return wrap(info.Env(), std::move(out));
  }
  // Already contiguous: a new handle on the same storage.
  return wrap(info.Env(), contiguous(t));
}

Napi::Value Cast(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  DType dt = get_dtype(info, 1, "dtype");
  if (t.device().type != DeviceType::cpu) {
    Tensor out = Tensor::empty(dt, t.shape, t.device());  // a copy, as on the CPU
    if (dt == t.dtype && t.is_contiguous())
      device_copy_d2d(t.device(), out.raw(), t.raw(), (size_t)t.numel() * dtype_size(dt), "cast");
    else
      device_copy(t, t.strides, out, "cast");  // cuda/copy.cu: the CPU's conversion, bit for bit
    return wrap(info.Env(), std::move(out));
  }
  // Always a new storage, even for the same dtype: cast() is documented to return a copy. A strided
  // copy of the same dtype goes through cpu_convert's 64×64 tiles: autograd makes a leaf's gradient
  // this way, and the transposed gradient of a Linear's weight (W.T in the forward) walked element by
  // element was 13% of an MLP training step. (Conversions keep copy_into's rounding, NaN payloads
  // included, which the devices' cast reproduces bit for bit.)
  if (dt == t.dtype && !t.is_contiguous()) return wrap(info.Env(), cpu_convert(t, dt));
  Tensor out = Tensor::empty(dt, t.shape, t.device());
  copy_into(t, out);
  return wrap(info.Env(), std::move(out));
}

Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tensor dst = unwrap(info[0], "dst");
  Tensor src = unwrap(info[1], "src");
  require_same_device(env, dst, "dst", src, "src", "copyInto");
  // As PyTorch's copy_: a destination whose elements share memory (an expand()ed view) would be written
  // several times at once — the last write winning here, an unordered race on a GPU
  if (dst.numel() > 0)
    for (int64_t d = 0; d < dst.ndim(); d++)
      if (dst.shape[d] > 1 && dst.strides[d] == 0)
        throw_range(env, "structura.copyInto: 'dst' " + shape_str(dst.shape) + " (strides " + shape_str(dst.strides) +
                             ") has elements that share one memory location (an expanded view); clone() it first");
  // written in place (Storage::version), after the checks below: a refused call changes nothing
  if (dst.device().type != DeviceType::cpu && dst.dtype == src.dtype && dst.shape == src.shape &&
      dst.is_contiguous() && src.is_contiguous()) {
    dst.storage->version++;
    // memmove semantics are not promised by a device copy: equal ranges are a no-op, others overlap
    // only when they share storage, which then goes through a temporary.
    if (dst.raw() == src.raw()) return env.Undefined();
    const size_t nb = (size_t)dst.numel() * dtype_size(dst.dtype);
    if (src.storage == dst.storage) {
      Tensor tmp = Tensor::empty(src.dtype, src.shape, src.device());
      device_copy_d2d(src.device(), tmp.raw(), src.raw(), nb, "copyInto");
      device_copy_d2d(dst.device(), dst.raw(), tmp.raw(), nb, "copyInto");
    } else {
      device_copy_d2d(dst.device(), dst.raw(), src.raw(), nb, "copyInto");
    }
    return env.Undefined();
  }
  Shape b;
  if (src.ndim() > dst.ndim() || !broadcast_shapes(src.shape, dst.shape, b) || b != dst.shape)
    throw_range(env, "structura.copyInto: 'src' of shape " + shape_str(src.shape) + " does not broadcast to 'dst' " +
                         shape_str(dst.shape));
  dst.storage->version++;
  if (dst.device().type != DeviceType::cpu) {
    // Any strides, broadcasting and casting: cuda/copy.cu. Overlapping storage goes through a
    // contiguous copy of src first, as on the CPU.
    Tensor from = src;
    if (src.storage == dst.storage) {
      from = Tensor::empty(src.dtype, src.shape, src.device());
      device_copy(src, src.strides, from, "copyInto");
    }
    device_copy(from, broadcast_strides(from, dst.shape), dst, "copyInto");
    return env.Undefined();
  }
  // Overlapping storage (e.g. x.copyInto(x.T)) would read values already overwritten: copy src first.
  if (src.storage == dst.storage) {
    Tensor tmp = Tensor::empty(src.dtype, src.shape, src.device());
    copy_to_contiguous(src, tmp);
    copy_into(tmp, dst);
  } else {
    copy_into(src, dst);
  }
  return env.Undefined();
}

Napi::Value Concat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw_type(env, "structura.concat: 'tensors' must be an array of tensors");
  auto arr = info[0].As<Napi::Array>();
  uint32_t k = arr.Length();
  if (k == 0) throw_range(env, "structura.concat: 'tensors' is empty");
  std::vector<Tensor> ts;
  for (uint32_t i = 0; i < k; i++) ts.push_back(unwrap(arr.Get(i), "tensors[i]"));
  const Tensor& t0 = ts[0];
  int64_t nd = t0.ndim();
  if (nd == 0) throw_range(env, "structura.concat: cannot concatenate 0-d tensors");
  int64_t axis = get_int(info, 1, "axis", -nd, nd - 1);
  if (axis < 0) axis += nd;
  Shape out_shape = t0.shape;
  out_shape[axis] = 0;
  for (uint32_t i = 0; i < k; i++) {
    const Tensor& t = ts[i];
    if (t.device() != t0.device())
      throw_type(env, "structura.concat: tensors[" + std::to_string(i) + "] is on " + t.device().str() +
                          " but tensors[0] is on " + t0.device().str() + "; move one with .to()");
    if (t.dtype != t0.dtype)
      throw_type(env, std::string("structura.concat: tensors[") + std::to_string(i) + "] is " + dtype_name(t.dtype) +
                          " but tensors[0] is " + dtype_name(t0.dtype));
    bool ok = t.ndim() == nd;
    for (int64_t d = 0; ok && d < nd; d++) ok = d == axis || t.shape[d] == t0.shape[d];
    if (!ok)
      throw_range(env, "structura.concat: tensors[" + std::to_string(i) + "] has shape " + shape_str(t.shape) +
                           ", which does not match " + shape_str(t0.shape) + " outside axis " + std::to_string(axis));
    out_shape[axis] += t.shape[axis];
  }
  Tensor out = Tensor::empty(t0.dtype, out_shape, t0.device());
  int64_t at = 0;
  for (auto& t : ts) {
    Tensor dst = out;
    dst.shape[axis] = t.shape[axis];
    dst.offset = at * out.strides[axis];
    if (dst.device().type != DeviceType::cpu) device_copy(t, t.strides, dst, "concat");
    else copy_into(t, dst);
    at += t.shape[axis];
  }
  return wrap(env, std::move(out));
}

// to(h, device, index): a copy on another device (the same tensor, as a new handle, on its own device).
Napi::Value To(const Napi::CallbackInfo& info) {
  Tensor t = unwrap(info[0], "tensor");
  Device dev = get_device(info, 1, "device");
  return wrap(info.Env(), to_device(t, dev));
}

}  // namespace

void register_creation(Napi::Env env, Napi::Object exports) {
  exports.Set("to", Napi::Function::New(env, To, "to"));
  exports.Set("fromArray", Napi::Function::New(env, FromArray, "fromArray"));
  exports.Set("empty", Napi::Function::New(env, Empty, "empty"));
  exports.Set("full", Napi::Function::New(env, Full, "full"));
  exports.Set("arange", Napi::Function::New(env, Arange, "arange"));
  exports.Set("random", Napi::Function::New(env, Random, "random"));
  exports.Set("view", Napi::Function::New(env, View, "view"));
  exports.Set("viewPacked", Napi::Function::New(env, ViewPacked, "viewPacked"));
  exports.Set("alias", Napi::Function::New(env, Alias, "alias"));
  exports.Set("item", Napi::Function::New(env, Item, "item"));
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("readRaw", Napi::Function::New(env, ReadRaw, "readRaw"));
  exports.Set("dispose", Napi::Function::New(env, Dispose, "dispose"));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed, "isDisposed"));
  exports.Set("storageId", Napi::Function::New(env, StorageId, "storageId"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("contiguous", Napi::Function::New(env, Contiguous, "contiguous"));
  exports.Set("cast", Napi::Function::New(env, Cast, "cast"));
  exports.Set("copyInto", Napi::Function::New(env, CopyInto, "copyInto"));
  exports.Set("concat", Napi::Function::New(env, Concat, "concat"));
}

}  // namespace structura
