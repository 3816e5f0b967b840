// elementwise.cu — elementwise kernels on the GPU.
//   add_f32: out[i] = a[i] + b[i], contiguous float32, n elements (the backend() self-test).
//   binary:  out[S] = op(a, b), a and b broadcast (numpy rules) to S through their strides; ops add,
//            sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge; float32, float64, float16,
//            bfloat16, int32.
//   unary:   out = op(a; alpha, beta), a of any strides; the 26 ops of csrc/cpu/elementwise.h.
//   where:   out[S] = cond != 0 ? a : b, all three broadcast to S (any dtypes; a's bits copied).
//   dropout: out[i] = x[i]·(kept ? scale : 0), contiguous, the mask drawn from rand()'s counter-based
//            stream by element index (never stored; the backward draws it again).
// Results equal the CPU's bit for bit wherever both compute the same IEEE operations (+ − × ÷, sqrt,
// comparisons, max/min, the conversions); the transcendental functions (exp, log, tanh, erf, pow,
// sin, cos and the ops built on them) are CUDA's libdevice ones, within a few ulps of the CPU's.
// Versions: 1 (this one) — grid-stride loops; 16-byte loads and stores when every operand is
// contiguous and aligned, scalar tail; otherwise row-major index → offsets by division per collapsed
// dimension (≤ 8).
// Memory goes through gptr()/dev_cast() and launches through structura::launch (cuda/launch.cuh), so
// the same source runs checked under the CPU emulation (cuda/emu/).
#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

#include <string.h>

#include "dtype.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "splitmix.h"
#include "structura_cuda.h"

// ------------------------------------------------------------------------------------------------
// kernels (internal linkage: the nvcc and the emulated build of this file share one binary)

