"""tapegrad.autograd.functional: jacobian, hessian, vjp, jvp, hvp, vhp.

Known values first (the Hessian of sum(x**3) is diag(6x), ...), then the nesting rules of
the results, the errors (strict mode, a v of the wrong shape, bad arguments), detaching,
and finally the same functions through torch.autograd.functional where torch is
installed: values, nesting and error messages.
"""
import doctest

import numpy as np
import pytest

import tapegrad as tg
from helpers import torch_or_skip
from tapegrad.autograd import functional as AF

X = np.array([0.5, -1.0, 2.0])
Y = np.array([[0.3, 1.2, -0.7], [2.0, -0.4, 0.9]])
A = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]])


def t64(a, requires_grad=False):
    return tg.tensor(np.asarray(a, np.float64), dtype=tg.float64, requires_grad=requires_grad)




# ---- values ---------------------------------------------------------------------------------
def test_jacobian_values():
    x = t64(X)
    np.testing.assert_allclose(AF.jacobian(lambda t: t ** 2, x).numpy(), np.diag(2 * X))
    a = t64(A)
    np.testing.assert_allclose(AF.jacobian(lambda t: a @ t, t64([1.0, 2.0])).numpy(), A)
    jy = AF.jacobian(lambda t: t.sum(dim=0), t64(Y))          # (3,) from (2, 3)
    assert tuple(jy.shape) == (3, 2, 3)
    np.testing.assert_allclose(jy.numpy(), np.broadcast_to(np.eye(3)[:, None, :], (3, 2, 3)))


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_of_several_inputs_and_outputs(strategy):
    x, y = t64(X), t64(Y)
    (jxx, jxy), (jyx, jyy) = AF.jacobian(lambda a, b: (a * b.sum(), (b ** 2).sum() * a.sum()),
                                         (x, y), strategy=strategy)
    assert [tuple(j.shape) for j in (jxx, jxy, jyx, jyy)] == [(3, 3), (3, 2, 3), (3,), (2, 3)]
    np.testing.assert_allclose(jxx.numpy(), np.eye(3) * Y.sum())
    np.testing.assert_allclose(jxy.numpy(), np.broadcast_to(X[:, None, None], (3, 2, 3)))
    np.testing.assert_allclose(jyx.numpy(), np.full(3, (Y ** 2).sum()))
    np.testing.assert_allclose(jyy.numpy(), 2 * Y * X.sum())


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_hessian_values(strategy):
    x = t64(X)
    h = AF.hessian(lambda t: (t ** 3).sum(), x, outer_jacobian_strategy=strategy)
    np.testing.assert_allclose(h.numpy(), np.diag(6 * X))
    (hxx, hxy), (hyx, hyy) = AF.hessian(lambda a, b: (a * b).sum(), (x, t64([1.0, 2.0, 3.0])),
                                        outer_jacobian_strategy=strategy)
    for h, want in ((hxx, 0 * np.eye(3)), (hxy, np.eye(3)), (hyx, np.eye(3)),
                    (hyy, 0 * np.eye(3))):
        np.testing.assert_allclose(h.numpy(), want)
    hy = AF.hessian(lambda b: (b ** 2).sum(), t64(Y), outer_jacobian_strategy=strategy)
    assert tuple(hy.shape) == (2, 3, 2, 3)
    np.testing.assert_allclose(hy.numpy().reshape(6, 6), 2 * np.eye(6))


def test_vjp_values():
    x, v = t64(X), t64([1.0, 2.0, 3.0])
    out, g = AF.vjp(lambda t: t * t, x, v)
    np.testing.assert_allclose(out.numpy(), X * X)
    np.testing.assert_allclose(g.numpy(), 2 * X * np.array([1.0, 2.0, 3.0]))
    out, g = AF.vjp(lambda t: (t ** 2).sum(), x)               # v may be omitted: one element
    assert out.item() == pytest.approx((X ** 2).sum())
    np.testing.assert_allclose(g.numpy(), 2 * X)


