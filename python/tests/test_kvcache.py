"""flashmlir.flash_attn_with_kvcache on the CPU with NumPy arrays (CI runs
these without torch; test_cuda.py's machine runs tools/gpu/check_kvcache.py
for CUDA): contiguous and paged caches (block sizes 16 / 64, shuffled block
tables), per-sequence lengths including 0 and the full capacity, appended
rows (in place, checked row by row), GQA / MQA, causal / window / softcap,
against a float64 per-sequence reference; outputs are fresh arrays. Then the
errors for bad input."""

import math

import numpy as np
import pytest

import flashmlir

HAVE_COMPILER = flashmlir.available()["compiler"]
pytestmark = pytest.mark.skipif(not HAVE_COMPILER,
                                reason="libflashmlir_c (the compiler library) not found")


def reference(q, keys, vals, causal, window, softcap, scale):
    """q [Nq, Hq, D], keys [n, Hkv, D] -> out [Nq, Hq, Dv], lse [Hq, Nq] (float64)."""
    Nq, Hq, _ = q.shape
    n, Hkv, Dv = vals.shape
    if n == 0:
        return np.zeros((Nq, Hq, Dv)), np.full((Hq, Nq), np.inf)
    g = Hq // Hkv
    kk = np.repeat(keys, g, axis=1).transpose(1, 0, 2)
    vv = np.repeat(vals, g, axis=1).transpose(1, 0, 2)
    s = np.einsum("qhd,hkd->hqk", q, kk) * scale
    if softcap:
        s = softcap * np.tanh(s / softcap)
    i = np.arange(Nq)[:, None]
    j = np.arange(n)[None, :]
    diag = i + (n - Nq)
    vis = np.ones((Nq, n), dtype=bool)
    if causal:
        vis &= j <= diag
    if window[0] >= 0:
        vis &= j >= diag - window[0]
    if window[1] >= 0:
        vis &= j <= diag + window[1]
    s = np.where(vis, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m)
    lsum = p.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,hkd->qhd", p / np.where(lsum > 0, lsum, 1.0), vv)
    lse = np.where(lsum[..., 0] > 0, np.log(np.where(lsum[..., 0] > 0, lsum[..., 0], 1.0))
                   + m[..., 0], np.inf)
    return out, lse


def rel(x, ref):
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    fin = np.isfinite(ref)
    assert np.array_equal(np.isfinite(x), fin), "infinities differ"
    assert np.array_equal(x[~fin], ref[~fin])
    n = np.linalg.norm(ref[fin])
    return np.linalg.norm(x[fin] - ref[fin]) / (n if n > 0 else 1.0)


