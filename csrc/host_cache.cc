// host_cache.cc — the CPU's buffer cache (see host_cache.h for why and the contract).
#include "host_cache.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace structura {

namespace {

constexpr size_t kHuge = size_t(2) << 20;        // a transparent huge page
constexpr size_t kHugeFrom = size_t(16) << 20;   // classes from here on are 2 MiB multiples
constexpr size_t kPage = 4096;

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

struct Block {
  void* p;
  uint64_t seq;  // when it was cached: the oldest goes first
};

struct Cache {
  std::mutex mu;
  std::map<size_t, std::vector<Block>> free;  // by class; each vector oldest first
  size_t bytes = 0, blocks = 0;
  uint64_t seq = 0;
};

Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: Storage may be freed during static destruction
  return *c;
}

void* fresh(size_t cls) {
  const bool huge = cls >= kHugeFrom;
  void* p = std::aligned_alloc(huge ? kHuge : kPage, cls);
#ifdef __linux__
  if (p && huge) madvise(p, cls, MADV_HUGEPAGE);  // a hint: ignored where THP is off
#endif
  return p;
}

// Frees cached blocks, oldest first, until at most `keep` bytes stay cached (caller holds c.mu). The
// classes are few (a model's distinct buffer sizes), so the oldest is found by a walk over them.
void trim(Cache& c, size_t keep) {
  while (c.bytes > keep) {
    auto oldest = c.free.end();
    for (auto it = c.free.begin(); it != c.free.end(); ++it)
      if (oldest == c.free.end() || it->second.front().seq < oldest->second.front().seq) oldest = it;
    std::free(oldest->second.front().p);
    oldest->second.erase(oldest->second.begin());
    c.bytes -= oldest->first;
    c.blocks--;
    if (oldest->second.empty()) c.free.erase(oldest);
  }
}

}  // namespace

size_t host_size_class(size_t bytes) {
  if (bytes >= kHugeFrom) return (bytes + kHuge - 1) / kHuge * kHuge;
  size_t pow2 = kHostCachedBlock;
  while (pow2 * 2 <= bytes) pow2 *= 2;
  const size_t step = pow2 / 8;  // ≥ 32 KiB: a multiple of the page
  return (bytes + step - 1) / step * step;
}

void* host_alloc_cached(size_t bytes) {
  const size_t cls = host_size_class(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> g(c.mu);
    auto it = c.free.find(cls);
    if (it != c.free.end()) {  // the newest of the class: likeliest still in cache
      void* p = it->second.back().p;
      it->second.pop_back();
      if (it->second.empty()) c.free.erase(it);
      c.bytes -= cls;
      c.blocks--;
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

void host_free_cached(void* p, size_t bytes) {
  if (!p) return;
  const size_t cls = host_size_class(bytes);
  const size_t limit = limit_bytes();
  if (cls > limit) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  trim(c, limit - cls);
  c.free[cls].push_back(Block{p, c.seq++});
  c.bytes += cls;
  c.blocks++;
}

HostCacheStats host_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  HostCacheStats s;
  s.cached_bytes = (int64_t)c.bytes;
  s.cached_blocks = (int64_t)c.blocks;
  return s;
}

void host_empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> g(c.mu);
  trim(c, 0);
}

}  // namespace structura
