"""score_mod / mask_mod from Python: FlexAttention's functions traced into the
attn ops' regions.

``score_mod(score, b, h, q_idx, kv_idx) -> score`` and ``mask_mod(b, h, q_idx,
kv_idx) -> bool`` are called once with symbolic values; what they compute
becomes the body of the op's ``score_mod`` / ``mask_mod`` region (MLIR text),
which the compiler inlines into its loops and, for ``score_mod``,
differentiates for the backward. The traced subset:

* arithmetic ``+ - * / // % -x abs(x)`` on scores (f32) and indices (index),
  Python numbers as constants; an index used with a score becomes a float;
* comparisons ``< <= > >= == !=`` and ``& | ^ ~`` on their results (no
  ``and`` / ``or`` / ``if``: those need a concrete value and raise);
* ``torch.where``, ``torch.tanh``, ``torch.exp``, ``torch.exp2``,
  ``torch.log``, ``torch.log2``, ``torch.sqrt``, ``torch.abs``,
  ``torch.maximum``, ``torch.minimum`` (and the NumPy ufuncs / ``np.where``);
* tensors captured by index: ``bias[h]``, ``doc_ids[b, q_idx]`` on a torch
  tensor (or a NumPy array wrapped in :func:`flashmlir.capture`), read as
  float32 (integers exactly up to 2^24); at most four per call.
"""

import math
import numbers

MAX_CAPTURES = 4


class TraceError(TypeError):
    pass


class _Trace:
    def __init__(self, where):
        self.where = where
        self.lines = []
        self.count = 0
        self.consts = {}
        self.captures = []  # (source object, flattened float32 array/tensor, shape)

    def fresh(self):
        self.count += 1
        return f"%v{self.count}"

    def emit(self, text, kind):
        name = self.fresh()
        self.lines.append(f"    {name} = {text}")
        return Sym(self, name, kind)

    def const(self, value, kind):
        key = (kind, value)
        if key not in self.consts:
            if kind == "f32":
                v = float(value)
                if not math.isfinite(v):
                    lit = "0x7F800000" if v > 0 else ("0xFF800000" if v < 0 else "0x7FC00000")
                else:
                    lit = repr(v) if ("e" in repr(v) or "." in repr(v)) else repr(v) + ".0"
                    if "e" in lit and "." not in lit.split("e")[0]:
                        m, e = lit.split("e")
                        lit = m + ".0e" + e
                self.consts[key] = self.emit(f"arith.constant {lit} : f32", "f32")
            elif kind == "index":
                self.consts[key] = self.emit(f"arith.constant {int(value)} : index", "index")
            else:
                self.consts[key] = self.emit(
                    f"arith.constant {'true' if value else 'false'}", "i1")
        return self.consts[key]

    def capture(self, source, flat, shape):
        for i, (src, _, _) in enumerate(self.captures):
            if src is source:
                return i
        if len(self.captures) == MAX_CAPTURES:
            raise TraceError(f"{self.where}: at most {MAX_CAPTURES} captured tensors per "
                             f"call")
        self.captures.append((source, flat, shape))
        return len(self.captures) - 1


def _lift(tr, x, like):
    """x as a Sym of `like`'s kind where x is a Python number."""
    if isinstance(x, Sym):
        return x
    if isinstance(x, bool):
        return tr.const(x, "i1")
    if isinstance(x, numbers.Integral):
        return tr.const(int(x), "index" if like == "index" else "f32")
    if isinstance(x, numbers.Real):
        return tr.const(float(x), "f32")
    raise TraceError(f"{tr.where}: cannot use a {type(x).__name__} in a traced "
                     f"score_mod / mask_mod (numbers, the traced values and captured "
                     f"tensors indexed by them only)")


def _to_f32(x):
    tr = x.tr
    if x.kind == "f32":
        return x
    if x.kind == "index":
        i = tr.emit(f"arith.index_cast {x.name} : index to i64", "i64")
        return tr.emit(f"arith.sitofp {i.name} : i64 to f32", "f32")
    return tr.emit(f"arith.uitofp {x.name} : i1 to f32", "f32")


