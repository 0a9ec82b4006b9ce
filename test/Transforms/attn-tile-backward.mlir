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
// Main loops: parallel over (batch, kv head); key blocks outside.
// CHECK: scf.parallel (%[[B:.*]], %[[HK:.*]]) = (%c0, %c0) to (%c2, %c2)
// CHECK-DAG:   %[[P:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK-DAG:   %[[DS:.*]] = memref.alloc() : memref<32x16xf32>
// CHECK-DAG:   %[[DK:.*]] = memref.alloc() : memref<16x16xf32>
// CHECK-DAG:   %[[DV:.*]] = memref.alloc() : memref<16x8xf32>
// CHECK:   scf.for %[[KB:.*]] = %c0 to %c10
// The query heads of the group, then the query blocks that see the key block.
// CHECK:     scf.for %[[G:.*]] = %c0 to %c2
// CHECK:       scf.for %[[QB:.*]] = %{{.*}} to %{{.*}}
// P = exp2(S log2(e) - lse log2(e)), recomputed from the saved lse.
// CHECK:         scf.if
// CHECK:           memref.load %arg4
// CHECK:           math.exp2
// CHECK:           math.copysign
// CHECK:           math.exp2
// CHECK:           memref.store %{{.*}}, %[[P]]
// CHECK:           memref.store %{{.*}}, %[[DS]]
// CHECK:         } else {
// CHECK:           arith.select
// dV += P^T dO, dK += scale dS^T Q, dQacc += scale dS K.
// CHECK:         memref.store %{{.*}}, %[[DV]]
// CHECK:         memref.store %{{.*}}, %[[DK]]
// CHECK:         memref.store %{{.*}}, %[[DQACC]]
// dK and dV are stored once per key block.
// CHECK:     arith.truncf
// CHECK:     memref.store %{{.*}}, %arg6[%[[B]], %[[HK]]
// CHECK:     memref.store %{{.*}}, %arg7[%[[B]], %[[HK]]
// dQ = dQacc converted.
// CHECK: scf.parallel
// CHECK:   memref.load %[[DQACC]]
// CHECK:   memref.store %{{.*}}, %arg5
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
