"""Ops composed from the recorded ones: reductions (prod, logsumexp, var, std, norm, amax,
amin, cumsum, cumprod), indexing along a dim (masked_fill, index_select, gather,
scatter_add, scatter, index_add, index_fill, fill_diagonal_), triangles and movement
(tril, triu, flip, roll, diagonal, trace, outer) and einsum.

None of them has an opcode. Each is built from ``take``/``scatter`` with index maps
computed from shapes alone, ``where`` with constant masks, ``matmul``, ``sum`` and the
elementwise ops, so gradients, ``compile``, ``func.jvp`` and ``func.hessian`` come from
those records. Only ``amax``/``amin`` over some (not all) dims and ``norm(p=0)`` read
values while recording (the positions of ties), as ``max(dim)`` does; index tensors and
masks are read too, so passing them as arguments of a compiled function runs it eagerly.
"""
import warnings

import numpy as np

from .. import ops
from ..tensor import Tensor, _FLOATS, _dim, _note_read, get_default_dtype, int_arg

__all__ = ["prod", "logsumexp", "var", "std", "norm", "amax", "amin", "cumsum", "cumprod",
           "masked_fill", "index_select", "gather", "scatter_add", "scatter", "index_add",
           "index_fill", "tril", "triu", "flip",
           "roll", "diagonal", "trace", "outer", "einsum"]


# ---- helpers -------------------------------------------------------------------------------------
def _tensor(x, fn, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{what}' must be Tensor, not {type(x).__name__}")
    return x


def _is_float(x):
    return x._data.dtype in _FLOATS


def _plain(a):
    return ops.as_tensor(np.asarray(a))


def _imap(shape):
    """The flat position of every element of an array of `shape`."""
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _take(x, m):
    """out[p] = x.flat[m[p]]: one recorded gather whose map was computed from shapes."""
    m = np.asarray(m, np.int64)
    return ops.take(x, m.reshape(-1), m.shape)


def _dimlist(dim, nd, fn="dims"):
    """dim (None: all; int; tuple/list) as a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return tuple(range(nd))
    ds = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(_dim(d, nd) for d in ds)
    if len(set(out)) != len(out):
        d = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    return tuple(sorted(out)) if nd else ()


def _squeeze(y, dims, keepdim):
    if keepdim or not dims:
        return y
    return ops.reshape(y, tuple(s for i, s in enumerate(y._data.shape) if i not in dims))


def _index_tensor(index, fn, dtypes=(np.int64, np.int32), msg=None):
    if not isinstance(index, Tensor):
        raise TypeError(f"{fn}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index._data.dtype not in dtypes:
        raise RuntimeError(msg or f"{fn}(): Expected dtype int32/int64 for index, got "
                                  f"{index._data.dtype}")
    _note_read(index)        # its values become the recorded index map
    return index._data.astype(np.int64)


def _check_range(idx, size, d, fn):
    bad = (idx < 0) | (idx >= size)
    if bad.any():
        raise RuntimeError(f"{fn}(): index {int(idx[bad][0])} is out of bounds for dimension "
                           f"{d} with size {size}")


def _slab(shape, d, pos):
    """Index map of the positions `pos` (an int array) along dim d of an array of `shape`."""
    return np.take(_imap(shape), pos, axis=d)


def _pairwise(y, d, fn, neutral):
    """Reduce dim d of y (kept, as size 1) by combining halves with fn: log2(n) levels of
    two gathers and one fn record; an odd level pads the short half with `neutral`."""
    while y._data.shape[d] > 1:
        shape = y._data.shape
        n = shape[d]
        c = (n + 1) // 2
        a = _take(y, _slab(shape, d, np.arange(c)))
        j = c + np.arange(c)
        b = _take(y, _slab(shape, d, np.minimum(j, n - 1)))
        if n % 2:
            keep = np.expand_dims(j < n, tuple(i for i in range(len(shape)) if i != d))
            b = ops.where(_plain(keep), b, neutral)
        y = fn(a, b)
    return y


def _prefix(y, d, fn, neutral):
    """Inclusive scan of y along dim d with fn (Hillis-Steele: log2(n) steps, each a gather
    of the values k places back, `neutral` where there are none, and one fn record)."""
    shape = y._data.shape
    n = shape[d]
    k = 1
    others = tuple(i for i in range(len(shape)) if i != d)
    while k < n:
        j = np.arange(n)
        back = _take(y, _slab(shape, d, np.maximum(j - k, 0)))
        back = ops.where(_plain(np.expand_dims(j >= k, others)), back, neutral)
        y = fn(y, back)
        k *= 2
    return y


def _finfo(x):
    return np.finfo(x._data.dtype)


def _sqrt0(s):
    """sqrt(s) as s / sqrt(clamp(s, tiny, max)): the same value, but at s == 0 the
    derivative is finite (1/sqrt(tiny)), so the gradient through sum(x*x) at x == 0 is 0,
    as PyTorch's norm and std give, where sqrt's would be inf * 0 = nan. Below tiny (s
    subnormal) the value is s / sqrt(tiny) instead of sqrt(s)."""
    fi = _finfo(s)
    return s / ops.sqrt(ops.clamp(s, float(fi.tiny), float(fi.max)))


# ---- reductions ----------------------------------------------------------------------------------
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of all elements, or along ``dim`` (an int). The gradient is right at zeros
    (one zero: the product of the others; two or more: 0), since it is built from
    multiplications only (pairs of halves), never from division or logs.

    >>> import tapegrad as torch
    >>> x = torch.tensor([2.0, 0.0, 3.0], requires_grad=True)
    >>> x.prod().backward(); x.grad
    tensor([0., 6., 0.])
    """
    x = _tensor(input, "prod")
    if dtype is not None:
        x = ops.to_dtype(x, dtype)
    if dim is not None and isinstance(dim, (tuple, list)):
        raise TypeError("prod(): argument 'dim' must be int, not tuple")
    if not _is_float(x):
        a = x._data
        if dim is None:
            return _plain(np.prod(a, dtype=np.int64))
        return _plain(np.prod(a, axis=_dim(dim, a.ndim) if a.ndim else None, keepdims=keepdim
                              and a.ndim > 0, dtype=np.int64))
    if dim is None:
        y, d, out_shape = ops.reshape(x, (-1,)), 0, ()
    else:
        d = _dim(dim, x._data.ndim)
        if x._data.ndim == 0:
            return ops.reshape(x, ())
        y = x
        out_shape = None
    if y._data.shape[d] == 0:
        r = ops.sum(y, dim=d, keepdim=True) + 1.0       # the empty product
    else:
        r = _pairwise(y, d, ops.mul, 1.0)
    if out_shape is not None:
        return ops.reshape(r, out_shape)
    return _squeeze(r, (d,), keepdim)


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input), dim))`` computed stably: shifted by the maximum along ``dim``
    (found with recorded ``maximum`` of halves, clamped finite so that all ``-inf`` gives
    ``-inf``); the shift's own gradient cancels, so the gradient is ``softmax``."""
    x = _tensor(input, "logsumexp")
    if not _is_float(x):
        x = ops.to_dtype(x, get_default_dtype())
    nd = x._data.ndim
    dims = _dimlist(tuple(range(nd)) if dim == () else dim, nd)
    m = x
    for d in dims:
        if m._data.shape[d] > 0:
            m = _pairwise(m, d, ops.maximum, -np.inf)
    fi = _finfo(x)
    m = ops.clamp(m, float(-fi.max), float(fi.max))
    if any(x._data.shape[d] == 0 for d in dims):
        s = ops.sum(ops.exp(x), dim=dims, keepdim=True)
        return _squeeze(ops.log(s), dims, keepdim)
    s = ops.sum(ops.exp(x - m), dim=dims, keepdim=True) if dims else ops.exp(x - m)
    return _squeeze(ops.log(s) + m, dims, keepdim)


