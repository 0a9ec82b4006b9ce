//===- AttnLowerUnfused.cpp - attn-lower-unfused ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The unfused reference lowering: full [B, Hq, Nq, Nk] score matrices, the
// textbook three steps. It exists for tests and for the memory comparison
// against the tiled lowering (O(N^2) against O(N)).
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"
#include "flashmlir/Dialect/Attn/Transforms/UserRegions.h"

#include "flashmlir/Dialect/Attn/Transforms/Passes.h"
#include "flashmlir/Dialect/Attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNLOWERUNFUSEDPASS
#include "flashmlir/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr int64_t kDyn = ShapedType::kDynamic;

namespace {
/// Operands and facts of one op being lowered.
struct Unfused {
  Codegen &cg;
  AttnShape sh;
  MaskSpec mask;
  double scale;
  std::optional<double> softcap;
  ScoreMods mods;
  UserRegions regions;
  Rotary rot;

  /// A [B, Hq, Nq, Nk] f32 buffer.
  Value allocScores() {
    return cg.alloc({kDyn, kDyn, kDyn, kDyn}, {sh.B, sh.Hq, sh.Nq, sh.Nk});
  }

  /// Element d of query row i (key row j) rotated at its position (i + off,
  /// j), or the element itself without rotary.
  Value rotQ(Value q, Value bi, Value h, Value i, Value d) {
    auto row = [&](Value e) { return cg.load(q, {bi, h, i, e}); };
    return rot ? rot.element(cg, row, d, cg.add(i, sh.off)) : row(d);
  }
  Value rotK(Value k, Value bi, Value hk, Value j, Value d) {
    auto row = [&](Value e) { return cg.load(k, {bi, hk, j, e}); };
    return rot ? rot.element(cg, row, d, j) : row(d);
  }

  /// The masked score S[b, h, i, j] (natural-log domain, ALiBi bias and
  /// score_mod included) and, with `derivOut`, the derivative dS/ds (null
  /// when it is 1). The regions' derivability is checked before.
  Value score(Value q, Value k, Value bi, Value h, Value i, Value j,
              Value *derivOut = nullptr) {
    Value hk = cg.divs(h, sh.group);
    Value qk =
        rot ? cg.reduce(cg.idx(0), cg.idx(sh.D), cg.f32(0.0),
                        [&](Value d, Value acc) {
                          return cg.fadd(acc, cg.fmul(rotQ(q, bi, h, i, d),
                                                      rotK(k, bi, hk, j, d)));
                        })
            : cg.dot(q, {bi, h, i}, k, {bi, hk, j}, sh.D);
    Value s = emitScore(cg, qk, scale, softcap, derivOut);
    if (Value negSlope = mods.negSlope(cg, bi, h))
      s = cg.fadd(s, alibiBias(cg, negSlope, i, j, sh.off));
    s = applyUserRegions(cg, regions, s, 1.0, bi, h, i, j, derivOut);
    if (mask.isMasked())
      s = cg.select(cg.visible(mask, i, j, sh.off), s, cg.negInf());
    return s;
  }
};
} // namespace

static Unfused makeUnfused(Codegen &cg, Value q, Value k, Value v,
                           MaskSpec mask, double scale,
                           std::optional<APFloat> softcap, ScoreMods mods,
                           UserRegions regions) {
  Unfused u{cg,     getShape(cg, q, k, v), mask, scale, std::nullopt, mods,
            regions};
  if (softcap)
    u.softcap = softcap->convertToDouble();
  return u;
}

