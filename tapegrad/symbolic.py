"""The reverse pass written with tapegrad ops, so that it is itself recorded.

``grad_function(fn, argnums)`` returns a function whose result is fn's gradient computed by
walking fn's records backwards in Python and expressing each VJP with ordinary ops. When
that function is traced (as ``func.hessian`` does through ``jacfwd``), the gradient is a
recorded computation of the inputs, and a tangent sweep over it differentiates it again:
forward over reverse. It needs every value on the tape, so it runs inside a trace.
"""
import contextlib

import numpy as np

from . import codegen, ops, pyops, rules
from . import kernels as K
from .kernels import name_of, ndim_of, op_of, rg_of
from . import tape as T
from .ops import _graph, _plain
from .tensor import Tensor


def _shape(R, r):
    return tuple(int(v) for v in R[r, K.SH:K.SH + ndim_of(int(R[r, K.OPW]))])


def _const(a):
    return _plain(np.asarray(a))


def _unbroadcast(g, shape):
    """Sum g down to `shape`, the reverse of numpy broadcasting."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and g.shape[lead + i] != 1)
    return _as_shape(ops.sum(g, dim=dims, keepdim=False) if dims else g, shape)


def _as_shape(t, shape):
    """t reshaped to shape; t itself when it has that shape already (no copy, no record)."""
    return t if tuple(t.data.shape) == tuple(shape) else ops.reshape(t, shape)


def _zeros(like, shape=None):
    return _const(np.zeros(like.data.shape if shape is None else shape, like.data.dtype))


def _pow_vjp(g, A, B, out, wanted):
    """(d/dA, d/dB) of A ** B, with the sweeps' masks (sweep._db, PyTorch's values): d/dA is
    exactly 0 where B == 0, d/dB is g * 0 where A == 0 and B >= 0; d/dB is NaN at a negative
    base, as log is. Only the wanted ones (inputs that require grad) are built."""
    da = db = None
    with np.errstate(divide="ignore", invalid="ignore"):
        if wanted[0]:
            # B * A ** (B - 1) as a product, so its derivative in B at B == 0 stays
            # A ** -1 (PyTorch's where(B == 0, 0, ...) drops it; its Hessian is then not
            # symmetric at a smooth point such as 2 ** 0); where A ** (B - 1) is not
            # finite at B == 0 (0 ** -1) it is replaced by 0, which gives PyTorch's 0
            p = A ** (B - 1.0)
            bad = (np.broadcast_to(B.data, p.data.shape) == 0) & ~np.isfinite(p.data)
            if bad.any():
                p = ops.where(_const(bad), _zeros(p, ()), p)
            da = g * B * p
        if wanted[1]:
            cond = (A.data == 0) & (B.data >= 0)
            lg = ops.log(A)
            db = g * ops.where(_const(cond), _zeros(out, ()), out * lg) if cond.any() \
                else g * (out * lg)
    return da, db


def _along(t, D, inner):
    """View t as (outer, D, inner) for softmax-style reductions."""
    return ops.reshape(t, (-1, D, inner))


class _Handles:
    """Tensors standing for existing records, so new ops can use their values."""

    def __init__(self, tp, R):
        self.tp, self.R, self.cache = tp, R, {}

    def __call__(self, slot):
        t = self.cache.get(slot)
        if t is None:
            tp, R = self.tp, self.R
            w = int(R[slot, K.OPW])
            data = tp.saved_value(slot).copy()
            if not rg_of(w):     # a constant: ops on it are constants too, not records
                t = self.cache[slot] = _const(data)  # (whose tangents would be 0 * inf)
                return t
            tp.hold(slot)
            t = self.cache[slot] = _graph(data, tp, tp.gid(slot), name_of(w))
        return t


# every unary op's vjp rule on tensors; a Python float constant meets tensors as a weak
# scalar, so lit() is the constant itself
_UNARY_VJP = {getattr(K, u.opcode): codegen.tensor_rule(u, {"ops": ops, "np": np,
                                                          "_lit": lambda like, c: c})
              for u in rules.UNARY}
_BINARY_VJP = {getattr(K, b.opcode): codegen.tensor_rule2(b, {"ops": ops, "np": np})
               for b in rules.BINARY}
# each unary VJP rule's partials in x and y (calculus.py), on tensors: a UVJP record's VJP
_UNARY_D2 = {getattr(K, u.opcode): p for u in rules.UNARY
             if (p := codegen.tensor_partials(u, {"ops": ops, "np": np,
                                                  "_lit": lambda like, c: c})) is not None}


def _floor_at(t, c):
    return ops.clamp(t, min=c)


def _softplus(t):       # log(1 + exp(t)) without overflow
    return ops.relu(t) + ops.log(1.0 + ops.exp(-ops.abs(t)))


_LOSS_PARTIALS = {getattr(K, loss.opcode): codegen.tensor_loss(
    loss, {"ops": ops, "np": np, "_floor_at": _floor_at, "_softplus": _softplus})
    for loss in rules.LOSSES}


_READS = K.reads_table().tolist()
_QUIET = contextlib.nullcontext()


def unary_vjp(op, a, r, f0, f1, R, g, h):
    """Unary record r's input gradient for g: the op's own vjp rule (rules.py) on tensors; a
    rule sees only the values its record saved (None for the others)."""
    reads = _READS[op]
    d = _UNARY_VJP[op](g, h(a) if reads & K.R_A else None, h(r) if reads & K.R_OUT else None,
                       f0, f1)
    if not isinstance(d, Tensor):     # a constant rule (0.0: exponent 0, sign, floor)
        d = _const(np.full(_shape(R, a), d, g.data.dtype))
    return d


def _vjp(op, r, R, F, iar, g, h, quiet=False):
    """Input gradients [(slot, tensor)] of record r for output gradient g (a Tensor).
    quiet: the caller already ignores floating-point warnings (a recorded backward)."""
    if K.NEG <= op <= K.WHERE:
        row = R[r].tolist()
        reads = _READS[op]
        a, b, c = row[K.A], row[K.B], row[K.C]
        f0, f1 = float(F[r, K.F0]), float(F[r, K.F1])
        if op < K.UNARY_END:
            if quiet:
                return [(a, unary_vjp(op, a, r, f0, f1, R, g, h))]
            with np.errstate(all="ignore"):   # e.g. log of a negative base: NaN
                return [(a, unary_vjp(op, a, r, f0, f1, R, g, h))]
        sa, sb = _shape(R, a), _shape(R, b)
        A = h(a) if reads & K.R_A else None
        B = h(b) if reads & K.R_B else None
        out = h(r) if reads & K.R_OUT else None
        if op == K.POW:
            # the rule's first derivatives, written as a product so that its derivative in
            # B at B == 0 stays exact (see _pow_vjp); tests/test_registry.py checks that
            # the two agree
            wanted = (rg_of(int(R[a, K.OPW])), rg_of(int(R[b, K.OPW])))
            da, db = _pow_vjp(g, A, B, out, wanted)
        else:                        # the op's own vjp rules (rules.py), on tensors, for
            cnd = h(c) if op == K.WHERE else None        # the inputs that require grad
            wanted = (rg_of(int(R[a, K.OPW])), rg_of(int(R[b, K.OPW])))
            with np.errstate(all="ignore") if not quiet else _QUIET:
                da, db = (rule(g, A, B, out, cnd) if want else None
                          for rule, want in zip(_BINARY_VJP[op], wanted))
            da, db = (d if isinstance(d, Tensor) or d is None else
                      _const(np.full(g.data.shape, d)) for d in (da, db))
        return [(s, _unbroadcast(d, sh)) for s, d, sh in ((a, da, sa), (b, db, sb))
                if d is not None]
    a, b, c = (int(R[r, f]) for f in (K.A, K.B, K.C))
    f0, f1 = float(F[r, K.F0]), float(F[r, K.F1])
    A = h(a) if a >= 0 else None
    if op == K.UVJP:         # out = a * du(x, y): the rule again for a, its partials for x, y
        fop = int(R[r, K.P0])
        X = h(b) if b >= 0 else None
        Y = h(c) if c >= 0 else None
        shape = _shape(R, r)
        with np.errstate(all="ignore") if not quiet else _QUIET:
            parts = [(a, _UNARY_VJP[fop](g, X, Y, f0, f1))]
            fx, fy = _UNARY_D2[fop]
            if b >= 0:
                parts.append((b, fx(A, X, Y, f0, f1)))
            if c >= 0:
                parts.append((c, fy(A, X, Y, f0, f1)))
        out = []
        for k, (s, d) in enumerate(parts):
            if not isinstance(d, Tensor):
                d = _const(np.full(shape, d, g.data.dtype))
            out.append((s, d if k == 0 else g * d))
        return out
    if op in (K.SUM, K.MEAN):
        mask = int(R[r, K.P0])
        sa = A.data.shape
        keep = tuple(1 if mask >> d & 1 else s for d, s in enumerate(sa))
        d = ops.expand(ops.reshape(g, keep), *sa)
        return [(a, d * f0 if op == K.MEAN else d)]
    if op == K.EXTREME:
        out = h(r)
        m = (A.data == out.data).astype(A.data.dtype)
        return [(a, g * _const(m / max(m.sum(), 1)))]
    if op == K.GATHER:
        io, ln = int(R[r, K.P0]), int(R[r, K.P1])
        return [(a, ops.scatter(g, iar[io:io + ln], A.data.shape))]
    if op == K.SCATTER:
        io, ln = int(R[r, K.P0]), int(R[r, K.P1])
        return [(a, ops.take(g, iar[io:io + ln], A.data.shape))]
    if op == K.RESHAPE:
        return [(a, ops.reshape(g, A.data.shape))]
    if op == K.TRANSPOSE:
        return [(a, ops.transpose(g, -1, -2))]
    if op == K.CAT:
        io = int(R[r, K.P0])
        k, outer, inner, mtot = (int(v) for v in iar[io:io + 4])
        res = []
        for q in range(k):
            s, mid, off = (int(v) for v in iar[io + 4 + 3 * q:io + 7 + 3 * q])
            idx = ((np.arange(outer)[:, None, None] * mtot + off + np.arange(mid)[None, :, None])
                   * inner + np.arange(inner)[None, None, :])
            res.append((s, ops.take(g, idx.reshape(-1), _shape(R, s))))
        return res
    if op in (K.SOFTMAX, K.LOGSOFTMAX):
        out = h(r)
        D, inner = int(R[r, K.P0]), int(R[r, K.P1])
        g3, y3 = _along(g, D, inner), _along(out, D, inner)
        if op == K.SOFTMAX:
            d3 = y3 * (g3 - ops.sum(g3 * y3, dim=1, keepdim=True))
        else:
            d3 = g3 - ops.exp(y3) * ops.sum(g3, dim=1, keepdim=True)
        return [(a, ops.reshape(d3, A.data.shape))]
    if op in (K.BCEWL, K.BCE):     # the loss's own partials (rules.LOSSES), on tensors
        B = h(b)
        P = h(c) if c >= 0 else 1.0
        gg = g * f0 if int(R[r, K.P1]) == 1 else g
        dx, dy, dp = _LOSS_PARTIALS[op]
        res = [(a, gg * dx(A, B, P)), (b, gg * dy(A, B, P))]
        if c >= 0:
            res.append((c, _unbroadcast(gg * dp(A, B, P), P.data.shape)))
        return res
    if op == K.NLL:
        io, cnt = int(R[r, K.P0]), int(R[r, K.P1])
        coef = _const(-h(b).data)
        gv = g if F[r, K.F0] == 0.0 else ops.expand(ops.reshape(g, (1,)), cnt)
        return [(a, ops.scatter(ops.reshape(gv, (cnt,)) * coef, iar[io:io + cnt],
                                A.data.shape))]
    if op == K.MATMUL:      # only the products an input that requires grad needs
        B = h(b)
        wa, wb = rg_of(int(R[a, K.OPW])), rg_of(int(R[b, K.OPW]))
        if A.ndim == 1 and B.ndim == 1:
            return [(s, g * o) for s, o, want in ((a, B, wa), (b, A, wb)) if want]
        a2 = ops.unsqueeze(A, 0) if A.ndim == 1 else A
        b2 = ops.unsqueeze(B, 1) if B.ndim == 1 else B
        g2 = g
        if A.ndim == 1:
            g2 = ops.unsqueeze(g2, -2)
        if B.ndim == 1:
            g2 = ops.unsqueeze(g2, -1)
        res = []
        if wa:
            ga = _unbroadcast(ops.matmul(g2, ops.transpose(b2, -1, -2)), a2.data.shape)
            res.append((a, _as_shape(ga, A.data.shape)))
        if wb:
            gb = _unbroadcast(ops.matmul(ops.transpose(a2, -1, -2), g2), b2.data.shape)
            res.append((b, _as_shape(gb, B.data.shape)))
        return res
    if op == K.CAST:
        return [(a, ops.to_dtype(g, A.data.dtype))]
    if op in pyops.RULES:          # linear algebra: its rule's VJP on tensors
        return pyops.RULES[op].recorded(R, r, g, h)
    raise RuntimeError(f"no recorded VJP for opcode {op}")


def backward_ops(out, inputs):
    """Gradients of scalar `out` w.r.t. `inputs`, computed with recorded ops."""
    tp = T._tls.tape
    if not tp.save_all or out._tape is not tp:
        raise RuntimeError("backward_ops runs inside a trace (func.hessian)")
    root = tp.local(out._gid)
    # we append while walking: keep our own copy, and no view of the tape's buffer (a
    # live view would make every append copy the whole buffer, see Tape.append)
    R = tp.records()[0].copy()
    F = R.view(np.float64)
    iar = tp.iar[:tp.itop].copy()
    h = _Handles(tp, R)
    grads = {root: _const(np.ones(out.data.shape, out.data.dtype))}
    for r in range(root, -1, -1):
        g = grads.pop(r, None)
        if g is None:
            continue
        op = op_of(int(R[r, K.OPW]))
        if op == K.INPUT:
            grads[r] = g          # keep it: it is an answer
            continue
        if op == K.DEAD:
            raise RuntimeError("the function used a tensor whose graph was freed")
        for s, d in _vjp(op, r, R, F, iar, g, h):
            if s < 0 or not rg_of(int(R[s, K.OPW])):
                continue
            grads[s] = d if s not in grads else grads[s] + d
    result = []
    for x in inputs:
        slot = tp.local(x._snap) if x._snap is not None and x._snaptape is tp else -1
        g = grads.get(slot)
        result.append(g if g is not None else _const(np.zeros(x.data.shape, x.data.dtype)))
    return result


def grad_function(fn, argnums):
    """fn's gradient w.r.t. the arguments in argnums, as a function built from ops."""
    def g(*args):
        out = fn(*args)
        if not isinstance(out, Tensor) or out.data.size != 1:
            raise RuntimeError("hessian needs a function returning a scalar tensor")
        res = backward_ops(out, [args[j] for j in argnums])
        return res[0] if len(res) == 1 else tuple(res)
    return g
