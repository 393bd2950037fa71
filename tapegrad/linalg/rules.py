"""The linear-algebra records' rules: value, VJP and tangent on arrays, and the VJP again on
tensors (recorded: create_graph, func.hessian). One LINALG opcode; the record's P0 says
which rule, P1 holds the rule's flags. Every rule works on a batch (leading dims).

An operation with several outputs (eigh, slogdet) records one value that packs them along
its last dim; the public function slices the outputs out of it, so they stay ordinary
records and their gradients meet in the packed one.
"""
import functools

import numpy as np

from .. import kernels as K
from .. import ops
from .. import pyops
from ..autograd.engine import _unbroadcast
from ..kernels import rg_of
from ..ops.composite import tril, triu
from . import lapack
from .lapack import tri_mask, trsm


class LinAlgError(RuntimeError):
    """A matrix that the operation needs to be invertible or positive-definite is not
    (torch.linalg.LinAlgError)."""


# ---- helpers on arrays and tensors --------------------------------------------------------
def _mT(a):
    return np.swapaxes(a, -1, -2)


def _tT(t):
    return ops.transpose(t, -1, -2)


def _tunb(g, shape):
    from ..symbolic import _unbroadcast
    return _unbroadcast(g, shape)


def _const(a):
    return ops._plain(np.asarray(a))


@functools.lru_cache(maxsize=64)
def _phi(n, dtype):
    """The lower triangle with its diagonal halved, as a (read-only) mask."""
    m = np.tril(np.ones((n, n), dtype))
    m[np.arange(n), np.arange(n)] = 0.5
    m.flags.writeable = False
    return m


def _mask(n, dtype, upper, unit):
    """The triangle a triangular solve reads (without the diagonal when unit)."""
    return tri_mask(n, np.dtype(dtype), upper, (1 if upper else -1) if unit else 0)


def not_pd(a, fn):
    """PyTorch's LinAlgError for the first batch element of a that is not positive-definite,
    naming the order of its first leading minor that is not (found by bisection)."""
    a3 = a.reshape((-1,) + a.shape[-2:])
    for i, m in enumerate(a3):
        try:
            lapack.cholesky(m)
            continue
        except np.linalg.LinAlgError:
            pass
        lo, hi = 0, m.shape[-1]      # the minor of order lo is positive-definite, hi is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                lapack.cholesky(m[:mid, :mid])
                lo = mid
            except np.linalg.LinAlgError:
                hi = mid
        where = f"(Batch element {i}): " if a.ndim > 2 else ""
        return i, hi, LinAlgError(
            f"{fn}: {where}The factorization could not be completed because the input is not "
            f"positive-definite (the leading minor of order {hi} is not positive-definite).")
    return -1, 0, None


# ---- the rules -------------------------------------------------------------------------------
class Cholesky:
    """L = cholesky(A) (A's lower triangle read), or U = L^T when flags & 1."""
    name = "LinalgCholeskyExBackward0"

    @staticmethod
    def value(flags, a):
        try:
            L = lapack.cholesky(a)
        except np.linalg.LinAlgError:
            raise not_pd(a, "linalg.cholesky")[2] from None
        return np.ascontiguousarray(_mT(L)) if flags & 1 else L

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        L, gL = (_mT(out), _mT(g)) if flags & 1 else (out, g)
        P = lapack.trmm_lt(L, gL)                                # L^T gL
        P *= _phi(L.shape[-1], P.dtype)
        X = trsm(L, P, upper=False, left=True, trans=True)       # L^-T P
        Y = trsm(L, X, upper=False, left=False)                  # ... L^-1
        Y += _mT(Y)                                              # (numpy buffers the overlap)
        Y *= 0.5
        return [Y]

    @staticmethod
    def tangent(flags, tans, ins, out):
        L = _mT(out) if flags & 1 else out
        M = trsm(L, tans[0], upper=False, left=True)               # L^-1 dA
        M = trsm(L, M, upper=False, left=False, trans=True)        # ... L^-T
        dL = L @ (M * _phi(L.shape[-1], L.dtype))
        return _mT(dL) if flags & 1 else dL

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        from . import solve_triangular
        L, gL = (_tT(out), _tT(g)) if flags & 1 else (out, g)
        P = (_tT(L) @ gL) * _const(_phi(L.shape[-1], L.data.dtype))
        X = solve_triangular(_tT(L), P, upper=True)
        Y = solve_triangular(L, X, upper=False, left=False)
        return [(Y + _tT(Y)) * 0.5]