namespace {

__global__ void add_f32_vec4_kernel(structura_add_f32_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
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
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
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

// ------------------------------------------------------------------------------------------------
// broadcasting binary ops and unary ops (structura_binary_params / structura_unary_params)
//
// One kernel per storage dtype (the op is a runtime switch, uniform across the grid). Values are
// computed in the CPU's precision: float32 for float32/float16/bfloat16 (one rounding on store, with
// the CPU's conversions from dtype.cuh), double for float64, wrapping uint32 arithmetic for int32.
// Contiguous same-shape operands whose pointers are 16-byte aligned take 16-byte vector loads and
// stores; everything else walks the row-major index through the (≤ 8) collapsed dimensions.

namespace {


// PyTorch's maximum/minimum (the CPU's vmax/vmin): a NaN in a wins, then one in b.
template <class C> __device__ __forceinline__ C nan_max(C a, C b) { return a != a ? a : (a > b ? a : b); }
template <class C> __device__ __forceinline__ C nan_min(C a, C b) { return a != a ? a : (a < b ? a : b); }

__device__ __forceinline__ float fpow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double fpow(double a, double b) { return pow(a, b); }

template <class C>
__device__ __forceinline__ C bin_float(int op, C a, C b) {
  switch (op) {
    case STRUCTURA_BIN_ADD: return a + b;
    case STRUCTURA_BIN_SUB: return a - b;
    case STRUCTURA_BIN_MUL: return a * b;
    case STRUCTURA_BIN_DIV: return a / b;
    case STRUCTURA_BIN_POW: return fpow(a, b);
    case STRUCTURA_BIN_MAXIMUM: return nan_max(a, b);
    case STRUCTURA_BIN_MINIMUM: return nan_min(a, b);
    case STRUCTURA_BIN_EQ: return a == b ? C(1) : C(0);
    case STRUCTURA_BIN_NE: return a != b ? C(1) : C(0);
    case STRUCTURA_BIN_LT: return a < b ? C(1) : C(0);
    case STRUCTURA_BIN_LE: return a <= b ? C(1) : C(0);
    case STRUCTURA_BIN_GT: return a > b ? C(1) : C(0);
    default: return a >= b ? C(1) : C(0);
  }
}
__device__ __forceinline__ int32_t bin_op(int op, int32_t a, int32_t b) {
  const uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
  switch (op) {
    case STRUCTURA_BIN_ADD: return (int32_t)(ua + ub);
    case STRUCTURA_BIN_SUB: return (int32_t)(ua - ub);
    case STRUCTURA_BIN_MUL: return (int32_t)(ua * ub);
    case STRUCTURA_BIN_MAXIMUM: return a > b ? a : b;
    case STRUCTURA_BIN_MINIMUM: return a < b ? a : b;
    case STRUCTURA_BIN_EQ: return a == b;
    case STRUCTURA_BIN_NE: return a != b;
    case STRUCTURA_BIN_LT: return a < b;
    case STRUCTURA_BIN_LE: return a <= b;
    case STRUCTURA_BIN_GT: return a > b;
    case STRUCTURA_BIN_GE: return a >= b;
    default: return 0;  // div and pow are refused for int32 by the caller
  }
}
__device__ __forceinline__ float bin_op(int op, float a, float b) { return bin_float(op, a, b); }
__device__ __forceinline__ double bin_op(int op, double a, double b) { return bin_float(op, a, b); }

// float32 compute (float32, float16, bfloat16): the CPU's row kernels op by op.
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float un_op(int op, float x, float alpha, float beta) {
  switch (op) {
    case STRUCTURA_UN_NEG: return -x;
    case STRUCTURA_UN_EXP: return expf(x);
    case STRUCTURA_UN_LOG: return logf(x);
    case STRUCTURA_UN_SQRT: return sqrtf(x);
    case STRUCTURA_UN_RSQRT: return 1.0f / sqrtf(x);
    case STRUCTURA_UN_ABS: return dt::f32(dt::bits(x) & 0x7fffffffu);
    case STRUCTURA_UN_RELU: return x > 0.0f || x != x ? x : 0.0f;
    case STRUCTURA_UN_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case STRUCTURA_UN_SILU: return x * sigmoidf_(x);
    case STRUCTURA_UN_TANH: return tanhf(x);
    case STRUCTURA_UN_SIGMOID: return sigmoidf_(x);
    case STRUCTURA_UN_SQUARE: return x * x;
    case STRUCTURA_UN_RECIPROCAL: return 1.0f / x;
    case STRUCTURA_UN_SIGN: return x != x ? x : (x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f));
    case STRUCTURA_UN_STEP: return x > 0.0f ? 1.0f : 0.0f;
    case STRUCTURA_UN_ERF: return erff(x);
    case STRUCTURA_UN_SIN: return sinf(x);
    case STRUCTURA_UN_COS: return cosf(x);
    case STRUCTURA_UN_GELU_GRAD: {
      const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
      const float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
      return cdf + x * pdf;
    }
    case STRUCTURA_UN_SILU_GRAD: {
      const float s = sigmoidf_(x);
      return s * (1.0f + x * (1.0f - s));
    }
    case STRUCTURA_UN_ADD_SCALAR: return x + alpha;
    case STRUCTURA_UN_MUL_SCALAR: return x * alpha;
    case STRUCTURA_UN_POW_SCALAR:
      // PyTorch's fast cases, as the CPU
      if (alpha == 2.0f) return x * x;
      if (alpha == 3.0f) return x * x * x;
      if (alpha == 0.5f) return sqrtf(x);
      if (alpha == -0.5f) return 1.0f / sqrtf(x);
      if (alpha == -1.0f) return 1.0f / x;
      if (alpha == -2.0f) return 1.0f / (x * x);
      return powf(x, alpha);
    case STRUCTURA_UN_RSUB_SCALAR: return alpha - x;
    case STRUCTURA_UN_RDIV_SCALAR: return alpha / x;
    default: return nan_min(nan_max(x, alpha), beta);  // clamp
  }
}

__device__ __forceinline__ double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }
__device__ __forceinline__ double erf_cdf_d(double x) { return 0.5 * (1.0 + erf(x * 0.70710678118654752440)); }
__device__ __forceinline__ double d_max(double a, double b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
__device__ __forceinline__ double d_min(double a, double b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }
__device__ __forceinline__ double un_op(int op, double x, double alpha, double beta) {
  switch (op) {
    case STRUCTURA_UN_NEG: return -x;
    case STRUCTURA_UN_EXP: return exp(x);
    case STRUCTURA_UN_LOG: return log(x);
    case STRUCTURA_UN_SQRT: return sqrt(x);
    case STRUCTURA_UN_RSQRT: return 1.0 / sqrt(x);
    case STRUCTURA_UN_ABS: return fabs(x);
    case STRUCTURA_UN_RELU: return x > 0 || x != x ? x : 0.0;
    case STRUCTURA_UN_GELU: return x * erf_cdf_d(x);
    case STRUCTURA_UN_SILU: return x * sigmoid_d(x);
    case STRUCTURA_UN_TANH: return tanh(x);
    case STRUCTURA_UN_SIGMOID: return sigmoid_d(x);
    case STRUCTURA_UN_SQUARE: return x * x;
    case STRUCTURA_UN_RECIPROCAL: return 1.0 / x;
    case STRUCTURA_UN_SIGN: return x != x ? x : (double)((x > 0) - (x < 0));
    case STRUCTURA_UN_STEP: return x > 0 ? 1.0 : 0.0;
    case STRUCTURA_UN_ERF: return erf(x);
    case STRUCTURA_UN_SIN: return sin(x);
    case STRUCTURA_UN_COS: return cos(x);
    case STRUCTURA_UN_GELU_GRAD: return erf_cdf_d(x) + x * exp(-0.5 * x * x) * 0.39894228040143267794;
    case STRUCTURA_UN_SILU_GRAD: {
      const double s = sigmoid_d(x);
      return s * (1.0 + x * (1.0 - s));
    }
    case STRUCTURA_UN_ADD_SCALAR: return x + alpha;
    case STRUCTURA_UN_MUL_SCALAR: return x * alpha;
    case STRUCTURA_UN_POW_SCALAR:
      if (alpha == 2) return x * x;
      if (alpha == 3) return x * x * x;
      if (alpha == 0.5) return sqrt(x);
      if (alpha == -0.5) return 1.0 / sqrt(x);
      if (alpha == -1) return 1.0 / x;
      if (alpha == -2) return 1.0 / (x * x);
      return pow(x, alpha);
    case STRUCTURA_UN_RSUB_SCALAR: return alpha - x;
    case STRUCTURA_UN_RDIV_SCALAR: return alpha / x;
    default: return d_min(d_max(x, alpha), beta);  // clamp
  }
}

// int32 (the ops int32 allows), wrapping like two's complement.
__device__ __forceinline__ int32_t un_op(int op, int32_t v, int32_t ia, int32_t ib) {
  const uint32_t u = (uint32_t)v;
  switch (op) {
    case STRUCTURA_UN_NEG: return (int32_t)(0u - u);
    case STRUCTURA_UN_ABS: return v < 0 ? (int32_t)(0u - u) : v;
    case STRUCTURA_UN_SIGN: return (v > 0) - (v < 0);
    case STRUCTURA_UN_SQUARE: return (int32_t)(u * u);
    case STRUCTURA_UN_ADD_SCALAR: return (int32_t)(u + (uint32_t)ia);
    case STRUCTURA_UN_MUL_SCALAR: return (int32_t)(u * (uint32_t)ia);
    case STRUCTURA_UN_CLAMP: {
      const int32_t m = v > ia ? v : ia;
      return m < ib ? m : ib;
    }
    default: return 0;  // refused for int32 by the caller
  }
}

template <class C> struct Scalars;
template <> struct Scalars<float> {
  float a, b;
  __device__ Scalars(const structura_unary_params& p) : a(dt::narrow(p.alpha)), b(dt::narrow(p.beta)) {}
};
template <> struct Scalars<double> {
  double a, b;
  __device__ Scalars(const structura_unary_params& p) : a(p.alpha), b(p.beta) {}
};
template <> struct Scalars<int32_t> {
  int32_t a, b;
  __device__ Scalars(const structura_unary_params& p) : a(p.ialpha), b(p.ibeta) {}
};

// 16 bytes of S as an array (the vector path's unit).
template <class S> struct Pack {
  S v[16 / sizeof(S)];
};

__device__ __forceinline__ int64_t tid_global() { return blockIdx.x * (int64_t)blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t nthreads_global() { return (int64_t)gridDim.x * blockDim.x; }

template <int DT>
__global__ void binary_kernel(structura_binary_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a)), b = gptr(static_cast<const S*>(p.b));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  for (int64_t i = tid_global(); i < p.n; i += nthreads_global()) {
    int64_t oa, ob;
    if (p.ndim == 1) oa = i * p.a_strides[0], ob = i * p.b_strides[0];
    else dt::offsets2(i, p.ndim, p.shape, p.a_strides, p.b_strides, oa, ob, p.n < dt::kNarrowLimit);
    const S x = a[oa], y = b[ob];
    out[i] = T::st(bin_op(p.op, T::ld(x), T::ld(y)));
  }
}

// a, b, out contiguous [n], 16-byte aligned: 16 bytes an operand a step, then the tail. OP ≥ 0 fixes
// the op at compile time (add, sub, mul, div: no switch in the loop); −1 reads it from p.
template <int DT, int OP>
__global__ void binary_vec_kernel(structura_binary_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  constexpr int E = 16 / sizeof(S);
  const int op = OP >= 0 ? OP : p.op;
  const dev_ptr<const uint4> a4 = dev_cast<const uint4>(gptr(static_cast<const S*>(p.a)));
  const dev_ptr<const uint4> b4 = dev_cast<const uint4>(gptr(static_cast<const S*>(p.b)));
  const dev_ptr<uint4> o4 = dev_cast<uint4>(gptr(static_cast<S*>(p.out)));
  const int64_t nv = p.n / E;
  for (int64_t i = tid_global(); i < nv; i += nthreads_global()) {
    const uint4 va = a4[i], vb = b4[i];
    Pack<S> x, y, z;
    memcpy(&x, &va, 16);
    memcpy(&y, &vb, 16);
#pragma unroll
    for (int k = 0; k < E; k++) z.v[k] = T::st(bin_op(op, T::ld(x.v[k]), T::ld(y.v[k])));
    uint4 vo;
    memcpy(&vo, &z, 16);
    o4[i] = vo;
  }
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a)), b = gptr(static_cast<const S*>(p.b));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  for (int64_t i = nv * E + tid_global(); i < p.n; i += nthreads_global()) {
    const S x = a[i], y = b[i];
    out[i] = T::st(bin_op(op, T::ld(x), T::ld(y)));
  }
}

