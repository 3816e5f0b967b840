// threadpool_race.cc — csrc/threadpool.cc under set_num_threads racing parallel_for from another
// thread (worker_threads calling setNumThreads while others compute): every job must finish with all
// of its items done, and nothing may hang. Built and run by test/threadpool.test.ts.
//   usage: threadpool_race <seconds>; prints "ok <jobs> <resizes>", or "hang …" / "wrong …" and exits 2 / 3.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "threadpool.h"

using namespace structura;

int main(int argc, char** argv) {
  const int secs = argc > 1 ? std::atoi(argv[1]) : 3;
  std::atomic<long> jobs{0}, resizes{0};
  std::atomic<bool> quit{false};
  std::thread worker([&] {
    while (!quit) {
      std::atomic<int> done{0};
      parallel_for(2, 1, [&](int64_t b, int64_t e) { done += (int)(e - b); });
      if (done != 2) {
        std::printf("wrong: %d of 2 items done\n", done.load());
        std::fflush(stdout);
        std::_Exit(3);
      }
      jobs++;
    }
  });
  // Between 1 and 2 threads with short pauses: the window is a resize between a job's read of the pool
  // size and its lock. Two busy threads make the scheduler preempt there, as a shared machine does.
  std::thread resizer([&] {
    for (long n = 0; !quit; n++) {
      set_num_threads(1 + (int)(n & 1));
      resizes++;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::thread busy1([&] { for (volatile long x = 0; !quit;) x = x + 1; });
  std::thread busy2([&] { for (volatile long x = 0; !quit;) x = x + 1; });
  long last = -1;
  for (int t = 0; t < secs * 10; t++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const long j = jobs.load();
    if (j == last) {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      if (jobs.load() == j) {
        std::printf("hang: parallel_for stuck after %ld jobs and %ld resizes\n", j, resizes.load());
        std::fflush(stdout);
        std::_Exit(2);
      }
    }
    last = j;
  }
  quit = true;
  worker.join();
  resizer.join();
  busy1.join();
  busy2.join();
  std::printf("ok %ld %ld\n", jobs.load(), resizes.load());
  return 0;
}
