//===- Options.cpp - fa-run's command line ----------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The --help text, the flag table and parseArgs: one pass over argv, then
// the checks that involve several flags (--varlen, device-only flags) and
// the defaults that depend on other flags (--kv-heads, --seqlen-k,
// --head-dim-v, --scale).
//
//===----------------------------------------------------------------------===//

#include "Options.h"

#include "flashmlir/runtime/Limits.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace flashmlir::farun {

static const char *kUsage = R"(usage: fa-run [options]

Runs attention for one configuration on random inputs, and optionally checks
it against a float64 reference and times it.

  --device cpu|cuda       where to run (default cpu): cpu JIT-compiles the
                          kernels for the host (needs a build with the
                          compiler); cuda launches the kernels of a kernel
                          bundle through the GPU runtime
  --bundle DIR            cuda: the kernel bundle (a directory written by
                          fa-compile; default <dir of fa-run>/../bundle when it
                          exists). A fa-run built with the compiler compiles a
                          configuration the bundle lacks on demand into
                          $FLASHMLIR_CACHE_DIR/bundle-<config> (default cache
                          directory: $HOME/.cache/flashmlir)
  --dtype f32|f16|bf16    element type of q, k, v, o and gradients (default f32)
  --batch B               batch size (required)
  --heads HQ              query heads (required)
  --kv-heads HKV          key/value heads; HQ must be a multiple (default HQ)
  --seqlen-q NQ           query length, 1 to 2^30 (required)
  --seqlen-k NK           key length, 1 to 2^30 (default NQ)
  --head-dim D            head dim of q and k, 1 to 256 (required)
  --head-dim-v DV         head dim of v and o, 1 to 256 (default D)
  --causal                bottom-right aligned causal mask
  --window L,R            sliding window, -1 = unbounded side, else 0 to 2^30
                          (default none)
  --softcap C             tanh soft-capping, 0 = off, else 1e-18 to 1e18
                          (default 0)
  --scale S               softmax scale, |S| <= 1e18 (default 1/sqrt(D);
                          cuda: S > 0)
  --backward              also run the backward pass
  --check                 compare with the float64 reference; exit 1 on failure
  --bench                 time forward (and backward): median of --reps runs
                          after a warm-up (cuda: host wall time around the
                          launches and the synchronization that ends them)
  --seed N                seed of the random inputs (default 0)
  --json                  print one JSON object as the last line of stdout
  --layout bhsd|bshd      memory layout of the 4-d buffers (default bhsd)
  --pipeline tiled|unfused  lowering to use (default tiled; unfused: cpu only)
  --block-m N             query rows per tile (1 to 1024, default 64; cpu only)
  --block-n N             key rows per tile (1 to 1024, default 64; cpu only)
  --reps N                timed runs per kernel with --bench, 1 to 10^6
                          (default 5)
  --varlen L1,L2,...      a variable-length batch: sequences of
                          these query lengths (>= 0) packed into
                          [total, heads, dim] with cu_seqlens offsets, masks
                          aligned per sequence; replaces --batch and
                          --seqlen-q (and --layout: packed is bshd); cuda:
                          fa_forward_varlen / fa_backward_varlen
  --varlen-k K1,K2,...    the key lengths of the --varlen sequences (default:
                          the query lengths); replaces --seqlen-k
  --num-splits N          cuda forward: the split-KV (decode) forward's key
                          ranges, 0 = the runtime's choice (default), 1 = the
                          one-pass kernel, 2 to 128 (fa_forward_splitkv)
  --sinks                 attention sinks: random f32 logits [HQ], one per
                          query head (gpt-oss); with --backward also d sinks
                          (checked as dsinks_err); not with --varlen
  --alibi                 ALiBi: random f32 slopes [B, HQ] in [0, 0.3), one per
                          sequence and query head (FlashAttention-2's
                          alibi_slopes); not with --varlen
  --rotary R              fused RoPE of the first R dims of q and k (cuda: a
                          multiple of 16), tables cos / sin of positions
                          [0, SK) for base 10000 (GPT-NeoX pairs; GPT-J
                          with --rotary-interleaved); not with --varlen
  --rotary-interleaved    with --rotary: pairs (2m, 2m + 1)
  --help                  print this help

peak_bytes is the memory the attention itself allocates: on cpu the peak of
the kernels' own allocations; on cuda the device memory the runtime holds for
it after the runs (fa_workspace_bytes(): the backward workspace, in 2 MiB
steps; 0 for a forward pass), not counting the caller's q, k, v, o, lse and
gradient buffers.

