// tilec emulator: CUDA's value types and math on the CPU (vectors, dim3, __half, __nv_bfloat16, intrinsics).
// Only the surface the tilec emitter and hand-written kernels use; half types store 16 bits and compute in float.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline dim3 make_dim3(unsigned x, unsigned y, unsigned z) { return dim3(x, y, z); }

namespace tl_emu {
// float -> binary16, round to nearest even (what __float2half does on the GPU).
inline uint16_t f2h(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {                                   // below 2^-14: subnormal half
    float a;
    std::memcpy(&a, &ax, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.0f)));
  }
  return uint16_t(sign | ((ax + 0xc8000fffu + ((ax >> 13) & 1u)) >> 13));
}
inline float h2f(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
  if (e == 0) {
    float v = float(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  bits = sign | (e == 31 ? (0x7f800000u | (m << 13)) : (((e + 112u) << 23) | (m << 13)));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f2bf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t(((x >> 16) & 0x8000u) | 0x7fc0u);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
inline float bf2f(uint16_t b) {
  uint32_t x = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}
}  // namespace tl_emu

// Both 16-bit types: storage only, arithmetic through float, like cuda_fp16.hpp's operators.
#define TL_EMU_HALF_TYPE(T, TO, FROM)                                                                     \
  struct T {                                                                                             \
    uint16_t __x;                                                                                        \
    T() = default;                                                                                       \
    T(float f) : __x(tl_emu::TO(f)) {}                                                                   \
    T(double d) : __x(tl_emu::TO(float(d))) {}                                                           \
    T(int i) : __x(tl_emu::TO(float(i))) {}                                                              \
    operator float() const { return tl_emu::FROM(__x); }                                                 \
    T& operator+=(T o) { return *this = T(float(*this) + float(o)); }                                    \
    T& operator-=(T o) { return *this = T(float(*this) - float(o)); }                                    \
    T& operator*=(T o) { return *this = T(float(*this) * float(o)); }                                    \
    T& operator/=(T o) { return *this = T(float(*this) / float(o)); }                                    \
  };                                                                                                     \
  inline T operator+(T a, T b) { return T(float(a) + float(b)); }                                        \
  inline T operator-(T a, T b) { return T(float(a) - float(b)); }                                        \
  inline T operator*(T a, T b) { return T(float(a) * float(b)); }                                        \
  inline T operator/(T a, T b) { return T(float(a) / float(b)); }                                        \
  inline T operator-(T a) { return T(-float(a)); }                                                       \
  inline bool operator<(T a, T b) { return float(a) < float(b); }                                        \
  inline bool operator>(T a, T b) { return float(a) > float(b); }                                        \
  inline bool operator<=(T a, T b) { return float(a) <= float(b); }                                      \
  inline bool operator>=(T a, T b) { return float(a) >= float(b); }                                      \
  inline bool operator==(T a, T b) { return float(a) == float(b); }                                      \
  inline bool operator!=(T a, T b) { return float(a) != float(b); }                                      \
  inline T __hadd(T a, T b) { return a + b; }                                                            \
  inline T __hsub(T a, T b) { return a - b; }                                                            \
  inline T __hmul(T a, T b) { return a * b; }                                                            \
  inline T __hdiv(T a, T b) { return a / b; }                                                            \
  inline T __hneg(T a) { return -a; }                                                                    \
  inline T __hmax(T a, T b) { return T(std::fmax(float(a), float(b))); }                                 \
  inline T __hmin(T a, T b) { return T(std::fmin(float(a), float(b))); }
TL_EMU_HALF_TYPE(__half, f2h, h2f)
TL_EMU_HALF_TYPE(__nv_bfloat16, f2bf, bf2f)
#undef TL_EMU_HALF_TYPE
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
// A template, so a HIP prelude may add its own non-template __float2bfloat16 returning hip_bfloat16
// (emu_hip.h): that one wins where it is declared, this one serves CUDA text.
template <class = void>
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }

// Fast-math intrinsics: the CPU computes them exactly, which the GPU's approximations must stay close to.
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }   // never contracted into an FMA on the GPU
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline long long __double_as_longlong(double d) { long long i; std::memcpy(&i, &d, 8); return i; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }

// CUDA's overloaded min/max (device functions in the global namespace).
#define TL_EMU_MINMAX(T)                                 \
  inline T min(T a, T b) { return b < a ? b : a; }       \
  inline T max(T a, T b) { return a < b ? b : a; }
TL_EMU_MINMAX(int)
TL_EMU_MINMAX(unsigned)
TL_EMU_MINMAX(long)
TL_EMU_MINMAX(unsigned long)
TL_EMU_MINMAX(long long)
TL_EMU_MINMAX(unsigned long long)
#undef TL_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
