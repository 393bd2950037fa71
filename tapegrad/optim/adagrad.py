"""Adagrad, as ``torch.optim.Adagrad``."""
from .optimizer import _Fused


class Adagrad(_Fused):
    """Adagrad, PyTorch's update:

    ``g = grad (+ weight_decay * p)``; ``clr = lr / (1 + (step - 1) * lr_decay)``;
    ``s = s + g * g`` (``s`` starts at ``initial_accumulator_value``);
    ``p = p - clr * g / (sqrt(s) + eps)``. The state is created with the optimizer, as
    PyTorch does. One compiled call updates all parameters of a dtype.

    >>> import tapegrad as tg
    >>> w = tg.tensor([1.0], requires_grad=True)
    >>> opt = tg.optim.Adagrad([w], lr=0.5)
    >>> w.grad = tg.tensor([4.0])
    >>> opt.step()
    >>> w
    tensor([0.5000], requires_grad=True)
    """
    _kernel = "adagrad_step"
    _slots = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(f"Invalid initial_accumulator_value value: "
                             f"{initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if differentiable:
            raise NotImplementedError("tapegrad's optimizers do not support "
                                      "differentiable=True")
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value,
                        foreach=foreach, maximize=maximize, differentiable=False,
                        fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init(p, group, self.state[p])

    def _init(self, p, group, st):
        st["step"] = self._step0()
        st["sum"] = self._zeros(p, float(group["initial_accumulator_value"]))

    def _prepare(self, p, group, st):
        if not st:
            self._init(p, group, st)
        return (group["lr"], group["lr_decay"], group["weight_decay"], group["eps"],
                bool(group["maximize"]))
