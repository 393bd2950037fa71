"""GP benchmark (issue #16, "Speed"): a Gaussian process's negative log marginal likelihood
and its gradient in the three kernel hyper-parameters, n = 64 and n = 512 points, float64.

The loss, written once against the PyTorch API (and once for jax.numpy):

    K = s2 exp(-d2 / (2 l^2)) + n2 I,  L = cholesky(K),  alpha = L^-1 y
    loss = 0.5 |alpha|^2 + sum(log diag L) + (n / 2) log(2 pi)

with theta = (log l, log s2, log n2) the parameters and the squared distances d2 and the
targets y data. Systems, each its own benchmark (its own block, after conftest's pause):

- ``tapegrad``: eager, forward and ``loss.backward()``;
- ``compiled-vg``: ``tapegrad.func.value_and_grad(tapegrad.compile(f))``;
- ``compiled-backward``: ``tapegrad.compile(f)(theta).backward()``;
- ``torch``: eager, forward and ``loss.backward()``;
- ``jax``: ``jax.jit(jax.value_and_grad(f))`` under ``jax.enable_x64(True)`` (a context
  around its own setup and timing only), data passed as arguments.

Before timing, every system's loss and gradient are compared with numpy's, written by hand
(d loss / d theta_k = 0.5 tr((K^-1 - a a^T) dK / d theta_k), a = K^-1 y), to 1e-9.

    python -m pytest bench/test_gp.py --benchmark-only \\
        --benchmark-columns=median,iqr,min,max,rounds      # one round, pytest's table
    python -m bench.test_gp --runs 5 --export --quiet 0.05  # rounds, Markdown

The second command runs the first in ``--runs`` fresh processes (the order of the systems
reversed every other round) and prints each system's median and the per-round ratios of
the targets (bench/rounds.py, as bench/test_higher_order.py does).
"""
import functools
import math
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

SIZES = (64, 512)
SYSTEMS = ["tapegrad", "compiled-vg", "compiled-backward", "torch", "jax"]
if os.environ.get("BENCH_GP_REVERSE"):    # set by main() on every other round
    SYSTEMS = SYSTEMS[::-1]
THETA = np.log([0.8, 1.5, 0.05])
MODULE = {"tapegrad": "tapegrad", "compiled-vg": "tapegrad", "compiled-backward": "tapegrad",
          "torch": "torch", "jax": "jax"}


