"""W1 tutorial: see bench/workloads.py."""
import pytest

from bench.workloads import SYSTEMS

pytestmark = pytest.mark.benchmark(group="W1 tutorial")


@pytest.mark.parametrize("system", SYSTEMS)
def test_w1(measure, system):
    measure("W1", system)
