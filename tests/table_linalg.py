"""Rows of the op table for tapegrad.linalg, torch.logdet and torch.cholesky_solve.

test_ops_gradcheck.py imports this module beside table_composite, so every row goes through
gradcheck in float64, PyTorch parity (float64 and float32), compile replay, jvp/jacfwd and
the Hessian-vector products of test_func.py. Inputs are well conditioned: symmetric
positive-definite matrices are M M^T + n I, triangular ones have a diagonal in [1.5, 2.5],
general ones are M + n I; eigenvalues are spread at least 1 apart. Factorisations that read
one triangle of a symmetric input (cholesky, eigh) are differentiated through a
symmetrising wrapper, (x + x^T) / 2, as PyTorch's own tests do: a finite-difference step
in one entry must move the matrix the factorisation sees.

This file's name does not match pytest's test_*.py; it has no tests of its own.
"""
import numpy as np

from test_ops_gradcheck import case

# this table's own generator: its inputs (and their conditioning) do not depend on how many
# values the tables imported before it drew
_rng = np.random.default_rng(1616)

__all__ = []
# rows that read values while recording (pinv, lstsq and matrix_exp below; and the matrix
# norms of order +-1 and +-inf, which pick the
# largest or smallest column (row) sum, amax/amin over a dim): under compile they run
# eagerly, as amax over dims does
EAGER_ROWS = set()


def eager(id, fn, *inputs, **kw):
    EAGER_ROWS.add(id)
    case(id, fn, *inputs, **kw)


def spd(n, *batch):
    m = _rng.standard_normal(batch + (n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def spread(n, *batch):
    """Symmetric, eigenvalues 1, 2.2, 3.4, ... (gaps of 1.2) in a random basis."""
    q, _ = np.linalg.qr(_rng.standard_normal(batch + (n, n)))
    return (q * (1.0 + 1.2 * np.arange(n))) @ np.swapaxes(q, -1, -2)


def tri(n, *batch, upper=False):
    m = 0.3 * _rng.standard_normal(batch + (n, n))
    m = np.triu(m, 1) if upper else np.tril(m, -1)
    return m + np.eye(n) * _rng.uniform(1.5, 2.5, batch + (n, 1))


def general(n, *batch):
    """A non-symmetric matrix with singular values in [1, 2.5] (condition number at most
    2.5, |det| at least 1): random orthogonal factors around them."""
    u, _ = np.linalg.qr(_rng.standard_normal(batch + (n, n)))
    v, _ = np.linalg.qr(_rng.standard_normal(batch + (n, n)))
    return (u * _rng.uniform(1.0, 2.5, batch + (1, n))) @ v


def rnd(*shape):
    return _rng.standard_normal(shape)


def sym(x):
    return (x + x.transpose(-1, -2)) / 2


# ---- cholesky ----------------------------------------------------------------------------------
case("linalg.cholesky-(3,3)", lambda T, x: T.linalg.cholesky(sym(x)), spd(3))
case("linalg.cholesky-(2,3,3)", lambda T, x: T.linalg.cholesky(sym(x)), spd(3, 2))
case("linalg.cholesky-(4,4)-upper", lambda T, x: T.linalg.cholesky(sym(x), upper=True), spd(4))
case("linalg.cholesky_ex-(3,3)", lambda T, x: T.linalg.cholesky_ex(sym(x)).L, spd(3))

# ---- solve_triangular ----------------------------------------------------------------------------
case("linalg.solve_triangular-(3,3)x(3,2)-lower",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=False), tri(3), rnd(3, 2))
case("linalg.solve_triangular-(2,3,3)x(2,3,2)-upper",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=True), tri(3, 2, upper=True),
     rnd(2, 3, 2))
case("linalg.solve_triangular-(3,3)x(2,3)-upper-right",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=True, left=False),
     tri(3, upper=True), rnd(2, 3))
case("linalg.solve_triangular-(3,3)x(2,3)-lower-right",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=False, left=False), tri(3), rnd(2, 3))
case("linalg.solve_triangular-(3,3)x(3,2)-lower-unit",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=False, unitriangular=True),
     tri(3), rnd(3, 2))
case("linalg.solve_triangular-(3,3)x(3,2)-upper-right-unit",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=True, left=False,
                                               unitriangular=True), tri(3, upper=True),
     rnd(2, 3))
case("linalg.solve_triangular-(3,3)x(2,3,2)-broadcast",
     lambda T, a, b: T.linalg.solve_triangular(a, b, upper=False), tri(3), rnd(2, 3, 2))

# ---- cholesky_solve (L through tril: PyTorch differentiates L's upper triangle as if it
# were read; tapegrad, like LAPACK, reads only the triangle) -------------------------------------
case("cholesky_solve-(3,2)x(3,3)", lambda T, b, l: T.cholesky_solve(b, T.tril(l)),
     rnd(3, 2), tri(3))
