//===- MmaForward.cpp - tensor-core (mma.sync) forward kernel ---*- C++ -*-===//
//
// Part of FlashMLIR.
//
// FlashAttention-2 style forward with mma.sync m16n8k16 (f32 accumulate) for
// sm_80+. A block of W warps owns W x 16 x warpTiles query rows; keys come
// in tiles of blockN (the schedule, KernelSelect.cpp).
//
//  * Q is staged once through shared memory (16-byte loads) and kept in
//    registers as m16k16 A fragments (nvgpu.ldmatrix).
//  * K and V tiles are staged row-major in shared memory, rows XOR-swizzled
//    in 16-byte chunks (tile::swizzleCol; padded by 16 bytes where the
//    schedule says so), both conflict-free for ldmatrix; K feeds
//    the B operand of S = Q K^T via ldmatrix, V feeds the B operand of
//    O += P V via ldmatrix.trans.
//  * Staging (asyncCopy, the default): cp.async 16-byte copies, one commit
//    group per tile, one K and one V buffer as in FlashAttention-2: V_j loads
//    under S_j = Q K_j^T, K_{j+1} under the softmax and P V_j; two barriers
//    per key tile. Otherwise synchronous 16-byte loads of both tiles between
//    two barriers.
//  * Online softmax on the accumulator fragments: a lane holds two rows
//    (g = lane/4 and g + 8) and two columns of each n8 tile; row max over the
//    quad by shuffles xor 1 and 2, taken on the raw accumulators; P =
//    exp2(S * |scale| log2(e) - m) is one FMA and ex2.approx (a negative
//    scale flips Q's sign bits instead); the row sum stays per lane until
//    the end.
//  * P goes from the f32 S accumulators of two adjacent n8 tiles straight to
//    the m16k16 A operand of P V (same register layout), never through shared
//    memory.
//  * Masks: only key blocks some row of the block can see are visited; the
//    element mask (window / causal, bottom-right aligned, and keys >= Nk) is
//    applied only to blocks not entirely visible.
//  * f16 uses nvgpu.mma.sync; bf16 uses nvvm.mma.sync with bf16 operand types
//    (nvgpu.mma.sync cannot lower bf16 on MLIR 22).
//  * Any head dims D, Dv (multiples of 8 up to 256): the MMAs run on
//    dk / dvk = D / Dv rounded up to 16, the padding columns of the Q / K / V
//    tiles are zero (copied with source size 0) and O's are never stored.
//  * Softcap: S' -> tanh(S' |scale| / c) before the mask, scores in log2
//    units x * c log2(e) (Primitives/Score.h).
//  * Split-KV (buildMmaForwardSplit, decode): the block is (key range s,
//    KV head, sequence); its rows are the GQA group's query heads x query
//    rows (KernelBuilder::packGqaRows: row r is query r / group of head
//    hk group + r % group), so every K / V tile loaded serves the whole
//    group; the visible key tiles are cut into num_splits equal ranges and
//    the block takes range s; rows leave as f32 partials (O / l, lse) for
//    the combine kernel (epilogue::partialRow). K / V rows may come from a
//    KV cache: per-sequence lengths, and a block table when paged
//    (KernelBuilder::beginCache; abi::kKvPaged).
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include "../Primitives/Epilogue.h"
#include "../Primitives/Mask.h"
#include "../Primitives/MmaSync.h"
#include "../Primitives/OnlineSoftmax.h"
#include "../Primitives/Rotary.h"
#include "../Primitives/Score.h"
#include "../Primitives/SharedTile.h"
#include "../Primitives/TileCopy.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <optional>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr int64_t kPad = 8; // elements of padding per smem row

// Q / K / V tiles: rows of dk (dvk) elements, XOR-swizzled
// (tile::swizzleCol), or padded rows where the schedule says so; the O tile
// of the epilogue (4-byte stores): padded rows.
namespace {
struct FwdLayout {
  int64_t rowQ, rowD, rowDv, rowO; ///< elements per smem row
  int64_t k, v;                    ///< byte offsets (Q at 0)
  int64_t total;
};
} // namespace

