"""The op table: each differentiable op computes its value with numpy and appends one
record whose opcode the compiled sweeps know (see ``kernels/`` for the VJPs).

Opcodes say how to differentiate; names (``MulBackward0``...) say what ``grad_fn`` shows.
So ``x - 2`` records ADDC (gradient passes through) named SubBackward0.

Data flows tensor -> ops -> tape -> kernels: an op reads its inputs' arrays (tensor.py),
computes the value and appends a record (tape.py), and the compiled sweeps (kernels/)
differentiate the records. One job per module:

    record       result tensors (``_plain``, ``_graph``) and their records (``_record``,
                 ``_record1``, ``_slot``); the grad_fn names
    operands     data into tensors (``as_tensor``, ``array_from``), dtype promotion and
                 casts, operand and dim argument checks
    elementwise  the hand-written elementwise ops: operators, unary functions, where
    registry     the elementwise ops declared in tapegrad/rules.py, made at import
    compare      eq, ne, lt, le, gt, ge (never differentiable)
    reductions   sum, mean, max/min, argmax/argmin
    movement     indexing, gather/scatter/take, transposes, reshapes, expand, cat, stack
    linalg       matmul, mm, dot
    losses       the fused ops nn.functional uses: softmax, bce, bce_with_logits, nll
    inplace      add_, ..., zero_, fill_, copy_ and item assignment
    composite    ops composed from the recorded ones (prod, logsumexp, var, einsum...)
    predicates   tests of values, never differentiable: isnan, isclose, allclose, equal,
                 any, all, count_nonzero, the logical operators
    selection    sort, argsort, topk, kthvalue, median, mode, unique, nonzero, where(cond),
                 searchsorted, bucketize, take_along_dim (gradients through the gather)
    shapes       bmm, addmm, chunk, split, unbind, narrow, repeat, tile, diag, diag_embed,
                 block_diag, meshgrid, broadcast_*, cross, kron, tensordot, cdist, vstack...
    arithmetic   floor_divide (//), copysign, nan_to_num, nansum, nanmean, diff, addcmul,
                 addcdiv, clamp_min/max, frac, dist, var_mean, std_mean
    methods      the Tensor methods and operators, bound by ``_bind()``

The modules import each other by name (``from .record import _record``), never through
this package. Other code uses the names re-exported here (``ops.reshape``, ``ops._slot``);
the composed ops are imported from their modules (``ops.composite``, ``ops.shapes``...). Binding the Tensor methods is the
last step of importing the package.
"""
from . import methods, registry
from .compare import eq, ge, gt, le, lt, ne
from .elementwise import (_t, abs, add, clamp, cos, div, exp, lerp, log, maximum, minimum,
                          mul, neg, pow, relu, sigmoid, sin, sqrt, square, sub, tanh, where)
from .inplace import _inplace, add_, clamp_, copy_, div_, fill_, mul_, setitem, sub_, zero_
from .linalg import dot, matmul, mm
from .losses import bce, bce_with_logits, nll, softmax
from .movement import (T_, _reshape, cat, clone, expand, flatten, getitem, permute, reshape,
                       scatter, squeeze, stack, t, take, transpose, unsqueeze, view)
from .operands import _REAL, _float, _promote, array_from, as_tensor, to_dtype
from .record import _graph, _plain, _slot
from .reductions import argmax, argmin, max, mean, min, sum
from .registry import REGISTRY_OPS

globals().update({_name: getattr(registry, _name) for _name in REGISTRY_OPS})   # rules.py

__all__ = REGISTRY_OPS + [
    "eq", "ge", "gt", "le", "lt", "ne",
    "_t", "abs", "add", "clamp", "cos", "div", "exp", "lerp", "log", "maximum", "minimum",
    "mul", "neg", "pow", "relu", "sigmoid", "sin", "sqrt", "square", "sub", "tanh", "where",
    "_inplace", "add_", "clamp_", "copy_", "div_", "fill_", "mul_", "setitem", "sub_", "zero_",
    "dot", "matmul", "mm",
    "bce", "bce_with_logits", "nll", "softmax",
    "T_", "_reshape", "cat", "clone", "expand", "flatten", "getitem", "permute", "reshape",
    "scatter", "squeeze", "stack", "t", "take", "transpose", "unsqueeze", "view",
    "_REAL", "_float", "_promote", "array_from", "as_tensor", "to_dtype",
    "_graph", "_plain", "_slot",
    "argmax", "argmin", "max", "mean", "min", "sum",
    "REGISTRY_OPS",
]

methods._bind()
