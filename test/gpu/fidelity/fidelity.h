/* fidelity.h — the C ABI between test/gpu/fidelity/main.cc (host only) and fidelity_kernels.cu, which
 * is compiled twice: by nvcc (names fid_gpu_*) and by g++ against cuda/emu (names fid_emu_*), the way
 * cuda/structura_cuda.h names the addon's two builds. main.cc includes this header twice to see both.
 *
 * Every entry takes host buffers, allocates device memory, copies in, launches one kernel through
 * structura::launch, copies out and frees; it returns 0 or the CUDA error code, with a message in msg
 * (in emulation it includes the emulator's report naming kernel, block, thread and address).
 * All buffers hold 32-bit words; their sizes are given beside each entry (per tile, warp, element). */
#ifndef FID_FN
#ifdef STRUCTURA_CUDA_EMU
#define FID_FN(name) fid_emu_##name
#else
#define FID_FN(name) fid_gpu_##name
#endif
#endif

#ifndef FIDELITY_TYPES_H
#define FIDELITY_TYPES_H
#include <stddef.h>
#include <stdint.h>

/* mma shapes (fid_*_mma `op`). Register counts per lane: A, B as listed, C/D 4 floats, e 1 word. */
enum {
  FID_MMA_K16_F16 = 0,   /* mma.sync m16n8k16 f16: a[4] b[2] */
  FID_MMA_K16_BF16 = 1,  /* mma.sync m16n8k16 bf16: a[4] b[2] */
  FID_MMA_K8_F16 = 2,    /* mma.sync m16n8k8 f16: a[2] b[1] */
  FID_MMA_K8_BF16 = 3,   /* mma.sync m16n8k8 bf16: a[2] b[1] */
  FID_MMA_K8_TF32 = 4,   /* mma.sync m16n8k8 tf32: a[4] b[2], registers passed as given (f32 bits) */
  FID_MMA_K8_TF32_CVT = 5, /* the same, each register first through ptx::to_tf32 in the kernel */
  FID_MMA_SP_K16_F16 = 6,  /* mma.sp m16n8k16 f16: a[2] b[2] e, selector 0..3 */
  FID_MMA_SP_K16_BF16 = 7,
  FID_MMA_SP_K32_F16 = 8,  /* mma.sp m16n8k32 f16: a[4] b[4] e, selector 0..1 */
  FID_MMA_SP_K32_BF16 = 9,
  FID_MMA_COUNT = 10
};

/* element-wise ops (fid_*_elementwise `op`): in[n * in_words], out[n * out_words] */
enum {
  FID_EW_F32_TO_F16 = 0,   /* __float2half_rn: 1 → 1 (low 16 bits) */
  FID_EW_F32_TO_BF16 = 1,  /* __float2bfloat16_rn: 1 → 1 */
  FID_EW_F16_TO_F32 = 2,   /* __half2float: 1 (low 16 bits) → 1 */
  FID_EW_BF16_TO_F32 = 3,  /* __bfloat162float: 1 → 1 */
  FID_EW_F64_TO_F16 = 4,   /* __double2half: 2 (lo, hi words of the double) → 1 */
  FID_EW_F64_TO_BF16 = 5,  /* __double2bfloat16: 2 → 1 */
  FID_EW_TO_TF32 = 6,      /* ptx::to_tf32: 1 → 1 */
  FID_EW_PACK_F16 = 7,     /* ptx::pack_f16(lo, hi): 2 floats → 1 */
  FID_EW_PACK_BF16 = 8,    /* ptx::pack_bf16(lo, hi): 2 → 1 */
  FID_EW_HALF2_ARITH = 9,  /* a, b, c (__half2) → __hadd2, __hsub2, __hmul2, __hfma2(a,b,c): 3 → 4 */
  FID_EW_BF162_ARITH = 10, /* the same for __nv_bfloat162: 3 → 4 */
  FID_EW_HALF_ARITH = 11,  /* a, b, c (__half, low 16 bits) → __hadd, __hsub, __hmul, __hfma: 3 → 4 */
  FID_EW_BF16_ARITH = 12,  /* the same for __nv_bfloat16: 3 → 4 */
  FID_EW_COUNT = 13
};
/* words per element (macros: usable in constant expressions and in device code) */
#define FID_EW_IN_WORDS(op)                                                                          \
  ((op) == FID_EW_F64_TO_F16 || (op) == FID_EW_F64_TO_BF16 || (op) == FID_EW_PACK_F16 ||             \
           (op) == FID_EW_PACK_BF16                                                                  \
       ? 2                                                                                           \
       : (op) >= FID_EW_HALF2_ARITH ? 3 : 1)
