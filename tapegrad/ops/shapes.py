"""Shape ops composed from the recorded ones: batched products (bmm, baddbmm, addmm),
pieces (chunk, split, unbind, narrow, select), copies (repeat, tile, repeat_interleave),
the ``*_as`` forms, movedim/swapaxes, diagonals (diag, diag_embed, diagflat, block_diag),
grids and broadcasting (meshgrid, broadcast_to, broadcast_tensors), products of arrays
(cross, kron, tensordot, cdist), and numpy's joins and pieces (atleast_*d, vstack, hstack,
dstack, column_stack, unflatten, tensor_split, hsplit, vsplit, fliplr, flipud,
triu_indices, tril_indices).

Every one is indexing (``getitem``/``take``/``scatter`` with maps computed from shapes
only), ``reshape``/``expand``/``permute``, ``matmul`` and elementwise ops, so gradients,
``compile``, ``jvp`` and ``hessian`` come from those records. Only ``repeat_interleave``
with a tensor of repeats reads values while recording (the output's length depends on
them).
"""
import warnings

import numpy as np

from .. import ops
from ..tensor import Tensor, _dim, _note_read, int_arg
from .composite import _imap, _take, norm
from .record import _name

_REPEAT, _DIAG_EMBED = _name("RepeatBackward0"), _name("DiagEmbedBackward0")


def _tensor(x, fn, what="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{what}' must be Tensor, not {type(x).__name__}")
    return x


def _sizes(args, fn):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    return tuple(int_arg(s, f"{fn}(): sizes") for s in args)


# ---- batched products ----------------------------------------------------------------------------
def bmm(input, mat2):
    """Batched matrix product of two 3-d tensors: (b, n, m) @ (b, m, p) -> (b, n, p)."""
    a, b = _tensor(input, "bmm"), _tensor(mat2, "bmm", "mat2")
    if a._data.ndim != 3:
        raise RuntimeError("batch1 must be a 3D tensor")
    if b._data.ndim != 3:
        raise RuntimeError("batch2 must be a 3D tensor")
    if a._data.dtype != b._data.dtype:
        raise RuntimeError(f"bmm(): expected both batches to have the same dtype, but got "
                           f"{a._data.dtype} and {b._data.dtype}")
    (bs, _, m), shape2 = a._data.shape, b._data.shape
    if shape2[:2] != (bs, m):
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                           f"[{bs}, {m}] but got: [{shape2[0]}, {shape2[1]}].")
    return ops.matmul(a, b)


def _scaled_sum(fn, input, prod, beta, alpha):
    """beta * input + alpha * prod; with beta == 0 input is ignored (its NaNs too)."""
    out = prod if alpha == 1 else prod * alpha
    try:
        if np.broadcast_shapes(input._data.shape, out._data.shape) != out._data.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"{fn}: the input of shape {list(input._data.shape)} does not "
                           f"broadcast to the product's shape {list(out._data.shape)}") from None
    if beta == 0:
        return out
    return out + (input if beta == 1 else input * beta)


def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)`` (``input`` broadcast)."""
    _tensor(input, "baddbmm")
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` for matrices (``input`` broadcast)."""
    _tensor(input, "addmm")
    return _scaled_sum("addmm", input, ops.mm(mat1, mat2), beta, alpha)


# ---- pieces --------------------------------------------------------------------------------------
def _slice(x, d, start, stop):
    key = (slice(None),) * d + (slice(start, stop),)
    return ops.getitem(x, key)


def narrow(input, dim, start, length):
    """The ``length`` elements of ``dim`` from ``start`` on (``start`` may be negative)."""
    x = _tensor(input, "narrow")
    if x._data.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _dim(dim, x._data.ndim)
    n = x._data.shape[d]
    start, length = int_arg(start, "narrow(): start"), int_arg(length, "narrow(): length")
    if not -n <= start <= n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got "
                         f"{start})")
    start %= n if n else 1
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return _slice(x, d, start, start + length)


