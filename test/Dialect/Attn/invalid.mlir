// RUN: fa-opt %s --split-input-file --verify-diagnostics

func.func @rank_query(%q: tensor<2x4x16xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{expects 'query' to have rank 4 ([batch, heads, seq, dim]), got rank 3}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @rank_lse(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>, %l: tensor<2x4x16x1xf32>) {
  // expected-error @+1 {{expects 'lse' to have rank 3 ([batch, heads, seq]), got rank 4}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) lse(%l : tensor<2x4x16x1xf32>) -> tensor<2x4x16x8xf32>, tensor<2x4x16x1xf32>
  return
}

// -----

func.func @elt_query(%q: tensor<2x4x16x8xi32>, %k: tensor<2x4x16x8xi32>, %v: tensor<2x4x16x8xi32>, %o: tensor<2x4x16x8xi32>) {
  // expected-error @+1 {{'query' element type must be f16, bf16 or f32, got 'i32'}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xi32>, tensor<2x4x16x8xi32>, tensor<2x4x16x8xi32>) outs(%o : tensor<2x4x16x8xi32>) -> tensor<2x4x16x8xi32>
  return
}

// -----

func.func @elt_f64(%q: tensor<2x4x16x8xf64>, %k: tensor<2x4x16x8xf64>, %v: tensor<2x4x16x8xf64>, %o: tensor<2x4x16x8xf64>) {
  // expected-error @+1 {{'query' element type must be f16, bf16 or f32, got 'f64'}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf64>, tensor<2x4x16x8xf64>, tensor<2x4x16x8xf64>) outs(%o : tensor<2x4x16x8xf64>) -> tensor<2x4x16x8xf64>
  return
}

// -----

func.func @elt_key(%q: tensor<2x4x16x8xf16>, %k: tensor<2x4x16x8xbf16>, %v: tensor<2x4x16x8xf16>, %o: tensor<2x4x16x8xf16>) {
  // expected-error @+1 {{'key' element type 'bf16' differs from the query's 'f16'}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf16>, tensor<2x4x16x8xbf16>, tensor<2x4x16x8xf16>) outs(%o : tensor<2x4x16x8xf16>) -> tensor<2x4x16x8xf16>
  return
}

// -----

func.func @elt_output(%q: tensor<2x4x16x8xf16>, %k: tensor<2x4x16x8xf16>, %v: tensor<2x4x16x8xf16>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'output' element type 'f32' differs from the query's 'f16'}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf16>, tensor<2x4x16x8xf16>, tensor<2x4x16x8xf16>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @elt_lse(%q: tensor<2x4x16x8xf16>, %k: tensor<2x4x16x8xf16>, %v: tensor<2x4x16x8xf16>, %o: tensor<2x4x16x8xf16>, %l: tensor<2x4x16xf16>) {
  // expected-error @+1 {{'lse' must have element type f32, got 'f16'}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf16>, tensor<2x4x16x8xf16>, tensor<2x4x16x8xf16>) outs(%o : tensor<2x4x16x8xf16>) lse(%l : tensor<2x4x16xf16>) -> tensor<2x4x16x8xf16>, tensor<2x4x16xf16>
  return
}

// -----

func.func @batch(%q: tensor<2x4x16x8xf32>, %k: tensor<3x4x16x8xf32>, %v: tensor<3x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'key' has 3}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<3x4x16x8xf32>, tensor<3x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @kv_heads(%q: tensor<2x4x16x8xf32>, %k: tensor<2x2x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{key/value head count mismatch: 'key' has 2 but 'value' has 4}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x2x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @gqa_multiple(%q: tensor<2x6x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x6x16x8xf32>) {
  // expected-error @+1 {{query head count (6) must be a multiple of the key/value head count (4)}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x6x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x6x16x8xf32>) -> tensor<2x6x16x8xf32>
  return
}

// -----

func.func @zero_kv_heads(%q: tensor<2x6x16x8xf32>, %k: tensor<2x0x16x8xf32>, %v: tensor<2x0x16x8xf32>, %o: tensor<2x6x16x8xf32>) {
  // expected-error @+1 {{'key' must have at least one head, got 0}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x6x16x8xf32>, tensor<2x0x16x8xf32>, tensor<2x0x16x8xf32>) outs(%o : tensor<2x6x16x8xf32>) -> tensor<2x6x16x8xf32>
  return
}

// -----

func.func @out_heads(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x2x16x8xf32>) {
  // expected-error @+1 {{query head count mismatch: 'query' has 4 but 'output' has 2}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x2x16x8xf32>) -> tensor<2x2x16x8xf32>
  return
}

// -----

func.func @kv_seq(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x32x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{key/value sequence length mismatch: 'key' has 32 but 'value' has 16}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x32x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @out_seq(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x32x8xf32>, %v: tensor<2x4x32x8xf32>, %o: tensor<2x4x32x8xf32>) {
  // expected-error @+1 {{query sequence length mismatch: 'query' has 16 but 'output' has 32}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x32x8xf32>, tensor<2x4x32x8xf32>) outs(%o : tensor<2x4x32x8xf32>) -> tensor<2x4x32x8xf32>
  return
}

// -----

func.func @head_dim(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x16xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{query/key head dim mismatch: 'query' has 8 but 'key' has 16}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @head_dim_v(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x16xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{value/output head dim mismatch: 'value' has 16 but 'output' has 8}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x16xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @lse_batch(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>, %l: tensor<1x4x16xf32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'lse' has 1}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) lse(%l : tensor<1x4x16xf32>) -> tensor<2x4x16x8xf32>, tensor<1x4x16xf32>
  return
}

// -----

func.func @lse_heads(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>, %l: tensor<2x2x16xf32>) {
  // expected-error @+1 {{query head count mismatch: 'query' has 4 but 'lse' has 2}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) lse(%l : tensor<2x2x16xf32>) -> tensor<2x4x16x8xf32>, tensor<2x2x16xf32>
  return
}

// -----

func.func @lse_seq(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>, %l: tensor<2x4x8xf32>) {
  // expected-error @+1 {{query sequence length mismatch: 'query' has 16 but 'lse' has 8}}
  %r:2 = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) lse(%l : tensor<2x4x8xf32>) -> tensor<2x4x16x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @scale_inf(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'scale' must be finite, got INF}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {scale = 0x7FF0000000000000 : f64} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @scale_dyn_d(%q: tensor<2x4x16x?xf32>, %k: tensor<2x4x16x?xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{requires an explicit 'scale' when the head dim of 'query' is dynamic (the default is 1/sqrt(D))}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x?xf32>, tensor<2x4x16x?xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @window_len(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'window' must have two values [left, right], got 3}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {window = array<i64: 1, 2, 3>} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @window_neg(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'window' values must be >= -1 (-1 = unbounded), got [-2, 0]}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {window = array<i64: -2, 0>} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @softcap_zero(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'softcap' must be a finite value > 0, got 0}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {softcap = 0.0 : f64} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @softcap_neg(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'softcap' must be a finite value > 0, got -5}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {softcap = -5.0 : f64} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @block_len(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'block_sizes' must have two values [BM, BN], got 1}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {block_sizes = array<i64: 64>} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @block_zero(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'block_sizes' values must be positive, got [64, 0]}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) {block_sizes = array<i64: 64, 0>} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @memref_results(%q: memref<2x4x16x8xf32>, %k: memref<2x4x16x8xf32>, %v: memref<2x4x16x8xf32>, %o: memref<2x4x16x8xf32>) {
  // expected-error @+1 {{on memrefs must have no results}}
  %r = attn.attention ins(%q, %k, %v : memref<2x4x16x8xf32>, memref<2x4x16x8xf32>, memref<2x4x16x8xf32>) outs(%o : memref<2x4x16x8xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @tensor_results(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>, %l: tensor<2x4x16xf32>) {
  // expected-error @+1 {{on tensors must return one result per init (2), got 1}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) lse(%l : tensor<2x4x16xf32>) -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @result_type(%q: tensor<2x4x16x8xf32>, %k: tensor<2x4x16x8xf32>, %v: tensor<2x4x16x8xf32>, %o: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{result #0 type 'tensor<2x4x16x?xf32>' must match the type of init 'output' 'tensor<2x4x16x8xf32>'}}
  %r = attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%o : tensor<2x4x16x8xf32>) -> tensor<2x4x16x?xf32>
  return
}

// -----

func.func @mixed(%q: tensor<2x4x16x8xf32>, %k: memref<2x4x16x8xf32>, %v: memref<2x4x16x8xf32>, %o: memref<2x4x16x8xf32>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, not a mix}}
  attn.attention ins(%q, %k, %v : tensor<2x4x16x8xf32>, memref<2x4x16x8xf32>, memref<2x4x16x8xf32>) outs(%o : memref<2x4x16x8xf32>)
  return
}

// -----

func.func @bwd_grad_output(%q: memref<2x4x16x8xf16>, %k: memref<2x4x16x8xf16>, %v: memref<2x4x16x8xf16>, %o: memref<2x4x16x8xf16>, %do: memref<2x4x32x8xf16>, %l: memref<2x4x16xf32>) {
  // expected-error @+1 {{sequence length mismatch: 'grad_output' has 32 but 'output' has 16}}
  attn.attention_backward ins(%q, %k, %v, %o, %do, %l : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x32x8xf16>, memref<2x4x16xf32>) outs(%q, %k, %v : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>)
  return
}

// -----

func.func @bwd_grad_query(%q: memref<2x4x16x8xf16>, %k: memref<2x4x16x8xf16>, %v: memref<2x4x16x8xf16>, %o: memref<2x4x16x8xf16>, %l: memref<2x4x16xf32>, %dq: memref<2x4x16x16xf16>) {
  // expected-error @+1 {{head dim mismatch: 'grad_query' has 16 but 'query' has 8}}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16xf32>) outs(%dq, %k, %v : memref<2x4x16x16xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>)
  return
}

// -----

func.func @bwd_grad_key(%q: memref<2x8x16x8xf16>, %k: memref<2x4x16x8xf16>, %v: memref<2x4x16x8xf16>, %o: memref<2x8x16x8xf16>, %l: memref<2x8x16xf32>, %dk: memref<2x8x16x8xf16>) {
  // expected-error @+1 {{head count mismatch: 'grad_key' has 8 but 'key' has 4}}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x8x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x8x16x8xf16>, memref<2x8x16x8xf16>, memref<2x8x16xf32>) outs(%q, %dk, %v : memref<2x8x16x8xf16>, memref<2x8x16x8xf16>, memref<2x4x16x8xf16>)
  return
}

// -----

func.func @bwd_grad_value(%q: memref<2x4x16x8xf16>, %k: memref<2x4x16x8xf16>, %v: memref<2x4x16x8xf16>, %o: memref<2x4x16x8xf16>, %l: memref<2x4x16xf32>, %dv: memref<2x4x16x8xf32>) {
  // expected-error @+1 {{'grad_value' element type 'f32' differs from the query's 'f16'}}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16xf32>) outs(%q, %k, %dv : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf32>)
  return
}

// -----

func.func @bwd_lse(%q: memref<2x4x16x8xf16>, %k: memref<2x4x16x8xf16>, %v: memref<2x4x16x8xf16>, %o: memref<2x4x16x8xf16>, %l: memref<2x4x16xf16>) {
  // expected-error @+1 {{'lse' must have element type f32, got 'f16'}}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16xf16>) outs(%q, %k, %v : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>)
  return
}

// -----

func.func @bwd_gqa(%q: memref<2x5x16x8xf16>, %k: memref<2x2x16x8xf16>, %v: memref<2x2x16x8xf16>, %o: memref<2x5x16x8xf16>, %l: memref<2x5x16xf32>) {
  // expected-error @+1 {{query head count (5) must be a multiple of the key/value head count (2)}}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x5x16x8xf16>, memref<2x2x16x8xf16>, memref<2x2x16x8xf16>, memref<2x5x16x8xf16>, memref<2x5x16x8xf16>, memref<2x5x16xf32>) outs(%q, %k, %v : memref<2x5x16x8xf16>, memref<2x2x16x8xf16>, memref<2x2x16x8xf16>)
  return
}

// -----

func.func @bwd_window(%q: memref<2x4x16x8xf16>, %o: memref<2x4x16x8xf16>, %l: memref<2x4x16xf32>) {
  // expected-error @+1 {{'window' values must be >= -1 (-1 = unbounded), got [4, -3]}}
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16xf32>) outs(%q, %q, %q : memref<2x4x16x8xf16>, memref<2x4x16x8xf16>, memref<2x4x16x8xf16>) {window = array<i64: 4, -3>}
  return
}

// -----

// Limits (flashmlir/runtime/Limits.h): head dims in [1, 256].
func.func @head_dim_v_limit(%q: memref<1x1x16x64xf16>, %v: memref<1x1x16x1024xf16>) {
  // expected-error @+1 {{'value' head dim = 1024 is out of range: it must be in [1, 256]}}
  attn.attention ins(%q, %q, %v : memref<1x1x16x64xf16>, memref<1x1x16x64xf16>, memref<1x1x16x1024xf16>) outs(%v : memref<1x1x16x1024xf16>)
  return
}

// -----

func.func @head_dim_limit_huge(%q: tensor<1x1x16x9223372036854775807xf32>, %v: tensor<1x1x16x8xf32>) {
  // expected-error @+1 {{'query' head dim = 9223372036854775807 is out of range: it must be in [1, 256]}}
  %r = attn.attention ins(%q, %q, %v : tensor<1x1x16x9223372036854775807xf32>, tensor<1x1x16x9223372036854775807xf32>, tensor<1x1x16x8xf32>) outs(%v : tensor<1x1x16x8xf32>) -> tensor<1x1x16x8xf32>
  return
}

// -----

// Sequence lengths in [0, 2^30].
func.func @seq_limit(%q: tensor<1x1x16x8xf32>, %k: tensor<1x1x2147483648x8xf32>) {
  // expected-error @+1 {{'key' sequence length = 2147483648 is out of range: it must be in [0, 1073741824]}}
  %r = attn.attention ins(%q, %k, %k : tensor<1x1x16x8xf32>, tensor<1x1x2147483648x8xf32>, tensor<1x1x2147483648x8xf32>) outs(%q : tensor<1x1x16x8xf32>) -> tensor<1x1x16x8xf32>
  return
}

// -----

// |scale| <= 1e18: scale * log2(e) must be finite in f32.
func.func @scale_limit(%q: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'scale' = 1e+39 is out of range: it must be finite with |scale| <= 1e+18}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%q : tensor<2x4x16x8xf32>) {scale = 1.0e39 : f64} -> tensor<2x4x16x8xf32>
  return
}

