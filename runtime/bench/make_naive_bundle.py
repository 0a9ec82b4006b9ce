#!/usr/bin/env python3
"""Build the naive reference bundle (naive_attn.cu -> PTX + manifest.json).

    python3 runtime/bench/make_naive_bundle.py OUT_DIR [--nvcc PATH]
        [--head-dims 32,64,128,64x32] [--arch compute_80] [--target sm_80]

The bundle lists the naive kernels for every dtype (f32, f16, bf16), head dim
pair (D or DxDv), mask flag combination and softcap flag: the kernels read the
mask and softcap values at run time, so one PTX entry per dtype and kind
serves every config. It is slow (one thread per row) and meant for checking
libflashmlir_rt and fa_torch.py on a GPU without the compiler.

It also documents, executably, the manifest format the runtime reads.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def buf(name):
    return {"name": name, "kind": "buffer"}


def i64(*names):
    return [{"name": n, "kind": "i64"} for n in names]


def f32(*names):
    return [{"name": n, "kind": "f32"} for n in names]


def strides(t):
    return i64(f"{t}_stride_b", f"{t}_stride_h", f"{t}_stride_n")


SIZES = ["batch", "heads", "kv_heads", "seqlen_q", "seqlen_k", "head_dim", "head_dim_v"]

# Must match the parameter lists in naive_attn.cu.
FWD_ARGS = ([buf(n) for n in ("q", "k", "v", "o", "lse")] + i64(*SIZES)
            + strides("q") + strides("k") + strides("v") + strides("o")
            + i64("lse_stride_b", "lse_stride_h", "window_left", "window_right")
            + f32("scale", "softcap"))
PRE_ARGS = ([buf(n) for n in ("dr_ws", "do", "o")]
            + i64("batch", "heads", "seqlen_q", "head_dim_v")
            + strides("do") + strides("o"))
MAIN_ARGS = ([buf(n) for n in ("q", "k", "v", "do", "lse", "dr_ws", "dqacc_ws", "dk", "dv")]
             + i64(*SIZES) + strides("q") + strides("k") + strides("v") + strides("do")
             + strides("dk") + strides("dv")
             + i64("lse_stride_b", "lse_stride_h", "window_left", "window_right")
             + f32("scale", "softcap"))
POST_ARGS = ([buf("dq"), buf("dqacc_ws")] + i64("batch", "heads", "seqlen_q", "head_dim")
             + strides("dq"))

ROWS = [{"dim": "seqlen_q", "div": 128}, {"dim": "heads", "div": 1}, {"dim": "batch", "div": 1}]
KEY_ROWS = [{"dim": "seqlen_k", "div": 64}, {"dim": "kv_heads", "div": 1}, {"dim": "batch", "div": 1}]


def kernels_for(dtype, d, dv, causal, window, softcap, target, ptx):
    flags = "".join(s for s, on in (("_causal", causal), ("_window", window),
                                    ("_softcap", softcap)) if on)
    tag = f"{dtype}_d{d}_dv{dv}{flags}_{target.replace('_', '')}"
    config = {"dtype": dtype, "head_dim": d, "head_dim_v": dv, "causal": causal,
              "window": window, "softcap": softcap, "target": target}
    common = {"file": ptx, "config": config}
    return [
        dict(name=f"fwd_{tag}", entry=f"naive_fwd_{dtype}", kind="fwd",
             block=[128, 1, 1], dynamic_smem=128 * dv * 4, grid=ROWS,
             args=FWD_ARGS, **common),
        dict(name=f"bwd_pre_{tag}", entry=f"naive_bwd_pre_{dtype}", kind="bwd_pre",
             block=[128, 1, 1], dynamic_smem=0, grid=ROWS, args=PRE_ARGS, **common),
        dict(name=f"bwd_main_{tag}", entry=f"naive_bwd_main_{dtype}", kind="bwd_main",
             block=[64, 1, 1], dynamic_smem=64 * (d + dv) * 4, grid=KEY_ROWS,
             args=MAIN_ARGS, **common),
        dict(name=f"bwd_post_{tag}", entry=f"naive_bwd_post_{dtype}", kind="bwd_post",
             block=[128, 1, 1], dynamic_smem=0, grid=ROWS, args=POST_ARGS, **common),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--nvcc", default=shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")
    ap.add_argument("--head-dims", default="32,64,128,64x32,32x64")
    ap.add_argument("--arch", default="compute_80", help="nvcc -arch (virtual)")
    ap.add_argument("--target", default="sm_80", help="config.target in the manifest")
    a = ap.parse_args()

    os.makedirs(a.out_dir, exist_ok=True)
    ptx = "naive_attn.ptx"
    cmd = [a.nvcc, "-ptx", f"-arch={a.arch}", "-O3", "-o",
           os.path.join(a.out_dir, ptx), os.path.join(HERE, "naive_attn.cu")]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)

    kernels = []
    for hd in a.head_dims.split(","):
        d, _, dv = hd.partition("x")
        d, dv = int(d), int(dv or d)
        for dtype in ("f32", "f16", "bf16"):
            for causal in (False, True):
                for window in (False, True):
                    for softcap in (False, True):
                        kernels += kernels_for(dtype, d, dv, causal, window, softcap,
                                               a.target, ptx)
    manifest = {"format": "flashmlir-bundle", "version": 1, "kernels": kernels}
    with open(os.path.join(a.out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(kernels)} kernels to {a.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
