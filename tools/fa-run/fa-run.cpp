//===- fa-run.cpp - Run, check and time one attention config ----*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// fa-run runs the attention kernels of one configuration on random inputs
// and, on request, checks them against the float64 reference (--check) and
// times them (--bench). Run `fa-run --help` for the flags.
//
// Exit status: 0 on success, 1 when a check fails or the kernels cannot be
// compiled, loaded or run, 2 on a bad command line (or a device this build
// lacks).
//
// Two devices share everything but the kernel calls (inputs, poisoned
// outputs, the check, the timing loop and the reports):
//   * cpu: the kernels are JIT-compiled for the host through the CPU pipeline
//     (needs the compiler, FLASHMLIR_HAVE_COMPILER=1);
//   * cuda: the kernels come from a kernel bundle (PTX + manifest.json, made
//     by fa-compile) and are launched through the GPU runtime (fa_runtime.h),
//     which opens the CUDA driver at run time. Built with the compiler,
//     fa-run compiles a configuration the bundle lacks into a cache directory
//     on demand.
// Built from the runtime half alone (-DFLASHMLIR_ENABLE_COMPILER=OFF) only
// the cuda device is available.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/runtime/Half.h"
#include "flashmlir/runtime/Limits.h"
#include "flashmlir/runtime/Reference.h"
#include "flashmlir/runtime/fa_runtime.h"

#if FLASHMLIR_HAVE_COMPILER
#include "flashmlir/Bundle/Bundle.h"
#include "flashmlir/CPU/CpuRunner.h"
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

using namespace flashmlir;
namespace fs = std::filesystem;

