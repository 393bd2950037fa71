"""Replay: the forward pass of a recorded tape in compiled code, recomputing every record's
value from its inputs' values."""
import numpy as np
from numba import njit

from .schema import _U, A, B, C, dtype_of, F0, F1, op_of, OPW, P0, P1, SIZE, VOFF
from .opcodes import (ADD, ADDC, BCE, BCEWL, CAT, COS, DEAD, EXP, EXTREME, FIRST_PY, GATHER,
    INPUT, LOG, LOGSOFTMAX, MATMUL, MEAN, MULC, NEG, NLL, RESHAPE, SCATTER, SIGMOID, SIN,
    SOFTMAX, ST_BADOP, ST_DEAD, ST_DONE, ST_PYTHON, SUM, TANH, TRANSPOSE, UNARY_END, UVJP,
    WHERE)
from .elementwise import _bin, _du1, _lit, _un, tanh32, tanh64, VEC
from .maps import _bcast_map, _reduce_map, _transpose
from .fused import _bce
from .blas import _gemm, _mm, _mm_dims, _NO_TRANS, MM_BLAS, MM_LOOPS


NUMPY_UFUNC = 1024   # replay hands transcendental records at least this large to numpy


@njit(inline="always")
def to_numpy(op, n, dt):
    """Does replay hand this record to numpy's SIMD ufunc? Large transcendental records of
    dtype code dt, except float32 tanh, whose tanh32 loop vectorises here."""
    if n < NUMPY_UFUNC or (op == TANH and dt == 0):
        return False
    return op == TANH or op == EXP or op == LOG or op == SIN or op == COS or op == SIGMOID


@njit(cache=True, nogil=True, error_model="numpy")
def _linear(R, F, r, X, V, iar):
    """Apply linear record r (SUM, MEAN, GATHER, RESHAPE, TRANSPOSE, SCATTER, CAT, NLL) to
    the buffer X:
    values in forward(), tangents in tangent(). Constants (NLL's weights) come from V."""
    op = op_of(R[r, OPW])
    n = R[r, SIZE]
    vo = R[r, VOFF]
    a = R[r, A]
    va = R[a, VOFF] if a >= 0 else -1
    if op == SUM or op == MEAN:
        scale = 1.0 if op == SUM else F[r, F0]
        na = R[a, SIZE]
        for i in range(n):
            X[vo + i] = 0
        if n == 1:
            acc = 0.0
            for i in range(na):
                acc += X[va + i]
            X[vo] = acc * scale
        else:
            m = _reduce_map(R, a, R[r, P0])
            for i in range(na):
                X[vo + m[i]] += X[va + i]
            if op == MEAN:
                for i in range(n):
                    X[vo + i] *= scale
    elif op == GATHER:
        io = R[r, P0]
        for i in range(n):
            X[vo + i] = X[va + iar[io + i]]
    elif op == RESHAPE:
        for i in range(n):
            X[vo + i] = X[va + i]
    elif op == TRANSPOSE:
        _transpose(X, va, X, vo, n, R[r, P0], R[r, P1], False)
    elif op == SCATTER:
        io = R[r, P0]
        for i in range(n):
            X[vo + i] = 0
        for i in range(R[a, SIZE]):
            X[vo + iar[io + i]] += X[va + i]
    elif op == NLL:
        io = R[r, P0]
        cnt = R[r, P1]
        vb = R[R[r, B], VOFF]
        if F[r, F0] != 0.0:
            acc = 0.0
            for k in range(cnt):
                acc -= V[vb + k] * X[va + iar[io + k]]
            X[vo] = acc
        else:
            for k in range(cnt):
                X[vo + k] = -V[vb + k] * X[va + iar[io + k]]
    elif op == CAT:   # (the callers pass only the ops above: no other op runs CAT's code)
        io = R[r, P0]
        outer = iar[io + 1]
        inner = iar[io + 2]
        mtot = iar[io + 3]
        for q in range(iar[io]):
            s = iar[io + 4 + 3 * q]
            mid = iar[io + 5 + 3 * q]
            off = iar[io + 6 + 3 * q]
            xs = R[s, VOFF]
            for o in range(outer):
                for m in range(mid):
                    dst = vo + (o * mtot + off + m) * inner
                    src = xs + (o * mid + m) * inner
                    for j in range(inner):
                        X[dst + j] = X[src + j]


