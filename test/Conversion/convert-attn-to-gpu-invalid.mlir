// RUN: fa-opt %s --convert-attn-to-gpu --split-input-file --verify-diagnostics

func.func @tensor(%q: tensor<1x2x8x8xf32>, %o: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{must be on memrefs for convert-attn-to-gpu (bufferize first, e.g. with one-shot-bufferize)}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%o : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}

// -----

func.func @varlen_bwd(%q: memref<30x4x64xf16>, %l: memref<4x30xf32>, %cu: memref<3xi32>, %m: index) {
  // expected-error @+1 {{in the variable-length form is not supported by convert-attn-to-gpu yet}}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<4x30xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) outs(%q, %q, %q : memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>)
  return
}
