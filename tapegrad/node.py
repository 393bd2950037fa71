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
        R, _ = tp.records()
        try:
            op = op_of(int(R[loc, K.OPW]))
            if op == K.CAT:
                io = int(R[loc, K.P0])
                ins = [int(tp.iar[io + 4 + 3 * q]) for q in range(int(tp.iar[io]))]
            else:
                ins = [int(s) for s in R[loc, K.A:K.C + 1] if s >= 0]
                if op in (K.WHERE,):
                    ins = ins[:2]
                elif op == K.NLL:
                    ins = ins[:1] + [-1]
            out = []
            for s in ins:
                if s < 0:
                    out.append((None, 0))
                    continue
                w = int(R[s, K.OPW])
                g = tp.gid(s)
                if op_of(w) == K.INPUT:
                    leaf = tp.leaves.get(g)
                    out.append((AccumulateGrad(leaf) if leaf is not None else None, 0))
                else:
                    out.append((Node(tp, g, name_of(w)), 0))
            return tuple(out)
        finally:
            del R

    def __eq__(self, other):
        return isinstance(other, Node) and other._tape is self._tape and other._gid == self._gid

    def __hash__(self):
        return hash((id(self._tape), self._gid))

    def __repr__(self):
        return f"<{self.name()} object at {hex(id(self))}>"


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
