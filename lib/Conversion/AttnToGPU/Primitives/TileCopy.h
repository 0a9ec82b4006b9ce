//===- TileCopy.h - global <-> shared tile copies ---------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: 16-byte copies of row tiles between a strided global
// tensor and a shared-memory tile (SharedTile.h), synchronous or by
// cp.async. Global rows are addressed through KernelBuilder::at4 (the dense
// [B, H, N, D] addressing with element strides of the ABI: the K / V
// addressing policy of today's kernels); rows at or past the tensor's length
// are clamped copies of its last row when read and never written.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_TILECOPY_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_TILECOPY_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace copy {

/// Copies `rows` x `cols` of buffer `t` from row `row0` (rows clamped to
/// `limit - 1`) into smem tile `dst` with 16-byte vectors; unrolled over
/// the block's threads. Columns at or past `validCols` (default: cols; a
/// multiple of 8) are the tile's zero padding: written as zeros, never read
/// from `t` (head dims padded to the MMA shape).
void stageTile(KernelBuilder &k, StringRef t, Value bi, Value h, Value row0,
               Value limit, int64_t rows, int64_t cols, Value dst, Value tid,
               int64_t validCols = -1);

/// The reverse of stageTile: rows of smem tile `src` go to buffer `t` from
/// row `row0` with 16-byte vectors; rows at or past `limit` are not
/// written.
void storeTile(KernelBuilder &k, Value src, StringRef t, Value bi, Value h,
               Value row0, Value limit, int64_t rows, int64_t cols,
               Value tid);

/// Same as stageTile with cp.async (16 bytes, L1 bypassed) and the tile's
/// copies committed as one group; returns the group token. A tile entirely
/// below `limit` takes a path without the row clamp. When every thread
/// copies the same column chunk in every row step (rows x cols/8 a multiple
/// of the threads, the threads a multiple of cols/8) and no column is
/// padding, its addresses are, with `rowStep`, one element offset per tile
/// plus multiples of a row stride (for a loop whose thread id is opaque:
/// nothing lane-dependent can be hoisted, and a 64-bit row product per
/// copy would be recomputed every iteration), otherwise a row product per
/// copy (LLVM hoists its lane-dependent part out of the loop). Other shapes
/// take each copy's (row, chunk) from its flat index; padding chunks
/// (columns >= validCols) are zero-filled by cp.async (source size 0).
Value stageTileAsync(KernelBuilder &k, StringRef t, Value bi, Value h,
                     Value row0, Value limit, int64_t rows, int64_t cols,
                     Value dst, Value tid, bool rowStep = false,
                     int64_t validCols = -1);

/// The block's unrolled rounds over `total` items, `threads` at a time:
/// body(i, it) for item i = tid + it * threads of round `it`, emitted under
/// `i < total` in a partial last round (the 16-byte copy loops of this file
/// and rotary::stageTables).
void forEachRound(KernelBuilder &k, Value tid, int64_t total, int64_t threads,
                  function_ref<void(Value, int64_t)> body);

/// Waits until at most `pending` cp.async groups are in flight.
void waitGroups(KernelBuilder &k, Value token, int32_t pending);

/// Whether the target has cp.async (sm_80+; an unknown target, 0, is taken
/// as sm_80+). Where it has not (sm_75), every asynchronous copy of this
/// file is a synchronous load and store at the point of issue: the same
/// result as a cp.async that landed at once, so the kernels' waits and
/// barriers keep them correct. stageTileAsync then returns a null token,
/// and commitGroup, waitGroups and waitAll do nothing.
bool hasAsyncCopy(const KernelBuilder &k);

/// cp.async.commit_group: the copies issued since the last commit become one
/// group; returns its token (null without cp.async).
Value commitGroup(KernelBuilder &k);

/// cp.async.wait_group `pending` without a token (all groups but the
/// `pending` most recent have landed).
void waitAll(KernelBuilder &k, int32_t pending);

/// One element of buffer `src` at `srcIdx` to smem `dst` at `dstIdx` by
/// cp.async (4 bytes), or a load and store without cp.async.
void copyScalarAsync(KernelBuilder &k, Value dst, ValueRange dstIdx, Value src,
                     ValueRange srcIdx);

} // namespace copy
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_TILECOPY_H
