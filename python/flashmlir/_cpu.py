"""CPU kernels through libflashmlir_c: compile once per configuration, cache,
call on host memory (NumPy arrays or CPU torch tensors)."""

import ctypes
import numbers
import threading

from . import _native
from ._errors import FlashMLIRError
from ._options import (MAX_BLOCK, check_head_dim, check_int_range, check_options,
                       dtype_name, parse_dtype)

__all__ = ["CpuKernel", "get_kernel", "clear_cache", "host_tensor", "score_mods"]


def host_tensor(ptr, sizes, strides):
    """A flashmlir_tensor for `ptr` with element `sizes`/`strides` (rank 3 or 4).
    A size-1 innermost dim gets stride 1 (its stride is meaningless)."""
    t = _native.CTensor()
    rank = len(sizes)
    t.data = ptr
    t.rank = rank
    for i in range(4):
        t.sizes[i] = int(sizes[i]) if i < rank else 1
        t.strides[i] = int(strides[i]) if i < rank else 1
    if rank and sizes[rank - 1] == 1:
        t.strides[rank - 1] = 1
    return t


def score_mods(alibi_ptr=None, alibi_per_sequence=False, sinks_ptr=None, grad_sinks_ptr=None,
               captures=(), rotary=None):
    """A flashmlir_score_mods for host f32 buffers (addresses; None = off);
    captures: (address, element count) of the regions' captured buffers;
    rotary: (cos address, sin address, positions)."""
    m = _native.CScoreMods()
    if rotary is not None:
        m.rotary_cos, m.rotary_sin, m.rotary_positions = rotary
    m.alibi_slopes = alibi_ptr
    m.alibi_per_sequence = int(bool(alibi_per_sequence))
    m.sinks = sinks_ptr
    m.grad_sinks = grad_sinks_ptr
    for i, (ptr, size) in enumerate(captures):
        m.captures[i] = ptr
        m.capture_sizes[i] = int(size)
    return m


