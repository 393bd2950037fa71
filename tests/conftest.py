import numpy as np
import pytest

import tapegrad as tg


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