def _var_args(fn, x, dim, unbiased, correction):
    if isinstance(dim, bool):            # var(x, False): the unbiased flag, not a dim
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{fn}(): pass either 'unbiased' or 'correction', not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if not _is_float(x):
        raise RuntimeError("std and var only support floating point and complex dtypes")
    return dim, correction


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` (all when None): ``sum((x - mean)**2) / (N - correction)``;
    ``correction`` defaults to 1 (Bessel's), ``unbiased=False`` means 0."""
    x = _tensor(input, "var")
    dim, correction = _var_args("var", x, dim, unbiased, correction)
    dims = _dimlist(dim, x._data.ndim)
    n = 1
    for d in dims:
        n *= x._data.shape[d]
    denom = n - correction
    if denom <= 0:
        warnings.warn("var(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)
        denom = 0
    if not dims:
        dev = x - x
    else:
        dev = x - ops.mean(x, dim=dims, keepdim=True)
    ss = ops.sum(dev * dev, dim=dims, keepdim=keepdim) if dims else dev * dev
    return ss / float(denom) if denom else _div0(ss)


def _div0(ss):
    """ss / 0 as PyTorch computes it: inf where ss > 0, nan where ss == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return ss / 0.0


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation: ``sqrt(var(...))`` with the same arguments; its gradient at a
    constant input is 0, as PyTorch's."""
    x = _tensor(input, "std")
    v = var(x, dim, unbiased, keepdim, correction=correction)
    return _sqrt0(v)


def _extreme(fn, x, dim, keepdim, is_max):
    x = _tensor(x, fn)
    a = x._data
    nd = a.ndim
    dims = _dimlist(None if dim == () else dim, nd)
    if not dims:                          # 0-d input
        return ops.reshape(x, ())
    for d in dims:
        if a.shape[d] == 0:
            raise IndexError(f"{fn}(): Expected reduction dim {d} to have non-zero size.")
    keep_shape = tuple(1 if i in dims else s for i, s in enumerate(a.shape))
    if not _is_float(x):
        r = np.amax(a, axis=dims, keepdims=keepdim) if is_max else np.amin(a, axis=dims,
                                                                          keepdims=keepdim)
        return _plain(r)
    if len(dims) == nd:                   # all dims: the recorded max/min splits ties itself
        r = ops.max(x) if is_max else ops.min(x)
        return ops.reshape(r, keep_shape) if keepdim else r
    # some dims: the winners (and ties, sharing the gradient evenly) are read from the values
    _note_read(x)
    red = np.amax if is_max else np.amin
    m = red(a, axis=dims, keepdims=True)
    ties = a == m
    moved = np.moveaxis(ties, dims, tuple(range(nd - len(dims), nd)))
    flat_moved = moved.reshape(moved.shape[:nd - len(dims)] + (-1,))
    first = np.argmax(flat_moved, axis=-1)      # first winner in each output's block
    imap = np.moveaxis(_imap(a.shape), dims, tuple(range(nd - len(dims), nd)))
    imap = imap.reshape(flat_moved.shape)
    src = np.take_along_axis(imap, first[..., None], axis=-1)[..., 0].reshape(keep_shape)
    t = _take(x, src)
    count = ties.sum(axis=dims, keepdims=True)
    ties &= np.isfinite(m)                # an infinite winner takes it all (inf - inf)
    if (count > 1).any() and ties.any():
        share = np.where(np.isfinite(m), 1.0 / count, 0.0).astype(a.dtype)
        # t + sum over the ties of (x - t) / count: the value t exactly, gradient 1/count each
        dev = ops.where(_plain(ties), x - t, 0.0)
        t = t + ops.sum(dev, dim=dims, keepdim=True) * _plain(share)
    return _squeeze(t, dims, keepdim)


def amax(input, dim=(), keepdim=False):
    """Largest value over ``dim`` (default: all dims); ties share the gradient evenly."""
    return _extreme("amax", input, dim, keepdim, True)


def amin(input, dim=(), keepdim=False):
    """Smallest value over ``dim`` (default: all dims); ties share the gradient evenly."""
    return _extreme("amin", input, dim, keepdim, False)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """Vector norm over ``dim`` (all when None): ``p`` = 2 or ``'fro'`` (Euclidean), 1, inf,
    -inf, 0 (count of non-zeros) or any other positive number. The gradient at 0 is 0, as
    PyTorch gives it."""
    x = _tensor(input, "norm")
    if dtype is not None:
        x = ops.to_dtype(x, dtype)
    if not _is_float(x):
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor "
                           f"as input. Got {x._data.dtype}")
    if isinstance(p, str):
        if p == "nuc":
            raise NotImplementedError("norm(p='nuc') (the nuclear norm) needs an SVD, which "
                                      "tapegrad does not have")
        if p != "fro":
            raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
        p = 2
    elif not isinstance(p, (int, float, np.integer, np.floating)) or isinstance(p, bool):
        raise TypeError(f"norm(): argument 'p' must be a number or 'fro', not "
                        f"{type(p).__name__}")
    dims = _dimlist(dim, x._data.ndim)
    p = float(p)

    def total(y):
        return ops.sum(y, dim=dims, keepdim=keepdim) if dims else y
    if p == 2:
        return _sqrt0(total(x * x))
    if p == 1:
        return total(ops.abs(x))
    if p == np.inf or p == -np.inf:
        return _extreme("norm", ops.abs(x), dims if dims else (), keepdim, p > 0)
    if p == 0:
        _note_read(x)
        return total(x * 0.0 + _plain((x._data != 0).astype(x._data.dtype)))
    if p < 0:
        raise RuntimeError("norm: a negative order other than -inf is not supported")
    s = total(ops.abs(x) ** p)
    fi = _finfo(s)
    return s * ops.clamp(s, float(fi.tiny), float(fi.max)) ** (1.0 / p - 1.0)


def _scan(fn, x, dim, dtype, combine, neutral, np_scan):
    x = _tensor(x, fn)
    if dtype is not None:
        x = ops.to_dtype(x, dtype)
    a = x._data
    d = _dim(dim, a.ndim)
    if not _is_float(x):
        return _plain(np_scan(a, axis=d if a.ndim else None).astype(np.int64).reshape(a.shape))
    if a.ndim == 0 or a.shape[d] <= 1:
        return ops.reshape(x, a.shape)
    return _prefix(x, d, combine, neutral)


def cumsum(input, dim, *, dtype=None):
    """Running sums along ``dim``."""
    return _scan("cumsum", input, dim, dtype, ops.add, 0.0, np.cumsum)


def cumprod(input, dim, *, dtype=None):
    """Running products along ``dim``; multiplications only, so the gradient is right at
    zeros."""
    return _scan("cumprod", input, dim, dtype, ops.mul, 1.0, np.cumprod)


# ---- indexing along a dim ------------------------------------------------------------------------
def masked_fill(input, mask, value):
    """``input`` with ``value`` (a number or a 0-d tensor, which gets the gradient of the
    filled positions) where the boolean ``mask`` (broadcast) holds."""
    x = _tensor(input, "masked_fill")
    if not isinstance(mask, Tensor):
        raise TypeError(f"masked_fill(): argument 'mask' must be Tensor, not "
                        f"{type(mask).__name__}")
    if mask._data.dtype != np.bool_:
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{mask._data.dtype}")
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but "
                               f"got tensor with {value._data.ndim} dimension(s).")
    elif not isinstance(value, (int, float, bool, np.integer, np.floating, np.bool_)):
        raise TypeError(f"masked_fill(): argument 'value' must be a Number or a 0-d Tensor, "
                        f"not {type(value).__name__}")
    _note_read(mask)
    dt = x._data.dtype
    if not _is_float(x):
        v = value._data if isinstance(value, Tensor) else value
        return _plain(np.where(mask._data, np.asarray(v).astype(dt), x._data))
    if isinstance(value, Tensor):
        v = ops.to_dtype(value, dt)
    else:
        v = _plain(np.asarray(value, dt))
    try:
        np.broadcast_shapes(mask._data.shape, x._data.shape)
    except ValueError:
        raise RuntimeError(f"masked_fill: the mask of shape {tuple(mask._data.shape)} does not "
                           f"broadcast with the input of shape {tuple(x._data.shape)}") from None
    return ops.where(_plain(mask._data), v, x)


def index_select(input, dim, index):
    """The entries at positions ``index`` (1-d, int64/int32) along ``dim``."""
    x = _tensor(input, "index_select")
    idx = _index_tensor(index, "index_select",
                        msg="index_select(): Expected dtype int32 or int64 for index")
    if idx.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    a = x._data
    d = _dim(dim, a.ndim)
    if a.ndim == 0:
        if idx.size != 1:
            raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got "
                               f"{idx.size} value(s)")
        _check_range(idx.reshape(-1), 1, 0, "index_select")
        return ops.reshape(x, ())
    _check_range(idx.reshape(-1), a.shape[d], d, "index_select")
    return _take(x, _slab(a.shape, d, idx.reshape(-1)))


def _coords_map(index_shape, d, idx, shape):
    """Flat positions in an array of `shape` of index's entries: coordinates of each entry
    of `index`, with coordinate d replaced by its value."""
    coords = list(np.indices(index_shape, sparse=False)) if index_shape else []
    coords[d] = idx
    return np.ravel_multi_index(coords, shape) if shape else np.zeros(index_shape, np.int64)


def _scatter_gather_checks(fn, a_shape, d, idx, other_shape=None):
    nd = len(a_shape)
    if idx.ndim != max(nd, 1) and not (nd == 0 and idx.ndim == 0):
        raise RuntimeError(f"{fn}(): Index tensor must have the same number of dimensions as "
                           f"input tensor")
    for k in range(idx.ndim if nd else 0):
        if k != d and idx.shape[k] > a_shape[k] or (
                other_shape is not None and idx.shape[k] > other_shape[k]):
            if other_shape is None:
                raise RuntimeError(f"Size does not match at dimension {k} expected index "
                                   f"{list(idx.shape)} to be no larger than self "
                                   f"{list(a_shape)} apart from dimension {d}")
            raise RuntimeError(f"Expected index {list(idx.shape)} to be no larger than self "
                               f"{list(a_shape)} apart from dimension {d} and to be no larger "
                               f"size than src {list(other_shape)}")
    _check_range(idx, a_shape[d] if nd else 1, d, fn)


def gather(input, dim, index):
    """``out[i][j] = input[index[i][j]][j]`` for dim 0 (and likewise for other dims);
    ``index`` has input's number of dims. The gradient scatters back, repeats adding."""
    x = _tensor(input, "gather")
    idx = _index_tensor(index, "gather")
    a = x._data
    d = _dim(dim, a.ndim)
    _scatter_gather_checks("gather", a.shape, d, idx)
    if a.ndim == 0:
        return _take(x, np.zeros(idx.shape, np.int64))
    return _take(x, _coords_map(idx.shape, d, idx, a.shape))


def scatter_add(input, dim, index, src):
    """``input`` plus ``src``'s entries added at the positions ``index`` gives along ``dim``
    (``out[index[i][j]][j] += src[i][j]`` for dim 0). Differentiable in input and src."""
    x = _tensor(input, "scatter_add")
    s = _tensor(src, "scatter_add", "src")
    idx = _index_tensor(index, "scatter_add")
    if x._data.dtype != s._data.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype (got "
                           f"{x._data.dtype} and {s._data.dtype})")
    a = x._data
    d = _dim(dim, a.ndim)
    if s._data.ndim != idx.ndim:
        raise RuntimeError("scatter_add(): Index tensor must have the same number of "
                           "dimensions as src tensor")
    _scatter_gather_checks("scatter_add", a.shape, d, idx, s._data.shape)
    dest = (np.zeros(idx.shape, np.int64) if a.ndim == 0
            else _coords_map(idx.shape, d, idx, a.shape))
    if not _is_float(x):
        out = a.copy()
        np.add.at(out.reshape(-1), dest.reshape(-1),
                  s._data[tuple(slice(0, k) for k in idx.shape)].reshape(-1))
        return _plain(out)
    part = s if s._data.shape == idx.shape else _take(
        s, _imap(s._data.shape)[tuple(slice(0, k) for k in idx.shape)])
    return x + ops.scatter(part, dest.reshape(-1), a.shape)


def _last_writes(dest):
    """Positions in `dest` (flat destinations, in order) of the last write to each place:
    when an index repeats, the last value written wins."""
    rev = dest[::-1]
    _, first = np.unique(rev, return_index=True)
    return np.sort(dest.size - 1 - first)


def scatter(input, dim, index, src=None, *, value=None):
    """``input`` with ``src``'s entries (or the number ``value``) written at the positions
    ``index`` gives along ``dim`` (``out[index[i][j]][j] = src[i][j]`` for dim 0); where an
    index repeats, the last write wins. Differentiable in ``input`` (0 where overwritten)
    and ``src`` (at the entries written)."""
    x = _tensor(input, "scatter")
    if src is None and value is None:
        raise TypeError("scatter() missing 1 required positional argument: 'src' (or value=)")
    if src is not None and not isinstance(src, Tensor):
        value, src = src, None
    if value is not None and not isinstance(value, (int, float, bool, np.integer, np.floating)):
        raise TypeError(f"scatter(): argument 'value' must be Number, not "
                        f"{type(value).__name__}")
    idx = _index_tensor(index, "scatter")
    a = x._data
    d = _dim(dim, a.ndim)
    if src is not None:
        if src._data.dtype != a.dtype:
            raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype (got "
                               f"{a.dtype} and {src._data.dtype})")
        if src._data.ndim != idx.ndim:
            raise RuntimeError("scatter(): Index tensor must have the same number of "
                               "dimensions as src tensor")
        _scatter_gather_checks("scatter", a.shape, d, idx, src._data.shape)
    else:
        _scatter_gather_checks("scatter", a.shape, d, idx)
    dest = (np.zeros(idx.shape, np.int64) if a.ndim == 0
            else _coords_map(idx.shape, d, idx, a.shape)).reshape(-1)
    keep = _last_writes(dest)
    mask = np.zeros(a.size, bool)
    mask[dest[keep]] = True
    mask = mask.reshape(a.shape)
    if src is None:
        if not _is_float(x):
            return _plain(np.where(mask, np.asarray(value).astype(a.dtype), a))
        return ops.where(_plain(mask), _plain(np.asarray(value, a.dtype)), x)
    from_src = _imap(src._data.shape)[tuple(slice(0, k) for k in idx.shape)].reshape(-1)[keep]
    if not _is_float(x):
        out = a.copy()
        out.reshape(-1)[dest[keep]] = src._data.reshape(-1)[from_src]
        return _plain(out)
    written = ops.scatter(ops.take(src, from_src), dest[keep], a.shape)
    return ops.where(_plain(mask), written, x)


def _index_positions(fn, x, dim, index):
    idx = _index_tensor(index, fn, msg=f"{fn}(): Expected dtype int32/int64 for index")
    if idx.ndim > 1:
        if fn == "index_fill":          # PyTorch's two types for the same mistake
            raise RuntimeError("index_fill(): Index has to be a vector/scalar")
        raise IndexError(f"{fn}(): Index is supposed to be a vector")
    a = x._data
    d = _dim(dim, a.ndim)
    idx = idx.reshape(-1)
    n = a.shape[d] if a.ndim else 1
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"{fn}(): index {int(idx[bad][0])} is out of bounds for dimension "
                         f"{d} with size {n}")
    idx = np.where(idx < 0, idx + n, idx)
    return d, idx, (_slab(a.shape, d, idx) if a.ndim else np.zeros(idx.shape, np.int64))


def index_add(input, dim, index, source, *, alpha=1):
    """``input`` plus ``alpha * source`` added along ``dim`` at the positions ``index`` (a
    vector; repeats add up). Differentiable in both."""
    x = _tensor(input, "index_add")
    s = _tensor(source, "index_add", "source")
    d, idx, dest = _index_positions("index_add", x, dim, index)
    if s._data.shape != dest.shape:
        raise RuntimeError(f"index_add_(): source must have the shape of self with dim {d} "
                           f"of size {idx.size} ({list(dest.shape)}), got "
                           f"{list(s._data.shape)}")
    if s._data.dtype != x._data.dtype:
        raise RuntimeError(f"index_add_(): self ({x._data.dtype}) and source "
                           f"({s._data.dtype}) must have the same scalar type")
    part = s if alpha == 1 else s * alpha
    return x + ops.scatter(part, dest.reshape(-1), x._data.shape)


def index_fill(input, dim, index, value):
    """``input`` with ``value`` (a number, or a 0-d tensor that gets the gradient) in every
    slice ``index`` picks along ``dim``."""
    x = _tensor(input, "index_fill")
    _, _, dest = _index_positions("index_fill", x, dim, index)
    mask = np.zeros(x._data.size, bool)
    mask[dest.reshape(-1)] = True
    return masked_fill(x, _plain(mask.reshape(x._data.shape)), value)


def fill_diagonal(input, fill_value, wrap=False):
    """``input`` with ``fill_value`` on its main diagonal (all dims of equal size when more
    than 2; a tall matrix restarts below the square with ``wrap``); the method is the
    in-place ``fill_diagonal_``."""
    x = _tensor(input, "fill_diagonal_")
    a = x._data
    if a.ndim < 2:
        raise RuntimeError("dimensions must larger than 1")
    if a.ndim > 2 and len(set(a.shape)) != 1:
        raise RuntimeError("all dimensions of input must be of equal length")
    mask = np.zeros(a.shape, bool)
    np.fill_diagonal(mask, True, wrap=wrap)
    return masked_fill(x, _plain(mask), fill_value)


# ---- triangles, movement -------------------------------------------------------------------------
def _triangle(fn, x, diagonal, lower):
    x = _tensor(x, fn)
    diagonal = int_arg(diagonal, "diagonal")
    a = x._data
    if a.ndim < 2:
        raise RuntimeError(f"{fn}: input tensor must have at least 2 dimensions")
    r, c = a.shape[-2:]
    off = np.arange(c)[None, :] - np.arange(r)[:, None]
    keep = off <= diagonal if lower else off >= diagonal
    if not _is_float(x):
        return _plain(np.where(keep, a, 0).astype(a.dtype))
    return ops.where(_plain(keep), x, 0.0)


def tril(input, diagonal=0):
    """The lower triangle of the last two dims (on and below diagonal ``diagonal``); the rest
    zero."""
    return _triangle("tril", input, diagonal, True)


def triu(input, diagonal=0):
    """The upper triangle of the last two dims (on and above diagonal ``diagonal``)."""
    return _triangle("triu", input, diagonal, False)


def flip(input, dims):
    """Reverse the order of elements along ``dims`` (a tuple or list)."""
    x = _tensor(input, "flip")
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"flip(): argument 'dims' must be tuple of ints, not "
                        f"{type(dims).__name__}")
    a = x._data
    ds = _dimlist(tuple(dims), a.ndim)
    return _take(x, np.flip(_imap(a.shape), ds) if ds else _imap(a.shape))


def _flip_method(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return flip(self, tuple(dims))


def roll(input, shifts, dims=None):
    """Shift elements cyclically by ``shifts`` along ``dims`` (None: over the flattened
    tensor, shape kept)."""
    x = _tensor(input, "roll")
    a = x._data
    sh = tuple(int_arg(s, "shifts") for s in (shifts if isinstance(shifts, (tuple, list))
                                              else (shifts,)))
    if dims is None:
        if len(sh) != 1:
            raise RuntimeError(f"shifts and dimensions must align. shifts: {len(sh)}, dims:0")
        return _take(x, np.roll(_imap(a.shape).reshape(-1), sh[0]).reshape(a.shape))
    ds = dims if isinstance(dims, (tuple, list)) else (dims,)
    if len(ds) != len(sh):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(sh)}, "
                           f"dims:{len(ds)}")
    if a.ndim == 0:
        raise IndexError(f"Dimension specified as {ds[0]} but tensor has no dimensions")
    ds = tuple(_dim(d, a.ndim) for d in ds)
    return _take(x, np.roll(_imap(a.shape), sh, ds))


def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal ``offset`` (above the main one when positive) of the planes spanned by
    ``dim1`` and ``dim2``, as a new last dim."""
    x = _tensor(input, "diagonal")
    a = x._data
    d1, d2 = _dim(dim1, a.ndim), _dim(dim2, a.ndim)
    if a.ndim < 2:
        raise IndexError(f"Dimension out of range (expected to be in range of [-1, 0], but "
                         f"got {dim2})")
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return _take(x, np.diagonal(_imap(a.shape), int_arg(offset, "offset"), d1, d2))


def trace(input):
    """Sum of the main diagonal of a matrix."""
    x = _tensor(input, "trace")
    if x._data.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim "
                           f"{x._data.ndim}")
    if not _is_float(x):
        return _plain(np.trace(x._data).astype(np.int64))
    return ops.sum(diagonal(x))


def outer(input, vec2):
    """Outer product of two vectors: ``out[i, j] = input[i] * vec2[j]``."""
    x = _tensor(input, "outer")
    y = _tensor(vec2, "outer", "vec2")
    for t, name in ((x, "self"), (y, "vec2")):
        if t._data.ndim != 1:
            raise RuntimeError(f"outer: Expected 1-D argument {name}, but got "
                               f"{t._data.ndim}-D")
    return ops.reshape(x, (-1, 1)) * ops.reshape(y, (1, -1))


# ---- einsum --------------------------------------------------------------------------------------
def _parse_term(term, pos):
    """Labels of one operand's subscripts: letters, and '...' as the marker None."""
    out = []
    i = 0
    while i < len(term):
        ch = term[i]
        if term.startswith("...", i):
            if None in out:
                raise RuntimeError("einsum(): found '.' for operand that is not part of any "
                                   "ellipsis")
            out.append(None)
            i += 3
            continue
        if not ("a" <= ch <= "z" or "A" <= ch <= "Z"):
            raise RuntimeError(f"einsum(): invalid subscript given at index {pos + i} in the "
                               f"equation string, subscripts must be in [a-zA-Z]")
        out.append(ch)
        i += 1
    return out


def einsum(equation, *operands):
    """Sums of products of the operands' elements, as the subscripts in ``equation`` say
    (``'ij,jk->ik'``, ``'bij,bjk->bik'``, ``'i,i->'``, ``'ij->ji'``, ``'ii->i'``,
    ``'...ij,...jk->...ik'``; implicit output: the labels used once, sorted). Repeated labels
    take diagonals, labels absent from the output are summed, and each pair of operands is
    contracted with one ``matmul`` (or a broadcast multiply when nothing is contracted).

    >>> import tapegrad as torch
    >>> torch.einsum('ij,j->i', torch.ones(2, 3), torch.arange(3.0))
    tensor([3., 3.])
    """
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): argument 'equation' must be str, not "
                        f"{type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for k, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operand {k} must be a Tensor, not {type(t).__name__}")
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise RuntimeError("einsum(): more than one '->' found in the equation")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) > len(operands):
        raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                           "equation")
    if len(terms) < len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    dts = {t._data.dtype for t in operands}
    if len(dts) > 1:
        raise RuntimeError(f"einsum(): expected all operands to have the same dtype, got "
                           f"{sorted(str(d) for d in dts)}")
    if not all(_is_float(t) for t in operands):
        try:
            return _plain(np.einsum(equation, *[t._data for t in operands]))
        except ValueError as e:
            raise RuntimeError(f"einsum(): {e}") from None
    # label each operand's dims; ellipsis dims get labels 0, 1, ... aligned on the right
    pos = 0
    parsed = []
    for t in terms:
        parsed.append(_parse_term(t, pos))
        pos += len(t) + 1
    ell = 0
    for k, (p, t) in enumerate(zip(parsed, operands)):
        nl = len([c for c in p if c is not None])
        nd = t._data.ndim
        if None not in p and nl != nd:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({nl}) "
                               f"does not match the number of dimensions ({nd}) for operand "
                               f"{k} and no ellipsis was given")
        if None in p and nl > nd:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({nl}) is "
                               f"more than the number of dimensions ({nd}) for operand {k}")
        ell = max(ell, nd - nl) if None in p else ell
    labels = []
    for p, t in zip(parsed, operands):
        if None in p:
            e = t._data.ndim - (len(p) - 1)
            i = p.index(None)
            p = p[:i] + list(range(ell - e, ell)) + p[i + 1:]
        labels.append(p)
    sizes = {}
    for k, (lab, t) in enumerate(zip(labels, operands)):
        seen = {}
        for l, s in zip(lab, t._data.shape):
            if l in seen and seen[l] != s:
                raise RuntimeError(f"einsum(): subscript {l} is repeated for operand {k} but "
                                   f"the sizes don't match, {seen[l]} != {s}")
            seen[l] = s
            if l in sizes and sizes[l] != s and 1 not in (s, sizes[l]):
                raise RuntimeError(f"einsum(): subscript {l} has size {s} for operand {k} "
                                   f"which does not broadcast with previously seen size "
                                   f"{sizes[l]}")
            sizes[l] = max(sizes.get(l, s), s) if s != 1 else sizes.get(l, 1)
    if arrow:
        out = []
        for c in _parse_term(rhs, len(lhs) + 2):
            if c is None:
                out.extend(range(ell))
                continue
            if c in out:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in "
                                   f"the output")
            if not any(c in lab for lab in labels):
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the "
                                   f"equation for any input operand")
            out.append(c)
    else:
        letters = [l for lab in labels for l in lab if isinstance(l, str)]
        out = list(range(ell)) + sorted(l for l in set(letters) if letters.count(l) == 1)
    # each operand alone: diagonals of repeated labels, broadcast size-1 dims, sum the
    # labels no other operand and not the output uses
    ts = []
    for k, (lab, t) in enumerate(zip(labels, operands)):
        uniq = list(dict.fromkeys(lab))
        if len(uniq) != len(lab):
            shape = tuple(t._data.shape[lab.index(l)] for l in uniq)
            grid = np.indices(shape)
            src = [grid[uniq.index(l)] for l in lab]
            t = _take(t, np.ravel_multi_index(src, t._data.shape))
            lab = uniq
        big = tuple(sizes[l] for l in lab)
        if big != t._data.shape:
            t = ops.expand(t, *big)
        others = {l for j, o in enumerate(labels) if j != k for l in o} | set(out)
        drop = tuple(i for i, l in enumerate(lab) if l not in others)
        if drop:
            t = ops.sum(t, dim=drop)
            lab = [l for i, l in enumerate(lab) if i not in drop]
        ts.append((t, lab))
    a, la = ts[0]
    for j in range(1, len(ts)):
        b, lb = ts[j]
        keep = set(out) | {l for _, o in ts[j + 1:] for l in o}
        a, la = _contract(a, la, b, lb, keep)
    # the result: sum what is left over (single operand), then order as the output says
    drop = tuple(i for i, l in enumerate(la) if l not in out)
    if drop:
        a = ops.sum(a, dim=drop)
        la = [l for i, l in enumerate(la) if i not in drop]
    perm = tuple(la.index(l) for l in out)
    if perm != tuple(range(len(perm))):
        a = ops.permute(a, perm)
    elif len(ts) == 1 and a is operands[0]:
        a = ops.reshape(a, a._data.shape)       # a new tensor, as torch returns
    return a


def _contract(a, la, b, lb, keep):
    """Two labelled operands into one: batch labels (both, kept), left/right (one side),
    contracted (both, not kept) by one matmul over (batch, left, k) @ (batch, k, right)."""
    sa = dict(zip(la, a._data.shape))
    sb = dict(zip(lb, b._data.shape))
    batch = [l for l in la if l in sb and l in keep]
    con = [l for l in la if l in sb and l not in keep]
    left = [l for l in la if l not in sb]
    right = [l for l in lb if l not in sa]

    def arrange(t, lab, order):
        perm = tuple(lab.index(l) for l in order)
        return t if perm == tuple(range(len(perm))) else ops.permute(t, perm)
    bs = [sa[l] for l in batch]
    ls = [sa[l] for l in left]
    rs = [sb[l] for l in right]
    if not con:
        x = ops.reshape(arrange(a, la, batch + left), tuple(bs + ls + [1] * len(rs)))
        y = ops.reshape(arrange(b, lb, batch + right), tuple(bs + [1] * len(ls) + rs))
        return x * y, batch + left + right
    K = int(np.prod([sa[l] for l in con], dtype=np.int64))
    B = int(np.prod(bs, dtype=np.int64))
    L = int(np.prod(ls, dtype=np.int64))
    R = int(np.prod(rs, dtype=np.int64))
    x = ops.reshape(arrange(a, la, batch + left + con), (B, L, K) if batch else (L, K))
    y = ops.reshape(arrange(b, lb, batch + con + right), (B, K, R) if batch else (K, R))
    return ops.reshape(ops.matmul(x, y), tuple(bs + ls + rs)), batch + left + right
