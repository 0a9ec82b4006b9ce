// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu,canonicalize,cse)" --split-input-file | FileCheck %s
// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{wgmma=1},canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=WGMMA

// Fused RoPE on the GPU: the op's tables go to the RoPE kernel variant
// (`_rope` modules) as `rotary_cos`, `rotary_sin`, their row stride, the
// rotary dim (2 x the tables' columns) and the convention (0: GPT-NeoX, 1:
// GPT-J). The kernels rotate the Q and K tiles in shared memory after they
// land (Primitives/Rotary.h): 8-element chunks extended to f32, 16-byte table
// loads, a uniform branch on the convention (the interleaved form
// deinterleaves with shuffles), before the first product reads them.

// CHECK-LABEL: func.func @rope_fwd
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_rope::@attn_fwd
// CHECK-SAME: %[[C:.*]] : memref<?xf32, strided<[1], offset: ?>>, %[[S:.*]] : memref<?xf32, strided<[1], offset: ?>>, %c32 : index, %c64 : index, %c0 : index)
// CHECK: gpu.module @attn_kernels_f16_d64_dv64_masked_rope
// CHECK: gpu.func @attn_fwd(
// CHECK-SAME: %[[TC:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[TS:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[STR:[a-z0-9]+]]: index, %[[DIM:[a-z0-9]+]]: index, %[[IL:[a-z0-9]+]]: index) kernel
// CHECK: arith.cmpi ne, %[[IL]], %c0
// CHECK-DAG: vector.shuffle %{{.*}} [0, 2, 4, 6]
// CHECK-DAG: vector.load %{{.*}} : memref<?xf32, strided<[1], offset: ?>>, vector<4xf32>
// CHECK-DAG: arith.extf %{{.*}} : vector<8xf16> to vector<8xf32>
// CHECK-DAG: vector.load %{{.*}} : memref<?xf32, strided<[1], offset: ?>>, vector<8xf32>
// CHECK: arith.truncf %{{.*}} : vector<8xf32> to vector<8xf16>
// CHECK: gpu.barrier
// CHECK: nvgpu.mma.sync
// The wgmma forward stages each K tile's table rows in shared memory
// ([2][keys][D / 2] f32: cos, sin) by cp.async with the tile; its rotation
// reads them there (KernelSchedule::stagedRotary). Q's rows, rotated once,
// come from the tables.
// WGMMA-LABEL: func.func @rope_fwd
// WGMMA: gpu.func @attn_fwd(
// WGMMA-SAME: %[[WTC:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[WTS:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index) kernel
// WGMMA: %[[TAB:.*]] = memref.view %{{.*}} to memref<2x128x32xf32, #gpu.address_space<workgroup>>
// WGMMA: nvgpu.device_async_copy %[[WTC]][%{{.*}}], %[[TAB]][%{{.*}}, %{{.*}}, %{{.*}}], 4, %{{.*}} {bypassL1}
// WGMMA: nvgpu.device_async_copy %[[WTS]][%{{.*}}], %[[TAB]][%{{.*}}, %{{.*}}, %{{.*}}], 4, %{{.*}} {bypassL1}
// WGMMA: fence.proxy.async.shared::cta
// WGMMA: vector.load %[[WTC]][%{{.*}}] {{.*}} vector<8xf32>
// WGMMA: vector.load %[[TAB]][%c0, %{{.*}}, %{{.*}}] {{.*}} vector<4xf32>
// WGMMA: vector.load %[[TAB]][%c1, %{{.*}}, %{{.*}}] {{.*}} vector<4xf32>
// WGMMA: wgmma.mma_async.sync.aligned
func.func @rope_fwd(%q: memref<2x4x?x64xf16>, %k: memref<2x2x?x64xf16>, %o: memref<2x4x?x64xf16>, %l: memref<2x4x?xf32>, %c: memref<4096x32xf32>, %s: memref<4096x32xf32>) {
  attn.attention ins(%q, %k, %k : memref<2x4x?x64xf16>, memref<2x2x?x64xf16>, memref<2x2x?x64xf16>) rotary(%c, %s : memref<4096x32xf32>, memref<4096x32xf32>) outs(%o : memref<2x4x?x64xf16>) lse(%l : memref<2x4x?xf32>) {causal}
  return
}

// -----

// The backward, GPT-J convention (interleaved = 1), partial rotary (R = 64
// of D = 128): attn_bwd_main rotates K once and each Q tile, and writes dK
// through an f32 shared-memory tile rotated back (R^T); attn_bwd_post
// rotates dQ back, query i at position i + Nk - Nq (it takes seqlen_k).
// CHECK-LABEL: func.func @rope_bwd
// CHECK: gpu.launch_func @attn_kernels_bf16_d128_dv128_rope::@attn_bwd_pre
// CHECK: gpu.launch_func @attn_kernels_bf16_d128_dv128_rope::@attn_bwd_main
// CHECK-SAME: %c32 : index, %c64 : index, %c1 : index)
// CHECK: gpu.launch_func @attn_kernels_bf16_d128_dv128_rope::@attn_bwd_post
// CHECK-SAME: %c32 : index, %c64 : index, %c1 : index)
// CHECK: gpu.func @attn_bwd_main(
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: scf.for
// CHECK: arith.extf %{{.*}} : vector<8xbf16> to vector<8xf32>
// CHECK: nvvm.mma.sync
// CHECK: memref.store %{{.*}} : memref<128x132xf32, #gpu.address_space<workgroup>>
// CHECK: arith.negf %{{.*}} : vector<{{[48]}}xf32>
// CHECK: gpu.func @attn_bwd_post(
// CHECK: arith.negf %{{.*}} : vector<{{[48]}}xf32>
// The wgmma backward stages each Q tile's table rows ([2][64][D / 2] f32)
// with the tile, issued with its Q / dO copies.
// WGMMA-LABEL: func.func @rope_bwd
// WGMMA: gpu.func @attn_bwd_main(
// WGMMA-SAME: %[[BTC:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %[[BTS:[a-z0-9]+]]: memref<?xf32, strided<[1], offset: ?>>, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index, %{{[a-z0-9]+}}: index) kernel
// WGMMA: %[[QTAB:.*]] = memref.view %{{.*}} to memref<2x64x64xf32, #gpu.address_space<workgroup>>
// WGMMA: nvgpu.device_async_copy %[[BTC]][%{{.*}}], %[[QTAB]][
// WGMMA: nvgpu.device_async_copy %[[BTS]][%{{.*}}], %[[QTAB]][
// WGMMA: scf.for
// WGMMA: vector.load %[[QTAB]][%c0, %{{.*}}, %{{.*}}] {{.*}} vector<4xf32>
// WGMMA: nvgpu.device_async_copy %[[BTC]][%{{.*}}], %[[QTAB]][
// WGMMA: wgmma.mma_async.sync.aligned
func.func @rope_bwd(%q: memref<1x4x?x128xbf16>, %l: memref<1x4x?xf32>, %c: memref<4096x32xf32>, %s: memref<4096x32xf32>) {
  attn.attention_backward ins(%q, %q, %q, %q, %q, %l : memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>, memref<1x4x?xf32>) rotary(%c, %s : memref<4096x32xf32>, memref<4096x32xf32>) outs(%q, %q, %q : memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>, memref<1x4x?x128xbf16>) {rotary_interleaved}
  return
}
