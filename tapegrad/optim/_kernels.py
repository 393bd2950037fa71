"""The optimizers' compiled update kernels: one call updates every parameter of one dtype.

A step hands its kernel an address table, ``addr[i, slot]``: the data addresses of
parameter i's value (slot 0), its gradient (slot 1) and its state arrays (the other slots;
0 where the state is absent), all C-contiguous, with ``size[i]`` elements each. The
parameters' own arrays are updated in place, so nothing is copied in or out. ``hp[i]``
holds parameter i's hyperparameters (its group's options; flags as 0.0/1.0). ``like`` is
an empty array of the parameters' dtype and ``step_like`` an empty float32 array: they only
type the pointers. The step counters (float32 0-d arrays, as PyTorch keeps them) sit in the
table too and are incremented here.

Each kernel follows PyTorch's single-tensor update (torch/optim/*.py), operation for
operation. Adam's loop (without amsgrad) computes in the parameters' dtype, as torch's
does (float32 parameters: float32 arithmetic, twice the SIMD width); the other kernels
compute in float64 and round when they store.
"""
import ctypes

import numba
import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic


@intrinsic
def _ptr(typingctx, addr, like):
    """An integer address as a pointer to like's dtype."""
    sig = types.CPointer(like.dtype)(addr, like)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))
    return sig, codegen


if numba.config.DISABLE_JIT:
    def _view(addr, n, like):
        buf = (ctypes.c_char * (int(n) * like.itemsize)).from_address(int(addr))
        return np.frombuffer(buf, dtype=like.dtype)
else:
    @njit(cache=True, error_model="numpy")
    def _view(addr, n, like):
        return carray(_ptr(addr, like), (n,))


@njit(cache=True, error_model="numpy")
def _lerp(a, b, w):
    # torch's lerp: a + w (b - a) for |w| < 0.5, else b - (b - a)(1 - w)
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1.0 - w)


# SGD: hp = lr, momentum, dampening, weight_decay, nesterov, maximize, fresh buffer
# slots: param, grad, momentum_buffer
@njit(cache=True, error_model="numpy")
def sgd_step(addr, size, hp, like):
    for i in range(addr.shape[0]):
        n = size[i]
        p = _view(addr[i, 0], n, like)
        g = _view(addr[i, 1], n, like)
        lr, mom, damp, wd = hp[i, 0], hp[i, 1], hp[i, 2], hp[i, 3]
        nesterov, maximize, fresh = hp[i, 4] != 0, hp[i, 5] != 0, hp[i, 6] != 0
        has_buf = mom != 0
        buf = _view(addr[i, 2] if has_buf else addr[i, 0], n, like)
        for j in range(n):
            d = np.float64(g[j])
            if maximize:
                d = -d
            if wd != 0:
                d = d + wd * np.float64(p[j])
            if has_buf:
                if fresh:
                    b = d
                else:
                    b = np.float64(buf[j]) * mom + (1.0 - damp) * d
                buf[j] = b
                b = np.float64(buf[j])   # torch reads the stored (rounded) buffer back
                if nesterov:
                    d = d + mom * b
                else:
                    d = b
            p[j] = np.float64(p[j]) + (-lr) * d


# Adam/AdamW: hp = lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled
# slots: param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step
@njit(cache=True, error_model="numpy")
def adam_step(addr, size, hp, like, step_like):
    for i in range(addr.shape[0]):
        n = size[i]
        p = _view(addr[i, 0], n, like)
        g = _view(addr[i, 1], n, like)
        m = _view(addr[i, 2], n, like)
        v = _view(addr[i, 3], n, like)
        st = _view(addr[i, 5], 1, step_like)
        st[0] += 1
        step = np.float64(st[0])
        lr, b1, b2, eps, wd = hp[i, 0], hp[i, 1], hp[i, 2], hp[i, 3], hp[i, 4]
        amsgrad, maximize, decoupled = hp[i, 5] != 0, hp[i, 6] != 0, hp[i, 7] != 0
        step_size = lr / (1.0 - b1 ** step)
        bc2_sqrt = (1.0 - b2 ** step) ** 0.5
        # exact rewrites that keep the loop free of branches LLVM can't hoist: -g as
        # -1.0 * g, and p * 1.0 when there is no decoupled decay
        sgn = -1.0 if maximize else 1.0
        decay = 1.0 - lr * wd if decoupled and wd != 0 else 1.0
        use_l2 = wd != 0 and not decoupled
        if amsgrad:
            _adam_amsgrad(p, g, m, v, _view(addr[i, 4], n, like), n, sgn, use_l2, wd, decay,
                          1.0 - b1, b2, eps, step_size, bc2_sqrt)
        else:
            # the loop's arithmetic in the parameters' dtype, as torch's: its float32 Adam
            # runs in float32 (and a float32 loop is twice as wide in SIMD)
            c = np.empty(9, like.dtype)
            c[0], c[1], c[2], c[3], c[4] = sgn, wd, decay, 1.0 - b1, 1.0 - (1.0 - b1)
            c[5], c[6], c[7], c[8] = b2, 1.0 - b2, eps, bc2_sqrt
            _adam(p, g, m, v, n, use_l2, abs(1.0 - b1) < 0.5, c, like.dtype.type(-step_size))


