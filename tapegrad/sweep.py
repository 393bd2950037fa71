"""The compiled side of the engine: opcodes, the record layout, and the reverse sweep.

Everything Numba compiles lives in this one module on purpose: Numba's on-disk cache is
keyed by the file it compiles, and a cached caller does not notice an edited callee in
another file. Opcodes and field indices are module constants, which Numba freezes into
the compiled code.

A record is one row of 16 int64 words (the last two reinterpreted as float64):

    OPW   op | dtype << 8 | requires_grad << 9 | ndim << 10 | name << 16
    A B C input slots (local record indices) or -1
    P0 P1 integer parameters (for GATHER/CAT/NLL: offset and length in the index arena;
          for an eager MATMUL whose operands are off the tape: their data addresses)
    VOFF  offset of this slot's saved value in the value arena of its dtype, or -1
    SH..  the output shape, up to MAXD dims
    SIZE  number of elements of the output
    F0 F1 float parameters

The output slot of record ``r`` is ``r`` itself, so a slot and a record are one thing.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# ---- record layout --------------------------------------------------------------------
NFIELDS = 16
OPW, A, B, C, P0, P1, VOFF, SH = 0, 1, 2, 3, 4, 5, 6, 7
MAXD = 6
SIZE = 13
F0, F1 = 14, 15

# ---- opcodes ---------------------------------------------------------------------------
INPUT = 0      # a leaf or constant entering the tape (no VJP; its gradient is read out)
DEAD = 1       # stands for a tensor whose graph was already freed; touching it is an error
# unary elementwise: out = f(a; F0, F1). Every record keeps what recomputes its output:
# NEG is F0 - a (so `2 - x` is NEG with F0 = 2), ADDC a + F0, MULC a * F0.
NEG, EXP, LOG, SQRT, ABS, SIN, COS, TANH, SIGMOID, RELU = 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
ADDC, MULC, POWC, RPOWC, RDIVC, CLAMP = 12, 13, 14, 15, 16, 17
# binary elementwise with numpy broadcasting: out = f(a, b) (WHERE: c is the condition).
# P0 bits 0-2: input a/b/c is broadcast; bits 3-4: a/b repeats as a suffix of the output.
ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM, WHERE = 20, 21, 22, 23, 24, 25, 26, 27
# reductions and data movement
SUM, MEAN, EXTREME, GATHER, RESHAPE, CAT = 30, 31, 32, 33, 34, 35   # EXTREME: P0 = 1 max, 0 min
SCATTER = 36   # out = zeros; out[map[i]] += a[i]: the transpose of GATHER
# fused ops
SOFTMAX, LOGSOFTMAX, BCEWL, NLL, BCE = 40, 41, 42, 43, 44
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
    LOGSOFTMAX: R_OUT, BCEWL: R_A | R_B | R_C, NLL: R_B, BCE: R_A | R_B, MATMUL: R_A | R_B,
}

# sweep status codes
ST_DONE, ST_PYTHON, ST_FREED, ST_DIRTY, ST_BADOP, ST_DEAD = 0, 1, 2, 3, 4, 5
ST_CHAIN = 6   # sweep(): a decoded chain starts at this record (value_and_grad runs it)


def reads_table():
    t = np.zeros(NOPS, np.int64)
    for op, bits in READS.items():
        t[op] = bits
    return t


# ---- small compiled helpers -------------------------------------------------------------
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


@njit(cache=True, nogil=True, error_model="numpy")
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


# ---- scalar derivatives, shared by the elementwise VJPs ------------------------------------------
# Scalar arguments only, so they inline into the sweep's loops at no cost; with the opcode
# fixed for a whole loop the compiler hoists the branch and vectorises the slice path.
VEC = 64   # records with at least this many elements take the vectorisable slice path
_U = np.uint64   # an offset known to be >= 0, as an index Numba does not wrap around


def _lit(like, x):
    """The float x as a scalar of the dtype of `like` (an array or a scalar).

    In forward passes a record's constant meets float32 data in float32, as numpy does in
    eager mode (a Python float is a weak scalar there): `v * 1.01` is v * float32(1.01)
    both ways, to the bit. The scalar chains' VJPs compute in the dtype too (PyTorch's
    arithmetic), which keeps float64 conversions off their critical path; the sweep's
    loops compute in float64 and round once, since float32 arithmetic there gained
    nothing on normal values and lost 40% on W2's subnormal gradients."""
    return like.dtype.type(x)


