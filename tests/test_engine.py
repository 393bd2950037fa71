"""The engine's contract: autograd semantics, one compiled sweep, bounded memory, errors."""
import collections
import contextlib
import os
import sys
import threading

import numba
import numpy as np
import pytest

import tapegrad as tg
import tapegrad.nn.functional as F
from tapegrad import autograd as ag
from tapegrad.kernels import blas
from tapegrad import kernels as S
from tapegrad.tape import current

from helpers import assert_steady, in_threads


# ---- the tutorial, checked by hand --------------------------------------------------------
def test_tutorial_one_layer_network_by_hand():
    x = tg.ones(5)
    y = tg.zeros(3)
    w = tg.tensor(np.arange(15).reshape(5, 3) / 20.0, dtype=tg.float32, requires_grad=True)
    b = tg.tensor([0.1, -0.2, 0.3], requires_grad=True)
    z = tg.matmul(x, w) + b
    loss = F.binary_cross_entropy_with_logits(z, y)
    assert z.grad_fn.name() == "AddBackward0"
    assert loss.grad_fn.name() == "BinaryCrossEntropyWithLogitsBackward0"
    assert "BinaryCrossEntropyWithLogitsBackward0 object at" in repr(loss.grad_fn)
    loss.backward()
    zs = np.arange(15).reshape(5, 3).sum(0) / 20.0 + np.array([0.1, -0.2, 0.3])
    expected_b = 1 / (1 + np.exp(-zs)) / 3          # d mean(bce(z, 0)) / dz = sigmoid(z) / 3
    np.testing.assert_allclose(b.grad.numpy(), expected_b, rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), np.tile(expected_b, (5, 1)), rtol=1e-6)
    assert w.grad.dtype == tg.float32


def test_tutorial_no_grad_and_detach():
    w = tg.randn(5, 3, requires_grad=True)
    x = tg.ones(5)
    assert (x @ w).requires_grad
    with tg.no_grad():
        assert not (x @ w).requires_grad
    z = x @ w
    zd = z.detach()
    assert not zd.requires_grad and zd.is_leaf
    assert np.shares_memory(zd.numpy(), z.data)


def test_tutorial_vector_jacobian_product_accumulates_and_resets():
    inp = tg.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    expected = 2 * (np.eye(4, 5) + 1)
    out.backward(tg.ones_like(out), retain_graph=True)
    np.testing.assert_array_equal(inp.grad.numpy(), expected)
    out.backward(tg.ones_like(out), retain_graph=True)
    np.testing.assert_array_equal(inp.grad.numpy(), 2 * expected)
    inp.grad.zero_()
    out.backward(tg.ones_like(out), retain_graph=True)
    np.testing.assert_array_equal(inp.grad.numpy(), expected)


def test_grad_fn_next_functions_reach_leaves_through_accumulate_grad():
    w = tg.randn(3, requires_grad=True)
    c = tg.randn(3)
    y = (w * c).sum()
    (mul, _), = y.grad_fn.next_functions
    assert mul.name() == "MulBackward0"
    (acc, _), (const, _) = mul.next_functions
    assert isinstance(acc, ag.AccumulateGrad) and acc.variable is w
    assert const is None
    assert w.grad_fn is None and w.is_leaf and not y.is_leaf


# ---- backward semantics ----------------------------------------------------------------------
def test_leaf_gradients_accumulate_across_backward_calls():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, 4 + 3])


def test_shared_subexpression_gradients_add_up():
    x = tg.tensor(2.0, requires_grad=True)
    y = tg.tensor(3.0, requires_grad=True)
    h = x * y
    z = h * x + h          # z = x^2 y + x y
    z.backward()
    assert x.grad.item() == pytest.approx(2 * 2 * 3 + 3)
    assert y.grad.item() == pytest.approx(4 + 2)


def test_non_leaf_grad_is_none_with_warning_unless_retained():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    k = x * 4
    k.retain_grad()
    (h.sum() + (k * k).sum()).backward()
    with pytest.warns(UserWarning, match="not a leaf"):
        assert h.grad is None
    np.testing.assert_allclose(k.grad.numpy(), 2 * 4 * np.array([1.0, 2.0]))


def test_autograd_grad_leaves_dot_grad_alone():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    y = (h ** 2).sum()
    gx, gh = tg.autograd.grad(y, [x, h])
    np.testing.assert_allclose(gx.numpy(), 8 * x.data)
    np.testing.assert_allclose(gh.numpy(), 2 * h.data)
    assert x.grad is None


