// reduce.cu — reductions along rows on the GPU:
//   reduce:  out[o] = sum | mean | max | min of a over the reduced index space (any axes, ≤ 8 kept and
//            ≤ 8 reduced dimensions after collapsing, any strides), out contiguous in a's dtype
//   softmax: out = softmax or log-softmax of a along one axis (rows = every other index), out contiguous
//   arg_reduce: out[o] (int32) = index of the first max / min along one axis (the first NaN wins)
//   cross_entropy:          loss (0-d) = mean over rows m of logsumexp(logits[m]) − logits[m, label[m]]
//   cross_entropy_backward: grad [M, C] = (softmax(logits[m]) − onehot(label[m]))·g/M
// Numerics follow the CPU (csrc/cpu/reduce.cc): float32/float16/bfloat16 are read as float32, sums
// and Σ exp accumulate in double, max/min propagate NaN, the softmax shift and scale are rounded to
// float32 as the CPU rounds them; float64 computes in double; int32 sums in int64, wrapped on store.
// Sums differ from the CPU's only by the order of double additions; exp and log are CUDA's.
// Versions: 1 (this one) — one warp a row (8 rows a block) for rows shorter than 1024 elements, one
// 256-thread block a row otherwise; warp shuffles, then one shared slot a warp. Reductions over a
// leading axis with ≥ 8192 outputs (and softmax across such columns) take one thread a row, so a
// warp reads 32 neighbouring outputs' elements at once; with fewer such outputs a block takes 32 of
// them and a piece of the reduced axis (reduce_cols_kernel). Few long rows (the caller picks `splits`)
// are cut into pieces, a block each, and combined by a second kernel. Rows are walked by row-major
// index → offsets through the collapsed dimensions.
// Memory goes through gptr()/SMEM and launches through structura::launch (cuda/launch.cuh), so the
// same source runs checked in the CPU emulator (cuda/emu/).
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include <type_traits>

#include "dtype.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "structura_cuda.h"

namespace {

constexpr int kThreads = 256;
constexpr int kLongRow = 1024;  // rows at least this long get a whole block

// PyTorch's max/min: NaN wins (the CPU's nan_max / nan_min).
template <class T> __device__ __forceinline__ T nan_max(T a, T b) { return a != a ? a : (b != b ? b : (b > a ? b : a)); }
template <class T> __device__ __forceinline__ T nan_min(T a, T b) { return a != a ? a : (b != b ? b : (b < a ? b : a)); }

__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return exp(x); }

template <class T> __device__ __forceinline__ T lowest();
template <> __device__ __forceinline__ float lowest<float>() { return -INFINITY; }
template <> __device__ __forceinline__ double lowest<double>() { return -(double)INFINITY; }

// ---- groups: G threads reduce one row together (G = 32: a warp; G = 256: the block) ---------------
struct Sum {
  template <class V> __device__ V operator()(V a, V b) const { return a + b; }
};
struct Max {
  template <class V> __device__ V operator()(V a, V b) const { return nan_max(a, b); }
};
struct Min {
  template <class V> __device__ V operator()(V a, V b) const { return nan_min(a, b); }
};

// Every thread of the group gets op over the group's values. scratch: kThreads / 32 slots (G = 256).
template <int G, class V, class Op>
__device__ __forceinline__ V group_all(V v, Op op, dev_ptr<V> scratch) {
  if constexpr (G == 1) {
    return v;
  } else {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const V w = __shfl_xor_sync(0xffffffffu, v, o);
      v = op(v, w);
    }
    if constexpr (G == 32) {
      return v;
    } else {
      __syncthreads();  // every thread is done reading the previous result from scratch
      if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
      __syncthreads();
      V r = scratch[0];
      for (int k = 1; k < G / 32; k++) {
        const V x = scratch[k];
        r = op(r, x);
      }
      return r;
    }
  }
}

