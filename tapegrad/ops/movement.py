"""Data movement and indexing: gather, scatter and take by flat index maps, getitem,
transpose/t/permute, reshape/view/flatten/squeeze/unsqueeze, expand, clone, cat and stack.

Outside a graph a movement op returns a numpy view of its input when numpy gives one
(``_base`` links the two); on a graph it records a copy: GATHER with an index map for
indexing, permutations and expand, RESHAPE for shape changes and clone, CAT for cat and
stack. The one exception is the transpose of a leaf (``w.t()``), whose TRANSPOSE record's
value is a view of the leaf (``_transposed_leaf``).
"""
import numpy as np

from .. import kernels as K
from ..kernels import DT_BIT, NAME_SHIFT, RG_BIT
from ..tensor import Tensor, _FLOATS, _dim, _note_read, float32, float64, grad_enabled
from ..tensor import int_arg
from .elementwise import _t
from .operands import _dims, to_dtype
from .record import _N, _graph, _plain, _recording, _slot, _tape


def _gather(x, out, flat, fn):
    """Record out = x.flat[flat]; the VJP scatters back. `out` owns its memory."""
    tp = _tape()
    a = _slot(tp, x)
    io = tp.store_index(np.ascontiguousarray(flat, dtype=np.int64))
    word = K.GATHER | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, io, out.size, out, False)
    return _graph(out, tp, gid, fn)


def scatter(x, flat, shape, fn=None):
    """out = zeros(shape); out.flat[flat] += x.flat (repeats add): GATHER's transpose."""
    flat = np.ascontiguousarray(flat, dtype=np.int64).reshape(-1)
    out = np.zeros(int(np.prod(shape, dtype=np.int64)), x._data.dtype)
    np.add.at(out, flat, x._data.reshape(-1))
    out = out.reshape(shape)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    fn = _N["scatter"] if fn is None else fn
    tp = _tape()
    a = _slot(tp, x)
    io = tp.store_index(flat)
    word = K.SCATTER | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, io, flat.size, out, False)
    return _graph(out, tp, gid, fn)


def take(x, flat, shape=None, fn=None):
    """out.flat[i] = x.flat[flat[i]], shaped like `flat` (or `shape`): a recorded gather."""
    flat = np.asarray(flat, dtype=np.int64)
    out = x._data.reshape(-1)[flat]
    if shape is not None:
        out = out.reshape(shape)
        flat = flat.reshape(shape)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    return _gather(x, out, flat, _N["index"] if fn is None else fn)


def _view_of(x, out, fn, builder):
    """Result of a movement op: a view for plain tensors, a recorded copy otherwise."""
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        if np.shares_memory(out, x._data):
            t._base = x
        return t
    return builder(np.array(out, copy=True))


def _index_key(key):
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        _note_read(key)           # the positions are baked into the record (an index map)
        return key._data
    if isinstance(key, list):
        return np.asarray(key)
    return key


def _key_name(key):
    parts = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, np.ndarray) and k.ndim > 0 for k in parts):
        return _N["index"]
    if len(parts) == 1 and isinstance(parts[0], (int, np.integer)):
        return _N["select"]
    if all(k is None for k in parts):
        return _N["unsqueeze"]
    return _N["slice"]


