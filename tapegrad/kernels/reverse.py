"""The reverse sweep: walk records newest first, accumulating each one's VJP into its
inputs' gradient buffers (``+=``), in one compiled call per backward.

The driver ``sweep`` is a loop and a switch on the opcode family; each case is a function
of its own below, taking the arithmetic from the op's rule (elementwise.py) or its kernel
(fused.py, blas.py)."""
import numpy as np
from numba import njit

from .schema import (_U, A, B, C, dtype_of, F0, F1, ndim_of, op_of, OPW, P0, P1, rg_of, SIZE,
                     VOFF)
from .opcodes import (ADD, ADDC, BCE, BCEWL, CAT, DEAD, EXTREME, FIRST_PY, GATHER, INPUT,
    LOGSOFTMAX, MATMUL, MEAN, MUL, MULC, NEG, NLL, R_A, R_B, R_C, R_OUT, RELU, RESHAPE,
    SCATTER, SOFTMAX, ST_BADOP, ST_CHAIN, ST_DEAD, ST_DIRTY, ST_DONE, ST_FREED, ST_PYTHON, SUB,
    SUM, TANH, TRANSPOSE, UNARY_END, UVJP, WHERE)
from .elementwise import _d2u, _db, _du, _du1, _lit, VEC
from .maps import _bcast_map, _reduce_map, _transpose
from .fused import _vjp_bce, _vjp_softmax
from .blas import _gemm, _mm_dims, _mm_vjp, _NO_TRANS, _TRANS, MM_BLAS, MM_LOOPS, MM_NUMPY


@njit(cache=True, nogil=True, error_model="numpy")
def _scalar_chain_vjp(R, F, V, G, goff, touched, freed, r, stop, dt):
    """The sweep's half of _scalar_chain (below): one-element unary records from r down,
    each gradient passed to the next record in a register. Stops at the first record that
    needs more (another op, size or dtype, a freed record) and returns it; the sweep's
    rules (untouched records skipped, an input zeroed when first reached) are the same."""
    last = G[goff[r]]          # only typed here: last_at starts past the end of G
    last_at = _U(G.shape[0])   # every index here is unsigned (no wrap-around test)
    while r >= stop:
        u = _U(r)
        if touched[u] == 0:
            r -= 1
            continue
        w = R[u, OPW]
        op = op_of(w)
        if op < NEG or op >= UNARY_END or R[u, SIZE] != 1 or dtype_of(w) != dt \
                or freed[u] != 0:
            break
        a = _U(R[u, A])
        if rg_of(R[a, OPW]):
            go = _U(goff[u])
            ga = _U(goff[a])
            g = last if go == last_at else G[go]
            # the sweep's small-record loops' expressions, in the gradient's dtype (in
            # float32 an ulp or two from the loops, which round once from float64)
            if op == ADDC:
                d = g
            elif op == MULC:
                d = g * _lit(g, F[u, F0])
            elif op == TANH:
                y = V[_U(R[u, VOFF])]
                d = g * (_lit(g, 1.0) - y * y)
            elif op == NEG:
                d = -g
            else:
                va = R[a, VOFF]
                vo = R[u, VOFF]
                d = _lit(g, _du1(op, np.float64(g), V[_U(va)] if va >= 0 else 0.0,
                                 V[_U(vo)] if vo >= 0 else 0.0, F[u, F0], F[u, F1]))
            # the first contribution is stored, not added to a zeroed slot: the add would
            # lengthen the chain's critical path (the loops' 0 + d differs only for
            # d = -0.0, which reads +0.0 there)
            if touched[a] == 0:
                touched[a] = 1
            else:
                d = G[ga] + d
            G[ga] = d
            last = d
            last_at = ga
        r -= 1
    return r


