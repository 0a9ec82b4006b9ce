//===- Rotary.cpp - fused rotary position embedding (RoPE) ---------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Rotary.h"
#include "SharedTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;

/// `n` f32 of table `name` from row `pos`, column `col` (16-byte vectors).
static Value tableRow(KernelBuilder &k, StringRef name, Value pos, Value col,
                      int64_t n) {
  attn::detail::Codegen &cg = k.cg;
  auto vt = VectorType::get({n}, k.b.getF32Type());
  auto ld = vector::LoadOp::create(
      k.b, vt, k.arg(name),
      ValueRange{cg.add(cg.mul(pos, k.arg("rotary_stride")), col)});
  ld.setAlignment(16);
  return ld;
}

std::pair<Value, Value> rotary::rotateChunk(KernelBuilder &k, Value x,
                                            Value y, Value pos, Value c,
                                            bool interleaved, bool inverse) {
  ImplicitLocOpBuilder &b = k.b;
  auto rot = [&](Value a, Value bb, Value cs, Value sn) {
    if (inverse)
      sn = arith::NegFOp::create(b, sn);
    Value a2 = arith::SubFOp::create(b, arith::MulFOp::create(b, a, cs),
                                     arith::MulFOp::create(b, bb, sn));
    Value b2 = arith::AddFOp::create(b, arith::MulFOp::create(b, bb, cs),
                                     arith::MulFOp::create(b, a, sn));
    return std::pair<Value, Value>{a2, b2};
  };
  if (!interleaved)
    return rot(x, y, tableRow(k, "rotary_cos", pos, c, 8),
               tableRow(k, "rotary_sin", pos, c, 8));
  // Pairs (2m, 2m + 1) of the chunk, table columns c / 2 + m.
  Value m0 = arith::ShRUIOp::create(b, c, k.cg.idx(1));
  Value ev = vector::ShuffleOp::create(b, x, x, ArrayRef<int64_t>{0, 2, 4, 6});
  Value od = vector::ShuffleOp::create(b, x, x, ArrayRef<int64_t>{1, 3, 5, 7});
  auto [e2, o2] = rot(ev, od, tableRow(k, "rotary_cos", pos, m0, 4),
                      tableRow(k, "rotary_sin", pos, m0, 4));
  Value out = vector::ShuffleOp::create(
      b, e2, o2, ArrayRef<int64_t>{0, 4, 1, 5, 2, 6, 3, 7});
  return {out, Value()};
}

void rotary::rotateChunkAt(KernelBuilder &k, Value c, Value pos,
                           bool inverse, bool copyRest,
                           function_ref<Value(Value)> load,
                           function_ref<void(Value, Value)> store) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Value dim = k.arg("rotary_dim");
  Value half = arith::ShRUIOp::create(b, dim, cg.idx(1));
  auto lt = [&](Value x, Value y) {
    return cg.cmp(arith::CmpIPredicate::slt, x, y);
  };
  auto rest = [&] {
    if (copyRest)
      store(c, load(c));
  };
  // scf.if cond { then } else { otherwise }, no results.
  auto branch = [&](Value cond, function_ref<void()> then,
                    function_ref<void()> otherwise) {
    auto op = scf::IfOp::create(b, cond, /*withElse=*/true);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op.thenBlock()->getTerminator());
    then();
    b.setInsertionPoint(op.elseBlock()->getTerminator());
    otherwise();
  };
  Value il = cg.cmp(arith::CmpIPredicate::ne, k.arg("rotary_interleaved"),
                    cg.idx(0));
  branch(
      il,
      [&] { // (2m, 2m + 1) within the chunk
        branch(
            lt(c, dim),
            [&] {
              store(c, rotateChunk(k, load(c), Value(), pos, c, true, inverse)
                           .first);
            },
            rest);
      },
      [&] { // (c, c + R/2): the first half's chunk takes its partner's too
        branch(
            lt(c, half),
            [&] {
              Value pc = cg.add(c, half);
              auto [x, y] =
                  rotateChunk(k, load(c), load(pc), pos, c, false, inverse);
              store(c, x);
              store(pc, y);
            },
            [&] {
              if (!copyRest)
                return;
              auto op = scf::IfOp::create(
                  b, cg.cmp(arith::CmpIPredicate::sge, c, dim), false);
              OpBuilder::InsertionGuard g(b);
              b.setInsertionPoint(op.thenBlock()->getTerminator());
              rest();
            });
      });
}

void rotary::rotateTile(KernelBuilder &k, Value mem, int64_t rows,
                        int64_t cols, function_ref<Value(Value)> posOf,
                        Value tid, int64_t threads, bool inverse) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Type et = cast<MemRefType>(mem.getType()).getElementType();
  auto v8 = VectorType::get({8}, et);
  auto v8f = VectorType::get({8}, b.getF32Type());
  const int64_t perRow = cols / 8;
  auto loop =
      scf::ForOp::create(b, tid, cg.idx(rows * perRow), cg.idx(threads));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value u = loop.getInductionVar();
  Value row = arith::DivUIOp::create(b, u, cg.idx(perRow));
  Value c = cg.mul(arith::RemUIOp::create(b, u, cg.idx(perRow)), cg.idx(8));
  Value pos = posOf(row);
  rotateChunkAt(
      k, c, pos, inverse, /*copyRest=*/false,
      [&](Value col) -> Value {
        auto ld =
            vector::LoadOp::create(b, v8, mem, tile::indices(k, mem, row, col));
        ld.setAlignment(16);
        return arith::ExtFOp::create(b, v8f, ld.getResult()).getResult();
      },
      [&](Value col, Value x) {
        vector::StoreOp::create(b, arith::TruncFOp::create(b, v8, x), mem,
                                tile::indices(k, mem, row, col))
            .setAlignment(16);
      });
}
