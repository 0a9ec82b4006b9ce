//===- MmaCodegen.h - register-fragment helpers for mma.sync ----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the IR-building helpers shared by the tensor-core
// kernels (AttnGPUKernelsMMA*.cpp): ABI argument lookup, dynamic shared-memory
// views, 16-byte tile staging (synchronous or cp.async), ldmatrix, m16n8k16
// mma.sync on f32 accumulators (f16 via nvgpu, bf16 via nvvm) and quad
// reductions. Fragments are kept as scalars (f32) or 2-element vectors.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_MMACODEGEN_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_MMACODEGEN_H

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"
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
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/StringMap.h"

#include <functional>

namespace mlir {
namespace attn {
namespace mma {

inline constexpr int64_t kWarp = 32;

/// `x` through a side-effecting `mov`: LLVM can neither hoist it nor what is
/// computed from it out of the loop it is emitted in. A tile loop re-derives
/// its lane-dependent shared-memory addresses from such a copy of the thread
/// id; otherwise LICM hoists ~100 loop-invariant 64-bit ldmatrix/staging
/// addresses out of the loop (ldmatrix is an intrinsic: no address sinking)
/// and they stay live next to the dK/dV accumulators (spills). The copy is
/// 32-bit and zero-extended (`x` must fit in i32; it is a thread id), so
/// LLVM still knows it is non-negative: divisions and remainders by
/// constants stay shifts and masks.
inline Value opaqueIndex(ImplicitLocOpBuilder &b, Value x) {
  Value i = arith::IndexCastOp::create(b, b.getI32Type(), x);
  auto mov = LLVM::InlineAsmOp::create(
      b, b.getI32Type(), ValueRange{i}, "mov.b32 $0, $1;", "=r,r",
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
      ArrayAttr());
  return arith::IndexCastUIOp::create(b, b.getIndexType(), mov.getResult(0));
}


/// Whether the kernels of `s` store their cp.async-staged tiles XOR-swizzled
/// (MmaGen::swizzleCol) instead of in padded rows: sm_90, where it was
/// measured (docs/tensor-cores.md, v10); sm_80 code keeps padded rows (the
/// swizzled addresses cost it spills, up to 384 bytes, and no sm_80 GPU was
/// at hand to weigh that).
inline bool swizzleTiles(const GpuKernelSpec &s) { return s.smVersion >= 90; }

/// Elements of padding per row of a Q / K / V / dO tile: 0 when swizzled.
inline int64_t tilePad(const GpuKernelSpec &s) {
  return swizzleTiles(s) ? 0 : 8;
}

/// Bytes rounded up to 16 (shared-memory tiles start 16-byte aligned).
inline int64_t align16(int64_t x) { return (x + 15) / 16 * 16; }

/// Lays out shared-memory regions one after another, each 16-byte aligned:
/// `add(bytes)` returns the region's byte offset, `total` the size so far.
struct SmemLayout {
  int64_t total = 0;
  int64_t add(int64_t bytes) {
    int64_t o = total;
    total = align16(total + bytes);
    return o;
  }
};

/// Thread-id derived values: lane = 4 g + t (the mma fragment coordinates);
/// l8 = lane % 8, l8b = lane / 8 % 2, l16 = lane / 16 select the ldmatrix
/// row address each lane supplies.
struct LaneIds {
  Value tid, warp, lane, g, t, l8, l8b, l16;
};

/// Register fragments are kept as scalars; these helpers pack them for the
/// mma ops.
struct MmaGen {
  MmaGen(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
         const GpuKernelInfo &info, const GpuKernelSpec &spec, int64_t threads)
      : b(b), cg(b), spec(spec), et(spec.elementType), threads(threads) {
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

  LaneIds laneIds(Value tid) {
    LaneIds l;
    l.tid = tid;
    l.warp = div(tid, kWarp);
    l.lane = rem(tid, kWarp);
    l.g = div(l.lane, 4);
    l.t = rem(l.lane, 4);
    l.l8 = rem(l.lane, 8);
    l.l8b = rem(div(l.lane, 8), 2);
    l.l16 = div(l.lane, 16);
    return l;
  }

  Attribute workgroup() {
    return gpu::AddressSpaceAttr::get(b.getContext(),
                                      gpu::AddressSpace::Workgroup);
  }
  Value smemBase() {
    if (!dynBase) {
      auto i8 = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                MemRefLayoutAttrInterface(), workgroup());
      dynBase = gpu::DynamicSharedMemoryOp::create(b, i8);
    }
    return dynBase;
  }
  Value smem(int64_t offset, ArrayRef<int64_t> shape) {
    smemBase();
    auto t = MemRefType::get(shape, et, MemRefLayoutAttrInterface(),
                             workgroup());
    Value at = cg.idx(offset);
    if (smemShift)
      at = cg.add(smemShift, at);
    return memref::ViewOp::create(b, t, dynBase, at, ValueRange{});
  }

