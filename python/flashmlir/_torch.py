"""The PyTorch frontend: two custom ops and their autograd/fake registrations.

* ``torch.ops.flashmlir.attention_fwd(q, k, v, causal, scale, window_left,
  window_right, softcap, bshd) -> (o, lse)``
* ``torch.ops.flashmlir.attention_bwd(do, q, k, v, o, lse, causal, scale,
  window_left, window_right, softcap, bshd, deterministic=False) -> (dq, dk, dv)``

``attention_fwd`` also takes ``deterministic=False``: its autograd backward
then runs the bit-reproducible dQ kernels on CUDA (the CPU backward is
deterministic anyway).

q, k, v are logical [B, H, N, D] tensors (a [B, N, H, D] buffer is passed as
its transpose(1, 2) view; ``bshd`` then makes o and the gradients [B, N, H, D]
buffers too, seen through the same transposed view). Any strides whose
innermost one is 1 are used in place; others are copied first (inside the op).
CUDA tensors run on the GPU runtime on ``torch.cuda.current_stream()``; CPU
tensors on the CPU kernels of the compiler library. lse is float32
[B, Hq, Nq] and not differentiable (its gradient is not propagated).
"""

import math
from typing import Optional

import torch
from torch import Tensor

from . import _cpu, _runtime
from ._options import (Options, check_backward_shapes, check_rotary, check_score_mods,
                       check_shapes)

if not hasattr(torch, "library") or not hasattr(torch.library, "custom_op"):
    raise ImportError(f"flashmlir needs torch >= 2.4 (torch.library.custom_op); "
                      f"this is torch {torch.__version__}")

DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


# --- validation ---------------------------------------------------------------


def check_tensors(named, where):
    """All torch tensors of one supported dtype on one CPU or CUDA device."""
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: {name} must be a torch.Tensor like the other inputs, "
                            f"got {type(t).__name__}")
    name0, t0 = named[0]
    if t0.dtype not in DTYPES:
        raise TypeError(f"{where}: unsupported dtype {t0.dtype} for {name0} "
                        f"(expected torch.float32, torch.float16 or torch.bfloat16)")
    for name, t in named[1:]:
        if t.dtype != t0.dtype:
            raise TypeError(f"{where}: {name} has dtype {t.dtype} but {name0} has {t0.dtype}; "
                            f"all inputs must have the same dtype")
    for name, t in named:
        if t.device != t0.device:
            raise ValueError(f"{where}: {name} is on {t.device} but {name0} is on "
                             f"{t0.device}; all inputs must be on the same device")
    if t0.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{where}: unsupported device {t0.device} (FlashMLIR runs on CPU "
                         f"and CUDA tensors)")


def _bhsd(t, bshd):
    return t.transpose(1, 2) if bshd else t


def _alloc(like, shape, bshd, dtype=None):
    """A fresh [B, H, N, D] tensor; with bshd, stored as [B, N, H, D]."""
    B, H, N, D = shape
    dtype = like.dtype if dtype is None else dtype
    if bshd:
        return like.new_empty_strided((B, H, N, D), (N * H * D, D, H * D, 1), dtype=dtype)
    return like.new_empty((B, H, N, D), dtype=dtype)


def _usable(t):
    """t itself when the kernels can read it (innermost stride 1), else a copy."""
    if t.size(-1) <= 1 or t.stride(-1) == 1:
        return t
    return t.contiguous()


def _host(t):
    return _cpu.host_tensor(t.data_ptr(), t.shape, t.stride())


def _dev(t):
    return _runtime.device_tensor(t.data_ptr(), t.shape, t.stride())


def _opts(causal, scale, wl, wr, softcap):
    return Options(bool(causal), float(scale), int(wl), int(wr), float(softcap), "bhsd")


_CAPABILITY = {}  # device index -> (major, minor)
# The current stream's raw handle without building a torch.cuda.Stream (a few
# microseconds per call); torch.cuda.current_stream where torch lacks it.
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)


def on_stream(t, fn):
    """fn(stream) with CUDA tensor t's device current and the raw handle of
    its current stream; the device is switched only when it is not the
    current one (torch.cuda.device costs microseconds a call)."""
    idx = t.device.index
    current = torch.cuda.current_device()
    if idx is None:
        idx = current

    def run():
        return fn(_raw_stream(idx) if _raw_stream is not None
                  else torch.cuda.current_stream(idx).cuda_stream)
    if idx == current:  # the runtime launches in the current CUDA context
        return run()
    with torch.cuda.device(idx):
        return run()


