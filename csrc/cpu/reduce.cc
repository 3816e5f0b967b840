// reduce.cc — CPU reductions (sum, mean, max, min over any set of axes), argmax/argmin along one
// axis, softmax / log-softmax along one axis, and cross-entropy (logits [M, C], labels [M]) with its
// gradient.
//
// Every reduction is brought to one shape: a contiguous x viewed as [O, R, I], reduced over R into
// y [O, I]. R a suffix (I = 1, "rows": sums, softmax over the last axis) runs the SIMD row kernels
// per row (short rows, R < 32, an inline loop); R a prefix or in the middle (I > 1, "columns")
// accumulates whole rows of I elements into y, blocked over I so the accumulators stay in L1,
// vectorised across I (narrow columns, I < 128, are first regrouped k rows at a time into runs of
// k·I). Several separate groups of reduced axes take one [O, R, I] pass per group, innermost first,
// through an accumulator buffer. Work is split over (o, i-block) pairs; when there are few of them
// and R is long, R is cut into chunks as well and the partial results combined in order. The cut
// depends only on the shape, so results do not depend on the thread count.
//
// Accumulation: float32 (and float16/bfloat16, read as float32) sums in double, so sum and mean are
// accurate to about one float32 rounding; float64 sums in double with 4 partial sums per row; int32
// in int64. A transposed (permuted dense) input is reduced in its storage order with renumbered
// axes, without a copy; other non-contiguous inputs are copied to contiguous first.
#include "cpu/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/elementwise.h"
#include "threadpool.h"

