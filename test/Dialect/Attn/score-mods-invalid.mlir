// RUN: fa-opt %s --split-input-file --verify-diagnostics

func.func @alibi_elt(%q: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>, %al: tensor<4xf16>) {
  // expected-error @+1 {{expects 'alibi_slopes' to be f32 [heads] or [batch, heads], got 'tensor<4xf16>'}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) alibi_slopes(%al : tensor<4xf16>) outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @alibi_rank(%q: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>, %al: tensor<1x4x1xf32>) {
  // expected-error @+1 {{expects 'alibi_slopes' to be f32 [heads] or [batch, heads], got 'tensor<1x4x1xf32>'}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) alibi_slopes(%al : tensor<1x4x1xf32>) outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @alibi_heads(%q: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>, %al: tensor<2xf32>) {
  // expected-error @+1 {{query head count mismatch: 'query' has 4 but 'alibi_slopes' has 2}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) alibi_slopes(%al : tensor<2xf32>) outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @alibi_batch(%q: tensor<2x4x8x16xf32>, %o: tensor<2x4x8x16xf32>, %al: tensor<3x4xf32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'alibi_slopes' has 3}}
  %r = attn.attention ins(%q, %q, %q : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>) alibi_slopes(%al : tensor<3x4xf32>) outs(%o : tensor<2x4x8x16xf32>) -> tensor<2x4x8x16xf32>
  return
}

// -----

func.func @alibi_varlen_batch(%q: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<4xi32>, %m: index, %al: memref<2x4xf32>) {
  // expected-error @+1 {{batch mismatch: 'alibi_slopes' has 2 rows but 'cu_seqlens_q' describes 3 sequences}}
  attn.attention ins(%q, %q, %q : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<4xi32>, memref<4xi32>) alibi_slopes(%al : memref<2x4xf32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @sinks_shape(%q: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>, %sk: tensor<1x4xf32>) {
  // expected-error @+1 {{expects 'sinks' to be f32 [heads], got 'tensor<1x4xf32>'}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) sinks(%sk : tensor<1x4xf32>) outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @sinks_heads(%q: tensor<1x4x8x16xf32>, %o: tensor<1x4x8x16xf32>, %sk: tensor<8xf32>) {
  // expected-error @+1 {{query head count mismatch: 'query' has 4 but 'sinks' has 8}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) sinks(%sk : tensor<8xf32>) outs(%o : tensor<1x4x8x16xf32>) -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @mixed_kinds(%q: memref<1x4x8x16xf32>, %o: memref<1x4x8x16xf32>, %sk: tensor<4xf32>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, not a mix}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) sinks(%sk : tensor<4xf32>) outs(%o : memref<1x4x8x16xf32>)
  return
}

// -----

func.func @grad_sinks_without_sinks(%q: memref<1x4x8x16xf32>, %l: memref<1x4x8xf32>, %gs: memref<4xf32>) {
  // expected-error @+1 {{'grad_sinks' needs the sinks: add sinks(%s) to the operands}}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8xf32>) outs(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) grad_sinks(%gs : memref<4xf32>)
  return
}

// -----

func.func @grad_sinks_result(%q: tensor<1x4x8x16xf32>, %l: tensor<1x4x8xf32>, %sk: tensor<4xf32>) {
  // expected-error @+1 {{on tensors must return one result per init (4), got 3}}
  %r:3 = attn.attention_backward ins(%q, %q, %q, %q, %q, %l : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8xf32>) sinks(%sk : tensor<4xf32>) outs(%q, %q, %q : tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>) grad_sinks(%sk : tensor<4xf32>) -> tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>, tensor<1x4x8x16xf32>
  return
}

// -----

func.func @rotary_dim(%q: memref<1x4x8x16xf32>, %c: memref<32x10xf32>) {
  // expected-error @+1 {{rotary_dim = 20 (2 x dim 1 of the tables) exceeds the head dim 16}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) rotary(%c, %c : memref<32x10xf32>, memref<32x10xf32>) outs(%q : memref<1x4x8x16xf32>)
  return
}

// -----

func.func @rotary_shapes(%q: memref<1x4x8x16xf32>, %c: memref<32x4xf32>, %s: memref<16x4xf32>) {
  // expected-error @+1 {{'rotary_cos' 'memref<32x4xf32>' and 'rotary_sin' 'memref<16x4xf32>' must have one shape}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) rotary(%c, %s : memref<32x4xf32>, memref<16x4xf32>) outs(%q : memref<1x4x8x16xf32>)
  return
}

// -----

func.func @rotary_dynamic_half(%q: memref<1x4x8x16xf32>, %c: memref<32x?xf32>) {
  // expected-error @+1 {{the rotary tables need a static rotary_dim / 2 >= 1 (dim 1)}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) rotary(%c, %c : memref<32x?xf32>, memref<32x?xf32>) outs(%q : memref<1x4x8x16xf32>)
  return
}

// -----

func.func @rotary_interleaved_alone(%q: memref<1x4x8x16xf32>) {
  // expected-error @+1 {{'rotary_interleaved' needs the rotary tables: add rotary(%cos, %sin)}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) outs(%q : memref<1x4x8x16xf32>) {rotary_interleaved}
  return
}

// -----

func.func @rotary_kv_cache(%q: memref<2x4x1x16xf32>, %kc: memref<2x4x64x16xf32>, %lens: memref<2xi32>, %c: memref<64x4xf32>) {
  // expected-error @+1 {{rotary with kv_cache is not supported yet}}
  attn.attention ins(%q, %kc, %kc : memref<2x4x1x16xf32>, memref<2x4x64x16xf32>, memref<2x4x64x16xf32>) kv_cache(%lens : memref<2xi32>) rotary(%c, %c : memref<64x4xf32>, memref<64x4xf32>) outs(%q : memref<2x4x1x16xf32>)
  return
}

// -----

func.func @rotary_elt(%q: memref<1x4x8x16xf32>, %c: memref<32x4xf16>) {
  // expected-error @+1 {{expects 'rotary_cos' to be f32 [positions, rotary_dim / 2], got 'memref<32x4xf16>'}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x16xf32>, memref<1x4x8x16xf32>, memref<1x4x8x16xf32>) rotary(%c, %c : memref<32x4xf16>, memref<32x4xf16>) outs(%q : memref<1x4x8x16xf32>)
  return
}
