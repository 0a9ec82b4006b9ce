"""flashmlir.flash_attn_varlen_func (and the _kvpacked / _qkvpacked variants):
variable-length batches packed along the tokens with cu_seqlens offsets,
against a float64 per-sequence reference (tests/reference.py on each
sequence: masks aligned to each sequence's own bottom-right corner), empty
and length-1 sequences, GQA/MQA, causal, window, softcap, forward and
backward; outputs poisoned where the kernel writes them; the errors for bad
offsets. NumPy arrays run without torch (CI); torch tensors on the CPU and,
where there is one, on CUDA (test_cuda.py's machine)."""

import inspect
import math

import numpy as np
import pytest

import flashmlir
from reference import attention_grad_ref, rel_err
from np_common import BF16, HAVE_COMPILER, NP_DTYPE, TOL, needs_compiler, rng_for  # noqa: F401

def offsets(lens):
    return np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)


def varlen_ref(q, k, v, do, cu_q, cu_k, causal=False, window=None, softcap=None, scale=None):
    """float64 (o [Tq,Hq,Dv], lse [Hq,Tq], dq, dk, dv), one dense problem per
    sequence; rows outside every sequence: o = 0, lse = -inf, grads 0."""
    q, k, v, do = (np.asarray(x, dtype=np.float64) for x in (q, k, v, do))
    Tq, Hq, D = q.shape
    Tk, Hkv, Dv = v.shape
    o = np.zeros((Tq, Hq, Dv))
    lse = np.full((Hq, Tq), -np.inf)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    for b in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        if q1 == q0 or k1 == k0:
            continue  # no rows, or rows that see no key: o = 0, lse = -inf
        dense = lambda x, a, z: x[a:z].transpose(1, 0, 2)[None]  # noqa: E731
        ob, lb, dqb, dkb, dvb = attention_grad_ref(
            dense(q, q0, q1), dense(k, k0, k1), dense(v, k0, k1), dense(do, q0, q1),
            causal=causal, window=window, softcap=softcap, scale=scale)
        o[q0:q1] = ob[0].transpose(1, 0, 2)
        lse[:, q0:q1] = lb[0]
        dq[q0:q1] = dqb[0].transpose(1, 0, 2)
        dk[k0:k1] = dkb[0].transpose(1, 0, 2)
        dv[k0:k1] = dvb[0].transpose(1, 0, 2)
    return o, lse, dq, dk, dv


def make(rng, shape, dt):
    return rng.standard_normal(shape).astype(np.float32).astype(NP_DTYPE[dt])


# (name, dtype, Hq, Hkv, D, Dv, q lengths, k lengths, options)
CASES = [
    ("plain", "f32", 2, 2, 32, 32, [1, 17, 0, 100, 64], None, {}),
    ("gqa_causal_cross", "f16", 4, 2, 64, 64, [33, 1, 70], [40, 5, 0], dict(causal=True)),
    ("mqa_window", "bf16", 2, 1, 16, 16, [65, 0, 1, 31], [20, 9, 1, 100],
     dict(window_size=(8, 3))),
    ("softcap_dv", "f32", 3, 1, 24, 16, [50, 7, 129], None,
     dict(causal=True, softcap=5.0, softmax_scale=0.3)),
]


def _inputs(name, dt, Hq, Hkv, D, Dv, lq, lk):
    rng = np.random.default_rng(abs(hash(name)) % (2 ** 32))
    lk = lq if lk is None else lk
    cu_q, cu_k = offsets(lq), offsets(lk)
    Tq, Tk = int(cu_q[-1]), int(cu_k[-1])
    q = make(rng, (Tq, Hq, D), dt)
    k = make(rng, (Tk, Hkv, D), dt)
    v = make(rng, (Tk, Hkv, Dv), dt)
    do = make(rng, (Tq, Hq, Dv), dt)
    return q, k, v, do, cu_q, cu_k, max(lq), max(lk)