namespace structura {

namespace {

constexpr int64_t kChunk = 1 << 14;   // elements of work worth one parallel task
constexpr int64_t kIBlock = 2048;     // columns per task in column reductions
constexpr int64_t kMaxSplits = 64;

// ---------------------------------------------------------------------------------------------
// per-type row and column kernels

// PyTorch's max/min: NaN wins (for integers the NaN tests fold away).
template <class T>
inline T nan_max(T a, T b) { return a != a ? a : (b != b ? b : (b > a ? b : a)); }
template <class T>
inline T nan_min(T a, T b) { return a != a ? a : (b != b ? b : (b < a ? b : a)); }

template <class T>
T extreme_identity(bool is_max) {
  if (std::numeric_limits<T>::has_infinity)
    return is_max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
  return is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
}

// Reducing rows of In into Acc. sum: Acc is the accumulator type; max/min: Acc == In.
template <class In, class Acc>
struct Kern {
  static Acc row(bool is_sum, bool is_max, const In* x, int64_t n) {
    if (is_sum) {
      // 4 partial sums let -O3 keep several additions in flight (and vectorise for double).
      Acc s[4] = {0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += (Acc)x[i + k];
      for (; i < n; i++) s[0] += (Acc)x[i];
      return (s[0] + s[1]) + (s[2] + s[3]);
    }
    Acc r = extreme_identity<Acc>(is_max);
    for (int64_t i = 0; i < n; i++) {
      r = is_max ? nan_max(r, (Acc)x[i]) : nan_min(r, (Acc)x[i]);
      if (r != r) break;
    }
    return r;
  }
  static void col(bool is_sum, bool is_max, const In* x, Acc* acc, int64_t n) {
    if (is_sum) for (int64_t i = 0; i < n; i++) acc[i] += (Acc)x[i];
    else if (is_max) for (int64_t i = 0; i < n; i++) acc[i] = nan_max(acc[i], (Acc)x[i]);
    else for (int64_t i = 0; i < n; i++) acc[i] = nan_min(acc[i], (Acc)x[i]);
  }
  // rows of x (ld apart) into acc, in order
  static void cols(bool is_sum, bool is_max, const In* x, int64_t ld, int64_t rows, Acc* acc, int64_t n) {
    for (int64_t r = 0; r < rows; r++) col(is_sum, is_max, x + r * ld, acc, n);
  }
};

template <>
struct Kern<float, double> {
  static double row(bool, bool, const float* x, int64_t n) { return f32_rows().sum(x, n); }
  static void cols(bool, bool, const float* x, int64_t ld, int64_t rows, double* acc, int64_t n) {
    f32_rows().col_sum(x, ld, rows, acc, n);
  }
};

template <>
struct Kern<float, float> {
  static float row(bool, bool is_max, const float* x, int64_t n) { return f32_rows().minmax(x, n, is_max); }
  static void cols(bool, bool is_max, const float* x, int64_t ld, int64_t rows, float* acc, int64_t n) {
    for (int64_t r = 0; r < rows; r++) f32_rows().col_minmax(x + r * ld, acc, n, is_max);
  }
};

template <class Acc>
Acc combine(bool is_sum, bool is_max, Acc a, Acc b) {
  if (is_sum) return a + b;
  return is_max ? nan_max(a, b) : nan_min(a, b);
}

// y[o, i] = reduce_r x[o, r, i] for x [O, R, I], contiguous except that consecutive o are `ostride`
// elements apart (0: R·I). R ≥ 1 unless summing.
template <class In, class Acc>
void reduce_ori(ReduceOp op, const In* x, int64_t O, int64_t R, int64_t I, Acc* y, int64_t ostride = 0) {
  using K = Kern<In, Acc>;
  const bool is_sum = op == ReduceOp::sum || op == ReduceOp::mean;
  const bool is_max = op == ReduceOp::max;
  if (ostride == 0) ostride = R * I;
  if (O * I == 0) return;
  if (R == 0) {  // only sums get here: Σ of nothing
    for (int64_t k = 0; k < O * I; k++) y[k] = 0;
    return;
  }
  if (I == 1 && R < 32) {
    // Short rows: an inline loop per row beats a call into the vector kernels.
    parallel_for(O, std::max<int64_t>(1, kChunk / R), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        const In* xr = x + o * ostride;
        Acc r = (Acc)xr[0];
        for (int64_t k = 1; k < R; k++) r = combine(is_sum, is_max, r, (Acc)xr[k]);
        y[o] = r;
      }
    });
    return;
  }
  if (I == 1) {
    const int64_t S = (O < 16 && R >= 2 * kChunk) ? std::min(kMaxSplits, R / kChunk) : 1;
    if (S == 1) {
      parallel_for(O, std::max<int64_t>(1, kChunk / R), [&](int64_t o0, int64_t o1) {
        if constexpr (std::is_same<In, float>::value && std::is_same<Acc, double>::value) {
          f32_rows().sum_rows(x + o0 * ostride, ostride, o1 - o0, R, y + o0);  // float32 sums: two rows a pass
        } else {
          for (int64_t o = o0; o < o1; o++) y[o] = K::row(is_sum, is_max, x + o * ostride, R);
        }
      });
      return;
    }
    std::vector<Acc> part(O * S);
    parallel_for(O * S, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        int64_t o = t / S, s = t % S, r0 = R * s / S, r1 = R * (s + 1) / S;
        part[t] = K::row(is_sum, is_max, x + o * ostride + r0, r1 - r0);
      }
    });
    for (int64_t o = 0; o < O; o++) {
      Acc r = part[o * S];
      for (int64_t s = 1; s < S; s++) r = combine(is_sum, is_max, r, part[o * S + s]);
      y[o] = r;
    }
    return;
  }
  if (I < 128 && R >= 2 * ((256 + I - 1) / I)) {
    // Narrow columns: k consecutive rows of I are one row of k·I, so reduce [O, R/k, k·I] with
    // long runs, then fold the k partial columns (and the R mod k rows left over) together.
    const int64_t k = (256 + I - 1) / I, R2 = R / k;
    std::vector<Acc> tmp((size_t)(O * k * I));
    reduce_ori<In, Acc>(op, x, O, R2, k * I, tmp.data(), ostride);
    for (int64_t o = 0; o < O; o++) {
      for (int64_t i = 0; i < I; i++) {
        Acc r = tmp[o * k * I + i];
        for (int64_t j = 1; j < k; j++) r = combine(is_sum, is_max, r, tmp[(o * k + j) * I + i]);
        for (int64_t q = R2 * k; q < R; q++) r = combine(is_sum, is_max, r, (Acc)x[o * ostride + q * I + i]);
        y[o * I + i] = r;
      }
    }
    return;
  }
  // Columns: y[o, i-block] accumulates rows r of x[o, r, i-block].
  const int64_t nib = (I + kIBlock - 1) / kIBlock;
  const int64_t tasks = O * nib;
  int64_t S = 1;
  // Split the rows when there are too few column blocks to share out: 4 tasks a thread are enough,
  // more only add partial columns to combine (S = 64 on 2 threads was 15% of a [4096, 4096] sum over
  // axis 0).
  if (tasks < 16 && R >= 64) {
    S = std::min(kMaxSplits, std::max<int64_t>(1, R * std::min(I, kIBlock) / (4 * kChunk)));
    S = std::min(S, std::max<int64_t>(1, (4 * num_threads() + tasks - 1) / tasks));
  }
  S = std::min(S, R);
  std::vector<Acc> part(S > 1 ? (size_t)(S * O * I) : 0);
  parallel_for(tasks * S, std::max<int64_t>(1, kChunk / std::max<int64_t>(1, R / S * std::min(I, kIBlock))),
               [&](int64_t t0, int64_t t1) {
                 for (int64_t t = t0; t < t1; t++) {
                   int64_t s = t % S, ob = t / S, o = ob / nib, i0 = (ob % nib) * kIBlock;
                   int64_t n = std::min(kIBlock, I - i0);
                   int64_t r0 = R * s / S, r1 = R * (s + 1) / S;
                   Acc* acc = (S > 1 ? part.data() + s * O * I : y) + o * I + i0;
                   const In* xo = x + o * ostride + i0;
                   for (int64_t i = 0; i < n; i++) acc[i] = (Acc)xo[r0 * I + i];
                   K::cols(is_sum, is_max, xo + (r0 + 1) * I, I, r1 - r0 - 1, acc, n);
                 }
               });
  if (S > 1) {
    parallel_for(O * I, kChunk, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; k++) {
        Acc r = part[k];
        for (int64_t s = 1; s < S; s++) r = combine(is_sum, is_max, r, part[s * O * I + k]);
        y[k] = r;
      }
    });
  }
}

// Groups of consecutive dimensions that are all reduced or all kept (size-1 dimensions dropped).
struct Group {
  int64_t size;
  bool reduced;
};

std::vector<Group> group_dims(const Shape& shape, const std::vector<int64_t>& axes) {
  std::vector<bool> red(shape.size(), false);
  for (auto a : axes) red[a] = true;
  std::vector<Group> g;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!g.empty() && g.back().reduced == red[d]) g.back().size *= shape[d];
    else g.push_back({shape[d], (bool)red[d]});
  }
  return g;
}

