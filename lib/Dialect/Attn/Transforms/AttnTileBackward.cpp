//===- AttnTileBackward.cpp - attn-tile-backward ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn.attention_backward (memrefs) -> tiled loops that recompute P from the
// saved lse. See the pass description in Passes.td for the algorithm.
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
#define GEN_PASS_DEF_ATTNTILEBACKWARDPASS
#include "flashmlir/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;

LogicalResult mlir::attn::tileAttentionBackward(RewriterBase &rewriter,
                                                AttentionBackwardOp op,
                                                TileSizes sizes) {
  if (failed(checkLowerable(op, "attn-tile-backward")))
    return failure();
  if (sizes.blockM <= 0 || sizes.blockN <= 0)
    return op.emitOpError("block sizes must be positive");

  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue(),
        o = op.getOutput(), dO = op.getGradOutput(), lse = op.getLse(),
        dq = op.getGradQuery(), dk = op.getGradKey(), dv = op.getGradValue();
  AttnShape sh = getShape(cg, q, k, v);
  MaskSpec mask = op.getMaskSpec();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = op.getScaleValue();
  const int64_t BM = sizes.blockM, BN = sizes.blockN;
  Value bm = cg.idx(BM), bn = cg.idx(BN), c0 = cg.idx(0), c1 = cg.idx(1);
  Value dIdx = cg.idx(sh.D), dvIdx = cg.idx(sh.Dv);

  // Pre-pass: Dr = rowsum(dO * O), and the f32 dQ accumulator, both O(N).
  Value dr = cg.alloc({ShapedType::kDynamic, ShapedType::kDynamic,
                       ShapedType::kDynamic},
                      {sh.B, sh.Hq, sh.Nq});
  Value dqAcc = cg.alloc({ShapedType::kDynamic, ShapedType::kDynamic,
                          ShapedType::kDynamic, sh.D},
                         {sh.B, sh.Hq, sh.Nq});
  cg.parallel({sh.B, sh.Hq, sh.Nq}, [&](ValueRange ivs) {
    Value d = cg.dot(dO, ivs, o, ivs, sh.Dv);
    memref::StoreOp::create(b, d, dr, ivs);
    cg.forLoop(c0, dIdx, [&](Value x) {
      memref::StoreOp::create(b, cg.f32(0.0), dqAcc,
                              ValueRange{ivs[0], ivs[1], ivs[2], x});
    });
  });

  Value numKBlocks = cg.ceilDiv(sh.Nk, bn);
  cg.parallel({sh.B, sh.Hkv}, [&](ValueRange ivs) {
    Value bi = ivs[0], hk = ivs[1];
    Value pTile = cg.alloc({BM, BN});  // P
    Value dsTile = cg.alloc({BM, BN}); // dS
    Value dkTile = cg.alloc({BN, sh.D});
    Value dvTile = cg.alloc({BN, sh.Dv});

    cg.forLoop(c0, numKBlocks, [&](Value kb) {
      Value k0 = cg.mul(kb, bn);
      Value cols = cg.min(bn, cg.sub(sh.Nk, k0));
      Value kLast = cg.sub(cg.add(k0, cols), c1);
      cg.fill(dkTile, {bn, dIdx}, cg.f32(0.0));
      cg.fill(dvTile, {bn, dvIdx}, cg.f32(0.0));

      // The query rows that can see some key of this block: [qLo, qHi).
      // Row i sees key j iff i + off - left <= j <= i + off + right.
      Value qLo = c0, qHi = sh.Nq;
      if (mask.right >= 0)
        qLo = cg.max(c0, cg.sub(cg.sub(k0, sh.off), cg.idx(mask.right)));
      if (mask.left >= 0)
        qHi = cg.min(sh.Nq,
                     cg.add(cg.sub(kLast, sh.off), cg.idx(mask.left + 1)));
      Value qbLo = cg.divs(qLo, bm);
      Value qbHi = cg.max(qbLo, cg.ceilDiv(qHi, bm));

      cg.forLoop(c0, sh.group, [&](Value g) {
        Value h = cg.add(cg.mul(hk, sh.group), g);
        cg.forLoop(qbLo, qbHi, [&](Value qb) {
          Value q0 = cg.mul(qb, bm);
          Value rows = cg.min(bm, cg.sub(sh.Nq, q0));
          Value qLast = cg.sub(cg.add(q0, rows), c1);
          // Whole block visible to every row: no mask arithmetic.
          Value full =
              cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, bn), sh.Nk);
          if (mask.left >= 0)
            full = cg.andI(full, cg.cmp(arith::CmpIPredicate::sge, k0,
                                        cg.sub(cg.add(qLast, sh.off),
                                               cg.idx(mask.left))));
          if (mask.right >= 0)
            full = cg.andI(full,
                           cg.cmp(arith::CmpIPredicate::sle, kLast,
                                  cg.add(cg.add(q0, sh.off),
                                         cg.idx(mask.right))));

          // Recompute P = exp(S - lse) and dS = P (dP - Dr) for the tile.
          auto emitP = [&](bool masked) {
            cg.forLoop(c0, rows, [&](Value i) {
              Value qi = cg.add(q0, i);
              Value lse2 = cg.fmul(memref::LoadOp::create(
                                       b, lse, ValueRange{bi, h, qi}),
                                   cg.f32(kLog2e));
              Value dri = memref::LoadOp::create(b, dr, ValueRange{bi, h, qi});
              cg.forLoop(c0, cols, [&](Value j) {
                Value kj = cg.add(k0, j);
                Value qk = cg.dot(q, {bi, h, qi}, k, {bi, hk, kj}, sh.D);
                Value t;
                Value s2 = emitScore(cg, qk, scale, softcap, &t, kLog2e);
                Value p = cg.exp2(cg.fsub(s2, lse2));
                if (masked)
                  p = cg.select(cg.visible(mask, qi, kj, sh.off), p,
                                cg.f32(0.0));
                Value dp = cg.dot(dO, {bi, h, qi}, v, {bi, hk, kj}, sh.Dv);
                Value ds = cg.fmul(p, cg.fsub(dp, dri));
                if (softcap) // t = d(c tanh(s/c))/ds = 1 - tanh^2
                  ds = cg.fmul(ds, t);
                memref::StoreOp::create(b, p, pTile, ValueRange{i, j});
                memref::StoreOp::create(b, ds, dsTile, ValueRange{i, j});
              });
            });
          };
          cg.ifElse(full, [&] { emitP(false); }, [&] { emitP(true); });

          // dV += P^T dO;  dK += scale dS^T Q.
          cg.forLoop(c0, cols, [&](Value j) {
            cg.forLoop(c0, dvIdx, [&](Value d) {
              Value a0 = memref::LoadOp::create(b, dvTile, ValueRange{j, d});
              Value a = cg.reduce(c0, rows, a0, [&](Value i, Value a) {
                Value p = memref::LoadOp::create(b, pTile, ValueRange{i, j});
                Value g = cg.load(dO, {bi, h, cg.add(q0, i), d});
                return cg.fadd(a, cg.fmul(p, g));
              });
              memref::StoreOp::create(b, a, dvTile, ValueRange{j, d});
            });
            cg.forLoop(c0, dIdx, [&](Value d) {
              Value a0 = memref::LoadOp::create(b, dkTile, ValueRange{j, d});
              Value sum = cg.reduce(c0, rows, cg.f32(0.0), [&](Value i,
                                                                Value a) {
                Value ds = memref::LoadOp::create(b, dsTile, ValueRange{i, j});
                Value qv = cg.load(q, {bi, h, cg.add(q0, i), d});
                return cg.fadd(a, cg.fmul(ds, qv));
              });
              memref::StoreOp::create(b, cg.fadd(a0, cg.fmul(sum,
                                                            cg.f32(scale))),
                                      dkTile, ValueRange{j, d});
            });
          });

          // dQacc += scale dS K.
          cg.forLoop(c0, rows, [&](Value i) {
            Value qi = cg.add(q0, i);
            cg.forLoop(c0, dIdx, [&](Value d) {
              Value sum = cg.reduce(c0, cols, cg.f32(0.0), [&](Value j,
                                                                Value a) {
                Value ds = memref::LoadOp::create(b, dsTile, ValueRange{i, j});
                Value kv = cg.load(k, {bi, hk, cg.add(k0, j), d});
                return cg.fadd(a, cg.fmul(ds, kv));
              });
              Value a0 = memref::LoadOp::create(b, dqAcc,
                                                ValueRange{bi, h, qi, d});
              memref::StoreOp::create(
                  b, cg.fadd(a0, cg.fmul(sum, cg.f32(scale))), dqAcc,
                  ValueRange{bi, h, qi, d});
            });
          });
        });
      });

      // Store the key block's gradients (summed over the group's heads).
      cg.forLoop(c0, cols, [&](Value j) {
        Value kj = cg.add(k0, j);
        cg.forLoop(c0, dIdx, [&](Value d) {
          cg.store(memref::LoadOp::create(b, dkTile, ValueRange{j, d}), dk,
                   {bi, hk, kj, d});
        });
        cg.forLoop(c0, dvIdx, [&](Value d) {
          cg.store(memref::LoadOp::create(b, dvTile, ValueRange{j, d}), dv,
                   {bi, hk, kj, d});
        });
      });
    });
    for (Value buf : {pTile, dsTile, dkTile, dvTile})
      memref::DeallocOp::create(b, buf);
  });

  // dQ = dQacc, converted to the element type.
  cg.parallel({sh.B, sh.Hq, sh.Nq}, [&](ValueRange ivs) {
    cg.forLoop(c0, dIdx, [&](Value d) {
      SmallVector<Value> ix{ivs[0], ivs[1], ivs[2], d};
      cg.store(memref::LoadOp::create(b, dqAcc, ix), dq, ix);
    });
  });
  memref::DeallocOp::create(b, dr);
  memref::DeallocOp::create(b, dqAcc);

  rewriter.eraseOp(op);
  return success();
}

namespace {
struct AttnTileBackwardPass final
    : mlir::attn::impl::AttnTileBackwardPassBase<AttnTileBackwardPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<AttentionBackwardOp> ops;
    getOperation()->walk([&](AttentionBackwardOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionBackwardOp op : ops) {
      TileSizes sizes = getTileSizes(op, {blockM, blockN});
      if (failed(tileAttentionBackward(rewriter, op, sizes)))
        return signalPassFailure();
    }
  }
};
} // namespace
