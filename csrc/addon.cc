// addon.cc — module init (context-aware: one instance per Node environment, so the addon loads in
// worker_threads), the environment functions (backend, memory, threads), and registration of the ops.
#include <napi.h>

#include <cstdlib>
#include <string>

#include "cpu/cpuinfo.h"
#include "device.h"
#include "host_cache.h"
#include "ops/ops.h"
#include "cuda_abi.h"
#include "tensor.h"
#include "threadpool.h"
#ifdef STRUCTURA_HAVE_CUDA_EMU
#include "emu/structura_emu.h"
#endif

#ifndef STRUCTURA_VERSION
#define STRUCTURA_VERSION "0.1.0"
#endif

namespace structura {

void set_thread_env(napi_env env);  // tensor.cc

// Kernels switched off by STRUCTURA_CUDA_DISABLE (cuda/structura_cuda.h): the nvcc build's word (its
// stand-in without CUDA has none) or the emulated build's; both read the same variable.
static bool kernel_disabled(int sw) {
#ifdef STRUCTURA_HAVE_CUDA_EMU
  if (structura_emu_cuda_disabled(sw)) return true;
#endif
  return structura_cuda_disabled(sw) != 0;
}
static std::string kernel_switch_name(int sw) {
  const char* n = structura_cuda_switch_name(sw);
#ifdef STRUCTURA_HAVE_CUDA_EMU
  if (!n) n = structura_emu_cuda_switch_name(sw);
#endif
  return n ? n : "?";
}

static Napi::Value Backend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  int count = 0, rt = 0, drv = 0;
  char msg[512] = {0};
  structura_cuda_probe(&count, &rt, &drv, msg, sizeof msg);
  Napi::Array devices = Napi::Array::New(env);
  for (int i = 0; i < count; i++) {
    char name[256] = {0};
    int ma = 0, mi = 0;
    size_t mem = 0;
    if (structura_cuda_device_props(i, name, sizeof name, &ma, &mi, &mem) != 0) continue;
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", name);
    d.Set("cc", std::to_string(ma) + "." + std::to_string(mi));
    d.Set("memory", (double)mem);
    devices.Set(devices.Length(), d);
  }
  // cuda: tensors can live on 'cuda' (compiled in and a device found); otherwise reason says why.
  // cudaEmu: the emulated device 'cuda-emu' (cuda/*.cu run on the CPU by cuda/emu/) is compiled in.
  bool compiled = structura_cuda_compiled() != 0;
  r.Set("cuda", compiled && count > 0);
  r.Set("cudaCompiled", compiled);
  r.Set("cudaEmu", cuda_emu_compiled());
  if (!compiled || count == 0) r.Set("reason", std::string(msg));
  else r.Set("reason", "");
  r.Set("devices", devices);
  r.Set("simd", simd_name(simd_level()));
  r.Set("simdHardware", simd_name(simd_hardware()));
  r.Set("threads", num_threads());
  r.Set("version", STRUCTURA_VERSION);
  if (compiled) {
    r.Set("cudaRuntimeVersion", rt);
    r.Set("driverVersion", drv);
  }
  // the kernels STRUCTURA_CUDA_DISABLE switched off (either build reads it)
  Napi::Array off = Napi::Array::New(env);
  for (int sw = 0; sw < STRUCTURA_SW_COUNT; sw++)
    if (kernel_disabled(sw)) off.Set(off.Length(), kernel_switch_name(sw));
  r.Set("cudaDisabled", off);
  return r;
}

static Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  const char* names[] = {"cpu", "cuda", "cuda-emu"};
  for (int t = 0; t < 3; t++) {
    MemoryCounters c = memory_counters((DeviceType)t);
    // Devices also report their caching allocator: bytes in free cached blocks (not counted in
    // `bytes`, which is the live tensors'), and all bytes reserved from the device; the CPU its cache
    // of large buffers (host_cache.h).
    DeviceCacheStats cs = t == 0 ? DeviceCacheStats{} : device_cache_stats((DeviceType)t);
    if (t != 0 && c.buffers == 0 && cs.reserved_bytes == 0) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("buffers", (double)c.buffers);
    o.Set("bytes", (double)c.bytes);
    if (t != 0) {
      o.Set("cached", (double)cs.cached_bytes);
      o.Set("cachedBlocks", (double)cs.cached_blocks);
      o.Set("reserved", (double)cs.reserved_bytes);
    } else {
      const HostCacheStats hs = host_cache_stats();
      o.Set("cached", (double)hs.cached_bytes);
      o.Set("cachedBlocks", (double)hs.cached_blocks);
    }
    r.Set(names[t], o);
  }
  return r;
}

// Waits for the work queued on every device in use; a device error from an earlier op surfaces here.
static Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  synchronize_all("cuda.synchronize");
  return info.Env().Undefined();
}

// Gives the cached blocks of one device type back (device: 0 cpu, its large buffers; 1 cuda; 2 cuda-emu).
static Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  int64_t t = get_int(info, 0, "device", 0, 2);
  if (t == 0) host_empty_cache();
  else device_empty_cache((DeviceType)t);
  return info.Env().Undefined();
}

// A process-wide switch of cuda/ lives twice, in the nvcc build and in the emulated one: set both;
// the previous value is the nvcc build's (its stand-in, csrc/cuda_none.cc, keeps state too).
#ifdef STRUCTURA_HAVE_CUDA_EMU
#define STRUCTURA_SET_BOTH(fn, v) (structura_emu_##fn(v), structura_##fn(v))
#else
#define STRUCTURA_SET_BOTH(fn, v) structura_##fn(v)
#endif

// A setter that would turn on a kernel STRUCTURA_CUDA_DISABLE switched off throws instead; nothing is
// changed then. (A switched-off default — lora-decode, pdl — is still set, but the dispatch of cuda/
// skips it; the setters report it as not in effect.)
static void refuse_disabled(const Napi::Env& env, const std::string& what, int sw) {
  if (!kernel_disabled(sw)) return;
  const char* list = std::getenv("STRUCTURA_CUDA_DISABLE");
  throw Napi::Error::New(env, what + ": the kernel '" + kernel_switch_name(sw) + "' is switched off by STRUCTURA_CUDA_DISABLE=" +
                                  (list ? list : ""));
}

// The threshold (bytes) above which host↔device copies go through cuda/runtime.cu's pinned staging
// buffers (0: never), for 'cuda' and 'cuda-emu' alike; returns the previous one. For benchmarks.
static Napi::Value SetCopyStaging(const Napi::CallbackInfo& info) {
  const size_t bytes = (size_t)get_int(info, 0, "bytes", 0, int64_t(1) << 50);
  return Napi::Number::New(info.Env(), (double)STRUCTURA_SET_BOTH(cuda_set_staging, bytes));
}

// How same-device copies (clone(), a same-dtype cast(), copyInto()) run: 'kernel' (cuda/copy.cu's
// copy_bytes, the default) or 'driver' (cudaMemcpyAsync). Returns the previous one. For the bench.
static Napi::Value SetDeviceCopy(const Napi::CallbackInfo& info) {
  const std::string m = get_string(info, 0, "mode");
  if (m != "kernel" && m != "driver")
    throw_range(info.Env(), "structura.setDeviceCopy: 'mode' must be 'kernel' or 'driver', got '" + m + "'");
  return Napi::String::New(info.Env(), set_d2d_kernel(m == "kernel") ? "kernel" : "driver");
}

// Whether kernels written for it start as programmatic dependent launches (sm_90+; cuda/launch.cuh
// launch_pdl: lora's final product at decode streams W while T is made). On by default; returns the
// previous setting. For the bench and tests.
static Napi::Value SetDependentLaunch(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsBoolean())
    throw_type(info.Env(), "structura.setDependentLaunch: 'on' must be a boolean");
  const int on = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
  if (on) refuse_disabled(info.Env(), "structura.setDependentLaunch(true)", STRUCTURA_SW_PDL);
  const int old = STRUCTURA_SET_BOTH(cuda_set_pdl, on);
  return Napi::Boolean::New(info.Env(), old > 0 && !kernel_disabled(STRUCTURA_SW_PDL));
}

