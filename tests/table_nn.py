"""The activations of tapegrad.nn.functional: rows for the op table, and direct tests.

The rows (inputs away from kinks and from softplus's threshold) join
test_ops_gradcheck.CASES, so test_torch_parity, test_compile and test_func run them through
PyTorch parity, compiled replay, jvp and hessian, and test_ops_gradcheck imports this file
before it builds its own tests, so the rows are gradchecked there too. The direct tests
cover what the rows must avoid: large |x|, the kinks, the threshold switch, and bad arguments, each
against torch 2.13 where it is installed.

test_ops_gradcheck.py star-imports this module, and ``__all__`` (the test functions) is what
that brings in, so pytest collects these tests there.
"""
import numpy as np
import pytest

import tapegrad as tg
from test_ops_gradcheck import CASES, F, _shape_id, away, case, pos, rnd

_FIRST = len(CASES)
_SHAPES = [(), (5,), (2, 3)]

# ---- rows -----------------------------------------------------------------------------------
for s in _SHAPES:
    sid = _shape_id(s)
    case(f"F.softplus-{sid}", lambda T, x: F(T).softplus(x), rnd(*s))
    case(f"F.silu-{sid}", lambda T, x: F(T).silu(x), rnd(*s))
    case(f"F.gelu-{sid}", lambda T, x: F(T).gelu(x), rnd(*s))
    case(f"F.gelu-tanh-{sid}", lambda T, x: F(T).gelu(x, approximate="tanh"), rnd(*s))
    case(f"F.leaky_relu-{sid}", lambda T, x: F(T).leaky_relu(x), away(*s))
    case(f"F.elu-{sid}", lambda T, x: F(T).elu(x), away(*s))
    case(f"F.selu-{sid}", lambda T, x: F(T).selu(x), away(*s))
    case(f"F.celu-{sid}", lambda T, x: F(T).celu(x), away(*s))
    case(f"F.hardtanh-{sid}", lambda T, x: F(T).hardtanh(x), away(*s, points=(-1.0, 1.0)))
    case(f"F.relu6-{sid}", lambda T, x: F(T).relu6(x), away(*s, points=(0.0, 6.0), hi=8.0))
    case(f"F.logsigmoid-{sid}", lambda T, x: F(T).logsigmoid(x), rnd(*s))
    case(f"F.softsign-{sid}", lambda T, x: F(T).softsign(x), rnd(*s))
    case(f"F.tanhshrink-{sid}", lambda T, x: F(T).tanhshrink(x), rnd(*s))
# parameters; beta=10 puts threshold 20 at x = 2, so both branches are in the row
case("F.softplus-beta2-(2,3)", lambda T, x: F(T).softplus(x, beta=2.0), rnd(2, 3))
case("F.softplus-beta10-both-branches-(2,4)", lambda T, x: F(T).softplus(x, 10.0),
     away(2, 4, points=(2.0,), lo=-1.0, hi=3.0))
case("F.softplus-threshold1-(2,3)", lambda T, x: F(T).softplus(x, threshold=1.0),
     away(2, 3, points=(1.0,)))
case("F.softplus-beta-neg-(5)", lambda T, x: F(T).softplus(x, beta=-1.5, threshold=2.0),
     away(5, points=(-4 / 3,)))
case("F.leaky_relu-0.2-(2,3)", lambda T, x: F(T).leaky_relu(x, 0.2), away(2, 3))
case("F.leaky_relu-neg-slope-(5)", lambda T, x: F(T).leaky_relu(x, negative_slope=-0.5),
     away(5))
case("F.elu-alpha2-(2,3)", lambda T, x: F(T).elu(x, alpha=2.0), away(2, 3))
case("F.celu-alpha0.5-(2,3)", lambda T, x: F(T).celu(x, 0.5), away(2, 3))
case("F.hardtanh-bounds-(2,3)", lambda T, x: F(T).hardtanh(x, -0.5, 1.5),
     away(2, 3, points=(-0.5, 1.5)))
case("F.hardtanh-kw-(5)", lambda T, x: F(T).hardtanh(x, min_val=0.0, max_val=0.5),
     away(5, points=(0.0, 0.5), margin=0.1, lo=-1.0, hi=1.5))
case("F.gelu-large-(4)", lambda T, x: F(T).gelu(x), pos(4, lo=3.0, hi=6.0) * [1, -1, 1, -1])
# in place on a non-leaf: the gradient flows through the overwritten tensor
case("F.elu-inplace-(2,3)", lambda T, x: F(T).elu(x * 1.0, inplace=True), away(2, 3))
case("F.leaky_relu-inplace-(5)", lambda T, x: F(T).leaky_relu(x * 2.0, 0.1, True), away(5))
case("F.hardtanh-inplace-(2,3)", lambda T, x: F(T).hardtanh(x + 0.0, inplace=True),
     away(2, 3, points=(-1.0, 1.0)))
