//===- AttnTileForward.cpp - attn-tile-forward ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn.attention (memrefs) -> tiled loops with online softmax. See the pass
// description in Passes.td for the algorithm.
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
                                               AttentionOp op, TileSizes sizes,
                                               int64_t vectorWidth) {
  if (failed(checkLowerable(op, "attn-tile-forward", /*varlenSupported=*/true,
                            /*kvCacheSupported=*/true,
                            /*scoreModsSupported=*/true)))
    return failure();
  if (failed(checkOpTiling(op, "attn-tile-forward", op.getQuery(),
                           op.getValue(), sizes.blockM, sizes.blockN,
                           vectorWidth)))
    return failure();

  ImplicitLocOpBuilder b(op.getLoc(), rewriter);
  b.setInsertionPoint(op);
  Codegen cg(b);
  VecCodegen vc(cg, vectorWidth);
  // The variable-length form runs on batch-1 views of the packed operands;
  // each sequence is a slice of their rows (below).
  const bool varlen = op.isVarlen();
  auto view = [&](Value x) { return varlen && x ? packedAsDense(cg, x) : x; };
  Value qAll = view(op.getQuery()), kAll = view(op.getKey()),
        vAll = view(op.getValue()), oAll = view(op.getOutput()),
        lseAll = view(op.getLse());
  AttnShape shAll = getShape(cg, qAll, kAll, vAll);
  MaskSpec mask = op.getMaskSpec();
  ScoreMods mods = ScoreMods::of(op);
  UserRegions regions = UserRegions::of(op);
  Rotary rot = Rotary::of(op);
  std::optional<double> softcap;
  if (std::optional<APFloat> c = op.getSoftcap())
    softcap = c->convertToDouble();
  double scale = op.getScaleValue();
  const int64_t BM = sizes.blockM, BN = sizes.blockN;
  Value bm = cg.idx(BM), bn = cg.idx(BN), c0 = cg.idx(0), c1 = cg.idx(1);
  Value numQBlocks = cg.ceilDiv(shAll.Nq, bm);
  if (varlen) {
    shAll.B = cg.sub(cg.dim(op.getCuSeqlensQ(), 0), c1);
    numQBlocks = cg.ceilDiv(op.getMaxSeqlenQ(), bm);
  }
  // Queries run along the vectors of S^T, the value columns along those of
  // the accumulator.
  SmallVector<int64_t> qChunks = vc.chunks(BM), vChunks = vc.chunks(shAll.Dv);
  // Q^T is packed pre-scaled: S^T = K Q^T is then the score in the log2
  // domain, or its argument of tanh with softcap.
  double qScale = softcap ? scale / *softcap : scale * kLog2e;
  Type i32 = b.getI32Type();
  auto toI32 = [&](Value x) {
    return arith::IndexCastOp::create(b, i32, x).getResult();
  };

  // Key / value element indices: [bi, hk, row, d], or for a paged KV cache
  // row `row % block_size` of block `block_table[bi, row / block_size]`.
  Value blockTable = op.getBlockTable();
  auto kvIndex = [&](Value bi, Value hk, Value row, Value d) {
    if (!blockTable)
      return SmallVector<Value>{bi, hk, row, d};
    Value bs = cg.dim(kAll, 2);
    Value slot = arith::DivUIOp::create(b, row, bs);
    Value blk = arith::IndexCastOp::create(
        b, b.getIndexType(),
        memref::LoadOp::create(b, blockTable, ValueRange{bi, slot}));
    return SmallVector<Value>{blk, hk, arith::RemUIOp::create(b, row, bs), d};
  };

  // One (sequence, query head, query block) with its operands and shape;
  // `seq` is the sequence's index in the batch (bi is 0 in the varlen form).
  auto emitBlock = [&](Value seq, Value bi, Value h, Value qb,
                       const AttnShape &sh, Value q, Value k, Value v, Value o,
                       Value lse) {
    Value hk = cg.divs(h, sh.group);
    // ALiBi slope and sink logit of the head, in the log2 domain.
    Value negSlope = mods.negSlope(cg, seq, h, kLog2e);
    Value sink = mods.sink(cg, h, kLog2e);
    Value kMax = cg.sub(sh.Nk, c1);

    Value q0 = cg.mul(qb, bm);
    Value rows = cg.min(bm, cg.sub(sh.Nq, q0));
    Value qLast = cg.sub(cg.add(q0, rows), c1);

    // Per-block state: Q^T, scores/probabilities S^T (keys x queries), the
    // accumulator, row max, sum and rescale factor.
    Value qt = cg.alloc({sh.D, BM});
    Value st = cg.alloc({BN, BM});
    Value acc = cg.alloc({BM, sh.Dv});
    Value mRow = cg.alloc({BM});
    Value lRow = cg.alloc({BM});
    Value aRow = cg.alloc({BM});

    // Q^T, zero in the columns past the last row.
    cg.forLoop(c0, bm, [&](Value i) {
      Value valid = cg.cmp(arith::CmpIPredicate::slt, i, rows);
      Value qi = cg.min(cg.add(q0, i), cg.sub(sh.Nq, c1));
      cg.forLoop(c0, cg.idx(sh.D), [&](Value d) {
        // With rotary: the row rotated at its position qi + off.
        auto row = [&](Value e) { return cg.load(q, {bi, h, qi, e}); };
        Value x = rot ? rot.element(cg, row, d, cg.add(qi, sh.off)) : row(d);
        x = cg.fmul(x, cg.f32(qScale));
        memref::StoreOp::create(b, cg.select(valid, x, cg.f32(0.0)), qt,
                                ValueRange{d, i});
      });
    });
    // The running max and sum start from the sink (m = sink, l = 1): it is
    // one more logit of every row, with a zero value row.
    int64_t col = 0;
    for (int64_t w : qChunks) {
      vector::StoreOp::create(
          b, sink ? vc.broadcast(sink, w) : vc.splat(-INFINITY, w), mRow,
          cg.idx(col));
      vector::StoreOp::create(b, vc.splat(sink ? 1.0 : 0.0, w), lRow,
                              cg.idx(col));
      col += w;
    }
    cg.forLoop(c0, bm, [&](Value i) {
      int64_t col = 0;
      for (int64_t w : vChunks) {
        vector::StoreOp::create(b, vc.splat(0.0, w), acc,
                                ValueRange{i, cg.idx(col)});
        col += w;
      }
    });

    // The keys any row of the block can see: [kLo, kHi).
    Value kLo = c0, kHi = sh.Nk;
    if (mask.left >= 0)
      kLo = cg.max(c0, cg.sub(cg.add(q0, sh.off), cg.idx(mask.left)));
    if (mask.right >= 0)
      kHi =
          cg.min(sh.Nk, cg.add(cg.add(qLast, sh.off), cg.idx(mask.right + 1)));
    Value kbLo = cg.divs(kLo, bn);
    Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

    cg.forLoop(kbLo, kbHi, [&](Value kb) {
      Value k0 = cg.mul(kb, bn);
      Value cols = cg.min(bn, cg.sub(sh.Nk, k0));
      auto blockBody = [&] {
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

        // S^T = K Q^T (rows past the last key read the last key; masked).
        vc.outerProduct(OuterProduct{
            bn, qChunks, c0, cg.idx(sh.D),
            [&](Value j, Value d) {
              Value kj = cg.min(cg.add(k0, j), kMax);
              auto row = [&](Value e) {
                return cg.load(k, kvIndex(bi, hk, kj, e));
              };
              return rot ? rot.element(cg, row, d, kj) : row(d);
            },
            [&](Value d, int64_t col, int64_t w) {
              return vc.load(qt, {d, cg.idx(col)}, w);
            },
            nullptr,
            [&](Value j, int64_t col, Value s) {
              vector::StoreOp::create(b, s, st, ValueRange{j, cg.idx(col)});
            }});

        // Softcap: S = c tanh(s / c), in the log2 domain.
        if (softcap)
          cg.forLoop(c0, bn, [&](Value j) {
            int64_t col = 0;
            for (int64_t w : qChunks) {
              Value s = vc.load(st, {j, cg.idx(col)}, w);
              s = arith::MulFOp::create(b, vc.tanh(s),
                                        vc.splat(*softcap * kLog2e, w));
              vector::StoreOp::create(b, s, st, ValueRange{j, cg.idx(col)});
              col += w;
            }
          });

        // ALiBi: S += -slope |qi + off - kj| (log2 domain), queries along the
        // vectors.
        if (negSlope)
          cg.forLoop(c0, bn, [&](Value j) {
            Value base = cg.sub(cg.add(k0, j), sh.off); // kj's diagonal query
            int64_t col = 0;
            for (int64_t w : qChunks) {
              Value qi = arith::AddIOp::create(
                  b, vc.broadcast(toI32(cg.add(q0, cg.idx(col))), w),
                  vc.iota(w));
              Value dist =
                  arith::SubIOp::create(b, qi, vc.broadcast(toI32(base), w));
              Value s =
                  vc.addAlibi(vc.load(st, {j, cg.idx(col)}, w), dist, negSlope);
              vector::StoreOp::create(b, s, st, ValueRange{j, cg.idx(col)});
              col += w;
            }
          });

        // User regions, a score at a time over the valid keys and queries
        // (mask_mod on every block, as it may mask anything).
        if (regions)
          cg.forLoop(c0, cols, [&](Value j) {
            Value kj = cg.add(k0, j);
            cg.forLoop(c0, rows, [&](Value i) {
              Value qi = cg.add(q0, i);
              Value s = memref::LoadOp::create(b, st, ValueRange{j, i});
              s = applyUserRegions(cg, regions, s, kLog2e, seq, h, qi, kj);
              memref::StoreOp::create(b, s, st, ValueRange{j, i});
            });
          });

        // Boundary blocks: -inf where key j is past the end or not visible to
        // query i (i runs along the vectors).
        auto maskScores = [&] {
          cg.forLoop(c0, bn, [&](Value j) {
            Value kj = cg.add(k0, j);
            Value inRange = cg.cmp(arith::CmpIPredicate::slt, kj, sh.Nk);
            Value base = cg.sub(kj, sh.off); // the query on kj's diagonal
            int64_t col = 0;
            for (int64_t w : qChunks) {
              Value qi = arith::AddIOp::create(
                  b, vc.broadcast(toI32(cg.add(q0, cg.idx(col))), w),
                  vc.iota(w));
              Value vis = vc.broadcast(inRange, w);
              if (mask.right >= 0) // kj <= qi + off + right
                vis = arith::AndIOp::create(
                    b, vis,
                    arith::CmpIOp::create(
                        b, arith::CmpIPredicate::sge, qi,
                        vc.broadcast(toI32(cg.sub(base, cg.idx(mask.right))),
                                     w)));
              if (mask.left >= 0) // kj >= qi + off - left
                vis = arith::AndIOp::create(
                    b, vis,
                    arith::CmpIOp::create(
                        b, arith::CmpIPredicate::sle, qi,
                        vc.broadcast(toI32(cg.add(base, cg.idx(mask.left))),
                                     w)));
              Value s = vc.load(st, {j, cg.idx(col)}, w);
              s = arith::SelectOp::create(b, vis, s, vc.splat(-INFINITY, w));
              vector::StoreOp::create(b, s, st, ValueRange{j, cg.idx(col)});
              col += w;
            }
          });
        };
        cg.ifElse(
            full, [] {}, maskScores);

        // Online softmax, a vector of queries at a time: new row max, rescale
        // factor, P = exp2(S - m), row sums.
        auto nnan = arith::FastMathFlags::nnan;
        SmallVector<Value> mOld;
        col = 0;
        for (int64_t w : qChunks) {
          mOld.push_back(vc.load(mRow, {cg.idx(col)}, w));
          col += w;
        }
        SmallVector<Value> mNew =
            vc.loop(c0, bn, mOld, [&](Value j, ValueRange m) {
              SmallVector<Value> next;
              int64_t col = 0;
              for (auto [c, w] : llvm::enumerate(qChunks)) {
                next.push_back(arith::MaxNumFOp::create(
                    b, m[c], vc.load(st, {j, cg.idx(col)}, w), nnan));
                col += w;
              }
              return next;
            });
        SmallVector<Value> mUse, zeros;
        col = 0;
        for (auto [c, w] : llvm::enumerate(qChunks)) {
          // A row that has seen no key yet keeps m = -inf; subtract 0 then so
          // that exp2(-inf - -inf) never makes a NaN.
          Value isEmpty = arith::CmpFOp::create(
              b, arith::CmpFPredicate::OEQ, mNew[c], vc.splat(-INFINITY, w));
          mUse.push_back(
              arith::SelectOp::create(b, isEmpty, vc.splat(0.0, w), mNew[c]));
          Value alpha = vc.exp2(arith::SubFOp::create(b, mOld[c], mUse[c]));
          vector::StoreOp::create(b, alpha, aRow, cg.idx(col));
          vector::StoreOp::create(b, mNew[c], mRow, cg.idx(col));
          zeros.push_back(vc.splat(0.0, w));
          col += w;
        }
        SmallVector<Value> rowSum =
            vc.loop(c0, bn, zeros, [&](Value j, ValueRange l) {
              SmallVector<Value> next;
              int64_t col = 0;
              for (auto [c, w] : llvm::enumerate(qChunks)) {
                Value s = vc.load(st, {j, cg.idx(col)}, w);
                Value p = vc.exp2(arith::SubFOp::create(b, s, mUse[c]));
                vector::StoreOp::create(b, p, st, ValueRange{j, cg.idx(col)});
                next.push_back(arith::AddFOp::create(b, l[c], p));
                col += w;
              }
              return next;
            });
        col = 0;
        for (auto [c, w] : llvm::enumerate(qChunks)) {
          Value alpha = vc.load(aRow, {cg.idx(col)}, w);
          Value l = vc.load(lRow, {cg.idx(col)}, w);
          vector::StoreOp::create(b, vc.fma(l, alpha, rowSum[c]), lRow,
                                  cg.idx(col));
          col += w;
        }

        // acc = alpha acc + P V (P read from S^T, a scalar per query and key).
        vc.outerProduct(OuterProduct{
            bm, vChunks, c0, cols,
            [&](Value i, Value j) {
              return memref::LoadOp::create(b, st, ValueRange{j, i})
                  .getResult();
            },
            [&](Value j, int64_t col, int64_t w) {
              return vc.load(v, kvIndex(bi, hk, cg.add(k0, j), cg.idx(col)), w);
            },
            [&](Value i, int64_t col, int64_t w) {
              Value alpha = memref::LoadOp::create(b, aRow, i);
              return arith::MulFOp::create(b, vc.load(acc, {i, cg.idx(col)}, w),
                                           vc.broadcast(alpha, w))
                  .getResult();
            },
            [&](Value i, int64_t col, Value a) {
              vector::StoreOp::create(b, a, acc, ValueRange{i, cg.idx(col)});
            }});
      };
      // A mask_mod that keeps no (query, key) pair of the block skips it
      // (FlexAttention's block mask, computed here instead of ahead).
      if (regions.maskMod)
        cg.ifElse(
            maskModKeepsAny(cg, *regions.maskMod, seq, h, q0, rows, k0, cols),
            blockBody, [] {});
      else
        blockBody();
    });

    // Epilogue: O = acc / l, lse = (m + log2 l) ln 2; empty rows: 0, -inf.
    cg.forLoop(c0, rows, [&](Value i) {
      Value qi = cg.add(q0, i);
      Value l = memref::LoadOp::create(b, lRow, i);
      Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
      Value inv = cg.select(any, cg.fdiv(cg.f32(1.0), l), cg.f32(0.0));
      int64_t col = 0;
      for (int64_t w : vChunks) {
        Value a = vc.load(acc, {i, cg.idx(col)}, w);
        vc.store(arith::MulFOp::create(b, a, vc.broadcast(inv, w)), o,
                 {bi, h, qi, cg.idx(col)});
        col += w;
      }
      if (lse) {
        Value m = memref::LoadOp::create(b, mRow, i);
        Value val = cg.fmul(cg.fadd(m, cg.log2(l)), cg.f32(kLn2));
        cg.store(cg.select(any, val, cg.negInf()), lse, {bi, h, qi});
      }
    });
    for (Value buf : {qt, st, acc, mRow, lRow, aRow})
      memref::DeallocOp::create(b, buf);
  };

  cg.parallel({shAll.B, shAll.Hq, numQBlocks}, [&](ValueRange ivs) {
    Value bi = ivs[0], h = ivs[1], qb = ivs[2];
    AttnShape sh = shAll;
    Value q = qAll, k = kAll, v = vAll, o = oAll, lse = lseAll;
    if (varlen) {
      // Sequence bi: its rows, lengths and diagonal offset; batch index 0
      // of the slices.
      auto [qStart, qLen] = sequenceRange(cg, op.getCuSeqlensQ(), bi);
      auto [kStart, kLen] = sequenceRange(cg, op.getCuSeqlensK(), bi);
      q = sequenceRows(cg, qAll, qStart, qLen);
      o = sequenceRows(cg, oAll, qStart, qLen);
      if (lse)
        lse = sequenceRows(cg, lseAll, qStart, qLen);
      k = sequenceRows(cg, kAll, kStart, kLen);
      v = sequenceRows(cg, vAll, kStart, kLen);
      sh.Nq = qLen;
      sh.Nk = kLen;
      sh.off = cg.sub(kLen, qLen);
      Value seq = bi;
      bi = c0;
      // Query blocks past the sequence's end have nothing to do.
      cg.ifElse(
          cg.cmp(arith::CmpIPredicate::slt, cg.mul(qb, bm), qLen),
          [&] { emitBlock(seq, bi, h, qb, sh, q, k, v, o, lse); }, [] {});
    } else {
      if (op.isKvCache()) {
        // Sequence bi uses its first cache_seqlens[bi] cached keys.
        sh.Nk = arith::IndexCastOp::create(
            b, b.getIndexType(),
            memref::LoadOp::create(b, op.getCacheSeqlens(), ValueRange{bi}));
        sh.off = cg.sub(sh.Nk, sh.Nq);
      }
      emitBlock(bi, bi, h, qb, sh, q, k, v, o, lse);
    }
  });

  rewriter.eraseOp(op);
  return success();
}

namespace {
struct AttnTileForwardPass final
    : mlir::attn::impl::AttnTileForwardPassBase<AttnTileForwardPass> {
  using Base::Base;

  void runOnOperation() override {
    if (failed(checkTiling(getOperation(), "attn-tile-forward", "option ",
                           blockM, blockN, vectorWidth)))
      return signalPassFailure();
    SmallVector<AttentionOp> ops;
    getOperation()->walk([&](AttentionOp op) { ops.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (AttentionOp op : ops) {
      TileSizes sizes = getTileSizes(op, {blockM, blockN});
      if (failed(tileAttentionForward(rewriter, op, sizes, vectorWidth)))
        return signalPassFailure();
    }
  }
};
} // namespace