template <int DT>
__global__ void unary_kernel(structura_unary_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  const Scalars<C> sc(p);
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  for (int64_t i = tid_global(); i < p.n; i += nthreads_global()) {
    const int64_t oa = p.ndim == 1 ? i * p.a_strides[0] : dt::offset1(i, p.ndim, p.shape, p.a_strides, p.n < dt::kNarrowLimit);
    const S x = a[oa];
    out[i] = T::st(un_op(p.op, T::ld(x), sc.a, sc.b));
  }
}

template <int DT>
__global__ void unary_vec_kernel(structura_unary_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  constexpr int E = 16 / sizeof(S);
  const Scalars<C> sc(p);
  const dev_ptr<const uint4> a4 = dev_cast<const uint4>(gptr(static_cast<const S*>(p.a)));
  const dev_ptr<uint4> o4 = dev_cast<uint4>(gptr(static_cast<S*>(p.out)));
  const int64_t nv = p.n / E;
  for (int64_t i = tid_global(); i < nv; i += nthreads_global()) {
    const uint4 va = a4[i];
    Pack<S> x, z;
    memcpy(&x, &va, 16);
#pragma unroll
    for (int k = 0; k < E; k++) z.v[k] = T::st(un_op(p.op, T::ld(x.v[k]), sc.a, sc.b));
    uint4 vo;
    memcpy(&vo, &z, 16);
    o4[i] = vo;
  }
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  for (int64_t i = nv * E + tid_global(); i < p.n; i += nthreads_global()) {
    const S x = a[i];
    out[i] = T::st(un_op(p.op, T::ld(x), sc.a, sc.b));
  }
}

