"""The Tensor methods and operators (the ops of this package, and the composed ops of
composite.py), bound onto ``Tensor`` by ``_bind()`` when the package is imported, so that
tensor.py never imports the ops.

A method is the op function itself (``Tensor.__add__ is ops.add``), not a wrapper, so a
method call costs what the function call costs.
"""
import numpy as np

from .. import devices as _device
from ..tensor import Tensor, float32, float64
from . import composite, registry
from .compare import _CMP_DUNDERS, eq, ge, gt, le, lt, ne
from .elementwise import (abs, add, clamp, cos, div, exp, lerp, log, maximum, minimum, mul,
                          neg, pow, relu, sigmoid, sin, sqrt, square, sub, tanh)
from .inplace import add_, clamp_, copy_, div_, fill_, mul_, setitem, sub_, zero_
from .linalg import dot, matmul, mm
from .losses import softmax
from .movement import (T_, clone, expand, flatten, getitem, permute, reshape, squeeze, t,
                       transpose, unsqueeze, view)
from .operands import to_dtype
from .reductions import argmax, argmin, max, mean, min, sum
from .registry import REGISTRY_OPS


def _bind():
    def rev(f):
        return lambda s, o: f(o, s)

    def dtype_method(d):
        return lambda s: to_dtype(s, d)

    methods = dict(
        __add__=add, __radd__=rev(add), __sub__=sub, __rsub__=rev(sub), __mul__=mul,
        __rmul__=rev(mul), __truediv__=div, __rtruediv__=rev(div), __pow__=pow,
        __rpow__=rev(pow), __matmul__=matmul, __rmatmul__=rev(matmul), __neg__=neg,
        __abs__=abs, __getitem__=getitem, __setitem__=setitem,
        **_CMP_DUNDERS,
        __iadd__=add_, __isub__=sub_, __imul__=mul_, __itruediv__=div_,
        add=add, sub=sub, mul=mul, div=div, pow=pow, matmul=matmul, mm=mm, dot=dot,
        neg=neg, exp=exp, log=log, sqrt=sqrt, abs=abs, sin=sin, cos=cos, tanh=tanh,
        sigmoid=sigmoid, relu=relu, clamp=clamp, clip=clamp, maximum=maximum, minimum=minimum,
        sum=sum, mean=mean, max=max, min=min, argmax=argmax, argmin=argmin,
        reshape=reshape, view=view, flatten=flatten, squeeze=squeeze, unsqueeze=unsqueeze,
        expand=expand, transpose=transpose, t=t, permute=permute, clone=clone,
        add_=add_, sub_=sub_, mul_=mul_, div_=div_, zero_=zero_, fill_=fill_, copy_=copy_,
        clamp_=clamp_, eq=eq, ne=ne, lt=lt, le=le, gt=gt, ge=ge,
        float=dtype_method(float32), double=dtype_method(float64),
        long=dtype_method(np.int64), int=dtype_method(np.int32), bool=dtype_method(np.bool_),
        softmax=lambda s, dim: softmax(s, dim), log_softmax=lambda s, dim: softmax(s, dim, True),
        square=square, lerp=lerp, **{name: getattr(registry, name) for name in REGISTRY_OPS},
        __mod__=registry.remainder, __rmod__=rev(registry.remainder),  # made from rules.py
    )
    for k, v in methods.items():
        setattr(Tensor, k, v)
    Tensor.T = property(T_)
    Tensor.mT = property(lambda s: transpose(s, -2, -1))

    def to(self, *args, dtype=None, device=None, copy=False, non_blocking=False,
           memory_format=None):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)`` (its dtype and
        device), with ``dtype=``/``device=``/``copy=`` keywords, as in PyTorch: this tensor
        when nothing changes (unless ``copy``), else a converted one. Only the CPU exists."""
        dtype, device = _device.to_arguments(args, dtype, device, "Tensor.to")
        out = self if dtype is None else to_dtype(self, dtype)
        return clone(out) if copy and out is self else out
    Tensor.to = to
    Tensor.type_as = lambda s, o: to_dtype(s, o.dtype)

    # Tensor.type(): PyTorch's legacy type names (code compares them, so they are torch's)
    names = {np.dtype(np.float32): "torch.FloatTensor", np.dtype(np.float64): "torch.DoubleTensor",
             np.dtype(np.float16): "torch.HalfTensor", np.dtype(np.int64): "torch.LongTensor",
             np.dtype(np.int32): "torch.IntTensor", np.dtype(np.int16): "torch.ShortTensor",
             np.dtype(np.int8): "torch.CharTensor", np.dtype(np.uint8): "torch.ByteTensor",
             np.dtype(np.bool_): "torch.BoolTensor"}
    by_name = {n.split(".")[1]: d for d, n in names.items()}

    def type_(self, dtype=None, non_blocking=False, **kwargs):
        """With no argument, the legacy type name (``'torch.FloatTensor'``); with a dtype
        or such a name, the tensor converted to it (``to(dtype)``)."""
        if dtype is None:
            return names.get(self._data.dtype, f"tapegrad.{self._data.dtype}")
        if isinstance(dtype, str):
            key = dtype.split(".")[-1]
            if key not in by_name:
                raise ValueError(f"invalid type: '{dtype}'; use a dtype such as "
                                 f"tapegrad.float64 or a name such as 'torch.DoubleTensor'")
            dtype = by_name[key]
        return to_dtype(self, dtype)
    Tensor.type = type_

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Compute the gradient of this tensor with respect to the graph's leaves.

        The result is accumulated (added) into each leaf's ``.grad``. A non-scalar tensor
        needs ``gradient``, a tensor of its shape: backward then computes the
        vector-Jacobian product. The graph is freed afterwards unless ``retain_graph``.
        With ``create_graph`` the gradients are recorded too and can be differentiated
        again (``retain_graph`` then defaults to True).
        """
        from .. import autograd
        if gradient is not None and not isinstance(gradient, Tensor):
            raise TypeError(f"gradients can be either Tensors or None, but got "
                            f"{type(gradient).__name__}")
        autograd.backward([self], None if gradient is None else [gradient],
                          retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)
    Tensor.backward = backward

    # the composed ops are methods too (composite.py), all but einsum
    methods = {name: getattr(composite, name) for name in composite.__all__ if name != "einsum"}
    methods["flip"] = composite._flip_method
    for name, f in methods.items():
        setattr(Tensor, name, f)
    _bind_tensor_api()


