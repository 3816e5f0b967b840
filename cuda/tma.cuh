// tma.cuh — host side of the TMA loads (cp.async.bulk.tensor, sm_90): encoding a tiled 2-D tensor map
// for a 16-bit row-major matrix [outer, inner] (inner contiguous, rows row_bytes apart), box
// [box_outer, box_inner] with box_inner·2 = 128 bytes and the 128-byte swizzle — the layout
// wgmma_desc_sw128 describes (cuda/ptx.cuh). Zeros are read outside the matrix.
//   tma_encode_2d(&map, base, inner, outer, row_bytes, box_inner, box_outer)  → 0 or a cudaError_t
// On nvcc it calls the driver's cuTensorMapEncodeTiled, reached through cudart (the driver library is
// loaded by cudart at run time; nothing links against it). In emulation it writes emu::TmaMap.
// The TMA's own limits are checked here: base 16-byte aligned, row_bytes a multiple of 16 below 2^40,
// dims in [1, 2^32], box dims in [1, 256].
#ifndef STRUCTURA_TMA_CUH
#define STRUCTURA_TMA_CUH
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>
#ifdef STRUCTURA_CUDA_EMU
#include "emu.h"
#else
#include <cuda.h>
#include <cudaTypedefs.h>
#endif

namespace {

inline int tma_encode_2d(CUtensorMap* map, const void* base, uint64_t inner, uint64_t outer, uint64_t row_bytes,
                         uint32_t box_inner, uint32_t box_outer) {
  if (reinterpret_cast<uintptr_t>(base) % 16 || row_bytes % 16 || row_bytes >= (uint64_t(1) << 40) || inner < 1 ||
      outer < 1 || inner > (uint64_t(1) << 32) || outer > (uint64_t(1) << 32) || box_inner < 1 || box_inner > 256 ||
      box_outer < 1 || box_outer > 256 || box_inner * 2 != 128)
    return (int)cudaErrorInvalidValue;
#ifdef STRUCTURA_CUDA_EMU
  ::emu::TmaMap m{};
  m.magic = ::emu::kTmaMagic;
  m.elem_bytes = 2;
  m.base = base;
  m.dim[0] = inner, m.dim[1] = outer;
  m.row_bytes = row_bytes;
  m.box[0] = box_inner, m.box[1] = box_outer;
  m.swizzle = 128;
  memset(map, 0, sizeof *map);
  memcpy(map, &m, sizeof m);
  return 0;
#else
  static PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      fn = nullptr;
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  if (!encode) return (int)cudaErrorNotSupported;
  const cuuint64_t dims[2] = {inner, outer}, strides[1] = {row_bytes};
  const cuuint32_t box[2] = {box_inner, box_outer}, elem_strides[2] = {1, 1};
  // the element type only sizes the copy (bf16 and f16 move the same bits)
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void*>(base), dims, strides, box,
                            elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? 0 : (int)cudaErrorInvalidValue;
#endif
}

}  // namespace

#endif
