//===- Passes.td - FlashMLIR conversion passes -------------*- tablegen -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_CONVERSION_PASSES_TD
#define FLASHMLIR_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertAttnToGPUPass : Pass<"convert-attn-to-gpu", "ModuleOp"> {
  let summary = "Convert attn ops into GPU kernels and their launches";
  let description = [{
    Replaces every `attn.attention` / `attn.attention_backward` on memrefs
    with `gpu.launch_func`s of kernels built into a `gpu.module`:

    * forward (`attn_fwd`): grid (query block, query head, batch), 4 warps
      per block, 8 query rows per warp (split-Q: K/V tiles are shared through
      shared memory, each warp owns its rows, so there are no cross-warp
      reductions). K/V tiles of 32 keys are staged in shared memory with
      16-byte coalesced loads between barriers (K transposed and padded so
      every lane reads its key's column without bank conflicts); each lane
      owns one key of the tile for the scores and `Dv/32` output columns for
      the accumulator; row max and sum are warp shuffles (xor butterfly); P
      reaches the P*V loop through index shuffles, never shared memory;
      `exp2` with `scale * log2(e)` folded in.
    * backward: `attn_bwd_pre` (Dr = rowsum(dO * O), zeroes the f32 dQ
      accumulator), `attn_bwd_main` (one warp per 32-key block and kv head:
      recomputes P from lse, accumulates dK and dV in shared memory over the
      query heads of the group and the query rows that see the block, and
      adds dQ contributions to the f32 accumulator with atomics, so dQ's
      summation order is not deterministic), `attn_bwd_post` (dQ =
      accumulator, converted).

    With `tensor-cores` (the default), f16/bf16 kernels with D = Dv = 64 or
    128 and no softcap use tensor cores instead (sm_80+; the bundle's
    targets are all sm_80 or newer): `attn_fwd` is a FlashAttention-2
    forward on `mma.sync` m16n8k16 (ldmatrix operands, P kept in registers,
    K/V through `cp.async` with V_j loading under Q*K_j^T and K_{j+1} under
    the softmax, 32 query rows per warp, 4 or 8 warps by a tile model), and
    `attn_bwd_main` computes its five products on `mma.sync` with dK/dV in
    registers (docs/tensor-cores.md). Same entries and arguments; block,
    grid divisor and shared memory differ (see the bundle manifest).

    With `wgmma` (set by the pipelines and fa-compile for sm_90a targets),
    f16/bf16 kernels with D = Dv = 64 or 128 (the forward also 256) and no
    softcap use Hopper's warpgroup MMA instead: `attn_fwd` is a
    FlashAttention-3 style forward
    (Q and K read by the tensor cores through shared-memory descriptors, P
    from registers, a two-stage cp.async K/V ring, S_j overlapped with
    P_{j-1} V_{j-1}; 64 query rows per warpgroup), and the atomic-dQ
    `attn_bwd_main` computes its five products with wgmma on the tiles of
    the mma.sync kernel (docs/tensor-cores.md, "Hopper").

    With `deterministic`, dQ is bit-reproducible run to run: `attn_bwd_main`
    computes only dK and dV (no atomics, no f32 dQ accumulator),
    `attn_bwd_pre` only Dr, and `attn_bwd_dq` (launched in the place of
    `attn_bwd_post`) computes dQ query-parallel: one block per query tile
    loops over the key tiles its rows can see, recomputes S = Q K^T, P =
    exp2(S scale log2e - lse log2e), dP = dO V^T, dS = P (dP - Dr) (times
    the tanh derivative with softcap) and accumulates dQ += dS K in f32
    registers in a fixed order, then writes dq = scale dQ. Tensor cores
    (`mma.sync`) for the configurations the tensor-core kernels support,
    SIMT otherwise.

    Masks (causal, window) and softcap are compile-time switches; their
    bounds and values, the scale, all sizes and element strides are run-time
    kernel arguments. Shared memory is dynamic (the runtime raises the limit
    above 48 KB when needed), declared through one external workgroup
    symbol so that nothing else can overlap it.
  }];
  let options = [
    Option<"tensorCores", "tensor-cores", "bool", /*default=*/"true",
           "Use the tensor-core (mma.sync) kernels where they support the "
           "element type and head dims (off: SIMT kernels only)">,
    Option<"deterministic", "deterministic", "bool", /*default=*/"false",
           "Bit-reproducible dQ: a query-parallel dQ kernel instead of f32 "
           "atomics in attn_bwd_main">,
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "Hopper kernels (the PTX then needs sm_90a): attn_fwd and the "
           "atomic-dQ attn_bwd_main on wgmma.mma_async where they support "
           "the element type and head dims">,
    Option<"sm", "sm", "int64_t", /*default=*/"0",
           "Compute capability of the target (75, 80, 86, 87, 89, 90; 0: "
           "unknown, sm_80+ kernels tuned for sm_90): its instructions "
           "(sm_75: mma.sync m16n8k8, f16 only, no cp.async) and shared "
           "memory per block. The pipelines set it from their chip">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::gpu::GPUDialect",
    "::mlir::NVVM::NVVMDialect", "::mlir::nvgpu::NVGPUDialect",
    "::mlir::math::MathDialect", "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect", "::mlir::vector::VectorDialect",
    "::mlir::cf::ControlFlowDialect"];
}

#endif // FLASHMLIR_CONVERSION_PASSES_TD
