//===- AttnGPUKernelsMMA.h - tensor-core forward kernel ---------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the mma.sync (sm_80+) forward kernel, used instead of
// the SIMT `attn_fwd` when GpuKernelSpec::tensorCores is set and the spec is
// supported (f16/bf16, D = Dv = 64 or 128, no softcap).
// Same ABI (arguments, grid dims) as the SIMT kernel; its own block size,
// tile sizes and shared memory.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMA_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMA_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace mma {

/// Keys per tile of the backward kernel.
constexpr int64_t kBlockN = 64;

/// Keys per tile of the forward kernel (32 or 64).
int64_t forwardBlockN(const GpuKernelSpec &spec);

/// True when the forward kernel's Q / K / V tiles are XOR-swizzled
/// (MmaGen::swizzleCol) rather than padded.
bool forwardSwizzle(const GpuKernelSpec &spec);

/// Warps per block of the forward kernel (4 or 8), m16 row tiles per warp
/// (1 or 2), and the block's query rows.
int64_t forwardWarps(const GpuKernelSpec &spec);
int64_t forwardWarpTiles(const GpuKernelSpec &spec);
inline int64_t forwardBlockM(const GpuKernelSpec &spec) {
  return 16 * forwardWarpTiles(spec) * forwardWarps(spec);
}

/// True when the tensor-core forward kernel serves `spec`.
bool supportsForward(const GpuKernelSpec &spec);

/// Dynamic shared memory in bytes of the forward kernel.
int64_t forwardSharedMemory(const GpuKernelSpec &spec);

/// Emits the forward body into `func` (arguments laid out as `info.args`).
void buildForwardBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                      const GpuKernelInfo &info, const GpuKernelSpec &spec);

} // namespace mma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMA_H
