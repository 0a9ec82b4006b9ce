//===- Pipelines.h - FlashMLIR named pipelines ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Named pipelines: option structs, `build*` functions (used by the tools, the
// C API and tests) and one registration function (for fa-opt).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_PIPELINES_PIPELINES_H
#define FLASHMLIR_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
} // namespace mlir

namespace flashmlir {

/// Options of `attn-cpu-pipeline`.
struct CpuPipelineOptions
    : public mlir::PassPipelineOptions<CpuPipelineOptions> {
  Option<bool> unfused{*this, "unfused",
                       llvm::cl::desc("Use the unfused reference lowering "
                                      "(full score matrices) instead of the "
                                      "tiled one"),
                       llvm::cl::init(false)};
  Option<int64_t> blockM{*this, "block-m",
                         llvm::cl::desc("Query rows per block"),
                         llvm::cl::init(64)};
  Option<int64_t> blockN{*this, "block-n",
                         llvm::cl::desc("Key rows per block"),
                         llvm::cl::init(64)};
};

/// attn ops on memrefs -> loops (tiled or unfused) -> the LLVM dialect for the
/// host. Functions marked `llvm.emit_c_interface` keep their C wrappers;
/// memref.alloc/dealloc become calls of `_mlir_memref_to_llvm_alloc`,
/// `_mlir_memref_to_llvm_aligned_alloc` and `_mlir_memref_to_llvm_free`, so a
/// runner can account for the memory the attention allocates.
void buildAttnCpuPipeline(mlir::OpPassManager &pm,
                          const CpuPipelineOptions &options);

/// Only the attn part of the CPU pipeline: attn ops -> scf/memref/arith/math.
void buildAttnToLoops(mlir::OpPassManager &pm,
                      const CpuPipelineOptions &options);

/// Registers every named pipeline with the global registry.
void registerPipelines();

} // namespace flashmlir

#endif // FLASHMLIR_PIPELINES_PIPELINES_H
