"""float64 PyTorch reference attention for the GPU check scripts.

    from attn_reference import reference
    o, lse = reference(q, k, v, causal=True, scale=s)
    o, lse, dq, dk, dv = reference(q, k, v, do, window=(64, 0), softcap=30.0)

q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv] (do [B, Hq, Nq, Dv]),
any dtype and device; Hq a multiple of Hkv (GQA / MQA by repeat_interleave),
Nq and Nk may differ. Masks are bottom-right aligned: query i sits on key
diagonal i + Nk - Nq; window (left, right) keeps keys in
[diag - left, diag + right], a negative side being unbounded; causal sets
right = 0. softcap (0 or None: off) applies softcap * tanh(s / softcap) to
the scaled scores. Rows that see no key give O = 0 and lse = -inf (and zero
gradients). Everything is computed in float64; with do, dq, dk, dv come from
torch.autograd. Used by tools/gpu/check_gpu.py, test/GPU/attn-mma-check.py
and test/GPU/attn-mma-bwd-check.py (which put runtime/bench on sys.path).

`python3 attn_reference.py` checks it on CPU against an independent
per-row implementation (python/tests/test_attn_reference.py runs the same).
"""

import math

import torch

__all__ = ["reference"]


def reference(q, k, v, do=None, *, causal=False, window=None, softcap=0.0, scale=None):
    """(o, lse) without do, (o, lse, dq, dk, dv) with it; all float64."""
    grad = do is not None
    q, k, v = (t.detach().double().requires_grad_(grad) for t in (q, k, v))
    B, Hq, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    if scale is None:
        scale = 1.0 / math.sqrt(D)
    kk = k.repeat_interleave(Hq // Hkv, dim=1)
    vv = v.repeat_interleave(Hq // Hkv, dim=1)
    s = torch.matmul(q, kk.transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(Nq, device=q.device)[:, None]
    j = torch.arange(Nk, device=q.device)[None, :]
    diag = i + (Nk - Nq)
    vis = torch.ones(Nq, Nk, dtype=torch.bool, device=q.device)
    left, right = window if window else (-1, -1)
    if causal:
        right = 0
    if left >= 0:
        vis &= j >= diag - left
    if right >= 0:
        vis &= j <= diag + right
    s = s.masked_fill(~vis, -math.inf)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    o = torch.matmul(p, vv)
    if not grad:
        return o.detach(), lse.detach()
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do.double())
    return o.detach(), lse.detach(), dq, dk, dv


# --- self-test (CPU) ---------------------------------------------------------

def _rowwise(q, k, v, do, causal, window, softcap, scale):
    """Independent float64 reference: one (b, h, i) row at a time over its
    visible keys only, analytic backward, GQA by head index h // group."""
    q, k, v, do = (t.double() for t in (q, k, v, do))
    B, Hq, Nq, D = q.shape
    Hkv, Nk, Dv = k.shape[1], k.shape[2], v.shape[3]
    g = Hq // Hkv
    o = torch.zeros(B, Hq, Nq, Dv, dtype=torch.float64)
    lse = torch.full((B, Hq, Nq), -math.inf, dtype=torch.float64)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    lo_w, hi_w = (window if window is not None else (-1, -1))
    for b in range(B):
        for h in range(Hq):
            kh = h // g
            for i in range(Nq):
                c = i + Nk - Nq
                lo = max(0, c - lo_w) if lo_w >= 0 else 0
                hi = Nk - 1
                if causal:
                    hi = min(hi, c)
                elif hi_w >= 0:
                    hi = min(hi, c + hi_w)
                if lo > hi:
                    continue  # no key: O = 0, lse = -inf, no gradient
                K, V = k[b, kh, lo:hi + 1], v[b, kh, lo:hi + 1]
                raw = (K @ q[b, h, i]) * scale
                t = torch.tanh(raw / softcap) if softcap else None
                sc = softcap * t if softcap else raw
                m = sc.max()
                e = torch.exp(sc - m)
                l = e.sum()
                P = e / l
                lse[b, h, i] = m + torch.log(l)
                o[b, h, i] = P @ V
                dP = V @ do[b, h, i]
                dS = P * (dP - (dP * P).sum())
                if softcap:
                    dS = dS * (1 - t * t)
                dq[b, h, i] = scale * (dS @ K)
                dk[b, kh, lo:hi + 1] += scale * dS[:, None] * q[b, h, i][None, :]
                dv[b, kh, lo:hi + 1] += P[:, None] * do[b, h, i][None, :]
    return o, lse, dq, dk, dv


# name, B, Hq, Hkv, Nq, Nk, D, Dv, options
SELFTEST_CASES = [
    ("plain", 2, 2, 2, 9, 9, 8, 8, {}),
    ("causal", 1, 2, 2, 11, 11, 8, 4, dict(causal=True)),
    ("causal-nq<nk-gqa", 1, 4, 2, 7, 13, 8, 8, dict(causal=True)),
    ("causal-nq>nk-empty-rows", 1, 2, 1, 13, 6, 8, 8, dict(causal=True)),
    ("window", 1, 2, 2, 12, 12, 8, 8, dict(window=(3, 2))),
    ("window-left-only-nq<nk", 2, 3, 1, 6, 10, 4, 8, dict(window=(2, -1))),
    ("window-causal", 1, 2, 2, 10, 10, 8, 8, dict(causal=True, window=(4, 4))),
    ("window-empty-rows", 1, 2, 2, 12, 5, 8, 8, dict(window=(1, 0))),
    ("softcap", 1, 2, 2, 9, 9, 8, 8, dict(softcap=2.0)),
    ("softcap-gqa-window-scale", 1, 4, 1, 8, 11, 8, 6, dict(softcap=3.0, window=(2, 3), scale=0.7)),
]


def check_case(case, seed):
    """reference() against _rowwise() on one SELFTEST_CASES entry (f32
    inputs, forward and gradients): (ok, number of rows with no key)."""
    name, B, Hq, Hkv, Nq, Nk, D, Dv, opts = case
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, Nq, D, generator=g)
    k = torch.randn(B, Hkv, Nk, D, generator=g)
    v = torch.randn(B, Hkv, Nk, Dv, generator=g)
    do = torch.randn(B, Hq, Nq, Dv, generator=g)
    opts = dict(opts)
    scale = opts.pop("scale", 1.0 / math.sqrt(D))
    got = reference(q, k, v, do, scale=scale, **opts)
    fwd = reference(q, k, v, scale=scale, **opts)
    want = _rowwise(q, k, v, do, opts.get("causal", False), opts.get("window"),
                    opts.get("softcap", 0.0), scale)
    ok = len(fwd) == 2 and all(torch.equal(a, b) for a, b in zip(fwd, got[:2]))
    ok &= all(x.dtype == torch.float64 and x.shape == y.shape for x, y in zip(got, want))
    # lse: -inf exactly where a row sees no key, close elsewhere
    ok &= torch.equal(torch.isinf(got[1]), torch.isinf(want[1]))
    fin = torch.isfinite(want[1])
    ok &= torch.allclose(got[1][fin], want[1][fin], rtol=1e-12, atol=1e-12)
    ok &= all(torch.allclose(x, y, rtol=1e-10, atol=1e-12)
              for x, y in zip(got[:1] + got[2:], want[:1] + want[2:]))
    return bool(ok), int((~fin).sum())


def selftest():
    """Every SELFTEST_CASES entry: PASS/FAIL lines; returns the failing names."""
    bad = []
    for n, case in enumerate(SELFTEST_CASES):
        ok, empty = check_case(case, 1234 + n)
        print(("PASS " if ok else "FAIL ") + case[0] + (f" ({empty} empty rows)" if empty else ""))
        if not ok:
            bad.append(case[0])
    return bad


if __name__ == "__main__":
    import sys
    bad = selftest()
    print(f"{len(SELFTEST_CASES) - len(bad)} passed, {len(bad)} failed")
    sys.exit(1 if bad else 0)
