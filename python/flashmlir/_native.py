"""Finding and loading the native libraries (ctypes), lazily.

Two libraries, each optional:

* ``libflashmlir_c.so``  -- the compiler's C API (include/flashmlir-c/FlashMLIR.h):
  CPU kernels (JIT) and GPU bundle compilation. Needs LLVM/MLIR at run time.
* ``libflashmlir_rt.so`` -- the GPU runtime's C API
  (runtime/include/flashmlir/runtime/fa_runtime.h). No MLIR.

Search order (the first directory holding the file wins):

1. ``$FLASHMLIR_LIB_DIR`` (one directory, or several separated by ``os.pathsep``).
   When it is set, *only* these directories are searched.
2. ``flashmlir/_lib/`` inside the installed package (the repository's build
   copies the libraries there before ``pip install``).
3. The repository's ``build/lib`` (then ``build-*/lib``) relative to the
   package source, for in-tree use with ``PYTHONPATH=python``.

Nothing is loaded at import time; a missing library raises
:class:`LibraryNotFoundError` only when a function that needs it is called.
"""

import ctypes
import glob
import os
import sys
import threading

from ._errors import LibraryNotFoundError

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
# python/flashmlir -> the repository root (only meaningful in-tree).
_REPO_ROOT = os.path.dirname(os.path.dirname(_PKG_DIR))

_EXT = ".dylib" if sys.platform == "darwin" else ".so"
COMPILER_LIB = "libflashmlir_c" + _EXT
RUNTIME_LIB = "libflashmlir_rt" + _EXT


def search_dirs():
    """The directories searched for the native libraries, in order."""
    env = os.environ.get("FLASHMLIR_LIB_DIR")
    if env:
        return [d for d in env.split(os.pathsep) if d]
    dirs = [os.path.join(_PKG_DIR, "_lib")]
    if os.path.isfile(os.path.join(_REPO_ROOT, "CMakeLists.txt")):
        dirs.append(os.path.join(_REPO_ROOT, "build", "lib"))
        dirs.extend(sorted(glob.glob(os.path.join(_REPO_ROOT, "build-*", "lib"))))
    return dirs


def find_library(name):
    """Path of the first ``name`` in :func:`search_dirs`, or None."""
    for d in search_dirs():
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    return None


# --- C structures ------------------------------------------------------------


class CTensor(ctypes.Structure):
    """flashmlir_tensor (compiler C API): host tensor, element strides."""

    _fields_ = [("data", ctypes.c_void_p), ("rank", ctypes.c_int64),
                ("sizes", ctypes.c_int64 * 4), ("strides", ctypes.c_int64 * 4)]


class CpuConfig(ctypes.Structure):
    """flashmlir_cpu_config."""

    _fields_ = [("dtype", ctypes.c_int), ("head_dim", ctypes.c_int64),
                ("head_dim_v", ctypes.c_int64), ("scale", ctypes.c_double),
                ("causal", ctypes.c_int), ("window_left", ctypes.c_int64),
                ("window_right", ctypes.c_int64), ("softcap", ctypes.c_double),
                ("unfused", ctypes.c_int), ("block_m", ctypes.c_int64),
                ("block_n", ctypes.c_int64)]


class CVarlen(ctypes.Structure):
    """flashmlir_varlen."""

    _fields_ = [("cu_seqlens_q", ctypes.c_void_p), ("cu_seqlens_k", ctypes.c_void_p),
                ("batch", ctypes.c_int64), ("max_seqlen_q", ctypes.c_int64),
                ("max_seqlen_k", ctypes.c_int64)]


class CScoreMods(ctypes.Structure):
    """flashmlir_score_mods: ALiBi slopes, sinks, d sinks (host f32, NULL = off)."""

    _fields_ = [("alibi_slopes", ctypes.c_void_p), ("alibi_per_sequence", ctypes.c_int),
                ("sinks", ctypes.c_void_p), ("grad_sinks", ctypes.c_void_p),
                ("captures", ctypes.c_void_p * 4), ("capture_sizes", ctypes.c_int64 * 4),
                ("rotary_cos", ctypes.c_void_p), ("rotary_sin", ctypes.c_void_p),
                ("rotary_positions", ctypes.c_int64)]


