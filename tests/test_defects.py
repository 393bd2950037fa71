"""Regression tests for defects found while reading the code (issue 10, item 6).

pow at its singular points in every path; nn.functional's legacy size_average/reduce and
inplace arguments; the record buffer copied silently on append; the grad_fn name registry
under threads; the unbounded program cache of tapegrad.compile.
"""
import gc
import sys
import threading
import time
import uuid
import warnings
import weakref

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import func, replay
from tapegrad import tape as T

torch = pytest.importorskip("torch")
tF = torch.nn.functional

DTYPES = ("float64", "float32")
TOL = {"float64": dict(rtol=1e-12, atol=0), "float32": dict(rtol=2e-6, atol=0)}


def arr(t):
    return t.detach().numpy() if isinstance(t, (tg.Tensor, torch.Tensor)) else np.asarray(t)


def close(got, want, dt, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    np.testing.assert_allclose(got, want, equal_nan=True, err_msg=what, **TOL[dt])


# ---- pow at negative bases, 0 ** 0 and 0 ** c, in every path ----------------------------------
# Each case is a function of one tensor built from pow the same way in tapegrad and torch:
# x ** c (POWC), c ** x (RPOWC), x ** tensor(c) and tensor(c) ** x (POW with a constant
# side). (x * 1.0) ** c * 1.0 makes 0-d inputs a scalar chain of three records (the chain
# paths), and 70 elements take the sweep's vectorised slices.
def _case(kind, c, lib, dt):
    const = (lambda v: tg.tensor(np.array(v, dt))) if lib is tg else \
        (lambda v: torch.tensor(v, dtype=getattr(torch, dt)))
    if kind == "x**c":
        return lambda x: ((x * 1.0) ** c * 1.0).sum()
    if kind == "c**x":
        return lambda x: (c ** (x * 1.0) * 1.0).sum()
    if kind == "x**T(c)":
        return lambda x: ((x * 1.0) ** const(c) * 1.0).sum()
    return lambda x: (const(c) ** (x * 1.0) * 1.0).sum()


BASES = (-2.0, -1.0, 0.0, 1.5)
EXPONENTS = (0, 1, 2, 3, -1, -2, 0.5)        # integers as ints: x ** 2 is numpy's x ** 2 too
CASES = ([("x**c", c, x) for c in EXPONENTS for x in BASES]
         + [("x**T(c)", float(c), x) for c in EXPONENTS for x in BASES]
         + [(k, c, x) for k in ("c**x", "T(c)**x") for c in (0.0, -2.0, 2.0)
            for x in (-2.0, -1.0, 0.0, 0.5, 1.0, 2.0)])


def _torch_reference(f, x0):
    xt = torch.tensor(x0, requires_grad=True)
    v = f(xt)
    v.backward()
    ones = torch.ones_like(xt)
    _, jv = torch.func.jvp(f, (torch.tensor(x0),), (ones,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h_fr = torch.func.hessian(f)(torch.tensor(x0)).numpy()
        h_rr = torch.autograd.functional.hessian(f, torch.tensor(x0)).numpy()
    return v.detach().numpy(), xt.grad.numpy(), jv.numpy(), h_fr, h_rr


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("kind,c,x", CASES, ids=[f"{k}-{c}-at-{x}" for k, c, x in CASES])
def test_pow_singular_points_every_path_matches_torch(kind, c, x, dt):
    """Values and first derivatives are PyTorch's backward values in every path: eager,
    compiled replay (and its backward), func.grad (first and planned calls), jacrev,
    jacfwd and jvp. Second derivatives (hessian) are torch.func.hessian's diagonal, which
    is forward over reverse as ours; its off-diagonal NaNs (0 * inf from the zero tangents
    of the other columns) are exact zeros here, as the function is elementwise. Where
    torch.autograd.functional.hessian's diagonal is a number, ours is that number too."""
    f_tg, f_t = _case(kind, c, tg, dt), _case(kind, c, torch, dt)
    cf = tg.compile(f_tg)
    gfn = func.grad(cf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # numpy: divide by zero
        for shape in ((), (3,), (70,)):
            x0 = np.full(shape, x, dt)
            n = x0.size
            val, grad, jv, h_fr, h_rr = _torch_reference(f_t, x0)
            where = f"{kind} c={c} at {x}, shape {shape}, {dt}"
            xs = tg.tensor(x0, requires_grad=True)
            out = f_tg(xs)
            out.backward()
            close(arr(out), val, dt, "eager value " + where)
            close(arr(xs.grad), grad, dt, "eager grad " + where)
            for call in range(2):                           # records, then replays
                xs = tg.tensor(x0, requires_grad=True)
                out = cf(xs)
                out.backward()
                close(arr(out), val, dt, f"compiled value (call {call}) " + where)
                close(arr(xs.grad), grad, dt, f"compiled grad (call {call}) " + where)
                close(arr(gfn(tg.tensor(x0))), grad, dt, f"func.grad (call {call}) " + where)
            close(arr(func.jacrev(f_tg)(tg.tensor(x0))), grad, dt, "jacrev " + where)
            close(arr(func.jacfwd(f_tg)(tg.tensor(x0))), grad, dt, "jacfwd " + where)
            _, t = func.jvp(f_tg, (tg.tensor(x0),), (tg.ones(shape, dtype=getattr(tg, dt)),))
            close(arr(t), jv, dt, "jvp " + where)
            if n > 3:
                continue                                    # Hessians: 0-d and 3 elements
            h = arr(func.hessian(f_tg)(tg.tensor(x0))).reshape(n, n)
            diag = np.diagonal(h_fr.reshape(n, n))
            close(np.diagonal(h), diag, dt, "hessian diagonal " + where)
            close(h[~np.eye(n, dtype=bool)], np.zeros(n * n - n), dt,
                  "hessian off the diagonal " + where)
            rr = np.diagonal(h_rr.reshape(n, n))
            ok = ~np.isnan(rr)
            close(np.diagonal(h)[ok], rr[ok], dt, "hessian vs autograd.functional " + where)


TWO = [(x, y) for x in (-2.0, -1.0, 0.0, 2.0) for y in (-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0)]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("x,y", TWO)
def test_pow_of_two_variables_first_derivatives_match_torch(x, y, dt):
    """x ** y with both varying: d/dx is exactly 0 where y == 0, d/dy is 0 at 0 ** y>=0 and
    NaN at a negative base (log), in every path. jacfwd gives these values too: a zero
    tangent adds nothing (torch.func.jacfwd gives NaN in a column whose other input has a
    NaN partial, 0 * NaN; its jacrev and backward give what we give)."""
    def f(z):
        return (z[0] ** z[1]).sum()
    z0 = np.array([x, y], dt)
    zt = torch.tensor(z0, requires_grad=True)
    v = f(zt)
    v.backward()
    want = zt.grad.numpy()
    cf = tg.compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        zs = tg.tensor(z0, requires_grad=True)
        f(zs).backward()
        close(arr(zs.grad), want, dt, "eager")
        for call in range(2):
            zs = tg.tensor(z0, requires_grad=True)
            out = cf(zs)
            out.backward()
            close(arr(out), v.detach().numpy(), dt, "compiled value")
            close(arr(zs.grad), want, dt, f"compiled (call {call})")
            close(arr(func.grad(cf)(tg.tensor(z0))), want, dt, f"func.grad (call {call})")
        close(arr(func.jacrev(f)(tg.tensor(z0))), want, dt, "jacrev")
        close(arr(func.jacfwd(f)(tg.tensor(z0))), want, dt, "jacfwd")


def _pow_hessian_analytic(x, y):
    """The Hessian of x ** y (x > 0, or x == 0 with y > 1 where every term is finite)."""
    lg = np.log(x) if x > 0 else -np.inf
    hxx = 0.0 if y in (0.0, 1.0) else y * (y - 1) * x ** (y - 2)
    hxy = x ** (y - 1) * (1 + (0.0 if y == 0 else y * lg))
    hyy = x ** y * lg * lg if x > 0 else 0.0
    return np.array([[hxx, hxy], [hxy, hyy]])


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("x,y", [(2.0, 0.0), (1.0, 0.0), (2.0, 3.0), (0.5, -1.0), (2.0, 1.0)])
def test_pow_hessian_of_two_variables_is_symmetric_at_smooth_points(x, y, dt):
    """PyTorch's d/dx rule where(y == 0, 0, y * x ** (y - 1)) drops the derivative in y at
    y == 0: both torch.func.hessian and torch.autograd.functional.hessian give
    [[0, 0], [0.5, 0.48]] for 2 ** y at y = 0, which is not symmetric (d2/dxdy = 1/x there).
    Here the Hessian is the analytic one, and PyTorch's where y != 0."""
    z0 = np.array([x, y], dt)
    h = arr(func.hessian(lambda z: z[0] ** z[1])(tg.tensor(z0)))
    close(h, _pow_hessian_analytic(x, y), dt, "analytic")
    if y != 0:
        ht = torch.func.hessian(lambda z: z[0] ** z[1])(torch.tensor(z0)).numpy()
        close(h, ht, dt, "torch.func.hessian")


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("y", [0.0, 1.0, 2.0, 3.0])
def test_pow_hessian_of_two_variables_at_zero_base_matches_torch(y, dt):
    """0 ** y for y = 0, 1, 2, 3: torch.func.hessian's values (torch.autograd.functional
    gives NaN there from 0 * log(0) in its double backward)."""
    z0 = np.array([0.0, y], dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = arr(func.hessian(lambda z: z[0] ** z[1])(tg.tensor(z0)))
    ht = torch.func.hessian(lambda z: z[0] ** z[1])(torch.tensor(z0)).numpy()
    close(h, ht, dt, "torch.func.hessian")


@pytest.mark.parametrize("x,y", [(-2.0, 2.0), (-2.0, 3.0), (-1.0, -2.0), (-2.0, 0.0)])
def test_pow_hessian_at_a_negative_base_has_the_second_derivative_in_x(x, y):
    """d2/dx2 (x ** y) = y (y - 1) x ** (y - 2) at a negative base with an integer exponent:
    it used to be NaN (0 * log of a negative base, from the other input's zero tangent)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = arr(func.hessian(lambda z: z[0] ** z[1])(tg.tensor(np.array([x, y]))))
    assert h[0, 0] == (0.0 if y == 0 else y * (y - 1) * x ** (y - 2))


def test_pow_zero_exponent_gives_exact_zero_for_any_upstream_gradient():
    """PyTorch returns zeros for d(x ** 0)/dx and for d(x ** y)/dx where y == 0, even when
    the gradient flowing in is inf or NaN (g * 0 would be NaN)."""
    for up in (np.inf, np.nan):
        x = tg.tensor([2.0, -3.0], dtype=tg.float64, requires_grad=True)
        (x ** 0).backward(tg.tensor([up, up], dtype=tg.float64))
        xt = torch.tensor([2.0, -3.0], dtype=torch.float64, requires_grad=True)
        (xt ** 0).backward(torch.tensor([up, up], dtype=torch.float64))
        np.testing.assert_array_equal(arr(x.grad), xt.grad.numpy())
        x = tg.tensor([2.0, -3.0], dtype=tg.float64, requires_grad=True)
        (x ** tg.tensor([0.0, 0.0], dtype=tg.float64)).backward(
            tg.tensor([up, up], dtype=tg.float64))
        np.testing.assert_array_equal(arr(x.grad), [0.0, 0.0])


# ---- nn.functional: size_average, reduce, inplace ----------------------------------------------
LEGACY = [(None, False), (False, None), (False, False), (True, False), (False, True),
          (True, None), (None, True), (True, True)]


def _loss_inputs(name, rng):
    x = rng.standard_normal((4, 3))
    if name == "binary_cross_entropy":
        return 1 / (1 + np.exp(-x)), rng.uniform(0, 1, (4, 3))
    if name in ("nll_loss", "cross_entropy"):
        return x, np.array([0, 2, 1, 2])
    return x, rng.standard_normal((4, 3))


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits", "nll_loss",
                                  "cross_entropy"])
def test_loss_legacy_size_average_and_reduce_follow_torch(name, size_average, reduce, rng):
    """The deprecated arguments override reduction as in PyTorch (reduce=False: per-element
    losses), with PyTorch's deprecation warning; they used to be ignored (a mean)."""
    x, y = _loss_inputs(name, rng)
    xs = tg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ys = tg.tensor(y)
    yt = torch.tensor(y)
    kw = dict(size_average=size_average, reduce=reduce, reduction="sum")
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        got = getattr(F, name)(xs, ys, **kw)
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        want = getattr(tF, name)(xt, yt, **kw)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(arr(got), arr(want), rtol=1e-12, atol=1e-12)
    u = rng.standard_normal(tuple(want.shape))
    got.backward(tg.tensor(u))
    want.backward(torch.tensor(u))
    np.testing.assert_allclose(arr(xs.grad), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    deprecation = [str(w.message) for w in theirs if "size_average" in str(w.message)]
    assert deprecation
    assert [str(w.message) for w in ours if "size_average" in str(w.message)] == \
        deprecation[:1]
    assert all(w.category is UserWarning for w in ours if "size_average" in str(w.message))


def test_loss_without_legacy_arguments_does_not_warn(rng):
    x, y = _loss_inputs("mse_loss", rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(tg.tensor(x), tg.tensor(y), reduction="none")


def test_relu_inplace_overwrites_a_non_leaf_and_differentiates_like_torch(rng):
    x = rng.standard_normal(6)
    xs = tg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    hs, ht = xs * 2.0, xt * 2.0
    rs, rt = F.relu(hs, inplace=True), tF.relu(ht, inplace=True)
    assert rs is hs and rt is ht
    assert rs.grad_fn.name() == type(rt.grad_fn).__name__ == "ReluBackward0"
    np.testing.assert_array_equal(arr(hs), ht.detach().numpy())
    (rs * rs).sum().backward()
    (rt * rt).sum().backward()
    np.testing.assert_allclose(arr(xs.grad), xt.grad.numpy(), rtol=1e-12)


def test_relu_inplace_on_plain_tensor_and_under_no_grad():
    a = np.array([-1.0, 0.5, -0.0, 2.0])
    t = tg.tensor(a)
    v = t._version
    assert F.relu(t, inplace=True) is t
    np.testing.assert_array_equal(arr(t), np.maximum(a, 0))
    assert t._version == v + 1
    w = tg.tensor(a, requires_grad=True)
    with tg.no_grad():
        F.relu(w, inplace=True)
    np.testing.assert_array_equal(arr(w), np.maximum(a, 0))


def test_relu_inplace_follows_torchs_errors():
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.relu(tg.tensor([1.0, -1.0], requires_grad=True), inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        tF.relu(torch.tensor([1.0, -1.0], requires_grad=True), inplace=True)
    # a value saved for backward overwritten in place: PyTorch's error at backward
    x = tg.tensor([1.0, -1.0, 2.0], requires_grad=True)
    h = x * 1.0
    p = h * h                          # saves h
    F.relu(h, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        p.sum().backward()
    xt = torch.tensor([1.0, -1.0, 2.0], requires_grad=True)
    ht = xt * 1.0
    pt = ht * ht
    tF.relu(ht, inplace=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        pt.sum().backward()


# ---- the record buffer: no silent copy on append ----------------------------------------------
def _count_buffer_copies(monkeypatch):
    """Count appends after which the tape's record buffer is another object: append's
    BufferError fallback (a live view of the buffer) replaces it; a plain append extends
    it in place."""
    copies = []
    real = T.Tape.append

    def append(self, *args, **kwargs):
        before = self.buf
        gid = real(self, *args, **kwargs)
        if self.buf is not before and len(before):
            copies.append(len(before))
        return gid
    monkeypatch.setattr(T.Tape, "append", append)
    return copies


def test_hessian_appends_without_copying_the_record_buffer(monkeypatch):
    copies = _count_buffer_copies(monkeypatch)
    f = lambda x: (x.sin() * x ** 3 + (2.0 ** x) * x.tanh()).sum()    # noqa: E731
    h = func.hessian(f)(tg.tensor(np.array([0.3, -0.7, 1.1])))
    ft = lambda x: (x.sin() * x ** 3 + (2.0 ** x) * x.tanh()).sum()   # noqa: E731
    ht = torch.func.hessian(ft)(torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64))
    np.testing.assert_allclose(arr(h), ht.numpy(), rtol=1e-10, atol=1e-12)
    assert copies == []


def test_a_stray_view_of_the_records_is_not_copied_silently():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    y = x * 2.0
    tp = T.current()
    view = tp.records()                # kept: the buffer cannot grow in place
    before = tp.buffer_copies
    with pytest.warns(RuntimeWarning, match="view of this thread's tape records"):
        z = (y.tanh() * y).sum()
    assert tp.buffer_copies == before + 1
    del view
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = z * 1.0                    # no live view now: no copy, no warning
    z.backward()
    want = np.tanh(1.0 * np.array([1.0, -2.0]))
    np.testing.assert_allclose(arr(x.grad), 2 * (want + (1 - want ** 2) * np.array([1.0, -2.0])),
                               rtol=1e-6)


# ---- grad_fn name registry under threads ------------------------------------------------------
class _SlowNames(dict):
    """_NAME_IDS that gives up the GIL after a miss, so that another thread registering the
    same name runs in the window between the lookup and the registration."""

    def get(self, key, default=None):
        v = dict.get(self, key, default)
        if v is None:
            time.sleep(0.0005)
        return v


def test_name_registry_is_thread_safe():
    names = [f"DefectTestBackward{uuid.uuid4().hex}" for _ in range(20)]
    real = T._NAME_IDS
    slow = _SlowNames(real)
    results = []
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        results.append([T.name_id(n) for n in names])
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    T._NAME_IDS = slow
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        T._NAME_IDS = real
        real.update(slow)
        sys.setswitchinterval(old_interval)
    assert len(results) == 8
    assert all(r == results[0] for r in results), "threads got different ids for one name"
    assert len(set(results[0])) == len(names)
    assert [T.NAMES[i] for i in results[0]] == names
    assert len(T.NAMES) == len(set(T.NAMES)), "a name was registered twice"
    assert all(T.NAMES[i] == n for n, i in T._NAME_IDS.items())
    assert len(T._NAME_IDS) == len(T.NAMES)


# ---- the compiled-program cache is bounded -----------------------------------------------------
def test_compile_keeps_a_bounded_lru_of_programs_and_warns_once():
    limit = replay.cache_size_limit
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return (x.tanh() * x).sum()
    cf = tg.compile(fn)
    progs = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 2 * limit + 1):
            v = np.linspace(-1, 1, n)
            x = tg.tensor(v, requires_grad=True)
            out = cf(x)
            out.backward()
            np.testing.assert_allclose(arr(out), (np.tanh(v) * v).sum(), rtol=1e-12)
            np.testing.assert_allclose(arr(x.grad), np.tanh(v) + v * (1 - np.tanh(v) ** 2),
                                       rtol=1e-12)
            progs.extend(weakref.ref(e[0]) for e in cf.programs.values() if e[0] is not None)
            assert len(cf.programs) == min(n, limit)
    too_often = [w for w in caught if "cache_size_limit" in str(w.message)]
    assert len(too_often) == 1 and too_often[0].category is RuntimeWarning
    gc.collect()
    assert len({id(r()) for r in progs if r() is not None}) == limit
    # least recently used goes first: the newest shapes replay, the oldest record again
    n_calls = len(calls)
    cf(tg.tensor(np.ones(2 * limit), requires_grad=True))
    assert len(calls) == n_calls
    cf(tg.tensor(np.ones(1), requires_grad=True))
    assert len(calls) == n_calls + 1
    assert len(cf.programs) == limit


def test_value_and_grad_of_a_compiled_function_keeps_its_plans_bounded():
    limit = replay.cache_size_limit
    cf = tg.compile(lambda x: (x * x).sum())
    vg = func.value_and_grad(cf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for n in range(1, 2 * limit + 1):
            v = np.arange(n, dtype=np.float64)
            for _ in range(2):
                val, g = vg(tg.tensor(v))
                np.testing.assert_allclose(arr(g), 2 * v)
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, replay.Program)
             and any(o is e[0] for e in cf.programs.values())]
    assert len(cf.programs) == limit
    plans = [c.cell_contents for c in vg.__closure__
             if isinstance(c.cell_contents, dict)]
    assert plans and all(len(p) <= limit for p in plans)
    assert len(alive) == limit


def test_compile_cache_limit_is_settable(monkeypatch):
    monkeypatch.setattr(replay, "cache_size_limit", 2)
    cf = tg.compile(lambda x: x.sum())
    with pytest.warns(RuntimeWarning, match="cache_size_limit"):
        for n in (1, 2, 3, 4):
            assert arr(cf(tg.tensor(np.ones(n)))) == n
    assert len(cf.programs) == 2


def test_assigning_data_of_another_dtype_records_the_new_value():
    # the tape's cached INPUT record of the old value was reused: garbage gradients
    x = tg.tensor([1.0, 1.0, 1.0], requires_grad=True)
    (x * 2).sum()
    x.data = np.ones(3)                       # float64 now
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0, 3.0])


def test_deepcopy_of_a_tensor_copies_data_flag_and_grad_not_the_tape():
    import copy
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    y = copy.deepcopy(x)
    assert y is not x and y.requires_grad and y.grad is not x.grad
    np.testing.assert_array_equal(y.grad.numpy(), [2.0, 4.0])
    y.data[0] = 7.0
    assert x.data[0] == 1.0
    assert y._snaptape is None and y._tape is None
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(x * 2)
