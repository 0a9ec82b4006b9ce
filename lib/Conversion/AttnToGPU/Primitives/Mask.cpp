//===- Mask.cpp - causal / window / length masks on fragments ------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Mask.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::attn;

mask::RowBounds mask::rowBounds(KernelBuilder &k, Value qRow, Value colBase,
                                Value lastCol, Value off, Value wl, Value wr) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Type i32 = b.getI32Type();
  auto toI32 = [&](Value x) {
    return arith::IndexCastOp::create(b, i32, x).getResult();
  };
  RowBounds r{Value(), toI32(lastCol)};
  if (!wl)
    return r;
  Value c0 = cg.idx(0);
  Value diag = cg.sub(cg.add(qRow, off), colBase);
  r.hi = toI32(cg.select(cg.cmp(arith::CmpIPredicate::slt, wr, c0), lastCol,
                         cg.min(lastCol, cg.add(diag, wr))));
  r.lo = toI32(cg.select(cg.cmp(arith::CmpIPredicate::slt, wl, c0),
                         cg.idx(-(int64_t(1) << 30)), cg.sub(diag, wl)));
  return r;
}

Value mask::element(KernelBuilder &k, const RowBounds &bd, int64_t c, Value x,
                    bool negInf) {
  attn::detail::Codegen &cg = k.cg;
  Value ci = k.i32(c);
  Value vis = cg.cmp(arith::CmpIPredicate::sle, ci, bd.hi);
  if (bd.lo)
    vis = cg.andI(vis, cg.cmp(arith::CmpIPredicate::sge, ci, bd.lo));
  return cg.select(vis, x, negInf ? cg.negInf() : cg.f32(0.0));
}

Value mask::tileFullyVisible(KernelBuilder &k, Value k0, Value q0, int64_t M,
                             int64_t N, Value nk, Value off, Value wl,
                             Value wr) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Value full = cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(N)), nk);
  if (!wl)
    return full;
  Value c0 = cg.idx(0);
  Value qEnd = cg.add(q0, cg.idx(M - 1));
  Value leftOk = arith::OrIOp::create(
      b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
      cg.cmp(arith::CmpIPredicate::sge, k0, cg.sub(cg.add(qEnd, off), wl)));
  Value rightOk = arith::OrIOp::create(
      b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
      cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(N - 1)),
             cg.add(cg.add(q0, off), wr)));
  return cg.andI(full, cg.andI(leftOk, rightOk));
}
