"""nn.init: fill a tensor in place with a standard initialisation.

Every function works under ``no_grad`` (so it may be applied to parameters), changes the
tensor in place and returns it. Random values come from tapegrad's generator (the
process-wide one ``tapegrad.manual_seed`` seeds, or ``generator=``): the same seed gives
the same values on every run, but not the values PyTorch draws for that seed.

>>> import tapegrad as tg
>>> w = tg.empty(3, 5)
>>> tg.nn.init.xavier_uniform_(w) is w
True
>>> bound = (6 / (3 + 5)) ** 0.5
>>> float(w.abs().max()) <= bound
True
"""
import math
import numbers
import warnings

import numpy as np

from .. import creation as _creation
from ..grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]


def _draw(method, *args, generator=None):
    draw = getattr(_creation, "draw", None)
    if draw is not None:
        return draw(method, *args, generator=generator)
    if generator is not None:
        raise TypeError("generator= needs tapegrad.Generator")
    return _creation._draw(method, *args)


def _check(tensor, fn):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}(): argument 'tensor' must be a tapegrad.Tensor, not "
                        f"{type(tensor).__name__}")


def _fill(tensor, values):
    """Write `values` (broadcast, cast to tensor's dtype) into tensor in place."""
    with no_grad():
        tensor.copy_(Tensor(np.asarray(values)))
    return tensor


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for an activation: 1 for linear, conv and sigmoid,
    5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (``param`` is
    the slope, default 0.01), 3/4 for selu."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fans(tensor):
    if tensor.dim() < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         "2 dimensions")
    shape = tensor.shape
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with values drawn uniformly from [a, b)."""
    _check(tensor, "uniform_")
    return _fill(tensor, _draw("uniform", a, b, tuple(tensor.shape), generator=generator))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with values drawn from the normal distribution N(mean, std**2)."""
    _check(tensor, "normal_")
    return _fill(tensor, _draw("normal", mean, std, tuple(tensor.shape), generator=generator))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std**2) values redrawn until they fall in [a, b]."""
    _check(tensor, "trunc_normal_")
    shape = tuple(tensor.shape)
    out = _draw("normal", mean, std, shape, generator=generator)
    bad = (out < a) | (out > b)
    for _ in range(1000):
        if not bad.any():
            break
        out[bad] = _draw("normal", mean, std, int(bad.sum()), generator=generator)
        bad = (out < a) | (out > b)
    else:
        raise ValueError(f"trunc_normal_: the interval [{a}, {b}] holds almost none of "
                         f"N({mean}, {std}**2); choose a and b nearer the mean")
    return _fill(tensor, out)


def constant_(tensor, val):
    """Fill with ``val``."""
    _check(tensor, "constant_")
    return _fill(tensor, val)


def ones_(tensor):
    """Fill with 1."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fill with 0."""
    return constant_(tensor, 0.0)


def eye_(tensor):
    """Fill a matrix with the identity (ones on the diagonal)."""
    _check(tensor, "eye_")
    if tensor.dim() != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


def _zero_elements(tensor):
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot's uniform initialisation: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _fans(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot's normal initialisation: N(0, std**2), std = gain * sqrt(2 / (fan_in +
    fan_out))."""
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He's uniform initialisation: U(-b, b), b = gain * sqrt(3 / fan), with
    ``gain = calculate_gain(nonlinearity, a)`` and fan the ``mode`` side."""
    _check(tensor, "kaiming_uniform_")
    if _zero_elements(tensor):
        return tensor
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He's normal initialisation: N(0, std**2), std = gain / sqrt(fan)."""
    _check(tensor, "kaiming_normal_")
    if _zero_elements(tensor):
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1, generator=None):
    """A (semi-)orthogonal matrix times ``gain``: the tensor seen as rows = size(0) by
    cols = numel / rows has orthonormal rows or columns, whichever are fewer (the Q of
    the QR decomposition of a normal matrix, signs fixed by R's diagonal)."""
    _check(tensor, "orthogonal_")
    if tensor.dim() < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    m = _draw("normal", 0.0, 1.0, (rows, cols), generator=generator)
    if rows < cols:
        m = m.T
    q, r = np.linalg.qr(m)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tuple(tensor.shape)))
