import os

# the suite compiles in its own process, as before the cold-start tier: which kernels ran
# (interpreted or compiled) must not depend on how warm the cache is; tests/test_cold_start.py
# turns the tier on where it tests it (subprocesses inherit this)
os.environ["TAPEGRAD_BACKGROUND_COMPILE"] = "0"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tapegrad as tg  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_state():
    """Every test starts with grad mode on, the default dtype, and a seeded generator."""
    tg.set_default_dtype(tg.float32)
    tg.manual_seed(0)
    with tg.enable_grad():
        yield
    tg.set_default_dtype(tg.float32)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# CI sets TAPEGRAD_NO_SKIPS=1: there, a skipped test is a component CI failed to install
# (PyTorch for the parity tests, Graphviz for rendering), so the run fails and names them
_SKIPPED = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):     # an xfail is no gap
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        _SKIPPED.append(f"{report.nodeid}: {why}")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("TAPEGRAD_NO_SKIPS") == "1" and _SKIPPED and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if os.environ.get("TAPEGRAD_NO_SKIPS") == "1" and _SKIPPED:
        terminalreporter.write_line(
            f"TAPEGRAD_NO_SKIPS=1: {len(_SKIPPED)} test(s) skipped; install what they need:",
            red=True)
        for line in _SKIPPED[:20]:
            terminalreporter.write_line("  " + line)
