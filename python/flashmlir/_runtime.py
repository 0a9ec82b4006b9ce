"""The GPU runtime (libflashmlir_rt): kernel bundles, and compiling missing
configurations on demand.

Kernels come from a bundle (PTX + manifest.json). The main bundle is, first
found:

1. ``$FLASHMLIR_BUNDLE``;
2. ``flashmlir/_lib/bundle`` inside the installed package;
3. ``bundle/`` beside the directory the runtime library was loaded from
   (``build/lib`` -> ``build/bundle``);
4. the repository's ``build/bundle`` (in-tree use).

When a call needs a configuration (dtype, head dims, masked or not, softcap
or not, GPU target) that the main bundle lacks (``FA_ERR_NO_KERNEL``), the
bundles added with :func:`flashmlir.add_bundle` are tried, then the on-demand
cache (``$FLASHMLIR_CACHE_DIR``, default ``~/.cache/flashmlir``); if the cache
does not have it either and the compiler library is installed, exactly that
configuration is compiled into the cache with ``flashmlir_compile_bundle`` and
loaded. Where only the runtime is installed, the error says so.

This module does not import torch; the torch frontend passes raw pointers.
"""

import ctypes
import os
import shutil
import tempfile
import threading

from . import _native
from ._errors import FlashMLIRError, LibraryNotFoundError
from ._version import __version__ as PACKAGE_VERSION


def _status_name(status):
    if 0 <= status < len(_native.RUNTIME_STATUS):
        return _native.RUNTIME_STATUS[status]
    return f"FA_ERR_{status}"


