"""Custom autograd Functions: a user's forward and backward, one record on the tape.

``Function.apply`` runs the subclass's ``forward`` with grad mode off and appends one record
per differentiable output: a PYFN record for the first, a PYOUT record (pointing at the
PYFN) for each further one. The PYFN's index block lists the slots of the tensor inputs
that require grad, so liveness and compaction see them as they see a CAT's. The context
object (``ctx``, which is also the outputs' ``grad_fn``) lives in ``Tape.pyfns``.

Backward: the compiled sweep stops at the PYFN record (its opcode is one that hands back
to Python), the engine collects the outputs' gradients and calls ``_FunctionNode.run``,
which calls the user's ``backward`` and checks what it returned; the engine accumulates the
results into the inputs' gradient buffers and resumes the compiled sweep below the record.
Under ``create_graph=True`` the same method runs with grad mode on, so a backward written
with tapegrad ops is recorded and can be differentiated again.
"""
import functools
import warnings

import numpy as np

from .. import kernels as K
from .. import tape as T
from ..grad_mode import enable_grad, is_grad_enabled, no_grad
from ..ops.record import _graph, _plain, _slot, _tape
from ..tensor import Tensor
from .hooks import HookMixin

_FLOAT = (np.dtype(np.float32), np.dtype(np.float64))


def _second_time():
    return RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved "
        "tensors after they have already been freed). Saved intermediate values of the graph "
        "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if "
        "you need to backward through the graph a second time or if you need to access saved "
        "tensors after calling backward.")


def _type_name(t):
    return ("torch.DoubleTensor" if t._data.dtype == np.float64 else
            "torch.FloatTensor" if t._data.dtype == np.float32 else f"tapegrad.{t._data.dtype}")