def select(input, dim, index):
    """The slice at ``index`` of ``dim`` (that dim removed): ``x.select(1, 2)`` is
    ``x[:, 2]``."""
    x = _tensor(input, "select")
    if x._data.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _dim(dim, x._data.ndim)
    n = x._data.shape[d]
    i = int_arg(index, "select(): index")
    if not -n <= i < n:
        raise IndexError(f"select(): index {i} out of range for tensor of size "
                         f"{list(x._data.shape)} at dimension {d}")
    return ops.getitem(x, (slice(None),) * d + (i,))


def split(tensor, split_size_or_sections, dim=0):
    """Pieces along ``dim``: of ``split_size`` each (the last may be smaller), or of the
    sizes in a list, which must add up to the dim's size."""
    x = _tensor(tensor, "split", "tensor")
    if x._data.ndim == 0:
        raise RuntimeError("split expects at least a 1-dimensional tensor")
    d = _dim(dim, x._data.ndim)
    n = x._data.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int_arg(s, "split(): split_sizes") for s in split_size_or_sections]
        if any(s < 0 for s in sizes):
            raise RuntimeError(f"split_with_sizes expects split_sizes have only non-negative "
                               f"entries, but got split_sizes={sizes}")
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
    else:
        size = int_arg(split_size_or_sections, "split(): split_size")
        if size < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got "
                               f"split_size={size}")
        if size == 0:
            if n:
                raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got "
                                   f"dimension size of {n}")
            return (_slice(x, d, 0, 0),)
        sizes = [size] * (n // size) + ([n % size] if n % size or n == 0 else [])
    out, at = [], 0
    for s in sizes:
        out.append(_slice(x, d, at, at + s))
        at += s
    return tuple(out)


def chunk(input, chunks, dim=0):
    """At most ``chunks`` pieces of equal size along ``dim`` (the last may be smaller, and
    there may be fewer when the size does not divide).

    >>> import tapegrad as torch
    >>> torch.arange(5).chunk(2)
    (tensor([0, 1, 2]), tensor([3, 4]))
    """
    x = _tensor(input, "chunk")
    chunks = int_arg(chunks, "chunk(): chunks")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    if x._data.ndim == 0:
        raise RuntimeError("chunk expects at least a 1-dimensional tensor")
    d = _dim(dim, x._data.ndim)
    n = x._data.shape[d]
    if n == 0:                          # PyTorch: `chunks` empty pieces
        return tuple(_slice(x, d, 0, 0) for _ in range(chunks))
    return split(x, -(-n // chunks), d)


def unbind(input, dim=0):
    """The slices along ``dim``, as a tuple (that dim removed from each)."""
    x = _tensor(input, "unbind")
    if x._data.ndim == 0:
        raise IndexError("Dimension specified as 0 but tensor has no dimensions")
    d = _dim(dim, x._data.ndim)
    return tuple(ops.getitem(x, (slice(None),) * d + (i,)) for i in range(x._data.shape[d]))


# ---- copies --------------------------------------------------------------------------------------
def _tile_map(shape, reps):
    nd = max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + tuple(shape)
    reps = (1,) * (nd - len(reps)) + tuple(reps)
    return np.tile(_imap(shape), reps)


def repeat(input, *sizes):
    """The tensor repeated ``sizes[i]`` times along dim i (``sizes`` may add leading
    dims): ``Tensor.repeat``, which is numpy's ``tile``."""
    x = _tensor(input, "repeat")
    reps = _sizes(sizes, "repeat")
    if len(reps) < x._data.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number "
                           "of dimensions of tensor")
    if any(r < 0 for r in reps):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(reps)}")
    return _repeat(x, reps)


def _repeat(x, reps):
    m = _tile_map(x._data.shape, reps)
    return ops.take(x, m.reshape(-1), m.shape, fn=_REPEAT)


def tile(input, dims):
    """``repeat``, where fewer ``dims`` than the tensor has count as leading ones."""
    x = _tensor(input, "tile")
    reps = _sizes((dims,) if isinstance(dims, (tuple, list)) else (dims,), "tile")
    if any(r < 0 for r in reps):
        raise RuntimeError(f"Trying to create tensor with negative dimension: {list(reps)}")
    return _repeat(x, reps)


def _tile_method(self, *dims):
    return tile(self, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list))
                else dims)


