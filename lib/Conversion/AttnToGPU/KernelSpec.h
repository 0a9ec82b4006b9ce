//===- KernelSpec.h - what a kernel computes and how ------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU. A kernel is built from two descriptions:
//  * the *problem* (GpuKernelSpec, AttnToGPU.h): element type, head dims D
//    and Dv, mask, score function (softcap), dQ strategy, plus the user's
//    requests (engines allowed, tile overrides, target);
//  * the *schedule* (KernelSchedule, below): the engine (SIMT, mma.sync,
//    wgmma), threads, tiles, staging, shared-memory layout and size.
// selectSchedule (KernelSelect.cpp) is the one capability and tile-model
// table that maps the first to the second for each kernel kind; the kernels
// (Kernels/) and the ABI description (KernelInfo.cpp) only read the result.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELSPEC_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELSPEC_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

namespace mlir {
namespace attn {

/// The instruction family a kernel computes its products with.
enum class Engine {
  Simt,    ///< FP32 FMA, any dtype and head dim
  MmaSync, ///< mma.sync m16n8k16 (sm_80+), f16 / bf16
  Wgmma,   ///< wgmma.mma_async (sm_90a), f16 / bf16
};

/// How one kernel is scheduled. Fields that do not apply to a kind keep
/// their defaults.
struct KernelSchedule {
  Engine engine = Engine::Simt;
  int64_t threads = 0; ///< threads per block
  /// Tile sizes: the block's query rows and the keys per tile (forward, dQ
  /// kernels); the keys per block and query rows per tile (backward main).
  int64_t blockM = 0, blockN = 0;
  /// grid.x = ceil(grid size / gridDiv) (query rows, keys or rows per block).
  int64_t gridDiv = 1;
  int64_t smemBytes = 0; ///< dynamic shared memory

  /// The head dims the tensor-core kernels compute with: D and Dv rounded up
  /// to the MMA shape (16; 32 in the backward, whose dQ and column-split
  /// stages halve them). The padding columns are zero in the Q / K / V / dO
  /// tiles and never written out.
  int64_t dk = 0, dvk = 0;
  /// Softcap through tanh.approx.f32 (else ex2 + rcp: Primitives/Score.h).
  bool fastTanh = true;

  // Tensor-core staging and tiles.
  /// XOR-swizzled shared-memory tiles (16-byte chunk c of row r at c ^ (r %
  /// 8)); otherwise rows padded by 8 elements.
  bool swizzle = false;
  /// cp.async staging of the forward's K / V tiles (else synchronous loads).
  bool asyncCopy = true;
  /// RoPE, wgmma kernels: the cos / sin rows of each K (forward, D <= 64)
  /// or Q (backward) tile are staged in shared memory by cp.async with the
  /// tile (rotary::stageTables), where they fit; else the rotation reads
  /// them from the tables in global memory (KernelSelect.cpp: measured).
  bool stagedRotary = false;
  /// m16 row tiles per warp (mma.sync forward).
  int64_t warpTiles = 1;
  /// The A fragments of the block's query rows (Q; dO too in the dQ kernel)
  /// stay in registers over the key loop (else re-read by ldmatrix).
  bool qInRegisters = false;

  // Backward main kernel.
  /// Warps sharing a key group, each owning D / colSplit dK / dV columns.
  int64_t colSplit = 1;
  /// Queries per S^T / dP^T pass.
  int64_t passQueries = 64;
  /// The K / V A fragments of a warp's keys stay in registers.
  bool residentKV = false;
  /// Q / dO / lse / dr buffers: 2 (the next tile's copies issued under this
  /// one's math) or 1 (no cp.async, sm_75: each tile staged after a
  /// barrier; the second buffer would buy nothing).
  int64_t stages = 2;
  /// dqacc_ws in mma fragment order (and dQ accumulated unscaled:
  /// BwdPost scales it), see fragmentOrderDqAcc in KernelSelect.cpp.
  bool fragmentOrderDqAcc = false;

  // Row kernels (bwd_pre / bwd_post): lanes per query row.
  int64_t rowLanes = 1;

  bool tensorCores() const { return engine != Engine::Simt; }
  /// Warps of the block.
  int64_t warps() const { return threads / 32; }
};

/// The one capability and tile-model table: the schedule kernel `kind` of
/// `spec` is built with (docs/tensor-cores.md has the measurements behind
/// each choice).
KernelSchedule selectSchedule(GpuKernelKind kind, const GpuKernelSpec &spec);

/// The ABI variant (argument lists, entry names) of `spec`'s kernels.
flashmlir::abi::Variant abiVariant(const GpuKernelSpec &spec);

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELSPEC_H
