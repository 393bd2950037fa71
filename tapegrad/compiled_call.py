"""A replayed call as one node of the caller's graph (PyTorch's ``CompiledFunctionBackward``).

When a compiled function replays and its result needs gradients, the call appends one
record to the caller's tape: a PYFN record for its first floating output and a PYOUT for
each further one (the records custom Functions use, made by ``function.node_records``),
whose node is a ``CompiledFunctionBackward``. The node holds the program, this call's values
(a buffer in the program's own layout, handed back to the program once the call's backward
is done, so a training loop reuses one buffer), and the call's inputs.

``backward()`` sweeps the caller's tape down to that record, which hands it to Python once;
the node runs the program's own reverse sweep (``Program.node_reverse``: one compiled call
with the decoded scalar chains, as ``value_and_grad``) from the outputs' gradients and
returns the gradients of the program's inputs, which the engine adds into their slots on
the caller's tape: they flow on into the graph the inputs came from, into leaves' ``.grad``,
and through further compiled calls. Nothing per record of the program is copied to the
caller's tape.

Under ``create_graph=True`` the node runs the function again eagerly on the same inputs
and differentiates that recording with ``create_graph=True`` (as checkpointing does), so
the gradients it returns can be differentiated again.
"""

from .autograd import hooks as _hooks
from .autograd.anomaly_mode import state as _anomaly
from .autograd.engine import worth_lending
from .autograd.function import _FunctionNode, _second_time, node_records
from .grad_mode import enable_grad
from .ops import _graph, _plain, _slot
from . import tape as T
from .tensor import Tensor

_NAME = T.name_id("CompiledFunctionBackward")


class CompiledFunctionBackward(_FunctionNode):
    """The ``grad_fn`` of a compiled call's outputs: the whole replayed program, one node."""

    def __init__(self, prog, frame, fn, args, sources):
        super().__init__()
        self._prog, self._frame, self._fn, self._args = prog, frame, fn, args
        self._sources = sources      # per input: (program slot, the tensor)
        self._out_slots = []         # per recorded output: its program slot
        self._out_index = []         # per recorded output: its position in fn's outputs
        self._alone = False          # may backward_alone take over (record_call says)
        self._held = 0               # bytes of the frame, counted in the tape's held

    def run(self, grads, create_graph):
        """Gradients of the call's inputs from its outputs' (arrays, Tensors or None):
        [(input index, Tensor)] for those the sweep reached."""
        if self._released:
            raise _second_time()
        hooked = "_prehooks" in self.__dict__ or "_posthooks" in self.__dict__
        if hooked or create_graph:
            gos = [g if g is None or isinstance(g, Tensor) else _plain(g) for g in grads]
        else:
            gos = grads
        if hooked:
            gos = self._call_prehooks(gos)
        if create_graph:
            res = self._recorded(gos)
        else:
            prog = self._prog
            seeds = [(s, g._data if isinstance(g, Tensor) else g)
                     for s, g in zip(self._out_slots, gos) if g is not None]
            if not seeds:
                return []
            buf, touched = prog.node_reverse(self._frame.vals, seeds)
            res = []
            for slot, _ in self._sources:
                g = prog.grad_of(buf, touched, slot)
                # the engine adds these into its buffers at once; hooks may keep them
                res.append(None if g is None else _plain(g.copy() if hooked else g))
        if hooked:
            res = self._call_posthooks(res, gos)
        return [(i, g) for i, g in enumerate(res) if g is not None]

    def backward_alone(self, out):
        """``out.backward()`` when nothing but this node lies between out and leaves: out is
        its only output and a scalar, every input is a leaf, and nothing asks for Python
        on the way (hooks, anomaly mode, retain_grad). Then the program's sweep runs from
        out and its gradients go straight into the leaves' ``.grad``, as the engine would
        put them. Returns False (the engine's general path runs) otherwise."""
        tp = self._tape
        if (not self._alone or self._released or out._gid != self._outputs[0][2]
                or out._tape is not tp or tp.hooks or tp.retained or _hooks._LEAF
                or _anomaly.enabled or tp.sweeping or "_prehooks" in self.__dict__
                or "_posthooks" in self.__dict__):
            return False
        loc = tp.local(out._gid)
        freed = tp.freed_flags()
        if loc < 0 or freed[loc]:
            return False            # the engine raises its error
        prog = self._prog
        G, touched = prog.scalar_reverse(self._frame.vals, self._out_slots[0])
        at = prog.grad_at(self._sources)
        # as the engine does (_hand_over): gradients that fill a third of the buffer become
        # .grad as they are, and this thread's program takes a new buffer
        lend = worth_lending(sum(n for (_, n, _, slot), (_, t) in zip(at, self._sources)
                                 if touched[slot] and t._grad is None
                                 and t._data.dtype == G.dtype), G.shape[0])
        for (o, n, shape, slot), (_, t) in zip(at, self._sources):
            if touched[slot]:
                g = G[o:o + n].reshape(shape)
                if t._grad is None:
                    t._grad = _plain(g if lend and t._data.dtype == G.dtype else g.copy())
                else:
                    t._grad._data += g
        if lend:
            prog.renew_grads()
        freed[loc] = 1
        self._release()
        return True

    def _recorded(self, gos):
        """create_graph: the function's eager recording on the same inputs, differentiated
        with create_graph=True."""
        from .autograd import engine
        with enable_grad():
            out = self._fn(*self._args)
        outs = [out] if isinstance(out, Tensor) else list(out)
        pairs = [(outs[j], g) for j, g in zip(self._out_index, gos) if g is not None]
        ins = [t for _, t in self._sources]
        return list(engine.grad([o for o, _ in pairs], ins, [g for _, g in pairs],
                                create_graph=True, allow_unused=True))

    def _release(self):
        if self._frame is not None:
            self._prog.give_frame(self._frame)
            self._tape.hold_bytes(-self._held)
            self._held = 0
        self._frame = self._args = self._fn = self._prog = None
        self._sources = [(s, None) for s, _ in self._sources]
        self._released = True