  /// Shared-memory tiles whose rows are a multiple of 64 elements (128
  /// bytes: the Q / K / V / dO tiles, rows of D) are XOR-swizzled: 16-byte
  /// chunk c of row r lives at chunk c ^ (r % 8). A row then starts on a
  /// 128-byte boundary, so the 16-byte cp.async writes of 8 consecutive
  /// threads fill one aligned 128-byte segment (padded rows made them
  /// straddle two: 2.6x the ideal shared-memory wavefronts on the H100),
  /// and the 8 rows of an ldmatrix 8x8 matrix (rows 8i..8i+7, one logical
  /// chunk) hit 8 different chunks: no bank conflict. Padded tiles (rows of
  /// 64k + 8 elements: dS^T, P^T, the O tile) are stored as they are.
  static bool swizzled(Value mem) {
    auto t = cast<MemRefType>(mem.getType());
    return t.getRank() == 2 && t.getDimSize(1) % 64 == 0;
  }
  /// The indices of element (row, col) of a staged tile `mem`: a 2-D tile
  /// [rows][cols] (swizzled as above or padded), or a 3-D tile
  /// [cols / 64][rows][64] of 128-byte rows, the layout wgmma's 128-byte
  /// swizzle mode reads (AttnGPUKernelsWgmma.cpp): column block col / 64,
  /// then the same chunk swizzle within the 128-byte row. col is a
  /// multiple of 8 (one 16-byte chunk).
  SmallVector<Value> tileIndices(Value mem, Value row, Value col) {
    if (cast<MemRefType>(mem.getType()).getRank() == 2)
      return {row, swizzleCol(mem, row, col)};
    Value blk = arith::ShRUIOp::create(b, col, cg.idx(6));
    Value in = arith::AndIOp::create(b, col, cg.idx(63));
    Value s = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, row, cg.idx(7)), cg.idx(3));
    return {blk, row, arith::XOrIOp::create(b, in, s)};
  }
  /// The stored column of element (row, col) of tile `mem` (col a multiple
  /// of 2; the access stays inside its 16-byte chunk). The constant part C
  /// of col stays an address offset where it can: col = C + x is stored at
  /// (C & ~63) + (((C & 63) + x) ^ 8 (row % 8)).
  Value swizzleCol(Value mem, Value row, Value col) {
    if (!swizzled(mem))
      return col;
    std::function<std::pair<int64_t, Value>(Value)> split =
        [&](Value v) -> std::pair<int64_t, Value> {
      if (auto c = getConstantIntValue(v))
        return {*c, Value()};
      if (auto add = v.getDefiningOp<arith::AddIOp>()) {
        auto [c0, x0] = split(add.getLhs());
        auto [c1, x1] = split(add.getRhs());
        return {c0 + c1, x0 && x1 ? cg.add(x0, x1) : (x0 ? x0 : x1)};
      }
      return {0, v};
    };
    auto [c, x] = split(col);
    Value s = arith::ShLIOp::create(
        b, arith::AndIOp::create(b, row, cg.idx(7)), cg.idx(3));
    Value y = x ? (c & 63 ? cg.add(x, cg.idx(c & 63)) : x) : cg.idx(c & 63);
    Value r = arith::XOrIOp::create(b, y, s);
    return c & ~int64_t(63) ? cg.add(r, cg.idx(c & ~int64_t(63))) : r;
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
        auto st =
            vector::StoreOp::create(b, ld, dst, tileIndices(dst, r, c));
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

  /// The reverse of stageTile: rows of smem tile `src` go to buffer `t`
  /// from row `row0` with 16-byte vectors; rows at or past `limit` are not
  /// written.
  void storeTile(Value src, StringRef t, Value bi, Value h, Value row0,
                 Value limit, int64_t rows, int64_t cols, Value tid) {
    int64_t perRow = cols / 8;
    int64_t total = rows * perRow;
    auto vt = VectorType::get({8}, et);
    for (int64_t it = 0; it < (total + threads - 1) / threads; ++it) {
      Value i = cg.add(tid, cg.idx(it * threads));
      Value r = div(i, perRow);
      Value c = cg.mul(rem(i, perRow), cg.idx(8));
      Value n = cg.add(row0, r);
      Value ok = cg.cmp(arith::CmpIPredicate::slt, n, limit);
      if ((it + 1) * threads > total)
        ok = cg.andI(ok, cg.cmp(arith::CmpIPredicate::slt, i, cg.idx(total)));
      auto inRange = scf::IfOp::create(b, ok, false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(inRange.thenBlock()->getTerminator());
      auto ld = vector::LoadOp::create(b, vt, src, tileIndices(src, r, c));
      ld.setAlignment(16);
      auto st = vector::StoreOp::create(b, ld, arg(t),
                                        ValueRange{at4(t, bi, h, n, c)});
      st.setAlignment(16);
    }
  }

  /// Same as stageTile with cp.async (16 bytes, L1 bypassed) and the tile's
  /// copies committed as one group; returns the group token. Every copy is
  /// unconditional (rows x cols/8 vectors must be a multiple of the
  /// threads). A tile entirely below `limit` takes a path without the row
  /// clamp. Its addresses are, with `rowStep`, one element offset per tile
  /// plus multiples of a row stride (for a loop whose thread id is opaque:
  /// nothing lane-dependent can be hoisted, and a 64-bit row product per
  /// copy would be recomputed every iteration), otherwise a row product
  /// per copy (LLVM hoists its lane-dependent part out of the loop).
  Value stageTileAsync(StringRef t, Value bi, Value h, Value row0, Value limit,
                       int64_t rows, int64_t cols, Value dst, Value tid,
                       bool rowStep = false) {
    int64_t perRow = cols / 8;
    int64_t total = rows * perRow;
    assert(total % threads == 0 && threads % perRow == 0 &&
           "partial async tile");
    Value last = cg.sub(limit, cg.idx(1));
    // Copy `it` of a thread covers row r0 + it * step, columns c..c+7.
    const int64_t step = threads / perRow;
    Value r0 = div(tid, perRow);
    Value c = cg.mul(rem(tid, perRow), cg.idx(8));
    auto copies = [&](bool clamp) {
      const bool stepped = rowStep && !clamp;
      Value first = stepped ? at4(t, bi, h, cg.add(row0, r0), c) : Value();
      Value stride =
          stepped ? cg.mul(arg((t + "_stride_n").str()), cg.idx(step))
                  : Value();
      for (int64_t it = 0; it < total / threads; ++it) {
        Value r = cg.add(r0, cg.idx(it * step));
        Value n = cg.add(row0, r);
        Value src = stepped ? cg.add(first, cg.mul(stride, cg.idx(it)))
                            : at4(t, bi, h, clamp ? cg.min(n, last) : n, c);
        nvgpu::DeviceAsyncCopyOp::create(
            b, dst, tileIndices(dst, r, c), arg(t),
            ValueRange{src}, b.getIndexAttr(8), Value(), b.getUnitAttr());
      }
    };
    auto full = scf::IfOp::create(
        b,
        cg.cmp(arith::CmpIPredicate::sle, cg.add(row0, cg.idx(rows)), limit),
        /*withElse=*/true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(full.thenBlock()->getTerminator());
      copies(false);
      b.setInsertionPoint(full.elseBlock()->getTerminator());
      copies(true);
    }
    return nvgpu::DeviceAsyncCreateGroupOp::create(
        b, nvgpu::DeviceAsyncTokenType::get(b.getContext()), ValueRange{});
  }
  void waitGroups(Value token, int32_t pending) {
    nvgpu::DeviceAsyncWaitOp::create(b, token, b.getI32IntegerAttr(pending));
  }

  /// ldmatrix x4; returns the four 2-element rows as 16-bit pairs.
  SmallVector<Value> ldmatrix(Value mem, Value row, Value col, bool trans) {
    auto vt = VectorType::get({4, 2}, et);
    Value v = nvgpu::LdMatrixOp::create(
        b, vt, mem, ValueRange{row, swizzleCol(mem, row, col)}, trans, 4);
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

  /// Element mask of an S accumulator fragment row whose lane columns c =
  /// 8j + e (keys colBase + c, colBase = k0 + 2t) belong to query row
  /// `qRow`: the visible columns form [lo, hi] (i32, computed once per row
  /// and tile; lo is null without a causal / window mask), so each element
  /// costs two compares against constants and nothing loop-invariant per
  /// element is left for LLVM to hoist. lastCol = Nk - 1 - colBase (keys <
  /// Nk); off = Nk - Nq (bottom-right aligned), wl / wr the window (< 0:
  /// unbounded; null when unmasked).
  struct RowBounds {
    Value lo, hi;
  };
  RowBounds rowBounds(Value qRow, Value colBase, Value lastCol, Value off,
                      Value wl, Value wr) {
    Type i32 = b.getI32Type();
    auto toI32 = [&](Value x) {
      return arith::IndexCastOp::create(b, i32, x).getResult();
    };
    RowBounds r{Value(), toI32(lastCol)};
    if (!wl)
      return r;
    Value c0 = cg.idx(0);
    Value diag = cg.sub(cg.add(qRow, off), colBase);
    r.hi = toI32(cg.select(cg.cmp(arith::CmpIPredicate::slt, wr, c0), lastCol,
                           cg.min(lastCol, cg.add(diag, wr))));
    r.lo = toI32(cg.select(cg.cmp(arith::CmpIPredicate::slt, wl, c0),
                           cg.idx(-(int64_t(1) << 30)), cg.sub(diag, wl)));
    return r;
  }
  /// `x` (column c of a row with bounds `bd`) or, outside them, -inf
  /// (`negInf`: raw scores) or 0 (probabilities).
  Value maskElement(const RowBounds &bd, int64_t c, Value x, bool negInf) {
    Value ci = i32(c);
    Value vis = cg.cmp(arith::CmpIPredicate::sle, ci, bd.hi);
    if (bd.lo)
      vis = cg.andI(vis, cg.cmp(arith::CmpIPredicate::sge, ci, bd.lo));
    return cg.select(vis, x, negInf ? cg.negInf() : cg.f32(0.0));
  }

  /// Whether key tile [k0, k0 + N) is visible to every query row of block
  /// [q0, q0 + M): keys < Nk and, with a window (`wl` / `wr`; null when
  /// unmasked; < 0: unbounded), inside every row's window (bottom-right
  /// aligned, off = Nk - Nq). Such tiles skip the element mask.
  Value tileFullyVisible(Value k0, Value q0, int64_t M, int64_t N, Value nk,
                         Value off, Value wl, Value wr) {
    Value full = cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(N)), nk);
    if (!wl)
      return full;
    Value c0 = cg.idx(0);
    Value qEnd = cg.add(q0, cg.idx(M - 1));
    Value leftOk = arith::OrIOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
        cg.cmp(arith::CmpIPredicate::sge, k0, cg.sub(cg.add(qEnd, off), wl)));
    Value rightOk = arith::OrIOp::create(
        b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
        cg.cmp(arith::CmpIPredicate::sle, cg.add(k0, cg.idx(N - 1)),
               cg.add(cg.add(q0, off), wr)));
    return cg.andI(full, cg.andI(leftOk, rightOk));
  }

