"""nn.Parameter: the tensor type a Module registers as one of its weights."""
import numpy as np

from ..tensor import Tensor, get_default_dtype


class Parameter(Tensor):
    """A leaf tensor that a :class:`Module` treats as one of its parameters.

    Assigning a Parameter to a module attribute registers it (it then shows up in
    ``parameters()`` and ``state_dict()``). It shares memory with ``data`` and requires
    grad unless ``requires_grad=False``. Operations on a Parameter give plain tensors.

    >>> import tapegrad as tg
    >>> p = tg.nn.Parameter(tg.ones(2))
    >>> p
    Parameter containing:
    tensor([1., 1.], requires_grad=True)
    >>> type(p * 2).__name__
    'Tensor'
    """
    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            arr = np.empty((0,), get_default_dtype())
        elif isinstance(data, Tensor):
            arr = data._data          # shared, as torch's Parameter shares data's storage
        else:
            raise TypeError(f"Parameter(): argument 'data' must be a Tensor, not "
                            f"{type(data).__name__}; wrap it with tapegrad.tensor(...) first")
        Tensor.__init__(self, arr)
        if requires_grad:
            self.requires_grad = True

    def __repr__(self):
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor(self._data.copy()), self._rg)
        if self._grad is not None:
            out._grad = Tensor(self._grad._data.copy())
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol):
        return (_rebuild, (self._data, self._rg))


def _rebuild(data, requires_grad):
    return Parameter(Tensor(data), requires_grad)
