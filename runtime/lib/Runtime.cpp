//===- Runtime.cpp - The C API of the GPU runtime -------------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// fa_runtime: a parsed bundle, the driver table and, per CUDA context, the
// device's properties, the loaded modules/functions and the workspaces
// (RuntimeState.h). This file: the handle's life, the steps the entry points
// are made of, and the device memory helpers; the attention entry points are
// in RuntimeAttention.cpp. Every entry point takes the handle's lock, never
// lets a C++ exception escape, and reports failures as an fa_status plus a
// message kept in the handle.
//
//===----------------------------------------------------------------------===//

#include "RuntimeState.h"

#include <cstring>
#include <exception>

using namespace flashmlir::rt;

namespace {
constexpr int64_t kDefaultSmemLimit = 48 * 1024;
} // namespace

namespace flashmlir {
namespace rt {


fa_status fail(fa_runtime *rt, fa_status st, const std::string &msg) {
  rt->lastError = msg;
  return st;
}

/// The status for a failed driver call: OOM when it is one, else `other`.
fa_status driverStatus(cu::Result r, fa_status other) {
  return r == cu::ERROR_OUT_OF_MEMORY ? FA_ERR_OOM : other;
}

fa_status driverFail(fa_runtime *rt, cu::Result r, fa_status other,
                     const std::string &what) {
  return fail(rt, driverStatus(r, other),
              what + " failed: " + rt->drv->describe(r));
}

/// Checks the handle is usable (creation succeeded).
fa_status ready(fa_runtime *rt) {
  if (rt->initStatus != FA_OK)
    return fail(rt, rt->initStatus, rt->initError);
  return FA_OK;
}

/// Makes sure a context is current on this thread (the primary context of
/// device 0 when none is) and returns its state.
fa_status currentContext(fa_runtime *rt, ContextState **out) {
  const CudaDriver &d = *rt->drv;
  cu::Context ctx = nullptr;
  cu::Result r = d.cuCtxGetCurrent(&ctx);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH, "cuCtxGetCurrent");
  if (!ctx) {
    if (!rt->primaryCtx) {
      cu::Device dev;
      r = d.cuDeviceGet(&dev, 0);
      if (r != cu::SUCCESS)
        return driverFail(rt, r, FA_ERR_NO_DEVICE, "cuDeviceGet(0)");
      cu::Context primary = nullptr;
      r = d.cuDevicePrimaryCtxRetain(&primary, dev);
      if (r != cu::SUCCESS)
        return driverFail(rt, r, FA_ERR_NO_DEVICE,
                          "cuDevicePrimaryCtxRetain(device 0)");
      rt->primaryCtx = primary;
      rt->primaryDevice = dev;
    }
    r = d.cuCtxSetCurrent(rt->primaryCtx);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH, "cuCtxSetCurrent");
    ctx = rt->primaryCtx;
  }
  auto it = rt->contexts.find(ctx);
  if (it == rt->contexts.end()) {
    ContextState s;
    r = d.cuCtxGetDevice(&s.device);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH, "cuCtxGetDevice");
    struct {
      int *out;
      int attr;
      const char *name;
    } attrs[] = {
        {&s.ccMajor, cu::DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "cc major"},
        {&s.ccMinor, cu::DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "cc minor"},
        {&s.numSms, cu::DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "SM count"},
        {&s.smemOptin, cu::DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
         "opt-in shared memory"},
    };
    for (auto &a : attrs) {
      r = d.cuDeviceGetAttribute(a.out, a.attr, s.device);
      if (r != cu::SUCCESS)
        return driverFail(rt, r, FA_ERR_LAUNCH,
                          std::string("cuDeviceGetAttribute(") + a.name + ")");
    }
    it = rt->contexts.emplace(ctx, std::move(s)).first;
  }
  *out = &it->second;
  return FA_OK;
}

