"""Time to first gradient, in a fresh process each run.

- ``import`` + W1's first backward: tapegrad with an empty Numba cache (NUMBA_CACHE_DIR a
  new temporary folder: the first calls run the kernels' Python code while a warm-up
  process compiles them, kernels/tiers.py), the time until that process has compiled the
  float32 sweep and the step runs compiled, the same first backward compiling in the
  process (TAPEGRAD_BACKGROUND_COMPILE=0, as before the warm-up existed), and a warm cache
  (filled by ``python -m tapegrad.warmup`` first: everything loads from disk); PyTorch
  beside it. The clock starts before the import, inside the child, so interpreter
  start-up (the same for all) is not counted. Each cold run's warm-up process is stopped
  when its run ends, except in the run that waits for it.
- Recording plus compiling W2 for replay: the first call of
  ``func.value_and_grad(compile(f))`` (tapegrad, warm and empty cache) against the first
  call of ``jax.jit(jax.value_and_grad(f))``, timed after the imports.

    python -m bench.latency [runs]
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile

FIRST_BACKWARD = """
import time
t0 = time.perf_counter()
import {module} as T
F = T.nn.functional
x, y = T.ones(5), T.zeros(3)
w, b = T.randn(5, 3, requires_grad=True), T.randn(3, requires_grad=True)
F.binary_cross_entropy_with_logits(x @ w + b, y).backward()
assert w.grad is not None
t = time.perf_counter() - t0
if {until_compiled}:
    from tapegrad import kernels as K
    from tapegrad.kernels import tiers
    while not tiers.state().ready("eager32"):
        time.sleep(0.05)
    F.binary_cross_entropy_with_logits(x @ w + b, y).backward()
    assert K.reverse.sweep.signatures      # this step ran the compiled sweep
    t = time.perf_counter() - t0
print(_warmup_pid(), t)
"""

# the pid of the warm-up process this child started (0: none), for stopping it
PID = """
def _warmup_pid():
    try:
        from tapegrad.kernels import tiers
        return tiers.state().child.pid if tiers._STATE and tiers.state().child else 0
    except ImportError:
        return 0
"""


FIRST_REPLAY = """
import time
import numpy as np
from bench.workloads import CHAIN
x0 = np.random.default_rng(0).standard_normal(16).astype(np.float32)
if {jax}:
    import jax, jax.numpy as jnp
    def f(v):
        for _ in range(CHAIN):
            v = jnp.tanh(v * 1.01 + 0.1)
        return jnp.sum(v)
    x = jnp.asarray(x0)
    t0 = time.perf_counter()
    loss, g = jax.jit(jax.value_and_grad(f))(x)
    g.block_until_ready()
else:
    import tapegrad as tg
    def f(v):
        for _ in range(CHAIN):
            v = (v * 1.01 + 0.1).tanh()
        return v.sum()
    x = tg.tensor(x0, requires_grad=True)
    t0 = time.perf_counter()
    loss, g = tg.func.value_and_grad(tg.compile(f))(x)
print(_warmup_pid(), time.perf_counter() - t0)
"""


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(cache_dir, background=True):
    env = dict(os.environ, TAPEGRAD_BACKGROUND_COMPILE="1" if background else "0")
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


def _child(code, cache_dir=None, background=True):
    out = subprocess.run([sys.executable, "-c", PID + code], env=_env(cache_dir, background),
                         capture_output=True, text=True, check=True, cwd=ROOT)
    pid, seconds = out.stdout.split()[-2:]
    if int(pid):
        try:
            os.killpg(int(pid), signal.SIGKILL)     # its own session: stop its group
        except (ProcessLookupError, AttributeError):
            pass
    return float(seconds)


def fill(cache_dir):
    """Compile everything into cache_dir in the foreground (``python -m tapegrad.warmup``)."""
    subprocess.run([sys.executable, "-m", "tapegrad.warmup"], env=_env(cache_dir), cwd=ROOT,
                   check=True, capture_output=True)


def first_backward(module, cache_dir=None, until_compiled=False, background=True):
    """Seconds from ``import module`` to the end of W1's first backward, in a new process
    (until_compiled: to the end of the first step that ran the compiled sweep)."""
    return _child(FIRST_BACKWARD.format(module=module, until_compiled=bool(until_compiled)),
                  cache_dir, background)


def first_replay(jax=False, cache_dir=None):
    """Seconds of W2's first compiled value-and-gradient call (record + compile + run)."""
    return _child(FIRST_REPLAY.format(jax=bool(jax)), cache_dir)


UNTIL_COMPILED = "tapegrad, empty Numba cache, until a step runs the compiled sweep"
IN_PROCESS = "tapegrad, empty Numba cache, compiling in the process"


def measure(runs=3, log=lambda msg: None):
    """{label: [seconds per run]} for tapegrad (empty and warm cache) and torch."""
    res = {"tapegrad, empty Numba cache": [], "tapegrad, warm Numba cache": [],
           UNTIL_COMPILED: [], IN_PROCESS: [], "torch": []}
    with tempfile.TemporaryDirectory(prefix="tapegrad-latency-") as tmp:
        for i in range(runs):
            log(f"latency: empty cache run {i + 1}/{runs}")
            res["tapegrad, empty Numba cache"].append(
                first_backward("tapegrad", os.path.join(tmp, f"cold{i}")))
        log("latency: empty cache, until the warm-up has compiled the sweep (one run)")
        res[UNTIL_COMPILED].append(first_backward("tapegrad", os.path.join(tmp, "until"),
                                                  until_compiled=True))
        log("latency: empty cache, compiling in the process (one run)")
        res[IN_PROCESS].append(first_backward("tapegrad", os.path.join(tmp, "inproc"),
                                              background=False))
        warm = os.path.join(tmp, "warm")
        fill(warm)                                   # fills the cache, untimed
        for i in range(runs):
            res["tapegrad, warm Numba cache"].append(first_backward("tapegrad", warm))
    try:
        import torch  # noqa: F401
    except ImportError:
        del res["torch"]
    else:
        for i in range(runs):
            res["torch"].append(first_backward("torch"))
    return res


def measure_replay(runs=3, log=lambda msg: None):
    """{label: [seconds per run]}: W2 recorded and compiled for replay, first call."""
    res = {"tapegrad W2 replay, empty Numba cache": [],
           "tapegrad W2 replay, warm Numba cache": [], "jax W2 jit": []}
    with tempfile.TemporaryDirectory(prefix="tapegrad-latency-") as tmp:
        for i in range(runs):
            log(f"latency: W2 replay, empty cache run {i + 1}/{runs}")
            res["tapegrad W2 replay, empty Numba cache"].append(
                first_replay(False, os.path.join(tmp, f"cold{i}")))
        warm = os.path.join(tmp, "warm")
        fill(warm)                                   # fills the cache, untimed
        for i in range(runs):
            res["tapegrad W2 replay, warm Numba cache"].append(first_replay(False, warm))
    try:
        import jax  # noqa: F401
    except ImportError:
        del res["jax W2 jit"]
    else:
        for i in range(runs):
            res["jax W2 jit"].append(first_replay(True))
    return res


def medians(res):
    return {k: statistics.median(v) for k, v in res.items()}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(json.dumps({**measure(n), **measure_replay(n)}, indent=1))
