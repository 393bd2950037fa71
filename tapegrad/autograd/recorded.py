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
import heapq

import numpy as np

from .. import codegen, rules
from .. import kernels as K
from ..kernels import name_of, op_of, rg_of
from .. import pyops, symbolic as S
from .. import tape as T
from ..ops.record import _graph, _plain, _slot
from ..tensor import Tensor
from . import anomaly_mode as _anomaly_mode, hooks
from .anomaly_mode import state as _anomaly


class _Values(S._Handles):
    """Tensors for the values VJPs read: each stands for its record (so what is built from
    it joins the forward graph) and views its saved value in the arena (no copy: the walk
    pins the tape, and the arena only grows while it runs). A slot whose value the tape did
    not save stands in as NaN of its shape: the rules read only the values their records
    saved, and a rule that read another would show NaN in every test, not a wrong number."""

    def __call__(self, slot):
        t = self.cache.get(slot)
        if t is None:
            tp, R = self.tp, self.R
            data = tp.saved_value(slot)
            w = int(R[slot, K.OPW])
            if data is None:
                shape = S._shape(R, slot)
                dt = np.float64 if K.dtype_of(w) else np.float32
                t = _plain(np.broadcast_to(np.array(np.nan, dt), shape))
            elif not rg_of(w):   # a constant: ops on it are constants too, not records
                t = _plain(data.copy())
            else:
                tp.hold(slot)
                t = _graph(data, tp, tp.gid(slot), name_of(w))
            self.cache[slot] = t
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


# the unary ops whose VJP is recorded as one UVJP record (those whose rule has partials,
# calculus.py); its grad_fn is PyTorch's name for it (TanhBackwardBackward0)
_FUSED = frozenset(getattr(K, u.opcode) for u in rules.UNARY
                   if codegen.second_partials(u) is not None)
_UVJP_NAMES = {}
_EMPTY = (np.empty(0, np.float32), np.empty(0, np.float64))
_F64 = np.dtype(np.float64)


def _uvjp_name(w):
    n = _UVJP_NAMES.get(name_of(w))
    if n is None:
        base = T.NAMES[name_of(w)]
        n = _UVJP_NAMES[name_of(w)] = T.name_id(
            (base[:-1] if base.endswith("0") else base) + "Backward0")
    return n


def _flat(a):
    return a if a.ndim == 1 else a.reshape(-1)


def _fused_vjp(tp, r, w, a, f0, f1, g, h):
    """Unary record r (input a) with gradient g: its VJP as one UVJP record, g * du(x, y),
    valued by the rule compiled (as replay computes it). None: g has another dtype."""
    gd = g._data
    d64 = gd.dtype is _F64
    if d64 != bool(K.dtype_of(w)):
        return None
    op = op_of(w)
    reads = S._READS[op]
    X = h(a) if reads & K.R_A else None
    Y = h(r) if reads & K.R_OUT else None
    val = np.empty(gd.shape, gd.dtype)
    empty = _EMPTY[d64]
    K.vjp_values(op, _flat(gd), empty if X is None else _flat(X._data),
                 empty if Y is None else _flat(Y._data), _flat(val), f0, f1)
    sg = _slot(tp, g)
    tp.save(sg, gd)
    name = _uvjp_name(w)
    gid = tp.append(K.UVJP | d64 * K.DT_BIT | K.RG_BIT | name << K.NAME_SHIFT,
                    sg, -1 if X is None else a, -1 if Y is None else r, op, 0, val, False,
                    f0, f1)
    return [(a, _graph(val, tp, gid, name))]


