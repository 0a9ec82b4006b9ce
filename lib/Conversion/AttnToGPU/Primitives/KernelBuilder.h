//===- KernelBuilder.h - the state every kernel body is built on -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: what every kernel body needs before any primitive:
// its arguments by ABI name, thread / block ids and the mma lane values,
// views of the dynamic shared memory, and element addressing of the strided
// global tensors. The primitives (files beside this one) and the kernels
// (Kernels/) take a KernelBuilder and emit at its insertion point.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_KERNELBUILDER_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_KERNELBUILDER_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"
#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/StringMap.h"

namespace mlir {
namespace attn {

inline constexpr int64_t kWarp = 32;
inline constexpr double kLog2e = 1.4426950408889634;
inline constexpr double kLn2 = 0.6931471805599453;

/// Thread-id derived values: lane = 4 g + t (the mma fragment coordinates);
/// l8 = lane % 8, l8b = lane / 8 % 2, l16 = lane / 16 select the ldmatrix
/// row address each lane supplies.
struct LaneIds {
  Value tid, warp, lane, g, t, l8, l8b, l16;
};

/// The builder state of one kernel body.
class KernelBuilder {
public:
  /// `threads`: threads of the block (tile copies are spread over them).
  KernelBuilder(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                const GpuKernelInfo &info, const GpuKernelSpec &spec,
                int64_t threads);

  /// The kernel argument `name` of the ABI.
  Value arg(StringRef name);
  Value i32(int64_t v);
  Value rem(Value a, int64_t c);
  Value div(Value a, int64_t c);

  Value tid();
  Value bid(gpu::Dimension d);
  void barrier();
  LaneIds laneIds(Value tid);

  Attribute workgroup();
  /// The dynamic shared-memory base (an i8 memref), created on first use.
  Value smemBase();
  /// A view of `shape` x `type` (default: the element type) at `offset`
  /// bytes into dynamic shared memory (+ smemShift when set).
  Value smem(int64_t offset, ArrayRef<int64_t> shape, Type type = {});

  /// Element index of [bi, h, n, d] in buffer `t` (strides from the ABI;
  /// `d` null: the row's first element).
  Value at4(StringRef t, Value bi, Value h, Value n, Value d);
  /// Element index of lse[bi, h, n].
  Value atLse(Value bi, Value h, Value n);
  /// The backward's f32 workspaces (KernelAbi.h): the index of row (bi, h,
  /// n) of dr_ws, and the first row of (bi, h) in dqacc_ws (in rows of the
  /// head dim; its 16-row groups start there). Dense: [B, Hq, Nq] and [B,
  /// Hq, Nq rounded up to 16]; varlen: packed (abi::varlenDqaccRows).
  Value drRow(Value bi, Value h, Value n);
  Value dqaccRowBase(Value bi, Value h);

  /// The row-addressing policy of the variable-length form (spec.varlen):
  /// called once the block's sequence `bi` is known, it loads the
  /// sequence's first rows and lengths from `cu_seqlens_q` / `cu_seqlens_k`.
  /// From then on arg("seqlen_q") / arg("seqlen_k") are the sequence's own
  /// lengths, and at4 / atLse address row n of the sequence in the packed
  /// tensors (q, o, do, dq from its first query row; k, v, dk, dv from its
  /// first key row; lse [Hq, Tq]; the backward's workspaces, drRow and
  /// dqaccRowBase); `bi` is ignored there except by dqaccRowBase. A no-op
  /// for dense kernels. Kernels without `cu_seqlens_k` (the backward's row
  /// kernels) get the query side only.
  void beginSequence(Value bi);
  /// Ends the kernel for the threads where `cond` (uniform over the block)
  /// is false: a conditional branch to a `gpu.return` block; the rest of the
  /// body is built in the block it branches to otherwise. Only at the
  /// function's top level.
  void exitUnless(Value cond);
  /// The KV-cache row policy of the split-KV forward (abi::kKvDense /
  /// kKvCacheLens / kKvPaged by the `kv_mode` argument): called once the
  /// block's sequence `bi` is known; arg("seqlen_k") is then the sequence's
  /// cache length (kv_mode >= 1), and at4("k" / "v", bi, h, n, d) reads key
  /// n through the block table (kv_mode 2).
  void beginCache(Value bi);
  Value kvMode, cacheBi;
  /// The packed-GQA row policy of the split-KV forward (kernels that take
  /// every query head of a GQA group against each K / V tile they load):
  /// from then on at4("q", bi, h, n, d) reads `h` as the KV head and `n` as
  /// a packed row, query n / group of head h group + n % group.
  void packGqaRows(Value group) { packGroup = group; }
  /// The GQA group size while packGqaRows is on (null otherwise).
  Value packGroup;
  /// The sequence's first query / key row (null when dense).
  Value seqQ0, seqK0;
  /// The sequence's lengths (null when dense).
  Value seqNq, seqNk;

  ImplicitLocOpBuilder &b;
  detail::Codegen cg;
  const GpuKernelSpec &spec;
  Type et;         ///< the element type
  int64_t threads; ///< threads of the block
  llvm::StringMap<Value> args;
  Value dynBase;
  /// Bytes added to every smem() offset (null: none): a kernel that needs a
  /// more aligned base than the dynamic shared memory's guaranteed 16 bytes
  /// sets it (wgmma::alignSmem).
  Value smemShift;
};

/// `x` through a side-effecting `mov`: LLVM can neither hoist it nor what is
/// computed from it out of the loop it is emitted in. A tile loop re-derives
/// its lane-dependent shared-memory addresses from such a copy of the thread
/// id; otherwise LICM hoists ~100 loop-invariant 64-bit ldmatrix/staging
/// addresses out of the loop (ldmatrix is an intrinsic: no address sinking)
/// and they stay live next to the dK/dV accumulators (spills). The copy is
/// 32-bit and zero-extended (`x` must fit in i32; it is a thread id), so
/// LLVM still knows it is non-negative: divisions and remainders by
/// constants stay shifts and masks.
Value opaqueIndex(ImplicitLocOpBuilder &b, Value x);

} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_KERNELBUILDER_H
