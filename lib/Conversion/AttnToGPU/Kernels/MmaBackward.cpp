//===- MmaBackward.cpp - tensor-core backward main kernel -------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// FlashAttention-2 style backward main kernel (KV-parallel) with mma.sync
// m16n8k16 (f32 accumulate) for sm_80+. Same ABI as the SIMT attn_bwd_main:
// grid.x over blocks of BN = 128 keys, grid.y = kv head, grid.z = batch; a
// block has 8 warps, warp w owns keys 16w..16w+15 and all dK / dV columns
// (16 x D f32 each: 32 + 32 registers at D = 64, 64 + 64 at D = 128).
// D = 256 (sm_90 only: 216064 bytes of shared memory; sm_80 keeps the SIMT
// kernel), "column split" CS = 2: BN = 64 keys, warps w and w + 4 share the
// 16 keys of key group kg = w % 4 and own dK / dV columns 128 cs.. (cs = w /
// 4; 64 + 64 registers). Each computes S^T / dP^T / dS^T for its 32 of the
// 64 query rows (qb = 32 cs, one pass), stores P^T and dS^T to shared memory
// (also when deterministic: the pair exchange), barrier, then both read the
// A fragments over all 64 queries back by ldmatrix for dV += P^T dO and dK
// += dS^T Q on their column half; the dQ stage follows without another
// barrier (16 rows x 128 columns per warp over the 64 keys).
//
//  * K and V of the block are staged once (16-byte loads) into shared
//    memory (rows XOR-swizzled on sm_90, padded by 8 elements on sm_80:
//    schedule.swizzle; conflict-free ldmatrix either way). D = 64: the m16k16
//    A fragments of the warp's 16 keys stay in registers; D = 128: they are
//    re-read by ldmatrix at every use (the registers hold dK / dV). The K
//    tile also serves dQ.
//  * dK and dV accumulate in f32 registers over one flattened loop over
//    (query head of the kv head: GQA/MQA, query tile of 64 rows that can see
//    some key of the block: qLo..qHi as in the SIMT kernel).
//    The loop carries the (head, tile) pair as two i32 counters: no
//    64-bit division per iteration (docs/tensor-cores.md, v8).
//  * Q [64 x D], dO [64 x Dv], lse and dr (f32, 64 rows each) are double-
//    buffered in shared memory and staged by cp.async (16 bytes; 4 bytes for
//    lse / dr; rows >= Nq are clamped copies, masked out): iteration i + 1's
//    copies are issued right after iteration i's top barrier, into the
//    buffer iteration i - 1 used, and land under iteration i's math.
//  * Per iteration, per warp, in passes of QS queries (QS = 64 at D = 64;
//    32 at D = 128, so that S^T / dP^T of only 16 x 32 are live next to
//    dK / dV), queries qb = pass * QS ..:
//      S^T  = K Q^T                 A: K fragments, B: Q by ldmatrix
//      P^T  = exp2(S^T scale log2e - lse log2e)  (one FMA; element mask on
//             partial tiles: invisible / query >= Nq / key >= Nk -> 0)
//      dP^T - dr = V dO^T - dr      A: V fragments, B: dO by ldmatrix (the
//                                   accumulators start at -dr)
//      dS^T = P^T (dP^T - dr)       -> shared memory [BN keys][64 + 8]
//      dV  += P^T dO                A: P^T from registers (the P trick of
//                                   the forward), B: dO .trans
//      dK  += dS^T Q                A: dS^T from registers, B: Q .trans
//    then (after a barrier: dS^T of all warps visible) warp w computes dQ of
//    query rows 16(w % 4).. and columns (D / 2)(w / 4).. over the BN keys:
//      dQ   = dS K                  A: dS by ldmatrix.trans of dS^T,
//                                   B: K tile by ldmatrix.trans
//    and adds dQ (unscaled) to dqacc_ws with f32 atomics (rows < Nq only)
//    in mma fragment order (fragmentOrderDqAcc, KernelSelect.cpp: a warp's atomic
//    instruction covers 32 consecutive floats; zeroed by attn_bwd_pre,
//    scaled and converted by attn_bwd_post).
//  * Epilogue: dK * scale and dV in the element type for keys < Nk (the
//    SIMT kernel's convention: dS excludes the softmax scale, dK is scaled
//    once when written, dQ by attn_bwd_post).
//  * Lane-dependent addresses are re-derived in every iteration from an
//    opaque copy of the thread id (opaqueIndex): otherwise LLVM hoists ~100
//    loop-invariant 64-bit ldmatrix/staging addresses out of the loop, where
//    they stay live next to the accumulators.
//  * Two barriers per iteration: at the top (this iteration's copies landed:
//    cp.async.wait_group 0 first; every warp is done with the previous
//    iteration, so its Q/dO/lse/dr buffer and dS^T may be rewritten) and
//    after the last dS^T stores.
//
// Hopper (sm_90a, engine Wgmma: D = 64 / 128, atomic dQ): the same
// kernel with every product on wgmma (Primitives/Wgmma.h). A warpgroup's m64
// accumulator gives warp w % 4 exactly the mma.sync fragment of warp w
// (keys 16 w + g + 8 r), so masks, P^T / dS^T, the dS^T stores and the dQ
// atomics are shared. Tiles are 128-byte swizzled for the descriptors;
// S^T = K Q^T and dP^T = V dO^T (K-major A and B) are issued together, dV
// += P^T dO and dK += dS^T Q take A from registers and B (dO / Q) N-major,
// and dQ = dS K reads dS M-major from the dS^T tile (warpgroup qc: columns
// qc D / 2..). Each pair of groups is waited for before its results are
// used; generic shared-memory writes are fenced (fence.proxy.async) before
// the barrier that publishes them to the tensor cores.
//
// Register fragment trace (lane = 4 g + t; block-relative key/query; kg = w,
// column split kg = w % 4 and dK / dV columns offset by 128 cs):
//   S^T, dP^T, P^T, dS^T: n8 tile j (queries qb + 8j..), acc[j][2r+e] =
//     (key 16 kg + g + 8r, query qb + 8j + 2t + e).
//   dK / dV tile n: acc[n][2r+e] = (key 16 kg + g + 8r, column 8n + 2t + e).
//   dQ tile n:      acc[n][2r+e] = (query 16 (w % 4) + g + 8r, column (D / 2)
//     (w / 4) + 8n + 2t + e).
//   A of dV/dK for query k-step kk = {S tile 2kk rows g, g+8; tile 2kk+1 rows
//     g, g+8} = a0 (key g, q qb+16kk+2t..), a1 (key g+8), a2 (q + 8), a3.
//
//===----------------------------------------------------------------------===//

