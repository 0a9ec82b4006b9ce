#!/usr/bin/env python3
"""Correctness of flashmlir.flash_attn_varlen_func on CUDA against a float64
per-sequence reference (each sequence attended on its own, masks aligned to
its own bottom-right corner), forward and backward, in bf16 and f16.

The matrix covers empty and length-1 sequences, cross lengths (Nq != Nk per
sequence), GQA / MQA, causal, sliding window, softcap, head dims 64 and 128
and mixed lengths up to 4096. Every output element of a row that belongs to
a sequence is compared (||x - ref|| / ||ref||, the thresholds of fa-run:
f16 2e-3 / 4e-3, bf16 1.6e-2 / 3.2e-2); lse must be +inf exactly where a
row sees no key (FlashAttention-2's convention); rows past the last
sequence must be 0. NaN anywhere fails.

Each case runs twice: through the bundle's varlen forward kernels
(fa_forward_varlen, the default; "path=kernel") and through the per-sequence fallback
(FLASHMLIR_VARLEN_KERNELS=0; "path=fallback"), the backward likewise
(fa_backward_varlen, or each sequence on the dense kernels). The kernel
path is also called directly on NaN-poisoned o / lse and dq / dk / dv
("poison=ok": every row of every sequence written, and nothing else), and
must have run ("kernel=yes") for head dims 64 / 128.

usage: check_varlen.py [--quick] [--json OUT] [--device cpu]  (cpu: the
script's own check, through the CPU kernels; no kernel / poison runs)   (PYTHONPATH=python,
FLASHMLIR_BUNDLE=bundle as tools/gpu/h100.sh sets them)
"""
import argparse, math, os, time

import torch

import flashmlir
from gpu_common import relerr, report, visible

THRESH = {torch.float16: (2e-3, 4e-3), torch.bfloat16: (1.6e-2, 3.2e-2)}


