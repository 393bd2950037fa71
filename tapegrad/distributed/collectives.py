"""Collectives on tensors, in place as torch.distributed defines them, over MPI.

Every collective first checks that all ranks passed tensors of one shape and dtype (one
small ``allgather`` of the signatures) and raises the same clear error on every rank when
they did not: MPI itself would silently truncate, reinterpret bytes or hang. Then it runs
the MPI collective on the tensor's own memory when that is contiguous (else on a copy,
written back). ``async_op=True`` starts the non-blocking form and returns a ``Work``;
the tensor must not be read or written until ``wait()`` returns.

Gradients do not flow through collectives (as in PyTorch, they are not autograd ops): a
collective writes the tensor's data as an update under ``no_grad`` would, bumping its
version counter.
"""
import enum

import numpy as np

from ..ops.inplace import _mark_modified, _unrecorded_write
from ..tensor import Tensor
from .process_group import _group, _mpi


class ReduceOp(enum.Enum):
    """How ``all_reduce`` and ``reduce`` combine the ranks' tensors."""
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7

    def __repr__(self):
        return f"<RedOpType.{self.name}: {self.value}>"


def _mpi_op(MPI, op):
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a tapegrad.distributed.ReduceOp (SUM, AVG, PRODUCT, MIN, "
                        f"MAX, BAND, BOR, BXOR), not {op!r}")
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


class Work:
    """The handle of a collective started with ``async_op=True``."""

    def __init__(self, request, finish=None, keep=()):
        self._request, self._finish, self._keep = request, finish, keep
        self._done = False

    def wait(self, timeout=None):
        """Block until the collective has finished on this rank (and its result is in the
        tensors); returns True."""
        if not self._done:
            self._request.Wait()
            self._complete()
        return True

    def is_completed(self):
        if not self._done and self._request.Test():
            self._complete()
        return self._done

    def is_success(self):
        return self.is_completed()

    def _complete(self):
        self._done = True
        if self._finish is not None:
            self._finish()
        self._keep = ()

    def result(self):
        self.wait()
        return []

    def __repr__(self):
        return f"<Work {'completed' if self._done else 'pending'}>"


# ---- arguments and their agreement across ranks -------------------------------------------
def _tensor(t, name):
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a tapegrad.Tensor, not {type(t).__name__}")
    if t._data.dtype == np.float16:
        raise TypeError(f"{name} is float16, which MPI has no type for; use float32")
    return t


def _signature(t):
    return (tuple(t._data.shape), t._data.dtype.str)


def _agree(g, what, mine):
    """All ranks' `mine` (a small picklable value) must be equal; else every rank raises."""
    if g.size == 1:
        return
    seen = g.comm.allgather(mine)
    if any(s != seen[0] for s in seen):
        per = "; ".join(f"rank {r}: {_describe(s)}" for r, s in enumerate(seen))
        raise ValueError(f"{what}: the ranks passed different tensors ({per}). Every rank "
                         f"must pass tensors of the same shape and dtype.")


def _describe(sig):
    if isinstance(sig, tuple) and len(sig) == 2 and isinstance(sig[1], str):
        return f"shape {list(sig[0])} {np.dtype(sig[1])}"
    return repr(sig)


def _rank_arg(g, what, rank, group_rank, default=0):
    r = group_rank if rank is None else rank
    r = default if r is None else r
    if not isinstance(r, (int, np.integer)) or not 0 <= int(r) < g.size:
        raise ValueError(f"{what}: rank {r!r} is not in this world of {g.size} process(es) "
                         f"(ranks 0 .. {g.size - 1})")
    return int(r)


def _buffer(t):
    """(array MPI works on, write_back or None): the tensor's memory when contiguous."""
    a = t._data
    if a.flags.c_contiguous and a.flags.writeable:
        return a, None
    if not a.flags.writeable:
        raise RuntimeError("a collective cannot write into a tensor whose memory is read-only "
                           "(from_numpy of a read-only array); pass a copy: t = t.clone()")
    buf = np.ascontiguousarray(a)
    return buf, lambda: np.copyto(a, buf)


