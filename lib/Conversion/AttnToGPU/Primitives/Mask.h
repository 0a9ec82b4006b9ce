//===- Mask.h - causal / window / length masks on fragments -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the element mask of the tensor-core kernels. Keys
// are visible to a query row when they are real (< Nk) and, with a causal or
// sliding-window mask, inside the row's window [diag - wl, diag + wr] with
// diag = query + Nk - Nq (bottom-right aligned; wl / wr < 0: unbounded; the
// bounds are run-time kernel arguments). A tile that every row of a block
// sees entirely (tileFullyVisible) skips the element mask; the others mask
// each element against two i32 column bounds computed once per row and tile.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MASK_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MASK_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace mask {

/// The visible columns [lo, hi] of one fragment row (i32, relative to the
/// row's column base; lo is null without a causal / window mask).
struct RowBounds {
  Value lo, hi;
};

/// Bounds of an S accumulator fragment row whose lane columns c = 8j + e
/// (keys colBase + c, colBase = k0 + 2t) belong to query row `qRow`: each
/// element then costs two compares against constants and nothing
/// loop-invariant per element is left for LLVM to hoist. lastCol = Nk - 1
/// - colBase (keys < Nk); off = Nk - Nq, wl / wr the window (null when
/// unmasked).
RowBounds rowBounds(KernelBuilder &k, Value qRow, Value colBase, Value lastCol,
                    Value off, Value wl, Value wr);

/// `x` (column c of a row with bounds `bd`) or, outside them, -inf
/// (`negInf`: raw scores) or 0 (probabilities).
Value element(KernelBuilder &k, const RowBounds &bd, int64_t c, Value x,
              bool negInf);

/// Whether key tile [k0, k0 + N) is visible to every query row of block
/// [q0, q0 + M): keys < Nk and, with a window (`wl` / `wr`; null when
/// unmasked), inside every row's window.
Value tileFullyVisible(KernelBuilder &k, Value k0, Value q0, int64_t M,
                       int64_t N, Value nk, Value off, Value wl, Value wr);

} // namespace mask
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MASK_H
