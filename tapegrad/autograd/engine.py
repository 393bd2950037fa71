"""backward() and grad(): seed the roots, run the compiled sweep, read gradients out.

The sweep runs in compiled segments; it stops only at records whose VJP runs here in
Python (matrix products through numpy's BLAS, dtype casts) or where the dtype changes.
A graph without matmuls or casts is one call.
"""
import numpy as np

from .. import kernels as K
from ..kernels import dtype_of, GEMM, name_of, ndim_of, op_of, rg_of
from .. import tape as T
from ..node import AccumulateGrad, Node  # noqa: F401 - tapegrad.autograd.Node, as in torch
from ..tensor import Tensor, Size, dtype_name

_REDS = K.reads_table()
_NO_CHAINS = np.empty(0, np.int64)     # an eager sweep has no decoded scalar chains
_NO_DIRTY = np.zeros(0, np.int64)


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
    op = op_of(int(R[r, K.OPW]))
    bits = int(_REDS[op])
    for bit, field in ((K.R_A, K.A), (K.R_B, K.B), (K.R_C, K.C), (K.R_OUT, -1)):
        if not bits & bit:
            continue
        s = r if field < 0 else int(R[r, field])
        info = tp.dirty.get(tp.gid(s))
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
    return RuntimeError("a value saved for backward was modified by an in-place operation")


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


def _reverse(R, F, vals, grads, goff, touched, freed, dirty_at, iar, start, operands, dirty):
    """Run the reverse sweep from record `start` down to 0 in compiled segments.

    vals and grads are (float32, float64) pairs; operands(r) gives a matmul record's two
    input arrays and dirty(r) the exception for a modified saved value.
    """
    r = start
    dt = dtype_of(int(R[r, K.OPW]))
    while r >= 0:
        status, r = K.sweep(R, F, vals[dt], grads[dt], goff, touched, freed, dirty_at,
                            _REDS, iar, r, 0, dt, GEMM, _NO_CHAINS)
        if status == K.ST_DONE:
            return
        if status == K.ST_PYTHON:
            op = op_of(int(R[r, K.OPW]))
            if op == K.MATMUL:
                a, b = operands(r)
                _matmul_vjp(a, b, R, r, grads, goff, touched)
            elif op == K.CAST:
                _cast_vjp(R, r, grads, goff, touched)
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


def _run(tp, seeds, retain_graph):
    """Sweep the tape from the seeded slots; returns (grads, goff, touched)."""
    R, F = tp.records()
    try:
        n = tp.n
        goff = np.empty(n, np.int64)
        t0, t1 = K.grad_offsets(R, n, goff)
        grads = tp.grad_buffers(t0, t1)
        touched = np.zeros(n, np.uint8)
        freed = tp.freed_flags()
        if tp.dirty:
            dirty_at = np.zeros(n, np.int64)
            for g, (count, _) in tp.dirty.items():
                loc = tp.local(g)
                if loc >= 0:
                    dirty_at[loc] = count
        else:
            dirty_at = _NO_DIRTY
        start = 0
        for loc, val in seeds:
            _acc(grads[dtype_of(int(R[loc, K.OPW]))], goff, R, touched, loc, val)
            start = max(start, loc)
        _reverse(R, F, tp.arena, grads, goff, touched, freed, dirty_at, tp.iar, start,
                lambda r: tp.pyrefs[tp.gid(r)], lambda r, R=R: _dirty_error(tp, R, r))
        if not retain_graph:
            freed[:n] |= touched
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
    if t._grad is None:
        t._grad = Tensor(np.array(g, dtype=t.data.dtype, copy=True))
    else:
        t._grad.data += g


