"""gradcheck and gradgradcheck: a function's derivatives against central differences.

``gradcheck(func, inputs)`` builds, for every output and every input that requires grad,
the Jacobian twice: analytically, one ``autograd.grad`` call per output element (each gives
a row), and numerically, two evaluations of ``func`` per input element (each gives a column,
``(f(x + eps e_k) - f(x - eps e_k)) / 2 eps``). ``fast_mode`` compares one number per
(output, input) pair instead, ``v . J u`` for random unit vectors ``u`` and ``v``, from one
VJP and one directional difference. Jacobians are laid out as PyTorch lays them out, one
row per input element and one column per output element, so failure messages read alike.

The numerical evaluations hand ``func`` fresh leaves holding the perturbed values (with
the input's ``requires_grad``) instead of writing into the caller's tensor, so a read-only
or shared array is never modified.

``gradgradcheck(func, inputs)`` runs gradcheck on the function that returns ``func``'s
gradients computed with ``create_graph=True``, which checks second derivatives.
"""
import warnings

import numpy as np

from ..tensor import Tensor
from .engine import grad as _grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]

_SEED = 20240601      # fast mode's random directions: fixed, so every run checks the same


class GradcheckError(RuntimeError):
    """Raised by ``gradcheck`` and ``gradgradcheck`` when a derivative check fails."""


class _OptionError(ValueError, AssertionError):
    """Options that contradict each other (PyTorch raises AssertionError for these)."""


def _as_tuple(x):
    if isinstance(x, tuple):
        return x
    if isinstance(x, list):
        return tuple(x)
    return (x,)


def _call(func, args):
    outs = _as_tuple(func(*args))
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: func must return a Tensor or a tuple of Tensors, but "
                            f"its output {k} is a {type(o).__name__}; return tensors (turn "
                            f"numbers into tensors with tapegrad.tensor)")
    return outs


def _is_float(t):
    return t.dtype.kind == "f"


def _check_inputs(inputs, stacklevel):
    diff = []
    for i, a in enumerate(inputs):
        if isinstance(a, Tensor) and a.requires_grad:
            if a.dtype != np.float64:
                warnings.warn(
                    f"Input #{i} requires gradient and is not a double precision floating "
                    f"point or complex. This check will likely fail if all the inputs are not "
                    f"of double precision floating point or complex. ",
                    UserWarning, stacklevel=stacklevel)
            diff.append(i)
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of them have requires_grad=True. Create the inputs to check "
                         "with requires_grad=True, e.g. tapegrad.randn(3, "
                         "dtype=tapegrad.float64, requires_grad=True).")
    return diff


# ---- numerical ------------------------------------------------------------------------------
def _evaluate(func, inputs, i, values, base):
    """func's outputs (numpy copies) with input i replaced by a leaf holding `values`."""
    args = list(inputs)
    args[i] = Tensor(values, requires_grad=inputs[i].requires_grad)
    outs = _call(func, args)
    if len(outs) != len(base):
        raise GradcheckError(f"func returned {len(outs)} outputs when input {i} was perturbed "
                             f"but {len(base)} at the point itself; gradcheck needs a function "
                             f"whose outputs do not depend on the input values")
    res = []
    for k, (o, b) in enumerate(zip(outs, base)):
        if o.shape != b.shape or o.dtype != b.dtype:
            raise GradcheckError(
                f"func returned output {k} with shape {tuple(o.shape)} and dtype {o.dtype} when "
                f"input {i} was perturbed, but shape {tuple(b.shape)} and dtype {b.dtype} at the "
                f"point itself; gradcheck needs outputs whose shape and dtype do not depend on "
                f"the input values")
        res.append(np.array(o.data, copy=True))
    return res


def _central(func, inputs, i, delta, eps, base):
    """(f(x + delta) - f(x - delta)) / 2 eps for every float output (None for the others)."""
    x = inputs[i].data
    minus = _evaluate(func, inputs, i, x - delta, base)
    plus = _evaluate(func, inputs, i, x + delta, base)
    return [((b - a) / (2 * eps)).reshape(-1) if _is_float(o) else None
            for a, b, o in zip(minus, plus, base)]


def _numerical(func, inputs, i, base, eps):
    """Input i's numerical Jacobian with every output: (numel_in, numel_out) arrays."""
    x = inputs[i].data
    jacs = [np.zeros((x.size, o.numel()), o.dtype) if _is_float(o) else None for o in base]
    for e in range(x.size):
        delta = np.zeros(x.shape, x.dtype)
        delta.flat[e] = eps
        for jac, col in zip(jacs, _central(func, inputs, i, delta, eps, base)):
            if jac is not None:
                jac[e] = col
    return jacs


