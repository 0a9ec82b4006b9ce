//===- CpuRunner.cpp - JIT-compiled attention kernels for the host --------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// One CpuKernels object holds two JIT-compiled kernels, @attn_fwd and
// @attn_bwd, each built as MLIR text from the KernelConfig, lowered by
// buildAttnCpuPipeline (tile vectors of the host's width, parallel loops on
// the thread pool of HostAsyncRuntime.cpp) and compiled by the MLIR
// ExecutionEngine. The forward is compiled by compile(); the backward by
// compileBackward() or on its first use, so forward-only users do not pay
// for it. Compiled kernels are shared process-wide between the CpuKernels of
// one configuration (compileCached).
//
// The kernels allocate their scratch memory through the generic memref
// allocation functions (finalize-memref-to-llvm{use-generic-functions=true});
// this file defines them, counting live and peak bytes, and hands them to the
// JIT together with bit-exact fp16/bf16 conversion helpers for hosts whose
// instruction set lacks them.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/CPU/CpuRunner.h"

#include "HostAsyncRuntime.h"

#include "flashmlir/InitAll.h"
#include "flashmlir/Pipelines/Pipelines.h"
#include "flashmlir/runtime/Limits.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/ExecutionEngine/Orc/Shared/ExecutorSymbolDef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

using namespace flashmlir;

//===----------------------------------------------------------------------===//
// Counting allocator for the kernels' memref.alloc / memref.dealloc
//===----------------------------------------------------------------------===//

