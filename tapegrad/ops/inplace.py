"""In-place ops: add_, sub_, mul_, div_, clamp_, zero_, fill_, copy_, item assignment, and
the in-place form of every other elementwise op (``inplace_forms``: exp_, pow_, lerp_,
addcmul_...).

Outside a graph they write through numpy; on a graph ``_inplace`` records the out-of-place
result and moves the tensor's history onto it, as PyTorch does. Every write bumps the
tensor's version and marks the tape slots that held the old value (``_mark_modified``), so
a backward that would read the old value raises instead.
"""
import numpy as np

from .. import kernels as K
from .. import tape as T
from ..tensor import Tensor, grad_enabled
from .elementwise import _broadcast_error, _t, add, clamp, div, mul, sub, where
from .movement import _gather, _index_key
from .operands import _REAL, _bad_operand, to_dtype
from .record import _N, _name, _plain, _record, _recording


def _mark_modified(t, count=None, resave=True):
    """t's storage changed: every tape slot holding its value is now out of date for the
    records made before `count` (default: all so far); later records see the new value."""
    t._version += 1
    links = []
    if t._tape is not None:
        links.append((t._tape, t._gid))
    if t._snap is not None:
        links.append((t._snaptape, t._snap))
    if t._alias is not None:
        links.append(t._alias)
    for tp, gid in links:
        loc = tp.local(gid)
        if loc >= 0:
            tp.dirty[gid] = (tp.n if count is None else count, t._version)
            if resave:
                tp.resave(loc, t._data)
    if t._base is not None:
        _mark_modified(t._base)


def _unrecorded_write():
    # a write the tape does not record (an update under no_grad, running statistics):
    # while tracing, stop before it happens
    T.refuse_in_trace("changed a tensor in place outside the recording (an update under "
                      "no_grad, running statistics)")


def _inplace(t, outofplace, numpy_inplace=None):
    """Run an in-place op: numpy in place when nothing is recorded, otherwise record the
    out-of-place result and rebase t's history onto it (as PyTorch does)."""
    on = grad_enabled()
    if on and t._tape is None and t._rg:
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation. "
            "Update parameters inside `with tapegrad.no_grad():` (as optimizers do), or "
            "work on a clone().")
    if not on or (not t._rg and numpy_inplace is not None):
        if numpy_inplace is not None:
            _unrecorded_write()
            try:
                numpy_inplace(t._data)
            except TypeError as e:   # numpy's casting error (e.g. float into an int tensor)
                raise RuntimeError(f"in-place op: the result can't be stored in a tensor of "
                                   f"dtype {t._data.dtype} ({e})") from None
            except ValueError as e:  # read-only memory, or an operand too big to fit
                raise _inplace_error(t, e) from None
            _mark_modified(t)
            return t
    res = outofplace(t)
    if res._data.dtype != t._data.dtype and not np.can_cast(res._data.dtype, t._data.dtype,
                                                         "same_kind"):
        raise RuntimeError(f"result type {res._data.dtype} can't be cast to the desired output "
                           f"type {t._data.dtype}")
    if res._data.shape != t._data.shape or not t._data.flags.writeable:
        raise _inplace_error(t, None, res._data.shape)
    if res._tape is None:
        _unrecorded_write()
        np.copyto(t._data, res._data, casting="unsafe")
        _mark_modified(t)
        return t
    if t._base is not None:
        raise RuntimeError(
            "in-place operations on a view of a tensor that requires grad are not supported; "
            "compute the new value out of place (for example with tapegrad.where or cat)")
    tp = res._tape
    loc = tp.local(res._gid)
    _mark_modified(t, count=loc, resave=False)
    np.copyto(t._data, res._data, casting="unsafe")
    old = (t._tape, t._gid)
    t._tape, t._gid, t._fn, t._rg, t._snap = tp, res._gid, res._fn, True, None
    tp.hold(loc)
    if old[0] is not None:
        old[0].release(old[1])
    return t


def _inplace_error(t, err, shape=None):
    if not t._data.flags.writeable:
        return RuntimeError("in-place op on a tensor whose memory is read-only (from_numpy of "
                            "a read-only array); write to a copy: t = t.clone()")
    if shape is None:
        return RuntimeError(f"in-place op on a tensor of shape {list(t._data.shape)}: {err}")
    return RuntimeError(f"output with shape {list(t._data.shape)} doesn't match the broadcast "
                        f"shape {list(shape)}")


