"""W5 large MLP: see bench/workloads.py."""
import pytest

from bench.workloads import timed

pytestmark = pytest.mark.benchmark(group="W5 large MLP")
CASES = timed("W5")        # (system, phase): only the phases each system times


@pytest.mark.parametrize("system,phase", CASES, ids=[f"{s}-{ph}" for s, ph in CASES])
def test_w5(measure, system, phase):
    measure("W5", system, phase)
