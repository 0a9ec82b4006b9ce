//===- VectorCodegen.cpp - f32 vector tiles for the CPU lowerings ---------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/VectorCodegen.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;

VecCodegen::VecCodegen(Codegen &cg, int64_t width)
    : cg(cg), b(cg.builder()), width(std::max<int64_t>(width, 1)),
      registers(width >= 16 ? 32 : 16) {}

SmallVector<int64_t> VecCodegen::chunks(int64_t n) const {
  SmallVector<int64_t> out(n / width, width);
  if (n % width)
    out.push_back(n % width);
  return out;
}

std::pair<int64_t, int64_t> VecCodegen::blocking(int64_t numChunks) const {
  int64_t g = std::min<int64_t>(numChunks, registers >= 32 ? 4 : 2);
  int64_t r = std::clamp<int64_t>((registers - g - 1) / g, 1, 8);
  return {r, g};
}

VectorType VecCodegen::vecType(int64_t lanes, Type elem) {
  return VectorType::get({lanes}, elem ? elem : b.getF32Type());
}

Value VecCodegen::splat(double v, int64_t lanes) {
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(lanes), ArrayRef<float>{float(v)}));
}

Value VecCodegen::splatI32(int64_t v, int64_t lanes) {
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(lanes, b.getI32Type()),
                                ArrayRef<int32_t>{int32_t(v)}));
}

Value VecCodegen::iota(int64_t lanes) {
  SmallVector<int32_t> vals;
  for (int64_t i = 0; i < lanes; ++i)
    vals.push_back(int32_t(i));
  return arith::ConstantOp::create(
      b, DenseElementsAttr::get(vecType(lanes, b.getI32Type()),
                                ArrayRef<int32_t>(vals)));
}

Value VecCodegen::broadcast(Value scalar, int64_t lanes) {
  return vector::BroadcastOp::create(b, vecType(lanes, scalar.getType()),
                                     scalar);
}

/// mem[indices + (0, ..., 0, lane)].
static SmallVector<Value> laneIndices(Codegen &cg, ValueRange indices,
                                      int64_t lane) {
  SmallVector<Value> ix(indices);
  if (lane)
    ix.back() = cg.add(ix.back(), cg.idx(lane));
  return ix;
}

Value VecCodegen::load(Value mem, ValueRange indices, int64_t lanes) {
  auto type = cast<MemRefType>(mem.getType());
  Type et = type.getElementType();
  Value v;
  if (type.isLastDimUnitStride()) {
    v = vector::LoadOp::create(b, vecType(lanes, et), mem, indices);
  } else {
    // A layout whose innermost stride is not known to be 1: lane by lane.
    v = arith::ConstantOp::create(b, b.getZeroAttr(vecType(lanes, et)));
    for (int64_t i = 0; i < lanes; ++i)
      v = vector::InsertOp::create(
          b, memref::LoadOp::create(b, mem, laneIndices(cg, indices, i)), v,
          i);
  }
  if (!et.isF32())
    v = arith::ExtFOp::create(b, vecType(lanes), v);
  return v;
}

void VecCodegen::store(Value v, Value mem, ValueRange indices) {
  Type et = cast<MemRefType>(mem.getType()).getElementType();
  auto vt = cast<VectorType>(v.getType());
  if (et != vt.getElementType())
    v = arith::TruncFOp::create(b, vecType(vt.getNumElements(), et), v);
  if (cast<MemRefType>(mem.getType()).isLastDimUnitStride()) {
    vector::StoreOp::create(b, v, mem, indices);
    return;
  }
  for (int64_t i = 0; i < vt.getNumElements(); ++i)
    memref::StoreOp::create(b, vector::ExtractOp::create(b, v, i), mem,
                            laneIndices(cg, indices, i));
}

Value VecCodegen::fma(Value a, Value x, Value c) {
  return vector::FMAOp::create(b, a, x, c);
}

Value VecCodegen::addAlibi(Value s, Value dist, Value negSlope) {
  int64_t n = cast<VectorType>(s.getType()).getNumElements();
  Value d = arith::SIToFPOp::create(b, VectorType::get({n}, b.getF32Type()),
                                    math::AbsIOp::create(b, dist));
  return fma(d, broadcast(negSlope, n), s);
}

Value VecCodegen::exp2(Value x) {
  int64_t n = cast<VectorType>(x.getType()).getNumElements();
  auto nnan = arith::FastMathFlags::nnan;
  x = arith::MaxNumFOp::create(b, x, splat(-127.0, n), nnan);
  x = arith::MinNumFOp::create(b, x, splat(127.0, n), nnan);
  Value r = math::RoundEvenOp::create(b, x);
  Value f = arith::SubFOp::create(b, x, r); // in [-1/2, 1/2]
  // 2^f, Cephes' exp2f polynomial.
  Value p = splat(1.535336188319500e-4, n);
  for (double c : {1.339887440266574e-3, 9.618437357674640e-3,
                   5.550332471162809e-2, 2.402264791363012e-1,
                   6.931472028550421e-1, 1.0})
    p = fma(p, f, splat(c, n));
  // 2^r from the exponent bits; r = -127 gives the bits of +0.
  Value e = arith::FPToSIOp::create(b, vecType(n, b.getI32Type()), r);
  e = arith::AddIOp::create(b, e, splatI32(127, n));
  e = arith::ShLIOp::create(b, e, splatI32(23, n));
  return arith::MulFOp::create(b, p,
                               arith::BitcastOp::create(b, vecType(n), e));
}