def _other_data(o):
    return o._data if isinstance(o, Tensor) else o


def _check_other(sym, t, other):
    if not isinstance(other, (Tensor, np.ndarray, _REAL)):
        raise _bad_operand(sym, t, other, other)


def add_(t, other, alpha=1):
    _check_other("+=", t, other)

    def np_add(a):
        o = _other_data(other)
        a += o if alpha == 1 else alpha * np.asarray(o)
    return _inplace(t, lambda x: add(x, other, alpha=alpha),
                    None if _needs_grad(other) else np_add)


def sub_(t, other, alpha=1):
    _check_other("-=", t, other)

    def np_sub(a):
        o = _other_data(other)
        a -= o if alpha == 1 else alpha * np.asarray(o)
    return _inplace(t, lambda x: sub(x, other, alpha=alpha),
                    None if _needs_grad(other) else np_sub)


def mul_(t, other):
    _check_other("*=", t, other)

    def np_mul(a):
        a *= _other_data(other)
    return _inplace(t, lambda x: mul(x, other), None if _needs_grad(other) else np_mul)


def div_(t, other):
    _check_other("/=", t, other)

    def np_div(a):
        a /= _other_data(other)
    return _inplace(t, lambda x: div(x, other), None if _needs_grad(other) else np_div)


def clamp_(t, min=None, max=None):  # noqa: A002
    return _inplace(t, lambda x: clamp(x, min, max),
                    lambda a: np.clip(a, min, max, out=a))


_FILL = _name("FillBackward2")        # PyTorch's names: a number, a 0-d tensor
_FILLT = _name("FillBackward3")
_ZERO = _name("ZeroBackward0")
_COPY = _name("CopyBackwards")


def _overwrite(x, v, fn):
    """out = v broadcast to x's shape and dtype, recorded as where(False, x, v): the value is
    v exactly (x * 0 + v would turn inf and nan in x into nan), x gets a zero gradient and
    v the (summed) incoming one, as PyTorch's fill_/zero_/copy_ do."""
    v = to_dtype(v, x._data.dtype)
    shp = x._data.shape
    try:
        out = np.array(np.broadcast_to(v._data, shp))
    except ValueError:
        raise _broadcast_error(shp, v._data.shape) from None
    if not _recording(x, v):
        return _plain(out)
    c = _plain(np.zeros((), out.dtype))
    return _record(K.WHERE, fn, out, x, v, c, (v._data.shape != shp) << 1 | (shp != ()) << 2)


def zero_(t):
    return _fill(t, 0, _ZERO)


def fill_(t, value):
    return _fill(t, value, _FILLT if isinstance(value, Tensor) else _FILL)


def _fill(t, value, fn):
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value._data.ndim} dimensions.")
        vt = value
    elif isinstance(value, _REAL):
        vt = _plain(np.asarray(value))
    else:
        raise TypeError(f"fill_(): argument 'value' must be a number or a 0-d Tensor, not "
                        f"{type(value).__name__}")
    v = vt._data
    return _inplace(t, lambda x: _overwrite(x, vt, fn),
                    None if _needs_grad(value) else (lambda a: a.fill(v)))


def copy_(t, src):
    if not isinstance(src, (Tensor, np.ndarray)):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    s = _t(src)

    def np_copy(a):
        try:
            np.copyto(a, s._data, casting="unsafe")
        except ValueError:
            if not a.flags.writeable:
                raise
            raise _broadcast_error(a.shape, s._data.shape) from None
    return _inplace(t, lambda x: _overwrite(x, s, _COPY), None if _needs_grad(s) else np_copy)


def _needs_grad(o):
    return isinstance(o, Tensor) and o._rg and grad_enabled()


def setitem(t, key, value):
    key = _index_key(key)
    v = _t(value)
    if not ((t._rg or v._rg) and grad_enabled()):
        if t._tape is None and t._rg and grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an "
                               "in-place operation (item assignment); do it under no_grad()")
        _unrecorded_write()
        t._data[key] = v._data
        _mark_modified(t)
        return

    def place(x):
        # out = where(mask, v spread over the indexed positions, x): two records, exact VJP
        mask = np.zeros(x._data.shape, bool)
        mask[key] = True
        region_shape = x._data[key].shape
        vv = to_dtype(v, x._data.dtype) if v._data.dtype != x._data.dtype else v
        try:
            vidx = np.broadcast_to(np.arange(vv._data.size).reshape(vv._data.shape), region_shape)
        except ValueError:
            raise RuntimeError(f"shape mismatch: value tensor of shape {tuple(v.shape)} cannot "
                               f"be broadcast to indexing result of shape {region_shape}") from None
        full = np.zeros(x._data.shape, np.int64)
        full[key] = vidx
        spread_vals = vv._data.reshape(-1)[full]
        spread = _gather(vv, spread_vals, full, _N["index"]) if _recording(vv) else _plain(spread_vals)
        return where(_plain(mask), spread, x)
    _inplace(t, place)


