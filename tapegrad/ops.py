"""The op table: each differentiable op computes its value with numpy and appends one
record whose opcode the compiled sweeps know (see ``kernels/`` for the VJPs).

Opcodes say how to differentiate; names (``MulBackward0``...) say what ``grad_fn`` shows.
So ``x - 2`` records ADDC (gradient passes through) named SubBackward0.
"""
import builtins

import numpy as np

from . import codegen, rules
from . import kernels as K
from .kernels import DT_BIT, NAME_SHIFT, RG_BIT
from . import tape as T
from .tensor import Tensor, _FLOATS, _dim, get_default_dtype, float32, float64, grad_enabled
from .tensor import _gstate, _note_read, canonical, canonical_dtype, int_arg

_max = builtins.max     # this module defines max() and friends with torch's meaning
_name = T.name_id
_READS = K.reads_table().tolist()


# ---- tensor construction helpers -----------------------------------------------------------
def _plain(data):
    t = Tensor.__new__(Tensor)
    t._data = data
    t._rg = False
    t._tape = None
    t._gid = 0
    t._fn = 0
    t._snap = None
    t._snaptape = None
    t._grad = None
    t._version = 0
    t._retain = False
    t._base = None
    t._alias = None
    return t


def _graph(data, tape, gid, fn):
    t = Tensor.__new__(Tensor)
    t._data = data
    t._rg = True
    t._tape = tape
    t._gid = gid
    t._fn = fn
    t._snap = None
    t._snaptape = None
    t._grad = None
    t._version = 0
    t._retain = False
    t._base = None
    t._alias = None
    return t


def as_tensor(x, dtype=None):
    """Tensor from a tensor, array, list or scalar (Python floats take the default dtype)."""
    if isinstance(x, Tensor):
        return x if dtype is None or x._data.dtype == dtype else to_dtype(x, dtype)
    if dtype is not None:
        dtype = canonical_dtype(dtype)
    if isinstance(x, np.ndarray):
        a = canonical(x)
    else:
        a = array_from(x, dtype)
        if dtype is None and a.dtype is float64 and not _has_np_float64(x):
            a = a.astype(get_default_dtype())
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    return _plain(a)


_REAL = (int, float, np.integer, np.floating, np.bool_)   # bool is an int


def array_from(data, dtype=None):
    """A new array holding Python data (numbers, nested sequences), checked the way
    torch.tensor checks it: strings, None and other objects, ragged nesting and integers
    beyond int64 raise instead of making an object or string array."""
    try:
        a = np.asarray(data)
    except ValueError as e:
        if "inhomogeneous" in str(e) or "sequence" in str(e):
            raise _ragged(data) from None
        raise _bad_leaf(data, e) from None
    except (TypeError, OverflowError) as e:
        raise _bad_leaf(data, e) from None
    if a.dtype.kind not in "fiub":
        if not (a.dtype.kind == "O" and dtype is not None and dtype.kind == "f"
                and all(type(v) is int for v in _leaves(data))):
            raise _bad_leaf(data, None, a)
        a = np.array(data, dtype)     # integers beyond int64, asked for as floats
    return canonical(a)


def _leaves(v):
    if isinstance(v, (list, tuple)):
        for e in v:
            yield from _leaves(e)
    else:
        yield v


def _bad_leaf(data, err, a=None):
    """The exception for data whose elements are not real numbers (torch's types)."""
    if isinstance(data, (str, bytes)):
        return TypeError(f"new(): invalid data type '{type(data).__name__}': a tensor holds "
                         f"numbers; convert the text first (e.g. float(s))")
    if a is not None and a.dtype.kind == "c" or isinstance(data, complex):
        return TypeError("tapegrad has no complex dtype; pass the real and imaginary parts "
                         "as two real tensors")
    for v in _leaves(data):
        if isinstance(v, (str, bytes)):
            return ValueError(f"too many dimensions '{type(v).__name__}': the data holds the "
                              f"string {v!r}; a tensor holds numbers only")
        if isinstance(v, complex):
            return TypeError("tapegrad has no complex dtype")
        if isinstance(v, int) and not -2**63 <= v < 2**63:
            return ValueError(f"Overflow when unpacking long long: {v} does not fit in 64 bits; "
                              f"pass dtype=tapegrad.float64 to store it as a float")
        if not isinstance(v, _REAL) and not isinstance(v, (np.ndarray, Tensor)):
            return RuntimeError(f"Could not infer dtype of {type(v).__name__}: a tensor is made "
                                f"from numbers, nested lists of numbers, arrays or tensors")
    return TypeError(f"can't make a tensor from {type(data).__name__}"
                     + ("" if err is None else f" ({err})"))


def _ragged(data):
    """ValueError/TypeError naming where nested sequences stop being rectangular."""
    def seq(v):
        return isinstance(v, (list, tuple)) or (isinstance(v, (np.ndarray, Tensor)) and v.ndim)
    shape = []
    v = data
    while seq(v):
        shape.append(len(v))
        if not len(v):
            break
        v = v[0]

    def walk(v, d):
        if d == len(shape):
            return TypeError(f"expected a number at dim {d}, got a sequence "
                             f"({type(v).__name__})") if seq(v) else None
        if not seq(v):
            return TypeError(f"not a sequence: expected a sequence of length {shape[d]} at "
                             f"dim {d}, got {type(v).__name__}")
        if len(v) != shape[d]:
            return ValueError(f"expected sequence of length {shape[d]} at dim {d} "
                              f"(got {len(v)}): nested lists must be rectangular")
        for e in v:
            r = walk(e, d + 1)
            if r is not None:
                return r
        return None
    return walk(data, 0) or ValueError("nested sequences of unequal lengths can't make a tensor")


def _has_np_float64(x):
    return isinstance(x, np.floating) or (isinstance(x, (list, tuple)) and any(
        isinstance(v, np.ndarray) and v.dtype == np.float64 for v in x))


def _recording(*ts):
    if not grad_enabled():
        return False
    for t in ts:
        if t is not None and t._rg:
            return True
    return False


_tls = T._tls


def _tape():
    tp = _tls.tape
    if tp.n >= tp.limit:
        tp.collect()
    return tp


def _slot(tp, t):
    """Local record index of tensor t on tape tp, adding an INPUT record if needed."""
    if t._tape is not None:
        if t._tape is tp:
            loc = tp.local(t._gid)
            return loc if loc >= 0 else _dead(tp, t)
        if tp.save_all:
            raise RuntimeError(
                "a compiled or transformed function used a tensor with grad history from "
                "outside the function; pass it as an argument (or use x.detach()) instead.")
        raise RuntimeError(
            "this tensor was produced by operations recorded in another thread; tapegrad "
            "keeps one tape per thread, so a graph cannot continue across threads. Pass "
            "x.detach() (and set requires_grad on it) to start a new graph here.")
    g = t._snap
    if g is not None and t._snaptape is tp:
        loc = tp.local(g)
        if loc >= 0:
            return loc
    d = t._data
    word = K.INPUT | (d.dtype == float64) * DT_BIT | t._rg * RG_BIT
    gid = tp.append(word, -1, -1, -1, 0, 0, d, False, live=0)
    t._snap = gid
    t._snaptape = tp
    if t._rg:
        tp.leaves[gid] = t
    if tp.save_all:
        tp.inputs_log[gid] = t
    return tp.n - 1


