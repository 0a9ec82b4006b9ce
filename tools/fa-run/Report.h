//===- Report.h - fa-run's results and reports ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// What a run measured (errors, timings, memory) and how fa-run reports it:
// the error thresholds per dtype, the human-readable lines, the verdict and
// the JSON line of --json.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_TOOLS_FA_RUN_REPORT_H
#define FLASHMLIR_TOOLS_FA_RUN_REPORT_H

#include "Options.h"

#include "flashmlir/runtime/Half.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace flashmlir::farun {

/// Output and gradient thresholds of the relative L2 error per dtype.
void thresholds(rt::DType dt, double *out, double *grad);

/// An optional measurement: absent prints as null.
struct Maybe {
  bool has = false;
  double value = 0;
  void set(double v) {
    has = true;
    value = v;
  }
  std::string json() const;
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

void printConfig(const Options &o, const std::string &bundle);

/// Compares `err` (already computed) with `limit`; records a failure.
void judge(Results &r, const char *name, double err, double limit,
           const char *what, rt::DType dt);

double medianMs(std::vector<double> v);

/// Finishes: prints the verdict (and the JSON line) and returns the exit code.
int finish(const Options &o, Results &r);

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0);

} // namespace flashmlir::farun

#endif // FLASHMLIR_TOOLS_FA_RUN_REPORT_H
