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
    """``input @ weight.T + bias``, with weight of shape (out_features, in_features).

    Eagerly, the transpose of a leaf weight is a view, which the product hands to BLAS as
    it is, and whose gradient goes straight into the weight's (ops/movement.py). A weight
    with history, or any weight in a compiled program, has a transpose that copies (and
    its VJP transposes back): for a batch smaller than the layer, transposing the input
    and the result, ``(weight @ input.T).T``, then moves less data than transposing the
    weight."""
    if weight.ndim == 2 and getattr(input, "ndim", 0) == 2 and (
            weight._tape is not None or _tape._tls.tape.save_all):
        rows, (out_f, in_f) = input.shape[0], weight.shape
        if rows * (in_f + out_f) < out_f * in_f:
            out = ops.t(ops.matmul(weight, ops.t(input)))
            return out if bias is None else out + bias
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


def _weighted(elem, weight, x, reduction, mean_by_weights):
    """An elementwise loss times ``weight`` (of the input's shape, differentiable), reduced;
    'mean' divides by the summed weights (mse_loss, l1_loss) or, as PyTorch's huber_loss
    does, by the element count."""
    w = _t(weight)
    if tuple(w.shape) != tuple(x.shape):
        raise ValueError("Weights and input must have the same size.")
    elem = elem * w
    if reduction == "mean" and mean_by_weights:
        return ops.sum(elem) / ops.sum(w)
    return _reduce(elem, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error: ((input - target) ** 2) reduced by ``reduction``; an elementwise
    ``weight`` of the input's shape makes the mean sum(w e) / sum(w)."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    _warn_size(x, y)
    d = x - y
    if weight is not None:
        return _weighted(d * d, weight, x, reduction, True)
    return _named(_reduce(d * d, reduction), "MseLossBackward0")


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error, reduced by ``reduction``; ``weight`` as in mse_loss."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, y = _t(input), _t(target)
    _warn_size(x, y)
    if weight is not None:
        return _weighted(ops.abs(x - y), weight, x, reduction, True)
    return _named(_reduce(ops.abs(x - y), reduction), "L1LossBackward0")


def _check_weight(weight, n_classes):
    """weight as a float tensor of one entry per class, or PyTorch's error for any other."""
    w = _t(weight)
    if tuple(w.shape) != (n_classes,):
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes "
                           f"or no classes but got weight tensor of shape: "
                           f"[{', '.join(str(s) for s in w.shape)}]")
    return w


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (C,), (N, C) or (N, C, d1, ...)
    and class indices ``target`` of shape (), (N,) or (N, d1, ...); ``weight`` rescales each
    class, and targets equal to ``ignore_index`` count for nothing (also not in the mean,
    which divides by the summed weights of the targets kept)."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    x = _float(_t(input))
    tgt = _t(target)
    if tgt.dtype.kind not in "iu":
        raise RuntimeError(f"nll_loss expects class indices of an integer dtype as target, "
                           f"got {tgt.dtype}")
    w = None
    if weight is not None:
        w = _check_weight(weight, x.shape[1] if x.ndim >= 2 else x.shape[0] if x.ndim else 1)
    return ops.nll(x, tgt, w, reduction, ignore_index)


