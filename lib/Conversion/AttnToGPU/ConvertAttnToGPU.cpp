//===- ConvertAttnToGPU.cpp - convert-attn-to-gpu ---------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Replaces attn ops on memrefs with gpu.launch_func of the kernels built by
// AttnGPUKernels.cpp, one gpu.module per kernel configuration.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"
#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"
#include "flashmlir/runtime/Limits.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringMap.h"

#include <algorithm>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_CONVERTATTNTOGPUPASS
#include "flashmlir/Conversion/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

namespace {
/// Host-side values for the kernel ABI names of one attn op.
struct HostArgs {
  llvm::StringMap<Value> values;

  /// Flattens memref `m` to the 1-D buffer view the kernels take and records
  /// its element strides under `name_stride_{b,h,n}`.
  void addTensor(Codegen &cg, StringRef name, Value m) {
    ImplicitLocOpBuilder &b = cg.builder();
    auto meta = memref::ExtractStridedMetadataOp::create(b, m);
    auto type = cast<MemRefType>(m.getType());
    // Conservative extent: the last addressable element + 1.
    Value extent = cg.idx(1);
    for (int64_t i = 0; i < type.getRank(); ++i)
      extent = cg.add(extent, cg.mul(cg.sub(meta.getSizes()[i], cg.idx(1)),
                                     meta.getStrides()[i]));
    auto flatType = MemRefType::get(
        {ShapedType::kDynamic}, type.getElementType(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}));
    values[name] = memref::ReinterpretCastOp::create(
        b, flatType, meta.getBaseBuffer(), OpFoldResult(meta.getOffset()),
        ArrayRef<OpFoldResult>{extent}, ArrayRef<OpFoldResult>{b.getIndexAttr(1)});
    static const char *suffix[] = {"_stride_b", "_stride_h", "_stride_n"};
    for (int64_t i = 0; i + 1 < type.getRank(); ++i)
      values[(name + suffix[i]).str()] = meta.getStrides()[i];
  }

  /// A contiguous f32 device workspace of `sizes` elements, flattened.
  Value addWorkspace(Codegen &cg, StringRef name, ArrayRef<Value> sizes) {
    ImplicitLocOpBuilder &b = cg.builder();
    Value n = cg.idx(1);
    for (Value s : sizes)
      n = cg.mul(n, s);
    auto type = MemRefType::get({ShapedType::kDynamic}, b.getF32Type());
    auto alloc = gpu::AllocOp::create(b, type, /*asyncToken=*/Type(),
                                      ValueRange{}, ValueRange{n}, ValueRange{});
    Value mem = alloc.getMemref();
    auto flatType = MemRefType::get(
        {ShapedType::kDynamic}, b.getF32Type(),
        StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, {1}));
    values[name] = memref::CastOp::create(b, flatType, mem);
    return mem;
  }
};
} // namespace

/// Name of the gpu.module holding the kernels of `spec`.
static std::string moduleName(const GpuKernelSpec &spec) {
  std::string et;
  llvm::raw_string_ostream os(et);
  os << spec.elementType;
  return ("attn_kernels_" + et + "_d" + std::to_string(spec.headDim) + "_dv" +
          std::to_string(spec.headDimV) + (spec.masked ? "_masked" : "") +
          (spec.softcap ? "_softcap" : "") + (spec.alibi ? "_alibi" : "") + (spec.rotary ? "_rope" : "") +
          (spec.varlen ? "_varlen" : ""));
}

/// Returns the kernel `kind` of `spec`, building its gpu.module on first use.
static gpu::GPUFuncOp getOrBuildKernel(ModuleOp top, GpuKernelKind kind,
                                       const GpuKernelSpec &spec) {
  OpBuilder b(top.getContext());
  std::string name = moduleName(spec);
  auto module = top.lookupSymbol<gpu::GPUModuleOp>(name);
  if (!module) {
    b.setInsertionPointToEnd(top.getBody());
    module = gpu::GPUModuleOp::create(b, top.getLoc(), name);
  }
  GpuKernelInfo info = getGpuKernelInfo(kind, spec);
  if (auto f = module.lookupSymbol<gpu::GPUFuncOp>(info.entry))
    return f;
  return buildGpuKernel(b, module, kind, spec);
}