def _cuda_run(kind, q, code, D, Dv, opts, fn, deterministic=False, alibi=False, rotary=False):
    idx = q.device.index
    if idx is None:
        idx = torch.cuda.current_device()
    cc = _CAPABILITY.get(idx)
    if cc is None:
        cc = _CAPABILITY[idx] = tuple(torch.cuda.get_device_capability(idx))
    on_stream(q, lambda stream: _runtime.dispatcher().run(
        kind, code, D, Dv, opts.masked, opts.softcap > 0, cc, lambda h: fn(h, stream),
        deterministic, alibi, rotary))


# --- implementations ------------------------------------------------------------


def _pad8(d):
    """The head dim the GPU kernels take: d rounded up to a multiple of 8."""
    return (d + 7) // 8 * 8


def _padded(t, d):
    """t [B, H, N, *] with its head dim zero-padded to d (t itself when it has
    d already)."""
    return t if t.size(-1) == d else torch.nn.functional.pad(t, (0, d - t.size(-1)))


def _forward_impl(q, k, v, causal, scale, window_left, window_right, softcap, bshd):
    check_tensors([("q", q), ("k", k), ("v", v)], "flashmlir::attention_fwd")
    B, Hq, Hkv, Nq, Nk, D, Dv = check_shapes(q.shape, k.shape, v.shape, "bhsd",
                                             "flashmlir::attention_fwd")
    if q.device.type == "cuda" and (D % 8 or Dv % 8) and B * Hq * Nq and Nk:
        # The GPU kernels take head dims that are multiples of 8: zero-pad
        # (as FlashAttention-2 does; the scale is the true head dim's).
        Dp, Dvp = _pad8(D), _pad8(Dv)
        o, lse = _forward_impl(_padded(q, Dp), _padded(k, Dp), _padded(v, Dvp), causal,
                               scale, window_left, window_right, softcap, False)
        out = _alloc(q, (B, Hq, Nq, Dv), bshd)
        out.copy_(o[..., :Dv])
        return out, lse
    o = _alloc(q, (B, Hq, Nq, Dv), bshd)
    lse = q.new_empty((B, Hq, Nq), dtype=torch.float32)
    if B * Hq * Nq == 0:
        return o, lse
    if Nk == 0:  # every row sees no key: O = 0, lse = -inf
        o.zero_()
        lse.fill_(-math.inf)
        return o, lse
    q, k, v = _usable(q), _usable(k), _usable(v)
    code = DTYPES[q.dtype]
    opts = _opts(causal, scale, window_left, window_right, softcap)
    if q.device.type == "cpu":
        kern = _cpu.kernel_for(opts, code, D, Dv)
        kern._forward_raw(_host(q), _host(k), _host(v), _host(o), _host(lse))
    else:
        p = _runtime.params(code, opts, scale)
        tq, tk, tv, to, tl = _dev(q), _dev(k), _dev(v), _dev(o), _dev(lse)
        _cuda_run("fwd", q, code, D, Dv, opts,
                  lambda h, s: h.forward(p, tq, tk, tv, to, tl, s))
    return o, lse


def _check_backward_args(do, q, k, v, o, lse, where):
    """The backward ops' tensors and shapes; returns (B, Hq, Hkv, Nq, Nk, D, Dv)."""
    check_tensors([("q", q), ("k", k), ("v", v), ("o", o), ("do", do)], where)
    if not isinstance(lse, torch.Tensor) or lse.dtype != torch.float32 or lse.device != q.device:
        raise TypeError(f"{where}: lse must be a float32 tensor on {q.device} (as the forward "
                        f"returns it)")
    dims = check_shapes(q.shape, k.shape, v.shape, "bhsd", where)
    check_backward_shapes(dims, o.shape, lse.shape, do.shape, "bhsd", where)
    return dims


