// emu.cc — the CPU emulation of a CUDA device: kernel launches run every block in turn, each block's
// threads as cooperative fibers on the calling OS thread; barriers, warp collectives, the checks
// (bounds, alignment, shared-memory races, cp.async completion, divergence) and the runtime API on
// host memory. cuda/emu/README.md gives the model and the rules; ptx_emu.cc the tensor-core ops.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <vector>

#include "cuda_runtime.h"
#include "profile.h"
#include "structura_emu.h"
// this file names the Ids fields directly
#undef threadIdx
#undef blockIdx
#undef blockDim
#undef gridDim

#if !defined(__x86_64__) || defined(STRUCTURA_EMU_UCONTEXT)
#define STRUCTURA_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

namespace emu {

// ------------------------------------------------------------------------------------------------
// context switching: a hand-written x86-64 switch (callee-saved registers, MXCSR and the x87 control
// word), or ucontext elsewhere

#ifndef STRUCTURA_EMU_USE_UCONTEXT
extern "C" void structura_emu_swap(void** save_sp, void* new_sp);
asm(R"(
  .text
  .p2align 4
  .globl structura_emu_swap
  .hidden structura_emu_swap
  .type structura_emu_swap,@function
structura_emu_swap:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size structura_emu_swap, .-structura_emu_swap
)");
struct Context {
  void* sp = nullptr;
};
// A fresh context whose first switch-in "returns" into entry() with a null return address above it.
static void context_init(Context& c, void* stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0;                                        // entry's return address: none
  *--sp = reinterpret_cast<uint64_t>(entry);        // popped by `ret`
  for (int i = 0; i < 6; i++) *--sp = 0;            // rbp rbx r12 r13 r14 r15
  *--sp = 0x1F80ull | (0x037Full << 32);            // default MXCSR, x87 control word
  c.sp = sp;
}
static void context_switch(Context& from, Context& to) { structura_emu_swap(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
static void context_init(Context& c, void* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
static void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ------------------------------------------------------------------------------------------------
// state

struct Shadow {  // one per byte of a shared region
  uint64_t w_epoch, r_epoch;  // barrier interval of the last write / reads
  int32_t w_tid, r_tid;       // last writer; last reader (-2: several)
  uint32_t w_gen, r_gen;      // the warp's __syncwarp generation at that write / latest read
  int32_t r_warp;             // the readers' warp, -1 when they span warps
  int32_t async_tid;          // thread whose cp.async wrote this byte
  uint64_t async_block;       // … in this block (serial)
  uint32_t async_group;       // … as part of this commit group of that thread
  bool tma;                   // written by a TMA load that completes phase tma_phase of the mbarrier
  uint32_t tma_bar, tma_phase;  // at tma_bar (a shared address): readable after a wait for that phase
};

enum class St : uint8_t { Ready, Barrier, Collective, Mbarrier, Exited };

struct Thread {
  Ids ids;
  Context ctx;
  St st = St::Ready;
  int linear = 0, warp = 0, lane = 0;
  int bar_result = 0;
  const char* coll_op = nullptr;
  unsigned coll_mask = 0;
  uint32_t cp_committed = 0, cp_waited = 0;
  uint32_t wg_committed = 0, wg_waited = 0;  // wgmma commit groups issued / waited for
  bool pdl_waited = false;                    // executed griddepcontrol.wait (pdl_wait)
  uint32_t mbar_addr = 0, mbar_parity = 0;    // the mbarrier wait it is blocked in (St::Mbarrier)
  std::vector<std::pair<uint32_t, uint32_t>> mbar_seen;  // mbarrier → phases it has seen completed
  // profile.h: barriers/collectives passed in this block, and accesses per code site since the last one
  uint32_t prof_seq = 0;
  std::vector<std::pair<uintptr_t, uint32_t>> prof_sites;
};

// An mbarrier (PTX §9.7.13.15): the phase in progress completes when all `count` arrivals are in and
// the transaction bytes expected of it have all landed; `phase` counts the completed ones.
struct Mbar {
  uint32_t count = 0;
  int64_t pending = 0, tx = 0;
  uint32_t phase = 0;
};

// The shared bytes an issued wgmma of warp `warp` reads (a bounding range), pending until that warp's
// wgmma.wait_group covers `group`.
struct WgRead {
  int warp;
  uint32_t group;
  uintptr_t lo, hi;
};

struct Pending {
  Collective c;
  Policy policy;
  CollectiveFn fn;
};

struct Warp {
  std::vector<Pending> pending;
  unsigned present = 0, exited = 0;
  uint32_t gen = 0, full_gen = 0;
  uint32_t pair[32][32];
};

struct Launch {
  const char* name = "";
  const void* func = nullptr;
  dim3 grid, block;
  size_t smem = 0, smem_limit = 0, static_smem = 0;
  int nthreads = 0;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  Context sched;
  Thread* cur = nullptr;
  uint3 block_idx{0, 0, 0};
  uint64_t epoch = 0, block_serial = 0;
  // barrier
  int bar_arrived = 0, bar_acc = 0, n_exited = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  // outcome
  bool failed = false;
  ErrorKind kind = ErrorKind::None;
  std::string message;
  // dynamic shared memory
  Region dyn;
  // wgmma reads still in flight (this block)
  std::vector<WgRead> wg_reads;
  // programmatic dependent launch: this launch's serial, whether it is a launch_pdl, and the serial of
  // the first launch of the chain of kernels that may still be running beside it
  uint64_t serial = 0, chain_start = 0;
  bool pdl = false;
  // mbarriers of this block, by shared address
  std::map<uint32_t, Mbar> mbars;
};

static std::mutex g_launch_mu;            // one launch at a time (kernels share static SMEM storage)
static Launch* g_launch = nullptr;        // the running launch (under g_launch_mu)
thread_local const Ids* tls_ids = nullptr;
static uint64_t g_epoch = 0, g_block_serial = 0;
// Launch serials for the PDL check: every launch takes the next; g_chain_start is the serial of the
// most recent launch that was not a launch_pdl (a copy or memset sets it past every launch so far).
static std::atomic<uint64_t> g_launch_serial{0}, g_chain_start{0};
static LaunchError g_last_launch;

// fiber stacks, reused across blocks and launches; a PROT_NONE guard page below each
static std::vector<void*> g_stacks;
static size_t g_stack_size = 0;
static void* stack_at(size_t i) {
  if (!g_stack_size) {
    size_t kb = 64;
    if (const char* e = std::getenv("STRUCTURA_EMU_STACK_KB")) kb = std::max<size_t>(16, std::strtoul(e, nullptr, 10));
    g_stack_size = kb * 1024;
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  while (g_stacks.size() <= i) {
    void* m = mmap(nullptr, g_stack_size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    mprotect(m, page, PROT_NONE);
    g_stacks.push_back(static_cast<char*>(m) + page);
  }
  return g_stacks[i];
}

// dynamic shared memory buffer + shadow, grown as needed and kept
static std::vector<unsigned char> g_dyn_buf;
static std::vector<Shadow> g_dyn_shadow;

// ------------------------------------------------------------------------------------------------
// errors

const char* kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::None: return "none";
    case ErrorKind::OutOfBounds: return "out-of-bounds";
    case ErrorKind::Misaligned: return "misaligned";
    case ErrorKind::SharedRace: return "shared-race";
    case ErrorKind::BarrierDivergence: return "barrier-divergence";
    case ErrorKind::CollectiveDivergence: return "collective-divergence";
    case ErrorKind::InvalidMetadata: return "invalid-metadata";
    case ErrorKind::AsyncCopy: return "async-copy";
    case ErrorKind::InvalidArgument: return "invalid-argument";
    case ErrorKind::InvalidLaunch: return "invalid-launch";
    case ErrorKind::KernelException: return "kernel-exception";
    case ErrorKind::DependentLaunch: return "dependent-launch";
    case ErrorKind::Mbarrier: return "mbarrier";
  }
  return "?";
}
const LaunchError& last_launch_error() { return g_last_launch; }

static std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}
static std::string thread_str(const Launch& L, int tid) {
  const Thread& t = L.threads[tid];
  return fmt("thread (%u,%u,%u) [warp %d lane %d]", t.ids.threadIdx.x, t.ids.threadIdx.y, t.ids.threadIdx.z,
             t.warp, t.lane);
}
static std::string where(const Launch& L) {
  return fmt("kernel '%s' block (%u,%u,%u)", L.name, L.block_idx.x, L.block_idx.y, L.block_idx.z);
}
static std::string lanes_str(unsigned m) {
  std::string s;
  for (int i = 0; i < 32;) {
    if (!(m >> i & 1)) { i++; continue; }
    int j = i;
    while (j + 1 < 32 && (m >> (j + 1) & 1)) j++;
    if (!s.empty()) s += ",";
    s += j == i ? fmt("%d", i) : fmt("%d-%d", i, j);
    i = j + 1;
  }
  return s.empty() ? "none" : s;
}

// Records the launch's first error (outside any fiber or from one).
static void record(Launch& L, ErrorKind kind, const std::string& msg) {
  if (L.failed) return;
  L.failed = true;
  L.kind = kind;
  L.message = "structura-emu: " + std::string(kind_name(kind)) + " in " + msg;
}

[[noreturn]] static void stop_current(Launch& L) {
  Thread* t = L.cur;
  t->st = St::Exited;
  context_switch(t->ctx, L.sched);
  std::abort();  // a failed fiber is never resumed
}

void fail_thread(ErrorKind kind, int tid, const std::string& what) {
  Launch* L = g_launch;
  if (!L || !L->cur) throw std::runtime_error("structura-emu: " + std::string(kind_name(kind)) + ": " + what);
  record(*L, kind, where(*L) + " " + thread_str(*L, tid) + ": " + what);
  stop_current(*L);
}
void fail(ErrorKind kind, const std::string& what) {
  Launch* L = g_launch;
  fail_thread(kind, L && L->cur ? L->cur->linear : 0, what);
}

// ------------------------------------------------------------------------------------------------
// memory: device allocations and checks

static std::mutex g_alloc_mu;
static std::map<uintptr_t, Region*> g_allocs;
static size_t g_live_bytes = 0;
static std::map<const void*, int> g_func_max_dyn_smem;

const Region* find_global(const void* p) {
  std::lock_guard<std::mutex> g(g_alloc_mu);
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(x);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  const Region* r = it->second;
  return (x >= r->lo && (x < r->hi || x == r->lo)) ? r : nullptr;
}

static bool ordered(const Launch& L, int a, int b, uint32_t gen_at_a) {
  const Thread &ta = L.threads[a], &tb = L.threads[b];
  if (ta.warp != tb.warp) return false;
  const Warp& w = L.warps[ta.warp];
  return w.full_gen > gen_at_a || w.pair[ta.lane][tb.lane] > gen_at_a;
}
static bool async_pending(const Launch& L, const Shadow& s) {
  return s.async_block == L.block_serial && s.async_group > L.threads[s.async_tid].cp_waited;
}

// Whether thread t has seen phase `phase` of the mbarrier at `bar` complete.
static bool mbar_seen(const Thread& t, uint32_t bar, uint32_t phase) {
  for (const auto& e : t.mbar_seen)
    if (e.first == bar) return e.second > phase;
  return false;
}

static const char* access_name(Access a) { return a == Access::Read ? "read" : a == Access::Write ? "write" : "atomic"; }

// A warp-level sync point for the profile's grouping of lane accesses (profile.h).
static void prof_sync(Thread& t) {
  if (!profile::g_on) return;
  t.prof_seq++;
  t.prof_sites.clear();
}
static void prof_record(Launch& L, int tid, const Region* r, uintptr_t x, size_t bytes, Access a, uintptr_t site) {
  Thread& t = L.threads[tid];
  uint32_t n = 0;
  bool found = false;
  for (auto& e : t.prof_sites)
    if (e.first == site) {
      n = e.second++;
      found = true;
      break;
    }
  if (!found) t.prof_sites.push_back({site, 1});
  const bool shared = r->space == Space::Shared;
  // Shared addresses relative to their array: banks follow the offset in the GPU's shared window.
  profile::record(profile::Access{site, t.prof_seq, n, t.warp, t.lane, shared ? x - r->lo : x, (uint32_t)bytes, shared,
                                  a != Access::Read});
}

static void check_impl(int tid, const Region* r, const void* p, size_t bytes, size_t align, Access a, uintptr_t site) {
  Launch* L = g_launch;
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  if (!L || !L->cur) throw std::runtime_error("structura-emu: checked pointer used outside a kernel");
  if (!r) {
    fail_thread(ErrorKind::OutOfBounds, tid,
                fmt("%s of %zu bytes at %p, which is in no device allocation (cudaMalloc) or shared array", access_name(a),
                    bytes, p));
  }
  const char* space = r->space == Space::Shared ? "shared" : "global";
  if (r->space == Space::Global) {
    const Thread& t = L->threads[tid];
    if (L->pdl && !t.pdl_waited) {
      if (a != Access::Read)
        fail_thread(ErrorKind::DependentLaunch, tid,
                    fmt("global %s at %p before griddepcontrol.wait (pdl_wait) in a kernel launched with launch_pdl: "
                        "the kernel before it may still be running and reading that memory",
                        access_name(a), p));
      if (r->written_by >= L->chain_start)
        fail_thread(ErrorKind::DependentLaunch, tid,
                    fmt("global read at %p before griddepcontrol.wait (pdl_wait) in a kernel launched with launch_pdl, "
                        "of the %zu-byte allocation at %p that launch #%llu wrote, which may still be running (this is "
                        "launch #%llu; its chain began at #%llu)",
                        p, (size_t)(r->hi - r->lo), (void*)r->lo, (unsigned long long)r->written_by,
                        (unsigned long long)L->serial, (unsigned long long)L->chain_start));
    }
    if (a != Access::Read) r->written_by = L->serial;
  }
  if (x < r->lo || x + bytes > r->hi) {
    const size_t size = r->hi - r->lo;
    std::string rel = x < r->lo ? fmt("%zu bytes before the start", (size_t)(r->lo - x))
                                : fmt("byte offset %zu, %zu bytes past the end", (size_t)(x - r->lo), (size_t)(x + bytes - r->hi));
    std::string obj = r->space == Space::Shared ? fmt("shared array '%s' of %zu bytes", r->name, size)
                                                : fmt("the %zu-byte allocation at %p", size, (void*)r->lo);
    fail_thread(ErrorKind::OutOfBounds, tid,
                fmt("out-of-bounds %s %s of %zu bytes at %p: %s of %s", space, access_name(a), bytes, p, rel.c_str(), obj.c_str()));
  }
  if (align > 1 && x % align) {
    fail_thread(ErrorKind::Misaligned, tid,
                fmt("misaligned %s %s of %zu bytes at %p (needs %zu-byte alignment)", space, access_name(a), bytes, p, align));
  }
  if (profile::g_on && site) prof_record(*L, tid, r, x, bytes, a, site);
  if (r->space != Space::Shared || !r->shadow) return;
  if (a != Access::Read)
    for (const WgRead& w : L->wg_reads)
      if (x < w.hi && x + bytes > w.lo && w.group > L->threads[(size_t)w.warp * 32].wg_waited)
        fail_thread(ErrorKind::SharedRace, tid,
                    fmt("shared %s of '%s' at %p while a wgmma of warp %d that reads it (commit group %u) is still in "
                        "flight: no wgmma.wait_group covers it yet",
                        access_name(a), r->name, p, w.warp, w.group));
  const Thread& t = L->threads[tid];
  const Warp& w = L->warps[t.warp];
  const uint64_t E = L->epoch;
  Shadow* sh = r->shadow + (x - r->lo);
  for (size_t i = 0; i < bytes; i++) {
    Shadow& s = sh[i];
    void* addr = reinterpret_cast<void*>(x + i);
    if (s.tma && !mbar_seen(t, s.tma_bar, s.tma_phase)) {
      fail_thread(ErrorKind::AsyncCopy, tid,
                  fmt("shared %s of '%s' at %p written by a TMA load that completes phase %u of the mbarrier at "
                      "shared address %u, before this thread waited for that phase (mbarrier.try_wait)",
                      access_name(a), r->name, addr, s.tma_phase, s.tma_bar));
    }
    if (s.async_tid >= 0 && async_pending(*L, s)) {
      fail_thread(ErrorKind::AsyncCopy, tid,
                  fmt("shared %s of '%s' at %p before the cp.async that writes it completed (issued by %s, group %u "
                      "not yet waited for with cp.async.wait_group)",
                      access_name(a), r->name, addr, thread_str(*L, s.async_tid).c_str(), s.async_group));
    }
    if (s.w_epoch == E && s.w_tid != tid && !ordered(*L, s.w_tid, tid, s.w_gen)) {
      fail_thread(ErrorKind::SharedRace, tid,
                  fmt("shared-memory race on '%s' at %p (byte %zu): %s after a write by %s with no __syncthreads "
                      "(or __syncwarp) between them",
                      r->name, addr, (size_t)(x + i - r->lo), access_name(a), thread_str(*L, s.w_tid).c_str()));
    }
    if (a == Access::Read) {
      if (s.r_epoch != E) {
        s.r_epoch = E;
        s.r_tid = tid;
        s.r_warp = t.warp;
        s.r_gen = w.gen;
      } else if (s.r_tid != tid) {
        s.r_tid = -2;
        if (s.r_warp != t.warp) s.r_warp = -1;
        s.r_gen = std::max(s.r_gen, w.gen);
      }
    } else {
      if (s.r_epoch == E) {
        bool ok;
        if (s.r_tid == -2) ok = s.r_warp == t.warp && w.full_gen > s.r_gen;
        else ok = s.r_tid == tid || ordered(*L, s.r_tid, tid, s.r_gen);
        if (!ok) {
          std::string who = s.r_tid == -2 ? std::string("several threads") : thread_str(*L, s.r_tid);
          fail_thread(ErrorKind::SharedRace, tid,
                      fmt("shared-memory race on '%s' at %p (byte %zu): %s after a read by %s with no __syncthreads "
                          "(or __syncwarp) between them",
                          r->name, addr, (size_t)(x + i - r->lo), access_name(a), who.c_str()));
        }
      }
      if (a == Access::Write) {
        s.w_epoch = E;
        s.w_tid = tid;
        s.w_gen = w.gen;
      }
    }
  }
}
// The caller's return address names the code site of the access for the profile (noinline keeps it so).
__attribute__((noinline)) void check_access_as(int tid, const Region* r, const void* p, size_t bytes, size_t align,
                                               Access a) {
  check_impl(tid, r, p, bytes, align, a, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
void check_access_at(int tid, const Region* r, const void* p, size_t bytes, size_t align, Access a, uintptr_t site) {
  check_impl(tid, r, p, bytes, align, a, site);
}
__attribute__((noinline)) void check_access(const Region* r, const void* p, size_t bytes, size_t align, Access a) {
  Launch* L = g_launch;
  if (!L || !L->cur) throw std::runtime_error("structura-emu: checked pointer used outside a kernel");
  check_impl(L->cur->linear, r, p, bytes, align, a, reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}

static void clear_shadow(Shadow* s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    s[i] = Shadow{};
    s[i].async_tid = -1;
  }
}

void shared_touch(Region& r, void* storage, size_t bytes) {
  Launch* L = g_launch;
  if (!L || !L->cur) throw std::runtime_error("structura-emu: SMEM array declared outside a kernel");
  if (r.block_serial == L->block_serial) return;
  if (!r.shadow) {
    r.shadow = new Shadow[bytes];  // lives as long as the static array it describes
    clear_shadow(r.shadow, bytes);
  }
  // first use in this block: poison like uninitialized GPU memory
  std::memset(storage, 0xff, bytes);
  r.block_serial = L->block_serial;
  L->static_smem += bytes;  // counted per block; reset at each block start
  if (L->static_smem > 48 * 1024 || L->static_smem + L->smem > 232448) {
    fail(ErrorKind::InvalidLaunch,
         fmt("shared memory of the block (%zu static + %zu dynamic bytes) exceeds the limits (48 KiB static, "
             "227 KiB in all)",
             L->static_smem, L->smem));
  }
}

ptr<unsigned char> dynamic_smem() {
  Launch* L = g_launch;
  if (!L || !L->cur) throw std::runtime_error("structura-emu: DYN_SMEM used outside a kernel");
  return ptr<unsigned char>(reinterpret_cast<unsigned char*>(L->dyn.lo), &L->dyn);
}

// ------------------------------------------------------------------------------------------------
// scheduling: blocking points

static void block_here(Launch& L, St st) {
  Thread* t = L.cur;
  t->st = st;
  context_switch(t->ctx, L.sched);
}

int syncthreads(const char* file, int line, int op, int pred) {
  Launch& L = *g_launch;
  Thread* t = L.cur;
  prof_sync(*t);
  if (L.n_exited) {
    int ex = -1;
    for (auto& o : L.threads)
      if (o.st == St::Exited) { ex = o.linear; break; }
    fail(ErrorKind::BarrierDivergence,
         fmt("__syncthreads at %s:%d reached after %d thread(s) of the block exited (first: %s); every thread "
             "must reach it",
             file, line, L.n_exited, thread_str(L, ex).c_str()));
  }
  if (L.bar_arrived == 0) {
    L.bar_file = file;
    L.bar_line = line;
    L.bar_acc = op == 2 ? 1 : 0;
  } else if (L.bar_line != line || std::strcmp(L.bar_file, file) != 0) {
    fail(ErrorKind::BarrierDivergence,
         fmt("reached __syncthreads at %s:%d while other threads wait at the one at %s:%d", file, line, L.bar_file,
             L.bar_line));
  }
  if (op == 1) L.bar_acc += pred;
  else if (op == 2) L.bar_acc &= pred;
  else if (op == 3) L.bar_acc |= pred;
  if (++L.bar_arrived == L.nthreads) {
    profile::flush(L.name);  // every lane's accesses before the barrier are in (a no-op when none were recorded)
    L.bar_arrived = 0;
    L.epoch = ++g_epoch;
    for (auto& o : L.threads) {
      o.bar_result = L.bar_acc;
      if (o.st == St::Barrier) o.st = St::Ready;
    }
    return L.bar_acc;
  }
  block_here(L, St::Barrier);
  return t->bar_result;
}

// Completes `p` (index i in w.pending) if every lane it waits for is there.
static bool try_complete(Launch& L, Warp& w, size_t i) {
  Pending& p = w.pending[i];
  const unsigned live = w.present & ~w.exited;
  if (p.policy == Policy::FullWarp) {
    if (w.present != 0xffffffffu)
      fail_thread(ErrorKind::CollectiveDivergence, p.c.first_thread + __builtin_ctz(p.c.arrived),
                  fmt("%s needs all 32 lanes of the warp, but lanes %s do not exist (block size %d)", p.c.op,
                      lanes_str(~w.present).c_str(), L.nthreads));
    if (w.exited)
      fail_thread(ErrorKind::CollectiveDivergence, p.c.first_thread + __builtin_ctz(p.c.arrived),
                  fmt("%s needs all 32 lanes of the warp, but lanes %s have exited (lanes %s arrived)", p.c.op,
                      lanes_str(w.exited).c_str(), lanes_str(p.c.arrived).c_str()));
  }
  const unsigned need = p.c.mask & live;
  if ((p.c.arrived & need) != need) return false;
  Collective c = p.c;
  CollectiveFn fn = p.fn;
  w.pending.erase(w.pending.begin() + (ptrdiff_t)i);
  fn(c);
  for (int l = 0; l < 32; l++)
    if (c.arrived >> l & 1) L.threads[c.first_thread + l].st = St::Ready;
  return true;
}

void warp_collective(const char* op, unsigned mask, Policy policy, const void* in, void* out, CollectiveFn fn) {
  Launch& L = *g_launch;
  Thread* t = L.cur;
  Warp& w = L.warps[t->warp];
  const unsigned bit = 1u << t->lane;
  prof_sync(*t);
  if (!(mask & bit))
    fail(ErrorKind::InvalidArgument, fmt("%s called with mask 0x%08x, which does not include the calling lane %d", op, mask, t->lane));
  size_t i = 0;
  for (; i < w.pending.size(); i++)
    if (w.pending[i].c.mask == mask) break;
  if (i < w.pending.size()) {
    if (std::strcmp(w.pending[i].c.op, op) != 0)
      fail(ErrorKind::CollectiveDivergence,
           fmt("reached %s (mask 0x%08x) while lanes %s of the same mask wait at %s", op, mask,
               lanes_str(w.pending[i].c.arrived).c_str(), w.pending[i].c.op));
  } else {
    Pending p;
    std::memset(&p.c, 0, sizeof p.c);
    p.c.op = op;
    p.c.mask = mask;
    p.c.warp = t->warp;
    p.c.first_thread = t->warp * 32;
    p.policy = policy;
    p.fn = fn;
    w.pending.push_back(p);
  }
  w.pending[i].c.arrived |= bit;
  w.pending[i].c.lane[t->lane] = LaneIO{in, out};
  t->st = St::Collective;
  t->coll_op = op;
  t->coll_mask = mask;
  try_complete(L, w, i);
  if (t->st == St::Collective) block_here(L, St::Collective);
}

unsigned inactive_lanes() {
  Launch& L = *g_launch;
  const Warp& w = L.warps[L.cur->warp];
  return ~w.present | w.exited;
}
int lane_id() { return g_launch->cur->lane; }

static void thread_exit(Launch& L, Thread* t) {
  t->st = St::Exited;
  L.n_exited++;
  Warp& w = L.warps[t->warp];
  w.exited |= 1u << t->lane;
  if (L.bar_arrived > 0) {
    record(L, ErrorKind::BarrierDivergence,
           where(L) + " " + thread_str(L, t->linear) +
               fmt(": exited while %d thread(s) wait at __syncthreads (%s:%d); every thread must reach it", L.bar_arrived,
                   L.bar_file, L.bar_line));
    return;
  }
  for (size_t i = 0; i < w.pending.size();)
    if (!try_complete(L, w, i)) i++;
}

static void fiber_main() {
  Launch& L = *g_launch;
  Thread* t = L.cur;
  try {
    L.body(L.ctx);
  } catch (const std::exception& e) {
    record(L, ErrorKind::KernelException, where(L) + " " + thread_str(L, t->linear) + ": kernel threw: " + e.what());
  } catch (...) {
    record(L, ErrorKind::KernelException, where(L) + " " + thread_str(L, t->linear) + ": kernel threw");
  }
  t = L.cur;
  if (!L.failed) thread_exit(L, t);
  t->st = St::Exited;
  context_switch(t->ctx, L.sched);
  std::abort();
}

static const char* state_str(const Launch& L, const Thread& o, std::string& buf) {
  switch (o.st) {
    case St::Exited: return "exited";
    case St::Barrier: buf = fmt("waiting at __syncthreads (%s:%d)", L.bar_file, L.bar_line); return buf.c_str();
    case St::Collective: buf = fmt("waiting at %s (mask 0x%08x)", o.coll_op, o.coll_mask); return buf.c_str();
    case St::Mbarrier:
      buf = fmt("waiting on the mbarrier at shared address %u for a phase of parity %u", o.mbar_addr, o.mbar_parity);
      return buf.c_str();
    default: return "running";
  }
}

static void diagnose_deadlock(Launch& L) {
  for (const Thread& o : L.threads) {
    if (o.st != St::Mbarrier) continue;
    const Mbar& m = L.mbars[o.mbar_addr];
    int waiting = 0;
    for (const Thread& q : L.threads) waiting += q.st == St::Mbarrier && q.mbar_addr == o.mbar_addr;
    record(L, ErrorKind::BarrierDivergence,
           where(L) + " " + thread_str(L, o.linear) +
               fmt(" (and %d other thread(s)) wait on the mbarrier at shared address %u for a phase of parity %u that "
                   "never completes: its phase %u still waits for %lld of %u arrivals and %lld transaction bytes, and no "
                   "thread left can arrive (deadlock on the GPU)",
                   waiting - 1, o.mbar_addr, o.mbar_parity, m.phase, (long long)m.pending, m.count, (long long)m.tx));
    return;
  }
  for (auto& w : L.warps) {
    if (w.pending.empty()) continue;
    const Pending& p = w.pending[0];
    const unsigned missing = p.c.mask & w.present & ~p.c.arrived;
    std::string detail;
    std::vector<std::pair<std::string, unsigned>> groups;  // state → lanes in it
    for (int l = 0; l < 32; l++) {
      if (!(missing >> l & 1)) continue;
      std::string buf;
      std::string st = state_str(L, L.threads[p.c.first_thread + l], buf);
      auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == st; });
      if (it == groups.end()) groups.push_back({st, 1u << l});
      else it->second |= 1u << l;
    }
    for (auto& g : groups) detail += "; lanes " + lanes_str(g.second) + " " + g.first;
    record(L, ErrorKind::CollectiveDivergence,
           where(L) + fmt(" warp %d: %s (mask 0x%08x) reached by lanes %s only; lanes %s never reach it (deadlock on "
                          "the GPU)",
                          p.c.warp, p.c.op, p.c.mask, lanes_str(p.c.arrived).c_str(), lanes_str(missing).c_str()) +
               detail);
    return;
  }
  record(L, ErrorKind::BarrierDivergence,
         where(L) + fmt(": %d thread(s) wait at __syncthreads (%s:%d) that the others never reach", L.bar_arrived,
                        L.bar_file, L.bar_line));
}

static void run_block(Launch& L) {
  L.block_serial = ++g_block_serial;
  L.epoch = ++g_epoch;
  L.wg_reads.clear();
  L.mbars.clear();
  L.bar_arrived = 0;
  L.n_exited = 0;
  L.static_smem = 0;
  if (L.smem) {
    std::memset(reinterpret_cast<void*>(L.dyn.lo), 0xff, L.smem);  // poison, like uninitialized shared memory
    clear_shadow(g_dyn_shadow.data(), L.smem);
  }
  for (auto& w : L.warps) {
    w.pending.clear();
    w.exited = 0;
    w.gen = w.full_gen = 0;
    std::memset(w.pair, 0, sizeof w.pair);
  }
  for (int i = 0; i < L.nthreads; i++) {
    Thread& t = L.threads[i];
    t.ids.blockIdx = L.block_idx;
    t.st = St::Ready;
    t.cp_committed = t.cp_waited = 0;
    t.wg_committed = t.wg_waited = 0;
    t.pdl_waited = false;
    t.mbar_seen.clear();
    t.prof_seq = 0;
    t.prof_sites.clear();
    void* stack = stack_at(i);  // sets g_stack_size on first use
    context_init(t.ctx, stack, g_stack_size, fiber_main);
  }
  for (;;) {
    bool ran = false;
    int exited = 0;
    for (int i = 0; i < L.nthreads; i++) {
      Thread& t = L.threads[i];
      if (t.st == St::Ready) {
        L.cur = &t;
        tls_ids = &t.ids;
        context_switch(L.sched, t.ctx);
        L.cur = nullptr;
        tls_ids = nullptr;
        ran = true;
        if (L.failed) {
          profile::discard();
          return;
        }
      }
      if (t.st == St::Exited) exited++;
    }
    if (exited == L.nthreads) {
      profile::flush(L.name);
      return;
    }
    if (!ran) {
      diagnose_deadlock(L);
      return;
    }
  }
}

std::string kernel_name_from_signature(const char* pretty) {
  std::string s(pretty);
  size_t a = s.find("K = ");
  if (a == std::string::npos) return s;
  a += 4;
  int depth = 0;
  size_t b = a;
  for (; b < s.size(); b++) {
    char c = s[b];
    if (c == '<' || c == '(') depth++;
    else if (c == '>' || c == ')') depth--;
    else if ((c == ';' || c == ']') && depth == 0) break;
  }
  std::string name = s.substr(a, b - a);
  if (name.size() > 1 && name[0] == '&') name = name.substr(1);
  // Kernels live in an anonymous namespace (structura_cuda.h): name them as the source does.
  for (const char* anon : {"{anonymous}::", "(anonymous namespace)::"})
    for (size_t at; (at = name.find(anon)) != std::string::npos;) name.erase(at, std::strlen(anon));
  return name;
}

static cudaError_t g_last_error = cudaSuccess, g_sync_error = cudaSuccess;
static void set_error(cudaError_t e) {
  if (e != cudaSuccess) {
    g_last_error = e;
    g_sync_error = e;
  }
}

static cudaError_t code_for(ErrorKind k) {
  switch (k) {
    case ErrorKind::OutOfBounds: return cudaErrorIllegalAddress;
    case ErrorKind::Misaligned: return cudaErrorMisalignedAddress;
    case ErrorKind::InvalidLaunch: return cudaErrorInvalidConfiguration;
    case ErrorKind::None: return cudaSuccess;
    default: return cudaErrorLaunchFailure;
  }
}

static int launch_error(const char* name, ErrorKind kind, cudaError_t code, const std::string& msg) {
  g_last_launch.kind = kind;
  g_last_launch.message = "structura-emu: " + std::string(kind_name(kind)) + " in kernel '" + name + "': " + msg;
  set_error(code);
  return code;
}

int run_kernel(const char* name, const void* func, dim3 grid, dim3 block, size_t smem, void* stream,
               void (*body)(void*), void* ctx, bool pdl) {
  (void)stream;
  const uint64_t nthreads = (uint64_t)block.x * block.y * block.z;
  if (!nthreads || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    return launch_error(name, ErrorKind::InvalidLaunch, cudaErrorInvalidConfiguration,
                        fmt("block (%u,%u,%u) is not a valid block shape (1..1024 threads; x,y ≤ 1024, z ≤ 64)", block.x,
                            block.y, block.z));
  if (!grid.x || !grid.y || !grid.z || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    return launch_error(name, ErrorKind::InvalidLaunch, cudaErrorInvalidConfiguration,
                        fmt("grid (%u,%u,%u) is not a valid grid shape", grid.x, grid.y, grid.z));
  std::lock_guard<std::mutex> lock(g_launch_mu);
  size_t limit = 48 * 1024;
  {
    std::lock_guard<std::mutex> g(g_alloc_mu);
    auto it = g_func_max_dyn_smem.find(func);
    if (it != g_func_max_dyn_smem.end()) limit = std::max(limit, (size_t)it->second);
  }
  if (smem > limit)
    return launch_error(name, ErrorKind::InvalidLaunch, cudaErrorInvalidValue,
                        fmt("%zu bytes of dynamic shared memory exceed the %zu-byte limit (raise it with "
                            "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize), at most 232448)",
                            smem, limit));
  Launch L;
  L.name = name;
  L.func = func;
  L.grid = grid;
  L.block = block;
  L.smem = smem;
  L.smem_limit = std::max(limit, (size_t)48 * 1024);
  L.nthreads = (int)nthreads;
  L.body = body;
  L.ctx = ctx;
  L.serial = ++g_launch_serial;
  if (!pdl) g_chain_start = L.serial;
  L.chain_start = g_chain_start;
  L.pdl = pdl;
  L.threads.resize(nthreads);
  L.warps.resize((nthreads + 31) / 32);
  for (int i = 0; i < L.nthreads; i++) {
    Thread& t = L.threads[i];
    t.linear = i;
    t.warp = i / 32;
    t.lane = i % 32;
    t.ids.threadIdx = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y), (unsigned)(i / (block.x * block.y))};
    t.ids.blockDim = block;
    t.ids.gridDim = grid;
    L.warps[t.warp].present |= 1u << t.lane;
  }
  if (g_dyn_buf.size() < smem + 16) {
    g_dyn_buf.assign(smem + 16, 0);
    g_dyn_shadow.assign(smem, Shadow{});
  }
  // 16-byte aligned start, like the GPU's shared window
  const uintptr_t base = (reinterpret_cast<uintptr_t>(g_dyn_buf.data()) + 15) & ~uintptr_t(15);
  L.dyn.lo = base;
  L.dyn.hi = base + smem;
  L.dyn.space = Space::Shared;
  L.dyn.name = "extern __shared__ (dynamic)";
  L.dyn.shadow = g_dyn_shadow.data();
  g_launch = &L;
  profile::discard();  // nothing of an earlier launch may be attributed to this one
  if (profile::g_on) profile::count_launch(name);
  try {
    for (unsigned z = 0; z < grid.z && !L.failed; z++)
      for (unsigned y = 0; y < grid.y && !L.failed; y++)
        for (unsigned x = 0; x < grid.x && !L.failed; x++) {
          L.block_idx = uint3{x, y, z};
          run_block(L);
        }
  } catch (...) {
    g_launch = nullptr;
    throw;
  }
  g_launch = nullptr;
  if (L.failed) {
    g_last_launch.kind = L.kind;
    g_last_launch.message = L.message;
    set_error(code_for(L.kind));
    return code_for(L.kind);
  }
  g_last_launch = LaunchError{};
  return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------
// warp collectives

namespace {
struct ShflIn {
  uint64_t bits;
  int mode, b, width;
};
const char* const kShflOps[4] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};

void shfl_fn(Collective& c) {
  const ShflIn* first = nullptr;
  for (int l = 0; l < 32; l++)
    if (c.arrived >> l & 1) {
      const ShflIn* in = static_cast<const ShflIn*>(c.lane[l].in);
      if (!first) first = in;
      else if (in->width != first->width)
        fail_thread(ErrorKind::InvalidArgument, c.first_thread + l,
                    fmt("%s with width %d while other lanes use width %d", c.op, in->width, first->width));
    }
  // PTX shfl.sync (§9.7.9.6) with c = ((32 - width) << 8) | clamp, as the CUDA headers encode it
  for (int l = 0; l < 32; l++) {
    if (!(c.arrived >> l & 1)) continue;
    const ShflIn* in = static_cast<const ShflIn*>(c.lane[l].in);
    const unsigned segmask = (unsigned)(32 - in->width) & 0x1f;
    const unsigned cval = in->mode == 1 ? 0u : 0x1fu;
    const int maxLane = (int)((l & segmask) | (cval & ~segmask));
    const int minLane = (int)(l & segmask);
    const int b = in->b & 0x1f;
    int j = 0;
    bool ok = false;
    switch (in->mode) {
      case 0: j = minLane | (b & ~(int)segmask); ok = j <= maxLane; break;
      case 1: j = l - b; ok = j >= maxLane; break;
      case 2: j = l + b; ok = j <= maxLane; break;
      default: j = l ^ b; ok = j <= maxLane; break;
    }
    uint64_t v = in->bits;
    if (ok) {
      if (!(c.arrived >> j & 1)) {
        const Launch& L = *g_launch;
        const Warp& w = L.warps[c.warp];
        const char* why = !(w.present >> j & 1) ? "does not exist (partial warp)"
                          : (w.exited >> j & 1) ? "has exited"
                                                : "is not in the mask";
        fail_thread(ErrorKind::CollectiveDivergence, c.first_thread + l,
                    fmt("%s (mask 0x%08x) reads lane %d, which %s: the value is undefined", c.op, c.mask, j, why));
      }
      v = static_cast<const ShflIn*>(c.lane[j].in)->bits;
    }
    *static_cast<uint64_t*>(c.lane[l].out) = v;
  }
}

void vote_fn(Collective& c) {
  unsigned ballot = 0;
  int n = 0, any = 0, all = 1;
  for (int l = 0; l < 32; l++)
    if (c.arrived >> l & 1) {
      const int p = *static_cast<const int*>(c.lane[l].in);
      if (p) ballot |= 1u << l, any = 1;
      else all = 0;
      n++;
    }
  for (int l = 0; l < 32; l++)
    if (c.arrived >> l & 1) {
      unsigned* o = static_cast<unsigned*>(c.lane[l].out);
      const char* op = c.op;
      *o = op[2] == 'b' ? ballot : op[2] == 'a' && op[3] == 'n' ? (unsigned)any : (unsigned)all;
    }
}

struct ReduxIn {
  uint32_t v;
  int kind;
};
void redux_fn(Collective& c) {
  int kind = -1;
  uint32_t acc = 0;
  int32_t sacc = 0;
  bool first = true;
  for (int l = 0; l < 32; l++) {
    if (!(c.arrived >> l & 1)) continue;
    const ReduxIn* in = static_cast<const ReduxIn*>(c.lane[l].in);
    kind = in->kind;
    const uint32_t v = in->v;
    const int32_t sv = (int32_t)v;
    if (first) {
      acc = v;
      sacc = sv;
      first = false;
      continue;
    }
    switch (kind) {
      case 0: acc += v; break;
      case 1: acc = std::min(acc, v); break;
      case 2: acc = std::max(acc, v); break;
      case 3: sacc = std::min(sacc, sv); break;
      case 4: sacc = std::max(sacc, sv); break;
      case 5: acc &= v; break;
      case 6: acc |= v; break;
      default: acc ^= v; break;
    }
  }
  const uint32_t r = (kind == 3 || kind == 4) ? (uint32_t)sacc : acc;
  for (int l = 0; l < 32; l++)
    if (c.arrived >> l & 1) *static_cast<uint32_t*>(c.lane[l].out) = r;
}

void match_fn(Collective& c) {
  for (int l = 0; l < 32; l++) {
    if (!(c.arrived >> l & 1)) continue;
    const uint64_t v = *static_cast<const uint64_t*>(c.lane[l].in);
    unsigned m = 0;
    for (int j = 0; j < 32; j++)
      if ((c.arrived >> j & 1) && *static_cast<const uint64_t*>(c.lane[j].in) == v) m |= 1u << j;
    *static_cast<unsigned*>(c.lane[l].out) = m;
  }
}

void syncwarp_fn(Collective& c) {
  Launch& L = *g_launch;
  Warp& w = L.warps[c.warp];
  w.gen++;
  const unsigned live = w.present & ~w.exited;
  if ((c.mask & live) == live) {
    w.full_gen = w.gen;
  } else {
    for (int a = 0; a < 32; a++)
      if (c.arrived >> a & 1)
        for (int b = 0; b < 32; b++)
          if (c.arrived >> b & 1) w.pair[a][b] = w.gen;
  }
}
}  // namespace

uint64_t shfl(unsigned mask, uint64_t bits, int mode, int b, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fail(ErrorKind::InvalidArgument, fmt("%s with width %d (must be a power of two ≤ 32)", kShflOps[mode & 3], width));
  ShflIn in{bits, mode, b, width};
  uint64_t out = 0;
  warp_collective(kShflOps[mode & 3], mask, Policy::NonExited, &in, &out, shfl_fn);
  return out;
}
unsigned vote(unsigned mask, int pred, int kind) {
  static const char* const ops[3] = {"__ballot_sync", "__any_sync", "__all_sync"};
  int p = pred != 0;
  unsigned out = 0;
  warp_collective(ops[kind], mask, Policy::NonExited, &p, &out, vote_fn);
  return out;
}
uint32_t redux(unsigned mask, uint32_t v, int kind) {
  static const char* const ops[8] = {"__reduce_add_sync", "__reduce_min_sync", "__reduce_max_sync", "__reduce_min_sync(int)",
                                     "__reduce_max_sync(int)", "__reduce_and_sync", "__reduce_or_sync", "__reduce_xor_sync"};
  ReduxIn in{v, kind};
  uint32_t out = 0;
  warp_collective(ops[kind], mask, Policy::NonExited, &in, &out, redux_fn);
  return out;
}
unsigned match_any(unsigned mask, uint64_t v) {
  unsigned out = 0;
  warp_collective("__match_any_sync", mask, Policy::NonExited, &v, &out, match_fn);
  return out;
}
void syncwarp(unsigned mask) { warp_collective("__syncwarp", mask, Policy::NonExited, nullptr, nullptr, syncwarp_fn); }
unsigned activemask() {
  Launch& L = *g_launch;
  const Warp& w = L.warps[L.cur->warp];
  return w.present & ~w.exited;
}

// ------------------------------------------------------------------------------------------------
// cp.async (PTX §9.7.9.25.3): copied at issue; the destination stays "pending" for reads and writes
// until the issuing thread's wait_group covers its group

__attribute__((noinline)) void cp_async(ptr<void> dst, ptr<const void> src, int cp_size, int src_size) {
  const uintptr_t site = reinterpret_cast<uintptr_t>(__builtin_return_address(0));  // the kernel's cp.async
  Launch& L = *g_launch;
  Thread* t = L.cur;
  if (!(cp_size == 4 || cp_size == 8 || cp_size == 16))
    fail(ErrorKind::InvalidArgument, fmt("cp.async with cp-size %d (4, 8 or 16)", cp_size));
  if (src_size < 0 || src_size > cp_size)
    fail(ErrorKind::AsyncCopy, fmt("cp.async with src-size %d outside [0, %d]", src_size, cp_size));
  if (!dst.r || dst.r->space != Space::Shared)
    fail(ErrorKind::AsyncCopy, fmt("cp.async destination %p is not shared memory", (void*)dst.p));
  if (src_size > 0) {
    if (src.r && src.r->space != Space::Global)
      fail(ErrorKind::AsyncCopy, fmt("cp.async source %p is not global memory", (const void*)src.p));
    check_impl(t->linear, src.r, src.p, (size_t)src_size, (size_t)cp_size, Access::Read, site);
  }
  check_impl(t->linear, dst.r, dst.p, (size_t)cp_size, (size_t)cp_size, Access::Write, site);
  unsigned char* d = static_cast<unsigned char*>(dst.p);
  if (src_size > 0) std::memcpy(d, src.p, (size_t)src_size);
  std::memset(d + src_size, 0, (size_t)(cp_size - src_size));
  Shadow* s = dst.r->shadow + (reinterpret_cast<uintptr_t>(dst.p) - dst.r->lo);
  for (int i = 0; i < cp_size; i++) {
    s[i].async_tid = t->linear;
    s[i].async_block = L.block_serial;
    s[i].async_group = t->cp_committed + 1;
  }
}
// wgmma: the emulated instruction reads at issue (cuda/emu/ptx_emu.cc); these keep its shared reads
// "in flight" until the warp's wait_group covers them, so that a write to them is reported.
void wgmma_track(const Collective& c, const void* lo, const void* hi) {
  Launch& L = *g_launch;
  L.wg_reads.push_back(WgRead{c.warp, L.threads[(size_t)c.first_thread].wg_committed + 1,
                              reinterpret_cast<uintptr_t>(lo), reinterpret_cast<uintptr_t>(hi)});
}
// ---- mbarrier and TMA ----------------------------------------------------------------------------

// addr's offset in the dynamic shared memory (addr ≥ kSmemWindowBase: smem_inside checks it first)
static size_t smem_offset(uint32_t addr) { return (size_t)(addr - kSmemWindowBase); }
// Whether [addr, addr + bytes) lies in the launch's dynamic shared memory.
static bool smem_inside(const Launch& L, uint32_t addr, size_t bytes) {
  return addr >= kSmemWindowBase && smem_offset(addr) + bytes <= L.smem;
}

static Mbar& mbar_at(Launch& L, uint32_t addr, const char* op) {
  if (addr % 8 || !smem_inside(L, addr, 8))
    fail(ErrorKind::InvalidArgument, fmt("%s: shared address %u is not an 8-byte aligned mbarrier inside the %zu bytes "
                                         "of dynamic shared memory (from shared address %u)", op, addr, L.smem, kSmemWindowBase));
  auto it = L.mbars.find(addr);
  if (it == L.mbars.end())
    fail(ErrorKind::Mbarrier, fmt("%s: no mbarrier was initialized at shared address %u (mbarrier.init)", op, addr));
  return it->second;
}

// Completes the phase in progress if nothing is outstanding, and wakes the threads waiting for it.
static void mbar_progress(Launch& L, uint32_t addr, Mbar& m) {
  if (m.pending > 0 || m.tx != 0) return;
  m.phase++;
  m.pending = m.count;
  for (Thread& o : L.threads)
    if (o.st == St::Mbarrier && o.mbar_addr == addr && (m.phase & 1u) != o.mbar_parity) o.st = St::Ready;
}

void mbar_init(uint32_t addr, unsigned count) {
  Launch& L = *g_launch;
  if (addr % 8 || !smem_inside(L, addr, 8))
    fail(ErrorKind::InvalidArgument, fmt("mbarrier.init: shared address %u is not 8-byte aligned inside the %zu bytes of "
                                         "dynamic shared memory (from shared address %u)", addr, L.smem, kSmemWindowBase));
  if (count < 1 || count > (1u << 20) - 1) fail(ErrorKind::InvalidArgument, fmt("mbarrier.init with count %u", count));
  Mbar m;
  m.count = count;
  m.pending = count;
  L.mbars[addr] = m;
  std::memset(reinterpret_cast<void*>(L.dyn.lo + smem_offset(addr)), 0, 8);
}

void mbar_arrive(uint32_t addr, unsigned expect_tx_bytes) {
  Launch& L = *g_launch;
  Mbar& m = mbar_at(L, addr, expect_tx_bytes ? "mbarrier.arrive.expect_tx" : "mbarrier.arrive");
  m.tx += expect_tx_bytes;
  if (m.pending <= 0)
    fail(ErrorKind::Mbarrier, fmt("mbarrier.arrive on the mbarrier at shared address %u: more arrivals in phase %u "
                                  "than its count %u", addr, m.phase, m.count));
  m.pending--;
  mbar_progress(L, addr, m);
}

void mbar_wait(uint32_t addr, unsigned parity) {
  Launch& L = *g_launch;
  Thread* t = L.cur;
  prof_sync(*t);
  for (;;) {
    Mbar& m = mbar_at(L, addr, "mbarrier.try_wait.parity");
    if ((m.phase & 1u) != (parity & 1u)) {  // the phase of that parity has completed: m.phase of them are
      std::pair<uint32_t, uint32_t>* seen = nullptr;
      for (auto& e : t->mbar_seen)
        if (e.first == addr) seen = &e;
      const uint32_t before = seen ? seen->second : 0;
      // A parity names one of two phases: if two or more completed since this thread last looked, it
      // cannot tell which one it waited for (a producer that ran a lap ahead, e.g. without waiting
      // for its consumers to release the stage).
      if (m.phase > before + 1)
        fail(ErrorKind::Mbarrier, fmt("mbarrier.try_wait.parity %u on the mbarrier at shared address %u: %u phases "
                                      "completed since this thread's previous wait on it (it had seen %u, now %u), so "
                                      "the parity cannot tell them apart",
                                      parity & 1u, addr, m.phase - before, before, m.phase));
      if (seen) seen->second = m.phase;
      else t->mbar_seen.push_back({addr, m.phase});
      return;
    }
    t->mbar_addr = addr;
    t->mbar_parity = parity & 1u;
    block_here(L, St::Mbarrier);
  }
}

static_assert(sizeof(TmaMap) <= 128, "the emulated tensor map fits a CUtensorMap");

void tma_load_2d(uint32_t dst, const void* map_p, int c0, int c1, uint32_t bar) {
  Launch& L = *g_launch;
  TmaMap mp;
  std::memcpy(&mp, map_p, sizeof mp);
  const char* op = "cp.async.bulk.tensor.2d";
  if (mp.magic != kTmaMagic) fail(ErrorKind::InvalidArgument, fmt("%s: the tensor map was not encoded (tma_encode_2d)", op));
  const size_t row = (size_t)mp.box[0] * mp.elem_bytes, bytes = row * mp.box[1];
  if (mp.swizzle != 128 || row != 128)
    fail(ErrorKind::InvalidArgument, fmt("%s: only the 128-byte swizzle with 128-byte box rows is emulated (box row of %zu "
                                         "bytes, swizzle %u)", op, row, mp.swizzle));
  if (dst % 1024 || !smem_inside(L, dst, bytes))
    fail(ErrorKind::InvalidArgument, fmt("%s: destination at shared address %u (%zu bytes) must be 1024-byte aligned (the "
                                         "128-byte swizzle) and inside the %zu bytes of dynamic shared memory (from "
                                         "shared address %u)", op, dst, bytes, L.smem, kSmemWindowBase));
  const size_t dst_off = smem_offset(dst);
  Mbar& m = mbar_at(L, bar, op);
  const Region* g = find_global(mp.base);
  unsigned char* smem = reinterpret_cast<unsigned char*>(L.dyn.lo);
  for (const WgRead& w : L.wg_reads)
    if (L.dyn.lo + dst_off < w.hi && L.dyn.lo + dst_off + bytes > w.lo && w.group > L.threads[(size_t)w.warp * 32].wg_waited)
      fail(ErrorKind::SharedRace, fmt("%s into shared address %u while a wgmma of warp %d that reads it (commit group %u) "
                                      "is still in flight", op, dst, w.warp, w.group));
  for (uint32_t r = 0; r < mp.box[1]; r++)
    for (uint32_t i = 0; i < mp.box[0]; i++) {
      const int64_t gi = (int64_t)c0 + i, gr = (int64_t)c1 + r;
      uint32_t a = dst + r * (uint32_t)row + i * mp.elem_bytes;
      a ^= ((a >> 7) & 7u) << 4;  // the swizzle is a function of the shared address, not of the offset
      unsigned char* d = smem + (a - kSmemWindowBase);
      if (gi >= 0 && gr >= 0 && (uint64_t)gi < mp.dim[0] && (uint64_t)gr < mp.dim[1]) {
        const unsigned char* src = static_cast<const unsigned char*>(mp.base) + (uint64_t)gr * mp.row_bytes + (uint64_t)gi * mp.elem_bytes;
        check_impl(L.cur->linear, g, src, mp.elem_bytes, 1, Access::Read, /*site: not a warp access*/ 0);
        std::memcpy(d, src, mp.elem_bytes);
      } else {
        std::memset(d, 0, mp.elem_bytes);
      }
      Shadow* s = L.dyn.shadow + (a - kSmemWindowBase);
      for (uint32_t e = 0; e < mp.elem_bytes; e++) {
        s[e].tma = true;
        s[e].tma_bar = bar;
        s[e].tma_phase = m.phase;
      }
    }
  m.tx -= (int64_t)bytes;
  mbar_progress(L, bar, m);
}

void pdl_wait() {
  Launch* L = g_launch;
  if (!L || !L->cur) throw std::runtime_error("structura-emu: pdl_wait outside a kernel");
  L->cur->pdl_waited = true;
}
void prefetch_check(const Region* r, const void* p, uint32_t bytes) {
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  if (x % 16 || bytes % 16 || bytes == 0)
    fail(ErrorKind::Misaligned, fmt("cp.async.bulk.prefetch.L2 of %u bytes at %p: the address and size must be multiples "
                                    "of 16", bytes, p));
  if (!r || r->space != Space::Global || x < r->lo || x + bytes > r->hi)
    fail(ErrorKind::OutOfBounds, fmt("cp.async.bulk.prefetch.L2 of %u bytes at %p: outside its global allocation", bytes, p));
}

// A copy or memset is ordered after every kernel before it and before every kernel after it: the
// next launch_pdl cannot overlap a kernel from before it.
void end_pdl_chain() { g_chain_start = g_launch_serial + 1; }

void wgmma_commit() { g_launch->cur->wg_committed++; }
void wgmma_wait(int n) {
  Launch& L = *g_launch;
  Thread* t = L.cur;
  if (n < 0) fail(ErrorKind::InvalidArgument, fmt("wgmma.wait_group %d", n));
  if (t->wg_committed > (uint32_t)n) t->wg_waited = std::max(t->wg_waited, t->wg_committed - (uint32_t)n);
  // forget what every warp has waited for (lane 0's counters stand for the warp)
  auto done = [&](const WgRead& w) { return w.group <= L.threads[(size_t)w.warp * 32].wg_waited; };
  L.wg_reads.erase(std::remove_if(L.wg_reads.begin(), L.wg_reads.end(), done), L.wg_reads.end());
}

void cp_async_commit() { g_launch->cur->cp_committed++; }
void cp_async_wait(int n) {
  Thread* t = g_launch->cur;
  if (n < 0) fail(ErrorKind::InvalidArgument, fmt("cp.async.wait_group %d", n));
  if (t->cp_committed > (uint32_t)n) t->cp_waited = std::max(t->cp_waited, t->cp_committed - (uint32_t)n);
}
void cp_async_wait_all() {
  Thread* t = g_launch->cur;
  t->cp_committed++;
  t->cp_waited = t->cp_committed;
}

}  // namespace emu

// ------------------------------------------------------------------------------------------------
// runtime API

using emu::fmt;

static emu::Region* alloc_region(size_t bytes) {
  void* p = nullptr;
  if (bytes) {
    p = std::aligned_alloc(256, (bytes + 255) & ~size_t(255));
    if (!p) return nullptr;
    std::memset(p, 0xff, bytes);  // like uninitialized device memory: NaN as float
  }
  auto* r = new emu::Region();
  r->lo = reinterpret_cast<uintptr_t>(p);
  r->hi = r->lo + bytes;
  r->space = emu::Space::Global;
  r->name = "cudaMalloc";
  r->capacity = bytes;
  return r;
}

// The emulated device's memory: 80 GiB like an H100, or STRUCTURA_EMU_MEMORY_MB (read at each call), so
// tests can run the out-of-memory paths without touching that much host memory.
static size_t device_total_bytes() {
  if (const char* e = std::getenv("STRUCTURA_EMU_MEMORY_MB"))
    if (*e) return (size_t)std::strtoull(e, nullptr, 10) << 20;
  return (size_t)80 << 30;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return emu::set_error(cudaErrorInvalidValue), cudaErrorInvalidValue;
  *p = nullptr;
  if (!bytes) return cudaSuccess;
  {
    std::lock_guard<std::mutex> g(emu::g_alloc_mu);
    const size_t total = device_total_bytes();
    if (bytes > total || emu::g_live_bytes > total - bytes)
      return emu::set_error(cudaErrorMemoryAllocation), cudaErrorMemoryAllocation;
  }
  emu::Region* r = alloc_region(bytes);
  if (!r) return emu::set_error(cudaErrorMemoryAllocation), cudaErrorMemoryAllocation;
  std::lock_guard<std::mutex> g(emu::g_alloc_mu);
  emu::g_allocs[r->lo] = r;
  emu::g_live_bytes += r->capacity;
  *p = reinterpret_cast<void*>(r->lo);
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  emu::Region* r = nullptr;
  {
    std::lock_guard<std::mutex> g(emu::g_alloc_mu);
    auto it = emu::g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == emu::g_allocs.end()) return emu::set_error(cudaErrorInvalidValue), cudaErrorInvalidValue;
    r = it->second;
    emu::g_live_bytes -= r->capacity;
    emu::g_allocs.erase(it);
  }
  std::free(p);
  delete r;
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes ? bytes : 1);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  const size_t total = device_total_bytes();
  std::lock_guard<std::mutex> g(emu::g_alloc_mu);
  if (free_bytes) *free_bytes = total > emu::g_live_bytes ? total - emu::g_live_bytes : 0;
  if (total_bytes) *total_bytes = total;
  return cudaSuccess;
}

