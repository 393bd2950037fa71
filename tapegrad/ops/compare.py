"""Comparisons: eq, ne, lt, le, gt, ge and the operators ``==``, ``!=``, ``<``...

Never differentiable: the result is a bool tensor outside any graph. While a function is
traced for replay a comparison counts as a read of its operands' values (the recording
depends on them).
"""
import numpy as np

from ..tensor import Tensor, _note_read, canonical
from .operands import _REAL, _need_tensor
from .record import _plain


def _cmp(numpy_fn, name, dunder):
    """A comparison. The operator form returns NotImplemented for operands that are not
    tensors, real numbers or arrays, so Python answers as it does for torch: `x == None` is
    False, `x < "a"` a TypeError; the function form raises TypeError."""
    def f(x, y):
        if not isinstance(x, Tensor):
            raise _need_tensor(x, name)
        _note_read(x)
        if isinstance(y, Tensor):
            _note_read(y)
            return _plain(numpy_fn(x._data, y._data))
        if not isinstance(y, (_REAL, np.ndarray)):
            if dunder:
                return NotImplemented
            raise TypeError(f"{name}(): argument 'other' must be Tensor or Number, not "
                            f"{type(y).__name__}")
        if isinstance(y, np.ndarray):
            y = canonical(y)
        return _plain(numpy_fn(x._data, y))
    return f


_CMPS = (np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal)
_CMP_NAMES = ("eq", "ne", "lt", "le", "gt", "ge")
eq, ne, lt, le, gt, ge = (_cmp(f, n, False) for f, n in zip(_CMPS, _CMP_NAMES))
_CMP_DUNDERS = {f"__{n}__": _cmp(f, n, True) for f, n in zip(_CMPS, _CMP_NAMES)}
