"""Identity, Linear and Bilinear."""
import math

from ... import creation
from ...tensor import canonical_dtype
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Identity", "Linear", "Bilinear"]


def _empty(*shape, dtype=None, device=None):
    return creation.empty(*shape, dtype=None if dtype is None else canonical_dtype(dtype),
                          device=device)


def _features(v, name):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {v}: {name} "
                           f"must be >= 0")
    return v


class Identity(Module):
    """Returns its input unchanged (any constructor arguments are ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dimension of ``x``.

    ``weight`` is ``(out_features, in_features)``, ``bias`` ``(out_features,)`` (absent
    with ``bias=False``). Initialised as PyTorch does: ``weight`` by
    ``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)),
    and ``bias`` from the same range. The values come from tapegrad's generator, so for
    one seed they differ from PyTorch's; copy weights across with ``load_state_dict``.

    >>> import tapegrad as tg
    >>> lin = tg.nn.Linear(3, 2)
    >>> lin(tg.ones(5, 3)).shape
    tapegrad.Size([5, 2])
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features = _features(in_features, "in_features")
        self.out_features = _features(out_features, "out_features")
        self.weight = Parameter(_empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(_empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw fresh initial values (PyTorch's default scheme)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """``y[..., k] = x1 @ weight[k] @ x2 + bias[k]`` for inputs ``(*, in1_features)`` and
    ``(*, in2_features)`` with the same leading dimensions. ``weight`` is
    ``(out_features, in1_features, in2_features)``; both are initialised from
    U(-1/sqrt(in1_features), 1/sqrt(in1_features)), as in PyTorch."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.in1_features = _features(in1_features, "in1_features")
        self.in2_features = _features(in2_features, "in2_features")
        self.out_features = _features(out_features, "out_features")
        self.weight = Parameter(_empty(out_features, in1_features, in2_features, dtype=dtype,
                                       device=device))
        if bias:
            self.bias = Parameter(_empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in1_features) if self.in1_features > 0 else 0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        if input1.shape[:-1] != input2.shape[:-1]:
            raise RuntimeError(f"bilinear(): input batch dimensions do not match: got "
                               f"{list(input1.shape[:-1])} and {list(input2.shape[:-1])}")
        if input1.dim() == 0 or input1.shape[-1] != self.in1_features:
            raise RuntimeError(f"bilinear(): input1 size does not match weight size: got "
                               f"{list(input1.shape)[-1:]} but expected "
                               f"{self.in1_features}")
        if input2.shape[-1] != self.in2_features:
            raise RuntimeError(f"bilinear(): input2 size does not match weight size: got "
                               f"{input2.shape[-1]} but expected {self.in2_features}")
        o, i, j = self.weight.shape
        # x1 @ W viewed as (in1, out*in2), then contracted with x2 along in2
        t = input1 @ self.weight.permute(1, 0, 2).reshape(i, o * j)
        t = t.reshape(*input1.shape[:-1], o, j)
        y = (t * input2.unsqueeze(-2)).sum(-1)
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
