/* splitmix.h — the mixer of the counter-based random stream (rand / randn: csrc/ops/creation.cc; dropout:
 * csrc/ops/elementwise.cc and cuda/elementwise.cu), one definition for the host and the device: a seed
 * gives the same numbers and masks on every device only while both compute exactly this. (The CPU's
 * vector copy, splitmix64v in csrc/cpu/elementwise_rows.inc, is the same arithmetic lane by lane, checked
 * against it by the tests that compare devices bit for bit.) */
#ifndef STRUCTURA_SPLITMIX_H
#define STRUCTURA_SPLITMIX_H
#include <stdint.h>

#if defined(__CUDACC__)
#define STRUCTURA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define STRUCTURA_HOST_DEVICE static inline
#endif

STRUCTURA_HOST_DEVICE uint64_t structura_splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

#endif
