"""backward() and grad(): seed the roots, run the compiled sweep, read gradients out.

The sweep runs in compiled segments; it stops only at records whose VJP runs here in
Python (matrix products through numpy's BLAS, dtype casts) or where the dtype changes.
A graph without matmuls or casts is one call.
"""
import bisect
import threading

import numpy as np

from .. import kernels as K
from ..kernels import dtype_of, GEMM, name_of, ndim_of, op_of, rg_of
from .. import pyops, tape as T
from ..node import AccumulateGrad, Node  # noqa: F401 - tapegrad.autograd.Node, as in torch
from ..tensor import Tensor, Size, dtype_name
from . import anomaly_mode as _anomaly_mode
from . import hooks, recorded
from .anomaly_mode import state as _anomaly

_REDS = K.reads_table()
_NO_CHAINS = np.empty(0, np.int64)     # an eager sweep has no decoded scalar chains
_NO_DIRTY = np.zeros(0, np.int64)
_local = threading.local()             # .callbacks: queue_callback's list for this backward


# ---- error texts --------------------------------------------------------------------------------
def _second_time():
    return RuntimeError(
        "Trying to backward through the graph a second time (or directly access saved "
        "tensors after they have already been freed). backward() and autograd.grad() free "
        "the graph they go through; pass retain_graph=True to the first call if you need to "
        "go through the same graph again.")


def _no_grad_error(i):
    return RuntimeError(f"element {i} of tensors does not require grad and does not have a "
                        f"grad_fn. Set requires_grad=True on the leaves you differentiate "
                        f"with respect to, and make sure the computation ran outside no_grad().")


def _dirty_error(tp, R, r):
    return _stale_error(tp, R, r) or RuntimeError(
        "a value saved for backward was modified by an in-place operation")


def _is_leaf_view(R, s):
    """Is record s the TRANSPOSE of a leaf, whose value is a view of the leaf's memory
    (ops/movement.py, ``_transposed_leaf``)? It then shares the leaf's in-place changes."""
    return op_of(int(R[s, K.OPW])) == K.TRANSPOSE and op_of(int(R[int(R[s, K.A]), K.OPW])) \
        == K.INPUT


def _dirt_of(tp, R, s):
    """(record count, version) of slot s's last in-place change, or None."""
    info = tp.dirty.get(tp.gid(s))
    if info is None and _is_leaf_view(R, s):
        info = tp.dirty.get(tp.gid(int(R[s, K.A])))
    return info


def _dirty_slots(tp, R, n):
    """Per slot, the record count at its last in-place change (0: none), for the sweep's
    check; a leaf's TRANSPOSE records share the leaf's."""
    dirty_at = np.zeros(n, np.int64)
    for g, (count, _) in tp.dirty.items():
        loc = tp.local(g)
        if loc >= 0:
            dirty_at[loc] = count
    tr = np.flatnonzero(op_of(R[:n, K.OPW]) == K.TRANSPOSE)
    if tr.size:
        a = R[tr, K.A]
        views = op_of(R[a, K.OPW]) == K.INPUT
        tr, a = tr[views], a[views]
        dirty_at[tr] = np.maximum(dirty_at[tr], dirty_at[a])
    return dirty_at


def _stale_error(tp, R, r):
    """The error for record r reading a saved value modified in place since, or None."""
    if not tp.dirty:
        return None
    op = op_of(int(R[r, K.OPW]))
    bits = int(_REDS[op])
    for bit, field in ((K.R_A, K.A), (K.R_B, K.B), (K.R_C, K.C), (K.R_OUT, -1)):
        if not bits & bit:
            continue
        s = r if field < 0 else int(R[r, field])
        info = _dirt_of(tp, R, s)
        if info is None or r >= info[0]:
            continue
        w = int(R[s, K.OPW])
        nd = ndim_of(w)
        shape = [int(v) for v in R[s, K.SH:K.SH + nd]]
        ty = f"[{dtype_name(np.dtype(np.float64 if dtype_of(w) else np.float32))} {shape}]"
        where = "" if op_of(w) == K.INPUT else f", which is output 0 of {T.NAMES[name_of(w)]},"
        return RuntimeError(
            f"one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: {ty}{where} is at version {info[1]}; expected version "
            f"{info[1] - 1} instead. {T.NAMES[name_of(int(R[r, K.OPW]))]} saved it for its "
            f"gradient; use an out-of-place op (x = x * 2 instead of x.mul_(2)) or clone() "
            f"the tensor before modifying it.")
    return None


