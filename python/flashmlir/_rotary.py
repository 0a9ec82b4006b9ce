"""RoPE tables from a base and a scaling rule, for ``rotary_cos`` /
``rotary_sin`` (``flashmlir.attention``, ``flash_attn_with_kvcache``, the
varlen functions).

The kernels take tables (FlashAttention-2's convention): ``cos[p, i]`` and
``sin[p, i]`` for position ``p`` and pair ``i < R / 2`` of the rotary dims,
so any rule for the frequencies works with the tiling unchanged. This module
makes them from ``base`` (``rope_theta``) and the scaling rules of
Hugging Face transformers' ``rope_parameters`` / ``rope_scaling``:

* ``default``: ``inv_freq[i] = base ** (-2 i / R)``;
* ``linear`` (position interpolation): ``inv_freq / factor``;
* ``dynamic`` (dynamic NTK-aware): ``base`` grows to ``base * (factor *
  seq_len / max_position_embeddings - (factor - 1)) ** (R / (R - 2))`` once
  ``seq_len`` passes ``max_position_embeddings``;
* ``yarn``: interpolated and extrapolated frequencies blended by a linear
  ramp over the dims between ``beta_fast`` and ``beta_slow`` rotations, and
  cos / sin scaled by the attention factor (``0.1 ln(factor) + 1`` unless
  given, or the ``mscale`` / ``mscale_all_dim`` ratio);
* ``llama3``: low frequencies divided by ``factor``, high ones kept, a
  smooth blend between ``low_freq_factor`` and ``high_freq_factor``.

Phases ``p * inv_freq`` and their cos / sin are computed in float64 and
rounded once to float32 (transformers forms the phase in float32, which at
position 128k is off by up to ~1e-2 rad); the tables are float32, what the
kernels read.
"""

import math
import numbers

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3")


def _number(where, name, x, positive=True):
    if not isinstance(x, numbers.Real) or isinstance(x, bool) or not math.isfinite(x):
        raise TypeError(f"{where}: {name} must be a finite number, got {x!r}")
    if positive and x <= 0:
        raise ValueError(f"{where}: {name} must be > 0, got {x!r}")
    return float(x)


def _int(where, name, x, least=1):
    if not isinstance(x, numbers.Integral) or isinstance(x, bool) or x < least:
        raise ValueError(f"{where}: {name} must be an int >= {least}, got {x!r}")
    return int(x)


