"""tapegrad.linalg beyond the op table (tests/table_linalg.py): return types, errors and
their wording against PyTorch's, degenerate points, double backward, Hessians, replay."""
import math
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import func
from helpers import torch_or_skip

_r = np.random.default_rng(16)


def spd(n, *batch):
    m = _r.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def T64(a, rg=False):
    return tg.tensor(np.asarray(a, np.float64), requires_grad=rg)


def both(fn, *arrays):
    """fn's error (type, message) with tapegrad and with torch, or None."""
    torch = torch_or_skip()
    out = []
    for T in (tg, torch):
        try:
            fn(T, *[T.tensor(np.asarray(a)) for a in arrays])
            out.append(None)
        except Exception as e:          # noqa: BLE001 - comparing what each raises
            out.append((isinstance(e, RuntimeError), isinstance(e, T.linalg.LinAlgError),
                        str(e)))
    return out


# ---- return types --------------------------------------------------------------------------
def test_named_tuples_and_dtypes():
    A = T64(spd(3), rg=True)
    s = tg.linalg.slogdet(A)
    assert type(s).__name__ == "linalg_slogdet" and s._fields == ("sign", "logabsdet")
    sign, logabs = s
    spd_ = A.detach().numpy()
    assert sign.item() == 1.0 and logabs.item() == pytest.approx(np.log(np.linalg.det(spd_)))
    e = tg.linalg.eigh(A)
    assert e._fields == ("eigenvalues", "eigenvectors")
    assert e.eigenvalues.shape == (3,) and e.eigenvectors.shape == (3, 3)
    ex = tg.linalg.cholesky_ex(A)
    assert ex._fields == ("L", "info") and ex.info.dtype == tg.int32 and ex.info.item() == 0
    for f in (tg.linalg.cholesky, tg.linalg.inv, tg.linalg.det, tg.logdet):
        out = f(A)
        assert out.dtype == tg.float64 and out.requires_grad
    L = tg.linalg.cholesky(A.float())
    assert L.dtype == tg.float32
    np.testing.assert_allclose(L.detach().numpy(), np.linalg.cholesky(spd_), rtol=1e-5)
    assert tg.linalg.cholesky(A).grad_fn.name() == "LinalgCholeskyExBackward0"
    assert tg.linalg.det(A).grad_fn.name() == "LinalgDetBackward0"
    assert tg.linalg.solve(A, A).grad_fn.name() == "LinalgSolveExBackward0"
    # no grad: plain tensors, no record
    with tg.no_grad():
        assert tg.linalg.inv(A).grad_fn is None
    assert not tg.linalg.inv(T64(spd(3))).requires_grad


def test_values_match_torch_batched():
    torch = torch_or_skip()
    A = spd(4, 2, 3)
    B = _r.standard_normal((2, 3, 4, 2))
    for name, fn in [
            ("cholesky", lambda T, a, b: T.linalg.cholesky(a)),
            ("upper", lambda T, a, b: T.linalg.cholesky(a, upper=True)),
            ("cholesky_solve", lambda T, a, b: T.cholesky_solve(b, T.linalg.cholesky(a))),
            ("solve", lambda T, a, b: T.linalg.solve(a, b)),
            ("inv", lambda T, a, b: T.linalg.inv(a)),
            ("det", lambda T, a, b: T.linalg.det(a)),
            ("logdet", lambda T, a, b: T.logdet(a)),
            ("eigvalsh", lambda T, a, b: T.linalg.eigvalsh(a)),
            ("matrix_power", lambda T, a, b: T.linalg.matrix_power(a, -3)),
            ("norm", lambda T, a, b: T.linalg.norm(b, dim=(-2, -1))),
            ("trace", lambda T, a, b: T.trace(a[0, 0]))]:
        ours = fn(tg, tg.tensor(A), tg.tensor(B)).numpy()
        theirs = fn(torch, torch.tensor(A), torch.tensor(B)).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12, err_msg=name)


# ---- errors ------------------------------------------------------------------------------------
def test_cholesky_not_positive_definite_raises_linalg_error_worded_as_torch():
    not_pd = np.array([[1.0, 2.0], [2.0, 1.0]])
    ours, theirs = both(lambda T, a: T.linalg.cholesky(a), not_pd)
    assert ours == theirs and ours[1]
    assert "the leading minor of order 2 is not positive-definite" in ours[2]
    batch = np.stack([np.eye(3), np.diag([1.0, 1.0, -1.0]), np.eye(3)])
    ours, theirs = both(lambda T, a: T.linalg.cholesky(a), batch)
    assert ours == theirs and "(Batch element 1)" in ours[2] and "order 3" in ours[2]
    assert issubclass(tg.linalg.LinAlgError, RuntimeError)


