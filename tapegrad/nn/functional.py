"""Losses and activations, as in ``torch.nn.functional``.

Most are compositions of the primitive ops (so they differentiate for free); softmax,
log_softmax, binary_cross_entropy_with_logits and nll_loss have fused, numerically stable
records of their own.
"""
import warnings

import numpy as np

from .. import ops
from ..ops import _t, _promote, _float
from ..tensor import Tensor
from .. import tape as _tape

_REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction; use one of "
                         f"{', '.join(repr(r) for r in _REDUCTIONS)}")


def _legacy(size_average, reduce, reduction):
    """The reduction the deprecated size_average/reduce arguments ask for, as in PyTorch:
    either one given overrides ``reduction`` (each defaults to True), with its warning."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use "
                  f"reduction='{ret}' instead.", UserWarning, stacklevel=3)
    return ret


def _reduce(x, reduction):
    if reduction == "mean":
        return ops.mean(x)
    if reduction == "sum":
        return ops.sum(x)
    return x


def _named(t, name):
    """Show a composed loss under PyTorch's grad_fn name."""
    if isinstance(t, Tensor) and t._tape is not None:
        t._fn = _tape.name_id(name)
        t._tape.rename(t._tape.local(t._gid), t._fn)
    return t


def relu(input, inplace=False):
    """max(input, 0); with ``inplace=True`` it overwrites input and returns it (a leaf that
    requires grad raises, and a saved value it overwrites raises at backward, as in
    PyTorch)."""
    if inplace:
        if not isinstance(input, Tensor):
            raise TypeError(f"relu(inplace=True) needs a tensor, got {type(input).__name__}")
        return ops._inplace(input, ops.relu, lambda a: np.maximum(a, 0, out=a))
    return ops.relu(input)


def sigmoid(input):
    return ops.sigmoid(input)


def tanh(input):
    return ops.tanh(input)


def softmax(input, dim=None):
    if dim is None:
        raise TypeError("softmax() needs dim=: the dimension along which entries sum to 1")
    return ops.softmax(_t(input), dim)


def log_softmax(input, dim=None):
    if dim is None:
        raise TypeError("log_softmax() needs dim=: the dimension to normalise over")
    return ops.softmax(_t(input), dim, log=True)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``, with weight of shape (out_features, in_features)."""
    out = ops.matmul(input, ops.t(weight) if weight.ndim == 2 else weight)
    return out if bias is None else out + bias


def _same_size(input, target, what):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"Target size ({tuple(target.shape)}) must be the same as input size "
                         f"({tuple(input.shape)}) for {what}")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """Binary cross entropy on raw scores (logits), computed without overflow.

    loss = -w [p y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], with ``pos_weight`` p
    weighting positive examples and ``weight`` w rescaling each element.
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    z, y = _promote(_float(_t(input)), _float(_t(target)))
    _same_size(z, y, "binary_cross_entropy_with_logits")
    pw = None
    if pos_weight is not None:
        pw = ops.to_dtype(_t(pos_weight), z.dtype)
    if weight is None:
        return ops.bce_with_logits(z, y, pw, reduction)
    elem = ops.bce_with_logits(z, y, pw, "none") * ops.to_dtype(_t(weight), z.dtype)
    return _named(_reduce(elem, reduction), "BinaryCrossEntropyWithLogitsBackward0")


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """Binary cross entropy on probabilities in [0, 1]; logs are clamped at -100 as in PyTorch."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _promote(_float(_t(input)), _float(_t(target)))
    _same_size(x, y, "binary_cross_entropy")
    d = x.data
    if ((d < 0) | (d > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    if weight is None:
        return ops.bce(x, y, reduction)
    elem = ops.bce(x, y, "none") * ops.to_dtype(_t(weight), x.dtype)
    return _named(_reduce(elem, reduction), "BinaryCrossEntropyBackward0")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Mean squared error: ((input - target) ** 2) reduced by ``reduction``."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    if tuple(x.shape) != tuple(y.shape):
        warnings.warn(f"Using a target size ({tuple(y.shape)}) that is different to the input "
                      f"size ({tuple(x.shape)}). This will likely lead to incorrect results "
                      f"due to broadcasting. Please ensure they have the same size.",
                      UserWarning, stacklevel=2)
    d = x - y
    return _named(_reduce(d * d, reduction), "MseLossBackward0")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    return _named(_reduce(ops.abs(_t(input) - _t(target)), reduction), "L1LossBackward0")


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood for log-probabilities ``input`` (N, C) and class indices."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = _float(_t(input))
    tgt = _t(target)
    if tgt.dtype.kind not in "iu":
        raise RuntimeError(f"nll_loss expects class indices of an integer dtype as target, "
                           f"got {tgt.dtype}")
    w = None if weight is None else _t(weight)
    return ops.nll(x, tgt, w, reduction, ignore_index)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """log_softmax over classes (dim 1, or 0 for a single example) followed by nll_loss."""
    if label_smoothing:
        raise NotImplementedError("label_smoothing is not supported yet")
    reduction = _legacy(size_average, reduce, reduction)
    x = _float(_t(input))
    return nll_loss(log_softmax(x, dim=1 if x.ndim >= 2 else 0), target, weight,
                    ignore_index=ignore_index, reduction=reduction)
