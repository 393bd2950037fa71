"""Rows of the op table for the composed ops (tapegrad/ops/composite.py), and their own tests.

test_ops_gradcheck.py imports this module before it builds its tests, so these rows join
CASES and go through gradcheck, PyTorch parity, compile, jvp and hessian like every other
row. Inputs stay away from kinks and ties (zeros for prod/cumprod/norm, equal values for amax/amin);
the test_* functions below cover those points against PyTorch, and bad input.

Its test_* functions reach pytest through test_ops_gradcheck's star import (``__all__``):
this file's name does not match pytest's test_*.py.
"""

import numpy as np
import pytest

import tapegrad as tg
from test_ops_gradcheck import _rng, _shape_id, away, case, distinct, rnd

# rows that read values while recording (the winners of amax/amin over some dims, the
# non-zeros of norm p=0): under compile they run eagerly, as max(dim) does
EAGER_ROWS = set()


def eager(id, fn, *inputs, **kw):
    EAGER_ROWS.add(id)
    case(id, fn, *inputs, **kw)


def nonzero(*shape):
    """Values with |x| in [0.5, 1.5] and either sign: products stay of order one."""
    return _rng.uniform(0.5, 1.5, shape) * _rng.choice([-1.0, 1.0], shape)


def pdistinct(*shape, gap=0.3):
    """Positive values that differ pairwise by at least `gap` (no ties in |x| either)."""
    v = distinct(*shape, gap=gap)
    return v - v.min() + 0.5


def C(a):
    return np.array(a)


# ---- prod -----------------------------------------------------------------------------------
case("prod-()", lambda T, x: T.prod(x), nonzero())
case("prod-(5)", lambda T, x: T.prod(x), nonzero(5))
case("prod-(2,3)-method", lambda T, x: x.prod(), nonzero(2, 3))
case("prod-(2,3)-dim1", lambda T, x: T.prod(x, 1), nonzero(2, 3))
case("prod-(2,3,2)-dim0-keep", lambda T, x: T.prod(x, 0, keepdim=True), nonzero(2, 3, 2))
case("prod-(3,5)-dim-1-method", lambda T, x: x.prod(dim=-1), nonzero(3, 5))
case("prod-()-dim0", lambda T, x: x.prod(0), nonzero())
case("prod-(4,1)-dim1", lambda T, x: T.prod(x, 1), nonzero(4, 1))

# ---- logsumexp ------------------------------------------------------------------------------
case("logsumexp-(2,3)-dim1", lambda T, x: T.logsumexp(x, 1), rnd(2, 3))
case("logsumexp-(2,3,2)-dims(0,2)", lambda T, x: T.logsumexp(x, (0, 2)), rnd(2, 3, 2))
case("logsumexp-(2,3)-dim0-keep", lambda T, x: T.logsumexp(x, 0, keepdim=True), rnd(2, 3))
case("logsumexp-(5)-method", lambda T, x: x.logsumexp(0), rnd(5))
case("logsumexp-()-dim0", lambda T, x: T.logsumexp(x, 0), rnd())
case("logsumexp-(3,4)-large", lambda T, x: T.logsumexp(x, -1), 40 + 5 * rnd(3, 4))

# ---- var, std -------------------------------------------------------------------------------
for red in ("var", "std"):
    case(f"{red}-(5)", lambda T, x, red=red: getattr(T, red)(x), rnd(5))
    case(f"{red}-(2,3)-dim1", lambda T, x, red=red: getattr(T, red)(x, 1), rnd(2, 3))
    case(f"{red}-(2,3,4)-dims(0,2)-keep",
         lambda T, x, red=red: getattr(T, red)(x, (0, 2), keepdim=True), rnd(2, 3, 4))
    case(f"{red}-(2,3)-correction0", lambda T, x, red=red: getattr(x, red)(dim=0, correction=0),
         rnd(2, 3))
    case(f"{red}-(2,3)-correction2", lambda T, x, red=red: getattr(T, red)(x, correction=2),
         rnd(2, 3))
    case(f"{red}-(4)-unbiased-False", lambda T, x, red=red: getattr(T, red)(x, False), rnd(4))
    case(f"{red}-(2,3)-dim-unbiased-keep",
         lambda T, x, red=red: getattr(T, red)(x, 1, False, True), rnd(2, 3))
    case(f"{red}-(3,2)-method", lambda T, x, red=red: getattr(x, red)(-1), rnd(3, 2))

