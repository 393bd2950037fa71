"""Tape memory kernels: gradient buffer layout, liveness, compaction, relocation."""
from numba import njit

from .schema import A, B, C, dtype_of, NFIELDS, op_of, OPW, P0, P1, SIZE, VOFF
from .opcodes import CAT, GATHER, NLL, PYFN, SCATTER


@njit(cache=True, nogil=True, error_model="numpy")
def grad_offsets(R, n, goff):
    """Lay out one gradient buffer per dtype; returns the two buffer sizes."""
    t0 = 0
    t1 = 0
    for r in range(n):
        sz = R[r, SIZE]
        if dtype_of(R[r, OPW]):
            goff[r] = t1
            t1 += sz
        else:
            goff[r] = t0
            t0 += sz
    return t0, t1


@njit(cache=True, nogil=True, error_model="numpy")
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
        op = op_of(R[r, OPW])
        if op == CAT or op == PYFN:
            io = R[r, P0]
            for q in range(iar[io]):
                keep[iar[io + 4 + 3 * q]] = 1
    return any_live


@njit(cache=True, nogil=True, error_model="numpy")
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
            if dtype_of(R[j, OPW]):
                for i in range(sz):
                    new64[t64 + i] = vals64[vo + i]
                R[j, VOFF] = t64
                t64 += sz
            else:
                for i in range(sz):
                    new32[t32 + i] = vals32[vo + i]
                R[j, VOFF] = t32
                t32 += sz
        op = op_of(R[j, OPW])
        if op == GATHER or op == CAT or op == NLL or op == SCATTER or op == PYFN:
            io = R[j, P0]
            ln = R[j, P1]
            for i in range(ln):
                newiar[ti + i] = iar[io + i]
            if op == CAT or op == PYFN:
                for q in range(iar[io]):
                    newiar[ti + 4 + 3 * q] = newidx[newiar[ti + 4 + 3 * q]]
            R[j, P0] = ti
            ti += ln
    return k, t32, t64, ti


@njit(cache=True, nogil=True)
def relocate(R, n, base, top32, top64, ibase, iar):
    """Shift a program's records to start at local index `base` of a tape whose arenas and
    index arena already hold the program's blocks at top32/top64/ibase."""
    for r in range(n):
        for f in (A, B, C):
            if R[r, f] >= 0:
                R[r, f] += base
        if R[r, VOFF] >= 0:
            R[r, VOFF] += top64 if dtype_of(R[r, OPW]) else top32
        op = op_of(R[r, OPW])
        if op == GATHER or op == CAT or op == NLL or op == SCATTER or op == PYFN:
            R[r, P0] += ibase
            if op == CAT or op == PYFN:
                io = R[r, P0]
                for q in range(iar[io]):
                    iar[io + 4 + 3 * q] += base
