//===- ReferenceTest.cpp - Self-checks for the float64 reference ----------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Standalone test (no framework): checks the half/bf16 conversions, the
// reference forward against a differently written full-matrix attention, the
// reference backward against central finite differences, and the helpers.
// Prints one line per check and a final "N passed, M failed"; exits 1 on any
// failure.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/runtime/Reference.h"
#include "flashmlir/runtime/Half.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace flashmlir::rt;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int gPassed = 0, gFailed = 0;

void check(bool ok, const std::string &name, const std::string &detail = "") {
  if (ok)
    ++gPassed;
  else
    ++gFailed;
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(),
              detail.empty() ? "" : ": ", detail.c_str());
}

std::string fmt(const char *f, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), f, a, b);
  return buf;
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%04x", static_cast<unsigned>(v));
  return buf;
}

//===----------------------------------------------------------------------===//
// Half / BF16 conversions
//===----------------------------------------------------------------------===//

bool sameDouble(double a, double b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

void testHalf() {
  // Every non-NaN half survives half -> float -> half exactly.
  int bad = 0, nanBad = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = halfToFloat(static_cast<uint16_t>(h));
    bool isNaN = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (isNaN) {
      uint16_t back = floatToHalf(f);
      nanBad +=
          !std::isnan(f) || !((back & 0x7c00) == 0x7c00 && (back & 0x3ff));
    } else {
      bad += floatToHalf(f) != h;
    }
  }
  check(bad == 0, "f16 exhaustive round trip", std::to_string(bad) + " bad");
  check(nanBad == 0, "f16 NaN encodings stay NaN", std::to_string(nanBad));

  struct Case {
    float f;
    uint16_t bits;
    const char *what;
  };
  const float tiny = std::ldexp(1.0f, -24); // smallest subnormal
  const Case cases[] = {
      {0.0f, 0x0000, "+0"},
      {-0.0f, 0x8000, "-0"},
      {1.0f, 0x3c00, "1"},
      {-2.0f, 0xc000, "-2"},
      {0.333251953125f, 0x3555, "1/3 (exact)"},
      {65504.0f, 0x7bff, "max finite"},
      {65519.99f, 0x7bff, "just below overflow tie"},
      {65520.0f, 0x7c00, "overflow tie -> inf"},
      {-1e6f, 0xfc00, "overflow -> -inf"},
      {std::numeric_limits<float>::max(), 0x7c00, "FLT_MAX -> inf"},
      {std::numeric_limits<float>::infinity(), 0x7c00, "+inf"},
      {-std::numeric_limits<float>::infinity(), 0xfc00, "-inf"},
      {1.0f + std::ldexp(1.0f, -11), 0x3c00, "tie 1+2^-11 -> even"},
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02, "tie 1+3*2^-11 -> even"},
      {1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20), 0x3c01,
       "just above tie"},
      {2049.0f, 0x6800, "tie 2049 -> 2048"},
      {2051.0f, 0x6802, "tie 2051 -> 2052"},
      {std::ldexp(1.0f, -14), 0x0400, "min normal"},
      {1023 * tiny, 0x03ff, "max subnormal"},
      {tiny, 0x0001, "min subnormal"},
      {-tiny, 0x8001, "-min subnormal"},
      {0.5f * tiny, 0x0000, "tie 2^-25 -> 0"},
      {0.5000001f * tiny, 0x0001, "just above 2^-25"},
      {1.5f * tiny, 0x0002, "tie 1.5*2^-24 -> 2"},
      {2.5f * tiny, 0x0002, "tie 2.5*2^-24 -> 2"},
      {1023.5f * tiny, 0x0400, "subnormal rounds up to min normal"},
      {std::ldexp(1.0f, -30), 0x0000, "underflow -> 0"},
      {-std::ldexp(1.0f, -30), 0x8000, "underflow -> -0"},
      {std::numeric_limits<float>::denorm_min(), 0x0000, "float subnormal"},
  };
  for (const Case &c : cases) {
    uint16_t got = floatToHalf(c.f);
    check(got == c.bits, std::string("f16 ") + c.what,
          "got " + hex(got) + " want " + hex(c.bits));
  }
  check(halfToFloat(0x0001) == tiny, "f16 decode min subnormal");
  check(halfToFloat(0x7bff) == 65504.0f, "f16 decode max");
  check(std::isinf(halfToFloat(0xfc00)) && halfToFloat(0xfc00) < 0,
        "f16 decode -inf");
  uint16_t qn = floatToHalf(std::numeric_limits<float>::quiet_NaN());
  uint16_t sn = floatToHalf(bitsToFloat(0x7f800001u)); // signaling, low payload
  uint16_t nn = floatToHalf(bitsToFloat(0xffc00000u));
  check(std::isnan(halfToFloat(qn)) && (qn & 0x0200), "f16 qNaN -> quiet NaN",
        hex(qn));
  check(std::isnan(halfToFloat(sn)) && (sn & 0x0200), "f16 sNaN -> quiet NaN",
        hex(sn));
  check(std::isnan(halfToFloat(nn)) && (nn & 0x8000), "f16 -NaN keeps sign",
        hex(nn));

  // Random float bit patterns against roundTo(F16) (a different algorithm
  // working on doubles) and, where the compiler has it, native _Float16.
  std::mt19937_64 gen(7);
  int mismatchRound = 0;