# ---- norm -----------------------------------------------------------------------------------
case("norm-(5)", lambda T, x: T.norm(x), rnd(5))
case("norm-(2,3)-fro", lambda T, x: T.norm(x, "fro"), rnd(2, 3))
case("norm-(2,3)-p2-dim1", lambda T, x: T.norm(x, 2, dim=1), rnd(2, 3))
case("norm-(2,3,2)-fro-dims(0,2)-keep", lambda T, x: T.norm(x, "fro", dim=(0, 2), keepdim=True),
     rnd(2, 3, 2))
case("norm-(2,3)-p1", lambda T, x: T.norm(x, 1), away(2, 3))
case("norm-(2,3)-p1-dim0-method", lambda T, x: x.norm(p=1, dim=0), away(2, 3))
case("norm-(5)-inf", lambda T, x: T.norm(x, float("inf")), pdistinct(5) * C(
    [1, -1, 1, -1, 1]))
case("norm-(2,3)--inf", lambda T, x: T.norm(x, -float("inf")), pdistinct(2, 3))
eager("norm-(2,3)-inf-dim1", lambda T, x: T.norm(x, float("inf"), dim=1), pdistinct(2, 3))
case("norm-(2,3)-p3-dim0", lambda T, x: T.norm(x, 3, dim=0), away(2, 3))
case("norm-(3)-p1.5", lambda T, x: x.norm(1.5), away(3))
case("norm-()", lambda T, x: T.norm(x), away())
case("norm-(2,3)-method-dim-1", lambda T, x: x.norm(dim=-1), rnd(2, 3))
eager("norm-(2,3)-p0", lambda T, x: T.norm(x, 0) + x.sum(), away(2, 3))

# ---- amax, amin -----------------------------------------------------------------------------
for red in ("amax", "amin"):
    case(f"{red}-(2,3)", lambda T, x, red=red: getattr(T, red)(x), distinct(2, 3))
    case(f"{red}-(5)-dim0", lambda T, x, red=red: getattr(T, red)(x, 0), distinct(5))
    case(f"{red}-(2,3)-dims(0,1)-keep",
         lambda T, x, red=red: getattr(T, red)(x, (0, 1), keepdim=True), distinct(2, 3))
    case(f"{red}-()", lambda T, x, red=red: getattr(x, red)() * 2.0, distinct())
    eager(f"{red}-(2,3)-dim1", lambda T, x, red=red: getattr(T, red)(x, 1), distinct(2, 3))
    eager(f"{red}-(2,3,2)-dims(0,2)-keep",
          lambda T, x, red=red: getattr(T, red)(x, (0, 2), keepdim=True), distinct(2, 3, 2))
    eager(f"{red}-(3,4)-method-dim-1", lambda T, x, red=red: getattr(x, red)(-1),
          distinct(3, 4))

# ---- cumsum, cumprod ------------------------------------------------------------------------
for s, d in [((5,), 0), ((2, 3), 1), ((2, 3, 2), -2), ((), 0), ((8,), 0), ((3, 7), 1),
             ((1,), 0)]:
    sid = f"{_shape_id(s)}-dim{d}"
    case(f"cumsum-{sid}", lambda T, x, d=d: T.cumsum(x, d), rnd(*s))
    case(f"cumprod-{sid}", lambda T, x, d=d: T.cumprod(x, dim=d), nonzero(*s))
case("cumsum-(2,3)-method", lambda T, x: x.cumsum(0), rnd(2, 3))
case("cumprod-(2,3)-method", lambda T, x: x.cumprod(-1), nonzero(2, 3))

# ---- masked_fill ----------------------------------------------------------------------------
_M3 = C([True, False, True])
_M23 = C([[True, False, False], [False, True, True]])
case("masked_fill-(2,3)-(3)", lambda T, x: T.masked_fill(x, T.tensor(_M3), 0.5), rnd(2, 3))
case("masked_fill-(2,3)-(2,3)-method", lambda T, x: x.masked_fill(T.tensor(_M23), -2.0),
     rnd(2, 3))
case("masked_fill-(3)-(2,1)-bcast", lambda T, x: T.masked_fill(x, T.tensor(C([[True], [False]])),
                                                               1.0), rnd(3))
