#!/usr/bin/env python3
"""Host time per call (no GPU wait): FlashMLIR through the bench wrapper
(runtime/bench/fa_torch.py), through the Python package (flashmlir.attention,
torch custom op with autograd) and SDPA's flash backend, on a tiny problem
(B=1, H=1, N=128, d=64, bf16) so that the GPU never holds the host back.

usage: host_overhead.py BUNDLE [--calls 3000]
"""
import argparse, os, sys, time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from fa_torch import Runtime  # noqa: E402


def per_call_us(fn, calls):
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    dt = time.perf_counter() - t
    torch.cuda.synchronize()
    return dt / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--calls", type=int, default=3000)
    a = ap.parse_args()
    os.environ.setdefault("FLASHMLIR_BUNDLE", os.path.abspath(a.bundle))
    rt = Runtime(a.bundle)
    q, k, v = (torch.randn(1, 1, 128, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    o, lse = torch.empty_like(q), torch.empty(1, 1, 128, device="cuda")
    rows = {"fa_torch Runtime.forward (out given)": lambda: rt.forward(q, k, v, out=o, lse=lse),
            "fa_torch Runtime.forward": lambda: rt.forward(q, k, v)}
    try:
        import flashmlir
        rows["flashmlir.attention"] = lambda: flashmlir.attention(q, k, v)
    except Exception as e:  # noqa: BLE001
        print("flashmlir package:", e)

    def sdpa():
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            F.scaled_dot_product_attention(q, k, v)
    rows["SDPA flash (with sdpa_kernel)"] = sdpa
    rows["SDPA default dispatch"] = lambda: F.scaled_dot_product_attention(q, k, v)
    for name, fn in rows.items():
        print(f"HOST {name:40s} {per_call_us(fn, a.calls):8.1f} us/call", flush=True)


if __name__ == "__main__":
    main()