def _class_weight(w, ndim, cdim, dtype):
    """A (C,) weight viewed so that it broadcasts along the class dimension of an input."""
    shape = [1] * ndim
    shape[cdim] = w.shape[0]
    return ops.reshape(ops.to_dtype(w, dtype), *shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross entropy of raw scores ``input`` (C,), (N, C) or (N, C, d1, ...), classes along
    dim 1 (dim 0 for a single example), against either class indices (integer ``target``
    without the class dimension) or class probabilities (a float ``target`` of the input's
    shape). ``label_smoothing`` e in [0, 1] mixes the target with the uniform distribution:
    (1 - e) target + e / C.

    With class indices it is ``log_softmax`` then ``nll_loss`` (``weight``, ``ignore_index``
    and the weighted mean as there); the smoothing term -sum_c w_c log p_c is averaged with
    the same denominator. With probabilities the loss of an example is
    -sum_c w_c y_c log p_c, ``'mean'`` divides by the number of examples, and
    ``ignore_index`` is not allowed.
    """
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    eps = _number(label_smoothing, "cross_entropy", "label_smoothing", 8)
    if not 0.0 <= eps <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {eps}")
    x = _float(_t(input))
    if x.ndim == 0:
        raise RuntimeError("cross_entropy: input must have at least 1 dimension, (C,) or "
                           "(N, C, ...), with the classes along dim 1 (dim 0 for (C,))")
    cdim = 1 if x.ndim >= 2 else 0
    C = x.shape[cdim]
    tgt = _t(target)
    logp = log_softmax(x, dim=cdim)
    w = None if weight is None else _check_weight(weight, C)
    if tuple(tgt.shape) == tuple(x.shape):           # class probabilities
        if tgt.dtype.kind != "f":
            name = _TORCH_DTYPE.get(tgt.dtype.name, tgt.dtype.name)
            raise RuntimeError(f"Expected floating point type for target with class "
                               f"probabilities, got {name}")
        if ignore_index >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        y = tgt
        if eps > 0.0:
            y = y * (1.0 - eps) + eps / C
        prod = logp * y
        if w is not None:
            prod = prod * _class_weight(w, x.ndim, cdim, x.dtype)
        return _reduce(-ops.sum(prod, cdim), reduction)
    nll = nll_loss(logp, tgt, w, ignore_index=ignore_index, reduction=reduction)
    if eps == 0.0:
        return nll
    # the smoothing term: -sum_c w_c log p_c for each target kept, reduced as nll reduces
    prod = logp if w is None else logp * _class_weight(w, x.ndim, cdim, x.dtype)
    # the mask and the mean's denominator read the targets' values: under compile that
    # makes the function run eagerly (with its warning) instead of replaying stale targets
    keep = tgt.numpy() != ignore_index
    smooth = -ops.sum(prod, cdim) * ops.as_tensor(keep.astype(x.dtype))
    if reduction == "mean":
        kept = keep.sum() if w is None else w._data[tgt._data[keep]].sum()
        smooth = ops.sum(smooth) / float(kept)
    else:
        smooth = _reduce(smooth, reduction)
    return nll * (1.0 - eps) + smooth * (eps / C)


def _warn_size(x, y):
    if tuple(x.shape) != tuple(y.shape):
        warnings.warn(f"Using a target size ({tuple(y.shape)}) that is different to the input "
                      f"size ({tuple(x.shape)}). This will likely lead to incorrect results "
                      f"due to broadcasting. Please ensure they have the same size.",
                      UserWarning, stacklevel=3)


def _quadratic_then_linear(d, k):
    """0.5 d^2 where |d| < k and k (|d| - k/2) beyond, without a branch on values: with
    c = hardtanh(d, -k, k) it is 0.5 c^2 + k (|d| - |c|). Its gradient is d inside and
    k sign(d) from |d| = k on, and its second derivative 1 inside (also at 0) and 0 from the
    bounds on, as PyTorch's (hardtanh's gradient is 0 at its bounds, clamp's 1)."""
    c = _hardtanh(d, -k, k)
    return c * c * 0.5 + (ops.abs(d) - ops.abs(c)) * k


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 (x - y)^2 / beta where |x - y| < beta, |x - y| - beta / 2 elsewhere; ``beta=0``
    is the L1 loss. beta must not be negative."""
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    beta = _number(beta, "smooth_l1_loss", "beta", 6)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    x, y = _promote(_float(_t(input)), _float(_t(target)))
    _warn_size(x, y)
    d = x - y
    elem = ops.abs(d) if beta == 0.0 else _quadratic_then_linear(d, beta) / beta
    return _named(_reduce(elem, reduction), "SmoothL1LossBackward0")


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 (x - y)^2 where |x - y| < delta, delta (|x - y| - delta / 2) elsewhere: the smooth
    L1 loss times delta. delta must be positive. An elementwise ``weight`` of the input's
    shape multiplies each term ('mean' still divides by the element count, as PyTorch's)."""
    _check_reduction(reduction)
    delta = _number(delta, "huber_loss", "delta", 4)
    if not delta > 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    x, y = _promote(_float(_t(input)), _float(_t(target)))
    _warn_size(x, y)
    elem = _quadratic_then_linear(x - y, delta)
    if weight is not None:
        return _weighted(elem, weight, x, reduction, False)
    return _named(_reduce(elem, reduction), "HuberLossBackward0")


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence with ``input`` given as log-probabilities: elementwise
    y (log y - x), or exp(y) (y - x) when ``log_target`` (target as log-probabilities too),
    0 where y = 0. ``reduction='batchmean'`` divides the sum by the batch size input.size(0),
    which is the divergence's definition; ``'mean'`` divides by every element and warns."""
    legacy = size_average is not None or reduce is not None
    # as in PyTorch, the deprecated arguments choose the reduction, and 'batchmean' asked for
    # beside them still divides their result by the batch size
    batchmean = reduction == "batchmean"
    reduction = _legacy(size_average, reduce, "sum" if batchmean else reduction)
    _check_reduction(reduction)
    if reduction == "mean" and not legacy:
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns "
                      "with the KL div math definition.'mean' will be changed to behave the "
                      "same as 'batchmean' in the next major release.", UserWarning,
                      stacklevel=2)
    x, y = _promote(_float(_t(input)), _float(_t(target)))
    if log_target:
        elem = ops.exp(y) * (y - x)
    else:
        # y log y with 0 at y = 0: the clamp keeps log finite there (0 * log(tiny) = 0)
        tiny = float(np.finfo(y._data.dtype).tiny)
        elem = y * ops.log(ops.clamp(y, min=tiny)) - y * x
    out = _reduce(elem, reduction)
    return out / x.shape[0] if batchmean and x.ndim else out


