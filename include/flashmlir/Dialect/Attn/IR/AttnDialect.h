//===- AttnDialect.h - attn dialect -----------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_IR_ATTNDIALECT_H
#define FLASHMLIR_DIALECT_ATTN_IR_ATTNDIALECT_H

#include "mlir/IR/Dialect.h"

#include "flashmlir/Dialect/Attn/IR/AttnOpsDialect.h.inc"

#endif // FLASHMLIR_DIALECT_ATTN_IR_ATTNDIALECT_H
