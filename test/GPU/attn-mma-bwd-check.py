#!/usr/bin/env python3
"""GPU check of the tensor-core (mma.sync) attn_bwd_main variant.

usage: attn-mma-bwd-check.py TC_BUNDLE [--bench] [--d 64,128,256] [--dtype f16,bf16]

TC_BUNDLE is a bundle written with `fa-compile --tensor-cores 1` (its
manifest says which bwd_main kernels are the tensor-core variant; the others
are SIMT and are checked all the same; --d 256 is on tensor cores only in
an sm_90 / sm_90a bundle: the column-split kernel takes 211 KB of shared
memory, sm_80 keeps it SIMT). Correctness: forward (O, lse) and
backward (dQ, dK, dV) through the runtime on fresh random inputs, outputs
poisoned with NaN first, against float64 PyTorch autograd by
||x - ref|| / ||ref||. Thresholds: O / lse f16 2e-3, bf16 1.6e-2 (the CPU
path's); gradients those of tools/gpu/check_gpu.py: f16 4e-3, bf16 3.2e-2.
One PASS/FAIL line per case, then "bwd check: X passed, Y failed"; exit 1 on
a failure.

A deterministic bundle (`fa-compile --deterministic 1`: the manifest's
kernel configs say "deterministic": true) is also checked for bit
reproducibility: every case runs the backward a second time on the same
inputs (outputs poisoned again) and dQ, dK and dV must be bit-identical to
the first run ("bits=same"; any difference fails the case).

With --bench: fwd+bwd TFLOP/s (3.5 x 4*B*H*N^2*d FLOPs, halved when causal)
of the bundle (rt.forward + rt.backward) and of SDPA's flash backend
(FlashAttention-2, autograd), bf16/f16, d of --d (64/128 unless given), N 1k/4k/16k with B*N = 16k
tokens and H = 2048/d, causal and not; triton do_bench medians, same
process. Not a lit test (needs a GPU).
"""
import json, math, os, sys, time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402
from attn_reference import reference  # noqa: E402

DT = {"f16": torch.float16, "bf16": torch.bfloat16}
# (O and lse, gradients)
THRESH = {torch.float16: (2e-3, 4e-3), torch.bfloat16: (1.6e-2, 3.2e-2)}


def relerr(x, ref):
    x, ref = x.double(), ref.double()
    both = torch.isinf(x) & torch.isinf(ref) & (torch.sign(x) == torch.sign(ref))
    x = torch.where(both, torch.zeros_like(x), x)
    ref = torch.where(both, torch.zeros_like(ref), ref)
    if torch.isnan(x).any() or torch.isinf(x).any():
        return math.inf
    n = ref.norm().item()
    return (x - ref).norm().item() / (n if n > 0 else 1.0)


def cases(dtypes=("f16", "bf16"), dims=(64, 128)):
    out = []
    for dt in dtypes:
        for d in dims:
            base = dict(B=2, Hq=4, Hkv=4, Nq=128, Nk=128, D=d, dtype=dt)

            def add(**kw):
                c = dict(base)
                c.update(kw)
                if "N" in c:
                    c["Nq"] = c["Nk"] = c.pop("N")
                out.append(c)
            add()
            for n in (1, 17, 100, 257):
                add(N=n)
                add(N=n, causal=True)
            add(Nq=64, Nk=300, causal=True)           # Nq < Nk
            add(Nq=300, Nk=64, causal=True)           # Nq > Nk: rows without keys
            add(Nq=100, Nk=257, causal=True)
            add(Nq=257, Nk=100)
            add(Hq=8, Hkv=2, N=160)                   # GQA
            add(Hq=8, Hkv=2, N=200, causal=True)
            add(Hq=8, Hkv=1, N=160, causal=True)      # MQA
            add(Hq=4, Hkv=1, Nq=90, Nk=150)
            add(window=(32, 8), N=300)
            add(window=(16, -1), Nq=120, Nk=250, Hq=8, Hkv=2)
            add(window=(16, -1), Nq=250, Nk=120)
            add(layout="bshd", Hq=8, Hkv=2, N=256, causal=True)
            add(layout="bshd", N=129)
            add(B=1, Hq=2, Hkv=2, N=2048, causal=True)
    return out


def bits(t):
    """The raw bits of a float tensor (NaN-safe comparison)."""
    return t.view({2: torch.int16, 4: torch.int32}[t.element_size()])


