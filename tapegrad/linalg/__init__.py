"""tapegrad.linalg: differentiable linear algebra, batched over leading dimensions.

Factorisations and solves (cholesky, solve_triangular, det, slogdet, inv, solve, eigh,
svd, qr) are LINALG records (kernels.opcodes): their value, VJP and tangent run in Python
between compiled segments, with numpy's LAPACK and, called directly, the triangular solve
and product and the Cholesky factorisation of numpy's own OpenBLAS (lapack.py), so the
process has one BLAS. The rules live in
rules.py, one class per operation; the eager sweep, replay (``compile``,
``tapegrad.func``) and the recorded backward (``create_graph``, ``func.hessian``) find them
through ``tapegrad.pyops.RULES``. The recorded VJPs are written with these same functions,
so second derivatives exist wherever PyTorch has them. Norms, ``multi_dot``,
``matrix_power``, ``cross``, ``cholesky_solve``, ``logdet``, ``pinv``, ``lstsq`` and
``matrix_exp`` are composed from other ops.

Degenerate points:

- ``cholesky`` of a matrix that is not positive-definite, ``solve`` and ``inv`` of a
  singular one raise ``LinAlgError`` (a RuntimeError) with PyTorch's wording, in eager mode
  and when a compiled function replays.
- ``eigh``'s eigenvector gradient divides by differences of eigenvalues: where eigenvalues
  repeat it is inf/NaN, as in PyTorch. A gradient that reaches only the eigenvalues
  (``eigvalsh``, or eigenvectors unused) is Q diag(g) Q^T and stays finite there.
- ``det``'s gradient is the matrix of cofactors computed through the SVD, finite and exact
  at singular matrices too (PyTorch returns zeros at an exactly singular matrix, which is
  not the derivative: ``det`` of ``[[1, 2], [2, 4]] + t E`` changes at rate cofactor(E)).
- ``slogdet``/``logdet`` at a singular matrix: log|det| is -inf and its gradient inf/NaN,
  as in PyTorch (the signs of the infinities may differ from PyTorch's, which come out of
  its LU factorisation). ``logdet`` of a matrix with negative determinant is NaN.
- ``slogdet``'s sign is a slice of the packed record and gets gradient 0 (PyTorch's sign
  does not require grad).
- ``svd``'s singular-vector gradient divides by differences of squared singular values
  (and by the singular values where A is not square): inf/NaN where they repeat or vanish,
  as in PyTorch; a gradient reaching only S (``svdvals``, the nuclear and 2-norms) is
  U diag(g) Vh and stays finite. The columns completing a full SVD get no gradient.
- ``pinv`` of a matrix of full rank goes through ``solve``, so its gradient is finite where
  singular values repeat (an orthogonal matrix); a rank-deficient one through the SVD.
- ``qr(mode="complete")`` of a tall matrix is not differentiable (PyTorch raises in
  backward; here the results do not require grad).
"""
import collections

import numpy as np

from .. import kernels as K
from .. import ops
from ..ops.composite import amax as _amax, amin as _amin, norm as _norm
from ..ops.operands import as_tensor as _as_tensor, to_dtype as _to_dtype
from ..ops.record import _graph, _plain, _slot, _tape
from .. import tape as T
from ..tensor import Tensor as _Tensor, _FLOATS, _note_read, float64 as _float64
from ..tensor import grad_enabled as _grad_enabled
from . import rules as _R
from .rules import LinAlgError

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cholesky_solve", "cross", "det",
           "eigh", "eigvalsh", "inv", "logdet", "lstsq", "matrix_exp", "matrix_norm",
           "matrix_power", "multi_dot", "norm", "pinv", "qr", "slogdet", "solve",
           "solve_triangular", "svd", "svdvals", "vector_norm"]

_NAMES = {code: T.name_id(rule.name) for code, rule in _R.RULES.items()}

