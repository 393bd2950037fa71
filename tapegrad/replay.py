"""Record once, replay compiled.

``trace`` runs a function once on a private tape that keeps every value, and freezes the
records into a ``Program``. A program can then be run again on new input values entirely
in compiled code: ``Program.forward`` (the replay), ``Program.reverse`` (the same sweep
backward() uses) and ``Program.tangent`` (forward mode), all on buffers private to the
program. ``compile(fn)`` caches one program per call signature and attaches each replay to
the caller's tape, so its outputs are ordinary tensors.
"""
import collections
import functools
import sys
import threading
import warnings

import numpy as np

from .autograd import engine as ag
from .compiled_call import record_call
from . import kernels as K
from .kernels import dtype_of, GEMM, name_of, ndim_of, op_of, rg_of
from . import pyops, tape as T
from .grad_mode import enable_grad
from .ops import _graph, _plain
from .ops.record import _tape
from .tensor import Tensor, grad_enabled

_CALL = T.name_id("CompiledInput")

# Programs kept per compiled function (and per set of keyword values), least recently used
# evicted beyond it. torch.compile allows 8 recompiles per code object
# (torch._dynamo.config.cache_size_limit), but after the first one it makes shapes dynamic,
# so 8 entries cover many shapes. A program here is specialised to its exact shapes: 64
# lets a loop cycle through a few dozen batch or sequence shapes and still replay, while a
# function fed ever new shapes holds at most 64 programs (each its records and every
# recorded value). Settable, like torch._dynamo.config.cache_size_limit.
cache_size_limit = 64


_STOPPED = object()     # trace() stopped at something a replay cannot repeat
_GUARD_RETRIES = 2      # recordings per signature whose baked values changed, then eager


def _guards_hold(prog, args):
    """Do the values prog's recording baked in (class indices) still hold for these args?"""
    for (kind, src), saved in prog.guards:
        now = args[src].data if kind == "arg" else src.data
        if now.shape != saved.shape or not np.array_equal(now, saved):
            return False
    return True
# Bumped by nn.Module when what a recording reads may have changed identity or behaviour (a
# parameter, buffer or submodule rebound, train/eval): every compiled function records
# again at its next call instead of replaying a program that refers to the old tensors.
_epoch = [0]


def invalidate():
    """Make every compiled function record afresh at its next call (nn.Module calls it)."""
    _epoch[0] += 1


class _LRU(collections.OrderedDict):
    """A dict whose get() refreshes an entry; add() evicts the least recently used entries
    beyond cache_size_limit and says whether it had to."""

    def get(self, key, default=None):
        try:
            v = self[key]
            self.move_to_end(key)
        except KeyError:       # absent, or evicted by another thread just now
            return default
        return v

    def add(self, key, value):
        self[key] = value
        evicted = False
        while len(self) > max(int(cache_size_limit), 1):
            try:
                self.popitem(last=False)
            except KeyError:
                break
            evicted = True
        return evicted


def _sigmoid_into(x, out):
    np.exp(-np.logaddexp(0, -x), out=out)     # 1 / (1 + exp(-x)) without overflow


_UFUNCS = {K.TANH: np.tanh, K.EXP: np.exp, K.LOG: np.log, K.SIN: np.sin, K.COS: np.cos,
           K.SIGMOID: _sigmoid_into}


_POOL = 4     # frames a program keeps for its compiled nodes (Program.give_frame)
_NO_PLAN = (np.empty(0, np.int64), np.empty((0, K.NPLAN), np.int64))   # chains not decoded yet


def ref_value(t, n):
    """The current value of tensor t that a compiled function captured (n elements when
    recorded); a clear error if it no longer fits the recording."""
    a = t.data
    if isinstance(a, np.generic):       # a numpy scalar (0-d results of some ops)
        a = np.asarray(a)
    if not isinstance(a, np.ndarray) or a.size != n:
        raise RuntimeError(
            f"compile: a tensor the function captured (not an argument) now holds "
            f"{'a ' + type(a).__name__ if not isinstance(a, np.ndarray) else f'shape {a.shape}'}"
            f" instead of the {n} elements it had when the function was recorded; pass it "
            f"as an argument, so that its shape is part of the signature")
    return a


def _record_shape(R, r):
    w = int(R[r, K.OPW])
    return tuple(int(v) for v in R[r, K.SH:K.SH + ndim_of(w)])


