// RUN: fa-opt %s --pass-pipeline="builtin.module(attn-tile-backward{block-m=32 block-n=16},canonicalize,cse)" | FileCheck %s

// Sliding window + softcap, GQA (4 query heads over 2 kv heads), Nq != Nk.
// CHECK-LABEL: func @window_softcap_gqa
// CHECK-NOT: 96x160
// CHECK-NOT: 160x96
// Pre-pass: Dr = rowsum(dO * O) and the f32 dQ accumulator, both O(N).
// CHECK-DAG: %[[DR:.*]] = memref.alloc() : memref<2x4x96xf32>
// CHECK-DAG: %[[DQACC:.*]] = memref.alloc() : memref<2x4x96x16xf32>
// CHECK: scf.parallel (%{{.*}}, %{{.*}}, %{{.*}}) = (%c0, %c0, %c0) to (%c2, %c4, %c96)
// CHECK:   scf.for {{.*}} iter_args
// CHECK:   memref.store %{{.*}}, %[[DR]]
// CHECK:   vector.store %{{.*}}, %[[DQACC]]
// Main loops: parallel over (batch, kv head); key blocks outside.
// CHECK: scf.parallel (%[[B:.*]], %[[HK:.*]]) = (%c0, %c0) to (%c2, %c2)
// Per (batch, kv head): K^T, V^T, P, dS, dK, dV tiles.
// CHECK:   %[[KT:.*]] = memref.alloc() : memref<16x16xf32>
// CHECK:   %[[VT:.*]] = memref.alloc() : memref<8x16xf32>
// CHECK:   %[[P:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK:   %[[DS:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK:   %[[DK:.*]] = memref.alloc() : memref<16x16xf32>
// CHECK:   %[[DV:.*]] = memref.alloc() : memref<16x8xf32>
// CHECK:   scf.for %[[KB:.*]] = %c0 to %c10
// K^T and V^T packed once per key block.
// CHECK:       memref.store %{{.*}}, %[[KT]]
// CHECK:       memref.store %{{.*}}, %[[VT]]
// The query heads of the group, then the query blocks that see the key block.
// CHECK:     scf.for %[[G:.*]] = %c0 to %c2
// CHECK:       scf.for %[[QB:.*]] = %{{.*}} to %{{.*}}
// S = Q K^T and dP = dO V^T: blocks of 6 query rows x 2 vectors of 8 keys,
// then the remaining rows one at a time.
// CHECK:         scf.for %{{.*}} step %c6
// CHECK:           scf.for {{.*}} iter_args
// CHECK:             vector.load %[[KT]]
// CHECK:             vector.fma
// CHECK:           vector.store %{{.*}}, %[[P]]
// CHECK:         scf.for %{{.*}} step %c1
// CHECK:         scf.for %{{.*}} step %c6
// CHECK:             vector.load %[[VT]]
// CHECK:           vector.store %{{.*}}, %[[DS]]
// P = exp2(S log2(e) - lse log2(e)) (tanh first with softcap), recomputed
// from the saved lse; dS = P (dP - Dr) (1 - tanh^2).
// CHECK:         scf.if
// CHECK:             memref.load %arg4
// CHECK:             math.copysign %{{.*}} : vector<8xf32>
// CHECK:             math.roundeven %{{.*}} : vector<8xf32>
// CHECK:             vector.store %{{.*}}, %[[P]]
// CHECK:             vector.store %{{.*}}, %[[DS]]
// CHECK:         } else {
// CHECK:             arith.select %{{.*}} : vector<8xi1>, vector<8xf32>
// dV += P^T dO, dK += dS^T Q (key rows, accumulators in registers),
// dQacc += dS K (query rows).
// CHECK:         vector.store %{{.*}}, %[[DV]]
// CHECK:         vector.store %{{.*}}, %[[DK]]
// CHECK:         vector.store %{{.*}}, %[[DQACC]]
// dK (times scale) and dV are stored once per key block.
// CHECK:     arith.truncf %{{.*}} : vector<8xf32> to vector<8xf16>
// CHECK:     vector.store %{{.*}}, %arg6[%[[B]], %[[HK]]
// CHECK:     vector.store %{{.*}}, %arg7[%[[B]], %[[HK]]
// dQ = scale * dQacc, converted.
// CHECK: scf.parallel
// CHECK:   vector.load %[[DQACC]]
// CHECK:   vector.store %{{.*}}, %arg5
// CHECK: memref.dealloc %[[DR]]
// CHECK: memref.dealloc %[[DQACC]]
// CHECK-NOT: attn.attention_backward
func.func @window_softcap_gqa(%q: memref<2x4x96x16xf16>, %k: memref<2x2x160x16xf16>, %v: memref<2x2x160x8xf16>,
                              %o: memref<2x4x96x8xf16>, %l: memref<2x4x96xf32>, %dq: memref<2x4x96x16xf16>,
                              %dk: memref<2x2x160x16xf16>, %dv: memref<2x2x160x8xf16>) {
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>, memref<2x4x96x8xf16>, memref<2x4x96x8xf16>, memref<2x4x96xf32>)
                          outs(%dq, %dk, %dv : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>)
                          {window = array<i64: 20, 0>, softcap = 10.0 : f64}
  return
}