def reference(q, k, v, do, cu_q, cu_k, causal, window, softcap, scale):
    """float64 o, lse (+inf where a row sees no key), dq, dk, dv by autograd
    on each sequence."""
    q, k, v, do = (t.detach().double() for t in (q, k, v, do))
    Tq, Hq, D = q.shape
    Hkv = k.shape[1]
    o = torch.zeros(Tq, Hq, v.shape[2], dtype=torch.float64, device=q.device)
    lse = torch.full((Hq, Tq), math.inf, dtype=torch.float64, device=q.device)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for b in range(len(cu_q) - 1):
        q0, q1, k0, k1 = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        if q1 == q0 or k1 == k0:
            continue
        qs = q[q0:q1].transpose(0, 1).clone().requires_grad_()
        ks = k[k0:k1].transpose(0, 1).clone().requires_grad_()
        vs = v[k0:k1].transpose(0, 1).clone().requires_grad_()
        kk = ks.repeat_interleave(Hq // Hkv, 0)
        vv = vs.repeat_interleave(Hq // Hkv, 0)
        s = scale * qs @ kk.transpose(1, 2)
        if softcap > 0:
            s = softcap * torch.tanh(s / softcap)
        vis = visible(q1 - q0, k1 - k0, causal, window, q.device)
        s = s.masked_fill(~vis, -math.inf)
        l = torch.logsumexp(s, -1)
        p = torch.exp(s - torch.where(torch.isinf(l), 0.0, l)[..., None])
        p = torch.where(vis, p, 0.0)
        out = p @ vv
        out.backward(do[q0:q1].transpose(0, 1))
        o[q0:q1] = out.detach().transpose(0, 1)
        lse[:, q0:q1] = torch.where(torch.isinf(l), math.inf, l).detach()
        dq[q0:q1] = qs.grad.transpose(0, 1)
        dk[k0:k1] = ks.grad.transpose(0, 1)
        dv[k0:k1] = vs.grad.transpose(0, 1)
    return o, lse, dq, dk, dv


def poisoned_kernel_run(q, k, v, cq, ck, lq, lk, causal, window, softcap, ro, rlse,
                        do=None, rgrads=None):
    """The varlen kernels on NaN-poisoned o / lse, then (with do) dq / dk /
    dv: (ran, every sequence row written and right, rows outside the
    sequences untouched)."""
    from flashmlir import _torch_varlen
    Tq, Hq, _ = q.shape
    o = torch.full((Tq, Hq, v.shape[2]), math.nan, device=q.device, dtype=q.dtype)
    lse = torch.full((Hq, Tq), math.nan, device=q.device, dtype=torch.float32)
    scale = 1.0 / math.sqrt(q.shape[2])
    wl, wr = window
    ran = _torch_varlen._cuda_varlen_forward(q.detach(), k.detach(), v.detach(), o, lse, cq, ck,
                                             len(lq), max(lq), max(lk), causal, scale, wl, wr,
                                             softcap)
    if not ran:
        return False, True
    torch.cuda.synchronize()
    n = int(cq[-1])
    lse_ref = torch.where(torch.isinf(rlse[:, :n]), -math.inf, rlse[:, :n])
    ok = (relerr(o[:n], ro[:n]) <= THRESH[q.dtype][0] and
          relerr(lse[:, :n], lse_ref) <= THRESH[q.dtype][0] and
          bool(torch.isnan(o[n:]).all()) and bool(torch.isnan(lse[:, n:]).all()))
    if do is None:
        return True, ok
    # The varlen backward kernels (fa_backward_varlen) on poisoned gradients.
    nan = lambda t: torch.full_like(t, math.nan)  # noqa: E731
    dq, dk, dv = nan(q), nan(k), nan(v)
    ran = _torch_varlen._cuda_varlen_backward(
        do.detach(), q.detach(), k.detach(), v.detach(), o, lse, dq, dk, dv, cq, ck, len(lq),
        max(lq), max(lk), causal, scale, wl, wr, softcap)
    if not ran:
        return False, False
    torch.cuda.synchronize()
    nk = int(ck[-1])
    rdq, rdk, rdv = rgrads
    gt = THRESH[q.dtype][1]
    ok &= (relerr(dq[:n], rdq[:n]) <= gt and relerr(dk[:nk], rdk[:nk]) <= gt and
           relerr(dv[:nk], rdv[:nk]) <= gt and bool(torch.isnan(dq[n:]).all()) and
           bool(torch.isnan(dk[nk:]).all()) and bool(torch.isnan(dv[nk:]).all()))
    return True, ok


def run_case(name, dt, Hq, Hkv, D, lq, lk, causal=False, window=(-1, -1), softcap=0.0,
             extra_rows=0, seed=0, fallback=False, dev="cuda"):
    os.environ["FLASHMLIR_VARLEN_KERNELS"] = "0" if fallback else "1"
    g = torch.Generator(device="cpu").manual_seed(seed)
    cu_q = [0]
    cu_k = [0]
    for a, c in zip(lq, lk):
        cu_q.append(cu_q[-1] + a)
        cu_k.append(cu_k[-1] + c)
    Tq, Tk = cu_q[-1] + extra_rows, cu_k[-1] + extra_rows
    mk = lambda *s: torch.randn(*s, generator=g).to(dev, dt)  # noqa: E731
    q, k, v, do = mk(Tq, Hq, D), mk(Tk, Hkv, D), mk(Tk, Hkv, D), mk(Tq, Hq, D)
    q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
    cq = torch.tensor(cu_q, dtype=torch.int32, device=dev)
    ck = torch.tensor(cu_k, dtype=torch.int32, device=dev)
    scale = 1.0 / math.sqrt(D)
    t0 = time.time()
    o, lse, _ = flashmlir.flash_attn_varlen_func(
        q, k, v, cq, ck, max(lq), max(lk), causal=causal, window_size=window,
        softcap=softcap, return_attn_probs=True)
    o.backward(do)
    if dev == "cuda":
        torch.cuda.synchronize()
    ms = (time.time() - t0) * 1e3
    ro, rlse, rdq, rdk, rdv = reference(q, k, v, do, cu_q, cu_k, causal, window, softcap, scale)
    ft, gt = THRESH[dt]
    n = cu_q[-1]
    errs = {"o": relerr(o[:n], ro[:n]), "lse": relerr(lse[:, :n], rlse[:, :n]),
            "dq": relerr(q.grad, rdq), "dk": relerr(k.grad, rdk), "dv": relerr(v.grad, rdv)}
    ok = errs["o"] <= ft and errs["lse"] <= ft and all(errs[x] <= gt for x in ("dq", "dk", "dv"))
    if extra_rows:  # rows outside every sequence: 0
        ok &= bool((o[n:] == 0).all())
    extra = ""
    if not fallback and dev == "cuda":
        ran, pok = poisoned_kernel_run(q, k, v, cq, ck, lq, lk, causal, window, softcap, ro, rlse,
                                       do, (rdq, rdk, rdv))
        ok &= pok and (ran or D not in (64, 128) or softcap > 0)
        extra = f" kernel={'yes' if ran else 'no'} poison={'ok' if pok else 'FAIL'}"
    line = (f"{'PASS' if ok else 'FAIL'} {name} path={'fallback' if fallback else 'kernel'} "
            f"{str(dt)[6:]} Hq={Hq} Hkv={Hkv} D={D} "
            f"seqs={len(lq)} Tq={Tq} Tk={Tk} causal={causal} window={window} softcap={softcap} "
            + " ".join(f"{k_}={e:.2e}" for k_, e in errs.items()) + extra + f" ({ms:.0f} ms)")
    print(line, flush=True)
    return dict(name=name, ok=ok, errs=errs, dtype=str(dt))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(1)
    mixed = [int(x) for x in torch.randint(64, 4097, (6,), generator=rng)]
    cases = [
        ("empty_and_one", dict(Hq=4, Hkv=4, D=64, lq=[0, 1, 17, 0, 130, 1], lk=[5, 1, 17, 3, 130, 0])),
        ("gqa_causal_cross", dict(Hq=8, Hkv=2, D=128, lq=[33, 1, 200, 64], lk=[40, 70, 200, 1],
                                  causal=True)),
        ("mqa_window", dict(Hq=4, Hkv=1, D=64, lq=[65, 0, 300], lk=[20, 9, 310], window=(32, 8))),
        ("softcap_causal", dict(Hq=4, Hkv=2, D=128, lq=[129, 7, 1], lk=[129, 7, 1], causal=True,
                                softcap=20.0)),
        ("trailing_rows", dict(Hq=2, Hkv=2, D=64, lq=[10, 20], lk=[10, 20], causal=True,
                               extra_rows=5)),
        ("mixed_long", dict(Hq=8, Hkv=8, D=128, lq=mixed, lk=mixed, causal=True)),
    ]
    if a.quick:
        cases = cases[:3]
    results = []
    for fallback in ((False, True) if a.device == "cuda" else (False,)):
        for dt in (torch.bfloat16, torch.float16):
            for i, (name, kw) in enumerate(cases):
                results.append(run_case(name, dt, seed=i, fallback=fallback, dev=a.device,
                                        **kw))
    report(results, a.json)


if __name__ == "__main__":
    main()