def _nothing():
    pass


def _written(t, back=None, then=None):
    def finish():
        if back is not None:
            back()
        if then is not None:
            then()
        _mark_modified(t)
    return finish


def _run(async_op, start, blocking, finish, keep):
    if async_op:
        return Work(start(), finish, keep)
    blocking()
    finish()
    return None


# ---- the collectives --------------------------------------------------------------------------
def _reduction(what, tensor, op, group, root_arg=None):
    """The checks and buffer of all_reduce and reduce: (group, MPI, MPI op, root, buffer,
    write-back)."""
    g = _group(group)
    _tensor(tensor, f"{what}: tensor")
    root = _rank_arg(g, f"{what}: dst", *root_arg) if root_arg is not None else None
    MPI = _mpi()
    mop = _mpi_op(MPI, op)
    if op is ReduceOp.AVG and tensor._data.dtype.kind not in "fc":
        raise ValueError(f"{what}: ReduceOp.AVG needs a floating point tensor, got "
                         f"{tensor._data.dtype}; use SUM and divide")
    _agree(g, what, _signature(tensor))
    _unrecorded_write()
    return (g, MPI, mop, root) + _buffer(tensor)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Combine ``tensor`` over all ranks with ``op``; every rank gets the result in place."""
    g, MPI, mop, _, buf, back = _reduction("all_reduce", tensor, op, group)
    then = _averager(op, buf, g.size)
    return _run(async_op, lambda: g.comm.Iallreduce(MPI.IN_PLACE, buf, op=mop),
                lambda: g.comm.Allreduce(MPI.IN_PLACE, buf, op=mop),
                _written(tensor, back, then), (buf,))


def reduce(tensor, dst=None, op=ReduceOp.SUM, group=None, async_op=False, group_dst=None):
    """Combine ``tensor`` over all ranks into rank ``dst``'s tensor (the others' tensors are
    left as they were)."""
    g, MPI, mop, root, buf, back = _reduction("reduce", tensor, op, group, (dst, group_dst))
    if g.rank == root:
        send, recv = MPI.IN_PLACE, buf
        finish = _written(tensor, back, _averager(op, buf, g.size))
    else:
        send, recv = buf, None
        finish = _nothing
    return _run(async_op, lambda: g.comm.Ireduce(send, recv, op=mop, root=root),
                lambda: g.comm.Reduce(send, recv, op=mop, root=root), finish,
                (buf,))


def broadcast(tensor, src=None, group=None, async_op=False, group_src=None):
    """Copy rank ``src``'s tensor into every other rank's tensor."""
    g = _group(group)
    _tensor(tensor, "broadcast: tensor")
    root = _rank_arg(g, "broadcast: src", src, group_src)
    _agree(g, "broadcast", _signature(tensor))
    return _broadcast(g, tensor, root, async_op)


def _broadcast(g, tensor, root, async_op=False):
    """broadcast without the agreement check (for callers that made sure already)."""
    _unrecorded_write()
    buf, back = _buffer(tensor)
    finish = _written(tensor, back) if g.rank != root else _nothing
    return _run(async_op, lambda: g.comm.Ibcast(buf, root=root),
                lambda: g.comm.Bcast(buf, root=root), finish, (buf,))


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """``tensor_list[r]`` gets rank r's ``tensor``, on every rank."""
    g = _group(group)
    _tensor(tensor, "all_gather: tensor")
    outs = _out_list(g, "all_gather", "tensor_list", tensor_list, tensor)
    _agree(g, "all_gather", _signature(tensor))
    _unrecorded_write()
    send = np.ascontiguousarray(tensor._data)
    recv = np.empty((g.size,) + send.shape, send.dtype)

    def finish():
        for o, part in zip(outs, recv):
            np.copyto(o._data, part)
            _mark_modified(o)
    return _run(async_op, lambda: g.comm.Iallgather(send, recv),
                lambda: g.comm.Allgather(send, recv), finish, (send, recv))


