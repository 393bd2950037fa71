"""Sorting and selection: sort, argsort, topk, kthvalue, median, mode, unique, nonzero,
masked_select, argwhere, where (the one-argument form), searchsorted, bucketize and
take_along_dim.

The order of the elements is read from the values with numpy (a stable sort), once, while
recording; the selected values are then one recorded gather (``take``) of the input at the
chosen positions, so their gradient flows back to those positions, as PyTorch's does. The
indices, and everything ``argsort``, ``unique``, ``nonzero``, ``searchsorted`` and
``bucketize`` return, are plain integer tensors outside any graph.

These ops read values while recording (``_note_read``): under ``compile`` a function that
applies one to its arguments runs eagerly, with compile's warning, since the positions (and
for ``nonzero``/``unique`` the shapes) depend on the values. ``take_along_dim`` and
``masked_select`` read only their indices or mask, as ``gather`` and indexing do.
"""
import numpy as np

from .. import ops
from ..tensor import Tensor, _dim, _note_read, int_arg
from .operands import _REAL
from .record import _name, _plain
from .reductions import _MAX, _MIN, return_type


class return_types:  # noqa: N801 - torch.return_types
    """The named tuples the selection ops return (``values, indices``), by op name."""
    sort = return_type("sort")
    topk = return_type("topk")
    kthvalue = return_type("kthvalue")
    median = return_type("median")
    mode = return_type("mode")
    aminmax = return_type("aminmax", ("min", "max"))
    max = _MAX  # noqa: A003 - max/min(dim) of reductions.py
    min = _MIN  # noqa: A003


def _tensor(x, fn, what="input", read=True):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{what}' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")
    if read:
        _note_read(x)
    return x


def _imap(shape):
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)


_N = {k: _name(f"{k}Backward0") for k in ("Sort", "Topk", "Kthvalue", "Median", "Mode",
                                            "Gather", "MaskedSelect")}
_N["MedianDim"] = _name("MedianBackward1")


def _pick(x, shape, d, idx, out_shape, name):
    """x's elements at positions idx (an int array) along dim d of `shape` (x's shape, or
    (1,) for a 0-d x), shaped `out_shape`: one recorded gather, with torch's grad_fn name."""
    flat = np.take_along_axis(_imap(shape), idx, axis=d)
    return ops.take(x, flat.reshape(-1), out_shape, fn=_N[name])


def _as_1d(a):
    """A 0-d array viewed as one element (the ops below treat it as a 1-d slice)."""
    return a.reshape(1) if a.ndim == 0 else a


def _order(a, d, descending):
    """Stable sort positions along d; descending keeps ties in their original order and puts
    NaN first (ascending: last), as PyTorch orders them."""
    if not descending:
        return np.argsort(a, axis=d, kind="stable")
    n = a.shape[d]
    rev = np.argsort(np.flip(a, d), axis=d, kind="stable")
    return n - 1 - np.flip(rev, d)


def sort(input, dim=-1, descending=False, stable=False):
    """The values along ``dim`` in order (ascending unless ``descending``) and the positions
    they came from, as ``(values, indices)``. Ties keep their order (the sort is always
    stable); NaN sorts above every number.

    >>> import tapegrad as torch
    >>> x = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)
    >>> values, indices = x.sort()
    >>> indices
    tensor([1, 2, 0])
    >>> (values * torch.tensor([1.0, 10.0, 100.0])).sum().backward(); x.grad
    tensor([100.,   1.,  10.])
    """
    x = _tensor(input, "sort")
    a = _as_1d(x._data)
    d = _dim(dim, a.ndim)
    idx = _order(a, d, descending)
    values = _pick(x, a.shape, d, idx, x._data.shape, "Sort")
    return return_types.sort(values, _plain(idx.reshape(x._data.shape).astype(np.int64)))


def argsort(input, dim=-1, descending=False, stable=False):
    """The positions that sort ``input`` along ``dim`` (``sort(...).indices``)."""
    x = _tensor(input, "argsort")
    if x._data.ndim == 0:
        _dim(dim, 0)
        return _plain(np.asarray(0, np.int64))
    return _plain(_order(x._data, _dim(dim, x._data.ndim), descending).astype(np.int64))


def _k_arg(k, n, fn, lo):
    k = int_arg(k, f"{fn}(): argument 'k'")
    if not lo <= k <= n:
        if fn == "topk":
            raise RuntimeError("selected index k out of range")
        raise RuntimeError(f"{fn}(): selected number k out of range for dimension")
    return k


