//===- SimtDq.cpp - SIMT deterministic dQ kernel ----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The SIMT `attn_bwd_dq` of the deterministic backward (see the comment
// on buildSimtDq).
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

/// Deterministic dQ (attn_bwd_dq, SIMT): the forward's geometry (4 warps x
/// 8 query rows, key tiles of 32: lane = key). Per visible key tile and row
/// the kernel recomputes s = q.k (softcap: c tanh(s / c) and its derivative),
/// P = exp2(s log2e - lse log2e), dP = dO.v and dS = P (dP - Dr) exactly as
/// the SIMT attn_bwd_main does, then adds dS K to the row's f32 accumulator
/// (lane owns columns lane + 32c; dS_j comes from lane j through a shuffle).
/// The order of every sum is fixed: dq is bit-reproducible.
void kernels::buildSimtDq(KernelBuilder &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV, R = kFwdRowsPerWarp;
  const int64_t C = (D + kWarp - 1) / kWarp; // accumulator columns per lane
  const int64_t tRow = transposedRow(s.elementType);
  Type et = s.elementType;
  const int64_t threads = kFwdWarps * kWarp;

  Value qb = k.bid(gpu::Dimension::x), h = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
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
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kFwdBlockM)), nq), c1);
  Value scale = k.arg("scale");

  SmemLayout layout = dqSmem(s);
  Value qs = k.smem(layout.offsets[0], {kFwdBlockM, D}, et);
  Value dos = k.smem(layout.offsets[1], {kFwdBlockM, Dv}, et);
  Value kt = k.smem(layout.offsets[2], {D, tRow}, et);
  Value vt = k.smem(layout.offsets[3], {Dv, tRow}, et);

  // Q and dO rows of the block (rows >= Nq: clamped copies, never stored).
  auto stageRows = [&](StringRef t, Value dst, int64_t width) {
    simt::loadTile(k, t, bi, h, q0, nq, kFwdBlockM, width, threads,
               [&](Value r, Value c, Value vec) {
                 vector::StoreOp::create(b, vec, dst, ValueRange{r, c})
                     .setAlignment(16);
               });
  };
  stageRows("q", qs, D);
  stageRows("do", dos, Dv);

  // Per row of this warp: lse log2e and Dr (clamped row: always valid).
  SmallVector<Value> rowOf(R), lse2(R), dr(R);
  Value rowBase = cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq);
  for (int64_t i = 0; i < R; ++i) {
    rowOf[i] = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
    Value qi = cg.min(cg.add(q0, rowOf[i]), cg.sub(nq, c1));
    lse2[i] = cg.fmul(
        memref::LoadOp::create(b, k.arg("lse"), ValueRange{k.atLse(bi, h, qi)}),
        cg.f32(kLog2e));
    dr[i] = memref::LoadOp::create(b, k.arg("dr_ws"),
                                   ValueRange{cg.add(rowBase, qi)});
  }

  // The key blocks any row of this query block can see (as the forward).
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(
        q0, qLast, off, nk, k.arg("window_left"), k.arg("window_right"));
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  SmallVector<Value> init(R * C, cg.f32(0.0));
  auto kLoop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value k0 = cg.mul(kLoop.getInductionVar(), bn);
    ValueRange acc = kLoop.getRegionIterArgs();

    // K^T and V^T tiles (padded rows: lane = key reads conflict-free); the
    // barrier before protects the tiles the previous iteration still reads.
    auto stageT = [&](StringRef t, Value dst, int64_t width) {
      simt::loadTile(k, t, bi, hk, k0, nk, kBlockN, width, threads,
                 [&](Value r, Value c, Value vec) {
                   for (int64_t e = 0; e < simt::vecWidth(k); ++e) {
                     Value x = vector::ExtractOp::create(b, vec, e);
                     memref::StoreOp::create(
                         b, x, dst, ValueRange{cg.add(c, cg.idx(e)), r});
                   }
                 });
    };
    k.barrier();
    stageT("k", kt, D);
    stageT("v", vt, Dv);
    k.barrier();

    // rows[i] . tile[:, lane] for the R rows at once: each K^T / V^T
    // element is loaded once (and only R sums are live).
    auto dotRows = [&](Value rows, Value tile, int64_t width) {
      auto loop = scf::ForOp::create(b, c0, cg.idx(width), c1,
                                     SmallVector<Value>(R, cg.f32(0.0)));
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value d = loop.getInductionVar();
      Value x = cg.load(tile, {d, lane});
      SmallVector<Value> out;
      for (int64_t i = 0; i < R; ++i)
        out.push_back(cg.fadd(loop.getRegionIterArgs()[i],
                              cg.fmul(cg.load(rows, {rowOf[i], d}), x)));
      scf::YieldOp::create(b, out);
      return SmallVector<Value>(loop.getResults());
    };
    Value kj = cg.add(k0, lane);
    SmallVector<Value> qk = dotRows(qs, kt, D), dp = dotRows(dos, vt, Dv);
    SmallVector<Value> ds(R);
    for (int64_t i = 0; i < R; ++i) {
      Value qi = cg.add(q0, rowOf[i]);
      Value th;
      Value s2 =
          simt::alibi(k, simt::score(k, qk[i], &th), alibiW, qi, kj, off);
      Value p = cg.select(simt::visible(k, qi, kj, off, nk),
                          cg.exp2(cg.fsub(s2, lse2[i])), cg.f32(0.0));
      ds[i] = cg.fmul(p, cg.fsub(dp[i], dr[i]));
      if (s.softcap)
        ds[i] = cg.fmul(ds[i], th);
    }

    // acc += dS K: lane owns columns lane + 32c (clamped; the extra lanes'
    // sums are never stored), K[j, col] = K^T[col, j].
    SmallVector<Value> cols;
    for (int64_t c = 0; c < C; ++c)
      cols.push_back(cg.min(cg.add(lane, cg.idx(c * kWarp)), cg.idx(D - 1)));
    auto jLoop = scf::ForOp::create(b, c0, bn, c1, acc);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(jLoop.getBody());
      Value j = jLoop.getInductionVar();
      ValueRange a = jLoop.getRegionIterArgs();
      SmallVector<Value> kcol, out;
      for (int64_t c = 0; c < C; ++c)
        kcol.push_back(cg.load(kt, {cols[c], j}));
      for (int64_t i = 0; i < R; ++i) {
        Value dsj = simt::shuffleIdx(k, ds[i], j);
        for (int64_t c = 0; c < C; ++c)
          out.push_back(cg.fadd(a[i * C + c], cg.fmul(dsj, kcol[c])));
      }
      scf::YieldOp::create(b, out);
    }
    scf::YieldOp::create(b, jLoop.getResults());
  }

  // dq = scale * acc, rows < Nq, columns < D. Rows that see no key: 0.
  ValueRange res = kLoop.getResults();
  for (int64_t i = 0; i < R; ++i) {
    Value qi = cg.add(q0, rowOf[i]);
    auto inRange =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, qi, nq), false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    for (int64_t c = 0; c < C; ++c) {
      Value col = cg.add(lane, cg.idx(c * kWarp));
      auto colOk = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(D)), false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(colOk.thenBlock()->getTerminator());
      Value x = cg.fmul(res[i * C + c], scale);
      if (x.getType() != et)
        x = arith::TruncFOp::create(b, et, x);
      memref::StoreOp::create(b, x, k.arg("dq"),
                              ValueRange{k.at4("dq", bi, h, qi, col)});
    }
  }
}