def test_autograd_grad_allow_unused():
    x = tg.tensor([1.0], requires_grad=True)
    u = tg.tensor([1.0], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not have been used"):
        tg.autograd.grad(y, [x, u], retain_graph=True)
    gx, gu = tg.autograd.grad(y, [x, u], allow_unused=True)
    assert gu is None and gx.item() == 2


def test_backward_with_gradient_is_a_vjp():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x ** 3
    v = tg.tensor([1.0, 0.5, -1.0])
    y.backward(v)
    np.testing.assert_allclose(x.grad.numpy(), v.data * 3 * x.data ** 2)


def test_float64_and_mixed_dtype_promotion():
    a = tg.tensor([1.0, 2.0], requires_grad=True)                     # float32
    b = tg.tensor(np.array([3.0, 4.0]), requires_grad=True)           # float64
    y = a * b
    assert y.dtype == tg.float64
    y.sum().backward()
    assert a.grad.dtype == tg.float32 and b.grad.dtype == tg.float64
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(b.grad.numpy(), [1.0, 2.0])
    s = tg.tensor(np.float64(2.0))                                    # 0-d float64
    assert (a * s).dtype == tg.float32                                # like PyTorch


def test_set_default_dtype():
    tg.set_default_dtype(tg.float64)
    assert tg.tensor([1.5]).dtype == tg.float64 and tg.randn(2).dtype == tg.float64
    tg.set_default_dtype(tg.float32)
    assert tg.tensor([1.5]).dtype == tg.float32


# ---- one compiled call ------------------------------------------------------------------------------
def _chain(v, n):
    for _ in range(n):
        v = tg.tanh(v * 1.01 + 0.1)
    return v.sum()


def test_backward_of_3000_op_chain_is_one_compiled_call(monkeypatch):
    _chain(tg.randn(16, requires_grad=True), 2).backward()   # compiled (or loaded) first,
    v = tg.randn(16, requires_grad=True)                    # so no compiling is counted
    loss = _chain(v, 1000)
    assert len(current()) >= 3000
    calls = []
    real = S.sweep
    monkeypatch.setattr(S, "sweep", lambda *a: calls.append(1) or real(*a))
    python_calls, c_calls, lines = [], [], []

    def prof(frame, event, arg):
        if event == "call":
            python_calls.append(frame.f_code.co_name)
        elif event == "c_call":       # builtins and C methods (ndarray.reshape, np.empty...)
            c_calls.append(getattr(arg, "__qualname__", repr(arg)))

    def trace(frame, event, arg):
        # the profiler does not see numpy's ufuncs or array operators (they are not builtin
        # functions); a Python loop that ran them per record would still run lines per record
        if event == "line":
            lines.append(frame.f_code.co_name)
        return trace
    sys.setprofile(prof)
    sys.settrace(trace)
    try:
        loss.backward()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    assert len(calls) == 1
    assert np.isfinite(v.grad.numpy()).all()
    if numba.config.DISABLE_JIT:
        return      # the sweep itself is Python here: its helpers run per record
    # Python and C work during backward is a fixed handful of calls, not one per record
    assert len(python_calls) < 100, python_calls[:20]
    assert len(c_calls) < 100, collections.Counter(c_calls).most_common(5)
    assert len(lines) < 500, collections.Counter(lines).most_common(5)



# ---- eager matrix products above the inline size: BLAS from the sweep on numpy's arrays ----
EAGER_MM = [((40, 300), (300, 50)), ((300,), (300, 60)), ((70, 300), (300,)),
            ((20000,), (20000,))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sa,sb", EAGER_MM, ids=[f"{a}@{b}" for a, b in EAGER_MM])
def test_eager_large_matmul_gradients_with_and_without_compiled_blas(sa, sb, dtype,
                                                                     monkeypatch):
    """A large eager product keeps its operands by reference; the sweep's BLAS call reads
    them there (addresses in the record). Without BLAS, numpy runs the VJP from Python.
    Both give the gradients numpy gives, and both accumulate over two backwards."""
    rng = np.random.default_rng(9)
    a0, b0 = rng.standard_normal(sa), rng.standard_normal(sb)
    z = a0 @ b0                                       # loss = sum(z ** 2) / 2: dz = z
    ga = z * b0 if a0.ndim == b0.ndim == 1 else (
        np.multiply.outer(z, b0) if b0.ndim == 1 else z @ b0.T)
    gb = z * a0 if a0.ndim == b0.ndim == 1 else (
        np.multiply.outer(a0, z) if a0.ndim == 1 else a0.T @ (z if z.ndim > 1 else z[:, None]))
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=2e-4, atol=2e-3)
    for gemm in (blas.GEMM, np.zeros(2, np.int64)):
        monkeypatch.setattr(tg.autograd.engine, "GEMM", gemm)
        x = tg.tensor(a0, dtype=getattr(tg, dtype), requires_grad=True)
        y = tg.tensor(b0, dtype=getattr(tg, dtype), requires_grad=True)
        loss = ((x @ y) ** 2 * 0.5).sum()
        kept = [a for pair in current().pyrefs.values() for a in pair]
        assert np.shares_memory(kept[0], x.data) and np.shares_memory(kept[1], y.data)
        loss.backward(retain_graph=True)
        loss.backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * ga.reshape(sa), **tol)
        np.testing.assert_allclose(y.grad.numpy(), 2 * gb.reshape(sb), **tol)


