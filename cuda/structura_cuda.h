/* structura_cuda.h — the plain C ABI between the addon (csrc/) and the CUDA code (cuda/).
 * Launchers take one params struct and a stream, and return 0 or a CUDA error code; no Node headers
 * here. csrc/cuda_none.cc implements the structura_* names for builds without CUDA.
 *
 * One source, two builds, one binary. Each cuda/<file>.cu is compiled by nvcc for the GPU and, in the same
 * addon, by the host compiler for the emulated device 'cuda-emu' (-DSTRUCTURA_CUDA_EMU -Icuda/emu).
 * So that both sets of extern "C" functions can be linked together, every function below is declared
 * through STRUCTURA_CUDA_FN(name), which is
 *     structura_<name>        under nvcc (and in csrc/ by default)
 *     structura_emu_<name>    in the emulated build (STRUCTURA_CUDA_EMU)
 * csrc/device.cc includes this header twice, the second time with STRUCTURA_CUDA_FN redefined to the
 * emu prefix, to see both. The types are guarded; the declarations are not (redeclaring is legal).
 * Kernels and host helpers in the .cu files must have internal linkage (an anonymous namespace, or static),
 * otherwise the nvcc host stub and the emulated function of the same name collide at link time. */
#ifndef STRUCTURA_CUDA_FN
#ifdef STRUCTURA_CUDA_EMU
#define STRUCTURA_CUDA_FN(name) structura_emu_##name
#else
#define STRUCTURA_CUDA_FN(name) structura_##name
#endif
#endif

#ifndef STRUCTURA_CUDA_TYPES_H
#define STRUCTURA_CUDA_TYPES_H
#include <stddef.h>
#include <stdint.h>

/* The kernels STRUCTURA_CUDA_DISABLE can switch off, in the order of their names (cuda/runtime.cu). */
typedef enum {
  STRUCTURA_SW_WGMMA, STRUCTURA_SW_WGMMA_TMA, STRUCTURA_SW_LORA_DECODE, STRUCTURA_SW_DECODE_SPLITK,
  STRUCTURA_SW_DECODE_STREAM, STRUCTURA_SW_DECODE_F32, STRUCTURA_SW_DECODE_NMAJOR, STRUCTURA_SW_DECODE_NMAJOR_F32,
  STRUCTURA_SW_PDL, STRUCTURA_SW_COUNT
} structura_kernel_switch;

typedef struct {
  float* out;       /* [n] */
  const float* a;   /* [n] */
  const float* b;   /* [n] */
  int64_t n;
} structura_add_f32_params;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- runtime (cuda/runtime.cu) ---------------------------------------------------------------- */
/* 1 if this binary was built with CUDA (the emulated build: 1). */
int STRUCTURA_CUDA_FN(cuda_compiled)(void);
/* Number of usable devices, or 0 with the driver's error in msg ("cudaErrorNoDevice: ..."). */
int STRUCTURA_CUDA_FN(cuda_probe)(int* device_count, int* runtime_version, int* driver_version, char* msg,
                                  size_t msg_len);
/* Name, compute capability and memory of device idx; 0 on success. */
int STRUCTURA_CUDA_FN(cuda_device_props)(int idx, char* name, size_t name_len, int* cc_major, int* cc_minor,
                                         size_t* total_mem);

/* ---- device memory (cuda/runtime.cu) -----------------------------------------------------------
 * Each call makes `device` current first and returns 0 or a cudaError_t code. `stream` is a
 * cudaStream_t (NULL: the device's default stream). Copies and memset are stream-ordered (async);
 * a d2h copy is complete only after cuda_stream_synchronize. A failed cuda_malloc clears the error
 * it raised, so an out-of-memory that the caller recovers from is not reported again later. */
