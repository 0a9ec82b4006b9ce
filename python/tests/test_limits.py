"""Issue 18: the Python argument checks use the limits of
runtime/include/flashmlir/runtime/Limits.h (kept equal here), every bad value
gets a message naming it and its range, and kernel objects are safe to use
from several threads (close() waits for calls in flight; compile caches under
concurrent first calls)."""

import os
import re
import threading

import numpy as np
import pytest

import flashmlir
from flashmlir import _options
from flashmlir._errors import FlashMLIRError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMITS_H = os.path.join(ROOT, "runtime", "include", "flashmlir", "runtime", "Limits.h")

HAVE_COMPILER = flashmlir.available()["compiler"]
needs_compiler = pytest.mark.skipif(not HAVE_COMPILER,
                                    reason="libflashmlir_c (the compiler library) not found")


def _cpp_constants():
    text = open(LIMITS_H).read()
    consts = {}
    for m in re.finditer(r"constexpr\s+(?:int64_t|double)\s+(k\w+)\s*=\s*([^;]+);", text):
        name, expr = m.group(1), m.group(2).strip()
        expr = expr.replace("int64_t(1) << 30", "2**30")
        if re.fullmatch(r"k\w+", expr):
            consts[name] = consts[expr]
        else:
            consts[name] = eval(expr, {"__builtins__": {}})  # numbers and 2**30 only
    targets = {m.group(1): int(m.group(2)) for m in re.finditer(
        r'\{"(sm_\w+)",\s*\d+,\s*(?:true|false),\s*(\d+)\}', text)}
    return consts, targets


def test_python_limits_equal_limits_h():
    consts, targets = _cpp_constants()
    expect = {
        "kMaxHeadDim": _options.MAX_HEAD_DIM, "kMaxSeqLen": _options.MAX_SEQ_LEN,
        "kMaxWindow": _options.MAX_WINDOW, "kMaxBlock": _options.MAX_BLOCK,
        "kMaxVectorWidth": _options.MAX_VECTOR_WIDTH, "kMaxThreads": _options.MAX_THREADS,
        "kMaxScale": _options.MAX_SCALE, "kMinSoftcap": _options.MIN_SOFTCAP,
        "kMaxSoftcap": _options.MAX_SOFTCAP,
    }
    for name, py in expect.items():
        assert name in consts, f"{name} is no longer in Limits.h"
        assert consts[name] == py, f"{name}: Limits.h says {consts[name]}, Python {py}"
    assert targets == _options.GPU_TARGETS
    assert tuple(targets) == flashmlir._TARGETS


def _rand(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _huge(n, d=8):
    """A [1, 1, n, d] f32 view of 32 bytes (zero strides): no memory."""
    return np.lib.stride_tricks.as_strided(np.zeros(d, np.float32), (1, 1, n, d),
                                           (0, 0, 0, 4))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(window=(2**30 + 1, 0)), ValueError,
     r"window left = 1073741825 is out of range: it must be -1 \(unbounded\) or in "
     r"\[0, 1073741824\]"),
    (dict(window=(0, 2**63)), ValueError, r"window right = 9223372036854775808 is out of range"),
    (dict(scale=1e19), ValueError, r"scale = 1e\+19 is out of range: .*<= 1e\+18"),
    (dict(scale=10**400), ValueError, r"scale = 1000.* is out of range"),
    (dict(softcap=1e19), ValueError, r"softcap = 1e\+19 is out of range: it must be in "
                                     r"\[1e-18, 1e\+18\]"),
    (dict(softcap=1e-19), ValueError, r"softcap = 1e-19 is out of range"),
    (dict(softcap=3.5e38), ValueError, r"softcap = 3.5e\+38 is out of range"),
])
def test_out_of_range_options(kwargs, exc, match):
    q = _rand(1, 2, 4, 8)
    with pytest.raises(exc, match=match):
        flashmlir.attention(q, q, q, **kwargs)


