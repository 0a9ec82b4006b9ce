"""FlashMLIR from Python: FlashAttention compiled by MLIR, for NumPy arrays and
PyTorch tensors (CPU and CUDA).

    import flashmlir
    o = flashmlir.attention(q, k, v, causal=True)          # [B, H, N, D]
    o = flashmlir.sdpa(q, k, v, is_causal=True)            # like torch's SDPA
    o = flashmlir.flash_attn_func(q, k, v, causal=True)    # like flash_attn's, [B, N, H, D]
    name = flashmlir.register_transformers()               # attn_implementation=name
    kern = flashmlir.compile("f32", 64, device="cpu")      # a CPU kernel object
    path = flashmlir.compile("bf16", 128, device="cuda")   # a GPU kernel bundle

``import flashmlir`` needs neither NumPy, torch, a GPU nor the native
libraries; a function that needs one of them says so when it is called (see
:func:`available`). Native libraries are found through ``$FLASHMLIR_LIB_DIR``,
then ``flashmlir/_lib/`` in the installed package, then the repository's
``build/lib``.
"""

import numbers
import os
import sys

from ._cpu import CpuKernel
from ._errors import FlashMLIRError, LibraryNotFoundError
from ._flash_attn import (flash_attn_func, flash_attn_kvpacked_func, flash_attn_qkvpacked_func,
                          flash_attn_varlen_func, flash_attn_varlen_kvpacked_func,
                          flash_attn_varlen_qkvpacked_func)
from ._kvcache import flash_attn_with_kvcache
from ._regions import capture
from ._ring import ring_attention, shard_sequence, unshard_sequence
from ._rotary import rotary_tables, rotary_tables_from_config
from ._transformers import register_transformers
from . import _options
from ._options import check_options, check_shapes, dtype_name, parse_dtype
from ._version import __version__

__all__ = ["attention", "attention_backward", "capture", "sdpa", "compile", "available", "add_bundle",
           "CpuKernel", "FlashMLIRError", "LibraryNotFoundError", "native_version",
           "cpu_peak_bytes", "flash_attn_func", "flash_attn_kvpacked_func",
           "flash_attn_qkvpacked_func", "flash_attn_varlen_func",
           "flash_attn_varlen_kvpacked_func", "flash_attn_varlen_qkvpacked_func",
           "flash_attn_with_kvcache", "register_transformers", "ring_attention",
           "rotary_tables", "rotary_tables_from_config",
           "shard_sequence", "unshard_sequence", "__version__"]


