"""Functions that make new tensors (leaves).

Sizes, dtypes and fill values are checked here, where a value first becomes a tensor, with
PyTorch's exception types: a float or a string where a size belongs is a TypeError (never
truncated), a negative size or a range that cannot be made is a RuntimeError.
"""
import math
import threading

import numpy as np

from . import devices as _device
from .ops import _REAL, _plain, array_from, as_tensor
from .tensor import Tensor, canonical, canonical_dtype, get_default_dtype, int_arg

# One generator for the process, as in PyTorch: every thread draws from it, manual_seed
# reseeds it for all of them. The lock makes a draw and a reseed atomic with respect to
# each other, so the values one thread draws after manual_seed are the ones a
# single-threaded run would draw, unless another thread draws in between.
_rng_lock = threading.Lock()
_rng = [np.random.default_rng()]


def manual_seed(seed):
    """Seed the generator behind ``rand``, ``randn``, ``randint`` and friends.

    One generator serves all threads (PyTorch's rule); after ``manual_seed(s)`` a
    single-threaded sequence of draws is the same on every run. Draws from several threads
    are safe, but which thread gets which values then depends on scheduling.

    >>> import tapegrad as tg
    >>> tg.manual_seed(0); a = tg.rand(3).tolist()
    >>> tg.manual_seed(0); tg.rand(3).tolist() == a
    True
    """
    s = int(seed)
    if not -2**63 <= s < 2**64:
        raise RuntimeError(f"Overflow when unpacking long: seed {s} does not fit in 64 bits")
    gen = np.random.default_rng(s % 2**64)     # negative seeds wrap as PyTorch's do
    with _rng_lock:
        _rng[0] = gen


def _draw(method, *args):
    with _rng_lock:
        return getattr(_rng[0], method)(*args)


def _leaf(a, requires_grad):
    t = _plain(a)
    if requires_grad:
        t.requires_grad = True
    return t


_MAX_NUMEL = 2**63 - 1


def _size(size, fn):
    """A shape from ``zeros(2, 3)``, ``zeros((2, 3))`` or ``zeros([2, 3])`` style arguments."""
    if not size:
        raise TypeError(f'{fn}() missing 1 required positional argument: "size" (a 0-d '
                        f'tensor is {fn}(()))')
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = tuple(size[0])
    out = []
    for i, s in enumerate(size):
        try:
            n = int_arg(s, "size")
        except TypeError:
            raise TypeError(f"{fn}(): argument 'size' must be a tuple of ints, but found "
                            f"element of type {type(s).__name__} at pos {i}") from None
        if n < 0:
            raise RuntimeError(f"{fn}: Trying to create tensor with negative dimension {n}: "
                               f"{[int(v) if type(v) is int else v for v in size]}")
        out.append(n)
    if math.prod(out) > _MAX_NUMEL:
        raise RuntimeError(f"{fn}: Storage size calculation overflowed with sizes={out}")
    return tuple(out)


def _alloc(fn, shape, make):
    """make() with numpy's allocation errors as PyTorch's RuntimeError (a MemoryError or
    numpy's 'array is too big' would otherwise escape from a tensor constructor)."""
    try:
        return make()
    except MemoryError:
        raise RuntimeError(f"{fn}: can't allocate memory for a tensor of shape "
                           f"{list(shape)}") from None
    except ValueError as e:
        if "too big" not in str(e) and "Maximum allowed" not in str(e):
            raise
        raise RuntimeError(f"{fn}: can't allocate memory for a tensor of shape "
                           f"{list(shape)} ({e})") from None


def _dt(dtype):
    return get_default_dtype() if dtype is None else canonical_dtype(dtype)


def _tensor_arg(t, fn):
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}(): argument 'input' must be Tensor, not {type(t).__name__}")
    return t


def _number(v, fn, what):
    if isinstance(v, Tensor) and v.ndim == 0:
        return v.item()
    if not isinstance(v, _REAL):
        raise TypeError(f"{fn}(): argument '{what}' must be a real number, not "
                        f"{type(v).__name__}")
    return v


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of ``data`` (nested lists, numbers, arrays, tensors).

    Python floats become the default dtype (float32), ints int64, bools bool; numpy arrays
    keep their dtype. Strings, None, ragged lists and complex numbers raise as in PyTorch.

    >>> import tapegrad as tg
    >>> tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    tensor([[1., 2.],
            [3., 4.]], requires_grad=True)
    """
    _device.check(device, "tensor")
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        dtype = canonical_dtype(dtype)
        if isinstance(data, np.ndarray):
            a = canonical(data).astype(dtype)
        else:
            a = array_from(data, dtype).astype(dtype, copy=False)   # no detour via float32
    elif isinstance(data, np.ndarray):
        a = canonical(data).copy()
    else:
        a = as_tensor(data)._data
    if a.base is not None:     # np.asarray shared memory with an object's buffer: copy
        a = a.copy()
    return _leaf(a, requires_grad)


def from_numpy(array):
    """A tensor sharing memory with a numpy array (changes show in both).

    Read-only arrays give read-only tensors: in-place ops on them raise.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(array).__name__})")
    return _plain(canonical(array, share=True))


