"""Index maps: where each element of a record's output sits in an input (broadcast) or
in a reduced output, as flat offsets; and the batched matrix transpose, which needs none."""
import numpy as np
from numba import njit

from .schema import MAXD, ndim_of, OPW, SH, SIZE


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_map(shape, nd, strides, out):
    """out[i] = offset reached by walking shape in C order with the given strides."""
    n = out.shape[0]
    idx = np.zeros(max(nd, 1), np.int64)
    off = 0
    for i in range(n):
        out[i] = off
        d = nd - 1
        while d >= 0:
            idx[d] += 1
            off += strides[d]
            if idx[d] < shape[d]:
                break
            off -= strides[d] * shape[d]
            idx[d] = 0
            d -= 1


@njit(cache=True, nogil=True, error_model="numpy")
def _bcast_map(R, big, small):
    """Flat index into `small` for every element of `big` (numpy right-aligned broadcast)."""
    ndb = ndim_of(R[big, OPW])
    nds = ndim_of(R[small, OPW])
    strides = np.zeros(max(ndb, 1), np.int64)
    acc = 1
    for k in range(nds):
        dim = R[small, SH + nds - 1 - k]
        if dim != 1:
            strides[ndb - 1 - k] = acc
        acc *= dim
    out = np.empty(R[big, SIZE], np.int64)
    _fill_map(R[big, SH:SH + MAXD], ndb, strides, out)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _reduce_map(R, src, mask):
    """Flat index into the reduced output for every element of src (dims in mask summed)."""
    nd = ndim_of(R[src, OPW])
    strides = np.zeros(max(nd, 1), np.int64)
    acc = 1
    for d in range(nd - 1, -1, -1):
        if not (mask >> d) & 1:
            strides[d] = acc
            acc *= R[src, SH + d]
    out = np.empty(R[src, SIZE], np.int64)
    _fill_map(R[src, SH:SH + MAXD], nd, strides, out)
    return out


@njit(cache=True, nogil=True)
def _transpose(X, xo, Y, yo, n, m, k, add):
    """Y[yo:] (+)= X[xo:] with each (m x k) matrix of the batch transposed to (k x m), in
    32 x 32 tiles (one side's accesses are strided: tiles keep both in cache; a plain
    double loop took 2.8x as long on 256 x 256 float64)."""
    mk = m * k
    for b in range(n // mk if mk else 0):
        bx = xo + b * mk
        by = yo + b * mk
        for i0 in range(0, m, 32):
            i1 = min(i0 + 32, m)
            for j0 in range(0, k, 32):
                j1 = min(j0 + 32, k)
                if add:
                    for j in range(j0, j1):
                        for i in range(i0, i1):
                            Y[by + j * m + i] += X[bx + i * k + j]
                else:
                    for j in range(j0, j1):
                        for i in range(i0, i1):
                            Y[by + j * m + i] = X[bx + i * k + j]
