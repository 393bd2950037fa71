"""W6 training step: see bench/workloads.py."""
import pytest

from bench.workloads import SYSTEMS

pytestmark = pytest.mark.benchmark(group="W6 training step")


@pytest.mark.parametrize("system", SYSTEMS)
def test_w6(measure, system):
    measure("W6", system)
