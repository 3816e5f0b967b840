// profile.cc — the emulator's memory-access profile (profile.h has the model): warp accesses rebuilt
// from the lanes' accesses, shared-memory wavefronts against their ideal (bank conflicts), global
// sectors against the bytes asked for (coalescing), per kernel and per code site, as JSON for the
// addon (structura_emu_profile_report).
#include "profile.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "structura_emu.h"

namespace emu {
namespace profile {

std::atomic<bool> g_on{false};

namespace {

std::mutex g_stats_mu;  // g_kernels

struct Key {
  int warp;
  uint32_t seq, n;
  uintptr_t site;
  bool shared, write;
  bool operator==(const Key& o) const {
    return warp == o.warp && seq == o.seq && n == o.n && site == o.site && shared == o.shared && write == o.write;
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.site * 0x9e3779b97f4a7c15ull;
    h ^= ((uint64_t)k.seq << 32 | k.n) + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
    h ^= ((uint64_t)(uint32_t)k.warp << 2 | (uint64_t)k.shared << 1 | (uint64_t)k.write) + (h << 6) + (h >> 2);
    return (size_t)h;
  }
};
struct Lane {
  int lane;
  uintptr_t addr;
  uint32_t bytes;
};

// shared: actual = wavefronts, ideal = the fewest its bytes need; global: actual = 32-byte sectors,
// ideal = ⌈distinct bytes / 32⌉. bytes = distinct bytes the lanes asked for.
struct Counts {
  uint64_t requests = 0, actual = 0, ideal = 0, bytes = 0;
  void add(uint64_t a, uint64_t i, uint64_t b) {
    requests++;
    actual += a;
    ideal += i;
    bytes += b;
  }
};
struct Site {
  Counts c;
  uint32_t width = 0;
};
struct Kernel {
  uint64_t launches = 0;
  Counts c[2][2];  // [shared][write]
  std::map<std::pair<uintptr_t, int>, Site> sites;  // (site, shared·2 + write)
};

std::unordered_map<Key, std::vector<Lane>, KeyHash> g_groups;
std::map<std::string, Kernel> g_kernels;

// Distinct byte count of [addr, addr + bytes) ranges.
uint64_t distinct_bytes(std::vector<std::pair<uintptr_t, uintptr_t>>& iv) {
  std::sort(iv.begin(), iv.end());
  uint64_t total = 0;
  uintptr_t end = 0;
  bool any = false;
  for (auto& [lo, hi] : iv) {
    if (!any || lo >= end) {
      total += hi - lo;
      end = hi;
      any = true;
    } else if (hi > end) {
      total += hi - end;
      end = hi;
    }
  }
  return total;
}

void eval_shared(const std::vector<Lane>& lanes, uint32_t width, uint64_t* waves, uint64_t* ideal, uint64_t* bytes) {
  const int per = width <= 4 ? 32 : width <= 8 ? 16 : 8;
  std::vector<uintptr_t> words;
  std::vector<std::pair<uintptr_t, uintptr_t>> iv;
  for (int p = 0; p < 32 / per; p++) {
    words.clear();
    for (const Lane& l : lanes) {
      if (l.lane / per != p) continue;
      for (uintptr_t w = l.addr >> 2; w <= (l.addr + l.bytes - 1) >> 2; w++) words.push_back(w);
      iv.push_back({l.addr, l.addr + l.bytes});
    }
    if (words.empty()) continue;
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    int bank[32] = {0};
    int worst = 0;
    for (uintptr_t w : words) worst = std::max(worst, ++bank[w & 31]);
    *waves += (uint64_t)worst;
    *ideal += (words.size() + 31) / 32;
  }
  *bytes += distinct_bytes(iv);
}

void eval_global(const std::vector<Lane>& lanes, uint64_t* sectors, uint64_t* ideal, uint64_t* bytes) {
  std::vector<uintptr_t> sec;
  std::vector<std::pair<uintptr_t, uintptr_t>> iv;
  for (const Lane& l : lanes) {
    for (uintptr_t s = l.addr >> 5; s <= (l.addr + l.bytes - 1) >> 5; s++) sec.push_back(s);
    iv.push_back({l.addr, l.addr + l.bytes});
  }
  std::sort(sec.begin(), sec.end());
  const uint64_t n = (uint64_t)(std::unique(sec.begin(), sec.end()) - sec.begin());
  const uint64_t b = distinct_bytes(iv);
  *sectors += n;
  *ideal += (b + 31) / 32;
  *bytes += b;
}

void json_counts(std::string& s, const char* key, const Counts& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "\"%s\":{\"requests\":%llu,\"actual\":%llu,\"ideal\":%llu,\"bytes\":%llu}", key,
                (unsigned long long)c.requests, (unsigned long long)c.actual, (unsigned long long)c.ideal,
                (unsigned long long)c.bytes);
  s += buf;
}

void json_string(std::string& s, const char* v) {
  s += '"';
  for (const char* p = v; *p; p++) {
    if (*p == '"' || *p == '\\') s += '\\';
    if ((unsigned char)*p < 0x20) continue;
    s += *p;
  }
  s += '"';
}

}  // namespace

void record(const Access& a) {
  if (!a.site || !a.bytes) return;
  g_groups[Key{a.warp, a.seq, a.n, a.site, a.shared, a.write}].push_back(Lane{a.lane, a.addr, a.bytes});
}

void flush(const char* name) {
  if (g_groups.empty()) return;
  std::lock_guard<std::mutex> lock(g_stats_mu);
  Kernel& k = g_kernels[name];
  for (auto& [key, lanes] : g_groups) {
    uint32_t width = 0;
    for (const Lane& l : lanes) width = std::max(width, l.bytes);
    uint64_t actual = 0, ideal = 0, bytes = 0;
    if (key.shared) eval_shared(lanes, width, &actual, &ideal, &bytes);
    else eval_global(lanes, &actual, &ideal, &bytes);
    k.c[key.shared][key.write].add(actual, ideal, bytes);
    Site& s = k.sites[{key.site, (int)key.shared * 2 + (int)key.write}];
    s.c.add(actual, ideal, bytes);
    s.width = std::max(s.width, width);
  }
  g_groups.clear();
}

void discard() { g_groups.clear(); }
void count_launch(const char* name) {
  std::lock_guard<std::mutex> lock(g_stats_mu);
  g_kernels[name].launches++;
}

}  // namespace profile
}  // namespace emu

