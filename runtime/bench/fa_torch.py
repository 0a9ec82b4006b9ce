"""ctypes wrapper of libflashmlir_rt.so for PyTorch CUDA tensors.

    from fa_torch import Runtime, attention
    rt = Runtime("/path/to/bundle")
    o, lse = rt.forward(q, k, v, causal=True)          # q/k/v: [B, H, N, D]
    dq, dk, dv = rt.backward(q, k, v, o, lse, do, causal=True)
    o = attention(q, k, v, rt, causal=True)            # autograd-aware

q, k, v (and o, do, the gradients) are [B, H, N, D] tensors of one dtype
(float32, float16 or bfloat16) on one CUDA device, with any strides whose
innermost one is 1: a [B, N, H, D] buffer is passed as x.transpose(1, 2)
without a copy. lse is float32 [B, Hq, Nq]. Kernels run asynchronously on
torch.cuda.current_stream() of the tensors' device.

The library is found through $FLASHMLIR_RT_LIB, else in the repository's
build*/lib directories, else by the dynamic loader (libflashmlir_rt.so).
"""

import ctypes
import glob
import math
import os

import torch

__all__ = ["FlashMLIRError", "Runtime", "attention", "load_library"]

_STATUS = ["FA_OK", "FA_ERR_NO_DRIVER", "FA_ERR_NO_DEVICE", "FA_ERR_BUNDLE",
           "FA_ERR_NO_KERNEL", "FA_ERR_PTX", "FA_ERR_LAUNCH", "FA_ERR_OOM",
           "FA_ERR_INVALID"]
_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


