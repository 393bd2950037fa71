"""tapegrad.func: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, hessian.

Oracles: eager autograd (tg.autograd.grad and backward), central finite differences, the
transforms against each other (vjp rows of jacrev, jvp columns of jacfwd, jacrev == jacfwd,
the dot-product identity u.(J t) == (u^T J).t), and Hessians known in closed form. The op
table of test_ops_gradcheck.py runs through vjp, jvp and hessian-vector products.
"""

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.tape
import test_ops_gradcheck as table
from helpers import in_fresh_thread
from tapegrad import func

TIGHT = dict(rtol=1e-10, atol=1e-12)
FD = dict(rtol=1e-6, atol=1e-7)


def T(a, rg=False):
    return tg.tensor(np.asarray(a, np.float64), requires_grad=rg)


def arr(t):
    assert isinstance(t, tg.Tensor), type(t)
    return t.detach().numpy()


def eager(fn, arrays):
    """Value of fn on plain float64 tensors, without recording."""
    with tg.no_grad():
        return fn(*[T(a) for a in arrays]).detach().numpy().copy()


def fd_jacobian(fn, arrays, j, eps=1e-6, evaluate=None):
    """Central-difference Jacobian of evaluate(fn, arrays) (default: fn's value) w.r.t.
    arrays[j]: shape out.shape + in.shape."""
    evaluate = evaluate or eager
    base = evaluate(fn, arrays)
    x = arrays[j]
    jac = np.zeros(base.shape + x.shape)
    for i in np.ndindex(x.shape):
        plus = [a.copy() for a in arrays]
        minus = [a.copy() for a in arrays]
        plus[j][i] += eps
        minus[j][i] -= eps
        jac[(...,) + i] = (evaluate(fn, plus) - evaluate(fn, minus)) / (2 * eps)
    return jac


def autograd_grads(fn, arrays, nums):
    leaves = [T(a, rg=True) for a in arrays]
    out = fn(*leaves)
    return [g.numpy() for g in tg.autograd.grad(out, [leaves[j] for j in nums])]


_r = np.random.default_rng(7)
A33 = _r.standard_normal((3, 3))
W1 = _r.standard_normal((3, 4)) * 0.5
W2 = _r.standard_normal((4, 2)) * 0.5

# scalar-valued functions of float64 arrays: (id, fn, inputs)
SCALAR = [
    ("sum-sin", lambda x: x.sin().sum(), [_r.standard_normal(4)]),
    ("quadratic-form", lambda x: x @ tg.tensor(A33) @ x, [_r.standard_normal(3)]),
    ("exp-times-y", lambda x, y: (x.exp() * y).sum(), [_r.standard_normal(3),
                                                       _r.standard_normal(3)]),
    ("logsumexp", lambda x: x.exp().sum().log(), [_r.standard_normal(5)]),
    ("mlp-loss", lambda x, w1, w2: tg.nn.functional.cross_entropy(
        (x @ w1).tanh() @ w2, tg.tensor(np.array([0, 1, 1]))),
     [_r.standard_normal((3, 3)), W1, W2]),
    ("broadcast-div", lambda x, y: (x / (1 + y * y)).mean(), [_r.standard_normal((2, 3)),
                                                             _r.standard_normal(3)]),
    ("softmax-weighted", lambda x: (tg.nn.functional.softmax(x, dim=1)
                                    * tg.tensor(np.arange(6.0).reshape(2, 3))).sum(),
     [_r.standard_normal((2, 3))]),
    ("index-cat", lambda x, y: (tg.cat([x[1:], y * 2]) ** 2).sum() + x[0] * y[-1],
     [_r.standard_normal(4), _r.standard_normal(2)]),
    ("pow-tt", lambda x, y: (x ** y).sum(), [_r.uniform(0.5, 2, 3), _r.standard_normal(3)]),
    ("max-reduce", lambda x: x.max(dim=1)[0].sum() + x.mean(), [table.distinct(2, 3)]),
]
SCALAR_P = [pytest.param(fn, xs, id=i) for i, fn, xs in SCALAR]

