//===- embed-opt.cpp - a downstream *-opt with FlashMLIR inside -----------===//
//
// A compiler's own driver: its dialects (here only upstream ones) plus
// FlashMLIR's, through the package's single registration point.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  flashmlir::registerAllDialects(registry);
  flashmlir::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "embed-opt: FlashMLIR embedded\n", registry));
}
