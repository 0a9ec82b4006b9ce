// RUN: fa-opt %s --one-shot-bufferize="bufferize-function-boundaries" --canonicalize | FileCheck %s
// RUN: fa-opt %s --one-shot-bufferize="bufferize-function-boundaries" --attn-to-loops | FileCheck %s --check-prefix=LOOPS

// Tensor attn ops bufferize in place into memref attn ops: inits become the
// written buffers (fresh allocations for tensor.empty, never copied since
// inits are write-only) and the results alias them.
// CHECK-LABEL: func @fwd_bwd
// CHECK-SAME: (%[[Q:.*]]: memref<1x4x64x32xf16{{.*}}>, %[[K:.*]]: memref<1x2x80x32xf16{{.*}}>, %[[V:.*]]: memref<1x2x80x32xf16{{.*}}>, %[[DO:.*]]: memref<1x4x64x32xf16{{.*}}>)
// CHECK-DAG: %[[O:.*]] = memref.alloc() {{.*}} : memref<1x4x64x32xf16>
// CHECK-DAG: %[[L:.*]] = memref.alloc() {{.*}} : memref<1x4x64xf32>
// CHECK-NOT: memref.copy
// CHECK: attn.attention ins(%[[Q]], %[[K]], %[[V]] : {{.*}}) outs(%[[O]] : memref<1x4x64x32xf16>) lse(%[[L]] : memref<1x4x64xf32>) {causal, window = array<i64: 16, -1>}
// CHECK-NOT: ->
// CHECK: attn.attention_backward ins(%[[Q]], %[[K]], %[[V]], %[[O]], %[[DO]], %[[L]] : {{.*}}) outs({{.*}}) {causal, window = array<i64: 16, -1>}
// CHECK-NOT: memref.copy
// CHECK: return %[[O]],
// LOOPS-LABEL: func @fwd_bwd
// LOOPS-NOT: attn.
// LOOPS: scf.parallel
func.func @fwd_bwd(%q: tensor<1x4x64x32xf16>, %k: tensor<1x2x80x32xf16>, %v: tensor<1x2x80x32xf16>, %do: tensor<1x4x64x32xf16>)
    -> (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>) {
  %o0 = tensor.empty() : tensor<1x4x64x32xf16>
  %l0 = tensor.empty() : tensor<1x4x64xf32>
  %o, %lse = attn.attention ins(%q, %k, %v : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>)
                            outs(%o0 : tensor<1x4x64x32xf16>) lse(%l0 : tensor<1x4x64xf32>) {causal, window = array<i64: 16, -1>}
                            -> tensor<1x4x64x32xf16>, tensor<1x4x64xf32>
  %dq0 = tensor.empty() : tensor<1x4x64x32xf16>
  %dk0 = tensor.empty() : tensor<1x2x80x32xf16>
  %dv0 = tensor.empty() : tensor<1x2x80x32xf16>
  %dq, %dk, %dv = attn.attention_backward ins(%q, %k, %v, %o, %do, %lse : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64xf32>)
                                              outs(%dq0, %dk0, %dv0 : tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>) {causal, window = array<i64: 16, -1>}
                                              -> tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>
  return %o, %dq, %dk, %dv : tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x2x80x32xf16>, tensor<1x2x80x32xf16>
}