/// Emits one gpu.launch_func of `kind` with arguments from `host`.
static void launch(Codegen &cg, ModuleOp top, GpuKernelKind kind,
                   const GpuKernelSpec &spec, HostArgs &host) {
  ImplicitLocOpBuilder &b = cg.builder();
  gpu::GPUFuncOp kernel = getOrBuildKernel(top, kind, spec);
  GpuKernelInfo info = getGpuKernelInfo(kind, spec);
  SmallVector<Value> operands;
  for (const GpuKernelArg &a : info.args) {
    Value v = host.values.lookup(a.name);
    assert(v && "host value for kernel argument");
    operands.push_back(v);
  }
  Value grid[3];
  for (int i = 0; i < 3; ++i)
    grid[i] = cg.ceilDiv(host.values.lookup(info.grid[i].dim),
                         cg.idx(info.grid[i].div));
  gpu::KernelDim3 gridDim{grid[0], grid[1], grid[2]};
  gpu::KernelDim3 blockDim{cg.idx(info.block[0]), cg.idx(info.block[1]),
                           cg.idx(info.block[2])};
  Value smem = arith::ConstantIntOp::create(b, b.getI32Type(),
                                            info.dynamicSharedMemory);
  gpu::LaunchFuncOp::create(b, kernel, gridDim, blockDim, smem, operands);
}

namespace {
/// The pass options that select kernel variants.
struct KernelOptions {
  bool tensorCores = true, deterministic = false, wgmma = false;
  int64_t sm = 0;
};
} // namespace

static GpuKernelSpec specOf(Operation *op, MaskSpec mask, bool softcap,
                            const KernelOptions &opts) {
  GpuKernelSpec spec;
  spec.tensorCores = opts.tensorCores;
  spec.deterministic = opts.deterministic;
  spec.wgmma = opts.wgmma;
  spec.smVersion = opts.sm;
  auto q = cast<MemRefType>(op->getOperand(0).getType());
  auto v = cast<MemRefType>(op->getOperand(2).getType());
  spec.elementType = q.getElementType();
  spec.headDim = q.getDimSize(q.getRank() - 1);
  spec.headDimV = v.getDimSize(v.getRank() - 1);
  if (auto fwd = dyn_cast<AttentionOp>(op)) {
    spec.varlen = fwd.isVarlen();
    spec.alibi = bool(fwd.getAlibiSlopes());
    spec.rotary = bool(fwd.getRotaryCos());
  } else if (auto bwd = dyn_cast<AttentionBackwardOp>(op)) {
    spec.varlen = bwd.isVarlen();
    spec.alibi = bool(bwd.getAlibiSlopes());
    spec.rotary = bool(bwd.getRotaryCos());
  }
  spec.masked = mask.isMasked();
  spec.softcap = softcap;
  return spec;
}

/// Entry-point validation: every kernel `op` launches must fit the shared
/// memory of the target (the pass has no chip: the largest any target
/// allows; fa-compile checks each bundle target's own limit).
static LogicalResult checkKernelLimits(Operation *op,
                                       ArrayRef<GpuKernelKind> kinds,
                                       const GpuKernelSpec &spec) {
  const int64_t limit = gpuSmemLimit(spec.smVersion);
  for (GpuKernelKind kind : kinds) {
    if (std::string why = rotaryUnsupported(kind, spec); !why.empty())
      return op->emitOpError() << "convert-attn-to-gpu: " << why
                               << " (attn-tile-forward / attn-tile-backward "
                                  "lower RoPE on the CPU)";
    GpuKernelInfo info = getGpuKernelInfo(kind, spec);
    if (info.dynamicSharedMemory > limit)
      return op->emitOpError()
             << "convert-attn-to-gpu: kernel " << info.entry << " for head dims "
             << spec.headDim << " / " << spec.headDimV << " needs "
             << info.dynamicSharedMemory
             << " bytes of dynamic shared memory; a block may have at most "
             << limit;
  }
  return success();
}

/// Sizes, scale, softcap and mask bounds shared by every launch.
template <typename OpTy>
static void addScalars(Codegen &cg, OpTy op, Value q, Value k, Value v,
                       HostArgs &host) {
  ImplicitLocOpBuilder &b = cg.builder();
  AttnShape sh = getShape(cg, q, k, v);
  host.values["batch"] = sh.B;
  host.values["heads"] = sh.Hq;
  host.values["kv_heads"] = sh.Hkv;
  host.values["seqlen_q"] = sh.Nq;
  host.values["seqlen_k"] = sh.Nk;
  if (op.isVarlen()) {
    // The sequences, and their max lengths for the grid.
    host.values["batch"] =
        cg.sub(cg.dim(op.getCuSeqlensQ(), 0), cg.idx(1));
    host.values["seqlen_q"] = op.getMaxSeqlenQ();
    host.values["seqlen_k"] = op.getMaxSeqlenK();
    host.addTensor(cg, "cu_seqlens_q", op.getCuSeqlensQ());
    host.addTensor(cg, "cu_seqlens_k", op.getCuSeqlensK());
  }
  host.values["scale"] = cg.f32(op.getScaleValue());
  double softcap = 0.0;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  host.values["softcap"] = cg.f32(softcap);
  MaskSpec mask = op.getMaskSpec();
  host.values["window_left"] = cg.idx(mask.left);
  host.values["window_right"] = cg.idx(mask.right);
  (void)b;
}