def gather(tensor, gather_list=None, dst=None, group=None, async_op=False, group_dst=None):
    """Rank ``dst``'s ``gather_list[r]`` gets rank r's ``tensor``; other ranks pass no list."""
    g = _group(group)
    _tensor(tensor, "gather: tensor")
    root = _rank_arg(g, "gather: dst", dst, group_dst)
    if g.rank == root:
        outs = _out_list(g, "gather", "gather_list", gather_list, tensor)
    elif gather_list:
        raise ValueError("gather: Argument ``gather_list`` must NOT be specified on "
                         "non-destination ranks.")
    _agree(g, "gather", _signature(tensor))
    _unrecorded_write()
    send = np.ascontiguousarray(tensor._data)
    recv = np.empty((g.size,) + send.shape, send.dtype) if g.rank == root else None

    def finish():
        if recv is not None:
            for o, part in zip(outs, recv):
                np.copyto(o._data, part)
                _mark_modified(o)
    return _run(async_op, lambda: g.comm.Igather(send, recv, root=root),
                lambda: g.comm.Gather(send, recv, root=root), finish, (send, recv))


def scatter(tensor, scatter_list=None, src=None, group=None, async_op=False, group_src=None):
    """Rank r's ``tensor`` gets rank ``src``'s ``scatter_list[r]``; other ranks pass no
    list."""
    g = _group(group)
    _tensor(tensor, "scatter: tensor")
    root = _rank_arg(g, "scatter: src", src, group_src)
    if g.rank == root:
        ins = _out_list(g, "scatter", "scatter_list", scatter_list, tensor)
        send = np.stack([np.ascontiguousarray(t._data) for t in ins])
    elif scatter_list:
        raise ValueError("scatter: Argument ``scatter_list`` must NOT be specified on "
                         "non-source ranks.")
    else:
        send = None
    _agree(g, "scatter", _signature(tensor))
    _unrecorded_write()
    buf, back = _buffer(tensor)
    return _run(async_op, lambda: g.comm.Iscatter(send, buf, root=root),
                lambda: g.comm.Scatter(send, buf, root=root), _written(tensor, back),
                (send, buf))


def all_gather_object(object_list, obj, group=None):
    """``object_list[r]`` becomes rank r's ``obj`` (any picklable object), on every rank."""
    g = _group(group)
    if not isinstance(object_list, list) or len(object_list) != g.size:
        raise ValueError(f"all_gather_object: object_list must be a list of world_size "
                         f"({g.size}) entries to fill")
    object_list[:] = g.comm.allgather(obj)


def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """Replace ``object_list``'s entries with rank ``src``'s (picklable objects)."""
    g = _group(group)
    root = _rank_arg(g, "broadcast_object_list: src", src, group_src)
    if not isinstance(object_list, list):
        raise TypeError("broadcast_object_list: object_list must be a list")
    got = g.comm.bcast(list(object_list), root=root)
    if len(got) != len(object_list):
        raise ValueError(f"broadcast_object_list: rank {root} sent {len(got)} objects into a "
                         f"list of {len(object_list)}; pass lists of one length on every rank")
    object_list[:] = got


def _out_list(g, what, name, lst, like):
    if not isinstance(lst, (list, tuple)) or len(lst) != g.size:
        got = f"{len(lst)} entries" if isinstance(lst, (list, tuple)) else type(lst).__name__
        raise ValueError(f"{what}: {name} must be a list of world_size ({g.size}) tensors, "
                         f"got {got}")
    for i, t in enumerate(lst):
        _tensor(t, f"{what}: {name}[{i}]")
        if _signature(t) != _signature(like):
            raise ValueError(f"{what}: {name}[{i}] has {_describe(_signature(t))} but the "
                             f"tensor has {_describe(_signature(like))}; they must match")
        if not t._data.flags.writeable:
            raise RuntimeError(f"{what}: {name}[{i}] is read-only; pass a writable tensor")
    return list(lst)


def _averager(op, buf, size):
    if op is not ReduceOp.AVG or size == 1:
        return None

    def divide():
        np.divide(buf, size, out=buf)
    return divide