/// The CUfunction of kernel `idx` in the current context: checks its
/// signature against its PTX, loads its module (once per context and file:
/// the cubin where it runs on the device, else the PTX) and raises its
/// dynamic shared memory limit when it needs more than 48 KiB.
fa_status getFunction(fa_runtime *rt, ContextState *cs, int idx,
                      cu::Function *out) {
  auto fit = cs->functions.find(idx);
  if (fit != cs->functions.end()) {
    *out = fit->second;
    return FA_OK;
  }
  const CudaDriver &d = *rt->drv;
  const KernelDesc &k = rt->manifest.kernels[idx];
  // Bundle files are read from inside the bundle directory only (resolved
  // again here: the directory may have changed since it was loaded).
  std::string path, perr;
  if (!resolveBundleFile(rt->manifest.dir, k.file, &path, &perr))
    return fail(rt, FA_ERR_BUNDLE, "kernel '" + k.name + "': file " + perr);

  // The manifest's argument list against the PTX's .entry, once per kernel
  // and context, when it is first used (loadBundle reads no PTX, so that
  // creating a runtime over a large bundle stays cheap).
  std::string ptx;
  {
    std::string err;
    if (!readFile(path, &ptx, &err))
      return fail(rt, FA_ERR_BUNDLE, "kernel '" + k.name + "': " + err);
    if (!checkKernelPtx(rt->manifest, k, ptx, &err))
      return fail(rt, FA_ERR_BUNDLE, err);
  }
  auto mit = cs->modules.find(k.file);
  // The kernel's SASS, where the bundle has it for this device: no JIT. A
  // cubin the driver does not take (another architecture, a damaged file)
  // falls back to the PTX.
  if (mit == cs->modules.end() && !k.cubin.empty() &&
      cubinRunsOn(k.config.target, cs->ccMajor, cs->ccMinor)) {
    std::string image, err, cubinPath;
    cu::Module mod = nullptr;
    if (!resolveBundleFile(rt->manifest.dir, k.cubin, &cubinPath, &err))
      return fail(rt, FA_ERR_BUNDLE, "kernel '" + k.name + "': cubin " + err);
    if (readFile(cubinPath, &image, &err) &&
        d.cuModuleLoadDataEx(&mod, image.data(), 0, nullptr, nullptr) ==
            cu::SUCCESS)
      mit = cs->modules.emplace(k.file, mod).first;
  }
  if (mit == cs->modules.end()) {
    static constexpr size_t kLogSize = 16384;
    std::string errorLog(kLogSize, '\0'), infoLog(kLogSize, '\0');
    int options[] = {cu::JIT_ERROR_LOG_BUFFER,
                     cu::JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                     cu::JIT_INFO_LOG_BUFFER,
                     cu::JIT_INFO_LOG_BUFFER_SIZE_BYTES};
    void *values[] = {&errorLog[0], reinterpret_cast<void *>(kLogSize),
                      &infoLog[0], reinterpret_cast<void *>(kLogSize)};
    cu::Module mod = nullptr;
    cu::Result r = d.cuModuleLoadDataEx(&mod, ptx.c_str(), 4, options, values);
    if (r != cu::SUCCESS) {
      errorLog.resize(std::strlen(errorLog.c_str()));
      infoLog.resize(std::strlen(infoLog.c_str()));
      std::string msg = "kernel '" + k.name + "': the driver rejected " +
                        path + ": " + d.describe(r);
      if (!errorLog.empty())
        msg += "\nJIT error log:\n" + errorLog;
      if (!infoLog.empty())
        msg += "\nJIT info log:\n" + infoLog;
      return fail(rt, driverStatus(r, FA_ERR_PTX), msg);
    }
    mit = cs->modules.emplace(k.file, mod).first;
  }

  cu::Function fn = nullptr;
  cu::Result r = d.cuModuleGetFunction(&fn, mit->second, k.entry.c_str());
  if (r != cu::SUCCESS)
    return fail(rt, FA_ERR_PTX,
                "kernel '" + k.name + "': no entry '" + k.entry + "' in " +
                    path + ": " + d.describe(r));
  if (k.dynamicSmem > kDefaultSmemLimit) {
    if (k.dynamicSmem > cs->smemOptin)
      return fail(rt, FA_ERR_LAUNCH,
                  "kernel '" + k.name + "' needs " +
                      std::to_string(k.dynamicSmem) +
                      " bytes of dynamic shared memory; the device allows " +
                      std::to_string(cs->smemOptin));
    r = d.cuFuncSetAttribute(fn, cu::FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                             static_cast<int>(k.dynamicSmem));
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "kernel '" + k.name +
                            "': cuFuncSetAttribute(max dynamic shared memory)");
  }
  cs->functions.emplace(idx, fn);
  *out = fn;
  return FA_OK;
}

