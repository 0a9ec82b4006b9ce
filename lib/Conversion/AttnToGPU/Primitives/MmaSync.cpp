//===- MmaSync.cpp - mma.sync register-fragment operations ----------------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "MmaSync.h"
#include "SharedTile.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;

SmallVector<Value> mma::ldmatrix(KernelBuilder &k, Value mem, Value row,
                                 Value col, bool trans) {
  ImplicitLocOpBuilder &b = k.b;
  auto vt = VectorType::get({4, 2}, k.et);
  Value v = nvgpu::LdMatrixOp::create(
      b, vt, mem, ValueRange{row, tile::swizzleCol(k, mem, row, col)}, trans,
      4);
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(vector::ExtractOp::create(b, v, ArrayRef<int64_t>{i}));
  return out;
}

Value mma::pack(KernelBuilder &k, Value x, Value y) {
  ImplicitLocOpBuilder &b = k.b;
  x = arith::TruncFOp::create(b, k.et, x);
  y = arith::TruncFOp::create(b, k.et, y);
  return vector::FromElementsOp::create(b, VectorType::get({2}, k.et),
                                        ValueRange{x, y});
}

/// D = A B + C through nvgpu.mma.sync (f16): m16n8k16 (`a` 4 pairs, `bf` 2)
/// or, on sm_75, m16n8k8 (`a` 2 pairs: rows g, g + 8 at k 2t..; `bf` 1
/// pair: k 2t.., n g); `c` 4 f32.
static SmallVector<Value> nvgpuMma(KernelBuilder &k, ArrayRef<Value> a,
                                   ArrayRef<Value> bf, ArrayRef<Value> c,
                                   int64_t kDim) {
  ImplicitLocOpBuilder &b = k.b;
  Type f32 = b.getF32Type();
  auto stack = [&](ArrayRef<Value> rows, Type elt) {
    auto vt = VectorType::get({int64_t(rows.size()), 2}, elt);
    Value v = arith::ConstantOp::create(
        b, vt, DenseElementsAttr::get(vt, b.getZeroAttr(elt)));
    for (auto [i, r] : llvm::enumerate(rows))
      v = vector::InsertOp::create(b, r, v, ArrayRef<int64_t>{int64_t(i)});
    return v;
  };
  Value c0 = vector::FromElementsOp::create(b, VectorType::get({2}, f32),
                                            ValueRange{c[0], c[1]});
  Value c1 = vector::FromElementsOp::create(b, VectorType::get({2}, f32),
                                            ValueRange{c[2], c[3]});
  Value d = nvgpu::MmaSyncOp::create(b, stack(a, k.et), stack(bf, k.et),
                                     stack({c0, c1}, f32),
                                     ArrayRef<int64_t>{16, 8, kDim});
  SmallVector<Value> out;
  for (int64_t r = 0; r < 2; ++r) {
    Value row = vector::ExtractOp::create(b, d, ArrayRef<int64_t>{r});
    for (int64_t e = 0; e < 2; ++e)
      out.push_back(vector::ExtractOp::create(b, row, ArrayRef<int64_t>{e}));
  }
  return out;
}

SmallVector<Value> mma::mma(KernelBuilder &k, ArrayRef<Value> a,
                            ArrayRef<Value> bf, ArrayRef<Value> c) {
  ImplicitLocOpBuilder &b = k.b;
  Type et = k.et;
  Type f32 = b.getF32Type();
  if (k.spec.smVersion && k.spec.smVersion < 80) {
    // sm_75 has m16n8k8 (f16 only): the k16 step as two k8 halves, A pairs
    // {0, 1} with B pair 0 (k 0..7), then A pairs {2, 3} with B pair 1.
    assert(et.isF16() && "tensor cores below sm_80 take f16 only");
    SmallVector<Value> d(c.begin(), c.end());
    for (int64_t h = 0; h < 2; ++h)
      d = nvgpuMma(k, {a[2 * h], a[2 * h + 1]}, {bf[h]}, d, 8);
    return d;
  }
  if (et.isF16())
    return nvgpuMma(k, a, bf, c, 16);
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
  auto st =
      LLVM::LLVMStructType::getLiteral(b.getContext(), {f32, f32, f32, f32});
  Value d = NVVM::MmaOp::create(
      b, st, ai, bi, c, ArrayRef<int64_t>{16, 8, 16}, std::nullopt,
      std::nullopt,
      std::array<NVVM::MMATypes, 2>{NVVM::MMATypes::bf16,
                                    NVVM::MMATypes::bf16},
      std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                     NVVM::MMALayout::col});
  SmallVector<Value> out;
  for (int64_t i = 0; i < 4; ++i)
    out.push_back(LLVM::ExtractValueOp::create(b, d, ArrayRef<int64_t>{i}));
  return out;
}