_SlogdetResult = collections.namedtuple("linalg_slogdet", ["sign", "logabsdet"])
_EighResult = collections.namedtuple("linalg_eigh", ["eigenvalues", "eigenvectors"])
_CholeskyExResult = collections.namedtuple("linalg_cholesky_ex", ["L", "info"])
_SvdResult = collections.namedtuple("linalg_svd", ["U", "S", "Vh"])
_QrResult = collections.namedtuple("linalg_qr", ["Q", "R"])
_LstsqResult = collections.namedtuple("linalg_lstsq",
                                     ["solution", "residuals", "rank", "singular_values"])


# ---- checks ---------------------------------------------------------------------------------
_TORCH_DT = {"int64": "Long", "int32": "Int", "bool": "Bool", "int16": "Short", "int8": "Char",
             "uint8": "Byte"}


def _matrix(x, fn, what="A"):
    """x as a float tensor of square matrices (..., n, n), or PyTorch's error."""
    x = _vec(x, fn)
    a = x._data
    if a.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor {what} must have at least 2 dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{fn}: {what} must be batches of square matrices, but they are "
                           f"{a.shape[-2]} by {a.shape[-1]} matrices")
    return x


def _vec(x, fn):
    x = x if isinstance(x, _Tensor) else _as_tensor(x)
    if x._data.dtype not in _FLOATS:
        name = _TORCH_DT.get(x._data.dtype.name, x._data.dtype.name)
        raise RuntimeError(f"{fn}: Expected a floating point or complex tensor as input. "
                           f"Got {name}")
    return x


def _same_dtype(*xs):
    dt = np.result_type(*[x._data.dtype for x in xs])
    return [_to_dtype(x, dt) for x in xs]


def _apply(code, flags, out, *xs):
    """out = rule `code`(xs): a LINALG record when grad is on and an input requires it."""
    out = np.asarray(out)
    if not (_grad_enabled() and any(x._rg for x in xs)):
        return _plain(out)
    tp = _tape()
    slots = [_slot(tp, x) for x in xs] + [-1] * (3 - len(xs))
    name = _NAMES[code]
    word = K.LINALG | (out.dtype == _float64) * K.DT_BIT | K.RG_BIT | name << K.NAME_SHIFT
    gid = tp.append(word, slots[0], slots[1], slots[2], code, flags, out, False)
    tp.pyrefs[gid] = tuple(x._data for x in xs) + (out,)
    return _graph(out, tp, gid, name)


def _mT(x):
    return ops.transpose(x, -1, -2)


# ---- Cholesky -------------------------------------------------------------------------------
def cholesky(A, *, upper=False):
    """The Cholesky factor L (lower triangular, A = L L^T) of symmetric positive-definite A,
    read from A's lower triangle; ``upper=True`` gives U = L^T."""
    A = _matrix(A, "linalg.cholesky")
    val = _R.Cholesky.value(int(bool(upper)), A._data)
    return _apply(_R.CHOLESKY, int(bool(upper)), val, A)


def cholesky_ex(A, *, upper=False, check_errors=False):
    """(L, info): info is 0 where the factorisation succeeded, else the order of the first
    leading minor that is not positive-definite (then that matrix's L is NaN)."""
    A = _matrix(A, "linalg.cholesky_ex")
    a = A._data
    batch = a.shape[:-2]
    try:
        return _CholeskyExResult(cholesky(A, upper=upper),
                                _plain(np.zeros(batch, np.int32)))
    except LinAlgError as e:
        if check_errors:
            raise LinAlgError(str(e).replace("linalg.cholesky", "linalg.cholesky_ex")) from None
    a3 = a.reshape((-1,) + a.shape[-2:])
    info = np.zeros(a3.shape[0], np.int32)
    L = np.full(a3.shape, np.nan, a.dtype)
    for i, m in enumerate(a3):
        try:
            L[i] = _R.Cholesky.value(int(bool(upper)), m)
        except LinAlgError:
            info[i] = _R.not_pd(m, "")[1]
    return _CholeskyExResult(_plain(L.reshape(a.shape)), _plain(info.reshape(batch)))


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """X with A X = B (``left=False``: X A = B) for triangular A, reading only its upper or
    lower triangle (its diagonal taken as ones when ``unitriangular``)."""
    fn = "linalg.solve_triangular"
    A = _matrix(A, fn)
    B = _vec(B, fn)
    A, B = _same_dtype(A, B)
    a, b = A._data, B._data
    if b.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor B must have at least 2 dimensions.")
    n = a.shape[-1]
    if (b.shape[-2] if left else b.shape[-1]) != n:
        eq = "AX = B" if left else "XA = B"
        raise RuntimeError(f"{fn}: Incompatible shapes of A and B for the equation {eq} "
                           f"({a.shape[-2]}x{n} and {b.shape[-2]}x{b.shape[-1]})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise RuntimeError(f"{fn}: the batch dimensions of A {tuple(a.shape)} and B "
                           f"{tuple(b.shape)} do not broadcast") from None
    flags = bool(upper) | bool(left) << 1 | bool(unitriangular) << 2
    return _apply(_R.SOLVE_TRIANGULAR, flags, _R.SolveTriangular.value(flags, a, b), A, B)


