//===- TileCopy.cpp - global <-> shared tile copies -----------------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "TileCopy.h"
#include "SharedTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;

void copy::stageTile(KernelBuilder &k, StringRef t, Value bi, Value h,
                     Value row0, Value limit, int64_t rows, int64_t cols,
                     Value dst, Value tid) {
  ImplicitLocOpBuilder &b = k.b;
  detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  int64_t perRow = cols / 8;
  int64_t total = rows * perRow;
  auto vt = VectorType::get({8}, k.et);
  Value last = cg.sub(limit, cg.idx(1));
  for (int64_t it = 0; it < (total + threads - 1) / threads; ++it) {
    Value i = cg.add(tid, cg.idx(it * threads));
    Value r = k.div(i, perRow);
    Value c = cg.mul(k.rem(i, perRow), cg.idx(8));
    auto body = [&] {
      Value n = cg.min(cg.add(row0, r), last);
      auto ld = vector::LoadOp::create(b, vt, k.arg(t),
                                       ValueRange{k.at4(t, bi, h, n, c)});
      ld.setAlignment(16);
      auto st =
          vector::StoreOp::create(b, ld, dst, tile::indices(k, dst, r, c));
      st.setAlignment(16);
    };
    if ((it + 1) * threads <= total) {
      body();
    } else {
      auto inRange = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)), false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(inRange.thenBlock()->getTerminator());
      body();
    }
  }
}

void copy::storeTile(KernelBuilder &k, Value src, StringRef t, Value bi,
                     Value h, Value row0, Value limit, int64_t rows,
                     int64_t cols, Value tid) {
  ImplicitLocOpBuilder &b = k.b;
  detail::Codegen &cg = k.cg;
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

Value copy::stageTileAsync(KernelBuilder &k, StringRef t, Value bi, Value h,
                           Value row0, Value limit, int64_t rows, int64_t cols,
                           Value dst, Value tid, bool rowStep) {
  ImplicitLocOpBuilder &b = k.b;
  detail::Codegen &cg = k.cg;
  const int64_t threads = k.threads;
  int64_t perRow = cols / 8;
  int64_t total = rows * perRow;
  assert(total % threads == 0 && threads % perRow == 0 &&
         "partial async tile");
  Value last = cg.sub(limit, cg.idx(1));
  // Copy `it` of a thread covers row r0 + it * step, columns c..c+7.
  const int64_t step = threads / perRow;
  Value r0 = k.div(tid, perRow);
  Value c = cg.mul(k.rem(tid, perRow), cg.idx(8));
  auto copies = [&](bool clamp) {
    const bool stepped = rowStep && !clamp;
    Value first = stepped ? k.at4(t, bi, h, cg.add(row0, r0), c) : Value();
    Value stride =
        stepped ? cg.mul(k.arg((t + "_stride_n").str()), cg.idx(step))
                : Value();
    for (int64_t it = 0; it < total / threads; ++it) {
      Value r = cg.add(r0, cg.idx(it * step));
      Value n = cg.add(row0, r);
      Value src = stepped ? cg.add(first, cg.mul(stride, cg.idx(it)))
                          : k.at4(t, bi, h, clamp ? cg.min(n, last) : n, c);
      nvgpu::DeviceAsyncCopyOp::create(b, dst, tile::indices(k, dst, r, c),
                                       k.arg(t), ValueRange{src},
                                       b.getIndexAttr(8), Value(),
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

void copy::waitGroups(KernelBuilder &k, Value token, int32_t pending) {
  nvgpu::DeviceAsyncWaitOp::create(k.b, token,
                                   k.b.getI32IntegerAttr(pending));
}
