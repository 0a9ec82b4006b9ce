"""ALiBi slopes and attention sinks (flashmlir.attention / attention_backward's
``alibi_slopes`` and ``sinks``) on the CPU kernels, against the float64
reference: forward, lse, dq/dk/dv and d sinks; NumPy arrays (no torch
needed) and CPU torch tensors through autograd; argument errors."""


import numpy as np
import pytest

import flashmlir
from reference import attention_grad_ref, attention_ref, rel_err, rope_reference, rope_tables, rotate  # noqa: F401
from np_common import BF16, HAVE_COMPILER, NP_DTYPE, TOL, needs_compiler, rng_for  # noqa: F401

pytestmark = needs_compiler


def alibi_slopes(Hq, B=None):
    """The ALiBi paper's geometric slopes 2^(-8 h / Hq), per head (or per
    sequence and head, scaled per sequence so that the rows differ)."""
    s = 2.0 ** (-8.0 * np.arange(1, Hq + 1) / Hq)
    if B is not None:
        s = s[None, :] * np.linspace(1.0, 2.0, B)[:, None]
    return s.astype(np.float32)


CASES = [
    # name, dtype, B, Hq, Hkv, Nq, Nk, D, options, alibi ("head"/"batch"/None), sinks
    ("alibi", "f32", 2, 4, 4, 33, 33, 16, {}, "head", False),
    ("alibi-gqa-causal-cross", "f32", 2, 4, 2, 17, 50, 16, dict(causal=True), "batch", False),
    ("alibi-window-softcap", "f32", 1, 2, 2, 40, 40, 32, dict(window=(8, 4), softcap=5.0),
     "head", False),
    ("sinks", "f32", 2, 4, 2, 30, 45, 16, {}, None, True),
    ("sinks-causal-empty-rows", "f32", 1, 4, 1, 40, 20, 16, dict(causal=True), None, True),
    ("sinks-window", "f32", 1, 2, 2, 50, 50, 16, dict(window=(6, 0)), None, True),
    ("alibi-sinks-causal-bshd", "f32", 2, 4, 2, 21, 37, 16,
     dict(causal=True, layout="bshd"), "batch", True),
    ("alibi-sinks-f16", "f16", 1, 4, 2, 64, 64, 64, dict(causal=True), "head", True),
    ("alibi-sinks-bf16", "bf16", 1, 4, 4, 48, 80, 32, dict(window=(20, -1)), "head", True),
]


def _inputs(name, dtype, B, Hq, Hkv, Nq, Nk, D, opts, alibi, sinks):
    if NP_DTYPE[dtype] is None:
        pytest.skip("ml_dtypes is not installed")
    rng = rng_for(name)
    bshd = opts.get("layout") == "bshd"

    def make(H, N):
        shape = (B, N, H, D) if bshd else (B, H, N, D)
        return rng.standard_normal(shape).astype(NP_DTYPE[dtype])
    q, k, v, do = make(Hq, Nq), make(Hkv, Nk), make(Hkv, Nk), make(Hq, Nq)
    al = None if alibi is None else alibi_slopes(Hq, B if alibi == "batch" else None)
    sk = rng.uniform(-1.0, 3.0, Hq).astype(np.float32) if sinks else None
    return q, k, v, do, al, sk, bshd


def _bhsd(x, bshd):
    return x.transpose(0, 2, 1, 3) if bshd else x


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_numpy_forward_backward(case):
    name, dtype = case[0], case[1]
    opts = case[8]
    q, k, v, do, al, sk, bshd = _inputs(*case)
    kw = {x: opts[x] for x in ("causal", "window", "softcap") if x in opts}
    o, lse = flashmlir.attention(q, k, v, **kw, layout=opts.get("layout", "bhsd"),
                                 return_lse=True, alibi_slopes=al, sinks=sk)
    ref = attention_grad_ref(_bhsd(q, bshd), _bhsd(k, bshd), _bhsd(v, bshd),
                             _bhsd(do, bshd), **kw, alibi=al, sinks=sk)
    o_ref, lse_ref = ref[0], ref[1]
    ftol, gtol = TOL[dtype]
    assert rel_err(_bhsd(o, bshd), o_ref) < ftol
    assert rel_err(lse, lse_ref) < 1e-5
    if sk is not None:  # rows that see no key: lse is the sink, not -inf
        assert np.isfinite(lse).all()
    grads = flashmlir.attention_backward(q, k, v, o, lse, do, **kw,
                                         layout=opts.get("layout", "bhsd"),
                                         alibi_slopes=al, sinks=sk)
    assert len(grads) == (4 if sk is not None else 3)
    for got, want in zip(grads[:3], ref[2:5]):
        assert rel_err(_bhsd(got, bshd), want) < gtol
    if sk is not None:
        assert grads[3].dtype == np.float32 and grads[3].shape == (q.shape[2 if bshd else 1],)
        assert rel_err(grads[3], ref[5]) < gtol


