//===- AttnRaiseLinalg.cpp - attn-raise-linalg ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Replaces naive attention in linalg on tensors (recognised by
// RaiseLinalgMatch.cpp) with attn.attention: operands brought to
// [B, H, N, D] (linalg.transpose where they are read in another order,
// tensor.expand_shape for [B*H, N, D]), K and V sliced to the keys a
// padding mask leaves, the result put back into the original output's
// order and rank. The ops of the naive form become dead and are erased.
//
//===----------------------------------------------------------------------===//

#include "RaiseLinalgMatch.h"

#include "flashmlir/Dialect/Attn/IR/AttnDialect.h"
#include "flashmlir/Dialect/Attn/IR/AttnOps.h"
#include "flashmlir/Dialect/Attn/Transforms/Passes.h"
#include "flashmlir/Dialect/Attn/Transforms/Transforms.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNRAISELINALGPASS
#include "flashmlir/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using raise::NaiveAttention;
using raise::View;

namespace {

/// `v.source` in canonical order (a linalg.transpose unless it already is).
Value canonical(OpBuilder &b, Location loc, const View &v) {
  if (v.isIdentity())
    return v.source;
  auto type = cast<RankedTensorType>(v.source.getType());
  SmallVector<int64_t> shape;
  for (int64_t p : v.perm)
    shape.push_back(type.getDimSize(p));
  Value init = tensor::EmptyOp::create(b, loc, shape, type.getElementType());
  return linalg::TransposeOp::create(b, loc, v.source, init, v.perm)
      ->getResult(0);
}

/// [B*H, N, D] -> [1, B*H, N, D]; 4-D values unchanged.
Value to4d(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getRank() == 4)
    return v;
  SmallVector<int64_t> shape{1};
  llvm::append_range(shape, type.getShape());
  return tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get(shape, type.getElementType()), v,
      SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
}

/// The first `keys` rows of dim 2 of a [B, H, N, D] value.
Value firstKeys(OpBuilder &b, Location loc, Value v, int64_t keys) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getDimSize(2) == keys)
    return v;
  SmallVector<OpFoldResult> offsets(4, b.getIndexAttr(0)),
      strides(4, b.getIndexAttr(1)), sizes;
  for (int64_t d = 0; d < 4; ++d)
    sizes.push_back(b.getIndexAttr(d == 2 ? keys : type.getDimSize(d)));
  return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes, strides);
}

} // namespace

FailureOr<AttentionOp> mlir::attn::raiseNaiveAttention(RewriterBase &rewriter,
                                                       Operation *op,
                                                       std::string *why) {
  auto pv = dyn_cast<linalg::LinalgOp>(op);
  NaiveAttention na;
  std::string reason;
  if (!pv || !raise::matchNaiveAttention(pv, na, reason)) {
    if (why)
      *why = pv ? reason : "not a linalg op";
    return failure();
  }
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(pv);
  Location loc = pv->getLoc();
  Value q = to4d(rewriter, loc, canonical(rewriter, loc, na.q));
  Value k = to4d(rewriter, loc, canonical(rewriter, loc, na.k.view));
  Value v = to4d(rewriter, loc, canonical(rewriter, loc, na.v.view));
  k = firstKeys(rewriter, loc, k, na.keys);
  v = firstKeys(rewriter, loc, v, na.keys);

  auto qType = cast<RankedTensorType>(q.getType());
  auto vType = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> oShape{qType.getDimSize(0), qType.getDimSize(1),
                              qType.getDimSize(2), vType.getDimSize(3)};
  Value init = tensor::EmptyOp::create(rewriter, loc, oShape,
                                       qType.getElementType());
  DenseI64ArrayAttr window;
  if (na.windowLeft != -1 || na.windowRight != -1)
    window = rewriter.getDenseI64ArrayAttr({na.windowLeft, na.windowRight});
  auto attention = AttentionOp::create(
      rewriter, loc, TypeRange{init.getType()}, q, k, v, init, Value(),
      /*cu_seqlens_q=*/Value(), /*cu_seqlens_k=*/Value(),
      /*max_seqlen_q=*/Value(), /*max_seqlen_k=*/Value(),
      /*cache_seqlens=*/Value(), /*block_table=*/Value(),
      /*alibi_slopes=*/Value(), /*sinks=*/Value(), /*rotary_cos=*/Value(),
      /*rotary_sin=*/Value(), rewriter.getF64FloatAttr(na.scale),
      na.causal ? rewriter.getUnitAttr() : UnitAttr(), window, FloatAttr(),
      DenseI64ArrayAttr(), /*rotary_interleaved=*/UnitAttr());

  // Back to the original output: rank, then dim order.
  Value result = attention->getResult(0);
  if (na.batchRank == 1) {
    SmallVector<int64_t> shape{oShape[0] * oShape[1], oShape[2], oShape[3]};
    result = tensor::CollapseShapeOp::create(
        rewriter, loc, RankedTensorType::get(shape, qType.getElementType()),
        result, SmallVector<ReassociationIndices>{{0, 1}, {2}, {3}});
  }
  View back{result, na.outPerm};
  result = canonical(rewriter, loc, back);
  if (result.getType() != pv->getResult(0).getType())
    return rewriter.notifyMatchFailure(pv, "result type mismatch (internal)");
  rewriter.replaceOp(pv, result);
  return attention;
}

namespace {

struct RaiseNaiveAttention final
    : public OpInterfaceRewritePattern<linalg::LinalgOp> {
  using OpInterfaceRewritePattern::OpInterfaceRewritePattern;
  LogicalResult matchAndRewrite(linalg::LinalgOp op,
                                PatternRewriter &rewriter) const override {
    std::string why;
    if (failed(raiseNaiveAttention(rewriter, op, &why)))
      return rewriter.notifyMatchFailure(op, why);
    return success();
  }
};

struct AttnRaiseLinalgPass final
    : public mlir::attn::impl::AttnRaiseLinalgPassBase<AttnRaiseLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateAttnRaiseLinalgPatterns(patterns);
    // Only the raising: no folding, constant CSE or region simplification of
    // the rest of the model (the naive ops left dead are erased).
    GreedyRewriteConfig config;
    config.enableFolding(false).enableConstantCSE(false);
    config.setRegionSimplificationLevel(GreedySimplifyRegionLevel::Disabled);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns),
                                     config)))
      signalPassFailure();
  }
};

} // namespace

void mlir::attn::populateAttnRaiseLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<RaiseNaiveAttention>(patterns.getContext());
}
