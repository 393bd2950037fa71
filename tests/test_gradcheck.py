"""tapegrad.autograd.gradcheck and gradgradcheck, checked against torch.autograd's.

Every function below is written as ``fn(T, *args)`` against the PyTorch API, so that the
same row runs through tapegrad's checker (T = tapegrad) and PyTorch's (T = torch). The
correct rows must pass; the wrong rows (a ``detach()`` inside, so that the analytical
Jacobian misses a term, or a kink) must fail with a GradcheckError that shows both
Jacobians. Then the checker goes over a sample of the op table of test_ops_gradcheck.py,
in both modes.
"""
import re
import warnings

import numpy as np
import pytest

import tapegrad as tg
import test_ops_gradcheck as table
from helpers import torch_or_skip
from tapegrad.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck

X = [0.3, 0.7, 1.1]
Y = [[0.2, -0.4, 0.5], [1.0, 2.0, -1.0]]
A = [[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]]
F32_WARNING = ("Input #{} requires gradient and is not a double precision floating point or "
               "complex. This check will likely fail if all the inputs are not of double "
               "precision floating point or complex. ")


class Const:
    """An argument passed to func as it is (a number, a dim, a tensor without grad)."""

    def __init__(self, value, tensor=False):
        self.value, self.tensor = value, tensor


def build(T, spec, dtype=None):
    """The inputs tuple for T: arrays become float64 leaves that require grad."""
    dt = dtype or T.float64
    out = []
    for s in spec:
        if isinstance(s, Const):
            out.append(T.tensor(np.asarray(s.value), dtype=dt) if s.tensor else s.value)
        else:
            out.append(T.tensor(np.asarray(s, np.float64), dtype=dt, requires_grad=True))
    return tuple(out)


def F(T):
    return T.nn.functional


# (id, fn(T, *args), inputs)
CORRECT = [
    ("sin", lambda T, x: T.sin(x), [X]),
    ("0-d-exp", lambda T, x: x.exp(), [1.25]),
    ("broadcast-product", lambda T, x, y: x * y, [X, Y]),
    ("two-outputs", lambda T, x, y: (x.sin() * y, (y ** 2).sum()), [X, Y]),
    ("python-number-arg", lambda T, x, k, y: x * k + y.tanh(), [X, Const(3.0), Y]),
    ("dim-arg-and-constant-tensor",
     lambda T, y, w, d: (y * w).sum(dim=d), [Y, Const(np.arange(6.0).reshape(2, 3), True),
                                              Const(1)]),
    ("matmul-tanh", lambda T, a, y: (a @ y).tanh(), [A, Y]),
    ("softmax", lambda T, y: F(T).softmax(y, dim=-1), [Y]),
    ("log_softmax-nll", lambda T, y: F(T).nll_loss(F(T).log_softmax(y, dim=1),
                                                   T.tensor([2, 0])), [Y]),
    ("output-is-an-input", lambda T, x: (x, x * 2), [X]),
    ("unused-input", lambda T, x, y: x * 2, [X, Y]),
    ("second-output-detached", lambda T, x: (x * 2, x.detach() * 3), [X]),
]

# (id, fn, inputs, the (output, input) the mismatch is reported for, or None for the
# "no differentiable output" failure)
WRONG = [
    ("detach-inside", lambda T, x: x.detach() * x, [X], (0, 0)),
    ("detach-in-second-output", lambda T, x: (x * 2, x.detach() * x), [X], (1, 0)),
    ("detach-second-input", lambda T, x, y: x * y.detach() + y, [X, Y], (0, 1)),
    ("relu-at-its-kink", lambda T, x: T.relu(x), [[0.0, 1.0]], (0, 0)),
    ("everything-detached", lambda T, x: x.detach() * 2, [X], None),
]

MODES = [pytest.param(False, id="slow"), pytest.param(True, id="fast")]


def _row(rows):
    return [pytest.param(*r, id=r[0]) for r in rows]


def _fn(T, fn):
    return lambda *args: fn(T, *args)


# ---- tapegrad alone -------------------------------------------------------------------------
@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec", _row(CORRECT))
def test_correct_functions_pass(name, fn, spec, fast):
    assert gradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast) is True


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec,where", _row(WRONG))
def test_wrong_gradients_raise(name, fn, spec, where, fast):
    with pytest.raises(GradcheckError) as info:
        gradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast)
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    if where is None:
        assert msg.startswith("Numerical gradient for function expected to be zero")
    else:
        assert msg.startswith(f"Jacobian mismatch for output {where[0]} with respect to input "
                              f"{where[1]},\nnumerical:")
        assert "\nanalytical:" in msg


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec,where", _row(WRONG))
def test_raise_exception_false_returns_false(name, fn, spec, where, fast):
    assert gradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast,
                     raise_exception=False) is False


