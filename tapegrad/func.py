"""Function transforms: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian.

Each transform traces the function into a ``Program`` (reusing the cached one when the
function is ``tapegrad.compile``d) and runs the program's compiled passes on private
buffers: the forward replay, the reverse sweep (grad, vjp, jacrev) and the tangent sweep
(jvp, jacfwd). Nothing touches any tensor's ``.grad`` or the caller's tape. Every tensor
argument is an input; ``argnums`` picks which ones the result is taken with respect to.
"""
import threading

import numpy as np

from . import kernels as K
from .kernels import GEMM
from .replay import _LRU, Compiled, _quick_signature, ref_value, trace
from .ops import _plain
from .tensor import Tensor


def _argnums(argnums, args):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not (-len(args) <= i < len(args)) or not isinstance(args[i], Tensor):
            raise TypeError(f"argnums={argnums!r}: argument {i} must be a tensor")
    return tuple(i % len(args) for i in nums)


class _Run:
    """One traced program evaluated at one set of argument values."""

    def __init__(self, fn, args, forward=True):
        self.cached = False                  # True: a compiled function's reusable program
        if isinstance(fn, Compiled):
            prog, single = fn.program(args)
            if prog is None:                 # value-dependent: record afresh for these values
                prog, single = trace(fn.fn, args)
            else:
                self.cached = True
        else:
            prog, single = trace(fn, args)
        if prog.opaque:
            raise RuntimeError(
                f"tapegrad.func transforms run a traced program in compiled code, and the "
                f"custom autograd.Function {', '.join(prog.opaque)} has a Python backward "
                f"they cannot run; use tapegrad.autograd.grad or tapegrad.autograd.functional "
                f"(eager; its reverse-mode strategies) for this function instead.")
        self.prog, self.single, self.args = prog, single, args
        self.vals = prog.scratch().vals
        prog.load([a.data if isinstance(a, Tensor) else None for a in args], self.vals)
        if forward:
            prog.forward(self.vals)
        self.slots = {}                      # argument index -> its INPUT slot
        for slot, (kind, src) in prog.sources:
            if kind == "arg":
                self.slots[src] = slot
        self.R = prog.R_all()

    def outputs(self):
        outs = tuple(_plain(self.prog.output_value(self.vals, i).copy())
                     for i in range(len(self.prog.outputs)))
        return outs[0] if self.single else outs

    def out_shape(self, i=0):
        return self.prog.output_value(self.vals, i).shape

    def input_array(self, j):
        return self.args[j].data

    def reverse(self, seeds, nums, done=None):
        grads, touched = done if done else self.prog.reverse(self.vals, seeds, R=self.R)
        out = []
        for j in nums:
            slot = self.slots.get(j)
            g = None if slot is None else self.prog.grad_of(grads, touched, slot)
            a = self.args[j].data
            out.append(np.zeros_like(a) if g is None else g.astype(a.dtype, copy=True))
        return out

    def tangent(self, tangents):
        tmap = {self.slots[j]: t for j, t in tangents.items() if j in self.slots}
        tans = self.prog.tangent(self.vals, tmap)
        return [self.prog._view(tans, slot).copy() for slot in self.prog.outputs]


def _pack(values, argnums):
    vals = [_plain(v) for v in values]
    return vals[0] if isinstance(argnums, int) else tuple(vals)


def _scalar_seed(run):
    if run.single is False or len(run.prog.outputs) != 1:
        raise TypeError("grad needs a function returning one scalar tensor")
    shape = run.out_shape()
    if int(np.prod(shape)) != 1:
        raise RuntimeError(f"grad needs a function returning a scalar, got shape {shape}; "
                           f"use vjp or jacrev for non-scalar outputs")
    return [(run.prog.outputs[0], np.ones(shape, run.prog.output_value(run.vals, 0).dtype))]


