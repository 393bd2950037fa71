"""W2 chain: see bench/workloads.py."""
import pytest

from bench.workloads import PHASES, SYSTEMS

pytestmark = pytest.mark.benchmark(group="W2 chain")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_w2(measure, system, phase):
    measure("W2", system, phase)
