"""The op registry of the elementwise families: one declaration per op.

A declaration names the op's opcode (by its place in the list), its listing name, its
PyTorch grad_fn name, which saved values its VJP reads, and two rules written once as
Python expressions:

- ``value``: the output from the input ``x`` (binary: ``x`` and ``y``) and the record's
  float constants ``f0``, ``f1``;
- ``vjp``: the input gradient from the output gradient ``g``, the input ``x`` and the
  output ``y`` (binary: a pair, from ``g``, ``x``, ``y`` and the output ``out``).

The vjp of an elementwise op is linear in ``g`` and the same map serves both directions: the
reverse sweep applies it to gradients, the tangent sweep to tangents. The expressions use
operators, ``where(cond, a, b)`` for conditions on data (``if`` only on ``f0``/``f1``),
``lit(like, c)`` for a constant in the dtype of ``like``, and the functions in ``FUNCTIONS``.
Every pass takes its arithmetic from here:

- ``python tapegrad/codegen.py`` writes the opcodes into kernels/opcodes.py and the
  compiled dispatchers (``_du``, ``_un``, ``_db``, ``_bin``) into kernels/elementwise.py,
  which the reverse, tangent and forward sweeps and the scalar chains call; the files are
  checked in, and a test fails when they are not what this table generates. (Numba's cache
  of every kernel is keyed on all kernel files, kernels/cachekey.py, so an edited rule is
  never served stale by a sweep compiled in another file.)
- symbolic.py (the reverse pass recorded as ops, for ``hessian``) evaluates the same vjp
  expressions on tensors.
- ops/registry.py makes the user-facing function of every op declared ``public`` (eager
  forward by ``numpy``, or by the compiled value rule where numpy has no such function).

Adding an elementwise op: one ``unary(...)`` line here, ``python tapegrad/codegen.py``, and a
row in tests/test_ops_gradcheck.py.
"""
from dataclasses import dataclass

R_A, R_B, R_C, R_OUT = 1, 2, 4, 8   # what a VJP reads: input a, b, c, the output

# the functions the expressions may call: name -> (compiled, on tensors, on numpy arrays)
FUNCTIONS = {
    "exp": ("np.exp", "ops.exp", "np.exp"), "log": ("np.log", "ops.log", "np.log"),
    "sqrt": ("np.sqrt", "ops.sqrt", "np.sqrt"), "sin": ("np.sin", "ops.sin", "np.sin"),
    "cos": ("np.cos", "ops.cos", "np.cos"), "tanh": ("np.tanh", "ops.tanh", "np.tanh"),
    "sinh": ("np.sinh", "ops.sinh", "np.sinh"), "cosh": ("np.cosh", "ops.cosh", "np.cosh"),
    "tan": ("np.tan", "ops.tan", "np.tan"), "asin": ("np.arcsin", "ops.asin", "np.arcsin"),
    "acos": ("np.arccos", "ops.acos", "np.arccos"),
    "atan": ("np.arctan", "ops.atan", "np.arctan"),
    "asinh": ("np.arcsinh", "ops.asinh", "np.arcsinh"),
    "acosh": ("np.arccosh", "ops.acosh", "np.arccosh"),
    "atanh": ("np.arctanh", "ops.atanh", "np.arctanh"),
    "log1p": ("np.log1p", "ops.log1p", "np.log1p"),
    "expm1": ("np.expm1", "ops.expm1", "np.expm1"),
    "log2": ("np.log2", "ops.log2", "np.log2"), "log10": ("np.log10", "ops.log10", "np.log10"),
    "exp2": ("np.exp2", "ops.exp2", "np.exp2"),
    "erf": ("math.erf", "ops.erf", "_np_erf"), "erfc": ("math.erfc", "ops.erfc", "_np_erfc"),
    "sign": ("np.sign", "ops.sign", "np.sign"), "floor": ("np.floor", "ops.floor", "np.floor"),
    "ceil": ("np.ceil", "ops.ceil", "np.ceil"), "rint": ("np.rint", "ops.round", "np.rint"),
    "trunc": ("np.trunc", "ops.trunc", "np.trunc"),
    "sigmoid": ("_sigmoid1", "ops.sigmoid", "_np_sigmoid"),
    "where": ("_where", "ops.where", "np.where"), "lit": ("_lit", "_lit", "_lit"),
    "clog": ("np.log", "np.log", "np.log"),       # the log of a constant (f0, f1)
    "abs": ("abs", "ops.abs", "np.abs"), "min": ("min", None, "np.minimum"),
    "atan2": ("np.arctan2", None, "np.arctan2"), "hypot": ("np.hypot", None, "np.hypot"),
    "fmod": ("np.fmod", None, "np.fmod"), "logaddexp": ("np.logaddexp", None, "np.logaddexp"),
    "remainder": ("np.remainder", None, "np.remainder"),
    "max": ("max", None, "np.maximum"),
    "floor_at": ("max", "_floor_at", "np.maximum"),      # floor_at(v, c): v, at least c
    "softplus": ("_softplus", "_softplus", None),         # log(1 + exp(v)), no overflow
}
CONSTANTS = {"LN2": 0.6931471805599453, "LN10": 2.302585092994046,
             "TWO_OVER_SQRT_PI": 1.1283791670955126}