def _backward_impl(do, q, k, v, o, lse, causal, scale, window_left, window_right, softcap,
                   bshd, deterministic=False):
    where = "flashmlir::attention_bwd"
    B, Hq, Hkv, Nq, Nk, D, Dv = _check_backward_args(do, q, k, v, o, lse, where)
    if q.device.type == "cuda" and (D % 8 or Dv % 8) and B * Hq * Nq and Nk:
        # Zero-padded to multiples of 8 as in the forward; the padding
        # columns' gradients are dropped.
        Dp, Dvp = _pad8(D), _pad8(Dv)
        pq, pk, pv = _padded(q, Dp), _padded(k, Dp), _padded(v, Dvp)
        dq, dk, dv = _backward_impl(_padded(do, Dvp), pq, pk, pv, _padded(o, Dvp), lse,
                                    causal, scale, window_left, window_right, softcap,
                                    False, deterministic)
        outs = (_alloc(q, (B, Hq, Nq, D), bshd), _alloc(k, (B, Hkv, Nk, D), bshd),
                _alloc(v, (B, Hkv, Nk, Dv), bshd))
        for out, g, d in zip(outs, (dq, dk, dv), (D, D, Dv)):
            out.copy_(g[..., :d])
        return outs
    dq = _alloc(q, (B, Hq, Nq, D), bshd)
    dk = _alloc(k, (B, Hkv, Nk, D), bshd)
    dv = _alloc(v, (B, Hkv, Nk, Dv), bshd)
    if B * Hq * Nq == 0 or Nk == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    q, k, v, o, do, lse = (_usable(t) for t in (q, k, v, o, do, lse))
    code = DTYPES[q.dtype]
    opts = _opts(causal, scale, window_left, window_right, softcap)
    if q.device.type == "cpu":
        kern = _cpu.kernel_for(opts, code, D, Dv)
        kern._backward_raw(_host(q), _host(k), _host(v), _host(o), _host(do), _host(lse),
                           _host(dq), _host(dk), _host(dv))
    else:
        p = _runtime.params(code, opts, scale)
        ts = [_dev(t) for t in (q, k, v, o, do, lse, dq, dk, dv)]
        _cuda_run("bwd", q, code, D, Dv, opts, lambda h, s: h.backward(p, *ts, s),
                  deterministic)
    return dq, dk, dv


# --- custom ops -------------------------------------------------------------------


@torch.library.custom_op("flashmlir::attention_fwd", mutates_args=())
def attention_fwd(q: Tensor, k: Tensor, v: Tensor, causal: bool, scale: float,
                  window_left: int, window_right: int, softcap: float,
                  bshd: bool, deterministic: bool = False) -> tuple[Tensor, Tensor]:
    return _forward_impl(q, k, v, causal, scale, window_left, window_right, softcap, bshd)


@attention_fwd.register_fake
def _attention_fwd_fake(q, k, v, causal, scale, window_left, window_right, softcap, bshd,
                        deterministic=False):
    B, Hq, Nq, _ = q.shape
    Dv = v.shape[3]
    return (_alloc(q, (B, Hq, Nq, Dv), bshd),
            q.new_empty((B, Hq, Nq), dtype=torch.float32))


@torch.library.custom_op("flashmlir::attention_bwd", mutates_args=())
def attention_bwd(do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor,
                  causal: bool, scale: float, window_left: int, window_right: int,
                  softcap: float, bshd: bool,
                  deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    return _backward_impl(do, q, k, v, o, lse, causal, scale, window_left, window_right,
                          softcap, bshd, deterministic)


@attention_bwd.register_fake
def _attention_bwd_fake(do, q, k, v, o, lse, causal, scale, window_left, window_right,
                        softcap, bshd, deterministic=False):
    return (_alloc(q, tuple(q.shape), bshd), _alloc(k, tuple(k.shape), bshd),
            _alloc(v, tuple(v.shape), bshd))


def _setup_context(ctx, inputs, output):
    q, k, v, causal, scale, window_left, window_right, softcap, bshd = inputs[:9]
    deterministic = inputs[9] if len(inputs) > 9 else False
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse)
    ctx.args = (causal, scale, window_left, window_right, softcap, bshd, deterministic)
    ctx.mark_non_differentiable(lse)


def _backward(ctx, do, dlse):
    q, k, v, o, lse = ctx.saved_tensors
    if do is None:
        do = torch.zeros_like(o)
    dq, dk, dv = torch.ops.flashmlir.attention_bwd(do, q, k, v, o, lse, *ctx.args)
    return dq, dk, dv, None, None, None, None, None, None, None