/// The kernel of `kind` for `p` (cached per context), or -1 with the
/// reason in *err (err null: a cached miss as is, no message).
int lookupKernel(fa_runtime *rt, ContextState *cs, KernelKind kind,
                 const Problem &p, std::string *err) {
  auto key = std::make_tuple(static_cast<int>(kind), static_cast<int>(p.dtype),
                             p.D, p.Dv, p.causal, p.window, p.softcap,
                             p.windowLeft >= 0, p.windowRight == 0, p.varlen,
                             p.alibi, p.rotary);
  auto it = cs->selected.find(key);
  // A cached miss is selected again only to say why (err given).
  if (it != cs->selected.end() && (it->second >= 0 || !err))
    return it->second;
  std::string why;
  int idx = selectKernel(rt->manifest, kind, p, cs->ccMajor, cs->ccMinor,
                         err ? err : &why);
  cs->selected[key] = idx;
  return idx;
}

/// Selects the kernel of `kind` for `p` and loads it.
fa_status selectAndLoad(fa_runtime *rt, ContextState *cs, KernelKind kind,
                        const Problem &p, Prepared *out) {
  if (!rt->hasBundle)
    return fail(rt, FA_ERR_NO_KERNEL,
                "this runtime was created without a kernel bundle");
  std::string err;
  int idx = lookupKernel(rt, cs, kind, p, &err);
  if (idx < 0)
    return fail(rt, FA_ERR_NO_KERNEL, err);
  out->kernel = idx;
  return getFunction(rt, cs, idx, &out->fn);
}

/// Whether the bundle has the split-KV forward (fwd_split + fwd_combine)
/// for `p` (no error recorded when not).
bool hasSplitKernels(fa_runtime *rt, ContextState *cs, const Problem &p) {
  auto known = [&](KernelKind kind) {
    return lookupKernel(rt, cs, kind, p, /*err=*/nullptr) >= 0;
  };
  return rt->hasBundle && known(KernelKind::FwdSplit) &&
         known(KernelKind::FwdCombine);
}

/// Grid and parameters of a selected kernel (after all values are known).
fa_status pack(fa_runtime *rt, const Problem &p, Prepared *pr) {
  const KernelDesc &k = rt->manifest.kernels[pr->kernel];
  std::string err;
  if (!computeGrid(k, p, pr->grid, &pr->empty, &err))
    return fail(rt, FA_ERR_INVALID, err);
  if (!packArgs(k, p, &pr->args, &err))
    return fail(rt, FA_ERR_INVALID, err);
  return FA_OK;
}

fa_status launch(fa_runtime *rt, Prepared &pr, cu::Stream stream) {
  if (pr.empty)
    return FA_OK;
  const KernelDesc &k = rt->manifest.kernels[pr.kernel];
  cu::Result r = rt->drv->cuLaunchKernel(
      pr.fn, pr.grid[0], pr.grid[1], pr.grid[2], k.block[0], k.block[1],
      k.block[2], static_cast<unsigned>(k.dynamicSmem), stream,
      pr.args.params.data(), nullptr);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH,
                      "launch of kernel '" + k.name + "' (grid " +
                          std::to_string(pr.grid[0]) + "x" +
                          std::to_string(pr.grid[1]) + "x" +
                          std::to_string(pr.grid[2]) + ")");
  return FA_OK;
}

fa_status growDeviceBuffer(fa_runtime *rt, cu::DevicePtr *ptr, size_t *size,
                           size_t bytes, size_t granule,
                           const std::string &growing,
                           const std::string &allocName) {
  if (bytes <= *size)
    return FA_OK;
  const CudaDriver &d = *rt->drv;
  if (*ptr) {
    cu::Result r = d.cuCtxSynchronize();
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuCtxSynchronize (before growing the " + growing +
                            ")");
    d.cuMemFree(*ptr);
    *ptr = 0;
    *size = 0;
  }
  size_t rounded = (bytes + granule - 1) / granule * granule;
  cu::DevicePtr fresh = 0;
  cu::Result r = d.cuMemAlloc(&fresh, rounded);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH,
                      "cuMemAlloc of a " + std::to_string(rounded) + "-byte " +
                          allocName);
  *ptr = fresh;
  *size = rounded;
  return FA_OK;
}

