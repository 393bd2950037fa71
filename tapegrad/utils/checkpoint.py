"""Activation checkpointing: trade compute for tape memory, as ``torch.utils.checkpoint``.

``checkpoint(fn, *args)`` leaves one custom-Function record on the tape where ``fn``'s
records would be, and keeps only ``fn``'s inputs. Backward runs ``fn`` again with grad mode
on and differentiates that recomputation.

How it works:

- Forward. ``fn`` runs once on a scratch tape (a ``Tape`` of its own, made current for the
  call) with its tensor arguments replaced by detached copies. The scratch tape tells which
  leaves that require grad ``fn`` used without receiving them as arguments (parameters it
  closes over); it is reset on return (and kept, with its arena capacity, for the next
  call in this thread), so the thread's tape never holds ``fn``'s records.
  The outputs' values, the arguments and those leaves go into one ``Function`` record.
  The tape's generator state (``tapegrad.manual_seed``'s) is saved first.
- Backward (eager). ``fn`` runs again on a scratch tape, with the saved generator
  state, and the compiled sweep runs there from the output gradients; the gradients of
  the copies and of the closed-over leaves are what the Function's backward returns, so
  the engine delivers them as for any other op (``.grad``, ``autograd.grad``'s results,
  ``inputs=``, hooks). The scratch tape's gradients are read by slot, not through
  ``autograd.grad``, so a leaf's hooks run once, on its whole gradient.
- Backward with ``create_graph=True``. The recomputation must be on the tape being
  recorded, so it runs on the Function's own tape, from links to the real inputs (a small
  Function that passes gradients through, except during the nested pass itself, so that
  pass stops at the checkpoint's inputs); its VJP is recorded, and differentiating it
  again reaches the inputs' history through the links.

Both ``use_reentrant`` values use this mechanism; they differ where PyTorch's two variants
differ in their interface (see ``checkpoint``).
"""
import contextlib
import copy
import threading
import warnings

import numpy as np

from .. import creation as _creation
from .. import kernels as K
from .. import tape as T
from ..autograd import engine as _engine
from ..autograd import recorded as _recorded
from ..autograd.function import Function
from ..grad_mode import enable_grad, is_grad_enabled, no_grad
from ..tensor import Tensor

__all__ = ["checkpoint", "checkpoint_sequential", "CheckpointError", "noop_context_fn",
           "set_checkpoint_debug_enabled"]

_debug_override = None


class CheckpointError(RuntimeError):
    """The recomputation did not compute what the forward pass did."""


def noop_context_fn():
    """The default ``context_fn``: two context managers that do nothing."""
    return contextlib.nullcontext(), contextlib.nullcontext()


@contextlib.contextmanager
def set_checkpoint_debug_enabled(enabled):
    """Context manager: while active, ``debug`` of every non-reentrant ``checkpoint`` call
    is ``enabled`` (True or False) whatever the call passed; ``None`` gives the calls back
    their own ``debug``. Process-wide, as in PyTorch."""
    global _debug_override
    prev = _debug_override
    _debug_override = enabled
    try:
        yield
    finally:
        _debug_override = prev


# ---- nested arguments and results -----------------------------------------------------
class _Hole:
    """Where the i-th tensor sat in a flattened structure."""
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def _flatten(obj, found):
    """obj with every Tensor (inside tuples, lists and dicts) replaced by a _Hole; the
    tensors are appended to `found`."""
    if isinstance(obj, Tensor):
        found.append(obj)
        return _Hole(len(found) - 1)
    if isinstance(obj, (tuple, list)):
        items = [_flatten(o, found) for o in obj]
        if isinstance(obj, list):
            return items
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, dict):
        return type(obj)((k, _flatten(v, found)) for k, v in obj.items())
    return obj


def _fill(obj, tensors):
    if isinstance(obj, _Hole):
        return tensors[obj.i]
    if isinstance(obj, (tuple, list)):
        items = [_fill(o, tensors) for o in obj]
        if isinstance(obj, list):
            return items
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, dict):
        return type(obj)((k, _fill(v, tensors)) for k, v in obj.items())
    return obj