namespace {

std::atomic<int64_t> gLiveBytes{0};
std::atomic<int64_t> gPeakBytes{0};
/// Allocations the kernels asked for and did not get (malloc failed or the
/// size overflowed), and the size of the last one. The kernels skip the code
/// that needs such a buffer (attn-guard-allocs); a call during which this
/// count grows reports an error.
std::atomic<uint64_t> gAllocFailures{0};
std::atomic<uint64_t> gLastFailedBytes{0};

void noteAllocFailure(uint64_t size) {
  gLastFailedBytes.store(size);
  gAllocFailures.fetch_add(1);
}

/// Lives in the 16 bytes just before every block handed to a kernel.
struct AllocHeader {
  void *raw;     // what malloc returned
  uint64_t size; // the size the kernel asked for
};
static_assert(sizeof(AllocHeader) == 16, "the header must fill 16 bytes");

void noteAlloc(int64_t size) {
  int64_t live = gLiveBytes.fetch_add(size) + size;
  int64_t peak = gPeakBytes.load();
  while (live > peak && !gPeakBytes.compare_exchange_weak(peak, live)) {
  }
}

void *flashmlirCountingAlignedAlloc(uint64_t alignment, uint64_t size) {
  // At least the header's alignment; a power of two.
  uint64_t align = 16;
  while (align < alignment && align < (uint64_t(1) << 62))
    align <<= 1;
  // Room for the header before the block and for aligning its start.
  uint64_t total = size + align + sizeof(AllocHeader);
  if (total < size || size > uint64_t(INT64_MAX)) { // overflow
    noteAllocFailure(size);
    return nullptr;
  }
  char *raw = static_cast<char *>(std::malloc(total));
  if (!raw) {
    noteAllocFailure(size);
    return nullptr;
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(raw) + sizeof(AllocHeader);
  start = (start + align - 1) & ~static_cast<uintptr_t>(align - 1);
  char *block = reinterpret_cast<char *>(start);
  AllocHeader header{raw, size};
  std::memcpy(block - sizeof(AllocHeader), &header, sizeof(header));
  noteAlloc(static_cast<int64_t>(size));
  return block;
}

void *flashmlirCountingAlloc(uint64_t size) {
  return flashmlirCountingAlignedAlloc(alignof(std::max_align_t), size);
}

void flashmlirCountingFree(void *ptr) {
  if (!ptr)
    return;
  AllocHeader header;
  std::memcpy(&header, static_cast<char *>(ptr) - sizeof(AllocHeader),
              sizeof(header));
  gLiveBytes.fetch_sub(static_cast<int64_t>(header.size));
  std::free(header.raw);
}

//===----------------------------------------------------------------------===//
// fp16 / bf16 conversion helpers
//===----------------------------------------------------------------------===//
//
// LLVM calls these (compiler-rt / libgcc names) when the target has no
// conversion instructions. On x86-64 and AArch64, half and bfloat arguments
// and results travel in the low 16 bits of the first FP register, the same
// register a float uses, so they are written with float in place of the
// 16-bit type and the bits moved explicitly; no FP arithmetic touches them.

#if defined(__x86_64__) || defined(__aarch64__)
#define FLASHMLIR_HAVE_FP16_HELPERS 1

uint16_t low16(float f) { return static_cast<uint16_t>(rt::floatBits(f)); }
float fromLow16(uint16_t h) { return rt::bitsToFloat(h); }

float flashmlirExtendHfSf2(float h) { return rt::halfToFloat(low16(h)); }
double flashmlirExtendHfDf2(float h) { return rt::halfToFloat(low16(h)); }
float flashmlirTruncSfHf2(float f) { return fromLow16(rt::floatToHalf(f)); }
float flashmlirTruncDfHf2(double d) {
  // Round once, directly from double (no double rounding through float).
  return fromLow16(
      rt::floatToHalf(static_cast<float>(rt::roundTo(rt::DType::F16, d))));
}
float flashmlirExtendBfSf2(float b) { return rt::bf16ToFloat(low16(b)); }
float flashmlirTruncSfBf2(float f) { return fromLow16(rt::floatToBF16(f)); }
float flashmlirTruncDfBf2(double d) {
  if (std::isnan(d))
    return fromLow16(rt::floatToBF16(static_cast<float>(d)));
  return fromLow16(
      rt::floatToBF16(static_cast<float>(rt::roundTo(rt::DType::BF16, d))));
}
#endif

// The ARM EABI names take and return the bits in integer registers.
float flashmlirGnuH2F(uint16_t h) { return rt::halfToFloat(h); }
uint16_t flashmlirGnuF2H(float f) { return rt::floatToHalf(f); }

/// The symbols every kernel engine gets in addition to the process's own.
llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  auto add = [&](const char *name, auto *fn) {
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  };
  add("_mlir_memref_to_llvm_alloc", &flashmlirCountingAlloc);
  add("_mlir_memref_to_llvm_aligned_alloc", &flashmlirCountingAlignedAlloc);
  add("_mlir_memref_to_llvm_free", &flashmlirCountingFree);
#ifdef FLASHMLIR_HAVE_FP16_HELPERS
  add("__extendhfsf2", &flashmlirExtendHfSf2);
  add("__extendhfdf2", &flashmlirExtendHfDf2);
  add("__truncsfhf2", &flashmlirTruncSfHf2);
  add("__truncdfhf2", &flashmlirTruncDfHf2);
  add("__extendbfsf2", &flashmlirExtendBfSf2);
  add("__truncsfbf2", &flashmlirTruncSfBf2);
  add("__truncdfbf2", &flashmlirTruncDfBf2);
#endif
  add("__gnu_h2f_ieee", &flashmlirGnuH2F);
  add("__gnu_f2h_ieee", &flashmlirGnuF2H);
  // The async runtime API that attn-cpu-pipeline{parallel=1} calls.
  for (auto [name, fn] : cpu::asyncRuntimeSymbols())
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  return map;
}

//===----------------------------------------------------------------------===//
// Kernel module text
//===----------------------------------------------------------------------===//

/// Which kernel of a configuration: forward or backward, dense or packed
/// (varlen), and with the score modifications' parameters (`mods`) which of
/// them the op uses.
struct KernelKind {
  bool backward = false, varlen = false, mods = false, alibi = false,
       sinks = false;
  /// A small index over all kinds (for the lazily compiled slots).
  int index() const {
    return int(backward) | int(varlen) << 1 | int(alibi) << 2 |
           int(sinks) << 3 | int(mods) << 4;
  }
};
constexpr int kNumKernelKinds = 32;

std::string kernelName(const KernelKind &kind) {
  std::string n = kind.backward ? "attn_bwd" : "attn_fwd";
  if (kind.varlen)
    n += "_varlen";
  if (kind.mods)
    n += std::string("_mods") + (kind.alibi ? "_alibi" : "") +
         (kind.sinks ? "_sinks" : "");
  return n;
}

const char *elemTypeName(rt::DType dt) {
  switch (dt) {
  case rt::DType::F32:
    return "f32";
  case rt::DType::F16:
    return "f16";
  case rt::DType::BF16:
    return "bf16";
  }
  return "f32";
}

/// A double as an MLIR float literal that round-trips: "%.17g", with a
/// decimal point added where printf left it out ("1" -> "1.0",
/// "1e-05" -> "1.0e-05"); the MLIR lexer reads digits without '.' as an
/// integer.
std::string floatLiteral(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  std::string s(buf);
  if (s.find('.') == std::string::npos) {
    size_t e = s.find_first_of("eE");
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

std::string memrefType(int64_t headDim, const char *elem) {
  return "memref<?x?x?x" + std::to_string(headDim) + "x" + elem +
         ", strided<[?, ?, ?, 1], offset: ?>>";
}

const char *kLseType = "memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>";

std::string opAttributes(const KernelConfig &cfg) {
  std::string a = "{scale = " + floatLiteral(cfg.scale) + " : f64";
  if (cfg.causal)
    a += ", causal";
  if (cfg.windowLeft != -1 || cfg.windowRight != -1)
    a += ", window = array<i64: " + std::to_string(cfg.windowLeft) + ", " +
         std::to_string(cfg.windowRight) + ">";
  if (cfg.softcap != 0)
    a += ", softcap = " + floatLiteral(cfg.softcap) + " : f64";
  a += ", block_sizes = array<i64: " + std::to_string(cfg.blockM) + ", " +
       std::to_string(cfg.blockN) + ">}";
  if (cfg.rotaryInterleaved && cfg.rotaryDim > 0)
    a.insert(a.size() - 1, ", rotary_interleaved");
  if (!cfg.scoreMod.empty())
    a += " score_mod {\n" + cfg.scoreMod + "\n    }";
  if (!cfg.maskMod.empty())
    a += " mask_mod {\n" + cfg.maskMod + "\n    }";
  return a;
}

/// The variable-length kernels: packed [T, H, D] operands (rank 3), lse
/// [Hq, Tq], the int32 offsets and the max lengths.
std::string packedType(int64_t headDim, const char *elem) {
  return "memref<?x?x" + std::to_string(headDim) + "x" + elem +
         ", strided<[?, ?, 1], offset: ?>>";
}
const char *kPackedLseType = "memref<?x?xf32, strided<[?, 1], offset: ?>>";
const char *kCuType = "memref<?xi32, strided<[?], offset: ?>>";
/// The score modifications' parameters: ALiBi slopes [batch, Hq] (batch
/// stride 0 for one slope per head), sinks and grad_sinks [Hq].
const char *kSlopesType = "memref<?x?xf32, strided<[?, 1]>>";
const char *kSinksType = "memref<?xf32>";

/// The text of one kernel module: function `kernelName(kind)` on memrefs
/// holding one attn op of `cfg`. A kernel with `kind.mods` also takes the
/// score modifications' parameters: slopes, sinks, grad_sinks and the
/// regions' captured buffers (used where `kind.alibi` / `kind.sinks` / the
/// regions say, ignored otherwise: one calling convention for the
/// variants).
std::string kernelModule(const KernelConfig &cfg, const KernelKind &kind) {
  const char *et = elemTypeName(cfg.dtype);
  const std::string qk = kind.varlen ? packedType(cfg.D, et)
                                     : memrefType(cfg.D, et),
                    vo = kind.varlen ? packedType(cfg.Dv, et)
                                     : memrefType(cfg.Dv, et);
  const std::string lt = kind.varlen ? kPackedLseType : kLseType;
  std::string params, ins, insTypes, varlen, mods, outs;
  if (kind.backward) {
    params = "%q: " + qk + ", %k: " + qk + ", %v: " + vo + ", %o: " + vo +
             ", %do: " + vo + ", %lse: " + lt + ", %dq: " + qk + ", %dk: " +
             qk + ", %dv: " + vo;
    ins = "%q, %k, %v, %o, %do, %lse";
    insTypes = qk + ", " + qk + ", " + vo + ", " + vo + ", " + vo + ", " + lt;
    outs = " outs(%dq, %dk, %dv : " + qk + ", " + qk + ", " + vo + ")";
    if (kind.sinks)
      outs += std::string(" grad_sinks(%gs : ") + kSinksType + ")";
  } else {
    params = "%q: " + qk + ", %k: " + qk + ", %v: " + vo + ", %o: " + vo +
             ", %lse: " + lt;
    ins = "%q, %k, %v";
    insTypes = qk + ", " + qk + ", " + vo;
    outs = " outs(%o : " + vo + ") lse(%lse : " + lt + ")";
  }
  if (kind.varlen) {
    params += std::string(", %cuq: ") + kCuType + ", %cuk: " + kCuType +
              ", %mq: index, %mk: index";
    varlen = std::string(" varlen(%cuq, %cuk, %mq, %mk : ") + kCuType + ", " +
             kCuType + ")";
  }
  if (kind.mods) {
    params += std::string(", %al: ") + kSlopesType + ", %sk: " + kSinksType +
              ", %gs: " + kSinksType;
    for (int i = 0; i < kMaxCaptures; ++i)
      params += ", %cap" + std::to_string(i) + ": " + kSinksType;
    const std::string tableType =
        "memref<?x" + std::to_string(std::max<int64_t>(cfg.rotaryDim / 2, 1)) +
        "xf32>";
    params += ", %rc: " + tableType + ", %rs: " + tableType;
    if (kind.alibi)
      mods += std::string(" alibi_slopes(%al : ") + kSlopesType + ")";
    if (kind.sinks)
      mods += std::string(" sinks(%sk : ") + kSinksType + ")";
    if (cfg.rotaryDim > 0)
      mods += " rotary(%rc, %rs : " + tableType + ", " + tableType + ")";
  }
  std::string s = "module {\n";
  s += "  func.func @" + kernelName(kind) + "(" + params +
       ") attributes {llvm.emit_c_interface} {\n";
  s += std::string("    attn.") +
       (kind.backward ? "attention_backward" : "attention") + " ins(" + ins +
       " : " + insTypes + ")" + varlen + mods + outs + " " +
       opAttributes(cfg) + "\n";
  s += "    return\n  }\n}\n";
  return s;
}

//===----------------------------------------------------------------------===//
// Compilation
//===----------------------------------------------------------------------===//

/// The message of `e`, on one line when it has one.
std::string errorText(llvm::Error e) {
  std::string msg = llvm::toString(std::move(e));
  while (!msg.empty() && msg.back() == '\n')
    msg.pop_back();
  return msg;
}

void initNativeTargetOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

/// The host target machine; FLASHMLIR_JIT_CPU=<cpu> (e.g. x86-64) targets
/// that CPU with its baseline features instead, which exercises the
/// conversion helpers above on hosts that have fp16/bf16 instructions.
llvm::Expected<std::unique_ptr<llvm::TargetMachine>> makeTargetMachine() {
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    return builder.takeError();
  if (const char *cpu = std::getenv("FLASHMLIR_JIT_CPU"); cpu && *cpu) {
    builder->setCPU(cpu);
    builder->getFeatures() = llvm::SubtargetFeatures();
  }
  builder->setCodeGenOptLevel(llvm::CodeGenOptLevel::Default);
  return builder->createTargetMachine();
}

/// f32 lanes of the host's widest vectors: 16 with AVX-512, 8 with AVX, else
/// 4 (SSE, NEON; also under FLASHMLIR_JIT_CPU, which targets a baseline
/// CPU). FLASHMLIR_VECTOR_WIDTH=<n> overrides it (tests).
int64_t hostVectorWidth() {
  if (const char *w = std::getenv("FLASHMLIR_VECTOR_WIDTH"); w && *w) {
    errno = 0;
    char *end = nullptr;
    long long n = std::strtoll(w, &end, 10);
    // Out of range: vectorWidthEnvError() reports it (compile() fails).
    if (errno == 0 && *end == '\0' && limits::checkVectorWidth("", n).empty())
      return n;
  }
  if (const char *cpu = std::getenv("FLASHMLIR_JIT_CPU"); cpu && *cpu)
    return 4;
  llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
  if (features.lookup("avx512f"))
    return 16;
  if (features.lookup("avx"))
    return 8;
  return 4;
}

/// "" when FLASHMLIR_VECTOR_WIDTH is unset or an integer in [1,
/// limits::kMaxVectorWidth], else the message.
std::string vectorWidthEnvError() {
  const char *w = std::getenv("FLASHMLIR_VECTOR_WIDTH");
  if (!w || !*w)
    return "";
  errno = 0;
  char *end = nullptr;
  long long n = std::strtoll(w, &end, 10);
  if (errno == 0 && *end == '\0' && limits::checkVectorWidth("", n).empty())
    return "";
  return std::string("FLASHMLIR_VECTOR_WIDTH = '") + w +
         "' is not an integer in [1, " +
         std::to_string(limits::kMaxVectorWidth) + "]";
}

/// Parses `source`, lowers it with the CPU pipeline and JIT-compiles it.
/// Returns the engine and the address of `_mlir_ciface_<func>`.
std::unique_ptr<mlir::ExecutionEngine>
compileModule(const KernelConfig &cfg, const std::string &source,
              const char *func, void **entry, std::string &err) {
  initNativeTargetOnce();

  mlir::DialectRegistry registry;
  registerAllDialects(registry);
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  mlir::MLIRContext context(registry);

  // Collect every diagnostic into the error text.
  std::string diags;
  bool reportedError = false;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    llvm::raw_string_ostream os(diags);
    os << d.getLocation() << ": ";
    switch (d.getSeverity()) {
    case mlir::DiagnosticSeverity::Error:
      reportedError = true;
      os << "error: ";
      break;
    case mlir::DiagnosticSeverity::Warning:
      os << "warning: ";
      break;
    case mlir::DiagnosticSeverity::Note:
      os << "note: ";
      break;
    case mlir::DiagnosticSeverity::Remark:
      os << "remark: ";
      break;
    }
    os << d << "\n";
    for (const mlir::Diagnostic &note : d.getNotes())
      os << "  " << note.getLocation() << ": note: " << note << "\n";
    return mlir::success();
  });

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context,
                                              /*sourceName=*/func);
  if (!module) {
    err = std::string("cannot parse the generated @") + func + " module:\n" +
          diags + "module:\n" + source;
    return nullptr;
  }

