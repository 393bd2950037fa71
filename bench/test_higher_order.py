"""Second-order benchmarks (issue #11, "Speed"): W2's create_graph backward and W4's
Hessian-vector product, each system in its own benchmark (its own block), float32 and
float64, after checking its results against numpy float64 written by hand.

- **W2 create_graph backward** (tapegrad, PyTorch): ``autograd.grad(loss, v,
  create_graph=True)`` on W2's chain, on a graph recorded afresh before every round,
  untimed (as the backward phase of bench/conftest.py does). JAX has no separate
  create_graph backward to time: its second-order programs are traced and compiled
  whole, which the HVP below times.
- **W4 Hessian-vector product** (tapegrad, PyTorch, JAX): the whole HVP of W4's loss with
  respect to all six parameters along a fixed random direction ``v``. tapegrad and PyTorch:
  forward, ``g = grad(loss, params, create_graph=True)``, ``grad(sum(<g, v>), params)``.
  JAX: ``jax.jit`` of ``jax.jvp(jax.grad(f), (p,), (v,))[1]`` (forward over reverse), with
  the data and ``v`` passed as arguments rather than closed over, so that XLA cannot fold
  the products that depend on them alone into constants. JAX's float64 runs under
  ``jax.enable_x64(True)`` (a context around its setup and timing only, so the other JAX
  benchmarks in the process stay float32).

    python -m pytest bench/test_higher_order.py --benchmark-only \\
        --benchmark-columns=median,iqr,min,max,rounds      # one round, pytest's table
    python -m bench.test_higher_order --runs 5 --export --quiet 0.05   # rounds, Markdown

The second command runs the first in ``--runs`` fresh processes (rounds; the order of
the systems reversed every other round) and prints each system's median and the per-round
ratios tapegrad / peer of the same dtype. ``--export`` measures the committed tree
(``git archive HEAD``), not the working tree; ``--quiet`` keeps only rounds during which
other processes used less than that share of the cores (read from /proc/stat), waiting
for a quiet moment before each round and redoing a disturbed one.
"""
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bench import rounds, workloads as W

CG_ROUNDS = 30                 # as bench/conftest.py's backward phase of W2
DIRECTION_SEED = 1             # the HVP's direction v: standard normal, this seed
CG_SYSTEMS = ["tapegrad-f32", "tapegrad-f64", "torch-f32", "torch-f64"]
HVP_SYSTEMS = CG_SYSTEMS + ["jax-f32", "jax-f64"]
if os.environ.get("BENCH_HIGHER_ORDER_REVERSE"):    # set by main() on every other round
    CG_SYSTEMS, HVP_SYSTEMS = CG_SYSTEMS[::-1], HVP_SYSTEMS[::-1]
CG_GROUP, HVP_GROUP = "W2 create_graph backward", "W4 Hessian-vector product"
MODULE = {"tapegrad": "tapegrad", "torch": "torch", "jax": "jax"}


def _split(system):
    family, bits = system.split("-f")
    return family, f"float{bits}"


# ---- references: numpy float64, by hand ----
def chain_grads(wl):
    """(d loss / dv, d sum(d loss / dv) / dv) of a chain workload, float64 by hand.

    Each element runs its own chain y_k = tanh(mul * y_(k-1) + add), y_0 = v, loss =
    sum(y_N). With a_k = mul * (1 - y_k^2) and P_k = a_1 ... a_k, the gradient is P_N and
    its derivative is P_N * sum_k (-2 mul y_k P_(k-1)), since d a_k / dv = -2 mul y_k P_k."""
    steps, mul, add = wl.chain
    y = wl.data()[0]["v"].copy()
    p = np.ones_like(y)
    s = np.zeros_like(y)
    for _ in range(steps):
        y = np.tanh(y * mul + add)
        s += -2 * mul * y * p
        p = p * mul * (1 - y * y)
    return p, p * s


def direction(wl):
    """The fixed HVP direction: one standard normal array per parameter."""
    rng = np.random.default_rng(DIRECTION_SEED)
    return {k: rng.standard_normal(a.shape) for k, a in wl.data()[0].items()}