# ---- the thread's tape and the generator ----------------------------------------------
@contextlib.contextmanager
def _on_tape(tp):
    """Make tp this thread's tape for the block."""
    old = T._tls.tape
    T._tls.tape = tp
    try:
        yield tp
    finally:
        T._tls.tape = old


class _Pool(threading.local):
    def __init__(self):
        self.free = []


_pool = _Pool()


@contextlib.contextmanager
def _scratch():
    """A scratch tape, current for the block, reset and kept for reuse afterwards.

    Reusing one (per thread and nesting depth) keeps its arena capacity, as the thread's
    tape keeps its own, and means a tensor's cached INPUT record (``_snaptape``) never pins
    a discarded tape's buffers: after reset, its old record ids map to nothing."""
    tp = _pool.free.pop() if _pool.free else T.Tape()
    try:
        with _on_tape(tp):
            yield tp
    finally:
        tp.reset()
        _pool.free.append(tp)


@contextlib.contextmanager
def _keep_snaps(leaves):
    """Give the leaves back their cached INPUT records when the block ends (running on a
    scratch tape replaces them), so the thread's tape does not record them again."""
    saved = [(t, t._snap, t._snaptape) for t in leaves]
    try:
        yield
    finally:
        for t, snap, tape in saved:
            t._snap, t._snaptape = snap, tape


def _generator_state():
    with _creation._rng_lock:
        return copy.deepcopy(_creation._rng[0])


@contextlib.contextmanager
def _generator_as(saved):
    """Draw from a copy of `saved` inside the block; the generator in use before comes back
    afterwards, unchanged (PyTorch's fork_rng)."""
    if saved is None:
        yield
        return
    with _creation._rng_lock:
        before = _creation._rng[0]
        _creation._rng[0] = copy.deepcopy(saved)
    try:
        yield
    finally:
        with _creation._rng_lock:
            _creation._rng[0] = before


def _ops_since(tp, start):
    """Records from `start` on that are operations (not INPUT records of leaves)."""
    if tp.n <= start:
        return 0
    R, _ = tp.records()
    try:
        return sum(1 for w in R[start:tp.n, K.OPW].tolist() if K.op_of(w) != K.INPUT)
    finally:
        del R


def _outside_history_error():
    return RuntimeError(
        "checkpoint: the checkpointed function used a tensor that has grad history from "
        "outside the function (computed before the call and read from the enclosing scope, "
        "or returned as is). checkpoint only sees the history of its arguments: pass that "
        "tensor as an argument, checkpoint(fn, x, h) with fn(x, h), instead of closing over "
        "it. Leaves (parameters) may be closed over.")