def test_cholesky_ex_reports_instead_of_raising():
    torch = torch_or_skip()
    a = np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    L, info = tg.linalg.cholesky_ex(tg.tensor(a))
    assert info.tolist() == torch.linalg.cholesky_ex(torch.tensor(a)).info.tolist() == [0, 2]
    np.testing.assert_array_equal(L.numpy()[0], np.eye(2))
    assert np.isnan(L.numpy()[1]).all()
    with pytest.raises(tg.linalg.LinAlgError, match="cholesky_ex.*order 2"):
        tg.linalg.cholesky_ex(tg.tensor(a), check_errors=True)


@pytest.mark.parametrize("case", [
    ("solve-singular", lambda T, a, b: T.linalg.solve(a, b), [[1.0, 2.0], [2.0, 4.0]], [1.0, 1.0]),
    ("inv-singular", lambda T, a: T.linalg.inv(a), [[1.0, 2.0], [2.0, 4.0]]),
    ("inv-singular-batch", lambda T, a: T.linalg.inv(a), np.zeros((2, 2, 2))),
    ("inv-first-pivot", lambda T, a: T.linalg.inv(a), [[0.0, 0.0, 1.0], [0.0, 0.0, 2.0],
                                                      [1.0, 1.0, 1.0]]),
    ("cholesky-not-square", lambda T, a: T.linalg.cholesky(a), np.ones((2, 3))),
    ("cholesky-vector", lambda T, a: T.linalg.cholesky(a), np.ones(3)),
    ("cholesky-integer", lambda T, a: T.linalg.cholesky(a), np.ones((2, 2), np.int64)),
    ("solve-shapes", lambda T, a, b: T.linalg.solve(a, b), np.eye(2), np.ones(3)),
    ("solve-not-square", lambda T, a, b: T.linalg.solve(a, b), np.ones((2, 3)), np.ones(3)),
    ("inv-not-square", lambda T, a: T.linalg.inv(a), np.ones((2, 3))),
    ("det-not-square", lambda T, a: T.linalg.det(a), np.ones((2, 3))),
    ("slogdet-not-square", lambda T, a: T.linalg.slogdet(a), np.ones((2, 3))),
    ("eigh-not-square", lambda T, a: T.linalg.eigh(a), np.ones((2, 3))),
    ("solve_triangular-shapes",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=True), np.eye(2), np.ones((3, 1))),
    ("solve_triangular-not-square",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=True), np.ones((2, 3)),
     np.ones((2, 1))),
    ("cholesky_solve-shapes", lambda T, b, l: T.cholesky_solve(b, l), np.ones((3, 1)),
     np.eye(2)),
    ("matrix_power-not-square", lambda T, a: T.linalg.matrix_power(a, 2), np.ones((2, 3))),
    ("cross-length", lambda T, a, b: T.linalg.cross(a, b), np.ones(2), np.ones(2)),
    ("cross-ndim", lambda T, a, b: T.linalg.cross(a, b), np.ones((2, 3)), np.ones(3)),
    ("multi_dot-one", lambda T, a: T.linalg.multi_dot([a]), np.ones((2, 2))),
], ids=lambda c: c[0])
def test_errors_match_torch(case):
    _, fn, *arrays = case
    ours, theirs = both(fn, *arrays)
    assert ours is not None, "tapegrad did not raise"
    assert ours == theirs


def test_solve_triangular_needs_upper():
    with pytest.raises(TypeError):
        tg.linalg.solve_triangular(tg.eye(2), tg.ones(2, 1))


def test_singular_solve_in_a_replay_raises_linalg_error():
    f = tg.compile(lambda a, b: tg.linalg.solve(a, b).sum())
    a = T64(np.eye(2), rg=True)
    f(a, T64([1.0, 2.0])).backward()
    f(a, T64([1.0, 2.0])).backward()      # replayed
    with pytest.raises(tg.linalg.LinAlgError, match="singular"):
        f(T64([[1.0, 2.0], [2.0, 4.0]], rg=True), T64([1.0, 2.0]))
    vg = func.value_and_grad(tg.compile(lambda a: tg.linalg.cholesky(a).sum()))
    vg(T64(np.eye(2)))
    with pytest.raises(tg.linalg.LinAlgError, match="not positive-definite"):
        vg(T64([[1.0, 2.0], [2.0, 1.0]]))