  mlir::PassManager pm(&context);
  CpuPipelineOptions opts;
  opts.unfused = cfg.unfused;
  opts.blockM = cfg.blockM;
  opts.blockN = cfg.blockN;
  opts.vectorWidth = hostVectorWidth();
  if (std::string msg = validateCpuPipelineOptions(opts); !msg.empty()) {
    err = "invalid CPU pipeline options: " + msg;
    return nullptr;
  }
  buildAttnCpuPipeline(pm, opts);
  // An error counts even when the pass that reported it did not fail.
  if (mlir::failed(pm.run(*module)) || reportedError) {
    err = std::string("the CPU pipeline failed on @") + func + ":\n" + diags;
    return nullptr;
  }

  auto tm = makeTargetMachine();
  if (!tm) {
    err = "cannot create the host target machine: " + errorText(tm.takeError());
    return nullptr;
  }
  auto transformer = mlir::makeOptimizingTransformer(
      /*optLevel=*/2, /*sizeLevel=*/0, tm->get());
  mlir::ExecutionEngineOptions engineOpts;
  engineOpts.transformer = transformer;
  engineOpts.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Default;
  engineOpts.enableGDBNotificationListener = false;
  engineOpts.enablePerfNotificationListener = false;
  auto engine =
      mlir::ExecutionEngine::create(*module, engineOpts, std::move(*tm));
  if (!engine) {
    err = std::string("cannot JIT-compile @") + func + ": " +
          errorText(engine.takeError()) + (diags.empty() ? "" : "\n" + diags);
    return nullptr;
  }
  (*engine)->registerSymbols(runtimeSymbols);

