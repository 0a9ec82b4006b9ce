//===- WgmmaForward.cpp - Hopper (sm_90a, wgmma) forward kernel -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// FlashAttention-3 style forward on Hopper's warpgroup MMA
// (wgmma.mma_async, sm_90a). A block of 1 or 2 warpgroups (the schedule,
// KernelSelect.cpp) owns 64 query rows per warpgroup; keys come in tiles of
// blockN (128; 64 when Dv > 128).
//
//  * S = Q K_j^T: m64n128k16 with both operands read by the tensor cores
//    from shared memory through matrix descriptors (Q and K K-major).
//  * O += P V_j: m64nDk16 with P in registers (the S accumulator layout of a
//    warp is the A-operand layout of the next product, as for mma.sync) and
//    V read N-major (transposed by the descriptor).
//  * Shared-memory tiles are stored as wgmma's 128-byte swizzle mode reads
//    them: [D / 64][rows][64] elements, 16-byte chunk c of row r at chunk
//    c ^ (r % 8), every tile 1024-byte aligned (tile::indices).
//  * Copies: cp.async (16 bytes) by all threads into a two-stage K / V
//    ring, one barrier per key tile: at the top of iteration j, K_{j+1} and
//    V_j are issued; they land while the tile is computed. The generic-proxy
//    writes are made visible to the tensor cores' async proxy with
//    fence.proxy.async before the barrier.
//  * Intra-warpgroup overlap (FlashAttention-3): iteration j issues
//    S_j = Q K_j^T, then O += P_{j-1} V_{j-1}, waits for S_j only and runs
//    the online softmax of S_j while P_{j-1} V_{j-1} is on the tensor cores;
//    then waits for it and rescales O. The last P V follows the loop.
//  * Online softmax, masks and epilogue as in the mma.sync kernel
//    (MmaForward.cpp): the thread's rows are g and g + 8 of its
//    warp's 16, two columns per n8 tile.
//
// wgmma / fences are emitted as inline PTX: nvvm.wgmma.mma_async takes A
// only from shared memory. The accumulators pass through each wait as tied
// asm operands, so nothing reads them before the wait.
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
#include "../Primitives/Wgmma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <string>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr int64_t kWarpGroup = 128;
static constexpr int64_t kPad = 8; // elements of padding per O-tile row

namespace {
/// Byte offsets of the shared-memory regions (each 1024-byte aligned): Q,
/// the two K stages, the two V stages, RoPE's staged table rows of one K
/// tile (KernelSchedule::stagedRotary; 0 bytes otherwise); the epilogue's O
/// tile reuses the bytes from 0.
struct Layout {
  int64_t q, k, kStage, v, vStage, rot, total;
};
} // namespace

static Layout layout(const GpuKernelSpec &s, const KernelSchedule &sch) {
  using tile::alignUp;
  const int64_t M = sch.blockM, N = sch.blockN;
  Layout l;
  l.q = 0;
  // Rows of the padded head dims rounded up to the 64-element blocks of the
  // swizzle; only the dk / dvk columns the MMAs read are staged.
  const int64_t W = (sch.dk + 63) / 64 * 64, Wv = (sch.dvk + 63) / 64 * 64;
  l.kStage = alignUp(N * W * 2);
  l.k = alignUp(M * W * 2);
  l.vStage = alignUp(N * Wv * 2);
  l.v = l.k + 2 * l.kStage;
  l.rot = l.v + 2 * l.vStage;
  const int64_t rotBytes =
      sch.stagedRotary ? rotary::stagedTableBytes(N, sch.dk) : 0;
  // + the worst-case shift to a 1024-byte boundary (tile::alignSmem).
  l.total = std::max(l.rot + rotBytes, M * (sch.dvk + kPad) * 2) +
            tile::kSmemSlack;
  return l;
}

int64_t kernels::wgmmaForwardSmem(const GpuKernelSpec &s,
                                  const KernelSchedule &sch) {
  return layout(s, sch).total;
}