def backward(tensors, grad_tensors=None, retain_graph=None, inputs=None):
    """Accumulate d(tensors)/d(leaf) into every reachable leaf's ``.grad``.

    ``grad_tensors`` holds one gradient per output (needed for non-scalar outputs: the
    result is then a vector-Jacobian product). Unless ``retain_graph`` is true, the graph
    is freed, and a second backward through it raises.
    """
    outs = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
    if grad_tensors is None:
        gts = [None] * len(outs)
    else:
        gts = list(grad_tensors) if isinstance(grad_tensors, (list, tuple)) else [grad_tensors]
    if len(gts) != len(outs):
        raise RuntimeError(f"got {len(gts)} gradients for {len(outs)} outputs")
    seeds = [(t, _seed(t, g, i)) for i, (t, g) in enumerate(zip(outs, gts))]
    if inputs is not None:
        grads = grad(outs, inputs, gts, retain_graph=retain_graph, allow_unused=True)
        for x, g in zip(inputs, grads):
            if g is not None:
                _accumulate(x, g.data)
        return
    for t, s in seeds:
        if t._tape is None:      # backward on a leaf: its gradient is the seed itself
            _accumulate(t, s)
    graph = [(t, s) for t, s in seeds if t._tape is not None]
    if not graph:
        return
    tp = _graph_tape([t for t, _ in graph])
    locs = []
    for t, s in graph:
        loc = tp.local(t._gid)
        if loc < 0:
            raise _second_time()
        locs.append((loc, s))
    grads, goff, touched, R = _run(tp, locs, bool(retain_graph))
    try:
        for g, leaf in list(tp.leaves.items()):
            loc = tp.local(g)
            if loc >= 0 and touched[loc]:
                _accumulate(leaf, _read(tp, R, grads, goff, loc))
        for g, ref in list(tp.retained.items()):
            t = ref()
            loc = tp.local(g)
            if t is not None and loc >= 0 and touched[loc]:
                _accumulate(t, _read(tp, R, grads, goff, loc))
    finally:
        del R
    if not retain_graph:
        tp.collect()


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Return d(outputs)/d(inputs) as a tuple, without touching any ``.grad``.

    >>> import tapegrad as tg
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> (gx,) = tg.autograd.grad((x ** 2).sum(), x)
    >>> gx
    tensor([2., 4.])
    """
    if create_graph:
        raise NotImplementedError("create_graph=True (higher-order gradients) is not "
                                  "supported yet")
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if grad_outputs is None:
        gos = [None] * len(outs)
    else:
        gos = list(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
    for i, x in enumerate(ins):
        if not isinstance(x, Tensor) or not x._rg:
            raise _no_grad_error(i) if isinstance(x, Tensor) else TypeError(
                f"inputs[{i}] is not a Tensor")
    seeds = [(t, _seed(t, g, i)) for i, (t, g) in enumerate(zip(outs, gos))]
    result = [None] * len(ins)
    graph = [(t, s) for t, s in seeds if t._tape is not None]
    for t, s in seeds:
        if t._tape is None:
            for j, x in enumerate(ins):
                if x is t:
                    result[j] = s.copy() if result[j] is None else result[j] + s
    if graph:
        tp = _graph_tape([t for t, _ in graph])
        locs = []
        for t, s in graph:
            loc = tp.local(t._gid)
            if loc < 0:
                raise _second_time()
            locs.append((loc, s))
        grads, goff, touched, R = _run(tp, locs, bool(retain_graph))
        try:
            for j, x in enumerate(ins):
                if x._tape is None:
                    slots = [tp.local(g) for g, leaf in tp.leaves.items() if leaf is x]
                else:
                    slots = [tp.local(x._gid)] if x._tape is tp else []
                for loc in slots:
                    if loc >= 0 and touched[loc]:
                        v = _read(tp, R, grads, goff, loc)
                        result[j] = v.copy() if result[j] is None else result[j] + v
        finally:
            del R
        if not retain_graph:
            tp.collect()
    out = []
    for j, (x, g) in enumerate(zip(ins, result)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (inputs[{j}]) appears to not have been "
                    f"used in the graph. Set allow_unused=True if this is the desired behavior.")
            out.append(None)
        else:
            out.append(Tensor(np.asarray(g, dtype=x.data.dtype)))
    return tuple(out)
