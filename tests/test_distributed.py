"""tapegrad.distributed, DistributedDataParallel and DistributedSampler.

The checks that need real ranks live in tests/mpi/ranks.py and run here under
``mpiexec -n 2`` and ``-n 3`` (each launch runs its cases in one job, and each case prints
``PASS <name>`` from rank 0 when every rank got through it); a rank that fails aborts the
job, so nothing can hang past the timeout. They skip, saying why, when mpi4py or mpiexec
is missing (``pip install 'tapegrad[distributed]'`` brings both).
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.distributed as dist
from tapegrad.nn.parallel import reducer
from tapegrad.utils.data import DataLoader
from tapegrad.utils.data.distributed import DistributedSampler

HERE = Path(__file__).parent / "mpi"
RANKS = HERE / "ranks.py"
TIMEOUT = 240


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _missing():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'tapegrad[distributed]')"
    if _mpiexec() is None:
        return "no mpiexec on PATH or beside this Python (pip install mpich, or load your MPI)"
    return None


needs_mpi = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def _launch(n, script, *args):
    """Run script under mpiexec -n n (n=None: plain python, a world of one)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(tg.__file__).parent.parent)]
                                          + sys.path))
    cmd = [sys.executable, str(script), *args]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n)] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)


_ALL = ["collectives_match_numpy", "mismatched_tensors_raise_on_every_rank",
        "ddp_gradient_equals_full_batch", "ddp_training_keeps_replicas_identical",
        "ddp_no_sync_accumulates_locally", "ddp_unused_parameters",
        "ddp_broadcasts_buffers_and_starts_buckets_early",
        "ddp_under_compile_runs_eagerly_and_still_averages",
        "sampler_shards_are_disjoint_and_cover"]
_WORLDS = {2: _ALL,
           3: ["collectives_match_numpy", "ddp_gradient_equals_full_batch",
               "ddp_training_keeps_replicas_identical", "sampler_shards_are_disjoint_and_cover"],
           None: [c for c in _ALL if c not in ("mismatched_tensors_raise_on_every_rank",
                                               "ddp_broadcasts_buffers_and_starts_buckets_early")]}
_runs = {}


def _run_world(n):
    if n not in _runs:
        _runs[n] = _launch(n, RANKS, *_WORLDS[n])
    return _runs[n]


@needs_mpi
@pytest.mark.parametrize("n,name", [(n, c) for n in (2, 3, None) for c in _WORLDS[n]],
                         ids=lambda v: "world1" if v is None else str(v))
def test_case_passes_on_real_ranks(n, name):
    res = _run_world(n)
    passed = {line.split(" ", 1)[1] for line in res.stdout.splitlines()
              if line.startswith("PASS ")}
    assert name in passed, (f"{name} did not pass under "
                            f"{'no mpiexec' if n is None else f'mpiexec -n {n}'} "
                            f"(exit {res.returncode}):\n{res.stdout}\n{res.stderr[-4000:]}")
    if n is not None and _WORLDS[n][-1] == name:
        assert res.returncode == 0, res.stderr[-4000:]


@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error():
    res = _launch(2, HERE / "fail.py")          # (a hang would raise TimeoutExpired)
    assert res.returncode != 0
    assert "ValueError: the last rank failed on purpose" in res.stderr
    assert "aborting the job" in res.stderr
    assert "unreachable" not in res.stdout


# ---- in this process: no group ----------------------------------------------------------------
def test_calls_before_init_raise_pytorchs_error():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, dist.barrier,
                 lambda: dist.all_reduce(tg.ones(2)), lambda: dist.broadcast(tg.ones(2), 0),
                 lambda: dist.destroy_process_group()):
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            call()
    with pytest.raises(ValueError, match="Default process group"):
        tg.nn.parallel.DistributedDataParallel(tg.nn.Linear(2, 2))


def test_other_backends_are_refused_clearly():
    for name in ("gloo", "nccl", "ucc"):
        with pytest.raises(ValueError, match="backend='mpi' only.*mpiexec"):
            dist.init_process_group(name)
    assert not dist.is_initialized()