def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (or each slice along ``dim``) repeated ``repeats`` times in place (an
    int, or a tensor of one count per element); without ``dim`` the input is flattened.
    ``repeat_interleave(counts)`` alone repeats 0, 1, 2... by the counts."""
    if repeats is None:
        counts = _tensor(input, "repeat_interleave")
        _note_read(counts)
        return ops.as_tensor(np.repeat(np.arange(counts._data.size, dtype=np.int64),
                                       counts._data.reshape(-1)))
    x = _tensor(input, "repeat_interleave")
    if dim is None:
        x, d = ops.reshape(x, (-1,)), 0
    else:
        d = _dim(dim, x._data.ndim)
        if x._data.ndim == 0:
            x = ops.reshape(x, (1,))
    if isinstance(repeats, Tensor):
        _note_read(repeats)
        r = repeats._data.reshape(-1).astype(np.int64)
        if r.size not in (1, x._data.shape[d]):
            raise RuntimeError("repeats must have the same size as input along dim")
    else:
        r = np.asarray(int_arg(repeats, "repeat_interleave(): repeats"))
    if (r < 0).any():
        raise RuntimeError("repeats can not be negative")
    return _take(x, np.repeat(_imap(x._data.shape), r if r.ndim else int(r), axis=d))


def expand_as(input, other):
    """``input.expand(other.size())``."""
    return ops.expand(_tensor(input, "expand_as"), *_tensor(other, "expand_as", "other").shape)


def view_as(input, other):
    """``input.view(other.size())``."""
    return ops.view(_tensor(input, "view_as"), *_tensor(other, "view_as", "other").shape)


def reshape_as(input, other):
    """``input.reshape(other.size())``."""
    return ops.reshape(_tensor(input, "reshape_as"), *_tensor(other, "reshape_as", "other").shape)


def contiguous(input, memory_format=None):
    """The tensor itself when its memory is in row-major order, else a row-major copy."""
    x = _tensor(input, "contiguous")
    return x if x._data.flags.c_contiguous else ops.clone(x)


def is_contiguous(input, memory_format=None):
    """Whether the tensor's memory is in row-major order. Recorded results are always
    (tapegrad copies on a graph where PyTorch makes strided views)."""
    return bool(_tensor(input, "is_contiguous")._data.flags.c_contiguous)


def movedim(input, source, destination):
    """The dims ``source`` (an int or a sequence) moved to the places ``destination``, the
    others keeping their order."""
    x = _tensor(input, "movedim")
    nd = x._data.ndim
    src = source if isinstance(source, (tuple, list)) else (source,)
    dst = destination if isinstance(destination, (tuple, list)) else (destination,)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    src = [_dim(s, nd) for s in src]
    dst = [_dim(s, nd) for s in dst]
    if len(set(src)) != len(src):
        raise RuntimeError(f"movedim: repeated dim in `source` ({list(source)})")
    if len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in `destination` ({list(destination)})")
    if nd == 0:
        return ops.reshape(x, ())
    rest = iter(i for i in range(nd) if i not in src)
    at = dict(zip(dst, src))
    return ops.permute(x, tuple(at[i] if i in at else next(rest) for i in range(nd)))


def swapaxes(input, axis0, axis1):
    """``transpose(input, axis0, axis1)`` (numpy's name; ``swapdims`` too)."""
    return ops.transpose(_tensor(input, "swapaxes"), axis0, axis1)


def _mH(self):
    if self._data.ndim < 2:
        raise RuntimeError("tensor.mH is only supported on matrices or batches of matrices. "
                           f"Got {self._data.ndim}-D tensor.")
    return ops.transpose(self, -2, -1)       # real tensors: the conjugate is the tensor


def _mT(self):
    if self._data.ndim < 2:
        raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {self._data.ndim}-D tensor.")
    return ops.transpose(self, -2, -1)


# ---- diagonals -----------------------------------------------------------------------------------
def _embed(x, out_shape, offset, d1, d2):
    """x (shape rest + (n,)) scattered onto diagonal `offset` of dims d1, d2 of out_shape."""
    flat = np.diagonal(_imap(out_shape), offset, d1, d2)
    return ops.scatter(x, flat.reshape(-1), out_shape, fn=_DIAG_EMBED)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices (in dims ``dim1``, ``dim2`` of the result) whose diagonal ``offset`` holds
    the last dim of ``input``; zero elsewhere."""
    x = _tensor(input, "diag_embed")
    offset = int_arg(offset, "diag_embed(): offset")
    a = x._data
    if a.ndim == 0:
        x, a = ops.reshape(x, (1,)), a.reshape(1)
    nd = a.ndim + 1
    d1, d2 = _dim(dim1, nd), _dim(dim2, nd)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    m = a.shape[-1] + abs(offset)
    rest = iter(a.shape[:-1])
    out_shape = tuple(m if i in (d1, d2) else next(rest) for i in range(nd))
    return _embed(x, out_shape, offset, d1, d2)


def diag(input, diagonal=0):
    """A 1-d input: the square matrix with it on diagonal ``diagonal``. A 2-d input: that
    diagonal of it, as a 1-d tensor.

    >>> import tapegrad as torch
    >>> torch.diag(torch.tensor([1, 2]))
    tensor([[1, 0],
            [0, 2]])
    """
    x = _tensor(input, "diag")
    k = int_arg(diagonal, "diag(): diagonal")
    nd = x._data.ndim
    if nd == 1:
        return diag_embed(x, k)
    if nd == 2:
        return ops.take(x, np.diagonal(_imap(x._data.shape), k).reshape(-1))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {nd}D")


def diagflat(input, offset=0):
    """``diag`` of the flattened input: a square matrix with its elements on diagonal
    ``offset``."""
    x = _tensor(input, "diagflat")
    return diag_embed(ops.reshape(x, (-1,)), offset)


def block_diag(*tensors):
    """The matrices (0-d and 1-d inputs count as 1-by-1 and 1-by-n) along the diagonal of
    one matrix, zero elsewhere."""
    ts = []
    for k, t in enumerate(tensors):
        _tensor(t, "block_diag", f"tensors[{k}]")
        if t._data.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer "
                               f"dimensions. Input {k} has {t._data.ndim} dimensions")
        ts.append(ops.reshape(t, (1, -1) if t._data.ndim == 1 else (1, 1)) if t._data.ndim < 2
                  else t)
    if not ts:
        return ops.as_tensor(np.zeros((1, 0), np.float32))
    dt = np.result_type(*[t._data.dtype for t in ts])
    ts = [ops.to_dtype(t, dt) for t in ts]
    rows = sum(t._data.shape[0] for t in ts)
    cols = sum(t._data.shape[1] for t in ts)
    grid = _imap((rows, cols))
    out, r, c = None, 0, 0
    for t in ts:
        n, m = t._data.shape
        part = ops.scatter(t, grid[r:r + n, c:c + m].reshape(-1), (rows, cols))
        out = part if out is None else out + part
        r, c = r + n, c + m
    return out


# ---- grids and broadcasting ----------------------------------------------------------------------
def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-d (or 0-d) tensors: ``indexing='ij'`` (the default, with
    PyTorch's warning when not given) puts input k on dim k; ``'xy'`` swaps the first two."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass "
                      "the indexing argument.", UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                         f"received: {indexing}")
    ts = []
    for k, t in enumerate(tensors):
        _tensor(t, "meshgrid", f"tensors[{k}]")
        if t._data.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list "
                               f"but got: {t._data.ndim}D tensor")
        ts.append(ops.reshape(t, (-1,)))
    if len({t._data.dtype for t in ts}) > 1:
        raise RuntimeError("torch.meshgrid: Expected all tensors in the tensor list to have the "
                           "same dtype")
    swap = indexing == "xy" and len(ts) >= 2
    order = [1, 0] + list(range(2, len(ts))) if swap else list(range(len(ts)))
    sizes = [ts[i]._data.shape[0] for i in order]
    out = []
    for k, t in enumerate(ts):
        pos = order.index(k)
        shape = [1] * len(ts)
        shape[pos] = -1
        out.append(ops.expand(ops.reshape(t, tuple(shape)), *sizes))
    return tuple(out)


def broadcast_to(input, size):
    """``input.expand(size)``."""
    return ops.expand(_tensor(input, "broadcast_to"), *_sizes((size,), "broadcast_to"))


def broadcast_shapes(*shapes):
    """The shape the given shapes broadcast to (a ``Size``); RuntimeError when they do not."""
    from ..tensor import Size
    shapes = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
    try:
        return Size(np.broadcast_shapes(*shapes))
    except ValueError:
        raise RuntimeError(f"Shape mismatch: objects cannot be broadcast to a single shape: "
                           f"{shapes}") from None


def broadcast_tensors(*tensors):
    """The tensors expanded to their common broadcast shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    ts = [_tensor(t, "broadcast_tensors", f"tensors[{k}]") for k, t in enumerate(tensors)]
    shape = broadcast_shapes(*[t._data.shape for t in ts])
    return tuple(t if t._data.shape == tuple(shape) else ops.expand(t, *shape) for t in ts)


# ---- products of arrays --------------------------------------------------------------------------
def cross(input, other, dim=None):
    """The cross product of 3-vectors along ``dim`` (the two broadcast). Without ``dim``, the
    first dim of size 3, with PyTorch's deprecation warning; ``linalg.cross`` uses -1."""
    a, b = _tensor(input, "cross"), _tensor(other, "cross", "other")
    if a._data.ndim != b._data.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions, "
                           f"got {a._data.ndim} and {b._data.ndim}")
    a, b = broadcast_tensors(a, b)
    shape = a._data.shape
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated. Please "
                      "either pass the dim explicitly or simply use torch.linalg.cross.",
                      UserWarning, stacklevel=2)
        threes = [i for i, s in enumerate(shape) if s == 3]
        if not threes:
            raise RuntimeError("no dimension of size 3 in input")
        d = threes[0]
    else:
        d = _dim(dim, len(shape))
    if shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {d} must have length 3. Got "
                           f"{shape[d]} and {shape[d]}")

    def comp(t, i):
        return ops.take(t, np.take(_imap(shape), [i], axis=d).reshape(-1),
                        shape[:d] + (1,) + shape[d + 1:])
    ax, ay, az = (comp(a, i) for i in range(3))
    bx, by, bz = (comp(b, i) for i in range(3))
    return ops.cat([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], d)


