/* structura_emu.h — the plain C ABI of the CUDA emulation for the addon (csrc/): the last failed
 * launch's error (kind + a message naming kernel, block, thread and address) and the emulated
 * device's live allocations. Only in builds with STRUCTURA_CUDA_EMU. */
#ifndef STRUCTURA_EMU_C_H
#define STRUCTURA_EMU_C_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Kind of the last failed launch (0 = the last launch succeeded; see emu::ErrorKind) and its message. */
int structura_emu_last_error(char* msg, size_t msg_len);
/* "out-of-bounds", "shared-race", … for a kind code. */
const char* structura_emu_error_kind_name(int kind);
/* Bytes and number of live emulated cudaMalloc allocations. */
size_t structura_emu_live_bytes(void);
size_t structura_emu_live_allocations(void);
/* Narrows the checked bounds of the allocation starting at p to its first `bytes` (≤ what cudaMalloc
 * gave; the caching allocator calls it each time it hands out a block). 0, or -1 if p/bytes are invalid. */
int structura_emu_set_extent(void* p, size_t bytes);
#ifdef __cplusplus
}
#endif
#endif