// Runs the [O, R, I] passes, innermost reduced group first; the result (O·I of the last pass) goes
// to y, which must hold Π(kept sizes) elements.
template <class In, class Acc>
void reduce_groups(ReduceOp op, const In* x, std::vector<Group> g, Acc* y) {
  std::vector<Acc> cur, next;
  bool first = true;
  for (;;) {
    int j = -1, nred = 0;
    for (int k = 0; k < (int)g.size(); k++)
      if (g[k].reduced) j = k, nred++;
    if (j < 0) break;
    int64_t O = 1, I = 1;
    for (int k = 0; k < j; k++) O *= g[k].size;
    for (int k = j + 1; k < (int)g.size(); k++) I *= g[k].size;
    Acc* dst;
    if (nred == 1) {
      dst = y;
    } else {
      next.assign((size_t)(O * I), Acc(0));
      dst = next.data();
    }
    if (first) reduce_ori<In, Acc>(op, x, O, g[j].size, I, dst);
    else reduce_ori<Acc, Acc>(op, cur.data(), O, g[j].size, I, dst);
    first = false;
    if (nred == 1) return;
    cur.swap(next);
    g.erase(g.begin() + j);
    if (j > 0 && j < (int)g.size() && !g[j - 1].reduced && !g[j].reduced) {
      g[j - 1].size *= g[j].size;
      g.erase(g.begin() + j);
    }
  }
  // Nothing to reduce: a copy.
  int64_t n = 1;
  for (auto& q : g) n *= q.size;
  for (int64_t k = 0; k < n; k++) y[k] = (Acc)x[k];
}

// Writes n accumulators to out (any dtype), divided by `div` (1 unless mean).
template <class Acc>
void store_acc(const Acc* acc, Tensor& out, double div) {
  const int64_t n = out.numel();
  parallel_for(n, kChunk, [&](int64_t b, int64_t e) {
    switch (out.dtype) {
      case DType::f32: for (int64_t k = b; k < e; k++) out.data<float>()[k] = (float)((double)acc[k] / div); break;
      case DType::f64: for (int64_t k = b; k < e; k++) out.data<double>()[k] = (double)acc[k] / div; break;
      case DType::i32: for (int64_t k = b; k < e; k++) out.data<int32_t>()[k] = (int32_t)(uint32_t)(uint64_t)(int64_t)acc[k]; break;
      default: for (int64_t k = b; k < e; k++) store_from_double(out.raw(), out.dtype, k, (double)acc[k] / div); break;
    }
  });
}

bool f32_family(DType dt) { return dt == DType::f32 || dt == DType::f16 || dt == DType::bf16; }

}  // namespace

namespace {

// Reduces a over axes into a fresh tensor of shape out_shape whose elements are in the order of a's
// kept dimensions.
Tensor reduce_in_order(ReduceOp op, const Tensor& a, const std::vector<int64_t>& axes, const Shape& out_shape) {
  Tensor out = Tensor::empty(a.dtype, out_shape, a.device());
  const int64_t n_out = out.numel();
  if (n_out == 0) return out;
  int64_t count = 1;
  for (auto ax : axes) count *= a.shape[ax];
  const bool is_sum = op == ReduceOp::sum || op == ReduceOp::mean;
  const double div = op == ReduceOp::mean ? (double)count : 1.0;
  std::vector<Group> g = group_dims(a.shape, axes);
  if (count == 0) {  // an empty reduction of a non-empty result: 0 for sum, NaN for mean (0/0)
    std::vector<double> zero((size_t)n_out, 0.0);
    store_acc(zero.data(), out, div);
    return out;
  }
  const bool half = a.dtype == DType::bf16 || a.dtype == DType::f16;
  if (half && a.is_contiguous() && g.size() == 2 && !g[0].reduced && g[1].reduced && g[1].size >= 32) {
    // 16-bit rows: each widened into a buffer the cache keeps, then the float32 row kernel (the same
    // bits as below), instead of the whole tensor widened to float32 first (a bfloat16 row sum of
    // [2048, 2048]: 0.23 → 0.13 ms, torch 0.09; widening straight into the double lanes instead was
    // slower, 0.16: three shuffles for every eight elements against one vector convert per sixteen).
    const int64_t O = g[0].size, R = g[1].size;
    const uint16_t* xs = (const uint16_t*)a.raw();
    const bool bf = a.dtype == DType::bf16;
    const bool is_max = op == ReduceOp::max;
    std::vector<double> acc(is_sum ? (size_t)O : 0);
    Tensor y32 = is_sum ? Tensor() : Tensor::empty(DType::f32, out_shape, a.device());
    parallel_for(O, std::max<int64_t>(1, kChunk / R), [&](int64_t o0, int64_t o1) {
      const F32Rows& K = f32_rows();
      std::vector<float> row((size_t)R);
      for (int64_t o = o0; o < o1; o++) {
        if (bf) K.bf16_to_f32(xs + o * R, 1, row.data(), R);
        else K.f16_to_f32(xs + o * R, 1, row.data(), R);
        if (is_sum) acc[o] = K.sum(row.data(), R);
        else y32.data<float>()[o] = K.minmax(row.data(), R, is_max);
      }
    });
    if (!is_sum) return cpu_convert(y32, a.dtype);
    store_acc(acc.data(), out, div);
    return out;
  }
  if (f32_family(a.dtype)) {
    Tensor x = cpu_convert(a, DType::f32);
    if (is_sum) {
      std::vector<double> acc((size_t)n_out);
      reduce_groups<float, double>(op, x.data<float>(), g, acc.data());
      store_acc(acc.data(), out, div);
    } else if (a.dtype == DType::f32) {
      reduce_groups<float, float>(op, x.data<float>(), g, out.data<float>());
    } else {
      Tensor y = Tensor::empty(DType::f32, out_shape, a.device());
      reduce_groups<float, float>(op, x.data<float>(), g, y.data<float>());
      return cpu_convert(y, a.dtype);
    }
  } else if (a.dtype == DType::f64) {
    Tensor x = cpu_convert(a, a.dtype);
    reduce_groups<double, double>(op, x.data<double>(), g, out.data<double>());
    if (div != 1.0) {
      double* y = out.data<double>();
      for (int64_t k = 0; k < n_out; k++) y[k] /= div;
    }
  } else {  // int32
    Tensor x = cpu_convert(a, a.dtype);
    if (is_sum) {
      std::vector<int64_t> acc((size_t)n_out);
      reduce_groups<int32_t, int64_t>(op, x.data<int32_t>(), g, acc.data());
      store_acc(acc.data(), out, 1.0);
    } else {
      reduce_groups<int32_t, int32_t>(op, x.data<int32_t>(), g, out.data<int32_t>());
    }
  }
  return out;
}

// If a (size-1 dimensions aside) is a dense tensor with its dimensions permuted — a transpose —
// returns true with perm: the dimensions of a (size > 1) in storage order, outermost first.
bool dense_permutation(const Tensor& a, std::vector<int64_t>& perm) {
  perm.clear();
  for (int64_t d = 0; d < a.ndim(); d++)
    if (a.shape[d] > 1) perm.push_back(d);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t p, int64_t q) { return a.strides[p] > a.strides[q]; });
  int64_t expect = 1;
  for (size_t i = perm.size(); i-- > 0;) {
    if (a.strides[perm[i]] != expect) return false;
    expect *= a.shape[perm[i]];
  }
  return true;
}

}  // namespace

