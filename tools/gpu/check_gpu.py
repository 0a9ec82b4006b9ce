#!/usr/bin/env python3
"""Correctness of FlashMLIR's GPU kernels against a float64 reference.

Runs forward and backward through the runtime (libflashmlir_rt via
runtime/bench/fa_torch.py) on fresh random inputs, with outputs poisoned
(NaN) first, and compares O, lse, dQ, dK, dV with float64 PyTorch by
||x - ref|| / ||ref||. Thresholds are those of the CPU path (fa-run):
f32 1e-5 (gradients 2e-5), f16 2e-3 (4e-3), bf16 1.6e-2 (3.2e-2).
The matrix covers the CPU issue's shape classes plus lengths up to 16k.

BUNDLE may be a deterministic bundle (`fa-compile --default --deterministic
1`; its manifest says "deterministic": true): then every case also runs the
backward a second time on the same inputs and dQ, dK, dV must be
bit-identical ("bits=same"), or the case fails.

usage: check_gpu.py BUNDLE [--quick] [--json OUT] [--filter REGEX] [--allow-missing]
Prints one line per configuration and "N passed, M failed" (with
--allow-missing, a case whose kernel the bundle does not have, e.g. the
backward past sm_75's shared memory, is "MISSING" and counted apart:
", K without a kernel"). FLASHMLIR_GPU_TARGET=sm_75 runs the Turing
kernels on a newer GPU (through the driver's PTX JIT).
"""
import argparse, json, math, os, re, sys, time
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402
from attn_reference import reference  # noqa: E402

HEAD_DIMS = [(d, d) for d in (32, 40, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256)] + [(192, 128)]
THRESH = {torch.float32: (1e-5, 2e-5), torch.float16: (2e-3, 4e-3), torch.bfloat16: (1.6e-2, 3.2e-2)}
DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def relerr(x, ref):
    x, ref = x.double(), ref.double()
    both_inf = torch.isinf(x) & torch.isinf(ref) & (torch.sign(x) == torch.sign(ref))
    x = torch.where(both_inf, torch.zeros_like(x), x)
    ref = torch.where(both_inf, torch.zeros_like(ref), ref)
    if torch.isnan(x).any() or torch.isinf(x).any():
        return math.inf
    n = ref.norm().item()
    return (x - ref).norm().item() / (n if n > 0 else 1.0)


def bits(t):
    """The raw bits of a float tensor (NaN-safe comparison)."""
    return t.view({2: torch.int16, 4: torch.int32}[t.element_size()])


def is_deterministic(bundle):
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    return any(k["config"].get("deterministic", False) for k in m["kernels"]
               if k["kind"] == "bwd_post")


def reference_lowp(q, k, v, do, *, causal=False, window=None, softcap=0.0, scale=None):
    """The same attention unfused in the inputs' precision (PyTorch ops on
    f16 / bf16 tensors, softmax as torch computes it): the baseline of
    FlashAttention's own rule (its max error against float64 bounds ours by
    2x)."""
    q, k, v = (t.detach().requires_grad_(True) for t in (q, k, v))
    Hq, Hkv, Nq, Nk = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
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
    p = torch.softmax(s.masked_fill(~vis, -math.inf), dim=-1).nan_to_num(0.0)
    o = torch.matmul(p, vv)
    dq, dk, dv = torch.autograd.grad(o, (q, k, v), do)
    return o.detach(), dq, dk, dv


def maxerr(x, ref):
    return (x.double() - ref.double()).abs().max().item()


def run_case(rt, c, seed, deterministic=False):
    dt = DT[c["dtype"]]
    B, Hq, Hkv, Nq, Nk, D, Dv = (c[k] for k in ("B", "Hq", "Hkv", "Nq", "Nk", "D", "Dv"))
    g = torch.Generator(device="cuda").manual_seed(seed)
    bshd = c.get("layout") == "bshd"

    def make(H, N, d):
        if bshd:
            return torch.randn(B, N, H, d, device="cuda", generator=g).to(dt).transpose(1, 2)
        return torch.randn(B, H, N, d, device="cuda", generator=g).to(dt)

    q, k, v, do = make(Hq, Nq, D), make(Hkv, Nk, D), make(Hkv, Nk, Dv), make(Hq, Nq, Dv)
    scale = 1.0 / math.sqrt(D)
    kw = dict(causal=c.get("causal", False), window=c.get("window"), softcap=c.get("softcap", 0.0), scale=scale)
    # Poisoned outputs: an element a kernel never writes stays NaN and fails.
    nan = lambda t: torch.full_like(t, math.nan)
    o, lse = rt.forward(q, k, v, **kw, out=nan(do),
                        lse=torch.full((B, Hq, Nq), math.nan, device="cuda"))
    dq, dk, dv = rt.backward(q, k, v, o, lse, do, **kw, dq=nan(q), dk=nan(k), dv=nan(v))
    same = True
    if deterministic:  # the same inputs again: dQ, dK, dV bit for bit
        again = rt.backward(q, k, v, o, lse, do, **kw, dq=nan(q), dk=nan(k), dv=nan(v))
        torch.cuda.synchronize()
        same = all(torch.equal(bits(x), bits(y)) for x, y in zip((dq, dk, dv), again))
    torch.cuda.synchronize()
    ro, rl, rdq, rdk, rdv = reference(q, k, v, do, **kw)
    errs = dict(fwd=relerr(o, ro), lse=relerr(lse, rl), dq=relerr(dq, rdq), dk=relerr(dk, rdk), dv=relerr(dv, rdv))
    tf, tg = THRESH[dt]
    ok = errs["fwd"] <= tf and errs["lse"] <= tf and all(errs[x] <= tg for x in ("dq", "dk", "dv"))
    if c.get("rule2x") and dt != torch.float32:
        # FlashAttention's rule: max |error| at most 2x that of the unfused
        # computation in the same precision (+ 1e-5); the worst ratio.
        lo = reference_lowp(q, k, v, do, **kw)
        worst = 0.0
        for x, r64, rl in zip((o, dq, dk, dv), (ro, rdq, rdk, rdv), lo):
            worst = max(worst, maxerr(x, r64) / (2 * maxerr(rl, r64) + 1e-5))
        errs["rule2x"] = worst
        ok = ok and worst <= 1.0
    if deterministic:
        errs["bits_same"] = same
    return ok and same, errs


