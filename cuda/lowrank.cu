// lowrank.cu — the kernels of the lowrank family besides the GEMM (cuda/dense.cu runs the products):
//   lora_t:      T [M, R] = round(scale · gate · Σ_splits part)   the rank-term input of a fused lora,
//                from split-K partial products of x·Aᵀ (float32); gate: none, one-hot by a per-row
//                slot (loraBatched) or per-row gates [M, E] (loraMixture)
//   lora_gather: adapter blocks side by side: A [E, r, in] → [n·r, in], B [E, out, r] → [out, n·r]
//   spmm:        out [M, n_out] = acc + S·x per row (CSR for x·Sᵀ, CSC for g·S)   sparsePlusLowRank
//   sddmm:       out [nnz] = Σ_m g[m, row_e]·x[m, col_e]                          S's gradient
// float32 / float16 / bfloat16 (structura_tensor_dtype), computed in float32 and rounded once, each
// output element written by one thread (deterministic: no atomics).
// Versions: 2 (this one; v1 ran only in the emulator) — spmm: a 32 × 32 (rows × outputs) tile a
// block, a warp an output and its lanes 32 rows of x given transposed, so each nonzero is one
// coalesced 64-byte read (v1 had lanes over an output's nonzeros: 32 scattered rows of x per read);
// stores through a shared tile along rows of out. sddmm: a warp a nonzero, lanes over rows (gᵀ and xᵀ
// again). Both move about rows·nnz elements of x through L2; not yet: reuse of x across outputs that
// share columns (little with unstructured sparsity).
// lora (and lowrank.linear) at decode (M ≤ 16) is one launch (cuda/dense.cu lora_decode_kernel, lora_t's arithmetic through
// cuda/lora_t.cuh). The chain it replaces, still run past 16 rows and under setLoraDecode('chain'), is
// three launches: T's partial products (the decode kernel, or the tile kernels), lora_t and the final
// product; the last two are programmatic dependent launches (sm_90+), so at decode the final one
// streams W while T is made and waits only before its epilogue.
// Memory goes through gptr() and launches through structura::launch (cuda/launch.cuh), so the same
// source runs checked in the CPU emulator (cuda/emu/).
#include <cuda_runtime.h>
#include <stdint.h>

#include "dtype.cuh"
#include "launch.cuh"
#include "lora_t.cuh"
#include "ptx.cuh"
#include "structura_cuda.h"

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Launched with launch_pdl: its own launch overlaps the partial products' kernel, and it lets lora's
// final product (launch_pdl too, which streams W meanwhile) start at once; it waits for the partials
// before touching memory.
template <int DT>
__global__ void lora_t_kernel(structura_lora_t_params p) {
  ptx::pdl_trigger();
  ptx::pdl_wait();
  const int64_t n = p.m * p.cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    lora_t_element<DT>(p, i);
}

template <class E>
__global__ void lora_gather_kernel(structura_lora_gather_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  const dev_ptr<E> dst = gptr(static_cast<E*>(p.dst));
  const dev_ptr<const E> src = gptr(static_cast<const E*>(p.src));
  const int64_t n = p.outer * p.n_idx * p.block;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = i % p.block, q = i / p.block, k = q % p.n_idx, a = q / p.n_idx;
    const int64_t e = p.idx ? (int64_t)gptr(p.idx)[k] : k;
    const E v = src[a * p.src_outer + e * p.src_idx + j];
    dst[i] = v;
  }
}

// A block computes a 32 (rows m) × 32 (outputs j) tile: warp w takes outputs j0 + w + 8i (i < 4), lane
// l row m0 + l, so a warp walks one output's nonzeros together (no divergence; val and other are
// broadcast) and its 32 lanes read 32 neighbouring elements of x given transposed (x_ms = 1). The
// tile goes through shared memory so that the stores run along rows of out.
template <int DT>
__global__ void spmm_kernel(structura_spmm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  SMEM(float, tile, [32][33]);  // [j][m]
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  const dev_ptr<const S> x = gptr(static_cast<const S*>(p.x));
  const dev_ptr<const S> val = gptr(static_cast<const S*>(p.val));
  const dev_ptr<const int32_t> ptr = gptr(p.ptr), other = gptr(p.other);
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  const int64_t j0 = (int64_t)blockIdx.x * 32;
  for (int64_t m0 = (int64_t)blockIdx.y * 32; m0 < p.rows; m0 += (int64_t)gridDim.y * 32) {
    const int64_t m = m0 + lane;
    const bool in = m < p.rows;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int jl = w + 8 * i;
      const int64_t j = j0 + jl;
      float s = 0.f;
      if (j < p.n_out) {
        const int32_t e0 = ptr[j], e1 = ptr[j + 1];
        for (int32_t e = e0; e < e1; e++) {
          const int32_t ve = p.perm ? gptr(p.perm)[e] : e;
          const S v = val[ve];
          const int32_t c = other[e];
          if (in) {
            const S xv = x[m * p.x_ms + (int64_t)c * p.x_cs];
            s += T::ld(v) * T::ld(xv);
          }
        }
      }
      tile[jl][lane] = s;
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int ml = w + 8 * i;
      const int64_t mm = m0 + ml, j = j0 + lane;
      if (mm < p.rows && j < p.n_out) {
        const float a = p.acc ? gptr(p.acc)[mm * p.ldacc + j] : 0.f;
        out[mm * p.ldo + j] = T::st(a + tile[lane][ml]);
      }
    }
    __syncthreads();  // the tile is rewritten by the next rows
  }
}