// This thread's lane in its group, the group's first row and the row step. G = 1 (a thread a row) is
// for rows whose elements are far apart while neighbouring rows are neighbours in memory (a reduction
// over a leading axis): the threads of a warp then read consecutive addresses.
template <int G> __device__ __forceinline__ int lane_in_group() {
  return G == 1 ? 0 : G == 32 ? (threadIdx.x & 31) : threadIdx.x;
}
template <int G> __device__ __forceinline__ int64_t first_row() {
  return G == 1 ? (int64_t)blockIdx.x * kThreads + threadIdx.x
                : G == 32 ? (int64_t)blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5) : (int64_t)blockIdx.x;
}
template <int G> __device__ __forceinline__ int64_t row_step() {
  return G == 1 ? (int64_t)gridDim.x * kThreads : G == 32 ? (int64_t)gridDim.x * (kThreads / 32) : (int64_t)gridDim.x;
}
// Enough rows to fill a GPU with a thread each (≥ 32 blocks).
constexpr int64_t kColumnRows = STRUCTURA_REDUCE_COLUMN_ROWS;

// ---- reduce ------------------------------------------------------------------------------------
template <int DT, bool kFloat = (DT != STRUCTURA_T_I32)> struct RedAcc;
template <int DT> struct RedAcc<DT, true> {
  using Sum = double;
  using Ext = typename Ty<DT>::C;
};
template <int DT> struct RedAcc<DT, false> {
  using Sum = int64_t;
  using Ext = int32_t;
};

template <int DT, int OP>
using RedAccT = typename std::conditional<OP == STRUCTURA_RED_SUM || OP == STRUCTURA_RED_MEAN, typename RedAcc<DT>::Sum,
                                          typename RedAcc<DT>::Ext>::type;

template <int DT, int OP> __device__ __forceinline__ RedAccT<DT, OP> red_init() {
  using Acc = RedAccT<DT, OP>;
  if constexpr (OP == STRUCTURA_RED_SUM || OP == STRUCTURA_RED_MEAN) return Acc(0);
  else if constexpr (DT == STRUCTURA_T_I32) return OP == STRUCTURA_RED_MAX ? INT32_MIN : INT32_MAX;
  else return OP == STRUCTURA_RED_MAX ? Acc(-INFINITY) : Acc(INFINITY);
}
template <int OP, class Acc> __device__ __forceinline__ Acc red_combine(Acc a, Acc b) {
  if constexpr (OP == STRUCTURA_RED_SUM || OP == STRUCTURA_RED_MEAN) return a + b;
  else if constexpr (OP == STRUCTURA_RED_MAX) return nan_max(a, b);
  else return nan_min(a, b);
}
template <int G, int OP, class Acc> __device__ __forceinline__ Acc red_group(Acc acc, dev_ptr<Acc> sc) {
  if constexpr (OP == STRUCTURA_RED_SUM || OP == STRUCTURA_RED_MEAN) return group_all<G>(acc, Sum(), sc);
  else if constexpr (OP == STRUCTURA_RED_MAX) return group_all<G>(acc, Max(), sc);
  else return group_all<G>(acc, Min(), sc);
}
// The result of row o, written as the CPU writes it.
template <int DT, int OP>
__device__ __forceinline__ void red_store(dev_ptr<typename Ty<DT>::S> out, int64_t o, RedAccT<DT, OP> acc, int64_t count) {
  using T = Ty<DT>;
  using S = typename T::S;
  if constexpr (DT == STRUCTURA_T_I32) {
    out[o] = (S)(int32_t)(uint32_t)(uint64_t)(int64_t)acc;  // sums wrap, as the CPU's store
  } else if constexpr (OP == STRUCTURA_RED_SUM || OP == STRUCTURA_RED_MEAN) {
    const double div = OP == STRUCTURA_RED_MEAN ? (double)count : 1.0;
    const double v = (double)acc / div;
    if constexpr (DT == STRUCTURA_T_F64) out[o] = v;
    else out[o] = T::st(dt::narrow(v));
  } else {
    out[o] = T::st(acc);
  }
}