def _reduced(x, a, d, idx, keepdim, name):
    """(values, indices) of a reduction over dim d of a (x's array, 1-d for a 0-d x) that
    picked the positions idx (dim d kept, of size 1)."""
    if x._data.ndim == 0:
        shape = ()
    elif keepdim:
        shape = idx.shape
    else:
        shape = idx.shape[:d] + idx.shape[d + 1:]
    return (_pick(x, a.shape, d, idx, shape, name),
            _plain(idx.reshape(shape).astype(np.int64)))


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """The ``k`` largest (or, with ``largest=False``, smallest) values along ``dim`` and
    their positions, largest first."""
    x = _tensor(input, "topk")
    a = _as_1d(x._data)
    d = _dim(dim, a.ndim)
    k = _k_arg(k, a.shape[d], "topk", 0)
    idx = np.take(_order(a, d, largest), np.arange(k), axis=d)
    shape = () if x._data.ndim == 0 and k == 1 else idx.shape
    return return_types.topk(_pick(x, a.shape, d, idx, shape, "Topk"),
                             _plain(idx.reshape(shape).astype(np.int64)))


def kthvalue(input, k, dim=-1, keepdim=False):
    """The ``k``-th smallest value along ``dim`` (k counts from 1) and its position."""
    x = _tensor(input, "kthvalue")
    a = _as_1d(x._data)
    d = _dim(dim, a.ndim)
    k = _k_arg(k, a.shape[d], "kthvalue", 1)
    idx = np.take(_order(a, d, False), [k - 1], axis=d)
    return return_types.kthvalue(*_reduced(x, a, d, idx, keepdim, "Kthvalue"))