def test_alibi_changes_the_result():
    """The slopes are used: a zero slope gives plain attention, a large one
    attends to the diagonal key only."""
    rng = rng_for("alibi-effect")
    q, k, v = (rng.standard_normal((1, 2, 16, 16)).astype(np.float32) for _ in range(3))
    plain = flashmlir.attention(q, k, v)
    zero = flashmlir.attention(q, k, v, alibi_slopes=np.zeros(2, np.float32))
    np.testing.assert_allclose(zero, plain, rtol=1e-6, atol=1e-6)
    sharp = flashmlir.attention(q, k, v, alibi_slopes=np.full(2, 80.0, np.float32))
    np.testing.assert_allclose(sharp, np.repeat(v, 1, axis=1), atol=1e-5)


def test_sinks_take_mass():
    """A very negative sink changes nothing; a very large one takes all the
    mass (o -> 0, lse -> sink)."""
    rng = rng_for("sinks-effect")
    q, k, v = (rng.standard_normal((1, 2, 8, 16)).astype(np.float32) for _ in range(3))
    plain, plse = flashmlir.attention(q, k, v, return_lse=True)
    o, lse = flashmlir.attention(q, k, v, sinks=np.full(2, -100.0, np.float32),
                                 return_lse=True)
    np.testing.assert_allclose(o, plain, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lse, plse, rtol=1e-6)
    o, lse = flashmlir.attention(q, k, v, sinks=np.full(2, 60.0, np.float32), return_lse=True)
    assert np.abs(o).max() < 1e-12
    np.testing.assert_allclose(lse, 60.0, rtol=1e-6)


def test_no_keys_with_sinks():
    """Nk = 0: o = 0 and lse = the sink (FlashAttention's -inf without one)."""
    q = np.ones((1, 3, 4, 8), np.float32)
    kv = np.ones((1, 3, 0, 8), np.float32)
    sk = np.array([0.5, -1.0, 2.0], np.float32)
    o, lse = flashmlir.attention(q, kv, kv, sinks=sk, return_lse=True)
    assert (o == 0).all()
    np.testing.assert_array_equal(lse, np.broadcast_to(sk[None, :, None], (1, 3, 4)))


