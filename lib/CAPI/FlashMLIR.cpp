//===- FlashMLIR.cpp - C API of the FlashMLIR compiler ----------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir-c/FlashMLIR.h"

#include "flashmlir/Bundle/Bundle.h"
#include "flashmlir/CPU/CpuRunner.h"
#include "flashmlir/Dialect/Attn/IR/AttnDialect.h"
#include "flashmlir/InitAll.h"
#include "flashmlir/Support/InputChecks.h"
#include "flashmlir/runtime/HandleRegistry.h"
#include "flashmlir/runtime/Limits.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(Attn, attn, mlir::attn::AttnDialect)

void flashmlirRegisterAllPasses(void) { flashmlir::registerAllPasses(); }

void flashmlirRegisterAllDialects(MlirDialectRegistry registry) {
  flashmlir::registerAllDialects(*unwrap(registry));
}

namespace {
int fail(char *err, size_t errlen, const std::string &msg);
} // namespace

int flashmlir_run_pass_pipeline(const char *ir, const char *pipeline,
                                char **out, char *err, size_t errlen) {
  if (!ir || !pipeline || !out)
    return fail(err, errlen, "flashmlir_run_pass_pipeline: null argument");
  *out = nullptr;
  // Once per process, unless the embedder registered them already (a second
  // registration of a named pipeline is a fatal error in MLIR).
  static std::once_flag once;
  std::call_once(once, [] {
    if (!mlir::PassPipelineInfo::lookup("attn-cpu-pipeline"))
      flashmlir::registerAllPasses();
  });
  mlir::DialectRegistry registry;
  flashmlir::registerAllDialects(registry);
  mlir::MLIRContext context(registry);
  std::string diagnostics;
  llvm::raw_string_ostream os(diagnostics);
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    os << d.getLocation() << ": " << d << "\n";
    return mlir::success();
  });
  // Input the MLIR parser would crash on (InputChecks.h).
  if (std::string msg = flashmlir::checkParserHazards(ir); !msg.empty())
    return fail(err, errlen, "cannot parse the module: " + msg);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(ir, &context);
  if (!module)
    return fail(err, errlen, "cannot parse the module: " + diagnostics);
  // "builtin.module(...)": parsed with its anchor, then run on the module
  // itself (a PassManager given the text would nest it under its own anchor
  // and run it on modules inside this one).
  std::string pipelineErrors;
  llvm::raw_string_ostream pos(pipelineErrors);
  mlir::FailureOr<mlir::OpPassManager> parsed =
      mlir::parsePassPipeline(pipeline, pos);
  if (mlir::failed(parsed))
    return fail(err, errlen, "bad pass pipeline '" + std::string(pipeline) +
                                 "': " + pipelineErrors);
  if (parsed->getOpAnchorName() != mlir::ModuleOp::getOperationName())
    return fail(err, errlen,
                "the pass pipeline must be anchored on the module: "
                "\"builtin.module(...)\", got '" +
                    std::string(pipeline) + "'");
  mlir::PassManager pm(&context, mlir::ModuleOp::getOperationName());
  static_cast<mlir::OpPassManager &>(pm) = *parsed;
  if (mlir::failed(pm.run(*module)))
    return fail(err, errlen, "the pipeline failed: " + diagnostics);
  std::string text;
  llvm::raw_string_ostream ts(text);
  module->print(ts);
  *out = static_cast<char *>(std::malloc(text.size() + 1));
  if (!*out)
    return fail(err, errlen, "out of memory");
  std::memcpy(*out, text.c_str(), text.size() + 1);
  return 0;
}

void flashmlir_free(void *p) { std::free(p); }

struct flashmlir_cpu_kernels {
  std::unique_ptr<flashmlir::CpuKernels> impl;
};

