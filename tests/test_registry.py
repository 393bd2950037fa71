"""The op registry (tapegrad/rules.py): complete, generated into the kernels, used by every pass.

- the kernels' generated blocks are what rules.py makes (edit rules.py, run the generator);
- every unary rule's derivative agrees with central differences of its own value rule,
  both compiled, and its tensor version (symbolic.py) gives the same numbers;
- every opcode the sweeps know is recorded by some row of the op table, whose rows go through
  eager backward, replay, jvp and hessian (tests/test_ops_gradcheck.py, test_compile.py,
  test_func.py);
- an opcode with no rule is a loud internal error in the reverse, forward and tangent
  sweeps, never numbers;
- the hand-written fast loops (ADDC, MULC, TANH, RELU, NEG, scalar chains) give the generic
  rule's bits in float64.
"""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import calculus, codegen, rules, symbolic
from tapegrad import kernels as S
from tapegrad import tape as T

import test_ops_gradcheck as table

# a point inside each op's domain, away from kinks, and its constants (f0, f1)
POINT = {"log": 0.7, "sqrt": 0.7, "log1p": 0.4, "log2": 0.7, "log10": 0.7, "asin": 0.3,
         "acos": 0.3, "atanh": 0.3, "acosh": 1.7, "rsqrt": 0.7, "reciprocal": 0.7,
         "scalar_div": 0.7, "pow_scalar": 0.7, "clamp": 0.2, "round": 0.3, "floor": 0.3,
         "ceil": 0.3, "trunc": 0.3}
CONSTANTS = {"neg": (2.0, 0.0), "add_scalar": (1.5, 0.0), "mul_scalar": (-0.5, 0.0),
             "pow_scalar": (2.5, 0.0), "scalar_pow": (1.7, 0.0), "scalar_div": (2.0, 0.0),
             "clamp": (-0.5, 0.5)}


def _py(dispatcher):
    """The Python function behind a compiled one (itself under NUMBA_DISABLE_JIT)."""
    return getattr(dispatcher, "py_func", dispatcher)


@pytest.mark.parametrize("name,make", codegen.TARGETS, ids=[n for n, _ in codegen.TARGETS])
def test_generated_block_is_what_rules_make(name, make):
    with open(codegen._path(name)) as f:
        text = f.read()
    assert codegen.spliced(text, make()) == text, \
        f"kernels/{name} is stale: run `python tapegrad/codegen.py` after editing tapegrad/rules.py"


def test_every_rule_names_only_what_it_may():
    for u in rules.UNARY:
        codegen.render(u.value, "value", 0, u.name)
        codegen.render(u.vjp, "vjp", 0, u.name)
    for b in rules.BINARY:
        for e in (b.vjp_a, b.vjp_b):
            codegen.render(e, "vjp2", 0, b.name)
    with pytest.raises(ValueError, match="uses 'z'"):
        codegen.render("g * z", "vjp", 0, "bad")


def test_opcodes_are_unique_and_in_their_family_ranges():
    codes = [getattr(S, u.opcode) for u in rules.UNARY]
    assert codes == list(range(S.NEG, S.UNARY_END)) and S.UNARY_END <= S.ADD
    bcodes = [getattr(S, b.opcode) for b in rules.BINARY]
    assert bcodes == list(range(S.ADD, S.WHERE + 1)) and S.WHERE < S.SUM
    names = [u.name for u in rules.UNARY + rules.BINARY]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("u", rules.UNARY, ids=[u.name for u in rules.UNARY])
def test_rule_derivative_matches_its_value(u):
    op = getattr(S, u.opcode)
    x = POINT.get(u.name, 0.45)
    f0, f1 = CONSTANTS.get(u.name, (0.0, 0.0))

    def value(v):
        out = np.empty(1)
        S.unary_values(op, np.array([v]), out, f0, f1)
        return out[0]
    y = value(x)
    h = 1e-6
    want = (value(x + h) - value(x - h)) / (2 * h)
    got = S._du1(op, 1.0, x, y, f0, f1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8, err_msg=u.name)
    assert S._du1(op, 3.0, x, y, f0, f1) == pytest.approx(3 * got, rel=1e-14), "not linear in g"
    # the same rule on tensors, as symbolic.py (the Hessian's recorded reverse) runs it
    t = lambda v: tg.tensor(np.array([v]), dtype=tg.float64)     # noqa: E731
    d = symbolic._UNARY_VJP[op](t(1.0), t(x), t(y), f0, f1)
    d = float(d.numpy()[0]) if isinstance(d, tg.Tensor) else float(d)
    assert d == pytest.approx(got, rel=1e-12, abs=1e-300), u.name


BINARY_POINT = {"pow": (0.7, 1.3), "fmod": (2.3, 0.7), "remainder": (-2.3, 0.7)}


