"""torch.autograd.functional's API: jacobian, hessian, vjp, jvp, hvp, vhp.

Each takes a function of tensors and a point (a tensor, or a tuple of tensors) and returns
tensors; the nesting of the result follows the nesting of inputs and outputs as PyTorch's
does (a tuple where the caller gave or returned a tuple, a bare tensor otherwise).

Two engines, by strategy:

- reverse mode (every function's default) runs eagerly on ``tapegrad.autograd.grad``, as
  PyTorch's does on ``torch.autograd.grad``: ``vjp`` and ``jacobian`` with first-order
  backward passes, ``jvp``, ``hvp``, ``vhp`` and ``hessian`` with ``create_graph=True``
  (the double-backward constructions). Any function that ``autograd.grad`` can
  differentiate works, custom ``Function`` s included, and ``strict`` finds independent
  inputs from the gradients that come back as ``None``.
- ``strategy="forward-mode"`` (``jacobian``) and ``outer_jacobian_strategy="forward-mode"``
  (``hessian``) run on ``tapegrad.func``'s machinery: the function is traced once and
  the tangent sweep gives one Jacobian column per call (for the Hessian, over the
  gradient recorded as ops, as ``tapegrad.func.hessian`` does). PyTorch needs
  ``vectorize=True`` for these; here ``vectorize`` is accepted and changes nothing.

Results have no ``grad_fn`` unless ``create_graph=True``.
"""
import numpy as np

from ..grad_mode import enable_grad, is_grad_enabled, set_grad_enabled
from ..tensor import Tensor
from .engine import grad as _grad

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]

_STRATEGIES = ("forward-mode", "reverse-mode")


class _StrategyError(ValueError, AssertionError):
    """An unknown strategy name (PyTorch raises AssertionError for it)."""


# ---- argument structure ---------------------------------------------------------------------
def _as_tuple(value, what, fn_name):
    """(was it a tuple, the tensors as a tuple); a TypeError for anything but tensors."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for i, el in enumerate(items):
        if not isinstance(el, Tensor):
            where = f"the value at index {i}" if is_tuple else f"the given {what}"
            raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple "
                            f"of Tensors but {where} has type {type(el)}.")
    return is_tuple, items


def _unpack(res, keep):
    """Undo _as_tuple on a result: keep is one flag, or (outer, inner) for a nested one."""
    if isinstance(keep, tuple):
        outer, inner = keep
        if not inner:
            res = tuple(el[0] for el in res)
        return res if outer else res[0]
    return res if keep else res[0]


def _prepare(tensors, create_graph, need_graph):
    """Fresh tensors for func to see: with create_graph, ones that require grad stay on the
    caller's graph (through a view); the rest are detached, requiring grad if need_graph."""
    out = []
    for t in tensors:
        if create_graph and t.requires_grad:
            out.append(t.reshape(tuple(t.shape)))
        else:
            out.append(t.detach().requires_grad_(need_graph))
    return tuple(out)


def _finish(tensors, create_graph):
    """Detach results (recursively through tuples) unless create_graph."""
    if create_graph:
        return tensors
    return tuple(t.detach() if isinstance(t, Tensor) else _finish(t, create_graph)
                 for t in tensors)


def _check_v(v, other, other_is_tuple):
    if len(v) != len(other):
        if other_is_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got "
                               f"{len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (a, b) in enumerate(zip(v, other)):
        if a.shape != b.shape:
            prefix = f"Entry {i} in " if other_is_tuple else ""
            raise RuntimeError(f"{prefix}v has invalid size: should be {b.shape} but got "
                               f"{a.shape}.")


