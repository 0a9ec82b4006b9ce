//===- Bundle.cpp - kernel bundles: PTX files and a manifest ----*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Bundle/Bundle.h"

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"
#include "flashmlir/InitAll.h"
#include "flashmlir/Pipelines/Pipelines.h"
#include "flashmlir/runtime/Limits.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

using namespace mlir;
using namespace flashmlir;

static const char *const kKinds[] = {"fwd",      "bwd_pre",  "bwd_main",
                                     "bwd_post", "fwd_split", "fwd_combine"};

std::vector<std::string> flashmlir::defaultBundleTargets() {
  return {"sm_75", "sm_80", "sm_90a"};
}

std::vector<BundleConfig>
flashmlir::defaultBundleConfigs(const std::vector<std::string> &targets) {
  std::vector<BundleConfig> out;
  for (const std::string &t : targets)
    for (const char *dt : {"f16", "bf16", "f32"}) {
      auto add = [&](int64_t d, int64_t dv, bool masked, bool softcap) {
        out.push_back({dt, d, dv, masked, softcap, t});
      };
      const bool tc = std::string(dt) != "f32";
      // What users meet on tensor cores (f16 / bf16): the head dims of the
      // models people run, each masked or not, with softcap or not, and
      // MLA's 192 / 128; the small head dims and Dv != D of the tests.
      // f32 stays SIMT: its tests' head dims and one of each feature.
      std::vector<int64_t> dims =
          tc ? std::vector<int64_t>{8,  16,  32,  40,  48,  64,  80,
                                    96, 112, 128, 160, 192, 224, 256}
             : std::vector<int64_t>{8, 16, 32, 64, 96, 128, 256};
      for (int64_t d : dims)
        for (bool masked : {false, true})
          for (bool softcap : {false, true})
            if (tc ? d >= 32 || !softcap : !softcap)
              add(d, d, masked, softcap);
      for (bool masked : {false, true}) {
        add(64, 32, masked, false); // Dv != D
        if (tc) {
          add(192, 128, masked, false); // MLA
          add(192, 128, masked, true);
          // Variable-length batches (forward and backward): the head dims
          // of the models that serve padded batches.
          for (int64_t d : {64, 128}) {
            add(d, d, masked, false);
            out.back().varlen = true;
          }
          // ALiBi: the head dims of the ALiBi models (BLOOM, MPT,
          // Baichuan).
          for (int64_t d : {64, 128}) {
            add(d, d, masked, false);
            out.back().alibi = true;
          }
        } else {
          add(64, 64, masked, true); // softcap
          add(128, 128, masked, true);
          add(64, 64, masked, false); // ALiBi
          out.back().alibi = true;
        }
      }
    }
  return out;
}

static std::string configName(const BundleConfig &c, StringRef kind) {
  return (kind + "_" + c.dtype + "_d" + std::to_string(c.headDim) + "_dv" +
          std::to_string(c.headDimV) + (c.masked ? "_masked" : "") +
          (c.softcap ? "_softcap" : "") + (c.alibi ? "_alibi" : "") + (c.rotary ? "_rope" : "") +
          (c.varlen ? "_varlen" : "") + "_" +
          c.target)
      .str();
}

static attn::GpuKernelKind kindOf(StringRef kind) {
  if (kind == "fwd")
    return attn::GpuKernelKind::Fwd;
  if (kind == "bwd_pre")
    return attn::GpuKernelKind::BwdPre;
  if (kind == "bwd_main")
    return attn::GpuKernelKind::BwdMain;
  if (kind == "fwd_split")
    return attn::GpuKernelKind::FwdSplit;
  if (kind == "fwd_combine")
    return attn::GpuKernelKind::FwdCombine;
  return attn::GpuKernelKind::BwdPost;
}

static Type elementType(MLIRContext &ctx, StringRef dtype) {
  Builder b(&ctx);
  if (dtype == "f16")
    return b.getF16Type();
  if (dtype == "bf16")
    return b.getBF16Type();
  if (dtype == "f32")
    return b.getF32Type();
  return {};
}

