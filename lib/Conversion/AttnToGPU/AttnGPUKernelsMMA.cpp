//===- AttnGPUKernelsMMA.cpp - tensor-core forward kernel -------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// FlashAttention-2 style forward with mma.sync m16n8k16 (f32 accumulate) for
// sm_80+. A block of 4 warps owns 64 query rows (16 per warp); keys come in
// tiles of 64.
//
//  * Q is staged once through shared memory (16-byte loads) and kept in
//    registers as m16k16 A fragments (nvgpu.ldmatrix).
//  * K and V tiles are staged row-major in shared memory with rows padded by
//    16 bytes (conflict-free ldmatrix); K feeds the B operand of S = Q K^T via
//    ldmatrix, V feeds the B operand of O += P V via ldmatrix.trans.
//  * Staging (mmaAsyncCopy, the default): cp.async 16-byte copies, one commit
//    group per tile, one K and one V buffer as in FlashAttention-2: V_j loads
//    under S_j = Q K_j^T, K_{j+1} under the softmax and P V_j. Otherwise
//    synchronous 16-byte loads of both tiles between two barriers.
//  * Online softmax on the accumulator fragments: a lane holds two rows
//    (g = lane/4 and g + 8) and two columns of each n8 tile; row max over the
//    quad by shuffles xor 1 and 2; exp2 with scale*log2(e) folded in
//    (ex2.approx); the row sum stays per lane until the end.
//  * P goes from the f32 S accumulators of two adjacent n8 tiles straight to
//    the m16k16 A operand of P V (same register layout), never through shared
//    memory.
//  * Masks: only key blocks some row of the block can see are visited; the
//    element mask (window / causal, bottom-right aligned, and keys >= Nk) is
//    applied only to blocks not entirely visible.
//  * f16 uses nvgpu.mma.sync; bf16 uses nvvm.mma.sync with bf16 operand types
//    (nvgpu.mma.sync cannot lower bf16 on MLIR 22).
//
//===----------------------------------------------------------------------===//

#include "AttnGPUKernelsMMA.h"

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMTypes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;
static constexpr double kLn2 = 0.6931471805599453;
static constexpr int64_t kWarp = 32;
static constexpr int64_t kPad = 8; // elements of padding per smem row

bool mma::supportsForward(const GpuKernelSpec &s) {
  if (!s.elementType || !(s.elementType.isF16() || s.elementType.isBF16()))
    return false;
  if (s.softcap)
    return false;
  // The code handles any D, Dv that are multiples of 16 up to 128; only the
  // head dims verified on an H100 (test/GPU/attn-mma-check.py) are enabled.
  return s.headDim == s.headDimV && (s.headDim == 64 || s.headDim == 128);
}

static int64_t rowD(const GpuKernelSpec &s) { return s.headDim + kPad; }
static int64_t rowDv(const GpuKernelSpec &s) { return s.headDimV + kPad; }
static int64_t align16(int64_t x) { return (x + 15) / 16 * 16; }

/// Q (only before the key loop) shares the bytes of the K tile.
static int64_t kOffset(const GpuKernelSpec &) { return 0; }
static int64_t vOffset(const GpuKernelSpec &s) {
  int64_t qBytes = mma::kBlockM * rowD(s) * 2;
  int64_t kBytes = mma::kBlockN * rowD(s) * 2;
  return align16(std::max(qBytes, kBytes));
}

int64_t mma::forwardSharedMemory(const GpuKernelSpec &s) {
  return align16(vOffset(s) + kBlockN * rowDv(s) * 2);
}

namespace {
/// Register fragments are kept as scalars; these helpers pack them for the
/// mma ops.
struct Gen {
  Gen(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func, const GpuKernelInfo &info,
      const GpuKernelSpec &spec)
      : b(b), cg(b), spec(spec), et(spec.elementType) {
    cg.nvptxApprox = true;
    for (auto [i, a] : llvm::enumerate(info.args))
      args[a.name] = func.getArgument(i);
  }