// ---- C API (structura_emu.h) ---------------------------------------------------------------------

// The accesses of a launch in progress (another thread's) stay its own: they are flushed, or dropped, by it.
extern "C" void structura_emu_profile_start(void) {
  std::lock_guard<std::mutex> lock(emu::profile::g_stats_mu);
  emu::profile::g_kernels.clear();
  emu::profile::g_on = true;
}
extern "C" void structura_emu_profile_stop(void) { emu::profile::g_on = false; }

// {"kernels":[{"name", "launches", "shared":{"loads":C,"stores":C}, "global":{"loads":C,"stores":C},
//   "sites":[{"module","offset","space","access","width",…C}]}]} with C = requests/actual/ideal/bytes.
extern "C" size_t structura_emu_profile_report(char* buf, size_t len) {
  using namespace emu::profile;
  std::lock_guard<std::mutex> lock(g_stats_mu);
  std::string s = "{\"kernels\":[";
  bool first_k = true;
  for (auto& [name, k] : g_kernels) {
    if (!first_k) s += ',';
    first_k = false;
    s += "{\"name\":";
    json_string(s, name.c_str());
    s += ",\"launches\":" + std::to_string(k.launches) + ",\"shared\":{";
    json_counts(s, "loads", k.c[1][0]);
    s += ',';
    json_counts(s, "stores", k.c[1][1]);
    s += "},\"global\":{";
    json_counts(s, "loads", k.c[0][0]);
    s += ',';
    json_counts(s, "stores", k.c[0][1]);
    s += "},\"sites\":[";
    bool first_s = true;
    for (auto& [key, site] : k.sites) {
      if (!first_s) s += ',';
      first_s = false;
      Dl_info info{};
      uintptr_t offset = key.first;
      const char* module = "";
      if (dladdr(reinterpret_cast<void*>(key.first), &info) && info.dli_fname) {
        module = info.dli_fname;
        offset = key.first - reinterpret_cast<uintptr_t>(info.dli_fbase);
      }
      char head[96];
      std::snprintf(head, sizeof head, "{\"offset\":\"0x%llx\",\"space\":\"%s\",\"access\":\"%s\",\"width\":%u,",
                    (unsigned long long)offset, key.second >= 2 ? "shared" : "global",
                    key.second & 1 ? "store" : "load", site.width);
      s += head;
      s += "\"module\":";
      json_string(s, module);
      s += ',';
      json_counts(s, "counts", site.c);
      s += '}';
    }
    s += "]}";
  }
  s += "]}";
  if (buf && len) std::snprintf(buf, len, "%s", s.c_str());
  return s.size() + 1;
}
