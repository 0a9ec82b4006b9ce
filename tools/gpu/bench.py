#!/usr/bin/env python3
"""Side-by-side attention benchmark on one GPU, in one process: FlashMLIR
(through the runtime), PyTorch SDPA's flash (FlashAttention-2) and cuDNN
backends, and FlexAttention (Triton, torch.compile; forward only).

Shapes follow ../shared/peers/peers.py: bf16, batch*seqlen = 16k tokens,
hidden 2048 (heads = 2048/d). FLOPs: forward 4*B*H*Nq*Nk*d, halved when
causal; fwd+bwd = 3.5x forward. Times: medians of CUDA-event timings
(triton.testing.do_bench) after warm-up.

usage: bench.py BUNDLE [--json OUT] [--md OUT] [--plot OUT.png] [--dims 64,128]
                [--lens 1024,4096,16384]
"""
import argparse, json, os, sys
import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--json")
ap.add_argument("--md")
ap.add_argument("--plot", help="PNG of TFLOP/s against N (needs matplotlib)")
ap.add_argument("--dims", default="64,128")
ap.add_argument("--lens", default="1024,4096,16384")
ap.add_argument("--no-flex", action="store_true")
a = ap.parse_args()

torch._dynamo.config.cache_size_limit = 256
props = torch.cuda.get_device_properties(0)
print(torch.__version__, props.name, props.multi_processor_count, "SMs", flush=True)
rt = Runtime(a.bundle)
flex = None
if not a.no_flex:
    from torch.nn.attention.flex_attention import flex_attention, create_block_mask
    flex = torch.compile(flex_attention)


def flops(B, H, N, d, causal):
    f = 4 * B * H * N * N * d
    return f / 2 if causal else f


def bench(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


rows = []
for d in map(int, a.dims.split(",")):
    for N in map(int, a.lens.split(",")):
        for causal in (False, True):
            H = 2048 // d
            B = max(1, 16384 // N)
            q, k, v = (torch.randn(B, H, N, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
            g = torch.randn_like(q)
            fl = flops(B, H, N, d, causal)
            row = dict(dtype="bf16", d=d, N=N, B=B, H=H, causal=causal)
            # FlashMLIR
            try:
                o, lse = rt.forward(q, k, v, causal=causal)
                t = bench(lambda: rt.forward(q, k, v, causal=causal))
                row["flashmlir_fwd"] = round(fl / t / 1e9, 1)
                tb = bench(lambda: rt.backward(q, k, v, *rt.forward(q, k, v, causal=causal), g, causal=causal))
                row["flashmlir_fwdbwd"] = round(3.5 * fl / tb / 1e9, 1)
            except Exception as e:
                row["flashmlir_fwd"] = "error: " + str(e).splitlines()[0][:80]
            for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                try:
                    with sdpa_kernel(be):
                        fw = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        fw()
                        t = bench(fw)
                        row[name + "_fwd"] = round(fl / t / 1e9, 1)
                        tb = bench(lambda: torch.autograd.grad(fw(), (q, k, v), g))
                        row[name + "_fwdbwd"] = round(3.5 * fl / tb / 1e9, 1)
                except Exception as e:
                    row[name + "_fwd"] = "error: " + str(e).splitlines()[0][:80]
            if flex is not None:
                try:
                    bm = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, N, N) if causal else None
                    fw = lambda: flex(q, k, v, block_mask=bm)
                    fw()
                    t = bench(fw)
                    row["flex_fwd"] = round(fl / t / 1e9, 1)
                    # (forward only, as in ../shared/peers/peers.py: compiling
                    # Flex's backward per shape costs minutes)
                except Exception as e:
                    row["flex_fwd"] = "error: " + str(e).splitlines()[0][:80]
            print(json.dumps(row), flush=True)
            rows.append(row)
            del q, k, v, g

if a.json:
    json.dump(dict(device=props.name, torch=torch.__version__, rows=rows), open(a.json, "w"), indent=1)
cols = ["flashmlir", "flash", "cudnn", "flex"]
lines = ["| d | N | causal | " + " | ".join(f"{c} fwd" for c in cols) + " | " + " | ".join(f"{c} fwd+bwd" for c in cols) + " |",
         "|---|---|---|" + "---|" * (2 * len(cols))]
for r in rows:
    cell = lambda key: str(r.get(key, "-")) if not str(r.get(key, "")).startswith("error") else "err"
    lines.append(f"| {r['d']} | {r['N']} | {r['causal']} | " + " | ".join(cell(c + "_fwd") for c in cols)
                 + " | " + " | ".join(cell(c + "_fwdbwd") for c in cols) + " |")
table = "\n".join(lines)
print(table)
if a.md:
    open(a.md, "w").write(table + "\n")
if a.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dims = sorted({r["d"] for r in rows})
    fig, axes = plt.subplots(2, 2 * len(dims), figsize=(4.2 * 2 * len(dims), 7), squeeze=False)
    names = dict(flashmlir="FlashMLIR", flash="FA2 (SDPA flash)", cudnn="cuDNN (SDPA)", flex="FlexAttention")
    for i, what in enumerate(("fwd", "fwdbwd")):
        for j, (d, causal) in enumerate((d, c) for d in dims for c in (False, True)):
            ax = axes[i][j]
            sel = sorted((r for r in rows if r["d"] == d and r["causal"] == causal), key=lambda r: r["N"])
            for c in cols:
                pts = [(r["N"], r[c + "_" + what]) for r in sel if isinstance(r.get(c + "_" + what), (int, float))]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=names[c])
            ax.set_xscale("log", base=2)
            ax.set_title(f"{'fwd' if what == 'fwd' else 'fwd+bwd'}, d={d}{', causal' if causal else ''}", fontsize=10)
            ax.set_xlabel("N")
            ax.set_ylabel("TFLOP/s")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{props.name}, bf16, {torch.__version__}: batch*N = 16k tokens, hidden 2048", fontsize=11)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=110)
    print("wrote", a.plot)