@overload(_lit)
def _lit_compiled(like, x):
    dt = like.dtype if isinstance(like, types.Array) else like
    if dt == types.float32:
        return lambda like, x: np.float32(x)
    return lambda like, x: np.float64(x)


@njit(inline="always", error_model="numpy")
def _du(op, g, x, y, f0, f1):
    """d(out)/d(a) * g for unary op at input x, output y."""
    if op == ADDC:
        return g
    if op == MULC:
        return g * f0
    if op == TANH:
        return g * (1 - y * y)
    if op == NEG:
        return -g
    if op == EXP:
        return g * y
    if op == LOG:
        return g / x
    if op == SQRT:
        return g * 0.5 / y
    if op == ABS:
        return g if x > 0 else (-g if x < 0 else 0.0 * g)
    if op == SIN:
        return g * np.cos(x)
    if op == COS:
        return -g * np.sin(x)
    if op == SIGMOID:
        return g * y * (1 - y)
    if op == RELU:
        return g * (y > 0)
    if op == POWC:   # PyTorch: exactly 0 for the exponent 0 (even for g inf or NaN)
        return 0.0 if f0 == 0.0 else g * f0 * x ** (f0 - 1.0)
    if op == RPOWC:  # 0 ** x: PyTorch gives g * 0 where x >= 0 (y is 0 or 1 there)
        return 0.0 * g if (f0 == 0.0 and y <= 1.0) else g * y * np.log(f0)
    if op == RDIVC:
        return -g * f0 / (x * x)
    return g * ((x >= f0) & (x <= f1))    # CLAMP: passes where lo <= x <= hi


@njit(inline="always", error_model="numpy")
def _db(op, g, x, y, out, cnd):
    """(d/da, d/db) * g for binary op at inputs x, y (WHERE: cnd picks a)."""
    if op == ADD:
        return g, g
    if op == SUB:
        return g, -g
    if op == MUL:
        return g * y, g * x
    if op == DIV:
        return g / y, -g * x / (y * y)
    if op == POW:    # PyTorch's masks: d/da exactly 0 where y == 0; d/db g * 0 at 0 ** y>=0
        da = 0.0 if y == 0.0 else g * y * x ** (y - 1.0)
        db = 0.0 * g if (x == 0.0 and y >= 0.0) else g * out * np.log(x)
        return da, db
    if op == MAXIMUM or op == MINIMUM:
        if x == y:
            return 0.5 * g, 0.5 * g
        if (x > y) == (op == MAXIMUM):
            return g, 0.0 * g
        return 0.0 * g, g
    if cnd != 0:   # WHERE
        return g, 0.0 * g
    return 0.0 * g, g


@njit(cache=True, nogil=True, error_model="numpy")
def _du1(op, g, x, y, f0, f1):
    """_du as a call, for the scalar chains' rarer ops: inlined, their branches' calls
    (sin, pow, ...) make the chain's loop spill its registers on every record."""
    return _du(op, g, x, y, f0, f1)


@njit(inline="always")
def _scalar_unary(R, u, dt):
    """Is record u a one-element unary elementwise record of dtype code dt (a link of a
    scalar chain)? For plan_chains: the hot loops write the test out (as this inlined
    helper, it slowed forward() and sweep() by a third)."""
    w = R[u, OPW]
    op = w & 255
    return NEG <= op < ADD and R[u, SIZE] == 1 and ((w >> 8) & 1) == dt


