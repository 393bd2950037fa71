"""A cold cache: interpreted kernels give the compiled results while a warm-up process
compiles, the stubs hand over to the compiled kernels stage by stage, and a failed warm-up
leaves the process compiling for itself (tapegrad/kernels/tiers.py, tapegrad/warmup.py)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import kernels as K
from tapegrad import warmup
from tapegrad.kernels import tiers


def _workloads(dt):
    """Gradients of one run of each path the entry points serve, as numpy arrays."""
    g = np.random.default_rng(5)
    tg.manual_seed(5)               # Linear's initial weights
    out = []
    # eager: a Linear layer (w.t(), transposed operands), a bias, a loss, movement, reductions
    x = tg.tensor(g.standard_normal((16, 40)), dtype=dt)
    lin = tg.nn.Linear(40, 30).to(dt)
    h = tg.nn.functional.relu(lin(x))
    w2 = tg.tensor(g.standard_normal((30, 20)), dtype=dt, requires_grad=True)
    y = h @ w2
    loss = tg.nn.functional.cross_entropy(y, tg.arange(16) % 20) + y.t().tanh().mean() \
        + y.reshape(320)[:50].exp().sum() + y.erf().sum()
    loss.backward()
    out += [lin.weight.grad, lin.bias.grad, w2.grad]
    # a scalar chain and a second derivative
    s = tg.tensor([0.3], dtype=dt, requires_grad=True)
    v = s
    for _ in range(20):
        v = (v * 1.01 + 0.1).tanh()
    gs, = tg.autograd.grad(v.sum(), s, create_graph=True)
    gs.sum().backward()
    out += [gs, s.grad]
    # replay: value_and_grad of a compiled function, its node's backward, forward mode
    a = tg.tensor(g.standard_normal((12, 70)), dtype=dt, requires_grad=True)
    b = tg.tensor(g.standard_normal((70, 9)), dtype=dt)
    fc = tg.compile(lambda a, b: ((a @ b).sin() * 1.5).sum())
    val, ga = tg.func.value_and_grad(fc)(a, b)
    fc(a, b).backward()
    _, tan = tg.func.jvp(lambda a: (a * a).tanh().sum(), (a,), (tg.ones_like(a),))
    out += [val, ga, a.grad, tan]
    return [np.asarray(t.detach().numpy() if isinstance(t, tg.Tensor) else t, np.float64)
            for t in out]


@pytest.mark.parametrize("dt", [tg.float32, tg.float64])
def test_interpreted_kernels_give_the_compiled_gradients(monkeypatch, dt):
    compiled = _workloads(dt)
    calls = {}
    for name in tiers.ENTRIES:
        fn = tiers._interpreted(name)
        assert not hasattr(fn, "signatures")        # plain Python, not a Numba dispatcher

        def counted(*args, _fn=fn, _name=name):
            calls[_name] = calls.get(_name, 0) + 1
            return _fn(*args)
        monkeypatch.setattr(K, name, counted)
    interpreted = _workloads(dt)
    assert {"sweep", "grad_offsets", "forward", "value_and_grad", "program_reverse",
            "tangent", "vjp_values", "unary_values"} <= set(calls)
    tol = dict(rtol=1e-5, atol=1e-6) if dt == tg.float32 else dict(rtol=1e-12, atol=1e-13)
    for c, i in zip(compiled, interpreted):
        np.testing.assert_allclose(i, c, **tol)


def test_the_python_gemm_is_blas_gemm_on_every_transpose_and_address_form():
    _gemm = tiers._interpreted("sweep").__globals__["_gemm"]
    assert _gemm.__name__ == "_numpy_gemm"
    blas = sys.modules["tapegrad._interpreted_kernels.blas"]
    g = np.random.default_rng(0)
    m, n, k = 3, 4, 5
    for ta in (blas._NO_TRANS, blas._TRANS):
        for tb in (blas._NO_TRANS, blas._TRANS):
            xa = g.standard_normal((k, m) if ta == blas._TRANS else (m, k))
            yb = g.standard_normal((n, k) if tb == blas._TRANS else (k, n))
            X = np.concatenate([[9.0], xa.ravel()])      # X as an array at offset 1
            Y = np.ascontiguousarray(yb.ravel())          # Y by its address
            Z = np.full(2 + m * n, np.nan)
            _gemm(0, ta, tb, m, n, k, X, 1, xa.shape[1], Y.ctypes.data, 0, yb.shape[1],
                  0.0, Z, 2, n)
            want = (xa.T if ta == blas._TRANS else xa) @ (yb.T if tb == blas._TRANS else yb)
            np.testing.assert_allclose(Z[2:].reshape(m, n), want, rtol=1e-14)
            assert np.isnan(Z[:2]).all()                  # nothing outside Z[zo:] written
            _gemm(0, ta, tb, m, n, k, X, 1, xa.shape[1], Y.ctypes.data, 0, yb.shape[1],
                  1.0, Z, 2, n)                            # beta = 1 accumulates
            np.testing.assert_allclose(Z[2:].reshape(m, n), 2 * want, rtol=1e-14)


class _Child:
    """Stands in for the warm-up process."""

    def __init__(self, code=None):
        self.pid, self.code = os.getpid(), code

    def poll(self):
        return self.code


@pytest.fixture
def cold(tmp_path, monkeypatch):
    """Stubs on every entry point and a warm-up state in an empty folder, as a process on a
    cold cache sees them once its warm-up has started (a live stand-in child)."""
    w = tiers.Warmup(str(tmp_path))
    w.started, w.child = True, _Child()
    monkeypatch.setattr(tiers, "_STATE", [w])
    for name in tiers.ENTRIES:
        monkeypatch.setattr(K, name, tiers._stub(K, name, getattr(K, name)))
    ran = []
    real = tiers._interpreted

    def interpreted(name):
        ran.append(name)
        return real(name)
    monkeypatch.setattr(tiers, "_interpreted", interpreted)
    return w, ran


def _mark(w, *stages):
    for s in stages:
        with open(w.path(s), "w") as f:
            f.write("compiled\n")


def _step():
    x = tg.tensor(np.linspace(-1, 1, 15).reshape(3, 5), dtype=tg.float32)
    w = tg.tensor(np.linspace(0, 1, 10).reshape(5, 2), dtype=tg.float32, requires_grad=True)
    (x @ w).tanh().sum().backward()
    return w.grad.numpy().copy()


def test_stubs_interpret_until_their_stage_is_marked_then_become_the_compiled_kernels(cold):
    w, ran = cold
    want = _step()
    assert "sweep" in ran and K.sweep.compiled is not None
    _mark(w, "eager32")
    ran.clear()
    np.testing.assert_allclose(_step(), want, rtol=1e-6)
    assert "sweep" not in ran            # float32 runs compiled now...
    assert hasattr(K.sweep, "compiled")  # ...but float64's stage is still to come
    _mark(w, "eager64")
    _step()
    assert K.sweep is K.reverse.sweep    # the stub stepped aside: no cost per call
    assert K.forward is not K.program.forward     # the replay stages are not marked yet


def test_a_call_too_large_to_interpret_waits_for_its_stage(cold, monkeypatch):
    w, ran = cold
    waited = []

    def wait(stage):          # the warm-up "finishes" while the call waits
        waited.append(stage)
        _mark(w, stage)
    monkeypatch.setattr(w, "wait", wait)
    monkeypatch.setattr(tiers, "INTERPRET_BUDGET", 1e-9)
    _step()
    assert waited == ["eager32"] and "sweep" not in ran


def test_a_warm_up_that_dies_leaves_the_process_compiling_for_itself(cold):
    w, ran = cold
    w.child = _Child(code=1)        # exited, no marker written
    with pytest.warns(RuntimeWarning, match="compiling the kernels in this process"):
        g = _step()
    assert "sweep" not in ran and w.failed
    np.testing.assert_allclose(g, _step(), rtol=1e-6)


def test_warmup_refuses_unknown_stages_and_a_second_warm_up(tmp_path, monkeypatch, capsys):
    assert warmup.main(["eager16"]) == 2
    assert "unknown stage(s) eager16" in capsys.readouterr().err
    w = tiers.Warmup(str(tmp_path))
    monkeypatch.setattr(tiers, "_STATE", [w])
    with open(w.path("lock"), "w") as f:
        f.write(str(os.getpid()))           # a live holder
    assert warmup.main(["eager32"]) == 0
    assert "another warm-up" in capsys.readouterr().out
    assert not w.ready("eager32")


COLD = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numpy as np
    import tapegrad as tg
    from tapegrad import kernels as K
    from tapegrad.kernels import tiers
    x = tg.tensor(np.linspace(-1, 1, 15).reshape(3, 5))
    w = tg.tensor(np.linspace(0, 1, 10).reshape(5, 2), requires_grad=True)
    (x @ w).tanh().sum().backward()
    st = tiers.state()
    print(json.dumps({"grad": w.grad.tolist(), "stub": hasattr(K.sweep, "compiled"),
                      "child": st.child.pid if st.child else None,
                      "compiled": len(K.reverse.sweep.signatures)}))
""")


def test_a_first_backward_on_a_cold_cache_runs_interpreted_and_starts_the_warm_up(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), TAPEGRAD_BACKGROUND_COMPILE="1")
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True,
                         text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    try:
        assert got["stub"] and got["compiled"] == 0     # nothing compiled in this process
        assert got["child"] is not None
        x = np.linspace(-1, 1, 15).reshape(3, 5)
        w = np.linspace(0, 1, 10).reshape(5, 2)
        want = x.T @ (1 - np.tanh(x @ w) ** 2)
        np.testing.assert_allclose(got["grad"], want, rtol=1e-6)
    finally:
        if got["child"]:
            try:
                os.killpg(got["child"], signal.SIGKILL)   # its own session: the group
            except ProcessLookupError:
                pass