case("F.silu-inplace-(5)", lambda T, x: F(T).silu(x * 1.0, inplace=True), rnd(5))
case("F.relu6-inplace-(5)", lambda T, x: F(T).relu6(x - 0.0, inplace=True),
     away(5, points=(0.0, 6.0), hi=8.0))
case("F.selu-inplace-(5)", lambda T, x: F(T).selu(x * 1.0, inplace=True), away(5))
case("F.celu-inplace-(5)", lambda T, x: F(T).celu(x * 1.0, 2.0, True), away(5))
NN_CASES = CASES[_FIRST:]


# ---- direct tests against torch -------------------------------------------------------------
def _torch():
    return pytest.importorskip("torch")


def _run(T, name, xs, dtype, **kw):
    """values, input gradient and grad_fn name of F.name(x, **kw).sum() at xs."""
    x = T.tensor(np.asarray(xs, dtype), requires_grad=True)
    y = getattr(T.nn.functional, name)(x, **kw)
    y.sum().backward()
    return (np.asarray(y.detach().numpy()), np.asarray(x.grad.numpy()), y.grad_fn.name())


ACTIVATIONS = [
    ("softplus", {}), ("softplus", {"beta": 2.0}), ("softplus", {"beta": -1.0}),
    ("softplus", {"threshold": 1.0}), ("silu", {}), ("gelu", {}),
    ("gelu", {"approximate": "tanh"}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": -0.5}),
    ("elu", {}), ("elu", {"alpha": 2.0}), ("selu", {}), ("celu", {}), ("celu", {"alpha": 0.5}),
    ("hardtanh", {}), ("hardtanh", {"min_val": -0.5, "max_val": 3.0}), ("relu6", {}),
    ("logsigmoid", {}), ("softsign", {}), ("tanhshrink", {}),
]
_IDS = [f"{n}-{','.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in ACTIVATIONS]
_DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
_TOL = {np.float32: dict(rtol=2e-5, atol=1e-9), np.float64: dict(rtol=1e-12, atol=1e-15)}
_LARGE = [-1e30, -1e4, -1000.0, -100.0, -30.0, 30.0, 100.0, 1000.0, 1e4, 1e30]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=_IDS)
def test_large_inputs_are_finite_and_match_torch(name, kw, dtype):
    torch = _torch()
    v, g, _ = _run(tg, name, _LARGE, dtype, **kw)
    tv, tgr, _ = _run(torch, name, _LARGE, dtype, **kw)
    assert np.isfinite(v).all() and np.isfinite(g).all(), (v, g)
    assert v.dtype == g.dtype == dtype
    np.testing.assert_allclose(v, tv, **_TOL[dtype])
    # torch's tanh-gelu gradient is nan in float32 at 1e30 (x**3 overflows); ours is finite
    ok = np.isfinite(tgr)
    assert ok.sum() >= len(_LARGE) - 2
    np.testing.assert_allclose(g[ok], tgr[ok], **_TOL[dtype])


def test_named_large_values():
    x = tg.tensor([-1000.0, 1000.0], dtype=tg.float32, requires_grad=True)
    assert F(tg).logsigmoid(x).tolist() == [-1000.0, 0.0]
    assert F(tg).softplus(x).tolist() == [0.0, 1000.0]
    F(tg).logsigmoid(x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]


# every kink (and the points where a composition's pieces meet) with torch's gradient there
KINKS = [
    ("leaky_relu", {}, [0.0, -0.0]), ("leaky_relu", {"negative_slope": -0.5}, [0.0]),
    ("elu", {}, [0.0]), ("elu", {"alpha": 2.0}, [0.0]), ("selu", {}, [0.0]),
    ("celu", {"alpha": 2.0}, [0.0]), ("celu", {"alpha": -1.0}, [0.0]),
    ("hardtanh", {}, [-1.0, 1.0]), ("hardtanh", {"min_val": -0.5, "max_val": 3.0}, [-0.5, 3.0]),
    ("hardtanh", {"min_val": 1.0, "max_val": 1.0}, [1.0, 0.0, 2.0]),
    ("hardtanh", {"min_val": float("-inf"), "max_val": 2.0}, [2.0, -1e30]),
    ("hardtanh", {"min_val": -2.0, "max_val": float("inf")}, [-2.0, 1e30]),
    ("relu6", {}, [0.0, 6.0]), ("softplus", {}, [0.0, 20.0]),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, [0.0, 2.5]), ("logsigmoid", {}, [0.0]),
    ("silu", {}, [0.0]), ("gelu", {}, [0.0]), ("softsign", {}, [0.0]), ("tanhshrink", {}, [0.0]),
]


