#!/usr/bin/env python3
"""Backward (or, with --fwd, forward) kernels side by side under Nsight
Compute (or plain timing).

usage: profile_bwd.py BUNDLE [--d 64,128] [--n 4096] [--causal 0,1]
                              [--dtype bf16] [--iters 3] [--fwd]

For every (d, causal) case: one forward, then `--iters` backward passes of
the bundle (attn_bwd_pre/main/post) and of SDPA's flash backend
(FlashAttention-2: flash_bwd_dot_do_o / flash_bwd_dq_dk_dv / convert_dq),
with B*N = 16k tokens and H = 2048/d, on fresh random inputs. Run it under
`ncu --kernel-name regex:'attn_bwd_main|flash_bwd_dq_dk_dv' ...` to compare
the two main kernels; without ncu it prints per-kernel-set medians (cuda
events) so the same script is a quick backward-only benchmark.
"""
import argparse, os, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402

DT = {"f16": torch.float16, "bf16": torch.bfloat16}


def time_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--d", default="64,128")
    ap.add_argument("--n", default="4096")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--fwd", action="store_true",
                    help="time / profile the forward kernels instead (attn_fwd vs flash_fwd_kernel)")
    a = ap.parse_args()
    rt = Runtime(a.bundle)
    dt = DT[a.dtype]
    torch.manual_seed(0)
    what = "forward" if a.fwd else "backward"
    print(f"{'case':28s} {'ours ms':>9s} {'FA2 ms':>9s} {'ratio':>6s}  ({what} only, median of {a.iters})")
    for d in map(int, a.d.split(",")):
        for n in map(int, a.n.split(",")):
            for causal in map(int, a.causal.split(",")):
                B, H = max(1, 16384 // n), 2048 // d
                q, k, v, do = (torch.randn(B, H, n, d, device="cuda", dtype=dt) for _ in range(4))
                if a.fwd:  # no other forward launch: ours (warm-up, iters), then FA2's
                    o, lse = torch.empty_like(q), torch.empty(B, H, n, device="cuda")
                    ours = lambda: rt.forward(q, k, v, causal=bool(causal), out=o, lse=lse)
                    fa2 = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
                    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                        t1, t2 = time_ms(ours, a.iters), time_ms(fa2, a.iters)
                    print(f"{a.dtype} d{d} N{n} B{B} H{H} c{causal}      {t1:9.3f} {t2:9.3f} {t2 / t1:6.2f}")
                    continue
                o, lse = rt.forward(q, k, v, causal=bool(causal))
                dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
                ours = lambda: rt.backward(q, k, v, o, lse, do, causal=bool(causal), dq=dq, dk=dk, dv=dv)
                qr, kr, vr = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
                with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                    out = F.scaled_dot_product_attention(qr, kr, vr, is_causal=bool(causal))
                fa2 = lambda: torch.autograd.grad(out, (qr, kr, vr), do, retain_graph=True)
                t1, t2 = time_ms(ours, a.iters), time_ms(fa2, a.iters)
                print(f"{a.dtype} d{d} N{n} B{B} H{H} c{causal}      {t1:9.3f} {t2:9.3f} {t2 / t1:6.2f}")


if __name__ == "__main__":
    main()
