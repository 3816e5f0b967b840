// cpuinfo.h — run-time SIMD detection, so one prebuilt binary is fast on AVX-512 machines and safe
// on any x86-64. STRUCTURA_SIMD=scalar|avx2|avx512 caps the level (tests use it to run every path).
#pragma once

namespace structura {

enum class Simd { scalar = 0, avx2 = 1, avx512 = 2 };
// The level in use: min(what the CPU and OS support, STRUCTURA_SIMD, set_simd_cap()).
Simd simd_level();
const char* simd_name(Simd s);
// Caps the level at run time (tests); returns the level now in use.
Simd set_simd_cap(Simd cap);
// What the hardware supports, ignoring caps.
Simd simd_hardware();
// AVX512-BF16 (vdpbf16ps) with AVX-512 usable: the bfloat16 GEMM kernels of cpu/gemm.cc.
bool cpu_has_avx512_bf16();

}  // namespace structura