Tensor cpu_reduce(ReduceOp op, const Tensor& a, const std::vector<int64_t>& axes, const Shape& out_shape) {
  std::vector<int64_t> perm;
  if (a.is_contiguous() || a.numel() == 0 || !dense_permutation(a, perm)) return reduce_in_order(op, a, axes, out_shape);
  // A transposed input is reduced in its storage order (no copy of it), with the axes renumbered;
  // only the result, if its kept dimensions come out in another order, is reordered.
  std::vector<bool> red(a.ndim(), false);
  for (auto ax : axes) red[ax] = true;
  Tensor base = a;
  base.shape.clear();
  base.strides.clear();
  std::vector<int64_t> base_axes, kept;  // kept: a's kept dimensions in storage order
  Shape kept_shape;
  for (size_t i = 0; i < perm.size(); i++) {
    base.shape.push_back(a.shape[perm[i]]);
    base.strides.push_back(a.strides[perm[i]]);
    if (red[perm[i]]) base_axes.push_back((int64_t)i);
    else kept.push_back(perm[i]), kept_shape.push_back(a.shape[perm[i]]);
  }
  Tensor r = reduce_in_order(op, base, base_axes, kept_shape);
  if (!std::is_sorted(kept.begin(), kept.end())) {
    // view r with its dimensions in a's order, then make that contiguous
    Shape rs = Tensor::contiguous_strides(kept_shape);
    std::vector<size_t> order(kept.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t p, size_t q) { return kept[p] < kept[q]; });
    Tensor v = r;
    v.shape.clear();
    v.strides.clear();
    for (size_t i : order) v.shape.push_back(kept_shape[i]), v.strides.push_back(rs[i]);
    r = cpu_convert(v, v.dtype);
  }
  r.shape = out_shape;
  r.strides = Tensor::contiguous_strides(out_shape);
  return r;
}

// ---------------------------------------------------------------------------------------------
// argmax / argmin

namespace {

// Is v a better extreme than the current best? NaN beats everything and the first NaN stays;
// on ties the earlier index stays.
template <class T>
inline bool better(T v, T best, bool is_max) {
  if (best != best) return false;
  if (v != v) return true;
  return is_max ? v > best : v < best;
}

template <class T>
void arg_ori(bool is_max, const T* x, int64_t O, int64_t R, int64_t I, int32_t* y) {
  if (I == 1) {
    // Index of the first extreme of row[r0, r1).
    auto arg_run = [is_max](const T* row, int64_t r0, int64_t r1) -> int64_t {
      if constexpr (std::is_same<T, float>::value) {
        if (r1 - r0 >= 32) return r0 + f32_rows().argminmax(row + r0, r1 - r0, is_max);
      }
      T best = row[r0];
      int64_t bi = r0;
      for (int64_t r = r0 + 1; r < r1 && best == best; r++)
        if (better(row[r], best, is_max)) best = row[r], bi = r;
      return bi;
    };
    const int64_t S = (O < 16 && R >= 2 * kChunk) ? std::min(kMaxSplits, R / kChunk) : 1;
    if (S == 1) {
      parallel_for(O, std::max<int64_t>(1, kChunk / R), [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; o++) y[o] = (int32_t)arg_run(x + o * R, 0, R);
      });
      return;
    }
    std::vector<int64_t> pi((size_t)(O * S));
    parallel_for(O * S, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) {
        int64_t o = t / S, s = t % S;
        pi[t] = arg_run(x + o * R, R * s / S, R * (s + 1) / S);
      }
    });
    for (int64_t o = 0; o < O; o++) {
      const T* row = x + o * R;
      int64_t bi = pi[o * S];
      for (int64_t s = 1; s < S; s++)
        if (better(row[pi[o * S + s]], row[bi], is_max)) bi = pi[o * S + s];
      y[o] = (int32_t)bi;
    }
    return;
  }
  const int64_t nib = (I + kIBlock - 1) / kIBlock;
  parallel_for(O * nib, std::max<int64_t>(1, kChunk / (R * std::min(I, kIBlock))), [&](int64_t t0, int64_t t1) {
    std::vector<T> best((size_t)std::min(I, kIBlock));
    for (int64_t t = t0; t < t1; t++) {
      int64_t o = t / nib, i0 = (t % nib) * kIBlock, n = std::min(kIBlock, I - i0);
      int32_t* yi = y + o * I + i0;
      const T* x0 = x + o * R * I + i0;
      for (int64_t i = 0; i < n; i++) best[i] = x0[i], yi[i] = 0;
      for (int64_t r = 1; r < R; r++) {
        const T* xr = x0 + r * I;
        for (int64_t i = 0; i < n; i++)
          if (better(xr[i], best[i], is_max)) best[i] = xr[i], yi[i] = (int32_t)r;
      }
    }
  });
}

