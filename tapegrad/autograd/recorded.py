"""create_graph=True: the reverse pass run as recorded tapegrad ops.

The walk goes over the same records as the compiled sweep, newest first, but keeps each
slot's gradient as a Tensor and computes every VJP with ops (``symbolic._vjp``: the rules of
rules.py written on tensors), so the gradients it returns are themselves on the tape and can
be differentiated again, to any order. Values a VJP reads come from the tape's saved values
(or a matmul's operands) as tensors that stand for their records, so the new records link
into the forward graph. A custom Function's backward runs with grad mode on.

The tape's local indices must not move while the walk holds them: collection is paused
(``Tape.pinned``) until it ends.
"""
import numpy as np

from .. import kernels as K
from ..kernels import name_of, op_of, rg_of
from .. import symbolic as S
from .. import tape as T
from ..ops.record import _graph, _plain
from ..tensor import Tensor
from . import anomaly_mode as _anomaly_mode
from .anomaly_mode import state as _anomaly


class _Values(S._Handles):
    """Tensors for the values VJPs read. A slot whose value the tape did not save stands in
    as NaN of its shape: the rules read only the values their records saved, and a rule that
    read another would show NaN in every test rather than a wrong number."""

    def __call__(self, slot):
        t = self.cache.get(slot)
        if t is None:
            if self.tp.saved_value(slot) is not None:
                return super().__call__(slot)
            w = int(self.R[slot, K.OPW])
            shape = S._shape(self.R, slot)
            dt = np.float64 if K.dtype_of(w) else np.float32
            t = self.cache[slot] = _plain(np.broadcast_to(np.array(np.nan, dt), shape))
        return t

    def operand(self, slot, data):
        """A matmul's input, whose value the matmul record kept by reference."""
        if slot not in self.cache or self.tp.saved_value(slot) is None:
            w = int(self.R[slot, K.OPW])
            if rg_of(w):
                self.tp.hold(slot)
                self.cache[slot] = _graph(data, self.tp, self.tp.gid(slot), name_of(w))
            else:
                self.cache[slot] = _plain(data)


def walk(tp, seeds, want, retain_graph, stale_error, second_time):
    """Run the recorded reverse pass from seeds [(local slot, gradient Tensor)].

    Returns {slot: gradient Tensor} for the slots in `want` (leaf INPUT records, inputs of
    grad(), retained tensors) that received a gradient. Records it went through are freed
    unless retain_graph.
    """
    from .engine import _hook_result
    from ..node import record_inputs
    tp.pinned += 1
    fp = np.seterr(all="ignore")      # the rules make NaN and inf where the sweeps do
    try:
        R = tp.records()[0].copy()      # our own copy: the walk appends to the tape
        F = R.view(np.float64)
        iar = tp.iar[:tp.itop].copy()
        freed = tp.freed_flags()[:tp.n].tolist()
        words = R[:, K.OPW].tolist()       # Python ints: a numpy item read costs more
        hooked = tp.hooks
        dirty = bool(tp.dirty)
        nan_check = _anomaly.enabled and _anomaly.check_nan
        h = _Values(tp, R)
        grads = {}
        for loc, g in seeds:
            grads[loc] = g if loc not in grads else grads[loc] + g
        out = {}
        visited = []
        start = max(loc for loc, _ in seeds)
        for r in range(start, -1, -1):
            g = grads.get(r)
            if g is None:
                continue
            w = words[r]
            op = op_of(w)
            if op == K.PYOUT:          # its gradient waits in grads for its Function's record
                if r in want:
                    out[r] = g
                continue
            del grads[r]
            hk = hooked.get(tp.gid(r)) if hooked else None
            if hk is not None and op != K.INPUT:
                for fn in list(hk.tensor.values()):
                    new = fn(g)
                    if new is not None:
                        g = _hook_result(new, g, fn)
                for fn in list(hk.pre.values()):
                    new = fn((g,))
                    if new is not None:
                        g = _hook_result(new[0] if isinstance(new, (tuple, list)) else new,
                                         g, fn)
            if r in want:
                out[r] = g
            if op == K.INPUT:
                continue
            if op == K.DEAD or freed[r]:
                raise second_time()
            if dirty:
                err = stale_error(tp, R, r)
                if err is not None:
                    raise err
            visited.append(r)
            if op == K.PYFN:
                ctx = tp.pyfns[tp.gid(r)]
                gos = []
                for meta in ctx._outputs:
                    loc = tp.local(meta[2]) if meta is not None and meta[2] is not None else -1
                    gos.append(g if loc == r else grads.pop(loc, None) if loc >= 0 else None)
                pairs = [(tp.local(ctx._inputs[i][2]), d) for i, d in ctx.run(gos, True)]
                if not retain_graph:
                    ctx._release()
            else:
                if op == K.MATMUL:
                    a_arr, b_arr = tp.pyrefs[tp.gid(r)]
                    h.operand(int(R[r, K.A]), a_arr)
                    h.operand(int(R[r, K.B]), b_arr)
                pairs = S._vjp(op, r, R, F, iar, g, h, quiet=True)
            if hk is not None and hk.post:
                ins = record_inputs(tp, r)
                made = dict(pairs)
                gin = tuple(made.get(s) if s >= 0 else None for s in ins)
                for fn in list(hk.post.values()):
                    new = fn(gin, (g,))
                    if new is not None:
                        gin = tuple(new)
                pairs = [(s, d) for s, d in zip(ins, gin) if s >= 0 and d is not None]
            for i, (s, d) in enumerate(pairs):
                if s < 0 or not rg_of(words[s]):
                    continue
                if nan_check and np.isnan(d.data).any():
                    raise _anomaly_mode.nan_error(tp, tp.gid(r), T.NAMES[name_of(w)], i)
                prev = grads.get(s)
                grads[s] = d if prev is None else prev + d
        if not retain_graph:
            f = tp.freed_flags()
            for r in visited:
                f[r] = 1
        return out
    finally:
        np.seterr(**fp)
        tp.pinned -= 1


def as_seed(t, s):
    """The gradient Tensor a walk starts from: the given gradient itself when it is a
    tensor (so the result can be differentiated with respect to it too), else a constant."""
    if isinstance(s, Tensor):
        return s
    return _plain(np.asarray(s))