#include "MmaBackward.h"

#include "../Primitives/MmaSync.h"
#include "../Primitives/Rotary.h"
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

/// wgmma: the dQ columns per warpgroup: dk / 2, or, where the second half
/// would start inside a 64-column block of the K tile and leave it (dk =
/// 96, 160, ...), 64-column aligned halves (MmaBackwardDq.cpp).
static int64_t wgDqCols(const KernelSchedule &sch) {
  const int64_t qw = sch.dk / 2;
  return qw > 32 && qw % 64 != 0 ? (qw + 63) / 64 * 64 : qw;
}

/// wgmma: the K tile's width: dk in 64-column blocks, and the two dQ halves.
static int64_t kCols(const KernelSchedule &sch) {
  return std::max((sch.dk + 63) / 64 * 64, 2 * wgDqCols(sch));
}

int64_t Kernel::wgmmaDqCols() const { return wgDqCols(sch); }
int64_t Kernel::kTileCols() const { return wg ? kCols(sch) : D; }

// RoPE: dK leaves through an f32 [keys][dk + 4] tile, rotated back (R^T)
// as it is stored (a key row's columns are spread over warps when the
// columns are split, and the pairs are R / 2 columns apart).
static int64_t dkStageBytes(const KernelSchedule &sch) {
  return sch.blockN * (sch.dk + 4) * 4;
}

// RoPE, stagedRotary: one Q tile's cos / sin rows (rotary::stageTables).
static int64_t rotBytes(const KernelSchedule &sch) {
  return sch.stagedRotary ? rotary::stagedTableBytes(sch.blockM, sch.dk) : 0;
}

