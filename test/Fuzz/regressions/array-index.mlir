// fa_fuzz (seed 2): a dense array of index elements made MLIR 22's parser
// segfault (Parser::parseDenseArrayAttr -> getIntOrFloatBitWidth on index);
// fa-opt now refuses it before parsing (flashmlir/Support/InputChecks.h).
// RUN: not fa-opt %s --attn-gpu-to-binary 2>&1 | FileCheck %s
// RUN: not fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward{block-m=0 block-n=16},canonicalize,cse)" 2>&1 | FileCheck %s
// CHECK: array-index.mlir:[[@LINE+3]]:{{[0-9]+}}: error: dense arrays of 'index' elements (array<index: ...>) are not supported (MLIR's parser cannot read them); use i64 elements
// CHECK-NOT: PLEASE submit a bug report
func.func @block_len(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {block_sizes = array<index: 64>} -> tensor<2x4x16x8xf32>
  return
}
// Comments and strings are not parsed: array<index: 1> here is fine.