static FwdLayout layoutOf(const GpuKernelSpec &s, const KernelSchedule &sch) {
  FwdLayout l;
  const int64_t pad = sch.swizzle ? 0 : kPad;
  l.rowQ = sch.dk + pad;
  l.rowD = sch.dk + pad;
  l.rowDv = sch.dvk + pad;
  l.rowO = sch.dvk + kPad;
  // Q shares the bytes of the K tile when it lives in registers (it is read
  // only before the key loop); otherwise it has its own region. With
  // cp.async, Q has its own region too: it is loaded together with the
  // first K tile.
  const int64_t qBytes = tile::align16(sch.blockM * l.rowQ * 2);
  const bool qOwnRegion = !sch.qInRegisters || sch.asyncCopy;
  const int64_t kBytes = tile::align16(sch.blockN * l.rowD * 2);
  l.k = qOwnRegion ? qBytes : 0;
  l.v = qOwnRegion ? l.k + kBytes : std::max(qBytes, kBytes);
  // The epilogue reuses the bytes from 0 for the O tile.
  const int64_t oBytes = sch.blockM * l.rowO * 2;
  l.total =
      tile::align16(std::max(l.v + sch.blockN * l.rowDv * 2, oBytes));
  return l;
}

int64_t kernels::mmaForwardSmem(const GpuKernelSpec &s,
                                const KernelSchedule &sch) {
  return layoutOf(s, sch).total;
}