attention_fwd.register_autograd(_backward, setup_context=_setup_context)


# --- score modifications (ALiBi slopes, attention sinks) ------------------------------
#
# Two more custom ops, so that the plain ones keep their schema:
# * ``flashmlir::attention_fwd_mods(q, k, v, alibi_slopes, sinks, causal, scale,
#   window_left, window_right, softcap, bshd) -> (o, lse)``
# * ``flashmlir::attention_bwd_mods(do, q, k, v, o, lse, alibi_slopes, sinks, ...)
#   -> (dq, dk, dv, dsinks)`` (dsinks float32 [Hq], zeros without sinks)
# alibi_slopes (float32 [Hq] or [B, Hq]) gets no gradient (as in
# FlashAttention-2); sinks (float32 [Hq]) does.

GPU_MODS = ("score_mod / mask_mod run on the CPU kernels so far; the GPU kernels have "
            "attention sinks, ALiBi and RoPE (issue 15). Pass CPU tensors, or leave them "
            "None on CUDA")


def _gpu_unsupported(alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin):
    """The first modification the GPU kernels lack (None: they have them all)."""
    for name, x in (("score_mod", score_mod), ("mask_mod", mask_mod)):
        if x is not None and not (isinstance(x, str) and not x):
            return name
    return None


def _check_gpu_mods(where, alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin):
    name = _gpu_unsupported(alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin)
    if name is not None:
        raise NotImplementedError(f"{where}: {name} on CUDA: {GPU_MODS}")


def _mods_pointers(alibi_slopes, sinks, B, Hq, where):
    per_seq = check_score_mods(
        None if alibi_slopes is None else alibi_slopes.shape,
        alibi_slopes is not None and alibi_slopes.dtype == torch.float32,
        None if sinks is None else sinks.shape, B, Hq, where)
    if sinks is not None and sinks.dtype != torch.float32:
        raise TypeError(f"{where}: sinks must be float32 here, got {sinks.dtype}")
    al = None if alibi_slopes is None else alibi_slopes.contiguous()
    sk = None if sinks is None else sinks.contiguous()
    return al, sk, per_seq


def _gpu_score_mods(sk, dsinks, al, per_seq, Hq, rot=None):
    """The fa_score_mods of a CUDA call: sinks (and d sinks with sinks), ALiBi
    slopes ([B, Hq]: batch stride Hq; [Hq]: 0), rotary tables (_gpu_rotary)."""
    return _runtime.score_mods(
        None if sk is None else sk.data_ptr(),
        None if sk is None or dsinks is None else dsinks.data_ptr(),
        None if al is None else al.data_ptr(), Hq if per_seq else 0, rot)


def _cap_args(captures):
    """(address, size) of the regions' captured tensors, as contiguous float32
    CPU tensors (kept alive by the caller)."""
    caps = [c.detach().to("cpu", torch.float32).contiguous().reshape(-1) for c in captures]
    return caps, [(c.data_ptr(), c.numel()) for c in caps]


def _rotary_args(rotary_cos, rotary_sin, interleaved, D, Nq, Nk, where):
    """(rotary_dim, float32 cos, float32 sin) on the CPU (0, None, None without)."""
    R = check_rotary(None if rotary_cos is None else rotary_cos.shape,
                     None if rotary_sin is None else rotary_sin.shape, interleaved, D, Nq, Nk,
                     where)
    if not R:
        return 0, None, None
    return (R, rotary_cos.detach().to("cpu", torch.float32).contiguous(),
            rotary_sin.detach().to("cpu", torch.float32).contiguous())


def _rot_ptrs(R, rc, rs):
    return None if not R else (rc.data_ptr(), rs.data_ptr(), rc.shape[0])


