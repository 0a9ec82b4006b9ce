//===- AttnTileForward.cpp - attn-tile-forward ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn.attention (memrefs) -> tiled loops with online softmax. See the pass
// description in Passes.td for the algorithm.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "flashmlir/Dialect/Attn/Transforms/Passes.h"
#include "flashmlir/Dialect/Attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNTILEFORWARDPASS
#include "flashmlir/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;
static constexpr double kLn2 = 0.6931471805599453;

TileSizes mlir::attn::getTileSizes(Operation *op, TileSizes defaults) {
  if (auto attr = op->getAttrOfType<DenseI64ArrayAttr>("block_sizes"))
    if (attr.size() == 2)
      return {attr[0], attr[1]};
  return defaults;
}

LogicalResult mlir::attn::tileAttentionForward(RewriterBase &rewriter,
                                               AttentionOp op,
                                               TileSizes sizes) {
  if (failed(checkLowerable(op, "attn-tile-forward")))
    return failure();
  if (sizes.blockM <= 0 || sizes.blockN <= 0)
    return op.emitOpError("block sizes must be positive");

  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
        o = op.getOutput(), lse = op.getLse();
  AttnShape sh = getShape(cg, q, k, v);
  MaskSpec mask = op.getMaskSpec();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = op.getScaleValue();
  const int64_t BM = sizes.blockM, BN = sizes.blockN;
  Value bm = cg.idx(BM), bn = cg.idx(BN), c0 = cg.idx(0), c1 = cg.idx(1);
  Value numQBlocks = cg.ceilDiv(sh.Nq, bm);

  cg.parallel({sh.B, sh.Hq, numQBlocks}, [&](ValueRange ivs) {
    Value bi = ivs[0], h = ivs[1], qb = ivs[2];
    Value hk = cg.divs(h, sh.group);
    Value q0 = cg.mul(qb, bm);
    Value rows = cg.min(bm, cg.sub(sh.Nq, q0));
    Value qLast = cg.sub(cg.add(q0, rows), c1);

    // Per-block state: scores/probabilities, accumulator, row max and sum.
    Value sTile = cg.alloc({BM, BN});
    Value acc = cg.alloc({BM, sh.Dv});
    Value mRow = cg.alloc({BM});
    Value lRow = cg.alloc({BM});
    cg.fill(mRow, {bm}, cg.negInf());
    cg.fill(lRow, {bm}, cg.f32(0.0));
    cg.fill(acc, {bm, cg.idx(sh.Dv)}, cg.f32(0.0));

    // The keys any row of the block can see: [kLo, kHi).
    Value kLo = c0, kHi = sh.Nk;
    if (mask.left >= 0)
      kLo = cg.max(c0, cg.sub(cg.add(q0, sh.off), cg.idx(mask.left)));
    if (mask.right >= 0)
      kHi = cg.min(sh.Nk, cg.add(cg.add(qLast, sh.off), cg.idx(mask.right + 1)));
    Value kbLo = cg.divs(kLo, bn);
    Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

    cg.forLoop(kbLo, kbHi, [&](Value kb) {
      Value k0 = cg.mul(kb, bn);
      Value cols = cg.min(bn, cg.sub(sh.Nk, k0));

      // A block needs no mask when it is whole and every row sees every key.
      Value full = cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, bn), sh.Nk);
      if (mask.left >= 0) {
        Value firstVisible =
            cg.sub(cg.add(qLast, sh.off), cg.idx(mask.left)); // of last row
        full = cg.andI(full,
                       cg.cmp(arith::CmpIPredicate::sge, k0, firstVisible));
      }
      if (mask.right >= 0) {
        Value lastVisible =
            cg.add(cg.add(q0, sh.off), cg.idx(mask.right)); // of first row
        full = cg.andI(full, cg.cmp(arith::CmpIPredicate::sle,
                                    cg.add(k0, cg.idx(BN - 1)), lastVisible));
      }

      // S = Q K^T * scale (softcap) * log2(e), masked only when needed.
      auto emitScores = [&](bool masked) {
        cg.forLoop(c0, rows, [&](Value i) {
          Value qi = cg.add(q0, i);
          cg.forLoop(c0, cols, [&](Value j) {
            Value kj = cg.add(k0, j);
            Value qk = cg.dot(q, {bi, h, qi}, k, {bi, hk, kj}, sh.D);
            Value s = emitScore(cg, qk, scale, softcap, nullptr, kLog2e);
            if (masked)
              s = cg.select(cg.visible(mask, qi, kj, sh.off), s, cg.negInf());
            memref::StoreOp::create(b, s, sTile, ValueRange{i, j});
          });
        });
      };
      cg.ifElse(full, [&] { emitScores(false); }, [&] { emitScores(true); });

      // Online softmax: new row max, rescale the running sum and accumulator.
      cg.forLoop(c0, rows, [&](Value i) {
        Value mOld = memref::LoadOp::create(b, mRow, i);
        Value mNew = cg.reduce(c0, cols, mOld, [&](Value j, Value m) {
          return cg.fmax(m, memref::LoadOp::create(b, sTile,
                                                   ValueRange{i, j}));
        });
        // A row that has seen no key yet keeps m = -inf; subtract 0 then so
        // that exp2(-inf - -inf) never makes a NaN.
        Value mUse = cg.select(
            cg.fcmp(arith::CmpFPredicate::OEQ, mNew, cg.negInf()),
            cg.f32(0.0), mNew);
        Value alpha = cg.exp2(cg.fsub(mOld, mUse));
        Value rowSum = cg.reduce(c0, cols, cg.f32(0.0), [&](Value j, Value l) {
          Value p = cg.exp2(cg.fsub(
              memref::LoadOp::create(b, sTile, ValueRange{i, j}), mUse));
          memref::StoreOp::create(b, p, sTile, ValueRange{i, j});
          return cg.fadd(l, p);
        });
        Value lOld = memref::LoadOp::create(b, lRow, i);
        memref::StoreOp::create(b, cg.fadd(cg.fmul(lOld, alpha), rowSum), lRow,
                                i);
        memref::StoreOp::create(b, mNew, mRow, i);
        cg.forLoop(c0, cg.idx(sh.Dv), [&](Value d) {
          Value a = memref::LoadOp::create(b, acc, ValueRange{i, d});
          memref::StoreOp::create(b, cg.fmul(a, alpha), acc, ValueRange{i, d});
        });
      });

      // acc += P V.
      cg.forLoop(c0, rows, [&](Value i) {
        cg.forLoop(c0, cg.idx(sh.Dv), [&](Value d) {
          Value a0 = memref::LoadOp::create(b, acc, ValueRange{i, d});
          Value a = cg.reduce(c0, cols, a0, [&](Value j, Value a) {
            Value p = memref::LoadOp::create(b, sTile, ValueRange{i, j});
            Value vv = cg.load(v, {bi, hk, cg.add(k0, j), d});
            return cg.fadd(a, cg.fmul(p, vv));
          });
          memref::StoreOp::create(b, a, acc, ValueRange{i, d});
        });
      });
    });

    // Epilogue: O = acc / l, lse = (m + log2 l) ln 2; empty rows: 0, -inf.
    cg.forLoop(c0, rows, [&](Value i) {
      Value qi = cg.add(q0, i);
      Value l = memref::LoadOp::create(b, lRow, i);
      Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
      Value inv = cg.select(any, cg.fdiv(cg.f32(1.0), l), cg.f32(0.0));
      cg.forLoop(c0, cg.idx(sh.Dv), [&](Value d) {
        Value a = memref::LoadOp::create(b, acc, ValueRange{i, d});
        cg.store(cg.fmul(a, inv), o, {bi, h, qi, d});
      });
      if (lse) {
        Value m = memref::LoadOp::create(b, mRow, i);
        Value val = cg.fmul(cg.fadd(m, cg.log2(l)), cg.f32(kLn2));
        cg.store(cg.select(any, val, cg.negInf()), lse, {bi, h, qi});
      }
    });
    for (Value buf : {sTile, acc, mRow, lRow})
      memref::DeallocOp::create(b, buf);
  });

  rewriter.eraseOp(op);
  return success();
}

namespace {
struct AttnTileForwardPass final
    : mlir::attn::impl::AttnTileForwardPassBase<AttnTileForwardPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      TileSizes sizes = getTileSizes(op, {blockM, blockN});
      if (failed(tileAttentionForward(rewriter, op, sizes)))
        return signalPassFailure();
    }
  }
};
} // namespace