namespace {

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

const char *kUsage = R"(usage: fa-run [options]

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
int usageError(const char *fmt, ...) {
  std::fprintf(stderr, "fa-run: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
  return 2;
}

bool parseInt(const std::string &s, int64_t *out) {
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

bool parseDouble(const std::string &s, double *out) {
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

//===----------------------------------------------------------------------===//
// Host buffers
//===----------------------------------------------------------------------===//

struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};

/// A [B, H, N, D] tensor (or a [B, H, N] f32 lse) of one dtype. With the
/// bshd layout the memory is [B, N, H, D] and the view's strides swap H and
/// N, so the kernel sees [B, H, N, D] without a copy. The storage is dense
/// (numel elements) in both layouts; a device copy mirrors it byte for byte
/// and uses the same strides.
struct HostTensor {
  rt::DType dtype = rt::DType::F32;
  int rank = 0;
  int64_t sizes[4] = {1, 1, 1, 1};
  int64_t strides[4] = {0, 0, 0, 0};
  size_t numel = 0;
  std::unique_ptr<void, FreeDeleter> mem;

  static HostTensor make4(rt::DType dt, int64_t B, int64_t H, int64_t N,
                          int64_t D, bool bshd) {
    HostTensor t;
    t.dtype = dt;
    t.rank = 4;
    t.sizes[0] = B;
    t.sizes[1] = H;
    t.sizes[2] = N;
    t.sizes[3] = D;
    t.strides[3] = 1;
    if (bshd) {
      t.strides[1] = D;
      t.strides[2] = H * D;
    } else {
      t.strides[2] = D;
      t.strides[1] = N * D;
    }
    t.strides[0] = H * N * D;
    t.allocate();
    return t;
  }

  static HostTensor make3(int64_t B, int64_t H, int64_t N) {
    HostTensor t;
    t.dtype = rt::DType::F32;
    t.rank = 3;
    t.sizes[0] = B;
    t.sizes[1] = H;
    t.sizes[2] = N;
    t.strides[2] = 1;
    t.strides[1] = N;
    t.strides[0] = H * N;
    t.allocate();
    return t;
  }

  /// Leaves `mem` null (reported as out of memory) when the size
  /// overflows.
  void allocate() {
    numel = 1;
    size_t bytes = 0;
    for (int i = 0; i < rank; ++i)
      if (__builtin_mul_overflow(numel, static_cast<size_t>(sizes[i]), &numel))
        return;
    if (__builtin_mul_overflow(numel, rt::dtypeBytes(dtype), &bytes) ||
        bytes > SIZE_MAX - 64)
      return;
    bytes = (bytes + 63) / 64 * 64; // aligned_alloc wants a multiple
    mem.reset(std::aligned_alloc(64, bytes ? bytes : 64));
  }

  bool ok() const { return mem != nullptr; }

  /// Bytes of the (dense) storage.
  size_t bytes() const { return numel * rt::dtypeBytes(dtype); }

  /// Calls fn(logical index, storage index) for every element, in logical
  /// row-major [B, H, N, D] order.
  template <typename Fn> void forEach(Fn fn) const {
    const int64_t s3 = rank == 4 ? sizes[3] : 1;
    const int64_t st3 = rank == 4 ? strides[3] : 0;
    size_t logical = 0;
    for (int64_t a = 0; a < sizes[0]; ++a)
      for (int64_t b = 0; b < sizes[1]; ++b)
        for (int64_t c = 0; c < sizes[2]; ++c)
          for (int64_t d = 0; d < s3; ++d)
            fn(logical++, static_cast<size_t>(a * strides[0] + b * strides[1] +
                                              c * strides[2] + d * st3));
  }

  void store(const std::vector<double> &values) {
    forEach([&](size_t l, size_t s) {
      rt::storeElem(dtype, mem.get(), s, values[l]);
    });
  }

  std::vector<double> load() const {
    std::vector<double> values(numel);
    forEach([&](size_t l, size_t s) {
      values[l] = rt::loadElem(dtype, mem.get(), s);
    });
    return values;
  }

  /// All-ones bytes: a NaN in f32, f16 and bf16 alike, so any element the
  /// kernel does not write shows up as NaN (and fails --check).
  void poison() { std::memset(mem.get(), 0xff, bytes()); }

#if FLASHMLIR_HAVE_COMPILER
  TensorArg arg() const {
    TensorArg a;
    a.data = mem.get();
    a.rank = rank;
    for (int i = 0; i < 4; ++i) {
      a.sizes[i] = sizes[i];
      a.strides[i] = strides[i];
    }
    return a;
  }
#endif
};

/// The buffers of one run. The inputs (q, k, v, dO) hold random values, the
/// outputs (out, lse, dq, dk, dv) are poisoned; dO and the gradients exist
/// with --backward only.
struct Tensors {
  HostTensor q, k, v, out, lse, dO, dq, dk, dv;
  bool backward = false;
  /// --sinks: the logits [Hq] and d sinks [Hq] (poisoned; f32 whatever the
  /// dtype), empty without.
  std::vector<float> sinks, dsinks;
  /// --alibi: the slopes [B, Hq] (f32), empty without.
  std::vector<float> alibi;
  /// --rotary: the tables [Nk, R / 2] (f32), empty without.
  std::vector<float> rotaryCos, rotarySin;

  std::vector<HostTensor *> all() {
    std::vector<HostTensor *> v_ = {&q, &k, &v, &out, &lse};
    if (backward)
      v_.insert(v_.end(), {&dO, &dq, &dk, &dv});
    return v_;
  }
  std::vector<HostTensor *> outputs() {
    std::vector<HostTensor *> v_ = {&out, &lse};
    if (backward)
      v_.insert(v_.end(), {&dq, &dk, &dv});
    return v_;
  }
};

/// Distinct, well-mixed seeds per input from the one --seed (splitmix64).
uint64_t deriveSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + stream * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

//===----------------------------------------------------------------------===//
// Reporting
//===----------------------------------------------------------------------===//

/// Output and gradient thresholds of the relative L2 error per dtype.
void thresholds(rt::DType dt, double *out, double *grad) {
  switch (dt) {
  case rt::DType::F32:
    *out = 1e-5;
    *grad = 2e-5;
    return;
  case rt::DType::F16:
    *out = 2e-3;
    *grad = 4e-3;
    return;
  case rt::DType::BF16:
    *out = 1.6e-2;
    *grad = 3.2e-2;
    return;
  }
}

/// A JSON number; +-inf as +-1e999 (which JSON readers take as infinity),
/// NaN as null.
std::string jsonNumber(double v) {
  if (std::isnan(v))
    return "null";
  if (std::isinf(v))
    return v > 0 ? "1e999" : "-1e999";
  // The shortest of %.15g / %.17g that reads back as the same double.
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.15g", v);
  if (std::strtod(buf, nullptr) != v)
    std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string jsonString(const std::string &s) {
  std::string r = "\"";
  for (char c : s) {
    switch (c) {
    case '"':
      r += "\\\"";
      break;
    case '\\':
      r += "\\\\";
      break;
    case '\n':
      r += "\\n";
      break;
    case '\t':
      r += "\\t";
      break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof(buf), "\\u%04x", c);
        r += buf;
      } else {
        r += c;
      }
    }
  }
  return r + "\"";
}

/// An optional measurement: absent prints as null.
struct Maybe {
  bool has = false;
  double value = 0;
  void set(double v) {
    has = true;
    value = v;
  }
  std::string json() const { return has ? jsonNumber(value) : "null"; }
};

struct Results {
  Maybe fwdErr, lseErr, dqErr, dkErr, dvErr, dsinksErr;
  Maybe msCompile, msFwd, msBwd, tflopsFwd, tflopsFwdBwd;
  int64_t peakBytes = 0, leakedBytes = 0;
  bool leakMeasured = false; ///< leaked_bytes is measured on cpu only
  std::string bundle;        ///< cuda: the bundle whose kernels ran
  std::string sm;            ///< cuda: the device, "sm_90"
  bool ok = true;
  std::string error; // a failure that is not a threshold
  std::vector<std::string> failures;
};

void printJson(const Options &o, const Results &r) {
  std::string j = "{";
  auto field = [&](const char *key, const std::string &value) {
    if (j.size() > 1)
      j += ", ";
    j += "\"";
    j += key;
    j += "\": ";
    j += value;
  };
  auto integer = [](int64_t v) { return std::to_string(v); };
  auto boolean = [](bool v) { return std::string(v ? "true" : "false"); };
  auto stringOrNull = [](const std::string &s) {
    return s.empty() ? std::string("null") : jsonString(s);
  };
  field("device", jsonString(o.device));
  field("dtype", jsonString(rt::dtypeName(o.dtype)));
  field("batch", integer(o.batch));
  field("heads", integer(o.heads));
  field("kv_heads", integer(o.kvHeads));
  field("seqlen_q", integer(o.seqlenQ));
  field("seqlen_k", integer(o.seqlenK));
  field("head_dim", integer(o.headDim));
  field("head_dim_v", integer(o.headDimV));
  field("causal", boolean(o.causal));
  field("window", o.hasWindow() ? "[" + integer(o.windowLeft) + ", " +
                                      integer(o.windowRight) + "]"
                                : "null");
  field("softcap", jsonNumber(o.softcap));
  field("scale", jsonNumber(o.scale));
  field("layout", jsonString(o.layout));
  field("pipeline", jsonString(o.pipeline));
  // On cuda the tile sizes are the bundle's (not known to fa-run).
  field("block_m", o.cuda() ? "null" : integer(o.blockM));
  field("block_n", o.cuda() ? "null" : integer(o.blockN));
  field("backward", boolean(o.backward));
  field("seed", std::to_string(o.seed));
  field("fwd_err", r.fwdErr.json());
  field("lse_err", r.lseErr.json());
  field("dq_err", r.dqErr.json());
  field("dk_err", r.dkErr.json());
  field("dv_err", r.dvErr.json());
  field("dsinks_err", r.dsinksErr.json());
  field("ms_compile", r.msCompile.json());
  field("ms_fwd", r.msFwd.json());
  field("ms_bwd", r.msBwd.json());
  field("tflops_fwd", r.tflopsFwd.json());
  field("tflops_fwdbwd", r.tflopsFwdBwd.json());
  field("peak_bytes", integer(r.peakBytes));
  field("leaked_bytes", r.leakMeasured ? integer(r.leakedBytes) : "null");
  field("bundle", stringOrNull(r.bundle));
  field("sm", stringOrNull(r.sm));
  if (!r.error.empty())
    field("error", jsonString(r.error));
  field("ok", boolean(r.ok));
  j += "}";
  std::printf("%s\n", j.c_str());
}

void printConfig(const Options &o, const std::string &bundle) {
  std::printf("fa-run: device=%s dtype=%s batch=%" PRId64 " heads=%" PRId64
              " kv_heads=%" PRId64 " seqlen_q=%" PRId64 " seqlen_k=%" PRId64
              " head_dim=%" PRId64 " head_dim_v=%" PRId64 "\n",
              o.device.c_str(), rt::dtypeName(o.dtype), o.batch, o.heads,
              o.kvHeads, o.seqlenQ, o.seqlenK, o.headDim, o.headDimV);
  std::string window = "none";
  if (o.hasWindow())
    window = std::to_string(o.windowLeft) + "," + std::to_string(o.windowRight);
  std::string kernels;
  if (o.cuda())
    kernels = "bundle=" + (bundle.empty() ? std::string("none") : bundle);
  else
    kernels = "pipeline=" + o.pipeline + " block=" + std::to_string(o.blockM) +
              "x" + std::to_string(o.blockN);
  std::printf("        causal=%s window=%s softcap=%g scale=%.9g layout=%s "
              "%s%s\n",
              o.causal ? "yes" : "no", window.c_str(), o.softcap, o.scale,
              o.layout.c_str(), kernels.c_str(), o.backward ? " backward" : "");
  if (o.varlen) {
    std::string q, k;
    for (size_t b = 0; b < o.varlenQ.size(); ++b) {
      q += (b ? "," : "") + std::to_string(o.varlenQ[b]);
      k += (b ? "," : "") + std::to_string(o.varlenK[b]);
    }
    std::printf("        varlen: %zu sequences, q lengths %s, k lengths %s "
                "(packed: %" PRId64 " query rows, %" PRId64 " key rows)\n",
                o.varlenQ.size(), q.c_str(), k.c_str(), o.seqlenQ, o.seqlenK);
  }
}

/// Compares `err` (already computed) with `limit`; records a failure.
void judge(Results &r, const char *name, double err, double limit,
           const char *what, rt::DType dt) {
  bool pass = err <= limit; // false for NaN/inf
  std::printf("%-8s %.3e  (threshold %.1e)  %s\n", name, err, limit,
              pass ? "ok" : "FAIL");
  if (!pass) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s %.3e exceeds the %s %s threshold %.1e",
                  name, err, rt::dtypeName(dt), what, limit);
    r.failures.push_back(buf);
    r.ok = false;
  }
}

double medianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Finishes: prints the verdict (and the JSON line) and returns the exit code.
int finish(const Options &o, Results &r) {
  if (!r.error.empty()) {
    r.ok = false;
    std::fflush(stdout); // keep the report in order on a shared terminal
    std::fprintf(stderr, "fa-run: error: %s\n", r.error.c_str());
  }
  for (const std::string &f : r.failures)
    std::printf("fa-run: %s\n", f.c_str());
  if (r.error.empty())
    std::printf("%s\n", r.ok ? (o.check ? "PASS" : "OK") : "FAIL");
  if (o.json)
    printJson(o, r);
  std::fflush(stdout);
  return r.ok ? 0 : 1;
}

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

//===----------------------------------------------------------------------===//
// Devices
//===----------------------------------------------------------------------===//

/// Where the kernels run. Every call reports a failure by returning false
/// with the complete message (as printed after "fa-run: error: ") in `err`.
class Device {
public:
  virtual ~Device() = default;
  /// Gets ready to run on `t` (inputs filled, outputs poisoned): compiles
  /// the kernels (cpu) or opens the runtime, allocates device buffers and
  /// copies `t` there (cuda).
  virtual bool prepare(Tensors &t, Results &r, std::string &err) = 0;
  /// Runs the forward / backward kernel(s) to completion.
  virtual bool forward(std::string &err) = 0;
  virtual bool backward(std::string &err) = 0;
  /// Brackets the checked run to measure the kernels' own memory.
  virtual void startMemory() {}
  virtual void stopMemory(Results &r) = 0;
  /// Makes the outputs of the last run visible in `t`.
  virtual bool fetch(Tensors &t, std::string &err) = 0;
};

#if FLASHMLIR_HAVE_COMPILER

/// The host: kernels JIT-compiled through the CPU pipeline, called on the
/// host buffers themselves.
class CpuDevice final : public Device {
public:
  explicit CpuDevice(const Options &o) : o(o) {}

  bool prepare(Tensors &tensors, Results &r, std::string &err) override {
    t = &tensors;
    KernelConfig kc;
    kc.dtype = o.dtype;
    kc.D = o.headDim;
    kc.Dv = o.headDimV;
    kc.scale = o.scale;
    kc.causal = o.causal;
    kc.windowLeft = o.windowLeft;
    kc.windowRight = o.windowRight;
    kc.softcap = o.softcap;
    kc.rotaryDim = o.rotary;
    kc.rotaryInterleaved = o.rotaryInterleaved;
    kc.unfused = o.pipeline == "unfused";
    kc.blockM = o.blockM;
    kc.blockN = o.blockN;

    std::string e;
    auto t0 = Clock::now();
    kernels = CpuKernels::compile(kc, e);
    if (!kernels) {
      err = "cannot compile the kernels: " + e;
      return false;
    }
    if (o.backward && !kernels->compileBackward(e)) {
      err = "cannot compile the backward kernel: " + e;
      return false;
    }
    r.msCompile.set(msSince(t0));
    return true;
  }

  bool forward(std::string &err) override {
    std::string e;
    if (o.varlen ? kernels->varlenForward(packed(t->q), packed(t->k),
                                          packed(t->v), packed(t->out),
                                          packed(t->lse), seqs(), e)
                 : kernels->forward(t->q.arg(), t->k.arg(), t->v.arg(),
                                    t->out.arg(), t->lse.arg(), mods(), e))
      return true;
    err = "forward failed: " + e;
    return false;
  }

  bool backward(std::string &err) override {
    std::string e;
    if (o.varlen
            ? kernels->varlenBackward(packed(t->q), packed(t->k), packed(t->v),
                                      packed(t->out), packed(t->dO),
                                      packed(t->lse), packed(t->dq),
                                      packed(t->dk), packed(t->dv), seqs(), e)
            : kernels->backward(t->q.arg(), t->k.arg(), t->v.arg(),
                                t->out.arg(), t->dO.arg(), t->lse.arg(),
                                t->dq.arg(), t->dk.arg(), t->dv.arg(), mods(),
                                e))
      return true;
    err = "backward failed: " + e;
    return false;
  }

  /// --sinks as the kernels take them (none: all null).
  ScoreModArgs mods() const {
    ScoreModArgs m;
    if (!t->sinks.empty()) {
      m.sinks = t->sinks.data();
      m.gradSinks = t->dsinks.data();
    }
    if (!t->alibi.empty()) {
      m.alibiSlopes = t->alibi.data();
      m.alibiPerSequence = true;
    }
    if (!t->rotaryCos.empty()) {
      m.rotaryCos = t->rotaryCos.data();
      m.rotarySin = t->rotarySin.data();
      m.rotaryPositions = o.seqlenK;
    }
    return m;
  }

  void startMemory() override {
    CpuKernels::resetPeak();
    live0 = CpuKernels::liveBytes();
  }

  void stopMemory(Results &r) override {
    r.peakBytes = CpuKernels::peakBytes() - live0;
    r.leakedBytes = CpuKernels::liveBytes() - live0;
    r.leakMeasured = true;
  }

  bool fetch(Tensors &, std::string &) override { return true; }

private:
  /// The packed view of a batch-1 bshd buffer: [N, H, D] (lse: [H, N]).
  static TensorArg packed(const HostTensor &h) {
    TensorArg a;
    a.data = h.mem.get();
    if (h.rank == 4) {
      a.rank = 3;
      a.sizes[0] = h.sizes[2];
      a.sizes[1] = h.sizes[1];
      a.sizes[2] = h.sizes[3];
      a.strides[0] = h.strides[2];
      a.strides[1] = h.strides[1];
      a.strides[2] = h.strides[3];
    } else {
      a.rank = 2;
      a.sizes[0] = h.sizes[1];
      a.sizes[1] = h.sizes[2];
      a.strides[0] = h.strides[1];
      a.strides[1] = h.strides[2];
    }
    return a;
  }

  VarlenArgs seqs() const {
    VarlenArgs s;
    s.cuSeqlensQ = o.cuQ.data();
    s.cuSeqlensK = o.cuK.data();
    s.batch = static_cast<int64_t>(o.varlenQ.size());
    s.maxSeqlenQ = o.maxQ;
    s.maxSeqlenK = o.maxK;
    return s;
  }

  const Options &o;
  Tensors *t = nullptr;
  std::unique_ptr<CpuKernels> kernels;
  int64_t live0 = 0;
};

#endif // FLASHMLIR_HAVE_COMPILER