class RuntimeHandle:
    """One fa_runtime handle: a loaded bundle (or none, for device queries).
    Shared between threads: calls are serialized by the runtime, close()
    waits for the calls in flight, and calls after it raise."""

    def __init__(self, bundle_dir):
        self._lib = _native.runtime()
        self._guard = None
        self.bundle_dir = bundle_dir
        h = ctypes.c_void_p()
        arg = os.fsencode(bundle_dir) if bundle_dir is not None else None
        status = self._lib.fa_runtime_create(arg, ctypes.byref(h))
        self._guard = _native.HandleGuard(h, "this runtime handle has been closed")
        if status != 0:
            msg = self.message()
            self.close()
            raise FlashMLIRError(msg or "fa_runtime_create failed", status, _status_name(status))

    def message(self):
        g = self._guard
        if g is None or g.closed:
            return ""
        try:
            with g.call() as h:
                if not h.value:
                    return ""
                m = self._lib.fa_runtime_last_error(h)
        except FlashMLIRError:
            return ""
        return m.decode("utf-8", errors="replace") if m else ""

    def error(self, status):
        return FlashMLIRError(self.message(), status, _status_name(status))

    def check(self, status):
        if status != 0:
            raise self.error(status)

    def close(self):
        """Destroys the handle; waits for calls running in other threads."""
        g = getattr(self, "_guard", None)
        h = g.close() if g is not None else None
        if h is not None and h.value:
            self._lib.fa_runtime_destroy(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _call(self):
        if self._guard is None:
            raise FlashMLIRError("this runtime handle has been closed")
        return self._guard.call()

    def forward(self, params, q, k, v, o, lse, stream):
        """Raw call: returns the fa_status."""
        with self._call() as h:
            return self._lib.fa_forward(h, ctypes.byref(params), ctypes.byref(q),
                                        ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
                                        ctypes.byref(lse), ctypes.c_void_p(stream))

    def forward_varlen(self, params, q, k, v, o, lse, cu_q, cu_k, batch, max_q, max_k,
                       stream):
        """Raw call of fa_forward_varlen (cu_q / cu_k: device pointers)."""
        with self._call() as h:
            return self._lib.fa_forward_varlen(
                h, ctypes.byref(params), ctypes.byref(q), ctypes.byref(k), ctypes.byref(v),
                ctypes.byref(o), ctypes.byref(lse), ctypes.c_void_p(cu_q), ctypes.c_void_p(cu_k),
                int(batch), int(max_q), int(max_k), ctypes.c_void_p(stream))

    def backward_varlen(self, params, q, k, v, o, do, lse, dq, dk, dv, cu_q, cu_k, batch,
                        max_q, max_k, stream):
        """Raw call of fa_backward_varlen (cu_q / cu_k: device pointers)."""
        with self._call() as h:
            return self._lib.fa_backward_varlen(
                h, ctypes.byref(params), *(ctypes.byref(t) for t in (q, k, v, o, do, lse, dq,
                                                                      dk, dv)),
                ctypes.c_void_p(cu_q), ctypes.c_void_p(cu_k), int(batch), int(max_q),
                int(max_k), ctypes.c_void_p(stream))

    def forward_kvcache(self, params, q, k_cache, v_cache, o, lse, cache_seqlens,
                        block_table, block_table_stride, max_blocks, num_splits, stream):
        """Raw call of fa_forward_kvcache (cache_seqlens / block_table: device
        pointers or 0)."""
        with self._call() as h:
            return self._lib.fa_forward_kvcache(
                h, ctypes.byref(params), ctypes.byref(q), ctypes.byref(k_cache),
                ctypes.byref(v_cache), ctypes.byref(o), ctypes.byref(lse),
                ctypes.c_void_p(cache_seqlens or None), ctypes.c_void_p(block_table or None),
                int(block_table_stride), int(max_blocks), int(num_splits),
                ctypes.c_void_p(stream))

    def backward(self, params, q, k, v, o, do, lse, dq, dk, dv, stream):
        with self._call() as h:
            return self._lib.fa_backward(h, ctypes.byref(params), ctypes.byref(q),
                                         ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
                                         ctypes.byref(do), ctypes.byref(lse), ctypes.byref(dq),
                                         ctypes.byref(dk), ctypes.byref(dv),
                                         ctypes.c_void_p(stream))

    def _mods_entry(self, name):
        if not hasattr(self._lib, name):
            raise FlashMLIRError(f"the GPU runtime library has no {name} (attention sinks): "
                                 f"it predates them; rebuild or reinstall it")
        return getattr(self._lib, name)

    def forward_mods(self, params, mods, q, k, v, o, lse, num_splits, stream):
        """Raw call of fa_forward_mods (mods: an FaScoreMods)."""
        fn = self._mods_entry("fa_forward_mods")
        with self._call() as h:
            return fn(h, ctypes.byref(params), ctypes.byref(mods), ctypes.byref(q),
                      ctypes.byref(k), ctypes.byref(v), ctypes.byref(o), ctypes.byref(lse),
                      int(num_splits), ctypes.c_void_p(stream))

    def backward_mods(self, params, mods, q, k, v, o, do, lse, dq, dk, dv, stream):
        """Raw call of fa_backward_mods."""
        fn = self._mods_entry("fa_backward_mods")
        with self._call() as h:
            return fn(h, ctypes.byref(params), ctypes.byref(mods), ctypes.byref(q),
                      ctypes.byref(k), ctypes.byref(v), ctypes.byref(o), ctypes.byref(do),
                      ctypes.byref(lse), ctypes.byref(dq), ctypes.byref(dk), ctypes.byref(dv),
                      ctypes.c_void_p(stream))

    def device_info(self):
        """(cc_major, cc_minor, num_sms) of the current CUDA context's device."""
        v = [ctypes.c_int() for _ in range(3)]
        with self._call() as h:
            st = self._lib.fa_device_info(h, *[ctypes.byref(x) for x in v])
        self.check(st)
        return tuple(x.value for x in v)

    def synchronize(self):
        with self._call() as h:
            st = self._lib.fa_synchronize(h)
        self.check(st)

    def workspace_bytes(self):
        with self._call() as h:
            return int(self._lib.fa_workspace_bytes(h))


def device_tensor(ptr, sizes, strides):
    """An fa_tensor (rank 3 or 4; element strides)."""
    t = _native.FaTensor()
    t.data = ptr
    rank = len(sizes)
    for i in range(4):
        t.sizes[i] = int(sizes[i]) if i < rank else 1
        t.strides[i] = int(strides[i]) if i < rank else 1
    return t


def score_mods(sinks=None, dsinks=None, alibi=None, alibi_batch_stride=0, rotary=None):
    """An fa_score_mods from device addresses (None / 0 = absent);
    ``alibi_batch_stride`` 0: one slope per head, else Hq ([B, Hq] slopes);
    ``rotary``: (cos address, sin address, positions, rotary dim, interleaved)
    of contiguous float32 [positions, rotary_dim / 2] tables."""
    m = _native.FaScoreMods()
    m.sinks = sinks or None
    m.dsinks = dsinks or None
    m.alibi_slopes = alibi or None
    m.alibi_batch_stride = int(alibi_batch_stride) if alibi else 0
    if rotary:
        cos, sin, positions, dim, interleaved = rotary
        m.rotary_cos, m.rotary_sin = cos, sin
        m.rotary_positions, m.rotary_dim = int(positions), int(dim)
        m.rotary_stride = int(dim) // 2
        m.rotary_interleaved = int(bool(interleaved))
    return m


def params(code, opts, scale):
    p = _native.FaParams()
    p.dtype = code
    p.causal = int(opts.causal)
    p.window_left, p.window_right = opts.window_left, opts.window_right
    p.scale = float(scale)
    p.softcap = float(opts.softcap)
    return p


# --- bundle locations ------------------------------------------------------------


def _has_manifest(d):
    return d is not None and os.path.isfile(os.path.join(d, "manifest.json"))


def bundle_candidates():
    """Where the main bundle is looked for, in order (see the module docstring)."""
    env = os.environ.get("FLASHMLIR_BUNDLE")
    if env:
        return [env]
    c = [os.path.join(_native._PKG_DIR, "_lib", "bundle")]
    rt = _native.find_library(_native.RUNTIME_LIB)
    if rt:
        c.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(rt))), "bundle"))
    if os.path.isfile(os.path.join(_native._REPO_ROOT, "CMakeLists.txt")):
        c.append(os.path.join(_native._REPO_ROOT, "build", "bundle"))
    return c


