"""Every differentiable op through the one gradient checker (tests/helpers.gradcheck).

The table CASES holds one row per (op, shapes): a function ``fn(T, *xs)`` written against
the PyTorch API, so that T may be ``tapegrad`` or ``torch`` (test_torch_parity.py runs the
same rows in both), and the float64 inputs it differentiates. Constants an op needs
(targets, conditions, indices) are numpy arrays closed over by ``fn`` and turned into
tensors with ``T.tensor`` inside it. Inputs are drawn from one seeded generator and kept
away from kinks (abs/relu at 0, clamp bounds, ties in max/min/maximum/minimum).

After the table come a few cases worked out by hand, with the expected gradients written
as literal numbers.
"""
from dataclasses import dataclass, field

import numpy as np
import pytest

import tapegrad as tg
from helpers import gradcheck

_rng = np.random.default_rng(20240601)


# ---- input makers ---------------------------------------------------------------------------
def rnd(*shape):
    """Standard normal values."""
    return _rng.standard_normal(shape)


def pos(*shape, lo=0.5, hi=2.0):
    """Positive values (log, sqrt, pow bases)."""
    return _rng.uniform(lo, hi, shape)


def away(*shape, points=(0.0,), margin=0.2, lo=-2.0, hi=2.0):
    """Uniform values at least `margin` from every kink in `points`."""
    a = _rng.uniform(lo, hi, shape)
    while True:
        bad = np.zeros(a.shape, bool)
        for p in points:
            bad |= np.abs(a - p) < margin
        if not bad.any():
            return a
        a = np.where(bad, _rng.uniform(lo, hi, shape), a)


def distinct(*shape, gap=0.3):
    """Values that differ pairwise by at least `gap` (no ties for max/min)."""
    n = int(np.prod(shape, dtype=np.int64))
    v = (_rng.permutation(n) - n / 2) * gap + _rng.uniform(0, gap / 10, n)
    return v.reshape(shape)


def apart(sx, sy, gap=0.2):
    """Two arrays of shapes sx, sy whose broadcast values never come within `gap`."""
    while True:
        x, y = rnd(*sx), rnd(*sy)
        if np.all(np.abs(np.subtract(x, y)) >= gap):
            return x, y


def probs(*shape):
    """Probabilities in (0.05, 0.95)."""
    return _rng.uniform(0.05, 0.95, shape)


@dataclass
class Case:
    id: str
    fn: object                 # fn(T, *xs) -> tensor, T = tapegrad or torch
    inputs: list               # float64 arrays, differentiated
    f32: bool = True           # also meaningful in float32 (no float64 constants inside)
    marks: list = field(default_factory=list)
    torch: bool = True         # torch can run it too (False: tapegrad differentiates more)


CASES = []


def case(id, fn, *inputs, f32=True, marks=(), torch=True):
    CASES.append(Case(id, fn, [np.asarray(a, np.float64) for a in inputs], f32, list(marks),
                      torch))


def F(T):
    return T.nn.functional


def _shape_id(*shapes):
    return "x".join("(" + ",".join(map(str, s)) + ")" for s in shapes)


# ---- arithmetic, tensor with tensor (same shape, broadcasting, 0-d) ---------------------------
_PAIRS = [((), ()), ((4,), (4,)), ((2, 3), (2, 3)), ((2, 3, 2), (2, 3, 2)), ((3, 1), (1, 4)),
          ((2, 3, 4), (4,)), ((), (3,)), ((3,), ()), ((2, 1, 3), (4, 1)), ((1,), (2, 3))]
for sx, sy in _PAIRS:
    sid = _shape_id(sx, sy)
    case(f"add-{sid}", lambda T, x, y: x + y, rnd(*sx), rnd(*sy))
    case(f"sub-{sid}", lambda T, x, y: x - y, rnd(*sx), rnd(*sy))
    case(f"mul-{sid}", lambda T, x, y: x * y, rnd(*sx), rnd(*sy))
    case(f"div-{sid}", lambda T, x, y: x / y, rnd(*sx), away(*sy, margin=0.5))
case("add-fn-alpha-(3)x(3)", lambda T, x, y: T.add(x, y, alpha=2), rnd(3), rnd(3))
case("sub-fn-alpha-(2,3)x(3)", lambda T, x, y: T.sub(x, y, alpha=0.5), rnd(2, 3), rnd(3))
case("mul-fn-(2,3)x(2,1)", lambda T, x, y: T.mul(x, y), rnd(2, 3), rnd(2, 1))
case("div-fn-(3)x(2,3)", lambda T, x, y: T.div(x, y), rnd(3), away(2, 3, margin=0.5))
case("mul-self-(4)", lambda T, x: x * x, rnd(4))
case("sub-self-(4)", lambda T, x: x - x * 2.0, rnd(4))

# ---- arithmetic with a Python scalar on either side, and unary minus ---------------------------
_SCALAR_OPS = [
    ("x+2", lambda T, x: x + 2), ("2+x", lambda T, x: 2 + x),
    ("x-2", lambda T, x: x - 2), ("2-x", lambda T, x: 2 - x),
    ("x*2", lambda T, x: x * 2), ("2*x", lambda T, x: 2 * x),
    ("x/2", lambda T, x: x / 2), ("2/x", lambda T, x: 2 / x),
    ("x+1.5", lambda T, x: x + 1.5), ("x*-0.5", lambda T, x: x * -0.5),
    ("neg", lambda T, x: -x), ("neg-fn", lambda T, x: T.neg(x)),
]
for name, fn in _SCALAR_OPS:
    for s in [(), (4,), (2, 3), (2, 3, 2)]:
        case(f"{name}-{_shape_id(s)}", fn, away(*s, margin=0.4))

