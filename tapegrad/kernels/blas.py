"""Matrix products in compiled code, and where numpy's own BLAS is, so that compiled code
can call it (_gemm below).

numpy's wheels bundle OpenBLAS with the ILP64 (64-bit integer) interface under prefixed
names. Calling that same library from compiled code keeps one BLAS, and one thread pool,
in the process: a second OpenBLAS pool (Numba's np.dot goes through SciPy's) competing with
numpy's for the same cores made a small MLP's backward ten times slower on our machines.

``GEMM`` holds the addresses of cblas_sgemm and cblas_dgemm, in the order of the tape's
dtype codes (0: float32, 1: float64), or zeros when they are not found (numpy built
against another BLAS, or NUMBA_DISABLE_JIT, where nothing is compiled). With zeros,
larger matrix products return to Python and run through numpy, as before.
"""
import ctypes
import glob
import os

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .schema import A, B, ndim_of, OPW, SH


# ILP64 cblas names, newest numpy wheels first
_NAMES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"), ("cblas_sgemm64_", "cblas_dgemm64_"))
_PATTERNS = ("numpy.libs/libscipy_openblas64_*", "numpy/.dylibs/libscipy_openblas64_*",
             "numpy.libs/libopenblas64_*", "numpy/.dylibs/libopenblas64_*")


def _numpy_openblas():
    """Paths of the OpenBLAS libraries bundled with the installed numpy wheel."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))
    return [p for pat in _PATTERNS for p in sorted(glob.glob(os.path.join(site, pat)))]


def find_gemm():
    """int64 [sgemm, dgemm] addresses of numpy's bundled OpenBLAS, or zeros."""
    table = np.zeros(2, np.int64)
    if numba.config.DISABLE_JIT or os.environ.get("TAPEGRAD_NO_BLAS"):
        return table
    for path in _numpy_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s, d in _NAMES:
            try:
                table[:] = [ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
                            for name in (s, d)]
                return table
            except AttributeError:
                continue
    return table


GEMM = find_gemm()


# ---- matrix products in compiled code -----------------------------------------------------------
# Products of at most SMALL_MM multiply-adds between 1-D/2-D operands run as plain loops: for
# them a BLAS call costs more than the arithmetic. Larger ones call cblas_?gemm of numpy's own
# OpenBLAS from compiled code (one BLAS and one thread pool per process), through the address
# in `gemm` (tapegrad.blas finds it; 0 when there is none, and then numpy runs them from
# Python, as it does batched products).
SMALL_MM = 16384
MM_NUMPY, MM_LOOPS, MM_BLAS = 0, 1, 2
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@intrinsic
def _blas_gemm(typingctx, fn, ta, tb, m, n, k, X, xo, ldx, Y, yo, ldy, beta, Z, zo, ldz):
    """Z[zo:] = X[xo:] @ Y[yo:] + beta Z[zo:] (row-major; ta/tb: transpose X/Y) by calling
    the cblas_?gemm whose address is fn (the ILP64 interface: 64-bit sizes). X or Y may
    instead be the address of a C-contiguous array of Z's dtype (xo/yo then unused)."""
    if not (isinstance(Z, types.Array) and Z.dtype in (types.float32, types.float64)
            and all(t == Z or isinstance(t, types.Integer) for t in (X, Y))):
        return None
    sig = types.void(fn, ta, tb, m, n, k, X, xo, ldx, Y, yo, ldy, beta, Z, zo, ldz)

    def codegen(context, builder, sig, args):
        aty = sig.args[13]      # Z, always an array
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fty = context.get_value_type(aty.dtype)

        def int64(i):
            return context.cast(builder, args[i], sig.args[i], types.int64)

        def ptr(i):
            if isinstance(sig.args[i], types.Integer):
                return builder.inttoptr(int64(i), fty.as_pointer())
            data = context.make_array(aty)(context, builder, args[i]).data
            return builder.gep(data, [int64(i + 1)])
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fty, fty.as_pointer(),
                                               i64, fty.as_pointer(), i64, fty,
                                               fty.as_pointer(), i64])
        f = builder.inttoptr(int64(0), fnty.as_pointer())
        builder.call(f, [ir.Constant(i32, _ROW_MAJOR), builder.trunc(int64(1), i32),
                         builder.trunc(int64(2), i32), int64(3), int64(4), int64(5),
                         ir.Constant(fty, 1.0), ptr(6), int64(8), ptr(9), int64(11),
                         context.cast(builder, args[12], sig.args[12], aty.dtype), ptr(13),
                         int64(15)])
        return context.get_dummy_value()
    return sig, codegen


