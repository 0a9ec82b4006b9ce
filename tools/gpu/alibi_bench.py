#!/usr/bin/env python3
"""ALiBi on the GPU kernels: its cost and the peer, in one process. For each
shape: FlashMLIR without and with `alibi_slopes` (the plain and the `_alibi`
kernels), FlexAttention with ALiBi as a `score_mod` (torch.compile; its block
mask for causal), and SDPA's flash backend without ALiBi as the speed line
(SDPA has no ALiBi but a dense float bias, which forces another backend and
O(N^2) memory). Forward and forward+backward, bf16, slopes 2^(-8 (h+1) / H)
(the ALiBi paper's). Before timing, each ALiBi output is compared with
FlexAttention's (max |diff|). Medians of CUDA-event timings over batches of
back-to-back calls.

usage: alibi_bench.py [--json FILE]
"""
import argparse, json, os, sys

import torch

import flashmlir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import sdpa_flash_ms, timed  # noqa: E402

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    flex = torch.compile(flex_attention, dynamic=False)
except Exception as e:  # noqa: BLE001
    print(f"FlexAttention unavailable: {e}")
    flex = None


def median_ms(fn):
    return timed(fn, reps=15, warmup=5, batch=5)


def flex_rows(rows, q, k, v, do, slopes, off, Hq, Hkv, Nq, Nk, causal, backward):
    """FlexAttention with ALiBi as a score_mod: max |diff| against FlashMLIR and
    its median time."""
    def score_mod(score, b, h, qi, kj):
        return score - slopes[h] * (qi + off - kj).abs()

    bm = None
    if causal:
        bm = create_block_mask(lambda b, h, qi, kj: kj <= qi + off, None, None, Nq, Nk,
                               device="cuda")
    gqa = Hq != Hkv
    o_flex = flex(q, k, v, score_mod=score_mod, block_mask=bm, enable_gqa=gqa)
    o_fm = flashmlir.attention(q, k, v, causal=causal, alibi_slopes=slopes)
    rows["max_diff_vs_flex"] = (o_flex.float() - o_fm.float()).abs().max().item()
    if backward:
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        rows["flex"] = median_ms(lambda: flex(qq, kk, vv, score_mod=score_mod, block_mask=bm,
                                              enable_gqa=gqa).backward(do))
    else:
        rows["flex"] = median_ms(lambda: flex(q, k, v, score_mod=score_mod, block_mask=bm,
                                              enable_gqa=gqa))


def case(name, B, Hq, Hkv, Nq, Nk, D, causal, backward):
    g = torch.Generator(device="cuda").manual_seed(0)
    mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.bfloat16, generator=g)
    q, k, v = mk(B, Hq, Nq, D), mk(B, Hkv, Nk, D), mk(B, Hkv, Nk, D)
    do = mk(B, Hq, Nq, D)
    slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / Hq) for h in range(Hq)], device="cuda")
    off = Nk - Nq
    rows = {}

    def fm(kw):
        if backward:
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))

            def fn():
                flashmlir.attention(qq, kk, vv, causal=causal, **kw).backward(do)
        else:
            def fn():
                flashmlir.attention(q, k, v, causal=causal, **kw)
        return fn

    rows["none"] = median_ms(fm({}))
    rows["alibi"] = median_ms(fm(dict(alibi_slopes=slopes)))
    if flex is not None:
        try:
            flex_rows(rows, q, k, v, do, slopes, off, Hq, Hkv, Nq, Nk, causal, backward)
        except Exception as e:  # noqa: BLE001
            print(f"  FlexAttention failed on {name}: {type(e).__name__}: {str(e)[:200]}")
    rows["sdpa_flash_no_alibi"] = sdpa_flash_ms(q, k, v, do, causal, backward, median_ms)
    rows["none/alibi"] = rows["none"] / rows["alibi"]
    if "flex" in rows:
        rows["flex/alibi"] = rows["flex"] / rows["alibi"]
    print(f"ALIBI {name:40s} none {rows['none']:8.3f}  alibi {rows['alibi']:8.3f} ms "
          f"(none/alibi {rows['none/alibi']:.3f})  flex {rows.get('flex', float('nan')):8.3f} "
          f"(flex/alibi {rows.get('flex/alibi', float('nan')):.2f}, max|diff| "
          f"{rows.get('max_diff_vs_flex', float('nan')):.2e})  sdpa_flash(no alibi) "
          f"{rows['sdpa_flash_no_alibi']:8.3f}", flush=True)
    return name, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    a = ap.parse_args()
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    out = {}
    for backward in (False, True):
        tag = "fwd+bwd" if backward else "fwd"
        for args in (("B4 H16 N4096 d128 causal", 4, 16, 16, 4096, 4096, 128, True),
                     ("B4 H16 N4096 d128", 4, 16, 16, 4096, 4096, 128, False),
                     ("B8 H16 N2048 d64 causal", 8, 16, 16, 2048, 2048, 64, True)):
            name, rows = case(f"{args[0]} {tag}", *args[1:], backward)
            out[name] = rows
        if not backward:  # decode (split-KV)
            for args in (("decode B8 H32/8 8k d128", 8, 32, 8, 1, 8192, 128, False),):
                name, rows = case(args[0], *args[1:], False)
                out[name] = rows
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
