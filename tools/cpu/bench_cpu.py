#!/usr/bin/env python3
"""FlashMLIR's CPU kernels against PyTorch's CPU scaled_dot_product_attention.

usage: bench_cpu.py [--n 512,2048,8192] [--d 64,128] [--reps 5]
                    [--threads 2] [--old-fa-run PATH] [--json OUT]

Both run in this one process on the same f32 inputs (torch tensors and NumPy
views of their memory), on the same number of threads (torch.set_num_threads
and FLASHMLIR_NUM_THREADS). Each configuration runs --rounds rounds; a round
times each of the four functions (FlashMLIR and torch, forward and
forward+backward) --reps times in a row after a warm-up call, so a noisy
period hits both sides, and no call runs while the other library's threads
are still spinning after their last call (PyTorch's OpenMP workers busy-wait
for a while after each parallel region). Each time is the median of all its
calls. B = 1,
H = 8; forward and forward+backward, causal and not. GFLOP/s use
FlashAttention's count (4 B H N^2 D forward, halved when causal; 3.5x that
for forward+backward), as fa-run does.

--old-fa-run times another fa-run binary (an older FlashMLIR) in a
subprocess (`--bench`, median of its --reps) on the same configurations;
--old-times reads such times from a file instead.

Needs torch (CPU) and the flashmlir package; neither is a dependency of the
project's tests.
"""

