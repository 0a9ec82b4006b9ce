"""The NumPy frontend (CPU, libflashmlir_c).

Arrays may have any strides; they are passed to the kernels in elements
without a copy, except an array whose innermost stride is not one element
(or that has a negative stride, a stride that is not a multiple of the item
size, or misaligned data), which is first copied into a contiguous array.
"""

import numpy as np

from . import _cpu
from ._options import check_backward_shapes, check_shapes

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


def forward(q, k, v, opts, kernel=None, where="attention"):
    """(o, lse): o in the layout of the inputs, lse float32 [B, Hq, Nq]."""
    code = _check_arrays([("q", q), ("k", k), ("v", v)], where)
    B, Hq, Hkv, Nq, Nk, D, Dv = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    if kernel is not None:
        kernel.check_matches(code, D, Dv, where)
    o, o_view = _alloc((B, Hq, Nq, Dv), q.dtype, opts.bshd)
    lse = np.empty((B, Hq, Nq), dtype=np.float32)
    if B * Hq * Nq == 0:
        return o, lse
    if Nk == 0:  # every row sees no key: O = 0, lse = -inf
        o.fill(0)
        lse.fill(-np.inf)
        return o, lse
    if kernel is None:
        kernel = _cpu.kernel_for(opts, code, D, Dv)
    keep = []
    descs = []
    for i, a in enumerate((_bhsd(q, opts.bshd), _bhsd(k, opts.bshd), _bhsd(v, opts.bshd),
                           o_view, lse)):
        arr, d = _desc(a, output=i >= 3)
        keep.append(arr)
        descs.append(d)
    kernel._forward_raw(*descs)
    return o, lse


def backward(q, k, v, o, lse, do, opts, kernel=None, where="attention_backward"):
    """(dq, dk, dv) in the layout of q, k, v."""
    code = _check_arrays([("q", q), ("k", k), ("v", v), ("o", o), ("do", do)], where)
    if not isinstance(lse, np.ndarray):
        raise TypeError(f"{where}: lse must be a numpy.ndarray, got {type(lse).__name__}")
    if lse.dtype != np.float32:
        raise TypeError(f"{where}: lse must be float32 (as the forward returns it), "
                        f"got {lse.dtype}")
    dims = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    B, Hq, Hkv, Nq, Nk, D, Dv = dims
    check_backward_shapes(dims, o.shape, lse.shape, do.shape, opts.layout, where)
    if kernel is not None:
        kernel.check_matches(code, D, Dv, where)
    empty = B * Hq * Nq == 0 or Nk == 0
    fill = 0 if empty else None
    dq, dq_view = _alloc((B, Hq, Nq, D), q.dtype, opts.bshd, fill)
    dk, dk_view = _alloc((B, Hkv, Nk, D), q.dtype, opts.bshd, fill)
    dv, dv_view = _alloc((B, Hkv, Nk, Dv), q.dtype, opts.bshd, fill)
    if empty:
        return dq, dk, dv
    if kernel is None:
        kernel = _cpu.kernel_for(opts, code, D, Dv)
    keep = []
    descs = []
    for i, a in enumerate((_bhsd(q, opts.bshd), _bhsd(k, opts.bshd), _bhsd(v, opts.bshd),
                           _bhsd(o, opts.bshd), _bhsd(do, opts.bshd), lse,
                           dq_view, dk_view, dv_view)):
        arr, d = _desc(a, output=i >= 6)
        keep.append(arr)
        descs.append(d)
    kernel._backward_raw(*descs)
    return dq, dk, dv