# ---- the reverse sweep -----------------------------------------------------------------------
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
        op = w & 255
        if op < NEG or op >= ADD or R[u, SIZE] != 1 or ((w >> 8) & 1) != dt or freed[u] != 0:
            break
        a = _U(R[u, A])
        if (R[a, OPW] >> 9) & 1:
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
            if (R[a, OPW] >> 9) & 1:
                P[m, PW] = (R[u, OPW] & 255) | (P_REG if goff[u] == last_at else 0) | P_KEEP
                P[m, PVO] = R[u, VOFF]
                P[m, PF0] = R[u, F0]
                P[m, PGO] = goff[u]
                P[m, PGA] = goff[a]
                P[m, PA] = a
                P[m, PU] = u
                # the previous row's gradient goes only to this one: keep it in a register
                if m > k0 and P[m - 1, PA] == u and uses[u] == 1 and P[m, PW] & P_REG:
                    P[m - 1, PW] &= ~P_KEEP
                    if P[m - 1, PW] & 255 == ADDC:
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
        op = w & 255
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


@njit(cache=True, nogil=True, error_model="numpy")
def sweep(R, F, V, G, goff, touched, freed, dirty_at, reads, iar, start, stop, dt, gemm,
          plan_at):
    """Walk records start, start-1, ..., stop backwards, accumulating VJPs into G.

    V is the value arena and G the gradient buffer of dtype dt; gemm holds the cblas_?gemm
    addresses (tapegrad.blas.GEMM). plan_at is plan_chains' map of decoded scalar chains
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
        op = w & 255
        if op == INPUT:
            continue
        if NEG <= op < ADD and not has_dirty and R[r, SIZE] == 1 and ((w >> 8) & 1) == dt \
                and freed[r] == 0 and r - 1 >= stop and R[r - 1, SIZE] == 1:
            r = _scalar_chain_vjp(R, F, V, G, goff, touched, freed, r, stop, dt) + 1
            continue
        if op == DEAD:
            return ST_DEAD, r
        if freed[r] != 0:
            return ST_FREED, r
        # before any hand-back to Python: a matmul VJP that numpy runs reads saved values too
        rd = reads[op]
        if has_dirty and rd != 0:
            if ((rd & R_A) and r < dirty_at[R[r, A]]) or ((rd & R_B) and r < dirty_at[R[r, B]]) \
                    or ((rd & R_C) and r < dirty_at[R[r, C]]) or ((rd & R_OUT) and r < dirty_at[r]):
                return ST_DIRTY, r
        how = MM_NUMPY
        mm = mk = mn = -1
        if op == MATMUL and ((w >> 8) & 1) == dt:
            mm, mk, mn, how = _mm_dims(R, r, gemm[dt])
            if R[R[r, A], VOFF] < 0 or R[R[r, B], VOFF] < 0:
                # operands off the tape (an eager product): BLAS reads them where numpy
                # keeps them, if the record has their addresses (P0, P1)
                how = MM_BLAS if how == MM_BLAS and R[r, P0] != 0 and R[r, P1] != 0 \
                    else MM_NUMPY
        if (op >= FIRST_PY and how == MM_NUMPY) or ((w >> 8) & 1) != dt:
            return ST_PYTHON, r
        n = R[r, SIZE]
        go = goff[r]
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        wa = a >= 0 and ((R[a, OPW] >> 9) & 1) == 1
        wb = b >= 0 and ((R[b, OPW] >> 9) & 1) == 1
        wc = c >= 0 and ((R[c, OPW] >> 9) & 1) == 1
        # zero each input's gradient the first time anything flows into it (written out
        # here: a helper taking arrays costs reference counting on every call); a BLAS
        # product writes its first contribution itself (beta = 0): no zeroing pass
        for s in (a, b, c):
            if s >= 0 and touched[s] == 0 and (R[s, OPW] >> 9) & 1 and how != MM_BLAS:
                o = _U(goff[s])
                for i in range(_U(R[s, SIZE])):
                    G[o + i] = 0
                touched[s] = 1
        va = R[a, VOFF] if a >= 0 else -1
        ga = goff[a] if a >= 0 else -1

        if op == MATMUL and how == MM_LOOPS:
            _mm_vjp(G, go, V, va, R[b, VOFF], ga, goff[b], mm, mk, mn, wa, wb)
        elif op == MATMUL:      # MM_BLAS (MM_NUMPY returned to Python above)
            # the operands' addresses: on the tape, or (eager) where numpy keeps them (P0/P1)
            pa, pb = R[r, P0], R[r, P1]
            if va >= 0 and R[b, VOFF] >= 0:
                pa = np.int64(V.ctypes.data) + va * V.itemsize
                pb = np.int64(V.ctypes.data) + R[b, VOFF] * V.itemsize
            if wa:   # ga (m x k) (+)= g (m x n) @ b.T; the first contribution writes
                beta = 1.0 if touched[a] else 0.0
                touched[a] = 1
                _gemm(gemm[dt], _NO_TRANS, _TRANS, mm, mk, mn, G, go, mn, pb, 0, mn, beta, G,
                      ga, mk)
            if wb:   # gb (k x n) (+)= a.T @ g
                beta = 1.0 if touched[b] else 0.0
                touched[b] = 1
                _gemm(gemm[dt], _TRANS, _NO_TRANS, mk, mn, mm, pa, 0, mk, G, go, mn, beta, G,
                      goff[b], mn)
        elif op < ADD:  # unary elementwise
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
            elif op == RELU:
                for i in range(_U(n)):
                    g = G[_U(go) + i]
                    G[_U(ga) + i] += g if V[_U(vo) + i] > 0 else 0.0 * g
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
        elif op <= WHERE:
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
                        x = V[va + ia] if va >= 0 else 0.0
                        y = V[vb + ib] if vb >= 0 else 0.0
                        o_ = V[vo + i] if vo >= 0 else 0.0
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
                x = V[va + ia] if va >= 0 else 0.0
                y = V[vb + ib] if vb >= 0 else 0.0
                o = V[vo + i] if vo >= 0 else 0.0
                cnd = V[vc + (mc[i] if bc & 4 else i)] if vc >= 0 else 0.0
                da, db = _db(op, G[go + i], x, y, o, cnd)
                if wa:
                    G[ga + ia] += da
                if wb:
                    G[gb + ib] += db
        elif op == SUM or op == MEAN:
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
        elif op == GATHER:
            if wa:
                io = R[r, P0]
                for i in range(n):
                    G[ga + iar[io + i]] += G[go + i]
        elif op == RESHAPE:
            if wa:
                for i in range(n):
                    G[ga + i] += G[go + i]
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
                if ((R[s, OPW] >> 9) & 1) == 0:
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
        elif op == SOFTMAX or op == LOGSOFTMAX:
            if wa:
                _vjp_softmax(op == LOGSOFTMAX, n, R[r, P0], R[r, P1], G, go, V, vo, ga)
        elif op == BCE:
            # binary cross entropy on probabilities, logs clamped at -100 and the
            # denominator at 1e-12, as PyTorch does
            red = R[r, P1] == 1
            vb = R[b, VOFF]
            gb = goff[b]
            for i in range(R[a, SIZE]):
                g = G[go] * F[r, F0] if red else G[go + i]
                x = V[va + i]
                y = V[vb + i]
                if wa:
                    G[ga + i] += g * (x - y) / max(x * (1.0 - x), 1e-12)
                if wb:
                    G[gb + i] += g * (max(np.log(1.0 - x), -100.0) - max(np.log(x), -100.0))
        elif op == BCEWL:
            has_pw = c >= 0
            mpw = _bcast_map(R, a, c) if has_pw else noidx
            _vjp_bcewl(R[a, SIZE], G, go, R[r, P1] == 1, F[r, F0], V, va, R[b, VOFF],
                       R[c, VOFF] if has_pw else -1, mpw, has_pw,
                       ga, goff[b] if wb else -1, goff[c] if wc else -1, wa, wb, wc)
        elif op == NLL:
            if wa:
                io = R[r, P0]
                cnt = R[r, P1]
                vb = R[b, VOFF]
                reduced = F[r, F0] != 0.0
                for k in range(cnt):
                    g = G[go] if reduced else G[go + k]
                    G[ga + iar[io + k]] -= V[vb + k] * g
        else:
            return ST_BADOP, r
    return ST_DONE, -1


# ---- bookkeeping kernels ------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
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
        if (R[r, OPW] & 255) == CAT:
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
        if op == GATHER or op == CAT or op == NLL or op == SCATTER:
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


# ---- matrix products in compiled code -----------------------------------------------------------
# Products of at most SMALL_MM multiply-adds between 1-D/2-D operands run as plain loops: for
# them a BLAS call costs more than the arithmetic. Larger ones call cblas_?gemm of numpy's own
# OpenBLAS from compiled code (one BLAS and one thread pool per process), through the address
# in `gemm` (tapegrad.blas finds it; 0 when there is none, and then numpy runs them from
# Python, as it does batched products).
SMALL_MM = 16384
MM_NUMPY, MM_LOOPS, MM_BLAS = 0, 1, 2
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


@intrinsic
def _gemm(typingctx, fn, ta, tb, m, n, k, X, xo, ldx, Y, yo, ldy, beta, Z, zo, ldz):
    """Z[zo:] = X[xo:] @ Y[yo:] + beta Z[zo:] (row-major; ta/tb: transpose X/Y) by calling
    the cblas_?gemm whose address is fn (the ILP64 interface: 64-bit sizes). X or Y may
    instead be the address of a C-contiguous array of Z's dtype (xo/yo then unused)."""
    if not (isinstance(Z, types.Array) and Z.dtype in (types.float32, types.float64)
            and all(t == Z or isinstance(t, types.Integer) for t in (X, Y))):
        return None
    sig = types.void(fn, ta, tb, m, n, k, X, xo, ldx, Y, yo, ldy, beta, Z, zo, ldz)

    def codegen(context, builder, sig, args):
        aty = sig.args[13]      # Z, always an array
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fty = context.get_value_type(aty.dtype)

        def int64(i):
            return context.cast(builder, args[i], sig.args[i], types.int64)

        def ptr(i):
            if isinstance(sig.args[i], types.Integer):
                return builder.inttoptr(int64(i), fty.as_pointer())
            data = context.make_array(aty)(context, builder, args[i]).data
            return builder.gep(data, [int64(i + 1)])
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fty, fty.as_pointer(),
                                               i64, fty.as_pointer(), i64, fty,
                                               fty.as_pointer(), i64])
        f = builder.inttoptr(int64(0), fnty.as_pointer())
        builder.call(f, [ir.Constant(i32, _ROW_MAJOR), builder.trunc(int64(1), i32),
                         builder.trunc(int64(2), i32), int64(3), int64(4), int64(5),
                         ir.Constant(fty, 1.0), ptr(6), int64(8), ptr(9), int64(11),
                         context.cast(builder, args[12], sig.args[12], aty.dtype), ptr(13),
                         int64(15)])
        return context.get_dummy_value()
    return sig, codegen