@pytest.mark.parametrize("name,fn,spec", _row(CORRECT + [r[:3] for r in WRONG]))
def test_fast_mode_agrees_with_slow_mode(name, fn, spec):
    slow = gradcheck(_fn(tg, fn), build(tg, spec), raise_exception=False)
    fast = gradcheck(_fn(tg, fn), build(tg, spec), raise_exception=False, fast_mode=True)
    assert slow == fast


def test_message_shows_both_jacobians():
    # x.detach() * x: the numerical Jacobian is diag(2x), the analytical one diag(x)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: x.detach() * x, build(tg, [X]))
    assert str(info.value) == (
        "Jacobian mismatch for output 0 with respect to input 0,\n"
        "numerical:tensor([[0.6000, 0.0000, 0.0000],\n"
        "        [0.0000, 1.4000, 0.0000],\n"
        "        [0.0000, 0.0000, 2.2000]], dtype=tapegrad.float64)\n"
        "analytical:tensor([[0.3000, 0.0000, 0.0000],\n"
        "        [0.0000, 0.7000, 0.0000],\n"
        "        [0.0000, 0.0000, 1.1000]], dtype=tapegrad.float64)\n")


def test_fast_mode_message_shows_the_projections_and_the_full_jacobians():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: x.detach() * x, build(tg, [X]), fast_mode=True)
    msg = str(info.value)
    num, ana = (float(v) for v in re.match(
        r"Jacobian mismatch for output 0 with respect to input 0,\n"
        r"numerical:(\S+)\nanalytical:(\S+)\n", msg).groups())
    assert num == pytest.approx(2 * ana, rel=1e-6)      # v.diag(2x).u against v.diag(x).u
    assert "fast mode" in msg and "slow mode" in msg
    assert "[0.0000, 1.4000, 0.0000]" in msg and "[0.0000, 0.7000, 0.0000]" in msg
    assert "The max per-element difference (slow mode) is: 1.09999" in msg


def test_forward_mode_check():
    spec = [X, Y]
    fn = _fn(tg, lambda T, x, y: (x.sin() * y, (y ** 2).sum()))
    assert gradcheck(fn, build(tg, spec), check_forward_ad=True)
    assert gradcheck(fn, build(tg, spec), check_forward_ad=True, fast_mode=True)
    with pytest.raises(GradcheckError, match="^Jacobian computed with forward mode mismatch "
                                             "for output 0 with respect to input 0,"):
        gradcheck(lambda x: x.detach() * x, build(tg, [X]), check_forward_ad=True,
                  check_backward_ad=False)


