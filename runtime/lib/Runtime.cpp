//===- Runtime.cpp - The C API of the GPU runtime -------------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// fa_runtime: a parsed bundle, the driver table and, per CUDA context, the
// device's properties, the loaded modules/functions and the backward
// workspace. Every entry point takes the handle's lock, never lets a C++
// exception escape, and reports failures as an fa_status plus a message kept
// in the handle.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/runtime/fa_runtime.h"

#include "RuntimeInternal.h"

#include "flashmlir/runtime/HandleRegistry.h"

#include <cstring>
#include <cmath>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <tuple>

using namespace flashmlir::rt;

namespace {

constexpr int64_t kDefaultSmemLimit = 48 * 1024;

struct ContextState {
  cu::Device device = 0;
  int ccMajor = 0, ccMinor = 0, numSms = 0, smemOptin = 0;
  std::map<std::string, cu::Module> modules; ///< by PTX file
  std::map<int, cu::Function> functions;     ///< by kernel index
  /// Selection results: (kind, dtype, D, Dv, causal, window, softcap,
  /// window_left >= 0, window_right == 0) -> kernel index.
  std::map<std::tuple<int, int, int64_t, int64_t, bool, bool, bool, bool, bool, bool>,
           int>
      selected;
  cu::DevicePtr workspace = 0;
  size_t workspaceBytes = 0;
  /// Zero-padded copies of the tensors of a call whose head dims are not
  /// multiples of 8 (paddedCall).
  cu::DevicePtr padScratch = 0;
  size_t padScratchBytes = 0;
};

/// One kernel launch, fully prepared (nothing can fail but the launch).
struct Prepared {
  int kernel = -1;
  cu::Function fn = nullptr;
  unsigned grid[3] = {1, 1, 1};
  bool empty = false;
  PackedArgs args;
};

} // namespace

struct fa_runtime {
  mutable std::mutex mu;
  std::string lastError;
  /// Not FA_OK when creation failed: every later call returns it.
  fa_status initStatus = FA_OK;
  std::string initError;
  bool hasBundle = false;
  Manifest manifest;
  const CudaDriver *drv = nullptr;
  /// The primary context of device 0, when this runtime retained it.
  cu::Context primaryCtx = nullptr;
  cu::Device primaryDevice = 0;
  std::map<cu::Context, ContextState> contexts;
};

