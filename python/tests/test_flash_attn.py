"""flashmlir.flash_attn_func / _kvpacked_func / _qkvpacked_func: FlashAttention-2's
signatures and semantics ([B, N, H, D], bottom-right causal, window_size,
softcap, softmax_scale, return_attn_probs with +inf lse on empty rows),
values and gradients against the float64 reference of tests/reference.py, and
the errors for what FlashMLIR does not do. CPU tensors (skipped without torch
or the compiler library); test_cuda.py runs the same functions on the GPU."""

import inspect
import math

import pytest

torch = pytest.importorskip("torch")

import flashmlir  # noqa: E402
from reference import attention_grad_ref, rel_err  # noqa: E402
from torch_common import f64  # noqa: E402

pytestmark = pytest.mark.skipif(not flashmlir.available()["compiler"],
                                reason="libflashmlir_c (runs CPU tensors) not found")

# FlashAttention-2's signatures (flash_attn/flash_attn_interface.py), by name,
# order and default.
FA2_TAIL = [("dropout_p", 0.0), ("softmax_scale", None), ("causal", False),
            ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
            ("deterministic", False), ("return_attn_probs", False)]
FA2_SIGNATURES = {
    "flash_attn_func": ["q", "k", "v"],
    "flash_attn_kvpacked_func": ["q", "kv"],
    "flash_attn_qkvpacked_func": ["qkv"],
}


@pytest.mark.parametrize("fn", sorted(FA2_SIGNATURES))
def test_signature_is_flash_attn_2s(fn):
    params = list(inspect.signature(getattr(flashmlir, fn)).parameters.values())
    assert [p.name for p in params] == FA2_SIGNATURES[fn] + [n for n, _ in FA2_TAIL]
    assert all(p.default is inspect.Parameter.empty for p in params[:len(FA2_SIGNATURES[fn])])
    assert [p.default for p in params[len(FA2_SIGNATURES[fn]):]] == [d for _, d in FA2_TAIL]


