// RUN: fa-opt %s | fa-opt | FileCheck %s
// RUN: fa-opt %s --mlir-print-op-generic | fa-opt | FileCheck %s
// RUN: fa-opt %s --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s --check-prefix=BUF
// RUN: fa-opt %s --one-shot-bufferize="bufferize-function-boundaries" --attn-to-loops | FileCheck %s --check-prefix=LOOPS

// The variable-length form: packed [total, heads, dim] operands, lse
// [heads, total_q], the offsets and max lengths in varlen(...).

// CHECK-LABEL: func @varlen_tensor
// CHECK: %{{.*}}:2 = attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<300x8x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) varlen(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<4xi32>, tensor<4xi32>) outs(%{{.*}} : tensor<300x8x64xbf16>) lse(%{{.*}} : tensor<8x300xf32>) {causal} -> tensor<300x8x64xbf16>, tensor<8x300xf32>
// CHECK: attn.attention_backward ins({{.*}}) varlen(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<4xi32>, tensor<4xi32>) outs({{.*}}) {causal} ->
// BUF-LABEL: func @varlen_tensor
// BUF: attn.attention ins({{.*}}) varlen(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : memref<4xi32{{.*}}>, memref<4xi32{{.*}}>) outs({{.*}}) lse({{.*}}) {causal}
// BUF-NOT: ->
// BUF: attn.attention_backward ins({{.*}}) varlen({{.*}}) outs({{.*}}) {causal}
// LOOPS-LABEL: func @varlen_tensor
// LOOPS-NOT: attn.
// LOOPS: memref.reinterpret_cast
// LOOPS: scf.parallel
// LOOPS: memref.subview
func.func @varlen_tensor(%q: tensor<300x8x64xbf16>, %k: tensor<?x2x64xbf16>, %v: tensor<?x2x64xbf16>,
                         %o0: tensor<300x8x64xbf16>, %l0: tensor<8x300xf32>, %do: tensor<300x8x64xbf16>,
                         %cuq: tensor<4xi32>, %cuk: tensor<4xi32>, %mq: index, %mk: index)
    -> (tensor<300x8x64xbf16>, tensor<?x2x64xbf16>) {
  %o, %l = attn.attention ins(%q, %k, %v : tensor<300x8x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>)
                         varlen(%cuq, %cuk, %mq, %mk : tensor<4xi32>, tensor<4xi32>)
                         outs(%o0 : tensor<300x8x64xbf16>) lse(%l0 : tensor<8x300xf32>) {causal}
                         -> tensor<300x8x64xbf16>, tensor<8x300xf32>
  %dq, %dk, %dv = attn.attention_backward ins(%q, %k, %v, %o, %do, %l : tensor<300x8x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<300x8x64xbf16>, tensor<300x8x64xbf16>, tensor<8x300xf32>)
                         varlen(%cuq, %cuk, %mq, %mk : tensor<4xi32>, tensor<4xi32>)
                         outs(%q, %k, %v : tensor<300x8x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>) {causal}
                         -> tensor<300x8x64xbf16>, tensor<?x2x64xbf16>, tensor<?x2x64xbf16>
  return %dq, %dk : tensor<300x8x64xbf16>, tensor<?x2x64xbf16>
}

// CHECK-LABEL: func @varlen_memref
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<?x4x32xf32, strided<[?, ?, 1], offset: ?>>, memref<?x4x32xf32>, memref<?x4x32xf32>) varlen(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : memref<?xi32>, memref<?xi32>) outs(%{{.*}} : memref<?x4x32xf32>) {window = array<i64: 8, 0>}
func.func @varlen_memref(%q: memref<?x4x32xf32, strided<[?, ?, 1], offset: ?>>, %k: memref<?x4x32xf32>, %v: memref<?x4x32xf32>,
                         %o: memref<?x4x32xf32>, %cuq: memref<?xi32>, %cuk: memref<?xi32>, %mq: index, %mk: index) {
  attn.attention ins(%q, %k, %v : memref<?x4x32xf32, strided<[?, ?, 1], offset: ?>>, memref<?x4x32xf32>, memref<?x4x32xf32>)
                 varlen(%cuq, %cuk, %mq, %mk : memref<?xi32>, memref<?xi32>)
                 outs(%o : memref<?x4x32xf32>) {window = array<i64: 8, 0>}
  return
}
