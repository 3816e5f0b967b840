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
/* The memory-access profile (cuda/emu/profile.h): start clears it and records every later launch's
 * warp accesses (shared-memory wavefronts against their ideal, global sectors against the bytes asked
 * for), stop ends recording. report writes the statistics so far as JSON into msg (truncated to len)
 * and returns the length it needs, NUL included. */
void structura_emu_profile_start(void);
void structura_emu_profile_stop(void);
size_t structura_emu_profile_report(char* msg, size_t len);
#ifdef __cplusplus
}
#endif
#endif