@njit(cache=True, nogil=True, error_model="numpy")
def sweep(R, F, V, G, goff, touched, freed, dirty_at, reads, iar, start, stop, dt, gemm,
          plan_at):
    """Walk records start, start-1, ..., stop backwards, accumulating VJPs into G.

    V is the value arena and G the gradient buffer of dtype dt; gemm holds the cblas_?gemm
    addresses (kernels.blas.GEMM). plan_at is plan_chains' map of decoded scalar chains
    of a sweep from start to 0 that went this way before, or empty. Returns (status,
    record). ST_PYTHON asks the caller to run that record in Python (a matrix product
    compiled code cannot run, a dtype change, or a record of the other dtype) and call
    again below it; ST_CHAIN, to run the decoded chain starting at that record (done
    there, not here, so that an eager sweep does not compile it).
    """
    has_dirty = dirty_at.shape[0] > 0
    planned = plan_at.shape[0] > 0 and stop == 0
    noidx = np.empty(0, np.int64)
    r = start + 1
    while r - 1 >= stop:
        r -= 1
        if touched[r] == 0:
            continue
        if planned and plan_at[r] >= 0:
            return ST_CHAIN, r
        w = R[r, OPW]
        op = op_of(w)
        if op == INPUT:
            continue
        if NEG <= op < UNARY_END and not has_dirty and R[r, SIZE] == 1 and dtype_of(w) == dt \
                and freed[r] == 0 and r - 1 >= stop and R[r - 1, SIZE] == 1:
            r = _scalar_chain_vjp(R, F, V, G, goff, touched, freed, r, stop, dt) + 1
            continue
        if op == DEAD:
            return ST_DEAD, r
        if freed[r] != 0:
            return ST_FREED, r
        # before any hand-back to Python: a matmul VJP that numpy runs reads saved values too
        if has_dirty and _stale(R, r, reads[op], dirty_at):
            return ST_DIRTY, r
        how = MM_NUMPY
        if op == MATMUL and dtype_of(w) == dt:
            how = _mm_how(R, r, gemm[dt])
        if (op >= FIRST_PY and how == MM_NUMPY) or dtype_of(w) != dt:
            return ST_PYTHON, r
        # zero each input's gradient the first time anything flows into it (written out
        # here: a helper taking arrays costs reference counting on every call); a BLAS
        # product writes its first contribution itself (beta = 0): no zeroing pass
        for s in (R[r, A], R[r, B], R[r, C]):
            if s >= 0 and touched[s] == 0 and rg_of(R[s, OPW]) and how != MM_BLAS:
                o = _U(goff[s])
                for i in range(_U(R[s, SIZE])):
                    G[o + i] = 0
                touched[s] = 1
        # the switch: each family's VJP, from the op's rule or its kernel. The elementwise
        # families are written out here, not called: at W2's 3,000 records of 16 elements a
        # call per record cost 13 ns more per record, and Numba's inline="always" 5 ns
        n = R[r, SIZE]
        go = goff[r]
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        wa = a >= 0 and rg_of(R[a, OPW]) == 1
        wb = b >= 0 and rg_of(R[b, OPW]) == 1
        va = R[a, VOFF] if a >= 0 else -1
        ga = goff[a] if a >= 0 else -1
        if NEG <= op < UNARY_END:  # unary elementwise
            if not wa:
                continue
            f0 = F[r, F0]
            f1 = F[r, F1]
            # the common ops get loops of their own, with no opcode test per element, over
            # unsigned offsets: for a signed index Numba adds a negative-index wrap-around
            # test to each access, which keeps the compiler from vectorising (W2: 44 -> 18 us)
            if op == ADDC:
                for i in range(_U(n)):
                    G[_U(ga) + i] += G[_U(go) + i]
            elif op == MULC:
                for i in range(_U(n)):
                    G[_U(ga) + i] += G[_U(go) + i] * f0
            elif op == TANH:
                for i in range(_U(n)):
                    y = V[_U(vo) + i]
                    G[_U(ga) + i] += G[_U(go) + i] * (1 - y * y)
            elif op == RELU:   # rules.py's relu: exactly 0 where y <= 0, g at NaN
                for i in range(_U(n)):
                    G[_U(ga) + i] += 0.0 if V[_U(vo) + i] <= 0 else G[_U(go) + i]
            elif op == NEG:
                for i in range(_U(n)):
                    G[_U(ga) + i] -= G[_U(go) + i]
            elif n >= VEC:
                # separate views let the compiler vectorise the opcode-tested loop too (they
                # cost reference counting, which only pays off on larger records)
                gv = G[go:go + n]
                dv = G[ga:ga + n]
                xv = V[va:va + n] if va >= 0 else gv
                yv = V[vo:vo + n] if vo >= 0 else gv
                for i in range(n):
                    dv[i] += _du(op, gv[i], xv[i], yv[i], f0, f1)
            else:
                for i in range(n):
                    x = V[va + i] if va >= 0 else 0.0
                    y = V[vo + i] if vo >= 0 else 0.0
                    G[ga + i] += _du(op, G[go + i], x, y, f0, f1)
        elif ADD <= op <= WHERE:
            bc = R[r, P0]   # bit k set: input k was broadcast (its shape differs from out)
            vb = R[b, VOFF]
            gb = goff[b]
            vc = R[c, VOFF] if op == WHERE else -1
            if bc == 0 and (op == ADD or op == SUB or op == MUL):   # same shapes: no opcode test
                if wa:
                    if op == MUL:
                        for i in range(_U(n)):
                            G[_U(ga) + i] += G[_U(go) + i] * V[_U(vb) + i]
                    else:
                        for i in range(_U(n)):
                            G[_U(ga) + i] += G[_U(go) + i]
                if wb:
                    if op == MUL:
                        for i in range(_U(n)):
                            G[_U(gb) + i] += G[_U(go) + i] * V[_U(va) + i]
                    elif op == SUB:
                        for i in range(_U(n)):
                            G[_U(gb) + i] -= G[_U(go) + i]
                    else:
                        for i in range(_U(n)):
                            G[_U(gb) + i] += G[_U(go) + i]
                continue
            if bc == 0 and n >= VEC:
                gv = G[go:go + n]
                xv = V[va:va + n] if va >= 0 else gv
                yv = V[vb:vb + n] if vb >= 0 else gv
                ov = V[vo:vo + n] if vo >= 0 else gv
                cv = V[vc:vc + n] if vc >= 0 else gv
                dav = G[ga:ga + n] if wa else gv
                dbv = G[gb:gb + n] if wb else gv
                for i in range(n):
                    da, db = _db(op, gv[i], xv[i], yv[i], ov[i], cv[i])
                    if wa:
                        dav[i] += da
                    if wb:
                        dbv[i] += db
                continue
            if bc & 24 and (bc & 7) == (bc >> 3 & 3):
                # one input repeats as a suffix of the output (a bias row): walk the output
                # as (rows, inner) and index that input by the position within a row
                inner = R[a, SIZE] if bc & 1 else R[b, SIZE]
                if op == ADD and inner > 0:     # x + bias: the commonest, as plain row loops
                    gx, gr = (gb, ga) if bc & 1 else (ga, gb)   # the full input, the row
                    wx, wr = (wb, wa) if bc & 1 else (wa, wb)
                    if wx:
                        for i in range(_U(n)):
                            G[_U(gx) + i] += G[_U(go) + i]
                    if wr:
                        for o in range(n // inner):
                            row = _U(go + o * inner)
                            for j in range(_U(inner)):
                                G[_U(gr) + j] += G[row + j]
                    continue
                for o in range(n // inner if inner else 0):
                    for j in range(inner):
                        i = o * inner + j
                        ia = j if bc & 1 else i
                        ib = j if bc & 2 else i
                        # an input whose value was not saved (its partial is not
                        # needed) reads a numpy zero: without JIT, 0.0 / 0.0 would raise
                        x = V[va + ia] if va >= 0 else np.float64(0.0)
                        y = V[vb + ib] if vb >= 0 else np.float64(0.0)
                        o_ = V[vo + i] if vo >= 0 else np.float64(0.0)
                        da, db = _db(op, G[go + i], x, y, o_, 0.0)
                        if wa:
                            G[ga + ia] += da
                        if wb:
                            G[gb + ib] += db
                continue
            # ma/mb/mc map each output element to its input element; empty: same shape
            ma = _bcast_map(R, r, a) if bc & 1 else noidx
            mb = _bcast_map(R, r, b) if bc & 2 else noidx
            mc = _bcast_map(R, r, c) if bc & 4 else noidx
            for i in range(n):
                ia = ma[i] if bc & 1 else i
                ib = mb[i] if bc & 2 else i
                x = V[va + ia] if va >= 0 else np.float64(0.0)   # (as above)
                y = V[vb + ib] if vb >= 0 else np.float64(0.0)
                o = V[vo + i] if vo >= 0 else np.float64(0.0)
                cnd = V[vc + (mc[i] if bc & 4 else i)] if vc >= 0 else 0.0
                da, db = _db(op, G[go + i], x, y, o, cnd)
                if wa:
                    G[ga + ia] += da
                if wb:
                    G[gb + ib] += db
        elif op == MATMUL:
            _vjp_matmul(R, F, V, G, goff, touched, r, dt, gemm, how)
        elif op == SUM or op == MEAN or op == EXTREME:
            _vjp_reduce(R, F, V, G, goff, r, op)
        elif op == GATHER or op == RESHAPE or op == SCATTER or op == CAT or op == TRANSPOSE:
            _vjp_move(R, G, goff, touched, iar, r, op)
        elif op == SOFTMAX or op == LOGSOFTMAX or op == BCE or op == BCEWL or op == NLL:
            _vjp_fused(R, F, V, G, goff, iar, r, op)
        elif op == UVJP:
            _vjp_uvjp(R, F, V, G, goff, r)
        else:
            return ST_BADOP, r
    return ST_DONE, -1


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_uvjp(R, F, V, G, goff, r):
    """A UVJP record (out = a * du(x, y) of unary op P0): d/da is the rule itself (it is
    linear in a), d/dx and d/dy its partials (_d2u), each times this record's gradient."""
    fop = R[r, P0]
    f0 = F[r, F0]
    f1 = F[r, F1]
    a = R[r, A]
    b = R[r, B]
    c = R[r, C]
    va = R[a, VOFF]
    vb = R[b, VOFF] if b >= 0 else -1
    vc = R[c, VOFF] if c >= 0 else -1
    wa = rg_of(R[a, OPW]) == 1
    wb = b >= 0 and rg_of(R[b, OPW]) == 1
    wc = c >= 0 and rg_of(R[c, OPW]) == 1
    go = goff[r]
    for i in range(R[r, SIZE]):
        g2 = G[go + i]
        x = V[vb + i] if vb >= 0 else 0.0
        y = V[vc + i] if vc >= 0 else 0.0
        if wa:
            G[goff[a] + i] += _du1(fop, g2, x, y, f0, f1)
        if wb or wc:
            dx, dy = _d2u(fop, V[va + i], x, y, f0, f1)
            if wb:
                G[goff[b] + i] += g2 * dx
            if wc:
                G[goff[c] + i] += g2 * dy


@njit(inline="always")
def _stale(R, r, rd, dirty_at):
    """Was a saved value that record r's VJP reads (bits rd) modified in place after r?"""
    if rd == 0:
        return False
    return ((rd & R_A) != 0 and r < dirty_at[R[r, A]]) \
        or ((rd & R_B) != 0 and r < dirty_at[R[r, B]]) \
        or ((rd & R_C) != 0 and r < dirty_at[R[r, C]]) or ((rd & R_OUT) != 0 and r < dirty_at[r])


@njit(cache=True, nogil=True)
def _mm_how(R, r, gemm):
    """How the sweep runs matmul record r's VJP: MM_LOOPS, MM_BLAS, or MM_NUMPY (Python)."""
    how = _mm_dims(R, r, gemm)[3]
    if R[R[r, A], VOFF] < 0 or R[R[r, B], VOFF] < 0:
        # operands off the tape (an eager product): BLAS reads them where numpy keeps
        # them, if the record has their addresses (P0, P1)
        return MM_BLAS if how == MM_BLAS and R[r, P0] != 0 and R[r, P1] != 0 else MM_NUMPY
    return how


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_matmul(R, F, V, G, goff, touched, r, dt, gemm, how):
    """Matrix product record r (1-D/2-D operands) by plain loops or numpy's BLAS (how).
    An eager product's operands are read where numpy keeps them; F0's bits say which of
    them is stored as its transpose, and whether b's gradient may skip b's TRANSPOSE
    record (ops/linalg.py)."""
    mm, mk, mn, _ = _mm_dims(R, r, gemm[dt])
    go = goff[r]
    a = R[r, A]
    b = R[r, B]
    va = R[a, VOFF]
    ga = goff[a]
    wa = rg_of(R[a, OPW]) == 1
    wb = rg_of(R[b, OPW]) == 1
    if how == MM_LOOPS:
        _mm_vjp(G, go, V, va, R[b, VOFF], ga, goff[b], mm, mk, mn, wa, wb)
    else:      # MM_BLAS (MM_NUMPY returned to Python above)
        # the operands' addresses: on the tape, or (eager) where numpy keeps them (P0/P1)
        pa, pb = R[r, P0], R[r, P1]
        flip = np.int64(F[r, F0])
        if va >= 0 and R[b, VOFF] >= 0:
            pa = np.int64(V.ctypes.data) + va * V.itemsize
            pb = np.int64(V.ctypes.data) + R[b, VOFF] * V.itemsize
            flip = 0
        if wa:   # ga (m x k) (+)= g (m x n) @ b.T; the first contribution writes
            beta = 1.0 if touched[a] else 0.0
            touched[a] = 1
            if flip & 2:        # b's memory is b.T (n x k)
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mm, mk, mn, G, go, mn, pb, 0, mk, beta,
                      G, ga, mk)
            else:
                _gemm(gemm[dt], _NO_TRANS, _TRANS, mm, mk, mn, G, go, mn, pb, 0, mn, beta, G,
                      ga, mk)
        s = R[b, A] if (flip & 6) == 6 and R[b, A] >= 0 else -1
        if wb and s >= 0 and op_of(R[b, OPW]) == TRANSPOSE and ndim_of(R[b, OPW]) == 2 \
                and ndim_of(R[s, OPW]) == 2 and rg_of(R[s, OPW]) == 1 \
                and dtype_of(R[s, OPW]) == dt:
            # b = w.t() (a TRANSPOSE record, as in Linear): gw (n x k) (+)= g.T @ a goes
            # straight into w's gradient, in w's layout, instead of into b's and then
            # through the TRANSPOSE's strided copy (b's other consumers, if any, still
            # reach w that way: gradients add). F0's bit 2 allows it; the engine clears
            # it when hooks, retain_grad or anomaly mode would look at b's own gradient.
            beta = 1.0 if touched[s] else 0.0
            touched[s] = 1
            if flip & 1:
                _gemm(gemm[dt], _TRANS, _TRANS, mn, mk, mm, G, go, mn, pa, 0, mm, beta, G,
                      goff[s], mk)
            else:
                _gemm(gemm[dt], _TRANS, _NO_TRANS, mn, mk, mm, G, go, mn, pa, 0, mk, beta,
                      G, goff[s], mk)
        elif wb:   # gb (k x n) (+)= a.T @ g
            beta = 1.0 if touched[b] else 0.0
            touched[b] = 1
            if flip & 1:        # a's memory is a.T (k x m)
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mk, mn, mm, pa, 0, mm, G, go, mn, beta,
                      G, goff[b], mn)
            else:
                _gemm(gemm[dt], _TRANS, _NO_TRANS, mk, mn, mm, pa, 0, mk, G, go, mn, beta, G,
                      goff[b], mn)


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_reduce(R, F, V, G, goff, r, op):
    """SUM, MEAN (over the dims in P0) and EXTREME (max/min: ties share the gradient)."""
    n = R[r, SIZE]
    go = goff[r]
    vo = R[r, VOFF]
    a = R[r, A]
    va = R[a, VOFF]
    ga = goff[a]
    wa = rg_of(R[a, OPW]) == 1
    if op == SUM or op == MEAN:
        if wa:
            scale = 1.0 if op == SUM else F[r, F0]
            na = R[a, SIZE]
            if n == 1:
                g0 = G[go] * scale
                dv = G[ga:ga + na]
                for i in range(na):
                    dv[i] += g0
            else:
                m = _reduce_map(R, a, R[r, P0])
                for i in range(na):
                    G[ga + i] += G[go + m[i]] * scale
    elif op == EXTREME:
        if wa:
            na = R[a, SIZE]
            best = V[vo]
            cnt = 0
            for i in range(na):
                if V[va + i] == best:
                    cnt += 1
            share = G[go] / max(cnt, 1)
            for i in range(na):
                if V[va + i] == best:
                    G[ga + i] += share


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_move(R, G, goff, touched, iar, r, op):
    """Data movement: GATHER and SCATTER by their index map, RESHAPE, TRANSPOSE, CAT into its
    inputs."""
    n = R[r, SIZE]
    go = goff[r]
    a = R[r, A]
    ga = goff[a] if a >= 0 else -1
    wa = a >= 0 and rg_of(R[a, OPW]) == 1
    if op == GATHER:
        if wa:
            io = R[r, P0]
            for i in range(n):
                G[ga + iar[io + i]] += G[go + i]
    elif op == RESHAPE:
        if wa:
            for i in range(n):
                G[ga + i] += G[go + i]
    elif op == TRANSPOSE:    # the transpose of a transpose: a's (P0 x P1) matrices back
        if wa:
            _transpose(G, go, G, ga, n, R[r, P1], R[r, P0], True)
    elif op == SCATTER:
        if wa:
            io = R[r, P0]
            for i in range(R[a, SIZE]):
                G[ga + i] += G[go + iar[io + i]]
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
            if rg_of(R[s, OPW]) == 0:
                continue
            gs = goff[s]
            if touched[s] == 0:
                for i in range(R[s, SIZE]):
                    G[gs + i] = 0
                touched[s] = 1
            for o in range(outer):
                for m in range(mid):
                    src = go + (o * mtot + off + m) * inner
                    dst = gs + (o * mid + m) * inner
                    for j in range(inner):
                        G[dst + j] += G[src + j]


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_fused(R, F, V, G, goff, iar, r, op):
    """The fused ops: softmax and log_softmax, binary cross entropy (on probabilities or
    with logits) and the negative log likelihood."""
    n = R[r, SIZE]
    go = goff[r]
    vo = R[r, VOFF]
    a = R[r, A]
    ga = goff[a]
    wa = rg_of(R[a, OPW]) == 1
    b = R[r, B]
    c = R[r, C]
    wb = b >= 0 and rg_of(R[b, OPW]) == 1
    wc = c >= 0 and rg_of(R[c, OPW]) == 1
    if op == SOFTMAX or op == LOGSOFTMAX:
        if wa:
            _vjp_softmax(op == LOGSOFTMAX, n, R[r, P0], R[r, P1], G, go, V, vo, ga)
    elif op == BCE or op == BCEWL:
        _vjp_bce(R, F, V, G, goff, r, wa, wb, wc)
    elif op == NLL:
        if wa:
            io = R[r, P0]
            cnt = R[r, P1]
            vb = R[b, VOFF]
            reduced = F[r, F0] != 0.0
            for k in range(cnt):
                g = G[go] if reduced else G[go + k]
                G[ga + iar[io + k]] -= V[vb + k] * g