  std::string cifaceName = std::string("_mlir_ciface_") + func;
  auto sym = (*engine)->lookup(cifaceName);
  if (!sym) {
    err = "cannot resolve " + cifaceName +
          " in the JIT-compiled kernel: " + errorText(sym.takeError());
    return nullptr;
  }
  *entry = *sym;
  return std::move(*engine);
}

/// A JIT-compiled kernel; shared by every CpuKernels of its configuration.
struct CompiledKernel {
  std::unique_ptr<mlir::ExecutionEngine> engine;
  void *entry = nullptr;

  ~CompiledKernel() {
    // A worker may still be finishing one of this kernel's async tasks (the
    // coroutine's epilogue after it signalled completion): free the code
    // only when none runs.
    cpu::waitForAsyncTasks();
  }
};

/// compileModule through a process-wide cache: the kernels of a
/// configuration are compiled once and shared while some CpuKernels holds
/// them (the key is everything the compilation depends on).
std::shared_ptr<CompiledKernel> compileCached(const KernelConfig &cfg,
                                              const std::string &source,
                                              const char *func,
                                              std::string &err) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<CompiledKernel>> cache;
  const char *jitCpu = std::getenv("FLASHMLIR_JIT_CPU");
  std::string key = std::string(func) + "|" + source + "|" +
                    std::to_string(cfg.unfused) + "|" +
                    std::to_string(hostVectorWidth()) + "|" +
                    (jitCpu ? jitCpu : "");
  // One compilation at a time: a second caller of the same configuration
  // waits and then finds it.
  std::lock_guard<std::mutex> lock(mu);
  if (std::shared_ptr<CompiledKernel> hit = cache[key].lock())
    return hit;
  auto compiled = std::make_shared<CompiledKernel>();
  compiled->engine = compileModule(cfg, source, func, &compiled->entry, err);
  if (!compiled->engine)
    return nullptr;
  cache[key] = compiled;
  return compiled;
}

//===----------------------------------------------------------------------===//
// Calling convention
//===----------------------------------------------------------------------===//

/// The layout of a ranked memref descriptor (StridedMemRefType<T, N>).
template <int N> struct MemRefDescriptor {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};

template <int N> MemRefDescriptor<N> descriptorOf(const TensorArg &t) {
  MemRefDescriptor<N> d;
  d.allocated = d.aligned = t.data;
  d.offset = 0;
  for (int i = 0; i < N; ++i) {
    d.sizes[i] = t.sizes[i];
    d.strides[i] = t.strides[i];
  }
  return d;
}

using D4 = MemRefDescriptor<4>;
using D3 = MemRefDescriptor<3>;
using D2 = MemRefDescriptor<2>;
using D1 = MemRefDescriptor<1>;
using ForwardVarlenFn = void (*)(D3 *, D3 *, D3 *, D3 *, D2 *, D1 *, D1 *,
                                 int64_t, int64_t);
using BackwardVarlenFn = void (*)(D3 *, D3 *, D3 *, D3 *, D3 *, D2 *, D3 *,
                                  D3 *, D3 *, D1 *, D1 *, int64_t, int64_t);
// The kernels with the score modifications' parameters (slopes, sinks,
// grad_sinks) after the others.
// (the regions' four captured buffers and the rotary tables) after the
// others.
using ForwardModsFn = void (*)(D4 *, D4 *, D4 *, D4 *, D3 *, D2 *, D1 *,
                               D1 *, D1 *, D1 *, D1 *, D1 *, D2 *, D2 *);
using BackwardModsFn = void (*)(D4 *, D4 *, D4 *, D4 *, D4 *, D3 *, D4 *,
                                D4 *, D4 *, D2 *, D1 *, D1 *, D1 *, D1 *, D1 *,
                                D1 *, D2 *, D2 *);
using ForwardVarlenModsFn = void (*)(D3 *, D3 *, D3 *, D3 *, D2 *, D1 *, D1 *,
                                     int64_t, int64_t, D2 *, D1 *, D1 *, D1 *,
                                     D1 *, D1 *, D1 *, D2 *, D2 *);
using BackwardVarlenModsFn = void (*)(D3 *, D3 *, D3 *, D3 *, D3 *, D2 *,
                                      D3 *, D3 *, D3 *, D1 *, D1 *, int64_t,
                                      int64_t, D2 *, D1 *, D1 *, D1 *, D1 *,
                                      D1 *, D1 *, D2 *, D2 *);

D1 offsetsDescriptor(const int32_t *cu, int64_t n) {
  D1 d;
  d.allocated = d.aligned = const_cast<int32_t *>(cu);
  d.offset = 0;
  d.sizes[0] = n;
  d.strides[0] = 1;
  return d;
}
using ForwardFn = void (*)(D4 *, D4 *, D4 *, D4 *, D3 *);
using BackwardFn = void (*)(D4 *, D4 *, D4 *, D4 *, D4 *, D3 *, D4 *, D4 *,
                            D4 *);

