"""Validation and normalization shared by every frontend (no numpy, no torch)."""

import math
import numbers

LAYOUTS = ("bhsd", "bshd")

# The ranges every number is checked against: the same values as the C++
# side's one place, runtime/include/flashmlir/runtime/Limits.h
# (python/tests/test_limits.py keeps them equal).
MAX_HEAD_DIM = 256          # kMaxHeadDim: head dims D, Dv in [1, 256]
MAX_SEQ_LEN = 2 ** 30       # kMaxSeqLen: sequence lengths in [0, 2^30]
MAX_WINDOW = MAX_SEQ_LEN    # kMaxWindow: window sides -1 or [0, 2^30]
MAX_BLOCK = 1024            # kMaxBlock: CPU tile sizes block_m, block_n
MAX_VECTOR_WIDTH = 64       # kMaxVectorWidth
MAX_THREADS = 4096          # kMaxThreads
MAX_SCALE = 1e18            # kMaxScale: |scale| <= 1e18
MIN_SOFTCAP = 1e-18         # kMinSoftcap
MAX_SOFTCAP = 1e18          # kMaxSoftcap
# gpuTargets(): the targets the GPU pipeline emits, with their dynamic shared
# memory per block (bytes).
GPU_TARGETS = {"sm_75": 65536, "sm_80": 166912, "sm_86": 101376, "sm_87": 166912,
               "sm_89": 101376, "sm_90": 232448, "sm_90a": 232448}


def check_int_range(value, lo, hi, what, where):
    """An int in [lo, hi] (bools are not ints here); returns int(value)."""
    if not _is_int(value):
        raise TypeError(f"{where}: {what} must be an int in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {what} = {value} is out of range: it must be in "
                         f"[{lo}, {hi}]")
    return int(value)


def check_head_dim(value, what, where):
    return check_int_range(value, 1, MAX_HEAD_DIM, what, where)


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
        for side, w in (("left", wl), ("right", wr)):
            if not -1 <= w <= MAX_WINDOW:
                raise ValueError(f"{where}: window {side} = {w} is out of range: it must be "
                                 f"-1 (unbounded) or in [0, {MAX_WINDOW}] (got window "
                                 f"{window!r})")

    if softcap is None:
        cap = 0.0
    else:
        if not _is_real(softcap):
            raise TypeError(f"{where}: softcap must be a positive number or None, got {softcap!r}")
        try:
            cap = float(softcap)
        except OverflowError:
            cap = math.inf
        if not (math.isfinite(cap) and MIN_SOFTCAP <= cap <= MAX_SOFTCAP):
            raise ValueError(f"{where}: softcap = {softcap!r} is out of range: it must be in "
                             f"[{MIN_SOFTCAP:g}, {MAX_SOFTCAP:g}] (None = off)")

    if scale is not None:
        if not _is_real(scale):
            raise TypeError(f"{where}: scale must be a positive number or None, got {scale!r}")
        try:
            scale_f = float(scale)
        except OverflowError:
            scale_f = math.inf
        if not (math.isfinite(scale_f) and 0 < scale_f <= MAX_SCALE):
            raise ValueError(f"{where}: scale = {scale!r} is out of range: it must be finite, "
                             f"> 0 and <= {MAX_SCALE:g} (None = 1/sqrt(head_dim))")
        scale = scale_f

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
    for what, d in (("head dim D", D), ("head dim Dv", Dv)):
        if d > MAX_HEAD_DIM:
            raise ValueError(f"{where}: {what} = {d} is out of range: it must be in "
                             f"[1, {MAX_HEAD_DIM}] (shapes {tuple(qs)}, {tuple(vs)})")
    for what, n in (("query sequence length", Nq), ("key sequence length", Nk)):
        if n > MAX_SEQ_LEN:
            raise ValueError(f"{where}: {what} = {n} is out of range: it must be in "
                             f"[0, {MAX_SEQ_LEN}]")
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


def check_score_mods(alibi_shape, alibi_dtype_ok, sinks_shape, B, Hq, where,
                     batch_name="batch"):
    """Shape checks of the score modifications (None = not given): alibi_slopes
    [Hq] or [B, Hq] (float32, as FlashAttention-2 requires), sinks [Hq].
    Returns whether the slopes are per sequence ([B, Hq])."""
    per_sequence = False
    if alibi_shape is not None:
        if not alibi_dtype_ok:
            raise TypeError(f"{where}: alibi_slopes must be float32 (as in "
                            f"FlashAttention-2)")
        shape = tuple(alibi_shape)
        if shape == (Hq,):
            per_sequence = False
        elif shape == (B, Hq):
            per_sequence = True
        else:
            raise ValueError(f"{where}: alibi_slopes must have shape (nheads,) = ({Hq},) or "
                             f"({batch_name}, nheads) = ({B}, {Hq}), got {shape}")
    if sinks_shape is not None and tuple(sinks_shape) != (Hq,):
        raise ValueError(f"{where}: sinks must have shape (nheads,) = ({Hq},), got "
                         f"{tuple(sinks_shape)}")
    return per_sequence


def check_rotary(cos_shape, sin_shape, interleaved, D, Nq, Nk, where):
    """FlashAttention-2's rotary_cos / rotary_sin: both or none, one shape
    [P, rotary_dim / 2] with rotary_dim <= D; queries sit at positions
    i + Nk - Nq and keys at j, so Nq <= Nk <= P. Returns rotary_dim (0: off)."""
    if not isinstance(interleaved, bool):
        raise TypeError(f"{where}: rotary_interleaved must be a bool, got {interleaved!r}")
    if cos_shape is None and sin_shape is None:
        return 0
    if cos_shape is None or sin_shape is None:
        raise ValueError(f"{where}: rotary_cos and rotary_sin must be given together")
    cos_shape, sin_shape = tuple(cos_shape), tuple(sin_shape)
    if len(cos_shape) != 2 or cos_shape != sin_shape:
        raise ValueError(f"{where}: rotary_cos and rotary_sin must both have shape "
                         f"(seqlen_ro, rotary_dim / 2), got {cos_shape} and {sin_shape}")
    P, half = cos_shape
    if half < 1 or 2 * half > D:
        raise ValueError(f"{where}: rotary_dim = 2 * {half} must be in [2, head dim {D}]")
    if Nq > Nk:
        raise ValueError(f"{where}: rotary needs seqlen_q <= seqlen_k (queries sit at "
                         f"positions i + seqlen_k - seqlen_q), got {Nq} > {Nk}")
    if Nk > P:
        raise ValueError(f"{where}: the rotary tables cover {P} positions but the keys need "
                         f"{Nk}")
    return 2 * half

