//===- Reference.cpp - Float64 reference attention ------------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Straightforward loop nests; see Reference.h for the exact semantics.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/runtime/Reference.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace flashmlir::rt;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t d = 0; d < n; ++d)
    s += a[d] * b[d];
  return s;
}

/// Softmax of one query row `qi` against the keys `kh` of its kv head (and
/// the head's sink logit, -inf for none). Fills p[j] = P_ij (0 where
/// masked), vis[j], and th[j] = tanh(s/c) when soft-capping. Returns the
/// row's lse, or -inf if no key is visible and there is no sink.
double rowSoftmax(const AttnConfig &c, int64_t i, const double *qi,
                  const double *kh, double *p, unsigned char *vis, double *th,
                  double sink, double slope) {
  const bool capped = c.softcap > 0;
  double maxS = sink;
  bool any = sink != -kInf;
  for (int64_t j = 0; j < c.Nk; ++j) {
    vis[j] = isVisible(c, i, j);
    if (!vis[j]) {
      p[j] = 0;
      continue;
    }
    double s = c.scale * dot(qi, kh + j * c.D, c.D);
    if (capped) {
      th[j] = std::tanh(s / c.softcap);
      s = c.softcap * th[j];
    }
    s -= slope * std::fabs(double(i + c.Nk - c.Nq - j));
    p[j] = s; // holds S for now
    maxS = any ? std::max(maxS, s) : s;
    any = true;
  }
  if (!any)
    return -kInf;
  double sum = sink == -kInf ? 0.0 : std::exp(sink - maxS);
  for (int64_t j = 0; j < c.Nk; ++j) {
    if (!vis[j])
      continue;
    p[j] = std::exp(p[j] - maxS);
    sum += p[j];
  }
  for (int64_t j = 0; j < c.Nk; ++j)
    p[j] /= sum; // masked entries stay 0
  return maxS + std::log(sum);
}

/// The ALiBi slope of (b, h), 0 without ALiBi.
double slopeOf(const AttnConfig &c, int64_t b, int64_t h) {
  return c.alibi ? c.alibi[b * c.alibiStrideB + h] : 0.0;
}

/// Per-row scratch buffers (length Nk, plus Dv for O).
struct RowScratch {
  std::vector<double> p, th, o;
  std::vector<unsigned char> vis;
  explicit RowScratch(const AttnConfig &c)
      : p(c.Nk), th(c.Nk), o(c.Dv), vis(c.Nk) {}
};

} // namespace

bool flashmlir::rt::isVisible(const AttnConfig &c, int64_t i, int64_t j) {
  const int64_t diag = i + (c.Nk - c.Nq);
  if (c.causal && j > diag)
    return false;
  if (c.windowLeft >= 0 && j < diag - c.windowLeft)
    return false;
  if (c.windowRight >= 0 && j > diag + c.windowRight)
    return false;
  return true;
}

namespace {
/// RoPE on rows [B, H, N, D] of `x` in place: row n at position n + off
/// (R, or R^T with `inverse`).
void rotateRows(const AttnConfig &c, double *x, int64_t H, int64_t N,
                int64_t off, bool inverse) {
  const int64_t R = c.rotaryDim, half = R / 2;
  for (int64_t r = 0; r < c.B * H * N; ++r) {
    double *row = x + r * c.D;
    const int64_t pos = r % N + off;
    for (int64_t m = 0; m < half; ++m) {
      const int64_t a = c.rotaryInterleaved ? 2 * m : m;
      const int64_t bb = c.rotaryInterleaved ? 2 * m + 1 : m + half;
      const double cs = c.rotaryCos[pos * half + m];
      const double sn = inverse ? -c.rotarySin[pos * half + m]
                                : c.rotarySin[pos * half + m];
      const double xa = row[a], xb = row[bb];
      row[a] = xa * cs - xb * sn;
      row[bb] = xb * cs + xa * sn;
    }
  }
}

/// With RoPE: q and k rotated (copies) and `c` without it; else nothing.
struct Rotated {
  AttnConfig c;
  std::vector<double> q, k;
  Rotated(const AttnConfig &cfg, const double *q0, const double *k0)
      : c(cfg), q(q0, q0 + cfg.B * cfg.Hq * cfg.Nq * cfg.D),
        k(k0, k0 + cfg.B * cfg.Hkv * cfg.Nk * cfg.D) {
    rotateRows(cfg, q.data(), cfg.Hq, cfg.Nq, cfg.Nk - cfg.Nq, false);
    rotateRows(cfg, k.data(), cfg.Hkv, cfg.Nk, 0, false);
    c.rotaryCos = c.rotarySin = nullptr;
  }
};
} // namespace