@njit(cache=True, nogil=True)
def _mm_dims(R, r, gemm):
    """(m, k, n, how) of matmul record r: how is MM_LOOPS or MM_BLAS for 1-D/2-D operands
    (MM_BLAS needs a gemm address), MM_NUMPY for what Python runs (batched operands)."""
    a = R[r, A]
    b = R[r, B]
    nda = (R[a, OPW] >> 10) & 15
    ndb = (R[b, OPW] >> 10) & 15
    if nda > 2 or ndb > 2:
        return -1, -1, -1, MM_NUMPY
    m = R[a, SH] if nda == 2 else 1
    k = R[a, SH + nda - 1]
    n = R[b, SH + 1] if ndb == 2 else 1
    if m * k * n <= SMALL_MM:
        return m, k, n, MM_LOOPS
    return m, k, n, (MM_BLAS if gemm != 0 else MM_NUMPY)


@njit(cache=True, nogil=True)
def _mm(X, xo, Y, yo, Z, zo, m, k, n, acc):
    """Z[zo:] (+)= X[xo:] (m x k) @ Y[yo:] (k x n), row-major."""
    for i in range(m):
        for j in range(n):
            if not acc:
                Z[zo + i * n + j] = 0
        for p in range(k):
            x = X[xo + i * k + p]
            for j in range(n):
                Z[zo + i * n + j] += x * Y[yo + p * n + j]