def _yarn_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def inv_freq(rotary_dim, base=None, scaling=None, seq_len=None, where="rotary_inv_freq"):
    """(inv_freq as a list of R / 2 floats, attention factor) of a rule (see
    the module docstring); ``scaling`` is None or a dict with ``rope_type``
    (or ``type``) and the rule's parameters as transformers names them
    (its ``rope_theta`` is the base when ``base`` is None; 10000 without
    either)."""
    R = _int(where, "rotary_dim", rotary_dim, 2)
    if R % 2:
        raise ValueError(f"{where}: rotary_dim must be even (pairs of dims), got {R}")
    scaling = dict(scaling or {})
    theta = scaling.pop("rope_theta", None)
    if base is None:
        base = 10000.0 if theta is None else theta
    elif theta is not None and float(theta) != float(base):
        raise ValueError(f"{where}: base={base!r} and scaling's rope_theta={theta!r} "
                         f"disagree; give one of them")
    base = _number(where, "base", base)
    partial = scaling.pop("partial_rotary_factor", None)
    if partial is not None and float(partial) != 1.0:
        raise ValueError(f"{where}: scaling has partial_rotary_factor={partial!r}: pass "
                         f"rotary_dim = head_dim * partial_rotary_factor instead (or use "
                         f"rotary_tables_from_config)")
    kind = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
    if kind not in ROPE_TYPES:
        raise ValueError(f"{where}: unknown rope_type {kind!r} (supported: "
                         f"{', '.join(ROPE_TYPES)})")

    def need(name):
        if name not in scaling or scaling[name] is None:
            raise ValueError(f"{where}: rope_type {kind!r} needs {name!r} in scaling")
        return scaling[name]

    def freqs(b):
        return [b ** (-(2.0 * i) / R) for i in range(R // 2)]

    if kind == "default":
        return freqs(base), 1.0
    if kind == "linear":
        factor = _number(where, "factor", need("factor"))
        return [f / factor for f in freqs(base)], 1.0
    if kind == "dynamic":
        factor = _number(where, "factor", need("factor"))
        max_pos = _int(where, "max_position_embeddings", need("max_position_embeddings"))
        n = max_pos if seq_len is None else max(_int(where, "seq_len", seq_len, 0), max_pos)
        if R <= 2:
            raise ValueError(f"{where}: dynamic NTK scaling needs rotary_dim > 2, got {R}")
        b = base * (factor * n / max_pos - (factor - 1)) ** (R / (R - 2))
        return freqs(b), 1.0
    if kind == "yarn":
        old = _int(where, "original_max_position_embeddings",
                   need("original_max_position_embeddings"))
        factor = scaling.get("factor")
        if factor is None:
            factor = _int(where, "max_position_embeddings",
                          need("max_position_embeddings")) / old
        factor = _number(where, "factor", factor)
        att = scaling.get("attention_factor")
        if att is None:
            ms, ms_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
            att = (_yarn_mscale(factor, ms) / _yarn_mscale(factor, ms_all) if ms and ms_all
                   else _yarn_mscale(factor))
        att = _number(where, "attention_factor", att)
        fast = _number(where, "beta_fast", scaling.get("beta_fast") or 32)
        slow = _number(where, "beta_slow", scaling.get("beta_slow") or 1)

        def corr(rot):
            return R * math.log(old / (rot * 2 * math.pi)) / (2 * math.log(base))
        lo, hi = corr(fast), corr(slow)
        if scaling.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, R - 1)
        if lo == hi:
            hi += 0.001
        out = []
        for i, f in enumerate(freqs(base)):
            ramp = min(max((i - lo) / (hi - lo), 0.0), 1.0)
            extra = 1.0 - ramp  # weight of the extrapolated (unscaled) frequency
            out.append(f / factor * (1.0 - extra) + f * extra)
        return out, att
    # llama3
    factor = _number(where, "factor", need("factor"))
    lo_f = _number(where, "low_freq_factor", need("low_freq_factor"))
    hi_f = _number(where, "high_freq_factor", need("high_freq_factor"))
    if hi_f <= lo_f:
        raise ValueError(f"{where}: high_freq_factor must be > low_freq_factor, got "
                         f"{hi_f} and {lo_f}")
    old = _int(where, "original_max_position_embeddings",
               need("original_max_position_embeddings"))
    lo_wave, hi_wave = old / lo_f, old / hi_f
    out = []
    for f in freqs(base):
        wave = 2 * math.pi / f
        if wave < hi_wave:
            out.append(f)
        elif wave > lo_wave:
            out.append(f / factor)
        else:
            smooth = (old / wave - lo_f) / (hi_f - lo_f)
            out.append((1 - smooth) * f / factor + smooth * f)
    return out, 1.0


def rotary_tables(positions, rotary_dim, *, base=None, scaling=None, seq_len=None,
                  device=None):
    """``(rotary_cos, rotary_sin)``, float32 ``[positions, rotary_dim / 2]``:
    ``cos(p * inv_freq[i]) * a`` and ``sin(...) * a`` for rows ``p = 0 ..
    positions - 1``, ``inv_freq`` and the attention factor ``a`` from
    ``base`` (default: scaling's ``rope_theta``, else 10000) and ``scaling``
    (module docstring; transformers' ``rope_parameters`` dict, e.g. ``{"rope_type": "yarn", "factor": 4.0,
    "original_max_position_embeddings": 4096}``). ``seq_len``: the sequence
    length the ``dynamic`` rule scales for (default: its
    ``max_position_embeddings``). NumPy arrays, or torch tensors on
    ``device`` when it is given."""
    where = "rotary_tables"
    P = _int(where, "positions", positions, 1)
    freqs, att = inv_freq(rotary_dim, base, scaling, seq_len, where)
    import numpy as np
    phase = np.arange(P, dtype=np.float64)[:, None] * np.asarray(freqs, dtype=np.float64)[None, :]
    cos = (np.cos(phase) * att).astype(np.float32)
    sin = (np.sin(phase) * att).astype(np.float32)
    if device is None:
        return cos, sin
    import torch
    return torch.from_numpy(cos).to(device), torch.from_numpy(sin).to(device)


def rotary_tables_from_config(config, positions, *, seq_len=None, layer_type=None,
                              device=None):
    """rotary_tables for a Hugging Face transformers model config: its head
    dim (``head_dim`` or ``hidden_size / num_attention_heads``) times
    ``partial_rotary_factor``, ``rope_theta`` and its scaling
    (``rope_parameters`` in transformers 5, ``rope_scaling`` before),
    ``max_position_embeddings`` for the dynamic and YaRN rules and
    ``original_max_position_embeddings`` (else ``max_position_embeddings``)
    where the rule needs it, as transformers fills them in. Configs with
    per-layer-type parameters (e.g. Gemma 3's ``sliding_attention`` /
    ``full_attention``) need ``layer_type``."""
    where = "rotary_tables_from_config"
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    params = dict(params)
    nested = [key for key, val in params.items() if isinstance(val, dict)]
    if nested:
        if layer_type not in nested:
            raise ValueError(f"{where}: the config has RoPE parameters per layer type "
                             f"({', '.join(nested)}): pass layer_type= one of them")
        params = dict(params[layer_type])
    elif layer_type is not None:
        raise ValueError(f"{where}: layer_type={layer_type!r} given but the config has one "
                         f"set of RoPE parameters")
    base = params.pop("rope_theta", getattr(config, "rope_theta", None))
    if base is None:
        raise ValueError(f"{where}: the config has no rope_theta")
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    partial = params.pop("partial_rotary_factor",
                         getattr(config, "partial_rotary_factor", 1.0)) or 1.0
    R = int(head * partial)
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind in ("dynamic", "yarn"):
        params.setdefault("max_position_embeddings", config.max_position_embeddings)
    if kind in ("yarn", "llama3") and params.get("original_max_position_embeddings") is None:
        params["original_max_position_embeddings"] = (
            getattr(config, "original_max_position_embeddings", None)
            or config.max_position_embeddings)
    return rotary_tables(positions, R, base=base, scaling=params if kind != "default" else None,
                         seq_len=seq_len, device=device)