// -----

// Window sides: -1 or [0, 2^30].
func.func @window_limit(%q: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'window' left = 9223372036854775807 is out of range: it must be -1 (unbounded) or in [0, 1073741824]}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%q : tensor<2x4x16x8xf32>) {window = array<i64: 9223372036854775807, 0>} -> tensor<2x4x16x8xf32>
  return
}

// -----

// softcap in [1e-18, 1e18].
func.func @softcap_limit(%q: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'softcap' = 1e+300 is out of range: it must be in [1e-18, 1e+18]}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%q : tensor<2x4x16x8xf32>) {softcap = 1.0e300 : f64} -> tensor<2x4x16x8xf32>
  return
}

// -----

// block_sizes in [1, 1024].
func.func @block_limit(%q: tensor<2x4x16x8xf32>) {
  // expected-error @+1 {{'block_sizes' BM = 1000000000000 is out of range: it must be in [1, 1024]}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>, tensor<2x4x16x8xf32>) outs(%q : tensor<2x4x16x8xf32>) {block_sizes = array<i64: 1000000000000, 64>} -> tensor<2x4x16x8xf32>
  return
}

// -----

func.func @bwd_head_dim_limit(%q: memref<1x1x16x512xf32>, %l: memref<1x1x16xf32>) {
  // expected-error @+1 {{'query' head dim = 512 is out of range: it must be in [1, 256]}}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x1x16x512xf32>, memref<1x1x16x512xf32>, memref<1x1x16x512xf32>, memref<1x1x16x512xf32>, memref<1x1x16x512xf32>, memref<1x1x16xf32>) outs(%q, %q, %q : memref<1x1x16x512xf32>, memref<1x1x16x512xf32>, memref<1x1x16x512xf32>)
  return
}