# ---- what one call keeps ---------------------------------------------------------------
class _Call:
    """One checkpoint call: the function, its arguments' structure, what to compare the
    recomputation with, and the generator state to recompute with."""

    def __init__(self, function, tree, n_inputs, flags, generator, recompute_ctx, check,
                 debug):
        self.function = function
        self.tree = tree                  # (args, kwargs) with _Holes for the tensors
        self.n_inputs = n_inputs          # tensors in the arguments; then the closed-over leaves
        self.flags = flags                # requires_grad of each argument tensor at the call
        self.generator = generator
        self.recompute_ctx = recompute_ctx
        self.check = check
        self.debug = debug
        self.params = ()                  # the closed-over leaves (strong: they get gradients)
        self.out_meta = []                # (shape, dtype) of each output tensor
        self.diff = []                    # positions of the outputs that require grad
        self.n_ops = 0
        self.listing = None

    def run(self, tensors):
        args, kwargs = _fill(self.tree, tensors)
        return self.function(*args, **kwargs)

    def compare(self, outs, tp, start):
        """Raise CheckpointError if the recomputation (tp's records from `start` on) made
        outputs of other shapes or dtypes, or another number of operations."""
        if not self.check:
            return
        n_ops = _ops_since(tp, start)
        lines = []
        if len(outs) != len(self.out_meta):
            lines.append(f"the forward pass returned {len(self.out_meta)} tensors, the "
                         f"recomputation {len(outs)}")
        for j, (o, (shape, dtype)) in enumerate(zip(outs, self.out_meta)):
            now = (tuple(o.shape), o.data.dtype)
            if now != (shape, dtype):
                lines.append(f"output tensor {j}: shape {list(shape)} {dtype} in the forward "
                             f"pass, {list(now[0])} {now[1]} recomputed")
        if n_ops != self.n_ops:
            lines.append(f"the forward pass recorded {self.n_ops} operations, the "
                         f"recomputation {n_ops}")
        if not lines:
            return
        text = ("tapegrad.utils.checkpoint: the recomputation in backward did not compute "
                "what the forward pass did:\n  " + "\n  ".join(lines) + "\nThe checkpointed "
                "function must do the same work when it runs again: draw random numbers from "
                "tapegrad's generator (restored when preserve_rng_state=True) and keep control "
                "flow independent of state that changes between forward and backward. Pass "
                "determinism_check='none' to skip this check.")
        if self.debug and self.listing is not None and start == 0:    # a scratch tape
            text += (f"\n\nforward pass (debug=True):\n{self.listing}\n\nrecomputation:\n"
                     f"{tp.listing()}")
        elif not self.debug:
            text += ("\nPass debug=True (or use set_checkpoint_debug_enabled(True)) to see "
                     "both recordings.")
        raise CheckpointError(text)


class _Gate:
    """Shared by the links of one recorded recomputation: closed while the nested pass runs."""
    closed = False


class _Link(Function):
    """x itself, as a new record: gradients pass through unless the gate is closed."""

    @staticmethod
    def forward(ctx, gate, x):
        ctx.gate = gate
        return x

    @staticmethod
    def backward(ctx, g):
        return None, (None if ctx.gate.closed else g)


class CheckpointFunction(Function):
    """The record a reentrant checkpoint leaves (its grad_fn: CheckpointFunctionBackward)."""

    @staticmethod
    def forward(ctx, call, outputs, *tensors):
        ctx.checkpoint_call = call
        ctx.save_for_backward(*tensors[:call.n_inputs])
        nondiff = [o for j, o in enumerate(outputs) if j not in call.diff]
        if nondiff:
            ctx.mark_non_differentiable(*nondiff)
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *grads):
        call = ctx.checkpoint_call
        inputs = ctx.saved_tensors
        want = [bool(call.flags[i]) and ctx.needs_input_grad[2 + i]
                for i in range(call.n_inputs)]
        want += [bool(n) for n in ctx.needs_input_grad[2 + call.n_inputs:]]
        if is_grad_enabled():          # create_graph=True: the gradients are recorded
            got = _recompute_recorded(call, ctx._tape, inputs, grads, want)
        else:
            got = _recompute_eager(call, inputs, grads, want)
        return (None, None) + tuple(got)


class Checkpoint(CheckpointFunction):
    """The record a non-reentrant checkpoint leaves (its grad_fn: CheckpointBackward)."""


def _seeds(call, tp, outs, grads, as_tensor):
    """[(slot, gradient)] for the recomputed outputs that had a gradient; and {id(leaf):
    gradient} for outputs that are leaves themselves (an input or parameter returned)."""
    seeds, direct = [], {}
    for j in call.diff:
        o, g = outs[j], grads[j]
        if g is None or not isinstance(o, Tensor) or not o._rg:
            continue
        if not as_tensor:
            g = np.asarray(g.data if isinstance(g, Tensor) else g, o.data.dtype)
        if o._tape is None:
            direct[id(o)] = g if id(o) not in direct else direct[id(o)] + g
        elif o._tape is tp:
            seeds.append((tp.local(o._gid), g))
        else:
            raise _outside_history_error()
    return seeds, direct


def _leaf_slots(tp, leaf):
    return [loc for g, t in tp.leaves.items() if t is leaf and (loc := tp.local(g)) >= 0]


