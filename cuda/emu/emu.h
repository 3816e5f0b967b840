// emu.h — the core of the CPU emulation of a CUDA device (cuda/emu/README.md explains the model).
// Declares what kernel code compiled with -DSTRUCTURA_CUDA_EMU sees: thread/block indices (per fiber),
// checked pointers and shared-memory arrays (every access bounds-checked; shared accesses also
// race-checked), barriers, warp collectives that rendezvous the lanes of their mask, atomics, the
// launch entry point, and the hooks cuda/ptx.cuh uses for mma / ldmatrix / cp.async.
// Everything non-template lives in cuda/emu/emu.cc.
#ifndef STRUCTURA_EMU_H
#define STRUCTURA_EMU_H
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu_types.h"

namespace emu {

// ---- errors -------------------------------------------------------------------------------------

enum class ErrorKind : int {
  None = 0,
  OutOfBounds,           // global or shared access outside its allocation / array
  Misaligned,            // access not aligned to its size (a fault on the GPU)
  SharedRace,            // conflicting shared-memory accesses between two barriers
  BarrierDivergence,     // __syncthreads not reached by every thread of the block (or at two sites)
  CollectiveDivergence,  // a warp collective not reached by every lane of its mask
  InvalidMetadata,       // mma.sp metadata nibble that is not a valid sorted 2:4 pair
  AsyncCopy,             // cp.async destination used before its wait_group, or a bad cp.async
  InvalidArgument,       // bad operand to an intrinsic (shuffle width, selector, lane not in mask, …)
  InvalidLaunch,         // launch configuration the GPU would reject
  KernelException,       // the kernel code threw a C++ exception
  DependentLaunch,       // a launch_pdl kernel touched its predecessors' memory before pdl_wait
  Mbarrier,              // mbarrier misuse: not initialized, more arrivals than its count, a wait overrun
};
const char* kind_name(ErrorKind k);

// The last failed launch (kind None when the last launch succeeded). Reading does not clear it.
struct LaunchError {
  ErrorKind kind = ErrorKind::None;
  std::string message;  // "structura-emu: <kind> in kernel '<name>' block (x,y,z) thread (x,y,z): …"
};
const LaunchError& last_launch_error();

// ---- memory regions -----------------------------------------------------------------------------

enum class Space : uint8_t { Global, Shared };
struct Shadow;  // per-byte race/cp.async bookkeeping of a shared region (emu.cc)
struct Region {
  uintptr_t lo = 0, hi = 0;
  Space space = Space::Global;
  const char* name = "";
  Shadow* shadow = nullptr;    // shared regions only
  uint64_t block_serial = 0;   // shared: the block that last used it (statics are poisoned per block)
  size_t capacity = 0;         // global: bytes cudaMalloc'ed; [lo, hi) may be narrowed to the part in use
  mutable uint64_t written_by = 0;  // global: serial of the last launch that wrote it (the PDL check)
};
enum class Access : uint8_t { Read, Write, Atomic };

// Region of the device allocation holding p, or nullptr (then any access through it fails).
const Region* find_global(const void* p);
// Checks an access by the current emulated thread; on failure the kernel stops with an error.
void check_access(const Region* r, const void* p, size_t bytes, size_t align, Access a);

// ---- checked pointers ---------------------------------------------------------------------------

template <class T> struct ptr;

// A reference to one element: reads and writes are checked when they happen.
// Use `float x = a[i];` (not `auto x = a[i];`, which keeps the reference and reads later).
template <class T>
struct ref {
  using V = std::remove_cv_t<T>;
  T* p;
  const Region* r;

  __attribute__((always_inline)) V load() const {
    check_access(r, p, sizeof(T), alignof(T), Access::Read);
    V v;
    std::memcpy(static_cast<void*>(&v), p, sizeof(T));
    return v;
  }
  __attribute__((always_inline)) void store(const V& v) const {
    static_assert(!std::is_const<T>::value, "write through a pointer to const");
    check_access(r, p, sizeof(T), alignof(T), Access::Write);
    std::memcpy(static_cast<void*>(const_cast<V*>(p)), &v, sizeof(T));
  }
  __attribute__((always_inline)) operator V() const { return load(); }
  __attribute__((always_inline)) const ref& operator=(const V& v) const {
    store(v);
    return *this;
  }
  const ref& operator=(const ref& o) const {
    store(o.load());
    return *this;
  }
  template <class U> const ref& operator+=(const U& v) const { store(V(load() + v)); return *this; }
  template <class U> const ref& operator-=(const U& v) const { store(V(load() - v)); return *this; }
  template <class U> const ref& operator*=(const U& v) const { store(V(load() * v)); return *this; }
  template <class U> const ref& operator/=(const U& v) const { store(V(load() / v)); return *this; }
  template <class U> const ref& operator|=(const U& v) const { store(V(load() | v)); return *this; }
  template <class U> const ref& operator&=(const U& v) const { store(V(load() & v)); return *this; }
  template <class U> const ref& operator^=(const U& v) const { store(V(load() ^ v)); return *this; }
  V operator++(int) const { V o = load(); store(V(o + 1)); return o; }
  const ref& operator++() const { store(V(load() + 1)); return *this; }
  ptr<T> operator&() const { return ptr<T>(p, r); }
};

template <class T>
struct ptr {
  T* p = nullptr;
  const Region* r = nullptr;

