//===- RowKernels.cpp - backward row kernels --------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// attn_bwd_pre and attn_bwd_post: row-parallel kernels moving 16-byte
// pieces, the same for every engine.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "../Primitives/Rotary.h"
#include "Simt.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;
using namespace mlir::attn::simt;

/// attn_bwd_pre's second pass (sinks_pass = 1, KernelAbi.h): block (0, h, 0)
/// writes dsinks[h] = -sum over (b, i) of exp(sinks[h] - lse[b, h, i])
/// dr[b, h, i], in a fixed order (bit-reproducible): each thread sums rows
/// tid, tid + T, ... of every sequence, kU loads in flight per round, then
/// the warps' sums (xor shuffles) meet in shared memory. Every other block
/// has nothing to do; so has the pass without sinks (dsinks empty).
static void buildSinkGrad(KernelBuilder &k, Value tid, Value h) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  constexpr int64_t kU = 8;
  const int64_t T = kRowThreads, W = kRowThreads / kWarp;
  Value c0 = cg.idx(0), c1 = cg.idx(1);
  Value dsinks = k.arg("dsinks");
  Value first = cg.andI(
      cg.cmp(arith::CmpIPredicate::eq, k.bid(gpu::Dimension::x), c0),
      cg.cmp(arith::CmpIPredicate::eq, k.bid(gpu::Dimension::z), c0));
  Value has = cg.cmp(arith::CmpIPredicate::ne,
                     memref::DimOp::create(b, dsinks, 0), c0);
  auto work = scf::IfOp::create(b, cg.andI(first, has), false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(work.thenBlock()->getTerminator());
  Type f32 = b.getF32Type();
  Value sink = memref::LoadOp::create(b, k.arg("sinks"), ValueRange{h});
  Value nq = k.arg("seqlen_q"), hq = k.arg("heads");
  Value dr = k.arg("dr_ws");
  Value rounds = cg.ceilDiv(nq, cg.idx(T * kU));
  auto perSeq = scf::ForOp::create(b, c0, k.arg("batch"), c1,
                                   ValueRange{cg.f32(0.0)});
  {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(perSeq.getBody());
    Value bi = perSeq.getInductionVar();
    Value drBase = cg.mul(cg.add(cg.mul(bi, hq), h), nq);
    auto loop = scf::ForOp::create(b, c0, rounds, c1,
                                   ValueRange{perSeq.getRegionIterArgs()[0]});
    b.setInsertionPointToStart(loop.getBody());
    Value acc = loop.getRegionIterArgs()[0];
    Value r0 = cg.add(cg.mul(loop.getInductionVar(), cg.idx(T * kU)), tid);
    SmallVector<Value> terms;
    for (int64_t u = 0; u < kU; ++u) {
      Value i = cg.add(r0, cg.idx(u * T));
      Value ok = cg.cmp(arith::CmpIPredicate::slt, i, nq);
      Value iC = cg.min(i, cg.sub(nq, c1));
      Value lse = memref::LoadOp::create(b, k.arg("lse"),
                                         ValueRange{k.atLse(bi, h, iC)});
      Value d = memref::LoadOp::create(b, dr, ValueRange{cg.add(drBase, iC)});
      Value w = cg.exp2(cg.fmul(cg.fsub(sink, lse), cg.f32(kLog2e)));
      terms.push_back(cg.select(ok, cg.fmul(w, d), cg.f32(0.0)));
    }
    for (Value t : terms)
      acc = cg.fadd(acc, t);
    scf::YieldOp::create(b, ValueRange{acc});
    b.setInsertionPointAfter(loop);
    scf::YieldOp::create(b, ValueRange{loop.getResult(0)});
  }
  Value acc = perSeq.getResult(0);
  for (int64_t off = kWarp / 2; off >= 1; off /= 2)
    acc = cg.fadd(acc, gpu::ShuffleOp::create(b, acc, k.i32(off), k.i32(kWarp),
                                              gpu::ShuffleMode::XOR)
                           .getShuffleResult());
  Value part = k.smem(0, {W}, f32);
  Value warp = cg.divs(tid, cg.idx(kWarp));
  {
    auto lane0 = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::eq, k.rem(tid, kWarp), c0),
        false);
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPoint(lane0.thenBlock()->getTerminator());
    memref::StoreOp::create(b, acc, part, ValueRange{warp});
  }
  gpu::BarrierOp::create(b);
  auto t0 = scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, tid, c0),
                              false);
  b.setInsertionPoint(t0.thenBlock()->getTerminator());
  Value sum = cg.f32(0.0);
  for (int64_t w = 0; w < W; ++w)
    sum = cg.fadd(sum, memref::LoadOp::create(b, part, ValueRange{cg.idx(w)}));
  memref::StoreOp::create(b, arith::NegFOp::create(b, sum), dsinks,
                          ValueRange{h});
}

