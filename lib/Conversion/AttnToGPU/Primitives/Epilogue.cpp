//===- Epilogue.cpp - the forward's output rows ---------------------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Epilogue.h"
#include "MmaSync.h"
#include "OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;

namespace {
/// The row's softmax normaliser from the quad's partial sums: l, whether
/// the row saw a key (l > 0), and 1 / l (0 for a row without keys).
struct RowSum {
  Value l, any, inv;
};
} // namespace

static RowSum rowSum(KernelBuilder &k, Value lPart) {
  attn::detail::Codegen &cg = k.cg;
  RowSum r;
  r.l = softmax::quadReduce(k, lPart, /*isMax=*/false);
  r.any = cg.fcmp(arith::CmpFPredicate::OGT, r.l, cg.f32(0.0));
  r.inv = cg.select(r.any, cg.fdiv(cg.f32(1.0), r.l), cg.f32(0.0));
  return r;
}

/// The row's natural-log log-sum-exp from its log2 maximum m (-inf for a
/// row without keys).
static Value rowLse(KernelBuilder &k, Value m, const RowSum &r) {
  attn::detail::Codegen &cg = k.cg;
  return cg.select(r.any, cg.fmul(cg.fadd(m, cg.log2(r.l)), cg.f32(kLn2)),
                   cg.negInf());
}

void epilogue::forwardRow(KernelBuilder &k, Value m, Value lPart,
                          ArrayRef<Value> acc, int64_t OT,
                          function_ref<Value()> rowOf, Value qRow, Value t,
                          Value os, Value bi, Value h, Value nq, Value sink) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const RowSum sum = rowSum(k, lPart);
  Value inv = sum.inv;
  if (sink) {
    // The sink joins the finished row: O = acc / (l + exp2(sink - m)) (0
    // where that is inf: a row without keys, or a sink that outweighs them
    // all); lse below, in the lane that stores it.
    Value lAll = cg.fadd(sum.l, cg.exp2(cg.fsub(sink, m)));
    inv = cg.select(cg.fcmp(arith::CmpFPredicate::OGT, lAll, cg.f32(0.0)),
                    cg.fdiv(cg.f32(1.0), lAll), cg.f32(0.0));
  }
  Value row = rowOf();
  for (int64_t n = 0; n < OT; ++n) {
    Value col = cg.add(cg.idx(8 * n), cg.mul(t, cg.idx(2)));
    Value pair =
        mma::pack(k, cg.fmul(acc[4 * n], inv), cg.fmul(acc[4 * n + 1], inv));
    vector::StoreOp::create(b, pair, os, ValueRange{row, col}).setAlignment(4);
  }
  auto inRange = scf::IfOp::create(
      b,
      cg.andI(cg.cmp(arith::CmpIPredicate::slt, qRow, nq),
              cg.cmp(arith::CmpIPredicate::eq, t, cg.idx(0))),
      false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(inRange.thenBlock()->getTerminator());
  Value lse;
  if (sink) {
    softmax::Merged mg = softmax::withSink(k, m, sum.l, sink);
    RowSum merged = sum;
    merged.l = mg.l;
    merged.any = cg.fcmp(arith::CmpFPredicate::OGT, mg.l, cg.f32(0.0));
    lse = rowLse(k, mg.m, merged);
  } else {
    lse = rowLse(k, m, sum);
  }
  memref::StoreOp::create(b, lse, k.arg("lse"),
                          ValueRange{k.atLse(bi, h, qRow)});
}

void epilogue::partialRow(KernelBuilder &k, Value m, Value lPart,
                          ArrayRef<Value> acc, int64_t OT, int64_t realDv,
                          Value t, Value valid, Value oRow, Value lseAt) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const RowSum sum = rowSum(k, lPart);
  Value inv = sum.inv;
  auto rowIf = scf::IfOp::create(b, valid, false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(rowIf.thenBlock()->getTerminator());
  Value oacc = k.arg("oacc_ws");
  auto v2 = VectorType::get({2}, b.getF32Type());
  for (int64_t n = 0; n < OT && 8 * n < realDv; ++n) {
    Value col = cg.add(cg.idx(8 * n), cg.mul(t, cg.idx(2)));
    Value pair = vector::FromElementsOp::create(
        b, v2, ValueRange{cg.fmul(acc[4 * n], inv), cg.fmul(acc[4 * n + 1], inv)});
    vector::StoreOp::create(b, pair, oacc, ValueRange{cg.add(oRow, col)})
        .setAlignment(8);
  }
  auto lane0 = scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, t, cg.idx(0)),
                                 false);
  b.setInsertionPoint(lane0.thenBlock()->getTerminator());
  Value lse = rowLse(k, m, sum);
  memref::StoreOp::create(b, lse, k.arg("lseacc_ws"), ValueRange{lseAt});
}

void epilogue::withSinkOrNot(KernelBuilder &k, Value h,
                             function_ref<void(Value sink)> rows) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Value sinks = k.arg("sinks");
  Value has = cg.cmp(arith::CmpIPredicate::ne,
                     memref::DimOp::create(b, sinks, 0), cg.idx(0));
  auto ifOp = scf::IfOp::create(b, has, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  Value x = memref::LoadOp::create(b, sinks, ValueRange{h});
  rows(cg.fmul(x, cg.f32(kLog2e)));
  b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  rows(Value());
}