case("masked_fill-value-tensor", lambda T, x, v: T.masked_fill(x, T.tensor(_M23), v),
     rnd(2, 3), rnd())
case("masked_fill-()", lambda T, x: T.masked_fill(x, T.tensor(C(True)), 3.0) + x, rnd())

# ---- index_select, gather, scatter_add ------------------------------------------------------
_I3 = C([2, 0, 2])
case("index_select-(4,3)-dim0", lambda T, x: T.index_select(x, 0, T.tensor(_I3)), rnd(4, 3))
case("index_select-(2,4)-dim1-method", lambda T, x: x.index_select(1, T.tensor(C([3, 1]))),
     rnd(2, 4))
case("index_select-(2,4)-dim-1-0d", lambda T, x: T.index_select(x, -1, T.tensor(C(2))),
     rnd(2, 4))
case("index_select-(5)-int32", lambda T, x: T.index_select(x, 0, T.tensor(_I3.astype(np.int32))),
     rnd(5))
_G = C([[0, 3], [1, 1], [2, 0]])
case("gather-(3,4)-dim1", lambda T, x: T.gather(x, 1, T.tensor(_G)), rnd(3, 4))
case("gather-(3,4)-dim0", lambda T, x: T.gather(x, 0, T.tensor(C([[2, 0, 1, 1], [0, 0, 2, 1]]))),
     rnd(3, 4))
case("gather-(2,3,2)-dim-2-method",
     lambda T, x: x.gather(-2, T.tensor(C([[[0, 2], [2, 2]], [[1, 0], [0, 0]]]))), rnd(2, 3, 2))
case("gather-(4)-dim0", lambda T, x: T.gather(x, 0, T.tensor(C([3, 3, 0]))), rnd(4))
_S = C([[0, 1, 2, 0], [2, 1, 2, 0]])
case("scatter_add-(3,4)-dim0", lambda T, x, s: T.scatter_add(x, 0, T.tensor(_S), s),
     rnd(3, 4), rnd(2, 4))
case("scatter_add-(3,4)-dim1-src-larger",   # torch's backward fails here (gradient shape)
     lambda T, x, s: x.scatter_add(1, T.tensor(C([[0, 0], [3, 1]])), s), rnd(3, 4), rnd(3, 3),
     torch=False)
case("scatter_add-(2,3)-src-only",
     lambda T, s: T.scatter_add(T.zeros(2, 3, dtype=s.dtype), -1, T.tensor(C([[2, 2, 0]])), s),
     rnd(1, 3))

# ---- tril, triu, flip, roll, diagonal, trace, outer ------------------------------------------
for fn in ("tril", "triu"):
    case(f"{fn}-(3,4)", lambda T, x, fn=fn: getattr(T, fn)(x), rnd(3, 4))
    case(f"{fn}-(3,4)-k1", lambda T, x, fn=fn: getattr(T, fn)(x, 1), rnd(3, 4))
    case(f"{fn}-(2,3,3)-k-1", lambda T, x, fn=fn: getattr(T, fn)(x, diagonal=-1), rnd(2, 3, 3))
    case(f"{fn}-(4,2)-method-k2", lambda T, x, fn=fn: getattr(x, fn)(2), rnd(4, 2))
case("flip-(2,3)-(0)", lambda T, x: T.flip(x, (0,)), rnd(2, 3))
case("flip-(2,3,2)-(0,2)", lambda T, x: T.flip(x, [0, 2]), rnd(2, 3, 2))
case("flip-(2,3)-method", lambda T, x: x.flip(1), rnd(2, 3))
case("flip-(2,3)-method-all", lambda T, x: x.flip(0, -1), rnd(2, 3))
case("flip-()", lambda T, x: T.flip(x, ()) * 2.0, rnd())
case("roll-(5)-2", lambda T, x: T.roll(x, 2), rnd(5))
case("roll-(2,3)-flat", lambda T, x: T.roll(x, -1), rnd(2, 3))
case("roll-(2,3)-dims", lambda T, x: T.roll(x, (1, -1), (0, 1)), rnd(2, 3))
case("roll-(2,3,2)-method", lambda T, x: x.roll(4, 1), rnd(2, 3, 2))
case("diagonal-(3,3)", lambda T, x: T.diagonal(x), rnd(3, 3))
case("diagonal-(3,4)-offset1", lambda T, x: T.diagonal(x, 1), rnd(3, 4))
case("diagonal-(3,4)-offset-2", lambda T, x: T.diagonal(x, offset=-2), rnd(3, 4))
case("diagonal-(2,3,4)-dims1,2", lambda T, x: T.diagonal(x, -1, 1, 2), rnd(2, 3, 4))
case("diagonal-(3,2,3)-method-dims0,2", lambda T, x: x.diagonal(dim1=0, dim2=-1), rnd(3, 2, 3))
case("trace-(3,3)", lambda T, x: T.trace(x), rnd(3, 3))
case("trace-(2,4)-method", lambda T, x: x.trace(), rnd(2, 4))
case("outer-(3)x(4)", lambda T, x, y: T.outer(x, y), rnd(3), rnd(4))
case("outer-(2)x(3)-method", lambda T, x, y: x.outer(y), rnd(2), rnd(3))

