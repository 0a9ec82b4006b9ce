//===- AttnGPUKernelsWgmma.h - Hopper (sm_90a) forward kernel ---*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the wgmma.mma_async forward kernel for sm_90a, used
// instead of the mma.sync one when GpuKernelSpec::wgmma is set and the spec
// is supported. Same ABI (arguments, grid dims) as the other forward
// kernels; its own block size, tile sizes and shared memory.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSWGMMA_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSWGMMA_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace wgmma {

/// True when the wgmma forward kernel serves `spec` (spec.wgmma, f16/bf16,
/// D = Dv = 64, 128 or 256, no softcap).
bool supportsForward(const GpuKernelSpec &spec);

/// Warpgroups (128 threads, 64 query rows each) per block, the block's
/// query rows and keys per tile.
int64_t forwardWarpGroups(const GpuKernelSpec &spec);
inline int64_t forwardBlockM(const GpuKernelSpec &spec) {
  return 64 * forwardWarpGroups(spec);
}
int64_t forwardBlockN(const GpuKernelSpec &spec);

/// Dynamic shared memory in bytes.
int64_t forwardSharedMemory(const GpuKernelSpec &spec);

/// Emits the forward body into `func` (arguments laid out as `info.args`).
void buildForwardBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                      const GpuKernelInfo &info, const GpuKernelSpec &spec);

} // namespace wgmma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSWGMMA_H
