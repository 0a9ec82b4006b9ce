"""flashmlir on NumPy arrays (CPU kernels of libflashmlir_c) against a float64
reference; argument checking; installations without the native libraries.
Runs without torch and without a GPU."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import flashmlir
from reference import attention_grad_ref, attention_ref, rel_err
from np_common import BF16, HAVE_COMPILER, NP_DTYPE, TOL, needs_compiler, rng_for  # noqa: F401

def make(rng, shape, dtype, bshd):
    """A random array of logical [B, H, N, D] shape, stored in the layout."""
    B, H, N, D = shape
    x = rng.standard_normal((B, N, H, D) if bshd else shape).astype(dtype)
    return x


def to_bhsd(x, bshd):
    return x.transpose(0, 2, 1, 3) if bshd else x


CASES = [
    # name, dtype, B, Hq, Hkv, Nq, Nk, D, Dv, options
    ("basic", "f32", 2, 2, 2, 33, 33, 16, 16, {}),
    ("causal", "f32", 1, 2, 2, 40, 40, 32, 32, dict(causal=True)),
    ("gqa-causal-cross", "f32", 2, 4, 2, 17, 50, 16, 16, dict(causal=True)),
    ("mqa", "f32", 1, 4, 1, 30, 30, 16, 16, {}),
    ("causal-nq>nk-empty-rows", "f32", 1, 2, 1, 40, 20, 16, 16, dict(causal=True)),
    ("window", "f32", 1, 2, 2, 50, 50, 16, 16, dict(window=(8, 4))),
    ("window-left-causal", "f32", 1, 2, 2, 45, 60, 16, 16, dict(causal=True, window=(10, -1))),
    ("softcap", "f32", 1, 2, 2, 24, 24, 16, 16, dict(softcap=5.0)),
    ("dv!=d", "f32", 1, 2, 2, 20, 28, 32, 16, {}),
    ("scale", "f32", 1, 2, 2, 20, 20, 16, 16, dict(scale=0.3)),
    ("bshd-gqa-causal", "f32", 2, 4, 2, 21, 21, 16, 16, dict(causal=True, layout="bshd")),
    ("f16-causal", "f16", 1, 2, 2, 40, 40, 32, 32, dict(causal=True)),
    ("f16-gqa-window-softcap-bshd", "f16", 1, 4, 2, 30, 36, 16, 16,
     dict(window=(6, 2), softcap=8.0, layout="bshd")),
    ("f16-mqa-dv", "f16", 2, 3, 1, 18, 25, 32, 16, dict(causal=True)),
    ("bf16-gqa-causal", "bf16", 1, 4, 2, 24, 30, 16, 16, dict(causal=True)),
]


def _run_case(name, dt, B, Hq, Hkv, Nq, Nk, D, Dv, opts):
    if NP_DTYPE[dt] is None:
        pytest.skip("ml_dtypes (bfloat16 for NumPy) is not installed")
    dtype = NP_DTYPE[dt]
    rng = rng_for(name)
    bshd = opts.get("layout") == "bshd"
    q = make(rng, (B, Hq, Nq, D), dtype, bshd)
    k = make(rng, (B, Hkv, Nk, D), dtype, bshd)
    v = make(rng, (B, Hkv, Nk, Dv), dtype, bshd)
    do = make(rng, (B, Hq, Nq, Dv), dtype, bshd)
    ref_opts = {key: opts[key] for key in ("causal", "window", "softcap", "scale") if key in opts}
    o_ref, lse_ref, dq_ref, dk_ref, dv_ref = attention_grad_ref(
        *(to_bhsd(x, bshd) for x in (q, k, v, do)), **ref_opts)

    o, lse = flashmlir.attention(q, k, v, return_lse=True, **opts)
    assert o.dtype == dtype and lse.dtype == np.float32
    assert o.shape == ((B, Nq, Hq, Dv) if bshd else (B, Hq, Nq, Dv))
    assert lse.shape == (B, Hq, Nq)
    ob = to_bhsd(o, bshd)
    tol, gtol = TOL[dt]
    assert rel_err(ob, o_ref) <= tol, rel_err(ob, o_ref)
    assert rel_err(lse, lse_ref) <= tol
    empty = np.isneginf(lse_ref)
    assert np.array_equal(np.isneginf(lse), empty)
    assert np.all(ob.astype(np.float64)[empty] == 0.0)

    dq, dk, dv = flashmlir.attention_backward(q, k, v, o, lse, do, **opts)
    for name_, g, ref, x in (("dq", dq, dq_ref, q), ("dk", dk, dk_ref, k), ("dv", dv, dv_ref, v)):
        assert g.shape == x.shape and g.dtype == dtype, name_
        err = rel_err(to_bhsd(g, bshd), ref)
        assert err <= gtol, f"{name_}: {err}"
    return empty


@needs_compiler
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_against_reference(case):
    empty = _run_case(*case)
    if case[0] == "causal-nq>nk-empty-rows":
        assert empty.any()


@needs_compiler
def test_strided_inputs():
    """Views with any strides run in place; a non-unit innermost stride is copied."""
    rng = rng_for("strided")
    big = rng.standard_normal((2, 3, 40, 48)).astype(np.float32)
    q = big[:, :2, ::2, 8:24]           # strided along seq and heads, offset into D
    k = big[:, 1:3, 3:33, 16:48:2]      # innermost stride 2: copied
    v = np.broadcast_to(rng.standard_normal((2, 1, 30, 16)).astype(np.float32), (2, 2, 30, 16))
    assert not q.flags.c_contiguous and k.strides[-1] != 4 and v.strides[1] == 0
    do = rng.standard_normal((2, 2, 20, 16)).astype(np.float32)[:, :, ::-1]  # negative stride
    o, lse = flashmlir.attention(q, k, v, causal=True, return_lse=True)
    o_ref, lse_ref, dq_ref, dk_ref, dv_ref = attention_grad_ref(q, k, v, do, causal=True)
    assert rel_err(o, o_ref) <= 1e-5 and rel_err(lse, lse_ref) <= 1e-5
    dq, dk, dv = flashmlir.attention_backward(q, k, v, o, lse, do, causal=True)
    for g, ref in ((dq, dq_ref), (dk, dk_ref), (dv, dv_ref)):
        assert rel_err(g, ref) <= 2e-5


@needs_compiler
def test_empty_sizes():
    z = np.zeros
    o, lse = flashmlir.attention(z((0, 2, 5, 8), np.float32), z((0, 2, 5, 8), np.float32),
                                 z((0, 2, 5, 8), np.float32), return_lse=True)
    assert o.shape == (0, 2, 5, 8) and lse.shape == (0, 2, 5)
    q = np.ones((1, 2, 3, 8), np.float32)
    kv = np.ones((1, 2, 0, 8), np.float32)
    o, lse = flashmlir.attention(q, kv, kv, return_lse=True)
    assert np.all(o == 0) and np.all(np.isneginf(lse))
    dq, dk, dv = flashmlir.attention_backward(q, kv, kv, o, lse, np.ones_like(o))
    assert np.all(dq == 0) and dk.shape == kv.shape and dv.shape == kv.shape


@needs_compiler
def test_sdpa_matches_reference():
    rng = rng_for("sdpa")
    q = rng.standard_normal((1, 4, 24, 16)).astype(np.float32)
    k = rng.standard_normal((1, 2, 24, 16)).astype(np.float32)
    v = rng.standard_normal((1, 2, 24, 16)).astype(np.float32)
    o = flashmlir.sdpa(q, k, v, is_causal=True, enable_gqa=True)
    assert rel_err(o, attention_ref(q, k, v, causal=True)[0]) <= 1e-5
    o = flashmlir.sdpa(q[:, :2], k, v, scale=0.25)
    assert rel_err(o, attention_ref(q[:, :2], k, v, scale=0.25)[0]) <= 1e-5


@needs_compiler
def test_compile_cpu_kernel():
    rng = rng_for("compile-cpu")
    kern = flashmlir.compile("f32", 16, 8, device="cpu", causal=True, window=(4, -1),
                             softcap=3.0)
    assert isinstance(kern, flashmlir.CpuKernel)
    q = rng.standard_normal((1, 2, 12, 16)).astype(np.float32)
    k = rng.standard_normal((1, 1, 15, 16)).astype(np.float32)
    v = rng.standard_normal((1, 1, 15, 8)).astype(np.float32)
    do = rng.standard_normal((1, 2, 12, 8)).astype(np.float32)
    o, lse = kern.forward(q, k, v)
    ref = attention_grad_ref(q, k, v, do, causal=True, window=(4, -1), softcap=3.0)
    assert rel_err(o, ref[0]) <= 1e-5 and rel_err(lse, ref[1]) <= 1e-5
    assert rel_err(kern(q, k, v), ref[0]) <= 1e-5
    for g, r in zip(kern.backward(q, k, v, o, lse, do), ref[2:]):
        assert rel_err(g, r) <= 2e-5
    with pytest.raises(ValueError, match="head_dim"):
        kern(q[..., :8], k[..., :8], v)
    with pytest.raises(ValueError, match="softcap"):
        flashmlir.compile("f32", 16, device="cpu", softcap=True)


_DETERMINISM_SCRIPT = textwrap.dedent("""
    import hashlib
    import numpy as np
    import flashmlir
    rng = np.random.default_rng(7)
    q, do = (rng.standard_normal((2, 4, 200, 64)).astype(np.float32) for _ in range(2))
    k, v = (rng.standard_normal((2, 2, 230, 64)).astype(np.float32) for _ in range(2))
    o, lse = flashmlir.attention(q, k, v, causal=True, return_lse=True)
    h = hashlib.sha256()
    for a in (o, lse) + tuple(flashmlir.attention_backward(q, k, v, o, lse, do, causal=True)):
        h.update(a.tobytes())
    print(h.hexdigest())