#define FID_EW_OUT_WORDS(op) ((op) >= FID_EW_HALF2_ARITH ? 4 : 1)

/* warp collectives (fid_*_warp): per warp a config {op, width, mask, arg}; per lane an input value
 * (2 words: lo, hi — the hi word is used only by FID_WARP_SHFL_IDX64) and a lane argument (srcLane for
 * idx shuffles, the predicate for votes). out[lane]: 2 words. Lanes outside mask do not take part and
 * write 0xDEADBEEF. */
enum {
  FID_WARP_SHFL_IDX = 0,   /* __shfl_sync(mask, v, lane_arg, width) (u32) */
  FID_WARP_SHFL_UP = 1,    /* __shfl_up_sync(mask, v, arg, width) */
  FID_WARP_SHFL_DOWN = 2,  /* __shfl_down_sync(mask, v, arg, width) */
  FID_WARP_SHFL_XOR = 3,   /* __shfl_xor_sync(mask, v, arg, width) */
  FID_WARP_SHFL_IDX64 = 4, /* __shfl_sync of a 64-bit value (unsigned long long) */
  FID_WARP_SHFL_F32 = 5,   /* __shfl_xor_sync of a float (bits must survive, NaN payloads included) */
  FID_WARP_BALLOT = 6,     /* __ballot_sync(mask, lane_arg) */
  FID_WARP_ANY = 7,
  FID_WARP_ALL = 8,
  FID_WARP_REDUCE_ADD = 9,   /* __reduce_add_sync (unsigned) */
  FID_WARP_REDUCE_MIN_U = 10,
  FID_WARP_REDUCE_MAX_U = 11,
  FID_WARP_REDUCE_MIN_I = 12,
  FID_WARP_REDUCE_MAX_I = 13,
  FID_WARP_REDUCE_AND = 14,
  FID_WARP_REDUCE_OR = 15,
  FID_WARP_REDUCE_XOR = 16,
  FID_WARP_MATCH_ANY = 17,   /* __match_any_sync (u32) */
  FID_WARP_COUNT = 18
};
typedef struct {
  int32_t op, width;
  uint32_t mask;
  int32_t arg;
} fid_warp_cfg;

/* atomics (fid_*_atomic): targets[ntargets] start at init; thread i (of n) applies vals[i] to target
 * i % ntargets. final[ntargets] is the targets afterwards; old[n] what each atomic returned. */
enum {
  FID_ATOM_ADD_F32_GLOBAL = 0,
  FID_ATOM_ADD_F32_SHARED = 1, /* ntargets ≤ 256, one block per 256 threads, targets summed per block then
                                  added to the global target with one more atomicAdd per target */
  FID_ATOM_ADD_I32_GLOBAL = 2,
  FID_ATOM_ADD_I32_SHARED = 3,
  FID_ATOM_ADD_U32_GLOBAL = 4,
  FID_ATOM_MAX_I32_GLOBAL = 5,
  FID_ATOM_MIN_I32_GLOBAL = 6,
  FID_ATOM_CAS_U32_GLOBAL = 7, /* atomicCAS loop incrementing by vals[i] (u32) */
  FID_ATOM_COUNT = 8
};
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* 0 if a device is usable, with its description in msg ("NVIDIA H100 …, sm_90, driver …"). */
int FID_FN(probe)(char* msg, size_t msg_len);
/* ntiles independent 16x8 tiles, 4 warps per block. a, b, c, d: [ntiles][32 lanes][4] words;
 * e: [ntiles][32] (mma.sp only); sel: the sparsity selector (mma.sp only). */
