"""W4 small MLP: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W4 small MLP")
CASES = timed("W4")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w4(measure, system, phase):
    measure("W4", system, phase)
