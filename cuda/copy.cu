// copy.cu — the strided copy with dtype conversion behind contiguous(), cast(), clone(), copyInto()
// and to() of device views:
//   dst[Σ idx·dst_strides] = convert(src[Σ idx·src_strides])   for every idx of shape (≤ 8 dims)
// any strides (0 included: broadcast), any of the 7 dtypes on either side. The conversion is the
// CPU's cast bit for bit (cuda/dtype.cuh: through double, x86 NaN rules, saturating integers).
// Versions: 1 (this one) — one thread an element, grid-stride, row-major index → offsets by
// division per dimension (32-bit below 2³¹ elements); a same-dtype copy moves the bits. Coalesced on the destination side.
// Memory goes through gptr() and launches through structura::launch (cuda/launch.cuh), so the same
// source runs checked in the CPU emulator (cuda/emu/).
#include <cuda_runtime.h>
#include <stdint.h>

#include "dtype.cuh"
#include "launch.cuh"
#include "structura_cuda.h"

namespace {

__global__ void copy_kernel(structura_copy_params p) {
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

}  // namespace

extern "C" int STRUCTURA_CUDA_FN(copy)(const structura_copy_params* p, void* stream) {
  if (p->n <= 0) return 0;
  if (p->ndim < 0 || p->ndim > STRUCTURA_MAX_DIMS) return (int)cudaErrorInvalidValue;
  const int threads = 256;
  return (int)structura::launch<copy_kernel>(dt::grid_for(p->n, threads), threads, 0, (cudaStream_t)stream, *p);
}