  Value arg(StringRef n) {
    auto it = args.find(n);
    assert(it != args.end() && "kernel argument not in the ABI");
    return it->second;
  }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }
  Value rem(Value a, int64_t c) {
    return arith::RemSIOp::create(b, a, cg.idx(c));
  }
  Value div(Value a, int64_t c) { return cg.divs(a, cg.idx(c)); }

  Attribute workgroup() {
    return gpu::AddressSpaceAttr::get(b.getContext(),
                                      gpu::AddressSpace::Workgroup);
  }
  Value smem(int64_t offset, ArrayRef<int64_t> shape) {
    if (!dynBase) {
      auto i8 = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                MemRefLayoutAttrInterface(), workgroup());
      dynBase = gpu::DynamicSharedMemoryOp::create(b, i8);
    }
    auto t = MemRefType::get(shape, et, MemRefLayoutAttrInterface(),
                             workgroup());
    return memref::ViewOp::create(b, t, dynBase, cg.idx(offset), ValueRange{});
  }

  Value at4(StringRef t, Value bi, Value h, Value n, Value d) {
    Value i = cg.add(cg.mul(bi, arg((t + "_stride_b").str())),
                     cg.mul(h, arg((t + "_stride_h").str())));
    i = cg.add(i, cg.mul(n, arg((t + "_stride_n").str())));
    return cg.add(i, d);
  }

  /// Copies `rows` x `cols` of buffer `t` from row `row0` (rows clamped to
  /// `limit - 1`) into smem tile `dst` with 16-byte vectors; unrolled over
  /// the 128 threads.
  void stageTile(StringRef t, Value bi, Value h, Value row0, Value limit,
                 int64_t rows, int64_t cols, Value dst, Value tid) {
    int64_t perRow = cols / 8;
    int64_t total = rows * perRow;
    int64_t threads = mma::kWarps * kWarp;
    auto vt = VectorType::get({8}, et);
    Value last = cg.sub(limit, cg.idx(1));
    for (int64_t it = 0; it < (total + threads - 1) / threads; ++it) {
      Value i = cg.add(tid, cg.idx(it * threads));
      Value r = div(i, perRow);
      Value c = cg.mul(rem(i, perRow), cg.idx(8));
      auto body = [&] {
        Value n = cg.min(cg.add(row0, r), last);
        auto ld = vector::LoadOp::create(b, vt, arg(t),
                                         ValueRange{at4(t, bi, h, n, c)});
        ld.setAlignment(16);
        auto st = vector::StoreOp::create(b, ld, dst, ValueRange{r, c});
        st.setAlignment(16);
      };
      if ((it + 1) * threads <= total) {
        body();
      } else {
        auto inRange = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)), false);
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPoint(inRange.thenBlock()->getTerminator());
        body();
      }
    }
  }

  /// Same as stageTile with cp.async (16 bytes, L1 bypassed) and the tile's
  /// copies committed as one group; returns the group token. Every copy is
  /// unconditional (64 rows x cols/8 vectors is a multiple of 128 threads).
  Value stageTileAsync(StringRef t, Value bi, Value h, Value row0, Value limit,
                       int64_t rows, int64_t cols, Value dst, Value tid) {
    int64_t perRow = cols / 8;
    int64_t total = rows * perRow;
    int64_t threads = mma::kWarps * kWarp;
    assert(total % threads == 0 && "partial async tile");
    Value last = cg.sub(limit, cg.idx(1));
    SmallVector<Value> tokens;
    for (int64_t it = 0; it < total / threads; ++it) {
      Value i = cg.add(tid, cg.idx(it * threads));
      Value r = div(i, perRow);
      Value c = cg.mul(rem(i, perRow), cg.idx(8));
      Value n = cg.min(cg.add(row0, r), last);
      tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
          b, dst, ValueRange{r, c}, arg(t), ValueRange{at4(t, bi, h, n, c)},
          b.getIndexAttr(8), Value(), b.getUnitAttr()));
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), tokens);
  }
  void waitGroups(Value token, int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, token, b.getI32IntegerAttr(pending));
  }

  /// ldmatrix x4; returns the four 2-element rows as 16-bit pairs.
  SmallVector<Value> ldmatrix(Value mem, Value row, Value col, bool trans) {
    auto vt = VectorType::get({4, 2}, et);
    Value v = nvgpu::LdMatrixOp::create(b, vt, mem, ValueRange{row, col},
                                        trans, 4);
    SmallVector<Value> out;
    for (int64_t i = 0; i < 4; ++i)
      out.push_back(vector::ExtractOp::create(b, v, ArrayRef<int64_t>{i}));
    return out;
  }

  /// A 2-element vector of the element type from two f32 scalars.
  Value pack(Value x, Value y) {
    x = arith::TruncFOp::create(b, et, x);
    y = arith::TruncFOp::create(b, et, y);
    return vector::FromElementsOp::create(b, VectorType::get({2}, et),
                                          ValueRange{x, y});
  }

  /// D = A B + C on one m16n8k16 tile: `a` 4 pairs, `bf` 2 pairs, `c` 4 f32.
  SmallVector<Value> mma(ArrayRef<Value> a, ArrayRef<Value> bf,
                         ArrayRef<Value> c) {
    Type f32 = b.getF32Type();
    SmallVector<Value> out;
    if (et.isF16()) {
      auto stack = [&](ArrayRef<Value> rows, Type elt) {
        auto vt = VectorType::get({int64_t(rows.size()), 2}, elt);
        Value v = arith::ConstantOp::create(
            b, vt, DenseElementsAttr::get(vt, b.getZeroAttr(elt)));
        for (auto [i, r] : llvm::enumerate(rows))
          v = vector::InsertOp::create(b, r, v, ArrayRef<int64_t>{int64_t(i)});
        return v;
      };
      Value c0 = vector::FromElementsOp::create(
          b, VectorType::get({2}, f32), ValueRange{c[0], c[1]});
      Value c1 = vector::FromElementsOp::create(
          b, VectorType::get({2}, f32), ValueRange{c[2], c[3]});
      Value d = nvgpu::MmaSyncOp::create(b, stack(a, et), stack(bf, et),
                                         stack({c0, c1}, f32),
                                         ArrayRef<int64_t>{16, 8, 16});
      for (int64_t r = 0; r < 2; ++r) {
        Value row = vector::ExtractOp::create(b, d, ArrayRef<int64_t>{r});
        for (int64_t e = 0; e < 2; ++e)
          out.push_back(
              vector::ExtractOp::create(b, row, ArrayRef<int64_t>{e}));
      }
      return out;
    }
    // bf16: nvvm.mma.sync on i32 registers.
    auto asI32 = [&](Value pair) {
      Value v = vector::BitCastOp::create(
          b, VectorType::get({1}, b.getI32Type()), pair);
      return vector::ExtractOp::create(b, v, ArrayRef<int64_t>{0}).getResult();
    };
    SmallVector<Value> ai, bi;
    for (Value x : a)
      ai.push_back(asI32(x));
    for (Value x : bf)
      bi.push_back(asI32(x));
    auto st = LLVM::LLVMStructType::getLiteral(b.getContext(),
                                               {f32, f32, f32, f32});
    Value d = NVVM::MmaOp::create(
        b, st, ai, bi, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
        std::nullopt,
        std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                      NVVM::MMATypes::bf16},
        std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                       NVVM::MMALayout::col});
    for (int64_t i = 0; i < 4; ++i)
      out.push_back(LLVM::ExtractValueOp::create(b, d, ArrayRef<int64_t>{i}));
    return out;
  }

  Value quadReduce(Value x, bool isMax) {
    for (int64_t off : {1, 2}) {
      Value y = gpu::ShuffleOp::create(b, x, i32(off), i32(kWarp),
                                       gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      x = isMax ? cg.fmax(x, y) : cg.fadd(x, y);
    }
    return x;
  }

  ImplicitLocOpBuilder &b;
  Codegen cg;
  const GpuKernelSpec &spec;
  Type et;
  llvm::StringMap<Value> args;
  Value dynBase;
};
} // namespace