# ---- the in-place forms of the elementwise ops ---------------------------------------------------
def _store(a, v):
    """Write an out-of-place result v into a (numpy path): PyTorch's casting rule, a float
    result never goes into an integer tensor."""
    if v.dtype.kind == "f" and a.dtype.kind != "f":
        raise TypeError(f"result type {v.dtype} can't be cast to the desired output type "
                        f"{a.dtype}")
    np.copyto(a, v, casting="unsafe")


class _BadArgument(Exception):
    """Carries an op's TypeError for a bad argument past _inplace's casting handler."""


# relu's value on an integer tensor is an integer (PyTorch keeps the dtype), unlike the
# other activations: its in-place form computes in the integers (sign, floor, ... do so
# out of place already, registry.py)
_ON_INTEGERS = dict(relu=lambda a: np.maximum(a, 0))


def _inplace_form(name, op):
    """``t.<name>_(*args)``: t = op(t, *args) in place, recorded on a graph through
    ``_inplace`` (version counter, history moved onto the result), numpy otherwise."""
    on_ints = _ON_INTEGERS.get(name)

    def numpy_form(args, kwargs):
        def write(a):
            if on_ints is not None and a.dtype.kind in "iu":
                np.copyto(a, on_ints(a))
                return
            try:
                v = op(_plain(a), *args, **kwargs)._data
            except TypeError as e:      # a bad argument: not the casting error _inplace words
                raise _BadArgument(e) from None
            _store(a, v)
        return write

    def f(self, *args, **kwargs):
        if not isinstance(self, Tensor):
            raise TypeError(f"{name}_(): self must be a Tensor, not {type(self).__name__}")
        needs = any(_needs_grad(v) for v in list(args) + list(kwargs.values()))
        try:
            return _inplace(self, lambda x: op(x, *args, **kwargs),
                            None if needs else numpy_form(args, kwargs))
        except _BadArgument as e:
            raise e.args[0] from None
    f.__name__ = f.__qualname__ = name + "_"
    f.__doc__ = (f"In-place ``{name}``: the tensor is overwritten with the result and "
                 f"returned; on a graph the version-counter rules of every in-place op apply.")
    return f


def inplace_forms():
    """The in-place methods (``exp_``, ``pow_``, ``lerp_``, ``addcmul_``...) by name: every
    elementwise op that has one in PyTorch."""
    from .. import ops
    from . import arithmetic, composite, registry
    from . import elementwise as E
    unary = dict(exp=E.exp, log=E.log, sqrt=E.sqrt, abs=E.abs, neg=E.neg, sin=E.sin,
                 cos=E.cos, tanh=E.tanh, sigmoid=E.sigmoid, relu=E.relu, square=E.square)
    unary.update({u: getattr(registry, u) for u in registry.REGISTRY_OPS if u != "logaddexp"})
    others = dict(pow=E.pow, lerp=E.lerp, addcmul=arithmetic.addcmul,
                  addcdiv=arithmetic.addcdiv, copysign=arithmetic.copysign,
                  nan_to_num=arithmetic.nan_to_num, masked_fill=composite.masked_fill,
                  true_divide=ops.div, clamp_min=arithmetic.clamp_min,
                  clamp_max=arithmetic.clamp_max, frac=arithmetic.frac,
                  deg2rad=arithmetic.deg2rad, rad2deg=arithmetic.rad2deg,
                  scatter=composite.scatter, scatter_add=composite.scatter_add,
                  index_add=composite.index_add, index_fill=composite.index_fill,
                  fill_diagonal=composite.fill_diagonal)
    forms = {f"{n}_": _inplace_form(n, f) for n, f in {**unary, **others}.items()}
    forms["clip_"] = clamp_
    forms["negative_"] = forms["neg_"]
    forms["absolute_"] = forms["abs_"]
    return forms
