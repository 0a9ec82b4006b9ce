//===- MmaBackwardDq.cpp - the backward's dQ stage --------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The dQ stage of the tensor-core backward main kernel (MmaBackward.cpp):
// dQ = dS K over the block's keys for the tile's queries, added (unscaled)
// to dqacc_ws with f32 atomics in mma fragment order.
//
//===----------------------------------------------------------------------===//

#include "MmaBackward.h"

#include "../Primitives/MmaSync.h"
#include "../Primitives/SharedTile.h"
#include "../Primitives/TileCopy.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;
using namespace mlir::attn::kernels::bwd;

void Kernel::dqStage(Step &st) {
  const Lanes &ln = st.ln;
  std::optional<wgmma::Descriptors> &ld = st.ld;
  Value g = ln.g, l8 = ln.l8, l8b = ln.l8b, l16 = ln.l16;
  Value q0 = st.cur.q0;
  Iter &cur = st.cur;
  if (CS == 1) { // column split: dS^T is complete since the pair exchange
    fenceAsync();
    gpu::BarrierOp::create(b);
  }

  // ---- dQ (rows 16 qw.. of the tile, columns qc * QW..) = dS K over the
  // block's keys. A[m = query][k = key] = dS^T[key][query] ->
  // ldmatrix.trans with matrices (keys 16kk + 0-7, queries 16 qw + 0-7)
  // a0, (keys +0, queries +8) a1, (keys +8, queries +0) a2, (+8, +8) a3.
  // B[k = key][n = d] = K[key][d] stored [k][n] -> .trans as for dV.
  SmallVector<SmallVector<Value>> dsQ;
  for (int64_t kk = 0; kk < (wg ? 0 : NK); ++kk) {
    Value row = cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l16, cg.idx(8))));
    Value col = cg.add(cg.mul(ln.qw, cg.idx(16)), cg.mul(l8b, cg.idx(8)));
    dsQ.push_back(mma::ldmatrix(k, dss, row, col, true));
  }
  // dqacc in fragment order (fragmentOrderDqAcc): the warp's 16-row group
  // starts at (rowBase16 + q0 + 16 qw) D; n8 tile n at + 128 n; element
  // (r, e) of lane at + 32 (2r + e) + lane.
  Value qRow[2], qOk[2];
  Value dqCol = cg.mul(ln.qc, cg.idx(QW));
  for (int64_t r = 0; r < 2; ++r) {
    qRow[r] = cg.add(cg.add(q0, cg.mul(ln.qw, cg.idx(16))),
                     cg.add(g, cg.idx(8 * r)));
    qOk[r] = cg.cmp(arith::CmpIPredicate::slt, qRow[r], nq);
  }
  // (The workspace rows have the real head dim; n8 tiles of padding
  // columns, >= realD, are not added.)
  Value dqBase = cg.add(
      cg.mul(cg.add(cur.rowBase16, cg.add(q0, cg.mul(ln.qw, cg.idx(16)))),
             cg.idx(realD)),
      cg.add(cg.mul(ln.qc, cg.idx(QW / 8 * 128)), ln.lane));
  // Runs `body` for the n8 tile starting at column `col` (colConst: its
  // value when static) unless it is padding (>= realD): statically, or
  // under a warp-uniform branch.
  auto unlessPadding = [&](function_ref<Value()> col,
                           std::optional<int64_t> colConst, int64_t colMax,
                           function_ref<void()> body) {
    if (colConst ? *colConst >= realD : false)
      return;
    if (colConst || colMax + 8 <= realD) {
      body();
      return;
    }
    auto in = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, col(), cg.idx(realD)), false);
    OpBuilder::InsertionGuard gi(b);
    b.setInsertionPoint(in.thenBlock()->getTerminator());
    body();
  };
  if (wg) {
    // wgmma: warpgroup qc computes dQ[64 queries][QWg columns from qc QWg]
    // = dS K over the block's keys in one group of m64nQWgk16: A = dS read
    // M-major from dS^T [BN][64] (transposed by the descriptor), B = K rows
    // 16 kk.., the warpgroup's columns, N-major. Its fragment (warp qw = w %
    // 4: rows 16 qw + g + 8 r, n8 tile n) is the mma.sync one. A descriptor's
    // N range may start inside a 64-column block of the swizzled K tile only
    // if it ends there: where dk / 2 would cross one (dk = 96, 160), QWg is
    // rounded up to 64 columns and the K tile is zero-padded to 2 QWg
    // (wgmmaDqCols); the extra columns are computed and never added.
    const int64_t QWg = wgmmaDqCols();
    Value col0 = cg.mul(ln.qc, cg.idx(QWg));
    Value base = QWg == QW ? dqBase
                           : cg.add(cg.sub(dqBase, cg.mul(ln.qc,
                                                          cg.idx(QW / 8 * 128))),
                                    cg.mul(ln.qc, cg.idx(QWg / 8 * 128)));
    Value colOff = cg.add(cg.mul(k.div(col0, 64), cg.idx(BN * 128)),
                          cg.mul(k.rem(col0, 64), cg.idx(2)));
    SmallVector<Value> dsA2, kB;
    for (int64_t kk = 0; kk < NK; ++kk) {
      dsA2.push_back(
          ld->plus(ld->mnMajor(BN * 128), cg.idx(L.dS + kk * 16 * 128)));
      kB.push_back(ld->plus(ld->mnMajor(BN * 128),
                            cg.add(colOff, cg.idx(L.k + kk * 16 * 128))));
    }
    wgmma::WgmmaEmitter::Group gr{QWg, {}, dsA2, {}, kB, /*transB=*/true};
    gr.transA = true;
    SmallVector<Value> acc = wge->issue({gr});
    acc = wge->wait(0, acc);
    for (int64_t r = 0; r < 2; ++r) {
      auto ok = scf::IfOp::create(b, qOk[r], false);
      OpBuilder::InsertionGuard ga(b);
      b.setInsertionPoint(ok.thenBlock()->getTerminator());
      for (int64_t n = 0; n < QWg / 8; ++n)
        unlessPadding(
            [&] { return cg.add(col0, cg.idx(8 * n)); }, std::nullopt,
            QWg + 8 * n, [&] {
              for (int64_t e = 0; e < 2; ++e)
                memref::AtomicRMWOp::create(
                    b, arith::AtomicRMWKind::addf, acc[n * 4 + 2 * r + e],
                    k.arg("dqacc_ws"),
                    ValueRange{
                        cg.add(base, cg.idx(128 * n + 32 * (2 * r + e)))});
            });
    }
  }
  for (int64_t pn = 0; pn < (wg ? 0 : QW / 16); ++pn) {
    SmallVector<SmallVector<Value>> acc(2,
                                        SmallVector<Value>(4, cg.f32(0.0)));
    for (int64_t kk = 0; kk < NK; ++kk) {
      Value row =
          cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l8b, cg.idx(8))));
      Value col =
          cg.add(cg.add(dqCol, cg.idx(16 * pn)), cg.mul(l16, cg.idx(8)));
      SmallVector<Value> bf = mma::ldmatrix(k, ks, row, col, true);
      for (int64_t half = 0; half < 2; ++half)
        acc[half] =
            mma::mma(k, dsQ[kk], {bf[2 * half], bf[2 * half + 1]}, acc[half]);
    }
    for (int64_t r = 0; r < 2; ++r) {
      auto ok = scf::IfOp::create(b, qOk[r], false);
      OpBuilder::InsertionGuard ga(b);
      b.setInsertionPoint(ok.thenBlock()->getTerminator());
      for (int64_t half = 0; half < 2; ++half) {
        auto atomics = [&] {
          for (int64_t e = 0; e < 2; ++e) {
            int64_t at = 128 * (2 * pn + half) + 32 * (2 * r + e);
            memref::AtomicRMWOp::create(
                b, arith::AtomicRMWKind::addf, acc[half][2 * r + e],
                k.arg("dqacc_ws"), ValueRange{cg.add(dqBase, cg.idx(at))});
          }
        };
        if (D == realD)
          atomics();
        else
          unlessPadding([&] { return cg.add(dqCol, cg.idx(16 * pn + 8 * half)); },
                        std::nullopt, QW + 16 * pn + 8 * half, atomics);
      }
    }
  }

}
