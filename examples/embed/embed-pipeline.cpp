//===- embed-pipeline.cpp - FlashMLIR's pipeline from C++ -----------------===//
//
// 1. Parses a module with attn.attention on memrefs, runs attn-cpu-pipeline
//    (built with flashmlir::buildAttnCpuPipeline, options from C++) and
//    checks that only the LLVM dialect is left.
// 2. Compiles attention for the host through the CPU runner (the same
//    pipeline, then the JIT) and checks o and lse against the float64
//    reference (GQA, causal, Nq != Nk).
// Prints one line per check and "N passed, M failed"; exit 1 on failure.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/CPU/CpuRunner.h"
#include "flashmlir/InitAll.h"
#include "flashmlir/Pipelines/Pipelines.h"
#include "flashmlir/runtime/Reference.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

static int passed = 0, failed = 0;
static void check(bool ok, const std::string &what) {
  (ok ? passed : failed)++;
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
}

static const char *kModule = R"mlir(
func.func @attn(%q: memref<1x4x16x32xf32>, %k: memref<1x2x24x32xf32>,
                %v: memref<1x2x24x32xf32>, %o: memref<1x4x16x32xf32>,
                %lse: memref<1x4x16xf32>) {
  attn.attention ins(%q, %k, %v : memref<1x4x16x32xf32>, memref<1x2x24x32xf32>, memref<1x2x24x32xf32>)
                 outs(%o : memref<1x4x16x32xf32>) lse(%lse : memref<1x4x16xf32>) {causal}
  return
}
)mlir";

int main() {
  // 1. The pipeline on a module, from C++.
  {
    mlir::DialectRegistry registry;
    flashmlir::registerAllDialects(registry);
    mlir::MLIRContext context(registry);
    auto module = mlir::parseSourceString<mlir::ModuleOp>(kModule, &context);
    check(bool(module), "parse an attn.attention module");
    if (module) {
      mlir::PassManager pm(&context);
      flashmlir::CpuPipelineOptions options;
      options.blockM = 16;
      options.blockN = 8;
      flashmlir::buildAttnCpuPipeline(pm, options);
      check(mlir::succeeded(pm.run(*module)), "attn-cpu-pipeline runs");
      bool onlyLLVM = true;
      module->walk([&](mlir::Operation *op) {
        llvm::StringRef ns = op->getDialect() ? op->getDialect()->getNamespace() : "";
        if (!mlir::isa<mlir::ModuleOp>(op) && ns != "llvm")
          onlyLLVM = false;
      });
      check(onlyLLVM, "only the LLVM dialect is left");
    }
  }

  // 2. Compile and run through the CPU runner; compare with the reference.
  flashmlir::rt::AttnConfig ref;
  ref.B = 2, ref.Hq = 4, ref.Hkv = 2, ref.Nq = 19, ref.Nk = 33, ref.D = 32,
  ref.Dv = 32, ref.scale = 1.0 / std::sqrt(32.0), ref.causal = true;
  flashmlir::KernelConfig cfg;
  cfg.dtype = flashmlir::rt::DType::F32;
  cfg.D = cfg.Dv = 32;
  cfg.scale = ref.scale;
  cfg.causal = true;
  std::string err;
  auto kernels = flashmlir::CpuKernels::compile(cfg, err);
  check(bool(kernels), "CpuKernels::compile " + err);
  if (kernels) {
    size_t nq = ref.B * ref.Hq * ref.Nq * ref.D, nk = ref.B * ref.Hkv * ref.Nk * ref.D;
    std::vector<double> q(nq), k(nk), v(nk), o(nq), lse(ref.B * ref.Hq * ref.Nq);
    flashmlir::rt::fillRandom(1, flashmlir::rt::DType::F32, q.data(), nq);
    flashmlir::rt::fillRandom(2, flashmlir::rt::DType::F32, k.data(), nk);
    flashmlir::rt::fillRandom(3, flashmlir::rt::DType::F32, v.data(), nk);
    flashmlir::rt::referenceForward(ref, q.data(), k.data(), v.data(), o.data(), lse.data());
    std::vector<float> qf(q.begin(), q.end()), kf(k.begin(), k.end()),
        vf(v.begin(), v.end()), of(nq), lf(lse.size());
    auto arg = [](float *p, std::vector<int64_t> sizes) {
      flashmlir::TensorArg a;
      a.data = p;
      a.rank = int(sizes.size());
      int64_t stride = 1;
      for (int i = a.rank - 1; i >= 0; --i) {
        a.sizes[i] = sizes[i];
        a.strides[i] = stride;
        stride *= sizes[i];
      }
      return a;
    };
    bool ran = kernels->forward(arg(qf.data(), {ref.B, ref.Hq, ref.Nq, ref.D}),
                                arg(kf.data(), {ref.B, ref.Hkv, ref.Nk, ref.D}),
                                arg(vf.data(), {ref.B, ref.Hkv, ref.Nk, ref.Dv}),
                                arg(of.data(), {ref.B, ref.Hq, ref.Nq, ref.Dv}),
                                arg(lf.data(), {ref.B, ref.Hq, ref.Nq}), err);
    check(ran, "forward runs " + err);
    std::vector<double> od(of.begin(), of.end()), ld(lf.begin(), lf.end());
    double eo = flashmlir::rt::relativeError(od.data(), o.data(), nq);
    double el = flashmlir::rt::relativeError(ld.data(), lse.data(), ld.size());
    char buf[128];
    std::snprintf(buf, sizeof buf, "o and lse match the float64 reference (%.2e, %.2e)", eo, el);
    check(ran && eo < 1e-5 && el < 1e-5, buf);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