Layout kernels::bwd::layoutOf(const GpuKernelSpec &s, const KernelSchedule &sch) {
  const int64_t eb = 2; // f16 / bf16
  const int64_t bn = sch.blockN, kBM = sch.blockM;
  Layout l;
  if (sch.engine == Engine::Wgmma) {
    // wgmma: every tile 128-byte swizzled ([cols / 64][rows][64]; dS^T
    // [BN keys][64 queries]) and 1024-byte aligned, + the shift to a
    // 1024-byte boundary.
    using tile::alignUp;
    const int64_t W = (sch.dk + 63) / 64 * 64, Wv = (sch.dvk + 63) / 64 * 64;
    l.k = 0;
    l.v = alignUp(bn * kCols(sch) * eb);
    l.qBytes = alignUp(kBM * W * eb);
    l.dOBytes = alignUp(kBM * Wv * eb);
    l.q = l.v + alignUp(bn * Wv * eb);
    l.dO = l.q + 2 * l.qBytes;
    l.dS = l.dO + 2 * l.dOBytes;
    l.lse = l.dS + alignUp(bn * kBM * eb);
    l.dr = l.lse + 2 * kBM * 4;
    l.rot = l.dr + 2 * kBM * 4;
    l.total = l.rot + rotBytes(sch) + tile::kSmemSlack;
    if (s.rotary) // the dK epilogue's f32 tile (rotated back)
      l.total = std::max(l.total, dkStageBytes(sch) + tile::kSmemSlack);
    return l;
  }
  tile::SmemLayout m;
  // K / V / Q / dO: rows of D elements, XOR-swizzled (tile::swizzleCol)
  // on sm_90, padded on sm_80 (schedule.swizzle); dS^T / P^T (4-byte
  // stores from registers): padded rows.
  const int64_t tp = sch.swizzle ? 0 : kPad;
  l.k = m.add(bn * (sch.dk + tp) * eb);
  l.v = m.add(bn * (sch.dvk + tp) * eb);
  l.qBytes = kBM * (sch.dk + tp) * eb;
  l.dOBytes = kBM * (sch.dvk + tp) * eb;
  l.q = m.add(sch.stages * l.qBytes);
  l.dO = m.add(sch.stages * l.dOBytes);
  l.dS = m.add(bn * (kBM + kPad) * eb);
  if (sch.colSplit > 1)
    l.p = m.add(bn * (kBM + kPad) * eb);
  l.lse = m.add(sch.stages * kBM * 4);
  l.dr = m.add(sch.stages * kBM * 4);
  assert(!sch.stagedRotary && "staged RoPE tables: wgmma backward only");
  l.total = m.total;
  if (s.rotary)
    l.total = std::max(l.total, dkStageBytes(sch));
  return l;
}

int64_t kernels::mmaBackwardSmem(const GpuKernelSpec &s,
                                 const KernelSchedule &sch) {
  return layoutOf(s, sch).total;
}

/// A view of `shape` (element type `t`) at `offset` bytes (a Value: may be
/// run-time) into dynamic shared memory.
static Value smemView(KernelBuilder &k, Type t, Value offset,
                      ArrayRef<int64_t> shape) {
  if (!k.dynBase)
    (void)k.smem(0, {1});
  if (k.smemShift)
    offset = k.cg.add(k.smemShift, offset);
  auto mt =
      MemRefType::get(shape, t, MemRefLayoutAttrInterface(), k.workgroup());
  return memref::ViewOp::create(k.b, mt, k.dynBase, offset, ValueRange{});
}

Lanes Kernel::lanesOf(Value tid) {
  Lanes l;
  static_cast<LaneIds &>(l) = k.laneIds(tid);
  l.kg = CS > 1 ? k.rem(l.warp, KG) : l.warp;
  if (CS > 1)
    l.cs = k.div(l.warp, KG);
  // dQ: kBM / 16 row groups, the warps of a row group split the columns.
  l.qw = k.rem(l.warp, kBM / 16);
  l.qc = k.div(l.warp, kBM / 16);
  return l;
}

void Kernel::fenceAsync() {
  if (wg) // generic-proxy smem writes -> visible to wgmma (async proxy)
    wge->emit("fence.proxy.async.shared::cta;");
}