def _recompute_eager(call, inputs, grads, want):
    """Run the function again on a scratch tape and sweep it; one gradient (array or None)
    per Function input after the first two."""
    with _scratch() as scratch, _keep_snaps(call.params), _generator_as(call.generator), \
            enable_grad():
        copies = [x.detach().requires_grad_(bool(f)) for x, f in zip(inputs, call.flags)]
        with call.recompute_ctx:
            out = call.run(copies)
        outs = []
        _flatten(out, outs)
        call.compare(outs, scratch, 0)
        seeds, direct = _seeds(call, scratch, outs, grads, as_tensor=False)
        leaves = list(copies) + list(call.params)
        result = [None] * len(leaves)
        if seeds:
            bufs, goff, touched, R = _engine._run(scratch, seeds, False)
            try:
                for k, leaf in enumerate(leaves):
                    if not want[k]:
                        continue
                    parts = [_engine._read(scratch, R, bufs, goff, s) for s in
                             _leaf_slots(scratch, leaf) if touched[s]]
                    if parts:
                        result[k] = Tensor(np.array(sum(parts[1:], parts[0])))
            finally:
                del R
        for k, leaf in enumerate(leaves):
            g = direct.get(id(leaf))
            if g is not None and want[k]:
                result[k] = Tensor(g.copy()) if result[k] is None else result[k] + Tensor(g)
    if not seeds and not direct and any(g is not None for g in grads):
        raise RuntimeError("checkpoint: none of the recomputed outputs requires grad, so "
                           "there is nothing to differentiate. If the function does not "
                           "depend on anything that requires grad, call it without "
                           "checkpoint.")
    return result


def _recompute_recorded(call, tp, inputs, grads, want):
    """create_graph=True: run the function again on tp from links to the inputs and record
    its VJP; one gradient Tensor (or None) per Function input after the first two."""
    gate = _Gate()
    with _on_tape(tp), _generator_as(call.generator):
        stand = [(_Link.apply(gate, x) if f else x.detach()) for x, f in
                 zip(inputs, call.flags)]
        start = tp.n
        with call.recompute_ctx:
            out = call.run(stand)
        outs = []
        _flatten(out, outs)
        call.compare(outs, tp, start)
        seeds, direct = _seeds(call, tp, outs, grads, as_tensor=True)
        slots = [[tp.local(s._gid)] if f and s._tape is tp else []
                 for s, f in zip(stand, call.flags)]
        slots += [_leaf_slots(tp, p) for p in call.params]
        wanted = {s for k, ss in enumerate(slots) if want[k] for s in ss}
        got = {}
        if seeds:
            gate.closed = True
            try:
                got = _recorded.walk(tp, seeds, wanted, True, _engine._stale_error,
                                     _engine._second_time)
            finally:
                gate.closed = False
        result = []
        for k, ss in enumerate(slots):
            parts = [got[s] for s in ss if s in got] if want[k] else []
            leaf = call.params[k - call.n_inputs] if k >= call.n_inputs else stand[k]
            g = direct.get(id(leaf))
            if g is not None and want[k]:
                parts.append(g)
            result.append(sum(parts[1:], parts[0]) if parts else None)
    return result


# ---- the public functions ---------------------------------------------------------------
_REENTRANT_WARNING = (
    "tapegrad.utils.checkpoint: pass use_reentrant explicitly. Without it checkpoint uses "
    "use_reentrant=True, as PyTorch does; use_reentrant=False is the recommended variant "
    "(it takes keyword arguments, context_fn and debug, and gives gradients to parameters "
    "the function closes over even when no argument requires grad).")


