// threadpool.h — the process-wide CPU thread pool every CPU kernel runs on.
// parallel_for splits [0, n) into contiguous chunks of at least `grain` items and runs fn(begin, end)
// on the pool's workers and the calling thread. Workers spin briefly, then sleep. Subnormals are kept
// (IEEE, as PyTorch and the devices); with set_flush_denormal(true) every thread of a job — and work
// run inline, one chunk or a call that finds the pool busy — runs with FTZ/DAZ (subnormals can make
// long products slow on some CPUs), and the calling thread gets its own MXCSR back afterwards (the
// caller is Node's thread: its JavaScript keeps IEEE subnormals). The mode is the process's, not a
// thread's (torch.set_flush_denormal's is per thread).
// The pool is shared by every Node environment (worker_threads): a call made while another thread
// holds the pool runs inline on its own thread instead of waiting.
#pragma once
#include <cstdint>
#include <functional>

namespace structura {

// Number of threads used by parallel_for (the caller included). Default: hardware concurrency.
int num_threads();
// Sets the pool size (1 = run everything on the calling thread). n is clamped to [1, 256].
void set_num_threads(int n);
// Runs fn(begin, end) over [0, n) in parallel. Exceptions thrown by fn are rethrown on the caller.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
// Runs fn(tid, nthreads) once on each of nthreads threads (nthreads ≤ num_threads()), with a barrier
// available through `barrier()` inside fn — for kernels (GEMM) that share packed panels between threads.
void parallel_region(int nthreads, const std::function<void(int tid, int nthreads)>& fn);
// Barrier among the threads of the current parallel_region (no-op outside one).
void region_barrier();
// Whether parallel jobs flush subnormals to zero (FTZ/DAZ), as torch.set_flush_denormal: off by
// default, so a large op (run by the pool) and a small one (run inline) give the same IEEE results,
// the devices' too. Returns false where the CPU has no such mode (then nothing changes).
bool set_flush_denormal(bool on);

}  // namespace structura
