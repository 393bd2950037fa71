"""Elementwise ops written by hand: neg, exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu,
clamp, the arithmetic operators, maximum/minimum, square, lerp and where.

A tensor with a tensor broadcasts numpy's way (``_binary`` records which operand repeats);
a tensor with a Python number makes one record that carries the number (ADDC, MULC,
POWC...). ``add`` and ``mul`` with a float, and the one-input functions, are the hottest
paths: a few checks, the numpy call and ``_record1``.
"""
import builtins

import numpy as np

from .. import kernels as K
from .. import tape as T
from ..tensor import Tensor, _FLOATS, _gstate, _note_read, float32, float64
from .operands import _REAL, _float, _is_scalar, _need_tensor, _operand, _promote, as_tensor
from .record import _N, _plain, _record, _record1, _recording

_BY_INPUT = K.BINARY_READS_BY_INPUT

_max = builtins.max     # the package defines max() with torch's meaning; this is Python's

_ADD = _N["add"]
_MUL = _N["mul"]


def _unary(op, fn, numpy_fn, x, f0=0.0, f1=0.0):
    try:
        d = x._data.dtype
    except AttributeError:
        raise _need_tensor(x, T.OPNAMES[op]) from None
    if d is not float32 and d is not float64:
        x = _float(x)
    out = numpy_fn(x._data)
    if x._rg and _gstate.enabled:
        return _record1(op, fn, out, x, f0, f1)
    return _plain(out)


def neg(x):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "neg")
    if x._data.dtype not in _FLOATS:
        if x._data.dtype == np.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return _plain(-x._data)
    return _unary(K.NEG, _N["neg"], np.negative, x)


def exp(x):
    return _unary(K.EXP, _N["exp"], np.exp, x)


def log(x):
    return _unary(K.LOG, _N["log"], np.log, x)


def sqrt(x):
    return _unary(K.SQRT, _N["sqrt"], np.sqrt, x)


def abs(x):  # noqa: A001 - torch's name
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "abs")
    if x._data.dtype not in _FLOATS:
        return _plain(np.abs(x._data))
    return _unary(K.ABS, _N["abs"], np.abs, x)


def sin(x):
    return _unary(K.SIN, _N["sin"], np.sin, x)


def cos(x):
    return _unary(K.COS, _N["cos"], np.cos, x)


def tanh(x):
    return _unary(K.TANH, _N["tanh"], np.tanh, x)


def _sigmoid_np(a):
    # exp(-logaddexp(0, -a)) is 1 / (1 + exp(-a)) without overflow warnings
    return np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)


def sigmoid(x):
    return _unary(K.SIGMOID, _N["sigmoid"], _sigmoid_np, x)


def relu(x):
    return _unary(K.RELU, _N["relu"], lambda a: np.maximum(a, 0), x)


def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    for v in (min, max):
        if v is not None and not isinstance(v, (_REAL, Tensor)):
            raise TypeError(f"clamp(): min and max must be numbers or tensors, not "
                            f"{type(v).__name__}")
    if isinstance(x, Tensor) and x._data.dtype.kind in "iu" and builtins.all(
            v is None or isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            for v in (min, max)):
        return _plain(np.clip(x._data, min, max))     # integer bounds keep the dtype (torch)
    lo = -np.inf if min is None else float(min)
    hi = np.inf if max is None else float(max)
    x = _float(x)
    return _unary(K.CLAMP, _N["clamp"], lambda a: np.clip(a, lo, hi).astype(a.dtype, copy=False),
                  x, lo, hi)


def square(x):
    return pow(x, 2)


def lerp(input, end, weight):
    """``input + weight * (end - input)``; ``weight`` a number or a tensor (PyTorch's lerp,
    composed from recorded ops, so its grad_fn is the last op's, ``AddBackward0``)."""
    if not isinstance(input, Tensor) or not isinstance(end, Tensor):
        raise TypeError(f"lerp(): input and end must be tensors, got "
                        f"{type(input).__name__} and {type(end).__name__}")
    return add(input, mul(weight, sub(end, input)))


