//===- Device.h - Where fa-run runs the kernels -----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The interface of the two devices, which share everything but the kernel
// calls (inputs, poisoned outputs, the check, the timing loop, the reports),
// and the functions that create them: CpuDevice.cpp (kernels JIT-compiled
// for the host; only in a build with the compiler) and CudaDevice.cpp (the
// kernels of a bundle through the GPU runtime).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_TOOLS_FA_RUN_DEVICE_H
#define FLASHMLIR_TOOLS_FA_RUN_DEVICE_H

#include "HostTensor.h"
#include "Options.h"
#include "Report.h"

#include <filesystem>
#include <memory>
#include <string>

namespace flashmlir::farun {

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
std::unique_ptr<Device> createCpuDevice(const Options &o);
#endif

/// A GPU through the runtime (fa_runtime.h). `bundleDir`: the bundle to
/// open, empty for none (then every configuration is missing); `bundleNote`:
/// why there is none; `exePath`: this executable (see executablePath), which
/// identifies the bundles it compiles on demand.
std::unique_ptr<Device> createCudaDevice(const Options &o,
                                         std::string bundleDir,
                                         std::string bundleNote,
                                         std::string exePath);

/// The path of this executable (empty when unknown).
std::filesystem::path executablePath(const char *argv0);

} // namespace flashmlir::farun

#endif // FLASHMLIR_TOOLS_FA_RUN_DEVICE_H