// Rows v of n_out·splits: piece v % splits of output row v / splits. With one split the result is
// stored; otherwise the piece's partial result goes to p.partial[v].
template <int DT, int G, int OP>
__global__ void reduce_kernel(structura_reduce_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using Acc = RedAccT<DT, OP>;
  SMEM(Acc, scratch, [kThreads / 32]);
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  const dev_ptr<Acc> partial = gptr(static_cast<Acc*>(p.partial));
  const int lane = lane_in_group<G>();
  const int64_t rows = p.n_out * p.splits;
  const bool narrow_o = p.n_out < dt::kNarrowLimit, narrow_k = p.count < dt::kNarrowLimit;
  for (int64_t v = first_row<G>(); v < rows; v += row_step<G>()) {
    const int64_t o = p.splits == 1 ? v : v / p.splits, piece = p.splits == 1 ? 0 : v % p.splits;
    const int64_t k0 = p.count * piece / p.splits, k1 = p.count * (piece + 1) / p.splits;
    const int64_t base = dt::offset1(o, p.ondim, p.oshape, p.ostrides, narrow_o);
    Acc acc = red_init<DT, OP>();
    for (int64_t k = k0 + lane; k < k1; k += G) {
      const S x = a[base + (p.rndim == 1 ? k * p.rstrides[0] : dt::offset1(k, p.rndim, p.rshape, p.rstrides, narrow_k))];
      acc = red_combine<OP>(acc, (Acc)T::ld(x));
    }
    acc = red_group<G, OP>(acc, dev_cast<Acc>(scratch));
    if (lane == 0) {
      if (p.splits == 1) red_store<DT, OP>(out, o, acc, p.count);
      else partial[v] = acc;
    }
  }
}

// The column form (structura_reduce_is_columns): block (x, y) takes outputs 32x … 32x + 31, lane l
// output 32x + l, and piece y of the reduced index, warp w every 8th index of it from w, so a warp
// reads 32 neighbouring elements at once; the 8 warps' results meet in shared memory in warp order.
// With one split the result is stored; otherwise it goes to p.partial[o·splits + y] (as reduce_kernel).
template <int DT, int OP>
__global__ void __launch_bounds__(kThreads) reduce_cols_kernel(structura_reduce_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using Acc = RedAccT<DT, OP>;
  constexpr int kWarps = kThreads / 32;
  SMEM(Acc, part, [kWarps][32]);
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t o = (int64_t)blockIdx.x * 32 + lane, piece = blockIdx.y;
  const int64_t k0 = p.count * piece / p.splits, k1 = p.count * (piece + 1) / p.splits;
  const bool narrow_o = p.n_out < dt::kNarrowLimit, narrow_k = p.count < dt::kNarrowLimit;
  Acc acc = red_init<DT, OP>();
  if (o < p.n_out) {
    const int64_t base = dt::offset1(o, p.ondim, p.oshape, p.ostrides, narrow_o);
    for (int64_t k = k0 + warp; k < k1; k += kWarps) {
      const S x = a[base + (p.rndim == 1 ? k * p.rstrides[0] : dt::offset1(k, p.rndim, p.rshape, p.rstrides, narrow_k))];
      acc = red_combine<OP>(acc, (Acc)T::ld(x));
    }
  }
  part[warp][lane] = acc;
  __syncthreads();
  if (warp != 0 || o >= p.n_out) return;
  Acc r = part[0][lane];
#pragma unroll
  for (int w = 1; w < kWarps; w++) {
    const Acc x = part[w][lane];
    r = red_combine<OP>(r, x);
  }
  if (p.splits == 1) red_store<DT, OP>(gptr(static_cast<S*>(p.out)), o, r, p.count);
  else gptr(static_cast<Acc*>(p.partial))[o * p.splits + piece] = r;
}

// A warp an output row: combines its splits partial results and stores the result.
template <int DT, int OP>
__global__ void reduce_finish_kernel(structura_reduce_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using S = typename Ty<DT>::S;
  using Acc = RedAccT<DT, OP>;
  const dev_ptr<const Acc> partial = gptr(static_cast<const Acc*>(p.partial));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  const int lane = lane_in_group<32>();
  for (int64_t o = first_row<32>(); o < p.n_out; o += row_step<32>()) {
    Acc acc = red_init<DT, OP>();
    for (int64_t j = lane; j < p.splits; j += 32) {
      const Acc x = partial[o * p.splits + j];
      acc = red_combine<OP>(acc, x);
    }
    acc = red_group<32, OP>(acc, dev_ptr<Acc>());
    if (lane == 0) red_store<DT, OP>(out, o, acc, p.count);
  }
}