/// Checks that `t` is a usable rank-`rank` view.
bool checkArg(const TensorArg &t, const char *name, int rank,
              std::string &err) {
  if (!t.data) {
    err = std::string("'") + name + "' has no data";
    return false;
  }
  if (t.rank != rank) {
    err = std::string("'") + name + "' must have rank " + std::to_string(rank) +
          ", got " + std::to_string(t.rank);
    return false;
  }
  for (int i = 0; i < rank; ++i) {
    if (t.sizes[i] < 1) {
      err = std::string("'") + name + "' dim " + std::to_string(i) +
            " must be >= 1, got " + std::to_string(t.sizes[i]);
      return false;
    }
    if (t.strides[i] < 0) {
      err = std::string("'") + name + "' stride " + std::to_string(i) +
            " must be >= 0, got " + std::to_string(t.strides[i]);
      return false;
    }
  }
  if (t.strides[rank - 1] != 1) {
    err = std::string("'") + name +
          "' must have a unit innermost stride, got " +
          std::to_string(t.strides[rank - 1]);
    return false;
  }
  // Sequence lengths (dim 2 of the dense [B, H, N, D] buffers and of lse
  // [B, H, N]; packed varlen buffers have none: their lengths are the
  // offsets') within limits::kMaxSeqLen; the elements the view addresses,
  // 1 + sum((size - 1) * stride), and its element count must fit in int64
  // (the kernel's index and size arithmetic).
  bool dense = rank == 4 || (rank == 3 && std::string(name) == "lse");
  if (std::string msg = dense ? limits::checkSeqLen(
                                    std::string("'") + name +
                                        "' sequence length (dim 2)",
                                    t.sizes[2])
                              : std::string();
      !msg.empty()) {
    err = msg;
    return false;
  }
  int64_t extent = 1, numel = 1;
  for (int i = 0; i < rank; ++i) {
    int64_t term;
    if (!limits::mulChecked(t.sizes[i] - 1, t.strides[i], &term) ||
        __builtin_add_overflow(extent, term, &extent) ||
        !limits::mulChecked(numel, t.sizes[i], &numel)) {
      err = std::string("'") + name +
            "' is too large: its sizes and strides overflow a 64-bit "
            "element index";
      return false;
    }
  }
  return true;
}

/// The largest buffer the kernel allocates must have a size that fits in
/// int64 bytes (the generated code computes it without overflow checks):
/// per (batch, query head, query row) an f32 row of max(Nk, D, Dv) (the
/// unfused score matrices; the backward's dQ accumulator), times 4 bytes
/// and the two such buffers of the unfused backward.
bool checkWorkspace(const KernelConfig &cfg, const TensorArg &q,
                    const TensorArg &k, std::string &err) {
  int64_t rows = 0, bytes = 0;
  int64_t cols = std::max({k.sizes[2], cfg.D, cfg.Dv});
  if (limits::mulChecked(q.sizes[0], q.sizes[1], &rows) &&
      limits::mulChecked(rows, q.sizes[2], &rows) &&
      limits::mulChecked(rows, cols, &bytes) &&
      limits::mulChecked(bytes, 8, &bytes))
    return true;
  err = "the kernel's workspace for batch " + std::to_string(q.sizes[0]) +
        " x heads " + std::to_string(q.sizes[1]) + " x query length " +
        std::to_string(q.sizes[2]) + " x " + std::to_string(cols) +
        " f32 values overflows a 64-bit size";
  return false;
}

/// Reports an allocation the kernel could not make during a call (the
/// failure count moved from `before`).
bool checkNoAllocFailure(uint64_t before, const char *what,
                         std::string &err) {
  if (gAllocFailures.load() == before)
    return true;
  err = std::string(what) + ": out of memory: the kernel could not allocate " +
        std::to_string(gLastFailedBytes.load()) +
        " bytes of workspace, so its outputs are incomplete (a call running "
        "at the same time in another thread may report this too)";
  return false;
}

/// Checks that dim `dim` of `t` equals `expected` (named `what`).
bool checkDim(const TensorArg &t, const char *name, int dim, int64_t expected,
              const char *what, std::string &err) {
  if (t.sizes[dim] == expected)
    return true;
  err = std::string("'") + name + "' dim " + std::to_string(dim) + " (" + what +
        ") is " + std::to_string(t.sizes[dim]) + ", expected " +
        std::to_string(expected);
  return false;
}

/// Shape checks shared by forward and backward: q [B,Hq,Nq,D],
/// k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv], o [B,Hq,Nq,Dv], lse [B,Hq,Nq].
bool checkShapes(const KernelConfig &cfg, const TensorArg &q,
                 const TensorArg &k, const TensorArg &v, const TensorArg &o,
                 const TensorArg &lse, const char *oName, std::string &err) {
  if (!checkArg(q, "q", 4, err) || !checkArg(k, "k", 4, err) ||
      !checkArg(v, "v", 4, err) || !checkArg(o, oName, 4, err) ||
      !checkArg(lse, "lse", 3, err))
    return false;
  const int64_t B = q.sizes[0], Hq = q.sizes[1], Nq = q.sizes[2];
  const int64_t Hkv = k.sizes[1], Nk = k.sizes[2];
  if (!checkDim(q, "q", 3, cfg.D, "head dim D", err) ||
      !checkDim(k, "k", 0, B, "batch", err) ||
      !checkDim(k, "k", 3, cfg.D, "head dim D", err) ||
      !checkDim(v, "v", 0, B, "batch", err) ||
      !checkDim(v, "v", 1, Hkv, "kv heads", err) ||
      !checkDim(v, "v", 2, Nk, "key length", err) ||
      !checkDim(v, "v", 3, cfg.Dv, "head dim Dv", err) ||
      !checkDim(o, oName, 0, B, "batch", err) ||
      !checkDim(o, oName, 1, Hq, "query heads", err) ||
      !checkDim(o, oName, 2, Nq, "query length", err) ||
      !checkDim(o, oName, 3, cfg.Dv, "head dim Dv", err) ||
      !checkDim(lse, "lse", 0, B, "batch", err) ||
      !checkDim(lse, "lse", 1, Hq, "query heads", err) ||
      !checkDim(lse, "lse", 2, Nq, "query length", err))
    return false;
  if (Hq % Hkv != 0) {
    err = "query heads (" + std::to_string(Hq) +
          ") must be a multiple of kv heads (" + std::to_string(Hkv) + ")";
    return false;
  }
  return true;
}

/// `t` must have exactly the shape of `like`.
bool checkSameShape(const TensorArg &t, const char *name, const TensorArg &like,
                    const char *likeName, std::string &err) {
  if (!checkArg(t, name, like.rank, err))
    return false;
  for (int i = 0; i < like.rank; ++i) {
    if (t.sizes[i] != like.sizes[i]) {
      err = std::string("'") + name + "' must have the shape of '" + likeName +
            "': dim " + std::to_string(i) + " is " +
            std::to_string(t.sizes[i]) + ", expected " +
            std::to_string(like.sizes[i]);
      return false;
    }
  }
  return true;
}

