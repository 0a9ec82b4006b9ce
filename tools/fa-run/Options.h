//===- Options.h - fa-run's command line ------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The options of one fa-run invocation and the parser that fills them from
// argv (checking every value against flashmlir/runtime/Limits.h), plus the
// "fa-run: <message>" usage error that run() reuses for the checks that need
// the whole configuration.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_TOOLS_FA_RUN_OPTIONS_H
#define FLASHMLIR_TOOLS_FA_RUN_OPTIONS_H

#include "flashmlir/runtime/Half.h"

#include <cstdint>
#include <string>
#include <vector>

namespace flashmlir::farun {

struct Options {
  std::string device = "cpu";
  rt::DType dtype = rt::DType::F32;
  int64_t batch = -1, heads = -1, kvHeads = -1, seqlenQ = -1, seqlenK = -1,
          headDim = -1, headDimV = -1;
  bool causal = false;
  int64_t windowLeft = -1, windowRight = -1;
  double softcap = 0;
  bool hasScale = false;
  double scale = 0;
  bool backward = false, check = false, bench = false, json = false;
  uint64_t seed = 0;
  std::string layout = "bhsd", pipeline = "tiled";
  int64_t blockM = 64, blockN = 64, reps = 5;
  std::string bundle; ///< --bundle; empty = the default
  bool hasBundle = false;
  /// --varlen / --varlen-k: per-sequence lengths and their offsets
  /// (cu_seqlens); batch is then 1 and seqlenQ / seqlenK the totals of the
  /// packed rows.
  bool varlen = false;
  std::vector<int64_t> varlenQ, varlenK;
  std::vector<int32_t> cuQ, cuK;
  int64_t maxQ = 0, maxK = 0;
  /// --num-splits: the split-KV forward's key ranges (fa_forward_splitkv;
  /// 0 = the runtime's choice).
  int64_t numSplits = 0;
  /// --sinks: attention sinks (fa_forward_mods / ScoreModArgs::sinks).
  bool sinks = false;
  /// --alibi: ALiBi slopes [B, Hq] (fa_score_mods / ScoreModArgs).
  bool alibi = false;
  /// --rotary R / --rotary-interleaved: fused RoPE (0: off).
  int64_t rotary = 0;
  bool rotaryInterleaved = false;

  bool cuda() const { return device == "cuda"; }
  bool hasWindow() const { return windowLeft != -1 || windowRight != -1; }
};

/// Prints "fa-run: <message>" to stderr and returns 2 (bad usage).
int usageError(const char *fmt, ...);

/// Parses argv into `o`. Returns -1 to go on, or the exit status to return
/// now (0 after --help, 2 on error, with the message printed).
int parseArgs(int argc, char **argv, Options &o);

} // namespace flashmlir::farun

#endif // FLASHMLIR_TOOLS_FA_RUN_OPTIONS_H
