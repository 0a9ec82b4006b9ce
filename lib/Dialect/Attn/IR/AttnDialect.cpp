//===- AttnDialect.cpp - attn dialect ---------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/IR/AttnDialect.h"
#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

using namespace mlir;
using namespace mlir::attn;

#include "flashmlir/Dialect/Attn/IR/AttnOpsDialect.cpp.inc"

void AttnDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "flashmlir/Dialect/Attn/IR/AttnOps.cpp.inc"
      >();
}
