"""W4 small MLP: see bench/workloads.py."""
import pytest

from bench.workloads import PHASES, SYSTEMS

pytestmark = pytest.mark.benchmark(group="W4 small MLP")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_w4(measure, system, phase):
    measure("W4", system, phase)