static attn::GpuKernelSpec specOf(MLIRContext &ctx, const BundleConfig &c) {
  attn::GpuKernelSpec spec;
  spec.elementType = elementType(ctx, c.dtype);
  spec.headDim = c.headDim;
  spec.headDimV = c.headDimV;
  spec.masked = c.masked;
  spec.softcap = c.softcap;
  spec.tensorCores = c.tensorCores;
  spec.mmaAsyncCopy = c.mmaAsyncCopy;
  spec.mmaWarps = c.mmaWarps;
  spec.mmaWarpRows = c.mmaWarpRows;
  spec.mmaBlockN = c.mmaBlockN;
  spec.deterministic = c.deterministic;
  spec.fastTanh = c.fastTanh;
  spec.varlen = c.varlen;
  spec.alibi = c.alibi;
  spec.rotary = c.rotary;
  int sm = 0;
  if (llvm::StringRef(c.target).starts_with("sm_"))
    llvm::StringRef(c.target).substr(3, 2).getAsInteger(10, sm);
  spec.smVersion = sm;
  spec.wgmma = c.wgmma && sm == 90 && StringRef(c.target).ends_with("a");
  return spec;
}

static std::string validate(const BundleConfig &c) {
  if (c.dtype != "f16" && c.dtype != "bf16" && c.dtype != "f32")
    return "unsupported dtype '" + c.dtype + "' (expected f16, bf16 or f32)";
  for (int64_t d : {c.headDim, c.headDimV})
    if (d < 8 || d > 256 || d % 8 != 0)
      return "head dim " + std::to_string(d) +
             " is not a multiple of 8 in [8, 256]";
  // The kernels need sm_80 and are emitted as PTX ISA 8.0, which targets up
  // to sm_90a: the targets of flashmlir/runtime/Limits.h.
  if (!flashmlir::limits::findGpuTarget(c.target))
    return "target '" + c.target +
           "' is not supported; FlashMLIR's GPU kernels are compiled for " +
           flashmlir::limits::gpuTargetList();
  return "";
}

/// Compiles with a private context so that bundles can be built from
/// several threads.
bool flashmlir::compileKernelPtx(const BundleConfig &config,
                                 const std::string &kind, std::string &ptx,
                                 std::string &error) {
  if (std::string msg = validate(config); !msg.empty()) {
    error = msg;
    return false;
  }
  DialectRegistry registry;
  registerAllDialects(registry);
  MLIRContext ctx(registry, MLIRContext::Threading::DISABLED);
  ctx.loadAllAvailableDialects();
  std::string diagnostics;
  bool reportedError = false;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    llvm::raw_string_ostream os(diagnostics);
    os << d << "\n";
    reportedError |= d.getSeverity() == DiagnosticSeverity::Error;
    return success();
  });

  // The target's shared memory bounds every kernel's.
  attn::GpuKernelSpec spec = specOf(ctx, config);
  attn::GpuKernelInfo info = attn::getGpuKernelInfo(kindOf(kind), spec);
  const flashmlir::limits::GpuTarget *target = flashmlir::limits::findGpuTarget(config.target);
  if (info.dynamicSharedMemory > target->maxDynamicSmem) {
    error = configName(config, kind) + ": kernel " + info.entry + " needs " +
            std::to_string(info.dynamicSharedMemory) +
            " bytes of dynamic shared memory; " + config.target +
            " allows at most " + std::to_string(target->maxDynamicSmem);
    return false;
  }

  OpBuilder b(&ctx);
  Location loc = b.getUnknownLoc();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                     b.getUnitAttr());
  b.setInsertionPointToEnd(module->getBody());
  auto gm = gpu::GPUModuleOp::create(b, loc, "kernels");
  attn::buildGpuKernel(b, gm, kindOf(kind), spec);

  PassManager pm(&ctx);
  GpuPipelineOptions options;
  options.chip = config.target;
  if (std::string msg = validateGpuPipelineOptions(options); !msg.empty()) {
    error = configName(config, kind) + ": " + msg;
    return false;
  }
  buildGpuModulesToBinary(pm, options);
  // An error counts even when the pass that reported it did not fail.
  if (failed(pm.run(*module)) || reportedError) {
    error = "compiling " + configName(config, kind) + " failed:\n" + diagnostics;
    return false;
  }
  auto binary = module->lookupSymbol<gpu::BinaryOp>("kernels");
  if (!binary || binary.getObjects().empty()) {
    error = "no gpu.binary produced for " + configName(config, kind);
    return false;
  }
  auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
  ptx = object.getObject().getValue().str();
  return true;
}

