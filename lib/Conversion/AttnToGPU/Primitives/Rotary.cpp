//===- Rotary.cpp - fused rotary position embedding (RoPE) ---------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Rotary.h"
#include "SharedTile.h"
#include "TileCopy.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
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

/// The cos / sin of chunk `c` at table row `pos`: 8 columns from c
/// (half-split), or 4 from c / 2 (interleaved: one per pair).
static std::pair<Value, Value> tables(KernelBuilder &k, Value pos, Value c,
                                      bool interleaved) {
  if (interleaved)
    c = arith::ShRUIOp::create(k.b, c, k.cg.idx(1));
  const int64_t n = interleaved ? 4 : 8;
  return {tableRow(k, "rotary_cos", pos, c, n),
          tableRow(k, "rotary_sin", pos, c, n)};
}

/// tables() from a stageTables tile: row `row` of the tile.
static std::pair<Value, Value> stagedTables(KernelBuilder &k, Value staged,
                                            Value row, Value c,
                                            bool interleaved) {
  if (interleaved)
    c = arith::ShRUIOp::create(k.b, c, k.cg.idx(1));
  auto vt = VectorType::get({interleaved ? 4 : 8}, k.b.getF32Type());
  auto at = [&](int64_t which) -> Value {
    auto ld = vector::LoadOp::create(
        k.b, vt, staged, ValueRange{k.cg.idx(which), row, c});
    ld.setAlignment(16);
    return ld;
  };
  return {at(0), at(1)};
}

/// The rotation of chunk x (and its half-split partner y) with the chunk's
/// cos / sin (tables()).
static std::pair<Value, Value> rotateLoaded(KernelBuilder &k, Value x, Value y,
                                            Value cs, Value sn,
                                            bool interleaved, bool inverse) {
  ImplicitLocOpBuilder &b = k.b;
  auto rot = [&](Value a, Value bb) {
    Value s2 = inverse ? Value(arith::NegFOp::create(b, sn)) : sn;
    Value a2 = arith::SubFOp::create(b, arith::MulFOp::create(b, a, cs),
                                     arith::MulFOp::create(b, bb, s2));
    Value b2 = arith::AddFOp::create(b, arith::MulFOp::create(b, bb, cs),
                                     arith::MulFOp::create(b, a, s2));
    return std::pair<Value, Value>{a2, b2};
  };
  if (!interleaved)
    return rot(x, y);
  Value ev = vector::ShuffleOp::create(b, x, x, ArrayRef<int64_t>{0, 2, 4, 6});
  Value od = vector::ShuffleOp::create(b, x, x, ArrayRef<int64_t>{1, 3, 5, 7});
  auto [e2, o2] = rot(ev, od);
  Value out = vector::ShuffleOp::create(
      b, e2, o2, ArrayRef<int64_t>{0, 4, 1, 5, 2, 6, 3, 7});
  return {out, Value()};
}

