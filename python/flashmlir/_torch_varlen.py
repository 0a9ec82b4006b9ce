"""The PyTorch custom ops of the variable-length form (see _varlen.py)."""

import math
import os

import torch
from torch import Tensor

from . import _cpu, _torch, _varlen
from ._torch import DTYPES, _opts, _usable

_OP_FWD = "flashmlir::varlen_fwd"
_OP_BWD = "flashmlir::varlen_bwd"


def check_offsets_tensor(cu, name, device, where):
    if not isinstance(cu, torch.Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor (int32, [batch + 1]), got "
                        f"{type(cu).__name__}")
    if cu.dtype != torch.int32:
        raise TypeError(f"{where}: {name} must have dtype torch.int32 (as flash_attn requires), "
                        f"got {cu.dtype}")
    if cu.dim() != 1:
        raise ValueError(f"{where}: {name} must be 1-d [batch + 1], got shape "
                         f"{tuple(cu.shape)}")
    if cu.device != device:
        raise ValueError(f"{where}: {name} is on {cu.device} but q is on {device}")


def _host_offsets(cu_q, cu_k):
    """Contiguous int32 CPU copies (the tensors themselves on the CPU)."""
    return cu_q.detach().cpu().contiguous(), cu_k.detach().cpu().contiguous()


def _validate(q, k, v, cu_q, cu_k, max_q, max_k, where):
    _torch.check_tensors([("q", q), ("k", k), ("v", v)], where)
    dims = _varlen.check_packed_shapes(tuple(q.shape), tuple(k.shape), tuple(v.shape), where)
    for name, cu in (("cu_seqlens_q", cu_q), ("cu_seqlens_k", cu_k)):
        check_offsets_tensor(cu, name, q.device, where)
    hq, hk = _host_offsets(cu_q, cu_k)
    batch = _varlen.check_offsets(hq.tolist(), hk.tolist(), max_q, max_k, dims[0], dims[1],
                                  where)
    return dims, hq, hk, batch


def _forward_impl(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, wl, wr, softcap):
    where = _OP_FWD
    (Tq, Tk, Hq, Hkv, D, Dv), hq, hk, batch = _validate(q, k, v, cu_q, cu_k, max_q, max_k,
                                                        where)
    o = q.new_zeros((Tq, Hq, Dv))
    lse = q.new_full((Hq, Tq), -math.inf, dtype=torch.float32)
    if Tq == 0 or Tk == 0 or batch == 0:
        return o, lse
    if q.device.type == "cpu":
        q, k, v = _usable(q), _usable(k), _usable(v)
        kern = _cpu.kernel_for(_opts(causal, scale, wl, wr, softcap), DTYPES[q.dtype], D, Dv)
        h = _torch._host
        _varlen.cpu_forward_raw(kern, h(q), h(k), h(v), h(o), h(lse), hq.data_ptr(),
                                hk.data_ptr(), batch, int(max_q), int(max_k))
        return o, lse
    # CUDA: the varlen kernels of the bundle where it has them; otherwise
    # each sequence through the dense kernels ([1, H, n, D] views).
    if _cuda_varlen_forward(q, k, v, o, lse, cu_q, cu_k, batch, max_q, max_k, causal, scale,
                            wl, wr, softcap):
        return o, lse
    cq, ck = hq.tolist(), hk.tolist()
    for b in range(batch):
        q0, q1, k0, k1 = cq[b], cq[b + 1], ck[b], ck[b + 1]
        if q1 == q0:
            continue
        view = lambda t, a, z: t[a:z].unsqueeze(0).transpose(1, 2)  # noqa: E731
        ob, lb = _torch._forward_impl(view(q, q0, q1), view(k, k0, k1), view(v, k0, k1),
                                      causal, scale, wl, wr, softcap, True)
        o[q0:q1] = ob.transpose(1, 2)[0]
        lse[:, q0:q1] = lb[0]
    return o, lse


