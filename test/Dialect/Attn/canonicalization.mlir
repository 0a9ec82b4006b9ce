// RUN: fa-opt %s --canonicalize --split-input-file | FileCheck %s

// A [-1, -1] window masks nothing and is dropped.
// CHECK-LABEL: func @unbounded_window
// CHECK: attn.attention
// CHECK-NOT: window
// CHECK-SAME: outs
func.func @unbounded_window(%q: memref<1x2x8x8xf32>, %o: memref<1x2x8x8xf32>) {
  attn.attention ins(%q, %q, %q : memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>) outs(%o : memref<1x2x8x8xf32>) {window = array<i64: -1, -1>}
  return
}

// -----

// With causal, the right side of the window is implied: it is dropped, and a
// window with an unbounded left side disappears.
// CHECK-LABEL: func @causal_window
// CHECK: attn.attention {{.*}} {causal, window = array<i64: 4, -1>}
// CHECK: attn.attention {{.*}} {causal}
// CHECK: attn.attention_backward {{.*}} {causal, window = array<i64: 2, -1>}
func.func @causal_window(%q: memref<1x2x8x8xf32>, %o: memref<1x2x8x8xf32>, %l: memref<1x2x8xf32>) {
  attn.attention ins(%q, %q, %q : memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>) outs(%o : memref<1x2x8x8xf32>) {causal, window = array<i64: 4, 3>}
  attn.attention ins(%q, %q, %q : memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>) outs(%o : memref<1x2x8x8xf32>) {causal, window = array<i64: -1, 0>}
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8xf32>) outs(%q, %q, %q : memref<1x2x8x8xf32>, memref<1x2x8x8xf32>, memref<1x2x8x8xf32>) {causal, window = array<i64: 2, 5>}
  return
}

// -----

// Already canonical: untouched. On tensors, an unused result is not erased
// by canonicalization only when it is used; here both results are returned.
// CHECK-LABEL: func @canonical
// CHECK: attn.attention {{.*}} {window = array<i64: 3, 1>}
func.func @canonical(%q: tensor<1x2x8x8xf32>, %o: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%o : tensor<1x2x8x8xf32>) {window = array<i64: 3, 1>} -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}
