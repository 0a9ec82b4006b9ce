//===- AttnGPUKernelsMMADq.h - tensor-core deterministic dQ -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the mma.sync (sm_80+) dQ kernel of the deterministic
// backward (`attn_bwd_dq`, launched in the place of attn_bwd_post), used
// instead of the SIMT one when GpuKernelSpec::tensorCores and
// ::deterministic are set and the spec is supported (f16/bf16, D = Dv = 64
// or 128, no softcap). Same ABI as the SIMT kernel (grid: query tiles x
// heads x batch); its own block, query tile, key tile and shared memory.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMADQ_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMADQ_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace mma {

/// True when the tensor-core dQ kernel serves `spec`.
bool supportsDq(const GpuKernelSpec &spec);

/// Warps per block, query rows per block (16 per warp) and keys per tile of
/// the dQ kernel.
int64_t dqWarps(const GpuKernelSpec &spec);
int64_t dqBlockM(const GpuKernelSpec &spec);
int64_t dqBlockN(const GpuKernelSpec &spec);

/// Dynamic shared memory in bytes of the dQ kernel.
int64_t dqSharedMemory(const GpuKernelSpec &spec);

/// Emits the dQ body into `func` (arguments laid out as `info.args`).
void buildDqBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                 const GpuKernelInfo &info, const GpuKernelSpec &spec);

} // namespace mma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMADQ_H
