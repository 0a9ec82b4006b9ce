//===- MmaDq.cpp - tensor-core deterministic dQ kernel ----------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The dQ kernel of the deterministic backward (`attn_bwd_dq`) with mma.sync
// m16n8k16 (f32 accumulate) for sm_80+: query-parallel, so every dQ element
// is one thread's register sum in a fixed order (no atomics; bit-identical
// run to run). Grid: query tiles x query heads x batch. A block of W warps
// owns W x 16 query rows (16 per warp, one m16 tile); keys come in tiles of
// blockN (the schedule, KernelSelect.cpp).
//
//  * Q and dO of the block are staged once (cp.async, with the first K / V
//    tile); at D = 64 their A fragments stay in registers, at D = 128 they
//    are re-read from shared memory at every k-step (registers are full).
//  * K and V tiles are double-buffered in shared memory (rows XOR-swizzled
//    on sm_90, padded by 8 elements on sm_80: schedule.swizzle; conflict-free
//    ldmatrix either way) and staged by cp.async: tile j + 1 is
//    issued right after iteration j's barrier, into the buffer iteration
//    j - 1 used, and lands under iteration j's math. One barrier per tile.
//  * Per key tile, per warp (16 queries x BN keys), as the forward kernel:
//      S  = Q K^T                   A: Q fragments, B: K by ldmatrix
//      P  = exp2(S scale log2e - lse log2e)  (element mask on tiles not
//           entirely visible: invisible / key >= Nk -> 0)
//      dP - dr = dO V^T - dr        A: dO fragments, B: V by ldmatrix (the
//                                   accumulators start at -dr)
//      dS = P (dP - dr)
//      dQ += dS K                   A: dS straight from the f32 accumulators
//                                   of two adjacent n8 tiles (the P trick of
//                                   the forward), B: K by ldmatrix.trans
//  * The visited key tiles are those some row of the block can see
//    (Codegen::visibleKeys, as the forward); masked kernels take the query
//    tiles last to first.
//  * Rows >= Nq are clamped copies of row Nq - 1 and are never stored; rows
//    that see no key get dq = 0 (every P of theirs is masked to 0).
//  * Epilogue: dq = scale dQ in the element type through shared memory (the
//    Q region), 16-byte row pieces.
//
// Register fragment trace (lane = 4 g + t): S, dP, dS n8 tile j:
// acc[j][2r+e] = (query 16 w + g + 8r, key 8j + 2t + e); dQ n8 tile n:
// acc[n][2r+e] = (query 16 w + g + 8r, column 8n + 2t + e).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../Primitives/Mask.h"
#include "../Primitives/MmaSync.h"
#include "../Primitives/Score.h"
#include "../Primitives/SharedTile.h"
#include "../Primitives/TileCopy.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;


namespace {
/// Byte offsets of the shared-memory tiles (element type).
struct DqLayout {
  int64_t q = 0;  ///< Q  [BM][D + 8]; the dq tile of the epilogue
  int64_t dO = 0; ///< dO [BM][Dv + 8]
  int64_t k = 0;  ///< K  [2 buffers][BN][D + 8]
  int64_t v = 0;  ///< V  [2][BN][Dv + 8]
  int64_t kBytes = 0, vBytes = 0; ///< one buffer
  int64_t total = 0;
};
} // namespace

static DqLayout layoutOf(const GpuKernelSpec &s, const KernelSchedule &sch) {
  const int64_t eb = 2; // f16 / bf16
  const int64_t bm = sch.blockM, bn = sch.blockN;
  DqLayout l;
  tile::SmemLayout m;
  // Rows of D elements, XOR-swizzled (tile::swizzleCol) on sm_90, padded
  // on sm_80 (schedule.swizzle).
  const int64_t tp = sch.swizzle ? 0 : 8;
  l.q = m.add(bm * (sch.dk + tp) * eb);
  l.dO = m.add(bm * (sch.dvk + tp) * eb);
  l.kBytes = tile::align16(bn * (sch.dk + tp) * eb);
  l.vBytes = tile::align16(bn * (sch.dvk + tp) * eb);
  l.k = m.add(2 * l.kBytes);
  l.v = m.add(2 * l.vBytes);
  l.total = m.total;
  return l;
}

int64_t kernels::mmaDqSmem(const GpuKernelSpec &s, const KernelSchedule &sch) {
  return layoutOf(s, sch).total;
}

