"""Stochastic gradient descent, with momentum, dampening, Nesterov momentum and weight
decay, as ``torch.optim.SGD``."""
import numpy as np

from ..tensor import Tensor
from .optimizer import _Fused, required


class SGD(_Fused):
    """Stochastic gradient descent (optionally with momentum), PyTorch's update:

    ``g = grad (+ weight_decay * p)``; with momentum, ``buf = g`` on the first step and
    ``buf = momentum * buf + (1 - dampening) * g`` after, and ``g = g + momentum * buf``
    (nesterov) or ``g = buf``; then ``p = p - lr * g``. ``maximize`` ascends instead.
    One compiled call updates all parameters of a dtype.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = tg.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w
    tensor([0.8000, 1.6000], requires_grad=True)
    """
    _kernel = "sgd_step"
    _slots = ("momentum_buffer",)
    _has_step = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        if differentiable:
            raise NotImplementedError("tapegrad's optimizers do not support "
                                      "differentiable=True")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=False, fused=fused)
        super().__init__(params, defaults)

    def _prepare(self, p, group, st):
        fresh = False
        if group["momentum"] != 0 and st.get("momentum_buffer") is None:
            st["momentum_buffer"] = Tensor(np.empty_like(p._data, order="C"))
            self._fresh.append((p, st, "momentum_buffer"))   # removed if the step fails
            fresh = True
        return (group["lr"], group["momentum"], group["dampening"], group["weight_decay"],
                bool(group["nesterov"]), bool(group["maximize"]), fresh)
