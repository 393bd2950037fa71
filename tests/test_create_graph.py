"""create_graph=True: the reverse pass recorded as ops, differentiated again.

Every row of the op table (test_ops_gradcheck.CASES) is run in tapegrad and in PyTorch:
the gradient of sum(f(x) * u) is taken with create_graph=True, and the gradient of
sum(grad * v) again, a Hessian-vector product; both must match PyTorch's. Second
derivatives are also checked against central differences of the first, without PyTorch.
Then the semantics: grad_fn on gradients, .grad with history, retain_graph's default,
third derivatives, gradient penalties, and the errors.
"""
import numpy as np
import pytest

import tapegrad as tg
from helpers import torch_or_skip
from test_ops_gradcheck import CASES, params

_rng = np.random.default_rng(7)


def _np(t):
    if isinstance(t, tg.Tensor):
        return t.detach().numpy().copy()
    return t.detach().numpy(force=True).copy()     # torch: zero tensors too


def _hvp(T, c, u_seed=0):
    """(first gradients, Hessian-vector products) of sum(f(x) * u) in system T."""
    leaves = [T.tensor(a, requires_grad=True) for a in c.inputs]
    out = c.fn(T, *leaves)
    rng = np.random.default_rng(u_seed)
    u = T.tensor(rng.standard_normal(tuple(out.shape)))
    vs = [rng.standard_normal(a.shape) for a in c.inputs]
    s = (out * u).sum()
    gs = T.autograd.grad(s, leaves, create_graph=True, allow_unused=True)
    first = [None if g is None else _np(g) for g in gs]
    terms = [(g * T.tensor(v)).sum() for g, v in zip(gs, vs) if g is not None and g.requires_grad]
    if not terms:
        return first, [None] * len(leaves)
    hv = T.autograd.grad(sum(terms[1:], terms[0]), leaves, allow_unused=True)
    return first, [None if h is None else _np(h) for h in hv]


def _dense(xs, like):
    return [np.zeros_like(a) if x is None else x for x, a in zip(xs, like)]


TORCH_CASES = [c for c in CASES if c.torch]


@pytest.mark.parametrize("c", params(TORCH_CASES))
def test_hessian_vector_products_match_torch(c):
    torch = torch_or_skip()
    torch.set_default_dtype(torch.float64)
    try:
        ours = _hvp(tg, c)
        theirs = _hvp(torch, c)
    finally:
        torch.set_default_dtype(torch.float32)
    for k, (a, b) in enumerate(zip(_dense(ours[0], c.inputs), _dense(theirs[0], c.inputs))):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11,
                                   err_msg=f"first gradient of input {k}")
    for k, (a, b) in enumerate(zip(_dense(ours[1], c.inputs), _dense(theirs[1], c.inputs))):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10,
                                   err_msg=f"Hessian-vector product, input {k}")


# a sample of the table, checked without PyTorch: the Hessian-vector product against
# central differences of the (recorded) first gradient
_SAMPLE = CASES[::7]


@pytest.mark.parametrize("c", params(_SAMPLE))
def test_hessian_vector_products_match_central_differences(c):
    first, hv = _hvp(tg, c)
    rng = np.random.default_rng(0)
    out = c.fn(tg, *[tg.tensor(a) for a in c.inputs])
    u = rng.standard_normal(tuple(out.shape))
    vs = [rng.standard_normal(a.shape) for a in c.inputs]
    eps = 1e-6

    def grads_at(arrays):
        leaves = [tg.tensor(a, requires_grad=True) for a in arrays]
        s = (c.fn(tg, *leaves) * tg.tensor(u)).sum()
        gs = tg.autograd.grad(s, leaves, allow_unused=True)
        return [np.zeros_like(a) if g is None else g.numpy() for g, a in zip(gs, arrays)]

    plus = grads_at([a + eps * v for a, v in zip(c.inputs, vs)])
    minus = grads_at([a - eps * v for a, v in zip(c.inputs, vs)])
    for k, h in enumerate(_dense(hv, c.inputs)):
        np.testing.assert_allclose(h, (plus[k] - minus[k]) / (2 * eps), rtol=1e-5, atol=1e-6,
                                   err_msg=f"Hessian-vector product of input {k}")