def _kind(x, where, name="q"):
    """'torch' or 'numpy' for a supported array type, else TypeError."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(x, np.ndarray):
        return "numpy"
    raise TypeError(f"{where}: {name} must be a numpy.ndarray or a torch.Tensor, "
                    f"got {type(x).__name__}")


def attention(q, k, v, *, causal=False, scale=None, window=None, softcap=None,
              layout="bhsd", return_lse=False, alibi_slopes=None, sinks=None, score_mod=None,
              mask_mod=None, rotary_cos=None, rotary_sin=None, rotary_interleaved=False):
    """softmax(scale * q k^T, masked and soft-capped) v.

    q: [B, Hq, Nq, D], k: [B, Hkv, Nk, D], v: [B, Hkv, Nk, Dv] in layout
    ``"bhsd"`` ([batch, heads, seq, dim]); in layout ``"bshd"`` the same
    tensors are [batch, seq, heads, dim] and so is the output. Hq must be a
    multiple of Hkv (GQA; Hkv = 1 is MQA). Returns o ([B, Hq, Nq, Dv] in the
    same layout and dtype), and with ``return_lse=True`` also lse, float32
    [B, Hq, Nq] (natural log; any layout).

    * ``scale``: default 1/sqrt(D); must be > 0.
    * ``causal``: bottom-right aligned: query i sees key j iff
      j <= i + (Nk - Nq). With Nq > Nk the first rows see no key: their output
      is 0 and their lse -inf.
    * ``window=(left, right)``: query i sees keys in
      [i + off - left, i + off + right], off = Nk - Nq; -1 = unbounded side.
    * ``softcap``: scores become softcap * tanh(scores / softcap); > 0, None = off.
    * ``alibi_slopes``: float32 [Hq] or [B, Hq] (FlashAttention-2's ALiBi): the
      bias -slope * |i + off - j| is added to the (soft-capped) scores.
    * ``sinks``: [Hq] (attention sinks, as gpt-oss uses them): one logit per
      head that joins every row's softmax with a zero value row; it takes
      probability mass and is counted in lse (a row that sees no key gives
      o = 0, lse = sink). Differentiable for torch tensors (any float dtype;
      computed in float32).
    * ``rotary_cos`` / ``rotary_sin``: [P, rotary_dim / 2] tables
      (FlashAttention-2's), fused RoPE: the first rotary_dim dims of q (at
      positions i + Nk - Nq) and k (at j) are rotated as the kernels load
      them, in float32; pairs (d, d + rotary_dim/2), or (2m, 2m + 1) with
      ``rotary_interleaved=True``. Needs Nq <= Nk <= P. The backward rotates
      dq and dk back. :func:`rotary_tables` makes them from a base and
      transformers' scaling rules (linear, dynamic NTK, YaRN, Llama 3).
    * ``score_mod(score, b, h, q_idx, kv_idx) -> score`` and
      ``mask_mod(b, h, q_idx, kv_idx) -> bool``: FlexAttention's functions,
      traced once per call into the op's regions (see
      :mod:`flashmlir._regions` for the traced subset: arithmetic,
      comparisons, ``torch.where`` / ``tanh`` / ``exp`` ..., tensors captured
      by index); the backward differentiates ``score_mod`` itself. Applied
      after softcap and ALiBi; ``mask_mod`` combines with ``causal`` /
      ``window``. Captured tensors get no gradient.
      ALiBi, sinks and the regions run on the CPU so far (NumPy arrays, CPU
      torch tensors); CUDA tensors with them raise NotImplementedError.

    NumPy arrays (float32, float16, bfloat16 from ml_dtypes) run on the CPU
    through the compiler library (a kernel is compiled once per configuration
    -- dtype, head dims, scale, masks, softcap -- and cached) and give NumPy
    arrays. Strides are passed in elements without a copy; an array whose
    innermost stride is not 1 (or that has negative strides) is copied to a
    contiguous one first.

    torch tensors (float32, float16, bfloat16) on the CPU or a CUDA device go
    through the custom op ``torch.ops.flashmlir.attention_fwd`` (differentiable
    with respect to q, k and v; lse is not differentiable; works under
    ``torch.compile(fullgraph=True)``). Any strides whose innermost one is 1
    are used without a copy. CUDA runs on ``torch.cuda.current_stream()``.
    """
    where = "attention"
    opts = check_options(causal, scale, window, softcap, layout, where)
    kind = _kind(q, where)
    if kind == "torch":
        from . import _torch
        return _torch.attention(q, k, v, opts, return_lse, where, alibi_slopes, sinks,
                                score_mod, mask_mod, rotary_cos, rotary_sin,
                                rotary_interleaved)
    from . import _numpy
    o, lse = _numpy.forward(q, k, v, opts, where=where, alibi_slopes=alibi_slopes,
                            sinks=sinks, score_mod=score_mod, mask_mod=mask_mod,
                            rotary_cos=rotary_cos, rotary_sin=rotary_sin,
                            rotary_interleaved=rotary_interleaved)
    return (o, lse) if return_lse else o


def attention_backward(q, k, v, o, lse, do, *, causal=False, scale=None, window=None,
                       softcap=None, layout="bhsd", alibi_slopes=None, sinks=None,
                       score_mod=None, mask_mod=None, rotary_cos=None, rotary_sin=None,
                       rotary_interleaved=False):
    """(dq, dk, dv) of :func:`attention` given its inputs, its output o, its lse
    (``return_lse=True``) and the output gradient do; same options and layouts
    as the forward, gradients in the layout of q, k, v. With ``sinks``:
    (dq, dk, dv, dsinks), dsinks float32 [Hq]. For NumPy arrays (and torch
    tensors, through ``torch.ops.flashmlir.attention_bwd`` /
    ``attention_bwd_mods``)."""
    where = "attention_backward"
    opts = check_options(causal, scale, window, softcap, layout, where)
    kind = _kind(q, where)
    if kind == "torch":
        from . import _torch
        return _torch.attention_backward(q, k, v, o, lse, do, opts, where, alibi_slopes,
                                         sinks, score_mod, mask_mod, rotary_cos, rotary_sin,
                                         rotary_interleaved)
    from . import _numpy
    return _numpy.backward(q, k, v, o, lse, do, opts, where=where, alibi_slopes=alibi_slopes,
                           sinks=sinks, score_mod=score_mod, mask_mod=mask_mod,
                           rotary_cos=rotary_cos, rotary_sin=rotary_sin,
                           rotary_interleaved=rotary_interleaved)


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    """A drop-in for ``torch.nn.functional.scaled_dot_product_attention`` on
    [B, H, N, D] tensors (or NumPy arrays), computed by :func:`attention`.

    Differences, raised as errors rather than computed differently:

    * ``attn_mask`` must be None (ValueError); use ``is_causal`` or
      :func:`attention`'s ``window``.
    * ``dropout_p`` must be 0 (ValueError).
    * ``is_causal``: FlashMLIR aligns the causal mask bottom-right
      (query i sees keys j <= i + Nk - Nq); PyTorch aligns it top-left
      (j <= i). The two agree only when Nq == Nk, so ``is_causal=True`` with
      Nq != Nk raises ValueError (use ``attention(causal=True)`` for the
      bottom-right semantics).
    * different query and key/value head counts need ``enable_gqa=True``
      (RuntimeError otherwise, as in PyTorch); the query heads must be a
      multiple of the key/value heads.
    * ``scale`` must be > 0 when given (default 1/sqrt(D)).
    """
    where = "sdpa"
    if attn_mask is not None:
        raise ValueError(f"{where}: attn_mask is not supported (it must be None); use "
                         f"is_causal=True, or flashmlir.attention(..., window=...) for "
                         f"sliding windows")
    if not isinstance(dropout_p, numbers.Real) or isinstance(dropout_p, bool):
        raise TypeError(f"{where}: dropout_p must be a float, got {dropout_p!r}")
    if dropout_p != 0.0:
        raise ValueError(f"{where}: dropout_p must be 0.0 (FlashMLIR has no attention "
                         f"dropout), got {dropout_p!r}")
    _kind(query, where, "query")
    qs, ks, vs = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    for name, s in (("query", qs), ("key", ks), ("value", vs)):
        if len(s) != 4:
            raise ValueError(f"{where}: {name} must have rank 4 ([batch, heads, seq, dim]), "
                             f"got shape {s}")
    if qs[1] != ks[1] and not enable_gqa:
        raise RuntimeError(f"{where}: query has {qs[1]} heads but key/value have {ks[1]}; "
                           f"pass enable_gqa=True for grouped-query attention (as "
                           f"torch.nn.functional.scaled_dot_product_attention requires)")
    if is_causal and qs[2] != ks[2]:
        raise ValueError(f"{where}: is_causal=True with query length {qs[2]} != key length "
                         f"{ks[2]}: PyTorch aligns the causal mask top-left, FlashMLIR "
                         f"bottom-right, and they differ unless the lengths are equal; use "
                         f"flashmlir.attention(..., causal=True) for bottom-right alignment")
    check_shapes(qs, ks, vs, "bhsd", where)
    return attention(query, key, value, causal=bool(is_causal), scale=scale, layout="bhsd")


# Targets the bundle compiler accepts (its PTX ISA version covers up to sm_90a;
# others would make LLVM abort the process, so they are refused here).
_TARGETS = tuple(_options.GPU_TARGETS)


def _flag(value, name):
    """True/False/'both' -> 1/0/2 for the bundle compiler."""
    if isinstance(value, str):
        if value == "both":
            return 2
        raise ValueError(f"compile: {name} must be True, False or 'both', got {value!r}")
    return 1 if value else 0


def compile(dtype, head_dim, head_dim_v=None, masked=True, softcap=False,
            targets=("sm_80", "sm_90a"), out_dir=None, device="cuda", *, causal=False,
            window=None, scale=None):
    """The FlashMLIR compiler (needs the compiler library, libflashmlir_c).

    ``device="cuda"``: writes a GPU kernel bundle (PTX + manifest.json) for
    ``dtype`` (one, a sequence, or a comma-separated string of f16/bf16/f32) x
    ``head_dim`` (an int or a sequence) x ``targets``; ``head_dim_v`` defaults
    to the head dim; ``masked`` / ``softcap``: True, False or "both" (masked
    kernels serve causal, windowed and unmasked calls; mask and softcap
    values are run-time arguments). ``out_dir`` defaults to a directory in the
    cache (``$FLASHMLIR_CACHE_DIR`` or ``~/.cache/flashmlir``). Returns the
    bundle's path; pass it to :func:`add_bundle` (or ``FLASHMLIR_BUNDLE``).

    ``device="cpu"``: returns a :class:`CpuKernel` for NumPy arrays. The CPU
    kernel bakes in its scale, masks and softcap: give them as ``scale``,
    ``causal``, ``window`` and ``softcap`` (a value > 0, or False/None);
    ``masked=False`` with a mask is an error; ``targets``/``out_dir`` are
    not used.
    """
    from . import _cpu, _native, _runtime
    if device not in ("cuda", "cpu"):
        raise ValueError(f"compile: device must be 'cuda' or 'cpu', got {device!r}")
    if device == "cpu":
        if isinstance(dtype, (list, tuple)) or isinstance(head_dim, (list, tuple)):
            raise ValueError("compile: device='cpu' compiles one dtype and one head dim")
        if softcap is True:
            raise ValueError("compile: on the CPU the softcap value is compiled in; pass "
                             "softcap=<value > 0> (or False/None)")
        if not masked and (causal or window is not None):
            raise ValueError("compile: masked=False but causal or window was given")
        _native.compiler()  # a clear error when the compiler library is missing
        return _cpu.CpuKernel(dtype, head_dim, head_dim_v, scale=scale, causal=causal,
                              window=window, softcap=softcap if softcap else None)

    if causal or window is not None or scale is not None:
        raise ValueError("compile: causal/window/scale are run-time arguments of GPU "
                         "kernels; use masked=True (and pass them to attention)")
    dtypes = dtype.split(",") if isinstance(dtype, str) else (
        list(dtype) if isinstance(dtype, (list, tuple)) else [dtype])
    dtypes = [dtype_name(parse_dtype(d.strip() if isinstance(d, str) else d)) for d in dtypes]
    dims = list(head_dim) if isinstance(head_dim, (list, tuple)) else [head_dim]
    for d in dims + ([head_dim_v] if head_dim_v is not None else []):
        if not isinstance(d, numbers.Integral) or isinstance(d, bool) or d < 1:
            raise ValueError(f"compile: head dims must be ints >= 1, got {d!r}")
        if d > _options.MAX_HEAD_DIM:
            raise ValueError(f"compile: head dim {d} is out of range: it must be in "
                             f"[1, {_options.MAX_HEAD_DIM}]")
    tlist = targets.split(",") if isinstance(targets, str) else list(targets)
    tlist = [t.strip() for t in tlist]
    for t in tlist:
        if t not in _TARGETS:
            raise ValueError(f"compile: unsupported target {t!r}; FlashMLIR's GPU kernels "
                             f"are compiled for {', '.join(_TARGETS)} (newer GPUs run "
                             f"sm_80/sm_90 PTX through the driver's JIT)")
    if not tlist:
        raise ValueError("compile: no target given")
    m, s = _flag(masked, "masked"), _flag(softcap, "softcap")
    _native.compiler()  # a clear error when the compiler library is missing
    if out_dir is None:
        name = (f"{'-'.join(dtypes)}_d{'-'.join(str(int(d)) for d in dims)}"
                f"_dv{int(head_dim_v or 0)}_m{m}_s{s}_{'-'.join(tlist)}")
        out_dir = os.path.join(_runtime.cache_dir(), "bundles", __version__, "user", name)
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    _runtime.compile_bundle(out_dir, ",".join(dtypes), ",".join(str(int(d)) for d in dims),
                            int(head_dim_v or 0), m, s, ",".join(tlist))
    return out_dir


def add_bundle(path):
    """Adds a GPU kernel bundle directory, tried (in order of addition) for
    configurations the main bundle lacks."""
    from . import _runtime
    _runtime.dispatcher().add_bundle(path)


def available():
    """What this installation can do: ``{"compiler": bool, "runtime": bool,
    "cuda": bool, ...}`` -- the compiler library (CPU path, flashmlir.compile),
    the GPU runtime library, a usable CUDA device -- plus the paths found
    (``compiler_path``, ``runtime_path``, ``bundle``) and ``lib_dirs`` searched."""
    from . import _native, _runtime
    compiler = _native.has_compiler()
    runtime = _native.has_runtime()
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            cuda = bool(torch.cuda.is_available())
        except Exception:
            cuda = False
    else:
        cuda = runtime and _runtime.cuda_device_present()
    return {"compiler": compiler, "runtime": runtime, "cuda": cuda,
            "compiler_path": _native.find_library(_native.COMPILER_LIB),
            "runtime_path": _native.find_library(_native.RUNTIME_LIB),
            "bundle": _runtime.default_bundle(),
            "lib_dirs": _native.search_dirs()}


def native_version():
    """The compiler library's version string ("FlashMLIR 0.1")."""
    from . import _native
    return _native.compiler().flashmlir_version().decode()


def cpu_peak_bytes(reset=False):
    """Peak bytes of workspace the CPU kernels allocated (since the last reset)."""
    from . import _native
    lib = _native.compiler()
    v = int(lib.flashmlir_cpu_peak_bytes())
    if reset:
        lib.flashmlir_cpu_reset_peak()
    return v


# Register the torch custom ops now when torch is already imported, so that
# torch.compile finds them registered before it traces a call.
if "torch" in sys.modules:
    try:
        from . import _torch  # noqa: F401
    except ImportError:
        pass