def test_float32_inputs_get_pytorchs_warning():
    x32 = tg.tensor(X, requires_grad=True)
    with pytest.warns(UserWarning, match=re.escape(F32_WARNING.format(0))) as record:
        gradcheck(tg.sin, (x32,), raise_exception=False)
    assert record[0].filename == __file__            # points at the caller's line
    x64 = build(tg, [X])[0]
    with pytest.warns(UserWarning, match=re.escape(F32_WARNING.format(1))):
        gradcheck(lambda a, b: a * b, (x64, x32), raise_exception=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # float32 that needs no grad: no warning
        assert gradcheck(lambda a, b: a * b, (x64, tg.tensor(X)))


def test_inputs_are_left_as_they_were():
    x = build(tg, [X])[0]
    x.data.flags.writeable = False                   # gradcheck never writes into an input
    before = x.data.copy()
    assert gradcheck(lambda t: t ** 3, (x,))
    assert gradcheck(lambda t: t ** 3, (x,), fast_mode=True)
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_argument_errors():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        gradcheck(lambda t: t * 2, (tg.tensor(X, dtype=tg.float64),))
    with pytest.raises(AssertionError, match="check_forward_ad or check_backward_ad"):
        gradcheck(lambda t: t * 2, build(tg, [X]), check_backward_ad=False)
    with pytest.raises(AssertionError, match="check_batched_grad=True requires"):
        gradcheck(lambda t: t * 2, build(tg, [X]), check_batched_grad=True,
                  check_backward_ad=False, check_forward_ad=True)
    with pytest.raises(TypeError, match="must return a Tensor or a tuple of Tensors"):
        gradcheck(lambda t: [t * 2, 3.0], build(tg, [X]))


def test_gradcheck_error_is_exported():
    assert issubclass(GradcheckError, RuntimeError)
    assert tg.autograd.gradcheck.GradcheckError is GradcheckError


# ---- our own op table ---------------------------------------------------------------------
def _family(case_id):
    return re.split(r"-[(\d]", case_id)[0]


def _sample():
    """The first row of every op family in the table (every op, not every shape)."""
    seen, rows = set(), []
    for c in table.CASES:
        if _family(c.id) not in seen:
            seen.add(_family(c.id))
            rows.append(c)
    return rows


SAMPLE = _sample()


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("c", table.params(SAMPLE))
def test_op_table(c, fast):
    xs = tuple(tg.tensor(a, requires_grad=True) for a in c.inputs)
    assert gradcheck(_fn(tg, c.fn), xs, fast_mode=fast)


def test_op_table_sample_covers_every_family():
    assert len(SAMPLE) == len({_family(c.id) for c in table.CASES}) > 100


# ---- against torch.autograd.gradcheck -----------------------------------------------------
def _outcome(T, check, fn, inputs, **kw):
    """True, False, or the name of the exception class check raised."""
    try:
        return check(_fn(T, fn), inputs, **kw)
    except NotImplementedError:
        raise                   # a missing feature, not an outcome to compare
    except Exception as e:      # noqa: BLE001 - the type is what is compared
        return type(e).__name__


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec", _row(CORRECT + [r[:3] for r in WRONG]))
def test_same_outcome_as_torch(name, fn, spec, fast):
    torch = torch_or_skip()
    ours = _outcome(tg, gradcheck, fn, build(tg, spec), fast_mode=fast)
    theirs = _outcome(torch, torch.autograd.gradcheck, fn, build(torch, spec), fast_mode=fast)
    assert ours == theirs
    ours = _outcome(tg, gradcheck, fn, build(tg, spec), fast_mode=fast, raise_exception=False)
    theirs = _outcome(torch, torch.autograd.gradcheck, fn, build(torch, spec), fast_mode=fast,
                      raise_exception=False)
    assert ours == theirs


@pytest.mark.parametrize("name,fn,spec,where", _row([r for r in WRONG if r[3]]))
def test_same_message_as_torch(name, fn, spec, where):
    torch = torch_or_skip()
    with pytest.raises(GradcheckError) as ours:
        gradcheck(_fn(tg, fn), build(tg, spec))
    from torch.autograd.gradcheck import GradcheckError as TorchGradcheckError
    with pytest.raises(TorchGradcheckError) as theirs:
        torch.autograd.gradcheck(_fn(torch, fn), build(torch, spec))
    assert str(ours.value).replace("tapegrad.", "torch.") == str(theirs.value)


def test_same_float32_warning_and_outcome_as_torch():
    torch = torch_or_skip()
    for fast in (False, True):
        with pytest.warns(UserWarning) as ours:
            r_ours = gradcheck(tg.sin, (tg.tensor(X, requires_grad=True),), fast_mode=fast,
                               raise_exception=False)
        with pytest.warns(UserWarning) as theirs:
            r_theirs = torch.autograd.gradcheck(torch.sin, (torch.tensor(X, requires_grad=True),),
                                                fast_mode=fast, raise_exception=False)
        assert str(ours[0].message) == str(theirs[0].message) == F32_WARNING.format(0)
        assert r_ours == r_theirs


def test_same_argument_errors_as_torch():
    torch = torch_or_skip()
    cases = [(lambda T: (T.tensor(X, dtype=T.float64),), {}),
             (lambda T: build(T, [X]), dict(check_backward_ad=False)),
             (lambda T: build(T, [X]), dict(check_batched_grad=True, check_backward_ad=False,
                                            check_forward_ad=True))]
    for make, kw in cases:
        ours = _outcome(tg, gradcheck, lambda T, t: t * 2, make(tg), **kw)
        theirs = _outcome(torch, torch.autograd.gradcheck, lambda T, t: t * 2, make(torch), **kw)
        assert ours in ("ValueError", "_OptionError") and theirs in ("ValueError",
                                                                      "AssertionError")
        assert (ours == "ValueError") == (theirs == "ValueError")


@pytest.mark.parametrize("c", table.params([c for c in SAMPLE if c.torch]))
def test_op_table_same_outcome_as_torch(c):
    torch = torch_or_skip()
    for fast in (False, True):
        ours = _outcome(tg, gradcheck, c.fn, tuple(tg.tensor(a, requires_grad=True)
                                                   for a in c.inputs), fast_mode=fast)
        theirs = _outcome(torch, torch.autograd.gradcheck, c.fn,
                          tuple(torch.tensor(a, requires_grad=True) for a in c.inputs),
                          fast_mode=fast)
        assert ours == theirs is True


# ---- gradgradcheck ------------------------------------------------------------------------

SECOND = [
    ("cube", lambda T, x: x ** 3, [X]),
    ("sin-times", lambda T, x, y: x.sin() * y, [X, Y]),
    ("two-outputs", lambda T, x, y: ((x * y).tanh(), (y ** 2).sum() * x), [X, Y]),
    ("python-number-arg", lambda T, x, k: (x * k).exp(), [X, Const(0.5)]),
    ("matmul-softmax", lambda T, a, y: F(T).softmax(a @ y, dim=0), [A, Y]),
]
# x * x.detach(): the gradient x.detach() * g misses the term g * x, so d(grad)/dx is wrong
SECOND_WRONG = [("detach-inside", lambda T, x: x * x.detach(), [X])]


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec", _row(SECOND))
def test_gradgradcheck_passes(name, fn, spec, fast):
    assert gradgradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast) is True