@njit(cache=True, nogil=True, error_model="numpy")
def _scalar_chain(R, F, V, r, stop, dt):
    """Run one-element unary records from r on (a scalar model's forward), passing each
    value to the next record in a register rather than through V, whose store-to-load
    round trip would sit on the chain's critical path. Returns the first record it did
    not run. A small function of its own: inside forward() the register is spilled."""
    last = V[R[r, VOFF]]       # only typed here: last_at starts past the end of V
    last_at = _U(V.shape[0])   # every index here is unsigned (no wrap-around test)
    while r < stop:
        u = _U(r)
        w = R[u, OPW]
        op = op_of(w)
        if op < NEG or op >= UNARY_END or R[u, SIZE] != 1 or dtype_of(w) != dt:
            break
        va = _U(R[_U(R[u, A]), VOFF])
        vo = _U(R[u, VOFF])
        x = last if va == last_at else V[va]
        f0 = F[u, F0]
        if op == ADDC:
            y = x + _lit(x, f0)
        elif op == MULC:
            y = x * _lit(x, f0)
        elif op == TANH:
            y = tanh32(x) if V.itemsize == 4 else np.tanh(x)
        else:
            y = _lit(x, _un(op, x, f0, F[u, F1]))
        V[vo] = y
        last = V[vo]            # the compiler keeps the value just stored in a register
        last_at = vo
        r += 1
    return r


