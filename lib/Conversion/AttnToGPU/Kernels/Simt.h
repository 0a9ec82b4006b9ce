//===- Simt.h - the SIMT kernels' geometry and helpers ----------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: what the SIMT (FP32 FMA) kernels share: their fixed
// geometry, shared-memory layouts, warp collectives, 16-byte tile loads and
// the scalar mask and score. They serve every configuration the tensor-core
// kernels do not (f32, and what KernelSelect.cpp does not give to them).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_SIMT_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_SIMT_H

#include "../KernelSpec.h"
#include "../Primitives/KernelBuilder.h"

namespace mlir {
namespace attn {
namespace simt {

// Kernel geometry. Forward and dQ: 4 warps x 8 rows = 32 query rows per
// block, 32 keys per tile. Backward main: one warp per 32-key block.
inline constexpr int64_t kFwdWarps = 4;
inline constexpr int64_t kFwdRowsPerWarp = 8;
inline constexpr int64_t kFwdBlockM = kFwdWarps * kFwdRowsPerWarp;
inline constexpr int64_t kBlockN = kWarp;
inline constexpr int64_t kRowThreads = 128; // bwd_pre / bwd_post

inline int64_t elementBytes(Type t) { return t.getIntOrFloatBitWidth() / 8; }

/// Padding of the transposed [D][32] tiles so that a lane walking down a
/// column hits a different bank each row (row length of 17 or 33 words).
inline int64_t transposedRow(Type et) { return et.isF32() ? 33 : 34; }

/// Byte offsets of the shared-memory tiles of a kernel (16-byte aligned).
struct SmemLayout {
  SmallVector<int64_t> offsets;
  int64_t total = 0;
  int64_t add(int64_t bytes) {
    offsets.push_back(total);
    total = (total + bytes + 15) / 16 * 16;
    return offsets.back();
  }
};
SmemLayout forwardSmem(const GpuKernelSpec &s);
SmemLayout backwardSmem(const GpuKernelSpec &s);
SmemLayout dqSmem(const GpuKernelSpec &s);

/// Row kernels (bwd_pre / bwd_post): a row of (batch, head, query) is
/// `rowLanes` consecutive lanes moving 16-byte pieces (coalesced); a block
/// of kRowThreads threads covers kRowThreads / rowLanes rows.
int64_t rowLanes(GpuKernelKind kind, const GpuKernelSpec &s);

/// Butterfly all-reduce over the warp (max or sum).
Value warpReduce(KernelBuilder &k, Value x, bool isMax);
/// The value of `x` in lane `lane` (an index).
Value shuffleIdx(KernelBuilder &k, Value x, Value lane);
/// Elements of a 16-byte vector.
int64_t vecWidth(KernelBuilder &k);
/// Loads `rows` x `cols` elements of buffer `t` (rows clamped to
/// `rowLimit - 1`, so every address is valid) with 16-byte vectors spread
/// over `threads` threads, and hands each vector to `sink(row, col, vec)`.
void loadTile(KernelBuilder &k, StringRef t, Value bi, Value h, Value row0,
              Value rowLimit, int64_t rows, int64_t cols, int64_t threads,
              function_ref<void(Value, Value, Value)> sink);

/// i1: key `kj` is visible from query `qi` (run-time window bounds; `wl`/`wr`
/// < 0 mean unbounded) and is a real key (< Nk).
Value visible(KernelBuilder &k, Value qi, Value kj, Value off, Value nk);

/// Score in the log2 domain from the raw dot product; with softcap,
/// `derivOut` receives dS/ds = 1 - tanh(scale qk / c)^2.
Value score(KernelBuilder &k, Value qk, Value *derivOut = nullptr);

/// The ALiBi weight of (sequence bi, query head h) in the log2 domain
/// (slope log2(e)); null without ALiBi.
Value alibiWeight(KernelBuilder &k, Value bi, Value h);
/// Score `s2` (log2 domain) of query `qi`, key `kj` with ALiBi's -w |kj - qi
/// - off| (`w` from alibiWeight; null: `s2` unchanged).
Value alibi(KernelBuilder &k, Value s2, Value w, Value qi, Value kj,
            Value off);

} // namespace simt
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_SIMT_H
