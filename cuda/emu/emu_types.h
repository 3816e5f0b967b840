// emu_types.h — CUDA's built-in value types for the CPU emulation: dim3/uint3, the vector types
// (float2/float4/int4/…, with the GPU's alignment, which the emulator's misalignment check relies on),
// and __half / __nv_bfloat16 (+ the x2 pairs) with the GPU's round-to-nearest-even conversions.
//
// Arithmetic on __half/__nv_bfloat16 is done in float and rounded once. That is exactly the GPU's
// correctly rounded result: for +, −, ×, ÷ double rounding through a format of p' ≥ 2p + 2 bits is
// innocuous (Figueroa 1995), and float has 24 ≥ 2·11 + 2 (half) and ≥ 2·8 + 2 (bfloat16). __hfma
// needs the exact a·b + c: it is formed in double and rounded to odd, then to the target format
// (round-to-odd at ≥ p + 2 bits followed by RNE is a single correct rounding, Boldo–Melquiond 2008).
#ifndef STRUCTURA_EMU_TYPES_H
#define STRUCTURA_EMU_TYPES_H
#include <cmath>
#include <cstdint>
#include <cstring>

// ---- dim3 and the vector types ------------------------------------------------------------------

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define STRUCTURA_EMU_VEC(T, name, A2, A4)                                                         \
  struct alignas(sizeof(T)) name##1 { T x; };                                                     \
  struct alignas(A2) name##2 { T x, y; };                                                         \
  STRUCTURA_EMU_VEC3_##name(T)                                                                     \
  struct alignas(A4) name##4 { T x, y, z, w; };                                                   \
  inline name##1 make_##name##1(T x) { return name##1{x}; }                                       \
  inline name##2 make_##name##2(T x, T y) { return name##2{x, y}; }                               \
  inline name##3 make_##name##3(T x, T y, T z) { return name##3{x, y, z}; }                      \
  inline name##4 make_##name##4(T x, T y, T z, T w) { return name##4{x, y, z, w}; }
#define STRUCTURA_EMU_VEC3(T, name) struct name##3 { T x, y, z; };
#define STRUCTURA_EMU_VEC3_float(T) STRUCTURA_EMU_VEC3(T, float)
#define STRUCTURA_EMU_VEC3_int(T) STRUCTURA_EMU_VEC3(T, int)
#define STRUCTURA_EMU_VEC3_uint(T)
#define STRUCTURA_EMU_VEC3_short(T) STRUCTURA_EMU_VEC3(T, short)
#define STRUCTURA_EMU_VEC3_ushort(T) STRUCTURA_EMU_VEC3(T, ushort)
#define STRUCTURA_EMU_VEC3_char(T) STRUCTURA_EMU_VEC3(T, char)
#define STRUCTURA_EMU_VEC3_uchar(T) STRUCTURA_EMU_VEC3(T, uchar)
#define STRUCTURA_EMU_VEC3_longlong(T) STRUCTURA_EMU_VEC3(T, longlong)
#define STRUCTURA_EMU_VEC3_ulonglong(T) STRUCTURA_EMU_VEC3(T, ulonglong)
#define STRUCTURA_EMU_VEC3_double(T) STRUCTURA_EMU_VEC3(T, double)
STRUCTURA_EMU_VEC(float, float, 8, 16)
STRUCTURA_EMU_VEC(int, int, 8, 16)
STRUCTURA_EMU_VEC(unsigned int, uint, 8, 16)
STRUCTURA_EMU_VEC(short, short, 4, 8)
STRUCTURA_EMU_VEC(unsigned short, ushort, 4, 8)
STRUCTURA_EMU_VEC(signed char, char, 2, 4)
STRUCTURA_EMU_VEC(unsigned char, uchar, 2, 4)
STRUCTURA_EMU_VEC(long long, longlong, 16, 16)
STRUCTURA_EMU_VEC(unsigned long long, ulonglong, 16, 16)
STRUCTURA_EMU_VEC(double, double, 16, 16)
#undef STRUCTURA_EMU_VEC

// ---- bit-exact conversions ----------------------------------------------------------------------

