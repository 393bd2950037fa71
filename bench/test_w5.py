"""W5 large MLP: see bench/workloads.py."""
import pytest

from bench.workloads import PHASES, SYSTEMS

pytestmark = pytest.mark.benchmark(group="W5 large MLP")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_w5(measure, system, phase):
    measure("W5", system, phase)
