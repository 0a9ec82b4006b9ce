//===- CodegenUtils.cpp - IR building helpers for attn lowerings ----------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "flashmlir/runtime/Limits.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;

Value Codegen::idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
Value Codegen::f32(double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(float(v)));
}

Value Codegen::add(Value a, Value c) { return arith::AddIOp::create(b, a, c); }
Value Codegen::sub(Value a, Value c) { return arith::SubIOp::create(b, a, c); }
Value Codegen::mul(Value a, Value c) { return arith::MulIOp::create(b, a, c); }
Value Codegen::divs(Value a, Value c) {
  return arith::DivSIOp::create(b, a, c);
}
Value Codegen::ceilDiv(Value a, Value c) {
  return arith::CeilDivSIOp::create(b, a, c);
}
Value Codegen::min(Value a, Value c) { return arith::MinSIOp::create(b, a, c); }
Value Codegen::max(Value a, Value c) { return arith::MaxSIOp::create(b, a, c); }
Value Codegen::cmp(arith::CmpIPredicate p, Value a, Value c) {
  return arith::CmpIOp::create(b, p, a, c);
}
Value Codegen::andI(Value a, Value c) { return arith::AndIOp::create(b, a, c); }
Value Codegen::dim(Value memref, int64_t i) {
  return memref::DimOp::create(b, memref, i);
}

Value Codegen::fadd(Value a, Value c) { return arith::AddFOp::create(b, a, c); }
Value Codegen::fsub(Value a, Value c) { return arith::SubFOp::create(b, a, c); }
Value Codegen::fmul(Value a, Value c) { return arith::MulFOp::create(b, a, c); }
Value Codegen::fdiv(Value a, Value c) { return arith::DivFOp::create(b, a, c); }
Value Codegen::fmax(Value a, Value c) {
  return arith::MaximumFOp::create(b, a, c);
}
Value Codegen::fcmp(arith::CmpFPredicate p, Value a, Value c) {
  return arith::CmpFOp::create(b, p, a, c);
}
Value Codegen::select(Value cond, Value t, Value f) {
  return arith::SelectOp::create(b, cond, t, f);
}
Value Codegen::exp2(Value x) {
  if (nvptxApprox)
    return NVVM::InlinePtxOp::create(b, TypeRange{x.getType()}, ValueRange{x},
                                     ValueRange{}, "ex2.approx.ftz.f32 $0, $1;",
                                     Value())
        .getResult(0);
  return math::Exp2Op::create(b, x);
}
Value Codegen::log2(Value x) {
  if (nvptxApprox)
    return NVVM::InlinePtxOp::create(b, TypeRange{x.getType()}, ValueRange{x},
                                     ValueRange{}, "lg2.approx.ftz.f32 $0, $1;",
                                     Value())
        .getResult(0);
  return math::Log2Op::create(b, x);
}
Value Codegen::tanh(Value x, Value *sech2Out) {
  // On the GPU |x| and copysign are sign-bit operations on the f32 bits:
  // math.absf / math.copysign would become libdevice calls there (the NVVM
  // lowering marks llvm.fabs / llvm.copysign illegal), and the bundles must
  // not depend on libdevice being found at compile time.
  Type i32 = b.getI32Type();
  auto bits = [&](Value v) {
    return arith::BitcastOp::create(b, i32, v).getResult();
  };
  auto mask = [&](uint32_t m) {
    return arith::ConstantOp::create(b, b.getI32IntegerAttr(int32_t(m)))
        .getResult();
  };
  Value ax = nvptxApprox
                 ? arith::BitcastOp::create(
                       b, x.getType(),
                       arith::AndIOp::create(b, bits(x), mask(0x7fffffffu)))
                       .getResult()
                 : math::AbsFOp::create(b, x).getResult();
  Value e = exp2(fmul(ax, f32(-2.0 * kLog2e)));
  Value one = f32(1.0);
  Value onePlusE = fadd(one, e);
  Value viaExp = fdiv(fsub(one, e), onePlusE);
  // tanh x = x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925
  Value x2 = fmul(ax, ax);
  Value p = f32(-1382.0 / 155925.0);
  for (double c : {62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0})
    p = fadd(fmul(p, x2), f32(c));
  Value viaPoly = fmul(ax, p);
  Value small = fcmp(arith::CmpFPredicate::OLT, ax, f32(0.25));
  Value r = select(small, viaPoly, viaExp);
  if (sech2Out)
    *sech2Out = fdiv(fmul(f32(4.0), e), fmul(onePlusE, onePlusE));
  if (nvptxApprox) // r >= 0: r | sign(x)
    return arith::BitcastOp::create(
        b, x.getType(),
        arith::OrIOp::create(b, bits(r),
                             arith::AndIOp::create(b, bits(x),
                                                   mask(0x80000000u))));
  return math::CopySignOp::create(b, r, x);
}