// Which decode kernels (float16/bfloat16, M ≤ 16) run on the devices: 1 (x·Wᵀ on plain loads, the
// default) or 2 (x·Wᵀ with W through streaming loads and a 256-byte L2 prefetch), each with the
// N-major one for x·W; 0: neither (the tile kernels). Returns the previous one. For tests and the bench.
static Napi::Value SetDecodeKernel(const Napi::CallbackInfo& info) {
  const int v = (int)get_int(info, 0, "version", 0, 2);
  if (v == 2) refuse_disabled(info.Env(), "structura.setDecodeKernel(2)", STRUCTURA_SW_DECODE_STREAM);
  return Napi::Number::New(info.Env(), STRUCTURA_SET_BOTH(gemm_set_decode, v));
}

// How lora-like ops (lora, loraBatched, loraMixture) run at decode (M ≤ 16) on the devices: 'fused' (one
// launch, the default) or 'chain' (T's partial products, lora_t, the product). Returns the previous one.
// For tests and the bench.
static Napi::Value SetLoraDecode(const Napi::CallbackInfo& info) {
  const std::string m = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (m != "fused" && m != "chain")
    throw_type(info.Env(), "structura.setLoraDecode: 'mode' must be 'fused' or 'chain'");
  if (m == "fused") refuse_disabled(info.Env(), "structura.setLoraDecode('fused')", STRUCTURA_SW_LORA_DECODE);
  const int old = STRUCTURA_SET_BOTH(lora_set_fused, m == "fused" ? 1 : 0);
  return Napi::String::New(info.Env(), old > 0 && !kernel_disabled(STRUCTURA_SW_LORA_DECODE) ? "fused" : "chain");
}

// Which kernel runs the float16 / bfloat16 products on 'cuda' and 'cuda-emu' (cuda/dense.cu):
// 'auto' (mma.sync until the wgmma kernel has passed on a GPU), 'mma', 'wgmma' (sm_90, where it fits)
// or 'wgmma-tma' (the TMA warp-specialized wgmma kernel, sm_90, where it fits with one batch).
// Returns the previous choice. For tests and benchmarks.
// The most 128-row tiles one GEMM launch covers on the devices (1..65535, the default 65535: grid.y's
// limit); taller products run as several launches. Returns the previous limit. For tests, which lower
// it to run that path at sizes the emulator takes quickly.
static Napi::Value SetGemmRowTiles(const Napi::CallbackInfo& info) {
  const int v = (int)get_int(info, 0, "tiles", 1, 65535);
  return Napi::Number::New(info.Env(), STRUCTURA_SET_BOTH(gemm_set_row_tiles, v));
}

static Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  static const char* const names[4] = {"auto", "mma", "wgmma", "wgmma-tma"};
  const std::string m = get_string(info, 0, "kernel");
  int mode = -1;
  for (int i = 0; i < 4; i++)
    if (m == names[i]) mode = i;
  if (mode < 0)
    throw_range(info.Env(), "structura.setGemmKernel: 'kernel' must be 'auto', 'mma', 'wgmma' or 'wgmma-tma', got '" + m + "'");
  if (mode >= 2)
    refuse_disabled(info.Env(), "structura.setGemmKernel('" + m + "')", mode == 2 ? STRUCTURA_SW_WGMMA : STRUCTURA_SW_WGMMA_TMA);
  const int old = STRUCTURA_SET_BOTH(gemm_set_kernel, mode);
  return Napi::String::New(info.Env(), names[old >= 0 && old < 4 ? old : 0]);
}