# ---- degenerate points ------------------------------------------------------------------------
def test_det_gradient_at_a_singular_matrix_is_the_cofactor_matrix():
    a = T64([[1.0, 2.0], [2.0, 4.0]], rg=True)
    tg.linalg.det(a).backward()
    np.testing.assert_allclose(a.grad.numpy(), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)
    # the derivative along a direction: det(A + tE) = t * <cofactor, E> + t^2 det(E)
    E = np.array([[0.3, -0.2], [0.5, 0.1]])
    t = 1e-6
    rate = np.linalg.det(a.detach().numpy() + t * E) / t
    assert rate == pytest.approx((a.grad.numpy() * E).sum(), rel=1e-5)
    b = T64([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]], rg=True)
    tg.linalg.det(b).backward()
    np.testing.assert_allclose(b.grad.numpy(), np.diag([0.0, 0.0, 1.0]), atol=1e-12)


def test_logdet_at_singular_and_negative_determinants():
    torch = torch_or_skip()
    for m in ([[0.0, 1.0], [1.0, 0.0]], np.zeros((2, 2)), [[2.0, 1.0], [1.0, 3.0]]):
        np.testing.assert_array_equal(tg.logdet(T64(m)).numpy(),
                                      torch.logdet(torch.tensor(np.asarray(m, np.float64))).numpy())
    a = T64([[1.0, 2.0], [2.0, 4.0]], rg=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tg.linalg.slogdet(a).logabsdet.backward()
    assert not np.isfinite(a.grad.numpy()).any()     # inf/NaN, as torch's


def test_eigh_repeated_eigenvalues_as_torch():
    torch = torch_or_skip()
    e = T64(np.eye(3), rg=True)
    w, v = tg.linalg.eigh(e)
    (v.sum() + w.sum()).backward()
    assert np.isnan(e.grad.numpy()).any() or np.isinf(e.grad.numpy()).any()
    # eigenvalues only: finite, Q diag(g) Q^T
    e.grad = None
    tg.linalg.eigvalsh(e).sum().backward()
    te = torch.eye(3, dtype=torch.float64, requires_grad=True)
    torch.linalg.eigvalsh(te).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), te.grad.numpy(), atol=1e-12)


# ---- second derivatives --------------------------------------------------------------------------
def gp_nlml(T, theta, d2, y):
    n = y.shape[0]
    K = T.exp(theta[1]) * T.exp(-0.5 * d2 * T.exp(-2.0 * theta[0])) + \
        T.exp(theta[2]) * T.eye(n, dtype=T.float64)
    L = T.linalg.cholesky(K)
    alpha = T.linalg.solve_triangular(L, y.unsqueeze(-1), upper=False)
    return 0.5 * (alpha * alpha).sum() + T.log(T.diagonal(L)).sum() + \
        0.5 * n * math.log(2 * math.pi)


def gp_nlml_logdet(T, theta, d2, y):
    n = y.shape[0]
    K = T.exp(theta[1]) * T.exp(-0.5 * d2 * T.exp(-2.0 * theta[0])) + \
        T.exp(theta[2]) * T.eye(n, dtype=T.float64)
    a = T.cholesky_solve(y.unsqueeze(-1), T.linalg.cholesky(K))
    return 0.5 * (y.unsqueeze(-1) * a).sum() + 0.5 * T.logdet(K)


def _gp_data(n=12):
    x = np.sort(_r.uniform(0, 4, n))
    return (x[:, None] - x[None, :]) ** 2, np.sin(x) + 0.1 * _r.standard_normal(n)


