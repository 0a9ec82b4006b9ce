//===- TileCopy.cpp - global <-> shared tile copies -----------------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "TileCopy.h"
#include "SharedTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;

void copy::stageTile(KernelBuilder &k, StringRef t, Value bi, Value h,
                     Value row0, Value limit, int64_t rows, int64_t cols,
                     Value dst, Value tid, int64_t validCols) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  int64_t perRow = cols / 8;
  int64_t total = rows * perRow;
  auto vt = VectorType::get({8}, k.et);
  Value last = cg.sub(limit, cg.idx(1));
  // Copy chunk i (row i / perRow, 8 columns from 8 (i % perRow)); `guarded`:
  // only where i < total (the last, partial round of the threads).
  auto copyChunk = [&](Value i, bool guarded) {
    Value r = k.div(i, perRow);
    Value c = cg.mul(k.rem(i, perRow), cg.idx(8));
    OpBuilder::InsertionGuard g(b);
    if (guarded) {
      auto inRange = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)), false);
      b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    }
    Value n = cg.min(cg.add(row0, r), last);
    Value inCols, col = c;
    if (validCols >= 0 && validCols < cols) {
      inCols = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(validCols));
      col = cg.select(inCols, c, cg.idx(0));
    }
    auto ld = vector::LoadOp::create(b, vt, k.arg(t),
                                     ValueRange{k.at4(t, bi, h, n, col)});
    ld.setAlignment(16);
    Value x = ld;
    if (inCols)
      x = arith::SelectOp::create(
          b, inCols, x,
          arith::ConstantOp::create(
              b, vt, DenseElementsAttr::get(vt, b.getZeroAttr(k.et))));
    auto st = vector::StoreOp::create(b, x, dst, tile::indices(k, dst, r, c));
    st.setAlignment(16);
  };
  // The threads' whole rounds. Without cp.async (sm_75) they run as a loop
  // whose trip count ptxas cannot see: unrolled, every load of the tile is
  // hoisted above the stores and holds its registers next to the
  // accumulators (ptxas 13.0 then spilled 16-60 bytes in the D >= 224
  // forward kernels).
  const int64_t whole = total / threads;
  int64_t it = 0;
  if (!hasAsyncCopy(k) && whole > 1) {
    auto loop = scf::ForOp::create(b, cg.idx(0), opaqueIndex(b, cg.idx(whole)),
                                   cg.idx(1));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    copyChunk(cg.add(tid, cg.mul(loop.getInductionVar(), cg.idx(threads))),
              false);
    it = whole;
  }
  for (; it < (total + threads - 1) / threads; ++it)
    copyChunk(cg.add(tid, cg.idx(it * threads)), (it + 1) * threads > total);
}

void copy::storeTile(KernelBuilder &k, Value src, StringRef t, Value bi,
                     Value h, Value row0, Value limit, int64_t rows,
                     int64_t cols, Value tid) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  int64_t perRow = cols / 8;
  int64_t total = rows * perRow;
  auto vt = VectorType::get({8}, k.et);
  for (int64_t it = 0; it < (total + threads - 1) / threads; ++it) {
    Value i = cg.add(tid, cg.idx(it * threads));
    Value r = k.div(i, perRow);
    Value c = cg.mul(k.rem(i, perRow), cg.idx(8));
    Value n = cg.add(row0, r);
    Value ok = cg.cmp(arith::CmpIPredicate::slt, n, limit);
    if ((it + 1) * threads > total)
      ok = cg.andI(ok, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)));
    auto inRange = scf::IfOp::create(b, ok, false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    auto ld = vector::LoadOp::create(b, vt, src, tile::indices(k, src, r, c));
    ld.setAlignment(16);
    auto st = vector::StoreOp::create(b, ld, k.arg(t),
                                      ValueRange{k.at4(t, bi, h, n, c)});
    st.setAlignment(16);
  }
}

/// stageTileAsync for any shape: copy `it` of a thread is the tile's chunk
/// tid + it * threads (row i / perRow, chunk i % perRow).
static Value stageTileAsyncFlat(KernelBuilder &k, StringRef t, Value bi,
                                Value h, Value row0, Value limit, int64_t rows,
                                int64_t cols, Value dst, Value tid,
                                int64_t validCols) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  const int64_t perRow = cols / 8, total = rows * perRow;
  Value last = cg.sub(limit, cg.idx(1));
  auto copies = [&](bool clamp) {
    copy::forEachRound(k, tid, total, threads, [&](Value i, int64_t) {
      Value r = k.div(i, perRow);
      Value c = cg.mul(k.rem(i, perRow), cg.idx(8));
      Value n = cg.add(row0, r);
      if (clamp)
        n = cg.min(n, last);
      Value col = c, srcElems;
      if (validCols < cols) {
        Value ok = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(validCols));
        col = cg.select(ok, c, cg.idx(0));
        srcElems = cg.select(ok, cg.idx(8), cg.idx(0));
      }
      nvgpu::DeviceAsyncCopyOp::create(
          b, dst, tile::indices(k, dst, r, c), k.arg(t),
          ValueRange{k.at4(t, bi, h, n, col)}, b.getIndexAttr(8), srcElems,
          b.getUnitAttr());
    });
  };
  auto full = scf::IfOp::create(
      b, cg.cmp(arith::CmpIPredicate::sle, cg.add(row0, cg.idx(rows)), limit),
      /*withElse=*/true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(full.thenBlock()->getTerminator());
    copies(false);
    b.setInsertionPoint(full.elseBlock()->getTerminator());
    copies(true);
  }
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), ValueRange{});
}

