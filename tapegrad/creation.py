"""Functions that make new tensors (leaves).

Sizes, dtypes and fill values are checked here, where a value first becomes a tensor, with
PyTorch's exception types: a float or a string where a size belongs is a TypeError (never
truncated), a negative size or a range that cannot be made is a RuntimeError.
"""
import math
import threading

import numpy as np

from . import devices as _device
from . import tape as T
from .ops import _REAL, _plain, array_from, as_tensor
from .tensor import Tensor, _note_read, canonical, canonical_dtype, get_default_dtype, int_arg

# One generator for the process, as in PyTorch: every thread draws from it, manual_seed
# reseeds it for all of them. The lock makes a draw and a reseed atomic with respect to
# each other, so the values one thread draws after manual_seed are the ones a
# single-threaded run would draw, unless another thread draws in between. `_rng[0]` is a
# numpy Generator (PCG64); utils.checkpoint copies and restores it.
_rng_lock = threading.Lock()
_DEFAULT_SEED = 67280421310721          # what a fresh torch.Generator() starts from


def _fresh_seed():
    return int(np.random.SeedSequence().entropy) % 2**64


_rng_seed = [_fresh_seed()]
_rng = [np.random.default_rng(_rng_seed[0])]


def _seed_value(seed):
    s = int(seed)
    if not -2**63 <= s < 2**64:
        raise RuntimeError(f"Overflow when unpacking long: seed {s} does not fit in 64 bits")
    return s % 2**64                    # negative seeds wrap as PyTorch's do


class Generator:
    """A random number generator of its own, for ``generator=`` arguments.

    ``rand``, ``randn``, ``randint``, ``randperm``, the samplers in ``tapegrad.utils.data``
    and ``DataLoader(shuffle=True)`` draw from it instead of the process-wide generator
    that ``tapegrad.manual_seed`` seeds, so one stream (a data order, say) is reproducible
    whatever else draws random numbers. A new generator starts from PyTorch's default seed
    (67280421310721). The values are numpy's PCG64 stream, so they are not PyTorch's: the
    same seed gives the same values in tapegrad on every run, not the ones torch draws.
    Draws from several threads are safe (each generator has a lock).

    >>> import tapegrad as tg
    >>> from tapegrad.creation import Generator, randperm
    >>> g = Generator().manual_seed(42)
    >>> a = randperm(5, generator=g).tolist()
    >>> _ = g.manual_seed(42); randperm(5, generator=g).tolist() == a
    True
    """
    __slots__ = ("_cell", "_seed", "_lock")

    def __init__(self, device="cpu"):
        _device.check(device, "Generator")
        self._lock = threading.Lock()
        self._seed = [_DEFAULT_SEED]
        self._cell = [np.random.default_rng(_DEFAULT_SEED)]

    @classmethod
    def _process_wide(cls):
        g = cls.__new__(cls)
        g._lock, g._seed, g._cell = _rng_lock, _rng_seed, _rng
        return g

    @property
    def device(self):
        return _device.CPU

    def manual_seed(self, seed):
        """Reseed with ``seed`` (an int; negative values wrap modulo 2**64); returns self."""
        s = _seed_value(seed)
        gen = np.random.default_rng(s)
        with self._lock:
            self._cell[0] = gen
            self._seed[0] = s
        return self

    def seed(self):
        """Reseed from the operating system's entropy; returns the seed chosen."""
        s = _fresh_seed()
        self.manual_seed(s)
        return s

    def initial_seed(self):
        """The seed this generator was last seeded with."""
        return self._seed[0]

    def get_state(self):
        """The generator's state as a uint8 tensor, for ``set_state`` (tapegrad's layout,
        not PyTorch's: a state from torch cannot be set here, nor the reverse)."""
        with self._lock:
            st = self._cell[0].bit_generator.state
            seed = self._seed[0]
        inner = st["state"]
        words = (inner["state"].to_bytes(16, "little") + inner["inc"].to_bytes(16, "little")
                 + int(st["uinteger"]).to_bytes(4, "little")
                 + int(st["has_uint32"]).to_bytes(4, "little") + seed.to_bytes(8, "little"))
        return _plain(np.frombuffer(words, np.uint8).copy())

    def set_state(self, new_state):
        """Restore a state ``get_state`` returned; returns self."""
        if not isinstance(new_state, Tensor) or new_state._data.dtype != np.uint8:
            raise TypeError("RNG state must be a uint8 tensor (as Generator.get_state() "
                            "returns)")
        b = new_state._data.reshape(-1).tobytes()
        if len(b) != _STATE_BYTES:
            raise RuntimeError(f"Expected a tapegrad generator state of size {_STATE_BYTES} "
                               f"but found the input RNG state size to be {len(b)}")
        gen = np.random.Generator(np.random.PCG64())
        gen.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(b[0:16], "little"),
                      "inc": int.from_bytes(b[16:32], "little")},
            "uinteger": int.from_bytes(b[32:36], "little"),
            "has_uint32": int.from_bytes(b[36:40], "little")}
        with self._lock:
            self._cell[0] = gen
            self._seed[0] = int.from_bytes(b[40:48], "little")
        return self

    def _draw(self, method, *args):
        T.refuse_in_trace(_RANDOM)
        with self._lock:
            return getattr(self._cell[0], method)(*args)

    def __repr__(self):
        return "Generator(device='cpu')"

    # copies and pickles carry the state (the lock is per object)
    def __reduce__(self):
        return (_generator_from_state, (bytes(self.get_state()._data),))


