"""W3 scalar chain: see bench/workloads.py."""
import pytest

from bench.workloads import PHASES, SYSTEMS

pytestmark = pytest.mark.benchmark(group="W3 scalar chain")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("system", SYSTEMS)
def test_w3(measure, system, phase):
    measure("W3", system, phase)
