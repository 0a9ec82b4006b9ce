//===- SimtBackward.cpp - SIMT backward main kernel -------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The SIMT `attn_bwd_main`: one warp per 32-key block, lane = key; dK / dV
// accumulate in shared memory over the group's heads and the query rows that
// see the block; dQ goes to the f32 accumulator with atomics (unless
// deterministic).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
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

void kernels::buildSimtBackward(KernelBuilder &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV;
  const int64_t CD = (D + kWarp - 1) / kWarp;
  const int64_t tRow = transposedRow(s.elementType);
  Type et = s.elementType;

  Value kbk = k.bid(gpu::Dimension::x), hk = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
  Value lane = k.tid();
  k.beginSequence(bi); // varlen: the sequence's rows and lengths
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value k0 = cg.mul(kbk, bn);
  if (s.varlen) // key blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, k0, nk));
  Value kj = cg.add(k0, lane);
  Value kLast = cg.sub(cg.min(cg.add(k0, bn), nk), c1);

  SmemLayout layout = backwardSmem(s);
  Value kt = k.smem(layout.offsets[0], {D, tRow}, et);
  Value vt = k.smem(layout.offsets[1], {Dv, tRow}, et);
  Value dkAcc = k.smem(layout.offsets[2], {D, kBlockN + 1}, b.getF32Type());
  Value dvAcc = k.smem(layout.offsets[3], {Dv, kBlockN + 1}, b.getF32Type());
  Value qRow = k.smem(layout.offsets[4], {D}, b.getF32Type());
  Value doRow = k.smem(layout.offsets[5], {Dv}, b.getF32Type());
  Value dsRow = k.smem(layout.offsets[6], {kBlockN}, b.getF32Type());

  // Stage K^T and V^T of the block (each lane its own key, clamped) and zero
  // the accumulators.
  auto stageT = [&](StringRef t, Value dst, int64_t width) {
    simt::loadTile(k, t, bi, hk, k0, nk, kBlockN, width, kWarp,
               [&](Value r, Value c, Value vec) {
                 for (int64_t e = 0; e < simt::vecWidth(k); ++e) {
                   Value x = vector::ExtractOp::create(b, vec, e);
                   memref::StoreOp::create(b, x, dst,
                                           ValueRange{cg.add(c, cg.idx(e)), r});
                 }
               });
  };
  stageT("k", kt, D);
  stageT("v", vt, Dv);
  cg.forLoop(c0, cg.idx(D), [&](Value d) {
    memref::StoreOp::create(b, cg.f32(0.0), dkAcc, ValueRange{d, lane});
  });
  cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
    memref::StoreOp::create(b, cg.f32(0.0), dvAcc, ValueRange{d, lane});
  });

  // The query rows that can see some key of the block.
  Value qLo = c0, qHi = nq;
  if (s.masked)
    std::tie(qLo, qHi) = cg.visibleQueries(
        k0, kLast, off, nq, k.arg("window_left"), k.arg("window_right"));
  Value scale = k.arg("scale");

  cg.forLoop(c0, group, [&](Value g) {
    Value h = cg.add(cg.mul(hk, group), g);
    Value alibiW = simt::alibiWeight(k, bi, h);
    cg.forLoop(qLo, qHi, [&](Value i) {
      k.barrier(); // rows of the previous query are no longer read
      for (int64_t c = 0; c < CD; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(D)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        memref::StoreOp::create(b,
                                cg.load(k.arg("q"), {k.at4("q", bi, h, i, d)}),
                                qRow, ValueRange{d});
      }
      for (int64_t c = 0; c < (Dv + kWarp - 1) / kWarp; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(Dv)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        memref::StoreOp::create(
            b, cg.load(k.arg("do"), {k.at4("do", bi, h, i, d)}), doRow,
            ValueRange{d});
      }
      k.barrier();
      Value lse2 = cg.fmul(memref::LoadOp::create(
                               b, k.arg("lse"), ValueRange{k.atLse(bi, h, i)}),
                           cg.f32(kLog2e));
      Value flatRow =
          s.varlen ? k.drRow(bi, h, i)
                   : cg.add(cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq), i);
      Value dr = memref::LoadOp::create(b, k.arg("dr_ws"), ValueRange{flatRow});

      Value qk = cg.reduce(c0, cg.idx(D), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, qRow, d),
                                  cg.load(kt, {d, lane})));
      });
      Value th;
      Value s2 = simt::alibi(k, simt::score(k, qk, &th), alibiW, i, kj, off);
      Value p = cg.select(simt::visible(k, i, kj, off, nk),
                          cg.exp2(cg.fsub(s2, lse2)), cg.f32(0.0));
      Value dp = cg.reduce(c0, cg.idx(Dv), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, doRow, d),
                                  cg.load(vt, {d, lane})));
      });
      Value ds = cg.fmul(p, cg.fsub(dp, dr));
      if (s.softcap)
        ds = cg.fmul(ds, th);
      cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
        Value a = memref::LoadOp::create(b, dvAcc, ValueRange{d, lane});
        Value x = cg.fmul(p, memref::LoadOp::create(b, doRow, d));
        memref::StoreOp::create(b, cg.fadd(a, x), dvAcc, ValueRange{d, lane});
      });
      cg.forLoop(c0, cg.idx(D), [&](Value d) {
        Value a = memref::LoadOp::create(b, dkAcc, ValueRange{d, lane});
        Value x = cg.fmul(ds, memref::LoadOp::create(b, qRow, d));
        memref::StoreOp::create(b, cg.fadd(a, x), dkAcc, ValueRange{d, lane});
      });
      if (s.deterministic) // dQ: attn_bwd_dq
        return;
      memref::StoreOp::create(b, ds, dsRow, lane);
      k.barrier();
      // dQ[i, d] += scale sum_j dS_j K[j, d]; lane owns d = lane + 32c.
      // dqacc rows: [B, Hq, Nq rounded up to 16, D] (varlen: packed).
      Value dqBase;
      if (s.varlen) {
        dqBase = cg.mul(cg.add(k.dqaccRowBase(bi, h), i), cg.idx(D));
      } else {
        Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
        dqBase = cg.mul(
            cg.add(cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq16), i),
            cg.idx(D));
      }
      for (int64_t c = 0; c < CD; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(D)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        Value sum = cg.reduce(c0, bn, cg.f32(0.0), [&](Value j, Value a) {
          return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, dsRow, j),
                                    cg.load(kt, {d, j})));
        });
        memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf,
                                    cg.fmul(sum, scale), k.arg("dqacc_ws"),
                                    ValueRange{cg.add(dqBase, d)});
      }
    });
  });

  // Each lane writes its key's gradients.
  auto valid =
      scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, kj, nk), false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(valid.thenBlock()->getTerminator());
  cg.forLoop(c0, cg.idx(D), [&](Value d) {
    Value x = memref::LoadOp::create(b, dkAcc, ValueRange{d, lane});
    cg.store(cg.fmul(x, scale), k.arg("dk"), {k.at4("dk", bi, hk, kj, d)});
  });
  cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
    Value x = memref::LoadOp::create(b, dvAcc, ValueRange{d, lane});
    cg.store(x, k.arg("dv"), {k.at4("dv", bi, hk, kj, d)});
  });
}