/// The kernel spec of `op` and the launch arguments both directions share:
/// sizes, scalars, q, k, v, o. The variable-length form's packed [T, H, D]
/// operands are passed as batch-1 views [1, H, T, D] (packedAsDense: their
/// head and row strides; the batch stride is unused).
template <typename OpTy>
static GpuKernelSpec addCommonArgs(Codegen &cg, OpTy op,
                                   const KernelOptions &opts, HostArgs &host) {
  GpuKernelSpec spec =
      specOf(op, op.getMaskSpec(), bool(op.getSoftcap()), opts);
  auto view = [&](Value x) {
    return op.isVarlen() ? packedAsDense(cg, x) : x;
  };
  Value q = view(op.getQuery()), k = view(op.getKey()),
        v = view(op.getValue());
  addScalars(cg, op, q, k, v, host);
  host.addTensor(cg, "q", q);
  host.addTensor(cg, "k", k);
  host.addTensor(cg, "v", v);
  host.addTensor(cg, "o", view(op.getOutput()));
  return spec;
}

/// The score modifications the GPU kernels have: attention sinks (an
/// optional buffer of attn_fwd / attn_fwd_combine / attn_bwd_pre) and ALiBi
/// (the alibi kernel variant, KernelAbi.h). RoPE and user regions are
/// errors naming them; so are ALiBi slopes whose head dimension is not
/// contiguous (the kernels read slope (b, h) at b * alibi_stride_b + h).
template <typename OpT>
static LogicalResult checkGpuScoreMods(OpT op) {
  StringRef what = !op.getScoreMod().empty() ? "a score_mod region"
                   : !op.getMaskMod().empty()  ? "a mask_mod region"
                                               : "";
  if (!what.empty())
    return op->emitOpError()
           << "with " << what
           << " is not supported by convert-attn-to-gpu yet (the GPU kernels "
              "have attention sinks, ALiBi and RoPE; attn-tile-forward, "
              "attn-tile-backward and attn-lower-unfused lower it on the CPU)";
  if (Value cos = op.getRotaryCos()) {
    auto ct = cast<MemRefType>(cos.getType()),
         st = cast<MemRefType>(op.getRotarySin().getType());
    SmallVector<int64_t> cs, ss;
    int64_t co, so;
    int64_t R = 2 * ct.getDimSize(1);
    if (failed(ct.getStridesAndOffset(cs, co)) ||
        failed(st.getStridesAndOffset(ss, so)) || cs.back() != 1 ||
        cs != ss)
      return op->emitOpError()
             << "convert-attn-to-gpu: rotary tables " << ct << " and " << st
             << " must have the same strides, unit along the rotary dims";
    if (R % 16 != 0)
      return op->emitOpError()
             << "convert-attn-to-gpu: the rotary dim " << R
             << " must be a multiple of 16 (the GPU kernels rotate 8-element "
                "chunks with their partners R/2 apart)";
  }
  auto type = op.getAlibiSlopes()
                  ? dyn_cast<MemRefType>(op.getAlibiSlopes().getType())
                  : MemRefType();
  if (type) {
    SmallVector<int64_t> strides;
    int64_t offset;
    if (failed(type.getStridesAndOffset(strides, offset)) ||
        strides.back() != 1)
      return op->emitOpError()
             << "convert-attn-to-gpu: alibi_slopes " << type
             << " must have a unit stride over its heads";
  }
  return success();
}

/// `alibi_slopes` and `alibi_stride_b` (0 for one slope per head [Hq]) for
/// an op with ALiBi.
static void addAlibiArgs(Codegen &cg, HostArgs &host, Value slopes) {
  if (!slopes)
    return;
  host.addTensor(cg, "alibi_slopes", slopes);
  host.values["alibi_stride_b"] =
      cast<MemRefType>(slopes.getType()).getRank() == 2
          ? host.values["alibi_slopes_stride_b"]
          : cg.idx(0);
}