def test_in_range_extremes_are_accepted():
    # The bounds themselves pass the checks (and run, on the CPU).
    opts = _options.check_options(window=(2**30, -1), scale=1e18, softcap=1e-18)
    assert (opts.window_left, opts.scale, opts.softcap) == (2**30, 1e18, 1e-18)


@pytest.mark.parametrize("shapes, match", [
    (((1, 2, 4, 257), (1, 2, 4, 257), (1, 2, 4, 8)),
     r"head dim D = 257 is out of range: it must be in \[1, 256\]"),
    (((1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 1024)),
     r"head dim Dv = 1024 is out of range: it must be in \[1, 256\]"),
])
def test_out_of_range_head_dims(shapes, match):
    q, k, v = (_rand(*s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        flashmlir.attention(q, k, v)


def test_out_of_range_sequence_lengths():
    q = _rand(1, 1, 4, 8)
    big = _huge(2**30 + 1)
    with pytest.raises(ValueError, match=r"key sequence length = 1073741825 is out of range: "
                                         r"it must be in \[0, 1073741824\]"):
        flashmlir.attention(q, big, big)
    with pytest.raises(ValueError, match=r"query sequence length = 1073741825 is out of range"):
        flashmlir.attention(big, q, q)


@needs_compiler
@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(head_dim=257), ValueError, r"head_dim = 257 is out of range: it must be in \[1, 256\]"),
    (dict(head_dim=8, head_dim_v=2**40), ValueError, r"head_dim_v = 1099511627776 is out of range"),
    (dict(head_dim=8, block_m=1025), ValueError,
     r"block_m \(0: default\) = 1025 is out of range: it must be in \[0, 1024\]"),
    (dict(head_dim=8, block_n=-1), ValueError, r"block_n \(0: default\) = -1 is out of range"),
    (dict(head_dim=8, block_n=10**12), ValueError, r"block_n .* = 1000000000000 is out of range"),
    (dict(head_dim=8, block_m=1.5), TypeError, r"block_m .* must be an int"),
    (dict(head_dim=True), TypeError, r"head_dim must be an int"),
])
def test_cpu_kernel_ranges(kwargs, exc, match):
    from flashmlir import _cpu
    with pytest.raises(exc, match=match):
        _cpu.CpuKernel("f32", **kwargs)


