//===- fa-tune.cpp - time a bundle's autotune candidates on the GPU -------===//
//
// Part of FlashMLIR.
//
// fa-tune BUNDLE [--seqlen N] [--batch B] [--heads H] [--reps R]
//                [--warmup W] [--dry-run]
//
// For every candidate group of an autotune bundle (fa-compile --autotune)
// that this device would use: launches each candidate through the runtime's
// C API on one set of random inputs, checks that its O and lse agree with
// the group's default kernel (relative L2 within the dtype's tolerance; a
// candidate that does not is never selected), times it (median of R samples,
// candidates interleaved, each sample enough back-to-back launches to last
// ~2 ms between synchronizations) and rewrites BUNDLE/manifest.json
// atomically with the winners marked "selected" and an "autotune" record per
// group (the first tuning keeps the original as manifest.untuned.json).
//
// Each candidate runs from a one-candidate copy of the manifest (the
// candidate selected, files pointing back into BUNDLE) in a temporary
// directory, so the kernel timed is the kernel the runtime's own selection
// launches once the bundle is tuned. C++17 and the CUDA driver only: builds
// with -DFLASHMLIR_ENABLE_COMPILER=OFF.
//
//===----------------------------------------------------------------------===//

#include "RuntimeTune.h"
#include "flashmlir/runtime/Limits.h"
#include "flashmlir/runtime/fa_runtime.h"

#include <sys/stat.h>

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

using namespace flashmlir::rt;