# ---- einsum ---------------------------------------------------------------------------------
_EINSUM = [
    ("ij,jk->ik", (2, 3), (3, 4)), ("bij,bjk->bik", (2, 2, 3), (2, 3, 2)), ("i,i->", (5,), (5,)),
    ("ij->ji", (2, 3)), ("ii->i", (3, 3)), ("ij,j->i", (2, 3), (3,)), ("i,j->ij", (3,), (4,)),
    ("ij,ij->ij", (2, 3), (1, 3)), ("ij,ij->", (2, 3), (2, 3)), ("ij->", (2, 3)),
    ("bij->bj", (2, 3, 2)), ("ij,jk", (2, 3), (3, 2)), ("ii", (3, 3)),
    ("ji,jk->ki", (3, 2), (3, 4)),
    ("...ij,...jk->...ik", (2, 2, 3), (3, 2)), ("bi,bj->bij", (2, 3), (2, 2)),
    ("ij,jk,kl->il", (2, 3), (3, 2), (2, 2)), ("iij->j", (2, 2, 3)), ("i,->i", (3,), ()),
    ("ij, jk -> ik", (2, 2), (2, 3)),
]
for eq, *shapes in _EINSUM:
    case(f"einsum-{eq.replace(' ', '')}-{_shape_id(*shapes)}",
         lambda T, *xs, eq=eq: T.einsum(eq, *xs), *[rnd(*s) for s in shapes])
case("einsum-list-operands", lambda T, x, y: T.einsum("ij,jk->ik", [x, y]), rnd(2, 3), rnd(3, 2))
case("einsum-same-operand-twice", lambda T, x: T.einsum("ij,kj->ik", x, x), rnd(2, 3))


# ---- ties, zeros, the gradient at 0: against PyTorch -------------------------------------------
def _both(fn, *arrays, u=None):
    """fn(T, *leaves) in tapegrad and torch: [(value, [grads])] for each, backpropagating u
    (ones by default)."""
    torch = pytest.importorskip("torch")
    res = []
    for T in (tg, torch):
        xs = [T.tensor(np.array(a, np.float64), requires_grad=True) for a in arrays]
        out = fn(T, *xs)
        g = np.ones(tuple(out.shape)) if u is None else u
        out.backward(T.tensor(g))
        res.append((np.asarray(out.detach().numpy()),
                    [None if x.grad is None else np.asarray(x.grad.numpy()) for x in xs]))
    return res


def _assert_same(fn, *arrays, u=None, tol=1e-12):
    (v, gs), (tv, tgs) = _both(fn, *arrays, u=u)
    assert v.shape == tv.shape
    np.testing.assert_allclose(v, tv, rtol=tol, atol=tol)
    for g, t in zip(gs, tgs):
        np.testing.assert_allclose(g, t, rtol=tol, atol=tol)
    return gs


_TIES = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [0.0, -2.0, 0.0, -2.0]])


@pytest.mark.parametrize("red", ["amax", "amin"])
@pytest.mark.parametrize("kw", [{}, dict(dim=1), dict(dim=0, keepdim=True), dict(dim=(0, 1)),
                                dict(dim=-1, keepdim=True)], ids=str)