def test_is_available_says_whether_mpi4py_is_installed_without_starting_mpi():
    assert dist.is_available() == (importlib.util.find_spec("mpi4py") is not None)
    probe = ("import sys, tapegrad, tapegrad.distributed as d; d.is_available(); "
             "print(sorted(m for m in sys.modules if m.startswith('mpi4py')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=TIMEOUT, check=True).stdout
    assert out.strip() == "[]"        # importing mpi4py.MPI would have started MPI


def test_reduce_op_names():
    assert [op.name for op in dist.ReduceOp][:5] == ["SUM", "AVG", "PRODUCT", "MIN", "MAX"]
    assert repr(dist.ReduceOp.SUM) == "<RedOpType.SUM: 0>"


# ---- buckets ------------------------------------------------------------------------------------
def test_buckets_close_at_their_cap_and_split_by_dtype():
    a = [tg.zeros(n) for n in (10, 300, 5, 200)]               # float32: 40, 1200, 20, 800 B
    b = [tg.zeros(4, dtype=tg.float64), tg.zeros(2, dtype=tg.float64)]
    got = reducer.assign_buckets(a[:2] + b[:1] + a[2:] + b[1:], cap_bytes=1000,
                                 first_bytes=100)
    sizes = [[p.numel() for p in bucket] for bucket in got]
    assert sizes == [[10, 300], [4, 2], [5, 200]]
    got = reducer.assign_buckets(a, cap_bytes=10 ** 6)
    assert [[p.numel() for p in bucket] for bucket in got] == [[10, 300, 5, 200]]


# ---- DistributedSampler (no group needed with num_replicas and rank) -------------------------
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [0, 1, 5, 7, 12])
def test_sampler_shards_as_pytorchs(size, replicas, drop_last):
    shards = [list(DistributedSampler(range(size), replicas, r, shuffle=False,
                                      drop_last=drop_last)) for r in range(replicas)]
    TorchSampler = pytest.importorskip("torch.utils.data.distributed").DistributedSampler
    want = [list(TorchSampler(range(size), replicas, r, shuffle=False, drop_last=drop_last))
            for r in range(replicas)]
    assert shards == want
    assert [len(DistributedSampler(range(size), replicas, r, drop_last=drop_last))
            for r in range(replicas)] == [len(s) for s in want]


def test_sampler_shuffles_alike_on_every_rank_and_anew_each_epoch():
    def shards(epoch, seed=0):
        out = []
        for r in range(3):
            s = DistributedSampler(range(30), num_replicas=3, rank=r, seed=seed)
            s.set_epoch(epoch)
            out.append(list(s))
        return out
    e0, e1 = shards(0), shards(1)
    assert sorted(i for s in e0 for i in s) == list(range(30))
    assert e0 != e1 and sorted(i for s in e1 for i in s) == list(range(30))
    assert shards(0) == e0 and shards(0, seed=1) != e0
    assert e0[0] != list(range(0, 30, 3))


def test_sampler_feeds_a_dataloader():
    s = DistributedSampler(tg.utils.data.TensorDataset(tg.arange(10)), num_replicas=2, rank=1,
                           shuffle=False)
    batches = [b[0].tolist() for b in DataLoader(tg.utils.data.TensorDataset(tg.arange(10)),
                                                batch_size=2, sampler=s)]
    assert batches == [[1, 3], [5, 7], [9]]


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        DistributedSampler(range(4), num_replicas=0, rank=0)
    with pytest.raises(TypeError, match="rank must be an int"):
        DistributedSampler(range(4), num_replicas=2, rank=0.5)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))


# ---- post-accumulate hooks fire mid-backward (what DDP's overlap stands on) -------------------
def test_post_accumulate_hooks_fire_as_the_sweep_passes_each_leaf():
    def run(lib):
        lib.manual_seed(0)
        w1 = lib.ones(3, 3, requires_grad=True)
        w2 = lib.ones(3, 3, requires_grad=True)
        seen = []
        w2.register_post_accumulate_grad_hook(lambda p: seen.append(("w2", w1.grad is None)))
        w1.register_post_accumulate_grad_hook(lambda p: seen.append(("w1", w2.grad is None)))
        x = lib.ones(1, 3)
        (lib.tanh(x @ w1) @ w2).sum().backward()
        return seen, w1.grad.numpy().copy(), w2.grad.numpy().copy()
    seen, g1, g2 = run(tg)
    # w2 (used last) is finished first, while w1's gradient does not exist yet
    assert seen == [("w2", True), ("w1", False)]
    torch = pytest.importorskip("torch")
    t_seen, t1, t2 = run(torch)
    assert seen == t_seen
    np.testing.assert_allclose(g1, t1, rtol=1e-5)
    np.testing.assert_allclose(g2, t2, rtol=1e-5)


