"""W3 scalar chain: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W3 scalar chain")
CASES = timed("W3")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w3(measure, system, phase):
    measure("W3", system, phase)
