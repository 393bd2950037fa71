"""Result tensors and their records: what every op calls once it has computed its value.

``_plain`` makes a tensor outside any graph, ``_graph`` one whose value is a record on a
tape. ``_record``/``_record1`` append the record of an op's output and return the result
tensor: ``_slot`` finds each input's record on this thread's tape (adding an INPUT record
for a tensor seen for the first time), and the values the op's VJP reads are saved. ``_N``
holds the grad_fn names records carry. Every recorded op runs this code: it is the eager
hot path.
"""
from .. import kernels as K
from ..kernels import DT_BIT, NAME_SHIFT, RG_BIT
from .. import tape as T
from ..tensor import Tensor, float64, grad_enabled

_name = T.name_id
_READS = K.reads_table().tolist()


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


# grad_fn names by op (registry.py adds the names of the ops declared in rules.py)
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
    ctx = getattr(t, "_ctx", None)
    if ctx is not None:          # a custom Function's output keeps its grad_fn
        ctx._gids.add(t._gid)
    return tp.n - 1


def _record(op, fn, out, x, y=None, z=None, p0=0, p1=0, f0=0.0, f1=0.0, reads=None):
    """Append the record for out = op(x, y, z) and return the result tensor. The values
    saved are what the op's VJP reads (`reads`, default: everything it may read)."""
    tp = _tls.tape
    if tp.n >= tp.limit:
        tp.collect()
    g = x._gid
    a = g - tp.g0 + tp.k if (x._tape is tp and g >= tp.g0) else _slot(tp, x)
    b = -1 if y is None else _slot(tp, y)
    c = -1 if z is None else _slot(tp, z)
    if reads is None:
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
