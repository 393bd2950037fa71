"""Kernels of the fused ops (softmax, log_softmax, binary cross entropy with and without
logits): their VJPs, and their values and tangents for the forward and tangent sweeps.

Kernels index the whole value arena V and gradient buffer G by offset."""
import numpy as np
from numba import njit

from .schema import A, B, C, F0, op_of, OPW, P1, SIZE, VOFF
from .opcodes import BCEWL
from .maps import _bcast_map


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus(t):
    # log(1 + exp(t)) without overflow
    return max(t, 0.0) + np.log1p(np.exp(-abs(t)))


# ---- VJP kernels of the heavier fused ops -------------------------------------------------
# Kernels index the whole value arena V and gradient buffer G by offset. The elementwise
# VJPs are written out inside the sweep itself: a call that passes arrays costs reference
# counting on every record, which at a few elements per record was 3x the arithmetic.
@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_softmax(log, n, D, inner, G, go, V, vo, ga):
    outer = n // (D * inner) if D * inner > 0 else 0
    for o in range(outer):
        for j in range(inner):
            base = o * D * inner + j
            acc = 0.0
            for m in range(D):
                k = base + m * inner
                acc += G[go + k] if log else G[go + k] * V[vo + k]
            for m in range(D):
                k = base + m * inner
                if log:
                    G[ga + k] += G[go + k] - np.exp(V[vo + k]) * acc
                else:
                    G[ga + k] += V[vo + k] * (G[go + k] - acc)


@njit(cache=True, nogil=True, error_model="numpy")
def _vjp_bcewl(n, G, go, reduce, scale, V, vz, vy, vp, mpw, has_pw, gz, gy, gp, wz, wy, wp):
    for i in range(n):
        g = G[go] * scale if reduce else G[go + i]
        zi = V[vz + i]
        yi = V[vy + i]
        p = V[vp + mpw[i]] if has_pw else 1.0
        lw = 1.0 + (p - 1.0) * yi
        sp = _softplus(-zi)           # log(1 + exp(-z))
        sneg = np.exp(-sp)            # sigmoid(z) = exp(-softplus(-z))
        if wz:
            G[gz + i] += g * ((1.0 - yi) - lw * (1.0 - sneg))
        if wy:
            G[gy + i] += g * (-zi + (p - 1.0) * sp)
        if wp:
            G[gp + mpw[i]] += g * yi * sp



@njit(cache=True, nogil=True, error_model="numpy")
def _bce(R, F, r, V, T, tangent):
    """BCEWL/BCE record r (logits or probabilities a, targets b, pos_weight c): its value
    into V, or with `tangent` its tangent into T (tangents of a, b, c in T)."""
    op = op_of(R[r, OPW])
    a = R[r, A]
    c = R[r, C]
    va = R[a, VOFF]
    vb = R[R[r, B], VOFF]
    vo = R[r, VOFF]
    X = T if tangent else V
    red = R[r, P1] == 1
    has_pw = op == BCEWL and c >= 0
    mpw = _bcast_map(R, a, c) if has_pw else np.empty(0, np.int64)
    vc = R[c, VOFF] if has_pw else -1
    acc = 0.0
    for i in range(R[a, SIZE]):
        x = V[va + i]
        yv = V[vb + i]
        if op == BCEWL:
            p = V[vc + mpw[i]] if has_pw else 1.0
            sp = _softplus(-x)
            lw = 1.0 + (p - 1.0) * yv
            if tangent:
                d = T[va + i] * ((1.0 - yv) - lw * (1.0 - np.exp(-sp))) \
                    + T[vb + i] * (-x + (p - 1.0) * sp)
                if has_pw:
                    d += T[vc + mpw[i]] * yv * sp
            else:
                d = (1.0 - yv) * x + lw * sp
        else:
            lx = max(np.log(x), -100.0)
            l1 = max(np.log(1.0 - x), -100.0)
            if tangent:
                d = T[va + i] * (x - yv) / max(x * (1.0 - x), 1e-12) + T[vb + i] * (l1 - lx)
            else:
                d = -(yv * lx + (1.0 - yv) * l1)
        if red:
            acc += d
        else:
            X[vo + i] = d
    if red:
        X[vo] = acc * F[r, F0]
