"""Time to first gradient: ``import`` + W1's first backward, in a fresh process each run.

tapegrad is measured with an empty Numba cache (NUMBA_CACHE_DIR a new temporary folder:
everything compiles) and with a warm one (the same folder after one untimed run: the
sweep loads from disk); PyTorch beside it. The clock starts before the import, inside the
child, so interpreter start-up (the same for both) is not counted.

    python -m bench.latency [runs]
"""
import json
import os
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
print(time.perf_counter() - t0)
"""


def first_backward(module, cache_dir=None):
    """Seconds from ``import module`` to the end of W1's first backward, in a new process."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([sys.executable, "-c", FIRST_BACKWARD.format(module=module)],
                         env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def measure(runs=3, log=lambda msg: None):
    """{label: [seconds per run]} for tapegrad (empty and warm cache) and torch."""
    res = {"tapegrad, empty Numba cache": [], "tapegrad, warm Numba cache": [],
           "torch": []}
    with tempfile.TemporaryDirectory(prefix="tapegrad-latency-") as tmp:
        for i in range(runs):
            log(f"latency: empty cache run {i + 1}/{runs}")
            res["tapegrad, empty Numba cache"].append(
                first_backward("tapegrad", os.path.join(tmp, f"cold{i}")))
        warm = os.path.join(tmp, "warm")
        first_backward("tapegrad", warm)             # fills the cache, untimed
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


def medians(res):
    return {k: statistics.median(v) for k, v in res.items()}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3), indent=1))