import argparse
import json
import os
import statistics
import subprocess
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="512,2048,8192")
    ap.add_argument("--d", default="64,128")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--old-fa-run", default=None)
    ap.add_argument("--old-reps", type=int, default=1)
    ap.add_argument("--old-max-n", type=int, default=1 << 30,
                    help="time the old fa-run only up to this length")
    ap.add_argument("--old-times", default=None,
                    help="a file of 'N D causal|nc FWD_MS BWD_MS' lines (the "
                         "old fa-run's times measured separately)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="the machine's f32 peak (tools/cpu/fma_peak.c) for "
                         "the markdown table's %% of peak")
    ap.add_argument("--probe", default=None,
                    help="a command printing the machine's GFLOP/s right now "
                         "(e.g. a compiled tools/cpu/fma_peak.c with the thread "
                         "count), run before and after each configuration: on "
                         "a shared machine it shows which rows ran while other "
                         "work was using the cores")
    ap.add_argument("--markdown", action="store_true",
                    help="end with the rows as a markdown table")
    args = ap.parse_args()

    os.environ["FLASHMLIR_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch
    import flashmlir
    from flashmlir import _cpu

    torch.set_num_threads(args.threads)
    old_times = {}
    if args.old_times:
        for line in open(args.old_times):
            f = line.split()
            if len(f) == 5:
                old_times[(int(f[0]), int(f[1]), f[2] != "nc")] = (
                    float(f[3]), float(f[3]) + float(f[4]))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    def probe():
        if not args.probe:
            return None
        out = subprocess.run(args.probe, shell=True, capture_output=True,
                             text=True).stdout.split()
        nums = [float(x) for x in out if x.replace(".", "", 1).isdigit()]
        return nums[-1] if nums else None

    rows = []
    for n in [int(x) for x in args.n.split(",")]:
        for d in [int(x) for x in args.d.split(",")]:
            for causal in [bool(int(x)) for x in args.causal.split(",")]:
                probe_before = probe()
                g = torch.Generator().manual_seed(n * 1000 + d + causal)
                q, k, v, do = [torch.randn(1, 8, n, d, generator=g)
                               for _ in range(4)]
                qn, kn, vn, don = [t.numpy() for t in (q, k, v, do)]
                t0 = time.perf_counter()
                kern = _cpu.get_kernel(0, d, d, d ** -0.5, causal, -1,
                                       0 if causal else -1, 0.0)
                o, lse = kern.forward(qn, kn, vn)
                kern.backward(qn, kn, vn, o, lse, don)
                first = time.perf_counter() - t0

                def fa_fwd():
                    kern.forward(qn, kn, vn)

                def fa_fb():
                    o, lse = kern.forward(qn, kn, vn)
                    kern.backward(qn, kn, vn, o, lse, don)

                def t_fwd():
                    with torch.no_grad():
                        sdpa(q, k, v, is_causal=causal)

                qg, kg, vg = [t.clone().requires_grad_() for t in (q, k, v)]

                def t_fb():
                    out = sdpa(qg, kg, vg, is_causal=causal)
                    out.backward(do)

                times = {"fa_fwd": [], "t_fwd": [], "fa_fb": [], "t_fb": []}
                fns = {"fa_fwd": fa_fwd, "t_fwd": t_fwd, "fa_fb": fa_fb,
                       "t_fb": t_fb}
                reps = args.reps if n < 8192 else max(2, args.reps // 2)
                for _ in range(args.rounds):
                    for name, f in fns.items():
                        f()  # warm-up
                        for _ in range(reps):
                            t = time.perf_counter()
                            f()
                            times[name].append(time.perf_counter() - t)
                med = {name: statistics.median(ts) for name, ts in times.items()}
                flops = 4.0 * 8 * n * n * d * (0.5 if causal else 1.0)
                row = {"n": n, "d": d, "causal": causal, "first_call_s": first,
                       "loadavg_1min": os.getloadavg()[0],
                       "probe_gflops": (probe_before, probe()),
                       "flashmlir_fwd_ms": med["fa_fwd"] * 1e3,
                       "torch_fwd_ms": med["t_fwd"] * 1e3,
                       "flashmlir_fwdbwd_ms": med["fa_fb"] * 1e3,
                       "torch_fwdbwd_ms": med["t_fb"] * 1e3,
                       "flashmlir_fwd_gflops": flops / med["fa_fwd"] / 1e9,
                       "flashmlir_fwdbwd_gflops": 3.5 * flops / med["fa_fb"] / 1e9,
                       "torch_fwd_gflops": flops / med["t_fwd"] / 1e9,
                       "torch_fwdbwd_gflops": 3.5 * flops / med["t_fb"] / 1e9}
                if (n, d, causal) in old_times:
                    row["old_fwd_ms"], row["old_fwdbwd_ms"] = old_times[(n, d, causal)]
                elif args.old_fa_run and n <= args.old_max_n:
                    cmd = [args.old_fa_run, "--device", "cpu", "--dtype", "f32",
                           "--batch", "1", "--heads", "8", "--seqlen-q", str(n),
                           "--head-dim", str(d), "--backward", "--bench",
                           "--reps", str(args.old_reps), "--json"]
                    if causal:
                        cmd.append("--causal")
                    out = subprocess.run(cmd, capture_output=True, text=True,
                                         check=True)
                    j = json.loads(out.stdout.splitlines()[-1])
                    row["old_fwd_ms"] = j["ms_fwd"]
                    row["old_fwdbwd_ms"] = j["ms_fwd"] + j["ms_bwd"]
                rows.append(row)
                line = (f"N={n:5d} d={d:3d} causal={int(causal)}  "
                        f"fwd: flashmlir {row['flashmlir_fwd_ms']:9.2f} ms "
                        f"({row['flashmlir_fwd_gflops']:5.0f} GF/s)  torch "
                        f"{row['torch_fwd_ms']:9.2f} ms  x{med['t_fwd'] / med['fa_fwd']:.2f}"
                        f"   fwd+bwd: flashmlir {row['flashmlir_fwdbwd_ms']:9.2f} ms "
                        f"({row['flashmlir_fwdbwd_gflops']:5.0f} GF/s)  torch "
                        f"{row['torch_fwdbwd_ms']:9.2f} ms  x{med['t_fb'] / med['fa_fb']:.2f}"
                        f"   first call {first:.2f} s   load {os.getloadavg()[0]:.1f}"
                        f"   probe {row['probe_gflops']}")
                if "old_fwd_ms" in row:
                    line += (f"   old {row['old_fwd_ms']:.0f} / "
                             f"{row['old_fwdbwd_ms']:.0f} ms")
                print(line, flush=True)
    if args.markdown:
        print(markdown(rows, args.peak_gflops))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "torch": torch.__version__,
                       "rows": rows}, f, indent=1)


def markdown(rows, peak):
    """One line per configuration and pass: times, ratios, GFLOP/s."""
    out = ["| config | pass | PyTorch SDPA | old FlashMLIR | FlashMLIR | "
           "vs PyTorch | vs old | GFLOP/s | % of peak |",
           "|---|---|---|---|---|---|---|---|---|"]

    def ms(x):
        return f"{x:,.1f} ms" if x < 1000 else f"{x / 1000:,.2f} s"

    for r in rows:
        cfg = f"N={r['n']} d={r['d']}{' causal' if r['causal'] else ''}"
        for key, name in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
            new, torch_ms = r[f"flashmlir_{key}_ms"], r[f"torch_{key}_ms"]
            old = r.get(f"old_{key}_ms")
            gf = r[f"flashmlir_{key}_gflops"]
            out.append(
                f"| {cfg} | {name} | {ms(torch_ms)} | "
                f"{ms(old) if old else '-'} | {ms(new)} | "
                f"{torch_ms / new:.2f}x | {f'{old / new:.0f}x' if old else '-'} | "
                f"{gf:.0f} | {f'{100 * gf / peak:.0f}%' if peak else '-'} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
