"""Helpers shared by test_torch.py (CPU tensors) and test_cuda.py."""

import zlib

import torch

import flashmlir
from reference import attention_grad_ref, rel_err, rope_reference, rope_tables

TOL = {torch.float32: (1e-5, 2e-5), torch.float16: (2e-3, 4e-3),
       torch.bfloat16: (1.6e-2, 3.2e-2)}


def f64(t):
    return t.detach().to("cpu", torch.float64).numpy()


def rand(shape, dtype, device, seed, bshd=False):
    g = torch.Generator().manual_seed(seed)
    B, H, N, D = shape
    x = torch.randn((B, N, H, D) if bshd else shape, generator=g, dtype=torch.float32)
    return x.to(device=device, dtype=dtype)


def bhsd(t, bshd):
    return t.transpose(1, 2) if bshd else t


def check_case(device, dtype, case):
    name, B, Hq, Hkv, Nq, Nk, D, Dv, opts = case
    seed = zlib.crc32(f"{name}-{dtype}".encode())
    bshd = opts.get("layout") == "bshd"
    q = rand((B, Hq, Nq, D), dtype, device, seed, bshd).requires_grad_()
    k = rand((B, Hkv, Nk, D), dtype, device, seed + 1, bshd).requires_grad_()
    v = rand((B, Hkv, Nk, Dv), dtype, device, seed + 2, bshd).requires_grad_()
    do = rand((B, Hq, Nq, Dv), dtype, device, seed + 3, bshd)
    opts = dict(opts)
    sk = None
    if opts.pop("sinks", False):  # attention sinks: float32 [Hq] logits
        g = torch.Generator().manual_seed(seed + 4)
        sk = (torch.rand(Hq, generator=g, dtype=torch.float64) * 4 - 1).float()
        sk = sk.to(device).requires_grad_()
        opts["sinks"] = sk
    al = opts.pop("alibi", None)  # ALiBi: float32 slopes [Hq] ("head") or [B, Hq]
    if al is not None:
        g = torch.Generator().manual_seed(seed + 5)
        al = torch.rand(*((Hq,) if al == "head" else (B, Hq)), generator=g) * 0.3
        opts["alibi_slopes"] = al.to(device)
    rope = opts.pop("rotary", None)  # fused RoPE: (rotary dim, interleaved)
    if rope is not None:
        cos, sin = rope_tables(Nk + 3, rope[0])
        opts.update(rotary_cos=torch.from_numpy(cos).to(device),
                    rotary_sin=torch.from_numpy(sin).to(device), rotary_interleaved=rope[1])
    o, lse = flashmlir.attention(q, k, v, return_lse=True, **opts)
    assert o.dtype == dtype and o.device == q.device and lse.dtype == torch.float32
    assert o.shape == ((B, Nq, Hq, Dv) if bshd else (B, Hq, Nq, Dv))
    assert o.is_contiguous()  # in its own layout
    assert not lse.requires_grad
    o.backward(do)
    ref_opts = {key: opts[key] for key in ("causal", "window", "softcap", "scale") if key in opts}
    if sk is not None:
        ref_opts["sinks"] = f64(sk)
    if al is not None:
        ref_opts["alibi"] = f64(al)
    args = [f64(bhsd(t, bshd)) for t in (q, k, v, do)]
    ref = (rope_reference(*args, cos, sin, rope[1], **ref_opts) if rope is not None
           else attention_grad_ref(*args, **ref_opts))
    tol, gtol = TOL[dtype]
    assert rel_err(f64(bhsd(o, bshd)), ref[0]) <= tol
    assert rel_err(f64(lse), ref[1]) <= tol
    for x, r in zip((q, k, v), ref[2:5]):
        assert x.grad.shape == x.shape
        assert rel_err(f64(bhsd(x.grad, bshd)), r) <= gtol
    if sk is not None:
        assert rel_err(f64(sk.grad), ref[5]) <= gtol