namespace {

/// The live kernel handles and the calls running on each: a call on a
/// handle that is not live (destroyed, or never created) is refused instead
/// of touching freed memory, and flashmlir_cpu_destroy waits until the calls
/// that already started on the handle have returned.
flashmlir::HandleRegistry &registry() {
  static auto *r = new flashmlir::HandleRegistry(); // outlives static dtors
  return *r;
}

int fail(char *err, size_t errlen, const std::string &msg) {
  if (err && errlen) {
    size_t n = std::min(errlen - 1, msg.size());
    std::memcpy(err, msg.data(), n);
    err[n] = '\0';
  }
  return 1;
}

flashmlir::TensorArg arg(const flashmlir_tensor *t) {
  flashmlir::TensorArg a;
  if (!t)
    return a;
  a.data = t->data;
  a.rank = int(t->rank);
  for (int i = 0; i < 4; ++i) {
    a.sizes[i] = t->sizes[i];
    a.strides[i] = t->strides[i];
  }
  return a;
}
} // namespace

int flashmlir_cpu_compile(const flashmlir_cpu_config *c,
                          flashmlir_cpu_kernels **out, char *err,
                          size_t errlen) {
  return flashmlir_cpu_compile_ex(c, nullptr, out, err, errlen);
}

int flashmlir_cpu_compile_ex(const flashmlir_cpu_config *c,
                             const flashmlir_cpu_extras *extras,
                             flashmlir_cpu_kernels **out, char *err,
                             size_t errlen) {
  if (!c || !out)
    return fail(err, errlen, "flashmlir_cpu_compile: null argument");
  *out = nullptr;
  flashmlir::KernelConfig k;
  // The int the caller stored (any int is valid C; reading an out-of-range
  // value through the C++ enum type would be undefined behavior).
  int dtype = 0;
  static_assert(sizeof(c->dtype) == sizeof(int), "flashmlir_dtype is an int");
  std::memcpy(&dtype, &c->dtype, sizeof(dtype));
  switch (dtype) {
  case FLASHMLIR_F32:
    k.dtype = flashmlir::rt::DType::F32;
    break;
  case FLASHMLIR_F16:
    k.dtype = flashmlir::rt::DType::F16;
    break;
  case FLASHMLIR_BF16:
    k.dtype = flashmlir::rt::DType::BF16;
    break;
  default:
    return fail(err, errlen, "unsupported dtype " + std::to_string(dtype) +
                                 " (expected f32, f16 or bf16)");
  }
  k.D = c->head_dim;
  k.Dv = c->head_dim_v ? c->head_dim_v : c->head_dim;
  // Ranges: flashmlir/runtime/Limits.h (CpuKernels::compile checks the
  // rest: scale, softcap, windows, the environment).
  namespace lim = flashmlir::limits;
  for (const std::string &msg :
       {lim::checkHeadDim("head_dim", k.D),
        lim::checkHeadDim("head_dim_v", k.Dv),
        std::isnan(c->scale) ? std::string("scale = nan is not a number")
                             : std::string(),
        lim::checkRange("causal", c->causal, 0, 1),
        lim::checkRange("unfused", c->unfused, 0, 1),
        lim::checkRange("block_m (0: default)", c->block_m, 0, lim::kMaxBlock),
        lim::checkRange("block_n (0: default)", c->block_n, 0, lim::kMaxBlock)})
    if (!msg.empty())
      return fail(err, errlen, "flashmlir_cpu_compile: " + msg);
  k.scale = c->scale > 0 ? c->scale : 1.0 / std::sqrt(double(k.D));
  k.causal = c->causal != 0;
  k.windowLeft = c->window_left;
  k.windowRight = c->window_right;
  k.softcap = c->softcap;
  k.unfused = c->unfused != 0;
  if (c->block_m > 0)
    k.blockM = c->block_m;
  if (c->block_n > 0)
    k.blockN = c->block_n;
  if (extras) {
    k.scoreMod = extras->score_mod ? extras->score_mod : "";
    k.maskMod = extras->mask_mod ? extras->mask_mod : "";
    k.rotaryDim = extras->rotary_dim;
    k.rotaryInterleaved = extras->rotary_interleaved != 0;
  }
  std::string msg;
  std::unique_ptr<flashmlir::CpuKernels> impl =
      flashmlir::CpuKernels::compile(k, msg);
  if (!impl)
    return fail(err, errlen, "flashmlir_cpu_compile: " + msg);
  auto *h = new flashmlir_cpu_kernels{std::move(impl)};
  registry().add(h);
  *out = h;
  return 0;
}

