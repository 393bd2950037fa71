"""A compiled program's reverse sweep with its decoded chains (program_reverse), and its
whole call: forward replay, then that sweep from its scalar output, in one compiled call
(value_and_grad)."""
import numpy as np
from numba import njit

from .opcodes import ST_CHAIN, ST_DONE
from .reverse import sweep
from .chains import _planned_chain_vjp
from .forward import forward


@njit(cache=True, nogil=True, error_model="numpy")
def program_reverse(R, F, V, G, goff, touched, freed, reads, iar, plan_at, plan, start, dt,
                    gemm):
    """sweep() from record `start` down, its decoded scalar chains (plan_at, plan) run by
    _planned_chain_vjp; the caller has seeded G and touched. The compiled node's backward
    (one record per compiled call) and value_and_grad's second half. Returns sweep()'s
    (status, record)."""
    noidx = np.empty(0, np.int64)
    r = start
    while True:
        st, r = sweep(R, F, V, G, goff, touched, freed, noidx, reads, iar, r, 0, dt, gemm,
                      plan_at)
        if st != ST_CHAIN:
            return st, r
        r = _planned_chain_vjp(R, F, V, G, touched, plan, plan_at[r])


@njit(cache=True, nogil=True, error_model="numpy")
def value_and_grad(R, F, V, G, goff, touched, freed, reads, iar, n, plan_at, plan, out, dt,
                   gemm):
    """forward() then program_reverse() from scalar slot `out` seeded with 1, in one call; for
    programs with no record that needs Python (callers check)."""
    st, r = forward(R, F, V, iar, 0, n, dt, gemm)
    if st != ST_DONE:
        return st, r
    for i in range(n):
        touched[i] = 0
    G[goff[out]] = 1
    touched[out] = 1
    return program_reverse(R, F, V, G, goff, touched, freed, reads, iar, plan_at, plan, out, dt,
                           gemm)