@njit(cache=True, nogil=True)
def _mm_vjp(G, go, V, va, vb, ga, gb, m, k, n, wa, wb):
    if wa:   # ga (m x k) += g (m x n) @ b.T
        for i in range(m):
            for p in range(k):
                acc = 0.0
                for j in range(n):
                    acc += G[go + i * n + j] * V[vb + p * n + j]
                G[ga + i * k + p] += acc
    if wb:   # gb (k x n) += a.T @ g
        for i in range(m):
            for p in range(k):
                x = V[va + i * k + p]
                for j in range(n):
                    G[gb + p * n + j] += x * G[go + i * n + j]


# ---- replay: the forward pass in compiled code ----------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _sigmoid1(x):
    if x >= 0:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x)
    return e / (1.0 + e)


# float32 tanh for replay: one rational function, evaluated in float64, so that loops over
# it vectorise (libm's tanhf is one call per element). tanh(x) ~ x P(x^2) / Q(x^2) on
# [-9, 9], fitted here by iteratively reweighted least squares on the relative error;
# beyond 9, tanh rounds to +-1 in float32. Rounded to float32 it is within 0.85 ulp of
# the exact value (numpy's float32 tanh: 1.4 ulp); tests/test_compile.py checks it.
# In a scalar chain its latency is the step's cost, so the evaluation is arranged for a
# short critical path: x goes into P's terms beside x^2 (not after P), and |x| > 9 picks
# +-1 after the division instead of clamping x before x^2.
_TP = (0.9999999796707533, 0.13381053673215348, 0.0034956206105956193,
       2.0609586327293133e-05, 1.3355306111018095e-08)
