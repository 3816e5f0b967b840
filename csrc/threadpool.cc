// threadpool.cc — a persistent pool of worker threads (see threadpool.h).
// One job at a time: the caller publishes fn and a generation number; workers spin briefly on the
// generation, then sleep on a condition variable. A nested or concurrent call (from inside a job, or
// from another worker_thread while the pool is busy) runs inline on its own thread.
#include "threadpool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace structura {

namespace {
// Off by default (PyTorch's): with it on, only large ops (those the pool runs) flushed, so a result
// depended on the tensor's size and the thread count, and differed from the devices'.
std::atomic<bool> g_flush{false};

// FTZ (bit 15) / DAZ (bit 6) on this thread, on or off (a job's mode, read once for all its threads).
void apply_flush_mode(bool on) {
#if defined(__x86_64__) || defined(_M_X64)
  const unsigned csr = _mm_getcsr();
  const unsigned want = (csr & ~0x8040u) | (on ? 0x8040u : 0u);
  if (want != csr) _mm_setcsr(want);
#else
  (void)on;
#endif
}
}  // namespace

bool set_flush_denormal(bool on) {
#if defined(__x86_64__) || defined(_M_X64)
  g_flush.store(on);
  return true;
#else
  (void)on;
  return false;
#endif
}

namespace {

// The pool's FTZ/DAZ mode on the calling thread for one scope, its own MXCSR back afterwards: the
// caller of a parallel region is Node's thread (or a worker_thread's), whose JavaScript must keep IEEE
// subnormals (5e-324 * 1 is 5e-324) after the region.
class ScopedFlushDenormals {
 public:
  explicit ScopedFlushDenormals(bool on) {
#if defined(__x86_64__) || defined(_M_X64)
    saved_ = _mm_getcsr();
    apply_flush_mode(on);
#else
    (void)on;
#endif
  }
  ~ScopedFlushDenormals() {
#if defined(__x86_64__) || defined(_M_X64)
    // Only the control bits: the sticky exception flags the work raised stay raised, as they would
    // without the scope.
    _mm_setcsr((_mm_getcsr() & ~0x8040u) | (saved_ & 0x8040u));
#endif
  }
  ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
  ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
};

thread_local int t_region_threads = 0;  // > 1 inside a parallel_region with a live barrier

// f() run inline on the calling thread: in the flush mode when it is on and no job's mode is set
// already (t_region_threads == 0: not inside a job), so small ops flush as large ones do.
template <class F>
void run_inline(F&& f) {
  if (t_region_threads == 0 && g_flush.load(std::memory_order_relaxed)) {
    ScopedFlushDenormals ftz(true);
    f();
  } else {
    f();
  }
}

struct Pool {
  std::vector<std::thread> workers;
  // threads including the caller; written under run_mutex (set_num_threads), read anywhere
  std::atomic<int> size{1};
  std::mutex run_mutex;  // held by the thread that owns the pool during a job

  // job state
  std::mutex m;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  const std::function<void(int, int)>* job = nullptr;
  int job_threads = 0;
  bool job_flush = false;  // the job's FTZ/DAZ mode, read once before it is published
  std::exception_ptr error;
  std::mutex error_mutex;
  bool stop = false;

  // barrier for parallel_region
  std::atomic<int> bar_count{0};
  std::atomic<uint64_t> bar_gen{0};

  ~Pool() { shutdown(); }

  void shutdown() {
    {
      std::lock_guard<std::mutex> g(m);
      stop = true;
      generation++;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  void start(int n) {
    size = n;
    // New workers (after set_num_threads) must not take the last, finished job as a new one.
    const uint64_t gen = generation.load();
    for (int i = 1; i < n; i++) workers.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run_one(int tid) {
    if (tid != 0) apply_flush_mode(job_flush);  // (the caller's share sets it in its own scope)
    try {
      (*job)(tid, job_threads);
    } catch (...) {
      std::lock_guard<std::mutex> g(error_mutex);
      if (!error) error = std::current_exception();
    }
  }

  void loop(int tid, uint64_t seen) {
    for (;;) {
      // spin ~50 µs, then sleep
      uint64_t g = generation.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < 20000; spin++) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return generation.load() != seen || stop; });
        g = generation.load();
      }
      if (stop) return;
      seen = g;
      if (tid < job_threads) {
        t_region_threads = job_threads;
        run_one(tid);
        t_region_threads = 0;
        remaining.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  void barrier(int n) {
    uint64_t gen = bar_gen.load(std::memory_order_acquire);
    if (bar_count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      bar_count.store(0, std::memory_order_relaxed);
      bar_gen.fetch_add(1, std::memory_order_acq_rel);
    } else {
      int spin = 0;
      while (bar_gen.load(std::memory_order_acquire) == gen) {
        if (++spin > 4000) std::this_thread::yield();
#if defined(__x86_64__) || defined(_M_X64)
        else _mm_pause();
#endif
      }
    }
  }
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();  // never destroyed: workers outlive static destructors safely
    unsigned hc = std::thread::hardware_concurrency();
    q->start(std::max(1u, std::min(hc ? hc : 1u, 64u)));
    return q;
  }();
  return *p;
}

}  // namespace

int num_threads() { return pool().size; }

void set_num_threads(int n) {
  n = std::max(1, std::min(n, 256));
  Pool& p = pool();
  std::lock_guard<std::mutex> g(p.run_mutex);
  if (n == p.size) return;
  p.shutdown();
  p.start(n);
}

void parallel_region(int nthreads, const std::function<void(int, int)>& fn) {
  Pool& p = pool();
  std::unique_lock<std::mutex> own(p.run_mutex, std::try_to_lock);
  // The pool's size read only now that it is ours: a set_num_threads(1) between a read before the lock
  // and the lock left a 2-thread job for a pool without workers, spinning forever below (and, holding
  // run_mutex, every later set_num_threads with it).
  nthreads = std::max(1, std::min(nthreads, p.size.load()));
  if (nthreads == 1 || !own.owns_lock() || t_region_threads > 0) {
    int saved = t_region_threads;
    try {
      run_inline([&] {
        t_region_threads = 1;
        fn(0, 1);
      });
    } catch (...) {
      t_region_threads = saved;
      throw;
    }
    t_region_threads = saved;
    return;
  }
  p.job = &fn;
  p.job_threads = nthreads;
  p.job_flush = g_flush.load();
  p.error = nullptr;
  p.remaining.store(nthreads - 1);
  p.bar_count.store(0);
  {
    std::lock_guard<std::mutex> g(p.m);
    p.generation.fetch_add(1, std::memory_order_acq_rel);
  }
  p.cv.notify_all();
  t_region_threads = nthreads;
  {
    // The caller's share runs in the workers' FTZ/DAZ mode, so every chunk of a job computes alike.
    ScopedFlushDenormals ftz(p.job_flush);
    p.run_one(0);
  }
  t_region_threads = 0;
  while (p.remaining.load(std::memory_order_acquire) > 0) {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#endif
  }
  p.job = nullptr;
  if (p.error) {
    auto e = p.error;
    p.error = nullptr;
    std::rethrow_exception(e);
  }
}

void region_barrier() {
  if (t_region_threads <= 1) return;
  pool().barrier(pool().job_threads);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, num_threads());
  if (chunks <= 1) {
    run_inline([&] { fn(0, n); });
    return;
  }
  parallel_region((int)chunks, [&](int tid, int nt) {
    int64_t b = n * tid / nt, e = n * (tid + 1) / nt;
    if (b < e) fn(b, e);
  });
}

}  // namespace structura
