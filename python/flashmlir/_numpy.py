"""The NumPy frontend (CPU, libflashmlir_c).

Arrays may have any strides; they are passed to the kernels in elements
without a copy, except an array whose innermost stride is not one element
(or that has a negative stride, a stride that is not a multiple of the item
size, or misaligned data), which is first copied into a contiguous array.
"""

import numpy as np

from . import _cpu
from ._options import check_backward_shapes, check_rotary, check_score_mods, check_shapes

_SUPPORTED = "float32, float16 or bfloat16 (ml_dtypes)"


def dtype_code(dt):
    """0/1/2 for float32/float16/bfloat16 (native byte order), else None."""
    dt = np.dtype(dt)
    if dt == np.float32:
        return 0
    if dt == np.float16:
        return 1
    if dt.name == "bfloat16" and dt.itemsize == 2 and dt.isnative:
        return 2
    return None


def _check_arrays(named, where):
    """All arrays are ndarrays of one supported dtype; returns its code."""
    name0, a0 = named[0]
    for name, a in named:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{where}: {name} must be a numpy.ndarray like {name0}, "
                            f"got {type(a).__name__}")
    code = dtype_code(a0.dtype)
    if code is None:
        raise TypeError(f"{where}: unsupported dtype {a0.dtype} for {name0} "
                        f"(expected {_SUPPORTED})")
    for name, a in named[1:]:
        if a.dtype != a0.dtype:
            raise TypeError(f"{where}: {name} has dtype {a.dtype} but {name0} has {a0.dtype}; "
                            f"all inputs must have the same dtype")
    return code


def _bhsd(a, bshd):
    return a.transpose(0, 2, 1, 3) if bshd else a