template <int DT, int OP>
int launch_reduce_op(const structura_reduce_params& p, cudaStream_t s) {
  if (structura_reduce_is_columns(&p)) {
    const dim3 grid((unsigned)((p.n_out + 31) / 32), (unsigned)p.splits);
    const int rc = (int)structura::launch<reduce_cols_kernel<DT, OP>>(grid, kThreads, 0, s, p);
    if (rc || p.splits == 1) return rc;
    return (int)structura::launch<reduce_finish_kernel<DT, OP>>(dt::grid_for(p.n_out, kThreads / 32), kThreads, 0, s, p);
  }
  if (p.splits > 1) {
    const int rc = (int)structura::launch<reduce_kernel<DT, kThreads, OP>>(dt::grid_for(p.n_out * p.splits, 1), kThreads, 0, s, p);
    if (rc) return rc;
    return (int)structura::launch<reduce_finish_kernel<DT, OP>>(dt::grid_for(p.n_out, kThreads / 32), kThreads, 0, s, p);
  }
  if (p.n_out >= kColumnRows && p.ostrides[p.ondim - 1] == 1 && p.rstrides[p.rndim - 1] != 1)
    return (int)structura::launch<reduce_kernel<DT, 1, OP>>(dt::grid_for(p.n_out, kThreads), kThreads, 0, s, p);
  if (p.count >= kLongRow)
    return (int)structura::launch<reduce_kernel<DT, kThreads, OP>>(dt::grid_for(p.n_out, 1), kThreads, 0, s, p);
  return (int)structura::launch<reduce_kernel<DT, 32, OP>>(dt::grid_for(p.n_out, kThreads / 32), kThreads, 0, s, p);
}

template <int DT>
int launch_reduce(const structura_reduce_params& p, cudaStream_t s) {
  switch (p.op) {
    case STRUCTURA_RED_SUM: return launch_reduce_op<DT, STRUCTURA_RED_SUM>(p, s);
    case STRUCTURA_RED_MEAN: return launch_reduce_op<DT, STRUCTURA_RED_MEAN>(p, s);
    case STRUCTURA_RED_MAX: return launch_reduce_op<DT, STRUCTURA_RED_MAX>(p, s);
    default: return launch_reduce_op<DT, STRUCTURA_RED_MIN>(p, s);
  }
}

// ---- softmax -----------------------------------------------------------------------------------
template <int DT, int G>
__global__ void softmax_kernel(structura_softmax_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;  // float, or double for float64
  SMEM(C, smax, [kThreads / 32]);
  SMEM(double, ssum, [kThreads / 32]);
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  const int lane = lane_in_group<G>();
  for (int64_t o = first_row<G>(); o < p.rows; o += row_step<G>()) {
    int64_t xo, yo;
    dt::offsets2(o, p.ondim, p.oshape, p.ostrides, p.out_ostrides, xo, yo, p.rows < dt::kNarrowLimit);
    C m = lowest<C>();
    for (int64_t k = lane; k < p.len; k += G) {
      const S x = a[xo + k * p.stride];
      m = nan_max(m, T::ld(x));
    }
    m = group_all<G>(m, Max(), dev_cast<C>(smax));
    double s = 0;
    for (int64_t k = lane; k < p.len; k += G) {
      const S x = a[xo + k * p.stride];
      s += (double)exp_(T::ld(x) - m);
    }
    s = group_all<G>(s, Sum(), dev_cast<double>(ssum));
    if (p.log) {
      // (x − max) − log Σ, as the CPU and torch: max + log Σ as one constant lost half an ulp of max
      const C ls = DT == STRUCTURA_T_F64 ? (C)log(s) : (C)dt::narrow(log(s));
      for (int64_t k = lane; k < p.len; k += G) {
        const S x = a[xo + k * p.stride];
        out[yo + k * p.out_stride] = T::st((T::ld(x) - m) - ls);
      }
    } else {
      const C inv = DT == STRUCTURA_T_F64 ? (C)(1.0 / s) : (C)dt::narrow(1.0 / s);
      for (int64_t k = lane; k < p.len; k += G) {
        const S x = a[xo + k * p.stride];
        out[yo + k * p.out_stride] = T::st(exp_(T::ld(x) - m) * inv);
      }
    }
  }
}