class CpuKernel:
    """Attention compiled for the host CPU (attn-cpu-pipeline + JIT) for one
    configuration: dtype, head dims, and the compile-time constants scale,
    causal, window and softcap.

    ``forward(q, k, v)`` -> ``(o, lse)``, ``backward(q, k, v, o, lse, do)``
    -> ``(dq, dk, dv)`` and ``kernel(q, k, v)`` -> ``o`` take NumPy arrays in
    the given layout (see :func:`flashmlir.attention`). The backward kernel is
    compiled on its first use. Calls run synchronously on the calling thread.
    """

    def __init__(self, dtype, head_dim, head_dim_v=None, *, scale=None, causal=False,
                 window=None, softcap=None, unfused=False, block_m=0, block_n=0,
                 score_mod_text=None, mask_mod_text=None, rotary_dim=0,
                 rotary_interleaved=False):
        self._guard = None
        self._code = parse_dtype(dtype, "CpuKernel")
        self.dtype = dtype_name(self._code)
        check_head_dim(head_dim, "head_dim", "CpuKernel")
        if head_dim_v is None:
            head_dim_v = head_dim
        check_head_dim(head_dim_v, "head_dim_v", "CpuKernel")
        # 0: the pipeline's default tile size.
        block_m = check_int_range(block_m, 0, MAX_BLOCK, "block_m (0: default)", "CpuKernel")
        block_n = check_int_range(block_n, 0, MAX_BLOCK, "block_n (0: default)", "CpuKernel")
        opts = check_options(causal, scale, window, softcap, "bhsd", "CpuKernel")
        self.head_dim, self.head_dim_v = int(head_dim), int(head_dim_v)
        self.scale = opts.resolve_scale(head_dim)
        self.causal = opts.causal
        self.window = (opts.window_left, opts.window_right)
        self.softcap = opts.softcap
        self.unfused = bool(unfused)
        lib = _native.compiler()
        cfg = _native.CpuConfig()
        cfg.dtype = self._code
        cfg.head_dim, cfg.head_dim_v = self.head_dim, self.head_dim_v
        cfg.scale = self.scale
        cfg.causal = int(self.causal)
        cfg.window_left, cfg.window_right = self.window
        cfg.softcap = self.softcap
        cfg.unfused = int(self.unfused)
        cfg.block_m, cfg.block_n = int(block_m), int(block_n)
        self._lib = lib
        self.score_mod_text, self.mask_mod_text = score_mod_text, mask_mod_text
        self.rotary_dim, self.rotary_interleaved = int(rotary_dim), bool(rotary_interleaved)
        h = ctypes.c_void_p()
        err = _native.error_buffer()
        if score_mod_text or mask_mod_text or self.rotary_dim:
            ex = _native.CpuExtras()
            ex.score_mod = (score_mod_text or "").encode()
            ex.mask_mod = (mask_mod_text or "").encode()
            ex.rotary_dim = self.rotary_dim
            ex.rotary_interleaved = int(self.rotary_interleaved)
            rc = lib.flashmlir_cpu_compile_ex(ctypes.byref(cfg), ctypes.byref(ex),
                                              ctypes.byref(h), err, len(err))
        else:
            rc = lib.flashmlir_cpu_compile(ctypes.byref(cfg), ctypes.byref(h), err, len(err))
        if rc != 0:
            raise FlashMLIRError("CPU kernel compilation failed: " + _native.decode(err))
        # Shared between threads: close() waits for the calls in flight, and
        # calls after it raise.
        self._guard = _native.HandleGuard(h, "this CpuKernel has been closed")

    def __repr__(self):
        return (f"CpuKernel(dtype={self.dtype!r}, head_dim={self.head_dim}, "
                f"head_dim_v={self.head_dim_v}, scale={self.scale!r}, causal={self.causal}, "
                f"window={self.window}, softcap={self.softcap or None})")

    def close(self):
        """Frees the compiled code; waits for calls running in other threads.
        Later calls raise FlashMLIRError."""
        guard = getattr(self, "_guard", None)
        h = guard.close() if guard is not None else None
        if h is not None and h.value:
            self._lib.flashmlir_cpu_destroy(h)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _call(self):
        if self._guard is None:
            raise FlashMLIRError("this CpuKernel has been closed")
        return self._guard.call()

    # Raw calls on flashmlir_tensor descriptors (the caller keeps the memory alive).
    def _forward_raw(self, q, k, v, o, lse):
        err = _native.error_buffer()
        with self._call() as h:
            rc = self._lib.flashmlir_cpu_forward(h, ctypes.byref(q), ctypes.byref(k),
                                                 ctypes.byref(v), ctypes.byref(o),
                                                 ctypes.byref(lse), err, len(err))
        if rc != 0:
            raise FlashMLIRError(_native.decode(err))

    def _backward_raw(self, q, k, v, o, do, lse, dq, dk, dv):
        err = _native.error_buffer()
        with self._call() as h:
            rc = self._lib.flashmlir_cpu_backward(
                h, ctypes.byref(q), ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
                ctypes.byref(do), ctypes.byref(lse), ctypes.byref(dq), ctypes.byref(dk),
                ctypes.byref(dv), err, len(err))
        if rc != 0:
            raise FlashMLIRError(_native.decode(err))

    def _forward_mods_raw(self, q, k, v, o, lse, mods, varlen=None):
        """The forward with score modifications (a _native.CScoreMods) and,
        given a _native.CVarlen, in the variable-length form."""
        err = _native.error_buffer()
        with self._call() as h:
            rc = self._lib.flashmlir_cpu_forward_ex(
                h, ctypes.byref(q), ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
                ctypes.byref(lse), ctypes.byref(varlen) if varlen is not None else None,
                ctypes.byref(mods), err, len(err))
        if rc != 0:
            raise FlashMLIRError(_native.decode(err))

    def _backward_mods_raw(self, q, k, v, o, do, lse, dq, dk, dv, mods, varlen=None):
        err = _native.error_buffer()
        with self._call() as h:
            rc = self._lib.flashmlir_cpu_backward_ex(
                h, ctypes.byref(q), ctypes.byref(k), ctypes.byref(v), ctypes.byref(o),
                ctypes.byref(do), ctypes.byref(lse), ctypes.byref(dq), ctypes.byref(dk),
                ctypes.byref(dv), ctypes.byref(varlen) if varlen is not None else None,
                ctypes.byref(mods), err, len(err))
        if rc != 0:
            raise FlashMLIRError(_native.decode(err))

    # NumPy interface.
    def _opts(self, layout):
        from ._options import Options
        if layout not in ("bhsd", "bshd"):
            raise ValueError(f"layout must be 'bhsd' or 'bshd', got {layout!r}")
        return Options(self.causal, self.scale, self.window[0], self.window[1],
                       self.softcap, layout)

    def forward(self, q, k, v, *, layout="bhsd"):
        """NumPy arrays -> (o, lse)."""
        from . import _numpy
        return _numpy.forward(q, k, v, self._opts(layout), kernel=self)

    def backward(self, q, k, v, o, lse, do, *, layout="bhsd"):
        """NumPy arrays -> (dq, dk, dv)."""
        from . import _numpy
        return _numpy.backward(q, k, v, o, lse, do, self._opts(layout), kernel=self)

    def __call__(self, q, k, v, *, layout="bhsd", return_lse=False):
        o, lse = self.forward(q, k, v, layout=layout)
        return (o, lse) if return_lse else o

    def check_matches(self, code, D, Dv, where):
        if code != self._code or D != self.head_dim or Dv != self.head_dim_v:
            raise ValueError(
                f"{where}: this kernel was compiled for dtype {self.dtype}, head_dim "
                f"{self.head_dim}, head_dim_v {self.head_dim_v}; got dtype {dtype_name(code)}, "
                f"head_dim {D}, head_dim_v {Dv}")


_cache = {}
_cache_lock = threading.Lock()


def get_kernel(code, D, Dv, scale, causal, window_left, window_right, softcap,
               score_mod_text=None, mask_mod_text=None, rotary_dim=0, rotary_interleaved=False):
    """The cached CpuKernel for a configuration (compiled on first use)."""
    key = (code, D, Dv, float(scale), bool(causal), window_left, window_right, float(softcap),
           score_mod_text, mask_mod_text, int(rotary_dim), bool(rotary_interleaved))
    kern = _cache.get(key)
    if kern is not None:
        return kern
    with _cache_lock:
        kern = _cache.get(key)
        if kern is None:
            kern = CpuKernel(dtype_name(code), D, Dv, scale=scale, causal=causal,
                             window=(window_left, window_right),
                             softcap=softcap if softcap else None,
                             score_mod_text=score_mod_text, mask_mod_text=mask_mod_text,
                             rotary_dim=rotary_dim, rotary_interleaved=rotary_interleaved)
            _cache[key] = kern
    return kern


def kernel_for(opts, code, D, Dv, score_mod_text=None, mask_mod_text=None, rotary_dim=0,
               rotary_interleaved=False):
    return get_kernel(code, D, Dv, opts.resolve_scale(D), opts.causal, opts.window_left,
                      opts.window_right, opts.softcap, score_mod_text, mask_mod_text,
                      rotary_dim, rotary_interleaved)


def clear_cache():
    """Drops the cached CPU kernels (their JIT code is freed when unused)."""
    with _cache_lock:
        _cache.clear()

