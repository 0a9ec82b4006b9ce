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
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("f32 lanes per vector of the tiled lowerings (16: "
                     "AVX-512, 8: AVX2, 4: SSE/NEON)"),
      llvm::cl::init(8)};
  Option<bool> parallel{
      *this, "parallel",
      llvm::cl::desc("Run scf.parallel loops on worker threads (MLIR's async "
                     "lowering; the host needs the mlirAsyncRuntime* "
                     "functions, which the CPU runner provides)"),
      llvm::cl::init(true)};
};

/// Checks the options against flashmlir/runtime/Limits.h (block sizes,
/// vector width). Returns "" when they are valid, else a message naming the
/// option, its value and the valid range. The registered pipeline runs it
/// when its options are parsed; C++ callers run it before build*.
std::string validateCpuPipelineOptions(const CpuPipelineOptions &options);

/// attn ops on memrefs -> loops (tiled or unfused) -> every allocation
/// guarded against failure (attn-guard-allocs) -> the LLVM dialect for the
/// host. With `parallel`, every scf.parallel becomes async tasks
/// (async-parallel-for, blocks of iterations sized from the run-time worker
/// count) lowered to calls of MLIR's async runtime API (mlirAsyncRuntime*);
/// the CPU runner implements it with its own thread pool.
/// Functions marked `llvm.emit_c_interface` keep their C wrappers;
/// memref.alloc/dealloc become calls of `_mlir_memref_to_llvm_alloc`,
/// `_mlir_memref_to_llvm_aligned_alloc` and `_mlir_memref_to_llvm_free`, so a
/// runner can account for the memory the attention allocates.
void buildAttnCpuPipeline(mlir::OpPassManager &pm,
                          const CpuPipelineOptions &options);

/// Only the attn part of the CPU pipeline: attn ops -> scf/memref/arith/math.
void buildAttnToLoops(mlir::OpPassManager &pm,
                      const CpuPipelineOptions &options);

/// Options of `attn-gpu-pipeline`.
struct GpuPipelineOptions
    : public mlir::PassPipelineOptions<GpuPipelineOptions> {
  Option<bool> tensorCores{
      *this, "tensor-cores",
      llvm::cl::desc("Tensor-core (mma.sync) kernels where supported "
                     "(convert-attn-to-gpu tensor-cores)"),
      llvm::cl::init(true)};
  Option<bool> deterministic{
      *this, "deterministic",
      llvm::cl::desc("Bit-reproducible dQ: query-parallel dQ kernel, no "
                     "atomics (convert-attn-to-gpu deterministic)"),
      llvm::cl::init(false)};
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("Target GPU (sm_80, sm_90, ...; "
                                          "sm_90a: the Hopper wgmma kernels)"),
                           llvm::cl::init("sm_80")};
  Option<std::string> features{*this, "features",
                               llvm::cl::desc("PTX features"),
                               llvm::cl::init("+ptx80")};
  Option<unsigned> optLevel{*this, "opt-level",
                            llvm::cl::desc("NVPTX optimisation level"),
                            llvm::cl::init(3)};
  Option<std::string> format{*this, "format",
                             llvm::cl::desc("gpu-module-to-binary format: "
                                            "isa (PTX), bin or fatbin"),
                             llvm::cl::init("isa")};
  Option<std::string> toolkit{*this, "toolkit",
                              llvm::cl::desc("CUDA toolkit path (libdevice; "
                                             "not needed by FlashMLIR's "
                                             "kernels)"),
                              llvm::cl::init("")};
};

/// Checks the options against what the pipeline can emit: `chip` one of
/// the targets of flashmlir/runtime/Limits.h (sm_80 ... sm_90a), `features`
/// a PTX ISA version it may use, `opt-level` in [0, 3], `format` isa, bin
/// or fatbin, `toolkit` empty or an existing directory. Returns "" or the
/// message (with the valid values).
std::string validateGpuPipelineOptions(const GpuPipelineOptions &options);

/// gpu.modules (with kernels built by convert-attn-to-gpu) -> NVVM -> PTX
/// through LLVM's NVPTX backend: each gpu.module becomes a gpu.binary whose
/// object holds the PTX text. Host code is left as it is.
void buildGpuModulesToBinary(mlir::OpPassManager &pm,
                             const GpuPipelineOptions &options);

/// convert-attn-to-gpu followed by buildGpuModulesToBinary.
void buildAttnGpuPipeline(mlir::OpPassManager &pm,
                          const GpuPipelineOptions &options);

/// Registers every named pipeline with the global registry.
void registerPipelines();

} // namespace flashmlir

#endif // FLASHMLIR_PIPELINES_PIPELINES_H
