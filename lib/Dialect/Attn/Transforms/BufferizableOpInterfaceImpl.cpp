//===- BufferizableOpInterfaceImpl.cpp - attn bufferization -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/Transforms/BufferizableOpInterfaceImpl.h"

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/PatternMatch.h"

using namespace mlir;
using namespace mlir::bufferization;

namespace {
template <typename OpTy>
struct AttnOpInterface
    : public DstBufferizableOpInterfaceExternalModel<AttnOpInterface<OpTy>,
                                                     OpTy> {
  /// Inputs are read; inits are only written (no copy of their contents).
  bool bufferizesToMemoryRead(Operation *op, OpOperand &opOperand,
                              const AnalysisState &) const {
    return !cast<DestinationStyleOpInterface>(op).isDpsInit(&opOperand);
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto dps = cast<DestinationStyleOpInterface>(op);
    SmallVector<Value> operands, inits;
    for (OpOperand &operand : op->getOpOperands()) {
      // Scalars (the varlen form's max lengths) are kept as they are.
      if (!isa<TensorType>(operand.get().getType())) {
        operands.push_back(operand.get());
        continue;
      }
      FailureOr<Value> buffer =
          getBuffer(rewriter, operand.get(), options, state);
      if (failed(buffer))
        return failure();
      operands.push_back(*buffer);
      if (dps.isDpsInit(&operand))
        inits.push_back(*buffer);
    }
    // The same op on memrefs: no results, same attributes and properties.
    OperationState memrefState(op->getLoc(), op->getName());
    memrefState.addOperands(operands);
    memrefState.propertiesAttr = op->getPropertiesAsAttribute();
    for (NamedAttribute attr : op->getDiscardableAttrs())
      memrefState.addAttribute(attr.getName(), attr.getValue());
    // The user regions (score_mod, mask_mod) move to the new op.
    for (unsigned i = 0, e = op->getNumRegions(); i < e; ++i)
      memrefState.addRegion();
    rewriter.setInsertionPoint(op);
    Operation *memrefOp = rewriter.create(memrefState);
    for (unsigned i = 0, e = op->getNumRegions(); i < e; ++i)
      rewriter.inlineRegionBefore(op->getRegion(i), memrefOp->getRegion(i),
                                  memrefOp->getRegion(i).end());
    replaceOpWithBufferizedValues(rewriter, op, inits);
    return success();
  }
};
} // namespace

void mlir::attn::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, AttnDialect *) {
    AttentionOp::attachInterface<AttnOpInterface<AttentionOp>>(*ctx);
    AttentionBackwardOp::attachInterface<AttnOpInterface<AttentionBackwardOp>>(
        *ctx);
  });
}