/// The rotary tables, their row stride, the rotary dim and the convention
/// for an op with RoPE (Variant::rotary).
template <typename OpT>
static void addRotaryArgs(Codegen &cg, HostArgs &host, OpT op) {
  Value cos = op.getRotaryCos();
  if (!cos)
    return;
  host.addTensor(cg, "rotary_cos", cos);
  host.addTensor(cg, "rotary_sin", op.getRotarySin());
  host.values["rotary_stride"] = host.values["rotary_cos_stride_b"];
  host.values["rotary_dim"] =
      cg.idx(2 * cast<MemRefType>(cos.getType()).getDimSize(1));
  host.values["rotary_interleaved"] = cg.idx(op.getRotaryInterleaved() ? 1 : 0);
}

/// `sinks` (and `dsinks`) as the kernels take them: the op's f32 [Hq]
/// buffer, or an empty one (no sinks).
static void addSinkArgs(Codegen &cg, HostArgs &host, Value sinks,
                        Value dsinks) {
  ImplicitLocOpBuilder &b = cg.builder();
  Value none;
  if (!sinks || !dsinks)
    none = memref::AllocaOp::create(
        b, MemRefType::get({0}, b.getF32Type()));
  host.addTensor(cg, "sinks", sinks ? sinks : none);
  host.addTensor(cg, "dsinks", dsinks ? dsinks : none);
}

static LogicalResult convertForward(RewriterBase &rewriter, AttentionOp op,
                                    KernelOptions opts) {
  if (failed(checkGpuScoreMods(op)) ||
      failed(checkLowerable(op, "convert-attn-to-gpu",
                            /*varlenSupported=*/true, false,
                            /*scoreModsSupported=*/true)))
    return failure();
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  ModuleOp top = op->getParentOfType<ModuleOp>();
  HostArgs host;
  opts.deterministic = false;
  if (failed(checkKernelLimits(
          op, {GpuKernelKind::Fwd},
          specOf(op, op.getMaskSpec(), bool(op.getSoftcap()), opts))))
    return failure();
  GpuKernelSpec spec = addCommonArgs(cg, op, opts, host);
  Value lse = op.getLse(), tmp;
  if (!lse) {
    // The kernel always writes lse; without one, into a temporary ([B, Hq,
    // Nq]; varlen: [Hq, Tq]).
    SmallVector<Value> sizes;
    if (op.isVarlen())
      sizes = {cg.dim(op.getQuery(), 1), cg.dim(op.getQuery(), 0)};
    else
      sizes = {cg.dim(op.getQuery(), 0), cg.dim(op.getQuery(), 1),
               cg.dim(op.getQuery(), 2)};
    SmallVector<int64_t> shape(sizes.size(), ShapedType::kDynamic);
    auto t = MemRefType::get(shape, b.getF32Type());
    tmp = gpu::AllocOp::create(b, t, Type(), ValueRange{}, sizes, ValueRange{})
              .getMemref();
    lse = tmp;
  }
  if (op.isVarlen())
    lse = packedAsDense(cg, lse);
  host.addTensor(cg, "lse", lse);
  addSinkArgs(cg, host, op.getSinks(), Value());
  addAlibiArgs(cg, host, op.getAlibiSlopes());
  addRotaryArgs(cg, host, op);
  launch(cg, top, GpuKernelKind::Fwd, spec, host);
  if (tmp)
    gpu::DeallocOp::create(b, Type(), ValueRange{}, tmp);
  rewriter.eraseOp(op);
  return success();
}

