// The regression guard of FlashMLIR's memory promise: after the tiled forward
// and backward passes, no tensor or memref of Nq x Nk (or larger) exists.
// Nq = 96 and Nk = 160 are distinct from every other size here, so any type
// holding both is an Nq x Nk buffer. The UNFUSED run shows the check can fail.
//
// RUN: fa-opt %s --attn-tile-forward --attn-tile-backward --canonicalize --cse | FileCheck %s
// RUN: fa-opt %s --attn-lower-unfused --canonicalize --cse | FileCheck %s --check-prefix=UNFUSED
//
// Dynamic shapes: no allocation takes four sizes (B, H, Nq, Nk).
// RUN: fa-opt %s --attn-tile-forward --attn-tile-backward --canonicalize --cse | FileCheck %s --check-prefix=DYN
// RUN: fa-opt %s --attn-lower-unfused --canonicalize --cse | FileCheck %s --check-prefix=DYN-UNFUSED

// CHECK-LABEL: func @static
// CHECK-NOT: {{(96x160|160x96)}}
// CHECK-LABEL: func @dynamic
// UNFUSED-LABEL: func @static
// UNFUSED: memref<2x4x96x160xf32>

// DYN-LABEL: func @dynamic
// DYN-NOT: memref.alloc(%{{[^,)]*}}, %{{[^,)]*}}, %{{[^,)]*}}, %{{[^,)]*}})
// DYN-NOT: memref<?x?x?x?xf32>
// DYN-UNFUSED-LABEL: func @dynamic
// DYN-UNFUSED: memref.alloc(%{{[^,)]*}}, %{{[^,)]*}}, %{{[^,)]*}}, %{{[^,)]*}}) : memref<?x?x?x?xf32>

func.func @static(%q: memref<2x4x96x16xbf16>, %k: memref<2x2x160x16xbf16>, %v: memref<2x2x160x8xbf16>,
                  %o: memref<2x4x96x8xbf16>, %l: memref<2x4x96xf32>, %dq: memref<2x4x96x16xbf16>,
                  %dk: memref<2x2x160x16xbf16>, %dv: memref<2x2x160x8xbf16>) {
  attn.attention ins(%q, %k, %v : memref<2x4x96x16xbf16>, memref<2x2x160x16xbf16>, memref<2x2x160x8xbf16>)
                 outs(%o : memref<2x4x96x8xbf16>) lse(%l : memref<2x4x96xf32>) {window = array<i64: 33, 7>}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x96x16xbf16>, memref<2x2x160x16xbf16>, memref<2x2x160x8xbf16>, memref<2x4x96x8xbf16>, memref<2x4x96x8xbf16>, memref<2x4x96xf32>)
                          outs(%dq, %dk, %dv : memref<2x4x96x16xbf16>, memref<2x2x160x16xbf16>, memref<2x2x160x8xbf16>) {window = array<i64: 33, 7>}
  return
}

func.func @dynamic(%q: memref<?x?x?x32xf32>, %k: memref<?x?x?x32xf32>, %v: memref<?x?x?x32xf32>,
                   %o: memref<?x?x?x32xf32>, %l: memref<?x?x?xf32>) {
  attn.attention ins(%q, %k, %v : memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>)
                 outs(%o : memref<?x?x?x32xf32>) lse(%l : memref<?x?x?xf32>) {causal}
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?xf32>)
                          outs(%q, %k, %v : memref<?x?x?x32xf32>, memref<?x?x?x32xf32>, memref<?x?x?x32xf32>) {causal}
  return
}
