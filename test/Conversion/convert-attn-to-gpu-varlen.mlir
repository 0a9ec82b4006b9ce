// RUN: fa-opt %s --convert-attn-to-gpu | FileCheck %s
// RUN: fa-opt %s --convert-attn-to-gpu="wgmma=1" | FileCheck %s --check-prefix=WGMMA
// RUN: fa-opt %s --convert-attn-to-gpu | FileCheck %s --check-prefix=BWD
// RUN: not fa-opt %s --convert-attn-to-gpu="deterministic=1" 2>&1 | FileCheck %s --check-prefix=DET

// The variable-length forward on the GPU: the packed operands are passed as
// batch-1 views (their head and row strides), the grid is (query blocks of
// max_seqlen_q, heads, sequences), and the kernel reads its sequence's first
// rows and lengths from cu_seqlens_q / cu_seqlens_k, returning early for
// query blocks past the sequence's end.

// CHECK-LABEL: func.func @varlen
// CHECK-SAME: (%[[Q:.*]]: memref<?x8x64xf16>, %[[K:.*]]: memref<?x2x64xf16>, %[[V:.*]]: memref<?x2x64xf16>, %[[O:.*]]: memref<?x8x64xf16>, %[[L:.*]]: memref<8x?xf32>, %[[CQ:.*]]: memref<?xi32>, %[[CK:.*]]: memref<?xi32>, %[[MQ:.*]]: index, %[[MK:.*]]: index)
// CHECK: memref.reinterpret_cast
// CHECK: %[[B1:.*]] = memref.dim %[[CQ]], %{{.*}}
// CHECK: %[[B:.*]] = arith.subi %[[B1]]
// CHECK: %[[GX:.*]] = arith.ceildivsi %[[MQ]]
// CHECK: %[[GZ:.*]] = arith.ceildivsi %[[B]]
// CHECK: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_varlen::@attn_fwd blocks in (%[[GX]], %{{.*}}, %[[GZ]])
// CHECK: gpu.module @attn_kernels_f16_d64_dv64_masked_varlen
// CHECK: gpu.func @attn_fwd(%{{.*}}: memref<?xf16, strided<[1], offset: ?>>, {{.*}}, %[[KCQ:[a-z0-9]+]]: memref<?xi32, strided<[1], offset: ?>>, %[[KCK:[a-z0-9]+]]: memref<?xi32, strided<[1], offset: ?>>,
// CHECK: memref.load %[[KCQ]]
// CHECK: memref.load %[[KCK]]
// CHECK: cf.cond_br %{{.*}}, ^[[BODY:bb[0-9]+]], ^[[EXIT:bb[0-9]+]]
// CHECK: ^[[BODY]]:
// CHECK: nvgpu.mma.sync
// CHECK: gpu.return
// CHECK: ^[[EXIT]]:
// CHECK-NEXT: gpu.return
// WGMMA: gpu.module @attn_kernels_f16_d64_dv64_masked_varlen
// WGMMA: cf.cond_br
// WGMMA: wgmma.mma_async
func.func @varlen(%q: memref<?x8x64xf16>, %k: memref<?x2x64xf16>, %v: memref<?x2x64xf16>,
                  %o: memref<?x8x64xf16>, %l: memref<8x?xf32>, %cuq: memref<?xi32>,
                  %cuk: memref<?xi32>, %mq: index, %mk: index) {
  attn.attention ins(%q, %k, %v : memref<?x8x64xf16>, memref<?x2x64xf16>, memref<?x2x64xf16>)
                 varlen(%cuq, %cuk, %mq, %mk : memref<?xi32>, memref<?xi32>)
                 outs(%o : memref<?x8x64xf16>) lse(%l : memref<8x?xf32>) {causal}
  return
}

// The variable-length backward: bwd_pre / bwd_post over (row blocks of
// max_seqlen_q, heads, sequences), bwd_main over (key blocks of
// max_seqlen_k, KV heads, sequences); the workspaces packed like lse: dr_ws
// [Hq, Tq], dqacc_ws [Hq, Tq + 15 B, D] (KernelAbi.h), and total_q passed.
// BWD-LABEL: func.func @varlen_bwd
// BWD-SAME: (%[[Q:[a-z0-9]+]]: memref<?x8x64xf16>,
// BWD: %[[TQ:.*]] = memref.dim %[[Q]], %c0
// BWD: %[[DR:.*]] = arith.muli %{{.*}}, %[[TQ]]
// BWD: gpu.alloc (%[[DR]])
// BWD: %[[R15:.*]] = arith.muli %{{.*}}, %c15
// BWD: arith.addi %[[TQ]], %[[R15]]
// BWD: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_varlen::@attn_bwd_pre
// BWD: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_varlen::@attn_bwd_main
// BWD: gpu.launch_func @attn_kernels_f16_d64_dv64_masked_varlen::@attn_bwd_post
// BWD: gpu.func @attn_bwd_main(
// BWD: cf.cond_br
// BWD: nvgpu.mma.sync
// DET: error: 'attn.attention_backward' op convert-attn-to-gpu: the variable-length backward has no deterministic form on the GPU yet
func.func @varlen_bwd(%q: memref<?x8x64xf16>, %k: memref<?x2x64xf16>, %v: memref<?x2x64xf16>,
                      %o: memref<?x8x64xf16>, %l: memref<8x?xf32>, %cuq: memref<?xi32>,
                      %cuk: memref<?xi32>, %mq: index, %mk: index) {
  attn.attention_backward ins(%q, %k, %v, %o, %o, %l : memref<?x8x64xf16>, memref<?x2x64xf16>, memref<?x2x64xf16>, memref<?x8x64xf16>, memref<?x8x64xf16>, memref<8x?xf32>)
                          varlen(%cuq, %cuk, %mq, %mk : memref<?xi32>, memref<?xi32>)
                          outs(%q, %k, %v : memref<?x8x64xf16>, memref<?x2x64xf16>, memref<?x2x64xf16>) {causal}
  return
}