class FunctionCtx:
    """What ``forward`` (or ``setup_context``) and ``backward`` share: saved tensors, flags
    and any attribute the user sets."""

    def save_for_backward(self, *tensors):
        """Keep tensors (or None) for backward; read them back as ``ctx.saved_tensors``.
        A saved tensor modified in place before backward makes backward raise."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward can only save variables, but argument "
                                f"{i} is of type {type(t).__name__}")
        self._to_save = tensors

    def mark_dirty(self, *tensors):
        """Declare inputs that forward modified in place (and returns as outputs)."""
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors):
        """Declare outputs that have no gradient (indices, masks): they do not require grad
        and backward receives zeros (or None) for them."""
        self._non_differentiable = tensors

    def set_materialize_grads(self, value):
        """Whether backward receives zeros (True, the default) or None for outputs that got
        no gradient."""
        self._materialize = bool(value)

    @property
    def saved_tensors(self):
        saved = self._saved
        if saved is None:
            if self._released:
                raise _second_time()
            return ()
        out = []
        for entry in saved:
            if entry is None:
                out.append(None)
                continue
            t, version = entry
            if isinstance(t, int):       # an output of this Function, kept without a cycle
                t = self._output_tensor(t)
            if t._version != version:
                where = (f", which is output 0 of {t.grad_fn.name()}," if t.grad_fn is not None
                         else "")
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: [{_type_name(t)} {list(t._data.shape)}]{where} "
                    f"is at version {t._version}; expected version {version} instead. Hint: "
                    f"the tensor was saved with ctx.save_for_backward; clone() it before "
                    f"modifying it, or modify a copy.")
            out.append(t)
        return tuple(out)

    # the names older PyTorch code uses
    @property
    def saved_variables(self):
        return self.saved_tensors


class _FunctionNode(FunctionCtx, HookMixin):
    """The ``grad_fn`` of a custom Function's outputs, and the ``ctx`` its methods receive.
    One class per Function subclass, named ``<Subclass>Backward`` as in PyTorch."""
    _forward_cls = None

    def __init__(self):
        self._to_save = ()
        self._dirty = ()
        self._non_differentiable = ()
        self._materialize = True
        self._saved = None
        self._released = False
        self._outputs = []     # per forward output: (shape, dtype, gid or None), None if not a tensor
        self._inputs = []      # per forward argument: (shape, dtype, gid or None), None if not a tensor
        self._tape = None
        self._gids = set()     # the gids of its output records
        self.needs_input_grad = ()

    # ---- the node ---------------------------------------------------------------------
    def name(self):
        return type(self).__name__

    @property
    def next_functions(self):
        from ..node import node_of_slot
        out = []
        for meta in self._inputs:
            if meta is None:
                continue
            gid = meta[2]
            loc = self._tape.local(gid) if gid is not None and self._tape is not None else -1
            out.append((node_of_slot(self._tape, loc) if loc >= 0 else None, 0))
        return tuple(out)

    @property
    def metadata(self):
        m = self.__dict__.get("_metadata")
        if m is None:
            m = self._metadata = {}
        return m

    def __repr__(self):
        return f"<{type(self).__module__}.{self.name()} object at {hex(id(self))}>"

    def backward_alone(self, out):
        """A shortcut for ``out.backward()`` that a node may take (the compiled node's);
        custom Functions take the engine's general path."""
        return False

    # ---- saved values -------------------------------------------------------------------
    def _output_tensor(self, j):
        shape, dtype, gid = self._outputs[j]
        tp = self._tape
        loc = tp.local(gid) if gid is not None else -1
        data = self._out_data[j]
        if loc < 0:
            raise _second_time()
        tp.hold(loc)
        t = _graph(data, tp, gid, K.name_of(int(tp.records()[0][loc, K.OPW])))
        t._version = self._out_versions[j]
        return t

    def _release(self):
        self._saved = None
        self._out_data = None
        self._released = True

    # ---- backward ---------------------------------------------------------------------
    def run(self, grads, create_graph):
        """Call the user's backward with one gradient per forward output (arrays, Tensors or
        None); returns [(argument index, gradient)] for the inputs that require grad, each
        a Tensor of the input's shape and dtype."""
        if self._released:
            raise _second_time()
        gos = []
        for meta, g in zip(self._outputs, grads):
            if g is None and meta is not None and self._materialize:
                g = np.zeros(meta[0], meta[1])
            gos.append(_plain(g) if isinstance(g, np.ndarray) else g)
        gos = self._call_prehooks(gos)
        with enable_grad() if create_graph else no_grad():
            res = self._forward_cls.backward(self, *gos)
        res = self._check(res)
        res = self._call_posthooks(res, gos)
        return [(i, g) for i, g in enumerate(res) if g is not None
                and self._inputs[i] is not None and self._inputs[i][2] is not None]

    def _check(self, res):
        """PyTorch's checks on what backward returned; gradients summed to the input's shape
        where they broadcast from it, and cast to its dtype."""
        if not isinstance(res, tuple):
            res = (res,)
        n = len(self._inputs)
        if len(res) > n and all(g is None for g in res[n:]):
            res = res[:n]
        if len(res) != n:
            raise RuntimeError(f"function {self.name()} returned an incorrect number of "
                               f"gradients (expected {n}, got {len(res)})")
        out = []
        for i, (meta, g) in enumerate(zip(self._inputs, res)):
            if g is None:
                out.append(None)
                continue
            if not isinstance(g, Tensor):
                raise RuntimeError(f"expected Variable or None (got {type(g).__name__})")
            if meta is None:
                raise RuntimeError(
                    f"function {self.name()} returned a gradient different than None at "
                    f"position {i + 1}, but the corresponding forward input was not a Variable")
            shape, dtype, _ = meta
            if tuple(g.shape) != tuple(shape):
                try:
                    ok = np.broadcast_shapes(shape, g.shape) == tuple(g.shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise RuntimeError(
                        f"Function {self.name()} returned an invalid gradient at index {i} - "
                        f"got {list(g.shape)} but expected shape compatible with {list(shape)}")
                g = _sum_to(g, shape)
            if g._data.dtype != dtype:
                g = g.to(dtype)
            out.append(g)
        return out


def _sum_to(g, shape):
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(shape)


class FunctionMeta(type):
    """Gives every Function subclass its backward node class, ``<Name>Backward``."""

    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (_FunctionNode,),
                                 {"_forward_cls": cls, "__module__": cls.__module__})
        super().__init__(name, bases, attrs)


def _not_overridden(cls, name):
    return getattr(cls, name).__func__ is getattr(Function, name).__func__ \
        if hasattr(getattr(cls, name), "__func__") else \
        getattr(cls, name) is getattr(Function, name)


class Function(metaclass=FunctionMeta):
    """Base class of differentiable operations written by hand, as ``torch.autograd.Function``.

    Subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``
    (or ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``) and call
    ``MyFunction.apply(*args)``. ``backward`` returns one gradient per forward argument
    (None for arguments without one).

    >>> import tapegrad as tg
    >>> class Cube(tg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> Cube.apply(x).sum().backward()
    >>> x.grad
    tensor([ 3., 12.])
    """

    def __init__(self, *args, **kwargs):
        warnings.warn(f"{type(self)} should not be instantiated. Methods on autograd functions "
                      f"are all static, so you should invoke them on the class itself.",
                      DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is deprecated. Please "
            "use new-style autograd function with static forward method: define "
            "@staticmethod forward(ctx, ...) and backward(ctx, ...) and call "
            "MyFunction.apply(...).")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward "
                                  "mode AD.")

    vjp = backward

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls._backward_cls()
        on = is_grad_enabled()
        ctx.needs_input_grad = tuple(on and isinstance(a, Tensor) and a._rg for a in args)
        split = not _not_overridden(cls, "setup_context")
        with no_grad():
            if split:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        return _finish(cls, ctx, args, out, any(ctx.needs_input_grad))