def _operand(X, o, ld, rows, dt):
    """`rows` rows of leading dimension ld at X[o:], or at address X (Python's _gemm)."""
    if isinstance(X, np.ndarray):
        return X[o:o + rows * ld].reshape(rows, ld)
    raw = (ctypes.c_char * (rows * ld * dt.itemsize)).from_address(int(X))
    return np.frombuffer(raw, dt).reshape(rows, ld)


def _numpy_gemm(fn, ta, tb, m, n, k, X, xo, ldx, Y, yo, ldy, beta, Z, zo, ldz):
    """_gemm in Python: numpy's matmul of the same operands (fn unused)."""
    x = _operand(X, xo, ldx, k if ta == _TRANS else m, Z.dtype)
    x = x[:, :m].T if ta == _TRANS else x[:, :k]
    y = _operand(Y, yo, ldy, n if tb == _TRANS else k, Z.dtype)
    y = y[:, :k].T if tb == _TRANS else y[:, :n]
    z = Z[zo:zo + m * ldz].reshape(m, ldz)[:, :n]
    if beta == 0:      # Z is not read (it may hold anything), as in BLAS
        z[...] = x @ y
    else:
        z += x @ y if beta == 1 else x @ y + (beta - 1) * z


# Python code (NUMBA_DISABLE_JIT) cannot call the intrinsic. NUMBA_DISABLE_JIT passes no gemm
# address, so only the interpreted kernels of a cold start (kernels/tiers.py) run numpy's
_gemm = _numpy_gemm if numba.config.DISABLE_JIT else _blas_gemm


@njit(cache=True, nogil=True)
def _mm_dims(R, r, gemm):
    """(m, k, n, how) of matmul record r: how is MM_LOOPS or MM_BLAS for 1-D/2-D operands
    (MM_BLAS needs a gemm address), MM_NUMPY for what Python runs (batched operands)."""
    a = R[r, A]
    b = R[r, B]
    nda = ndim_of(R[a, OPW])
    ndb = ndim_of(R[b, OPW])
    if nda > 2 or ndb > 2:
        return -1, -1, -1, MM_NUMPY
    m = R[a, SH] if nda == 2 else 1
    k = R[a, SH + nda - 1]
    n = R[b, SH + 1] if ndb == 2 else 1
    if m * k * n <= SMALL_MM:
        return m, k, n, MM_LOOPS
    return m, k, n, (MM_BLAS if gemm != 0 else MM_NUMPY)


@njit(cache=True, nogil=True)
def _mm(X, xo, Y, yo, Z, zo, m, k, n, acc):
    """Z[zo:] (+)= X[xo:] (m x k) @ Y[yo:] (k x n), row-major."""
    for i in range(m):
        for j in range(n):
            if not acc:
                Z[zo + i * n + j] = 0
        for p in range(k):
            x = X[xo + i * k + p]
            for j in range(n):
                Z[zo + i * n + j] += x * Y[yo + p * n + j]


@njit(cache=True, nogil=True)
def _mm_vjp(G, go, V, va, vb, ga, gb, m, k, n, wa, wb):
    if wa:   # ga (m x k) += g (m x n) @ b.T
        for i in range(m):
            for p in range(k):
                acc = 0.0
                for j in range(n):
                    acc += G[go + i * n + j] * V[vb + p * n + j]
                G[ga + i * k + p] += acc
    if wb:   # gb (k x n) += a.T @ g
        for i in range(m):
            for p in range(k):
                x = V[va + i * k + p]
                for j in range(n):
                    G[gb + p * n + j] += x * G[go + i * n + j]
