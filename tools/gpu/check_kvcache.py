#!/usr/bin/env python3
"""Correctness of flashmlir.flash_attn_with_kvcache (split-KV forward over a
KV cache) against a float64 per-sequence reference, on CUDA and on the CPU.

Each case builds a cache (contiguous [B, capacity, Hkv, D], or paged
[num_blocks, block_size, Hkv, D] with a random block table drawn from a
shuffled pool: block sizes 16 / 64 / 256), random per-sequence lengths
(including 0 and the full capacity), optionally appends Nnew rows (k= / v=),
and compares:
  * out against softmax(q k^T * scale) v in float64 over each sequence's
    len + Nnew keys (masks aligned bottom-right to that length; softcap);
  * lse (+inf exactly where a row sees no key);
  * the cache after the call against the expected append (bit-exact), and
    every other cache row unchanged;
with ||x - ref|| / ||ref|| under fa-run's thresholds (f16 2e-3, bf16 1.6e-2).
Before each CUDA call a NaN tensor of the output's size is freed, so the
caching allocator hands the call NaN-filled memory: an element the kernels
never write fails. Split counts 1..64 (num_splits) and the automatic one.

usage: check_kvcache.py [--device cuda|cpu] [--quick] [--json OUT]
"""
import argparse, math

import torch

import flashmlir
from gpu_common import relerr, report, visible

THRESH = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def reference(q, keys, vals, causal, window, softcap, scale):
    """q [Nq, Hq, D], keys [n, Hkv, D] (float64) -> out [Nq, Hq, Dv], lse [Hq, Nq]."""
    Nq, Hq, D = q.shape
    n, Hkv, Dv = vals.shape
    if n == 0:
        return torch.zeros(Nq, Hq, Dv, dtype=torch.float64), torch.full((Hq, Nq), math.inf,
                                                                         dtype=torch.float64)
    g = Hq // Hkv
    kk = keys.repeat_interleave(g, dim=1).transpose(0, 1)  # [Hq, n, D]
    vv = vals.repeat_interleave(g, dim=1).transpose(0, 1)
    s = torch.einsum("qhd,hkd->hqk", q, kk) * scale
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    s = s.masked_fill(~visible(Nq, n, causal, window, "cpu"), -math.inf)
    lse = torch.logsumexp(s, dim=-1)  # [Hq, Nq]
    p = torch.exp(s - lse[..., None])
    p = torch.nan_to_num(p, nan=0.0)
    out = torch.einsum("hqk,hkd->qhd", p, vv)
    lse = torch.where(torch.isneginf(lse), math.inf, lse)
    return out, lse


