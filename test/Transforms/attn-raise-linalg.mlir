// RUN: fa-opt %s --split-input-file --pass-pipeline="builtin.module(func.func(attn-raise-linalg))" | FileCheck %s --enable-var-scope

// Positive cases raise to one attn.attention (mask, scale and GQA grouping
// checked); negative and near-miss cases stay as they are.

// CHECK-LABEL: func.func @bmm_transpose_div_softmax
// CHECK-SAME: (%[[Q:.*]]: tensor<8x16x32xf32>, %[[K:.*]]: tensor<8x16x32xf32>, %[[V:.*]]: tensor<8x16x32xf32>)
// CHECK-DAG: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 16, 32]
// CHECK-DAG: %[[K4:.*]] = tensor.expand_shape %[[K]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 16, 32]
// CHECK-DAG: %[[V4:.*]] = tensor.expand_shape %[[V]] {{\[}}[0, 1], [2], [3]] output_shape [1, 8, 16, 32]
// CHECK: %[[O:.*]] = attn.attention ins(%[[Q4]], %[[K4]], %[[V4]] : {{.*}}) outs(%{{.*}} : tensor<1x8x16x32xf32>) {scale = 0.1767766{{[0-9]*}} : f64}
// CHECK-NEXT: %[[R:.*]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2], [3]] : tensor<1x8x16x32xf32> into tensor<8x16x32xf32>
// CHECK-NEXT: return %[[R]]
func.func @bmm_transpose_div_softmax(%q: tensor<8x16x32xf32>, %k: tensor<8x16x32xf32>, %v: tensor<8x16x32xf32>) -> tensor<8x16x32xf32> {
  %zero = arith.constant 0.0 : f32
  %kt0 = tensor.empty() : tensor<8x32x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x32xf32>) outs(%kt0 : tensor<8x32x16xf32>) permutation = [0, 2, 1]
  %s0 = tensor.empty() : tensor<8x16x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sz : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %c = arith.constant 5.65685424949238 : f32
  %d = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s : tensor<8x16x16xf32>) outs(%s0 : tensor<8x16x16xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.divf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%d : tensor<8x16x16xf32>) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %o0 = tensor.empty() : tensor<8x16x32xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%oz : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %o : tensor<8x16x32xf32>
}

// CHECK-LABEL: func.func @causal_gqa_decomposed
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x6x8xf32>, %[[K:.*]]: tensor<1x2x6x8xf32>, %[[V:.*]]: tensor<1x2x6x8xf32>)
// CHECK: %[[O:.*]] = attn.attention ins(%[[Q]], %[[K]], %[[V]] : tensor<1x4x6x8xf32>, tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) outs(%{{.*}} : tensor<1x4x6x8xf32>) {causal, scale = 1.250000e-01 : f64}
// CHECK-NEXT: return %[[O]]

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @causal_gqa_decomposed(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>) -> (tensor<1x4x6x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 6, 8] : tensor<1x2x6x8xf32> into tensor<1x2x1x6x8xf32>
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [1, 2, 1, 6, 8] : tensor<1x2x6x8xf32> into tensor<1x2x1x6x8xf32>
  %e5 = tensor.empty() : tensor<1x2x2x6x8xf32>
  %kb = linalg.generic {indexing_maps = [affine_map<(a, b, c, d, e) -> (a, b, 0, d, e)>, affine_map<(a, b, c, d, e) -> (a, b, c, d, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]} ins(%k5 : tensor<1x2x1x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  } -> tensor<1x2x2x6x8xf32>
  %vb = linalg.broadcast ins(%v : tensor<1x2x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) dimensions = [2]
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %s0 = tensor.empty() : tensor<1x4x6x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x4x6x6xf32>) -> tensor<1x4x6x6xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %kr : tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) outs(%sz : tensor<1x4x6x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x4x6x6xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x4x6x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6x6xf32>
  %mask = arith.constant dense<[[[[0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]]]> : tensor<1x1x6x6xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (0, 0, c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x4x6x6xf32>, tensor<1x1x6x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x4x6x6xf32>
  %r0 = tensor.empty() : tensor<1x4x6xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x4x6xf32>) -> tensor<1x4x6xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x4x6x6xf32>) outs(%mx0 : tensor<1x4x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x4x6x6xf32>, tensor<1x4x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x4x6x6xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x4x6xf32>) -> tensor<1x4x6xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x4x6x6xf32>) outs(%sum0 : tensor<1x4x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x4x6x6xf32>, tensor<1x4x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x4x6x6xf32>
  %o0 = tensor.empty() : tensor<1x4x6x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %vr : tensor<1x4x6x6xf32>, tensor<1x4x6x8xf32>) outs(%oz : tensor<1x4x6x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x4x6x8xf32>
  return %o : tensor<1x4x6x8xf32>
}

