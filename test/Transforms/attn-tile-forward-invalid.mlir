// RUN: fa-opt %s --attn-tile-forward --split-input-file --verify-diagnostics

func.func @tensors(%q: tensor<1x2x8x8xf32>, %o: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{must be on memrefs for attn-tile-forward (bufferize first, e.g. with one-shot-bufferize)}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%o : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}

// -----

func.func @dynamic_head_dim(%q: memref<1x2x8x?xf32>, %o: memref<1x2x8x?xf32>) {
  // expected-error @+1 {{needs static head dims for attn-tile-forward (kernels are specialised per head dim)}}
  attn.attention ins(%q, %q, %q : memref<1x2x8x?xf32>, memref<1x2x8x?xf32>, memref<1x2x8x?xf32>) outs(%o : memref<1x2x8x?xf32>) {scale = 0.5 : f64}
  return
}