int STRUCTURA_CUDA_FN(cuda_set_device)(int device);
int STRUCTURA_CUDA_FN(cuda_malloc)(int device, void** p, size_t bytes);
int STRUCTURA_CUDA_FN(cuda_free)(int device, void* p);
int STRUCTURA_CUDA_FN(cuda_memset)(int device, void* p, int value, size_t bytes, void* stream);
int STRUCTURA_CUDA_FN(cuda_memcpy_h2d)(int device, void* dst, const void* src, size_t bytes, void* stream);
int STRUCTURA_CUDA_FN(cuda_memcpy_d2h)(int device, void* dst, const void* src, size_t bytes, void* stream);
int STRUCTURA_CUDA_FN(cuda_memcpy_d2d)(int device, void* dst, const void* src, size_t bytes, void* stream);
int STRUCTURA_CUDA_FN(cuda_stream_synchronize)(int device, void* stream);
/* Host copies of at least min_bytes go through two pinned staging buffers of cuda/runtime.cu (0: never;
 * the default is 32 MiB); returns the previous threshold. */
size_t STRUCTURA_CUDA_FN(cuda_set_staging)(size_t min_bytes);
/* The memcpy the staged copies use on the host side (NULL: memcpy); the addon gives a parallel one. */
#ifndef STRUCTURA_CUDA_HOST_MEMCPY_FN
#define STRUCTURA_CUDA_HOST_MEMCPY_FN
typedef void (*structura_host_memcpy_fn)(void* dst, const void* src, size_t bytes);
#endif
void STRUCTURA_CUDA_FN(cuda_set_host_memcpy)(structura_host_memcpy_fn fn);
/* The current device's compute capability and SM count (read once per device); 0 or a cudaError_t. */
int STRUCTURA_CUDA_FN(cuda_current_device)(int* cc_major, int* cc_minor, int* sms);
/* Programmatic dependent launch (cuda/launch.cuh launch_pdl): whether it is on (default 1) — set_pdl
 * returns the previous setting — and whether launch_pdl uses it on the current device (on, and compute
 * capability 9.0 or newer; the emulated device is a 9.0). */
int STRUCTURA_CUDA_FN(cuda_set_pdl)(int on);
int STRUCTURA_CUDA_FN(cuda_pdl_active)(void);
/* Kernels switched off by the environment: STRUCTURA_CUDA_DISABLE=name[,name...] (read once) keeps the
 * named kernels — the ones that had not yet passed on a GPU when they were written — from running:
 *   wgmma  wgmma-tma  lora-decode  decode-splitk  decode-stream  decode-f32  decode-nmajor
 *   decode-nmajor-f32  pdl
 * (bit i of the mask is name i). A default path then takes the kernel it replaced; the addon's switches
 * that would ask for one (setGemmKernel, setLoraDecode, setDecodeKernel, setDependentLaunch) throw.
 * scripts/gpu-check.sh sets it from test/gpu/probe.ts's verdicts, so that one broken kernel does not take
 * a whole GPU run down with it. An unknown name is reported on stderr once. cuda_disabled(i): whether
 * switch i is off; cuda_switch_name(i): its name, or NULL past the last. */
int STRUCTURA_CUDA_FN(cuda_disabled)(int kernel_switch);
const char* STRUCTURA_CUDA_FN(cuda_switch_name)(int kernel_switch);
/* Free and total memory of the device. */
int STRUCTURA_CUDA_FN(cuda_mem_info)(int device, size_t* free_bytes, size_t* total_bytes);
/* Describes the error `code` returned by a call or launcher above ("cudaErrorIllegalAddress: ...";
 * in emulation followed by the emulator's report naming kernel, block, thread and address) and clears
 * the pending error state (cudaGetLastError; in emulation also the report queued for the next
 * synchronize), so one failure is reported once. */
void STRUCTURA_CUDA_FN(cuda_describe_error)(int code, char* msg, size_t msg_len);
/* The last kernel error (cudaGetLastError, which clears it): 0 or its code, described in msg. */
int STRUCTURA_CUDA_FN(cuda_last_error)(char* msg, size_t msg_len);

/* ---- elementwise (cuda/elementwise.cu) -------------------------------------------------------- */
/* out = a + b, contiguous float32; 16-byte loads when all three pointers are 16-byte aligned. */
int STRUCTURA_CUDA_FN(add_f32)(const structura_add_f32_params* p, void* stream);

