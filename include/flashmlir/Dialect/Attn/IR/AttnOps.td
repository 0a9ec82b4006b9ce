//===- AttnOps.td - attn dialect ops -----------------------*- tablegen -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_TD
#define FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_TD

include "flashmlir/Dialect/Attn/IR/AttnBase.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Operands are ranked tensors (before bufferization) or memrefs (after);
// element types and ranks are checked by the verifier so that its messages
// name the offending operand.
def Attn_ShapedOperand : AnyTypeOf<[AnyRankedTensor, AnyMemRef],
                                   "ranked tensor or memref">;

// Attributes shared by the forward and the backward op.
defvar Attn_CommonAttrs = (ins
  OptionalAttr<F64Attr>:$scale,
  UnitAttr:$causal,
  OptionalAttr<DenseI64ArrayAttr>:$window,
  OptionalAttr<F64Attr>:$softcap,
  OptionalAttr<DenseI64ArrayAttr>:$block_sizes,
  UnitAttr:$rotary_interleaved
);

defvar Attn_SemanticsDoc = [{
    Semantics, per batch `b` and query head `h`, with `D` the head dim of q/k
    and `Dv` the head dim of v/o:

    ```
    S = scale * Q K^T                      // [Nq, Nk]
    S = softcap * tanh(S / softcap)        // only when `softcap` is set
    S[i, j] -= slope[h] * |i + off - j|    // only with `alibi_slopes`
    S[i, j] = -inf where key j is masked for query i
    lse[i] = log(e^sink[h] + sum_j exp(S[i, j]))  // e^sink only with `sinks`
    P[i, j] = exp(S[i, j] - lse[i])
    O = P V                                // [Nq, Dv]
    ```

    * `scale` defaults to `1/sqrt(D)`; it must be given explicitly when `D` is
      dynamic.
    * Grouped-query attention: `Hq` must be a multiple of `Hkv`; query head
      `h` reads key/value head `h / (Hq / Hkv)`. Multi-query attention is
      `Hkv = 1`.
    * Masks are aligned to the bottom-right corner when `Nq != Nk` (as
      FlashAttention 2.1+ does). With `off = Nk - Nq`, query `i` sees key `j`
      iff `j <= i + off` when `causal`, and
      `i + off - left <= j <= i + off + right` for `window = [left, right]`
      (`-1` means unbounded on that side). Both may be combined.
    * A query row that sees no key gives `O = 0` and `lse = -inf`, never NaN
      (with `sinks`: `O = 0` and `lse = sinks[h]`).
    * ALiBi (FlashAttention-2's `alibi_slopes`): `alibi_slopes(%s)`, f32
      `[Hq]` or `[B, Hq]` (one slope per head, or per sequence and head),
      adds the bias `-slope * |i + off - j|` (natural-log units) to the score
      after softcap, with `off = Nk - Nq` as for the masks.
    * Attention sinks (as gpt-oss uses them): `sinks(%s)`, f32 `[Hq]`, one
      logit per query head that joins every row's softmax with a zero value
      row: it takes probability mass, never adds to `O`, and is counted in
      `lse`. The backward op's optional init `grad_sinks` (f32 `[Hq]`)
      receives `d sinks[h] = -sum_{b,i} exp(sinks[h] - lse[b,h,i]) Dr[b,h,i]`
      (with `Dr` as below), summed over the batch (every sequence of a
      variable-length batch).
    * Rotary position embedding (RoPE), fused: `rotary(%cos, %sin)`, f32
      `[P, R/2]` tables (FlashAttention-2's `rotary_cos` / `rotary_sin`; `R`
      even, static, `R <= D`), rotates the first `R` dims of each query and
      key row as the kernels load them (never a rotated copy in memory):
      query `i` at position `i + off`, key `j` at position `j` (`off = Nk -
      Nq`, so `Nq <= Nk` and `Nk <= P` are the caller's contract). Pairs are
      `(d, d + R/2)` (GPT-NeoX), or `(2m, 2m + 1)` with the unit attribute
      `rotary_interleaved` (GPT-J); `x'[a] = x[a] cos - x[b] sin`, `x'[b] =
      x[b] cos + x[a] sin` in f32. The backward rotates dQ and dK back. In
      the varlen form positions count from each sequence's start (`off` per
      sequence). Not with the KV-cache form yet.
    * User regions (FlexAttention's `score_mod` / `mask_mod`), optional,
      after the attributes:
      `score_mod { ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      ... attn.yield %t : f32 }` replaces each score `S[i, j]` (after softcap
      and ALiBi, natural-log units) by the yielded value; `mask_mod {
      ^bb0(%b: index, %h: index, %i: index, %j: index): ... attn.yield %m :
      i1 }` keeps key `j` for query `i` only where it yields true (on top of
      `causal` / `window`). `%b` is the sequence (batch) index, `%h` the
      query head, `%i` / `%j` the query and key positions within the
      sequence. The regions may use values defined above (e.g. a bias table
      read with `memref.load`). The backward op derives the derivative of
      `score_mod` with respect to the score from the region's ops (chain
      rule: arith add/sub/mul/div/neg/max/min/select, math
      tanh/exp/exp2/log/log2/sqrt/absf; ops that do not depend on the score
      may be anything); the user never writes it.
    * Cross-attention (`Nq != Nk`) and `D != Dv` are allowed.
    * Element types: q, k, v, o (and the gradients) share one of f16, bf16,
      f32; lse is always f32. Dynamic dimensions are allowed; static ones
      must agree.
    * `block_sizes = [BM, BN]` optionally fixes the tile sizes the tiling
      passes use for this op (query rows and key rows per block).

    Variable-length batches (FlashAttention-2's `flash_attn_varlen_func`):
    with the four operands `varlen(cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
    max_seqlen_k)` the batch is packed. q/k/v/o (and the gradients) are
    `[total_tokens, heads, dim]`, lse is `[Hq, total_q]` (FlashAttention-2's
    varlen lse layout), and sequence `b` of the batch is made of query rows
    `[cu_seqlens_q[b], cu_seqlens_q[b+1])` and key/value rows
    `[cu_seqlens_k[b], cu_seqlens_k[b+1])`:

    * `cu_seqlens_q`, `cu_seqlens_k`: i32, rank 1, `[batch + 1]`, both of the
      same length, starting at 0 and non-decreasing (the caller's contract,
      checked by the front ends: the op reads them at run time).
    * `max_seqlen_q`, `max_seqlen_k` (index): upper bounds of the
      sequences' lengths, `cu[b+1] - cu[b] <= max_seqlen`; the kernels size
      their grids by them. A sequence longer than its bound is undefined
      behaviour (as in FlashAttention-2); the front ends reject it.
    * Everything above applies per sequence with `Nq`, `Nk` the sequence's
      own lengths: masks are aligned to each sequence's bottom-right corner
      (`off = Nk_b - Nq_b`), GQA, softcap and the empty-row rule included.
      A sequence with no query rows writes nothing; one with no keys gives
      `O = 0` and `lse = -inf` on its rows (dQ = 0), and keys no query sees
      get `dK = dV = 0`.
    * Rows past `cu_seqlens_q[batch]` (`cu_seqlens_k[batch]`) belong to no
      sequence: their outputs (and gradients) are unspecified.
}];

// The optional operands of the variable-length form (all four or none).
defvar Attn_VarlenOperands = (ins
  Optional<Attn_ShapedOperand>:$cu_seqlens_q,
  Optional<Attn_ShapedOperand>:$cu_seqlens_k,
  Optional<Index>:$max_seqlen_q,
  Optional<Index>:$max_seqlen_k
);

// The optional KV-cache operands of the forward (decode).
defvar Attn_KvCacheOperands = (ins
  Optional<Attn_ShapedOperand>:$cache_seqlens,
  Optional<Attn_ShapedOperand>:$block_table
);

// The optional score modifications (ALiBi slopes, attention sinks).
defvar Attn_ScoreModOperands = (ins
  Optional<Attn_ShapedOperand>:$alibi_slopes,
  Optional<Attn_ShapedOperand>:$sinks,
  Optional<Attn_ShapedOperand>:$rotary_cos,
  Optional<Attn_ShapedOperand>:$rotary_sin
);

defvar Attn_ScoreModFormat = [{
    (`alibi_slopes` `(` $alibi_slopes^ `:` type($alibi_slopes) `)`)?
    (`sinks` `(` $sinks^ `:` type($sinks) `)`)?
    (`rotary` `(` $rotary_cos^ `,` $rotary_sin `:` type($rotary_cos) `,`
        type($rotary_sin) `)`)?
}];

defvar Attn_KvCacheFormat = [{
    (`kv_cache` `(` $cache_seqlens^ `:` type($cache_seqlens) `)`)?
    (`block_table` `(` $block_table^ `:` type($block_table) `)`)?
}];

defvar Attn_VarlenFormat = [{
    (`varlen` `(` $cu_seqlens_q^ `,` $cu_seqlens_k `,` $max_seqlen_q `,`
        $max_seqlen_k `:` type($cu_seqlens_q) `,` type($cu_seqlens_k) `)`)?
}];

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator,
    ParentOneOf<["AttentionOp", "AttentionBackwardOp"]>]> {
  let summary = "Yields the value of a score_mod or mask_mod region";
  let description = [{
    Ends a `score_mod` region (yields the new score, f32) or a `mask_mod`
    region (yields whether the key is kept, i1) of `attn.attention` /
    `attn.attention_backward`.
  }];
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Attn_AttentionOp : Attn_Op<"attention", [
    DestinationStyleOpInterface, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Scaled dot-product attention (forward)";
  let description = !strconcat([{
    Computes attention of `query` `[B, Hq, Nq, D]` against `key`
    `[B, Hkv, Nk, D]` and `value` `[B, Hkv, Nk, Dv]` into `output`
    `[B, Hq, Nq, Dv]` and, when given, the row log-sum-exp `lse` `[B, Hq, Nq]`
    that the backward op needs.

    The op is in destination-passing style: `output` and `lse` are the inits.
    On tensors the op returns the updated inits; on memrefs it writes them in
    place and has no results.
  }], Attn_SemanticsDoc, [{

    Lowering (`attn-tile-forward`): loops over (batch, query head, query
    block), and inside over key/value blocks with online softmax: a running
    row max `m`, a running row sum `l` and an unnormalised accumulator
    `acc`, rescaled by `exp2(m_old - m_new)` whenever the max grows. Scores
    are kept in the log2 domain (`log2(e)` folded into the scale) so every
    exponential is an `exp2`. At the end `O = acc / l` and
    `lse = (m + log2(l)) * ln(2)`. Key blocks that no query of the block can
    see are skipped; only blocks on a mask boundary are masked element-wise.

    Example:

    ```mlir
    %o, %lse = attn.attention
        ins(%q, %k, %v : tensor<2x8x128x64xf16>, tensor<2x2x256x64xf16>,
                         tensor<2x2x256x64xf16>)
        outs(%o0 : tensor<2x8x128x64xf16>) lse(%l0 : tensor<2x8x128xf32>)
        {causal, scale = 0.125 : f64}
        -> tensor<2x8x128x64xf16>, tensor<2x8x128xf32>
    ```

    Variable-length form (three sequences packed into 300 query and key
    rows, lengths at most 160):

    ```mlir
    attn.attention
        ins(%q, %k, %v : memref<300x8x64xbf16>, memref<300x2x64xbf16>,
                         memref<300x2x64xbf16>)
        varlen(%cu_q, %cu_k, %max_q, %max_k : memref<4xi32>, memref<4xi32>)
        outs(%o : memref<300x8x64xbf16>) lse(%lse : memref<8x300xf32>)
        {causal}
    ```

    Lowering of the variable-length form: the same loops over (sequence,
    query head, query block) up to `max_seqlen_q`; each reads its rows'
    offsets and lengths from `cu_seqlens_q` / `cu_seqlens_k` and skips the
    blocks past its sequence's end.

    KV-cache form (decode; FlashAttention-2's `flash_attn_with_kvcache`,
    vLLM's PagedAttention), forward only:

    * `kv_cache(cache_seqlens)`: i32 `[B]`; `key` / `value` are a cache
      `[B, Hkv, capacity, D]` of which sequence `b` uses its first
      `cache_seqlens[b]` rows (`Nk_b = cache_seqlens[b] <= capacity`).
    * with `block_table(table)` as well (paged): i32 `[B, max_blocks]`;
      `key` / `value` are the cache's blocks `[num_blocks, Hkv, block_size,
      D]` (any block size; the usual `[num_blocks, block_size, Hkv, D]`
      storage is a transposed memref of it) and key `n` of sequence `b` is
      row `n % block_size` of block `table[b, n / block_size]`, `n <
      cache_seqlens[b] <= max_blocks * block_size`.
    * Everything else applies per sequence with `Nk = Nk_b`: masks align to
      the bottom-right corner of `[Nq, Nk_b]`, a sequence with no cached
      key gives `O = 0`, `lse = -inf`. Lengths and table entries are the
      caller's contract (read at run time; out of range is undefined
      behaviour, as in FlashAttention-2); the front ends check them where
      they can.

    ```mlir
    attn.attention
        ins(%q, %kc, %vc : memref<4x32x1x128xbf16>, memref<512x8x16x128xbf16>,
                           memref<512x8x16x128xbf16>)
        kv_cache(%lens : memref<4xi32>) block_table(%table : memref<4x128xi32>)
        outs(%o : memref<4x32x1x128xbf16>) lse(%lse : memref<4x32x1xf32>)
    ```

    Lowering of the KV-cache form: `attn-tile-forward` reads each
    sequence's length and addresses key rows through the block table; on
    the GPU the runtime's split-KV kernels serve it (`fa_forward_kvcache`).
  }]);

  let arguments = !con((ins
    Attn_ShapedOperand:$query,
    Attn_ShapedOperand:$key,
    Attn_ShapedOperand:$value,
    Attn_ShapedOperand:$output,
    Optional<Attn_ShapedOperand>:$lse), Attn_VarlenOperands,
    Attn_KvCacheOperands, Attn_ScoreModOperands, Attn_CommonAttrs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region MaxSizedRegion<1>:$score_mod,
                        MaxSizedRegion<1>:$mask_mod);

  let assemblyFormat = !strconcat([{
    `ins` `(` $query `,` $key `,` $value `:`
        type($query) `,` type($key) `,` type($value) `)`
  }], Attn_VarlenFormat, Attn_KvCacheFormat, Attn_ScoreModFormat, [{
    `outs` `(` $output `:` type($output) `)`
    (`lse` `(` $lse^ `:` type($lse) `)`)?
    attr-dict (`score_mod` $score_mod^)? (`mask_mod` $mask_mod^)?
    (`->` type($results)^)?
  }]);

  let extraClassDeclaration = [{
    /// The inits, in order: output and, when present, lse.
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), /*start=*/3,
                                         getLse() ? 2 : 1);
    }
    /// The scale the op computes with (the attribute or 1/sqrt(D)).
    double getScaleValue();
    /// The mask of this op (causal and window combined).
    ::mlir::attn::MaskSpec getMaskSpec();
    /// True for the variable-length (packed) form.
    bool isVarlen() { return getCuSeqlensQ() != nullptr; }
    /// True for the KV-cache form (per-sequence cached lengths).
    bool isKvCache() { return getCacheSeqlens() != nullptr; }
    /// True for the paged KV-cache form (a block table).
    bool isPaged() { return getBlockTable() != nullptr; }
    /// True when the scores carry a modification (ALiBi, sinks or a user
    /// region).
    bool hasScoreMods() {
      return getAlibiSlopes() || getSinks() || getRotaryCos() ||
             !getScoreMod().empty() || !getMaskMod().empty();
    }
  }];

  let hasVerifier = 1;
  let hasFolder = 1;
}

def Attn_AttentionBackwardOp : Attn_Op<"attention_backward", [
    DestinationStyleOpInterface, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "Gradients of scaled dot-product attention";
  let description = !strconcat([{
    Given the forward's inputs `query`, `key`, `value`, its `output` O, the
    incoming gradient `grad_output` dO and the forward's `lse`, computes
    `grad_query` dQ, `grad_key` dK and `grad_value` dV (the inits, in
    destination-passing style). Attributes must be those of the forward.
  }], Attn_SemanticsDoc, [{

    Gradients (with P recomputed from the saved lse, never stored):

    ```
    Dr[i]  = sum_d dO[i, d] * O[i, d]
    P      = exp(S - lse)                 // S recomputed from Q, K
    dV     = P^T dO
    dP     = dO V^T
    dS     = P * (dP - Dr)                // times (1 - tanh^2) with softcap
    dQ     = scale * dS K
    dK     = scale * dS^T Q
    ```

    With grouped-query attention the gradients of all query heads of a
    group are summed into their key/value head.

    Lowering (`attn-tile-backward`): a pre-pass computes `Dr`; then the
    loops run over (batch, kv head, key block) outside and over (the query
    heads of the group, query blocks) inside. dK and dV of the key block are
    accumulated in f32 tiles and stored once; dQ is accumulated in an f32
    buffer of shape `[B, Hq, Nq, D]` (O(N) memory) and converted at the end.
    On the CPU the loops run sequentially, so the result is deterministic.

    Example:

    ```mlir
    attn.attention_backward
        ins(%q, %k, %v, %o, %do, %lse : memref<1x4x64x32xf32>,
            memref<1x4x64x32xf32>, memref<1x4x64x32xf32>,
            memref<1x4x64x32xf32>, memref<1x4x64x32xf32>,
            memref<1x4x64xf32>)
        outs(%dq, %dk, %dv : memref<1x4x64x32xf32>, memref<1x4x64x32xf32>,
             memref<1x4x64x32xf32>) {causal}
    ```
  }]);

  let arguments = !con((ins
    Attn_ShapedOperand:$query,
    Attn_ShapedOperand:$key,
    Attn_ShapedOperand:$value,
    Attn_ShapedOperand:$output,
    Attn_ShapedOperand:$grad_output,
    Attn_ShapedOperand:$lse,
    Attn_ShapedOperand:$grad_query,
    Attn_ShapedOperand:$grad_key,
    Attn_ShapedOperand:$grad_value,
    Optional<Attn_ShapedOperand>:$grad_sinks), Attn_VarlenOperands,
    Attn_ScoreModOperands, Attn_CommonAttrs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region MaxSizedRegion<1>:$score_mod,
                        MaxSizedRegion<1>:$mask_mod);

  let assemblyFormat = !strconcat([{
    `ins` `(` $query `,` $key `,` $value `,` $output `,` $grad_output `,` $lse
        `:` type($query) `,` type($key) `,` type($value) `,` type($output) `,`
        type($grad_output) `,` type($lse) `)`
  }], Attn_VarlenFormat, Attn_ScoreModFormat, [{
    `outs` `(` $grad_query `,` $grad_key `,` $grad_value `:`
        type($grad_query) `,` type($grad_key) `,` type($grad_value) `)`
    (`grad_sinks` `(` $grad_sinks^ `:` type($grad_sinks) `)`)?
    attr-dict (`score_mod` $score_mod^)? (`mask_mod` $mask_mod^)?
    (`->` type($results)^)?
  }]);

  let extraClassDeclaration = [{
    /// The inits, in order: grad_query, grad_key, grad_value and, when
    /// present, grad_sinks.
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), /*start=*/6,
                                         getGradSinks() ? 4 : 3);
    }
    double getScaleValue();
    ::mlir::attn::MaskSpec getMaskSpec();
    /// True for the variable-length (packed) form.
    bool isVarlen() { return getCuSeqlensQ() != nullptr; }
    /// True when the scores carry a modification (ALiBi, sinks or a user
    /// region).
    bool hasScoreMods() {
      return getAlibiSlopes() || getSinks() || getRotaryCos() ||
             !getScoreMod().empty() || !getMaskMod().empty();
    }
  }];

  let hasVerifier = 1;
  let hasFolder = 1;
}

#endif // FLASHMLIR_DIALECT_ATTN_IR_ATTNOPS_TD
