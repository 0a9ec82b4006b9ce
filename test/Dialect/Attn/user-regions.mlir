// RUN: fa-opt %s --split-input-file --verify-diagnostics | FileCheck %s
// RUN: fa-opt %s --split-input-file --verify-diagnostics --mlir-print-op-generic | fa-opt --split-input-file | FileCheck %s

// score_mod (a relative position bias) and mask_mod (prefix-LM) round-trip.
// CHECK-LABEL: func @fwd_regions
// CHECK: attn.attention ins({{.*}}) outs(%{{.*}} : tensor<1x2x8x16xf32>) {causal} score_mod {
// CHECK-NEXT: ^bb0(%[[S:.*]]: f32, %{{.*}}: index, %{{.*}}: index, %[[I:.*]]: index, %[[J:.*]]: index):
// CHECK: attn.yield %{{.*}} : f32
// CHECK-NEXT: } mask_mod {
// CHECK: attn.yield %{{.*}} : i1
// CHECK-NEXT: } -> tensor<1x2x8x16xf32>
func.func @fwd_regions(%q: tensor<1x2x8x16xf32>, %o: tensor<1x2x8x16xf32>) -> tensor<1x2x8x16xf32> {
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
                      outs(%o : tensor<1x2x8x16xf32>) {causal} score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %d = arith.subi %j, %i : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %c = arith.constant 0.125 : f32
    %bias = arith.mulf %df, %c : f32
    %t = arith.addf %s, %bias : f32
    attn.yield %t : f32
  } mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %p = arith.constant 3 : index
    %prefix = arith.cmpi slt, %j, %p : index
    %causal = arith.cmpi sle, %j, %i : index
    %m = arith.ori %prefix, %causal : i1
    attn.yield %m : i1
  } -> tensor<1x2x8x16xf32>
  return %r : tensor<1x2x8x16xf32>
}

// -----

// CHECK-LABEL: func @bwd_score_mod
// CHECK: attn.attention_backward ins({{.*}}) outs({{.*}}) score_mod {
// CHECK: math.tanh
func.func @bwd_score_mod(%q: memref<1x2x8x16xf32>, %l: memref<1x2x8xf32>) {
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8xf32>)
                          outs(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 20.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %y = arith.mulf %t, %c : f32
    attn.yield %y : f32
  }
  return
}

// -----

func.func @score_mod_args(%q: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'score_mod' region must take (%score: f32, %batch: index, %head: index, %query: index, %key: index), got 2 argument(s)}}
  attn.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) score_mod {
  ^bb0(%s: f32, %i: index):
    attn.yield %s : f32
  }
  return
}

// -----

func.func @score_mod_yield(%q: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'score_mod' region must end with attn.yield of 'f32'}}
  attn.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %t = arith.cmpi slt, %i, %j : index
    attn.yield %t : i1
  }
  return
}

// -----

func.func @mask_mod_yield(%q: memref<1x2x8x16xf32>) {
  // expected-error @+1 {{'mask_mod' region must end with attn.yield of 'i1'}}
  attn.attention ins(%q, %q, %q : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>, memref<1x2x8x16xf32>) outs(%q : memref<1x2x8x16xf32>) mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    attn.yield %i : index
  }
  return
}

// -----

func.func @yield_outside() {
  // expected-error @+2 {{'attn.yield' op expects parent op to be one of 'attn.attention, attn.attention_backward'}}
  %c = arith.constant 1.0 : f32
  "attn.yield"(%c) : (f32) -> ()
  return
}