def kron(input, other):
    """The Kronecker product: every element of ``input`` times the whole of ``other``,
    as blocks (the two padded to the same number of dims)."""
    a, b = _tensor(input, "kron"), _tensor(other, "kron", "other")
    nd = max(a._data.ndim, b._data.ndim)
    sa = (1,) * (nd - a._data.ndim) + a._data.shape
    sb = (1,) * (nd - b._data.ndim) + b._data.shape
    x = ops.reshape(a, tuple(v for s in sa for v in (s, 1)))
    y = ops.reshape(b, tuple(v for s in sb for v in (1, s)))
    return ops.reshape(x * y, tuple(p * q for p, q in zip(sa, sb)))


def tensordot(a, b, dims=2):
    """Sum of products over the last ``dims`` dims of ``a`` and the first ``dims`` of ``b``,
    or over the dims listed in a pair ``([dims of a], [dims of b])``."""
    x, y = _tensor(a, "tensordot", "a"), _tensor(b, "tensordot", "b")
    na, nb = x._data.ndim, y._data.ndim
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, (list, tuple)):
        if len(dims) != 2:
            raise RuntimeError("tensordot expects dims to be a pair of lists of dims")
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    else:
        k = int_arg(dims, "tensordot(): dims")
        if k < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={k}")
        if k > min(na, nb):
            raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={k}")
        da, db = list(range(na - k, na)), list(range(k))
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    da = [_dim(d, na) for d in da]
    db = [_dim(d, nb) for d in db]
    for p, q in zip(da, db):
        if x._data.shape[p] != y._data.shape[q]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size "
                               f"{x._data.shape[p]} in dim {p} and second has size "
                               f"{y._data.shape[q]} in dim {q}")
    fa = [i for i in range(na) if i not in da]
    fb = [i for i in range(nb) if i not in db]
    K = int(np.prod([x._data.shape[i] for i in da], dtype=np.int64))
    xa = ops.reshape(ops.permute(x, tuple(fa + da)) if na else x, (-1, K))
    yb = ops.reshape(ops.permute(y, tuple(db + fb)) if nb else y, (K, -1))
    out = ops.mm(xa, yb)
    return ops.reshape(out, tuple(x._data.shape[i] for i in fa) +
                       tuple(y._data.shape[i] for i in fb))


