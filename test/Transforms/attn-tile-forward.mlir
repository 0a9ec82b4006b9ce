// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward{block-m=32 block-n=16},canonicalize,cse)" --split-input-file | FileCheck %s
// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward,canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=DEFAULT

// Causal GQA cross-attention, Nq = 96 != Nk = 160, f16, D = 16, Dv = 8.
// CHECK-LABEL: func @causal_gqa
// No buffer of Nq x Nk (or any larger one) exists after tiling.
// CHECK-NOT: 96x160
// CHECK-NOT: 160x96
// Grid over (batch, query head, query block): 2 x 4 x ceil(96/32).
// CHECK: scf.parallel (%[[B:.*]], %[[H:.*]], %[[QB:.*]]) = (%c0, %c0, %c0) to (%c2, %c4, %c3)
// GQA: kv head = h / (Hq / Hkv).
// CHECK:   %[[HK:.*]] = arith.divsi %[[H]], %c2
// Per-block tiles only: scores, accumulator, running max m and sum l.
// CHECK-DAG:   %[[S:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK-DAG:   %[[ACC:.*]] = memref.alloc() : memref<32x8xf32>
// CHECK-DAG:   %[[M:.*]] = memref.alloc() : memref<32xf32>
// CHECK-DAG:   %[[L:.*]] = memref.alloc() : memref<32xf32>
// CHECK-NOT: 96x160
// Causal: the key loop ends at the last visible key block.
// CHECK:   %[[KHI:.*]] = arith.ceildivsi %{{.*}}, %c16
// CHECK:   %[[KBHI:.*]] = arith.maxsi %[[KHI]], %c0
// CHECK:   scf.for %[[KB:.*]] = %c0 to %[[KBHI]]
// Whole, fully visible blocks take the unmasked branch.
// CHECK:     scf.if %{{.*}} {
// CHECK-NOT:   arith.select
// CHECK:       %[[QK:.*]] = scf.for {{.*}} iter_args
// CHECK:         arith.extf %{{.*}} : f16 to f32
// scale * log2(e) folded into one multiply: 0.25 * 1.4427.
// CHECK:       arith.mulf %[[QK]], %cst{{.*}} : f32
// CHECK:     } else {
// CHECK:       arith.cmpi sle
// CHECK:       arith.select %{{.*}}, %{{.*}}, %cst{{.*}} : f32
// CHECK:     }
// Online softmax: running max, exp2 rescale of the sum and accumulator.
// CHECK:     scf.for {{.*}} iter_args
// CHECK:       arith.maximumf
// CHECK:     math.exp2
// CHECK:     scf.for {{.*}} iter_args
// CHECK:       math.exp2
// CHECK:     memref.store %{{.*}}, %[[L]]
// CHECK:     memref.store %{{.*}}, %[[M]]
// CHECK:     arith.mulf
// CHECK:     memref.store %{{.*}}, %[[ACC]]
// Epilogue: O = acc / l, lse = (m + log2 l) * ln 2, -inf for empty rows.
// CHECK:   arith.divf
// CHECK:   arith.truncf %{{.*}} : f32 to f16
// CHECK:   math.log2
// CHECK:   memref.store %{{.*}}, %arg4
// CHECK:   memref.dealloc %[[S]]
// CHECK-NOT: attn.attention
func.func @causal_gqa(%q: memref<2x4x96x16xf16>, %k: memref<2x2x160x16xf16>, %v: memref<2x2x160x8xf16>,
                      %o: memref<2x4x96x8xf16>, %l: memref<2x4x96xf32>) {
  attn.attention ins(%q, %k, %v : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>)
                 outs(%o : memref<2x4x96x8xf16>) lse(%l : memref<2x4x96xf32>) {causal}
  return
}

// -----

// block_sizes on the op win over the pass options; no mask: one branch has
// only the ragged-length check.
// CHECK-LABEL: func @attr_blocks
// CHECK: memref.alloc() : memref<8x24xf32>
// CHECK-NOT: arith.maxsi %{{.*}}, %c0
// DEFAULT-LABEL: func @attr_blocks
// DEFAULT: memref.alloc() : memref<8x24xf32>
func.func @attr_blocks(%q: memref<1x2x100x32xbf16>, %o: memref<1x2x100x32xbf16>) {
  attn.attention ins(%q, %q, %q : memref<1x2x100x32xbf16>, memref<1x2x100x32xbf16>, memref<1x2x100x32xbf16>)
                 outs(%o : memref<1x2x100x32xbf16>) {block_sizes = array<i64: 8, 24>}
  return
}

// -----

// Default block sizes, dynamic shapes, softcap via tanh built from exp2.
// CHECK-LABEL: func @dynamic_softcap
// DEFAULT-LABEL: func @dynamic_softcap
// DEFAULT: memref.alloc() : memref<64x64xf32>
// DEFAULT: math.absf
// DEFAULT: math.exp2
// DEFAULT: math.copysign
// DEFAULT-NOT: memref.alloc(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
func.func @dynamic_softcap(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %v: memref<?x?x?x64xf32>,
                           %o: memref<?x?x?x64xf32>) {
  attn.attention ins(%q, %k, %v : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>)
                 outs(%o : memref<?x?x?x64xf32>) {softcap = 30.0 : f64}
  return
}
