// copy.cu — the strided copy with dtype conversion behind contiguous(), cast(), clone(), copyInto()
// and to() of device views:
//   dst[Σ idx·dst_strides] = convert(src[Σ idx·src_strides])   for every idx of shape (≤ 8 dims)
// any strides (0 included: broadcast), any of the 7 dtypes on either side. The conversion is the
// CPU's cast bit for bit (cuda/dtype.cuh: through double, x86 NaN rules, saturating integers).
// copy_bytes() is the same-device copy of a contiguous block (clone(), a same-dtype cast(), copyInto()
// of equal shapes): a kernel, not cudaMemcpyAsync, because on an H200 the driver's device-to-device
// memcpy moved 2.45 TB/s where our own float32 add kernel moved 3.87 and PyTorch's copy_ 4.13
// (bench/results/nvidia-h200-2026-11-27-bench.log). 16-byte vectors when both ends are 16-byte
// aligned (4-byte words, else bytes), four of them in flight a thread before the stores.
// Versions: 2 (this one) — a same-dtype transpose (2-D, or batched 3-D) goes through 32×32 shared
// tiles, coalesced on both sides (not yet timed on a GPU). Everything else as in 1 — one thread an
// element, grid-stride, row-major index → offsets by division per dimension (32-bit below 2³¹
// elements); a same-dtype copy moves the bits. Coalesced on the destination side only.
// Memory goes through gptr() and launches through structura::launch (cuda/launch.cuh), so the same
// source runs checked in the CPU emulator (cuda/emu/).
#include <cuda_runtime.h>
#include <stdint.h>

#include "dtype.cuh"
#include "launch.cuh"
#include "ptx.cuh"
#include "structura_cuda.h"

namespace {

__global__ void copy_kernel(structura_copy_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  const dt::In src = dt::in(p.src, p.src_dtype);
  const dt::Out dst = dt::out(p.dst, p.dst_dtype);
  const bool same = p.src_dtype == p.dst_dtype;
  const bool narrow = p.n < dt::kNarrowLimit;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t so, dof;
    dt::offsets2(i, p.ndim, p.shape, p.src_strides, p.dst_strides, so, dof, narrow);
    const uint64_t b = src.bits(so);
    dst.set(dof, same ? b : dt::store_from_double(dt::load_as_double(b, p.src_dtype), p.dst_dtype));
  }
}

// A transpose (contiguous() of a transposed view, the Bᵀ the wgmma GEMM wants): dst [rows, cols]
// contiguous, src element (r, c) at r + c·ss (unit stride down the columns), an optional outer batch.
// 32×32 tiles through shared memory, so that both the reads (along src's columns) and the writes
// (along dst's rows) are coalesced; the same bits are moved (same dtype).
template <class E>
__global__ void transpose_kernel(structura_copy_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  // The column reads of the write phase hit distinct banks when a row is an odd number of 4-byte
  // words apart (33 for 4- and 8-byte elements; 34 for 2-byte ones, 36 for 1-byte ones).
  constexpr int kPitch = 32 + (sizeof(E) >= 4 ? 1 : 4 / (int)sizeof(E));
  SMEM(E, tile, [32][kPitch]);
  const int nd = p.ndim;
  const int64_t rows = p.shape[nd - 2], cols = p.shape[nd - 1], ss = p.src_strides[nd - 1];
  const int64_t sb = nd == 3 ? blockIdx.z * p.src_strides[0] : 0, db = nd == 3 ? blockIdx.z * p.dst_strides[0] : 0;
  const dev_ptr<const E> src = gptr(static_cast<const E*>(p.src)) + sb;
  const dev_ptr<E> dst = gptr(static_cast<E*>(p.dst)) + db;
  const int64_t r0 = (int64_t)blockIdx.y * 32, c0 = (int64_t)blockIdx.x * 32;
  const int tx = threadIdx.x, ty = threadIdx.y;  // 32 × 8
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t r = r0 + tx, c = c0 + ty + 8 * i;
    if (r < rows && c < cols) {
      const E v = src[r + c * ss];
      tile[ty + 8 * i][tx] = v;
    }
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t r = r0 + ty + 8 * i, c = c0 + tx;
    if (r < rows && c < cols) {
      const E v = tile[tx][ty + 8 * i];
      dst[r * cols + c] = v;
    }
  }
}

