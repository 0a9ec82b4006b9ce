//===- AttnGPUKernelsMMABwd.h - tensor-core backward kernel -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the mma.sync (sm_80+) backward main kernel, used
// instead of the SIMT `attn_bwd_main` when GpuKernelSpec::tensorCores is set
// and the spec is supported (f16/bf16, D = Dv = 64 or 128, or 256 except
// on sm_80; no softcap).
// Same ABI (arguments, grid dims: seqlen_k blocks x kv_heads x batch) as the
// SIMT kernel; its own block size (8 warps), key block (128; 64 at D = 256)
// and shared memory.
// attn_bwd_pre / attn_bwd_post stay SIMT (same dr_ws / dqacc_ws workspaces).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMABWD_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMABWD_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace mma {

/// Query rows per tile and warps per block of the backward main kernel.
constexpr int64_t kBwdBlockM = 64;
constexpr int64_t kBwdWarps = 8;

/// Keys per block: 16 per warp (128); D = 256 (column split): 16 per warp
/// pair (64).
int64_t backwardBlockN(const GpuKernelSpec &spec);

/// True when the tensor-core backward main kernel serves `spec`.
bool supportsBackward(const GpuKernelSpec &spec);

/// True when `spec`'s dQ accumulator (dqacc_ws) is in fragment order: the
/// tensor-core bwd_main adds its mma.sync dQ fragments so that a warp's 32
/// lanes hit 32 consecutive floats (4 full sectors per atomic instruction
/// instead of 8 half-used ones); bwd_pre / bwd_post follow. Within every
/// 16-row group of a (batch, head), n8 column tile n holds 128 floats:
///   dqacc[(rowBase16 + 16 G) D + 128 n + 32 (2 r + e) + 4 g + t]
///     = dQ[row 16 G + 8 r + g][col 8 n + 2 t + e]
/// with rowBase16 = (b Hq + h) * roundUp(Nq, 16) (the workspace has Nq
/// rounded up to 16 rows per head; otherwise rows are [B, Hq, Nq, D]).
bool fragmentOrderDqAcc(const GpuKernelSpec &spec);

/// True when the backward main kernel computes its products with wgmma
/// (sm_90a: spec.wgmma, D = Dv = 64 or 128, atomic dQ): same structure,
/// tiles and register fragments as the mma.sync kernel.
bool backwardWgmma(const GpuKernelSpec &spec);

/// Dynamic shared memory in bytes of the backward main kernel.
int64_t backwardSharedMemory(const GpuKernelSpec &spec);

/// Emits the backward main body into `func` (arguments laid out as
/// `info.args`).
void buildBackwardMainBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                           const GpuKernelInfo &info,
                           const GpuKernelSpec &spec);

} // namespace mma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_ATTNGPUKERNELSMMABWD_H
