//===- RuntimeState.h - the runtime handle and its helpers -----*- C++ -*-===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Private to runtime/lib: the fa_runtime handle (a parsed bundle, the driver
// table, per CUDA context the device's properties, loaded modules and the
// workspaces), the steps every entry point is made of (context, kernel
// selection and loading, argument packing, launch, workspace) and the
// FA_BEGIN / FA_END / FA_TRY prologue and epilogue. Runtime.cpp defines them
// with the handle and memory entry points; RuntimeAttention.cpp the
// attention entry points (forward, split-KV, varlen, KV cache, backward).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_LIB_RUNTIMESTATE_H
#define FLASHMLIR_RUNTIME_LIB_RUNTIMESTATE_H

#include "flashmlir/runtime/fa_runtime.h"

#include "RuntimeInternal.h"

#include "flashmlir/runtime/HandleRegistry.h"

#include <map>
#include <mutex>
#include <new>
#include <string>
#include <tuple>

namespace flashmlir {
namespace rt {

struct ContextState {
  cu::Device device = 0;
  int ccMajor = 0, ccMinor = 0, numSms = 0, smemOptin = 0;
  std::map<std::string, cu::Module> modules; ///< by PTX file
  std::map<int, cu::Function> functions;     ///< by kernel index
  /// Selection results: (kind, dtype, D, Dv, causal, window, softcap,
  /// window_left >= 0, window_right == 0, varlen, alibi, rotary) -> kernel
  /// index.
  std::map<std::tuple<int, int, int64_t, int64_t, bool, bool, bool, bool, bool,
                      bool, bool, bool>,
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

} // namespace rt
} // namespace flashmlir

struct fa_runtime {
  mutable std::mutex mu;
  std::string lastError;
  /// Not FA_OK when creation failed: every later call returns it.
  fa_status initStatus = FA_OK;
  std::string initError;
  bool hasBundle = false;
  flashmlir::rt::Manifest manifest;
  const flashmlir::rt::CudaDriver *drv = nullptr;
  /// The primary context of device 0, when this runtime retained it.
  flashmlir::rt::cu::Context primaryCtx = nullptr;
  flashmlir::rt::cu::Device primaryDevice = 0;
  std::map<flashmlir::rt::cu::Context, flashmlir::rt::ContextState> contexts;
};

namespace flashmlir {
namespace rt {

/// Records `msg` as the handle's last error and returns `st`.
fa_status fail(fa_runtime *rt, fa_status st, const std::string &msg);
/// The status for a failed driver call: OOM when it is one, else `other`.
fa_status driverStatus(cu::Result r, fa_status other);
/// fail() with "<what> failed: <driver message>".
fa_status driverFail(fa_runtime *rt, cu::Result r, fa_status other,
                     const std::string &what);
/// Checks the handle is usable (creation succeeded).
fa_status ready(fa_runtime *rt);
/// Makes sure a context is current on this thread (the primary context of
/// device 0 when none is) and returns its state.
fa_status currentContext(fa_runtime *rt, ContextState **out);
/// The CUfunction of kernel `idx` in the current context (module loaded and
/// checked once per context).
fa_status getFunction(fa_runtime *rt, ContextState *cs, int idx,
                      cu::Function *out);
/// The kernel of `kind` for `p` (cached per context), or -1 with the reason
/// in *err; with err null a cached miss is returned as is (no message).
int lookupKernel(fa_runtime *rt, ContextState *cs, KernelKind kind,
                 const Problem &p, std::string *err);
/// Selects the kernel of `kind` for `p` and loads it.
fa_status selectAndLoad(fa_runtime *rt, ContextState *cs, KernelKind kind,
                        const Problem &p, Prepared *out);
/// Whether the bundle has the split-KV forward (fwd_split + fwd_combine)
/// for `p` (no error recorded when not).
bool hasSplitKernels(fa_runtime *rt, ContextState *cs, const Problem &p);
/// Grid and parameters of a selected kernel (after all values are known).
fa_status pack(fa_runtime *rt, const Problem &p, Prepared *pr);
fa_status launch(fa_runtime *rt, Prepared &pr, cu::Stream stream);
/// Grows a context-owned device buffer (*ptr, *size bytes) to at least
/// `bytes`, rounded up to `granule`: synchronizes the context before freeing
/// the old one (in-flight kernels may use it). Errors name the buffer:
/// "cuCtxSynchronize (before growing the <growing>)", "cuMemAlloc of a
/// N-byte <allocName>".
fa_status growDeviceBuffer(fa_runtime *rt, cu::DevicePtr *ptr, size_t *size,
                           size_t bytes, size_t granule,
                           const std::string &growing,
                           const std::string &allocName);
/// The context's workspace (backward dQ accumulator, split-KV partials):
/// grown to at least `bytes`, in 2 MiB steps.
fa_status ensureWorkspace(fa_runtime *rt, ContextState *cs, size_t bytes);
bool kernelTakes(const KernelDesc &k, const char *name);

// RuntimeAttention.cpp: the launches every entry point shares.
/// Selects, loads, packs and launches the one kernel of `kind` for `p`.
fa_status runKernel(fa_runtime *rt, ContextState *cs, KernelKind kind,
                    const Problem &p, void *stream);
/// The backward's three launches (and d sinks' second bwd_pre pass) for a
/// built problem: kernel selection, workspaces, launches.
fa_status runBackward(fa_runtime *rt, Problem &p, const fa_score_mods *mods,
                      void *stream);
/// The live fa_runtime handles and the calls running on each.
flashmlir::HandleRegistry &liveRuntimes();

} // namespace rt
} // namespace flashmlir

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

#endif // FLASHMLIR_RUNTIME_LIB_RUNTIMESTATE_H
