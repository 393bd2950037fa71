"""Forward mode: the tangent sweep, a Jacobian-vector product over the same records."""
import numpy as np
from numba import njit

from .schema import A, B, C, dtype_of, F0, F1, op_of, OPW, P0, P1, SIZE, VOFF
from .opcodes import (ADD, BCE, BCEWL, CAT, DEAD, EXTREME, FIRST_PY, GATHER, INPUT, LOGSOFTMAX,
    MATMUL, MEAN, NEG, NLL, RESHAPE, SCATTER, SOFTMAX, ST_BADOP, ST_DEAD, ST_DONE, ST_PYTHON,
    SUM, TRANSPOSE, UNARY_END, UVJP, WHERE)
from .elementwise import _d2u, _db, _du, _du1
from .maps import _bcast_map
from .fused import _bce
from .blas import _gemm, _mm, _mm_dims, _NO_TRANS, MM_BLAS, MM_LOOPS
from .forward import _linear


@njit(cache=True, nogil=True, error_model="numpy")
def tangent(R, F, V, T, iar, start, stop, dt, gemm):
    """Propagate tangents T (laid out like V) through records start..stop-1 in order.

    Every record's tangent is the JVP of its op at the values in V; records a tangent never
    reached hold zeros. Returns (status, record) like forward().
    """
    noidx = np.empty(0, np.int64)
    for r in range(start, stop):
        w = R[r, OPW]
        op = op_of(w)
        if op == INPUT:
            continue
        if op == DEAD:
            return ST_DEAD, r
        if op == MATMUL and dtype_of(w) == dt:
            mm, mk, mn, how = _mm_dims(R, r, gemm[dt])
            pa, pb, po = R[R[r, A], VOFF], R[R[r, B], VOFF], R[r, VOFF]
            if how == MM_LOOPS:    # d(a @ b) = da @ b + a @ db
                _mm(T, pa, V, pb, T, po, mm, mk, mn, False)
                _mm(V, pa, T, pb, T, po, mm, mk, mn, True)
                continue
            if how == MM_BLAS:
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mm, mn, mk, T, pa, mk, V, pb, mn, 0.0, T,
                      po, mn)
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mm, mn, mk, V, pa, mk, T, pb, mn, 1.0, T,
                      po, mn)
                continue
        if op >= FIRST_PY or dtype_of(w) != dt:
            return ST_PYTHON, r
        n = R[r, SIZE]
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        va = R[a, VOFF] if a >= 0 else -1
        if NEG <= op < UNARY_END:
            f0 = F[r, F0]
            f1 = F[r, F1]
            for i in range(n):
                t = T[va + i]
                x = V[va + i]
                y = V[vo + i]
                # a zero tangent adds nothing (see the binary ops below); otherwise the
                # op's VJP rule, which is its (scalar, so self-adjoint) linear map
                d = 0.0 if t == 0 else _du(op, t, x, y, f0, f1)
                T[vo + i] = d
        elif ADD <= op <= WHERE:
            bc = R[r, P0]
            ma = _bcast_map(R, r, a) if bc & 1 else noidx
            mb = _bcast_map(R, r, b) if bc & 2 else noidx
            vb = R[b, VOFF]
            mc = noidx
            vc = -1
            if op == WHERE:
                vc = R[c, VOFF]
                mc = _bcast_map(R, r, c) if bc & 4 else noidx
            for i in range(n):
                ia = va + (ma[i] if bc & 1 else i)
                ib = vb + (mb[i] if bc & 2 else i)
                ta = T[ia]
                tb = T[ib]
                x = V[ia]
                y = V[ib]
                if op == WHERE:
                    d = ta if V[vc + (mc[i] if bc & 4 else i)] != 0 else tb
                else:
                    # the op's VJP rule, each input's half applied to its tangent; a zero
                    # tangent adds nothing, not 0 * a partial that is inf or NaN (a
                    # constant's, which PyTorch's forward mode leaves out; jacfwd's other
                    # columns), so jvp agrees with the reverse sweep, which skips them too
                    d = 0.0
                    if ta != 0:
                        d += _db(op, ta, x, y, V[vo + i], 0.0)[0]
                    if tb != 0:
                        d += _db(op, tb, x, y, V[vo + i], 0.0)[1]
                T[vo + i] = d
        elif op == SUM or op == MEAN or op == GATHER or op == RESHAPE or op == SCATTER \
                or op == CAT or op == NLL or op == TRANSPOSE:
            _linear(R, F, r, T, V, iar)   # linear ops: the tangent map is the op itself
        elif op == EXTREME:
            best = V[vo]
            cnt = 0
            acc = 0.0
            for i in range(R[a, SIZE]):
                if V[va + i] == best:
                    cnt += 1
                    acc += T[va + i]
            T[vo] = acc / max(cnt, 1)
        elif op == SOFTMAX or op == LOGSOFTMAX:
            D = R[r, P0]
            inner = R[r, P1]
            outer = n // (D * inner) if D * inner > 0 else 0
            for o in range(outer):
                for j in range(inner):
                    base = o * D * inner + j
                    acc = 0.0
                    for q in range(D):
                        k = base + q * inner
                        acc += T[va + k] * (np.exp(V[vo + k]) if op == LOGSOFTMAX else V[vo + k])
                    for q in range(D):
                        k = base + q * inner
                        if op == LOGSOFTMAX:
                            T[vo + k] = T[va + k] - acc
                        else:
                            T[vo + k] = V[vo + k] * (T[va + k] - acc)
        elif op == BCEWL or op == BCE:
            _bce(R, F, r, V, T, True)
        elif op == UVJP:     # linear in a; x and y through the rule's partials (_d2u)
            fop = R[r, P0]
            f0 = F[r, F0]
            f1 = F[r, F1]
            vb = R[b, VOFF] if b >= 0 else -1
            vc = R[c, VOFF] if c >= 0 else -1
            for i in range(n):
                x = V[vb + i] if vb >= 0 else 0.0
                y = V[vc + i] if vc >= 0 else 0.0
                ta = T[va + i]
                tb = T[vb + i] if vb >= 0 else 0.0
                tc = T[vc + i] if vc >= 0 else 0.0
                d = 0.0 if ta == 0 else _du1(fop, ta, x, y, f0, f1)
                if tb != 0 or tc != 0:
                    dx, dy = _d2u(fop, V[va + i], x, y, f0, f1)
                    if tb != 0:
                        d += dx * tb
                    if tc != 0:
                        d += dy * tc
                T[vo + i] = d
        else:
            return ST_BADOP, r
    return ST_DONE, -1