@pytest.mark.parametrize("loss", [gp_nlml, gp_nlml_logdet])
def test_hessian_of_a_gp_likelihood_matches_torch(loss):
    torch = torch_or_skip()
    d2, y = _gp_data()
    theta = np.log([0.7, 1.3, 0.1])
    h = func.hessian(lambda th: loss(tg, th, tg.tensor(d2), tg.tensor(y)))(T64(theta))
    H = torch.autograd.functional.hessian(
        lambda th: loss(torch, th, torch.tensor(d2), torch.tensor(y)), torch.tensor(theta))
    np.testing.assert_allclose(h.numpy(), H.numpy(), rtol=1e-9, atol=1e-10)
    # and of the compiled function
    hc = func.hessian(tg.compile(lambda th: loss(tg, th, tg.tensor(d2), tg.tensor(y))))(
        T64(theta))
    np.testing.assert_allclose(hc.numpy(), H.numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("op", ["cholesky", "solve_triangular", "inv", "det", "slogdet",
                                "solve", "eigh"])
def test_create_graph_double_backward_matches_torch(op):
    torch = torch_or_skip()
    a = spd(3)
    b = _r.standard_normal((3, 2))

    def f(T, x, y):
        s = (x + x.transpose(-1, -2)) / 2
        if op == "cholesky":
            return (T.linalg.cholesky(s) ** 2).sum() + T.linalg.cholesky(s).sum()
        if op == "solve_triangular":
            L = T.tril(x) + 3 * T.eye(3, dtype=T.float64)
            return (T.linalg.solve_triangular(L, y, upper=False) ** 3).sum()
        if op == "inv":
            return (T.linalg.inv(x) ** 2).sum()
        if op == "det":
            return T.linalg.det(x) ** 2
        if op == "slogdet":
            return T.linalg.slogdet(x).logabsdet * T.linalg.slogdet(x).logabsdet
        if op == "solve":
            return (T.linalg.solve(x, y) ** 2).sum()
        w, v = T.linalg.eigh(s)
        return (w ** 3).sum() + (v ** 4).sum()
    res = []
    for T in (tg, torch):
        x, y = T.tensor(a, requires_grad=True), T.tensor(b, requires_grad=True)
        gx, gy = T.autograd.grad(f(T, x, y), (x, y), create_graph=True, allow_unused=True)
        gy = gy if gy is not None else 0 * y
        gx2, gy2 = T.autograd.grad((gx * gx).sum() + (gy ** 2).sum(), (x, y), allow_unused=True)
        res.append([gx.detach().numpy(), gx2.numpy(),
                    None if gy2 is None else gy2.numpy()])
    for k, (o, t) in enumerate(zip(*res)):
        if o is None or t is None:
            continue
        np.testing.assert_allclose(o, t, rtol=1e-8, atol=1e-10, err_msg=f"{op} part {k}")


def test_value_and_grad_of_a_replayed_gp_likelihood():
    torch = torch_or_skip()
    d2, y = _gp_data(30)
    vg = func.value_and_grad(tg.compile(lambda th: gp_nlml(tg, th, tg.tensor(d2), tg.tensor(y))))
    for theta in (np.log([0.7, 1.3, 0.1]), np.log([1.5, 0.5, 0.02])):
        v, g = vg(T64(theta))
        th = torch.tensor(theta, requires_grad=True)
        tv = gp_nlml(torch, th, torch.tensor(d2), torch.tensor(y))
        tv.backward()
        assert v.item() == pytest.approx(tv.item(), rel=1e-12)
        np.testing.assert_allclose(g.numpy(), th.grad.numpy(), rtol=1e-10)


def test_triangular_solve_reads_only_its_triangle():
    L = np.tril(spd(3)) + np.triu(np.full((3, 3), 7.0), 1)     # junk above the diagonal
    b = _r.standard_normal((3, 2))
    x = tg.linalg.solve_triangular(T64(L), T64(b), upper=False).numpy()
    np.testing.assert_allclose(np.tril(L) @ x, b, atol=1e-12)
    u = tg.linalg.solve_triangular(T64(L.T), T64(b.T), upper=True, left=False,
                                   unitriangular=True).numpy()
    U1 = np.triu(L.T, 1) + np.eye(3)
    np.testing.assert_allclose(u @ U1, b.T, atol=1e-12)


# ---- svd, qr, lstsq -----------------------------------------------------------------------------
def test_svd_qr_lstsq_return_types_and_values_match_torch():
    torch = torch_or_skip()
    a = _r.standard_normal((2, 5, 3))
    b = _r.standard_normal((2, 5, 2))
    for full in (True, False):
        ours, theirs = tg.linalg.svd(T64(a), full_matrices=full), torch.linalg.svd(
            torch.tensor(a), full_matrices=full)
        assert type(ours).__name__ == "linalg_svd" and ours._fields == ("U", "S", "Vh")
        assert [t.shape for t in ours] == [tuple(t.shape) for t in theirs]
        np.testing.assert_allclose(ours.S.numpy(), theirs.S.numpy(), rtol=1e-12)
        np.testing.assert_allclose(np.abs(ours.U.numpy()), np.abs(theirs.U.numpy()), atol=1e-12)
    for mode in ("reduced", "complete", "r"):
        ours, theirs = tg.linalg.qr(T64(a), mode=mode), torch.linalg.qr(torch.tensor(a), mode=mode)
        assert ours._fields == ("Q", "R")
        for o, t in zip(ours, theirs):
            assert o.shape == tuple(t.shape)
            np.testing.assert_allclose(o.numpy(), t.numpy(), atol=1e-12)
    ours, theirs = tg.linalg.lstsq(T64(a), T64(b)), torch.linalg.lstsq(torch.tensor(a),
                                                                      torch.tensor(b))
    assert ours._fields == ("solution", "residuals", "rank", "singular_values")
    np.testing.assert_allclose(ours.solution.numpy(), theirs.solution.numpy(), atol=1e-12)
    assert ours.rank.tolist() == theirs.rank.tolist() == [3, 3]
    assert ours.residuals.shape == tuple(theirs.residuals.shape) == (0,)
    ours, theirs = both(lambda T, x: T.linalg.qr(x, mode="bad"), a)
    assert ours == theirs


def test_full_svd_drops_the_completing_columns_gradient_as_torch():
    torch = torch_or_skip()
    a = _r.standard_normal((4, 3))
    w = _r.standard_normal((4, 4))
    grads = []
    for T in (tg, torch):
        x = T.tensor(a, requires_grad=True)
        u = T.linalg.svd(x)[0]
        (u * u * T.tensor(w)).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-12)