class _Frame:
    """One call's values buffers (float32, float64) in a program's layout, with views of
    where its inputs are written and its outputs read."""
    __slots__ = ("vals", "loads", "outs")

    def __init__(self, vals, loads, outs):
        self.vals, self.loads, self.outs = vals, loads, outs


class Program:
    """A frozen tape: records, every value, and where each input comes from."""

    def __init__(self, tape, sources, outputs, value_reads):
        R, _ = tape.records()
        self.n = tape.n
        self.R = R.copy()
        self.F = self.R.view(np.float64)
        del R
        self.iar = tape.iar[:tape.itop].copy()
        self.vals = (tape.arena[0][:tape.atop[0]].copy(), tape.arena[1][:tape.atop[1]].copy())
        self.goff = np.empty(self.n, np.int64)
        self.gsizes = K.grad_offsets(self.R, self.n, self.goff)
        self.sources = sources        # [(slot, ("arg", i) | ("ref", tensor))]
        self.outputs = outputs        # [slot]
        self.value_reads = value_reads
        ops = op_of(self.R[:, K.OPW])
        self.has_matmul = bool(np.any(ops == K.MATMUL))
        self.R[ops == K.MATMUL, K.P0:K.P1 + 1] = 0   # recording-time addresses: all on tape here
        dts = np.unique(dtype_of(self.R[:, K.OPW]))
        # one compiled call does forward and backward when nothing needs Python
        python_ops = [int(r) for r in np.flatnonzero(ops >= K.FIRST_PY)
                      if ops[r] != K.MATMUL or K._mm_dims(
                          self.R, int(r), int(GEMM[dtype_of(self.R[r, K.OPW])]))[3] == K.MM_NUMPY]
        python_ops += [r for r in np.flatnonzero(self.R[:, K.SIZE] >= K.NUMPY_UFUNC)
                       if K.to_numpy(int(ops[r]), int(self.R[r, K.SIZE]),
                                     dtype_of(int(self.R[r, K.OPW])))]
        self.single_call = bool(self.n and not python_ops and dts.size == 1)
        self.dt = int(dts[0]) if dts.size else 0
        self._R_all = None
        self._freed = np.zeros(self.n, np.uint8)
        self._chains = {}     # output slot -> sweep.plan_chains of the sweep from it
        self._node_chains = {}   # seeded slots -> the same, for a compiled node's sweep
        self._pool = []       # frames of calls whose backward is done (take_frame)
        self._scratch = threading.local()
        self._shapes = [_record_shape(self.R, r) for r in range(self.n)]
        # (dtype code, offset, size) of every input, for loading values without views
        self._load = [(dtype_of(int(self.R[slot, K.OPW])), int(self.R[slot, K.VOFF]),
                       int(self.R[slot, K.SIZE]), kind, src) for slot, (kind, src) in sources]
        # does a call need a graph: an argument it reads requires grad (fixed by the
        # signature), or a captured tensor does now
        self.rg_args = any(kind == "arg" and rg_of(int(self.R[slot, K.OPW]))
                           for slot, (kind, _) in sources)
        self.refs = [src for _, (kind, src) in sources if kind == "ref"]
        # a compiled node's inputs: (slot, argument index) of the arguments that require
        # grad, (slot, tensor) of the captured tensors (that may, at each call)
        self.rg_arg_slots = [(slot, src) for slot, (kind, src) in sources
                             if kind == "arg" and rg_of(int(self.R[slot, K.OPW]))]
        self.ref_slots = [(slot, src) for slot, (kind, src) in sources if kind == "ref"]
        self._grad_at = {}
        self.frame_nbytes = self.vals[0].nbytes + self.vals[1].nbytes

    def R_all(self):
        """The records with every argument marked as requiring grad (for func transforms)."""
        if self._R_all is None:
            R = self.R.copy()
            for slot, (kind, _) in self.sources:
                if kind == "arg":
                    R[slot, K.OPW] |= K.RG_BIT
            self._R_all = R
        return self._R_all

    # ---- buffers ------------------------------------------------------------------------
    def _view(self, vals, r):
        R = self.R
        o = int(R[r, K.VOFF])
        return vals[dtype_of(int(R[r, K.OPW]))][o:o + int(R[r, K.SIZE])].reshape(self._shapes[r])

    def scratch(self):
        """This thread's reusable (values, gradients) buffers. Constants stay in place
        between calls: a replay overwrites only inputs and computed records."""
        sc = self._scratch
        if not hasattr(sc, "vals"):
            sc.vals = (self.vals[0].copy(), self.vals[1].copy())
            sc.frame = self.frame(sc.vals)
            sc.grads = (np.empty(self.gsizes[0], np.float32), np.empty(self.gsizes[1], np.float64))
            sc.touched = np.empty(self.n, np.uint8)
        return sc

    def renew_grads(self):
        """This thread's gradient buffer now backs .grad tensors (a compiled node lent its
        regions): later sweeps get a new one."""
        sc = self._scratch
        g = list(sc.grads)
        g[self.dt] = np.empty_like(g[self.dt])
        sc.grads = tuple(g)

    def load(self, arrays, vals):
        """Write the inputs' current values into `vals` (args from `arrays`)."""
        for d, o, n, kind, src in self._load:
            a = arrays[src] if kind == "arg" else ref_value(src, n)
            vals[d][o:o + n] = a.ravel()

    # ---- the three compiled passes ---------------------------------------------------------
    def _segments(self, kernel, python_record, what):
        """Run a forward-order compiled pass (kernel(r, dt) -> (status, record)) over all
        records; python_record(r, op) runs a record the kernel hands back and returns
        False when the hand-back only meant a change of dtype."""
        R = self.R
        r, dt = 0, dtype_of(int(R[0, K.OPW])) if self.n else 0
        while r < self.n:
            status, r = kernel(r, dt)
            if status == K.ST_DONE:
                return
            if status == K.ST_BADOP:
                raise RuntimeError(f"internal error: the {what} met an unknown opcode "
                                   f"{op_of(int(R[r, K.OPW]))} at record {r}")
            if status != K.ST_PYTHON:
                raise RuntimeError(f"{what} stopped at record {r} (status {status})")
            if python_record(r, op_of(int(R[r, K.OPW]))):
                r += 1
            else:
                dt = 1 - dt

    def forward(self, vals):
        R, F, view = self.R, self.F, self._view

        def python_record(r, op):
            a = int(R[r, K.A])
            if op == K.MATMUL:
                np.matmul(view(vals, a), view(vals, int(R[r, K.B])), out=view(vals, r))
            elif op in _UFUNCS:        # a large transcendental record: numpy's SIMD version
                _UFUNCS[op](view(vals, a), out=view(vals, r))
            elif op == K.CAST:
                view(vals, r)[...] = view(vals, a)
            elif op in pyops.RULES:     # linear algebra: its rule's value
                ins = pyops.operands(R, r, lambda s: view(vals, s))
                pyops.RULES[op].forward(R, r, ins[:-1], ins[-1])
            else:
                return False
            return True
        self._segments(lambda r, dt: K.forward(R, F, vals[dt], self.iar, r, self.n, dt, GEMM),
                       python_record, "replay")

    def reverse(self, vals, seeds, R=None):
        """Gradients for every slot from seeds [(slot, array)]: (grads, touched)."""
        R = self.R if R is None else R
        sc = self.scratch()
        grads, touched = sc.grads, sc.touched
        touched[:] = 0
        start = 0
        for slot, g in seeds:
            ag._acc(grads[dtype_of(int(R[slot, K.OPW]))], self.goff, R, touched, slot,
                    np.asarray(g))
            start = max(start, slot)
        ag._reverse(R, R.view(np.float64), vals, grads, self.goff, touched, self._freed,
                   ag._NO_DIRTY,
                   self.iar, start,
                   lambda r: (self._view(vals, int(R[r, K.A])), self._view(vals, int(R[r, K.B])))
                   if op_of(int(R[r, K.OPW])) == K.MATMUL else
                   pyops.operands(R, r, lambda s: self._view(vals, s)),
                   lambda r: RuntimeError("a replayed program has no in-place state"))
        return grads, touched

    def frame(self, vals=None):
        """A _Frame over `vals` (default: a copy of the recording's values)."""
        if vals is None:
            vals = (self.vals[0].copy(), self.vals[1].copy())
        loads = [(vals[d][o:o + n].reshape(self._shapes[slot]) if kind == "arg"
                  else vals[d][o:o + n], kind, src)
                 for (slot, _), (d, o, n, kind, src) in zip(self.sources, self._load)]
        return _Frame(vals, loads, [self._view(vals, s) for s in self.outputs])

    def take_frame(self):
        """The frame of a call whose reverse sweep runs later (a compiled node's): one that
        a finished call gave back, else a new one."""
        try:
            return self._pool.pop()
        except IndexError:
            return self.frame()

    def give_frame(self, frame):
        """Take back a call's frame once its backward is done (a few are kept)."""
        if len(self._pool) < _POOL:
            self._pool.append(frame)

    def run(self, frame, args):
        """Replay forward on frame: load the arguments (`args`, tensors where the program
        has inputs) and the captured tensors' current values, then run every record."""
        for view, kind, src in frame.loads:
            if kind == "arg":
                view[...] = args[src]._data
            else:
                view[...] = ref_value(src, view.size).reshape(-1)
        if self.single_call:
            status, r = K.forward(self.R, self.F, frame.vals[self.dt], self.iar, 0, self.n,
                                  self.dt, GEMM)
            if status != K.ST_DONE:
                raise RuntimeError(f"replay stopped at record {r} (status {status})")
        else:
            self.forward(frame.vals)

    def node_reverse(self, vals, seeds):
        """One call's reverse sweep from seeds [(slot, array)], for its compiled node: on
        the recorded requires_grad flags, so only what needs a gradient gets one; one
        compiled call with the decoded scalar chains (the sweep value_and_grad runs) when
        no record needs Python. Returns (grads, touched) in this thread's scratch."""
        if not self.single_call:
            return self.reverse(vals, seeds)
        R, d = self.R, self.dt
        sc = self.scratch()
        grads, touched = sc.grads, sc.touched
        touched[:] = 0
        start = 0
        for slot, g in seeds:
            ag._acc(grads[d], self.goff, R, touched, slot, g)
            start = max(start, slot)
        self._seeded_reverse(vals, grads[d], touched, tuple(slot for slot, _ in seeds), start)
        return grads, touched

    def scalar_reverse(self, vals, out):
        """node_reverse from scalar slot `out` seeded with 1, for a single_call program:
        (this dtype's gradient buffer, touched) in this thread's scratch."""
        sc = self.scratch()
        G, touched = sc.grads[self.dt], sc.touched
        touched[:] = 0
        G[self.goff[out]] = 1
        touched[out] = 1
        self._seeded_reverse(vals, G, touched, (out,), out)
        return G, touched

    def _seeded_reverse(self, vals, G, touched, key, start):
        """The compiled reverse sweep from record `start` over gradients already seeded in
        G (seeded slots `key`), with the chains decoded after the first sweep from them."""
        d = self.dt
        status, r = K.program_reverse(self.R, self.F, vals[d], G, self.goff, touched,
                                      self._freed, ag._REDS, self.iar,
                                      *self._node_chains.get(key, _NO_PLAN), start, d, GEMM)
        if status != K.ST_DONE:
            raise RuntimeError(f"replay stopped at record {r} (status {status})")
        if key not in self._node_chains:     # later sweeps from these seeds reach the same
            self._node_chains[key] = K.plan_chains(self.R, self.goff, touched, self.n, d)

    def grad_at(self, sources):
        """[(offset, size, shape, slot)] of the gradients of sources [(slot, _)] in a
        single-dtype gradient buffer."""
        key = tuple(slot for slot, _ in sources)
        at = self._grad_at.get(key)
        if at is None:
            at = self._grad_at[key] = [(int(self.goff[s]), int(self.R[s, K.SIZE]),
                                        self._shapes[s], s) for s in key]
        return at

    def kernel_args(self, vals, sc, out):
        """sweep.value_and_grad's arguments before (dt, gemm): values from `vals`, gradients
        and touched flags in this thread's scratch buffers sc, the reverse sweep from `out`
        (with its decoded scalar chains once a first call has gone that way)."""
        R, d = self.R_all(), self.dt
        return (R, R.view(np.float64), vals[d], sc.grads[d], self.goff, sc.touched,
                self._freed, ag._REDS, self.iar, self.n, *self._chains.get(out, _NO_PLAN),
                out)

    def value_and_grad(self, vals, out):
        """Forward then reverse from scalar slot `out`, one compiled call (single_call)."""
        sc = self.scratch()
        status, r = K.value_and_grad(*self.kernel_args(vals, sc, out), self.dt, GEMM)
        if status != K.ST_DONE:
            raise RuntimeError(f"replay stopped at record {r} (status {status})")
        if out not in self._chains:     # every later sweep from out reaches the same records
            self._chains[out] = K.plan_chains(self.R_all(), self.goff, sc.touched, self.n,
                                              self.dt)
        return sc.grads, sc.touched

    def grad_region(self, grads, slot):
        """Slot's gradient in `grads`, shaped like its value (valid where touched)."""
        o = int(self.goff[slot])
        return grads[dtype_of(int(self.R[slot, K.OPW]))][o:o + int(self.R[slot, K.SIZE])].reshape(
            self._shapes[slot])

    def grad_of(self, grads, touched, slot):
        return self.grad_region(grads, slot) if touched[slot] else None

    def tangent(self, vals, tangents):
        """Tangents of every slot, given tangents {slot: array} of some inputs."""
        R, F = self.R, self.F
        tans = (np.zeros_like(vals[0]), np.zeros_like(vals[1]))
        for slot, t in tangents.items():
            self._view(tans, slot)[...] = t
        view = self._view

        def python_record(r, op):
            a = int(R[r, K.A])
            if op == K.MATMUL:           # d(a @ b) = da @ b + a @ db
                b = int(R[r, K.B])
                view(tans, r)[...] = np.matmul(view(tans, a), view(vals, b)) + \
                    np.matmul(view(vals, a), view(tans, b))
            elif op == K.CAST:
                view(tans, r)[...] = view(tans, a)
            elif op in pyops.RULES:
                ins = pyops.operands(R, r, lambda s: view(vals, s))
                view(tans, r)[...] = pyops.RULES[op].tangent(
                    R, r, ins[:-1], ins[-1], pyops.operands(R, r, lambda s: view(tans, s))[:-1])
            else:
                return False
            return True
        self._segments(lambda r, dt: K.tangent(R, F, vals[dt], tans[dt], self.iar, r, self.n,
                                               dt, GEMM), python_record, "tangent sweep")
        return tans

    def output_value(self, vals, i):
        return self._view(vals, self.outputs[i])