// CHECK-LABEL: func.func @key_padding
// CHECK-SAME: (%[[Q:.*]]: tensor<1x2x4x8xf32>, %[[K:.*]]: tensor<1x2x5x8xf32>, %[[V:.*]]: tensor<1x2x5x8xf32>)
// CHECK-DAG: %[[KS:.*]] = tensor.extract_slice %[[K]][0, 0, 0, 0] [1, 2, 3, 8] [1, 1, 1, 1]
// CHECK-DAG: %[[VS:.*]] = tensor.extract_slice %[[V]][0, 0, 0, 0] [1, 2, 3, 8] [1, 1, 1, 1]
// CHECK: attn.attention ins(%[[Q]], %[[KS]], %[[VS]] : tensor<1x2x4x8xf32>, tensor<1x2x3x8xf32>, tensor<1x2x3x8xf32>) outs(%{{.*}}) {scale = 1.250000e-01 : f64}

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @key_padding(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x5x8xf32>, %v: tensor<1x2x5x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x5xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x5xf32>) -> tensor<1x2x4x5xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x5x8xf32>) outs(%sz : tensor<1x2x4x5xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x5xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x5xf32>) outs(%s0 : tensor<1x2x4x5xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x5xf32>
  %mask = arith.constant dense<[[0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38], [0.0, 0.0, 0.0, -3.40282347E+38, -3.40282347E+38]]> : tensor<4x5xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x2x4x5xf32>, tensor<4x5xf32>) outs(%s0 : tensor<1x2x4x5xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x5xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x4x5xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x4x5xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x5xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x5xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x5xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x5xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x5xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x5xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x5xf32>, tensor<1x2x5x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// CHECK-LABEL: func.func @mask_then_scale_window
// CHECK: attn.attention {{.*}} {causal, scale = 5.000000e-01 : f64, window = array<i64: 2, -1>}

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @mask_then_scale_window(%q: tensor<1x2x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>) -> (tensor<1x2x6x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.5 : f32
  %s0 = tensor.empty() : tensor<1x2x6x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x6x6xf32>) -> tensor<1x2x6x6xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x6x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x6x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x6x6xf32>
  %mask = arith.constant dense<[[0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0xFF800000, 0.0, 0.0, 0.0, 0xFF800000, 0xFF800000], [0xFF800000, 0xFF800000, 0.0, 0.0, 0.0, 0xFF800000], [0xFF800000, 0xFF800000, 0xFF800000, 0.0, 0.0, 0.0]]> : tensor<6x6xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s, %mask : tensor<1x2x6x6xf32>, tensor<6x6xf32>) outs(%s0 : tensor<1x2x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x6x6xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm : tensor<1x2x6x6xf32>) outs(%s0 : tensor<1x2x6x6xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x6x6xf32>
  %r0 = tensor.empty() : tensor<1x2x6xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x6xf32>) -> tensor<1x2x6xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x2x6x6xf32>) outs(%mx0 : tensor<1x2x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x6xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x2x6x6xf32>, tensor<1x2x6xf32>) outs(%s0 : tensor<1x2x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x6x6xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x6xf32>) -> tensor<1x2x6xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x6x6xf32>) outs(%sum0 : tensor<1x2x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x6xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x6x6xf32>, tensor<1x2x6xf32>) outs(%s0 : tensor<1x2x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x6x6xf32>
  %o0 = tensor.empty() : tensor<1x2x6x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x6x8xf32>) -> tensor<1x2x6x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x6x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x6x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x6x8xf32>
  return %o : tensor<1x2x6x8xf32>
}