def checkpoint(function, *args, use_reentrant=None, preserve_rng_state=True,
               context_fn=noop_context_fn, determinism_check="default", debug=False,
               early_stop=True, **kwargs):
    """Run ``function(*args, **kwargs)`` without keeping its records; recompute it in backward.

    The tape keeps one record and ``function``'s inputs instead of everything ``function``
    records, and backward runs ``function`` a second time to differentiate it. Gradients
    reach the tensors among the arguments (also inside tuples, lists and dicts) and the
    leaves that require grad ``function`` reads from the enclosing scope (parameters); a
    tensor with grad history from outside must be passed as an argument. Results may be a
    tensor or tuples, lists and dicts of tensors and other values.

    ``function`` must compute the same thing when run again. With ``preserve_rng_state``
    (the default) the generator behind ``tapegrad.rand``/``randn``/``randint`` is saved
    before the forward pass and restored for the recomputation, so random masks drawn
    there come out the same; numpy's and Python's own generators are not touched.
    ``determinism_check="default"`` compares the recomputation's output shapes and dtypes
    and its number of recorded operations with the forward pass's and raises
    ``CheckpointError`` when they differ (``"none"`` skips it; ``debug=True`` adds both
    recordings to the error).

    ``use_reentrant`` must be passed explicitly (a warning otherwise, and True is used, as
    in PyTorch). Both variants give the same gradients here, also with ``autograd.grad``,
    ``backward(inputs=...)`` and ``create_graph=True``; ``use_reentrant=True`` keeps
    PyTorch's restrictions: no keyword arguments for ``function``, no ``context_fn`` or
    ``debug``, no determinism check, and when no argument requires grad it warns and
    returns results that do not require grad. ``context_fn`` returns two context managers:
    the forward pass runs in the first, the recomputation in the second. ``early_stop`` is
    accepted for PyTorch's signature; the recomputation always runs all of ``function``.
    Under ``tapegrad.compile`` a function that calls checkpoint runs eagerly (with the
    warning compile gives for custom Functions).

    >>> import tapegrad as tg
    >>> from tapegrad.utils.checkpoint import checkpoint
    >>> w = tg.tensor([0.5, -1.0], requires_grad=True)
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> y = checkpoint(lambda v: tg.tanh(v * w) * 3, x, use_reentrant=False)
    >>> y.grad_fn.name()
    'CheckpointBackward'
    >>> y.sum().backward()
    >>> gw, gx = w.grad, x.grad
    >>> w.grad = x.grad = None
    >>> (tg.tanh(x * w) * 3).sum().backward()      # the same, recorded as usual
    >>> w.grad.tolist() == gw.tolist() and x.grad.tolist() == gx.tolist()
    True
    """
    if use_reentrant is None:
        warnings.warn(_REENTRANT_WARNING, stacklevel=2)
        use_reentrant = True
    if determinism_check not in ("default", "none"):
        raise ValueError(f"determinism_check should be one of ['default', 'none'], but got "
                         f"{determinism_check!r}")
    if context_fn is None:
        context_fn = noop_context_fn
    if use_reentrant:
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs) +
                             " (use_reentrant=True passes no keyword arguments to the "
                             "function; use use_reentrant=False, or functools.partial)")
        if context_fn is not noop_context_fn or debug is not False:
            raise ValueError("Passing `context_fn` or `debug` is only supported when "
                             "use_reentrant=False.")
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got "
                        f"{type(function).__name__}")
    if not use_reentrant and _debug_override is not None:
        debug = bool(_debug_override)
    inputs = []
    tree = _flatten((args, kwargs), inputs)
    flags = [x._rg for x in inputs]
    if use_reentrant and not any(flags):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None",
                      stacklevel=2)
    forward_ctx, recompute_ctx = context_fn()
    if not is_grad_enabled() or (use_reentrant and not any(flags)):
        with forward_ctx, no_grad():
            return function(*args, **kwargs)
    call = _Call(function, tree, len(inputs), flags,
                 _generator_state() if preserve_rng_state else None, recompute_ctx,
                 not use_reentrant and determinism_check == "default", debug)
    return _forward(call, inputs, forward_ctx, Checkpoint if not use_reentrant else
                    CheckpointFunction)