# ---- powers ----------------------------------------------------------------------------------
for s in [(), (5,), (2, 3), (2, 2, 3)]:
    sid = _shape_id(s)
    case(f"pow2-{sid}", lambda T, x: x ** 2, rnd(*s))
    case(f"pow3-{sid}", lambda T, x: x ** 3, rnd(*s))
    case(f"pow0.5-{sid}", lambda T, x: x ** 0.5, pos(*s))
    case(f"pow-1.5-{sid}", lambda T, x: x ** -1.5, pos(*s))
    case(f"powfn2-{sid}", lambda T, x: T.pow(x, 2), rnd(*s))
    case(f"2**x-{sid}", lambda T, x: 2 ** x, rnd(*s))
    case(f"0.5**x-{sid}", lambda T, x: 0.5 ** x, rnd(*s))
for sx, sy in [((), ()), ((4,), (4,)), ((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), ()),
               ((), (3,)), ((2, 2, 3), (3,))]:
    sid = _shape_id(sx, sy)
    case(f"pow-tt-{sid}", lambda T, x, y: x ** y, pos(*sx), rnd(*sy))
    case(f"powfn-tt-{sid}", lambda T, x, y: T.pow(x, y), pos(*sx), rnd(*sy))

# ---- unary elementwise -----------------------------------------------------------------------
_UNARY = [
    ("exp", lambda T, x: T.exp(x), rnd), ("exp-method", lambda T, x: x.exp(), rnd),
    ("log", lambda T, x: T.log(x), pos), ("log-method", lambda T, x: x.log(), pos),
    ("sqrt", lambda T, x: T.sqrt(x), pos), ("sqrt-method", lambda T, x: x.sqrt(), pos),
    ("abs", lambda T, x: T.abs(x), away), ("abs-method", lambda T, x: x.abs(), away),
    ("abs-builtin", lambda T, x: abs(x), away),
    ("sin", lambda T, x: T.sin(x), rnd), ("sin-method", lambda T, x: x.sin(), rnd),
    ("cos", lambda T, x: T.cos(x), rnd), ("cos-method", lambda T, x: x.cos(), rnd),
    ("tanh", lambda T, x: T.tanh(x), rnd), ("tanh-method", lambda T, x: x.tanh(), rnd),
    ("sigmoid", lambda T, x: T.sigmoid(x), rnd), ("sigmoid-method", lambda T, x: x.sigmoid(), rnd),
    ("relu", lambda T, x: T.relu(x), away), ("relu-method", lambda T, x: x.relu(), away),
    ("F.relu", lambda T, x: F(T).relu(x), away), ("F.sigmoid", lambda T, x: F(T).sigmoid(x), rnd),
    ("F.tanh", lambda T, x: F(T).tanh(x), rnd),
]
for name, fn, make in _UNARY:
    for s in [(), (5,), (2, 3), (2, 2, 3)]:
        case(f"{name}-{_shape_id(s)}", fn, make(*s))

# ---- clamp: min only, max only, both; values away from the bounds -----------------------------
for s in [(), (6,), (2, 3), (2, 2, 3)]:
    sid = _shape_id(s)
    case(f"clamp-min-{sid}", lambda T, x: T.clamp(x, min=-0.5), away(*s, points=(-0.5,)))
    case(f"clamp-max-{sid}", lambda T, x: T.clamp(x, max=0.5), away(*s, points=(0.5,)))
    case(f"clamp-both-{sid}", lambda T, x: T.clamp(x, -0.5, 0.5),
         away(*s, points=(-0.5, 0.5)))
    case(f"clamp-method-{sid}", lambda T, x: x.clamp(min=-0.5, max=0.5),
         away(*s, points=(-0.5, 0.5)))
case("clip-(2,3)", lambda T, x: T.clip(x, -0.5, 0.5), away(2, 3, points=(-0.5, 0.5)))

# ---- maximum / minimum (no ties), where (fixed condition, broadcasting) -------------------------
for sx, sy in [((), ()), ((5,), (5,)), ((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3, 2), (2,)),
               ((), (4,))]:
    sid = _shape_id(sx, sy)
    case(f"maximum-{sid}", lambda T, x, y: T.maximum(x, y), *apart(sx, sy))
    case(f"minimum-{sid}", lambda T, x, y: T.minimum(x, y), *apart(sx, sy))
case("max-two-tensors-(2,3)", lambda T, x, y: T.max(x, y), *apart((2, 3), (2, 3)))
case("min-two-tensors-(2,3)", lambda T, x, y: T.min(x, y), *apart((2, 3), (2, 3)))


def _where(cond):
    return lambda T, x, y: T.where(T.tensor(cond), x, y)


_C23 = np.array([[True, False, True], [False, False, True]])
case("where-(2,3)-(2,3)x(2,3)", _where(_C23), rnd(2, 3), rnd(2, 3))
case("where-(2,3)-(3)x(2,1)", _where(_C23), rnd(3), rnd(2, 1))
case("where-(2,3)-(2,3)x()", _where(_C23), rnd(2, 3), rnd())
case("where-(3,1)-(4)x(3,4)", _where(np.array([[True], [False], [True]])), rnd(4), rnd(3, 4))
case("where-()-(3)x(3)", _where(np.array(False)), rnd(3), rnd(3))
case("where-(2,2,3)-(2,3)x(3)", _where(_rng.random((2, 2, 3)) > 0.5), rnd(2, 3), rnd(3))
case("where-cmp-(2,3)", lambda T, x, y: T.where(x > y, x * y, y - x), *apart((2, 3), (2, 3)))

# ---- matmul: every combination PyTorch accepts --------------------------------------------------
_MATMUL = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 3)), ((2, 3), (3, 4)), ((2, 3, 4), (2, 4, 2)),
           ((2, 3, 4), (4, 2)), ((3, 4), (2, 4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)),
           ((2, 3, 4), (4,)), ((1, 3), (3, 1)), ((2, 1, 2, 3), (1, 3, 3, 2))]