class SolveTriangular:
    """X = A^-1 B (left) or B A^-1; flags: 1 upper, 2 left, 4 unitriangular."""
    name = "LinalgSolveTriangularBackward0"

    @staticmethod
    def value(flags, a, b):
        return trsm(a, b, upper=bool(flags & 1), left=bool(flags & 2), unit=bool(flags & 4))

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        a, b = ins
        up, left, unit = bool(flags & 1), bool(flags & 2), bool(flags & 4)
        gb = trsm(a, g, upper=up, left=left, trans=True, unit=unit)
        res = [None, _unbroadcast(gb, b.shape) if wanted[1] else None]
        if wanted[0]:
            ga = -(gb @ _mT(out)) if left else -(_mT(out) @ gb)
            res[0] = _unbroadcast(ga * _mask(a.shape[-1], a.dtype, up, unit), a.shape)
        return res

    @staticmethod
    def tangent(flags, tans, ins, out):
        a, _ = ins
        da, db = tans
        up, left, unit = bool(flags & 1), bool(flags & 2), bool(flags & 4)
        da = da * _mask(a.shape[-1], a.dtype, up, unit)
        rhs = db - (da @ out if left else out @ da)
        return trsm(a, rhs, upper=up, left=left, unit=unit)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        from . import solve_triangular
        a, b = ins
        up, left, unit = bool(flags & 1), bool(flags & 2), bool(flags & 4)
        gb = solve_triangular(_tT(a), g, upper=not up, left=left, unitriangular=unit)
        res = [None, _tunb(gb, b.shape) if wanted[1] else None]
        if wanted[0]:
            ga = -(gb @ _tT(out)) if left else -(_tT(out) @ gb)
            ga = (triu(ga, 1 if unit else 0) if up else tril(ga, -1 if unit else 0))
            res[0] = _tunb(ga, a.shape)
        return res


def _cofactor(a):
    """The matrix of cofactors of a (det(a) a^-T where a is invertible), through the SVD,
    so that it stays exact at singular matrices: with a = U diag(s) V^T it is
    det(U) det(V) U diag(prod_{j != i} s_j) V^T."""
    u, s, vh = np.linalg.svd(a)
    n = s.shape[-1]
    ones = np.ones(s.shape[:-1] + (1,), s.dtype)
    pre = np.cumprod(np.concatenate([ones, s[..., :-1]], -1), -1)
    post = np.flip(np.cumprod(np.concatenate([ones, np.flip(s[..., 1:], -1)], -1), -1), -1)
    p = pre * post if n else s
    sign = np.linalg.det(u) * np.linalg.det(vh)
    return sign[..., None, None] * ((u * p[..., None, :]) @ vh)


class Det:
    name = "LinalgDetBackward0"

    @staticmethod
    def value(flags, a):
        return np.asarray(np.linalg.det(a))

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        return [g[..., None, None] * _cofactor(ins[0])]

    @staticmethod
    def tangent(flags, tans, ins, out):
        return np.asarray((_cofactor(ins[0]) * tans[0]).sum((-2, -1)))

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        from . import inv
        return [ops.unsqueeze(ops.unsqueeze(g * out, -1), -1) * _tT(inv(ins[0]))]


class Slogdet:
    """(sign, log|det A|) packed along a last dim of 2: the sign has gradient 0."""
    name = "LinalgSlogdetBackward0"

    @staticmethod
    def value(flags, a):
        sign, logabs = np.linalg.slogdet(a)
        return np.stack([sign, logabs], -1)

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        return [g[..., 1, None, None] * _mT(_inverse_or_inf(ins[0]))]

    @staticmethod
    def tangent(flags, tans, ins, out):
        d = (_mT(_inverse_or_inf(ins[0])) * tans[0]).sum((-2, -1))
        return np.stack([np.zeros_like(d), d], -1)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        from . import inv
        g1 = ops.unsqueeze(ops.unsqueeze(g[..., 1], -1), -1)
        return [g1 * _tT(inv(ins[0]))]


def _zero_pivot(a):
    """1-based index of the first zero pivot of a's LU factorisation with partial
    pivoting (LAPACK's getrf info), for a singular square matrix; 0 if none."""
    u = np.array(a, np.float64)
    n = u.shape[0]
    for k in range(n):
        p = k + int(np.argmax(np.abs(u[k:, k])))
        if u[p, k] == 0:
            return k + 1
        u[[k, p]] = u[[p, k]]
        u[k + 1:, k:] -= np.outer(u[k + 1:, k] / u[k, k], u[k, k:])
    return 0


