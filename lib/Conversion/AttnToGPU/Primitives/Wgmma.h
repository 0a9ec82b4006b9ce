//===- Wgmma.h - warpgroup MMA (sm_90a): descriptors and issue ---*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: inline-PTX emission of wgmma (fence, mma_async
// groups, commit, wait) and of shared-memory matrix descriptors, shared by
// the Hopper forward (Kernels/WgmmaForward.cpp) and the Hopper path of the
// backward main kernel (Kernels/MmaBackward.cpp).
//
// nvvm.wgmma.mma_async takes A only from shared memory, so everything is
// emitted as inline PTX. The rules that keep ptxas from serializing the
// wgmma pipeline (warning C7513) or, worse, from a register being redefined
// while an in-flight wgmma reads it:
//  * a commit group is one asm statement (fence, MMAs, commit): all of its
//    inputs (descriptors, A registers) are computed before it;
//  * accumulators pass through each wait as tied operands, so nothing reads
//    them before the wait;
//  * inputs of a group still in flight across other code (P registers,
//    descriptors) are passed to the wait that retires it (`keep`), so LLVM
//    cannot coalesce a new value into their registers meanwhile.
//
// Shared-memory tiles use the 128-byte swizzle: [cols / 64][rows][64]
// elements, 16-byte chunk c of a 128-byte row r at chunk c ^ (r % 8)
// (tile::indices), every tile 1024-byte aligned (tile::alignSmem).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_WGMMA_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_WGMMA_H

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include <string>

namespace mlir {
namespace attn {
namespace wgmma {

/// Matrix descriptors of 128-byte-swizzled tiles: start address >> 4 (bits
/// 0-13), leading byte offset >> 4 (16-29), stride byte offset >> 4
/// (32-45), swizzle mode 1 (bits 62-63). K-major tiles: 8-row groups 1024
/// bytes apart (SBO), LBO unused (16). MN-major tiles: 64-element column
/// blocks `lbo` bytes apart, 8-row groups 1024 apart. A start inside a
/// 128-byte row (k16 steps of K-major tiles: + 32 bytes) needs no base
/// offset: the hardware swizzles the final address.
struct Descriptors {
  ImplicitLocOpBuilder &b;
  Value base4; ///< aligned smem address >> 4 (i64)
  Descriptors(ImplicitLocOpBuilder &b, Value alignedAddr) : b(b) {
    base4 = arith::ShRUIOp::create(
        b, alignedAddr, arith::ConstantIntOp::create(b, b.getI64Type(), 4));
  }
  /// A copy whose base goes through a side-effecting `mov` where it is
  /// emitted: descriptors made from it inside a loop are recomputed there
  /// (a few adds) instead of being hoisted and held in registers across the
  /// loop (as opaqueIndex does for lane addresses).
  Descriptors opaqueCopy() {
    Descriptors d(*this);
    d.base4 = LLVM::InlineAsmOp::create(
                  b, b.getI64Type(), ValueRange{base4}, "mov.b64 $0, $1;",
                  "=l,l", /*has_side_effects=*/true, /*is_align_stack=*/false,
                  LLVM::tailcallkind::TailCallKind::None,
                  LLVM::AsmDialectAttr(), ArrayAttr())
                  .getResult(0);
    return d;
  }
  /// The descriptor of byte offset 0 with the given LBO / SBO.
  Value make(int64_t lbo, int64_t sbo) {
    int64_t bits =
        (int64_t(1) << 62) | ((sbo >> 4) << 32) | ((lbo >> 4) << 16);
    return arith::AddIOp::create(
        b, base4, arith::ConstantIntOp::create(b, b.getI64Type(), bits));
  }
  Value kMajor() { return make(16, 1024); }
  Value mnMajor(int64_t lbo) { return make(lbo, 1024); }
  /// `desc` moved by `bytes` (index, a multiple of 16).
  Value plus(Value desc, Value bytes) {
    Type i64 = b.getI64Type();
    Value x = arith::IndexCastOp::create(b, i64, bytes);
    return arith::AddIOp::create(
        b, desc,
        arith::ShRUIOp::create(b, x, arith::ConstantIntOp::create(b, i64, 4)));
  }
};

/// Inline-PTX emission of the warpgroup MMA instructions.
struct WgmmaEmitter {
  ImplicitLocOpBuilder &b;
  std::string type; ///< f16 or bf16

  Value asmOp(int64_t outs, ValueRange ins, const std::string &text,
              const std::string &constraints,
              SmallVectorImpl<Value> *results) {
    Type f32 = b.getF32Type();
    Type resT;
    if (outs == 1)
      resT = f32;
    else if (outs > 1)
      resT = LLVM::LLVMStructType::getLiteral(
          b.getContext(), SmallVector<Type>(outs, f32));
    auto op = LLVM::InlineAsmOp::create(
        b, resT, ins, text, constraints, /*has_side_effects=*/true,
        /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
        LLVM::AsmDialectAttr(), ArrayAttr());
    if (results) {
      results->clear();
      if (outs == 1)
        results->push_back(op.getResult(0));
      for (int64_t i = 0; outs > 1 && i < outs; ++i)
        results->push_back(LLVM::ExtractValueOp::create(
            b, op.getResult(0), ArrayRef<int64_t>{i}));
    }
    return outs ? op.getResult(0) : Value();
  }
  void emit(const std::string &text) {
    asmOp(0, ValueRange{}, text, "", nullptr);
  }