for sx, sy in _MATMUL:
    sid = _shape_id(sx, sy)
    case(f"matmul-{sid}", lambda T, x, y: T.matmul(x, y), rnd(*sx), rnd(*sy))
    case(f"at-{sid}", lambda T, x, y: x @ y, rnd(*sx), rnd(*sy))
case("mm-(2,3)x(3,2)", lambda T, x, y: T.mm(x, y), rnd(2, 3), rnd(3, 2))
case("mm-method-(3,3)x(3,2)", lambda T, x, y: x.mm(y), rnd(3, 3), rnd(3, 2))
case("dot-(5)x(5)", lambda T, x, y: T.dot(x, y), rnd(5), rnd(5))
case("matmul-self-(3,3)", lambda T, x: x @ x, rnd(3, 3))
case("matmul-const-weight", lambda T, x: x @ T.tensor(np.arange(6.0).reshape(3, 2)),
     rnd(2, 3), f32=False)

# ---- data movement ------------------------------------------------------------------------------
case("t-(2,3)", lambda T, x: x.t(), rnd(2, 3))
case("t-fn-(3,2)", lambda T, x: T.t(x), rnd(3, 2))
case("t-(4)", lambda T, x: x.t() * 2.0, rnd(4))
case("t-()", lambda T, x: x.t() * 2.0, rnd())
case("T-(2,3)", lambda T, x: x.T, rnd(2, 3))
case("T-(4)", lambda T, x: x.T * 2.0, rnd(4))
case("mT-(2,3,4)", lambda T, x: x.mT, rnd(2, 3, 4))
case("transpose-(2,3)-0,1", lambda T, x: x.transpose(0, 1), rnd(2, 3))
case("transpose-(2,3,4)-0,2", lambda T, x: x.transpose(0, 2), rnd(2, 3, 4))
case("transpose-(2,3,4)--1,-2", lambda T, x: T.transpose(x, -1, -2), rnd(2, 3, 4))
case("transpose-(4)-0,-1", lambda T, x: x.transpose(0, -1), rnd(4))
case("transpose-(2,3)-1,1", lambda T, x: x.transpose(1, 1) * 2.0, rnd(2, 3))
case("permute-(2,3,4)-2,0,1", lambda T, x: x.permute(2, 0, 1), rnd(2, 3, 4))
case("permute-(2,3,4)-tuple", lambda T, x: x.permute((1, 2, 0)), rnd(2, 3, 4))
case("permute-fn-(2,3,4)-neg", lambda T, x: T.permute(x, (-1, 0, 1)), rnd(2, 3, 4))
case("permute-(3,2)", lambda T, x: x.permute(1, 0), rnd(3, 2))
case("permute-(4)", lambda T, x: x.permute(0), rnd(4))
case("permute-()", lambda T, x: x.permute(()), rnd())
case("reshape-(2,3,4)-(-1)", lambda T, x: x.reshape(-1), rnd(2, 3, 4))
case("reshape-(2,3,4)-(4,-1)", lambda T, x: x.reshape(4, -1), rnd(2, 3, 4))
case("reshape-(6)-(2,3)-tuple", lambda T, x: x.reshape((2, 3)), rnd(6))
case("reshape-fn-(2,3)-(3,1,2)", lambda T, x: T.reshape(x, (3, 1, 2)), rnd(2, 3))
case("reshape-()-(1,1)", lambda T, x: x.reshape(1, 1), rnd())
case("reshape-(1)-()", lambda T, x: x.reshape(()), rnd(1))
case("view-(2,3,4)-(6,-1)", lambda T, x: x.view(6, -1), rnd(2, 3, 4))
case("view-(4,3)-(2,2,3)", lambda T, x: x.view(2, 2, 3), rnd(4, 3))
case("flatten-(2,3,4)", lambda T, x: x.flatten(), rnd(2, 3, 4))
case("flatten-(2,3,4)-1", lambda T, x: T.flatten(x, 1), rnd(2, 3, 4))
case("flatten-(2,3,2,2)-1,2", lambda T, x: x.flatten(1, 2), rnd(2, 3, 2, 2))
case("flatten-()", lambda T, x: x.flatten(), rnd())
case("squeeze-(1,3,1,2)", lambda T, x: x.squeeze(), rnd(1, 3, 1, 2))
case("squeeze-(1,3,1,2)-2", lambda T, x: x.squeeze(2), rnd(1, 3, 1, 2))
case("squeeze-(1,3,1,2)--4", lambda T, x: T.squeeze(x, -4), rnd(1, 3, 1, 2))
case("squeeze-(2,3)-0-noop", lambda T, x: x.squeeze(0) * 2.0, rnd(2, 3))
case("squeeze-(1)", lambda T, x: x.squeeze(), rnd(1))
case("unsqueeze-(2,3)-0", lambda T, x: x.unsqueeze(0), rnd(2, 3))
case("unsqueeze-(2,3)-1", lambda T, x: T.unsqueeze(x, 1), rnd(2, 3))
case("unsqueeze-(2,3)--1", lambda T, x: x.unsqueeze(-1), rnd(2, 3))
case("unsqueeze-()-0", lambda T, x: x.unsqueeze(0), rnd())
case("expand-(3,1)-(3,4)", lambda T, x: x.expand(3, 4), rnd(3, 1))
case("expand-(3,1)-(2,3,4)", lambda T, x: x.expand(2, 3, 4), rnd(3, 1))
case("expand-(3,1)-(-1,4)", lambda T, x: x.expand(-1, 4), rnd(3, 1))
case("expand-()-(3)", lambda T, x: x.expand(3), rnd())
case("expand-(1,2)-tuple", lambda T, x: x.expand((3, 2)), rnd(1, 2))
case("clone-(2,3)", lambda T, x: x.clone(), rnd(2, 3))
case("clone-fn-()", lambda T, x: T.clone(x) * 3.0, rnd())
case("clone-then-mul-(4)", lambda T, x: x.clone() * x, rnd(4))