def _desc(a, output=False):
    """(array kept alive, flashmlir_tensor) for a 3-d or 4-d array, copying
    an input when the kernels cannot read it in place."""
    item = a.itemsize
    ok = a.flags.aligned and all(s >= 0 and s % item == 0 for s in a.strides)
    if ok and a.shape[-1] > 1 and a.strides[-1] != item:
        ok = False
    if not ok:
        if output:  # outputs are allocated here, always in a usable layout
            raise AssertionError("flashmlir: internal error: unusable output layout")
        a = np.ascontiguousarray(a)
    return a, _cpu.host_tensor(a.ctypes.data, a.shape, [s // item for s in a.strides])


def _alloc(shape_bhsd, dtype, bshd, fill=None):
    """(storage in the user's layout, its [B, H, N, D] view)."""
    B, H, N, D = shape_bhsd
    store = np.empty((B, N, H, D) if bshd else (B, H, N, D), dtype=dtype)
    if fill is not None:
        store.fill(fill)
    return store, _bhsd(store, bshd)


def _mod_arrays(alibi_slopes, sinks, B, Hq, where):
    """Contiguous float32 copies of the score modifications (None = off) and
    whether the slopes are per sequence."""
    if alibi_slopes is not None and not isinstance(alibi_slopes, np.ndarray):
        raise TypeError(f"{where}: alibi_slopes must be a numpy.ndarray, got "
                        f"{type(alibi_slopes).__name__}")
    if sinks is not None:
        if not isinstance(sinks, np.ndarray):
            raise TypeError(f"{where}: sinks must be a numpy.ndarray, got "
                            f"{type(sinks).__name__}")
        if sinks.dtype.kind != "f" and sinks.dtype.name != "bfloat16":
            raise TypeError(f"{where}: sinks must be a floating-point array, got {sinks.dtype}")
    per_seq = check_score_mods(
        None if alibi_slopes is None else alibi_slopes.shape,
        alibi_slopes is not None and alibi_slopes.dtype == np.float32,
        None if sinks is None else sinks.shape, B, Hq, where)
    al = None if alibi_slopes is None else np.ascontiguousarray(alibi_slopes)
    sk = None if sinks is None else np.ascontiguousarray(sinks, dtype=np.float32)
    return al, sk, per_seq


def _ptr(a):
    return None if a is None else a.ctypes.data


def _regions(score_mod, mask_mod, where):
    """(score_mod text, mask_mod text, captured float32 arrays) of the traced
    functions (None, None, [] without them)."""
    if score_mod is None and mask_mod is None:
        return None, None, []
    from . import _regions
    st, mt, caps = _regions.trace_regions(score_mod, mask_mod, where)
    caps = [np.ascontiguousarray(c.numpy() if hasattr(c, "numpy") else c, dtype=np.float32)
            for c in caps]
    return st, mt, caps


def _caps(caps):
    return [(c.ctypes.data, c.size) for c in caps]


def _rotary(rotary_cos, rotary_sin, interleaved, D, Nq, Nk, where):
    """(rotary_dim, float32 cos, float32 sin) of FlashAttention-2's tables
    (0, None, None without them)."""
    for name, t in (("rotary_cos", rotary_cos), ("rotary_sin", rotary_sin)):
        if t is not None and not isinstance(t, np.ndarray):
            raise TypeError(f"{where}: {name} must be a numpy.ndarray, got {type(t).__name__}")
    R = check_rotary(None if rotary_cos is None else rotary_cos.shape,
                     None if rotary_sin is None else rotary_sin.shape, interleaved, D, Nq, Nk,
                     where)
    if not R:
        return 0, None, None
    return (R, np.ascontiguousarray(rotary_cos, dtype=np.float32),
            np.ascontiguousarray(rotary_sin, dtype=np.float32))


def _rot_arg(R, rc, rs):
    return None if not R else (rc.ctypes.data, rs.ctypes.data, rc.shape[0])


def forward(q, k, v, opts, kernel=None, where="attention", alibi_slopes=None, sinks=None,
            score_mod=None, mask_mod=None, rotary_cos=None, rotary_sin=None,
            rotary_interleaved=False):
    """(o, lse): o in the layout of the inputs, lse float32 [B, Hq, Nq]. With
    ALiBi slopes ([Hq] or [B, Hq] float32), sinks ([Hq]) and traced
    score_mod / mask_mod functions."""
    code = _check_arrays([("q", q), ("k", k), ("v", v)], where)
    B, Hq, Hkv, Nq, Nk, D, Dv = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    al, sk, per_seq = _mod_arrays(alibi_slopes, sinks, B, Hq, where)
    st, mt, caps = _regions(score_mod, mask_mod, where)
    R, rc, rs = _rotary(rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk, where)
    if (st or mt or R) and kernel is not None:
        raise ValueError(f"{where}: score_mod / mask_mod / rotary need a kernel compiled for "
                         f"them; call flashmlir.attention instead")
    if kernel is not None:
        kernel.check_matches(code, D, Dv, where)
    o, o_view = _alloc((B, Hq, Nq, Dv), q.dtype, opts.bshd)
    lse = np.empty((B, Hq, Nq), dtype=np.float32)
    if B * Hq * Nq == 0:
        return o, lse
    if Nk == 0:  # every row sees no key: O = 0, lse = -inf (the sink with sinks)
        o.fill(0)
        lse[...] = -np.inf if sk is None else sk[None, :, None]
        return o, lse
    if kernel is None:
        kernel = _cpu.kernel_for(opts, code, D, Dv, st, mt, R, rotary_interleaved)
    keep = []
    descs = []
    for i, a in enumerate((_bhsd(q, opts.bshd), _bhsd(k, opts.bshd), _bhsd(v, opts.bshd),
                           o_view, lse)):
        arr, d = _desc(a, output=i >= 3)
        keep.append(arr)
        descs.append(d)
    if al is None and sk is None and not (st or mt or R):
        kernel._forward_raw(*descs)
    else:
        kernel._forward_mods_raw(*descs, _cpu.score_mods(_ptr(al), per_seq, _ptr(sk),
                                                         captures=_caps(caps),
                                                         rotary=_rot_arg(R, rc, rs)))
    return o, lse


def backward(q, k, v, o, lse, do, opts, kernel=None, where="attention_backward",
             alibi_slopes=None, sinks=None, score_mod=None, mask_mod=None, rotary_cos=None,
             rotary_sin=None, rotary_interleaved=False):
    """(dq, dk, dv) in the layout of q, k, v; with sinks (dq, dk, dv, dsinks),
    dsinks float32 [Hq]."""
    code = _check_arrays([("q", q), ("k", k), ("v", v), ("o", o), ("do", do)], where)
    if not isinstance(lse, np.ndarray):
        raise TypeError(f"{where}: lse must be a numpy.ndarray, got {type(lse).__name__}")
    if lse.dtype != np.float32:
        raise TypeError(f"{where}: lse must be float32 (as the forward returns it), "
                        f"got {lse.dtype}")
    dims = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    B, Hq, Hkv, Nq, Nk, D, Dv = dims
    check_backward_shapes(dims, o.shape, lse.shape, do.shape, opts.layout, where)
    al, sk, per_seq = _mod_arrays(alibi_slopes, sinks, B, Hq, where)
    st, mt, caps = _regions(score_mod, mask_mod, where)
    R, rc, rs = _rotary(rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk, where)
    if (st or mt or R) and kernel is not None:
        raise ValueError(f"{where}: score_mod / mask_mod / rotary need a kernel compiled for "
                         f"them; call flashmlir.attention_backward instead")
    if kernel is not None:
        kernel.check_matches(code, D, Dv, where)
    empty = B * Hq * Nq == 0 or Nk == 0
    fill = 0 if empty else None
    dq, dq_view = _alloc((B, Hq, Nq, D), q.dtype, opts.bshd, fill)
    dk, dk_view = _alloc((B, Hkv, Nk, D), q.dtype, opts.bshd, fill)
    dv, dv_view = _alloc((B, Hkv, Nk, Dv), q.dtype, opts.bshd, fill)
    dsinks = None if sk is None else np.zeros(Hq, dtype=np.float32)
    if empty:  # O = 0, so Dr = 0 and d sinks = 0 too
        return (dq, dk, dv) if sk is None else (dq, dk, dv, dsinks)
    if kernel is None:
        kernel = _cpu.kernel_for(opts, code, D, Dv, st, mt, R, rotary_interleaved)
    keep = []
    descs = []
    for i, a in enumerate((_bhsd(q, opts.bshd), _bhsd(k, opts.bshd), _bhsd(v, opts.bshd),
                           _bhsd(o, opts.bshd), _bhsd(do, opts.bshd), lse,
                           dq_view, dk_view, dv_view)):
        arr, d = _desc(a, output=i >= 6)
        keep.append(arr)
        descs.append(d)
    if al is None and sk is None and not (st or mt or R):
        kernel._backward_raw(*descs)
        return dq, dk, dv
    kernel._backward_mods_raw(*descs, _cpu.score_mods(_ptr(al), per_seq, _ptr(sk),
                                                       _ptr(dsinks), _caps(caps),
                                                       _rot_arg(R, rc, rs)))
    return (dq, dk, dv) if sk is None else (dq, dk, dv, dsinks)