LogicalResult mlir::attn::lowerAttentionUnfused(RewriterBase &rewriter,
                                                AttentionOp op) {
  if (failed(checkLowerable(op, "attn-lower-unfused", /*varlenSupported=*/false,
                            /*kvCacheSupported=*/false,
                            /*scoreModsSupported=*/true)))
    return failure();
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
        o = op.getOutput(), lse = op.getLse();
  Unfused u =
      makeUnfused(cg, q, k, v, op.getMaskSpec(), op.getScaleValue(),
                  op.getSoftcap(), ScoreMods::of(op), UserRegions::of(op));
  u.rot = Rotary::of(op);
  const AttnShape &sh = u.sh;
  Value c0 = cg.idx(0);

  // Step 1: S = scale Q K^T (softcap, ALiBi, score_mod, masks) for every
  // (b, h, i, j).
  Value s = u.allocScores();
  cg.parallel({sh.B, sh.Hq, sh.Nq, sh.Nk}, [&](ValueRange iv) {
    memref::StoreOp::create(b, u.score(q, k, iv[0], iv[1], iv[2], iv[3]), s,
                            iv);
  });

  // Step 2: row softmax in place, and lse; a sink is one more logit of the
  // row (in the max and the sum) whose value row is zero.
  cg.parallel({sh.B, sh.Hq, sh.Nq}, [&](ValueRange iv) {
    auto at = [&](Value j) {
      return SmallVector<Value>{iv[0], iv[1], iv[2], j};
    };
    Value sink = u.mods.sink(cg, iv[1]);
    Value m =
        cg.reduce(c0, sh.Nk, sink ? sink : cg.negInf(), [&](Value j, Value m) {
          return cg.fmax(m, memref::LoadOp::create(b, s, at(j)));
        });
    Value empty = cg.fcmp(arith::CmpFPredicate::OEQ, m, cg.negInf());
    Value mUse = cg.select(empty, cg.f32(0.0), m);
    Value sum0 = sink ? math::ExpOp::create(b, cg.fsub(sink, mUse)).getResult()
                      : cg.f32(0.0);
    Value sum = cg.reduce(c0, sh.Nk, sum0, [&](Value j, Value acc) {
      Value e = math::ExpOp::create(
          b, cg.fsub(memref::LoadOp::create(b, s, at(j)), mUse));
      memref::StoreOp::create(b, e, s, at(j));
      return cg.fadd(acc, e);
    });
    Value inv = cg.select(empty, cg.f32(0.0), cg.fdiv(cg.f32(1.0), sum));
    cg.forLoop(c0, sh.Nk, [&](Value j) {
      Value e = memref::LoadOp::create(b, s, at(j));
      memref::StoreOp::create(b, cg.fmul(e, inv), s, at(j));
    });
    if (lse) {
      Value val = cg.fadd(mUse, math::LogOp::create(b, sum));
      cg.store(cg.select(empty, cg.negInf(), val), lse, iv);
    }
  });

  // Step 3: O = P V.
  cg.parallel({sh.B, sh.Hq, sh.Nq, cg.idx(sh.Dv)}, [&](ValueRange iv) {
    Value hk = cg.divs(iv[1], sh.group);
    Value acc = cg.reduce(c0, sh.Nk, cg.f32(0.0), [&](Value j, Value acc) {
      Value p =
          memref::LoadOp::create(b, s, ValueRange{iv[0], iv[1], iv[2], j});
      return cg.fadd(acc, cg.fmul(p, cg.load(v, {iv[0], hk, j, iv[3]})));
    });
    cg.store(acc, o, iv);
  });
  memref::DeallocOp::create(b, s);
  rewriter.eraseOp(op);
  return success();
}