@pytest.mark.parametrize("blas_on", [True, False])
def test_eager_large_square_of_one_matrix(blas_on, monkeypatch):
    """x @ x: both VJPs land in one gradient region (the first writes, the second adds)."""
    if not blas_on:
        monkeypatch.setattr(tg.autograd.engine, "GEMM", np.zeros(2, np.int64))
    m = np.random.default_rng(12).standard_normal((60, 60)) / 8
    x = tg.tensor(m, dtype=tg.float64, requires_grad=True)
    ((x @ x) ** 2 * 0.5).sum().backward()
    z = m @ m
    np.testing.assert_allclose(x.grad.numpy(), z @ m.T + m.T @ z, rtol=1e-10)


@pytest.mark.parametrize("blas_on", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("retain", [True, False])
@pytest.mark.parametrize("flip", ["a", "b", "ab"])
def test_eager_large_matmul_of_transposed_views(flip, retain, dtype, blas_on, monkeypatch):
    """x.t() @ w, x @ w.t() (Linear's product) and both: the sweep's BLAS call reads the
    transposed operands where they are, with no Python VJP; gradients as numpy's reach
    the viewed tensors and the views."""
    from tapegrad.autograd import engine
    if not blas_on:
        monkeypatch.setattr(engine, "GEMM", np.zeros(2, np.int64))
    rng = np.random.default_rng(13)
    m, k, n = 40, 70, 30
    a0 = rng.standard_normal((k, m) if "a" in flip else (m, k))
    b0 = rng.standard_normal((n, k) if "b" in flip else (k, n))
    dt = getattr(tg, dtype)
    base_a = tg.tensor(a0, dtype=dt, requires_grad=True)
    base_b = tg.tensor(b0, dtype=dt, requires_grad=True)
    x = base_a.t() if "a" in flip else base_a
    y = base_b.t() if "b" in flip else base_b
    assert (not x.data.flags.c_contiguous) == ("a" in flip)
    if retain:      # (then y's own gradient is read: w's may not skip y's TRANSPOSE record)
        x.retain_grad()
        y.retain_grad()
    python_vjps = []
    real = engine._matmul_vjp
    monkeypatch.setattr(engine, "_matmul_vjp", lambda *a: python_vjps.append(1) or real(*a))
    ((x @ y) ** 2 * 0.5).sum().backward()
    xa, ya = x.data.astype(np.float64), y.data.astype(np.float64)
    z = xa @ ya
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=2e-4, atol=2e-3)
    if retain:
        np.testing.assert_allclose(x.grad.numpy(), z @ ya.T, **tol)
        np.testing.assert_allclose(y.grad.numpy(), xa.T @ z, **tol)
    np.testing.assert_allclose(base_a.grad.numpy(), (z @ ya.T).T if "a" in flip
                               else z @ ya.T, **tol)
    np.testing.assert_allclose(base_b.grad.numpy(), (xa.T @ z).T if "b" in flip
                               else xa.T @ z, **tol)
    assert len(python_vjps) == (0 if blas_on and not BLAS_SWITCHED_OFF else 1)