# tensor-valued functions: (id, fn, inputs)
VECTOR = [
    ("elementwise", lambda x, y: x.tanh() * y + x.exp(), [_r.standard_normal(3),
                                                          _r.standard_normal(3)]),
    ("matmul", lambda x, y: x @ y, [_r.standard_normal((2, 3)), _r.standard_normal((3, 2))]),
    ("softmax", lambda x: tg.nn.functional.softmax(x, dim=-1), [_r.standard_normal((2, 3))]),
    ("log_softmax", lambda x: tg.nn.functional.log_softmax(x, dim=0),
     [_r.standard_normal((3, 2))]),
    ("reductions", lambda x: x.sum(dim=0) * x.mean(dim=1).sum() + x.max(dim=0)[0],
     [table.distinct(2, 3)]),
    ("broadcasting", lambda x, y: x * y - y / 3.0, [_r.standard_normal((2, 1)),
                                                    _r.standard_normal(3)]),
    ("indexing", lambda x: x[tg.tensor(np.array([2, 0, 2]))] * x[1:3].sum() + x[:, 0:1],
     [_r.standard_normal((3, 2))]),
    ("cat", lambda x, y: tg.cat([x, y.sin(), x * y[:2]]), [_r.standard_normal(2),
                                                          _r.standard_normal(3)]),
    ("stack-transpose", lambda x: tg.stack([x.t(), x.t() ** 2], dim=0),
     [_r.standard_normal((2, 3))]),
    ("scalar-out", lambda x: (x * x).sum(), [_r.standard_normal(3)]),
    ("0d-in", lambda x, y: x * y + x.exp(), [np.array(0.7), _r.standard_normal(3)]),
]
VECTOR_P = [pytest.param(fn, xs, id=i) for i, fn, xs in VECTOR]


# ---- grad and value_and_grad --------------------------------------------------------------------
@pytest.mark.parametrize("fn,xs", SCALAR_P)
def test_grad_matches_autograd_and_finite_differences(fn, xs):
    for j in range(len(xs)):
        g = func.grad(fn, argnums=j)(*[T(a) for a in xs])
        assert isinstance(g, tg.Tensor) and g.shape == xs[j].shape and g.dtype == tg.float64
        (want,) = autograd_grads(fn, xs, [j])
        np.testing.assert_allclose(arr(g), want, **TIGHT)
        np.testing.assert_allclose(arr(g), fd_jacobian(fn, xs, j), **FD)


@pytest.mark.parametrize("fn,xs", SCALAR_P)
def test_value_and_grad_with_every_argnum_as_a_tuple(fn, xs):
    nums = tuple(range(len(xs)))
    value, grads = func.value_and_grad(fn, argnums=nums)(*[T(a) for a in xs])
    assert isinstance(grads, tuple) and len(grads) == len(xs)
    np.testing.assert_allclose(arr(value), eager(fn, xs), **TIGHT)
    for g, want, a in zip(grads, autograd_grads(fn, xs, nums), xs):
        assert g.shape == a.shape
        np.testing.assert_allclose(arr(g), want, **TIGHT)
    # a tuple of one is still a tuple; an int is not
    one = func.grad(fn, argnums=(0,))(*[T(a) for a in xs])
    assert isinstance(one, tuple) and len(one) == 1
    np.testing.assert_allclose(arr(one[0]), arr(grads[0]), **TIGHT)


def test_grad_argnums_pick_and_order():
    fn = lambda x, y, z: (x * 2 + y * 3 + z * z).sum()    # noqa: E731
    x, y, z = T([1.0, 2.0]), T([3.0, 4.0]), T([5.0, -6.0])
    gz, gx = func.grad(fn, argnums=(2, 0))(x, y, z)
    np.testing.assert_array_equal(arr(gz), [10.0, -12.0])
    np.testing.assert_array_equal(arr(gx), [2.0, 2.0])
    np.testing.assert_array_equal(arr(func.grad(fn, argnums=-2)(x, y, z)), [3.0, 3.0])
    # an argument nothing depends on gets zeros
    np.testing.assert_array_equal(arr(func.grad(lambda a, b: a.sum(), 1)(x, y)), [0.0, 0.0])