void mma::buildForwardBody(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                           const GpuKernelInfo &info,
                           const GpuKernelSpec &s) {
  Gen k(b, func, info, s);
  Codegen &cg = k.cg;
  const int64_t D = s.headDim, Dv = s.headDimV;
  const int64_t NT = kBlockN / 8;  // n8 tiles of S
  const int64_t OT = Dv / 8;       // n8 tiles of O
  Type f32 = b.getF32Type();

  Value qb = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value warp = k.div(tid, kWarp);
  Value lane = k.rem(tid, kWarp);
  Value g = k.div(lane, 4), t = k.rem(lane, 4);
  Value l8 = k.rem(lane, 8), l8b = k.rem(k.div(lane, 8), 2),
        l16 = k.div(lane, 16);
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value q0 = cg.mul(qb, cg.idx(kBlockM));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kBlockM)), nq), c1);
  Value wl = s.masked ? k.arg("window_left") : Value();
  Value wr = s.masked ? k.arg("window_right") : Value();

  Value qs = k.smem(0, {kBlockM, rowD(s)});
  Value ks = k.smem(kOffset(s), {kBlockN, rowD(s)});
  Value vs = k.smem(vOffset(s), {kBlockN, rowDv(s)});

  // Q tile -> shared memory -> A fragments (rows 16 warp + lane % 16).
  k.stageTile("q", bi, h, q0, nq, kBlockM, D, qs, tid);
  gpu::BarrierOp::create(b);
  SmallVector<SmallVector<Value>> qf;
  {
    Value row = cg.add(cg.mul(warp, cg.idx(16)), k.rem(lane, 16));
    for (int64_t kk = 0; kk < D / 16; ++kk)
      qf.push_back(k.ldmatrix(
          qs, row, cg.add(cg.idx(kk * 16), cg.mul(l16, cg.idx(8))), false));
  }

  // Visible key blocks of the whole query block.
  Value kLo = c0, kHi = nk;
  if (s.masked) {
    kLo = cg.select(cg.cmp(arith::CmpIPredicate::slt, wl, c0), c0,
                    cg.max(c0, cg.sub(cg.add(q0, off), wl)));
    kHi = cg.select(cg.cmp(arith::CmpIPredicate::slt, wr, c0), nk,
                    cg.min(nk, cg.add(cg.add(qLast, off), cg.add(wr, c1))));
  }
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  // The two rows of this lane.
  Value qRow[2];
  for (int64_t r = 0; r < 2; ++r)
    qRow[r] = cg.add(cg.add(q0, cg.mul(warp, cg.idx(16))),
                     cg.add(g, cg.idx(8 * r)));
  Value scale2 = cg.fmul(k.arg("scale"), cg.f32(kLog2e));

  // Async path: K of the first visible block is in flight before the loop
  // (Q's bytes are free once its fragments are in registers).
  const bool async = s.mmaAsyncCopy;
  Value kbLast = cg.sub(kbHi, c1);
  if (async) {
    gpu::BarrierOp::create(b);
    auto hasKeys = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, kbLo, kbHi), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(hasKeys.thenBlock()->getTerminator());
    k.stageTileAsync("k", bi, hk, cg.mul(kbLo, bn), nk, kBlockN, D, ks, tid);
  }

  // Loop state: m[2], l[2] (per-lane partial sums), O[OT][4].
  SmallVector<Value> init = {cg.negInf(), cg.negInf(), cg.f32(0.0),
                             cg.f32(0.0)};
  for (int64_t i = 0; i < OT * 4; ++i)
    init.push_back(cg.f32(0.0));
  auto loop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value k0 = cg.mul(loop.getInductionVar(), bn);
    ValueRange st = loop.getRegionIterArgs();
    Value m[2] = {st[0], st[1]}, l[2] = {st[2], st[3]};
    SmallVector<Value> o(st.begin() + 4, st.end());

    Value vTok;
    if (async) {
      // Pending: K_j. Issue V_j (V is free: the previous iteration ended
      // with a barrier), wait for K_j.
      vTok = k.stageTileAsync("v", bi, hk, k0, nk, kBlockN, Dv, vs, tid);
      k.waitGroups(vTok, 1);
      gpu::BarrierOp::create(b);
    } else {
      gpu::BarrierOp::create(b); // Q / previous tiles no longer read
      k.stageTile("k", bi, hk, k0, nk, kBlockN, D, ks, tid);
      k.stageTile("v", bi, hk, k0, nk, kBlockN, Dv, vs, tid);
      gpu::BarrierOp::create(b);
    }

    // S = Q K^T: n8 tiles j, element (row r, col e) at sAcc[j][2r + e].
    SmallVector<SmallVector<Value>> sAcc(NT, SmallVector<Value>(4, cg.f32(0.0)));
    for (int64_t kk = 0; kk < D / 16; ++kk)
      for (int64_t p = 0; p < NT / 2; ++p) {
        Value row = cg.add(cg.idx(16 * p), cg.add(l8, cg.mul(l16, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * kk), cg.mul(l8b, cg.idx(8)));
        SmallVector<Value> bf = k.ldmatrix(ks, row, col, false);
        sAcc[2 * p] = k.mma(qf[kk], {bf[0], bf[1]}, sAcc[2 * p]);
        sAcc[2 * p + 1] = k.mma(qf[kk], {bf[2], bf[3]}, sAcc[2 * p + 1]);
      }
    if (async) {
      // K_j is consumed: prefetch K_{j+1} (the last iteration reloads its own
      // block, harmlessly) under the softmax and P V.
      gpu::BarrierOp::create(b);
      Value next = cg.mul(cg.min(cg.add(loop.getInductionVar(), c1), kbLast), bn);
      Value kTok = k.stageTileAsync("k", bi, hk, next, nk, kBlockN, D, ks, tid);
      k.waitGroups(kTok, 1); // V_j has landed (K_{j+1} may be pending)
    }
    SmallVector<Value> sv;
    for (int64_t j = 0; j < NT; ++j)
      for (int64_t e = 0; e < 4; ++e)
        sv.push_back(cg.fmul(sAcc[j][e], scale2));

    // Element mask on blocks not entirely visible to every row of the block.
    Value full = cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, bn), nk);
    if (s.masked) {
      Value qEnd = cg.add(q0, cg.idx(kBlockM - 1));
      Value leftOk = arith::OrIOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
          cg.cmp(arith::CmpIPredicate::sge, k0,
                 cg.sub(cg.add(qEnd, off), wl)));
      Value rightOk = arith::OrIOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
          cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(kBlockN - 1)),
                 cg.add(cg.add(q0, off), wr)));
      full = cg.andI(full, cg.andI(leftOk, rightOk));
    }
    SmallVector<Type> types(sv.size(), f32);
    auto maskIf = scf::IfOp::create(b, types, full, /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(maskIf.thenBlock());
      scf::YieldOp::create(b, sv);
      b.setInsertionPointToStart(maskIf.elseBlock());
      SmallVector<Value> masked;
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t e = 0; e < 2; ++e) {
            Value kj = cg.add(k0, cg.add(cg.idx(8 * j + e),
                                         cg.mul(t, cg.idx(2))));
            Value vis = cg.cmp(arith::CmpIPredicate::slt, kj, nk);
            if (s.masked) {
              Value diag = cg.add(qRow[r], off);
              Value lo = arith::OrIOp::create(
                  b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
                  cg.cmp(arith::CmpIPredicate::sge, kj, cg.sub(diag, wl)));
              Value hi = arith::OrIOp::create(
                  b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
                  cg.cmp(arith::CmpIPredicate::sle, kj, cg.add(diag, wr)));
              vis = cg.andI(vis, cg.andI(lo, hi));
            }
            masked.push_back(
                cg.select(vis, sv[j * 4 + r * 2 + e], cg.negInf()));
          }
      scf::YieldOp::create(b, masked);
    }
    sv.assign(maskIf.getResults().begin(), maskIf.getResults().end());

    // Online softmax per row.
    Value alpha[2], newM[2], newL[2];
    SmallVector<Value> p(sv.size());
    for (int64_t r = 0; r < 2; ++r) {
      Value mx = sv[r * 2];
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t e = 0; e < 2; ++e)
          if (j || e)
            mx = cg.fmax(mx, sv[j * 4 + r * 2 + e]);
      mx = k.quadReduce(mx, /*isMax=*/true);
      newM[r] = cg.fmax(m[r], mx);
      Value mUse =
          cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, newM[r], cg.negInf()),
                    cg.f32(0.0), newM[r]);
      alpha[r] = cg.exp2(cg.fsub(m[r], mUse));
      Value sum = cg.f32(0.0);
      for (int64_t j = 0; j < NT; ++j)
        for (int64_t e = 0; e < 2; ++e) {
          int64_t i = j * 4 + r * 2 + e;
          p[i] = cg.exp2(cg.fsub(sv[i], mUse));
          sum = cg.fadd(sum, p[i]);
        }
      newL[r] = cg.fadd(cg.fmul(l[r], alpha[r]), sum);
    }

    // O = alpha O + P V.
    if (async)
      gpu::BarrierOp::create(b); // every thread's V_j copies are visible
    for (int64_t n = 0; n < OT; ++n)
      for (int64_t e = 0; e < 4; ++e)
        o[n * 4 + e] = cg.fmul(o[n * 4 + e], alpha[e / 2]);
    for (int64_t kk = 0; kk < kBlockN / 16; ++kk) {
      // A fragment of keys 16kk..16kk+15 = S tiles 2kk and 2kk+1.
      const Value *p0 = &p[(2 * kk) * 4], *p1 = &p[(2 * kk + 1) * 4];
      SmallVector<Value> a = {k.pack(p0[0], p0[1]), k.pack(p0[2], p0[3]),
                              k.pack(p1[0], p1[1]), k.pack(p1[2], p1[3])};
      for (int64_t pn = 0; pn < OT / 2; ++pn) {
        Value row = cg.add(cg.idx(16 * kk), cg.add(l8, cg.mul(l8b, cg.idx(8))));
        Value col = cg.add(cg.idx(16 * pn), cg.mul(l16, cg.idx(8)));
        SmallVector<Value> bf = k.ldmatrix(vs, row, col, true);
        for (int64_t half = 0; half < 2; ++half) {
          int64_t n = 2 * pn + half;
          SmallVector<Value> c(o.begin() + n * 4, o.begin() + n * 4 + 4);
          SmallVector<Value> d =
              k.mma(a, {bf[2 * half], bf[2 * half + 1]}, c);
          std::copy(d.begin(), d.end(), o.begin() + n * 4);
        }
      }
    }
    if (async)
      gpu::BarrierOp::create(b); // V_j no longer read
    SmallVector<Value> yield = {newM[0], newM[1], newL[0], newL[1]};
    yield.append(o);
    scf::YieldOp::create(b, yield);
  }

  if (async)
    NVVM::CpAsyncWaitGroupOp::create(b, 0); // the redundant last K prefetch

  // Epilogue: O = acc / l, lse = (m + log2 l) ln 2; empty rows 0 / -inf.
  ValueRange res = loop.getResults();
  for (int64_t r = 0; r < 2; ++r) {
    Value m = res[r];
    Value l = k.quadReduce(res[2 + r], /*isMax=*/false);
    Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
    Value inv = cg.select(any, cg.fdiv(cg.f32(1.0), l), cg.f32(0.0));
    auto inRange = scf::IfOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, qRow[r], nq), false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    for (int64_t n = 0; n < OT; ++n)
      for (int64_t e = 0; e < 2; ++e) {
        Value col = cg.add(cg.idx(8 * n + e), cg.mul(t, cg.idx(2)));
        Value v = cg.fmul(res[4 + n * 4 + r * 2 + e], inv);
        v = arith::TruncFOp::create(b, s.elementType, v);
        memref::StoreOp::create(b, v, k.arg("o"),
                                ValueRange{k.at4("o", bi, h, qRow[r], col)});
      }
    auto t0 = scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, t, c0),
                                false);
    b.setInsertionPoint(t0.thenBlock()->getTerminator());
    Value lse = cg.select(any, cg.fmul(cg.fadd(m, cg.log2(l)), cg.f32(kLn2)),
                          cg.negInf());
    Value idx = cg.add(cg.add(cg.mul(bi, k.arg("lse_stride_b")),
                              cg.mul(h, k.arg("lse_stride_h"))),
                       qRow[r]);
    memref::StoreOp::create(b, lse, k.arg("lse"), ValueRange{idx});
  }
}
