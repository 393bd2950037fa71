"""Tests of values: isnan, isinf, isfinite, isclose, allclose, equal, any, all,
count_nonzero, is_floating_point, is_nonzero, and the logical operators (``~``, ``&``,
``|``, ``^``, logical_not/and/or/xor).

None of them is differentiable: each returns a bool (or int64) tensor outside any graph, or
a Python bool. Like the comparisons (compare.py), each counts as a read of its operands'
values while a function is traced for replay, so ``compile`` runs such a function eagerly
instead of freezing the answer.
"""
import builtins

import numpy as np

from ..tensor import Tensor, _FLOATS, _dim, _note_read, dtype_name
from .operands import _REAL
from .record import _plain


def _input(x, fn, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{what}' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")
    _note_read(x)
    return x._data


def _other(y, fn):
    """The second operand's array: a tensor (read), or a number or array."""
    if isinstance(y, Tensor):
        _note_read(y)
        return y._data
    if isinstance(y, (_REAL, np.ndarray)):
        return np.asarray(y)
    raise TypeError(f"{fn}(): argument 'other' must be Tensor, not {type(y).__name__}")


def _reduce_dims(dim, nd):
    """dim for any/all/count_nonzero: None (all), an int or a tuple of ints."""
    if dim is None:
        return None
    ds = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(_dim(d, nd) for d in ds)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out[0]} appears multiple times in the list of dims")
    return out if nd else None


# ---- elementwise tests ---------------------------------------------------------------------------
def _float_test(name, test, on_integers, doc):
    """An elementwise test of floating values (numpy's `test`); integer tensors give
    `on_integers` everywhere."""
    def fn(input):
        a = _input(input, name)
        return _plain(test(a) if a.dtype.kind == "f" else np.full(a.shape, on_integers))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


isnan = _float_test("isnan", np.isnan, False,
                    "True where ``input`` is NaN (never for integer tensors).")
isinf = _float_test("isinf", np.isinf, False, "True where ``input`` is +inf or -inf.")
isfinite = _float_test("isfinite", np.isfinite, True, "True where ``input`` is neither NaN "
                       "nor infinite (always for integer tensors).")
isposinf = _float_test("isposinf", np.isposinf, False, "True where ``input`` is +inf.")
isneginf = _float_test("isneginf", np.isneginf, False, "True where ``input`` is -inf.")


def _close(fn, input, other, rtol, atol, equal_nan):
    a = _input(input, fn)
    b = _other(other, fn)
    if isinstance(other, Tensor) and a.dtype != b.dtype:
        raise RuntimeError(f"{fn}(): both inputs must have the same dtype, got "
                           f"{dtype_name(a.dtype)} and {dtype_name(b.dtype)}")
    if rtol < 0 or atol < 0:
        raise RuntimeError(f"{fn}(): rtol and atol must be non-negative, got rtol={rtol}, "
                           f"atol={atol}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({list(a.shape)}) must match the size of "
                           f"tensor b ({list(b.shape)}): they do not broadcast") from None
    with np.errstate(invalid="ignore", over="ignore"):
        return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (infinities equal only to
    themselves; NaN equal to NaN only with ``equal_nan``), as a bool tensor."""
    return _plain(np.asarray(_close("isclose", input, other, rtol, atol, equal_nan)))


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Whether ``isclose`` holds everywhere (a Python bool).

    >>> import tapegrad as torch
    >>> torch.allclose(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    True
    """
    return builtins.bool(np.all(_close("allclose", input, other, rtol, atol, equal_nan)))


def equal(input, other):
    """True if both tensors have the same shape and the same values (a Python bool; NaN is
    never equal to itself)."""
    a = _input(input, "equal")
    if not isinstance(other, Tensor):
        raise TypeError(f"equal(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}")
    b = _other(other, "equal")
    return a.shape == b.shape and builtins.bool(np.all(a == b))


# ---- reductions to bool --------------------------------------------------------------------------
def _logical_reduce(fn, np_fn, input, dim, keepdim):
    a = _input(input, fn)
    dims = _reduce_dims(dim, a.ndim)
    out = np_fn(a != 0, axis=dims, keepdims=keepdim and dims is not None)
    if a.dtype == np.uint8:              # PyTorch keeps uint8 for uint8 input
        out = np.asarray(out).astype(np.uint8)
    return _plain(np.asarray(out))