// cond's element (bits) is nonzero: NaN is, ±0 is not (the CPU's where()).
__device__ __forceinline__ bool nonzero(uint64_t b, int t) {
  switch (t) {
    case STRUCTURA_T_F32: return (b & 0x7fffffffull) != 0;
    case STRUCTURA_T_F64: return (b & 0x7fffffffffffffffull) != 0;
    case STRUCTURA_T_F16:
    case STRUCTURA_T_BF16: return (b & 0x7fffull) != 0;
    default: return b != 0;
  }
}

__global__ void where_kernel(structura_where_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  const dt::In c = dt::in(p.cond, p.cond_dtype), a = dt::in(p.a, p.dtype), b = dt::in(p.b, p.dtype);
  const dt::Out out = dt::out(p.out, p.dtype);
  const bool narrow = p.n < dt::kNarrowLimit;
  for (int64_t i = tid_global(); i < p.n; i += nthreads_global()) {
    int64_t oc, oa;
    dt::offsets2(i, p.ndim, p.shape, p.cond_strides, p.a_strides, oc, oa, narrow);
    const bool take_a = nonzero(c.bits(oc), p.cond_dtype);
    out.set(i, take_a ? a.bits(oa) : b.bits(dt::offset1(i, p.ndim, p.shape, p.b_strides, narrow)));
  }
}