def test_grad_leaves_grad_fields_and_the_tape_alone():
    x = T([0.5, -1.0, 2.0], rg=True)
    w = T([1.0, 2.0, 3.0], rg=True)
    tp = tapegrad.tape.current()
    n0 = len(tp)
    g = func.grad(lambda a: (a * w).exp().sum())(x)
    np.testing.assert_allclose(arr(g), w.data * np.exp(x.data * w.data), **TIGHT)
    assert x.grad is None and w.grad is None
    assert len(tp) == n0
    assert not g.requires_grad
    # the inputs need not require grad
    g2 = func.grad(lambda a: (a * a).sum())(T([1.0, -2.0]))
    np.testing.assert_array_equal(arr(g2), [2.0, -4.0])


def test_transforms_work_under_no_grad():
    x = T([1.0, -2.0])
    with tg.no_grad():
        np.testing.assert_array_equal(arr(func.grad(lambda a: (a * a).sum())(x)), [2.0, -4.0])
        np.testing.assert_array_equal(arr(func.jacfwd(lambda a: a * a)(x)), np.diag([2.0, -4.0]))
        np.testing.assert_array_equal(arr(func.hessian(lambda a: (a ** 3).sum())(x)),
                                      np.diag([6.0, -12.0]))


def test_grad_passes_non_tensor_arguments_through():
    fn = lambda x, p, scale: (x ** p).sum() * scale      # noqa: E731
    x = T([1.0, 2.0])
    np.testing.assert_allclose(arr(func.grad(fn)(x, 3, 0.5)), [1.5, 6.0], rtol=1e-15)
    np.testing.assert_allclose(arr(func.grad(fn)(x, 2, 1.0)), [2.0, 4.0], rtol=1e-15)


def test_grad_float32():
    g = func.grad(lambda x: (x * x).sum())(tg.tensor([1.0, 3.0]))
    assert g.dtype == tg.float32
    np.testing.assert_array_equal(arr(g), [2.0, 6.0])


def test_grad_follows_value_dependent_branches():
    def fn(x):
        total = x.sum()               # kept alive to the end
        if total.item() > 0:
            return (x * x).sum() + total * 0
        return x.exp().sum() + total * 0
    g = func.grad(fn)
    np.testing.assert_array_equal(arr(g(T([1.0, 2.0]))), [2.0, 4.0])
    np.testing.assert_allclose(arr(g(T([-1.0, -2.0]))), np.exp([-1.0, -2.0]), rtol=1e-15)


def _drop_exp_then_sum(x):
    x.exp()                 # computed and dropped while nothing else is alive
    return (x * 3).sum()


@pytest.mark.parametrize("fn", [
    pytest.param(lambda x: (x * x).sum() if x.sum().item() > 0 else x.exp().sum(),
                 id="branch-on-item"),
    pytest.param(lambda x: _drop_exp_then_sum(x), id="dropped-exp"),
])
def test_grad_with_a_discarded_temporary(fn):
    # regression: such a temporary used to reset the tracing tape when the calling thread's
    # tape held no live tensor; a new thread starts with an empty tape
    def body():
        v = np.array([1.0, 2.0])
        want = autograd_grads(fn, [v], [0])[0]
        np.testing.assert_allclose(arr(func.grad(fn)(T(v))), want, **TIGHT)
    in_fresh_thread(body)


# ---- vjp and jvp ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,xs", VECTOR_P)
def test_vjp_rows_are_jacrev_rows(fn, xs):
    out, vjp_fn = func.vjp(fn, *[T(a) for a in xs])
    np.testing.assert_allclose(arr(out), eager(fn, xs), **TIGHT)
    jacs = func.jacrev(fn, argnums=tuple(range(len(xs))))(*[T(a) for a in xs])
    for i in np.ndindex(out.shape):
        e = np.zeros(out.shape)
        e[i] = 1
        grads = vjp_fn(T(e))
        assert len(grads) == len(xs)
        for g, jac in zip(grads, jacs):
            np.testing.assert_allclose(arr(g), arr(jac)[i], **TIGHT)
    # a random cotangent: u^T J, and eager backward agrees
    u = np.random.default_rng(0).standard_normal(out.shape)
    leaves = [T(a, rg=True) for a in xs]
    fn(*leaves).backward(T(u))
    for g, jac, leaf in zip(vjp_fn(T(u)), jacs, leaves):
        want = np.tensordot(u, arr(jac), axes=u.ndim)
        np.testing.assert_allclose(arr(g), want, **TIGHT)
        np.testing.assert_allclose(arr(g), leaf.grad.numpy(), **TIGHT)