// The emulator's memory-access profile (cuda/emu/profile.h): 'start' (clears it and records every
// later 'cuda-emu' launch), 'stop', or 'report' (the statistics so far, as a JSON string). For
// bench/emu_profile.ts and the tests that hold kernels to conflict-free shared memory and coalescing.
static Napi::Value EmuProfile(const Napi::CallbackInfo& info) {
  const std::string a = get_string(info, 0, "action");
  if (a != "start" && a != "stop" && a != "report")
    throw_range(info.Env(), "structura.emuProfile: 'action' must be 'start', 'stop' or 'report', got '" + a + "'");
#ifdef STRUCTURA_HAVE_CUDA_EMU
  if (a == "start") structura_emu_profile_start();
  else if (a == "stop") structura_emu_profile_stop();
  else {
    std::string out(structura_emu_profile_report(nullptr, 0), '\0');
    structura_emu_profile_report(out.data(), out.size());
    out.pop_back();
    return Napi::String::New(info.Env(), out);
  }
  return info.Env().Undefined();
#else
  throw Napi::Error::New(info.Env(), "structura.emuProfile: this binary was built without the emulated device (CMake "
                                     "option STRUCTURA_CUDA_EMU)");
#endif
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads((int)get_int(info, 0, "n", 1, 256));
  return info.Env().Undefined();
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), num_threads());
}

// setFlushDenormal(on) → whether the CPU has the mode (torch.set_flush_denormal).
static Napi::Value SetFlushDenormal(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), set_flush_denormal(get_bool(info, 0, "mode")));
}

// Caps the SIMD level ('scalar' | 'avx2' | 'avx512'), for tests of every CPU path; returns the level in use.
static Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  std::string s = get_string(info, 0, "level");
  Simd cap;
  if (s == "scalar") cap = Simd::scalar;
  else if (s == "avx2") cap = Simd::avx2;
  else if (s == "avx512") cap = Simd::avx512;
  else throw_range(info.Env(), "structura.setSimd: 'level' must be 'scalar', 'avx2' or 'avx512', got '" + s + "'");
  return Napi::String::New(info.Env(), simd_name(set_simd_cap(cap)));
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  structura_cuda_set_host_memcpy(host_memcpy_parallel);
#ifdef STRUCTURA_HAVE_CUDA_EMU
  structura_emu_cuda_set_host_memcpy(host_memcpy_parallel);
#endif
  set_thread_env(env);
  init_handles(env);
  // The argument is this load's napi_env: a (function, argument) pair may be registered once per
  // environment, and the addon can be loaded twice into one (a require cache cleared, as jest does).
  napi_add_env_cleanup_hook(env, [](void*) { set_thread_env(nullptr); }, static_cast<void*>(env));
  exports.Set("backend", Napi::Function::New(env, Backend, "backend"));
  exports.Set("memory", Napi::Function::New(env, Memory, "memory"));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  exports.Set("emptyCache", Napi::Function::New(env, EmptyCache, "emptyCache"));
  exports.Set("setCopyStaging", Napi::Function::New(env, SetCopyStaging, "setCopyStaging"));
  exports.Set("setDeviceCopy", Napi::Function::New(env, SetDeviceCopy, "setDeviceCopy"));
  exports.Set("setDependentLaunch", Napi::Function::New(env, SetDependentLaunch, "setDependentLaunch"));
  exports.Set("setDecodeKernel", Napi::Function::New(env, SetDecodeKernel, "setDecodeKernel"));
  exports.Set("setLoraDecode", Napi::Function::New(env, SetLoraDecode, "setLoraDecode"));
  exports.Set("setGemmKernel", Napi::Function::New(env, SetGemmKernel, "setGemmKernel"));
  exports.Set("setGemmRowTiles", Napi::Function::New(env, SetGemmRowTiles, "setGemmRowTiles"));
  exports.Set("emuProfile", Napi::Function::New(env, EmuProfile, "emuProfile"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("setFlushDenormal", Napi::Function::New(env, SetFlushDenormal, "setFlushDenormal"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd, "setSimd"));
  register_creation(env, exports);
  register_elementwise(env, exports);
  register_reduce(env, exports);
  register_dense(env, exports);
  register_lowrank(env, exports);
  return exports;
}

}  // namespace structura

static Napi::Object InitStructura(Napi::Env env, Napi::Object exports) { return structura::Init(env, exports); }
NODE_API_MODULE(structura, InitStructura)