/// Host bytes fa-run needs for `o`, roughly (in double: no overflow): the
/// tensors in their dtype, the float64 inputs, and with --check the float64
/// references and loaded outputs.
double hostBytesNeeded(const Options &o) {
  const double eb = static_cast<double>(rt::dtypeBytes(o.dtype));
  const double b = static_cast<double>(o.batch);
  const double q = b * o.heads * o.seqlenQ * o.headDim;
  const double k = b * o.kvHeads * o.seqlenK * o.headDim;
  const double v = b * o.kvHeads * o.seqlenK * o.headDimV;
  const double out = b * o.heads * o.seqlenQ * o.headDimV;
  const double lse = b * o.heads * o.seqlenQ;
  double inputs = q + k + v, outputs = out, grads = 0;
  if (o.backward) {
    inputs += out; // dO
    grads = q + k + v;
  }
  double bytes = (inputs + outputs + grads) * eb + lse * 4 + inputs * 8;
  if (o.check)
    bytes += 2 * 8 * (outputs + lse + grads); // references + loaded values
  return bytes;
}

/// The machine's physical memory in bytes (0 when unknown).
double physicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * size : 0;
}

/// The path of this executable (empty when unknown).
fs::path executablePath(const char *argv0) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty())
    return exe;
  if (!argv0 || !*argv0 || !std::strchr(argv0, '/'))
    return {}; // found through PATH: unknown
  ec.clear();
  exe = fs::absolute(argv0, ec);
  return ec ? fs::path() : exe.lexically_normal();
}

/// A GPU through the runtime (fa_runtime.h): the kernels of a bundle, device
/// buffers that mirror the host ones, launches on the default stream, each
/// run ended by fa_synchronize.
class CudaDevice final : public Device {
public:
  /// `bundleDir`: the bundle to open, empty for none (then every
  /// configuration is missing); `bundleNote`: why there is none.
  CudaDevice(const Options &o, std::string bundleDir, std::string bundleNote,
             std::string exePath)
      : o(o), bundleDir(std::move(bundleDir)),
        bundleNote(std::move(bundleNote)), exePath(std::move(exePath)) {}

  ~CudaDevice() override {
    // Device buffers first (through the runtime that allocated them), then
    // the runtimes (on-demand ones before the first: they share its
    // context).
    if (!runtimes.empty())
      for (void *p : allocations)
        fa_free(runtimes.front(), p);
    for (auto it = runtimes.rbegin(); it != runtimes.rend(); ++it)
      fa_runtime_destroy(*it);
    std::error_code ec;
    for (const fs::path &p : tempDirs)
      fs::remove_all(p, ec);
  }

  bool prepare(Tensors &tensors, Results &r, std::string &err) override {
    results = &r;
    r.bundle = bundleDir;
    if (!openRuntime(bundleDir, err))
      return false;
    fa_runtime *rt = runtimes.front();
    int major = 0, minor = 0, sms = 0;
    if (fa_status st = fa_device_info(rt, &major, &minor, &sms); st != FA_OK)
      return fail(rt, st, err);
    ccMajor = major;
    ccMinor = minor;
    r.sm = "sm_" + std::to_string(major) + std::to_string(minor);
    std::printf("gpu      %s, %d SMs\n", r.sm.c_str(), sms);

    params.dtype = o.dtype == rt::DType::F32   ? FA_F32
                   : o.dtype == rt::DType::F16 ? FA_F16
                                               : FA_BF16;
    params.causal = o.causal ? 1 : 0;
    params.window_left = o.windowLeft;
    params.window_right = o.windowRight;
    params.scale = static_cast<float>(o.scale);
    params.softcap = static_cast<float>(o.softcap);

    // The outputs are poisoned on the host: copying them poisons the device
    // buffers too.
    t = &tensors;
    if (!upload(t->q, Q, err) || !upload(t->k, K, err) ||
        !upload(t->v, V, err) || !upload(t->out, O, err) ||
        !upload(t->lse, LSE, err))
      return false;
    if (o.backward && (!upload(t->dO, DO, err) || !upload(t->dq, DQ, err) ||
                       !upload(t->dk, DK, err) || !upload(t->dv, DV, err)))
      return false;
    // A host vector into fresh device memory `d` (freed with the others).
    auto toDevice = [&](const auto &h, void *&d) {
      size_t bytes = h.size() * sizeof(h[0]);
      if (fa_status st = fa_malloc(rt, bytes, &d); st != FA_OK)
        return fail(rt, st, err);
      allocations.push_back(d);
      if (fa_status st = fa_memcpy_htod(rt, d, h.data(), bytes); st != FA_OK)
        return fail(rt, st, err);
      return true;
    };
    // f32 [Hq] each; dsinks poisoned like the outputs.
    if (!t->sinks.empty() && (!toDevice(t->sinks, sinksDev[0]) ||
                              !toDevice(t->dsinks, sinksDev[1])))
      return false;
    if (!t->rotaryCos.empty() && (!toDevice(t->rotaryCos, rotaryDev[0]) ||
                                  !toDevice(t->rotarySin, rotaryDev[1])))
      return false; // [Nk, R / 2] each
    if (!t->alibi.empty() && !toDevice(t->alibi, alibiDev)) // f32 [B, Hq]
      return false;
    if (o.varlen && (!toDevice(o.cuQ, cuDev[0]) || !toDevice(o.cuK, cuDev[1])))
      return false; // the offsets
    return true;
  }

  // Packed views of the batch-1 bshd buffers (--varlen): [T, H, D], lse
  // [Hq, Tq].
  static fa_tensor packed(const fa_tensor &d) {
    fa_tensor p{};
    p.data = d.data;
    p.sizes[0] = d.sizes[2];
    p.sizes[1] = d.sizes[1];
    p.sizes[2] = d.sizes[3];
    p.sizes[3] = 1;
    p.strides[0] = d.strides[2];
    p.strides[1] = d.strides[1];
    p.strides[2] = 1;
    p.strides[3] = 1;
    return p;
  }
  fa_tensor packedLse() const {
    fa_tensor pl{};
    pl.data = dev[LSE].data;
    pl.sizes[0] = dev[LSE].sizes[1];
    pl.sizes[1] = dev[LSE].sizes[2];
    pl.strides[0] = dev[LSE].strides[1];
    pl.strides[1] = 1;
    return pl;
  }

  bool forward(std::string &err) override {
    if (o.varlen) {
      fa_tensor pq = packed(dev[Q]), pk = packed(dev[K]), pv = packed(dev[V]),
                po = packed(dev[O]), pl = packedLse();
      return call(
          [&](fa_runtime *rt) {
            return fa_forward_varlen(
                rt, &params, &pq, &pk, &pv, &po, &pl,
                static_cast<const int32_t *>(cuDev[0]),
                static_cast<const int32_t *>(cuDev[1]),
                static_cast<int64_t>(o.varlenQ.size()), o.maxQ, o.maxK,
                nullptr);
          },
          err);
    }
    fa_score_mods mods = scoreMods(false);
    return call(
        [&](fa_runtime *rt) {
          return fa_forward_mods(rt, &params, &mods, &dev[Q], &dev[K],
                                 &dev[V], &dev[O], &dev[LSE], o.numSplits,
                                 nullptr);
        },
        err);
  }

