// RUN: fa-opt %s --split-input-file --verify-diagnostics
// The verifier rules of the variable-length form, one case each.

func.func @varlen_partial(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>) {
  // expected-error @+1 {{the varlen operands 'cu_seqlens_q', 'cu_seqlens_k', 'max_seqlen_q', 'max_seqlen_k' must be given together}}
  "attn.attention"(%q, %k, %v, %o, %cu) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0>}> ({}, {}) : (memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<3xi32>) -> ()
  return
}

// -----

func.func @varlen_cu_dtype(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cuq: memref<3xi64>, %cuk: memref<3xi32>, %m: index) {
  // expected-error @+1 {{expects 'cu_seqlens_q' to be a rank-1 i32 [batch + 1] of offsets, got 'memref<3xi64>'}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cuq, %cuk, %m, %m : memref<3xi64>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_cu_rank(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cuq: memref<3xi32>, %cuk: memref<3x1xi32>, %m: index) {
  // expected-error @+1 {{expects 'cu_seqlens_k' to be a rank-1 i32 [batch + 1] of offsets, got 'memref<3x1xi32>'}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cuq, %cuk, %m, %m : memref<3xi32>, memref<3x1xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_cu_empty(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<0xi32>, %m: index) {
  // expected-error @+1 {{'cu_seqlens_q' must have at least one element (batch + 1)}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<0xi32>, memref<0xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_cu_batch(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cuq: memref<3xi32>, %cuk: memref<4xi32>, %m: index) {
  // expected-error @+1 {{batch + 1 mismatch: 'cu_seqlens_q' has 3 but 'cu_seqlens_k' has 4}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cuq, %cuk, %m, %m : memref<3xi32>, memref<4xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_mixed(%q: tensor<30x4x8xf32>, %k: tensor<30x4x8xf32>, %v: tensor<30x4x8xf32>, %o: tensor<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, not a mix}}
  %r = attn.attention ins(%q, %k, %v : tensor<30x4x8xf32>, tensor<30x4x8xf32>, tensor<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : tensor<30x4x8xf32>) -> tensor<30x4x8xf32>
  return
}

// -----

func.func @varlen_rank(%q: memref<1x30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{expects 'query' to have rank 3 ([total_tokens, heads, dim]), got rank 4}}
  attn.attention ins(%q, %k, %v : memref<1x30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_lse_rank(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %l: memref<1x4x30xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{expects 'lse' to have rank 2 ([heads, total_q]), got rank 3}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>) lse(%l : memref<1x4x30xf32>)
  return
}

// -----

func.func @varlen_lse_tokens(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %l: memref<4x31xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{query total tokens mismatch: 'query' has 30 but 'lse' has 31}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>) lse(%l : memref<4x31xf32>)
  return
}

// -----

func.func @varlen_lse_heads(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %l: memref<2x30xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{query head count mismatch: 'query' has 4 but 'lse' has 2}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>) lse(%l : memref<2x30xf32>)
  return
}

// -----

func.func @varlen_kv_tokens(%q: memref<30x4x8xf32>, %k: memref<20x4x8xf32>, %v: memref<21x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{key/value total tokens mismatch: 'key' has 20 but 'value' has 21}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<20x4x8xf32>, memref<21x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_q_tokens(%q: memref<30x4x8xf32>, %k: memref<20x4x8xf32>, %v: memref<20x4x8xf32>, %o: memref<29x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{query total tokens mismatch: 'query' has 30 but 'output' has 29}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<20x4x8xf32>, memref<20x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<29x4x8xf32>)
  return
}

// -----

func.func @varlen_gqa(%q: memref<30x4x8xf32>, %k: memref<20x3x8xf32>, %v: memref<20x3x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{query head count (4) must be a multiple of the key/value head count (3)}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<20x3x8xf32>, memref<20x3x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_head_dim(%q: memref<30x4x8xf32>, %k: memref<20x4x16xf32>, %v: memref<20x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{query/key head dim mismatch: 'query' has 8 but 'key' has 16}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<20x4x16xf32>, memref<20x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_scale(%q: memref<30x4x?xf32>, %k: memref<20x4x?xf32>, %v: memref<20x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{requires an explicit 'scale' when the head dim of 'query' is dynamic}}
  attn.attention ins(%q, %k, %v : memref<30x4x?xf32>, memref<20x4x?xf32>, memref<20x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @varlen_bwd_grad(%q: memref<30x4x8xf32>, %k: memref<20x4x8xf32>, %v: memref<20x4x8xf32>, %o: memref<30x4x8xf32>, %do: memref<30x4x8xf32>, %l: memref<4x30xf32>, %dq: memref<30x4x8xf32>, %dk: memref<21x4x8xf32>, %dv: memref<20x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{total tokens mismatch: 'grad_key' has 21 but 'key' has 20}}
  attn.attention_backward ins(%q, %k, %v, %o, %do, %l : memref<30x4x8xf32>, memref<20x4x8xf32>, memref<20x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<4x30xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%dq, %dk, %dv : memref<30x4x8xf32>, memref<21x4x8xf32>, memref<20x4x8xf32>)
  return
}

// -----

func.func @varlen_bwd_lse(%q: memref<30x4x8xf32>, %k: memref<20x4x8xf32>, %v: memref<20x4x8xf32>, %o: memref<30x4x8xf32>, %do: memref<30x4x8xf32>, %l: memref<4x30x1xf32>, %dq: memref<30x4x8xf32>, %dk: memref<20x4x8xf32>, %dv: memref<20x4x8xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{expects 'lse' to have rank 2 ([heads, total_q]), got rank 3}}
  attn.attention_backward ins(%q, %k, %v, %o, %do, %l : memref<30x4x8xf32>, memref<20x4x8xf32>, memref<20x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>, memref<4x30x1xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%dq, %dk, %dv : memref<30x4x8xf32>, memref<20x4x8xf32>, memref<20x4x8xf32>)
  return
}