/* ---- dense GEMM (cuda/dense.cu) ----------------------------------------------------------------- */
#ifndef STRUCTURA_CUDA_GEMM_TYPES_H /* types once: this header may be included twice (see the top) */
#define STRUCTURA_CUDA_GEMM_TYPES_H
typedef enum { STRUCTURA_DT_F32 = 0, STRUCTURA_DT_F16 = 1, STRUCTURA_DT_BF16 = 2 } structura_dtype;
typedef enum { STRUCTURA_ACT_NONE = 0, STRUCTURA_ACT_RELU = 1, STRUCTURA_ACT_GELU = 2 } structura_act;
/* For each batch index b (each pointer advanced by b times its stride, in elements; stride 0 shares it):
 *   z = alpha*op(A)op(B) + lr_scale*T*R^T + bias[n] + beta*C[m,n];   out[m,n] = act(z) + residual[m,n]
 * op(A) is M x K: A stored [M, K] (row stride lda), or with trans_a stored [K, M] (op(A) = A^T).
 * op(B) is K x N: B stored [K, N] (row stride ldb), or with trans_b stored [N, K] (op(B) = B^T).
 * dtype (a, b, lr_t, lr_r): F16/BF16 run on tensor cores (sm_80+, f32 accumulation), F32 on the SIMT
 * kernel. out_dtype (out, c, bias, residual): F32 or equal to dtype. Optional inputs are NULL when
 * unused; c is read only when beta != 0, the rank-r term only when lr_t, lr_r and lr_scale != 0.
 * act: structura_act (gelu: the exact erf form). Returns 0, or a CUDA error code
 * (cudaErrorInvalidValue for bad arguments). M, N or batch of 0 is a no-op; K = 0 gives the epilogue
 * (a and b may then be NULL). */
typedef struct {
  int dtype, out_dtype;
  void* out;             /* [M, N], row stride ldc */
  const void* a;         /* [M, K] or [K, M] */
  const void* b;         /* [K, N] or [N, K] */
  const void* c;         /* [M, N], row stride ldc (may equal out) */
  const void* bias;      /* [N] */
  const void* residual;  /* [M, N], row stride ldres */
  const void* lr_t;      /* [M, r], row stride ldt */
  const void* lr_r;      /* [N, r], row stride ldr */
  int64_t m, n, k, r, batch;
  int64_t lda, ldb, ldc, ldres, ldt, ldr;
  int64_t stride_a, stride_b, stride_out, stride_c, stride_bias, stride_res, stride_t, stride_r;
  int trans_a, trans_b, act;
  float alpha, beta, lr_scale;
  /* How the decode kernel (M <= 16) starts (structura::launch_pdl, sm_90+; elsewhere in stream order);
   * the TMA wgmma kernel takes 1 alike (it reads a and b, then waits before the rank term's k-tiles):
   * 0 (default): as a dependent launch that only asks L2 to prefetch its rows of b before it waits for
   *   the kernels ahead, then runs; 1: it also streams b and reads a before it waits — a and b were
   *   complete before the chain of dependent launches ahead of it began (lowrank's final product after
   *   lora_t); lr_t, lr_r, bias, c, residual and out are touched only after the wait; 2: an ordinary
   *   launch (the start of such a chain: lowrank's T = x·Aᵀ). */
  int pdl;
} structura_gemm_params;
#endif
int STRUCTURA_CUDA_FN(gemm)(const structura_gemm_params* p, void* stream);
/* Which kernel runs the float16 / bfloat16 products: 0 auto (mma.sync for now; wgmma on an sm_90
 * device with sm_90a code once that kernel has passed on a GPU, see kWgmmaByDefault), 1 mma.sync,
 * 2 wgmma wherever the layout fits on sm_90 (tests, benchmarks), 3 the TMA warp-specialized wgmma
 * kernel wherever it fits (batch 1; else as 2). Returns the previous mode, or -1 for
 * a bad one. Process-wide. */
int STRUCTURA_CUDA_FN(gemm_set_kernel)(int mode);
/* The most 128-row tiles one launch of the GEMM covers (grid.y; 1..65535, the default 65535): taller
 * products run as several launches. Returns the previous limit, or -1 for a bad one. Process-wide;
 * tests lower it to run that path at small sizes. */