case("cholesky_solve-(2,3,1)x(2,3,3)-upper",
     lambda T, b, u: T.cholesky_solve(b, T.triu(u), upper=True), rnd(2, 3, 1),
     tri(3, 2, upper=True))

# ---- determinants --------------------------------------------------------------------------------
case("linalg.det-(3,3)", lambda T, x: T.linalg.det(x), general(3))
case("linalg.det-(2,3,3)", lambda T, x: T.linalg.det(x), general(3, 2))
case("linalg.det-(1,1)", lambda T, x: T.linalg.det(x), general(1))
case("linalg.slogdet-(3,3)", lambda T, x: T.linalg.slogdet(x).logabsdet, general(3))
case("linalg.slogdet-(2,3,3)", lambda T, x: T.linalg.slogdet(x)[1], general(3, 2))
case("logdet-(3,3)", lambda T, x: T.logdet(sym(x)), spd(3))
case("logdet-(2,2,2)", lambda T, x: T.logdet(sym(x)), spd(2, 2))

# ---- inv, solve ----------------------------------------------------------------------------------
case("linalg.inv-(3,3)", lambda T, x: T.linalg.inv(x), general(3))
case("linalg.inv-(2,3,3)", lambda T, x: T.linalg.inv(x), general(3, 2))
case("linalg.solve-(3,3)x(3)", lambda T, a, b: T.linalg.solve(a, b), general(3), rnd(3))
case("linalg.solve-(3,3)x(3,2)", lambda T, a, b: T.linalg.solve(a, b), general(3), rnd(3, 2))
case("linalg.solve-(2,3,3)x(2,3)-vectors", lambda T, a, b: T.linalg.solve(a, b),
     general(3, 2), rnd(2, 3))
case("linalg.solve-(3,3)x(2,3,2)-broadcast", lambda T, a, b: T.linalg.solve(a, b),
     general(3), rnd(2, 3, 2))
case("linalg.solve-(3,3)x(2,3)-right", lambda T, a, b: T.linalg.solve(a, b, left=False),
     general(3), rnd(2, 3))

# ---- eigh (eigenvectors enter sign-invariantly: LAPACK may flip a column) ------------------------
case("linalg.eigh-(3,3)-values", lambda T, x: T.linalg.eigh(sym(x)).eigenvalues, spread(3))
case("linalg.eigh-(3,3)-vectors-squared", lambda T, x: T.linalg.eigh(sym(x))[1] ** 2,
     spread(3))
case("linalg.eigh-(2,3,3)-both",
     lambda T, x: T.linalg.eigh(sym(x))[1] ** 2 * T.linalg.eigh(sym(x))[0].unsqueeze(-2),
     spread(3, 2))
case("linalg.eigh-(3,3)-UPLO-U", lambda T, x: T.linalg.eigh(sym(x), UPLO="U")[1] ** 2,
     spread(3))
case("linalg.eigvalsh-(4,4)", lambda T, x: T.linalg.eigvalsh(sym(x)), spread(4))

# ---- norms ---------------------------------------------------------------------------------------
case("linalg.vector_norm-(5)", lambda T, x: T.linalg.vector_norm(x), rnd(5))
case("linalg.vector_norm-(2,3)-all", lambda T, x: T.linalg.vector_norm(x), rnd(2, 3))
case("linalg.vector_norm-(2,3)-ord1-dim1", lambda T, x: T.linalg.vector_norm(x, 1, dim=1),
     rnd(2, 3))
case("linalg.vector_norm-(2,3,2)-ord3-dims(0,2)-keep",
     lambda T, x: T.linalg.vector_norm(x, 3, dim=(0, 2), keepdim=True), rnd(2, 3, 2))
case("linalg.matrix_norm-(2,3)-fro", lambda T, x: T.linalg.matrix_norm(x), rnd(2, 3))
eager("linalg.matrix_norm-(2,3,4)-ord1", lambda T, x: T.linalg.matrix_norm(x, 1),
     rnd(2, 3, 4))
eager("linalg.matrix_norm-(3,4)-inf", lambda T, x: T.linalg.matrix_norm(x, float("inf")),
     rnd(3, 4))
eager("linalg.matrix_norm-(3,4)-ord-1-keep",
     lambda T, x: T.linalg.matrix_norm(x, -1, keepdim=True), rnd(3, 4))
case("linalg.norm-(2,3)", lambda T, x: T.linalg.norm(x), rnd(2, 3))
case("linalg.norm-(2,3,2)-dim1", lambda T, x: T.linalg.norm(x, dim=1), rnd(2, 3, 2))
eager("linalg.norm-(3,3)-ord-inf", lambda T, x: T.linalg.norm(x, float("-inf")), rnd(3, 3))

