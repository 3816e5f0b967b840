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
} structura_gemm_params;
#endif
int STRUCTURA_CUDA_FN(gemm)(const structura_gemm_params* p, void* stream);

/* A self-test used by backend(): runs the add kernel on device 0 on 1001 floats; 0 if it matched. */
int STRUCTURA_CUDA_FN(cuda_selftest)(char* msg, size_t msg_len);

#ifdef __cplusplus
}
#endif