@njit(cache=True, nogil=True, error_model="numpy")
def forward(R, F, V, iar, start, stop, dt, gemm):
    """Recompute records start..stop-1 in order into V (every record has a VOFF here).

    Returns (status, record): ST_PYTHON for a record Python must run (a batched matmul, a
    cast, a record of the other dtype), ST_DONE at the end. Elementwise code is written
    inline, as in sweep(); gemm as in sweep().
    """
    noidx = np.empty(0, np.int64)
    r = start - 1
    while r + 1 < stop:
        r += 1
        w = R[r, OPW]
        op = op_of(w)
        if op == INPUT:
            continue
        if op == DEAD:
            return ST_DEAD, r
        if NEG <= op < UNARY_END and R[r, SIZE] == 1 and dtype_of(w) == dt and r + 1 < stop \
                and R[r + 1, SIZE] == 1:
            r = _scalar_chain(R, F, V, r, stop, dt) - 1     # runs at least record r
            continue
        if op == MATMUL and dtype_of(w) == dt:
            mm, mk, mn, how = _mm_dims(R, r, gemm[dt])
            pa, pb, po = R[R[r, A], VOFF], R[R[r, B], VOFF], R[r, VOFF]
            if how == MM_LOOPS:
                _mm(V, pa, V, pb, V, po, mm, mk, mn, False)
                continue
            if how == MM_BLAS:
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mm, mn, mk, V, pa, mk, V, pb, mn, 0.0, V,
                      po, mn)
                continue
        if op >= FIRST_PY or dtype_of(w) != dt:
            return ST_PYTHON, r
        n = R[r, SIZE]
        if to_numpy(op, n, dt):
            return ST_PYTHON, r     # numpy's vectorised transcendental functions
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        va = R[a, VOFF] if a >= 0 else -1
        if NEG <= op < UNARY_END:
            f0 = F[r, F0]
            f1 = F[r, F1]
            c0 = _lit(V, f0)        # as numpy does: float32 data, float32 constant
            if op == ADDC:          # own loops over unsigned offsets, as in sweep()
                for i in range(_U(n)):
                    V[_U(vo) + i] = V[_U(va) + i] + c0
            elif op == MULC:
                for i in range(_U(n)):
                    V[_U(vo) + i] = V[_U(va) + i] * c0
            elif op == TANH:
                if V.itemsize == 4:
                    for i in range(_U(n)):
                        V[_U(vo) + i] = tanh32(V[_U(va) + i])
                else:
                    for i in range(_U(n)):
                        V[_U(vo) + i] = tanh64(V[_U(va) + i])
            elif op == NEG:
                for i in range(_U(n)):
                    V[_U(vo) + i] = c0 - V[_U(va) + i]
            elif n >= VEC:     # views let the opcode-tested loop vectorise too
                xv = V[va:va + n]
                zv = V[vo:vo + n]
                for i in range(n):
                    zv[i] = _un(op, xv[i], f0, f1)
            else:
                for i in range(n):
                    V[vo + i] = _un(op, V[va + i], f0, f1)
        elif ADD <= op <= WHERE:
            bc = R[r, P0]
            vb = R[b, VOFF]
            if op != WHERE and (bc == 0 or (bc & 24 and (bc & 7) == (bc >> 3 & 3))):
                # same shapes, or a bias row: (rows, inner) with the row input indexed by j
                inner = n if bc == 0 else (R[a, SIZE] if bc & 1 else R[b, SIZE])
                sa = 0 if bc & 1 else inner
                sb = 0 if bc & 2 else inner
                for o in range(n // inner if inner else 0):
                    xo, yo, zo = _U(va + o * sa), _U(vb + o * sb), _U(vo + o * inner)
                    for j in range(_U(inner)):     # unsigned offsets, as in the unary loops
                        V[zo + j] = _bin(op, V[xo + j], V[yo + j])
                continue
            ma = _bcast_map(R, r, a) if bc & 1 else noidx
            mb = _bcast_map(R, r, b) if bc & 2 else noidx
            if op == WHERE:
                vc = R[c, VOFF]
                mc = _bcast_map(R, r, c) if bc & 4 else noidx
                for i in range(n):
                    cnd = V[vc + (mc[i] if bc & 4 else i)]
                    V[vo + i] = V[va + (ma[i] if bc & 1 else i)] if cnd != 0 \
                        else V[vb + (mb[i] if bc & 2 else i)]
                continue
            for i in range(n):
                V[vo + i] = _bin(op, V[va + (ma[i] if bc & 1 else i)],
                                 V[vb + (mb[i] if bc & 2 else i)])
        elif op == SUM or op == MEAN or op == GATHER or op == RESHAPE or op == SCATTER \
                or op == CAT or op == NLL or op == TRANSPOSE:
            _linear(R, F, r, V, V, iar)
        elif op == EXTREME:
            best = V[va]
            for i in range(1, R[a, SIZE]):
                x = V[va + i]
                if x != x or best != best:
                    best = x if x != x else best
                elif (x > best) if R[r, P0] == 1 else (x < best):
                    best = x
            V[vo] = best
        elif op == SOFTMAX or op == LOGSOFTMAX:
            D = R[r, P0]
            inner = R[r, P1]
            outer = n // (D * inner) if D * inner > 0 else 0
            for o in range(outer):
                for j in range(inner):
                    base = o * D * inner + j
                    mx = -np.inf
                    for q in range(D):
                        mx = max(mx, V[va + base + q * inner])
                    tot = 0.0
                    for q in range(D):
                        tot += np.exp(V[va + base + q * inner] - mx)
                    lt = np.log(tot)
                    for q in range(D):
                        k = base + q * inner
                        z = V[va + k] - mx
                        V[vo + k] = z - lt if op == LOGSOFTMAX else np.exp(z) / tot
        elif op == BCEWL or op == BCE:
            _bce(R, F, r, V, V, False)
        elif op == UVJP:     # a * du(x, y): the unary op's VJP rule
            fop = R[r, P0]
            f0 = F[r, F0]
            f1 = F[r, F1]
            vb = R[b, VOFF] if b >= 0 else -1
            vc = R[c, VOFF] if c >= 0 else -1
            for i in range(n):
                V[vo + i] = _du1(fop, V[va + i], V[vb + i] if vb >= 0 else 0.0,
                                 V[vc + i] if vc >= 0 else 0.0, f0, f1)
        else:
            return ST_BADOP, r
    return ST_DONE, -1