void ori_dims(const Shape& shape, int64_t axis, int64_t& O, int64_t& R, int64_t& I) {
  O = 1, I = 1;
  for (int64_t d = 0; d < axis; d++) O *= shape[d];
  R = shape.empty() ? 1 : shape[axis];
  for (int64_t d = axis + 1; d < (int64_t)shape.size(); d++) I *= shape[d];
}

}  // namespace

Tensor cpu_arg_reduce(bool is_max, const Tensor& a, int64_t axis, const Shape& out_shape) {
  Tensor out = Tensor::empty(DType::i32, out_shape, a.device());
  int64_t O, R, I;
  ori_dims(a.shape, axis, O, R, I);
  if (O * I == 0) return out;
  if (f32_family(a.dtype)) {
    Tensor x = cpu_convert(a, DType::f32);
    arg_ori<float>(is_max, x.data<float>(), O, R, I, out.data<int32_t>());
  } else if (a.dtype == DType::f64) {
    Tensor x = cpu_convert(a, a.dtype);
    arg_ori<double>(is_max, x.data<double>(), O, R, I, out.data<int32_t>());
  } else {
    Tensor x = cpu_convert(a, a.dtype);
    arg_ori<int32_t>(is_max, x.data<int32_t>(), O, R, I, out.data<int32_t>());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// softmax

namespace {

// One row of n: y = softmax(x) or log_softmax(x). log_softmax is (x − max) − log Σ, as torch's: the
// one constant max + log Σ, rounded to float, lost up to half an ulp of max (logits of 1000: 490 ulp
// of the result −0.69).
void softmax_row(const F32Rows& K, const float* x, float* y, int64_t n, bool log) {
  float m = K.minmax(x, n, true);
  if (log) {
    double s = K.exp_sum(x, nullptr, n, m);
    K.unary((int)UnaryOp::add_scalar, x, y, n, -m, 0);
    K.unary((int)UnaryOp::add_scalar, y, y, n, -(float)std::log(s), 0);
  } else {
    double s = K.exp_sum(x, y, n, m);
    K.unary((int)UnaryOp::mul_scalar, y, y, n, (float)(1.0 / s), 0);
  }
}

void softmax_row(const double* x, double* y, int64_t n, bool log) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; i++) m = nan_max(m, x[i]);
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; i++) s += std::exp(x[i] - m);
    const double ls = std::log(s);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - ls;
  } else {
    for (int64_t i = 0; i < n; i++) s += (y[i] = std::exp(x[i] - m));
    double inv = 1.0 / s;
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
  }
}

// Columns: x [R, I] with stride I between rows; n ≤ kSoftBlock columns starting at x. 128 columns
// (512 bytes of each row) measured best at [4096, 1024]: narrower strips touch one or two lines per
// row at a large stride, wider ones fall out of L2 between the three passes.
constexpr int64_t kSoftBlock = 128;

void softmax_cols(const double* x, double* y, int64_t R, int64_t I, int64_t n, bool log) {
  double m[kSoftBlock], s[kSoftBlock];
  for (int64_t i = 0; i < n; i++) m[i] = x[i], s[i] = 0;
  for (int64_t r = 1; r < R; r++)
    for (int64_t i = 0; i < n; i++) m[i] = nan_max(m[i], x[r * I + i]);
  for (int64_t r = 0; r < R; r++)
    for (int64_t i = 0; i < n; i++) s[i] += (y[r * I + i] = std::exp(x[r * I + i] - m[i]));
  for (int64_t i = 0; i < n; i++) s[i] = log ? std::log(s[i]) : 1.0 / s[i];
  for (int64_t r = 0; r < R; r++)
    for (int64_t i = 0; i < n; i++) y[r * I + i] = log ? (x[r * I + i] - m[i]) - s[i] : y[r * I + i] * s[i];
}

// Many short rows (R < 32, e.g. a few classes): per row calls would cost more than the work, so
// each block of rows is done in one sweep: row maxima, x − max over the block, one vector exp of
// the whole block, row sums, then the scaling (or x − max − log s).
void softmax_short_rows(const F32Rows& K, const float* x, float* y, int64_t O, int64_t R, bool log) {
  constexpr int64_t kRows = 256;
  parallel_for((O + kRows - 1) / kRows, std::max<int64_t>(1, kChunk / 4 / (kRows * R)), [&](int64_t b0, int64_t b1) {
    float m[kRows];
    for (int64_t b = b0; b < b1; b++) {
      const int64_t o0 = b * kRows, no = std::min(kRows, O - o0);
      const float* xb = x + o0 * R;
      float* yb = y + o0 * R;
      for (int64_t o = 0; o < no; o++) {
        float mx = xb[o * R];
        for (int64_t r = 1; r < R; r++) mx = nan_max(mx, xb[o * R + r]);
        m[o] = mx;
        for (int64_t r = 0; r < R; r++) yb[o * R + r] = xb[o * R + r] - mx;
      }
      K.unary((int)UnaryOp::exp, yb, yb, no * R, 0, 0);
      for (int64_t o = 0; o < no; o++) {
        double sum = 0;
        for (int64_t r = 0; r < R; r++) sum += yb[o * R + r];
        if (log) {
          const float ls = (float)std::log(sum);
          for (int64_t r = 0; r < R; r++) yb[o * R + r] = (xb[o * R + r] - m[o]) - ls;
        } else {
          const float inv = (float)(1.0 / sum);
          for (int64_t r = 0; r < R; r++) yb[o * R + r] *= inv;
        }
      }
    }
  });
}

