//===- Transforms.h - attn rewrites ----------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The rewrites behind the attn passes, as reusable functions: pipelines, the
// C API and tests call these; the passes are thin drivers around them.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_TRANSFORMS_H
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_TRANSFORMS_H

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

#include <string>

namespace mlir {
class RewriterBase;
class RewritePatternSet;

namespace attn {

/// Tile sizes of the tiled lowerings: query rows (BM) and key rows (BN) per
/// block.
struct TileSizes {
  int64_t blockM = 64;
  int64_t blockN = 64;
};

/// The op's `block_sizes` attribute when present, else `defaults`.
TileSizes getTileSizes(Operation *op, TileSizes defaults);

/// Rewrites a memref `attn.attention` into tiled loops with online softmax:
/// scf.parallel over (batch, query head, query block), scf.for over the key
/// blocks a query block can see, running max/sum and an f32 accumulator. The
/// tile products and the softmax are f32 vector code with `vectorWidth`
/// lanes (VectorCodegen.h).
LogicalResult tileAttentionForward(RewriterBase &rewriter, AttentionOp op,
                                   TileSizes sizes, int64_t vectorWidth = 8);

/// Rewrites a memref `attn.attention_backward` into tiled loops that
/// recompute P from the saved lse: a rowsum(dO*O) pre-pass, then
/// scf.parallel over (batch, kv head), scf.for over key blocks, and inside over
/// the group's query heads and query blocks; dQ accumulates in an f32 buffer.
/// f32 vector code with `vectorWidth` lanes, as the forward.
LogicalResult tileAttentionBackward(RewriterBase &rewriter,
                                    AttentionBackwardOp op, TileSizes sizes,
                                    int64_t vectorWidth = 8);

/// The unfused reference lowering of the forward: the full [B, Hq, Nq, Nk]
/// score matrix, row softmax, then P*V (three loop nests).
LogicalResult lowerAttentionUnfused(RewriterBase &rewriter, AttentionOp op);

/// The unfused reference lowering of the backward, with [B, Hq, Nq, Nk] P and
/// dS buffers.
LogicalResult lowerAttentionBackwardUnfused(RewriterBase &rewriter,
                                            AttentionBackwardOp op);

/// attn-raise-linalg: when `pv` is the final contraction O = P V of naive
/// attention in linalg on tensors (softmax(mask + scale * Q K^T) V, see the
/// pass description), replaces it with an attn.attention (and the layout
/// changes around it) and returns the new op; the naive ops are left dead.
/// Fails, changing nothing, when the pattern cannot be proved equivalent;
/// `why` (optional) says which part did not match.
FailureOr<AttentionOp> raiseNaiveAttention(RewriterBase &rewriter,
                                           Operation *pv,
                                           std::string *why = nullptr);

/// The pattern applying raiseNaiveAttention to every linalg op.
void populateAttnRaiseLinalgPatterns(RewritePatternSet &patterns);

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_TRANSFORMS_H
