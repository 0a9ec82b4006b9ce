//===- Simt.cpp - the SIMT kernels' geometry and helpers ------------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "Simt.h"

#include "../Primitives/Score.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;
using namespace mlir::attn::simt;

SmemLayout simt::forwardSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(kFwdBlockM * s.headDim * eb);                   // Q tile
  l.add(s.headDim * transposedRow(s.elementType) * eb); // K^T tile
  l.add(kBlockN * s.headDimV * eb);                     // V tile
  return l;
}

SmemLayout simt::backwardSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(s.headDim * transposedRow(s.elementType) * eb);  // K^T
  l.add(s.headDimV * transposedRow(s.elementType) * eb); // V^T
  l.add(s.headDim * (kBlockN + 1) * 4);                  // dK accumulator
  l.add(s.headDimV * (kBlockN + 1) * 4);                 // dV accumulator
  l.add(s.headDim * 4);                                  // q row
  l.add(s.headDimV * 4);                                 // dO row
  l.add(kBlockN * 4);                                    // dS row
  return l;
}

/// The SIMT dQ kernel (deterministic): Q and dO tiles of the block's rows,
/// K^T and V^T tiles of 32 keys.
SmemLayout simt::dqSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(kFwdBlockM * s.headDim * eb);                    // Q tile
  l.add(kFwdBlockM * s.headDimV * eb);                   // dO tile
  l.add(s.headDim * transposedRow(s.elementType) * eb);  // K^T tile
  l.add(s.headDimV * transposedRow(s.elementType) * eb); // V^T tile
  return l;
}

/// 16-byte pieces per row: bwd_pre reads dO.O over Dv (and zeroes dqacc by
/// f32x4 unless deterministic); bwd_post converts dqacc to dq, `vec`
/// elements at a time.
static int64_t rowChunks(GpuKernelKind kind, const GpuKernelSpec &s) {
  int64_t vec = 16 / elementBytes(s.elementType);
  if (kind == GpuKernelKind::BwdPre) {
    int64_t dot = (s.headDimV + vec - 1) / vec;
    return s.deterministic ? dot : std::max(dot, (s.headDim + 3) / 4);
  }
  return (s.headDim + vec - 1) / vec;
}

int64_t simt::rowLanes(GpuKernelKind kind, const GpuKernelSpec &s) {
  int64_t l = 1;
  while (l < rowChunks(kind, s) && l < 32)
    l *= 2;
  return l;
}

Value simt::warpReduce(KernelBuilder &k, Value x, bool isMax) {
  for (int64_t off = 16; off >= 1; off /= 2) {
    Value y = gpu::ShuffleOp::create(k.b, x, k.i32(off), k.i32(kWarp),
                                     gpu::ShuffleMode::XOR)
                  .getShuffleResult();
    x = isMax ? k.cg.fmax(x, y) : k.cg.fadd(x, y);
  }
  return x;
}

Value simt::shuffleIdx(KernelBuilder &k, Value x, Value lane) {
  Value l = arith::IndexCastOp::create(k.b, k.b.getI32Type(), lane);
  return gpu::ShuffleOp::create(k.b, x, l, k.i32(kWarp), gpu::ShuffleMode::IDX)
      .getShuffleResult();
}

int64_t simt::vecWidth(KernelBuilder &k) {
  return 16 / elementBytes(k.spec.elementType);
}

void simt::loadTile(KernelBuilder &k, StringRef t, Value bi, Value h,
                    Value row0, Value rowLimit, int64_t rows, int64_t cols,
                    int64_t threads,
                    function_ref<void(Value, Value, Value)> sink) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  int64_t vec = vecWidth(k);
  int64_t perRow = cols / vec;
  auto vt = VectorType::get({vec}, k.spec.elementType);
  Value total = cg.idx(rows * perRow);
  auto loop = scf::ForOp::create(b, k.tid(), total, cg.idx(threads));
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(loop.getBody()->getTerminator());
  Value i = loop.getInductionVar();
  Value r = cg.divs(i, cg.idx(perRow));
  Value c = cg.mul(arith::RemSIOp::create(b, i, cg.idx(perRow)), cg.idx(vec));
  Value n = cg.min(cg.add(row0, r), cg.sub(rowLimit, cg.idx(1)));
  auto load = vector::LoadOp::create(b, vt, k.arg(t),
                                     ValueRange{k.at4(t, bi, h, n, c)});
  load.setAlignment(16);
  sink(r, c, load);
}

Value simt::visible(KernelBuilder &k, Value qi, Value kj, Value off,
                    Value nk) {
  Codegen &cg = k.cg;
  Value vis = cg.cmp(arith::CmpIPredicate::slt, kj, nk);
  if (!k.spec.masked)
    return vis;
  Value diag = cg.add(qi, off);
  Value wl = k.arg("window_left"), wr = k.arg("window_right");
  Value c0 = cg.idx(0);
  Value leftOk = arith::OrIOp::create(
      k.b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
      cg.cmp(arith::CmpIPredicate::sge, kj, cg.sub(diag, wl)));
  Value rightOk = arith::OrIOp::create(
      k.b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
      cg.cmp(arith::CmpIPredicate::sle, kj, cg.add(diag, wr)));
  return cg.andI(vis, cg.andI(leftOk, rightOk));
}

Value simt::alibiWeight(KernelBuilder &k, Value bi, Value h) {
  if (!k.spec.alibi)
    return {};
  return score::alibiWeight(k, bi, h, k.cg.f32(kLog2e));
}

Value simt::alibi(KernelBuilder &k, Value s2, Value w, Value qi, Value kj,
                  Value off) {
  if (!w)
    return s2;
  return score::alibi(k, s2, w, score::alibiDist(k, kj, qi, off), 0);
}

Value simt::score(KernelBuilder &k, Value qk, Value *derivOut) {
  Codegen &cg = k.cg;
  Value scale = k.arg("scale");
  if (!k.spec.softcap)
    return cg.fmul(qk, cg.fmul(scale, cg.f32(kLog2e)));
  Value c = k.arg("softcap");
  Value t = cg.tanh(cg.fmul(qk, cg.fdiv(scale, c)), derivOut);
  return cg.fmul(t, cg.fmul(c, cg.f32(kLog2e)));
}
