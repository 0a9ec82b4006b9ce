"""float64 NumPy reference attention (forward and analytic backward) for the
tests: full softmax, bottom-right aligned causal / window masks, GQA/MQA,
softcap, ALiBi slopes ([Hq] or [B, Hq]: bias -slope |i + off - j| after
softcap) and attention sinks ([Hq]: one more logit per row with a zero value
row); rows that see no key give O = 0, lse = -inf (the sink with sinks) and
zero gradients. All arrays [B, H, N, D]."""

import numpy as np


def visible(Nq, Nk, causal, window):
    i = np.arange(Nq)[:, None]
    j = np.arange(Nk)[None, :]
    diag = i + (Nk - Nq)
    vis = np.ones((Nq, Nk), dtype=bool)
    left, right = window if window is not None else (-1, -1)
    if causal:
        vis &= j <= diag
    if left >= 0:
        vis &= j >= diag - left
    if right >= 0:
        vis &= j <= diag + right
    return vis


def _forward(q, k, v, causal, window, softcap, scale, alibi=None, sinks=None):
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    B, Hq, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    g = Hq // Hkv
    kk = np.repeat(k, g, axis=1)
    vv = np.repeat(v, g, axis=1)
    if scale is None:
        scale = 1.0 / np.sqrt(D)
    s = scale * (q @ kk.swapaxes(-1, -2))
    t = None
    if softcap:
        t = np.tanh(s / softcap)
        s = softcap * t
    if alibi is not None:
        slopes = np.asarray(alibi, dtype=np.float64)
        slopes = (slopes[None, :] if slopes.ndim == 1 else slopes)[:, :, None, None]
        dist = np.abs(np.arange(Nq)[:, None] + (Nk - Nq) - np.arange(Nk)[None, :])
        s = s - slopes * dist
    vis = visible(Nq, Nk, causal, window)
    s = np.where(vis, s, -np.inf)
    m = s.max(axis=-1, keepdims=True) if Nk else np.full(s.shape[:-1] + (1,), -np.inf)
    sk = None
    if sinks is not None:
        sk = np.broadcast_to(np.asarray(sinks, dtype=np.float64)[None, :, None, None],
                             m.shape)
        m = np.maximum(m, sk)
    m = np.where(np.isinf(m), 0.0, m)
    p = np.exp(s - m)
    l = p.sum(axis=-1, keepdims=True)
    if sk is not None:
        l = l + np.exp(sk - m)
    with np.errstate(divide="ignore"):
        lse = (m + np.log(l))[..., 0]
    P = p / np.where(l == 0, 1.0, l)
    o = P @ vv
    return o, lse, dict(P=P, t=t, kk=kk, vv=vv, scale=scale, g=g, q=q)


def attention_ref(q, k, v, causal=False, window=None, softcap=None, scale=None, alibi=None,
                  sinks=None):
    """(o, lse) in float64."""
    o, lse, _ = _forward(q, k, v, causal, window, softcap, scale, alibi, sinks)
    return o, lse


def attention_grad_ref(q, k, v, do, causal=False, window=None, softcap=None, scale=None,
                       alibi=None, sinks=None):
    """(o, lse, dq, dk, dv) in float64; with sinks (o, lse, dq, dk, dv, dsinks)."""
    o, lse, c = _forward(q, k, v, causal, window, softcap, scale, alibi, sinks)
    do = np.asarray(do, dtype=np.float64)
    P, t, kk, vv, scale, g, q64 = c["P"], c["t"], c["kk"], c["vv"], c["scale"], c["g"], c["q"]
    dvv = P.swapaxes(-1, -2) @ do
    dP = do @ vv.swapaxes(-1, -2)
    Dr = (do * o).sum(axis=-1, keepdims=True)
    dS = P * (dP - Dr)
    if t is not None:
        dS = dS * (1.0 - t * t)
    dq = scale * (dS @ kk)
    dkk = scale * (dS.swapaxes(-1, -2) @ q64)
    B, Hq, Nk = q64.shape[0], q64.shape[1], kk.shape[2]
    Hkv = Hq // g
    dk = dkk.reshape(B, Hkv, g, Nk, -1).sum(axis=2)
    dv = dvv.reshape(B, Hkv, g, Nk, -1).sum(axis=2)
    if sinks is None:
        return o, lse, dq, dk, dv
    # d sink[h] = -sum_{b,i} P_sink[b,h,i] Dr[b,h,i], P_sink = exp(sink - lse)
    psink = np.exp(np.asarray(sinks, dtype=np.float64)[None, :, None] - lse)
    dsinks = -(psink * Dr[..., 0]).sum(axis=(0, 2))
    return o, lse, dq, dk, dv, dsinks


def rel_err(x, ref):
    """||x - ref|| / ||ref|| over the finite entries of ref (x must match ref's
    infinities exactly)."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert x.shape == ref.shape, (x.shape, ref.shape)
    inf = ~np.isfinite(ref)
    if inf.any():
        assert np.array_equal(x[inf], ref[inf]), "non-finite entries differ"
        x, ref = x[~inf], ref[~inf]
    den = np.linalg.norm(ref)
    num = np.linalg.norm(x - ref)
    if den == 0:
        return float(num)
    return float(num / den)


# --- fused rotary embeddings (FlashAttention-2's tables) -------------------------


def rope_tables(P, R, base=10000.0):
    """FlashAttention-2's rotary_cos / rotary_sin: [P, R/2] float32."""
    inv = base ** (-np.arange(0, R, 2, dtype=np.float64) / R)
    ang = np.arange(P, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rotate(x, pos, cos, sin, interleaved, inverse=False):
    """x [B, H, N, D] (float64) rotated in pairs at positions pos [N]."""
    x = np.array(x, dtype=np.float64)
    R = 2 * cos.shape[1]
    c, s = cos[pos].astype(np.float64), sin[pos].astype(np.float64)
    if inverse:
        s = -s
    if interleaved:
        a, b = x[..., 0:R:2].copy(), x[..., 1:R:2].copy()
        x[..., 0:R:2], x[..., 1:R:2] = a * c - b * s, b * c + a * s
    else:
        a, b = x[..., :R // 2].copy(), x[..., R // 2:R].copy()
        x[..., :R // 2], x[..., R // 2:R] = a * c - b * s, b * c + a * s
    return x


def rope_reference(q, k, v, do, cos, sin, interleaved, **kw):
    """The reference on rotated q (positions i + Nk - Nq) and k, dq / dk
    rotated back."""
    Nq, Nk = q.shape[2], k.shape[2]
    qp, kp = np.arange(Nq) + Nk - Nq, np.arange(Nk)
    o, lse, dq, dk, dv, *rest = attention_grad_ref(rotate(q, qp, cos, sin, interleaved),
                                                   rotate(k, kp, cos, sin, interleaved), v, do,
                                                   **kw)
    return (o, lse, rotate(dq, qp, cos, sin, interleaved, True),
            rotate(dk, kp, cos, sin, interleaved, True), dv, *rest)