def _finish(cls, ctx, args, out, record):
    """Turn forward's results into the outputs: recorded when an input requires grad."""
    single = not isinstance(out, tuple)
    outs = [out] if single else list(out)
    dirty = {id(t) for t in ctx._dirty}
    nondiff = {id(t) for t in ctx._non_differentiable}
    arg_ids = {id(a) for a in args if isinstance(a, Tensor)}
    for t in ctx._dirty:
        if id(t) not in arg_ids:
            raise RuntimeError("mark_dirty only accepts input tensors, not tensors forward "
                               "created; pass the tensor it modified in place")
        if record and t._tape is None and t._rg:
            raise RuntimeError("a leaf Variable that requires grad has been used in an "
                               "in-place operation.")
    for j, o in enumerate(outs):
        if isinstance(o, Tensor) and id(o) in arg_ids and id(o) not in dirty:
            outs[j] = _plain(o._data)     # an input returned as is: a new tensor, as torch's
    ctx._inputs = [(tuple(a._data.shape), a._data.dtype, None) if isinstance(a, Tensor)
                   else None for a in args]
    ctx._outputs = [(tuple(o._data.shape), o._data.dtype, None) if isinstance(o, Tensor)
                    else None for o in outs]
    diff = [j for j, o in enumerate(outs) if isinstance(o, Tensor) and id(o) not in nondiff
            and o._data.dtype in _FLOAT]
    if not record or not diff:
        ctx._saved = _saved_entries(ctx, outs, ())
        for j, o in enumerate(outs):
            if isinstance(o, Tensor) and id(o) not in dirty and (o._tape is not None or o._rg):
                outs[j] = _plain(o._data)
        return outs[0] if single else tuple(outs)
    tp = _tape()
    if tp.save_all:      # inside compile / a func transform: this call cannot be replayed
        tp.opaque.append(cls.__name__)
    slots = []
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a._rg:
            loc = _slot(tp, a)
            slots.append(loc)
            ctx._inputs[i] = (tuple(a._data.shape), a._data.dtype, tp.gid(loc))
    name = T.name_id(ctx.name())
    gids = node_records(tp, ctx, name, slots, [outs[j]._data for j in diff])
    for j, gid in zip(diff, gids):
        o = outs[j]
        d = o._data
        ctx._outputs[j] = (tuple(d.shape), d.dtype, gid)
        if id(o) in dirty:         # an input modified in place: its history moves here
            old = (o._tape, o._gid)
            o._tape, o._gid, o._fn, o._rg, o._snap = tp, gid, name, True, None
            if old[0] is not None:
                old[0].release(old[1])
        elif o._tape is None and not o._rg and o._snap is None:
            o._tape, o._gid, o._fn, o._rg = tp, gid, name, True     # forward's own tensor
        else:
            o = outs[j] = _graph(d, tp, gid, name)
        o._ctx = ctx
    ctx._tape = tp
    ctx._saved = _saved_entries(ctx, outs, diff)
    return outs[0] if single else tuple(outs)