def test_jvp_hvp_vhp_values():
    x, v = t64(X), t64([1.0, 0.0, -2.0])
    out, jv = AF.jvp(lambda t: t.sin(), x, v)
    np.testing.assert_allclose(out.numpy(), np.sin(X))
    np.testing.assert_allclose(jv.numpy(), np.cos(X) * v.numpy())
    f = lambda t: (t ** 3).sum()                              # noqa: E731
    for product in (AF.hvp, AF.vhp):
        out, hv = product(f, x, v)
        assert out.item() == pytest.approx((X ** 3).sum())
        np.testing.assert_allclose(hv.numpy(), 6 * X * v.numpy())
    # a Hessian with off-diagonal terms: f = x0 * x1 ** 2, H = [[0, 2 x1], [2 x1, 2 x0]]
    p, w = t64([3.0, 5.0]), t64([1.0, 2.0])
    _, hv = AF.hvp(lambda t: t[0] * t[1] ** 2, p, w)
    np.testing.assert_allclose(hv.numpy(), [[0, 10], [10, 6]] @ np.array([1.0, 2.0]))
    _, vh = AF.vhp(lambda t: t[0] * t[1] ** 2, p, w)
    np.testing.assert_allclose(vh.numpy(), np.array([1.0, 2.0]) @ [[0, 10], [10, 6]])


def test_forward_mode_jacobian_has_the_outputs_dtype():
    x = tg.tensor([1.0, 2.0], dtype=tg.float32)
    assert AF.jacobian(lambda t: t * 2, x).dtype == tg.float32
    assert AF.jacobian(lambda t: t * 2, x, strategy="forward-mode").dtype == tg.float32


# ---- nesting --------------------------------------------------------------------------------
def _kind(r):
    if isinstance(r, tuple):
        return tuple(_kind(e) for e in r)
    assert isinstance(r, tg.Tensor), type(r)
    return "T"


@pytest.mark.parametrize("in_tuple", [False, True])
@pytest.mark.parametrize("out_tuple", [False, True])
def test_jacobian_nesting(in_tuple, out_tuple):
    x = t64(X)
    fn = (lambda t: (t * 2,)) if out_tuple else (lambda t: t * 2)
    jac = AF.jacobian(fn, (x,) if in_tuple else x)
    want = "T"
    if in_tuple:
        want = (want,)
    if out_tuple:
        want = (want,)
    assert _kind(jac) == want


@pytest.mark.parametrize("in_tuple", [False, True])
@pytest.mark.parametrize("out_tuple", [False, True])
def test_vjp_nesting(in_tuple, out_tuple):
    x = t64(X)
    fn = (lambda t: (t * 2,)) if out_tuple else (lambda t: t * 2)
    v = (t64(X),) if out_tuple else t64(X)
    out, g = AF.vjp(fn, (x,) if in_tuple else x, v)
    assert _kind(out) == (("T",) if out_tuple else "T")
    assert _kind(g) == (("T",) if in_tuple else "T")


@pytest.mark.parametrize("in_tuple", [False, True])
def test_second_order_nesting(in_tuple):
    x = t64(X)
    inputs = (x,) if in_tuple else x
    v = (t64(X),) if in_tuple else t64(X)
    f = lambda t: (t ** 3).sum()                              # noqa: E731
    assert _kind(AF.hessian(f, inputs)) == ((("T",),) if in_tuple else "T")
    for product in (AF.hvp, AF.vhp):
        out, r = product(f, inputs, v)
        assert _kind(out) == "T" and _kind(r) == (("T",) if in_tuple else "T")
    out, r = AF.jvp(lambda t: t * 2, inputs, v)
    assert _kind(out) == "T" and _kind(r) == "T"              # jvp follows the outputs