Value Codegen::load(Value mem, ValueRange indices) {
  Value v = memref::LoadOp::create(b, mem, indices);
  if (!v.getType().isF32())
    v = arith::ExtFOp::create(b, b.getF32Type(), v);
  return v;
}

void Codegen::store(Value v, Value mem, ValueRange indices) {
  Type et = cast<MemRefType>(mem.getType()).getElementType();
  if (et != v.getType())
    v = arith::TruncFOp::create(b, et, v);
  memref::StoreOp::create(b, v, mem, indices);
}

void Codegen::forLoop(Value lb, Value ub, function_ref<void(Value)> body) {
  auto loop = scf::ForOp::create(b, lb, ub, idx(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  body(loop.getInductionVar());
}

Value Codegen::reduce(Value lb, Value ub, Value init,
                      function_ref<Value(Value, Value)> body) {
  auto loop = scf::ForOp::create(
      b, lb, ub, idx(1), ValueRange{init},
      [&](OpBuilder &nb, Location, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        Value next = body(iv, args[0]);
        scf::YieldOp::create(b, next);
      });
  return loop.getResult(0);
}

void Codegen::parallel(ValueRange ubs, function_ref<void(ValueRange)> body) {
  SmallVector<Value> lbs(ubs.size(), idx(0)), steps(ubs.size(), idx(1));
  scf::ParallelOp::create(b, lbs, ubs, steps,
                          [&](OpBuilder &nb, Location, ValueRange ivs) {
                            OpBuilder::InsertionGuard guard(b);
                            b.setInsertionPoint(nb.getInsertionBlock(),
                                                nb.getInsertionPoint());
                            body(ivs);
                          });
}

void Codegen::ifElse(Value cond, function_ref<void()> then,
                     function_ref<void()> otherwise) {
  auto ifOp = scf::IfOp::create(b, cond, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
  then();
  b.setInsertionPoint(ifOp.elseBlock()->getTerminator());
  otherwise();
}

Value Codegen::alloc(ArrayRef<int64_t> shape, ValueRange dynSizes) {
  auto type = MemRefType::get(shape, b.getF32Type());
  return memref::AllocOp::create(b, type, dynSizes);
}

void Codegen::fill(Value mem, ArrayRef<Value> ubs, Value v) {
  std::function<void(unsigned, SmallVector<Value> &)> rec =
      [&](unsigned d, SmallVector<Value> &ivs) {
        if (d == ubs.size()) {
          memref::StoreOp::create(b, v, mem, ivs);
          return;
        }
        forLoop(idx(0), ubs[d], [&](Value iv) {
          ivs.push_back(iv);
          rec(d + 1, ivs);
          ivs.pop_back();
        });
      };
  SmallVector<Value> ivs;
  rec(0, ivs);
}

Value Codegen::dot(Value mem1, ValueRange prefix1, Value mem2,
                   ValueRange prefix2, int64_t n) {
  return reduce(idx(0), idx(n), f32(0.0), [&](Value d, Value acc) {
    SmallVector<Value> i1(prefix1), i2(prefix2);
    i1.push_back(d);
    i2.push_back(d);
    return fadd(acc, fmul(load(mem1, i1), load(mem2, i2)));
  });
}

Value Codegen::visible(const MaskSpec &mask, Value qi, Value kj, Value off) {
  Value diag = add(qi, off);
  Value vis;
  if (mask.left >= 0)
    vis = cmp(arith::CmpIPredicate::sge, kj, sub(diag, idx(mask.left)));
  if (mask.right >= 0) {
    Value r = cmp(arith::CmpIPredicate::sle, kj, add(diag, idx(mask.right)));
    vis = vis ? andI(vis, r) : r;
  }
  if (!vis)
    vis = arith::ConstantIntOp::create(b, b.getI1Type(), 1);
  return vis;
}

std::pair<Value, Value> Codegen::visibleKeys(Value q0, Value qLast, Value off,
                                             Value nk, Value wl, Value wr) {
  Value c0 = idx(0), c1 = idx(1);
  Value lo = select(cmp(arith::CmpIPredicate::slt, wl, c0), c0,
                    max(c0, sub(add(q0, off), wl)));
  Value hi = select(cmp(arith::CmpIPredicate::slt, wr, c0), nk,
                    min(nk, add(add(qLast, off), add(wr, c1))));
  return {lo, hi};
}

std::pair<Value, Value> Codegen::visibleQueries(Value k0, Value kLast,
                                                Value off, Value nq, Value wl,
                                                Value wr) {
  Value c0 = idx(0), c1 = idx(1);
  Value lo = select(cmp(arith::CmpIPredicate::slt, wr, c0), c0,
                    max(c0, sub(sub(k0, off), wr)));
  Value hi = select(cmp(arith::CmpIPredicate::slt, wl, c0), nq,
                    min(nq, add(sub(kLast, off), add(wl, c1))));
  return {lo, hi};
}

Value mlir::attn::detail::emitScore(Codegen &cg, Value qk, double scale,
                                    std::optional<double> softcap,
                                    Value *derivOut, double outScale) {
  // One multiply per score: the output scale (log2(e) for exp2) is folded
  // into the constant.
  if (!softcap)
    return cg.fmul(qk, cg.f32(scale * outScale));
  Value t = cg.tanh(cg.fmul(qk, cg.f32(scale / *softcap)), derivOut);
  return cg.fmul(t, cg.f32(*softcap * outScale));
}

Value ScoreMods::negSlope(Codegen &cg, Value seq, Value h,
                          double outScale) const {
  if (!alibi)
    return Value();
  ImplicitLocOpBuilder &b = cg.builder();
  SmallVector<Value> ix{h};
  if (cast<ShapedType>(alibi.getType()).getRank() == 2)
    ix.insert(ix.begin(), seq);
  Value slope = memref::LoadOp::create(b, alibi, ix);
  return cg.fmul(slope, cg.f32(-outScale));
}

Value ScoreMods::sink(Codegen &cg, Value h, double outScale) const {
  if (!sinks)
    return Value();
  ImplicitLocOpBuilder &b = cg.builder();
  Value s = memref::LoadOp::create(b, sinks, ValueRange{h});
  return outScale == 1.0 ? s : cg.fmul(s, cg.f32(outScale));
}

Value Rotary::element(Codegen &cg, function_ref<Value(Value)> row, Value d,
                      Value pos, bool inverse) const {
  ImplicitLocOpBuilder &b = cg.builder();
  Value c0 = cg.idx(0), c1 = cg.idx(1);
  Value inRot = cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(dim));
  // The pair partner of d, the table column m, and whether d is the pair's
  // first element (x'[a] = x[a] c - x[b] s; x'[b] = x[b] c + x[a] s).
  Value partner, m, first;
  if (interleaved) {
    first = cg.cmp(arith::CmpIPredicate::eq,
                   arith::AndIOp::create(b, d, c1).getResult(), c0);
    partner = arith::XOrIOp::create(b, d, c1);
    m = arith::ShRUIOp::create(b, d, c1);
  } else {
    Value half = cg.idx(dim / 2);
    first = cg.cmp(arith::CmpIPredicate::slt, d, half);
    partner = cg.select(first, cg.add(d, half), cg.sub(d, half));
    m = cg.select(first, d, cg.sub(d, half));
  }
  // Past the rotary dims: read a valid table entry, keep x[d].
  partner = cg.select(inRot, partner, d);
  m = cg.select(inRot, m, c0);
  // Positions outside the tables (a caller's Nq > Nk or Nk > P) read the
  // nearest row rather than out of bounds; the front ends reject them.
  pos = cg.max(c0, cg.min(pos, cg.sub(cg.dim(cos, 0), c1)));
  Value x = row(d), xp = row(partner);
  Value cv = memref::LoadOp::create(b, cos, ValueRange{pos, m});
  Value sv = memref::LoadOp::create(b, sin, ValueRange{pos, m});
  // Forward: first -> -s, second -> +s; the inverse flips the sign.
  Value sgn = cg.select(first, cg.f32(inverse ? 1.0 : -1.0),
                        cg.f32(inverse ? -1.0 : 1.0));
  Value r = cg.fadd(cg.fmul(x, cv), cg.fmul(cg.fmul(sgn, xp), sv));
  return cg.select(inRot, r, x);
}

Value mlir::attn::detail::alibiBias(Codegen &cg, Value negSlope, Value qi,
                                    Value kj, Value off) {
  ImplicitLocOpBuilder &b = cg.builder();
  Value dist = cg.sub(cg.add(qi, off), kj);
  dist = cg.max(dist, cg.sub(cg.idx(0), dist));
  Value d = arith::SIToFPOp::create(
      b, b.getF32Type(),
      arith::IndexCastOp::create(b, b.getI64Type(), dist));
  return cg.fmul(negSlope, d);
}

AttnShape mlir::attn::detail::getShape(Codegen &cg, Value q, Value k,
                                       Value v) {
  AttnShape s;
  s.B = cg.dim(q, 0);
  s.Hq = cg.dim(q, 1);
  s.Nq = cg.dim(q, 2);
  s.Hkv = cg.dim(k, 1);
  s.Nk = cg.dim(k, 2);
  s.group = cg.divs(s.Hq, s.Hkv);
  s.off = cg.sub(s.Nk, s.Nq);
  s.D = cast<MemRefType>(q.getType()).getDimSize(3);
  s.Dv = cast<MemRefType>(v.getType()).getDimSize(3);
  s.elementType = cast<MemRefType>(q.getType()).getElementType();
  return s;
}

Value mlir::attn::detail::packedAsDense(Codegen &cg, Value packed) {
  ImplicitLocOpBuilder &b = cg.builder();
  auto t = cast<MemRefType>(packed.getType());
  auto md = memref::ExtractStridedMetadataOp::create(b, packed);
  int64_t rank = t.getRank(); // 3: [T, H, D]; 2 (lse): [H, T]
  const int64_t dyn = ShapedType::kDynamic;
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(1)}, strides{
                                                          b.getIndexAttr(0)};
  SmallVector<int64_t> shape{1}, staticStrides{0};
  if (rank == 3) {
    // [T, H, D] strides [sT, sH, sD] -> [1, H, T, D] strides [0, sH, sT, sD].
    Value T = md.getSizes()[0], H = md.getSizes()[1];
    sizes.append({H, T});
    strides.append({md.getStrides()[1], md.getStrides()[0]});
    shape.append({dyn, dyn});
    staticStrides.append({dyn, dyn});
    int64_t D = t.getDimSize(2);
    sizes.push_back(ShapedType::isDynamic(D) ? OpFoldResult(md.getSizes()[2])
                                             : OpFoldResult(b.getIndexAttr(D)));
    strides.push_back(md.getStrides()[2]);
    shape.push_back(D);
    staticStrides.push_back(dyn);
  } else {
    // lse [H, T] strides [sH, sT] -> [1, H, T] strides [0, sH, sT].
    sizes.append({md.getSizes()[0], md.getSizes()[1]});
    strides.append({md.getStrides()[0], md.getStrides()[1]});
    shape.append({dyn, dyn});
    staticStrides.append({dyn, dyn});
  }
  auto layout = StridedLayoutAttr::get(b.getContext(), dyn, staticStrides);
  auto type = MemRefType::get(shape, t.getElementType(), layout,
                              t.getMemorySpace());
  return memref::ReinterpretCastOp::create(b, type, md.getBaseBuffer(),
                                           OpFoldResult(md.getOffset()), sizes,
                                           strides);
}

Value mlir::attn::detail::sequenceRows(Codegen &cg, Value dense, Value start,
                                       Value len) {
  ImplicitLocOpBuilder &b = cg.builder();
  auto t = cast<MemRefType>(dense.getType());
  SmallVector<OpFoldResult> offsets{b.getIndexAttr(0), b.getIndexAttr(0),
                                    start};
  SmallVector<OpFoldResult> sizes{b.getIndexAttr(1), cg.dim(dense, 1), len};
  SmallVector<OpFoldResult> strides(t.getRank(), b.getIndexAttr(1));
  if (t.getRank() == 4) {
    offsets.push_back(b.getIndexAttr(0));
    int64_t D = t.getDimSize(3);
    sizes.push_back(ShapedType::isDynamic(D) ? OpFoldResult(cg.dim(dense, 3))
                                             : OpFoldResult(b.getIndexAttr(D)));
  }
  return memref::SubViewOp::create(b, dense, offsets, sizes, strides);
}

std::pair<Value, Value> mlir::attn::detail::sequenceRange(Codegen &cg,
                                                          Value cu, Value bi) {
  ImplicitLocOpBuilder &b = cg.builder();
  auto at = [&](Value i) {
    Value x = memref::LoadOp::create(b, cu, ValueRange{i});
    return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult();
  };
  Value start = at(bi), end = at(cg.add(bi, cg.idx(1)));
  return {start, cg.sub(end, start)};
}

LogicalResult mlir::attn::detail::checkLowerable(Operation *op,
                                                 StringRef passName,
                                                 bool varlenSupported,
                                                 bool kvCacheSupported,
                                                 bool scoreModsSupported) {
  for (Value v : op->getOperands())
    if (!isa<MemRefType>(v.getType()) && !v.getType().isIndex())
      return op->emitOpError()
             << "must be on memrefs for " << passName
             << " (bufferize first, e.g. with one-shot-bufferize)";
  bool varlen = false;
  if (auto fwd = dyn_cast<AttentionOp>(op))
    varlen = fwd.isVarlen();
  else if (auto bwd = dyn_cast<AttentionBackwardOp>(op))
    varlen = bwd.isVarlen();
  if (varlen && !varlenSupported)
    return op->emitOpError()
           << "in the variable-length form is not supported by " << passName
           << " yet";
  auto fwd = dyn_cast<AttentionOp>(op);
  if (fwd && fwd.isKvCache() && !kvCacheSupported)
    return op->emitOpError()
           << "with a KV cache (kv_cache operands) is not supported by "
           << passName << " yet (attn-tile-forward lowers it)";
  bool scoreMods = false;
  if (auto fwd = dyn_cast<AttentionOp>(op))
    scoreMods = fwd.hasScoreMods();
  else if (auto bwd = dyn_cast<AttentionBackwardOp>(op))
    scoreMods = bwd.hasScoreMods();
  if (scoreMods && !scoreModsSupported)
    return op->emitOpError()
           << "with alibi_slopes, sinks or score_mod / mask_mod regions is not "
              "supported by "
           << passName
           << " yet (attn-tile-forward, attn-tile-backward and "
              "attn-lower-unfused lower it)";
  auto q = cast<MemRefType>(op->getOperand(0).getType());
  auto v = cast<MemRefType>(op->getOperand(2).getType());
  int64_t d = q.getDimSize(q.getRank() - 1);
  int64_t dv = v.getDimSize(v.getRank() - 1);
  if (ShapedType::isDynamic(d) || ShapedType::isDynamic(dv))
    return op->emitOpError()
           << "needs static head dims for " << passName
           << " (kernels are specialised per head dim)";
  return success();
}

LogicalResult mlir::attn::detail::checkTiling(Operation *op,
                                              StringRef passName,
                                              StringRef what, int64_t blockM,
                                              int64_t blockN,
                                              int64_t vectorWidth) {
  namespace lim = flashmlir::limits;
  std::string w = what.str();
  for (const std::string &msg :
       {lim::checkBlock(w + "block-m", blockM),
        lim::checkBlock(w + "block-n", blockN),
        lim::checkVectorWidth(w + "vector-width", vectorWidth)})
    if (!msg.empty())
      return op->emitError() << passName << ": " << msg;
  return success();
}

LogicalResult mlir::attn::detail::checkOpTiling(Operation *op,
                                                StringRef passName,
                                                Value query, Value value,
                                                int64_t blockM, int64_t blockN,
                                                int64_t vectorWidth) {
  if (failed(checkTiling(op, passName, "", blockM, blockN, vectorWidth)))
    return failure();
  if (std::string msg = flashmlir::limits::checkTileVectors(
          blockM, blockN, headDimOf(query), headDimOf(value), vectorWidth);
      !msg.empty())
    return op->emitOpError() << passName << ": " << msg;
  return success();
}
