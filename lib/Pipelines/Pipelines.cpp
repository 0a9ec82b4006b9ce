//===- Pipelines.cpp - FlashMLIR named pipelines ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Pipelines/Pipelines.h"

#include "flashmlir/Conversion/Passes.h"
#include "flashmlir/Dialect/Attn/Transforms/Passes.h"
#include "flashmlir/runtime/Limits.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Async/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"

using namespace mlir;

std::string
flashmlir::validateCpuPipelineOptions(const CpuPipelineOptions &options) {
  namespace lim = limits;
  for (const std::string &msg :
       {lim::checkBlock("block-m", options.blockM),
        lim::checkBlock("block-n", options.blockN),
        lim::checkVectorWidth("vector-width", options.vectorWidth)})
    if (!msg.empty())
      return msg;
  return "";
}

std::string
flashmlir::validateGpuPipelineOptions(const GpuPipelineOptions &options) {
  const std::string chip = options.chip;
  if (!limits::findGpuTarget(chip))
    return "chip = '" + chip +
           "' is not a target the GPU pipeline can emit; valid values: " +
           limits::gpuTargetList();
  const std::string features = options.features;
  if (!limits::validPtxFeature(features))
    return "features = '" + features +
           "' is not a PTX ISA version the GPU pipeline emits; valid values: " +
           limits::ptxFeatureList();
  if (options.optLevel > 3)
    return "opt-level = " + std::to_string(options.optLevel) +
           " is out of range: it must be in [0, 3]";
  const std::string format = options.format;
  if (format != "isa" && format != "bin" && format != "fatbin")
    return "format = '" + format +
           "' is not a format the GPU pipeline emits; valid values: isa "
           "(PTX), bin, fatbin";
  const std::string toolkit = options.toolkit;
  if (!toolkit.empty() && !llvm::sys::fs::is_directory(toolkit))
    return "toolkit = '" + toolkit +
           "' is not a directory (a CUDA toolkit, or empty for none)";
  if (!toolkit.empty() &&
      !llvm::sys::fs::exists(toolkit + "/nvvm/libdevice/libdevice.10.bc"))
    return "toolkit = '" + toolkit +
           "' is not a CUDA toolkit (it has no nvvm/libdevice/libdevice.10.bc)";
  return "";
}