template <int DT>
int launch_softmax(const structura_softmax_params& p, cudaStream_t s) {
  if (p.rows >= kColumnRows && p.ostrides[p.ondim - 1] == 1 && p.out_ostrides[p.ondim - 1] == 1 && p.stride != 1)
    return (int)structura::launch<softmax_kernel<DT, 1>>(dt::grid_for(p.rows, kThreads), kThreads, 0, s, p);
  if (p.len >= kLongRow)
    return (int)structura::launch<softmax_kernel<DT, kThreads>>(dt::grid_for(p.rows, 1), kThreads, 0, s, p);
  return (int)structura::launch<softmax_kernel<DT, 32>>(dt::grid_for(p.rows, kThreads / 32), kThreads, 0, s, p);
}

// ---- argmax / argmin ----------------------------------------------------------------------------
// A candidate: value and index (−1: none yet).
template <class C> struct Arg {
  C v;
  int64_t i;
};
// x beats y: the first NaN wins; then the larger (smaller) value; on ties the smaller index.
template <bool kMax, class C> __device__ __forceinline__ bool beats(const Arg<C>& x, const Arg<C>& y) {
  if (x.i < 0) return false;
  if (y.i < 0) return true;
  if (y.v != y.v) return x.v != x.v && x.i < y.i;
  if (x.v != x.v) return true;
  if (kMax ? x.v > y.v : x.v < y.v) return true;
  return x.v == y.v && x.i < y.i;
}

template <bool kMax, int G, class C>
__device__ __forceinline__ Arg<C> group_arg(Arg<C> a, dev_ptr<C> sv, dev_ptr<int64_t> si) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Arg<C> b;
    b.v = __shfl_xor_sync(0xffffffffu, a.v, o);
    b.i = __shfl_xor_sync(0xffffffffu, a.i, o);
    if (beats<kMax>(b, a)) a = b;
  }
  if (G == 32) return a;
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sv[threadIdx.x >> 5] = a.v, si[threadIdx.x >> 5] = a.i;
  __syncthreads();
  Arg<C> r;
  r.v = sv[0];
  r.i = si[0];
  for (int k = 1; k < G / 32; k++) {
    Arg<C> b;
    b.v = sv[k];
    b.i = si[k];
    if (beats<kMax>(b, r)) r = b;
  }
  return r;
}

template <int DT, int G, bool kMax>
__global__ void arg_reduce_kernel(structura_arg_reduce_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  SMEM(C, sv, [kThreads / 32]);
  SMEM(int64_t, si, [kThreads / 32]);
  const dev_ptr<const S> a = gptr(static_cast<const S*>(p.a));
  const dev_ptr<int32_t> out = gptr(p.out);
  const int lane = lane_in_group<G>();
  for (int64_t o = first_row<G>(); o < p.rows; o += row_step<G>()) {
    const int64_t base = dt::offset1(o, p.ondim, p.oshape, p.ostrides, p.rows < dt::kNarrowLimit);
    Arg<C> best{C(0), -1};
    for (int64_t k = lane; k < p.len; k += G) {
      const S x = a[base + k * p.stride];
      const Arg<C> c{T::ld(x), k};
      if (beats<kMax>(c, best)) best = c;
    }
    best = group_arg<kMax, G>(best, dev_cast<C>(sv), dev_cast<int64_t>(si));
    if (lane == 0) out[o] = (int32_t)best.i;
  }
}

template <int DT>
int launch_arg_reduce(const structura_arg_reduce_params& p, cudaStream_t s) {
  const bool block = p.len >= kLongRow;
  const unsigned grid = block ? dt::grid_for(p.rows, 1) : dt::grid_for(p.rows, kThreads / 32);
  if (p.is_max)
    return block ? (int)structura::launch<arg_reduce_kernel<DT, kThreads, true>>(grid, kThreads, 0, s, p)
                 : (int)structura::launch<arg_reduce_kernel<DT, 32, true>>(grid, kThreads, 0, s, p);
  return block ? (int)structura::launch<arg_reduce_kernel<DT, kThreads, false>>(grid, kThreads, 0, s, p)
               : (int)structura::launch<arg_reduce_kernel<DT, 32, false>>(grid, kThreads, 0, s, p);
}

