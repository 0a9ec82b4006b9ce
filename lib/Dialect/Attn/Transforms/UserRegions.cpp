//===- UserRegions.cpp - score_mod / mask_mod inlining --------------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/UserRegions.h"

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/OwningOpRef.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

namespace {
/// Forward-mode differentiation of the ops of a region with respect to one
/// f32 value: `tangent[v]` is dv/ds for each value v that depends on s
/// (absent: 0).
struct Tangents {
  OpBuilder &b;
  Location loc;
  DenseMap<Value, Value> tangent;

  Value get(Value v) const { return tangent.lookup(v); }
  Value cst(double x) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(x)));
  }
  Value mul(Value a, Value c) { return arith::MulFOp::create(b, loc, a, c); }
  Value add(Value a, Value c) { return arith::AddFOp::create(b, loc, a, c); }
  Value sub(Value a, Value c) { return arith::SubFOp::create(b, loc, a, c); }
  Value div(Value a, Value c) { return arith::DivFOp::create(b, loc, a, c); }
  Value neg(Value a) { return arith::NegFOp::create(b, loc, a); }
  Value sel(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x ? x : cst(0), y ? y : cst(0));
  }
  /// a + c where either may be absent (0).
  Value sum(Value a, Value c) { return !a ? c : !c ? a : add(a, c); }

  /// The tangent of `clone` (the clone of `op`, whose operands are mapped
  /// to `ops`); failure when `op` depends on s and has no rule.
  LogicalResult rule(Operation *op, Operation *clone, ValueRange ops) {
    SmallVector<Value> t;
    bool any = false;
    for (Value v : ops) {
      t.push_back(get(v));
      any |= bool(t.back());
    }
    if (!any || clone->getNumResults() == 0)
      return success(); // independent of s
    Value r = clone->getResult(0);
    Value out;
    if (isa<arith::AddFOp>(op)) {
      out = sum(t[0], t[1]);
    } else if (isa<arith::SubFOp>(op)) {
      out = !t[1] ? t[0] : t[0] ? sub(t[0], t[1]) : neg(t[1]);
    } else if (isa<arith::MulFOp>(op)) { // a' c + a c'
      out = sum(t[0] ? mul(t[0], ops[1]) : Value(),
                t[1] ? mul(ops[0], t[1]) : Value());
    } else if (isa<arith::DivFOp>(op)) { // (a' - r c') / c
      Value num =
          t[1] ? (t[0] ? sub(t[0], mul(r, t[1])) : neg(mul(r, t[1]))) : t[0];
      out = div(num, ops[1]);
    } else if (isa<arith::NegFOp>(op)) {
      out = neg(t[0]);
    } else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(op)) {
      Value first = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE,
                                          ops[0], ops[1]);
      out = sel(first, t[0], t[1]);
    } else if (isa<arith::MinimumFOp, arith::MinNumFOp>(op)) {
      Value first = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE,
                                          ops[0], ops[1]);
      out = sel(first, t[0], t[1]);
    } else if (isa<arith::SelectOp>(op)) {
      if (t[0])
        return failure(); // an i1 has no tangent
      out = sel(ops[0], t[1], t[2]);
    } else if (isa<arith::CmpFOp>(op)) {
      return success();                 // an i1: piecewise constant
    } else if (isa<math::TanhOp>(op)) { // 1 - tanh^2
      out = mul(t[0], sub(cst(1.0), mul(r, r)));
    } else if (isa<math::ExpOp>(op)) {
      out = mul(t[0], r);
    } else if (isa<math::Exp2Op>(op)) {
      out = mul(t[0], mul(r, cst(M_LN2)));
    } else if (isa<math::LogOp>(op)) {
      out = div(t[0], ops[0]);
    } else if (isa<math::Log2Op>(op)) {
      out = div(t[0], mul(ops[0], cst(M_LN2)));
    } else if (isa<math::SqrtOp>(op)) {
      out = div(mul(t[0], cst(0.5)), r);
    } else if (isa<math::AbsFOp>(op)) {
      Value negative = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLT,
                                             ops[0], cst(0.0));
      out = arith::SelectOp::create(b, loc, negative, neg(t[0]), t[0]);
    } else {
      return failure();
    }
    tangent[r] = out;
    return success();
  }
};

