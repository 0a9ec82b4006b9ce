//===- Half.h - binary16 / bfloat16 conversions and dtypes ------*- C++ -*-===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Bit-exact conversions between float and the 16-bit formats the kernels use
// (IEEE binary16 and bfloat16), plus a tiny element-type enum with helpers to
// round, store and load values of that type. Header-only, no dependencies.
//
// All rounding is round-to-nearest-even and independent of the FP environment.
// Overflow goes to infinity, subnormals are produced and consumed, NaN stays a
// (quiet) NaN.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_HALF_H
#define FLASHMLIR_RUNTIME_HALF_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace flashmlir::rt {

//===----------------------------------------------------------------------===//
// Raw bit conversions
//===----------------------------------------------------------------------===//

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

/// float -> IEEE binary16 bits, round-to-nearest-even.
inline uint16_t floatToHalf(float f) {
  uint32_t x = floatBits(f);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t a = x & 0x7fffffffu;

  if (a >= 0x7f800000u) {
    if (a == 0x7f800000u)
      return sign | 0x7c00u; // +-inf
    // NaN: keep the top payload bits, force the quiet bit.
    return sign | 0x7e00u | static_cast<uint16_t>((a >> 13) & 0x3ffu);
  }
  if (a >= 0x47800000u) // |f| >= 65536: certainly overflows.
    return sign | 0x7c00u;

  uint32_t exp = a >> 23;
  if (exp < 113) {
    // |f| < 2^-14: result is a half subnormal (or zero). Units of 2^-24.
    if (exp == 0)
      return sign; // float subnormals are far below 2^-25.
    uint32_t mant = (a & 0x7fffffu) | 0x800000u; // value = mant * 2^(exp-150)
    uint32_t shift = 126 - exp;                  // >= 14
    if (shift > 24)
      return sign; // < 2^-25 (half of the smallest subnormal).
    uint32_t r = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1)))
      ++r; // may carry into the smallest normal, which is correct.
    return sign | static_cast<uint16_t>(r);
  }

  // Normal range: rebias the exponent, round away 13 mantissa bits. A carry
  // propagates into the exponent and, at the top, into infinity (0x7c00).
  uint32_t h = ((exp - 112) << 10) | ((a >> 13) & 0x3ffu);
  uint32_t rem = a & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
    ++h;
  return sign | static_cast<uint16_t>(h);
}

/// IEEE binary16 bits -> float (exact).
inline float halfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) // inf / NaN (payload kept, so NaN stays NaN).
    return bitsToFloat(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return bitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

/// float -> bfloat16 bits, round-to-nearest-even; NaN becomes a quiet NaN.
inline uint16_t floatToBF16(float f) {
  uint32_t x = floatBits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x0040u);
  // Overflow rounds naturally into the infinity encoding.
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

/// bfloat16 bits -> float (exact).
inline float bf16ToFloat(uint16_t b) {
  return bitsToFloat(static_cast<uint32_t>(b) << 16);
}

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

enum class DType { F32, F16, BF16 };

/// "f32", "f16" or "bf16".
inline const char *dtypeName(DType dt) {
  switch (dt) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  }
  return "?";
}

/// Accepts the dtypeName() spellings plus a few common aliases
/// (float32/fp32, float16/fp16/half, bfloat16). Returns false otherwise.
inline bool parseDType(const char *s, DType *out) {
  if (!s)
    return false;
  struct Entry {
    const char *name;
    DType dt;
  };
  static const Entry table[] = {
      {"f32", DType::F32},  {"fp32", DType::F32},  {"float32", DType::F32},
      {"f16", DType::F16},  {"fp16", DType::F16},  {"float16", DType::F16},
      {"half", DType::F16}, {"bf16", DType::BF16}, {"bfloat16", DType::BF16},
  };
  for (const Entry &e : table) {
    if (std::strcmp(s, e.name) == 0) {
      if (out)
        *out = e.dt;
      return true;
    }
  }
  return false;
}

inline size_t dtypeBytes(DType dt) { return dt == DType::F32 ? 4 : 2; }

namespace detail {
/// Round a double to a binary format with `mantBits` fraction bits, minimum
/// normal exponent `emin` and maximum exponent `emax` (RNE, overflow -> inf,
/// gradual underflow). Done directly from double: no double rounding.
inline double roundToFormat(double v, int mantBits, int emin, int emax) {
  if (!std::isfinite(v) || v == 0)
    return v;
  int e = std::ilogb(v);
  if (e < emin)
    e = emin;
  double quantum = std::ldexp(1.0, e - mantBits);
  double x = v / quantum; // exact: power-of-two scaling, |x| < 2^(mantBits+1)
  double f = std::floor(x);
  double d = x - f; // exact
  if (d > 0.5 || (d == 0.5 && std::fmod(f, 2.0) != 0))
    f += 1;
  double r = f * quantum;
  double maxFinite = std::ldexp(2.0 - std::ldexp(1.0, -mantBits), emax);
  if (std::fabs(r) > maxFinite)
    return std::copysign(std::numeric_limits<double>::infinity(), v);
  return std::copysign(r, v); // keeps -0 for tiny negatives
}
} // namespace detail

/// Round a double through `dt`: the value the kernel actually sees.
inline double roundTo(DType dt, double v) {
  switch (dt) {
  case DType::F32:
    return detail::roundToFormat(v, 23, -126, 127);
  case DType::F16:
    return detail::roundToFormat(v, 10, -14, 15);
  case DType::BF16:
    return detail::roundToFormat(v, 7, -126, 127);
  }
  return v;
}

/// Store element `idx` of a dense `dt` array at `base` (rounded RNE from v).
inline void storeElem(DType dt, void *base, size_t idx, double v) {
  // roundTo() makes v exactly representable, so the float cast is exact.
  float f = static_cast<float>(roundTo(dt, v));
  switch (dt) {
  case DType::F32:
    static_cast<float *>(base)[idx] = f;
    return;
  case DType::F16:
    static_cast<uint16_t *>(base)[idx] = floatToHalf(f);
    return;
  case DType::BF16:
    static_cast<uint16_t *>(base)[idx] = floatToBF16(f);
    return;
  }
}

/// Load element `idx` of a dense `dt` array at `base` (exact widening).
inline double loadElem(DType dt, const void *base, size_t idx) {
  switch (dt) {
  case DType::F32:
    return static_cast<const float *>(base)[idx];
  case DType::F16:
    return halfToFloat(static_cast<const uint16_t *>(base)[idx]);
  case DType::BF16:
    return bf16ToFloat(static_cast<const uint16_t *>(base)[idx]);
  }
  return 0;
}

} // namespace flashmlir::rt

#endif // FLASHMLIR_RUNTIME_HALF_H