@dataclass(frozen=True)
class Unary:
    name: str            # listing name, and the user-facing function when public
    opcode: str          # the sweep's constant
    grad_fn: str         # PyTorch's grad_fn class name
    reads: int           # R_A (x) and/or R_OUT (y)
    value: str           # y from x, f0, f1
    vjp: str             # the input's gradient from g, x, y, f0, f1
    hot: bool = False    # inlined into every loop; the others share one compiled call
    public: bool = False  # ops/registry.py makes tapegrad.<name> and Tensor.<name> of it
    numpy: str = ""      # eager forward on arrays, if not the value expression itself


def unary(*args, **kw):
    UNARY.append(Unary(*args, **kw))


UNARY = []
# The first block is the engine's original set, in its original order (NEG first: the
# sweeps test `NEG <= op < ADD` for the unary family); hot ones are inlined everywhere.
# NEG is F0 - a (so `2 - x` is NEG with F0 = 2), ADDC a + F0, MULC a * F0.
unary("neg", "NEG", "NegBackward0", 0, "lit(x, f0) - x", "-g", hot=True)
unary("exp", "EXP", "ExpBackward0", R_OUT, "exp(x)", "g * y", hot=True)
unary("log", "LOG", "LogBackward0", R_A, "log(x)", "g / x", hot=True)
unary("sqrt", "SQRT", "SqrtBackward0", R_OUT, "sqrt(x)", "g * 0.5 / y", hot=True)
unary("abs", "ABS", "AbsBackward0", R_A, "abs(x)",
      "where(x > 0, g, where(x < 0, -g, 0.0 * g))", hot=True)   # PyTorch: g * sgn(x)
unary("sin", "SIN", "SinBackward0", R_A, "sin(x)", "g * cos(x)", hot=True)
unary("cos", "COS", "CosBackward0", R_A, "cos(x)", "-g * sin(x)", hot=True)
unary("tanh", "TANH", "TanhBackward0", R_OUT, "tanh(x)", "g * (1 - y * y)", hot=True)
unary("sigmoid", "SIGMOID", "SigmoidBackward0", R_OUT, "sigmoid(x)", "g * y * (1 - y)",
      hot=True)
# PyTorch's threshold_backward: exactly 0 where y <= 0 (even for g = inf), g at NaN
unary("relu", "RELU", "ReluBackward0", R_OUT, "where(x > 0, x, 0.0 * x)",
      "where(y <= 0, 0.0, g)", hot=True)
unary("add_scalar", "ADDC", "AddBackward0", 0, "x + lit(x, f0)", "g", hot=True)
unary("mul_scalar", "MULC", "MulBackward0", 0, "x * lit(x, f0)", "g * f0", hot=True)
# PyTorch: exactly 0 for the exponent 0 (even for g inf or NaN)
unary("pow_scalar", "POWC", "PowBackward0", R_A, "x ** f0",
      "0.0 if f0 == 0.0 else g * f0 * x ** (f0 - 1.0)", hot=True)
# 0 ** x: PyTorch gives g * 0 where x >= 0 (y is 0 or 1 there)
unary("scalar_pow", "RPOWC", "PowBackward1", R_OUT, "f0 ** x",
      "where(y <= 1.0, 0.0 * g, g * y * clog(f0)) if f0 == 0.0 else g * y * clog(f0)",
      hot=True)
