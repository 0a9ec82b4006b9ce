#!/usr/bin/env python3
"""Tables and a plot from tools/gpu/headdims.py JSON files (no GPU needed).

usage: headdims_report.py RESULT.json [RESULT.json ...] [--md OUT.md] [--plot OUT.png]
Prints, per dtype, the head-dim sweep with FlashMLIR / FA2 and FlashMLIR /
cuDNN ratios (forward and forward+backward), the minimum ratios per head dim,
and the softcap rows against the same shape without softcap."""
import argparse, json

ap = argparse.ArgumentParser()
ap.add_argument("results", nargs="+")
ap.add_argument("--md")
ap.add_argument("--plot")
a = ap.parse_args()
rows, meta = [], []
for path in a.results:
    j = json.load(open(path))
    meta.append(f"{j['device']}, torch {j['torch']}, {j.get('date', '')}")
    rows += j["rows"]


def num(r, k):
    x = r.get(k)
    return x if isinstance(x, (int, float)) else None


def ratio(x, y):
    return f"{x / y:.2f}" if x and y else "-"


def dims(r):
    return f"{r['d']}" if r["d"] == r["dv"] else f"{r['d']} / {r['dv']}"


out = [f"Device: {meta[0]}. B = 4, H = 16; TFLOP/s, medians of CUDA-event timings (one process).", ""]
for dt in sorted({r["dtype"] for r in rows}):
    out += [f"**{dt}**", "",
            "| D / Dv | N | causal | fwd | FA2 | cuDNN | vs FA2 | vs cuDNN | fwd+bwd | FA2 | cuDNN | vs FA2 | vs cuDNN |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["dtype"] != dt or r["softcap"]:
            continue
        f, fb = num(r, "flashmlir_fwd"), num(r, "flashmlir_fwdbwd")
        out.append(f"| {dims(r)} | {r['N']} | {int(r['causal'])} | {f} | {r.get('fa2_fwd', '-')} | "
                   f"{r.get('cudnn_fwd', '-')} | {ratio(f, num(r, 'fa2_fwd'))} | {ratio(f, num(r, 'cudnn_fwd'))} | "
                   f"{fb} | {r.get('fa2_fwdbwd', '-')} | {r.get('cudnn_fwdbwd', '-')} | "
                   f"{ratio(fb, num(r, 'fa2_fwdbwd'))} | {ratio(fb, num(r, 'cudnn_fwdbwd'))} |")
    out.append("")
out += ["**Minimum ratio per head dim** (over N = 4096 / 16384, causal and not; both dtypes)", "",
        "| D / Dv | fwd / FA2 | fwd+bwd / FA2 | fwd / cuDNN | fwd+bwd / cuDNN |", "|---|---|---|---|---|"]
for key in dict.fromkeys((r["d"], r["dv"]) for r in rows):
    sel = [r for r in rows if (r["d"], r["dv"]) == key and not r["softcap"]]
    def mn(a_, b_):
        v = [num(r, a_) / num(r, b_) for r in sel if num(r, a_) and num(r, b_)]
        return f"{min(v):.2f}" if v else "-"
    out.append(f"| {key[0] if key[0] == key[1] else f'{key[0]} / {key[1]}'} | {mn('flashmlir_fwd', 'fa2_fwd')} | "
               f"{mn('flashmlir_fwdbwd', 'fa2_fwdbwd')} | {mn('flashmlir_fwd', 'cudnn_fwd')} | "
               f"{mn('flashmlir_fwdbwd', 'cudnn_fwdbwd')} |")
sc = [r for r in rows if r["softcap"]]
if sc:
    out += ["", "**Softcap 30** against the same shape without softcap (FlashMLIR only)", "",
            "| dtype | D | N | causal | fwd | fwd+bwd |", "|---|---|---|---|---|---|"]
    for r in sc:
        base = next(x for x in rows if not x["softcap"] and all(x[k] == r[k] for k in ("dtype", "d", "dv", "N", "causal")))
        out.append(f"| {r['dtype']} | {r['d']} | {r['N']} | {int(r['causal'])} | "
                   f"{ratio(num(r, 'flashmlir_fwd'), num(base, 'flashmlir_fwd'))} | "
                   f"{ratio(num(r, 'flashmlir_fwdbwd'), num(base, 'flashmlir_fwdbwd'))} |")
text = "\n".join(out)
print(text)
if a.md:
    open(a.md, "w").write(text + "\n")
if a.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dt0 = sorted({r["dtype"] for r in rows})[0]
    cases = [(n, c) for n in sorted({r["N"] for r in rows}) for c in (False, True)]
    fig, axes = plt.subplots(2, len(cases), figsize=(5 * len(cases), 8), squeeze=False)
    for i, what in enumerate(("fwd", "fwdbwd")):
        for j, (N, causal) in enumerate(cases):
            ax = axes[i][j]
            sel = [r for r in rows if r["N"] == N and r["causal"] == causal and not r["softcap"] and r["dtype"] == dt0]
            xs = [dims(r) for r in sel]
            for k, lab in (("flashmlir", "FlashMLIR"), ("fa2", "FA2 (SDPA flash)"), ("cudnn", "cuDNN (SDPA)")):
                ys = [num(r, k + "_" + what) for r in sel]
                ax.plot([x for x, y in zip(range(len(xs)), ys) if y], [y for y in ys if y], marker="o", label=lab)
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels(xs, rotation=60, fontsize=7)
            ax.set_title(f"{'fwd' if what == 'fwd' else 'fwd+bwd'}, N={N}{', causal' if causal else ''}", fontsize=10)
            ax.set_ylabel("TFLOP/s")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{meta[0]}: {dt0}, B=4, H=16, head-dim sweep", fontsize=11)
    fig.tight_layout()
    fig.savefig(a.plot, dpi=90)
    print("wrote", a.plot)