def rand(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(dtype).requires_grad_()


def reference(q, k, v, do, causal, window, softcap, scale):
    """float64 (o, lse, dq, dk, dv) in [B, N, H, D] (lse [B, H, N]) with
    FlashAttention-2's conventions: causal's right side is 0, lse +inf on
    rows that see no key."""
    wl, wr = window
    win = None
    if causal:
        win = (wl, 0) if wl >= 0 else None
    elif (wl, wr) != (-1, -1):
        win = (wl, wr)
    t = lambda x: f64(x.transpose(1, 2))  # noqa: E731
    o, lse, dq, dk, dv = attention_grad_ref(t(q), t(k), t(v), t(do), causal=causal,
                                            window=win, softcap=softcap or None, scale=scale)
    lse = lse.copy()
    lse[lse == -math.inf] = math.inf
    b = lambda x: x.transpose(0, 2, 1, 3)  # noqa: E731
    return b(o), lse, b(dq), b(dk), b(dv)


CASES = [
    # name, B, Nq, Nk, Hq, Hkv, D, Dv, kwargs
    ("plain", 2, 17, 17, 2, 2, 16, 16, {}),
    ("gqa-causal-cross", 1, 12, 29, 4, 2, 16, 16, dict(causal=True)),
    ("causal-nq>nk-empty-rows", 1, 20, 9, 2, 1, 16, 16, dict(causal=True)),
    ("window-softcap-scale", 2, 24, 24, 4, 1, 32, 32,
     dict(window_size=(5, 2), softcap=4.0, softmax_scale=0.3)),
    ("causal-window-left", 1, 30, 30, 2, 2, 16, 16, dict(causal=True, window_size=(6, 3))),
    ("dv-differs", 1, 13, 21, 2, 2, 32, 16, dict(causal=True)),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_flash_attn_func_against_reference(case):
    name, B, Nq, Nk, Hq, Hkv, D, Dv, kw = case
    q, k = rand((B, Nq, Hq, D), 1), rand((B, Nk, Hkv, D), 2)
    v, do = rand((B, Nk, Hkv, Dv), 3), rand((B, Nq, Hq, Dv), 4).detach()
    out, lse, probs = flashmlir.flash_attn_func(q, k, v, return_attn_probs=True, **kw)
    assert out.shape == (B, Nq, Hq, Dv) and lse.shape == (B, Hq, Nq) and probs is None
    assert lse.dtype == torch.float32 and out.dtype == q.dtype
    out.backward(do)
    scale = kw.get("softmax_scale") or D ** -0.5
    ref = reference(q, k, v, do, kw.get("causal", False), kw.get("window_size", (-1, -1)),
                    kw.get("softcap", 0.0), scale)
    assert rel_err(f64(out), ref[0]) <= 1e-5
    assert rel_err(f64(lse), ref[1]) <= 1e-5  # +inf rows compared exactly
    for x, r in zip((q, k, v), ref[2:]):
        assert rel_err(f64(x.grad), r) <= 2e-5
    if name.startswith("causal-nq>nk"):
        assert torch.isinf(lse[:, :, :Nq - Nk]).all() and (lse[:, :, :Nq - Nk] > 0).all()
        assert (out[:, :Nq - Nk] == 0).all()


def test_packed_forms_match_flash_attn_func():
    B, N, H, Hkv, D = 2, 19, 4, 2, 16
    qkv = rand((B, N, 3, H, D), 5)
    do = rand((B, N, H, D), 6).detach()
    out = flashmlir.flash_attn_qkvpacked_func(qkv, causal=True, softcap=3.0)
    out.backward(do)
    q, k, v = (qkv.detach()[:, :, i].clone().requires_grad_() for i in range(3))
    ref = flashmlir.flash_attn_func(q, k, v, causal=True, softcap=3.0)
    ref.backward(do)
    assert torch.equal(out, ref)
    assert torch.equal(qkv.grad, torch.stack([q.grad, k.grad, v.grad], dim=2))

    q2, kv = rand((B, N, H, D), 7), rand((B, N + 3, 2, Hkv, D), 8)
    out, lse, _ = flashmlir.flash_attn_kvpacked_func(q2, kv, window_size=(4, 4),
                                                     return_attn_probs=True)
    out.backward(do)
    k2, v2 = (kv.detach()[:, :, i].clone().requires_grad_() for i in range(2))
    q3 = q2.detach().clone().requires_grad_()
    ref, ref_lse, _ = flashmlir.flash_attn_func(q3, k2, v2, window_size=(4, 4),
                                                return_attn_probs=True)
    ref.backward(do)
    assert torch.equal(out, ref) and torch.equal(lse, ref_lse)
    assert torch.equal(kv.grad, torch.stack([k2.grad, v2.grad], dim=2))
    assert torch.equal(q2.grad, q3.grad)


def test_deterministic_backward_is_bit_reproducible_on_cpu():
    q, k, v = rand((1, 40, 4, 16), 9), rand((1, 40, 2, 16), 10), rand((1, 40, 2, 16), 11)
    grads = []
    for _ in range(2):
        for t in (q, k, v):
            t.grad = None
        flashmlir.flash_attn_func(q, k, v, causal=True, deterministic=True).sum().backward()
        grads.append([t.grad.clone() for t in (q, k, v)])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_errors():
    q = torch.randn(1, 8, 2, 16)
    with pytest.raises(ValueError, match="dropout_p must be 0.0: FlashMLIR has no attention "
                                         "dropout"):
        flashmlir.flash_attn_func(q, q, q, dropout_p=0.1)
    with pytest.raises(TypeError, match="alibi_slopes must be float32"):
        flashmlir.flash_attn_func(q, q, q, alibi_slopes=torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"alibi_slopes must have shape \(nheads,\) = \(2,\)"):
        flashmlir.flash_attn_func(q, q, q, alibi_slopes=torch.ones(3))
    with pytest.raises(NotImplementedError, match="alibi_slopes is not supported here .* "
                                                  "issue 15"):
        cu = torch.tensor([0, 8], dtype=torch.int32)
        flashmlir.flash_attn_varlen_func(q[0], q[0], q[0], cu, cu, 8, 8,
                                         alibi_slopes=torch.ones(2))
    with pytest.raises(ValueError, match="window_size must be a pair"):
        flashmlir.flash_attn_func(q, q, q, window_size=3)
    with pytest.raises(ValueError, match="window left = -2 is out of range"):
        flashmlir.flash_attn_func(q, q, q, window_size=(-2, 0))
    with pytest.raises(TypeError, match="q must be a torch.Tensor"):
        flashmlir.flash_attn_func(q.numpy(), q, q)
    with pytest.raises(TypeError, match="causal must be a bool"):
        flashmlir.flash_attn_func(q, q, q, causal="yes")
    with pytest.raises(ValueError, match="multiple of the number of key/value heads"):
        flashmlir.flash_attn_func(torch.randn(1, 8, 3, 16), q, q)
    with pytest.raises(ValueError, match=r"kv must have shape \[batch, seqlen_k, 2"):
        flashmlir.flash_attn_kvpacked_func(q, torch.randn(1, 8, 3, 2, 16))
    with pytest.raises(ValueError, match=r"qkv must have shape \[batch, seqlen, 3"):
        flashmlir.flash_attn_qkvpacked_func(torch.randn(1, 8, 2, 2, 16))
    # softcap <= 0 is off, as in flash_attn.
    a = flashmlir.flash_attn_func(q, q, q, softcap=-1.0)
    b = flashmlir.flash_attn_func(q, q, q)
    assert torch.equal(a, b)


@pytest.mark.parametrize("per_sequence", [False, True])
def test_alibi_cpu(per_sequence):
    """FlashAttention-2's alibi_slopes on CPU tensors: out, lse and gradients
    against the float64 reference (bias -slope |i + Nk - Nq - j|)."""
    B, Nq, Nk, Hq, Hkv, D = 2, 13, 29, 4, 2, 16
    q, k, v = rand((B, Nq, Hq, D), 21), rand((B, Nk, Hkv, D), 22), rand((B, Nk, Hkv, D), 23)
    do = rand((B, Nq, Hq, D), 24).detach()
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    if per_sequence:
        slopes = torch.stack([slopes, 2 * slopes])
    out, lse, _ = flashmlir.flash_attn_func(q, k, v, causal=True, alibi_slopes=slopes,
                                            return_attn_probs=True)
    out.backward(do)
    tr = (lambda x: x.detach().double().numpy().transpose(0, 2, 1, 3))
    o_ref, lse_ref, dq, dk, dv = attention_grad_ref(tr(q), tr(k), tr(v), tr(do), causal=True,
                                                    alibi=slopes.numpy())
    assert rel_err(tr(out), o_ref) < 1e-5
    assert rel_err(lse.numpy(), lse_ref) < 1e-5
    for t, want in zip((q, k, v), (dq, dk, dv)):
        assert rel_err(tr(t.grad), want) < 2e-5