def test_a_transposed_operands_own_gradient_is_whole(monkeypatch):
    """w's gradient may skip the TRANSPOSE record of w.t() (the sweep writes it into w
    directly), but whoever reads w.t()'s own gradient gets all of it: autograd.grad on
    it, a hook on it, anomaly mode; and a second consumer of w.t() still reaches w."""
    rng = np.random.default_rng(14)
    x = tg.tensor(rng.standard_normal((40, 70)))
    w0 = rng.standard_normal((30, 70))
    z = x.data @ w0.T

    def graph():
        w = tg.tensor(w0, requires_grad=True)
        wt = w.t()
        return w, wt, ((x @ wt) ** 2 * 0.5).sum() + (wt * 3.0).sum()
    want_wt = x.data.T @ z + 3.0
    w, wt, loss = graph()
    (g,) = tg.autograd.grad(loss, wt)
    np.testing.assert_allclose(g.numpy(), want_wt, rtol=1e-10)
    w, wt, loss = graph()
    seen = []
    wt.register_hook(lambda g: seen.append(g.numpy().copy()))
    loss.backward()
    np.testing.assert_allclose(seen[0], want_wt, rtol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), want_wt.T, rtol=1e-10)
    for anomaly in (False, True):
        w, wt, loss = graph()
        with tg.autograd.detect_anomaly(check_nan=True) if anomaly else contextlib.nullcontext():
            loss.backward()
        np.testing.assert_allclose(w.grad.numpy(), want_wt.T, rtol=1e-10)


def test_a_leafs_transpose_is_a_view_that_shares_its_versions():
    """w.t() of a leaf is a view of w, as in PyTorch: an in-place change of w (an optimizer
    step under no_grad) before backward is the in-place error, not a gradient at the new
    values, in the compiled sweep and under create_graph; an in-place op on the view
    raises under grad mode and writes through to w under no_grad."""
    rng = np.random.default_rng(15)
    x = tg.tensor(rng.standard_normal((40, 70)))
    w = tg.tensor(rng.standard_normal((30, 70)), requires_grad=True)
    wt = w.t()
    assert np.shares_memory(wt.data, w.data) and wt.grad_fn.name() == "TBackward0"
    for create_graph in (False, True):
        loss = ((x @ w.t()) ** 2).sum()
        with tg.no_grad():
            w.mul_(2)
        with pytest.raises(RuntimeError, match=r"modified by an inplace operation: "
                           r"\[tapegrad.float64 \[70, 30\]\], which is output 0 of "
                           r"TBackward0, is at version \d+"):
            tg.autograd.grad(loss, w, create_graph=create_graph)
    with pytest.raises(RuntimeError, match="view of a tensor that requires grad"):
        w.t().add_(1.0)
    before, version = w.data.copy(), w._version
    with tg.no_grad():
        w.t().add_(1.0)
    np.testing.assert_array_equal(w.data, before + 1.0)
    assert w._version > version
    loss = ((x @ w.t()) ** 2).sum()          # a fresh graph after the change is fine
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * (x.data @ w.data.T).T @ x.data, rtol=1e-10)


def test_leaves_gradients_handed_over_without_copies_stay_their_own():
    """When the leaves' gradients fill a third of the sweep's buffer or more (a network's
    weights), .grad is the buffer's region itself; the next backward gets other buffers, so a .grad
    kept from an earlier step never changes, and accumulation without zero_grad adds."""
    rng = np.random.default_rng(16)
    model = tg.nn.Sequential(tg.nn.Linear(400, 200), tg.nn.Tanh(),
                             tg.nn.Linear(200, 10)).double()
    x = tg.tensor(rng.standard_normal((8, 400)))
    W0, b0, W1, b1 = (p.data for p in model.parameters())

    def want():
        h = np.tanh(x.data @ W0.T + b0)
        g = 2 * (h @ W1.T + b1) / 80
        gh = (g @ W1) * (1 - h ** 2)
        return [gh.T @ x.data, gh.sum(0), g.T @ h, g.sum(0)]
    big = tg.zeros(400_000, dtype=tg.float64, requires_grad=True)   # 4 regions > 8x the net
    (big * 2.0 * 3.0 + 1.0).sum().backward()   # leaves the tape's buffers large...
    (model(x) ** 2).mean().backward()   # ...which this backward lets go (it copies)
    assert model[0].weight.grad.data.base is None
    kept = []
    hooked = tg.zeros(3, requires_grad=True)       # a hook on another leaf, for steps 1-2
    seen = []
    for step in range(3):
        model.zero_grad(set_to_none=True)
        hooked.grad = None
        if step == 1:
            hooked.register_hook(lambda g: seen.append(g) or g * 2)
        loss = (model(x) ** 2).mean() + (hooked * 1.0).sum()
        loss.backward()
        if step:
            np.testing.assert_array_equal(hooked.grad.numpy(), [2.0] * 3)
        grads = [p.grad for p in model.parameters()]
        assert grads[0].data.base is not None        # a region of the sweep's buffer
        for g, w in zip(grads, want()):
            np.testing.assert_allclose(g.numpy(), w, rtol=1e-10, atol=1e-12)
        for old, w in kept:
            np.testing.assert_array_equal(old.numpy(), w)
        assert not any(np.shares_memory(g.data, old.data) for g in grads for old, _ in kept)
        kept.append((grads[0], grads[0].numpy().copy()))
        with tg.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
    first = [p.grad.numpy().copy() for p in model.parameters()]
    (model(x) ** 2).mean().backward()                # no zero_grad: adds
    for p, f, w in zip(model.parameters(), first, want()):
        np.testing.assert_allclose(p.grad.numpy(), f + w, rtol=1e-10, atol=1e-12)


