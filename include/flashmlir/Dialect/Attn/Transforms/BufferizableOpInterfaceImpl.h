//===- BufferizableOpInterfaceImpl.h - attn bufferization -------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace attn {
/// Lets one-shot-bufferize turn tensor attn ops into memref attn ops: the
/// inits (output/lse, or the gradients) become the written buffers and the
/// results alias them; inits are write-only, so their old contents are
/// never copied.
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_BUFFERIZABLEOPINTERFACEIMPL_H
