//===- Passes.td - attn passes -----------------------------*- tablegen -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_PASSES_TD
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

defvar Attn_LoweredDialects = [
  "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
  "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect"];
defvar Attn_TiledDialects = !listconcat(Attn_LoweredDialects,
                                        ["::mlir::vector::VectorDialect"]);

def AttnTileForwardPass : Pass<"attn-tile-forward"> {
  let summary = "Tile attn.attention into loops with online softmax";
  let description = [{
    Rewrites every `attn.attention` on memrefs into FlashAttention's forward:

    ```
    scf.parallel (b, h, qb) in (B, Hq, ceil(Nq / BM)):      // independent
      m = -inf, l = 0, acc = 0                               // per row, f32
      for kb in [first, last) key blocks the query block sees:
        S  = Q_qb K_kb^T * scale (softcap) * log2(e)         // BM x BN tile
        mask S only if the block straddles a mask boundary
        m' = max(m, rowmax(S));  alpha = exp2(m - m')
        P  = exp2(S - m');  l = alpha * l + rowsum(P)
        acc = alpha * acc + P V_kb;  m = m'
      O = acc / l;  lse = (m + log2(l)) * ln(2)              // 0 / -inf if l = 0
    ```

    Key blocks that no query of the block can see (causal, window) are not
    visited; blocks that every query sees fully are computed without mask
    arithmetic; only boundary blocks (including the ragged last block) are
    masked element-wise. Sequence lengths need not be multiples of the block
    sizes. Block sizes come from the op's `block_sizes` attribute when
    present, else from the options.

    The tiles are f32 `vector` code of `vector-width` lanes (the CPU runner
    picks 16 for AVX-512, 8 for AVX2), whatever the element type (f16/bf16
    are extended on load and truncated on store):

    * `Q^T` (`D x BM`) is packed once per query block, pre-multiplied by
      `scale * log2(e)` (by `scale / softcap` with softcap);
    * `S^T = K Q^T` (`BN x BM`, keys x queries) and `acc = alpha acc + P V`
      are register-blocked outer products: a block of R rows x G vectors of
      accumulators (6 x 4 at 16 lanes) stays in registers for the whole
      reduction, each step one vector load per column vector, one
      broadcast scalar per row and R x G `vector.fma`s;
    * with queries along the vectors of `S^T`, the online softmax needs no
      horizontal reduction: row max and row sum are element-wise over the
      `BN` rows, and `exp2` is a polynomial on vectors (2^round(x) from the
      exponent bits times a degree-6 polynomial, relative error ~1.5e-7).

    The buffers are per-block tiles (`D x BM` Q^T, `BN x BM` scores,
    `BM x Dv` accumulator, `BM` row max, sum and rescale factor), so memory
    does not grow with N; with `attn-cpu-pipeline{parallel=1}` each worker
    thread holds one set.
  }];
  let dependentDialects = Attn_TiledDialects;
  let options = [
    Option<"blockM", "block-m", "int64_t", /*default=*/"64",
           "Query rows per block (BM)">,
    Option<"blockN", "block-n", "int64_t", /*default=*/"64",
           "Key rows per block (BN)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector (16: AVX-512, 8: AVX2, 4: SSE/NEON); the "
           "CPU runner picks it from the host">,
  ];
}

def AttnTileBackwardPass : Pass<"attn-tile-backward"> {
  let summary = "Tile attn.attention_backward into loops that recompute P";
  let description = [{
    Rewrites every `attn.attention_backward` on memrefs into FlashAttention's
    backward with recomputation:

    ```
    Dr = rowsum(dO * O)                                       // [B, Hq, Nq]
    dQacc = 0                                                 // [B, Hq, Nq, D] f32
    scf.parallel (b, hk) in (B, Hkv):
      for kb in key blocks:
        dK = 0, dV = 0                                        // BN x D, BN x Dv tiles
        for h in the query heads of group hk:
          for qb in the query blocks that see key block kb:
            P  = exp2(S * log2(e) - lse * log2(e))            // S recomputed
            dV += P^T dO
            dP = dO V^T;  dS = P * (dP - Dr)  (* (1 - tanh^2) with softcap)
            dK += scale * dS^T Q
            dQacc[rows] += scale * dS K
        store dK, dV (the sum over the group's query heads)
    dQ = dQacc
    ```

    dQ is accumulated in an f32 workspace of `[B, Hq, Nq, D]` (O(N)); the
    loop over key blocks is sequential per (batch, kv head), and every query
    head belongs to one kv head, so the accumulation has no races and is
    deterministic: the same inputs give bit-identical gradients, whatever the
    number of threads running the `scf.parallel`. No `Nq x Nk` buffer
    exists.

    As in the forward, the tiles are f32 `vector` code of `vector-width`
    lanes. `K^T` (pre-scaled by `scale * log2(e)`, or `scale / softcap`) and
    `V^T` are packed once per key block; `S = Q K^T` and `dP = dO V^T`
    (queries x keys, keys along the vectors) and the three gradient products
    `dV += P^T dO`, `dK += dS^T Q`, `dQacc += dS K` are register-blocked
    outer products (see attn-tile-forward); `scale` is applied once, when dK
    and dQ are stored. Per (batch, kv head): `D x BN` K^T, `Dv x BN` V^T,
    two `BM x BN` tiles (P, dS), `BN x D` dK and `BN x Dv` dV.
  }];
  let dependentDialects = Attn_TiledDialects;
  let options = [
    Option<"blockM", "block-m", "int64_t", /*default=*/"64",
           "Query rows per block (BM)">,
    Option<"blockN", "block-n", "int64_t", /*default=*/"64",
           "Key rows per block (BN)">,
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"8",
           "f32 lanes per vector (16: AVX-512, 8: AVX2, 4: SSE/NEON); the "
           "CPU runner picks it from the host">,
  ];
}