# ---- reductions ---------------------------------------------------------------------------------
_RED_ARGS = [("all", {}), ("dim0", dict(dim=0)), ("dim1", dict(dim=1)), ("dim-1", dict(dim=-1)),
             ("dims(0,2)", dict(dim=(0, 2))), ("dims(-1,0)", dict(dim=(-1, 0))),
             ("dim1-keep", dict(dim=1, keepdim=True)),
             ("dims(0,2)-keep", dict(dim=(0, 2), keepdim=True))]
for red in ("sum", "mean"):
    for name, kw in _RED_ARGS:
        case(f"{red}-(2,3,4)-{name}", lambda T, x, red=red, kw=kw: getattr(x, red)(**kw),
             rnd(2, 3, 4))
    case(f"{red}-()", lambda T, x, red=red: getattr(T, red)(x), rnd())
    case(f"{red}-()-dim0", lambda T, x, red=red: getattr(x, red)(dim=0), rnd())
    case(f"{red}-(5)", lambda T, x, red=red: getattr(T, red)(x), rnd(5))
    case(f"{red}-(5)-dim0-keep", lambda T, x, red=red: getattr(T, red)(x, 0, keepdim=True),
         rnd(5))
    case(f"{red}-(2,3)-dim1", lambda T, x, red=red: getattr(T, red)(x, 1), rnd(2, 3))
    case(f"{red}-(2,3)-all-keep", lambda T, x, red=red: getattr(x, red)(dim=(0, 1),
                                                                        keepdim=True), rnd(2, 3))
for red in ("max", "min"):
    case(f"{red}-()", lambda T, x, red=red: getattr(x, red)(), distinct())
    case(f"{red}-(5)", lambda T, x, red=red: getattr(T, red)(x), distinct(5))
    case(f"{red}-(2,3,4)", lambda T, x, red=red: getattr(x, red)(), distinct(2, 3, 4))
    case(f"{red}-(5)-dim0", lambda T, x, red=red: getattr(x, red)(dim=0)[0], distinct(5))
    case(f"{red}-()-dim0", lambda T, x, red=red: getattr(x, red)(dim=0)[0] * 2.0, distinct())
    case(f"{red}-(2,3)-dim1", lambda T, x, red=red: getattr(x, red)(dim=1).values, distinct(2, 3))
    case(f"{red}-(2,3,4)-dim0", lambda T, x, red=red: getattr(T, red)(x, 0)[0], distinct(2, 3, 4))
    case(f"{red}-(2,3,4)-dim-1-keep",
         lambda T, x, red=red: getattr(x, red)(dim=-1, keepdim=True)[0], distinct(2, 3, 4))
    case(f"{red}-(2,3,4)-dim1-keep-fn",
         lambda T, x, red=red: getattr(T, red)(x, 1, keepdim=True).values, distinct(2, 3, 4))

# ---- indexing and slicing -----------------------------------------------------------------------
_IDX = np.array([2, 0, 2])          # repeats: the VJP must add, not overwrite
_MASK = np.array([[True, False, True, True], [False, True, False, True],
                  [True, True, False, False]])
_INDEX = [
    ("int", lambda T, x: x[1], (3, 4)),
    ("neg-int", lambda T, x: x[-1], (3, 4)),
    ("int-int", lambda T, x: x[2, -3], (3, 4)),
    ("int-1d", lambda T, x: x[3], (5,)),
    ("slice", lambda T, x: x[1:3], (4, 3)),
    ("slice-step", lambda T, x: x[::2], (5, 2)),
    ("slice-step-neg-start", lambda T, x: x[-4::3], (6,)),
    ("slice-2d", lambda T, x: x[:, 1::2], (3, 4)),
    ("slice-2d-both", lambda T, x: x[1:, :-1], (3, 4)),
    ("slice-empty-end", lambda T, x: x[1:100], (3, 2)),
    ("none", lambda T, x: x[None], (2, 3)),
    ("none-mid", lambda T, x: x[:, None], (2, 3)),
    ("ellipsis", lambda T, x: x[..., 1], (2, 3, 4)),
    ("ellipsis-front", lambda T, x: x[1, ...], (2, 3, 4)),
    ("ellipsis-none", lambda T, x: x[..., None], (2, 3)),
    ("int-array", lambda T, x: x[T.tensor(_IDX)], (4, 2)),
    ("int-array-1d", lambda T, x: x[T.tensor(_IDX)], (4,)),
    ("list", lambda T, x: x[[0, 2, 2, 1]], (3, 2)),
    ("int-array-dim1", lambda T, x: x[:, T.tensor(_IDX)], (2, 4)),
    ("int-array-pair", lambda T, x: x[T.tensor([0, 2, 2]), T.tensor([1, 0, 1])], (3, 2)),
    ("int-array-2d", lambda T, x: x[T.tensor(np.array([[0, 1], [1, 1]]))], (2, 3)),
    ("bool-mask", lambda T, x: x[T.tensor(_MASK)], (3, 4)),
    ("bool-mask-rows", lambda T, x: x[T.tensor(np.array([True, False, True]))], (3, 4)),
    ("mixed-int-slice-none", lambda T, x: x[1, :, None], (3, 4)),
    ("mixed-list-slice", lambda T, x: x[[0, 2], 1:], (3, 4)),
    ("mixed-slice-int-ellipsis", lambda T, x: x[::2, ..., -1], (3, 2, 4)),
    ("scalar-of-0d-via-none", lambda T, x: x[None] * 2.0, ()),
    ("ellipsis-0d", lambda T, x: x[...] * 2.0, ()),
]
for name, fn, s in _INDEX:
    case(f"index-{name}-{_shape_id(s)}", fn, rnd(*s))