# ---- errors ---------------------------------------------------------------------------------
def test_strict_reports_an_independent_input():
    x, y = t64(X), t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="Output 0 of the user-provided function is "
                                           "independent of input 1"):
        AF.jacobian(lambda a, b: a * 2, (x, y), strict=True)
    with pytest.raises(RuntimeError, match="The output of the user-provided function is "
                                           "independent of input 1"):
        AF.vjp(lambda a, b: a * 2, (x, y), t64(X), strict=True)
    with pytest.raises(RuntimeError, match="Output 1 of the user-provided function does not "
                                           "require gradients"):
        AF.vjp(lambda a: (a * 2, tg.ones(3)), x, (t64(X), t64(X)), strict=True)
    zeros = AF.jacobian(lambda a, b: a * 2, (x, y))[1]        # not strict: zeros
    assert tuple(zeros.shape) == (3, 2) and not zeros.numpy().any()


def test_strict_second_order():
    x, y = t64(X), t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match="jacobian of the user-provided function with "
                                           "respect to input 1 is independent of the input"):
        AF.hessian(lambda a, b: (a ** 2).sum() + b.sum(), (x, y), strict=True)   # linear in b
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.jvp(lambda a, b: a * 2, (x, y), (t64(X), y), strict=True)
    h = AF.hessian(lambda a, b: (a ** 2).sum() + b.sum(), (x, y))
    assert not h[1][1].numpy().any()