void kernels::buildMmaDq(KernelBuilder &k, const KernelSchedule &sch) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  // The padded head dims the MMAs use (columns >= the real ones are zero
  // in the tiles and never written out).
  const int64_t D = sch.dk, Dv = sch.dvk;
  const int64_t realD = s.headDim, realDv = s.headDimV;
  const int64_t BM = sch.blockM, BN = sch.blockN;
  const int64_t NT = BN / 8; // n8 tiles of S / dP / dS
  const int64_t QT = D / 8;  // n8 tiles of dQ
  const bool fragRegs = sch.qInRegisters;
  Type f32 = b.getF32Type();
  Type et = s.elementType;

  // Masked kernels take the query tiles last to first (the last ones see
  // the most keys under a causal mask).
  Value qb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  if (s.masked)
    qb = cg.sub(cg.sub(gpu::GridDimOp::create(b, gpu::Dimension::x), qb),
                cg.idx(1));
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  const LaneIds li =
      k.laneIds(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value tid = li.tid, warp = li.warp, lane = li.lane, g = li.g, t = li.t,
        l8 = li.l8, l8b = li.l8b, l16 = li.l16;
  Value warpRow0 = cg.mul(warp, cg.idx(16));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(BN);
  Value q0 = cg.mul(qb, cg.idx(BM));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(BM)), nq), c1);
  Value wl = s.masked ? k.arg("window_left") : Value();
  Value wr = s.masked ? k.arg("window_right") : Value();
  Value scale = k.arg("scale");
  // Softcap c: scores tanh(S scale / c) in units of c log2(e)
  // (Primitives/Score.h); dS also takes their 1 - tanh^2.
  Value scale2, capMul;
  if (s.softcap) {
    Value c = k.arg("softcap");
    capMul = cg.fdiv(scale, c);
    scale2 = cg.fmul(c, cg.f32(kLog2e));
  } else {
    scale2 = cg.fmul(scale, cg.f32(kLog2e));
  }

  const DqLayout L = layoutOf(s, sch);
  const int64_t tp = sch.swizzle ? 0 : 8;
  Value qs = k.smem(L.q, {BM, D + tp});
  Value dos = k.smem(L.dO, {BM, Dv + tp});
  // K / V buffer `buf` (0 or 1, run-time).
  auto view = [&](int64_t base, int64_t bytes, Value buf, int64_t width) {
    auto mt = MemRefType::get({BN, width + tp}, et,
                              MemRefLayoutAttrInterface(), k.workgroup());
    return memref::ViewOp::create(
        b, mt, k.dynBase, cg.add(cg.idx(base), cg.mul(buf, cg.idx(bytes))),
        ValueRange{});
  };
  auto kView = [&](Value buf) { return view(L.k, L.kBytes, buf, D); };
  auto vView = [&](Value buf) { return view(L.v, L.vBytes, buf, Dv); };

  // The two query rows of this lane, their lse log2e and dr (rows >= Nq:
  // those of row Nq - 1).
  Value alibiW =
      s.alibi ? score::alibiWeight(k, bi, h, cg.f32(kLog2e)) : Value();
  Value qRow[2], nlse2[2], ndr[2];
  Value rowBase = cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq);
  Value lseBase = cg.add(cg.mul(bi, k.arg("lse_stride_b")),
                         cg.mul(h, k.arg("lse_stride_h")));
  for (int64_t r = 0; r < 2; ++r) {
    qRow[r] = cg.add(cg.add(q0, warpRow0), cg.add(g, cg.idx(8 * r)));
    Value qc = cg.min(qRow[r], cg.sub(nq, c1));
    Value lse = memref::LoadOp::create(b, k.arg("lse"),
                                       ValueRange{cg.add(lseBase, qc)});
    nlse2[r] = arith::NegFOp::create(b, cg.fmul(lse, cg.f32(kLog2e)));
    ndr[r] = arith::NegFOp::create(
        b, memref::LoadOp::create(b, k.arg("dr_ws"),
                                  ValueRange{cg.add(rowBase, qc)}));
  }

  // Visible key tiles of the whole query tile.
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(q0, qLast, off, nk, wl, wr);
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  // K and V tile `kbi` into buffer `buf` (one commit group).
  auto stageKV = [&](Value kbi, Value buf) {
    Value k0 = cg.mul(kbi, bn);
    (void)copy::stageTileAsync(k, "k", bi, hk, k0, nk, BN, D, kView(buf), tid,
                               /*rowStep=*/false, realD);
    (void)copy::stageTileAsync(k, "v", bi, hk, k0, nk, BN, Dv, vView(buf), tid,
                               /*rowStep=*/false, realDv);
  };
  // Prologue: Q, dO and the first K / V tile in flight together.
  (void)copy::stageTileAsync(k, "q", bi, h, q0, nq, BM, D, qs, tid,
                             /*rowStep=*/false, realD);
  (void)copy::stageTileAsync(k, "do", bi, h, q0, nq, BM, Dv, dos, tid,
                             /*rowStep=*/false, realDv);
  {
    auto hasKeys = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, kbLo, kbHi), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(hasKeys.thenBlock()->getTerminator());
    stageKV(kbLo, c0);
  }

  // A fragment (k16 step kk) of the warp's 16 rows of `mem`: rows warpRow0 +
  // lane % 16, columns 16kk + 8 (lane / 16).
  auto aFrag = [&](Value mem, int64_t kk) {
    return mma::ldmatrix(k, mem, cg.add(warpRow0, k.rem(lane, 16)),
                      cg.add(cg.idx(16 * kk), cg.mul(l16, cg.idx(8))), false);
  };
  SmallVector<SmallVector<Value>> qf, df;
  if (fragRegs) {
    copy::waitAll(k, 0);
    gpu::BarrierOp::create(b);
    for (int64_t kk = 0; kk < D / 16; ++kk)
      qf.push_back(aFrag(qs, kk));
    for (int64_t kk = 0; kk < Dv / 16; ++kk)
      df.push_back(aFrag(dos, kk));
  }

  // Loop state: dQ [QT][4] (f32, unscaled).
  SmallVector<Value> init(QT * 4, cg.f32(0.0));
  auto loop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value kbi = loop.getInductionVar();
    Value k0 = cg.mul(kbi, bn);
    SmallVector<Value> dq(loop.getRegionIterArgs().begin(),
                          loop.getRegionIterArgs().end());
    Value buf = arith::RemSIOp::create(b, cg.sub(kbi, kbLo), cg.idx(2));
    Value ks = kView(buf), vs = vView(buf);

    // Tile j landed (the only group in flight) and is visible; every warp
    // is done with tile j - 1, so its buffer takes tile j + 1.
    copy::waitAll(k, 0);
    gpu::BarrierOp::create(b);
    {
      Value nxt = cg.add(kbi, c1);
      auto more = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, nxt, kbHi), false);
      OpBuilder::InsertionGuard gm(b);
      b.setInsertionPoint(more.thenBlock()->getTerminator());
      stageKV(nxt, cg.sub(c1, buf));
    }

    // X = A B^T over the depth `width` with B = `mem` rows (keys) by
    // ldmatrix: n8 tiles j, element (row r, col e) at acc[j][2r + e].
    auto product = [&](ArrayRef<SmallVector<Value>> frags, Value aMem,
                       Value mem, int64_t width,
                       SmallVector<SmallVector<Value>> acc) {
      for (int64_t kk = 0; kk < width / 16; ++kk) {
        SmallVector<Value> a = fragRegs ? frags[kk] : aFrag(aMem, kk);
        for (int64_t p = 0; p < NT / 2; ++p) {
          Value row =
              cg.add(cg.idx(16 * p), cg.add(l8, cg.mul(l16, cg.idx(8))));
          Value col = cg.add(cg.idx(16 * kk), cg.mul(l8b, cg.idx(8)));
          SmallVector<Value> bf = mma::ldmatrix(k, mem, row, col, false);
          acc[2 * p] = mma::mma(k, a, {bf[0], bf[1]}, acc[2 * p]);
          acc[2 * p + 1] = mma::mma(k, a, {bf[2], bf[3]}, acc[2 * p + 1]);
        }
      }
      return acc;
    };

    // ---- S = Q K^T, P = exp2(S scale log2e - lse log2e).
    SmallVector<SmallVector<Value>> sAcc = product(
        qf, qs, ks, D,
        SmallVector<SmallVector<Value>>(NT, SmallVector<Value>(4, cg.f32(0.0))));
    // ALiBi in the log2 domain (Primitives/Score.h): element (r, j, e) at
    // key k0 + 2 t + 8 j + e of row qRow[r].
    Value alibiDist[2];
    if (s.alibi)
      for (int64_t r = 0; r < 2; ++r)
        alibiDist[r] = score::alibiDist(k, cg.add(k0, cg.mul(t, cg.idx(2))),
                                        qRow[r], off);
    SmallVector<Value> pv, sech2;
    for (int64_t j = 0; j < NT; ++j)
      for (int64_t i = 0; i < 4; ++i)
        pv.push_back(cg.exp2(LLVM::FMAOp::create(
            b,
            s.softcap ? score::softcap(k, sAcc[j][i], capMul, sch.fastTanh,
                                       &sech2.emplace_back())
                      : sAcc[j][i],
            scale2,
            s.alibi ? score::alibi(k, nlse2[i / 2], alibiW, alibiDist[i / 2],
                                   8 * j + i % 2)
                    : nlse2[i / 2])));

    // Element mask on tiles not entirely visible to every row of the tile
    // (and keys >= Nk): P = 0 there.
    Value full = cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, bn), nk);
    if (s.masked) {
      Value qEnd = cg.add(q0, cg.idx(BM - 1));
      Value leftOk = arith::OrIOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
          cg.cmp(arith::CmpIPredicate::sge, k0,
                 cg.sub(cg.add(qEnd, off), wl)));
      Value rightOk = arith::OrIOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
          cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(BN - 1)),
                 cg.add(cg.add(q0, off), wr)));
      full = cg.andI(full, cg.andI(leftOk, rightOk));
    }
    SmallVector<Type> types(pv.size(), f32);
    auto maskIf = scf::IfOp::create(b, types, full, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard gm(b);
      b.setInsertionPointToStart(maskIf.thenBlock());
      scf::YieldOp::create(b, pv);
      b.setInsertionPointToStart(maskIf.elseBlock());
      // Per row, the visible columns as i32 bounds (MmaGen::rowBounds).
      Value colBase = cg.add(k0, cg.mul(t, cg.idx(2)));
      Value lastCol = cg.sub(cg.sub(nk, c1), colBase); // keys < Nk
      mask::RowBounds bd[2];
      for (int64_t r = 0; r < 2; ++r)
        bd[r] = mask::rowBounds(k, qRow[r], colBase, lastCol, off, wl, wr);
      SmallVector<Value> masked;
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t e = 0; e < 2; ++e)
            masked.push_back(mask::element(k, bd[r], 8 * j + e,
                                           pv[j * 4 + r * 2 + e],
                                           /*negInf=*/false));
      scf::YieldOp::create(b, masked);
    }
    pv.assign(maskIf.getResults().begin(), maskIf.getResults().end());

    // ---- dP - dr = dO V^T - dr (accumulators start at -dr); dS = P (dP -
    // dr).
    SmallVector<SmallVector<Value>> dpInit(NT);
    for (int64_t j = 0; j < NT; ++j)
      dpInit[j] = {ndr[0], ndr[0], ndr[1], ndr[1]};
    SmallVector<SmallVector<Value>> dpAcc =
        product(df, dos, vs, Dv, std::move(dpInit));
    SmallVector<Value> dsv(pv.size());
    for (int64_t j = 0; j < NT; ++j)
      for (int64_t i = 0; i < 4; ++i)
        dsv[j * 4 + i] =
            s.softcap ? cg.fmul(cg.fmul(pv[j * 4 + i], dpAcc[j][i]),
                                sech2[j * 4 + i])
                      : cg.fmul(pv[j * 4 + i], dpAcc[j][i]);

    // ---- dQ += dS K: A of keys 16kk.. = dS tiles 2kk and 2kk + 1; B[k =
    // key][n = d] = K[key][d] stored [k][n] -> ldmatrix.trans.
    for (int64_t kk = 0; kk < BN / 16; ++kk) {
      const Value *x0 = &dsv[(2 * kk) * 4], *x1 = &dsv[(2 * kk + 1) * 4];
      SmallVector<Value> a = {mma::pack(k, x0[0], x0[1]), mma::pack(k, x0[2], x0[3]),
                              mma::pack(k, x1[0], x1[1]), mma::pack(k, x1[2], x1[3])};
      for (int64_t pn = 0; pn < QT / 2; ++pn) {
        Value row =
            cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l8b, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * pn), cg.mul(l16, cg.idx(8)));
        SmallVector<Value> bf = mma::ldmatrix(k, ks, row, col, true);
        for (int64_t half = 0; half < 2; ++half) {
          int64_t n = 2 * pn + half;
          SmallVector<Value> c(dq.begin() + n * 4, dq.begin() + n * 4 + 4);
          SmallVector<Value> d =
              mma::mma(k, a, {bf[2 * half], bf[2 * half + 1]}, c);
          std::copy(d.begin(), d.end(), dq.begin() + n * 4);
        }
      }
    }
    scf::YieldOp::create(b, dq);
  }

  // Epilogue: dq = scale dQ through shared memory (the Q region: every warp
  // is past the loop and no copy is in flight after the barrier).
  copy::waitAll(k, 0); // Q / dO when no tile was visited
  gpu::BarrierOp::create(b);
  ValueRange res = loop.getResults();
  for (int64_t r = 0; r < 2; ++r) {
    Value row = cg.add(warpRow0, cg.add(g, cg.idx(8 * r)));
    for (int64_t n = 0; n < QT; ++n) {
      Value col = cg.add(cg.idx(8 * n), cg.mul(t, cg.idx(2)));
      Value pair = mma::pack(k, cg.fmul(res[n * 4 + 2 * r], scale),
                          cg.fmul(res[n * 4 + 2 * r + 1], scale));
      vector::StoreOp::create(b, pair, qs,
                              ValueRange{row, tile::swizzleCol(k, qs, row, col)})
          .setAlignment(4);
    }
  }
  gpu::BarrierOp::create(b);
  copy::storeTile(k, qs, "dq", bi, h, q0, nq, BM, realD, tid);
}