# ---- tracing ------------------------------------------------------------------------------------
def _substitute(x, tp):
    t = Tensor(x.data)
    t._rg = True       # record everything downstream of an argument, whatever its flag
    t._snaptape = tp   # marks it as traced (value reads are counted) before its first use
    return t


def trace(fn, args, kwargs=None):
    """Run fn once on a private tape that keeps every value; returns (Program, structure).

    Tensor arguments are traced as inputs; everything else is a constant baked into the
    program. The outputs must be a tensor or a tuple/list of tensors.
    """
    kwargs = kwargs or {}
    tp = T.Tape()
    subs = [_substitute(a, tp) if isinstance(a, Tensor) else a for a in args]
    tp.save_all = True
    tp.limit = sys.maxsize          # no collection while tracing
    tp.inputs_log = {}
    tp.value_reads = 0
    tp.guards = []
    old = T._tls.tape
    T._tls.tape = tp
    try:
        with enable_grad():
            out = fn(*subs, **kwargs)
        single = isinstance(out, Tensor)
        outs = [out] if single else list(out) if isinstance(out, (tuple, list)) else None
        if outs is None or not all(isinstance(o, Tensor) for o in outs):
            raise TypeError(f"a compiled or transformed function must return a tensor or a "
                            f"tuple of tensors, not {type(out).__name__}")
        slots = []
        for o in outs:
            if o._tape is not tp:       # an input or constant returned as is: give it a record
                from .ops import _reshape
                src = o if o._rg else _substitute(o, tp)
                o = _reshape(src, o.data.shape, _CALL)
            slots.append(tp.local(o._gid))
        ids = {id(s): i for i, s in enumerate(subs) if isinstance(s, Tensor)}
        sources = []
        for gid, t in tp.inputs_log.items():
            loc = tp.local(gid)
            if id(t) in ids:
                sources.append((loc, ("arg", ids[id(t)])))
            else:
                sources.append((loc, ("ref", t)))
        # the INPUT records of arguments carry the arguments' real requires_grad flags
        for loc, (kind, src) in sources:
            tp.set_requires_grad(loc, args[src].requires_grad if kind == "arg"
                                 else src.requires_grad)
        prog = Program(tp, sources, slots, tp.value_reads)
        prog.opaque = list(dict.fromkeys(tp.opaque))
        # values baked into the recording (class indices): by argument position, or the
        # tensor itself for one the function closes over
        prog.guards = [(("arg", ids[id(t)]) if id(t) in ids else ("ref", t), saved)
                       for t, saved in tp.guards]
    finally:
        T._tls.tape = old
        tp.save_all = False       # this tape is done; tensors that saw it are ordinary again
    return prog, single