void flashmlir::buildAttnToLoops(OpPassManager &pm,
                                 const CpuPipelineOptions &options) {
  if (options.unfused) {
    pm.addPass(attn::createAttnLowerUnfusedPass());
  } else {
    pm.addPass(attn::createAttnTileForwardPass(
        {options.blockM, options.blockN, options.vectorWidth}));
    pm.addPass(attn::createAttnTileBackwardPass(
        {options.blockM, options.blockN, options.vectorWidth}));
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void flashmlir::buildAttnCpuPipeline(OpPassManager &pm,
                                     const CpuPipelineOptions &options) {
  buildAttnToLoops(pm, options);
  // A failed allocation skips the code that needs the buffer (the runner
  // reports it) instead of writing through a null pointer.
  pm.addPass(attn::createAttnGuardAllocsPass());
  if (options.parallel) {
    // scf.parallel -> async.execute tasks over blocks of iterations (16 per
    // worker thread at 2 workers, fewer per thread with more) -> coroutines
    // and mlirAsyncRuntime* calls. The first block runs on the calling
    // thread, which then waits for the others.
    AsyncParallelForPassOptions par;
    par.asyncDispatch = false;
    par.numWorkerThreads = -1; // asked from the runtime
    par.minTaskSize = 1;
    pm.addPass(createAsyncParallelForPass(par));
    pm.addPass(createAsyncToAsyncRuntimePass());
    pm.addPass(createAsyncRuntimeRefCountingPass());
    pm.addPass(createAsyncRuntimeRefCountingOptPass());
    pm.addPass(createConvertAsyncToLLVMPass());
    pm.addPass(createCanonicalizerPass());
  }
  // Without `parallel` scf.parallel runs sequentially (SCF-to-CF lowers it
  // to nested loops).
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  FinalizeMemRefToLLVMConversionPassOptions memrefOpts;
  memrefOpts.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefOpts));
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void flashmlir::buildGpuModulesToBinary(OpPassManager &pm,
                                        const GpuPipelineOptions &options) {
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  pm.addPass(createGpuNVVMAttachTarget(target));
  OpPassManager &gpu = pm.nest<gpu::GPUModuleOp>();
  gpu.addPass(memref::createExpandStridedMetadataPass());
  gpu.addPass(createLowerAffinePass());
  gpu.addPass(createSCFToControlFlowPass());
  gpu.addPass(createConvertNVGPUToNVVMPass()); // ldmatrix, mma.sync (no-op without nvgpu ops)
  gpu.addPass(createConvertGpuOpsToNVVMOps());
  gpu.addPass(createConvertNVVMToLLVMPass()); // nvvm.inline_ptx (ex2, lg2)
  gpu.addPass(createCanonicalizerPass());
  gpu.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = options.format;
  binary.toolkitPath = options.toolkit;
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

void flashmlir::buildAttnGpuPipeline(OpPassManager &pm,
                                     const GpuPipelineOptions &options) {
  attn::ConvertAttnToGPUPassOptions convert;
  convert.tensorCores = options.tensorCores;
  convert.deterministic = options.deterministic;
  // sm_90a PTX may use wgmma: the Hopper kernels.
  convert.wgmma = options.tensorCores && options.chip == "sm_90a";
  // The chip's instructions and shared memory (validated: a Limits.h target).
  if (const flashmlir::limits::GpuTarget *t =
          flashmlir::limits::findGpuTarget(options.chip))
    convert.sm = t->sm;
  pm.addPass(attn::createConvertAttnToGPUPass(convert));
  buildGpuModulesToBinary(pm, options);
}

namespace {
/// Registers `name` with options `Options`, validated by `validate` when
/// parsed: a bad value is a pipeline parse error naming the option.
template <typename Options>
void registerValidatedPipeline(
    StringRef name, StringRef description,
    std::string (*validate)(const Options &),
    void (*build)(OpPassManager &, const Options &)) {
  std::string pipeline = name.str();
  registerPassPipeline(
      name, description,
      [=](OpPassManager &pm, StringRef optionsStr,
          function_ref<LogicalResult(const Twine &)> errorHandler) {
        Options options;
        if (failed(options.parseFromString(optionsStr)))
          return failure();
        if (std::string msg = validate(options); !msg.empty())
          return errorHandler(pipeline + ": " + msg);
        build(pm, options);
        return success();
      },
      [](function_ref<void(const detail::PassOptions &)> optHandler) {
        optHandler(Options());
      });
}
} // namespace

void flashmlir::registerPipelines() {
  registerValidatedPipeline<CpuPipelineOptions>(
      "attn-cpu-pipeline",
      "Lower attn ops to tiled (or unfused) loops and then to the LLVM "
      "dialect for the host CPU",
      validateCpuPipelineOptions, buildAttnCpuPipeline);
  registerValidatedPipeline<CpuPipelineOptions>(
      "attn-to-loops",
      "Lower attn ops to tiled (or unfused) scf/memref loops only",
      validateCpuPipelineOptions, buildAttnToLoops);
  registerValidatedPipeline<GpuPipelineOptions>(
      "attn-gpu-pipeline",
      "Convert attn ops into GPU kernels and compile them to PTX "
      "(gpu -> nvvm -> NVPTX)",
      validateGpuPipelineOptions, buildAttnGpuPipeline);
  registerValidatedPipeline<GpuPipelineOptions>(
      "attn-gpu-to-binary",
      "Compile the gpu.modules of a module to PTX (gpu -> nvvm -> NVPTX)",
      validateGpuPipelineOptions, buildGpuModulesToBinary);
}
