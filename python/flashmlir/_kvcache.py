"""FlashAttention-2's ``flash_attn_with_kvcache``: attention of new query rows
against a KV cache, contiguous ``[batch, capacity, kv_heads, dim]`` or paged
(``[num_blocks, block_size, kv_heads, dim]`` with a ``block_table``), after
appending the new keys and values (``k=``, ``v=``) at ``cache_seqlens``.

torch tensors (CPU or CUDA) or NumPy arrays (CPU). On CUDA the attention
is one call of the runtime's split-KV forward
(``fa_forward_kvcache``: the key range of each (sequence, KV head) split over
several blocks, the GQA group's query heads sharing each K/V tile, partials
merged by their log-sum-exp); the append is a scatter on the stream before
it. On the CPU the sequences' cached rows are gathered into packed K / V and
attended by the variable-length CPU forward (flash_attn_varlen_func). Masks align bottom-right to each sequence's length
(``cache_seqlens`` plus the appended rows), as in flash_attn.

RoPE inside the call (``rotary_cos`` / ``rotary_sin``, float32 ``[seqlen_ro,
rotary_dim / 2]``), with FlashAttention-2's semantics: the new keys ``k`` are
rotated at their cache positions ``cache_seqlens[b] + i`` before they are
appended (the cache holds rotated keys); q is rotated at ``cache_seqlens[b] +
i`` when causal or local, else every query at ``cache_seqlens[b]``; pairs
GPT-J (``rotary_interleaved=True``, flash_attn's default here) or GPT-NeoX.
The rotation (in float32) is applied to q and the new rows before the
attention call, not inside its kernel: they are the few decode rows.

Not supported (clear errors): ``cache_batch_idx``, ``cache_leftpad``, ALiBi.
"""

import math
import numbers

from ._errors import FlashMLIRError