def AttnLowerUnfusedPass : Pass<"attn-lower-unfused"> {
  let summary = "Lower attn ops the unfused way, with full score matrices";
  let description = [{
    The reference lowering, for tests and for the memory comparison: the
    forward materialises S `[B, Hq, Nq, Nk]` (f32), applies the row softmax in
    place and multiplies by V (three loop nests); the backward materialises
    P and dS of the same size. Memory grows as O(N^2). Numerically it is an
    independent path (natural exp/log, no online rescaling).
  }];
  let dependentDialects = Attn_LoweredDialects;
}

def AttnRaiseLinalgPass : Pass<"attn-raise-linalg"> {
  let summary = "Raise naive attention in linalg on tensors to attn.attention";
  let description = [{
    Finds attention written out as separate linalg ops on tensors, as
    torch-mlir and StableHLO's linalg lowering emit `softmax(Q K^T * s + M) V`,
    and replaces it with one `attn.attention` (which the CPU and GPU
    pipelines turn into FlashAttention). Matched from the final contraction
    backwards:

    ```
    S = contract(Q, K)            // linalg.batch_matmul or a linalg.generic
                                  // mul/add contraction over D, zero init
    S = S * c  |  S / c           // scale (constant scalar; also on Q or K)
    S = S + M                     // optional additive mask, a constant
    P = softmax(S, last dim)      // linalg.softmax, or decomposed:
                                  //   m = max(S), e = exp(S - m) (or exp(S)),
                                  //   z = sum(e), P = e / z
    O = contract(P, V)            // as for S
    ```

    * Layouts: `[B, H, N, D]` (4-D, two batch dims) or `[B*H, N, D]` (3-D,
      `linalg.batch_matmul`); transposes feeding the contractions
      (`linalg.transpose` or a permuting copy `linalg.generic`, e.g. the
      `K^T` of `q @ k.transpose(-2, -1)`) are looked through, other
      operand orders get a `linalg.transpose`, and the result is put back
      into the order of the original output.
    * Grouped-query attention: K and V of `Hkv` heads repeated to `Hq` by
      broadcast + collapse with each kv head repeated `G` times in a row
      (torch's `repeat_interleave`, transformers' `repeat_kv`) become the
      `Hkv`-head operands of the op. Repeating whole head blocks (`.repeat`:
      query head `h` reads kv head `h % Hkv`, not `h / G`) is not the op's
      grouping: the op then reads the repeated tensors as they are.
    * Masks: a constant additive mask whose entries are 0 (visible) or
      -inf / at most -1e30 (masked), broadcast over the batch dims, is
      proved equal, entry by entry, to the op's mask for some causal /
      `window = [left, right]` and a key-padding length `L` (keys `>= L`
      masked in every row: K and V are sliced to `L` keys); every row must
      see at least one key (a fully masked row is NaN or a uniform average
      in the naive form, 0 in the op). Masks computed at run time (a
      function argument) and biases (any other value) are not raised. The
      mask may be added before or after the scaling.
    * The scale is the product of the constants (multiplied or divided) on
      S, Q and K; it must be positive.

    Anything else -- dynamic shapes, a body that is not exactly the
    operation named (e.g. an f32 accumulation of bf16 inputs), a reduction
    init that is not 0 (sum) or -inf / the lowest finite value (max), a
    softmax over another dimension, values of the chain used elsewhere -- is
    left untouched. The rewrite is `raiseNaiveAttention`
    (`Transforms.h`), applied by `populateAttnRaiseLinalgPatterns`.

    Example (`test/Transforms/attn-raise-linalg.mlir`):

    ```mlir
    %s = linalg.batch_matmul ins(%q, %kt : ...) outs(%zero : tensor<8x128x128xf32>)
    %d = linalg.generic ... { arith.divf %x, %c8 }    // / sqrt(64)
    %p = linalg.softmax dimension(2) ins(%d : ...) outs(%e : ...)
    %o = linalg.batch_matmul ins(%p, %v : ...) outs(%zero2 : ...)
    ```

    becomes `attn.attention` on `[1, 8, 128, 64]` views with
    `scale = 0.125`.
  }];
  let dependentDialects = ["::mlir::attn::AttnDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnGuardAllocsPass : Pass<"attn-guard-allocs"> {
  let summary = "Skip the code that would use a buffer whose allocation failed";
  let description = [{
    Makes every `memref.alloc` checked: the operations after it in its block
    (up to the terminator) move into an `scf.if` that runs them only when
    the allocation returned a non-null pointer
    (`memref.extract_aligned_pointer_as_index` is not 0). `memref.dealloc`s
    of buffers allocated outside the guarded code stay after the `scf.if`,
    so a failure leaks nothing. Allocations nest: a failure skips exactly
    the code that needs the buffer.

    ```
    %a = memref.alloc(%n) : memref<?xf32>        %a = memref.alloc(%n) : memref<?xf32>
    use(%a)                               -->    %p = memref.extract_aligned_pointer_as_index %a
    memref.dealloc %a                            %ok = arith.cmpi ne, %p, %c0 : index
                                                 scf.if %ok { use(%a) }
                                                 memref.dealloc %a
    ```

    The CPU pipeline runs it on the lowered attention (`attn-cpu-pipeline`),
    whose allocations go through the runner's allocator: it counts the
    failures, and the runner reports a call during which one happened as an
    error ("could not allocate ..."); the outputs are then incomplete, never
    written through a null pointer. Blocks whose terminator uses a value
    computed after the allocation cannot be guarded this way: the pass
    fails on them.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect"];
}

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_PASSES_TD