void flashmlir_cpu_destroy(flashmlir_cpu_kernels *kernels) {
  // Not live (null, destroyed, or being destroyed by another thread):
  // nothing to free.
  if (kernels && registry().remove(kernels))
    delete kernels;
}

static const char *kDeadHandle =
    ": the kernels handle is not live (destroyed, or not made by "
    "flashmlir_cpu_compile)";

int flashmlir_cpu_forward(flashmlir_cpu_kernels *kernels,
                          const flashmlir_tensor *q, const flashmlir_tensor *k,
                          const flashmlir_tensor *v, flashmlir_tensor *o,
                          flashmlir_tensor *lse, char *err, size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !lse)
    return fail(err, errlen, "flashmlir_cpu_forward: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen, std::string("flashmlir_cpu_forward") + kDeadHandle);
  std::string msg;
  if (!kernels->impl->forward(arg(q), arg(k), arg(v), arg(o), arg(lse), msg))
    return fail(err, errlen, msg);
  return 0;
}

int flashmlir_cpu_backward(flashmlir_cpu_kernels *kernels,
                           const flashmlir_tensor *q, const flashmlir_tensor *k,
                           const flashmlir_tensor *v, const flashmlir_tensor *o,
                           const flashmlir_tensor *dout,
                           const flashmlir_tensor *lse, flashmlir_tensor *dq,
                           flashmlir_tensor *dk, flashmlir_tensor *dv,
                           char *err, size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !dout || !lse || !dq || !dk || !dv)
    return fail(err, errlen, "flashmlir_cpu_backward: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen,
                std::string("flashmlir_cpu_backward") + kDeadHandle);
  std::string msg;
  if (!kernels->impl->backward(arg(q), arg(k), arg(v), arg(o), arg(dout),
                               arg(lse), arg(dq), arg(dk), arg(dv), msg))
    return fail(err, errlen, msg);
  return 0;
}

static flashmlir::VarlenArgs varlenArgs(const int32_t *cuQ, const int32_t *cuK,
                                        int64_t batch, int64_t maxQ,
                                        int64_t maxK) {
  flashmlir::VarlenArgs a;
  a.cuSeqlensQ = cuQ;
  a.cuSeqlensK = cuK;
  a.batch = batch;
  a.maxSeqlenQ = maxQ;
  a.maxSeqlenK = maxK;
  return a;
}

static flashmlir::ScoreModArgs scoreMods(const flashmlir_score_mods *m) {
  flashmlir::ScoreModArgs a;
  if (!m)
    return a;
  a.alibiSlopes = m->alibi_slopes;
  a.alibiPerSequence = m->alibi_per_sequence != 0;
  a.sinks = m->sinks;
  a.gradSinks = m->grad_sinks;
  for (int i = 0; i < flashmlir::kMaxCaptures; ++i) {
    a.captures[i] = m->captures[i];
    a.captureSizes[i] = m->capture_sizes[i];
  }
  a.rotaryCos = m->rotary_cos;
  a.rotarySin = m->rotary_sin;
  a.rotaryPositions = m->rotary_positions;
  return a;
}

