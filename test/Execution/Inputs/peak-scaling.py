#!/usr/bin/env python3
"""Checks how the memory the kernels allocate grows with the sequence length.

usage: peak-scaling.py FA_RUN

FlashAttention's point is O(N) extra memory: the tiled forward must allocate
the same amount for any sequence length (its tiles depend on the block sizes
and head dims only) and the tiled backward at most O(N) (the f32 dq
accumulator and the row statistics), never an N x N matrix. The unfused
pipeline does allocate N x N scores, which shows the counter measures what it
should.

The kernels run their parallel loops on FLASHMLIR_NUM_THREADS threads, each
with its own tiles: the exact checks run on one thread, and a last check
bounds the peak on two threads by twice that.
"""
import json
import os
import subprocess
import sys

fa_run = sys.argv[1]


def peak(n, *extra, threads=1):
    args = [fa_run, "--batch", "1", "--heads", "1", "--seqlen-q", str(n),
            "--head-dim", "16", "--json"] + list(extra)
    env = dict(os.environ, FLASHMLIR_NUM_THREADS=str(threads))
    out = subprocess.run(args, check=True, capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout.splitlines()[-1])["peak_bytes"]


failed = False


def expect(ok, msg):
    global failed
    print(("ok    " if ok else "FAIL  ") + msg)
    failed |= not ok


small, large = 64, 1024
nxn = large * large * 4  # an f32 score matrix at the large size

f_small, f_large = peak(small), peak(large)
expect(f_small > 0, "tiled forward allocates its tiles (%d bytes)" % f_small)
expect(f_large == f_small,
       "tiled forward peak does not depend on N (%d at N=%d, %d at N=%d)"
       % (f_small, small, f_large, large))

b_small, b_large = peak(small, "--backward"), peak(large, "--backward")
per_row = (b_large - b_small) / (large - small)
expect(per_row <= 4 * (16 + 8),
       "tiled backward grows at most O(N): %.1f bytes per query row"
       % per_row)
expect(b_large < nxn // 8,
       "tiled backward peak %d is far below an N x N f32 matrix (%d)"
       % (b_large, nxn))

u_large = peak(large, "--pipeline", "unfused")
expect(u_large >= nxn,
       "unfused forward holds N x N scores (%d >= %d)" % (u_large, nxn))

f_two, b_two = peak(large, threads=2), peak(large, "--backward", threads=2)
expect(f_two <= 2 * f_small,
       "two threads: forward peak %d <= 2 x one thread's tiles (%d)"
       % (f_two, 2 * f_small))
expect(b_two <= 2 * b_large,
       "two threads: backward peak %d <= 2 x one thread's (%d)"
       % (b_two, 2 * b_large))

print("FAIL" if failed else "PASS")
sys.exit(1 if failed else 0)