def _gpu_rotary(q, rotary_cos, rotary_sin, interleaved, D, Nq, Nk, where):
    """(R, fa_score_mods rotary tuple or None, tables kept alive) of a CUDA
    call: the tables as contiguous float32 on q's device."""
    R = check_rotary(None if rotary_cos is None else rotary_cos.shape,
                     None if rotary_sin is None else rotary_sin.shape, interleaved, D, Nq, Nk,
                     where)
    if not R:
        return 0, None, ()
    for name, t in (("rotary_cos", rotary_cos), ("rotary_sin", rotary_sin)):
        if t.device != q.device:
            raise ValueError(f"{where}: {name} is on {t.device} but q is on {q.device}")
    rc = rotary_cos.detach().to(torch.float32).contiguous()
    rs = rotary_sin.detach().to(torch.float32).contiguous()
    return R, (rc.data_ptr(), rs.data_ptr(), rc.shape[0], R, interleaved), (rc, rs)


def _forward_mods_impl(q, k, v, alibi_slopes, sinks, captures, score_mod, mask_mod,
                       rotary_cos, rotary_sin, rotary_interleaved, causal, scale, window_left,
                       window_right, softcap, bshd):
    where = "flashmlir::attention_fwd_mods"
    check_tensors([("q", q), ("k", k), ("v", v)], where)
    B, Hq, Hkv, Nq, Nk, D, Dv = check_shapes(q.shape, k.shape, v.shape, "bhsd", where)
    for name, t in (("alibi_slopes", alibi_slopes), ("sinks", sinks)):
        if t is not None and t.device != q.device:
            raise ValueError(f"{where}: {name} is on {t.device} but q is on {q.device}")
    if q.device.type != "cpu":
        _check_gpu_mods(where, alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin)
    al, sk, per_seq = _mods_pointers(alibi_slopes, sinks, B, Hq, where)
    R, rc, rs = (0, None, None) if q.device.type != "cpu" else _rotary_args(
        rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk, where)
    o = _alloc(q, (B, Hq, Nq, Dv), bshd)
    lse = q.new_empty((B, Hq, Nq), dtype=torch.float32)
    if B * Hq * Nq == 0:
        return o, lse
    if Nk == 0:  # O = 0, lse = -inf (the sink with sinks)
        o.zero_()
        lse.copy_(sk.view(1, Hq, 1).expand(B, Hq, Nq) if sk is not None
                  else torch.full_like(lse, -math.inf))
        return o, lse
    q, k, v = _usable(q), _usable(k), _usable(v)
    opts = _opts(causal, scale, window_left, window_right, softcap)
    if q.device.type != "cpu":  # sinks, ALiBi and RoPE (_check_gpu_mods)
        code = DTYPES[q.dtype]
        p = _runtime.params(code, opts, scale)
        R, rot, keep = _gpu_rotary(q, rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk,
                                   where)
        m = _gpu_score_mods(sk, None, al, per_seq, Hq, rot)
        tq, tk, tv, to, tl = _dev(q), _dev(k), _dev(v), _dev(o), _dev(lse)
        _cuda_run("fwd", q, code, D, Dv, opts,
                  lambda h, st: h.forward_mods(p, m, tq, tk, tv, to, tl, 0, st),
                  alibi=al is not None, rotary=bool(R))
        del keep
        return o, lse
    kern = _cpu.kernel_for(opts, DTYPES[q.dtype], D, Dv, score_mod or None, mask_mod or None,
                           R, rotary_interleaved)
    caps, cap_ptrs = _cap_args(captures)
    mods = _cpu.score_mods(None if al is None else al.data_ptr(), per_seq,
                           None if sk is None else sk.data_ptr(), captures=cap_ptrs,
                           rotary=_rot_ptrs(R, rc, rs))
    kern._forward_mods_raw(_host(q), _host(k), _host(v), _host(o), _host(lse), mods)
    return o, lse