def value_and_grad(fn, argnums=0):
    """Return a function computing ``(fn(*args), d fn / d args[argnums])``.

    >>> import tapegrad as tg
    >>> f = tg.func.value_and_grad(lambda x: (x ** 2).sum())
    >>> value, g = f(tg.tensor([1.0, 2.0]))
    >>> value.item(), g
    (5.0, tensor([2., 4.]))
    """
    # compiled fn: signature -> _Plan (the lean path for repeated calls), bounded like the
    # function's own programs (a plan holds its program)
    plans = _LRU()
    compiled = isinstance(fn, Compiled)

    def wrapped(*args):
        if compiled:
            plan = plans.get(_quick_signature(args))
            if plan is not None:
                return plan(args)
        nums = _argnums(argnums, args)
        run = _Run(fn, args, forward=False)
        prog = run.prog
        if prog.single_call and run.single and len(prog.outputs) == 1 and \
                int(prog.R[prog.outputs[0], K.SIZE]) == 1:
            done = prog.value_and_grad(run.vals, prog.outputs[0])   # one compiled call
            if run.cached:
                plans.add(_quick_signature(args), _Plan(run, nums, isinstance(argnums, int)))
            return run.outputs(), _pack(run.reverse(None, nums, done), argnums)
        prog.forward(run.vals)
        return run.outputs(), _pack(run.reverse(_scalar_seed(run), nums), argnums)
    return wrapped


class _Plan:
    """value_and_grad of one compiled program whose forward and backward are one compiled
    call: everything Python does per call, worked out once (per thread, the views of this
    thread's buffers that inputs are written to and results read from)."""

    def __init__(self, run, nums, single):
        prog = self.prog = run.prog
        self.out = prog.outputs[0]
        self.d = prog.dt
        self.slots = [run.slots.get(j) for j in nums]   # None: fn never reads that argument
        # (shape, dtype) of each gradient, for the zeros of one that nothing reached
        self.blank = [(run.args[j].data.shape, run.args[j].data.dtype) for j in nums]
        self.single = single
        self._tls = threading.local()

    def _views(self):
        prog = self.prog
        sc = prog.scratch()
        # an argument's view has its shape (the signature fixes it): no reshape per call
        loads = [(sc.vals[d][o:o + n].reshape(prog._shapes[slot]) if kind == "arg"
                  else sc.vals[d][o:o + n], kind, src)
                 for (slot, _), (d, o, n, kind, src) in zip(prog.sources, prog._load)]
        value = prog._view(sc.vals, self.out)
        grads = [(slot, None if slot is None else prog.grad_region(sc.grads, slot), blank)
                 for slot, blank in zip(self.slots, self.blank)]
        args = prog.kernel_args(sc.vals, sc, self.out) + (self.d, GEMM)
        tls = self._tls
        tls.v = (loads, value, grads, sc.touched, args)
        return tls.v

    def __call__(self, args):
        v = getattr(self._tls, "v", None)
        loads, value, grads, touched, kargs = v if v is not None else self._views()
        for view, kind, src in loads:
            if kind == "arg":
                view[...] = args[src].data
            else:
                view[...] = ref_value(src, view.size).reshape(-1)
        status, r = K.value_and_grad(*kargs)
        if status != K.ST_DONE:
            raise RuntimeError(f"replay stopped at record {r} (status {status})")
        out = [_plain(g.copy() if slot is not None and touched[slot] else np.zeros(*blank))
               for slot, g, blank in grads]
        return _plain(value.copy()), (out[0] if self.single else tuple(out))


def grad(fn, argnums=0):
    """Return a function computing the gradient of scalar-valued ``fn`` w.r.t. ``args[argnums]``.

    >>> import tapegrad as tg
    >>> tg.func.grad(lambda x: x.sin().sum())(tg.tensor([0.0]))
    tensor([1.])
    """
    vg = value_and_grad(fn, argnums)
    return lambda *args: vg(*args)[1]


