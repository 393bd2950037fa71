"""Arithmetic composed from the recorded ops: floor_divide (``//``), true_divide, copysign,
nan_to_num, nansum, nanmean, diff, addcmul, addcdiv, clamp_min/clamp_max, frac,
deg2rad/rad2deg, dist, var_mean and std_mean.

``floor_divide`` is not differentiable (PyTorch has no derivative for it either): its result
is a plain tensor. ``copysign``, ``nan_to_num``, ``nansum`` and ``nanmean`` read values
while recording (which signs, which elements are NaN or infinite) and pick with a constant
mask through ``where``, so the gradient is 0 where a value was replaced; under ``compile``
they run eagerly. The others are sums and products of recorded ops.
"""
import numpy as np

from .. import ops
from ..tensor import Tensor, _FLOATS, _dim, _note_read, dtype_name, get_default_dtype
from .operands import _REAL, _dims, _promote
from .record import _plain


def _tensor(x, fn, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{what}' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")
    return x


def _operands(x, y, fn):
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        raise TypeError(f"{fn}(): at least one argument must be a Tensor")
    for v in (x, y):
        if not isinstance(v, (Tensor, _REAL, np.ndarray)):
            raise TypeError(f"{fn}(): argument 'other' must be Tensor or Number, not "
                            f"{type(v).__name__}")
    return _promote(ops.as_tensor(x) if not isinstance(x, Tensor) else x,
                    ops.as_tensor(y) if not isinstance(y, Tensor) else y)


def _floor_operands(x, y):
    """The two arrays of x // y in PyTorch's result dtype: two tensors promote as for any
    float math; a Python number keeps the tensor's dtype (a float number makes an integer
    tensor the default float dtype)."""
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        x, y = _promote(x, y)
        for t in (x, y):
            _note_read(t)
        return x._data, y._data
    t, v = (x, y) if isinstance(x, Tensor) else (y, x)
    _note_read(t)
    a = t._data
    v = v.item() if isinstance(v, (np.generic, np.ndarray)) else v
    if a.dtype.kind in "iub" and isinstance(v, float):
        a = a.astype(get_default_dtype())
    return (a, v) if t is x else (v, a)


def floor_divide(input, other):
    """``input / other`` rounded down (Python's ``//``), in the operands' common dtype; an
    integer division by zero raises. Not differentiable.

    >>> import tapegrad as torch
    >>> torch.tensor([7, -7]) // 2
    tensor([ 3, -4])
    """
    _operands(input, other, "floor_divide")          # the type checks
    a, b = _floor_operands(input, other)
    ka, kb = np.asarray(a).dtype.kind, np.asarray(b).dtype.kind
    if ka in "iub" and kb in "iub":
        if np.any(np.asarray(b) == 0):
            raise RuntimeError("ZeroDivisionError")
        if ka == "b" and kb == "b":
            a = np.asarray(a).astype(np.int64)
        return _plain(np.asarray(np.floor_divide(a, b)))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _plain(np.asarray(np.floor_divide(a, b)))


def _rfloordiv(self, other):
    return floor_divide(other, self)


def true_divide(dividend, divisor):
    """``dividend / divisor`` (``div``): always a true, floating-point division."""
    return ops.div(dividend, divisor)


def copysign(input, other):
    """``|input|`` with the sign of ``other`` (its sign bit: -0.0 counts as negative).
    The gradient flows to ``input`` only, as in PyTorch."""
    x = _tensor(input, "copysign")
    if isinstance(other, Tensor):
        _note_read(other)
        s = other._data
    elif isinstance(other, _REAL):
        s = np.asarray(other)
    else:
        raise TypeError(f"copysign(): argument 'other' must be Tensor or Number, not "
                        f"{type(other).__name__}")
    if x._data.dtype not in _FLOATS:
        x = ops.to_dtype(x, get_default_dtype())
    if isinstance(other, Tensor) and s.dtype in _FLOATS:
        x, _ = _promote(x, other)                    # float32 with float64 gives float64
    m = np.abs(x._data)
    out_neg = np.signbit(np.broadcast_to(s, np.broadcast_shapes(s.shape, m.shape)))
    mag = ops.abs(x)
    return ops.where(_plain(out_neg), -mag, mag)


def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """``input`` with NaN replaced by ``nan``, +inf by ``posinf`` and -inf by ``neginf``
    (default: the dtype's largest and smallest finite values); gradient 0 at those places."""
    x = _tensor(input, "nan_to_num")
    a = x._data
    if a.dtype not in _FLOATS:
        return _plain(a.copy())
    _note_read(x)
    fi = np.finfo(a.dtype)
    fill = np.where(np.isnan(a), nan, np.where(a > 0, fi.max if posinf is None else posinf,
                                               fi.min if neginf is None else neginf))
    return ops.where(_plain(np.isfinite(a)), x, _plain(fill.astype(a.dtype)))


def _nan_zeroed(x, fn):
    x = _tensor(x, fn)
    if x._data.dtype not in _FLOATS:
        return x, None
    _note_read(x)
    nan = np.isnan(x._data)
    return ops.where(_plain(~nan), x, 0.0), nan


def nansum(input, dim=None, keepdim=False, *, dtype=None):
    """``sum`` with NaN counted as zero."""
    x = input if dtype is None else ops.to_dtype(_tensor(input, "nansum"), dtype)
    y, _ = _nan_zeroed(x, "nansum")
    return ops.sum(y, dim=dim, keepdim=keepdim)


def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    """The mean of the elements that are not NaN (NaN where there are none)."""
    x = input if dtype is None else ops.to_dtype(_tensor(input, "nanmean"), dtype)
    x = _tensor(x, "nanmean")
    if x._data.dtype not in _FLOATS:
        raise RuntimeError(f"nanmean(): expected input to have floating point or complex "
                           f"dtype but got {dtype_name(x._data.dtype)}")
    y, nan = _nan_zeroed(x, "nanmean")
    count = np.sum(~nan, axis=None if dim is None else _dims(dim, x._data.ndim),
                   keepdims=keepdim)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ops.sum(y, dim=dim, keepdim=keepdim) / _plain(
            np.asarray(count).astype(x._data.dtype))


def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``out[i] = x[i + 1] - x[i]``, applied n
    times), after ``prepend`` and ``append`` are joined on; bool tensors take the xor."""
    x = _tensor(input, "diff")
    if x._data.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = _dim(dim, x._data.ndim)
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = ops.cat([_tensor(p, "diff", "prepend") for p in parts], d)
    for _ in range(n):
        m = x._data.shape[d]
        if m == 0:
            break
        hi = ops.getitem(x, (slice(None),) * d + (slice(1, None),))
        lo = ops.getitem(x, (slice(None),) * d + (slice(0, m - 1),))
        if x._data.dtype == np.bool_:
            x = _plain(np.logical_xor(hi._data, lo._data))
        else:
            x = hi - lo
    return x


def addcmul(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 * tensor2``."""
    prod = ops.mul(tensor1, tensor2)
    return ops.add(_tensor(input, "addcmul"), prod if value == 1 else prod * value)