/// Checks one offsets array: batch + 1 entries from 0, non-decreasing,
/// ending within the `total` packed rows, no length above `maxLen`.
bool checkOffsets(const int32_t *cu, int64_t batch, int64_t total,
                  int64_t maxLen, const char *name, const char *maxName,
                  std::string &err) {
  if (!cu) {
    err = std::string("'") + name + "' is null";
    return false;
  }
  if (cu[0] != 0) {
    err = std::string("'") + name + "' must start at 0, got " +
          std::to_string(cu[0]);
    return false;
  }
  for (int64_t b = 0; b < batch; ++b) {
    int64_t len = int64_t(cu[b + 1]) - cu[b];
    if (len < 0) {
      err = std::string("'") + name + "' must be non-decreasing, but " + name +
            "[" + std::to_string(b + 1) + "] = " + std::to_string(cu[b + 1]) +
            " < " + name + "[" + std::to_string(b) +
            "] = " + std::to_string(cu[b]);
      return false;
    }
    if (len > maxLen) {
      err = "sequence " + std::to_string(b) + " has " + std::to_string(len) +
            " rows, more than " + maxName + " = " + std::to_string(maxLen);
      return false;
    }
  }
  if (cu[batch] > total) {
    err = std::string("'") + name + "'[" + std::to_string(batch) +
          "] = " + std::to_string(cu[batch]) + " is past the " +
          std::to_string(total) + " packed rows";
    return false;
  }
  return true;
}

/// Shapes of the variable-length form: q [Tq,Hq,D], k [Tk,Hkv,D],
/// v [Tk,Hkv,Dv], o [Tq,Hq,Dv], lse [Hq,Tq]; and the offsets.
bool checkVarlenShapes(const KernelConfig &cfg, const TensorArg &q,
                       const TensorArg &k, const TensorArg &v,
                       const TensorArg &o, const TensorArg &lse,
                       const VarlenArgs &seqs, std::string &err) {
  if (!checkArg(q, "q", 3, err) || !checkArg(k, "k", 3, err) ||
      !checkArg(v, "v", 3, err) || !checkArg(o, "o", 3, err) ||
      !checkArg(lse, "lse", 2, err))
    return false;
  const int64_t Tq = q.sizes[0], Hq = q.sizes[1], Tk = k.sizes[0],
                Hkv = k.sizes[1];
  if (!checkDim(q, "q", 2, cfg.D, "head dim D", err) ||
      !checkDim(k, "k", 2, cfg.D, "head dim D", err) ||
      !checkDim(v, "v", 0, Tk, "key rows", err) ||
      !checkDim(v, "v", 1, Hkv, "kv heads", err) ||
      !checkDim(v, "v", 2, cfg.Dv, "head dim Dv", err) ||
      !checkDim(o, "o", 0, Tq, "query rows", err) ||
      !checkDim(o, "o", 1, Hq, "query heads", err) ||
      !checkDim(o, "o", 2, cfg.Dv, "head dim Dv", err) ||
      !checkDim(lse, "lse", 0, Hq, "query heads", err) ||
      !checkDim(lse, "lse", 1, Tq, "query rows", err))
    return false;
  if (Hq % Hkv != 0) {
    err = "query heads (" + std::to_string(Hq) +
          ") must be a multiple of kv heads (" + std::to_string(Hkv) + ")";
    return false;
  }
  if (seqs.batch < 0 || seqs.maxSeqlenQ < 0 || seqs.maxSeqlenK < 0) {
    err = "batch and max lengths must be >= 0";
    return false;
  }
  return checkOffsets(seqs.cuSeqlensQ, seqs.batch, Tq, seqs.maxSeqlenQ,
                      "cu_seqlens_q", "max_seqlen_q", err) &&
         checkOffsets(seqs.cuSeqlensK, seqs.batch, Tk, seqs.maxSeqlenK,
                      "cu_seqlens_k", "max_seqlen_k", err);
}

} // namespace

//===----------------------------------------------------------------------===//
// CpuKernels
//===----------------------------------------------------------------------===//

struct CpuKernels::Impl {
  KernelConfig cfg;
  std::string allSource;
  /// The captured buffers the regions read (`%cap<i>` in their text).
  bool capturesUsed[kMaxCaptures] = {false, false, false, false};

  /// Every buffer the regions read must be given, and the rotary tables
  /// with a rotary config.
  bool checkCaptures(const ScoreModArgs &m, std::string &err) const {
    if (cfg.rotaryDim > 0 &&
        (!m.rotaryCos || !m.rotarySin || m.rotaryPositions < 1)) {
      err = "the kernel applies rotary embeddings (rotary_dim " +
            std::to_string(cfg.rotaryDim) +
            "), but the call gives no cos / sin tables";
      return false;
    }
    for (int i = 0; i < kMaxCaptures; ++i)
      if (capturesUsed[i] && (!m.captures[i] || m.captureSizes[i] < 1)) {
        err = "the kernel's score_mod / mask_mod reads the captured buffer %cap" +
              std::to_string(i) + ", but the call gives none";
        return false;
      }
    return true;
  }
  /// One lazily compiled kernel per KernelKind; a failed compilation is
  /// sticky (not retried).
  struct Slot {
    std::shared_ptr<CompiledKernel> kernel;
    std::string error;
  };
  std::mutex mu;
  Slot slots[kNumKernelKinds];

  /// The entry of the kernel of `kind`, compiled on first use.
  void *entry(const KernelKind &kind, std::string &err) {
    std::lock_guard<std::mutex> lock(mu);
    Slot &slot = slots[kind.index()];
    if (slot.kernel)
      return slot.kernel->entry;
    if (slot.error.empty()) {
      std::string name = kernelName(kind);
      slot.kernel =
          compileCached(cfg, kernelModule(cfg, kind), name.c_str(), slot.error);
      if (slot.kernel)
        return slot.kernel->entry;
    }
    err = slot.error;
    return nullptr;
  }
};

namespace {
/// The score modifications of a call as kernel arguments: which kernel
/// variant, and the descriptors of the slopes ([batch, Hq], batch stride 0
/// for per-head slopes), sinks and grad_sinks ([Hq]; a scratch buffer when
/// the caller does not want grad_sinks). Unused ones are empty descriptors.
struct ModArgs {
  D2 slopes{};
  D1 sinks{}, gradSinks{};
  D1 caps[kMaxCaptures]{};
  D2 rotCos{}, rotSin{};
  std::vector<float> scratch;

