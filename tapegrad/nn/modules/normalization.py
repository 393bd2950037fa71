"""LayerNorm and BatchNorm1d, composed of recorded ops (mean, square, sqrt), so their
gradients come from the tape."""
import numbers

import numpy as np

from ... import creation
from ...grad_mode import no_grad
from ...tensor import Tensor, canonical_dtype
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["LayerNorm", "BatchNorm1d"]


def _dt(dtype):
    return None if dtype is None else canonical_dtype(dtype)


class LayerNorm(Module):
    """Normalise over the last ``len(normalized_shape)`` dimensions: ``(x - mean) /
    sqrt(var + eps)`` with the biased variance, then ``* weight + bias`` (both shaped
    ``normalized_shape``, starting at ones and zeros) when ``elementwise_affine``.

    >>> import tapegrad as tg
    >>> ln = tg.nn.LayerNorm(4)
    >>> y = ln(tg.tensor([[1.0, 2.0, 3.0, 4.0]]))
    >>> round(y.sum().item(), 6), round(y.pow(2).mean().item(), 3)
    (0.0, 1.0)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.empty(*self.normalized_shape, dtype=_dt(dtype),
                                                   device=device))
            if bias:
                self.bias = Parameter(creation.empty(*self.normalized_shape,
                                                     dtype=_dt(dtype), device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        ns = self.normalized_shape
        k = len(ns)
        if tuple(input.shape[input.dim() - k:]) != ns or input.dim() < k:
            raise RuntimeError(
                f"Given normalized_shape={list(ns)}, expected input with shape "
                f"[*, {', '.join(str(s) for s in ns)}], but got input of size"
                f"{list(input.shape)}")
        dims = tuple(range(-k, 0))
        mean = input.mean(dims, keepdim=True)
        centred = input - mean
        var = (centred * centred).mean(dims, keepdim=True)
        y = centred / (var + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class BatchNorm1d(Module):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs over the batch (and
    length) dimensions, per channel ``C = num_features``.

    In training mode it normalises with the batch's mean and biased variance and, when
    ``track_running_stats``, updates the buffers ``running_mean`` and ``running_var``
    (``(1 - momentum) * running + momentum * batch``, the variance unbiased; with
    ``momentum=None`` a cumulative average) and counts ``num_batches_tracked``. In eval
    mode it normalises with the running statistics (or the batch's when it keeps none).
    ``affine`` adds ``weight`` (ones) and, unless ``bias=False``, ``bias`` (zeros).

    >>> import tapegrad as tg
    >>> bn = tg.nn.BatchNorm1d(2)
    >>> _ = bn(tg.tensor([[0.0, 10.0], [2.0, 30.0]]))
    >>> bn.running_mean
    tensor([0.1000, 2.0000])
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        d = _dt(dtype)
        if affine:
            self.weight = Parameter(creation.empty(num_features, dtype=d, device=device))
            if bias:
                self.bias = Parameter(creation.empty(num_features, dtype=d, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, dtype=d))
            self.register_buffer("running_var", creation.ones(num_features, dtype=d))
            self.register_buffer("num_batches_tracked",
                                 creation.tensor(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"batch_norm(): argument 'input' must be Tensor, not "
                            f"{type(input).__name__}")
        if input.dim() not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.dim()}D input)")
        c = input.shape[1]
        if c != self.num_features:
            raise RuntimeError(f"running_mean should contain {c} elements not "
                               f"{self.num_features}")
        dims = (0,) if input.dim() == 2 else (0, 2)
        shape = (1, c) if input.dim() == 2 else (1, c, 1)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        if use_batch:
            n = input.numel() // c
            if n <= 1:
                raise ValueError(f"Expected more than 1 value per channel when training, "
                                 f"got input size {input.shape}")
            mean = input.mean(dims, keepdim=True)
            centred = input - mean
            var = (centred * centred).mean(dims, keepdim=True)
            if self.training and self.running_mean is not None:
                with no_grad():
                    m = mean.detach().reshape(c)
                    v = var.detach().reshape(c) * (n / (n - 1))
                    rm, rv = self.running_mean, self.running_var
                    rm.copy_(rm * (1 - factor) + m * factor)
                    rv.copy_(rv * (1 - factor) + v * factor)
        else:
            mean = self.running_mean.reshape(*shape)
            var = self.running_var.reshape(*shape)
            centred = input - mean
        y = centred / (var + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(*shape)
        if self.bias is not None:
            y = y + self.bias.reshape(*shape)
        return y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")