// Top-left causal with Nq < Nk never shows keys >= Nq: K and V are cut to
// Nq keys, where top-left and bottom-right causal agree.
// CHECK-LABEL: func.func @top_left_causal_cross
// CHECK-DAG: %[[KS:.*]] = tensor.extract_slice %{{.*}}[0, 0, 0, 0] [1, 2, 3, 8] [1, 1, 1, 1] : tensor<1x2x6x8xf32> to tensor<1x2x3x8xf32>
// CHECK-DAG: %[[VS:.*]] = tensor.extract_slice
// CHECK: attn.attention ins(%{{.*}}, %[[KS]], %[[VS]] : {{.*}}) {causal, scale = 1.250000e-01 : f64}

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @top_left_causal_cross(%q: tensor<1x2x3x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>) -> (tensor<1x2x3x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x3x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x3x6xf32>) -> tensor<1x2x3x6xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x3x8xf32>, tensor<1x2x6x8xf32>) outs(%sz : tensor<1x2x3x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x3x6xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x3x6xf32>) outs(%s0 : tensor<1x2x3x6xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x3x6xf32>
  %mask = arith.constant dense<[[0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000, 0xFF800000, 0xFF800000]]> : tensor<3x6xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x2x3x6xf32>, tensor<3x6xf32>) outs(%s0 : tensor<1x2x3x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x3x6xf32>
  %r0 = tensor.empty() : tensor<1x2x3xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x3x6xf32>) outs(%mx0 : tensor<1x2x3xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x3xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x3x6xf32>, tensor<1x2x3xf32>) outs(%s0 : tensor<1x2x3x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x3x6xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x3xf32>) -> tensor<1x2x3xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x3x6xf32>) outs(%sum0 : tensor<1x2x3xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x3xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x3x6xf32>, tensor<1x2x3xf32>) outs(%s0 : tensor<1x2x3x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x3x6xf32>
  %o0 = tensor.empty() : tensor<1x2x3x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x3x8xf32>) -> tensor<1x2x3x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x3x6xf32>, tensor<1x2x6x8xf32>) outs(%oz : tensor<1x2x3x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x3x8xf32>
  return %o : tensor<1x2x3x8xf32>
}

// -----

// Q read and O written as [B, N, H, D] (transposes around the op), the scale
// on Q (q * 0.25), linalg.softmax over the last of four dims.
// CHECK-LABEL: func.func @bshd_prescaled_q
// CHECK-SAME: (%[[Q:.*]]: tensor<1x4x2x8xf32>, %[[K:.*]]: tensor<1x2x4x8xf32>, %[[V:.*]]: tensor<1x2x4x8xf32>)
// CHECK: %[[QT:.*]] = linalg.transpose ins(%[[Q]] : tensor<1x4x2x8xf32>) outs(%{{.*}} : tensor<1x2x4x8xf32>) permutation = [0, 2, 1, 3]
// CHECK: %[[O:.*]] = attn.attention ins(%[[QT]], %[[K]], %[[V]] : {{.*}}) {scale = 2.500000e-01 : f64}
// CHECK: %[[OT:.*]] = linalg.transpose ins(%[[O]] : tensor<1x2x4x8xf32>) outs(%{{.*}} : tensor<1x4x2x8xf32>) permutation = [0, 2, 1, 3]
// CHECK: return %[[OT]]
func.func @bshd_prescaled_q(%q: tensor<1x4x2x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> tensor<1x4x2x8xf32> {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.25 : f32
  %q0 = tensor.empty() : tensor<1x4x2x8xf32>
  %qs = linalg.generic {indexing_maps = [affine_map<(a, b, c, d) -> (a, b, c, d)>, affine_map<(a, b, c, d) -> (a, b, c, d)>], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%q : tensor<1x4x2x8xf32>) outs(%q0 : tensor<1x4x2x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %c, %x : f32
    linalg.yield %y : f32
  } -> tensor<1x4x2x8xf32>
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, m, n, k) -> (b, m, h, k)>, affine_map<(b, h, m, n, k) -> (b, h, n, k)>, affine_map<(b, h, m, n, k) -> (b, h, m, n)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%qs, %k : tensor<1x4x2x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x4x2x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x4x2x8xf32>) -> tensor<1x4x2x8xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, m, n, k) -> (b, h, m, k)>, affine_map<(b, h, m, n, k) -> (b, h, k, n)>, affine_map<(b, h, m, n, k) -> (b, m, h, n)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x4x2x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x4x2x8xf32>
  return %o : tensor<1x4x2x8xf32>
}

