"""An op's inputs: Python data made tensors, dtypes promoted, arguments checked.

``as_tensor``/``array_from`` make tensors from data the way torch.tensor does (and raise its
errors for strings, ragged lists, integers beyond int64); ``_promote`` brings two operands
to PyTorch's common dtype and ``to_dtype`` casts (recorded between float dtypes);
``_operand``/``_need_tensor`` reject what an op can't take, with PyTorch's exception types;
``_dims`` reads a dim argument (None, an int or a list of them).
"""
import numpy as np

from .. import kernels as K
from ..tensor import Tensor, _FLOATS, _dim, get_default_dtype, float64
from ..tensor import canonical, canonical_dtype
from .record import _name, _plain, _record, _recording


# ---- tensors from data ---------------------------------------------------------------------------
def as_tensor(x, dtype=None):
    """Tensor from a tensor, array, list or scalar (Python floats take the default dtype)."""
    if isinstance(x, Tensor):
        return x if dtype is None or x._data.dtype == dtype else to_dtype(x, dtype)
    if dtype is not None:
        dtype = canonical_dtype(dtype)
    if isinstance(x, np.ndarray):
        a = canonical(x)
    else:
        a = array_from(x, dtype)
        if dtype is None and a.dtype is float64 and not _has_np_float64(x):
            a = a.astype(get_default_dtype())
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    return _plain(a)


_REAL = (int, float, np.integer, np.floating, np.bool_)   # bool is an int


def array_from(data, dtype=None):
    """A new array holding Python data (numbers, nested sequences), checked the way
    torch.tensor checks it: strings, None and other objects, ragged nesting and integers
    beyond int64 raise instead of making an object or string array."""
    try:
        a = np.asarray(data)
    except ValueError as e:
        if "inhomogeneous" in str(e) or "sequence" in str(e):
            raise _ragged(data) from None
        raise _bad_leaf(data, e) from None
    except (TypeError, OverflowError) as e:
        raise _bad_leaf(data, e) from None
    if a.dtype.kind not in "fiub":
        if not (a.dtype.kind == "O" and dtype is not None and dtype.kind == "f"
                and all(type(v) is int for v in _leaves(data))):
            raise _bad_leaf(data, None, a)
        a = np.array(data, dtype)     # integers beyond int64, asked for as floats
    return canonical(a)


def _leaves(v):
    if isinstance(v, (list, tuple)):
        for e in v:
            yield from _leaves(e)
    else:
        yield v


def _bad_leaf(data, err, a=None):
    """The exception for data whose elements are not real numbers (torch's types)."""
    if isinstance(data, (str, bytes)):
        return TypeError(f"new(): invalid data type '{type(data).__name__}': a tensor holds "
                         f"numbers; convert the text first (e.g. float(s))")
    if a is not None and a.dtype.kind == "c" or isinstance(data, complex):
        return TypeError("tapegrad has no complex dtype; pass the real and imaginary parts "
                         "as two real tensors")
    for v in _leaves(data):
        if isinstance(v, (str, bytes)):
            return ValueError(f"too many dimensions '{type(v).__name__}': the data holds the "
                              f"string {v!r}; a tensor holds numbers only")
        if isinstance(v, complex):
            return TypeError("tapegrad has no complex dtype")
        if isinstance(v, int) and not -2**63 <= v < 2**63:
            return ValueError(f"Overflow when unpacking long long: {v} does not fit in 64 bits; "
                              f"pass dtype=tapegrad.float64 to store it as a float")
        if not isinstance(v, _REAL) and not isinstance(v, (np.ndarray, Tensor)):
            return RuntimeError(f"Could not infer dtype of {type(v).__name__}: a tensor is made "
                                f"from numbers, nested lists of numbers, arrays or tensors")
    return TypeError(f"can't make a tensor from {type(data).__name__}"
                     + ("" if err is None else f" ({err})"))