int STRUCTURA_CUDA_FN(gemm_set_row_tiles)(int tiles);
/* Which decode kernels (float16 / bfloat16, M <= 16) run: 1 (the default) or 2 pick the one for x times
 * W stored [N, K] (1: plain loads; 2: W through streaming loads with an L2 prefetch hint, not yet timed
 * on a GPU); both run the one for W stored [K, N]; 0 runs neither (the tile kernels take M <= 16).
 * Returns the previous version, or -1 for a bad one. Process-wide. */
int STRUCTURA_CUDA_FN(gemm_set_decode)(int version);
/* 1 when the wgmma kernel may run on the current device (sm_90, built for sm_90a, mode not mma.sync):
 * callers then give large products B stored [N, K] (a transposed copy of an N-major B) so that it does. */
int STRUCTURA_CUDA_FN(gemm_wgmma_active)(void);

/* ---- core ops: strided copy / cast (cuda/copy.cu), elementwise (cuda/elementwise.cu), reductions,
 * softmax and cross-entropy (cuda/reduce.cu) ----------------------------------------------------
 * dtype fields use the tensor dtype codes of csrc/tensor.h (structura_tensor_dtype). Strides and
 * offsets count elements; a stride may be 0 (broadcast). At most STRUCTURA_MAX_DIMS dimensions after
 * the caller has dropped size-1 dimensions and merged contiguous ones. n = 0 is a no-op. */
#ifndef STRUCTURA_CUDA_OPS_TYPES_H /* types once: this header may be included twice (see the top) */
#define STRUCTURA_CUDA_OPS_TYPES_H
#define STRUCTURA_MAX_DIMS 8
typedef enum {
  STRUCTURA_T_F32 = 0, STRUCTURA_T_F64 = 1, STRUCTURA_T_F16 = 2, STRUCTURA_T_BF16 = 3,
  STRUCTURA_T_I32 = 4, STRUCTURA_T_U8 = 5, STRUCTURA_T_U16 = 6
} structura_tensor_dtype;
/* The order of csrc/cpu/elementwise.h BinaryOp / UnaryOp (checked there by static_assert). */
typedef enum {
  STRUCTURA_BIN_ADD, STRUCTURA_BIN_SUB, STRUCTURA_BIN_MUL, STRUCTURA_BIN_DIV, STRUCTURA_BIN_POW,
  STRUCTURA_BIN_MAXIMUM, STRUCTURA_BIN_MINIMUM, STRUCTURA_BIN_EQ, STRUCTURA_BIN_NE, STRUCTURA_BIN_LT,
  STRUCTURA_BIN_LE, STRUCTURA_BIN_GT, STRUCTURA_BIN_GE, STRUCTURA_BIN_COUNT
} structura_binary_op;
typedef enum {
  STRUCTURA_UN_NEG, STRUCTURA_UN_EXP, STRUCTURA_UN_LOG, STRUCTURA_UN_SQRT, STRUCTURA_UN_RSQRT, STRUCTURA_UN_ABS,
  STRUCTURA_UN_RELU, STRUCTURA_UN_GELU, STRUCTURA_UN_SILU, STRUCTURA_UN_TANH, STRUCTURA_UN_SIGMOID,
  STRUCTURA_UN_SQUARE, STRUCTURA_UN_RECIPROCAL, STRUCTURA_UN_SIGN, STRUCTURA_UN_STEP, STRUCTURA_UN_ERF,
  STRUCTURA_UN_SIN, STRUCTURA_UN_COS, STRUCTURA_UN_GELU_GRAD, STRUCTURA_UN_SILU_GRAD, STRUCTURA_UN_ADD_SCALAR,
  STRUCTURA_UN_MUL_SCALAR, STRUCTURA_UN_POW_SCALAR, STRUCTURA_UN_RSUB_SCALAR, STRUCTURA_UN_RDIV_SCALAR,
  STRUCTURA_UN_CLAMP, STRUCTURA_UN_COUNT
} structura_unary_op;
typedef enum { STRUCTURA_RED_SUM = 0, STRUCTURA_RED_MEAN = 1, STRUCTURA_RED_MAX = 2, STRUCTURA_RED_MIN = 3 } structura_reduce_op;

