"""W2 chain: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W2 chain")
CASES = timed("W2")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w2(measure, system, phase):
    measure("W2", system, phase)