class CpuExtras(ctypes.Structure):
    """flashmlir_cpu_extras: regions' text and the rotary configuration."""

    _fields_ = [("score_mod", ctypes.c_char_p), ("mask_mod", ctypes.c_char_p),
                ("rotary_dim", ctypes.c_int64), ("rotary_interleaved", ctypes.c_int)]


class FaTensor(ctypes.Structure):
    """fa_tensor (runtime C API): device tensor, element strides."""

    _fields_ = [("data", ctypes.c_void_p), ("sizes", ctypes.c_int64 * 4),
                ("strides", ctypes.c_int64 * 4)]


class FaParams(ctypes.Structure):
    """fa_attn_params."""

    _fields_ = [("dtype", ctypes.c_int), ("causal", ctypes.c_int),
                ("window_left", ctypes.c_int64), ("window_right", ctypes.c_int64),
                ("scale", ctypes.c_float), ("softcap", ctypes.c_float)]


class FaScoreMods(ctypes.Structure):
    """fa_score_mods: device pointers (None = absent)."""

    _fields_ = [("sinks", ctypes.c_void_p), ("dsinks", ctypes.c_void_p),
                ("alibi_slopes", ctypes.c_void_p), ("alibi_batch_stride", ctypes.c_int64),
                ("rotary_cos", ctypes.c_void_p), ("rotary_sin", ctypes.c_void_p),
                ("rotary_positions", ctypes.c_int64), ("rotary_dim", ctypes.c_int64),
                ("rotary_stride", ctypes.c_int64), ("rotary_interleaved", ctypes.c_int)]


# dtype codes shared by both C APIs (FLASHMLIR_F32/F16/BF16 == FA_F32/F16/BF16).
F32, F16, BF16 = 0, 1, 2
DTYPE_NAMES = {F32: "f32", F16: "f16", BF16: "bf16"}

class BundleOptions(ctypes.Structure):
    """flashmlir_bundle_options (include/flashmlir-c/FlashMLIR.h)."""
    _fields_ = [("deterministic", ctypes.c_int), ("ptxas", ctypes.c_char_p),
                ("cubin", ctypes.c_int), ("alibi", ctypes.c_int), ("rotary", ctypes.c_int)]


RUNTIME_STATUS = ["FA_OK", "FA_ERR_NO_DRIVER", "FA_ERR_NO_DEVICE", "FA_ERR_BUNDLE",
                  "FA_ERR_NO_KERNEL", "FA_ERR_PTX", "FA_ERR_LAUNCH", "FA_ERR_OOM",
                  "FA_ERR_INVALID"]
FA_ERR_NO_DRIVER, FA_ERR_NO_DEVICE, FA_ERR_NO_KERNEL = 1, 2, 4


# --- loading -----------------------------------------------------------------

_lock = threading.Lock()
_loaded = {}


def _open(name, what, purpose, declare):
    with _lock:
        if name in _loaded:
            return _loaded[name]
        dirs = search_dirs()
        path = find_library(name)
        if path is None:
            where = ", ".join(dirs) if dirs else "(no directory)"
            env = os.environ.get("FLASHMLIR_LIB_DIR")
            hint = (" (FLASHMLIR_LIB_DIR is set, so only it is searched)" if env
                    else "; set FLASHMLIR_LIB_DIR to the directory holding it")
            raise LibraryNotFoundError(
                f"the FlashMLIR {what} library ({name}) is not installed: "
                f"searched {where}{hint}. {purpose}", library=name)
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise LibraryNotFoundError(
                f"the FlashMLIR {what} library {path} could not be loaded: {e}. "
                f"{purpose}", library=name) from None
        declare(lib)
        _loaded[name] = lib
        return lib


def compiler():
    """libflashmlir_c (loaded once, prototypes declared)."""
    lib = _loaded.get(COMPILER_LIB)
    if lib is not None:
        return lib
    return _open(COMPILER_LIB, "compiler",
                 "It is needed by the CPU path (NumPy arrays, CPU torch tensors) and "
                 "by flashmlir.compile; a runtime-only installation (libflashmlir_rt) "
                 "runs prebuilt GPU kernel bundles only.", _declare_compiler)


