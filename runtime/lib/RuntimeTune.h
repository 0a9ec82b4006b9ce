//===- RuntimeTune.h - Autotune records of kernel bundles -------*- C++ -*-===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// The GPU-free half of fa-tune (tools/fa-tune): candidate groups of a bundle
// written by `fa-compile --autotune`, the comparison of a candidate's output
// with its group's default, the choice of the winner, and the manifest
// rewrite that records it ("selected": true on the winner, a top-level
// "autotune" record per group). fa-tune measures; everything that decides
// and writes lives here so that the unit test (runtime/test/TuneTest.cpp)
// checks it without a GPU.
//
// Not installed; not part of the C API.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_LIB_RUNTIMETUNE_H
#define FLASHMLIR_RUNTIME_LIB_RUNTIMETUNE_H

#include "RuntimeInternal.h"

#include <string>
#include <utility>
#include <vector>

namespace flashmlir::rt {

/// What fa-tune measured for one candidate kernel.
struct TuneCandidate {
  std::string kernel;   ///< its name in the manifest
  bool ran = false;     ///< launched and timed (medianMs is meaningful)
  bool ok = false;      ///< ran and agreed with the group's default
  double medianMs = 0;  ///< median time of one launch
  double relErr = 0;    ///< max of O's and lse's relative L2 vs the default
  std::string error;    ///< why it is not ok ("" when ok)
};

/// The measurements of one candidate group on one device and problem.
struct TuneGroupResult {
  std::string group;
  std::string device; ///< e.g. "NVIDIA H100 80GB HBM3 (cc 9.0, 132 SMs)"
  std::string date;   ///< ISO 8601, UTC
  int64_t batch = 0, heads = 0, seqlen = 0, headDim = 0;
  bool causal = false;
  int reps = 0;
  std::vector<TuneCandidate> candidates;
};

/// The candidate groups of `m` in manifest order: group id and the indices
/// of its kernels, the default first, then in manifest order.
std::vector<std::pair<std::string, std::vector<int>>>
candidateGroups(const Manifest &m);

/// The relative L2 error ||x - ref|| / ||ref|| of `n` elements of `dt`
/// (||x|| when ref is all zeros). Infinities of the same sign in both count
/// as equal (lse = -inf of empty rows); any other NaN or infinity gives
/// +inf.
double relativeL2(DType dt, const void *x, const void *ref, size_t n);

/// The agreement fa-tune requires of a candidate with its group's default:
/// the thresholds of the correctness checks against float64 (f16 2e-3,
/// bf16 1.6e-2; f32 1e-5).
double tuneTolerance(DType dt);

/// The fastest candidate that is ok; -1 when none is.
int tuneWinner(const TuneGroupResult &r);

/// Rewrites manifest text with `results`: in each result's group the winner
/// (tuneWinner; the default when no candidate is ok) gets "selected": true
/// and every other member loses the key, and the top-level "autotune" object
/// gets the group's record (device, date, shape, reps, selected, per
/// candidate median_ms / ok / rel_err / error), replacing an older one.
/// False with *err when the text is not a valid manifest, a result names no
/// group of it or a kernel outside its group.
bool recordTuneResults(const std::string &manifestText,
                       const std::vector<TuneGroupResult> &results,
                       std::string *out, std::string *err);

/// Manifest text of `kernel`'s candidate group alone, `kernel` selected and
/// the "autotune" records dropped: the one-candidate bundle fa-tune loads to
/// launch that candidate through the C API. Its "file" / "cubin" names stay
/// relative (a runtime reads bundle files from inside the bundle directory
/// only); *files lists them, for the caller to place beside the manifest.
bool manifestSelecting(const std::string &manifestText,
                       const std::string &kernel, std::string *out,
                       std::vector<std::string> *files, std::string *err);

/// Writes `text` to `path` through `path`.tmp and rename(2), so that a
/// reader sees the old or the new file, never a partial one.
bool writeFileAtomic(const std::string &path, const std::string &text,
                     std::string *err);

} // namespace flashmlir::rt

#endif // FLASHMLIR_RUNTIME_LIB_RUNTIMETUNE_H