def _pair(a, b):
    """Both operands as Syms of one kind: index with index, else f32."""
    tr = a.tr if isinstance(a, Sym) else b.tr
    kind_a = a.kind if isinstance(a, Sym) else None
    kind_b = b.kind if isinstance(b, Sym) else None
    kinds = {k for k in (kind_a, kind_b) if k}
    if kinds == {"index"} and not any(isinstance(x, float) for x in (a, b)):
        return _lift(tr, a, "index"), _lift(tr, b, "index"), "index"
    if kinds == {"i1"} and all(isinstance(x, (Sym, bool)) for x in (a, b)):
        return _lift(tr, a, "i1"), _lift(tr, b, "i1"), "i1"
    a = _to_f32(_lift(tr, a, "f32"))
    b = _to_f32(_lift(tr, b, "f32"))
    return a, b, "f32"


_ARITH = {"add": ("arith.addi", "arith.addf"), "sub": ("arith.subi", "arith.subf"),
          "mul": ("arith.muli", "arith.mulf")}
_CMP = {"lt": ("slt", "olt"), "le": ("sle", "ole"), "gt": ("sgt", "ogt"),
        "ge": ("sge", "oge"), "eq": ("eq", "oeq"), "ne": ("ne", "une")}


def _binary(op, a, b):
    x, y, kind = _pair(a, b)
    tr = x.tr
    if op in _ARITH:
        if kind == "i1":
            raise TraceError(f"{tr.where}: arithmetic on a boolean; use torch.where")
        name = _ARITH[op][0 if kind == "index" else 1]
        return tr.emit(f"{name} {x.name}, {y.name} : {kind}", kind)
    if op == "truediv":
        x, y = _to_f32(x), _to_f32(y)
        return tr.emit(f"arith.divf {x.name}, {y.name} : f32", "f32")
    if op in ("floordiv", "mod"):
        if kind != "index":
            raise TraceError(f"{tr.where}: // and % take indices")
        q = tr.emit(f"arith.floordivsi {x.name}, {y.name} : index", "index")
        if op == "floordiv":
            return q
        p = tr.emit(f"arith.muli {q.name}, {y.name} : index", "index")
        return tr.emit(f"arith.subi {x.name}, {p.name} : index", "index")
    if op in _CMP:
        if kind == "i1":
            x, y = _to_f32(x), _to_f32(y)
            kind = "f32"
        pred = _CMP[op][0 if kind == "index" else 1]
        name = "arith.cmpi" if kind == "index" else "arith.cmpf"
        return tr.emit(f"{name} {pred}, {x.name}, {y.name} : {kind}", "i1")
    if op in ("and", "or", "xor"):
        if kind != "i1":
            raise TraceError(f"{tr.where}: & | ^ take booleans (comparisons)")
        return tr.emit(f"arith.{op}i {x.name}, {y.name} : i1", "i1")
    raise AssertionError(op)


def _unary(fn, x):
    tr = x.tr
    if fn in ("tanh", "exp", "exp2", "log", "log2", "sqrt"):
        x = _to_f32(x)
        return tr.emit(f"math.{fn} {x.name} : f32", "f32")
    if fn == "abs":
        if x.kind == "index":
            n = tr.emit(f"arith.subi {tr.const(0, 'index').name}, {x.name} : index", "index")
            neg = tr.emit(f"arith.cmpi slt, {x.name}, {tr.const(0, 'index').name} : index", "i1")
            return tr.emit(f"arith.select {neg.name}, {n.name}, {x.name} : index", "index")
        x = _to_f32(x)
        return tr.emit(f"math.absf {x.name} : f32", "f32")
    if fn == "neg":
        if x.kind == "index":
            return _binary("sub", 0, x)
        x = _to_f32(x)
        return tr.emit(f"arith.negf {x.name} : f32", "f32")
    raise AssertionError(fn)


def where(cond, a, b):
    """select: a where cond else b (traced)."""
    tr = next(x.tr for x in (cond, a, b) if isinstance(x, Sym))
    c = _lift(tr, cond, "i1")
    if c.kind != "i1":
        raise TraceError(f"{tr.where}: where's condition must be a comparison")
    x, y, kind = _pair(a, b)
    return tr.emit(f"arith.select {c.name}, {x.name}, {y.name} : {kind}", kind)


def _extremum(op, a, b):
    x, y, kind = _pair(a, b)
    name = {("max", "index"): "arith.maxsi", ("min", "index"): "arith.minsi",
            ("max", "f32"): "arith.maximumf", ("min", "f32"): "arith.minimumf"}[(op, kind)]
    return x.tr.emit(f"{name} {x.name}, {y.name} : {kind}", kind)


