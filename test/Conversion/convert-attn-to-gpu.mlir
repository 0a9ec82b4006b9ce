// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{tensor-cores=0},canonicalize,cse)" --split-input-file | FileCheck %s

// The SIMT kernels (tensor-cores=0; f32 always takes them): the tensor-core
// ones are in convert-attn-to-gpu-tensor-cores.mlir.
// Host side: the forward becomes one launch over (query block, head, batch)
// with 128 threads and dynamic shared memory; memrefs are flattened to 1-D
// views and their element strides passed as scalars.
// CHECK-LABEL: func.func @fwd
// CHECK: memref.extract_strided_metadata
// CHECK: memref.reinterpret_cast {{.*}} to memref<?xbf16, strided<[1]{{.*}}>>
// CHECK: %[[GX:.*]] = arith.ceildivsi %{{.*}}, %c32
// CHECK: gpu.launch_func @attn_kernels_bf16_d64_dv32_masked::@attn_fwd blocks in (%[[GX]], %{{.*}}, %{{.*}}) threads in (%c128, %c1, %c1) dynamic_shared_memory_size %{{.*}} args(
// CHECK-NOT: attn.attention

// Device side.
// CHECK: gpu.module @attn_kernels_bf16_d64_dv32_masked
// CHECK: memref.global @__flashmlir_dyn_smem : memref<0xi8, #gpu.address_space<workgroup>>
// CHECK: gpu.func @attn_fwd(%{{.*}}: memref<?xbf16, strided<[1], offset: ?>>
// CHECK-SAME: kernel
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK: gpu.dynamic_shared_memory
// Q tile: 16-byte coalesced loads into shared memory.
// CHECK: vector.load %{{.*}} {alignment = 16 : i64} : memref<?xbf16, strided<[1], offset: ?>>, vector<8xbf16>
// CHECK: vector.store %{{.*}} {alignment = 16 : i64} : memref<32x64xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// Key-block loop with K/V staged between barriers.
// CHECK: scf.for
// CHECK:   gpu.barrier
// CHECK:   vector.load
// CHECK:   gpu.barrier
// Online softmax with warp shuffles and exp2.
// CHECK:   gpu.shuffle  xor
// CHECK:   arith.maximumf
// CHECK:   nvvm.inline_ptx "ex2.approx.ftz.f32 $0, $1;"
// CHECK:   gpu.shuffle  xor
// P reaches P*V through index shuffles.
// CHECK:   gpu.shuffle  idx
// CHECK: nvvm.inline_ptx "lg2.approx.ftz.f32 $0, $1;"
// CHECK: gpu.return
func.func @fwd(%q: memref<2x8x?x64xbf16>, %k: memref<2x2x?x64xbf16>, %v: memref<2x2x?x32xbf16>,
               %o: memref<2x8x?x32xbf16>, %l: memref<2x8x?xf32>) {
  attn.attention ins(%q, %k, %v : memref<2x8x?x64xbf16>, memref<2x2x?x64xbf16>, memref<2x2x?x32xbf16>)
                 outs(%o : memref<2x8x?x32xbf16>) lse(%l : memref<2x8x?xf32>) {causal}
  return
}

// -----