unary("scalar_div", "RDIVC", "DivBackward0", R_A, "lit(x, f0) / x", "-g * f0 / (x * x)",
      hot=True)
# passes where lo <= x <= hi, exactly 0 elsewhere and at NaN (PyTorch's clamp_backward)
unary("clamp", "CLAMP", "ClampBackward1", R_A, "min(max(x, f0), f1)",
      "where(x >= f0, where(x <= f1, g, 0.0), 0.0)", hot=True)
# ---- added through the registry ----
unary("log1p", "LOG1P", "Log1PBackward0", R_A, "log1p(x)", "g / (1.0 + x)", public=True)
unary("expm1", "EXPM1", "Expm1Backward0", R_OUT, "expm1(x)", "g * (y + 1.0)", public=True)
unary("log2", "LOG2", "Log2Backward0", R_A, "log2(x)", "g / (x * LN2)", public=True)
unary("log10", "LOG10", "Log10Backward0", R_A, "log10(x)", "g / (x * LN10)", public=True)
unary("exp2", "EXP2", "Exp2Backward0", R_OUT, "exp2(x)", "g * y * LN2", public=True)
unary("tan", "TAN", "TanBackward0", R_OUT, "tan(x)", "g * (1.0 + y * y)", public=True)
unary("asin", "ASIN", "AsinBackward0", R_A, "asin(x)", "g / sqrt(1.0 - x * x)",
      public=True)
unary("acos", "ACOS", "AcosBackward0", R_A, "acos(x)", "-g / sqrt(1.0 - x * x)",
      public=True)
unary("atan", "ATAN", "AtanBackward0", R_A, "atan(x)", "g / (1.0 + x * x)", public=True)
unary("sinh", "SINH", "SinhBackward0", R_A, "sinh(x)", "g * cosh(x)", public=True)
unary("cosh", "COSH", "CoshBackward0", R_A, "cosh(x)", "g * sinh(x)", public=True)
unary("asinh", "ASINH", "AsinhBackward0", R_A, "asinh(x)", "g / sqrt(x * x + 1.0)",
      public=True)
unary("acosh", "ACOSH", "AcoshBackward0", R_A, "acosh(x)", "g / sqrt(x * x - 1.0)",
      public=True)
unary("atanh", "ATANH", "AtanhBackward0", R_A, "atanh(x)", "g / (1.0 - x * x)",
      public=True)
unary("erf", "ERF", "ErfBackward0", R_A, "erf(x)", "g * TWO_OVER_SQRT_PI * exp(-(x * x))",
      public=True)
unary("erfc", "ERFC", "ErfcBackward0", R_A, "erfc(x)",
      "-g * TWO_OVER_SQRT_PI * exp(-(x * x))", public=True)
unary("rsqrt", "RSQRT", "RsqrtBackward0", R_OUT, "1.0 / sqrt(x)", "-0.5 * g * y * y * y",
      public=True)
unary("reciprocal", "RECIP", "ReciprocalBackward0", R_OUT, "1.0 / x", "-g * y * y",
      public=True)
# piecewise constant: PyTorch's gradient is exactly zero
unary("sign", "SIGN", "SignBackward0", 0, "sign(x)", "0.0", public=True)
unary("floor", "FLOOR", "FloorBackward0", 0, "floor(x)", "0.0", public=True)
unary("ceil", "CEIL", "CeilBackward0", 0, "ceil(x)", "0.0", public=True)
unary("round", "ROUND", "RoundBackward0", 0, "rint(x)", "0.0", public=True)
unary("trunc", "TRUNC", "TruncBackward0", 0, "trunc(x)", "0.0", public=True)



@dataclass(frozen=True)
class Binary:
    name: str
    opcode: str
    grad_fn: str
    reads: int           # R_A, R_B, R_C (WHERE's condition), R_OUT
    value: str           # out from x, y ("" for WHERE: the sweeps pick by the condition)
    vjp_a: str           # the gradient of input a from g, x, y, out, cnd
    vjp_b: str           # the gradient of input b
    hot: bool = False
    public: bool = False  # ops/registry.py makes tapegrad.<name>(input, other) and the method
    integers: bool = False   # integer inputs give integer results (else: the default float)


def binary(*args, **kw):
    BINARY.append(Binary(*args, **kw))