_TQ = (0.4671436932524632, 0.025877107839675305, 0.0003285686604051235,
       7.776833267879313e-07)


@njit(inline="always", error_model="numpy")
def tanh32(x):
    """tanh of a float32 value (see _TP); NaN in, NaN out."""
    c = np.float64(x)
    s = c * c
    s2 = s * s
    p = (c * _TP[0] + (c * _TP[1]) * s) + (c * s2) * ((_TP[2] + _TP[3] * s) + s2 * _TP[4])
    q = (1.0 + _TQ[0] * s) + s2 * ((_TQ[1] + _TQ[2] * s) + s2 * _TQ[3])
    t = p / q              # NaN for x = +-inf (inf / inf): replaced below
    if abs(c) > 9.0:
        t = np.copysign(1.0, c)
    return np.float32(t)


NUMPY_UFUNC = 1024   # replay hands transcendental records at least this large to numpy


@njit(inline="always")
def to_numpy(op, n, dt):
    """Does replay hand this record to numpy's SIMD ufunc? Large transcendental records of
    dtype code dt, except float32 tanh, whose tanh32 loop vectorises here."""
    if n < NUMPY_UFUNC or (op == TANH and dt == 0):
        return False
    return op == TANH or op == EXP or op == LOG or op == SIN or op == COS or op == SIGMOID


@njit(inline="always", error_model="numpy")
def _un(op, x, f0, f1):
    """A unary record's value at input x (the common ADDC/MULC/TANH/NEG have own loops)."""
    if op == EXP:
        return np.exp(x)
    if op == LOG:
        return np.log(x)
    if op == SQRT:
        return np.sqrt(x)
    if op == ABS:
        return abs(x)
    if op == SIN:
        return np.sin(x)
    if op == COS:
        return np.cos(x)
    if op == SIGMOID:
        return _sigmoid1(x)
    if op == RELU:
        return x if x > 0 else 0.0 * x
    if op == POWC:
        return x ** f0
    if op == RPOWC:
        return f0 ** x
    if op == RDIVC:
        return _lit(x, f0) / x
    if op == ADDC:
        return x + _lit(x, f0)
    if op == MULC:
        return x * _lit(x, f0)
    if op == NEG:
        return _lit(x, f0) - x
    if op == TANH:
        return np.tanh(x)
    return min(max(x, f0), f1)     # CLAMP


@njit(inline="always", error_model="numpy")
def _bin(op, x, y):
    if op == ADD:
        return x + y
    if op == SUB:
        return x - y
    if op == MUL:
        return x * y
    if op == DIV:
        return x / y
    if op == POW:
        return x ** y
    if op == MAXIMUM:
        return x if (x > y or x != x) else y
    return x if (x < y or x != x) else y     # MINIMUM