# ---- semantics -------------------------------------------------------------------------------------
def test_gradients_have_grad_fn_and_third_derivatives_match():
    x = tg.tensor([0.5, -1.5, 2.0], dtype=tg.float64, requires_grad=True)
    y = (tg.sin(x) * x ** 3).sum()
    (g1,) = tg.autograd.grad(y, x, create_graph=True)
    assert g1.requires_grad and g1.grad_fn is not None
    (g2,) = tg.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = tg.autograd.grad(g2.sum(), x)
    a = x.data
    d1 = np.cos(a) * a ** 3 + 3 * a ** 2 * np.sin(a)
    d2 = -np.sin(a) * a ** 3 + 6 * a ** 2 * np.cos(a) + 6 * a * np.sin(a)
    d3 = -np.cos(a) * a ** 3 - 9 * a ** 2 * np.sin(a) + 18 * a * np.cos(a) + 6 * np.sin(a)
    np.testing.assert_allclose(g1.detach().numpy(), d1, rtol=1e-12)
    np.testing.assert_allclose(g2.detach().numpy(), d2, rtol=1e-12)
    np.testing.assert_allclose(g3.numpy(), d3, rtol=1e-12)
    assert g3.grad_fn is None


def test_backward_create_graph_gives_grad_with_history_and_accumulates():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.grad_fn is not None
    np.testing.assert_allclose(x.grad.detach().numpy(), [3.0, 12.0])
    (x ** 2).sum().backward(create_graph=True)       # out of place: grad = grad + new
    np.testing.assert_allclose(x.grad.detach().numpy(), [5.0, 16.0])
    g = x.grad
    x.grad = None
    g.sum().backward()                               # d/dx (3x^2 + 2x) = 6x + 2
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 14.0])