def _backward_mods_impl(do, q, k, v, o, lse, alibi_slopes, sinks, captures, score_mod,
                        mask_mod, rotary_cos, rotary_sin, rotary_interleaved, causal, scale,
                        window_left, window_right, softcap, bshd):
    where = "flashmlir::attention_bwd_mods"
    B, Hq, Hkv, Nq, Nk, D, Dv = _check_backward_args(do, q, k, v, o, lse, where)
    if q.device.type != "cpu":
        _check_gpu_mods(where, alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin)
    al, sk, per_seq = _mods_pointers(alibi_slopes, sinks, B, Hq, where)
    R, rc, rs = (0, None, None) if q.device.type != "cpu" else _rotary_args(
        rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk, where)
    dq = _alloc(q, (B, Hq, Nq, D), bshd)
    dk = _alloc(k, (B, Hkv, Nk, D), bshd)
    dv = _alloc(v, (B, Hkv, Nk, Dv), bshd)
    dsinks = q.new_zeros((Hq,), dtype=torch.float32)
    if B * Hq * Nq == 0 or Nk == 0:  # O = 0: Dr = 0, d sinks = 0
        return dq.zero_(), dk.zero_(), dv.zero_(), dsinks
    q, k, v, o, do, lse = (_usable(t) for t in (q, k, v, o, do, lse))
    opts = _opts(causal, scale, window_left, window_right, softcap)
    if q.device.type != "cpu":  # sinks, ALiBi and RoPE (_check_gpu_mods)
        code = DTYPES[q.dtype]
        p = _runtime.params(code, opts, scale)
        R, rot, keep = _gpu_rotary(q, rotary_cos, rotary_sin, rotary_interleaved, D, Nq, Nk,
                                   where)
        m = _gpu_score_mods(sk, dsinks, al, per_seq, Hq, rot)
        ts = [_dev(t) for t in (q, k, v, o, do, lse, dq, dk, dv)]
        _cuda_run("bwd", q, code, D, Dv, opts, lambda h, st: h.backward_mods(p, m, *ts, st),
                  alibi=al is not None, rotary=bool(R))
        del keep
        return dq, dk, dv, dsinks
    kern = _cpu.kernel_for(opts, DTYPES[q.dtype], D, Dv, score_mod or None, mask_mod or None,
                           R, rotary_interleaved)
    caps, cap_ptrs = _cap_args(captures)
    mods = _cpu.score_mods(None if al is None else al.data_ptr(), per_seq,
                           None if sk is None else sk.data_ptr(),
                           None if sk is None else dsinks.data_ptr(), cap_ptrs,
                           _rot_ptrs(R, rc, rs))
    kern._backward_mods_raw(_host(q), _host(k), _host(v), _host(o), _host(do), _host(lse),
                            _host(dq), _host(dk), _host(dv), mods)
    return dq, dk, dv, dsinks


@torch.library.custom_op("flashmlir::attention_fwd_mods", mutates_args=())
def attention_fwd_mods(q: Tensor, k: Tensor, v: Tensor, alibi_slopes: Optional[Tensor],
                       sinks: Optional[Tensor], captures: list[Tensor], score_mod: str,
                       mask_mod: str, rotary_cos: Optional[Tensor],
                       rotary_sin: Optional[Tensor], rotary_interleaved: bool, causal: bool,
                       scale: float, window_left: int, window_right: int, softcap: float,
                       bshd: bool) -> tuple[Tensor, Tensor]:
    return _forward_mods_impl(q, k, v, alibi_slopes, sinks, captures, score_mod, mask_mod,
                              rotary_cos, rotary_sin, rotary_interleaved, causal, scale,
                              window_left, window_right, softcap, bshd)


@attention_fwd_mods.register_fake
def _attention_fwd_mods_fake(q, k, v, alibi_slopes, sinks, captures, score_mod, mask_mod,
                             rotary_cos, rotary_sin, rotary_interleaved, causal, scale,
                             window_left, window_right, softcap, bshd):
    return _attention_fwd_fake(q, k, v, causal, scale, window_left, window_right, softcap,
                               bshd)


@torch.library.custom_op("flashmlir::attention_bwd_mods", mutates_args=())
def attention_bwd_mods(do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor,
                       alibi_slopes: Optional[Tensor], sinks: Optional[Tensor],
                       captures: list[Tensor], score_mod: str, mask_mod: str,
                       rotary_cos: Optional[Tensor], rotary_sin: Optional[Tensor],
                       rotary_interleaved: bool, causal: bool, scale: float, window_left: int,
                       window_right: int, softcap: float,
                       bshd: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _backward_mods_impl(do, q, k, v, o, lse, alibi_slopes, sinks, captures, score_mod,
                               mask_mod, rotary_cos, rotary_sin, rotary_interleaved, causal,
                               scale, window_left, window_right, softcap, bshd)


@attention_bwd_mods.register_fake
def _attention_bwd_mods_fake(do, q, k, v, o, lse, alibi_slopes, sinks, captures, score_mod,
                             mask_mod, rotary_cos, rotary_sin, rotary_interleaved, causal,
                             scale, window_left, window_right, softcap, bshd):
    return (_alloc(q, tuple(q.shape), bshd), _alloc(k, tuple(k.shape), bshd),
            _alloc(v, tuple(v.shape), bshd),
            q.new_empty((q.shape[1],), dtype=torch.float32))


def _setup_context_mods(ctx, inputs, output):
    q, k, v, alibi_slopes, sinks, captures, score_mod, mask_mod, rc, rs = inputs[:10]
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, alibi_slopes, sinks, rc, rs, *captures)
    ctx.regions = (score_mod, mask_mod)
    ctx.args = tuple(inputs[10:])
    ctx.mark_non_differentiable(lse)