# ---- compile ------------------------------------------------------------------------------------
def _quick_signature(args):
    """Cheap key for a compiled function's signature (shapes, dtypes, flags, constants)."""
    return tuple([(a._data.shape, a._data.dtype, a._rg) if isinstance(a, Tensor)
                  else (type(a), a) for a in args])


def _signature(args):
    sig = []
    for a in args:
        if isinstance(a, Tensor):
            sig.append(("T", a.data.shape, a.data.dtype.str, a.requires_grad))
        else:
            try:
                hash(a)
            except TypeError:
                raise TypeError(f"compile: non-tensor arguments must be hashable (they are "
                                f"baked into the recorded program); got {type(a).__name__}")
            sig.append(("C", type(a).__name__, a))
    return tuple(sig)


class Compiled:
    """A function whose tape is recorded once per signature and replayed in compiled code.

    Call it like the function. The first call with a new signature (argument shapes,
    dtypes, requires_grad flags, and the values of non-tensor arguments) records; later
    calls replay forward in compiled code and return ordinary tensors whose backward()
    runs the compiled reverse sweep. Python control flow that depends on tensor values is
    fixed when recording: if the function read a tensor's value while being recorded
    (item(), bool(), comparisons in an if...), tapegrad warns and runs it eagerly for that
    signature instead of replaying a possibly wrong branch.
    """

    def __init__(self, fn):
        self.fn = fn
        self.programs = _LRU()   # signature -> (Program or None (runs eagerly), single)
        self._recent = _LRU()    # _quick_signature -> (Program, single, epoch) that replays
        self._bound = _LRU()     # keyword values -> Compiled of fn with them bound
        self._guard_misses = {}  # signature -> times its recording's baked values changed
        self._warned = False
        functools.update_wrapper(self, fn)

    def _recorded_too_often(self, what, stacklevel=4):
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"compile: {getattr(self.fn, '__name__', 'fn')} was recorded for more than "
                f"tapegrad.replay.cache_size_limit ({cache_size_limit}) {what}; the least "
                f"recently used programs are dropped and recorded again when needed. Each "
                f"new shape is a new recording: pad inputs to a few fixed shapes, or call "
                f"the function uncompiled.", RuntimeWarning, stacklevel=stacklevel)

    def program(self, args):
        sig = _signature(args)
        entry = self.programs.get(sig)
        if entry is not None and entry[0] is not None and entry[0].guards \
                and not _guards_hold(entry[0], args):
            # the recording baked in other values (class indices): record again, and after
            # a few such changes run eagerly (a new recording per call would cost more)
            misses = self._guard_misses.get(sig, 0) + 1
            self._guard_misses[sig] = misses
            if misses > _GUARD_RETRIES:
                warnings.warn(
                    f"compile: {getattr(self.fn, '__name__', 'fn')} bakes integer values "
                    f"(class indices) into its recording, and they keep changing between "
                    f"calls, so this signature runs eagerly instead of replaying.",
                    RuntimeWarning, stacklevel=3)
                self.programs[sig] = (None, entry[1], entry[2])
                return None, entry[1]
            entry = None
        if entry is None or entry[2] != _epoch[0]:
            try:
                prog, single = trace(self.fn, args)
            except T.NotReplayable as e:    # stopped before it happened: nothing twice
                prog, single, what = _STOPPED, None, e.what
            if prog is _STOPPED:
                why = f"{what}, which a replay would not repeat"
            elif prog.opaque:
                why = (f"calls the custom autograd.Function {', '.join(prog.opaque)}, whose "
                       f"backward is Python code that a replay cannot run")
            elif prog.value_reads:
                why = ("read tensor values while being recorded (item(), bool(), a "
                       "comparison in an if...). Its control flow may depend on the data")
            else:
                why = None
            if why is None:
                entry = (prog, single)
            else:
                warnings.warn(f"compile: {getattr(self.fn, '__name__', 'fn')} {why}, so this "
                              f"signature runs eagerly instead of replaying.", RuntimeWarning,
                              stacklevel=3)
                entry = (None, single)
            entry += (_epoch[0],)
            if sig in self.programs:       # recorded again (a module changed): in place
                self.programs[sig] = entry
            elif self.programs.add(sig, entry):
                self._recorded_too_often("signatures (argument shapes, dtypes, flags, "
                                         "constants)")
        return entry[0], entry[1]

    def __call__(self, *args, **kwargs):
        if kwargs:     # keyword arguments are constants of the recording, like other
            # non-tensor arguments: one compiled function per set of keyword values
            if any(isinstance(v, Tensor) for v in kwargs.values()):
                raise TypeError("compile: pass tensors positionally, not as keywords")
            key = tuple(sorted(kwargs.items()))
            try:
                inner = self._bound.get(key)
            except TypeError:
                raise TypeError("compile: keyword arguments must be hashable constants") \
                    from None
            if inner is None:
                inner = Compiled(functools.partial(self.fn, **kwargs))
                if self._bound.add(key, inner):
                    self._recorded_too_often("sets of keyword values", 3)
            return inner(*args)
        try:                    # a signature seen last time: skip working it out again
            hit = self._recent.get(_quick_signature(args))
        except TypeError:       # an unhashable argument: program() says what is wrong
            hit = None
        if hit is not None and hit[2] == _epoch[0]:
            prog, single = hit[0], hit[1]
        else:
            prog, single = self.program(args)
            if prog is None:
                return self.fn(*args)
            if not prog.guards:          # guarded programs check their values each call
                self._recent.add(_quick_signature(args), (prog, single, _epoch[0]))
        graph = grad_enabled() and (prog.rg_args or any(t._rg for t in prog.refs))
        if graph and T._tls.tape.save_all:     # recording an enclosing compile or func
            frame = prog.scratch().frame         # transform: the records join that recording
            prog.run(frame, args)
            outs = _attach(prog, frame.vals, args)
            return outs[0] if single else tuple(outs)
        if graph:                     # one node on the caller's tape, holding its frame
            frame = prog.take_frame()
            prog.run(frame, args)
            return record_call(_tape(), prog, frame, self.fn, args, single)
        frame = prog.scratch().frame
        prog.run(frame, args)
        outs = [_plain(v.copy()) for v in frame.outs]
        return outs[0] if single else tuple(outs)