SmallVector<int64_t> Kernel::tileShape(int64_t rows, int64_t cols) const {
  if (wg)
    return {(cols + 63) / 64, rows, 64};
  return {rows, cols + tp};
}

// Q / dO buffer `buf` (0 or 1, run-time).
Value Kernel::qView(Value buf) {
  return smemView(k, et, cg.add(cg.idx(L.q), cg.mul(buf, cg.idx(L.qBytes))),
                  tileShape(kBM, D));
}
Value Kernel::dOView(Value buf) {
  return smemView(k, et, cg.add(cg.idx(L.dO), cg.mul(buf, cg.idx(L.dOBytes))),
                  tileShape(kBM, Dv));
}

Kernel::Kernel(KernelBuilder &k, const KernelSchedule &sch)
    : k(k), sch(sch), s(k.spec), b(k.b), cg(k.cg) {
  kBM = sch.blockM;
  kNW = sch.warps();
  D = sch.dk;
  Dv = sch.dvk;
  realD = s.headDim;
  realDv = s.headDimV;
  CS = sch.colSplit;
  KG = kNW / CS;
  BN = 16 * KG;
  QS = CS > 1 ? kBM / CS : sch.passQueries;
  NP = CS > 1 ? 1 : kBM / QS;
  ST = QS / 8;
  KW = D / CS;
  VW = Dv / CS;
  KT = KW / 8;
  VT = VW / 8;
  NK = BN / 16;
  QW = D / (kNW / (kBM / 16));
  f32 = b.getF32Type();
  et = s.elementType;

  kb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  hk = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  k.beginSequence(bi); // varlen: the sequence's rows and lengths
  top = lanesOf(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  nq = k.arg("seqlen_q");
  nk = k.arg("seqlen_k");
  heads = k.arg("heads");
  group = cg.divs(heads, k.arg("kv_heads"));
  off = cg.sub(nk, nq);
  c0 = cg.idx(0);
  c1 = cg.idx(1);
  k0 = cg.mul(kb, cg.idx(BN));
  if (s.varlen) // key blocks past the sequence's end: nothing to do
    k.exitUnless(cg.cmp(arith::CmpIPredicate::slt, k0, nk));
  kLast = cg.sub(cg.min(cg.add(k0, cg.idx(BN)), nk), c1);
  wl = s.masked ? k.arg("window_left") : Value();
  wr = s.masked ? k.arg("window_right") : Value();
  scale = k.arg("scale");
  if (s.softcap) {
    Value c = k.arg("softcap");
    capMul = cg.fdiv(scale, c);
    scale2 = cg.fmul(c, cg.f32(kLog2e));
  } else {
    scale2 = cg.fmul(scale, cg.f32(kLog2e));
  }

  L = layoutOf(s, sch);
  tp = sch.swizzle ? 0 : kPad;
  // wgmma (sm_90a): the products read K / V / Q / dO / dS^T from shared
  // memory through matrix descriptors (Primitives/Wgmma.h); tiles 128-byte
  // swizzled from a 1024-byte boundary.
  wg = sch.engine == Engine::Wgmma;
  if (wg) {
    desc.emplace(b, tile::alignSmem(k));
    wge.emplace(wgmma::WgmmaEmitter{b, et.isF16() ? "f16" : "bf16"});
  }
  ks = k.smem(L.k, tileShape(BN, kTileCols()));
  vs = k.smem(L.v, tileShape(BN, Dv));
  dss = k.smem(L.dS, {BN, wg ? kBM : kBM + kPad});
  pss = CS > 1 ? k.smem(L.p, {BN, kBM + kPad}) : Value();
  lseS = smemView(k, f32, cg.idx(L.lse), {sch.stages * kBM});
  drS = smemView(k, f32, cg.idx(L.dr), {sch.stages * kBM});
  if (sch.stagedRotary)
    rotS = k.smem(L.rot, {2, kBM, D / 2}, f32);

  // The query rows that can see some key of the block (as the SIMT kernel),
  // in tiles of 64; the loop runs over (query head of the kv head, tile).
  Value qLo = c0, qHi = nq;
  if (s.masked)
    std::tie(qLo, qHi) = cg.visibleQueries(k0, kLast, off, nq, wl, wr);
  qtLo = cg.divs(qLo, cg.idx(kBM));
  Value qtHi = cg.max(qtLo, cg.ceilDiv(qHi, cg.idx(kBM)));
  nT = cg.sub(qtHi, qtLo);
  total = cg.mul(nT, group);
  nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
  resident = sch.residentKV;
}

// (hI, tI) are i32 (two registers instead of four next to the
// accumulators), carried by the loop (no division per iteration).
Iter Kernel::iterOf(Value hI32, Value tI32) {
  auto toIdx = [&](Value x) {
    return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult();
  };
  Value hI = toIdx(hI32), tI = toIdx(tI32);
  Iter r;
  r.h = cg.add(cg.mul(hk, group), hI);
  r.q0 = cg.mul(cg.add(qtLo, tI), cg.idx(kBM));
  if (s.varlen) { // packed workspaces (KernelAbi.h)
    r.rowBase = k.drRow(bi, r.h, c0);
    r.rowBase16 = k.dqaccRowBase(bi, r.h);
    r.lseBase = k.atLse(bi, r.h, c0);
    return r;
  }
  Value bh = cg.add(cg.mul(bi, heads), r.h);
  r.rowBase = cg.mul(bh, nq);
  r.rowBase16 = cg.mul(bh, nq16);
  r.lseBase = cg.add(cg.mul(bi, k.arg("lse_stride_b")),
                     cg.mul(r.h, k.arg("lse_stride_h")));
  return r;
}

// RoPE: the table row of row r of the query tile from q0: query i at
// position i + Nk - Nq (rows past Nq clamped to Nq - 1).
std::function<Value(Value)> Kernel::queryPos(Value q0) {
  Value last = cg.sub(nq, c1);
  return [this, q0, last](Value r) {
    return cg.max(cg.add(cg.min(cg.add(q0, r), last), off), c0);
  };
}

// Q, dO, lse and dr of iteration (hI, tI) into buffer `buf` by cp.async
// (rows >= Nq: clamped copies of row Nq - 1, masked out); with stagedRotary
// also the tile's table rows, into their one buffer (so only after the
// barrier that ends the previous tile's rotation), committed in one group
// with lse / dr.
Value Kernel::stage(Value hI, Value tI, Value buf, Value tid) {
  Iter r = iterOf(hI, tI);
  (void)copy::stageTileAsync(k, "q", bi, r.h, r.q0, nq, kBM, D, qView(buf),
                             tid, /*rowStep=*/true, realD);
  (void)copy::stageTileAsync(k, "do", bi, r.h, r.q0, nq, kBM, Dv, dOView(buf),
                             tid, /*rowStep=*/true, realDv);
  auto first = scf::IfOp::create(
      b, cg.cmp(arith::CmpIPredicate::slt, tid, cg.idx(kBM)), false);
  {
    OpBuilder::InsertionGuard gi(b);
    b.setInsertionPoint(first.thenBlock()->getTerminator());
    Value qi = cg.min(cg.add(r.q0, tid), cg.sub(nq, c1));
    Value dst = cg.add(cg.mul(buf, cg.idx(kBM)), tid);
    copy::copyScalarAsync(k, lseS, ValueRange{dst}, k.arg("lse"),
                          ValueRange{cg.add(r.lseBase, qi)});
    copy::copyScalarAsync(k, drS, ValueRange{dst}, k.arg("dr_ws"),
                          ValueRange{cg.add(r.rowBase, qi)});
  }
  // RoPE: the tile's table rows (one buffer: issued after the barrier that
  // ends the previous tile's rotation).
  if (rotS)
    return rotary::stageTables(k, rotS, kBM, D, queryPos(r.q0), tid,
                               sch.threads);
  return copy::commitGroup(k);
}

// A fragments of a warp's 16 keys (rows 16 kg + lane % 16, k16 step kk):
// ldmatrix x4 matrices 0..3 = (rows 0-7, cols 0-7) a0, (rows 8-15, cols
// 0-7) a1, (rows 0-7, cols 8-15) a2, (rows 8-15, cols 8-15) a3.
SmallVector<Value> Kernel::aFrag(const Lanes &l, Value mem, int64_t kk) {
  Value aRow = cg.add(cg.mul(l.kg, cg.idx(16)), k.rem(l.lane, 16));
  return mma::ldmatrix(k, mem, aRow,
                       cg.add(cg.idx(16 * kk), cg.mul(l.l16, cg.idx(8))),
                       false);
}

// The two keys of this lane in the S^T / dK / dV fragments.
Value Kernel::keyRowOf(const Lanes &l, int64_t r) {
  return cg.add(cg.add(k0, cg.mul(l.kg, cg.idx(16))),
                cg.add(l.g, cg.idx(8 * r)));
}

// Whether query tile q0 needs no element mask: keys < Nk, queries < Nq and
// inside every window (bottom-right aligned, diag = query + Nk - Nq).
Value Kernel::fullTile(Value q0) {
  Value full =
      cg.andI(cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(BN)), nk),
              cg.cmp(arith::CmpIPredicate::sle, cg.add(q0, cg.idx(kBM)), nq));
  if (s.masked) {
    // left: every key >= every query's diag - wl <=> k0 >= (q0 + 63) +
    // off - wl; right: k0 + BN - 1 <= q0 + off + wr.
    Value leftOk = arith::OrIOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
        cg.cmp(arith::CmpIPredicate::sge, k0,
               cg.sub(cg.add(cg.add(q0, cg.idx(kBM - 1)), off), wl)));
    Value rightOk = arith::OrIOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
        cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(BN - 1)),
               cg.add(cg.add(q0, off), wr)));
    full = cg.andI(full, cg.andI(leftOk, rightOk));
  }
  return full;
}

