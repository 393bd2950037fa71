"""The compiled kernels are cached on disk: a second process loads them instead of compiling,
and an edit of any kernel file (a callee in another file included) is never served stale."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

import tapegrad

SCRIPT = r"""
import json, tapegrad as tg
from tapegrad import kernels as S
x = tg.tensor([0.5, 1.5], requires_grad=True)
(x.sin() * x).sum().backward()
print(json.dumps({"hits": sum(S.sweep.stats.cache_hits.values()),
                  "misses": sum(S.sweep.stats.cache_misses.values()),
                  "file": tg.__file__, "grad": x.grad.tolist()}))
"""


def _run(cache_dir, path=None):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True, cwd=str(path or os.getcwd()))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A copy of the package and a cache it filled: (package root, cache, first, second run)."""
    root = tmp_path_factory.mktemp("cache")
    pkg = root / "src" / "tapegrad"
    shutil.copytree(os.path.dirname(tapegrad.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = root / "cache"
    return pkg, cache, _run(cache, pkg.parent), _run(cache, pkg.parent)


def test_second_process_loads_the_sweep_from_the_cache(warm):
    pkg, _, first, second = warm
    assert first["file"].startswith(str(pkg))
    assert first["misses"] >= 1 and first["hits"] == 0
    assert second["hits"] >= 1 and second["misses"] == 0
    assert first["grad"] == second["grad"]


def test_an_edited_callee_in_another_kernel_file_is_recompiled(warm):
    # the package's sin VJP (in kernels/elementwise.py, inlined into the sweep of
    # kernels/reverse.py) is edited after the sweep was cached
    pkg, cache, before, _ = warm
    path = pkg / "kernels" / "elementwise.py"
    text = path.read_text()
    old = "    if op == SIN:\n        return g * np.cos(x)\n"
    assert text.count(old) == 1, "the test's edit no longer matches elementwise.py"
    path.write_text(text.replace(old, "    if op == SIN:\n        return 2.0 * g * np.cos(x)\n"))
    after = _run(cache, pkg.parent)
    assert after["misses"] >= 1 and after["hits"] == 0, "the sweep was loaded stale"
    # d/dx sum(sin(x) * x) = sin(x) + x cos(x): the edit doubles the second term
    for x, g0, g1 in zip((0.5, 1.5), before["grad"], after["grad"]):
        assert abs(g0 - (math.sin(x) + x * math.cos(x))) < 1e-6
        assert abs(g1 - (math.sin(x) + 2 * x * math.cos(x))) < 1e-6


# ---- where the cache goes when the install is read-only -----------------------------------------
LOCATE = r"""
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    from tapegrad import kernels as K
    from tapegrad.kernels import cachekey
    K.grad_offsets(np.zeros((0, K.NFIELDS), np.int64), 0, np.empty(0, np.int64))
print(json.dumps({"where": cachekey.cache_location(K.grad_offsets),
                  "hits": sum(K.grad_offsets.stats.cache_hits.values()),
                  "said": [str(w.message) for w in said if "cached in" in str(w.message)]}))
"""


@pytest.fixture
def read_only_install(tmp_path):
    """A copy of the package whose kernel folder cannot hold a cache: its __pycache__ is a
    regular file (unwritable even for root, unlike a chmod)."""
    pkg = tmp_path / "site" / "tapegrad"
    shutil.copytree(os.path.dirname(tapegrad.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "kernels" / "__pycache__").write_text("not a folder")
    return pkg


def _locate(pkg, **env):
    full = dict(os.environ, PYTHONPATH=str(pkg.parent), **env)
    for k in ("NUMBA_CACHE_DIR", "NUMBA_DISABLE_JIT"):
        full.pop(k, None)
    out = subprocess.run([sys.executable, "-c", LOCATE], env=full, capture_output=True,
                         text=True, check=True, cwd=str(pkg.parent))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_read_only_install_caches_in_the_user_cache_folder(read_only_install, tmp_path):
    user = tmp_path / "home-cache"
    first = _locate(read_only_install, XDG_CACHE_HOME=str(user))
    assert first["where"].startswith(str(user / "numba")), first
    assert first["hits"] == 0 and not first["said"]
    second = _locate(read_only_install, XDG_CACHE_HOME=str(user))
    assert second["hits"] >= 1 and second["where"] == first["where"]


def test_with_no_writable_cache_folder_it_uses_the_temp_dir_and_says_so(read_only_install,
                                                                         tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    env = dict(XDG_CACHE_HOME=str(blocked / "cache"), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    first = _locate(read_only_install, **env)
    assert first["where"].startswith(str(tmp_path / "tmp" / "tapegrad-numba-cache")), first
    assert len(first["said"]) == 1 and str(tmp_path / "tmp") in first["said"][0]
    second = _locate(read_only_install, **env)
    assert second["hits"] >= 1


def test_info_says_where_the_kernels_are_cached(read_only_install, tmp_path):
    user = tmp_path / "home-cache"
    full = dict(os.environ, PYTHONPATH=str(read_only_install.parent), XDG_CACHE_HOME=str(user))
    full.pop("NUMBA_CACHE_DIR", None)
    full.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-m", "tapegrad", "info"], env=full,
                         capture_output=True, text=True, check=True,
                         cwd=str(read_only_install.parent)).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("compiled kernels cached in"))
    assert str(user / "numba") in line