# ---- cat and stack ------------------------------------------------------------------------------
case("cat-dim0-3in", lambda T, a, b, c: T.cat([a, b, c]), rnd(1, 3), rnd(2, 3), rnd(3, 3))
case("cat-dim1-3in", lambda T, a, b, c: T.cat([a, b, c], dim=1), rnd(2, 1), rnd(2, 3), rnd(2, 2))
case("cat-dim-1-3d", lambda T, a, b, c: T.cat((a, b, c), -1), rnd(2, 2, 1), rnd(2, 2, 3),
     rnd(2, 2, 2))
case("cat-dim1-3d", lambda T, a, b, c: T.cat([a, b, c], 1), rnd(2, 1, 2), rnd(2, 2, 2),
     rnd(2, 3, 2))
case("cat-1d", lambda T, a, b, c: T.cat([a, b, c]), rnd(2), rnd(1), rnd(3))
case("cat-same-tensor-twice", lambda T, a, b: T.cat([a, b, a]), rnd(2), rnd(3))
case("stack-dim0-3in", lambda T, a, b, c: T.stack([a, b, c]), rnd(2, 3), rnd(2, 3), rnd(2, 3))
case("stack-dim1-3in", lambda T, a, b, c: T.stack([a, b, c], dim=1), rnd(2, 3), rnd(2, 3),
     rnd(2, 3))
case("stack-dim-1-3in", lambda T, a, b, c: T.stack((a, b, c), -1), rnd(2, 3), rnd(2, 3),
     rnd(2, 3))
case("stack-0d-3in", lambda T, a, b, c: T.stack([a, b, c]), rnd(), rnd(), rnd())
case("stack-1d-dim1", lambda T, a, b, c: T.stack([a, b, c], 1), rnd(4), rnd(4), rnd(4))

# ---- nn.functional: softmax, log_softmax, linear ------------------------------------------------
for fname in ("softmax", "log_softmax"):
    for s, dims in (((3, 4), (0, 1, -1)), ((2, 3, 4), (0, 1, -1))):
        for d in dims:
            case(f"{fname}-{_shape_id(s)}-dim{d}",
                 lambda T, x, fname=fname, d=d: getattr(F(T), fname)(x, dim=d), rnd(*s))
    case(f"{fname}-(5)-dim0", lambda T, x, fname=fname: getattr(F(T), fname)(x, dim=0), rnd(5))
    case(f"{fname}-()-dim0", lambda T, x, fname=fname: getattr(F(T), fname)(x, dim=0) + x, rnd())
    case(f"{fname}-method-(2,3)", lambda T, x, fname=fname: getattr(x, fname)(1), rnd(2, 3))
    case(f"{fname}-toplevel-(2,3)", lambda T, x, fname=fname: getattr(T, fname)(x, 0), rnd(2, 3))
case("softmax-(3,4)-large-logits", lambda T, x: F(T).softmax(x, dim=1), 30 + rnd(3, 4))
case("log_softmax-(3,4)-large-logits", lambda T, x: F(T).log_softmax(x, dim=1), 30 + rnd(3, 4))

case("linear-(4,3)-bias", lambda T, x, w, b: F(T).linear(x, w, b), rnd(4, 3), rnd(2, 3), rnd(2))
case("linear-(4,3)-nobias", lambda T, x, w: F(T).linear(x, w), rnd(4, 3), rnd(2, 3))
case("linear-(3)-bias", lambda T, x, w, b: F(T).linear(x, w, b), rnd(3), rnd(2, 3), rnd(2))
case("linear-(2,2,3)-bias", lambda T, x, w, b: F(T).linear(x, w, b), rnd(2, 2, 3), rnd(2, 3),
     rnd(2))

# ---- nn.functional: losses ----------------------------------------------------------------------
_Y43 = (_rng.random((4, 3)) > 0.5).astype(np.float64)
_YSOFT = _rng.uniform(0, 1, (4, 3))
_W43 = _rng.uniform(0.5, 2, (4, 3))
_W3 = _rng.uniform(0.5, 2, 3)
_PW3 = np.array([0.5, 2.0, 3.0])


def _bcewl(y, **kw):
    def fn(T, z):
        kw2 = {k: T.tensor(v) for k, v in kw.items() if k != "reduction"}
        return F(T).binary_cross_entropy_with_logits(z, T.tensor(y), reduction=kw.get(
            "reduction", "mean"), **kw2)
    return fn


for red in ("none", "mean", "sum"):
    case(f"bcewl-{red}", _bcewl(_Y43, reduction=red), rnd(4, 3) * 2, f32=False)
    case(f"bcewl-{red}-soft-target", _bcewl(_YSOFT, reduction=red), rnd(4, 3) * 2, f32=False)
    case(f"bcewl-{red}-weight", _bcewl(_Y43, reduction=red, weight=_W43), rnd(4, 3), f32=False)
    case(f"bcewl-{red}-pos_weight", _bcewl(_Y43, reduction=red, pos_weight=_PW3), rnd(4, 3),
         f32=False)
    case(f"bcewl-{red}-weight-bcast-pos_weight",
         _bcewl(_YSOFT, reduction=red, weight=_W3, pos_weight=_PW3), rnd(4, 3), f32=False)
case("bcewl-0d", _bcewl(np.array(1.0)), rnd(), f32=False)
case("bcewl-(5)", _bcewl(np.array([0.0, 1.0, 1.0, 0.0, 0.3])), rnd(5), f32=False)
case("bcewl-large-logits", _bcewl(_Y43, reduction="sum"), 30 * away(4, 3, margin=0.3), f32=False)
case("bcewl-wrt-target", lambda T, z, y: F(T).binary_cross_entropy_with_logits(z, y),
     rnd(4, 3), probs(4, 3))