@njit(cache=True, nogil=True, error_model="numpy")
def _linear(R, F, r, X, V, iar):
    """Apply linear record r (SUM, MEAN, GATHER, RESHAPE, SCATTER, CAT, NLL) to the buffer X:
    values in forward(), tangents in tangent(). Constants (NLL's weights) come from V."""
    op = R[r, OPW] & 255
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
    else:  # CAT
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
def _bce(R, F, r, V, T, tangent):
    """BCEWL/BCE record r (logits or probabilities a, targets b, pos_weight c): its value
    into V, or with `tangent` its tangent into T (tangents of a, b, c in T)."""
    op = R[r, OPW] & 255
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
        op = w & 255
        if op < NEG or op >= ADD or R[u, SIZE] != 1 or ((w >> 8) & 1) != dt:
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
        op = w & 255
        if op == INPUT:
            continue
        if op == DEAD:
            return ST_DEAD, r
        if NEG <= op < ADD and R[r, SIZE] == 1 and ((w >> 8) & 1) == dt and r + 1 < stop \
                and R[r + 1, SIZE] == 1:
            r = _scalar_chain(R, F, V, r, stop, dt) - 1     # runs at least record r
            continue
        if op == MATMUL and ((w >> 8) & 1) == dt:
            mm, mk, mn, how = _mm_dims(R, r, gemm[dt])
            pa, pb, po = R[R[r, A], VOFF], R[R[r, B], VOFF], R[r, VOFF]
            if how == MM_LOOPS:
                _mm(V, pa, V, pb, V, po, mm, mk, mn, False)
                continue
            if how == MM_BLAS:
                _gemm(gemm[dt], _NO_TRANS, _NO_TRANS, mm, mn, mk, V, pa, mk, V, pb, mn, 0.0, V,
                      po, mn)
                continue
        if op >= FIRST_PY or ((w >> 8) & 1) != dt:
            return ST_PYTHON, r
        n = R[r, SIZE]
        if to_numpy(op, n, dt):
            return ST_PYTHON, r     # numpy's vectorised transcendental functions
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        va = R[a, VOFF] if a >= 0 else -1
        if op < ADD:
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
                        V[_U(vo) + i] = np.tanh(V[_U(va) + i])
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
        elif op <= WHERE:
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
                or op == CAT or op == NLL:
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
        else:
            return ST_BADOP, r
    return ST_DONE, -1