/* dst[index] = convert(src[index]) for every index of shape: each side at its own strides. The
 * conversion is the CPU's cast (csrc/tensor.cc store_from_double(load_as_double(x))) bit for bit:
 * through double with x86's NaN rules (quieted, payload kept), round to nearest even, integers
 * saturating (NaN → 0). dst must not overlap src unless they are the same elements. */
typedef struct {
  void* dst;
  const void* src;
  int dst_dtype, src_dtype;
  int ndim;
  int64_t n;
  int64_t shape[STRUCTURA_MAX_DIMS];
  int64_t dst_strides[STRUCTURA_MAX_DIMS], src_strides[STRUCTURA_MAX_DIMS];
} structura_copy_params;

/* dst[0, bytes) = src[0, bytes) on one device, by a kernel (not the driver's memcpy, which is slower
 * on Hopper); the ranges must not overlap. */
typedef struct {
  void* dst;
  const void* src;
  int64_t bytes;
} structura_copy_bytes_params;

/* out[i] = op(a[index(i)], b[index(i)]), out contiguous [n] in row-major order of shape. dtype: F32,
 * F64, F16, BF16 (computed in f32, rounded once), I32 (wrapping; not div or pow). Comparisons give
 * 1 or 0 in the dtype; maximum/minimum propagate NaN (a's first). out may be a or b exactly. */
typedef struct {
  void* out;
  const void* a;
  const void* b;
  int op, dtype, ndim;
  int64_t n;
  int64_t shape[STRUCTURA_MAX_DIMS];
  int64_t a_strides[STRUCTURA_MAX_DIMS], b_strides[STRUCTURA_MAX_DIMS];
} structura_binary_params;

/* out[i] = op(a[index(i)]; alpha, beta), out contiguous. Float dtypes use alpha/beta (f32 and the
 * 16-bit ones: (float)alpha); I32 uses ialpha/ibeta (the caller's wrapped / clamped values). */
typedef struct {
  void* out;
  const void* a;
  int op, dtype, ndim;
  int64_t n;
  int64_t shape[STRUCTURA_MAX_DIMS];
  int64_t a_strides[STRUCTURA_MAX_DIMS];
  double alpha, beta;
  int32_t ialpha, ibeta;
} structura_unary_params;

/* out[o] (contiguous [n_out]) = reduce over the inner index space (rshape, rstrides) of
 * a[offset(o)], where o walks oshape/ostrides in row-major order. sum/mean: float dtypes accumulate
 * in double, I32 in int64 wrapped to int32; mean divides by count (0/0 = NaN). max/min propagate NaN
 * (count ≥ 1 required). Result in the input's dtype. splits > 1 (few long rows): each row is cut into
 * `splits` pieces, reduced by separate blocks into `partial` (device memory of n_out·splits 8-byte
 * slots), then combined by a second kernel; splits = 1: partial is unused. */
typedef struct {
  void* out;
  const void* a;
  void* partial;
  int op, dtype;
  int ondim, rndim;
  int64_t n_out, count, splits;
  int64_t oshape[STRUCTURA_MAX_DIMS], ostrides[STRUCTURA_MAX_DIMS];
  int64_t rshape[STRUCTURA_MAX_DIMS], rstrides[STRUCTURA_MAX_DIMS];
} structura_reduce_params;

/* The column form of reduce (a reduction over a leading axis: the bias gradient's sum over rows):
 * neighbouring outputs are neighbours in a (the kept index's innermost stride is 1), the reduced
 * elements are not, and there are too few outputs (< STRUCTURA_REDUCE_COLUMN_ROWS) for a thread each.
 * cuda/reduce.cu then gives a block 32 neighbouring outputs, so that a warp reads 32 neighbouring
 * elements at once, and a piece (of `splits`) of the reduced index; the caller sets splits from
 * structura_reduce_column_splits. */