# ---- the driver ---------------------------------------------------------------------------------------
def _acc(buf, goff, R, touched, s, val):
    o = int(goff[s])
    n = int(R[s, K.SIZE])
    v = val.reshape(-1)
    if touched[s]:
        buf[o:o + n] += v
    else:
        buf[o:o + n] = v
        touched[s] = 1


def _unbroadcast(g, shape):
    """Sum g down to shape (numpy broadcasting in reverse)."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for d, s in enumerate(shape):
        if s == 1 and g.shape[d] != 1:
            g = g.sum(axis=d, keepdims=True)
    return g


def _matmul_vjp(a, b, R, r, grads, goff, touched):
    a_s, b_s = int(R[r, K.A]), int(R[r, K.B])
    buf = grads[dtype_of(int(R[r, K.OPW]))]
    nd = ndim_of(int(R[r, K.OPW]))
    oshape = tuple(int(v) for v in R[r, K.SH:K.SH + nd])
    g = buf[int(goff[r]):int(goff[r]) + int(R[r, K.SIZE])].reshape(oshape)
    wa = rg_of(int(R[a_s, K.OPW]))
    wb = rg_of(int(R[b_s, K.OPW]))
    if a.ndim == 1 and b.ndim == 1:
        if wa:
            _acc(buf, goff, R, touched, a_s, g * b)
        if wb:
            _acc(buf, goff, R, touched, b_s, g * a)
        return
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    if wa:
        ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
        ga = _unbroadcast(ga, a2.shape)
        _acc(buf, goff, R, touched, a_s, ga)
    if wb:
        gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
        gb = _unbroadcast(gb, b2.shape)
        _acc(buf, goff, R, touched, b_s, gb)


def _cast_vjp(R, r, grads, goff, touched):
    a_s = int(R[r, K.A])
    if not rg_of(int(R[a_s, K.OPW])):
        return
    src = grads[dtype_of(int(R[r, K.OPW]))]
    dst = grads[dtype_of(int(R[a_s, K.OPW]))]
    g = src[int(goff[r]):int(goff[r]) + int(R[r, K.SIZE])]
    _acc(dst, goff, R, touched, a_s, g.astype(dst.dtype))


def _py_vjp(R, r, arrays, grads, goff, touched):
    buf = grads[dtype_of(int(R[r, K.OPW]))]
    g = buf[int(goff[r]):int(goff[r]) + int(R[r, K.SIZE])]
    for s, d in pyops.RULES[op_of(int(R[r, K.OPW]))].vjp(R, r, arrays, g):
        _acc(grads[dtype_of(int(R[s, K.OPW]))], goff, R, touched, s, d)


def _operands(tp, r):
    """The arrays record r's Python-side VJP reads: kept by reference when it was
    recorded, else (a replayed program's records) their saved values on the tape."""
    refs = tp.pyrefs.get(tp.gid(r))
    return refs if refs is not None else pyops.operands(tp.records()[0], r, tp.saved_value)


def _reverse(R, F, vals, grads, goff, touched, freed, dirty_at, iar, start, operands, dirty,
             python=None, stops=None, floor=0):
    """Run the reverse sweep from record `start` down to 0 in compiled segments.

    vals and grads are (float32, float64) pairs; operands(r) gives a matmul record's two
    input arrays and dirty(r) the exception for a modified saved value. python(r, op) runs
    a custom Function's record (PYFN, PYOUT). stops(r) gives the highest record at or below
    r before whose VJP Python must run (hooks), or -1; before(r) = stops.run(r) then
    decides whether the sweep still runs record r (False: Python ran it).
    """
    r = start
    dt = dtype_of(int(R[r, K.OPW]))
    lo = stops.next(r) if stops is not None else -1
    while r >= floor:
        if lo >= 0 and r == lo:
            lo = stops.next(r - 1)
            if (touched[r] or r in stops.ready) and not stops.run(r):
                r -= 1
                continue
        status, r = K.sweep(R, F, vals[dt], grads[dt], goff, touched, freed, dirty_at,
                            _REDS, iar, r, lo + 1 if lo >= 0 else floor, dt, GEMM, _NO_CHAINS)
        if status == K.ST_DONE:
            if lo < 0:
                return
            r = lo
            continue
        if status == K.ST_PYTHON:
            op = op_of(int(R[r, K.OPW]))
            if op == K.MATMUL:
                a, b = operands(r)
                _matmul_vjp(a, b, R, r, grads, goff, touched)
            elif op == K.CAST:
                _cast_vjp(R, r, grads, goff, touched)
            elif op == K.PYFN or op == K.PYOUT:
                python(r, op)
            elif op in pyops.RULES:     # linear algebra (tapegrad.linalg): its rule's VJP
                _py_vjp(R, r, operands(r), grads, goff, touched)
            else:               # a record of the other dtype: switch and go on
                dt = 1 - dt
                continue
            r -= 1
            continue
        if status in (K.ST_FREED, K.ST_DEAD):
            raise _second_time()
        if status == K.ST_DIRTY:
            raise dirty(r)
        raise RuntimeError(f"internal error: the sweep met an unknown opcode "
                           f"{op_of(int(R[r, K.OPW]))} at record {r}")


class _Stops:
    """The records where Python runs before the compiled sweep reaches them: records with
    hooks (tensor hooks, node pre- and post-hooks) and, in anomaly mode, every record.

    A leaf with post-accumulate hooks is delivered (its ``.grad`` accumulated, its hooks
    run) as soon as the sweep reaches the lowest of its INPUT records, the point past which
    nothing adds to its gradient, as PyTorch's AccumulateGrad runs mid-backward: that is
    what lets DistributedDataParallel start reducing early gradients while the sweep goes
    on. ``ready`` maps that record to (leaf, its slots); ``delivered`` collects the leaves.

    run(r) runs record r's tensor hooks and node pre-hooks on its gradient; if the record
    has post-hooks or anomaly mode is on, it then runs the record's VJP by itself (its
    inputs' gradients set aside, so that what it produced can be seen), calls the
    post-hooks, checks for NaN, adds the set-aside gradients back, and returns False (done);
    otherwise True: the sweep runs the record.
    """

    def __init__(self, tp, R, F, grads, goff, touched, freed, dirty_at, fns, locs, anomaly,
                 ready=None, delivered=None):
        self.tp, self.R, self.F, self.grads, self.goff = tp, R, F, grads, goff
        self.touched, self.freed, self.dirty_at, self.fns = touched, freed, dirty_at, fns
        self.ready = ready or {}
        self.delivered = delivered
        self.locs = sorted(set(locs) | set(self.ready))
        self.anomaly = anomaly

    def next(self, r):
        i = bisect.bisect_right(self.locs, r)
        return self.locs[i - 1] if i else -1

    def _grad(self, s):
        return _read(self.tp, self.R, self.grads, self.goff, s)

    def run(self, r):
        tp, R = self.tp, self.R
        gid = tp.gid(r)
        hk = tp.hooks.get(gid) if tp.hooks else None
        op = op_of(int(R[r, K.OPW]))
        if op == K.INPUT:
            if r in self.ready:
                leaf, slots = self.ready[r]
                parts = [self._grad(s) for s in slots if self.touched[s]]
                if parts:
                    _deliver(leaf, _sum(parts) if len(parts) > 1 else parts[0])
                    self.delivered.add(id(leaf))
            return True
        if hk is not None and (hk.tensor or hk.pre):
            self._grad(r)[...] = hooks.run_pre(hk, Tensor(self._grad(r).copy())).data
        if not self.anomaly and (hk is None or not hk.post):
            return True
        if self.freed[r]:
            raise _second_time()
        ins = [s for s in _inputs(tp, r) if s >= 0 and rg_of(int(R[s, K.OPW]))]
        kept = {}
        for s in dict.fromkeys(ins):
            kept[s] = (int(self.touched[s]), self._grad(s).copy() if self.touched[s] else None)
            self.touched[s] = 0
        _reverse(R, self.F, tp.arena, self.grads, self.goff, self.touched, self.freed,
                 self.dirty_at, tp.iar, r, lambda q: _operands(tp, q),
                 lambda q, R=R: _dirty_error(tp, R, q), self.fns, None, floor=r)
        made = {s: Tensor(self._grad(s).copy()) if self.touched[s] else None for s in kept}
        name = T.NAMES[name_of(int(R[r, K.OPW]))]
        if hk is not None and hk.post:
            gin = tuple(made.get(s) if s >= 0 else None for s in _inputs(tp, r))
            gin = hooks.run_post(hk, gin, Tensor(self._grad(r).copy()))
            for s, g in zip(_inputs(tp, r), gin):
                if s in made and g is not None:
                    made[s] = g
        if self.anomaly and _anomaly.check_nan:
            for i, s in enumerate(_inputs(tp, r)):
                g = made.get(s)
                if g is not None and np.isnan(g.data).any():
                    raise _anomaly_mode.nan_error(tp, gid, name, i)
        for s, (was, old) in kept.items():
            g = made[s]
            if g is None:
                self.touched[s] = was
                if was:
                    self._grad(s)[...] = old
                continue
            self._grad(s)[...] = g.data if not was else old + g.data
            self.touched[s] = 1
        return False


def _inputs(tp, r):
    from ..node import record_inputs
    return record_inputs(tp, r)


def _stops(tp, R, F, grads, goff, touched, freed, dirty_at, fns, early=None):
    """The _Stops of this backward, or None when nothing needs them (the common case).
    early: (ready, delivered) for the leaves delivered mid-sweep (see _Stops)."""
    anomaly = _anomaly.enabled
    ready, delivered = early if early is not None else (None, None)
    if not anomaly and not tp.hooks and not ready:
        return None
    if anomaly:
        locs = range(tp.n)
    else:
        locs = [loc for g, h in tp.hooks.items() if h and (loc := tp.local(g)) >= 0]
        if not locs and not ready:
            return None
    return _Stops(tp, R, F, grads, goff, touched, freed, dirty_at, fns, locs, anomaly, ready,
                  delivered)


def _early_leaves(tp):
    """(ready, delivered) for the leaves on tp with post-accumulate hooks, or None."""
    ready = {}
    for leaf, slots in _leaf_slots(tp):
        hk = hooks.leaf_hooks(leaf)
        if hk is not None and hk[1]:
            ready[min(slots)] = (leaf, slots)
    return (ready, set()) if ready else None


class _Functions:
    """Runs custom Function records during one eager backward (see function.py)."""

    def __init__(self, tp, R, grads, goff, touched, retain):
        self.tp, self.R, self.grads, self.goff, self.touched = tp, R, grads, goff, touched
        self.retain = retain
        self.ungraded = set()    # PYFN records touched only so that the sweep reaches them

    def __call__(self, r, op):
        R, touched = self.R, self.touched
        if op == K.PYOUT:       # a further output: make sure the sweep stops at its PYFN
            hub = int(R[r, K.A])
            if not touched[hub]:
                w = int(R[hub, K.OPW])
                buf = self.grads[dtype_of(w)]
                o = int(self.goff[hub])
                buf[o:o + int(R[hub, K.SIZE])] = 0
                touched[hub] = 1
                self.ungraded.add(hub)
            return
        tp = self.tp
        ctx = tp.pyfns[tp.gid(r)]
        gos = []
        for meta in ctx._outputs:
            loc = tp.local(meta[2]) if meta is not None and meta[2] is not None else -1
            if loc < 0 or not touched[loc] or loc in self.ungraded:
                gos.append(None)
            else:
                gos.append(_read(tp, R, self.grads, self.goff, loc).copy())
        res = ctx.run(gos, create_graph=False)
        for i, g in res:
            loc = tp.local(ctx._inputs[i][2])
            if loc >= 0:
                _acc(self.grads[dtype_of(int(R[loc, K.OPW]))], self.goff, R, touched, loc,
                     g._data)
        if not self.retain:
            ctx._release()


def _keep_transposes(tp, R, F, read):
    """A product x @ w.t() may send w's gradient past the TRANSPOSE record of w.t() (F0's
    bit 2, ops/linalg.py). Clear that bit where w.t()'s own gradient is looked at: the
    slots in `read` (grad's inputs), retained or hooked records, everything in anomaly
    mode."""
    keep = set(read)
    if tp.retained or tp.hooks:
        keep.update(loc for g in list(tp.retained) + list(tp.hooks)
                    if (loc := tp.local(g)) >= 0)
    if not keep and not _anomaly.enabled:
        return
    n = tp.n
    rows = op_of(R[:n, K.OPW]) == K.MATMUL
    if not _anomaly.enabled:
        rows &= np.isin(R[:n, K.B], np.fromiter(keep, np.int64, len(keep)))
    F[:n, K.F0][rows] %= 4


def _run(tp, seeds, retain_graph, early=None, read=()):
    """Sweep the tape from the seeded slots; returns (grads, goff, touched, R). `read`:
    non-leaf slots whose own gradients the caller reads afterwards."""
    R, F = tp.records()
    try:
        n = tp.n
        _keep_transposes(tp, R, F, read)
        goff = np.empty(n, np.int64)
        t0, t1 = K.grad_offsets(R, n, goff)
        if tp.sweeping:      # a backward inside a sweep's Python call: the outer sweep's
            # gradients are in the shared buffers, so this one gets its own
            grads = (np.empty(max(t0, 1), np.float32), np.empty(max(t1, 1), np.float64))
        else:
            grads = tp.grad_buffers(t0, t1)
        touched = np.zeros(n, np.uint8)
        freed = tp.freed_flags()
        dirty_at = _dirty_slots(tp, R, n) if tp.dirty else _NO_DIRTY
        start = 0
        for loc, val in seeds:
            _acc(grads[dtype_of(int(R[loc, K.OPW]))], goff, R, touched, loc, val)
            start = max(start, loc)
        fns = _Functions(tp, R, grads, goff, touched, retain_graph) if tp.pyfns else None
        stops = _stops(tp, R, F, grads, goff, touched, freed, dirty_at, fns, early)
        # user code (a Function's backward, a hook) may record ops or run a backward of its
        # own: the records must not move while this sweep holds their local indices
        python = fns is not None or stops is not None
        tp.sweeping += 1
        tp.pinned += python
        try:
            _reverse(R, F, tp.arena, grads, goff, touched, freed, dirty_at, tp.iar, start,
                     lambda r: _operands(tp, r), lambda r, R=R: _dirty_error(tp, R, r),
                     fns, stops)
        finally:
            tp.sweeping -= 1
            tp.pinned -= python
        if not retain_graph:
            tp.freed_flags()[:n] |= touched     # (that code may have grown the flags)
        return grads, goff, touched, R
    except BaseException:
        del R, F
        raise


def _read(tp, R, grads, goff, loc):
    w = int(R[loc, K.OPW])
    shape = tuple(R[loc, K.SH:K.SH + ndim_of(w)].tolist())
    o = int(goff[loc])
    return grads[dtype_of(w)][o:o + int(R[loc, K.SIZE])].reshape(shape)


def _seed(t, g, i):
    """Validate one (output, gradient) pair; returns the seed array."""
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a Tensor as output {i}, got {type(t).__name__}")
    if not t._rg:
        raise _no_grad_error(i)
    if g is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has "
                f"shape {tuple(t.data.shape)}. Pass gradient= (a tensor of that shape) to "
                f"compute a vector-Jacobian product, or reduce the output (e.g. .sum()) first.")
        return np.ones(t.data.shape, t.data.dtype)
    ga = g.data if isinstance(g, Tensor) else np.asarray(g)
    if ga.shape != t.data.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                           f"{Size(ga.shape)!r} and output[{i}] has a shape of "
                           f"{Size(t.data.shape)!r}. The gradient must have the output's shape.")
    return ga.astype(t.data.dtype, copy=False)