def zeros(*size, dtype=None, requires_grad=False, device=None):
    _device.check(device, "zeros")
    shape, d = _size(size, "zeros"), _dt(dtype)
    return _leaf(_alloc("zeros", shape, lambda: np.zeros(shape, d)), requires_grad)


def ones(*size, dtype=None, requires_grad=False, device=None):
    _device.check(device, "ones")
    shape, d = _size(size, "ones"), _dt(dtype)
    return _leaf(_alloc("ones", shape, lambda: np.ones(shape, d)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False, device=None):
    _device.check(device, "full")
    if not isinstance(size, (list, tuple)):
        raise TypeError(f"full(): argument 'size' must be a tuple of ints, not "
                        f"{type(size).__name__} (write full(({size!r},), value))")
    fill_value = _number(fill_value, "full", "fill_value")
    if dtype is None and isinstance(fill_value, (bool, int, np.integer, np.bool_)):
        dtype = np.bool_ if isinstance(fill_value, (bool, np.bool_)) else np.int64
    shape, d = _size((size,), "full"), _dt(dtype)
    return _leaf(_alloc("full", shape, lambda: np.full(shape, fill_value, d)), requires_grad)


def empty(*size, dtype=None, requires_grad=False, device=None):
    _device.check(device, "empty")
    shape, d = _size(size, "empty"), _dt(dtype)
    return _leaf(_alloc("empty", shape, lambda: np.empty(shape, d)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False, device=None):
    _device.check(device, "eye")
    n = int_arg(n, "eye(): argument 'n'")
    m = n if m is None else int_arg(m, "eye(): argument 'm'")
    if n < 0 or m < 0:
        raise RuntimeError(f"eye: n and m must be greater or equal to 0, got n={n}, m={m}")
    _size((n, m), "eye")
    d = _dt(dtype)
    return _leaf(_alloc("eye", (n, m), lambda: np.eye(n, m, dtype=d)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    _device.check(device, "arange")
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", k) for v, k in
                        ((start, "start"), (end, "end"), (step, "step")))
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise RuntimeError(f"arange: unsupported range: {start} -> {end} (step {step}); "
                           f"the bounds must be finite")
    if (end - start) * step < 0:
        raise RuntimeError(f"arange: upper bound {end} and lower bound {start} inconsistent "
                           f"with step sign {step}")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else get_default_dtype()
    shape, d = _size((math.ceil((end - start) / step),), "arange"), _dt(dtype)
    return _leaf(_alloc("arange", shape, lambda: np.arange(start, end, step).astype(d)),
                 requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    _device.check(device, "linspace")
    start = _number(start, "linspace", "start")
    end = _number(end, "linspace", "end")
    steps = int_arg(steps, "linspace(): argument 'steps'")
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    shape, d = _size((steps,), "linspace"), _dt(dtype)
    return _leaf(_alloc("linspace", shape, lambda: np.linspace(start, end, steps).astype(d)),
                 requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None):
    _device.check(device, "rand")
    shape, d = _size(size, "rand"), _dt(dtype)
    return _leaf(_alloc("rand", shape, lambda: _draw("random", shape).astype(d)),
                 requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None):
    _device.check(device, "randn")
    shape, d = _size(size, "randn"), _dt(dtype)
    return _leaf(_alloc("randn", shape, lambda: _draw("standard_normal", shape).astype(d)),
                 requires_grad)


def randint(low, high=None, size=(), dtype=None, requires_grad=False, device=None):
    _device.check(device, "randint")
    if requires_grad:
        raise RuntimeError("Only Tensors of floating point dtype can require gradients")
    if high is None:
        low, high = 0, low
    low = int_arg(low, "randint(): argument 'low'")
    high = int_arg(high, "randint(): argument 'high'")
    if not isinstance(size, (list, tuple)):
        raise TypeError(f"randint(): argument 'size' must be a tuple of ints, not "
                        f"{type(size).__name__}")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    shape = _size((size,), "randint")
    return _plain(_draw("integers", low, high, shape).astype(canonical_dtype(dtype or
                                                                             np.int64)))


def _like(fn, t, dtype, requires_grad):
    t = _tensor_arg(t, fn.__name__ + "_like")
    return _leaf(fn(t._data.shape, dtype or t._data.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad=False, device=None):
    _device.check(device, "ones_like")
    return _like(np.ones, t, dtype and canonical_dtype(dtype), requires_grad)


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    _device.check(device, "zeros_like")
    return _like(np.zeros, t, dtype and canonical_dtype(dtype), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False, device=None):
    _device.check(device, "full_like")
    t = _tensor_arg(t, "full_like")
    fill_value = _number(fill_value, "full_like", "fill_value")
    return _leaf(np.full(t._data.shape, fill_value, _dt(dtype) if dtype else t._data.dtype),
                 requires_grad)


def randn_like(t, dtype=None, requires_grad=False, device=None):
    _device.check(device, "randn_like")
    t = _tensor_arg(t, "randn_like")
    d = _dt(dtype) if dtype else t._data.dtype
    return _leaf(_draw("standard_normal", t._data.shape).astype(d), requires_grad)


def rand_like(t, dtype=None, requires_grad=False, device=None):
    _device.check(device, "rand_like")
    t = _tensor_arg(t, "rand_like")
    d = _dt(dtype) if dtype else t._data.dtype
    return _leaf(_draw("random", t._data.shape).astype(d), requires_grad)