case("bcewl-wrt-target-pos_weight", lambda T, z, y, p: F(T).binary_cross_entropy_with_logits(
    z, y, pos_weight=p, reduction="sum"), rnd(2, 3), probs(2, 3), pos(3),
     torch=False)   # torch refuses requires_grad on pos_weight


def _bce(y, **kw):
    def fn(T, x):
        kw2 = {k: T.tensor(v) for k, v in kw.items() if k != "reduction"}
        return F(T).binary_cross_entropy(x, T.tensor(y), reduction=kw.get("reduction", "mean"),
                                         **kw2)
    return fn


for red in ("none", "mean", "sum"):
    case(f"bce-{red}", _bce(_Y43, reduction=red), probs(4, 3), f32=False)
    case(f"bce-{red}-soft-target", _bce(_YSOFT, reduction=red), probs(4, 3), f32=False)
    case(f"bce-{red}-weight", _bce(_Y43, reduction=red, weight=_W43), probs(4, 3), f32=False)
case("bce-0d", _bce(np.array(0.0)), probs(), f32=False)
case("bce-wrt-target", lambda T, x, y: F(T).binary_cross_entropy(x, y), probs(4, 3), probs(4, 3))
case("bce-wrt-target-none-(5)", lambda T, x, y: F(T).binary_cross_entropy(x, y, reduction="none"),
     probs(5), probs(5))
case("bce-(5)", _bce(np.array([0.0, 1.0, 1.0, 0.0, 0.3])), probs(5), f32=False)

for red in ("none", "mean", "sum"):
    for s in [(), (5,), (2, 3), (2, 2, 3)]:
        case(f"mse-{red}-{_shape_id(s)}",
             lambda T, x, y, red=red: F(T).mse_loss(x, y, reduction=red), rnd(*s), rnd(*s))
case("mse-default-const-target", lambda T, x: F(T).mse_loss(x, T.tensor(_YSOFT)), rnd(4, 3),
     f32=False)

_T4 = np.array([2, 0, 4, 2])
_T4_IGN = np.array([2, -100, 4, 2])
_T4_IGN1 = np.array([1, 3, 1, 0])
_W5 = np.array([0.5, 1.0, 2.0, 1.5, 3.0])


def _cls(loss, target, **kw):
    def fn(T, x):
        kw2 = dict(kw)
        if "weight" in kw2:
            kw2["weight"] = T.tensor(kw2["weight"])
        return getattr(F(T), loss)(x, T.tensor(target), **kw2)
    return fn


for loss in ("cross_entropy", "nll_loss"):
    for red in ("none", "mean", "sum"):
        case(f"{loss}-{red}", _cls(loss, _T4, reduction=red), rnd(4, 5))
        case(f"{loss}-{red}-weight", _cls(loss, _T4, reduction=red, weight=_W5), rnd(4, 5),
             f32=False)
        case(f"{loss}-{red}-ignore-default", _cls(loss, _T4_IGN, reduction=red), rnd(4, 5))
        case(f"{loss}-{red}-ignore_index1", _cls(loss, _T4_IGN1, reduction=red, ignore_index=1),
             rnd(4, 5))
        case(f"{loss}-{red}-weight-ignore", _cls(loss, _T4_IGN1, reduction=red, weight=_W5,
                                                 ignore_index=1), rnd(4, 5), f32=False)
    case(f"{loss}-1d-input", _cls(loss, np.array(3)), rnd(5))
    case(f"{loss}-1d-input-weight", _cls(loss, np.array(1), weight=_W5), rnd(5), f32=False)
    case(f"{loss}-N1", _cls(loss, np.array([0])), rnd(1, 3))
# (N, C, d) inputs with (N, d) targets: PyTorch's K-dimensional form
case("cross_entropy-(2,3,2)", _cls("cross_entropy", np.array([[0, 2], [1, 1]])), rnd(2, 3, 2))
case("nll_loss-(2,3,2)-sum", _cls("nll_loss", np.array([[0, 2], [1, 1]]), reduction="sum"),
     rnd(2, 3, 2))
case("cross_entropy-(2,3,2,2)-weight-ignore",
     _cls("cross_entropy", np.array([[[0, 2], [1, -100]], [[2, 2], [0, 1]]]), weight=_W5[:3]),
     rnd(2, 3, 2, 2), f32=False)
case("nll_loss-(2,3,2)-none", _cls("nll_loss", np.array([[0, 2], [1, 1]]), reduction="none"),
     rnd(2, 3, 2))
case("cross_entropy-large-logits", _cls("cross_entropy", _T4), 40 * rnd(4, 5))
case("nll_loss-of-log_softmax", lambda T, x: F(T).nll_loss(F(T).log_softmax(x, dim=1),
                                                          T.tensor(_T4)), rnd(4, 5))

# ---- a few compositions -------------------------------------------------------------------------
case("mlp", lambda T, x, w1, w2: (T.tanh(x @ w1) @ w2).sigmoid().sum(1),
     rnd(3, 4), rnd(4, 2) * 0.5, rnd(2, 2))
case("logsumexp-by-hand", lambda T, x: T.log(T.exp(x).sum(dim=-1)), rnd(2, 3))
case("reuse-leaf", lambda T, x, y: x * y + x.exp() * y.sin() - x / (1 + y * y), rnd(2, 3),
     rnd(3))


# ---- the elementwise ops declared in tapegrad/rules.py: one row each (at the end of the
# table, so that earlier rows keep their inputs from the seeded generator) ------------------------
def _uniform(lo, hi):
    return lambda *s: _rng.uniform(lo, hi, s)


