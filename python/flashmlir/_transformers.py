"""FlashMLIR as a Hugging Face transformers attention implementation.

    import flashmlir
    name = flashmlir.register_transformers()          # "mlir_attention"
    model = AutoModelForCausalLM.from_pretrained(..., attn_implementation=name)
    # or: model.set_attn_implementation(name)

One call registers an attention function (``AttentionInterface``) and a mask
function (``AttentionMaskInterface``) under the name. The name must not
contain "flash": transformers treats every such name as a request for its own
flash-attention loader (``is_flash_attention_requested``) and fails.

The attention function takes transformers' ``[B, H, N, D]`` query and the
un-repeated ``[B, Hkv, N, D]`` key/value (GQA/MQA natively), the module's
``scaling``, ``is_causal``, ``sliding_window`` (keys within ``sliding_window
- 1`` positions to the left, as transformers' masks and its flash-attention
path define it; both sides when not causal) and ``softcap`` (Gemma 2), and
runs :func:`flashmlir.flash_attn_func` (causal masks bottom-right aligned,
which is what a KV cache needs).

Padded batches (an ``attention_mask`` with zeros, left padding as
``generate()`` makes it, or right padding) run through the variable-length
path, as transformers' own flash-attention integration does: the mask
function hands the 2-D padding mask to the attention function, which drops
the padding tokens (unpad), runs :func:`flashmlir.flash_attn_varlen_func` on
the packed real tokens (causal and window masks aligned to each sequence's
last token) and scatters the result back (pad; padding rows get 0).
:func:`unpad_input` / :func:`pad_input` / :func:`varlen_attention` are that
helper, usable outside transformers too.

What it cannot compute it refuses, from the mask function (called once per
forward): any mask that is more than causal / sliding window plus padding
(packed sequences given by position_ids, a static cache, custom mask
functions) raise NotImplementedError naming issue 14; attention dropout
raises ValueError. Attention sinks (``s_aux``, gpt-oss) run on CPU and CUDA
tensors without padding; with a padded batch they raise NotImplementedError
naming issue 15.
"""

DEFAULT_NAME = "mlir_attention"
VARLEN_ISSUE = "issue 14 (variable-length batches, paged KV cache)"
SINK_ISSUE = "issue 15 (score and position modifications: ALiBi, RoPE, sinks)"


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                      sliding_window=None, softcap=None, is_causal=None, **kwargs):
    """transformers' attention-function protocol: returns (out [B, N, H, Dv],
    None)."""
    from ._flash_attn import flash_attn_func
    where = "flashmlir (transformers attention)"
    if attention_mask is not None and attention_mask.dim() != 2:
        raise NotImplementedError(
            f"{where}: got an explicit attention mask of shape {tuple(attention_mask.shape)}; "
            f"FlashMLIR computes causal and sliding-window masks itself and takes padding "
            f"as a 2-d [batch, kv_length] mask (from its own mask function). Arbitrary "
            f"masks are not supported ({VARLEN_ISSUE}).")
    sinks = kwargs.get("s_aux")
    if sinks is not None and attention_mask is not None:
        raise NotImplementedError(f"{where}: attention sinks (s_aux) with a padded batch are "
                                  f"not supported yet; they come with {SINK_ISSUE}")
    if dropout:
        raise ValueError(f"{where}: attention dropout {dropout!r} is not supported (FlashMLIR "
                         f"has no attention dropout); set the config's attention_dropout to "
                         f"0.0")
    if is_causal is None:
        is_causal = bool(getattr(module, "is_causal", True))
    window = (-1, -1)
    if sliding_window is not None and sliding_window > 0:
        window = (int(sliding_window) - 1, 0 if is_causal else int(sliding_window) - 1)
    cap = float(softcap) if softcap else 0.0
    if attention_mask is not None:
        out = varlen_attention(query, key, value, attention_mask, softmax_scale=scaling,
                               causal=bool(is_causal), window_size=window, softcap=cap)
        return out, None
    if sinks is not None:
        # gpt-oss: one sink logit per head in every row's softmax.
        from . import attention
        out = attention(query, key, value, causal=bool(is_causal), scale=scaling,
                        window=None if window == (-1, -1) else window,
                        softcap=cap or None, sinks=sinks)
        return out.transpose(1, 2), None
    out = flash_attn_func(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                          softmax_scale=scaling, causal=bool(is_causal), window_size=window,
                          softcap=cap)
    return out, None


def unpad_input(x, mask):
    """x ``[B, N, ...]`` and a bool ``[B, N]`` mask of its real tokens ->
    (the real tokens packed ``[total, ...]``, their flat indices,
    ``cu_seqlens`` int32 ``[B + 1]``, the longest sequence)."""
    import torch
    lens = mask.sum(dim=1, dtype=torch.int32)
    idx = torch.nonzero(mask.flatten(), as_tuple=False).flatten()
    cu = torch.nn.functional.pad(torch.cumsum(lens, 0, dtype=torch.int32), (1, 0))
    packed = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]).index_select(0, idx)
    return packed, idx, cu, int(lens.max().item()) if lens.numel() else 0


