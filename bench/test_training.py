"""Training benchmarks (issue #14, "Speed"): W7, the "Optimizing Model Parameters"
chapter's classifier step, and an Adam step alone on W4's parameters. Each system and
dtype is its own benchmark (its own block, with conftest's pause and thread settings),
after a check in setup that every system computes the same thing.

- **W7 classifier training step** (float32): ``nn.Sequential(nn.Flatten(), Linear(784,
  512), ReLU(), Linear(512, 512), ReLU(), Linear(512, 10))``, a batch of 64 28x28 inputs
  and class indices made by numpy (seed 0), ``nn.CrossEntropyLoss()``, ``optim.SGD(lr=
  1e-3)``. The timed step is ``loss = loss_fn(model(X), y); loss.backward(); opt.step();
  opt.zero_grad()``; the same batch every step. Systems: tapegrad eager, tapegrad compiled
  (``fc = tapegrad.compile(lambda X, y: loss_fn(model(X), y))``, then ``fc(X, y)`` in place
  of the forward: the same targets every step, so compile's class-index guard replays),
  PyTorch eager. Every model starts from PyTorch's initial weights (``torch.manual_seed(0)``),
  loaded with ``load_state_dict``. Checked in setup: two whole steps of each system (for
  compiled, the recording call and a replay) give PyTorch's losses, parameter gradients
  and updated parameters.
- **W4 Adam step** (float32, float64): ``opt.step()`` alone over W4's six parameters
  (64-256-256-10 weights and biases), with default Adam settings (lr 1e-3) and gradients
  set once beforehand (W4's own gradients at its initial parameters, constant across
  steps). Systems: tapegrad ``optim.Adam``; PyTorch's default ``optim.Adam(params)`` (on
  CPU torch resolves ``foreach=None`` to the single-tensor for-loop: see
  ``torch_default_impl()``), PyTorch with ``foreach=True`` and with ``foreach=False``.
  Checked in setup: three steps of every system against Adam written by hand in numpy
  float64.

    python -m pytest bench/test_training.py --benchmark-only \\
        --benchmark-columns=median,iqr,min,max,rounds      # one round, pytest's table
    python -m bench.test_training --runs 5 --export --quiet 0.05   # rounds, Markdown

The second command works as ``python -m bench.test_higher_order`` does (fresh processes,
order reversed every other round, ``--export`` measures ``git archive HEAD``, ``--quiet``
keeps only rounds the rest of the machine left alone) and prints the medians and the
per-round ratios tapegrad / peer of the same dtype (above 1: tapegrad slower).
"""
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest

from bench import workloads as W
from bench import rounds
from bench.test_higher_order import _ms, _same

SEED = 0
BATCH, CLASSES = 64, 10
SGD_LR = 1e-3
W7_GROUP, ADAM_GROUP = "W7 classifier training step", "W4 Adam step"
W7_SYSTEMS = ["tapegrad-eager-f32", "tapegrad-compiled-f32", "torch-eager-f32"]
ADAM_SYSTEMS = [f"{s}-f{b}" for b in (32, 64)
                for s in ("tapegrad", "torch-default", "torch-foreach", "torch-forloop")]
if os.environ.get("BENCH_TRAINING_REVERSE"):        # set by main() on every other round
    W7_SYSTEMS, ADAM_SYSTEMS = W7_SYSTEMS[::-1], ADAM_SYSTEMS[::-1]
ENV_REVERSE = "BENCH_TRAINING_REVERSE"


def _split(system):
    """'torch-foreach-f64' -> ('torch', 'foreach', 'float64'); variant '' if none."""
    parts = system.split("-")
    return parts[0], "-".join(parts[1:-1]), f"float{parts[-1][1:]}"


def _np(t):
    return np.array(t.detach().numpy(), dtype=np.float64)


# ---- W7: the chapter's classifier ----
def w7_data():
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((BATCH, 28, 28)).astype(np.float32),
            rng.integers(0, CLASSES, BATCH))


def _mlp(M):
    nn = M.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                         nn.ReLU(), nn.Linear(512, 10))


