"""Decoded scalar chains: a replayed program's one-element unary records, decoded once into
rows the reverse sweep then runs without decoding records again."""
import numpy as np
from numba import njit

from .schema import _U, A, B, C, dtype_of, F0, F1, op_of, OPW, rg_of, SIZE, VOFF
from .opcodes import ADDC, MULC, NEG, TANH, UNARY_END
from .elementwise import _du1, _lit


@njit(inline="always")
def _scalar_unary(R, u, dt):
    """Is record u a one-element unary elementwise record of dtype code dt (a link of a
    scalar chain)? For plan_chains: the hot loops write the test out (as this inlined
    helper, it slowed forward() and sweep() by a third)."""
    w = R[u, OPW]
    op = op_of(w)
    return NEG <= op < UNARY_END and R[u, SIZE] == 1 and dtype_of(w) == dt


# ---- pre-decoded scalar chains ----------------------------------------------------------------
# A replayed program is swept the same way on every call: the same records are reached
# from the same output. Its scalar chains are decoded once (plan_chains, after a first
# sweep) into rows of what _scalar_chain_vjp reads, so that later sweeps skip the record
# decoding and the eligibility tests. A row whose gradient only the next row reads (its
# input has that one consumer, and is no leaf) passes it on in a register alone: no
# store, no touched flag; a row of x + c, which passes it on unchanged, is dropped.
# W3's reverse sweep: 8.7 us undecoded, 2.5 us decoded.
# A row: op | flags, then the output's offset in V, F0 (float64 bits), the output's and the
# input's gradient offsets, the input and the record (hot fields first).
PW, PVO, PF0, PGO, PGA, PA, PU = 0, 1, 2, 3, 4, 5, 6
NPLAN = 7
P_REG = 1 << 9     # the gradient in is the previous row's, still in a register
P_END = 1 << 10    # the chain's last row
P_KEEP = 1 << 11   # the input's gradient is read again (stored, touched set)


@njit(cache=True, nogil=True)
def plan_chains(R, goff, touched, n, dt):
    """Decode the scalar chains a sweep over records n-1..0 runs, given `touched` as that
    sweep left it (which records it reached). Returns (at, P): at[r] is the first row in P
    of the chain the sweep enters at record r, or -1. Mirrors _scalar_chain_vjp and the
    sweep's test for entering it; only chains of two or more rows are kept."""
    uses = np.zeros(n, np.int64)        # how many records read each slot
    at = np.empty(n, np.int64)
    for r in range(n):
        at[r] = -1
        if R[r, A] >= 0:
            uses[R[r, A]] += 1
        if R[r, B] >= 0:
            uses[R[r, B]] += 1
        if R[r, C] >= 0:
            uses[R[r, C]] += 1
    P = np.empty((n, NPLAN), np.int64)
    m = 0
    r = n - 1
    while r >= 1:
        if not (touched[r] and _scalar_unary(R, r, dt) and R[r - 1, SIZE] == 1):
            r -= 1
            continue
        k0 = m
        last_at = -1
        u = r
        while u >= 0:
            if touched[u] == 0:
                u -= 1
                continue
            if not _scalar_unary(R, u, dt) or R[u, VOFF] < 0:
                break
            a = R[u, A]
            if rg_of(R[a, OPW]):
                P[m, PW] = op_of(R[u, OPW]) | (P_REG if goff[u] == last_at else 0) | P_KEEP
                P[m, PVO] = R[u, VOFF]
                P[m, PF0] = R[u, F0]
                P[m, PGO] = goff[u]
                P[m, PGA] = goff[a]
                P[m, PA] = a
                P[m, PU] = u
                # the previous row's gradient goes only to this one: keep it in a register
                if m > k0 and P[m - 1, PA] == u and uses[u] == 1 and P[m, PW] & P_REG:
                    P[m - 1, PW] &= ~P_KEEP
                    if op_of(P[m - 1, PW]) == ADDC:
                        # which then passes it on unchanged: this row takes its place
                        w = (P[m, PW] & ~P_REG) | (P[m - 1, PW] & P_REG)
                        go = P[m - 1, PGO]
                        for f in range(NPLAN):
                            P[m - 1, f] = P[m, f]
                        P[m - 1, PW] = w
                        P[m - 1, PGO] = go
                        m -= 1
                last_at = goff[a]
                m += 1
            u -= 1
        if m - k0 >= 2:
            P[m - 1, PW] |= P_END
            at[r] = k0
        else:
            m = k0
        r = u
    return at, P[:m].copy()


@njit(cache=True, nogil=True, error_model="numpy")
def _planned_chain_vjp(R, F, V, G, touched, P, k):
    """_scalar_chain_vjp over the rows from k of a plan (plan_chains), with the same
    arithmetic (the same bits). Returns the record below the chain's last row.

    Each row's value and constant are loaded before the previous row's gradient is
    stored, so that no load can wait on that store (a load after a store whose address
    matches it modulo 4 KiB may). No gain was measured beside the loop's spread from one
    process to the next (2.3 to 3.6 us on W3), so this is a precaution, not a figure."""
    Pf = P.view(np.float64)
    q = _U(k)
    w = P[q, PW]
    y = V[_U(P[q, PVO])]
    f0 = Pf[q, PF0]
    last = G[_U(P[q, PGO])]
    while True:
        op = op_of(w)
        g = last if w & P_REG else G[_U(P[q, PGO])]
        if op == ADDC:
            d = g
        elif op == MULC:
            d = g * _lit(g, f0)
        elif op == TANH:
            d = g * (_lit(g, 1.0) - y * y)
        elif op == NEG:
            d = -g
        else:
            u = _U(P[q, PU])
            va = R[_U(P[q, PA]), VOFF]
            d = _lit(g, _du1(op, np.float64(g), V[_U(va)] if va >= 0 else 0.0,
                             np.float64(y), f0, F[u, F1]))
        keep = w & P_KEEP
        if keep:
            a = _U(P[q, PA])
            ga = _U(P[q, PGA])
            if touched[a] == 0:
                touched[a] = 1
            else:
                d = G[ga] + d
            if w & P_END:
                G[ga] = d
                return P[q, PU] - 1
        q += _U(1)
        w = P[q, PW]
        y = V[_U(P[q, PVO])]
        f0 = Pf[q, PF0]
        if keep:
            G[ga] = d
        last = d
