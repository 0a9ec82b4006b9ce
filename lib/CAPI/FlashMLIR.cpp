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

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Registration.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(Attn, attn, mlir::attn::AttnDialect)

void flashmlirRegisterAllPasses(void) { flashmlir::registerAllPasses(); }

void flashmlirRegisterAllDialects(MlirDialectRegistry registry) {
  flashmlir::registerAllDialects(*unwrap(registry));
}

struct flashmlir_cpu_kernels {
  std::unique_ptr<flashmlir::CpuKernels> impl;
};

namespace {
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
  if (!c || !out)
    return fail(err, errlen, "flashmlir_cpu_compile: null argument");
  *out = nullptr;
  flashmlir::KernelConfig k;
  switch (c->dtype) {
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
    return fail(err, errlen, "unsupported dtype " + std::to_string(c->dtype) +
                                 " (expected f32, f16 or bf16)");
  }
  k.D = c->head_dim;
  k.Dv = c->head_dim_v ? c->head_dim_v : c->head_dim;
  if (k.D <= 0 || k.Dv <= 0)
    return fail(err, errlen, "head dims must be positive");
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
  std::string msg;
  std::unique_ptr<flashmlir::CpuKernels> impl =
      flashmlir::CpuKernels::compile(k, msg);
  if (!impl)
    return fail(err, errlen, msg);
  *out = new flashmlir_cpu_kernels{std::move(impl)};
  return 0;
}

void flashmlir_cpu_destroy(flashmlir_cpu_kernels *kernels) { delete kernels; }

int flashmlir_cpu_forward(flashmlir_cpu_kernels *kernels,
                          const flashmlir_tensor *q, const flashmlir_tensor *k,
                          const flashmlir_tensor *v, flashmlir_tensor *o,
                          flashmlir_tensor *lse, char *err, size_t errlen) {
  if (!kernels || !q || !k || !v || !o || !lse)
    return fail(err, errlen, "flashmlir_cpu_forward: null argument");
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
  std::string msg;
  if (!kernels->impl->backward(arg(q), arg(k), arg(v), arg(o), arg(dout),
                               arg(lse), arg(dq), arg(dk), arg(dv), msg))
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
  if (!outDir || !dtypes || !headDims || !targets)
    return fail(err, errlen, "flashmlir_compile_bundle: null argument");
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
      }
  if (configs.empty())
    return fail(err, errlen, "no configuration to compile");
  flashmlir::BundleOptions options;
  options.outDir = outDir;
  std::string msg;
  if (!flashmlir::writeBundle(configs, options, msg))
    return fail(err, errlen, msg);
  return 0;
}

const char *flashmlir_version(void) { return "FlashMLIR 0.1"; }
