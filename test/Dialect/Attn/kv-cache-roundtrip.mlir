// RUN: fa-opt %s | fa-opt | FileCheck %s
// RUN: fa-opt %s --mlir-print-op-generic | fa-opt | FileCheck %s
// RUN: fa-opt %s --one-shot-bufferize="bufferize-function-boundaries" | FileCheck %s --check-prefix=BUF

// The KV-cache form: kv_cache(cache_seqlens) with a contiguous cache, and
// block_table(...) for a paged one ([num_blocks, Hkv, block_size, D]).

// CHECK-LABEL: func @paged
// CHECK: attn.attention ins(%{{.*}}, %{{.*}}, %{{.*}} : memref<4x32x1x128xbf16>, memref<512x8x16x128xbf16>, memref<512x8x16x128xbf16>) kv_cache(%{{.*}} : memref<4xi32>) block_table(%{{.*}} : memref<4x128xi32>) outs(%{{.*}} : memref<4x32x1x128xbf16>) lse(%{{.*}} : memref<4x32x1xf32>) {causal}
func.func @paged(%q: memref<4x32x1x128xbf16>, %kc: memref<512x8x16x128xbf16>, %vc: memref<512x8x16x128xbf16>, %lens: memref<4xi32>, %t: memref<4x128xi32>, %o: memref<4x32x1x128xbf16>, %l: memref<4x32x1xf32>) {
  attn.attention ins(%q, %kc, %vc : memref<4x32x1x128xbf16>, memref<512x8x16x128xbf16>, memref<512x8x16x128xbf16>)
      kv_cache(%lens : memref<4xi32>) block_table(%t : memref<4x128xi32>)
      outs(%o : memref<4x32x1x128xbf16>) lse(%l : memref<4x32x1xf32>) {causal}
  return
}

// CHECK-LABEL: func @contiguous
// CHECK: attn.attention ins({{.*}}) kv_cache(%{{.*}} : tensor<2xi32>) outs(%{{.*}} : tensor<2x8x3x64xf32>) -> tensor<2x8x3x64xf32>
// BUF-LABEL: func @contiguous
// BUF: attn.attention ins({{.*}}) kv_cache(%{{.*}} : memref<2xi32{{.*}}>) outs({{.*}})
// BUF-NOT: ->
func.func @contiguous(%q: tensor<2x8x3x64xf32>, %kc: tensor<2x2x100x64xf32>, %vc: tensor<2x2x100x64xf32>, %lens: tensor<2xi32>, %o: tensor<2x8x3x64xf32>) -> tensor<2x8x3x64xf32> {
  %r = attn.attention ins(%q, %kc, %vc : tensor<2x8x3x64xf32>, tensor<2x2x100x64xf32>, tensor<2x2x100x64xf32>)
      kv_cache(%lens : tensor<2xi32>)
      outs(%o : tensor<2x8x3x64xf32>) -> tensor<2x8x3x64xf32>
  return %r : tensor<2x8x3x64xf32>
}
