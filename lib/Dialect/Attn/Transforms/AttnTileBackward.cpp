//===- AttnTileBackward.cpp - attn-tile-backward ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn.attention_backward (memrefs) -> tiled loops that recompute P from the
// saved lse. See the pass description in Passes.td for the algorithm.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"
#include "flashmlir/Dialect/Attn/Transforms/UserRegions.h"
#include "flashmlir/Dialect/Attn/Transforms/VectorCodegen.h"

#include "flashmlir/Dialect/Attn/Transforms/Passes.h"
#include "flashmlir/Dialect/Attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
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
                                                TileSizes sizes,
                                                int64_t vectorWidth) {
  if (failed(checkLowerable(op, "attn-tile-backward", /*varlenSupported=*/true,
                            /*kvCacheSupported=*/false,
                            /*scoreModsSupported=*/true)))
    return failure();
  if (failed(checkOpTiling(op, "attn-tile-backward", op.getQuery(),
                           op.getValue(), sizes.blockM, sizes.blockN,
                           vectorWidth)))
    return failure();

  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  VecCodegen vc(cg, vectorWidth);
  // The variable-length form runs on batch-1 views of the packed operands:
  // the pre- and post-passes over all their rows, the main loop over each
  // sequence's slice of rows (below).
  const bool varlen = op.isVarlen();
  auto view = [&](Value x) { return varlen ? packedAsDense(cg, x) : x; };
  Value q = view(op.getQuery()), k = view(op.getKey()), v = view(op.getValue()),
        o = view(op.getOutput()), dO = view(op.getGradOutput()),
        lse = view(op.getLse()), dq = view(op.getGradQuery()),
        dk = view(op.getGradKey()), dv = view(op.getGradValue());
  AttnShape sh = getShape(cg, q, k, v);
  MaskSpec mask = op.getMaskSpec();
  ScoreMods mods = ScoreMods::of(op);
  UserRegions regions = UserRegions::of(op);
  Rotary rot = Rotary::of(op);
  if (regions.scoreMod && failed(checkScoreModDerivable(*regions.scoreMod, op)))
    return failure();
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = op.getScaleValue();
  const int64_t BM = sizes.blockM, BN = sizes.blockN;
  Value bm = cg.idx(BM), bn = cg.idx(BN), c0 = cg.idx(0), c1 = cg.idx(1);
  Value dIdx = cg.idx(sh.D), dvIdx = cg.idx(sh.Dv);
  // Keys run along the vectors of S, P and dS; head dims along those of
  // dK, dV and dQ.
  SmallVector<int64_t> kChunks = vc.chunks(BN), dChunks = vc.chunks(sh.D),
                       dvChunks = vc.chunks(sh.Dv);
  // K^T is packed pre-scaled: Q K^T is then the score in the log2 domain, or
  // the argument of tanh with softcap.
  double kScale = softcap ? scale / *softcap : scale * kLog2e;
  Type i32 = b.getI32Type();
  auto toI32 = [&](Value x) {
    return arith::IndexCastOp::create(b, i32, x).getResult();
  };
  auto forChunks = [&](ArrayRef<int64_t> chunks,
                       function_ref<void(Value col, int64_t w)> body) {
    int64_t col = 0;
    for (int64_t w : chunks) {
      body(cg.idx(col), w);
      col += w;
    }
  };

  // Pre-pass: Dr = rowsum(dO * O), and the f32 dQ accumulator, both O(N).
  Value dr = cg.alloc(
      {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic},
      {sh.B, sh.Hq, sh.Nq});
  Value dqAcc = cg.alloc(
      {ShapedType::kDynamic, ShapedType::kDynamic, ShapedType::kDynamic, sh.D},
      {sh.B, sh.Hq, sh.Nq});
  cg.parallel({sh.B, sh.Hq, sh.Nq}, [&](ValueRange ivs) {
    Value d = cg.dot(dO, ivs, o, ivs, sh.Dv);
    memref::StoreOp::create(b, d, dr, ivs);
    forChunks(dChunks, [&](Value col, int64_t w) {
      vector::StoreOp::create(b, vc.splat(0.0, w), dqAcc,
                              ValueRange{ivs[0], ivs[1], ivs[2], col});
    });
  });

  // One (sequence, kv head) with its operands and shape; `seq` is the
  // sequence's index in the batch (bi is 0 in the varlen form).
  auto emitKvHead = [&](Value seq, Value bi, Value hk, const AttnShape &sh,
                        Value q, Value k, Value v, Value dO, Value lse,
                        Value dk, Value dv, Value dr, Value dqAcc) {
    Value numKBlocks = cg.ceilDiv(sh.Nk, bn);
    Value kt = cg.alloc({sh.D, BN});   // K^T * kScale
    Value vt = cg.alloc({sh.Dv, BN});  // V^T
    Value pTile = cg.alloc({BM, BN});  // P
    Value dsTile = cg.alloc({BM, BN}); // dP, then dS
    // With user regions: dS_final/dS_raw of each score (softcap and
    // score_mod derivatives), 0 past the block's keys.
    Value derivTile = regions ? cg.alloc({BM, BN}) : Value();
    Value dkTile = cg.alloc({BN, sh.D});
    Value dvTile = cg.alloc({BN, sh.Dv});
    // With rotary: the key block's and the query block's rows rotated at
    // their positions (for dQ += dS K_rot, dK += dS^T Q_rot and the scores).
    Value kRot = rot ? cg.alloc({BN, sh.D}) : Value();
    Value qRot = rot ? cg.alloc({BM, sh.D}) : Value();

    cg.forLoop(c0, numKBlocks, [&](Value kb) {
      Value k0 = cg.mul(kb, bn);
      Value cols = cg.min(bn, cg.sub(sh.Nk, k0));
      Value kLast = cg.sub(cg.add(k0, cols), c1);

      // K^T and V^T of the block, zero past the last key; dK = dV = 0.
      cg.forLoop(c0, bn, [&](Value j) {
        Value valid = cg.cmp(arith::CmpIPredicate::slt, j, cols);
        Value kj = cg.min(cg.add(k0, j), cg.sub(sh.Nk, c1));
        cg.forLoop(c0, dIdx, [&](Value d) {
          Value x = cg.load(k, {bi, hk, kj, d});
          if (rot) {
            auto row = [&](Value e) { return cg.load(k, {bi, hk, kj, e}); };
            x = rot.element(cg, row, d, kj);
            memref::StoreOp::create(b, x, kRot, ValueRange{j, d});
          }
          x = cg.fmul(x, cg.f32(kScale));
          memref::StoreOp::create(b, cg.select(valid, x, cg.f32(0.0)), kt,
                                  ValueRange{d, j});
        });
        cg.forLoop(c0, dvIdx, [&](Value d) {
          Value x = cg.load(v, {bi, hk, kj, d});
          memref::StoreOp::create(b, cg.select(valid, x, cg.f32(0.0)), vt,
                                  ValueRange{d, j});
        });
        forChunks(dChunks, [&](Value col, int64_t w) {
          vector::StoreOp::create(b, vc.splat(0.0, w), dkTile,
                                  ValueRange{j, col});
        });
        forChunks(dvChunks, [&](Value col, int64_t w) {
          vector::StoreOp::create(b, vc.splat(0.0, w), dvTile,
                                  ValueRange{j, col});
        });
      });

      // The query rows that can see some key of this block: [qLo, qHi).
      // Row i sees key j iff i + off - left <= j <= i + off + right.
      Value qLo = c0, qHi = sh.Nq;
      if (mask.right >= 0)
        qLo = cg.max(c0, cg.sub(cg.sub(k0, sh.off), cg.idx(mask.right)));
      if (mask.left >= 0)
        qHi =
            cg.min(sh.Nq, cg.add(cg.sub(kLast, sh.off), cg.idx(mask.left + 1)));
      Value qbLo = cg.divs(qLo, bm);
      Value qbHi = cg.max(qbLo, cg.ceilDiv(qHi, bm));

      cg.forLoop(c0, sh.group, [&](Value g) {
        Value h = cg.add(cg.mul(hk, sh.group), g);
        Value negSlope = mods.negSlope(cg, seq, h, kLog2e); // log2 domain
        cg.forLoop(qbLo, qbHi, [&](Value qb) {
          Value q0 = cg.mul(qb, bm);
          Value rows = cg.min(bm, cg.sub(sh.Nq, q0));
          Value qLast = cg.sub(cg.add(q0, rows), c1);
          auto pairBody = [&] {
            // Whole block visible to every row: no mask arithmetic.
            Value full =
                cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, bn), sh.Nk);
            if (mask.left >= 0)
              full = cg.andI(full, cg.cmp(arith::CmpIPredicate::sge, k0,
                                          cg.sub(cg.add(qLast, sh.off),
                                                 cg.idx(mask.left))));
            if (mask.right >= 0)
              full = cg.andI(
                  full, cg.cmp(arith::CmpIPredicate::sle, kLast,
                               cg.add(cg.add(q0, sh.off), cg.idx(mask.right))));

            // The query rows rotated at their positions (rotary).
            if (rot)
              cg.forLoop(c0, rows, [&](Value i) {
                Value qi = cg.add(q0, i);
                auto row = [&](Value e) { return cg.load(q, {bi, h, qi, e}); };
                cg.forLoop(c0, dIdx, [&](Value d) {
                  memref::StoreOp::create(
                      b, rot.element(cg, row, d, cg.add(qi, sh.off)), qRot,
                      ValueRange{i, d});
                });
              });

            // S = Q K^T (scaled) into pTile, dP = dO V^T into dsTile.
            auto product = [&](Value lhsMem, int64_t depth, Value rhsT,
                               Value out) {
              vc.outerProduct(OuterProduct{
                  rows, kChunks, c0, cg.idx(depth),
                  [&](Value i, Value d) {
                    if (rot && lhsMem == q)
                      return memref::LoadOp::create(b, qRot, ValueRange{i, d})
                          .getResult();
                    return cg.load(lhsMem, {bi, h, cg.add(q0, i), d});
                  },
                  [&](Value d, int64_t col, int64_t w) {
                    return vc.load(rhsT, {d, cg.idx(col)}, w);
                  },
                  nullptr,
                  [&](Value i, int64_t col, Value x) {
                    vector::StoreOp::create(b, x, out,
                                            ValueRange{i, cg.idx(col)});
                  }});
            };
            product(q, sh.D, kt, pTile);
            product(dO, sh.Dv, vt, dsTile);

            // With user regions the whole score pipeline (softcap, ALiBi,
            // score_mod and its derivative, mask_mod) runs first, a score at a
            // time; emitP then reads final scores and the derivatives.
            if (regions)
              cg.forLoop(c0, rows, [&](Value i) {
                Value qi = cg.add(q0, i);
                cg.forLoop(c0, bn, [&](Value j) {
                  Value kj = cg.add(k0, j);
                  Value valid = cg.cmp(arith::CmpIPredicate::slt, j, cols);
                  Value zero = cg.f32(0.0);
                  auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type()},
                                                valid, /*withElse=*/true);
                  {
                    OpBuilder::InsertionGuard guard(b);
                    b.setInsertionPointToStart(ifOp.thenBlock());
                    Value s =
                        memref::LoadOp::create(b, pTile, ValueRange{i, j});
                    Value deriv;
                    if (softcap) {
                      Value t = cg.tanh(s, &deriv);
                      s = cg.fmul(t, cg.f32(*softcap * kLog2e));
                    }
                    if (negSlope)
                      s = cg.fadd(s, alibiBias(cg, negSlope, qi, kj, sh.off));
                    s = applyUserRegions(cg, regions, s, kLog2e, seq, h, qi, kj,
                                         &deriv);
                    memref::StoreOp::create(b, s, pTile, ValueRange{i, j});
                    scf::YieldOp::create(b, deriv ? deriv : cg.f32(1.0));
                  }
                  {
                    OpBuilder::InsertionGuard guard(b);
                    b.setInsertionPointToStart(ifOp.elseBlock());
                    scf::YieldOp::create(b, zero);
                  }
                  memref::StoreOp::create(b, ifOp.getResult(0), derivTile,
                                          ValueRange{i, j});
                });
              });

            // P = exp2(S log2(e) - lse log2(e)), dS = P (dP - Dr), keys along
            // the vectors; boundary blocks zero the keys a row cannot see.
            auto emitP = [&](bool masked) {
              cg.forLoop(c0, rows, [&](Value i) {
                Value qi = cg.add(q0, i);
                Value lse2 = cg.fmul(
                    memref::LoadOp::create(b, lse, ValueRange{bi, h, qi}),
                    cg.f32(kLog2e));
                Value dri =
                    memref::LoadOp::create(b, dr, ValueRange{bi, h, qi});
                Value diag = cg.add(qi, sh.off);
                forChunks(kChunks, [&](Value col, int64_t w) {
                  Value s = vc.load(pTile, {i, col}, w);
                  Value sech2;
                  if (softcap && !regions)
                    s = arith::MulFOp::create(b, vc.tanh(s, &sech2),
                                              vc.splat(*softcap * kLog2e, w));
                  if (negSlope && !regions) { // S += -slope |qi + off - kj|
                    Value kj = arith::AddIOp::create(
                        b, vc.broadcast(toI32(cg.add(k0, col)), w), vc.iota(w));
                    s = vc.addAlibi(s,
                                    arith::SubIOp::create(
                                        b, vc.broadcast(toI32(diag), w), kj),
                                    negSlope);
                  }
                  Value p = vc.exp2(
                      arith::SubFOp::create(b, s, vc.broadcast(lse2, w)));
                  if (regions) // a mask_mod may mask a whole row (lse = -inf)
                    p = arith::SelectOp::create(
                        b,
                        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, s,
                                              vc.splat(-INFINITY, w)),
                        vc.splat(0.0, w), p);
                  if (masked) {
                    Value kj = arith::AddIOp::create(
                        b, vc.broadcast(toI32(cg.add(k0, col)), w), vc.iota(w));
                    Value vis =
                        arith::CmpIOp::create(b, arith::CmpIPredicate::slt, kj,
                                              vc.broadcast(toI32(sh.Nk), w));
                    if (mask.left >= 0)
                      vis = arith::AndIOp::create(
                          b, vis,
                          arith::CmpIOp::create(
                              b, arith::CmpIPredicate::sge, kj,
                              vc.broadcast(
                                  toI32(cg.sub(diag, cg.idx(mask.left))), w)));
                    if (mask.right >= 0)
                      vis = arith::AndIOp::create(
                          b, vis,
                          arith::CmpIOp::create(
                              b, arith::CmpIPredicate::sle, kj,
                              vc.broadcast(
                                  toI32(cg.add(diag, cg.idx(mask.right))), w)));
                    p = arith::SelectOp::create(b, vis, p, vc.splat(0.0, w));
                  }
                  Value dp = vc.load(dsTile, {i, col}, w);
                  Value ds = arith::MulFOp::create(
                      b, p, arith::SubFOp::create(b, dp, vc.broadcast(dri, w)));
                  if (regions) // softcap and score_mod derivatives
                    ds = arith::MulFOp::create(b, ds,
                                               vc.load(derivTile, {i, col}, w));
                  else if (softcap) // d(c tanh(s/c))/ds = 1 - tanh^2
                    ds = arith::MulFOp::create(b, ds, sech2);
                  vector::StoreOp::create(b, p, pTile, ValueRange{i, col});
                  vector::StoreOp::create(b, ds, dsTile, ValueRange{i, col});
                });
              });
            };
            cg.ifElse(
                full, [&] { emitP(false); }, [&] { emitP(true); });

            // dV += P^T dO;  dK += dS^T Q (scaled when stored).
            auto accumulateKeys = [&](Value tile, Value rhsMem, Value acc,
                                      ArrayRef<int64_t> chunks) {
              vc.outerProduct(OuterProduct{
                  bn, chunks, c0, rows,
                  [&](Value j, Value i) {
                    return memref::LoadOp::create(b, tile, ValueRange{i, j})
                        .getResult();
                  },
                  [&](Value i, int64_t col, int64_t w) {
                    if (rot && rhsMem == q)
                      return vc.load(qRot, {i, cg.idx(col)}, w);
                    return vc.load(rhsMem, {bi, h, cg.add(q0, i), cg.idx(col)},
                                   w);
                  },
                  [&](Value j, int64_t col, int64_t w) {
                    return vc.load(acc, {j, cg.idx(col)}, w);
                  },
                  [&](Value j, int64_t col, Value x) {
                    vector::StoreOp::create(b, x, acc,
                                            ValueRange{j, cg.idx(col)});
                  }});
            };
            accumulateKeys(pTile, dO, dvTile, dvChunks);
            accumulateKeys(dsTile, q, dkTile, dChunks);

            // dQacc[rows] += dS K (scaled when converted).
            vc.outerProduct(OuterProduct{
                rows, dChunks, c0, cols,
                [&](Value i, Value j) {
                  return memref::LoadOp::create(b, dsTile, ValueRange{i, j})
                      .getResult();
                },
                [&](Value j, int64_t col, int64_t w) {
                  if (rot)
                    return vc.load(kRot, {j, cg.idx(col)}, w);
                  return vc.load(k, {bi, hk, cg.add(k0, j), cg.idx(col)}, w);
                },
                [&](Value i, int64_t col, int64_t w) {
                  return vc.load(dqAcc, {bi, h, cg.add(q0, i), cg.idx(col)}, w);
                },
                [&](Value i, int64_t col, Value x) {
                  vector::StoreOp::create(
                      b, x, dqAcc,
                      ValueRange{bi, h, cg.add(q0, i), cg.idx(col)});
                }});
          };
          // A mask_mod that keeps no pair of the two blocks skips them.
          if (regions.maskMod)
            cg.ifElse(maskModKeepsAny(cg, *regions.maskMod, seq, h, q0, rows,
                                      k0, cols),
                      pairBody, [] {});
          else
            pairBody();
        });
      });

      // Store the key block's gradients (summed over the group's heads);
      // with rotary dK = R^T dK_rot, an element at a time.
      cg.forLoop(c0, cols, [&](Value j) {
        Value kj = cg.add(k0, j);
        if (rot) {
          auto row = [&](Value e) {
            return memref::LoadOp::create(b, dkTile, ValueRange{j, e})
                .getResult();
          };
          cg.forLoop(c0, dIdx, [&](Value d) {
            Value x = rot.element(cg, row, d, kj, /*inverse=*/true);
            cg.store(cg.fmul(x, cg.f32(scale)), dk, {bi, hk, kj, d});
          });
        } else {
          forChunks(dChunks, [&](Value col, int64_t w) {
            Value x = vc.load(dkTile, {j, col}, w);
            vc.store(arith::MulFOp::create(b, x, vc.splat(scale, w)), dk,
                     {bi, hk, kj, col});
          });
        }
        forChunks(dvChunks, [&](Value col, int64_t w) {
          vc.store(vc.load(dvTile, {j, col}, w), dv, {bi, hk, kj, col});
        });
      });
    });
    for (Value buf : {kt, vt, pTile, dsTile, dkTile, dvTile})
      memref::DeallocOp::create(b, buf);
    for (Value buf : {derivTile, kRot, qRot})
      if (buf)
        memref::DeallocOp::create(b, buf);
  };
  cg.parallel(
      {varlen ? cg.sub(cg.dim(op.getCuSeqlensQ(), 0), c1) : sh.B, sh.Hkv},
      [&](ValueRange ivs) {
        Value bi = ivs[0], hk = ivs[1];
        if (!varlen)
          return emitKvHead(bi, bi, hk, sh, q, k, v, dO, lse, dk, dv, dr,
                            dqAcc);
        // Sequence bi: its rows, lengths and diagonal offset; batch
        // index 0 of the slices.
        auto [qStart, qLen] = sequenceRange(cg, op.getCuSeqlensQ(), bi);
        auto [kStart, kLen] = sequenceRange(cg, op.getCuSeqlensK(), bi);
        AttnShape seq = sh;
        seq.Nq = qLen;
        seq.Nk = kLen;
        seq.off = cg.sub(kLen, qLen);
        auto rowsQ = [&, qStart = qStart, qLen = qLen](Value x) {
          return sequenceRows(cg, x, qStart, qLen);
        };
        auto rowsK = [&, kStart = kStart, kLen = kLen](Value x) {
          return sequenceRows(cg, x, kStart, kLen);
        };
        emitKvHead(bi, c0, hk, seq, rowsQ(q), rowsK(k), rowsK(v), rowsQ(dO),
                   rowsQ(lse), rowsK(dk), rowsK(dv), rowsQ(dr), rowsQ(dqAcc));
      });

  // dQ = scale * dQacc, converted to the element type. With rotary, rotated
  // back (R^T) at each row's position, i + Nk - Nq of its sequence: in the
  // varlen form a loop over each sequence's rows.
  auto rotateBack = [&](Value bi, Value h, Value row, Value pos) {
    auto elem = [&](Value e) {
      return memref::LoadOp::create(b, dqAcc, ValueRange{bi, h, row, e})
          .getResult();
    };
    cg.forLoop(c0, dIdx, [&](Value d) {
      Value x = rot.element(cg, elem, d, pos, /*inverse=*/true);
      cg.store(cg.fmul(x, cg.f32(scale)), dq, {bi, h, row, d});
    });
  };
  if (rot && varlen) {
    cg.parallel({cg.sub(cg.dim(op.getCuSeqlensQ(), 0), c1), sh.Hq},
                [&](ValueRange ivs) {
                  auto [qStart, qLen] =
                      sequenceRange(cg, op.getCuSeqlensQ(), ivs[0]);
                  Value kLen =
                      sequenceRange(cg, op.getCuSeqlensK(), ivs[0]).second;
                  Value off = cg.sub(kLen, qLen);
                  cg.forLoop(c0, qLen, [&](Value i) {
                    rotateBack(c0, ivs[1], cg.add(qStart, i), cg.add(i, off));
                  });
                });
  } else {
    cg.parallel({sh.B, sh.Hq, sh.Nq}, [&](ValueRange ivs) {
      if (rot)
        return rotateBack(ivs[0], ivs[1], ivs[2], cg.add(ivs[2], sh.off));
      forChunks(dChunks, [&](Value col, int64_t w) {
        SmallVector<Value> ix{ivs[0], ivs[1], ivs[2], col};
        Value x = vc.load(dqAcc, ix, w);
        vc.store(arith::MulFOp::create(b, x, vc.splat(scale, w)), dq, ix);
      });
    });
  }
  // d sinks[h] = -sum_{b,i} exp(sinks[h] - lse[b,h,i]) Dr[b,h,i], over the
  // rows of every sequence (in the varlen form the packed rows up to
  // cu_seqlens_q[batch]; later rows belong to no sequence).
  if (Value gradSinks = op.getGradSinks()) {
    Value nRows = sh.Nq;
    if (varlen) {
      Value last = cg.sub(cg.dim(op.getCuSeqlensQ(), 0), c1);
      nRows = arith::IndexCastOp::create(
          b, b.getIndexType(),
          memref::LoadOp::create(b, op.getCuSeqlensQ(), ValueRange{last}));
    }
    cg.parallel({sh.Hq}, [&](ValueRange iv) {
      Value h = iv[0];
      Value sink = mods.sink(cg, h, kLog2e);
      Value acc = cg.reduce(c0, sh.B, cg.f32(0.0), [&](Value bi, Value acc) {
        return cg.reduce(c0, nRows, acc, [&](Value i, Value acc) {
          Value l = memref::LoadOp::create(b, lse, ValueRange{bi, h, i});
          Value d = memref::LoadOp::create(b, dr, ValueRange{bi, h, i});
          Value ps = cg.exp2(cg.fsub(sink, cg.fmul(l, cg.f32(kLog2e))));
          return cg.fsub(acc, cg.fmul(ps, d));
        });
      });
      memref::StoreOp::create(b, acc, gradSinks, ValueRange{h});
    });
  }
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
    if (failed(checkTiling(getOperation(), "attn-tile-backward", "option ",
                           blockM, blockN, vectorWidth)))
      return signalPassFailure();
    SmallVector<AttentionBackwardOp> ops;
    getOperation()->walk([&](AttentionBackwardOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionBackwardOp op : ops) {
      TileSizes sizes = getTileSizes(op, {blockM, blockN});
      if (failed(tileAttentionBackward(rewriter, op, sizes, vectorWidth)))
        return signalPassFailure();
    }
  }
};
} // namespace