# ---- forward mode: the tangent sweep --------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def tangent(R, F, V, T, iar, start, stop, dt, gemm):
    """Propagate tangents T (laid out like V) through records start..stop-1 in order.

    Every record's tangent is the JVP of its op at the values in V; records a tangent never
    reached hold zeros. Returns (status, record) like forward().
    """
    noidx = np.empty(0, np.int64)
    for r in range(start, stop):
        w = R[r, OPW]
        op = w & 255
        if op == INPUT:
            continue
        if op == DEAD:
            return ST_DEAD, r
        if op == MATMUL and ((w >> 8) & 1) == dt:
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
        if op >= FIRST_PY or ((w >> 8) & 1) != dt:
            return ST_PYTHON, r
        n = R[r, SIZE]
        vo = R[r, VOFF]
        a = R[r, A]
        b = R[r, B]
        c = R[r, C]
        va = R[a, VOFF] if a >= 0 else -1
        if op < ADD:
            f0 = F[r, F0]
            f1 = F[r, F1]
            for i in range(n):
                t = T[va + i]
                x = V[va + i]
                y = V[vo + i]
                if t == 0:     # a zero tangent adds nothing (see the binary ops below)
                    d = 0.0
                elif op == NEG:
                    d = -t
                elif op == EXP:
                    d = t * y
                elif op == LOG:
                    d = t / x
                elif op == SQRT:
                    d = t * 0.5 / y
                elif op == ABS:
                    d = t if x > 0 else (-t if x < 0 else 0.0 * t)
                elif op == SIN:
                    d = t * np.cos(x)
                elif op == COS:
                    d = -t * np.sin(x)
                elif op == TANH:
                    d = t * (1 - y * y)
                elif op == SIGMOID:
                    d = t * y * (1 - y)
                elif op == RELU:
                    d = t if y > 0 else 0.0 * t
                elif op == ADDC:
                    d = t
                elif op == MULC:
                    d = t * f0
                elif op == POWC:
                    d = 0.0 if f0 == 0.0 else t * f0 * x ** (f0 - 1.0)
                elif op == RPOWC:
                    d = 0.0 * t if (f0 == 0.0 and y <= 1.0) else t * y * np.log(f0)
                elif op == RDIVC:
                    d = -t * f0 / (x * x)
                else:  # CLAMP
                    d = t if (x >= f0 and x <= f1) else 0.0 * t
                T[vo + i] = d
        elif op <= WHERE:
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
                if op == ADD:
                    d = ta + tb
                elif op == SUB:
                    d = ta - tb
                elif op == MUL or op == DIV or op == POW:
                    # a zero tangent adds nothing, not 0 * a partial that is inf or NaN (a
                    # constant's, which PyTorch's forward mode leaves out; jacfwd's other
                    # columns), so jvp agrees with the reverse sweep, which skips them too
                    da = 0.0
                    db = 0.0
                    if op == MUL:
                        if ta != 0:
                            da = ta * y
                        if tb != 0:
                            db = tb * x
                    elif op == DIV:
                        if ta != 0:
                            da = ta / y
                        if tb != 0:
                            db = -tb * x / (y * y)
                    else:   # the reverse sweep's masks (_db)
                        if ta != 0 and y != 0.0:
                            da = ta * y * x ** (y - 1.0)
                        if tb != 0:
                            db = 0.0 * tb if (x == 0.0 and y >= 0.0) else \
                                tb * V[vo + i] * np.log(x)
                    d = da + db
                elif op == MAXIMUM or op == MINIMUM:
                    if x == y:
                        d = 0.5 * (ta + tb)
                    elif (x > y) == (op == MAXIMUM):
                        d = ta
                    else:
                        d = tb
                else:  # WHERE
                    d = ta if V[vc + (mc[i] if bc & 4 else i)] != 0 else tb
                T[vo + i] = d
        elif op == SUM or op == MEAN or op == GATHER or op == RESHAPE or op == SCATTER \
                or op == CAT or op == NLL:
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
        else:
            return ST_BADOP, r
    return ST_DONE, -1


@njit(cache=True, nogil=True)
def relocate(R, n, base, top32, top64, ibase, iar):
    """Shift a program's records to start at local index `base` of a tape whose arenas and
    index arena already hold the program's blocks at top32/top64/ibase."""
    for r in range(n):
        for f in (A, B, C):
            if R[r, f] >= 0:
                R[r, f] += base
        if R[r, VOFF] >= 0:
            R[r, VOFF] += top64 if (R[r, OPW] >> 8) & 1 else top32
        op = R[r, OPW] & 255
        if op == GATHER or op == CAT or op == NLL or op == SCATTER:
            R[r, P0] += ibase
            if op == CAT:
                io = R[r, P0]
                for q in range(iar[io]):
                    iar[io + 4 + 3 * q] += base


@njit(cache=True, nogil=True, error_model="numpy")
def value_and_grad(R, F, V, G, goff, touched, freed, reads, iar, n, plan_at, plan, out, dt,
                   gemm):
    """forward() then sweep() from scalar slot `out` seeded with 1, in one call; for programs
    with no record that needs Python (callers check). Returns sweep()'s (status, record)."""
    st, r = forward(R, F, V, iar, 0, n, dt, gemm)
    if st != ST_DONE:
        return st, r
    for i in range(n):
        touched[i] = 0
    G[goff[out]] = 1
    touched[out] = 1
    noidx = np.empty(0, np.int64)
    r = out
    while True:
        st, r = sweep(R, F, V, G, goff, touched, freed, noidx, reads, iar, r, 0, dt, gemm,
                      plan_at)
        if st != ST_CHAIN:
            return st, r
        r = _planned_chain_vjp(R, F, V, G, touched, plan, plan_at[r])