#ifdef __FLT16_MAX__
  int mismatchNative = 0;
#endif
  for (int n = 0; n < 400000; ++n) {
    uint32_t bits = static_cast<uint32_t>(gen());
    if (n & 1) // concentrate half the samples around the half range
      bits = (bits & 0x807fffffu) | ((100u + (bits >> 23) % 45u) << 23);
    float f = bitsToFloat(bits);
    if (std::isnan(f))
      continue;
    uint16_t h = floatToHalf(f);
    mismatchRound += !sameDouble(halfToFloat(h), roundTo(DType::F16, f));
#ifdef __FLT16_MAX__
    _Float16 nat = static_cast<_Float16>(f);
    uint16_t nb;
    std::memcpy(&nb, &nat, 2);
    mismatchNative += nb != h;
#endif
  }
  check(mismatchRound == 0, "f16 floatToHalf == roundTo(F16) on random floats",
        std::to_string(mismatchRound));
#ifdef __FLT16_MAX__
  check(mismatchNative == 0, "f16 floatToHalf == native _Float16",
        std::to_string(mismatchNative));
#endif
}

void testBF16() {
  int bad = 0, nanBad = 0;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16ToFloat(static_cast<uint16_t>(b));
    bool isNaN = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
    if (isNaN)
      nanBad += !std::isnan(f) || !std::isnan(bf16ToFloat(floatToBF16(f)));
    else
      bad += floatToBF16(f) != b;
  }
  check(bad == 0, "bf16 exhaustive round trip", std::to_string(bad) + " bad");
  check(nanBad == 0, "bf16 NaN encodings stay NaN", std::to_string(nanBad));

  struct Case {
    float f;
    uint16_t bits;
    const char *what;
  };
  const Case cases[] = {
      {1.0f, 0x3f80, "1"},
      {-0.0f, 0x8000, "-0"},
      {1.0f + std::ldexp(1.0f, -8), 0x3f80, "tie 1+2^-8 -> even"},
      {1.0f + 3 * std::ldexp(1.0f, -8), 0x3f82, "tie 1+3*2^-8 -> even"},
      {1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20), 0x3f81,
       "just above tie"},
      {bitsToFloat(0x7f7f0000u), 0x7f7f, "max finite"},
      {std::numeric_limits<float>::max(), 0x7f80, "FLT_MAX -> inf"},
      {-std::numeric_limits<float>::max(), 0xff80, "-FLT_MAX -> -inf"},
      {std::numeric_limits<float>::infinity(), 0x7f80, "+inf"},
      {std::ldexp(1.0f, -133), 0x0001, "min subnormal"},
      {std::ldexp(1.0f, -134), 0x0000, "tie 2^-134 -> 0"},
      {3 * std::ldexp(1.0f, -134), 0x0002, "tie 3*2^-134 -> 2"},
  };
  for (const Case &c : cases) {
    uint16_t got = floatToBF16(c.f);
    check(got == c.bits, std::string("bf16 ") + c.what,
          "got " + hex(got) + " want " + hex(c.bits));
  }
  uint16_t sn =
      floatToBF16(bitsToFloat(0x7f800001u)); // payload only in low bits
  uint16_t nn = floatToBF16(bitsToFloat(0xff800001u));
  check((sn & 0x7f80) == 0x7f80 && (sn & 0x0040), "bf16 sNaN -> quiet NaN",
        hex(sn));
  check((nn & 0x8000) && std::isnan(bf16ToFloat(nn)), "bf16 -NaN keeps sign",
        hex(nn));

  std::mt19937_64 gen(11);
  int mismatch = 0;
  for (int n = 0; n < 400000; ++n) {
    float f = bitsToFloat(static_cast<uint32_t>(gen()));
    if (!std::isnan(f))
      mismatch +=
          !sameDouble(bf16ToFloat(floatToBF16(f)), roundTo(DType::BF16, f));
  }
  check(mismatch == 0, "bf16 floatToBF16 == roundTo(BF16) on random floats",
        std::to_string(mismatch));
}