def _ref_args(opts):
    window = opts.get("window_size")
    return dict(causal=opts.get("causal", False),
                window=None if window in (None, (-1, -1)) else window,
                softcap=opts.get("softcap") or None, scale=opts.get("softmax_scale"))


@needs_compiler
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_numpy_against_reference(case):
    name, dt, Hq, Hkv, D, Dv, lq, lk, opts = case
    if NP_DTYPE[dt] is None:
        pytest.skip("ml_dtypes not installed")
    q, k, v, do, cu_q, cu_k, mq, mk = _inputs(name, dt, Hq, Hkv, D, Dv, lq, lk)
    o, lse, _ = flashmlir.flash_attn_varlen_func(q, k, v, cu_q, cu_k, mq, mk,
                                                 return_attn_probs=True, **opts)
    ro, rlse, rdq, rdk, rdv = varlen_ref(q, k, v, do, cu_q, cu_k, **_ref_args(opts))
    ft, gt = TOL[dt]
    assert o.shape == ro.shape and o.dtype == q.dtype
    assert rel_err(o, ro) <= ft
    # FlashAttention-2's convention: +inf lse where a row sees no key.
    assert rel_err(lse, np.where(rlse == -np.inf, np.inf, rlse)) <= ft
    # The backward on the forward's own o and lse (the dialect's -inf).
    from flashmlir import _varlen
    from flashmlir._options import check_options
    sopts = check_options(opts.get("causal", False), opts.get("softmax_scale"),
                          opts.get("window_size"), opts.get("softcap"), "bhsd", "test")
    o2, lse2 = _varlen.numpy_forward(q, k, v, cu_q, cu_k, mq, mk, sopts, "test")
    dq, dk, dv = _varlen.numpy_backward(q, k, v, o2, lse2, do, cu_q, cu_k, mq, mk, sopts,
                                        "test")
    for got, ref in ((dq, rdq), (dk, rdk), (dv, rdv)):
        assert rel_err(got, ref) <= gt


@needs_compiler
def test_kernel_writes_every_row_poisoned_outputs():
    """The raw kernel call on NaN-poisoned outputs: every row of every
    sequence is written (o, lse, dq, dk, dv), also for a sequence whose rows
    see no key (o = 0, lse = -inf, dq = 0) and keys no query sees (0)."""
    from flashmlir import _cpu, _varlen
    from flashmlir._numpy import _desc
    from flashmlir._options import check_options
    q, k, v, do, cu_q, cu_k, mq, mk = _inputs("poison", "f32", 4, 2, 32, 32,
                                              [3, 1, 0, 40, 5], [7, 0, 4, 40, 1])
    opts = check_options(True, None, None, None, "bhsd", "test")
    kern = _cpu.kernel_for(opts, 0, 32, 32)
    o = np.full((q.shape[0], 4, 32), np.nan, np.float32)
    lse = np.full((4, q.shape[0]), np.nan, np.float32)
    ds = [np.full(x.shape, np.nan, np.float32) for x in (q, k, v)]
    d = lambda a: _desc(a)[1]  # noqa: E731
    _varlen.cpu_forward_raw(kern, d(q), d(k), d(v), d(o), d(lse), cu_q.ctypes.data,
                            cu_k.ctypes.data, 5, mq, mk)
    _varlen.cpu_backward_raw(kern, d(q), d(k), d(v), d(o), d(do), d(lse), d(ds[0]), d(ds[1]),
                             d(ds[2]), cu_q.ctypes.data, cu_k.ctypes.data, 5, mq, mk)
    ro, rlse, rdq, rdk, rdv = varlen_ref(q, k, v, do, cu_q, cu_k, causal=True)
    assert not np.isnan(o).any() and not np.isnan(lse).any()
    assert all(not np.isnan(x).any() for x in ds)
    assert np.all(o[3] == 0) and np.all(lse[:, 3] == -np.inf)  # sequence 1: no keys
    assert rel_err(o, ro) <= 1e-5 and rel_err(lse, rlse) <= 1e-5
    for got, ref in zip(ds, (rdq, rdk, rdv)):
        assert rel_err(got, ref) <= 2e-5