/// Row-parallel kernels: `rowLanes` lanes per query row of (batch, head),
/// each moving 16-byte pieces, so a warp's accesses are contiguous.
///  * bwd_pre: dr = rowsum(dO * O) (f32, lane partial sums reduced with xor
///    shuffles inside the row's lane group) and dqacc[row] = 0; its second
///    pass d sinks (buildSinkGrad).
///  * bwd_post: dq[row] = dqacc[row], converted (times the scale for the
///    tensor-core bwd_main's unscaled fragment-order accumulator).
void kernels::buildRowKernel(KernelBuilder &k, GpuKernelKind kind,
                             const KernelSchedule &sch) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t L = sch.rowLanes, R = kRowThreads / L;
  const int64_t vec = 16 / elementBytes(s.elementType);
  Type f32 = b.getF32Type(), et = s.elementType;
  Value tid = k.tid();
  Value lane = arith::RemSIOp::create(b, tid, cg.idx(L));
  Value h = k.bid(gpu::Dimension::y), bi = k.bid(gpu::Dimension::z);
  Value sub = cg.divs(tid, cg.idx(L));
  Value row0 = cg.mul(k.bid(gpu::Dimension::x), cg.idx(R));
  Value row = cg.add(row0, sub);
  k.beginSequence(bi); // varlen: the sequence's rows
  Value nq = k.arg("seqlen_q");
  Value inRange = cg.cmp(arith::CmpIPredicate::slt, row, nq);
  // Loads use the clamped row (always valid); stores are guarded.
  Value rowC = cg.min(row, cg.sub(nq, cg.idx(1)));
  // Contiguous f32 workspaces (KernelBuilder::drRow, dqaccRowBase): dr,
  // dqacc in rows of D, 16-row groups, in row order or in the tensor-core
  // bwd_main's fragment order (KernelSchedule::fragmentOrderDqAcc) within
  // each group.
  const bool fragOrder = sch.fragmentOrderDqAcc;
  Value flatRow = k.drRow(bi, h, row);
  Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
  Value dqRow0 = k.dqaccRowBase(bi, h);
  Value dqBase = cg.mul(cg.add(dqRow0, row), cg.idx(s.headDim));
  auto vt = VectorType::get({vec}, et);
  auto vf = VectorType::get({vec}, f32);
  // Runs `body(c)` for the chunks c = lane + i L < n of this lane, under
  // `guard` (and c < n where the last round is partial).
  auto chunks = [&](int64_t n, Value guard, function_ref<void(Value)> body) {
    for (int64_t i = 0; i * L < n; ++i) {
      Value c = cg.add(lane, cg.idx(i * L));
      Value ok = guard;
      if ((i + 1) * L > n) {
        Value inN = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(n));
        ok = ok ? cg.andI(ok, inN) : inN;
      }
      if (!ok) {
        body(c);
        continue;
      }
      auto ifOp = scf::IfOp::create(b, ok, false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      body(c);
    }
  };
  if (kind == GpuKernelKind::BwdPre) {
    // sinks_pass 1 (after pass 0 has written dr_ws): d sinks (dense
    // batches; the runtime takes no sinks with varlen ones).
    Value sinksPass = cg.cmp(arith::CmpIPredicate::ne, k.arg("sinks_pass"),
                             cg.idx(0));
    if (!s.varlen) {
      auto ifOp = scf::IfOp::create(b, sinksPass, false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      buildSinkGrad(k, tid, h);
    }
    k.exitUnless(cg.cmp(arith::CmpIPredicate::eq, k.arg("sinks_pass"),
                        cg.idx(0)));
  }
  if (s.varlen) // row blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, row0, nq));
  if (kind == GpuKernelKind::BwdPre) {
    int64_t nv = (s.headDimV + vec - 1) / vec;
    assert(s.headDimV % vec == 0 && "head dims are multiples of 8");
    Value acc = cg.f32(0.0);
    for (int64_t i = 0; i * L < nv; ++i) {
      Value c = cg.add(lane, cg.idx(i * L));
      auto piece = [&]() -> Value {
        Value d = cg.mul(c, cg.idx(vec));
        auto x = vector::LoadOp::create(
            b, vt, k.arg("do"), ValueRange{k.at4("do", bi, h, rowC, d)});
        auto y = vector::LoadOp::create(b, vt, k.arg("o"),
                                        ValueRange{k.at4("o", bi, h, rowC, d)});
        x.setAlignment(16);
        y.setAlignment(16);
        Value sum = cg.f32(0.0);
        for (int64_t e = 0; e < vec; ++e) {
          Value xe = vector::ExtractOp::create(b, x, e),
                ye = vector::ExtractOp::create(b, y, e);
          if (et != f32) {
            xe = arith::ExtFOp::create(b, f32, xe);
            ye = arith::ExtFOp::create(b, f32, ye);
          }
          sum = cg.fadd(sum, cg.fmul(xe, ye));
        }
        return sum;
      };
      if ((i + 1) * L <= nv) {
        acc = cg.fadd(acc, piece());
      } else {
        auto ifOp = scf::IfOp::create(
            b, TypeRange{f32}, cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(nv)),
            /*withElse=*/true);
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        scf::YieldOp::create(b, piece());
        b.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(b, cg.f32(0.0));
        b.setInsertionPointAfter(ifOp);
        acc = cg.fadd(acc, ifOp.getResult(0));
      }
    }
    for (int64_t off = L / 2; off >= 1; off /= 2) {
      Value y = gpu::ShuffleOp::create(b, acc, k.i32(off), k.i32(kWarp),
                                       gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      acc = cg.fadd(acc, y);
    }
    {
      auto ifOp = scf::IfOp::create(
          b,
          cg.andI(inRange, cg.cmp(arith::CmpIPredicate::eq, lane, cg.idx(0))),
          false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(b, acc, k.arg("dr_ws"), ValueRange{flatRow});
    }
    if (s.deterministic) // no dQ accumulator (attn_bwd_dq computes dQ)
      return;
    assert(s.headDim % 4 == 0 && "head dims are multiples of 8");
    auto v4 = VectorType::get({4}, f32);
    Value zeros = arith::ConstantOp::create(
        b, v4, DenseElementsAttr::get(v4, b.getZeroAttr(f32)));
    auto zeroRow = [&](Value base, Value guard) {
      chunks(s.headDim / 4, guard, [&](Value c) {
        vector::StoreOp::create(b, zeros, k.arg("dqacc_ws"),
                                ValueRange{cg.add(base, cg.mul(c, cg.idx(4)))})
            .setAlignment(16);
      });
    };
    zeroRow(dqBase, inRange);
    if (fragOrder) {
      // Fragment order spreads a 16-row group's rows over the whole group:
      // the lanes of the last row also zero the padding rows Nq .. Nq16 - 1.
      auto last = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::eq, row, cg.sub(nq, cg.idx(1))),
          false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(last.thenBlock()->getTerminator());
      auto pad = scf::ForOp::create(b, nq, nq16, cg.idx(1));
      b.setInsertionPointToStart(pad.getBody());
      zeroRow(cg.mul(cg.add(dqRow0, pad.getInductionVar()),
                     cg.idx(s.headDim)),
              Value());
    }
    return;
  }
  assert(s.headDim % vec == 0 && "head dims are multiples of 8");
  // Fragment order: row 16 G + 8 r + g, columns 8 n + 2 t + e (t = 0..3) of
  // chunk n are two 16-byte pieces (e = 0, 1) at (rowBase16 + 16 G) D +
  // 128 n + 32 (2 r + e) + 4 g.
  Value fragBase;
  if (fragOrder) {
    assert(vec == 8 && "fragment order is for f16 / bf16");
    Value i = arith::RemSIOp::create(b, row, cg.idx(16));
    Value g = arith::RemSIOp::create(b, i, cg.idx(8));
    Value r = cg.divs(i, cg.idx(8));
    fragBase = cg.add(
        cg.mul(cg.add(dqRow0, cg.sub(row, i)), cg.idx(s.headDim)),
        cg.add(cg.mul(r, cg.idx(64)), cg.mul(g, cg.idx(4))));
  }
  // dqacc columns [d, d + vec) of the row, piece c = d / vec (f32, times
  // the scale in fragment order) and the dq store of such a piece.
  auto readPiece = [&](Value c, Value d) {
    SmallVector<Value> vals;
    if (fragOrder) {
      auto v4 = VectorType::get({4}, f32);
      Value base = cg.add(fragBase, cg.mul(c, cg.idx(128)));
      Value x[2];
      for (int64_t e = 0; e < 2; ++e) {
        auto ld = vector::LoadOp::create(
            b, v4, k.arg("dqacc_ws"), ValueRange{cg.add(base, cg.idx(32 * e))});
        ld.setAlignment(16);
        x[e] = ld;
      }
      Value scale = k.arg("scale");
      for (int64_t j = 0; j < vec; ++j)
        vals.push_back(cg.fmul(
            vector::ExtractOp::create(b, x[j % 2], j / 2), scale));
    } else {
      auto x = vector::LoadOp::create(b, vf, k.arg("dqacc_ws"),
                                      ValueRange{cg.add(dqBase, d)});
      x.setAlignment(16);
      for (int64_t e = 0; e < vec; ++e)
        vals.push_back(vector::ExtractOp::create(b, x, e));
    }
    return vals;
  };
  auto writePiece = [&](Value d, ArrayRef<Value> vals) {
    SmallVector<Value> elems;
    for (Value v : vals)
      elems.push_back(
          et == f32 ? v : arith::TruncFOp::create(b, et, v).getResult());
    Value out = vector::FromElementsOp::create(b, vt, elems);
    vector::StoreOp::create(b, out, k.arg("dq"),
                            ValueRange{k.at4("dq", bi, h, row, d)})
        .setAlignment(16);
  };
  if (s.rotary) {
    // RoPE: dQ of the rotated rows -> dQ of the stored ones (R^T, query i
    // at position i + Nk - Nq; Primitives/Rotary.h).
    assert(vec == 8 && "rotary kernels are f16 / bf16");
    auto v8f = VectorType::get({8}, f32);
    Value pos = cg.max(cg.add(rowC, cg.sub(k.arg("seqlen_k"), nq)),
                       cg.idx(0));
    chunks(s.headDim / vec, inRange, [&](Value c) {
      rotary::rotateChunkAt(
          k, cg.mul(c, cg.idx(vec)), pos, /*inverse=*/true,
          /*copyRest=*/true,
          [&](Value d) -> Value {
            return vector::FromElementsOp::create(
                b, v8f, readPiece(arith::DivUIOp::create(b, d, cg.idx(vec)), d));
          },
          [&](Value d, Value x) {
            SmallVector<Value> vals;
            for (int64_t e = 0; e < vec; ++e)
              vals.push_back(vector::ExtractOp::create(b, x, e));
            writePiece(d, vals);
          });
    });
    return;
  }
  chunks(s.headDim / vec, inRange, [&](Value c) {
    Value d = cg.mul(c, cg.idx(vec));
    writePiece(d, readPiece(c, d));
  });
}
