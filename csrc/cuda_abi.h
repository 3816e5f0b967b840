// cuda_abi.h — both copies of the C ABI of cuda/structura_cuda.h for the op files of csrc/ops/: the
// nvcc-built structura_* launchers (or csrc/cuda_none.cc's refusals) and, in a build with the
// emulated device, their host-built structura_emu_* twins. STRUCTURA_KERNEL picks one by the device:
//
//   device_launch(env, "matmul", dev, [&](bool emu) { return STRUCTURA_KERNEL(gemm, emu, &p, nullptr); });
//
// A new launcher needs no table entry: declare it in cuda/structura_cuda.h, add its refusal to
// csrc/cuda_none.cc, and call it through this macro.
#pragma once

#include "structura_cuda.h"
#ifdef STRUCTURA_HAVE_CUDA_EMU
#undef STRUCTURA_CUDA_FN
#define STRUCTURA_CUDA_FN(name) structura_emu_##name
#include "structura_cuda.h"
#undef STRUCTURA_CUDA_FN
#define STRUCTURA_CUDA_FN(name) structura_##name
#define STRUCTURA_KERNEL(name, emu, ...) ((emu) ? structura_emu_##name(__VA_ARGS__) : structura_##name(__VA_ARGS__))
#else
#define STRUCTURA_KERNEL(name, emu, ...) ((void)(emu), structura_##name(__VA_ARGS__))
#endif

#include "tensor.h"

namespace structura {
// The structura_dtype of cuda/dense.cu for a floating tensor dtype (float64 has no GEMM kernel:
// callers refuse it first).
inline int gemm_dtype(DType d) { return d == DType::f16 ? STRUCTURA_DT_F16 : d == DType::bf16 ? STRUCTURA_DT_BF16 : STRUCTURA_DT_F32; }
}  // namespace structura
