//===- Passes.h - FlashMLIR conversion passes -------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_CONVERSION_PASSES_H
#define FLASHMLIR_CONVERSION_PASSES_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

namespace mlir {
namespace attn {

#define GEN_PASS_REGISTRATION
#include "flashmlir/Conversion/Passes.h.inc"

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_CONVERSION_PASSES_H