def _any_ref_rg(prog):
    return any(kind == "ref" and src.requires_grad for _, (kind, src) in prog.sources)


def _attach(prog, vals, args):
    """Append the replayed records to the tape being recorded (an enclosing compile or func
    transform), so that its program contains them; returns the output tensors.

    Each INPUT record of the program becomes an identity record reading the input's slot
    on this tape (a leaf's INPUT record, or the record of an argument with history), so
    gradients flow on into the caller's graph and leaves."""
    from .ops import _slot
    tp = T._tls.tape
    if tp.n >= tp.limit:
        tp.collect()
    links = [(slot, _slot(tp, args[src] if kind == "arg" else src))
             for slot, (kind, src) in prog.sources]
    R = prog.R.copy()
    for slot, _ in links:
        R[slot, K.OPW] = K.with_op(int(R[slot, K.OPW]), K.RESHAPE, 1, _CALL)
    base = tp.append_program(R, vals, prog.iar, links)
    if prog.has_matmul:       # Python-side VJPs read their operands from the tape's copy
        for r in np.flatnonzero(op_of(prog.R[:, K.OPW]) == K.MATMUL):
            r = int(r)
            tp.pyrefs[tp.gid(base + r)] = tuple(
                tp.saved_value(base + s) for s in (int(prog.R[r, K.A]), int(prog.R[r, K.B])))
    outs = []
    for i, slot in enumerate(prog.outputs):
        loc = base + slot
        tp.hold(loc)
        w = int(R[slot, K.OPW])
        outs.append(_graph(prog.output_value(vals, i).copy(), tp, tp.gid(loc), name_of(w)))
    return outs


def compile(fn=None):  # noqa: A001 - the name users expect
    """Record ``fn`` once per call signature and replay it in compiled code afterwards.

    >>> import tapegrad as tg
    >>> @tg.compile
    ... def f(x):
    ...     return (x.tanh() * 2).sum()
    >>> x = tg.tensor([0.5, -1.0], requires_grad=True)
    >>> f(x).backward()          # first call records, later calls replay
    >>> f(x).backward()
    >>> x.grad
    tensor([3.1458, 1.6799])
    """
    if fn is None:
        return compile
    return Compiled(fn)