  bool backward(std::string &err) override {
    if (o.varlen) {
      fa_tensor pq = packed(dev[Q]), pk = packed(dev[K]), pv = packed(dev[V]),
                po = packed(dev[O]), pdo = packed(dev[DO]),
                pdq = packed(dev[DQ]), pdk = packed(dev[DK]),
                pdv = packed(dev[DV]), pl = packedLse();
      return call(
          [&](fa_runtime *rt) {
            return fa_backward_varlen(
                rt, &params, &pq, &pk, &pv, &po, &pdo, &pl, &pdq, &pdk, &pdv,
                static_cast<const int32_t *>(cuDev[0]),
                static_cast<const int32_t *>(cuDev[1]),
                static_cast<int64_t>(o.varlenQ.size()), o.maxQ, o.maxK,
                nullptr);
          },
          err);
    }
    fa_score_mods mods = scoreMods(true);
    return call(
        [&](fa_runtime *rt) {
          return fa_backward_mods(rt, &params, &mods, &dev[Q], &dev[K],
                                  &dev[V], &dev[O], &dev[DO], &dev[LSE],
                                  &dev[DQ], &dev[DK], &dev[DV], nullptr);
        },
        err);
  }

  void stopMemory(Results &r) override {
    // The attention's own device memory: what the runtimes hold (the
    // backward workspace); the caller's buffers are not counted.
    int64_t bytes = 0;
    for (fa_runtime *rt : runtimes)
      bytes += fa_workspace_bytes(rt);
    r.peakBytes = bytes;
  }

  bool fetch(Tensors &tensors, std::string &err) override {
    fa_runtime *rt = runtimes.front();
    auto down = [&](HostTensor &h, Slot s) {
      fa_status st = fa_memcpy_dtoh(rt, h.mem.get(), dev[s].data, h.bytes());
      return st == FA_OK || fail(rt, st, err);
    };
    if (!down(tensors.out, O) || !down(tensors.lse, LSE))
      return false;
    if (o.backward && (!down(tensors.dq, DQ) || !down(tensors.dk, DK) ||
                       !down(tensors.dv, DV)))
      return false;
    if (o.backward && sinksDev[1]) {
      fa_status st =
          fa_memcpy_dtoh(rt, tensors.dsinks.data(), sinksDev[1],
                         tensors.dsinks.size() * sizeof(float));
      if (st != FA_OK)
        return fail(rt, st, err);
    }
    return true;
  }

private:
  enum Slot { Q, K, V, O, LSE, DO, DQ, DK, DV, NumSlots };
  /// --sinks: the logits and d sinks in device memory (null without).
  void *sinksDev[2] = {nullptr, nullptr};
  /// --alibi: the slopes in device memory (null without).
  void *alibiDev = nullptr;
  /// --rotary: the cos / sin tables in device memory (null without).
  void *rotaryDev[2] = {nullptr, nullptr};
  /// fa_score_mods of the calls (sinks: d sinks in the backward).
  fa_score_mods scoreMods(bool backward) const {
    fa_score_mods m{};
    m.sinks = static_cast<const float *>(sinksDev[0]);
    m.dsinks = backward ? static_cast<float *>(sinksDev[1]) : nullptr;
    m.alibi_slopes = static_cast<const float *>(alibiDev);
    m.alibi_batch_stride = alibiDev ? o.heads : 0;
    if (rotaryDev[0]) {
      m.rotary_cos = static_cast<const float *>(rotaryDev[0]);
      m.rotary_sin = static_cast<const float *>(rotaryDev[1]);
      m.rotary_positions = o.seqlenK;
      m.rotary_dim = o.rotary;
      m.rotary_interleaved = o.rotaryInterleaved;
    }
    return m;
  }

  /// Sets `err` to the runtime's message for `st` and returns false.
  static bool fail(fa_runtime *rt, fa_status st, std::string &err) {
    const char *msg = rt ? fa_runtime_last_error(rt) : "";
    err = msg && *msg ? msg
                      : std::string("the CUDA runtime failed with ") +
                            fa_status_name(st);
    return false;
  }

  /// Creates a runtime on `dir` (none when empty) and makes it the active
  /// one. On failure the runtime is still kept (and destroyed at the end).
  bool openRuntime(const std::string &dir, std::string &err) {
    fa_runtime *rt = nullptr;
    fa_status st = fa_runtime_create(dir.empty() ? nullptr : dir.c_str(), &rt);
    if (!rt) {
      err =
          std::string("cannot create the CUDA runtime: ") + fa_status_name(st);
      return false;
    }
    runtimes.push_back(rt);
    if (st != FA_OK)
      return fail(rt, st, err);
    active = rt;
    return true;
  }

  bool upload(HostTensor &h, Slot s, std::string &err) {
    fa_runtime *rt = runtimes.front();
    void *p = nullptr;
    if (fa_status st = fa_malloc(rt, h.bytes(), &p); st != FA_OK)
      return fail(rt, st, err);
    allocations.push_back(p);
    if (fa_status st = fa_memcpy_htod(rt, p, h.mem.get(), h.bytes());
        st != FA_OK)
      return fail(rt, st, err);
    fa_tensor &d = dev[s];
    d.data = p;
    for (int i = 0; i < 4; ++i) {
      d.sizes[i] = h.sizes[i];
      d.strides[i] = h.strides[i];
    }
    if (h.rank == 3) { // lse: only sizes/strides[0..2] are read
      d.sizes[3] = 1;
      d.strides[3] = 1;
    }
    return true;
  }

  /// Launches through the active runtime and synchronizes. When the bundle
  /// lacks the configuration, moves on to another bundle (the cache, then a
  /// fresh compilation; see nextBundle) and tries again.
  template <typename Launch> bool call(Launch launch, std::string &err) {
    for (;;) {
      fa_status st = launch(active);
      if (st == FA_ERR_NO_KERNEL) {
        if (!nextBundle(err))
          return false;
        continue;
      }
      if (st != FA_OK)
        return fail(active, st, err);
      if ((st = fa_synchronize(active)) != FA_OK)
        return fail(active, st, err);
      return true;
    }
  }