def _graph_tape(ts):
    tapes = {id(t._tape): t._tape for t in ts if t._tape is not None}
    if len(tapes) > 1:
        raise RuntimeError("these outputs were recorded in different threads; differentiate "
                           "each thread's outputs separately")
    return next(iter(tapes.values()), None)


def _accumulate(t, g):
    """Add gradient g (an array, or with create_graph a Tensor on the tape) into t.grad."""
    if isinstance(g, Tensor):
        if g._tape is not None:            # create_graph: .grad keeps its history
            t._grad = g if t._grad is None else t._grad + g
            return
        g = g._data
    if t._grad is None:
        t._grad = Tensor(np.array(g, dtype=t.data.dtype, copy=True))
    else:
        t._grad.data += g


def _hand_over(tp, R, grads, goff, pairs):
    """Accumulate the sweep's gradients into the .grad of leaves [(leaf, slot)].

    A leaf whose .grad is None needs an array of its own. When those leaves' regions are
    a third of the sweep's buffers or more (a network's parameters: the rest holds the
    activations' gradients and, for ``w.t()``, regions the sweep skips), the regions
    themselves become the new .grad tensors and the tape lets go of the buffers; the next
    backward allocates others, which reuse the memory once those .grad are dropped (as
    zero_grad does). Otherwise each gets a copy. Either way memory stays bounded by about
    two buffers."""
    if not pairs:
        return
    lent = [0, 0]
    for leaf, loc in pairs:
        if leaf._grad is None:
            w = int(R[loc, K.OPW])
            if leaf._data.dtype == grads[dtype_of(w)].dtype:
                lent[dtype_of(w)] += int(R[loc, K.SIZE])
    lend = tp.grad_buffers_are(grads) and lent[0] + lent[1] >= _LEND_MIN
    if lend and not all(worth_lending(k, b.shape[0], 0) for k, b in zip(lent, grads) if k):
        lend = False
        need = tp.grad_need
        if all(worth_lending(k, need[d], 0) for d, k in enumerate(lent) if k) and \
                any(b.shape[0] > 8 * max(m, 1) for b, m in zip(grads, need)):
            tp.drop_grad_buffers()     # left large by an earlier, larger graph: next time
            # this graph's own size is allocated, and its gradients can be lent
    for leaf, loc in pairs:
        g = _read(tp, R, grads, goff, loc)
        if lend and leaf._grad is None and g.dtype == leaf._data.dtype:
            leaf._grad = Tensor(g)
        else:
            _accumulate(leaf, g)
    if lend:
        tp.drop_grad_buffers()