# ---- analytical -----------------------------------------------------------------------------
def _vjps(output, diffs, seeds, check_grad_dtypes, nondet_tol):
    """Rows seed^T J for each seed, twice (the second run checks that backward is
    deterministic): one (numel_in, len(seeds)) array per input."""
    def once():
        jacs = [np.zeros((d.numel(), len(seeds)), d.dtype) for d in diffs]
        sizes_ok = types_ok = True
        for e, seed in enumerate(seeds):
            grads = _grad(output, diffs, Tensor(seed.reshape(output.shape)), retain_graph=True,
                          allow_unused=True)
            for jac, g, d in zip(jacs, grads, diffs):
                if g is None:
                    continue
                if tuple(g.shape) != tuple(d.shape):
                    sizes_ok = False
                    continue
                types_ok = types_ok and g.dtype == d.dtype
                jac[:, e] = g.data.reshape(-1)
        return jacs, sizes_ok, types_ok

    first, sizes_ok, types_ok = once()
    second, _, _ = once()
    if check_grad_dtypes and not types_ok:
        raise GradcheckError("Gradient has dtype mismatch: the gradient of an input has another "
                             "dtype than the input; make backward return gradients of the "
                             "inputs' dtypes")
    if not sizes_ok:
        raise GradcheckError("Analytical gradient has incorrect size: the gradient of an input "
                             "has another shape than the input; make backward return gradients "
                             "of the inputs' shapes")
    for a, b in zip(first, second):
        if a.size and np.max(np.abs(a - b)) > nondet_tol:
            raise GradcheckError(
                f"Backward is not reentrant, i.e., running backward with same input and "
                f"grad_output multiple times gives different values (by up to "
                f"{np.max(np.abs(a - b))}), although analytical gradient matches numerical "
                f"gradient. The tolerance for nondeterminism was {nondet_tol}. If backward is "
                f"nondeterministic on purpose, pass nondet_tol= large enough to cover it.")
    return first


def _basis(output):
    m = output.numel()
    eye = np.eye(m, dtype=output.dtype)
    return [eye[e] for e in range(m)]


def _analytical(output, diffs, check_grad_dtypes=False, nondet_tol=float("inf")):
    return _vjps(output, diffs, _basis(output), check_grad_dtypes, nondet_tol)


def _mismatch(a, n, k, j, mode=""):
    def show(v):
        return v if np.ndim(v) == 0 else Tensor(np.asarray(v))
    return (f"Jacobian {mode}mismatch for output {k:d} with respect to input {j:d},\n"
            f"numerical:{show(n)}\nanalytical:{show(a)}\n")


def _forward_columns(func, inputs, diff_idx, directions):
    """Analytical J @ t by forward mode (tapegrad.func's tangent sweep) for each input i and
    each tangent t in directions[i]: {i: [[flat tangent per output] per t]}."""
    from ..func import _Run
    run = _Run(func, tuple(inputs))
    res = {}
    for i in diff_idx:
        x = inputs[i]
        res[i] = [[np.asarray(t).reshape(-1) for t in run.tangent({i: d.reshape(x.shape)})]
                  for d in directions[i]]
    return res


# ---- the two modes --------------------------------------------------------------------------
def _slow(func, inputs, diff_idx, func_out, out_idx, eps, rtol, atol, nondet_tol,
          check_grad_dtypes, forward):
    diffs = [inputs[i] for i in diff_idx]
    numerical = {i: _numerical(func, inputs, i, func_out, eps) for i in diff_idx}
    if not out_idx:
        for i in diff_idx:
            if any(n is not None and np.any(n != 0) for n in numerical[i]):
                raise GradcheckError("Numerical gradient for function expected to be zero: no "
                                     "output requires grad, yet the outputs change with the "
                                     "inputs (a detach() or a computation outside the tape?)")
        return
    if forward:
        cols = _forward_columns(func, inputs, diff_idx,
                                {i: list(np.eye(inputs[i].numel(), dtype=inputs[i].dtype))
                                 for i in diff_idx})
        for kpos, k in enumerate(out_idx):
            o = func_out[k]
            for jpos, i in enumerate(diff_idx):
                a = np.zeros((inputs[i].numel(), o.numel()), o.dtype)
                for e, per_out in enumerate(cols[i]):
                    a[e] = per_out[k]
                n = numerical[i][k]
                if not np.allclose(a, n, rtol, atol):
                    raise GradcheckError(_mismatch(a, n, kpos, jpos, "computed with forward mode "))
        return
    for kpos, k in enumerate(out_idx):
        analytical = _analytical(func_out[k], diffs, check_grad_dtypes, nondet_tol)
        for jpos, (i, a) in enumerate(zip(diff_idx, analytical)):
            n = numerical[i][k]
            if not np.allclose(a, n, rtol, atol):
                raise GradcheckError(_mismatch(a, n, kpos, jpos))