static LogicalResult convertBackward(RewriterBase &rewriter,
                                     AttentionBackwardOp op,
                                     const KernelOptions &opts) {
  if (failed(checkGpuScoreMods(op)) ||
      failed(checkLowerable(op, "convert-attn-to-gpu",
                            /*varlenSupported=*/true, false,
                            /*scoreModsSupported=*/true)))
    return failure();
  if (op.isVarlen() && (opts.deterministic || op.getGradSinks()))
    return op->emitOpError()
           << "convert-attn-to-gpu: the variable-length backward has no "
           << (opts.deterministic ? "deterministic form" : "grad_sinks")
           << " on the GPU yet (attn-tile-backward lowers it on the CPU)";
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  ModuleOp top = op->getParentOfType<ModuleOp>();
  HostArgs host;
  if (failed(checkKernelLimits(
          op,
          {GpuKernelKind::BwdPre, GpuKernelKind::BwdMain,
           GpuKernelKind::BwdPost},
          specOf(op, op.getMaskSpec(), bool(op.getSoftcap()), opts))))
    return failure();
  GpuKernelSpec spec = addCommonArgs(cg, op, opts, host);
  const bool deterministic = opts.deterministic;
  auto view = [&](Value x) {
    return op.isVarlen() ? packedAsDense(cg, x) : x;
  };
  host.addTensor(cg, "do", view(op.getGradOutput()));
  host.addTensor(cg, "lse", view(op.getLse()));
  host.addTensor(cg, "dq", view(op.getGradQuery()));
  host.addTensor(cg, "dk", view(op.getGradKey()));
  host.addTensor(cg, "dv", view(op.getGradValue()));
  Value B = host.values["batch"], Hq = host.values["heads"],
        Nq = host.values["seqlen_q"];
  Value D = cg.idx(spec.headDim);
  Value dr, dq;
  if (op.isVarlen()) {
    // Packed like lse (KernelAbi.h: dr_ws [Hq, Tq], dqacc_ws [Hq, Tq + 15
    // B, D], sequence b's dqacc rows 15 b further down).
    Value Tq = cg.dim(op.getQuery(), 0);
    host.values["total_q"] = Tq;
    dr = host.addWorkspace(cg, "dr_ws", {Hq, Tq});
    dq = host.addWorkspace(cg, "dqacc_ws",
                           {Hq, cg.add(Tq, cg.mul(B, cg.idx(15))), D});
  } else {
    dr = host.addWorkspace(cg, "dr_ws", {B, Hq, Nq});
    // dqacc has Nq rounded up to 16 rows per head (the tensor-core kernels
    // keep 16-row groups in mma fragment order: mma::fragmentOrderDqAcc).
    // Deterministic: dQ is computed by BackwardPost itself (no
    // accumulator).
    if (!deterministic) {
      Value Nq16 = cg.mul(cg.ceilDiv(Nq, cg.idx(16)), cg.idx(16));
      dq = host.addWorkspace(cg, "dqacc_ws", {B, Hq, Nq16, D});
    }
  }
  Value dsinks = op.getSinks() ? op.getGradSinks() : Value();
  addSinkArgs(cg, host, op.getSinks(), dsinks);
  addAlibiArgs(cg, host, op.getAlibiSlopes());
  addRotaryArgs(cg, host, op);
  host.values["sinks_pass"] = cg.idx(0);
  launch(cg, top, GpuKernelKind::BwdPre, spec, host);
  launch(cg, top, GpuKernelKind::BwdMain, spec, host);
  launch(cg, top, GpuKernelKind::BwdPost, spec, host);
  if (dsinks) { // grad_sinks: attn_bwd_pre's second pass (KernelAbi.h)
    host.values["sinks_pass"] = cg.idx(1);
    launch(cg, top, GpuKernelKind::BwdPre, spec, host);
  }
  gpu::DeallocOp::create(b, Type(), ValueRange{}, dr);
  if (dq)
    gpu::DeallocOp::create(b, Type(), ValueRange{}, dq);
  rewriter.eraseOp(op);
  return success();
}

namespace {
struct ConvertAttnToGPUPass final
    : mlir::attn::impl::ConvertAttnToGPUPassBase<ConvertAttnToGPUPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp top = getOperation();
    SmallVector<Operation *> ops;
    top.walk([&](Operation *op) {
      if (isa<AttentionOp, AttentionBackwardOp>(op))
        ops.push_back(op);
    });
    if (ops.empty())
      return;
    top->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                 UnitAttr::get(&getContext()));
    IRRewriter rewriter(&getContext());
    int n = 0;
    const flashmlir::limits::GpuTarget *targets =
        flashmlir::limits::gpuTargets(&n);
    if (sm != 0 && std::none_of(targets, targets + n, [&](const auto &t) {
          return t.sm == sm;
        })) {
      getOperation()->emitError()
          << "convert-attn-to-gpu: sm = " << static_cast<int64_t>(sm)
          << " is not a target FlashMLIR emits kernels for (0 = unknown, or "
             "the compute capability of one of "
          << flashmlir::limits::gpuTargetList() << ")";
      return signalPassFailure();
    }
    KernelOptions opts{tensorCores, deterministic, wgmma,
                       static_cast<int64_t>(sm)};
    for (Operation *op : ops) {
      LogicalResult r =
          isa<AttentionOp>(op)
              ? convertForward(rewriter, cast<AttentionOp>(op), opts)
              : convertBackward(rewriter, cast<AttentionBackwardOp>(op),
                                opts);
      if (failed(r))
        return signalPassFailure();
    }
  }
};
} // namespace
