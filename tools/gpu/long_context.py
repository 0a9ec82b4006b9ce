#!/usr/bin/env python3
"""Long context on one GPU: causal fwd+bwd, 16 heads, d = 128, bf16, at
N = 32k, 64k and 128k, through the runtime. Records time and the extra device
memory (beyond q, k, v, o, dO and the gradients): the runtime's workspace
(f32 dQ accumulator and rowsum, O(N)) and lse, and the total device memory
in use, to show memory linear in N. A spot check compares a few rows of O at
the end of the sequence with a float64 reference computed for those rows.

usage: long_context.py BUNDLE [--json OUT]
"""
import argparse, json, math, os, sys, time
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "runtime", "bench"))
from fa_torch import Runtime  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--json")
ap.add_argument("--lengths", default="32768,65536,131072")
a = ap.parse_args()
rt = Runtime(a.bundle)
rows = []
H, D, dt = 16, 128, torch.bfloat16
for N in map(int, a.lengths.split(",")):
    torch.cuda.empty_cache()
    free0, total = torch.cuda.mem_get_info()
    g = torch.Generator(device="cuda").manual_seed(N)
    q, k, v, do = (torch.randn(1, H, N, D, device="cuda", generator=g, dtype=dt) for _ in range(4))
    torch.cuda.synchronize()
    free_inputs, _ = torch.cuda.mem_get_info()
    t0 = time.time()
    o, lse = rt.forward(q, k, v, causal=True)
    torch.cuda.synchronize(); t1 = time.time()
    dq, dk, dv = rt.backward(q, k, v, o, lse, do, causal=True)
    torch.cuda.synchronize(); t2 = time.time()
    free1, _ = torch.cuda.mem_get_info()
    # spot check: the last 4 query rows of head 0 (they see every key)
    qs = q[0, 0, -4:].double(); ks = k[0, 0].double(); vs = v[0, 0].double()
    s = qs @ ks.T / math.sqrt(D)
    ref = torch.softmax(s, dim=-1) @ vs
    err = ((o[0, 0, -4:].double() - ref).norm() / ref.norm()).item()
    io_bytes = sum(t.numel() * t.element_size() for t in (q, k, v, do, o, dq, dk, dv))
    row = dict(N=N, heads=H, d=D, dtype="bf16", causal=True,
               ms_fwd=round((t1 - t0) * 1e3, 1), ms_bwd=round((t2 - t1) * 1e3, 1),
               workspace_MiB=round(rt.workspace_bytes() / 2**20, 1),
               lse_MiB=round(lse.numel() * 4 / 2**20, 1),
               io_MiB=round(io_bytes / 2**20, 1),
               device_used_MiB=round((free0 - free1) / 2**20, 1),
               spot_check_err=err, finite=bool(torch.isfinite(dq).all() and torch.isfinite(dk).all()))
    print(json.dumps(row), flush=True)
    rows.append(row)
    del q, k, v, do, o, lse, dq, dk, dv
if a.json:
    json.dump(rows, open(a.json, "w"), indent=1)
ok = all(r["finite"] and r["spot_check_err"] < 1.6e-2 for r in rows)
print("long context:", "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