void flashmlir::rt::referenceForward(const AttnConfig &c, const double *q,
                                     const double *k, const double *v,
                                     double *o, double *lse) {
  assert(validateConfig(c).empty() && "invalid AttnConfig");
  if (c.rotaryCos) {
    Rotated r(c, q, k);
    return referenceForward(r.c, r.q.data(), r.k.data(), v, o, lse);
  }
  const int64_t group = c.Hq / c.Hkv;
  RowScratch rs(c);
  for (int64_t b = 0; b < c.B; ++b) {
    for (int64_t h = 0; h < c.Hq; ++h) {
      const int64_t kvh = h / group;
      const double *kh = k + (b * c.Hkv + kvh) * c.Nk * c.D;
      const double *vh = v + (b * c.Hkv + kvh) * c.Nk * c.Dv;
      for (int64_t i = 0; i < c.Nq; ++i) {
        const int64_t row = (b * c.Hq + h) * c.Nq + i;
        const double *qi = q + row * c.D;
        double *oi = o + row * c.Dv;
        double l = rowSoftmax(c, i, qi, kh, rs.p.data(), rs.vis.data(),
                              rs.th.data(), c.sinks ? c.sinks[h] : -kInf,
                              slopeOf(c, b, h));
        if (lse)
          lse[row] = l;
        std::fill(oi, oi + c.Dv, 0.0);
        if (l == -kInf)
          continue; // no visible key: O = 0
        for (int64_t j = 0; j < c.Nk; ++j) {
          if (!rs.vis[j])
            continue;
          const double pj = rs.p[j];
          const double *vj = vh + j * c.Dv;
          for (int64_t d = 0; d < c.Dv; ++d)
            oi[d] += pj * vj[d];
        }
      }
    }
  }
}

void flashmlir::rt::referenceBackward(const AttnConfig &c, const double *q,
                                      const double *k, const double *v,
                                      const double *dO, double *dq, double *dk,
                                      double *dv, double *dsinks) {
  assert(validateConfig(c).empty() && "invalid AttnConfig");
  if (c.rotaryCos) { // gradients of the rotated q, k, rotated back
    Rotated r(c, q, k);
    referenceBackward(r.c, r.q.data(), r.k.data(), v, dO, dq, dk, dv, dsinks);
    rotateRows(c, dq, c.Hq, c.Nq, c.Nk - c.Nq, true);
    rotateRows(c, dk, c.Hkv, c.Nk, 0, true);
    return;
  }
  const int64_t group = c.Hq / c.Hkv;
  const bool capped = c.softcap > 0;
  std::fill(dq, dq + c.B * c.Hq * c.Nq * c.D, 0.0);
  std::fill(dk, dk + c.B * c.Hkv * c.Nk * c.D, 0.0);
  std::fill(dv, dv + c.B * c.Hkv * c.Nk * c.Dv, 0.0);
  if (dsinks)
    std::fill(dsinks, dsinks + c.Hq, 0.0);
  RowScratch rs(c);
  double *oi = rs.o.data();
  for (int64_t b = 0; b < c.B; ++b) {
    for (int64_t h = 0; h < c.Hq; ++h) {
      const int64_t kvh = h / group;
      const int64_t kvBase = (b * c.Hkv + kvh) * c.Nk;
      const double *kh = k + kvBase * c.D;
      const double *vh = v + kvBase * c.Dv;
      double *dkh = dk + kvBase * c.D;
      double *dvh = dv + kvBase * c.Dv;
      for (int64_t i = 0; i < c.Nq; ++i) {
        const int64_t row = (b * c.Hq + h) * c.Nq + i;
        const double *qi = q + row * c.D;
        const double *dOi = dO + row * c.Dv;
        double *dqi = dq + row * c.D;
        const double sink = c.sinks ? c.sinks[h] : -kInf;
        double l = rowSoftmax(c, i, qi, kh, rs.p.data(), rs.vis.data(),
                              rs.th.data(), sink, slopeOf(c, b, h));
        if (l == -kInf)
          continue; // empty row: no contribution

        // O_i in double, then Di = dO_i . O_i.
        std::fill(oi, oi + c.Dv, 0.0);
        for (int64_t j = 0; j < c.Nk; ++j) {
          if (!rs.vis[j])
            continue;
          const double *vj = vh + j * c.Dv;
          for (int64_t d = 0; d < c.Dv; ++d)
            oi[d] += rs.p[j] * vj[d];
        }
        const double Di = dot(dOi, oi, c.Dv);
        if (dsinks && c.sinks) // d sink = -P_sink Di
          dsinks[h] -= std::exp(sink - l) * Di;

        for (int64_t j = 0; j < c.Nk; ++j) {
          if (!rs.vis[j])
            continue;
          const double pj = rs.p[j];
          const double *kj = kh + j * c.D;
          const double *vj = vh + j * c.Dv;
          double dS = pj * (dot(dOi, vj, c.Dv) - Di);
          if (capped)
            dS *= 1.0 - rs.th[j] * rs.th[j]; // d(c tanh(s/c))/ds
          const double g = c.scale * dS;
          double *dkj = dkh + j * c.D;
          for (int64_t d = 0; d < c.D; ++d) {
            dqi[d] += g * kj[d];
            dkj[d] += g * qi[d];
          }
          double *dvj = dvh + j * c.Dv;
          for (int64_t d = 0; d < c.Dv; ++d)
            dvj[d] += pj * dOi[d];
        }
      }
    }
  }
}

