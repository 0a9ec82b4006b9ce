// The whole GPU pipeline (gpu -> nvvm -> NVPTX, no nvcc) down to PTX text.
// The PTX is an escaped string attribute: unescape newlines and tabs first.
// Default: the tensor-core forward (mma.sync, ldmatrix, cp.async).
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_80" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_90" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s --check-prefix=SM90
// chip=sm_90a: the Hopper forward (wgmma).
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_90a" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s --check-prefix=SM90A
// chip=sm_75: Turing's instructions (mma.sync m16n8k8, no cp.async).
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_75" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s --check-prefix=SM75
// tensor-cores=0: the SIMT forward.
// RUN: fa-opt %s --attn-gpu-pipeline="chip=sm_80 tensor-cores=0" | sed 's/\\0A/\n/g; s/\\09/ /g' | FileCheck %s --check-prefix=SIMT

// CHECK: gpu.binary @attn_kernels_f16_d64_dv64_masked
// CHECK: .target sm_80
// CHECK: .extern .shared .align 16 .b8 __flashmlir_dyn_smem[];
// CHECK: .entry attn_fwd(
// CHECK-DAG: cp.async.cg.shared.global
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-DAG: ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-DAG: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
// CHECK-DAG: bar.sync
// CHECK-DAG: shfl.sync.bfly.b32
// CHECK-DAG: ex2.approx
// CHECK-DAG: st.global.v4.b32
// SM90: .target sm_90
// SM90: .entry attn_fwd(
// SM90: mma.sync.aligned.m16n8k16

// SM75: .target sm_75
// SM75-NOT: cp.async
// SM75: mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32
// SM75-NOT: m16n8k16

// SM90A: .target sm_90a
// SM90A: .entry attn_fwd(
// SM90A: wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16

// SIMT: .entry attn_fwd(
// SIMT-NOT: mma.sync
// SIMT-DAG: ld.global.v4.b32
// SIMT-DAG: st.shared.v4.b32
// SIMT-DAG: bar.sync
// SIMT-DAG: shfl.sync.bfly.b32
// SIMT-DAG: ex2.approx
// SIMT-DAG: shfl.sync.idx.b32
func.func @fwd(%q: memref<?x?x?x64xf16>, %o: memref<?x?x?x64xf16>, %l: memref<?x?x?xf32>) {
  attn.attention ins(%q, %q, %q : memref<?x?x?x64xf16>, memref<?x?x?x64xf16>, memref<?x?x?x64xf16>)
                 outs(%o : memref<?x?x?x64xf16>) lse(%l : memref<?x?x?xf32>) {causal}
  return
}
