//===- Reference.h - Float64 reference attention ----------------*- C++ -*-===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// A plain, independent float64 implementation of (masked, soft-capped, GQA)
// attention forward and backward, used as ground truth for the generated
// kernels. Deliberately simple: per query row it computes every score, the
// row max, the exponentials and the sum; no tiling, no online softmax.
//
// Layouts (dense, row-major, float64):
//   q [B,Hq,Nq,D]   k [B,Hkv,Nk,D]   v [B,Hkv,Nk,Dv]
//   o, dO [B,Hq,Nq,Dv]   lse [B,Hq,Nq]   dq ~ q, dk ~ k, dv ~ v
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_REFERENCE_H
#define FLASHMLIR_RUNTIME_REFERENCE_H

#include "flashmlir/runtime/Half.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace flashmlir::rt {

struct AttnConfig {
  int64_t B = 0, Hq = 0, Hkv = 0, Nq = 0, Nk = 0, D = 0, Dv = 0;
  double scale = 0;
  bool causal = false;
  /// Sliding window around the (bottom-right aligned) diagonal; -1 = none.
  int64_t windowLeft = -1, windowRight = -1;
  /// Tanh soft-capping S = c * tanh(s / c); 0 = off.
  double softcap = 0;
  /// Attention sinks: [Hq] logits, one per query head, joining every row's
  /// softmax with a zero value row (counted in lse); null = none.
  const double *sinks = nullptr;
  /// ALiBi (FlashAttention-2's alibi_slopes): S_ij -= slope |i + Nk - Nq -
  /// j| after softcap, slope (b, h) = alibi[b * alibiStrideB + h]
  /// (alibiStrideB 0: one slope per head); null = none.
  const double *alibi = nullptr;
  int64_t alibiStrideB = 0;
  /// Fused RoPE: [positions, rotaryDim / 2] tables (row p at p * rotaryDim
  /// / 2); the first rotaryDim dims of query i are rotated at position i +
  /// Nk - Nq and of key j at j before the scores, pairs (d, d + rotaryDim /
  /// 2) or (2m, 2m + 1) when rotaryInterleaved; the backward's dq / dk are
  /// those of the unrotated q / k (R^T). Null = none.
  const double *rotaryCos = nullptr, *rotarySin = nullptr;
  int64_t rotaryDim = 0;
  bool rotaryInterleaved = false;
};

/// Whether query row i sees key j. With off = Nk - Nq (diagonal aligned to
/// the bottom-right corner): (!causal || j <= i + off) &&
/// (windowLeft < 0 || j >= i + off - windowLeft) &&
/// (windowRight < 0 || j <= i + off + windowRight).
bool isVisible(const AttnConfig &cfg, int64_t i, int64_t j);

/// O = softmax(S) V per query row over its visible keys; lse = log sum exp(S)
/// (natural log). Rows with no visible key get O = 0 and lse = -inf.
/// `lse` may be null. Query head h reads kv head h / (Hq / Hkv).
void referenceForward(const AttnConfig &cfg, const double *q, const double *k,
                      const double *v, double *o, double *lse);

/// Gradients of sum(O * dO) w.r.t. q, k, v. P and O are recomputed here in
/// float64. dq/dk/dv are overwritten; GQA groups are summed into their kv
/// head. Masked entries and empty rows contribute nothing.
/// With cfg.sinks, `dsinks` (if not null) receives d sinks [Hq].
void referenceBackward(const AttnConfig &cfg, const double *q, const double *k,
                       const double *v, const double *dO, double *dq,
                       double *dk, double *dv, double *dsinks = nullptr);

/// Variable-length batches: `batch` sequences packed along the token dim;
/// sequence b owns query rows [cuQ[b], cuQ[b+1]) and key rows
/// [cuK[b], cuK[b+1]). The packed tensors are given as batch-1 dense arrays
/// of their rows: q [Hq,Tq,D], k [Hkv,Tk,D], v [Hkv,Tk,Dv], o, dO
/// [Hq,Tq,Dv], lse [Hq,Tq] (cfg.B = 1, cfg.Nq = Tq, cfg.Nk = Tk; the
/// offsets must lie within them). Each sequence is computed as its own dense
/// problem by referenceForward / referenceBackward (masks aligned to its own
/// bottom-right corner); a sequence without keys gives O = 0, lse = -inf,
/// dq = 0, one without queries dk = dv = 0. Rows outside every sequence are
/// left as they are. `lse` may be null.
void referenceVarlenForward(const AttnConfig &cfg, const int32_t *cuQ,
                            const int32_t *cuK, int64_t batch, const double *q,
                            const double *k, const double *v, double *o,
                            double *lse);
void referenceVarlenBackward(const AttnConfig &cfg, const int32_t *cuQ,
                             const int32_t *cuK, int64_t batch,
                             const double *q, const double *k, const double *v,
                             const double *dO, double *dq, double *dk,
                             double *dv);

/// ||x - ref||_2 / ||ref||_2 in float64; ||x - ref||_2 when ||ref|| == 0.
/// Equal infinities (e.g. -inf lse of empty rows) count as equal and are
/// skipped; an infinity matched by anything else, or a NaN in x or ref,
/// gives +inf. Returns 0 for n == 0.
double relativeError(const double *x, const double *ref, size_t n);

/// Standard normal values from std::mt19937_64(seed) (portable Box-Muller),
/// each rounded through `dt`. Never all zeros (for n > 0).
void fillRandom(uint64_t seed, DType dt, double *out, size_t n);

/// "" when `cfg` is valid, else a message naming the problem.
std::string validateConfig(const AttnConfig &cfg);

} // namespace flashmlir::rt

#endif // FLASHMLIR_RUNTIME_REFERENCE_H
