"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""
from .optimizer import _Fused


class Adam(_Fused):
    """Adam, PyTorch's update (bias-corrected moments, ``eps`` added after the square root
    is divided by ``sqrt(1 - beta2**step)``):

    ``g = grad (+ weight_decay * p)``; ``m = lerp(m, g, 1 - beta1)``;
    ``v = beta2 * v + (1 - beta2) * g * g`` (``amsgrad`` keeps the running maximum of v);
    ``p = p - lr / (1 - beta1**step) * m / (sqrt(v) / sqrt(1 - beta2**step) + eps)``.
    With ``decoupled_weight_decay=True`` (AdamW) the decay is ``p *= 1 - lr * weight_decay``
    instead. One compiled call updates all parameters of a dtype.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = tg.optim.Adam([w], lr=0.1)
    >>> w.grad = tg.tensor([3.0, -4.0])
    >>> opt.step()
    >>> w
    tensor([ 0.9000, -1.9000], requires_grad=True)
    """
    _kernel = "adam_step"
    _slots = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if capturable or differentiable:
            raise NotImplementedError("tapegrad's optimizers do not support capturable=True "
                                      "or differentiable=True")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=False, differentiable=False, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _prepare(self, p, group, st):
        if not st:
            st["step"] = self._step0()
            st["exp_avg"] = self._zeros(p)
            st["exp_avg_sq"] = self._zeros(p)
            if group["amsgrad"]:
                st["max_exp_avg_sq"] = self._zeros(p)
        elif group["amsgrad"] and "max_exp_avg_sq" not in st:
            st["max_exp_avg_sq"] = self._zeros(p)
        b1, b2 = group["betas"]
        return (group["lr"], b1, b2, group["eps"], group["weight_decay"],
                bool(group["amsgrad"]), bool(group["maximize"]),
                bool(group["decoupled_weight_decay"]))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as ``torch.optim.AdamW``:
    each step first shrinks the parameter, ``p *= 1 - lr * weight_decay``, then takes Adam's
    step without decay in the gradient. ``weight_decay`` defaults to 1e-2."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