def test_svd_gradient_of_singular_values_only_is_finite_where_they_repeat():
    torch = torch_or_skip()
    q, _ = np.linalg.qr(_r.standard_normal((3, 3)))       # all singular values 1
    x = T64(q, rg=True)
    tg.linalg.svdvals(x).sum().backward()
    tx = torch.tensor(q, requires_grad=True)
    torch.linalg.svdvals(tx).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    # and pinv of that orthogonal matrix (full rank: through solve) has finite gradients
    y = T64(q, rg=True)
    tg.linalg.pinv(y).sum().backward()
    ty = torch.tensor(q, requires_grad=True)
    torch.linalg.pinv(ty).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), atol=1e-10)


def test_pinv_of_a_rank_deficient_matrix_matches_torch():
    torch = torch_or_skip()
    a = _r.standard_normal((4, 2)) @ np.diag([3.0, 1.0]) @ _r.standard_normal((2, 3))
    x, tx = T64(a, rg=True), torch.tensor(a, requires_grad=True)
    np.testing.assert_allclose(tg.linalg.pinv(x).detach().numpy(),
                               torch.linalg.pinv(tx).detach().numpy(), atol=1e-12)
    (tg.linalg.pinv(x) ** 2).sum().backward()
    (torch.linalg.pinv(tx) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-7, atol=1e-9)


def test_matrix_exp_of_known_matrices():
    t = 0.7
    rot = tg.linalg.matrix_exp(T64([[0.0, -t], [t, 0.0]])).numpy()
    np.testing.assert_allclose(rot, [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]],
                               rtol=1e-15, atol=1e-15)
    d = np.diag([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(tg.linalg.matrix_exp(T64(10 * d)).numpy(), np.diag(np.exp(10 *
                               np.diag(d))), rtol=1e-13)


def test_without_openblas_the_numpy_fallbacks_give_the_same_results(tmp_path):
    """TAPEGRAD_NO_BLAS=1 (or a numpy built against another BLAS): the triangular solves,
    products and the Cholesky factorisation fall back to numpy; same values and gradients."""
    import os
    import subprocess
    import sys
    a = spd(4, 2)
    b = _r.standard_normal((2, 4, 3))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    code = f"""
import numpy as np, tapegrad as tg
from tapegrad.linalg import lapack
assert not lapack.TRSM and not lapack.POTRF and not lapack.TRMM
a = tg.tensor(np.load({str(tmp_path / 'a.npy')!r}), requires_grad=True)
b = tg.tensor(np.load({str(tmp_path / 'b.npy')!r}), requires_grad=True)
L = tg.linalg.cholesky(a)
x = tg.linalg.solve_triangular(L, b, upper=False)
y = tg.linalg.solve_triangular(L, b.transpose(-1, -2), upper=False, left=False, unitriangular=True)
((x ** 2).sum() + (y ** 3).sum() + tg.logdet(a).sum()).backward()
np.save({str(tmp_path / 'out.npy')!r}, np.concatenate([a.grad.numpy().ravel(), b.grad.numpy().ravel()]))
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TAPEGRAD_NO_BLAS="1",
               PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")]
                                                    if p]))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path)
    x, y = T64(a, rg=True), T64(b, rg=True)
    L = tg.linalg.cholesky(x)
    u = tg.linalg.solve_triangular(L, y, upper=False)
    v = tg.linalg.solve_triangular(L, y.transpose(-1, -2), upper=False, left=False,
                                   unitriangular=True)
    ((u ** 2).sum() + (v ** 3).sum() + tg.logdet(x).sum()).backward()
    mine = np.concatenate([x.grad.numpy().ravel(), y.grad.numpy().ravel()])
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), mine, rtol=1e-10, atol=1e-12)