int flashmlir_cpu_forward_ex(flashmlir_cpu_kernels *kernels,
                             const flashmlir_tensor *q,
                             const flashmlir_tensor *k,
                             const flashmlir_tensor *v, flashmlir_tensor *o,
                             flashmlir_tensor *lse,
                             const flashmlir_varlen *varlen,
                             const flashmlir_score_mods *mods, char *err,
                             size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !lse ||
      (varlen && (!varlen->cu_seqlens_q || !varlen->cu_seqlens_k)))
    return fail(err, errlen, "flashmlir_cpu_forward_ex: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen, std::string("flashmlir_cpu_forward_ex") + kDeadHandle);
  std::string msg;
  bool ok = varlen ? kernels->impl->varlenForward(
                         arg(q), arg(k), arg(v), arg(o), arg(lse),
                         varlenArgs(varlen->cu_seqlens_q, varlen->cu_seqlens_k,
                                    varlen->batch, varlen->max_seqlen_q,
                                    varlen->max_seqlen_k),
                         scoreMods(mods), msg)
                   : kernels->impl->forward(arg(q), arg(k), arg(v), arg(o),
                                            arg(lse), scoreMods(mods), msg);
  return ok ? 0 : fail(err, errlen, msg);
}

int flashmlir_cpu_backward_ex(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v,
    const flashmlir_tensor *o, const flashmlir_tensor *dout,
    const flashmlir_tensor *lse, flashmlir_tensor *dq, flashmlir_tensor *dk,
    flashmlir_tensor *dv, const flashmlir_varlen *varlen,
    const flashmlir_score_mods *mods, char *err, size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !dout || !lse || !dq || !dk || !dv ||
      (varlen && (!varlen->cu_seqlens_q || !varlen->cu_seqlens_k)))
    return fail(err, errlen, "flashmlir_cpu_backward_ex: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen, std::string("flashmlir_cpu_backward_ex") + kDeadHandle);
  std::string msg;
  bool ok =
      varlen ? kernels->impl->varlenBackward(
                   arg(q), arg(k), arg(v), arg(o), arg(dout), arg(lse), arg(dq),
                   arg(dk), arg(dv),
                   varlenArgs(varlen->cu_seqlens_q, varlen->cu_seqlens_k,
                              varlen->batch, varlen->max_seqlen_q,
                              varlen->max_seqlen_k),
                   scoreMods(mods), msg)
             : kernels->impl->backward(arg(q), arg(k), arg(v), arg(o),
                                       arg(dout), arg(lse), arg(dq), arg(dk),
                                       arg(dv), scoreMods(mods), msg);
  return ok ? 0 : fail(err, errlen, msg);
}

int flashmlir_cpu_forward_varlen(flashmlir_cpu_kernels *kernels,
                                 const flashmlir_tensor *q,
                                 const flashmlir_tensor *k,
                                 const flashmlir_tensor *v, flashmlir_tensor *o,
                                 flashmlir_tensor *lse, const int32_t *cuQ,
                                 const int32_t *cuK, int64_t batch,
                                 int64_t maxQ, int64_t maxK, char *err,
                                 size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !lse || !cuQ || !cuK)
    return fail(err, errlen, "flashmlir_cpu_forward_varlen: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen, std::string("flashmlir_cpu_forward_varlen") + kDeadHandle);
  std::string msg;
  if (!kernels->impl->varlenForward(arg(q), arg(k), arg(v), arg(o), arg(lse),
                                    varlenArgs(cuQ, cuK, batch, maxQ, maxK),
                                    msg))
    return fail(err, errlen, msg);
  return 0;
}

int flashmlir_cpu_backward_varlen(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v,
    const flashmlir_tensor *o, const flashmlir_tensor *dout,
    const flashmlir_tensor *lse, flashmlir_tensor *dq, flashmlir_tensor *dk,
    flashmlir_tensor *dv, const int32_t *cuQ, const int32_t *cuK,
    int64_t batch, int64_t maxQ, int64_t maxK, char *err, size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !dout || !lse || !dq || !dk || !dv ||
      !cuQ || !cuK)
    return fail(err, errlen, "flashmlir_cpu_backward_varlen: null argument");
  flashmlir::HandleCall call(registry(), kernels);
  if (!call.ok())
    return fail(err, errlen, std::string("flashmlir_cpu_backward_varlen") + kDeadHandle);
  std::string msg;
  if (!kernels->impl->varlenBackward(arg(q), arg(k), arg(v), arg(o), arg(dout),
                                     arg(lse), arg(dq), arg(dk), arg(dv),
                                     varlenArgs(cuQ, cuK, batch, maxQ, maxK),
                                     msg))
    return fail(err, errlen, msg);
  return 0;
}

