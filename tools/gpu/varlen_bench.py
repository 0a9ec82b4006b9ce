#!/usr/bin/env python3
"""Variable-length batches on the GPU: 16k packed tokens of mixed lengths
(64..4096, causal, bf16, 16 heads, d = 128 unless told otherwise), forward
and forward+backward, as TFLOP/s (FlashAttention's count: 4 * H * sum_b
Nq_b Nk_b * D per forward, halved for causal, 3.5x for forward+backward):

  * FlashMLIR flash_attn_varlen_func on the packed tokens;
  * FlashMLIR's dense kernel on the same number of tokens (batch x 4096);
  * FlashMLIR's dense kernel on the same lengths: each sequence's time from
    a batch of copies of it (enough to keep the GPU busy; time / copies),
    summed: what the varlen kernels would take if they matched the dense
    kernel on every sequence (the fair bar for mixed lengths);
  * FlashAttention-2's flash_attn_varlen_func when flash_attn imports, else
    PyTorch SDPA on each sequence in turn.

The issue's bar: varlen within 10% of the dense kernel's TFLOP/s.

usage: varlen_bench.py [--tokens 16384] [--heads 16] [--dim 128] [--json OUT]
"""
import argparse, json, os

# The varlen forward kernels are opt-in in the package until checked on a GPU;
# this benchmark times them.
os.environ.setdefault("FLASHMLIR_VARLEN_KERNELS", "1")

import torch

import flashmlir
from gpu_common import timed


def lengths(total, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    while sum(out) < total:
        out.append(int(torch.randint(lo, hi + 1, (1,), generator=g)))
    out[-1] -= sum(out) - total
    if out[-1] < lo:
        out[-2] += out.pop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--no-causal", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    dt = {"bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    causal = not a.no_causal
    H, D, T = a.heads, a.dim, a.tokens
    lens = lengths(T, 64, 4096, 0)
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int32, device="cuda")
    mx = max(lens)
    q, k, v, do = (torch.randn(T, H, D, device="cuda", dtype=dt) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_()
    f = 0.5 if causal else 1.0
    flops_var = sum(4.0 * H * n * n * D * f for n in lens)
    Nd = 4096
    Bd = T // Nd
    flops_dense = 4.0 * Bd * H * Nd * Nd * D * f
    rows = []

    def report(name, fwd, fwdbwd, flops):
        ms_f, ms_fb = timed(fwd), timed(fwdbwd)
        r = dict(name=name, ms_fwd=ms_f, ms_fwdbwd=ms_fb, tflops_fwd=flops / ms_f / 1e9,
                 tflops_fwdbwd=3.5 * flops / ms_fb / 1e9)
        rows.append(r)
        print(f"{name:42s} fwd {ms_f:8.3f} ms {r['tflops_fwd']:7.1f} TFLOP/s   "
              f"fwd+bwd {ms_fb:8.3f} ms {r['tflops_fwdbwd']:7.1f} TFLOP/s", flush=True)

    print(f"{len(lens)} sequences, {T} tokens, lengths {min(lens)}..{mx}, H={H} D={D} "
          f"{a.dtype} causal={causal}")

    def fm_var():
        return flashmlir.flash_attn_varlen_func(q, k, v, cu, cu, mx, mx, causal=causal)
    report("FlashMLIR varlen", lambda: fm_var(),
           lambda: torch.autograd.backward(fm_var(), do), flops_var)

    qd, kd, vd = (t.detach().reshape(Bd, Nd, H, D).requires_grad_() for t in (q, k, v))
    dod = do.reshape(Bd, Nd, H, D)

    def fm_dense():
        return flashmlir.flash_attn_func(qd, kd, vd, causal=causal)
    report(f"FlashMLIR dense ({Bd} x {Nd})", lambda: fm_dense(),
           lambda: torch.autograd.backward(fm_dense(), dod), flops_dense)

    # The dense kernel on each length, batched (launch cost hidden), summed.
    t_f = t_fb = 0.0
    for n in lens:
        c = max(1, T // n)
        qs, ks, vs = (torch.randn(c, n, H, D, device="cuda", dtype=dt, requires_grad=True)
                      for _ in range(3))
        dos = torch.randn(c, n, H, D, device="cuda", dtype=dt)

        def one():
            return flashmlir.flash_attn_func(qs, ks, vs, causal=causal)
        t_f += timed(one) / c
        t_fb += timed(lambda: torch.autograd.backward(one(), dos)) / c
    r = dict(name="FlashMLIR dense, same lengths", ms_fwd=t_f, ms_fwdbwd=t_fb,
             tflops_fwd=flops_var / t_f / 1e9, tflops_fwdbwd=3.5 * flops_var / t_fb / 1e9)
    rows.append(r)
    print(f"{r['name']:42s} fwd {t_f:8.3f} ms {r['tflops_fwd']:7.1f} TFLOP/s   "
          f"fwd+bwd {t_fb:8.3f} ms {r['tflops_fwdbwd']:7.1f} TFLOP/s", flush=True)

    try:
        from flash_attn import flash_attn_varlen_func as fa2

        def fa2_var():
            return fa2(q, k, v, cu, cu, mx, mx, causal=causal)
        report("FlashAttention-2 varlen", lambda: fa2_var(),
               lambda: torch.autograd.backward(fa2_var(), do), flops_var)
    except ImportError:
        cl = cu.tolist()

        def sdpa_seq():
            outs = []
            for b in range(len(lens)):
                s = slice(cl[b], cl[b + 1])
                outs.append(torch.nn.functional.scaled_dot_product_attention(
                    q[s].transpose(0, 1), k[s].transpose(0, 1), v[s].transpose(0, 1),
                    is_causal=causal).transpose(0, 1))
            return torch.cat(outs)
        report("SDPA per sequence (no flash_attn)", lambda: sdpa_seq(),
               lambda: torch.autograd.backward(sdpa_seq(), do), flops_var)
    var, dense, same = rows[0], rows[1], rows[2]
    print(f"varlen / dense TFLOP/s: fwd {var['tflops_fwd'] / dense['tflops_fwd']:.2f}, "
          f"fwd+bwd {var['tflops_fwdbwd'] / dense['tflops_fwdbwd']:.2f} (bar: >= 0.90); "
          f"varlen / dense on the same lengths: fwd {same['ms_fwd'] / var['ms_fwd']:.2f}, "
          f"fwd+bwd {same['ms_fwdbwd'] / var['ms_fwdbwd']:.2f}")
    if a.json:
        json.dump(dict(lengths=lens, rows=rows), open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