# ---- composed products ---------------------------------------------------------------------------
case("linalg.multi_dot-(2,3)x(3,4)x(4,2)",
     lambda T, a, b, c: T.linalg.multi_dot([a, b, c]), rnd(2, 3), rnd(3, 4), rnd(4, 2))
case("linalg.multi_dot-(3)x(3,4)x(4)", lambda T, a, b, c: T.linalg.multi_dot([a, b, c]),
     rnd(3), rnd(3, 4), rnd(4))
case("linalg.matrix_power-(3,3)-3", lambda T, x: T.linalg.matrix_power(x, 3), 0.5 * rnd(3, 3))
case("linalg.matrix_power-(2,3,3)-2", lambda T, x: T.linalg.matrix_power(x, 2),
     0.5 * rnd(2, 3, 3))
case("linalg.matrix_power-(3,3)--2", lambda T, x: T.linalg.matrix_power(x, -2), general(3))
case("linalg.cross-(3)", lambda T, a, b: T.linalg.cross(a, b), rnd(3), rnd(3))
case("linalg.cross-(2,3)x(1,3)-broadcast", lambda T, a, b: T.linalg.cross(a, b), rnd(2, 3),
     rnd(1, 3))
case("linalg.cross-(3,2)-dim0", lambda T, a, b: T.linalg.cross(a, b, dim=0), rnd(3, 2),
     rnd(3, 2))

# ---- svd, qr (products and squares that a column's sign does not change; singular values
# spread apart) ------------------------------------------------------------------------------------
def spread_sv(m, n, *batch):
    u, _ = np.linalg.qr(_rng.standard_normal(batch + (m, m)))
    v, _ = np.linalg.qr(_rng.standard_normal(batch + (n, n)))
    k = min(m, n)
    s = np.zeros(batch + (m, n))
    idx = np.arange(k)
    s[..., idx, idx] = 1.0 + 0.8 * np.arange(k)[::-1]
    return u @ s @ v


case("linalg.svdvals-(4,3)", lambda T, x: T.linalg.svdvals(x), spread_sv(4, 3))
case("linalg.svdvals-(2,2,3)", lambda T, x: T.linalg.svdvals(x), spread_sv(2, 3, 2))
case("linalg.svd-(4,3)-U-squared", lambda T, x: T.linalg.svd(x, full_matrices=False)[0] ** 2,
     spread_sv(4, 3))
case("linalg.svd-(3,4)-Vh-squared", lambda T, x: T.linalg.svd(x, full_matrices=False).Vh ** 2,
     spread_sv(3, 4))
case("linalg.svd-(2,3,3)-rebuilt",
     lambda T, x: (lambda u, s, vh: (u * s.unsqueeze(-2) ** 2) @ vh)(*T.linalg.svd(x)),
     spread_sv(3, 3, 2))
case("linalg.svd-(4,3)-full-S", lambda T, x: T.linalg.svd(x)[1], spread_sv(4, 3))
case("linalg.qr-(4,3)-Q", lambda T, x: T.linalg.qr(x)[0], rnd(4, 3))
case("linalg.qr-(3,3)-R", lambda T, x: T.linalg.qr(x).R, rnd(3, 3))
case("linalg.qr-(2,4,2)-both", lambda T, x: (lambda q, r: q @ r * q.sum(-2, keepdim=True))(
    *T.linalg.qr(x)), rnd(2, 4, 2))
case("linalg.qr-(2,4)-wide", lambda T, x: (lambda q, r: q.sum() * r)(*T.linalg.qr(x)),
     rnd(2, 4))
case("linalg.matrix_norm-(3,4)-2", lambda T, x: T.linalg.matrix_norm(x, 2), spread_sv(3, 4))
case("linalg.matrix_norm-(2,3,3)-nuc", lambda T, x: T.linalg.matrix_norm(x, "nuc"),
     spread_sv(3, 3, 2))
case("linalg.matrix_norm-(4,3)--2", lambda T, x: T.linalg.matrix_norm(x, -2), spread_sv(4, 3))

# ---- pinv, lstsq, matrix_exp: they read values while recording (the rank, the norm that
# sets the number of squarings), so under compile they run eagerly ---------------------------------
eager("linalg.pinv-(4,3)", lambda T, x: T.linalg.pinv(x), spread_sv(4, 3))
eager("linalg.pinv-(2,2,4)", lambda T, x: T.linalg.pinv(x), spread_sv(2, 4, 2))
eager("linalg.lstsq-(5,3)x(5,2)", lambda T, a, b: T.linalg.lstsq(a, b).solution,
      spread_sv(5, 3), rnd(5, 2))
eager("linalg.matrix_exp-(3,3)", lambda T, x: T.linalg.matrix_exp(x), 0.3 * rnd(3, 3))
eager("linalg.matrix_exp-(2,3,3)-squared", lambda T, x: T.linalg.matrix_exp(x),
      1.5 * rnd(2, 3, 3))