def test_eager_large_matmul_odd_operands_take_numpy(monkeypatch):
    """Operands that BLAS cannot read in place (a strided view that is no transpose, mixed
    dtypes) and a modified operand: right gradients, and the in-place error as before."""
    rng = np.random.default_rng(10)
    m = rng.standard_normal((600, 40))
    w = tg.tensor(rng.standard_normal((300, 50)), dtype=tg.float64, requires_grad=True)
    xt = tg.tensor(m, dtype=tg.float64).t()[:, ::2]   # every other column: strided
    assert not (xt.data.flags.c_contiguous or xt.data.flags.f_contiguous)
    m = m[::2]
    ((xt @ w) ** 2 * 0.5).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), m @ (m.T @ w.data), rtol=1e-10)
    x32 = tg.tensor(m.T, dtype=tg.float32)
    w.grad = None
    ((x32 @ w) ** 2 * 0.5).sum().backward()           # float32 @ float64 -> float64
    np.testing.assert_allclose(w.grad.numpy(), m.astype(np.float32).astype(np.float64)
                               @ (x32.data.astype(np.float64) @ w.data), rtol=1e-10)
    for xa in (m.T[:, ::-1], m.T, np.ascontiguousarray(m.T)):   # numpy's VJP, then BLAS's
        x = tg.tensor(xa, dtype=tg.float64, requires_grad=True)
        loss = ((x @ w) ** 2).sum()
        with tg.no_grad():
            w.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


BLAS_SWITCHED_OFF = bool(numba.config.DISABLE_JIT or os.environ.get("TAPEGRAD_NO_BLAS"))


def test_numpy_blas_is_found_unless_switched_off():
    # without this, a numpy whose OpenBLAS moved would make every "with and without BLAS"
    # test run the numpy path twice, and the BLAS tests would skip
    if BLAS_SWITCHED_OFF:
        assert not blas.GEMM.any()
    else:
        assert blas.GEMM.all(), (
            f"cblas_sgemm/dgemm not found in numpy's bundled OpenBLAS "
            f"({blas._numpy_openblas()}); set TAPEGRAD_NO_BLAS=1 to run without it")


def test_mlp_backward_is_one_compiled_call(monkeypatch):
    """With BLAS called from the sweep, an eager MLP's backward never returns to Python."""
    if BLAS_SWITCHED_OFF:
        pytest.skip("BLAS switched off (NUMBA_DISABLE_JIT or TAPEGRAD_NO_BLAS)")
    rng = np.random.default_rng(11)
    x = tg.tensor(rng.standard_normal((32, 64)))
    ws = [tg.tensor(rng.standard_normal(s) / 8, requires_grad=True)
          for s in [(64, 256), (256, 256), (256, 10)]]
    h = x
    for w in ws:
        h = (h @ w).tanh()
    loss = (h ** 2).mean()
    calls = []
    real = S.sweep
    monkeypatch.setattr(S, "sweep", lambda *a: calls.append(1) or real(*a))
    loss.backward()
    assert len(calls) == 1
    assert all(np.isfinite(w.grad.numpy()).all() and np.abs(w.grad.numpy()).sum() > 0
               for w in ws)

# ---- memory lifecycle ---------------------------------------------------------------------------------
def test_training_loop_keeps_tape_empty_between_iterations():
    import gc
    gc.collect()    # graphs an earlier test's caught exceptions kept alive, in cycles
    tg.manual_seed(1)
    w = tg.randn(32, 16, requires_grad=True)
    x = tg.randn(64, 32)
    losses = []

    def step():
        nonlocal w
        loss = ((x @ w).tanh() ** 2).mean()
        loss.backward()
        with tg.no_grad():
            w -= 0.01 * w.grad
        w.grad.zero_()
        losses.append(loss)          # keeping losses must not keep their graphs
        assert len(current()) == 0
    # one graph saves 4 KB or more (64 x 16 float32 values, twice): a kept graph per step
    # would show; what may stay is the loss tensor itself
    assert_steady(step, per_step=1024)
    assert losses[-1].item() < losses[0].item()


