"""grad_fn: the backward nodes, thin views of tape records made on demand.

Its own module so that tensor.py (whose ``grad_fn`` makes them) and autograd.py (which
exports them) need not import each other.
"""
from . import kernels as K
from .kernels import name_of, op_of
from . import tape as T


class Node:
    """The backward function that produced a tensor (what ``grad_fn`` returns).

    It is a view of one tape record, made on demand: ``name()`` is the PyTorch-style
    name, ``next_functions`` the nodes of its inputs (``AccumulateGrad`` for leaves that
    require grad, None for constants).
    """
    __slots__ = ("_tape", "_gid", "_fn")

    def __init__(self, tape, gid, fn):
        self._tape, self._gid, self._fn = tape, gid, fn

    def name(self):
        return T.NAMES[self._fn]

    @property
    def next_functions(self):
        tp = self._tape
        loc = tp.local(self._gid)
        if loc < 0:
            return ()
        return tuple((node_of_slot(tp, s) if s >= 0 else None, 0)
                     for s in record_inputs(tp, loc))

    @property
    def metadata(self):
        """A dict for the user's own notes about this node (kept while the record lives)."""
        return _hooks_of(self).metadata

    def register_prehook(self, fn):
        """fn(grad_outputs) runs before this node's VJP; it may return new grad_outputs."""
        from .autograd import hooks
        return hooks.add(_hooks_of(self).pre, fn)

    def register_hook(self, fn):
        """fn(grad_inputs, grad_outputs) runs after this node's VJP; it may return new
        grad_inputs."""
        from .autograd import hooks
        return hooks.add(_hooks_of(self).post, fn)

    def __eq__(self, other):
        return isinstance(other, Node) and other._tape is self._tape and other._gid == self._gid

    def __hash__(self):
        return hash((id(self._tape), self._gid))

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"


def _hooks_of(node):
    from .autograd import hooks
    h = node._tape.hooks.get(node._gid)
    if h is None:
        h = node._tape.hooks[node._gid] = hooks.RecordHooks()
    return h


def record_inputs(tp, loc):
    """The input slots of record `loc` in PyTorch's next_functions order (-1: a constant)."""
    R, _ = tp.records()
    try:
        op = op_of(int(R[loc, K.OPW]))
        if op in (K.CAT, K.PYFN):
            io = int(R[loc, K.P0])
            return [int(tp.iar[io + 4 + 3 * q]) for q in range(int(tp.iar[io]))]
        if op == K.PYOUT:
            return []
        ins = [int(s) for s in R[loc, K.A:K.C + 1] if s >= 0]
        if op == K.WHERE:
            ins = ins[:2]
        elif op == K.NLL:
            ins = ins[:1] + [-1]
        return ins
    finally:
        del R


def node_of_slot(tp, s):
    """The node through which record `s`'s gradient flows: its op's Node, a custom
    Function's node, AccumulateGrad for a leaf that requires grad, or None."""
    R, _ = tp.records()
    try:
        w = int(R[s, K.OPW])
    finally:
        del R
    g = tp.gid(s)
    if op_of(w) == K.INPUT:
        leaf = tp.leaves.get(g)
        return AccumulateGrad(leaf) if leaf is not None else None
    ctx = tp.pyfns.get(g) if tp.pyfns else None
    if ctx is not None:
        return ctx
    return Node(tp, g, name_of(w))


class AccumulateGrad:
    """The node through which a leaf that requires grad receives its gradient."""
    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "torch::autograd::AccumulateGrad"

    def __eq__(self, other):
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"
