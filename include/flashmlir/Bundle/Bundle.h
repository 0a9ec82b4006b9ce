//===- Bundle.h - kernel bundles: PTX files and a manifest ------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// A kernel bundle is a directory with one PTX file per kernel and a
// manifest.json (written with llvm::json) that describes each kernel: its
// configuration, argument list, block size, dynamic shared memory and how the
// grid is derived. The runtime (runtime/, no MLIR) loads it; the format is
// documented in docs/bundle.md.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_BUNDLE_BUNDLE_H
#define FLASHMLIR_BUNDLE_BUNDLE_H

#include <cstdint>
#include <string>
#include <vector>

namespace flashmlir {

/// One kernel configuration (all four kernels of it are compiled).
struct BundleConfig {
  std::string dtype = "f16"; ///< f16, bf16 or f32
  int64_t headDim = 64;
  int64_t headDimV = 64;
  bool masked = false;  ///< causal / window kernels
  bool softcap = false; ///< softcap kernels
  std::string target = "sm_80";
  /// Tensor-core (mma.sync) forward kernel where supported (off by default).
  bool tensorCores = true;
  /// Tensor-core forward: cp.async K/V staging (else synchronous loads).
  bool mmaAsyncCopy = true;
  /// Tensor-core forward tile shape: warps per block (4 or 8) and query rows
  /// per warp (16 or 32); 0 = the choice of the kernel's cost model.
  int64_t mmaWarps = 0;
  int64_t mmaWarpRows = 0;
  int64_t mmaBlockN = 0; ///< keys per tile (32 or 64); 0 = tile model
  /// Bit-reproducible dQ (query-parallel `attn_bwd_dq` as the bwd_post
  /// kernel, no atomics); recorded in the manifest only when on.
  bool deterministic = false;
  /// On sm_90a targets, the Hopper (wgmma) forward where it supports the
  /// configuration; recorded in the manifest when used.
  bool wgmma = true;
  /// Tensor-core softcap through tanh.approx.f32 (else ex2 + rcp).
  bool fastTanh = true;
  /// Variable-length (packed) batches: only the forward kernel, recorded in
  /// the manifest ("varlen": true) and named with a "_varlen" suffix.
  bool varlen = false;
  /// ALiBi (alibi_slopes): every kernel that computes scores takes the
  /// slopes; recorded in the manifest ("alibi": true) and named with an
  /// "_alibi" suffix.
  bool alibi = false;
  /// Fused RoPE (rotary_cos / rotary_sin): the score kernels and the dQ
  /// post-pass take the tables; recorded in the manifest ("rotary": true)
  /// and named with a "_rope" suffix.
  bool rotary = false;
  /// The split-KV (decode) forward, fwd_split + fwd_combine, where the
  /// configuration has it (attn::hasSplitForward: f16 / bf16 tensor cores).
  bool splitKv = true;
};

/// The default bundle's targets: sm_75 (Turing: f16 tensor cores, SIMT
/// else), sm_80 (Ampere and Ada, through sm_80's PTX), sm_90a (Hopper).
std::vector<std::string> defaultBundleTargets();

/// The configurations of the default bundle (what the tests and benchmarks
/// use) for the given targets.
std::vector<BundleConfig> defaultBundleConfigs(
    const std::vector<std::string> &targets = {"sm_80", "sm_90a"});

/// Options of writeBundle.
struct BundleOptions {
  std::string outDir;
  /// When set, each PTX is assembled with this ptxas (-v) for its target and
  /// the resource report (registers, shared memory, spill bytes) is stored
  /// in the manifest.
  std::string ptxas;
  /// With `ptxas`: also keep each kernel's SASS for its target
  /// (<name>.cubin, the manifest's "cubin"): the runtime loads it instead of
  /// JIT-compiling the PTX on a device of that architecture.
  bool cubin = false;
  bool verbose = false;
  /// An autotune bundle (fa-compile --autotune): each configuration with a
  /// tensor-core forward kernel also gets the autotuneCandidates as
  /// kernels of their own in one candidate group, the tile model's kernel
  /// its default; with `ptxas`, candidates that spill more than the default
  /// are left out. fa-tune (tools/fa-tune) times them on the GPU.
  bool autotune = false;
};

/// One tile setting of the tensor-core forward kernel (the --mma-* knobs).
struct MmaVariant {
  int64_t warps = 4, warpRows = 32, blockN = 64;
  bool asyncCopy = true;
};

/// The candidates of an autotune bundle besides the tile model's choice
/// `model` (docs/tensor-cores.md, "Autotune"): 4 or 8 warps x 32 rows per
/// warp x 64 or 32 keys per tile with cp.async, then `model`'s tile with the
/// other copy mode; `model` itself is left out.
std::vector<MmaVariant> autotuneCandidates(const MmaVariant &model);

/// Compiles every configuration and writes the bundle. Returns false with a
/// message in `error` on failure.
/// *kernelsWritten (optional) is the number of kernels in the manifest.
/// A configuration whose backward kernels do not fit its target's shared
/// memory (sm_75's 64 KB: f32 from head dim 128, f16 / bf16 from 168) gets
/// its forward kernels only; *notes (optional) receives one line per such
/// configuration, and the runtime reports the backward as missing there.
bool writeBundle(const std::vector<BundleConfig> &configs,
                 const BundleOptions &options, std::string &error,
                 int64_t *kernelsWritten = nullptr,
                 std::vector<std::string> *notes = nullptr);

/// Compiles one kernel (kind: fwd, bwd_pre, bwd_main, bwd_post) to PTX.
bool compileKernelPtx(const BundleConfig &config, const std::string &kind,
                      std::string &ptx, std::string &error);

} // namespace flashmlir

#endif // FLASHMLIR_BUNDLE_BUNDLE_H