LogicalResult
mlir::attn::lowerAttentionBackwardUnfused(RewriterBase &rewriter,
                                          AttentionBackwardOp op) {
  if (failed(checkLowerable(op, "attn-lower-unfused", /*varlenSupported=*/false,
                            /*kvCacheSupported=*/false,
                            /*scoreModsSupported=*/true)))
    return failure();
  if (!op.getScoreMod().empty() &&
      failed(checkScoreModDerivable(op.getScoreMod(), op)))
    return failure();
  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
        o = op.getOutput(), dO = op.getGradOutput(), lse = op.getLse(),
        dq = op.getGradQuery(), dk = op.getGradKey(), dv = op.getGradValue();
  Unfused u =
      makeUnfused(cg, q, k, v, op.getMaskSpec(), op.getScaleValue(),
                  op.getSoftcap(), ScoreMods::of(op), UserRegions::of(op));
  u.rot = Rotary::of(op);
  const AttnShape &sh = u.sh;
  Value c0 = cg.idx(0);

  // Step 1: P = exp(S - lse) and dS = P (dO V^T - rowsum(dO O)), full size.
  Value p = u.allocScores(), ds = u.allocScores();
  cg.parallel({sh.B, sh.Hq, sh.Nq, sh.Nk}, [&](ValueRange iv) {
    Value bi = iv[0], h = iv[1], i = iv[2], j = iv[3];
    Value hk = cg.divs(h, sh.group);
    Value t;
    Value s = u.score(q, k, bi, h, i, j, &t);
    Value l = memref::LoadOp::create(b, lse, ValueRange{bi, h, i});
    // Masked entries have s = -inf; rows without keys have lse = -inf too.
    Value pv = cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, s, cg.negInf()),
                         cg.f32(0.0), math::ExpOp::create(b, cg.fsub(s, l)));
    Value dr = cg.dot(dO, {bi, h, i}, o, {bi, h, i}, sh.Dv);
    Value dp = cg.dot(dO, {bi, h, i}, v, {bi, hk, j}, sh.Dv);
    Value dsv = cg.fmul(pv, cg.fsub(dp, dr));
    if (t) // softcap's 1 - tanh^2 and / or score_mod's derivative
      dsv = cg.fmul(dsv, t);
    memref::StoreOp::create(b, pv, p, iv);
    memref::StoreOp::create(b, dsv, ds, iv);
  });

  // Step 2: dQ = scale dS K (with rotary: dS K_rot rotated back, R^T).
  cg.parallel({sh.B, sh.Hq, sh.Nq, cg.idx(sh.D)}, [&](ValueRange iv) {
    Value hk = cg.divs(iv[1], sh.group);
    auto rotated = [&](Value d) { // (dS K_rot)[d]
      return cg.reduce(c0, sh.Nk, cg.f32(0.0), [&](Value j, Value acc) {
        Value x =
            memref::LoadOp::create(b, ds, ValueRange{iv[0], iv[1], iv[2], j});
        return cg.fadd(acc, cg.fmul(x, u.rotK(k, iv[0], hk, j, d)));
      });
    };
    Value acc = u.rot ? u.rot.element(cg, rotated, iv[3], cg.add(iv[2], sh.off),
                                      /*inverse=*/true)
                      : rotated(iv[3]);
    cg.store(cg.fmul(acc, cg.f32(u.scale)), dq, iv);
  });

  // Step 3: dK = scale dS^T Q and dV = P^T dO, summed over each group (dK
  // from the rotated queries, rotated back).
  auto groupSum = [&](Value buf, Value x, int64_t width, Value out,
                      double factor, bool rotary) {
    cg.parallel({sh.B, sh.Hkv, sh.Nk, cg.idx(width)}, [&](ValueRange iv) {
      Value bi = iv[0], hk = iv[1], j = iv[2];
      auto sum = [&](Value d) {
        return cg.reduce(c0, sh.group, cg.f32(0.0), [&](Value g, Value acc) {
          Value h = cg.add(cg.mul(hk, sh.group), g);
          return cg.reduce(c0, sh.Nq, acc, [&](Value i, Value acc) {
            Value w = memref::LoadOp::create(b, buf, ValueRange{bi, h, i, j});
            Value xv =
                rotary ? u.rotQ(x, bi, h, i, d) : cg.load(x, {bi, h, i, d});
            return cg.fadd(acc, cg.fmul(w, xv));
          });
        });
      };
      Value acc = rotary ? u.rot.element(cg, sum, iv[3], j, /*inverse=*/true)
                         : sum(iv[3]);
      cg.store(cg.fmul(acc, cg.f32(factor)), out, iv);
    });
  };
  groupSum(ds, q, sh.D, dk, u.scale, bool(u.rot));
  groupSum(p, dO, sh.Dv, dv, 1.0, false);

  // Step 4: d sinks[h] = -sum_{b,i} exp(sinks[h] - lse[b,h,i]) Dr[b,h,i].
  if (Value gradSinks = op.getGradSinks())
    cg.parallel({sh.Hq}, [&](ValueRange iv) {
      Value h = iv[0];
      Value sink = u.mods.sink(cg, h);
      Value acc = cg.reduce(c0, sh.B, cg.f32(0.0), [&](Value bi, Value acc) {
        return cg.reduce(c0, sh.Nq, acc, [&](Value i, Value acc) {
          Value l = memref::LoadOp::create(b, lse, ValueRange{bi, h, i});
          Value dr = cg.dot(dO, {bi, h, i}, o, {bi, h, i}, sh.Dv);
          Value ps = math::ExpOp::create(b, cg.fsub(sink, l));
          return cg.fsub(acc, cg.fmul(ps, dr));
        });
      });
      memref::StoreOp::create(b, acc, gradSinks, ValueRange{h});
    });
  memref::DeallocOp::create(b, p);
  memref::DeallocOp::create(b, ds);
  rewriter.eraseOp(op);
  return success();
}

namespace {
struct AttnLowerUnfusedPass final
    : mlir::attn::impl::AttnLowerUnfusedPassBase<AttnLowerUnfusedPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<AttentionOp, AttentionBackwardOp>(op))
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (Operation *op : ops) {
      LogicalResult r =
          isa<AttentionOp>(op)
              ? lowerAttentionUnfused(rewriter, cast<AttentionOp>(op))
              : lowerAttentionBackwardUnfused(rewriter,
                                              cast<AttentionBackwardOp>(op));
      if (failed(r))
        return signalPassFailure();
    }
  }
};
} // namespace