namespace emu {
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// float → binary16, round to nearest even; NaN → 0x7FFF, overflow → ±Inf, subnormals produced.
inline uint16_t f32_to_f16_rn(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return 0x7fff;
  if (ax >= 0x477ff000u) return sign | 0x7c00;  // ≥ 65520 rounds to Inf
  if (ax >= 0x38800000u) {                      // normal half: re-bias and round away 13 bits
    uint32_t r = ax - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return sign | (uint16_t)(r >> 13);
  }
  // subnormal or zero: units of 2^-24; the scaling is exact and rintf rounds to nearest even
  return sign | (uint16_t)std::rint(bits_f32(ax) * 16777216.0f);
}
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  if (e == 0) {
    float v = (float)m * (1.0f / 16777216.0f);  // exact
    return sign ? -v : v;
  }
  // cvt.f32.f16 gives the canonical NaN 0x7FFFFFFF for every NaN input (payload and sign dropped), as
  // an H200 does (test/gpu/emu-fidelity); infinities keep their sign.
  if (e == 31) return m ? bits_f32(0x7fffffffu) : bits_f32(sign | 0x7f800000u);
  return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}
// float → bfloat16, round to nearest even; NaN → 0x7FFF; overflow carries into Inf.
inline uint16_t f32_to_bf16_rn(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

// double → float rounded to odd (truncate, then set the last bit if inexact): a later RNE to a
// format of ≤ 22 bits is then the single correct rounding of the double.
inline float f64_to_f32_odd(double d) {
  if (std::isnan(d) || std::isinf(d)) return (float)d;
  float f = (float)d;
  if ((double)f == d || std::isinf(f)) return f;
  if (std::fabs((double)f) > std::fabs(d)) f = std::nextafter(f, 0.0f);
  return bits_f32(f32_bits(f) | 1u);
}
// round-to-odd value of a·b + c in double (a·b is exact for ≤ 26-bit significands)
inline double fma_odd(double a, double b, double c) {
  const double p = a * b, s = p + c;
  const double bb = s - p, err = (p - (s - bb)) + (c - bb);  // TwoSum: s + err == p + c exactly
  if (err == 0 || std::isinf(s) || std::isnan(s)) return s;
  uint64_t u;
  std::memcpy(&u, &s, 8);
  if (u & 1) return s;
  return std::nextafter(s, err > 0 ? INFINITY : -INFINITY);
}
}  // namespace emu

// ---- __half and __nv_bfloat16 -------------------------------------------------------------------

struct __half_raw {
  unsigned short x;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};

