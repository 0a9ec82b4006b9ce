//===- Kernels.h - the kernel bodies ----------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: every kernel body, composed from the primitives
// (../Primitives) for the schedule selectSchedule chose (../KernelSpec.h).
// Each emits at the builder's insertion point of a gpu.func whose arguments
// are the ABI's (flashmlir/runtime/KernelAbi.h); each *Smem function is the
// dynamic shared memory of its kernel for a schedule.
//
//   kind       SIMT               mma.sync (sm_80+)   wgmma (sm_90a)
//   fwd        SimtForward.cpp    MmaForward.cpp      WgmmaForward.cpp
//   bwd_pre    RowKernels.cpp (every engine)
//   bwd_main   SimtBackward.cpp   MmaBackward.cpp (both engines)
//   bwd_post   RowKernels.cpp; deterministic: SimtDq.cpp / MmaDq.cpp
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_KERNELS_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_KERNELS_H

#include "../KernelSpec.h"
#include "../Primitives/KernelBuilder.h"

namespace mlir {
namespace attn {
namespace kernels {

void buildSimtForward(KernelBuilder &k);
void buildSimtBackward(KernelBuilder &k);
void buildSimtDq(KernelBuilder &k);
void buildRowKernel(KernelBuilder &k, GpuKernelKind kind,
                    const KernelSchedule &sch);

void buildMmaForward(KernelBuilder &k, const KernelSchedule &sch);
/// The split-KV forward (flash-decoding): buildMmaForward's body with the
/// packed-GQA row policy, block (split s, KV head, sequence) over key range
/// s of num_splits, partials to oacc_ws / lseacc_ws (MmaForward.cpp).
void buildMmaForwardSplit(KernelBuilder &k, const KernelSchedule &sch);
/// fwd_combine: each row's partials merged by their lse (one warp per row).
void buildSplitCombine(KernelBuilder &k, const KernelSchedule &sch);
int64_t mmaForwardSmem(const GpuKernelSpec &s, const KernelSchedule &sch);
void buildMmaBackward(KernelBuilder &k, const KernelSchedule &sch);
int64_t mmaBackwardSmem(const GpuKernelSpec &s, const KernelSchedule &sch);
void buildMmaDq(KernelBuilder &k, const KernelSchedule &sch);
int64_t mmaDqSmem(const GpuKernelSpec &s, const KernelSchedule &sch);

void buildWgmmaForward(KernelBuilder &k, const KernelSchedule &sch);
int64_t wgmmaForwardSmem(const GpuKernelSpec &s, const KernelSchedule &sch);

} // namespace kernels
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_KERNELS_H