fa_status ensureWorkspace(fa_runtime *rt, ContextState *cs, size_t bytes) {
  // Rounded up to 2 MiB so slowly growing problems do not reallocate each
  // time.
  return growDeviceBuffer(rt, &cs->workspace, &cs->workspaceBytes, bytes,
                          size_t(2) << 20, "workspace", "backward workspace");
}

bool kernelTakes(const KernelDesc &k, const char *name) {
  for (const KernelArg &a : k.args)
    if (a.name == name)
      return true;
  return false;
}

/// The live fa_runtime handles and the calls running on each
/// (HandleRegistry.h): a call on a destroyed handle is refused
/// (FA_ERR_INVALID), and fa_runtime_destroy waits for the calls in flight.
flashmlir::HandleRegistry &liveRuntimes() {
  static auto *r = new flashmlir::HandleRegistry(); // outlives static dtors
  return *r;
}

} // namespace rt
} // namespace flashmlir

extern "C" {

const char *fa_status_name(fa_status status) {
  switch (status) {
  case FA_OK:
    return "FA_OK";
  case FA_ERR_NO_DRIVER:
    return "FA_ERR_NO_DRIVER";
  case FA_ERR_NO_DEVICE:
    return "FA_ERR_NO_DEVICE";
  case FA_ERR_BUNDLE:
    return "FA_ERR_BUNDLE";
  case FA_ERR_NO_KERNEL:
    return "FA_ERR_NO_KERNEL";
  case FA_ERR_PTX:
    return "FA_ERR_PTX";
  case FA_ERR_LAUNCH:
    return "FA_ERR_LAUNCH";
  case FA_ERR_OOM:
    return "FA_ERR_OOM";
  case FA_ERR_INVALID:
    return "FA_ERR_INVALID";
  }
  return "FA_ERR_UNKNOWN";
}

fa_status fa_runtime_create(const char *bundle_dir, fa_runtime **out) {
  if (!out)
    return FA_ERR_INVALID;
  *out = nullptr;
  fa_runtime *rt = new (std::nothrow) fa_runtime();
  if (!rt)
    return FA_ERR_OOM;
  liveRuntimes().add(rt);
  *out = rt;
  auto failInit = [rt](fa_status st, const std::string &msg) {
    rt->initStatus = st;
    rt->initError = msg;
    rt->lastError = msg;
    return st;
  };
  try {
    if (bundle_dir) {
      std::string err;
      if (!loadBundle(bundle_dir, &rt->manifest, &err))
        return failInit(FA_ERR_BUNDLE, err);
      rt->hasBundle = true;
    }
    fa_status st = FA_OK;
    std::string err;
    rt->drv = getCudaDriver(&st, &err);
    if (!rt->drv)
      return failInit(st, err);
    return FA_OK;
  } catch (const std::bad_alloc &) {
    return failInit(FA_ERR_OOM, "out of host memory");
  } catch (...) {
    return failInit(FA_ERR_INVALID, "internal error while creating the runtime");
  }
}

void fa_runtime_destroy(fa_runtime *rt) {
  // Not live (destroyed, or being destroyed by another thread): nothing to
  // free. Otherwise new calls are refused from here on and the running ones
  // are waited for.
  if (!rt || !liveRuntimes().remove(rt))
    return;
  {
    std::lock_guard<std::mutex> lock(rt->mu);
    const CudaDriver *d = rt->drv;
    if (d) {
      // Release per-context resources inside their context; errors (e.g. a
      // context already destroyed, or a driver shut down at exit) are
      // ignored.
      cu::Context saved = nullptr;
      bool haveSaved = d->cuCtxGetCurrent(&saved) == cu::SUCCESS;
      for (auto &entry : rt->contexts) {
        ContextState &cs = entry.second;
        if (d->cuCtxSetCurrent(entry.first) != cu::SUCCESS)
          continue;
        if (cs.workspace || cs.padScratch)
          d->cuCtxSynchronize();
        if (cs.workspace)
          d->cuMemFree(cs.workspace);
        // The head-dim padding scratch (PaddedCall) too (LeakSanitizer,
        // test/Sanitizers/fa-run-asan.test).
        if (cs.padScratch)
          d->cuMemFree(cs.padScratch);
        for (auto &m : cs.modules)
          d->cuModuleUnload(m.second);
      }
      if (haveSaved)
        d->cuCtxSetCurrent(saved);
      if (rt->primaryCtx)
        d->cuDevicePrimaryCtxRelease(rt->primaryDevice);
    }
  }
  delete rt;
}

const char *fa_runtime_last_error(const fa_runtime *rt) {
  if (!rt)
    return "invalid runtime handle (NULL)";
  if (!liveRuntimes().live(rt))
    return "invalid runtime handle (destroyed, or not made by "
           "fa_runtime_create)";
  return rt->lastError.c_str();
}

fa_status fa_device_info(fa_runtime *rt, int *cc_major, int *cc_minor,
                         int *num_sms) {
  FA_BEGIN(rt)
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  if (cc_major)
    *cc_major = cs->ccMajor;
  if (cc_minor)
    *cc_minor = cs->ccMinor;
  if (num_sms)
    *num_sms = cs->numSms;
  return FA_OK;
  FA_END(rt)
}

fa_status fa_malloc(fa_runtime *rt, size_t bytes, void **dptr) {
  FA_BEGIN(rt)
  if (!dptr)
    return fail(rt, FA_ERR_INVALID, "fa_malloc: dptr is null");
  *dptr = nullptr;
  if (bytes == 0)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  cu::DevicePtr p = 0;
  cu::Result r = rt->drv->cuMemAlloc(&p, bytes);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH,
                      "cuMemAlloc(" + std::to_string(bytes) + " bytes)");
  *dptr = reinterpret_cast<void *>(p);
  return FA_OK;
  FA_END(rt)
}

