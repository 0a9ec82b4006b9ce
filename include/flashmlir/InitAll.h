//===- InitAll.h - FlashMLIR registration point -----------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The single place that registers the attn dialect, the upstream dialects and
// passes the FlashMLIR pipelines use, and every FlashMLIR pass and pipeline.
// Tools (fa-opt, fa-run, fa-compile), the C API and tests call these.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_INITALL_H
#define FLASHMLIR_INITALL_H

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace flashmlir {

/// Adds the attn dialect and every upstream dialect (with its interface
/// extensions) that FlashMLIR's pipelines produce or consume.
void registerAllDialects(mlir::DialectRegistry &registry);

/// Registers every FlashMLIR pass and named pipeline, and the upstream passes
/// they are built from, with the global pass registry (for textual pipelines).
void registerAllPasses();

} // namespace flashmlir

#endif // FLASHMLIR_INITALL_H
