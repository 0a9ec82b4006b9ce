// RUN: fa-opt %s | fa-opt | FileCheck %s
// RUN: fa-opt %s --mlir-print-op-generic | fa-opt | FileCheck %s
// RUN: fa-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK-LABEL: func @fwd_tensor
// CHECK-SAME: (%[[Q:.*]]: tensor<2x8x128x64xf16>, %[[K:.*]]: tensor<2x2x256x64xf16>, %[[V:.*]]: tensor<2x2x256x32xf16>, %[[O:.*]]: tensor<2x8x128x32xf16>, %[[L:.*]]: tensor<2x8x128xf32>)
// CHECK: %{{.*}}:2 = attn.attention ins(%[[Q]], %[[K]], %[[V]] : tensor<2x8x128x64xf16>, tensor<2x2x256x64xf16>, tensor<2x2x256x32xf16>) outs(%[[O]] : tensor<2x8x128x32xf16>) lse(%[[L]] : tensor<2x8x128xf32>) {causal, scale = 1.250000e-01 : f64} -> tensor<2x8x128x32xf16>, tensor<2x8x128xf32>
// GENERIC-LABEL: "func.func"
// GENERIC: "attn.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{causal, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>, scale = 1.250000e-01 : f64}>
func.func @fwd_tensor(%q: tensor<2x8x128x64xf16>, %k: tensor<2x2x256x64xf16>, %v: tensor<2x2x256x32xf16>,
                      %o: tensor<2x8x128x32xf16>, %l: tensor<2x8x128xf32>) -> (tensor<2x8x128x32xf16>, tensor<2x8x128xf32>) {
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x8x128x64xf16>, tensor<2x2x256x64xf16>, tensor<2x2x256x32xf16>)
                        outs(%o : tensor<2x8x128x32xf16>) lse(%l : tensor<2x8x128xf32>) {causal, scale = 0.125 : f64}
                        -> tensor<2x8x128x32xf16>, tensor<2x8x128xf32>
  return %r#0, %r#1 : tensor<2x8x128x32xf16>, tensor<2x8x128xf32>
}

// Without lse, with every attribute, dynamic dims.
// CHECK-LABEL: func @fwd_tensor_no_lse
// CHECK: %{{.*}} = attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x4x?x64xbf16>, tensor<?x1x?x64xbf16>, tensor<?x1x?x64xbf16>) outs(%{{.*}} : tensor<?x4x?x64xbf16>) {block_sizes = array<i64: 64, 32>, softcap = 3.000000e+01 : f64, window = array<i64: 16, 4>} -> tensor<?x4x?x64xbf16>
// GENERIC: "attn.attention"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{block_sizes = array<i64: 64, 32>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0>, softcap = 3.000000e+01 : f64, window = array<i64: 16, 4>}>
func.func @fwd_tensor_no_lse(%q: tensor<?x4x?x64xbf16>, %k: tensor<?x1x?x64xbf16>, %v: tensor<?x1x?x64xbf16>,
                             %o: tensor<?x4x?x64xbf16>) -> tensor<?x4x?x64xbf16> {
  %r = attn.attention ins(%q, %k, %v : tensor<?x4x?x64xbf16>, tensor<?x1x?x64xbf16>, tensor<?x1x?x64xbf16>)
                      outs(%o : tensor<?x4x?x64xbf16>) {window = array<i64: 16, 4>, softcap = 30.0 : f64, block_sizes = array<i64: 64, 32>}
                      -> tensor<?x4x?x64xbf16>
  return %r : tensor<?x4x?x64xbf16>
}

// Memrefs: no results; a [B, N, H, D] buffer used through a strided view.
// CHECK-LABEL: func @fwd_memref_bshd
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>, memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>, memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>) outs(%{{.*}} : memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>) lse(%{{.*}} : memref<?x?x?xf32>) {scale = 5.000000e-01 : f64}
// CHECK-NOT: ->
func.func @fwd_memref_bshd(%q: memref<?x?x?x128xf32>, %k: memref<?x?x?x128xf32>, %v: memref<?x?x?x128xf32>,
                           %o: memref<?x?x?x128xf32>, %l: memref<?x?x?xf32>) {
  %qt = memref.transpose %q (b, n, h, d) -> (b, h, n, d) : memref<?x?x?x128xf32> to memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>
  %kt = memref.transpose %k (b, n, h, d) -> (b, h, n, d) : memref<?x?x?x128xf32> to memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>
  %vt = memref.transpose %v (b, n, h, d) -> (b, h, n, d) : memref<?x?x?x128xf32> to memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>
  %ot = memref.transpose %o (b, n, h, d) -> (b, h, n, d) : memref<?x?x?x128xf32> to memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>
  attn.attention ins(%qt, %kt, %vt : memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>, memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>, memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>)
                 outs(%ot : memref<?x?x?x128xf32, strided<[?, 128, ?, 1]>>) lse(%l : memref<?x?x?xf32>) {scale = 0.5 : f64}
  return
}

// CHECK-LABEL: func @bwd_tensor
// CHECK: %{{.*}}:3 = attn.attention_backward ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>, tensor<1x4x64x16xf16>, tensor<1x4x64x16xf16>, tensor<1x4x64xf32>) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>) {causal, softcap = 2.000000e+01 : f64} -> tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>
// GENERIC: "attn.attention_backward"(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) <{causal, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0>, softcap = 2.000000e+01 : f64}>
func.func @bwd_tensor(%q: tensor<1x4x64x32xf16>, %k: tensor<1x2x80x32xf16>, %v: tensor<1x2x80x16xf16>,
                      %o: tensor<1x4x64x16xf16>, %do: tensor<1x4x64x16xf16>, %l: tensor<1x4x64xf32>)
    -> (tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>) {
  %r:3 = attn.attention_backward ins(%q, %k, %v, %o, %do, %l : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>, tensor<1x4x64x16xf16>, tensor<1x4x64x16xf16>, tensor<1x4x64xf32>)
                                 outs(%q, %k, %v : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>) {causal, softcap = 20.0 : f64}
                                 -> tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>
  return %r#0, %r#1, %r#2 : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x16xf16>
}

// CHECK-LABEL: func @bwd_memref
// CHECK: attn.attention_backward ins({{.*}}) outs({{.*}}) {window = array<i64: 8, 8>}
// CHECK-NOT: ->
func.func @bwd_memref(%q: memref<1x4x64x32xbf16>, %o: memref<1x4x64x32xbf16>, %l: memref<1x4x64xf32>) {
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>, memref<1x4x64xf32>)
                          outs(%q, %q, %q : memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>, memref<1x4x64x32xbf16>) {window = array<i64: 8, 8>}
  return
}
