// RUN: fa-opt %s --split-input-file --verify-diagnostics
// The verifier rules of the KV-cache form (kv_cache / block_table), one case
// each.

func.func @table_without_lens(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<6x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %t: memref<2x3xi32>) {
  // expected-error @+1 {{'block_table' needs the per-sequence lengths: add kv_cache(cache_seqlens)}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<6x2x16x8xf32>) block_table(%t : memref<2x3xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @with_varlen(%q: memref<30x4x8xf32>, %k: memref<30x4x8xf32>, %v: memref<30x4x8xf32>, %o: memref<30x4x8xf32>, %cu: memref<3xi32>, %m: index, %lens: memref<2xi32>) {
  // expected-error @+1 {{the KV-cache form (kv_cache) cannot be combined with varlen}}
  attn.attention ins(%q, %k, %v : memref<30x4x8xf32>, memref<30x4x8xf32>, memref<30x4x8xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) kv_cache(%lens : memref<2xi32>) outs(%o : memref<30x4x8xf32>)
  return
}

// -----

func.func @lens_dtype(%q: memref<2x4x1x8xf32>, %k: memref<2x2x16x8xf32>, %v: memref<2x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi64>) {
  // expected-error @+1 {{expects 'cache_seqlens' to be a rank-1 i32 [batch], got 'memref<2xi64>'}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) kv_cache(%lens : memref<2xi64>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @lens_batch(%q: memref<2x4x1x8xf32>, %k: memref<2x2x16x8xf32>, %v: memref<2x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<3xi32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'cache_seqlens' has 3}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) kv_cache(%lens : memref<3xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @table_rank(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<6x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi32>, %t: memref<6xi32>) {
  // expected-error @+1 {{expects 'block_table' to be a rank-2 i32 [batch, max_blocks], got 'memref<6xi32>'}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<6x2x16x8xf32>) kv_cache(%lens : memref<2xi32>) block_table(%t : memref<6xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @table_empty(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<6x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi32>, %t: memref<2x0xi32>) {
  // expected-error @+1 {{'block_table' must have at least one column}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<6x2x16x8xf32>) kv_cache(%lens : memref<2xi32>) block_table(%t : memref<2x0xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @table_batch(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<6x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi32>, %t: memref<3x3xi32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'block_table' has 3}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<6x2x16x8xf32>) kv_cache(%lens : memref<2xi32>) block_table(%t : memref<3x3xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @paged_blocks(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<5x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi32>, %t: memref<2x3xi32>) {
  // expected-error @+1 {{key/value block count mismatch: 'key' has 6 but 'value' has 5}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<5x2x16x8xf32>) kv_cache(%lens : memref<2xi32>) block_table(%t : memref<2x3xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @contiguous_batch(%q: memref<2x4x1x8xf32>, %k: memref<6x2x16x8xf32>, %v: memref<6x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: memref<2xi32>) {
  // expected-error @+1 {{batch mismatch: 'query' has 2 but 'key' has 6}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<6x2x16x8xf32>, memref<6x2x16x8xf32>) kv_cache(%lens : memref<2xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}

// -----

func.func @mixed_kinds(%q: memref<2x4x1x8xf32>, %k: memref<2x2x16x8xf32>, %v: memref<2x2x16x8xf32>, %o: memref<2x4x1x8xf32>, %lens: tensor<2xi32>) {
  // expected-error @+1 {{operands must be all tensors or all memrefs, not a mix}}
  attn.attention ins(%q, %k, %v : memref<2x4x1x8xf32>, memref<2x2x16x8xf32>, memref<2x2x16x8xf32>) kv_cache(%lens : tensor<2xi32>) outs(%o : memref<2x4x1x8xf32>)
  return
}