def _bad(**over):
    rng = np.random.default_rng(0)
    args = dict(q=make(rng, (10, 2, 16), "f32"), k=make(rng, (10, 2, 16), "f32"),
                v=make(rng, (10, 2, 16), "f32"), cu_seqlens_q=offsets([4, 6]),
                cu_seqlens_k=offsets([4, 6]), max_seqlen_q=6, max_seqlen_k=6)
    args.update(over)
    return args


@needs_compiler
@pytest.mark.parametrize("over, exc, match", [
    (dict(cu_seqlens_q=offsets([4, 6]).astype(np.int64)), TypeError,
     "cu_seqlens_q must be a 1-d int32"),
    (dict(cu_seqlens_k=offsets([4, 6])[None]), TypeError, "cu_seqlens_k must be a 1-d int32"),
    (dict(cu_seqlens_q=np.array([0, 7, 6], np.int32), max_seqlen_q=7), ValueError,
     r"must be non-decreasing, but cu_seqlens_q\[2\] = 6 < cu_seqlens_q\[1\] = 7"),
    (dict(cu_seqlens_q=np.array([1, 4, 10], np.int32)), ValueError, "must start at 0"),
    (dict(cu_seqlens_k=np.array([0, 4, 11], np.int32), max_seqlen_k=7), ValueError,
     r"cu_seqlens_k\[-1\] = 11 is past the 10 packed rows"),
    (dict(cu_seqlens_k=offsets([4, 3, 3])), ValueError, "cu_seqlens_q has 3 entries but"),
    (dict(max_seqlen_q=5), ValueError, "max_seqlen_q = 5 is smaller than sequence 1's length 6"),
    (dict(max_seqlen_k=-1), TypeError, "max_seqlen_k must be an int >= 0"),
    (dict(q=np.zeros((1, 10, 2, 16), np.float32)), ValueError, "q must be packed"),
    (dict(block_table=np.zeros((2, 1), np.int32)), NotImplementedError, "paged KV cache"),
    (dict(dropout_p=0.1), ValueError, "dropout_p must be 0.0"),
])
def test_numpy_errors(over, exc, match):
    with pytest.raises(exc, match=match):
        flashmlir.flash_attn_varlen_func(**_bad(**over))


def test_signatures_are_flash_attn_2s():
    tail = [("dropout_p", 0.0), ("softmax_scale", None), ("causal", False),
            ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
            ("deterministic", False), ("return_attn_probs", False)]
    sigs = {
        "flash_attn_varlen_func": (["q", "k", "v", "cu_seqlens_q", "cu_seqlens_k",
                                    "max_seqlen_q", "max_seqlen_k"], [("block_table", None)]),
        "flash_attn_varlen_kvpacked_func": (["q", "kv", "cu_seqlens_q", "cu_seqlens_k",
                                             "max_seqlen_q", "max_seqlen_k"], []),
        "flash_attn_varlen_qkvpacked_func": (["qkv", "cu_seqlens", "max_seqlen"], []),
    }
    for fn, (pos, extra) in sigs.items():
        params = list(inspect.signature(getattr(flashmlir, fn)).parameters.values())
        assert [p.name for p in params] == pos + [n for n, _ in tail + extra], fn
        assert [p.default for p in params[len(pos):]] == [d for _, d in tail + extra], fn


# --- torch ------------------------------------------------------------------------


def _devices():
    try:
        import torch
    except ImportError:
        return []
    devs = []
    if HAVE_COMPILER:
        devs.append("cpu")
    if flashmlir.available()["cuda"] and torch.cuda.is_available():
        devs.append("cuda")
    return devs


TORCH_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}


