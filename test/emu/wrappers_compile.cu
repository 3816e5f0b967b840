// wrappers_compile.cu — instantiates every cuda/ptx.cuh wrapper and launch.cuh accessor in one kernel,
// so that one file shows both builds accept them: nvcc (check by hand, no GPU needed:
//   nvcc -std=c++17 -arch=sm_90a -c test/emu/wrappers_compile.cu -Icuda -o /tmp/w.o; also sm_80)
// and the emulation (compiled into the emulator test binary; the kernel is launched by no case).
#include <cuda_runtime.h>

#include "launch.cuh"
#include "ptx.cuh"

struct WrapperParams {
  const uint16_t* src;  // [≥ 512]
  float* out;           // [32 × 4]
};

__global__ void all_wrappers_kernel(WrapperParams p) {
  SMEM(uint16_t, tile, [16][16]);
  DYN_SMEM(uint16_t, dyn);
  const int lane = threadIdx.x % 32;
  const dev_ptr<const uint16_t> src = gptr(p.src);
  ptx::cp_async_cg(&tile[lane / 2][(lane % 2) * 8], src + lane * 8);
  ptx::cp_async_ca<16>(dyn + lane * 8, src + 256 + lane * 8);
  ptx::cp_async_ca<8>(dyn + 256 + lane * 4, src + lane * 4);
  ptx::cp_async_ca<4>(dyn + 384 + lane * 2, src + lane * 2);
  ptx::cp_async_ca_zfill<16>(dyn + 448 + lane * 8, src, 0);
  ptx::cp_async_cg_zfill(dyn + 704 + lane * 8, src, 8);
  ptx::cp_async_commit();
  ptx::cp_async_wait<1>();
  ptx::cp_async_wait<0>();
  ptx::cp_async_wait_all();
  __syncthreads();
  uint32_t a4[4], a2[2], a1[1], b2[2], b1[1], b4[4];
  ptx::ldmatrix_x4(a4, &tile[lane % 16][(lane / 16) * 8]);
  ptx::ldmatrix_x2(a2, &tile[lane % 16][0]);
  ptx::ldmatrix_x1(a1, &tile[lane % 8][0]);
  ptx::ldmatrix_x4_trans(b4, dyn + (lane % 16) * 16 + (lane / 16) * 8);
  ptx::ldmatrix_x2_trans(b2, &tile[lane % 16][0]);
  ptx::ldmatrix_x1_trans(b1, &tile[lane % 8][8]);
  float c[4] = {0.f, 0.f, 0.f, 0.f}, d[4];
  ptx::mma_m16n8k16_bf16(d, a4, b2, c);
  ptx::mma_m16n8k16_f16(d, a4, b2, d);
  ptx::mma_m16n8k8_bf16(d, a2, b1, d);
  ptx::mma_m16n8k8_f16(d, a2, a1, d);
  const uint32_t t4[4] = {ptx::to_tf32(d[0]), ptx::to_tf32(d[1]), ptx::pack_bf16(d[2], d[3]), ptx::pack_f16(d[0], d[1])};
  ptx::mma_m16n8k8_tf32(d, t4, b2, d);
  const uint32_t e = 0x44444444u;
  ptx::mma_sp_m16n8k16_f16<0>(d, a2, b2, d, e);
  ptx::mma_sp_m16n8k16_bf16<3>(d, a2, b2, d, e);
  ptx::mma_sp_m16n8k32_f16<0>(d, a4, b4, d, e);
  ptx::mma_sp_m16n8k32_bf16<1>(d, a4, b4, d, e);
  const dev_ptr<float4> out = dev_cast<float4>(gptr(p.out));
  out[lane] = make_float4(d[0], d[1], d[2], d[3]);
}

cudaError_t structura_emu_wrappers_launch(const WrapperParams& p, cudaStream_t s) {
  return structura::launch<all_wrappers_kernel>(1, 32, 2048, s, p);
}