void Kernel::build() {
  Type i32 = b.getI32Type();
  // One Q / dO buffer (stages = 1, no cp.async: sm_75): each iteration
  // stages its own tile after a barrier. Two: iteration 0's copies first
  // (under the K / V staging), then each iteration issues the next one's.
  const bool single = sch.stages == 1;
  if (!single) {
    auto any = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::sgt, total, c0), false);
    OpBuilder::InsertionGuard ga(b);
    b.setInsertionPoint(any.thenBlock()->getTerminator());
    (void)stage(k.i32(0), k.i32(0), c0, top.tid);
  }

  // K and V of the block (rows >= Nk are clamped copies of row Nk - 1:
  // finite, their P and dS are masked to 0 and their dK/dV never stored).
  copy::stageTile(k, "k", bi, hk, k0, nk, BN, kTileCols(), ks, top.tid,
                  realD);
  copy::stageTile(k, "v", bi, hk, k0, nk, BN, Dv, vs, top.tid, realDv);
  fenceAsync();
  gpu::BarrierOp::create(b);
  if (s.rotary) { // RoPE: K rotated in place, key n at position n
    rotary::rotateTile(
        k, ks, BN, D, [&](Value r) { return cg.min(cg.add(k0, r), cg.sub(nk, c1)); },
        top.tid, sch.threads);
    fenceAsync();
    gpu::BarrierOp::create(b);
  }

  if (resident) {
    for (int64_t kk = 0; kk < D / 16; ++kk)
      kf.push_back(aFrag(top, ks, kk));
    for (int64_t kk = 0; kk < Dv / 16; ++kk)
      vf.push_back(aFrag(top, vs, kk));
  }

  // Loop state: dK [KT][4] then dV [VT][4] (f32, unscaled), then (hI, tI).
  SmallVector<Value> init((KT + VT) * 4, cg.f32(0.0));
  init.push_back(k.i32(0));
  init.push_back(k.i32(0));
  auto loop = scf::ForOp::create(b, c0, total, c1, init);
  {
    OpBuilder::InsertionGuard guardT(b);
    b.setInsertionPointToStart(loop.getBody());
    Value it = loop.getInductionVar();
    Step step;
    step.ln = lanesOf(opaqueIndex(b, top.tid));
    // wgmma descriptors from an opaque copy of the base: recomputed in the
    // loop, not held across it next to dK / dV (they spilled).
    if (wg)
      step.ld.emplace(desc->opaqueCopy());
    Value tid = step.ln.tid;
    step.keyRow[0] = keyRowOf(step.ln, 0);
    step.keyRow[1] = keyRowOf(step.ln, 1);
    ValueRange st = loop.getRegionIterArgs();
    SmallVector<Value> dk(st.begin(), st.begin() + KT * 4);
    SmallVector<Value> dv(st.begin() + KT * 4, st.begin() + (KT + VT) * 4);
    Value hI = st[(KT + VT) * 4], tI = st[(KT + VT) * 4 + 1];
    step.cur = iterOf(hI, tI);
    Value buf = single ? c0 : arith::AndIOp::create(b, it, c1); // it % 2
    step.buf = buf;
    // The next iteration's (hI, tI).
    Value tNext = cg.add(tI, k.i32(1));
    Value wrap = cg.cmp(arith::CmpIPredicate::sge, tNext,
                        arith::IndexCastOp::create(b, i32, nT));
    Value hNext = cg.select(wrap, cg.add(hI, k.i32(1)), hI);
    tNext = cg.select(wrap, k.i32(0), tNext);
    step.qs = qView(buf);
    step.dos = dOView(buf);
    step.rowOff = cg.mul(buf, cg.idx(kBM)); // into lseS / drS

    // ---- This iteration's copies landed (the only group in flight) and are
    // visible; every warp is done with iteration it - 1, so the other buffer
    // takes iteration it + 1 under this one's math.
    if (single) { // every warp is done with iteration it - 1's tile
      gpu::BarrierOp::create(b);
      (void)stage(hI, tI, c0, tid);
    }
    copy::waitGroups(k, copy::commitGroup(k), 0);
    fenceAsync();
    gpu::BarrierOp::create(b);
    if (s.rotary) { // RoPE: this tile's Q rows, query i at i + Nk - Nq
      rotary::rotateTile(k, step.qs, kBM, D, queryPos(step.cur.q0), tid,
                         sch.threads, /*inverse=*/false,
                         /*batch=*/rotS ? 2 : 0, rotS);
      fenceAsync();
      gpu::BarrierOp::create(b);
    }
    if (!single) {
      Value nxt = cg.add(it, c1);
      auto more = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, nxt, total), false);
      OpBuilder::InsertionGuard gm(b);
      b.setInsertionPoint(more.thenBlock()->getTerminator());
      (void)stage(hNext, tNext, cg.sub(c1, buf), tid);
    }

    // Element mask on tiles not entirely visible: keys >= Nk, queries >= Nq,
    // window / causal.
    step.full = fullTile(step.cur.q0);

    // The tile's queries in passes of QS: S^T, dP^T, dS^T of the warp's 16
    // keys x queries qb .. qb + QS - 1, then their share of dV and dK.
    for (int64_t p = 0; p < NP; ++p)
      pass(step, p, dk, dv);

    if (!s.deterministic)
      dqStage(step);


    SmallVector<Value> yield(dk);
    yield.append(dv);
    yield.push_back(hNext);
    yield.push_back(tNext);
    scf::YieldOp::create(b, yield);
  }

  // Epilogue: dK * scale and dV of this lane's keys (< Nk), columns below
  // the real head dims (n8 tiles of padding are skipped: statically, or
  // under a warp-uniform branch where the column half is the warp's).
  ValueRange res = loop.getResults();
  Value t = top.t;
  // Stores the lane's pairs of n8 tiles [0, T) of accumulator `acc0` (width
  // W per warp, `real` columns) to `name`, each element through `convert`.
  auto storeRows = [&](int64_t r, Value keyRow, StringRef name, int64_t acc0,
                       int64_t T, int64_t W, int64_t real,
                       function_ref<Value(Value)> convert) {
    for (int64_t n = 0; n < T; ++n) {
      if ((CS > 1 ? 0 : 8 * n) >= real)
        continue; // padding for every warp
      OpBuilder::InsertionGuard gc(b);
      if (CS > 1 && (CS - 1) * W + 8 * n + 8 > real) { // padding in some half
        auto in = scf::IfOp::create(
            b,
            cg.cmp(arith::CmpIPredicate::slt,
                   cg.add(cg.mul(top.cs, cg.idx(W)), cg.idx(8 * n)),
                   cg.idx(real)),
            false);
        b.setInsertionPoint(in.thenBlock()->getTerminator());
      }
      for (int64_t e = 0; e < 2; ++e) {
        Value col = cg.add(cg.idx(8 * n + e), cg.mul(t, cg.idx(2)));
        if (CS > 1)
          col = cg.add(cg.mul(top.cs, cg.idx(W)), col);
        Value x = convert(res[(acc0 + n) * 4 + 2 * r + e]);
        memref::StoreOp::create(b, x, k.arg(name),
                                ValueRange{k.at4(name, bi, hk, keyRow, col)});
      }
    }
  };
  if (s.rotary)
    storeRotatedDk(res);
  for (int64_t r = 0; r < 2; ++r) {
    Value keyRow = keyRowOf(top, r);
    auto ok = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, keyRow, nk), false);
    OpBuilder::InsertionGuard ge(b);
    b.setInsertionPoint(ok.thenBlock()->getTerminator());
    if (!s.rotary)
      storeRows(r, keyRow, "dk", 0, KT, KW, realD, [&](Value x) -> Value {
        return arith::TruncFOp::create(b, et, cg.fmul(x, scale));
      });
    storeRows(r, keyRow, "dv", KT, VT, VW, realDv, [&](Value x) -> Value {
      return arith::TruncFOp::create(b, et, x);
    });
  }
}

