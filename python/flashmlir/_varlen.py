"""Variable-length (packed) batches: FlashAttention-2's ``flash_attn_varlen_func``
layout. q ``[total_q, Hq, D]``, k ``[total_k, Hkv, D]``, v ``[total_k, Hkv, Dv]``;
sequence ``b`` owns query rows ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` and key rows
``cu_seqlens_k[b]:cu_seqlens_k[b+1]`` (int32 offsets, ``[batch + 1]``); masks are
aligned to each sequence's bottom-right corner. lse is float32 ``[Hq, total_q]``.

* CPU (NumPy arrays and torch tensors): the attn dialect's variable-length form
  (``attn.attention ... varlen(...)``) compiled for the host: one kernel for the
  whole batch.
* CUDA (torch tensors): the forward runs the bundle's varlen kernels
  (``fa_forward_varlen``: tensor-core kernels that take each sequence's rows
  from the offsets; the default bundle has f16 / bf16, head dims 64 and 128,
  masked or not; checked on the H100 by tools/gpu/check_varlen.py); other
  configurations, and ``FLASHMLIR_VARLEN_KERNELS=0``, run each sequence
  through the dense GPU kernels in turn. The backward runs sequence by
  sequence on the dense kernels where no varlen backward kernel serves. The
  offsets are read on the host for validation.

Torch custom ops (differentiable with respect to q, k, v):

* ``torch.ops.flashmlir.varlen_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k,
  max_seqlen_q, max_seqlen_k, causal, scale, window_left, window_right,
  softcap) -> (o, lse)``
* ``torch.ops.flashmlir.varlen_bwd(do, q, k, v, o, lse, cu_seqlens_q,
  cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, scale, window_left,
  window_right, softcap, deterministic) -> (dq, dk, dv)``

Rows past ``cu_seqlens_q[batch]`` (``cu_seqlens_k[batch]``) belong to no
sequence: their outputs are 0 (lse -inf).
"""

import ctypes
import math
import numbers

from . import _cpu, _native
from ._errors import FlashMLIRError


# --- validation (host values) ---------------------------------------------------


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_packed_shapes(qs, ks, vs, where):
    """(Tq, Tk, Hq, Hkv, D, Dv) of packed q [Tq,Hq,D], k [Tk,Hkv,D], v [Tk,Hkv,Dv]."""
    for name, s in (("q", qs), ("k", ks), ("v", vs)):
        if len(s) != 3:
            raise ValueError(f"{where}: {name} must be packed [total_tokens, heads, head_dim] "
                             f"(rank 3), got shape {tuple(s)}")
    Tq, Hq, D = qs
    Tk, Hkv, Dk = ks
    if Dk != D:
        raise ValueError(f"{where}: q and k head dims differ: {D} vs {Dk}")
    if vs[0] != Tk or vs[1] != Hkv:
        raise ValueError(f"{where}: v {tuple(vs)} must have k's total tokens and heads "
                         f"({Tk}, {Hkv})")
    if Hkv < 1 or Hq % Hkv:
        raise ValueError(f"{where}: query heads ({Hq}) must be a multiple of key/value heads "
                         f"({Hkv})")
    if D < 1 or vs[2] < 1:
        raise ValueError(f"{where}: head dims must be >= 1, got {D} and {vs[2]}")
    return Tq, Tk, Hq, Hkv, D, vs[2]


def check_offsets(cu_q, cu_k, max_q, max_k, total_q, total_k, where):
    """Validates host copies (lists of ints) of the offsets and the max
    lengths; returns the batch size."""
    for name, m in (("max_seqlen_q", max_q), ("max_seqlen_k", max_k)):
        if not _is_int(m) or m < 0:
            raise TypeError(f"{where}: {name} must be an int >= 0, got {m!r}")
    if len(cu_q) != len(cu_k):
        raise ValueError(f"{where}: cu_seqlens_q has {len(cu_q)} entries but cu_seqlens_k "
                         f"{len(cu_k)}; both are [batch + 1]")
    if len(cu_q) < 1:
        raise ValueError(f"{where}: cu_seqlens_q must have batch + 1 >= 1 entries")
    for name, cu, total, mx, mname in (("cu_seqlens_q", cu_q, total_q, max_q, "max_seqlen_q"),
                                       ("cu_seqlens_k", cu_k, total_k, max_k, "max_seqlen_k")):
        if cu[0] != 0:
            raise ValueError(f"{where}: {name} must start at 0, got {cu[0]}")
        for b in range(len(cu) - 1):
            n = cu[b + 1] - cu[b]
            if n < 0:
                raise ValueError(f"{where}: {name} must be non-decreasing, but {name}[{b + 1}] "
                                 f"= {cu[b + 1]} < {name}[{b}] = {cu[b]}")
            if n > mx:
                raise ValueError(f"{where}: {mname} = {mx} is smaller than sequence {b}'s "
                                 f"length {n}")
        if cu[-1] > total:
            raise ValueError(f"{where}: {name}[-1] = {cu[-1]} is past the {total} packed rows")
    return len(cu_q) - 1


# --- CPU kernels (compiler library) ----------------------------------------------


def _i32p(ptr):
    return ctypes.c_void_p(ptr)