def _backward_mods(ctx, do, dlse):
    q, k, v, o, lse, alibi_slopes, sinks, rc, rs, *captures = ctx.saved_tensors
    if do is None:
        do = torch.zeros_like(o)
    dq, dk, dv, dsinks = torch.ops.flashmlir.attention_bwd_mods(
        do, q, k, v, o, lse, alibi_slopes, sinks, captures, *ctx.regions, rc, rs, *ctx.args)
    # alibi_slopes, the captured tensors and the rotary tables get no
    # gradient.
    return (dq, dk, dv, None, dsinks if sinks is not None else None, [None] * len(captures),
            None, None, None, None, None, None, None, None, None, None, None)


attention_fwd_mods.register_autograd(_backward_mods, setup_context=_setup_context_mods)


def _as_table(t, name, where):
    if t is not None and not isinstance(t, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor, got {type(t).__name__}")
    return t


def _as_sinks(sinks, q, where):
    """sinks as float32 (a differentiable cast: the gradient flows back to the
    caller's dtype), on q's device."""
    if sinks is None:
        return None
    if not isinstance(sinks, torch.Tensor):
        raise TypeError(f"{where}: sinks must be a torch.Tensor, got {type(sinks).__name__}")
    if not sinks.is_floating_point():
        raise TypeError(f"{where}: sinks must be a floating-point tensor, got {sinks.dtype}")
    return sinks.float()


# --- public entry points ----------------------------------------------------------

_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 0)
_function_modes = getattr(torch._C, "_is_torch_function_mode_enabled", lambda: False)
_functorch = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack",
                     lambda: None)


def _direct(tensors):
    """True where calling the forward's implementation directly is the same
    as calling the custom op: plain tensors (no subclass, fake or functorch
    wrapper), none needing a gradient (no autograd node to record), and
    nothing that watches or traces ops (torch.compile, dispatch or function
    modes, vmap/grad transforms). The op's dispatch costs about 50 us of host
    time per call (H100 host profile, 2026-12-07), more than a decode kernel
    takes, so inference calls skip it."""
    grad = torch.is_grad_enabled()
    for t in tensors:
        if type(t) is not torch.Tensor or (grad and t.requires_grad):
            return False
    return not (_compiling() or _dispatch_modes() or _function_modes()
                or _functorch() is not None)


def attention_fwd_call(q, k, v, causal, scale, window_left, window_right, softcap, bshd,
                       deterministic=False):
    """torch.ops.flashmlir.attention_fwd, directly where _direct allows."""
    if _direct((q, k, v)):
        return _forward_impl(q, k, v, causal, scale, window_left, window_right, softcap, bshd)
    return torch.ops.flashmlir.attention_fwd(q, k, v, causal, scale, window_left,
                                             window_right, softcap, bshd, deterministic)


def _traced(score_mod, mask_mod, where):
    """(score_mod text, mask_mod text, captured tensors) of traced functions."""
    if score_mod is None and mask_mod is None:
        return "", "", []
    from . import _regions
    st, mt, caps = _regions.trace_regions(score_mod, mask_mod, where)
    caps = [c if isinstance(c, torch.Tensor) else torch.from_numpy(c) for c in caps]
    return st or "", mt or "", caps


