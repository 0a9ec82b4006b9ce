// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{wgmma=1},canonicalize,cse)" --split-input-file | FileCheck %s
// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu,canonicalize,cse)" --split-input-file | FileCheck %s --check-prefix=MMA
// RUN: fa-opt %s --pass-pipeline="builtin.module(convert-attn-to-gpu{wgmma=1})" --split-input-file | grep -o "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16" | wc -l | FileCheck %s --check-prefix=COUNT

// Tensor cores at head dims other than 64 / 128 / 256, D != Dv and softcap.
// MLA 192 / 128, causal, softcap, with wgmma (sm_90a): two warpgroups of
// 64 query rows, 128-key tiles; S = Q K^T as 12 k16 steps of m64n128k16
// and O += P V as 8 of m64n128k16 (P in registers), each issued in the
// loop and once more around it (40 in all); every score through
// tanh.approx (x |scale| / c).
// CHECK-LABEL: func.func @mla
// CHECK: %[[GX:.*]] = arith.ceildivsi %{{.*}}, %c128
// CHECK: gpu.launch_func @attn_kernels_bf16_d192_dv128_masked_softcap::@attn_fwd blocks in (%[[GX]], %{{.*}}, %{{.*}}) threads in (%c256, %c1, %c1)
// CHECK: gpu.func @attn_fwd
// CHECK-SAME: known_block_size = array<i32: 256, 1, 1>
// CHECK-DAG: wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK-DAG: tanh.approx.f32
// COUNT: {{^}}40{{$}}
// Without wgmma (mma.sync): 8 warps of one m16 tile (Dv <= 128 but D = 192
// > 128), 64-key tiles.
// MMA-LABEL: func.func @mla
// MMA: gpu.launch_func @attn_kernels_bf16_d192_dv128_masked_softcap::@attn_fwd {{.*}} threads in (%c256, %c1, %c1)
// MMA: nvvm.mma.sync
// MMA: tanh.approx.f32
func.func @mla(%q: memref<1x4x?x192xbf16>, %k: memref<1x4x?x192xbf16>, %v: memref<1x4x?x128xbf16>,
               %o: memref<1x4x?x128xbf16>, %l: memref<1x4x?xf32>) {
  attn.attention ins(%q, %k, %v : memref<1x4x?x192xbf16>, memref<1x4x?x192xbf16>, memref<1x4x?x128xbf16>)
                 outs(%o : memref<1x4x?x128xbf16>) lse(%l : memref<1x4x?xf32>) {causal, softcap = 30.0 : f64}
  return
}

// -----

// D = 40 (MMA k-steps on 48 columns, 40..47 zero-filled: cp.async copies
// with a source size), backward: three launches, the main kernel on
// tensor cores (8 warps, 128-key blocks).
// CHECK-LABEL: func.func @bwd40
// CHECK: gpu.launch_func @attn_kernels_f16_d40_dv40::@attn_bwd_pre
// CHECK: gpu.launch_func @attn_kernels_f16_d40_dv40::@attn_bwd_main {{.*}} threads in (%c256, %c1, %c1)
// CHECK: gpu.launch_func @attn_kernels_f16_d40_dv40::@attn_bwd_post
// CHECK: gpu.func @attn_bwd_main
// CHECK: nvgpu.device_async_copy {{.*}}, 8, %{{.*}} {bypassL1}
// CHECK: wgmma.mma_async
func.func @bwd40(%q: memref<1x4x?x40xf16>, %o: memref<1x4x?x40xf16>, %l: memref<1x4x?xf32>) {
  attn.attention_backward ins(%q, %q, %q, %o, %o, %l : memref<1x4x?x40xf16>, memref<1x4x?x40xf16>, memref<1x4x?x40xf16>, memref<1x4x?x40xf16>, memref<1x4x?x40xf16>, memref<1x4x?xf32>)
                          outs(%q, %q, %q : memref<1x4x?x40xf16>, memref<1x4x?x40xf16>, memref<1x4x?x40xf16>)
  return
}
