#!/usr/bin/env python3
"""Checks an installed flashmlir wheel (fa.sh wheel-test runs it in a fresh
venv, from outside the source tree, with FLASHMLIR_LIB_DIR / _BUNDLE unset).

usage: check_wheel.py runtime|compiler

Both: the package imports; the runtime library and the bundle come from
inside the installed package; every bundled kernel has its cubin; the
front ends are there. `compiler`: the compiler library (and the libMLIR /
libLLVM beside it) loads from the package and runs attention on NumPy
arrays on the CPU, checked against a float64 softmax written here;
`runtime`: the compiler is absent and the CPU path says so.
Prints "N passed, M failed".
"""
import json
import os
import sys

variant = sys.argv[1]
passed = failed = 0


def check(ok, what):
    global passed, failed
    passed, failed = passed + bool(ok), failed + (not ok)
    print(("PASS " if ok else "FAIL ") + what)


import flashmlir  # noqa: E402

pkg = os.path.dirname(os.path.abspath(flashmlir.__file__))
check("site-packages" in pkg, f"flashmlir imported from an installed copy ({pkg})")
a = flashmlir.available()
check(a["runtime"] and a["runtime_path"].startswith(pkg),
      f"runtime library from the package ({a['runtime_path']})")
bundle = a["bundle"]
check(bundle is not None and bundle.startswith(pkg), f"bundle from the package ({bundle})")
if bundle:
    with open(os.path.join(bundle, "manifest.json")) as f:
        kernels = json.load(f)["kernels"]
    with_cubin = [k for k in kernels if "cubin" in k and
                  os.path.exists(os.path.join(bundle, k["cubin"]))]
    check(len(kernels) > 0 and len(with_cubin) == len(kernels),
          f"{len(with_cubin)} of {len(kernels)} bundled kernels have their cubin")
from flashmlir import _runtime  # noqa: E402

det = _runtime.deterministic_bundle()
check(det is not None and det.startswith(pkg) and _runtime.is_deterministic_bundle(det),
      f"deterministic bundle from the package ({det})")
check(all(hasattr(flashmlir, f) for f in ("flash_attn_func", "flash_attn_kvpacked_func",
                                          "flash_attn_qkvpacked_func", "register_transformers")),
      "drop-in front ends present")

if variant == "compiler":
    import numpy as np
    check(a["compiler"] and a["compiler_path"].startswith(pkg),
          f"compiler library from the package ({a['compiler_path']})")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 24, 16), dtype=np.float32) for _ in range(3))
    o = flashmlir.attention(q, k, v, causal=True)
    s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k) / 4.0
    s = np.where(np.tril(np.ones((24, 24), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)
    err = float(np.abs(o - ref).max())
    check(err < 1e-5, f"CPU attention through the packaged compiler (max error {err:.1e})")
else:
    check(not a["compiler"], "no compiler library in a runtime wheel")
    try:
        import numpy as np
    except ImportError:
        np = None
    if np is not None:
        try:
            flashmlir.attention(np.zeros((1, 1, 4, 8), np.float32), np.zeros((1, 1, 4, 8), np.float32),
                                np.zeros((1, 1, 4, 8), np.float32))
            check(False, "CPU attention without the compiler raises")
        except flashmlir.LibraryNotFoundError as e:
            check("compiler" in str(e), "CPU attention without the compiler raises a clear error")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
