// RUN: fa-opt %s --split-input-file --pass-pipeline="builtin.module(attn-tile-forward{block-m=8 block-n=8 vector-width=4},attn-tile-backward{block-m=8 block-n=8 vector-width=4})" --verify-diagnostics | FileCheck %s

// The forward's score_mod and mask_mod are inlined into the key-block loop,
// a score at a time, between the score product and the online softmax.
// CHECK-LABEL: func @forward
// First the mask_mod over the block pair: a key block it keeps nothing of is
// skipped (a block mask computed on the fly).
// CHECK: scf.for {{.*}} iter_args
// CHECK:   scf.for {{.*}} iter_args
// CHECK:     arith.cmpi slt
// CHECK:     arith.ori
// CHECK: scf.if
// S^T = K Q^T (vector FMAs), then a loop over the block's keys and queries:
// CHECK: vector.fma
// CHECK: scf.for
// CHECK:   scf.for
// CHECK:     %[[S2:.*]] = memref.load %[[ST:.*]][%[[J:.*]], %[[I:.*]]] : memref<8x8xf32>
// CHECK-NEXT: arith.constant 0.693147
// The score in natural-log units (times ln 2), the region's body, back to
// log2 (times log2 e), then mask_mod's predicate.
// CHECK:     %[[S:.*]] = arith.mulf %[[S2]], %{{.*}} : f32
// CHECK:     %[[X:.*]] = arith.divf %[[S]], %[[C:.*]] : f32
// CHECK:     %[[T:.*]] = math.tanh %[[X]] : f32
// CHECK:     %[[Y:.*]] = arith.mulf %[[T]], %[[C]] : f32
// CHECK:     %[[Y2:.*]] = arith.mulf %[[Y]], %{{.*}} : f32
// CHECK:     %[[KEEP:.*]] = arith.cmpi slt, %{{.*}}, %{{.*}} : index
// CHECK:     %[[R:.*]] = arith.select %[[KEEP]], %[[Y2]], %{{.*}} : f32
// CHECK:     memref.store %[[R]], %[[ST]][%[[J]], %[[I]]]
// CHECK-NOT: attn.
func.func @forward(%q: memref<1x2x16x8xf32>, %o: memref<1x2x16x8xf32>, %l: memref<1x2x16xf32>) {
  attn.attention ins(%q, %q, %q : memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>)
                 outs(%o : memref<1x2x16x8xf32>) lse(%l : memref<1x2x16xf32>) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 5.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %y = arith.mulf %t, %c : f32
    attn.yield %y : f32
  } mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %p = arith.constant 4 : index
    %m = arith.cmpi slt, %j, %p : index
    attn.yield %m : i1
  }
  return
}

// -----

// The backward derives score_mod's derivative with respect to the score by
// the chain rule, next to the recomputed score: for c tanh(s / c) it is
// (1 / c) (1 - tanh^2) c, stored beside the final score.
// CHECK-LABEL: func @backward
// CHECK: scf.if
// CHECK:   %[[S:.*]] = arith.mulf %{{.*}}, %{{.*}} : f32
// CHECK:   %[[X:.*]] = arith.divf %[[S]], %[[C:.*]] : f32
// d x / d s: divf's rule on the seed tangent 1.
// CHECK:   %[[DX:.*]] = arith.divf %{{.*}}, %[[C]] : f32
// CHECK:   %[[T:.*]] = math.tanh %[[X]] : f32
// CHECK:   %[[TT:.*]] = arith.mulf %[[T]], %[[T]] : f32
// CHECK:   %[[SECH2:.*]] = arith.subf %{{.*}}, %[[TT]] : f32
// CHECK:   %[[DT:.*]] = arith.mulf %[[DX]], %[[SECH2]] : f32
// CHECK:   %[[Y:.*]] = arith.mulf %[[T]], %[[C]] : f32
// CHECK:   %[[DY:.*]] = arith.mulf %[[DT]], %[[C]] : f32
// CHECK:   memref.store
// CHECK:   scf.yield %[[DY]] : f32
// CHECK: } else {
// CHECK: memref.store %{{.*}}, %{{.*}} : memref<8x8xf32>
func.func @backward(%q: memref<1x2x16x8xf32>, %l: memref<1x2x16xf32>) {
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16xf32>)
                          outs(%q, %q, %q : memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 5.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %y = arith.mulf %t, %c : f32
    attn.yield %y : f32
  }
  return
}

// -----

// A score_mod whose derivative FlashMLIR cannot derive: a clear error.
func.func @not_derivable(%q: memref<1x2x16x8xf32>, %l: memref<1x2x16xf32>) {
  // expected-error @+1 {{score_mod: cannot derive the derivative of 'math.sin' with respect to the score}}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16xf32>)
                          outs(%q, %q, %q : memref<1x2x16x8xf32>, memref<1x2x16x8xf32>, memref<1x2x16x8xf32>) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %y = math.sin %s : f32
    attn.yield %y : f32
  }
  return
}
