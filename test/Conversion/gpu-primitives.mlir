// RUN: fa-opt %s --test-attn-gpu-primitives --canonicalize | FileCheck %s --enable-var-scope

// Each primitive of the GPU code generator on its own
// (test/lib/TestAttnGPUPrimitives.cpp). The swizzle and the mask fold with
// constant inputs: the values below are worked out by hand from their
// definitions, not taken from the code.

// SharedTile: tile::indices. 2-D [16][128] swizzled, chunk c of row r at
// c ^ (r % 8) within each 64-column group: (0,0)->(0,0); (1,0)->(1,8);
// (3,16)->(3,16^24=8); (9,72)->(9,64+(8^8)=64); (7,120)->(7,64+(56^56)=64).
// Padded [16][72]: (9,72) unchanged. 3-D [2][16][64]: (5,72) -> block 1, row
// 5, column 8 ^ 40 = 32.
// CHECK-LABEL: gpu.func @swizzle
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C3:.*]] = arith.constant 3 : index
// CHECK-DAG: %[[C5:.*]] = arith.constant 5 : index
// CHECK-DAG: %[[C7:.*]] = arith.constant 7 : index
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG: %[[C9:.*]] = arith.constant 9 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK-DAG: %[[C72:.*]] = arith.constant 72 : index
// CHECK: memref.store %[[C0]], %[[OUT:.*]][%{{.*}}]
// CHECK-NEXT: memref.store %[[C0]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C1]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C8]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C3]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C8]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C9]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C64]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C7]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C64]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C9]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C72]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C1]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C5]], %[[OUT]]
// CHECK-NEXT: memref.store %[[C32]], %[[OUT]]

// Mask: query 10, keys from column base 8, Nk - 1 - 8 = 20, Nk - Nq = 4.
// Causal: visible columns c <= 10 + 4 - 8 = 6 (x at 0 and 6, -inf at 7 and
// 21). Window of 3 on the left: 3 <= c <= 6 (probabilities: 0 outside).
// Unmasked: only c <= 20.
// CHECK-LABEL: gpu.func @mask
// CHECK-SAME: (%[[X:.*]]: f32
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: memref.store %[[X]]
// CHECK-NEXT: memref.store %[[X]]
// CHECK-NEXT: memref.store %[[NINF]]
// CHECK-NEXT: memref.store %[[NINF]]
// CHECK-NEXT: memref.store %[[ZERO]]
// CHECK-NEXT: memref.store %[[X]]
// CHECK-NEXT: memref.store %[[X]]
// CHECK-NEXT: memref.store %[[ZERO]]
// CHECK-NEXT: memref.store %[[X]]
// CHECK-NEXT: memref.store %[[NINF]]

// Score: softcap tanh(x * mul); fast: one tanh.approx and 1 - t^2 by FMA;
// precise: ex2 and rcp, |x| and copysign, 4 e r^2.
// CHECK-LABEL: gpu.func @softcap_fast
// CHECK: %[[M:.*]] = arith.mulf
// CHECK: %[[T:.*]] = llvm.inline_asm "tanh.approx.f32 $0, $1;", "=f,f" %[[M]]
// CHECK: %[[N:.*]] = arith.negf %[[T]]
// CHECK: llvm.intr.fma(%[[N]], %[[T]], %{{.*}})
// CHECK-LABEL: gpu.func @softcap_precise
// CHECK: math.absf
// CHECK: llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;"
// CHECK: llvm.inline_asm "rcp.approx.ftz.f32 $0, $1;"
// CHECK: math.copysign

// TileCopy: 64 rows x 96 columns (12 chunks) over 128 threads: 16 slots
// per row (thread / 16, thread % 16), slots >= 12 idle, chunks at or past
// column 80 read 0 elements (zero fill); 8 row steps of 8 rows, a clamped
// and an unclamped path, one commit group.
// CHECK-LABEL: gpu.func @copy
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: %[[R:.*]] = arith.divsi %[[TID]], %c16
// CHECK: %[[S:.*]] = arith.remsi %[[TID]], %c16
// CHECK: %[[COL:.*]] = arith.muli %[[S]], %c8
// CHECK: %[[ACT:.*]] = arith.cmpi slt, %[[COL]], %c96
// CHECK: %[[OK:.*]] = arith.cmpi slt, %[[COL]], %c80
// CHECK: %[[SRC:.*]] = arith.select %[[OK]], %c8, %c0
// CHECK: scf.if
// CHECK: scf.if %[[ACT]]
// CHECK-COUNT-8: nvgpu.device_async_copy {{.*}}, 8, %[[SRC]] {bypassL1}
// CHECK: else
// CHECK: scf.if %[[ACT]]
// CHECK-COUNT-8: nvgpu.device_async_copy {{.*}}, 8, %[[SRC]] {bypassL1}
// CHECK: nvgpu.device_async_create_group
// CHECK-NOT: nvgpu.device_async_copy
// CHECK: gpu.return

// MmaSync: f16 through nvgpu, bf16 through nvvm on i32 registers.
// CHECK-LABEL: gpu.func @mma_f16
// CHECK: nvgpu.mma.sync({{.*}}) {mmaShape = [16, 8, 16]} : (vector<4x2xf16>, vector<2x2xf16>, vector<2x2xf32>) -> vector<2x2xf32>
// CHECK-LABEL: gpu.func @mma_bf16
// CHECK: nvvm.mma.sync A[{{.*}}] B[{{.*}}] C[{{.*}}] {{.*}}multiplicandAPtxType = #nvvm.mma_type<bf16>{{.*}}shape = #nvvm.shape<m = 16, n = 8, k = 16>

// OnlineSoftmax: the row max over the quad (xor 1, 2), P = ex2 of one FMA.
// CHECK-LABEL: gpu.func @softmax
// CHECK: gpu.shuffle  xor %{{.*}}, %c1_i32, %c32_i32
// CHECK: arith.maximumf
// CHECK: gpu.shuffle  xor %{{.*}}, %c2_i32, %c32_i32
// CHECK: llvm.intr.fma
// CHECK: ex2.approx.ftz.f32

// Wgmma: fence, one m64n64k16 from two descriptors, commit; the wait ties
// the 32 accumulators.
// CHECK-LABEL: gpu.func @wgmma
// CHECK: llvm.inline_asm has_side_effects "wgmma.fence.sync.aligned;{{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16{{.*}}wgmma.commit_group.sync.aligned;
// CHECK: llvm.inline_asm has_side_effects "wgmma.wait_group.sync.aligned 0;"

// Epilogue (no attention sink here): O / l as 4-byte pairs into the O tile, lse by quad lane 0 (the
// row and lane are constants here: the guard folds away).
// CHECK-LABEL: gpu.func @epilogue
// CHECK: arith.divf
// CHECK-COUNT-2: vector.store %{{.*}} {alignment = 4 : i64} : memref<16x24xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK: lg2.approx.ftz.f32
// CHECK: memref.store %{{.*}}, %arg0[%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
module {}