def _generator_from_state(state):
    return Generator().set_state(_plain(np.frombuffer(state, np.uint8).copy()))


_STATE_BYTES = 48
default_generator = Generator._process_wide()


def manual_seed(seed):
    """Seed the generator behind ``rand``, ``randn``, ``randint`` and friends.

    One generator serves all threads (PyTorch's rule); after ``manual_seed(s)`` a
    single-threaded sequence of draws is the same on every run. Draws from several threads
    are safe, but which thread gets which values then depends on scheduling. It also
    fixes the order ``DataLoader(shuffle=True)`` and the samplers give when they have no
    ``generator=`` of their own (each epoch draws its seed from this generator).

    >>> import tapegrad as tg
    >>> tg.manual_seed(0); a = tg.rand(3).tolist()
    >>> tg.manual_seed(0); tg.rand(3).tolist() == a
    True
    """
    default_generator.manual_seed(seed)


def initial_seed():
    """The seed the process-wide generator was last seeded with."""
    return default_generator.initial_seed()


def seed():
    """Reseed the process-wide generator from the operating system's entropy; returns the
    seed chosen."""
    return default_generator.seed()


def get_rng_state():
    """The process-wide generator's state as a uint8 tensor (see ``Generator.get_state``)."""
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the process-wide generator to a state ``get_rng_state`` returned."""
    default_generator.set_state(new_state)


# a recording would bake the numbers in, and every replay would repeat them
_RANDOM = "drew random numbers (dropout, rand, randn...)"


def _draw(method, *args):
    T.refuse_in_trace(_RANDOM)
    with _rng_lock:
        return getattr(_rng[0], method)(*args)


def draw(method, *args, generator=None):
    """numpy Generator ``method(*args)`` drawn from ``generator`` (a ``tapegrad.Generator``)
    or, when it is None, from the process-wide generator. For code that fills tensors with
    random values (``nn.init``'s ``normal_``, ``uniform_``): ``draw("normal", 0.0, 1.0,
    shape, generator=g)``."""
    if generator is None:
        return _draw(method, *args)
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a tapegrad.Generator, not "
                        f"{type(generator).__name__}")
    return generator._draw(method, *args)


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


def _span(fn, start, end, steps, device):
    """linspace's and logspace's arguments, checked: (start, end, steps)."""
    _device.check(device, fn)
    start = _number(start, fn, "start")
    end = _number(end, fn, "end")
    steps = int_arg(steps, f"{fn}(): argument 'steps'")
    if steps < 0:
        raise RuntimeError(f"{fn}: number of steps must be non-negative, got {steps}")
    return start, end, steps


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    start, end, steps = _span("linspace", start, end, steps, device)
    shape, d = _size((steps,), "linspace"), _dt(dtype)
    return _leaf(_alloc("linspace", shape, lambda: np.linspace(start, end, steps).astype(d)),
                 requires_grad)


def rand(*size, dtype=None, requires_grad=False, device=None, generator=None):
    _device.check(device, "rand")
    shape, d = _size(size, "rand"), _dt(dtype)
    return _leaf(_alloc("rand", shape, lambda: draw("random", shape, generator=generator)
                        .astype(d)), requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None, generator=None):
    _device.check(device, "randn")
    shape, d = _size(size, "randn"), _dt(dtype)
    return _leaf(_alloc("randn", shape, lambda: draw("standard_normal", shape,
                                                     generator=generator).astype(d)),
                 requires_grad)


def randint(low, high=None, size=(), dtype=None, requires_grad=False, device=None,
            generator=None):
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
    return _plain(draw("integers", low, high, shape, generator=generator)
                  .astype(canonical_dtype(dtype or np.int64)))


def randperm(n, generator=None, dtype=np.int64, requires_grad=False, device=None):
    """The integers 0 .. n-1 in a random order (int64 unless ``dtype`` says otherwise).

    Drawn from ``generator`` when given, else from the process-wide generator
    (``manual_seed``). The orders are tapegrad's own, not the ones PyTorch draws.

    >>> from tapegrad.creation import randperm
    >>> sorted(randperm(4).tolist())
    [0, 1, 2, 3]
    """
    _device.check(device, "randperm")
    try:
        n = int_arg(n, "randperm(): argument 'n'")
    except TypeError:
        raise TypeError(f"randperm(): argument 'n' must be int, not {type(n).__name__}") \
            from None
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    d = canonical_dtype(dtype if dtype is not None else np.int64)
    if d.kind != "b" and d.kind in "iu" and n > 0 and n - 1 > np.iinfo(d).max or \
            d.kind == "f" and n > 2 ** (np.finfo(d).nmant + 1) + 1:
        raise RuntimeError(f"randperm: n ({n}) is too large for dtype {d}")
    if d.kind == "b" and n > 2:
        raise RuntimeError(f"randperm: n ({n}) is too large for dtype bool")
    perm = _alloc("randperm", (n,), lambda: draw("permutation", n, generator=generator))
    return _leaf(perm.astype(d), requires_grad)


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


def randn_like(t, dtype=None, requires_grad=False, device=None, generator=None):
    _device.check(device, "randn_like")
    t = _tensor_arg(t, "randn_like")
    d = _dt(dtype) if dtype else t._data.dtype
    return _leaf(draw("standard_normal", t._data.shape, generator=generator).astype(d),
                 requires_grad)


def rand_like(t, dtype=None, requires_grad=False, device=None, generator=None):
    _device.check(device, "rand_like")
    t = _tensor_arg(t, "rand_like")
    d = _dt(dtype) if dtype else t._data.dtype
    return _leaf(draw("random", t._data.shape, generator=generator).astype(d), requires_grad)



def logspace(start, end, steps, base=10.0, dtype=None, requires_grad=False, device=None):
    """``base ** linspace(start, end, steps)``."""
    start, end, steps = _span("logspace", start, end, steps, device)
    d = _dt(dtype)
    return _leaf(np.power(float(base), np.linspace(start, end, steps)).astype(d), requires_grad)


def numel(input):
    """The number of elements of ``input``."""
    return _tensor_arg(input, "numel").numel()


def empty_like(t, dtype=None, requires_grad=False, device=None):
    """An uninitialised tensor with ``t``'s shape and dtype (unless ``dtype``)."""
    _device.check(device, "empty_like")
    return _like(np.empty, t, dtype and canonical_dtype(dtype), requires_grad)


