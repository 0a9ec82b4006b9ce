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

What it cannot compute it refuses, from the mask function (called once per
forward): a padded batch (an attention_mask with zeros) or any mask that is
more than causal / sliding window (packed sequences, a static cache, custom
mask functions) raise NotImplementedError naming issue 14 (variable-length
batches); attention dropout raises ValueError; attention sinks (``s_aux``)
raise NotImplementedError naming issue 15.
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
    if attention_mask is not None:
        raise NotImplementedError(
            f"{where}: got an explicit attention mask of shape {tuple(attention_mask.shape)}; "
            f"FlashMLIR computes causal and sliding-window masks itself and has no "
            f"variable-length path yet ({VARLEN_ISSUE}). Use attn_implementation='sdpa' "
            f"for padded batches.")
    if kwargs.get("s_aux") is not None:
        raise NotImplementedError(f"{where}: attention sinks (s_aux) are not supported yet; "
                                  f"they come with {SINK_ISSUE}")
    if dropout:
        raise ValueError(f"{where}: attention dropout {dropout!r} is not supported (FlashMLIR "
                         f"has no attention dropout); set the config's attention_dropout to "
                         f"0.0")
    if is_causal is None:
        is_causal = bool(getattr(module, "is_causal", True))
    window = (-1, -1)
    if sliding_window is not None and sliding_window > 0:
        window = (int(sliding_window) - 1, 0 if is_causal else int(sliding_window) - 1)
    out = flash_attn_func(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                          softmax_scale=scaling, causal=bool(is_causal), window_size=window,
                          softcap=float(softcap) if softcap else 0.0)
    return out, None


def padding_free_mask(batch_size=None, q_length=None, kv_length=None, q_offset=0,
                      kv_offset=0, mask_function=None, attention_mask=None,
                      allow_is_causal_skip=True, **kwargs):
    """transformers' mask-function protocol. Returns None (the kernels apply
    the causal / sliding-window mask from the attention function's
    arguments) when the requested mask is exactly that; raises otherwise."""
    where = "flashmlir (transformers attention)"
    if not allow_is_causal_skip:
        raise NotImplementedError(
            f"{where}: this forward needs a mask beyond causal / sliding window (packed "
            f"sequences, a static cache or a custom mask function); FlashMLIR has no "
            f"variable-length path yet ({VARLEN_ISSUE}). Use attn_implementation='sdpa'.")
    if attention_mask is not None:
        am = attention_mask
        if kv_length is not None and am.dim() == 2:
            am = am[:, -kv_length:]
        if not (am.dim() == 2 and (kv_length is None or am.shape[1] == kv_length)
                and bool(am.all())):
            raise NotImplementedError(
                f"{where}: padded batches (an attention_mask with zeros) need the "
                f"variable-length path of {VARLEN_ISSUE}. Use attn_implementation='sdpa' "
                f"for them, or batches without padding.")
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