  /// One row of the forward's online softmax: `x` the row's raw scores in
  /// this lane (scores in log2 units are x * scale2, scale2 > 0), m / l the
  /// running max (log2 units) and per-lane sum. The max is reduced over the
  /// quad; P = exp2(x scale2 - m) is one FMA and ex2; a row that has seen
  /// no key keeps m = -inf and P = 0.
  struct SoftmaxRow {
    Value m, l, alpha;
    SmallVector<Value> p;
  };
  SoftmaxRow softmaxRow(ArrayRef<Value> x, Value m, Value l, Value scale2) {
    SoftmaxRow out;
    Value mx;
    for (Value v : x)
      mx = mx ? cg.fmax(mx, v) : v;
    mx = cg.fmul(quadReduce(mx, /*isMax=*/true), scale2);
    out.m = cg.fmax(m, mx);
    Value mUse =
        cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, out.m, cg.negInf()),
                  cg.f32(0.0), out.m);
    out.alpha = cg.exp2(cg.fsub(m, mUse));
    Value negM = arith::NegFOp::create(b, mUse);
    Value sum = cg.f32(0.0);
    for (Value v : x) {
      out.p.push_back(cg.exp2(LLVM::FMAOp::create(b, v, scale2, negM)));
      sum = cg.fadd(sum, out.p.back());
    }
    out.l = LLVM::FMAOp::create(b, l, out.alpha, sum);
    return out;
  }

  /// The forward's epilogue for one row of a warp's m16 tile (`row` in the
  /// block, query `qRow`): O = acc / l into the smem O tile `os` (4-byte
  /// stores of the lane's pairs; `acc` holds OT n8 tiles x 2, element (n,
  /// e) at acc[4 n + e]), lse = (m + log2 l) ln 2 to `lse` (quad lane t = 0,
  /// rows < Nq); a row without keys gets O = 0, lse = -inf.
  void storeForwardRow(Value m, Value lPart, ArrayRef<Value> acc, int64_t OT,
                       function_ref<Value()> rowOf, Value qRow, Value t,
                       Value os, Value bi, Value h, Value nq) {
    Value l = quadReduce(lPart, /*isMax=*/false);
    Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
    Value inv = cg.select(any, cg.fdiv(cg.f32(1.0), l), cg.f32(0.0));
    Value row = rowOf();
    for (int64_t n = 0; n < OT; ++n) {
      Value col = cg.add(cg.idx(8 * n), cg.mul(t, cg.idx(2)));
      Value pair = pack(cg.fmul(acc[4 * n], inv), cg.fmul(acc[4 * n + 1], inv));
      vector::StoreOp::create(b, pair, os, ValueRange{row, col})
          .setAlignment(4);
    }
    auto inRange = scf::IfOp::create(
        b,
        cg.andI(cg.cmp(arith::CmpIPredicate::slt, qRow, nq),
                cg.cmp(arith::CmpIPredicate::eq, t, cg.idx(0))),
        false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    Value lse = cg.select(any,
                          cg.fmul(cg.fadd(m, cg.log2(l)),
                                  cg.f32(0.6931471805599453)),
                          cg.negInf());
    Value idx = cg.add(
        cg.add(cg.mul(bi, arg("lse_stride_b")), cg.mul(h, arg("lse_stride_h"))),
        qRow);
    memref::StoreOp::create(b, lse, arg("lse"), ValueRange{idx});
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
  detail::Codegen cg;
  const GpuKernelSpec &spec;
  Type et;
  int64_t threads; ///< threads of the block (tile copies are spread over them)
  llvm::StringMap<Value> args;
  Value dynBase;
  /// Bytes added to every smem() offset (null: none): a kernel that needs a
  /// more aligned base than the dynamic shared memory's guaranteed 16 bytes
  /// sets it (AttnGPUKernelsWgmma.cpp).
  Value smemShift;
};

} // namespace mma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_MMACODEGEN_H