def cholesky_solve(B, L, upper=False):
    """X with A X = B, given A's Cholesky factor L (``upper=True``: U, A = U^T U)."""
    L = _vec(L, "cholesky_solve")
    B = _vec(B, "cholesky_solve")
    if L._data.ndim < 2 or B._data.ndim < 2:
        raise RuntimeError(f"b should have at least 2 dimensions, but has {B._data.ndim} "
                           f"dimensions instead" if B._data.ndim < 2 else
                           f"u should have at least 2 dimensions, but has {L._data.ndim} "
                           f"dimensions instead")
    n = L._data.shape[-1]
    if L._data.shape[-2] != n or B._data.shape[-2] != n:
        raise RuntimeError(f"Incompatible matrix sizes for cholesky_solve: each A matrix is "
                           f"{L._data.shape[-2]} by {n} but each b matrix is "
                           f"{B._data.shape[-2]} by {B._data.shape[-1]}")
    if upper:
        y = solve_triangular(_mT(L), B, upper=False)
        return solve_triangular(L, y, upper=True)
    y = solve_triangular(L, B, upper=False)
    return solve_triangular(_mT(L), y, upper=True)


# ---- determinants, inverse, solve -------------------------------------------------------------
def det(A):
    """The determinant of each square matrix of A."""
    A = _matrix(A, "linalg.det")
    return _apply(_R.DET, 0, _R.Det.value(0, A._data), A)


def slogdet(A):
    """(sign, logabsdet): the sign of det(A) and log|det(A)|."""
    A = _matrix(A, "linalg.slogdet")
    packed = _apply(_R.SLOGDET, 0, _R.Slogdet.value(0, A._data), A)
    return _SlogdetResult(packed[..., 0], packed[..., 1])


def logdet(input):
    """log det(A): NaN where the determinant is negative, -inf where it is 0."""
    sign, logabs = slogdet(_matrix(input, "logdet"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return logabs + ops.log(sign)     # + 0, NaN (sign -1) or -inf (sign 0), no branch


def inv(A):
    """The inverse of each square matrix of A (LinAlgError where one is singular)."""
    A = _matrix(A, "linalg.inv")
    return _apply(_R.INV, 0, _R.Inv.value(0, A._data), A)


def solve(A, B, *, left=True):
    """X with A X = B (``left=False``: X A = B). B is a batch of vectors when it is 1-D or
    has A's shape without its last dim; otherwise matrices."""
    fn = "linalg.solve"
    A = _matrix(A, fn)
    B = _vec(B, fn)
    A, B = _same_dtype(A, B)
    if not left:
        return _mT(solve(_mT(A), _mT(B)))
    a, b = A._data, B._data
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1])
    n = a.shape[-1]
    rows = b.shape[-1] if vector else b.shape[-2]
    if rows != n:
        cols = 1 if vector else b.shape[-1]
        raise RuntimeError(f"{fn}: Incompatible shapes of A and B for the equation AX = B "
                           f"({n}x{n} and {rows}x{cols})")
    if vector:
        B = ops.unsqueeze(B, -1)
    try:
        np.broadcast_shapes(a.shape[:-2], B._data.shape[:-2])
    except ValueError:
        raise RuntimeError(f"{fn}: the batch dimensions of A {tuple(a.shape)} and B "
                           f"{tuple(b.shape)} do not broadcast") from None
    X = _apply(_R.SOLVE, 0, _R.Solve.value(0, a, B._data), A, B)
    return ops.squeeze(X, -1) if vector else X