  /// The active runtime has no kernel for the configuration (its message
  /// says what it has). Opens a bundle that has one and makes it active, or
  /// returns false with the message.
  bool nextBundle(std::string &err) {
    std::string why = fa_runtime_last_error(active);
    if (active == runtimes.front() && bundleDir.empty() && !bundleNote.empty())
      why = bundleNote + ": " + why;
#if !FLASHMLIR_HAVE_COMPILER
    err = why +
          " (this fa-run was built without the compiler, so it cannot "
          "compile missing kernels: write a bundle with them, e.g. "
          "fa-compile --out DIR --target sm_75,sm_80,sm_90a --dtype " +
          std::string(rt::dtypeName(o.dtype)) + " --head-dim " +
          std::to_string(o.headDim) + " --head-dim-v " +
          std::to_string(o.headDimV) + " --masked " + (masked() ? "1" : "0") +
          " --softcap " + (o.softcap > 0 ? "1" : "0") +
          (o.alibi ? " --alibi 1" : "") + (o.rotary ? " --rotary 1" : "") +
          ", and pass --bundle DIR)";
    return false;
#else
    if (ccMajor * 10 + ccMinor < 75 || stage == Stage::Compiled) {
      // No bundle can help (devices below sm_75 have no kernels), or the
      // freshly compiled one did not.
      err = why;
      return false;
    }
    std::string root = cacheRoot();
    if (root.empty()) {
      err = why + "; cannot compile it on demand: neither FLASHMLIR_CACHE_DIR "
                  "nor HOME is set";
      return false;
    }
    const fs::path dir = fs::path(root) / ("bundle-" + configName());
    const std::string stamp = buildStamp();

    // A bundle compiled earlier by this very fa-run binary.
    if (stage == Stage::Given) {
      stage = Stage::Cached;
      std::error_code ec;
      if (!stamp.empty() && readStamp(dir) == stamp &&
          fs::exists(dir / "manifest.json", ec)) {
        std::string e;
        if (openRuntime(dir.string(), e)) {
          results->bundle = dir.string();
          return true;
        }
        // A broken cache entry: compile it again.
      }
    }

    stage = Stage::Compiled;
    std::fflush(stdout);
    std::fprintf(
        stderr, "fa-run: %s; compiling %s for sm_75, sm_80 and sm_90a into %s\n",
        bundleDir.empty() ? "no kernel bundle"
                          : "the kernel bundle lacks this configuration",
        configName().c_str(), dir.string().c_str());
    std::string e;
    fs::path out;
    auto t0 = Clock::now();
    if (!compileInto(dir, stamp, &out, e)) {
      err = why + "; compiling it on demand failed: " + e;
      return false;
    }
    results->msCompile.set(msSince(t0));
    if (!openRuntime(out.string(), err))
      return false;
    results->bundle = out.string();
    return true;
#endif
  }

  bool masked() const { return o.causal || o.hasWindow(); }

#if FLASHMLIR_HAVE_COMPILER
  enum class Stage { Given, Cached, Compiled };

  /// The head dims of the kernels: the runtime zero-pads the others to
  /// multiples of 8.
  static int64_t kernelDim(int64_t d) { return (d + 7) / 8 * 8; }

  /// "f16_d64_dv64_masked_softcap": what a bundle config is named after.
  std::string configName() const {
    return std::string(rt::dtypeName(o.dtype)) + "_d" +
           std::to_string(kernelDim(o.headDim)) + "_dv" +
           std::to_string(kernelDim(o.headDimV)) +
           (masked() ? "_masked" : "") + (o.softcap > 0 ? "_softcap" : "") +
           (o.alibi ? "_alibi" : "") + (o.rotary ? "_rope" : "") +
           (o.varlen ? "_varlen" : "");
  }

  /// $FLASHMLIR_CACHE_DIR, else $HOME/.cache/flashmlir; empty if neither.
  static std::string cacheRoot() {
    if (const char *d = std::getenv("FLASHMLIR_CACHE_DIR"); d && *d)
      return d;
    if (const char *h = std::getenv("HOME"); h && *h)
      return (fs::path(h) / ".cache" / "flashmlir").string();
    return "";
  }

  /// Identifies the compiler that wrote a cached bundle: this executable's
  /// path, size and modification time (a rebuilt fa-run recompiles). Empty
  /// when unknown (then the cache is never trusted).
  std::string buildStamp() const {
    std::error_code ec;
    if (exePath.empty())
      return "";
    uintmax_t size = fs::file_size(exePath, ec);
    if (ec)
      return "";
    auto mtime = fs::last_write_time(exePath, ec);
    if (ec)
      return "";
    return "fa-run " + exePath + " " + std::to_string(size) + " " +
           std::to_string(mtime.time_since_epoch().count()) + "\n";
  }

  static std::string readStamp(const fs::path &dir) {
    std::ifstream in(dir / "fa-run.stamp", std::ios::binary);
    if (!in)
      return "";
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  /// Compiles the configuration for the default bundle's targets (sm_75,
  /// sm_80, sm_90a) into a fresh directory
  /// beside `dir`, then moves it to `dir`. `*out` is where the bundle ended
  /// up (the temporary directory itself when it could not be moved; it is
  /// removed at exit then).
  bool compileInto(const fs::path &dir, const std::string &stamp, fs::path *out,
                   std::string &err) {
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      err = "cannot create " + dir.parent_path().string() + ": " + ec.message();
      return false;
    }
    fs::path tmp = dir;
    tmp += ".tmp-" + std::to_string(static_cast<long>(getpid()));
    fs::remove_all(tmp, ec);

    std::vector<BundleConfig> configs;
    for (const std::string &target : defaultBundleTargets()) {
      BundleConfig c;
      c.dtype = rt::dtypeName(o.dtype);
      c.headDim = kernelDim(o.headDim);
      c.headDimV = kernelDim(o.headDimV);
      c.masked = masked();
      c.softcap = o.softcap > 0;
      c.varlen = o.varlen;
      c.alibi = o.alibi;
      c.rotary = o.rotary > 0;
      c.target = target;
      configs.push_back(c);
    }
    BundleOptions bo;
    bo.outDir = tmp.string();
    if (!writeBundle(configs, bo, err)) {
      fs::remove_all(tmp, ec);
      return false;
    }
    if (!stamp.empty()) {
      std::ofstream s(tmp / "fa-run.stamp", std::ios::binary);
      s << stamp;
    }
    // Replace what was there (a stale or broken entry). Another fa-run may
    // race us; if the move fails, use the private copy.
    fs::remove_all(dir, ec);
    ec.clear();
    fs::rename(tmp, dir, ec);
    if (ec) {
      tempDirs.push_back(tmp);
      *out = tmp;
    } else {
      *out = dir;
    }
    return true;
  }

  Stage stage = Stage::Given;
#endif

  const Options &o;
  const std::string bundleDir, bundleNote, exePath;
  Results *results = nullptr;
  Tensors *t = nullptr;
  /// Every runtime created (the first one allocates the buffers); `active`
  /// launches the kernels.
  std::vector<fa_runtime *> runtimes;
  fa_runtime *active = nullptr;
  std::vector<void *> allocations;
  std::vector<fs::path> tempDirs;
  fa_tensor dev[NumSlots] = {};
  void *cuDev[2] = {nullptr, nullptr}; ///< --varlen: cu_seqlens_q / _k
  fa_attn_params params = {};
  int ccMajor = 0, ccMinor = 0;
};

