"""The nn examples in docs/examples (issue #14 item 9) run, learn, and give PyTorch's
numbers from the same starting weights (float64; the libraries sum in different orders)."""
import numpy as np
import pytest

import tapegrad as tg
from helpers import torch_or_skip
from test_examples import NO_JIT, load

STEPS = 60 if NO_JIT else 400


@pytest.mark.parametrize("name", ["nn_polynomial", "nn_custom_module", "nn_dynamic"])
def test_learns_and_matches_torch(name):
    ours = load(name).main(tg, steps=STEPS, verbose=False)
    assert ours["losses"][-1] < ours["losses"][0]
    assert np.all(np.isfinite(ours["coef"]))
    torch = torch_or_skip()
    theirs = load(name).main(torch, steps=STEPS, verbose=False)
    np.testing.assert_allclose(ours["losses"], theirs["losses"], rtol=1e-9)
    np.testing.assert_allclose(ours["coef"], theirs["coef"], rtol=1e-8, atol=1e-12)


def test_custom_module_registers_its_scalar_parameters():
    res = load("nn_custom_module").main(tg, steps=3, verbose=False)
    assert res["names"] == ["a", "b", "c", "d"]