def _int_array(t, name, shape_desc, dims, q, where):
    """t is an int32 array of q's kind (a torch tensor on q's device, or a
    NumPy array) with `dims` dims."""
    import numpy as np
    if isinstance(q, np.ndarray):
        if not isinstance(t, np.ndarray) or t.dtype != np.int32:
            raise TypeError(f"{where}: {name} must be an int32 numpy.ndarray ({shape_desc}) "
                            f"like q, got {getattr(t, 'dtype', type(t).__name__)}")
    else:
        import torch
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor (int32, {shape_desc}), "
                            f"got {type(t).__name__}")
        if t.dtype != torch.int32:
            raise TypeError(f"{where}: {name} must have dtype torch.int32 (as flash_attn "
                            f"requires), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{where}: {name} is on {t.device} but q is on {q.device}")
    if t.ndim != dims:
        raise ValueError(f"{where}: {name} must be {dims}-d {shape_desc}, got shape "
                         f"{tuple(t.shape)}")


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None,
                            rotary_sin=None, cache_seqlens=None, cache_batch_idx=None,
                            cache_leftpad=None, block_table=None, softmax_scale=None,
                            causal=False, window_size=(-1, -1), softcap=0.0,
                            rotary_interleaved=True, alibi_slopes=None, num_splits=0,
                            return_softmax_lse=False):
    """FlashAttention-2's ``flash_attn_with_kvcache``: q ``[B, Nq, Hq, D]``;
    k_cache / v_cache ``[B, capacity, Hkv, D / Dv]``, or with ``block_table``
    (int32 ``[B, max_blocks]``) the pages ``[num_blocks, block_size, Hkv, D /
    Dv]``; k / v (optional) ``[B, Nnew, Hkv, D / Dv]`` written into the cache
    (in place) at rows ``cache_seqlens[b]...``; cache_seqlens an int or int32
    ``[B]`` (None: the whole capacity). Returns out ``[B, Nq, Hq, Dv]`` and,
    with ``return_softmax_lse``, lse ``[B, Hq, Nq]`` (float32). torch tensors
    (CPU or CUDA) or NumPy arrays (CPU)."""
    import numpy as np

    from ._flash_attn import _check_common
    where = "flash_attn_with_kvcache"
    for name, val in (("cache_batch_idx", cache_batch_idx), ("cache_leftpad", cache_leftpad)):
        if val is not None:
            raise NotImplementedError(f"{where}: {name} is not supported; pass None")
    if not isinstance(rotary_interleaved, bool):
        raise TypeError(f"{where}: rotary_interleaved must be a bool, got "
                        f"{rotary_interleaved!r}")
    if not isinstance(return_softmax_lse, bool):
        raise TypeError(f"{where}: return_softmax_lse must be a bool, got "
                        f"{return_softmax_lse!r}")
    if (not isinstance(num_splits, numbers.Integral) or isinstance(num_splits, bool)
            or not 0 <= num_splits <= 128):
        raise ValueError(f"{where}: num_splits must be an int in [0, 128] (0 = automatic), "
                         f"got {num_splits!r}")
    opts = _check_common(where, 0.0, softmax_scale, causal, window_size, softcap,
                         alibi_slopes, False, False)
    if (k is None) != (v is None):
        raise ValueError(f"{where}: k and v must be given together (the rows to append)")
    named = [("q", q), ("k_cache", k_cache), ("v_cache", v_cache)]
    if k is not None:
        named += [("k", k), ("v", v)]
    numpy = isinstance(q, np.ndarray)
    if numpy:
        from ._numpy import _check_arrays
        _check_arrays(named, where)
    else:
        from . import _torch
        _torch.check_tensors(named, where)
    for name, t in named:
        if t.ndim != 4:
            raise ValueError(f"{where}: {name} must be 4-d, got shape {tuple(t.shape)}")
    B, Nq, Hq, D = q.shape
    paged = block_table is not None
    if paged:
        _int_array(block_table, "block_table", "[batch, max_blocks]", 2, q, where)
        if block_table.shape[0] != B or block_table.shape[1] < 1:
            raise ValueError(f"{where}: block_table must have shape [batch={B}, max_blocks >= "
                             f"1], got {tuple(block_table.shape)}")
        NB, BS, Hkv, Dk = k_cache.shape
        capacity = block_table.shape[1] * BS
    else:
        Bc, capacity, Hkv, Dk = k_cache.shape
        if Bc != B:
            raise ValueError(f"{where}: k_cache has batch {Bc}, q {B} (cache_batch_idx is not "
                             f"supported: the cache's batch must be q's)")
        NB, BS = Bc, capacity
    Dv = v_cache.shape[3]
    if Dk != D:
        raise ValueError(f"{where}: k_cache has head dim {Dk}, q {D}")
    if tuple(v_cache.shape[:3]) != tuple(k_cache.shape[:3]):
        raise ValueError(f"{where}: v_cache must match k_cache in its first three dims: "
                         f"{tuple(k_cache.shape)} vs {tuple(v_cache.shape)}")
    if Hkv < 1 or Hq % Hkv:
        raise ValueError(f"{where}: q has {Hq} heads, not a multiple of the cache's {Hkv}")
    Nn = 0
    if k is not None:
        Nn = k.shape[1]
        if tuple(k.shape) != (B, Nn, Hkv, D) or tuple(v.shape) != (B, Nn, Hkv, Dv):
            raise ValueError(f"{where}: k / v must have shapes {(B, Nn, Hkv, D)} / "
                             f"{(B, Nn, Hkv, Dv)}, got {tuple(k.shape)} / {tuple(v.shape)}")

    # cache_seqlens as an int32 [B] array of q's kind (None: the full
    # capacity, kept None for a contiguous cache).
    full = lambda n: (np.full((B,), n, dtype=np.int32) if numpy  # noqa: E731
                      else _torch_full(B, n, q.device))
    if cache_seqlens is None:
        if k is not None:
            raise ValueError(f"{where}: appending k / v needs cache_seqlens (where the new "
                             f"rows go)")
        lens = full(capacity) if paged else None
    elif isinstance(cache_seqlens, numbers.Integral) and not isinstance(cache_seqlens, bool):
        lens = full(int(cache_seqlens))
    else:
        _int_array(cache_seqlens, "cache_seqlens", "[batch]", 1, q, where)
        if cache_seqlens.shape[0] != B:
            raise ValueError(f"{where}: cache_seqlens must have shape [{B}], got "
                             f"{tuple(cache_seqlens.shape)}")
        lens = cache_seqlens
    cpu = numpy or q.device.type == "cpu"
    if rotary_cos is not None or rotary_sin is not None:
        base = lens if lens is not None else full(capacity)
        local = causal or tuple(window_size) != (-1, -1)
        q, k = _rotate_new_rows(q, k, rotary_cos, rotary_sin, base, local, rotary_interleaved,
                                D, Nq, Nn, numpy, cpu, where)
    if cpu and lens is not None and B:
        # The host can afford the checks flash_attn leaves to the caller.
        lo, hi = int(lens.min()), int(lens.max()) + Nn
        if lo < 0 or hi > capacity:
            raise ValueError(f"{where}: cache_seqlens (+ {Nn} new rows) must lie in "
                             f"[0, {capacity}], got [{lo}, {hi}]")
        if paged and (int(block_table.min()) < 0 or int(block_table.max()) >= NB):
            raise ValueError(f"{where}: block_table entries must lie in [0, {NB})")

    # Append: rows lens[b] .. lens[b] + Nn - 1 of each sequence, in place.
    if Nn:
        if numpy:
            pos = lens.astype(np.int64)[:, None] + np.arange(Nn)[None, :]
            if paged:
                blk = np.take_along_axis(block_table.astype(np.int64), pos // BS, axis=1)
                k_cache[blk, pos % BS] = k
                v_cache[blk, pos % BS] = v
            else:
                rows = np.arange(B)[:, None]
                k_cache[rows, pos] = k
                v_cache[rows, pos] = v
            lens = (lens + Nn).astype(np.int32)
        else:
            import torch
            pos = lens.long()[:, None] + torch.arange(Nn, device=q.device)[None, :]
            if paged:
                blk = block_table.long().gather(1, pos // BS)
                k_cache[blk, pos % BS] = k
                v_cache[blk, pos % BS] = v
            else:
                rows = torch.arange(B, device=q.device)[:, None]
                k_cache[rows, pos] = k
                v_cache[rows, pos] = v
            lens = (lens + Nn).to(torch.int32)

    scale = opts.resolve_scale(D)
    if not cpu:
        out, lse = _cuda(q, k_cache, v_cache, lens, block_table, opts, scale, num_splits,
                         Hq, Dv, where, return_softmax_lse)
    else:
        out, lse = _cpu(q, k_cache, v_cache, lens, block_table, BS, opts, scale, numpy)
    return (out, lse) if return_softmax_lse else out


def _rotate_new_rows(q, k, cos, sin, base, local, interleaved, D, Nq, Nn, numpy, cpu,
                     where):
    """FlashAttention-2's RoPE of flash_attn_with_kvcache: the new keys at
    base[b] + i, q at base[b] + i (causal / local) or base[b]. Returns the
    rotated copies of q and k (k None stays None)."""
    import numpy as np
    if cos is None or sin is None:
        raise ValueError(f"{where}: rotary_cos and rotary_sin must be given together")
    kind = np.ndarray if numpy else type(q)
    for name, t in (("rotary_cos", cos), ("rotary_sin", sin)):
        if not isinstance(t, kind):
            raise TypeError(f"{where}: {name} must be a {kind.__name__} like q, got "
                            f"{type(t).__name__}")
        if not numpy and t.device != q.device:
            raise ValueError(f"{where}: {name} is on {t.device} but q is on {q.device}")
    if cos.ndim != 2 or tuple(cos.shape) != tuple(sin.shape):
        raise ValueError(f"{where}: rotary_cos and rotary_sin must both have shape "
                         f"(seqlen_ro, rotary_dim / 2), got {tuple(cos.shape)} and "
                         f"{tuple(sin.shape)}")
    P, half = cos.shape
    if half < 1 or 2 * half > D:
        raise ValueError(f"{where}: rotary_dim = 2 * {half} must be in [2, head dim {D}]")
    span = max(Nn, Nq if local else 1)  # positions base[b] .. base[b] + span - 1
    if cpu and base.shape[0]:
        hi = int(base.max()) + span
        if hi > P:
            raise ValueError(f"{where}: the rotary tables cover {P} positions but the new rows "
                             f"need {hi}")
    if numpy:
        b0 = base.astype(np.int64)[:, None]
        pos = lambda n, step: b0 + np.arange(n)[None, :] * step  # noqa: E731
    else:
        import torch
        b0 = base.long()[:, None]
        if not cpu:  # no host sync: a device-side assert past the tables
            torch._assert_async(b0.max() + span <= P, "flash_attn_with_kvcache: positions "
                                "past the rotary tables")
        pos = lambda n, step: b0 + torch.arange(n, device=q.device)[None, :] * step  # noqa
    q = _rope(q, cos, sin, pos(Nq, 1 if local else 0), interleaved, numpy)
    if k is not None:
        k = _rope(k, cos, sin, pos(Nn, 1), interleaved, numpy)
    return q, k


def _rope(x, cos, sin, pos, interleaved, numpy):
    """x [B, N, H, D] with its first 2 * cos.shape[1] dims rotated at pos [B,
    N] (float32 arithmetic, x's dtype out; a new array)."""
    R = 2 * cos.shape[1]
    if numpy:
        import numpy as np
        c, s = cos[pos][:, :, None, :].astype(np.float32), sin[pos][:, :, None, :].astype(
            np.float32)
        xf = x[..., :R].astype(np.float32)
        out = x.copy()
    else:
        import torch
        c, s = cos.float()[pos].unsqueeze(2), sin.float()[pos].unsqueeze(2)
        xf = x[..., :R].float()
        out = x.clone()
    a, b = (xf[..., 0::2], xf[..., 1::2]) if interleaved else (xf[..., :R // 2], xf[..., R // 2:])
    a2, b2 = a * c - b * s, b * c + a * s
    if numpy:
        rot = np.empty_like(xf)
    else:
        rot = torch.empty_like(xf)
    if interleaved:
        rot[..., 0::2], rot[..., 1::2] = a2, b2
    else:
        rot[..., :R // 2], rot[..., R // 2:] = a2, b2
    out[..., :R] = rot.astype(x.dtype) if numpy else rot.to(x.dtype)
    return out


def _torch_full(n, value, device):
    import torch
    return torch.full((n,), value, dtype=torch.int32, device=device)


def _cuda(q, k_cache, v_cache, lens, block_table, opts, scale, num_splits, Hq, Dv, where,
          want_lse):
    import torch

    from . import _native, _runtime, _torch
    from ._torch import DTYPES, _usable
    B, Nq = q.shape[0], q.shape[1]
    out = q.new_empty((B, Nq, Hq, Dv))
    lse = torch.empty((B, Hq, Nq), dtype=torch.float32, device=q.device)
    if B * Nq == 0:
        return out, lse
    q = _usable(q)
    p = _runtime.params(DTYPES[q.dtype], _torch._opts(opts.causal, scale, opts.window_left,
                                                      opts.window_right, opts.softcap), scale)
    # [B, H, N, D] views (the runtime's order); pages [blocks, Hkv, block, D].
    ts = [_torch._dev(t.transpose(1, 2)) for t in (q, k_cache, v_cache, out)]
    ts.append(_torch._dev(lse))
    lens_ptr = lens.contiguous().data_ptr() if lens is not None else 0
    bt, bt_stride, max_blocks = 0, 0, 0
    if block_table is not None:
        if block_table.stride(1) != 1:
            block_table = block_table.contiguous()
        bt, bt_stride, max_blocks = (block_table.data_ptr(), block_table.stride(0),
                                     block_table.shape[1])

    def run(stream):
        last = None
        for h in _runtime.dispatcher().varlen_handles():
            st = h.forward_kvcache(p, *ts, lens_ptr, bt, bt_stride, max_blocks, num_splits,
                                   stream)
            if st == 0:
                return None
            last = h.error(st)
            if st != _native.FA_ERR_NO_KERNEL:
                raise last
        return last if last is not None else FlashMLIRError(
            f"{where}: no CUDA runtime bundle is loaded", 0, "FA_ERR_NO_KERNEL")
    err = _torch.on_stream(q, run)
    if err is not None:
        raise err
    # flash_attn's convention for rows that see no key: +inf (converted only
    # when the caller asked for lse: two more launches on the decode path).
    return out, (torch.where(lse == -math.inf, math.inf, lse) if want_lse else lse)


def _cpu(q, k_cache, v_cache, lens, block_table, BS, opts, scale, numpy):
    """The sequences' cached rows gathered into packed K / V, then the
    variable-length CPU forward (one query block of Nq rows per sequence)."""
    import numpy as np

    from ._flash_attn import flash_attn_varlen_func
    B, Nq, Hq, D = q.shape
    Hkv, Dv = k_cache.shape[2], v_cache.shape[3]
    n = [k_cache.shape[1]] * B if lens is None else [int(x) for x in lens.tolist()]
    if numpy:
        lib, cat, ar = np, np.concatenate, np.arange
        i32 = lambda x: np.asarray(x, dtype=np.int32)  # noqa: E731
    else:
        import torch
        lib, cat, ar = torch, torch.cat, torch.arange
        i32 = lambda x: torch.tensor(x, dtype=torch.int32)  # noqa: E731

    def rows(cache, b):
        if block_table is None:
            return cache[b, :n[b]]
        pos = ar(n[b])
        blk = block_table[b][pos // BS]
        return cache[blk.astype(np.int64) if numpy else blk.long(), pos % BS]

    if B * Nq == 0 or sum(n) == 0:
        out = lib.zeros((B, Nq, Hq, Dv), dtype=q.dtype)
        lse = lib.full((B, Hq, Nq), math.inf, dtype=lib.float32)
        return out, lse
    kp = cat([rows(k_cache, b) for b in range(B)])
    vp = cat([rows(v_cache, b) for b in range(B)])
    cu_k = i32([0] + list(np.cumsum(n)))
    cu_q = i32([b * Nq for b in range(B + 1)])
    o, lse, _ = flash_attn_varlen_func(
        q.reshape(B * Nq, Hq, D), kp, vp, cu_q, cu_k, Nq, max(n), softmax_scale=scale,
        causal=opts.causal, window_size=(opts.window_left, opts.window_right),
        softcap=opts.softcap or 0.0, return_attn_probs=True)
    lse = lse.reshape(Hq, B, Nq)
    lse = lse.transpose(1, 0, 2) if numpy else lse.transpose(0, 1)
    return o.reshape(B, Nq, Hq, Dv), lse