def randint_like(t, low=0, high=None, dtype=None, requires_grad=False, device=None,
                 generator=None):
    """Random integers in [low, high) (``randint_like(t, high)`` starts at 0) with ``t``'s
    shape and dtype (unless ``dtype``)."""
    _device.check(device, "randint_like")
    t = _tensor_arg(t, "randint_like")
    if high is None:
        low, high = 0, low
    low = int_arg(low, "randint_like(): argument 'low'")
    high = int_arg(high, "randint_like(): argument 'high'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    d = canonical_dtype(dtype) if dtype else t._data.dtype
    return _leaf(draw("integers", low, high, t._data.shape, generator=generator).astype(d),
                 requires_grad)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, requires_grad=False,
           device=None):
    """Normal samples: ``mean`` and ``std`` are tensors (broadcast; one sample each) or
    numbers (then ``size`` gives the shape). No gradient flows to mean or std."""
    _device.check(device, "normal")
    ms = [v for v in (mean, std) if isinstance(v, Tensor)]
    if not ms:
        if size is None:
            raise TypeError("normal(): with a number mean and std, pass size=(...)")
        shape = _size((size,), "normal")
        m, s = _number(mean, "normal", "mean"), _number(std, "normal", "std")
        d = _dt(dtype)
    else:
        if size is not None:
            raise RuntimeError("normal(): size is only allowed when mean and std are numbers")
        arrays = [v._data if isinstance(v, Tensor) else np.asarray(v) for v in (mean, std)]
        m, s = arrays
        for v in ms:
            _note_read(v)
        shape = np.broadcast_shapes(m.shape, s.shape)
        d = np.result_type(*[v._data.dtype for v in ms])
        if d.kind != "f":
            raise RuntimeError(f"normal expects floating point mean and std, got {d}")
    if np.any(np.asarray(s) < 0):
        raise RuntimeError(f"normal expects std >= 0.0, but found std "
                           f"{np.min(np.asarray(s)):g}")
    z = draw("standard_normal", shape, generator=generator)
    return _leaf(np.asarray(m + s * z).astype(d), requires_grad)


