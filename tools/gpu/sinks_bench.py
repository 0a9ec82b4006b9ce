#!/usr/bin/env python3
"""Attention sinks on the GPU kernels: their cost, in one process. The same
attention with and without `sinks` (flashmlir.attention), forward and
forward+backward, prefill (B=4, H=16, N=4096, causal, d=128, bf16) and
split-KV decode (Nq=1, 32/8 heads, d=128, 8k keys), with SDPA's flash backend
(no sinks) as the peer. Medians of CUDA-event timings over batches of
back-to-back calls (the GPU's time per call).

usage: sinks_bench.py [--json FILE]
"""
import argparse, json, os, sys

import torch

import flashmlir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import sdpa_flash_ms, timed  # noqa: E402


def median_ms(fn):
    return timed(fn, reps=15, warmup=5, batch=10)


def case(name, B, Hq, Hkv, Nq, Nk, D, causal, backward):
    g = torch.Generator(device="cuda").manual_seed(0)
    mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.bfloat16, generator=g)
    q, k, v = mk(B, Hq, Nq, D), mk(B, Hkv, Nk, D), mk(B, Hkv, Nk, D)
    sk = torch.randn(Hq, device="cuda", generator=g)
    do = mk(B, Hq, Nq, D)
    rows = {}
    for label, kw in (("none", {}), ("sinks", dict(sinks=sk))):
        if backward:
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
            s2 = sk.clone().requires_grad_() if kw else None
            kw2 = dict(sinks=s2) if kw else {}

            def fn():
                o = flashmlir.attention(qq, kk, vv, causal=causal, **kw2)
                o.backward(do)
        else:
            def fn():
                flashmlir.attention(q, k, v, causal=causal, **kw)
        rows[label] = median_ms(fn)
    rows["sdpa_flash"] = sdpa_flash_ms(q, k, v, do, causal, backward, median_ms)
    rows["ratio"] = rows["none"] / rows["sinks"]
    print(f"SINKS {name:38s} none {rows['none']:8.3f} ms  sinks {rows['sinks']:8.3f} ms  "
          f"(none/sinks {rows['ratio']:.3f})  sdpa_flash {rows['sdpa_flash']:8.3f} ms", flush=True)
    return name, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    a = ap.parse_args()
    out = dict([
        case("prefill fwd B4 H16 N4096 d128 causal", 4, 16, 16, 4096, 4096, 128, True, False),
        case("prefill fwd+bwd B4 H16 N4096 d128 causal", 4, 16, 16, 4096, 4096, 128, True, True),
        case("prefill fwd B4 H16 N4096 d64 GQA16/4", 4, 16, 4, 4096, 4096, 64, False, False),
        case("decode B8 32/8 Nk8192 d128", 8, 32, 8, 1, 8192, 128, False, False),
        case("decode B1 32/8 Nk65536 d128", 1, 32, 8, 1, 65536, 128, False, False),
    ])
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
