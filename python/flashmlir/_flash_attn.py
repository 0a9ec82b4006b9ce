"""FlashAttention-2's Python functions (``flash_attn.flash_attn_interface``)
on FlashMLIR: same signatures, layouts and semantics, so that code written
against ``flash_attn`` runs by changing its import.

* ``flash_attn_func(q, k, v, ...)``: q ``[B, Nq, Hq, D]``, k ``[B, Nk, Hkv, D]``,
  v ``[B, Nk, Hkv, Dv]`` (Hq a multiple of Hkv: GQA/MQA).
* ``flash_attn_kvpacked_func(q, kv, ...)``: kv ``[B, Nk, 2, Hkv, D]``.
* ``flash_attn_qkvpacked_func(qkv, ...)``: qkv ``[B, N, 3, H, D]``.

Each returns ``out`` ``[B, Nq, Hq, Dv]`` (q's dtype), or with
``return_attn_probs=True`` the triple ``(out, softmax_lse, S_dmask)``:
``softmax_lse`` float32 ``[B, Hq, Nq]`` (natural log of each row's softmax
normaliser; ``+inf`` for rows that see no key, as FlashAttention-2 returns
them) and ``S_dmask`` None (FlashAttention-2 returns probabilities only with
dropout, which FlashMLIR does not have).

Semantics as FlashAttention-2's: ``softmax_scale`` defaults to
``1/sqrt(D)``; ``causal`` is aligned to the bottom-right corner;
``window_size=(left, right)`` keeps keys in
``[i + Nk - Nq - left, i + Nk - Nq + right]``, -1 = unbounded; with causal
the right side is 0; ``softcap > 0`` applies ``softcap * tanh(s / softcap)``
to the scaled scores (``<= 0``: off); rows that see no key give 0. Inputs
are torch tensors (CPU or CUDA; float16, bfloat16 and also float32),
differentiable through ``torch.ops.flashmlir.attention_fwd``.

Differences, raised rather than computed differently:

* ``dropout_p`` must be 0.0 (ValueError): FlashMLIR has no attention dropout.
* ``alibi_slopes`` (float32 ``[Hq]`` or ``[B, Hq]``, FlashAttention-2's
  bias ``-slope * |i + Nk - Nq - j|``) runs on CPU tensors in
  ``flash_attn_func`` and its packed forms; on CUDA tensors and in the
  varlen / KV-cache functions it raises NotImplementedError (the GPU kernels
  get it with issue 15).
* ``deterministic=True`` runs the backward on the bit-reproducible dQ
  kernels on CUDA (a deterministic bundle, else compiled on demand); the CPU
  backward is deterministic anyway.
"""

import math
import numbers
import sys

ALIBI_ISSUE = "issue 15 (score and position modifications: ALiBi, RoPE, sinks)"


def _torch_inputs(where, named):
    torch = sys.modules.get("torch")
    for name, t in named:
        if torch is None or not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor (as in flash_attn), "
                            f"got {type(t).__name__}")


def _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                  alibi_slopes, deterministic, return_attn_probs, alibi_ok=False):
    """Validates FlashAttention-2's keyword arguments; returns the options of
    flashmlir.attention as (causal, scale, window, softcap)."""
    from ._options import check_options
    if not isinstance(dropout_p, numbers.Real) or isinstance(dropout_p, bool):
        raise TypeError(f"{where}: dropout_p must be a float, got {dropout_p!r}")
    if dropout_p != 0.0:
        raise ValueError(f"{where}: dropout_p must be 0.0: FlashMLIR has no attention "
                         f"dropout (got {dropout_p!r}); pass 0.0, as flash_attn expects "
                         f"during evaluation")
    if alibi_slopes is not None and not alibi_ok:
        raise NotImplementedError(f"{where}: alibi_slopes is not supported here yet (only "
                                  f"flash_attn_func and its packed forms take it, on CPU "
                                  f"tensors); the rest comes with {ALIBI_ISSUE}. Pass "
                                  f"alibi_slopes=None.")
    for name, flag in (("causal", causal), ("deterministic", deterministic),
                       ("return_attn_probs", return_attn_probs)):
        if not isinstance(flag, bool):
            raise TypeError(f"{where}: {name} must be a bool, got {flag!r}")
    if (isinstance(window_size, (str, bytes)) or not hasattr(window_size, "__len__")
            or len(window_size) != 2):
        raise ValueError(f"{where}: window_size must be a pair (left, right) of ints, -1 = "
                         f"unbounded, got {window_size!r}")
    wl, wr = window_size
    for w in (wl, wr):
        if not isinstance(w, numbers.Integral) or isinstance(w, bool):
            raise TypeError(f"{where}: window_size must be a pair of ints, got {window_size!r}")
    window = None if (int(wl), int(wr)) == (-1, -1) else (int(wl), int(wr))
    if not isinstance(softcap, numbers.Real) or isinstance(softcap, bool):
        raise TypeError(f"{where}: softcap must be a float (0.0 = off), got {softcap!r}")
    cap = float(softcap) if softcap > 0 else None
    opts = check_options(causal, softmax_scale, window, cap, "bshd", where)
    return opts


