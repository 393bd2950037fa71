"""Reductions: sum, mean, max and min (of all elements, or along a dim with indices) and
argmax/argmin.

sum and mean record the reduced dims as a bit mask; max/min of all elements record one
EXTREME record, and along a dim a gather of the winners, whose positions are read from the
values (argmax/argmin return plain integer tensors).
"""
from collections import namedtuple

import numpy as np

from .. import kernels as K
from ..tensor import Tensor, _FLOATS, _dim, _note_read, grad_enabled
from .elementwise import maximum, minimum
from .movement import _gather, _reshape
from .operands import _dims, _need_tensor, to_dtype
from .record import _N, _plain, _record


def _mask(dims):
    m = 0
    for d in dims:
        m |= 1 << d
    return m


def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "sum")
    if dtype is not None:
        x = to_dtype(x, dtype)
    dims = _dims(dim, x._data.ndim)
    if x._data.dtype == np.bool_:
        return _plain(np.sum(x._data, axis=dims, keepdims=keepdim))
    out = np.asarray(np.sum(x._data, axis=dims, keepdims=keepdim))
    if not (x._rg and grad_enabled()):
        return _plain(out)
    return _record(K.SUM, _N["sumall" if dim is None else "sum"], out, x, p0=_mask(dims))


def mean(x, dim=None, keepdim=False, dtype=None):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "mean")
    if dtype is not None:
        x = to_dtype(x, dtype)
    if x._data.dtype not in _FLOATS:
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {x._data.dtype}. Call .float() first.")
    dims = _dims(dim, x._data.ndim)
    out = np.asarray(np.mean(x._data, axis=dims, keepdims=keepdim))
    if not (x._rg and grad_enabled()):
        return _plain(out)
    count = 1
    for d in dims:
        count *= x._data.shape[d]
    return _record(K.MEAN, _N["meanall" if dim is None else "mean"], out, x, p0=_mask(dims),
                   f0=1.0 / count if count else np.nan)


def return_type(name, fields=("values", "indices")):
    """A named tuple shown as PyTorch shows its return types (``max(values=..., ...)``):
    ``values, indices = x.max(1)``, ``x.max(1).values``, ``x.max(1)[0]`` all work."""
    cls = namedtuple(name, fields)
    cls.__module__ = "tapegrad.return_types"
    cls.__repr__ = lambda s: (f"tapegrad.return_types.{name}(\n" + ",\n".join(
        f"{f}={v!r}" for f, v in zip(fields, s)) + ")")
    return cls


_MAX, _MIN = return_type("max"), return_type("min")


def _MinMax(pair, is_max=True):
    return (_MAX if is_max else _MIN)(*pair)


def _extreme(x, dim, keepdim, is_max):
    a = x._data
    if dim is None:
        if a.size == 0:
            raise RuntimeError(f"{'max' if is_max else 'min'}(): Expected reduction dim to be "
                               f"specified for input.numel() == 0.")
        out = np.asarray(a.max() if is_max else a.min())
        if not (x._rg and grad_enabled()):
            return _plain(out)
        return _record(K.EXTREME, _N["max" if is_max else "min"], out, x, p0=int(is_max))
    d = _dim(dim, a.ndim)
    _note_read(x)     # the winners' positions are baked into the record
    if a.ndim == 0:
        return _MinMax((_reshape(x, (), _N["maxdim" if is_max else "mindim"]),
                        _plain(np.asarray(0))), is_max)
    if a.shape[d] == 0:
        raise IndexError(f"{'max' if is_max else 'min'}(): Expected reduction dim {d} to have "
                         f"non-zero size.")
    idx = np.argmax(a, axis=d) if is_max else np.argmin(a, axis=d)
    idx_k = np.expand_dims(idx, d)
    values = np.take_along_axis(a, idx_k, axis=d)
    flat = np.take_along_axis(np.arange(a.size).reshape(a.shape), idx_k, axis=d)
    if not keepdim:
        values = values.squeeze(d)
        flat = flat.squeeze(d)
    else:
        idx = idx_k
    indices = _plain(idx.astype(np.int64))
    if not (x._rg and grad_enabled()):
        return _MinMax((_plain(values), indices), is_max)
    return _MinMax((_gather(x, values, flat, _N["maxdim" if is_max else "mindim"]), indices),
                   is_max)


def max(x, dim=None, keepdim=False):  # noqa: A001
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):  # noqa: A001
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return _extreme(x, dim, keepdim, False)


def argmax(x, dim=None, keepdim=False):
    _note_read(x)
    if dim is None:
        return _plain(np.asarray(np.argmax(x._data)))
    return _plain(np.argmax(x._data, axis=_dim(dim, x._data.ndim), keepdims=keepdim))


def argmin(x, dim=None, keepdim=False):
    _note_read(x)
    if dim is None:
        return _plain(np.asarray(np.argmin(x._data)))
    return _plain(np.argmin(x._data, axis=_dim(dim, x._data.ndim), keepdims=keepdim))
