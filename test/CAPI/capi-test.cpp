//===- capi-test.cpp - the compiler's C kernel API ------------------------===//
//
// Part of FlashMLIR. Compiles attention through flashmlir_cpu_compile, runs
// forward and backward on host memory through the C API, and compares with
// the float64 reference; checks that bad input comes back as an error
// message. Prints "N passed, M failed".
//
//===----------------------------------------------------------------------===//

#include "flashmlir-c/FlashMLIR.h"
#include "flashmlir/runtime/Half.h"
#include "flashmlir/runtime/Reference.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace flashmlir::rt;

static int passed = 0, failed = 0;
static void check(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  ok ? ++passed : ++failed;
}

static flashmlir_tensor tensor(void *data, int64_t B, int64_t H, int64_t N,
                               int64_t D) {
  flashmlir_tensor t{};
  t.data = data;
  t.rank = D ? 4 : 3;
  int64_t s[4] = {B, H, N, D};
  for (int i = 0; i < 4; ++i)
    t.sizes[i] = s[i];
  if (D) {
    t.strides[3] = 1, t.strides[2] = D, t.strides[1] = N * D,
    t.strides[0] = H * N * D;
  } else {
    t.strides[2] = 1, t.strides[1] = N, t.strides[0] = H * N;
  }
  return t;
}

