#!/usr/bin/env python3
"""A/B timing of kernel bundles against FlashAttention-2, in one process.

usage: ab.py NAME=BUNDLE [NAME=BUNDLE ...] [--dims 64,128,256]
             [--lens 1024,4096,16384] [--dtype bf16] [--rounds 2]

For every (d, N, causal): the same fresh random inputs (bf16 unless
--dtype, B*N = 16k tokens, H = 2048/d, [B,H,N,d]) go through SDPA's flash
backend (FlashAttention-2) and every bundle, forward and fwd+bwd; each is
timed with triton.testing.do_bench (median), the whole set `--rounds` times
interleaved, and the median over rounds is reported. FLOPs as
tools/gpu/bench.py (forward 4*B*H*N^2*d, halved when causal; fwd+bwd 3.5x).
Prints one row per config with TFLOP/s and the ratio to FA2 of each bundle,
then the median ratio per bundle. Speed only: correctness is the check
scripts' job (test/GPU/attn-mma-check.py, attn-mma-bwd-check.py,
tools/gpu/check_gpu.py).
"""
import argparse, os, statistics, sys

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
from triton.testing import do_bench

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402

DT = {"f16": torch.float16, "bf16": torch.bfloat16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundles", nargs="+", help="NAME=DIR")
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--lens", default="1024,4096,16384")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DT))
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    variants = []
    for spec in a.bundles:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"expected NAME=BUNDLE, got {spec!r}")
        variants.append((name, Runtime(path)))
    dt = DT[a.dtype]
    props = torch.cuda.get_device_properties(0)
    print(torch.__version__, props.name, props.multi_processor_count, "SMs", a.dtype, flush=True)
    ratios = {n: {"fwd": [], "fb": []} for n, _ in variants}
    for d in map(int, a.dims.split(",")):
        for N in map(int, a.lens.split(",")):
            for causal in (False, True):
                H, B = 2048 // d, max(1, 16384 // N)
                torch.manual_seed(N + d + causal)
                q, k, v, do = (torch.randn(B, H, N, d, device="cuda", dtype=dt) for _ in range(4))
                fl = 4 * B * H * N * N * d / (2 if causal else 1)
                qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

                def fa2_fwd():
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        F.scaled_dot_product_attention(q, k, v, is_causal=causal)

                def fa2_fb():
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal).backward(do)

                fns = {"fa2": (fa2_fwd, fa2_fb)}
                for name, rt in variants:
                    o, lse = torch.empty_like(q), torch.empty(B, H, N, device="cuda")
                    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

                    def fwd(rt=rt, o=o, lse=lse):
                        rt.forward(q, k, v, causal=causal, out=o, lse=lse)

                    def fb(rt=rt, o=o, lse=lse, dq=dq, dk=dk, dv=dv):
                        rt.forward(q, k, v, causal=causal, out=o, lse=lse)
                        rt.backward(q, k, v, o, lse, do, causal=causal, dq=dq, dk=dk, dv=dv)
                    fns[name] = (fwd, fb)
                times = {n: ([], []) for n in fns}
                for _ in range(a.rounds):
                    for n, (fwd, fb) in fns.items():
                        times[n][0].append(do_bench(fwd, warmup=10, rep=60, return_mode="median"))
                        kw = {"grad_to_none": [qg, kg, vg]} if n == "fa2" else {}
                        times[n][1].append(do_bench(fb, warmup=10, rep=60, return_mode="median", **kw))
                tf = {n: (fl / statistics.median(t[0]) / 1e9, 3.5 * fl / statistics.median(t[1]) / 1e9)
                      for n, t in times.items()}
                cells = []
                for n, _ in variants:
                    rf, rb = tf[n][0] / tf["fa2"][0], tf[n][1] / tf["fa2"][1]
                    ratios[n]["fwd"].append(rf)
                    ratios[n]["fb"].append(rb)
                    cells.append(f"{n} {tf[n][0]:6.1f}/{tf[n][1]:6.1f} ({rf:.3f}/{rb:.3f})")
                print(f"AB d={d:3d} N={N:5d} causal={int(causal)} fa2 {tf['fa2'][0]:6.1f}/{tf['fa2'][1]:6.1f} | "
                      + " | ".join(cells), flush=True)
                del q, k, v, do, qg, kg, vg, fns
    for n, r in ratios.items():
        print(f"SUMMARY {n}: fwd / FA2 median {statistics.median(r['fwd']):.3f} "
              f"(min {min(r['fwd']):.3f}, max {max(r['fwd']):.3f}); fwd+bwd / FA2 median "
              f"{statistics.median(r['fb']):.3f} (min {min(r['fb']):.3f}, max {max(r['fb']):.3f})")


if __name__ == "__main__":
    main()
