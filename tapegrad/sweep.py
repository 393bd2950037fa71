"""The compiled side of the engine: opcodes, the record layout, and the reverse sweep.

Everything Numba compiles lives in this one module on purpose: Numba's on-disk cache is
keyed by the file it compiles, and a cached caller does not notice an edited callee in
another file. Opcodes and field indices are module constants, which Numba freezes into
the compiled code.

A record is one row of 16 int64 words (the last two reinterpreted as float64):

    OPW   op | dtype << 8 | requires_grad << 9 | ndim << 10 | name << 16
    A B C input slots (local record indices) or -1
    P0 P1 integer parameters (for GATHER/CAT/NLL: offset and length in the index arena)
    VOFF  offset of this slot's saved value in the value arena of its dtype, or -1
    SH..  the output shape, up to MAXD dims
    SIZE  number of elements of the output
    F0 F1 float parameters

The output slot of record ``r`` is ``r`` itself, so a slot and a record are one thing.
"""
import numpy as np
from numba import njit

# ---- record layout --------------------------------------------------------------------
NFIELDS = 16
OPW, A, B, C, P0, P1, VOFF, SH = 0, 1, 2, 3, 4, 5, 6, 7
MAXD = 6
SIZE = 13
F0, F1 = 14, 15

# ---- opcodes ---------------------------------------------------------------------------
INPUT = 0      # a leaf or constant entering the tape (no VJP; its gradient is read out)
DEAD = 1       # stands for a tensor whose graph was already freed; touching it is an error
# unary elementwise: out = f(a; F0, F1)
NEG, EXP, LOG, SQRT, ABS, SIN, COS, TANH, SIGMOID, RELU = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
ADDC, MULC, POWC, RPOWC, RDIVC, CLAMP = 12, 13, 14, 15, 16, 17
# binary elementwise with numpy broadcasting: out = f(a, b) (WHERE: c is the condition)
ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM, WHERE = 20, 21, 22, 23, 24, 25, 26, 27
# reductions and data movement
SUM, MEAN, EXTREME, GATHER, RESHAPE, CAT = 30, 31, 32, 33, 34, 35
# fused ops
SOFTMAX, LOGSOFTMAX, BCEWL, NLL = 40, 41, 42, 43
# ops whose VJP runs in Python between compiled segments (numpy's BLAS, dtype changes)
MATMUL, CAST = 50, 51
FIRST_PY = 50
NOPS = 52

# which saved values a VJP reads (bit 1: a, 2: b, 4: c, 8: out); used for the in-place check
R_A, R_B, R_C, R_OUT = 1, 2, 4, 8
READS = {
    EXP: R_OUT, LOG: R_A, SQRT: R_OUT, ABS: R_A, SIN: R_A, COS: R_A, TANH: R_OUT,
    SIGMOID: R_OUT, RELU: R_OUT, POWC: R_A, RPOWC: R_OUT, RDIVC: R_A, CLAMP: R_A,
    MUL: R_A | R_B, DIV: R_A | R_B, POW: R_A | R_B | R_OUT, MAXIMUM: R_A | R_B,
    MINIMUM: R_A | R_B, WHERE: R_C, EXTREME: R_A | R_OUT, SOFTMAX: R_OUT,
    LOGSOFTMAX: R_OUT, BCEWL: R_A | R_B | R_C, NLL: R_B, MATMUL: R_A | R_B,
}
# ops whose VJP reads the index arena block at P0
USES_IARENA = (GATHER, CAT, NLL)

# sweep status codes
ST_DONE, ST_PYTHON, ST_FREED, ST_DIRTY, ST_BADOP, ST_DEAD = 0, 1, 2, 3, 4, 5


def reads_table():
    t = np.zeros(NOPS, np.int64)
    for op, bits in READS.items():
        t[op] = bits
    return t


# ---- small compiled helpers -------------------------------------------------------------
@njit(cache=True, nogil=True)
def _touch(grads, goff, R, touched, s):
    """Zero slot s's gradient the first time anything accumulates into it."""
    if touched[s] == 0:
        o = goff[s]
        for i in range(R[s, SIZE]):
            grads[o + i] = 0
        touched[s] = 1


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _bcast_map(R, big, small):
    """Flat index into `small` for every element of `big` (numpy right-aligned broadcast)."""
    ndb = (R[big, OPW] >> 10) & 15
    nds = (R[small, OPW] >> 10) & 15
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


@njit(cache=True, nogil=True)
def _reduce_map(R, src, mask):
    """Flat index into the reduced output for every element of src (dims in mask summed)."""
    nd = (R[src, OPW] >> 10) & 15
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
def _same_shape(R, x, y):
    nx = (R[x, OPW] >> 10) & 15
    if nx != ((R[y, OPW] >> 10) & 15):
        return False
    for d in range(nx):
        if R[x, SH + d] != R[y, SH + d]:
            return False
    return True


