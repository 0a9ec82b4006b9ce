// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward{block-m=32 block-n=16},canonicalize,cse)" --split-input-file | FileCheck %s
// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward,canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=DEFAULT
// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-forward{vector-width=16},canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=W16

// Causal GQA cross-attention, Nq = 96 != Nk = 160, f16, D = 16, Dv = 8.
// CHECK-LABEL: func @causal_gqa
// No buffer of Nq x Nk (or any larger one) exists after tiling.
// CHECK-NOT: 96x160
// CHECK-NOT: 160x96
// Grid over (batch, query head, query block): 2 x 4 x ceil(96/32).
// CHECK: scf.parallel (%[[B:.*]], %[[H:.*]], %[[QB:.*]]) = (%c0, %c0, %c0) to (%c2, %c4, %c3)
// GQA: kv head = h / (Hq / Hkv).
// CHECK:   %[[HK:.*]] = arith.divsi %[[H]], %c2
// Per-block tiles only: Q^T (D x BM), S^T (keys x queries), accumulator,
// running max m, sum l and rescale factor alpha.
// CHECK:   %[[QT:.*]] = memref.alloc() : memref<16x32xf32>
// CHECK:   %[[ST:.*]] = memref.alloc() : memref<16x32xf32>
// CHECK:   %[[ACC:.*]] = memref.alloc() : memref<32x8xf32>
// CHECK:   %[[M:.*]] = memref.alloc() : memref<32xf32>
// CHECK:   %[[L:.*]] = memref.alloc() : memref<32xf32>
// CHECK:   %[[A:.*]] = memref.alloc() : memref<32xf32>
// CHECK-NOT: 96x160
// Q^T packed once per query block, f16 extended to f32 and scaled by
// scale * log2(e).
// CHECK:   memref.load %arg0[%[[B]], %[[H]]
// CHECK:   arith.extf %{{.*}} : f16 to f32
// CHECK:   arith.mulf
// CHECK:   memref.store %{{.*}}, %[[QT]]
// Causal: the key loop ends at the last visible key block.
// CHECK:   %[[KHI:.*]] = arith.ceildivsi %{{.*}}, %c16
// CHECK:   %[[KBHI:.*]] = arith.maxsi %[[KHI]], %c0
// CHECK:   scf.for %[[KB:.*]] = %c0 to %[[KBHI]]
// S^T = K Q^T as outer products: blocks of 6 keys x 2 vectors of 8 queries
// whose 12 accumulators are loop-carried through the D loop; each step loads
// the Q^T vectors and broadcasts one K scalar per key.
// CHECK:     scf.for %{{.*}} = %c0 to %c12 step %c6
// CHECK:       scf.for %{{.*}} = %c0 to %c16 step %c1 iter_args({{.*}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK:         vector.load %[[QT]]
// CHECK:         memref.load %arg1[%[[B]], %[[HK]]
// CHECK:         vector.broadcast %{{.*}} : f32 to vector<8xf32>
// CHECK:         vector.fma
// CHECK:       vector.store %{{.*}}, %[[ST]]
// Only boundary blocks are masked (-inf), with vector compares.
// CHECK:     scf.if %{{.*}} {
// CHECK-NEXT: } else {
// CHECK:       arith.cmpi sge, %{{.*}} : vector<8xi32>
// CHECK:       arith.select %{{.*}} : vector<8xi1>, vector<8xf32>
// CHECK:     }
// Online softmax with queries along the vectors: the row max is an
// element-wise max over the key rows, exp2 a polynomial.
// CHECK:     scf.for {{.*}} iter_args
// CHECK:       arith.maxnumf %{{.*}} fastmath<nnan> : vector<8xf32>
// CHECK:     math.roundeven
// CHECK:     vector.store %{{.*}}, %[[A]]
// CHECK:     vector.store %{{.*}}, %[[M]]
// CHECK:     scf.for {{.*}} iter_args
// CHECK:       math.roundeven
// CHECK:       vector.store %{{.*}}, %[[ST]]
// CHECK:     vector.store %{{.*}}, %[[L]]
// acc = alpha acc + P V: blocks of 8 query rows; P broadcast from S^T,
// V rows as f16 vectors.
// CHECK:     scf.for %[[I:.*]] = %c0 to %c32 step %c8
// CHECK:       memref.load %[[A]][%[[I]]]
// CHECK:       vector.load %[[ACC]][%[[I]], %c0]
// CHECK:       scf.for {{.*}} iter_args
// CHECK:         vector.load %arg2{{.*}} : memref<2x2x160x8xf16>, vector<8xf16>
// CHECK:         arith.extf %{{.*}} : vector<8xf16> to vector<8xf32>
// CHECK:         memref.load %[[ST]]
// CHECK:         vector.fma
// CHECK:       vector.store %{{.*}}, %[[ACC]]
// Epilogue: O = acc / l, lse = (m + log2 l) * ln 2, -inf for empty rows.
// CHECK:   arith.divf
// CHECK:   arith.truncf %{{.*}} : vector<8xf32> to vector<8xf16>
// CHECK:   math.log2
// CHECK:   memref.store %{{.*}}, %arg4
// CHECK:   memref.dealloc %[[QT]]
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
// CHECK: memref.alloc() : memref<32x8xf32>
// CHECK: memref.alloc() : memref<24x8xf32>
// CHECK-NOT: arith.maxsi %{{.*}}, %c0
// DEFAULT-LABEL: func @attr_blocks
// DEFAULT: memref.alloc() : memref<32x8xf32>
// DEFAULT: memref.alloc() : memref<24x8xf32>
func.func @attr_blocks(%q: memref<1x2x100x32xbf16>, %o: memref<1x2x100x32xbf16>) {
  attn.attention ins(%q, %q, %q : memref<1x2x100x32xbf16>, memref<1x2x100x32xbf16>, memref<1x2x100x32xbf16>)
                 outs(%o : memref<1x2x100x32xbf16>) {block_sizes = array<i64: 8, 24>}
  return
}

// -----

// Default block sizes, dynamic shapes, softcap via tanh built from exp2.
// CHECK-LABEL: func @dynamic_softcap
// DEFAULT-LABEL: func @dynamic_softcap
// At 16 lanes (AVX-512): 64 queries are 4 vectors, and S^T is computed in
// blocks of 6 keys x 4 vectors (24 accumulators).
// W16-LABEL: func @dynamic_softcap
// W16: scf.for %{{.*}} = %c0 to %c60 step %c6
// W16: scf.for %{{.*}} = %c0 to %c64 step %c1 iter_args({{.*}}) -> (vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>, vector<16xf32>)
// W16: math.copysign %{{.*}} : vector<16xf32>
// DEFAULT: memref.alloc() : memref<64x64xf32>
// DEFAULT: math.absf %{{.*}} : vector<8xf32>
// DEFAULT: math.roundeven %{{.*}} : vector<8xf32>
// DEFAULT: math.copysign %{{.*}} : vector<8xf32>
// DEFAULT-NOT: memref.alloc(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}})
func.func @dynamic_softcap(%q: memref<?x?x?x64xf32>, %k: memref<?x?x?x64xf32>, %v: memref<?x?x?x64xf32>,
                           %o: memref<?x?x?x64xf32>) {
  attn.attention ins(%q, %k, %v : memref<?x?x?x64xf32>, memref<?x?x?x64xf32>, memref<?x?x?x64xf32>)
                 outs(%o : memref<?x?x?x64xf32>) {softcap = 30.0 : f64}
  return
}