def test_graphs_never_backwarded_are_reclaimed():
    w = tg.randn(16, requires_grad=True)
    sizes = []

    def step():
        out = _chain(w, 300)         # ~900 records, never backwarded, then dropped
        sizes.append(current().nbytes())
        del out
    for _ in range(40):
        step()
    assert max(sizes) < 4 * sizes[3]
    # ~900 records of 128 bytes and 16 floats each: kept, that is 170 KB a step
    assert_steady(step, warm=5, steps=40, per_step=2048)
    assert len(current()) == 0


def test_exception_mid_forward_leaves_nothing_behind():
    w = tg.randn(3, requires_grad=True)
    for _ in range(5):
        with pytest.raises(RuntimeError, match=r"shapes \(3,\) and \(4, 4\) cannot be multiplied"):
            h = w * 2
            h @ tg.randn(4, 4)     # shape error after recording one op
    del h
    assert len(current()) == 0


def test_live_tensor_from_old_graph_survives_compaction():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    keep = (x * 3).exp()             # recorded, kept alive, backwarded only at the end
    w = tg.randn(16, requires_grad=True)
    lengths = []
    for _ in range(30):              # enough records to force several collections
        _chain(w, 300).backward()
        junk = _chain(w, 200)        # never backwarded
        lengths.append(len(current()))
    del junk
    assert max(lengths) < 3 * 4096   # bounded: collections reclaim the dead graphs
    state = {}

    def step():
        _chain(w, 300).backward()
        state["junk"] = _chain(w, 200)
    assert_steady(step, warm=5, steps=30, per_step=2048)
    state.clear()
    keep.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * x.data), rtol=1e-6)


def test_using_a_freed_graph_again_raises_second_time():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.sum().backward()
    y = (h * 2).sum()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


# ---- errors --------------------------------------------------------------------------------------------
def _still_works():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    (a * a).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 4.0])


def test_second_backward_without_retain_graph_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    _still_works()


def test_retain_graph_allows_a_second_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.data), rtol=1e-6)


def test_implicit_gradient_needs_a_scalar():
    x = tg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    _still_works()


def test_backward_on_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.ones(3).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.autograd.grad(tg.ones(2).sum(), [tg.ones(2)])


def test_gradient_of_wrong_shape():
    x = tg.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"Mismatch in shape.*\[2\].*\[3\]"):
        y.backward(tg.ones(2))
    _still_works()


def test_broadcast_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"\(2, 3\) and \(4,\)"):
        tg.ones(2, 3, requires_grad=True) + tg.ones(4)


def test_matmul_error_names_both_shapes():
    with pytest.raises(RuntimeError, match=r"\(2, 3\) and \(4, 5\)"):
        tg.ones(2, 3) @ tg.ones(4, 5)
    with pytest.raises(RuntimeError, match="at least 1D"):
        tg.tensor(2.0) @ tg.ones(2)


def test_in_place_change_of_saved_value_raises():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*ExpBackward0"):
        h.sum().backward()
    _still_works()


def test_in_place_op_not_needing_the_old_value_is_fine():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x + 1                         # add saves nothing
    h.mul_(3)
    assert h.grad_fn.name() == "MulBackward0" and h._version == 1
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_in_place_through_detached_alias_is_detected():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x.sigmoid()
    h.detach().zero_()
    with pytest.raises(RuntimeError, match="inplace"):
        h.sum().backward()


def test_in_place_on_leaf_requiring_grad_raises_but_works_under_no_grad():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        w -= 1
    with tg.no_grad():
        w -= 0.5 * tg.ones(2)
        w.mul_(2)
    np.testing.assert_allclose(w.numpy() if not w.requires_grad else w.data, [1.0, 3.0])


def test_optimizer_step_after_backward_changes_next_gradient():
    w = tg.tensor([1.0], requires_grad=True)
    for expected in (2.0, 1.6, 1.28):
        loss = (w * w).sum()
        loss.backward()
        assert w.grad.item() == pytest.approx(expected)
        with tg.no_grad():
            w -= 0.1 * w.grad
        w.grad = None


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        tg.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf variables"):
        (tg.ones(2, requires_grad=True) * 2).requires_grad = False


def test_too_many_dimensions_is_a_clear_error():
    x = tg.ones(*([1] * 7), requires_grad=True)
    with pytest.raises(RuntimeError, match="up to 6 dimensions"):
        x * 2
    _still_works()


