// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu,canonicalize,cse)" --split-input-file | FileCheck %s
// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{wgmma=1},canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=WGMMA

// ALiBi on the GPU: the op's slopes go to the ALiBi kernel variant
// (`_alibi` modules) as `alibi_slopes` plus `alibi_stride_b` (the batch
// stride of [B, Hq] slopes, 0 for [Hq]). Each kernel loads the slope of its
// (sequence, head) once and adds -w |key - query - (Nk - Nq)| to every score
// with one FMA (Primitives/Score.h): the forward on the raw scores, the
// backward next to -lse.

// CHECK-LABEL: func.func @alibi_fwd
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_alibi::@attn_fwd
// CHECK-SAME: %[[SL:.*]] : memref<?xf32, strided<[1], offset: ?>>, %c4 : index)
// CHECK: gpu.module @attn_kernels_f16_d64_dv64_masked_alibi
// CHECK: gpu.func @attn_fwd(
// CHECK-SAME: %[[A:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[AS:[a-z0-9]+]]: index) kernel
// CHECK: %[[ROW:.*]] = arith.muli %block_id_z, %[[AS]] : index
// CHECK: %[[AT:.*]] = arith.addi %[[ROW]], %block_id_y : index
// CHECK: memref.load %[[A]][%[[AT]]]
// CHECK: scf.for
// CHECK: nvgpu.mma.sync
// CHECK: %[[D:.*]] = arith.sitofp %{{.*}} : i32 to f32
// CHECK: %[[ABS:.*]] = llvm.inline_asm "abs.f32 $0, $1;", "=f,f" %[[D]] : (f32) -> f32
// CHECK: llvm.intr.fma(%{{.*}}, %[[ABS]], %{{.*}})
// WGMMA-LABEL: func.func @alibi_fwd
// WGMMA: gpu.func @attn_fwd(
// WGMMA: wgmma.mma_async.sync.aligned
// WGMMA: abs.f32
// WGMMA: llvm.intr.fma
func.func @alibi_fwd(%q: memref<2x4x?x64xf16>, %k: memref<2x2x?x64xf16>, %o: memref<2x4x?x64xf16>, %l: memref<2x4x?xf32>, %sl: memref<2x4xf32>) {
  attn.attention ins(%q, %k, %k : memref<2x4x?x64xf16>, memref<2x2x?x64xf16>, memref<2x2x?x64xf16>) alibi_slopes(%sl : memref<2x4xf32>) outs(%o : memref<2x4x?x64xf16>) lse(%l : memref<2x4x?xf32>) {causal}
  return
}

// -----

// The backward (f32: the SIMT kernels), one slope per head: stride 0. Only
// attn_bwd_main computes scores; bwd_pre / bwd_post take no slopes.
// CHECK-LABEL: func.func @alibi_bwd
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32_alibi::@attn_bwd_pre
// CHECK-NOT: %c0 : index)
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32_alibi::@attn_bwd_main
// CHECK-SAME: : memref<?xf32, strided<[1], offset: ?>>, %c0 : index)
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32_alibi::@attn_bwd_post
// CHECK: gpu.func @attn_bwd_main(
// CHECK-SAME: %[[A:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[AS:[a-z0-9]+]]: index) kernel
// CHECK: arith.muli %block_id_z, %[[AS]] : index
// CHECK: memref.load %[[A]]
// CHECK: %[[ABS:.*]] = llvm.inline_asm "abs.f32
// CHECK: llvm.intr.fma(%{{.*}}, %[[ABS]], %{{.*}})
// CHECK: ex2.approx
// CHECK: gpu.func @attn_bwd_post(%{{[a-z0-9]+}}: memref<?xf32, strided<[1], offset: ?>>, %{{[a-z0-9]+}}: memref<?xf32, strided<[1], offset: ?>>, %{{[a-z0-9]+}}: index
func.func @alibi_bwd(%q: memref<1x4x?x32xf32>, %l: memref<1x4x?xf32>, %sl: memref<4xf32>) {
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?xf32>) alibi_slopes(%sl : memref<4xf32>) outs(%q, %q, %q : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>)
  return
}