static void buildForward(KernelBuilder &k, const KernelSchedule &sch,
                         bool split) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const FwdLayout lay = layoutOf(s, sch);
  // The padded head dims the MMAs use (columns >= the real ones are zero
  // in the Q / K / V tiles and never written out).
  const int64_t D = sch.dk, Dv = sch.dvk;
  const int64_t realD = s.headDim, realDv = s.headDimV;
  const int64_t kBlockN = sch.blockN;
  const int64_t NT = kBlockN / 8;  // n8 tiles of S
  const int64_t OT = Dv / 8;       // n8 tiles of O
  const int64_t MT = sch.warpTiles; // m16 tiles per warp
  const int64_t kBlockM = sch.blockM;
  const bool qRegs = sch.qInRegisters;
  Type f32 = b.getF32Type();

  // Masked kernels take the query blocks last to first: under a causal mask
  // the last blocks see the most keys, and starting them first shortens the
  // tail of the launch.
  Value qb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value splitIdx;
  if (split) { // grid x: the key ranges; one block of packed rows
    splitIdx = qb;
    qb = cg.idx(0);
  } else if (s.masked) {
    qb = cg.sub(cg.sub(gpu::GridDimOp::create(b, gpu::Dimension::x), qb),
                cg.idx(1));
  }
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  k.beginSequence(bi); // varlen: the sequence's rows and lengths
  if (split)
    k.beginCache(bi); // KV cache: the sequence's keys, block table
  // Lane-derived values. (Re-deriving them inside the key loop from an opaque
  // copy of the thread id, as the backward kernel does, removes the small
  // ptxas spills at D = 128 but measured 4-6% slower on the H100.)
  const LaneIds li =
      k.laneIds(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value tid = li.tid, warp = li.warp, lane = li.lane, g = li.g, t = li.t,
        l8 = li.l8, l8b = li.l8b, l16 = li.l16;
  // First query row (within the block) of the warp's m16 tiles.
  Value warpRow0 = cg.mul(warp, cg.idx(16 * MT));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  // Split: h is the KV head, rows are packed (query, head of the group);
  // `rows` bounds the packed rows, qPos maps one to its query position.
  Value rows = nq;
  auto qPos = [&](Value row) {
    return split ? Value(arith::DivUIOp::create(b, row, group)) : row;
  };
  if (split) {
    hk = h;
    k.packGqaRows(group);
    rows = cg.mul(nq, group);
  }
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value q0 = cg.mul(qb, cg.idx(kBlockM));
  if (s.varlen) // query blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, q0, nq));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kBlockM)), rows), c1);
  Value wl = s.masked ? k.arg("window_left") : Value();
  Value wr = s.masked ? k.arg("window_right") : Value();
  auto tileRow = [&](int64_t mt) {
    return cg.add(warpRow0, cg.idx(16 * mt));
  };

  Value qs = k.smem(0, {kBlockM, lay.rowQ});
  Value ks = k.smem(lay.k, {kBlockN, lay.rowD});
  Value vs = k.smem(lay.v, {kBlockN, lay.rowDv});

  // Q tile -> shared memory; A fragment (mt, kk) covers rows tileRow(mt) +
  // lane % 16, columns 16kk + 8 (lane / 16).
  // Visible key blocks of the whole query block.
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) =
        cg.visibleKeys(qPos(q0), qPos(qLast), off, nk, wl, wr);
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));
  if (split) { // range s of num_splits equal ranges of the visible tiles
    Value per = cg.ceilDiv(cg.sub(kbHi, kbLo), k.arg("num_splits"));
    Value lo = cg.min(cg.add(kbLo, cg.mul(splitIdx, per)), kbHi);
    kbHi = cg.min(cg.add(lo, per), kbHi);
    kbLo = lo;
  }
  Value kbLast = cg.sub(kbHi, c1);

  const bool async = sch.asyncCopy;
  if (async) {
    // Q and the first visible K tile in flight together (two groups); wait
    // for Q only. Without visible keys Q is never read (and the wait after
    // the loop drains it).
    copy::stageTileAsync(k, "q", bi, split ? hk : h, q0, rows, kBlockM, D,
                         qs, tid, /*rowStep=*/false, realD);
    auto hasKeys = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, kbLo, kbHi), false);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(hasKeys.thenBlock()->getTerminator());
      copy::stageTileAsync(k, "k", bi, hk, cg.mul(kbLo, bn), nk, kBlockN, D,
                           ks, tid, /*rowStep=*/false, realD);
      copy::waitAll(k, 1);
    }
  } else {
    copy::stageTile(k, "q", bi, split ? hk : h, q0, rows, kBlockM, D, qs, tid,
                    realD);
  }
  gpu::BarrierOp::create(b);
  // RoPE (Primitives/Rotary.h): Q rotated in shared memory once it has
  // landed, query i at position i + Nk - Nq (split: packed row r is query r
  // / group); rows past the last are clamped.
  if (s.rotary) {
    Value last = cg.sub(rows, c1);
    rotary::rotateTile(
        k, qs, kBlockM, D,
        [&](Value r) {
          return cg.max(cg.add(qPos(cg.min(cg.add(q0, r), last)), off), c0);
        },
        tid, sch.threads);
    gpu::BarrierOp::create(b);
  }
  // With scale < 0 the kernel computes S' = (-Q) K^T (exact: a sign-bit
  // flip) with the positive scale |scale|, so the running maximum can be taken
  // on the raw accumulators and exp2(S' * scale2 - m) is one FMA.
  Value scale = k.arg("scale");
  Value negScale = cg.fcmp(arith::CmpFPredicate::OLT, scale, cg.f32(0.0));
  auto vi32 = VectorType::get({1}, b.getI32Type());
  Value signBits = vector::BroadcastOp::create(
      b, vi32,
      cg.select(negScale, k.i32(int32_t(0x80008000u)), k.i32(0)));
  // Q read from shared memory at every k-step: flip its sign bits there
  // once (a uniform branch: scale < 0 only) instead of in every fragment.
  if (!qRegs) {
    auto neg = scf::IfOp::create(b, negScale, false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(neg.thenBlock()->getTerminator());
    const int64_t perRow = D / 8, threads = sch.threads;
    auto v8 = VectorType::get({8}, s.elementType);
    auto v4i = VectorType::get({4}, b.getI32Type());
    Value bits4 = vector::BroadcastOp::create(
        b, v4i, k.i32(int32_t(0x80008000u)));
    assert((kBlockM * perRow) % threads == 0 && "partial Q flip");
    for (int64_t i = 0; i < kBlockM * perRow; i += threads) {
      Value c = cg.add(tid, cg.idx(i));
      Value row = k.div(c, perRow);
      Value col = cg.mul(k.rem(c, perRow), cg.idx(8));
      col = tile::swizzleCol(k, qs, row, col);
      Value x = vector::LoadOp::create(b, v8, qs, ValueRange{row, col});
      Value y = arith::XOrIOp::create(
          b, vector::BitCastOp::create(b, v4i, x), bits4);
      vector::StoreOp::create(b, vector::BitCastOp::create(b, v8, y), qs,
                              ValueRange{row, col});
    }
    gpu::BarrierOp::create(b);
  }
  auto qFragment = [&](int64_t mt, int64_t kk) {
    SmallVector<Value> f =
        mma::ldmatrix(k, qs, cg.add(tileRow(mt), k.rem(lane, 16)),
                   cg.add(cg.idx(kk * 16), cg.mul(l16, cg.idx(8))), false);
    if (!qRegs) // flipped in shared memory above
      return f;
    for (Value &pair : f) {
      Value bits = vector::BitCastOp::create(b, vi32, pair);
      bits = arith::XOrIOp::create(b, bits, signBits);
      pair = vector::BitCastOp::create(b, pair.getType(), bits);
    }
    return f;
  };
  SmallVector<SmallVector<SmallVector<Value>>> qf(MT);
  if (qRegs)
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t kk = 0; kk < D / 16; ++kk)
        qf[mt].push_back(qFragment(mt, kk));

  // The two rows of this lane in each m16 tile: qRow[mt][r].
  SmallVector<std::array<Value, 2>> qRow(MT);
  for (int64_t mt = 0; mt < MT; ++mt)
    for (int64_t r = 0; r < 2; ++r)
      qRow[mt][r] = cg.add(cg.add(q0, tileRow(mt)), cg.add(g, cg.idx(8 * r)));
  // |scale| log2(e), kept away from 0 so that -inf * scale2 stays -inf;
  // with softcap c: c log2(e), the scores being tanh(S' |scale| / c)
  // (Primitives/Score.h).
  Value scale2, capMul;
  if (s.softcap) {
    Value c = k.arg("softcap");
    capMul = cg.fdiv(cg.select(negScale, arith::NegFOp::create(b, scale), scale),
                     c);
    scale2 = cg.fmul(c, cg.f32(kLog2e));
  } else {
    scale2 = cg.fmax(
        cg.fmul(cg.select(negScale, arith::NegFOp::create(b, scale), scale),
                cg.f32(kLog2e)),
        cg.f32(1e-30));
  }

  // ALiBi: the weight of a slope on x' (log2(e) / scale2; Score.h) and the
  // head's slope (split: each packed row has its own query head, whose slope
  // the key loop loads per tile; four weights live across the loop spilled
  // at masked D = 128).
  Value alibiToX, alibiW;
  if (s.alibi) {
    alibiToX = cg.fdiv(cg.f32(kLog2e), scale2);
    if (!split)
      alibiW = score::alibiWeight(k, bi, h, alibiToX);
  }

  // Loop state: per m16 tile m[2], l[2] (per-lane partial sums), then per
  // m16 tile O[OT][4].
  SmallVector<Value> init;
  for (int64_t mt = 0; mt < MT; ++mt)
    init.append({cg.negInf(), cg.negInf(), cg.f32(0.0), cg.f32(0.0)});
  for (int64_t i = 0; i < MT * OT * 4; ++i)
    init.push_back(cg.f32(0.0));
  auto loop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = cg.mul(loop.getInductionVar(), bn);
    ValueRange st = loop.getRegionIterArgs();
    SmallVector<Value> o(st.begin() + 4 * MT, st.end());
    auto oAt = [&](int64_t mt, int64_t n, int64_t e) -> Value & {
      return o[(mt * OT + n) * 4 + e];
    };

    if (async) {
      // Pending: K_j. Wait for it; after the barrier every warp is also done
      // with P V_{j-1}, so V_j can be issued (it lands under S = Q K_j).
      copy::waitAll(k, 0);
      gpu::BarrierOp::create(b);
      copy::stageTileAsync(k, "v", bi, hk, k0, nk, kBlockN, Dv, vs, tid,
                           /*rowStep=*/false, realDv);
    } else {
      gpu::BarrierOp::create(b); // Q / previous tiles no longer read
      copy::stageTile(k, "k", bi, hk, k0, nk, kBlockN, D, ks, tid, realD);
      copy::stageTile(k, "v", bi, hk, k0, nk, kBlockN, Dv, vs, tid, realDv);
      gpu::BarrierOp::create(b);
    }
    if (s.rotary) { // K_j rotated in place (key n at position n)
      Value last = cg.sub(nk, c1);
      rotary::rotateTile(
          k, ks, kBlockN, D,
          [&](Value r) { return cg.min(cg.add(k0, r), last); }, tid,
          sch.threads);
      gpu::BarrierOp::create(b);
    }

    // S = Q K^T: n8 tiles j, element (row r, col e) at sAcc[mt][j][2r + e].
    // Each K fragment (ldmatrix) feeds the MT m16 tiles.
    SmallVector<SmallVector<SmallVector<Value>>> sAcc(
        MT, SmallVector<SmallVector<Value>>(
                NT, SmallVector<Value>(4, cg.f32(0.0))));
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      SmallVector<SmallVector<Value>> qa(MT);
      for (int64_t mt = 0; mt < MT; ++mt)
        qa[mt] = qRegs ? qf[mt][kk] : qFragment(mt, kk);
      for (int64_t p = 0; p < NT / 2; ++p) {
        Value row = cg.add(cg.idx(16 * p), cg.add(l8, cg.mul(l16, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * kk), cg.mul(l8b, cg.idx(8)));
        SmallVector<Value> bf = mma::ldmatrix(k, ks, row, col, false);
        for (int64_t mt = 0; mt < MT; ++mt) {
          sAcc[mt][2 * p] = mma::mma(k, qa[mt], {bf[0], bf[1]}, sAcc[mt][2 * p]);
          sAcc[mt][2 * p + 1] =
              mma::mma(k, qa[mt], {bf[2], bf[3]}, sAcc[mt][2 * p + 1]);
        }
      }
    }
    if (async) {
      // Wait for V_j; after the barrier it is visible and every warp is done
      // with K_j: prefetch K_{j+1} (the last iteration reloads its own block,
      // harmlessly) under the softmax and P V_j.
      copy::waitAll(k, 0);
      gpu::BarrierOp::create(b);
      Value next = cg.mul(cg.min(cg.add(loop.getInductionVar(), c1), kbLast), bn);
      copy::stageTileAsync(k, "k", bi, hk, next, nk, kBlockN, D, ks, tid,
                           /*rowStep=*/false, realD);
    }
    // sv[mt][j * 4 + 2r + e]: raw scores (scores in log2 units are
    // sv * scale2, scale2 > 0), softcapped: tanh(S' |scale| / c).
    SmallVector<SmallVector<Value>> sv(MT);
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t e = 0; e < 4; ++e)
          sv[mt].push_back(
              s.softcap ? score::softcap(k, sAcc[mt][j][e], capMul, sch.fastTanh)
                        : sAcc[mt][j][e]);

    if (s.alibi) { // element (row r, key colBase + 8 j + e)
      // Dense: the rows' lane offsets from an opaque copy of the thread id
      // (hoisted out of the key loop they stay live next to O: the sm_80
      // kernel at masked D = 64 spilled 64 bytes). Split: the hoisted rows,
      // with the slopes loaded per tile instead.
      std::optional<LaneIds> lo;
      if (!split)
        lo = k.laneIds(opaqueIndex(b, tid));
      Value colBase = cg.add(k0, cg.mul(split ? t : lo->t, cg.idx(2)));
      for (int64_t mt = 0; mt < MT; ++mt)
        for (int64_t r = 0; r < 2; ++r) {
          Value row = split ? qRow[mt][r]
                            : cg.add(cg.add(q0, cg.mul(lo->warp, cg.idx(16 * MT))),
                                     cg.add(lo->g, cg.idx(16 * mt + 8 * r)));
          Value dist = score::alibiDist(k, colBase, qPos(row), off);
          Value w = alibiW;
          if (split)
            w = score::alibiWeight(
                k, bi,
                cg.add(cg.mul(hk, group), arith::RemUIOp::create(b, row, group)),
                alibiToX);
          for (int64_t j = 0; j < NT; ++j)
            for (int64_t e = 0; e < 2; ++e) {
              Value &x = sv[mt][j * 4 + r * 2 + e];
              x = score::alibi(k, x, w, dist, 8 * j + e);
            }
        }
    }

    // Element mask on blocks not entirely visible to every row of the block.
    // (Split: the packed rows' queries lie in [q0 / group, q0 + kBlockM),
    // a superset, which can only make the test stricter.)
    Value full = mask::tileFullyVisible(k, k0, qPos(q0), kBlockM, kBlockN, nk,
                                        off, wl, wr);
    SmallVector<Type> types(MT * NT * 4, f32);
    auto maskIf = scf::IfOp::create(b, types, full, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(maskIf.thenBlock());
      SmallVector<Value> all;
      for (int64_t mt = 0; mt < MT; ++mt)
        all.append(sv[mt]);
      scf::YieldOp::create(b, all);
      b.setInsertionPointToStart(maskIf.elseBlock());
      // Per row, the visible columns as i32 bounds (mask::rowBounds).
      Value colBase = cg.add(k0, cg.mul(t, cg.idx(2)));
      Value lastCol = cg.sub(cg.sub(nk, c1), colBase); // keys < Nk
      SmallVector<Value> masked;
      SmallVector<std::array<mask::RowBounds, 2>> bd(MT);
      for (int64_t mt = 0; mt < MT; ++mt)
        for (int64_t r = 0; r < 2; ++r)
          bd[mt][r] = mask::rowBounds(k, qPos(qRow[mt][r]), colBase, lastCol,
                                      off, wl, wr);
      for (int64_t mt = 0; mt < MT; ++mt)
        for (int64_t j = 0; j < NT; ++j)
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t e = 0; e < 2; ++e)
              masked.push_back(mask::element(k, bd[mt][r], 8 * j + e,
                                             sv[mt][j * 4 + r * 2 + e],
                                             /*negInf=*/true));
      scf::YieldOp::create(b, masked);
    }
    for (int64_t mt = 0; mt < MT; ++mt)
      sv[mt].assign(maskIf.getResults().begin() + mt * NT * 4,
                    maskIf.getResults().begin() + (mt + 1) * NT * 4);

    // Online softmax per row.
    SmallVector<std::array<Value, 2>> alpha(MT), newM(MT), newL(MT);
    SmallVector<SmallVector<Value>> p(MT, SmallVector<Value>(NT * 4));
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t r = 0; r < 2; ++r) {
        SmallVector<Value> x;
        for (int64_t j = 0; j < NT; ++j)
          for (int64_t e = 0; e < 2; ++e)
            x.push_back(sv[mt][j * 4 + r * 2 + e]);
        softmax::Row row =
            softmax::update(k, x, st[4 * mt + r], st[4 * mt + 2 + r], scale2);
        newM[mt][r] = row.m;
        newL[mt][r] = row.l;
        alpha[mt][r] = row.alpha;
        for (int64_t j = 0; j < NT; ++j)
          for (int64_t e = 0; e < 2; ++e)
            p[mt][j * 4 + r * 2 + e] = row.p[j * 2 + e];
      }

    // O = alpha O + P V; each V fragment (ldmatrix.trans) feeds the MT
    // m16 tiles.
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t n = 0; n < OT; ++n)
        for (int64_t e = 0; e < 4; ++e)
          oAt(mt, n, e) = cg.fmul(oAt(mt, n, e), alpha[mt][e / 2]);
    for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
      // A fragment of keys 16kk..16kk+15 = S tiles 2kk and 2kk+1.
      SmallVector<SmallVector<Value>> a(MT);
      for (int64_t mt = 0; mt < MT; ++mt) {
        const Value *p0 = &p[mt][(2 * kk) * 4], *p1 = &p[mt][(2 * kk + 1) * 4];
        a[mt] = {mma::pack(k, p0[0], p0[1]), mma::pack(k, p0[2], p0[3]),
                 mma::pack(k, p1[0], p1[1]), mma::pack(k, p1[2], p1[3])};
      }
      for (int64_t pn = 0; pn < OT / 2; ++pn) {
        Value row = cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l8b, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * pn), cg.mul(l16, cg.idx(8)));
        SmallVector<Value> bf = mma::ldmatrix(k, vs, row, col, true);
        for (int64_t mt = 0; mt < MT; ++mt)
          for (int64_t half = 0; half < 2; ++half) {
            int64_t n = 2 * pn + half;
            SmallVector<Value> c = {oAt(mt, n, 0), oAt(mt, n, 1),
                                    oAt(mt, n, 2), oAt(mt, n, 3)};
            SmallVector<Value> d =
                mma::mma(k, a[mt], {bf[2 * half], bf[2 * half + 1]}, c);
            for (int64_t e = 0; e < 4; ++e)
              oAt(mt, n, e) = d[e];
          }
      }
    }
    SmallVector<Value> yield;
    for (int64_t mt = 0; mt < MT; ++mt)
      yield.append({newM[mt][0], newM[mt][1], newL[mt][0], newL[mt][1]});
    yield.append(o);
    scf::YieldOp::create(b, yield);
  }

  if (async)
    copy::waitAll(k, 0); // the redundant last K prefetch
  ValueRange res = loop.getResults();

  if (split) {
    // Partials: oacc_ws [S, B, Hq, Nq, Dv] and lseacc_ws [S, B, Hq, Nq]
    // (abi::splitOaccElems), straight from the fragments.
    Value hq = k.arg("heads");
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t r = 0; r < 2; ++r) {
        Value row = qRow[mt][r];
        Value head = cg.add(cg.mul(hk, group),
                            arith::RemUIOp::create(b, row, group));
        Value at = cg.add(
            cg.mul(cg.add(cg.mul(cg.add(cg.mul(splitIdx, k.arg("batch")), bi),
                                 hq),
                          head),
                   nq),
            qPos(row));
        SmallVector<Value> acc(res.begin() + 4 * MT + mt * OT * 4 + r * 2,
                               res.end());
        epilogue::partialRow(k, res[4 * mt + r], res[4 * mt + 2 + r], acc, OT,
                             realDv, t, cg.cmp(arith::CmpIPredicate::slt, row, rows),
                             cg.mul(at, cg.idx(realDv)), at);
      }
    return;
  }

  // Epilogue: O = acc / l, lse = (m + log2 l) ln 2; empty rows 0 / -inf.
  // O goes through shared memory (the Q/K region, free once every warp is
  // past the loop) so that it leaves in coalesced 16-byte row pieces.
  gpu::BarrierOp::create(b);
  Value os = k.smem(0, {kBlockM, lay.rowO});
  epilogue::withSinkOrNot(k, h, [&](Value sink) {
    for (int64_t mt = 0; mt < MT; ++mt)
      for (int64_t r = 0; r < 2; ++r) {
        SmallVector<Value> acc(res.begin() + 4 * MT + mt * OT * 4 + r * 2,
                               res.end());
        epilogue::forwardRow(
            k, res[4 * mt + r], res[4 * mt + 2 + r], acc, OT,
            [&] { return cg.add(tileRow(mt), cg.add(g, cg.idx(8 * r))); },
            qRow[mt][r], t, os, bi, h, nq, sink);
      }
  });
  gpu::BarrierOp::create(b);
  copy::storeTile(k, os, "o", bi, h, q0, nq, kBlockM, realDv, tid);
}

void kernels::buildMmaForward(KernelBuilder &k, const KernelSchedule &sch) {
  buildForward(k, sch, /*split=*/false);
}

void kernels::buildMmaForwardSplit(KernelBuilder &k,
                                   const KernelSchedule &sch) {
  buildForward(k, sch, /*split=*/true);
}
