"""Where numpy's own BLAS is, so that compiled code can call it (sweep._gemm).

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