# ---- grad mode and threads -------------------------------------------------------------------------------
def test_no_grad_as_decorator_and_set_grad_enabled():
    w = tg.ones(2, requires_grad=True)

    @tg.no_grad()
    def f():
        return w * 2
    assert not f().requires_grad and tg.is_grad_enabled()
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            assert (w * 2).requires_grad
    assert tg.is_grad_enabled()


def test_grad_mode_is_thread_local():
    seen = {}
    stop = threading.Event()

    def worker():
        seen["worker_start"] = tg.is_grad_enabled()
        stop.wait(5)
        seen["worker_end"] = tg.is_grad_enabled()
    t = threading.Thread(target=worker)
    with tg.no_grad():
        t.start()
        while "worker_start" not in seen:
            pass
        assert not tg.is_grad_enabled()
    stop.set()
    t.join()
    assert seen == {"worker_start": True, "worker_end": True}


def test_threads_have_their_own_tapes():
    results = {}

    def worker(i):
        x = tg.tensor(np.full(4, float(i + 1)), requires_grad=True)
        for _ in range(50):
            loss = _chain(x, 100)
            loss.backward()
        results[i] = (x.grad.numpy().copy(), current())   # the tape itself: ids of dead
        # objects can be reused, so keep each thread's tape alive to compare them
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        x = tg.tensor(np.full(4, float(i + 1)), requires_grad=True)
        for _ in range(50):
            _chain(x, 100).backward()
        np.testing.assert_allclose(results[i][0], x.grad.numpy(), rtol=1e-12)
    assert len({id(r[1]) for r in results.values()}) == 3



def test_threads_backward_through_large_products_at_once():
    """The sweep releases the GIL and calls OpenBLAS from several threads at once (eager
    products read in place, replayed ones from each thread's own buffers)."""
    rng = np.random.default_rng(13)
    w0 = rng.standard_normal((64, 96)) / 8
    f = tg.compile(lambda x, w: ((x @ w).tanh() ** 2).sum())
    bad = []

    def work(seed):
        r = np.random.default_rng(seed)
        for k in range(30):
            xv = r.standard_normal((40, 64))
            w = tg.tensor(w0, dtype=tg.float64, requires_grad=True)
            x = tg.tensor(xv, dtype=tg.float64)
            out = f(x, w) if k % 2 else ((x @ w).tanh() ** 2).sum()
            out.backward()
            t = np.tanh(xv @ w0)
            if not np.allclose(w.grad.numpy(), xv.T @ (2 * t * (1 - t * t)), rtol=1e-10):
                bad.append((seed, k))
    in_threads(work, 4)
    assert bad == []