std::vector<MmaVariant> flashmlir::autotuneCandidates(const MmaVariant &model) {
  auto same = [](const MmaVariant &a, const MmaVariant &b) {
    return a.warps == b.warps && a.warpRows == b.warpRows &&
           a.blockN == b.blockN && a.asyncCopy == b.asyncCopy;
  };
  std::vector<MmaVariant> out;
  MmaVariant other = model;
  other.asyncCopy = !model.asyncCopy;
  for (int64_t blockN : {64, 32})
    for (int64_t warps : {4, 8})
      out.push_back({warps, 32, blockN, true});
  out.push_back(other);
  llvm::erase_if(out, [&](const MmaVariant &v) { return same(v, model); });
  return out;
}

namespace {
/// One configuration's kernels in the bundle: all four kinds, or (an
/// autotune candidate) only the forward kernel, named with a suffix.
struct BundleJob {
  BundleConfig config;
  std::string group;   ///< candidate group ("" = none)
  bool isDefault = false;
  std::string suffix;  ///< appended to the kernel name
  MmaVariant variant;  ///< the resolved tile setting (group members)
  bool split = false;  ///< emits the split-KV forward
  /// Why the backward kernels (or all kernels) are left out ("": they are
  /// emitted).
  std::string noBackward, noKernels;
  bool emits(StringRef kind) const {
    if (!noKernels.empty())
      return false;
    if (kind == "fwd_split" || kind == "fwd_combine")
      return split && (group.empty() || isDefault);
    if (config.varlen) // forward and backward; no deterministic backward
      return (kind == "fwd" || (kind.starts_with("bwd") &&
                                !config.deterministic && noBackward.empty())) &&
             (group.empty() || isDefault);
    if (kind.starts_with("bwd") && !noBackward.empty())
      return false;
    return group.empty() || isDefault || kind == "fwd";
  }
};
} // namespace

/// The tile setting the forward kernel of `c` is built with.
static MmaVariant resolvedVariant(MLIRContext &ctx, const BundleConfig &c) {
  attn::GpuKernelInfo info = attn::getGpuKernelInfo(
      attn::GpuKernelKind::Fwd, specOf(ctx, c));
  MmaVariant v;
  v.warps = info.block[0] / 32;
  v.warpRows = info.blockM / v.warps;
  v.blockN = info.blockN;
  v.asyncCopy = c.mmaAsyncCopy;
  return v;
}