def _singular(a, fn):
    """The LinAlgError for a singular batch of matrices a, worded as PyTorch words it."""
    a3 = a.reshape((-1,) + a.shape[-2:])
    for i, m in enumerate(a3):
        k = _zero_pivot(m)
        if k:
            where = f"(Batch element {i}): " if a.ndim > 2 else ""
            if fn == "linalg.solve":
                return LinAlgError(f"torch.linalg.solve: {where}The solver failed because the "
                                   f"input matrix is singular.")
            return LinAlgError(f"{fn}: {where}The diagonal element {k} is zero, the inversion "
                               f"could not be completed because the input matrix is singular.")
    return LinAlgError(f"{fn}: the input matrix is singular")


def _inverse_or_inf(a):
    """a^-1, or where some matrix of a is singular, cofactor^T / det: inf and NaN there
    (the gradient of log|det| at a singular matrix, as PyTorch gives it)."""
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        with np.errstate(divide="ignore", invalid="ignore"):
            return _mT(_cofactor(a)) / np.linalg.det(a)[..., None, None]


def _inverse(a, fn="linalg.inv"):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise _singular(a, fn) from None


class Inv:
    name = "LinalgInvExBackward0"

    @staticmethod
    def value(flags, a):
        return _inverse(a)

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        xt = _mT(out)
        return [-(xt @ g @ xt)]

    @staticmethod
    def tangent(flags, tans, ins, out):
        return -(out @ tans[0] @ out)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        xt = _tT(out)
        return [-(xt @ g @ xt)]


class Solve:
    """X = A^-1 B, B (..., n, k); the public function adds and drops a vector's last dim."""
    name = "LinalgSolveExBackward0"

    @staticmethod
    def value(flags, a, b):
        try:
            return np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            raise _singular(a, "linalg.solve") from None

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        a, b = ins
        gb = np.linalg.solve(_mT(a), g)
        return [_unbroadcast(-(gb @ _mT(out)), a.shape) if wanted[0] else None,
                _unbroadcast(gb, b.shape) if wanted[1] else None]

    @staticmethod
    def tangent(flags, tans, ins, out):
        return np.linalg.solve(ins[0], tans[1] - tans[0] @ out)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        from . import solve
        a, b = ins
        gb = solve(_tT(a), g)
        return [_tunb(-(gb @ _tT(out)), a.shape) if wanted[0] else None,
                _tunb(gb, b.shape) if wanted[1] else None]


def _eig_f(lam):
    """F[i, j] = 1 / (lam_j - lam_i) off the diagonal, 0 on it (inf where eigenvalues
    repeat, as in PyTorch)."""
    e = lam[..., None, :] - lam[..., :, None]
    n = lam.shape[-1]
    idx = np.arange(n)
    with np.errstate(divide="ignore"):
        f = 1.0 / e
    f[..., idx, idx] = 0
    return f


class Eigh:
    """(Q | L) packed as (..., n, n + 1): eigenvectors then the eigenvalues as a last
    column. flags & 1: read A's upper triangle (UPLO='U')."""
    name = "LinalgEighBackward0"

    @staticmethod
    def value(flags, a):
        lam, q = np.linalg.eigh(a, UPLO="U" if flags & 1 else "L")
        return np.concatenate([q, lam[..., None]], -1)

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        n = out.shape[-2]
        q, lam = out[..., :n], out[..., n]
        gq, gl = g[..., :n], g[..., n]
        m = np.zeros(g.shape[:-2] + (n, n), g.dtype)
        if np.any(gq):
            s = _mT(q) @ gq
            with np.errstate(invalid="ignore"):
                m = (s - _mT(s)) * 0.5 * _eig_f(lam)
        idx = np.arange(n)
        m[..., idx, idx] = gl
        return [q @ m @ _mT(q)]

    @staticmethod
    def tangent(flags, tans, ins, out):
        n = out.shape[-2]
        q, lam = out[..., :n], out[..., n]
        da = tans[0]
        da = (da + _mT(da)) * 0.5
        m = _mT(q) @ da @ q
        dl = np.diagonal(m, 0, -2, -1)
        with np.errstate(invalid="ignore"):
            dq = q @ (m * _eig_f(lam))
        return np.concatenate([dq, dl[..., None]], -1)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        n = out.shape[-2]
        q, lam = out[..., :n], out[..., n]
        gq, gl = g[..., :n], g[..., n]
        eye = np.eye(n, dtype=g.data.dtype)
        m = ops.unsqueeze(gl, -2) * _const(eye)
        if np.any(gq.data):
            s = _tT(q) @ gq
            e = ops.unsqueeze(lam, -2) - ops.unsqueeze(lam, -1)
            with np.errstate(divide="ignore", invalid="ignore"):
                f = 1.0 / (e + _const(eye)) - _const(eye)
                m = m + (s - _tT(s)) * 0.5 * f
        return [q @ m @ _tT(q)]