namespace {

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
/// reason in *err.
int lookupKernel(fa_runtime *rt, ContextState *cs, KernelKind kind,
                 const Problem &p, std::string *err) {
  auto key = std::make_tuple(static_cast<int>(kind), static_cast<int>(p.dtype),
                             p.D, p.Dv, p.causal, p.window, p.softcap,
                             p.windowLeft >= 0, p.windowRight == 0, p.varlen);
  auto it = cs->selected.find(key);
  if (it != cs->selected.end() && it->second >= 0)
    return it->second;
  int idx = selectKernel(rt->manifest, kind, p, cs->ccMajor, cs->ccMinor, err);
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
    auto key = std::make_tuple(static_cast<int>(kind), static_cast<int>(p.dtype),
                               p.D, p.Dv, p.causal, p.window, p.softcap,
                               p.windowLeft >= 0, p.windowRight == 0, p.varlen);
    auto it = cs->selected.find(key);
    if (it != cs->selected.end())
      return it->second >= 0;
    std::string err;
    return lookupKernel(rt, cs, kind, p, &err) >= 0;
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

/// Grows the context's workspace to at least `bytes` (synchronizing the
/// context before freeing the old one, which in-flight kernels may use).
fa_status ensureWorkspace(fa_runtime *rt, ContextState *cs, size_t bytes) {
  if (bytes <= cs->workspaceBytes)
    return FA_OK;
  const CudaDriver &d = *rt->drv;
  if (cs->workspace) {
    cu::Result r = d.cuCtxSynchronize();
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuCtxSynchronize (before growing the workspace)");
    d.cuMemFree(cs->workspace);
    cs->workspace = 0;
    cs->workspaceBytes = 0;
  }
  // Round up to 2 MiB so slowly growing problems do not reallocate each time.
  const size_t kGranule = size_t(2) << 20;
  size_t rounded = (bytes + kGranule - 1) / kGranule * kGranule;
  cu::DevicePtr ptr = 0;
  cu::Result r = d.cuMemAlloc(&ptr, rounded);
  if (r != cu::SUCCESS)
    return driverFail(rt, r, FA_ERR_LAUNCH,
                      "cuMemAlloc of a " + std::to_string(rounded) +
                          "-byte backward workspace");
  cs->workspace = ptr;
  cs->workspaceBytes = rounded;
  return FA_OK;
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

/// Common prologue of the entry points that use the GPU.
#define FA_BEGIN(rt)                                                           \
  if (!(rt))                                                                   \
    return FA_ERR_INVALID;                                                     \
  flashmlir::HandleCall call_(liveRuntimes(), rt);                             \
  if (!call_.ok())                                                             \
    return FA_ERR_INVALID;                                                     \
  std::lock_guard<std::mutex> lock_((rt)->mu);                                 \
  try {                                                                        \
    if (fa_status st_ = ready(rt); st_ != FA_OK)                               \
      return st_;

#define FA_END(rt)                                                             \
  }                                                                            \
  catch (const std::bad_alloc &) {                                             \
    return fail(rt, FA_ERR_OOM, "out of host memory");                         \
  }                                                                            \
  catch (const std::exception &e) {                                            \
    return fail(rt, FA_ERR_INVALID, std::string("internal error: ") + e.what()); \
  }                                                                            \
  catch (...) {                                                                \
    return fail(rt, FA_ERR_INVALID, "internal error");                         \
  }

#define FA_TRY(expr)                                                           \
  do {                                                                         \
    if (fa_status st_ = (expr); st_ != FA_OK)                                  \
      return st_;                                                              \
  } while (0)

} // namespace

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

namespace {

/// The split-KV forward (decode) of `p` with `splits` key ranges:
/// fwd_split writes the partials to the context's workspace, fwd_combine
/// merges them into o and lse.
fa_status forwardSplit(fa_runtime *rt, ContextState *cs, Problem &p,
                       int64_t splits, cu::Stream stream) {
  Prepared part, combine;
  FA_TRY(selectAndLoad(rt, cs, KernelKind::FwdSplit, p, &part));
  FA_TRY(selectAndLoad(rt, cs, KernelKind::FwdCombine, p, &combine));
  FA_TRY(ensureWorkspace(rt, cs, splitWorkspaceBytes(p, splits)));
  addSplitArgs(&p, splits, cs->workspace);
  FA_TRY(pack(rt, p, &part));
  FA_TRY(pack(rt, p, &combine));
  FA_TRY(launch(rt, part, stream));
  return launch(rt, combine, stream);
}

/// `numSplits`: 0 = the runtime's choice (the split-KV forward where the
/// bundle has it and a KV head's query rows, times its query heads, fit
/// one block, abi::kSplitRows, with its key ranges by splitKvHeuristic;
/// unless that is one range without GQA rows to pack), 1 = the one-pass
/// forward kernel, n > 1 = the split-KV forward with n ranges (at most
/// abi::kMaxSplits) where it applies.
fa_status forwardLocked(fa_runtime *rt, const fa_attn_params *params,
                        const fa_tensor *q, const fa_tensor *k,
                        const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                        void *stream, int64_t numSplits = 0) {
  Problem p;
  std::string err;
  if (buildForwardProblem(params, q, k, v, o, lse, &p, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, "fa_forward: " + err);
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  if (numSplits != 1 && !p.varlen && p.Hkv > 0 && p.Hq % p.Hkv == 0 &&
      p.Nq * (p.Hq / p.Hkv) <= flashmlir::abi::kSplitRows && p.B * p.Hq * p.Nq > 0 &&
      p.Nk > 0 && hasSplitKernels(rt, cs, p)) {
    int64_t splits = numSplits > 1
                         ? std::min<int64_t>(numSplits, flashmlir::abi::kMaxSplits)
                         : splitKvHeuristic(p, cs->numSms);
    // One range and no GQA group to pack: the one-pass kernel (on sm_90a
    // the wgmma one) does the same work.
    if (splits > 1 || p.Hq > p.Hkv)
      return forwardSplit(rt, cs, p, splits, static_cast<cu::Stream>(stream));
  }
  Prepared fwd;
  FA_TRY(selectAndLoad(rt, cs, KernelKind::Fwd, p, &fwd));
  FA_TRY(pack(rt, p, &fwd));
  return launch(rt, fwd, static_cast<cu::Stream>(stream));
}

/// The variable-length forward: packed q/k/v/o [T, H, D] (sizes[0..2]) and
/// lse [Hq, Tq] seen as batch-1 [1, H, T, D] / [1, Hq, Tq] views; the
/// kernels take the sequences from cu_seqlens_q/k.
fa_status forwardVarlenLocked(fa_runtime *rt, const fa_attn_params *params,
                              const fa_tensor *q, const fa_tensor *k,
                              const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                              const int32_t *cuQ, const int32_t *cuK,
                              int64_t batch, int64_t maxQ, int64_t maxK,
                              void *stream) {
  const char *where = "fa_forward_varlen: ";
  if (!q || !k || !v || !o || !lse || !cuQ || !cuK)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) + "null tensor or offsets pointer");
  if (batch < 0 || maxQ < 0 || maxK < 0)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) + "batch and max lengths must be >= 0");
  if (q->sizes[2] % 8 || v->sizes[2] % 8)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) +
                    "head dims must be multiples of 8 (got " +
                    std::to_string(q->sizes[2]) + ", " +
                    std::to_string(v->sizes[2]) + ")");
  auto view4 = [](const fa_tensor *t) {
    fa_tensor d{};
    d.data = t->data;
    d.sizes[0] = 1;
    d.sizes[1] = t->sizes[1];
    d.sizes[2] = t->sizes[0];
    d.sizes[3] = t->sizes[2];
    d.strides[0] = 0;
    d.strides[1] = t->strides[1];
    d.strides[2] = t->strides[0];
    d.strides[3] = t->strides[2];
    return d;
  };
  fa_tensor q4 = view4(q), k4 = view4(k), v4 = view4(v), o4 = view4(o);
  fa_tensor l3{};
  l3.data = lse->data;
  l3.sizes[0] = 1;
  l3.sizes[1] = lse->sizes[0];
  l3.sizes[2] = lse->sizes[1];
  l3.strides[0] = 0;
  l3.strides[1] = lse->strides[0];
  l3.strides[2] = lse->strides[1];
  Problem p;
  std::string err;
  if (buildForwardProblem(params, &q4, &k4, &v4, &o4, &l3, &p, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, where + err);
  p.varlen = true;
  auto integer = [&](const char *name, int64_t value) {
    ArgValue a;
    a.kind = ArgKind::I64;
    a.i = value;
    p.args[name] = a;
  };
  integer("batch", batch);
  integer("seqlen_q", maxQ);
  integer("seqlen_k", maxK);
  for (auto [name, ptr] : {std::pair{"cu_seqlens_q", cuQ}, {"cu_seqlens_k", cuK}}) {
    ArgValue a;
    a.kind = ArgKind::Buffer;
    a.ptr = reinterpret_cast<uint64_t>(ptr);
    a.extent = batch + 1;
    p.args[name] = a;
  }
  if (batch == 0 || maxQ == 0)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  Prepared fwd;
  FA_TRY(selectAndLoad(rt, cs, KernelKind::Fwd, p, &fwd));
  FA_TRY(pack(rt, p, &fwd));
  return launch(rt, fwd, static_cast<cu::Stream>(stream));
}