def _strict_check(tensors, kind, strict):
    """strict mode: every entry exists and requires grad; the error says which is not."""
    if not strict:
        return
    for i, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(f"The output of the user-provided function is independent of "
                               f"input {i}. This is not allowed in strict mode.")
        if t.requires_grad:
            continue
        if kind == "hessian":
            raise RuntimeError(
                f"The hessian of the user-provided function with respect to input {i} is "
                f"independent of the input. This is not allowed in strict mode. You should "
                f"ensure that your function is thrice differentiable and that the hessian "
                f"depends on the inputs.")
        if kind == "jacobian":
            raise RuntimeError(
                f"While computing the hessian, found that the jacobian of the user-provided "
                f"function with respect to input {i} is independent of the input. This is not "
                f"allowed in strict mode. You should ensure that your function is twice "
                f"differentiable and that the jacobian depends on the inputs (this would be "
                f"violated by a linear function for example).")
        if kind == "grad_inputs":
            raise RuntimeError(
                f"The gradient with respect to input {i} is independent of the inputs of the "
                f"user-provided function. This is not allowed in strict mode.")
        raise RuntimeError(
            f"Output {i} of the user-provided function does not require gradients. The "
            f"outputs must be computed in a differentiable manner from the input when running "
            f"in strict mode.")


