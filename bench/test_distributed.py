"""Data-parallel training over MPI (issue #15, "Speed"): W5's MLP on one rank and on two.

- **W5 data-parallel step** (float32, float64): W5's model and data (MLP
  1024-1024-1024-1024, relu, MSE, batch 512; ``bench/workloads.py``) as an ``nn.Module``
  whose parameters are W5's arrays, wrapped in ``DistributedDataParallel``, trained with
  ``optim.SGD(lr=1e-3)``. The global batch of 512 rows is split into equal contiguous
  shares, one per rank; every rank gets one BLAS thread. The timed step is
  ``opt.zero_grad(); loss = mse_loss(ddp(X_rank), T_rank); loss.backward(); opt.step()``.
  Checked in setup: the averaged gradients equal one process's full-batch gradients (and
  are identical on every rank).

Each rank runs this file under pytest-benchmark with the same fixed number of rounds (the
steps are collectives, so every rank must take as many); rank 0 writes the JSON, with the
reducer's communication time per step (MPI calls and the copies into buckets, including
waiting for the other rank) in ``extra_info``. A world of one has nothing to reduce:
there DDP's step is the plain training step, which is the one-process baseline.

    mpiexec -n 2 python -m pytest bench/test_distributed.py --benchmark-only   # one world
    python -m bench.test_distributed --runs 5 --export --quiet 0.05           # both, Markdown

The second command runs a round as two fresh jobs, ``mpiexec -n 1`` and ``mpiexec -n 2``
(their order swapped every other round), and reports each world's step time, the
throughput of two ranks over one (the one-rank step time over the two-rank one, same
global batch) per round, and the share of the two-rank step spent communicating.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from bench import rounds
from bench import workloads as W
from bench.test_higher_order import _ms

GROUP = "W5 data-parallel step"
GLOBAL_BATCH = 512
ROUNDS, WARMUP = 15, 3
ENV_CHILD = "BENCH_DISTRIBUTED_CHILD"       # set inside the jobs this file launches


def _mpiexec():
    import shutil
    from pathlib import Path
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _rank_from_env():
    """This process's rank as the launcher set it (before MPI starts), or 0."""
    for key in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    return 0


def _w5_module(tg, dtype):
    params, consts = W.WORKLOADS["W5"].data()

    class W5Net(tg.nn.Module):
        def __init__(self):
            super().__init__()
            for name, a in params.items():
                self.register_parameter(name, tg.nn.Parameter(tg.tensor(a, dtype=dtype)))

        def forward(self, x):
            h = x
            for i in range(3):
                h = h @ getattr(self, f"W{i}") + getattr(self, f"b{i}")
                if i < 2:
                    h = tg.relu(h)
            return h

    X = tg.tensor(consts["x"], dtype=dtype)
    T = tg.tensor(consts["t"], dtype=dtype)
    return W5Net(), X, T


class DataParallelW5:
    def __init__(self, dtype_name):
        import tapegrad as tg
        import tapegrad.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("mpi")
        self.tg, self.dist = tg, dist
        dtype = tg.float32 if dtype_name == "float32" else tg.float64
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        if GLOBAL_BATCH % self.world:
            raise SystemExit(f"the global batch {GLOBAL_BATCH} must split evenly over "
                             f"{self.world} ranks")
        model, X, T = _w5_module(tg, dtype)
        share = GLOBAL_BATCH // self.world
        rows = slice(self.rank * share, (self.rank + 1) * share)
        self.X, self.T = X[rows].clone(), T[rows].clone()
        self.full = (model, X, T)
        self.ddp = tg.nn.parallel.DistributedDataParallel(model)
        self.opt = tg.optim.SGD(self.ddp.parameters(), lr=1e-3)

    def step(self):                                        # timed
        opt = self.opt
        opt.zero_grad()
        loss = self.tg.nn.functional.mse_loss(self.ddp(self.X), self.T)
        loss.backward()
        opt.step()

    def check(self):
        """The averaged gradients equal one process's full-batch ones, on every rank."""
        tg = self.tg
        model, X, T = self.full
        ref = {}
        with self.ddp.no_sync():            # (only the local full-batch gradient here)
            tg.nn.functional.mse_loss(model(X), T).backward()
        for n, p in model.named_parameters():
            ref[n] = p.grad.numpy().astype(np.float64)
        model.zero_grad()
        tg.nn.functional.mse_loss(self.ddp(self.X), self.T).backward()
        f32 = self.X.dtype == tg.float32
        for n, p in model.named_parameters():
            got = p.grad.numpy().astype(np.float64)
            np.testing.assert_allclose(got, ref[n], rtol=2e-3 if f32 else 1e-9,
                                       atol=1e-6 if f32 else 1e-13, err_msg=n)
            all_ = [None] * self.world
            self.dist.all_gather_object(all_, got)
            assert all(np.array_equal(a, all_[0]) for a in all_), f"{n} differs across ranks"
        model.zero_grad()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_w5_data_parallel_step(benchmark, dtype):
    pytest.importorskip("mpi4py")
    w = DataParallelW5(dtype)
    w.check()
    benchmark.group = GROUP
    reducer = w.ddp.reducer
    c0, s0 = reducer.comm_seconds, reducer.steps
    benchmark.pedantic(w.step, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP)
    steps = reducer.steps - s0
    benchmark.extra_info.update(
        world=w.world, per_rank_batch=GLOBAL_BATCH // w.world, dtype=dtype,
        comm_ms_per_step=1e3 * (reducer.comm_seconds - c0) / steps if steps else 0.0,
        grad_bytes=int(sum(p.numel() * p.element_size() for p in w.ddp.parameters())),
        buckets=len(reducer.buckets))


