"""Derivatives of the rules' expressions: the second derivatives of the unary ops.

A unary op's VJP rule in rules.py is an expression in g, x (the input), y (the output), f0
and f1, linear in g: ``g * (1 - y * y)`` for tanh. ``create_graph=True`` records that VJP
as one record (UVJP, kernels/opcodes.py) whose own VJP needs the rule's partial derivatives
in x and in y. ``partials(expr)`` differentiates the expression symbolically (x and y taken
as independent: the record reads both, and the chain rule through y = f(x) is the tape's
job), and codegen.py writes the results into the kernels beside the rules they come from;
symbolic.py runs the same expressions on tensors. Nothing here is written by hand per op.

Only what the rules use is supported: + - * / ** (a constant exponent), unary minus,
where(...) (piecewise: each branch differentiated), an ``a if f0 == c else b`` on constants, and the functions of rules.FUNCTIONS
that have a derivative below. An expression using anything else has no partials (None),
and its op keeps the VJP written as several recorded ops.
"""
import ast

VARS = ("x", "y")
CONSTANT_NAMES = {"g", "f0", "f1"}

# d/dv f(v) for the functions the rules call, as an expression in "v"
_DERIVATIVES = {
    "exp": "exp(v)", "log": "1.0 / v", "sqrt": "0.5 / sqrt(v)", "sin": "cos(v)",
    "cos": "-sin(v)", "tanh": "1.0 - tanh(v) * tanh(v)", "sinh": "cosh(v)", "cosh": "sinh(v)",
    "tan": "1.0 + tan(v) * tan(v)", "asin": "1.0 / sqrt(1.0 - v * v)",
    "acos": "-1.0 / sqrt(1.0 - v * v)", "atan": "1.0 / (1.0 + v * v)",
    "asinh": "1.0 / sqrt(v * v + 1.0)", "acosh": "1.0 / sqrt(v * v - 1.0)",
    "atanh": "1.0 / (1.0 - v * v)", "log1p": "1.0 / (1.0 + v)", "expm1": "exp(v)",
    "log2": "1.0 / (v * LN2)", "log10": "1.0 / (v * LN10)", "exp2": "exp2(v) * LN2",
    "erf": "TWO_OVER_SQRT_PI * exp(-(v * v))", "erfc": "-TWO_OVER_SQRT_PI * exp(-(v * v))",
    "sigmoid": "sigmoid(v) * (1.0 - sigmoid(v))", "abs": "sign(v)",
    "sign": "0.0", "floor": "0.0", "ceil": "0.0", "rint": "0.0", "trunc": "0.0",
}


class Unsupported(Exception):
    pass


def _const(v):
    return ast.Constant(float(v))


def _is(node, v):
    return isinstance(node, ast.Constant) and node.value == v


def _add(a, b):
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    return ast.BinOp(a, ast.Add(), b)


def _neg(a):
    if _is(a, 0.0):
        return a
    if isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub):
        return a.operand
    return ast.UnaryOp(ast.USub(), a)


def _sub(a, b):
    if _is(b, 0.0):
        return a
    if _is(a, 0.0):
        return _neg(b)
    return ast.BinOp(a, ast.Sub(), b)


def _mul(a, b):
    if _is(a, 0.0) or _is(b, 0.0):
        return _const(0.0)
    if _is(a, 1.0):
        return b
    if _is(b, 1.0):
        return a
    return ast.BinOp(a, ast.Mult(), b)


def _div(a, b):
    if _is(a, 0.0):
        return _const(0.0)
    if _is(b, 1.0):
        return a
    return ast.BinOp(a, ast.Div(), b)


def _depends(node, var):
    return any(isinstance(n, ast.Name) and n.id == var for n in ast.walk(node))


def _d(node, var):
    """d(node)/d(var) as an AST (simplified where a factor is 0 or 1)."""
    if not _depends(node, var):
        return _const(0.0)
    if isinstance(node, ast.Name):
        return _const(1.0)           # node is var itself (it depends on var)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _neg(_d(node.operand, var))
    if isinstance(node, ast.BinOp):
        a, b = node.left, node.right
        da, db = _d(a, var), _d(b, var)
        if isinstance(node.op, ast.Add):
            return _add(da, db)
        if isinstance(node.op, ast.Sub):
            return _sub(da, db)
        if isinstance(node.op, ast.Mult):
            return _add(_mul(da, b), _mul(a, db))
        if isinstance(node.op, ast.Div):          # (da b - a db) / b^2
            if _is(db, 0.0):
                return _div(da, b)
            return _div(_sub(_mul(da, b), _mul(a, db)), _mul(b, b))
        if isinstance(node.op, ast.Pow) and not _depends(b, var):   # b a^(b-1) da
            return _mul(_mul(b, ast.BinOp(a, ast.Pow(), _sub(b, _const(1.0)))), da)
        raise Unsupported(ast.unparse(node))
    if isinstance(node, ast.IfExp) and not _depends(node.test, var):
        return ast.IfExp(node.test, _d(node.body, var), _d(node.orelse, var))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        if name == "where" and len(node.args) == 3:
            # piecewise: each branch's derivative (the condition's jumps have measure 0,
            # and the sweeps' first derivatives take the branches' values there too)
            da, db = _d(node.args[1], var), _d(node.args[2], var)
            if _is(da, 0.0) and _is(db, 0.0):
                return _const(0.0)
            return ast.Call(node.func, [node.args[0], da, db], [])
        if name in _DERIVATIVES and len(node.args) == 1:
            (arg,) = node.args
            outer = ast.parse(_DERIVATIVES[name], mode="eval").body
            outer = _Substitute(arg).visit(outer)
            return _mul(outer, _d(arg, var))
    raise Unsupported(ast.unparse(node))


class _Substitute(ast.NodeTransformer):
    def __init__(self, arg):
        self.arg = arg

    def visit_Name(self, node):
        return self.arg if node.id == "v" else node


def partials(expr):
    """(d/dx, d/dy) of a unary VJP expression as expression strings, or None when it uses
    something this module cannot differentiate or depends on neither x nor y (its VJP is
    then already one recorded op or a constant)."""
    tree = ast.parse(expr, mode="eval").body
    if not any(_depends(tree, v) for v in VARS):
        return None
    try:
        return tuple(ast.unparse(ast.fix_missing_locations(_d(tree, v))) for v in VARS)
    except Unsupported:
        return None


def linear_in_g(expr):
    """True when the expression is g times something free of g (every VJP rule must be),
    checked by differentiating twice in g."""
    tree = ast.parse(expr, mode="eval").body
    try:
        return not _depends(_d(tree, "g"), "g")
    except Unsupported:
        return False