// -----

// StableHLO's lowering: materialized broadcasts of the row max and sum
// (linalg.broadcast), the scale a splat constant tensor.
// CHECK-LABEL: func.func @stablehlo_broadcasts
// CHECK: attn.attention {{.*}} {scale = 1.250000e-01 : f64}
// CHECK-NOT: linalg.broadcast
func.func @stablehlo_broadcasts(%q: tensor<4x6x8xf32>, %kt: tensor<4x8x6xf32>, %v: tensor<4x6x8xf32>) -> tensor<4x6x8xf32> {
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %c = arith.constant dense<0.125> : tensor<4x6x6xf32>
  %s0 = tensor.empty() : tensor<4x6x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<4x6x6xf32>) -> tensor<4x6x6xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<4x6x8xf32>, tensor<4x8x6xf32>) outs(%sz : tensor<4x6x6xf32>) -> tensor<4x6x6xf32>
  %ss = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%s, %c : tensor<4x6x6xf32>, tensor<4x6x6xf32>) outs(%s0 : tensor<4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %r = arith.mulf %x, %y : f32
    linalg.yield %r : f32
  } -> tensor<4x6x6xf32>
  %r0 = tensor.empty() : tensor<4x6xf32>
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<4x6xf32>) -> tensor<4x6xf32>
  %mx = linalg.reduce ins(%ss : tensor<4x6x6xf32>) outs(%mx0 : tensor<4x6xf32>) dimensions = [2]
    (%x: f32, %acc: f32) {
      %y = arith.maximumf %x, %acc : f32
      linalg.yield %y : f32
    }
  %mxb = linalg.broadcast ins(%mx : tensor<4x6xf32>) outs(%s0 : tensor<4x6x6xf32>) dimensions = [2]
  %ex = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ss, %mxb : tensor<4x6x6xf32>, tensor<4x6x6xf32>) outs(%s0 : tensor<4x6x6xf32>) {
  ^bb0(%x: f32, %m: f32, %o: f32):
    %d = arith.subf %x, %m : f32
    %e = math.exp %d : f32
    linalg.yield %e : f32
  } -> tensor<4x6x6xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<4x6xf32>) -> tensor<4x6xf32>
  %sum = linalg.reduce ins(%ex : tensor<4x6x6xf32>) outs(%sum0 : tensor<4x6xf32>) dimensions = [2]
    (%x: f32, %acc: f32) {
      %y = arith.addf %x, %acc : f32
      linalg.yield %y : f32
    }
  %sumb = linalg.broadcast ins(%sum : tensor<4x6xf32>) outs(%s0 : tensor<4x6x6xf32>) dimensions = [2]
  %p = linalg.generic {indexing_maps = [affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>, affine_map<(a, b, c) -> (a, b, c)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%ex, %sumb : tensor<4x6x6xf32>, tensor<4x6x6xf32>) outs(%s0 : tensor<4x6x6xf32>) {
  ^bb0(%x: f32, %z: f32, %o: f32):
    %r = arith.divf %x, %z : f32
    linalg.yield %r : f32
  } -> tensor<4x6x6xf32>
  %o0 = tensor.empty() : tensor<4x6x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<4x6x8xf32>) -> tensor<4x6x8xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<4x6x6xf32>, tensor<4x6x8xf32>) outs(%oz : tensor<4x6x8xf32>) -> tensor<4x6x8xf32>
  return %o : tensor<4x6x8xf32>
}

