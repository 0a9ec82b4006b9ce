#!/usr/bin/env python3
"""Check a kernel bundle through libflashmlir_rt + fa_torch.py on a GPU.

    python3 runtime/bench/make_naive_bundle.py /tmp/naive   # or fa-compile's
    FLASHMLIR_RT_LIB=build/lib/libflashmlir_rt.so \
        python3 runtime/bench/check_runtime.py /tmp/naive

Runs forward and backward through the runtime for a spread of configs
(dtypes, GQA/MQA, cross attention, D != Dv, causal / window / softcap, a
[B, N, H, D] layout, empty rows) and compares with a float64 PyTorch
reference. Configs the bundle has no kernel for are reported as SKIP. Also
checks the runtime's error reporting from Python. Prints one line per check
and "N passed, M failed, K skipped"; exits 1 on failure.
"""

import math
import zlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fa_torch import FlashMLIRError, Runtime, attention  # noqa: E402

TOL = {torch.float32: 2e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}
passed = failed = skipped = 0


def check(ok, name, detail=""):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("PASS " if ok else "FAIL ") + name + (": " + detail if detail else ""), flush=True)


def reference(q, k, v, causal, window, softcap, scale):
    """float64 attention with bottom-right aligned masks; O = 0, lse = -inf
    for rows that see no key. Differentiable."""
    q, k, v = (t.double() for t in (q, k, v))
    B, Hq, Nq, D = q.shape
    Hkv, Nk = k.shape[1], k.shape[2]
    g = Hq // Hkv
    k = k.repeat_interleave(g, dim=1)
    v = v.repeat_interleave(g, dim=1)
    s = scale * q @ k.transpose(-1, -2)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(Nq, device=q.device)[:, None]
    j = torch.arange(Nk, device=q.device)[None, :]
    off = Nk - Nq
    vis = torch.ones(Nq, Nk, dtype=torch.bool, device=q.device)
    if causal:
        vis &= j <= i + off
    wl, wr = window if window is not None else (-1, -1)
    if wl >= 0:
        vis &= j >= i + off - wl
    if wr >= 0:
        vis &= j <= i + off + wr
    s = s.masked_fill(~vis, -math.inf)
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(s - m)
    l = p.sum(-1, keepdim=True)
    o = (p / torch.where(l == 0, torch.ones_like(l), l)) @ v
    lse = (m + torch.log(l)).squeeze(-1)
    return o, lse


