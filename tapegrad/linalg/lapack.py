"""Triangular solves and products and the Cholesky factorisation with numpy's own
OpenBLAS (cblas_?trsm, cblas_?trmm, LAPACK's ?potrf), called through ctypes.

numpy has no triangular solve: np.linalg.solve would factorise a triangular matrix again
(an O(n^3) LU for what is an O(n^2 k) substitution). The ILP64 ``cblas_?trsm`` of the
OpenBLAS bundled with numpy's wheel (the same library, and thread pool, as every other
product in tapegrad, see kernels/blas.py) does the substitution. Without that library
(numpy built against another BLAS, or TAPEGRAD_NO_BLAS=1) ``trsm`` falls back to
np.linalg.solve on the triangle, which gives the same solution to rounding; ``trmm`` to a
product, ``potrf`` to np.linalg.cholesky. (np.linalg.cholesky calls the same library's
potrf, but on this machine took about 4x as long as calling it directly at n = 512.)
"""
import functools
import ctypes
import os

import numpy as np

from ..kernels.blas import _numpy_openblas

_ROW_MAJOR, _LEFT, _RIGHT, _UPPER, _LOWER = 101, 141, 142, 121, 122
_NO_TRANS, _TRANS, _NON_UNIT, _UNIT = 111, 112, 131, 132


def _find():
    if os.environ.get("TAPEGRAD_NO_BLAS"):
        return {}, {}, {}
    for path in _numpy_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_cblas_", "cblas_"):
            try:
                fns = {np.dtype(np.float32): getattr(lib, prefix + "strsm64_"),
                       np.dtype(np.float64): getattr(lib, prefix + "dtrsm64_")}
            except AttributeError:
                continue
            try:
                mm = {np.dtype(np.float32): getattr(lib, prefix + "strmm64_"),
                      np.dtype(np.float64): getattr(lib, prefix + "dtrmm64_")}
                lapack = "scipy_" if prefix.startswith("scipy_") else ""
                potrf = {np.dtype(np.float32): getattr(lib, lapack + "spotrf_64_"),
                         np.dtype(np.float64): getattr(lib, lapack + "dpotrf_64_")}
            except AttributeError:
                continue
            for table in (fns, mm):
                for dt, f in table.items():
                    real = ctypes.c_float if dt == np.float32 else ctypes.c_double
                    f.restype = None
                    f.argtypes = [ctypes.c_int] * 5 + [ctypes.c_int64] * 2 + [
                        real, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
            for f in potrf.values():
                f.restype = None
                f.argtypes = [ctypes.c_char_p] + [ctypes.c_void_p] * 4 + [ctypes.c_int64]
            return fns, mm, potrf
    return {}, {}, {}


TRSM, TRMM, POTRF = _find()


def _local_threads():
    """OpenBLAS's per-thread thread count setter (openblas_set_num_threads_local, which
    returns the old count), or None."""
    if not TRSM:
        return None
    for path in _numpy_openblas():
        try:
            f = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local")
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_int]
        return f
    return None


_SET_LOCAL = _local_threads()
# Below this size a call runs on one thread: measured here at n = 64, OpenBLAS's two
# threads took twice as long as one for trsm, trmm and potrf (the work is too small to
# share, and a busy second core makes the handover slower still)
SMALL = 192


class _one_thread:
    """Run the enclosed calls on one OpenBLAS thread when n is small (this thread only)."""
    __slots__ = ("n", "old")

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = _SET_LOCAL(1) if _SET_LOCAL is not None and self.n <= SMALL else 0

    def __exit__(self, *exc):
        if self.old > 0:
            _SET_LOCAL(self.old)


def _triangle(a, upper, unit):
    """The triangle of a that a triangular solve reads, as a full matrix."""
    t = np.triu(a) if upper else np.tril(a)
    if unit:
        t = t.copy()
        idx = np.arange(a.shape[-1])
        t[..., idx, idx] = 1
    return t


