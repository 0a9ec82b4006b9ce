//===- Limits.h - the ranges every input is checked against -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The one place that says how large (or small) every number entering
// FlashMLIR may be: head dims, sequence lengths and mask windows, tile sizes,
// vector widths and thread counts, the softmax scale and softcap, and the
// GPU targets with their shared memory. The verifier, the passes and
// pipelines, the tools' flags, both C APIs, the bundle manifest and the
// Python package (python/flashmlir/_options.py, kept equal by a test) check
// against these values where a number enters, with messages from the
// helpers below that name the value and its valid range.
//
// Why each bound is what it is:
//   * head dims: the GPU kernels' tile model covers up to 256
//     (KernelSelect.cpp); the CPU path keeps the same bound so that a
//     configuration runs on both.
//   * sequence lengths and window bounds: 2^30. The GPU kernels compare
//     fragment columns against per-row bounds held in i32
//     (Primitives/Mask): with Nq, Nk and the window sides at most 2^30 every
//     such bound (diagonal - left >= 1 - 2^31) fits. A window side >= the
//     key length is the same as unbounded (-1).
//   * scale and softcap: the kernels fold scale * log2(e), scale / softcap
//     and softcap * log2(e) into f32 constants or registers; with
//     |scale| <= 1e18 and softcap in [1e-18, 1e18] all of them are finite
//     f32 values (at most ~1.5e36 < 3.4e38).
//   * CPU tiles (block_m, block_n): 1024. Each worker thread holds a few
//     BM x D / BN x BM f32 tiles (at most ~6 MiB at the bound) and the code
//     generated per tile grows with BM.
//   * vector width: 64 f32 lanes (4x AVX-512); widths past what the host
//     has are split by LLVM. A tile row spans at most 64 vectors
//     (kMaxTileVectors): the code generated per tile grows with it.
//
// C++17, header-only, no MLIR or LLVM (the runtime half includes it).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_LIMITS_H
#define FLASHMLIR_RUNTIME_LIMITS_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace flashmlir {
namespace limits {

/// Head dims D (q, k) and Dv (v, o): [1, kMaxHeadDim].
constexpr int64_t kMaxHeadDim = 256;
/// Sequence lengths Nq, Nk: [1, kMaxSeqLen] (0 where an API allows empty).
constexpr int64_t kMaxSeqLen = int64_t(1) << 30;
/// Mask window sides: -1 (unbounded) or [0, kMaxWindow].
constexpr int64_t kMaxWindow = kMaxSeqLen;
/// CPU tile sizes (block_m, block_n; attn-tile-* block-m / block-n, the
/// op's block_sizes): [1, kMaxBlock].
constexpr int64_t kMaxBlock = 1024;
/// f32 lanes of the CPU tiles (vector-width, FLASHMLIR_VECTOR_WIDTH):
/// [1, kMaxVectorWidth].
constexpr int64_t kMaxVectorWidth = 64;
/// The CPU tiles unroll their register-blocked products over the vectors
/// of a tile row: a row of max(BM, BN, D, Dv) f32 values may span at most
/// kMaxTileVectors vectors of the vector width (the JIT's compile time
/// grows faster than linearly with it: ~30 s at 64 vectors on the CI
/// machine, minutes beyond). 64 keeps D = 256 at 4 lanes (SSE, NEON).
constexpr int64_t kMaxTileVectors = 64;
/// CPU worker threads (FLASHMLIR_NUM_THREADS): [1, kMaxThreads].
constexpr int64_t kMaxThreads = 4096;
/// |scale| <= kMaxScale.
constexpr double kMaxScale = 1e18;
/// softcap (when on) in [kMinSoftcap, kMaxSoftcap].
constexpr double kMinSoftcap = 1e-18;
constexpr double kMaxSoftcap = 1e18;

/// A GPU target the pipeline emits kernels for: its name (the pipelines'
/// `chip`, fa-compile's --target), compute capability and the most dynamic
/// shared memory one block may use there (the opt-in maximum).
struct GpuTarget {
  const char *name;
  int sm;                 ///< 80, 86, ...
  bool archSpecific;      ///< sm_90a: wgmma
  int64_t maxDynamicSmem; ///< bytes
};

/// Every target the GPU pipeline can emit: sm_75 to sm_90a, as PTX ISA 8.0
/// (which reaches up to sm_90a). sm_75 (Turing): f16 tensor cores through
/// mma.sync m16n8k8 and ldmatrix, no cp.async, 64 KB per block; bf16 and
/// f32 there run the SIMT kernels.
inline const GpuTarget *gpuTargets(int *count) {
  static const GpuTarget targets[] = {
      {"sm_75", 75, false, 65536},
      {"sm_80", 80, false, 166912},  {"sm_86", 86, false, 101376},
      {"sm_87", 87, false, 166912},  {"sm_89", 89, false, 101376},
      {"sm_90", 90, false, 232448},  {"sm_90a", 90, true, 232448},
  };
  *count = static_cast<int>(sizeof(targets) / sizeof(targets[0]));
  return targets;
}

/// The target named `name`, or null.
inline const GpuTarget *findGpuTarget(const std::string &name) {
  int n = 0;
  const GpuTarget *t = gpuTargets(&n);
  for (int i = 0; i < n; ++i)
    if (name == t[i].name)
      return &t[i];
  return nullptr;
}

/// "sm_80, sm_86, sm_87, sm_89, sm_90, sm_90a"
inline std::string gpuTargetList() {
  int n = 0;
  const GpuTarget *t = gpuTargets(&n);
  std::string s;
  for (int i = 0; i < n; ++i)
    s += std::string(i ? ", " : "") + t[i].name;
  return s;
}

/// The most dynamic shared memory any target allows (what a manifest may
/// ask for at most).
inline int64_t maxDynamicSmem() {
  int n = 0;
  const GpuTarget *t = gpuTargets(&n);
  int64_t m = 0;
  for (int i = 0; i < n; ++i)
    m = t[i].maxDynamicSmem > m ? t[i].maxDynamicSmem : m;
  return m;
}

/// PTX ISA versions the GPU pipeline may emit (its `features`, "+ptxNN"):
/// 8.0 (the default; wgmma needs it) to 9.0, the newest LLVM 22 knows.
inline bool validPtxFeature(const std::string &f) {
  static const char *const ok[] = {"+ptx80", "+ptx81", "+ptx82", "+ptx83",
                                   "+ptx84", "+ptx85", "+ptx86", "+ptx87",
                                   "+ptx88", "+ptx90"};
  for (const char *o : ok)
    if (f == o)
      return true;
  return false;
}
inline const char *ptxFeatureList() {
  return "+ptx80, +ptx81, +ptx82, +ptx83, +ptx84, +ptx85, +ptx86, +ptx87, "
         "+ptx88, +ptx90";
}

//===----------------------------------------------------------------------===//
// Checks: each returns "" when the value is in range, else a message that
// names the value (`what`), what it was and the valid range.
//===----------------------------------------------------------------------===//

/// A value in a message ("%.9g": 1e+40, 0.125, inf, nan).
inline std::string formatDouble(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

/// An integer in [lo, hi].
inline std::string checkRange(const std::string &what, int64_t v, int64_t lo,
                              int64_t hi) {
  if (v >= lo && v <= hi)
    return "";
  return what + " = " + std::to_string(v) + " is out of range: it must be in [" +
         std::to_string(lo) + ", " + std::to_string(hi) + "]";
}

inline std::string checkHeadDim(const std::string &what, int64_t v) {
  return checkRange(what, v, 1, kMaxHeadDim);
}

inline std::string checkSeqLen(const std::string &what, int64_t v) {
  return checkRange(what, v, 1, kMaxSeqLen);
}

/// A window side: -1 (unbounded) or [0, kMaxWindow].
inline std::string checkWindow(const std::string &what, int64_t v) {
  if (v >= -1 && v <= kMaxWindow)
    return "";
  return what + " = " + std::to_string(v) +
         " is out of range: it must be -1 (unbounded) or in [0, " +
         std::to_string(kMaxWindow) + "]";
}

inline std::string checkBlock(const std::string &what, int64_t v) {
  return checkRange(what, v, 1, kMaxBlock);
}

inline std::string checkVectorWidth(const std::string &what, int64_t v) {
  return checkRange(what, v, 1, kMaxVectorWidth);
}

/// The vectors a tile row spans: ceil(max(BM, BN, D, Dv) / width) <=
/// kMaxTileVectors (all values already in their own ranges).
inline std::string checkTileVectors(int64_t blockM, int64_t blockN,
                                    int64_t D, int64_t Dv, int64_t width) {
  int64_t row = blockM;
  for (int64_t x : {blockN, D, Dv})
    row = x > row ? x : row;
  int64_t vectors = (row + width - 1) / width;
  if (vectors <= kMaxTileVectors)
    return "";
  return "tiles of max(block_m, block_n, head dims) = " + std::to_string(row) +
         " f32 values per row take " + std::to_string(vectors) +
         " vectors of width " + std::to_string(width) + "; at most " +
         std::to_string(kMaxTileVectors) +
         " are allowed (the generated code grows with it): use smaller "
         "blocks or a wider vector width";
}

/// The softmax scale: finite and |scale| <= kMaxScale.
inline std::string checkScale(const std::string &what, double v) {
  if (std::isfinite(v) && std::fabs(v) <= kMaxScale)
    return "";
  return what + " = " + formatDouble(v) +
         " is out of range: it must be finite with |scale| <= " +
         formatDouble(kMaxScale) +
         " (scale * log2(e) and scale / softcap must be finite in f32)";
}

/// A softcap that is on: [kMinSoftcap, kMaxSoftcap].
inline std::string checkSoftcap(const std::string &what, double v) {
  if (std::isfinite(v) && v >= kMinSoftcap && v <= kMaxSoftcap)
    return "";
  return what + " = " + formatDouble(v) + " is out of range: it must be in [" +
         formatDouble(kMinSoftcap) + ", " + formatDouble(kMaxSoftcap) +
         "] (scale / softcap and softcap * log2(e) must be finite in f32)";
}

/// A softcap where 0 means off: 0 or [kMinSoftcap, kMaxSoftcap].
inline std::string checkSoftcapOrOff(const std::string &what, double v) {
  if (v == 0)
    return "";
  if (std::isfinite(v) && v >= kMinSoftcap && v <= kMaxSoftcap)
    return "";
  return what + " = " + formatDouble(v) + " is out of range: it must be 0 " +
         "(off) or in [" + formatDouble(kMinSoftcap) + ", " +
         formatDouble(kMaxSoftcap) +
         "] (scale / softcap and softcap * log2(e) must be finite in f32)";
}

/// `a * b` into *out; false on int64 overflow or a negative operand.
inline bool mulChecked(int64_t a, int64_t b, int64_t *out) {
  if (a < 0 || b < 0)
    return false;
  return !__builtin_mul_overflow(a, b, out);
}

} // namespace limits
} // namespace flashmlir

#endif // FLASHMLIR_RUNTIME_LIMITS_H