void testDTypes() {
  // roundTo works from double directly: no double rounding through float.
  double v = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  check(roundTo(DType::F16, v) == 1.0 + std::ldexp(1.0, -10),
        "roundTo F16 has no double rounding");
  double w = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  check(roundTo(DType::BF16, w) == 1.0 + std::ldexp(1.0, -7),
        "roundTo BF16 has no double rounding");
  check(roundTo(DType::F32, 1e300) == kInf &&
            roundTo(DType::F16, -7e4) == -kInf,
        "roundTo overflow -> inf");
  check(std::isnan(roundTo(DType::BF16, kNaN)), "roundTo NaN stays NaN");
  check(sameDouble(roundTo(DType::F16, -1e-30), -0.0), "roundTo keeps -0");

  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> U(-1e4, 1e4);
  int bad32 = 0;
  for (int n = 0; n < 100000; ++n) {
    double x = U(gen) * std::ldexp(1.0, static_cast<int>(gen() % 80) - 60);
    bad32 +=
        roundTo(DType::F32, x) != static_cast<double>(static_cast<float>(x));
  }
  check(bad32 == 0, "roundTo F32 == float cast", std::to_string(bad32));

  const DType all[] = {DType::F32, DType::F16, DType::BF16};
  const size_t bytes[] = {4, 2, 2};
  const char *names[] = {"f32", "f16", "bf16"};
  for (int t = 0; t < 3; ++t) {
    DType dt = all[t], parsed = DType::F32;
    check(dtypeBytes(dt) == bytes[t] &&
              std::string(dtypeName(dt)) == names[t] &&
              parseDType(names[t], &parsed) && parsed == dt,
          std::string("dtype name/bytes/parse ") + names[t]);
    // Store / load: loaded value is exactly roundTo(dt, v).
    std::vector<unsigned char> buf(8 * dtypeBytes(dt));
    const double vals[] = {0.1,  -3.75,   1e-6, 65519.0,
                           -1e9, 1.0 / 3, -0.0, kInf};
    int bad = 0;
    for (size_t i = 0; i < 8; ++i)
      storeElem(dt, buf.data(), i, vals[i]);
    for (size_t i = 0; i < 8; ++i)
      bad += !sameDouble(loadElem(dt, buf.data(), i), roundTo(dt, vals[i]));
    check(bad == 0, std::string("storeElem/loadElem ") + names[t],
          std::to_string(bad));
  }
  DType d = DType::F32;
  check(parseDType("bfloat16", &d) && d == DType::BF16 &&
            parseDType("half", &d) && d == DType::F16 &&
            !parseDType("f64", &d) && !parseDType("", &d) &&
            !parseDType(nullptr, &d),
        "parseDType aliases and rejects");
}

//===----------------------------------------------------------------------===//
// Independent full-matrix attention (written differently from the library)
//===----------------------------------------------------------------------===//

struct Tensors {
  std::vector<double> q, k, v, dO;
};