// ---- cross-entropy -------------------------------------------------------------------------------
// Row m's max and Σ exp(x − max) (double), every thread of the group getting both.
template <int DT, int G>
__device__ __forceinline__ void row_stats(dev_ptr<const typename Ty<DT>::S> x, int64_t off, int64_t c, int64_t ldc,
                                          typename Ty<DT>::C& m, double& s, dev_ptr<typename Ty<DT>::C> smax,
                                          dev_ptr<double> ssum) {
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  const int lane = lane_in_group<G>();
  m = lowest<C>();
  for (int64_t k = lane; k < c; k += G) {
    const S v = x[off + k * ldc];
    m = nan_max(m, T::ld(v));
  }
  m = group_all<G>(m, Max(), smax);
  s = 0;
  for (int64_t k = lane; k < c; k += G) {
    const S v = x[off + k * ldc];
    s += (double)exp_(T::ld(v) - m);
  }
  s = group_all<G>(s, Sum(), ssum);
}

template <int DT, int G>
__global__ void cross_entropy_rows_kernel(structura_cross_entropy_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  SMEM(C, smax, [kThreads / 32]);
  SMEM(double, ssum, [kThreads / 32]);
  const dev_ptr<const S> x = gptr(static_cast<const S*>(p.logits));
  const dev_ptr<const int32_t> labels = gptr(p.labels);
  const bool none = p.reduction == STRUCTURA_CE_NONE;
  const dev_ptr<double> loss = gptr(none ? nullptr : p.row_loss);
  const dt::Out rows_out = dt::out(none ? p.loss : nullptr, p.dtype);
  for (int64_t r = first_row<G>(); r < p.m; r += row_step<G>()) {
    const int32_t label = labels[r];  // the same for the whole group: an ignored row skips together
    double v = 0;
    if (label != p.ignore_index) {
      C m;
      double s;
      row_stats<DT, G>(x, r * p.ld, p.c, p.ldc, m, s, dev_cast<C>(smax), dev_cast<double>(ssum));
      const S xl = x[r * p.ld + (int64_t)label * p.ldc];
      if (p.weight) {
        const dev_ptr<const double> w = gptr(p.weight);
        const double lse = (double)m + log(s);
        double spread = 0;  // Σ_k w[k]·(lse − x[k]): label smoothing's share, only when asked for
        if (p.smoothing != 0) {
          double t = 0;
          for (int64_t k = lane_in_group<G>(); k < p.c; k += G) t += w[k] * (lse - (double)T::ld(x[r * p.ld + k * p.ldc]));
          spread = group_all<G>(t, Sum(), dev_cast<double>(ssum));
        }
        v = (1.0 - p.smoothing) * w[label] * (lse - (double)T::ld(xl)) + p.smoothing / (double)p.c * spread;
      } else {
        double mean_x = 0;  // label smoothing's mean of the row, only when asked for
        if (p.smoothing != 0) {
          double t = 0;
          for (int64_t k = lane_in_group<G>(); k < p.c; k += G) t += (double)T::ld(x[r * p.ld + k * p.ldc]);
          mean_x = group_all<G>(t, Sum(), dev_cast<double>(ssum)) / (double)p.c;
        }
        v = (double)m + log(s) - (1.0 - p.smoothing) * (double)T::ld(xl) - p.smoothing * mean_x;
      }
    }
    if (lane_in_group<G>() == 0) {
      if (none) rows_out.set(r, dt::store_from_double(v, p.dtype));
      else loss[r] = v;
    }
  }
}

