// RUN: fa-opt %s --attn-cpu-pipeline="block-m=16 block-n=32" | FileCheck %s --implicit-check-not=attn. --implicit-check-not=scf. --implicit-check-not=memref. --implicit-check-not=arith.
// RUN: fa-opt %s --attn-cpu-pipeline="unfused=1" | FileCheck %s --check-prefix=UNFUSED

// The whole host pipeline: only the LLVM dialect is left, the C interface
// wrapper is kept, and workspace allocations go through the generic alloc
// functions the CPU runner counts.
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_free(!llvm.ptr)
// CHECK-LABEL: llvm.func @fwd(
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// CHECK: llvm.intr.exp2
// CHECK: llvm.fptrunc %{{.*}} : f32 to f16
// CHECK: llvm.call @_mlir_memref_to_llvm_free
// CHECK-LABEL: llvm.func @_mlir_ciface_fwd(
// CHECK: llvm.call @fwd(
// UNFUSED: llvm.func @fwd(
// UNFUSED: llvm.intr.exp(
func.func @fwd(%q: memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, %k: memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>,
               %v: memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>, %o: memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>,
               %l: memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>) attributes {llvm.emit_c_interface} {
  attn.attention ins(%q, %k, %v : memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>)
                 outs(%o : memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>) lse(%l : memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>) {causal, softcap = 30.0 : f64}
  return
}