def mlp_hvp(wl, v):
    """(gradient, Hessian-vector product along v) of an MLP workload (tanh), float64 by
    hand: the tangent of every forward and backward line of workloads' numpy MLP."""
    assert wl.kind == "mlp" and wl.act == "tanh", wl.key
    p, c = wl.data()
    hs, hd = [c["x"]], [np.zeros_like(c["x"])]           # activations and their tangents
    for i in range(3):
        z = hs[i] @ p[f"W{i}"] + p[f"b{i}"]
        zd = hd[i] @ p[f"W{i}"] + hs[i] @ v[f"W{i}"] + v[f"b{i}"]
        if i < 2:
            z = np.tanh(z)
            zd = (1 - z * z) * zd
        hs.append(z)
        hd.append(zd)
    n = hs[-1].size
    g, gd = (hs[-1] - c["t"]) * (2 / n), hd[-1] * (2 / n)
    grads, hvp = {}, {}
    for i in (2, 1, 0):
        grads[f"W{i}"], hvp[f"W{i}"] = hs[i].T @ g, hd[i].T @ g + hs[i].T @ gd
        grads[f"b{i}"], hvp[f"b{i}"] = g.sum(0), gd.sum(0)
        if i:
            gh, ghd = g @ p[f"W{i}"].T, gd @ p[f"W{i}"].T + g @ v[f"W{i}"].T
            d = 1 - hs[i] * hs[i]
            g, gd = gh * d, ghd * d + gh * (-2 * hs[i] * hd[i])
    return {k: grads[k] for k in p}, {k: hvp[k] for k in p}      # in parameter order


def _same(got, ref, dtype, what, below_range=False):
    """Fail loudly unless `got` matches the float64 reference within workloads'
    tolerance for `dtype`; a check that zeros would pass is refused unless
    `below_range` says that is known and checked another way."""
    rtol, arel = W.TOLERANCE[dtype]
    tiny = float(np.finfo(dtype).tiny)
    got = np.asarray(got, dtype=np.float64)
    atol = max(arel * float(np.max(np.abs(ref))), tiny)
    if not below_range and np.all(np.abs(ref) <= atol + rtol * np.abs(ref)):
        pytest.fail(f"{what}: the reference is below {dtype}'s range; this check cannot fail")
    if got.shape != ref.shape or not np.allclose(got, ref, rtol=rtol, atol=atol):
        err = np.max(np.abs(got - ref)) if got.shape == ref.shape else "shape"
        pytest.fail(f"{what} differs from numpy's float64 reference (largest error {err}, "
                    f"reference up to {np.max(np.abs(ref)):.3g}, rtol {rtol})")


# ---- systems ----
class Eager(W.TorchLike):
    """tapegrad and PyTorch, the same code (tapegrad follows torch.autograd's API)."""

    def __init__(self, wl, dtype, module, v=None):
        super().__init__(wl, dtype, module)
        dt = getattr(self.T, dtype)
        self.v = None if v is None else [self.T.tensor(v[k], dtype=dt) for k in self.p]
        self.kept = []

    def record(self):                          # untimed: a fresh forward graph
        self.kept.clear()                      # frees the previous round's graphs here
        return self.wl.loss(self.o, self.p, self.c)

    def create_graph_backward(self, loss):     # timed
        g = self.T.autograd.grad(loss, self.p["v"], create_graph=True)[0]
        self.kept.append(g)                    # released in record(), untimed
        return g

    def hvp_parts(self):
        grad = self.T.autograd.grad
        loss = self.wl.loss(self.o, self.p, self.c)
        gs = grad(loss, self.params, create_graph=True)
        dot = sum((g * u).sum() for g, u in zip(gs, self.v))
        return gs, grad(dot, self.params)

    def hvp(self):                             # timed
        return self.hvp_parts()[1]


class JaxHVP:
    """``jax.jit(jax.jvp(jax.grad(f)))``; `context()` must surround all use (x64)."""

    def __init__(self, wl, dtype, v):
        import jax
        import jax.numpy as jnp
        self.jax, self.dtype = jax, dtype
        if not jax.config.jax_compilation_cache_dir:    # as workloads._jax_fns does
            jax.config.update("jax_compilation_cache_dir", os.path.join(
                tempfile.gettempdir(), "tapegrad-bench-jax-cache"))
        with self.context():
            o = W._array_ops(jnp, jax.nn.relu)
            p, c = wl.data()
            cast = lambda d: {k: jnp.asarray(a, dtype) for k, a in d.items()}  # noqa: E731
            self.p, self.c, self.v = cast(p), cast(c), cast(v)

            def both(p, c, v):
                return jax.jvp(jax.grad(lambda q: wl.loss(o, q, c)), (p,), (v,))
            self.both = jax.jit(both)
            self.fn = jax.jit(lambda p, c, v: both(p, c, v)[1])
            self.names = list(p)

    def context(self):
        return self.jax.enable_x64(self.dtype == "float64")

    def hvp_parts(self):
        g, hv = self.jax.block_until_ready(self.both(self.p, self.c, self.v))
        return [g[k] for k in self.names], [hv[k] for k in self.names]

    def hvp(self):                             # timed
        return self.jax.block_until_ready(self.fn(self.p, self.c, self.v))