fa_status fa_free(fa_runtime *rt, void *dptr) {
  FA_BEGIN(rt)
  if (!dptr)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  cu::Result r = rt->drv->cuMemFree(reinterpret_cast<cu::DevicePtr>(dptr));
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH, "cuMemFree");
  return FA_OK;
  FA_END(rt)
}

fa_status fa_memcpy_htod(fa_runtime *rt, void *dst, const void *src,
                         size_t bytes) {
  FA_BEGIN(rt)
  if (bytes == 0)
    return FA_OK;
  if (!dst || !src)
    return fail(rt, FA_ERR_INVALID, "fa_memcpy_htod: null pointer");
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  cu::Result r =
      rt->drv->cuMemcpyHtoD(reinterpret_cast<cu::DevicePtr>(dst), src, bytes);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH, "cuMemcpyHtoD");
  return FA_OK;
  FA_END(rt)
}

fa_status fa_memcpy_dtoh(fa_runtime *rt, void *dst, const void *src,
                         size_t bytes) {
  FA_BEGIN(rt)
  if (bytes == 0)
    return FA_OK;
  if (!dst || !src)
    return fail(rt, FA_ERR_INVALID, "fa_memcpy_dtoh: null pointer");
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  cu::Result r = rt->drv->cuMemcpyDtoH(
      dst, reinterpret_cast<cu::DevicePtr>(const_cast<void *>(src)), bytes);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH, "cuMemcpyDtoH");
  return FA_OK;
  FA_END(rt)
}

fa_status fa_synchronize(fa_runtime *rt) {
  FA_BEGIN(rt)
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  cu::Result r = rt->drv->cuCtxSynchronize();
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH, "cuCtxSynchronize");
  return FA_OK;
  FA_END(rt)
}

int64_t fa_workspace_bytes(const fa_runtime *rt) {
  if (!rt)
    return 0;
  flashmlir::HandleCall call(liveRuntimes(), rt);
  if (!call.ok())
    return 0;
  std::lock_guard<std::mutex> lock(rt->mu);
  int64_t total = 0;
  for (const auto &entry : rt->contexts)
    total += static_cast<int64_t>(entry.second.workspaceBytes);
  return total;
}

} // extern "C"