/// The kernels of `configs`: with autotune, each tensor-core forward
/// configuration is a candidate group (its default first, then the
/// candidates).
static std::vector<BundleJob> bundleJobs(const std::vector<BundleConfig> &configs,
                                         bool autotune) {
  std::vector<BundleJob> jobs;
  MLIRContext ctx;
  ctx.loadDialect<gpu::GPUDialect>();
  for (const BundleConfig &c : configs) {
    BundleJob job;
    job.config = c;
    // Every target: the same mma.sync kernels, but an sm_80 cubin does not
    // run on sm_90 (the driver would JIT the PTX at the first decode step).
    job.split = c.splitKv && attn::hasSplitForward(specOf(ctx, c));
    // Kernels past the target's shared memory (sm_75's 64 KB): a
    // configuration without its backward (or without any kernel), noted,
    // rather than no bundle.
    const flashmlir::limits::GpuTarget *target =
        flashmlir::limits::findGpuTarget(c.target);
    auto tooLarge = [&](attn::GpuKernelKind kind, StringRef what,
                        std::string &reason) {
      attn::GpuKernelInfo info = attn::getGpuKernelInfo(kind, specOf(ctx, c));
      if (!target || info.dynamicSharedMemory <= target->maxDynamicSmem ||
          !reason.empty())
        return;
      reason = configName(c, what) + ": no " + what.str() + " kernels: " +
               info.entry + " needs " +
               std::to_string(info.dynamicSharedMemory) +
               " bytes of shared memory, " + c.target + " allows " +
               std::to_string(target->maxDynamicSmem);
    };
    // RoPE where the kernels do not rotate (SIMT, deterministic dQ, varlen).
    if (std::string why = attn::rotaryUnsupported(attn::GpuKernelKind::Fwd,
                                                  specOf(ctx, c));
        !why.empty())
      job.noKernels = configName(c, "fwd") + ": no kernels: " + why;
    else if (std::string why = attn::rotaryUnsupported(
                 attn::GpuKernelKind::BwdPost, specOf(ctx, c));
             !why.empty())
      job.noBackward = configName(c, "bwd") + ": no bwd kernels: " + why;
    tooLarge(attn::GpuKernelKind::Fwd, "fwd", job.noKernels);
    for (attn::GpuKernelKind kind :
         {attn::GpuKernelKind::BwdPre, attn::GpuKernelKind::BwdMain,
          attn::GpuKernelKind::BwdPost})
      tooLarge(kind, "bwd", job.noBackward);
    if (!autotune || !attn::usesTensorCores(attn::GpuKernelKind::Fwd,
                                            specOf(ctx, c))) {
      jobs.push_back(job);
      continue;
    }
    job.group = configName(c, "fwd");
    job.isDefault = true;
    job.variant = resolvedVariant(ctx, c);
    jobs.push_back(job);
    // The Hopper forward has one knob, its warpgroups (mma_warps 4 or 8);
    // the mma.sync candidates would only repeat its kernel.
    std::vector<MmaVariant> candidates =
        attn::usesWgmma(attn::GpuKernelKind::Fwd, specOf(ctx, c))
            ? std::vector<MmaVariant>{{job.variant.warps == 4 ? 8 : 4,
                                       16, job.variant.blockN, true}}
            : autotuneCandidates(job.variant);
    for (const MmaVariant &v : candidates) {
      BundleJob cand = job;
      cand.isDefault = false;
      cand.variant = v;
      cand.config.mmaWarps = v.warps;
      cand.config.mmaWarpRows = v.warpRows;
      cand.config.mmaBlockN = v.blockN;
      cand.config.mmaAsyncCopy = v.asyncCopy;
      cand.suffix = "_w" + std::to_string(v.warps) + "r" +
                    std::to_string(v.warpRows) + "n" +
                    std::to_string(v.blockN) + (v.asyncCopy ? "" : "_sync");
      jobs.push_back(cand);
    }
  }
  return jobs;
}

/// Runs `ptxas -arch=<target> -v` on `path` and parses its report.
static bool runPtxas(const std::string &ptxas, const std::string &path,
                     const std::string &target, llvm::json::Object &report,
                     std::string &error, const std::string &cubin = "") {
  SmallString<128> log;
  llvm::sys::fs::createTemporaryFile("ptxas", "log", log);
  std::string arch = "-arch=" + target;
  StringRef outPath = cubin.empty() ? StringRef("/dev/null") : StringRef(cubin);
  SmallVector<StringRef> argv = {ptxas, arch, "-v", path, "-o", outPath};
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  std::string execErr;
  int rc = llvm::sys::ExecuteAndWait(ptxas, argv, std::nullopt, redirects, 0,
                                     0, &execErr);
  auto text = llvm::MemoryBuffer::getFile(log);
  llvm::sys::fs::remove(log);
  std::string out = text ? (*text)->getBuffer().str() : "";
  if (rc != 0) {
    error = "ptxas " + arch + " failed on " + path + ": " + execErr + "\n" + out;
    return false;
  }
  llvm::Regex regs("Used ([0-9]+) registers");
  llvm::Regex spills("([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads");
  llvm::Regex stack("([0-9]+) bytes stack frame");
  SmallVector<StringRef> m;
  int64_t v = 0;
  if (regs.match(out, &m) && !m[1].getAsInteger(10, v))
    report["registers"] = v;
  if (spills.match(out, &m)) {
    int64_t st = 0, ld = 0;
    (void)m[1].getAsInteger(10, st);
    (void)m[2].getAsInteger(10, ld);
    report["spill_store_bytes"] = st;
    report["spill_load_bytes"] = ld;
  }
  if (stack.match(out, &m) && !m[1].getAsInteger(10, v))
    report["stack_bytes"] = v;
  return true;
}