@njit(cache=True, nogil=True)
def _softplus(t):
    # log(1 + exp(t)) without overflow
    return max(t, 0.0) + np.log1p(np.exp(-abs(t)))


# ---- the VJP kernels, one per op family ---------------------------------------------------
@njit(cache=True, nogil=True)
def _vjp_unary(op, n, go, va, vo, f0, f1, ga):
    for i in range(n):
        g = go[i]
        if op == NEG:
            d = -g
        elif op == EXP:
            d = g * vo[i]
        elif op == LOG:
            d = g / va[i]
        elif op == SQRT:
            d = g * 0.5 / vo[i]
        elif op == ABS:
            x = va[i]
            d = g if x > 0 else (-g if x < 0 else 0.0 * g)
        elif op == SIN:
            d = g * np.cos(va[i])
        elif op == COS:
            d = -g * np.sin(va[i])
        elif op == TANH:
            y = vo[i]
            d = g * (1 - y * y)
        elif op == SIGMOID:
            y = vo[i]
            d = g * y * (1 - y)
        elif op == RELU:
            d = g if vo[i] > 0 else 0.0 * g
        elif op == ADDC:
            d = g
        elif op == MULC:
            d = g * f0
        elif op == POWC:
            d = 0.0 * g if f0 == 0.0 else g * f0 * va[i] ** (f0 - 1.0)
        elif op == RPOWC:
            d = g * vo[i] * np.log(f0)
        elif op == RDIVC:
            x = va[i]
            d = -g * f0 / (x * x)
        else:  # CLAMP: gradient passes where lo <= x <= hi
            x = va[i]
            d = g if (x >= f0 and x <= f1) else 0.0 * g
        ga[i] += d


@njit(cache=True, nogil=True)
def _vjp_binary(op, n, go, va, vb, vc, vo, ga, gb, ma, mb, mc, ida, idb, idc, wa, wb):
    for i in range(n):
        g = go[i]
        ia = i if ida else ma[i]
        ib = i if idb else mb[i]
        if op == ADD:
            da = g
            db = g
        elif op == SUB:
            da = g
            db = -g
        elif op == MUL:
            da = g * vb[ib]
            db = g * va[ia]
        elif op == DIV:
            y = vb[ib]
            da = g / y
            db = -g * va[ia] / (y * y)
        elif op == POW:
            x = va[ia]
            e = vb[ib]
            da = 0.0 * g if e == 0.0 else g * e * x ** (e - 1.0)
            db = 0.0 * g if (x == 0.0 and e >= 0.0) else g * vo[i] * np.log(x)
        elif op == MAXIMUM or op == MINIMUM:
            x = va[ia]
            y = vb[ib]
            if x == y:
                da = 0.5 * g
                db = 0.5 * g
            elif (x > y) == (op == MAXIMUM):
                da = g
                db = 0.0 * g
            else:
                da = 0.0 * g
                db = g
        else:  # WHERE
            cnd = vc[i if idc else mc[i]]
            da = g if cnd != 0 else 0.0 * g
            db = 0.0 * g if cnd != 0 else g
        if wa:
            ga[ia] += da
        if wb:
            gb[ib] += db


@njit(cache=True, nogil=True)
def _vjp_softmax(log, n, D, inner, go, y, ga):
    outer = n // (D * inner) if D * inner > 0 else 0
    for o in range(outer):
        for j in range(inner):
            base = o * D * inner + j
            acc = 0.0
            for m in range(D):
                k = base + m * inner
                acc += go[k] if log else go[k] * y[k]
            for m in range(D):
                k = base + m * inner
                if log:
                    ga[k] += go[k] - np.exp(y[k]) * acc
                else:
                    ga[k] += y[k] * (go[k] - acc)


@njit(cache=True, nogil=True)
def _vjp_bcewl(n, go, reduce, scale, z, y, pw, mpw, has_pw, gz, gy, gp, wz, wy, wp):
    for i in range(n):
        g = go[0] * scale if reduce else go[i]
        zi = z[i]
        yi = y[i]
        p = pw[mpw[i]] if has_pw else 1.0
        lw = 1.0 + (p - 1.0) * yi
        sp = _softplus(-zi)           # log(1 + exp(-z))
        sneg = np.exp(-sp)            # sigmoid(z) = exp(-softplus(-z))
        if wz:
            gz[i] += g * ((1.0 - yi) - lw * (1.0 - sneg))
        if wy:
            gy[i] += g * (-zi + (p - 1.0) * sp)
        if wp:
            gp[mpw[i]] += g * yi * sp


