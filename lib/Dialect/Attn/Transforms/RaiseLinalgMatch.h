//===- RaiseLinalgMatch.h - naive attention in linalg, recognised -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The analysis half of attn-raise-linalg: recognises
// `contract(softmax(mask + scale * contract(Q, K)), V)` in linalg on tensors
// (see the pass description in Passes.td) and describes it as a
// NaiveAttention, or says why not. It creates no IR; AttnRaiseLinalg.cpp
// rewrites what it describes.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_DIALECT_ATTN_TRANSFORMS_RAISELINALGMATCH_H
#define FLASHMLIR_LIB_DIALECT_ATTN_TRANSFORMS_RAISELINALGMATCH_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Value.h"

#include "llvm/ADT/SmallVector.h"

#include <string>

namespace mlir::attn::raise {

/// `source` read in a canonical dim order: canonical dim `c` is dim
/// `perm[c]` of `source` (identity: `source` is already in that order).
struct View {
  Value source;
  llvm::SmallVector<int64_t> perm;
  bool isIdentity() const;
};

/// K or V as the op takes it: `[B, Hkv, N, D]` with each kv head serving
/// `group` query heads (1: no grouping recognised).
struct KvOperand {
  View view;
  int64_t group = 1;
};

/// Everything the rewrite needs.
struct NaiveAttention {
  linalg::LinalgOp qk, pv;           ///< S = contract(Q, K), O = contract(P, V)
  unsigned batchRank = 2;            ///< 2: [B, H, N, D]; 1: [B*H, N, D]
  View q;                            ///< canonical [batch..., Nq, D]
  KvOperand k, v;                    ///< canonical [batch..., Nk, D|Dv]
  llvm::SmallVector<int64_t> outPerm; ///< pv result dim r = canonical outPerm[r]
  double scale = 1.0;
  bool causal = false;
  int64_t windowLeft = -1, windowRight = -1;
  /// Keys the mask leaves visible: the first `keys` of Nk (key padding).
  int64_t keys = 0;
};

/// Recognises naive attention ending in `pv`. On failure returns false and
/// says why in `why` (for the pass's debug remarks and tests).
bool matchNaiveAttention(linalg::LinalgOp pv, NaiveAttention &out,
                         std::string &why);

} // namespace mlir::attn::raise

#endif // FLASHMLIR_LIB_DIALECT_ATTN_TRANSFORMS_RAISELINALGMATCH_H