#define STRUCTURA_EMU_HALF_TYPE(H, TO, FROM)                                                         \
  struct alignas(2) H {                                                                            \
    unsigned short __x;                                                                            \
    H() = default;                                                                                 \
    H(float f) : __x(::emu::TO(f)) {}                                                              \
    H(double d) : __x(::emu::TO(::emu::f64_to_f32_odd(d))) {}                                      \
    H(int i) : H((double)i) {}                                                                     \
    H(H##_raw r) : __x(r.x) {}                                                                     \
    operator float() const { return ::emu::FROM(__x); }                                            \
    operator H##_raw() const { return H##_raw{__x}; }                                              \
    H& operator+=(H o) { return *this = H(float(*this) + float(o)); }                             \
    H& operator-=(H o) { return *this = H(float(*this) - float(o)); }                             \
    H& operator*=(H o) { return *this = H(float(*this) * float(o)); }                             \
    H& operator/=(H o) { return *this = H(float(*this) / float(o)); }                             \
  };                                                                                               \
  inline H operator+(H a, H b) { return H(float(a) + float(b)); }                                  \
  inline H operator-(H a, H b) { return H(float(a) - float(b)); }                                  \
  inline H operator*(H a, H b) { return H(float(a) * float(b)); }                                  \
  inline H operator/(H a, H b) { return H(float(a) / float(b)); }                                  \
  inline H operator-(H a) {                                                                        \
    H r;                                                                                           \
    r.__x = (unsigned short)(a.__x ^ 0x8000u);                                                     \
    return r;                                                                                      \
  }                                                                                                \
  inline bool operator==(H a, H b) { return float(a) == float(b); }                                \
  inline bool operator!=(H a, H b) { return float(a) != float(b); }                                \
  inline bool operator<(H a, H b) { return float(a) < float(b); }                                  \
  inline bool operator>(H a, H b) { return float(a) > float(b); }                                  \
  inline bool operator<=(H a, H b) { return float(a) <= float(b); }                                \
  inline bool operator>=(H a, H b) { return float(a) >= float(b); }
STRUCTURA_EMU_HALF_TYPE(__half, f32_to_f16_rn, f16_to_f32)
STRUCTURA_EMU_HALF_TYPE(__nv_bfloat16, f32_to_bf16_rn, bf16_to_f32)
#undef STRUCTURA_EMU_HALF_TYPE
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

struct alignas(4) __half2 {
  __half x, y;
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __half2 half2;
typedef __nv_bfloat162 nv_bfloat162;

// conversions
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __double2half(double d) { return __half(d); }
inline float __half2float(__half h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __half2 __floats2half2_rn(float lo, float hi) { return __half2{__half(lo), __half(hi)}; }
inline __half2 __float22half2_rn(float2 v) { return __floats2half2_rn(v.x, v.y); }
inline __half2 __halves2half2(__half lo, __half hi) { return __half2{lo, hi}; }
inline __half2 __half2half2(__half h) { return __half2{h, h}; }
inline float2 __half22float2(__half2 v) { return float2{float(v.x), float(v.y)}; }
inline float __low2float(__half2 v) { return float(v.x); }
inline float __high2float(__half2 v) { return float(v.y); }
inline __half __low2half(__half2 v) { return v.x; }
inline __half __high2half(__half2 v) { return v.y; }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__nv_bfloat16(lo), __nv_bfloat16(hi)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return __floats2bfloat162_rn(v.x, v.y); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 lo, __nv_bfloat16 hi) { return __nv_bfloat162{lo, hi}; }
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 h) { return __nv_bfloat162{h, h}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{float(v.x), float(v.y)}; }
inline float __low2float(__nv_bfloat162 v) { return float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return float(v.y); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }

// arithmetic (intrinsic spellings)
#define STRUCTURA_EMU_HALF_OPS(H, H2, TO)                                                          \
  inline H __hadd(H a, H b) { return a + b; }                                                      \
  inline H __hsub(H a, H b) { return a - b; }                                                      \
  inline H __hmul(H a, H b) { return a * b; }                                                      \
  inline H __hdiv(H a, H b) { return a / b; }                                                      \
  inline H __hneg(H a) { return -a; }                                                              \
  inline H __habs(H a) {                                                                           \
    H r = a;                                                                                       \
    r.__x &= 0x7fff;                                                                               \
    return r;                                                                                      \
  }                                                                                                \
  inline H __hfma(H a, H b, H c) {                                                                 \
    return H(::emu::f64_to_f32_odd(::emu::fma_odd(float(a), float(b), float(c))));                 \
  }                                                                                                \
  inline H __hmax(H a, H b) { return (float(a) >= float(b) || std::isnan(float(b))) ? a : b; }     \
  inline H __hmin(H a, H b) { return (float(a) <= float(b) || std::isnan(float(b))) ? a : b; }     \
  inline bool __heq(H a, H b) { return a == b; }                                                   \
  inline bool __hlt(H a, H b) { return a < b; }                                                    \
  inline bool __hgt(H a, H b) { return a > b; }                                                    \
  inline H2 __hadd2(H2 a, H2 b) { return H2{a.x + b.x, a.y + b.y}; }                               \
  inline H2 __hsub2(H2 a, H2 b) { return H2{a.x - b.x, a.y - b.y}; }                               \
  inline H2 __hmul2(H2 a, H2 b) { return H2{a.x * b.x, a.y * b.y}; }                               \
  inline H2 __hfma2(H2 a, H2 b, H2 c) { return H2{__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)}; } \
  inline H2 operator+(H2 a, H2 b) { return __hadd2(a, b); }                                        \
  inline H2 operator-(H2 a, H2 b) { return __hsub2(a, b); }                                        \
  inline H2 operator*(H2 a, H2 b) { return __hmul2(a, b); }
STRUCTURA_EMU_HALF_OPS(__half, __half2, f32_to_f16_rn)
STRUCTURA_EMU_HALF_OPS(__nv_bfloat16, __nv_bfloat162, f32_to_bf16_rn)
#undef STRUCTURA_EMU_HALF_OPS

#endif