  ModArgs(const ScoreModArgs &m, int64_t batch, int64_t heads,
          int64_t rotaryHalf) {
    slopes.allocated = slopes.aligned = const_cast<float *>(m.alibiSlopes);
    slopes.sizes[0] = batch;
    slopes.sizes[1] = heads;
    slopes.strides[0] = m.alibiPerSequence ? heads : 0;
    slopes.strides[1] = 1;
    sinks.allocated = sinks.aligned = const_cast<float *>(m.sinks);
    sinks.sizes[0] = heads;
    sinks.strides[0] = 1;
    float *gs = m.gradSinks;
    if (m.sinks && !gs) {
      scratch.assign(size_t(heads), 0.0f);
      gs = scratch.data();
    }
    gradSinks.allocated = gradSinks.aligned = gs;
    gradSinks.sizes[0] = heads;
    gradSinks.strides[0] = 1;
    for (int i = 0; i < kMaxCaptures; ++i) {
      caps[i].allocated = caps[i].aligned = const_cast<float *>(m.captures[i]);
      caps[i].sizes[0] = m.captureSizes[i];
      caps[i].strides[0] = 1;
    }
    for (auto [d, table] : {std::pair<D2 *, const float *>{&rotCos, m.rotaryCos},
                            {&rotSin, m.rotarySin}}) {
      d->allocated = d->aligned = const_cast<float *>(table);
      d->sizes[0] = m.rotaryPositions;
      d->sizes[1] = std::max<int64_t>(rotaryHalf, 1);
      d->strides[0] = std::max<int64_t>(rotaryHalf, 1);
      d->strides[1] = 1;
    }
  }
};

/// The kernel of a call: config `cfg` with regions always takes the
/// modifications' parameters (its captures).
KernelKind kindOf(const KernelConfig &cfg, bool backward, bool varlen,
                  const ScoreModArgs &m) {
  KernelKind k;
  k.backward = backward;
  k.varlen = varlen;
  k.alibi = m.alibiSlopes != nullptr;
  k.sinks = m.sinks != nullptr;
  k.mods = k.alibi || k.sinks || cfg.hasRegions();
  return k;
}
} // namespace

CpuKernels::CpuKernels(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}
CpuKernels::~CpuKernels() = default;

const std::string &CpuKernels::moduleSource() const { return impl->allSource; }

std::unique_ptr<CpuKernels> CpuKernels::compile(const KernelConfig &cfg,
                                                std::string &err) {
  // What the verifier would also reject, said in terms of the config (the
  // ranges of flashmlir/runtime/Limits.h), and the environment.
  for (const std::string &msg :
       {limits::checkHeadDim("head dim D", cfg.D),
        limits::checkHeadDim("head dim Dv", cfg.Dv),
        limits::checkScale("scale", cfg.scale),
        limits::checkSoftcapOrOff("softcap", cfg.softcap),
        limits::checkWindow("window left", cfg.windowLeft),
        limits::checkWindow("window right", cfg.windowRight),
        limits::checkBlock("block_m", cfg.blockM),
        limits::checkBlock("block_n", cfg.blockN), vectorWidthEnvError(),
        cpu::threadsEnvError()})
    if (!msg.empty()) {
      err = msg;
      return nullptr;
    }
  if (cfg.rotaryDim < 0 || cfg.rotaryDim % 2 != 0 || cfg.rotaryDim > cfg.D) {
    err = "rotary_dim = " + std::to_string(cfg.rotaryDim) +
          " must be even and in [0, head dim D = " + std::to_string(cfg.D) +
          "]";
    return nullptr;
  }
  if (!cfg.unfused)
    if (std::string msg = limits::checkTileVectors(
            cfg.blockM, cfg.blockN, cfg.D, cfg.Dv, hostVectorWidth());
        !msg.empty()) {
      err = msg;
      return nullptr;
    }

  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  for (int i = 0; i < kMaxCaptures; ++i) {
    std::string name = "%cap" + std::to_string(i) + "[";
    impl->capturesUsed[i] = cfg.scoreMod.find(name) != std::string::npos ||
                            cfg.maskMod.find(name) != std::string::npos;
  }
  KernelKind fwd = kindOf(cfg, false, false, ScoreModArgs()),
             bwd = kindOf(cfg, true, false, ScoreModArgs());
  impl->allSource = kernelModule(cfg, fwd) + kernelModule(cfg, bwd);
  if (!impl->entry(fwd, err))
    return nullptr;
  return std::unique_ptr<CpuKernels>(new CpuKernels(std::move(impl)));
}

bool CpuKernels::forward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                         TensorArg lse, std::string &err) {
  return forward(q, k, v, o, lse, ScoreModArgs(), err);
}

bool CpuKernels::forward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                         TensorArg lse, const ScoreModArgs &mods,
                         std::string &err) {
  if (!checkShapes(impl->cfg, q, k, v, o, lse, "o", err) ||
      !checkWorkspace(impl->cfg, q, k, err)) {
    err = "forward: " + err;
    return false;
  }
  if (!impl->checkCaptures(mods, err))
    return false;
  KernelKind kind = kindOf(impl->cfg, false, false, mods);
  void *fn = impl->entry(kind, err);
  if (!fn)
    return false;
  D4 dq = descriptorOf<4>(q), dk = descriptorOf<4>(k), dv = descriptorOf<4>(v),
     dout = descriptorOf<4>(o);
  D3 dl = descriptorOf<3>(lse);
  const uint64_t failures = gAllocFailures.load();
  if (kind.mods) {
    ModArgs m(mods, q.sizes[0], q.sizes[1], impl->cfg.rotaryDim / 2);
    reinterpret_cast<ForwardModsFn>(fn)(&dq, &dk, &dv, &dout, &dl, &m.slopes,
                                        &m.sinks, &m.gradSinks, &m.caps[0],
                                        &m.caps[1], &m.caps[2], &m.caps[3], &m.rotCos, &m.rotSin);
  } else {
    reinterpret_cast<ForwardFn>(fn)(&dq, &dk, &dv, &dout, &dl);
  }
  return checkNoAllocFailure(failures, "forward", err);
}

bool CpuKernels::compileBackward(std::string &err) {
  return impl->entry(kindOf(impl->cfg, true, false, ScoreModArgs()), err) !=
         nullptr;
}

bool CpuKernels::backward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                          TensorArg dO, TensorArg lse, TensorArg dq,
                          TensorArg dk, TensorArg dv, std::string &err) {
  return backward(q, k, v, o, dO, lse, dq, dk, dv, ScoreModArgs(), err);
}