def _run(where, q, k, v, opts, deterministic, return_attn_probs, alibi_slopes=None):
    """out (and lse) of attention on [B, N, H, D] tensors."""
    import torch

    from . import _torch
    from ._options import check_shapes
    _torch.check_tensors([("q", q), ("k", k), ("v", v)], where)
    dims = check_shapes(q.shape, k.shape, v.shape, "bshd", where)
    scale = opts.resolve_scale(dims[5])
    if alibi_slopes is not None:
        o, lse = _torch.attention(q, k, v, opts, True, where, alibi_slopes=alibi_slopes)
    else:
        o, lse = _torch.attention_fwd_call(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), opts.causal, scale,
            opts.window_left, opts.window_right, opts.softcap, True, deterministic)
        o = o.transpose(1, 2)
    if not return_attn_probs:
        return o
    # FlashAttention-2 reports rows that see no key with lse = +inf (so that
    # exp(s - lse) is 0 in its backward); FlashMLIR's own convention is -inf.
    lse = torch.where(lse == -math.inf, math.inf, lse)
    return o, lse, None


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                    window_size=(-1, -1), softcap=0.0, alibi_slopes=None, deterministic=False,
                    return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_func``: q ``[B, Nq, Hq, D]``, k
    ``[B, Nk, Hkv, D]``, v ``[B, Nk, Hkv, Dv]`` -> out ``[B, Nq, Hq, Dv]``
    (see the module docstring for the semantics and the differences)."""
    where = "flash_attn_func"
    _torch_inputs(where, [("q", q), ("k", k), ("v", v)])
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs, alibi_ok=True)
    return _run(where, q, k, v, opts, deterministic, return_attn_probs, alibi_slopes)


def flash_attn_kvpacked_func(q, kv, dropout_p=0.0, softmax_scale=None, causal=False,
                             window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                             deterministic=False, return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_kvpacked_func``: q ``[B, Nq, Hq, D]``,
    kv ``[B, Nk, 2, Hkv, D]`` -> out ``[B, Nq, Hq, D]``."""
    where = "flash_attn_kvpacked_func"
    _torch_inputs(where, [("q", q), ("kv", kv)])
    if kv.dim() != 5 or kv.shape[2] != 2:
        raise ValueError(f"{where}: kv must have shape [batch, seqlen_k, 2, nheads_k, headdim], "
                         f"got {tuple(kv.shape)}")
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs, alibi_ok=True)
    return _run(where, q, kv[:, :, 0], kv[:, :, 1], opts, deterministic, return_attn_probs,
                alibi_slopes)


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False,
                              window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                              deterministic=False, return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_qkvpacked_func``: qkv
    ``[B, N, 3, H, D]`` -> out ``[B, N, H, D]``."""
    where = "flash_attn_qkvpacked_func"
    _torch_inputs(where, [("qkv", qkv)])
    if qkv.dim() != 5 or qkv.shape[2] != 3:
        raise ValueError(f"{where}: qkv must have shape [batch, seqlen, 3, nheads, headdim], "
                         f"got {tuple(qkv.shape)}")
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs, alibi_ok=True)
    return _run(where, qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], opts, deterministic,
                return_attn_probs, alibi_slopes)


# --- variable-length batches ------------------------------------------------------

def _run_varlen(where, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, opts,
                deterministic, return_attn_probs, block_table):
    if block_table is not None:
        raise NotImplementedError(f"{where}: block_table (a paged KV cache) is not supported "
                                  f"with packed (varlen) queries yet; flash_attn_with_kvcache "
                                  f"takes a paged cache. Pass block_table=None.")
    np = sys.modules.get("numpy")
    if np is not None and isinstance(q, np.ndarray):
        # NumPy on the CPU (no autograd).
        from . import _varlen
        for name, t in (("k", k), ("v", v)):
            if not isinstance(t, np.ndarray):
                raise TypeError(f"{where}: {name} must be a numpy.ndarray like q, got "
                                f"{type(t).__name__}")
        o, lse = _varlen.numpy_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                       max_seqlen_k, opts, where)
        if not return_attn_probs:
            return o
        return o, np.where(lse == -np.inf, np.inf, lse).astype(np.float32), None
    _torch_inputs(where, [("q", q), ("k", k), ("v", v)])
    import torch

    from . import _torch_varlen  # noqa: F401  (registers the custom ops)
    if q.dim() != 3:
        raise ValueError(f"{where}: q must be packed [total_q, nheads, headdim], got shape "
                         f"{tuple(q.shape)}")
    scale = opts.resolve_scale(q.shape[2])
    for name, m in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if not isinstance(m, numbers.Integral) or isinstance(m, bool):
            raise TypeError(f"{where}: {name} must be an int, got {m!r}")
    o, lse = torch.ops.flashmlir.varlen_fwd(
        q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), int(max_seqlen_k), opts.causal,
        scale, opts.window_left, opts.window_right, opts.softcap, deterministic)
    if not return_attn_probs:
        return o
    lse = torch.where(lse == -math.inf, math.inf, lse)
    return o, lse, None


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                           dropout_p=0.0, softmax_scale=None, causal=False,
                           window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                           deterministic=False, return_attn_probs=False, block_table=None):
    """FlashAttention-2's ``flash_attn_varlen_func``: q ``[total_q, Hq, D]``,
    k ``[total_k, Hkv, D]``, v ``[total_k, Hkv, Dv]`` packed along the tokens,
    ``cu_seqlens_q`` / ``cu_seqlens_k`` int32 ``[batch + 1]`` offsets of the
    sequences, ``max_seqlen_q`` / ``max_seqlen_k`` ints bounding their lengths
    -> out ``[total_q, Hq, Dv]`` (with ``return_attn_probs``: ``(out,
    softmax_lse [Hq, total_q], None)``, lse ``+inf`` on rows that see no key).
    Masks are aligned to each sequence's bottom-right corner. torch tensors
    (CPU or CUDA, differentiable) or NumPy arrays (CPU; the offsets then int32
    arrays). ``block_table`` (paged KV) must be None."""
    where = "flash_attn_varlen_func"
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs)
    return _run_varlen(where, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                       opts, deterministic, return_attn_probs, block_table)


def flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                    max_seqlen_k, dropout_p=0.0, softmax_scale=None,
                                    causal=False, window_size=(-1, -1), softcap=0.0,
                                    alibi_slopes=None, deterministic=False,
                                    return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_varlen_kvpacked_func``: kv
    ``[total_k, 2, Hkv, D]``."""
    where = "flash_attn_varlen_kvpacked_func"
    if len(kv.shape) != 4 or kv.shape[1] != 2:
        raise ValueError(f"{where}: kv must have shape [total_k, 2, nheads_k, headdim], got "
                         f"{tuple(kv.shape)}")
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs)
    return _run_varlen(where, q, kv[:, 0], kv[:, 1], cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                       max_seqlen_k, opts, deterministic, return_attn_probs, None)


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0,
                                     softmax_scale=None, causal=False, window_size=(-1, -1),
                                     softcap=0.0, alibi_slopes=None, deterministic=False,
                                     return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_varlen_qkvpacked_func``: qkv
    ``[total, 3, H, D]``, one set of offsets for queries and keys."""
    where = "flash_attn_varlen_qkvpacked_func"
    if len(qkv.shape) != 4 or qkv.shape[1] != 3:
        raise ValueError(f"{where}: qkv must have shape [total, 3, nheads, headdim], got "
                         f"{tuple(qkv.shape)}")
    opts = _check_common(where, dropout_p, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, deterministic, return_attn_probs)
    return _run_varlen(where, qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens, cu_seqlens,
                       max_seqlen, max_seqlen, opts, deterministic, return_attn_probs, None)