@pytest.mark.parametrize("fn,xs", VECTOR_P)
def test_jvp_columns_are_jacfwd_columns_and_finite_differences(fn, xs):
    nums = tuple(range(len(xs)))
    jacs = func.jacfwd(fn, argnums=nums)(*[T(a) for a in xs])
    r = np.random.default_rng(1)
    for j, a in enumerate(xs):
        for k in np.ndindex(a.shape):
            tans = [np.zeros_like(b) for b in xs]
            tans[j][k] = 1
            out, t = func.jvp(fn, [T(b) for b in xs], [T(b) for b in tans])
            np.testing.assert_allclose(arr(t), arr(jacs[j])[(...,) + k], **TIGHT)
    # a random direction in every input at once against finite differences
    tans = [r.standard_normal(a.shape) for a in xs]
    out, t = func.jvp(fn, tuple(T(a) for a in xs), tuple(T(b) for b in tans))
    np.testing.assert_allclose(arr(out), eager(fn, xs), **TIGHT)
    eps = 1e-6
    fd = (eager(fn, [a + eps * b for a, b in zip(xs, tans)])
          - eager(fn, [a - eps * b for a, b in zip(xs, tans)])) / (2 * eps)
    np.testing.assert_allclose(arr(t), fd, **FD)


@pytest.mark.parametrize("fn,xs", VECTOR_P)
def test_jacrev_equals_jacfwd_and_finite_differences(fn, xs):
    args = [T(a) for a in xs]
    out_shape = eager(fn, xs).shape
    for j in range(len(xs)):
        jr = func.jacrev(fn, argnums=j)(*args)
        jf = func.jacfwd(fn, argnums=j)(*args)
        assert tuple(jr.shape) == out_shape + xs[j].shape == tuple(jf.shape)
        np.testing.assert_allclose(arr(jr), arr(jf), **TIGHT)
        np.testing.assert_allclose(arr(jr), fd_jacobian(fn, xs, j), **FD)


def test_vjp_and_jvp_with_several_outputs():
    fn = lambda x, y: (x * y, (x - y).exp().sum())       # noqa: E731
    xv, yv = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    (a, b), vjp_fn = func.vjp(fn, T(xv), T(yv))
    np.testing.assert_allclose(arr(a), xv * yv, rtol=1e-15)
    e = np.exp(xv - yv)
    gx, gy = vjp_fn(T([1.0, 10.0]), T(2.0))
    np.testing.assert_allclose(arr(gx), np.array([1.0, 10.0]) * yv + 2 * e, **TIGHT)
    np.testing.assert_allclose(arr(gy), np.array([1.0, 10.0]) * xv - 2 * e, **TIGHT)
    gx2, gy2 = vjp_fn((T([1.0, 10.0]), T(2.0)))          # cotangents as one tuple
    np.testing.assert_array_equal(arr(gx2), arr(gx))
    (a, b), (ta, tb) = func.jvp(fn, (T(xv), T(yv)), (T([1.0, 0.0]), T([0.0, 1.0])))
    np.testing.assert_allclose(arr(ta), [yv[0], xv[1]], **TIGHT)
    np.testing.assert_allclose(arr(tb), e[0] - e[1], **TIGHT)


def test_vjp_with_a_non_tensor_primal():
    out, vjp_fn = func.vjp(lambda x, k: x * k, T([1.0, 2.0]), 3.0)
    (g,) = vjp_fn(T([1.0, 1.0]))
    np.testing.assert_array_equal(arr(g), [3.0, 3.0])