bool flashmlir::writeBundle(const std::vector<BundleConfig> &configs,
                            const BundleOptions &options, std::string &error,
                            int64_t *kernelsWritten,
                            std::vector<std::string> *notes) {
  if (std::error_code ec = llvm::sys::fs::create_directories(options.outDir)) {
    error = "cannot create " + options.outDir + ": " + ec.message();
    return false;
  }
  llvm::json::Array kernels;
  // Argument lists, shared: a bundle's kernels have a few dozen distinct
  // ones (most of a version-1 manifest, and of its parse time).
  llvm::json::Array argLists;
  std::map<std::string, int64_t> argListIndex;
  std::map<std::string, int64_t> defaultSpills; // by candidate group
  for (const BundleConfig &c : configs)
    if (std::string msg = validate(c); !msg.empty()) {
      error = msg;
      return false;
    }
  std::vector<BundleJob> jobs = bundleJobs(configs, options.autotune);
  if (notes)
    for (const BundleJob &j : jobs)
      if (j.group.empty() || j.isDefault) {
        if (!j.noKernels.empty())
          notes->push_back(j.noKernels);
        else if (!j.noBackward.empty())
          notes->push_back(j.noBackward);
      }
  if (options.autotune && llvm::none_of(jobs, [](const BundleJob &j) {
        return !j.group.empty();
      })) {
    error = "--autotune: no configuration has a tensor-core forward kernel "
            "to tune (f16 or bf16)";
    return false;
  }
  // Every kernel is compiled (and assembled by ptxas) on its own thread
  // with a private context; the manifest is then written in job order.
  struct Task {
    const BundleJob *job;
    const char *kind;
    std::string name, path, error;
    llvm::json::Object resources;
    bool ok = false;
    std::string cubinPath() const {
      return path.substr(0, path.size() - 4) + ".cubin";
    }
  };
  std::vector<Task> tasks;
  for (const BundleJob &job : jobs)
    for (const char *kind : kKinds)
      if (job.emits(kind)) {
        Task t;
        t.job = &job;
        t.kind = kind;
        t.name = configName(job.config, kind) + job.suffix;
        SmallString<256> path(options.outDir);
        llvm::sys::path::append(path, t.name + ".ptx");
        t.path = path.str().str();
        tasks.push_back(std::move(t));
      }
  {
    llvm::DefaultThreadPool pool(llvm::hardware_concurrency());
    for (Task &t : tasks)
      pool.async([&options, &t] {
        std::string ptx;
        if (!compileKernelPtx(t.job->config, t.kind, ptx, t.error))
          return;
        std::error_code ec;
        {
          llvm::raw_fd_ostream os(t.path, ec);
          if (ec) {
            t.error = "cannot write " + t.path + ": " + ec.message();
            return;
          }
          os << ptx;
        }
        if (!options.ptxas.empty() &&
            !runPtxas(options.ptxas, t.path, t.job->config.target, t.resources,
                      t.error, options.cubin ? t.cubinPath() : ""))
          return;
        t.ok = true;
      });
    pool.wait();
  }
  for (Task &t : tasks) {
    if (!t.ok) {
      error = t.error;
      return false;
    }
    const BundleJob &job = *t.job;
    const BundleConfig &c = job.config;
    const char *kind = t.kind;
    const std::string &name = t.name;
    StringRef path = t.path;
    {
      MLIRContext ctx;
      ctx.loadDialect<gpu::GPUDialect>();
      attn::GpuKernelInfo info =
          attn::getGpuKernelInfo(kindOf(kind), specOf(ctx, c));
      llvm::json::Array args, grid;
      std::string argKey;
      for (const attn::GpuKernelArg &a : info.args) {
        args.push_back(llvm::json::Object{{"name", a.name}, {"kind", a.kind}});
        argKey += a.name + ":" + a.kind + ",";
      }
      auto [argIt, newList] = argListIndex.try_emplace(
          argKey, static_cast<int64_t>(argLists.size()));
      if (newList)
        argLists.push_back(std::move(args));
      for (const attn::GpuGridDim &g : info.grid)
        grid.push_back(llvm::json::Object{{"dim", g.dim}, {"div", g.div}});
      llvm::json::Object resources = std::move(t.resources);
      kernels.push_back(llvm::json::Object{
          {"name", name},
          {"file", name + ".ptx"},
          {"entry", info.entry},
          {"kind", kind},
          {"config", llvm::json::Object{{"dtype", c.dtype},
                                        {"head_dim", c.headDim},
                                        {"head_dim_v", c.headDimV},
                                        {"masked", c.masked},
                                        {"softcap", c.softcap},
                                        {"target", c.target}}},
          {"block", llvm::json::Array{info.block[0], info.block[1],
                                      info.block[2]}},
          {"dynamic_smem", info.dynamicSharedMemory},
          {"block_m", info.blockM},
          {"block_n", info.blockN},
          {"grid", std::move(grid)},
          {"args", argIt->second},
          {"resources", std::move(resources)},
      });
      if (options.cubin && !options.ptxas.empty())
        kernels.back().getAsObject()->try_emplace("cubin", name + ".cubin");
      // Deterministic backward: recorded only when on, on every kernel of
      // the configuration (bwd_pre / bwd_main / bwd_post all differ).
      if (c.deterministic)
        kernels.back().getAsObject()->getObject("config")->try_emplace(
            "deterministic", true);
      if (c.varlen)
        kernels.back().getAsObject()->getObject("config")->try_emplace(
            "varlen", true);
      if (c.alibi)
        kernels.back().getAsObject()->getObject("config")->try_emplace(
            "alibi", true);
      if (c.rotary)
        kernels.back().getAsObject()->getObject("config")->try_emplace(
            "rotary", true);
      // Tensor-core variant: recorded only when on (default manifests unchanged).
      if (attn::usesTensorCores(kindOf(kind), specOf(ctx, c))) {
        llvm::json::Object *config =
            kernels.back().getAsObject()->getObject("config");
        config->try_emplace("tensor_cores", true);
        config->try_emplace("mma_async_copy", c.mmaAsyncCopy);
        if (c.mmaWarps)
          config->try_emplace("mma_warps", c.mmaWarps);
        if (c.mmaWarpRows)
          config->try_emplace("mma_warp_rows", c.mmaWarpRows);
        if (c.mmaBlockN)
          config->try_emplace("mma_block_n", c.mmaBlockN);
        if (attn::usesWgmma(kindOf(kind), specOf(ctx, c)))
          config->try_emplace("wgmma", true);
      }
      if (!job.group.empty() && StringRef(kind) == "fwd") {
        // Autotune candidate: its group, resolved knobs and role. With
        // ptxas, a candidate that spills more than its default is left out.
        const llvm::json::Object *res =
            kernels.back().getAsObject()->getObject("resources");
        int64_t spill = res->getInteger("spill_store_bytes").value_or(0) +
                        res->getInteger("spill_load_bytes").value_or(0);
        if (job.isDefault) {
          defaultSpills[job.group] = spill;
        } else if (spill > defaultSpills[job.group]) {
          kernels.pop_back();
          llvm::sys::fs::remove(path);
          if (options.cubin)
            llvm::sys::fs::remove(t.cubinPath());
          llvm::errs() << "fa-compile: autotune: left out " << name
                       << " (spills " << spill << " bytes; the default "
                       << defaultSpills[job.group] << ")\n";
          continue;
        }
        llvm::json::Object *k = kernels.back().getAsObject();
        k->try_emplace("candidate_group", job.group);
        k->try_emplace("variant",
                       llvm::json::Object{{"mma_warps", job.variant.warps},
                                          {"mma_warp_rows", job.variant.warpRows},
                                          {"mma_block_n", job.variant.blockN},
                                          {"mma_async_copy",
                                           job.variant.asyncCopy}});
        k->try_emplace("default", job.isDefault);
      }
      if (options.verbose)
        llvm::errs() << "fa-compile: " << name << "\n";
    }
  }
  if (kernelsWritten)
    *kernelsWritten = static_cast<int64_t>(kernels.size());
  llvm::json::Object manifest{{"format", "flashmlir-bundle"},
                              {"version", 2},
                              {"arg_lists", std::move(argLists)},
                              {"kernels", std::move(kernels)}};
  SmallString<256> path(options.outDir);
  llvm::sys::path::append(path, "manifest.json");
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    error = "cannot write " + path.str().str() + ": " + ec.message();
    return false;
  }
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest))) << "\n";
  return true;
}
