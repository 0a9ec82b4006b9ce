#!/usr/bin/env python3
"""Fused RoPE on the GPU kernels: its cost and the unfused alternative, in one
process. For each shape, bf16, GPT-NeoX tables of base 10000 (rotary dim =
head dim): FlashMLIR without RoPE, FlashMLIR with fused RoPE (rotary_cos /
rotary_sin), and PyTorch's rotary (transformers' apply_rotary_pos_emb:
q * cos + rotate_half(q) * sin, eager) followed by FlashMLIR without RoPE and
by SDPA's flash backend. Forward and forward+backward. Before timing, the
fused output is compared with the unfused one (max |diff|). Medians of
CUDA-event timings over batches of back-to-back calls.

usage: rope_bench.py [--json FILE]
"""
import argparse, json, os, sys

import torch
import torch.nn.functional as F

import flashmlir

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import timed  # noqa: E402


def median_ms(fn):
    return timed(fn, reps=15, warmup=5, batch=5)


def tables(P, R):
    inv = 10000.0 ** (-torch.arange(0, R, 2, device="cuda", dtype=torch.float64) / R)
    ang = torch.arange(P, device="cuda", dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def torch_rope(x, cos, sin, pos0):
    """transformers' apply_rotary_pos_emb on [B, H, N, D] (cos / sin [N, D])."""
    n = x.shape[2]
    c = torch.cat([cos[pos0:pos0 + n]] * 2, dim=-1).to(x.dtype)
    s = torch.cat([sin[pos0:pos0 + n]] * 2, dim=-1).to(x.dtype)
    return x * c + rotate_half(x) * s


def case(name, B, Hq, Hkv, Nq, Nk, D, causal, backward):
    g = torch.Generator(device="cuda").manual_seed(0)
    mk = lambda *s: torch.randn(*s, device="cuda", dtype=torch.bfloat16, generator=g)
    q, k, v = mk(B, Hq, Nq, D), mk(B, Hkv, Nk, D), mk(B, Hkv, Nk, D)
    do = mk(B, Hq, Nq, D)
    cos, sin = tables(Nk, D)
    rows = {}

    def run(fn):
        if backward:
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
            return lambda: fn(qq, kk, vv).backward(do)
        return lambda: fn(q, k, v)

    fused = lambda a, b, c: flashmlir.attention(a, b, c, causal=causal, rotary_cos=cos,
                                                rotary_sin=sin)
    plain = lambda a, b, c: flashmlir.attention(a, b, c, causal=causal)
    unfused = lambda a, b, c: flashmlir.attention(torch_rope(a, cos, sin, Nk - Nq),
                                                  torch_rope(b, cos, sin, 0), c, causal=causal)

    def unfused_sdpa(a, b, c):
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(
                torch_rope(a, cos, sin, Nk - Nq), torch_rope(b, cos, sin, 0), c,
                is_causal=causal, enable_gqa=Hq != Hkv)

    rows["max_diff_fused_vs_unfused"] = (fused(q, k, v).float()
                                         - unfused(q, k, v).float()).abs().max().item()
    rows["none"] = median_ms(run(plain))
    rows["rope"] = median_ms(run(fused))
    rows["torch_rope+flashmlir"] = median_ms(run(unfused))
    try:
        rows["torch_rope+sdpa_flash"] = median_ms(run(unfused_sdpa))
    except Exception as e:  # noqa: BLE001
        print(f"  SDPA flash failed on {name}: {type(e).__name__}: {str(e)[:200]}")
    rows["none/rope"] = rows["none"] / rows["rope"]
    rows["unfused/rope"] = rows["torch_rope+flashmlir"] / rows["rope"]
    print(f"ROPE {name:36s} none {rows['none']:8.3f}  rope {rows['rope']:8.3f} ms "
          f"(none/rope {rows['none/rope']:.3f})  torch rope+flashmlir "
          f"{rows['torch_rope+flashmlir']:8.3f} ({rows['unfused/rope']:.2f}x)  torch rope+sdpa "
          f"{rows.get('torch_rope+sdpa_flash', float('nan')):8.3f}  max|diff| "
          f"{rows['max_diff_fused_vs_unfused']:.2e}", flush=True)
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
        if not backward:
            name, rows = case("decode B8 H32/8 8k d128", 8, 32, 8, 1, 8192, 128, False, False)
            out[name] = rows
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
