//===- RaiseLinalgMatch.cpp - naive attention in linalg, recognised ------===//
//
// Part of FlashMLIR.
//
// Walks backwards from a contraction O = contract(P, V): P must be a softmax
// over the last dim (linalg.softmax or max / sub / exp / sum / div), its
// input a chain of scalings and at most one constant additive mask over
// S = contract(Q, K). Every op of the chain must be used only inside it.
// The mask is proved equal to causal / window / key-padding entry by entry.
//
//===----------------------------------------------------------------------===//

#include "RaiseLinalgMatch.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <limits>
#include <optional>

using namespace mlir;
using namespace mlir::attn::raise;

bool View::isIdentity() const {
  for (auto [i, p] : llvm::enumerate(perm))
    if (p != int64_t(i))
      return false;
  return true;
}

namespace {

/// Masked entries: -inf, or finite values this negative (exp underflows to
/// exactly 0 against any visible score of magnitude < 1e29).
constexpr double kMaskedAtOrBelow = -1e30;

bool fail(std::string &why, const std::string &msg) {
  why = msg;
  return false;
}

//===----------------------------------------------------------------------===//
// Constants and bodies
//===----------------------------------------------------------------------===//

/// A float scalar: arith.constant, or a splat (or 0-d) constant tensor.
std::optional<double> floatConstant(Value v) {
  Attribute attr;
  if (!v || !matchPattern(v, m_Constant(&attr)))
    return std::nullopt;
  if (auto f = dyn_cast<FloatAttr>(attr))
    return f.getValueAsDouble();
  if (auto d = dyn_cast<DenseFPElementsAttr>(attr))
    if (d.isSplat())
      return d.getSplatValue<APFloat>().convertToDouble();
  return std::nullopt;
}

/// A reduction init or fill value: the constant a linalg.fill writes, or a
/// splat constant tensor.
std::optional<double> filledWith(Value init) {
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return floatConstant(fill.getInputs()[0]);
  return floatConstant(init);
}

bool isLowest(double x, Type elem) {
  if (std::isinf(x))
    return x < 0;
  auto ft = dyn_cast<FloatType>(elem);
  if (!ft)
    return false;
  APFloat lowest = APFloat::getLargest(ft.getFloatSemantics(), /*Negative=*/true);
  return x <= lowest.convertToDouble();
}

/// The ops of a linalg op's body before its linalg.yield, or empty when the
/// yield does not yield exactly the last of them.
SmallVector<Operation *> bodyOps(linalg::LinalgOp op) {
  SmallVector<Operation *> ops;
  for (Operation &o : op.getBlock()->without_terminator())
    ops.push_back(&o);
  return ops;
}

bool allParallel(linalg::LinalgOp op) {
  return llvm::all_of(op.getIteratorTypesArray(), [](utils::IteratorType t) {
    return t == utils::IteratorType::parallel;
  });
}

bool staticShape(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && t.hasStaticShape();
}

/// An element-wise op over one rank: pure tensors, all loops parallel, one
/// result with the identity map.
bool isElementwise(linalg::LinalgOp op) {
  return op && op.hasPureTensorSemantics() && op->getNumResults() == 1 &&
         op.getNumDpsInits() == 1 && allParallel(op) &&
         op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity();
}

/// The value `arg` stands for in op's body: a block argument -> its operand;
/// anything else (a captured or in-body constant) itself.
Value operandOf(linalg::LinalgOp op, Value arg) {
  if (auto ba = dyn_cast<BlockArgument>(arg))
    if (ba.getOwner() == op.getBlock())
      return op->getOperand(ba.getArgNumber());
  return arg;
}

//===----------------------------------------------------------------------===//
// Views: transposes and GQA repeats
//===----------------------------------------------------------------------===//

/// A copy that only permutes dims (linalg.transpose, or a linalg.generic
/// yielding its one input through permutation maps): result dim r is input
/// dim p[r].
std::optional<SmallVector<int64_t>> permutationOf(Operation *def) {
  auto op = dyn_cast_or_null<linalg::LinalgOp>(def);
  if (!op || !op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || !allParallel(op) || !bodyOps(op).empty())
    return std::nullopt;
  auto yield = cast<linalg::YieldOp>(op.getBlock()->getTerminator());
  if (yield.getNumOperands() != 1 ||
      yield.getOperand(0) != op.getBlock()->getArgument(0))
    return std::nullopt;
  AffineMap in = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (!in.isPermutation() || !out.isPermutation())
    return std::nullopt;
  SmallVector<int64_t> p(out.getNumResults());
  for (unsigned r = 0; r < out.getNumResults(); ++r)
    for (unsigned d = 0; d < in.getNumResults(); ++d)
      if (in.getDimPosition(d) == out.getDimPosition(r))
        p[r] = d;
  return p;
}

/// `v` looked through permuting copies.
View lookThroughTransposes(View v) {
  while (auto p = permutationOf(v.source.getDefiningOp())) {
    Operation *def = v.source.getDefiningOp();
    for (int64_t &c : v.perm)
      c = (*p)[c];
    v.source = def->getOperand(0);
  }
  return v;
}

/// The operand of a copy that broadcasts `in` into `out` with a new dim
/// `dim` (linalg.broadcast, or a linalg.generic whose input map drops `dim`
/// or maps it to 0 on a size-1 dim of a tensor.expand_shape of a [.. rank-1]
/// tensor).
Value broadcastSource(Value out, unsigned dim) {
  Operation *def = out.getDefiningOp();
  if (auto b = dyn_cast_or_null<linalg::BroadcastOp>(def))
    return b.getDimensions() == ArrayRef<int64_t>{int64_t(dim)} ? b.getInput()
                                                                  : Value();
  auto op = dyn_cast_or_null<linalg::LinalgOp>(def);
  if (!op || op.getNumDpsInputs() != 1 || op.getNumDpsInits() != 1 ||
      !allParallel(op) || !bodyOps(op).empty() ||
      !op.getMatchingIndexingMap(op.getDpsInitOperand(0)).isIdentity())
    return {};
  auto yield = cast<linalg::YieldOp>(op.getBlock()->getTerminator());
  if (yield.getOperand(0) != op.getBlock()->getArgument(0))
    return {};
  AffineMap in = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  unsigned rank = op.getNumLoops();
  Value src = op.getDpsInputOperand(0)->get();
  if (in.getNumResults() == rank - 1) { // (d0, .., d_dim missing, ..)
    for (unsigned r = 0, d = 0; d < rank; ++d) {
      if (d == dim)
        continue;
      if (!in.isFunctionOfDim(d) || in.getDimPosition(r++) != d)
        return {};
    }
    return src;
  }
  if (in.getNumResults() != rank) // (.., 0 at dim, ..) on a size-1 dim
    return {};
  for (unsigned d = 0; d < rank; ++d) {
    AffineExpr e = in.getResult(d);
    if (d == dim ? !isa<AffineConstantExpr>(e) ||
                       cast<AffineConstantExpr>(e).getValue() != 0
                 : e != getAffineDimExpr(d, in.getContext()))
      return {};
  }
  auto expand = src.getDefiningOp<tensor::ExpandShapeOp>();
  if (!expand || expand.getSrcType().getRank() != int64_t(rank) - 1)
    return {};
  return expand.getSrc();
}

/// [B, Hkv*G, N, D] built as collapse([B, Hkv, G, N, D] broadcast of
/// [B, Hkv, N, D]): each kv head repeated G times in a row. Returns the
/// [B, Hkv, N, D] tensor and G.
std::optional<std::pair<Value, int64_t>> repeatInterleaveSource(Value v) {
  auto collapse = v.getDefiningOp<tensor::CollapseShapeOp>();
  if (!collapse || collapse.getSrcType().getRank() != 5)
    return std::nullopt;
  auto re = collapse.getReassociationIndices();
  if (re.size() != 4 || re[1] != ReassociationIndices{1, 2})
    return std::nullopt;
  Value src = broadcastSource(collapse.getSrc(), 2);
  if (!src || !staticShape(src))
    return std::nullopt;
  return std::make_pair(src, collapse.getSrcType().getDimSize(2));
}

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

struct Contraction {
  SmallVector<unsigned> batch;
  unsigned m = 0, n = 0, k = 0;
};

/// C[batch.., m, n] = sum_k A[batch.., m, k] * B[batch.., n, k] (any operand
/// dim order), mul/add of one element type, zero init, static shapes.
bool matchContraction(linalg::LinalgOp op, Contraction &c, std::string &why) {
  if (!op || !op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return fail(why, "not a two-input linalg op on tensors");
  if (!linalg::isaContractionOpInterface(op))
    return fail(why, "not a mul/add contraction");
  Type elem = getElementTypeOrSelf(op->getResult(0).getType());
  if (!elem.isF32() && !elem.isF16() && !elem.isBF16())
    return fail(why, "element type is not f16, bf16 or f32");
  for (Value in : op.getDpsInputs())
    if (getElementTypeOrSelf(in.getType()) != elem)
      return fail(why, "mixed element types (an accumulation in another type)");
  auto ops = bodyOps(op);
  if (ops.size() != 2 || !isa<arith::MulFOp>(ops[0]) ||
      !isa<arith::AddFOp>(ops[1]))
    return fail(why, "contraction body is not exactly mulf + addf");
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || dims->m.size() != 1 || dims->n.size() != 1 ||
      dims->k.size() != 1 || dims->batch.empty() || dims->batch.size() > 2)
    return fail(why, "not a batched contraction with one m, n and k dim");
  for (int64_t s : op.getStaticLoopRanges())
    if (ShapedType::isDynamic(s))
      return fail(why, "dynamic shapes");
  std::optional<double> zero = filledWith(op.getDpsInits()[0]);
  if (!zero || *zero != 0.0)
    return fail(why, "contraction init is not zero");
  c.batch.assign(dims->batch.begin(), dims->batch.end());
  c.m = dims->m[0];
  c.n = dims->n[0];
  c.k = dims->k[0];
  return true;
}

/// Operand `idx` of `op` seen in the loop-dim order `want`.
std::optional<View> viewOf(linalg::LinalgOp op, unsigned idx,
                           ArrayRef<unsigned> want) {
  OpOperand &opnd = op->getOpOperand(idx);
  AffineMap map = op.getMatchingIndexingMap(&opnd);
  if (!map.isProjectedPermutation() || map.getNumResults() != want.size())
    return std::nullopt;
  View v{opnd.get(), {}};
  for (unsigned loop : want) {
    std::optional<unsigned> pos = map.getResultPosition(
        getAffineDimExpr(loop, op.getContext()));
    if (!pos)
      return std::nullopt;
    v.perm.push_back(*pos);
  }
  return v;
}

SmallVector<unsigned> order(const Contraction &c, unsigned a, unsigned b) {
  SmallVector<unsigned> o(c.batch);
  o.push_back(a);
  o.push_back(b);
  return o;
}

//===----------------------------------------------------------------------===//
// Element-wise scalings and reductions
//===----------------------------------------------------------------------===//

/// x = y * c, y * c (commuted) or y / c with a constant scalar c: returns y
/// and the factor (c or 1/c).
std::optional<std::pair<Value, double>> scalarScaling(Value x) {
  auto op = x.getDefiningOp<linalg::LinalgOp>();
  if (!isElementwise(op))
    return std::nullopt;
  auto ops = bodyOps(op);
  if (ops.size() != 1 || !isa<arith::MulFOp, arith::DivFOp>(ops[0]))
    return std::nullopt;
  Value a = operandOf(op, ops[0]->getOperand(0));
  Value b = operandOf(op, ops[0]->getOperand(1));
  auto identityInput = [&](Value v) {
    for (OpOperand *in : op.getDpsInputOperands())
      if (in->get() == v && op.getMatchingIndexingMap(in).isIdentity())
        return true;
    return false;
  };
  auto cb = floatConstant(b);
  if (cb && identityInput(a) && *cb != 0)
    return std::make_pair(a, isa<arith::MulFOp>(ops[0]) ? *cb : 1.0 / *cb);
  auto ca = floatConstant(a);
  if (ca && identityInput(b) && isa<arith::MulFOp>(ops[0]))
    return std::make_pair(b, *ca);
  return std::nullopt;
}

/// The map of a per-row value over `rank` loops: drops the last dim, or
/// keeps it as 0 (keepdim).
bool isRowMap(AffineMap map, unsigned rank) {
  if (map.getNumResults() != rank && map.getNumResults() != rank - 1)
    return false;
  for (unsigned d = 0; d + 1 < rank; ++d)
    if (map.getResult(d) != getAffineDimExpr(d, map.getContext()))
      return false;
  if (map.getNumResults() == rank) {
    auto c = dyn_cast<AffineConstantExpr>(map.getResult(rank - 1));
    return c && c.getValue() == 0;
  }
  return true;
}

/// The per-row value operand `in` of `op` stands for: the operand itself
/// when its map is a row map, or, with the identity map, the row value a
/// materialized broadcast along the last dim copies (StableHLO's
/// broadcast_in_dim: linalg.broadcast, or a copying linalg.generic); that
/// broadcast is added to `chain`.
Value rowOperand(linalg::LinalgOp op, OpOperand *in,
                 SmallVectorImpl<Operation *> &chain) {
  unsigned rank = op.getNumLoops();
  AffineMap map = op.getMatchingIndexingMap(in);
  if (isRowMap(map, rank))
    return in->get();
  if (!map.isIdentity())
    return {};
  Operation *def = in->get().getDefiningOp();
  if (auto b = dyn_cast_or_null<linalg::BroadcastOp>(def)) {
    if (b.getDimensions() != ArrayRef<int64_t>{int64_t(rank) - 1})
      return {};
    chain.push_back(b);
    return b.getInput();
  }
  auto copy = dyn_cast_or_null<linalg::LinalgOp>(def);
  if (!copy || copy.getNumDpsInputs() != 1 || copy.getNumDpsInits() != 1 ||
      !allParallel(copy) || !bodyOps(copy).empty() ||
      copy.getNumLoops() != rank ||
      copy.getBlock()->getTerminator()->getOperand(0) !=
          copy.getBlock()->getArgument(0) ||
      !copy.getMatchingIndexingMap(copy.getDpsInitOperand(0)).isIdentity() ||
      !isRowMap(copy.getMatchingIndexingMap(copy.getDpsInputOperand(0)), rank))
    return {};
  chain.push_back(copy);
  return copy.getDpsInputs()[0];
}

enum class Reduce { Sum, Max };

/// r = reduce over the last dim of `x` (rows kept), init 0 for Sum and
/// -inf / lowest for Max. Returns x.
Value rowReduction(Value r, Reduce kind) {
  auto op = r.getDefiningOp<linalg::LinalgOp>();
  if (!op || !op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1)
    return {};
  unsigned rank = op.getNumLoops();
  auto its = op.getIteratorTypesArray();
  for (unsigned d = 0; d < rank; ++d)
    if ((its[d] == utils::IteratorType::reduction) != (d == rank - 1))
      return {};
  if (!op.getMatchingIndexingMap(op.getDpsInputOperand(0)).isIdentity() ||
      !isRowMap(op.getMatchingIndexingMap(op.getDpsInitOperand(0)), rank))
    return {};
  Block *body = op.getBlock();
  Value in = body->getArgument(0), acc = body->getArgument(1);
  auto ops = bodyOps(op);
  Value yielded = body->getTerminator()->getOperand(0);
  std::optional<double> init = filledWith(op.getDpsInits()[0]);
  if (!init)
    return {};
  auto isPair = [&](Operation *o) {
    return (o->getOperand(0) == in && o->getOperand(1) == acc) ||
           (o->getOperand(0) == acc && o->getOperand(1) == in);
  };
  if (kind == Reduce::Sum) {
    if (ops.size() != 1 || !isa<arith::AddFOp>(ops[0]) || !isPair(ops[0]) ||
        yielded != ops[0]->getResult(0) || *init != 0.0)
      return {};
    return op.getDpsInputs()[0];
  }
  if (!isLowest(*init, getElementTypeOrSelf(r.getType())))
    return {};
  if (ops.size() == 1 && isa<arith::MaximumFOp, arith::MaxNumFOp>(ops[0]) &&
      isPair(ops[0]) && yielded == ops[0]->getResult(0))
    return op.getDpsInputs()[0];
  if (ops.size() == 2) { // select(in > acc, in, acc)
    auto cmp = dyn_cast<arith::CmpFOp>(ops[0]);
    auto sel = dyn_cast<arith::SelectOp>(ops[1]);
    using P = arith::CmpFPredicate;
    if (cmp && sel && cmp.getLhs() == in && cmp.getRhs() == acc &&
        llvm::is_contained({P::OGT, P::OGE, P::UGT, P::UGE},
                           cmp.getPredicate()) &&
        sel.getCondition() == cmp && sel.getTrueValue() == in &&
        sel.getFalseValue() == acc && yielded == sel.getResult())
      return op.getDpsInputs()[0];
  }
  return {};
}

/// Operands of a two-input element-wise op whose body is `Op(arg0, arg1)`
/// (arg0 with the identity map, arg1 per row): (x, row).
template <typename Op>
std::optional<std::pair<Value, Value>>
rowBinary(Value r, SmallVectorImpl<Operation *> &chain) {
  auto op = r.getDefiningOp<linalg::LinalgOp>();
  if (!isElementwise(op) || op.getNumDpsInputs() != 2)
    return std::nullopt;
  auto ops = bodyOps(op);
  Block *body = op.getBlock();
  if (ops.size() != 1 || !isa<Op>(ops[0]) ||
      ops[0]->getOperand(0) != body->getArgument(0) ||
      ops[0]->getOperand(1) != body->getArgument(1) ||
      !op.getMatchingIndexingMap(op.getDpsInputOperand(0)).isIdentity())
    return std::nullopt;
  Value row = rowOperand(op, op.getDpsInputOperand(1), chain);
  if (!row)
    return std::nullopt;
  return std::make_pair(op.getDpsInputs()[0], row);
}

/// e = exp(x - rowmax(x)) in one op or two, or exp(x): returns x.
Value expOfShifted(Value e, SmallVectorImpl<Operation *> &chain) {
  auto op = e.getDefiningOp<linalg::LinalgOp>();
  if (!isElementwise(op))
    return {};
  auto ops = bodyOps(op);
  Block *body = op.getBlock();
  // exp(x - m) in one body.
  if (ops.size() == 2 && op.getNumDpsInputs() == 2 &&
      isa<arith::SubFOp>(ops[0]) && isa<math::ExpOp>(ops[1]) &&
      ops[0]->getOperand(0) == body->getArgument(0) &&
      ops[0]->getOperand(1) == body->getArgument(1) &&
      ops[1]->getOperand(0) == ops[0]->getResult(0) &&
      op.getMatchingIndexingMap(op.getDpsInputOperand(0)).isIdentity()) {
    Value x = op.getDpsInputs()[0];
    Value m = rowOperand(op, op.getDpsInputOperand(1), chain);
    if (!m || rowReduction(m, Reduce::Max) != x)
      return {};
    chain.push_back(op);
    chain.push_back(m.getDefiningOp());
    return x;
  }
  // exp(y) with y = x - rowmax(x), or y = x.
  if (ops.size() != 1 || op.getNumDpsInputs() != 1 ||
      !isa<math::ExpOp>(ops[0]) ||
      ops[0]->getOperand(0) != body->getArgument(0) ||
      !op.getMatchingIndexingMap(op.getDpsInputOperand(0)).isIdentity())
    return {};
  chain.push_back(op);
  Value y = op.getDpsInputs()[0];
  if (auto sub = rowBinary<arith::SubFOp>(y, chain)) {
    if (rowReduction(sub->second, Reduce::Max) != sub->first)
      return {};
    chain.push_back(y.getDefiningOp());
    chain.push_back(sub->second.getDefiningOp());
    return sub->first;
  }
  return y;
}

/// p = softmax(x) over the last dim: returns x.
Value softmaxInput(Value p, SmallVectorImpl<Operation *> &chain) {
  auto rank = cast<RankedTensorType>(p.getType()).getRank();
  if (auto sm = p.getDefiningOp<linalg::SoftmaxOp>()) {
    if (int64_t(sm.getDimension()) != rank - 1)
      return {};
    chain.push_back(sm);
    return sm.getInput();
  }
  auto div = rowBinary<arith::DivFOp>(p, chain);
  if (!div)
    return {};
  auto [e, z] = *div;
  if (rowReduction(z, Reduce::Sum) != e)
    return {};
  chain.push_back(p.getDefiningOp());
  chain.push_back(z.getDefiningOp());
  return expOfShifted(e, chain);
}

//===----------------------------------------------------------------------===//
// Masks
//===----------------------------------------------------------------------===//

/// x = y + m (either order) with m a non-splat constant tensor: (y, m, map of m).
std::optional<std::tuple<Value, DenseFPElementsAttr, AffineMap>>
constantMaskAdd(Value x) {
  auto op = x.getDefiningOp<linalg::LinalgOp>();
  if (!isElementwise(op) || op.getNumDpsInputs() != 2)
    return std::nullopt;
  auto ops = bodyOps(op);
  Block *body = op.getBlock();
  if (ops.size() != 1 || !isa<arith::AddFOp>(ops[0]))
    return std::nullopt;
  for (unsigned s = 0; s < 2; ++s) {
    if (ops[0]->getOperand(s) != body->getArgument(0) ||
        ops[0]->getOperand(1 - s) != body->getArgument(1))
      continue;
    OpOperand *y = op.getDpsInputOperand(0), *m = op.getDpsInputOperand(1);
    DenseFPElementsAttr attr;
    if (!op.getMatchingIndexingMap(y).isIdentity() ||
        !matchPattern(m->get(), m_Constant(&attr)))
      return std::nullopt;
    return std::make_tuple(y->get(), attr, op.getMatchingIndexingMap(m));
  }
  return std::nullopt;
}

/// The visible set of a constant additive mask as causal / window / keys,
/// proved entry by entry. `factor` multiplies the mask (scalings above it).
bool fitMask(DenseFPElementsAttr mask, AffineMap map, double factor,
             int64_t nq, int64_t nk, NaiveAttention &na, std::string &why) {
  unsigned rank = map.getNumDims();
  unsigned mDim = rank - 2, nDim = rank - 1;
  if (mask.getNumElements() > (int64_t(1) << 26))
    return fail(why, "mask constant too large to prove");
  // vis[i * nk + j]: -1 unknown, 0 masked, 1 visible.
  std::vector<int8_t> vis(size_t(nq * nk), -1);
  ArrayRef<int64_t> shape = mask.getType().getShape();
  std::optional<unsigned> mPos, nPos;
  for (unsigned r = 0; r < map.getNumResults(); ++r) {
    AffineExpr e = map.getResult(r);
    if (auto d = dyn_cast<AffineDimExpr>(e)) {
      if (d.getPosition() == mDim)
        mPos = r;
      else if (d.getPosition() == nDim)
        nPos = r;
    } else if (!isa<AffineConstantExpr>(e) ||
               cast<AffineConstantExpr>(e).getValue() != 0) {
      return fail(why, "mask indexed by something other than dims");
    }
  }
  SmallVector<int64_t> idx(shape.size(), 0);
  int64_t linear = 0;
  for (APFloat value : mask.getValues<APFloat>()) {
    double x = value.convertToDouble() * factor;
    int8_t cls = x == 0.0 ? 1 : (x <= kMaskedAtOrBelow ? 0 : -2);
    if (cls == -2)
      return fail(why, "mask has a value that is neither 0 nor -inf (a bias)");
    int64_t i0 = mPos ? idx[*mPos] : 0, i1 = mPos ? i0 + 1 : nq;
    int64_t j0 = nPos ? idx[*nPos] : 0, j1 = nPos ? j0 + 1 : nk;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) {
        int8_t &slot = vis[size_t(i * nk + j)];
        if (slot != -1 && slot != cls)
          return fail(why, "mask differs between batch entries");
        slot = cls;
      }
    // Next multi-index, row-major.
    ++linear;
    for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
      if (++idx[d] < shape[d])
        break;
      idx[d] = 0;
    }
  }
  (void)linear;
  // Fit: keys, then right and left bounds around the bottom-right diagonal.
  int64_t keys = 0;
  SmallVector<int64_t> lo(nq), hi(nq);
  for (int64_t i = 0; i < nq; ++i) {
    lo[i] = -1;
    for (int64_t j = 0; j < nk; ++j)
      if (vis[size_t(i * nk + j)] == 1) {
        if (lo[i] < 0)
          lo[i] = j;
        hi[i] = j;
      }
    if (lo[i] < 0)
      return fail(why, "a query row sees no key (NaN or a uniform average "
                       "in the naive form, 0 in attn.attention)");
    keys = std::max(keys, hi[i] + 1);
  }
  int64_t off = keys - nq;
  bool rightFree = llvm::all_of(hi, [&](int64_t h) { return h == keys - 1; });
  bool leftFree = llvm::all_of(lo, [](int64_t l) { return l == 0; });
  int64_t right = -1, left = -1;
  if (!rightFree) {
    right = std::numeric_limits<int64_t>::min();
    for (int64_t i = 0; i < nq; ++i)
      right = std::max(right, hi[i] - (i + off));
  }
  if (!leftFree) {
    left = std::numeric_limits<int64_t>::min();
    for (int64_t i = 0; i < nq; ++i)
      left = std::max(left, (i + off) - lo[i]);
  }
  if ((!rightFree && right < 0) || (!leftFree && left < 0))
    return fail(why, "mask is not a causal / window / padding mask");
  // Regenerate and compare, entry by entry.
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nk; ++j) {
      bool v = j < keys && (rightFree || j <= i + off + right) &&
               (leftFree || j >= i + off - left);
      if (v != (vis[size_t(i * nk + j)] == 1))
        return fail(why, "mask is not a causal / window / padding mask");
    }
  na.keys = keys;
  na.causal = right == 0;
  na.windowRight = right == 0 ? -1 : right;
  na.windowLeft = left;
  return true;
}