// Dropout's fate of element i: kept iff its draw of the counter-based stream is ≥ p, decided in
// integers (the threshold is p on the draw's 53-bit scale, structura_dropout_params): no double
// arithmetic, which consumer GPUs run at 1/64 rate.
__device__ __forceinline__ bool dropout_keep(const structura_dropout_params& p, int64_t i) {
  return (structura_splitmix64(p.key ^ ((uint64_t)i * 0xd1b54a32d192ed03ull)) >> 11) >= p.threshold;
}

// x, out contiguous [n]; VEC: both 16-byte aligned, 16 bytes a step and then the tail.
template <int DT, bool VEC>
__global__ void dropout_kernel(structura_dropout_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  constexpr int E = 16 / sizeof(S);
  const C scale = DT == STRUCTURA_T_F64 ? (C)p.scale64 : (C)p.scale;
  int64_t done = 0;
  if (VEC) {
    const dev_ptr<const uint4> x4 = dev_cast<const uint4>(gptr(static_cast<const S*>(p.x)));
    const dev_ptr<uint4> o4 = dev_cast<uint4>(gptr(static_cast<S*>(p.out)));
    const int64_t nv = p.n / E;
    for (int64_t i = tid_global(); i < nv; i += nthreads_global()) {
      const uint4 v = x4[i];
      Pack<S> x, z;
      memcpy(&x, &v, 16);
#pragma unroll
      for (int k = 0; k < E; k++) z.v[k] = T::st(T::ld(x.v[k]) * (dropout_keep(p, i * E + k) ? scale : (C)0));
      uint4 vo;
      memcpy(&vo, &z, 16);
      o4[i] = vo;
    }
    done = nv * E;
  }
  const dev_ptr<const S> x = gptr(static_cast<const S*>(p.x));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  for (int64_t i = done + tid_global(); i < p.n; i += nthreads_global())
    out[i] = T::st(T::ld(x[i]) * (dropout_keep(p, i) ? scale : (C)0));
}

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <int DT>
int launch_dropout(const structura_dropout_params& p, cudaStream_t s) {
  const int threads = 256;
  if (aligned16(p.x) && aligned16(p.out)) {
    const int E = 16 / (int)sizeof(typename Ty<DT>::S);
    return (int)structura::launch<dropout_kernel<DT, true>>(dt::grid_for((p.n + E - 1) / E, threads), threads, 0, s, p);
  }
  return (int)structura::launch<dropout_kernel<DT, false>>(dt::grid_for(p.n, threads), threads, 0, s, p);
}