namespace {

struct Options {
  std::string bundle;
  int64_t seqlen = 4096, batch = 0, heads = 0; // 0: 16k tokens, 2048 / D
  int reps = 20, warmup = 3;
  bool dryRun = false;
};

int usage(const std::string &msg) {
  if (!msg.empty())
    std::fprintf(stderr, "fa-tune: %s\n", msg.c_str());
  std::fprintf(
      stderr,
      "usage: fa-tune BUNDLE [--seqlen N] [--batch B] [--heads H] [--reps R] "
      "[--warmup W] [--dry-run]\n"
      "  Times the candidates of every autotune group (fa-compile --autotune)\n"
      "  on this GPU, checks each against the group's default and marks the\n"
      "  fastest correct one \"selected\" in BUNDLE/manifest.json.\n"
      "  Defaults: N = 4096, B = 16384 / N (16k tokens), H = 2048 / head dim,\n"
      "  R = 20 samples (median), W = 3 warm-up launches; masked groups run\n"
      "  causal. --dry-run measures and prints without writing.\n");
  return 2;
}

/// An integer in [lo, hi] (out-of-range text, e.g. 2^64, is rejected).
bool parseInt(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (!*s || *end || errno != 0 || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

/// Copies bundle file `name` (resolved inside `bundleDir`) to `dir`/`name`,
/// creating its parent directories: a hard link when possible.
bool placeBundleFile(const std::string &bundleDir, const std::string &name,
                     const std::string &dir, std::string *err) {
  std::string src;
  if (!resolveBundleFile(bundleDir, name, &src, err))
    return false;
  std::string dst = dir + "/" + name;
  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    std::string sub = dir + "/" + name.substr(0, slash);
    if (mkdir(sub.c_str(), 0700) != 0 && errno != EEXIST) {
      *err = "cannot create " + sub;
      return false;
    }
  }
  if (link(src.c_str(), dst.c_str()) == 0)
    return true;
  std::string data;
  return readFile(src, &data, err) && writeFileAtomic(dst, data, err);
}

/// "NVIDIA H100 80GB HBM3 (cc 9.0, 132 SMs)"; the name through the driver
/// the runtime already loaded.
std::string deviceName(int ccMajor, int ccMinor, int sms) {
  std::string name = "CUDA device 0";
  if (void *h = dlopen(cudaLibraryName().c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    using GetFn = int (*)(int *, int);
    using NameFn = int (*)(char *, int, int);
    auto get = reinterpret_cast<GetFn>(dlsym(h, "cuDeviceGet"));
    auto getName = reinterpret_cast<NameFn>(dlsym(h, "cuDeviceGetName"));
    int dev = 0;
    char buf[256] = {};
    if (get && getName && get(&dev, 0) == 0 &&
        getName(buf, sizeof(buf) - 1, dev) == 0 && buf[0])
      name = buf;
    dlclose(h);
  }
  return name + " (cc " + std::to_string(ccMajor) + "." +
         std::to_string(ccMinor) + ", " + std::to_string(sms) + " SMs)";
}

std::string utcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Unit-variance uniform values (splitmix64), stored as `dt`.
void fillRandom(DType dt, std::vector<uint8_t> &buf, size_t n, uint64_t seed) {
  buf.resize(n * dtypeBytes(dt));
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    s += 0x9e3779b97f4a7c15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u = static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
    storeElem(dt, buf.data(), i, (2 * u - 1) * 1.7320508075688772);
  }
}

fa_tensor dense(void *data, int64_t b, int64_t h, int64_t n, int64_t d) {
  fa_tensor t{};
  t.data = data;
  int64_t sizes[4] = {b, h, n, d};
  int64_t strides[4] = {h * n * d, n * d, d, 1};
  std::memcpy(t.sizes, sizes, sizeof(sizes));
  std::memcpy(t.strides, strides, sizeof(strides));
  return t;
}

double median(std::vector<double> v) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// One group's problem and device buffers.
struct TuneProblem {
  DType dtype = DType::F16;
  int64_t B = 0, H = 0, N = 0, D = 0, Dv = 0;
  bool causal = false;
  float softcap = 0;
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr,
       *lse = nullptr;
  size_t oBytes = 0, lseBytes = 0;

  fa_attn_params params() const {
    fa_attn_params p{};
    p.dtype = dtype == DType::F32 ? FA_F32
              : dtype == DType::F16 ? FA_F16
                                    : FA_BF16;
    p.causal = causal;
    p.window_left = p.window_right = -1;
    p.scale = 0;
    p.softcap = softcap;
    return p;
  }
};

/// A candidate being measured, with its runtime (on a manifest that selects
/// it).
struct Runner {
  int kernel = -1;
  fa_runtime *rt = nullptr;
  TuneCandidate result;
  std::vector<double> samples;
  int inner = 1;
};

fa_status launch(fa_runtime *rt, const TuneProblem &p) {
  fa_attn_params pa = p.params();
  fa_tensor q = dense(p.q, p.B, p.H, p.N, p.D), k = dense(p.k, p.B, p.H, p.N, p.D),
            v = dense(p.v, p.B, p.H, p.N, p.Dv), o = dense(p.o, p.B, p.H, p.N, p.Dv),
            lse = dense(p.lse, p.B, p.H, p.N, 1);
  return fa_forward(rt, &pa, &q, &k, &v, &o, &lse, nullptr);
}

double seconds(std::chrono::steady_clock::time_point a,
               std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

class Tuner {
public:
  Tuner(const Options &opt, const std::string &dir, const std::string &text,
        const Manifest &m, fa_runtime *base, std::string tmp)
      : opt(opt), dir(dir), text(text), m(m), base(base), tmp(std::move(tmp)) {}

  /// Measures one group; false (with a message) on a failure that ends the
  /// whole run (allocation, copies).
  bool tuneGroup(const std::string &group, const std::vector<int> &members,
                 size_t groupIndex, TuneGroupResult *out, std::string *error);

  int failedChecks = 0;
  std::string device, date;

private:
  bool alloc(TuneProblem &p);
  void release(TuneProblem &p);
  bool runOnce(Runner &r, const TuneProblem &p, bool isDefault);

  const Options &opt;
  std::string dir, text;
  const Manifest &m;
  fa_runtime *base;
  std::string tmp;
  std::vector<uint8_t> refO, refLse, hostO, hostLse, poison;
  std::string err;
  uint64_t seed = 1; ///< of the current group's inputs
};

bool Tuner::alloc(TuneProblem &p) {
  size_t eb = dtypeBytes(p.dtype);
  int64_t rows64 = 0, qk64 = 0, v64 = 0;
  namespace lim = flashmlir::limits;
  if (!lim::mulChecked(p.B, p.H, &rows64) ||
      !lim::mulChecked(rows64, p.N, &rows64) ||
      !lim::mulChecked(rows64, std::max(p.D, p.Dv) * 8, &qk64)) {
    err = "the problem B=" + std::to_string(p.B) + " H=" + std::to_string(p.H) +
          " N=" + std::to_string(p.N) + " is too large";
    return false;
  }
  size_t rows = static_cast<size_t>(rows64);
  qk64 = rows64 * p.D * static_cast<int64_t>(eb);
  v64 = rows64 * p.Dv * static_cast<int64_t>(eb);
  size_t qkBytes = static_cast<size_t>(qk64), vBytes = static_cast<size_t>(v64);
  p.oBytes = vBytes;
  p.lseBytes = rows * 4;
  struct {
    void **ptr;
    size_t bytes;
  } bufs[] = {{&p.q, qkBytes}, {&p.k, qkBytes}, {&p.v, vBytes},
              {&p.o, p.oBytes}, {&p.lse, p.lseBytes}};
  for (auto &b : bufs)
    if (fa_malloc(base, b.bytes, b.ptr) != FA_OK) {
      err = fa_runtime_last_error(base);
      return false;
    }
  std::vector<uint8_t> host;
  void *inputs[] = {p.q, p.k, p.v};
  int64_t dims[] = {p.D, p.D, p.Dv};
  for (int i = 0; i < 3; ++i) {
    fillRandom(p.dtype, host, rows * dims[i], 1000 * seed + i);
    if (fa_memcpy_htod(base, inputs[i], host.data(), host.size()) != FA_OK) {
      err = fa_runtime_last_error(base);
      return false;
    }
  }
  return true;
}

void Tuner::release(TuneProblem &p) {
  for (void *ptr : {p.q, p.k, p.v, p.o, p.lse})
    if (ptr)
      fa_free(base, ptr);
}

/// Poisons O and lse (all-ones bits: NaN), launches once and compares with
/// the default's outputs (the default's own become the reference).
bool Tuner::runOnce(Runner &r, const TuneProblem &p, bool isDefault) {
  poison.assign(std::max(p.oBytes, p.lseBytes), 0xff);
  TuneCandidate &c = r.result;
  auto driverError = [&](const char *what) {
    c.error = std::string(what) + ": " + fa_runtime_last_error(r.rt);
    return false;
  };
  if (fa_memcpy_htod(r.rt, p.o, poison.data(), p.oBytes) != FA_OK ||
      fa_memcpy_htod(r.rt, p.lse, poison.data(), p.lseBytes) != FA_OK)
    return driverError("poisoning the outputs");
  if (launch(r.rt, p) != FA_OK)
    return driverError("launch");
  if (fa_synchronize(r.rt) != FA_OK)
    return driverError("synchronize");
  hostO.resize(p.oBytes);
  hostLse.resize(p.lseBytes);
  if (fa_memcpy_dtoh(r.rt, hostO.data(), p.o, p.oBytes) != FA_OK ||
      fa_memcpy_dtoh(r.rt, hostLse.data(), p.lse, p.lseBytes) != FA_OK)
    return driverError("reading the outputs");
  c.ran = true;
  size_t nO = p.oBytes / dtypeBytes(p.dtype), nL = p.lseBytes / 4;
  if (isDefault) {
    refO = hostO;
    refLse = hostLse;
    // The reference itself must be finite (a self-comparison finds NaN).
    c.relErr = std::max(relativeL2(p.dtype, hostO.data(), refO.data(), nO),
                        relativeL2(DType::F32, hostLse.data(), refLse.data(), nL));
    c.ok = std::isfinite(c.relErr);
    if (!c.ok)
      c.error = "the default kernel's output is not finite";
    return c.ok;
  }
  c.relErr = std::max(relativeL2(p.dtype, hostO.data(), refO.data(), nO),
                      relativeL2(DType::F32, hostLse.data(), refLse.data(), nL));
  c.ok = c.relErr <= tuneTolerance(p.dtype);
  if (!c.ok) {
    char buf[128];
    std::snprintf(buf, sizeof(buf),
                  "disagrees with the default: relative L2 %.3g > %.3g",
                  c.relErr, tuneTolerance(p.dtype));
    c.error = buf;
  }
  return c.ok;
}

bool Tuner::tuneGroup(const std::string &group, const std::vector<int> &members,
                      size_t groupIndex, TuneGroupResult *out,
                      std::string *error) {
  const KernelDesc &dk = m.kernels[members.front()];
  const KernelConfig &cfg = dk.config;
  TuneProblem p;
  p.dtype = cfg.dtype;
  p.D = cfg.headDim;
  p.Dv = cfg.headDimV;
  p.N = opt.seqlen;
  p.B = opt.batch ? opt.batch : std::max<int64_t>(1, 16384 / opt.seqlen);
  p.H = opt.heads ? opt.heads : std::max<int64_t>(1, 2048 / p.D);
  p.causal = cfg.causal || cfg.window;
  p.softcap = cfg.softcap ? 30.0f : 0.0f;
  seed = groupIndex + 1;

  TuneGroupResult &res = *out;
  res.group = group;
  res.device = device;
  res.date = date;
  res.batch = p.B;
  res.heads = p.H;
  res.seqlen = p.N;
  res.headDim = p.D;
  res.causal = p.causal;
  res.reps = opt.reps;

  std::printf("group %s: B=%" PRId64 " H=%" PRId64 " N=%" PRId64 " D=%" PRId64
              " %s%s, %zu candidates\n",
              group.c_str(), p.B, p.H, p.N, p.D, dtypeName(p.dtype),
              p.causal ? " causal" : "", members.size());
  std::fflush(stdout);
  if (!alloc(p)) {
    release(p);
    *error = err;
    return false;
  }

  // One runtime per candidate, on a manifest that selects it.
  std::vector<Runner> runners(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    Runner &r = runners[i];
    r.kernel = members[i];
    r.result.kernel = m.kernels[r.kernel].name;
    // The candidate's group, its files beside the manifest (a runtime
    // reads bundle files from inside its bundle directory only).
    std::string cdir = tmp + "/" + std::to_string(i), mtext, merr;
    std::vector<std::string> files;
    bool prepared =
        (mkdir(cdir.c_str(), 0700) == 0 || errno == EEXIST) &&
        manifestSelecting(text, r.result.kernel, &mtext, &files, &merr) &&
        writeFileAtomic(cdir + "/manifest.json", mtext, &merr);
    for (size_t f = 0; prepared && f < files.size(); ++f)
      prepared = placeBundleFile(dir, files[f], cdir, &merr);
    if (!prepared) {
      r.result.error = "cannot prepare its manifest: " + merr;
      continue;
    }
    if (fa_runtime_create(cdir.c_str(), &r.rt) != FA_OK) {
      r.result.error = std::string("runtime: ") + fa_runtime_last_error(r.rt);
      fa_runtime_destroy(r.rt);
      r.rt = nullptr;
      continue;
    }
    if (i > 0 && !runners[0].result.ok) {
      r.result.error = "the default failed; nothing to compare with";
      continue;
    }
    runOnce(r, p, i == 0);
  }

  // Warm-up: also sizes each sample (launches per synchronization).
  std::vector<Runner *> timed;
  for (Runner &r : runners)
    if (r.result.ran && r.rt)
      timed.push_back(&r);
  for (Runner *r : timed) {
    auto t0 = std::chrono::steady_clock::now();
    bool ok = true;
    int launches = std::max(1, opt.warmup);
    for (int w = 0; w < launches && ok; ++w)
      ok = launch(r->rt, p) == FA_OK;
    ok = ok && fa_synchronize(r->rt) == FA_OK;
    double per = seconds(t0, std::chrono::steady_clock::now()) / launches;
    if (!ok) {
      r->result.ok = r->result.ran = false;
      r->result.error = std::string("warm-up: ") + fa_runtime_last_error(r->rt);
      continue;
    }
    r->inner = static_cast<int>(
        std::min(64.0, std::max(1.0, std::ceil(2e-3 / std::max(per, 1e-7)))));
  }
  // Samples, candidates interleaved so that clock drift hits all alike.
  for (int rep = 0; rep < opt.reps; ++rep)
    for (Runner *r : timed) {
      if (!r->result.ran)
        continue;
      auto t0 = std::chrono::steady_clock::now();
      bool ok = true;
      for (int i = 0; i < r->inner && ok; ++i)
        ok = launch(r->rt, p) == FA_OK;
      ok = ok && fa_synchronize(r->rt) == FA_OK;
      if (!ok) {
        r->result.ok = r->result.ran = false;
        r->result.error = std::string("timing: ") + fa_runtime_last_error(r->rt);
        continue;
      }
      r->samples.push_back(seconds(t0, std::chrono::steady_clock::now()) * 1e3 /
                           r->inner);
    }

  double flops = 4.0 * p.B * p.H * p.N * p.N * p.D / (p.causal ? 2 : 1);
  for (Runner &r : runners) {
    r.result.medianMs = median(r.samples);
    res.candidates.push_back(r.result);
    if (r.rt)
      fa_runtime_destroy(r.rt);
  }
  release(p);

  int w = tuneWinner(res);
  for (size_t i = 0; i < res.candidates.size(); ++i) {
    const TuneCandidate &c = res.candidates[i];
    const KernelDesc &k = m.kernels[members[i]];
    if (c.ran)
      std::printf("  %s %-44s %-62s %8.4f ms %6.1f TFLOP/s rel_err %.2e%s\n",
                  c.ok ? "ok  " : "FAIL", k.name.c_str(), k.variant.c_str(),
                  c.medianMs, c.medianMs > 0 ? flops / c.medianMs / 1e9 : 0.0,
                  c.relErr, static_cast<int>(i) == w ? "  <- selected" : "");
    else
      std::printf("  FAIL %-44s %-62s %s\n", k.name.c_str(), k.variant.c_str(),
                  c.error.c_str());
    if (!c.ok) {
      ++failedChecks;
      if (c.ran)
        std::printf("FAIL %s: %s\n", k.name.c_str(), c.error.c_str());
    }
  }
  if (w > 0 && res.candidates[0].ran)
    std::printf("  %s is %.1f%% faster than the default\n",
                res.candidates[w].kernel.c_str(),
                100.0 * (res.candidates[0].medianMs /
                             res.candidates[w].medianMs - 1));
  std::fflush(stdout);
  return true;
}

} // namespace

int main(int argc, char **argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto intArg = [&](int64_t lo, int64_t hi, int64_t *out) {
      return i + 1 < argc && parseInt(argv[++i], lo, hi, out);
    };
    int64_t v = 0;
    // Batch and heads are grid dimensions (at most 65535 blocks).
    if (a == "--seqlen") {
      if (!intArg(1, flashmlir::limits::kMaxSeqLen, &opt.seqlen))
        return usage("--seqlen expects an integer in [1, " +
                     std::to_string(flashmlir::limits::kMaxSeqLen) + "]");
    } else if (a == "--batch") {
      if (!intArg(1, 65535, &opt.batch))
        return usage("--batch expects an integer in [1, 65535]");
    } else if (a == "--heads") {
      if (!intArg(1, 65535, &opt.heads))
        return usage("--heads expects an integer in [1, 65535]");
    } else if (a == "--reps") {
      if (!intArg(1, 100000, &v))
        return usage("--reps expects an integer in [1, 100000]");
      opt.reps = static_cast<int>(v);
    } else if (a == "--warmup") {
      if (!intArg(0, 100000, &v))
        return usage("--warmup expects an integer in [0, 100000]");
      opt.warmup = static_cast<int>(v);
    } else if (a == "--dry-run") {
      opt.dryRun = true;
    } else if (a == "--help" || a == "-h") {
      return usage("");
    } else if (!a.empty() && a[0] == '-') {
      return usage("unknown flag " + a);
    } else if (opt.bundle.empty()) {
      opt.bundle = a;
    } else {
      return usage("more than one bundle given ('" + opt.bundle + "', '" + a +
                   "')");
    }
  }
  if (opt.bundle.empty())
    return usage("a bundle directory is required");

  char resolved[PATH_MAX];
  if (!realpath(opt.bundle.c_str(), resolved)) {
    std::fprintf(stderr, "fa-tune: no bundle directory %s\n",
                 opt.bundle.c_str());
    return 2;
  }
  std::string dir = resolved, path = joinPath(dir, "manifest.json"), text, err;
  Manifest m;
  if (!readFile(path, &text, &err) || !loadBundle(dir, &m, &err)) {
    std::fprintf(stderr, "fa-tune: %s\n", err.c_str());
    return 2;
  }
  auto groups = candidateGroups(m);
  if (groups.empty()) {
    std::fprintf(stderr,
                 "fa-tune: %s has no candidate groups (build it with "
                 "fa-compile --autotune)\n",
                 dir.c_str());
    return 2;
  }

  fa_runtime *base = nullptr;
  if (fa_runtime_create(dir.c_str(), &base) != FA_OK) {
    std::fprintf(stderr, "fa-tune: %s\n", fa_runtime_last_error(base));
    fa_runtime_destroy(base);
    return 1;
  }
  int ccMajor = 0, ccMinor = 0, sms = 0;
  if (fa_device_info(base, &ccMajor, &ccMinor, &sms) != FA_OK) {
    std::fprintf(stderr, "fa-tune: %s\n", fa_runtime_last_error(base));
    fa_runtime_destroy(base);
    return 1;
  }
  char tmpl[] = "/tmp/fa-tune-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::fprintf(stderr, "fa-tune: cannot create a temporary directory\n");
    fa_runtime_destroy(base);
    return 1;
  }
  Tuner tuner(opt, dir, text, m, base, tmpl);
  tuner.device = deviceName(ccMajor, ccMinor, sms);
  tuner.date = utcNow();
  std::printf("fa-tune: %s, %s, %zu candidate groups\n", tuner.device.c_str(),
              dir.c_str(), groups.size());