def test_retain_graph_defaults_to_create_graph():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = (x.exp() * x).sum()
    tg.autograd.grad(y, x, create_graph=True)
    (g,) = tg.autograd.grad(y, x)            # the graph survived the first call
    np.testing.assert_allclose(g.numpy(), np.exp(x.data) * (x.data + 1))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tg.autograd.grad(y, x)
    z = (x.exp() * x).sum()
    tg.autograd.grad(z, x, create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        tg.autograd.grad(z, x)


def test_gradient_penalty_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    w1, b1, w2 = rng.standard_normal((4, 8)), rng.standard_normal(8), rng.standard_normal((8, 1))
    xs = rng.standard_normal((5, 4))
    res = []
    for T in (tg, torch):
        params = [T.tensor(a, requires_grad=True) for a in (w1, b1, w2)]
        x = T.tensor(xs, requires_grad=True)
        out = T.tanh(x @ params[0] + params[1]) @ params[2]
        (gx,) = T.autograd.grad(out.sum(), x, create_graph=True)
        penalty = ((gx.norm(2, dim=1) - 1) ** 2).mean()
        penalty.backward()
        res.append([p.grad.numpy() if T is tg else p.grad.detach().numpy() for p in params])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_newton_step_uses_the_exact_hessian():
    x = tg.tensor([1.5, -0.5], dtype=tg.float64, requires_grad=True)

    def f(x):
        return (x[0] - 1) ** 4 + (x[1] + 2) ** 2 + x[0] * x[1]

    g = tg.autograd.grad(f(x), x, create_graph=True)[0]
    rows = [tg.autograd.grad(g[i], x, retain_graph=True)[0].numpy() for i in range(2)]
    H = np.array(rows)
    a, b = x.data
    np.testing.assert_allclose(H, [[12 * (a - 1) ** 2, 1.0], [1.0, 2.0]], rtol=1e-12)


def test_differentiating_with_respect_to_grad_outputs():
    x = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    v = tg.tensor([0.5, -1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x ** 2
    (g,) = tg.autograd.grad(y, x, grad_outputs=v, create_graph=True)   # 2 x v
    (dv,) = tg.autograd.grad(g.sum(), v)
    np.testing.assert_allclose(dv.numpy(), 2 * x.data)


def test_create_graph_through_matmul_and_softmax_matches_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    W, xs = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    res = []
    for T in (tg, torch):
        w = T.tensor(W, requires_grad=True)
        x = T.tensor(xs)
        loss = T.log_softmax(x @ w, 1)[:, 1].sum()
        (gw,) = T.autograd.grad(loss, w, create_graph=True)
        (hw,) = T.autograd.grad((gw ** 2).sum(), w)
        res.append(hw.detach().numpy())
    np.testing.assert_allclose(res[0], res[1], rtol=1e-9, atol=1e-12)


def test_inplace_modified_saved_value_raises_under_create_graph():
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    y = x * 1
    z = y.sin().sum()          # sin's VJP reads its input
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        tg.autograd.grad(z, x, create_graph=True)


def test_long_loop_of_double_backward_keeps_memory_flat():
    from helpers import assert_steady
    w = tg.tensor(np.linspace(-1, 1, 16), dtype=tg.float64, requires_grad=True)

    def step():
        (g,) = tg.autograd.grad((tg.tanh(w) ** 2).sum(), w, create_graph=True)
        (g * g).sum().backward()
        w.grad = None

    assert_steady(step, warm=30, steps=150, per_step=512)


# ---- the fused VJP records (UVJP): one record per unary VJP under create_graph ------------------
_UNARY = {   # op -> (tapegrad/torch call, inputs inside the domain)
    "exp": (lambda T, x: T.exp(x), (-1.0, 0.3, 1.2)),
    "log": (lambda T, x: T.log(x), (0.4, 1.0, 2.5)),
    "sqrt": (lambda T, x: T.sqrt(x), (0.4, 1.0, 2.5)),
    "sin": (lambda T, x: T.sin(x), (-1.0, 0.3, 1.2)),
    "cos": (lambda T, x: T.cos(x), (-1.0, 0.3, 1.2)),
    "tanh": (lambda T, x: T.tanh(x), (-1.0, 0.3, 1.2)),
    "sigmoid": (lambda T, x: T.sigmoid(x), (-1.0, 0.3, 1.2)),
    "pow": (lambda T, x: x ** 3.5, (0.4, 1.0, 2.5)),
    "rdiv": (lambda T, x: 2.0 / x, (0.4, 1.0, 2.5)),
    "log1p": (lambda T, x: T.log1p(x), (0.4, 1.0, 2.5)),
    "expm1": (lambda T, x: T.expm1(x), (-1.0, 0.3, 1.2)),
    "tan": (lambda T, x: T.tan(x), (-1.0, 0.3, 1.2)),
    "asin": (lambda T, x: T.asin(x), (-0.7, 0.1, 0.6)),
    "atan": (lambda T, x: T.atan(x), (-1.0, 0.3, 1.2)),
    "sinh": (lambda T, x: T.sinh(x), (-1.0, 0.3, 1.2)),
    "acosh": (lambda T, x: T.acosh(x), (1.3, 2.0, 3.0)),
    "atanh": (lambda T, x: T.atanh(x), (-0.7, 0.1, 0.6)),
    "erf": (lambda T, x: T.erf(x), (-1.0, 0.3, 1.2)),
    "rsqrt": (lambda T, x: T.rsqrt(x), (0.4, 1.0, 2.5)),
    "reciprocal": (lambda T, x: T.reciprocal(x), (0.4, 1.0, 2.5)),
    "abs": (lambda T, x: T.abs(x) * x, (-1.0, 0.3, 1.2)),
    "relu": (lambda T, x: T.relu(x) * x, (-1.0, 0.3, 1.2)),
}


def _third(T, name):
    fn, pts = _UNARY[name]
    x = T.tensor(pts, dtype=T.float64, requires_grad=True)
    y = (fn(T, x) * T.tensor([0.7, -1.3, 0.4], dtype=T.float64)).sum()
    (g1,) = T.autograd.grad(y, x, create_graph=True)
    (g2,) = T.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = T.autograd.grad(g2.sum(), x, allow_unused=True)
    return [t.detach().numpy().copy() for t in (g1, g2)] + \
        [np.zeros(3) if g3 is None else _np(g3)], g1


@pytest.mark.parametrize("name", sorted(_UNARY))
def test_unary_derivatives_to_third_order_match_torch(name):
    torch = torch_or_skip()
    ours, g1 = _third(tg, name)
    theirs, tg1 = _third(torch, name)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"order {k + 1}")


def test_fused_vjp_is_one_record_named_as_torch():
    x = tg.tensor([0.5, -0.2], dtype=tg.float64, requires_grad=True)
    y = tg.tanh(x).sum()
    (g,) = tg.autograd.grad(y, x, create_graph=True)
    assert g.grad_fn.name() == "TanhBackwardBackward0"
    listing = tg.tape_listing()
    assert listing.count("unary_vjp") == 1


def test_fused_vjp_replays_under_compile():
    def f(x):
        (g,) = tg.autograd.grad(tg.sin(x).sum(), x, create_graph=True)
        return (g * g).sum()          # sum(cos(x)^2); d/dx = -2 sin cos

    fc = tg.compile(f)
    for pts in ([0.1, 0.7, -1.1], [0.4, 2.0, -0.3]):
        x = tg.tensor(pts, dtype=tg.float64, requires_grad=True)
        fc(x).backward()
        np.testing.assert_allclose(x.grad.numpy(), -2 * np.sin(pts) * np.cos(pts), rtol=1e-12)
    (gx,) = tg.func.grad(f)(tg.tensor([0.3, 0.9], dtype=tg.float64)),
    np.testing.assert_allclose(gx.numpy(), -2 * np.sin([0.3, 0.9]) * np.cos([0.3, 0.9]),
                               rtol=1e-12)
    (_, tangent) = tg.func.jvp(f, (tg.tensor([0.3, 0.9], dtype=tg.float64),),
                               (tg.tensor([1.0, 0.0], dtype=tg.float64),))
    np.testing.assert_allclose(tangent.item(), -2 * np.sin(0.3) * np.cos(0.3), rtol=1e-12)