size_t sizeQ(const AttnConfig &c) { return c.B * c.Hq * c.Nq * c.D; }
size_t sizeK(const AttnConfig &c) { return c.B * c.Hkv * c.Nk * c.D; }
size_t sizeV(const AttnConfig &c) { return c.B * c.Hkv * c.Nk * c.Dv; }
size_t sizeO(const AttnConfig &c) { return c.B * c.Hq * c.Nq * c.Dv; }
size_t sizeL(const AttnConfig &c) { return c.B * c.Hq * c.Nq; }

Tensors makeInputs(const AttnConfig &c, uint64_t seed, DType dt) {
  Tensors t;
  t.q.resize(sizeQ(c));
  t.k.resize(sizeK(c));
  t.v.resize(sizeV(c));
  t.dO.resize(sizeO(c));
  fillRandom(seed, dt, t.q.data(), t.q.size());
  fillRandom(seed + 1, dt, t.k.data(), t.k.size());
  fillRandom(seed + 2, dt, t.v.data(), t.v.size());
  fillRandom(seed + 3, dt, t.dO.data(), t.dO.size());
  return t;
}

/// Visible key range [lo, hi) of query row i, from interval arithmetic.
void visibleRange(const AttnConfig &c, int64_t i, int64_t &lo, int64_t &hi) {
  int64_t diag = i + c.Nk - c.Nq;
  lo = 0;
  hi = c.Nk;
  if (c.causal)
    hi = std::min(hi, diag + 1);
  if (c.windowRight >= 0)
    hi = std::min(hi, diag + c.windowRight + 1);
  if (c.windowLeft >= 0)
    lo = std::max(lo, diag - c.windowLeft);
}

/// Full score matrix per (b, kv head, group member), explicit softmax.
/// lse uses log(sum(exp(S))) without max shifting (inputs are small).
void fullAttention(const AttnConfig &c, const double *q, const double *k,
                   const double *v, double *o, double *lse) {
  const int64_t G = c.Hq / c.Hkv;
  std::vector<double> S(c.Nq * c.Nk);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t kh = 0; kh < c.Hkv; ++kh)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t h = kh * G + g;
        auto Q = [&](int64_t i, int64_t d) {
          return q[(((b * c.Hq + h) * c.Nq) + i) * c.D + d];
        };
        auto K = [&](int64_t j, int64_t d) {
          return k[(((b * c.Hkv + kh) * c.Nk) + j) * c.D + d];
        };
        auto V = [&](int64_t j, int64_t d) {
          return v[(((b * c.Hkv + kh) * c.Nk) + j) * c.Dv + d];
        };
        for (int64_t i = 0; i < c.Nq; ++i)
          for (int64_t j = 0; j < c.Nk; ++j) {
            double acc = 0;
            for (int64_t d = c.D - 1; d >= 0; --d) // reversed on purpose
              acc += Q(i, d) * K(j, d);
            acc *= c.scale;
            if (c.softcap > 0)
              acc = c.softcap * std::tanh(acc / c.softcap);
            S[i * c.Nk + j] = acc;
          }
        for (int64_t i = 0; i < c.Nq; ++i) {
          int64_t lo, hi;
          visibleRange(c, i, lo, hi);
          const int64_t row = (b * c.Hq + h) * c.Nq + i;
          double sumExp = 0;
          for (int64_t j = lo; j < hi; ++j)
            sumExp += std::exp(S[i * c.Nk + j]);
          double L = lo < hi ? std::log(sumExp) : -kInf;
          if (lse)
            lse[row] = L;
          for (int64_t d = 0; d < c.Dv; ++d) {
            double acc = 0;
            for (int64_t j = lo; j < hi; ++j)
              acc += std::exp(S[i * c.Nk + j] - L) * V(j, d);
            o[row * c.Dv + d] = acc;
          }
        }
      }
}