@pytest.mark.parametrize("b", rules.BINARY, ids=[b.name for b in rules.BINARY])
def test_binary_rule_derivatives_match_its_value(b):
    op = getattr(S, b.opcode)
    x, y = BINARY_POINT.get(b.name, (0.45, -0.8))
    if b.opcode == "WHERE":      # picks by its condition; no value rule of its own
        for cnd, want in ((1.0, (2.0, 0.0)), (0.0, (0.0, 2.0))):
            assert _py(S._db)(op, 2.0, x, y, 0.0, cnd) == want
        return
    value = lambda u, v: S._bin(op, u, v)           # noqa: E731
    out = value(x, y)
    h = 1e-6
    da, db = _py(S._db)(op, 1.0, x, y, out, 0.0)
    np.testing.assert_allclose(da, (value(x + h, y) - value(x - h, y)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(db, (value(x, y + h) - value(x, y - h)) / (2 * h), rtol=1e-6)
    t = lambda v: tg.tensor(np.array([v]), dtype=tg.float64)     # noqa: E731
    if b.opcode == "POW":        # symbolic.py's product form of the same first derivatives
        got = symbolic._pow_vjp(t(1.0), t(x), t(y), t(out), (True, True))
    else:
        got = [rule(t(1.0), t(x), t(y), t(out), None) for rule in symbolic._BINARY_VJP[op]]
    got = [float(d.numpy()[0]) if isinstance(d, tg.Tensor) else float(d) for d in got]
    np.testing.assert_allclose(got, [da, db], rtol=1e-12)


@pytest.mark.parametrize("loss", rules.LOSSES, ids=[loss.name for loss in rules.LOSSES])
@pytest.mark.parametrize("x,y,p", [(0.3, 0.8, 2.5), (0.7, 0.1, 0.5), (0.55, 1.0, 1.0)])
def test_loss_rule_partials_match_its_value(loss, x, y, p):
    from tapegrad.kernels import fused
    value = _py(getattr(fused, f"_{loss.name}_value"))
    got = _py(getattr(fused, f"_{loss.name}_partials"))(x, y, p)
    h = 1e-6
    want = [(value(x + h, y, p) - value(x - h, y, p)) / (2 * h),
            (value(x, y + h, p) - value(x, y - h, p)) / (2 * h),
            (value(x, y, p + h) - value(x, y, p - h)) / (2 * h)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    # the same rule on tensors (symbolic.py, for hessian)
    t = lambda v: tg.tensor(np.array([v]), dtype=tg.float64)     # noqa: E731
    sym = [rule(t(x), t(y), t(p)) for rule in symbolic._LOSS_PARTIALS[getattr(S, loss.opcode)]]
    sym = [float(d.numpy()[0]) if isinstance(d, tg.Tensor) else float(d) for d in sym]
    np.testing.assert_allclose(sym, got, rtol=1e-12)


def _opcodes_of(c):
    """The opcodes one table row records."""
    tp = T.Tape()
    old = T._tls.tape
    T._tls.tape = tp
    try:
        c.fn(tg, *[tg.tensor(a, requires_grad=True) for a in c.inputs])
        R, _ = tp.records()
        return set(S.op_of(R[:, S.OPW]).tolist())
    finally:
        T._tls.tape = old


# not necessarily recorded by a table row, and sent through every pass below in any case:
# a float32 -> float64 cast cannot be gradchecked in float64; scatter is mostly internal
# (the transpose of a gather, recorded by the Hessian's reverse of nll_loss); a custom
# Function's records carry the user's own backward (tests/test_autograd_function.py); UVJP
# is recorded by create_graph's reverse, which tests/test_create_graph.py runs over the table
OFF_TABLE = {S.CAST, S.SCATTER, S.PYFN, S.PYOUT, S.UVJP}


def test_every_opcode_is_recorded_by_some_table_row():
    seen = set()
    for c in table.CASES:
        seen |= _opcodes_of(c)
    known = set(T.OPNAMES) - {S.DEAD}      # DEAD stands for a freed graph: never recorded
    missing = sorted(T.OPNAMES[op] for op in known - seen - OFF_TABLE)
    assert not missing, f"no row of the op table records: {missing}"


@pytest.mark.parametrize("which", ["cast", "scatter"])
def test_off_table_opcodes_through_every_pass(which):
    idx = np.array([2, 0, 2])
    if which == "cast":
        xv = np.array([0.5, -1.25, 2.0], np.float32)

        def f(x):
            return (x.double() ** 2).sum()
        grad, hess = 2 * xv.astype(np.float64), 2 * np.eye(3)
    else:
        xv = np.array([0.5, -1.25, 2.0])

        def f(x):
            return (tg.ops.scatter(x, idx, (4,)) ** 2).sum()     # [x1, 0, x0 + x2, 0]
        grad = 2 * np.array([xv[0] + xv[2], xv[1], xv[0] + xv[2]])
        hess = 2 * np.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])
    rec = _opcodes_of(table.Case(which, lambda T, x: f(x), [xv]))
    assert (S.CAST if which == "cast" else S.SCATTER) in rec
    for fn in (f, tg.compile(f)):
        for _ in range(2):                                   # compiled: records, replays
            x = tg.tensor(xv, requires_grad=True)
            fn(x).backward()
            np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-6)
    _, t = tg.func.jvp(f, (tg.tensor(xv),), (tg.tensor(np.ones(3, xv.dtype)),))
    np.testing.assert_allclose(t.item(), grad.sum(), rtol=1e-6)
    np.testing.assert_allclose(tg.func.hessian(f)(tg.tensor(xv)).numpy(), hess, rtol=1e-6)


