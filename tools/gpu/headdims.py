#!/usr/bin/env python3
"""Head-dim sweep on one GPU, in one process: FlashMLIR (through the runtime)
side by side with PyTorch SDPA's flash (FlashAttention-2) and cuDNN backends,
forward and forward+backward, at B=4, H=16 (the code-generator issue's bar).

FLOPs per (query, key) pair: forward 2 (D + Dv), backward 2 (3 D + 2 Dv)
(recomputed S, dP, dV, dK, dQ); halved when causal. Times are medians of
CUDA-event timings (triton.testing.do_bench) after warm-up. Also: softcap at
the --softcap dims against the same shape without softcap (FlashMLIR only:
the SDPA backends have no softcap).

usage: headdims.py BUNDLE [--dims 32,40,...,192x128] [--lens 4096,16384]
                   [--dtypes bf16,f16] [--softcap 128,256] [--json OUT]
                   [--md OUT] [--plot OUT.png] [--reps N] [--b B] [--h H]
BUNDLE may be NAME=DIR pairs (A/B: every bundle timed on the same inputs);
the first is the one compared with the peers in the table.
"""
import argparse, json, os, sys, time
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402

DIMS = "32,40,48,64,80,96,112,128,160,192,224,256,192x128"
ap = argparse.ArgumentParser()
ap.add_argument("bundles", nargs="+")
ap.add_argument("--dims", default=DIMS)
ap.add_argument("--lens", default="4096,16384")
ap.add_argument("--dtypes", default="bf16")
ap.add_argument("--softcap", default="128,256")
ap.add_argument("--causal", default="0,1")
ap.add_argument("--b", type=int, default=4)
ap.add_argument("--h", type=int, default=16)
ap.add_argument("--no-peers", action="store_true")
ap.add_argument("--json")
ap.add_argument("--md")
ap.add_argument("--plot")
a = ap.parse_args()

DT = {"bf16": torch.bfloat16, "f16": torch.float16}
props = torch.cuda.get_device_properties(0)
print(torch.__version__, props.name, props.multi_processor_count, "SMs", flush=True)
bundles = []
for spec in a.bundles:
    name, _, path = spec.rpartition("=")
    bundles.append((name or "flashmlir", Runtime(path)))
main = bundles[0][0]


def parse_dim(s):
    d, _, dv = s.partition("x")
    return int(d), int(dv or d)


def flops(N, d, dv, causal, what):
    pair = 2 * (d + dv) if what == "fwd" else 2 * (d + dv) + 2 * (3 * d + 2 * dv)
    f = a.b * a.h * N * N * pair
    return f / 2 if causal else f