def _values(ts):
    return [np.array(t.detach().numpy() if hasattr(t, "detach") else t, dtype=np.float64)
            for t in ts]


# ---- checks, run in setup before anything is timed ----
def _check_chain(system, wl, below_range=False):
    """The create_graph gradient of chain `wl` and, by differentiating it again, its
    derivative: both against chain_grads(). Returns the case."""
    family, dtype = _split(system)
    case = Eager(wl, dtype, family)
    g = case.create_graph_backward(case.record())
    if not g.requires_grad or g.grad_fn is None:
        pytest.fail(f"{system} {wl.key}: grad(create_graph=True) returned a gradient "
                    f"without a graph (requires_grad={g.requires_grad})")
    ref, ref2 = chain_grads(wl)
    _same(_values([g])[0], ref, dtype, f"{system} {wl.key} create_graph gradient",
          below_range)
    (g2,) = case.T.autograd.grad(g.sum(), case.p["v"])
    _same(_values([g2])[0], ref2, dtype, f"{system} {wl.key} derivative of the create_graph "
          "gradient", below_range)
    case.kept.clear()
    return case


def checked_cg(system):
    """W2's create_graph case for `system`, checked. In float32 W2's gradient (about
    1e-207) is below the range, so, as workloads.verify does, the chain's first
    PREFIX steps are checked in float32 too, where both derivatives are normal."""
    wl = W.WORKLOADS["W2"]
    f32 = _split(system)[1] == "float32"
    case = _check_chain(system, wl, below_range=f32)
    if f32:
        _check_chain(system, W.prefix_of("W2"))
    return case


def checked_hvp(system):
    """W4's HVP case for `system`, with its first gradient and its HVP checked."""
    family, dtype = _split(system)
    wl = W.WORKLOADS["W4"]
    v = direction(wl)
    case = JaxHVP(wl, dtype, v) if family == "jax" else Eager(wl, dtype, family, v)
    ref_g, ref_hv = mlp_hvp(wl, v)
    names = list(ref_g)
    with case.context() if family == "jax" else contextlib.nullcontext():
        gs, hv = case.hvp_parts()
        timed = case.hvp()
    if family == "jax":
        timed = [timed[k] for k in names]
    for k, g, h, t in zip(names, _values(gs), _values(hv), _values(timed)):
        _same(g, ref_g[k], dtype, f"{system} W4 first gradient of {k}")
        _same(h, ref_hv[k], dtype, f"{system} W4 HVP, {k} block")
        _same(t, ref_hv[k], dtype, f"{system} W4 HVP (the timed call), {k} block")
    return case


# ---- benchmarks ----
@pytest.mark.benchmark(group=CG_GROUP)
@pytest.mark.parametrize("system", CG_SYSTEMS)
def test_w2_create_graph_backward(benchmark, system):
    pytest.importorskip(MODULE[_split(system)[0]])
    case = checked_cg(system)
    benchmark.pedantic(case.create_graph_backward, setup=lambda: ((case.record(),), {}),
                       rounds=CG_ROUNDS, warmup_rounds=1)
    case.kept.clear()


@pytest.mark.benchmark(group=HVP_GROUP, min_rounds=50)
@pytest.mark.parametrize("system", HVP_SYSTEMS)
def test_w4_hvp(benchmark, system):
    family = _split(system)[0]
    pytest.importorskip(MODULE[family])
    case = checked_hvp(system)                 # ran once: compiled and warm
    with case.context() if family == "jax" else contextlib.nullcontext():
        case.hvp()
        benchmark(case.hvp)


def test_references_agree_with_torch():
    """The hand-written references themselves, against PyTorch float64 (no timing)."""
    torch = pytest.importorskip("torch")
    wl = W.WORKLOADS["W4"]
    v = direction(wl)
    case = Eager(wl, "float64", "torch", v)
    gs, hv = case.hvp_parts()
    ref_g, ref_hv = mlp_hvp(wl, v)
    for k, g, h in zip(ref_g, _values(gs), _values(hv)):
        np.testing.assert_allclose(g, ref_g[k], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h, ref_hv[k], rtol=1e-12, atol=1e-14)
    wl = W.WORKLOADS["W2"]
    v = torch.tensor(wl.data()[0]["v"], requires_grad=True)
    y = v
    steps, mul, add = wl.chain
    for _ in range(steps):
        y = torch.tanh(y * mul + add)
    (g,) = torch.autograd.grad(y.sum(), v, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), v)
    ref, ref2 = chain_grads(wl)
    np.testing.assert_allclose(g.detach().numpy(), ref, rtol=1e-10)
    np.testing.assert_allclose(g2.numpy(), ref2, rtol=1e-10)


