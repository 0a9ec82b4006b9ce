// RUN: fa-opt %s --attn-cpu-pipeline="block-m=16 block-n=32" | FileCheck %s --implicit-check-not=attn. --implicit-check-not=scf. --implicit-check-not=memref. --implicit-check-not=arith. --implicit-check-not=vector. --implicit-check-not=async.
// RUN: fa-opt %s --attn-cpu-pipeline="unfused=1" | FileCheck %s --check-prefix=UNFUSED

// RUN: fa-opt %s --attn-cpu-pipeline="block-m=16 block-n=32 parallel=0" | FileCheck %s --check-prefix=SERIAL --implicit-check-not=mlirAsyncRuntime

// The whole host pipeline: only the LLVM dialect is left, the C interface
// wrapper is kept, and workspace allocations go through the generic alloc
// functions the CPU runner counts.
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_alloc(i64) -> !llvm.ptr
// CHECK-DAG: llvm.func @_mlir_memref_to_llvm_free(!llvm.ptr)
// The (batch, head, query block) loop runs as async tasks: blocks of
// iterations sized from the runtime's worker count, the first on the
// calling thread, which then waits for the group.
// CHECK-LABEL: llvm.func @fwd(
// CHECK: llvm.call @mlirAsyncRuntimGetNumWorkerThreads()
// CHECK: llvm.call @mlirAsyncRuntimeCreateGroup
// CHECK: llvm.call @parallel_compute_fn(
// CHECK: llvm.call @mlirAsyncRuntimeAwaitAllInGroup
// CHECK-LABEL: llvm.func @_mlir_ciface_fwd(
// CHECK: llvm.call @fwd(
// The loop body, outlined: tiles from the counted allocator, f32 vector
// FMAs, the polynomial exp2 (roundeven), f16 stores of vectors.
// CHECK-LABEL: llvm.func @parallel_compute_fn(
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// CHECK: llvm.intr.fmuladd({{.*}}) : (vector<8xf32>, vector<8xf32>, vector<8xf32>) -> vector<8xf32>
// CHECK: llvm.intr.roundeven({{.*}}) : (vector<8xf32>) -> vector<8xf32>
// CHECK: llvm.fptrunc %{{.*}} : vector<8xf32> to vector<8xf16>
// CHECK: llvm.call @_mlir_memref_to_llvm_free
// CHECK-LABEL: llvm.func @async_execute_fn(
// CHECK: llvm.call @mlirAsyncRuntimeExecute
// CHECK: llvm.call @parallel_compute_fn(
// CHECK: llvm.call @mlirAsyncRuntimeEmplaceToken
// Without parallel=1 the loops stay on the calling thread.
// SERIAL-LABEL: llvm.func @fwd(
// SERIAL: llvm.call @_mlir_memref_to_llvm_alloc
// SERIAL: llvm.intr.fmuladd
// SERIAL-LABEL: llvm.func @_mlir_ciface_fwd(
// UNFUSED: llvm.func @fwd(
// UNFUSED: llvm.intr.exp(
func.func @fwd(%q: memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, %k: memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>,
               %v: memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>, %o: memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>,
               %l: memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>) attributes {llvm.emit_c_interface} {
  attn.attention ins(%q, %k, %v : memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, memref<?x?x?x16xf16, strided<[?, ?, ?, 1], offset: ?>>, memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>)
                 outs(%o : memref<?x?x?x8xf16, strided<[?, ?, ?, 1], offset: ?>>) lse(%l : memref<?x?x?xf32, strided<[?, ?, 1], offset: ?>>) {causal, softcap = 30.0 : f64}
  return
}