def bench(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def tflops(fl, ms):
    return round(fl / ms / 1e9, 1)


rows = []
for dtn in a.dtypes.split(","):
    dt = DT[dtn]
    for ds in a.dims.split(","):
        d, dv = parse_dim(ds)
        for N in map(int, a.lens.split(",")):
            for causal in (bool(int(c)) for c in a.causal.split(",")):
                caps = [0.0] + ([30.0] if str(d) in a.softcap.split(",") and d == dv else [])
                torch.manual_seed(0)
                q = torch.randn(a.b, a.h, N, d, device="cuda", dtype=dt, requires_grad=True)
                k = torch.randn(a.b, a.h, N, d, device="cuda", dtype=dt, requires_grad=True)
                v = torch.randn(a.b, a.h, N, dv, device="cuda", dtype=dt, requires_grad=True)
                g = torch.randn(a.b, a.h, N, dv, device="cuda", dtype=dt)
                ff, fb = flops(N, d, dv, causal, "fwd"), flops(N, d, dv, causal, "fwdbwd")
                for cap in caps:
                    row = dict(dtype=dtn, d=d, dv=dv, N=N, B=a.b, H=a.h, causal=causal, softcap=cap)
                    for name, rt in bundles:
                        try:
                            kw = dict(causal=causal, softcap=cap)
                            rt.forward(q, k, v, **kw)
                            row[name + "_fwd"] = tflops(ff, bench(lambda: rt.forward(q, k, v, **kw)))
                            row[name + "_fwdbwd"] = tflops(fb, bench(
                                lambda: rt.backward(q, k, v, *rt.forward(q, k, v, **kw), g, **kw)))
                        except Exception as e:
                            row[name + "_fwd"] = "error: " + str(e).splitlines()[0][:100]
                    if cap == 0.0 and not a.no_peers:
                        for pn, be in (("fa2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                            try:
                                with sdpa_kernel(be):
                                    fw = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                                    fw()
                                    row[pn + "_fwd"] = tflops(ff, bench(fw))
                                    row[pn + "_fwdbwd"] = tflops(fb, bench(lambda: torch.autograd.grad(fw(), (q, k, v), g)))
                            except Exception as e:
                                row[pn + "_fwd"] = "error: " + str(e).splitlines()[0][:100]
                    print(json.dumps(row), flush=True)
                    r_ = lambda k: row.get(k) if isinstance(row.get(k), (int, float)) else "-"
                    print(f"ROW {dtn} d{d}/{dv} N={N} c={int(causal)} sc={cap:g}: "
                          + " ".join(f"{n}={r_(n + '_fwd')}/{r_(n + '_fwdbwd')}"
                                     for n in [b[0] for b in bundles] + ["fa2", "cudnn"]), flush=True)
                    rows.append(row)
                del q, k, v, g
                torch.cuda.empty_cache()


def num(r, key):
    x = r.get(key)
    return x if isinstance(x, (int, float)) else None


def ratio2(r, base, key):
    x, y = num(r, key), num(base, key)
    return f"{x / y:.2f}" if x and y else "-"


def ratio(r, a_, b_):
    x, y = num(r, a_), num(r, b_)
    return f"{x / y:.2f}" if x and y else "-"


lines = ["| dtype | D / Dv | N | causal | softcap | FlashMLIR fwd | FA2 | cuDNN | vs FA2 | vs cuDNN "
         "| FlashMLIR fwd+bwd | FA2 | cuDNN | vs FA2 | vs cuDNN |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    c = lambda k: str(r.get(k, "-")) if not str(r.get(k, "")).startswith("error") else "err"
    dd = f"{r['d']}" if r["d"] == r["dv"] else f"{r['d']} / {r['dv']}"
    lines.append(f"| {r['dtype']} | {dd} | {r['N']} | {int(r['causal'])} | {r['softcap'] or '-'} "
                 f"| {c(main + '_fwd')} | {c('fa2_fwd')} | {c('cudnn_fwd')} | {ratio(r, main + '_fwd', 'fa2_fwd')} "
                 f"| {ratio(r, main + '_fwd', 'cudnn_fwd')} | {c(main + '_fwdbwd')} | {c('fa2_fwdbwd')} "
                 f"| {c('cudnn_fwdbwd')} | {ratio(r, main + '_fwdbwd', 'fa2_fwdbwd')} "
                 f"| {ratio(r, main + '_fwdbwd', 'cudnn_fwdbwd')} |")
table = "\n".join(lines)
print(table)
# Softcap: the same shape with and without it.
for r in rows:
    if r["softcap"]:
        base = next((x for x in rows if x["softcap"] == 0 and all(x[k] == r[k] for k in ("dtype", "d", "dv", "N", "causal"))), None)
        if base:
            print(f"softcap {r['dtype']} d{r['d']} N={r['N']} causal={int(r['causal'])}: "
                  f"fwd {ratio2(r, base, main + '_fwd')}x, "
                  f"fwd+bwd {ratio2(r, base, main + '_fwdbwd')}x of no softcap")
if len(bundles) > 1:
    for name, _ in bundles[1:]:
        for what in ("fwd", "fwdbwd"):
            rs = sorted(num(r, main + "_" + what) / num(r, name + "_" + what) for r in rows
                        if num(r, main + "_" + what) and num(r, name + "_" + what))
            if rs:
                print(f"A/B {main} / {name} {what}: median {rs[len(rs) // 2]:.3f} (min {rs[0]:.3f}, max {rs[-1]:.3f}, n={len(rs)})")
if a.json:
    json.dump(dict(device=props.name, torch=torch.__version__, date=time.strftime("%Y-%m-%d"), rows=rows),
              open(a.json, "w"), indent=1)
if a.md:
    open(a.md, "w").write(table + "\n")
if a.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lens = sorted({r["N"] for r in rows})
    fig, axes = plt.subplots(2, 2 * len(lens), figsize=(5 * 2 * len(lens), 8), squeeze=False)
    for i, what in enumerate(("fwd", "fwdbwd")):
        for j, (N, causal) in enumerate((n, c) for n in lens for c in (False, True)):
            ax = axes[i][j]
            sel = [r for r in rows if r["N"] == N and r["causal"] == causal and not r["softcap"] and r["dtype"] == a.dtypes.split(",")[0]]
            xs = [f"{r['d']}" if r["d"] == r["dv"] else f"{r['d']}/{r['dv']}" for r in sel]
            for k_, lab in ((main, "FlashMLIR"), ("fa2", "FA2 (SDPA flash)"), ("cudnn", "cuDNN (SDPA)")):
                ys = [num(r, k_ + "_" + what) or 0 for r in sel]
                ax.plot(range(len(xs)), ys, marker="o", label=lab)
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels(xs, rotation=60, fontsize=7)
            ax.set_title(f"{'fwd' if what == 'fwd' else 'fwd+bwd'}, N={N}{', causal' if causal else ''}", fontsize=10)
            ax.set_ylabel("TFLOP/s")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{props.name}, {a.dtypes.split(',')[0]}, B={a.b}, H={a.h}: head-dim sweep", fontsize=11)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=100)
    print("wrote", a.plot)