template <int DT>
int launch_binary(const structura_binary_params& p, cudaStream_t s) {
  const int threads = 256;
  const int E = 16 / (int)sizeof(typename Ty<DT>::S);
  const bool vec = p.ndim == 1 && p.a_strides[0] == 1 && p.b_strides[0] == 1 && aligned16(p.a) && aligned16(p.b) &&
                   aligned16(p.out);
  if (vec) {
    const unsigned g = dt::grid_for((p.n + E - 1) / E, threads);
    switch (p.op) {
      case STRUCTURA_BIN_ADD: return (int)structura::launch<binary_vec_kernel<DT, STRUCTURA_BIN_ADD>>(g, threads, 0, s, p);
      case STRUCTURA_BIN_SUB: return (int)structura::launch<binary_vec_kernel<DT, STRUCTURA_BIN_SUB>>(g, threads, 0, s, p);
      case STRUCTURA_BIN_MUL: return (int)structura::launch<binary_vec_kernel<DT, STRUCTURA_BIN_MUL>>(g, threads, 0, s, p);
      case STRUCTURA_BIN_DIV:
        if (DT != STRUCTURA_T_I32) return (int)structura::launch<binary_vec_kernel<DT, STRUCTURA_BIN_DIV>>(g, threads, 0, s, p);
        return (int)cudaErrorInvalidValue;
      default: return (int)structura::launch<binary_vec_kernel<DT, -1>>(g, threads, 0, s, p);
    }
  }
  return (int)structura::launch<binary_kernel<DT>>(dt::grid_for(p.n, threads), threads, 0, s, p);
}

template <int DT>
int launch_unary(const structura_unary_params& p, cudaStream_t s) {
  const int threads = 256;
  const int E = 16 / (int)sizeof(typename Ty<DT>::S);
  const bool vec = p.ndim == 1 && p.a_strides[0] == 1 && aligned16(p.a) && aligned16(p.out);
  if (vec) return (int)structura::launch<unary_vec_kernel<DT>>(dt::grid_for((p.n + E - 1) / E, threads), threads, 0, s, p);
  return (int)structura::launch<unary_kernel<DT>>(dt::grid_for(p.n, threads), threads, 0, s, p);
}

}  // namespace

extern "C" int STRUCTURA_CUDA_FN(binary)(const structura_binary_params* p, void* stream) {
  if (p->n <= 0) return 0;
  if (p->ndim < 1 || p->ndim > STRUCTURA_MAX_DIMS || p->op < 0 || p->op >= STRUCTURA_BIN_COUNT)
    return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_binary<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_binary<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_binary<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_binary<STRUCTURA_T_BF16>(*p, s);
    case STRUCTURA_T_I32: return launch_binary<STRUCTURA_T_I32>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(where)(const structura_where_params* p, void* stream) {
  if (p->n <= 0) return 0;
  if (p->ndim < 1 || p->ndim > STRUCTURA_MAX_DIMS) return (int)cudaErrorInvalidValue;
  const int threads = 256;
  return (int)structura::launch<where_kernel>(dt::grid_for(p->n, threads), threads, 0, (cudaStream_t)stream, *p);
}

extern "C" int STRUCTURA_CUDA_FN(dropout)(const structura_dropout_params* p, void* stream) {
  if (p->n <= 0) return 0;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_dropout<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_dropout<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_dropout<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_dropout<STRUCTURA_T_BF16>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(unary)(const structura_unary_params* p, void* stream) {
  if (p->n <= 0) return 0;
  if (p->ndim < 1 || p->ndim > STRUCTURA_MAX_DIMS || p->op < 0 || p->op >= STRUCTURA_UN_COUNT)
    return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_unary<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_unary<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_unary<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_unary<STRUCTURA_T_BF16>(*p, s);
    case STRUCTURA_T_I32: return launch_unary<STRUCTURA_T_I32>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
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
