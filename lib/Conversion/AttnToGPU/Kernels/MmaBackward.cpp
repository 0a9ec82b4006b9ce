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

#include "Kernels.h"

#include "../Primitives/MmaSync.h"
#include "../Primitives/SharedTile.h"
#include "../Primitives/TileCopy.h"
#include "../Primitives/Wgmma.h"

#include <optional>

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

static constexpr int64_t kPad = 8; // elements of padding per smem row
namespace {
/// Byte offsets of the shared-memory tiles (all element type unless noted).
struct BwdLayout {
  int64_t k = 0;  ///< K   [BN keys][D + tilePad]
  int64_t v = 0;  ///< V   [BN keys][Dv + tilePad]
  int64_t q = 0;  ///< Q   [2 buffers][64 rows][D + tilePad]
  int64_t dO = 0; ///< dO  [2][64 rows][Dv + tilePad]
  int64_t qBytes = 0, dOBytes = 0; ///< one buffer
  int64_t dS = 0;                  ///< dS^T [BN keys][64 rows + 8]
  int64_t p = 0;   ///< P^T [BN keys][64 rows + 8] (column split only)
  int64_t lse = 0; ///< f32 [2][64]: lse of the tile's rows
  int64_t dr = 0;  ///< f32 [2][64]: dr of the tile's rows
  int64_t total = 0;
};
} // namespace

