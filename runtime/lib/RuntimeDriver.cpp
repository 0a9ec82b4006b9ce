//===- RuntimeDriver.cpp - The CUDA driver, opened with dlopen ------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// libcuda.so.1 is opened at first use and its entry points resolved by name
// (the versioned _v2 symbols where the API has them). Nothing links against
// CUDA, so the runtime loads on machines without a driver and reports
// FA_ERR_NO_DRIVER / FA_ERR_NO_DEVICE there.
//
// $FLASHMLIR_LIBCUDA overrides the library name (tests use a missing path to
// exercise the no-driver path on GPU machines).
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"

#include <dlfcn.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <type_traits>

namespace flashmlir::rt {

namespace {
/// Names of the results the runtime itself distinguishes, for drivers (e.g.
/// the toolkit's stub libcuda) whose cuGetErrorName cannot say.
const char *knownResultName(cu::Result r) {
  switch (r) {
  case cu::ERROR_INVALID_VALUE:
    return "CUDA_ERROR_INVALID_VALUE";
  case cu::ERROR_OUT_OF_MEMORY:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case cu::ERROR_NOT_INITIALIZED:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case cu::ERROR_DEINITIALIZED:
    return "CUDA_ERROR_DEINITIALIZED";
  case cu::ERROR_STUB_LIBRARY:
    return "CUDA_ERROR_STUB_LIBRARY (libcuda is the toolkit's stub, not a "
           "driver)";
  case cu::ERROR_NO_DEVICE:
    return "CUDA_ERROR_NO_DEVICE";
  case cu::ERROR_INVALID_DEVICE:
    return "CUDA_ERROR_INVALID_DEVICE";
  case cu::ERROR_NO_BINARY_FOR_GPU:
    return "CUDA_ERROR_NO_BINARY_FOR_GPU";
  case cu::ERROR_INVALID_PTX:
    return "CUDA_ERROR_INVALID_PTX";
  case cu::ERROR_JIT_COMPILER_NOT_FOUND:
    return "CUDA_ERROR_JIT_COMPILER_NOT_FOUND";
  case cu::ERROR_UNSUPPORTED_PTX_VERSION:
    return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (PTX newer than the driver)";
  case cu::ERROR_NOT_FOUND:
    return "CUDA_ERROR_NOT_FOUND";
  }
  return nullptr;
}
} // namespace

std::string CudaDriver::describe(cu::Result r) const {
  const char *name = nullptr, *desc = nullptr;
  if (!cuGetErrorName || cuGetErrorName(r, &name) != cu::SUCCESS)
    name = nullptr;
  if (!cuGetErrorString || cuGetErrorString(r, &desc) != cu::SUCCESS)
    desc = nullptr;
  if (!name)
    name = knownResultName(r);
  std::string s = name ? name : "CUDA error " + std::to_string(r);
  if (desc)
    s += std::string(" (") + desc + ")";
  return s;
}

std::string cudaLibraryName() {
  const char *env = std::getenv("FLASHMLIR_LIBCUDA");
  return env && *env ? env : "libcuda.so.1";
}

bool loadCudaDriver(const std::string &path, CudaDriver *out,
                    std::string *err) {
  *out = CudaDriver();
  dlerror();
  void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    *err = "cannot load the CUDA driver library " + path + ": " +
           (e ? e : "unknown error") +
           " (is an NVIDIA driver installed on this machine?)";
    return false;
  }
  CudaDriver d;
  d.handle = h;
  std::string missing;
  auto resolve = [&](auto *fn, const char *name) {
    void *sym = dlsym(h, name);
    if (!sym && missing.empty())
      missing = name;
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(sym);
  };
  resolve(&d.cuInit, "cuInit");
  resolve(&d.cuDeviceGetCount, "cuDeviceGetCount");
  resolve(&d.cuDeviceGet, "cuDeviceGet");
  resolve(&d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  resolve(&d.cuCtxGetCurrent, "cuCtxGetCurrent");
  resolve(&d.cuCtxSetCurrent, "cuCtxSetCurrent");
  resolve(&d.cuCtxGetDevice, "cuCtxGetDevice");
  resolve(&d.cuCtxSynchronize, "cuCtxSynchronize");
  resolve(&d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  resolve(&d.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  resolve(&d.cuModuleLoadDataEx, "cuModuleLoadDataEx");
  resolve(&d.cuModuleUnload, "cuModuleUnload");
  resolve(&d.cuModuleGetFunction, "cuModuleGetFunction");
  resolve(&d.cuFuncSetAttribute, "cuFuncSetAttribute");
  resolve(&d.cuLaunchKernel, "cuLaunchKernel");
  resolve(&d.cuMemAlloc, "cuMemAlloc_v2");
  resolve(&d.cuMemFree, "cuMemFree_v2");
  resolve(&d.cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  resolve(&d.cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  resolve(&d.cuMemsetD32Async, "cuMemsetD32Async");
  resolve(&d.cuMemcpy2DAsync, "cuMemcpy2DAsync_v2");
  resolve(&d.cuStreamSynchronize, "cuStreamSynchronize");
  resolve(&d.cuGetErrorString, "cuGetErrorString");
  resolve(&d.cuGetErrorName, "cuGetErrorName");
  if (!missing.empty()) {
    *err = "the CUDA driver library " + path + " lacks " + missing +
           " (driver too old?)";
    dlclose(h);
    return false;
  }
  *out = d;
  return true;
}

namespace {

struct DriverSlot {
  std::unique_ptr<CudaDriver> driver; // null on failure
  fa_status status = FA_OK;
  std::string error;
};

} // namespace

const CudaDriver *getCudaDriver(fa_status *status, std::string *err) {
  // One slot per library name, never freed (the driver stays loaded for the
  // life of the process, as it must while any context or module exists).
  static std::mutex mu;
  static std::map<std::string, DriverSlot> *slots =
      new std::map<std::string, DriverSlot>();
  std::string path = cudaLibraryName();
  std::lock_guard<std::mutex> lock(mu);
  auto it = slots->find(path);
  if (it == slots->end()) {
    DriverSlot slot;
    auto d = std::make_unique<CudaDriver>();
    std::string lerr;
    if (!loadCudaDriver(path, d.get(), &lerr)) {
      slot.status = FA_ERR_NO_DRIVER;
      slot.error = lerr;
    } else {
      cu::Result r = d->cuInit(0);
      int count = 0;
      if (r == cu::SUCCESS)
        r = d->cuDeviceGetCount(&count);
      if (r == cu::ERROR_NO_DEVICE || (r == cu::SUCCESS && count == 0)) {
        slot.status = FA_ERR_NO_DEVICE;
        slot.error = "no CUDA device: " +
                     (r == cu::SUCCESS ? std::string("the driver sees none")
                                       : "cuInit failed: " + d->describe(r));
      } else if (r != cu::SUCCESS) {
        slot.status = FA_ERR_NO_DRIVER;
        slot.error = "cuInit failed: " + d->describe(r);
      } else {
        slot.driver = std::move(d);
      }
      // On failure the library stays open: unloading a half-initialized
      // driver is not worth the risk.
    }
    it = slots->emplace(path, std::move(slot)).first;
  }
  if (!it->second.driver) {
    *status = it->second.status;
    *err = it->second.error;
    return nullptr;
  }
  return it->second.driver.get();
}

} // namespace flashmlir::rt
