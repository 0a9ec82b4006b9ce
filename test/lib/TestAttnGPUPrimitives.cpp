//===- TestAttnGPUPrimitives.cpp - test-attn-gpu-primitives -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// A test pass that runs each GPU code-generator primitive
// (lib/Conversion/AttnToGPU/Primitives) on its own, so that lit can check
// what each one emits: one function per primitive in the module, with
// constant inputs where the primitive's arithmetic can fold (the swizzle and
// the mask: test/Conversion/gpu-primitives.mlir checks the folded values
// against hand-computed ones) and the emitted ops elsewhere.
//
//===----------------------------------------------------------------------===//

#include "../../lib/Conversion/AttnToGPU/Primitives/Epilogue.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/KernelBuilder.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/Mask.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/MmaSync.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/OnlineSoftmax.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/Score.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/SharedTile.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/TileCopy.h"
#include "../../lib/Conversion/AttnToGPU/Primitives/Wgmma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;
using namespace mlir::attn;

namespace {
struct TestAttnGPUPrimitivesPass final
    : PassWrapper<TestAttnGPUPrimitivesPass, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestAttnGPUPrimitivesPass)
  StringRef getArgument() const override { return "test-attn-gpu-primitives"; }
  StringRef getDescription() const override {
    return "Emit each GPU code-generator primitive on its own (tests)";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<arith::ArithDialect, func::FuncDialect, gpu::GPUDialect,
                    LLVM::LLVMDialect, NVVM::NVVMDialect, nvgpu::NVGPUDialect,
                    memref::MemRefDialect, scf::SCFDialect,
                    vector::VectorDialect, math::MathDialect>();
  }

  /// A gpu.func `name` in module `gm` with the given arguments (the ABI
  /// names of `args`, all of them index / f32 / buffers as `types`), its
  /// builder, and a KernelBuilder on it.
  struct Fn {
    gpu::GPUFuncOp func;
    GpuKernelInfo info;
    GpuKernelSpec spec;
  };
  Fn makeFunc(OpBuilder &top, gpu::GPUModuleOp gm, StringRef name,
              ArrayRef<std::pair<StringRef, Type>> args, Type et) {
    Fn f;
    SmallVector<Type> types;
    for (auto [n, t] : args) {
      f.info.args.push_back({n.str(), "i64"});
      types.push_back(t);
    }
    OpBuilder::InsertionGuard g(top);
    top.setInsertionPointToEnd(gm.getBody());
    f.func = gpu::GPUFuncOp::create(top, gm.getLoc(), name,
                                    top.getFunctionType(types, {}));
    f.spec.elementType = et;
    f.spec.headDim = f.spec.headDimV = 64;
    return f;
  }

  void runOnOperation() override {
    ModuleOp m = getOperation();
    MLIRContext *ctx = &getContext();
    OpBuilder top(ctx);
    top.setInsertionPointToEnd(m.getBody());
    m->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
               UnitAttr::get(ctx));
    auto gm = gpu::GPUModuleOp::create(top, m.getLoc(), "primitives");
    Type bf16 = top.getBF16Type(), f16 = top.getF16Type(),
         f32 = top.getF32Type(), idx = top.getIndexType();
    Attribute wg = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    auto smemT = [&](ArrayRef<int64_t> shape, Type et) {
      return MemRefType::get(shape, et, MemRefLayoutAttrInterface(), wg);
    };
    auto idxOut = MemRefType::get({32}, idx);
    auto f32Out = MemRefType::get({32}, f32);
    auto store = [&](ImplicitLocOpBuilder &b, ArrayRef<Value> vals, Value out) {
      for (auto [i, v] : llvm::enumerate(vals))
        memref::StoreOp::create(
            b, v, out, ValueRange{arith::ConstantIndexOp::create(b, i)});
    };

    // SharedTile: tile::indices of constant (row, col) in a 2-D swizzled
    // [16][128], a padded [16][72] and a 3-D [2][16][64] tile.
    {
      Fn f = makeFunc(top, gm, "swizzle",
                      {{"sw", smemT({16, 128}, bf16)},
                       {"pad", smemT({16, 72}, bf16)},
                       {"blk", smemT({2, 16, 64}, bf16)},
                       {"out", idxOut}},
                      bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      SmallVector<Value> r;
      const std::pair<int64_t, int64_t> pts[] = {{0, 0}, {1, 0}, {3, 16},
                                                  {9, 72}, {7, 120}};
      for (auto [row, col] : pts)
        r.append(tile::indices(k, f.func.getArgument(0), k.cg.idx(row),
                               k.cg.idx(col)));
      r.append(tile::indices(k, f.func.getArgument(1), k.cg.idx(9),
                             k.cg.idx(72)));
      r.append(tile::indices(k, f.func.getArgument(2), k.cg.idx(5),
                             k.cg.idx(72)));
      store(b, r, f.func.getArgument(3));
      gpu::ReturnOp::create(b);
    }

    // Mask: one fragment row (query 10, keys from colBase 8, Nk - 1 - 8 =
    // 20 left) under a causal mask (wl = -1, wr = 0, off = Nk - Nq = 4):
    // visible columns c <= 10 + 4 - 8 = 6; then the same row with a window
    // of 3 on the left (c >= 3). The elements fold to x or -inf.
    {
      Fn f = makeFunc(top, gm, "mask", {{"x", f32}, {"out", f32Out}}, bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      attn::detail::Codegen &cg = k.cg;
      Value x = f.func.getArgument(0);
      SmallVector<Value> r;
      mask::RowBounds causal = mask::rowBounds(
          k, cg.idx(10), cg.idx(8), cg.idx(20), cg.idx(4), cg.idx(-1),
          cg.idx(0));
      for (int64_t c : {0, 6, 7, 21})
        r.push_back(mask::element(k, causal, c, x, /*negInf=*/true));
      mask::RowBounds window = mask::rowBounds(
          k, cg.idx(10), cg.idx(8), cg.idx(20), cg.idx(4), cg.idx(3),
          cg.idx(0));
      for (int64_t c : {2, 3, 6, 7})
        r.push_back(mask::element(k, window, c, x, /*negInf=*/false));
      // Unmasked: only keys < Nk (lastCol = 20).
      mask::RowBounds len = mask::rowBounds(k, cg.idx(10), cg.idx(8),
                                            cg.idx(20), cg.idx(4), Value(),
                                            Value());
      for (int64_t c : {20, 21})
        r.push_back(mask::element(k, len, c, x, /*negInf=*/true));
      store(b, r, f.func.getArgument(1));
      gpu::ReturnOp::create(b);
    }

    // Score: softcap with tanh.approx and with ex2 + rcp (and 1 - t^2).
    for (bool fast : {true, false}) {
      Fn f = makeFunc(top, gm, fast ? "softcap_fast" : "softcap_precise",
                      {{"x", f32}, {"mul", f32}, {"out", f32Out}}, bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      Value d;
      Value t = score::softcap(k, f.func.getArgument(0),
                               f.func.getArgument(1), fast, &d);
      store(b, {t, d}, f.func.getArgument(2));
      gpu::ReturnOp::create(b);
    }

    // TileCopy: a 64 x 96 tile whose columns 80..95 are padding, by
    // cp.async over 128 threads (12 chunks per row: 16 slots per row, the
    // last 4 idle; chunk 10 and 11 zero-filled), from buffer "k".
    {
      auto bufT = MemRefType::get(
          {ShapedType::kDynamic}, bf16,
          StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1}));
      Fn f = makeFunc(top, gm, "copy",
                      {{"k", bufT}, {"k_stride_b", idx}, {"k_stride_h", idx},
                       {"k_stride_n", idx}, {"row0", idx}, {"limit", idx},
                       {"tile", smemT({64, 104}, bf16)}},
                      bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      Value c0 = k.cg.idx(0);
      (void)copy::stageTileAsync(k, "k", c0, c0, f.func.getArgument(4),
                                 f.func.getArgument(5), 64, 96,
                                 f.func.getArgument(6), k.tid(),
                                 /*rowStep=*/false, /*validCols=*/80);
      gpu::ReturnOp::create(b);
    }

    // MmaSync: one m16n8k16 per element type.
    for (Type et : {f16, bf16}) {
      Fn f = makeFunc(top, gm, et.isF16() ? "mma_f16" : "mma_bf16",
                      {{"a", VectorType::get({2}, et)},
                       {"c", f32},
                       {"out", f32Out}},
                      et);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      Value a = f.func.getArgument(0), c = f.func.getArgument(1);
      SmallVector<Value> d = mma::mma(k, {a, a, a, a}, {a, a}, {c, c, c, c});
      store(b, d, f.func.getArgument(2));
      gpu::ReturnOp::create(b);
    }

    // OnlineSoftmax: one row of two elements against m = -inf, l = 0.
    {
      Fn f = makeFunc(top, gm, "softmax",
                      {{"x0", f32}, {"x1", f32}, {"scale2", f32},
                       {"out", f32Out}},
                      bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      softmax::Row row = softmax::update(
          k, {f.func.getArgument(0), f.func.getArgument(1)}, k.cg.negInf(),
          k.cg.f32(0.0), f.func.getArgument(2));
      store(b, {row.m, row.l, row.alpha, row.p[0], row.p[1]},
            f.func.getArgument(3));
      gpu::ReturnOp::create(b);
    }

    // Wgmma: one commit group of m64n64k16 (A and B from descriptors) and
    // its wait.
    {
      Fn f = makeFunc(top, gm, "wgmma",
                      {{"da", top.getI64Type()}, {"db", top.getI64Type()},
                       {"out", f32Out}},
                      bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      wgmma::WgmmaEmitter w{b, "bf16"};
      Value da = f.func.getArgument(0), db = f.func.getArgument(1);
      SmallVector<Value> acc = w.issue({{64, {}, {da}, {}, {db}, false}});
      acc = w.wait(0, acc);
      store(b, {acc[0]}, f.func.getArgument(2));
      gpu::ReturnOp::create(b);
    }

    // Epilogue: one fragment row's O (two n8 tiles) and lse.
    {
      auto lseT = MemRefType::get(
          {ShapedType::kDynamic}, f32,
          StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1}));
      Fn f = makeFunc(top, gm, "epilogue",
                      {{"lse", lseT}, {"lse_stride_b", idx},
                       {"lse_stride_h", idx}, {"m", f32}, {"l", f32},
                       {"acc", f32}, {"os", smemT({16, 24}, bf16)}},
                      bf16);
      ImplicitLocOpBuilder b(m.getLoc(), top);
      b.setInsertionPointToStart(&f.func.getBody().front());
      KernelBuilder k(b, f.func, f.info, f.spec, 128);
      Value acc = f.func.getArgument(5), c0 = k.cg.idx(0);
      epilogue::forwardRow(
          k, f.func.getArgument(3), f.func.getArgument(4),
          {acc, acc, acc, acc, acc, acc, acc, acc}, 2, [&] { return c0; }, c0,
          c0, f.func.getArgument(6), c0, c0, k.cg.idx(1), Value());
      gpu::ReturnOp::create(b);
    }
  }
};
} // namespace

namespace flashmlir {
namespace test {
void registerTestAttnGPUPrimitivesPass() {
  PassRegistration<TestAttnGPUPrimitivesPass>();
}
} // namespace test
} // namespace flashmlir