def attention(q, k, v, opts, return_lse, where="attention", alibi_slopes=None, sinks=None,
              score_mod=None, mask_mod=None, rotary_cos=None, rotary_sin=None,
              rotary_interleaved=False):
    check_tensors([("q", q), ("k", k), ("v", v)], where)
    dims = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    scale = opts.resolve_scale(dims[5])
    b = opts.bshd
    if (alibi_slopes is not None or sinks is not None or score_mod is not None
            or mask_mod is not None or rotary_cos is not None or rotary_sin is not None):
        if alibi_slopes is not None and not isinstance(alibi_slopes, torch.Tensor):
            raise TypeError(f"{where}: alibi_slopes must be a torch.Tensor, got "
                            f"{type(alibi_slopes).__name__}")
        sinks = _as_sinks(sinks, q, where)
        check_score_mods(None if alibi_slopes is None else alibi_slopes.shape,
                         alibi_slopes is None or alibi_slopes.dtype == torch.float32,
                         None if sinks is None else sinks.shape, dims[0], dims[1], where)
        if q.device.type != "cpu":
            _check_gpu_mods(where, alibi_slopes, score_mod, mask_mod, rotary_cos, rotary_sin)
        st, mt, caps = _traced(score_mod, mask_mod, where)
        args = (_bhsd(q, b), _bhsd(k, b), _bhsd(v, b), alibi_slopes, sinks, caps, st, mt,
                _as_table(rotary_cos, "rotary_cos", where),
                _as_table(rotary_sin, "rotary_sin", where), bool(rotary_interleaved),
                opts.causal, scale, opts.window_left, opts.window_right, opts.softcap, b)
        # Inference (nothing to differentiate, nothing tracing): the
        # implementation directly, without the op's dispatch (_direct).
        direct = _direct([t for t in (q, k, v, alibi_slopes, sinks, rotary_cos, rotary_sin)
                          if t is not None] + list(caps))
        o, lse = (_forward_mods_impl(*args) if direct
                  else torch.ops.flashmlir.attention_fwd_mods(*args))
        o = _bhsd(o, b)
        return (o, lse) if return_lse else o
    o, lse = attention_fwd_call(
        _bhsd(q, b), _bhsd(k, b), _bhsd(v, b), opts.causal, scale, opts.window_left,
        opts.window_right, opts.softcap, b)
    o = _bhsd(o, b)
    return (o, lse) if return_lse else o


def attention_backward(q, k, v, o, lse, do, opts, where="attention_backward",
                       alibi_slopes=None, sinks=None, score_mod=None, mask_mod=None,
                       rotary_cos=None, rotary_sin=None, rotary_interleaved=False):
    check_tensors([("q", q), ("k", k), ("v", v), ("o", o), ("do", do)], where)
    if not isinstance(lse, torch.Tensor) or lse.dtype != torch.float32:
        raise TypeError(f"{where}: lse must be a float32 torch.Tensor (as the forward "
                        f"returns it), got {getattr(lse, 'dtype', type(lse).__name__)}")
    dims = check_shapes(q.shape, k.shape, v.shape, opts.layout, where)
    check_backward_shapes(dims, o.shape, lse.shape, do.shape, opts.layout, where)
    scale = opts.resolve_scale(dims[5])
    b = opts.bshd
    if (alibi_slopes is not None or sinks is not None or score_mod is not None
            or mask_mod is not None or rotary_cos is not None or rotary_sin is not None):
        sinks = _as_sinks(sinks, q, where)
        st, mt, caps = _traced(score_mod, mask_mod, where)
        dq, dk, dv, dsinks = torch.ops.flashmlir.attention_bwd_mods(
            _bhsd(do, b), _bhsd(q, b), _bhsd(k, b), _bhsd(v, b), _bhsd(o, b), lse,
            alibi_slopes, sinks, caps, st, mt, _as_table(rotary_cos, "rotary_cos", where),
            _as_table(rotary_sin, "rotary_sin", where), bool(rotary_interleaved), opts.causal,
            scale, opts.window_left, opts.window_right, opts.softcap, b)
        grads = (_bhsd(dq, b), _bhsd(dk, b), _bhsd(dv, b))
        return grads if sinks is None else grads + (dsinks,)
    dq, dk, dv = torch.ops.flashmlir.attention_bwd(
        _bhsd(do, b), _bhsd(q, b), _bhsd(k, b), _bhsd(v, b), _bhsd(o, b), lse, opts.causal,
        scale, opts.window_left, opts.window_right, opts.softcap, b)
    return _bhsd(dq, b), _bhsd(dk, b), _bhsd(dv, b)
