"""Validation and normalization shared by every frontend (no numpy, no torch)."""

import math
import numbers

LAYOUTS = ("bhsd", "bshd")


class Options:
    """Validated attention options. ``window`` is (left, right), -1 = unbounded;
    ``softcap`` 0.0 = off; ``scale`` is None until :meth:`resolve_scale`."""

    __slots__ = ("causal", "scale", "window_left", "window_right", "softcap", "layout")

    def __init__(self, causal, scale, window_left, window_right, softcap, layout):
        self.causal = causal
        self.scale = scale
        self.window_left = window_left
        self.window_right = window_right
        self.softcap = softcap
        self.layout = layout

    @property
    def bshd(self):
        return self.layout == "bshd"

    @property
    def masked(self):
        return self.causal or self.window_left >= 0 or self.window_right >= 0

    def resolve_scale(self, head_dim):
        return self.scale if self.scale is not None else 1.0 / math.sqrt(head_dim)


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_options(causal=False, scale=None, window=None, softcap=None, layout="bhsd",
                  where="attention"):
    """Validates the keyword options of attention(); returns an Options."""
    if not (isinstance(causal, bool) or type(causal).__name__ == "bool_"
            or (_is_int(causal) and causal in (0, 1))):
        raise TypeError(f"{where}: causal must be a bool, got {causal!r}")
    causal = bool(causal)

    if not isinstance(layout, str):
        raise TypeError(f"{where}: layout must be a string, 'bhsd' or 'bshd', got {layout!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"{where}: layout must be 'bhsd' ([batch, heads, seq, dim]) or "
                         f"'bshd' ([batch, seq, heads, dim]), got {layout!r}")

    if window is None:
        wl, wr = -1, -1
    else:
        if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 2:
            raise ValueError(f"{where}: window must be a pair (left, right) of ints >= -1 "
                             f"(-1 = unbounded), got {window!r}")
        wl, wr = window
        if not (_is_int(wl) and _is_int(wr)):
            raise TypeError(f"{where}: window must be a pair (left, right) of ints >= -1, "
                            f"got {window!r}")
        wl, wr = int(wl), int(wr)
        if wl < -1 or wr < -1:
            raise ValueError(f"{where}: window values must be >= -1 (-1 = unbounded), "
                             f"got {window!r}")

    if softcap is None:
        cap = 0.0
    else:
        if not _is_real(softcap):
            raise TypeError(f"{where}: softcap must be a positive number or None, got {softcap!r}")
        cap = float(softcap)
        if not (math.isfinite(cap) and cap > 0):
            raise ValueError(f"{where}: softcap must be finite and > 0 (None = off), "
                             f"got {softcap!r}")

    if scale is not None:
        if not _is_real(scale):
            raise TypeError(f"{where}: scale must be a positive number or None, got {scale!r}")
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{where}: scale must be finite and > 0 (None = 1/sqrt(head_dim)), "
                             f"got {scale!r}")

    # Canonical masks: causal already bounds the right side at the diagonal.
    if causal:
        wr = -1
    return Options(causal, scale, wl, wr, cap, layout)


def to_bhsd(shape, layout):
    """A 4-d shape in the given layout as (B, H, N, D)."""
    if layout == "bshd":
        return (shape[0], shape[2], shape[1], shape[3])
    return tuple(shape)


def check_shapes(qs, ks, vs, layout, where="attention"):
    """Shape checks on q, k, v (shapes in `layout`). Returns
    (B, Hq, Hkv, Nq, Nk, D, Dv)."""
    names = "[batch, heads, seq, dim]" if layout == "bhsd" else "[batch, seq, heads, dim]"
    for name, s in (("q", qs), ("k", ks), ("v", vs)):
        if len(s) != 4:
            raise ValueError(f"{where}: {name} must have rank 4 ({names}, layout "
                             f"{layout!r}), got shape {tuple(s)} of rank {len(s)}")
    B, Hq, Nq, D = to_bhsd(qs, layout)
    Bk, Hkv, Nk, Dk = to_bhsd(ks, layout)
    Bv, Hv, Nv, Dv = to_bhsd(vs, layout)
    if Bk != B or Bv != B:
        raise ValueError(f"{where}: q, k and v must have the same batch size, got "
                         f"{B}, {Bk}, {Bv} (shapes {tuple(qs)}, {tuple(ks)}, {tuple(vs)})")
    if Hv != Hkv or Nv != Nk:
        raise ValueError(f"{where}: k and v must have the same number of heads and sequence "
                         f"length, got shapes {tuple(ks)} and {tuple(vs)} (layout {layout!r})")
    if Dk != D:
        raise ValueError(f"{where}: q and k must have the same head dim, got {D} and {Dk} "
                         f"(shapes {tuple(qs)}, {tuple(ks)})")
    if D < 1 or Dv < 1:
        raise ValueError(f"{where}: head dims must be >= 1, got D = {D}, Dv = {Dv}")
    if Hq < 1 or Hkv < 1:
        raise ValueError(f"{where}: head counts must be >= 1, got {Hq} query heads and "
                         f"{Hkv} key/value heads")
    if Hq % Hkv != 0:
        raise ValueError(f"{where}: the number of query heads ({Hq}) must be a multiple of "
                         f"the number of key/value heads ({Hkv}) (GQA/MQA)")
    return B, Hq, Hkv, Nq, Nk, D, Dv


def check_backward_shapes(dims, os_, lses, dos, layout, where="attention_backward"):
    """o, lse and do shapes for the backward (o/do in `layout`, lse [B, Hq, Nq])."""
    B, Hq, Hkv, Nq, Nk, D, Dv = dims
    expect_o = (B, Hq, Nq, Dv) if layout == "bhsd" else (B, Nq, Hq, Dv)
    for name, s in (("o", os_), ("do", dos)):
        if tuple(s) != expect_o:
            raise ValueError(f"{where}: {name} must have shape {expect_o} (layout {layout!r}), "
                             f"got {tuple(s)}")
    if tuple(lses) != (B, Hq, Nq):
        raise ValueError(f"{where}: lse must have shape {(B, Hq, Nq)} ([batch, heads, seq], "
                         f"any layout), got {tuple(lses)}")


def dtype_name(code):
    return {0: "f32", 1: "f16", 2: "bf16"}[code]


def parse_dtype(dtype, where="compile"):
    """'f32'/'float32'/np.float32/torch.float32/... -> dtype code 0/1/2."""
    s = str(getattr(dtype, "__name__", dtype)).lower()
    for prefix in ("torch.", "numpy.", "np.", "<class '"):
        s = s.replace(prefix, "")
    s = s.strip("'>")
    table = {"f32": 0, "float32": 0, "float": 0, "fp32": 0,
             "f16": 1, "float16": 1, "half": 1, "fp16": 1,
             "bf16": 2, "bfloat16": 2}
    if s not in table:
        raise ValueError(f"{where}: unsupported dtype {dtype!r} (expected f32, f16 or bf16)")
    return table[s]
