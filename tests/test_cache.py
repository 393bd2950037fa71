"""The compiled sweep is cached on disk: a second process loads it instead of compiling."""
import json
import os
import subprocess
import sys

SCRIPT = r"""
import json, tapegrad as tg
from tapegrad import sweep as S
x = tg.tensor([0.5, 1.5], requires_grad=True)
(x.tanh() * x).sum().backward()
print(json.dumps({"hits": sum(S.sweep.stats.cache_hits.values()),
                  "misses": sum(S.sweep.stats.cache_misses.values()),
                  "grad": x.grad.tolist()}))
"""


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_sweep_from_the_cache(tmp_path):
    first = _run(tmp_path)
    second = _run(tmp_path)
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert first["grad"] == second["grad"]