# ---- eigenvalues --------------------------------------------------------------------------------
def eigh(A, UPLO="L"):
    """(eigenvalues, eigenvectors) of symmetric A (ascending), read from its lower triangle
    (``UPLO='U'``: upper)."""
    A = _matrix(A, "linalg.eigh")
    if UPLO not in ("L", "U"):
        raise RuntimeError("Expected UPLO argument to be 'L' or 'U', but got " + str(UPLO))
    flags = int(UPLO == "U")
    packed = _apply(_R.EIGH, flags, _R.Eigh.value(flags, A._data), A)
    n = A._data.shape[-1]
    return _EighResult(packed[..., :, n], packed[..., :, :n])


def eigvalsh(A, UPLO="L"):
    """The eigenvalues of symmetric A, ascending."""
    return eigh(A, UPLO).eigenvalues


# ---- SVD, QR ---------------------------------------------------------------------------------
def _matrices(A, fn):
    A = _vec(A, fn)
    if A._data.ndim < 2:
        raise RuntimeError(f"{fn}: The input tensor A must have at least 2 dimensions.")
    return A


def svd(A, full_matrices=True, *, driver=None):
    """(U, S, Vh) with A = U diag(S) Vh, S descending. With ``full_matrices`` (the
    default) and A not square, the columns completing U and Vh are not determined by A:
    gradients reaching them are dropped, as PyTorch drops them."""
    A = _matrices(A, "linalg.svd")
    m, n = A._data.shape[-2:]
    full = bool(full_matrices) and m != n
    flags = int(full) | m << 1 | n << 21
    packed = _apply(_R.SVD, flags, _R.Svd.value(flags, A._data), A)
    u, sv, vh = _R.svd_unpack(packed, m, n, full, ops.reshape)
    return _SvdResult(u, sv, vh)


def svdvals(A, *, driver=None):
    """The singular values of A, descending."""
    return svd(A, full_matrices=False).S