@functools.lru_cache(maxsize=None)
def data(n, seed=0):
    """(squared distances, targets) of n noisy samples of sin(2x) + x / 2 on [0, 5]."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 5.0, n))
    y = np.sin(2.0 * x) + 0.5 * x + 0.2 * rng.standard_normal(n)
    return (x[:, None] - x[None, :]) ** 2, y - y.mean()


def loss_torchlike(T, theta, d2, y):
    n = y.shape[0]
    K = T.exp(theta[1]) * T.exp(-0.5 * d2 * T.exp(-2.0 * theta[0])) + \
        T.exp(theta[2]) * T.eye(n, dtype=T.float64)
    L = T.linalg.cholesky(K)
    alpha = T.linalg.solve_triangular(L, y.unsqueeze(-1), upper=False)
    return 0.5 * (alpha * alpha).sum() + T.log(T.diagonal(L)).sum() + \
        0.5 * n * math.log(2.0 * math.pi)


def loss_jax(theta, d2, y):
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular
    n = y.shape[0]
    K = jnp.exp(theta[1]) * jnp.exp(-0.5 * d2 * jnp.exp(-2.0 * theta[0])) + \
        jnp.exp(theta[2]) * jnp.eye(n)
    L = jnp.linalg.cholesky(K)
    alpha = solve_triangular(L, y[:, None], lower=True)
    return 0.5 * jnp.sum(alpha * alpha) + jnp.sum(jnp.log(jnp.diag(L))) + \
        0.5 * n * math.log(2.0 * math.pi)


def reference(n, theta=THETA):
    """(loss, gradient) by hand in numpy float64."""
    d2, y = data(n)
    ell2, s2, n2 = np.exp(2 * theta[0]), np.exp(theta[1]), np.exp(theta[2])
    E = s2 * np.exp(-0.5 * d2 / ell2)
    K = E + n2 * np.eye(n)
    L = np.linalg.cholesky(K)
    alpha = np.linalg.solve(L, y)
    loss = 0.5 * alpha @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * math.log(2 * math.pi)
    Kinv = np.linalg.inv(K)
    a = Kinv @ y
    W = Kinv - np.outer(a, a)
    dK = [E * d2 / ell2, E, n2 * np.eye(n)]
    return loss, np.array([0.5 * np.sum(W * d) for d in dK])


class TorchLike:
    def __init__(self, module, n, how="eager"):
        T = self.T = __import__(module)
        d2, y = data(n)
        self.d2, self.y = T.tensor(d2), T.tensor(y)
        self.theta = T.tensor(THETA.copy(), requires_grad=True)
        f = functools.partial(self.f, T)
        self.how = how
        if how == "vg":
            self.vg = T.func.value_and_grad(T.compile(lambda th, d2, y: f(th, d2, y)))
        elif how == "backward":
            self.cf = T.compile(lambda th, d2, y: f(th, d2, y))

    @staticmethod
    def f(T, theta, d2, y):
        return loss_torchlike(T, theta, d2, y)

    def run(self):
        if self.how == "vg":
            return self.vg(self.theta, self.d2, self.y)
        self.theta.grad = None
        loss = (self.cf if self.how == "backward" else
                functools.partial(self.f, self.T))(self.theta, self.d2, self.y)
        loss.backward()
        return loss, self.theta.grad

    def result(self):
        loss, g = self.run()
        return float(loss.item()), np.array(g.detach().numpy(), np.float64)

    def context(self):
        import contextlib
        return contextlib.nullcontext()


class Jax:
    def __init__(self, n):
        import jax
        self.jax = jax
        with self.context():
            d2, y = data(n)
            self.args = (jax.numpy.asarray(THETA), jax.numpy.asarray(d2), jax.numpy.asarray(y))
            self.vg = jax.jit(jax.value_and_grad(loss_jax))
            self.run()        # compile outside the timed region

    def context(self):
        return self.jax.enable_x64(True)

    def run(self):
        return self.jax.block_until_ready(self.vg(*self.args))

    def result(self):
        with self.context():
            loss, g = self.run()
            return float(loss), np.array(g, np.float64)


def make(system, n):
    if system == "jax":
        return Jax(n)
    how = {"tapegrad": "eager", "compiled-vg": "vg", "compiled-backward": "backward",
           "torch": "eager"}[system]
    return TorchLike(MODULE[system], n, how)


def checked(system, n):
    """The system's case after checking its loss and gradient against numpy's (twice: a
    compiled function's first call records, the second replays)."""
    pytest.importorskip(MODULE[system])
    case = make(system, n)
    ref_loss, ref_grad = reference(n)
    for _ in range(2):
        loss, g = case.result()
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-9, err_msg=f"{system} n={n} loss")
        np.testing.assert_allclose(g, ref_grad, rtol=1e-9, atol=1e-9 * np.abs(ref_grad).max(),
                                   err_msg=f"{system} n={n} gradient")
    return case


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("n", SIZES)
def test_gp(benchmark, system, n):
    benchmark.group = f"GP log marginal likelihood n={n}"
    case = checked(system, n)
    with case.context():
        benchmark(case.run)


