#!/usr/bin/env python3
"""Forward-only GPU check of the tensor-core (mma.sync) attn_fwd variant.

usage: attn-mma-check.py NAME=BUNDLE [NAME=BUNDLE ...] [--bench] [--lens 1024,4096]

Correctness: O and lse against float64 PyTorch (||x-ref||/||ref||, outputs
poisoned with NaN first; thresholds of the CPU path: f16 2e-3, bf16 1.6e-2)
for f16/bf16 x d64/d128 over ragged lengths, causal, windows, GQA and the
[B,N,H,D] layout. With --bench: TFLOP/s (4*B*H*N^2*d, halved when causal)
of every bundle and SDPA's flash backend (FlashAttention-2), bf16/f16,
16k tokens, hidden 2048, triton do_bench medians, same process; a SUMMARY
line per bundle gives the median ratio to FA2. Not a lit test (needs a GPU).
"""
import math, os, sys, time
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402
from attn_reference import reference  # noqa: E402

THRESH = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
DT = {"f16": torch.float16, "bf16": torch.bfloat16}


def relerr(x, ref):
    x, ref = x.double(), ref.double()
    both = torch.isinf(x) & torch.isinf(ref) & (torch.sign(x) == torch.sign(ref))
    x = torch.where(both, torch.zeros_like(x), x)
    ref = torch.where(both, torch.zeros_like(ref), ref)
    if torch.isnan(x).any() or torch.isinf(x).any():
        return math.inf
    n = ref.norm().item()
    return (x - ref).norm().item() / (n if n > 0 else 1.0)


DIMS = [64, 128]  # --dims


def cases():
    out = []
    for dt in ("f16", "bf16"):
        for d in DIMS:
            base = dict(B=2, Hq=4, Hkv=4, Nq=128, Nk=128, D=d, dtype=dt)

            def add(**kw):
                c = dict(base)
                c.update(kw)
                if "N" in c:
                    c["Nq"] = c["Nk"] = c.pop("N")
                out.append(c)
            add()
            add(causal=True, Nq=100, Nk=257)
            for n in (1, 17, 100, 257):
                add(N=n)
                add(N=n, causal=True)
            add(Nq=64, Nk=300)
            add(Nq=300, Nk=64, causal=True)
            add(Hq=8, Hkv=2, N=160)
            add(Hq=8, Hkv=1, N=160, causal=True)
            add(window=(32, 8), N=300)
            add(window=(16, -1), Nq=120, Nk=250, Hq=8, Hkv=2)
            add(causal=True, window=(64, -1), N=333)
            add(window=(100, 70), N=517)
            add(layout="bshd", Hq=8, Hkv=2, N=256, causal=True)
            add(layout="bshd", N=129)
            add(B=1, Hq=2, Hkv=2, N=2048, causal=True)
            add(B=1, Hq=2, Hkv=1, N=2048)
    return out


def run_case(rt, c, seed):
    dt = DT[c["dtype"]]
    B, Hq, Hkv, Nq, Nk, D = (c[k] for k in ("B", "Hq", "Hkv", "Nq", "Nk", "D"))
    g = torch.Generator(device="cuda").manual_seed(seed)
    bshd = c.get("layout") == "bshd"

    def make(H, N):
        if bshd:
            return torch.randn(B, N, H, D, device="cuda", generator=g).to(dt).transpose(1, 2)
        return torch.randn(B, H, N, D, device="cuda", generator=g).to(dt)
    q, k, v = make(Hq, Nq), make(Hkv, Nk), make(Hkv, Nk)
    scale = 1.0 / math.sqrt(D)
    kw = dict(causal=c.get("causal", False), window=c.get("window"), scale=scale)
    o, lse = rt.forward(q, k, v, **kw, out=torch.full((B, Hq, Nq, D), math.nan, dtype=dt, device="cuda"),
                        lse=torch.full((B, Hq, Nq), math.nan, device="cuda"))
    torch.cuda.synchronize()
    ro, rl = reference(q, k, v, **kw)
    e = dict(o=relerr(o, ro), lse=relerr(lse, rl))
    return e["o"] <= THRESH[dt] and e["lse"] <= THRESH[dt], e


def bench(variants, lens):
    """TFLOP/s medians of every variant and SDPA's flash backend, same process."""
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from triton.testing import do_bench
    props = torch.cuda.get_device_properties(0)
    print(torch.__version__, props.name, props.multi_processor_count, "SMs", flush=True)
    summary = {name: [] for name in variants}
    for dt in (torch.bfloat16, torch.float16):
        for d in sorted(DIMS, reverse=True):
            for N in lens:
                for causal in (False, True):
                    H, B = 2048 // d, max(1, 16384 // N)
                    q, k, v = (torch.randn(B, H, N, d, device="cuda", dtype=dt) for _ in range(3))
                    fl = 4 * B * H * N * N * d / (2 if causal else 1)
                    tf = lambda t: round(fl / t / 1e9, 1)
                    row = {}
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        fw = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        fw()
                        row["fa2"] = tf(do_bench(fw, warmup=25, rep=100, return_mode="median"))
                    for name, rt in variants.items():
                        o = torch.empty_like(q)
                        lse = torch.empty(B, H, N, device="cuda")
                        t = do_bench(lambda: rt.forward(q, k, v, causal=causal, out=o, lse=lse),
                                     warmup=25, rep=100, return_mode="median")
                        row[name] = tf(t)
                        summary[name].append(row[name] / row["fa2"])
                    print(f"BENCH {str(dt)[6:]} d={d} N={N} B={B} H={H} causal={causal}: TFLOP/s " +
                          " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                    del q, k, v
    for name, r in summary.items():
        r = sorted(r)
        print(f"SUMMARY {name}: ratio to FA2 median {r[len(r) // 2]:.3f} min {r[0]:.3f} max {r[-1]:.3f}", flush=True)


def main():
    """usage: attn-mma-check.py NAME=BUNDLE [NAME=BUNDLE ...] [--bench] [--lens 1024,4096,16384]
                                [--dims 64,128]"""
    global DIMS
    args = sys.argv[1:]
    if "--dims" in args:
        i = args.index("--dims")
        DIMS = [int(x) for x in args[i + 1].split(",")]
        del args[i:i + 2]
    lens = [1024, 4096, 16384]
    if "--lens" in args:
        i = args.index("--lens")
        lens = [int(x) for x in args[i + 1].split(",")]
        del args[i:i + 2]
    variants = {}
    for a in args:
        if a.startswith("--"):
            continue
        name, _, path = a.rpartition("=")
        variants[name or os.path.basename(path.rstrip("/"))] = Runtime(path)
    passed = failed = 0
    i = 0
    for name, rt in variants.items():
        vp = vf = 0
        for c in cases():
            t0 = time.time()
            try:
                ok, e = run_case(rt, c, 2000 + i)
                msg = " ".join(f"{k}={v:.2e}" for k, v in e.items())
            except Exception as ex:
                ok, msg = False, f"error: {ex}"
            i += 1
            vp += ok
            vf += not ok
            desc = " ".join(f"{k}={v}" for k, v in c.items())
            print(f"{'PASS' if ok else 'FAIL'} {name} {desc}: {msg} ({time.time() - t0:.1f}s)", flush=True)
        print(f"CHECK {name}: {vp} passed, {vf} failed", flush=True)
        passed += vp
        failed += vf
    print(f"fwd check: {passed} passed, {failed} failed", flush=True)
    if "--bench" in sys.argv:
        bench(variants, lens)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