def test_summary_takes_ratios_within_each_run():
    def run(*rows):
        return {"benchmarks": [{"group": HVP_GROUP, "param": s, "stats": dict(
            median=m, iqr=0.0, rounds=5)} for s, m in rows]}
    runs = [run(("tapegrad-f32", 2.0), ("torch-f32", 1.0), ("tapegrad-f64", 3.0)),
            run(("tapegrad-f32", 6.0), ("torch-f32", 2.0), ("tapegrad-f64", 3.0))]
    rows = {r[0]: r for r in summarize(runs)[HVP_GROUP]}
    assert rows["torch-f32"][4] == (2.5, 2.0, 3.0)      # per run 2/1 and 6/2, not 4/1.5
    assert rows["tapegrad-f32"][4] is None and rows["tapegrad-f32"][1] == 4.0
    assert "| torch-f32 | 1500 | 1000-2000 | 0 | 5 | 2.50 (2.00-3.00) |" in markdown(
        {HVP_GROUP: list(rows.values())}, 2)


# ---- rounds, as Markdown: python -m bench.test_higher_order ----
def _run_once(root, out, reverse, extra=()):
    env = dict(os.environ)
    env.pop("BENCH_HIGHER_ORDER_REVERSE", None)
    if reverse:
        env["BENCH_HIGHER_ORDER_REVERSE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "bench/test_higher_order.py", "-q", "-p",
           "no:cacheprovider", *extra]
    if out:
        cmd += ["--benchmark-only", f"--benchmark-json={out}"]
    subprocess.run(cmd, cwd=root, env=env, check=True)


def _ms(s):
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def summarize(runs):
    """{group: [(system, median of medians, (lo, hi) of medians, median IQR, (median,
    lo, hi) of the per-run ratios tapegrad / system of the same dtype or None, median
    rounds)]} from pytest-benchmark's JSON outputs, one per run (round)."""
    per = {}                                   # (group, system) -> [stats per run]
    for run in runs:
        for b in run["benchmarks"]:
            per.setdefault((b["group"], b["param"]), []).append(b["stats"])
    out = {}
    for group in (CG_GROUP, HVP_GROUP):
        rows = []
        order = ["tapegrad-f32", "torch-f32", "jax-f32", "tapegrad-f64", "torch-f64",
                 "jax-f64"]
        for system in sorted((s for g, s in per if g == group), key=order.index):
            st = per[group, system]
            meds = [s["median"] for s in st]
            ratio = None
            family, dtype = _split(system)
            mine = per.get((group, f"tapegrad-f{dtype[5:]}"))
            if family != "tapegrad" and mine and len(mine) == len(st):
                rs = [a["median"] / b["median"] for a, b in zip(mine, st)]
                ratio = (statistics.median(rs), min(rs), max(rs))
            rows.append((system, statistics.median(meds), (min(meds), max(meds)),
                         statistics.median(s["iqr"] for s in st), ratio,
                         int(statistics.median(s["rounds"] for s in st))))
        out[group] = rows
    return out


def markdown(summary, nruns):
    lines = []
    for group, rows in summary.items():
        lines += ["", f"**{group}**", "",
                  "| system | median ms | run medians, min-max ms | IQR ms (median over "
                  "runs) | timed calls per run | tapegrad / this, same dtype, per run: "
                  f"median (min-max), {nruns} runs |", "|---|---|---|---|---|---|"]
        for system, med, (lo, hi), iqr, ratio, n in rows:
            r = "" if ratio is None else f"{ratio[0]:.2f} ({ratio[1]:.2f}-{ratio[2]:.2f})"
            lines.append(f"| {system} | {_ms(med)} | {_ms(lo)}-{_ms(hi)} | {_ms(iqr)} | {n} "
                         f"| {r} |")
    return "\n".join(lines)


def main(argv=None):
    from bench import machine
    a = rounds.parser("python -m bench.test_higher_order", "W2 create_graph backward and W4 HVP, in rounds of fresh pytest-benchmark processes, as Markdown").parse_args(argv)
    machine.configure_threads()
    return rounds.main(a, "higher-order", "bench.test_higher_order", _run_once,
                       lambda runs: markdown(summarize(runs), len(runs)))


if __name__ == "__main__":
    sys.exit(main())
