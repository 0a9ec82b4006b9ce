//===- Rotary.h - fused rotary position embedding (RoPE) --------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: RoPE applied to Q and K tiles in shared memory after
// they land and before any product reads them (never a rotated copy in
// global memory), and the transposed rotation R^T for the gradients dQ and
// dK of the rotated rows.
//
// The tables are the op's (FlashAttention-2's) `rotary_cos` / `rotary_sin`,
// f32 [P, R/2], row `pos` at pos * rotary_stride; `rotary_dim` (R, a multiple
// of 16, <= D) and `rotary_interleaved` are kernel arguments, so one kernel
// serves every rotary dim and both conventions:
//   GPT-NeoX (half-split): pairs (c, c + R/2), table column c;
//   GPT-J (interleaved):   pairs (2m, 2m + 1), table column m;
//   x'[a] = x[a] cos - x[b] sin,  x'[b] = x[b] cos + x[a] sin   (R)
//   x'[a] = x[a] cos + x[b] sin,  x'[b] = x[b] cos - x[a] sin   (R^T)
// in f32 whatever the element type. Work is spread over the block's
// threads in 16-byte chunks (8 elements; the half-split form pairs a chunk
// of the first half with its partner R/2 columns on), table rows read as
// 16-byte vectors (rotary_stride a multiple of 4, tables 16-byte aligned:
// the runtime checks).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ROTARY_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ROTARY_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace rotary {

/// Rotates rows [0, rows) of shared-memory tile `mem` in place (2-D, swizzled
/// or padded, or wgmma's 3-D [cols / 64][rows][64]; `cols` >= the rotary dim,
/// a multiple of 8): tile row r at table row `posOf(r)` (the caller clamps
/// it to the tables). `inverse`: R^T. Spread over `threads` threads from
/// `tid`; the caller puts the barriers around it. `batch` 0: a loop over
/// the thread's chunks, one at a time (fewest registers; each chunk waits
/// on its table loads); else the chunks unrolled in groups of `batch` whose
/// shared-memory and table loads are issued before their arithmetic
/// (latencies overlap; more registers). The wgmma forward needs the
/// unrolled form: with the loop, ptxas serializes its wgmma pipeline
/// (C7513, "non wgmma instructions defining input registers").
/// `staged`: the tile's table rows in shared memory (stageTables, same
/// rows / cols; batch > 0 only), read there instead of from the tables
/// (`posOf` is then unused).
void rotateTile(KernelBuilder &k, Value mem, int64_t rows, int64_t cols,
                function_ref<Value(Value)> posOf, Value tid, int64_t threads,
                bool inverse = false, int64_t batch = 0,
                Value staged = Value());

/// Bytes of the shared-memory tile stageTables fills for a `rows` x `cols`
/// tile: [2][rows][cols / 2] f32 (cos, then sin; cols a multiple of 8).
int64_t stagedTableBytes(int64_t rows, int64_t cols);

/// Copies the cos / sin rows of tile rows [0, rows) (row r at table row
/// `posOf(r)`, clamped by the caller) into `dst` ([2][rows][cols / 2] f32)
/// by cp.async (16 bytes; columns [0, R / 2), the rest zero-filled), one
/// commit group; returns its token. Issued with the tile's own copies, the
/// table rows land with it, and the rotation reads shared memory only (an
/// L2 round trip per batch of chunks otherwise).
Value stageTables(KernelBuilder &k, Value dst, int64_t rows, int64_t cols,
                  function_ref<Value(Value)> posOf, Value tid,
                  int64_t threads);

/// The rotation of one 8-element chunk held in f32 registers: `x` (vector<8
/// x f32>) is columns [c, c + 8) of a row at table row `pos`, `y` its
/// half-split partner [c + R/2, c + R/2 + 8) (ignored, may be null, when
/// interleaved). Returns the rotated (x, y). `interleaved` is an i1 (a
/// uniform select, not a branch).
std::pair<Value, Value> rotateChunk(KernelBuilder &k, Value x, Value y,
                                    Value pos, Value c, bool interleaved,
                                    bool inverse);

/// Chunk `c` (8 columns from c, a multiple of 8) of one row at table row
/// `pos`, read through `load(col)` and written through `store(col, x)` as
/// vector<8 x f32>: rotated (R, or R^T with `inverse`) when inside the
/// rotary dims, together with its partner chunk when half-split (the first
/// half's chunk does both, the second half's does nothing); chunks at or
/// past the rotary dim are copied when `copyRest` (out of place), else left
/// alone.
void rotateChunkAt(KernelBuilder &k, Value c, Value pos, bool inverse,
                   bool copyRest, function_ref<Value(Value)> load,
                   function_ref<void(Value, Value)> store);

} // namespace rotary
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ROTARY_H
