//===- AttnGuardAllocs.cpp - attn-guard-allocs ------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Every memref.alloc guarded by a null check: the code after it runs only
// when the allocation succeeded. See the pass description in Passes.td.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNGUARDALLOCSPASS
#include "flashmlir/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;

/// Moves the operations after `alloc` (up to its block's terminator) into an
/// scf.if on "the buffer is not null"; deallocs of buffers allocated before
/// (or by `alloc`) stay after it.
static LogicalResult guard(memref::AllocOp alloc) {
  Block *block = alloc->getBlock();
  Operation *term = block->mightHaveTerminator() ? block->getTerminator()
                                                 : nullptr;
  SmallVector<Operation *> guarded, kept;
  for (Operation *op = alloc->getNextNode(); op && op != term;
       op = op->getNextNode()) {
    auto dealloc = dyn_cast<memref::DeallocOp>(op);
    if (dealloc) {
      Operation *def = dealloc.getMemref().getDefiningOp();
      bool definedInside =
          def && def != alloc.getOperation() && def->getBlock() == block &&
          alloc->isBeforeInBlock(def);
      if (!definedInside) {
        kept.push_back(op);
        continue;
      }
    }
    guarded.push_back(op);
  }
  if (guarded.empty())
    return success();
  // Nothing computed in the guarded code may be used after it.
  llvm::SmallPtrSet<Operation *, 16> inside(guarded.begin(), guarded.end());
  for (Operation *op : guarded)
    for (Value r : op->getResults())
      for (Operation *user : r.getUsers()) {
        Operation *top = block->findAncestorOpInBlock(*user);
        if (!top || !inside.contains(top))
          return alloc->emitOpError()
                 << "attn-guard-allocs: cannot guard this allocation: a "
                    "value computed after it is used by "
                 << user->getName() << " outside the code that needs it";
      }

  OpBuilder b(alloc->getContext());
  b.setInsertionPointAfter(alloc);
  Location loc = alloc.getLoc();
  Value ptr = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, alloc);
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, ptr, zero);
  auto ifOp = scf::IfOp::create(b, loc, ok, /*withElseRegion=*/false);
  Operation *yield = ifOp.thenBlock()->getTerminator();
  for (Operation *op : guarded)
    op->moveBefore(yield);
  for (Operation *op : kept) {
    if (term)
      op->moveBefore(term);
    else
      op->moveBefore(block, block->end());
  }
  return success();
}

namespace {
struct AttnGuardAllocsPass final
    : mlir::attn::impl::AttnGuardAllocsPassBase<AttnGuardAllocsPass> {
  using Base::Base;

  void runOnOperation() override {
    // Program order: an allocation inside guarded code is guarded in turn.
    SmallVector<memref::AllocOp> allocs;
    getOperation()->walk<WalkOrder::PreOrder>(
        [&](memref::AllocOp a) { allocs.push_back(a); });
    for (memref::AllocOp a : allocs)
      if (failed(guard(a)))
        return signalPassFailure();
  }
};
} // namespace
