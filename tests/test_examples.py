"""The programs in docs/examples run, reach what they set out to, and give PyTorch's numbers.

Each example's ``main(torch)`` takes the library as an argument; here it runs with tapegrad
and, where PyTorch is installed, with torch on the same numpy-made data, and the results
are compared to tight tolerances (float64 throughout; the libraries sum in different
orders, so bits may differ).
"""
import functools
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
from helpers import torch_or_skip

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
# With NUMBA_DISABLE_JIT=1 the sweeps run as Python loops over elements, about 50 times
# slower: the long fits then run a few steps only (parity still checked), and the checks
# that need the whole fit are skipped.
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
SLOW = "NUMBA_DISABLE_JIT=1: the whole fit takes a minute as pure Python; run with the JIT"


@functools.lru_cache(maxsize=None)
def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=None)
def run(name, library, **kwargs):
    lib = tg if library == "tapegrad" else torch_or_skip()
    return load(name).main(lib, verbose=False, **kwargs)


def close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol)


def test_every_example_is_listed_and_runs_as_a_script():
    listed = (EXAMPLES / "README.md").read_text()
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert len(scripts) == 11     # the autograd five, the GP fit, the nn four (test_examples_nn.py),
    #                               and data-parallel training (test_distributed.py)
    for name in scripts:
        assert f"({name})" in listed and f"python docs/examples/{name}" in listed
        source = (EXAMPLES / name).read_text()
        assert 'if __name__ == "__main__":' in source and "main(tapegrad)" in source


def _cubic_optimum():
    """Least-squares cubic fit of sin on the example's grid, and its mean squared error."""
    x, y = load("polynomial_fit").sine_data()
    V = np.vander(x, 4, increasing=True)
    coef = np.linalg.lstsq(V, y, rcond=None)[0]
    return coef, float(np.mean((V @ coef - y) ** 2))


# ---- (a) the polynomial, by autograd --------------------------------------------------------
POLY_STEPS = 40 if NO_JIT else 2000


def test_polynomial_fit_reaches_the_least_squares_cubic():
    if NO_JIT:
        pytest.skip(SLOW)
    res = run("polynomial_fit", "tapegrad", steps=POLY_STEPS)
    coef, best = _cubic_optimum()
    assert all(b <= a for a, b in zip(res["losses"], res["losses"][1:]))
    assert res["losses"][-1] < best * (1 + 1e-4)
    np.testing.assert_allclose(res["coef"], coef, atol=2e-3)


def test_polynomial_fit_matches_torch():
    ours = run("polynomial_fit", "tapegrad", steps=POLY_STEPS)
    theirs = run("polynomial_fit", "torch", steps=POLY_STEPS)
    close(ours["coef"], theirs["coef"])
    close(ours["losses"], theirs["losses"])


# ---- (b) the Legendre polynomial as a custom Function ---------------------------------------
def test_legendre_function_forward_backward_and_name():
    P3 = load("legendre_function").legendre_p3(tg)
    t = tg.tensor(np.linspace(-1.0, 1.0, 7), requires_grad=True)
    y = P3.apply(t)
    assert y.grad_fn.name() == "LegendrePolynomial3Backward"
    tn = t.detach().numpy()
    close(y.detach().numpy(), 0.5 * (5 * tn ** 3 - 3 * tn), 1e-15)
    y.sum().backward()
    close(t.grad.numpy(), 1.5 * (5 * tn ** 2 - 1), 1e-15)


def test_legendre_fit_reaches_the_best_cubic():
    if NO_JIT:
        pytest.skip(SLOW)
    res = run("legendre_function", "tapegrad", steps=POLY_STEPS)
    _, best = _cubic_optimum()        # a + b P3(c + d x) is a cubic: it cannot do better
    assert res["grad_fn"] == "LegendrePolynomial3Backward"
    assert all(b <= a for a, b in zip(res["losses"], res["losses"][1:]))
    assert best <= res["losses"][-1] < best * 1.001