def test_reference_gradient_is_the_likelihoods():
    """The hand-written gradient is the loss's (central differences), so the checks above
    can fail."""
    h = 1e-6
    loss, g = reference(64)
    fd = [(reference(64, THETA + h * e)[0] - reference(64, THETA - h * e)[0]) / (2 * h)
          for e in np.eye(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    assert np.abs(g).min() > 1e-2          # not a vanishing gradient


# ---- rounds, as Markdown: python -m bench.test_gp ----
RATIOS = [("tapegrad", "torch"), ("compiled-vg", "torch"), ("compiled-vg", "jax"),
          ("compiled-backward", "jax"), ("tapegrad", "jax")]


def _run_once(root, out, reverse, extra=()):
    env = dict(os.environ)
    env.pop("BENCH_GP_REVERSE", None)
    if reverse:
        env["BENCH_GP_REVERSE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "bench/test_gp.py", "-q", "-p", "no:cacheprovider",
           "-k", "test_gp[", *extra]
    if out:
        cmd += ["--benchmark-only", f"--benchmark-json={out}"]
    subprocess.run(cmd, cwd=root, env=env, check=True)


def markdown(runs):
    per = {}
    for run in runs:
        for b in run["benchmarks"]:
            per.setdefault(b["group"], {}).setdefault(b["params"]["system"], []).append(
                b["stats"])
    lines = []

    def ms(x):
        return f"{x * 1e3:.3g}"
    for group in sorted(per, key=lambda g: int(g.rsplit("=", 1)[1])):
        rows = per[group]
        lines += ["", f"**{group}**, float64, loss and gradient per call", "",
                  "| system | median ms | run medians, min-max ms | IQR ms (median over runs) "
                  "| timed calls per run |", "|---|---|---|---|---|"]
        for system in [s for s in SYSTEMS if s in rows]:
            st = rows[system]
            meds = [x["median"] for x in st]
            lines.append(f"| {system} | {ms(statistics.median(meds))} | {ms(min(meds))}-"
                         f"{ms(max(meds))} | {ms(statistics.median(x['iqr'] for x in st))} | "
                         f"{int(statistics.median(x['rounds'] for x in st))} |")
        lines += ["", "| ratio (above 1: the first is slower) | per run: median (min-max) |",
                  "|---|---|"]
        for a, b in RATIOS:
            if a in rows and b in rows and len(rows[a]) == len(rows[b]):
                rs = [x["median"] / y["median"] for x, y in zip(rows[a], rows[b])]
                lines.append(f"| {a} / {b} | {statistics.median(rs):.2f} ({min(rs):.2f}-"
                             f"{max(rs):.2f}) |")
    return "\n".join(lines)


def interleaved(rounds=15, budget=0.25, sizes=SIZES):
    """One process, every system timed in short blocks taken in turn (0.2 s pause before
    each, the order reversed every other round): per round, each block's median call time;
    the ratios are taken between blocks of the same round, seconds apart, so load that
    comes and goes on a shared machine moves both sides of a ratio. Returns Markdown.

        python -c "from bench.test_gp import interleaved; print(interleaved())"
    """
    import time
    from bench import machine
    from bench.rounds import others
    machine.configure_threads()
    lines = []
    for n in sizes:
        cases = {s: checked(s, n) for s in SYSTEMS}
        calls = {}
        for s, c in cases.items():            # calls per block: about `budget` seconds
            with c.context():
                t = time.perf_counter()
                c.run()
                calls[s] = max(3, int(budget / max(time.perf_counter() - t, 1e-6)))
        per = {s: [] for s in SYSTEMS}
        load = []
        for r in range(rounds):
            load.append(others(0.2))
            for s in (SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]):
                time.sleep(0.2)
                c = cases[s]
                with c.context():
                    ts = []
                    for _ in range(calls[s]):
                        t = time.perf_counter()
                        c.run()
                        ts.append(time.perf_counter() - t)
                per[s].append(statistics.median(ts))
        lines += ["", f"**GP log marginal likelihood n={n}**, float64, {rounds} rounds of "
                  f"interleaved blocks (others' share of the cores before each round: median "
                  f"{statistics.median(load):.0%}, max {max(load):.0%})", "",
                  "| system | median of block medians, ms | min-max | calls per block |",
                  "|---|---|---|---|"]
        for s in SYSTEMS:
            m = per[s]
            lines.append(f"| {s} | {statistics.median(m) * 1e3:.3g} | {min(m) * 1e3:.3g}-"
                         f"{max(m) * 1e3:.3g} | {calls[s]} |")
        lines += ["", "| ratio (above 1: the first is slower) | per round: median (IQR) |",
                  "|---|---|"]
        for a, b in RATIOS:
            rs = sorted(x / y for x, y in zip(per[a], per[b]))
            q = statistics.quantiles(rs, n=4)
            lines.append(f"| {a} / {b} | {statistics.median(rs):.2f} ({q[0]:.2f}-{q[2]:.2f}) |")
    return "\n".join(lines)


def main(argv=None):
    from bench import machine, rounds
    a = rounds.parser("python -m bench.test_gp", "the GP benchmark in rounds of fresh "
                      "pytest-benchmark processes, as Markdown").parse_args(argv)
    machine.configure_threads()
    return rounds.main(a, "gp", "bench.test_gp", _run_once, markdown)


if __name__ == "__main__":
    sys.exit(main())
