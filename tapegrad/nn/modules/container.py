"""Containers: Sequential, ModuleList, ModuleDict, ParameterList."""
import operator
from collections import OrderedDict
from collections.abc import Mapping

from ...tensor import Tensor, dtype_name
from ..parameter import Parameter
from .module import Module, _indent

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _index(idx, n, what):
    try:
        i = operator.index(idx)
    except TypeError:
        raise TypeError(f"{what} indices must be integers or slices, not "
                        f"{type(idx).__name__}") from None
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range")
    return i % n


class _Numbered(Module):
    """Shared by Sequential and ModuleList: children named "0", "1", ... in order."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def _renumber(self, mods):
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return self._sliced(mods[idx], list(self._modules)[idx])
        return mods[_index(idx, len(mods), type(self).__name__)]

    def __setitem__(self, idx, module):
        keys = list(self._modules)
        setattr(self, keys[_index(idx, len(keys), type(self).__name__)], module)

    def __delitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[_index(idx, len(mods), type(self).__name__)]
        self._renumber(mods)      # keys stay 0..n-1, as in PyTorch

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def __iadd__(self, modules):
        return self.extend(modules)

    def pop(self, idx):
        """Remove and return the module at ``idx`` (the rest are renumbered)."""
        m = self[idx]
        del self[idx]
        return m


class Sequential(_Numbered):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``.

    Build it from modules (named "0", "1", ...) or from one ``OrderedDict`` of named
    modules. Indexing (negative too) gives a module, slicing a new Sequential sharing
    the modules; ``len``, iteration and ``append`` work as on a list.

    >>> import tapegrad as tg
    >>> from tapegrad import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model(tg.ones(3, 4)).shape
    tapegrad.Size([3, 2])
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> model[-1]
    Linear(in_features=8, out_features=2, bias=True)
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def _sliced(self, mods, keys):
        return Sequential(OrderedDict(zip(keys, mods)))

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_Numbered):
    """A list of submodules, registered (their parameters belong to the owner). It has
    no ``forward``: iterate over it in your own."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _sliced(self, mods, keys):
        return ModuleList(mods)

    def __repr__(self):
        # runs of modules printing alike are shown once, as PyTorch does: "(0-2): 3 x ..."
        items = [repr(m) for m in self._modules.values()]
        if not items:
            return "ModuleList()"
        lines, start = [], 0
        for i in range(1, len(items) + 1):
            if i == len(items) or items[i] != items[start]:
                body = _indent(items[start], 2)
                if i - start == 1:
                    lines.append(f"({start}): {body}")
                else:
                    lines.append(f"({start}-{i - 1}): {i - start} x {body}")
                start = i
        return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of submodules, registered under their keys, in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def clear(self):
        self._modules.clear()

    def pop(self, key):
        m = self._modules[key]
        del self._modules[key]
        return m

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        if isinstance(modules, (Mapping, ModuleDict)):
            for k, m in modules.items():
                self[k] = m
            return
        for j, pair in enumerate(modules):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict update sequence element #{j} should be a "
                                f"(key, module) pair")
            self[pair[0]] = pair[1]


class ParameterList(Module):
    """A list of parameters, registered as "0", "1", ...; plain tensors appended are
    wrapped in a :class:`Parameter`."""

    def __init__(self, values=None):
        super().__init__()
        if values is not None:
            self.extend(values)

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())

    def __getitem__(self, idx):
        vals = list(self._parameters.values())
        if isinstance(idx, slice):
            return ParameterList(vals[idx])
        return vals[_index(idx, len(vals), "ParameterList")]

    def __setitem__(self, idx, param):
        i = _index(idx, len(self), "ParameterList")
        self.register_parameter(str(i), _as_param(param))

    def append(self, value):
        self.register_parameter(str(len(self)), _as_param(value))
        return self

    def extend(self, values):
        for v in values:
            self.append(v)
        return self

    def __iadd__(self, values):
        return self.extend(values)

    def extra_repr(self):
        lines = []
        for i, p in enumerate(self):
            size = "x".join(str(s) for s in p.shape)
            lines.append(f"  ({i}): Parameter containing: [{dtype_name(p.dtype)} of size "
                         f"{size}]")
        return "\n".join(lines)


class ParameterDict(Module):
    """A dict of parameters, registered under their keys, in insertion order; plain
    tensors stored are wrapped in a :class:`Parameter`."""

    def __init__(self, parameters=None):
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key):
        return self._parameters[key]

    def __setitem__(self, key, value):
        self.register_parameter(key, _as_param(value))

    def __delitem__(self, key):
        del self._parameters[key]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters)

    def __contains__(self, key):
        return key in self._parameters

    def keys(self):
        return self._parameters.keys()

    def items(self):
        return self._parameters.items()

    def values(self):
        return self._parameters.values()

    def pop(self, key):
        v = self._parameters[key]
        del self._parameters[key]
        return v

    def clear(self):
        self._parameters.clear()

    def update(self, parameters):
        pairs = parameters.items() if isinstance(parameters, (Mapping, ParameterDict)) \
            else parameters
        for k, v in pairs:
            self[k] = v

    def extra_repr(self):
        return "\n".join(f"  ({k}): Parameter containing: [{dtype_name(p.dtype)} of size "
                         f"{'x'.join(str(s) for s in p.shape)}]"
                         for k, p in self._parameters.items())


def _as_param(v):
    if isinstance(v, Parameter):
        return v
    if isinstance(v, Tensor):
        return Parameter(v)
    raise TypeError(f"ParameterList holds tensors; got {type(v).__name__}")
