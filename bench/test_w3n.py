"""W3n normal scalar chain: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W3n normal scalar chain")
CASES = timed("W3n")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w3n(measure, system, phase):
    measure("W3n", system, phase)
