"""W2n normal chain: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W2n normal chain")
CASES = timed("W2n")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w2n(measure, system, phase):
    measure("W2n", system, phase)