def run_case(rt, c, seed, deterministic=False):
    dt = DT[c["dtype"]]
    B, Hq, Hkv, Nq, Nk, D = (c[k] for k in ("B", "Hq", "Hkv", "Nq", "Nk", "D"))
    g = torch.Generator(device="cuda").manual_seed(seed)
    bshd = c.get("layout") == "bshd"

    def make(H, N):
        if bshd:
            return torch.randn(B, N, H, D, device="cuda", generator=g).to(dt).transpose(1, 2)
        return torch.randn(B, H, N, D, device="cuda", generator=g).to(dt)
    q, k, v, do = make(Hq, Nq), make(Hkv, Nk), make(Hkv, Nk), make(Hq, Nq)
    scale = 1.0 / math.sqrt(D)
    kw = dict(causal=c.get("causal", False), window=c.get("window"), scale=scale)
    nan = lambda t: torch.full_like(t, math.nan)  # noqa: E731
    o, lse = rt.forward(q, k, v, **kw, out=nan(do),
                        lse=torch.full((B, Hq, Nq), math.nan, device="cuda"))
    dq, dk, dv = rt.backward(q, k, v, o, lse, do, **kw, dq=nan(q), dk=nan(k), dv=nan(v))
    same = True
    if deterministic:
        again = rt.backward(q, k, v, o, lse, do, **kw, dq=nan(q), dk=nan(k), dv=nan(v))
        torch.cuda.synchronize()
        same = all(torch.equal(bits(x), bits(y)) for x, y in zip((dq, dk, dv), again))
    torch.cuda.synchronize()
    ro, rl, rdq, rdk, rdv = reference(q, k, v, do, **kw)
    e = dict(o=relerr(o, ro), lse=relerr(lse, rl), dq=relerr(dq, rdq), dk=relerr(dk, rdk),
             dv=relerr(dv, rdv))
    tf, tg = THRESH[dt]
    ok = e["o"] <= tf and e["lse"] <= tf and all(e[x] <= tg for x in ("dq", "dk", "dv"))
    return ok and same, e, same


def is_deterministic(bundle):
    """True for a bundle written with fa-compile --deterministic 1."""
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    return any(k["config"].get("deterministic", False) for k in m["kernels"]
               if k["kind"] == "bwd_post")


def bwd_variants(bundle):
    """{(dtype, head_dim, masked): True if bwd_main is the tensor-core variant}."""
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    out = {}
    for k in m["kernels"]:
        c = k["config"]
        if k["kind"] != "bwd_main" or c["softcap"]:  # the cases use no softcap
            continue
        key = (c["dtype"], c["head_dim"], c["masked"])
        out[key] = out.get(key, False) or bool(c.get("tensor_cores", False))
    return out


def flops(B, H, N, d, causal):
    return 3.5 * 4 * B * H * N * N * d / (2 if causal else 1)


def bench(rt, dtypes, dims):
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from triton.testing import do_bench
    props = torch.cuda.get_device_properties(0)
    print(torch.__version__, props.name, props.multi_processor_count, "SMs", flush=True)
    for dt in (DT[x] for x in dtypes):
        for d in dims:
            for N in (1024, 4096, 16384):
                for causal in (False, True):
                    H, B = 2048 // d, max(1, 16384 // N)
                    q, k, v, do = (torch.randn(B, H, N, d, device="cuda", dtype=dt) for _ in range(4))
                    fl = flops(B, H, N, d, causal)
                    tf = lambda t: round(fl / t / 1e9, 1)  # noqa: E731
                    row = {}

                    def ours():
                        o, lse = rt.forward(q, k, v, causal=causal)
                        rt.backward(q, k, v, o, lse, do, causal=causal)
                    row["ours"] = tf(do_bench(ours, warmup=10, rep=100, return_mode="median"))
                    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        def fa2():
                            F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal).backward(do)
                        fa2()
                        row["fa2"] = tf(do_bench(fa2, warmup=10, rep=100, grad_to_none=[qg, kg, vg],
                                                 return_mode="median"))
                    print(f"BENCH fwd+bwd {str(dt)[6:]} d={d} N={N} B={B} H={H} causal={causal}: "
                          f"TFLOP/s ours={row['ours']} fa2={row['fa2']} "
                          f"ours/fa2={row['ours'] / row['fa2']:.2f}", flush=True)
                    del q, k, v, do, qg, kg, vg


def main():
    argv = sys.argv[1:]
    opts = {}
    args = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--d", "--dtype"):
            opts[argv[i]] = argv[i + 1]
            i += 2
        elif argv[i].startswith("--"):
            opts[argv[i]] = True
            i += 1
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 1:
        print(__doc__)
        sys.exit(2)
    dims = tuple(int(x) for x in opts.get("--d", "64,128").split(","))
    dtypes = tuple(opts.get("--dtype", "f16,bf16").split(","))
    variants = bwd_variants(args[0])
    print("bwd_main tensor-core variants:",
          sorted(f"{dt}/d{d}{'/masked' if m else ''}" for (dt, d, m), tc in variants.items() if tc),
          flush=True)
    det = is_deterministic(args[0])
    print("deterministic bundle:", det, "(dQ/dK/dV compared bit for bit over two runs)" if det else "",
          flush=True)
    rt = Runtime(args[0])
    passed = failed = 0
    for i, c in enumerate(cases(dtypes, dims)):
        t0 = time.time()
        masked = bool(c.get("causal") or c.get("window"))
        tc = variants.get((c["dtype"], c["D"], masked))
        try:
            ok, e, same = run_case(rt, c, 3000 + i, det)
            msg = " ".join(f"{k}={v:.2e}" for k, v in e.items())
            if det:
                msg += " bits=" + ("same" if same else "DIFFER")
        except Exception as ex:  # a runtime error is a failure, reported
            ok, msg = False, f"error: {ex}"
        passed += ok
        failed += not ok
        desc = " ".join(f"{k}={v}" for k, v in c.items())
        print(f"{'PASS' if ok else 'FAIL'} [{'mma' if tc else 'simt'}] {desc}: {msg} "
              f"({time.time() - t0:.1f}s)", flush=True)
    print(f"bwd check: {passed} passed, {failed} failed", flush=True)
    if "--bench" in opts:
        bench(rt, dtypes, dims)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