# ---- activations composed from primitive ops ------------------------------------------------
# None reads a tensor's value to choose a branch (a comparison would make `compile` run the
# caller eagerly, and `where` would freeze its mask): one-sided pieces come from relu and
# clamp, whose gradients at the kink are PyTorch's (relu: 0 at 0; clamp: 1 at its bounds),
# and softplus's threshold switch is the 0/1 mask clamp(ceil(beta*x - threshold), 0, 1).
_TORCH_DTYPE = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char",
                "uint8": "Byte", "bool": "Bool"}
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_SQRT1_2 = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


def _tensor_arg(input, fn):
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return input


def _float_arg(input, fn, kernel):
    """input, which must be a float tensor (PyTorch's kernels for these reject integers)."""
    _tensor_arg(input, fn)
    d = input._data.dtype
    if d.kind != "f":
        name = _TORCH_DTYPE.get(d.name, d.name)
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')
    return input


def _number(v, fn, arg, pos=None):
    if not isinstance(v, (int, float, np.integer, np.floating, np.bool_)):
        where = f" (position {pos})" if pos else ""
        raise TypeError(f"{fn}(): argument '{arg}'{where} must be Number, not "
                        f"{type(v).__name__}")
    return float(v)


def _maybe_inplace(input, inplace, fn, grad_fn_inplace):
    """Run fn(input) out of place, or (inplace=True) store it into input under the in-place
    rules: a leaf that requires grad raises, and a value another record saved raises at
    backward. fn runs on a clone, so its own records never read the overwritten storage."""
    if not inplace:
        return fn(input)
    out = ops._inplace(input, lambda t: fn(ops.clone(t)))
    return _named(out, grad_fn_inplace)


def _neg_part(x):
    """min(x, 0), with gradient 1 at 0 (clamp passes its bound), 0 above."""
    return ops.clamp(x, max=0.0)