def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """The p-norm distances between the rows of ``x1`` (..., P, M) and of ``x2`` (..., R,
    M): (..., P, R). The gradient at a zero distance is 0, as PyTorch's."""
    a, b = _tensor(x1, "cdist", "x1"), _tensor(x2, "cdist", "x2")
    if a._data.ndim < 2 or b._data.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: "
                           f"{a._data.ndim}D" if a._data.ndim < 2 else
                           f"cdist only supports at least 2D tensors, X2 got: {b._data.ndim}D")
    if a._data.shape[-1] != b._data.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{a._data.shape[-1]} X2: {b._data.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    diff = ops.unsqueeze(a, -2) - ops.unsqueeze(b, -3)
    return norm(diff, p, dim=-1)


# ---- more joins and pieces -----------------------------------------------------------------------
def _grown(shape, n):
    """The shape with the size-1 dims numpy's atleast_nd adds."""
    if len(shape) >= n:
        return shape
    if n == 1:
        return (1,)
    if n == 2:
        return (1,) + shape if shape else (1, 1)
    return {0: (1, 1, 1), 1: (1,) + shape + (1,), 2: shape + (1,)}[len(shape)]


def _atleast(n, tensors, fn):
    single = len(tensors) == 1 and not isinstance(tensors[0], (list, tuple))
    ts = tensors[0] if len(tensors) == 1 and not single else tensors
    out = []
    for t in ts:
        shape = _tensor(t, fn)._data.shape
        out.append(t if len(shape) >= n else ops.reshape(t, _grown(shape, n)))
    return out[0] if single else tuple(out)


def atleast_1d(*tensors):
    """The tensors with at least one dim (a 0-d one becomes shape (1,))."""
    return _atleast(1, tensors, "atleast_1d")


def atleast_2d(*tensors):
    """The tensors with at least two dims (shape (n,) becomes (1, n))."""
    return _atleast(2, tensors, "atleast_2d")


def atleast_3d(*tensors):
    """The tensors with at least three dims ((n,) becomes (1, n, 1), (m, n) (m, n, 1))."""
    return _atleast(3, tensors, "atleast_3d")


def _seq(tensors, fn):
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{fn}(): argument 'tensors' must be tuple of Tensors, not "
                        f"{type(tensors).__name__}")
    return list(tensors)


