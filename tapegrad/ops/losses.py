"""Fused ops used by nn.functional: softmax and log_softmax, binary cross entropy on
probabilities (bce) and on logits (bce_with_logits), and nll_loss (nll).

Each computes its value with numpy and makes one record whose VJP is a fused kernel
(kernels/fused.py); ``_reduced`` applies the loss's reduction ('none', 'mean' or 'sum').
"""
import builtins

import numpy as np

from .. import kernels as K
from ..kernels import DT_BIT, NAME_SHIFT, RG_BIT
from ..tensor import Tensor, _dim, float64, grad_enabled
from .operands import _float, _need_tensor
from .record import _N, _graph, _plain, _record, _recording, _slot, _tape, _tls


def _guard(t):
    """While a function is traced for replay, note that its recording is only valid for
    t's current values (integer data baked into records)."""
    tp = _tls.tape
    if tp.save_all and tp.guards is not None:
        tp.guards.append((t, np.array(t._data, copy=True)))

_max = builtins.max     # the package defines max() with torch's meaning; this is Python's


def softmax(x, dim, log=False):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "softmax")
    if x._data.dtype.kind != "f":
        raise NotImplementedError(
            f"{'log_' if log else ''}softmax is not implemented for {x._data.dtype} tensors; "
            f"call .float() first")
    x = _float(x)
    a = x._data
    d = _dim(dim, a.ndim)
    if a.ndim == 0:
        out = np.zeros_like(a) if log else np.ones_like(a)
    else:
        m = np.max(a, axis=d, keepdims=True)
        z = a - m
        if log:
            out = z - np.log(np.sum(np.exp(z), axis=d, keepdims=True))
        else:
            e = np.exp(z)
            out = e / np.sum(e, axis=d, keepdims=True)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    D = a.shape[d] if a.ndim else 1
    inner = 1
    for s in a.shape[d + 1:]:
        inner *= s
    return _record(K.LOGSOFTMAX if log else K.SOFTMAX,
                   _N["log_softmax" if log else "softmax"], out, x, p0=D, p1=inner)


def _reduced(elem, reduction):
    """(value, reduce flag, scale) of an elementwise loss under `reduction`."""
    if reduction == "none":
        return elem, 0, 1.0
    total = np.add.reduce(elem, axis=None)        # cheaper than .mean() on small arrays
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total / elem.size, elem.dtype), 1, 1.0 / _max(elem.size, 1)
    return np.asarray(total, elem.dtype), 1, 1.0


def bce_with_logits(z, y, pos_weight, reduction):
    """Unweighted, numerically stable BCE on logits: reduction 'none', 'mean' or 'sum'."""
    zs, ys = z._data, y._data
    sp = np.logaddexp(0, -zs)           # log(1 + exp(-z))
    if pos_weight is None:
        lw = 1.0
    else:
        lw = 1.0 + (pos_weight._data - 1.0) * ys
    elem = ((1.0 - ys) * zs + lw * sp).astype(zs.dtype, copy=False)
    out, reduce, scale = _reduced(elem, reduction)
    if not _recording(z, y, pos_weight):
        return _plain(out)
    return _record(K.BCEWL, _N["bcewl"], out, z, y, pos_weight, p1=reduce, f0=scale)


def bce(x, y, reduction):
    """Binary cross entropy on probabilities, logs clamped at -100 (PyTorch's rule)."""
    xs, ys = x._data, y._data
    with np.errstate(divide="ignore"):
        elem = -(ys * np.maximum(np.log(xs), -100) + (1 - ys) * np.maximum(np.log1p(-xs), -100))
    out, reduce, scale = _reduced(elem.astype(xs.dtype, copy=False), reduction)
    if not _recording(x, y):
        return _plain(out)
    return _record(K.BCE, _N["bce"], out, x, y, None, 0, reduce, scale)


def nll(x, target, weight, reduction, ignore_index):
    """nll_loss on log-probabilities x of shape (N, C) or (C,), class indices target."""
    a = x._data
    tshape = target._data.shape
    # the class indices become the record's index block and weights: a recording replays
    # only while they are the same (compile checks them at each call, replay.Guard)
    _guard(target)
    tgt = target._data.astype(np.int64).reshape(-1)
    if a.ndim == 1:
        N, Cn, inner = 1, a.shape[0], 1
    elif a.ndim >= 2:
        N, Cn = a.shape[0], a.shape[1]
        inner = int(np.prod(a.shape[2:], dtype=np.int64))
        if tuple(tshape) != (a.shape[0],) + tuple(a.shape[2:]):
            if a.ndim == 2:
                raise ValueError(f"Expected input batch_size ({N}) to match target batch_size "
                                 f"({tshape[0] if len(tshape) else 1}).")
            raise RuntimeError(f"nll_loss: input of shape {tuple(a.shape)} needs a target of "
                               f"shape {(a.shape[0],) + tuple(a.shape[2:])}, got {tuple(tshape)}")
    else:
        raise RuntimeError("nll_loss: input must have at least 1 dimension (C,) or (N, C, ...)")
    M = N * inner          # one picked element per (sample, position)
    if tgt.shape[0] != M:
        raise ValueError(f"Expected input batch_size ({N}) to match target batch_size "
                         f"({tgt.shape[0]}).")
    valid = tgt != ignore_index
    bad = valid & ((tgt < 0) | (tgt >= Cn))
    if bad.any():
        raise IndexError(f"Target {int(tgt[bad][0])} is out of bounds for {Cn} classes")
    safe = np.where(valid, tgt, 0)
    w = np.ones(M, a.dtype) if weight is None else weight._data[safe].astype(a.dtype)
    w = np.where(valid, w, 0).astype(a.dtype)
    pos = np.arange(M)
    flat = (pos // inner) * (Cn * inner) + safe * inner + pos % inner
    picked = a.reshape(-1)[flat]
    if reduction == "none":
        coef = w
        out = (-coef * picked).reshape(tshape if a.ndim >= 2 else ())
        reduced = 0.0
    else:
        denom = w.sum() if reduction == "mean" else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(-(w * picked).sum() / denom, a.dtype)   # nan when all ignored
        coef = (w / denom).astype(a.dtype) if denom != 0 else np.zeros_like(w)
        reduced = 1.0
    out = np.asarray(out, a.dtype)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    tp = _tape()
    sa = _slot(tp, x)
    cz = _plain(np.ascontiguousarray(coef, a.dtype))
    sb = _slot(tp, cz)
    tp.save(sb, cz._data)
    io = tp.store_index(flat.astype(np.int64))
    fn = _N["nll"]
    word = K.NLL | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, sa, sb, -1, io, M, out, False, reduced)
    return _graph(out, tp, gid, fn)
