"""RMSprop, as ``torch.optim.RMSprop``."""
from .optimizer import _Fused


class RMSprop(_Fused):
    """RMSprop, PyTorch's update:

    ``g = grad (+ weight_decay * p)``; ``s = alpha * s + (1 - alpha) * g * g``; with
    ``centered``, ``a = lerp(a, g, 1 - alpha)`` and ``avg = sqrt(s - a * a)``, else
    ``avg = sqrt(s)``; ``avg += eps``; with momentum, ``buf = momentum * buf + g / avg`` and
    ``p = p - lr * buf``, else ``p = p - lr * g / avg``. One compiled call updates all
    parameters of a dtype.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = tg.optim.RMSprop([w], lr=0.01)
    >>> w.grad = tg.tensor([2.0])
    >>> opt.step()
    >>> w
    tensor([0.9000], requires_grad=True)
    """
    _kernel = "rmsprop_step"
    _slots = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        if capturable or differentiable:
            raise NotImplementedError("tapegrad's optimizers do not support capturable=True "
                                      "or differentiable=True")
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=False, foreach=foreach,
                        maximize=maximize, differentiable=False)
        super().__init__(params, defaults)

    def _prepare(self, p, group, st):
        if not st:
            st["step"] = self._step0()
            st["square_avg"] = self._zeros(p)
        if group["momentum"] > 0 and "momentum_buffer" not in st:
            st["momentum_buffer"] = self._zeros(p)
        if group["centered"] and "grad_avg" not in st:
            st["grad_avg"] = self._zeros(p)
        return (group["lr"], group["alpha"], group["eps"], group["weight_decay"],
                group["momentum"], bool(group["centered"]), bool(group["maximize"]))
