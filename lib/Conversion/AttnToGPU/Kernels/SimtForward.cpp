//===- SimtForward.cpp - SIMT forward kernel --------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The SIMT `attn_fwd`: a block of 4 warps x 8 query rows, key tiles of 32
// (K^T and V staged in shared memory between barriers), lane = key for the
// scores and lane = columns for the accumulator, warp-shuffle max / sum,
// P handed to P V through index shuffles.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"
#include "Simt.h"

#include "../Primitives/OnlineSoftmax.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;
using namespace mlir::attn::simt;

void kernels::buildSimtForward(KernelBuilder &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV, R = kFwdRowsPerWarp;
  const int64_t C = (Dv + kWarp - 1) / kWarp; // accumulator columns per lane
  const int64_t ktRow = transposedRow(s.elementType);
  Type et = s.elementType, f32 = b.getF32Type();

  Value qb = k.bid(gpu::Dimension::x), h = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
  k.beginSequence(bi); // varlen: the sequence's rows and lengths
  Value alibiW = simt::alibiWeight(k, bi, h);
  Value tid = k.tid();
  Value warp = cg.divs(tid, cg.idx(kWarp));
  Value lane = arith::RemSIOp::create(b, tid, cg.idx(kWarp));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value q0 = cg.mul(qb, cg.idx(kFwdBlockM));
  if (s.varlen) // query blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, q0, nq));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kFwdBlockM)), nq), c1);

  SmemLayout layout = forwardSmem(s);
  Value qs = k.smem(layout.offsets[0], {kFwdBlockM, D}, et);
  Value kt = k.smem(layout.offsets[1], {D, ktRow}, et);
  Value vs = k.smem(layout.offsets[2], {kBlockN, Dv}, et);

  // Q tile -> shared memory (rows beyond Nq are clamped copies, never
  // stored back).
  simt::loadTile(k, "q", bi, h, q0, nq, kFwdBlockM, D, kFwdWarps * kWarp,
             [&](Value r, Value c, Value vec) {
               auto st = vector::StoreOp::create(b, vec, qs, ValueRange{r, c});
               st.setAlignment(16);
             });

  // The key blocks any row of this query block can see.
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(
        q0, qLast, off, nk, k.arg("window_left"), k.arg("window_right"));
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  // Loop-carried per-row state: m[R], l[R], acc[R][C].
  SmallVector<Value> init;
  for (int64_t i = 0; i < R; ++i)
    init.push_back(cg.negInf());
  for (int64_t i = 0; i < R; ++i)
    init.push_back(cg.f32(0.0));
  for (int64_t i = 0; i < R * C; ++i)
    init.push_back(cg.f32(0.0));

  auto kLoop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value kb = kLoop.getInductionVar();
    ValueRange st = kLoop.getRegionIterArgs();
    SmallVector<Value> m(st.begin(), st.begin() + R),
        l(st.begin() + R, st.begin() + 2 * R),
        acc(st.begin() + 2 * R, st.end());
    Value k0 = cg.mul(kb, bn);

    // Stage K (transposed) and V; the barrier before protects the tiles the
    // previous iteration still reads.
    k.barrier();
    simt::loadTile(k, "k", bi, hk, k0, nk, kBlockN, D, kFwdWarps * kWarp,
               [&](Value r, Value c, Value vec) {
                 for (int64_t e = 0; e < simt::vecWidth(k); ++e) {
                   Value x = vector::ExtractOp::create(b, vec, e);
                   memref::StoreOp::create(b, x, kt,
                                           ValueRange{cg.add(c, cg.idx(e)), r});
                 }
               });
    simt::loadTile(k, 
        "v", bi, hk, k0, nk, kBlockN, Dv, kFwdWarps * kWarp,
        [&](Value r, Value c, Value vec) {
          auto st = vector::StoreOp::create(b, vec, vs, ValueRange{r, c});
          st.setAlignment(16);
        });
    k.barrier();

    // Scores and online softmax, one row at a time; lane = key.
    Value kj = cg.add(k0, lane);
    SmallVector<Value> p(R), alpha(R), newM(R), newL(R);
    for (int64_t i = 0; i < R; ++i) {
      Value row = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
      Value qi = cg.add(q0, row);
      Value qk = cg.reduce(c0, cg.idx(D), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a,
                       cg.fmul(cg.load(qs, {row, d}), cg.load(kt, {d, lane})));
      });
      Value s2 = cg.select(
          simt::visible(k, qi, kj, off, nk),
          simt::alibi(k, simt::score(k, qk), alibiW, qi, kj, off), cg.negInf());
      Value mx = simt::warpReduce(k, s2, /*isMax=*/true);
      newM[i] = cg.fmax(m[i], mx);
      Value mUse =
          cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, newM[i], cg.negInf()),
                    cg.f32(0.0), newM[i]);
      alpha[i] = cg.exp2(cg.fsub(m[i], mUse));
      p[i] = cg.exp2(cg.fsub(s2, mUse));
      newL[i] =
          cg.fadd(cg.fmul(l[i], alpha[i]), simt::warpReduce(k, p[i], /*isMax=*/false));
    }

    // acc = alpha acc + P V: lane owns columns lane + 32c; P_j comes from
    // lane j through a shuffle.
    SmallVector<Value> accInit;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t c = 0; c < C; ++c)
        accInit.push_back(cg.fmul(acc[i * C + c], alpha[i]));
    SmallVector<Value> cols;
    for (int64_t c = 0; c < C; ++c)
      cols.push_back(cg.min(cg.add(lane, cg.idx(c * kWarp)), cg.idx(Dv - 1)));
    auto pv = scf::ForOp::create(b, c0, bn, c1, accInit);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(pv.getBody());
      Value j = pv.getInductionVar();
      ValueRange a = pv.getRegionIterArgs();
      SmallVector<Value> vj, out;
      for (int64_t c = 0; c < C; ++c)
        vj.push_back(cg.load(vs, {j, cols[c]}));
      for (int64_t i = 0; i < R; ++i) {
        Value pj = simt::shuffleIdx(k, p[i], j);
        for (int64_t c = 0; c < C; ++c)
          out.push_back(cg.fadd(a[i * C + c], cg.fmul(pj, vj[c])));
      }
      scf::YieldOp::create(b, out);
    }
    SmallVector<Value> yield(newM);
    yield.append(newL);
    yield.append(pv.getResults().begin(), pv.getResults().end());
    scf::YieldOp::create(b, yield);
  }

  // Epilogue: O = acc / l; lse = (m + log2 l) ln 2; empty rows 0 / -inf;
  // the head's attention sink joins each row first.
  ValueRange res = kLoop.getResults();
  Value sink = softmax::sinkLog2(k, h);
  for (int64_t i = 0; i < R; ++i) {
    Value row = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
    Value qi = cg.add(q0, row);
    softmax::Merged mg = softmax::withSink(k, res[i], res[R + i], sink);
    Value m = mg.m, l = mg.l;
    auto inRange =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, qi, nq),
                          /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
    Value inv = cg.select(any, cg.fdiv(mg.alpha, l), cg.f32(0.0));
    for (int64_t c = 0; c < C; ++c) {
      Value col = cg.add(lane, cg.idx(c * kWarp));
      auto colOk = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(Dv)), false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(colOk.thenBlock()->getTerminator());
      Value o = cg.fmul(res[2 * R + i * C + c], inv);
      if (o.getType() != et)
        o = arith::TruncFOp::create(b, et, o);
      memref::StoreOp::create(b, o, k.arg("o"),
                              ValueRange{k.at4("o", bi, h, qi, col)});
    }
    auto lane0 =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, lane, c0), false);
    b.setInsertionPoint(lane0.thenBlock()->getTerminator());
    Value lse = cg.select(any, cg.fmul(cg.fadd(m, cg.log2(l)), cg.f32(kLn2)),
                          cg.negInf());
    memref::StoreOp::create(b, lse, k.arg("lse"),
                            ValueRange{k.atLse(bi, h, qi)});
  }
  (void)f32;
}