double flashmlir::rt::relativeError(const double *x, const double *ref,
                                    size_t n) {
  // Pass 1: screen specials and find a scale so the sums cannot overflow.
  double scale = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i], r = ref[i];
    if (std::isnan(a) || std::isnan(r))
      return kInf;
    if (std::isinf(a) || std::isinf(r)) {
      if (a != r)
        return kInf;
      continue; // equal infinities (e.g. -inf lse) compare equal
    }
    scale = std::max(scale, std::max(std::fabs(a), std::fabs(r)));
  }
  if (scale == 0)
    return 0;
  scale = std::ldexp(1.0, std::ilogb(scale)); // power of two: exact scaling
  // Pass 2: scaled 2-norms of the difference and of the reference.
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = x[i], r = ref[i];
    if (std::isinf(a))
      continue;
    const double d = a / scale - r / scale;
    num += d * d;
    den += (r / scale) * (r / scale);
  }
  if (den == 0)
    return std::sqrt(num) * scale; // ||x|| against an all-zero reference
  return std::sqrt(num / den);
}

void flashmlir::rt::fillRandom(uint64_t seed, DType dt, double *out, size_t n) {
  // Box-Muller on raw mt19937_64 output: the engine's sequence is fixed by the
  // standard, std::normal_distribution's is not, so this is portable.
  std::mt19937_64 gen(seed);
  const double twoPi = 6.283185307179586476925286766559;
  auto uniform01 = [&gen] { // (0, 1]
    return (static_cast<double>(gen() >> 11) + 1.0) * 0x1.0p-53;
  };
  bool allZero = true;
  for (size_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform01()));
    const double t = twoPi * uniform01();
    out[i] = roundTo(dt, r * std::cos(t));
    if (i + 1 < n)
      out[i + 1] = roundTo(dt, r * std::sin(t));
    allZero = allZero && out[i] == 0 && (i + 1 >= n || out[i + 1] == 0);
  }
  if (n > 0 && allZero)
    out[0] = 1.0; // astronomically unlikely; keep the promise anyway
}

std::string flashmlir::rt::validateConfig(const AttnConfig &c) {
  auto need = [](bool ok, const char *msg) { return ok ? "" : msg; };
  const char *checks[] = {
      need(c.B >= 1, "B must be >= 1"),
      need(c.Hq >= 1, "Hq must be >= 1"),
      need(c.Hkv >= 1, "Hkv must be >= 1"),
      need(c.Hkv < 1 || c.Hq % c.Hkv == 0, "Hq must be a multiple of Hkv"),
      need(c.Nq >= 1, "Nq must be >= 1"),
      need(c.Nk >= 1, "Nk must be >= 1"),
      need(c.D >= 1, "D must be >= 1"),
      need(c.Dv >= 1, "Dv must be >= 1"),
      need(std::isfinite(c.scale), "scale must be finite"),
      need(std::isfinite(c.softcap) && c.softcap >= 0,
           "softcap must be finite and >= 0 (0 = off)"),
      need(c.windowLeft >= -1, "windowLeft must be >= -1 (-1 = unbounded)"),
      need(c.windowRight >= -1, "windowRight must be >= -1 (-1 = unbounded)"),
      need(!c.rotaryCos == !c.rotarySin,
           "rotaryCos and rotarySin go together"),
      need(!c.rotaryCos || (c.rotaryDim >= 2 && c.rotaryDim % 2 == 0 &&
                            c.rotaryDim <= c.D),
           "rotaryDim must be even and in [2, D]"),
      need(!c.rotaryCos || c.Nq <= c.Nk,
           "RoPE needs Nq <= Nk (query i at position i + Nk - Nq)"),
  };
  for (const char *msg : checks)
    if (*msg)
      return msg;
  return "";
}

//===----------------------------------------------------------------------===//
// Variable-length batches
//===----------------------------------------------------------------------===//