def svd_sizes(m, n, full):
    k = min(m, n)
    mu, nv = (m, n) if full else (k, k)
    return k, mu, nv


def svd_unpack(p, m, n, full, xp_reshape):
    """(U, S, Vh) from a packed SVD value p (..., m*mu + k + nv*n)."""
    k, mu, nv = svd_sizes(m, n, full)
    batch = tuple(p.shape[:-1])
    u = xp_reshape(p[..., :m * mu], batch + (m, mu))
    sv = p[..., m * mu:m * mu + k]
    vh = xp_reshape(p[..., m * mu + k:], batch + (nv, n))
    return u, sv, vh


def _np_reshape(a, shape):
    return a.reshape(shape)


def _t_reshape(t, shape):
    return ops.reshape(t, shape)


def _svd_f(s):
    """F[i, j] = 1 / (s_j^2 - s_i^2) off the diagonal, 0 on it (inf where they repeat)."""
    s2 = s * s
    e = s2[..., None, :] - s2[..., :, None]
    idx = np.arange(s.shape[-1])
    with np.errstate(divide="ignore"):
        f = 1.0 / e
    f[..., idx, idx] = 0
    return f


class Svd:
    """(U, S, Vh) packed flat along a last dim: U's m * mu entries, S's k, Vh's nv * n.
    P1: bit 0 full_matrices, then m << 1 and n << 21 (the matrix's shape)."""
    name = "LinalgSvdBackward0"

    @staticmethod
    def shape(flags):
        return bool(flags & 1), (flags >> 1) & 0xFFFFF, flags >> 21

    @staticmethod
    def value(flags, a):
        full = bool(flags & 1)
        u, sv, vh = np.linalg.svd(a, full_matrices=full)
        batch = a.shape[:-2]
        return np.concatenate([u.reshape(batch + (-1,)), sv, vh.reshape(batch + (-1,))], -1)

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        full, m, n = Svd.shape(flags)
        k = min(m, n)
        u, sv, vh = svd_unpack(out, m, n, full, _np_reshape)
        gu, gs, gvh = svd_unpack(g, m, n, full, _np_reshape)
        # the completing columns of a full SVD are not determined by A: their gradient is
        # dropped, as PyTorch drops it
        u, gu, vh, gvh = u[..., :k], gu[..., :k], vh[..., :k, :], gvh[..., :k, :]
        ga = (u * gs[..., None, :]) @ vh
        if not (np.any(gu) or np.any(gvh)):
            return [ga]
        v, gv = _mT(vh), _mT(gvh)
        f = _svd_f(sv)
        ut_gu = _mT(u) @ gu
        vt_gv = _mT(v) @ gv
        inner = (f * (ut_gu - _mT(ut_gu))) * sv[..., None, :] + \
            sv[..., :, None] * (f * (vt_gv - _mT(vt_gv)))
        ga = ga + u @ inner @ vh
        sinv = 1.0 / sv
        if m > k:
            ga = ga + (gu - u @ ut_gu) * sinv[..., None, :] @ vh
        if n > k:
            ga = ga + (u * sinv[..., None, :]) @ (_mT(gv) - (_mT(gv) @ v) @ vh)
        return [ga]

    @staticmethod
    def tangent(flags, tans, ins, out):
        full, m, n = Svd.shape(flags)
        k = min(m, n)
        u, sv, vh = svd_unpack(out, m, n, full, _np_reshape)
        u, vh = u[..., :k], vh[..., :k, :]
        da = tans[0]
        v = _mT(vh)
        dp = _mT(u) @ da @ v
        ds = np.diagonal(dp, 0, -2, -1)
        f = _svd_f(sv)
        S = sv[..., None, :]
        du = u @ (f * (dp * S + sv[..., :, None] * _mT(dp)))
        dv = v @ (f * (sv[..., :, None] * dp + _mT(dp) * S))
        sinv = (1.0 / sv)[..., None, :]
        if m > k:
            du = du + (da @ v - u @ dp) * sinv
        if n > k:
            dv = dv + (_mT(da) @ u - v @ _mT(dp)) * sinv
        batch = da.shape[:-2]
        dvh = _mT(dv)
        if full:    # the completing columns are not determined by A: their tangent is NaN
            du = np.concatenate([du, np.full(batch + (m, m - k), np.nan, du.dtype)], -1)
            dvh = np.concatenate([dvh, np.full(batch + (n - k, n), np.nan, du.dtype)], -2)
        return np.concatenate([du.reshape(batch + (-1,)), ds, dvh.reshape(batch + (-1,))], -1)

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        full, m, n = Svd.shape(flags)
        k = min(m, n)
        u, sv, vh = svd_unpack(out, m, n, full, _t_reshape)
        gu, gs, gvh = svd_unpack(g, m, n, full, _t_reshape)
        if full:
            u, gu, vh, gvh = u[..., :k], gu[..., :k], vh[..., :k, :], gvh[..., :k, :]
        ga = (u * ops.unsqueeze(gs, -2)) @ vh
        if not (np.any(gu.data) or np.any(gvh.data)):
            return [ga]
        v, gv = _tT(vh), _tT(gvh)
        s2 = sv * sv
        e = ops.unsqueeze(s2, -2) - ops.unsqueeze(s2, -1)
        eye = _const(np.eye(k, dtype=g.data.dtype))
        with np.errstate(divide="ignore", invalid="ignore"):
            f = 1.0 / (e + eye) - eye
        ut_gu = _tT(u) @ gu
        vt_gv = _tT(v) @ gv
        inner = (f * (ut_gu - _tT(ut_gu))) * ops.unsqueeze(sv, -2) + \
            ops.unsqueeze(sv, -1) * (f * (vt_gv - _tT(vt_gv)))
        ga = ga + u @ inner @ vh
        sinv = ops.unsqueeze(1.0 / sv, -2)
        if m > k:
            ga = ga + (gu - u @ ut_gu) * sinv @ vh
        if n > k:
            ga = ga + (u * sinv) @ (_tT(gv) - (_tT(gv) @ v) @ vh)
        return [ga]


