"""Tensor: a numpy array plus what autograd needs to know about it.

A tensor is one of
- a leaf: ``_tape is None``. It may require grad; when an op uses it, the tape gets an
  INPUT record for it (cached in ``_snap`` until the tape forgets it);
- a graph tensor: the output of a recorded op. ``_tape``/``_gid`` name its record and
  ``_fn`` the grad_fn name. Its ``__del__`` tells the tape, which is how graphs nobody can
  reach any more are reclaimed.

Operators hand off to ``tapegrad.ops``; this module only holds state and conversions.
"""
import operator

import numpy as np

from . import devices as _device
from . import grad_mode, tape as _tapemod
from .node import Node

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
bool_ = np.dtype(np.bool_)
_FLOATS = (float32, float64)
_default = [float32]

# numpy's own dtype instance for every dtype a tensor may hold. An equal dtype can be a
# distinct object (unpickled arrays, arrays from other libraries), and the ops test dtypes
# with `is` on their fast paths, so data is brought to these instances where it enters a
# tensor (Tensor(), .data =, tensor(), as_tensor(), from_numpy(), dtype= arguments);
# numpy results of canonical data are canonical.
_CANON = {d: d for d in map(np.dtype, (np.float16, np.float32, np.float64, np.int8, np.int16,
                                        np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                                        np.uint64, np.bool_))}
_SUPPORTED = "float64, float32, float16, int64, int32, int16, int8, uint64, uint32, uint16, " \
             "uint8, and bool"


def canonical_dtype(dtype):
    """numpy's own instance of a dtype argument; TypeError for dtypes tapegrad has not."""
    d = _CANON.get(dtype)
    if d is not None:
        return d
    try:
        nd = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a tapegrad dtype (tapegrad.float32, tapegrad.int64, "
                        f"...), got {dtype!r}") from None
    d = _CANON.get(np.dtype(nd.type)) if nd.isnative else None
    if d is None or d != nd:
        raise TypeError(f"tapegrad has no dtype {nd}; supported are {_SUPPORTED}")
    return d


def canonical(a, share=False):
    """Array `a` (an ndarray) with numpy's own dtype instance, checked to be a dtype tensors
    hold. Same memory when `share`; a non-native byte order is then a ValueError (as in
    torch.from_numpy), otherwise it is converted."""
    d = a.dtype
    if d is float32 or d is float64:
        return a
    c = _CANON.get(d)
    if c is d:
        return a
    if c is not None and d.isnative:
        return a.view(c)              # same memory, canonical dtype object
    if d.kind in "fiub" and not d.isnative and _CANON.get(d.newbyteorder("=")) is not None:
        if share:
            raise ValueError("given numpy array has byte order different from the native "
                             "byte order. Conversion between byte orders is currently not "
                             "supported; use tapegrad.tensor(a) (a copy) instead.")
        return a.astype(_CANON[d.newbyteorder("=")])
    raise TypeError(f"can't convert np.ndarray of type numpy.{d.type.__name__}. The only "
                    f"supported types are: {_SUPPORTED}.")


def int_arg(v, what):
    """An integer argument (dims, sizes): Python ints, numpy integers and one-element integer
    tensors; TypeError for bools, floats and anything else (PyTorch does not truncate)."""
    if type(v) is int:
        return v
    if not isinstance(v, (bool, np.bool_)):
        try:
            return operator.index(v)
        except TypeError:
            pass
    raise TypeError(f"{what} must be an int, not {type(v).__name__}")


def get_default_dtype():
    """The dtype new float tensors get (``tapegrad.float32`` unless changed)."""
    return _default[0]


def set_default_dtype(dtype):
    """Make ``dtype`` (``tapegrad.float32`` or ``tapegrad.float64``) the default float dtype.

    >>> import tapegrad as tg
    >>> tg.set_default_dtype(tg.float64); tg.tensor([1.5]).dtype
    dtype('float64')
    >>> tg.set_default_dtype(tg.float32)
    """
    d = np.dtype(dtype)
    if d not in _FLOATS:
        raise TypeError(f"set_default_dtype supports tapegrad.float32 and tapegrad.float64, "
                        f"not {d}")
    _default[0] = d


