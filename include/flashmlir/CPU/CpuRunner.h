//===- CpuRunner.h - JIT attention kernels for the host ---------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// Compiles `attn.attention` / `attn.attention_backward` for one kernel
// configuration through the CPU pipeline (buildAttnCpuPipeline) and the MLIR
// ExecutionEngine, and calls the result on caller-owned buffers.
//
// This header deliberately exposes no MLIR or LLVM type: tools that only
// include it (fa-run) stay free of the compiler's headers. Errors are
// reported through std::string out-parameters; nothing throws.
//
// Tensor layout is the attn dialect's [batch, heads, seq, dim] (lse:
// [batch, heads, seq]), but every stride except the innermost one is dynamic,
// so a [batch, seq, heads, dim] buffer is passed as a strided view without a
// copy.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_CPU_CPURUNNER_H
#define FLASHMLIR_CPU_CPURUNNER_H

#include "flashmlir/runtime/Half.h"

#include <cstdint>
#include <memory>
#include <string>

namespace flashmlir {

/// Everything that is baked into a compiled kernel. Shapes other than the
/// head dims (batch, heads, sequence lengths) and all strides stay dynamic.
struct KernelConfig {
  /// Element type of q, k, v, o and the gradients (lse is always f32).
  rt::DType dtype = rt::DType::F32;
  /// Head dim of q/k and of v/o.
  int64_t D = 0, Dv = 0;
  /// Softmax scale (always passed explicitly to the op).
  double scale = 0;
  bool causal = false;
  /// Sliding window [left, right] around the bottom-right aligned diagonal;
  /// -1 = unbounded on that side.
  int64_t windowLeft = -1, windowRight = -1;
  /// Tanh soft-capping value; 0 = off.
  double softcap = 0;
  /// Use the unfused (reference-style) lowering instead of the tiled one.
  bool unfused = false;
  /// Query rows and key rows per tile.
  int64_t blockM = 64, blockN = 64;
  /// The bodies of the ops' `score_mod` / `mask_mod` regions (MLIR text from
  /// `^bb0(...)` to `attn.yield`; empty: none). They may read the captured
  /// buffers `%cap0` .. `%cap3` (memref<?xf32>, ScoreModArgs::captures).
  std::string scoreMod, maskMod;
  /// Fused rotary embedding of the first `rotaryDim` dims of q and k (0:
  /// off; even), pairs (d, d + dim/2), or (2m, 2m + 1) when interleaved;
  /// the tables come with each call (ScoreModArgs::rotaryCos / Sin).
  int64_t rotaryDim = 0;
  bool rotaryInterleaved = false;

  /// True when the kernels take the score modifications' parameters
  /// whatever the call passes (regions, rotary).
  bool hasRegions() const {
    return !scoreMod.empty() || !maskMod.empty() || rotaryDim > 0;
  }
};

/// The most captured buffers a kernel's regions may read.
constexpr int kMaxCaptures = 4;

/// A strided view of caller-owned memory. Rank 4 for q/k/v/o and gradients
/// ([B, H, N, D]), rank 3 for lse ([B, H, N], f32). Sizes and strides are in
/// elements; the innermost stride must be 1.
struct TensorArg {
  void *data = nullptr;
  int rank = 0;
  int64_t sizes[4] = {0, 0, 0, 0};
  int64_t strides[4] = {0, 0, 0, 0};
};

/// The sequences of a variable-length (packed) call: `batch + 1` int32
/// offsets into the packed query and key rows (host memory; start at 0,
/// non-decreasing) and upper bounds of the sequences' lengths.
struct VarlenArgs {
  const int32_t *cuSeqlensQ = nullptr, *cuSeqlensK = nullptr;
  int64_t batch = 0, maxSeqlenQ = 0, maxSeqlenK = 0;
};

/// The score modifications of one call (attn ops' `alibi_slopes` and `sinks`
/// operands), in host memory, f32. Null pointers: off. Each combination is
/// its own kernel, compiled on first use.
struct ScoreModArgs {
  /// ALiBi slopes: `[heads]`, or `[batch, heads]` with alibiPerSequence
  /// (batch: the sequences of a variable-length call).
  const float *alibiSlopes = nullptr;
  bool alibiPerSequence = false;
  /// One sink logit per query head, `[heads]`.
  const float *sinks = nullptr;
  /// Backward with sinks: receives d sinks `[heads]` (null: not wanted).
  float *gradSinks = nullptr;
  /// The buffers the config's regions read as `%cap<i>` (f32, contiguous,
  /// `captureSizes[i]` elements).
  const float *captures[kMaxCaptures] = {nullptr, nullptr, nullptr, nullptr};
  int64_t captureSizes[kMaxCaptures] = {0, 0, 0, 0};
  /// With KernelConfig::rotaryDim: the f32 tables [rotaryPositions,
  /// rotaryDim / 2] (row-major, contiguous); positions i + Nk - Nq and j
  /// must be < rotaryPositions.
  const float *rotaryCos = nullptr, *rotarySin = nullptr;
  int64_t rotaryPositions = 0;
};

/// The forward and backward kernels of one KernelConfig, JIT-compiled for the
/// host. Calls are synchronous; distinct CpuKernels may be used from distinct
/// threads.
class CpuKernels {
public:
  ~CpuKernels();
  CpuKernels(const CpuKernels &) = delete;
  CpuKernels &operator=(const CpuKernels &) = delete;