def _run_varlen_kernels(entry, method, ins, outs, cu_q, cu_k, batch, max_q, max_k, causal,
                        scale, wl, wr, softcap):
    """One varlen C entry point (`entry`, called as RuntimeHandle.`method`)
    on the inputs `ins` (q, k, v first; made usable) and outputs `outs`,
    through each bundle with varlen kernels in turn; False (nothing written)
    where none serves the call (then the caller runs each sequence on the
    dense kernels)."""
    from . import _native, _runtime
    # The default since tools/gpu/check_varlen.py passed on the H100
    # (2026-12-06 forward, 2026-12-07 backward; poisoned outputs);
    # FLASHMLIR_VARLEN_KERNELS=0 keeps the per-sequence dense path.
    if os.environ.get("FLASHMLIR_VARLEN_KERNELS") == "0":
        return False
    q, v = ins[0], ins[2]
    if q.shape[2] % 8 or v.shape[2] % 8 or not hasattr(_native.runtime(), entry):
        return False
    ins = [_usable(t) for t in ins]
    cu_q, cu_k = cu_q.contiguous(), cu_k.contiguous()
    p = _runtime.params(DTYPES[q.dtype], _opts(causal, scale, wl, wr, softcap), scale)
    ts = [_torch._dev(t) for t in (*ins, *outs)]

    def run(stream):
        for h in _runtime.dispatcher().varlen_handles():
            st = getattr(h, method)(p, *ts, cu_q.data_ptr(), cu_k.data_ptr(), batch, max_q,
                                    max_k, stream)
            if st == 0:
                return True
            if st != _native.FA_ERR_NO_KERNEL:
                raise h.error(st)
        return False
    return _torch.on_stream(ins[0], run)


def _cuda_varlen_forward(q, k, v, o, lse, cu_q, cu_k, batch, max_q, max_k, causal, scale, wl,
                         wr, softcap):
    """fa_forward_varlen through the bundles' varlen kernels (o, lse)."""
    return _run_varlen_kernels("fa_forward_varlen", "forward_varlen", (q, k, v), (o, lse),
                               cu_q, cu_k, batch, max_q, max_k, causal, scale, wl, wr,
                               softcap)


def _cuda_varlen_backward(do, q, k, v, o, lse, dq, dk, dv, cu_q, cu_k, batch, max_q, max_k,
                          causal, scale, wl, wr, softcap):
    """fa_backward_varlen through the bundles' varlen backward kernels (dq,
    dk, dv)."""
    return _run_varlen_kernels("fa_backward_varlen", "backward_varlen",
                               (q, k, v, o, do, lse), (dq, dk, dv), cu_q, cu_k, batch, max_q,
                               max_k, causal, scale, wl, wr, softcap)