def default_bundle():
    """The main bundle directory, or None when there is none."""
    env = os.environ.get("FLASHMLIR_BUNDLE")
    if env:
        return env  # explicit: used (and its errors reported) even if broken
    for d in bundle_candidates():
        if _has_manifest(d):
            return os.path.abspath(d)
    return None


def deterministic_bundle():
    """The bundle of bit-reproducible backward kernels (``fa-compile
    --deterministic 1``): ``$FLASHMLIR_BUNDLE_DETERMINISTIC``, else
    ``bundle-deterministic`` beside the main bundle; None when there is none
    (such configurations are then compiled on demand)."""
    env = os.environ.get("FLASHMLIR_BUNDLE_DETERMINISTIC")
    if env:
        return env
    main = default_bundle()
    if main is not None:
        d = os.path.join(os.path.dirname(os.path.abspath(main)), "bundle-deterministic")
        if _has_manifest(d):
            return d
    return None


def is_deterministic_bundle(d):
    """Whether every backward kernel of the bundle at d is a deterministic one
    (its manifest config says ``"deterministic": true``)."""
    import json
    with open(os.path.join(d, "manifest.json")) as f:
        kernels = json.load(f).get("kernels", [])
    bwd = [k for k in kernels if str(k.get("kind", "")).startswith("bwd")]
    return bool(bwd) and all(k.get("config", {}).get("deterministic") is True for k in bwd)