  /// Builds the kernel modules for `cfg` and compiles the forward one (CPU
  /// pipeline, then JIT); the backward kernel is compiled on first use (or
  /// by compileBackward()). Returns null and sets `err` on failure.
  static std::unique_ptr<CpuKernels> compile(const KernelConfig &cfg,
                                             std::string &err);

  /// o = attention(q, k, v), lse = row log-sum-exp. Shapes are checked
  /// against each other and against the config; returns false and sets `err`
  /// when they do not fit.
  bool forward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
               TensorArg lse, std::string &err);
  /// The same with ALiBi slopes and / or sinks.
  bool forward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
               TensorArg lse, const ScoreModArgs &mods, std::string &err);

  /// Compiles the backward kernel now; otherwise the first backward() call
  /// does. Returns false and sets `err` when it cannot be compiled (again on
  /// every later call: a failed compilation is not retried).
  bool compileBackward(std::string &err);

  /// dq, dk, dv from the forward's inputs, its output o and lse, and dO.
  bool backward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                TensorArg dO, TensorArg lse, TensorArg dq, TensorArg dk,
                TensorArg dv, std::string &err);
  /// The same with ALiBi slopes and / or sinks (and d sinks).
  bool backward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                TensorArg dO, TensorArg lse, TensorArg dq, TensorArg dk,
                TensorArg dv, const ScoreModArgs &mods, std::string &err);

  /// The variable-length form (attn.attention with `varlen(...)`): q, k, v,
  /// o (and dO, dq, dk, dv) packed `[total, heads, dim]` (rank 3), lse
  /// `[Hq, total_q]` (rank 2). The offsets and lengths are checked first
  /// (start at 0, non-decreasing, within the packed rows, lengths at most
  /// the max); rows outside every sequence are not written. The varlen
  /// kernels are compiled on first use.
  bool varlenForward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                     TensorArg lse, const VarlenArgs &seqs, std::string &err);
  bool varlenBackward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                      TensorArg dO, TensorArg lse, TensorArg dq, TensorArg dk,
                      TensorArg dv, const VarlenArgs &seqs, std::string &err);
  bool varlenForward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                     TensorArg lse, const VarlenArgs &seqs,
                     const ScoreModArgs &mods, std::string &err);
  bool varlenBackward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                      TensorArg dO, TensorArg lse, TensorArg dq, TensorArg dk,
                      TensorArg dv, const VarlenArgs &seqs,
                      const ScoreModArgs &mods, std::string &err);

  /// The text of the kernel module before the pipeline ran (for debugging).
  const std::string &moduleSource() const;

  /// Memory the compiled kernels allocate (through memref.alloc) is counted
  /// process-wide. resetPeak() sets the peak to the bytes live now;
  /// peakBytes() is the largest number of live bytes since; liveBytes() the
  /// number live now (0 when every kernel freed what it allocated).
  static void resetPeak();
  static int64_t peakBytes();
  static int64_t liveBytes();

private:
  struct Impl;
  explicit CpuKernels(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl;
};

} // namespace flashmlir

#endif // FLASHMLIR_CPU_CPURUNNER_H