def bernoulli(input, p=None, *, generator=None):
    """0/1 samples, 1 with probability ``input`` elementwise (or ``p``, a number, for
    every element), in ``input``'s dtype. Not differentiable."""
    t = _tensor_arg(input, "bernoulli")
    _note_read(t)
    prob = t._data if p is None else np.full(t._data.shape, _number(p, "bernoulli", "p"))
    if prob.size and (np.any(prob < 0) or np.any(prob > 1) or np.any(prob != prob)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    u = draw("random", t._data.shape, generator=generator)
    return _plain((u < prob).astype(t._data.dtype if t._data.dtype.kind == "f"
                                    else get_default_dtype()))


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """``num_samples`` category indices drawn per row of the non-negative weights
    ``input`` (1-d or 2-d; rows need not sum to one), without replacement unless
    ``replacement``."""
    t = _tensor_arg(input, "multinomial")
    _note_read(t)
    w = t._data
    if w.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    n = int_arg(num_samples, "multinomial(): argument 'num_samples'")
    if n <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    if w.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{w.dtype}")
    rows = w.reshape(-1, w.shape[-1]).astype(np.float64)
    if not replacement and n > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if (rows < 0).any() or not np.isfinite(rows).all():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    out = np.empty((rows.shape[0], n), np.int64)
    for i, r in enumerate(rows):
        total = r.sum()
        if total <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if replacement:
            out[i] = draw("choice", r.size, n, True, r / total, generator=generator)
            continue
        # without replacement: an exponential race, each category's time -log(u) / weight;
        # the first n to finish are drawn in that order. Categories of weight 0 never
        # finish, and come last in a random order once the others are used up (as torch)
        u = draw("random", (2, r.size), generator=generator)
        with np.errstate(divide="ignore"):
            t = -np.log1p(-u[0]) / r
        out[i] = np.lexsort((u[1], t))[:n]
    return _plain(out.reshape(w.shape[:-1] + (n,)))


def _new_size(args, fn):
    return _size(args, fn)


def _new(fn, make):
    def f(self, *size, dtype=None, device=None, requires_grad=False, **kw):
        _device.check(device, fn)
        shape = _new_size(size, fn)
        d = canonical_dtype(dtype) if dtype is not None else self._data.dtype
        return _leaf(_alloc(fn, shape, lambda: make(shape, d)), requires_grad)
    f.__name__ = f.__qualname__ = fn
    f.__doc__ = f"``{fn}(size)``: a new tensor of that size with this tensor's dtype."
    return f


new_zeros = _new("new_zeros", np.zeros)
new_ones = _new("new_ones", np.ones)
new_empty = _new("new_empty", np.empty)


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A new tensor of ``size`` filled with ``fill_value``, with this tensor's dtype."""
    _device.check(device, "new_full")
    shape = _size((size,), "new_full")
    d = canonical_dtype(dtype) if dtype is not None else self._data.dtype
    v = _number(fill_value, "new_full", "fill_value")
    return _leaf(_alloc("new_full", shape, lambda: np.full(shape, v, d)), requires_grad)


def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    """``tensor(data)`` with this tensor's dtype (unless ``dtype``): a copy, a leaf."""
    return tensor(data, dtype=dtype if dtype is not None else self._data.dtype,
                  requires_grad=requires_grad, device=device)


def _fill_random(name, fill):
    def f(self, *args, generator=None):
        from .ops.inplace import _inplace
        _note_read(self)
        return _inplace(self, lambda x: _plain(fill(x._data, args, generator)),
                        lambda a: np.copyto(a, fill(a, args, generator), casting="unsafe"))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"``{name}``: fill the tensor in place with random values (no gradient; "
                 f"under no_grad for a leaf that requires grad, as nn.init does).")
    return f


normal_ = _fill_random("normal_", lambda a, args, g: (
    (args[0] if args else 0.0) + (args[1] if len(args) > 1 else 1.0) *
    draw("standard_normal", a.shape, generator=g)).astype(a.dtype))
uniform_ = _fill_random("uniform_", lambda a, args, g: (
    (args[0] if args else 0.0) + ((args[1] if len(args) > 1 else 1.0) -
                                  (args[0] if args else 0.0)) *
    draw("random", a.shape, generator=g)).astype(a.dtype))
bernoulli_ = _fill_random("bernoulli_", lambda a, args, g: (
    draw("random", a.shape, generator=g) < (args[0] if args else 0.5)).astype(a.dtype))

NEW_METHODS = dict(new_zeros=new_zeros, new_ones=new_ones, new_empty=new_empty,
                   new_full=new_full, new_tensor=new_tensor, normal_=normal_,
                   uniform_=uniform_, bernoulli_=bernoulli_,
                   bernoulli=lambda s, p=None, *, generator=None: bernoulli(
                       s, p, generator=generator),
                   multinomial=multinomial)