@njit(cache=True, error_model="numpy")
def _adam(p, g, m, v, n, use_l2, small, c, neg_step):
    sgn, wd, decay, w, one_w, b2, one_b2, eps, bc2_sqrt = (c[0], c[1], c[2], c[3], c[4],
                                                          c[5], c[6], c[7], c[8])
    for j in range(n):
        pj = p[j] * decay
        d = sgn * g[j]
        if use_l2:
            d = d + wd * pj
        mj = m[j]
        if small:                                   # torch's lerp, both of its forms
            mj = mj + w * (d - mj)
        else:
            mj = d - (d - mj) * one_w
        m[j] = mj
        vj = v[j] * b2 + one_b2 * d * d
        v[j] = vj
        p[j] = pj + neg_step * (mj / (np.sqrt(vj) / bc2_sqrt + eps))


@njit(cache=True, error_model="numpy")
def _adam_amsgrad(p, g, m, v, vmax, n, sgn, use_l2, wd, decay, w, b2, eps, step_size,
                  bc2_sqrt):
    for j in range(n):
        p[j] = np.float64(p[j]) * decay
        d = sgn * np.float64(g[j])
        if use_l2:
            d = d + wd * np.float64(p[j])
        m[j] = _lerp(np.float64(m[j]), d, w)
        v[j] = np.float64(v[j]) * b2 + (1.0 - b2) * d * d
        vj = v[j]
        if vj > vmax[j] or vj != vj:                # torch.maximum: nan propagates
            vmax[j] = vj
        denom = np.sqrt(np.float64(vmax[j])) / bc2_sqrt + eps
        p[j] = np.float64(p[j]) + (-step_size) * np.float64(m[j]) / denom


# RMSprop: hp = lr, alpha, eps, weight_decay, momentum, centered, maximize
# slots: param, grad, square_avg, momentum_buffer, grad_avg, step
@njit(cache=True, error_model="numpy")
def rmsprop_step(addr, size, hp, like, step_like):
    for i in range(addr.shape[0]):
        n = size[i]
        p = _view(addr[i, 0], n, like)
        g = _view(addr[i, 1], n, like)
        sq = _view(addr[i, 2], n, like)
        lr, alpha, eps, wd, mom = hp[i, 0], hp[i, 1], hp[i, 2], hp[i, 3], hp[i, 4]
        centered, maximize = hp[i, 5] != 0, hp[i, 6] != 0
        st = _view(addr[i, 5], 1, step_like)
        st[0] += 1
        sgn = -1.0 if maximize else 1.0
        if mom > 0 or centered:
            # absent state arrays get a harmless stand-in (the parameter's own gradient
            # is never written; they are only read and written under their flag)
            buf = _view(addr[i, 3], n, like) if mom > 0 else _view(addr[i, 1], n, like)
            gavg = _view(addr[i, 4], n, like) if centered else _view(addr[i, 1], n, like)
            _rmsprop_full(p, g, sq, buf, gavg, n, sgn, lr, alpha, eps, wd, mom > 0, mom,
                          centered)
        else:
            _rmsprop(p, g, sq, n, sgn, lr, alpha, eps, wd)


@njit(cache=True, error_model="numpy")
def _rmsprop(p, g, sq, n, sgn, lr, alpha, eps, wd):
    use_wd = wd != 0
    for j in range(n):
        d = sgn * np.float64(g[j])
        if use_wd:
            d = d + wd * np.float64(p[j])
        sq[j] = np.float64(sq[j]) * alpha + (1.0 - alpha) * d * d
        avg = np.sqrt(np.float64(sq[j])) + eps
        p[j] = np.float64(p[j]) + (-lr) * d / avg


@njit(cache=True, error_model="numpy")
def _rmsprop_full(p, g, sq, buf, gavg, n, sgn, lr, alpha, eps, wd, has_buf, mom, centered):
    use_wd = wd != 0
    for j in range(n):
        d = sgn * np.float64(g[j])
        if use_wd:
            d = d + wd * np.float64(p[j])
        sq[j] = np.float64(sq[j]) * alpha + (1.0 - alpha) * d * d
        if centered:
            gavg[j] = _lerp(np.float64(gavg[j]), d, 1.0 - alpha)
            ga = np.float64(gavg[j])
            avg = np.sqrt(np.float64(sq[j]) + (-1.0) * ga * ga) + eps
        else:
            avg = np.sqrt(np.float64(sq[j])) + eps
        if has_buf:
            buf[j] = np.float64(buf[j]) * mom + d / avg
            p[j] = np.float64(p[j]) + (-lr) * np.float64(buf[j])
        else:
            p[j] = np.float64(p[j]) + (-lr) * d / avg


# Adagrad: hp = lr, lr_decay, weight_decay, eps, maximize
# slots: param, grad, sum, step
@njit(cache=True, error_model="numpy")
def adagrad_step(addr, size, hp, like, step_like):
    for i in range(addr.shape[0]):
        n = size[i]
        p = _view(addr[i, 0], n, like)
        g = _view(addr[i, 1], n, like)
        acc = _view(addr[i, 2], n, like)
        st = _view(addr[i, 3], 1, step_like)
        st[0] += 1
        step = np.float64(st[0])
        lr, lr_decay, wd, eps = hp[i, 0], hp[i, 1], hp[i, 2], hp[i, 3]
        maximize = hp[i, 4] != 0
        clr = lr / (1.0 + (step - 1.0) * lr_decay)
        for j in range(n):
            d = np.float64(g[j])
            if maximize:
                d = -d
            if wd != 0:
                d = d + wd * np.float64(p[j])
            acc[j] = np.float64(acc[j]) + 1.0 * d * d
            std = np.sqrt(np.float64(acc[j])) + eps
            p[j] = np.float64(p[j]) + (-clr) * d / std