@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("name,kw,xs", KINKS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(KINKS)])
def test_kink_gradients_match_torch(name, kw, xs, dtype):
    torch = _torch()
    v, g, _ = _run(tg, name, xs, dtype, **kw)
    tv, tgr, _ = _run(torch, name, xs, dtype, **kw)
    np.testing.assert_allclose(v, tv, **_TOL[dtype])
    np.testing.assert_allclose(g, tgr, rtol=4 * np.finfo(dtype).eps, atol=0)


def test_kink_gradients_by_hand():
    def grad(fn, xs):
        x = tg.tensor(xs, dtype=tg.float64, requires_grad=True)
        fn(x).sum().backward()
        return x.grad.tolist()
    assert grad(lambda x: F(tg).relu6(x), [0.0, 6.0, 3.0]) == [0.0, 0.0, 1.0]
    assert grad(lambda x: F(tg).hardtanh(x), [-1.0, 1.0, 0.0]) == [0.0, 0.0, 1.0]
    assert grad(lambda x: F(tg).leaky_relu(x, 0.25), [0.0]) == [0.25]
    assert grad(lambda x: F(tg).elu(x, alpha=3.0), [0.0]) == [3.0]
    assert grad(lambda x: F(tg).softplus(x), [0.0]) == [0.5]


@pytest.mark.parametrize("dtype", _DTYPES)
def test_softplus_threshold_switch(dtype):
    torch = _torch()
    xs = [0.999, 1.0, 1.001, 2.4999, 2.5, 2.5001, 30.0, -30.0]
    for kw in [{"threshold": 1.0}, {"beta": 2.0, "threshold": 5.0}, {"beta": -1.0, "threshold": 1.0},
               {"threshold": float("inf")}, {"threshold": -3.0}]:
        v, g, _ = _run(tg, "softplus", xs, dtype, **kw)
        tv, tgr, _ = _run(torch, "softplus", xs, dtype, **kw)
        np.testing.assert_allclose(v, tv, **_TOL[dtype], err_msg=str(kw))
        np.testing.assert_allclose(g, tgr, **_TOL[dtype], err_msg=str(kw))
    # beyond the threshold the value is the input itself, bit for bit, with gradient 1
    x = np.array([1.001, 7.25, 123.456], dtype)
    v, g, _ = _run(tg, "softplus", x, dtype, threshold=1.0)
    np.testing.assert_array_equal(v, x)
    np.testing.assert_array_equal(g, np.ones(3, dtype))
    # at the threshold itself the soft branch is taken (PyTorch tests beta * x > threshold)
    v, _, _ = _run(tg, "softplus", [1.0], dtype, threshold=1.0)
    np.testing.assert_allclose(v, [np.log1p(np.e)], rtol=1e-6)


def test_softplus_compiles_without_reading_values():
    # the threshold switch is arithmetic on the tape, so compile replays it (no eager fallback)
    f = tg.compile(lambda x: F(tg).softplus(x, threshold=1.0))
    x = tg.tensor([0.5, 2.0], dtype=tg.float64, requires_grad=True)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("error")
        f(x)
        y = f(tg.tensor([2.0, 0.5], dtype=tg.float64, requires_grad=True))
    assert y.tolist() == [2.0, float(np.log1p(np.exp(0.5)))]


@pytest.mark.parametrize("dtype", _DTYPES)
def test_gelu_modes(dtype):
    torch = _torch()
    xs = np.linspace(-6, 6, 25)
    exact, ge, _ = _run(tg, "gelu", xs, dtype)
    approx, ga, _ = _run(tg, "gelu", xs, dtype, approximate="tanh")
    for mode, v, g in [("none", exact, ge), ("tanh", approx, ga)]:
        tv, tgr, _ = _run(torch, "gelu", xs, dtype, approximate=mode)
        np.testing.assert_allclose(v, tv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, tgr, rtol=1e-5, atol=1e-6)
    assert 1e-5 < np.max(np.abs(exact - approx)) < 1e-2     # two different functions
    # the exact mode: x * Phi(x), with Phi the standard normal CDF
    from math import erf, sqrt
    want = [x * 0.5 * (1 + erf(x / sqrt(2))) for x in xs]
    np.testing.assert_allclose(exact, want, rtol=1e-5 if dtype == np.float32 else 1e-13,
                               atol=1e-6 if dtype == np.float32 else 1e-15)


