// ptx_emu.h — the emulated warp-level PTX behind cuda/ptx.cuh (implemented in ptx_emu.cc): each call
// is one lane's part; the lanes of the warp meet, and the last to arrive computes for all of them by
// the fragment layouts of the PTX ISA.
#ifndef STRUCTURA_EMU_PTX_EMU_H
#define STRUCTURA_EMU_PTX_EMU_H
#include <cstdint>

#include "emu.h"

namespace emu {
namespace ptx {
enum class Type { F16, BF16, TF32 };
// mma.sync.aligned.m16n8k{8,16}.row.col.f32.<t>.<t>.f32: d[4] = a·b + c[4]; a/b as 32-bit registers
void mma(int k, Type t, float* d, const uint32_t* a, const uint32_t* b, const float* c);
// mma.sp::ordered_metadata.sync.aligned.m16n8k{16,32}.row.col.f32.<t>.<t>.f32 with metadata e, selector sel
void mma_sp(int k, Type t, float* d, const uint32_t* a, const uint32_t* b, const float* c, uint32_t e, int sel);
// ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16: this lane's row address and its num registers
void ldmatrix(int num, bool trans, uint32_t* r, ptr<const void> row);
// The shared-window address of p: its offset in the launch's dynamic shared memory (the only shared
// memory an emulated wgmma may read; anything else fails the kernel).
uint32_t smem_addr(ptr<const void> p);
// wgmma.mma_async.sync.aligned.m64n<n>k16.f32.<t>.<t>, both operands K-major by 128B-swizzle
// descriptors, scale-d 1: this lane's n/2 accumulators d (in and out). Each warp computes its 16 rows
// (warp % 4) when its lanes meet, reading shared memory then.
void wgmma(int n, Type t, float* d, uint64_t desc_a, uint64_t desc_b);
}  // namespace ptx
}  // namespace emu
#endif