// One block: loss = Σ row_loss (SUM) or Σ row_loss / divisor (MEAN; NaN when the divisor is 0), stored
// as the CPU's store_from_double.
__global__ void cross_entropy_mean_kernel(structura_cross_entropy_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  SMEM(double, ssum, [kThreads / 32]);
  const dev_ptr<const double> rl = gptr(static_cast<const double*>(p.row_loss));
  double t = 0;
  for (int64_t r = threadIdx.x; r < p.m; r += kThreads) {
    const double v = rl[r];
    t += v;
  }
  t = group_all<kThreads>(t, Sum(), dev_cast<double>(ssum));
  if (threadIdx.x == 0) {
    const dt::Out out = dt::out(p.loss, p.dtype);
    // no row kept (or only weights 0): NaN, torch's 0 / 0, with the CPU's bits; kept weights that cancel
    // to 0 under a loss that does not: ±inf, as torch
    const double nan = dt::f64(0x7ff8000000000000ull);
    // (kept weights summing to 0: see csrc/ops/reduce.cc)
    const double v = p.reduction == STRUCTURA_CE_SUM ? t : p.divisor == 0 && (t == 0 || p.smoothing != 0) ? nan : t / p.divisor;
    out.set(0, dt::store_from_double(v, p.dtype));
  }
}

template <int DT, int G>
__global__ void cross_entropy_backward_kernel(structura_cross_entropy_backward_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  using C = typename T::C;
  SMEM(C, smax, [kThreads / 32]);
  SMEM(double, ssum, [kThreads / 32]);
  const dev_ptr<const S> x = gptr(static_cast<const S*>(p.logits));
  const dev_ptr<const int32_t> labels = gptr(p.labels);
  const dev_ptr<S> grad = gptr(static_cast<S*>(p.grad));
  const dev_ptr<const S> g_rows = gptr(static_cast<const S*>(p.g_rows));
  const int lane = lane_in_group<G>();
  for (int64_t r = first_row<G>(); r < p.m; r += row_step<G>()) {
    const int32_t label = labels[r];
    if (label == p.ignore_index) {
      for (int64_t k = lane; k < p.c; k += G) grad[r * p.c + k] = T::st((C)0);
      continue;
    }
    const double gm = p.g_rows ? (double)T::ld(g_rows[r]) : p.g;
    C m;
    double s;
    row_stats<DT, G>(x, r * p.ld, p.c, p.ldc, m, s, dev_cast<C>(smax), dev_cast<double>(ssum));
    if (p.weight) {
      // g·(a·softmax − (1 − ε)·w[label]·onehot − ε/c·w), a = (1 − ε)·w[label] + ε/c·Σw (its second term
      // only when ε ≠ 0: 0·Σw is NaN for a NaN or infinite weight); the CPU's order, up to fused multiply-adds
      const dev_ptr<const double> w = gptr(p.weight);
      const double on = gm * (1.0 - p.smoothing) * w[label], spread = gm * p.smoothing / (double)p.c;
      const double a = (1.0 - p.smoothing) * w[label] + (p.smoothing != 0 ? p.smoothing / (double)p.c * p.weight_sum : 0.0);
      const double scale = gm * a / s;
      for (int64_t k = lane; k < p.c; k += G) {
        double y = (double)exp_(T::ld(x[r * p.ld + k * p.ldc]) - m) * scale;
        if (k == label) y -= on;
        if (spread != 0) y -= spread * w[k];
        grad[r * p.c + k] = T::st(DT == STRUCTURA_T_F64 ? (C)y : (C)dt::narrow(y));  // the CPU's double → float
      }
      continue;
    }
    const double on = gm * (1.0 - p.smoothing), off = gm * p.smoothing / (double)p.c;  // the one-hot's share, everyone's
    if (DT == STRUCTURA_T_F64) {
      const double inv = 1.0 / s;
      for (int64_t k = lane; k < p.c; k += G) {
        const S v = x[r * p.ld + k * p.ldc];
        double y = (double)exp_(T::ld(v) - m) * inv * gm;
        if (k == label) y -= on;
        if (off != 0) y -= off;
        grad[r * p.c + k] = T::st((C)y);
      }
    } else {
      const float scale = dt::narrow(gm / s);  // the CPU's (float)(gm / s)
      for (int64_t k = lane; k < p.c; k += G) {
        const S v = x[r * p.ld + k * p.ldc];
        float y = (float)exp_(T::ld(v) - m) * scale;
        if (k == label) y = dt::narrow((double)y - on);
        if (off != 0) y = dt::narrow((double)y - off);
        grad[r * p.c + k] = T::st((C)y);
      }
    }
  }
}

