//===- MmaBackwardPass.cpp - one query pass of the backward -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// One pass of the tensor-core backward main kernel (MmaBackward.cpp) over
// QS queries of the current tile: S^T = K Q^T, P^T (recomputed from lse,
// element mask on partial tiles), dP^T - dr = V dO^T - dr, dS^T, and the
// pass's share of dV += P^T dO and dK += dS^T Q, on mma.sync or wgmma.
//
//===----------------------------------------------------------------------===//

#include "MmaBackward.h"

#include "../Primitives/MmaSync.h"
#include "../Primitives/Score.h"
#include "../Primitives/SharedTile.h"
#include "../Primitives/TileCopy.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;
using namespace mlir::attn::kernels::bwd;

void Kernel::pass(Step &st, int64_t pass, SmallVector<Value> &dk,
                  SmallVector<Value> &dv) {
  const Lanes &ln = st.ln;
  std::optional<wgmma::Descriptors> &ld = st.ld;
  Value g = ln.g, t = ln.t, l8 = ln.l8, l8b = ln.l8b, l16 = ln.l16;
  Value *keyRow = st.keyRow;
  Value q0 = st.cur.q0, buf = st.buf, qs = st.qs, dos = st.dos,
        rowOff = st.rowOff, full = st.full;
  Value qb = CS > 1 ? cg.mul(ln.cs, cg.idx(QS)) : cg.idx(pass * QS);

  // ---- S^T = K Q^T: B[k = d][n = query] = Q[query][d], Q stored [n][k] ->
  // ldmatrix non-trans; matrices (queries 16p + 0-7, d 16kk + 0-7) b0 of
  // tile 2p, (16p + 0-7, +8) b1, (16p + 8-15, +0) b0 and (+8, +8) b1 of
  // tile 2p + 1.
  SmallVector<SmallVector<Value>> sAcc(ST,
                                       SmallVector<Value>(4, cg.f32(0.0)));
  // wgmma: S^T = K Q^T and dP^T - dr = V dO^T - dr as two commit groups
  // of m64nQSk16 (A: the warpgroup's 64 keys of K / V, B: the pass's
  // queries of Q / dO, both K-major), one wait. The accumulator of warp
  // w % 4 is the mma.sync fragment of warp w: element 4 j + 2 r + e at
  // (key 16 w + g + 8 r, query qb + 8 j + 2 t + e).
  SmallVector<SmallVector<Value>> dpAccW;
  Value wgi = wg ? k.div(ln.warp, 4) : Value();
  auto kMajorAt = [&](int64_t region, Value extra, int64_t rows,
                      int64_t kk) {
    return ld->plus(
        ld->kMajor(),
        cg.add(extra, cg.idx(region + (kk / 4) * rows * 128 +
                             (kk % 4) * 32)));
  };
  if (wg) {
    SmallVector<Value> dpInit;
    for (int64_t j = 0; j < ST; ++j)
      for (int64_t i = 0; i < 4; ++i) {
        Value q = cg.add(cg.add(qb, cg.idx(8 * j + i % 2)),
                         cg.mul(t, cg.idx(2)));
        Value dr =
            memref::LoadOp::create(b, drS, ValueRange{cg.add(rowOff, q)});
        dpInit.push_back(arith::NegFOp::create(b, dr));
      }
    Value keys = cg.mul(wgi, cg.idx(64 * 128));
    Value qRows = cg.add(cg.mul(buf, cg.idx(L.qBytes)),
                         cg.mul(qb, cg.idx(128)));
    Value dORows = cg.add(cg.mul(buf, cg.idx(L.dOBytes)),
                          cg.mul(qb, cg.idx(128)));
    SmallVector<Value> kA, qB, vA, dOB;
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      kA.push_back(kMajorAt(L.k, keys, BN, kk));
      qB.push_back(kMajorAt(L.q, qRows, kBM, kk));
    }
    for (int64_t kk = 0; kk < Dv / 16; ++kk) {
      vA.push_back(kMajorAt(L.v, keys, BN, kk));
      dOB.push_back(kMajorAt(L.dO, dORows, kBM, kk));
    }
    SmallVector<Value> both = wge->issue(
        {{QS, {}, kA, {}, qB, /*transB=*/false},
         {QS, dpInit, vA, {}, dOB, /*transB=*/false}});
    both = wge->wait(0, both);
    dpAccW.resize(ST);
    for (int64_t j = 0; j < ST; ++j)
      for (int64_t i = 0; i < 4; ++i) {
        sAcc[j][i] = both[j * 4 + i];
        dpAccW[j].push_back(both[QS / 2 + j * 4 + i]);
        if (s.softcap) { // dP^T is here already: fold 1 - tanh^2 into it
          Value d;
          sAcc[j][i] = score::softcap(k, sAcc[j][i], capMul, sch.fastTanh, &d);
          dpAccW[j][i] = cg.fmul(dpAccW[j][i], d);
        }
      }
  }
  for (int64_t kk = 0; kk < (wg ? 0 : D / 16); ++kk) {
    SmallVector<Value> a = resident ? kf[kk] : aFrag(ln, ks, kk);
    for (int64_t p = 0; p < ST / 2; ++p) {
      Value row = cg.add(cg.add(qb, cg.idx(16 * p)),
                         cg.add(l8, cg.mul(l16, cg.idx(8))));
      Value col = cg.add(cg.idx(16 * kk), cg.mul(l8b, cg.idx(8)));
      SmallVector<Value> bf = mma::ldmatrix(k, qs, row, col, false);
      sAcc[2 * p] = mma::mma(k, a, {bf[0], bf[1]}, sAcc[2 * p]);
      sAcc[2 * p + 1] = mma::mma(k, a, {bf[2], bf[3]}, sAcc[2 * p + 1]);
    }
  }

  // ---- P^T = exp2(S^T scale log2e - lse log2e), element [j * 4 + 2r + e]
  // at (key 16 kg + g + 8r, query qb + 8j + 2t + e).
  auto qCol = [&](int64_t j, int64_t e) {
    return cg.add(cg.add(qb, cg.idx(8 * j + e)), cg.mul(t, cg.idx(2)));
  };
  // Softcap: S^T -> tanh(S^T scale / c) (Primitives/Score.h); its 1 -
  // tanh^2 multiplies dS^T below (wgmma: done above, into dP^T).
  // ALiBi in the log2 domain (Primitives/Score.h): -slope log2(e) |key -
  // query - off| joins -lse log2(e); element (r, j, e) is at dist[r] - (8 j
  // + e).
  Value alibiW, alibiDist[2];
  if (s.alibi) {
    alibiW = score::alibiWeight(k, bi, st.cur.h, cg.f32(kLog2e));
    Value qBase = cg.add(cg.add(q0, qb), cg.mul(t, cg.idx(2)));
    for (int64_t r = 0; r < 2; ++r)
      alibiDist[r] = score::alibiDist(k, keyRow[r], qBase, off);
  }
  SmallVector<Value> pv, sech2;
  for (int64_t j = 0; j < ST; ++j)
    for (int64_t i = 0; i < 4; ++i) {
      Value lse = memref::LoadOp::create(
          b, lseS, ValueRange{cg.add(rowOff, qCol(j, i % 2))});
      Value negL = cg.fmul(lse, cg.f32(-kLog2e));
      if (s.alibi)
        negL = score::alibi(k, negL, alibiW, alibiDist[i / 2],
                            -(8 * j + i % 2));
      Value x = sAcc[j][i];
      if (s.softcap && !wg) {
        Value d;
        x = score::softcap(k, x, capMul, sch.fastTanh, &d);
        sech2.push_back(d);
      }
      pv.push_back(cg.exp2(LLVM::FMAOp::create(b, x, scale2, negL)));
    }
  SmallVector<Type> types(pv.size(), f32);
  auto maskIf = scf::IfOp::create(b, types, full, /*withElse=*/true);
  {
    OpBuilder::InsertionGuard gm(b);
    b.setInsertionPointToStart(maskIf.thenBlock());
    scf::YieldOp::create(b, pv);
    b.setInsertionPointToStart(maskIf.elseBlock());
    // In i32 relative to the block / tile: kRel = 16 kg + g + 8r, qRel =
    // qb + 8j + 2t + e; key valid iff kRel < Nk - k0, query iff qRel < Nq
    // - q0; visible iff dLo <= kRel - qRel <= dHi with kRel - qRel = key -
    // query - (k0 - q0) and key - query in [off - wl, off + wr].
    Type i32 = b.getI32Type();
    auto narrow = [&](Value x) { // clamped to i32
      x = cg.max(cg.min(x, cg.idx(INT32_MAX - 1)), cg.idx(INT32_MIN + 1));
      return arith::IndexCastOp::create(b, i32, x).getResult();
    };
    Value kLimit = narrow(cg.sub(nk, k0));
    Value qLimit = narrow(cg.sub(nq, q0));
    Value t2 = arith::IndexCastOp::create(b, i32,
                                          cg.add(qb, cg.mul(t, cg.idx(2))));
    Value dLo, dHi;
    if (s.masked) {
      Value rel = cg.sub(k0, q0);
      dLo = narrow(cg.select(cg.cmp(arith::CmpIPredicate::slt, wl, c0),
                             cg.idx(INT32_MIN + 1),
                             cg.sub(cg.sub(off, wl), rel)));
      dHi = narrow(cg.select(cg.cmp(arith::CmpIPredicate::slt, wr, c0),
                             cg.idx(INT32_MAX - 1),
                             cg.sub(cg.add(off, wr), rel)));
    }
    Value kRel[2], u[2];
    for (int64_t r = 0; r < 2; ++r) {
      kRel[r] = arith::IndexCastOp::create(b, i32, cg.sub(keyRow[r], k0));
      u[r] = cg.sub(kRel[r], t2); // kRel - qRel = u - (8j + e)
    }
    SmallVector<Value> masked;
    for (int64_t j = 0; j < ST; ++j)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t e = 0; e < 2; ++e) {
          int64_t qc = 8 * j + e;
          Value vis =
              cg.andI(cg.cmp(arith::CmpIPredicate::slt, kRel[r], kLimit),
                      cg.cmp(arith::CmpIPredicate::slt,
                             cg.add(t2, k.i32(qc)), qLimit));
          if (s.masked) {
            Value dd = cg.sub(u[r], k.i32(qc));
            vis = cg.andI(
                vis, cg.andI(cg.cmp(arith::CmpIPredicate::sge, dd, dLo),
                             cg.cmp(arith::CmpIPredicate::sle, dd, dHi)));
          }
          masked.push_back(
              cg.select(vis, pv[j * 4 + r * 2 + e], cg.f32(0.0)));
        }
    scf::YieldOp::create(b, masked);
  }
  pv.assign(maskIf.getResults().begin(), maskIf.getResults().end());

  // ---- dP^T - dr = V dO^T - dr (B from dO exactly as from Q above): the
  // accumulators start at -dr[query].
  SmallVector<SmallVector<Value>> dpAcc(ST);
  if (wg)
    dpAcc = dpAccW;
  for (int64_t j = 0; j < (wg ? 0 : ST); ++j)
    for (int64_t i = 0; i < 4; ++i) {
      Value dr = memref::LoadOp::create(
          b, drS, ValueRange{cg.add(rowOff, qCol(j, i % 2))});
      dpAcc[j].push_back(arith::NegFOp::create(b, dr));
    }
  for (int64_t kk = 0; kk < (wg ? 0 : Dv / 16); ++kk) {
    SmallVector<Value> a = resident ? vf[kk] : aFrag(ln, vs, kk);
    for (int64_t p = 0; p < ST / 2; ++p) {
      Value row = cg.add(cg.add(qb, cg.idx(16 * p)),
                         cg.add(l8, cg.mul(l16, cg.idx(8))));
      Value col = cg.add(cg.idx(16 * kk), cg.mul(l8b, cg.idx(8)));
      SmallVector<Value> bf = mma::ldmatrix(k, dos, row, col, false);
      dpAcc[2 * p] = mma::mma(k, a, {bf[0], bf[1]}, dpAcc[2 * p]);
      dpAcc[2 * p + 1] = mma::mma(k, a, {bf[2], bf[3]}, dpAcc[2 * p + 1]);
    }
  }

  // ---- dS^T = P^T (dP^T - dr); A operands of P^T and dS^T per query k16
  // step kk: {tile 2kk r0, tile 2kk r1, tile 2kk+1 r0, tile 2kk+1 r1} = a0
  // (key g, queries 16kk + 2t, +1), a1 (key g + 8), a2 (queries + 8), a3.
  SmallVector<Value> dsv(pv.size());
  for (int64_t j = 0; j < ST; ++j)
    for (int64_t i = 0; i < 4; ++i)
      dsv[j * 4 + i] = s.softcap && !wg
                           ? cg.fmul(cg.fmul(pv[j * 4 + i], dpAcc[j][i]),
                                           sech2[j * 4 + i])
                                 : cg.fmul(pv[j * 4 + i], dpAcc[j][i]);
  auto aOf = [&](ArrayRef<Value> x, int64_t kk) {
    const Value *x0 = &x[(2 * kk) * 4], *x1 = &x[(2 * kk + 1) * 4];
    return SmallVector<Value>{mma::pack(k, x0[0], x0[1]), mma::pack(k, x0[2], x0[3]),
                              mma::pack(k, x1[0], x1[1]), mma::pack(k, x1[2], x1[3])};
  };
  SmallVector<SmallVector<Value>> pA, dsA;
  for (int64_t kk = 0; kk < QS / 16; ++kk) {
    pA.push_back(aOf(pv, kk));
    dsA.push_back(aOf(dsv, kk));
  }

  // ---- dS^T (column split: and P^T) -> shared memory (dQ reads dS^T
  // after the pass loop's barrier; deterministic: dQ is attn_bwd_dq's, no
  // dS^T kept unless the warp pair needs it): the lane's pair (key 16 kg
  // + g + 8r, queries qb + 8j + 2t, +1) is xA[j / 2][2 (j % 2) + r];
  // 4-byte stores, rows 36 words apart: banks 4g + t, conflict-free.
  auto storeT = [&](Value mem, ArrayRef<SmallVector<Value>> xA) {
    for (int64_t j = 0; j < ST; ++j)
      for (int64_t r = 0; r < 2; ++r) {
        Value row =
            cg.add(cg.mul(ln.kg, cg.idx(16)), cg.add(g, cg.idx(8 * r)));
        Value col = cg.add(cg.add(qb, cg.idx(8 * j)), cg.mul(t, cg.idx(2)));
        if (wg) // [BN][64]: 128-byte rows, swizzled (tile::swizzleCol)
          col = tile::swizzleCol(k, mem, row, col);
        auto stv = vector::StoreOp::create(b, xA[j / 2][2 * (j % 2) + r],
                                           mem, ValueRange{row, col});
        stv.setAlignment(4);
      }
  };
  if (CS > 1) {
    // ---- Column split: dV / dK of the warp's column half need P^T /
    // dS^T of all 64 queries; the pair's halves meet in shared memory
    // (also when deterministic). dV += P^T dO, dK += dS^T Q with A by
    // ldmatrix of P^T / dS^T (as aFrag of K), B by ldmatrix.trans of
    // dO / Q rows 16kk.., columns cs * width + 16pn..; k16 steps outer
    // (one A fragment live next to the 64 + 64 accumulators).
    storeT(dss, dsA);
    storeT(pss, pA);
    pA.clear();
    dsA.clear();
    gpu::BarrierOp::create(b);
    auto accumulateSplit = [&](SmallVector<Value> &acc, int64_t width,
                               Value mem, Value aMem) {
      Value colBase = cg.mul(ln.cs, cg.idx(width));
      for (int64_t kk = 0; kk < kBM / 16; ++kk) {
        SmallVector<Value> a = aFrag(ln, aMem, kk);
        for (int64_t pn = 0; pn < width / 16; ++pn) {
          Value row =
              cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l8b, cg.idx(8))));
          Value col = cg.add(cg.add(colBase, cg.idx(16 * pn)),
                             cg.mul(l16, cg.idx(8)));
          SmallVector<Value> bf = mma::ldmatrix(k, mem, row, col, true);
          for (int64_t half = 0; half < 2; ++half) {
            int64_t n = 2 * pn + half;
            SmallVector<Value> c(acc.begin() + n * 4,
                                 acc.begin() + n * 4 + 4);
            c = mma::mma(k, a, {bf[2 * half], bf[2 * half + 1]}, c);
            std::copy(c.begin(), c.end(), acc.begin() + n * 4);
          }
        }
      }
    };
    accumulateSplit(dv, VW, dos, pss);
    accumulateSplit(dk, KW, qs, dss);
    return;
  }
  if (!s.deterministic)
    storeT(dss, dsA);

  // ---- dV += P^T dO and dK += dS^T Q over the pass's queries, all
  // columns: B[k = query][n = col] stored [k][n] -> ldmatrix.trans;
  // matrices (queries qb + 16kk + 0-7, cols 16pn + 0-7) b0 of tile 2pn,
  // (+8, +0) b1, (+0, +8) b0 and (+8, +8) b1 of tile 2pn + 1.
  auto accumulate = [&](SmallVector<Value> &acc, int64_t width, Value mem,
                        ArrayRef<SmallVector<Value>> a) {
    for (int64_t pn = 0; pn < width / 16; ++pn) {
      SmallVector<SmallVector<Value>> c(2);
      for (int64_t half = 0; half < 2; ++half) {
        int64_t n = 2 * pn + half;
        c[half].assign(acc.begin() + n * 4, acc.begin() + n * 4 + 4);
      }
      for (int64_t kk = 0; kk < QS / 16; ++kk) {
        Value row = cg.add(cg.add(qb, cg.idx(16 * kk)),
                           cg.add(l8, cg.mul(l8b, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * pn), cg.mul(l16, cg.idx(8)));
        SmallVector<Value> bf = mma::ldmatrix(k, mem, row, col, true);
        for (int64_t half = 0; half < 2; ++half)
          c[half] = mma::mma(k, a[kk], {bf[2 * half], bf[2 * half + 1]}, c[half]);
      }
      for (int64_t half = 0; half < 2; ++half) {
        int64_t n = 2 * pn + half;
        std::copy(c[half].begin(), c[half].end(), acc.begin() + n * 4);
      }
    }
  };
  if (wg) {
    // dV += P^T dO and dK += dS^T Q: A from registers (P^T / dS^T of
    // the pass, k16 steps over its queries), B = dO / Q rows of the
    // pass, N-major (64-column blocks kBM * 128 bytes apart); two commit
    // groups, one wait.
    auto asI32 = [&](Value pair) {
      Value v = vector::BitCastOp::create(
          b, VectorType::get({1}, b.getI32Type()), pair);
      return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0})
          .getResult();
    };
    SmallVector<Value> pRegs, dsRegs, dOB, qB;
    for (int64_t kk = 0; kk < QS / 16; ++kk) {
      for (int64_t e = 0; e < 4; ++e) {
        pRegs.push_back(asI32(pA[kk][e]));
        dsRegs.push_back(asI32(dsA[kk][e]));
      }
      Value rows = cg.mul(cg.add(qb, cg.idx(16 * kk)), cg.idx(128));
      dOB.push_back(ld->plus(
          ld->mnMajor(kBM * 128),
          cg.add(cg.add(cg.idx(L.dO), cg.mul(buf, cg.idx(L.dOBytes))),
                 rows)));
      qB.push_back(ld->plus(
          ld->mnMajor(kBM * 128),
          cg.add(cg.add(cg.idx(L.q), cg.mul(buf, cg.idx(L.qBytes))),
                 rows)));
    }
    SmallVector<Value> acc =
        wge->issue({{Dv, dv, {}, pRegs, dOB, /*transB=*/true},
                    {D, dk, {}, dsRegs, qB, /*transB=*/true}});
    acc = wge->wait(0, acc);
    std::copy(acc.begin(), acc.begin() + Dv / 2, dv.begin());
    std::copy(acc.begin() + Dv / 2, acc.end(), dk.begin());
    return;
  }
  accumulate(dv, Dv, dos, pA);
  accumulate(dk, D, qs, dsA);
}