namespace {

/// Rows [r0, r0 + n) of every head of a batch-1 [H, T, W] array, gathered
/// into a dense [H, n, W] one (and back).
std::vector<double> gatherRows(const double *x, int64_t H, int64_t T,
                               int64_t W, int64_t r0, int64_t n) {
  std::vector<double> out(static_cast<size_t>(H * n * W));
  for (int64_t h = 0; h < H; ++h)
    std::copy(x + (h * T + r0) * W, x + (h * T + r0 + n) * W,
              out.begin() + h * n * W);
  return out;
}

void scatterRows(const std::vector<double> &src, double *x, int64_t H,
                 int64_t T, int64_t W, int64_t r0, int64_t n) {
  for (int64_t h = 0; h < H; ++h)
    std::copy(src.begin() + h * n * W, src.begin() + (h + 1) * n * W,
              x + (h * T + r0) * W);
}

/// The dense problem of sequence b (its ALiBi slopes: row b).
AttnConfig sequenceConfig(const AttnConfig &cfg, int64_t b, int64_t nq,
                          int64_t nk) {
  AttnConfig c = cfg;
  if (c.alibi)
    c.alibi += b * c.alibiStrideB;
  c.B = 1;
  c.Nq = nq;
  c.Nk = nk;
  return c;
}

} // namespace

void flashmlir::rt::referenceVarlenForward(const AttnConfig &cfg,
                                           const int32_t *cuQ,
                                           const int32_t *cuK, int64_t batch,
                                           const double *q, const double *k,
                                           const double *v, double *o,
                                           double *lse) {
  const int64_t Tq = cfg.Nq, Tk = cfg.Nk;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t q0 = cuQ[b], nq = cuQ[b + 1] - cuQ[b];
    const int64_t k0 = cuK[b], nk = cuK[b + 1] - cuK[b];
    if (nq <= 0)
      continue;
    std::vector<double> os(static_cast<size_t>(cfg.Hq * nq * cfg.Dv), 0.0),
        ls(static_cast<size_t>(cfg.Hq * nq), -kInf);
    if (nk > 0) {
      std::vector<double> qs = gatherRows(q, cfg.Hq, Tq, cfg.D, q0, nq);
      std::vector<double> ks = gatherRows(k, cfg.Hkv, Tk, cfg.D, k0, nk);
      std::vector<double> vs = gatherRows(v, cfg.Hkv, Tk, cfg.Dv, k0, nk);
      referenceForward(sequenceConfig(cfg, b, nq, nk), qs.data(), ks.data(),
                       vs.data(), os.data(), ls.data());
    }
    scatterRows(os, o, cfg.Hq, Tq, cfg.Dv, q0, nq);
    if (lse)
      scatterRows(ls, lse, cfg.Hq, Tq, 1, q0, nq);
  }
}

void flashmlir::rt::referenceVarlenBackward(
    const AttnConfig &cfg, const int32_t *cuQ, const int32_t *cuK,
    int64_t batch, const double *q, const double *k, const double *v,
    const double *dO, double *dq, double *dk, double *dv) {
  const int64_t Tq = cfg.Nq, Tk = cfg.Nk;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t q0 = cuQ[b], nq = cuQ[b + 1] - cuQ[b];
    const int64_t k0 = cuK[b], nk = cuK[b + 1] - cuK[b];
    std::vector<double> dqs(static_cast<size_t>(cfg.Hq * nq * cfg.D), 0.0),
        dks(static_cast<size_t>(cfg.Hkv * nk * cfg.D), 0.0),
        dvs(static_cast<size_t>(cfg.Hkv * nk * cfg.Dv), 0.0);
    if (nq > 0 && nk > 0) {
      std::vector<double> qs = gatherRows(q, cfg.Hq, Tq, cfg.D, q0, nq);
      std::vector<double> ks = gatherRows(k, cfg.Hkv, Tk, cfg.D, k0, nk);
      std::vector<double> vs = gatherRows(v, cfg.Hkv, Tk, cfg.Dv, k0, nk);
      std::vector<double> dos = gatherRows(dO, cfg.Hq, Tq, cfg.Dv, q0, nq);
      referenceBackward(sequenceConfig(cfg, b, nq, nk), qs.data(), ks.data(),
                        vs.data(), dos.data(), dqs.data(), dks.data(),
                        dvs.data());
    }
    scatterRows(dqs, dq, cfg.Hq, Tq, cfg.D, q0, nq);
    scatterRows(dks, dk, cfg.Hkv, Tk, cfg.D, k0, nk);
    scatterRows(dvs, dv, cfg.Hkv, Tk, cfg.Dv, k0, nk);
  }
}