#define STRUCTURA_REDUCE_COLUMN_ROWS 8192
static inline int structura_reduce_is_columns(const structura_reduce_params* p) {
  return p->ondim >= 1 && p->rndim >= 1 && p->n_out < STRUCTURA_REDUCE_COLUMN_ROWS && p->ostrides[p->ondim - 1] == 1 &&
         p->rstrides[p->rndim - 1] != 1;
}
/* Pieces for the column form: about 256 blocks in all, each warp of a block (8) taking ≥ 8 reduced indices. */
static inline int64_t structura_reduce_column_splits(const structura_reduce_params* p) {
  const int64_t blocks = (p->n_out + 31) / 32, want = (256 + blocks - 1) / blocks, most = p->count / 64;
  const int64_t s = want < most ? want : most;
  return s < 1 ? 1 : s > 65535 ? 65535 : s;
}

/* softmax (or log-softmax, log = 1) along one axis of a: rows o walk oshape/ostrides (input) and
 * out_ostrides (output); element k of a row is a[offset(o) + k·stride] and out[out_offset(o) + k·out_stride].
 * dtype F32/F16/BF16 (computed as the CPU does: f32 values, Σ exp in double) or F64. */
typedef struct {
  void* out;
  const void* a;
  int dtype, log, ondim;
  int64_t rows, len, stride, out_stride;
  int64_t oshape[STRUCTURA_MAX_DIMS], ostrides[STRUCTURA_MAX_DIMS], out_ostrides[STRUCTURA_MAX_DIMS];
} structura_softmax_params;

/* Cross-entropy of logits [m, c] (row stride ld, column stride ldc) against labels (int32 [m],
 * contiguous, each in [0, c) or equal to ignore_index: the caller checks). A row's loss, in double:
 * logsumexp(row) − (1 − smoothing)·row[label] − smoothing·mean(row), 0 for an ignored row; with class
 * weights (weight: double [c] on the device, weight_sum = Σ weight; NULL for none), PyTorch's
 * (1 − smoothing)·weight[label]·(lse − row[label]) + smoothing/c·Σ_k weight[k]·(lse − row[k]).
 * reduction STRUCTURA_CE_NONE: loss is [m] of the logits' dtype, one value a row; SUM / MEAN: loss is
 * 0-d, Σ rows (SUM) or Σ rows / divisor (MEAN: the number of rows not ignored, or the sum of their
 * labels' weights; NaN when it is 0). row_loss is scratch device memory of m doubles (unused for NONE). */
enum { STRUCTURA_CE_MEAN = 0, STRUCTURA_CE_SUM = 1, STRUCTURA_CE_NONE = 2 };
typedef struct {
  void* loss;
  double* row_loss;
  const void* logits;
  const int32_t* labels;
  int dtype, reduction;
  int32_t ignore_index;
  int64_t m, c, ld, ldc;
  double smoothing, divisor;
  const double* weight;
  double weight_sum;
} structura_cross_entropy_params;

/* out[i] = cond[index(i)] != 0 ? a[index(i)] : b[index(i)], out contiguous in row-major order of shape;
 * cond of any dtype (NaN counts as nonzero, ±0 as zero), a and b of `dtype` (their bits are copied). */
typedef struct {
  void* out;
  const void* cond;
  const void* a;
  const void* b;
  int cond_dtype, dtype, ndim;
  int64_t n;
  int64_t shape[STRUCTURA_MAX_DIMS];
  int64_t cond_strides[STRUCTURA_MAX_DIMS], a_strides[STRUCTURA_MAX_DIMS], b_strides[STRUCTURA_MAX_DIMS];
} structura_where_params;

/* out[o] (int32, contiguous) = index of the first max (is_max) or min along the row a[offset(o) + k·stride],
 * k < len (len ≥ 1); the first NaN if the row has one (float dtypes, the CPU's rule). */
typedef struct {
  int32_t* out;
  const void* a;
  int dtype, is_max, ondim;
  int64_t rows, len, stride;
  int64_t oshape[STRUCTURA_MAX_DIMS], ostrides[STRUCTURA_MAX_DIMS];
} structura_arg_reduce_params;

