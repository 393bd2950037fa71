"""Functions that make new tensors (leaves)."""
import numpy as np

from .ops import as_tensor, _plain
from .tensor import Tensor, get_default_dtype

_rng = [np.random.default_rng()]


def manual_seed(seed):
    """Seed tapegrad's random number generator (``rand``, ``randn``...) for reproducible runs."""
    _rng[0] = np.random.default_rng(int(seed))


def _leaf(a, requires_grad):
    t = _plain(a)
    if requires_grad:
        t.requires_grad = True
    return t


def _size(size):
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _dt(dtype):
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def tensor(data, dtype=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, arrays, tensors).

    Python floats become the default dtype (float32), ints int64, bools bool; numpy arrays
    keep their dtype.

    >>> import tapegrad as tg
    >>> tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    tensor([[1., 2.],
            [3., 4.]], requires_grad=True)
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        a = np.array(data, dtype=dtype)          # straight to dtype: no detour via float32
    elif isinstance(data, np.ndarray):
        a = data.copy()
    else:
        a = as_tensor(data).data
    return _leaf(a, requires_grad)


def from_numpy(array):
    """A tensor sharing memory with a numpy array (changes show in both)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return _plain(array)


def zeros(*size, dtype=None, requires_grad=False):
    return _leaf(np.zeros(_size(size), _dt(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _leaf(np.ones(_size(size), _dt(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, (bool, int)) and not isinstance(fill_value, float):
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64
    return _leaf(np.full(_size((size,)), fill_value, _dt(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return _leaf(np.empty(_size(size), _dt(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _leaf(np.eye(n, n if m is None else m, dtype=_dt(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else get_default_dtype()
    return _leaf(np.arange(start, end, step).astype(dtype), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return _leaf(np.linspace(start, end, steps).astype(_dt(dtype)), requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    return _leaf(_rng[0].random(_size(size)).astype(_dt(dtype)), requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    return _leaf(_rng[0].standard_normal(_size(size)).astype(_dt(dtype)), requires_grad)


def randint(low, high=None, size=(), dtype=None):
    if high is None:
        low, high = 0, low
    return _plain(_rng[0].integers(low, high, size=tuple(size)).astype(dtype or np.int64))


def _like(fn, t, dtype, requires_grad):
    return _leaf(fn(t.data.shape, dtype or t.data.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _like(np.ones, t, dtype, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return _like(np.zeros, t, dtype, requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return _leaf(np.full(t.data.shape, fill_value, dtype or t.data.dtype), requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return _leaf(_rng[0].standard_normal(t.data.shape).astype(dtype or t.data.dtype),
                 requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return _leaf(_rng[0].random(t.data.shape).astype(dtype or t.data.dtype), requires_grad)