_DEAD_NAME = _name("Freed")


def _dead(tp, t):
    """t's graph was freed: stand it in with a record that fails if backward reaches it."""
    d = t._data
    word = K.DEAD | (d.dtype == float64) * DT_BIT | RG_BIT | _DEAD_NAME << NAME_SHIFT
    t._gid = tp.append(word, -1, -1, -1, 0, 0, d, False)
    return tp.n - 1


def _record(op, fn, out, x, y=None, z=None, p0=0, p1=0, f0=0.0, f1=0.0):
    """Append the record for out = op(x, y, z) and return the result tensor."""
    tp = _tls.tape
    if tp.n >= tp.limit:
        tp.collect()
    g = x._gid
    a = g - tp.g0 + tp.k if (x._tape is tp and g >= tp.g0) else _slot(tp, x)
    b = -1 if y is None else _slot(tp, y)
    c = -1 if z is None else _slot(tp, z)
    reads = _READS[op]
    if reads:
        if reads & K.R_A:
            tp.save(a, x._data)
        if reads & K.R_B:
            tp.save(b, y._data)
        if reads & K.R_C and z is not None:
            tp.save(c, z._data)
    gid = tp.append(op | (out.dtype is float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT, a, b, c, p0, p1,
                    out, reads & 8, f0, f1)
    return _graph(out, tp, gid, fn)


def _record1(op, fn, out, x, f0=0.0, f1=0.0):
    """_record for the hot one-input elementwise ops (no broadcasting, no index data)."""
    tp = _tls.tape
    if tp.n >= tp.limit:
        tp.collect()
    g = x._gid
    a = g - tp.g0 + tp.k if (x._tape is tp and g >= tp.g0) else _slot(tp, x)
    reads = _READS[op]
    if reads & 1:
        tp.save(a, x._data)
    gid = tp.append(op | (out.dtype is float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT, a, -1, -1, 0, 0,
                    out, reads & 8, f0, f1)
    return _graph(out, tp, gid, fn)


# ---- dtype promotion -----------------------------------------------------------------------------
def _float(x):
    """x as a float tensor (integer and bool tensors take the default dtype)."""
    return x if x._data.dtype in _FLOATS else _plain(x._data.astype(get_default_dtype()))


def to_dtype(x, dtype):
    dtype = canonical_dtype(dtype)
    if x._data.dtype == dtype:
        return x
    out = x._data.astype(dtype)
    if dtype in _FLOATS and _recording(x):
        return _record(K.CAST, _CAST, out, x)
    return _plain(out)


_CAST = _name("ToCopyBackward0")


def _promote(x, y):
    """Bring two tensors to a common dtype the way PyTorch does for float math."""
    dx = x._data.dtype
    dy = y._data.dtype
    if dx == dy:
        return x, y
    fx = dx in _FLOATS
    fy = dy in _FLOATS
    if fx and fy:
        if x._data.ndim == 0 and y._data.ndim > 0:
            target = dy
        elif y._data.ndim == 0 and x._data.ndim > 0:
            target = dx
        else:
            target = float64
    elif fx:
        target = dx
    elif fy:
        target = dy
    else:
        return x, y   # integer math: numpy's rules
    return to_dtype(x, target), to_dtype(y, target)


_SCALARS = {int, float, bool, np.float64, np.float32, np.int64, np.int32, np.bool_}


def _is_scalar(v):
    return type(v) in _SCALARS


def _operand(sym, x, y, v):
    """v, one operand of `x sym y`, as a tensor: tensors, real numbers and numpy arrays.
    Anything else (None, str, lists, complex...) is Python's TypeError for an unsupported
    operand, which is also what PyTorch raises."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (np.ndarray, _REAL)):
        return as_tensor(v)
    raise _bad_operand(sym, x, y, v)


def _bad_operand(sym, x, y, v):
    hint = " (tapegrad has no complex dtype)" if isinstance(v, complex) else (
        "; make it a tensor first with tapegrad.tensor(...)" if isinstance(v, (list, tuple))
        else "")
    return TypeError(f"unsupported operand type(s) for {sym}: '{type(x).__name__}' and "
                     f"'{type(y).__name__}'{hint}")


def _need_tensor(x, fn):
    """TypeError for a function given something other than a tensor as its input."""
    return TypeError(f"{fn}(): argument 'input' must be Tensor, not {type(x).__name__}")


# ---- elementwise ---------------------------------------------------------------------------------
_N = {k: _name(v) for k, v in {
    "add": "AddBackward0", "sub": "SubBackward0", "mul": "MulBackward0", "div": "DivBackward0",
    "rsub": "RsubBackward1", "pow0": "PowBackward0", "pow1": "PowBackward1",
    "neg": "NegBackward0", "exp": "ExpBackward0", "log": "LogBackward0",
    "sqrt": "SqrtBackward0", "abs": "AbsBackward0", "sin": "SinBackward0",
    "cos": "CosBackward0", "tanh": "TanhBackward0", "sigmoid": "SigmoidBackward0",
    "relu": "ReluBackward0", "clamp": "ClampBackward1", "maximum": "MaximumBackward0",
    "minimum": "MinimumBackward0", "where": "WhereBackward0", "sum": "SumBackward1",
    "sumall": "SumBackward0", "mean": "MeanBackward1", "meanall": "MeanBackward0",
    "max": "MaxBackward1", "min": "MinBackward1", "maxdim": "MaxBackward0",
    "mindim": "MinBackward0", "select": "SelectBackward0", "slice": "SliceBackward0",
    "index": "IndexBackward0", "t": "TBackward0", "transpose": "TransposeBackward0",
    "permute": "PermuteBackward0", "view": "ViewBackward0", "reshape": "ReshapeAliasBackward0",
    "unsqueeze": "UnsqueezeBackward0", "squeeze": "SqueezeBackward0",
    "expand": "ExpandBackward0", "cat": "CatBackward0", "stack": "StackBackward0",
    "softmax": "SoftmaxBackward0", "log_softmax": "LogSoftmaxBackward0",
    "bcewl": "BinaryCrossEntropyWithLogitsBackward0", "nll": "NllLossBackward0",
    "bce": "BinaryCrossEntropyBackward0",
    "mm": "MmBackward0", "mv": "MvBackward0", "dot": "DotBackward0", "bmm": "BmmBackward0",
    "matmul": "MatmulBackward0", "clone": "CloneBackward0", "flatten": "FlattenBackward0",
    "scatter": "ScatterAddBackward0",
}.items()}


_ADD = _N["add"]
_MUL = _N["mul"]


def _unary(op, fn, numpy_fn, x, f0=0.0, f1=0.0):
    try:
        d = x._data.dtype
    except AttributeError:
        raise _need_tensor(x, T.OPNAMES[op]) from None
    if d is not float32 and d is not float64:
        x = _float(x)
    out = numpy_fn(x._data)
    if x._rg and _gstate.enabled:
        return _record1(op, fn, out, x, f0, f1)
    return _plain(out)


def neg(x):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "neg")
    if x._data.dtype not in _FLOATS:
        if x._data.dtype == np.bool_:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return _plain(-x._data)
    return _unary(K.NEG, _N["neg"], np.negative, x)


def exp(x):
    return _unary(K.EXP, _N["exp"], np.exp, x)


def log(x):
    return _unary(K.LOG, _N["log"], np.log, x)


def sqrt(x):
    return _unary(K.SQRT, _N["sqrt"], np.sqrt, x)


def abs(x):  # noqa: A001 - torch's name
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "abs")
    if x._data.dtype not in _FLOATS:
        return _plain(np.abs(x._data))
    return _unary(K.ABS, _N["abs"], np.abs, x)


def sin(x):
    return _unary(K.SIN, _N["sin"], np.sin, x)


def cos(x):
    return _unary(K.COS, _N["cos"], np.cos, x)


def tanh(x):
    return _unary(K.TANH, _N["tanh"], np.tanh, x)


def _sigmoid_np(a):
    # exp(-logaddexp(0, -a)) is 1 / (1 + exp(-a)) without overflow warnings
    return np.exp(-np.logaddexp(0, -a)).astype(a.dtype, copy=False)


def sigmoid(x):
    return _unary(K.SIGMOID, _N["sigmoid"], _sigmoid_np, x)


def relu(x):
    return _unary(K.RELU, _N["relu"], lambda a: np.maximum(a, 0), x)


def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
    for v in (min, max):
        if v is not None and not isinstance(v, (_REAL, Tensor)):
            raise TypeError(f"clamp(): min and max must be numbers or tensors, not "
                            f"{type(v).__name__}")
    lo = -np.inf if min is None else float(min)
    hi = np.inf if max is None else float(max)
    x = _float(x)
    return _unary(K.CLAMP, _N["clamp"], lambda a: np.clip(a, lo, hi).astype(a.dtype, copy=False),
                  x, lo, hi)


# ---- the registry's elementwise ops (rules.py): one declaration each, made here -----------------
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
        if on_arrays.startswith("_np_") and on_arrays not in ns:
            ns[on_arrays] = _compiled_values(getattr(K, name.upper()))
    return ns


_ON_ARRAYS = _numpy_namespace()


def _registry_op(u):
    op, fn = getattr(K, u.opcode), _N[u.name]
    numpy_fn = codegen.numpy_rule(u, _ON_ARRAYS)
    values = lambda a: numpy_fn(a, 0.0, 0.0)     # noqa: E731 - public ops take no constants

    def f(input):
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


def square(x):
    return pow(x, 2)


def lerp(input, end, weight):
    """``input + weight * (end - input)``; ``weight`` a number or a tensor (PyTorch's lerp,
    composed from recorded ops, so its grad_fn is the last op's, ``AddBackward0``)."""
    if not isinstance(input, Tensor) or not isinstance(end, Tensor):
        raise TypeError(f"lerp(): input and end must be tensors, got "
                        f"{type(input).__name__} and {type(end).__name__}")
    return add(input, mul(weight, sub(end, input)))


def _broadcast_error(sx, sy, what="tensor"):
    nd = _max(len(sx), len(sy))
    px = (1,) * (nd - len(sx)) + tuple(sx)
    py = (1,) * (nd - len(sy)) + tuple(sy)
    for d in range(nd - 1, -1, -1):
        if px[d] != py[d] and px[d] != 1 and py[d] != 1:
            return RuntimeError(
                f"The size of tensor a ({px[d]}) must match the size of tensor b ({py[d]}) at "
                f"non-singleton dimension {d}: shapes {tuple(sx)} and {tuple(sy)} do not "
                f"broadcast. Reshape or unsqueeze one operand so the sizes agree or are 1.")
    return RuntimeError(f"shapes {tuple(sx)} and {tuple(sy)} do not broadcast")


def _binary(op, fn, numpy_fn, x, y):
    x, y = _promote(x, y)
    try:
        out = numpy_fn(x._data, y._data)
    except ValueError:
        if x._data.shape != y._data.shape:
            raise _broadcast_error(x._data.shape, y._data.shape) from None
        raise
    except TypeError:
        if op == K.SUB and x._data.dtype == np.bool_:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead."
                               ) from None
        raise
    if not ((x._rg or y._rg) and _gstate.enabled):
        return _plain(out)
    shp = out.shape
    sx, sy = x._data.shape, y._data.shape
    flags = (sx != shp) | (sy != shp) << 1
    if flags and flags != 3:
        small = sx if flags == 1 else sy
        k = 0
        while k < len(small) and small[k] == 1:
            k += 1
        if small[k:] == shp[len(shp) - len(small) + k:]:
            flags |= flags << 3          # a suffix repeat: the sweep needs no index map
    return _record(op, fn, out, x, y, None, flags)


def _scalar_op(op, fn, numpy_fn, x, c, f0):
    if type(x) is not Tensor:
        x = _t(x)
    d = x._data.dtype
    if d is not float32 and d is not float64:
        if d in _FLOATS:
            pass
        elif isinstance(c, (float, np.floating)) or op == K.RDIVC or fn == _N["div"]:
            x = _float(x)
            d = x._data.dtype
        else:
            return _plain(numpy_fn(x._data))
    out = numpy_fn(x._data)
    if out.dtype is not d:
        out = out.astype(d)
    if x._rg and _gstate.enabled:
        return _record1(op, fn, out, x, f0)
    return _plain(out)


def add(x, y, alpha=1):
    ty = type(y)
    if (ty is float or ty is int) and type(x) is Tensor and alpha == 1:   # the hot case
        d = x._data
        if d.dtype is float32 or d.dtype is float64:
            out = d + y
            if x._rg and _gstate.enabled:
                return _record1(K.ADDC, _ADD, out, x, float(y))
            return _plain(out)
    if alpha != 1:
        y = mul(y, alpha)
    if _is_scalar(y):
        return _scalar_op(K.ADDC, _N["add"], lambda a: a + y, x, y, float(y))
    if _is_scalar(x):
        return add(y, x)
    return _binary(K.ADD, _N["add"], np.add, _operand("+", x, y, x), _operand("+", x, y, y))


def sub(x, y, alpha=1):
    if alpha != 1:
        y = mul(y, alpha)
    if _is_scalar(y):
        return _scalar_op(K.ADDC, _N["sub"], lambda a: a - y, x, y, -float(y))
    if _is_scalar(x):
        return _scalar_op(K.NEG, _N["rsub"], lambda a: x - a, _operand("-", x, y, y), x,
                          float(x))
    return _binary(K.SUB, _N["sub"], np.subtract, _operand("-", x, y, x),
                   _operand("-", x, y, y))


def mul(x, y):
    ty = type(y)
    if (ty is float or ty is int) and type(x) is Tensor:   # the hot case
        d = x._data
        if d.dtype is float32 or d.dtype is float64:
            out = d * y
            if x._rg and _gstate.enabled:
                return _record1(K.MULC, _MUL, out, x, float(y))
            return _plain(out)
    if _is_scalar(y):
        return _scalar_op(K.MULC, _N["mul"], lambda a: a * y, x, y, float(y))
    if _is_scalar(x):
        return mul(y, x)
    return _binary(K.MUL, _N["mul"], np.multiply, _operand("*", x, y, x),
                   _operand("*", x, y, y))


def div(x, y):
    if _is_scalar(y):
        return _scalar_op(K.MULC, _N["div"], lambda a: a / y, x, y, 1.0 / float(y) if y else np.inf)
    if _is_scalar(x):
        return _scalar_op(K.RDIVC, _N["div"], lambda a: x / a, _operand("/", x, y, y), x,
                          float(x))
    x, y = _operand("/", x, y, x), _operand("/", x, y, y)
    if x._data.dtype not in _FLOATS and y._data.dtype not in _FLOATS:
        x = _float(x)
    return _binary(K.DIV, _N["div"], np.divide, x, y)


def _int_power(a, b):
    try:
        return _plain(np.power(a, b))
    except ValueError:      # numpy's text, PyTorch's type
        raise RuntimeError("Integers to negative integer powers are not allowed; use a float "
                           "base (x.float() ** -1)") from None


def pow(x, y):  # noqa: A001
    sym = "** or pow()"
    if _is_scalar(y):
        x = _operand(sym, x, y, x)
        if x._data.dtype not in _FLOATS and not isinstance(y, float):
            return _int_power(x._data, y)
        return _scalar_op(K.POWC, _N["pow0"], lambda a: a ** y, x, y, float(y))
    if _is_scalar(x):
        return _scalar_op(K.RPOWC, _N["pow1"], lambda a: np.power(x, a),
                          _float(_operand(sym, x, y, y)), x, float(x))
    x, y = _operand(sym, x, y, x), _operand(sym, x, y, y)
    if x._data.dtype not in _FLOATS and y._data.dtype not in _FLOATS:
        return _int_power(x._data, y._data)
    return _binary(K.POW, _N["pow1"], np.power, x, y)


def maximum(x, y):
    return _binary(K.MAXIMUM, _N["maximum"], np.maximum, _t(x), _t(y))


def minimum(x, y):
    return _binary(K.MINIMUM, _N["minimum"], np.minimum, _t(x), _t(y))


def where(condition, x, y):
    if isinstance(condition, Tensor):
        _note_read(condition)     # which side each element takes is baked into the record
    cond = _t(condition)._data
    if cond.dtype != np.bool_:
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {cond.dtype}; compare it first (e.g. cond != 0)")
    x, y = _t(x), _t(y)
    x, y = _promote(x, y)
    try:
        out = np.where(cond, x._data, y._data)
    except ValueError:
        raise RuntimeError(f"where: condition {cond.shape}, x {tuple(x.shape)} and y "
                           f"{tuple(y.shape)} do not broadcast to one shape") from None
    if out.dtype not in _FLOATS or not _recording(x, y):
        return _plain(out)
    c = _plain(cond.astype(out.dtype))
    shp = out.shape
    flags = (x._data.shape != shp) | (y._data.shape != shp) << 1 | (cond.shape != shp) << 2
    return _record(K.WHERE, _N["where"], out, x, y, c, flags)


def _t(v):
    """v as a tensor for a function argument: tensors, numbers, arrays and nested lists."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (np.ndarray, list, tuple, _REAL)):
        return as_tensor(v)
    raise TypeError(f"expected a Tensor (or a number, an array or a list of numbers), got "
                    f"{type(v).__name__}")


# ---- comparisons (never differentiable) ------------------------------------------------------------
def _cmp(numpy_fn, name, dunder):
    """A comparison. The operator form returns NotImplemented for operands that are not
    tensors, real numbers or arrays, so Python answers as it does for torch: `x == None` is
    False, `x < "a"` a TypeError; the function form raises TypeError."""
    def f(x, y):
        if not isinstance(x, Tensor):
            raise _need_tensor(x, name)
        _note_read(x)
        if isinstance(y, Tensor):
            _note_read(y)
            return _plain(numpy_fn(x._data, y._data))
        if not isinstance(y, (_REAL, np.ndarray)):
            if dunder:
                return NotImplemented
            raise TypeError(f"{name}(): argument 'other' must be Tensor or Number, not "
                            f"{type(y).__name__}")
        if isinstance(y, np.ndarray):
            y = canonical(y)
        return _plain(numpy_fn(x._data, y))
    return f


_CMPS = (np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal)
_CMP_NAMES = ("eq", "ne", "lt", "le", "gt", "ge")
eq, ne, lt, le, gt, ge = (_cmp(f, n, False) for f, n in zip(_CMPS, _CMP_NAMES))
_CMP_DUNDERS = {f"__{n}__": _cmp(f, n, True) for f, n in zip(_CMPS, _CMP_NAMES)}


# ---- reductions -------------------------------------------------------------------------------------
def _dims(dim, nd):
    if dim is None:
        return tuple(range(nd))
    if isinstance(dim, (list, tuple)):
        ds = tuple(_dim(d, nd) for d in dim)
        if len(set(ds)) != len(ds):
            d = next(d for d in ds if ds.count(d) > 1)
            raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
    else:
        ds = (_dim(dim, nd),)
    if nd == 0:
        return ()
    return ds


def _mask(dims):
    m = 0
    for d in dims:
        m |= 1 << d
    return m


def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "sum")
    if dtype is not None:
        x = to_dtype(x, dtype)
    dims = _dims(dim, x._data.ndim)
    if x._data.dtype == np.bool_:
        return _plain(np.sum(x._data, axis=dims, keepdims=keepdim))
    out = np.asarray(np.sum(x._data, axis=dims, keepdims=keepdim))
    if not (x._rg and grad_enabled()):
        return _plain(out)
    return _record(K.SUM, _N["sumall" if dim is None else "sum"], out, x, p0=_mask(dims))


def mean(x, dim=None, keepdim=False, dtype=None):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "mean")
    if dtype is not None:
        x = to_dtype(x, dtype)
    if x._data.dtype not in _FLOATS:
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point "
            f"or complex dtype. Got: {x._data.dtype}. Call .float() first.")
    dims = _dims(dim, x._data.ndim)
    out = np.asarray(np.mean(x._data, axis=dims, keepdims=keepdim))
    if not (x._rg and grad_enabled()):
        return _plain(out)
    count = 1
    for d in dims:
        count *= x._data.shape[d]
    return _record(K.MEAN, _N["meanall" if dim is None else "mean"], out, x, p0=_mask(dims),
                   f0=1.0 / count if count else np.nan)


class _MinMax(tuple):
    """(values, indices), like torch.return_types.max."""
    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _extreme(x, dim, keepdim, is_max):
    a = x._data
    if dim is None:
        if a.size == 0:
            raise RuntimeError(f"{'max' if is_max else 'min'}(): Expected reduction dim to be "
                               f"specified for input.numel() == 0.")
        out = np.asarray(a.max() if is_max else a.min())
        if not (x._rg and grad_enabled()):
            return _plain(out)
        return _record(K.EXTREME, _N["max" if is_max else "min"], out, x, p0=int(is_max))
    d = _dim(dim, a.ndim)
    _note_read(x)     # the winners' positions are baked into the record
    if a.ndim == 0:
        return _MinMax((_reshape(x, (), _N["maxdim" if is_max else "mindim"]),
                        _plain(np.asarray(0))))
    if a.shape[d] == 0:
        raise IndexError(f"{'max' if is_max else 'min'}(): Expected reduction dim {d} to have "
                         f"non-zero size.")
    idx = np.argmax(a, axis=d) if is_max else np.argmin(a, axis=d)
    idx_k = np.expand_dims(idx, d)
    values = np.take_along_axis(a, idx_k, axis=d)
    flat = np.take_along_axis(np.arange(a.size).reshape(a.shape), idx_k, axis=d)
    if not keepdim:
        values = values.squeeze(d)
        flat = flat.squeeze(d)
    else:
        idx = idx_k
    indices = _plain(idx.astype(np.int64))
    if not (x._rg and grad_enabled()):
        return _MinMax((_plain(values), indices))
    return _MinMax((_gather(x, values, flat, _N["maxdim" if is_max else "mindim"]), indices))


def max(x, dim=None, keepdim=False):  # noqa: A001
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return _extreme(x, dim, keepdim, True)


def min(x, dim=None, keepdim=False):  # noqa: A001
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return _extreme(x, dim, keepdim, False)


def argmax(x, dim=None, keepdim=False):
    _note_read(x)
    if dim is None:
        return _plain(np.asarray(np.argmax(x._data)))
    return _plain(np.argmax(x._data, axis=_dim(dim, x._data.ndim), keepdims=keepdim))


def argmin(x, dim=None, keepdim=False):
    _note_read(x)
    if dim is None:
        return _plain(np.asarray(np.argmin(x._data)))
    return _plain(np.argmin(x._data, axis=_dim(dim, x._data.ndim), keepdims=keepdim))


# ---- data movement ----------------------------------------------------------------------------------
def _gather(x, out, flat, fn):
    """Record out = x.flat[flat]; the VJP scatters back. `out` owns its memory."""
    tp = _tape()
    a = _slot(tp, x)
    io = tp.store_index(np.ascontiguousarray(flat, dtype=np.int64))
    word = K.GATHER | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, io, out.size, out, False)
    return _graph(out, tp, gid, fn)


def scatter(x, flat, shape, fn=None):
    """out = zeros(shape); out.flat[flat] += x.flat (repeats add): GATHER's transpose."""
    flat = np.ascontiguousarray(flat, dtype=np.int64).reshape(-1)
    out = np.zeros(int(np.prod(shape, dtype=np.int64)), x._data.dtype)
    np.add.at(out, flat, x._data.reshape(-1))
    out = out.reshape(shape)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    fn = _N["scatter"] if fn is None else fn
    tp = _tape()
    a = _slot(tp, x)
    io = tp.store_index(flat)
    word = K.SCATTER | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, io, flat.size, out, False)
    return _graph(out, tp, gid, fn)


def take(x, flat, shape=None, fn=None):
    """out.flat[i] = x.flat[flat[i]], shaped like `flat` (or `shape`): a recorded gather."""
    flat = np.asarray(flat, dtype=np.int64)
    out = x._data.reshape(-1)[flat]
    if shape is not None:
        out = out.reshape(shape)
        flat = flat.reshape(shape)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    return _gather(x, out, flat, _N["index"] if fn is None else fn)


def _view_of(x, out, fn, builder):
    """Result of a movement op: a view for plain tensors, a recorded copy otherwise."""
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        if np.shares_memory(out, x._data):
            t._base = x
        return t
    return builder(np.array(out, copy=True))


def _index_key(key):
    if isinstance(key, tuple):
        return tuple(_index_key(k) for k in key)
    if isinstance(key, Tensor):
        _note_read(key)           # the positions are baked into the record (an index map)
        return key._data
    if isinstance(key, list):
        return np.asarray(key)
    return key


def _key_name(key):
    parts = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, np.ndarray) and k.ndim > 0 for k in parts):
        return _N["index"]
    if len(parts) == 1 and isinstance(parts[0], (int, np.integer)):
        return _N["select"]
    if all(k is None for k in parts):
        return _N["unsqueeze"]
    return _N["slice"]


