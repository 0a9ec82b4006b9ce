//===- MmaSync.h - mma.sync register-fragment operations --------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the sm_75+ warp-level matrix operations on register
// fragments: ldmatrix (x4, optionally transposed) from a shared-memory tile,
// packing two f32 values into an A-operand pair, and m16n8k16 mma.sync with
// f32 accumulators (f16 through nvgpu.mma.sync; bf16 through nvvm.mma.sync,
// as nvgpu.mma.sync cannot lower bf16 on MLIR 22). Fragments are kept as
// scalars (f32) or 2-element vectors of the element type.
//
// Fragment coordinates (lane = 4 g + t): an m16n8 accumulator holds (row g
// + 8 r, column 2 t + e) at index 2 r + e; an A operand (m16k16) is four
// pairs: (g, 2t..), (g + 8, 2t..), (g, 2t + 8..), (g + 8, 2t + 8..); a B
// operand (k16n8) two pairs: (k 2t.., n g), (k 2t + 8.., n g).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MMASYNC_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MMASYNC_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace mma {

/// ldmatrix x4 of 2-D tile `mem` (row and column of this lane's 8x8 matrix
/// row; swizzled columns as SharedTile.h); returns the four 2-element rows.
SmallVector<Value> ldmatrix(KernelBuilder &k, Value mem, Value row, Value col,
                            bool trans);

/// A 2-element vector of the element type from two f32 scalars.
Value pack(KernelBuilder &k, Value x, Value y);

/// D = A B + C on one m16n8k16 tile: `a` 4 pairs, `bf` 2 pairs, `c` 4 f32.
/// On sm_75 (spec.smVersion 75) two m16n8k8 MMAs, f16 only.
SmallVector<Value> mma(KernelBuilder &k, ArrayRef<Value> a, ArrayRef<Value> bf,
                       ArrayRef<Value> c);

} // namespace mma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_MMASYNC_H
