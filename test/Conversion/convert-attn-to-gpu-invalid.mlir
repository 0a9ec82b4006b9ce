// RUN: fa-opt %s --convert-attn-to-gpu --verify-diagnostics

func.func @tensor(%q: tensor<1x2x8x8xf32>, %o: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{must be on memrefs for convert-attn-to-gpu (bufferize first, e.g. with one-shot-bufferize)}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%o : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}
