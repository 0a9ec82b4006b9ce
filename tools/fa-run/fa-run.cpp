//===- fa-run.cpp - Run, check and time one attention config ----*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// fa-run compiles the attention kernels for one configuration, runs them on
// random inputs and, on request, checks them against the float64 reference
// (--check) and times them (--bench). Run `fa-run --help` for the flags.
//
// Exit status: 0 on success, 1 when a check fails or the kernels cannot be
// compiled or run, 2 on a bad command line (or a device this build lacks).
//
// Built with the compiler (FLASHMLIR_HAVE_COMPILER=1) it JIT-compiles the
// kernels for the host (`--device cpu`); built from the runtime half alone it
// only parses and validates its arguments. The CUDA device comes later.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/runtime/Half.h"
#include "flashmlir/runtime/Reference.h"

#if FLASHMLIR_HAVE_COMPILER
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
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace flashmlir;

namespace {

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

const char *kUsage = R"(usage: fa-run [options]

Compiles attention for one configuration, runs it on random inputs, and
optionally checks it against a float64 reference and times it.

  --device cpu|cuda       where to run (default cpu; cuda: later issue)
  --dtype f32|f16|bf16    element type of q, k, v, o and gradients (default f32)
  --batch B               batch size (required)
  --heads HQ              query heads (required)
  --kv-heads HKV          key/value heads; HQ must be a multiple (default HQ)
  --seqlen-q NQ           query length (required)
  --seqlen-k NK           key length (default NQ)
  --head-dim D            head dim of q and k (required)
  --head-dim-v DV         head dim of v and o (default D)
  --causal                bottom-right aligned causal mask
  --window L,R            sliding window, -1 = unbounded side (default none)
  --softcap C             tanh soft-capping, 0 = off (default 0)
  --scale S               softmax scale (default 1/sqrt(D))
  --backward              also run the backward pass
  --check                 compare with the float64 reference; exit 1 on failure
  --bench                 time forward (and backward): median of --reps runs
  --seed N                seed of the random inputs (default 0)
  --json                  print one JSON object as the last line of stdout
  --layout bhsd|bshd      memory layout of the 4-d buffers (default bhsd)
  --pipeline tiled|unfused  lowering to use (default tiled)
  --block-m N             query rows per tile (default 64)
  --block-n N             key rows per tile (default 64)
  --reps N                timed runs per kernel with --bench (default 5)
  --help                  print this help

Values may also be given as --flag=value. Exit status: 0 success, 1 check or
run failure, 2 bad command line.
)";

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
      {"reps", FReps, true},           {"help", FHelp, false},
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
      if (!positive(&o.seqlenQ))
        return 2;
      break;
    case FSeqK:
      if (!positive(&o.seqlenK))
        return 2;
      break;
    case FHeadDim:
      if (!positive(&o.headDim))
        return 2;
      break;
    case FHeadDimV:
      if (!positive(&o.headDimV))
        return 2;
      break;
    case FBlockM:
      if (!positive(&o.blockM))
        return 2;
      break;
    case FBlockN:
      if (!positive(&o.blockN))
        return 2;
      break;
    case FReps:
      if (!positive(&o.reps))
        return 2;
      break;
    case FCausal:
      o.causal = true;
      break;
    case FBackward:
      o.backward = true;
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
          !parseInt(value.substr(comma + 1), &r) || l < -1 || r < -1)
        return usageError("--window expects L,R with values >= -1, got '%s'",
                          value.c_str());
      o.windowLeft = l;
      o.windowRight = r;
      break;
    }
    case FSoftcap:
      if (!parseDouble(value, &o.softcap) || o.softcap < 0)
        return usageError(
            "--softcap expects a finite number >= 0 (0 = off), got '%s'",
            value.c_str());
      break;
    case FScale:
      if (!parseDouble(value, &o.scale))
        return usageError("--scale expects a finite number, got '%s'",
                          value.c_str());
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
    }
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