def _softplus0(v):
    """log(1 + exp(v)) without overflow: relu(v) + log1p(exp(-|v|)), with -|v| written as
    v - 2 relu(v) so that the gradient at 0 is 1/2 (abs's would be 0 there)."""
    r = ops.relu(v)
    return r + ops.log1p(ops.exp(v - r * 2.0))


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * input)) / beta``, and ``input`` itself where
    ``beta * input > threshold`` (PyTorch's switch to the identity); stable for any input.

    >>> import tapegrad as tg
    >>> tg.nn.functional.softplus(tg.tensor([0.0, 1000.0])).tolist()
    [0.6931471824645996, 1000.0]
    """
    _float_arg(input, "softplus", "softplus_cpu")
    beta = _number(beta, "softplus", "beta")
    threshold = _number(threshold, "softplus", "threshold")
    u = input if beta == 1.0 else input * beta
    over = ops.clamp(ops.ceil(u - threshold), 0.0, 1.0)     # 1 where beta*x > threshold
    soft = _softplus0(ops.clamp(u, max=threshold))          # never overflows
    if beta != 1.0:
        soft = soft / beta
    # where `over` is 0 the identity branch must be finite (0 * inf is nan): clamp x on the
    # side where the identity is never taken
    big = float(np.finfo(input._data.dtype).max)
    x = ops.clamp(input, min=-big) if beta >= 0 else ops.clamp(input, max=big)
    return _named(over * x + (1.0 - over) * soft, "SoftplusBackward0")


def silu(input, inplace=False):
    """``input * sigmoid(input)`` (the swish)."""
    _float_arg(input, "silu", "silu_cpu")
    return _maybe_inplace(input, inplace, lambda x: _named(x * ops.sigmoid(x), "SiluBackward0"),
                          "SiluBackward0")


def gelu(input, *, approximate="none"):
    """``input * Phi(input)`` with Phi the standard normal CDF (``approximate='none'``), or
    PyTorch's tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    if not isinstance(approximate, str):
        raise TypeError(f"gelu(): argument 'approximate' must be str, not "
                        f"{type(approximate).__name__}")
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    x = _float_arg(input, "gelu", "GeluKernelImpl")
    if approximate == "none":
        # erfc(-x/sqrt 2) = 1 + erf(x/sqrt 2), without its cancellation for negative x
        return _named(x * 0.5 * ops.erfc(x * -_SQRT1_2), "GeluBackward0")
    # tanh is exactly +-1 beyond |x| = 10 in both dtypes; clamping there keeps x^3 (and the
    # gradient through it) finite for any input without changing a value or a gradient
    c = ops.clamp(x, -10.0, 10.0)
    inner = (c + c * c * c * 0.044715) * _SQRT_2_OVER_PI
    return _named(x * 0.5 * (ops.tanh(inner) + 1.0), "GeluBackward0")


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``input`` where positive, ``negative_slope * input`` elsewhere (gradient
    ``negative_slope`` at 0, as in PyTorch)."""
    _float_arg(input, "leaky_relu", "leaky_relu_cpu")
    s = _number(negative_slope, "leaky_relu", "negative_slope", 2)

    def f(x):
        return _named(ops.relu(x) + _neg_part(x) * s, "LeakyReluBackward0")
    return _maybe_inplace(input, inplace, f, "LeakyReluBackward1")


def _elu(x, alpha, scale, input_scale, name):
    neg = _neg_part(x)
    if input_scale != 1.0:
        neg = neg * input_scale
    pos = ops.relu(x)
    if scale != 1.0:
        pos = pos * scale
    return _named(pos + ops.expm1(neg) * (alpha * scale), name)


def elu(input, alpha=1.0, inplace=False):
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere (gradient ``alpha``
    at 0, as in PyTorch)."""
    _float_arg(input, "elu", "elu_cpu")
    a = _number(alpha, "elu", "alpha", 2)
    return _maybe_inplace(input, inplace, lambda x: _elu(x, a, 1.0, 1.0, "EluBackward0"),
                          "EluBackward1")


def selu(input, inplace=False):
    """``scale * elu(input, alpha)`` with the self-normalising constants of Klambauer et al."""
    _float_arg(input, "selu", "elu_cpu")
    return _maybe_inplace(
        input, inplace, lambda x: _elu(x, _SELU_ALPHA, _SELU_SCALE, 1.0, "EluBackward0"),
        "EluBackward1")


def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``; ``alpha`` must not be 0."""
    _float_arg(input, "celu", "elu_cpu")
    a = _number(alpha, "celu", "alpha", 2)
    if a == 0.0:
        raise RuntimeError("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(input, inplace, lambda x: _elu(x, a, 1.0, 1.0 / a, "CeluBackward0"),
                          "CeluBackward1")


def _hardtanh(x, lo, hi):
    if x._data.dtype.kind in "iub":           # PyTorch keeps integers integer (no gradient)
        return ops.to_dtype(ops.clamp(x, lo, hi), x._data.dtype)
    c = ops.clamp(x, lo, hi)
    # PyTorch's gradient is 0 at the bounds, where clamp's is 1. Each correction is exactly
    # 0 in value (d >= 0 there) and subtracts the 1 at its bound: d relu(d)/dd is 0 at 0.
    # (With the other bound infinite, c may be infinite: clamp d or e to keep it finite.)
    if np.isfinite(lo):
        d = c - lo if np.isfinite(hi) else ops.clamp(c - lo, max=1.0)
        c = c + (ops.relu(d) - d)
    if np.isfinite(hi) and hi > lo:
        e = hi - c if np.isfinite(lo) else ops.clamp(hi - c, max=1.0)
        c = c + (e - ops.relu(e))
    return _named(c, "HardtanhBackward0")


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``input`` clamped to [min_val, max_val], with gradient 0 at the bounds (PyTorch's)."""
    _tensor_arg(input, "hardtanh")
    lo = _number(min_val, "hardtanh", "min_val", 2)
    hi = _number(max_val, "hardtanh", "max_val", 3)
    if lo > hi:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(input, inplace, lambda x: _hardtanh(x, lo, hi), "HardtanhBackward0")


def relu6(input, inplace=False):
    """``hardtanh(input, 0, 6)``."""
    _tensor_arg(input, "relu6")
    return _maybe_inplace(input, inplace, lambda x: _hardtanh(x, 0.0, 6.0), "HardtanhBackward0")


def logsigmoid(input):
    """``log(sigmoid(input))`` without overflow: ``-softplus(-input)``."""
    _float_arg(input, "logsigmoid", "log_sigmoid_cpu")
    return _named(-_softplus0(-input), "LogSigmoidBackward0")


def softsign(input):
    """``input / (1 + |input|)``."""
    _tensor_arg(input, "softsign")
    return input / (ops.abs(input) + 1)


def tanhshrink(input):
    """``input - tanh(input)``."""
    _tensor_arg(input, "tanhshrink")
    return input - ops.tanh(input)


# ---- one_hot, pad, normalize ---------------------------------------------------------------------
def one_hot(tensor, num_classes=-1):
    """int64 indicator vectors: a new last dim of size ``num_classes`` (-1: the largest
    class plus one) with a 1 at each entry's class. Not differentiable."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"one_hot(): argument 'input' must be Tensor, not "
                        f"{type(tensor).__name__}")
    a = tensor._data
    if a.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    from ..tensor import _note_read
    _note_read(tensor)
    if a.size and a.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    n = int(num_classes)
    if n == -1:
        if a.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        n = int(a.max()) + 1
    elif a.size and a.max() >= n:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return ops.as_tensor((a[..., None] == np.arange(n)).astype(np.int64))


def _pad_source(n, lo, hi, mode):
    """Source positions along one dim of size n padded by lo before and hi after (negative:
    cropped), and which of them are inside (constant mode fills the others)."""
    i = np.arange(-lo, n + hi)
    inside = (i >= 0) & (i < n)
    if mode == "constant":
        return np.clip(i, 0, max(n - 1, 0)), inside
    if mode == "replicate":
        return np.clip(i, 0, n - 1), inside
    if mode == "circular":
        if lo > n or hi > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        return i % n, inside
    if lo >= n or hi >= n:             # reflect
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                           f"input dimension, but got: padding ({lo}, {hi}) at dimension of "
                           f"size {n}")
    period = 2 * (n - 1) if n > 1 else 1
    j = np.abs(i) % period
    return np.where(j >= n, period - j, j), inside


def pad(input, pad, mode="constant", value=None):
    """Pad (or, with negative amounts, crop) the last dims: ``pad`` holds (before, after)
    pairs starting from the last dim. ``mode``: ``'constant'`` (``value``, default 0),
    ``'reflect'``, ``'replicate'`` or ``'circular'``. Differentiable: the gradient of the
    padding flows back to the positions it copies (none for constant padding)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"pad(): argument 'input' must be Tensor, not {type(input).__name__}")
    pads = [int(p) for p in pad]
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    a = input._data
    if len(pads) // 2 > a.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input "
                           "dimension")
    if mode not in ("constant", "reflect", "replicate", "circular"):      # PyTorch's type
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and value not in (None, 0, 0.0):
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument.")
    srcs, masks = [], []
    for d in range(a.ndim):
        k = a.ndim - 1 - d
        lo, hi = (pads[2 * k], pads[2 * k + 1]) if 2 * k < len(pads) else (0, 0)
        if a.shape[d] + lo + hi < 0:
            raise RuntimeError(f"The input size {a.shape[d]}, plus negative padding {lo} and "
                               f"{hi} resulted in a negative output size")
        s, m = _pad_source(a.shape[d], lo, hi, mode)
        srcs.append(s)
        masks.append(m)
    if a.size == 0 and mode == "constant":
        shape = tuple(len(s) for s in srcs)
        return ops.as_tensor(np.full(shape, 0 if value is None else value, a.dtype))
    grids = np.ix_(*srcs) if a.ndim else ()
    flat = np.ravel_multi_index(np.broadcast_arrays(*grids), a.shape) if a.ndim else \
        np.zeros((), np.int64)
    out = ops.take(input, flat.reshape(-1), flat.shape)
    if mode != "constant":
        return out
    inside = np.ones(flat.shape, bool)
    for d, m in enumerate(masks):
        inside &= m.reshape((1,) * d + (-1,) + (1,) * (a.ndim - d - 1))
    if inside.all():
        return out
    fill = ops.as_tensor(np.asarray(0 if value is None else value, a.dtype))
    return ops.where(ops.as_tensor(inside), out, fill)


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """``input`` divided by its p-norm along ``dim``, the norm at least ``eps``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"normalize(): argument 'input' must be Tensor, not "
                        f"{type(input).__name__}")
    from ..ops.composite import norm
    return input / ops.clamp(norm(input, p, dim=dim, keepdim=True), min=eps)