def cpu_forward_raw(kern, q, k, v, o, lse, cu_q_ptr, cu_k_ptr, batch, max_q, max_k):
    err = _native.error_buffer()
    with kern._call() as h:  # refused after close(); close() waits for it
        rc = kern._lib.flashmlir_cpu_forward_varlen(
            h, ctypes.byref(q), ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
            ctypes.byref(lse), _i32p(cu_q_ptr), _i32p(cu_k_ptr), batch, max_q, max_k, err,
            len(err))
    if rc != 0:
        raise FlashMLIRError(_native.decode(err))


def cpu_backward_raw(kern, q, k, v, o, do, lse, dq, dk, dv, cu_q_ptr, cu_k_ptr, batch,
                     max_q, max_k):
    err = _native.error_buffer()
    with kern._call() as h:
        rc = kern._lib.flashmlir_cpu_backward_varlen(
            h, ctypes.byref(q), ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
            ctypes.byref(do), ctypes.byref(lse), ctypes.byref(dq), ctypes.byref(dk),
            ctypes.byref(dv), _i32p(cu_q_ptr), _i32p(cu_k_ptr), batch, max_q, max_k, err,
            len(err))
    if rc != 0:
        raise FlashMLIRError(_native.decode(err))


# --- NumPy -------------------------------------------------------------------------


def numpy_forward(q, k, v, cu_q, cu_k, max_q, max_k, opts, where):
    """(o [Tq, Hq, Dv], lse float32 [Hq, Tq]) for NumPy arrays on the CPU."""
    import numpy as np

    from ._numpy import _check_arrays, _desc
    code = _check_arrays([("q", q), ("k", k), ("v", v)], where)
    Tq, Tk, Hq, Hkv, D, Dv = check_packed_shapes(q.shape, k.shape, v.shape, where)
    cq, ck = _numpy_offsets(cu_q, cu_k, where)
    batch = check_offsets(cq.tolist(), ck.tolist(), max_q, max_k, Tq, Tk, where)
    o = np.zeros((Tq, Hq, Dv), dtype=q.dtype)
    lse = np.full((Hq, Tq), -np.inf, dtype=np.float32)
    if Tq == 0 or Tk == 0 or batch == 0:
        return o, lse
    kern = _cpu.kernel_for(opts, code, D, Dv)
    keep, descs = [], []
    for i, a in enumerate((q, k, v, o, lse)):
        arr, d = _desc(a, output=i >= 3)
        keep.append(arr)
        descs.append(d)
    cpu_forward_raw(kern, *descs, cq.ctypes.data, ck.ctypes.data, batch, int(max_q), int(max_k))
    return o, lse


def numpy_backward(q, k, v, o, lse, do, cu_q, cu_k, max_q, max_k, opts, where):
    """(dq, dk, dv) for NumPy arrays on the CPU."""
    import numpy as np

    from ._numpy import _check_arrays, _desc
    code = _check_arrays([("q", q), ("k", k), ("v", v), ("o", o), ("do", do)], where)
    Tq, Tk, Hq, Hkv, D, Dv = check_packed_shapes(q.shape, k.shape, v.shape, where)
    if not (isinstance(lse, np.ndarray) and lse.dtype == np.float32 and lse.shape == (Hq, Tq)):
        raise TypeError(f"{where}: lse must be a float32 array [Hq, total_q] = {(Hq, Tq)} (as "
                        f"the forward returns it)")
    for name, a in (("o", o), ("do", do)):
        if a.shape != (Tq, Hq, Dv):
            raise ValueError(f"{where}: {name} must have shape {(Tq, Hq, Dv)}, got {a.shape}")
    cq, ck = _numpy_offsets(cu_q, cu_k, where)
    batch = check_offsets(cq.tolist(), ck.tolist(), max_q, max_k, Tq, Tk, where)
    dq = np.zeros((Tq, Hq, D), dtype=q.dtype)
    dk = np.zeros((Tk, Hkv, D), dtype=q.dtype)
    dv = np.zeros((Tk, Hkv, Dv), dtype=q.dtype)
    if Tq == 0 or Tk == 0 or batch == 0:
        return dq, dk, dv
    kern = _cpu.kernel_for(opts, code, D, Dv)
    keep, descs = [], []
    for i, a in enumerate((q, k, v, o, do, lse, dq, dk, dv)):
        arr, d = _desc(a, output=i >= 6)
        keep.append(arr)
        descs.append(d)
    cpu_backward_raw(kern, *descs, cq.ctypes.data, ck.ctypes.data, batch, int(max_q),
                     int(max_k))
    return dq, dk, dv


def _numpy_offsets(cu_q, cu_k, where):
    import numpy as np
    out = []
    for name, cu in (("cu_seqlens_q", cu_q), ("cu_seqlens_k", cu_k)):
        if not isinstance(cu, np.ndarray) or cu.dtype != np.int32 or cu.ndim != 1:
            raise TypeError(f"{where}: {name} must be a 1-d int32 numpy array [batch + 1], got "
                            f"{getattr(cu, 'dtype', type(cu).__name__)} "
                            f"{getattr(cu, 'shape', '')}")
        out.append(np.ascontiguousarray(cu))
    return out