def _load(tr, source, shape, flat, index):
    """source[index] of a captured tensor, as an f32 Sym."""
    if not isinstance(index, tuple):
        index = (index,)
    if len(index) != len(shape):
        raise TraceError(f"{tr.where}: a captured tensor of shape {tuple(shape)} must be "
                         f"indexed by {len(shape)} indices, got {len(index)}")
    slot = tr.capture(source, flat, shape)
    lin, stride = None, 1
    for dim, ix in reversed(list(zip(shape, index))):
        ix = _lift(tr, ix, "index")
        if ix.kind != "index":
            raise TraceError(f"{tr.where}: captured tensors are indexed by b, h, q_idx, "
                             f"kv_idx and integers")
        term = ix if stride == 1 else _binary("mul", ix, stride)
        lin = term if lin is None else _binary("add", lin, term)
        stride *= int(dim)
    return tr.emit(f"memref.load %cap{slot}[{lin.name}] : memref<?xf32>", "f32")


class Sym:
    """A traced value: an SSA name of kind 'f32', 'index' or 'i1'."""

    __slots__ = ("tr", "name", "kind")
    __array_priority__ = 1000

    def __init__(self, tr, name, kind):
        self.tr, self.name, self.kind = tr, name, kind

    def __add__(self, o): return _binary("add", self, o)
    def __radd__(self, o): return _binary("add", o, self)
    def __sub__(self, o): return _binary("sub", self, o)
    def __rsub__(self, o): return _binary("sub", o, self)
    def __mul__(self, o): return _binary("mul", self, o)
    def __rmul__(self, o): return _binary("mul", o, self)
    def __truediv__(self, o): return _binary("truediv", self, o)
    def __rtruediv__(self, o): return _binary("truediv", o, self)
    def __floordiv__(self, o): return _binary("floordiv", self, o)
    def __rfloordiv__(self, o): return _binary("floordiv", o, self)
    def __mod__(self, o): return _binary("mod", self, o)
    def __rmod__(self, o): return _binary("mod", o, self)
    def __neg__(self): return _unary("neg", self)
    def __pos__(self): return self
    def __abs__(self): return _unary("abs", self)
    def __lt__(self, o): return _binary("lt", self, o)
    def __le__(self, o): return _binary("le", self, o)
    def __gt__(self, o): return _binary("gt", self, o)
    def __ge__(self, o): return _binary("ge", self, o)
    def __eq__(self, o): return _binary("eq", self, o)  # noqa: E704
    def __ne__(self, o): return _binary("ne", self, o)
    def __and__(self, o): return _binary("and", self, o)
    def __rand__(self, o): return _binary("and", o, self)
    def __or__(self, o): return _binary("or", self, o)
    def __ror__(self, o): return _binary("or", o, self)
    def __xor__(self, o): return _binary("xor", self, o)
    def __invert__(self): return _binary("xor", self, True)
    __hash__ = None

    def __bool__(self):
        raise TraceError(f"{self.tr.where}: a traced score_mod / mask_mod cannot branch on "
                         f"its values (if / and / or / not); use torch.where, & , | and ~")

    def __index__(self):
        raise TraceError(f"{self.tr.where}: a traced index cannot index a Python "
                         f"sequence; capture a torch tensor (or flashmlir.capture(array))")

    # NumPy: ufuncs and np.where on traced values.
    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        name = ufunc.__name__
        fns = {"tanh": "tanh", "exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2",
               "sqrt": "sqrt", "absolute": "abs", "negative": "neg"}
        if method == "__call__" and name in fns and len(inputs) == 1:
            return _unary(fns[name], inputs[0])
        if method == "__call__" and name in ("maximum", "minimum", "fmax", "fmin"):
            return _extremum("max" if "max" in name else "min", *inputs)
        ops = {"add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "truediv",
               "floor_divide": "floordiv", "less": "lt", "less_equal": "le",
               "greater": "gt", "greater_equal": "ge", "equal": "eq", "not_equal": "ne",
               "logical_and": "and", "logical_or": "or", "bitwise_and": "and",
               "bitwise_or": "or"}
        if method == "__call__" and name in ops and len(inputs) == 2:
            return _binary(ops[name], *inputs)
        raise TraceError(f"{self.tr.where}: numpy.{name} is not in the traced subset")

    def __array_function__(self, func, types, args, kwargs):
        if func.__name__ == "where" and len(args) == 3:
            return where(*args)
        raise TraceError(f"{self.tr.where}: numpy.{func.__name__} is not in the traced subset")

    # torch: functions on traced values, and captured tensors indexed by them.
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        tr = _first_trace(args)
        if name == "__getitem__" and len(args) == 2:
            src = args[0]
            t = src.detach().to("cpu").float().contiguous().reshape(-1)
            _check_exact(src, t, tr)
            return _load(tr, src, tuple(src.shape), t, args[1])
        unary = {"tanh": "tanh", "exp": "exp", "exp2": "exp2", "log": "log",
                 "log2": "log2", "sqrt": "sqrt", "abs": "abs", "neg": "neg",
                 "negative": "neg"}
        if name in unary and len(args) == 1 and not kwargs:
            return _unary(unary[name], args[0])
        if name == "where" and len(args) == 3:
            return where(*args)
        if name in ("maximum", "minimum", "max", "min") and len(args) == 2:
            return _extremum("max" if "max" in name else "min", *args)
        binary = {"add": "add", "sub": "sub", "subtract": "sub", "mul": "mul",
                  "multiply": "mul", "div": "truediv", "true_divide": "truediv",
                  "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "eq": "eq", "ne": "ne",
                  "logical_and": "and", "logical_or": "or"}
        if name in binary and len(args) == 2 and not kwargs:
            return _binary(binary[name], *args)
        where_ = tr.where if tr else "score_mod"
        raise TraceError(f"{where_}: torch.{name} is not in the traced subset of "
                         f"score_mod / mask_mod")