def qr(A, mode="reduced"):
    """(Q, R) with A = Q R, Q's columns orthonormal and R upper triangular. ``mode``:
    'reduced' (Q is m x k, k = min(m, n)), 'complete' (m x m; the same when m <= n),
    'r' (R alone, Q empty)."""
    A = _matrices(A, "linalg.qr")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of "
                           f"'reduced' (default), 'r', or 'complete'")
    m, n = A._data.shape[-2:]
    if mode == "complete" and m > n:
        # not differentiable (PyTorch raises in backward): the results do not require grad
        q, r = np.linalg.qr(A._data, mode="complete")
        return _QrResult(_plain(q), _plain(r))
    flags = m << 1 | n << 21
    packed = _apply(_R.QR, flags, _R.Qr.value(flags, A._data), A)
    q, r = _R.Qr.unpack(packed, m, n, ops.reshape)
    if mode == "r":
        return _QrResult(_plain(np.empty((0,), A._data.dtype)), r)
    return _QrResult(q, r)


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The pseudo-inverse. A matrix of full rank goes through ``solve`` (its gradient then
    exists where PyTorch's does, repeated singular values included); a rank-deficient one
    through the SVD with singular values at most max(atol, rtol * largest) dropped."""
    A = _matrices(A, "linalg.pinv")
    a = A._data
    m, n = a.shape[-2:]
    sv = np.linalg.svd(a, compute_uv=False)
    if rtol is None:
        rtol = np.finfo(a.dtype).eps * max(m, n) if atol is None or atol == 0 else 0.0
    big = sv[..., :1] if sv.shape[-1] else sv
    cut = np.maximum(0.0 if atol is None else atol, rtol * big)
    _note_read(A)          # the rank decides the formula: compile runs this eagerly
    if min(m, n) and np.all(sv > cut):
        At = _mT(A)
        if m >= n:
            return solve(At @ A, At)
        return _mT(solve(A @ At, A))
    u, s, vh = svd(A, full_matrices=False)
    keep = _plain((s._data > cut).astype(a.dtype))
    sinv = keep / (s + (1.0 - keep))
    return (_mT(vh) * ops.unsqueeze(sinv, -2)) @ _mT(u)


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution X of A X = B, as (solution, residuals, rank,
    singular_values) like PyTorch's default driver ('gelsy'): residuals and singular values
    empty, rank the numerical rank. The solution goes through ``pinv`` (a QR-free formula
    that is differentiable in A and B)."""
    fn = "linalg.lstsq"
    A = _matrices(A, fn)
    B = _vec(B, fn)
    A, B = _same_dtype(A, B)
    vector = B._data.ndim == A._data.ndim - 1
    if (B._data.shape[-1] if vector else B._data.shape[-2]) != A._data.shape[-2]:
        raise RuntimeError(f"{fn}: input.size(-2) should match other.size(-2)")
    Bm = ops.unsqueeze(B, -1) if vector else B
    a = A._data
    sv = np.linalg.svd(a, compute_uv=False)
    eps = np.finfo(a.dtype).eps * max(a.shape[-2:]) if rcond is None else rcond
    rank = (sv > eps * sv[..., :1]).sum(-1) if sv.shape[-1] else np.zeros(a.shape[:-2], int)
    X = pinv(A, rtol=eps) @ Bm
    if vector:
        X = ops.squeeze(X, -1)
    empty = _plain(np.empty((0,), a.dtype))
    return _LstsqResult(X, empty, _plain(np.asarray(rank, np.int64)), empty)


def matrix_exp(A):
    """exp(A) by scaling and squaring: a [6/6] Pade approximant of A / 2^s (1-norm at most
    1/2, where its error is below float64's rounding), squared s times; matmul and solve
    records, so every derivative follows. s depends on A's norm, which compile cannot
    freeze: it runs a function using this eagerly."""
    A = _matrix(A, "linalg.matrix_exp")
    a = A._data
    _note_read(A)
    norm1 = float(np.abs(a).sum(-2).max()) if a.size else 0.0
    s = max(0, int(np.ceil(np.log2(norm1 / 0.5)))) if norm1 > 0.5 else 0
    X = A * (0.5 ** s) if s else A
    n = a.shape[-1]
    eye = _plain(np.broadcast_to(np.eye(n, dtype=a.dtype), a.shape).copy())
    c = [1.0, 1 / 2, 5 / 44, 1 / 66, 1 / 792, 1 / 15840, 1 / 665280]
    powers = [eye, X]
    for _ in range(5):
        powers.append(powers[-1] @ X)
    num = sum((ci * p for ci, p in zip(c, powers)), _plain(np.zeros(a.shape, a.dtype)))
    den = sum(((-1) ** i * ci * p for i, (ci, p) in enumerate(zip(c, powers))),
              _plain(np.zeros(a.shape, a.dtype)))
    E = solve(den, num)
    for _ in range(s):
        E = E @ E
    return E


# ---- composed ---------------------------------------------------------------------------------
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The ``ord``-norm of x over ``dim`` (all elements when None), as a vector."""
    x = _vec(x, "linalg.vector_norm")
    if dim is None and not keepdim:
        x = ops.reshape(x, (-1,))
    return _norm(x, ord, dim, keepdim, dtype)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):
    """'fro', 'nuc', 1, -1, 2, -2, inf or -inf norm of the matrices spanned by ``dim``
    (2, -2 and 'nuc': the largest, smallest and sum of the singular values)."""
    A = _vec(A, "linalg.matrix_norm")
    if dtype is not None:
        A = _to_dtype(A, dtype)
    if A._data.ndim < 2:
        raise RuntimeError("linalg.matrix_norm: The input tensor A must have at least 2 "
                           "dimensions.")
    d0, d1 = (d % A._data.ndim for d in dim)
    if ord == "fro":
        return _norm(A, 2, (d0, d1), keepdim)
    if ord in (1, -1, np.inf, -np.inf):
        rows, cols = (d0, d1) if ord in (1, -1) else (d1, d0)   # sum over rows, pick a col
        s = ops.sum(ops.abs(A), dim=rows, keepdim=True)
        pick = _amax if ord > 0 else _amin
        r = pick(s, dim=cols, keepdim=True)
        return r if keepdim else ops.squeeze(ops.squeeze(r, max(d0, d1)), min(d0, d1))
    if ord in (2, -2, "nuc"):
        dims = [d for d in range(A._data.ndim) if d not in (d0, d1)] + [d0, d1]
        sv = svdvals(ops.permute(A, *dims) if dims != list(range(A._data.ndim)) else A)
        r = ops.sum(sv, dim=-1) if ord == "nuc" else (sv[..., 0] if ord == 2 else sv[..., -1])
        if keepdim:
            r = ops.unsqueeze(ops.unsqueeze(r, min(d0, d1)), max(d0, d1))
        return r
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):
    """linalg.norm: a matrix norm when ``ord`` is a string or ``dim`` names two dims (or
    ord is given and A is a matrix), else a vector norm."""
    A = _vec(A, "linalg.norm")
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if isinstance(ord, str) or (dim is not None and len(dim) == 2) or \
            (ord is not None and dim is None and A._data.ndim == 2):
        if dim is None:
            dim = (-2, -1)
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if ord is not None and dim is None and A._data.ndim != 1:
        raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must "
                           f"be 1D or 2D. Got {A._data.ndim}D.")
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def multi_dot(tensors):
    """The product of the matrices in ``tensors`` (the first may be a row vector, the last a
    column vector)."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    for i, t in enumerate(tensors):
        nd = t.ndim
        if nd not in (1, 2) or (nd == 1 and 0 < i < len(tensors) - 1):
            which = "first and last" if nd == 1 else ""
            raise RuntimeError(f"multi_dot(): tensor {i} must be 2D but got {nd}D" if not which
                               else f"multi_dot(): tensor {i} must be 2D but got {nd}D")
    out_ = tensors[0]
    for t in tensors[1:]:
        out_ = ops.matmul(out_, t)
    return out_


def matrix_power(A, n):
    """A multiplied by itself ``n`` times (n = 0: the identity; n < 0: powers of inv(A))."""
    A = _matrix(A, "linalg.matrix_power")
    n = int(n)
    if n == 0:
        eye = np.broadcast_to(np.eye(A._data.shape[-1], dtype=A._data.dtype), A._data.shape)
        return _plain(eye.copy()) if not A._rg else A * 0.0 + _plain(eye.copy())
    if n < 0:
        A, n = inv(A), -n
    result, base = None, A
    while n:
        if n & 1:
            result = base if result is None else ops.matmul(result, base)
        n >>= 1
        if n:
            base = ops.matmul(base, base)
    return result


def cross(input, other, *, dim=-1):
    """The cross product of 3-vectors along ``dim`` (inputs broadcast)."""
    a = _vec(input, "linalg.cross")
    b = _vec(other, "linalg.cross")
    a, b = _same_dtype(a, b)
    if a._data.ndim != b._data.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    if a._data.shape[dim] != 3 or b._data.shape[dim] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got "
                           f"{a._data.shape[dim]} and {b._data.shape[dim]}")
    shape = np.broadcast_shapes(a._data.shape, b._data.shape)
    a = ops.expand(a, *shape) if tuple(a._data.shape) != shape else a
    b = ops.expand(b, *shape) if tuple(b._data.shape) != shape else b
    d = dim % len(shape)

    def c(t, i):
        return t[(slice(None),) * d + (i,)]
    parts = [c(a, 1) * c(b, 2) - c(a, 2) * c(b, 1), c(a, 2) * c(b, 0) - c(a, 0) * c(b, 2),
             c(a, 0) * c(b, 1) - c(a, 1) * c(b, 0)]
    return ops.stack(parts, dim=d)