AttnConfig cfg(int64_t B, int64_t Hq, int64_t Hkv, int64_t Nq, int64_t Nk,
               int64_t D, int64_t Dv, bool causal = false, int64_t wl = -1,
               int64_t wr = -1, double softcap = 0, double scale = -1) {
  AttnConfig c;
  c.B = B;
  c.Hq = Hq;
  c.Hkv = Hkv;
  c.Nq = Nq;
  c.Nk = Nk;
  c.D = D;
  c.Dv = Dv;
  c.scale = scale < 0 ? 1.0 / std::sqrt(static_cast<double>(D)) : scale;
  c.causal = causal;
  c.windowLeft = wl;
  c.windowRight = wr;
  c.softcap = softcap;
  return c;
}

struct Named {
  const char *name;
  AttnConfig c;
};

bool allFinite(const std::vector<double> &x) {
  for (double d : x)
    if (!std::isfinite(d))
      return false;
  return true;
}

void testForward() {
  // Hand-computed: S = [0, ln 2] -> P = [1/3, 2/3], lse = ln 3.
  {
    AttnConfig c = cfg(1, 1, 1, 1, 2, 1, 2, false, -1, -1, 0, 1.0);
    double q[] = {1.0}, k[] = {0.0, std::log(2.0)}, v[] = {3, 0, 0, 6};
    double o[2], lse;
    referenceForward(c, q, k, v, o, &lse);
    check(std::fabs(o[0] - 1.0) < 1e-15 && std::fabs(o[1] - 4.0) < 1e-15 &&
              std::fabs(lse - std::log(3.0)) < 1e-15,
          "forward hand-computed 1x2", fmt("o=(%.17g, %.17g)", o[0], o[1]));
  }

  const Named cases[] = {
      {"plain", cfg(2, 2, 2, 7, 7, 5, 5)},
      {"Nq<Nk", cfg(1, 2, 2, 3, 9, 4, 4)},
      {"Nq>Nk", cfg(1, 2, 2, 9, 4, 4, 4)},
      {"causal", cfg(2, 2, 2, 6, 6, 4, 4, true)},
      {"causal Nq<Nk", cfg(1, 3, 3, 3, 8, 4, 4, true)},
      {"causal Nq>Nk (empty rows)", cfg(2, 2, 2, 6, 3, 4, 3, true)},
      {"window l2 r1", cfg(1, 2, 2, 9, 9, 4, 4, false, 2, 1)},
      {"window left only", cfg(1, 2, 2, 7, 7, 4, 4, false, 1, -1)},
      {"window right only", cfg(1, 2, 2, 7, 7, 4, 4, false, -1, 0)},
      {"causal sliding window Nq<Nk", cfg(1, 2, 2, 5, 10, 4, 4, true, 3)},
      {"window l0 r0 Nq>Nk (empty rows)",
       cfg(1, 1, 1, 8, 5, 3, 3, false, 0, 0)},
      {"softcap", cfg(2, 2, 2, 6, 7, 8, 8, false, -1, -1, 1.5, 1.0)},
      {"softcap causal", cfg(1, 2, 2, 6, 6, 8, 8, true, -1, -1, 0.7, 1.0)},
      {"GQA 6/2", cfg(2, 6, 2, 5, 6, 4, 4)},
      {"MQA 4/1 causal", cfg(1, 4, 1, 6, 6, 4, 4, true)},
      {"Dv != D", cfg(1, 2, 2, 5, 6, 3, 7)},
      {"everything", cfg(2, 4, 2, 7, 5, 3, 6, true, 2, -1, 2.0, 0.9)},
  };
  int seed = 100;
  const DType dts[] = {DType::F32, DType::F16, DType::BF16};
  for (const Named &n : cases) {
    const AttnConfig &c = n.c;
    check(validateConfig(c).empty(), std::string("config valid: ") + n.name,
          validateConfig(c));
    seed += 10;
    Tensors t = makeInputs(c, seed, dts[seed % 3]);
    std::vector<double> o(sizeO(c), kNaN), lse(sizeL(c), kNaN);
    std::vector<double> o2(sizeO(c)), lse2(sizeL(c));
    referenceForward(c, t.q.data(), t.k.data(), t.v.data(), o.data(),
                     lse.data());
    fullAttention(c, t.q.data(), t.k.data(), t.v.data(), o2.data(),
                  lse2.data());
    double eo = relativeError(o.data(), o2.data(), o.size());
    double el = relativeError(lse.data(), lse2.data(), lse.size());
    check(eo < 1e-13 && el < 1e-13, std::string("forward vs full: ") + n.name,
          fmt("errO=%.3g errLse=%.3g", eo, el));

    // isVisible agrees with the interval form; empty rows are exact.
    int maskBad = 0, emptyRows = 0, emptyBad = 0, nanCount = 0;
    for (int64_t i = 0; i < c.Nq; ++i) {
      int64_t lo, hi;
      visibleRange(c, i, lo, hi);
      for (int64_t j = 0; j < c.Nk; ++j)
        maskBad += isVisible(c, i, j) != (j >= lo && j < hi);
      if (lo < hi)
        continue;
      ++emptyRows;
      for (int64_t bh = 0; bh < c.B * c.Hq; ++bh) {
        int64_t row = bh * c.Nq + i;
        emptyBad += lse[row] != -kInf;
        for (int64_t d = 0; d < c.Dv; ++d)
          emptyBad += o[row * c.Dv + d] != 0.0;
      }
    }
    for (double x : o)
      nanCount += std::isnan(x);
    for (double x : lse)
      nanCount += std::isnan(x);
    check(maskBad == 0 && emptyBad == 0 && nanCount == 0,
          std::string("mask/empty rows/no NaN: ") + n.name,
          "maskBad=" + std::to_string(maskBad) +
              " emptyRows=" + std::to_string(emptyRows) + " emptyBad=" +
              std::to_string(emptyBad) + " nan=" + std::to_string(nanCount));
    if (std::string(n.name).find("empty rows") != std::string::npos)
      check(emptyRows > 0, std::string("has empty rows: ") + n.name);
  }

  // Stability: large logits must not overflow exp (library shifts by max).
  {
    AttnConfig c = cfg(1, 1, 1, 4, 5, 4, 4, false, -1, -1, 0, 400.0);
    Tensors t = makeInputs(c, 5, DType::F32);
    std::vector<double> o(sizeO(c)), lse(sizeL(c));
    referenceForward(c, t.q.data(), t.k.data(), t.v.data(), o.data(),
                     lse.data());
    check(allFinite(o) && allFinite(lse), "forward stable for huge logits");
  }
}