def addcdiv(input, tensor1, tensor2, *, value=1):
    """``input + value * tensor1 / tensor2``."""
    for t in (tensor1, tensor2):
        if isinstance(t, Tensor) and t._data.dtype.kind in "iub" and \
                tensor1._data.dtype.kind in "iub" and tensor2._data.dtype.kind in "iub":
            raise RuntimeError("Integer division with addcdiv is no longer supported, and in a "
                               "future release addcdiv will perform a true division of tensor1 "
                               "and tensor2.")
    q = ops.div(tensor1, tensor2)
    return ops.add(_tensor(input, "addcdiv"), q if value == 1 else q * value)


def clamp_min(input, min):  # noqa: A002
    """``clamp(input, min=min)``."""
    return ops.clamp(_tensor(input, "clamp_min"), min=min)


def clamp_max(input, max):  # noqa: A002
    """``clamp(input, max=max)``."""
    return ops.clamp(_tensor(input, "clamp_max"), max=max)


def frac(input):
    """The fractional part, ``input - trunc(input)`` (gradient 1, as PyTorch's)."""
    x = _tensor(input, "frac")
    if x._data.dtype not in _FLOATS:
        raise RuntimeError(f"frac is only implemented for floating point tensors, got "
                           f"{dtype_name(x._data.dtype)}")
    return x - ops.trunc(x)


def deg2rad(input):
    """Degrees to radians."""
    return ops.mul(_tensor(input, "deg2rad"), float(np.pi / 180.0))


def rad2deg(input):
    """Radians to degrees."""
    return ops.mul(_tensor(input, "rad2deg"), float(180.0 / np.pi))


def dist(input, other, p=2):
    """The p-norm of ``input - other`` (the two broadcast)."""
    from .composite import norm
    return norm(ops.sub(_tensor(input, "dist"), _tensor(other, "dist", "other")), float(p))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(var(...), mean(...))`` over the same dims, as one pair."""
    from .composite import var
    x = _tensor(input, "var_mean")
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return (var(x, dim, unbiased, keepdim, correction=correction),
            ops.mean(x, dim=dim, keepdim=keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """``(std(...), mean(...))`` over the same dims, as one pair."""
    from .composite import std
    x = _tensor(input, "std_mean")
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return (std(x, dim, unbiased, keepdim, correction=correction),
            ops.mean(x, dim=dim, keepdim=keepdim))


__all__ = ["floor_divide", "true_divide", "copysign", "nan_to_num", "nansum", "nanmean",
           "diff", "addcmul", "addcdiv", "clamp_min", "clamp_max", "frac", "deg2rad",
           "rad2deg", "dist", "var_mean", "std_mean"]
