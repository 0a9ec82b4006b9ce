#!/usr/bin/env python3
"""Cold start: the first call of bundled configurations, each in a fresh process.

For each configuration a new Python process imports torch and flashmlir,
creates its CUDA context and inputs (not timed), then times

* ``first``:  the first flashmlir call (main bundle's manifest loaded,
  kernel modules loaded -- cubin or PTX --, launched, synchronized);
* ``second``: the same call again (the warm path, for comparison);
* ``create``: (reported separately, also inside ``first``) creating a runtime
  over the bundle, i.e. reading its manifest.

in three modes (docs/bundle.md, "Cubins and cold start"):

* ``cubin``:      the bundle as built (cubins loaded where they run);
* ``ptx-nocache``: a copy of the manifest without "cubin" (PTX only) and
  ``CUDA_CACHE_DISABLE=1``: the driver JIT-compiles every module (the 4 s
  the issue measured);
* ``ptx-cache``:  PTX only with a private driver cache (``CUDA_CACHE_PATH``)
  warmed by one earlier process: what the PTX fallback costs from the second
  process on.

The bar (issue 13): ``first`` < 50 ms in mode ``cubin`` on the H100. Exits 1
when a ``cubin`` first call is at or above ``--bar`` ms (default 50).

usage: python3 tools/gpu/cold_start.py [--bundle DIR] [--lib-dir DIR]
           [--modes cubin,ptx-nocache,ptx-cache] [--reps 3] [--json OUT]

Needs torch with CUDA and the flashmlir package (installed, or
``PYTHONPATH=python`` with the libraries in ``--lib-dir``/``build/lib``).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (dtype, B, H, N, D, causal, backward): configurations of the default bundle.
CONFIGS = [
    ("bf16", 1, 16, 2048, 128, True, False),
    ("bf16", 1, 16, 2048, 128, True, True),
    ("f16", 2, 8, 1024, 64, False, False),
    ("bf16", 1, 8, 4096, 256, True, False),
]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch, flashmlir
from flashmlir import _runtime
t_import = time.perf_counter() - t0
dtype, B, H, N, D, causal, backward = json.loads(sys.argv[1])
dt = {"bf16": torch.bfloat16, "f16": torch.float16}[dtype]
g = torch.Generator(device="cuda").manual_seed(0)
q, k, v = (torch.randn(B, N, H, D, device="cuda", dtype=dt, generator=g,
                       requires_grad=backward) for _ in range(3))
torch.cuda.synchronize()

def call():
    o = flashmlir.flash_attn_func(q, k, v, causal=causal)
    if backward:
        o.sum().backward()
    torch.cuda.synchronize()

t = time.perf_counter(); call(); first = time.perf_counter() - t
t = time.perf_counter(); call(); second = time.perf_counter() - t
# Creating one more runtime over the same bundle: the manifest's cost alone.
t = time.perf_counter(); h = _runtime.RuntimeHandle(_runtime.default_bundle())
create = time.perf_counter() - t
h.close()
print(json.dumps({"first_ms": first * 1e3, "second_ms": second * 1e3,
                  "create_ms": create * 1e3, "import_s": t_import,
                  "bundle": _runtime.default_bundle(),
                  "device": torch.cuda.get_device_name()}))
"""


def ptx_only_copy(bundle, into):
    """A bundle directory whose manifest names no cubins (the PTX files are
    symlinked, not copied)."""
    os.makedirs(into, exist_ok=True)
    with open(os.path.join(bundle, "manifest.json")) as f:
        m = json.load(f)
    for k in m["kernels"]:
        k.pop("cubin", None)
        dst = os.path.join(into, k["file"])
        if not os.path.exists(dst):
            os.symlink(os.path.abspath(os.path.join(bundle, k["file"])), dst)
    with open(os.path.join(into, "manifest.json"), "w") as f:
        json.dump(m, f)
    return into


def run_child(cfg, env):
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"child failed for {cfg}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=os.path.join(REPO, "build", "bundle"))
    ap.add_argument("--lib-dir", default=None,
                    help="FLASHMLIR_LIB_DIR for the children (default: as found)")
    ap.add_argument("--modes", default="cubin,ptx-nocache,ptx-cache")
    ap.add_argument("--reps", type=int, default=3, help="fresh processes per mode and config")
    ap.add_argument("--bar", type=float, default=50.0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    bundle = os.path.abspath(a.bundle)
    with open(os.path.join(bundle, "manifest.json")) as f:
        ncubin = sum("cubin" in k for k in json.load(f)["kernels"])
    print(f"bundle {bundle}: {ncubin} kernels with a cubin")
    tmp = tempfile.mkdtemp(prefix="fa-cold-")
    base = dict(os.environ)
    base.pop("FLASHMLIR_BUNDLE", None)
    if a.lib_dir:
        base["FLASHMLIR_LIB_DIR"] = os.path.abspath(a.lib_dir)
    base.setdefault("PYTHONPATH", os.path.join(REPO, "python"))
    ptx = ptx_only_copy(bundle, os.path.join(tmp, "ptx-bundle"))
    rows, failed = [], False
    try:
        for mode in a.modes.split(","):
            env = dict(base, FLASHMLIR_BUNDLE=bundle if mode == "cubin" else ptx,
                       FLASHMLIR_CACHE_DIR=os.path.join(tmp, "fa-cache"))
            if mode in ("cubin", "ptx-nocache"):
                env["CUDA_CACHE_DISABLE"] = "1"
            elif mode == "ptx-cache":
                env["CUDA_CACHE_PATH"] = os.path.join(tmp, "nv-cache")
                env.pop("CUDA_CACHE_DISABLE", None)
            else:
                raise SystemExit(f"unknown mode {mode}")
            for cfg in CONFIGS:
                if mode == "ptx-cache":
                    run_child(cfg, env)  # fills the driver's cache
                res = [run_child(cfg, env) for _ in range(a.reps)]
                first = statistics.median(r["first_ms"] for r in res)
                row = {"mode": mode, "config": cfg, "device": res[0]["device"],
                       "first_ms": first,
                       "first_ms_all": [r["first_ms"] for r in res],
                       "second_ms": statistics.median(r["second_ms"] for r in res),
                       "create_ms": statistics.median(r["create_ms"] for r in res)}
                rows.append(row)
                dt, B, H, N, D, causal, bwd = cfg
                ok = mode != "cubin" or first < a.bar
                failed |= not ok
                print(f"{mode:12s} {dt} B={B} H={H} N={N} D={D} causal={int(causal)} "
                      f"{'fwd+bwd' if bwd else 'fwd    '}  first {first:9.1f} ms  "
                      f"second {row['second_ms']:7.2f} ms  manifest {row['create_ms']:6.1f} ms"
                      + ("" if mode != "cubin" else ("  OK" if ok else f"  FAIL (bar {a.bar} ms)")))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    print("cold start:", "FAIL" if failed else "OK", f"(bar: first call < {a.bar} ms with cubins)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
