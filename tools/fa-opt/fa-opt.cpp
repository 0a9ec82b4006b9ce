//===- fa-opt.cpp - FlashMLIR pass driver -----------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// mlir-opt with the attn dialect, the upstream dialects FlashMLIR uses,
// every FlashMLIR pass and named pipeline, and the test passes (test/lib).
//
// One difference from mlir-opt: an error diagnostic makes the run fail even
// when the pass that emitted it did not signal failure (some upstream
// passes, e.g. gpu-module-to-binary on a bad toolkit, report an error and
// carry on, and mlir-opt then exits 0). fa-opt appends a check to the
// pipeline that fails when any error was reported, so every error exits
// non-zero. (Not under --verify-diagnostics, where errors are expected.)
// And input that MLIR 22's parser is known to crash on is refused with an
// error first (flashmlir/Support/InputChecks.h).
//
//===----------------------------------------------------------------------===//

#include "flashmlir/InitAll.h"
#include "flashmlir/Support/InputChecks.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <atomic>
#include <memory>

using namespace mlir;

namespace {

/// Fails when an error diagnostic was reported earlier in the run.
struct FailOnReportedErrorPass final
    : PassWrapper<FailOnReportedErrorPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(FailOnReportedErrorPass)

  explicit FailOnReportedErrorPass(std::shared_ptr<std::atomic<bool>> seen)
      : seen(std::move(seen)) {}

  StringRef getArgument() const final { return "fa-opt-fail-on-error"; }
  StringRef getDescription() const final {
    return "Fail when an earlier pass reported an error without failing";
  }

  void runOnOperation() final {
    if (!seen->load())
      return;
    getOperation()->emitError(
        "fa-opt: a pass reported an error (above) without failing; treating "
        "the run as failed");
    signalPassFailure();
  }

  std::shared_ptr<std::atomic<bool>> seen;
};

} // namespace

namespace flashmlir::test {
void registerTestAttnGPUPrimitivesPass();
} // namespace flashmlir::test

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  flashmlir::registerAllPasses();
  flashmlir::test::registerTestAttnGPUPrimitivesPass();
  DialectRegistry registry;
  flashmlir::registerAllDialects(registry);

  auto [inputFilename, outputFilename] =
      registerAndParseCLIOptions(argc, argv, "FlashMLIR optimizer driver\n",
                                 registry);
  MlirOptMainConfig config = MlirOptMainConfig::createFromCLOptions();
  if (config.shouldShowDialects() || config.shouldListPasses())
    return asMainReturnCode(
        MlirOptMain(argc, argv, inputFilename, outputFilename, registry));

  if (!config.shouldVerifyDiagnostics()) {
    MlirOptMainConfig inner = config;
    config.setPassPipelineSetupFn([inner](PassManager &pm) -> LogicalResult {
      if (failed(inner.setupPassPipeline(pm)))
        return failure();
      auto seen = std::make_shared<std::atomic<bool>>(false);
      // Registered after fa-opt's own printer, so called first: note the
      // error and pass it on.
      pm.getContext()->getDiagEngine().registerHandler([seen](Diagnostic &d) {
        if (d.getSeverity() == DiagnosticSeverity::Error)
          seen->store(true);
        return failure();
      });
      pm.addPass(std::make_unique<FailOnReportedErrorPass>(seen));
      return success();
    });
  }

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> file =
      openInputFile(inputFilename, &errorMessage);
  if (!file) {
    llvm::errs() << errorMessage << "\n";
    return EXIT_FAILURE;
  }
  // Input the MLIR parser would crash on (InputChecks.h).
  if (std::string msg = flashmlir::checkParserHazards(
          file->getBuffer(), inputFilename == "-" ? "<stdin>" : inputFilename);
      !msg.empty()) {
    llvm::errs() << msg << "\n";
    return EXIT_FAILURE;
  }
  std::unique_ptr<llvm::ToolOutputFile> output =
      openOutputFile(outputFilename, &errorMessage);
  if (!output) {
    llvm::errs() << errorMessage << "\n";
    return EXIT_FAILURE;
  }
  if (failed(MlirOptMain(output->os(), std::move(file), registry, config)))
    return EXIT_FAILURE;
  output->keep();
  return EXIT_SUCCESS;
}