@needs_compiler
@pytest.mark.parametrize("kwargs, match", [
    (dict(head_dim=264), r"head dim 264 is out of range: it must be in \[1, 256\]"),
    (dict(head_dim=64, head_dim_v=512), r"head dim 512 is out of range"),
    (dict(head_dim=64, targets="sm_100a"), r"unsupported target 'sm_100a'.*sm_80, sm_86"),
])
def test_compile_ranges(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        flashmlir.compile("f16", out_dir=str(tmp_path), **kwargs)


# --- threads -------------------------------------------------------------------

@needs_compiler
def test_cpu_kernel_close_while_other_threads_call():
    """close() while 4 threads call the kernel: every call either completes
    with the right result or raises FlashMLIRError('... closed'); close()
    returns only after the calls in flight returned; nothing crashes."""
    from flashmlir import _cpu
    kern = _cpu.CpuKernel("f32", 8)
    q = _rand(1, 2, 16, 8)
    ref, _ = kern.forward(q, q, q)
    start = threading.Barrier(5)
    results = {"ok": 0, "closed": 0, "other": []}
    lock = threading.Lock()

    def worker():
        start.wait()
        for _ in range(50):
            try:
                o, _ = kern.forward(q, q, q)
                with lock:
                    if np.array_equal(o, ref):
                        results["ok"] += 1
                    else:
                        results["other"].append("wrong result")
            except FlashMLIRError as e:
                with lock:
                    if "closed" in str(e):
                        results["closed"] += 1
                    else:
                        results["other"].append(str(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    kern.close()
    for t in threads:
        t.join()
    assert results["other"] == []
    assert results["ok"] + results["closed"] == 200
    assert results["closed"] > 0 or results["ok"] == 200
    with pytest.raises(FlashMLIRError, match="closed"):
        kern.forward(q, q, q)
    kern.close()  # twice: a no-op


@needs_compiler
def test_concurrent_first_calls_compile_once():
    """8 threads make the first call of one new configuration at once: they
    share one cached kernel and get the same results."""
    from flashmlir import _cpu
    _cpu.clear_cache()
    q = _rand(1, 2, 12, 16)
    scale = 0.3125  # a configuration no other test uses
    outs, errors = [None] * 8, []
    start = threading.Barrier(8)

    def worker(i):
        try:
            start.wait()
            outs[i] = flashmlir.attention(q, q, q, scale=scale, causal=True)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    keys = [k for k in _cpu._cache if k[3] == scale]
    assert len(keys) == 1
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


@needs_compiler
def test_concurrent_compiles_of_one_configuration():
    """CpuKernel objects of one configuration made in 4 threads at once (the
    C++ compile cache under concurrent first calls) all run correctly, and
    closing them in any order leaves the others working."""
    from flashmlir import _cpu
    q = _rand(1, 1, 9, 24)
    kernels, errors = [None] * 4, []
    start = threading.Barrier(4)

    def worker(i):
        try:
            start.wait()
            kernels[i] = _cpu.CpuKernel("f32", 24, scale=0.40625)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ref, _ = kernels[0].forward(q, q, q)
    kernels[0].close()
    for k in kernels[1:]:
        o, _ = k.forward(q, q, q)
        assert np.array_equal(o, ref)
        k.close()


def _bare_runtime_handle():
    """A RuntimeHandle made as RuntimeHandle makes one, kept even when there
    is no driver (CI): its calls then fail with a status instead of raising
    at creation. Skips the test without libflashmlir_rt."""
    if not flashmlir.available()["runtime"]:
        pytest.skip("libflashmlir_rt not found")
    import ctypes
    from flashmlir import _native, _runtime
    h = object.__new__(_runtime.RuntimeHandle)
    h._lib = _native.runtime()
    h.bundle_dir = None
    raw = ctypes.c_void_p()
    h._lib.fa_runtime_create(None, ctypes.byref(raw))
    assert raw.value
    h._guard = _native.HandleGuard(raw, "this runtime handle has been closed")
    return h


def test_runtime_handle_close_while_other_threads_call():
    """The GPU runtime handle (no GPU needed: calls fail with a driver
    status) closed while 4 threads call it: calls return a status or raise
    'closed'; none touches the freed handle."""
    h = _bare_runtime_handle()
    start = threading.Barrier(5)
    seen = {"status": 0, "closed": 0, "other": []}
    lock = threading.Lock()

    def worker():
        start.wait()
        for _ in range(200):
            try:
                h.workspace_bytes()
                with lock:
                    seen["status"] += 1
            except FlashMLIRError as e:
                with lock:
                    if "closed" in str(e):
                        seen["closed"] += 1
                    else:
                        seen["other"].append(str(e))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    h.close()
    for t in threads:
        t.join()
    assert seen["other"] == []
    assert seen["status"] + seen["closed"] == 800
    with pytest.raises(FlashMLIRError, match="closed"):
        h.synchronize()


def test_runtime_handle_raw_calls_use_the_guard():
    """Every raw call of the GPU runtime handle goes through its guard (no
    GPU needed): on a live handle it returns a status (here an error: no
    driver, or null tensors), after close() it raises 'closed'."""
    from flashmlir import _native
    h = _bare_runtime_handle()
    p = _native.FaParams()
    t = _native.FaTensor()
    calls = {
        "forward": lambda: h.forward(p, t, t, t, t, t, 0),
        "forward_varlen": lambda: h.forward_varlen(p, t, t, t, t, t, 0, 0, 1, 1, 1, 0),
        "forward_kvcache": lambda: h.forward_kvcache(p, t, t, t, t, t, 0, 0, 0, 0, 0, 0),
        "backward": lambda: h.backward(p, t, t, t, t, t, t, t, t, t, 0),
    }
    for name, call in calls.items():
        assert call() != 0, name
    h.close()
    for name, call in calls.items():
        with pytest.raises(FlashMLIRError, match="closed"):
            call()