def dtype_name(d):
    return "tapegrad." + ("bool" if d == bool_ else str(d))


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Create tensors with ``tapegrad.tensor``, ``ones``, ``randn`` and friends. Set
    ``requires_grad=True`` on the leaves you want gradients for; every operation on them
    is recorded, and ``backward()`` fills their ``.grad``.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """
    __slots__ = ("_data", "_rg", "_tape", "_gid", "_fn", "_snap", "_snaptape", "_grad",
                 "_version", "_retain", "_base", "_alias", "_ctx", "__weakref__")
    __array_ufunc__ = None   # numpy defers to our reflected operators

    def __init__(self, data, requires_grad=False):
        self._data = canonical(data if isinstance(data, np.ndarray) else np.asarray(data))
        self._tape = None
        self._gid = 0
        self._fn = 0
        self._snap = None
        self._snaptape = None
        self._grad = None
        self._version = 0
        self._retain = False
        self._base = None
        self._alias = None
        self._rg = False
        if requires_grad:
            self.requires_grad = True

    def __del__(self):
        t = self._tape
        if t is not None:
            t.release(self._gid)

    # ---- the value ------------------------------------------------------------------
    # Reads are the slot itself via attrgetter (the ops read `_data` directly, so their hot
    # paths pay nothing); assignment goes through the same check as any data entering.
    def _set_data(self, value):
        if isinstance(value, Tensor):
            value = value._data
        elif not isinstance(value, np.ndarray):
            raise TypeError(f"Tensor.data must be a numpy array or a Tensor, got "
                            f"{type(value).__name__}; use np.asarray(value) first")
        self._data = canonical(value, share=True)
        # the tape's INPUT snapshot of this tensor holds the old value (and dtype, shape):
        # the next op must record the new one
        self._snap = None
        self._snaptape = None

    data = property(operator.attrgetter("_data"), _set_data,
                    doc="The tensor's value as a numpy array (shared, not copied).")

    # ---- autograd state -------------------------------------------------------------
    @property
    def requires_grad(self):
        """Whether operations on this tensor are recorded for differentiation."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag is not True and flag is not False:
            if not isinstance(flag, np.bool_):
                raise TypeError(f"requires_grad must be a bool, not {type(flag).__name__}")
            flag = bool(flag)
        if self._tape is not None:
            if not flag:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want "
                    "to use a computed variable in a subgraph that doesn't require "
                    "differentiation use var_no_grad = var.detach().")
            return
        if flag and self._data.dtype not in _FLOATS:
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients; this tensor "
                f"has dtype {dtype_name(self._data.dtype)}. Create it with "
                f"dtype=tapegrad.float32 (or call .float()) first.")
        if flag != self._rg:
            self._snap = None   # the tape's INPUT record carries the old flag
        self._rg = flag

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return self (leaves only)."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        """True for tensors no recorded op produced (they have no ``grad_fn``)."""
        return self._tape is None

    @property
    def grad_fn(self):
        """The backward node of the op that produced this tensor, or None for a leaf."""
        tp = self._tape
        if tp is None:
            return None
        # a custom Function's output keeps its node (_ctx, set only there, never
        # initialised elsewhere); after an in-place op the history is no longer the node's
        ctx = getattr(self, "_ctx", None)
        if ctx is not None and self._gid in ctx._gids:
            return ctx
        return Node(tp, self._gid, self._fn)

    def register_hook(self, hook):
        """Call hook(grad) when backward has computed this tensor's gradient; a tensor it
        returns replaces the gradient. Returns a handle whose remove() unregisters it."""
        from .autograd import hooks
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        if self._tape is None:
            return hooks.add(hooks.leaf_entry(self)[1], hook)
        from .node import _hooks_of
        return hooks.add(_hooks_of(self._record_node()).tensor, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call hook(tensor) after backward has accumulated into this leaf's ``.grad``."""
        from .autograd import hooks
        if self._tape is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not self._rg:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require "
                               "gradient")
        return hooks.add(hooks.leaf_entry(self)[2], hook)

    def _record_node(self):
        """The record view behind grad_fn (also for a custom Function's outputs)."""
        return Node(self._tape, self._gid, self._fn)

    @property
    def grad(self):
        """Gradient accumulated by backward (leaves, or tensors that called retain_grad)."""
        if self._tape is not None and not self._retain and self._grad is None:
            import warnings
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. "
                "backward() does not fill .grad for non-leaf tensors; call .retain_grad() "
                "on it before backward() if you need it, or read the gradient of a leaf.",
                UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad "
                                f"of type {type(value).__name__}")
            if value.shape != self.shape:
                raise RuntimeError(
                    f"attempting to assign a gradient of size '{list(value.shape)}' to a "
                    f"tensor of size '{list(self.shape)}'. Please ensure that the gradient "
                    f"and the tensor are the same size")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{value._data.dtype}' to a "
                    f"tensor of dtype '{self._data.dtype}'. The gradient must match the "
                    f"tensor's dtype")
        self._grad = value

    def retain_grad(self):
        """Ask backward to also fill ``.grad`` of this non-leaf tensor."""
        if self._tape is None:
            if not self._rg:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        if not self._retain:
            import weakref
            self._retain = True
            self._tape.retained[self._gid] = weakref.ref(self)

    @property
    def retains_grad(self):
        return self._retain and self._tape is not None

    def __deepcopy__(self, memo):
        """A new leaf with a copy of the data, the same requires_grad and a copy of .grad
        (never the tape: a copy of a tensor is not part of any recorded graph)."""
        if self._tape is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment; deepcopy "
                               "x.detach() instead.")
        new = type(self).__new__(type(self))
        Tensor.__init__(new, self._data.copy())
        memo[id(self)] = new
        new._rg = self._rg
        if self._grad is not None:
            new._grad = self._grad.__deepcopy__(memo)
        return new

    def detach(self):
        """A new leaf sharing this tensor's data, cut off from the graph."""
        _note_read(self)
        t = Tensor(self._data)
        if self._tape is not None:
            t._alias = (self._tape, self._gid)
        else:
            t._base = self
        return t

    def detach_(self):
        if self._tape is not None:
            raise RuntimeError("detach_() is only supported on leaf tensors here; "
                               "use y = x.detach() instead")
        self._rg = False
        return self

    # ---- array facts --------------------------------------------------------------------
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_dim(dim, self._data.ndim)]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self):
        """Where the tensor lives: always ``device(type='cpu')``."""
        return _device.CPU

    @property
    def is_cuda(self):
        return False

    def cpu(self):
        """This tensor (it is on the CPU already)."""
        return self

    def cuda(self, device=None, non_blocking=False):
        _device.check("cuda" if device is None else device, "Tensor.cuda")

    def numel(self):
        return int(self._data.size)

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def item(self):
        _note_read(self)
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               f"to Scalar; use .tolist() or index it first")
        return self._data.reshape(()).item()

    def tolist(self):
        _note_read(self)
        return self._data.tolist()

    def numpy(self):
        if _note_read(self):
            return self._data     # traced: the value leaves the tape (counted as a read)
        if self._rg:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. "
                               "Use tensor.detach().numpy() instead.")
        return self._data

    def __array__(self, dtype=None, copy=None):
        _note_read(self)
        return self._data if dtype is None else self._data.astype(dtype)

    def __bool__(self):
        _note_read(self)
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with "
                               + ("no values" if self._data.size == 0 else
                                  "more than one value") + " is ambiguous")
        return bool(self._data.reshape(()))

    def __format__(self, spec):
        """A 0-d tensor formats as its number (``f"{loss:.4f}"``); other tensors only
        with an empty spec (their ``str``)."""
        if self._data.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return str(self)

    def __reduce_ex__(self, protocol):
        """Pickling keeps the value and ``requires_grad``, not the graph nor ``.grad``: a
        recorded tensor unpickles as a leaf, as in PyTorch (``deepcopy`` copies ``.grad``)."""
        _note_read(self)
        return (_rebuild, (self._data.copy(), self._rg))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:   # bool: 0 or 1, as torch
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __repr__(self):
        return _format(self)

    __str__ = __repr__