// Device range check for the copy/set calls: must lie inside one allocation.
static bool device_range(const void* p, size_t bytes, const char* what, const char* call) {
  const emu::Region* r = emu::find_global(p);
  const uintptr_t x = reinterpret_cast<uintptr_t>(p);
  if (r && x + bytes <= r->hi) return true;
  emu::g_last_launch.kind = emu::ErrorKind::OutOfBounds;
  emu::g_last_launch.message =
      r ? fmt("structura-emu: %s: %s range [%p, +%zu) runs %zu bytes past the end of its %zu-byte allocation", call, what, p,
              bytes, (size_t)(x + bytes - r->hi), (size_t)(r->hi - r->lo))
        : fmt("structura-emu: %s: %s %p is not in any device allocation", call, what, p);
  return false;
}
static bool is_device(const void* p) { return emu::find_global(p) != nullptr; }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (!bytes) return cudaSuccess;
  bool dd = false, sd = false;
  switch (kind) {
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyHostToDevice: dd = true; break;
    case cudaMemcpyDeviceToHost: sd = true; break;
    case cudaMemcpyDeviceToDevice: dd = sd = true; break;
    case cudaMemcpyDefault: dd = is_device(dst); sd = is_device(src); break;
    default: return emu::set_error(cudaErrorInvalidMemcpyDirection), cudaErrorInvalidMemcpyDirection;
  }
  if ((dd && !device_range(dst, bytes, "destination", "cudaMemcpy")) ||
      (sd && !device_range(src, bytes, "source", "cudaMemcpy")))
    return emu::set_error(cudaErrorInvalidValue), cudaErrorInvalidValue;
  std::memmove(dst, src, bytes);
  emu::end_pdl_chain();
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (!bytes) return cudaSuccess;
  if (!device_range(p, bytes, "destination", "cudaMemset")) return emu::set_error(cudaErrorInvalidValue), cudaErrorInvalidValue;
  std::memset(p, value, bytes);
  emu::end_pdl_chain();
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) { return cudaMemset(p, value, bytes); }