def test_wrong_v():
    x = t64(X)
    with pytest.raises(RuntimeError, match=r"v has invalid size: should be tapegrad.Size\(\[3\]\) "
                                           r"but got tapegrad.Size\(\[2\]\)"):
        AF.vjp(lambda t: t * 2, x, t64([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="Entry 1 in v has invalid size"):
        AF.vjp(lambda t: (t * 2, t), x, (t64(X), t64([1.0])))
    with pytest.raises(RuntimeError, match="v is a tuple of invalid length: should be 2 but "
                                           "got 1"):
        AF.vjp(lambda t: (t * 2, t), x, (t64(X),))
    with pytest.raises(RuntimeError, match="The given v should contain a single Tensor"):
        AF.vjp(lambda t: t * 2, x, (t64(X), t64(X)))
    with pytest.raises(RuntimeError, match="v can only be None if the user-provided function "
                                           "returns a single Tensor with a single element"):
        AF.vjp(lambda t: t * 2, x)
    for product in (AF.jvp, AF.hvp, AF.vhp):
        with pytest.raises(RuntimeError, match="v has invalid size"):
            product(lambda t: (t ** 2).sum(), x, t64([1.0]))
        with pytest.raises(RuntimeError, match="v can only be None if the input to the "
                                               "user-provided function is a single Tensor"):
            product(lambda t: (t ** 2).sum(), x)


def test_bad_arguments():
    x = t64(X)
    with pytest.raises(TypeError, match="The inputs given to vjp must be either a Tensor or a "
                                        "tuple of Tensors but the value at index 1 has type"):
        AF.vjp(lambda a, b: a * b, (x, 3.0), t64(X))
    with pytest.raises(TypeError, match="outputs of the user-provided function given to "
                                        "jacobian must be either a Tensor or a tuple"):
        AF.jacobian(lambda a: [a * 2], x)
    for fn_name in ("hessian", "hvp", "vhp"):
        fn = getattr(AF, fn_name)
        args = (x,) if fn_name == "hessian" else (x, t64(X))
        with pytest.raises(RuntimeError, match=f"The Tensor returned by the function given to "
                                               f"{fn_name} should contain a single element"):
            fn(lambda t: t * 2, *args)
        with pytest.raises(RuntimeError, match=f"The function given to {fn_name} should return "
                                               f"a single Tensor"):
            fn(lambda t: (t.sum(),), *args)
    with pytest.raises(AssertionError, match='Expected strategy to be either "forward-mode" or '
                                             '"reverse-mode"'):
        AF.jacobian(lambda t: t, x, strategy="fwd")
    with pytest.raises(ValueError, match="outer_jacobian_strategy"):
        AF.hessian(lambda t: t.sum(), x, outer_jacobian_strategy="backward")
    with pytest.raises(RuntimeError, match="`strict=True` and `vectorized=True` are not "
                                           "supported together"):
        AF.jacobian(lambda t: t, x, strict=True, vectorize=True)
    with pytest.raises(RuntimeError, match="strict=True and strategy=\"forward-mode\""):
        AF.jacobian(lambda t: t, x, strict=True, strategy="forward-mode")
    with pytest.raises(NotImplementedError, match="create_graph=True and strategy="):
        AF.jacobian(lambda t: t, x, create_graph=True, strategy="forward-mode")


# ---- detaching and grad mode ----------------------------------------------------------------
def _all_tensors(r):
    return [t for e in r for t in _all_tensors(e)] if isinstance(r, tuple) else [r]


def test_results_are_detached_unless_create_graph():
    x = t64(X, requires_grad=True)
    f = lambda t: (t ** 3).sum()                              # noqa: E731
    results = [AF.jacobian(lambda t: t ** 2, x), AF.hessian(f, x),
               AF.jacobian(lambda t: t ** 2, x, strategy="forward-mode"),
               AF.hessian(f, x, outer_jacobian_strategy="forward-mode"),
               AF.vjp(lambda t: t ** 2, x, t64(X)), AF.jvp(lambda t: t ** 2, x, t64(X)),
               AF.hvp(f, x, t64(X)), AF.vhp(f, x, t64(X))]
    for r in results:
        for t in _all_tensors(r):
            assert t.grad_fn is None and not t.requires_grad
    assert x.grad is None


def test_create_graph_results_can_be_differentiated():
    x = t64(X, requires_grad=True)
    # d/dx sum(jacobian of x**3) = d/dx sum(3 x**2) = 6 x
    jac = AF.jacobian(lambda t: t ** 3, x, create_graph=True)
    assert jac.requires_grad and jac.grad_fn is not None
    (g,) = tg.autograd.grad(jac.sum(), x)
    np.testing.assert_allclose(g.numpy(), 6 * X)
    out, vj = AF.vjp(lambda t: t ** 3, x, t64(np.ones(3)), create_graph=True)
    assert out.requires_grad and vj.requires_grad
    (g,) = tg.autograd.grad(vj.sum(), x)
    np.testing.assert_allclose(g.numpy(), 6 * X)
    h = AF.hessian(lambda t: (t ** 4).sum(), x, create_graph=True)    # diag(12 x**2)
    (g,) = tg.autograd.grad(h.sum(), x)
    np.testing.assert_allclose(g.numpy(), 24 * X)
    _, hv = AF.hvp(lambda t: (t ** 4).sum(), x, t64(np.ones(3)), create_graph=True)
    (g,) = tg.autograd.grad(hv.sum(), x)
    np.testing.assert_allclose(g.numpy(), 24 * X)


def test_works_under_no_grad_and_leaves_inputs_alone():
    x = t64(X, requires_grad=True)
    with tg.no_grad():
        jac = AF.jacobian(lambda t: t ** 2, x)
        out, g = AF.vjp(lambda t: t ** 2, x, t64(X))
    np.testing.assert_allclose(jac.numpy(), np.diag(2 * X))
    np.testing.assert_allclose(g.numpy(), 2 * X * X)
    assert x.grad is None and x.requires_grad and x.is_leaf
    np.testing.assert_array_equal(x.detach().numpy(), X)


def test_docstring_examples_run():
    result = doctest.testmod(AF, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0


# ---- against torch.autograd.functional ------------------------------------------------------
def _build(T, spec):
    """A tensor, or a tuple of tensors, from arrays (a tuple spec stays a tuple)."""
    if isinstance(spec, tuple):
        return tuple(_build(T, s) for s in spec)
    return T.tensor(np.asarray(spec, np.float64), dtype=T.float64)


def _plain(r):
    """Nesting and values, with torch's lists (its forward-mode results) read as tuples."""
    if isinstance(r, (tuple, list)):
        return tuple(_plain(e) for e in r)
    return np.array(r.detach().numpy() if hasattr(r, "detach") else r.numpy())


def _assert_same(ours, theirs):
    ours, theirs = _plain(ours), _plain(theirs)
    assert _kind_np(ours) == _kind_np(theirs)
    for a, b in zip(_flat(ours), _flat(theirs)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _kind_np(r):
    return tuple(_kind_np(e) for e in r) if isinstance(r, tuple) else "T"


def _flat(r):
    return [a for e in r for a in _flat(e)] if isinstance(r, tuple) else [r]


# (id, fn(T, *inputs), inputs spec): general functions for jacobian, vjp and jvp
GENERAL = [
    ("sin-times-x", lambda T, x: x.sin() * x, X),
    ("two-in-two-out", lambda T, x, y: (x * y.sum(), (x ** 2).sum() * y), (X, Y)),
    ("matrix", lambda T, a: a @ a.t(), A),
    ("one-tuple", lambda T, x: (x.exp(),), (X,)),
    ("softmax", lambda T, y: T.nn.functional.softmax(y, dim=1), Y),
]
# scalar functions for hessian, hvp and vhp
SCALAR = [
    ("cube-sum", lambda T, x: (x ** 3).sum(), X),
    ("two-inputs", lambda T, x, y: (x.sin() * (y ** 2).sum()).sum(), (X, Y)),
    ("matrix", lambda T, a: (a.tanh() ** 2).sum(), A),
    ("one-tuple", lambda T, x: x.exp().sum(), (X,)),
    ("log-sum-exp", lambda T, y: T.logsumexp(y, dim=1).sum(), Y),
    ("linear", lambda T, x: x.sum() * 3, X),
    ("constant", lambda T, x: T.ones(()) * 3, X),
]


def _row(rows):
    return [pytest.param(*r, id=r[0]) for r in rows]


def _v_like(template, seed):
    """Random arrays with the nesting and shapes of template (a tensor or tuple of them)."""
    rng = np.random.default_rng(seed)
    if isinstance(template, tuple):
        return tuple(rng.standard_normal(tuple(t.shape)) for t in template)
    return rng.standard_normal(tuple(template.shape))


def _both(fn_name, fn, spec, v=None, **kw):
    torch = torch_or_skip()
    import torch.autograd.functional as TF
    res = []
    for T, M in ((tg, AF), (torch, TF)):
        args = [lambda *xs, T=T: fn(T, *xs), _build(T, spec)]
        if v is not None:
            args.append(_build(T, v))
        res.append(getattr(M, fn_name)(*args, **kw))
    return res


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
@pytest.mark.parametrize("name,fn,spec", _row(GENERAL + SCALAR))
def test_jacobian_matches_torch(name, fn, spec, strategy):
    _assert_same(*_both("jacobian", fn, spec, strategy=strategy, vectorize=True))


@pytest.mark.parametrize("name,fn,spec", _row(GENERAL + SCALAR))
def test_vjp_matches_torch(name, fn, spec):
    out = fn(tg, *(_build(tg, spec) if isinstance(spec, tuple) else (_build(tg, spec),)))
    _assert_same(*_both("vjp", fn, spec, _v_like(out, 1)))


@pytest.mark.parametrize("name,fn,spec", _row(GENERAL + SCALAR))
def test_jvp_matches_torch(name, fn, spec):
    _assert_same(*_both("jvp", fn, spec, _v_like(_build(tg, spec), 2)))


@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
@pytest.mark.parametrize("name,fn,spec", _row(SCALAR))
def test_hessian_matches_torch(name, fn, spec, strategy):
    _assert_same(*_both("hessian", fn, spec, outer_jacobian_strategy=strategy, vectorize=True))


@pytest.mark.parametrize("product", ["hvp", "vhp"])
@pytest.mark.parametrize("name,fn,spec", _row(SCALAR))
def test_hessian_products_match_torch(name, fn, spec, product):
    _assert_same(*_both(product, fn, spec, _v_like(_build(tg, spec), 3)))


@pytest.mark.parametrize("fn_name", ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"])
def test_create_graph_matches_torch(fn_name):
    f = (lambda T, x, y: (x.sin() * (y ** 2).sum()).sum()) if fn_name in (
        "hessian", "hvp", "vhp") else (lambda T, x, y: (x * y.sum(), (x ** 2).sum() * y))
    spec = (X, Y)
    v = None
    if fn_name == "vjp":
        v = _v_like(f(tg, t64(X), t64(Y)), 4)
    elif fn_name in ("jvp", "hvp", "vhp"):
        v = _v_like(_build(tg, spec), 5)
    ours, theirs = _both(fn_name, f, spec, v, create_graph=True)
    _assert_same(ours, theirs)


# (fn name, fn(T, *inputs), inputs, v or None, keyword arguments): each raises in torch
ERRORS = [
    ("jacobian", lambda T, a, b: a * 2, (X, X), None, dict(strict=True)),
    ("jacobian", lambda T, a: (a * 2, T.ones(2)), X, None, dict(strict=True)),
    ("vjp", lambda T, a, b: a * 2, (X, X), X, dict(strict=True)),
    ("vjp", lambda T, a: (a * 2, T.ones(2)), X, (X, X[:2]), dict(strict=True)),
    ("vjp", lambda T, a: a * 2, X, X[:2], {}),
    ("vjp", lambda T, a: a * 2, X, None, {}),
    ("vjp", lambda T, a: a * 2, (X,), (X, X), {}),
    ("vjp", lambda T, a: (a * 2, a), X, (X, X[:1]), {}),
    ("vjp", lambda T, a: [a * 2], X, X, {}),
    ("jvp", lambda T, a: a * 2, X, None, {}),
    ("jvp", lambda T, a: a * 2, (X,), (X[:1],), {}),
    ("hessian", lambda T, a: a * 2, X, None, {}),
    ("hessian", lambda T, a: (a.sum(), a.sum()), X, None, {}),
    ("hvp", lambda T, a: a * 2, X, X, {}),
    ("vhp", lambda T, a: (a.sum(),), X, X, {}),
]
ERRORS_SECOND = [
    ("hessian", lambda T, a, b: (a ** 2).sum() + b.sum(), (X, X), None, dict(strict=True)),
    ("hessian", lambda T, a, b: (a ** 2).sum(), (X, X), None, dict(strict=True)),
    ("hessian", lambda T, a: a.sum() * 2, X, None, dict(strict=True)),
    ("vhp", lambda T, a, b: (a ** 2).sum() + b.sum(), (X, X), (X, X), dict(strict=True)),
    ("vhp", lambda T, a, b: (a ** 2).sum(), (X, X), (X, X), dict(strict=True)),
    ("hvp", lambda T, a, b: (a ** 2).sum() + b.sum(), (X, X), (X, X), dict(strict=True)),
    ("jvp", lambda T, a, b: a * 2, (X, X), (X, X), dict(strict=True)),
    ("jvp", lambda T, a, b: (a * 2, T.ones(2)), (X, X), (X, X), dict(strict=True)),
]


def _same_error(fn_name, fn, spec, v, kw):
    torch = torch_or_skip()
    import torch.autograd.functional as TF
    caught = []
    for T, M in ((tg, AF), (torch, TF)):
        args = [lambda *xs, T=T: fn(T, *xs), _build(T, spec)]
        if v is not None:
            args.append(_build(T, v))
        try:
            getattr(M, fn_name)(*args, **kw)
        except NotImplementedError:
            raise                   # a missing feature, not an error to compare
        except Exception as e:      # noqa: BLE001 - type and message are compared
            caught.append(e)
        else:
            pytest.fail(f"{T.__name__}: {fn_name} raised nothing")
    ours, theirs = caught
    assert type(ours) is type(theirs)
    assert str(ours).replace("tapegrad.", "torch.") == str(theirs)


@pytest.mark.parametrize("fn_name,fn,spec,v,kw", [pytest.param(*r, id=f"{r[0]}-{i}")
                                                  for i, r in enumerate(ERRORS)])
def test_errors_match_torch(fn_name, fn, spec, v, kw):
    _same_error(fn_name, fn, spec, v, kw)


@pytest.mark.parametrize("fn_name,fn,spec,v,kw", [pytest.param(*r, id=f"{r[0]}-{i}")
                                                  for i, r in enumerate(ERRORS_SECOND)])
def test_second_order_errors_match_torch(fn_name, fn, spec, v, kw):
    _same_error(fn_name, fn, spec, v, kw)