static BwdLayout layoutOf(const GpuKernelSpec &s, const KernelSchedule &sch) {
  const int64_t eb = 2; // f16 / bf16
  const int64_t bn = sch.blockN, kBM = sch.blockM;
  BwdLayout l;
  if (sch.engine == Engine::Wgmma) {
    // wgmma: every tile 128-byte swizzled ([cols / 64][rows][64]; dS^T
    // [BN keys][64 queries]) and 1024-byte aligned, + the shift to a
    // 1024-byte boundary.
    using tile::alignUp;
    l.k = 0;
    l.v = alignUp(bn * s.headDim * eb);
    l.qBytes = alignUp(kBM * s.headDim * eb);
    l.dOBytes = alignUp(kBM * s.headDimV * eb);
    l.q = l.v + alignUp(bn * s.headDimV * eb);
    l.dO = l.q + 2 * l.qBytes;
    l.dS = l.dO + 2 * l.dOBytes;
    l.lse = l.dS + alignUp(bn * kBM * eb);
    l.dr = l.lse + 2 * kBM * 4;
    l.total = l.dr + 2 * kBM * 4 + tile::kSmemSlack;
    return l;
  }
  tile::SmemLayout m;
  // K / V / Q / dO: rows of D elements, XOR-swizzled (tile::swizzleCol)
  // on sm_90, padded on sm_80 (schedule.swizzle); dS^T / P^T (4-byte
  // stores from registers): padded rows.
  const int64_t tp = sch.swizzle ? 0 : kPad;
  l.k = m.add(bn * (s.headDim + tp) * eb);
  l.v = m.add(bn * (s.headDimV + tp) * eb);
  l.qBytes = kBM * (s.headDim + tp) * eb;
  l.dOBytes = kBM * (s.headDimV + tp) * eb;
  l.q = m.add(2 * l.qBytes);
  l.dO = m.add(2 * l.dOBytes);
  l.dS = m.add(bn * (kBM + kPad) * eb);
  if (sch.colSplit > 1)
    l.p = m.add(bn * (kBM + kPad) * eb);
  l.lse = m.add(2 * kBM * 4);
  l.dr = m.add(2 * kBM * 4);
  l.total = m.total;
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

namespace {
/// The lane values (LaneIds) plus kg: the warp's key group (= warp;
/// column split: w % 4), qw, qc: its dQ row group and column half.
struct Lanes : LaneIds {
  Value kg, qw, qc;
  Value cs; ///< column split: the warp's dK / dV column half (w / 4)
};
} // namespace

void kernels::buildMmaBackward(KernelBuilder &k, const KernelSchedule &sch) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t kBM = sch.blockM, kNW = sch.warps();
  const int64_t D = s.headDim, Dv = s.headDimV;
  const int64_t CS = sch.colSplit; // warps sharing a key group
  const int64_t KG = kNW / CS;    // key groups of 16
  const int64_t BN = 16 * KG;     // keys per block: 16 per key group
  // Queries per pass of S^T / dP^T; column split: the warp's half of the
  // tile in one pass (queries cs * QS..).
  const int64_t QS = CS > 1 ? kBM / CS : sch.passQueries;
  const int64_t NP = CS > 1 ? 1 : kBM / QS; // passes
  const int64_t ST = QS / 8;                // n8 tiles of S^T / dP^T (queries)
  const int64_t KW = D / CS;                // dK columns per warp
  const int64_t VW = Dv / CS;               // dV columns per warp
  const int64_t KT = KW / 8;                // n8 tiles of dK
  const int64_t VT = VW / 8;                // n8 tiles of dV
  const int64_t NK = BN / 16;               // k16 steps over the block's keys
  const int64_t QW = D / 2; // dQ columns per warp (4 row groups x 2)
  Type f32 = b.getF32Type();
  Type et = s.elementType;

  Value kb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value hk = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  auto lanesOf = [&](Value tid) {
    Lanes l;
    static_cast<LaneIds &>(l) = k.laneIds(tid);
    l.kg = CS > 1 ? k.rem(l.warp, KG) : l.warp;
    if (CS > 1)
      l.cs = k.div(l.warp, KG);
    l.qw = k.rem(l.warp, 4);
    l.qc = k.div(l.warp, 4);
    return l;
  };
  const Lanes top = lanesOf(gpu::ThreadIdOp::create(b, gpu::Dimension::x));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value heads = k.arg("heads");
  Value group = cg.divs(heads, k.arg("kv_heads"));
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1);
  Value k0 = cg.mul(kb, cg.idx(BN));
  Value kLast = cg.sub(cg.min(cg.add(k0, cg.idx(BN)), nk), c1);
  Value wl = s.masked ? k.arg("window_left") : Value();
  Value wr = s.masked ? k.arg("window_right") : Value();
  Value scale = k.arg("scale");
  Value scale2 = cg.fmul(scale, cg.f32(kLog2e));

  const BwdLayout L = layoutOf(s, sch);
  const int64_t tp = sch.swizzle ? 0 : kPad;
  // wgmma (sm_90a): the products read K / V / Q / dO / dS^T from shared
  // memory through matrix descriptors (WgmmaCodegen.h); tiles 128-byte
  // swizzled from a 1024-byte boundary.
  const bool wg = sch.engine == Engine::Wgmma;
  std::optional<wgmma::Descriptors> desc;
  std::optional<wgmma::WgmmaEmitter> wge;
  if (wg) {
    desc.emplace(b, tile::alignSmem(k));
    wge.emplace(wgmma::WgmmaEmitter{b, et.isF16() ? "f16" : "bf16"});
  }
  auto fenceAsync = [&] {
    if (wg) // generic-proxy smem writes -> visible to wgmma (async proxy)
      wge->emit("fence.proxy.async.shared::cta;");
  };
  auto tileShape = [&](int64_t rows, int64_t cols) -> SmallVector<int64_t> {
    if (wg)
      return {cols / 64, rows, 64};
    return {rows, cols + tp};
  };
  Value ks = k.smem(L.k, tileShape(BN, D));
  Value vs = k.smem(L.v, tileShape(BN, Dv));
  Value dss = k.smem(L.dS, {BN, wg ? kBM : kBM + kPad});
  Value pss = CS > 1 ? k.smem(L.p, {BN, kBM + kPad}) : Value();
  Value lseS = smemView(k, f32, cg.idx(L.lse), {2 * kBM});
  Value drS = smemView(k, f32, cg.idx(L.dr), {2 * kBM});
  // Q / dO buffer `buf` (0 or 1, run-time).
  auto qView = [&](Value buf) {
    return smemView(k, et, cg.add(cg.idx(L.q), cg.mul(buf, cg.idx(L.qBytes))),
                    tileShape(kBM, D));
  };
  auto dOView = [&](Value buf) {
    return smemView(k, et, cg.add(cg.idx(L.dO), cg.mul(buf, cg.idx(L.dOBytes))),
                    tileShape(kBM, Dv));
  };

  // The query rows that can see some key of the block (as the SIMT kernel),
  // in tiles of 64; the loop runs over (query head of the kv head, tile).
  Value qLo = c0, qHi = nq;
  if (s.masked)
    std::tie(qLo, qHi) = cg.visibleQueries(k0, kLast, off, nq, wl, wr);
  Value qtLo = cg.divs(qLo, cg.idx(kBM));
  Value qtHi = cg.max(qtLo, cg.ceilDiv(qHi, cg.idx(kBM)));
  Value nT = cg.sub(qtHi, qtLo);
  Value total = cg.mul(nT, group);
  // Iteration (hI, tI) = (query head hI of the kv head's group, tile tI of
  // qtLo..qtHi), carried by the loop (no division per iteration): query
  // head, first row, dr_ws / dqacc row base, lse base.
  struct Iter {
    Value h, q0, rowBase, rowBase16, lseBase;
  };
  Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
  // (hI, tI) are i32 (two registers instead of four next to the
  // accumulators).
  Type i32 = b.getI32Type();
  auto toIdx = [&](Value x) {
    return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult();
  };
  auto iterOf = [&](Value hI32, Value tI32) {
    Value hI = toIdx(hI32), tI = toIdx(tI32);
    Iter r;
    r.h = cg.add(cg.mul(hk, group), hI);
    r.q0 = cg.mul(cg.add(qtLo, tI), cg.idx(kBM));
    Value bh = cg.add(cg.mul(bi, heads), r.h);
    r.rowBase = cg.mul(bh, nq);
    r.rowBase16 = cg.mul(bh, nq16);
    r.lseBase = cg.add(cg.mul(bi, k.arg("lse_stride_b")),
                       cg.mul(r.h, k.arg("lse_stride_h")));
    return r;
  };
  // Q, dO, lse and dr of iteration `it` into buffer `buf` by cp.async (rows
  // >= Nq: clamped copies of row Nq - 1, masked out).
  auto stage = [&](Value hI, Value tI, Value buf, Value tid) {
    Iter r = iterOf(hI, tI);
    (void)copy::stageTileAsync(k, "q", bi, r.h, r.q0, nq, kBM, D, qView(buf), tid,
                           /*rowStep=*/true);
    (void)copy::stageTileAsync(k, "do", bi, r.h, r.q0, nq, kBM, Dv, dOView(buf), tid,
                           /*rowStep=*/true);
    auto first = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, tid, cg.idx(kBM)), false);
    {
      OpBuilder::InsertionGuard gi(b);
      b.setInsertionPoint(first.thenBlock()->getTerminator());
      Value qi = cg.min(cg.add(r.q0, tid), cg.sub(nq, c1));
      Value dst = cg.add(cg.mul(buf, cg.idx(kBM)), tid);
      nvgpu::DeviceAsyncCopyOp::create(b, lseS, ValueRange{dst}, k.arg("lse"),
                                       ValueRange{cg.add(r.lseBase, qi)},
                                       b.getIndexAttr(1), Value(), UnitAttr());
      nvgpu::DeviceAsyncCopyOp::create(b, drS, ValueRange{dst}, k.arg("dr_ws"),
                                       ValueRange{cg.add(r.rowBase, qi)},
                                       b.getIndexAttr(1), Value(), UnitAttr());
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), ValueRange{});
  };

  // Iteration 0's copies first (under the K / V staging).
  {
    auto any = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::sgt, total, c0), false);
    OpBuilder::InsertionGuard ga(b);
    b.setInsertionPoint(any.thenBlock()->getTerminator());
    (void)stage(k.i32(0), k.i32(0), c0, top.tid);
  }

  // K and V of the block (rows >= Nk are clamped copies of row Nk - 1: finite,
  // their P and dS are masked to 0 and their dK/dV never stored).
  copy::stageTile(k, "k", bi, hk, k0, nk, BN, D, ks, top.tid);
  copy::stageTile(k, "v", bi, hk, k0, nk, BN, Dv, vs, top.tid);
  fenceAsync();
  gpu::BarrierOp::create(b);

  // A fragments of a warp's 16 keys (rows 16 kg + lane % 16, k16 step kk):
  // ldmatrix x4 matrices 0..3 = (rows 0-7, cols 0-7) a0, (rows 8-15, cols
  // 0-7) a1, (rows 0-7, cols 8-15) a2, (rows 8-15, cols 8-15) a3.
  auto aFrag = [&](const Lanes &l, Value mem, int64_t kk) {
    Value aRow = cg.add(cg.mul(l.kg, cg.idx(16)), k.rem(l.lane, 16));
    return mma::ldmatrix(k, mem, aRow,
                      cg.add(cg.idx(16 * kk), cg.mul(l.l16, cg.idx(8))), false);
  };
  SmallVector<SmallVector<Value>> kf, vf;
  const bool resident = sch.residentKV;
  if (resident) {
    for (int64_t kk = 0; kk < D / 16; ++kk)
      kf.push_back(aFrag(top, ks, kk));
    for (int64_t kk = 0; kk < Dv / 16; ++kk)
      vf.push_back(aFrag(top, vs, kk));
  }

  // The two keys of this lane in the S^T / dK / dV fragments.
  auto keyRowOf = [&](const Lanes &l, int64_t r) {
    return cg.add(cg.add(k0, cg.mul(l.kg, cg.idx(16))),
                  cg.add(l.g, cg.idx(8 * r)));
  };

  // Loop state: dK [KT][4] then dV [VT][4] (f32, unscaled), then (hI, tI).
  SmallVector<Value> init((KT + VT) * 4, cg.f32(0.0));
  init.push_back(k.i32(0));
  init.push_back(k.i32(0));
  auto loop = scf::ForOp::create(b, c0, total, c1, init);
  {
    OpBuilder::InsertionGuard guardT(b);
    b.setInsertionPointToStart(loop.getBody());
    Value it = loop.getInductionVar();
    const Lanes ln = lanesOf(opaqueIndex(b, top.tid));
    // wgmma descriptors from an opaque copy of the base: recomputed in the
    // loop, not held across it next to dK / dV (they spilled).
    std::optional<wgmma::Descriptors> ld;
    if (wg)
      ld.emplace(desc->opaqueCopy());
    Value tid = ln.tid, g = ln.g, t = ln.t, l8 = ln.l8, l8b = ln.l8b,
          l16 = ln.l16;
    Value keyRow[2] = {keyRowOf(ln, 0), keyRowOf(ln, 1)};
    ValueRange st = loop.getRegionIterArgs();
    SmallVector<Value> dk(st.begin(), st.begin() + KT * 4);
    SmallVector<Value> dv(st.begin() + KT * 4, st.begin() + (KT + VT) * 4);
    Value hI = st[(KT + VT) * 4], tI = st[(KT + VT) * 4 + 1];
    Iter cur = iterOf(hI, tI);
    Value q0 = cur.q0;
    Value buf = arith::AndIOp::create(b, it, c1); // it % 2
    // The next iteration's (hI, tI).
    Value tNext = cg.add(tI, k.i32(1));
    Value wrap = cg.cmp(arith::CmpIPredicate::sge, tNext,
                        arith::IndexCastOp::create(b, i32, nT));
    Value hNext = cg.select(wrap, cg.add(hI, k.i32(1)), hI);
    tNext = cg.select(wrap, k.i32(0), tNext);
    Value qs = qView(buf), dos = dOView(buf);
    Value rowOff = cg.mul(buf, cg.idx(kBM)); // into lseS / drS

    // ---- This iteration's copies landed (the only group in flight) and are
    // visible; every warp is done with iteration it - 1, so the other buffer
    // takes iteration it + 1 under this one's math.
    copy::waitGroups(k, 
        nvgpu::DeviceAsyncCreateGroupOp::create(
            b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), ValueRange{}),
        0);
    fenceAsync();
    gpu::BarrierOp::create(b);
    {
      Value nxt = cg.add(it, c1);
      auto more = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, nxt, total), false);
      OpBuilder::InsertionGuard gm(b);
      b.setInsertionPoint(more.thenBlock()->getTerminator());
      (void)stage(hNext, tNext, cg.sub(c1, buf), tid);
    }

    // Element mask on tiles not entirely visible: keys >= Nk, queries >= Nq,
    // window / causal (bottom-right aligned, diag = query + Nk - Nq).
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

    // The tile's queries in passes of QS: S^T, dP^T, dS^T of the warp's 16
    // keys x queries qb .. qb + QS - 1, then their share of dV and dK.
    for (int64_t pass = 0; pass < NP; ++pass) {
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
      SmallVector<Value> pv;
      for (int64_t j = 0; j < ST; ++j)
        for (int64_t i = 0; i < 4; ++i) {
          Value lse = memref::LoadOp::create(
              b, lseS, ValueRange{cg.add(rowOff, qCol(j, i % 2))});
          Value negL = cg.fmul(lse, cg.f32(-kLog2e));
          pv.push_back(
              cg.exp2(LLVM::FMAOp::create(b, sAcc[j][i], scale2, negL)));
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
          dsv[j * 4 + i] = cg.fmul(pv[j * 4 + i], dpAcc[j][i]);
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
        continue;
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
        continue;
      }
      accumulate(dv, Dv, dos, pA);
      accumulate(dk, D, qs, dsA);
    } // pass

    if (!s.deterministic) {
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
      Value dqBase = cg.add(
          cg.mul(cg.add(cur.rowBase16, cg.add(q0, cg.mul(ln.qw, cg.idx(16)))),
                 cg.idx(D)),
          cg.add(cg.mul(ln.qc, cg.idx(QW / 8 * 128)), ln.lane));
      if (wg) {
        // wgmma: warpgroup qc computes dQ[64 queries][QW columns from qc QW]
        // = dS K over the block's keys in one group of m64nQWk16: A = dS
        // read M-major from dS^T [BN][64] (transposed by the descriptor), B
        // = K rows 16 kk.., columns qc QW.., N-major. Its fragment (warp qw =
        // w % 4: rows 16 qw + g + 8 r, n8 tile n) is the mma.sync one.
        Value colOff = cg.add(
            cg.mul(k.div(dqCol, 64), cg.idx(BN * 128)),
            cg.mul(k.rem(dqCol, 64), cg.idx(2)));
        SmallVector<Value> dsA2, kB;
        for (int64_t kk = 0; kk < NK; ++kk) {
          dsA2.push_back(ld->plus(ld->mnMajor(BN * 128),
                                    cg.idx(L.dS + kk * 16 * 128)));
          kB.push_back(ld->plus(
              ld->mnMajor(BN * 128),
              cg.add(colOff, cg.idx(L.k + kk * 16 * 128))));
        }
        wgmma::WgmmaEmitter::Group gr{QW, {}, dsA2, {}, kB, /*transB=*/true};
        gr.transA = true;
        SmallVector<Value> acc = wge->issue({gr});
        acc = wge->wait(0, acc);
        for (int64_t r = 0; r < 2; ++r) {
          auto ok = scf::IfOp::create(b, qOk[r], false);
          OpBuilder::InsertionGuard ga(b);
          b.setInsertionPoint(ok.thenBlock()->getTerminator());
          for (int64_t n = 0; n < QW / 8; ++n)
            for (int64_t e = 0; e < 2; ++e)
              memref::AtomicRMWOp::create(
                  b, arith::AtomicRMWKind::addf, acc[n * 4 + 2 * r + e],
                  k.arg("dqacc_ws"),
                  ValueRange{cg.add(dqBase, cg.idx(128 * n + 32 * (2 * r + e)))});
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
          for (int64_t half = 0; half < 2; ++half)
            for (int64_t e = 0; e < 2; ++e) {
              int64_t at = 128 * (2 * pn + half) + 32 * (2 * r + e);
              memref::AtomicRMWOp::create(
                  b, arith::AtomicRMWKind::addf, acc[half][2 * r + e],
                  k.arg("dqacc_ws"),
                  ValueRange{cg.add(dqBase, cg.idx(at))});
            }
        }
      }

    } // !deterministic

    SmallVector<Value> yield(dk);
    yield.append(dv);
    yield.push_back(hNext);
    yield.push_back(tNext);
    scf::YieldOp::create(b, yield);
  }

  // Epilogue: dK * scale and dV of this lane's keys (< Nk).
  ValueRange res = loop.getResults();
  Value t = top.t;
  for (int64_t r = 0; r < 2; ++r) {
    Value keyRow = keyRowOf(top, r);
    auto ok = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, keyRow, nk), false);
    OpBuilder::InsertionGuard ge(b);
    b.setInsertionPoint(ok.thenBlock()->getTerminator());
    for (int64_t n = 0; n < KT; ++n)
      for (int64_t e = 0; e < 2; ++e) {
        Value col = cg.add(cg.idx(8 * n + e), cg.mul(t, cg.idx(2)));
        if (CS > 1)
          col = cg.add(cg.mul(top.cs, cg.idx(KW)), col);
        Value x = arith::TruncFOp::create(
            b, et, cg.fmul(res[n * 4 + 2 * r + e], scale));
        memref::StoreOp::create(b, x, k.arg("dk"),
                                ValueRange{k.at4("dk", bi, hk, keyRow, col)});
      }
    for (int64_t n = 0; n < VT; ++n)
      for (int64_t e = 0; e < 2; ++e) {
        Value col = cg.add(cg.idx(8 * n + e), cg.mul(t, cg.idx(2)));
        if (CS > 1)
          col = cg.add(cg.mul(top.cs, cg.idx(VW)), col);
        Value x = arith::TruncFOp::create(b, et, res[(KT + n) * 4 + 2 * r + e]);
        memref::StoreOp::create(b, x, k.arg("dv"),
                                ValueRange{k.at4("dv", bi, hk, keyRow, col)});
      }
  }
}