int64_t flashmlir_cpu_peak_bytes(void) {
  return flashmlir::CpuKernels::peakBytes();
}
void flashmlir_cpu_reset_peak(void) { flashmlir::CpuKernels::resetPeak(); }

int flashmlir_compile_bundle(const char *outDir, const char *dtypes,
                             const char *headDims, int64_t headDimV,
                             int masked, int softcap, const char *targets,
                             char *err, size_t errlen) {
  return flashmlir_compile_bundle_with_options(outDir, dtypes, headDims,
                                               headDimV, masked, softcap,
                                               targets, nullptr, err, errlen);
}

int flashmlir_compile_bundle_with_options(
    const char *outDir, const char *dtypes, const char *headDims,
    int64_t headDimV, int masked, int softcap, const char *targets,
    const flashmlir_bundle_options *bundleOptions, char *err, size_t errlen) {
  flashmlir_bundle_options defaults = {};
  const flashmlir_bundle_options &bo = bundleOptions ? *bundleOptions : defaults;
  if (bo.cubin && (!bo.ptxas || !*bo.ptxas))
    return fail(err, errlen,
                "flashmlir_compile_bundle: cubin needs a ptxas path (the "
                "cubins are ptxas output)");
  if (!outDir || !dtypes || !headDims || !targets)
    return fail(err, errlen, "flashmlir_compile_bundle: null argument");
  namespace lim = flashmlir::limits;
  for (const std::string &msg :
       {lim::checkRange("masked (0, 1 or 2 = both)", masked, 0, 2),
        lim::checkRange("softcap (0, 1 or 2 = both)", softcap, 0, 2),
        lim::checkRange("head_dim_v (0: the head dim)", headDimV, 0,
                        lim::kMaxHeadDim),
        lim::checkRange("options.deterministic", bo.deterministic, 0, 1),
        lim::checkRange("options.cubin", bo.cubin, 0, 1),
        lim::checkRange("options.alibi", bo.alibi, 0, 1),
        lim::checkRange("options.rotary", bo.rotary, 0, 1)})
    if (!msg.empty())
      return fail(err, errlen, "flashmlir_compile_bundle: " + msg);
  auto split = [](llvm::StringRef s) {
    llvm::SmallVector<llvm::StringRef> parts;
    s.split(parts, ',', -1, /*KeepEmpty=*/false);
    return parts;
  };
  auto choices = [](int v) {
    return v == 2 ? std::vector<bool>{false, true} : std::vector<bool>{v != 0};
  };
  std::vector<flashmlir::BundleConfig> configs;
  for (llvm::StringRef t : split(targets))
    for (llvm::StringRef dt : split(dtypes))
      for (llvm::StringRef d : split(headDims)) {
        int64_t dim;
        if (d.trim().getAsInteger(10, dim))
          return fail(err, errlen, "bad head dim '" + d.str() + "'");
        for (bool m : choices(masked))
          for (bool s : choices(softcap))
            configs.push_back({dt.trim().str(), dim, headDimV ? headDimV : dim,
                               m, s, t.trim().str()});
  for (flashmlir::BundleConfig &c : configs) {
    c.deterministic = bo.deterministic != 0;
    c.alibi = bo.alibi != 0;
    c.rotary = bo.rotary != 0;
  }
      }
  if (configs.empty())
    return fail(err, errlen, "no configuration to compile");
  flashmlir::BundleOptions options;
  options.outDir = outDir;
  if (bo.ptxas)
    options.ptxas = bo.ptxas;
  options.cubin = bo.cubin != 0;
  std::string msg;
  if (!flashmlir::writeBundle(configs, options, msg))
    return fail(err, errlen, msg);
  return 0;
}

const char *flashmlir_version(void) { return "FlashMLIR 0.1"; }