void kernels::buildWgmmaForward(KernelBuilder &k, const KernelSchedule &sch) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t WG = sch.threads / kWarpGroup;
  wgmma::WgmmaEmitter w{b, s.elementType.isF16() ? "f16" : "bf16"};
  // The padded head dims the MMAs use (columns >= the real ones are zero
  // in the Q / K / V tiles and never written out), and the tiles' widths.
  const int64_t D = sch.dk, Dv = sch.dvk;
  const int64_t realD = s.headDim, realDv = s.headDimV;
  const int64_t W = (D + 63) / 64 * 64, Wv = (Dv + 63) / 64 * 64;
  const int64_t M = sch.blockM, N = sch.blockN;
  const int64_t NT = N / 8;  // n8 tiles of S
  const int64_t OT = Dv / 8; // n8 tiles of O
  const Layout lay = layout(s, sch);
  Type f32 = b.getF32Type();

  // Grid and lanes as in the mma.sync forward (masked: last block first).
  Value qb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  if (s.masked)
    qb = cg.sub(cg.sub(gpu::GridDimOp::create(b, gpu::Dimension::x), qb),
                cg.idx(1));
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  k.beginSequence(bi); // varlen: the sequence's rows and lengths
  const LaneIds li =
      k.laneIds(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value tid = li.tid, g = li.g, t = li.t;
  Value wgIdx = k.div(tid, kWarpGroup);
  // First row (within the block) of the warp's 16 rows.
  Value rowBase = cg.add(cg.mul(wgIdx, cg.idx(64)),
                         cg.mul(k.rem(li.warp, 4), cg.idx(16)));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(N);
  Value q0 = cg.mul(qb, cg.idx(M));
  if (s.varlen) // query blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, q0, nq));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(M)), nq), c1);
  Value wl = s.masked ? k.arg("window_left") : Value();
  Value wr = s.masked ? k.arg("window_right") : Value();
  std::array<Value, 2> qRow = {cg.add(cg.add(q0, rowBase), g),
                               cg.add(cg.add(q0, rowBase),
                                      cg.add(g, cg.idx(8)))};

  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(q0, qLast, off, nk, wl, wr);
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  // Shared-memory tiles ([cols / 64][rows][64], tile::indices),
  // from the first 1024-byte boundary of the dynamic shared memory.
  wgmma::Descriptors desc(b, tile::alignSmem(k));
  Value qs = k.smem(lay.q, {W / 64, M, 64});
  Value kAll = k.smem(lay.k, {2, W / 64, N, 64});
  Value vAll = k.smem(lay.v, {2, Wv / 64, N, 64});
  auto stage = [&](Value all, Value buf) -> Value {
    auto t = cast<MemRefType>(all.getType());
    SmallVector<OpFoldResult> offs = {buf, b.getIndexAttr(0),
                                      b.getIndexAttr(0), b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1)}, strides(
                                                           4, b.getIndexAttr(1));
    for (int64_t d = 1; d < 4; ++d)
      sizes.push_back(b.getIndexAttr(t.getDimSize(d)));
    auto rt = memref::SubViewOp::inferRankReducedResultType(
        t.getShape().drop_front(), t, offs, sizes, strides);
    return memref::SubViewOp::create(b, rt, all, offs, sizes, strides);
  };

  // Matrix descriptors (wgmma::Descriptors): Q / K K-major, V N-major
  // (64-column blocks N * 128 bytes apart). A k16 step moves the start 32
  // bytes within a K-major 128-byte row or 16 rows of V.
  // Inside the key loop they come from an opaque copy of the base
  // (`cur`, Descriptors::opaqueCopy): recomputed there, not hoisted and held
  // in registers across the loop next to O.
  wgmma::Descriptors *cur = &desc;
  auto plus = [&](Value d, Value bytes) { return cur->plus(d, bytes); };
  auto kMajorStep = [&](int64_t kk, int64_t rows) {
    return cg.idx((kk / 4) * rows * 128 + (kk % 4) * 32);
  };

  // Descriptors of S = Q K^T on K stage `buf` (A, B per k16 step) and of
  // O += P V on V stage `buf` (B per k16 step of keys).
  auto sDescs = [&](Value buf, SmallVector<Value> &descA,
                    SmallVector<Value> &descB) {
    Value kMajorBase = cur->kMajor();
    Value kDesc = plus(kMajorBase, cg.add(cg.idx(lay.k),
                                          cg.mul(buf, cg.idx(lay.kStage))));
    // Q rows of this warpgroup.
    Value qDescBase = plus(
        kMajorBase, cg.add(cg.idx(lay.q), cg.mul(wgIdx, cg.idx(64 * 128))));
    for (int64_t kk = 0; kk < D / 16; ++kk) {
      descA.push_back(plus(qDescBase, kMajorStep(kk, M)));
      descB.push_back(plus(kDesc, kMajorStep(kk, N)));
    }
  };
  auto vDescs = [&](Value buf) {
    Value vDesc = plus(cur->mnMajor(N * 128),
                       cg.add(cg.idx(lay.v), cg.mul(buf, cg.idx(lay.vStage))));
    SmallVector<Value> descB;
    for (int64_t kk = 0; kk < N / 16; ++kk)
      descB.push_back(plus(vDesc, cg.idx(kk * 16 * 128)));
    return descB;
  };
  auto issueS = [&](Value buf) {
    SmallVector<Value> descA, descB;
    sDescs(buf, descA, descB);
    return w.issue({{N, {}, descA, {}, descB, /*transB=*/false}});
  };
  // O += P V; P as N / 16 k-steps of four 32-bit pairs.
  auto issuePV = [&](ArrayRef<Value> o, ArrayRef<Value> p, Value buf) {
    SmallVector<Value> descB = vDescs(buf);
    return w.issue({{Dv, o, {}, p, descB, /*transB=*/true}});
  };
  // Copies landed and visible to the tensor cores (async proxy) for all.
  auto tilesReady = [&] {
    NVVM::CpAsyncWaitGroupOp::create(b, 0);
    w.emit("fence.proxy.async.shared::cta;");
    gpu::BarrierOp::create(b);
  };

  // Scale: as in the mma.sync forward, a negative scale flips Q's sign bits
  // (once, in shared memory) and the kernel uses |scale|.
  Value scale = k.arg("scale");
  Value negScale = cg.fcmp(arith::CmpFPredicate::OLT, scale, cg.f32(0.0));
  // With softcap c, the scores are tanh(S' |scale| / c) in units of c
  // log2(e) (Primitives/Score.h).
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

  // ALiBi: the weight of the head's slope on x' (Primitives/Score.h).
  Value alibiW = s.alibi ? score::alibiWeight(k, bi, h,
                                             cg.fdiv(cg.f32(kLog2e), scale2))
                         : Value();

  // Online softmax of the raw scores `sv` (index j * 4 + 2 r + e: n8 tile
  // j, row g + 8 r, column 2 t + e) of key tile k0 against the running
  // max / per-lane sums; returns the new m, l, alpha and P as 32-bit pairs
  // in A-operand order.
  struct Soft {
    std::array<Value, 2> m, l, alpha;
    SmallVector<Value> p;
  };
  auto softmax = [&](Value k0, SmallVector<Value> sv,
                     std::array<Value, 2> m, std::array<Value, 2> l) {
    if (s.softcap)
      for (Value &x : sv)
        x = score::softcap(k, x, capMul, sch.fastTanh);
    if (s.alibi) // element (row qRow[r], key k0 + 2 t + 8 j + e)
      for (int64_t r = 0; r < 2; ++r) {
        Value dist = score::alibiDist(k, cg.add(k0, cg.mul(t, cg.idx(2))),
                                      qRow[r], off);
        for (int64_t j = 0; j < NT; ++j)
          for (int64_t e = 0; e < 2; ++e) {
            Value &x = sv[j * 4 + r * 2 + e];
            x = score::alibi(k, x, alibiW, dist, 8 * j + e);
          }
      }
    SmallVector<Type> types(NT * 4, f32);
    auto maskIf = scf::IfOp::create(
        b, types, mask::tileFullyVisible(k, k0, q0, M, N, nk, off, wl, wr), true);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(maskIf.thenBlock());
      scf::YieldOp::create(b, sv);
      b.setInsertionPointToStart(maskIf.elseBlock());
      Value colBase = cg.add(k0, cg.mul(t, cg.idx(2)));
      Value lastCol = cg.sub(cg.sub(nk, c1), colBase);
      std::array<mask::RowBounds, 2> bd;
      for (int64_t r = 0; r < 2; ++r)
        bd[r] = mask::rowBounds(k, qRow[r], colBase, lastCol, off, wl, wr);
      SmallVector<Value> masked;
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t e = 0; e < 2; ++e)
            masked.push_back(mask::element(k, bd[r], 8 * j + e,
                                           sv[j * 4 + r * 2 + e], true));
      scf::YieldOp::create(b, masked);
    }
    sv.assign(maskIf.getResults().begin(), maskIf.getResults().end());
    Soft out;
    SmallVector<Value> p(NT * 4);
    for (int64_t r = 0; r < 2; ++r) {
      SmallVector<Value> x;
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t e = 0; e < 2; ++e)
          x.push_back(sv[j * 4 + r * 2 + e]);
      softmax::Row row = softmax::update(k, x, m[r], l[r], scale2);
      out.m[r] = row.m;
      out.l[r] = row.l;
      out.alpha[r] = row.alpha;
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t e = 0; e < 2; ++e)
          p[j * 4 + r * 2 + e] = row.p[j * 2 + e];
    }
    auto asI32 = [&](Value pair) {
      Value v = vector::BitCastOp::create(
          b, VectorType::get({1}, b.getI32Type()), pair);
      return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0}).getResult();
    };
    for (int64_t kk = 0; kk < N / 16; ++kk) {
      const Value *p0 = &p[(2 * kk) * 4], *p1 = &p[(2 * kk + 1) * 4];
      for (auto [x, y] : {std::pair{p0[0], p0[1]}, std::pair{p0[2], p0[3]},
                          std::pair{p1[0], p1[1]}, std::pair{p1[2], p1[3]}})
        out.p.push_back(asI32(mma::pack(k, x, y)));
    }
    return out;
  };

  // K tile j into K stage `buf` when it is visible (j < kbHi).
  auto stageK = [&](Value j, Value buf) {
    auto visible =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, j, kbHi), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(visible.thenBlock()->getTerminator());
    copy::stageTileAsync(k, "k", bi, hk, cg.mul(j, bn), nk, N, D,
                         stage(kAll, buf), tid, /*rowStep=*/false, realD);
  };
  // RoPE (Primitives/Rotary.h): K tile j in stage `buf` rotated in place
  // once it has landed (key n at position n, rows past Nk clamped), made
  // visible to the tensor cores before S reads it. With stagedRotary its
  // table rows come with it (one buffer: tile j + 1's are issued after
  // the barrier that ends tile j's rotation).
  Value rotTables =
      sch.stagedRotary
          ? k.smem(lay.rot, {2, N, D / 2}, b.getF32Type())
          : Value();
  auto keyPos = [&](Value j) {
    Value k0 = cg.mul(j, bn), last = cg.sub(nk, c1);
    return [=, &cg](Value r) { return cg.min(cg.add(k0, r), last); };
  };
  auto stageKTables = [&](Value j) {
    if (!rotTables)
      return;
    auto visible =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, j, kbHi), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(visible.thenBlock()->getTerminator());
    rotary::stageTables(k, rotTables, N, D, keyPos(j), tid, sch.threads);
  };
  auto rotateK = [&](Value j, Value buf) {
    // Batches of 4 chunks hide the table loads' L2 latency; from shared
    // memory 2 suffice, and 4 took the D = 64 kernel to 255 registers and
    // spilled 36-108 bytes masked (ptxas 13.0).
    rotary::rotateTile(k, stage(kAll, buf), N, D, keyPos(j), tid,
                       sch.threads, /*inverse=*/false, /*batch=*/rotTables ? 2 : 4,
                       rotTables);
    w.emit("fence.proxy.async.shared::cta;");
    gpu::BarrierOp::create(b);
  };
  // Q and the first visible K tile in flight together.
  copy::stageTileAsync(k, "q", bi, h, q0, nq, M, D, qs, tid,
                       /*rowStep=*/false, realD);
  stageK(kbLo, c0);
  if (s.rotary)
    stageKTables(kbLo);

  // State: m[2], l[2] (per-lane partial sums), O[OT * 4].
  SmallVector<Value> init = {cg.negInf(), cg.negInf(), cg.f32(0.0),
                             cg.f32(0.0)};
  for (int64_t i = 0; i < OT * 4; ++i)
    init.push_back(cg.f32(0.0));
  SmallVector<Type> stateTypes(init.size(), f32);
  auto hasKeys = scf::IfOp::create(
      b, stateTypes, cg.cmp(arith::CmpIPredicate::slt, kbLo, kbHi), true);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(hasKeys.elseBlock());
    scf::YieldOp::create(b, init);
    b.setInsertionPointToStart(hasKeys.thenBlock());

    tilesReady(); // Q, K_kbLo
    if (s.rotary) { // query i at position i + Nk - Nq (>= 0 by contract)
      Value last = cg.sub(nq, c1);
      rotary::rotateTile(
          k, qs, M, D,
          [&](Value r) {
            return cg.max(cg.add(cg.min(cg.add(q0, r), last), off), c0);
          },
          tid, sch.threads);
      rotateK(kbLo, c0); // with its barrier
    }
    {
      auto neg = scf::IfOp::create(b, negScale, false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(neg.thenBlock()->getTerminator());
      const int64_t words = M * W / 2; // 32-bit words of the Q tile
      const int64_t threads = WG * kWarpGroup;
      assert(words % (4 * threads) == 0 && "partial Q flip");
      auto v4 = VectorType::get({4}, b.getI32Type());
      auto i32View = memref::ViewOp::create(
          b,
          MemRefType::get({words}, b.getI32Type(), MemRefLayoutAttrInterface(),
                          k.workgroup()),
          k.dynBase, cg.add(k.smemShift, cg.idx(lay.q)), ValueRange{});
      Value bits4 =
          vector::BroadcastOp::create(b, v4, k.i32(int32_t(0x80008000u)));
      for (int64_t i = 0; i < words; i += 4 * threads) {
        Value at = cg.add(cg.mul(tid, cg.idx(4)), cg.idx(i));
        Value x = vector::LoadOp::create(b, v4, i32View, ValueRange{at});
        vector::StoreOp::create(b, arith::XOrIOp::create(b, x, bits4),
                                i32View, ValueRange{at});
      }
      w.emit("fence.proxy.async.shared::cta;");
      gpu::BarrierOp::create(b);
    }

    // Iteration kbLo: K_{kbLo+1} and V_kbLo in flight; S, softmax.
    auto issueLoads = [&](Value j) {
      Value rel = cg.sub(j, kbLo);
      Value buf = arith::AndIOp::create(b, rel, c1);
      Value nbuf = cg.sub(c1, buf);
      stageK(cg.add(j, c1), nbuf);
      if (s.rotary) // after the barrier ending tile j's rotation
        stageKTables(cg.add(j, c1));
      copy::stageTileAsync(k, "v", bi, hk, cg.mul(j, bn), nk, N, Dv,
                           stage(vAll, buf), tid, /*rowStep=*/false, realDv);
      return buf;
    };
    Value buf0 = issueLoads(kbLo);
    SmallVector<Value> s0 = w.wait(0, issueS(buf0));
    Soft first = softmax(cg.mul(kbLo, bn), s0,
                         {cg.negInf(), cg.negInf()},
                         {cg.f32(0.0), cg.f32(0.0)});

    // Loop state: m[2], l[2], O, P_{j-1}.
    SmallVector<Value> loopInit = {first.m[0], first.m[1], first.l[0],
                                   first.l[1]};
    loopInit.append(init.begin() + 4, init.end());
    loopInit.append(first.p);
    const int64_t nO = OT * 4, nP = N / 4;
    auto loop =
        scf::ForOp::create(b, cg.add(kbLo, c1), kbHi, c1, loopInit);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value j = loop.getInductionVar();
      ValueRange st = loop.getRegionIterArgs();
      SmallVector<Value> o(st.begin() + 4, st.begin() + 4 + nO);
      SmallVector<Value> pPrev(st.begin() + 4 + nO, st.end());
      wgmma::Descriptors loopDesc = desc.opaqueCopy();
      cur = &loopDesc;
      tilesReady(); // K_j, V_{j-1}; every warpgroup is past iteration j-1
      if (s.rotary)
        rotateK(j, arith::AndIOp::create(b, cg.sub(j, kbLo), c1));
      Value buf = issueLoads(j);
      Value pbuf = cg.sub(c1, buf);
      // S_j and P_{j-1} V_{j-1}: two commit groups, one asm statement.
      SmallVector<Value> descA, descB;
      sDescs(buf, descA, descB);
      SmallVector<Value> vB = vDescs(pbuf);
      SmallVector<Value> both =
          w.issue({{N, {}, descA, {}, descB, /*transB=*/false},
                   {Dv, o, {}, pPrev, vB, /*transB=*/true}});
      SmallVector<Value> sAcc(both.begin(), both.begin() + N / 2);
      o.assign(both.begin() + N / 2, both.end());
      sAcc = w.wait(1, sAcc); // S_j done; P_{j-1} V_{j-1} may run on
      Soft sm = softmax(cg.mul(j, bn), sAcc, {st[0], st[1]}, {st[2], st[3]});
      SmallVector<Value> inFlight(pPrev);
      inFlight.append(vB);
      o = w.wait(0, o, inFlight);
      for (int64_t i = 0; i < nO; ++i)
        o[i] = cg.fmul(o[i], sm.alpha[(i / 2) % 2]);
      SmallVector<Value> yield = {sm.m[0], sm.m[1], sm.l[0], sm.l[1]};
      yield.append(o);
      yield.append(sm.p);
      scf::YieldOp::create(b, yield);
      cur = &desc;
    }
    ValueRange res = loop.getResults();
    tilesReady(); // V of the last tile
    Value lastBuf = arith::AndIOp::create(b, cg.sub(cg.sub(kbHi, c1), kbLo), c1);
    SmallVector<Value> o(res.begin() + 4, res.begin() + 4 + nO);
    SmallVector<Value> pLast(res.begin() + 4 + nO, res.begin() + 4 + nO + nP);
    o = w.wait(0, issuePV(o, pLast, lastBuf));
    SmallVector<Value> yield = {res[0], res[1], res[2], res[3]};
    yield.append(o);
    scf::YieldOp::create(b, yield);
  }
  // Drain (no visible keys: Q's group is still pending).
  NVVM::CpAsyncWaitGroupOp::create(b, 0);

  // Epilogue: O = acc / l, lse = (m + log2 l) ln 2; empty rows 0 / -inf. O
  // leaves through shared memory (from byte 0) in 16-byte row pieces.
  gpu::BarrierOp::create(b);
  Value os = k.smem(0, {M, Dv + kPad});
  ValueRange res = hasKeys.getResults();
  epilogue::withSinkOrNot(k, h, [&](Value sink) {
    for (int64_t r = 0; r < 2; ++r)
      epilogue::forwardRow(
          k, res[r], res[2 + r],
          SmallVector<Value>(res.begin() + 4 + r * 2, res.end()), OT,
          [&] { return cg.add(rowBase, cg.add(g, cg.idx(8 * r))); }, qRow[r],
          t, os, bi, h, nq, sink);
  });
  gpu::BarrierOp::create(b);
  copy::storeTile(k, os, "o", bi, h, q0, nq, M, realDv, tid);
}