def pad_input(packed, idx, batch, seqlen):
    """The inverse of unpad_input: ``[B, N, ...]``, zeros at the padding."""
    out = packed.new_zeros((batch * seqlen,) + tuple(packed.shape[1:]))
    out.index_copy_(0, idx, packed)
    return out.reshape(batch, seqlen, *packed.shape[1:])


def varlen_attention(query, key, value, padding_mask, softmax_scale=None, causal=True,
                     window_size=(-1, -1), softcap=0.0):
    """Attention of a padded batch through the variable-length path: query
    ``[B, Hq, Nq, D]``, key/value ``[B, Hkv, Nk, D]`` (transformers' layout), a
    ``[B, Nk]`` mask of the real key tokens (1 = real; the queries are the last
    Nq positions, so their mask is its last Nq columns). Returns
    ``[B, Nq, Hq, Dv]`` with zeros on the padding rows."""
    from ._flash_attn import flash_attn_varlen_func
    B, _, Nq, _ = query.shape
    Nk = key.shape[2]
    mask_k = padding_mask[:, -Nk:].bool()
    if mask_k.shape != (B, Nk):
        raise ValueError(f"varlen_attention: the padding mask must be [batch, kv_length] = "
                         f"{(B, Nk)}, got {tuple(padding_mask.shape)}")
    mask_q = mask_k[:, -Nq:]
    q, idx_q, cu_q, max_q = unpad_input(query.transpose(1, 2), mask_q)
    k, _, cu_k, max_k = unpad_input(key.transpose(1, 2), mask_k)
    v, _, _, _ = unpad_input(value.transpose(1, 2), mask_k)
    out = flash_attn_varlen_func(q, k, v, cu_q.to(query.device), cu_k.to(query.device), max_q,
                                 max_k, softmax_scale=softmax_scale, causal=causal,
                                 window_size=window_size, softcap=softcap)
    return pad_input(out, idx_q, B, Nq)


def padding_free_mask(batch_size=None, q_length=None, kv_length=None, q_offset=0,
                      kv_offset=0, mask_function=None, attention_mask=None,
                      allow_is_causal_skip=True, **kwargs):
    """transformers' mask-function protocol. Returns None (the kernels apply
    the causal / sliding-window mask from the attention function's
    arguments) when the requested mask is exactly that; raises otherwise."""
    where = "flashmlir (transformers attention)"
    if not allow_is_causal_skip:
        raise NotImplementedError(
            f"{where}: this forward needs a mask beyond causal / sliding window and padding "
            f"(packed sequences given by position_ids, a static cache or a custom mask "
            f"function), which FlashMLIR does not support yet ({VARLEN_ISSUE}). Use "
            f"attn_implementation='sdpa'.")
    if attention_mask is not None:
        am = attention_mask
        if kv_length is not None and am.dim() == 2:
            am = am[:, -kv_length:]
        if not (am.dim() == 2 and (kv_length is None or am.shape[1] == kv_length)):
            raise NotImplementedError(
                f"{where}: the attention mask of shape {tuple(attention_mask.shape)} is not a "
                f"[batch, kv_length] padding mask (a static cache?); not supported yet "
                f"({VARLEN_ISSUE}). Use attn_implementation='sdpa'.")
        if not bool(am.all()):
            # Padding: the attention function unpads, runs the varlen path, pads.
            return am.bool()
    return None


def register_transformers(name=DEFAULT_NAME):
    """Registers FlashMLIR with transformers under ``name`` (default
    ``"mlir_attention"``) and returns the name, for ``attn_implementation=``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_transformers: name must be a non-empty string, got {name!r}")
    if "flash" in name.lower():
        raise ValueError(f"register_transformers: name {name!r} contains 'flash': transformers "
                         f"takes every such name for its own flash-attention loader "
                         f"(is_flash_attention_requested) and fails; use e.g. "
                         f"{DEFAULT_NAME!r}")
    try:
        from transformers import AttentionInterface
    except ImportError as e:
        raise ImportError(f"register_transformers needs transformers with AttentionInterface "
                          f"(>= 4.48): {e}") from None
    try:
        from transformers.masking_utils import AttentionMaskInterface
    except ImportError as e:
        raise ImportError(f"register_transformers needs transformers with "
                          f"masking_utils.AttentionMaskInterface (>= 4.53): {e}") from None
    import torch  # noqa: F401  (registers the flashmlir custom ops)

    from . import _torch  # noqa: F401
    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, padding_free_mask)
    return name