_INTEGERS = (-2.0, -1.0, 0.0, 1.0, 2.0)
REGISTRY_ROWS = {       # the op's name -> inputs in its domain, away from its kinks
    "log1p": _uniform(-0.5, 2.0), "expm1": rnd, "log2": pos, "log10": pos, "exp2": rnd,
    "tan": _uniform(-1.0, 1.0), "asin": _uniform(-0.8, 0.8), "acos": _uniform(-0.8, 0.8),
    "atan": rnd, "sinh": rnd, "cosh": rnd, "asinh": rnd, "acosh": _uniform(1.3, 3.0),
    "atanh": _uniform(-0.8, 0.8), "erf": rnd, "erfc": rnd, "rsqrt": pos, "reciprocal": pos,
    "sign": lambda *s: away(*s), "floor": lambda *s: away(*s, points=_INTEGERS, margin=0.15),
    "ceil": lambda *s: away(*s, points=_INTEGERS, margin=0.15),
    "trunc": lambda *s: away(*s, points=_INTEGERS, margin=0.15),
    "round": lambda *s: away(*s, points=(-1.5, -0.5, 0.5, 1.5), margin=0.15),
}
for _op, _make in REGISTRY_ROWS.items():
    for s in [(), (5,), (2, 3)]:
        case(f"{_op}-{_shape_id(s)}", lambda T, x, op=_op: getattr(T, op)(x), _make(*s))
    case(f"{_op}-method-(2,2,3)", lambda T, x, op=_op: getattr(x, op)(), _make(2, 2, 3))
for s in [(), (4,), (2, 3)]:
    case(f"square-{_shape_id(s)}", lambda T, x: T.square(x), rnd(*s))
case("square-method-(2,3)", lambda T, x: x.square(), rnd(2, 3))


def _quotient_away(sx, sy, lo=0.5, hi=2.0):
    """x, y with y of either sign, |y| in [lo, hi], and x / y at least 0.1 from an integer
    (fmod and remainder jump there)."""
    while True:
        x, y = rnd(*sx) * 2, _rng.uniform(lo, hi, sy) * _rng.choice([-1, 1], sy)
        q = np.asarray(x / y)
        if np.all(np.abs(q - np.round(q)) > 0.1):
            return x, y


REGISTRY_BINARY = {
    "atan2": lambda sx, sy: (rnd(*sx), away(*sy, margin=0.3)),
    "hypot": lambda sx, sy: (away(*sx, margin=0.3), away(*sy, margin=0.3)),
    "fmod": _quotient_away, "remainder": _quotient_away,
    "logaddexp": lambda sx, sy: (rnd(*sx), rnd(*sy)),
}
for _op, _make in REGISTRY_BINARY.items():
    for sx, sy in [((), ()), ((5,), (5,)), ((2, 3), (3,)), ((3, 1), (1, 2))]:
        case(f"{_op}-{_shape_id(sx, sy)}", lambda T, x, y, op=_op: getattr(T, op)(x, y),
             *_make(sx, sy))
    case(f"{_op}-method-(2,3)", lambda T, x, y, op=_op: getattr(x, op)(y), *_make((2, 3), (2, 3)))
case("x%y-(4)x(4)", lambda T, x, y: x % y, *_quotient_away((4,), (4,)))
case("x%1.5-(2,3)", lambda T, x: x % 1.5, _uniform(0.2, 1.3)(2, 3))   # x / 1.5 in (0.13, 0.87)
case("lerp-scalar-(2,3)", lambda T, x, y: T.lerp(x, y, 0.3), rnd(2, 3), rnd(2, 3))
case("lerp-tensor-(2,3)x(3)", lambda T, x, y, w: T.lerp(x, y, w), rnd(2, 3), rnd(2, 3), rnd(3))
case("lerp-method-(4)", lambda T, x, y: x.lerp(y, 0.75), rnd(4), rnd(4))


# ---- the table, driven through the one checker --------------------------------------------------
def params(cases):
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


# Rows declared in other files join the table here, before the tests below (and the other
# test files) take it. pytest collects test_*.py files only, so each file's own tests come
# in through its __all__.
from table_nn import *          # noqa: E402,F401,F403 - nn.functional's activations
from table_composite import *   # noqa: E402,F401,F403 - composite.py's reductions, indexing
from table_tensor_api import *  # noqa: E402,F401,F403 - selection, shapes, arithmetic, in-place
from table_linalg import *      # noqa: E402,F401,F403 - tapegrad.linalg


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_inputs_are_small():
    # keeps the finite-difference loops fast; the broadcast-batch matmul is the largest row
    assert max(sum(a.size for a in c.inputs) for c in CASES) <= 64


@pytest.mark.parametrize("c", params(CASES))
def test_gradcheck(c):
    grads = gradcheck(lambda *xs: c.fn(tg, *xs), c.inputs)
    assert len(grads) == len(c.inputs)
    for g, a in zip(grads, c.inputs):
        assert g.shape == a.shape and g.dtype == np.float64


@pytest.mark.parametrize("c", params(CASES))
def test_float64_in_float64_out(c):
    """Float64 leaves give a float64 result and float64 gradients of the leaves' shapes."""
    xs = [tg.tensor(a, requires_grad=True) for a in c.inputs]
    out = c.fn(tg, *xs)
    assert out.dtype == tg.float64
    assert out.requires_grad and out.grad_fn is not None
    out.sum().backward()
    for x in xs:
        assert x.grad is not None, "a leaf that feeds the output got no gradient"
        assert x.grad.dtype == tg.float64 and x.grad.shape == x.shape


# ---- exact cases worked by hand -----------------------------------------------------------------
def test_hand_product_rule():
    # f = x*y + x at x=2, y=3: df/dx = y + 1 = 4, df/dy = x = 2, f = 8
    x = tg.tensor(2.0, requires_grad=True)
    y = tg.tensor(3.0, requires_grad=True)
    f = x * y + x
    f.backward()
    assert f.item() == 8.0
    assert x.grad.item() == 4.0
    assert y.grad.item() == 2.0


def test_hand_sum_of_squares():
    # d/dx sum(x**2) = 2x
    x = tg.tensor([1.0, -2.0, 3.0, 0.5], requires_grad=True)
    (x ** 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0, 1.0])


