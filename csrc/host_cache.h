// host_cache.h — the CPU's cache of tensor buffers of 256 KiB and more, beside malloc for the rest.
//
// glibc serves a block above its mmap threshold with a fresh mmap and unmaps it on free, and gives the
// top of its heap back to the system once more than its trim threshold is free there (both thresholds
// move with the sizes freed, up to 32 / 64 MiB), so outputs of a few MiB and more faulted their pages
// in again, 4 KiB at a time, on most calls: a softmax of [4096, 4096] float32 or a matmul's 64 MiB
// result (~0.5 ms a MiB on the dev box, more than the op's arithmetic), and in an MLP training step
// (784 → 1024 → 1024 → 10, batch 256) ~820 faults a step, 3.3 MB zeroed again, 14% of the step.
// Blocks from kHostCachedBlock on come from here instead and go back to a cache on free, reused by the
// next request of the same size class: below 16 MiB classes an eighth of a power of two apart (at most
// 12.5% over the request), 4 KiB aligned; from 16 MiB on 2 MiB multiples, 2 MiB aligned and marked for
// transparent huge pages (Linux, madvise mode: 512× fewer faults on first touch). The cache holds at
// most STRUCTURA_CPU_CACHE_MB MiB (default 1024; 0 turns it off), oldest blocks given back first;
// emptyCache frees it all.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace structura {

// Blocks of at least this many bytes come from here (tensor.cc's Storage); smaller ones from malloc.
constexpr size_t kHostCachedBlock = size_t(256) << 10;

// The size class of a request of `bytes` (≥ kHostCachedBlock): the bytes a block of it holds.
size_t host_size_class(size_t bytes);
// A block of at least `bytes` (≥ kHostCachedBlock): a cached one of the same class, or a fresh one (on
// failure the cache is freed and the allocation tried once more; then nullptr).
void* host_alloc_cached(size_t bytes);
// Gives back a block from host_alloc_cached (same `bytes`): cached, unless that would hold more than
// the limit (then the oldest cached blocks are freed first, or this one if it alone exceeds it).
void host_free_cached(void* p, size_t bytes);

struct HostCacheStats {
  int64_t cached_bytes = 0;  // in free blocks held by the cache (size-class bytes)
  int64_t cached_blocks = 0;
};
HostCacheStats host_cache_stats();
// Frees every cached block.
void host_empty_cache();

// A std::allocator for large scratch (std::vector<T, HostCachedAllocator<T>>): blocks from
// kHostCachedBlock on come from the cache, smaller ones from malloc. lowrank.svd's dozen l×n float64
// buffers faulted 4 KiB pages in again on every call (6% of a rank-256 SVD of 4096²).
template <class T>
struct HostCachedAllocator {
  using value_type = T;
  HostCachedAllocator() = default;
  template <class U>
  HostCachedAllocator(const HostCachedAllocator<U>&) {}
  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    void* p = bytes >= kHostCachedBlock ? host_alloc_cached(bytes) : std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kHostCachedBlock)
      host_free_cached(p, bytes);
    else
      std::free(p);
  }
  template <class U>
  bool operator==(const HostCachedAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HostCachedAllocator<U>&) const { return false; }
};

}  // namespace structura