def _median_positions(a, d):
    """The lower median's position along d, or the first NaN's where a slice has NaN."""
    n = a.shape[d]
    idx = np.take(_order(a, d, False), [(n - 1) // 2], axis=d)
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        has = nan.any(axis=d, keepdims=True)
        if has.any():
            idx = np.where(has, np.argmax(nan, axis=d, keepdims=True), idx)
    return idx


def median(input, dim=None, keepdim=False):
    """The lower of the two middle values (NaN if there is one). Without ``dim``: of all
    elements, a 0-d tensor; with ``dim``: ``(values, indices)`` along it."""
    x = _tensor(input, "median")
    if dim is None:
        if x._data.size == 0:
            return _plain(np.asarray(np.nan, x._data.dtype))
        a = x._data.reshape(-1)
        return _pick(x, a.shape, 0, _median_positions(a, 0), (), "Median")
    a = _as_1d(x._data)
    d = _dim(dim, a.ndim)
    if a.shape[d] == 0:
        raise IndexError(f"median(): Expected reduction dim {d} to have non-zero size.")
    idx = _median_positions(a, d)
    return return_types.median(*_reduced(x, a, d, idx, keepdim, "MedianDim"))


def mode(input, dim=-1, keepdim=False):
    """The most frequent value along ``dim`` (the smallest of equally frequent ones) and the
    position of its last occurrence."""
    x = _tensor(input, "mode")
    a = _as_1d(x._data)
    d = _dim(dim, a.ndim)
    if a.shape[d] == 0:
        raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size.")
    moved = np.moveaxis(a, d, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    pos = np.empty(rows.shape[0], np.int64)
    for r, row in enumerate(rows):
        vals, counts = np.unique(row, return_counts=True)
        best = vals[np.argmax(counts)]          # the first (smallest) of the most frequent
        hits = np.flatnonzero(row == best) if best == best else np.flatnonzero(row != row)
        pos[r] = hits[-1]
    idx = np.expand_dims(pos.reshape(moved.shape[:-1]), d)
    return return_types.mode(*_reduced(x, a, d, idx, keepdim, "Mode"))


def aminmax(input, *, dim=None, keepdim=False):
    """``(min, max)`` over all elements, or along ``dim``, as a named tuple; each
    differentiable as ``amin``/``amax`` (tied elements share the gradient)."""
    from .composite import amax, amin
    x = _tensor(input, "aminmax", read=False)
    if x._data.size == 0:
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the "
                           "operation has no identity.")
    d = () if dim is None else dim
    return return_types.aminmax(amin(x, d, keepdim), amax(x, d, keepdim))


def bincount(input, weights=None, minlength=0):
    """How often each value 0, 1, ... occurs in the 1-d non-negative integer ``input`` (or
    the sum of ``weights`` at its positions); at least ``minlength`` long. Not
    differentiable."""
    a = _tensor(input, "bincount")._data
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if a.size and a.min() < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    w = None if weights is None else _tensor(weights, "bincount", "weights")._data
    if w is not None and w.shape != a.shape:
        raise RuntimeError("weights should be 1-d and have the same length as input")
    out = np.bincount(a, weights=w, minlength=int_arg(minlength, "bincount(): minlength"))
    return _plain(out.astype(np.int64) if w is None else
                  out.astype(w.dtype if w.dtype.kind == "f" else np.float64))


def histc(input, bins=100, min=0, max=0):  # noqa: A002
    """A histogram of ``bins`` equal bins between ``min`` and ``max`` (both 0: the data's
    own range); values outside are left out. Not differentiable."""
    a = _tensor(input, "histc")._data
    if a.dtype.kind != "f":
        raise RuntimeError(f"torch.histogram: input tensor and bins tensors should have the "
                           f"same dtype, but got input {a.dtype} and bins float")
    bins = int_arg(bins, "histc(): bins")
    if bins <= 0:
        raise RuntimeError("bins must be > 0")
    lo, hi = float(min), float(max)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise RuntimeError("max must be larger than min")
    counts, _ = np.histogram(a[(a >= lo) & (a <= hi)], bins=bins, range=(lo, hi))
    return _plain(counts.astype(a.dtype))


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values (sorted), and with ``return_inverse`` where each element of the
    input went, with ``return_counts`` how often each occurs. Along ``dim``: the distinct
    slices. Not differentiable."""
    x = _tensor(input, "unique")
    a = x._data
    axis = None if dim is None else _dim(dim, a.ndim)
    vals, inv, counts = np.unique(a, return_inverse=True, return_counts=True, axis=axis)
    inv = inv.reshape(a.shape if axis is None else (a.shape[axis],)).astype(np.int64)
    out = [_plain(vals)]
    if return_inverse:
        out.append(_plain(inv))
    if return_counts:
        out.append(_plain(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def nonzero(input, *, as_tuple=False):
    """The positions of the non-zero elements: an int64 tensor of shape (count, ndim), or
    with ``as_tuple`` one 1-d tensor per dim. The shape depends on the values.

    >>> import tapegrad as torch
    >>> torch.tensor([[0, 3], [5, 0]]).nonzero()
    tensor([[0, 1],
            [1, 0]])
    """
    x = _tensor(input, "nonzero")
    a = x._data
    if as_tuple:
        return tuple(_plain(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(a)))
    return _plain(np.argwhere(a).astype(np.int64))


def masked_select(input, mask):
    """The elements of ``input`` where the bool ``mask`` holds (the two broadcast), as a
    1-d tensor; differentiable in ``input``. Its length depends on the mask's values."""
    x = _tensor(input, "masked_select", read=False)
    m = _tensor(mask, "masked_select", "mask")._data
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got {m.dtype}")
    try:
        shape = np.broadcast_shapes(x._data.shape, m.shape)
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({list(x._data.shape)}) must match the size "
                           f"of tensor b ({list(m.shape)}): they do not broadcast") from None
    src = np.broadcast_to(_imap(x._data.shape), shape)
    return ops.take(x, src[np.broadcast_to(m, shape)], fn=_N["MaskedSelect"])


def argwhere(input):
    """``nonzero(input)``: the positions of the non-zero elements, one row each."""
    return nonzero(input)


def where(condition, input=None, other=None):
    """``where(condition, input, other)`` picks elementwise (elementwise.py);
    ``where(condition)`` alone is ``nonzero(condition, as_tuple=True)``."""
    if input is None and other is None:
        return nonzero(_tensor(condition, "where", "condition"), as_tuple=True)
    return ops.where(condition, input, other)


def _where_method(self, condition, other):
    return ops.where(condition, self, other)


def _side(side, right, fn):
    if side is None:
        return "right" if right else "left"
    if side not in ("left", "right"):
        raise RuntimeError(f"{fn}(): side can only be 'left' or 'right' but got {side}")
    if right and side == "left":
        raise RuntimeError(f"{fn}(): side and right can't be set to opposites, got side of "
                           f"left while right was True")
    return side


def _out(a, out_int32):
    return _plain(np.asarray(a).astype(np.int32 if out_int32 else np.int64))


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None,
                 sorter=None):
    """Where each value of ``input`` would go in ``sorted_sequence`` (sorted along its last
    dim) to keep it sorted: the first such place, or with ``right``/``side='right'`` the
    last. An N-d sequence searches each row for the matching row of ``input``."""
    seq = _tensor(sorted_sequence, "searchsorted", "sorted_sequence")._data
    scalar = isinstance(input, _REAL)
    if not scalar:
        v = _tensor(input, "searchsorted")._data
    else:
        v = np.asarray(input)
    s = _side(side, right, "searchsorted")
    if sorter is not None:
        srt = _tensor(sorter, "searchsorted", "sorter")._data
        if srt.shape != seq.shape:
            raise RuntimeError("searchsorted(): boundary and sorter must have the same size")
        seq = np.take_along_axis(seq, srt.astype(np.int64), axis=-1)
    if seq.ndim <= 1 or scalar:
        if seq.ndim > 1:
            raise RuntimeError("searchsorted(): input value can be a scalar only when "
                               "boundaries tensor dimension is 1")
        return _out(np.searchsorted(seq.reshape(-1), v, side=s), out_int32)
    if seq.shape[:-1] != v.shape[:-1]:
        raise RuntimeError(f"searchsorted(): boundaries tensor should be 1 dimension or the "
                           f"first N-1 dimensions of boundaries tensor and input value "
                           f"tensor must match, but we got boundaries tensor "
                           f"{list(seq.shape)} and input value tensor {list(v.shape)}")
    rows = seq.reshape(-1, seq.shape[-1])
    vals = v.reshape(-1, v.shape[-1])
    out = np.stack([np.searchsorted(r, q, side=s) for r, q in zip(rows, vals)])
    return _out(out.reshape(v.shape), out_int32)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each value of ``input`` among the sorted 1-d ``boundaries``: i such that
    ``boundaries[i-1] < x <= boundaries[i]`` (with ``right``: ``<= x <``)."""
    b = _tensor(boundaries, "bucketize", "boundaries")._data
    if b.ndim != 1:
        raise RuntimeError(f"bucketize(): boundaries tensor must be 1 dimension, but got dim("
                           f"{b.ndim})")
    v = np.asarray(input) if isinstance(input, _REAL) else _tensor(input, "bucketize")._data
    return _out(np.searchsorted(b, v, side="right" if right else "left"), out_int32)


def take_along_dim(input, indices, dim=None):
    """``input``'s values at ``indices`` along ``dim`` (the two broadcast against each other
    in the other dims); without ``dim`` both are flattened first. Differentiable in
    ``input``: the gradient adds back at the positions taken."""
    x = _tensor(input, "take_along_dim", read=False)   # only the indices are read
    if not isinstance(indices, Tensor):
        raise TypeError(f"take_along_dim(): argument 'indices' (position 2) must be Tensor, "
                        f"not {type(indices).__name__}")
    _note_read(indices)
    idx = indices._data
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"torch.take_along_dim(): dtype of indices should be Long but got "
                           f"{idx.dtype}")
    a_shape = x._data.shape
    if dim is None:
        n = x._data.size
        flat = idx.reshape(-1).astype(np.int64)
        _bounds(flat, n, 0)
        return ops.take(x, np.where(flat < 0, flat + n, flat), fn=_N["Gather"])
    nd = x._data.ndim
    if idx.ndim != nd:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {nd} dimensions for input, and "
                           f"{idx.ndim} dimensions for indices")
    if nd == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = _dim(dim, nd)
    rest_a = a_shape[:d] + (1,) + a_shape[d + 1:]
    rest_i = idx.shape[:d] + (1,) + idx.shape[d + 1:]
    try:
        common = np.broadcast_shapes(rest_a, rest_i)
    except ValueError:
        raise RuntimeError(f"take_along_dim(): shapes {list(a_shape)} and {list(idx.shape)} "
                           f"do not broadcast outside dim {d}") from None
    out_shape = common[:d] + (idx.shape[d],) + common[d + 1:]
    ib = np.broadcast_to(idx.astype(np.int64), out_shape)
    _bounds(ib, a_shape[d], d)
    ib = np.where(ib < 0, ib + a_shape[d], ib)
    coords = list(np.indices(out_shape, sparse=True))
    coords = [np.zeros_like(c) if a_shape[i] == 1 and i != d else c
              for i, c in enumerate(coords)]
    coords[d] = ib
    flat = np.ravel_multi_index(np.broadcast_arrays(*coords), a_shape)
    return ops.take(x, flat.reshape(-1), out_shape, fn=_N["Gather"])


def _bounds(idx, size, d):
    bad = (idx < -size) | (idx >= size)
    if bad.any():
        raise IndexError(f"index {int(idx[bad].reshape(-1)[0])} is out of bounds for dimension "
                         f"{d} with size {size}")


__all__ = ["sort", "argsort", "topk", "kthvalue", "median", "mode", "unique", "nonzero",
           "masked_select", "argwhere", "aminmax", "bincount", "histc", "where",
           "searchsorted", "bucketize", "take_along_dim"]
