// RUN: fa-opt %s --convert-attn-to-gpu | FileCheck %s
// RUN: fa-opt %s --convert-attn-to-gpu="wgmma=1" | FileCheck %s --check-prefix=WGMMA

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
