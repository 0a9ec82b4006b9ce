//===- fa-opt.cpp - FlashMLIR pass driver -----------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// mlir-opt with the attn dialect, the upstream dialects FlashMLIR uses, and
// every FlashMLIR pass and named pipeline.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  flashmlir::registerAllPasses();
  mlir::DialectRegistry registry;
  flashmlir::registerAllDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "FlashMLIR optimizer driver\n", registry));
}