std::pair<Value, Value> rotary::rotateChunk(KernelBuilder &k, Value x,
                                            Value y, Value pos, Value c,
                                            bool interleaved, bool inverse) {
  auto [cs, sn] = tables(k, pos, c, interleaved);
  return rotateLoaded(k, x, y, cs, sn, interleaved, inverse);
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
  Value il = cg.cmp(arith::CmpIPredicate::ne, k.arg("rotary_interleaved"),
                    cg.idx(0));
  cg.ifElse(
      il,
      [&] { // (2m, 2m + 1) within the chunk
        cg.ifElse(
            lt(c, dim),
            [&] {
              store(c, rotateChunk(k, load(c), Value(), pos, c, true, inverse)
                           .first);
            },
            rest);
      },
      [&] { // (c, c + R/2): the first half's chunk takes its partner's too
        cg.ifElse(
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

int64_t rotary::stagedTableBytes(int64_t rows, int64_t cols) {
  return 2 * rows * (cols / 2) * 4;
}

Value rotary::stageTables(KernelBuilder &k, Value dst, int64_t rows,
                          int64_t cols, function_ref<Value(Value)> posOf,
                          Value tid, int64_t threads) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  assert(cols % 8 == 0 && "table tile of a head dim not a multiple of 8");
  assert(copy::hasAsyncCopy(k) && "staged tables need cp.async (sm_80+)");
  const int64_t perRow = cols / 8; // 16-byte pieces (4 f32) of a row
  const int64_t total = 2 * rows * perRow;
  Value half = arith::ShRUIOp::create(b, k.arg("rotary_dim"), cg.idx(1));
  Value stride = k.arg("rotary_stride");
  copy::forEachRound(k, tid, total, threads, [&](Value u, int64_t it) {
    // Table (cos / sin) per whole sweep of rows * perRow pieces: a
    // compile-time split where the threads divide it.
    Value which = arith::DivUIOp::create(b, u, cg.idx(rows * perRow));
    Value rest = arith::RemUIOp::create(b, u, cg.idx(rows * perRow));
    Value r = arith::DivUIOp::create(b, rest, cg.idx(perRow));
    Value col = cg.mul(arith::RemUIOp::create(b, rest, cg.idx(perRow)),
                       cg.idx(4));
    // Pieces at or past R / 2 are zero-filled (source size 0) from column
    // 0 of the row: a valid address whatever the table's stride. (The
    // rotation never reads them; a copy of size 0 keeps the loop branch-free.)
    Value ok = cg.cmp(arith::CmpIPredicate::slt, col, half);
    Value src = cg.add(cg.mul(posOf(r), stride), cg.select(ok, col, cg.idx(0)));
    Value elems = cg.select(ok, cg.idx(4), cg.idx(0));
    auto copyFrom = [&](StringRef name) {
      nvgpu::DeviceAsyncCopyOp::create(b, dst, ValueRange{which, r, col},
                                       k.arg(name), ValueRange{src},
                                       b.getIndexAttr(4), elems,
                                       b.getUnitAttr());
    };
    if ((it + 1) * threads <= rows * perRow) {
      copyFrom("rotary_cos");
    } else if (it * threads >= rows * perRow) {
      copyFrom("rotary_sin");
    } else {
      cg.ifElse(
          cg.cmp(arith::CmpIPredicate::eq, which, cg.idx(0)),
          [&] { copyFrom("rotary_cos"); }, [&] { copyFrom("rotary_sin"); });
    }
  });
  return copy::commitGroup(k);
}

void rotary::rotateTile(KernelBuilder &k, Value mem, int64_t rows,
                        int64_t cols, function_ref<Value(Value)> posOf,
                        Value tid, int64_t threads, bool inverse,
                        int64_t batch, Value staged) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  Type et = cast<MemRefType>(mem.getType()).getElementType();
  auto v8 = VectorType::get({8}, et);
  auto v8f = VectorType::get({8}, b.getF32Type());
  assert((batch > 0 || !staged) && "staged tables need the unrolled form");
  if (batch == 0) { // a loop, one chunk at a time (fewest registers)
    const int64_t perRow = cols / 8;
    auto loop =
        scf::ForOp::create(b, tid, cg.idx(rows * perRow), cg.idx(threads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value u = loop.getInductionVar();
    Value row = arith::DivUIOp::create(b, u, cg.idx(perRow));
    Value c = cg.mul(arith::RemUIOp::create(b, u, cg.idx(perRow)), cg.idx(8));
    rotateChunkAt(
        k, c, posOf(row), inverse, /*copyRest=*/false,
        [&](Value col) -> Value {
          auto ld = vector::LoadOp::create(b, v8, mem,
                                           tile::indices(k, mem, row, col));
          ld.setAlignment(16);
          return arith::ExtFOp::create(b, v8f, ld.getResult()).getResult();
        },
        [&](Value col, Value x) {
          vector::StoreOp::create(b, arith::TruncFOp::create(b, v8, x), mem,
                                  tile::indices(k, mem, row, col))
              .setAlignment(16);
        });
    return;
  }
  Value dim = k.arg("rotary_dim");
  Value half = arith::ShRUIOp::create(b, dim, cg.idx(1));
  auto lt = [&](Value x, Value y) {
    return cg.cmp(arith::CmpIPredicate::slt, x, y);
  };
  // One sweep per convention, unrolled over the thread's units (row, chunk)
  // in batches: a batch's shared-memory and table loads are issued before
  // any of its arithmetic, so their latencies overlap (a loop of one chunk
  // at a time waited on two L2 table loads per chunk). Units past the
  // rotary dims load chunk 0 (a valid address) and store nothing.
  auto sweep = [&](bool interleaved) {
    const int64_t perRow = interleaved ? cols / 8 : (cols / 2 + 7) / 8;
    const int64_t total = rows * perRow;
    const int64_t iters = (total + threads - 1) / threads;
    Value limit = interleaved ? dim : half;
    struct Unit {
      Value row, c, ok, x, y, cs, sn;
    };
    for (int64_t i0 = 0; i0 < iters; i0 += batch) {
      SmallVector<Unit> units;
      for (int64_t i = i0; i < std::min(iters, i0 + batch); ++i) {
        Unit un;
        Value u = cg.add(tid, cg.idx(i * threads));
        Value inTile = Value();
        if ((i + 1) * threads > total) { // a partial last step
          inTile = lt(u, cg.idx(total));
          u = cg.min(u, cg.idx(total - 1));
        }
        un.row = arith::DivUIOp::create(b, u, cg.idx(perRow));
        Value c =
            cg.mul(arith::RemUIOp::create(b, u, cg.idx(perRow)), cg.idx(8));
        un.ok = lt(c, limit);
        if (inTile)
          un.ok = cg.andI(un.ok, inTile);
        un.c = c;
        // The loads under the unit's own condition (zeros otherwise): a
        // unit past the rotary dims must not read a chunk another thread
        // is rewriting (a benign but real race for racecheck).
        auto vt = VectorType::get({interleaved ? 4 : 8}, b.getF32Type());
        SmallVector<Type> types = {v8, v8, vt, vt};
        auto loads = scf::IfOp::create(b, types, un.ok, /*withElse=*/true);
        {
          OpBuilder::InsertionGuard g(b);
          b.setInsertionPointToStart(loads.thenBlock());
          auto ld = vector::LoadOp::create(b, v8, mem,
                                           tile::indices(k, mem, un.row, c));
          ld.setAlignment(16);
          Value y = ld;
          if (!interleaved) {
            auto ly = vector::LoadOp::create(
                b, v8, mem, tile::indices(k, mem, un.row, cg.add(c, half)));
            ly.setAlignment(16);
            y = ly;
          }
          auto [cs, sn] = staged ? stagedTables(k, staged, un.row, c,
                                                interleaved)
                                 : tables(k, posOf(un.row), c, interleaved);
          scf::YieldOp::create(b, ValueRange{ld, y, cs, sn});
          b.setInsertionPointToStart(loads.elseBlock());
          auto zero = [&](Type t) -> Value {
            auto vt2 = cast<VectorType>(t);
            return arith::ConstantOp::create(
                b, vt2, DenseElementsAttr::get(vt2, b.getZeroAttr(
                                                        vt2.getElementType())));
          };
          scf::YieldOp::create(b, ValueRange{zero(v8), zero(v8), zero(vt),
                                             zero(vt)});
        }
        un.x = loads.getResult(0);
        un.y = interleaved ? Value() : loads.getResult(1);
        un.cs = loads.getResult(2);
        un.sn = loads.getResult(3);
        units.push_back(un);
      }
      for (Unit &un : units) {
        Value y = un.y ? arith::ExtFOp::create(b, v8f, un.y).getResult()
                       : Value();
        auto [x2, y2] =
            rotateLoaded(k, arith::ExtFOp::create(b, v8f, un.x).getResult(),
                         y, un.cs, un.sn, interleaved, inverse);
        auto st = scf::IfOp::create(b, un.ok, false);
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPoint(st.thenBlock()->getTerminator());
        vector::StoreOp::create(b, arith::TruncFOp::create(b, v8, x2), mem,
                                tile::indices(k, mem, un.row, un.c))
            .setAlignment(16);
        if (!interleaved)
          vector::StoreOp::create(
              b, arith::TruncFOp::create(b, v8, y2), mem,
              tile::indices(k, mem, un.row, cg.add(un.c, half)))
              .setAlignment(16);
      }
    }
  };
  auto il = scf::IfOp::create(
      b, cg.cmp(arith::CmpIPredicate::ne, k.arg("rotary_interleaved"),
                cg.idx(0)),
      /*withElse=*/true);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(il.thenBlock()->getTerminator());
  sweep(true);
  b.setInsertionPoint(il.elseBlock()->getTerminator());
  sweep(false);
}
