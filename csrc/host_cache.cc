// host_cache.cc — the CPU's large-buffer cache (see host_cache.h for why and the contract).
#include "host_cache.h"

#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace structura {

namespace {

constexpr size_t kAlign = size_t(2) << 20;  // a transparent huge page

size_t size_class(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

size_t limit_bytes() {
  static const size_t limit = [] {
    const char* e = std::getenv("STRUCTURA_CPU_CACHE_MB");
    if (!e || !*e) return size_t(1024) << 20;
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    return end && *end == '\0' ? (size_t)mb << 20 : size_t(1024) << 20;
  }();
  return limit;
}

struct Cache {
  std::mutex mu;
  std::vector<std::pair<size_t, void*>> blocks;  // free blocks, oldest first: (class bytes, block)
  size_t bytes = 0;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: Storage may be freed during static destruction
  return *c;
}

void* fresh(size_t cls) {
  void* p = std::aligned_alloc(kAlign, cls);
#ifdef __linux__
  if (p) madvise(p, cls, MADV_HUGEPAGE);  // a hint: ignored where THP is off
#endif
  return p;
}

// Frees cached blocks, oldest first, until at most `keep` bytes stay cached (caller holds c.mu).
void trim(Cache& c, size_t keep) {
  size_t i = 0;
  while (i < c.blocks.size() && c.bytes > keep) {
    std::free(c.blocks[i].second);
    c.bytes -= c.blocks[i].first;
    i++;
  }
  c.blocks.erase(c.blocks.begin(), c.blocks.begin() + (std::ptrdiff_t)i);
}

}  // namespace

void* host_alloc_large(size_t bytes) {
  const size_t cls = size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> g(c.mu);
    for (size_t i = c.blocks.size(); i-- > 0;) {  // the newest of the class: likeliest still in cache
      if (c.blocks[i].first != cls) continue;
      void* p = c.blocks[i].second;
      c.blocks.erase(c.blocks.begin() + (std::ptrdiff_t)i);
      c.bytes -= cls;
      return p;
    }
  }
  void* p = fresh(cls);
  if (!p) {
    {
      std::lock_guard<std::mutex> g(c.mu);
      trim(c, 0);
    }
    p = fresh(cls);
  }
  return p;
}

void host_free_large(void* p, size_t bytes) {
  if (!p) return;
  const size_t cls = size_class(bytes);
  const size_t limit = limit_bytes();
  if (cls > limit) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  trim(c, limit - cls);
  c.blocks.emplace_back(cls, p);
  c.bytes += cls;
}

HostCacheStats host_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  HostCacheStats s;
  s.cached_bytes = (int64_t)c.bytes;
  s.cached_blocks = (int64_t)c.blocks.size();
  return s;
}

void host_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  trim(c, 0);
}

}  // namespace structura