""")


@needs_compiler
def test_cpu_results_do_not_depend_on_threads():
    """The CPU kernels' parallel loops (the forward's query blocks, the
    backward's kv heads) give bit-identical outputs and gradients on 1, 2 and
    3 threads: every dQ/dK/dV sum runs in one fixed order."""
    digests = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, FLASHMLIR_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], env=env,
                             capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


@needs_compiler
def test_compile_cuda_bundle(tmp_path):
    import json
    out = flashmlir.compile("f32", 16, masked=False, targets=("sm_80",), out_dir=tmp_path / "b")
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    kinds = sorted(kd["kind"] for kd in manifest["kernels"])
    assert kinds == ["bwd_main", "bwd_post", "bwd_pre", "fwd"]
    for kd in manifest["kernels"]:
        assert os.path.isfile(os.path.join(out, kd["file"]))
    with pytest.raises(ValueError, match="target"):
        flashmlir.compile("f32", 16, targets=("sm_100",), out_dir=tmp_path / "c")
    with pytest.raises(flashmlir.FlashMLIRError, match="head dim 12"):
        flashmlir.compile("f32", 12, targets=("sm_80",), out_dir=tmp_path / "d")


@needs_compiler
def test_native_errors_surface_as_flashmlir_error():
    kern = flashmlir.compile("f32", 8, device="cpu")
    from flashmlir._cpu import host_tensor
    q = np.zeros((1, 1, 4, 8), np.float32)
    bad = np.zeros((1, 1, 4, 16), np.float32)  # wrong head dim, only the native side checks
    lse = np.zeros((1, 1, 4), np.float32)
    t = lambda a: host_tensor(a.ctypes.data, a.shape, [s // 4 for s in a.strides])  # noqa: E731
    with pytest.raises(flashmlir.FlashMLIRError, match="head dim") as e:
        kern._forward_raw(t(q), t(bad), t(q), t(q), t(lse))
    assert isinstance(e.value, RuntimeError)


def _rand(*shape, dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(layout="bsdh"), ValueError, "layout"),
    (dict(layout=3), TypeError, "layout"),
    (dict(window=(-2, 0)), ValueError, "window"),
    (dict(window=(1, 2, 3)), ValueError, "window"),
    (dict(window=(1.5, 2)), TypeError, "window"),
    (dict(window="ab"), ValueError, "window"),
    (dict(softcap=0.0), ValueError, "softcap"),
    (dict(softcap=-1.0), ValueError, "softcap"),
    (dict(softcap=float("inf")), ValueError, "softcap"),
    (dict(scale=0.0), ValueError, "scale"),
    (dict(scale=float("nan")), ValueError, "scale"),
    (dict(causal="yes"), TypeError, "causal"),
])
def test_bad_options(kwargs, exc, match):
    q = _rand(1, 2, 4, 8)
    with pytest.raises(exc, match=match):
        flashmlir.attention(q, q, q, **kwargs)


@pytest.mark.parametrize("shapes, exc, match", [
    (((1, 2, 4), (1, 2, 4, 8), (1, 2, 4, 8)), ValueError, "rank 4"),
    (((1, 3, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8)), ValueError, "multiple"),
    (((1, 2, 4, 8), (1, 2, 4, 16), (1, 2, 4, 8)), ValueError, "head dim"),
    (((1, 2, 4, 8), (2, 2, 4, 8), (2, 2, 4, 8)), ValueError, "batch"),
    (((1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 5, 8)), ValueError, "sequence length"),
    (((1, 2, 4, 8), (1, 0, 4, 8), (1, 0, 4, 8)), ValueError, "head counts"),
])
def test_bad_shapes(shapes, exc, match):
    q, k, v = (_rand(*s) for s in shapes)
    with pytest.raises(exc, match=match):
        flashmlir.attention(q, k, v)


def test_bad_dtypes_and_types():
    q = _rand(1, 2, 4, 8)
    with pytest.raises(TypeError, match="float64"):
        flashmlir.attention(q.astype(np.float64), q, q)
    with pytest.raises(TypeError, match="same dtype"):
        flashmlir.attention(q, q.astype(np.float16), q)
    with pytest.raises(TypeError, match="int32"):
        flashmlir.attention(q.astype(np.int32), q, q)
    with pytest.raises(TypeError, match="ndarray"):
        flashmlir.attention(q.tolist(), q, q)
    with pytest.raises(TypeError, match="ndarray"):
        flashmlir.attention(q, q.tolist(), q)
    o = np.zeros((1, 2, 4, 8), np.float32)
    with pytest.raises(TypeError, match="lse"):
        flashmlir.attention_backward(q, q, q, o, np.zeros((1, 2, 4), np.float64), o)
    with pytest.raises(ValueError, match="do must have shape"):
        flashmlir.attention_backward(q, q, q, o, np.zeros((1, 2, 4), np.float32), o[:, :1])


def test_sdpa_errors():
    q = _rand(1, 4, 6, 8)
    kv = _rand(1, 2, 6, 8)
    with pytest.raises(ValueError, match="attn_mask"):
        flashmlir.sdpa(q, q, q, attn_mask=np.ones((6, 6), bool))
    with pytest.raises(ValueError, match="dropout_p"):
        flashmlir.sdpa(q, q, q, dropout_p=0.1)
    with pytest.raises(RuntimeError, match="enable_gqa"):
        flashmlir.sdpa(q, kv, kv)
    with pytest.raises(ValueError, match="is_causal"):
        flashmlir.sdpa(q, _rand(1, 4, 9, 8), _rand(1, 4, 9, 8), is_causal=True)
    with pytest.raises(ValueError, match="rank 4"):
        flashmlir.sdpa(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="multiple"):
        flashmlir.sdpa(q[:, :3], kv, kv, enable_gqa=True)


def _python(code, env_updates, tmp_path):
    env = dict(os.environ)
    env.update(env_updates)
    pkg = os.path.dirname(os.path.dirname(flashmlir.__file__))
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    env["FLASHMLIR_CACHE_DIR"] = str(tmp_path / "cache")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_import_needs_nothing(tmp_path):
    """import flashmlir with no libraries, no numpy and no torch importable."""
    out = _python("""
        import sys
        sys.modules["numpy"] = None   # makes `import numpy` fail
        sys.modules["torch"] = None
        import flashmlir
        a = flashmlir.available()
        assert a == dict(a, compiler=False, runtime=False, cuda=False), a
        print(flashmlir.__version__)
    """, {"FLASHMLIR_LIB_DIR": str(tmp_path)}, tmp_path)
    assert out.strip() == flashmlir.__version__


def test_no_compiler_library(tmp_path):
    """Without libflashmlir_c: a clear error from compile and from the CPU path,
    nothing at import."""
    _python("""
        import numpy as np
        import flashmlir
        for device in ("cpu", "cuda"):
            try:
                flashmlir.compile("f16", 64, device=device)
            except flashmlir.LibraryNotFoundError as e:
                msg = str(e)
                assert "compiler library" in msg and "not installed" in msg, msg
                assert "libflashmlir_c" in msg, msg
                assert isinstance(e, flashmlir.FlashMLIRError) and isinstance(e, RuntimeError)
            else:
                raise AssertionError("compile did not raise")
        q = np.zeros((1, 1, 4, 8), np.float32)
        try:
            flashmlir.attention(q, q, q)
        except flashmlir.LibraryNotFoundError as e:
            assert "compiler library" in str(e), str(e)
        else:
            raise AssertionError("attention did not raise")
        try:
            flashmlir.native_version()
        except flashmlir.LibraryNotFoundError:
            pass
        else:
            raise AssertionError("native_version did not raise")
    """, {"FLASHMLIR_LIB_DIR": str(tmp_path)}, tmp_path)


def test_runtime_only_installation(tmp_path):
    """Only libflashmlir_rt (a GPU machine without MLIR): the runtime loads,
    the compiler is reported missing."""
    rt = flashmlir.available()["runtime_path"]
    if rt is None:
        pytest.skip("libflashmlir_rt not found")
    lib = tmp_path / "lib"
    lib.mkdir()
    os.symlink(rt, lib / os.path.basename(rt))
    _python("""
        import flashmlir
        a = flashmlir.available()
        assert a["runtime"] and not a["compiler"], a
        try:
            flashmlir.compile("bf16", 128, device="cuda")
        except flashmlir.LibraryNotFoundError as e:
            assert "compiler library" in str(e) and "not installed" in str(e), str(e)
        else:
            raise AssertionError("compile did not raise")
    """, {"FLASHMLIR_LIB_DIR": str(lib)}, tmp_path)


def test_version_and_available():
    assert isinstance(flashmlir.__version__, str) and flashmlir.__version__
    a = flashmlir.available()
    assert set(a) >= {"compiler", "runtime", "cuda"}
    assert all(isinstance(a[key], bool) for key in ("compiler", "runtime", "cuda"))
    if a["compiler"]:
        assert flashmlir.native_version().startswith("FlashMLIR")