// RoPE: dK of the rotated keys -> dK of the stored ones. Each lane puts its
// dK * scale into an f32 [BN][dk + 4] tile (from byte 0: the loop's tiles
// are dead), then the block rotates it back by rows of 8-column chunks
// (Primitives/Rotary.h) and stores keys < Nk, columns < D.
void Kernel::storeRotatedDk(ValueRange res) {
  const int64_t rowW = D + 4;
  gpu::BarrierOp::create(b); // every warp is done with the loop's tiles
  Value dks = k.smem(0, {BN, rowW}, f32);
  Value t = top.t;
  for (int64_t r = 0; r < 2; ++r) {
    Value row = cg.sub(keyRowOf(top, r), k0);
    for (int64_t n = 0; n < KT; ++n)
      for (int64_t e = 0; e < 2; ++e) {
        Value col = cg.add(cg.idx(8 * n + e), cg.mul(t, cg.idx(2)));
        if (CS > 1)
          col = cg.add(cg.mul(top.cs, cg.idx(KW)), col);
        memref::StoreOp::create(b, cg.fmul(res[n * 4 + 2 * r + e], scale),
                                dks, ValueRange{row, col});
      }
  }
  gpu::BarrierOp::create(b);
  const int64_t perRow = realD / 8;
  auto v8f = VectorType::get({8}, f32);
  auto v8 = VectorType::get({8}, et);
  auto loop = scf::ForOp::create(b, top.tid, cg.idx(BN * perRow),
                                 cg.idx(sch.threads));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value u = loop.getInductionVar();
  Value row = arith::DivUIOp::create(b, u, cg.idx(perRow));
  Value c = cg.mul(arith::RemUIOp::create(b, u, cg.idx(perRow)), cg.idx(8));
  Value key = cg.add(k0, row);
  auto in = scf::IfOp::create(
      b, cg.cmp(arith::CmpIPredicate::slt, key, nk), false);
  b.setInsertionPoint(in.thenBlock()->getTerminator());
  rotary::rotateChunkAt(
      k, c, key, /*inverse=*/true, /*copyRest=*/true,
      [&](Value col) -> Value {
        auto ld = vector::LoadOp::create(b, v8f, dks, ValueRange{row, col});
        ld.setAlignment(16);
        return ld;
      },
      [&](Value col, Value x) {
        vector::StoreOp::create(b, arith::TruncFOp::create(b, v8, x),
                                k.arg("dk"),
                                ValueRange{k.at4("dk", bi, hk, key, col)})
            .setAlignment(16);
      });
}

void kernels::buildMmaBackward(KernelBuilder &k, const KernelSchedule &sch) {
  kernels::bwd::Kernel kernel(k, sch);
  kernel.build();
}