def _rebuild(data, requires_grad):
    t = Tensor(data)
    t._rg = bool(requires_grad)
    return t


class Size(tuple):
    """A shape, printed as ``tapegrad.Size([5, 3])``."""

    def __repr__(self):
        return f"tapegrad.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n


def _note_read(t):
    """While a function is traced for replay, count reads of traced values (a value that
    leaves the tape, e.g. to decide a branch, makes the recording data-dependent)."""
    tp = t._tape if t._tape is not None else t._snaptape
    if tp is not None and tp.save_all:
        tp.value_reads += 1
        return True
    return False


def _dim(d, nd):
    if type(d) is not int:
        d = int_arg(d, "dim")
    n = max(nd, 1)
    if not -n <= d < n:
        raise IndexError(f"Dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {d})")
    return d % n


def _format(t):
    a = t._data
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]
        whole = finite.size == 0 or bool(np.all(finite == np.round(finite)))
        big = finite.size and np.max(np.abs(finite)) >= 1e8
        opts = dict(precision=4, floatmode="fixed" if not whole and not big else "maxprec",
                    suppress_small=False)
        if whole and not big:
            opts = dict(floatmode="unique")
    else:
        opts = {}
    body = np.array2string(a, separator=", ", prefix="tensor(", threshold=1000, **opts)
    extras = []
    if a.dtype not in (get_default_dtype(), int64, bool_):
        extras.append(f"dtype={dtype_name(a.dtype)}")
    if t._tape is not None:
        extras.append(f"grad_fn=<{_tapemod.NAMES[t._fn]}>")
    elif t._rg:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def is_tensor(x):
    return isinstance(x, Tensor)


_gstate = grad_mode._state


def grad_enabled():
    return _gstate.enabled