def _unit(rng, t):
    v = rng.random(t.numel()).astype(t.dtype)
    norm = np.sqrt(np.sum(v * v))
    return v / norm if norm > 0 else v


def _slow_detail(func, inputs, i, func_out, k, jpos, rtol, atol, eps, forward):
    """The full Jacobians of one (output, input) pair, for a fast-mode failure message."""
    n = _numerical(func, inputs, i, func_out, eps)[k]
    if forward:
        x = inputs[i]
        cols = _forward_columns(func, inputs, [i], {i: list(np.eye(x.numel(), dtype=x.dtype))})
        a = np.stack([c[k] for c in cols[i]]) if cols[i] else np.zeros(n.shape, n.dtype)
    else:
        diffs = [inputs[d] for d in _diff_indices(inputs)]
        a = _analytical(func_out[k], diffs)[jpos]
    diff = float(np.max(np.abs(n - a))) if n.size else 0.0
    text = ("\nThe two numbers above are v . J u for random unit vectors u (over the input) "
            "and v (over the output), computed in fast mode. Recomputed in slow mode, the full "
            f"Jacobians are:\n\nNumerical:\n {Tensor(n)}\nAnalytical:\n{Tensor(a)}\n\n"
            f"The max per-element difference (slow mode) is: {diff}.\n")
    if np.allclose(a, n, rtol, atol):
        text += ("\nThe slow-mode Jacobians agree within the tolerances: fast mode failed where "
                 "the element-wise check passes. Call gradcheck with fast_mode=False for this "
                 "function.")
    return text


def _diff_indices(inputs):
    return [i for i, a in enumerate(inputs) if isinstance(a, Tensor) and a.requires_grad]


def _fast(func, inputs, diff_idx, func_out, out_idx, eps, rtol, atol, nondet_tol,
          check_grad_dtypes, forward):
    rng = np.random.default_rng(_SEED)
    us = {i: _unit(rng, inputs[i]) for i in diff_idx}
    vs = {k: _unit(rng, func_out[k]) for k in out_idx}
    ju = {i: _central(func, inputs, i, (us[i] * eps).reshape(inputs[i].shape), eps, func_out)
          for i in diff_idx}
    if not out_idx:
        for i in diff_idx:
            if any(n is not None and n.size and np.max(np.abs(n)) > nondet_tol for n in ju[i]):
                raise GradcheckError("Numerical gradient for function expected to be zero: no "
                                     "output requires grad, yet the outputs change with the "
                                     "inputs (a detach() or a computation outside the tape?)")
        return
    if forward:
        cols = _forward_columns(func, inputs, diff_idx, {i: [us[i]] for i in diff_idx})
        for jpos, i in enumerate(diff_idx):
            for kpos, k in enumerate(out_idx):
                a, n = cols[i][0][k], ju[i][k]
                if not np.allclose(a, n, rtol, atol * float(np.sum(us[i]))):
                    raise GradcheckError(
                        _mismatch(a, n, kpos, jpos, "computed with forward mode ")
                        + _slow_detail(func, inputs, i, func_out, k, jpos, rtol, atol, eps, True))
        return
    diffs = [inputs[i] for i in diff_idx]
    vju = {k: _vjps(func_out[k], diffs, [vs[k]], check_grad_dtypes, nondet_tol)
           for k in out_idx}
    for jpos, i in enumerate(diff_idx):
        for kpos, k in enumerate(out_idx):
            a = float(vju[k][jpos][:, 0] @ us[i])
            n = float(vs[k] @ ju[i][k])
            if not np.allclose(a, n, rtol, atol * float(np.sum(us[i])) * float(np.sum(vs[k]))):
                raise GradcheckError(
                    _mismatch(a, n, kpos, jpos)
                    + _slow_detail(func, inputs, i, func_out, k, jpos, rtol, atol, eps, False))


# ---- the backward's other duties ------------------------------------------------------------
def _zero_seeds(outputs):
    return [Tensor(np.zeros(o.shape, o.dtype)) for o in outputs]