int main() {
  char err[512];
  const int64_t B = 1, Hq = 4, Hkv = 2, Nq = 37, Nk = 50, D = 16, Dv = 8;
  flashmlir_cpu_config cfg{};
  cfg.dtype = FLASHMLIR_F16;
  cfg.head_dim = D;
  cfg.head_dim_v = Dv;
  cfg.causal = 1;
  cfg.window_left = -1;
  cfg.window_right = -1;
  flashmlir_cpu_kernels *kernels = nullptr;
  int rc = flashmlir_cpu_compile(&cfg, &kernels, err, sizeof(err));
  check(rc == 0 && kernels, std::string("compile f16 causal GQA: ") + (rc ? err : "ok"));
  if (rc)
    return 1;

  AttnConfig ref{B, Hq, Hkv, Nq, Nk, D, Dv, 1.0 / std::sqrt(double(D)), true};
  size_t nq = B * Hq * Nq * D, nk = B * Hkv * Nk * D, nv = B * Hkv * Nk * Dv,
         no = B * Hq * Nq * Dv, nl = B * Hq * Nq;
  std::vector<double> q(nq), k(nk), v(nv), dO(no);
  fillRandom(1, DType::F16, q.data(), nq);
  fillRandom(2, DType::F16, k.data(), nk);
  fillRandom(3, DType::F16, v.data(), nv);
  fillRandom(4, DType::F16, dO.data(), no);
  auto half = [](const std::vector<double> &x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      h[i] = floatToHalf(float(x[i]));
    return h;
  };
  std::vector<uint16_t> hq = half(q), hk = half(k), hv = half(v), hdo = half(dO),
                        ho(no, 0x7e00), hdq(nq, 0x7e00), hdk(nk, 0x7e00),
                        hdv(nv, 0x7e00); // poisoned with NaN
  std::vector<float> lse(nl, NAN);
  flashmlir_tensor tq = tensor(hq.data(), B, Hq, Nq, D),
                   tk = tensor(hk.data(), B, Hkv, Nk, D),
                   tv = tensor(hv.data(), B, Hkv, Nk, Dv),
                   to = tensor(ho.data(), B, Hq, Nq, Dv),
                   tl = tensor(lse.data(), B, Hq, Nq, 0),
                   tdo = tensor(hdo.data(), B, Hq, Nq, Dv),
                   tdq = tensor(hdq.data(), B, Hq, Nq, D),
                   tdk = tensor(hdk.data(), B, Hkv, Nk, D),
                   tdv = tensor(hdv.data(), B, Hkv, Nk, Dv);
  rc = flashmlir_cpu_forward(kernels, &tq, &tk, &tv, &to, &tl, err, sizeof(err));
  check(rc == 0, std::string("forward: ") + (rc ? err : "ok"));
  rc = flashmlir_cpu_backward(kernels, &tq, &tk, &tv, &to, &tdo, &tl, &tdq,
                              &tdk, &tdv, err, sizeof(err));
  check(rc == 0, std::string("backward: ") + (rc ? err : "ok"));

  std::vector<double> ro(no), rl(nl), rdq(nq), rdk(nk), rdv(nv);
  referenceForward(ref, q.data(), k.data(), v.data(), ro.data(), rl.data());
  referenceBackward(ref, q.data(), k.data(), v.data(), dO.data(), rdq.data(),
                    rdk.data(), rdv.data());
  auto back = [](const std::vector<uint16_t> &h) {
    std::vector<double> x(h.size());
    for (size_t i = 0; i < h.size(); ++i)
      x[i] = halfToFloat(h[i]);
    return x;
  };
  std::vector<double> dl(lse.begin(), lse.end());
  double eo = relativeError(back(ho).data(), ro.data(), no),
         el = relativeError(dl.data(), rl.data(), nl),
         eq = relativeError(back(hdq).data(), rdq.data(), nq),
         ek = relativeError(back(hdk).data(), rdk.data(), nk),
         ev = relativeError(back(hdv).data(), rdv.data(), nv);
  char buf[200];
  std::snprintf(buf, sizeof(buf), "errors o %.2e lse %.2e dq %.2e dk %.2e dv %.2e",
                eo, el, eq, ek, ev);
  check(eo <= 2e-3 && el <= 2e-3 && eq <= 4e-3 && ek <= 4e-3 && ev <= 4e-3, buf);

  // Bad input: a wrong head dim is an error with a message, not a crash.
  flashmlir_tensor bad = tensor(hq.data(), B, Hq, Nq, D / 2);
  rc = flashmlir_cpu_forward(kernels, &bad, &tk, &tv, &to, &tl, err, sizeof(err));
  check(rc != 0 && std::strlen(err) > 0, std::string("bad q rejected: ") + err);
  flashmlir_cpu_config badCfg = cfg;
  badCfg.dtype = (flashmlir_dtype)7;
  flashmlir_cpu_kernels *none = nullptr;
  rc = flashmlir_cpu_compile(&badCfg, &none, err, sizeof(err));
  check(rc != 0 && !none, std::string("bad dtype rejected: ") + err);
  check(std::strncmp(flashmlir_version(), "FlashMLIR", 9) == 0, "version");
  // Bundle options and flags out of range: errors naming the value and range.
  {
    flashmlir_bundle_options bo{};
    bo.deterministic = 2;
    rc = flashmlir_compile_bundle_with_options("/nonexistent", "f16", "64", 0, 1,
                                               0, "sm_80", &bo, err, sizeof(err));
    check(rc != 0 && std::strstr(err, "options.deterministic = 2 is out of range: it must be in [0, 1]"),
          std::string("bundle options: deterministic = 2 rejected: ") + err);
    rc = flashmlir_compile_bundle("/nonexistent", "f16", "64", 4096, 1, 0, "sm_80",
                                  err, sizeof(err));
    check(rc != 0 && std::strstr(err, "head_dim_v (0: the head dim) = 4096 is out of range: it must be in [0, 256]"),
          std::string("bundle: head_dim_v = 4096 rejected: ") + err);
    rc = flashmlir_compile_bundle("/nonexistent", "f16", "64", 0, 7, 0, "sm_80",
                                  err, sizeof(err));
    check(rc != 0 && std::strstr(err, "masked (0, 1 or 2 = both) = 7 is out of range"),
          std::string("bundle: masked = 7 rejected: ") + err);
    flashmlir_cpu_config big = cfg;
    big.block_m = int64_t(1) << 40;
    flashmlir_cpu_kernels *none2 = nullptr;
    rc = flashmlir_cpu_compile(&big, &none2, err, sizeof(err));
    check(rc != 0 && !none2 && std::strstr(err, "block_m (0: default) = 1099511627776 is out of range: it must be in [0, 1024]"),
          std::string("cpu: block_m = 2^40 rejected: ") + err);
  }

  // One handle shared by 4 threads while the main thread destroys it: each
  // call either runs to the end (bit-identical output) or is refused ("not
  // live"); the destroy waits for the calls in flight; a later call is
  // refused. The second compile of the configuration is a cache hit.
  {
    flashmlir_cpu_kernels *shared = nullptr;
    rc = flashmlir_cpu_compile(&cfg, &shared, err, sizeof(err));
    check(rc == 0 && shared, std::string("threads: compile again: ") + (rc ? err : "ok"));
    std::atomic<bool> go{false};
    std::atomic<int> ran{0}, refused{0}, other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        std::vector<uint16_t> o(no, 0x7e00);
        std::vector<float> l(nl, NAN);
        flashmlir_tensor to2 = tensor(o.data(), B, Hq, Nq, Dv),
                         tl2 = tensor(l.data(), B, Hq, Nq, 0);
        char e[512];
        while (!go.load()) {
        }
        for (int i = 0; i < 25; ++i) {
          int r = flashmlir_cpu_forward(shared, &tq, &tk, &tv, &to2, &tl2, e,
                                        sizeof(e));
          if (r == 0 && o == ho)
            ++ran;
          else if (r != 0 && std::strstr(e, "not live"))
            ++refused;
          else
            ++other;
        }
      });
    go.store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    flashmlir_cpu_destroy(shared);
    for (std::thread &t : threads)
      t.join();
    char buf2[200];
    std::snprintf(buf2, sizeof(buf2),
                  "threads: calls racing flashmlir_cpu_destroy run or are "
                  "refused (%d ran, %d refused, %d other)",
                  ran.load(), refused.load(), other.load());
    check(other.load() == 0 && ran.load() + refused.load() == 100, buf2);
    rc = flashmlir_cpu_forward(shared, &tq, &tk, &tv, &to, &tl, err, sizeof(err));
    check(rc != 0 && std::strstr(err, "not live"),
          std::string("threads: a destroyed handle is refused: ") + err);
    flashmlir_cpu_destroy(shared); // a second destroy is a no-op
  }
  // The first handle still works after the second was destroyed (the
  // compiled code is shared through the cache).
  rc = flashmlir_cpu_forward(kernels, &tq, &tk, &tv, &to, &tl, err, sizeof(err));
  check(rc == 0, std::string("threads: the other handle still runs: ") + (rc ? err : "ok"));

  // Score modifications through the _ex entry points: a mask_mod region
  // keeping j <= i + (Nk - Nq), without the causal attribute, gives the
  // causal kernel's output; so does a sink of -1e30 (it takes no mass); a
  // region that reads a captured buffer refuses a call without it.
  {
    rc = flashmlir_cpu_forward(kernels, &tq, &tk, &tv, &to, &tl, err, sizeof(err));
    check(rc == 0, std::string("mods: causal forward: ") + (rc ? err : "ok"));
    flashmlir_cpu_config mc = cfg;
    mc.causal = 0;
    const std::string mask = "^bb0(%b: index, %h: index, %i: index, %j: index):\n"
                             "  %off = arith.constant " +
                             std::to_string(Nk - Nq) +
                             " : index\n"
                             "  %d = arith.addi %i, %off : index\n"
                             "  %m = arith.cmpi sle, %j, %d : index\n"
                             "  attn.yield %m : i1";
    flashmlir_cpu_kernels *mk = nullptr;
    flashmlir_cpu_extras ex{};
    ex.mask_mod = mask.c_str();
    rc = flashmlir_cpu_compile_ex(&mc, &ex, &mk, err, sizeof(err));
    check(rc == 0 && mk, std::string("mods: compile a mask_mod: ") + (rc ? err : "ok"));
    if (rc == 0) {
      std::vector<uint16_t> ho2(no, 0x7e00);
      std::vector<float> l2(nl, NAN), sinks(Hq, -1e30f);
      flashmlir_tensor to2 = tensor(ho2.data(), B, Hq, Nq, Dv),
                       tl2 = tensor(l2.data(), B, Hq, Nq, 0);
      flashmlir_score_mods mods{};
      mods.sinks = sinks.data();
      rc = flashmlir_cpu_forward_ex(mk, &tq, &tk, &tv, &to2, &tl2, nullptr, &mods,
                                    err, sizeof(err));
      check(rc == 0, std::string("mods: forward_ex: ") + (rc ? err : "ok"));
      double worst = 0;
      for (size_t i = 0; i < no; ++i)
        worst = std::max(worst, std::fabs(double(halfToFloat(ho2[i])) -
                                          double(halfToFloat(ho[i]))));
      for (size_t i = 0; i < nl; ++i)
        worst = std::max(worst, std::fabs(double(l2[i]) - double(lse[i])));
      check(worst < 1e-3, "mods: mask_mod + a -1e30 sink == causal (max diff " +
                              std::to_string(worst) + ")");
      flashmlir_cpu_destroy(mk);
    }
    const char *score = "^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):\n"
                        "  %t = memref.load %cap0[%h] : memref<?xf32>\n"
                        "  %r = arith.addf %s, %t : f32\n"
                        "  attn.yield %r : f32";
    ex = flashmlir_cpu_extras{};
    ex.score_mod = score;
    rc = flashmlir_cpu_compile_ex(&mc, &ex, &mk, err, sizeof(err));
    check(rc == 0, std::string("mods: compile a capturing score_mod: ") + (rc ? err : "ok"));
    if (rc == 0) {
      rc = flashmlir_cpu_forward_ex(mk, &tq, &tk, &tv, &to, &tl, nullptr, nullptr, err,
                                    sizeof(err));
      check(rc != 0 && std::strstr(err, "reads the captured buffer %cap0"),
            std::string("mods: a missing capture is refused: ") + err);
      flashmlir_cpu_destroy(mk);
    }
    const char *broken = "^bb0(%s: f32):\n  attn.yield %s : f32";
    ex.score_mod = broken;
    rc = flashmlir_cpu_compile_ex(&mc, &ex, &mk, err, sizeof(err));
    check(rc != 0 && std::strstr(err, "'score_mod' region must take"),
          std::string("mods: a bad region is refused: ") + err);
  }

  flashmlir_cpu_destroy(kernels);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
