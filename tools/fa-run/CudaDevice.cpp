//===- CudaDevice.cpp - fa-run's GPU device ---------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// --device cuda: the kernels of a kernel bundle launched through the GPU
// runtime (fa_runtime.h) on device copies of the host buffers. Built with
// the compiler, a configuration that the bundle lacks is compiled on demand
// into a cache directory (FlashMLIRBundle).
//
//===----------------------------------------------------------------------===//

#include "Device.h"

#include "flashmlir/runtime/fa_runtime.h"

#if FLASHMLIR_HAVE_COMPILER
#include "flashmlir/Bundle/Bundle.h"
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace flashmlir::farun {

namespace {

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

} // namespace

std::unique_ptr<Device> createCudaDevice(const Options &o,
                                         std::string bundleDir,
                                         std::string bundleNote,
                                         std::string exePath) {
  return std::make_unique<CudaDevice>(o, std::move(bundleDir),
                                      std::move(bundleNote),
                                      std::move(exePath));
}

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

} // namespace flashmlir::farun
