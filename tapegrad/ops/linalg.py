"""Matrix products: matmul (named DotBackward0, MvBackward0, MmBackward0, BmmBackward0 or
MatmulBackward0 by the operands' dimensions), mm and dot.

One MATMUL record each. Small 2-D products save their operands so that the sweep does the
VJP inline; larger ones whose operands are contiguous, or transposes of contiguous ones
(``x @ w.t()``, as in Linear), pass the operands' addresses, and the sweep's BLAS call reads
them where they are (the arrays are kept alive in the tape's ``pyrefs``). F0 then says which
operand's memory holds its transpose: bit 0 for a, bit 1 for b; with b transposed, bit 2
lets the sweep put w's gradient straight into w when b is the TRANSPOSE record of w
(``x @ w.t()``), skipping the transpose's strided copy (kernels/reverse.py,
``_vjp_matmul``; the engine clears the bit where b's own gradient is looked at).
"""
import numpy as np

from .. import kernels as K
from ..kernels import DT_BIT, NAME_SHIFT, RG_BIT
from ..tensor import float64, grad_enabled
from .operands import _operand, _promote
from .record import _N, _graph, _plain, _slot, _tape


def matmul(x, y):
    x, y = _promote(_operand("@", x, y, x), _operand("@", x, y, y))
    a, b = x._data, y._data
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    try:
        out = np.matmul(a, b)
    except ValueError:
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise RuntimeError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                f"(the last dimension of the first, {ka}, must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the second, {kb})"
            ) from None
        raise RuntimeError(f"matmul: the batch dimensions of shapes {tuple(a.shape)} and "
                           f"{tuple(b.shape)} do not broadcast") from None
    out = np.asarray(out)
    if not ((x._rg or y._rg) and grad_enabled()):
        return _plain(out)
    if a.ndim == 1 and b.ndim == 1:
        fn = _N["dot"]
    elif a.ndim == 2 and b.ndim == 2:
        fn = _N["mm"]
    elif a.ndim == 2 and b.ndim == 1:
        fn = _N["mv"]
    elif a.ndim == 3 and b.ndim == 3:
        fn = _N["bmm"]
    else:
        fn = _N["matmul"]
    tp = _tape()
    sa = _slot(tp, x)
    sb = _slot(tp, y)
    pa = pb = 0
    flip = 0
    if a.ndim <= 2 and b.ndim <= 2:
        if a.size * (b.shape[-1] if b.ndim == 2 else 1) <= K.SMALL_MM:
            tp.save(sa, a)      # small: the sweep does its VJP inline instead of calling numpy
            tp.save(sb, b)
        elif a.dtype == b.dtype == out.dtype:
            ta, tb = _layout(a), _layout(b)
            if ta >= 0 and tb >= 0:
                # the sweep's BLAS call reads the operands where they are (kept alive in
                # pyrefs), transposed where their memory holds the transpose
                pa, pb, flip = a.ctypes.data, b.ctypes.data, ta | tb * 6
    word = K.MATMUL | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, sa, sb, -1, pa, pb, out, False, float(flip))
    tp.pyrefs[gid] = (a, b)
    return _graph(out, tp, gid, fn)


def _layout(a):
    """0: a's memory is a, row-major; 1: it is a.T row-major (a 2-D transposed view);
    -1: neither (the VJP then runs in numpy)."""
    if a.flags.c_contiguous:
        return 0
    if a.ndim == 2 and a.flags.f_contiguous:
        return 1
    return -1


def mm(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be 2-D matrices, got shapes "
                           f"{tuple(x.shape)} and {tuple(y.shape)}")
    return matmul(x, y)


def dot(x, y):
    if x.ndim != 1 or y.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x.ndim}D and {y.ndim}D tensors")
    return matmul(x, y)