def record_call(tp, prog, frame, fn, args, single):
    """The output tensors of one replayed call (its values in frame), recorded on tape tp as
    one node: a record per floating output, reading the slots of the inputs that require
    grad."""
    sources = [(slot, args[i]) for slot, i in prog.rg_arg_slots]
    if prog.refs:
        sources += [(slot, t) for slot, t in prog.ref_slots if t._rg]
    slots = [_slot(tp, t) for _, t in sources]
    node = CompiledFunctionBackward(prog, frame, fn, args, sources)
    node._inputs = [(t._data.shape, t._data.dtype, tp.gid(loc))
                    for (_, t), loc in zip(sources, slots)]
    node._tape = tp
    node._held = prog.frame_nbytes
    tp.hold_bytes(prog.frame_nbytes)
    outs = []
    diff = []
    for i, v in enumerate(frame.outs):
        d = v.copy()
        if d.dtype.kind == "f":
            diff.append(i)
        outs.append(d)
    gids = node_records(tp, node, _NAME, slots, [outs[i] for i in diff])
    outputs, out_slots = node._outputs, node._out_slots
    for i, gid in zip(diff, gids):
        d = outs[i]
        o = outs[i] = _graph(d, tp, gid, _NAME)
        o._ctx = node
        outputs.append((d.shape, d.dtype, gid))
        out_slots.append(prog.outputs[i])
        node._out_index.append(i)
    for i, d in enumerate(outs):
        if not isinstance(d, Tensor):
            outs[i] = _plain(d)
    node._alone = (len(gids) == 1 and outs[diff[0]]._data.size == 1 and prog.single_call
                   and all(t._tape is None for _, t in sources))
    return outs[0] if single else tuple(outs)