def _forward(call, inputs, forward_ctx, cls):
    """Run the function once on a scratch tape; record one Function on this thread's tape."""
    home = T._tls.tape
    with _scratch() as scratch:
        copies = [x.detach().requires_grad_(bool(f)) for x, f in zip(inputs, call.flags)]
        try:
            with forward_ctx, enable_grad():
                out = call.run(copies)
        except RuntimeError as e:
            if "recorded in another thread" in str(e):   # _slot: history from elsewhere
                raise _outside_history_error() from e
            raise
        outs = []
        out_tree = _flatten(out, outs)
        ids = {id(c): c for c in copies}
        params, seen = [], set(ids)
        for leaf in scratch.leaves.values():
            if id(leaf) not in seen:
                seen.add(id(leaf))
                params.append(leaf)
        _restore_snaps(home, params)
        values = []
        for j, o in enumerate(outs):
            if o._rg:
                if o._tape is not None and o._tape is not scratch:
                    raise _outside_history_error()
                if o._tape is None and id(o) not in seen:     # a leaf from outside, as is
                    params.append(o)
                    seen.add(id(o))
                call.diff.append(j)
            call.out_meta.append((tuple(o.shape), o.data.dtype))
            d = o.data
            values.append(Tensor(d.copy() if id(o) in seen else d))   # not an input's array
        call.n_ops = _ops_since(scratch, 0) if call.check else 0
        call.listing = scratch.listing() if call.check and call.debug else None
    del out, outs, copies
    call.params = tuple(params)
    if not call.diff:          # nothing required grad: nothing to record
        return _fill(out_tree, values)
    res = cls.apply(call, values, *inputs, *params)
    return _fill(out_tree, list(res) if isinstance(res, tuple) else [res])


def _restore_snaps(home, params):
    """Point the closed-over leaves back at their INPUT records on the thread's tape, when
    they have one (the scratch run replaced it)."""
    if not params:
        return
    ids = {id(p) for p in params}
    last = {}
    for g, leaf in home.leaves.items():
        if id(leaf) in ids and home.local(g) >= 0:
            last[id(leaf)] = g
    for p in params:
        g = last.get(id(p))
        if g is not None:
            p._snap, p._snaptape = g, home


def checkpoint_sequential(functions, segments, input, use_reentrant=None, **kwargs):
    """Run ``functions`` one after another on ``input``, checkpointing all but the last part.

    The functions are cut into ``segments`` parts of ``len(functions) // segments`` (the
    last part takes the rest). Each part but the last runs under ``checkpoint``, so the tape
    keeps only the tensors between parts; the last part is recorded as usual. Takes
    ``preserve_rng_state=`` too; ``use_reentrant`` must be passed as for ``checkpoint``.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.checkpoint import checkpoint_sequential
    >>> x = tg.tensor([0.5, 1.0], requires_grad=True)
    >>> y = checkpoint_sequential([tg.sin] * 6, 3, x, use_reentrant=False)
    >>> y.sum().backward()
    >>> x.grad.shape
    tapegrad.Size([2])
    """
    if use_reentrant is None:
        warnings.warn(_REENTRANT_WARNING.replace("utils.checkpoint", "utils.checkpoint."
                                                 "checkpoint_sequential"), stacklevel=2)
        use_reentrant = True
    preserve = kwargs.pop("preserve_rng_state", True)
    if kwargs:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    if hasattr(functions, "children") and callable(functions.children):
        functions = list(functions.children())
    functions = list(functions)
    if isinstance(segments, bool) or not isinstance(segments, int) or \
            not 1 <= segments <= max(len(functions), 1):
        raise ValueError(f"checkpoint_sequential: segments must be an int from 1 to the number "
                         f"of functions ({len(functions)}), got {segments!r}")

    def run(start, end):
        def part(x):
            for fn in functions[start:end]:
                x = fn(x)
            return x
        return part

    size = len(functions) // segments
    end = 0
    for start in range(0, size * (segments - 1), size):
        end = start + size
        input = checkpoint(run(start, end), input, use_reentrant=use_reentrant,
                           preserve_rng_state=preserve)
    return run(end, len(functions))(input)
