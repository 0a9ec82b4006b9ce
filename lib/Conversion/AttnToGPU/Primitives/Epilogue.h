//===- Epilogue.h - the forward's output rows -------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the end of a tensor-core forward: O = acc / l of one
// fragment row into a shared-memory O tile (which then leaves in coalesced
// 16-byte row pieces, copy::storeTile), and lse = (m + log2 l) ln 2. A row
// that saw no key gets O = 0 and lse = -inf. The split-KV forward's rows go
// to its f32 partial workspaces instead (partialRow).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_EPILOGUE_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_EPILOGUE_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace epilogue {

/// One row of a warp's m16 tile (`rowOf()`: the row in the block, query
/// `qRow`): `m` the running max (log2 units), `lPart` this lane's sum,
/// `acc` OT n8 tiles x 2 (element (n, e) at acc[4 n + e]). O goes to smem
/// tile `os` by 4-byte stores of the lane's pairs; lse by quad lane t = 0
/// for rows < Nq. `sink`: the head's attention sink in log2 units
/// (softmax::sinkLog2), joined to the row here; null: none.
void forwardRow(KernelBuilder &k, Value m, Value lPart, ArrayRef<Value> acc,
                int64_t OT, function_ref<Value()> rowOf, Value qRow, Value t,
                Value os, Value bi, Value h, Value nq, Value sink);

/// Emits `rows(sink)` twice under a uniform branch: with the head's sink
/// (softmax::sinkLog2's value) when the kernel's `sinks` buffer is non-empty,
/// and with none (null) otherwise, so that a call without sinks runs the
/// epilogue it ran before sinks existed (a shared one, with the sink a
/// run-time value, spilled 24-28 bytes in the mma.sync forward at D = 64;
/// ptxas 13.0).
void withSinkOrNot(KernelBuilder &k, Value h,
                   function_ref<void(Value sink)> rows);

/// The split-KV forward's partial of one fragment row (same `m`, `lPart`,
/// `acc` as forwardRow): O / l as f32 pairs (8-byte stores of the lane's
/// columns < realDv) to buffer `oacc` from element `oRow`, and the range's
/// lse to lseacc[`lseAt`] by quad lane t = 0; only where `valid` (after the
/// quad's row sum, which every lane takes part in). A row that saw no key
/// of its range gets O = 0 and lse = -inf.
void partialRow(KernelBuilder &k, Value m, Value lPart, ArrayRef<Value> acc,
                int64_t OT, int64_t realDv, Value t, Value valid, Value oRow,
                Value lseAt);

} // namespace epilogue
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_EPILOGUE_H