// Streams and events: work runs when it is issued, so streams are handles and events timestamps.
struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  double ms;
  bool recorded;
};
static std::mutex g_handle_mu;
static std::set<const void*> g_handles;
static bool valid_handle(const void* h) {
  if (h == nullptr || h == cudaStreamLegacy || h == cudaStreamPerThread) return true;
  std::lock_guard<std::mutex> g(g_handle_mu);
  return g_handles.count(h) != 0;
}
static double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st{flags};
  std::lock_guard<std::mutex> g(g_handle_mu);
  g_handles.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  {
    std::lock_guard<std::mutex> g(g_handle_mu);
    if (!s || !g_handles.erase(s)) return emu::set_error(cudaErrorInvalidResourceHandle), cudaErrorInvalidResourceHandle;
  }
  delete s;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  cudaError_t e = emu::g_sync_error;
  emu::g_sync_error = cudaSuccess;
  return e;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!valid_handle(s)) return cudaErrorInvalidResourceHandle;
  return cudaDeviceSynchronize();
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return valid_handle(s) ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  return valid_handle(s) && valid_handle(e) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = new CUevent_st{0, false};
  std::lock_guard<std::mutex> g(g_handle_mu);
  g_handles.insert(*e);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  {
    std::lock_guard<std::mutex> g(g_handle_mu);
    if (!e || !g_handles.erase(e)) return cudaErrorInvalidResourceHandle;
  }
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e || !valid_handle(e) || !valid_handle(s)) return cudaErrorInvalidResourceHandle;
  e->ms = now_ms();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e && valid_handle(e) ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e && valid_handle(e) ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b || !valid_handle(a) || !valid_handle(b)) return cudaErrorInvalidResourceHandle;
  if (!a->recorded || !b->recorded) return cudaErrorInvalidResourceHandle;
  *ms = (float)(b->ms - a->ms);
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > 232448) return emu::set_error(cudaErrorInvalidValue), cudaErrorInvalidValue;
    std::lock_guard<std::mutex> g(emu::g_alloc_mu);
    emu::g_func_max_dyn_smem[func] = value;
  }
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (emu::set_error(cudaErrorInvalidDevice), cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 12080;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 12080;
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() { return cudaSuccess; }
// An sm_90-like device (H100 SXM limits) so launch-parameter code takes its real paths.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return emu::set_error(cudaErrorInvalidDevice), cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "structura cuda-emu (CPU emulation)");
  p->totalGlobalMem = (size_t)80 << 30;
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 232448;
  p->sharedMemPerMultiprocessor = 233472;
  p->totalConstMem = 65536;
  p->memPitch = ~(size_t)0 >> 1;
  p->regsPerBlock = p->regsPerMultiprocessor = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->clockRate = 1980000;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->maxBlocksPerMultiProcessor = 32;
  p->l2CacheSize = 50 * 1024 * 1024;
  p->memoryClockRate = 2619000;
  p->memoryBusWidth = 5120;
  p->concurrentKernels = 1;
  p->asyncEngineCount = 2;
  p->unifiedAddressing = 1;
  p->canMapHostMemory = 1;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return emu::g_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define N(x) case x: return #x;
    N(cudaSuccess) N(cudaErrorInvalidValue) N(cudaErrorMemoryAllocation) N(cudaErrorInitializationError)
    N(cudaErrorInvalidConfiguration) N(cudaErrorInvalidDevicePointer) N(cudaErrorInvalidMemcpyDirection)
    N(cudaErrorInsufficientDriver) N(cudaErrorInvalidDeviceFunction) N(cudaErrorNoDevice) N(cudaErrorInvalidDevice)
    N(cudaErrorInvalidResourceHandle) N(cudaErrorNotReady) N(cudaErrorIllegalAddress) N(cudaErrorLaunchOutOfResources)
    N(cudaErrorIllegalInstruction) N(cudaErrorMisalignedAddress) N(cudaErrorLaunchFailure) N(cudaErrorNotSupported)
    N(cudaErrorUnknown)
#undef N
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return cudaGetErrorName(e);
  }
}