@pytest.mark.parametrize("bad, match", [
    (dict(alibi_slopes=np.ones(3, np.float32)), r"alibi_slopes must have shape \(nheads,\)"),
    (dict(alibi_slopes=np.ones((3, 4), np.float32)), r"alibi_slopes must have shape"),
    (dict(alibi_slopes=np.ones(4, np.float16)), "alibi_slopes must be float32"),
    (dict(alibi_slopes=[0.1] * 4), "alibi_slopes must be a numpy.ndarray"),
    (dict(sinks=np.ones((1, 4), np.float32)), r"sinks must have shape \(nheads,\) = \(4,\)"),
    (dict(sinks=np.ones(4, np.int32)), "sinks must be a floating-point array"),
])
def test_bad_arguments(bad, match):
    q = np.ones((2, 4, 8, 16), np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        flashmlir.attention(q, q, q, **bad)


# --- torch (CPU tensors, autograd) -------------------------------------------------


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("sinks_dtype", ["float32", "bfloat16"])
def test_torch_autograd(sinks_dtype):
    torch = _torch()
    rng = rng_for("torch-mods-" + sinks_dtype)
    B, Hq, Hkv, Nq, Nk, D = 2, 4, 2, 19, 33, 16
    q, k, v, do = (torch.from_numpy(rng.standard_normal(s).astype(np.float32))
                   for s in ((B, Nq, Hq, D), (B, Nk, Hkv, D), (B, Nk, Hkv, D), (B, Nq, Hq, D)))
    al = torch.from_numpy(alibi_slopes(Hq, B))
    sk = torch.from_numpy(rng.uniform(-1, 2, Hq).astype(np.float32)).to(
        getattr(torch, sinks_dtype))
    for t in (q, k, v, sk):
        t.requires_grad_(True)
    o = flashmlir.attention(q, k, v, causal=True, layout="bshd", alibi_slopes=al, sinks=sk)
    o.backward(do)
    tr = (lambda x: x.detach().numpy().transpose(0, 2, 1, 3))
    ref = attention_grad_ref(tr(q), tr(k), tr(v), tr(do), causal=True, alibi=al.numpy(),
                             sinks=sk.detach().float().numpy())
    assert rel_err(tr(o), ref[0]) < 1e-5
    for t, want in zip((q, k, v), ref[2:5]):
        assert rel_err(tr(t.grad), want) < 2e-5
    assert sk.grad is not None and sk.grad.dtype == sk.dtype
    assert rel_err(sk.grad.float().numpy(), ref[5]) < (2e-5 if sinks_dtype == "float32"
                                                      else 1e-2)
    assert al.grad is None


def test_torch_compile_fullgraph():
    torch = _torch()
    rng = rng_for("torch-mods-compile")
    q, k, v = (torch.from_numpy(rng.standard_normal((1, 2, 16, 16)).astype(np.float32))
               for _ in range(3))
    sk = torch.tensor([0.3, -0.2])

    def f(q, k, v, sk):
        return flashmlir.attention(q, k, v, causal=True, sinks=sk)
    want = f(q, k, v, sk)
    try:
        got = torch.compile(f, fullgraph=True)(q, k, v, sk)
    except Exception as e:  # no C++ compiler for inductor here, etc.
        pytest.skip(f"torch.compile unavailable: {type(e).__name__}")
    torch.testing.assert_close(got, want)


def test_torch_errors():
    torch = _torch()
    q = torch.ones(1, 4, 8, 16)
    with pytest.raises(TypeError, match="alibi_slopes must be float32"):
        flashmlir.attention(q, q, q, alibi_slopes=torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"sinks must have shape \(nheads,\) = \(4,\)"):
        flashmlir.attention(q, q, q, sinks=torch.ones(2))
    with pytest.raises(TypeError, match="sinks must be a torch.Tensor"):
        flashmlir.attention(q, q, q, sinks=[1.0] * 4)


# --- score_mod / mask_mod traced from Python ----------------------------------------


def _flex_reference(q, k, v, do, score_mod=None, mask_mod=None, dmod=None, causal=False):
    """float64 attention with FlexAttention's score_mod / mask_mod applied
    element by element (dmod: d score_mod / d score), and its gradients."""
    q, k, v, do = (np.asarray(x, np.float64) for x in (q, k, v, do))
    B, Hq, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    kk, vv = np.repeat(k, Hq // Hkv, 1), np.repeat(v, Hq // Hkv, 1)
    s = (q @ kk.swapaxes(-1, -2)) / np.sqrt(D)
    b, h, i, j = np.meshgrid(np.arange(B), np.arange(Hq), np.arange(Nq), np.arange(Nk),
                             indexing="ij")
    t = np.ones_like(s)
    if score_mod is not None:
        s, t = score_mod(s, b, h, i, j), dmod(s, b, h, i, j)
    vis = np.ones_like(s, dtype=bool)
    if mask_mod is not None:
        vis &= mask_mod(b, h, i, j)
    if causal:
        vis &= j <= i + (Nk - Nq)
    s = np.where(vis, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isinf(m), 0, m)
    p = np.exp(s - m)
    l = p.sum(-1, keepdims=True)
    P = p / np.where(l == 0, 1, l)
    o = P @ vv
    with np.errstate(divide="ignore"):
        lse = (m + np.log(l))[..., 0]
    dP = do @ vv.swapaxes(-1, -2)
    dS = P * (dP - (do * o).sum(-1, keepdims=True)) * t / np.sqrt(D)
    g = Hq // Hkv
    dq = dS @ kk
    dk = (dS.swapaxes(-1, -2) @ q).reshape(B, Hkv, g, Nk, D).sum(2)
    dv = (P.swapaxes(-1, -2) @ do).reshape(B, Hkv, g, Nk, D).sum(2)
    return o, lse, dq, dk, dv


def _data(name, B=2, Hq=4, Hkv=2, Nq=24, Nk=24, D=16):
    rng = rng_for(name)
    return (rng.standard_normal((B, Hq, Nq, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Nk, D)).astype(np.float32),
            rng.standard_normal((B, Hkv, Nk, D)).astype(np.float32),
            rng.standard_normal((B, Hq, Nq, D)).astype(np.float32))


def _check(got, ref, tol=2e-5):
    for g, r in zip(got, ref):
        assert rel_err(g, r) < tol


def test_numpy_score_mod_softcap_and_bias():
    """tanh softcap plus a relative position bias, traced from NumPy ufuncs;
    the backward differentiates the traced region (no user derivative)."""
    q, k, v, do = _data("flex-softcap")

    def score_mod(s, b, h, qi, kj):
        return 20.0 * np.tanh(s / 20.0) + 0.05 * (kj - qi)
    o, lse = flashmlir.attention(q, k, v, causal=True, score_mod=score_mod, return_lse=True)
    grads = flashmlir.attention_backward(q, k, v, o, lse, do, causal=True, score_mod=score_mod)
    ref = _flex_reference(q, k, v, do, score_mod,
                          dmod=lambda s, b, h, i, j: 1 - np.tanh(s / 20.0) ** 2, causal=True)
    _check((o, lse) + tuple(grads), ref)


def test_numpy_document_mask_captured():
    """Document masking with captured document ids (flashmlir.capture), and
    prefix-LM, as mask_mods."""
    q, k, v, do = _data("flex-docs", B=1, Nq=20, Nk=20)
    docs = np.repeat(np.arange(4), 5)
    ids = flashmlir.capture(docs)

    def mask_mod(b, h, qi, kj):
        return (ids[qi] == ids[kj]) & (kj <= qi)
    o, lse = flashmlir.attention(q, k, v, mask_mod=mask_mod, return_lse=True)
    grads = flashmlir.attention_backward(q, k, v, o, lse, do, mask_mod=mask_mod)
    ref = _flex_reference(q, k, v, do, mask_mod=lambda b, h, i, j: (docs[i] == docs[j]) & (j <= i))
    _check((o, lse) + tuple(grads), ref)

    def prefix_lm(b, h, qi, kj):
        return (kj < 6) | (kj <= qi)
    o = flashmlir.attention(q, k, v, mask_mod=prefix_lm)
    ref = _flex_reference(q, k, v, do, mask_mod=lambda b, h, i, j: (j < 6) | (j <= i))
    assert rel_err(o, ref[0]) < 2e-5


def test_torch_flex_examples_autograd():
    """attention-gym examples on CPU torch tensors through autograd: ALiBi
    from a captured slope tensor (bias[h]), a 2-d captured bias table
    (bias[h, kv_idx]) with torch.where, and a sliding-window mask_mod."""
    torch = _torch()
    qn, kn, vn, don = _data("flex-torch", Nq=16, Nk=28)
    q, k, v = (torch.from_numpy(x).requires_grad_() for x in (qn, kn, vn))
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    table = torch.from_numpy(rng_for("flex-table").standard_normal((4, 28)).astype(np.float32))

    def score_mod(s, b, h, qi, kj):
        bias = torch.where(kj > qi, table[h, kj], 0.0)
        return s - slopes[h] * torch.abs(qi - kj) + bias

    def mask_mod(b, h, qi, kj):
        return (qi + 12 - kj <= 8)
    o = flashmlir.attention(q, k, v, causal=True, score_mod=score_mod, mask_mod=mask_mod)
    o.backward(torch.from_numpy(don))
    sl, tb = slopes.numpy(), table.numpy()
    ref = _flex_reference(
        qn, kn, vn, don,
        lambda s, b, h, i, j: s - sl[h] * np.abs(i - j) + np.where(j > i, tb[h, j], 0.0),
        mask_mod=lambda b, h, i, j: i + 12 - j <= 8, dmod=lambda s, b, h, i, j: 1.0,
        causal=True)
    assert rel_err(o.detach().numpy(), ref[0]) < 2e-5
    for t, want in zip((q, k, v), ref[2:]):
        assert rel_err(t.grad.numpy(), want) < 2e-5


def test_traced_subset_errors():
    q = np.ones((1, 2, 8, 16), np.float32)
    with pytest.raises(TypeError, match="cannot branch on its values"):
        flashmlir.attention(q, q, q, mask_mod=lambda b, h, i, j: i >= j and j > 0)
    with pytest.raises(TypeError, match="numpy.sin is not in the traced subset"):
        flashmlir.attention(q, q, q, score_mod=lambda s, b, h, i, j: np.sin(s))
    with pytest.raises(TypeError, match="mask_mod must return a boolean"):
        flashmlir.attention(q, q, q, mask_mod=lambda b, h, i, j: i - j)
    with pytest.raises(TypeError, match="score_mod must be a function"):
        flashmlir.attention(q, q, q, score_mod=3.0)


# --- fused rotary embeddings ------------------------------------------------------


@pytest.mark.parametrize("interleaved, R, dtype", [(False, 16, "f32"), (True, 16, "f32"),
                                                    (False, 8, "f32"), (True, 12, "f16"),
                                                    (False, 16, "bf16")])
def test_numpy_rotary(interleaved, R, dtype):
    if NP_DTYPE[dtype] is None:
        pytest.skip("ml_dtypes is not installed")
    rng = rng_for(f"rope-{interleaved}-{R}-{dtype}")
    B, Hq, Hkv, Nq, Nk, D = 2, 4, 2, 13, 29, 16
    mk = (lambda *s: rng.standard_normal(s).astype(NP_DTYPE[dtype]))
    q, k, v, do = mk(B, Hq, Nq, D), mk(B, Hkv, Nk, D), mk(B, Hkv, Nk, D), mk(B, Hq, Nq, D)
    cos, sin = rope_tables(Nk + 5, R)
    kw = dict(rotary_cos=cos, rotary_sin=sin, rotary_interleaved=interleaved)
    o, lse = flashmlir.attention(q, k, v, causal=True, return_lse=True, **kw)
    grads = flashmlir.attention_backward(q, k, v, o, lse, do, causal=True, **kw)
    ref = rope_reference(q, k, v, do, cos, sin, interleaved, causal=True)
    ftol, gtol = TOL[dtype]
    assert rel_err(o, ref[0]) < ftol
    assert rel_err(lse, ref[1]) < max(ftol, 1e-5)
    for g, r in zip(grads, ref[2:]):
        assert rel_err(g, r) < gtol


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_rotary_positions_128k(dtype):
    """A decode step at position 131071 over 128k keys, in fp16 / bf16: the
    rotation is computed in float32 from the float32 tables, so the error is
    the dtype's (not the angle's)."""
    if NP_DTYPE[dtype] is None:
        pytest.skip("ml_dtypes is not installed")
    rng = rng_for("rope-128k-" + dtype)
    Nk, D = 131072, 64
    mk = (lambda *s: rng.standard_normal(s).astype(NP_DTYPE[dtype]))
    q, k, v = mk(1, 2, 1, D), mk(1, 1, Nk, D), mk(1, 1, Nk, D)
    cos, sin = rope_tables(Nk, D, base=500000.0)
    o, lse = flashmlir.attention(q, k, v, causal=True, return_lse=True, rotary_cos=cos,
                                 rotary_sin=sin)
    qp, kp = np.arange(1) + Nk - 1, np.arange(Nk)
    ref_o, ref_lse = attention_ref(rotate(q, qp, cos, sin, False),
                                   rotate(k, kp, cos, sin, False), v, causal=True)
    assert rel_err(o, ref_o) < TOL[dtype][0]
    assert rel_err(lse, ref_lse) < 1e-5


def test_torch_rotary_autograd():
    torch = _torch()
    rng = rng_for("rope-torch")
    B, Hq, Hkv, Nq, Nk, D = 1, 4, 1, 11, 20, 16
    qn, kn, vn, don = (rng.standard_normal(s).astype(np.float32) for s in
                       ((B, Nq, Hq, D), (B, Nk, Hkv, D), (B, Nk, Hkv, D), (B, Nq, Hq, D)))
    cos, sin = rope_tables(Nk, 12)
    q, k, v = (torch.from_numpy(x).requires_grad_() for x in (qn, kn, vn))
    o = flashmlir.attention(q, k, v, causal=True, layout="bshd",
                            rotary_cos=torch.from_numpy(cos), rotary_sin=torch.from_numpy(sin),
                            rotary_interleaved=True)
    o.backward(torch.from_numpy(don))
    tr = (lambda x: x.transpose(0, 2, 1, 3))
    ref = rope_reference(tr(qn), tr(kn), tr(vn), tr(don), cos, sin, True, causal=True)
    assert rel_err(tr(o.detach().numpy()), ref[0]) < 2e-5
    for t, want in zip((q, k, v), ref[2:]):
        assert rel_err(tr(t.grad.numpy()), want) < 2e-5


@pytest.mark.parametrize("bad, match", [
    (dict(rotary_cos=np.ones((40, 4), np.float32)), "must be given together"),
    (dict(rotary_cos=np.ones((40, 4), np.float32), rotary_sin=np.ones((40, 3), np.float32)),
     "must both have shape"),
    (dict(rotary_cos=np.ones((40, 10), np.float32), rotary_sin=np.ones((40, 10), np.float32)),
     r"rotary_dim = 2 \* 10 must be in \[2, head dim 16\]"),
    (dict(rotary_cos=np.ones((4, 4), np.float32), rotary_sin=np.ones((4, 4), np.float32)),
     "cover 4 positions but the keys need 8"),
    (dict(rotary_cos=np.ones((40, 4), np.float32), rotary_sin=np.ones((40, 4), np.float32),
          rotary_interleaved=1), "rotary_interleaved must be a bool"),
])
def test_rotary_bad_arguments(bad, match):
    q = np.ones((1, 2, 8, 16), np.float32)
    with pytest.raises((ValueError, TypeError), match=match):
        flashmlir.attention(q, q, q, **bad)


def test_transformers_sinks_gpt_oss():
    """transformers' attention protocol with gpt-oss's s_aux: the sinks join
    the softmax (eager gpt-oss: concatenate the sink logit, softmax, drop
    it), with GQA and a sliding window."""
    torch = _torch()
    from flashmlir._transformers import attention_forward
    rng = rng_for("gpt-oss-sinks")
    B, Hq, Hkv, N, D = 1, 4, 2, 12, 16
    q, k, v = (torch.from_numpy(rng.standard_normal(s).astype(np.float32))
               for s in ((B, Hq, N, D), (B, Hkv, N, D), (B, Hkv, N, D)))
    s_aux = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out, _ = attention_forward(object(), q, k, v, None, scaling=0.3, sliding_window=5,
                               is_causal=True, s_aux=s_aux)
    # transformers' eager gpt-oss attention.
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    w = (q @ kk.transpose(-1, -2)) * 0.3
    i, j = torch.arange(N)[:, None], torch.arange(N)[None, :]
    w = w.masked_fill((j > i) | (i - j >= 5), float("-inf"))
    logits = torch.cat([w, s_aux.reshape(1, -1, 1, 1).expand(B, -1, N, 1)], dim=-1)
    probs = torch.softmax(logits - logits.max(-1, keepdim=True).values, dim=-1)[..., :-1]
    want = (probs @ vv).transpose(1, 2)
    assert out.shape == (B, N, Hq, D)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(NotImplementedError, match="s_aux.*padded batch"):
        attention_forward(object(), q, k, v, torch.ones(B, N), s_aux=s_aux, is_causal=True)