def _copyltu(m):
    """The symmetric matrix whose lower triangle is m's."""
    lo = np.tril(m, -1)
    return lo + _mT(lo) + np.diagonal(m, 0, -2, -1)[..., None, :] * np.eye(m.shape[-1])


class Qr:
    """(Q | R) packed along the last dim: Q (..., m, k) then R (..., k, n) as (..., k, k + n)
    when m == k; generally flat: Q's m * k entries then R's k * n. P1: m << 1 | n << 21."""
    name = "LinalgQrBackward0"

    @staticmethod
    def shape(flags):
        return (flags >> 1) & 0xFFFFF, flags >> 21

    @staticmethod
    def value(flags, a):
        q, r = np.linalg.qr(a, mode="reduced")
        batch = a.shape[:-2]
        return np.concatenate([q.reshape(batch + (-1,)), r.reshape(batch + (-1,))], -1)

    @staticmethod
    def unpack(p, m, n, reshape):
        k = min(m, n)
        batch = tuple(p.shape[:-1])
        return reshape(p[..., :m * k], batch + (m, k)), reshape(p[..., m * k:], batch + (k, n))

    @staticmethod
    def vjp(flags, g, ins, out, wanted):
        m, n = Qr.shape(flags)
        q, r = Qr.unpack(out, m, n, _np_reshape)
        gq, gr = Qr.unpack(g, m, n, _np_reshape)
        if m >= n:
            return [Qr._tall(q, r, gq, gr)]
        gx = Qr._tall(q, r[..., :, :m], gq + ins[0][..., :, m:] @ _mT(gr[..., :, m:]), gr[..., :, :m])
        return [np.concatenate([gx, q @ gr[..., :, m:]], -1)]

    @staticmethod
    def _tall(q, r, gq, gr):
        mm = r @ _mT(gr) - _mT(gq) @ q
        b = gq + q @ _copyltu(mm)
        return _mT(trsm(r, _mT(b), upper=True, left=True))       # b R^-T

    @staticmethod
    def tangent(flags, tans, ins, out):
        m, n = Qr.shape(flags)
        q, r = Qr.unpack(out, m, n, _np_reshape)
        da = tans[0]
        batch = da.shape[:-2]
        if m >= n:
            dq, dr = Qr._tall_tangent(q, r, da)
        else:
            dq, dr1 = Qr._tall_tangent(q, r[..., :, :m], da[..., :, :m])
            dr2 = _mT(dq) @ ins[0][..., :, m:] + _mT(q) @ da[..., :, m:]
            dr = np.concatenate([dr1, dr2], -1)
        return np.concatenate([dq.reshape(batch + (-1,)), dr.reshape(batch + (-1,))], -1)

    @staticmethod
    def _tall_tangent(q, r, da):
        dar = _mT(trsm(r, _mT(da), upper=True, left=True, trans=True))   # dA R^-1
        c = _mT(q) @ dar
        lo = np.tril(c, -1)
        omega = lo - _mT(lo)
        dr = (c - omega) @ r
        dq = dar - q @ (c - omega)
        return dq, dr

    @staticmethod
    def recorded(flags, g, ins, out, wanted):
        m, n = Qr.shape(flags)
        q, r = Qr.unpack(out, m, n, _t_reshape)
        gq, gr = Qr.unpack(g, m, n, _t_reshape)
        if m >= n:
            return [Qr._ttall(q, r, gq, gr)]
        x_r = r[..., :, :m]
        gx = Qr._ttall(q, x_r, gq + ins[0][..., :, m:] @ _tT(gr[..., :, m:]), gr[..., :, :m])
        return [ops.cat([gx, q @ gr[..., :, m:]], -1)]

    @staticmethod
    def _ttall(q, r, gq, gr):
        from . import solve_triangular
        mm = r @ _tT(gr) - _tT(gq) @ q
        lo = tril(mm, -1)
        k = mm.shape[-1]
        sym = lo + _tT(lo) + mm * _const(np.eye(k, dtype=mm.data.dtype))
        b = gq + q @ sym
        return solve_triangular(_tT(r), b, upper=False, left=False)    # b R^-T