def rel(x, ref):
    x, ref = x.double(), ref.double()
    return ((x - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def run_case(rt, name, B, Hq, Hkv, Nq, Nk, D, Dv, dtype, causal=False, window=None,
             softcap=0.0, scale=None, bshd=False):
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(zlib.crc32(name.encode()))

    def rnd(b, h, n, d):
        if bshd:  # [B, N, H, D] storage, viewed as [B, H, N, D]
            return torch.randn(b, n, h, d, device=dev, generator=gen).to(dtype).transpose(1, 2)
        return torch.randn(b, h, n, d, device=dev, generator=gen).to(dtype)

    q, k, v = rnd(B, Hq, Nq, D), rnd(B, Hkv, Nk, D), rnd(B, Hkv, Nk, Dv)
    do = rnd(B, Hq, Nq, Dv)
    sc = scale if scale is not None else 1.0 / math.sqrt(D)
    opts = dict(causal=causal, window=window, softcap=softcap, scale=scale)

    label = f"{name} [{str(dtype)[6:]}]"
    try:
        o, lse = rt.forward(q, k, v, **opts)
        dq, dk, dv = rt.backward(q, k, v, o, lse, do, **opts)
        torch.cuda.synchronize()
    except FlashMLIRError as e:
        if e.status_name == "FA_ERR_NO_KERNEL":
            global skipped
            skipped += 1
            print(f"SKIP {label}: {str(e)[:150]}", flush=True)
        else:
            check(False, label, str(e))
        return

    qr, kr, vr = (t.detach().double().requires_grad_() for t in (q, k, v))
    o_ref, lse_ref = reference(qr, kr, vr, causal, window, softcap, sc)
    o_ref.backward(do.double())
    tol = TOL[dtype]
    fin = torch.isfinite(lse_ref)
    lse_ok = torch.equal(torch.isfinite(lse), fin) and (
        not fin.any() or (lse[fin].double() - lse_ref[fin]).abs().max().item() < 1e-3)
    errs = {"o": rel(o, o_ref), "dq": rel(dq, qr.grad), "dk": rel(dk, kr.grad),
            "dv": rel(dv, vr.grad)}
    ok = lse_ok and all(e < tol * (4 if n != "o" else 1) for n, e in errs.items())
    check(ok, label,
          " ".join(f"{n}={e:.1e}" for n, e in errs.items()) + ("" if lse_ok else " lse WRONG"))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    bundle = sys.argv[1]
    rt = Runtime(bundle)
    major, minor, sms = rt.device_info()
    print(f"device: sm_{major}{minor}, {sms} SMs, torch {torch.__version__}")

    for dt in (torch.float32, torch.float16, torch.bfloat16):
        run_case(rt, "plain MHA", 2, 4, 4, 128, 128, 64, 64, dt)
        run_case(rt, "causal GQA cross Nq<Nk", 2, 8, 2, 100, 173, 64, 64, dt, causal=True)
    f32 = torch.float32
    run_case(rt, "causal Nq>Nk (empty rows)", 1, 2, 1, 150, 90, 32, 32, f32, causal=True)
    run_case(rt, "window (32, 8)", 2, 4, 2, 200, 200, 64, 64, f32, window=(32, 8))
    run_case(rt, "causal + window left 16", 2, 4, 4, 130, 130, 64, 64, f32, causal=True,
             window=(16, -1))
    run_case(rt, "window [-1, 0] (= causal)", 1, 4, 4, 96, 96, 64, 64, f32, window=(-1, 0))
    run_case(rt, "softcap 5, scale 0.3", 2, 4, 2, 128, 160, 64, 64, f32, softcap=5.0, scale=0.3)
    run_case(rt, "D != Dv (64x32) MQA", 2, 6, 1, 77, 131, 64, 32, f32)
    run_case(rt, "D != Dv (32x64)", 1, 2, 2, 64, 64, 32, 64, torch.bfloat16, causal=True)
    run_case(rt, "bshd layout, head dim 128", 2, 4, 2, 140, 140, 128, 128, torch.float16,
             causal=True, bshd=True)
    run_case(rt, "bshd layout softcap window", 1, 4, 4, 64, 64, 32, 32, torch.bfloat16,
             window=(8, 8), softcap=30.0, bshd=True)
    run_case(rt, "Nq = 1 decode", 3, 8, 2, 1, 257, 64, 64, torch.float16, causal=True)
    ws = rt.workspace_bytes()
    check(ws > 0, f"workspace held: {ws} bytes")

    # Autograd path on the current (non-default) stream.
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        q = torch.randn(2, 4, 64, 64, device="cuda", requires_grad=True)
        k = torch.randn(2, 2, 64, 64, device="cuda", requires_grad=True)
        v = torch.randn(2, 2, 64, 64, device="cuda", requires_grad=True)
        o = attention(q, k, v, rt, causal=True)
        (o * o).sum().backward()
    torch.cuda.synchronize()
    qr, kr, vr = (t.detach().double().requires_grad_() for t in (q, k, v))
    o_ref, _ = reference(qr, kr, vr, True, None, 0.0, 1 / 8)
    (o_ref * o_ref).sum().backward()
    check(rel(o, o_ref) < 1e-5 and rel(q.grad, qr.grad) < 1e-4 and rel(k.grad, kr.grad) < 1e-4,
          "autograd attention() on a side stream",
          f"o={rel(o, o_ref):.1e} dq={rel(q.grad, qr.grad):.1e} dk={rel(k.grad, kr.grad):.1e}")

    # Errors surface as FlashMLIRError with the runtime's message.
    q = torch.randn(1, 4, 16, 48, device="cuda")
    try:
        rt.forward(q, q, q)
        check(False, "no kernel for head_dim 48 raises")
    except FlashMLIRError as e:
        check(e.status_name == "FA_ERR_NO_KERNEL" and "head_dim=48" in str(e),
              "no kernel for head_dim 48 raises FA_ERR_NO_KERNEL", str(e)[:160])
    q = torch.randn(1, 4, 16, 64, device="cuda")
    try:
        rt.forward(q, q[:, :3], q[:, :3])
        check(False, "GQA mismatch raises")
    except FlashMLIRError as e:
        check(e.status_name == "FA_ERR_INVALID" and "not a multiple" in str(e),
              "Hq % Hkv != 0 raises FA_ERR_INVALID", str(e))
    try:
        Runtime(os.path.join(bundle, "nope"))
        check(False, "missing bundle raises")
    except FlashMLIRError as e:
        check(e.status_name == "FA_ERR_BUNDLE", "missing bundle raises FA_ERR_BUNDLE", str(e))

    rt.synchronize()
    rt.close()
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