def _check_scaled_by_grad_output(outputs, diffs):
    grads = _grad(list(outputs), diffs, _zero_seeds(outputs), retain_graph=True,
                  allow_unused=True)
    for j, (g, d) in enumerate(zip(grads, diffs)):
        if g is None:
            continue
        if not np.all(g.data == 0):
            raise GradcheckError(f"backward not multiplied by grad_output: with every output's "
                                 f"gradient zero, the gradient of input {j} is not zero; a "
                                 f"backward must scale what it returns by the incoming gradient")
        if g.dtype != d.dtype:
            raise GradcheckError(f"grad is incorrect type: the gradient of input {j} is "
                                 f"{g.dtype}, the input {d.dtype}")
        if tuple(g.shape) != tuple(d.shape):
            raise GradcheckError(f"grad is incorrect size: the gradient of input {j} has shape "
                                 f"{tuple(g.shape)}, the input {tuple(d.shape)}")


def _check_undefined_grad(func, inputs, diffs):
    """tapegrad has no undefined gradients: an output that gets no gradient counts as zero.
    The closest check: backward through every output with zero gradients, and through each
    output alone (a custom Function then receives zeros, or None, for the others), must
    run and give zeros."""
    outs = [o for o in _call(func, inputs) if o.requires_grad]
    subsets = [outs] + ([[o] for o in outs] if len(outs) > 1 else [])
    for subset in subsets:
        try:
            grads = _grad(subset, diffs, _zero_seeds(subset), retain_graph=True,
                          allow_unused=True)
        except RuntimeError as e:
            raise GradcheckError(
                "Expected backward function to handle undefined output grads: backward raised "
                f"{type(e).__name__}({e}) when the outputs' gradients were zero or missing. A "
                "backward must treat a missing output gradient as zero (after "
                "ctx.set_materialize_grads(False) it receives None for it). Pass "
                "check_undefined_grad=False to skip this check.") from e
        for g in grads:
            if g is not None and not np.all(g.data == 0):
                raise GradcheckError(
                    "Expected all input grads to be undefined or zero when all output grads are "
                    "undefined or zero: a backward returned a non-zero gradient although every "
                    "output gradient was zero. Pass check_undefined_grad=False to skip this "
                    "check.")


# ---- public ---------------------------------------------------------------------------------
def gradcheck(func, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              nondet_tol=0.0, check_undefined_grad=True, check_grad_dtypes=False,
              check_batched_grad=False, check_batched_forward_grad=False,
              check_forward_ad=False, check_backward_ad=True, fast_mode=False, masked=None):
    """Check ``func``'s gradients against central finite differences.

    ``func`` takes the entries of ``inputs`` (a tensor, or a tuple whose non-tensor entries
    are passed through) and returns a tensor or a tuple of tensors. For every output that
    requires grad and every input that requires grad, the Jacobian from
    ``tapegrad.autograd.grad`` (one call per output element) must match the numerical one,
    ``(f(x + eps) - f(x - eps)) / 2 eps`` per input element, within ``atol + rtol * |num|``
    elementwise. ``fast_mode=True`` compares ``v . J u`` for random unit vectors instead (one
    backward and one pair of evaluations per input). ``check_forward_ad=True`` also checks
    forward mode (``tapegrad.func``'s tangent sweep, which traces ``func``).

    Returns True. On a mismatch raises ``GradcheckError`` showing both Jacobians (rows are
    input elements, columns output elements), or returns False if ``raise_exception`` is
    false. Use float64 inputs: float32 (warned about, as PyTorch does) is too coarse for
    ``eps=1e-6``. The backward must also be deterministic within ``nondet_tol``, return
    gradients of the inputs' shapes (and dtypes, with ``check_grad_dtypes``) and give zeros
    for zero output gradients. tapegrad has no vmap, so ``check_batched_grad`` and
    ``check_batched_forward_grad`` have no batched path to check; ``masked`` (sparse tensors)
    is accepted and ignored.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.gradcheck import gradcheck
    >>> x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    >>> gradcheck(lambda t: (t.sin() * t).sum(), (x,))
    True
    """
    if not (check_forward_ad or check_backward_ad):
        raise _OptionError("Expected at least one of check_forward_ad or check_backward_ad to "
                           "be True")
    if check_batched_grad and not check_backward_ad:
        raise _OptionError("Setting check_batched_grad=True requires check_backward_ad to be "
                           "True")
    if check_batched_forward_grad and not check_forward_ad:
        raise _OptionError("Setting check_batched_forward_grad=True requires check_forward_ad "
                           "to be True")
    try:
        return _gradcheck(func, inputs, eps, atol, rtol, nondet_tol, check_undefined_grad,
                          check_grad_dtypes, check_forward_ad, check_backward_ad, fast_mode,
                          stacklevel=4)
    except GradcheckError:
        if raise_exception:
            raise
        return False