CHOLESKY, SOLVE_TRIANGULAR, DET, SLOGDET, INV, SOLVE, EIGH, SVD, QR = range(9)
RULES = {CHOLESKY: Cholesky, SOLVE_TRIANGULAR: SolveTriangular, DET: Det, SLOGDET: Slogdet,
         INV: Inv, SOLVE: Solve, EIGH: Eigh, SVD: Svd, QR: Qr}


# ---- the record's passes, for pyops.RULES ------------------------------------------------------
def _params(R, r):
    return RULES[int(R[r, K.P0])], int(R[r, K.P1])


def _slots(R, r):
    return [s for s in (int(R[r, K.A]), int(R[r, K.B]), int(R[r, K.C])) if s >= 0]


def _shape(R, r):
    return tuple(int(v) for v in R[r, K.SH:K.SH + K.ndim_of(int(R[r, K.OPW]))])


class _Passes:
    """The LINALG opcode's entry in pyops.RULES: each pass looks the rule up by P0."""

    @staticmethod
    def forward(R, r, ins, out):
        rule, flags = _params(R, r)
        out[...] = rule.value(flags, *ins)

    @staticmethod
    def vjp(R, r, arrays, g):
        rule, flags = _params(R, r)
        slots = _slots(R, r)
        wanted = [rg_of(int(R[s, K.OPW])) for s in slots]
        ins, out = arrays[:-1], arrays[-1]
        g = g.reshape(out.shape)
        with np.errstate(all="ignore"):
            ds = rule.vjp(flags, g, ins, out, wanted)
        return [(s, d.astype(x.dtype, copy=False)) for s, d, w, x in zip(slots, ds, wanted, ins)
                if w and d is not None]

    @staticmethod
    def tangent(R, r, ins, out, tans):
        rule, flags = _params(R, r)
        with np.errstate(all="ignore"):
            return rule.tangent(flags, tans, ins, out)

    @staticmethod
    def recorded(R, r, g, h):
        rule, flags = _params(R, r)
        slots = _slots(R, r)
        wanted = [rg_of(int(R[s, K.OPW])) for s in slots]
        ds = rule.recorded(flags, g, [h(s) for s in slots], h(r), wanted)
        return [(s, d) for s, d, w in zip(slots, ds, wanted) if w and d is not None]


pyops.RULES[K.LINALG] = _Passes
