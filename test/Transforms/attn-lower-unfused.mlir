// RUN: fa-opt %s --attn-lower-unfused --canonicalize --cse | FileCheck %s

// The reference lowering materialises the full score matrix (this is what
// the tiled passes avoid; see no-nxn-buffer.mlir).
// CHECK-LABEL: func @fwd
// CHECK: %[[S:.*]] = memref.alloc() : memref<2x4x96x160xf32>
// Step 1: scores.
// CHECK: scf.parallel {{.*}} to (%c2, %c4, %c96, %c160)
// CHECK:   arith.select
// CHECK:   memref.store %{{.*}}, %[[S]]
// Step 2: row softmax with natural exp and log, lse.
// CHECK: scf.parallel {{.*}} to (%c2, %c4, %c96)
// CHECK:   arith.maximumf
// CHECK:   math.exp
// CHECK:   math.log
// Step 3: O = P V.
// CHECK: scf.parallel {{.*}} to (%c2, %c4, %c96, %c8)
// CHECK: memref.dealloc %[[S]]
func.func @fwd(%q: memref<2x4x96x16xf16>, %k: memref<2x2x160x16xf16>, %v: memref<2x2x160x8xf16>,
               %o: memref<2x4x96x8xf16>, %l: memref<2x4x96xf32>) {
  attn.attention ins(%q, %k, %v : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>)
                 outs(%o : memref<2x4x96x8xf16>) lse(%l : memref<2x4x96xf32>) {causal}
  return
}

// CHECK-LABEL: func @bwd
// CHECK-DAG: %[[P:.*]] = memref.alloc() : memref<2x4x96x160xf32>
// CHECK-DAG: %[[DS:.*]] = memref.alloc() : memref<2x4x96x160xf32>
// CHECK: scf.parallel {{.*}} to (%c2, %c4, %c96, %c160)
// CHECK:   math.exp
// CHECK: scf.parallel {{.*}} to (%c2, %c4, %c96, %c16)
// CHECK: scf.parallel {{.*}} to (%c2, %c2, %c160, %c16)
// CHECK: scf.parallel {{.*}} to (%c2, %c2, %c160, %c8)
func.func @bwd(%q: memref<2x4x96x16xf16>, %k: memref<2x2x160x16xf16>, %v: memref<2x2x160x8xf16>,
               %o: memref<2x4x96x8xf16>, %l: memref<2x4x96xf32>, %dq: memref<2x4x96x16xf16>,
               %dk: memref<2x2x160x16xf16>, %dv: memref<2x2x160x8xf16>) {
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>, memref<2x4x96x8xf16>, memref<2x4x96x8xf16>, memref<2x4x96xf32>)
                          outs(%dq, %dk, %dv : memref<2x4x96x16xf16>, memref<2x2x160x16xf16>, memref<2x2x160x8xf16>) {causal}
  return
}