int FID_FN(mma)(int op, int sel, int ntiles, const uint32_t* a, const uint32_t* b, const float* c, const uint32_t* e,
                float* d, char* msg, size_t msg_len);
/* ldmatrix .x{num} (num 1, 2, 4), .trans if trans: per block (one warp) a shared buffer of 64 rows of 8
 * b16 (rows: [nblocks][64][8] u16 packed in [nblocks][256] words), lane l passes row rowsel[b][l];
 * out: [nblocks][32 lanes][4] words (registers beyond num are written 0). */
int FID_FN(ldmatrix)(int num, int trans, int nblocks, const uint32_t* rows, const int32_t* rowsel, uint32_t* out,
                     char* msg, size_t msg_len);
/* cp.async: each thread of nblocks × 64 threads issues the 10 copies of fidelity_kernels.cu's program
 * (ca 4/8/16 and cg 16, with and without zfill, in 3 commit groups) from src[nsrc] words at the word
 * offsets plan[b][t][10] with src sizes plan[b][t][10 + i] (copies 4..9); out: [nblocks][64][4 × 32]
 * words: per thread its 128-byte slot after wait_group 2 (group 0 part), wait_group 1 (group 1),
 * wait_all (group 2) and its neighbour's full slot after __syncthreads. */
int FID_FN(cp_async)(int nblocks, const uint32_t* src, int nsrc, const int32_t* plan, uint32_t* out, char* msg,
                     size_t msg_len);
int FID_FN(elementwise)(int op, int n, const uint32_t* in, uint32_t* out, char* msg, size_t msg_len);
/* nwarps warps (4 per block): cfg[nwarps], in[nwarps][32][2], lane_arg[nwarps][32], out[nwarps][32][2]. */
int FID_FN(warp)(int nwarps, const fid_warp_cfg* cfg, const uint32_t* in, const int32_t* lane_arg, uint32_t* out,
                 char* msg, size_t msg_len);
int FID_FN(atomic)(int op, int n, int ntargets, const uint32_t* init, const uint32_t* vals, uint32_t* final_out,
                   uint32_t* old_out, char* msg, size_t msg_len);
/* wgmma.m64n256k16 (bf16 if bf16, else f16), one warpgroup (128 threads) a block: A [64][64] and
 * B [256][64] b16 elements per block (a: [nblocks][2048] words, b: [nblocks][8192] words, two elements
 * a word, low half first), staged by plain stores into the 128-byte-swizzle K-major layout, then 4
 * wgmma k16 steps (descriptors advanced 32 bytes a step) onto the accumulators c: [nblocks][128][128]
 * floats (thread, register); d: the same after wgmma.wait_group 0. sm_90a on the GPU. */
int FID_FN(wgmma)(int bf16, int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d, char* msg,
                  size_t msg_len);
/* The same as FID_FN(wgmma), but A and B reach shared memory by TMA (tensor maps over a and b as
 * [nblocks·64][64] and [nblocks·256][64] matrices, 128-byte swizzle, one mbarrier): the TMA's layout
 * and the wgmma descriptors' must agree. sm_90a on the GPU. */
int FID_FN(wgmma_tma)(int bf16, int nblocks, const uint32_t* a, const uint32_t* b, const float* c, float* d, char* msg,
                      size_t msg_len);
/* A TMA load (cp.async.bulk.tensor.2d, 128-byte swizzle, cuda/tma.cuh's tensor map) of one box of 64
 * (inner) × box_rows 16-bit elements from a [rows][ld] matrix whose first cols elements a row are in the
 * tensor (src: rows·ld/2 words), block b at coordinates (c0[b], c1[b]) (outside: zeros), completed on an
 * mbarrier; out: [nblocks][box_rows·32] words, the shared bytes as they landed. sm_90 on the GPU. */
int FID_FN(tma)(int nblocks, const uint32_t* src, int rows, int cols, int ld, int box_rows, const int32_t* c0,
                const int32_t* c1, uint32_t* out, char* msg, size_t msg_len);
#ifdef __cplusplus
}
#endif