def getitem(x, key):
    key = _index_key(key)
    try:
        out = x._data[key]
    except IndexError as e:
        if isinstance(key, (str, bytes)):
            raise TypeError(f"a tensor can't be indexed by a {type(key).__name__} ({key!r}); "
                            f"use integers, slices, None, ... or integer/bool tensors"
                            ) from None
        if x._data.ndim == 0:
            raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` to "
                             "convert a 0-dim tensor to a number") from None
        raise IndexError(f"{e} (tensor of shape {tuple(x._data.shape)})") from None
    if not isinstance(out, np.ndarray):
        out = np.asarray(out)
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        if np.shares_memory(out, x._data):
            t._base = x
        return t
    flat = np.arange(x._data.size).reshape(x._data.shape)[key]
    return _gather(x, np.array(out, copy=True), np.asarray(flat), _key_name(key))


def _perm_gather(x, axes, fn):
    out = x._data.transpose(axes)
    return _view_of(x, out, fn, lambda o: _gather(
        x, o, np.arange(x._data.size).reshape(x._data.shape).transpose(axes), fn))


def transpose(x, dim0, dim1):
    nd = x._data.ndim
    if nd == 0:
        _dim(dim0, 0), _dim(dim1, 0)
        return _reshape(x, (), _N["transpose"])
    d0, d1 = _dim(dim0, nd), _dim(dim1, nd)
    axes = list(range(nd))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return _perm_gather(x, tuple(axes), _N["transpose"])


def t(x):
    if x._data.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{x._data.ndim}D; use transpose(dim0, dim1) or permute")
    if x._data.ndim < 2:
        return _reshape(x, x._data.shape, _N["t"])
    return _perm_gather(x, (1, 0), _N["t"])


def T_(x):
    return _perm_gather(x, tuple(range(x._data.ndim))[::-1], _N["permute"])


def permute(x, *dims):
    if len(dims) == 1 and isinstance(dims[0], (list, tuple)):
        dims = tuple(dims[0])
    nd = x._data.ndim
    axes = tuple(_dim(d, nd) for d in dims)
    if sorted(axes) != list(range(nd)):
        raise RuntimeError(f"permute: dims {tuple(dims)} are not a permutation of the "
                           f"{nd} dimensions of a tensor of shape {tuple(x._data.shape)}")
    return _perm_gather(x, axes, _N["permute"])


def _reshape(x, shape, fn):
    try:
        out = x._data.reshape(shape)
    except ValueError:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                           f"{x._data.size} (tensor of shape {tuple(x._data.shape)})") from None
    if not (x._rg and grad_enabled()):
        t = _plain(out)
        t._base = x
        return t
    out = np.array(out, copy=True)
    tp = _tape()
    a = _slot(tp, x)
    word = K.RESHAPE | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, 0, 0, out, False)
    return _graph(out, tp, gid, fn)


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = tuple(shape[0])
    out = tuple(int_arg(s, "shape entries") for s in shape)
    if out.count(-1) > 1:
        raise RuntimeError(f"only one dimension can be inferred (shape {list(out)})")
    for i, s in enumerate(out):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(out)}")
    return out


def reshape(x, *shape):
    return _reshape(x, _shape_args(shape), _N["view"])


def view(x, *shape):
    return _reshape(x, _shape_args(shape), _N["view"])


def flatten(x, start_dim=0, end_dim=-1):
    nd = x._data.ndim
    if nd == 0:
        return _reshape(x, (1,), _N["view"])
    s, e = _dim(start_dim, nd), _dim(end_dim, nd)
    shp = x._data.shape
    n = 1
    for d in range(s, e + 1):
        n *= shp[d]
    return _reshape(x, shp[:s] + (n,) + shp[e + 1:], _N["view"])


def squeeze(x, dim=None):
    shp = x._data.shape
    if dim is None:
        new = tuple(s for s in shp if s != 1)
    else:
        dims = _dims(dim, x._data.ndim)
        new = tuple(s for i, s in enumerate(shp) if not (i in dims and s == 1))
    return _reshape(x, new, _N["squeeze"])


def unsqueeze(x, dim):
    nd = x._data.ndim + 1
    d = _dim(dim, nd)
    shp = x._data.shape
    return _reshape(x, shp[:d] + (1,) + shp[d:], _N["unsqueeze"])


def expand(x, *shape):
    shape = _shape_args(shape)
    nd = len(shape)
    src = (1,) * (nd - x._data.ndim) + x._data.shape
    target = tuple(src[i] if s == -1 else s for i, s in enumerate(shape))
    try:
        out = np.broadcast_to(x._data, target)
    except ValueError:
        raise RuntimeError(f"expand: shape {tuple(x._data.shape)} cannot be expanded to "
                           f"{target}") from None
    return _view_of(x, out, _N["expand"], lambda o: _gather(
        x, o, np.broadcast_to(np.arange(x._data.size).reshape(x._data.shape), target),
        _N["expand"]))


def clone(x):
    out = x._data.copy()
    if not (x._rg and grad_enabled()):
        return _plain(out)
    tp = _tape()
    a = _slot(tp, x)
    fn = _N["clone"]
    word = K.RESHAPE | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, a, -1, -1, 0, 0, out, False)
    return _graph(out, tp, gid, fn)


def _cat_record(ts, out, dim, mids, fn):
    tp = _tape()
    shp = out.shape
    outer = 1
    for s in shp[:dim]:
        outer *= s
    inner = 1
    for s in shp[dim + 1:]:
        inner *= s
    slots = [_slot(tp, x) for x in ts]
    block = [len(ts), outer, inner, shp[dim] if out.ndim else 1]
    off = 0
    for s, m in zip(slots, mids):
        block += [s, m, off]
        off += m
    io = tp.store_index(np.asarray(block, np.int64))
    word = K.CAT | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, -1, -1, -1, io, len(block), out, False)
    return _graph(out, tp, gid, fn)


def _common(ts, fn):
    if not isinstance(ts, (list, tuple)):
        raise TypeError(f"{fn}(): argument 'tensors' must be a tuple or list of Tensors, not "
                        f"{type(ts).__name__}")
    ts = [_t(x) for x in ts]
    if not ts:   # PyTorch's types: ValueError from cat, RuntimeError from stack
        raise (ValueError if fn == "cat" else RuntimeError)(
            f"{fn}(): expected a non-empty list of Tensors")
    floats = [x._data.dtype for x in ts if x._data.dtype in _FLOATS]
    if floats:
        target = float64 if float64 in floats else float32
        ts = [to_dtype(x, target) for x in ts]
    return ts


def cat(tensors, dim=0):
    ts = _common(tensors, "cat")
    nd = ts[0]._data.ndim
    if nd == 0:
        raise RuntimeError("zero-dimensional tensor cannot be concatenated; use stack")
    d = _dim(dim, nd)
    try:
        out = np.concatenate([x._data for x in ts], axis=d)
    except ValueError:
        raise RuntimeError("cat: tensors must have the same shape except in the "
                           f"concatenating dimension {d}; got shapes "
                           f"{[tuple(x._data.shape) for x in ts]}") from None
    if not _recording(*ts):
        return _plain(out)
    return _cat_record(ts, out, d, [x._data.shape[d] for x in ts], _N["cat"])


def stack(tensors, dim=0):
    ts = _common(tensors, "stack")
    d = _dim(dim, ts[0]._data.ndim + 1)
    try:
        out = np.stack([x._data for x in ts], axis=d)
    except ValueError:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got shapes "
                           f"{[tuple(x._data.shape) for x in ts]}") from None
    if not _recording(*ts):
        return _plain(out)
    return _cat_record(ts, out, d, [1] * len(ts), _N["stack"])


# ---- matrix products ----------------------------------------------------------------------------------
def matmul(x, y):
    x, y = _promote(_operand("@", x, y, x), _operand("@", x, y, y))
    a, b = x._data, y._data
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    try:
        out = np.matmul(a, b)
    except ValueError:
        ka = a.shape[-1]
        kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if ka != kb:
            raise RuntimeError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                f"(the last dimension of the first, {ka}, must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the second, {kb})"
            ) from None
        raise RuntimeError(f"matmul: the batch dimensions of shapes {tuple(a.shape)} and "
                           f"{tuple(b.shape)} do not broadcast") from None
    out = np.asarray(out)
    if not ((x._rg or y._rg) and grad_enabled()):
        return _plain(out)
    if a.ndim == 1 and b.ndim == 1:
        fn = _N["dot"]
    elif a.ndim == 2 and b.ndim == 2:
        fn = _N["mm"]
    elif a.ndim == 2 and b.ndim == 1:
        fn = _N["mv"]
    elif a.ndim == 3 and b.ndim == 3:
        fn = _N["bmm"]
    else:
        fn = _N["matmul"]
    tp = _tape()
    sa = _slot(tp, x)
    sb = _slot(tp, y)
    pa = pb = 0
    if a.ndim <= 2 and b.ndim <= 2:
        if a.size * (b.shape[-1] if b.ndim == 2 else 1) <= K.SMALL_MM:
            tp.save(sa, a)      # small: the sweep does its VJP inline instead of calling numpy
            tp.save(sb, b)
        elif a.dtype == b.dtype == out.dtype and a.flags.c_contiguous and b.flags.c_contiguous:
            # the sweep's BLAS call reads the operands where they are (kept alive in pyrefs)
            pa, pb = a.ctypes.data, b.ctypes.data
    word = K.MATMUL | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, sa, sb, -1, pa, pb, out, False)
    tp.pyrefs[gid] = (a, b)
    return _graph(out, tp, gid, fn)


def mm(x, y):
    if x.ndim != 2 or y.ndim != 2:
        raise RuntimeError(f"mm: both arguments must be 2-D matrices, got shapes "
                           f"{tuple(x.shape)} and {tuple(y.shape)}")
    return matmul(x, y)


def dot(x, y):
    if x.ndim != 1 or y.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {x.ndim}D and {y.ndim}D tensors")
    return matmul(x, y)


# ---- fused ops used by nn.functional -------------------------------------------------------------------
def softmax(x, dim, log=False):
    if not isinstance(x, Tensor):
        raise _need_tensor(x, "softmax")
    if x._data.dtype.kind != "f":
        raise NotImplementedError(
            f"{'log_' if log else ''}softmax is not implemented for {x._data.dtype} tensors; "
            f"call .float() first")
    x = _float(x)
    a = x._data
    d = _dim(dim, a.ndim)
    if a.ndim == 0:
        out = np.zeros_like(a) if log else np.ones_like(a)
    else:
        m = np.max(a, axis=d, keepdims=True)
        z = a - m
        if log:
            out = z - np.log(np.sum(np.exp(z), axis=d, keepdims=True))
        else:
            e = np.exp(z)
            out = e / np.sum(e, axis=d, keepdims=True)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    D = a.shape[d] if a.ndim else 1
    inner = 1
    for s in a.shape[d + 1:]:
        inner *= s
    return _record(K.LOGSOFTMAX if log else K.SOFTMAX,
                   _N["log_softmax" if log else "softmax"], out, x, p0=D, p1=inner)


def _reduced(elem, reduction):
    """(value, reduce flag, scale) of an elementwise loss under `reduction`."""
    if reduction == "none":
        return elem, 0, 1.0
    total = np.add.reduce(elem, axis=None)        # cheaper than .mean() on small arrays
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(total / elem.size, elem.dtype), 1, 1.0 / _max(elem.size, 1)
    return np.asarray(total, elem.dtype), 1, 1.0


def bce_with_logits(z, y, pos_weight, reduction):
    """Unweighted, numerically stable BCE on logits: reduction 'none', 'mean' or 'sum'."""
    zs, ys = z._data, y._data
    sp = np.logaddexp(0, -zs)           # log(1 + exp(-z))
    if pos_weight is None:
        lw = 1.0
    else:
        lw = 1.0 + (pos_weight._data - 1.0) * ys
    elem = ((1.0 - ys) * zs + lw * sp).astype(zs.dtype, copy=False)
    out, reduce, scale = _reduced(elem, reduction)
    if not _recording(z, y, pos_weight):
        return _plain(out)
    return _record(K.BCEWL, _N["bcewl"], out, z, y, pos_weight, p1=reduce, f0=scale)


def bce(x, y, reduction):
    """Binary cross entropy on probabilities, logs clamped at -100 (PyTorch's rule)."""
    xs, ys = x._data, y._data
    with np.errstate(divide="ignore"):
        elem = -(ys * np.maximum(np.log(xs), -100) + (1 - ys) * np.maximum(np.log1p(-xs), -100))
    out, reduce, scale = _reduced(elem.astype(xs.dtype, copy=False), reduction)
    if not _recording(x, y):
        return _plain(out)
    return _record(K.BCE, _N["bce"], out, x, y, None, 0, reduce, scale)


def nll(x, target, weight, reduction, ignore_index):
    """nll_loss on log-probabilities x of shape (N, C) or (C,), class indices target."""
    a = x._data
    tshape = target._data.shape
    tgt = target._data.astype(np.int64).reshape(-1)
    if a.ndim == 1:
        N, Cn, inner = 1, a.shape[0], 1
    elif a.ndim >= 2:
        N, Cn = a.shape[0], a.shape[1]
        inner = int(np.prod(a.shape[2:], dtype=np.int64))
        if tuple(tshape) != (a.shape[0],) + tuple(a.shape[2:]):
            if a.ndim == 2:
                raise ValueError(f"Expected input batch_size ({N}) to match target batch_size "
                                 f"({tshape[0] if len(tshape) else 1}).")
            raise RuntimeError(f"nll_loss: input of shape {tuple(a.shape)} needs a target of "
                               f"shape {(a.shape[0],) + tuple(a.shape[2:])}, got {tuple(tshape)}")
    else:
        raise RuntimeError("nll_loss: input must have at least 1 dimension (C,) or (N, C, ...)")
    M = N * inner          # one picked element per (sample, position)
    if tgt.shape[0] != M:
        raise ValueError(f"Expected input batch_size ({N}) to match target batch_size "
                         f"({tgt.shape[0]}).")
    valid = tgt != ignore_index
    bad = valid & ((tgt < 0) | (tgt >= Cn))
    if bad.any():
        raise IndexError(f"Target {int(tgt[bad][0])} is out of bounds for {Cn} classes")
    safe = np.where(valid, tgt, 0)
    w = np.ones(M, a.dtype) if weight is None else weight._data[safe].astype(a.dtype)
    w = np.where(valid, w, 0).astype(a.dtype)
    pos = np.arange(M)
    flat = (pos // inner) * (Cn * inner) + safe * inner + pos % inner
    picked = a.reshape(-1)[flat]
    if reduction == "none":
        coef = w
        out = (-coef * picked).reshape(tshape if a.ndim >= 2 else ())
        reduced = 0.0
    else:
        denom = w.sum() if reduction == "mean" else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.asarray(-(w * picked).sum() / denom, a.dtype)   # nan when all ignored
        coef = (w / denom).astype(a.dtype) if denom != 0 else np.zeros_like(w)
        reduced = 1.0
    out = np.asarray(out, a.dtype)
    if not (x._rg and grad_enabled()):
        return _plain(out)
    tp = _tape()
    sa = _slot(tp, x)
    cz = _plain(np.ascontiguousarray(coef, a.dtype))
    sb = _slot(tp, cz)
    tp.save(sb, cz._data)
    io = tp.store_index(flat.astype(np.int64))
    fn = _N["nll"]
    word = K.NLL | (out.dtype == float64) * DT_BIT | RG_BIT | fn << NAME_SHIFT
    gid = tp.append(word, sa, sb, -1, io, M, out, False, reduced)
    return _graph(out, tp, gid, fn)




# ---- in-place ops ---------------------------------------------------------------------------------------
def _mark_modified(t, count=None, resave=True):
    """t's storage changed: every tape slot holding its value is now out of date for the
    records made before `count` (default: all so far); later records see the new value."""
    t._version += 1
    links = []
    if t._tape is not None:
        links.append((t._tape, t._gid))
    if t._snap is not None:
        links.append((t._snaptape, t._snap))
    if t._alias is not None:
        links.append(t._alias)
    for tp, gid in links:
        loc = tp.local(gid)
        if loc >= 0:
            tp.dirty[gid] = (tp.n if count is None else count, t._version)
            if resave:
                tp.resave(loc, t._data)
    if t._base is not None:
        _mark_modified(t._base)


def _inplace(t, outofplace, numpy_inplace=None):
    """Run an in-place op: numpy in place when nothing is recorded, otherwise record the
    out-of-place result and rebase t's history onto it (as PyTorch does)."""
    on = grad_enabled()
    if on and t._tape is None and t._rg:
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation. "
            "Update parameters inside `with tapegrad.no_grad():` (as optimizers do), or "
            "work on a clone().")
    if not on or (not t._rg and numpy_inplace is not None):
        if numpy_inplace is not None:
            try:
                numpy_inplace(t._data)
            except TypeError as e:   # numpy's casting error (e.g. float into an int tensor)
                raise RuntimeError(f"in-place op: the result can't be stored in a tensor of "
                                   f"dtype {t._data.dtype} ({e})") from None
            except ValueError as e:  # read-only memory, or an operand too big to fit
                raise _inplace_error(t, e) from None
            _mark_modified(t)
            return t
    res = outofplace(t)
    if res._data.dtype != t._data.dtype and not np.can_cast(res._data.dtype, t._data.dtype,
                                                         "same_kind"):
        raise RuntimeError(f"result type {res._data.dtype} can't be cast to the desired output "
                           f"type {t._data.dtype}")
    if res._data.shape != t._data.shape or not t._data.flags.writeable:
        raise _inplace_error(t, None, res._data.shape)
    if res._tape is None:
        np.copyto(t._data, res._data, casting="unsafe")
        _mark_modified(t)
        return t
    if t._base is not None:
        raise RuntimeError(
            "in-place operations on a view of a tensor that requires grad are not supported; "
            "compute the new value out of place (for example with tapegrad.where or cat)")
    tp = res._tape
    loc = tp.local(res._gid)
    _mark_modified(t, count=loc, resave=False)
    np.copyto(t._data, res._data, casting="unsafe")
    old = (t._tape, t._gid)
    t._tape, t._gid, t._fn, t._rg, t._snap = tp, res._gid, res._fn, True, None
    tp.hold(loc)
    if old[0] is not None:
        old[0].release(old[1])
    return t


def _inplace_error(t, err, shape=None):
    if not t._data.flags.writeable:
        return RuntimeError("in-place op on a tensor whose memory is read-only (from_numpy of "
                            "a read-only array); write to a copy: t = t.clone()")
    if shape is None:
        return RuntimeError(f"in-place op on a tensor of shape {list(t._data.shape)}: {err}")
    return RuntimeError(f"output with shape {list(t._data.shape)} doesn't match the broadcast "
                        f"shape {list(shape)}")


def _other_data(o):
    return o._data if isinstance(o, Tensor) else o


def _check_other(sym, t, other):
    if not isinstance(other, (Tensor, np.ndarray, _REAL)):
        raise _bad_operand(sym, t, other, other)


def add_(t, other, alpha=1):
    _check_other("+=", t, other)

    def np_add(a):
        o = _other_data(other)
        a += o if alpha == 1 else alpha * np.asarray(o)
    return _inplace(t, lambda x: add(x, other, alpha=alpha),
                    None if _needs_grad(other) else np_add)


def sub_(t, other, alpha=1):
    _check_other("-=", t, other)

    def np_sub(a):
        o = _other_data(other)
        a -= o if alpha == 1 else alpha * np.asarray(o)
    return _inplace(t, lambda x: sub(x, other, alpha=alpha),
                    None if _needs_grad(other) else np_sub)


def mul_(t, other):
    _check_other("*=", t, other)

    def np_mul(a):
        a *= _other_data(other)
    return _inplace(t, lambda x: mul(x, other), None if _needs_grad(other) else np_mul)


def div_(t, other):
    _check_other("/=", t, other)

    def np_div(a):
        a /= _other_data(other)
    return _inplace(t, lambda x: div(x, other), None if _needs_grad(other) else np_div)


def clamp_(t, min=None, max=None):  # noqa: A002
    return _inplace(t, lambda x: clamp(x, min, max),
                    lambda a: np.clip(a, min, max, out=a))


_FILL = _name("FillBackward2")        # PyTorch's names: a number, a 0-d tensor
_FILLT = _name("FillBackward3")
_ZERO = _name("ZeroBackward0")
_COPY = _name("CopyBackwards")


def _overwrite(x, v, fn):
    """out = v broadcast to x's shape and dtype, recorded as where(False, x, v): the value is
    v exactly (x * 0 + v would turn inf and nan in x into nan), x gets a zero gradient and
    v the (summed) incoming one, as PyTorch's fill_/zero_/copy_ do."""
    v = to_dtype(v, x._data.dtype)
    shp = x._data.shape
    try:
        out = np.array(np.broadcast_to(v._data, shp))
    except ValueError:
        raise _broadcast_error(shp, v._data.shape) from None
    if not _recording(x, v):
        return _plain(out)
    c = _plain(np.zeros((), out.dtype))
    return _record(K.WHERE, fn, out, x, v, c, (v._data.shape != shp) << 1 | (shp != ()) << 2)


def zero_(t):
    return _fill(t, 0, _ZERO)


def fill_(t, value):
    return _fill(t, value, _FILLT if isinstance(value, Tensor) else _FILL)


def _fill(t, value, fn):
    if isinstance(value, Tensor):
        if value._data.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value._data.ndim} dimensions.")
        vt = value
    elif isinstance(value, _REAL):
        vt = _plain(np.asarray(value))
    else:
        raise TypeError(f"fill_(): argument 'value' must be a number or a 0-d Tensor, not "
                        f"{type(value).__name__}")
    v = vt._data
    return _inplace(t, lambda x: _overwrite(x, vt, fn),
                    None if _needs_grad(value) else (lambda a: a.fill(v)))


def copy_(t, src):
    if not isinstance(src, (Tensor, np.ndarray)):
        raise TypeError(f"copy_(): argument 'src' must be Tensor, not {type(src).__name__}")
    s = _t(src)

    def np_copy(a):
        try:
            np.copyto(a, s._data, casting="unsafe")
        except ValueError:
            if not a.flags.writeable:
                raise
            raise _broadcast_error(a.shape, s._data.shape) from None
    return _inplace(t, lambda x: _overwrite(x, s, _COPY), None if _needs_grad(s) else np_copy)


def _needs_grad(o):
    return isinstance(o, Tensor) and o._rg and grad_enabled()


def setitem(t, key, value):
    key = _index_key(key)
    v = _t(value)
    if not ((t._rg or v._rg) and grad_enabled()):
        if t._tape is None and t._rg and grad_enabled():
            raise RuntimeError("a leaf Variable that requires grad is being used in an "
                               "in-place operation (item assignment); do it under no_grad()")
        t._data[key] = v._data
        _mark_modified(t)
        return

    def place(x):
        # out = where(mask, v spread over the indexed positions, x): two records, exact VJP
        mask = np.zeros(x._data.shape, bool)
        mask[key] = True
        region_shape = x._data[key].shape
        vv = to_dtype(v, x._data.dtype) if v._data.dtype != x._data.dtype else v
        try:
            vidx = np.broadcast_to(np.arange(vv._data.size).reshape(vv._data.shape), region_shape)
        except ValueError:
            raise RuntimeError(f"shape mismatch: value tensor of shape {tuple(v.shape)} cannot "
                               f"be broadcast to indexing result of shape {region_shape}") from None
        full = np.zeros(x._data.shape, np.int64)
        full[key] = vidx
        spread_vals = vv._data.reshape(-1)[full]
        spread = _gather(vv, spread_vals, full, _N["index"]) if _recording(vv) else _plain(spread_vals)
        return where(_plain(mask), spread, x)
    _inplace(t, place)


# ---- Tensor methods: bound here so that tensor.py never imports this module ----------------------------
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
        square=square, lerp=lerp, **{name: globals()[name] for name in REGISTRY_OPS},
        __mod__=remainder, __rmod__=rev(remainder),  # noqa: F821 - made from rules.py
    )
    for k, v in methods.items():
        setattr(Tensor, k, v)
    Tensor.T = property(T_)
    Tensor.mT = property(lambda s: transpose(s, -2, -1))

    def to(self, *args, **kwargs):
        dtype = kwargs.get("dtype")
        for a in args:
            if isinstance(a, (np.dtype, type)) or (isinstance(a, str) and a not in ("cpu",)):
                dtype = a
            elif isinstance(a, Tensor):
                dtype = a.dtype
        return self if dtype is None else to_dtype(self, dtype)
    Tensor.to = to
    Tensor.type_as = lambda s, o: to_dtype(s, o.dtype)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Compute the gradient of this tensor with respect to the graph's leaves.

        The result is accumulated (added) into each leaf's ``.grad``. A non-scalar tensor
        needs ``gradient``, a tensor of its shape: backward then computes the
        vector-Jacobian product. The graph is freed afterwards unless ``retain_graph``.
        """
        from . import autograd
        if gradient is not None and not isinstance(gradient, Tensor):
            raise TypeError(f"gradients can be either Tensors or None, but got "
                            f"{type(gradient).__name__}")
        if create_graph:
            raise NotImplementedError("create_graph=True is not supported yet")
        autograd.backward([self], None if gradient is None else [gradient],
                          retain_graph=retain_graph, inputs=inputs)
    Tensor.backward = backward


_bind()
