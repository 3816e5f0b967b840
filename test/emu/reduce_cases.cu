// reduce_cases.cu — block and warp reductions through the emulator: a shared-memory tree reduction
// (static and dynamic shared memory), a warp-shuffle reduction, votes/redux/atomics; and planted
// bugs that the checks must report: a removed __syncthreads (race), a shuffle reading outside its
// mask, lanes that skip a full-mask shuffle (deadlock), an early return before a barrier, an
// off-by-one read past an allocation, and too much dynamic shared memory.
#include <cuda_runtime.h>

#include "harness.h"
#include "launch.cuh"

using namespace harness;

struct ReduceParams {
  const float* x;  // [n]
  float* partial;  // [gridDim.x]
  int n;
};

// partial[b] = Σ x[i] over block b's grid-stride share; kBlock threads, tree in shared memory.
template <int kBlock, bool kDynamic, bool kPlantNoSync>
__global__ void block_reduce_kernel(ReduceParams p) {
  SMEM(float, sbuf, [kBlock]);
  DYN_SMEM(float, dbuf);
  const dev_ptr<const float> x = gptr(p.x);
  const int tid = threadIdx.x;
  float v = 0.f;
  for (int i = blockIdx.x * kBlock + tid; i < p.n; i += gridDim.x * kBlock) v += x[i];
  if (kDynamic) dbuf[tid] = v;
  else sbuf[tid] = v;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (tid < s) {
      if (kDynamic) dbuf[tid] = dbuf[tid] + dbuf[tid + s];
      else sbuf[tid] = sbuf[tid] + sbuf[tid + s];
    }
    if (!kPlantNoSync) __syncthreads();
  }
  if (tid == 0) gptr(p.partial)[blockIdx.x] = kDynamic ? float(dbuf[0]) : float(sbuf[0]);
}

struct WarpParams {
  const float* x;  // [n]
  float* out;      // [number of warps in the grid]
  unsigned* count; // [1] number of nonzero inputs (atomicAdd of __popc(ballot))
  int n;
  int plant;       // 0 none, 1 mask excludes the lanes read, 2 half the warp skips the shuffle, 3 early exit
};

// out[w] = Σ x over warp w's 32 elements (butterfly-free down-sweep); count += nonzero elements.
__global__ void warp_reduce_kernel(WarpParams p) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = threadIdx.x % 32;
  float v = i < p.n ? float(gptr(p.x)[i]) : 0.f;
  const unsigned nz = __ballot_sync(0xffffffffu, v != 0.f);
  if (lane == 0) atomicAdd(gptr(p.count), (unsigned)__popc(nz));
  if (p.plant == 1) {
    if (lane < 16)
      for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0x0000ffffu, v, off);  // reads lanes ≥ 16
  } else if (p.plant == 2) {
    if (lane < 16) v += __shfl_down_sync(0xffffffffu, v, 8);  // lanes 16..31 never come
  } else {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  if (p.plant == 3 && threadIdx.x == 5) return;  // planted: a thread leaves before the barrier
  __syncthreads();
  const float total = __shfl_sync(0xffffffffu, v, 0);
  const int wsum = __reduce_add_sync(0xffffffffu, lane == 0 ? 1 : 0);
  if (lane == 31 && wsum == 1 && __all_sync(0xffffffffu, 1)) gptr(p.out)[i / 32] = total;
  else if (lane == 31) gptr(p.out)[i / 32] = -1.f;
}

static std::vector<float> random_vec(Rng& rng, int n) {
  std::vector<float> v(n);
  for (auto& x : v) x = (float)rng.uniform(-1, 1);
  return v;
}

template <bool kDynamic>
static std::string block_reduce_case() {
  Rng rng(case_seed());
  std::string detail;
  for (int n : {1, 3, 17, 129, 1000, 4099}) {
    const int blocks = 3;
    std::vector<float> x = random_vec(rng, n);
    DevBuf<float> dx(n), dp(blocks);
    dx.upload(x);
    ReduceParams p{dx.p, dp.p, n};
    cudaError_t e = structura::launch<block_reduce_kernel<128, kDynamic, false>>(blocks, 128, kDynamic ? 128 * 4 : 0,
                                                                                   nullptr, p);
    if (e != cudaSuccess) {
      char msg[2048];
      structura_emu_last_error(msg, sizeof msg);
      return msg;
    }
    std::vector<float> part = dp.download();
    double sum = 0, ref = 0, mag = 0;
    for (float v : part) sum += v;
    for (float v : x) ref += v, mag += std::fabs(v);
    if (!(std::fabs(sum - ref) <= 1e-6 * mag + 1e-30)) return fmt("n=%g: sum %.9g, reference %.9g", n, sum, ref);
  }
  return "";
}
EMU_CASE(block_reduce_static_smem) { return block_reduce_case<false>(); }
EMU_CASE(block_reduce_dynamic_smem) { return block_reduce_case<true>(); }