/// Every user of every result of the chain's ops is in the chain or is
/// `last`.
bool usedOnlyInside(ArrayRef<Operation *> chain, Operation *last) {
  llvm::SmallPtrSet<Operation *, 16> in(chain.begin(), chain.end());
  in.insert(last);
  for (Operation *op : chain)
    for (Operation *user : op->getUsers())
      if (!in.contains(user))
        return false;
  return true;
}

} // namespace

bool mlir::attn::raise::matchNaiveAttention(linalg::LinalgOp pv,
                                            NaiveAttention &na,
                                            std::string &why) {
  Contraction cpv, cqk;
  if (!matchContraction(pv, cpv, why))
    return false;
  unsigned rank = cpv.batch.size() + 2;
  // O[batch.., m, dv] = sum_n P[batch.., m, n] V[batch.., n, dv]: the loop
  // dims of pv are (batch.., m = query, n = dv, k = key).
  std::optional<View> p = viewOf(pv, 0, order(cpv, cpv.m, cpv.k));
  std::optional<View> v = viewOf(pv, 1, order(cpv, cpv.k, cpv.n));
  std::optional<View> o = viewOf(pv, 2, order(cpv, cpv.m, cpv.n));
  if (!p || !v || !o || !p->isIdentity())
    return fail(why, "P is not read in its own [batch.., query, key] order");
  SmallVector<Operation *> chain;
  Value x = softmaxInput(p->source, chain);
  if (!x)
    return fail(why, "P is not a softmax over the last dim");

  // Scalings and at most one constant mask, down to S = contract(Q, K).
  double scale = 1.0, aboveMask = 1.0;
  std::optional<std::tuple<Value, DenseFPElementsAttr, AffineMap>> mask;
  linalg::LinalgOp qk;
  while (true) {
    if (auto lop = x.getDefiningOp<linalg::LinalgOp>()) {
      std::string ignore;
      if (matchContraction(lop, cqk, ignore)) {
        qk = lop;
        break;
      }
    }
    if (auto s = scalarScaling(x)) {
      chain.push_back(x.getDefiningOp());
      scale *= s->second;
      if (!mask)
        aboveMask *= s->second;
      x = s->first;
      continue;
    }
    if (auto m = constantMaskAdd(x); m && !mask) {
      chain.push_back(x.getDefiningOp());
      mask = m;
      x = std::get<0>(*m);
      continue;
    }
    return fail(why, "the softmax input is not scale / mask / contract(Q, K)");
  }
  if (cqk.batch.size() != cpv.batch.size())
    return fail(why, "the two contractions have different batch ranks");
  chain.push_back(qk);
  if (!usedOnlyInside(chain, pv))
    return fail(why, "an intermediate of the attention is used elsewhere");

  // S[batch.., i, j] = sum_d Q[batch.., i, d] K[batch.., j, d].
  std::optional<View> q = viewOf(qk, 0, order(cqk, cqk.m, cqk.k));
  std::optional<View> k = viewOf(qk, 1, order(cqk, cqk.n, cqk.k));
  std::optional<View> s = viewOf(qk, 2, order(cqk, cqk.m, cqk.n));
  if (!q || !k || !s || !s->isIdentity())
    return fail(why, "S is not written in [batch.., query, key] order");
  // Scale factors on Q or K, then transposes.
  for (View *w : {&*q, &*k}) {
    while (true) {
      *w = lookThroughTransposes(*w);
      auto sc = scalarScaling(w->source);
      if (!sc || !w->source.hasOneUse())
        break;
      scale *= sc->second;
      w->source = sc->first;
    }
  }
  if (!(scale > 0) || !std::isfinite(scale))
    return fail(why, "the scale is not positive");
  View vv = lookThroughTransposes(*v);

  auto qType = cast<RankedTensorType>(qk.getDpsInputs()[0].getType());
  (void)qType;
  SmallVector<int64_t> sRanges = qk.getStaticLoopRanges();
  int64_t nq = sRanges[cqk.m], nk = sRanges[cqk.n];
  if (pv.getStaticLoopRanges()[cpv.k] != nk)
    return fail(why, "P V contracts over another length than Q K^T's keys");

  na.keys = nk;
  if (mask) {
    auto [y, attr, map] = *mask;
    if (!fitMask(attr, map, aboveMask, nq, nk, na, why))
      return false;
  }
  na.qk = qk;
  na.pv = pv;
  na.batchRank = cpv.batch.size();
  na.q = *q;
  na.k = {*k, 1};
  na.v = {vv, 1};
  na.scale = scale;
  // GQA: both K and V repeat-interleaved by the same group (4-D only).
  if (rank == 4 && na.k.view.isIdentity() && na.v.view.isIdentity()) {
    auto rk = repeatInterleaveSource(na.k.view.source);
    auto rv = repeatInterleaveSource(na.v.view.source);
    if (rk && rv && rk->second == rv->second) {
      na.k = {View{rk->first, {0, 1, 2, 3}}, rk->second};
      na.v = {View{rv->first, {0, 1, 2, 3}}, rv->second};
    }
  }
  // Result order: pv's result dim r is canonical dim outPerm[r].
  na.outPerm.assign(rank, 0);
  for (unsigned c = 0; c < rank; ++c)
    na.outPerm[o->perm[c]] = c;
  return true;
}