// The transpose pattern: same dtype, 2-D (or 3-D with the batch outermost), dst contiguous, src with
// unit stride along dst's rows and a wider one along its columns.
bool is_transpose(const structura_copy_params& p) {
  if (p.src_dtype != p.dst_dtype || (p.ndim != 2 && p.ndim != 3)) return false;
  const int nd = p.ndim;
  const int64_t rows = p.shape[nd - 2], cols = p.shape[nd - 1];
  if (rows < 2 || cols < 2 || p.dst_strides[nd - 1] != 1 || p.dst_strides[nd - 2] != cols) return false;
  if (p.src_strides[nd - 2] != 1 || p.src_strides[nd - 1] < rows) return false;
  if (nd == 3 && (p.shape[0] > 65535 || p.dst_strides[0] != rows * cols)) return false;
  return (rows + 31) / 32 <= 65535 && (cols + 31) / 32 <= INT32_MAX;
}

template <class E>
int launch_transpose(const structura_copy_params& p, cudaStream_t s) {
  const int nd = p.ndim;
  const dim3 grid((unsigned)((p.shape[nd - 1] + 31) / 32), (unsigned)((p.shape[nd - 2] + 31) / 32),
                  nd == 3 ? (unsigned)p.shape[0] : 1u);
  return (int)structura::launch<transpose_kernel<E>>(grid, dim3(32, 8), 0, s, p);
}

// dst[0, n) = src[0, n) in units U; a block moves kUnroll·blockDim units at a time, the loads of a
// thread issued before its stores so that kUnroll of them are in flight (a copy is latency-bound on
// the loads). The bytes past the last whole unit (at most sizeof(U) − 1) go to block 0.
constexpr int kCopyUnroll = 4, kCopyThreads = 256;
template <class U>
__global__ void __launch_bounds__(kCopyThreads) copy_bytes_kernel(structura_copy_bytes_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  const int64_t n = p.bytes / (int64_t)sizeof(U);
  const dev_ptr<const U> src = dev_cast<const U>(gptr(static_cast<const uint8_t*>(p.src)));
  const dev_ptr<U> dst = dev_cast<U>(gptr(static_cast<uint8_t*>(p.dst)));
  const int64_t span = (int64_t)kCopyUnroll * blockDim.x;
  for (int64_t base = blockIdx.x * span; base < n; base += (int64_t)gridDim.x * span) {
    U v[kCopyUnroll];
#pragma unroll
    for (int j = 0; j < kCopyUnroll; j++) {
      const int64_t i = base + threadIdx.x + (int64_t)j * blockDim.x;
      if (i < n) v[j] = src[i];
    }
#pragma unroll
    for (int j = 0; j < kCopyUnroll; j++) {
      const int64_t i = base + threadIdx.x + (int64_t)j * blockDim.x;
      if (i < n) dst[i] = v[j];
    }
  }
  const int64_t tail = p.bytes - n * (int64_t)sizeof(U);
  if (blockIdx.x == 0 && threadIdx.x < tail) {
    const int64_t b = n * (int64_t)sizeof(U) + threadIdx.x;
    const uint8_t v = gptr(static_cast<const uint8_t*>(p.src))[b];
    gptr(static_cast<uint8_t*>(p.dst))[b] = v;
  }
}

template <class U>
int launch_copy_bytes(const structura_copy_bytes_params& p, cudaStream_t s) {
  const int64_t units = p.bytes / (int64_t)sizeof(U);
  return (int)structura::launch<copy_bytes_kernel<U>>(dt::grid_for((units + kCopyUnroll - 1) / kCopyUnroll, kCopyThreads),
                                                      kCopyThreads, 0, s, p);
}

}  // namespace

extern "C" int STRUCTURA_CUDA_FN(copy_bytes)(const structura_copy_bytes_params* p, void* stream) {
  if (p->bytes <= 0) return 0;
  const uintptr_t ends = reinterpret_cast<uintptr_t>(p->dst) | reinterpret_cast<uintptr_t>(p->src);
  const cudaStream_t s = (cudaStream_t)stream;
  if ((ends & 15) == 0) return launch_copy_bytes<uint4>(*p, s);
  if ((ends & 3) == 0) return launch_copy_bytes<uint32_t>(*p, s);
  return launch_copy_bytes<uint8_t>(*p, s);
}

extern "C" int STRUCTURA_CUDA_FN(copy)(const structura_copy_params* p, void* stream) {
  if (p->n <= 0) return 0;
  if (p->ndim < 0 || p->ndim > STRUCTURA_MAX_DIMS) return (int)cudaErrorInvalidValue;
  const int threads = 256;
  if (is_transpose(*p)) {
    const cudaStream_t s = (cudaStream_t)stream;
    switch (dt::size_of(p->src_dtype)) {
      case 1: return launch_transpose<uint8_t>(*p, s);
      case 2: return launch_transpose<uint16_t>(*p, s);
      case 4: return launch_transpose<uint32_t>(*p, s);
      default: return launch_transpose<uint64_t>(*p, s);
    }
  }
  return (int)structura::launch<copy_kernel>(dt::grid_for(p->n, threads), threads, 0, (cudaStream_t)stream, *p);
}