def matrix(quick):
    cases = []
    base = dict(B=2, Hq=4, Hkv=4, Nq=128, Nk=128, D=64, Dv=64, dtype="bf16")
    def add(**kw):
        c = dict(base); c.update(kw)
        if "N" in c:
            c["Nq"] = c["Nk"] = c.pop("N")
        cases.append(c)
    for dt in ("f32", "f16", "bf16"):
        add(dtype=dt)
        add(dtype=dt, causal=True, Nq=100, Nk=257)
    for d in (8, 16, 32, 64, 96, 128, 256):
        add(dtype="f16", D=d, Dv=d, N=100)
    add(dtype="bf16", D=64, Dv=32, N=200)
    for n in (1, 17, 100, 257):
        add(dtype="f16", N=n)
        add(dtype="bf16", N=n, causal=True)
    add(dtype="f16", Nq=64, Nk=300)                        # Nq < Nk
    add(dtype="f16", Nq=300, Nk=64, causal=True)           # Nq > Nk: rows without keys
    add(dtype="bf16", Hq=8, Hkv=2, N=160)                  # GQA
    add(dtype="bf16", Hq=8, Hkv=1, N=160, causal=True)     # MQA
    add(dtype="f16", window=(32, 8), N=300)
    add(dtype="f16", window=(16, -1), Nq=120, Nk=250, Hq=8, Hkv=2)
    add(dtype="bf16", causal=True, window=(64, -1), N=333)
    add(dtype="f16", softcap=30.0, N=200)
    add(dtype="bf16", softcap=50.0, causal=True, N=200, D=128, Dv=128)
    add(dtype="f32", softcap=20.0, window=(40, 40), N=150)
    add(dtype="bf16", layout="bshd", Hq=8, Hkv=2, N=256, causal=True)
    add(dtype="f16", layout="bshd", N=129, D=128, Dv=128)
    # Every head dim of the tensor-core kernels (the default bundle's), f16
    # and bf16: ragged length, causal with Nq != Nk and GQA, a window with
    # Nq > Nk, softcap; forward and all three gradients, plus
    # FlashAttention's 2x rule.
    for dt in ("f16", "bf16"):
        for d, dv in HEAD_DIMS:
            add(dtype=dt, D=d, Dv=dv, N=257, rule2x=True)
            add(dtype=dt, D=d, Dv=dv, Hq=8, Hkv=2, Nq=100, Nk=300, causal=True, rule2x=True)
            add(dtype=dt, D=d, Dv=dv, Nq=300, Nk=200, window=(48, 16), rule2x=True)
            add(dtype=dt, D=d, Dv=dv, N=200, causal=True, softcap=30.0, rule2x=True)
    if not quick:
        for n in (1024, 4096):
            add(dtype="bf16", B=1, Hq=4, Hkv=4, N=n, D=128, Dv=128, causal=True)
            add(dtype="f16", B=1, Hq=4, Hkv=2, N=n, D=64, Dv=64)
        add(dtype="bf16", B=1, Hq=2, Hkv=2, N=16384, D=128, Dv=128, causal=True)
        add(dtype="f16", B=1, Hq=1, Hkv=1, N=16384, D=64, Dv=64)
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--filter", help="run only the cases whose description matches this regex")
    ap.add_argument("--allow-missing", action="store_true",
                    help="a case without a kernel in the bundle is MISSING, not FAIL")
    a = ap.parse_args()
    det = is_deterministic(a.bundle)
    if det:
        print("deterministic bundle: dQ/dK/dV compared bit for bit over two runs", flush=True)
    rt = Runtime(a.bundle)
    rows, passed, failed, missing = [], 0, 0, 0
    for i, c in enumerate(matrix(a.quick)):
        desc = " ".join(f"{k}={v}" for k, v in c.items())
        if a.filter and not re.search(a.filter, desc):
            continue
        t0 = time.time()
        try:
            ok, errs = run_case(rt, c, seed=1000 + i, deterministic=det)
            msg = " ".join(f"{k}={v:.2e}" if k not in ("bits_same", "rule2x") else
                           f"bits={'same' if v else 'DIFFER'}" if k == "bits_same" else f"rule2x={v:.2f}"
                           for k, v in errs.items())
        except Exception as e:  # a runtime error is a failure, reported
            ok, errs, msg = False, {}, f"error: {e}"
            if a.allow_missing and "no kernel for" in str(e):
                missing += 1
                print(f"MISSING {desc}: {e}", flush=True)
                rows.append(dict(config=c, ok=None, errors={}, missing=str(e)))
                continue
        passed += ok; failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {desc}: {msg} ({time.time() - t0:.1f}s)", flush=True)
        rows.append(dict(config=c, ok=ok, errors=errs))
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)
    print(f"{passed} passed, {failed} failed" + (f", {missing} without a kernel" if a.allow_missing else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