_LEND_MIN = 1 << 16    # below this many elements a copy costs less than new buffers


def worth_lending(lent, size, least=_LEND_MIN):
    """Should `lent` elements of a gradient buffer of `size` become .grad tensors, and the
    buffer be replaced, rather than be copied out? (A third of it, and not a few.)"""
    return lent >= least and 3 * lent >= size


def _deliver(leaf, g, accumulate=True):
    """A leaf's whole gradient for this backward: its tensor hooks, then (backward only)
    accumulation into .grad and its post-accumulate hooks. Returns the hooked gradient.

    A leaf whose one hook is a gradient taker (``take_gradient(leaf, g)``, the
    DistributedDataParallel reducer's) and has no tensor hooks hands g, which may be a view
    of the sweep's buffers, to the taker; when it returns True the taker has accumulated
    it (into ``.grad`` at the latest when the backward ends) and nothing else runs."""
    hk = hooks.leaf_hooks(leaf) if hooks._LEAF else None
    if accumulate and hk is not None and not hk[0] and len(hk[1]) == 1:
        take = getattr(next(iter(hk[1].values())), "take_gradient", None)
        if take is not None and take(leaf, g):
            return g
    if hk is not None and hk[0]:
        g = g if isinstance(g, Tensor) else Tensor(np.array(g, copy=True))
        for fn in list(hk[0].values()):
            new = fn(g)
            if new is not None:
                g = hooks.checked(new, g, fn)
    if accumulate:
        _accumulate(leaf, g)
        if hk is not None:
            for fn in list(hk[1].values()):
                fn(leaf)
    return g