def test_legendre_fit_matches_torch():
    ours = run("legendre_function", "tapegrad", steps=POLY_STEPS)
    theirs = run("legendre_function", "torch", steps=POLY_STEPS)
    assert ours["grad_fn"] == theirs["grad_fn"] == "LegendrePolynomial3Backward"
    close(ours["coef"], theirs["coef"])
    close(ours["losses"], theirs["losses"])


# ---- (c) the gradient penalty: a second derivative through autograd.grad -----------------------
GP_STEPS = 10 if NO_JIT else 200


def test_gradient_penalty_gradient_matches_central_differences():
    """The weights' gradient of the critic loss, penalty included (it differentiates
    through autograd.grad's create_graph result), against central differences."""
    ex = load("gradient_penalty")
    real, fake, mix, init = ex.make_problem(n=8, hidden=4)
    data = [tg.tensor(a) for a in (real, fake, mix)]

    def loss_at(values, grad=False):
        p = {k: tg.tensor(v, requires_grad=True) for k, v in values.items()}
        loss = ex.critic_loss(tg, p, *data, lam=10.0)[0]
        if grad:
            loss.backward()
            return {k: w.grad.numpy() for k, w in p.items()}
        return loss.item()

    analytic = loss_at(init, grad=True)
    h = 1e-6
    for name in ("W1", "b1", "w2"):
        numeric = np.zeros_like(init[name])
        for i in np.ndindex(init[name].shape):
            plus = {k: v.copy() for k, v in init.items()}
            minus = {k: v.copy() for k, v in init.items()}
            plus[name][i] += h
            minus[name][i] -= h
            numeric[i] = (loss_at(plus) - loss_at(minus)) / (2 * h)
        np.testing.assert_allclose(analytic[name], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_gradient_penalty_pulls_the_gradient_norm_to_one():
    if NO_JIT:
        pytest.skip(SLOW)
    history = run("gradient_penalty", "tapegrad", steps=GP_STEPS)["history"]
    penalties = [h[1] for h in history]
    assert penalties[-1] < penalties[0] / 10
    assert abs(history[-1][2] - 1) < 0.15 < abs(history[0][2] - 1)


def test_gradient_penalty_matches_torch():
    ours = run("gradient_penalty", "tapegrad", steps=GP_STEPS)
    theirs = run("gradient_penalty", "torch", steps=GP_STEPS)
    close(ours["history"], theirs["history"], 1e-9)
    for k in ours["weights"]:
        close(ours["weights"][k], theirs["weights"][k], 1e-9)


# ---- (d) Newton's method with the Hessian from create_graph -----------------------------------
def test_newton_hessian_is_the_analytic_one():
    ex = load("newton_hessian")
    A, c, mu = ex.make_problem()
    v = np.random.default_rng(5).normal(size=A.shape[1])
    g, H = ex.gradient_and_hessian(tg, tg.tensor(A), tg.tensor(c), mu,
                                   tg.tensor(v, requires_grad=True))
    z = A @ v - c
    p = np.exp(z - z.max())
    p /= p.sum()
    close(g, A.T @ p + mu * v, 1e-13)
    close(H, A.T @ (np.diag(p) - np.outer(p, p)) @ A + mu * np.eye(A.shape[1]), 1e-13)


def test_newton_converges_quadratically():
    res = run("newton_hessian", "tapegrad")
    n = res["grad_norms"]
    assert n[5] < 1e-14
    for k in range(1, 4):                 # each error about the square of the last
        assert n[k + 1] < 10 * n[k] ** 2


def test_newton_matches_torch():
    ours = run("newton_hessian", "tapegrad")
    theirs = run("newton_hessian", "torch")
    close(ours["iterates"], theirs["iterates"], 1e-12)


# ---- (e) clipping hooks ----------------------------------------------------------------------
def test_clip_hook_clips_every_step_and_equals_clipping_by_hand():
    ex = load("clip_hook")
    res = run("clip_hook", "tapegrad", limit=0.5)
    assert max(res["largest"]) <= 0.5
    assert res["largest"][:10] == [0.5] * 10              # clipping was active
    # the same SGD in numpy, clipping the gradients explicitly
    X, y = ex.make_problem()
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(100):
        r = X @ w + b - y
        gw, gb = np.clip(2 * X.T @ r / len(y), -0.5, 0.5), np.clip(2 * r.mean(), -0.5, 0.5)
        w, b = w - 0.1 * gw, b - 0.1 * gb
    close(res["w"], w, 1e-12)
    close(res["b"], b, 1e-12)
    V = np.column_stack([X, np.ones(len(y))])
    best = np.linalg.lstsq(V, y, rcond=None)[0]
    np.testing.assert_allclose(res["w"] + [res["b"]], best, atol=0.05)
    unclipped = run("clip_hook", "tapegrad", clip=False)
    assert max(unclipped["largest"]) > 5      # without the hook the gradients are large


def test_clip_hook_matches_torch():
    ours = run("clip_hook", "tapegrad", limit=0.5)
    theirs = run("clip_hook", "torch", limit=0.5)
    close(ours["w"], theirs["w"])
    close(ours["losses"], theirs["losses"])
    close(ours["largest"], theirs["largest"])


def test_sine_data_is_the_documented_grid():
    x, y = load("polynomial_fit").sine_data()
    assert x[0] == -math.pi and x[-1] == math.pi and len(x) == 1000
    np.testing.assert_array_equal(y, np.sin(x))


# ---- (f) Gaussian-process hyper-parameters by L-BFGS-B on value_and_grad -------------------------
def test_gp_fit_converges_to_the_optimum():
    pytest.importorskip("scipy")
    from scipy.optimize import minimize
    ex = load("gp_hyperparameters")
    res = run("gp_hyperparameters", "tapegrad")
    assert res["result"].success
    assert res["nlml"] < res["start"] - 30       # 46.4 at the start, 12.27 at the optimum
    # the gradient vanishes there (checked in numpy, central differences of the likelihood)
    x, y = ex.make_data()
    d2 = (x[:, None] - x[None, :]) ** 2

    def nlml(th):
        K = np.exp(th[1]) * np.exp(-0.5 * d2 * np.exp(-2 * th[0])) + np.exp(th[2]) * np.eye(len(x))
        L = np.linalg.cholesky(K)
        a = np.linalg.solve(L, y)
        return 0.5 * a @ a + np.log(np.diag(L)).sum() + 0.5 * len(x) * math.log(2 * math.pi)
    assert nlml(res["theta"]) == pytest.approx(res["nlml"], rel=1e-12)
    h = 1e-6
    fd = [(nlml(res["theta"] + h * e) - nlml(res["theta"] - h * e)) / (2 * h) for e in np.eye(3)]
    assert np.abs(fd).max() < 1e-3
    # SciPy alone (its finite-difference gradient, a tighter tolerance) finds the same optimum
    alone = minimize(nlml, np.zeros(3), method="L-BFGS-B", options=dict(ftol=1e-14, gtol=1e-9))
    np.testing.assert_allclose(res["theta"], alone.x, atol=2e-3)
    assert res["nlml"] == pytest.approx(alone.fun, abs=1e-6)
    # and the tapegrad gradients are the numpy likelihood's along the whole path
    vg = ex.value_and_grad(tg, lambda th: ex.neg_log_marginal_likelihood(
        tg, th, tg.tensor(d2), tg.tensor(y)))
    for th in (np.zeros(3), res["theta"], np.array([0.5, -1.0, -2.0])):
        v, g = vg(tg.tensor(th))
        fd = [(nlml(th + h * e) - nlml(th - h * e)) / (2 * h) for e in np.eye(3)]
        assert v.item() == pytest.approx(nlml(th), rel=1e-12)
        np.testing.assert_allclose(g.numpy(), fd, rtol=1e-6, atol=1e-7)


def test_gp_fit_matches_torch():
    pytest.importorskip("scipy")
    ours = run("gp_hyperparameters", "tapegrad")
    theirs = run("gp_hyperparameters", "torch")
    close(ours["theta"], theirs["theta"], 1e-8)
    close(ours["nlml"], theirs["nlml"], 1e-10)
    close(ours["mean"], theirs["mean"], 1e-8)
