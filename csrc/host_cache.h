// host_cache.h — the CPU's cache of large tensor buffers (≥ 16 MiB), beside malloc for the rest.
//
// glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh mmap and unmaps it on
// free, so every large output — a softmax of [4096, 4096] float32, a matmul's 64 MiB result — faulted
// its pages in again on each call, 4 KiB at a time: ~0.5 ms a MiB on the dev box, more than the op's
// arithmetic (softmax [2048, 4096]: 18.8 ms, against 1.8 ms for [1024, 4096], served from malloc's heap).
// Large blocks instead come in 2 MiB multiples, 2 MiB aligned, marked for transparent huge pages
// (Linux, madvise mode: 512× fewer faults on first touch), and go back to a cache on free, reused by the
// next request of the same size class. The cache holds at most STRUCTURA_CPU_CACHE_MB MiB (default 1024;
// 0 turns it off), oldest blocks given back first; emptyCache frees it all.
#pragma once
#include <cstddef>
#include <cstdint>

namespace structura {

// Blocks of at least this many bytes come from here (tensor.cc's Storage); smaller ones from malloc.
constexpr size_t kHostLargeBlock = size_t(16) << 20;

// A 2 MiB-aligned block of at least `bytes` (≥ kHostLargeBlock): a cached one of the same class, or a
// fresh one (on failure the cache is freed and the allocation tried once more; then nullptr).
void* host_alloc_large(size_t bytes);
// Gives back a block from host_alloc_large (same `bytes`): cached, unless that would hold more than
// the limit (then the oldest cached blocks are freed first, or this one if it alone exceeds it).
void host_free_large(void* p, size_t bytes);

struct HostCacheStats {
  int64_t cached_bytes = 0;  // in free blocks held by the cache (size-class bytes)
  int64_t cached_blocks = 0;
};
HostCacheStats host_cache_stats();
// Frees every cached block.
void host_empty_cache();

}  // namespace structura