def cache_dir():
    d = os.environ.get("FLASHMLIR_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "flashmlir")
    return d


def target_for(cc_major, cc_minor):
    """The bundle target compiled for a device: sm_90a on Hopper (its
    forward uses wgmma), sm_75 on Turing (its own instructions and 64 KB of
    shared memory), else sm_80 (PTX for sm_80 is JIT-compiled by the driver
    for newer devices)."""
    if (cc_major, cc_minor) == (7, 5):
        return "sm_75"
    return "sm_90a" if cc_major == 9 else "sm_80"


def config_dirname(code, D, Dv, masked, softcap, target, deterministic=False, alibi=False,
                   rotary=False):
    return (f"{_native.DTYPE_NAMES[code]}_d{D}_dv{Dv}" + ("_masked" if masked else "")
            + ("_softcap" if softcap else "") + ("_alibi" if alibi else "")
            + ("_rope" if rotary else "")
            + ("_deterministic" if deterministic else "") + f"_{target}")


def find_ptxas():
    """A ptxas for cubins of on-demand bundles: ``$FLASHMLIR_PTXAS`` (empty:
    none), else ptxas on PATH, else the CUDA toolkit's; None without one."""
    env = os.environ.get("FLASHMLIR_PTXAS")
    if env is not None:
        return env or None
    p = shutil.which("ptxas")
    if p is None and os.access("/usr/local/cuda/bin/ptxas", os.X_OK):
        p = "/usr/local/cuda/bin/ptxas"
    return p


def compile_bundle(out_dir, dtypes, head_dims, head_dim_v=0, masked=2, softcap=2,
                   targets="sm_80,sm_90a", deterministic=False, ptxas=None, alibi=False,
                   rotary=False):
    """flashmlir_compile_bundle into out_dir (created by the compiler). With
    ``ptxas`` the bundle also carries each kernel's cubin (no JIT on the first
    call); ``deterministic``: the bit-reproducible dQ kernels; ``alibi``: the
    ALiBi kernels; ``rotary``: the fused-RoPE kernels."""
    lib = _native.compiler()
    if not hasattr(lib, "flashmlir_compile_bundle_with_options"):
        raise FlashMLIRError("the compiler library is older than this package (no "
                             "flashmlir_compile_bundle_with_options); reinstall both together")
    err = _native.error_buffer()
    opts = _native.BundleOptions()
    opts.deterministic = int(bool(deterministic))
    opts.ptxas = os.fsencode(ptxas) if ptxas else None
    opts.cubin = int(bool(ptxas))
    opts.alibi = int(bool(alibi))
    opts.rotary = int(bool(rotary))
    rc = lib.flashmlir_compile_bundle_with_options(
        os.fsencode(out_dir), dtypes.encode(), head_dims.encode(), int(head_dim_v),
        int(masked), int(softcap), targets.encode(), ctypes.byref(opts), err, len(err))
    if rc != 0:
        raise FlashMLIRError("bundle compilation failed: " + _native.decode(err))
    if not _has_manifest(out_dir):
        raise FlashMLIRError(f"bundle compilation wrote no manifest.json in {out_dir}")
    return out_dir


def compile_into_cache(code, D, Dv, masked, softcap, target, deterministic=False, alibi=False,
                       rotary=False):
    """Compiles one configuration into the cache (atomically: a temporary
    directory renamed into place) and returns its directory. Where a ptxas
    is found (:func:`find_ptxas`) the bundle carries cubins."""
    root = os.path.join(cache_dir(), "bundles", PACKAGE_VERSION)
    final = os.path.join(root, config_dirname(code, D, Dv, masked, softcap, target,
                                              deterministic, alibi, rotary))
    if _has_manifest(final):
        return final
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=root)
    try:
        compile_bundle(tmp, _native.DTYPE_NAMES[code], str(D), Dv, int(masked), int(softcap),
                       target, deterministic=deterministic, ptxas=find_ptxas(), alibi=alibi,
                       rotary=rotary)
        if os.path.isdir(final) and not _has_manifest(final):
            shutil.rmtree(final, ignore_errors=True)  # a broken leftover
        try:
            os.rename(tmp, final)
        except OSError:
            if not _has_manifest(final):  # not a lost race: a real failure
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- dispatch --------------------------------------------------------------------