def node_records(tp, node, name, slots, datas):
    """Append the records of a node whose backward runs in Python (a custom Function's, a
    compiled call's) to tape tp: a PYFN for the first output, whose index block lists the
    input slots `slots`, then a PYOUT pointing at it for each further output (`datas`, the
    outputs' arrays). Each record's node is `node` (in ``tp.pyfns``); returns their gids."""
    block = np.zeros(4 + 3 * len(slots), np.int64)
    block[0] = len(slots)
    block[4::3] = slots
    io = tp.store_index(block)
    hub = -1
    gids = []
    for d in datas:
        word = ((K.PYFN if hub < 0 else K.PYOUT) | (d.dtype == np.float64) * K.DT_BIT
                | K.RG_BIT | name << K.NAME_SHIFT)
        if hub < 0:
            gid = tp.append(word, -1, -1, -1, io, block.size, d, False)
            hub = tp.n - 1
        else:
            gid = tp.append(word, hub, -1, -1, 0, 0, d, False)
        node._gids.add(gid)
        tp.pyfns[gid] = node
        gids.append(gid)
    return gids


def _saved_entries(ctx, outs, diff):
    """save_for_backward's tensors with their versions; the recorded outputs among them by
    position (a strong reference from ctx to its own output would keep the graph alive)."""
    pos = {id(outs[j]): j for j in diff}
    entries = []
    ctx._out_data = {}
    ctx._out_versions = {}
    for t in ctx._to_save:
        if t is None:
            entries.append(None)
        elif id(t) in pos:
            j = pos[id(t)]
            ctx._out_data[j] = t._data
            ctx._out_versions[j] = t._version
            entries.append((j, t._version))
        else:
            entries.append((t, t._version))
    ctx._to_save = ()
    return entries


def once_differentiable(fn):
    """Decorate a Function's backward that is not itself differentiable: it runs with grad
    mode off, and differentiating its results (create_graph=True) raises."""
    @functools.wraps(fn)
    def wrapper(ctx, *grads):
        with no_grad():
            res = fn(ctx, *grads)
        if not is_grad_enabled() or not any(isinstance(g, Tensor) and g._rg for g in grads):
            return res
        single = not isinstance(res, tuple)
        outs = (res,) if single else res
        rg = [g for g in grads if isinstance(g, Tensor) and g._rg]
        wrapped = tuple(_DelayedError.apply(o, *rg) if isinstance(o, Tensor) else o
                        for o in outs)
        return wrapped[0] if single else wrapped
    return wrapper


class _DelayedError(Function):
    """Stands for a gradient computed by a once_differentiable backward: differentiating it
    raises."""

    @staticmethod
    def forward(ctx, value, *anchors):
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("trying to differentiate twice a function that was marked with "
                           "@once_differentiable")


class InplaceFunction(Function):
    """Base for Functions with an ``inplace`` flag (kept for PyTorch code that uses it)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