def _stride(self, dim=None):
    """The step, in elements, between neighbours along each dim (of the numpy array)."""
    a = self._data
    st = tuple(s // a.itemsize for s in a.strides)
    if dim is None:
        return st
    from ..tensor import _dim
    return st[_dim(dim, a.ndim)] if a.ndim else 1


def _bind_tensor_api():
    """The methods of issue #16's Tensor API: tests of values (predicates.py), sorting and
    selection (selection.py), shapes (shapes.py), arithmetic (arithmetic.py), the in-place
    forms (inplace.py) and the ``new_*`` constructors and random fills (creation.py)."""
    from .. import creation
    from . import arithmetic, predicates, selection, shapes
    from .inplace import inplace_forms
    methods = {name: getattr(predicates, name) for name in predicates.__all__}
    methods.update(predicates.LOGICAL_DUNDERS)
    methods.update({name: getattr(selection, name) for name in (
        "sort", "argsort", "topk", "kthvalue", "median", "mode", "unique", "nonzero",
        "masked_select", "argwhere", "take_along_dim")})
    methods["where"] = selection._where_method
    methods.update({name: getattr(shapes, name) for name in (
        "bmm", "baddbmm", "addmm", "narrow", "select", "split", "chunk", "unbind",
        "repeat_interleave", "movedim", "swapaxes", "diag", "diag_embed", "diagflat",
        "broadcast_to", "cross", "kron", "unflatten", "tensor_split", "hsplit", "vsplit",
        "fliplr", "flipud")})
    methods.update(aminmax=selection.aminmax, bincount=selection.bincount,
                   histc=selection.histc)
    del methods["isin"]                   # torch.isin only: Tensor has no isin
    methods.update(repeat=shapes.repeat, tile=shapes._tile_method, expand_as=shapes.expand_as,
                   view_as=shapes.view_as, reshape_as=shapes.reshape_as,
                   contiguous=shapes.contiguous, is_contiguous=shapes.is_contiguous,
                   moveaxis=shapes.movedim, swapdims=shapes.swapaxes)
    methods.update({name: getattr(arithmetic, name) for name in arithmetic.__all__
                    if name not in ("var_mean", "std_mean")})     # functions only in torch
    methods.update(__floordiv__=arithmetic.floor_divide, __rfloordiv__=arithmetic._rfloordiv,
                   nelement=Tensor.numel, element_size=lambda s: s._data.itemsize,
                   stride=_stride)
    methods.update(inplace_forms())
    methods.update(creation.NEW_METHODS)
    for name, f in methods.items():
        setattr(Tensor, name, f)
    Tensor.mT = property(shapes._mT)
    Tensor.mH = property(shapes._mH)