CASES = [
    # name, B, Hq, Hkv, D, Dv, Nq, cap, lens, Nnew, block, causal, window, softcap
    ("dense_gqa_append", 3, 8, 2, 32, 32, 1, 100, [0, 99, 40], 1, 0, False, (-1, -1), 0.0),
    ("dense_full", 2, 4, 4, 16, 16, 2, 37, None, 0, 0, True, (-1, -1), 0.0),
    ("paged16_mqa", 3, 4, 1, 32, 32, 1, 96, [1, 95, 0], 1, 16, False, (-1, -1), 0.0),
    ("paged64_causal_window", 2, 4, 2, 16, 16, 4, 200, [60, 150], 4, 64, True, (20, 0), 0.0),
    ("paged16_softcap_dv", 2, 4, 2, 32, 16, 3, 64, [10, 61], 3, 16, False, (-1, -1), 15.0),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kvcache_numpy(case):
    name, B, Hq, Hkv, D, Dv, Nq, cap, lens, Nn, block, causal, window, softcap = case
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    q = f(B, Nq, Hq, D)
    kn, vn = (f(B, Nn, Hkv, D), f(B, Nn, Hkv, Dv)) if Nn else (None, None)
    if block:
        nb = -(-cap // block)
        pool = B * nb + 2
        kc, vc = f(pool, block, Hkv, D), f(pool, block, Hkv, Dv)
        table = rng.permutation(pool)[:B * nb].reshape(B, nb).astype(np.int32)
    else:
        kc, vc = f(B, cap, Hkv, D), f(B, cap, Hkv, Dv)
        table = None
    n0 = [cap] * B if lens is None else lens
    # The cache after the append, written row by row.
    ek, ev = kc.copy(), vc.copy()
    for b in range(B):
        for r in range(Nn):
            pos = n0[b] + r
            if block:
                ek[table[b, pos // block], pos % block] = kn[b, r]
                ev[table[b, pos // block], pos % block] = vn[b, r]
            else:
                ek[b, pos], ev[b, pos] = kn[b, r], vn[b, r]

    def rows(c, b, n):
        if not block:
            return c[b, :n]
        return np.stack([c[table[b, i // block], i % block] for i in range(n)]) if n else \
            c[:0, 0]

    out, lse = flashmlir.flash_attn_with_kvcache(
        q, kc, vc, k=kn, v=vn,
        cache_seqlens=None if lens is None else np.asarray(lens, dtype=np.int32),
        block_table=table, causal=causal, window_size=window, softcap=softcap,
        return_softmax_lse=True)
    assert out.shape == (B, Nq, Hq, Dv) and out.dtype == np.float32
    assert lse.shape == (B, Hq, Nq) and lse.dtype == np.float32
    assert np.array_equal(kc, ek) and np.array_equal(vc, ev), "the append"
    scale = 1.0 / math.sqrt(D)
    for b in range(B):
        n = n0[b] + Nn
        ro, rl = reference(q[b].astype(np.float64), rows(ek, b, n).astype(np.float64),
                           rows(ev, b, n).astype(np.float64), causal, window, softcap, scale)
        assert rel(out[b], ro) < 1e-5, (name, b)
        assert rel(lse[b], rl) < 1e-5, (name, b)


def test_kvcache_int_lengths_and_default_output():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 1, 4, 16)).astype(np.float32)
    kc = rng.standard_normal((2, 50, 2, 16)).astype(np.float32)
    vc = rng.standard_normal((2, 50, 2, 16)).astype(np.float32)
    a = flashmlir.flash_attn_with_kvcache(q, kc, vc, cache_seqlens=20)
    b = flashmlir.flash_attn_with_kvcache(q, kc[:, :20].copy(), vc[:, :20].copy())
    assert isinstance(a, np.ndarray) and np.allclose(a, b, rtol=0, atol=1e-6)


def _rope64(x, pos, cos, sin, interleaved):
    """x [B, N, H, D] rotated at pos [B, N] in float64 (FlashAttention-2's pairs)."""
    x = np.array(x, dtype=np.float64)
    R = 2 * cos.shape[1]
    c = cos.astype(np.float64)[pos][:, :, None, :]
    s = sin.astype(np.float64)[pos][:, :, None, :]
    ia, ib = (np.arange(0, R, 2), np.arange(1, R, 2)) if interleaved else \
        (np.arange(R // 2), np.arange(R // 2, R))
    a, b = x[..., ia].copy(), x[..., ib].copy()
    x[..., ia], x[..., ib] = a * c - b * s, b * c + a * s
    return x


@pytest.mark.parametrize("interleaved, causal, block", [(True, False, 0), (False, True, 16),
                                                       (True, True, 0)])
def test_kvcache_rotary(interleaved, causal, block):
    """flash_attn's RoPE inside flash_attn_with_kvcache: the new keys rotated
    at their cache positions before the append (the cache then holds them
    rotated), q at cache_seqlens[b] + i when causal (else all at
    cache_seqlens[b]); partial rotary (R = 24 of D = 32); against float64."""
    rng = np.random.default_rng(11 + 2 * interleaved + causal)
    B, Hq, Hkv, D, Nq, cap = 2, 4, 2, 32, 3, 64
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    q, kn, vn = f(B, Nq, Hq, D), f(B, Nq, Hkv, D), f(B, Nq, Hkv, D)
    lens = np.array([5, 40], dtype=np.int32)
    inv = 10000.0 ** (-np.arange(0, 24, 2) / 24)
    ang = np.arange(cap)[:, None] * inv[None, :]
    cos, sin = np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)
    if block:
        nb = cap // block
        table = rng.permutation(B * nb).reshape(B, nb).astype(np.int32)
        kc, vc = f(B * nb, block, Hkv, D), f(B * nb, block, Hkv, D)
    else:
        table, (kc, vc) = None, (f(B, cap, Hkv, D), f(B, cap, Hkv, D))
    k0, v0 = kc.copy(), vc.copy()
    out = flashmlir.flash_attn_with_kvcache(q, kc, vc, k=kn, v=vn, rotary_cos=cos,
                                            rotary_sin=sin, cache_seqlens=lens,
                                            block_table=table, causal=causal,
                                            rotary_interleaved=interleaved)
    posk = lens[:, None].astype(np.int64) + np.arange(Nq)[None, :]
    posq = posk if causal else np.repeat(lens[:, None].astype(np.int64), Nq, axis=1)
    kr = _rope64(kn, posk, cos, sin, interleaved)
    qr = _rope64(q, posq, cos, sin, interleaved)
    for b in range(B):
        n = lens[b] + Nq
        rows = lambda c: (c[b, :n] if not block else  # noqa: E731
                          np.stack([c[table[b, i // block], i % block] for i in range(n)]))
        keys, vals = rows(kc).astype(np.float64), rows(vc).astype(np.float64)
        # The cache: old rows untouched, the new ones rotated (to f32).
        assert np.array_equal(keys[:lens[b]], rows(k0)[:lens[b]])
        assert np.allclose(keys[lens[b]:], kr[b], atol=1e-5)
        assert np.array_equal(vals[lens[b]:], vn[b])
        assert np.array_equal(vals[:lens[b]], rows(v0)[:lens[b]])
        ro, _ = reference(qr[b], keys, vals, causal, (-1, -1), 0.0, 1.0 / math.sqrt(D))
        assert rel(out[b], ro) < 1e-5, b


def _inputs():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 1, 4, 16)).astype(np.float32)
    kc = rng.standard_normal((2, 32, 2, 16)).astype(np.float32)
    return q, kc, kc.copy()


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(cache_seqlens=np.array([1, 2], dtype=np.int64)), TypeError, "int32"),
    (dict(cache_seqlens=np.array([1, 2, 3], dtype=np.int32)), ValueError, r"shape \[2\]"),
    (dict(cache_seqlens=np.array([1, 33], dtype=np.int32)), ValueError, "must lie in"),
    (dict(cache_seqlens=-1), ValueError, "must lie in"),
    (dict(rotary_cos=np.zeros((40, 4), np.float32)), ValueError, "given together"),
    (dict(rotary_cos=np.zeros((40, 4), np.float32), rotary_sin=np.zeros((40, 5), np.float32)),
     ValueError, "same shape|both have shape"),
    (dict(rotary_cos=np.zeros((40, 10), np.float32), rotary_sin=np.zeros((40, 10), np.float32)),
     ValueError, r"rotary_dim = 2 \* 10 must be in \[2, head dim 16\]"),
    (dict(rotary_cos=np.zeros((32, 4), np.float32), rotary_sin=np.zeros((32, 4), np.float32),
          cache_seqlens=32), ValueError, "cover 32 positions but the new rows need 33"),
    (dict(cache_batch_idx=np.zeros(2, dtype=np.int32)), NotImplementedError, "cache_batch_idx"),
    (dict(num_splits=129), ValueError, "num_splits"),
    (dict(num_splits=True), ValueError, "num_splits"),
    (dict(k=np.zeros((2, 1, 2, 16), np.float32)), ValueError, "together"),
    (dict(k=np.zeros((2, 1, 2, 16), np.float32), v=np.zeros((2, 1, 2, 16), np.float32)),
     ValueError, "needs cache_seqlens"),
    (dict(block_table=np.zeros((2, 4), dtype=np.int32), cache_seqlens=5), ValueError,
     "must lie in"),  # capacity 4 x 32 = 128 rows fine; blocks: NB = 2 -> table ok; see below
    (dict(alibi_slopes=np.zeros(4, np.float32)), NotImplementedError, "alibi"),
    (dict(dropout_p=0.1), TypeError, "dropout_p"),
])
def test_kvcache_errors(kwargs, err, match):
    q, kc, vc = _inputs()
    if "block_table" in kwargs:  # pages [2, 32, ...], a table naming block 2 (out of range)
        kwargs = dict(kwargs, block_table=np.array([[0, 2], [1, 0]], dtype=np.int32))
        match = r"block_table entries must lie in \[0, 2\)"
    with pytest.raises(err, match=match):
        flashmlir.flash_attn_with_kvcache(q, kc, vc, **kwargs)


def test_kvcache_bad_cache_shapes():
    q, kc, vc = _inputs()
    with pytest.raises(ValueError, match="k_cache has batch 3"):
        flashmlir.flash_attn_with_kvcache(q, np.zeros((3, 32, 2, 16), np.float32),
                                          np.zeros((3, 32, 2, 16), np.float32))
    with pytest.raises(ValueError, match="head dim 8"):
        flashmlir.flash_attn_with_kvcache(q, kc[..., :8].copy(), vc)
    with pytest.raises(ValueError, match="not a multiple"):
        flashmlir.flash_attn_with_kvcache(q, np.zeros((2, 32, 3, 16), np.float32),
                                          np.zeros((2, 32, 3, 16), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        flashmlir.flash_attn_with_kvcache(q, kc.astype(np.float16), vc)