def _outputs_and_seeds(tensors, grad_tensors, what):
    outs = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if grad_tensors is None:
        gts = [None] * len(outs)
    else:
        gts = list(grad_tensors) if isinstance(grad_tensors, (list, tuple)) else [grad_tensors]
    if len(gts) != len(outs):
        raise RuntimeError(f"{what}: got {len(gts)} gradients for {len(outs)} outputs; pass "
                           f"one per output (None for a scalar output)")
    return outs, gts, [_seed(t, g, i) for i, (t, g) in enumerate(zip(outs, gts))]


def _graph_seeds(tp, outs, gts, seeds, create_graph):
    """[(local slot, seed)] of the outputs recorded on tp; seeds are Tensors with
    create_graph (the given gradient itself when it is one), arrays otherwise."""
    locs = []
    for t, g, s in zip(outs, gts, seeds):
        if t._tape is None:
            continue
        loc = tp.local(t._gid)
        if loc < 0:
            raise _second_time()
        if create_graph:
            s = g if isinstance(g, Tensor) and g._rg else recorded.as_seed(t, s)
        locs.append((loc, s))
    return locs


def _leaf_slots(tp):
    """{leaf: [local slots of its INPUT records]} on tp."""
    by = {}
    for g, leaf in tp.leaves.items():
        loc = tp.local(g)
        if loc >= 0:
            by.setdefault(id(leaf), (leaf, []))[1].append(loc)
    return by.values()