// The backward: three launches sharing f32 workspaces for Dr and dQ.
// CHECK-LABEL: func.func @bwd
// CHECK-DAG: %[[DR:.*]] = gpu.alloc  (%{{.*}}) : memref<?xf32>
// CHECK-DAG: %[[DQ:.*]] = gpu.alloc  (%{{.*}}) : memref<?xf32>
// CHECK: gpu.launch_func @attn_kernels_f16_d32_dv32_softcap::@attn_bwd_pre
// CHECK: gpu.launch_func @attn_kernels_f16_d32_dv32_softcap::@attn_bwd_main {{.*}} threads in (%c32, %c1, %c1)
// CHECK: gpu.launch_func @attn_kernels_f16_d32_dv32_softcap::@attn_bwd_post
// CHECK: gpu.dealloc  %[[DR]]
// CHECK: gpu.dealloc  %[[DQ]]
// CHECK: gpu.func @attn_bwd_pre
// CHECK: gpu.func @attn_bwd_main
// softcap's tanh: |x| and copysign on the f32 bits (no libdevice).
// CHECK:   arith.andi %{{.*}}, %c2147483647_i32 : i32
// CHECK:   arith.andi %{{.*}}, %c-2147483648_i32 : i32
// CHECK:   arith.ori %{{.*}} : i32
// dQ goes to the f32 accumulator with atomics.
// CHECK:   memref.atomic_rmw addf
// CHECK: gpu.func @attn_bwd_post
// CHECK:   arith.truncf %{{.*}} : f32 to f16
func.func @bwd(%q: memref<1x4x?x32xf16>, %o: memref<1x4x?x32xf16>, %l: memref<1x4x?xf32>) {
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x?x32xf16>, memref<1x4x?x32xf16>, memref<1x4x?x32xf16>, memref<1x4x?x32xf16>, memref<1x4x?x32xf16>, memref<1x4x?xf32>)
                          outs(%q, %q, %q : memref<1x4x?x32xf16>, memref<1x4x?x32xf16>, memref<1x4x?x32xf16>) {softcap = 20.0 : f64}
  return
}

// -----

// Attention sinks: the forward passes the [Hq] logits to attn_fwd (whose rows
// start from them); the backward launches attn_bwd_pre a second time
// (sinks_pass = 1, after the first has written dr_ws), which writes
// grad_sinks: one block per head sums its rows (four warps meet in shared
// memory). Without sinks the kernels get an empty buffer.
// CHECK-LABEL: func.func @sinks
// CHECK-SAME: %[[SKARG:[a-z0-9]+]]: memref<4xf32>, %[[GSARG:[a-z0-9]+]]: memref<4xf32>
// CHECK: %[[SK:.*]] = memref.cast %[[SKARG]] : memref<4xf32> to memref<?xf32, strided<[1], offset: ?>>
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32::@attn_fwd {{.*}} args({{.*}}%[[SK]] : memref<?xf32, strided<[1], offset: ?>>
// CHECK: %[[GS:.*]] = memref.cast %[[GSARG]] : memref<4xf32> to memref<?xf32, strided<[1], offset: ?>>
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32::@attn_bwd_pre {{.*}} %[[SK]] : memref<?xf32, strided<[1], offset: ?>>, %[[GS]] : {{.*}}, %c0 : index
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32::@attn_bwd_main
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32::@attn_bwd_post
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32::@attn_bwd_pre {{.*}} %[[SK]] : memref<?xf32, strided<[1], offset: ?>>, %[[GS]] : {{.*}}, %c1 : index
// CHECK: gpu.func @attn_fwd
// CHECK:   memref.dim %{{.*}}, %c0 : memref<?xf32, strided<[1], offset: ?>>
// CHECK:   scf.if
// CHECK:     memref.load
// CHECK:     arith.mulf %{{.*}}, %cst{{.*}} : f32
// CHECK: gpu.func @attn_bwd_pre
// CHECK:   scf.if
// CHECK:     scf.for
// CHECK:       scf.for
// CHECK:     gpu.shuffle  xor
// CHECK:     gpu.barrier
// CHECK:     arith.negf
// CHECK:     memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
func.func @sinks(%q: memref<1x4x?x32xf32>, %o: memref<1x4x?x32xf32>, %l: memref<1x4x?xf32>,
                 %sk: memref<4xf32>, %gs: memref<4xf32>) {
  attn.attention ins(%q, %q, %q : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>)
                 sinks(%sk : memref<4xf32>) outs(%o : memref<1x4x?x32xf32>) lse(%l : memref<1x4x?xf32>)
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?xf32>)
                          sinks(%sk : memref<4xf32>)
                          outs(%q, %q, %q : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>)
                          grad_sinks(%gs : memref<4xf32>)
  return
}