bool CpuKernels::backward(TensorArg q, TensorArg k, TensorArg v, TensorArg o,
                          TensorArg dO, TensorArg lse, TensorArg dq,
                          TensorArg dk, TensorArg dv, const ScoreModArgs &mods,
                          std::string &err) {
  if (!checkShapes(impl->cfg, q, k, v, o, lse, "o", err) ||
      !checkSameShape(dO, "dO", o, "o", err) ||
      !checkSameShape(dq, "dq", q, "q", err) ||
      !checkSameShape(dk, "dk", k, "k", err) ||
      !checkSameShape(dv, "dv", v, "v", err) ||
      !checkWorkspace(impl->cfg, q, k, err)) {
    err = "backward: " + err;
    return false;
  }
  if (!impl->checkCaptures(mods, err))
    return false;
  KernelKind kind = kindOf(impl->cfg, true, false, mods);
  void *fn = impl->entry(kind, err);
  if (!fn)
    return false;
  D4 mq = descriptorOf<4>(q), mk = descriptorOf<4>(k), mv = descriptorOf<4>(v),
     mo = descriptorOf<4>(o), mdo = descriptorOf<4>(dO),
     mdq = descriptorOf<4>(dq), mdk = descriptorOf<4>(dk),
     mdv = descriptorOf<4>(dv);
  D3 ml = descriptorOf<3>(lse);
  const uint64_t failures = gAllocFailures.load();
  if (kind.mods) {
    ModArgs m(mods, q.sizes[0], q.sizes[1], impl->cfg.rotaryDim / 2);
    reinterpret_cast<BackwardModsFn>(fn)(
        &mq, &mk, &mv, &mo, &mdo, &ml, &mdq, &mdk, &mdv, &m.slopes, &m.sinks,
        &m.gradSinks, &m.caps[0], &m.caps[1], &m.caps[2], &m.caps[3], &m.rotCos, &m.rotSin);
  } else {
    reinterpret_cast<BackwardFn>(fn)(&mq, &mk, &mv, &mo, &mdo, &ml, &mdq, &mdk,
                                     &mdv);
  }
  return checkNoAllocFailure(failures, "backward", err);
}

bool CpuKernels::varlenForward(TensorArg q, TensorArg k, TensorArg v,
                               TensorArg o, TensorArg lse,
                               const VarlenArgs &seqs, std::string &err) {
  return varlenForward(q, k, v, o, lse, seqs, ScoreModArgs(), err);
}

bool CpuKernels::varlenForward(TensorArg q, TensorArg k, TensorArg v,
                               TensorArg o, TensorArg lse,
                               const VarlenArgs &seqs,
                               const ScoreModArgs &mods, std::string &err) {
  if (!checkVarlenShapes(impl->cfg, q, k, v, o, lse, seqs, err)) {
    err = "varlen forward: " + err;
    return false;
  }
  if (!impl->checkCaptures(mods, err))
    return false;
  KernelKind kind = kindOf(impl->cfg, false, true, mods);
  void *fn = impl->entry(kind, err);
  if (!fn)
    return false;
  D3 mq = descriptorOf<3>(q), mk = descriptorOf<3>(k), mv = descriptorOf<3>(v),
     mo = descriptorOf<3>(o);
  D2 ml = descriptorOf<2>(lse);
  D1 cq = offsetsDescriptor(seqs.cuSeqlensQ, seqs.batch + 1),
     ck = offsetsDescriptor(seqs.cuSeqlensK, seqs.batch + 1);
  if (kind.mods) {
    ModArgs m(mods, seqs.batch, q.sizes[1], impl->cfg.rotaryDim / 2);
    reinterpret_cast<ForwardVarlenModsFn>(fn)(
        &mq, &mk, &mv, &mo, &ml, &cq, &ck, seqs.maxSeqlenQ, seqs.maxSeqlenK,
        &m.slopes, &m.sinks, &m.gradSinks, &m.caps[0], &m.caps[1], &m.caps[2],
        &m.caps[3], &m.rotCos, &m.rotSin);
  } else {
    reinterpret_cast<ForwardVarlenFn>(fn)(&mq, &mk, &mv, &mo, &ml, &cq, &ck,
                                          seqs.maxSeqlenQ, seqs.maxSeqlenK);
  }
  return true;
}

bool CpuKernels::varlenBackward(TensorArg q, TensorArg k, TensorArg v,
                                TensorArg o, TensorArg dO, TensorArg lse,
                                TensorArg dq, TensorArg dk, TensorArg dv,
                                const VarlenArgs &seqs, std::string &err) {
  return varlenBackward(q, k, v, o, dO, lse, dq, dk, dv, seqs, ScoreModArgs(),
                        err);
}

bool CpuKernels::varlenBackward(TensorArg q, TensorArg k, TensorArg v,
                                TensorArg o, TensorArg dO, TensorArg lse,
                                TensorArg dq, TensorArg dk, TensorArg dv,
                                const VarlenArgs &seqs,
                                const ScoreModArgs &mods, std::string &err) {
  if (!checkVarlenShapes(impl->cfg, q, k, v, o, lse, seqs, err) ||
      !checkSameShape(dO, "dO", o, "o", err) ||
      !checkSameShape(dq, "dq", q, "q", err) ||
      !checkSameShape(dk, "dk", k, "k", err) ||
      !checkSameShape(dv, "dv", v, "v", err)) {
    err = "varlen backward: " + err;
    return false;
  }
  if (!impl->checkCaptures(mods, err))
    return false;
  KernelKind kind = kindOf(impl->cfg, true, true, mods);
  void *fn = impl->entry(kind, err);
  if (!fn)
    return false;
  D3 mq = descriptorOf<3>(q), mk = descriptorOf<3>(k), mv = descriptorOf<3>(v),
     mo = descriptorOf<3>(o), mdo = descriptorOf<3>(dO),
     mdq = descriptorOf<3>(dq), mdk = descriptorOf<3>(dk),
     mdv = descriptorOf<3>(dv);
  D2 ml = descriptorOf<2>(lse);
  D1 cq = offsetsDescriptor(seqs.cuSeqlensQ, seqs.batch + 1),
     ck = offsetsDescriptor(seqs.cuSeqlensK, seqs.batch + 1);
  if (kind.mods) {
    ModArgs m(mods, seqs.batch, q.sizes[1], impl->cfg.rotaryDim / 2);
    reinterpret_cast<BackwardVarlenModsFn>(fn)(
        &mq, &mk, &mv, &mo, &mdo, &ml, &mdq, &mdk, &mdv, &cq, &ck,
        seqs.maxSeqlenQ, seqs.maxSeqlenK, &m.slopes, &m.sinks, &m.gradSinks,
        &m.caps[0], &m.caps[1], &m.caps[2], &m.caps[3], &m.rotCos, &m.rotSin);
  } else {
    reinterpret_cast<BackwardVarlenFn>(fn)(&mq, &mk, &mv, &mo, &mdo, &ml, &mdq,
                                           &mdk, &mdv, &cq, &ck,
                                           seqs.maxSeqlenQ, seqs.maxSeqlenK);
  }
  return true;
}

void CpuKernels::resetPeak() { gPeakBytes.store(gLiveBytes.load()); }
int64_t CpuKernels::peakBytes() { return gPeakBytes.load(); }
int64_t CpuKernels::liveBytes() { return gLiveBytes.load(); }