def walk(tp, seeds, want, retain_graph, stale_error, second_time):
    """Run the recorded reverse pass from seeds [(local slot, gradient Tensor)].

    Returns {slot: gradient Tensor} for the slots in `want` (leaf INPUT records, inputs of
    grad(), retained tensors) that received a gradient. Records it went through are freed
    unless retain_graph.
    """
    from ..node import record_inputs
    tp.pinned += 1
    fp = np.seterr(all="ignore")      # the rules make NaN and inf where the sweeps do
    try:
        start = max(loc for loc, _ in seeds)
        # our own copy of the records the walk can reach (it appends to the tape)
        R = tp.records()[0][:start + 1].copy()
        F = R.view(np.float64)
        iar = tp.iar                    # index blocks only get added after it
        freed = tp.freed_flags()
        OPW, A_, F0, F1 = K.OPW, K.A, K.F0, K.F1
        hooked = tp.hooks
        dirty = bool(tp.dirty)
        nan_check = _anomaly.enabled and _anomaly.check_nan
        h = _Values(tp, R)
        grads = {}
        for loc, g in seeds:
            grads[loc] = g if loc not in grads else grads[loc] + g
        out = {}
        visited = []
        INPUT, DEAD, PYFN, PYOUT, MATMUL = K.INPUT, K.DEAD, K.PYFN, K.PYOUT, K.MATMUL
        NEG, UNARY_END, RG = K.NEG, K.UNARY_END, K.RG_BIT
        # the slots holding a gradient, newest first (a heap, not a scan of every older
        # record: a leaf's INPUT record can sit far below, under other graphs' records)
        todo = [-loc for loc in grads]
        heapq.heapify(todo)
        while todo:
            r = -heapq.heappop(todo)
            g = grads[r]
            w = int(R[r, OPW])
            op = op_of(w)
            if op == PYOUT:            # its gradient waits in grads for its Function's record
                if r in want:
                    out[r] = g
                continue
            del grads[r]
            hk = hooked.get(tp.gid(r)) if hooked else None
            if hk is not None and op != INPUT:
                g = hooks.run_pre(hk, g)
            if r in want:
                out[r] = g
            if op == INPUT:
                continue
            if op == DEAD or freed[r]:
                raise second_time()
            if dirty:
                err = stale_error(tp, R, r)
                if err is not None:
                    raise err
            visited.append(r)
            if op == PYFN:
                ctx = tp.pyfns[tp.gid(r)]
                gos = []
                for meta in ctx._outputs:
                    loc = tp.local(meta[2]) if meta is not None and meta[2] is not None else -1
                    gos.append(g if loc == r else grads.pop(loc, None) if loc >= 0 else None)
                pairs = [(tp.local(ctx._inputs[i][2]), d) for i, d in ctx.run(gos, True)]
                if not retain_graph:
                    ctx._release()
            else:
                if NEG <= op < UNARY_END:
                    a, f0, f1 = int(R[r, A_]), float(F[r, F0]), float(F[r, F1])
                    pairs = _fused_vjp(tp, r, w, a, f0, f1, g, h) if op in _FUSED else None
                    if pairs is None:
                        pairs = [(a, S.unary_vjp(op, a, r, f0, f1, R, g, h))]
                else:
                    if op == MATMUL:
                        a_arr, b_arr = tp.pyrefs[tp.gid(r)]
                        h.operand(int(R[r, K.A]), a_arr)
                        h.operand(int(R[r, K.B]), b_arr)
                    elif op in pyops.RULES and tp.gid(r) in tp.pyrefs:   # kept by reference
                        for s, arr in zip(pyops.operands(R, r, int), tp.pyrefs[tp.gid(r)]):
                            h.operand(s, arr)
                    pairs = S._vjp(op, r, R, F, iar, g, h, quiet=True)
            if hk is not None and hk.post:
                hin = record_inputs(tp, r)
                made = dict(pairs)
                gin = hooks.run_post(hk, tuple(made.get(s) if s >= 0 else None for s in hin), g)
                pairs = [(s, d) for s, d in zip(hin, gin) if s >= 0 and d is not None]
            for s, d in pairs:
                if s < 0 or not int(R[s, OPW]) & RG:
                    continue
                if nan_check and np.isnan(d._data).any():
                    i = [p[0] for p in pairs].index(s)
                    raise _anomaly_mode.nan_error(tp, tp.gid(r), T.NAMES[name_of(w)], i)
                prev = grads.get(s)
                if prev is None:
                    grads[s] = d
                    heapq.heappush(todo, -s)
                else:
                    grads[s] = prev + d
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