def torch_initial_state():
    """PyTorch's default initialisation of the W7 model under manual_seed(SEED)."""
    import torch
    torch.manual_seed(SEED)
    return _mlp(torch).state_dict()


class W7Case:
    def __init__(self, system):
        family, variant, _ = _split(system)
        M = self.M = __import__(family)
        self.model = _mlp(M)
        state = torch_initial_state()
        if family == "torch":
            self.model.load_state_dict(state)
        else:
            self.model.load_state_dict({k: M.tensor(v.numpy()) for k, v in state.items()})
        X, y = w7_data()
        self.X, self.y = M.tensor(X), M.tensor(y)
        self.loss_fn = M.nn.CrossEntropyLoss()
        self.opt = M.optim.SGD(self.model.parameters(), lr=SGD_LR)
        model, loss_fn = self.model, self.loss_fn
        if variant == "compiled":
            self.loss = M.compile(lambda X, y: loss_fn(model(X), y))
        else:
            self.loss = lambda X, y: loss_fn(model(X), y)

    def step(self):                            # timed
        loss = self.loss(self.X, self.y)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        return loss

    def checked_steps(self, n):
        """n steps as step() does them, with (loss, grads, update) of each."""
        out = []
        for _ in range(n):
            loss = self.loss(self.X, self.y)
            loss.backward()
            grads = {k: _np(p.grad) for k, p in self.model.named_parameters()}
            before = {k: _np(p) for k, p in self.model.named_parameters()}
            self.opt.step()
            self.opt.zero_grad()
            out.append((float(loss.item()), grads, {
                k: (_np(p) - before[k], before[k]) for k, p in self.model.named_parameters()}))
        return out


def checked_w7(system):
    """W7's case for `system`; its first two steps compared with PyTorch's."""
    pytest.importorskip("torch")               # the initial weights and the reference
    case = W7Case(system)
    got = case.checked_steps(2)
    ref = W7Case("torch-eager-f32").checked_steps(2)
    for i, ((loss, g, p), (rloss, rg, rp)) in enumerate(zip(got, ref)):
        np.testing.assert_allclose(loss, rloss, rtol=1e-5, err_msg=f"{system} step {i} loss")
        for k in rg:
            _same(g[k], rg[k], "float32", f"{system} step {i} gradient of {k}")
            # the update as stored: float32 rounds p - lr * g to p's spacing (1.9e-9 at
            # 0.03), coarse against updates of 1e-6, so that is the tolerance
            upd, before = p[k]
            ulp = np.spacing(np.abs(before).astype(np.float32)).astype(np.float64)
            if not np.all(np.abs(upd + SGD_LR * rg[k]) <= 1e-3 * SGD_LR * np.abs(rg[k])
                          + 2 * ulp):
                pytest.fail(f"{system} step {i}: the SGD update of {k} is not -lr * grad")
    return case


# ---- W4's parameters, an Adam step ----
def w4_params_and_grads():
    """W4's parameters and its gradients there, float64 (tapegrad float64 backward,
    checked against numpy's by bench/test_verify.py's W4 check)."""
    wl = W.WORKLOADS["W4"]
    case = W.TorchLike(wl, "float64", "tapegrad")
    case.run()
    return wl.data()[0], {k: _np(t.grad) for k, t in case.p.items()}


