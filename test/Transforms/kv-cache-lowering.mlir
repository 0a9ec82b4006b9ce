// RUN: fa-opt %s --attn-tile-forward | FileCheck %s
// RUN: not fa-opt %s --attn-lower-unfused 2>&1 | FileCheck %s --check-prefix=UNFUSED
// RUN: not fa-opt %s --convert-attn-to-gpu 2>&1 | FileCheck %s --check-prefix=GPU

// The KV-cache form through attn-tile-forward: each sequence's key count is
// cache_seqlens[b] (an i32 load, index_cast), and a paged cache reads its
// rows through the block table (division / remainder by the block size,
// dim 2 of the key blocks). The other lowerings say they do not take it.

// CHECK-LABEL: func @paged
// CHECK: scf.parallel
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<4xi32>
// CHECK: arith.index_cast
// CHECK: arith.divui
// CHECK: memref.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<4x8xi32>
// CHECK: arith.remui
// CHECK-NOT: attn.attention
func.func @paged(%q: memref<4x8x1x64xf32>, %kc: memref<40x2x16x64xf32>, %vc: memref<40x2x16x64xf32>, %lens: memref<4xi32>, %t: memref<4x8xi32>, %o: memref<4x8x1x64xf32>, %l: memref<4x8x1xf32>) {
  attn.attention ins(%q, %kc, %vc : memref<4x8x1x64xf32>, memref<40x2x16x64xf32>, memref<40x2x16x64xf32>)
      kv_cache(%lens : memref<4xi32>) block_table(%t : memref<4x8xi32>)
      outs(%o : memref<4x8x1x64xf32>) lse(%l : memref<4x8x1xf32>) {causal}
  return
}

// UNFUSED: error: 'attn.attention' op with a KV cache (kv_cache operands) is not supported by attn-lower-unfused yet (attn-tile-forward lowers it)
// GPU: error: 'attn.attention' op with a KV cache (kv_cache operands) is not supported by convert-attn-to-gpu yet (attn-tile-forward lowers it)