# ---- the reverse sweep -----------------------------------------------------------------------
@njit(cache=True, nogil=True)
def sweep(R, F, vals, grads, goff, touched, freed, dirty_at, reads, iar, start, stop, dt):
    """Walk records start, start-1, ..., stop backwards, accumulating VJPs into grads.

    Returns (status, record). ST_PYTHON asks the caller to run that record in Python (a
    matrix product, a dtype change, or a record of the other dtype) and call again below it.
    """
    has_dirty = dirty_at.shape[0] > 0
    empty = vals[0:0]
    noidx = np.empty(0, np.int64)
    for r in range(start, stop - 1, -1):
        if touched[r] == 0:
            continue
        w = R[r, OPW]
        op = w & 255
        if op == INPUT:
            continue
        if op == DEAD:
            return ST_DEAD, r
        if freed[r] != 0:
            return ST_FREED, r
        if op >= FIRST_PY or ((w >> 8) & 1) != dt:
            return ST_PYTHON, r
        rd = reads[op] if op < reads.shape[0] else 0
        if has_dirty and rd != 0:
            if ((rd & R_A) and r < dirty_at[R[r, A]]) or ((rd & R_B) and r < dirty_at[R[r, B]]) \
                    or ((rd & R_C) and r < dirty_at[R[r, C]]) or ((rd & R_OUT) and r < dirty_at[r]):
                return ST_DIRTY, r
        n = R[r, SIZE]
        go = grads[goff[r]:goff[r] + n]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        wa = a >= 0 and ((R[a, OPW] >> 9) & 1) == 1
        wb = b >= 0 and ((R[b, OPW] >> 9) & 1) == 1
        wc = c >= 0 and ((R[c, OPW] >> 9) & 1) == 1
        if wa:
            _touch(grads, goff, R, touched, a)
        if wb:
            _touch(grads, goff, R, touched, b)
        if wc:
            _touch(grads, goff, R, touched, c)
        va = vals[R[a, VOFF]:R[a, VOFF] + R[a, SIZE]] if (a >= 0 and R[a, VOFF] >= 0) else empty
        vo = vals[R[r, VOFF]:R[r, VOFF] + n] if R[r, VOFF] >= 0 else empty
        ga = grads[goff[a]:goff[a] + R[a, SIZE]] if wa else empty

        if op < ADD:  # unary elementwise
            if wa:
                _vjp_unary(op, n, go, va, vo, F[r, F0], F[r, F1], ga)
        elif op <= WHERE:
            vb = vals[R[b, VOFF]:R[b, VOFF] + R[b, SIZE]] if R[b, VOFF] >= 0 else empty
            gb = grads[goff[b]:goff[b] + R[b, SIZE]] if wb else empty
            ida = _same_shape(R, a, r)
            idb = _same_shape(R, b, r)
            ma = noidx if ida else _bcast_map(R, r, a)
            mb = noidx if idb else _bcast_map(R, r, b)
            vc = empty
            mc = noidx
            idc = True
            if op == WHERE:
                vc = vals[R[c, VOFF]:R[c, VOFF] + R[c, SIZE]]
                idc = _same_shape(R, c, r)
                mc = noidx if idc else _bcast_map(R, r, c)
            _vjp_binary(op, n, go, va, vb, vc, vo, ga, gb, ma, mb, mc, ida, idb, idc, wa, wb)
        elif op == SUM or op == MEAN:
            if wa:
                scale = 1.0 if op == SUM else F[r, F0]
                na = R[a, SIZE]
                if n == 1:
                    g0 = go[0] * scale
                    for i in range(na):
                        ga[i] += g0
                else:
                    m = _reduce_map(R, a, R[r, P0])
                    for i in range(na):
                        ga[i] += go[m[i]] * scale
        elif op == EXTREME:
            if wa:
                na = R[a, SIZE]
                cnt = 0
                for i in range(na):
                    if va[i] == vo[0]:
                        cnt += 1
                share = go[0] / max(cnt, 1)
                for i in range(na):
                    if va[i] == vo[0]:
                        ga[i] += share
        elif op == GATHER:
            if wa:
                io = R[r, P0]
                for i in range(n):
                    ga[iar[io + i]] += go[i]
        elif op == RESHAPE:
            if wa:
                for i in range(n):
                    ga[i] += go[i]
        elif op == CAT:
            io = R[r, P0]
            k = iar[io]
            outer = iar[io + 1]
            inner = iar[io + 2]
            mtot = iar[io + 3]
            for q in range(k):
                s = iar[io + 4 + 3 * q]
                mid = iar[io + 5 + 3 * q]
                off = iar[io + 6 + 3 * q]
                if ((R[s, OPW] >> 9) & 1) == 0:
                    continue
                _touch(grads, goff, R, touched, s)
                gs = goff[s]
                for o in range(outer):
                    for m in range(mid):
                        src = (o * mtot + off + m) * inner
                        dst = gs + (o * mid + m) * inner
                        for j in range(inner):
                            grads[dst + j] += go[src + j]
        elif op == SOFTMAX or op == LOGSOFTMAX:
            if wa:
                _vjp_softmax(op == LOGSOFTMAX, n, R[r, P0], R[r, P1], go, vo, ga)
        elif op == BCEWL:
            vb = vals[R[b, VOFF]:R[b, VOFF] + R[b, SIZE]]
            gb = grads[goff[b]:goff[b] + R[b, SIZE]] if wb else empty
            has_pw = c >= 0
            vc = vals[R[c, VOFF]:R[c, VOFF] + R[c, SIZE]] if has_pw else empty
            gc = grads[goff[c]:goff[c] + R[c, SIZE]] if wc else empty
            mpw = _bcast_map(R, a, c) if has_pw else noidx
            _vjp_bcewl(R[a, SIZE], go, R[r, P1] == 1, F[r, F0], va, vb, vc, mpw, has_pw,
                       ga, gb, gc, wa, wb, wc)
        elif op == NLL:
            if wa:
                io = R[r, P0]
                cnt = R[r, P1]
                coef = vals[R[b, VOFF]:R[b, VOFF] + cnt]
                reduced = F[r, F0] != 0.0
                for k in range(cnt):
                    g = go[0] if reduced else go[k]
                    ga[iar[io + k]] -= coef[k] * g
        else:
            return ST_BADOP, r
    return ST_DONE, -1