def _declare_compiler(lib):
    vp, err, n = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    T = ctypes.POINTER(CTensor)
    lib.flashmlir_cpu_compile.argtypes = [ctypes.POINTER(CpuConfig),
                                          ctypes.POINTER(vp), err, n]
    lib.flashmlir_cpu_compile.restype = ctypes.c_int
    lib.flashmlir_cpu_destroy.argtypes = [vp]
    lib.flashmlir_cpu_destroy.restype = None
    lib.flashmlir_cpu_forward.argtypes = [vp, T, T, T, T, T, err, n]
    lib.flashmlir_cpu_forward.restype = ctypes.c_int
    lib.flashmlir_cpu_backward.argtypes = [vp, T, T, T, T, T, T, T, T, T, err, n]
    lib.flashmlir_cpu_backward.restype = ctypes.c_int
    i64 = ctypes.c_int64
    if hasattr(lib, "flashmlir_cpu_forward_varlen"):
        lib.flashmlir_cpu_forward_varlen.argtypes = [vp, T, T, T, T, T, vp, vp, i64, i64, i64,
                                                     err, n]
        lib.flashmlir_cpu_forward_varlen.restype = ctypes.c_int
        lib.flashmlir_cpu_backward_varlen.argtypes = [vp, T, T, T, T, T, T, T, T, T, vp, vp,
                                                      i64, i64, i64, err, n]
        lib.flashmlir_cpu_backward_varlen.restype = ctypes.c_int
    if hasattr(lib, "flashmlir_cpu_forward_ex"):
        V, M = ctypes.POINTER(CVarlen), ctypes.POINTER(CScoreMods)
        lib.flashmlir_cpu_compile_ex.argtypes = [ctypes.POINTER(CpuConfig),
                                                 ctypes.POINTER(CpuExtras),
                                                 ctypes.POINTER(vp), err, n]
        lib.flashmlir_cpu_compile_ex.restype = ctypes.c_int
        lib.flashmlir_cpu_forward_ex.argtypes = [vp, T, T, T, T, T, V, M, err, n]
        lib.flashmlir_cpu_forward_ex.restype = ctypes.c_int
        lib.flashmlir_cpu_backward_ex.argtypes = [vp, T, T, T, T, T, T, T, T, T, V, M,
                                                  err, n]
        lib.flashmlir_cpu_backward_ex.restype = ctypes.c_int
    lib.flashmlir_cpu_peak_bytes.argtypes = []
    lib.flashmlir_cpu_peak_bytes.restype = ctypes.c_int64
    lib.flashmlir_cpu_reset_peak.argtypes = []
    lib.flashmlir_cpu_reset_peak.restype = None
    lib.flashmlir_compile_bundle.argtypes = [err, err, err, ctypes.c_int64, ctypes.c_int,
                                             ctypes.c_int, err, err, n]
    lib.flashmlir_compile_bundle.restype = ctypes.c_int
    if hasattr(lib, "flashmlir_compile_bundle_with_options"):  # (older libraries lack it)
        lib.flashmlir_compile_bundle_with_options.argtypes = [
            err, err, err, ctypes.c_int64, ctypes.c_int, ctypes.c_int, err,
            ctypes.POINTER(BundleOptions), err, n]
        lib.flashmlir_compile_bundle_with_options.restype = ctypes.c_int
    lib.flashmlir_version.argtypes = []
    lib.flashmlir_version.restype = ctypes.c_char_p


def runtime():
    """libflashmlir_rt (loaded once, prototypes declared)."""
    lib = _loaded.get(RUNTIME_LIB)
    if lib is not None:
        return lib
    return _open(RUNTIME_LIB, "GPU runtime",
                 "It is needed to run attention on CUDA tensors.", _declare_runtime)


