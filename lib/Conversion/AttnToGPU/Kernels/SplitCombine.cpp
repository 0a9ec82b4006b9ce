//===- SplitCombine.cpp - the split-KV forward's combine kernel -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn_fwd_combine: the second kernel of the split-KV forward (decode). Key
// range s of a query row (b, h, n) left O_s (= its partial O / l, f32) and
// lse_s in oacc_ws / lseacc_ws (abi::splitOaccElems); the row's result is
//   lse = log sum_s exp(lse_s),  O = sum_s exp(lse_s - lse) O_s,
// which is exact (a range the row sees no key of has lse_s = -inf, weight
// 0; a row that sees no key at all gets O = 0, lse = -inf, as the one-pass
// forward). One warp per row: lane j takes the ranges s = j, j + 32, ...
// for the max and the sum (xor shuffles), then columns c = j, j + 32, ...
// of every range for O (coalesced 128-byte rows).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "Simt.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

void kernels::buildSplitCombine(KernelBuilder &k, const KernelSchedule &sch) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t rowsPerBlock = sch.threads / kWarp;
  const int64_t dv = s.headDimV;
  Value tid = k.tid();
  Value warp = cg.divs(tid, cg.idx(kWarp));
  Value lane = arith::RemUIOp::create(b, tid, cg.idx(kWarp));
  Value h = k.bid(gpu::Dimension::y), bi = k.bid(gpu::Dimension::z);
  Value n = cg.add(cg.mul(k.bid(gpu::Dimension::x), cg.idx(rowsPerBlock)), warp);
  Value nq = k.arg("seqlen_q"), splits = k.arg("num_splits");
  Value batch = k.arg("batch"), hq = k.arg("heads");
  // Element index of row (s, bi, h, n) in lseacc_ws; times Dv in oacc_ws.
  auto rowAt = [&](Value sp) {
    return cg.add(
        cg.mul(cg.add(cg.mul(cg.add(cg.mul(sp, batch), bi), hq), h), nq), n);
  };
  auto rowIf = scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, n, nq),
                                 false); // whole warps: shuffles inside
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(rowIf.thenBlock()->getTerminator());
  Value lseacc = k.arg("lseacc_ws"), oacc = k.arg("oacc_ws");
  Value c0 = cg.idx(0), c1 = cg.idx(1), cw = cg.idx(kWarp);

  // m = max_s lse_s over the lane's ranges, then the warp.
  auto laneMax = scf::ForOp::create(b, lane, splits, cw, ValueRange{cg.negInf()});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(laneMax.getBody());
    Value x = memref::LoadOp::create(b, lseacc,
                                     ValueRange{rowAt(laneMax.getInductionVar())});
    scf::YieldOp::create(b, ValueRange{cg.fmax(laneMax.getRegionIterArgs()[0], x)});
  }
  // The head's attention sink (KernelAbi.h) joins as one more range, of
  // lse sinks[h] and O = 0; -inf without sinks.
  Value sink;
  {
    Value sinks = k.arg("sinks");
    Value has = cg.cmp(arith::CmpIPredicate::ne,
                       memref::DimOp::create(b, sinks, 0), c0);
    auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type()}, has, true);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(
        b, ValueRange{memref::LoadOp::create(b, sinks, ValueRange{h})});
    b.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(b, ValueRange{cg.negInf()});
    sink = ifOp.getResult(0);
  }
  Value m = cg.fmax(simt::warpReduce(k, laneMax.getResult(0), /*isMax=*/true),
                    sink);
  Value any = cg.fcmp(arith::CmpFPredicate::OGT, m, cg.negInf());
  Value mSafe = cg.select(any, m, cg.f32(0.0));
  // exp(x - m) of an lse, 0 for -inf.
  auto weight = [&](Value x, Value ref) {
    Value w = cg.exp2(cg.fmul(cg.fsub(x, ref), cg.f32(kLog2e)));
    return cg.select(cg.fcmp(arith::CmpFPredicate::OGT, x, cg.negInf()), w,
                     cg.f32(0.0));
  };
  auto laneSum = scf::ForOp::create(b, lane, splits, cw, ValueRange{cg.f32(0.0)});
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(laneSum.getBody());
    Value x = memref::LoadOp::create(b, lseacc,
                                     ValueRange{rowAt(laneSum.getInductionVar())});
    scf::YieldOp::create(
        b, ValueRange{cg.fadd(laneSum.getRegionIterArgs()[0], weight(x, mSafe))});
  }
  Value sum = cg.fadd(simt::warpReduce(k, laneSum.getResult(0), /*isMax=*/false),
                      weight(sink, mSafe));
  Value lse = cg.select(
      any, cg.fadd(mSafe, cg.fmul(cg.log2(sum), cg.f32(kLn2))), cg.negInf());

  // O[c] = sum_s exp(lse_s - lse) O_s[c] for the lane's columns.
  const int64_t perLane = (dv + kWarp - 1) / kWarp;
  SmallVector<Value> init(perLane, cg.f32(0.0));
  auto acc = scf::ForOp::create(b, c0, splits, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(acc.getBody());
    Value sp = acc.getInductionVar();
    Value r = rowAt(sp);
    Value w = weight(memref::LoadOp::create(b, lseacc, ValueRange{r}), lse);
    Value base = cg.mul(r, cg.idx(dv));
    SmallVector<Value> next;
    for (int64_t j = 0; j < perLane; ++j) {
      Value col = cg.add(lane, cg.idx(j * kWarp));
      Value prev = acc.getRegionIterArgs()[j];
      if ((j + 1) * kWarp <= dv) {
        Value x = memref::LoadOp::create(b, oacc, ValueRange{cg.add(base, col)});
        next.push_back(cg.fadd(prev, cg.fmul(w, x)));
        continue;
      }
      // The last, partial round of columns: lanes past Dv add nothing.
      auto in = scf::IfOp::create(
          b, TypeRange{b.getF32Type()},
          cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(dv)), true);
      b.setInsertionPointToStart(in.thenBlock());
      Value x = memref::LoadOp::create(b, oacc, ValueRange{cg.add(base, col)});
      scf::YieldOp::create(b, ValueRange{cg.fadd(prev, cg.fmul(w, x))});
      b.setInsertionPointToStart(in.elseBlock());
      scf::YieldOp::create(b, ValueRange{prev});
      b.setInsertionPointAfter(in);
      next.push_back(in.getResult(0));
    }
    scf::YieldOp::create(b, next);
  }
  for (int64_t j = 0; j < perLane; ++j) {
    Value col = cg.add(lane, cg.idx(j * kWarp));
    Value x = acc.getResult(j);
    if (x.getType() != s.elementType)
      x = arith::TruncFOp::create(b, s.elementType, x);
    auto store = [&] {
      memref::StoreOp::create(b, x, k.arg("o"),
                              ValueRange{k.at4("o", bi, h, n, col)});
    };
    if ((j + 1) * kWarp <= dv) {
      store();
      continue;
    }
    auto in = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(dv)), false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(in.thenBlock()->getTerminator());
    store();
  }
  auto lane0 = scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, lane, c0),
                                 false);
  b.setInsertionPoint(lane0.thenBlock()->getTerminator());
  memref::StoreOp::create(b, lse, k.arg("lse"), ValueRange{k.atLse(bi, h, n)});
}
