//===- SharedTile.cpp - shared-memory tile layouts and swizzles ----------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "SharedTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <functional>

using namespace mlir;
using namespace mlir::attn;

Value tile::alignSmem(KernelBuilder &k) {
  ImplicitLocOpBuilder &b = k.b;
  Type i64 = b.getI64Type();
  Value addr = arith::IndexCastOp::create(
      b, i64, memref::ExtractAlignedPointerAsIndexOp::create(b, k.smemBase()));
  Value shift = arith::AndIOp::create(
      b,
      arith::SubIOp::create(b, arith::ConstantIntOp::create(b, i64, kSmemAlign),
                            addr),
      arith::ConstantIntOp::create(b, i64, kSmemAlign - 1));
  k.smemShift = arith::IndexCastOp::create(b, b.getIndexType(), shift);
  return arith::AddIOp::create(b, addr, shift);
}

bool tile::swizzled(Value mem) {
  auto t = cast<MemRefType>(mem.getType());
  return t.getRank() == 2 && t.getDimSize(1) % 64 == 0;
}

SmallVector<Value> tile::indices(KernelBuilder &k, Value mem, Value row,
                                 Value col) {
  if (cast<MemRefType>(mem.getType()).getRank() == 2)
    return {row, swizzleCol(k, mem, row, col)};
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Value blk = arith::ShRUIOp::create(b, col, cg.idx(6));
  Value in = arith::AndIOp::create(b, col, cg.idx(63));
  Value s = arith::ShLIOp::create(
      b, arith::AndIOp::create(b, row, cg.idx(7)), cg.idx(3));
  return {blk, row, arith::XOrIOp::create(b, in, s)};
}

Value tile::swizzleCol(KernelBuilder &k, Value mem, Value row, Value col) {
  if (!swizzled(mem))
    return col;
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  std::function<std::pair<int64_t, Value>(Value)> split =
      [&](Value v) -> std::pair<int64_t, Value> {
    if (auto c = getConstantIntValue(v))
      return {*c, Value()};
    if (auto add = v.getDefiningOp<arith::AddIOp>()) {
      auto [c0, x0] = split(add.getLhs());
      auto [c1, x1] = split(add.getRhs());
      return {c0 + c1, x0 && x1 ? cg.add(x0, x1) : (x0 ? x0 : x1)};
    }
    return {0, v};
  };
  auto [c, x] = split(col);
  Value s = arith::ShLIOp::create(
      b, arith::AndIOp::create(b, row, cg.idx(7)), cg.idx(3));
  Value y = x ? (c & 63 ? cg.add(x, cg.idx(c & 63)) : x) : cg.idx(c & 63);
  Value r = arith::XOrIOp::create(b, y, s);
  return c & ~int64_t(63) ? cg.add(r, cg.idx(c & ~int64_t(63))) : r;
}