/* Its gradient: grad [m, c] contiguous, of the logits' dtype: row r is
 * (softmax(row) − (1 − smoothing)·onehot(label) − smoothing/c)·g_r, 0 for an ignored row, where g_r is
 * g_rows[r] (g_rows: [m] contiguous, of the logits' dtype; reduction NONE) or g (SUM and MEAN: the
 * caller divides by the mean's divisor). With class weights w (weight, weight_sum as above): row r is
 * g_r·(a·softmax(row) − (1 − smoothing)·w[label]·onehot(label) − smoothing/c·w), where
 * a = (1 − smoothing)·w[label] + smoothing/c·weight_sum. */
typedef struct {
  void* grad;
  const void* logits;
  const int32_t* labels;
  const void* g_rows;
  int dtype;
  int32_t ignore_index;
  int64_t m, c, ld, ldc;
  double g, smoothing;
  const double* weight;
  double weight_sum;
} structura_cross_entropy_backward_params;

/* Dropout: out[i] = x[i]·scale where element i is kept, x[i]·0 where it is dropped (so NaN stays NaN, as
 * PyTorch's x·mask·scale), x and out contiguous [n] of `dtype` (float dtypes; float16 / bfloat16 computed
 * in float32, float64 with scale64). Element i is dropped iff (splitmix64(key ^ i·0xd1b54a32d192ed03) >> 11)
 * < threshold: the draw of rand()'s counter-based stream (csrc/ops/creation.cc) below p, threshold being
 * found on the host (csrc/ops/elementwise.cc). The mask is never stored: the backward calls this on
 * the gradient with the same key. */
typedef struct {
  void* out;
  const void* x;
  int dtype;
  int64_t n;
  uint64_t key, threshold;
  float scale;
  double scale64;
} structura_dropout_params;
#endif
int STRUCTURA_CUDA_FN(copy)(const structura_copy_params* p, void* stream);
int STRUCTURA_CUDA_FN(copy_bytes)(const structura_copy_bytes_params* p, void* stream);
int STRUCTURA_CUDA_FN(binary)(const structura_binary_params* p, void* stream);
int STRUCTURA_CUDA_FN(unary)(const structura_unary_params* p, void* stream);
int STRUCTURA_CUDA_FN(reduce)(const structura_reduce_params* p, void* stream);
int STRUCTURA_CUDA_FN(softmax)(const structura_softmax_params* p, void* stream);
int STRUCTURA_CUDA_FN(cross_entropy)(const structura_cross_entropy_params* p, void* stream);
int STRUCTURA_CUDA_FN(cross_entropy_backward)(const structura_cross_entropy_backward_params* p, void* stream);
int STRUCTURA_CUDA_FN(where)(const structura_where_params* p, void* stream);
int STRUCTURA_CUDA_FN(arg_reduce)(const structura_arg_reduce_params* p, void* stream);
int STRUCTURA_CUDA_FN(dropout)(const structura_dropout_params* p, void* stream);

/* ---- lowrank (cuda/lowrank.cu) ------------------------------------------------------------------
 * dtype fields: structura_tensor_dtype F32, F16 or BF16 (computed in float32, rounded once). */
#ifndef STRUCTURA_CUDA_LOWRANK_TYPES_H /* types once: this header may be included twice (see the top) */
#define STRUCTURA_CUDA_LOWRANK_TYPES_H
/* The rank-term input of a fused lora (the GEMM's lr_t), from `splits` float32 partial products of
 * x·Aᵀ (split-K GEMM launches), summed in order, scaled, gated and rounded once:
 *   t[m·ldt + c] = round(scale · gate(m, c / group) · Σ_s part[s·part_stride + m·part_rs + c·part_cs])
 * gate = 1 when slot and gates are NULL; one-hot with slot (int32 [m]): the element is written as 0
 * unless c / group == slot[m] (−1: a zero row); or gates[m·gates_rs + c / group] (float32). */
typedef struct {
  void* t;
  const float* part;
  const int32_t* slot;
  const float* gates;
  int dtype;
  int64_t m, cols, group, splits, part_stride, part_rs, part_cs, ldt, gates_rs;
  float scale;
} structura_lora_t_params;

