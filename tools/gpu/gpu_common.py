"""Helpers the GPU check and benchmark scripts share (imported from beside
them: tools/gpu/ is the script directory, so `import gpu_common` works when
they run as `python3 tools/gpu/<script>.py`)."""
import math
import statistics

import torch


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


def timed(fn, reps=10, warmup=1):
    """Median milliseconds of `reps` calls of fn (CUDA events, each call
    synchronized), after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)