def _corrupt_record(t, op):
    """Give the record of tensor t the unused opcode op (a stand-in for a missing rule)."""
    tp = T.current()
    loc = tp.local(t._gid)
    R, _ = tp.records()
    R[loc, S.OPW] = (int(R[loc, S.OPW]) & ~255) | op
    del R


@pytest.mark.parametrize("bad", [S.UNARY_END, S.ADD - 1, S.WHERE + 1, S.FIRST_PY - 1])
def test_an_opcode_without_a_rule_is_a_loud_error(bad):
    x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    y = x.exp()
    _corrupt_record(y, bad)
    with pytest.raises(RuntimeError, match=f"internal error.*unknown opcode {bad}"):
        y.sum().backward()
    # the library stays usable
    z = tg.tensor([0.5], dtype=tg.float64, requires_grad=True)
    z.exp().sum().backward()
    assert z.grad.item() == pytest.approx(np.exp(0.5))


@pytest.mark.parametrize("bad", [S.UNARY_END, S.ADD - 1, S.WHERE + 1])
def test_replay_and_tangent_of_an_opcode_without_a_rule_raise(bad):
    f = tg.compile(lambda x: (x.exp() * 2.0).sum())
    x = tg.tensor([0.5, 1.5], dtype=tg.float64, requires_grad=True)
    f(x)
    prog = next(iter(f.programs.values()))[0]
    r = int(np.flatnonzero((prog.R[:, S.OPW] & 255) == S.EXP)[0])
    prog.R[r, S.OPW] = (int(prog.R[r, S.OPW]) & ~255) | bad
    vals = prog.scratch().vals
    with pytest.raises(RuntimeError, match=f"internal error.*opcode {bad}"):
        prog.forward(vals)
    with pytest.raises(RuntimeError, match=f"internal error.*opcode {bad}"):
        prog.tangent(vals, {prog.sources[0][0]: np.ones(2)})


FAST = {"add_scalar": (lambda x: x + 1.5, 1.5), "mul_scalar": (lambda x: x * -0.75, -0.75),
        "neg": (lambda x: 2.0 - x, 2.0), "tanh": (lambda x: x.tanh(), 0.0),
        "relu": (lambda x: x.relu(), 0.0)}      # name -> (the op on a tensor, its f0)


@pytest.mark.parametrize("n", [1, 7, 100])
@pytest.mark.parametrize("name", sorted(FAST))
def test_fast_loops_give_the_generic_rules_bits(name, n):
    """float64: each hand-written loop (and, at n = 1, the scalar chain) is the rule."""
    op = getattr(S, next(u for u in rules.UNARY if u.name == name).opcode)
    fn, f0 = FAST[name]
    r = np.random.default_rng(n)
    xv = r.standard_normal(n)
    if name == "relu":
        xv[0] = 0.0
    g = r.standard_normal(n)
    x = tg.tensor(xv, dtype=tg.float64, requires_grad=True)
    h = x * 1.0 if n == 1 else x       # n = 1: a chain of two one-element records
    y = fn(h)
    y.backward(tg.tensor(g))
    yv = y.detach().numpy()
    want = np.array([_py(S._du)(op, g[i], xv[i], yv[i], f0, 0.0) for i in range(n)])
    assert np.array_equal(x.grad.numpy(), want), (x.grad.numpy(), want)


# ---- the VJP rules' partials (calculus.py), which create_graph's fused records use ----------
_D2 = [u for u in rules.UNARY if codegen.second_partials(u) is not None]


@pytest.mark.parametrize("u", _D2, ids=[u.name for u in _D2])
def test_vjp_partials_match_central_differences_of_the_rule(u):
    from tapegrad.kernels.elementwise import _d2u
    op = getattr(S, u.opcode)
    xs = (1.2, 1.45, 1.7) if u.opcode == "ACOSH" else (0.3, 0.45, 0.6)
    f0, f1 = (2.5, 0.0)
    h = 1e-6
    for x in xs:
        y = x * 0.8 + 0.1          # x and y are independent inputs of the fused record
        dx, dy = _d2u(op, 1.3, x, y, f0, f1)
        ndx = (S._du1(op, 1.3, x + h, y, f0, f1) - S._du1(op, 1.3, x - h, y, f0, f1)) / (2 * h)
        ndy = (S._du1(op, 1.3, x, y + h, f0, f1) - S._du1(op, 1.3, x, y - h, f0, f1)) / (2 * h)
        assert dx == pytest.approx(ndx, rel=1e-6, abs=1e-7), (u.name, x)
        assert dy == pytest.approx(ndy, rel=1e-6, abs=1e-7), (u.name, x)


def test_every_vjp_rule_is_linear_in_g():
    for u in rules.UNARY:
        assert calculus.linear_in_g(u.vjp), u.name