Value copy::stageTileAsync(KernelBuilder &k, StringRef t, Value bi, Value h,
                           Value row0, Value limit, int64_t rows, int64_t cols,
                           Value dst, Value tid, bool rowStep,
                           int64_t validCols) {
  if (!hasAsyncCopy(k)) {
    stageTile(k, t, bi, h, row0, limit, rows, cols, dst, tid, validCols);
    return Value();
  }
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  int64_t perRow = cols / 8;
  int64_t total = rows * perRow;
  if (validCols < 0)
    validCols = cols;
  // Chunk slots per row: the row's chunks, or (when they do not divide the
  // threads) the next power of two, whose extra slots copy nothing: every
  // thread then keeps one column chunk for all its rows.
  int64_t slots = perRow;
  if (threads % perRow != 0)
    while (threads % slots != 0 && slots < threads)
      slots = slots < 1 ? 1 : 1 << (64 - __builtin_clzll(slots - 1));
  if ((rows * slots) % threads != 0 || threads % slots != 0)
    return stageTileAsyncFlat(k, t, bi, h, row0, limit, rows, cols, dst, tid,
                              validCols);
  total = rows * slots;
  Value last = cg.sub(limit, cg.idx(1));
  // Copy `it` of a thread covers row r0 + it * step, columns c..c+7.
  const int64_t step = threads / slots;
  Value r0 = k.div(tid, slots);
  Value c = cg.mul(k.rem(tid, slots), cg.idx(8));
  // Padding: slots past the row copy nothing; chunks past validCols are
  // zero-filled (source size 0, from the row's first column).
  Value active, col = c, srcElems;
  if (slots > perRow)
    active = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(cols));
  if (validCols < cols) {
    Value ok = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(validCols));
    col = cg.select(ok, c, cg.idx(0));
    srcElems = cg.select(ok, cg.idx(8), cg.idx(0));
  }
  auto copies = [&](bool clamp) {
    OpBuilder::InsertionGuard g(b);
    if (active) {
      auto in = scf::IfOp::create(b, active, false);
      b.setInsertionPoint(in.thenBlock()->getTerminator());
    }
    const bool stepped = rowStep && !clamp;
    Value first = stepped ? k.at4(t, bi, h, cg.add(row0, r0), col) : Value();
    Value stride =
        stepped ? cg.mul(k.arg((t + "_stride_n").str()), cg.idx(step))
                : Value();
    for (int64_t it = 0; it < total / threads; ++it) {
      Value r = cg.add(r0, cg.idx(it * step));
      Value n = cg.add(row0, r);
      Value src = stepped ? cg.add(first, cg.mul(stride, cg.idx(it)))
                          : k.at4(t, bi, h, clamp ? cg.min(n, last) : n, col);
      nvgpu::DeviceAsyncCopyOp::create(b, dst, tile::indices(k, dst, r, c),
                                       k.arg(t), ValueRange{src},
                                       b.getIndexAttr(8), srcElems,
                                       b.getUnitAttr());
    }
  };
  auto full = scf::IfOp::create(
      b, cg.cmp(arith::CmpIPredicate::sle, cg.add(row0, cg.idx(rows)), limit),
      /*withElse=*/true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(full.thenBlock()->getTerminator());
    copies(false);
    b.setInsertionPoint(full.elseBlock()->getTerminator());
    copies(true);
  }
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), ValueRange{});
}

void copy::forEachRound(KernelBuilder &k, Value tid, int64_t total,
                        int64_t threads,
                        function_ref<void(Value, int64_t)> body) {
  ImplicitLocOpBuilder &b = k.b;
  attn::detail::Codegen &cg = k.cg;
  for (int64_t it = 0; it * threads < total; ++it) {
    Value i = cg.add(tid, cg.idx(it * threads));
    OpBuilder::InsertionGuard g(b);
    if ((it + 1) * threads > total) {
      auto inRange = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)), false);
      b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    }
    body(i, it);
  }
}

void copy::waitGroups(KernelBuilder &k, Value token, int32_t pending) {
  if (!hasAsyncCopy(k))
    return;
  nvgpu::DeviceAsyncWaitOp::create(k.b, token,
                                   k.b.getI32IntegerAttr(pending));
}

bool copy::hasAsyncCopy(const KernelBuilder &k) {
  return k.spec.smVersion == 0 || k.spec.smVersion >= 80;
}

Value copy::commitGroup(KernelBuilder &k) {
  if (!hasAsyncCopy(k))
    return Value();
  return nvgpu::DeviceAsyncCreateGroupOp::create(
      k.b, nvgpu::DeviceAsyncTokenType::get(k.b.getContext()), ValueRange{});
}

void copy::waitAll(KernelBuilder &k, int32_t pending) {
  if (hasAsyncCopy(k))
    NVVM::CpAsyncWaitGroupOp::create(k.b, pending);
}

void copy::copyScalarAsync(KernelBuilder &k, Value dst, ValueRange dstIdx,
                           Value src, ValueRange srcIdx) {
  ImplicitLocOpBuilder &b = k.b;
  if (!hasAsyncCopy(k)) {
    Value x = memref::LoadOp::create(b, src, srcIdx);
    memref::StoreOp::create(b, x, dst, dstIdx);
    return;
  }
  nvgpu::DeviceAsyncCopyOp::create(b, dst, dstIdx, src, srcIdx,
                                   b.getIndexAttr(1), Value(), UnitAttr());
}