static cudaError_t run_warp(WarpParams& p, int n, int block, std::vector<float>* out, unsigned* count, Rng& rng,
                            std::vector<float>* x_out) {
  const int blocks = (n + block - 1) / block;
  std::vector<float> x = random_vec(rng, n);
  for (int i = 0; i < n; i += 7) x[i] = 0.f;
  DevBuf<float> dx(n), dout(blocks * block / 32);
  DevBuf<unsigned> dc(1);
  dx.upload(x);
  dc.upload({0u});
  p.x = dx.p;
  p.out = dout.p;
  p.count = dc.p;
  p.n = n;
  cudaError_t e = structura::launch<warp_reduce_kernel>(blocks, block, 0, nullptr, p);
  *out = dout.download();
  *count = dc.download()[0];
  *x_out = x;
  return e;
}

EMU_CASE(warp_shuffle_reduce) {
  Rng rng(case_seed());
  for (int n : {1, 31, 33, 129, 1000}) {
    WarpParams p{};
    std::vector<float> out, x;
    unsigned count = 0;
    if (run_warp(p, n, 64, &out, &count, rng, &x) != cudaSuccess) {
      char msg[2048];
      structura_emu_last_error(msg, sizeof msg);
      return msg;
    }
    unsigned nz = 0;
    for (float v : x) nz += v != 0.f;
    if (count != nz) return fmt("n=%g: ballot/atomicAdd counted %g nonzeros, expected %g", n, count, nz);
    for (size_t w = 0; w < out.size(); w++) {
      double ref = 0, mag = 0;
      for (int i = (int)w * 32; i < (int)w * 32 + 32 && i < n; i++) ref += x[i], mag += std::fabs(x[i]);
      if (!(std::fabs(out[w] - ref) <= 32 * 0x1p-24 * mag + 1e-30))
        return fmt("n=%g warp %g: %.9g, reference %.9g", n, (double)w, out[w], ref);
    }
  }
  return "";
}

// ---- planted bugs ------------------------------------------------------------------------------

EMU_CASE(planted_removed_syncthreads) {
  Rng rng(case_seed());
  const int n = 1000;
  std::vector<float> x = random_vec(rng, n);
  DevBuf<float> dx(n), dp(2);
  dx.upload(x);
  ReduceParams p{dx.p, dp.p, n};
  cudaError_t e = structura::launch<block_reduce_kernel<128, false, true>>(2, 128, 0, nullptr, p);
  std::string d;
  std::string r = expect_error(e, "shared-race", &d);
  set_detail(d);
  return r;
}

EMU_CASE(planted_shuffle_partial_mask) {
  Rng rng(case_seed());
  WarpParams p{};
  p.plant = 1;
  std::vector<float> out, x;
  unsigned c;
  cudaError_t e = run_warp(p, 64, 64, &out, &c, rng, &x);
  std::string d;
  std::string r = expect_error(e, "collective-divergence", &d);
  set_detail(d);
  return r;
}

EMU_CASE(planted_shuffle_skipped_by_half_warp) {
  Rng rng(case_seed());
  WarpParams p{};
  p.plant = 2;
  std::vector<float> out, x;
  unsigned c;
  cudaError_t e = run_warp(p, 64, 64, &out, &c, rng, &x);
  std::string d;
  std::string r = expect_error(e, "collective-divergence", &d);
  set_detail(d);
  return r;
}

EMU_CASE(planted_return_before_barrier) {
  Rng rng(case_seed());
  WarpParams p{};
  p.plant = 3;
  std::vector<float> out, x;
  unsigned c;
  cudaError_t e = run_warp(p, 64, 64, &out, &c, rng, &x);
  std::string d;
  std::string r = expect_error(e, "barrier-divergence", &d);
  set_detail(d);
  return r;
}

// one element per thread, reading x[i + 1]: the last thread reads past the end
__global__ void shift_kernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) gptr(y)[i] = gptr(x)[i + 1];
}
EMU_CASE(planted_off_by_one_global_read) {
  const int n = 100;
  DevBuf<float> dx(n), dy(n);
  dx.upload(std::vector<float>(n, 1.f));
  cudaError_t e = structura::launch<shift_kernel>(4, 32, 0, nullptr, (const float*)dx.p, dy.p, n);
  std::string d;
  std::string r = expect_error(e, "out-of-bounds", &d);
  set_detail(d);
  return r;
}

EMU_CASE(launch_config_checks) {
  DevBuf<float> dp(1);
  ReduceParams p{nullptr, dp.p, 0};
  // more dynamic shared memory than the default 48 KiB without cudaFuncSetAttribute
  cudaError_t e = structura::launch<block_reduce_kernel<128, true, false>>(1, 128, 64 * 1024, nullptr, p);
  std::string d;
  std::string r = expect_error(e, "invalid-launch", &d);
  if (!r.empty()) return r;
  if (cudaFuncSetAttribute(block_reduce_kernel<128, true, false>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) !=
      cudaSuccess)
    return "cudaFuncSetAttribute failed";
  e = structura::launch<block_reduce_kernel<128, true, false>>(1, 128, 64 * 1024, nullptr, p);
  if (e != cudaSuccess) return "launch with 64 KiB after cudaFuncSetAttribute failed";
  e = structura::launch<block_reduce_kernel<128, true, false>>(1, 2048, 0, nullptr, p);
  r = expect_error(e, "invalid-launch", &d);
  set_detail(d);
  return r;
}