def _sum(parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def queue_callback(fn):
    """Run fn() once the backward that is running now has delivered every gradient (as
    PyTorch's ``Variable._execution_engine.queue_callback``); call it from a hook."""
    if not callable(fn):
        raise TypeError(f"queue_callback needs a callable, got {type(fn).__name__}")
    cbs = getattr(_local, "callbacks", None)
    if cbs is None:
        raise RuntimeError("queue_callback can only be called during a backward (from a hook)")
    cbs.append(fn)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's ``.grad``.

    ``grad_tensors`` holds one gradient per output (needed for non-scalar outputs: the
    result is then a vector-Jacobian product). Unless ``retain_graph`` is true, the graph
    is freed, and a second backward through it raises. With ``create_graph`` the gradients
    are recorded too (``.grad`` gets a grad_fn) and can be differentiated again;
    ``retain_graph`` then defaults to True.
    """
    if not hooks._LEAF:         # no leaf hooks, so no hook can queue a callback
        return _backward(tensors, grad_tensors, retain_graph, create_graph, inputs)
    outer = getattr(_local, "callbacks", None)
    _local.callbacks = cbs = []
    try:
        _backward(tensors, grad_tensors, retain_graph, create_graph, inputs)
    finally:
        _local.callbacks = outer
    for fn in cbs:
        fn()


def _backward(tensors, grad_tensors, retain_graph, create_graph, inputs):
    if retain_graph is None:
        retain_graph = create_graph
    if grad_tensors is None and inputs is None and not retain_graph:
        t = tensors[0] if isinstance(tensors, (list, tuple)) and len(tensors) == 1 else tensors
        node = getattr(t, "_ctx", None) if isinstance(t, Tensor) else None
        if node is not None and node.backward_alone(t):   # a compiled call's output
            return
    outs, gts, seeds = _outputs_and_seeds(tensors, grad_tensors, "backward")
    if inputs is not None:
        ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        grads = grad(outs, ins, gts, retain_graph=retain_graph, create_graph=create_graph,
                     allow_unused=True)
        for x, g in zip(ins, grads):
            if g is not None:
                _accumulate(x, g if create_graph else g.data)
        return
    for t, g, s in zip(outs, gts, seeds):
        if t._tape is None:      # backward on a leaf: its gradient is the seed itself
            _deliver(t, g if create_graph and isinstance(g, Tensor) else s)
    graph = [t for t in outs if t._tape is not None]
    if not graph:
        return
    tp = _graph_tape(graph)
    locs = _graph_seeds(tp, outs, gts, seeds, create_graph)
    if create_graph:
        leaves = list(_leaf_slots(tp))
        kept = [(ref(), tp.local(g)) for g, ref in tp.retained.items()]
        kept = [(t, loc) for t, loc in kept if t is not None and loc >= 0]
        want = {loc for _, slots in leaves for loc in slots} | {loc for _, loc in kept}
        got = recorded.walk(tp, locs, want, retain_graph, _stale_error, _second_time)
        for leaf, slots in leaves:
            parts = [got[loc] for loc in slots if loc in got]
            if parts:
                _deliver(leaf, _sum(parts))
        for t, loc in kept:
            if loc in got:
                _accumulate(t, got[loc])
        if not retain_graph:
            tp.collect()
        return
    early = _early_leaves(tp) if hooks._LEAF else None
    grads, goff, touched, R = _run(tp, locs, bool(retain_graph), early)
    n = touched.shape[0]     # records a Function's backward made since are not this graph's
    try:
        if hooks._LEAF:     # some leaf has hooks; those without go by _hand_over
            done = early[1] if early is not None else ()
            pairs = []
            for leaf, slots in list(_leaf_slots(tp)):
                if id(leaf) in done:
                    continue
                slots = [loc for loc in slots if loc < n and touched[loc]]
                if not slots:
                    continue
                if hooks.leaf_hooks(leaf) is None:
                    pairs += [(leaf, loc) for loc in slots]
                    continue
                parts = [_read(tp, R, grads, goff, loc) for loc in slots]
                _deliver(leaf, _sum(parts) if len(parts) > 1 else parts[0])
            _hand_over(tp, R, grads, goff, pairs)
        else:
            pairs = [(leaf, loc) for g, leaf in list(tp.leaves.items())
                     if 0 <= (loc := tp.local(g)) < n and touched[loc]]
            _hand_over(tp, R, grads, goff, pairs)
        for g, ref in list(tp.retained.items()):
            t = ref()
            loc = tp.local(g)
            if t is not None and 0 <= loc < n and touched[loc]:
                _accumulate(t, _read(tp, R, grads, goff, loc))
    finally:
        del R
    if not retain_graph:
        tp.collect()


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Return d(outputs)/d(inputs) as a tuple, without touching any ``.grad``.

    With ``create_graph`` the results are recorded (they have a grad_fn) and can be
    differentiated again, to any order; ``retain_graph`` then defaults to True.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> (gx,) = tg.autograd.grad((x ** 2).sum(), x)
    >>> gx
    tensor([2., 4.])
    """
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported; call grad once per "
                                  "grad_outputs row, or use tapegrad.func.vmap-free jacrev")
    if allow_unused is None:
        allow_unused = materialize_grads
    if retain_graph is None:
        retain_graph = create_graph
    single_input = isinstance(inputs, Tensor)
    outs, gos, seeds = _outputs_and_seeds(outputs, grad_outputs, "grad")
    ins = [inputs] if single_input else list(inputs)
    for i, x in enumerate(ins):
        if not isinstance(x, Tensor) or not x._rg:
            raise _no_grad_error(i) if isinstance(x, Tensor) else TypeError(
                f"inputs[{i}] is not a Tensor")
    result = [[] for _ in ins]
    for t, g, s in zip(outs, gos, seeds):
        if t._tape is None:
            for j, x in enumerate(ins):
                if x is t:
                    result[j].append((g if isinstance(g, Tensor) and g._rg else
                                      recorded.as_seed(t, s)) if create_graph else s)
    graph = [t for t in outs if t._tape is not None]
    if graph:
        tp = _graph_tape(graph)
        locs = _graph_seeds(tp, outs, gos, seeds, create_graph)
        slots = []
        for x in ins:
            if x._tape is None:
                slots.append([tp.local(g) for g, leaf in tp.leaves.items() if leaf is x])
            else:
                slots.append([tp.local(x._gid)] if x._tape is tp else [])
        if create_graph:
            want = {loc for ss in slots for loc in ss if loc >= 0}
            got = recorded.walk(tp, locs, want, retain_graph, _stale_error, _second_time)
            for j, ss in enumerate(slots):
                result[j] += [got[loc] for loc in ss if loc in got]
        else:
            inner = [x._gid for x in ins if x._tape is tp]
            grads, goff, touched, R = _run(tp, locs, bool(retain_graph),
                                           read=[tp.local(g) for g in inner])
            try:
                for j, ss in enumerate(slots):
                    result[j] += [_read(tp, R, grads, goff, loc).copy() for loc in ss
                                  if loc >= 0 and touched[loc]]
            finally:
                del R
        if not retain_graph:
            tp.collect()
    out = []
    for j, (x, parts) in enumerate(zip(ins, result)):
        if not parts:
            if materialize_grads:
                out.append(Tensor(np.zeros_like(x.data)))
                continue
            if not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (inputs[{j}]) appears to not have been "
                    f"used in the graph. Set allow_unused=True if this is the desired behavior.")
            out.append(None)
            continue
        g = _sum(parts) if len(parts) > 1 else parts[0]
        if x._tape is None:
            g = _deliver(x, g, accumulate=False)
        if isinstance(g, Tensor):
            out.append(g)
        else:
            out.append(Tensor(np.asarray(g, dtype=x.data.dtype)))
    return tuple(out)