def _ragged(data):
    """ValueError/TypeError naming where nested sequences stop being rectangular."""
    def seq(v):
        return isinstance(v, (list, tuple)) or (isinstance(v, (np.ndarray, Tensor)) and v.ndim)
    shape = []
    v = data
    while seq(v):
        shape.append(len(v))
        if not len(v):
            break
        v = v[0]

    def walk(v, d):
        if d == len(shape):
            return TypeError(f"expected a number at dim {d}, got a sequence "
                             f"({type(v).__name__})") if seq(v) else None
        if not seq(v):
            return TypeError(f"not a sequence: expected a sequence of length {shape[d]} at "
                             f"dim {d}, got {type(v).__name__}")
        if len(v) != shape[d]:
            return ValueError(f"expected sequence of length {shape[d]} at dim {d} "
                              f"(got {len(v)}): nested lists must be rectangular")
        for e in v:
            r = walk(e, d + 1)
            if r is not None:
                return r
        return None
    return walk(data, 0) or ValueError("nested sequences of unequal lengths can't make a tensor")


def _has_np_float64(x):
    return isinstance(x, np.floating) or (isinstance(x, (list, tuple)) and any(
        isinstance(v, np.ndarray) and v.dtype == np.float64 for v in x))


# ---- dtype promotion -----------------------------------------------------------------------------
def _float(x):
    """x as a float tensor (integer and bool tensors take the default dtype)."""
    return x if x._data.dtype in _FLOATS else _plain(x._data.astype(get_default_dtype()))


def to_dtype(x, dtype):
    dtype = canonical_dtype(dtype)
    if x._data.dtype == dtype:
        return x
    out = x._data.astype(dtype)
    if dtype in _FLOATS and _recording(x):
        return _record(K.CAST, _CAST, out, x)
    return _plain(out)


_CAST = _name("ToCopyBackward0")


def _promote(x, y):
    """Bring two tensors to a common dtype the way PyTorch does for float math."""
    dx = x._data.dtype
    dy = y._data.dtype
    if dx == dy:
        return x, y
    fx = dx in _FLOATS
    fy = dy in _FLOATS
    if fx and fy:
        if x._data.ndim == 0 and y._data.ndim > 0:
            target = dy
        elif y._data.ndim == 0 and x._data.ndim > 0:
            target = dx
        else:
            target = float64
    elif fx:
        target = dx
    elif fy:
        target = dy
    else:
        return x, y   # integer math: numpy's rules
    return to_dtype(x, target), to_dtype(y, target)


_SCALARS = {int, float, bool, np.float64, np.float32, np.int64, np.int32, np.bool_}


def _is_scalar(v):
    return type(v) in _SCALARS


def _operand(sym, x, y, v):
    """v, one operand of `x sym y`, as a tensor: tensors, real numbers and numpy arrays.
    Anything else (None, str, lists, complex...) is Python's TypeError for an unsupported
    operand, which is also what PyTorch raises."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (np.ndarray, _REAL)):
        return as_tensor(v)
    raise _bad_operand(sym, x, y, v)


def _bad_operand(sym, x, y, v):
    hint = " (tapegrad has no complex dtype)" if isinstance(v, complex) else (
        "; make it a tensor first with tapegrad.tensor(...)" if isinstance(v, (list, tuple))
        else "")
    return TypeError(f"unsupported operand type(s) for {sym}: '{type(x).__name__}' and "
                     f"'{type(y).__name__}'{hint}")


def _need_tensor(x, fn):
    """TypeError for a function given something other than a tensor as its input."""
    return TypeError(f"{fn}(): argument 'input' must be Tensor, not {type(x).__name__}")


# ---- dim arguments -------------------------------------------------------------------------------
def _dims(dim, nd):
    if dim is None:
        return tuple(range(nd))
    if isinstance(dim, (list, tuple)):
        ds = tuple(_dim(d, nd) for d in dim)
        if len(set(ds)) != len(ds):
            d = next(d for d in ds if ds.count(d) > 1)
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    else:
        ds = (_dim(dim, nd),)
    if nd == 0:
        return ()
    return ds
