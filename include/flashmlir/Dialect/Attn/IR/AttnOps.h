//===- AttnOps.h - attn dialect ops -----------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_H
#define FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_H

#include "flashmlir/Dialect/Attn/IR/AttnDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <cstdint>

namespace mlir {
namespace attn {

/// The mask of an attention op, with `causal` folded into the window.
/// Offsets are relative to the bottom-right-aligned diagonal: with
/// `off = Nk - Nq`, query i sees key j iff
///   (left  < 0 || j >= i + off - left) && (right < 0 || j <= i + off + right).
struct MaskSpec {
  int64_t left = -1;  ///< keys before the diagonal a query sees; -1: all.
  int64_t right = -1; ///< keys after the diagonal a query sees; -1: all.

  /// Builds the spec from the op's attributes (`causal` means right = 0).
  static MaskSpec get(bool causal, std::optional<llvm::ArrayRef<int64_t>> window);
  bool isMasked() const { return left >= 0 || right >= 0; }
};

} // namespace attn
} // namespace mlir

#define GET_OP_CLASSES
#include "flashmlir/Dialect/Attn/IR/AttnOps.h.inc"

#endif // FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_H
