"""The registry's elementwise ops (tapegrad/rules.py): one declaration each, made here.

Every declaration marked ``public`` becomes a function of this module with the op's name
(``log1p``, ``erf``, ``atan2``, ``remainder``...), listed in ``REGISTRY_OPS``; the package
re-exports them and binds them as Tensor methods. Their eager forward is the declaration's
value rule on numpy arrays (``codegen.numpy_rule``), or the compiled rule where numpy has
no such function. The functions are made at import: no ``def`` in the source names them.
"""
import numpy as np

from .. import codegen, rules
from .. import kernels as K
from ..tensor import Tensor, _FLOATS
from .elementwise import _binary, _sigmoid_np, _unary
from .operands import _float, _operand
from .record import _N, _name, _plain


def _compiled_values(op):
    """op's value rule over an array, by the compiled rule (for functions numpy lacks)."""
    def values(a):
        out = np.empty(a.shape, a.dtype)
        K.unary_values(op, np.ascontiguousarray(a).reshape(-1), out.reshape(-1), 0.0, 0.0)
        return out
    return values


def _numpy_namespace():
    """The names the rules' value expressions use, on numpy arrays (rules.FUNCTIONS)."""
    ns = {"np": np, "_lit": lambda like, c: like.dtype.type(c), "_np_sigmoid": _sigmoid_np}
    for name, (_, _, on_arrays) in rules.FUNCTIONS.items():
        if on_arrays and on_arrays.startswith("_np_") and on_arrays not in ns:
            ns[on_arrays] = _compiled_values(getattr(K, name.upper()))
    return ns


_ON_ARRAYS = _numpy_namespace()


# the ops whose value on an integer tensor is an integer: PyTorch keeps the integer dtype
# (and computes in the integers), where the others make the default float dtype first
_ON_INTEGERS = {"sign": np.sign, "floor": np.copy, "ceil": np.copy, "round": np.copy,
                "trunc": np.copy}


def _registry_op(u):
    op, fn = getattr(K, u.opcode), _N[u.name]
    numpy_fn = codegen.numpy_rule(u, _ON_ARRAYS)
    values = lambda a: numpy_fn(a, 0.0, 0.0)     # noqa: E731 - public ops take no constants
    on_ints = _ON_INTEGERS.get(u.name)

    def f(input):
        if on_ints is not None and isinstance(input, Tensor) and input._data.dtype.kind in "iu":
            return _plain(on_ints(input._data))
        return _unary(op, fn, values, input)
    f.__name__ = f.__qualname__ = u.name
    f.__doc__ = (f"``{u.name}(input)`` elementwise, with PyTorch's gradient ({u.grad_fn}); "
                 f"declared in tapegrad/rules.py.")
    return f


def _registry_binary(b):
    op, fn = getattr(K, b.opcode), _N[b.name]
    values = codegen.numpy_rule2(b, _ON_ARRAYS)

    def f(input, other):
        x, y = (_operand(b.name, input, other, v) for v in (input, other))
        if not b.integers and x._data.dtype not in _FLOATS and y._data.dtype not in _FLOATS:
            x = _float(x)
        return _binary(op, fn, values, x, y)
    f.__name__ = f.__qualname__ = b.name
    f.__doc__ = (f"``{b.name}(input, other)`` elementwise with broadcasting, with PyTorch's "
                 f"gradient ({b.grad_fn}); declared in tapegrad/rules.py.")
    return f


_N.update({u.name: _name(u.grad_fn) for u in rules.UNARY + rules.BINARY if u.name not in _N})
REGISTRY_OPS = [u.name for u in rules.UNARY + rules.BINARY if u.public]
globals().update({u.name: _registry_op(u) for u in rules.UNARY if u.public})
globals().update({b.name: _registry_binary(b) for b in rules.BINARY if b.public})