fa_status forwardKvcacheLocked(fa_runtime *rt, const fa_attn_params *params,
                               const fa_tensor *q, const fa_tensor *kc,
                               const fa_tensor *vc, fa_tensor *o, fa_tensor *lse,
                               const int32_t *cacheSeqlens,
                               const int32_t *blockTable, int64_t btStride,
                               int64_t maxBlocks, int64_t numSplits,
                               void *stream) {
  namespace abi = flashmlir::abi;
  const std::string where = "fa_forward_kvcache: ";
  if (!q || !kc || !vc || !o)
    return fail(rt, FA_ERR_INVALID,
                where + (!q ? "q" : !kc ? "k_cache" : !vc ? "v_cache" : "o") +
                    " is null");
  const bool paged = blockTable != nullptr;
  if (paged && !cacheSeqlens)
    return fail(rt, FA_ERR_INVALID,
                where + "a block table needs cache_seqlens");
  if (paged && (maxBlocks < 1 || btStride < maxBlocks))
    return fail(rt, FA_ERR_INVALID,
                where + "max_blocks must be >= 1 and block_table_stride >= "
                        "max_blocks (got " +
                    std::to_string(maxBlocks) + ", " +
                    std::to_string(btStride) + ")");
  if (numSplits < 0 || numSplits > abi::kMaxSplits)
    return fail(rt, FA_ERR_INVALID,
                where + "num_splits must be 0 (automatic) to " +
                    std::to_string(abi::kMaxSplits) + ", got " +
                    std::to_string(numSplits));
  const int64_t blockSize = kc->sizes[2];
  int64_t capacity = blockSize;
  if (paged && __builtin_mul_overflow(maxBlocks, blockSize, &capacity))
    return fail(rt, FA_ERR_INVALID, where + "max_blocks x block_size overflows");
  // The call as a dense one of `capacity` keys per sequence (views of the
  // cache with q's batch), then the cache tensors themselves.
  fa_tensor kv = *kc, vv = *vc;
  kv.sizes[0] = vv.sizes[0] = q->sizes[0];
  kv.sizes[2] = vv.sizes[2] = capacity;
  kv.strides[0] = vv.strides[0] = 0;
  kv.strides[2] = vv.strides[2] = 0;
  Problem p;
  std::string err;
  if (buildForwardProblem(params, q, &kv, &vv, o, lse, &p, &err) != FA_OK ||
      addCacheTensors(&p, kc, vc, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, where + err);
  if (!paged && kc->sizes[0] != p.B)
    return fail(rt, FA_ERR_INVALID,
                where + "k_cache has " + std::to_string(kc->sizes[0]) +
                    " sequences, q " + std::to_string(p.B) +
                    " (without a block table the cache is [batch, kv_heads, "
                    "capacity, head_dim])");
  if (p.D % 8 || p.Dv % 8)
    return fail(rt, FA_ERR_INVALID,
                where + "head dims must be multiples of 8 (got " +
                    std::to_string(p.D) + ", " + std::to_string(p.Dv) + ")");
  if (p.Nq * (p.Hq / p.Hkv) > abi::kSplitRows)
    return fail(rt, FA_ERR_INVALID,
                where + "seqlen_q x (heads / kv_heads) = " +
                    std::to_string(p.Nq * (p.Hq / p.Hkv)) +
                    " query rows per KV head; the split-KV kernels take at "
                    "most " +
                    std::to_string(abi::kSplitRows));
  auto integer = [&](const char *name, int64_t value) {
    ArgValue a;
    a.kind = ArgKind::I64;
    a.i = value;
    p.args[name] = a;
  };
  auto buffer = [&](const char *name, const int32_t *ptr, int64_t extent) {
    ArgValue a;
    a.kind = ArgKind::Buffer;
    a.ptr = reinterpret_cast<uint64_t>(ptr);
    a.extent = ptr ? extent : 0;
    p.args[name] = a;
  };
  integer("kv_mode", paged ? abi::kKvPaged
                     : cacheSeqlens ? abi::kKvCacheLens
                                    : abi::kKvDense);
  integer("block_size", blockSize);
  integer("block_shift", (blockSize & (blockSize - 1)) == 0
                             ? static_cast<int64_t>(__builtin_ctzll(
                                   static_cast<unsigned long long>(blockSize)))
                             : -1);
  integer("block_table_stride", paged ? btStride : 0);
  buffer("cache_seqlens", cacheSeqlens, p.B);
  buffer("block_table", blockTable, p.B * btStride);
  if (p.B * p.Hq * p.Nq == 0)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  if (!hasSplitKernels(rt, cs, p))
    return fail(rt, FA_ERR_NO_KERNEL,
                where + "the bundle has no split-KV kernels (fwd_split / "
                        "fwd_combine) for " +
                    std::string(dtypeName(p.dtype)) +
                    " head_dim=" + std::to_string(p.D) +
                    " head_dim_v=" + std::to_string(p.Dv) +
                    " (f16 / bf16 only; fa-compile --split-kv 1)");
  int64_t splits = numSplits > 0 ? numSplits : splitKvHeuristic(p, cs->numSms);
  return forwardSplit(rt, cs, p, splits, static_cast<cu::Stream>(stream));
}

fa_status backwardLocked(fa_runtime *rt, const fa_attn_params *params,
                         const fa_tensor *q, const fa_tensor *k,
                         const fa_tensor *v, const fa_tensor *o,
                         const fa_tensor *dout, const fa_tensor *lse,
                         fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                         void *stream) {
  Problem p;
  std::string err;
  if (buildBackwardProblem(params, q, k, v, o, dout, lse, dq, dk, dv, &p,
                           &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, "fa_backward: " + err);
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  // Select and load all three kernels before touching the workspace or
  // launching anything.
  Prepared stages[3];
  const KernelKind kinds[3] = {KernelKind::BwdPre, KernelKind::BwdMain,
                               KernelKind::BwdPost};
  for (int i = 0; i < 3; ++i)
    FA_TRY(selectAndLoad(rt, cs, kinds[i], p, &stages[i]));

  // dqacc_ws must start at zero: a bwd_pre kernel that takes dqacc_ws zeroes
  // it itself, otherwise the runtime clears it on the stream.
  WorkspaceLayout ws = workspaceLayout(p);
  bool needWorkspace = false, needDqAcc = false;
  for (const Prepared &s : stages) {
    const KernelDesc &kd = rt->manifest.kernels[s.kernel];
    needWorkspace |= kernelTakes(kd, "dr_ws") || kernelTakes(kd, "dqacc_ws");
    needDqAcc |= kernelTakes(kd, "dqacc_ws");
  }
  bool zeroDqAcc =
      needDqAcc && !kernelTakes(rt->manifest.kernels[stages[0].kernel],
                                "dqacc_ws");
  // Without a kernel that takes dqacc_ws (a deterministic bundle: its
  // bwd_post kernel computes dq itself) only dr_ws is allocated.
  size_t wsBytes = needDqAcc ? ws.totalBytes
                             : static_cast<size_t>(ws.drElems) * 4;
  if (needWorkspace && wsBytes > 0) {
    FA_TRY(ensureWorkspace(rt, cs, wsBytes));
    addWorkspaceArgs(&p, cs->workspace);
  } else {
    addWorkspaceArgs(&p, 0);
  }
  for (Prepared &s : stages)
    FA_TRY(pack(rt, p, &s));

  cu::Stream st = static_cast<cu::Stream>(stream);
  if (zeroDqAcc && ws.dqaccElems > 0) {
    cu::Result r = rt->drv->cuMemsetD32Async(
        cs->workspace + ws.dqaccOffset, 0,
        static_cast<size_t>(ws.dqaccElems), st);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuMemsetD32Async (zeroing dqacc_ws)");
  }
  for (Prepared &s : stages)
    FA_TRY(launch(rt, s, st));
  return FA_OK;
}

/// Head dims that are not multiples of 8 (the GPU kernels' 16-byte rows):
/// FlashAttention-2's way. The call runs on zero-padded contiguous copies
/// ([B, H, N, roundUp(D, 8)]) in a per-context scratch buffer, made and
/// read back with 2-D copies on the call's stream (so, like the backward
/// workspace, one scratch per context: calls on different streams of one
/// context must not overlap). The scale is the caller's (the true head
/// dim's); the padding columns add nothing to the scores, and only the true
/// columns of O (and dQ, dK, dV) are copied back.
struct PaddedCall {
  fa_runtime *rt;
  ContextState *cs;
  cu::Stream stream;
  int64_t eb;
  cu::DevicePtr next = 0;

  static int64_t pad8(int64_t d) { return (d + 7) / 8 * 8; }
  static int64_t elems(const fa_tensor *t, int64_t d) {
    return t->sizes[0] * t->sizes[1] * t->sizes[2] * d;
  }
  /// Reserves the padded copy of `t` (head dim `dp`); returns its tensor.
  fa_tensor reserve(const fa_tensor *t, int64_t dp) {
    fa_tensor r{};
    r.data = reinterpret_cast<void *>(next);
    for (int i = 0; i < 3; ++i)
      r.sizes[i] = t->sizes[i];
    r.sizes[3] = dp;
    r.strides[3] = 1;
    r.strides[2] = dp;
    r.strides[1] = dp * t->sizes[2];
    r.strides[0] = r.strides[1] * t->sizes[1];
    next += static_cast<cu::DevicePtr>((elems(t, dp) * eb + 255) / 256 * 256);
    return r;
  }
  /// Copies the first `cols` columns of every row between `from` and `to`
  /// (any strides, innermost 1), one 2-D copy per (batch, head).
  fa_status copyRows(const fa_tensor *from, const fa_tensor *to,
                     int64_t cols) {
    for (int64_t b = 0; b < from->sizes[0]; ++b)
      for (int64_t h = 0; h < from->sizes[1]; ++h) {
        cu::Memcpy2D c;
        c.srcDevice = reinterpret_cast<cu::DevicePtr>(from->data) +
                      (b * from->strides[0] + h * from->strides[1]) * eb;
        c.dstDevice = reinterpret_cast<cu::DevicePtr>(to->data) +
                      (b * to->strides[0] + h * to->strides[1]) * eb;
        c.WidthInBytes = static_cast<size_t>(cols * eb);
        c.srcPitch = std::max<size_t>(from->strides[2] * eb, c.WidthInBytes);
        c.dstPitch = std::max<size_t>(to->strides[2] * eb, c.WidthInBytes);
        c.Height = static_cast<size_t>(from->sizes[2]);
        cu::Result r = rt->drv->cuMemcpy2DAsync(&c, stream);
        if (r != cu::SUCCESS)
          return driverFail(rt, r, FA_ERR_LAUNCH,
                            "cuMemcpy2DAsync (head dim padding)");
      }
    return FA_OK;
  }
  /// Makes room for `bytes` of padded tensors and zeroes it.
  fa_status begin(size_t bytes) {
    if (bytes > cs->padScratchBytes) {
      const CudaDriver &d = *rt->drv;
      if (cs->padScratch) {
        cu::Result r = d.cuCtxSynchronize();
        if (r != cu::SUCCESS)
          return driverFail(rt, r, FA_ERR_LAUNCH,
                            "cuCtxSynchronize (before growing the padding "
                            "scratch)");
        d.cuMemFree(cs->padScratch);
        cs->padScratch = 0;
        cs->padScratchBytes = 0;
      }
      cu::DevicePtr ptr = 0;
      cu::Result r = d.cuMemAlloc(&ptr, bytes);
      if (r != cu::SUCCESS)
        return driverFail(rt, r, FA_ERR_LAUNCH,
                          "cuMemAlloc of a " + std::to_string(bytes) +
                              "-byte head-dim padding scratch");
      cs->padScratch = ptr;
      cs->padScratchBytes = bytes;
    }
    next = cs->padScratch;
    cu::Result r = rt->drv->cuMemsetD32Async(cs->padScratch, 0, bytes / 4,
                                             stream);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuMemsetD32Async (head dim padding)");
    return FA_OK;
  }
};

/// True when a call needs PaddedCall: rank-4 q / v whose head dims are not
/// multiples of 8 (sizes are validated by the problem builders first).
bool needsPadding(const fa_tensor *q, const fa_tensor *v) {
  return q && v && q->data && v->data &&
         (q->sizes[3] % 8 != 0 || v->sizes[3] % 8 != 0);
}

int64_t dtypeBytes(const fa_attn_params *params) {
  return rawDtype(params) == FA_F32 ? 4 : 2;
}

} // namespace

fa_status fa_forward(fa_runtime *rt, const fa_attn_params *params,
                     const fa_tensor *q, const fa_tensor *k, const fa_tensor *v,
                     fa_tensor *o, fa_tensor *lse, void *stream) {
  return fa_forward_splitkv(rt, params, q, k, v, o, lse, 0, stream);
}

fa_status fa_forward_splitkv(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k,
                             const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                             int64_t num_splits, void *stream) {
  FA_BEGIN(rt)
  if (num_splits < 0 || num_splits > flashmlir::abi::kMaxSplits)
    return fail(rt, FA_ERR_INVALID,
                "fa_forward_splitkv: num_splits must be 0 (automatic) to " +
                    std::to_string(flashmlir::abi::kMaxSplits) + ", got " +
                    std::to_string(num_splits));
  if (!needsPadding(q, v))
    return forwardLocked(rt, params, q, k, v, o, lse, stream, num_splits);
  {
    Problem p; // the shapes, strides and parameters as given
    std::string err;
    if (buildForwardProblem(params, q, k, v, o, lse, &p, &err) != FA_OK)
      return fail(rt, FA_ERR_INVALID, "fa_forward: " + err);
    if (p.B * p.Hq * p.Nq == 0 || p.Nk == 0)
      return forwardLocked(rt, params, q, k, v, o, lse, stream, num_splits);
  }
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  PaddedCall pc{rt, cs, static_cast<cu::Stream>(stream), dtypeBytes(params)};
  const int64_t dp = PaddedCall::pad8(q->sizes[3]),
                dvp = PaddedCall::pad8(v->sizes[3]);
  size_t bytes = 0;
  for (auto [t, d] : {std::pair{q, dp}, {k, dp}, {v, dvp}, {static_cast<const fa_tensor *>(o), dvp}})
    bytes += (PaddedCall::elems(t, d) * pc.eb + 255) / 256 * 256;
  FA_TRY(pc.begin(bytes));
  fa_tensor pq = pc.reserve(q, dp), pk = pc.reserve(k, dp),
            pv = pc.reserve(v, dvp), po = pc.reserve(o, dvp);
  FA_TRY(pc.copyRows(q, &pq, q->sizes[3]));
  FA_TRY(pc.copyRows(k, &pk, k->sizes[3]));
  FA_TRY(pc.copyRows(v, &pv, v->sizes[3]));
  fa_attn_params pp = *params; // the default scale of the true head dim
  if (!(pp.scale > 0))
    pp.scale = static_cast<float>(1.0 / std::sqrt(double(q->sizes[3])));
  FA_TRY(forwardLocked(rt, &pp, &pq, &pk, &pv, &po, lse, stream, num_splits));
  return pc.copyRows(&po, o, o->sizes[3]);
  FA_END(rt)
}

fa_status fa_forward_varlen(fa_runtime *rt, const fa_attn_params *params,
                            const fa_tensor *q, const fa_tensor *k,
                            const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                            const int32_t *cu_seqlens_q,
                            const int32_t *cu_seqlens_k, int64_t batch,
                            int64_t max_seqlen_q, int64_t max_seqlen_k,
                            void *stream) {
  FA_BEGIN(rt)
  return forwardVarlenLocked(rt, params, q, k, v, o, lse, cu_seqlens_q,
                             cu_seqlens_k, batch, max_seqlen_q, max_seqlen_k,
                             stream);
  FA_END(rt)
}

fa_status fa_forward_kvcache(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k_cache,
                             const fa_tensor *v_cache, fa_tensor *o,
                             fa_tensor *lse, const int32_t *cache_seqlens,
                             const int32_t *block_table,
                             int64_t block_table_stride, int64_t max_blocks,
                             int64_t num_splits, void *stream) {
  FA_BEGIN(rt)
  return forwardKvcacheLocked(rt, params, q, k_cache, v_cache, o, lse,
                              cache_seqlens, block_table, block_table_stride,
                              max_blocks, num_splits, stream);
  FA_END(rt)
}

fa_status fa_backward(fa_runtime *rt, const fa_attn_params *params,
                      const fa_tensor *q, const fa_tensor *k,
                      const fa_tensor *v, const fa_tensor *o,
                      const fa_tensor *dout, const fa_tensor *lse,
                      fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                      void *stream) {
  FA_BEGIN(rt)
  if (!needsPadding(q, v))
    return backwardLocked(rt, params, q, k, v, o, dout, lse, dq, dk, dv,
                          stream);
  {
    Problem p;
    std::string err;
    if (buildBackwardProblem(params, q, k, v, o, dout, lse, dq, dk, dv, &p,
                             &err) != FA_OK)
      return fail(rt, FA_ERR_INVALID, "fa_backward: " + err);
    if (p.B * p.Hq * p.Nq == 0 || p.Nk == 0)
      return backwardLocked(rt, params, q, k, v, o, dout, lse, dq, dk, dv,
                            stream);
  }
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  PaddedCall pc{rt, cs, static_cast<cu::Stream>(stream), dtypeBytes(params)};
  const int64_t dp = PaddedCall::pad8(q->sizes[3]),
                dvp = PaddedCall::pad8(v->sizes[3]);
  const fa_tensor *ins[5] = {q, k, v, o, dout};
  const fa_tensor *outs[3] = {dq, dk, dv};
  const int64_t inDims[5] = {dp, dp, dvp, dvp, dvp}, outDims[3] = {dp, dp, dvp};
  size_t bytes = 0;
  for (int i = 0; i < 5; ++i)
    bytes += (PaddedCall::elems(ins[i], inDims[i]) * pc.eb + 255) / 256 * 256;
  for (int i = 0; i < 3; ++i)
    bytes += (PaddedCall::elems(outs[i], outDims[i]) * pc.eb + 255) / 256 * 256;
  FA_TRY(pc.begin(bytes));
  fa_tensor pin[5], pout[3];
  for (int i = 0; i < 5; ++i) {
    pin[i] = pc.reserve(ins[i], inDims[i]);
    FA_TRY(pc.copyRows(ins[i], &pin[i], ins[i]->sizes[3]));
  }
  for (int i = 0; i < 3; ++i)
    pout[i] = pc.reserve(outs[i], outDims[i]);
  fa_attn_params pp = *params; // the default scale of the true head dim
  if (!(pp.scale > 0))
    pp.scale = static_cast<float>(1.0 / std::sqrt(double(q->sizes[3])));
  FA_TRY(backwardLocked(rt, &pp, &pin[0], &pin[1], &pin[2], &pin[3], &pin[4],
                        lse, &pout[0], &pout[1], &pout[2], stream));
  for (int i = 0; i < 3; ++i)
    FA_TRY(pc.copyRows(&pout[i], outs[i], outs[i]->sizes[3]));
  return FA_OK;
  FA_END(rt)
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