Value VecCodegen::tanh(Value x, Value *sech2Out) {
  int64_t n = cast<VectorType>(x.getType()).getNumElements();
  Value ax = math::AbsFOp::create(b, x);
  Value e = exp2(arith::MulFOp::create(b, ax, splat(-2.0 * kLog2e, n)));
  Value one = splat(1.0, n);
  Value onePlusE = arith::AddFOp::create(b, one, e);
  Value viaExp = arith::DivFOp::create(
      b, arith::SubFOp::create(b, one, e), onePlusE);
  Value x2 = arith::MulFOp::create(b, ax, ax);
  Value p = splat(-1382.0 / 155925.0, n);
  for (double c : {62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0})
    p = fma(p, x2, splat(c, n));
  Value viaPoly = arith::MulFOp::create(b, ax, p);
  Value small =
      arith::CmpFOp::create(b, arith::CmpFPredicate::OLT, ax, splat(0.25, n));
  Value r = arith::SelectOp::create(b, small, viaPoly, viaExp);
  if (sech2Out)
    *sech2Out = arith::DivFOp::create(
        b, arith::MulFOp::create(b, splat(4.0, n), e),
        arith::MulFOp::create(b, onePlusE, onePlusE));
  return math::CopySignOp::create(b, r, x);
}

SmallVector<Value> VecCodegen::loop(
    Value lb, Value ub, ValueRange inits,
    function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  auto forOp = scf::ForOp::create(
      b, lb, ub, cg.idx(1), inits,
      [&](OpBuilder &nb, Location, Value iv, ValueRange args) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nb.getInsertionBlock(), nb.getInsertionPoint());
        SmallVector<Value> next = body(iv, args);
        scf::YieldOp::create(b, next);
      });
  return SmallVector<Value>(forOp.getResults());
}

void VecCodegen::outerProductBlock(
    const OuterProduct &p, Value row0, int64_t rows,
    ArrayRef<std::pair<int64_t, int64_t>> cols) {
  SmallVector<Value> rowIdx, inits;
  for (int64_t r = 0; r < rows; ++r)
    rowIdx.push_back(r ? cg.add(row0, cg.idx(r)) : row0);
  for (int64_t r = 0; r < rows; ++r)
    for (auto [col, w] : cols)
      inits.push_back(p.init ? p.init(rowIdx[r], col, w) : splat(0.0, w));
  SmallVector<Value> accs =
      loop(p.kLo, p.kHi, inits, [&](Value k, ValueRange acc) {
        SmallVector<Value> rhs;
        for (auto [col, w] : cols)
          rhs.push_back(p.rhs(k, col, w));
        SmallVector<Value> next;
        for (int64_t r = 0; r < rows; ++r) {
          Value s = p.lhs(rowIdx[r], k);
          llvm::SmallDenseMap<int64_t, Value> splats;
          for (auto [c, cw] : llvm::enumerate(cols)) {
            Value &sv = splats[cw.second];
            if (!sv)
              sv = broadcast(s, cw.second);
            next.push_back(fma(sv, rhs[c], acc[r * cols.size() + c]));
          }
        }
        return next;
      });
  for (int64_t r = 0; r < rows; ++r)
    for (auto [c, cw] : llvm::enumerate(cols))
      p.finish(rowIdx[r], cw.first, accs[r * cols.size() + c]);
}

void VecCodegen::outerProduct(const OuterProduct &p) {
  SmallVector<std::pair<int64_t, int64_t>> cols;
  int64_t off = 0;
  for (int64_t w : p.chunks) {
    cols.push_back({off, w});
    off += w;
  }
  auto [R, G] = blocking(cols.size());
  for (size_t g0 = 0; g0 < cols.size(); g0 += G) {
    ArrayRef<std::pair<int64_t, int64_t>> group =
        ArrayRef(cols).slice(g0, std::min<size_t>(G, cols.size() - g0));
    auto blocks = [&](Value lb, Value ub, int64_t rows) {
      auto forOp = scf::ForOp::create(b, lb, ub, cg.idx(rows));
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(forOp.getBody()->getTerminator());
      outerProductBlock(p, forOp.getInductionVar(), rows, group);
    };
    if (std::optional<int64_t> n = getConstantIntValue(p.rows)) {
      // Static rows: full blocks, then one block of the remaining rows.
      int64_t full = *n / R * R;
      if (full > 0)
        blocks(cg.idx(0), cg.idx(full), R);
      if (*n > full)
        outerProductBlock(p, cg.idx(full), *n - full, group);
    } else {
      // Dynamic rows: full blocks, then single rows.
      Value full = cg.mul(cg.divs(p.rows, cg.idx(R)), cg.idx(R));
      blocks(cg.idx(0), full, R);
      blocks(full, p.rows, 1);
    }
  }
}
