//===- AttnToGPU.h - attn to gpu kernels ------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The GPU kernels of attention, as gpu.func builders, and the description of
// each kernel's ABI (arguments, block, grid, shared memory) that the bundle
// manifest records and the runtime follows.
//
// Kernel ABI (the argument lists, entry names, grid dimensions and
// workspaces, shared with the runtime): flashmlir/runtime/KernelAbi.h. Every
// buffer argument is a 1-D `memref<?xT, strided<[1], offset: ?>>`, which the
// NVVM lowering expands into five parameters (allocated ptr, aligned ptr,
// offset, size, stride); every scalar is an `index` (i64) or f32.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_CONVERSION_ATTNTOGPU_ATTNTOGPU_H
#define FLASHMLIR_CONVERSION_ATTNTOGPU_ATTNTOGPU_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Pass/Pass.h"

#include "flashmlir/runtime/KernelAbi.h"

#include <string>

namespace mlir {
namespace attn {

#define GEN_PASS_DECL_CONVERTATTNTOGPUPASS
#include "flashmlir/Conversion/Passes.h.inc"

/// What a kernel is specialised on.
struct GpuKernelSpec {
  Type elementType;     ///< f16, bf16 or f32
  int64_t headDim = 0;  ///< D
  int64_t headDimV = 0; ///< Dv
  bool masked = false;  ///< causal or window (bounds are run-time scalars)
  bool softcap = false; ///< softcap (value is a run-time scalar)
  /// Use the tensor-core (mma.sync sm_80+, wgmma sm_90a) kernels where they
  /// support the spec (f16/bf16; KernelSelect.cpp); same entry and arguments
  /// as the SIMT kernels, their own block/grid divisor/smem.
  bool tensorCores = true;
  /// Tensor-core forward: K/V tiles through cp.async (K_{j+1} and V_j in
  /// flight under the math) instead of synchronous 16-byte loads.
  bool mmaAsyncCopy = true;
  /// Tensor-core forward tile shape: warps per block (4 or 8) and query rows
  /// per warp (16 or 32); 0 = chosen by the kernel's tile model
  /// (docs/tensor-cores.md).
  int64_t mmaWarps = 0;
  int64_t mmaWarpRows = 0;
  int64_t mmaBlockN = 0; ///< keys per tile (32 or 64); 0 = tile model
  /// Bit-reproducible dQ: attn_bwd_main computes only dK / dV (no atomics,
  /// no dqacc_ws) and the BackwardPost kernel (`attn_bwd_dq`) computes dQ
  /// query-parallel, each row's sum in a fixed order; attn_bwd_pre only
  /// writes dr_ws.
  bool deterministic = false;
  /// Hopper: `attn_fwd` and `attn_bwd_main` on wgmma.mma_async
  /// (FlashAttention-3 style, Kernels/WgmmaForward.cpp, MmaBackward.cpp)
  /// where they support the spec. The PTX then needs sm_90a; set only for
  /// sm_90a targets.
  bool wgmma = false;
  /// Compute capability the kernel is built for (80, 90, ...), for the tile
  /// model; 0 = unknown (tuned for sm_90).
  int64_t smVersion = 0;
  /// Tensor-core softcap: tanh.approx.f32 (FlashAttention-2's choice) or, if
  /// false, a tanh from ex2 and rcp (absolute error ~1e-7, one more MUFU op
  /// per score).
  bool fastTanh = true;
  /// Variable-length (packed) batches: the kernels read each sequence's row
  /// offsets from the `cu_seqlens_q` / `cu_seqlens_k` buffers (grid z = the
  /// sequences, x = query blocks of `max_seqlen_q`, passed as `seqlen_q`)
  /// and address q/k/v/o/lse rows from them (KernelBuilder::beginSequence).
  /// Forward and backward (not the deterministic backward).
  bool varlen = false;
  /// ALiBi: the score kernels take `alibi_slopes` / `alibi_stride_b`
  /// (abi::Variant::alibi) and add -slope |i + Nk - Nq - j| to each score
  /// (Primitives/Score.h).
  bool alibi = false;
  /// Fused RoPE: the score kernels rotate Q and K tiles in shared memory
  /// (rotary tables, dim and convention are kernel arguments,
  /// abi::Variant::rotary; Primitives/Rotary.h); the backward rotates dQ and
  /// dK back.
  bool rotary = false;
};

/// The kernel kinds of the ABI. The launch order of the backward is BwdPre,
/// BwdMain, BwdPost; BwdPost converts dqacc_ws to dq, or (deterministic)
/// computes dq itself.
using GpuKernelKind = flashmlir::abi::Kind;

/// One kernel argument as the runtime sees it.
struct GpuKernelArg {
  std::string name;
  std::string kind; ///< "buffer", "i64" or "f32"
};

/// A grid dimension: ceil(value of `dim` / `div`).
struct GpuGridDim {
  std::string dim; ///< batch, heads, kv_heads, seqlen_q or seqlen_k
  int64_t div = 1;
};

/// Everything the runtime needs to launch a kernel.
struct GpuKernelInfo {
  std::string entry;
  std::string kind; ///< fwd, bwd_pre, bwd_main, bwd_post, fwd_split, ...
  SmallVector<GpuKernelArg> args;
  int64_t block[3] = {1, 1, 1};
  GpuGridDim grid[3];
  int64_t dynamicSharedMemory = 0;
  int64_t blockM = 0, blockN = 0; ///< tile sizes (query rows, key rows)
};

/// The ABI of one kernel (no IR is built).
GpuKernelInfo getGpuKernelInfo(GpuKernelKind kind, const GpuKernelSpec &spec);

/// True when `kind` is built as the tensor-core (mma.sync) variant for
/// `spec`: spec.tensorCores is set and the variant supports the spec.
bool usesTensorCores(GpuKernelKind kind, const GpuKernelSpec &spec);

/// True when `kind` is built as the Hopper (wgmma, sm_90a) variant for
/// `spec` (spec.wgmma is set and the variant supports the spec).
bool usesWgmma(GpuKernelKind kind, const GpuKernelSpec &spec);

/// True when `spec` has the split-KV forward (GpuKernelKind::FwdSplit and
/// FwdCombine: f16 / bf16 tensor-core configurations, not varlen so far).
bool hasSplitForward(const GpuKernelSpec &spec);

/// Why kernel `kind` of a RoPE spec (spec.rotary) cannot be built ("" when
/// it can, and for specs without RoPE): the rotation is in the tensor-core
/// kernels only, not in the deterministic dQ kernel nor the varlen form.
std::string rotaryUnsupported(GpuKernelKind kind, const GpuKernelSpec &spec);

/// The most dynamic shared memory one block may use on compute capability
/// `smVersion` (80, 86, 87, 89, 90: flashmlir/runtime/Limits.h); for 0 (an
/// unknown target) or any other value, the largest any target allows.
int64_t gpuSmemLimit(int64_t smVersion);

/// Builds the kernel into `module` (which must contain no symbol of the same
/// name) and returns it. Also declares the module's dynamic shared-memory
/// base once.
gpu::GPUFuncOp buildGpuKernel(OpBuilder &builder, gpu::GPUModuleOp module,
                              GpuKernelKind kind, const GpuKernelSpec &spec);

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_CONVERSION_ATTNTOGPU_ATTNTOGPU_H