def _broadcast_error(sx, sy, what="tensor"):
    nd = _max(len(sx), len(sy))
    px = (1,) * (nd - len(sx)) + tuple(sx)
    py = (1,) * (nd - len(sy)) + tuple(sy)
    for d in range(nd - 1, -1, -1):
        if px[d] != py[d] and px[d] != 1 and py[d] != 1:
            return RuntimeError(
                f"The size of tensor a ({px[d]}) must match the size of tensor b ({py[d]}) at "
                f"non-singleton dimension {d}: shapes {tuple(sx)} and {tuple(sy)} do not "
                f"broadcast. Reshape or unsqueeze one operand so the sizes agree or are 1.")
    return RuntimeError(f"shapes {tuple(sx)} and {tuple(sy)} do not broadcast")


def _binary(op, fn, numpy_fn, x, y):
    x, y = _promote(x, y)
    try:
        out = numpy_fn(x._data, y._data)
    except ValueError:
        if x._data.shape != y._data.shape:
            raise _broadcast_error(x._data.shape, y._data.shape) from None
        raise
    except TypeError:
        if op == K.SUB and x._data.dtype == np.bool_:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead."
                               ) from None
        raise
    if not ((x._rg or y._rg) and _gstate.enabled):
        return _plain(out)
    shp = out.shape
    sx, sy = x._data.shape, y._data.shape
    flags = (sx != shp) | (sy != shp) << 1
    if flags and flags != 3:
        small = sx if flags == 1 else sy
        k = 0
        while k < len(small) and small[k] == 1:
            k += 1
        if small[k:] == shp[len(shp) - len(small) + k:]:
            flags |= flags << 3          # a suffix repeat: the sweep needs no index map
    need = _BY_INPUT.get(op)     # only what the gradients of the inputs that need them read
    reads = None if need is None else (need[0] if x._rg else 0) | (need[1] if y._rg else 0)
    return _record(op, fn, out, x, y, None, flags, reads=reads)


def _scalar_op(op, fn, numpy_fn, x, c, f0):
    if type(x) is not Tensor:
        x = _t(x)
    d = x._data.dtype
    if d is not float32 and d is not float64:
        if d in _FLOATS:
            pass
        elif isinstance(c, (float, np.floating)) or op == K.RDIVC or fn == _N["div"]:
            x = _float(x)
            d = x._data.dtype
        else:
            return _plain(numpy_fn(x._data))
    out = numpy_fn(x._data)
    if out.dtype is not d:
        out = out.astype(d)
    if x._rg and _gstate.enabled:
        return _record1(op, fn, out, x, f0)
    return _plain(out)


def add(x, y, alpha=1):
    ty = type(y)
    if (ty is float or ty is int) and type(x) is Tensor and alpha == 1:   # the hot case
        d = x._data
        if d.dtype is float32 or d.dtype is float64:
            out = d + y
            if x._rg and _gstate.enabled:
                return _record1(K.ADDC, _ADD, out, x, float(y))
            return _plain(out)
    if alpha != 1:
        y = mul(y, alpha)
    if _is_scalar(y):
        return _scalar_op(K.ADDC, _N["add"], lambda a: a + y, x, y, float(y))
    if _is_scalar(x):
        return add(y, x)
    return _binary(K.ADD, _N["add"], np.add, _operand("+", x, y, x), _operand("+", x, y, y))


def sub(x, y, alpha=1):
    if alpha != 1:
        y = mul(y, alpha)
    if _is_scalar(y):
        return _scalar_op(K.ADDC, _N["sub"], lambda a: a - y, x, y, -float(y))
    if _is_scalar(x):
        return _scalar_op(K.NEG, _N["rsub"], lambda a: x - a, _operand("-", x, y, y), x,
                          float(x))
    return _binary(K.SUB, _N["sub"], np.subtract, _operand("-", x, y, x),
                   _operand("-", x, y, y))