def trsm(a, b, upper, left=True, trans=False, unit=False):
    """X with op(a) X = b (left) or X op(a) = b (right), op(a) = a or a^T, reading only the
    upper or lower triangle of a (its diagonal taken as ones when unit). a: (..., n, n),
    b: (..., n, k) left or (..., k, n) right, batch dims broadcast; returns a new array."""
    dt = a.dtype if a.dtype == b.dtype else np.result_type(a.dtype, b.dtype)
    fn = TRSM.get(dt)
    if fn is not None and a.ndim == 2 == b.ndim and a.shape[-1] and b.size:   # one matrix
        x = np.array(b, dtype=dt, order="C")
        if not a.flags.c_contiguous or a.dtype != dt:
            a = np.ascontiguousarray(a, dtype=dt)
        m, n = x.shape
        with _one_thread(max(m, n)):
            fn(_ROW_MAJOR, _LEFT if left else _RIGHT, _UPPER if upper else _LOWER,
               _TRANS if trans else _NO_TRANS, _UNIT if unit else _NON_UNIT, m, n, 1.0,
               a.ctypes.data, a.shape[-1], x.ctypes.data, n)
        return x
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if fn is None or a.shape[-1] == 0 or b.size == 0:
        t = _triangle(a, upper, unit)
        if trans:
            t = np.swapaxes(t, -1, -2)
        t = np.broadcast_to(t, batch + t.shape[-2:])
        if left:
            return np.linalg.solve(t, np.broadcast_to(b, batch + b.shape[-2:]))
        bt = np.swapaxes(np.broadcast_to(b, batch + b.shape[-2:]), -1, -2)
        return np.swapaxes(np.linalg.solve(np.swapaxes(t, -1, -2), bt), -1, -2)
    x = np.array(np.broadcast_to(b, batch + b.shape[-2:]), dtype=dt, order="C")
    a = np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:]), dtype=dt)
    m, n = x.shape[-2:]
    k = a.shape[-1]
    args = (_ROW_MAJOR, _LEFT if left else _RIGHT, _UPPER if upper else _LOWER,
            _TRANS if trans else _NO_TRANS, _UNIT if unit else _NON_UNIT, m, n, 1.0)
    a3 = a.reshape(-1, k, k)
    x3 = x.reshape(-1, m, n)
    step_a, step_x = a3.strides[0], x3.strides[0]
    pa, px = a3.ctypes.data, x3.ctypes.data
    with _one_thread(max(m, n)):
        for i in range(x3.shape[0]):
            fn(*args, pa + i * step_a, k, px + i * step_x, n)
    return x


@functools.lru_cache(maxsize=64)
def tri_mask(n, dtype, upper, k=0):
    """A read-only 0/1 mask of the triangle on and above (upper) or below diagonal k."""
    m = np.triu(np.ones((n, n), dtype), k) if upper else np.tril(np.ones((n, n), dtype), k)
    m.flags.writeable = False
    return m


def trmm_lt(a, b):
    """a^T @ b for lower-triangular a (its strict upper triangle is not read): (..., n, n)
    each, batch dims broadcast."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    dt = np.result_type(a.dtype, b.dtype)
    fn = TRMM.get(dt)
    if fn is None or a.shape[-1] == 0:
        return np.swapaxes(a * tri_mask(a.shape[-1], a.dtype, False), -1, -2) @ b
    x = np.array(np.broadcast_to(b, batch + b.shape[-2:]), dtype=dt, order="C")
    a = np.ascontiguousarray(np.broadcast_to(a, batch + a.shape[-2:]), dtype=dt)
    m, n = x.shape[-2:]
    a3, x3 = a.reshape(-1, m, m), x.reshape(-1, m, n)
    with _one_thread(max(m, n)):
        for i in range(x3.shape[0]):
            fn(_ROW_MAJOR, _LEFT, _LOWER, _TRANS, _NON_UNIT, m, n, 1.0,
               a3.ctypes.data + i * a3.strides[0], m, x3.ctypes.data + i * x3.strides[0], n)
    return x


def cholesky(a):
    """The lower Cholesky factor of each matrix of a (its lower triangle read). Raises
    np.linalg.LinAlgError where one is not positive-definite."""
    fn = POTRF.get(a.dtype)
    if fn is None or a.shape[-1] == 0:
        return np.linalg.cholesky(a)
    n = a.shape[-1]
    c = np.array(a, order="C")
    c3 = c.reshape(-1, n, n)
    size = ctypes.c_int64(n)
    info = ctypes.c_int64(0)
    up = ctypes.c_char_p(b"U")    # row-major lower = column-major upper
    with _one_thread(n):
        for i in range(c3.shape[0]):
            fn(up, ctypes.addressof(size), c3.ctypes.data + i * c3.strides[0],
               ctypes.addressof(size), ctypes.addressof(info), 1)
            if info.value:
                raise np.linalg.LinAlgError("Matrix is not positive definite")
    np.multiply(c, tri_mask(n, c.dtype, False), out=c)
    return c