// A run-time mask (an argument) cannot be proved to be causal: untouched.
// CHECK-LABEL: func.func @runtime_mask
// CHECK-NOT: attn.attention
// CHECK: linalg.generic

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @runtime_mask(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>, %m: tensor<4x4xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %m : tensor<1x2x4x4xf32>, tensor<4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// A bias (ALiBi-like values) is not a mask: untouched.
// CHECK-LABEL: func.func @bias_not_mask
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @bias_not_mask(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %mask = arith.constant dense<[[-5.0e-01, 0xFF800000, 0xFF800000, 0xFF800000], [-5.0e-01, -5.0e-01, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000], [0.0, 0.0, 0.0, 0.0]]> : tensor<4x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x2x4x4xf32>, tensor<4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// A query row that sees no key: NaN in the naive form, 0 in the op: untouched.
// CHECK-LABEL: func.func @empty_row
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @empty_row(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %mask = arith.constant dense<[[0xFF800000, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000]]> : tensor<4x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x2x4x4xf32>, tensor<4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// A mask that is not causal / window / padding (a hole): untouched.
// CHECK-LABEL: func.func @mask_with_hole
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @mask_with_hole(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %mask = arith.constant dense<[[0.0, 0xFF800000, 0xFF800000, 0xFF800000], [0.0, 0.0, 0xFF800000, 0xFF800000], [0.0, 0.0, 0.0, 0xFF800000], [0.0, 0xFF800000, 0.0, 0.0]]> : tensor<4x4xf32>
  %sm = linalg.generic {indexing_maps = [#id4, affine_map<(a, b, c, d) -> (c, d)>, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mask : tensor<1x2x4x4xf32>, tensor<4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.addf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sm : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sm, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// The scores are also returned: untouched.
// CHECK-LABEL: func.func @scores_escape
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @scores_escape(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>, tensor<1x2x4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o, %sc : tensor<1x2x4x8xf32>, tensor<1x2x4x4xf32>
}

// A negative scale: untouched.
// CHECK-LABEL: func.func @negative_scale
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @negative_scale(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant -0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// The Q K^T accumulator does not start at zero: untouched.
// CHECK-LABEL: func.func @nonzero_init
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @nonzero_init(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 1.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// Scale by addition is not a scale: untouched.
// CHECK-LABEL: func.func @add_not_scale
// CHECK-NOT: attn.attention

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @add_not_scale(%q: tensor<1x2x4x8xf32>, %k: tensor<1x2x4x8xf32>, %v: tensor<1x2x4x8xf32>) -> (tensor<1x2x4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %s0 = tensor.empty() : tensor<1x2x4x4xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x2x4x4xf32>) -> tensor<1x2x4x4xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : tensor<1x2x4x8xf32>, tensor<1x2x4x8xf32>) outs(%sz : tensor<1x2x4x4xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x4xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x2x4x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.addf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4x4xf32>
  %r0 = tensor.empty() : tensor<1x2x4xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x2x4x4xf32>) outs(%mx0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x2x4xf32>) -> tensor<1x2x4xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x2x4x4xf32>) outs(%sum0 : tensor<1x2x4xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x2x4xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x2x4x4xf32>, tensor<1x2x4xf32>) outs(%s0 : tensor<1x2x4x4xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x2x4x4xf32>
  %o0 = tensor.empty() : tensor<1x2x4x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x2x4x8xf32>) -> tensor<1x2x4x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v : tensor<1x2x4x4xf32>, tensor<1x2x4x8xf32>) outs(%oz : tensor<1x2x4x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x2x4x8xf32>
  return %o : tensor<1x2x4x8xf32>
}

// K and V repeated block-wise (torch's .repeat: query head h reads kv head
// h % Hkv, not h / G): still attention, on the repeated 4-head tensors.
// CHECK-LABEL: func.func @repeat_is_not_gqa
// CHECK: %[[KR:.*]] = tensor.collapse_shape
// CHECK: %[[VR:.*]] = tensor.collapse_shape
// CHECK: attn.attention ins(%{{.*}}, %[[KR]], %[[VR]] : tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>)

// -----

#id4 = affine_map<(a, b, c, d) -> (a, b, c, d)>
#row4 = affine_map<(a, b, c, d) -> (a, b, c)>
#q5 = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#k5 = affine_map<(b, h, m, n, k) -> (b, h, n, k)>
#s5 = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
#v5 = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
func.func @repeat_is_not_gqa(%q: tensor<1x4x6x8xf32>, %k: tensor<1x2x6x8xf32>, %v: tensor<1x2x6x8xf32>) -> (tensor<1x4x6x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %c = arith.constant 0.125 : f32
  %e5 = tensor.empty() : tensor<1x2x2x6x8xf32>
  %kb = linalg.broadcast ins(%k : tensor<1x2x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) dimensions = [1]
  %vb = linalg.broadcast ins(%v : tensor<1x2x6x8xf32>) outs(%e5 : tensor<1x2x2x6x8xf32>) dimensions = [1]
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : tensor<1x2x2x6x8xf32> into tensor<1x4x6x8xf32>
  %s0 = tensor.empty() : tensor<1x4x6x6xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<1x4x6x6xf32>) -> tensor<1x4x6x6xf32>
  %s = linalg.generic {indexing_maps = [#q5, #k5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %kr : tensor<1x4x6x8xf32>, tensor<1x4x6x8xf32>) outs(%sz : tensor<1x4x6x6xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x4x6x6xf32>
  %sc = linalg.generic {indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%s : tensor<1x4x6x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %c : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6x6xf32>
  %r0 = tensor.empty() : tensor<1x4x6xf32>
  %ninf = arith.constant 0xFF800000 : f32
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : tensor<1x4x6xf32>) -> tensor<1x4x6xf32>
  %mx = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%sc : tensor<1x4x6x6xf32>) outs(%mx0 : tensor<1x4x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6xf32>
  %ex = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%sc, %mx : tensor<1x4x6x6xf32>, tensor<1x4x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %d = arith.subf %x, %y : f32
    %y2 = math.exp %d : f32
    linalg.yield %y2 : f32
  } -> tensor<1x4x6x6xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : tensor<1x4x6xf32>) -> tensor<1x4x6xf32>
  %sum = linalg.generic {indexing_maps = [#id4, #row4], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%ex : tensor<1x4x6x6xf32>) outs(%sum0 : tensor<1x4x6xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  } -> tensor<1x4x6xf32>
  %p = linalg.generic {indexing_maps = [#id4, #row4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]} ins(%ex, %sum : tensor<1x4x6x6xf32>, tensor<1x4x6xf32>) outs(%s0 : tensor<1x4x6x6xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %y2 = arith.divf %x, %y : f32
    linalg.yield %y2 : f32
  } -> tensor<1x4x6x6xf32>
  %o0 = tensor.empty() : tensor<1x4x6x8xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<1x4x6x8xf32>) -> tensor<1x4x6x8xf32>
  %o = linalg.generic {indexing_maps = [#q5, #v5, #s5], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %vr : tensor<1x4x6x6xf32>, tensor<1x4x6x8xf32>) outs(%oz : tensor<1x4x6x8xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %mul = arith.mulf %a, %b : f32
    %add = arith.addf %acc, %mul : f32
    linalg.yield %add : f32
  } -> tensor<1x4x6x8xf32>
  return %o : tensor<1x4x6x8xf32>
}

// -----

// A softmax over the query dim: untouched.
// CHECK-LABEL: func.func @softmax_wrong_dim
// CHECK-NOT: attn.attention
// CHECK: linalg.softmax dimension(1)
func.func @softmax_wrong_dim(%q: tensor<8x16x32xf32>, %kt: tensor<8x32x16xf32>, %v: tensor<8x16x32xf32>) -> tensor<8x16x32xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<8x16x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xf32>, tensor<8x32x16xf32>) outs(%sz : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(1) ins(%s : tensor<8x16x16xf32>) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %o0 = tensor.empty() : tensor<8x16x32xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%oz : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %o : tensor<8x16x32xf32>
}

// -----

// bf16 inputs accumulated in f32 (extf in the body): untouched.
// CHECK-LABEL: func.func @mixed_precision
// CHECK-NOT: attn.attention
func.func @mixed_precision(%q: tensor<8x16x32xbf16>, %kt: tensor<8x32x16xbf16>, %v: tensor<8x16x32xf32>) -> tensor<8x16x32xf32> {
  %zero = arith.constant 0.0 : f32
  %s0 = tensor.empty() : tensor<8x16x16xf32>
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %s = linalg.batch_matmul ins(%q, %kt : tensor<8x16x32xbf16>, tensor<8x32x16xbf16>) outs(%sz : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %p = linalg.softmax dimension(2) ins(%s : tensor<8x16x16xf32>) outs(%s0 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %o0 = tensor.empty() : tensor<8x16x32xf32>
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  %o = linalg.batch_matmul ins(%p, %v : tensor<8x16x16xf32>, tensor<8x16x32xf32>) outs(%oz : tensor<8x16x32xf32>) -> tensor<8x16x32xf32>
  return %o : tensor<8x16x32xf32>
}