def _gradcheck(func, inputs, eps, atol, rtol, nondet_tol, check_undefined_grad,
               check_grad_dtypes, check_forward_ad, check_backward_ad, fast_mode, stacklevel):
    inputs = _as_tuple(inputs)
    diff_idx = _check_inputs(inputs, stacklevel)
    func_out = _call(func, inputs)
    out_idx = [k for k, o in enumerate(func_out) if o.requires_grad]
    check = _fast if fast_mode else _slow
    args = (func, inputs, diff_idx, func_out, out_idx, eps, rtol, atol, nondet_tol,
            check_grad_dtypes)
    if check_backward_ad:
        check(*args, forward=False)
    if check_forward_ad:
        check(*args, forward=True)
    if not check_backward_ad:
        return True
    diffs = [inputs[i] for i in diff_idx]
    outputs = [func_out[k] for k in out_idx]
    if outputs:
        _check_scaled_by_grad_output(outputs, diffs)
    if check_undefined_grad:
        _check_undefined_grad(func, inputs, diffs)
    return True


gradcheck.GradcheckError = GradcheckError   # tapegrad.autograd.gradcheck.GradcheckError


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=1e-6, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
                  check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False,
                  masked=False):
    """Check ``func``'s second derivatives against central finite differences.

    Runs ``gradcheck`` on the function ``(inputs, grad_outputs) -> autograd.grad(func(inputs),
    inputs, grad_outputs, create_graph=True)``, so the backward of ``func``'s backward is
    checked, with respect to the inputs and to ``grad_outputs``. ``grad_outputs`` defaults to
    random tensors in [-1, 1) shaped like the outputs that require grad (non-contiguous
    arrays with ``gen_non_contig_grad_outputs``). The other arguments are gradcheck's;
    ``check_rev_over_rev`` is its ``check_backward_ad`` and ``check_fwd_over_rev`` its
    ``check_forward_ad``.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.gradcheck import gradgradcheck
    >>> x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    >>> gradgradcheck(lambda t: t ** 3, (x,))
    True
    """
    if not (check_fwd_over_rev or check_rev_over_rev):
        raise _OptionError("Expected at least one of check_fwd_over_rev or check_rev_over_rev "
                           "to be True")
    if check_undefined_grad and not check_rev_over_rev:
        raise _OptionError("Setting check_undefined_grad=True requires check_rev_over_rev to be "
                           "True")
    if check_batched_grad and not check_rev_over_rev:
        raise _OptionError("Setting check_batched_grad=True requires check_rev_over_rev to be "
                           "True")
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(_SEED)
        gos = []
        for o in _call(func, inputs):
            if not o.requires_grad:
                continue
            dtype = o.dtype if _is_float(o) else np.dtype(np.float64)
            a = rng.uniform(-1.0, 1.0, tuple(o.shape)).astype(dtype)
            if gen_non_contig_grad_outputs and a.size > 1:
                wide = np.zeros(a.shape + (2,), dtype)
                wide[..., 0] = a
                a = wide[..., 0]          # a strided view, as PyTorch's noncontiguous tensors
            gos.append(Tensor(a, requires_grad=True))
        grad_outputs = tuple(gos)
    else:
        grad_outputs = _as_tuple(grad_outputs)
    n_out = len(grad_outputs)
    diff_in = [i for i, a in enumerate(inputs) if isinstance(a, Tensor) and a.requires_grad]
    diff_go = [i for i, g in enumerate(grad_outputs) if g.requires_grad]

    def gradients(*args):
        xs, gs = list(args[:len(args) - n_out]), list(args[len(args) - n_out:])
        for pos, idx in ((xs, diff_in), (gs, diff_go)):
            for i in idx:
                if pos[i].is_leaf and not pos[i].requires_grad:
                    pos[i].requires_grad_()
        outs = [o for o in _call(func, xs) if o.requires_grad]
        if len(outs) != len(gs):
            raise ValueError(f"gradgradcheck: func has {len(outs)} outputs that require grad but "
                             f"{len(gs)} grad_outputs were given; pass one per such output")
        grads = _grad(outs, [xs[i] for i in diff_in], gs, create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    try:
        return _gradcheck(gradients, inputs + grad_outputs, eps, atol, rtol, nondet_tol,
                          check_undefined_grad, check_grad_dtypes, check_fwd_over_rev,
                          check_rev_over_rev, fast_mode, stacklevel=4)
    except GradcheckError:
        if raise_exception:
            raise
        return False
