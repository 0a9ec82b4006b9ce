//===- UserRegions.h - score_mod / mask_mod inlining ------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The attn ops' user regions (`score_mod`, `mask_mod`) inlined into the
// lowerings' loops, and the derivative of `score_mod` with respect to the
// score, derived from the region's ops by the chain rule (forward mode: each
// value that depends on the score gets its tangent next to it). Shared by
// the CPU lowerings (tiled and unfused); not a stable API.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_USERREGIONS_H
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_USERREGIONS_H

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Region.h"

namespace mlir {
namespace attn {

/// The user regions of an op (null where the op has none).
struct UserRegions {
  Region *scoreMod = nullptr, *maskMod = nullptr;

  template <typename OpTy> static UserRegions of(OpTy op) {
    UserRegions r;
    if (!op.getScoreMod().empty())
      r.scoreMod = &op.getScoreMod();
    if (!op.getMaskMod().empty())
      r.maskMod = &op.getMaskMod();
    return r;
  }
  explicit operator bool() const { return scoreMod || maskMod; }
};

/// Clones `scoreMod`'s body at `b` with its arguments bound to `score` (f32)
/// and the index values `batch`, `head`, `qi`, `kj`; returns the yielded
/// score. With `derivOut`, also emits the derivative of the result with
/// respect to `score` (an f32 value, 0 where the result does not depend on
/// it) and returns failure, after an error at `diagOp`, when an op on the
/// score's path has no derivative rule.
FailureOr<Value> inlineScoreMod(OpBuilder &b, Location loc, Region &scoreMod,
                                Value score, Value batch, Value head, Value qi,
                                Value kj, Value *derivOut = nullptr,
                                Operation *diagOp = nullptr);

/// Succeeds when inlineScoreMod can derive `scoreMod`'s derivative (a dry
/// run in a scratch block); else emits its error at `diagOp`.
LogicalResult checkScoreModDerivable(Region &scoreMod, Operation *diagOp);

/// Clones `maskMod`'s body with its arguments bound to the index values;
/// returns the yielded i1 (true: the key is kept).
Value inlineMaskMod(OpBuilder &b, Location loc, Region &maskMod, Value batch,
                    Value head, Value qi, Value kj);

/// Score `s` of query `qi` and key `kj` (after softcap and ALiBi, in units
/// of `unit`: 1 for natural-log scores, log2(e) in the log2 domain) through
/// the regions: score_mod (in natural-log units), then -inf where mask_mod
/// drops the key. With `derivOut`, *derivOut (null: 1) is multiplied by
/// d score_mod / d s; the region must be derivable (checkScoreModDerivable).
Value applyUserRegions(detail::Codegen &cg, const UserRegions &regions, Value s,
                       double unit, Value seq, Value head, Value qi, Value kj,
                       Value *derivOut = nullptr);

/// i1: `maskMod` keeps some pair of the queries [q0, q0 + rows) and keys
/// [k0, k0 + cols) (the test for skipping a block pair).
Value maskModKeepsAny(detail::Codegen &cg, Region &maskMod, Value seq,
                      Value head, Value q0, Value rows, Value k0, Value cols);

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_USERREGIONS_H