def _backward_impl(do, q, k, v, o, lse, cu_q, cu_k, max_q, max_k, causal, scale, wl, wr,
                   softcap, deterministic):
    where = _OP_BWD
    (Tq, Tk, Hq, Hkv, D, Dv), hq, hk, batch = _validate(q, k, v, cu_q, cu_k, max_q, max_k,
                                                        where)
    _torch.check_tensors([("q", q), ("o", o), ("do", do)], where)
    for name, t in (("o", o), ("do", do)):
        if tuple(t.shape) != (Tq, Hq, Dv):
            raise ValueError(f"{where}: {name} must have shape {(Tq, Hq, Dv)}, got "
                             f"{tuple(t.shape)}")
    if (not isinstance(lse, torch.Tensor) or lse.dtype != torch.float32
            or tuple(lse.shape) != (Hq, Tq) or lse.device != q.device):
        raise TypeError(f"{where}: lse must be a float32 tensor [Hq, total_q] = {(Hq, Tq)} on "
                        f"{q.device} (as the forward returns it)")
    dq = q.new_zeros((Tq, Hq, D))
    dk = k.new_zeros((Tk, Hkv, D))
    dv = v.new_zeros((Tk, Hkv, Dv))
    if Tq == 0 or Tk == 0 or batch == 0:
        return dq, dk, dv
    if q.device.type == "cpu":
        q, k, v, o, do, lse = (_usable(t) for t in (q, k, v, o, do, lse))
        kern = _cpu.kernel_for(_opts(causal, scale, wl, wr, softcap), DTYPES[q.dtype], D, Dv)
        h = _torch._host
        _varlen.cpu_backward_raw(kern, h(q), h(k), h(v), h(o), h(do), h(lse), h(dq), h(dk),
                                 h(dv), hq.data_ptr(), hk.data_ptr(), batch, int(max_q),
                                 int(max_k))
        return dq, dk, dv
    if not deterministic and _cuda_varlen_backward(
            do, q, k, v, o, lse, dq, dk, dv, cu_q, cu_k, batch, int(max_q), int(max_k), causal,
            scale, wl, wr, softcap):
        return dq, dk, dv
    cq, ck = hq.tolist(), hk.tolist()
    view = lambda t, a, z: t[a:z].unsqueeze(0).transpose(1, 2)  # noqa: E731
    for b in range(batch):
        q0, q1, k0, k1 = cq[b], cq[b + 1], ck[b], ck[b + 1]
        if q1 == q0 or k1 == k0:
            continue
        g = _torch._backward_impl(view(do, q0, q1), view(q, q0, q1), view(k, k0, k1),
                                  view(v, k0, k1), view(o, q0, q1),
                                  lse[:, q0:q1].unsqueeze(0).contiguous(), causal, scale, wl,
                                  wr, softcap, True, deterministic)
        dq[q0:q1] = g[0].transpose(1, 2)[0]
        dk[k0:k1] = g[1].transpose(1, 2)[0]
        dv[k0:k1] = g[2].transpose(1, 2)[0]
    return dq, dk, dv


@torch.library.custom_op(_OP_FWD, mutates_args=())
def varlen_fwd(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor,
               max_seqlen_q: int, max_seqlen_k: int, causal: bool, scale: float,
               window_left: int, window_right: int, softcap: float,
               deterministic: bool = False) -> tuple[Tensor, Tensor]:
    return _forward_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                         causal, scale, window_left, window_right, softcap)


@varlen_fwd.register_fake
def _varlen_fwd_fake(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal,
                     scale, window_left, window_right, softcap, deterministic=False):
    Tq, Hq, _ = q.shape
    return (q.new_empty((Tq, Hq, v.shape[2])),
            q.new_empty((Hq, Tq), dtype=torch.float32))


@torch.library.custom_op(_OP_BWD, mutates_args=())
def varlen_bwd(do: Tensor, q: Tensor, k: Tensor, v: Tensor, o: Tensor, lse: Tensor,
               cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, max_seqlen_q: int,
               max_seqlen_k: int, causal: bool, scale: float, window_left: int,
               window_right: int, softcap: float,
               deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    return _backward_impl(do, q, k, v, o, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                          max_seqlen_k, causal, scale, window_left, window_right, softcap,
                          deterministic)


@varlen_bwd.register_fake
def _varlen_bwd_fake(do, q, k, v, o, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                     max_seqlen_k, causal, scale, window_left, window_right, softcap,
                     deterministic=False):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, cu_q, cu_k = inputs[:5]
    ctx.save_for_backward(q, k, v, output[0], output[1], cu_q, cu_k)
    ctx.args = tuple(inputs[5:12]) + (inputs[12] if len(inputs) > 12 else False,)
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, do, dlse):
    q, k, v, o, lse, cu_q, cu_k = ctx.saved_tensors
    if do is None:
        do = torch.zeros_like(o)
    max_q, max_k = ctx.args[:2]
    dq, dk, dv = torch.ops.flashmlir.varlen_bwd(do, q, k, v, o, lse, cu_q, cu_k, max_q, max_k,
                                               *ctx.args[2:])
    return (dq, dk, dv) + (None,) * 10


varlen_fwd.register_autograd(_backward, setup_context=_setup_context)