def run_case(name, dev, dt, B, Hq, Hkv, D, Dv, Nq, cap, lens, Nnew=0, block=0, causal=False,
             window=(-1, -1), softcap=0.0, splits=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g).to(dt)  # noqa: E731
    q = rnd(B, Nq, Hq, D)
    kn, vn = (rnd(B, Nnew, Hkv, D), rnd(B, Nnew, Hkv, Dv)) if Nnew else (None, None)
    if block:
        nblk = -(-cap // block)
        pool = B * nblk + 3
        kc, vc = rnd(pool, block, Hkv, D), rnd(pool, block, Hkv, Dv)
        table = torch.randperm(pool, generator=g)[:B * nblk].reshape(B, nblk).to(torch.int32)
    else:
        kc, vc = rnd(B, cap, Hkv, D), rnd(B, cap, Hkv, Dv)
        table = None
    no_lens = lens is None  # cache_seqlens=None: every sequence the whole cache
    if no_lens:
        lens = [cap] * B
    lens_t = None if no_lens else torch.tensor(lens, dtype=torch.int32)
    # Expected cache after the append, built independently (Python loops).
    ekc, evc = kc.clone(), vc.clone()
    for b in range(B):
        for r in range(Nnew):
            pos = lens[b] + r
            if block:
                blk, off = int(table[b, pos // block]), pos % block
                ekc[blk, off], evc[blk, off] = kn[b, r], vn[b, r]
            else:
                ekc[b, pos], evc[b, pos] = kn[b, r], vn[b, r]

    def rows(cache, b, n):
        if not block:
            return cache[b, :n]
        pos = torch.arange(n)
        return cache[table[b].long()[pos // block], pos % block]

    scale = 1.0 / math.sqrt(D)
    ro = torch.zeros(B, Nq, Hq, Dv, dtype=torch.float64)
    rl = torch.zeros(B, Hq, Nq, dtype=torch.float64)
    for b in range(B):
        n = lens[b] + Nnew
        ro[b], rl[b] = reference(q[b].double(), rows(ekc, b, n).double(),
                                 rows(evc, b, n).double(), causal, window, softcap, scale)
    d = torch.device(dev)
    args = [t.to(d) if t is not None else None for t in (q, kc, vc, kn, vn, lens_t, table)]
    qd, kcd, vcd, knd, vnd, lensd, tabled = args
    if dev == "cuda":  # NaN-filled memory for the output allocations
        poison = torch.full((B, Nq, Hq, Dv), math.nan, dtype=dt, device=d)
        poison2 = torch.full((B, Hq, Nq), math.nan, dtype=torch.float32, device=d)
        del poison, poison2
    out, lse = flashmlir.flash_attn_with_kvcache(
        qd, kcd, vcd, k=knd, v=vnd, cache_seqlens=lensd, block_table=tabled, causal=causal,
        window_size=window, softcap=softcap, num_splits=splits, return_softmax_lse=True)
    errs = {"o": relerr(out.cpu(), ro), "lse": relerr(lse.cpu(), rl)}
    cache_ok = torch.equal(kcd.cpu(), ekc) and torch.equal(vcd.cpu(), evc)
    ok = errs["o"] <= THRESH[dt] and errs["lse"] <= THRESH[dt] and cache_ok
    print(f"{'PASS' if ok else 'FAIL'} {name} {dev} {str(dt)[6:]} B={B} Hq={Hq} Hkv={Hkv} "
          f"D={D} Dv={Dv} Nq={Nq} cap={cap} block={block or '-'} Nnew={Nnew} splits={splits} "
          f"causal={causal} window={window} softcap={softcap} "
          + " ".join(f"{k}={e:.2e}" for k, e in errs.items())
          + f" cache={'ok' if cache_ok else 'WRONG'}", flush=True)
    return dict(name=name, dev=dev, ok=ok, errs=errs, splits=splits, block=block)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    cases = [
        ("dense_gqa", dict(B=3, Hq=32, Hkv=8, D=128, Dv=128, Nq=1, cap=3000, lens=[0, 2999, 1000],
                           Nnew=1)),
        ("dense_full_nolens", dict(B=2, Hq=8, Hkv=8, D=64, Dv=64, Nq=1, cap=515, lens=None)),
        ("paged16_mqa", dict(B=4, Hq=16, Hkv=1, D=128, Dv=128, Nq=1, cap=1024,
                             lens=[1, 1023, 500, 0], Nnew=1, block=16)),
        ("paged64_causal", dict(B=2, Hq=8, Hkv=2, D=64, Dv=64, Nq=4, cap=700, lens=[100, 690],
                                Nnew=4, block=64, causal=True)),
        ("paged256_window", dict(B=2, Hq=4, Hkv=4, D=128, Dv=128, Nq=3, cap=2048,
                                 lens=[2000, 37], Nnew=3, block=256, window=(200, 0))),
        ("paged16_softcap_d256", dict(B=2, Hq=8, Hkv=2, D=256, Dv=256, Nq=2, cap=400,
                                      lens=[300, 33], Nnew=2, block=16, softcap=30.0,
                                      causal=True)),
        ("mla_192_128", dict(B=2, Hq=16, Hkv=16, D=192, Dv=128, Nq=1, cap=600, lens=[599, 17],
                             Nnew=1)),
        ("speculative_16", dict(B=2, Hq=8, Hkv=2, D=128, Dv=128, Nq=16, cap=4096,
                                lens=[1000, 3000], Nnew=16, block=64, causal=True)),
    ]
    results = []
    for i, (name, kw) in enumerate(cases[:3] if a.quick else cases):
        for dt in (torch.bfloat16, torch.float16):
            for splits in ((0, 1, 2, 5, 64) if a.device == "cuda" else (0,)):
                results.append(run_case(name, a.device, dt, splits=splits, seed=i, **kw))
    report(results, a.json)


if __name__ == "__main__":
    main()
