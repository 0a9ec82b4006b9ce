//===- fa-opt.cpp - FlashMLIR pass driver -----------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// mlir-opt with the attn dialect, the upstream dialects FlashMLIR uses,
// every FlashMLIR pass and named pipeline, and the test passes (test/lib).
//
//===----------------------------------------------------------------------===//

#include "flashmlir/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

namespace flashmlir::test {
void registerTestAttnGPUPrimitivesPass();
} // namespace flashmlir::test

int main(int argc, char **argv) {
  flashmlir::registerAllPasses();
  flashmlir::test::registerTestAttnGPUPrimitivesPass();
  mlir::DialectRegistry registry;
  flashmlir::registerAllDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "FlashMLIR optimizer driver\n", registry));
}