@pytest.mark.parametrize("device", _devices() or ["none"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_torch_forward_backward(case, device):
    torch = pytest.importorskip("torch")
    if device == "none":
        pytest.skip("no torch device FlashMLIR can run on")
    name, dt, Hq, Hkv, D, Dv, lq, lk, opts = case
    if device == "cuda" and dt == "f32":
        dt = "bf16"  # the GPU kernels of the default bundle are f16/bf16
    if NP_DTYPE[dt] is None:
        pytest.skip("ml_dtypes not installed")
    q, k, v, do, cu_q, cu_k, mq, mk = _inputs(name, dt, Hq, Hkv, D, Dv, lq, lk)
    tdt = getattr(torch, TORCH_DTYPES[dt])
    T = lambda a: torch.from_numpy(a.astype(np.float32)).to(device, tdt)  # noqa: E731
    tq, tk, tv = (T(x).requires_grad_() for x in (q, k, v))
    cq = torch.from_numpy(cu_q).to(device)
    ck = torch.from_numpy(cu_k).to(device)
    o, lse, _ = flashmlir.flash_attn_varlen_func(tq, tk, tv, cq, ck, mq, mk,
                                                 return_attn_probs=True, **opts)
    o.backward(T(do))
    f = lambda a: a.detach().float().cpu().numpy()  # noqa: E731
    qf, kf, vf, dof = (f(T(x)) for x in (q, k, v, do))
    ro, rlse, rdq, rdk, rdv = varlen_ref(qf, kf, vf, dof, cu_q, cu_k, **_ref_args(opts))
    ft, gt = TOL[dt]
    assert o.dtype == tdt and tuple(o.shape) == ro.shape
    assert rel_err(f(o), ro) <= ft
    assert rel_err(f(lse), np.where(rlse == -np.inf, np.inf, rlse)) <= ft
    for got, ref in ((tq.grad, rdq), (tk.grad, rdk), (tv.grad, rdv)):
        assert rel_err(f(got), ref) <= gt


@pytest.mark.parametrize("device", _devices() or ["none"])
def test_torch_packed_variants_and_errors(device):
    torch = pytest.importorskip("torch")
    if device == "none":
        pytest.skip("no torch device FlashMLIR can run on")
    dt = torch.float32 if device == "cpu" else torch.bfloat16
    g = torch.Generator().manual_seed(5)
    lens = [5, 0, 12, 1]
    cu = torch.from_numpy(offsets(lens)).to(device)
    qkv = torch.randn(18, 3, 2, 16, generator=g).to(device, dt)
    ref = flashmlir.flash_attn_varlen_func(qkv[:, 0], qkv[:, 1], qkv[:, 2], cu, cu, 12, 12,
                                           causal=True)
    a = flashmlir.flash_attn_varlen_qkvpacked_func(qkv, cu, 12, causal=True)
    b = flashmlir.flash_attn_varlen_kvpacked_func(qkv[:, 0], qkv[:, 1:], cu, cu, 12, 12,
                                                  causal=True)
    assert torch.equal(a, ref) and torch.equal(b, ref)
    q = qkv[:, 0]
    with pytest.raises(TypeError, match="must have dtype torch.int32"):
        flashmlir.flash_attn_varlen_func(q, q, q, cu.long(), cu, 12, 12)
    with pytest.raises(ValueError, match="must be 1-d"):
        flashmlir.flash_attn_varlen_func(q, q, q, cu[None], cu, 12, 12)
    with pytest.raises(ValueError, match="max_seqlen_k = 11 is smaller than sequence 2's"):
        flashmlir.flash_attn_varlen_func(q, q, q, cu, cu, 12, 11)
    bad = cu.clone()
    bad[2] = 3
    with pytest.raises(ValueError, match="must be non-decreasing"):
        flashmlir.flash_attn_varlen_func(q, q, q, bad, cu, 12, 12)
    with pytest.raises(NotImplementedError, match="paged KV cache"):
        flashmlir.flash_attn_varlen_func(q, q, q, cu, cu, 12, 12, block_table=cu)