def test_amax_amin_ties_share_the_gradient_evenly(red, kw):
    u = None if not kw.get("dim") == 1 else np.array([1.0, 2.0, 3.0])
    gs = _assert_same(lambda T, x: getattr(T, red)(x, **kw), _TIES, u=u)
    if kw.get("dim") == 1 and red == "amax":
        np.testing.assert_allclose(gs[0][1], [2 / 3, 2 / 3, 2 / 3, 0.0])


def test_amax_value_is_exact_with_three_ties():
    v = 1.0 + 2.0 ** -52
    x = tg.tensor([[v, v, v, 0.5]], dtype=tg.float64, requires_grad=True)
    out = x.amax(1)
    assert out.item() == v            # the winner itself, not a sum of thirds
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), [[1 / 3, 1 / 3, 1 / 3, 0.0]], rtol=1e-15)


def test_amax_with_minus_inf_entries_and_infinite_winner():
    x = tg.tensor([[-np.inf, 1.0, -np.inf], [np.inf, np.inf, 0.0]], dtype=tg.float64,
                  requires_grad=True)
    out = x.amax(1)
    assert out.tolist() == [1.0, np.inf]
    out.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all() and g[0].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("data", [[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.0, 2.0],
                                  [0.0, 0.0, 0.0, 1.5], [[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]]],
                         ids=["one-zero", "two-zeros", "three-zeros", "2d"])
def test_prod_at_zeros_matches_torch(data):
    _assert_same(lambda T, x: T.prod(x), data)
    a = np.array(data)
    if a.ndim == 2:
        _assert_same(lambda T, x: T.prod(x, 1), data, u=np.array([2.0, -1.0]))
        _assert_same(lambda T, x: T.prod(x, 0, keepdim=True), data)


