//===- OnlineSoftmax.cpp - online softmax on accumulator rows -------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;

Value softmax::quadReduce(KernelBuilder &k, Value x, bool isMax) {
  for (int64_t off : {1, 2}) {
    Value y = gpu::ShuffleOp::create(k.b, x, k.i32(off), k.i32(kWarp),
                                     gpu::ShuffleMode::XOR)
                  .getShuffleResult();
    x = isMax ? k.cg.fmax(x, y) : k.cg.fadd(x, y);
  }
  return x;
}

softmax::Row softmax::update(KernelBuilder &k, ArrayRef<Value> x, Value m,
                             Value l, Value scale2) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Row out;
  Value mx;
  for (Value v : x)
    mx = mx ? cg.fmax(mx, v) : v;
  mx = cg.fmul(quadReduce(k, mx, /*isMax=*/true), scale2);
  out.m = cg.fmax(m, mx);
  Value mUse =
      cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, out.m, cg.negInf()),
                cg.f32(0.0), out.m);
  out.alpha = cg.exp2(cg.fsub(m, mUse));
  Value negM = arith::NegFOp::create(b, mUse);
  Value sum = cg.f32(0.0);
  for (Value v : x) {
    out.p.push_back(cg.exp2(LLVM::FMAOp::create(b, v, scale2, negM)));
    sum = cg.fadd(sum, out.p.back());
  }
  out.l = LLVM::FMAOp::create(b, l, out.alpha, sum);
  return out;
}

Value softmax::sinkLog2(KernelBuilder &k, Value h) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Value sinks = k.arg("sinks");
  Value has = cg.cmp(arith::CmpIPredicate::ne,
                     memref::DimOp::create(b, sinks, 0), cg.idx(0));
  auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type()}, has, true);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  Value x = memref::LoadOp::create(b, sinks, ValueRange{h});
  scf::YieldOp::create(b, ValueRange{cg.fmul(x, cg.f32(kLog2e))});
  b.setInsertionPointToStart(ifOp.elseBlock());
  scf::YieldOp::create(b, ValueRange{cg.negInf()});
  return ifOp.getResult(0);
}

softmax::Merged softmax::withSink(KernelBuilder &k, Value m, Value l,
                                  Value s) {
  attn::detail::Codegen &cg = k.cg;
  Merged out;
  out.m = cg.fmax(m, s);
  Value mUse =
      cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, out.m, cg.negInf()),
                cg.f32(0.0), out.m);
  out.alpha = cg.exp2(cg.fsub(m, mUse));
  out.l = LLVM::FMAOp::create(k.b, l, out.alpha, cg.exp2(cg.fsub(s, mUse)));
  return out;
}