template <class T, class RowFn, class ColFn>
void softmax_ori(const T* x, T* y, int64_t O, int64_t R, int64_t I, RowFn row, ColFn cols) {
  if (O * R * I == 0) return;
  if (I == 1) {
    parallel_for(O, std::max<int64_t>(1, kChunk / 4 / R), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) row(x + o * R, y + o * R, R);
    });
    return;
  }
  const int64_t nib = (I + kSoftBlock - 1) / kSoftBlock;
  parallel_for(O * nib, std::max<int64_t>(1, kChunk / 4 / (R * std::min(I, kSoftBlock))), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int64_t o = t / nib, i0 = (t % nib) * kSoftBlock;
      const int64_t off = o * R * I + i0;
      cols(x + off, y + off, R, I, std::min(kSoftBlock, I - i0));
    }
  });
}

}  // namespace

Tensor cpu_softmax(const Tensor& a, int64_t axis, bool log) {
  int64_t O, R, I;
  ori_dims(a.shape, axis, O, R, I);
  if (a.dtype == DType::f64) {
    Tensor x = cpu_convert(a, a.dtype);
    Tensor y = Tensor::empty(DType::f64, a.shape, a.device());
    softmax_ori<double>(
        x.data<double>(), y.data<double>(), O, R, I,
        [&](const double* xr, double* yr, int64_t n) { softmax_row(xr, yr, n, log); },
        [&](const double* xc, double* yc, int64_t R_, int64_t I_, int64_t n) { softmax_cols(xc, yc, R_, I_, n, log); });
    return y;
  }
  const F32Rows& K = f32_rows();
  const bool half = a.dtype == DType::bf16 || a.dtype == DType::f16;
  if (half && I == 1 && R >= 32 && a.is_contiguous()) {
    // Rows of a 16-bit tensor: each widened into a per-thread float32 row, softmaxed there and rounded
    // straight into the output — the same bits as converting the whole tensor first, without the two
    // float32 tensors (a [4096, 4096] bfloat16 softmax moved 320 MB for 64).
    Tensor y = Tensor::empty(a.dtype, a.shape, a.device());
    const uint16_t* xs = a.data<uint16_t>();
    uint16_t* ys = y.data<uint16_t>();
    const bool bf = a.dtype == DType::bf16;
    parallel_for(O, std::max<int64_t>(1, kChunk / 4 / R), [&](int64_t o0, int64_t o1) {
      thread_local std::vector<float> buf;
      if ((int64_t)buf.size() < 2 * R) buf.resize((size_t)(2 * R));
      float* xr = buf.data();
      float* yr = xr + R;
      for (int64_t o = o0; o < o1; o++) {
        if (bf) K.bf16_to_f32(xs + o * R, 1, xr, R);
        else K.f16_to_f32(xs + o * R, 1, xr, R);
        softmax_row(K, xr, yr, R, log);
        if (bf) K.f32_to_bf16(yr, ys + o * R, R);
        else K.f32_to_f16(yr, ys + o * R, R);
      }
    });
    return y;
  }
  Tensor x = cpu_convert(a, DType::f32);
  Tensor y = Tensor::empty(DType::f32, a.shape, a.device());
  if (I == 1 && R < 32) {
    if (O * R > 0) softmax_short_rows(K, x.data<float>(), y.data<float>(), O, R, log);
    return a.dtype == DType::f32 ? y : cpu_convert(y, a.dtype);
  }
  softmax_ori<float>(
      x.data<float>(), y.data<float>(), O, R, I,
      [&](const float* xr, float* yr, int64_t n) { softmax_row(K, xr, yr, n, log); },
      [&](const float* xc, float* yc, int64_t R_, int64_t I_, int64_t n) { K.softmax_cols(xc, yc, R_, I_, n, log); });
  return a.dtype == DType::f32 ? y : cpu_convert(y, a.dtype);
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

// The max of a float64 row and Σ exp(x − max), in order (e, when given, receives each exp(x − max)).
static void max_exp_sum(const double* row, int64_t n, double& mx, double& s, double* e = nullptr) {
  mx = -std::numeric_limits<double>::infinity();
  s = 0;
  for (int64_t c = 0; c < n; c++) mx = nan_max(mx, row[c]);
  for (int64_t c = 0; c < n; c++) {
    const double v = std::exp(row[c] - mx);
    if (e) e[c] = v;
    s += v;
  }
}

// out[j] = Σ_c w[c]·(lse[j] − x[j][c]) for k ≤ kSpreadRows float64 rows x[j], each summed in order c = 0,
// 1, … as one scalar chain would (the same bits), the rows' chains side by side: a chain alone waits on
// the add's latency each step. Float32 rows: F32Rows::wspread, the same in vectors.
constexpr int kSpreadRows = 8;
static void weighted_spread(const double* const* x, int k, int64_t n, const double* w, const double* lse,
                            double* out) {
  const double* p[kSpreadRows];
  double l[kSpreadRows], s[kSpreadRows] = {};
  for (int j = 0; j < kSpreadRows; j++) p[j] = x[j < k ? j : 0], l[j] = lse[j < k ? j : 0];  // padding: row 0 again
  for (int64_t c = 0; c < n; c++) {
    const double wc = w[c];
    for (int j = 0; j < kSpreadRows; j++) s[j] += wc * (l[j] - p[j][c]);
  }
  for (int j = 0; j < k; j++) out[j] = s[j];
}

// With class weights w [C] (as doubles): PyTorch's (1 − ε)·w[y]·(lse − x[y]) + ε/C·Σ_c w[c]·(lse − x[c]),
// the sum over c only when ε ≠ 0, in order over c (weighted_spread); the device kernels compute the same
// formula, their sum in lanes.
static void cross_entropy_rows_weighted(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps,
                                        const double* w, double* loss) {
  const int64_t M = logits.shape[0], C = logits.shape[1];
  const bool f64 = logits.dtype == DType::f64;
  Tensor x = cpu_convert(logits, f64 ? DType::f64 : DType::f32);
  // rows kept are taken kSpreadRows at a time: their lse first, then the smoothing sums side by side
  auto run = [&](auto* base, auto row_lse) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(base)>>;
    parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
      const T* rows[kSpreadRows];
      int64_t idx[kSpreadRows];
      double lse[kSpreadRows], spread[kSpreadRows];
      int k = 0;
      auto flush = [&] {
        if (eps == 0) std::fill(spread, spread + k, 0.0);
        else if constexpr (std::is_same_v<T, float>) f32_rows().wspread(rows, k, C, w, lse, spread);
        else weighted_spread(rows, k, C, w, lse, spread);
        for (int j = 0; j < k; j++) {
          const int64_t m = idx[j];
          const double xl = (double)rows[j][labels[m]];
          loss[m] = (1 - eps) * w[labels[m]] * (lse[j] - xl) + eps / (double)C * spread[j];
        }
        k = 0;
      };
      for (int64_t m = m0; m < m1; m++) {
        if (labels[m] == ignore) {
          loss[m] = 0;
          continue;
        }
        rows[k] = base + m * C;
        idx[k] = m;
        lse[k] = row_lse(rows[k]);
        if (++k == kSpreadRows) flush();
      }
      if (k) flush();
    });
  };
  if (f64) {
    run(x.data<double>(), [&](const double* row) {
      double mx, s;
      max_exp_sum(row, C, mx, s);
      return mx + std::log(s);
    });
  } else {
    const F32Rows& K = f32_rows();
    run(x.data<float>(), [&](const float* row) {
      const float mx = K.minmax(row, C, true);
      return (double)mx + std::log(K.exp_sum(row, nullptr, C, mx));
    });
  }
}