def test_the_two_rank_job_runs():
    """The same benchmark body under mpiexec -n 2 (untimed): its setup check included."""
    pytest.importorskip("mpi4py")
    if os.environ.get(ENV_CHILD) or _mpiexec() is None:
        pytest.skip("inside a launched job, or no mpiexec" if os.environ.get(ENV_CHILD)
                    else "no mpiexec: pip install 'tapegrad[distributed]'")
    res = _job(2, os.path.dirname(os.path.dirname(os.path.abspath(__file__))), None,
               ["--benchmark-disable"])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


# ---- rounds: one-rank and two-rank jobs --------------------------------------------------------
def _job(world, root, out, extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", **{ENV_CHILD: "1"})
    cmd = [_mpiexec(), "-bind-to", "core", "-n", str(world), sys.executable, "-m",
           "bench.test_distributed", "--job", out or "", *extra]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)


def _job_main(out, extra):
    """Inside mpiexec: run this file's timed test; rank 0 writes the JSON to `out`."""
    args = ["bench/test_distributed.py", "-q", "-p", "no:cacheprovider", "-k",
            "test_w5_data_parallel_step", *extra]
    if out:
        args += ["--benchmark-only",
                 f"--benchmark-json={out if _rank_from_env() == 0 else os.devnull}"]
    return pytest.main(args)


def _run_once(root, out, reverse, extra=()):
    worlds = (2, 1) if reverse else (1, 2)
    merged = None
    with tempfile.TemporaryDirectory() as tmp:
        for world in worlds:
            part = os.path.join(tmp, f"w{world}.json") if out else None
            res = _job(world, root, part, list(extra))
            if res.returncode != 0:
                sys.exit(f"the {world}-rank job failed:\n{res.stdout[-3000:]}\n"
                         f"{res.stderr[-3000:]}")
            if part:
                with open(part) as f:
                    data = json.load(f)
                merged = data if merged is None else dict(
                    merged, benchmarks=merged["benchmarks"] + data["benchmarks"])
    if out:
        with open(out, "w") as f:
            json.dump(merged, f)


def summarize(runs):
    """{dtype: {world: (median step s, (lo, hi) of run medians, median comm ms)},
    'ratio': (median, lo, hi) of per-run one-rank / two-rank step time}."""
    out = {}
    for dtype in ("float32", "float64"):
        per = {1: [], 2: []}
        for run in runs:
            got = {b["extra_info"]["world"]: b for b in run["benchmarks"]
                   if b["extra_info"].get("dtype") == dtype}
            if 1 in got and 2 in got:
                for w in (1, 2):
                    per[w].append((got[w]["stats"]["median"],
                                   got[w]["extra_info"]["comm_ms_per_step"]))
        if not per[2]:
            continue
        rs = [a[0] / b[0] for a, b in zip(per[1], per[2])]
        share = [b[1] * 1e-3 / b[0] for b in per[2]]
        out[dtype] = {w: (statistics.median(m for m, _ in per[w]),
                          (min(m for m, _ in per[w]), max(m for m, _ in per[w])),
                          statistics.median(c for _, c in per[w])) for w in (1, 2)}
        out[dtype]["ratio"] = (statistics.median(rs), min(rs), max(rs))
        out[dtype]["share"] = statistics.median(share)
        out[dtype]["bytes"] = next(b["extra_info"]["grad_bytes"] for b in runs[0]["benchmarks"]
                                   if b["extra_info"].get("dtype") == dtype)
    return out


def markdown(summary, nruns):
    lines = ["", f"**{GROUP}** (global batch {GLOBAL_BATCH}, one BLAS thread per rank)", "",
             "| dtype | 1 rank: median ms (run medians) | 2 ranks: median ms (run medians) | "
             f"throughput 2 ranks / 1 rank, per run: median (min-max), {nruns} runs | "
             "2 ranks: communication ms per step (share of the step) | gradient MB per "
             "step |", "|---|---|---|---|---|---|"]
    for dtype, s in summary.items():
        one, two = s[1], s[2]
        r = s["ratio"]
        lines.append(f"| {dtype} | {_ms(one[0])} ({_ms(one[1][0])}-{_ms(one[1][1])}) | "
                     f"{_ms(two[0])} ({_ms(two[1][0])}-{_ms(two[1][1])}) | "
                     f"{r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f}) | {two[2]:.1f} ({s['share']:.0%}) "
                     f"| {s['bytes'] / 1e6:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--job"]:
        return _job_main(argv[1], argv[2:])
    if _mpiexec() is None:
        sys.exit("no mpiexec: pip install 'tapegrad[distributed]'")
    a = rounds.parser("python -m bench.test_distributed",
                      "W5 data-parallel on one and two MPI ranks, in rounds of fresh jobs, "
                      "as Markdown").parse_args(argv)
    return rounds.main(a, "distributed", "bench.test_distributed", _run_once,
                       lambda runs: markdown(summarize(runs), len(runs)))


if __name__ == "__main__":
    sys.exit(main())