# ---- small API facts ---------------------------------------------------------------------------------------
def test_repr_like_pytorch():
    assert repr(tg.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    y = tg.tensor([1.0, 2.0], requires_grad=True) * 2
    assert repr(y) == "tensor([2., 4.], grad_fn=<MulBackward0>)"
    assert repr(tg.tensor([0.5, 1.25])) == "tensor([0.5000, 1.2500])"
    assert "dtype=tapegrad.float64" in repr(tg.tensor(np.array([1.0])))


def test_from_numpy_shares_memory_and_clone_does_not():
    a = np.zeros(3)
    t = tg.from_numpy(a)
    a[0] = 5
    assert t[0].item() == 5
    c = t.clone()
    a[1] = 7
    assert c[1].item() == 0


def test_manual_seed_is_reproducible():
    tg.manual_seed(7)
    a = tg.randn(4).numpy().copy()
    tg.manual_seed(7)
    np.testing.assert_array_equal(a, tg.randn(4).numpy())


def test_tape_listing_is_readable():
    x = tg.ones(2, requires_grad=True)
    y = x * x + 1
    text = tg.tape_listing()
    assert "= mul(%0, %0)" in text and "add_scalar" in text and "<MulBackward0>" in text
    records, nbytes = tg.tape_size()
    assert records == 3 and nbytes > 0
    del y


# ---- large records take a vectorised path: it must agree with the element-by-element one -----
_UNARY_BIG = {
    "exp": lambda x: x.exp(), "log": lambda x: x.abs().log(), "sqrt": lambda x: x.abs().sqrt(),
    "abs": lambda x: x.abs(), "sin": lambda x: x.sin(), "cos": lambda x: x.cos(),
    "tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
    "mulc": lambda x: x * 2.5, "addc": lambda x: x + 1.5, "rsub": lambda x: 2 - x,
    "neg": lambda x: -x, "powc": lambda x: x.abs() ** 1.5, "rpowc": lambda x: 2.0 ** x,
    "rdivc": lambda x: 3.0 / x, "clamp": lambda x: x.clamp(-0.5, 0.5),
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y, "pow": lambda x, y: x.abs() ** y, "maximum": tg.maximum,
    "minimum": tg.minimum, "where": lambda x, y: tg.where(x > 0, x, y),
}


@pytest.mark.parametrize("name", sorted(_UNARY_BIG))
def test_vectorised_and_scalar_paths_agree(name):
    f = _UNARY_BIG[name]
    nargs = f.__code__.co_argcount if hasattr(f, "__code__") else 2
    rng = np.random.default_rng(5)
    arrays = [rng.uniform(0.2, 2.0, 300) * rng.choice([-1, 1], 300) for _ in range(nargs)]

    def grads(chunks):
        out = []
        for sl in chunks:
            xs = [tg.tensor(a[sl], requires_grad=True) for a in arrays]
            f(*xs).sum().backward()
            out.append([x.grad.numpy() for x in xs])
        return [np.concatenate([o[k] for o in out]) for k in range(nargs)]
    big = grads([slice(0, 300)])                                   # n >= VEC: slice path
    small = grads([slice(i, i + 30) for i in range(0, 300, 30)])   # n < VEC: offset path
    for b, s_ in zip(big, small):
        np.testing.assert_allclose(b, s_, rtol=1e-12, atol=1e-15)



@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scalar_chains_agree_with_the_elementwise_loops(dtype):
    """Runs of one-element unary records pass gradients in a register (sweep's scalar-chain
    path); the same ops on two elements take the general loops. Every unary op, a record
    no gradient reaches inside the chain, and a second use of a value must agree: bit for
    bit in float64; in float32 within an ulp or two per op, as the chains compute in
    float32 and the loops round once from float64."""
    unary = [f for _, f in sorted(_UNARY_BIG.items()) if f.__code__.co_argcount == 1]

    def f(x):
        h = x
        for k, u in enumerate(unary):
            h = u(h).tanh() * 0.2 + 0.3     # keeps every input in (0.1, 0.5): no dead zone
            if k == 3:
                h.exp()                   # recorded, but nothing flows back through it
            if k == 6:      # two unary branches of one value, joined by a binary record:
                h = h.sin() * 0.5 + h.cos() * 0.5     # chains that do not feed each other
        return h.sum()
    v = np.array([0.7, -0.3])
    one = tg.tensor(v[:1], dtype=getattr(tg, dtype), requires_grad=True)
    two = tg.tensor(v, dtype=getattr(tg, dtype), requires_grad=True)
    f(one).backward()
    f(two).backward()
    assert np.isfinite(one.grad.numpy()).all() and one.grad.item() != 0
    if dtype == "float64":
        np.testing.assert_array_equal(one.grad.numpy(), two.grad.numpy()[:1])
    else:
        np.testing.assert_allclose(one.grad.numpy(), two.grad.numpy()[:1], rtol=2e-6)

def test_bias_row_broadcast_gradient():
    rng = np.random.default_rng(6)
    h = tg.tensor(rng.standard_normal((40, 7)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(7), requires_grad=True)
    c = tg.tensor(rng.standard_normal((1, 7)), requires_grad=True)
    ((h + b) * (h - c) + b * h + (b + h) * 2.0).sum().backward()
    hv, bv, cv = h.data, b.data, c.data
    np.testing.assert_allclose(h.grad.numpy(), (hv - cv) + (hv + bv) + bv + 2, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), ((hv - cv) + hv + 2).sum(0), rtol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), -(hv + bv).sum(0, keepdims=True), rtol=1e-12)
    # only one side of x + row requiring grad, in either order
    k = tg.tensor(rng.standard_normal((40, 7)))
    b.grad = None
    ((k + b) * k + (b + k)).sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), (k.data + 1).sum(0), rtol=1e-12)
    h.grad = None
    ((h + bv) * 3.0 + (bv + h)).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), np.full((40, 7), 4.0))


def test_tape_size_counts_matmul_operands_kept_by_reference():
    w = tg.randn(256, 256, requires_grad=True)
    x = tg.randn(64, 256)
    y = (x @ w).sum()                      # a large product: operands kept, not copied
    records, nbytes = tg.tape_size()
    assert nbytes >= w.data.nbytes + x.data.nbytes
    kept = [a for pair in current().pyrefs.values() for a in pair]
    assert any(np.shares_memory(a, x.data) for a in kept)
    assert any(np.shares_memory(a, w.data) for a in kept)
    assert nbytes < w.data.nbytes + x.data.nbytes + 64 * 1024    # and not copied as well
    del y