# ---- bookkeeping kernels ------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def grad_offsets(R, n, goff):
    """Lay out one gradient buffer per dtype; returns the two buffer sizes."""
    t0 = 0
    t1 = 0
    for r in range(n):
        sz = R[r, SIZE]
        if (R[r, OPW] >> 8) & 1:
            goff[r] = t1
            t1 += sz
        else:
            goff[r] = t0
            t0 += sz
    return t0, t1


@njit(cache=True, nogil=True)
def mark_live(R, iar, rc, freed, n, keep):
    """keep[r] = 1 for every record a live, not yet freed tensor can still reach."""
    any_live = False
    for r in range(n - 1, -1, -1):
        if rc[r] > 0 and freed[r] == 0:
            keep[r] = 1
        if keep[r] == 0:
            continue
        any_live = True
        if freed[r] != 0:
            continue
        for s in (R[r, A], R[r, B], R[r, C]):
            if s >= 0:
                keep[s] = 1
        if (R[r, OPW] & 255) == CAT:
            io = R[r, P0]
            for q in range(iar[io]):
                keep[iar[io + 4 + 3 * q]] = 1
    return any_live


@njit(cache=True, nogil=True)
def compact(R, iar, keep, n, vals32, vals64, new32, new64, newiar, newidx):
    """Move kept records to the front, keeping order; saved values and index blocks are
    copied into fresh arenas. Returns (kept records, arena tops for f32, f64, index)."""
    k = 0
    for r in range(n):
        if keep[r]:
            newidx[r] = k
            k += 1
        else:
            newidx[r] = -1
    t32 = 0
    t64 = 0
    ti = 0
    for r in range(n):
        if not keep[r]:
            continue
        j = newidx[r]
        for f in range(NFIELDS):
            R[j, f] = R[r, f]
        for f in (A, B, C):
            s = R[j, f]
            if s >= 0:
                R[j, f] = newidx[s]   # -1 only under a freed record, whose VJP never runs
        vo = R[j, VOFF]
        if vo >= 0:
            sz = R[j, SIZE]
            if (R[j, OPW] >> 8) & 1:
                for i in range(sz):
                    new64[t64 + i] = vals64[vo + i]
                R[j, VOFF] = t64
                t64 += sz
            else:
                for i in range(sz):
                    new32[t32 + i] = vals32[vo + i]
                R[j, VOFF] = t32
                t32 += sz
        op = R[j, OPW] & 255
        if op == GATHER or op == CAT or op == NLL:
            io = R[j, P0]
            ln = R[j, P1]
            for i in range(ln):
                newiar[ti + i] = iar[io + i]
            if op == CAT:
                for q in range(iar[io]):
                    newiar[ti + 4 + 3 * q] = newidx[newiar[ti + 4 + 3 * q]]
            R[j, P0] = ti
            ti += ln
    return k, t32, t64, ti