//===----------------------------------------------------------------------===//
// Backward vs central finite differences of L = sum(O * dO)
//===----------------------------------------------------------------------===//

double lossOf(const AttnConfig &c, const Tensors &t) {
  std::vector<double> o(sizeO(c));
  fullAttention(c, t.q.data(), t.k.data(), t.v.data(), o.data(), nullptr);
  double L = 0;
  for (size_t i = 0; i < o.size(); ++i)
    L += o[i] * t.dO[i];
  return L;
}

std::vector<double> numericGrad(const AttnConfig &c, Tensors &t,
                                std::vector<double> &x) {
  const double eps = 1e-6;
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + eps;
    const double lp = lossOf(c, t);
    x[i] = saved - eps;
    const double lm = lossOf(c, t);
    x[i] = saved;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

void testBackward() {
  const Named cases[] = {
      {"plain", cfg(2, 2, 2, 5, 5, 4, 4)},
      {"causal", cfg(1, 2, 2, 6, 6, 4, 4, true)},
      {"causal Nq<Nk", cfg(1, 2, 2, 4, 7, 3, 3, true)},
      {"causal Nq>Nk (empty rows)", cfg(1, 2, 2, 7, 4, 3, 3, true)},
      {"window l2 r1", cfg(1, 2, 2, 7, 7, 4, 4, false, 2, 1)},
      {"causal sliding window", cfg(1, 2, 2, 7, 7, 4, 4, true, 2)},
      {"softcap", cfg(1, 2, 2, 5, 6, 6, 6, false, -1, -1, 1.5, 1.0)},
      {"softcap causal", cfg(1, 2, 2, 6, 6, 6, 6, true, -1, -1, 0.8, 1.0)},
      {"GQA 6/2", cfg(1, 6, 2, 4, 5, 3, 3)},
      {"MQA 4/1 causal", cfg(1, 4, 1, 5, 5, 3, 3, true)},
      {"Nq != Nk", cfg(2, 2, 2, 3, 6, 4, 4)},
      {"Dv != D", cfg(1, 2, 2, 5, 5, 3, 6)},
      {"everything", cfg(2, 4, 2, 6, 4, 3, 5, true, 1, -1, 2.0, 0.9)},
  };
  uint64_t seed = 1000;
  for (const Named &n : cases) {
    const AttnConfig &c = n.c;
    Tensors t = makeInputs(c, seed += 10, DType::F32);
    std::vector<double> dq(sizeQ(c), kNaN), dk(sizeK(c), kNaN),
        dv(sizeV(c), kNaN);
    referenceBackward(c, t.q.data(), t.k.data(), t.v.data(), t.dO.data(),
                      dq.data(), dk.data(), dv.data());
    std::vector<double> nq = numericGrad(c, t, t.q);
    std::vector<double> nk = numericGrad(c, t, t.k);
    std::vector<double> nv = numericGrad(c, t, t.v);
    double eq = relativeError(dq.data(), nq.data(), dq.size());
    double ek = relativeError(dk.data(), nk.data(), dk.size());
    double ev = relativeError(dv.data(), nv.data(), dv.size());
    check(eq < 1e-6 && ek < 1e-6 && ev < 1e-6,
          std::string("backward vs finite diff: ") + n.name,
          fmt("dq=%.2g dk=%.2g", eq, ek) + fmt(" dv=%.2g", ev));

    // Empty rows give exactly zero dq; keys nobody sees get exactly zero dk/dv.
    int bad = 0;
    for (int64_t i = 0; i < c.Nq; ++i) {
      int64_t lo, hi;
      visibleRange(c, i, lo, hi);
      if (lo < hi)
        continue;
      for (int64_t bh = 0; bh < c.B * c.Hq; ++bh)
        for (int64_t d = 0; d < c.D; ++d)
          bad += dq[(bh * c.Nq + i) * c.D + d] != 0.0;
    }
    for (int64_t j = 0; j < c.Nk; ++j) {
      bool seen = false;
      for (int64_t i = 0; i < c.Nq; ++i)
        seen = seen || isVisible(c, i, j);
      if (seen)
        continue;
      for (int64_t bh = 0; bh < c.B * c.Hkv; ++bh) {
        for (int64_t d = 0; d < c.D; ++d)
          bad += dk[(bh * c.Nk + j) * c.D + d] != 0.0;
        for (int64_t d = 0; d < c.Dv; ++d)
          bad += dv[(bh * c.Nk + j) * c.Dv + d] != 0.0;
      }
    }
    check(bad == 0 && allFinite(dq) && allFinite(dk) && allFinite(dv),
          std::string("backward masked parts exactly zero: ") + n.name,
          std::to_string(bad));
  }
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

void testRelativeError() {
  const double ref[] = {3, 4}, x[] = {3, 5};
  check(std::fabs(relativeError(x, ref, 2) - 0.2) < 1e-16,
        "relErr basic (0.2)");
  check(relativeError(ref, ref, 2) == 0, "relErr identical");
  const double z[] = {0, 0}, xz[] = {3, -4};
  check(relativeError(xz, z, 2) == 5, "relErr zero ref -> ||x||");
  check(relativeError(z, z, 2) == 0, "relErr zero vs zero");
  const double lr[] = {-kInf, 1.0, -kInf}, lx[] = {-kInf, 1.5, -kInf};
  check(relativeError(lx, lr, 3) == 0.5, "relErr -inf pairs equal");
  check(relativeError(lr, lr, 3) == 0, "relErr identical with -inf");
  const double ni[] = {-kInf, -kInf}, ni2[] = {-kInf, -kInf};
  check(relativeError(ni, ni2, 2) == 0, "relErr all -inf");
  const double fin[] = {0, 1.0};
  check(relativeError(fin, lr, 2) == kInf, "relErr -inf vs finite -> inf");
  check(relativeError(lr, fin, 2) == kInf, "relErr finite ref vs -inf -> inf");
  const double pinf[] = {kInf, 1.0};
  check(relativeError(pinf, lr, 2) == kInf, "relErr +inf vs -inf -> inf");
  const double xn[] = {3, kNaN};
  check(relativeError(xn, ref, 2) == kInf, "relErr NaN in x -> inf");
  check(relativeError(xn, xn, 2) == kInf, "relErr NaN vs NaN -> inf");
  check(relativeError(x, ref, 0) == 0, "relErr n=0");
  const double big[] = {1e300, -1e300}, big2[] = {1e300, 1e300};
  double e = relativeError(big, big2, 2);
  check(std::fabs(e - std::sqrt(2.0)) < 1e-12, "relErr no overflow",
        fmt("%.17g", e));
}

void testValidate() {
  AttnConfig good = cfg(1, 4, 2, 8, 8, 16, 16, true, 3, 0, 1.0);
  check(validateConfig(good).empty(), "validate good config");
  struct Bad {
    const char *what;
    void (*mutate)(AttnConfig &);
  };
  const Bad bads[] = {
      {"B=0", [](AttnConfig &c) { c.B = 0; }},
      {"Hq=0", [](AttnConfig &c) { c.Hq = 0; }},
      {"Hkv=0", [](AttnConfig &c) { c.Hkv = 0; }},
      {"Hq%Hkv", [](AttnConfig &c) { c.Hkv = 3; }},
      {"Nq=0", [](AttnConfig &c) { c.Nq = 0; }},
      {"Nk=-1", [](AttnConfig &c) { c.Nk = -1; }},
      {"D=0", [](AttnConfig &c) { c.D = 0; }},
      {"Dv=0", [](AttnConfig &c) { c.Dv = 0; }},
      {"scale=inf", [](AttnConfig &c) { c.scale = kInf; }},
      {"scale=NaN", [](AttnConfig &c) { c.scale = kNaN; }},
      {"softcap<0", [](AttnConfig &c) { c.softcap = -1; }},
      {"softcap=NaN", [](AttnConfig &c) { c.softcap = kNaN; }},
      {"windowLeft=-2", [](AttnConfig &c) { c.windowLeft = -2; }},
      {"windowRight=-5", [](AttnConfig &c) { c.windowRight = -5; }},
  };
  for (const Bad &b : bads) {
    AttnConfig c = good;
    b.mutate(c);
    std::string msg = validateConfig(c);
    check(!msg.empty(), std::string("validate rejects ") + b.what, msg);
  }
  check(!validateConfig(AttnConfig{}).empty(), "validate rejects default");
}

void testFillRandom() {
  const size_t n = 200000;
  std::vector<double> a(n), b(n), c(n);
  fillRandom(42, DType::F32, a.data(), n);
  fillRandom(42, DType::F32, b.data(), n);
  fillRandom(43, DType::F32, c.data(), n);
  check(a == b, "fillRandom deterministic");
  check(a != c, "fillRandom seeds differ");
  double mean = 0, var = 0;
  for (double x : a)
    mean += x;
  mean /= n;
  for (double x : a)
    var += (x - mean) * (x - mean);
  var /= n;
  check(std::fabs(mean) < 0.01 && std::fabs(var - 1) < 0.02,
        "fillRandom standard normal", fmt("mean=%.4f var=%.4f", mean, var));
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    std::vector<double> r(1001);
    fillRandom(9, dt, r.data(), r.size());
    int bad = 0, nonzero = 0;
    for (double x : r) {
      bad += roundTo(dt, x) != x || !std::isfinite(x);
      nonzero += x != 0;
    }
    check(bad == 0 && nonzero > 0,
          std::string("fillRandom representable in ") + dtypeName(dt),
          std::to_string(bad));
  }
  double one;
  fillRandom(0, DType::BF16, &one, 1);
  check(one != 0 && std::isfinite(one), "fillRandom n=1 nonzero");
}

} // namespace

int main() {
  testHalf();
  testBF16();
  testDTypes();
  testForward();
  testBackward();
  testRelativeError();
  testValidate();
  testFillRandom();
  std::printf("%d passed, %d failed\n", gPassed, gFailed);
  return gFailed ? 1 : 0;
}
