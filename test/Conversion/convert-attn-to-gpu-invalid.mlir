// RUN: fa-opt %s --convert-attn-to-gpu --split-input-file --verify-diagnostics

func.func @tensor(%q: tensor<1x2x8x8xf32>, %o: tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32> {
  // expected-error @+1 {{must be on memrefs for convert-attn-to-gpu (bufferize first, e.g. with one-shot-bufferize)}}
  %r = attn.attention ins(%q, %q, %q : tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32>) outs(%o : tensor<1x2x8x8xf32>) -> tensor<1x2x8x8xf32>
  return %r : tensor<1x2x8x8xf32>
}

// -----

func.func @varlen_bwd_sinks(%q: memref<30x4x64xf16>, %l: memref<4x30xf32>, %cu: memref<3xi32>, %m: index, %sk: memref<4xf32>) {
  // expected-error @+1 {{convert-attn-to-gpu: the variable-length backward has no grad_sinks on the GPU yet (attn-tile-backward lowers it on the CPU)}}
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>, memref<4x30xf32>) varlen(%cu, %cu, %m, %m : memref<3xi32>, memref<3xi32>) sinks(%sk : memref<4xf32>) outs(%q, %q, %q : memref<30x4x64xf16>, memref<30x4x64xf16>, memref<30x4x64xf16>) grad_sinks(%sk : memref<4xf32>)
  return
}

// -----

// RoPE on the GPU (convert-attn-to-gpu-rotary.mlir) rotates 8-element
// chunks with their partners R/2 apart: R must be a multiple of 16.
func.func @rotary_dim_24(%q: memref<1x4x8x64xf16>, %o: memref<1x4x8x64xf16>, %c: memref<8x12xf32>) {
  // expected-error @+1 {{convert-attn-to-gpu: the rotary dim 24 must be a multiple of 16}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xf16>, memref<1x4x8x64xf16>, memref<1x4x8x64xf16>) rotary(%c, %c : memref<8x12xf32>, memref<8x12xf32>) outs(%o : memref<1x4x8x64xf16>)
  return
}

// -----

// The rotation is in the tensor-core kernels only: f32 (SIMT) is an error.
func.func @rotary_f32(%q: memref<1x4x8x64xf32>, %o: memref<1x4x8x64xf32>, %c: memref<8x32xf32>) {
  // expected-error @+1 {{convert-attn-to-gpu: RoPE on the GPU is in the tensor-core kernels only (f16 / bf16; this configuration's forward is a SIMT kernel)}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xf32>, memref<1x4x8x64xf32>, memref<1x4x8x64xf32>) rotary(%c, %c : memref<8x32xf32>, memref<8x32xf32>) outs(%o : memref<1x4x8x64xf32>)
  return
}

// -----

func.func @rotary_strides(%q: memref<1x4x8x64xf16>, %o: memref<1x4x8x64xf16>, %c: memref<8x32xf32>, %s: memref<8x32xf32, strided<[64, 1]>>) {
  // expected-error @+1 {{convert-attn-to-gpu: rotary tables 'memref<8x32xf32>' and 'memref<8x32xf32, strided<[64, 1]>>' must have the same strides, unit along the rotary dims}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xf16>, memref<1x4x8x64xf16>, memref<1x4x8x64xf16>) rotary(%c, %s : memref<8x32xf32>, memref<8x32xf32, strided<[64, 1]>>) outs(%o : memref<1x4x8x64xf16>)
  return
}

// -----

// The kernels read slope (b, h) at b * alibi_stride_b + h.
func.func @alibi_strided(%q: memref<1x4x8x64xf16>, %o: memref<1x4x8x64xf16>, %sl: memref<1x4xf32, strided<[8, 2]>>) {
  // expected-error @+1 {{convert-attn-to-gpu: alibi_slopes 'memref<1x4xf32, strided<[8, 2]>>' must have a unit stride over its heads}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xf16>, memref<1x4x8x64xf16>, memref<1x4x8x64xf16>) alibi_slopes(%sl : memref<1x4xf32, strided<[8, 2]>>) outs(%o : memref<1x4x8x64xf16>)
  return
}

// -----

func.func @gpu_rejects_regions(%q: memref<1x4x8x64xf16>, %o: memref<1x4x8x64xf16>) {
  // expected-error @+1 {{with a mask_mod region is not supported by convert-attn-to-gpu yet}}
  attn.attention ins(%q, %q, %q : memref<1x4x8x64xf16>, memref<1x4x8x64xf16>, memref<1x4x8x64xf16>) outs(%o : memref<1x4x8x64xf16>) mask_mod {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %m = arith.cmpi sle, %j, %i : index
    attn.yield %m : i1
  }
  return
}