#if FLASHMLIR_HAVE_COMPILER

//===----------------------------------------------------------------------===//
// Host buffers
//===----------------------------------------------------------------------===//

struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};

/// A [B, H, N, D] tensor (or a [B, H, N] f32 lse) of one dtype. With the
/// bshd layout the memory is [B, N, H, D] and the view's strides swap H and
/// N, so the kernel sees [B, H, N, D] without a copy.
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

  void allocate() {
    numel = 1;
    for (int i = 0; i < rank; ++i)
      numel *= static_cast<size_t>(sizes[i]);
    size_t bytes = numel * rt::dtypeBytes(dtype);
    bytes = (bytes + 63) / 64 * 64; // aligned_alloc wants a multiple
    mem.reset(std::aligned_alloc(64, bytes ? bytes : 64));
  }

  bool ok() const { return mem != nullptr; }

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
  void poison() { std::memset(mem.get(), 0xff, numel * rt::dtypeBytes(dtype)); }

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
  Maybe fwdErr, lseErr, dqErr, dkErr, dvErr;
  Maybe msCompile, msFwd, msBwd, tflopsFwd, tflopsFwdBwd;
  int64_t peakBytes = 0, leakedBytes = 0;
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
  bool hasWindow = o.windowLeft != -1 || o.windowRight != -1;
  field("window", hasWindow ? "[" + integer(o.windowLeft) + ", " +
                                  integer(o.windowRight) + "]"
                            : "null");
  field("softcap", jsonNumber(o.softcap));
  field("scale", jsonNumber(o.scale));
  field("layout", jsonString(o.layout));
  field("pipeline", jsonString(o.pipeline));
  field("block_m", integer(o.blockM));
  field("block_n", integer(o.blockN));
  field("backward", boolean(o.backward));
  field("seed", std::to_string(o.seed));
  field("fwd_err", r.fwdErr.json());
  field("lse_err", r.lseErr.json());
  field("dq_err", r.dqErr.json());
  field("dk_err", r.dkErr.json());
  field("dv_err", r.dvErr.json());
  field("ms_compile", r.msCompile.json());
  field("ms_fwd", r.msFwd.json());
  field("ms_bwd", r.msBwd.json());
  field("tflops_fwd", r.tflopsFwd.json());
  field("tflops_fwdbwd", r.tflopsFwdBwd.json());
  field("peak_bytes", integer(r.peakBytes));
  field("leaked_bytes", integer(r.leakedBytes));
  if (!r.error.empty())
    field("error", jsonString(r.error));
  field("ok", boolean(r.ok));
  j += "}";
  std::printf("%s\n", j.c_str());
}

void printConfig(const Options &o) {
  std::printf("fa-run: device=%s dtype=%s batch=%" PRId64 " heads=%" PRId64
              " kv_heads=%" PRId64 " seqlen_q=%" PRId64 " seqlen_k=%" PRId64
              " head_dim=%" PRId64 " head_dim_v=%" PRId64 "\n",
              o.device.c_str(), rt::dtypeName(o.dtype), o.batch, o.heads,
              o.kvHeads, o.seqlenQ, o.seqlenK, o.headDim, o.headDimV);
  std::string window = "none";
  if (o.windowLeft != -1 || o.windowRight != -1)
    window = std::to_string(o.windowLeft) + "," + std::to_string(o.windowRight);
  std::printf("        causal=%s window=%s softcap=%g scale=%.9g layout=%s "
              "pipeline=%s block=%" PRId64 "x%" PRId64 "%s\n",
              o.causal ? "yes" : "no", window.c_str(), o.softcap, o.scale,
              o.layout.c_str(), o.pipeline.c_str(), o.blockM, o.blockN,
              o.backward ? " backward" : "");
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

#endif // FLASHMLIR_HAVE_COMPILER

} // namespace