void cpu_cross_entropy_rows(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps, double* loss,
                            const double* weight) {
  const int64_t M = logits.shape[0], C = logits.shape[1];
  if (M == 0) return;
  if (weight) return cross_entropy_rows_weighted(logits, labels, ignore, eps, weight, loss);
  if (logits.dtype == DType::f64) {
    Tensor x = cpu_convert(logits, logits.dtype);
    const double* xd = x.data<double>();
    parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++) {
        if (labels[m] == ignore) {
          loss[m] = 0;
          continue;
        }
        const double* row = xd + m * C;
        double mx, s, sx = 0;
        max_exp_sum(row, C, mx, s);
        if (eps != 0)
          for (int64_t c = 0; c < C; c++) sx += row[c];
        loss[m] = mx + std::log(s) - (1 - eps) * row[labels[m]] - eps * (sx / (double)C);
      }
    });
  } else {
    const F32Rows& K = f32_rows();
    Tensor x = cpu_convert(logits, DType::f32);
    const float* xf = x.data<float>();
    parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++) {
        if (labels[m] == ignore) {
          loss[m] = 0;
          continue;
        }
        const float* row = xf + m * C;
        float mx = K.minmax(row, C, true);
        double s = K.exp_sum(row, nullptr, C, mx);
        const double mean = eps != 0 ? K.sum(row, C) / (double)C : 0;
        loss[m] = (double)mx + std::log(s) - (1 - eps) * (double)row[labels[m]] - eps * mean;
      }
    });
  }
}