def getitem(x, key):
    key = _index_key(key)
    try:
        out = x._data[key]
    except IndexError as e:
        if isinstance(key, (str, bytes)):
            raise TypeError(f"a tensor can't be indexed by a {type(key).__name__} ({key!r}); "
                            f"use integers, slices, None, ... or integer/bool tensors"
                            ) from None
        if x._data.ndim == 0:
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` to "
                             "convert a 0-dim tensor to a number") from None
        raise IndexError(f"{e} (tensor of shape {tuple(x._data.shape)})") from None
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        if np.shares_memory(out, x._data):
            t._base = x
        return t
    flat = np.arange(x._data.size).reshape(x._data.shape)[key]
    return _gather(x, np.array(out, copy=True), np.asarray(flat), _key_name(key))


def _perm_gather(x, axes, fn):
    out = x._data.transpose(axes)
    nd = len(axes)
    if nd >= 2 and axes == tuple(range(nd - 2)) + (nd - 1, nd - 2):
        # the last two dims swapped (t(), .T of a matrix, mT): a TRANSPOSE record, no map
        if x._tape is None and x._rg and grad_enabled():
            return _transposed_leaf(x, out, fn)
        return _view_of(x, out, fn, lambda o: _transposed(x, o, fn))
    return _view_of(x, out, fn, lambda o: _gather(
        x, o, np.arange(x._data.size).reshape(x._data.shape).transpose(axes), fn))


def _transposed(x, out, fn):
    tp = _tape()
    a = _slot(tp, x)
    m, k = x._data.shape[-2:]
    word = K.TRANSPOSE | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, m, k, out, False)
    return _graph(out, tp, gid, fn)


def _transposed_leaf(x, view, fn):
    """The transpose of a leaf that requires grad (``w.t()`` in Linear): a TRANSPOSE record
    whose value is a view of the leaf's memory, as PyTorch's is, not a copy. A product
    ``x @ w.t()`` then hands the view's address to BLAS with a transpose flag and the
    sweep puts w's gradient straight into w's (ops/linalg.py). The view shares the leaf's
    version: the engine counts an in-place change of the leaf as a change of every
    TRANSPOSE record of it (``_views_share_dirt``), and an in-place op on the view raises
    under grad mode (``_base``) and marks the leaf under no_grad. Only leaves get a view:
    a leaf's history cannot be rebased by an in-place op, so the view's values and its
    gradient's path stay consistent."""
    t = _transposed(x, view, fn)
    t._base = x
    return t


def transpose(x, dim0, dim1):
    nd = x._data.ndim
    if nd == 0:
        _dim(dim0, 0), _dim(dim1, 0)
        return _reshape(x, (), _N["transpose"])
    d0, d1 = _dim(dim0, nd), _dim(dim1, nd)
    axes = list(range(nd))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return _perm_gather(x, tuple(axes), _N["transpose"])


def t(x):
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{x._data.ndim}D; use transpose(dim0, dim1) or permute")
    if x._data.ndim < 2:
        return _reshape(x, x._data.shape, _N["t"])
    return _perm_gather(x, (1, 0), _N["t"])


def T_(x):
    return _perm_gather(x, tuple(range(x._data.ndim))[::-1], _N["permute"])


def permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    nd = x._data.ndim
    axes = tuple(_dim(d, nd) for d in dims)
    if sorted(axes) != list(range(nd)):
        raise RuntimeError(f"permute: dims {tuple(dims)} are not a permutation of the "
                           f"{nd} dimensions of a tensor of shape {tuple(x._data.shape)}")
    return _perm_gather(x, axes, _N["permute"])


def _reshape(x, shape, fn):
    try:
        out = x._data.reshape(shape)
    except ValueError:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                           f"{x._data.size} (tensor of shape {tuple(x._data.shape)})") from None
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        t._base = x
        return t
    out = np.array(out, copy=True)
    tp = _tape()
    a = _slot(tp, x)
    word = K.RESHAPE | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, 0, 0, out, False)
    return _graph(out, tp, gid, fn)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    out = tuple(int_arg(s, "shape entries") for s in shape)
    if out.count(-1) > 1:
        raise RuntimeError(f"only one dimension can be inferred (shape {list(out)})")
    for i, s in enumerate(out):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(out)}")
    return out


def reshape(x, *shape):
    return _reshape(x, _shape_args(shape), _N["view"])


def view(x, *shape):
    return _reshape(x, _shape_args(shape), _N["view"])


def flatten(x, start_dim=0, end_dim=-1):
    nd = x._data.ndim
    if nd == 0:
        return _reshape(x, (1,), _N["view"])
    s, e = _dim(start_dim, nd), _dim(end_dim, nd)
    shp = x._data.shape
    n = 1
    for d in range(s, e + 1):
        n *= shp[d]
    return _reshape(x, shp[:s] + (n,) + shp[e + 1:], _N["view"])


def squeeze(x, dim=None):
    shp = x._data.shape
    if dim is None:
        new = tuple(s for s in shp if s != 1)
    else:
        dims = _dims(dim, x._data.ndim)
        new = tuple(s for i, s in enumerate(shp) if not (i in dims and s == 1))
    return _reshape(x, new, _N["squeeze"])


def unsqueeze(x, dim):
    nd = x._data.ndim + 1
    d = _dim(dim, nd)
    shp = x._data.shape
    return _reshape(x, shp[:d] + (1,) + shp[d:], _N["unsqueeze"])


def expand(x, *shape):
    shape = _shape_args(shape)
    nd = len(shape)
    src = (1,) * (nd - x._data.ndim) + x._data.shape
    target = tuple(src[i] if s == -1 else s for i, s in enumerate(shape))
    try:
        out = np.broadcast_to(x._data, target)
    except ValueError:
        raise RuntimeError(f"expand: shape {tuple(x._data.shape)} cannot be expanded to "
                           f"{target}") from None
    return _view_of(x, out, _N["expand"], lambda o: _gather(
        x, o, np.broadcast_to(np.arange(x._data.size).reshape(x._data.shape), target),
        _N["expand"]))


def clone(x):
    out = x._data.copy()
    if not (x._rg and grad_enabled()):
        return _plain(out)
    tp = _tape()
    a = _slot(tp, x)
    fn = _N["clone"]
    word = K.RESHAPE | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, 0, 0, out, False)
    return _graph(out, tp, gid, fn)


def _cat_record(ts, out, dim, mids, fn):
    tp = _tape()
    shp = out.shape
    outer = 1
    for s in shp[:dim]:
        outer *= s
    inner = 1
    for s in shp[dim + 1:]:
        inner *= s
    slots = [_slot(tp, x) for x in ts]
    block = [len(ts), outer, inner, shp[dim] if out.ndim else 1]
    off = 0
    for s, m in zip(slots, mids):
        block += [s, m, off]
        off += m
    io = tp.store_index(np.asarray(block, np.int64))
    word = K.CAT | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, -1, -1, -1, io, len(block), out, False)
    return _graph(out, tp, gid, fn)


def _common(ts, fn):
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"{fn}(): argument 'tensors' must be a tuple or list of Tensors, not "
                        f"{type(ts).__name__}")
    ts = [_t(x) for x in ts]
    if not ts:   # PyTorch's types: ValueError from cat, RuntimeError from stack
        raise (ValueError if fn == "cat" else RuntimeError)(
            f"{fn}(): expected a non-empty list of Tensors")
    floats = [x._data.dtype for x in ts if x._data.dtype in _FLOATS]
    if floats:
        target = float64 if float64 in floats else float32
        ts = [to_dtype(x, target) for x in ts]
    return ts


def cat(tensors, dim=0):
    ts = _common(tensors, "cat")
    nd = ts[0]._data.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor cannot be concatenated; use stack")
    d = _dim(dim, nd)
    try:
        out = np.concatenate([x._data for x in ts], axis=d)
    except ValueError:
        raise RuntimeError("cat: tensors must have the same shape except in the "
                           f"concatenating dimension {d}; got shapes "
                           f"{[tuple(x._data.shape) for x in ts]}") from None
    if not _recording(*ts):
        return _plain(out)
    return _cat_record(ts, out, d, [x._data.shape[d] for x in ts], _N["cat"])


def stack(tensors, dim=0):
    ts = _common(tensors, "stack")
    d = _dim(dim, ts[0]._data.ndim + 1)
    try:
        out = np.stack([x._data for x in ts], axis=d)
    except ValueError:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got shapes "
                           f"{[tuple(x._data.shape) for x in ts]}") from None
    if not _recording(*ts):
        return _plain(out)
    return _cat_record(ts, out, d, [1] * len(ts), _N["stack"])