  std::vector<TuneGroupResult> results;
  int status = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto &[group, members] = groups[g];
    const KernelDesc &dk = m.kernels[members.front()];
    if (dk.kind != KernelKind::Fwd) {
      std::printf("group %s: skipped (only forward groups are tuned)\n",
                  group.c_str());
      continue;
    }
    // Tune only what this device runs: the group the runtime selects for
    // the group's own config.
    Problem sel;
    sel.dtype = dk.config.dtype;
    sel.D = dk.config.headDim;
    sel.Dv = dk.config.headDimV;
    sel.causal = dk.config.causal || dk.config.window;
    sel.softcap = dk.config.softcap;
    sel.windowRight = sel.causal ? 0 : -1;
    int idx = selectKernel(m, KernelKind::Fwd, sel, ccMajor, ccMinor, &err);
    if (idx < 0 || m.kernels[idx].group != group) {
      std::printf("group %s: skipped (this device runs %s for its config)\n",
                  group.c_str(),
                  idx < 0 ? "no kernel" : m.kernels[idx].name.c_str());
      continue;
    }
    TuneGroupResult r;
    if (!tuner.tuneGroup(group, members, g, &r, &err)) {
      std::fprintf(stderr, "fa-tune: group %s: %s\n", group.c_str(),
                   err.c_str());
      status = 1;
      break;
    }
    results.push_back(std::move(r));
  }
  fa_runtime_destroy(base);
  std::string rm = std::string("rm -rf '") + tmpl + "'";
  if (std::system(rm.c_str()) != 0)
    std::fprintf(stderr, "fa-tune: warning: could not remove %s\n", tmpl);

  if (status == 0 && !results.empty() && !opt.dryRun) {
    std::string tuned;
    std::string backup = joinPath(dir, "manifest.untuned.json");
    if (!recordTuneResults(text, results, &tuned, &err) ||
        (access(backup.c_str(), F_OK) != 0 &&
         !writeFileAtomic(backup, text, &err)) ||
        !writeFileAtomic(path, tuned, &err)) {
      std::fprintf(stderr, "fa-tune: %s\n", err.c_str());
      return 1;
    }
    std::printf("fa-tune: wrote %s\n", path.c_str());
  }
  std::printf("fa-tune: %zu groups tuned, %d candidates failed%s\n",
              results.size(), tuner.failedChecks,
              opt.dryRun ? " (dry run: manifest unchanged)" : "");
  return status;
}