int main(int argc, char **argv) {
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

  if (o.device == "cuda")
    return usageError("--device cuda is not supported yet: this fa-run has no "
                      "CUDA launcher (it comes in a later issue); use --device "
                      "cpu");
#if !FLASHMLIR_HAVE_COMPILER
  return usageError("--device cpu needs the compiler, but this fa-run was "
                    "built without it (-DFLASHMLIR_ENABLE_COMPILER=OFF)");
#else
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

  printConfig(o);
  Results r;

  KernelConfig kc;
  kc.dtype = o.dtype;
  kc.D = o.headDim;
  kc.Dv = o.headDimV;
  kc.scale = o.scale;
  kc.causal = o.causal;
  kc.windowLeft = o.windowLeft;
  kc.windowRight = o.windowRight;
  kc.softcap = o.softcap;
  kc.unfused = o.pipeline == "unfused";
  kc.blockM = o.blockM;
  kc.blockN = o.blockN;

  using Clock = std::chrono::steady_clock;
  auto msSince = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };

  std::string err;
  auto t0 = Clock::now();
  std::unique_ptr<CpuKernels> kernels = CpuKernels::compile(kc, err);
  if (!kernels) {
    r.error = "cannot compile the kernels: " + err;
    return finish(o, r);
  }
  if (o.backward && !kernels->compileBackward(err)) {
    r.error = "cannot compile the backward kernel: " + err;
    return finish(o, r);
  }
  r.msCompile.set(msSince(t0));

  // Inputs: fresh random values in the dtype; outputs: poisoned.
  const bool bshd = o.layout == "bshd";
  const rt::DType dt = o.dtype;
  HostTensor q =
      HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDim, bshd);
  HostTensor k =
      HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDim, bshd);
  HostTensor v =
      HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDimV, bshd);
  HostTensor out =
      HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDimV, bshd);
  HostTensor lse = HostTensor::make3(o.batch, o.heads, o.seqlenQ);
  HostTensor dO, dq, dk, dv;
  if (o.backward) {
    dO = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDimV, bshd);
    dq = HostTensor::make4(dt, o.batch, o.heads, o.seqlenQ, o.headDim, bshd);
    dk = HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDim, bshd);
    dv = HostTensor::make4(dt, o.batch, o.kvHeads, o.seqlenK, o.headDimV, bshd);
  }
  for (HostTensor *t : {&q, &k, &v, &out, &lse})
    if (!t->ok()) {
      r.error = "out of memory allocating the buffers";
      return finish(o, r);
    }
  if (o.backward)
    for (HostTensor *t : {&dO, &dq, &dk, &dv})
      if (!t->ok()) {
        r.error = "out of memory allocating the buffers";
        return finish(o, r);
      }

  std::vector<double> qd(q.numel), kd(k.numel), vd(v.numel), dOd;
  rt::fillRandom(deriveSeed(o.seed, 1), dt, qd.data(), qd.size());
  rt::fillRandom(deriveSeed(o.seed, 2), dt, kd.data(), kd.size());
  rt::fillRandom(deriveSeed(o.seed, 3), dt, vd.data(), vd.size());
  q.store(qd);
  k.store(kd);
  v.store(vd);
  out.poison();
  lse.poison();
  if (o.backward) {
    dOd.resize(dO.numel);
    rt::fillRandom(deriveSeed(o.seed, 4), dt, dOd.data(), dOd.size());
    dO.store(dOd);
    dq.poison();
    dk.poison();
    dv.poison();
  }

  auto runFwd = [&]() {
    return skipFwd || kernels->forward(q.arg(), k.arg(), v.arg(), out.arg(),
                                       lse.arg(), err);
  };
  auto runBwd = [&]() {
    return skipBwd ||
           kernels->backward(q.arg(), k.arg(), v.arg(), out.arg(), dO.arg(),
                             lse.arg(), dq.arg(), dk.arg(), dv.arg(), err);
  };

  // The run that is checked; it also measures the kernels' own memory.
  CpuKernels::resetPeak();
  const int64_t live0 = CpuKernels::liveBytes();
  if (!runFwd()) {
    r.error = "forward failed: " + err;
    return finish(o, r);
  }
  if (o.backward && !runBwd()) {
    r.error = "backward failed: " + err;
    return finish(o, r);
  }
  r.peakBytes = CpuKernels::peakBytes() - live0;
  r.leakedBytes = CpuKernels::liveBytes() - live0;

  if (o.check) {
    double outLimit = 0, gradLimit = 0;
    thresholds(dt, &outLimit, &gradLimit);
    std::vector<double> oRef(out.numel), lseRef(lse.numel);
    rt::referenceForward(cfg, qd.data(), kd.data(), vd.data(), oRef.data(),
                         lseRef.data());
    std::vector<double> oGot = out.load(), lseGot = lse.load();
    r.fwdErr.set(rt::relativeError(oGot.data(), oRef.data(), oRef.size()));
    r.lseErr.set(
        rt::relativeError(lseGot.data(), lseRef.data(), lseRef.size()));
    judge(r, "fwd_err", r.fwdErr.value, outLimit, "output", dt);
    judge(r, "lse_err", r.lseErr.value, outLimit, "output", dt);
    if (o.backward) {
      std::vector<double> dqRef(dq.numel), dkRef(dk.numel), dvRef(dv.numel);
      rt::referenceBackward(cfg, qd.data(), kd.data(), vd.data(), dOd.data(),
                            dqRef.data(), dkRef.data(), dvRef.data());
      std::vector<double> dqGot = dq.load(), dkGot = dk.load(),
                          dvGot = dv.load();
      r.dqErr.set(rt::relativeError(dqGot.data(), dqRef.data(), dqRef.size()));
      r.dkErr.set(rt::relativeError(dkGot.data(), dkRef.data(), dkRef.size()));
      r.dvErr.set(rt::relativeError(dvGot.data(), dvRef.data(), dvRef.size()));
      judge(r, "dq_err", r.dqErr.value, gradLimit, "gradient", dt);
      judge(r, "dk_err", r.dkErr.value, gradLimit, "gradient", dt);
      judge(r, "dv_err", r.dvErr.value, gradLimit, "gradient", dt);
    }
    if (r.leakedBytes != 0) {
      r.failures.push_back("memory leak: the kernels left " +
                           std::to_string(r.leakedBytes) +
                           " allocated bytes unfreed");
      r.ok = false;
    }
  } else if (r.leakedBytes != 0) {
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
    if (o.causal)
      flops /= 2;
    auto timeIt = [&](auto run, Maybe &ms) {
      if (!run())
        return false; // warm-up
      std::vector<double> times;
      for (int64_t i = 0; i < o.reps; ++i) {
        auto t = Clock::now();
        if (!run())
          return false;
        times.push_back(msSince(t));
      }
      ms.set(medianMs(times));
      return true;
    };
    if (!timeIt(runFwd, r.msFwd)) {
      r.error = "forward failed: " + err;
      return finish(o, r);
    }
    r.tflopsFwd.set(flops / (r.msFwd.value * 1e-3) / 1e12);
    std::printf("ms_fwd   %.3f  (%.4f TFLOP/s)\n", r.msFwd.value,
                r.tflopsFwd.value);
    if (o.backward) {
      if (!timeIt(runBwd, r.msBwd)) {
        r.error = "backward failed: " + err;
        return finish(o, r);
      }
      r.tflopsFwdBwd.set(3.5 * flops /
                         ((r.msFwd.value + r.msBwd.value) * 1e-3) / 1e12);
      std::printf("ms_bwd   %.3f  (fwd+bwd %.4f TFLOP/s)\n", r.msBwd.value,
                  r.tflopsFwdBwd.value);
    }
  }

  std::printf("compile  %.1f ms\n", r.msCompile.value);
  std::printf("peak_bytes %" PRId64 "\n", r.peakBytes);
  return finish(o, r);
#endif
}