def _grads(outputs, inputs, grad_outputs=None, create_graph=False, retain_graph=None):
    """autograd.grad over the outputs that require grad (None entries and constants are
    skipped); None for inputs that nothing reached."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs)
             if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return _grad([o for o, _ in pairs], list(inputs), [g for _, g in pairs],
                 retain_graph=retain_graph, create_graph=create_graph, allow_unused=True)


_INDEPENDENT = {
    "back": "The output of the user-provided function is independent of input {i}. This is "
            "not allowed in strict mode.",
    "back_trick": "The gradient with respect to the input is independent of entry {i} in the "
                  "grad_outputs when using the double backward trick to compute forward mode "
                  "gradients. This is not allowed in strict mode.",
    "double_back": "The jacobian of the user-provided function is independent of input {i}. "
                   "This is not allowed in strict mode.",
    "double_back_trick": "The hessian of the user-provided function is independent of entry "
                         "{i} in the grad_jacobian. This is not allowed in strict mode as it "
                         "prevents from using the double backward trick to replace forward "
                         "mode AD.",
}


def _zeros_for_none(grads, refs, strict, create_graph, stage):
    """Replace each None gradient by zeros shaped like refs[i] (strict: raise instead)."""
    out = []
    for i, g in enumerate(grads):
        if g is None:
            if strict:
                raise RuntimeError(_INDEPENDENT[stage].format(i=i))
            g = _zeros_like(refs[i])
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if stage.startswith("double") else "jacobian"
            raise RuntimeError(f"The {what} of the user-provided function is independent of "
                               f"input {i}. This is not allowed in strict mode when "
                               f"create_graph=True.")
        out.append(g)
    return tuple(out)


def _zeros_like(t, requires_grad=False):
    return Tensor(np.zeros(tuple(t.shape), t.dtype), requires_grad=requires_grad)


def _needs_v(v, tensors, is_tuple, fn_name, create_graph, of_output=False):
    """v as a tuple of tensors (detached unless create_graph) checked against tensors; None
    only where there is one tensor of one element (then v is implicitly 1)."""
    if v is not None:
        _, v = _as_tuple(v, "v", fn_name)
        v = _prepare(v, create_graph, need_graph=False)
        _check_v(v, tensors, is_tuple)
        return v
    if len(tensors) != 1 or tensors[0].numel() != 1:
        if of_output:
            raise RuntimeError("The vector v can only be None if the user-provided function "
                               "returns a single Tensor with a single element.")
        raise RuntimeError("The vector v can only be None if the input to the user-provided "
                           "function is a single Tensor with a single element.")
    return None


def _scalar_output(outputs, is_tuple, fn_name):
    if is_tuple or not isinstance(outputs[0], Tensor):
        raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if outputs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should "
                           f"contain a single element")


# ---- vector products ----------------------------------------------------------------------
def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)``: the vector-Jacobian product at ``inputs``.

    ``v`` has the outputs' structure and shapes (it may be omitted when ``func`` returns a
    single one-element tensor). The product has the inputs' structure. With ``strict``, an
    input that no output depends on raises instead of getting zeros; with
    ``create_graph`` both results are differentiable.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import vjp
    >>> vjp(lambda x: x ** 2, tg.tensor([1.0, 2.0]), tg.tensor([1.0, 1.0]))
    (tensor([1., 4.]), tensor([2., 4.]))
    """
    with enable_grad():
        inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        outputs = func(*inputs)
        outputs_tuple, outputs = _as_tuple(outputs, "outputs of the user-provided function",
                                           "vjp")
        _strict_check(outputs, "outputs", strict)
        v = _needs_v(v, outputs, outputs_tuple, "vjp", create_graph, of_output=True)
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _grads(outputs, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "back")
    return (_unpack(_finish(outputs, create_graph), outputs_tuple),
            _unpack(_finish(res, create_graph), inputs_tuple))


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)``: the Jacobian-vector product at ``inputs``.

    ``v`` has the inputs' structure and shapes (it may be omitted for a single one-element
    input); the product has the outputs'. Computed as PyTorch's is, by the double-backward
    trick (the VJP is linear in its cotangent u, so differentiating ``u -> u^T J`` gives
    ``J v``); ``tapegrad.func.jvp`` is the forward-mode alternative.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import jvp
    >>> jvp(lambda x: x ** 2, tg.tensor([1.0, 2.0]), tg.tensor([1.0, 0.0]))
    (tensor([1., 4.]), tensor([2., 0.]))
    """
    with enable_grad():
        inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        v = _needs_v(v, inputs, inputs_tuple, "jvp", create_graph)
        outputs = func(*inputs)
        outputs_tuple, outputs = _as_tuple(outputs, "outputs of the user-provided function",
                                           "jvp")
        _strict_check(outputs, "outputs", strict)
        # the VJP is linear in these, so their value (zero) never matters
        us = tuple(_zeros_like(o, requires_grad=True) for o in outputs)
        grad_inputs = _grads(outputs, inputs, us, create_graph=True)
        _strict_check(grad_inputs, "grad_inputs", strict)
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _grads(grad_inputs, us, v, create_graph=create_graph)
        res = _zeros_for_none(res, outputs, strict, create_graph, "back_trick")
    return (_unpack(_finish(outputs, create_graph), outputs_tuple),
            _unpack(_finish(res, create_graph), outputs_tuple))


def _scalar_grad(func, inputs, create_graph, strict, fn_name):
    """Shared start of vhp and hvp: (inputs, outputs, outputs_tuple, jac) with the gradient
    jac recorded (create_graph=True) so it can be differentiated again."""
    inputs = _prepare(inputs, create_graph, need_graph=True)
    outputs = func(*inputs)
    outputs_tuple, outputs = _as_tuple(outputs, "outputs of the user-provided function",
                                       fn_name)
    _strict_check(outputs, "outputs", strict)
    _scalar_output(outputs, outputs_tuple, fn_name)
    jac = _grads(outputs, inputs, create_graph=True)
    _strict_check(jac, "jacobian", strict)
    return inputs, outputs, outputs_tuple, jac


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)``: a vector times the Hessian of scalar ``func``.

    ``v`` and the product have the inputs' structure and shapes. Reverse over reverse: the
    gradient is computed with ``create_graph=True`` and differentiated along ``v``.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import vhp
    >>> vhp(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0]), tg.tensor([1.0, 1.0]))
    (tensor(9.), tensor([ 6., 12.]))
    """
    with enable_grad():
        inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vhp")
        v = _needs_v(v, inputs, inputs_tuple, "vhp", create_graph)
        inputs, outputs, outputs_tuple, jac = _scalar_grad(func, inputs, create_graph, strict,
                                                           "vhp")
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _grads(jac, inputs, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back")
    return (_unpack(_finish(outputs, create_graph), outputs_tuple),
            _unpack(_finish(res, create_graph), inputs_tuple))


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)``: the Hessian of scalar ``func`` times a vector.

    ``v`` and the product have the inputs' structure and shapes. Computed as PyTorch's is,
    with the double-backward trick on top of ``vhp``'s construction; for a twice
    continuously differentiable ``func``, H is symmetric and ``vhp`` gives the same, faster.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import hvp
    >>> hvp(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0]), tg.tensor([1.0, 0.0]))
    (tensor(9.), tensor([6., 0.]))
    """
    with enable_grad():
        inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hvp")
        v = _needs_v(v, inputs, inputs_tuple, "hvp", create_graph)
        inputs, outputs, outputs_tuple, jac = _scalar_grad(func, inputs, create_graph, strict,
                                                           "hvp")
        us = tuple(_zeros_like(x, requires_grad=True) for x in inputs)
        double_back = _grads(jac, inputs, us, create_graph=True)
        _strict_check(jac, "hessian", strict)
    with set_grad_enabled(True if create_graph else is_grad_enabled()):
        res = _grads(double_back, us, v, create_graph=create_graph)
        res = _zeros_for_none(res, inputs, strict, create_graph, "double_back_trick")
    return (_unpack(_finish(outputs, create_graph), outputs_tuple),
            _unpack(_finish(res, create_graph), inputs_tuple))


# ---- full matrices --------------------------------------------------------------------------
def _check_strategy(strategy, what="strategy"):
    if strategy not in _STRATEGIES:
        raise _StrategyError(
            f'Expected {what} to be either "forward-mode" or "reverse-mode", got {strategy!r}. '
            f'Hint: If your function has more outputs than inputs, "forward-mode" tends to be '
            f'more performant. Otherwise, prefer to use "reverse-mode".')


def _stack(rows, shape, dtype):
    """Rows (one per output element) as one tensor of `shape` (differentiable if they are)."""
    from .. import ops
    if not rows:
        return Tensor(np.zeros(shape, dtype))
    return ops.reshape(ops.stack(rows, 0), shape)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False,
             strategy="reverse-mode"):
    """The Jacobian of ``func`` at ``inputs``.

    ``J[i][j]`` has shape ``outputs[i].shape + inputs[j].shape``; a single output or a
    single input drops that level of nesting (both single: one tensor). Reverse mode makes
    one ``autograd.grad`` call per output element and gives the inputs' dtype; forward mode
    (``strategy="forward-mode"``, no ``create_graph`` or ``strict``) one tangent sweep per
    input element and gives the outputs' dtype. ``vectorize`` is accepted for PyTorch's
    signature and changes nothing.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import jacobian
    >>> jacobian(lambda x: x ** 2, tg.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """
    _check_strategy(strategy)
    if strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(
                "jacobian: create_graph=True and strategy=\"forward-mode\" are not supported "
                "together; use strategy=\"reverse-mode\" for a differentiable Jacobian.")
        if strict:
            raise RuntimeError(
                "jacobian: strict=True and strategy=\"forward-mode\" are not supported "
                "together; set strict=False or use strategy=\"reverse-mode\".")
        return _jacobian_forward(func, inputs)
    with enable_grad():
        inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _prepare(inputs, create_graph, need_graph=True)
        outputs = func(*inputs)
        outputs_tuple, outputs = _as_tuple(outputs, "outputs of the user-provided function",
                                           "jacobian")
        _strict_check(outputs, "outputs", strict)
        if vectorize and strict:
            raise RuntimeError("tapegrad.autograd.functional.jacobian: `strict=True` and "
                               "`vectorized=True` are not supported together. Please either "
                               "set `strict=False` or `vectorize=False`.")
        jac = []
        for i, out in enumerate(outputs):
            rows = [[] for _ in inputs]
            seed = np.zeros(out.numel(), out.dtype)
            for e in range(out.numel()):
                seed[:] = 0
                seed[e] = 1
                vj = _grads((out,), inputs, (Tensor(seed.reshape(tuple(out.shape))),),
                            create_graph=create_graph, retain_graph=True)
                for j, (g, x) in enumerate(zip(vj, inputs)):
                    if g is None:
                        if strict:
                            raise RuntimeError(f"Output {i} of the user-provided function is "
                                               f"independent of input {j}. This is not "
                                               f"allowed in strict mode.")
                        g = _zeros_like(x)
                    elif strict and create_graph and not g.requires_grad:
                        raise RuntimeError(f"The jacobian of the user-provided function is "
                                           f"independent of input {i}. This is not allowed "
                                           f"in strict mode when create_graph=True.")
                    rows[j].append(g)
            jac.append(tuple(_stack(rows[j], tuple(out.shape) + tuple(x.shape), x.dtype)
                             for j, x in enumerate(inputs)))
        return _unpack(_finish(tuple(jac), create_graph), (outputs_tuple, inputs_tuple))


def _tangent_columns(run, inputs, out_shapes):
    """J[i][j] from tangent sweeps of a traced run: one per element of each input."""
    jac = [[None] * len(inputs) for _ in out_shapes]
    for j, x in enumerate(inputs):
        cols = [[] for _ in out_shapes]
        for k in range(x.numel()):
            t = np.zeros(x.numel(), x.dtype)
            t[k] = 1
            for i, tan in enumerate(run.tangent({j: t.reshape(tuple(x.shape))})):
                cols[i].append(np.asarray(tan).reshape(-1))
        for i, shape in enumerate(out_shapes):
            m = int(np.prod(shape, dtype=np.int64))
            c = np.stack(cols[i], axis=-1) if cols[i] else np.zeros((m, 0))
            jac[i][j] = Tensor(np.ascontiguousarray(c.reshape(shape + tuple(x.shape))))
    return tuple(tuple(row) for row in jac)


def _jacobian_forward(func, inputs):
    from ..func import _Run
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
    inputs = _prepare(inputs, create_graph=False, need_graph=False)
    box = {}

    def traced(*xs):
        box["tuple"], outs = _as_tuple(func(*xs), "outputs of the user-provided function",
                                       "jacobian")
        return outs
    run = _Run(traced, inputs)
    shapes = [tuple(run.out_shape(i)) for i in range(len(run.prog.outputs))]
    return _unpack(_tangent_columns(run, inputs, shapes), (box["tuple"], inputs_tuple))


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False,
            outer_jacobian_strategy="reverse-mode"):
    """The Hessian of scalar ``func`` at ``inputs``.

    ``H[i][j]`` has shape ``inputs[i].shape + inputs[j].shape`` (a single input: one
    tensor). The Jacobian of the gradient: the gradient is recorded (``create_graph=True``)
    and differentiated once per element by reverse mode, or, with
    ``outer_jacobian_strategy="forward-mode"``, traced as ops and swept with tangents as
    ``tapegrad.func.hessian`` does. ``vectorize`` is accepted and changes nothing.

    >>> import tapegrad as tg
    >>> from tapegrad.autograd.functional import hessian
    >>> hessian(lambda x: (x ** 3).sum(), tg.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")
    _check_strategy(outer_jacobian_strategy, "outer_jacobian_strategy")

    def scalar(*xs):
        out = func(*xs)
        out_tuple, outs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _strict_check(outs, "outputs", strict)
        _scalar_output(outs, out_tuple, "hessian")
        return out.reshape(())

    if outer_jacobian_strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(
                "hessian: create_graph=True and outer_jacobian_strategy=\"forward-mode\" are "
                "not supported together; use \"reverse-mode\" for a differentiable Hessian.")
        if strict:
            raise RuntimeError(
                "hessian: strict=True and outer_jacobian_strategy=\"forward-mode\" are not "
                "supported together; set strict=False or use \"reverse-mode\".")
        return _hessian_forward(scalar, inputs, inputs_tuple)

    def gradient(*xs):
        # as in PyTorch, the inner Jacobian is not strict: an independent input gets zeros,
        # which the check below reports as a Jacobian that does not depend on the inputs
        jac = jacobian(scalar, xs, create_graph=True)
        _strict_check(jac, "jacobian", strict)
        return jac

    res = jacobian(gradient, inputs, create_graph=create_graph, strict=strict,
                   vectorize=vectorize)
    return _unpack(res, (inputs_tuple, inputs_tuple))


def _hessian_forward(scalar, inputs, inputs_tuple):
    from ..func import _Run
    from ..symbolic import backward_ops
    inputs = _prepare(inputs, create_graph=False, need_graph=False)

    def gradient(*xs):
        out = scalar(*xs)
        if not out.requires_grad:          # a constant: nothing recorded to walk back
            return tuple(Tensor(np.zeros(tuple(x.shape), x.dtype)) for x in xs)
        return tuple(backward_ops(out, list(xs)))
    run = _Run(gradient, inputs)
    res = _tangent_columns(run, inputs, [tuple(x.shape) for x in inputs])
    return _unpack(res, (inputs_tuple, inputs_tuple))
