// lora_t.cuh — one element of a fused lora's rank-term input T [M, cols] (structura_lora_t_params):
//   t[m, c] = round(scale · gate(m, c / group) · Σ_s part[s][m][c])   (partials summed in split order)
// gate: 1; a one-hot by slot[m] (loraBatched: another adapter's column is written as 0, not multiplied,
// so its inf or NaN stays out); or gates[m, c / group] (loraMixture). Shared by cuda/lowrank.cu's
// lora_t kernel and cuda/dense.cu's one-launch lora at decode, so both give T the same bits.
#ifndef STRUCTURA_LORA_T_CUH
#define STRUCTURA_LORA_T_CUH
#include <stdint.h>

#include "dtype.cuh"
#include "launch.cuh"
#include "structura_cuda.h"

namespace {

template <int DT>
__device__ __forceinline__ void lora_t_element(const structura_lora_t_params& p, int64_t i) {
  using T = Ty<DT>;
  using S = typename T::S;
  const dev_ptr<S> t = gptr(static_cast<S*>(p.t));
  const dev_ptr<const float> part = gptr(p.part);
  const int64_t m = i / p.cols, c = i % p.cols, grp = c / p.group;
  float gate = p.scale;
  if (p.slot) {
    const int32_t s = gptr(p.slot)[m];
    if (s != grp) {
      t[m * p.ldt + c] = T::st(0.f);
      return;
    }
  } else if (p.gates) {
    const float g = gptr(p.gates)[m * p.gates_rs + grp];
    gate *= g;
  }
  float acc = 0.f;
  for (int64_t s = 0; s < p.splits; s++) acc += part[s * p.part_stride + m * p.part_rs + c * p.part_cs];
  t[m * p.ldt + c] = T::st(gate * acc);
}

}  // namespace
#endif