def test_gradgradcheck_with_given_and_noncontiguous_grad_outputs():
    x = build(tg, [X])[0]
    g = tg.tensor([1.0, -2.0, 0.5], dtype=tg.float64, requires_grad=True)
    assert gradgradcheck(lambda t: t ** 3, (x,), (g,))
    assert gradgradcheck(lambda t: t ** 3, (x,), gen_non_contig_grad_outputs=True)


@pytest.mark.parametrize("fast", MODES)
@pytest.mark.parametrize("name,fn,spec", _row(SECOND_WRONG))
def test_gradgradcheck_catches_a_wrong_second_derivative(name, fn, spec, fast):
    with pytest.raises(GradcheckError, match="^Jacobian mismatch for output 0 with respect to "
                                             "input 0,\nnumerical:"):
        gradgradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast)
    assert gradgradcheck(_fn(tg, fn), build(tg, spec), fast_mode=fast,
                         raise_exception=False) is False


@pytest.mark.parametrize("name,fn,spec", _row(SECOND + SECOND_WRONG))
def test_gradgradcheck_same_outcome_as_torch(name, fn, spec):
    torch = torch_or_skip()
    ours = _outcome(tg, gradgradcheck, fn, build(tg, spec), raise_exception=False)
    theirs = _outcome(torch, torch.autograd.gradgradcheck, fn, build(torch, spec),
                      raise_exception=False)
    assert ours == theirs


def test_gradgradcheck_argument_errors():
    with pytest.raises(AssertionError, match="check_fwd_over_rev or check_rev_over_rev"):
        gradgradcheck(lambda t: t * 2, build(tg, [X]), check_rev_over_rev=False)
    with pytest.raises(AssertionError, match="check_undefined_grad=True requires"):
        gradgradcheck(lambda t: t * 2, build(tg, [X]), check_rev_over_rev=False,
                      check_fwd_over_rev=True)


# ---- custom Functions ---------------------------------------------------------------------
def _functions(T):
    """Custom Functions written against T.autograd.Function: a correct one, one with a
    wrong backward, one whose backward is not deterministic, and one whose backward
    ignores a zero incoming gradient."""
    class Cube(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2

    class WrongCube(Cube):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x ** 2

    class NoisyCube(Cube):
        calls = [0]

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            NoisyCube.calls[0] += 1
            return g * (3 * x ** 2 + 1e-9 * NoisyCube.calls[0])

    class IgnoresZero(Cube):
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2 if float(g.abs().sum()) > 0 else T.ones_like(x)

    return Cube, WrongCube, NoisyCube, IgnoresZero


def test_custom_functions():
    cube, wrong, noisy, ignores_zero = _functions(tg)
    x = build(tg, [X])
    assert gradcheck(cube.apply, x) and gradcheck(cube.apply, x, fast_mode=True)
    assert gradgradcheck(cube.apply, x)
    with pytest.raises(GradcheckError, match="^Jacobian mismatch for output 0 with respect to "
                                             "input 0,\nnumerical:"):
        gradcheck(wrong.apply, x)
    assert gradcheck(wrong.apply, x, fast_mode=True, raise_exception=False) is False
    with pytest.raises(GradcheckError, match="Backward is not reentrant"):
        gradcheck(noisy.apply, x)
    assert gradcheck(noisy.apply, x, nondet_tol=1e-6)
    with pytest.raises(GradcheckError, match="backward not multiplied by grad_output"):
        gradcheck(ignores_zero.apply, x)


def test_custom_functions_same_outcome_as_torch():
    torch = torch_or_skip()
    for kw in ({}, dict(fast_mode=True), dict(nondet_tol=1e-6)):
        for ours, theirs in zip(_functions(tg), _functions(torch)):
            got = _outcome(tg, gradcheck, lambda T, t: ours.apply(t), build(tg, [X]), **kw)
            want = _outcome(torch, torch.autograd.gradcheck, lambda T, t: theirs.apply(t),
                            build(torch, [X]), **kw)
            assert got == want, (ours.__name__, kw)


def test_docstring_examples_run():
    import doctest
    import sys
    module = sys.modules["tapegrad.autograd.gradcheck"]     # the module, not the function
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