def adam_reference(p, g, steps, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Parameters after `steps` Adam steps with the constant gradients g, numpy float64."""
    out = {}
    for k in p:
        x, m, v = p[k].copy(), np.zeros_like(p[k]), np.zeros_like(p[k])
        for t in range(1, steps + 1):
            m = b1 * m + (1 - b1) * g[k]
            v = b2 * v + (1 - b2) * g[k] ** 2
            x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        out[k] = x
    return out


def torch_default_impl():
    """What torch.optim.Adam(params) runs on CPU parameters: 'foreach', 'fused' or
    'for-loop' (foreach=None and fused=None resolve through this helper)."""
    import torch
    from torch.optim.optimizer import _default_to_fused_or_foreach
    fused, foreach = _default_to_fused_or_foreach([torch.zeros(2, requires_grad=True)],
                                                  False, False)
    return "fused" if fused else "foreach" if foreach else "for-loop"


class AdamCase:
    def __init__(self, system):
        family, variant, dtype = _split(system)
        M = self.M = __import__(family)
        dt = getattr(M, dtype)
        p, g = w4_params_and_grads()
        self.names = list(p)
        self.params = [M.tensor(p[k], dtype=dt, requires_grad=True) for k in self.names]
        for t, k in zip(self.params, self.names):
            t.grad = M.tensor(g[k], dtype=dt)
        kw = {"foreach": {"foreach": True, "forloop": False}[variant]} if variant in (
            "foreach", "forloop") else {}
        self.opt = M.optim.Adam(self.params, **kw)
        self.step = self.opt.step              # timed

    def values(self):
        return {k: _np(t) for k, t in zip(self.names, self.params)}


def checked_adam(system, steps=3):
    """The Adam case for `system`, after `steps` steps compared with adam_reference."""
    dtype = _split(system)[2]
    case = AdamCase(system)
    p, g = w4_params_and_grads()
    start = case.values()                      # p rounded to dtype
    for _ in range(steps):
        case.step()
    ref = adam_reference(start, g, steps)
    for k, v in case.values().items():
        _same(v - start[k], ref[k] - start[k], dtype, f"{system} Adam update of {k} "
              f"after {steps} steps")
        if not np.array_equal(_np(case.params[case.names.index(k)].grad), g[k].astype(
                dtype).astype(np.float64)):
            pytest.fail(f"{system}: the step changed the gradient of {k}")
    return case


# ---- benchmarks ----
@pytest.mark.benchmark(group=W7_GROUP, min_rounds=20)
@pytest.mark.parametrize("system", W7_SYSTEMS)
def test_w7_training_step(benchmark, system):
    pytest.importorskip(_split(system)[0])
    case = checked_w7(system)                  # ran twice: recorded and replayed, warm
    case.step()
    benchmark(case.step)


@pytest.mark.benchmark(group=ADAM_GROUP, min_rounds=50)
@pytest.mark.parametrize("system", ADAM_SYSTEMS)
def test_w4_adam_step(benchmark, system):
    pytest.importorskip(_split(system)[0])
    case = checked_adam(system)                # ran: compiled and warm
    benchmark(case.step)


def test_torch_default_adam_on_cpu_is_reported():
    pytest.importorskip("torch")
    assert torch_default_impl() in ("foreach", "fused", "for-loop")


def test_adam_reference_agrees_with_torch():
    """The hand-written Adam against PyTorch's float64 for-loop Adam (no timing)."""
    torch = pytest.importorskip("torch")
    p, g = w4_params_and_grads()
    ts = [torch.tensor(p[k], requires_grad=True) for k in p]
    for t, k in zip(ts, p):
        t.grad = torch.tensor(g[k])
    opt = torch.optim.Adam(ts, foreach=False)
    for _ in range(3):
        opt.step()
    ref = adam_reference(p, g, 3)
    for t, k in zip(ts, p):
        np.testing.assert_allclose(t.detach().numpy(), ref[k], rtol=1e-12, atol=1e-15)


def test_summary_takes_ratios_within_each_run():
    def run(*rows):
        return {"benchmarks": [{"group": W7_GROUP, "param": s, "stats": dict(
            median=m, iqr=0.0, rounds=5)} for s, m in rows]}
    runs = [run(("tapegrad-eager-f32", 2.0), ("tapegrad-compiled-f32", 1.0),
                ("torch-eager-f32", 1.0)),
            run(("tapegrad-eager-f32", 6.0), ("tapegrad-compiled-f32", 1.0),
                ("torch-eager-f32", 2.0))]
    rows = {r[0]: r for r in summarize(runs)[W7_GROUP]}
    assert rows["torch-eager-f32"][4] == {"eager": (2.5, 2.0, 3.0),
                                          "compiled": (0.75, 0.5, 1.0)}
    assert rows["tapegrad-eager-f32"][4] == {} and rows["tapegrad-eager-f32"][1] == 4.0
    md = markdown({W7_GROUP: list(rows.values())}, 2)
    assert "| torch-eager-f32 | 1500 | 1000-2000 | 0 | 5 | 2.50 (2.00-3.00) | " \
           "0.75 (0.50-1.00) |" in md


# ---- rounds, as Markdown: python -m bench.test_training ----
def _run_once(root, out, reverse, extra=()):
    env = dict(os.environ)
    env.pop(ENV_REVERSE, None)
    if reverse:
        env[ENV_REVERSE] = "1"
    cmd = [sys.executable, "-m", "pytest", "bench/test_training.py", "-q", "-p",
           "no:cacheprovider", *extra]
    if out:
        cmd += ["--benchmark-only", f"--benchmark-json={out}"]
    subprocess.run(cmd, cwd=root, env=env, check=True)


ORDER = {W7_GROUP: ["tapegrad-eager-f32", "tapegrad-compiled-f32", "torch-eager-f32"],
         ADAM_GROUP: [f"{s}-f{b}" for b in (32, 64) for s in (
             "tapegrad", "torch-default", "torch-foreach", "torch-forloop")]}


def _mine(system):
    """The tapegrad systems' names as ratio columns: 'eager', 'compiled' or ''."""
    family, variant, _ = _split(system)
    return variant if family == "tapegrad" else None


def summarize(runs):
    """{group: [(system, median of medians, (lo, hi) of medians, median IQR, {tapegrad
    variant: (median, lo, hi) of the per-run ratios tapegrad variant / system, same
    dtype} (empty for tapegrad's rows), median rounds)]} from pytest-benchmark's JSON
    outputs, one per run (round)."""
    per = {}
    for run in runs:
        for b in run["benchmarks"]:
            per.setdefault((b["group"], b["param"]), []).append(b["stats"])
    out = {}
    for group, order in ORDER.items():
        rows = []
        present = [s for s in order if (group, s) in per]
        for system in present:
            st = per[group, system]
            meds = [s["median"] for s in st]
            ratios = {}
            if _mine(system) is None:
                dtype = _split(system)[2]
                for mine in present:
                    if _mine(mine) is None or _split(mine)[2] != dtype:
                        continue
                    ms = per[group, mine]
                    if len(ms) == len(st):
                        rs = [a["median"] / b["median"] for a, b in zip(ms, st)]
                        ratios[_mine(mine)] = (statistics.median(rs), min(rs), max(rs))
            rows.append((system, statistics.median(meds), (min(meds), max(meds)),
                         statistics.median(s["iqr"] for s in st), ratios,
                         int(statistics.median(s["rounds"] for s in st))))
        if rows:
            out[group] = rows
    return out


def markdown(summary, nruns):
    lines = []
    for group, rows in summary.items():
        cols = []
        for r in rows:
            cols += [c for c in r[4] if c not in cols]
        head = [f"tapegrad{'-' + c if c else ''} / this, same dtype, per run: median "
                f"(min-max), {nruns} runs" for c in cols]
        lines += ["", f"**{group}**", "",
                  "| system | median ms | run medians, min-max ms | IQR ms (median over "
                  "runs) | timed calls per run | " + " | ".join(head) + " |",
                  "|---|---|---|---|---|" + "---|" * len(cols)]
        for system, med, (lo, hi), iqr, ratios, n in rows:
            cells = [f"{ratios[c][0]:.2f} ({ratios[c][1]:.2f}-{ratios[c][2]:.2f})"
                     if c in ratios else "" for c in cols]
            lines.append(f"| {system} | {_ms(med)} | {_ms(lo)}-{_ms(hi)} | {_ms(iqr)} | {n} "
                         "| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    from bench import machine
    a = rounds.parser("python -m bench.test_training", "W7's training step and W4's Adam step, in rounds of fresh pytest-benchmark processes, as Markdown").parse_args(argv)
    machine.configure_threads()
    def notes():
        try:
            print(f"torch.optim.Adam(params) on CPU runs: {torch_default_impl()}")
        except ImportError:
            pass
    return rounds.main(a, "training", "bench.test_training", _run_once,
                       lambda runs: markdown(summarize(runs), len(runs)), notes)


if __name__ == "__main__":
    sys.exit(main())