def _first_trace(args):
    for a in args:
        if isinstance(a, Sym):
            return a.tr
        if isinstance(a, tuple):
            t = _first_trace(a)
            if t:
                return t
    return None


def _check_exact(src, flat, tr):
    """Integer captures must survive the float32 read."""
    if getattr(src, "is_floating_point", lambda: True)():
        return
    big = flat.abs().max().item() if flat.numel() else 0
    if big > 2 ** 24:
        raise TraceError(f"{tr.where}: a captured integer tensor has values up to {big}, "
                         f"beyond what float32 holds exactly (2^24)")


class capture:
    """A NumPy array (or anything array-like) that a traced score_mod /
    mask_mod indexes: ``ids = flashmlir.capture(doc_ids)`` then
    ``ids[q_idx] == ids[kv_idx]`` (torch tensors need no wrapper)."""

    def __init__(self, array):
        import numpy as np
        self.array = np.asarray(array)
        if self.array.dtype.kind not in "biuf":
            raise TypeError(f"flashmlir.capture: unsupported dtype {self.array.dtype}")
        self.flat = np.ascontiguousarray(self.array, dtype=np.float32).reshape(-1)
        if self.array.dtype.kind in "iu" and self.array.size and \
                np.abs(self.array).max() > 2 ** 24:
            raise TypeError("flashmlir.capture: integer values beyond 2^24 are not exact "
                            "in float32")

    def __getitem__(self, index):
        tr = _first_trace(index if isinstance(index, tuple) else (index,))
        if tr is None:
            return self.array[index]
        return _load(tr, self, self.array.shape, self.flat, index)


class Region:
    """A traced region: its body text and the flattened float32 captures."""

    __slots__ = ("text", "captures")

    def __init__(self, text, captures):
        self.text, self.captures = text, captures


def trace_regions(score_mod, mask_mod, where):
    """(score_mod text or None, mask_mod text or None, captures): the two
    functions traced, their captured tensors in one list (%cap0, ...)."""
    captures = []
    texts = []
    for fn, is_score in ((score_mod, True), (mask_mod, False)):
        if fn is None:
            texts.append(None)
            continue
        if not callable(fn):
            raise TypeError(f"{where}: {'score_mod' if is_score else 'mask_mod'} must be a "
                            f"function, got {type(fn).__name__}")
        tr = _Trace(f"{where}: {'score_mod' if is_score else 'mask_mod'}")
        tr.captures = captures
        if is_score:
            args = [Sym(tr, "%s", "f32")] + [Sym(tr, n, "index")
                                             for n in ("%b", "%h", "%i", "%j")]
            out = _to_f32(_lift(tr, fn(*args), "f32"))
            head = "^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):"
            tail = f"    attn.yield {out.name} : f32"
        else:
            args = [Sym(tr, n, "index") for n in ("%b", "%h", "%i", "%j")]
            out = _lift(tr, fn(*args), "i1")
            if out.kind != "i1":
                raise TraceError(f"{where}: mask_mod must return a boolean (a comparison), "
                                 f"got a {'score' if out.kind == 'f32' else 'index'}")
            head = "^bb0(%b: index, %h: index, %i: index, %j: index):"
            tail = f"    attn.yield {out.name} : i1"
        texts.append("\n".join([head] + tr.lines + [tail]))
    return texts[0], texts[1], [c[1] for c in captures]