// ------------------------------------------------------------------------------------------------
// C API for the addon (structura_emu.h)

extern "C" int structura_emu_last_error(char* msg, size_t msg_len) {
  const emu::LaunchError& e = emu::last_launch_error();
  if (msg && msg_len) std::snprintf(msg, msg_len, "%s", e.message.c_str());
  return (int)e.kind;
}
extern "C" const char* structura_emu_error_kind_name(int kind) { return emu::kind_name((emu::ErrorKind)kind); }
extern "C" size_t structura_emu_live_bytes(void) {
  std::lock_guard<std::mutex> g(emu::g_alloc_mu);
  return emu::g_live_bytes;
}
extern "C" size_t structura_emu_live_allocations(void) {
  std::lock_guard<std::mutex> g(emu::g_alloc_mu);
  return emu::g_allocs.size();
}

// A caching allocator hands out a block larger than the tensor it holds; narrowing the block's bounds
// to the tensor keeps the out-of-bounds checks exact. 0 on success; -1 if p is not the start of an
// allocation or bytes exceeds what was allocated.
extern "C" int structura_emu_set_extent(void* p, size_t bytes) {
  std::lock_guard<std::mutex> g(emu::g_alloc_mu);
  auto it = emu::g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == emu::g_allocs.end() || bytes > it->second->capacity) return -1;
  it->second->hi = it->second->lo + bytes;
  return 0;
}
