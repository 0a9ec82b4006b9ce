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
// The pieces: Options (the command line), HostTensor (the host buffers),
// Report (results, verdict and --json), Device.h with CpuDevice and
// CudaDevice (the kernel calls); this file puts them together.
//
//===----------------------------------------------------------------------===//

#include "Device.h"
#include "HostTensor.h"
#include "Options.h"
#include "Report.h"

#include "flashmlir/runtime/Reference.h"

#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <vector>

using namespace flashmlir;
using namespace flashmlir::farun;
namespace fs = std::filesystem;

static int run(int argc, char **argv) {
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
    device = createCudaDevice(o, bundle, note, exe.string());
  } else {
#if FLASHMLIR_HAVE_COMPILER
    device = createCpuDevice(o);
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