template <int DT>
int launch_cross_entropy(const structura_cross_entropy_params& p, cudaStream_t s) {
  if (p.m > 0) {
    int rc;
    if (p.c >= kLongRow)
      rc = (int)structura::launch<cross_entropy_rows_kernel<DT, kThreads>>(dt::grid_for(p.m, 1), kThreads, 0, s, p);
    else
      rc = (int)structura::launch<cross_entropy_rows_kernel<DT, 32>>(dt::grid_for(p.m, kThreads / 32), kThreads, 0, s, p);
    if (rc) return rc;
  }
  if (p.reduction == STRUCTURA_CE_NONE) return 0;
  return (int)structura::launch<cross_entropy_mean_kernel>(1, kThreads, 0, s, p);
}

template <int DT>
int launch_cross_entropy_backward(const structura_cross_entropy_backward_params& p, cudaStream_t s) {
  if (p.c >= kLongRow)
    return (int)structura::launch<cross_entropy_backward_kernel<DT, kThreads>>(dt::grid_for(p.m, 1), kThreads, 0, s, p);
  return (int)structura::launch<cross_entropy_backward_kernel<DT, 32>>(dt::grid_for(p.m, kThreads / 32), kThreads, 0, s, p);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// launchers

extern "C" int STRUCTURA_CUDA_FN(reduce)(const structura_reduce_params* p, void* stream) {
  if (p->n_out <= 0) return 0;
  if (p->ondim < 1 || p->ondim > STRUCTURA_MAX_DIMS || p->rndim < 1 || p->rndim > STRUCTURA_MAX_DIMS ||
      p->op < STRUCTURA_RED_SUM || p->op > STRUCTURA_RED_MIN || p->splits < 1 || (p->splits > 1 && !p->partial))
    return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_reduce<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_reduce<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_reduce<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_reduce<STRUCTURA_T_BF16>(*p, s);
    case STRUCTURA_T_I32: return p->op == STRUCTURA_RED_MEAN ? (int)cudaErrorInvalidValue : launch_reduce<STRUCTURA_T_I32>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(softmax)(const structura_softmax_params* p, void* stream) {
  if (p->rows <= 0 || p->len <= 0) return 0;
  if (p->ondim < 1 || p->ondim > STRUCTURA_MAX_DIMS) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_softmax<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_softmax<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_softmax<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_softmax<STRUCTURA_T_BF16>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(cross_entropy)(const structura_cross_entropy_params* p, void* stream) {
  if (p->m < 0 || (p->m > 0 && p->c < 1)) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_cross_entropy<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_cross_entropy<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_cross_entropy<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_cross_entropy<STRUCTURA_T_BF16>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(cross_entropy_backward)(const structura_cross_entropy_backward_params* p, void* stream) {
  if (p->m <= 0) return 0;
  if (p->c < 1) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_cross_entropy_backward<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_cross_entropy_backward<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_cross_entropy_backward<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_cross_entropy_backward<STRUCTURA_T_BF16>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int STRUCTURA_CUDA_FN(arg_reduce)(const structura_arg_reduce_params* p, void* stream) {
  if (p->rows <= 0) return 0;
  if (p->len < 1 || p->ondim < 1 || p->ondim > STRUCTURA_MAX_DIMS) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  switch (p->dtype) {
    case STRUCTURA_T_F32: return launch_arg_reduce<STRUCTURA_T_F32>(*p, s);
    case STRUCTURA_T_F64: return launch_arg_reduce<STRUCTURA_T_F64>(*p, s);
    case STRUCTURA_T_F16: return launch_arg_reduce<STRUCTURA_T_F16>(*p, s);
    case STRUCTURA_T_BF16: return launch_arg_reduce<STRUCTURA_T_BF16>(*p, s);
    case STRUCTURA_T_I32: return launch_arg_reduce<STRUCTURA_T_I32>(*p, s);
    default: return (int)cudaErrorInvalidValue;
  }
}