class FlashMLIRError(RuntimeError):
    """A failed runtime call: .status (int), .status_name and the message."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = _STATUS[status] if 0 <= status < len(_STATUS) else str(status)
        super().__init__(f"{self.status_name}: {message}")


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("sizes", ctypes.c_int64 * 4),
                ("strides", ctypes.c_int64 * 4)]


class _Params(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("causal", ctypes.c_int),
                ("window_left", ctypes.c_int64), ("window_right", ctypes.c_int64),
                ("scale", ctypes.c_float), ("softcap", ctypes.c_float)]


_lib = None


def load_library(path=None):
    """Loads libflashmlir_rt.so once (see the module docstring for where)."""
    global _lib
    if _lib is not None:
        return _lib
    if path is None:
        path = os.environ.get("FLASHMLIR_RT_LIB")
    if path is None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        found = sorted(glob.glob(os.path.join(root, "build*", "lib", "libflashmlir_rt.so")))
        path = found[0] if found else "libflashmlir_rt.so"
    lib = ctypes.CDLL(path)
    P, T = ctypes.POINTER(_Params), ctypes.POINTER(_Tensor)
    vp, st = ctypes.c_void_p, ctypes.c_int
    lib.fa_runtime_create.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
    lib.fa_runtime_destroy.argtypes = [vp]
    lib.fa_runtime_destroy.restype = None
    lib.fa_runtime_last_error.argtypes = [vp]
    lib.fa_runtime_last_error.restype = ctypes.c_char_p
    lib.fa_forward.argtypes = [vp, P, T, T, T, T, T, vp]
    lib.fa_backward.argtypes = [vp, P, T, T, T, T, T, T, T, T, T, vp]
    lib.fa_device_info.argtypes = [vp] + [ctypes.POINTER(ctypes.c_int)] * 3
    lib.fa_synchronize.argtypes = [vp]
    lib.fa_workspace_bytes.argtypes = [vp]
    lib.fa_workspace_bytes.restype = ctypes.c_int64
    for f in ("fa_runtime_create", "fa_forward", "fa_backward", "fa_device_info",
              "fa_synchronize"):
        getattr(lib, f).restype = st
    _lib = lib
    return lib


def _tensor(t, rank=4):
    if t.dim() != rank:
        raise ValueError(f"expected a {rank}-d tensor, got shape {tuple(t.shape)}")
    x = _Tensor()
    x.data = t.data_ptr()
    sizes, strides = t.shape, t.stride()
    for i in range(4):
        x.sizes[i] = sizes[i] if i < rank else 1
        x.strides[i] = strides[i] if i < rank else 1
    return x


class Runtime:
    """One loaded kernel bundle (a fa_runtime handle)."""

    def __init__(self, bundle_dir, lib_path=None):
        self._lib = load_library(lib_path)
        self._h = ctypes.c_void_p()
        arg = os.fsencode(bundle_dir) if bundle_dir is not None else None
        status = self._lib.fa_runtime_create(arg, ctypes.byref(self._h))
        if status != 0:
            msg = self._message()
            self.close()
            raise FlashMLIRError(status, msg)

    def _message(self):
        m = self._lib.fa_runtime_last_error(self._h)
        return m.decode(errors="replace") if m else ""

    def _check(self, status):
        if status != 0:
            raise FlashMLIRError(status, self._message())

    def close(self):
        if getattr(self, "_h", None) and self._h.value:
            self._lib.fa_runtime_destroy(self._h)
            self._h = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def device_info(self):
        """(cc_major, cc_minor, num_sms) of the current device."""
        v = [ctypes.c_int() for _ in range(3)]
        self._check(self._lib.fa_device_info(self._h, *[ctypes.byref(x) for x in v]))
        return tuple(x.value for x in v)

    def synchronize(self):
        self._check(self._lib.fa_synchronize(self._h))

    def workspace_bytes(self):
        return self._lib.fa_workspace_bytes(self._h)

    @staticmethod
    def _params(q, causal, window, softcap, scale):
        if q.dtype not in _DTYPES:
            raise TypeError(f"unsupported dtype {q.dtype}")
        p = _Params()
        p.dtype = _DTYPES[q.dtype]
        p.causal = int(bool(causal))
        p.window_left, p.window_right = (-1, -1) if window is None else window
        p.scale = 0.0 if scale is None else float(scale)
        p.softcap = float(softcap or 0.0)
        return p

    @staticmethod
    def _check_tensors(*ts):
        dev, dt = ts[0].device, ts[0].dtype
        for t in ts:
            if not t.is_cuda or t.device != dev:
                raise ValueError(f"all tensors must be on {dev}, got {t.device}")
            if t.dtype != dt:
                raise TypeError(f"all tensors must be {dt}, got {t.dtype}")
        return dev

    def forward(self, q, k, v, *, causal=False, window=None, softcap=0.0, scale=None,
                out=None, lse=None):
        """Returns (o [B,Hq,Nq,Dv], lse float32 [B,Hq,Nq]); out/lse may be given."""
        dev = self._check_tensors(q, k, v)
        B, H, N = q.shape[0], q.shape[1], q.shape[2]
        if out is None:
            out = torch.empty(B, H, N, v.shape[3], dtype=q.dtype, device=dev)
        if lse is None:
            lse = torch.empty(B, H, N, dtype=torch.float32, device=dev)
        p = self._params(q, causal, window, softcap, scale)
        with torch.cuda.device(dev):
            stream = torch.cuda.current_stream(dev).cuda_stream
            self._check(self._lib.fa_forward(
                self._h, ctypes.byref(p), _tensor(q), _tensor(k), _tensor(v),
                _tensor(out), _tensor(lse, 3), ctypes.c_void_p(stream)))
        return out, lse

    def backward(self, q, k, v, o, lse, do, *, causal=False, window=None, softcap=0.0,
                 scale=None, dq=None, dk=None, dv=None):
        """Returns (dq, dk, dv), shaped and strided like q, k, v unless given."""
        dev = self._check_tensors(q, k, v, o, do)
        if do.stride(-1) != 1:
            do = do.contiguous()
        dq = torch.empty_like(q) if dq is None else dq
        dk = torch.empty_like(k) if dk is None else dk
        dv = torch.empty_like(v) if dv is None else dv
        p = self._params(q, causal, window, softcap, scale)
        with torch.cuda.device(dev):
            stream = torch.cuda.current_stream(dev).cuda_stream
            self._check(self._lib.fa_backward(
                self._h, ctypes.byref(p), _tensor(q), _tensor(k), _tensor(v),
                _tensor(o), _tensor(do), _tensor(lse, 3), _tensor(dq), _tensor(dk),
                _tensor(dv), ctypes.c_void_p(stream)))
        return dq, dk, dv


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, rt, opts):
        o, lse = rt.forward(q, k, v, **opts)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.rt, ctx.opts = rt, opts
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = ctx.rt.backward(q, k, v, o, lse, do, **ctx.opts)
        return dq, dk, dv, None, None


def attention(q, k, v, runtime, *, causal=False, window=None, softcap=0.0, scale=None):
    """softmax(scale * q k^T [masked, soft-capped]) v with autograd support."""
    opts = dict(causal=causal, window=window, softcap=softcap, scale=scale)
    return _Attention.apply(q, k, v, runtime, opts)
