"""Dropout."""
import numbers

import numpy as np

from ...tensor import Tensor
from ..init import _draw
from .module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the others by
    ``1 / (1 - p)`` (so the expected value is unchanged); in eval mode, the identity.

    The mask is drawn from tapegrad's generator (``tapegrad.manual_seed``), so it is
    reproducible, but not the mask PyTorch draws for the same seed.

    >>> import tapegrad as tg
    >>> drop = tg.nn.Dropout(0.5)
    >>> y = drop(tg.ones(1000))
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> drop.eval()(tg.ones(3))
    tensor([1., 1., 1.])
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"dropout(): argument 'input' must be Tensor, not "
                            f"{type(input).__name__}")
        if not self.training or self.p == 0:
            return input
        a = input._data
        if a.dtype.kind != "f":
            raise RuntimeError(f"dropout: expected a floating point input, got {a.dtype}")
        if self.p == 1:
            scale = np.zeros(a.shape, a.dtype)
        else:
            keep = _draw("random", a.shape) >= self.p
            scale = (keep / (1.0 - self.p)).astype(a.dtype)
        s = Tensor(scale)
        return input.mul_(s) if self.inplace else input * s

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
