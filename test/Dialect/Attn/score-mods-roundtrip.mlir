// RUN: fa-opt %s | fa-opt | FileCheck %s
// RUN: fa-opt %s --mlir-print-op-generic | fa-opt | FileCheck %s

// ALiBi slopes per head and attention sinks on the forward op.
// CHECK-LABEL: func @fwd_alibi_sinks
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x16x64xf16>, tensor<2x2x32x64xf16>, tensor<2x2x32x64xf16>) alibi_slopes(%{{.*}} : tensor<8xf32>) sinks(%{{.*}} : tensor<8xf32>) outs(%{{.*}} : tensor<2x8x16x64xf16>) lse(%{{.*}} : tensor<2x8x16xf32>) {causal} -> tensor<2x8x16x64xf16>, tensor<2x8x16xf32>
func.func @fwd_alibi_sinks(%q: tensor<2x8x16x64xf16>, %k: tensor<2x2x32x64xf16>, %v: tensor<2x2x32x64xf16>,
                           %o: tensor<2x8x16x64xf16>, %l: tensor<2x8x16xf32>, %al: tensor<8xf32>,
                           %sk: tensor<8xf32>) -> (tensor<2x8x16x64xf16>, tensor<2x8x16xf32>) {
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x8x16x64xf16>, tensor<2x2x32x64xf16>, tensor<2x2x32x64xf16>)
                        alibi_slopes(%al : tensor<8xf32>) sinks(%sk : tensor<8xf32>)
                        outs(%o : tensor<2x8x16x64xf16>) lse(%l : tensor<2x8x16xf32>) {causal}
                        -> tensor<2x8x16x64xf16>, tensor<2x8x16xf32>
  return %r#0, %r#1 : tensor<2x8x16x64xf16>, tensor<2x8x16xf32>
}

// Per-sequence slopes [B, Hq] with a paged KV cache, on memrefs.
// CHECK-LABEL: func @fwd_alibi_paged
// CHECK: attn.attention ins({{.*}}) kv_cache(%{{.*}} : memref<2xi32>) block_table(%{{.*}} : memref<2x4xi32>) alibi_slopes(%{{.*}} : memref<2x4xf32>) outs(%{{.*}} : memref<2x4x1x32xbf16>)
func.func @fwd_alibi_paged(%q: memref<2x4x1x32xbf16>, %kc: memref<16x2x8x32xbf16>, %vc: memref<16x2x8x32xbf16>,
                           %lens: memref<2xi32>, %tab: memref<2x4xi32>, %al: memref<2x4xf32>,
                           %o: memref<2x4x1x32xbf16>) {
  attn.attention ins(%q, %kc, %vc : memref<2x4x1x32xbf16>, memref<16x2x8x32xbf16>, memref<16x2x8x32xbf16>)
                 kv_cache(%lens : memref<2xi32>) block_table(%tab : memref<2x4xi32>)
                 alibi_slopes(%al : memref<2x4xf32>) outs(%o : memref<2x4x1x32xbf16>)
  return
}

// The backward with sinks returns grad_sinks as a fourth result.
// CHECK-LABEL: func @bwd_sinks
// CHECK: %{{.*}}:4 = attn.attention_backward ins({{.*}}) sinks(%{{.*}} : tensor<4xf32>) outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>) grad_sinks(%{{.*}} : tensor<4xf32>) {window = array<i64: 4, 0>} -> tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<4xf32>
func.func @bwd_sinks(%q: tensor<1x4x8x16xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x8x16xf32>,
                     %o: tensor<1x4x8x16xf32>, %do: tensor<1x4x8x16xf32>, %l: tensor<1x4x8xf32>,
                     %sk: tensor<4xf32>, %gs: tensor<4xf32>)
    -> (tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<4xf32>) {
  %r:4 = attn.attention_backward ins(%q, %k, %v, %o, %do, %l : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8xf32>)
                                 sinks(%sk : tensor<4xf32>)
                                 outs(%q, %k, %v : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>)
                                 grad_sinks(%gs : tensor<4xf32>) {window = array<i64: 4, 0>}
                                 -> tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<4xf32>
  return %r#0, %r#1, %r#2, %r#3 : tensor<1x4x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<4xf32>
}

// Varlen backward with per-sequence slopes (3 sequences), memrefs.
// CHECK-LABEL: func @bwd_varlen_alibi
// CHECK: attn.attention_backward ins({{.*}}) varlen({{.*}}) alibi_slopes(%{{.*}} : memref<3x4xf32>) outs({{.*}})
func.func @bwd_varlen_alibi(%q: memref<30x4x8xf32>, %lse: memref<4x30xf32>, %cu: memref<4xi32>,
                            %m: index, %al: memref<3x4xf32>) {
  attn.attention_backward ins(%q, %q, %q, %q, %q, %lse : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<4x30xf32>)
                          varlen(%cu, %cu, %m, %m : memref<4xi32>, memref<4xi32>)
                          alibi_slopes(%al : memref<3x4xf32>)
                          outs(%q, %q, %q : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>)
  return
}

// Fused rotary tables (GPT-J pairs) on the forward and the backward.
// CHECK-LABEL: func @rotary
// CHECK: attn.attention ins({{.*}}) rotary(%{{.*}}, %{{.*}} : memref<?x16xf32>, memref<?x16xf32>) outs(%{{.*}} : memref<1x4x8x64xbf16>) {causal, rotary_interleaved}
// CHECK: attn.attention_backward ins({{.*}}) rotary(%{{.*}}, %{{.*}} : memref<?x16xf32>, memref<?x16xf32>) outs({{.*}}) {rotary_interleaved}
func.func @rotary(%q: memref<1x4x8x64xbf16>, %l: memref<1x4x8xf32>, %c: memref<?x16xf32>, %s: memref<?x16xf32>) {
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>)
                 rotary(%c, %s : memref<?x16xf32>, memref<?x16xf32>)
                 outs(%q : memref<1x4x8x64xbf16>) {causal, rotary_interleaved}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8xf32>)
                          rotary(%c, %s : memref<?x16xf32>, memref<?x16xf32>)
                          outs(%q, %q, %q : memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>, memref<1x4x8x64xbf16>) {rotary_interleaved}
  return
}
