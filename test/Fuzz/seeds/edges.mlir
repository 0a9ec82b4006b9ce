// Seeds for tools/fuzz/fa_fuzz.py (with every other lit input): forward and
// backward on memrefs with every attribute at the edge of its range
// (runtime/include/flashmlir/runtime/Limits.h), static and dynamic shapes.
// As a test: they pass the verifier and lower through the CPU and GPU paths.
// RUN: fa-opt %s --attn-cpu-pipeline > /dev/null
// RUN: fa-opt %s --convert-attn-to-gpu > /dev/null
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_90a" > /dev/null

func.func @fwd_edges(%q: memref<1x4x8x256xf16>, %k: memref<1x1x1024x256xf16>, %v: memref<1x1x1024x256xf16>,
                     %o: memref<1x4x8x256xf16>, %l: memref<1x4x8xf32>) {
  attn.attention ins(%q, %k, %v : memref<1x4x8x256xf16>, memref<1x1x1024x256xf16>, memref<1x1x1024x256xf16>)
                 outs(%o : memref<1x4x8x256xf16>) lse(%l : memref<1x4x8xf32>)
                 {window = array<i64: 1073741824, 0>, scale = 1.0e+18 : f64, softcap = 1.0e-18 : f64, block_sizes = array<i64: 64, 64>}
  return
}

func.func @bwd_dyn(%q: memref<?x?x?x8xbf16>, %k: memref<?x?x?x8xbf16>, %v: memref<?x?x?x8xbf16>,
                   %o: memref<?x?x?x8xbf16>, %do: memref<?x?x?x8xbf16>, %l: memref<?x?x?xf32>,
                   %dq: memref<?x?x?x8xbf16>, %dk: memref<?x?x?x8xbf16>, %dv: memref<?x?x?x8xbf16>) {
  attn.attention_backward ins(%q, %k, %v, %o, %do, %l : memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>, memref<?x?x?xf32>)
                          outs(%dq, %dk, %dv : memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>, memref<?x?x?x8xbf16>)
                          {causal, window = array<i64: 0, -1>, scale = 0.125 : f64, softcap = 50.0 : f64}
  return
}