def test_prod_one_zero_gradient_by_hand():
    x = tg.tensor([2.0, 0.0, 3.0, 4.0], requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 24.0, 0.0, 0.0]
    x = tg.tensor([0.0, 5.0, 0.0], requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("data", [[2.0, 0.0, 3.0, -1.0, 0.5], [0.0, 0.0, 1.0, 2.0, 3.0]])
def test_cumprod_at_zeros_matches_torch(data):
    _assert_same(lambda T, x: T.cumprod(x, 0), data, u=np.arange(1.0, 6.0))


@pytest.mark.parametrize("p", [2, "fro", 1, float("inf"), -float("inf"), 3, 1.5])
@pytest.mark.parametrize("kw", [{}, dict(dim=1), dict(dim=(0, 1), keepdim=True)], ids=str)
def test_norm_gradient_at_zero_is_torch_s(p, kw):
    gs = _assert_same(lambda T, x: T.norm(x, p, **kw), np.zeros((2, 3)))
    assert np.all(gs[0] == 0)


def test_norm_at_a_partly_zero_row_and_std_of_a_constant():
    _assert_same(lambda T, x: T.norm(x, dim=1), [[0.0, 0.0], [3.0, 4.0]])
    gs = _assert_same(lambda T, x: T.std(x), [0.5, 0.5, 0.5])
    assert np.all(gs[0] == 0)


def test_norm_values_exact_enough():
    x = tg.tensor([3.0, 4.0], dtype=tg.float64)
    assert x.norm().item() == 5.0
    assert tg.norm(tg.zeros(3)).item() == 0.0


def test_logsumexp_infinities_and_stability():
    x = tg.tensor([[-np.inf, -np.inf], [np.inf, 0.0], [1000.0, 1000.0]], dtype=tg.float64)
    out = tg.logsumexp(x, 1).numpy()
    assert out[0] == -np.inf and out[1] == np.inf
    np.testing.assert_allclose(out[2], 1000.0 + np.log(2.0), rtol=1e-15)
    _assert_same(lambda T, x: T.logsumexp(x, 1), [[1000.0, 999.0, -1000.0], [-5e3, -5e3, -5e3]])


def test_var_with_too_few_degrees_of_freedom_warns_like_torch():
    torch = pytest.importorskip("torch")
    with pytest.warns(UserWarning, match="degrees of freedom"):
        ours = tg.var(tg.tensor([1.5])).item()
    with pytest.warns(UserWarning):
        theirs = torch.var(torch.tensor([1.5])).item()
    assert np.isnan(ours) and np.isnan(theirs)


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("i,i->", [(4,), (4,)]), ("ij->ji", [(2, 3)]), ("ii->i", [(3, 3)]), ("ij,j->i", [(2, 3), (3,)]),
    ("i,j->ij", [(2,), (3,)]), ("ii", [(3, 3)]), ("ij,kj", [(2, 3), (4, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (3, 3, 2)]), ("...i->...", [(2, 3, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (2, 3, 4), (2, 4)]), ("iij,jk->ik", [(2, 2, 3), (3, 2)]),
    ("Ij,jk->kI", [(2, 3), (3, 2)]), ("ij,ij->i", [(3, 1), (1, 2)])])
def test_einsum_forms_match_numpy_and_torch(eq, shapes):
    r = np.random.default_rng(11)
    arrays = [r.standard_normal(s) for s in shapes]
    out = tg.einsum(eq, *[tg.tensor(a) for a in arrays])
    np.testing.assert_allclose(out.numpy(), np.einsum(eq, *np.broadcast_arrays(*arrays)
                                                      if eq == "ij,ij->i" else arrays),
                               rtol=1e-12, atol=1e-12)
    _assert_same(lambda T, *xs: T.einsum(eq, *xs), *arrays)


def test_int_inputs_give_torch_s_dtypes():
    torch = pytest.importorskip("torch")
    a = np.array([[1, 2, 3], [4, 5, 6]])
    for fn in (lambda T, x: T.prod(x), lambda T, x: T.prod(x, 1), lambda T, x: T.cumsum(x, 1),
               lambda T, x: T.cumprod(x, 0), lambda T, x: T.trace(x[:, :2]),
               lambda T, x: T.amax(x, 1), lambda T, x: T.tril(x), lambda T, x: T.flip(x, (1,)),
               lambda T, x: T.einsum("ij->j", x),
               lambda T, x: T.masked_fill(x, T.tensor(np.array([True, False, True])), 7)):
        ours, theirs = fn(tg, tg.tensor(a)), fn(torch, torch.tensor(a))
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_results_are_new_tensors_in_the_graph():
    x = tg.randn(2, 3, requires_grad=True)
    for out in (tg.einsum("ij->ij", x), tg.prod(x.sum(0, keepdim=True), 0), tg.cumsum(x[0], 0),
                tg.flip(x, ()), tg.amax(x[0, 0])):
        assert out.requires_grad and out.grad_fn is not None


def test_tensor_methods_are_bound():
    for name in ("prod", "logsumexp", "var", "std", "norm", "amax", "amin", "cumsum",
                 "cumprod", "masked_fill", "index_select", "gather", "scatter_add", "tril",
                 "triu", "flip", "roll", "diagonal", "trace", "outer"):
        assert callable(getattr(tg.Tensor, name)), name


def test_amax_over_some_dims_runs_eagerly_under_compile_and_all_dims_replays():
    x = tg.tensor(np.array([[1.0, 3.0, 2.0]]), requires_grad=True)
    f = tg.compile(lambda v: v.amax(1))
    with pytest.warns(RuntimeWarning, match="compile"):
        f(x)
    g = tg.compile(lambda v: v.amax() + tg.logsumexp(v, 1).sum() + v.prod())
    g(x)
    assert next(iter(g.programs.values()))[0] is not None


# ---- bad input: PyTorch's exception types, clear messages ---------------------------------------
_X = np.arange(6.0).reshape(2, 3)
_BAD = [
    ("prod-tuple-dim", lambda: tg.prod(tg.tensor(_X), (0, 1)), TypeError, "must be int"),
    ("prod-dim", lambda: tg.prod(tg.tensor(_X), 2), IndexError, "Dimension out of range"),
    ("prod-not-tensor", lambda: tg.prod([1.0, 2.0]), TypeError, "must be Tensor"),
    ("var-int", lambda: tg.var(tg.tensor([1, 2])), RuntimeError, "floating point"),
    ("var-both", lambda: tg.var(tg.tensor(_X), 1, True, correction=1), TypeError, "not both"),
    ("norm-int", lambda: tg.norm(tg.tensor([1, 2])), RuntimeError, "floating point"),
    ("norm-order", lambda: tg.norm(tg.tensor(_X), "abc"), RuntimeError, "not supported"),
    ("norm-nuc", lambda: tg.norm(tg.tensor(_X), "nuc"), NotImplementedError, "nuclear"),
    ("norm-p-type", lambda: tg.norm(tg.tensor(_X), None), TypeError, "'p'"),
    ("amax-empty", lambda: tg.amax(tg.zeros(0, 3), 0), IndexError, "non-zero size"),
    ("amax-dim", lambda: tg.amax(tg.tensor(_X), 3), IndexError, "Dimension out of range"),
    ("amax-dup", lambda: tg.amax(tg.tensor(_X), (0, 0)), RuntimeError, "multiple times"),
    ("cumsum-dim", lambda: tg.cumsum(tg.tensor(_X), 2), IndexError, "Dimension out of range"),
    ("cumsum-float-dim", lambda: tg.cumsum(tg.tensor(_X), 1.0), TypeError, "dim must be an int"),
    ("logsumexp-dim", lambda: tg.logsumexp(tg.tensor(_X), -3), IndexError, "out of range"),
    ("masked_fill-int-mask", lambda: tg.masked_fill(tg.tensor(_X), tg.tensor([1, 0, 1]), 0.0),
     RuntimeError, "boolean masks"),
    ("masked_fill-value-dims", lambda: tg.masked_fill(tg.tensor(_X), tg.tensor([True] * 3),
                                                      tg.tensor([1.0])), RuntimeError,
     "0-dimensional value"),
    ("masked_fill-str", lambda: tg.masked_fill(tg.tensor(_X), tg.tensor([True] * 3), "a"),
     TypeError, "Number"),
    ("masked_fill-shape", lambda: tg.masked_fill(tg.tensor(_X), tg.tensor([True] * 4), 1.0),
     RuntimeError, "broadcast"),
    ("index_select-range", lambda: tg.index_select(tg.tensor(_X), 1, tg.tensor([0, 5])),
     RuntimeError, "index 5 is out of bounds for dimension 1 with size 3"),
    ("index_select-negative", lambda: tg.index_select(tg.tensor(_X), 1, tg.tensor([-1])),
     RuntimeError, "out of bounds"),
    ("index_select-float", lambda: tg.index_select(tg.tensor(_X), 1, tg.tensor([0.0])),
     RuntimeError, "int32 or int64"),
    ("index_select-2d", lambda: tg.index_select(tg.tensor(_X), 1, tg.tensor([[0]])),
     IndexError, "vector"),
    ("index_select-list", lambda: tg.index_select(tg.tensor(_X), 1, [0]), TypeError,
     "must be Tensor"),
    ("gather-range", lambda: tg.gather(tg.tensor(_X), 1, tg.tensor([[0, 3]])), RuntimeError,
     "index 3 is out of bounds for dimension 1 with size 3"),
    ("gather-float", lambda: tg.gather(tg.tensor(_X), 1, tg.tensor([[0.0]])), RuntimeError,
     "int32/int64"),
    ("gather-ndim", lambda: tg.gather(tg.tensor(_X), 1, tg.tensor([0, 1])), RuntimeError,
     "same number of dimensions"),
    ("gather-size", lambda: tg.gather(tg.tensor(_X), 1, tg.tensor(np.zeros((3, 1), np.int64))),
     RuntimeError, "Size does not match at dimension 0"),
    ("scatter_add-dtype", lambda: tg.scatter_add(tg.tensor(_X), 1, tg.tensor([[0]]),
                                                 tg.ones(1, 1)), RuntimeError, "src.dtype"),
    ("scatter_add-range", lambda: tg.scatter_add(tg.tensor(_X), 0, tg.tensor([[2]]),
                                                 tg.tensor([[1.0]], dtype=tg.float64)),
     RuntimeError, "index 2 is out of bounds for dimension 0 with size 2"),
    ("scatter_add-src-small", lambda: tg.scatter_add(
        tg.tensor(_X), 1, tg.tensor([[0, 1]]), tg.tensor([[1.0]], dtype=tg.float64)),
     RuntimeError, "no larger size than src"),
    ("tril-1d", lambda: tg.tril(tg.ones(3)), RuntimeError, "at least 2 dimensions"),
    ("triu-float-k", lambda: tg.triu(tg.ones(2, 2), 0.5), TypeError, "must be an int"),
    ("flip-int", lambda: tg.flip(tg.tensor(_X), 0), TypeError, "tuple of ints"),
    ("flip-dup", lambda: tg.flip(tg.tensor(_X), (0, 0)), RuntimeError, "multiple times"),
    ("roll-align", lambda: tg.roll(tg.tensor(_X), (1, 2), (0,)), RuntimeError, "must align"),
    ("roll-flat-two", lambda: tg.roll(tg.tensor(_X), (1, 2)), RuntimeError, "must align"),
    ("roll-0d-dim", lambda: tg.roll(tg.tensor(2.0), 1, 0), IndexError, "no dimensions"),
    ("diagonal-same", lambda: tg.diagonal(tg.tensor(_X), 0, 1, 1), RuntimeError,
     "cannot be identical"),
    ("diagonal-1d", lambda: tg.diagonal(tg.ones(3)), IndexError, "out of range"),
    ("trace-1d", lambda: tg.trace(tg.ones(3)), RuntimeError, "expected a matrix"),
    ("outer-2d", lambda: tg.outer(tg.ones(3), tg.ones(2, 2)), RuntimeError, "1-D argument vec2"),
    ("outer-0d", lambda: tg.outer(tg.tensor(1.0), tg.ones(2)), RuntimeError, "1-D argument self"),
    ("einsum-fewer", lambda: tg.einsum("ij,jk->ik", tg.ones(2, 3)), RuntimeError,
     "fewer operands"),
    ("einsum-more", lambda: tg.einsum("ij->ij", tg.ones(2, 3), tg.ones(2)), RuntimeError,
     "more operands"),
    ("einsum-size", lambda: tg.einsum("ij,jk->ik", tg.ones(2, 3), tg.ones(4, 2)), RuntimeError,
     "subscript j has size 4"),
    ("einsum-ndim", lambda: tg.einsum("ijk,jk->ik", tg.ones(2, 3), tg.ones(3, 2)), RuntimeError,
     "number of subscripts"),
    ("einsum-out-missing", lambda: tg.einsum("ij,jk->iz", tg.ones(2, 3), tg.ones(3, 2)),
     RuntimeError, "output subscript z does not appear"),
    ("einsum-out-twice", lambda: tg.einsum("ij->ii", tg.ones(2, 3)), RuntimeError,
     "more than once"),
    ("einsum-bad-char", lambda: tg.einsum("i1->i", tg.ones(2, 3)), RuntimeError,
     "invalid subscript"),
    ("einsum-diag-size", lambda: tg.einsum("ii", tg.ones(2, 3)), RuntimeError,
     "sizes don't match"),
    ("einsum-dtypes", lambda: tg.einsum("ij,jk->ik", tg.ones(2, 3),
                                        tg.ones(3, 2, dtype=tg.float64)), RuntimeError,
     "same dtype"),
    ("einsum-not-tensor", lambda: tg.einsum("i->i", [1.0]), TypeError, "must be a Tensor"),
]


@pytest.mark.parametrize("fn,exc,match", [pytest.param(f, e, m, id=i) for i, f, e, m in _BAD])
def test_bad_input_raises_torch_s_exception(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()
    assert tg.ones(2).sum().item() == 2.0        # the library keeps working


def test_bad_input_types_agree_with_torch():
    # the same calls in torch raise the same exception types (messages are ours)
    torch = pytest.importorskip("torch")
    X = torch.tensor(_X)
    calls = [
        (lambda: torch.index_select(X, 1, torch.tensor([0, 5])), RuntimeError),
        (lambda: torch.gather(X, 1, torch.tensor([[0, 3]])), RuntimeError),
        (lambda: torch.masked_fill(X, torch.tensor([1, 0, 1]), 0.0), RuntimeError),
        (lambda: torch.tril(torch.ones(3)), RuntimeError),
        (lambda: torch.flip(X, 0), TypeError),
        (lambda: torch.einsum("ij,jk->ik", torch.ones(2, 3), torch.ones(4, 2)), RuntimeError),
        (lambda: torch.amax(torch.zeros(0, 3), 0), IndexError),
        (lambda: torch.index_select(X, 1, torch.tensor([[0]])), IndexError),
        (lambda: torch.var(torch.tensor([1, 2])), RuntimeError),
    ]
    for fn, exc in calls:
        with pytest.raises(exc):
            fn()


# test_ops_gradcheck star-imports this file: these are the names it brings in
__all__ = [name for name in dir() if name.startswith("test_")]
