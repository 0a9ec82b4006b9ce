//===- Report.cpp - fa-run's results and reports ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The thresholds, the JSON encoding of numbers and strings, the --json line,
// the configuration banner, the per-check lines and the verdict.
//
//===----------------------------------------------------------------------===//

#include "Report.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace flashmlir::farun {

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
static std::string jsonNumber(double v) {
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

static std::string jsonString(const std::string &s) {
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

std::string Maybe::json() const { return has ? jsonNumber(value) : "null"; }

static void printJson(const Options &o, const Results &r) {
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

double msSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

} // namespace flashmlir::farun