BINARY = []
# numpy broadcasting; the sweeps sum each input's gradient back to its shape. ADD first and
# WHERE last: the sweeps test `ADD <= op <= WHERE` for the family.
binary("add", "ADD", "AddBackward0", 0, "x + y", "g", "g", hot=True)
binary("sub", "SUB", "SubBackward0", 0, "x - y", "g", "-g", hot=True)
binary("mul", "MUL", "MulBackward0", R_A | R_B, "x * y", "g * y", "g * x", hot=True)
binary("div", "DIV", "DivBackward0", R_A | R_B, "x / y", "g / y", "-g * x / (y * y)",
       hot=True)
# PyTorch's masks: d/da exactly 0 where y == 0; d/db g * 0 at 0 ** (y >= 0)
binary("pow", "POW", "PowBackward1", R_A | R_B | R_OUT, "x ** y",
       "where(y == 0.0, 0.0, g * y * x ** (y - 1.0))",
       "where(x == 0.0, where(y >= 0.0, 0.0 * g, g * out * log(x)), g * out * log(x))",
       hot=True)
# PyTorch: ties share g; exactly 0 for the other side; at NaN both sides get g
binary("maximum", "MAXIMUM", "MaximumBackward0", R_A | R_B,
       "where(x > y, x, where(x != x, x, y))",
       "where(x == y, 0.5 * g, where(x < y, 0.0, g))",
       "where(x == y, 0.5 * g, where(x > y, 0.0, g))", hot=True)
binary("minimum", "MINIMUM", "MinimumBackward0", R_A | R_B,
       "where(x < y, x, where(x != x, x, y))",
       "where(x == y, 0.5 * g, where(x > y, 0.0, g))",
       "where(x == y, 0.5 * g, where(x < y, 0.0, g))", hot=True)
# ---- added through the registry ----
binary("atan2", "ATAN2", "Atan2Backward0", R_A | R_B, "atan2(x, y)",
       "g * y / (x * x + y * y)", "-g * x / (x * x + y * y)", public=True)
binary("hypot", "HYPOT", "HypotBackward0", R_A | R_B | R_OUT, "hypot(x, y)",
       "g * x / out", "g * y / out", public=True)
# fmod truncates the quotient, remainder floors it (Python's %); away from the jumps the
# gradient is g and -g * the quotient, as in PyTorch
binary("fmod", "FMOD", "FmodBackward1", R_A | R_B, "fmod(x, y)", "g",
       "-g * trunc(x / y)", public=True, integers=True)
binary("remainder", "REMAINDER", "RemainderBackward1", R_A | R_B, "remainder(x, y)",
       "g", "-g * floor(x / y)", public=True, integers=True)
binary("logaddexp", "LOGADDEXP", "LogaddexpBackward0", R_A | R_B | R_OUT,
       "logaddexp(x, y)", "g * exp(x - out)", "g * exp(y - out)", public=True)
# WHERE is last; c is its condition, read as a float (nonzero: take a)
binary("where", "WHERE", "WhereBackward0", R_C, "",
       "where(cnd != 0, g, 0.0)", "where(cnd != 0, 0.0, g)", hot=True)


@dataclass(frozen=True)
class Loss:
    """A fused loss's rule per element: its value and its partial derivatives in x (the
    prediction), y (the target) and p (BCEWL's pos_weight; 1.0 when absent). The reduction
    (mean, sum, none) is the record's business, not the rule's."""
    name: str
    opcode: str
    value: str
    partials: tuple      # (d/dx, d/dy, d/dp)


# PyTorch's binary cross entropy: logs floored at -100, the d/dx denominator at 1e-12
LOSSES = (
    Loss("bce", "BCE",
         "-(y * floor_at(log(x), -100.0) + (1.0 - y) * floor_at(log(1.0 - x), -100.0))",
         ("(x - y) / floor_at(x * (1.0 - x), 1e-12)",
          "floor_at(log(1.0 - x), -100.0) - floor_at(log(x), -100.0)", "0.0")),
    # with logits, written with softplus(-x) = log(1 + exp(-x)), which does not overflow
    Loss("bce_with_logits", "BCEWL", "(1.0 - y) * x + (1.0 + (p - 1.0) * y) * softplus(-x)",
         ("(1.0 - y) - (1.0 + (p - 1.0) * y) * sigmoid(-x)",
          "(p - 1.0) * softplus(-x) - x", "y * softplus(-x)")),
)