# ---- the op table through vjp and jvp ------------------------------------------------------------
@pytest.mark.parametrize("c", table.params(table.CASES))
def test_table_vjp_matches_backward_and_jvp_is_its_transpose(c):
    def fn(*xs):
        return c.fn(tg, *xs)
    r = np.random.default_rng(3)
    leaves = [T(a, rg=True) for a in c.inputs]
    out = fn(*leaves)
    u = r.standard_normal(out.shape)
    out.backward(T(u))
    value, vjp_fn = func.vjp(fn, *[T(a) for a in c.inputs])
    np.testing.assert_allclose(arr(value), arr(out), **TIGHT)
    grads = vjp_fn(T(u))
    for g, leaf in zip(grads, leaves):
        want = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.numpy()
        np.testing.assert_allclose(arr(g), want, **TIGHT)
    # u . (J t) == sum_j (u^T J)_j . t_j for a random direction t
    tans = [r.standard_normal(a.shape) for a in c.inputs]
    _, jt = func.jvp(fn, [T(a) for a in c.inputs], [T(t) for t in tans])
    lhs = float(np.sum(u * arr(jt)))
    rhs = float(sum(np.sum(arr(g) * t) for g, t in zip(grads, tans)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


# ---- hessian -------------------------------------------------------------------------------------
def test_hessian_quadratic_form():
    x = _r.standard_normal(3)
    h = func.hessian(lambda v: v @ tg.tensor(A33) @ v)(T(x))
    assert h.shape == (3, 3)
    np.testing.assert_allclose(arr(h), A33 + A33.T, **TIGHT)


def test_hessian_sum_sin_is_diagonal():
    x = _r.standard_normal(5)
    np.testing.assert_allclose(arr(func.hessian(lambda v: v.sin().sum())(T(x))),
                               np.diag(-np.sin(x)), **TIGHT)


def test_hessian_exp_times_y_wrt_x_and_y():
    x, y = _r.standard_normal(3), _r.standard_normal(3)
    fn = lambda a, b: (a.exp() * b).sum()                # noqa: E731
    np.testing.assert_allclose(arr(func.hessian(fn, argnums=0)(T(x), T(y))),
                               np.diag(np.exp(x) * y), **TIGHT)
    # linear in y: zero Hessian
    np.testing.assert_allclose(arr(func.hessian(fn, argnums=1)(T(x), T(y))), np.zeros((3, 3)),
                               atol=1e-15)


def test_hessian_logsumexp():
    x = _r.standard_normal(4)
    p = np.exp(x) / np.exp(x).sum()
    h = func.hessian(lambda v: v.exp().sum().log())(T(x))
    np.testing.assert_allclose(arr(h), np.diag(p) - np.outer(p, p), **TIGHT)


def test_hessian_of_log_softmax_cross_entropy():
    x = _r.standard_normal((1, 4))
    p = np.exp(x[0]) / np.exp(x[0]).sum()
    h = func.hessian(lambda v: tg.nn.functional.cross_entropy(
        v, tg.tensor(np.array([2]))))(T(x))
    assert h.shape == (1, 4, 1, 4)
    np.testing.assert_allclose(arr(h).reshape(4, 4), np.diag(p) - np.outer(p, p), **TIGHT)


def _fd_hessian(fn, xs, j, eps=1e-5):
    """Finite differences of the (eager) gradient; shape x.shape + x.shape."""
    return fd_jacobian(fn, xs, j, eps, lambda f, a: autograd_grads(f, a, [j])[0])


@pytest.mark.parametrize("fn,xs", SCALAR_P)
def test_hessian_matches_finite_differences_of_the_gradient(fn, xs):
    for j in range(len(xs)):
        h = func.hessian(fn, argnums=j)(*[T(a) for a in xs])
        n = xs[j].size
        assert h.shape == xs[j].shape + xs[j].shape
        hm = arr(h).reshape(n, n)
        np.testing.assert_allclose(hm, hm.T, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(arr(h), _fd_hessian(fn, xs, j), rtol=1e-5, atol=1e-6)


def test_hessian_of_mlp_loss_equals_jacfwd_of_grad_by_finite_differences():
    fn = SCALAR[4][1]
    xs = [a.copy() for a in SCALAR[4][2]]
    h = func.hessian(fn, argnums=1)(*[T(a) for a in xs])
    assert h.shape == (3, 4, 3, 4)
    gfn = func.grad(fn, argnums=1)
    eps = 1e-5
    fd = np.zeros((3, 4, 3, 4))
    for k in np.ndindex(3, 4):
        plus = [a.copy() for a in xs]
        minus = [a.copy() for a in xs]
        plus[1][k] += eps
        minus[1][k] -= eps
        fd[(...,) + k] = (arr(gfn(*[T(a) for a in plus]))
                          - arr(gfn(*[T(a) for a in minus]))) / (2 * eps)
    np.testing.assert_allclose(arr(h), fd, rtol=1e-5, atol=1e-7)


def test_hessian_of_a_compiled_function():
    def fn(x, y):
        return ((x @ y).tanh() ** 2).sum() + (x * x * x).sum()
    cf = tg.compile(fn)
    xv, yv = _r.standard_normal((2, 3)), _r.standard_normal((3, 2))
    xc = T(xv, rg=True)
    cf(xc, T(yv)).backward()                   # an ordinary compiled call first
    g_before = xc.grad.numpy().copy()
    th = np.tanh(xv @ yv)
    np.testing.assert_allclose(g_before, (2 * th * (1 - th * th)) @ yv.T + 3 * xv * xv, **TIGHT)
    h_plain = func.hessian(fn)(T(xv), T(yv))
    h_comp = func.hessian(cf)(T(xv), T(yv))
    np.testing.assert_allclose(arr(h_comp), arr(h_plain), **TIGHT)
    np.testing.assert_allclose(arr(h_comp), _fd_hessian(fn, [xv, yv], 0), rtol=1e-5, atol=1e-6)
    # the transforms left the leaf's gradient alone, and the compiled function still works
    np.testing.assert_array_equal(xc.grad.numpy(), g_before)
    cf(xc, T(yv)).backward()
    np.testing.assert_allclose(xc.grad.numpy(), 2 * g_before, **TIGHT)


@pytest.mark.parametrize("c", table.params(table.CASES))
def test_table_hessian_vector_products(c):
    """For s(x) = sum(u * f(x)): H_jj v == (grad_j s(x + h v) - grad_j s(x - h v)) / 2h."""
    r = np.random.default_rng(5)
    u = r.standard_normal(eager(lambda *xs: c.fn(tg, *xs), c.inputs).shape)

    def s(*xs):
        return (c.fn(tg, *xs) * tg.tensor(u)).sum()
    for j, a in enumerate(c.inputs):
        h = arr(func.hessian(s, argnums=j)(*[T(b) for b in c.inputs]))
        assert h.shape == a.shape + a.shape
        n = a.size
        hm = h.reshape(n, n)
        np.testing.assert_allclose(hm, hm.T, rtol=1e-8, atol=1e-9, err_msg="not symmetric")
        v = r.standard_normal(a.shape)
        eps = 1e-5
        plus = list(c.inputs)
        minus = list(c.inputs)
        plus[j], minus[j] = a + eps * v, a - eps * v
        fd = (autograd_grads(s, plus, [j])[0] - autograd_grads(s, minus, [j])[0]) / (2 * eps)
        np.testing.assert_allclose(hm @ v.reshape(-1), fd.reshape(-1), rtol=1e-5, atol=1e-6)


# ---- on compiled functions -----------------------------------------------------------------------
def test_transforms_of_a_compiled_function_equal_the_plain_ones():
    def fn(x, y):
        return (x.sin() * y).sum(dim=0)
    cf = tg.compile(fn)
    xv, yv = _r.standard_normal((2, 3)), _r.standard_normal(3)
    out = cf(T(xv, rg=True), T(yv))
    out.sum().backward()
    assert len(cf.programs) == 1
    for f in (func.jacrev, func.jacfwd):
        for nums in (0, 1, (0, 1)):
            got = f(cf, argnums=nums)(T(xv), T(yv))
            want = f(fn, argnums=nums)(T(xv), T(yv))
            for g, w in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):
                np.testing.assert_allclose(arr(g), arr(w), **TIGHT)
    gc = func.grad(lambda x, y: fn(x, y).sum(), argnums=(0, 1))(T(xv), T(yv))
    np.testing.assert_allclose(arr(gc[1]), np.sin(xv).sum(0), **TIGHT)
    o, t = func.jvp(cf, (T(xv), T(yv)), (T(np.ones((2, 3))), T(np.zeros(3))))
    np.testing.assert_allclose(arr(t), (np.cos(xv) * yv).sum(0), **TIGHT)
    # values: the transform used new argument values, not the recorded ones
    o2, _ = func.jvp(cf, (T(xv * 2), T(yv)), (T(np.ones((2, 3))), T(np.zeros(3))))
    np.testing.assert_allclose(arr(o2), (np.sin(2 * xv) * yv).sum(0), **TIGHT)


def test_grad_of_a_plain_function_that_calls_a_compiled_one():
    cf = tg.compile(lambda x, y: (x.sin() * y).sum(dim=0))
    xv, yv = _r.standard_normal((2, 3)), _r.standard_normal(3)
    g = func.grad(lambda x, y: cf(x, y).sum())(T(xv), T(yv))
    np.testing.assert_allclose(arr(g), np.cos(xv) * yv, **TIGHT)


def test_vjp_fn_of_a_compiled_function_survives_later_calls():
    cf = tg.compile(lambda x: x.sin() * x)
    v1, v2 = np.array([0.1, 0.2]), np.array([1.0, 2.0])
    out1, vjp1 = func.vjp(cf, T(v1))
    out2, vjp2 = func.vjp(cf, T(v2))
    cf(T(v2 * 3, rg=True))
    for v, out, vjp_fn in ((v1, out1, vjp1), (v2, out2, vjp2)):
        np.testing.assert_allclose(arr(out), np.sin(v) * v, **TIGHT)
        (g,) = vjp_fn(T(np.ones(2)))
        np.testing.assert_allclose(arr(g), np.cos(v) * v + np.sin(v), **TIGHT)


def test_vjp_fn_of_a_plain_function_survives_later_calls():
    f = lambda x: x.sin() * x                      # noqa: E731
    v1, v2 = np.array([0.1, 0.2]), np.array([1.0, 2.0])
    _, vjp1 = func.vjp(f, T(v1))
    func.vjp(f, T(v2))
    np.testing.assert_allclose(arr(vjp1(T(np.ones(2)))[0]), np.cos(v1) * v1 + np.sin(v1),
                               **TIGHT)


def test_grad_of_a_compiled_function_reuses_its_program():
    calls = []

    def fn(x):
        calls.append(1)
        return (x.exp() * x).sum()
    cf = tg.compile(fn)
    for v in ([0.1, 0.2], [1.0, -1.0], [2.0, 0.5]):
        v = np.array(v)
        g = func.grad(cf)(T(v))
        np.testing.assert_allclose(arr(g), np.exp(v) * (1 + v), **TIGHT)
    assert len(cf.programs) == 1 and len(calls) == 1


def test_grad_of_a_value_dependent_compiled_function():
    def fn(x):
        total = x.sum()
        if total.item() > 0:
            return (x * x).sum() + total * 0
        return (x * 3).sum() + total * 0
    cf = tg.compile(fn)
    with pytest.warns(RuntimeWarning):
        g = func.grad(cf)(T([1.0, 2.0]))
    np.testing.assert_array_equal(arr(g), [2.0, 4.0])
    np.testing.assert_array_equal(arr(func.grad(cf)(T([-1.0, -2.0]))), [3.0, 3.0])


def test_grad_with_closure_weights_leaves_them_alone():
    w = T([[1.0, -1.0], [0.5, 2.0]], rg=True)
    fn = lambda x: ((x @ w).tanh()).sum()                  # noqa: E731
    xv = np.array([[0.3, -0.2]])
    g = func.grad(fn)(T(xv))
    z = xv @ w.data
    np.testing.assert_allclose(arr(g), (1 - np.tanh(z) ** 2) @ w.data.T, **TIGHT)
    assert w.grad is None


# ---- errors --------------------------------------------------------------------------------------
def test_grad_of_a_non_scalar_function_raises():
    with pytest.raises(RuntimeError, match=r"returning a scalar, got shape \(2,\)"):
        func.grad(lambda x: x * 2)(T([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"returning a scalar, got shape \(2,\)"):
        func.value_and_grad(lambda x: x.exp())(T([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="hessian needs a function returning a scalar"):
        func.hessian(lambda x: x * x)(T([1.0, 2.0]))


@pytest.mark.parametrize("transform", [func.grad, func.value_and_grad, func.jacrev,
                                       func.jacfwd, func.hessian])
def test_argnums_at_a_non_tensor_raises_type_error(transform):
    fn = lambda x, k: (x * k).sum()                          # noqa: E731
    with pytest.raises(TypeError, match="argnums=1: argument 1 must be a tensor"):
        transform(fn, argnums=1)(T([1.0, 2.0]), 3.0)
    with pytest.raises(TypeError, match="argnums=5: argument 5 must be a tensor"):
        transform(fn, argnums=5)(T([1.0, 2.0]), 3.0)


def test_grad_of_a_function_returning_a_non_tensor_raises():
    with pytest.raises(TypeError, match="must return a tensor or a tuple of tensors, not float"):
        func.grad(lambda x: 3.0)(T([1.0]))


def test_jvp_with_a_mismatched_tangent_raises():
    with pytest.raises(RuntimeError, match=r"tangent 0 has shape \(3,\) but its primal has "
                                           r"shape \(2,\)"):
        func.jvp(lambda x: x * 2, (T([1.0, 2.0]),), (T([1.0, 2.0, 3.0]),))
    with pytest.raises(RuntimeError, match=r"tangent 0 has shape \(1, 2\)"):
        func.jvp(lambda x: x * 2, (T([1.0, 2.0]),), (T([[1.0, 2.0]]),))
    with pytest.raises(RuntimeError, match="got 2 primals but 1 tangents"):
        func.jvp(lambda x, y: x * y, (T([1.0]), T([2.0])), (T([1.0]),))


def test_vjp_with_a_mismatched_cotangent_raises():
    _, vjp_fn = func.vjp(lambda x: x * 2, T([1.0, 2.0]))
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: cotangent 0 has shape \(3,\)"):
        vjp_fn(T([1.0, 2.0, 3.0]))
    with pytest.raises(RuntimeError, match=r"expects 1 cotangent\(s\), got 2"):
        vjp_fn(T([1.0, 2.0]), T([1.0, 2.0]))


def test_value_and_grad_of_compiled_fast_path_tracks_new_values_and_signatures():
    f = tg.compile(lambda w, x: ((x @ w).tanh() * 2.0).sum())
    vg = func.value_and_grad(f, argnums=(0, 1))
    rng = np.random.default_rng(3)
    for shape in [(4, 3), (4, 3), (4, 3), (5, 3), (4, 3)]:      # repeats use the lean path
        w = rng.standard_normal((shape[1], 2))
        x = rng.standard_normal(shape)
        value, (gw, gx) = vg(T(w), T(x))
        t = np.tanh(x @ w)
        np.testing.assert_allclose(value.item(), 2 * t.sum(), rtol=1e-12)
        np.testing.assert_allclose(arr(gw), x.T @ (2 * (1 - t ** 2)), rtol=1e-10)
        np.testing.assert_allclose(arr(gx), (2 * (1 - t ** 2)) @ w.T, rtol=1e-10)


def test_value_and_grad_of_a_value_dependent_compiled_function_stays_correct():
    f = tg.compile(lambda x: (x * x).sum() if x.sum().item() > 0 else (-x).sum())
    vg = func.value_and_grad(f)
    with pytest.warns(RuntimeWarning):
        vg(T(np.array([1.0, 2.0])))
    for v in ([1.0, 2.0], [-1.0, -2.0], [3.0, 1.0]):
        v = np.array(v)
        value, g = vg(T(v))
        want = 2 * v if v.sum() > 0 else -np.ones(2)
        np.testing.assert_allclose(arr(g), want)
