//===- SharedTile.h - shared-memory tile layouts and swizzles ---*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: how the tensor-core kernels lay out their tiles in
// dynamic shared memory.
//
//  * SmemLayout: regions one after another, each 16-byte aligned.
//  * 2-D tiles [rows][cols]: rows of `cols` elements. When cols is a
//    multiple of 64 (128-byte rows) the tile is XOR-swizzled: 16-byte chunk
//    c of row r lives at chunk c ^ (r % 8) within its 64-element group. A
//    row then starts on a 128-byte boundary, so the 16-byte cp.async writes
//    of 8 consecutive threads fill one aligned 128-byte segment, and the 8
//    rows of an ldmatrix 8x8 matrix (one logical chunk) hit 8 different
//    chunks: no bank conflict. Other widths are padded rows (64k + 8
//    elements), stored as they are.
//  * 3-D tiles [cols / 64][rows][64]: the layout wgmma's 128-byte swizzle
//    mode reads, 64-column blocks of 128-byte rows with the same chunk
//    swizzle, every tile 1024-byte aligned (alignSmem).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SHAREDTILE_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SHAREDTILE_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace tile {

/// Bytes rounded up to 16 (shared-memory tiles start 16-byte aligned).
inline int64_t align16(int64_t x) { return (x + 15) / 16 * 16; }

/// Lays out shared-memory regions one after another, each 16-byte aligned:
/// `add(bytes)` returns the region's byte offset, `total` the size so far.
struct SmemLayout {
  int64_t total = 0;
  int64_t add(int64_t bytes) {
    int64_t o = total;
    total = align16(total + bytes);
    return o;
  }
};

/// Alignment of the 128-byte-swizzled tiles (the swizzle repeats every 1024
/// bytes of shared-memory address). The dynamic shared memory is only known
/// to be 16-byte aligned: kernels shift their tiles to the next 1024-byte
/// boundary at run time (alignSmem) and ask for kSmemSlack bytes more.
constexpr int64_t kSmemAlign = 1024;
constexpr int64_t kSmemSlack = kSmemAlign - 16;
inline int64_t alignUp(int64_t x) {
  return (x + kSmemAlign - 1) / kSmemAlign * kSmemAlign;
}

/// Sets k.smemShift so that k.smem(0, ...) is 1024-byte aligned; returns
/// the aligned shared-memory address (i64) of offset 0.
Value alignSmem(KernelBuilder &k);

/// True when 2-D tile `mem` is XOR-swizzled (rows a multiple of 64
/// elements).
bool swizzled(Value mem);

/// The indices of element (row, col) of tile `mem`: a 2-D tile (swizzled
/// or padded) or a 3-D [cols / 64][rows][64] tile. col is a multiple of 8
/// (one 16-byte chunk).
SmallVector<Value> indices(KernelBuilder &k, Value mem, Value row, Value col);

/// The stored column of element (row, col) of 2-D tile `mem` (col a
/// multiple of 2; the access stays inside its 16-byte chunk). The constant
/// part C of col stays an address offset where it can: col = C + x is
/// stored at (C & ~63) + (((C & 63) + x) ^ 8 (row % 8)).
Value swizzleCol(KernelBuilder &k, Value mem, Value row, Value col);

} // namespace tile
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SHAREDTILE_H
