"""Helpers the GPU check and benchmark scripts share (imported from beside
them: tools/gpu/ is the script directory, so `import gpu_common` works when
they run as `python3 tools/gpu/<script>.py`)."""
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F


def relerr(x, ref):
    """||x - ref|| / ||ref|| in float64 over the finite entries of ref;
    inf when x has a NaN or its infinities are not exactly ref's."""
    x, ref = x.double(), ref.double()
    if torch.isnan(x).any():
        return math.inf
    fin = torch.isfinite(ref)
    if not torch.equal(torch.isfinite(x), fin) or not torch.equal(x[~fin], ref[~fin]):
        return math.inf
    x, ref = x[fin], ref[fin]
    n = ref.norm().item()
    return (x - ref).norm().item() / (n if n > 0 else 1.0)


def visible(nq, nk, causal, window, dev):
    """[nq, nk] bool: query i sees key j (masks aligned bottom-right,
    window = (left, right), -1 = unbounded)."""
    i = torch.arange(nq, device=dev)[:, None]
    j = torch.arange(nk, device=dev)[None, :]
    diag = i + (nk - nq)
    vis = torch.ones(nq, nk, dtype=torch.bool, device=dev)
    wl, wr = window
    if causal:
        vis &= j <= diag
    if wl >= 0:
        vis &= j >= diag - wl
    if wr >= 0:
        vis &= j <= diag + wr
    return vis


def timed(fn, reps=10, warmup=1, batch=1):
    """Median milliseconds per call over `reps` samples (CUDA events, each
    sample synchronized) of `batch` back-to-back calls of fn (batch > 1: the
    GPU's time where a call's kernels outlast its host work), after `warmup`
    calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(batch):
            fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / batch)
    return statistics.median(ts)


def report(results, json_path=None):
    """The check scripts' ending: "N passed, M failed" over the result dicts
    (key "ok"), the results to `json_path` when given, exit 1 on a failure."""
    bad = sum(not r["ok"] for r in results)
    print(f"{len(results) - bad} passed, {bad} failed")
    if json_path:
        json.dump(results, open(json_path, "w"), indent=1)
    sys.exit(1 if bad else 0)


def sdpa_flash_ms(q, k, v, do, causal, backward, median):
    """`median`(fn) of SDPA's flash backend on q / k / v [B, H, N, D] (K / V
    repeated per query head under GQA), forward or forward+backward with
    gradient `do`: the speed line for benchmarks of score modifications SDPA
    does not have."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
        if backward:
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
            return median(lambda: F.scaled_dot_product_attention(
                qq, kk, vv, is_causal=causal).backward(do))
        return median(lambda: F.scaled_dot_product_attention(
            q, k, v, is_causal=causal and q.shape[2] > 1))