  /// "=f" x n, then the n accumulators tied (when `tied`).
  static std::string accConstraints(int64_t n, bool tied) {
    std::string c;
    for (int64_t i = 0; i < n; ++i)
      c += std::string(i ? "," : "") + "=f";
    for (int64_t i = 0; tied && i < n; ++i)
      c += "," + std::to_string(i);
    return c;
  }
  static std::string accList(int64_t n) {
    std::string s = "{";
    for (int64_t i = 0; i < n; ++i)
      s += std::string(i ? ", " : "") + "$" + std::to_string(i);
    return s + "}";
  }

  /// One commit group of m64n`n`k16 MMAs, D (+)= sum_i A_i B_i: A_i from
  /// shared memory (`descA[i]`) or from four 32-bit registers (`aRegs[4 i ..
  /// 4 i + 3]`), B_i from `descB[i]` (transposed: N-major). `acc` empty: the
  /// first MMA ignores D.
  struct Group {
    int64_t n;
    ArrayRef<Value> acc, descA, aRegs, descB;
    bool transB;
    bool transA = false; ///< A from shared memory, M-major
  };
  /// Issues `groups` as one asm statement: wgmma.fence, then each group's
  /// MMAs and wgmma.commit_group. Every input (descriptors, P registers) is
  /// computed before the statement: ptxas serializes the wgmma pipeline
  /// when a non-wgmma instruction defines an input of a wgmma while earlier
  /// ones are in flight. Returns the groups' accumulators, concatenated.
  SmallVector<Value> issue(ArrayRef<Group> groups) {
    int64_t outs = 0, tiedIns = 0;
    for (const Group &gr : groups) {
      outs += gr.n / 2;
      tiedIns += gr.acc.empty() ? 0 : gr.n / 2;
    }
    std::string constraints;
    for (int64_t i = 0; i < outs; ++i)
      constraints += std::string(i ? "," : "") + "=f";
    SmallVector<Value> ins;
    int64_t out0 = 0, next = outs + tiedIns;
    for (const Group &gr : groups) {
      for (auto [i, v] : llvm::enumerate(gr.acc)) {
        constraints += "," + std::to_string(out0 + int64_t(i));
        ins.push_back(v);
      }
      out0 += gr.n / 2;
    }
    std::string text = "wgmma.fence.sync.aligned;\n";
    out0 = 0;
    for (const Group &gr : groups) {
      const int64_t r = gr.n / 2;
      std::string acc = "{";
      for (int64_t i = 0; i < r; ++i)
        acc += std::string(i ? ", " : "") + "$" + std::to_string(out0 + i);
      acc += "}";
      for (size_t i = 0; i < gr.descB.size(); ++i) {
        text += "{\n.reg .pred p;\nsetp.ne.b32 p, ";
        text += !gr.acc.empty() || i ? "1" : "0";
        text += ", 0;\nwgmma.mma_async.sync.aligned.m64n" +
                std::to_string(gr.n) + "k16.f32." + type + "." + type + " " +
                acc + ", ";
        if (!gr.descA.empty()) {
          text += "$" + std::to_string(next++) + ", ";
          constraints += ",l";
          ins.push_back(gr.descA[i]);
        } else {
          text += "{";
          for (int64_t e = 0; e < 4; ++e) {
            text += std::string(e ? ", " : "") + "$" + std::to_string(next++);
            constraints += ",r";
            ins.push_back(gr.aRegs[4 * i + e]);
          }
          text += "}, ";
        }
        text += "$" + std::to_string(next++) + ", p, 1, 1";
        constraints += ",l";
        ins.push_back(gr.descB[i]);
        if (!gr.descA.empty())
          text += gr.transA ? ", 1" : ", 0";
        text += gr.transB ? ", 1;\n}\n" : ", 0;\n}\n";
      }
      text += "wgmma.commit_group.sync.aligned;\n";
      out0 += r;
    }
    SmallVector<Value> out;
    asmOp(outs, ins, text, constraints, &out);
    return out;
  }

  /// wgmma.wait_group `pending`, passing `acc` through (tied): its uses
  /// come after the wait. `keep` (the inputs of the groups still in flight:
  /// P registers, descriptors) are read by the statement, so LLVM keeps
  /// them in their registers until then instead of reusing those for new
  /// values while the tensor cores may still read them.
  SmallVector<Value> wait(int64_t pending, ArrayRef<Value> acc,
                          ArrayRef<Value> keep = {}) {
    std::string constraints = accConstraints(acc.size(), true);
    for (Value v : keep)
      constraints += v.getType().isInteger(64) ? ",l" : ",r";
    SmallVector<Value> ins(acc.begin(), acc.end());
    ins.append(keep.begin(), keep.end());
    SmallVector<Value> out;
    asmOp(acc.size(), ins,
          "wgmma.wait_group.sync.aligned " + std::to_string(pending) + ";",
          constraints, &out);
    return out;
  }
};

} // namespace wgmma
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_WGMMA_H
