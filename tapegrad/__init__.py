"""tapegrad: PyTorch-style reverse-mode autodiff on a flat tape, swept by Numba.

>>> import tapegrad as torch
>>> x = torch.ones(5)
>>> w = torch.ones(5, 3, requires_grad=True)
>>> loss = (torch.matmul(x, w) ** 2).sum()
>>> loss.backward()
>>> w.grad[0]
tensor([10., 10., 10.])
"""
from . import accelerator, autograd, cuda, func, nn
from . import distributed, utils
from . import linalg
from .linalg import cholesky_solve, logdet
from . import optim
from . import serialization
from .creation import (Generator, default_generator, get_rng_state, initial_seed, randperm,
                       seed, set_rng_state)
from .serialization import load, save
from .devices import device
from .replay import compile  # noqa: A004
from .autograd import Node
from .creation import (arange, empty, eye, from_numpy, full, full_like, linspace,
                       manual_seed, ones, ones_like, rand, rand_like, randint, randn,
                       randn_like, tensor, zeros, zeros_like)
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .ops import (abs, add, argmax, argmin, cat, clamp, clone, cos, div, dot, eq, exp,
                  expand, flatten, ge, gt, le, log, lt, matmul, maximum, mean, minimum, mm,
                  mul, ne, neg, permute, pow, relu, reshape, sigmoid, sin, sqrt, squeeze, stack,
                  sub, sum, t, tanh, transpose, unsqueeze, where)
from .ops import lerp, max, min, square  # noqa: A004
from .ops.composite import (amax, amin, cumprod, cumsum, diagonal, einsum, flip, gather, index_select, logsumexp, masked_fill, norm, outer, prod, roll, scatter_add, std, tril, trace, triu, var)  # noqa: E501
from .ops.composite import index_add, index_fill, scatter
from . import ops as _ops
from .ops import arithmetic as _arithmetic, predicates as _predicates
from .ops import selection as _selection, shapes as _shapes
for _m in (_predicates, _selection, _shapes, _arithmetic):    # where: the one-argument form too
    globals().update({_name: getattr(_m, _name) for _name in _m.__all__})
from .ops.selection import return_types
from .creation import bernoulli, empty_like, logspace, multinomial, normal, numel, randint_like
moveaxis = _shapes.movedim
swapdims = _shapes.swapaxes
divide = div
multiply = mul
subtract = sub
globals().update({_name: getattr(_ops, _name) for _name in _ops.REGISTRY_OPS})   # rules.py
from .tensor import (Size, Tensor, bool_, float16, float32, float64, get_default_dtype,
                     int32, int64, is_tensor, set_default_dtype)
from .tape import current as _current_tape

import numpy as _np
uint8, int8, int16 = _np.dtype(_np.uint8), _np.dtype(_np.int8), _np.dtype(_np.int16)
short = int16
half = float16
bool = bool_  # noqa: A001 - torch.bool
float = float32  # noqa: A001 - torch.float
double = float64
long = int64
clip = clamp


def softmax(input, dim):
    return nn.functional.softmax(input, dim)


def log_softmax(input, dim):
    return nn.functional.log_softmax(input, dim)


def tape_listing():
    """This thread's tape as text, one record a line (``%3 = mul(%1, %2)  f32[5]``)."""
    return _current_tape().listing()


def tape_size():
    """(records, bytes) held by this thread's tape right now."""
    t = _current_tape()
    return len(t), t.nbytes()


__version__ = "0.1.0"