def vstack(tensors):
    """``cat`` along dim 0 of the tensors made at least 2-d (rows)."""
    return ops.cat(list(atleast_2d(*_seq(tensors, "vstack"))), 0)


def hstack(tensors):
    """``cat`` along dim 1 (along dim 0 for 1-d tensors)."""
    ts = list(atleast_1d(*_seq(tensors, "hstack")))
    return ops.cat(ts, 0 if ts and ts[0]._data.ndim == 1 else 1)


def column_stack(tensors):
    """The tensors as columns: 0-d and 1-d ones become (n, 1), then ``cat`` along dim 1."""
    ts = [ops.reshape(t, (-1, 1)) if _tensor(t, "column_stack")._data.ndim < 2 else t
          for t in _seq(tensors, "column_stack")]
    return ops.cat(ts, 1)


def dstack(tensors):
    """``cat`` along dim 2 of the tensors made at least 3-d."""
    return ops.cat(list(atleast_3d(*_seq(tensors, "dstack"))), 2)


def unflatten(input, dim, sizes):
    """Dim ``dim`` split into the dims ``sizes`` (one of them may be -1)."""
    x = _tensor(input, "unflatten")
    nd = x._data.ndim
    d = _dim(dim, nd)
    sizes = tuple(int_arg(s, "unflatten(): sizes") for s in sizes)
    n = x._data.shape[d]
    known = int(np.prod([s for s in sizes if s != -1], dtype=np.int64))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != n) or \
            (-1 in sizes and (known == 0 or n % known)):
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the "
                           f"size of dim {dim} ({n}) in the input tensor")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
    return ops.reshape(x, x._data.shape[:d] + sizes + x._data.shape[d + 1:])