def _op_args(device, dtype, bshd=False, requires_grad=True):
    # head dim 64: the default GPU bundle has softcap kernels for it
    q = rand((1, 4, 10, 64), dtype, device, 1, bshd)
    k = rand((1, 2, 13, 64), dtype, device, 2, bshd)
    v = rand((1, 2, 13, 64), dtype, device, 3, bshd)
    q, k, v = (bhsd(t, bshd).requires_grad_(requires_grad) for t in (q, k, v))
    return q, k, v


def run_opcheck(device, dtype):
    for bshd in (False, True):
        for causal, window, softcap in ((True, -1, 0.0), (False, 3, 4.0)):
            q, k, v = _op_args(device, dtype, bshd)
            args = (q, k, v, causal, 0.25, window, -1 if causal else 2, softcap, bshd)
            torch.library.opcheck(torch.ops.flashmlir.attention_fwd.default, args)
            o, lse = torch.ops.flashmlir.attention_fwd(*args)
            do = torch.randn_like(o)
            bargs = (do, q.detach(), k.detach(), v.detach(), o.detach(), lse) + args[3:]
            torch.library.opcheck(torch.ops.flashmlir.attention_bwd.default, bargs)


def run_compiled(device, dtype, tol):
    """torch.compile(fullgraph=True) of a small block with FlashMLIR attention,
    forward and backward, against eager."""
    torch.manual_seed(0)
    proj = torch.nn.Linear(32, 3 * 32).to(device=device, dtype=dtype)

    def block(x):
        B, N, _ = x.shape
        q, k, v = proj(x).view(B, N, 3, 2, 16).unbind(2)
        o = flashmlir.attention(q, k, v, causal=True, layout="bshd")
        return o.reshape(B, N, 32).square().mean()

    x = torch.randn(2, 24, 32, device=device, dtype=dtype)
    eager_loss = block(x)
    eager_grads = torch.autograd.grad(eager_loss, list(proj.parameters()))
    compiled = torch.compile(block, fullgraph=True)
    loss = compiled(x)
    grads = torch.autograd.grad(loss, list(proj.parameters()))
    assert abs(loss.item() - eager_loss.item()) <= tol * abs(eager_loss.item())
    for g, e in zip(grads, eager_grads):
        assert rel_err(f64(g), f64(e)) <= tol
    # and a second shape (recompilation, dynamic shapes)
    x2 = torch.randn(1, 40, 32, device=device, dtype=dtype)
    assert abs(compiled(x2).item() - block(x2).item()) <= tol * abs(block(x2).item())




def run_direct_path(device, dtype):
    """Inference calls skip the custom op's dispatch (flashmlir._torch._direct):
    same values as the op, and the op is still what autograd, dispatch modes
    and fake tensors see."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from flashmlir import _torch as ft

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(3)
    q, k, v = (torch.randn(1, 2, 19, 16, device=device, dtype=dtype) for _ in range(3))
    assert ft._direct((q, k, v))
    with torch.no_grad():
        qg = q.clone().requires_grad_()
        assert ft._direct((qg, k, v))  # no graph is recorded under no_grad
    assert not ft._direct((q.clone().requires_grad_(), k, v))
    direct = flashmlir.attention(q, k, v, causal=True)
    op, _ = torch.ops.flashmlir.attention_fwd(q, k, v, True, 0.25, -1, 0, 0.0, False)
    assert torch.equal(direct, op)
    with Ops() as mode:
        assert not ft._direct((q, k, v))
        seen = flashmlir.attention(q, k, v, causal=True)
    assert any("flashmlir.attention_fwd" in s for s in mode.seen), mode.seen
    assert torch.equal(seen, direct)
    qg = q.clone().requires_grad_()
    out = flashmlir.flash_attn_func(qg.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                    causal=True)
    assert out.grad_fn is not None
    out.sum().backward()
    assert qg.grad is not None and torch.isfinite(qg.grad).all()