def test_queue_callback_runs_after_every_gradient_is_in():
    from tapegrad.autograd import engine
    w1 = tg.ones(2, requires_grad=True)
    w2 = tg.ones(2, requires_grad=True)
    log = []

    def hook(p):
        log.append("hook")
        engine.queue_callback(lambda: log.append(("done", w1.grad is not None,
                                                  w2.grad is not None)))
    h = w2.register_post_accumulate_grad_hook(hook)
    ((w1 * 2).sum() * (w2 * 3).sum()).backward()
    h.remove()
    assert log == ["hook", ("done", True, True)]
    with pytest.raises(RuntimeError, match="only be called during a backward"):
        engine.queue_callback(lambda: None)


# ---- the command line ---------------------------------------------------------------------------
def _train(n, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "tapegrad", "train", *args]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n)] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env,
                         cwd=Path(tg.__file__).parent.parent)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_cli_train_distributed_reaches_the_one_process_result(n):
    flags = ("--dtype", "float64", "--epochs", "150", "--points", "200")
    one = _train(None, *flags).stdout.splitlines()
    many = _train(n, "--distributed", *flags)
    lines = many.stdout.splitlines()
    assert len(lines) == 2, many.stdout          # rank 0 alone prints
    assert lines[0] == one[0] + f"; data-parallel over {n} MPI ranks"
    assert lines[1] == one[1] and lines[1].startswith("final loss")
    assert many.stderr.count("epoch 150/150") == 1


def test_cli_train_refuses_compiled_with_distributed():
    res = subprocess.run([sys.executable, "-m", "tapegrad", "train", "--distributed",
                          "--compiled"], capture_output=True, text=True, timeout=TIMEOUT,
                         cwd=Path(tg.__file__).parent.parent)
    assert res.returncode == 2
    assert "--compiled and --distributed do not go together" in res.stderr


# ---- docs/examples/ddp_train.py ---------------------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "ddp_train.py"


def _example(n, library="tapegrad", extra_env=None):
    """Run the example's main(library) (under mpiexec -n n unless n is None); rank 0 prints
    the losses it returns."""
    call = ("import os, sys, runpy; "
            + (f"os.environ.update({extra_env!r}, RANK=os.environ['PMI_RANK'], "
               f"WORLD_SIZE=os.environ['PMI_SIZE']); " if extra_env else "")
            + f"import {library} as lib; "
            + f"m = runpy.run_path({str(EXAMPLE)!r}); "
            + f"losses = m['main'](lib, backend={'gloo' if library == 'torch' else 'mpi'!r}, "
            + "verbose=False); "
            + "os.environ.get('PMI_RANK', '0') == '0' and print('LOSSES', losses)")
    cmd = [sys.executable, "-c", call]
    if n is not None:
        cmd = [_mpiexec(), "-n", str(n)] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stderr[-4000:]
    got = [line for line in res.stdout.splitlines() if line.startswith("LOSSES")]
    assert len(got) == 1, res.stdout
    return [float(v) for v in got[0][len("LOSSES ["):-1].split(",")]


@needs_mpi
def test_example_on_two_ranks_trains_as_one_process():
    one, two = _example(None), _example(2)
    np.testing.assert_allclose(two, one, rtol=1e-4)
    assert one[-1] < 0.02 < one[0]


@needs_mpi
def test_example_runs_under_pytorch_with_gloo():
    pytest.importorskip("torch")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    losses = _example(2, "torch", {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    assert losses[-1] < 0.02 < losses[0]


def test_info_says_whether_distributed_can_run():
    out = subprocess.run([sys.executable, "-m", "tapegrad", "info"], capture_output=True,
                         text=True, timeout=TIMEOUT, check=True,
                         cwd=Path(tg.__file__).parent.parent).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("tapegrad.distributed:"))
    want = "mpi4py installed" if dist.is_available() else "pip install 'tapegrad[distributed]'"
    assert want in line