def any(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """True if any element (over ``dim``, an int or tuple; all when None) is non-zero."""
    return _logical_reduce("any", np.any, input, dim, keepdim)


def all(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """True if every element (over ``dim``, an int or tuple; all when None) is non-zero."""
    return _logical_reduce("all", np.all, input, dim, keepdim)


def count_nonzero(input, dim=None):
    """The number of non-zero elements over ``dim`` (all when None), as int64."""
    a = _input(input, "count_nonzero")
    dims = _reduce_dims(dim, a.ndim)
    return _plain(np.asarray(np.count_nonzero(a, axis=dims)).astype(np.int64))


def is_floating_point(input):
    """Whether the tensor's dtype is a floating-point one."""
    if not isinstance(input, Tensor):
        raise TypeError(f"is_floating_point(): argument 'input' (position 1) must be Tensor, "
                        f"not {type(input).__name__}")
    return input._data.dtype.kind == "f"


def is_nonzero(input):
    """The truth of a one-element tensor (as ``bool(input)``); RuntimeError otherwise."""
    a = _input(input, "is_nonzero")
    if a.size == 0:
        raise RuntimeError("Boolean value of Tensor with no values is ambiguous")
    if a.size > 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return builtins.bool(a.reshape(()) != 0)


def isin(elements, test_elements, *, assume_unique=False, invert=False):
    """True where an element of ``elements`` occurs in ``test_elements`` (a tensor or a
    number); ``invert`` negates."""
    if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
        raise TypeError("isin(): at least one of 'elements' and 'test_elements' must be a "
                        "Tensor")
    a = _other(elements, "isin")
    b = _other(test_elements, "isin")
    return _plain(np.asarray(np.isin(a, b, invert=invert)))


# ---- logical operators ---------------------------------------------------------------------------
def logical_not(input):
    """True where ``input`` is zero."""
    return _plain(np.logical_not(_input(input, "logical_not")))


def _logical(np_fn, fn):
    def f(input, other):
        return _plain(np.asarray(np_fn(_input(input, fn), _other(other, fn))))
    f.__name__ = f.__qualname__ = fn
    f.__doc__ = f"``{fn}(input, other)``: elementwise, on the truth of the values (bool)."
    return f


logical_and = _logical(np.logical_and, "logical_and")
logical_or = _logical(np.logical_or, "logical_or")
logical_xor = _logical(np.logical_xor, "logical_xor")


def _bitwise(np_fn, sym):
    """The operator form (&, |, ^): bool and integer tensors only, as in PyTorch."""
    def f(x, y):
        if not isinstance(y, (Tensor, _REAL, np.ndarray)):
            return NotImplemented
        a, b = _input(x, sym), _other(y, sym)
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            bad = a.dtype if a.dtype.kind == "f" else b.dtype
            raise RuntimeError(f"unsupported operand for {sym}: bitwise operators take bool or "
                               f"integer tensors, not {dtype_name(bad)}")
        return _plain(np.asarray(np_fn(a, b)))
    return f


def bitwise_not(input):
    """``~input``: logical not of a bool tensor, bitwise not of an integer one."""
    a = _input(input, "bitwise_not")
    if a.dtype in _FLOATS or a.dtype.kind == "f":
        raise TypeError("~ (bitwise_not) is only supported for integer and bool tensors, not "
                        f"{dtype_name(a.dtype)}")
    return _plain(np.invert(a))


_and, _or, _xor = (_bitwise(f, s) for f, s in ((np.bitwise_and, "&"), (np.bitwise_or, "|"),
                                               (np.bitwise_xor, "^")))
LOGICAL_DUNDERS = dict(__and__=_and, __rand__=lambda s, o: _and(s, o), __or__=_or,
                       __ror__=lambda s, o: _or(s, o), __xor__=_xor,
                       __rxor__=lambda s, o: _xor(s, o), __invert__=bitwise_not)

__all__ = ["isnan", "isinf", "isfinite", "isposinf", "isneginf", "isclose", "allclose",
           "equal", "any", "all", "count_nonzero", "is_floating_point", "is_nonzero",
           "isin", "logical_not", "logical_and", "logical_or", "logical_xor", "bitwise_not"]