def _bad_calls(T):
    x = T.ones(2)
    i = T.tensor([1, 2])
    f = T.nn.functional
    return [
        (RuntimeError, "approximate argument must be either none or tanh",
         lambda: f.gelu(x, approximate="foo")),
        (TypeError, "argument 'approximate' must be str", lambda: f.gelu(x, approximate=None)),
        (TypeError, "positional argument", lambda: f.gelu(x, "tanh")),
        (ValueError, "min_val cannot be greater than max_val", lambda: f.hardtanh(x, 2.0, 1.0)),
        (RuntimeError, "alpha cannot be 0 for CELU", lambda: f.celu(x, alpha=0.0)),
        (TypeError, "argument 'beta' must be Number", lambda: f.softplus(x, beta="a")),
        (TypeError, "argument 'threshold'.* must be Number", lambda: f.softplus(x, 1.0, "a")),
        (TypeError, "argument 'negative_slope' .*must be Number", lambda: f.leaky_relu(x, "a")),
        (TypeError, "argument 'alpha' .*must be Number", lambda: f.elu(x, "a")),
        (TypeError, "argument 'input' .*must be Tensor, not list", lambda: f.silu([1.0])),
        (NotImplementedError, "not implemented for 'Long'", lambda: f.softplus(i)),
        (NotImplementedError, "not implemented for 'Long'", lambda: f.gelu(i)),
        (NotImplementedError, "not implemented for 'Long'", lambda: f.elu(i)),
        (NotImplementedError, "not implemented for 'Long'", lambda: f.logsigmoid(i)),
        (NotImplementedError, "not implemented for 'Long'", lambda: f.leaky_relu(i)),
        (RuntimeError, "a leaf Variable that requires grad",
         lambda: f.elu(T.ones(2, requires_grad=True), inplace=True)),
        (RuntimeError, "a leaf Variable that requires grad",
         lambda: f.hardtanh(T.ones(2, requires_grad=True), inplace=True)),
    ]


@pytest.mark.parametrize("k", range(len(_bad_calls(tg))))
def test_bad_arguments_raise_what_torch_raises(k):
    err, match, call = _bad_calls(tg)[k]
    with pytest.raises(err, match=match):
        call()
    try:
        torch = __import__("torch")
    except ImportError:
        return
    terr, tmatch, tcall = _bad_calls(torch)[k]
    with pytest.raises(terr, match=tmatch):
        tcall()


def test_inplace_overwrites_and_keeps_the_gradient():
    torch = _torch()
    for name, kw in [("elu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("hardtanh", {}),
                     ("relu6", {}), ("silu", {}), ("selu", {}), ("celu", {"alpha": 2.0})]:
        got = []
        for T in (tg, torch):
            x = T.tensor([-2.0, -0.5, 0.5, 3.0, 7.0], dtype=T.float64, requires_grad=True)
            y = x * 1.5
            out = getattr(T.nn.functional, name)(y, inplace=True, **kw)
            assert out is y
            (out * out).sum().backward()
            got.append((y.detach().numpy().copy(), x.grad.numpy().copy(), out.grad_fn.name()))
        (v, g, n), (tv, tgr, tn) = got
        np.testing.assert_allclose(v, tv, rtol=1e-13, err_msg=name)
        np.testing.assert_allclose(g, tgr, rtol=1e-13, err_msg=name)
        assert n == tn, (name, n, tn)


def test_inplace_on_a_saved_value_raises_at_backward():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    y = x.exp()                   # exp saves its output for the gradient
    F(tg).elu(y, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_without_grad_writes_the_data():
    x = tg.tensor([-1.0, 0.5, 8.0])
    assert F(tg).relu6(x, inplace=True) is x
    assert x.tolist() == [0.0, 0.5, 6.0]
    y = tg.tensor([-1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        F(tg).leaky_relu(y, 0.5, inplace=True)
    assert y.tolist() == [-0.5, 2.0]


@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=_IDS)
def test_grad_fn_names_match_torch(name, kw):
    torch = _torch()
    xs = [-1.5, 0.5, 2.5]
    assert _run(tg, name, xs, np.float64, **kw)[2] == _run(torch, name, xs, np.float64, **kw)[2]


def test_integer_hardtanh_stays_integer():
    torch = _torch()
    for T in (tg, torch):
        out = T.nn.functional.hardtanh(T.tensor([-3, 0, 3]))
        assert out.tolist() == [-1, 0, 1] and "int64" in str(out.dtype)


__all__ = [name for name in dir() if name.startswith("test_")]