// g·(a·softmax − (1 − ε)·w[y]·onehot(y) − ε/C·w), a = (1 − ε)·w[y] + ε/C·Σw: the weighted rows' gradient,
// in the device kernel's order (exp(x − max) · (g·a / Σexp) in double, rounded once to float; a GPU
// may fuse a multiply-add there: last-bit differences).
static Tensor cross_entropy_backward_weighted(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps,
                                              double g, const double* g_rows, const double* w, double w_sum) {
  const int64_t M = logits.shape[0], C = logits.shape[1];
  const bool f64 = logits.dtype == DType::f64;
  Tensor x = cpu_convert(logits, f64 ? DType::f64 : DType::f32);
  Tensor y = Tensor::empty(f64 ? DType::f64 : DType::f32, logits.shape, logits.device());
  parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const int32_t label = labels[m];
      const bool skip = label == ignore;
      const double gm = g_rows ? g_rows[m] : g;
      const double wl = skip ? 0 : w[label];
      const double on = gm * (1 - eps) * wl, spread = gm * eps / (double)C;
      // the smoothing term only when there is one: 0·Σw is NaN for a NaN or infinite weight (torch's is finite)
      const double a = (1 - eps) * wl + (eps != 0 ? eps / (double)C * w_sum : 0.0);
      if (f64) {
        const double* row = x.data<double>() + m * C;
        double* out = y.data<double>() + m * C;
        if (skip) {
          std::fill(out, out + C, 0.0);
          continue;
        }
        double mx, s;
        max_exp_sum(row, C, mx, s, out);  // out: exp(x − max)
        const double scale = gm * a / s;
        const double el = out[label];
        // the label's element apart (below), so that these loops vectorize
        if (spread != 0)
          for (int64_t c = 0; c < C; c++) out[c] = out[c] * scale - spread * w[c];
        else
          for (int64_t c = 0; c < C; c++) out[c] *= scale;
        double v = el * scale - on;
        if (spread != 0) v -= spread * w[label];
        out[label] = v;
      } else {
        const F32Rows& K = f32_rows();
        const float* row = x.data<float>() + m * C;
        float* out = y.data<float>() + m * C;
        if (skip) {
          std::fill(out, out + C, 0.0f);
          continue;
        }
        const float mx = K.minmax(row, C, true);
        const double scale = gm * a / K.exp_sum(row, out, C, mx);  // out: exp(x − max)
        const float el = out[label];
        // (double)out[c]·scale − spread·w[c], rounded by double_to_float_exact: the pool's FTZ (when on) would flush
        // a subnormal; the devices do not. The label's element apart, in the same order.
        K.scale_sub(out, C, scale, spread, spread != 0 ? w : nullptr);
        double v = (double)el * scale - on;
        if (spread != 0) v -= spread * w[label];
        out[label] = double_to_float_exact(v);
      }
    }
  });
  return f64 || logits.dtype == DType::f32 ? y : cpu_convert(y, logits.dtype);
}

Tensor cpu_cross_entropy_backward(const Tensor& logits, const int32_t* labels, int32_t ignore, double eps, double g,
                                  const double* g_rows, const double* weight, double weight_sum) {
  const int64_t M = logits.shape[0], C = logits.shape[1];
  if (weight) return cross_entropy_backward_weighted(logits, labels, ignore, eps, g, g_rows, weight, weight_sum);
  if (logits.dtype == DType::f64) {
    Tensor x = cpu_convert(logits, logits.dtype);
    Tensor y = Tensor::empty(DType::f64, logits.shape, logits.device());
    const double* xd = x.data<double>();
    double* yd = y.data<double>();
    parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++) {
        double* out = yd + m * C;
        if (labels[m] == ignore) {
          std::fill(out, out + C, 0.0);
          continue;
        }
        const double gm = g_rows ? g_rows[m] : g, off = gm * eps / (double)C;
        softmax_row(xd + m * C, out, C, false);
        for (int64_t c = 0; c < C; c++) out[c] *= gm;
        out[labels[m]] -= gm * (1 - eps);
        if (off != 0)
          for (int64_t c = 0; c < C; c++) out[c] -= off;
      }
    });
    return y;
  }
  const F32Rows& K = f32_rows();
  Tensor x = cpu_convert(logits, DType::f32);
  Tensor y = Tensor::empty(DType::f32, logits.shape, logits.device());
  const float* xf = x.data<float>();
  float* yf = y.data<float>();
  parallel_for(M, std::max<int64_t>(1, kChunk / 4 / std::max<int64_t>(C, 1)), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; m++) {
      const float* row = xf + m * C;
      float* out = yf + m * C;
      if (labels[m] == ignore) {
        std::fill(out, out + C, 0.0f);
        continue;
      }
      const double gm = g_rows ? g_rows[m] : g, off = gm * eps / (double)C;
      float mx = K.minmax(row, C, true);
      double s = K.exp_sum(row, out, C, mx);
      K.unary((int)UnaryOp::mul_scalar, out, out, C, (float)(gm / s), 0);
      out[labels[m]] = (float)((double)out[labels[m]] - gm * (1 - eps));
      if (off != 0) K.unary((int)UnaryOp::add_scalar, out, out, C, (float)-off, 0);
    }
  });
  return logits.dtype == DType::f32 ? y : cpu_convert(y, logits.dtype);
}

double cpu_mse(const Tensor& pred, const Tensor& target) {
  const int64_t n = pred.numel();
  if (n == 0) return std::nan("");
  constexpr int64_t kPart = 1 << 16;
  std::vector<double> part((size_t)((n + kPart - 1) / kPart));
  const bool f32 = pred.dtype == DType::f32;
  parallel_for((int64_t)part.size(), 1, [&](int64_t c0, int64_t c1) {
    const F32Rows& K = f32_rows();
    for (int64_t c = c0; c < c1; c++) {
      const int64_t b = c * kPart, len = std::min(kPart, n - b);
      if (f32) {
        part[(size_t)c] = K.sqdiff_sum(pred.data<float>() + b, target.data<float>() + b, len);
      } else {
        const double *p = pred.data<double>() + b, *t = target.data<double>() + b;
        double s[4] = {0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 4 <= len; i += 4)
          for (int k = 0; k < 4; k++) s[k] += (p[i + k] - t[i + k]) * (p[i + k] - t[i + k]);
        for (; i < len; i++) s[0] += (p[i] - t[i]) * (p[i] - t[i]);
        part[(size_t)c] = (s[0] + s[1]) + (s[2] + s[3]);
      }
    }
  });
  double total = 0;
  for (double v : part) total += v;
  return total / (double)n;
}

}  // namespace structura