def tensor_split(input, indices_or_sections, dim=0):
    """Pieces along ``dim``: ``n`` sections as equal as can be (the first ones one longer),
    or cut before each of the listed indices."""
    x = _tensor(input, "tensor_split")
    if x._data.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    d = _dim(dim, x._data.ndim)
    n = x._data.shape[d]
    if isinstance(indices_or_sections, (list, tuple)):
        cuts = [int_arg(i, "tensor_split(): indices") for i in indices_or_sections]
    else:
        k = int_arg(indices_or_sections, "tensor_split(): sections")
        if k <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {k}")
        q, r = divmod(n, k)
        cuts = list(np.cumsum([q + 1] * r + [q] * (k - r))[:-1])
    bounds = [0] + [min(max(c + n if c < 0 else c, 0), n) for c in cuts] + [n]
    return tuple(_slice(x, d, bounds[i], max(bounds[i], bounds[i + 1]))
                 for i in range(len(bounds) - 1))


def hsplit(input, indices_or_sections):
    """``tensor_split`` along dim 1 (dim 0 for a 1-d tensor); sections must divide."""
    x = _tensor(input, "hsplit")
    return _dsplit(x, indices_or_sections, 0 if x._data.ndim == 1 else 1, "hsplit", 1)


def vsplit(input, indices_or_sections):
    """``tensor_split`` along dim 0 of a tensor of at least 2 dims; sections must divide."""
    return _dsplit(_tensor(input, "vsplit"), indices_or_sections, 0, "vsplit", 2)


def _dsplit(x, sections, d, fn, least):
    if x._data.ndim < least:
        raise RuntimeError(f"torch.{fn} requires a tensor with at least {least} dimension, but "
                           f"got a tensor with {x._data.ndim} dimensions!")
    if not isinstance(sections, (list, tuple)) and x._data.shape[d] % int_arg(sections, fn):
        raise RuntimeError(f"torch.{fn} attempted to split along dimension {d}, but the size "
                           f"of the dimension {x._data.shape[d]} is not divisible by the "
                           f"split_size {sections}!")
    return tensor_split(x, sections, d)


def fliplr(input):
    """Reverse dim 1 (the columns)."""
    x = _tensor(input, "fliplr")
    if x._data.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return _take(x, np.flip(_imap(x._data.shape), 1))


def flipud(input):
    """Reverse dim 0 (the rows)."""
    x = _tensor(input, "flipud")
    if x._data.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return _take(x, np.flip(_imap(x._data.shape), 0))


def _tri_indices(fn, np_fn, row, col, offset):
    row, col = int_arg(row, f"{fn}(): row"), int_arg(col, f"{fn}(): col")
    offset = int_arg(offset, f"{fn}(): offset")
    if row < 0 or col < 0:
        raise RuntimeError(f"{fn}: row and col must be non-negative, got {row} and {col}")
    return ops.as_tensor(np.stack(np_fn(row, offset, col)).astype(np.int64).reshape(2, -1))


def triu_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) int64 coordinates of the upper triangle (on and above diagonal
    ``offset``) of a row-by-col matrix, row by row."""
    return _tri_indices("triu_indices", np.triu_indices, row, col, offset)


def tril_indices(row, col, offset=0, *, dtype=None, device=None):
    """The (2, N) int64 coordinates of the lower triangle (on and below diagonal
    ``offset``) of a row-by-col matrix, row by row."""
    return _tri_indices("tril_indices", np.tril_indices, row, col, offset)


__all__ = ["bmm", "baddbmm", "addmm", "narrow", "select", "split", "chunk", "unbind",
           "repeat_interleave", "tile", "movedim", "swapaxes", "diag", "diag_embed",
           "diagflat", "block_diag", "meshgrid", "broadcast_to", "broadcast_shapes",
           "broadcast_tensors", "cross", "kron", "tensordot", "cdist", "atleast_1d",
           "atleast_2d", "atleast_3d", "vstack", "hstack", "column_stack", "dstack",
           "unflatten", "tensor_split", "hsplit", "vsplit", "fliplr", "flipud",
           "triu_indices", "tril_indices"]