def mul(x, y):
    ty = type(y)
    if (ty is float or ty is int) and type(x) is Tensor:   # the hot case
        d = x._data
        if d.dtype is float32 or d.dtype is float64:
            out = d * y
            if x._rg and _gstate.enabled:
                return _record1(K.MULC, _MUL, out, x, float(y))
            return _plain(out)
    if _is_scalar(y):
        return _scalar_op(K.MULC, _N["mul"], lambda a: a * y, x, y, float(y))
    if _is_scalar(x):
        return mul(y, x)
    return _binary(K.MUL, _N["mul"], np.multiply, _operand("*", x, y, x),
                   _operand("*", x, y, y))


def div(x, y):
    if _is_scalar(y):
        return _scalar_op(K.MULC, _N["div"], lambda a: a / y, x, y, 1.0 / float(y) if y else np.inf)
    if _is_scalar(x):
        return _scalar_op(K.RDIVC, _N["div"], lambda a: x / a, _operand("/", x, y, y), x,
                          float(x))
    x, y = _operand("/", x, y, x), _operand("/", x, y, y)
    if x._data.dtype not in _FLOATS and y._data.dtype not in _FLOATS:
        x = _float(x)
    return _binary(K.DIV, _N["div"], np.divide, x, y)


def _int_power(a, b):
    try:
        return _plain(np.power(a, b))
    except ValueError:      # numpy's text, PyTorch's type
        raise RuntimeError("Integers to negative integer powers are not allowed; use a float "
                           "base (x.float() ** -1)") from None


def pow(x, y):  # noqa: A001
    sym = "** or pow()"
    if _is_scalar(y):
        x = _operand(sym, x, y, x)
        if x._data.dtype not in _FLOATS and not isinstance(y, float):
            return _int_power(x._data, y)
        return _scalar_op(K.POWC, _N["pow0"], lambda a: a ** y, x, y, float(y))
    if _is_scalar(x):
        return _scalar_op(K.RPOWC, _N["pow1"], lambda a: np.power(x, a),
                          _float(_operand(sym, x, y, y)), x, float(x))
    x, y = _operand(sym, x, y, x), _operand(sym, x, y, y)
    if x._data.dtype not in _FLOATS and y._data.dtype not in _FLOATS:
        return _int_power(x._data, y._data)
    return _binary(K.POW, _N["pow1"], np.power, x, y)


def maximum(x, y):
    return _binary(K.MAXIMUM, _N["maximum"], np.maximum, _t(x), _t(y))


def minimum(x, y):
    return _binary(K.MINIMUM, _N["minimum"], np.minimum, _t(x), _t(y))


def where(condition, x, y):
    if isinstance(condition, Tensor):
        _note_read(condition)     # which side each element takes is baked into the record
    cond = _t(condition)._data
    if cond.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {cond.dtype}; compare it first (e.g. cond != 0)")
    x, y = _t(x), _t(y)
    x, y = _promote(x, y)
    try:
        out = np.where(cond, x._data, y._data)
    except ValueError:
        raise RuntimeError(f"where: condition {cond.shape}, x {tuple(x.shape)} and y "
                           f"{tuple(y.shape)} do not broadcast to one shape") from None
    if out.dtype not in _FLOATS or not _recording(x, y):
        return _plain(out)
    c = _plain(cond.astype(out.dtype))
    shp = out.shape
    flags = (x._data.shape != shp) | (y._data.shape != shp) << 1 | (cond.shape != shp) << 2
    return _record(K.WHERE, _N["where"], out, x, y, c, flags)


def _t(v):
    """v as a tensor for a function argument: tensors, numbers, arrays and nested lists."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (np.ndarray, list, tuple, _REAL)):
        return as_tensor(v)
    raise TypeError(f"expected a Tensor (or a number, an array or a list of numbers), got "
                    f"{type(v).__name__}")