/* Adapter blocks side by side: dst[(a·n_idx + i)·block + j] = src[a·src_outer + idx[i]·src_idx + j] for
 * a < outer, i < n_idx, j < block (idx NULL: idx[i] = i), elements of elem_size 2 or 4 bytes. Lays
 * A [E, r, in] out as [n·r, in] (outer 1, block r·in) and B [E, out, r] as [out, n·r] (outer = out,
 * block r). */
typedef struct {
  void* dst;
  const void* src;
  const int32_t* idx;
  int elem_size;
  int64_t outer, n_idx, block, src_outer, src_idx;
} structura_lora_gather_params;

/* Compressed sparse S times dense rows, for every row m < rows and output j < n_out (float32 sums):
 *   out[m·ldo + j] = round((acc ? acc[m·ldacc + j] : 0) + Σ_{e ∈ [ptr[j], ptr[j+1])} val[perm ? perm[e] : e]·x(m, other[e]))
 * with x(m, c) = x[m·x_ms + c·x_cs] (x_ms = 1, i.e. x given transposed, makes the reads coalesced).
 * x·Sᵀ: ptr over S's rows (CSR), other = the column; g·S: ptr over S's columns (CSC), other = the row,
 * perm = each CSC entry's position in `val`. x, val, out of dtype; acc float32 or NULL. */
typedef struct {
  void* out;
  const float* acc;
  const void* x;
  const void* val;
  const int32_t* ptr;
  const int32_t* other;
  const int32_t* perm;
  int dtype;
  int64_t rows, n_out, ldo, ldacc, x_ms, x_cs;
} structura_spmm_params;

/* S's values gradient (an SDDMM): out[e] = round(Σ_m g[m·g_ms + row_e·g_rs] · x[m·x_ms + col_e·x_cs])
 * (float32 sums) with row_e = idx[e] / cols, col_e = idx[e] % cols. g, x, out of dtype. */
typedef struct {
  void* out;
  const void* g;
  const void* x;
  const int32_t* idx;
  int dtype;
  int64_t nnz, rows, cols, g_ms, g_rs, x_ms, x_cs;
} structura_sddmm_params;
#endif
int STRUCTURA_CUDA_FN(lora_t)(const structura_lora_t_params* p, void* stream);
/* lora at decode as one launch (cuda/dense.cu): p is the final product x·Wᵀ + T·Bᵀ (+ bias; lr_t = t->t,
 * lr_r = B, lr_scale = alpha = 1, batch 1; or with k = 0 and no b, T·Bᵀ + bias alone: lowrank.linear)
 * and t makes T from t->splits float32 partials of x·Aᵀ (x: p->a, kx columns) over slices of kc
 * (t->part [splits, M, cols], part_rs = cols, part_cs = 1), A's rows at `a` (row stride lda_a). The
 * partials and T are made by CTAs of the same grid while the others stream W; with W the result is
 * bit for bit the chain's (the split-K gemm launch, lora_t, gemm). Sets *taken = 0 and launches
 * nothing when the shapes or layouts do not fit (M > 16, unaligned rows, …) or setLoraDecode chose
 * the chain: then run the chain. */
int STRUCTURA_CUDA_FN(lora_decode)(const structura_gemm_params* p, const structura_lora_t_params* t, const void* a,
                                   int64_t lda_a, int64_t kx, int64_t kc, int* taken, void* stream);
/* Whether lora_decode runs (1, the default) or declines so that the chain runs (0); returns the
 * previous setting. Process-wide. */
int STRUCTURA_CUDA_FN(lora_set_fused)(int on);
int STRUCTURA_CUDA_FN(lora_gather)(const structura_lora_gather_params* p, void* stream);
int STRUCTURA_CUDA_FN(spmm)(const structura_spmm_params* p, void* stream);
int STRUCTURA_CUDA_FN(sddmm)(const structura_sddmm_params* p, void* stream);

/* A self-test used by backend(): runs the add kernel on device 0 on 1001 floats; 0 if it matched. */
int STRUCTURA_CUDA_FN(cuda_selftest)(char* msg, size_t msg_len);

#ifdef __cplusplus
}
#endif
