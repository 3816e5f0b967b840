// profile.h — the emulator's memory-access profile: what a GPU's memory pipeline would make of each
// warp-wide access of an emulated kernel, without a GPU (opt in: structura_emu_profile_start).
//
// The emulator runs one lane at a time, so a "warp instruction" is rebuilt: lane l's n-th access from
// one code site (the return address into the kernel) since its last barrier or warp collective is
// grouped with the other lanes' n-th access from that site. For convergent code that is exactly the
// warp's instruction; lanes that skip a site simply are not in its group.
//
//   shared: split into phases as the hardware does (≤ 4-byte accesses: 32 lanes; 8-byte: 16; 16-byte
//           and ldmatrix rows: 8); a phase takes as many wavefronts as the most distinct 4-byte words
//           any one of the 32 banks holds; its ideal is ⌈distinct words / 32⌉. Excess = bank conflicts.
//   global: the distinct 32-byte sectors the lanes touch, against ⌈distinct bytes / 32⌉.
//
// wgmma and TMA traffic is not counted (descriptor/tensor-map driven, swizzled by the hardware).
#ifndef STRUCTURA_EMU_PROFILE_H
#define STRUCTURA_EMU_PROFILE_H
#include <atomic>
#include <cstdint>

namespace emu {
namespace profile {

// Set by structura_emu_profile_start / _stop (any thread; launches read it under the launch mutex).
extern std::atomic<bool> g_on;

struct Access {
  uintptr_t site;  // code address of the access (0: not profiled)
  uint32_t seq;    // the lane's count of barriers / collectives passed so far in this block
  uint32_t n;      // the lane's count of earlier accesses from this site since then
  int warp, lane;
  uintptr_t addr;
  uint32_t bytes;
  bool shared, write;
};
// record / flush / discard run inside a launch (under the emulator's launch mutex); the statistics they
// fill are guarded by the profile's own mutex against start / stop / report from other threads.
void record(const Access& a);
// Evaluates the warp accesses recorded since the last flush (at each __syncthreads and block end, when
// every group is complete) into the statistics of kernel `name`.
void flush(const char* name);
void discard();  // a failed block: its partial accesses are dropped
void count_launch(const char* name);

}  // namespace profile
}  // namespace emu
#endif