Values may also be given as --flag=value. Exit status: 0 success, 1 check or
run failure (including every error of the CUDA runtime: no driver, no device,
no kernel, PTX rejected, out of memory), 2 bad command line.
)";

/// --reps at most (a timing loop, not a soak test).
constexpr int64_t kMaxReps = 1000000;

/// Prints "fa-run: <message>" to stderr and returns 2 (bad usage).
int usageError(const char *fmt, ...) {
  std::fprintf(stderr, "fa-run: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  return 2;
}

static bool parseInt(const std::string &s, int64_t *out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = v;
  return true;
}

static bool parseDouble(const std::string &s, double *out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno == ERANGE || *end != '\0' || !std::isfinite(v))
    return false;
  *out = v;
  return true;
}

/// Parses argv into `o`. Returns -1 to go on, or the exit status to return
/// now (0 after --help, 2 on error, with the message printed).
int parseArgs(int argc, char **argv, Options &o) {
  bool seen[32] = {};
  enum Flag {
    FDevice,
    FDtype,
    FBatch,
    FHeads,
    FKvHeads,
    FSeqQ,
    FSeqK,
    FHeadDim,
    FHeadDimV,
    FCausal,
    FWindow,
    FSoftcap,
    FScale,
    FBackward,
    FCheck,
    FBench,
    FSeed,
    FJson,
    FLayout,
    FPipeline,
    FBlockM,
    FBlockN,
    FReps,
    FBundle,
    FVarlen,
    FVarlenK,
    FNumSplits,
    FSinks,
    FAlibi,
    FRotary,
    FRotaryInterleaved,
    FHelp
  };
  struct Spec {
    const char *name;
    Flag flag;
    bool takesValue;
  };
  static const Spec specs[] = {
      {"device", FDevice, true},       {"dtype", FDtype, true},
      {"batch", FBatch, true},         {"heads", FHeads, true},
      {"kv-heads", FKvHeads, true},    {"seqlen-q", FSeqQ, true},
      {"seqlen-k", FSeqK, true},       {"head-dim", FHeadDim, true},
      {"head-dim-v", FHeadDimV, true}, {"causal", FCausal, false},
      {"window", FWindow, true},       {"softcap", FSoftcap, true},
      {"scale", FScale, true},         {"backward", FBackward, false},
      {"check", FCheck, false},        {"bench", FBench, false},
      {"seed", FSeed, true},           {"json", FJson, false},
      {"layout", FLayout, true},       {"pipeline", FPipeline, true},
      {"block-m", FBlockM, true},      {"block-n", FBlockN, true},
      {"reps", FReps, true},           {"bundle", FBundle, true},
      {"varlen", FVarlen, true},       {"varlen-k", FVarlenK, true},
      {"num-splits", FNumSplits, true}, {"sinks", FSinks, false},
      {"alibi", FAlibi, false},        {"help", FHelp, false},
      {"rotary", FRotary, true},
      {"rotary-interleaved", FRotaryInterleaved, false},
  };

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0)
      return usageError("unexpected argument '%s' (flags start with --; see "
                        "--help)",
                        arg.c_str());
    std::string name = arg.substr(2), value;
    bool hasInlineValue = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      hasInlineValue = true;
    }
    const Spec *spec = nullptr;
    for (const Spec &s : specs)
      if (name == s.name)
        spec = &s;
    if (!spec)
      return usageError("unknown flag --%s (see --help)", name.c_str());
    const char *flag = spec->name;
    if (!spec->takesValue) {
      if (hasInlineValue)
        return usageError("--%s takes no value, got '%s'", flag, value.c_str());
    } else if (!hasInlineValue) {
      if (i + 1 >= argc)
        return usageError("--%s expects a value", flag);
      value = argv[++i];
    }
    seen[spec->flag] = true;

    // Positive integers.
    auto positive = [&](int64_t *out) {
      if (!parseInt(value, out) || *out < 1) {
        usageError("--%s expects an integer >= 1, got '%s'", flag,
                   value.c_str());
        return false;
      }
      return true;
    };
    // Integers in [1, hi] (the ranges of flashmlir/runtime/Limits.h).
    auto bounded = [&](int64_t *out, int64_t hi) {
      if (!parseInt(value, out) || *out < 1 || *out > hi) {
        usageError("--%s expects an integer in [1, %" PRId64 "], got '%s'",
                   flag, hi, value.c_str());
        return false;
      }
      return true;
    };

    switch (spec->flag) {
    case FHelp:
      std::fputs(kUsage, stdout);
      return 0;
    case FDevice:
      if (value != "cpu" && value != "cuda")
        return usageError("--device expects cpu or cuda, got '%s'",
                          value.c_str());
      o.device = value;
      break;
    case FDtype:
      if (value != "f32" && value != "f16" && value != "bf16")
        return usageError("--dtype expects f32, f16 or bf16, got '%s'",
                          value.c_str());
      rt::parseDType(value.c_str(), &o.dtype);
      break;
    case FBatch:
      if (!positive(&o.batch))
        return 2;
      break;
    case FHeads:
      if (!positive(&o.heads))
        return 2;
      break;
    case FKvHeads:
      if (!positive(&o.kvHeads))
        return 2;
      break;
    case FSeqQ:
      if (!bounded(&o.seqlenQ, limits::kMaxSeqLen))
        return 2;
      break;
    case FSeqK:
      if (!bounded(&o.seqlenK, limits::kMaxSeqLen))
        return 2;
      break;
    case FHeadDim:
      if (!bounded(&o.headDim, limits::kMaxHeadDim))
        return 2;
      break;
    case FHeadDimV:
      if (!bounded(&o.headDimV, limits::kMaxHeadDim))
        return 2;
      break;
    case FBlockM:
      if (!bounded(&o.blockM, limits::kMaxBlock))
        return 2;
      break;
    case FBlockN:
      if (!bounded(&o.blockN, limits::kMaxBlock))
        return 2;
      break;
    case FReps:
      if (!bounded(&o.reps, kMaxReps))
        return 2;
      break;
    case FCausal:
      o.causal = true;
      break;
    case FBackward:
      o.backward = true;
      break;
    case FSinks:
      o.sinks = true;
      break;
    case FAlibi:
      o.alibi = true;
      break;
    case FRotary:
      if (!positive(&o.rotary))
        return 2;
      break;
    case FRotaryInterleaved:
      o.rotaryInterleaved = true;
      break;
    case FCheck:
      o.check = true;
      break;
    case FBench:
      o.bench = true;
      break;
    case FJson:
      o.json = true;
      break;
    case FWindow: {
      size_t comma = value.find(',');
      int64_t l = 0, r = 0;
      if (comma == std::string::npos || !parseInt(value.substr(0, comma), &l) ||
          !parseInt(value.substr(comma + 1), &r) ||
          !limits::checkWindow("L", l).empty() ||
          !limits::checkWindow("R", r).empty())
        return usageError("--window expects L,R with values -1 (unbounded) "
                          "or in [0, %" PRId64 "], got '%s'",
                          limits::kMaxWindow, value.c_str());
      o.windowLeft = l;
      o.windowRight = r;
      break;
    }
    case FSoftcap:
      if (!parseDouble(value, &o.softcap) ||
          !limits::checkSoftcapOrOff("C", o.softcap).empty())
        return usageError("--softcap expects 0 (off) or a number in [%g, %g], "
                          "got '%s'",
                          limits::kMinSoftcap, limits::kMaxSoftcap,
                          value.c_str());
      break;
    case FScale:
      if (!parseDouble(value, &o.scale) ||
          !limits::checkScale("S", o.scale).empty())
        return usageError("--scale expects a finite number with |S| <= %g, "
                          "got '%s'",
                          limits::kMaxScale, value.c_str());
      o.hasScale = true;
      break;
    case FSeed: {
      int64_t s = 0;
      if (!parseInt(value, &s) || s < 0)
        return usageError("--seed expects an integer >= 0, got '%s'",
                          value.c_str());
      o.seed = static_cast<uint64_t>(s);
      break;
    }
    case FLayout:
      if (value != "bhsd" && value != "bshd")
        return usageError("--layout expects bhsd or bshd, got '%s'",
                          value.c_str());
      o.layout = value;
      break;
    case FPipeline:
      if (value != "tiled" && value != "unfused")
        return usageError("--pipeline expects tiled or unfused, got '%s'",
                          value.c_str());
      o.pipeline = value;
      break;
    case FNumSplits:
      if (!parseInt(value, &o.numSplits) || o.numSplits < 0 ||
          o.numSplits > 128)
        return usageError("--num-splits expects 0 (automatic) to 128, got "
                          "'%s'",
                          value.c_str());
      break;
    case FBundle:
      if (value.empty())
        return usageError("--bundle expects a directory, got ''");
      o.bundle = value;
      o.hasBundle = true;
      break;
    case FVarlen:
    case FVarlenK: {
      std::vector<int64_t> &lens =
          spec->flag == FVarlen ? o.varlenQ : o.varlenK;
      lens.clear();
      size_t pos = 0;
      for (;;) {
        size_t comma = value.find(',', pos);
        int64_t n = 0;
        if (!parseInt(value.substr(pos, comma - pos), &n) || n < 0 ||
            n > (int64_t(1) << 30))
          return usageError("--%s expects a list of lengths >= 0 "
                            "(L1,L2,...), got '%s'",
                            flag, value.c_str());
        lens.push_back(n);
        if (comma == std::string::npos)
          break;
        pos = comma + 1;
      }
      o.varlen = true;
      break;
    }
    }
  }

  if (o.varlen) {
    if (o.varlenQ.empty())
      return usageError("--varlen-k needs --varlen (the query lengths)");
    for (Flag f : {FBatch, FSeqQ, FSeqK, FLayout})
      if (seen[f])
        return usageError("--varlen replaces --batch, --seqlen-q, --seqlen-k "
                          "and --layout (the packed layout is bshd)");
    if (o.varlenK.empty())
      o.varlenK = o.varlenQ;
    if (o.varlenK.size() != o.varlenQ.size())
      return usageError("--varlen-k has %zu lengths, --varlen %zu",
                        o.varlenK.size(), o.varlenQ.size());
    if (o.sinks || o.alibi || o.rotary)
      return usageError("--%s with --varlen is not supported by fa-run "
                        "(the GPU's variable-length kernels have no %s yet)",
                        o.sinks ? "sinks" : o.alibi ? "alibi" : "rotary",
                        o.sinks ? "sinks" : o.alibi ? "ALiBi" : "RoPE");
    if (o.pipeline == "unfused")
      return usageError("--varlen needs --pipeline tiled");
    o.cuQ = {0};
    o.cuK = {0};
    for (size_t b = 0; b < o.varlenQ.size(); ++b) {
      o.cuQ.push_back(int32_t(o.cuQ.back() + o.varlenQ[b]));
      o.cuK.push_back(int32_t(o.cuK.back() + o.varlenK[b]));
      o.maxQ = std::max(o.maxQ, o.varlenQ[b]);
      o.maxK = std::max(o.maxK, o.varlenK[b]);
    }
    if (o.cuQ.back() < 1 || o.cuK.back() < 1)
      return usageError("--varlen needs at least one query row and one key "
                        "row in all");
    o.batch = 1;
    o.seqlenQ = o.cuQ.back();
    o.seqlenK = o.cuK.back();
    o.layout = "bshd";
    seen[FBatch] = seen[FSeqQ] = true;
  }

  struct Required {
    Flag flag;
    const char *name;
  };
  for (Required r :
       {Required{FBatch, "batch"}, Required{FHeads, "heads"},
        Required{FSeqQ, "seqlen-q"}, Required{FHeadDim, "head-dim"}})
    if (!seen[r.flag])
      return usageError("missing required flag --%s (see --help)", r.name);

  // Flags of one device only, when given explicitly.
  if (o.cuda()) {
    if (o.pipeline == "unfused")
      return usageError("--pipeline unfused is only available with --device "
                        "cpu: --device cuda runs the kernel bundle's tiled "
                        "kernels");
    if (seen[FBlockM] || seen[FBlockN])
      return usageError("--%s is only available with --device cpu: on cuda "
                        "the tile sizes are those of the kernel bundle",
                        seen[FBlockM] ? "block-m" : "block-n");
    if (o.hasScale && !(o.scale > 0))
      return usageError("--scale must be > 0 with --device cuda (the CUDA "
                        "runtime reads a scale <= 0 as 1/sqrt(D)), got %g",
                        o.scale);
    if (seen[FNumSplits] && o.varlen)
      return usageError("--num-splits applies to the dense forward, not "
                        "--varlen (the split-KV forward has no varlen kernels "
                        "yet)");
  } else if (o.hasBundle) {
    return usageError("--bundle is only used with --device cuda");
  } else if (seen[FNumSplits]) {
    return usageError("--num-splits is only available with --device cuda (the "
                      "split-KV forward is a GPU schedule)");
  }

  if (o.kvHeads < 0)
    o.kvHeads = o.heads;
  if (o.seqlenK < 0)
    o.seqlenK = o.seqlenQ;
  if (o.headDimV < 0)
    o.headDimV = o.headDim;
  if (!o.hasScale)
    o.scale = 1.0 / std::sqrt(static_cast<double>(o.headDim));
  if (o.heads % o.kvHeads != 0)
    return usageError("--heads (%" PRId64 ") must be a multiple of --kv-heads "
                      "(%" PRId64 ")",
                      o.heads, o.kvHeads);
  return -1;
}

} // namespace flashmlir::farun