/// Clones `region`'s single block at `b` with its arguments bound to
/// `args`; returns the yielded value (and its tangent with respect to args[0]
/// when `tangents` is given).
FailureOr<Value> cloneBody(OpBuilder &b, Location loc, Region &region,
                           ValueRange args, Tangents *tangents,
                           Operation *diagOp, StringRef what) {
  Block &body = region.front();
  IRMapping map;
  for (auto [arg, v] : llvm::zip(body.getArguments(), args))
    map.map(arg, v);
  if (tangents)
    tangents->tangent[args[0]] = tangents->cst(1.0);
  for (Operation &op : body.without_terminator()) {
    Operation *clone = b.clone(op, map);
    if (!tangents)
      continue;
    SmallVector<Value> ops;
    for (Value v : op.getOperands())
      ops.push_back(map.lookupOrDefault(v));
    if (op.getNumRegions() != 0 || failed(tangents->rule(&op, clone, ops))) {
      if (diagOp)
        diagOp->emitOpError()
            << what << ": cannot derive the derivative of '" << op.getName()
            << "' with respect to the score (supported on the score's path: "
               "arith addf/subf/mulf/divf/negf/maximumf/minimumf/select/cmpf, "
               "math tanh/exp/exp2/log/log2/sqrt/absf)";
      return failure();
    }
  }
  auto yield = cast<YieldOp>(body.getTerminator());
  return map.lookupOrDefault(yield.getValue());
}
} // namespace

FailureOr<Value> mlir::attn::inlineScoreMod(OpBuilder &b, Location loc,
                                            Region &scoreMod, Value score,
                                            Value batch, Value head, Value qi,
                                            Value kj, Value *derivOut,
                                            Operation *diagOp) {
  Tangents t{b, loc, DenseMap<Value, Value>()};
  FailureOr<Value> r = cloneBody(b, loc, scoreMod, {score, batch, head, qi, kj},
                                 derivOut ? &t : nullptr, diagOp, "score_mod");
  if (failed(r))
    return failure();
  if (derivOut) {
    *derivOut = t.get(*r);
    if (!*derivOut)
      *derivOut = t.cst(0.0);
  }
  return r;
}

Value mlir::attn::inlineMaskMod(OpBuilder &b, Location loc, Region &maskMod,
                                Value batch, Value head, Value qi, Value kj) {
  return *cloneBody(b, loc, maskMod, {batch, head, qi, kj}, nullptr, nullptr,
                    "mask_mod");
}

LogicalResult mlir::attn::checkScoreModDerivable(Region &scoreMod,
                                                 Operation *diagOp) {
  // A detached module holds the dry run's ops; it is destroyed on return.
  Location loc = diagOp->getLoc();
  OwningOpRef<ModuleOp> scratch = ModuleOp::create(loc);
  OpBuilder b = OpBuilder::atBlockEnd(scratch->getBody());
  SmallVector<Value> args;
  for (Type t : scoreMod.front().getArgumentTypes())
    args.push_back(isa<FloatType>(t)
                       ? arith::ConstantOp::create(b, loc, b.getFloatAttr(t, 0))
                             .getResult()
                       : arith::ConstantIndexOp::create(b, loc, 0).getResult());
  Value deriv;
  return inlineScoreMod(b, loc, scoreMod, args[0], args[1], args[2], args[3],
                        args[4], &deriv, diagOp);
}

Value mlir::attn::applyUserRegions(detail::Codegen &cg,
                                   const UserRegions &regions, Value s,
                                   double unit, Value seq, Value head, Value qi,
                                   Value kj, Value *derivOut) {
  ImplicitLocOpBuilder &b = cg.builder();
  if (regions.scoreMod) {
    Value nat = unit == 1.0 ? s : cg.fmul(s, cg.f32(1.0 / unit));
    Value d;
    nat = *inlineScoreMod(b, b.getLoc(), *regions.scoreMod, nat, seq, head, qi,
                          kj, derivOut ? &d : nullptr);
    s = unit == 1.0 ? nat : cg.fmul(nat, cg.f32(unit));
    if (derivOut)
      *derivOut = *derivOut ? cg.fmul(*derivOut, d) : d;
  }
  if (regions.maskMod)
    s = cg.select(
        inlineMaskMod(b, b.getLoc(), *regions.maskMod, seq, head, qi, kj), s,
        cg.negInf());
  return s;
}

Value mlir::attn::maskModKeepsAny(detail::Codegen &cg, Region &maskMod,
                                  Value seq, Value head, Value q0, Value rows,
                                  Value k0, Value cols) {
  ImplicitLocOpBuilder &b = cg.builder();
  Value c0 = cg.idx(0);
  Value none = arith::ConstantIntOp::create(b, b.getI1Type(), 0);
  return cg.reduce(c0, cols, none, [&](Value j, Value acc) {
    return cg.reduce(c0, rows, acc, [&](Value i, Value acc) {
      Value keep = inlineMaskMod(b, b.getLoc(), maskMod, seq, head,
                                 cg.add(q0, i), cg.add(k0, j));
      return arith::OrIOp::create(b, acc, keep).getResult();
    });
  });
}