def vjp(fn, *primals):
    """``(fn(*primals), vjp_fn)``; ``vjp_fn(cotangent)`` returns one gradient per primal."""
    run = _Run(fn, primals)
    run.vals = (run.vals[0].copy(), run.vals[1].copy())   # vjp_fn outlives this call
    nums = tuple(i for i, p in enumerate(primals) if isinstance(p, Tensor))

    def vjp_fn(*cotangents):
        cts = cotangents[0] if len(cotangents) == 1 and isinstance(cotangents[0], tuple) \
            else cotangents
        if len(cts) != len(run.prog.outputs):
            raise RuntimeError(f"vjp_fn expects {len(run.prog.outputs)} cotangent(s), "
                               f"got {len(cts)}")
        seeds = []
        for i, ct in enumerate(cts):
            c = ct.data if isinstance(ct, Tensor) else np.asarray(ct)
            if c.shape != run.out_shape(i):
                raise RuntimeError(f"Mismatch in shape: cotangent {i} has shape {c.shape} "
                                   f"but output {i} has shape {run.out_shape(i)}")
            seeds.append((run.prog.outputs[i], c))
        return tuple(_plain(g) for g in run.reverse(seeds, nums))
    return run.outputs(), vjp_fn


def jvp(fn, primals, tangents):
    """``(fn(*primals), J @ tangents)``: forward mode, one tangent sweep over the records.

    >>> import tapegrad as tg
    >>> out, t = tg.func.jvp(lambda x: x * x, (tg.tensor([3.0]),), (tg.tensor([1.0]),))
    >>> t
    tensor([6.])
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise RuntimeError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents")
    tmap = {}
    for j, (p, t) in enumerate(zip(primals, tangents)):
        if isinstance(p, Tensor):
            ta = t.data if isinstance(t, Tensor) else np.asarray(t)
            if ta.shape != p.data.shape:
                raise RuntimeError(f"jvp: tangent {j} has shape {ta.shape} but its primal has "
                                   f"shape {tuple(p.shape)}")
            tmap[j] = ta
    run = _Run(fn, primals)
    touts = [_plain(t) for t in run.tangent(tmap)]
    return run.outputs(), (touts[0] if run.single else tuple(touts))


def _jac_rev(run, nums):
    shape = run.out_shape()
    m = int(np.prod(shape))
    dtype = run.prog.output_value(run.vals, 0).dtype
    rows = {j: [] for j in nums}
    for i in range(m):
        seed = np.zeros(m, dtype)
        seed[i] = 1
        for j, g in zip(nums, run.reverse([(run.prog.outputs[0], seed.reshape(shape))], nums)):
            rows[j].append(g)
    return [np.stack(rows[j]).reshape(shape + run.input_array(j).shape) if m else
            np.zeros(shape + run.input_array(j).shape) for j in nums]


def jacrev(fn, argnums=0):
    """The Jacobian of ``fn`` (one tensor output) by reverse mode: one sweep per output
    element. Shape: ``output.shape + input.shape``."""
    def wrapped(*args):
        nums = _argnums(argnums, args)
        run = _Run(fn, args)
        return _pack(_jac_rev(run, nums), argnums)
    return wrapped


def jacfwd(fn, argnums=0):
    """The Jacobian of ``fn`` (one tensor output) by forward mode: one tangent sweep per
    input element. Shape: ``output.shape + input.shape``."""
    def wrapped(*args):
        nums = _argnums(argnums, args)
        run = _Run(fn, args)
        oshape = run.out_shape()
        jacs = []
        for j in nums:
            a = run.input_array(j)
            cols = []
            for k in range(a.size):
                t = np.zeros(a.size, a.dtype)
                t[k] = 1
                cols.append(run.tangent({j: t.reshape(a.shape)})[0])
            jac = np.stack(cols, axis=-1) if cols else np.zeros(oshape + (0,))
            jacs.append(jac.reshape(oshape + a.shape))
        return _pack(jacs, argnums)
    return wrapped


def hessian(fn, argnums=0):
    """The Hessian of scalar ``fn``: forward mode over the recorded reverse pass.

    The gradient computation is recorded as ordinary ops (each VJP written with tapegrad
    ops), and ``jacfwd`` runs tangent sweeps over that record.
    """
    from .symbolic import grad_function

    def wrapped(*args):
        nums = _argnums(argnums, args)
        gfn = grad_function(fn.fn if isinstance(fn, Compiled) else fn, nums)
        return jacfwd(gfn, nums if not isinstance(argnums, int) else nums[0])(*args)
    return wrapped
