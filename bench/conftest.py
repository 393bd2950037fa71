"""pytest-benchmark setup: equal threads for every system, a pause between benchmarks,
and the ``measure`` fixture every bench/test_w*.py uses.

    python -m pytest bench                          # time everything (minutes)
    python -m pytest bench --benchmark-disable -q   # run each body once (CI)
"""
import time

import pytest

from bench import machine, workloads as W

PAUSE = 0.2                                      # s; lets torch's OpenMP workers go idle
BACKWARD_ROUNDS = {"W2": 30, "W2n": 30, "W3": 50, "W3n": 50, "W4": 100, "W5": 10}


def pytest_configure(config):
    machine.configure_threads()


def pytest_report_header(config):
    return machine.describe().splitlines()


@pytest.fixture(autouse=True)
def _pause(request):
    if not request.config.getoption("benchmark_disable", False):
        time.sleep(PAUSE)


@pytest.fixture
def measure(benchmark):
    """measure(key, system, phase): check the gradients, then time one phase. The only
    skip is a system whose module is not installed: tests parametrize over
    ``workloads.timed(key)``, which leaves out the phases a system does not time."""
    def go(key, system, phase="fb"):
        if (system, phase) not in W.timed(key):
            pytest.fail(f"{system} does not time {key} {phase}: parametrize over "
                        f"workloads.timed({key!r})")
        pytest.importorskip(W.SYSTEMS[system].module)
        case = W.verify(key, system)       # ran once: warm for "fb"
        if phase != "fb":
            case.warm(phase)
            benchmark.group = f"{W.WORKLOADS[key].title} {phase}"
        if phase == "fb":
            benchmark(case.run)
        elif phase == "forward":
            benchmark(case.forward)
        else:   # a fresh graph per round, made in setup: only backward is timed
            benchmark.pedantic(case.backward, setup=lambda: ((case.forward(),), {}),
                               rounds=BACKWARD_ROUNDS[key], warmup_rounds=1)
    return go