int run(int argc, char **argv) {
  Options o;
  if (int rc = parseArgs(argc, argv, o); rc >= 0)
    return rc;

  rt::AttnConfig cfg;
  cfg.B = o.batch;
  cfg.Hq = o.heads;
  cfg.Hkv = o.kvHeads;
  cfg.Nq = o.seqlenQ;
  cfg.Nk = o.seqlenK;
  cfg.D = o.headDim;
  cfg.Dv = o.headDimV;
  cfg.scale = o.scale;
  cfg.causal = o.causal;
  cfg.windowLeft = o.windowLeft;
  cfg.windowRight = o.windowRight;
  cfg.softcap = o.softcap;
  if (std::string msg = rt::validateConfig(cfg); !msg.empty())
    return usageError("invalid configuration: %s", msg.c_str());
  if (o.rotary && (o.rotary % 2 != 0 || o.rotary > o.headDim))
    return usageError("--rotary %" PRId64 " must be even and <= --head-dim",
                      o.rotary);
  if (o.rotary && o.seqlenQ > o.seqlenK)
    return usageError("--rotary needs --seqlen-q <= --seqlen-k (query i is at "
                      "position i + SK - SQ)");
  if (o.rotaryInterleaved && !o.rotary)
    return usageError("--rotary-interleaved needs --rotary R");
  if (o.cuda()) {
    // The runtime takes scale and softcap as f32: the reference uses the
    // values the kernels see.
    cfg.scale = static_cast<float>(o.scale);
    cfg.softcap = static_cast<float>(o.softcap);
  }

#if !FLASHMLIR_HAVE_COMPILER
  if (!o.cuda())
    return usageError("--device cpu needs the compiler, but this fa-run was "
                      "built without it (-DFLASHMLIR_ENABLE_COMPILER=OFF); "
                      "use --device cuda");
#endif

  // Debugging aid for the test suite: FLASHMLIR_FA_RUN_SKIP=fwd|bwd|all skips
  // running that kernel, leaving its (poisoned) outputs as they are, which
  // shows that --check catches elements a kernel never writes.
  bool skipFwd = false, skipBwd = false;
  if (const char *skip = std::getenv("FLASHMLIR_FA_RUN_SKIP"); skip && *skip) {
    std::string s = skip;
    skipFwd = s == "fwd" || s == "all";
    skipBwd = s == "bwd" || s == "all";
    if (!skipFwd && !skipBwd)
      return usageError("FLASHMLIR_FA_RUN_SKIP expects fwd, bwd or all, got "
                        "'%s'",
                        skip);
    std::fprintf(stderr,
                 "fa-run: warning: FLASHMLIR_FA_RUN_SKIP=%s: not "
                 "running that kernel\n",
                 skip);
  }

  // The device.
  std::unique_ptr<Device> device;
  std::string bundle;
  if (o.cuda()) {
    const fs::path exe = executablePath(argc > 0 ? argv[0] : nullptr);
    const fs::path exeDir = exe.parent_path();
    std::string note;
    if (o.hasBundle) {
      bundle = o.bundle;
    } else {
      fs::path def = exeDir.empty()
                         ? fs::path()
                         : (exeDir.parent_path() / "bundle").lexically_normal();
      std::error_code ec;
      if (!def.empty() && fs::is_directory(def, ec))
        bundle = def.string();
      else
        note = "no kernel bundle (" +
               (def.empty() ? std::string("the default one could not be "
                                          "located")
                            : def.string() + " does not exist") +
               "; pass --bundle DIR)";
    }
    device = std::make_unique<CudaDevice>(o, bundle, note, exe.string());
  } else {
#if FLASHMLIR_HAVE_COMPILER
    device = std::make_unique<CpuDevice>(o);
#endif
  }

  printConfig(o, bundle);
  Results r;

  // Refuse what cannot fit in host memory before allocating it: with memory
  // overcommit the allocations would succeed and the process be killed when
  // it touches them.
  // (Also when the machine's memory is unknown: sizes whose byte counts
  // pass 2^62 would overflow the buffers' 64-bit index arithmetic.)
  if (double need = hostBytesNeeded(o), have = physicalMemoryBytes();
      (have > 0 && need > have) || need > 0x1p62) {
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  "out of host memory: the buffers of this configuration "
                  "need about %.1f GiB, this machine has %.1f GiB",
                  need / (1 << 30), have / (1 << 30));
    r.error = buf;
    return finish(o, r);
  }

  // Inputs: fresh random values in the dtype; outputs: poisoned.
  const bool bshd = o.layout == "bshd";
  const rt::DType dt = o.dtype;
  Tensors t;
  t.backward = o.backward;
  t.q = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDim, bshd);
  t.k = HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDim, bshd);
  t.v = HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDimV, bshd);
  t.out = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDimV, bshd);
  t.lse = HostTensor::make3(o.batch, o.heads, o.seqlenQ);
  if (o.backward) {
    t.dO = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDimV, bshd);
    t.dq = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDim, bshd);
    t.dk =
        HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDim, bshd);
    t.dv =
        HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDimV, bshd);
  }
  for (HostTensor *h : t.all())
    if (!h->ok()) {
      r.error = "out of memory allocating the buffers";
      return finish(o, r);
    }

  std::vector<double> qd(t.q.numel), kd(t.k.numel), vd(t.v.numel), dOd;
  rt::fillRandom(deriveSeed(o.seed, 1), dt, qd.data(), qd.size());
  rt::fillRandom(deriveSeed(o.seed, 2), dt, kd.data(), kd.size());
  rt::fillRandom(deriveSeed(o.seed, 3), dt, vd.data(), vd.size());
  t.q.store(qd);
  t.k.store(kd);
  t.v.store(vd);
  // Sink logits in [-2, 4] (N(0, 1)-scaled inputs give scores of that size).
  std::vector<double> sinksD;
  if (o.sinks) {
    sinksD.resize(o.heads);
    rt::fillRandom(deriveSeed(o.seed, 5), rt::DType::F32, sinksD.data(),
                   sinksD.size());
    for (double &x : sinksD)
      x = static_cast<float>(1.0 + 3.0 * x);
    t.sinks.assign(sinksD.begin(), sinksD.end());
    t.dsinks.assign(o.heads, std::numeric_limits<float>::quiet_NaN());
    cfg.sinks = sinksD.data();
  }
  // ALiBi slopes [B, Hq] in [0, 0.3) (FlashAttention-2's tests' range).
  std::vector<double> alibiD;
  if (o.alibi) {
    alibiD.resize(o.batch * o.heads);
    rt::fillRandom(deriveSeed(o.seed, 6), rt::DType::F32, alibiD.data(),
                   alibiD.size());
    for (double &x : alibiD)
      x = static_cast<float>(0.3 * std::fabs(std::tanh(x)));
    t.alibi.assign(alibiD.begin(), alibiD.end());
    cfg.alibi = alibiD.data();
    cfg.alibiStrideB = o.heads;
  }
  // RoPE tables [Nk, R / 2]: cos / sin of p * 10000^(-2m / R), rounded to
  // f32 (the reference uses the same values in float64).
  std::vector<double> rotCosD, rotSinD;
  if (o.rotary) {
    const int64_t half = o.rotary / 2;
    for (int64_t p = 0; p < o.seqlenK; ++p)
      for (int64_t m = 0; m < half; ++m) {
        double th = p * std::pow(10000.0, -2.0 * m / o.rotary);
        rotCosD.push_back(static_cast<float>(std::cos(th)));
        rotSinD.push_back(static_cast<float>(std::sin(th)));
      }
    t.rotaryCos.assign(rotCosD.begin(), rotCosD.end());
    t.rotarySin.assign(rotSinD.begin(), rotSinD.end());
    cfg.rotaryCos = rotCosD.data();
    cfg.rotarySin = rotSinD.data();
    cfg.rotaryDim = o.rotary;
    cfg.rotaryInterleaved = o.rotaryInterleaved;
  }
  if (o.backward) {
    dOd.resize(t.dO.numel);
    rt::fillRandom(deriveSeed(o.seed, 4), dt, dOd.data(), dOd.size());
    t.dO.store(dOd);
  }
  for (HostTensor *h : t.outputs())
    h->poison();

  std::string err;
  if (!device->prepare(t, r, err)) {
    r.error = err;
    return finish(o, r);
  }

  auto runFwd = [&]() { return skipFwd || device->forward(err); };
  auto runBwd = [&]() { return skipBwd || device->backward(err); };

  // The run that is checked; it also measures the kernels' own memory.
  device->startMemory();
  if (!runFwd() || (o.backward && !runBwd())) {
    r.error = err;
    return finish(o, r);
  }
  device->stopMemory(r);
  if (!device->fetch(t, err)) {
    r.error = err;
    return finish(o, r);
  }

  if (o.check) {
    double outLimit = 0, gradLimit = 0;
    thresholds(dt, &outLimit, &gradLimit);
    std::vector<double> oRef(t.out.numel), lseRef(t.lse.numel);
    const int64_t nSeq = static_cast<int64_t>(o.varlenQ.size());
    if (o.varlen)
      rt::referenceVarlenForward(cfg, o.cuQ.data(), o.cuK.data(), nSeq,
                                 qd.data(), kd.data(), vd.data(), oRef.data(),
                                 lseRef.data());
    else
      rt::referenceForward(cfg, qd.data(), kd.data(), vd.data(), oRef.data(),
                           lseRef.data());
    std::vector<double> oGot = t.out.load(), lseGot = t.lse.load();
    r.fwdErr.set(rt::relativeError(oGot.data(), oRef.data(), oRef.size()));
    r.lseErr.set(
        rt::relativeError(lseGot.data(), lseRef.data(), lseRef.size()));
    judge(r, "fwd_err", r.fwdErr.value, outLimit, "output", dt);
    judge(r, "lse_err", r.lseErr.value, outLimit, "output", dt);
    if (o.backward) {
      std::vector<double> dqRef(t.dq.numel), dkRef(t.dk.numel),
          dvRef(t.dv.numel), dsinksRef(o.sinks ? o.heads : 0);
      if (o.varlen)
        rt::referenceVarlenBackward(cfg, o.cuQ.data(), o.cuK.data(), nSeq,
                                    qd.data(), kd.data(), vd.data(),
                                    dOd.data(), dqRef.data(), dkRef.data(),
                                    dvRef.data());
      else
        rt::referenceBackward(cfg, qd.data(), kd.data(), vd.data(),
                              dOd.data(), dqRef.data(), dkRef.data(),
                              dvRef.data(),
                              o.sinks ? dsinksRef.data() : nullptr);
      std::vector<double> dqGot = t.dq.load(), dkGot = t.dk.load(),
                          dvGot = t.dv.load();
      r.dqErr.set(rt::relativeError(dqGot.data(), dqRef.data(), dqRef.size()));
      r.dkErr.set(rt::relativeError(dkGot.data(), dkRef.data(), dkRef.size()));
      r.dvErr.set(rt::relativeError(dvGot.data(), dvRef.data(), dvRef.size()));
      judge(r, "dq_err", r.dqErr.value, gradLimit, "gradient", dt);
      judge(r, "dk_err", r.dkErr.value, gradLimit, "gradient", dt);
      judge(r, "dv_err", r.dvErr.value, gradLimit, "gradient", dt);
      if (o.sinks) {
        std::vector<double> got(t.dsinks.begin(), t.dsinks.end());
        r.dsinksErr.set(
            rt::relativeError(got.data(), dsinksRef.data(), got.size()));
        judge(r, "dsinks_err", r.dsinksErr.value, gradLimit, "gradient", dt);
      }
    }
    if (r.leakMeasured && r.leakedBytes != 0) {
      r.failures.push_back("memory leak: the kernels left " +
                           std::to_string(r.leakedBytes) +
                           " allocated bytes unfreed");
      r.ok = false;
    }
  } else if (r.leakMeasured && r.leakedBytes != 0) {
    std::printf("fa-run: warning: the kernels left %" PRId64
                " allocated bytes unfreed\n",
                r.leakedBytes);
  }

  if (o.bench) {
    // FlashAttention's convention: 4 * B * HQ * NQ * NK * D forward FLOPs
    // (2 * ... * (D + DV) when the head dims differ), halved when causal;
    // forward + backward counts 3.5x the forward.
    double flops = 2.0 * o.batch * o.heads * o.seqlenQ * o.seqlenK *
                   static_cast<double>(o.headDim + o.headDimV);
    if (o.varlen) { // per sequence
      flops = 0;
      for (size_t b = 0; b < o.varlenQ.size(); ++b)
        flops += 2.0 * o.heads * o.varlenQ[b] * o.varlenK[b] *
                 static_cast<double>(o.headDim + o.headDimV);
    }
    if (o.causal)
      flops /= 2;
    // Each run is synchronous (cuda: launch + fa_synchronize), so host wall
    // time measures it.
    auto timeIt = [&](auto run, Maybe &ms) {
      if (!run())
        return false; // warm-up
      std::vector<double> times;
      for (int64_t i = 0; i < o.reps; ++i) {
        auto t0 = Clock::now();
        if (!run())
          return false;
        times.push_back(msSince(t0));
      }
      ms.set(medianMs(times));
      return true;
    };
    if (!timeIt(runFwd, r.msFwd)) {
      r.error = err;
      return finish(o, r);
    }
    r.tflopsFwd.set(flops / (r.msFwd.value * 1e-3) / 1e12);
    std::printf("ms_fwd   %.3f  (%.4f TFLOP/s)\n", r.msFwd.value,
                r.tflopsFwd.value);
    if (o.backward) {
      if (!timeIt(runBwd, r.msBwd)) {
        r.error = err;
        return finish(o, r);
      }
      r.tflopsFwdBwd.set(3.5 * flops /
                         ((r.msFwd.value + r.msBwd.value) * 1e-3) / 1e12);
      std::printf("ms_bwd   %.3f  (fwd+bwd %.4f TFLOP/s)\n", r.msBwd.value,
                  r.tflopsFwdBwd.value);
    }
  }

  if (r.msCompile.has)
    std::printf("compile  %.1f ms\n", r.msCompile.value);
  if (o.cuda())
    std::printf("bundle   %s\n", r.bundle.c_str());
  std::printf("peak_bytes %" PRId64 "\n", r.peakBytes);
  return finish(o, r);
}

} // namespace

int main(int argc, char **argv) {
  // Host buffers (and the float64 copies the check needs) are as large as
  // the problem: running out of host memory is an error, not a crash.
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc &) {
    std::fflush(stdout);
    std::fprintf(stderr, "fa-run: error: out of host memory\n");
    return 1;
  }
}
