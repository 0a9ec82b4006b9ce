// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{deterministic=1},canonicalize,cse)" --split-input-file | FileCheck %s --enable-var-scope
// The whole pipeline to PTX (escaped newlines unescaped): bwd_main without
// atomics, the dQ kernel on tensor cores (f16, D = 64) / SIMT (softcap).
// RUN: fa-opt %s --split-input-file --attn-gpu-pipeline="chip=sm_80 deterministic=1" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s --check-prefix=PTX

// deterministic=1: no dQ accumulator; the third launch is attn_bwd_dq (dQ
// query-parallel: grid over query tiles, heads, batch), which writes dq
// itself. attn_bwd_main has no atomics.
// CHECK-LABEL: func.func @bwd_tc
// CHECK: %[[DR:.*]] = gpu.alloc  (%{{.*}}) : memref<?xf32>
// CHECK-NOT: gpu.alloc
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked::@attn_bwd_pre
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked::@attn_bwd_main {{.*}} threads in (%c256, %c1, %c1)
// CHECK: %[[GX:.*]] = arith.ceildivsi %{{.*}}, %c64
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked::@attn_bwd_dq blocks in (%[[GX]], %c4, %c1) threads in (%c128, %c1, %c1)
// CHECK: gpu.dealloc  %[[DR]]
// CHECK-NOT: gpu.dealloc
// CHECK: gpu.func @attn_bwd_pre
// CHECK: gpu.func @attn_bwd_main
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.func @attn_bwd_dq
// CHECK-NOT: memref.atomic_rmw
// CHECK-DAG: nvgpu.ldmatrix
// CHECK-DAG: nvgpu.mma.sync
// CHECK-DAG: nvgpu.device_async_copy
// CHECK: gpu.return

// PTX-LABEL: gpu.binary @attn_kernels_f16_d64_dv64_masked
// PTX: .entry attn_bwd_pre(
// PTX: .entry attn_bwd_main(
// PTX-NOT: {{[[:space:]]atom\.}}
// PTX-NOT: {{[[:space:]]red\.}}
// PTX: .entry attn_bwd_dq(
// PTX-NOT: {{[[:space:]]atom\.}}
// PTX-NOT: {{[[:space:]]red\.}}
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// PTX-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// PTX-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// PTX-DAG: cp.async.cg.shared.global
func.func @bwd_tc(%q: memref<1x4x?x64xf16>, %o: memref<1x4x?x64xf16>, %l: memref<1x4x?xf32>) {
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x?x64xf16>, memref<1x4x?x64xf16>, memref<1x4x?x64xf16>, memref<1x4x?x64xf16>, memref<1x4x?x64xf16>, memref<1x4x?xf32>)
                          outs(%q, %q, %q : memref<1x4x?x64xf16>, memref<1x4x?x64xf16>, memref<1x4x?x64xf16>) {causal}
  return
}

// -----

// Softcap: the SIMT kernels. attn_bwd_dq recomputes dS with the tanh
// derivative (math.copysign comes from the tanh of the score), lane = key,
// dS_j handed to the dQ sum through index shuffles.
// CHECK-LABEL: func.func @bwd_simt
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32_softcap::@attn_bwd_main {{.*}} threads in (%c32, %c1, %c1)
// CHECK: gpu.launch_func @attn_kernels_f32_d32_dv32_softcap::@attn_bwd_dq {{.*}} threads in (%c128, %c1, %c1)
// CHECK: gpu.func @attn_bwd_main
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.func @attn_bwd_dq
// CHECK-NOT: memref.atomic_rmw
// softcap's tanh: |x| and copysign on the f32 bits (no libdevice).
// CHECK:   arith.andi %{{.*}}, %c2147483647_i32 : i32
// CHECK:   arith.andi %{{.*}}, %c-2147483648_i32 : i32
// CHECK:   arith.ori %{{.*}} : i32
// CHECK:   gpu.shuffle  idx
// CHECK: gpu.return

// PTX-LABEL: gpu.binary @attn_kernels_f32_d32_dv32_softcap
// PTX: .entry attn_bwd_main(
// PTX-NOT: {{[[:space:]]atom\.}}
// PTX-NOT: {{[[:space:]]red\.}}
// PTX: .entry attn_bwd_dq(
// PTX-NOT: {{[[:space:]]atom\.}}
// PTX-NOT: {{[[:space:]]red\.}}
// PTX: shfl.sync.idx.b32
func.func @bwd_simt(%q: memref<1x4x?x32xf32>, %o: memref<1x4x?x32xf32>, %l: memref<1x4x?xf32>) {
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?xf32>)
                          outs(%q, %q, %q : memref<1x4x?x32xf32>, memref<1x4x?x32xf32>, memref<1x4x?x32xf32>) {softcap = 20.0 : f64}
  return
}
