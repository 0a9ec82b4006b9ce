//===- Score.cpp - the score function of the tensor-core kernels ----------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Score.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::attn;

/// One f32 PTX instruction `op` on `x` (no side effects: LLVM may move or
/// merge it like arithmetic).
static Value ptxUnary(KernelBuilder &k, StringRef op, Value x) {
  return LLVM::InlineAsmOp::create(
             k.b, k.b.getF32Type(), ValueRange{x}, (op + " $0, $1;").str(),
             "=f,f", /*has_side_effects=*/false, /*is_align_stack=*/false,
             LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
             ArrayAttr())
      .getResult(0);
}

Value score::tanh(KernelBuilder &k, Value x, bool fast, Value *sech2Out) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  if (fast) {
    Value t = ptxUnary(k, "tanh.approx.f32", x);
    if (sech2Out) // 1 - t^2
      *sech2Out = LLVM::FMAOp::create(b, arith::NegFOp::create(b, t), t,
                                      cg.f32(1.0));
    return t;
  }
  Value ax = math::AbsFOp::create(b, x);
  Value e = ptxUnary(k, "ex2.approx.ftz.f32",
                     cg.fmul(ax, cg.f32(-2.0 * kLog2e)));
  Value r = ptxUnary(k, "rcp.approx.ftz.f32", cg.fadd(e, cg.f32(1.0)));
  Value mag = cg.fmul(cg.fsub(cg.f32(1.0), e), r);
  Value t = math::CopySignOp::create(b, mag, x);
  if (sech2Out) // 4 e r^2
    *sech2Out = cg.fmul(cg.fmul(cg.f32(4.0), e), cg.fmul(r, r));
  return t;
}

Value score::softcap(KernelBuilder &k, Value x, Value capMul, bool fast,
                     Value *sech2Out) {
  return tanh(k, k.cg.fmul(x, capMul), fast, sech2Out);
}

Value score::alibiWeight(KernelBuilder &k, Value bi, Value h, Value unit) {
  attn::detail::Codegen &cg = k.cg;
  Value at = cg.add(cg.mul(bi, k.arg("alibi_stride_b")), h);
  return cg.fmul(
      memref::LoadOp::create(k.b, k.arg("alibi_slopes"), ValueRange{at}),
      unit);
}

Value score::alibiDist(KernelBuilder &k, Value key, Value query, Value off) {
  attn::detail::Codegen &cg = k.cg;
  Value d = cg.sub(key, cg.add(query, off));
  Value d32 = arith::IndexCastOp::create(k.b, k.b.getI32Type(), d);
  return arith::SIToFPOp::create(k.b, k.b.getF32Type(), d32);
}

Value score::alibi(KernelBuilder &k, Value x, Value w, Value dist,
                   int64_t c) {
  ImplicitLocOpBuilder &b = k.b;
  Value d = c ? k.cg.fadd(dist, k.cg.f32(double(c))) : dist;
  // abs.f32 itself: convert-gpu-to-nvvm makes math.absf a libdevice call,
  // unresolved in a bundle built without a CUDA toolkit (and llvm.fabs is
  // illegal there).
  return LLVM::FMAOp::create(b, arith::NegFOp::create(b, w),
                             ptxUnary(k, "abs.f32", d), x);
}