class Dispatcher:
    """Routes each (kind, configuration, device) to the handle whose bundle has
    its kernels, compiling on demand where possible."""

    def __init__(self):
        self._lock = threading.RLock()
        self._main = None
        self._main_loaded = False
        self._extra = []      # RuntimeHandles from add_bundle, in order
        self._cached = {}     # cache dir -> RuntimeHandle
        self._routes = {}     # key -> RuntimeHandle
        self._det = None      # the deterministic bundle's RuntimeHandle
        self._det_loaded = False

    def main(self):
        with self._lock:
            if not self._main_loaded:
                d = default_bundle()
                if d is not None:
                    self._main = RuntimeHandle(d)  # raises (and is retried) on failure
                self._main_loaded = True
            return self._main

    def deterministic(self):
        with self._lock:
            if not self._det_loaded:
                d = deterministic_bundle()
                if d is not None:
                    if not is_deterministic_bundle(d):
                        raise FlashMLIRError(
                            f"{d} is not a deterministic bundle (its backward kernels lack "
                            f"\"deterministic\": true; build it with fa-compile "
                            f"--deterministic 1)")
                    self._det = RuntimeHandle(d)
                self._det_loaded = True
            return self._det

    def add_bundle(self, bundle_dir):
        h = RuntimeHandle(os.fspath(bundle_dir))
        with self._lock:
            self._extra.append(h)
            self._routes.clear()
        return h

    def varlen_handles(self):
        """The handles that may have varlen kernels (the main bundle, then
        those of add_bundle); varlen kernels are not compiled on demand."""
        with self._lock:
            main = self.main()
            return ([main] if main is not None else []) + list(self._extra)

    def reset(self):
        with self._lock:
            self._main, self._main_loaded = None, False
            self._extra, self._cached, self._routes = [], {}, {}
            self._det, self._det_loaded = None, False

    def run(self, kind, code, D, Dv, masked, softcap, cc, call, deterministic=False,
            alibi=False, rotary=False):
        """call(handle) -> fa_status; raises FlashMLIRError on failure.
        ``deterministic`` (backward only): the bit-reproducible kernels, from
        the deterministic bundle or compiled on demand, never the others;
        ``alibi``: a call with ALiBi slopes (only ALiBi kernels serve it);
        ``rotary``: a call with rotary tables (only RoPE kernels)."""
        deterministic = bool(deterministic) and kind == "bwd"
        key = (kind, code, D, Dv, masked, softcap, cc, deterministic, bool(alibi),
               bool(rotary))
        h = self._routes.get(key)
        if h is not None:
            h.check(call(h))
            return
        with self._lock:
            tried = []
            if deterministic:
                det = self.deterministic()
                handles = [det] if det is not None else []
            else:
                main = self.main()
                handles = ([main] if main is not None else []) + list(self._extra)
            for h in handles:
                st = call(h)
                if st == 0:
                    self._routes[key] = h
                    return
                if st != _native.FA_ERR_NO_KERNEL:
                    raise h.error(st)
                tried.append(h.message())
            h = self._on_demand(code, D, Dv, masked, softcap, cc, tried, deterministic,
                                alibi, rotary)
            h.check(call(h))
            self._routes[key] = h

    def _on_demand(self, code, D, Dv, masked, softcap, cc, tried, deterministic=False,
                   alibi=False, rotary=False):
        what = (f"{_native.DTYPE_NAMES[code]} head_dim={D} head_dim_v={Dv}"
                f"{' masked' if masked else ''}{' softcap' if softcap else ''}"
                f"{' alibi' if alibi else ''}{' rotary' if rotary else ''}"
                f"{' deterministic' if deterministic else ''}")
        if tuple(cc) < (7, 5):
            raise FlashMLIRError(
                f"no kernel for {what}: FlashMLIR's GPU kernels need compute capability "
                f">= 7.5 (sm_75, Turing), this device is sm_{cc[0]}{cc[1]}"
                + (f" ({tried[0]})" if tried else ""), _native.FA_ERR_NO_KERNEL,
                "FA_ERR_NO_KERNEL")
        target = target_for(*cc)
        root = os.path.join(cache_dir(), "bundles", PACKAGE_VERSION)
        d = os.path.join(root, config_dirname(code, D, Dv, masked, softcap, target,
                                              deterministic, alibi, rotary))
        if not _has_manifest(d):
            if not _native.has_compiler():
                where = "; ".join(tried) if tried else (
                    "no kernel bundle was found (searched " + ", ".join(bundle_candidates())
                    + "; set FLASHMLIR_BUNDLE)")
                raise FlashMLIRError(
                    f"no GPU kernel for {what} on {target}: {where}. The FlashMLIR compiler "
                    f"library ({_native.COMPILER_LIB}) is not installed, so it cannot be "
                    f"compiled on demand: compile a bundle that has it where the compiler is "
                    f"installed (flashmlir.compile(..., device='cuda') or fa-compile) and "
                    f"point FLASHMLIR_BUNDLE at it (or call flashmlir.add_bundle).",
                    _native.FA_ERR_NO_KERNEL, "FA_ERR_NO_KERNEL")
            d = compile_into_cache(code, D, Dv, masked, softcap, target, deterministic, alibi,
                                   rotary)
        h = self._cached.get(d)
        if h is None:
            h = RuntimeHandle(d)
            self._cached[d] = h
        return h


_dispatcher = None
_dispatcher_lock = threading.Lock()


def dispatcher():
    global _dispatcher
    if _dispatcher is None:
        with _dispatcher_lock:
            if _dispatcher is None:
                _dispatcher = Dispatcher()
    return _dispatcher


def cuda_device_present():
    """True when the runtime library loads and the driver reports a device."""
    try:
        h = RuntimeHandle(None)
    except (LibraryNotFoundError, FlashMLIRError):
        return False
    try:
        h.device_info()
        return True
    except FlashMLIRError:
        return False
    finally:
        h.close()