  ptr() = default;
  ptr(std::nullptr_t) {}
  ptr(T* q, const Region* reg) : p(q), r(reg) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U*, T*>::value>>
  ptr(const ptr<U>& o) : p(o.p), r(o.r) {}

  ref<T> operator[](int64_t i) const { return ref<T>{p + i, r}; }
  ref<T> operator*() const { return ref<T>{p, r}; }
  ptr operator+(int64_t i) const { return ptr(p + i, r); }
  ptr operator-(int64_t i) const { return ptr(p - i, r); }
  ptrdiff_t operator-(const ptr& o) const { return p - o.p; }
  ptr& operator+=(int64_t i) { p += i; return *this; }
  ptr& operator-=(int64_t i) { p -= i; return *this; }
  ptr& operator++() { ++p; return *this; }
  ptr operator++(int) { ptr o = *this; ++p; return o; }
  explicit operator bool() const { return p != nullptr; }
  bool operator==(const ptr& o) const { return p == o.p; }
  bool operator!=(const ptr& o) const { return p != o.p; }
  bool operator<(const ptr& o) const { return p < o.p; }
  T* raw() const { return p; }
};
template <class T> ptr<T> operator+(int64_t i, const ptr<T>& q) { return q + i; }

// A statically sized shared array (or row of one) viewed with its region, indexed like a C array.
template <class A> struct aview;
template <class U, size_t N>
struct aview<U[N]> {
  U* p;
  const Region* r;
  auto operator[](int64_t i) const {
    if constexpr (std::is_array<U>::value) return aview<U>{p[i], r};
    else return ref<U>{p + i, r};
  }
  template <class E = U, class = std::enable_if_t<!std::is_array<E>::value>>
  operator ptr<E>() const { return ptr<E>(p, r); }
  template <class E = U, class = std::enable_if_t<!std::is_array<E>::value>>
  operator ptr<const E>() const { return ptr<const E>(p, r); }
  template <class E = U, class = std::enable_if_t<!std::is_array<E>::value>>
  ptr<E> operator+(int64_t i) const { return ptr<E>(p + i, r); }
  operator ptr<void>() const { return ptr<void>(const_cast<std::remove_cv_t<U>*>(p), r); }
  operator ptr<const void>() const { return ptr<const void>(p, r); }
};

// ---- threads, barriers --------------------------------------------------------------------------

struct Ids {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
};
extern thread_local const Ids* tls_ids;  // the running fiber's indices
inline const Ids& ids() { return *tls_ids; }

// __syncthreads and its counting forms; `site` is file:line so divergent barriers can be told apart.
int syncthreads(const char* file, int line, int op, int pred);

// ---- warp collectives ---------------------------------------------------------------------------

// Lanes of a collective meet in the emulator; the last to arrive runs `fn` over all of them.
struct LaneIO {
  const void* in;
  void* out;
};
struct Collective {
  const char* op;
  unsigned mask;        // the lanes that take part
  unsigned arrived;     // lanes that reached it (⊆ mask)
  LaneIO lane[32];
  int warp;             // warp index within the block
  int first_thread;     // linear thread index of lane 0 of the warp
};
using CollectiveFn = void (*)(Collective&);
enum class Policy { NonExited, FullWarp };
// NonExited: waits for the lanes of `mask` that exist and have not exited (shfl/vote/redux/syncwarp).
// FullWarp: `.sync.aligned` PTX (mma, ldmatrix): all 32 lanes must exist and arrive; mask is full.
void warp_collective(const char* op, unsigned mask, Policy policy, const void* in, void* out, CollectiveFn fn);
// Fails the kernel naming `thread` (linear index in the block) as the culprit.
[[noreturn]] void fail_thread(ErrorKind kind, int thread, const std::string& what);
[[noreturn]] void fail(ErrorKind kind, const std::string& what);
// check_access on behalf of another thread of the block (a warp op reading for lane `thread`).
void check_access_as(int thread, const Region* r, const void* p, size_t bytes, size_t align, Access a);
// … naming the code site of the access for the memory-access profile (profile.h; 0: not profiled, as
// for wgmma's descriptor reads); check_access and check_access_as name their caller.
void check_access_at(int thread, const Region* r, const void* p, size_t bytes, size_t align, Access a, uintptr_t site);
// The exited/nonexistent lanes of the current warp, and this thread's lane.
unsigned inactive_lanes();
int lane_id();

// ---- wgmma bookkeeping (cuda/ptx.cuh, cuda/emu/ptx_emu.cc) ----------------------------------------

// Marks shared bytes [lo, hi) as read by the wgmma the warp of collective c issues now (its next commit
// group); a write to them before the warp's wgmma.wait_group covers that group is a shared-race error.
void wgmma_track(const Collective& c, const void* lo, const void* hi);
void wgmma_commit();
void wgmma_wait(int n);

// ---- programmatic dependent launch (cuda/launch.cuh launch_pdl, cuda/ptx.cuh pdl_wait) -------------

// griddepcontrol.wait by the current thread: from here on it may touch what the launches it depends
// on wrote. Before it, a thread of a launch_pdl kernel may not write global memory, nor read an
// allocation written by a kernel that may still run beside it (one launched since the last launch that
// was not a launch_pdl, that one included; a cudaMemcpy/cudaMemset ends the chain).
void pdl_wait();
void end_pdl_chain();
// cp.async.bulk.prefetch.L2: nothing is read; [p, p + bytes) must lie in r's allocation, 16-byte aligned
// with bytes a multiple of 16 (checked as the GPU would fault on them).
void prefetch_check(const Region* r, const void* p, uint32_t bytes);

// ---- mbarrier and TMA (sm_90; cuda/ptx.cuh) --------------------------------------------------------
// Shared addresses (ptx::smem_addr) are kSmemWindowBase plus the offset in the launch's dynamic shared
// memory. The base is not a multiple of 1024 on purpose: on a GPU the dynamic block's address depends on
// the kernel's static shared memory, so the kernels that need 1024-byte tiles (the 128-byte swizzle)
// align them themselves, and here that padding runs instead of always being 0. An mbarrier's
// state (arrival count, pending arrivals, transaction bytes, completed phases) is kept beside the 8
// bytes it occupies; mbar_wait blocks the thread's fiber until the phase of that parity has completed
// (a wait no arrival can end is reported as a deadlock). A TMA load copies its box at issue (128-byte
// swizzle, zeros outside the tensor) and completes its bytes on the mbarrier; the bytes it wrote may be
// read (by loads or by wgmma) only by a thread that has since waited for that phase of that mbarrier.
constexpr uint32_t kSmemWindowBase = 0x410;
void mbar_init(uint32_t addr, unsigned count);
void mbar_arrive(uint32_t addr, unsigned expect_tx_bytes);
void mbar_wait(uint32_t addr, unsigned parity);
// A tiled 2-D tensor map as the emulator encodes it (in a CUtensorMap's 128 bytes).
struct TmaMap {
  uint32_t magic;
  uint32_t elem_bytes;
  const void* base;
  uint64_t dim[2];      // elements: inner (contiguous), outer
  uint64_t row_bytes;   // stride of the outer dimension
  uint32_t box[2];      // inner, outer
  uint32_t swizzle;     // bytes: 128 (the only mode emulated)
};
constexpr uint32_t kTmaMagic = 0x544d4131u;
void tma_load_2d(uint32_t dst, const void* map, int c0, int c1, uint32_t bar);

// ---- cp.async bookkeeping (cuda/ptx.cuh) ---------------------------------------------------------

void cp_async(ptr<void> dst, ptr<const void> src, int cp_size, int src_size);
void cp_async_commit();
void cp_async_wait(int n);  // wait_group n
void cp_async_wait_all();

// ---- shared memory ------------------------------------------------------------------------------

// Registers/refreshes a static shared array for the current block: poisoned (0xFF) at the first use
// in each block, counted against the block's shared-memory limit.
void shared_touch(Region& r, void* storage, size_t bytes);
template <class A>
struct shared_array {
  alignas(16) A storage;
  Region region;
  explicit shared_array(const char* name) {
    region.lo = reinterpret_cast<uintptr_t>(&storage);
    region.hi = region.lo + sizeof(A);
    region.space = Space::Shared;
    region.name = name;
  }
  aview<A> view() {
    shared_touch(region, &storage, sizeof(A));
    return aview<A>{storage, &region};
  }
};
// The launch's dynamic shared memory (extern __shared__), as bytes.
ptr<unsigned char> dynamic_smem();

// ---- atomics (fibers never preempt each other, so a checked read-modify-write is atomic) ----------

template <class T, class F>
T atomic_rmw(ptr<T> a, F f) {
  check_access(a.r, a.p, sizeof(T), alignof(T), Access::Atomic);
  T old;
  std::memcpy(&old, a.p, sizeof(T));
  T nv = f(old);
  std::memcpy(a.p, &nv, sizeof(T));
  return old;
}
template <class T>
T atomic_rmw_raw(T* a, T (*f)(T, T), T v) {
  T old = *a;
  *a = f(old, v);
  return old;
}

// ---- launch -------------------------------------------------------------------------------------

// Runs `body(ctx)` as every thread of every block; returns a cudaError_t value (0 on success).
// pdl: launched by launch_pdl (programmatic stream serialization; see pdl_wait).
int run_kernel(const char* name, const void* func, dim3 grid, dim3 block, size_t smem_bytes, void* stream,
               void (*body)(void*), void* ctx, bool pdl = false);

template <class F> struct kernel_params;
template <class... P> struct kernel_params<void (*)(P...)> {
  using tuple = std::tuple<std::decay_t<P>...>;
};

// "add_f32_kernel" from "… [with auto K = add_f32_kernel; …]" (g++ / clang __PRETTY_FUNCTION__)
std::string kernel_name_from_signature(const char* pretty);

}  // namespace emu

#endif