def _declare_runtime(lib):
    vp, st = ctypes.c_void_p, ctypes.c_int
    P, T = ctypes.POINTER(FaParams), ctypes.POINTER(FaTensor)
    lib.fa_runtime_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
    lib.fa_runtime_destroy.argtypes = [vp]
    lib.fa_runtime_destroy.restype = None
    lib.fa_runtime_last_error.argtypes = [vp]
    lib.fa_runtime_last_error.restype = ctypes.c_char_p
    lib.fa_status_name.argtypes = [st]
    lib.fa_status_name.restype = ctypes.c_char_p
    lib.fa_forward.argtypes = [vp, P, T, T, T, T, T, vp]
    lib.fa_backward.argtypes = [vp, P, T, T, T, T, T, T, T, T, T, vp]
    if hasattr(lib, "fa_forward_varlen"):
        i64 = ctypes.c_int64
        lib.fa_forward_varlen.argtypes = [vp, P, T, T, T, T, T, vp, vp, i64, i64, i64, vp]
    if hasattr(lib, "fa_backward_varlen"):
        i64 = ctypes.c_int64
        lib.fa_backward_varlen.argtypes = [vp, P, T, T, T, T, T, T, T, T, T, vp, vp, i64, i64,
                                           i64, vp]
        lib.fa_backward_varlen.restype = st
    if hasattr(lib, "fa_forward_kvcache"):
        i64 = ctypes.c_int64
        lib.fa_forward_kvcache.argtypes = [vp, P, T, T, T, T, T, vp, vp, i64, i64, i64, vp]
        lib.fa_forward_kvcache.restype = st
    if hasattr(lib, "fa_forward_mods"):
        i64, M = ctypes.c_int64, ctypes.POINTER(FaScoreMods)
        lib.fa_forward_mods.argtypes = [vp, P, M, T, T, T, T, T, i64, vp]
        lib.fa_forward_mods.restype = st
        lib.fa_backward_mods.argtypes = [vp, P, M, T, T, T, T, T, T, T, T, T, vp]
        lib.fa_backward_mods.restype = st
    lib.fa_device_info.argtypes = [vp] + [ctypes.POINTER(ctypes.c_int)] * 3
    lib.fa_synchronize.argtypes = [vp]
    lib.fa_workspace_bytes.argtypes = [vp]
    lib.fa_workspace_bytes.restype = ctypes.c_int64
    for f in ("fa_runtime_create", "fa_forward", "fa_backward", "fa_device_info",
              "fa_synchronize"):
        getattr(lib, f).restype = st


def has_compiler():
    try:
        compiler()
        return True
    except LibraryNotFoundError:
        return False


def has_runtime():
    try:
        runtime()
        return True
    except LibraryNotFoundError:
        return False


def error_buffer():
    """A buffer for the compiler API's (err, errlen) pair."""
    return ctypes.create_string_buffer(1 << 16)


def decode(b):
    if isinstance(b, (bytes, bytearray)):
        return bytes(b).split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return b.value.decode("utf-8", errors="replace")


class HandleGuard:
    """Calls in flight on one native handle, for objects shared between
    threads: ``with guard.call() as h:`` runs with the live handle (raising
    ``closed_error()`` once closed); ``guard.close()`` refuses new calls,
    waits for the running ones and returns the handle for the caller to
    free exactly once (None when it was closed already)."""

    def __init__(self, handle, closed_message):
        self._cv = threading.Condition()
        self._h = handle
        self._calls = 0
        self._closed_message = closed_message

    def call(self):
        return _GuardedCall(self)

    def _enter(self):
        from ._errors import FlashMLIRError
        with self._cv:
            if self._h is None:
                raise FlashMLIRError(self._closed_message)
            self._calls += 1
            return self._h

    def _leave(self):
        with self._cv:
            self._calls -= 1
            if self._calls == 0:
                self._cv.notify_all()

    def close(self):
        with self._cv:
            h, self._h = self._h, None
            while self._calls:
                self._cv.wait()
        return h

    @property
    def closed(self):
        return self._h is None


class _GuardedCall:
    __slots__ = ("_g",)

    def __init__(self, g):
        self._g = g

    def __enter__(self):
        return self._g._enter()

    def __exit__(self, *exc):
        self._g._leave()
        return False