template <int DT>
__global__ void sddmm_kernel(structura_sddmm_params p) {
  ptx::pdl_trigger();  // a dependent launch after this kernel may start (it waits for us)
  using T = Ty<DT>;
  using S = typename T::S;
  const dev_ptr<S> out = gptr(static_cast<S*>(p.out));
  const dev_ptr<const S> g = gptr(static_cast<const S*>(p.g));
  const dev_ptr<const S> x = gptr(static_cast<const S*>(p.x));
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  for (int64_t e = blockIdx.x * (int64_t)kWarps + w; e < p.nnz; e += (int64_t)gridDim.x * kWarps) {
    const int64_t f = gptr(p.idx)[e], row = f / p.cols, col = f % p.cols;
    float s = 0.f;
    for (int64_t m = lane; m < p.rows; m += 32) {
      const S gv = g[m * p.g_ms + row * p.g_rs];
      const S xv = x[m * p.x_ms + col * p.x_cs];
      s += T::ld(gv) * T::ld(xv);
    }
    s = warp_sum(s);
    if (lane == 0) out[e] = T::st(s);
  }
}

bool float_dtype(int d) { return d == STRUCTURA_T_F32 || d == STRUCTURA_T_F16 || d == STRUCTURA_T_BF16; }

}  // namespace

// ------------------------------------------------------------------------------------------------
// launchers

extern "C" int STRUCTURA_CUDA_FN(lora_t)(const structura_lora_t_params* p, void* stream) {
  if (!float_dtype(p->dtype) || p->m < 0 || p->cols < 0 || p->group < 1 || p->splits < 1 || p->ldt < p->cols)
    return (int)cudaErrorInvalidValue;
  if (p->m == 0 || p->cols == 0) return 0;
  const cudaStream_t s = (cudaStream_t)stream;
  const unsigned grid = dt::grid_for(p->m * p->cols, kThreads);
  // a dependent launch: it waits before it touches anything (see lora_t_kernel)
  if (p->dtype == STRUCTURA_T_F32) return (int)structura::launch_pdl<lora_t_kernel<STRUCTURA_T_F32>>(grid, kThreads, 0, s, *p);
  if (p->dtype == STRUCTURA_T_F16) return (int)structura::launch_pdl<lora_t_kernel<STRUCTURA_T_F16>>(grid, kThreads, 0, s, *p);
  return (int)structura::launch_pdl<lora_t_kernel<STRUCTURA_T_BF16>>(grid, kThreads, 0, s, *p);
}

extern "C" int STRUCTURA_CUDA_FN(lora_gather)(const structura_lora_gather_params* p, void* stream) {
  if ((p->elem_size != 2 && p->elem_size != 4) || p->outer < 0 || p->n_idx < 0 || p->block < 0) return (int)cudaErrorInvalidValue;
  const int64_t n = p->outer * p->n_idx * p->block;
  if (n == 0) return 0;
  const cudaStream_t s = (cudaStream_t)stream;
  const unsigned grid = dt::grid_for(n, kThreads);
  if (p->elem_size == 2) return (int)structura::launch<lora_gather_kernel<uint16_t>>(grid, kThreads, 0, s, *p);
  return (int)structura::launch<lora_gather_kernel<uint32_t>>(grid, kThreads, 0, s, *p);
}

extern "C" int STRUCTURA_CUDA_FN(spmm)(const structura_spmm_params* p, void* stream) {
  if (!float_dtype(p->dtype) || p->rows < 0 || p->n_out < 0 || p->n_out > INT32_MAX - 32) return (int)cudaErrorInvalidValue;
  if (p->rows == 0 || p->n_out == 0) return 0;
  const cudaStream_t s = (cudaStream_t)stream;
  int64_t gy = (p->rows + 31) / 32;
  if (gy > 65535) gy = 65535;
  const dim3 grid((unsigned)((p->n_out + 31) / 32), (unsigned)gy);
  if (p->dtype == STRUCTURA_T_F32) return (int)structura::launch<spmm_kernel<STRUCTURA_T_F32>>(grid, kThreads, 0, s, *p);
  if (p->dtype == STRUCTURA_T_F16) return (int)structura::launch<spmm_kernel<STRUCTURA_T_F16>>(grid, kThreads, 0, s, *p);
  return (int)structura::launch<spmm_kernel<STRUCTURA_T_BF16>>(grid, kThreads, 0, s, *p);
}

extern "C" int STRUCTURA_CUDA_FN(sddmm)(const structura_sddmm_params* p, void* stream) {
  if (!float_dtype(p->dtype) || p->nnz < 0 || p->rows < 0 || p->cols < 0) return (int)cudaErrorInvalidValue;
  if (p->nnz == 0) return 0;  // (then also an S with no columns: x [M, 0] has no entries to pair)
  if (p->cols < 1) return (int)cudaErrorInvalidValue;
  const cudaStream_t s = (cudaStream_t)stream;
  const unsigned grid = dt::grid_for((p->nnz + kWarps - 1) / kWarps, 1);
  if (p->dtype == STRUCTURA_T_F32) return (int)structura::launch<sddmm_kernel<STRUCTURA_T_F32>>(grid, kThreads, 0, s, *p);
  if (p->dtype == STRUCTURA_T_F16) return (int)structura::launch<sddmm_kernel<STRUCTURA_T_F16>>(grid, kThreads, 0, s, *p);
  return (int)structura::launch<sddmm_kernel<STRUCTURA_T_BF16>>(grid, kThreads, 0, s, *p);
}