def test_hand_tutorial_vjp_accumulates_and_zero_resets():
    # out = (inp + 1)^2 transposed; d out / d inp against ones is 2 (inp + 1):
    # 4 on the diagonal of eye(4, 5), 2 elsewhere. A second backward adds; zero_() resets.
    inp = tg.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    once = np.full((4, 5), 2.0)
    np.fill_diagonal(once, 4.0)
    out.backward(tg.ones_like(out), retain_graph=True)
    np.testing.assert_array_equal(inp.grad.numpy(), once)
    out.backward(tg.ones_like(out), retain_graph=True)
    np.testing.assert_array_equal(inp.grad.numpy(), 2 * once)
    inp.grad.zero_()
    np.testing.assert_array_equal(inp.grad.numpy(), np.zeros((4, 5)))
    out.backward(tg.ones_like(out))
    np.testing.assert_array_equal(inp.grad.numpy(), once)


def test_hand_chain_through_three_ops():
    # f = exp(2x) - x**3 at x = 0: f' = 2 exp(0) - 0 = 2; at x = 1: f' = 2e^2 - 3
    x = tg.tensor([0.0, 1.0], dtype=tg.float64, requires_grad=True)
    (tg.exp(2 * x) - x ** 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2 * np.exp(2.0) - 3.0], rtol=1e-15)


def test_hand_quotient():
    # f = x / y at x=3, y=2: df/dx = 1/y = 0.5, df/dy = -x/y^2 = -0.75
    x = tg.tensor(3.0, requires_grad=True)
    y = tg.tensor(2.0, requires_grad=True)
    (x / y).backward()
    assert x.grad.item() == 0.5
    assert y.grad.item() == -0.75


def test_hand_broadcast_add_sums_the_gradient():
    # b of shape (3,) is added to each of 2 rows: each b_j receives 2 * 1
    a = tg.zeros(2, 3, requires_grad=True)
    b = tg.zeros(3, requires_grad=True)
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 2.0, 2.0])


def test_hand_activations_at_zero_and_one():
    # sigmoid'(0) = 1/4, tanh'(0) = 1, relu'(1) = 1, relu'(-1) = 0, |x|' at -2 = -1
    x = tg.tensor([0.0], requires_grad=True)
    tg.sigmoid(x).sum().backward()
    assert x.grad.tolist() == [0.25]
    x = tg.tensor([0.0], requires_grad=True)
    tg.tanh(x).sum().backward()
    assert x.grad.tolist() == [1.0]
    x = tg.tensor([1.0, -1.0], requires_grad=True)
    tg.relu(x).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]
    x = tg.tensor([-2.0, 3.0], requires_grad=True)
    tg.abs(x).sum().backward()
    assert x.grad.tolist() == [-1.0, 1.0]


def test_hand_mean_spreads_evenly():
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.mean().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 2), 0.25))


def test_hand_max_picks_the_winner():
    x = tg.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    v, i = x.max(dim=1)
    assert v.tolist() == [5.0, 7.0] and i.tolist() == [1, 0]
    (v * tg.tensor([10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 10, 0], [100, 0, 0]])


def test_hand_matmul():
    # d sum(x @ w) / dx = row sums of w (as every row of x); d/dw = column sums of x
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = tg.tensor([[1.0, 0.0, 2.0], [-1.0, 3.0, 1.0]], requires_grad=True)
    (x @ w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[3.0, 3.0], [3.0, 3.0]])
    np.testing.assert_array_equal(w.grad.numpy(), [[4.0, 4.0, 4.0], [6.0, 6.0, 6.0]])


def test_hand_index_with_repeats_adds():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[tg.tensor([0, 2, 0, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


def test_hand_cross_entropy_uniform_logits():
    # zero logits: softmax = 1/3 each; d mean CE / d logits = (1/3 - onehot) / N, N = 2
    x = tg.zeros(2, 3, dtype=tg.float64, requires_grad=True)
    loss = tg.nn.functional.cross_entropy(x, tg.tensor([0, 2]))
    loss.backward()
    np.testing.assert_allclose(loss.item(), np.log(3.0), rtol=1e-15)
    expected = np.array([[1 / 3 - 1, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3 - 1]]) / 2
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-14, atol=1e-16)


def test_hand_bce_with_logits_at_zero():
    # z = 0: sigmoid = 1/2, loss = log 2 each, d loss / dz = (sigmoid(z) - y) / N
    z = tg.zeros(2, dtype=tg.float64, requires_grad=True)
    loss = tg.nn.functional.binary_cross_entropy_with_logits(z, tg.tensor([1.0, 0.0],
                                                                          dtype=tg.float64))
    loss.backward()
    np.testing.assert_allclose(loss.item(), np.log(2.0), rtol=1e-15)
    np.testing.assert_allclose(z.grad.numpy(), [-0.25, 0.25], rtol=1e-15)


def test_hand_mse():
    # mse = mean((x - y)^2); d/dx = 2 (x - y) / n with n = 2
    x = tg.tensor([1.0, 4.0], requires_grad=True)
    y = tg.tensor([0.0, 2.0])
    loss = tg.nn.functional.mse_loss(x, y)
    loss.backward()
    assert loss.item() == 2.5
    assert x.grad.tolist() == [1.0, 2.0]


def test_hand_where_routes_gradient():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tg.tensor([4.0, 5.0, 6.0], requires_grad=True)
    tg.where(tg.tensor([True, False, True]), x, y * 2).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]
    assert y.grad.tolist() == [0.0, 2.0, 0.0]


def test_gradcheck_rejects_a_wrong_gradient():
    # the checker itself must be able to fail: relu's kink at 0 has no derivative that
    # central differences can agree with (they give 1/2)
    with pytest.raises(AssertionError):
        gradcheck(lambda x: tg.relu(x), [np.array([0.0, 1.0])])
