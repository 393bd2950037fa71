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


def test_classifier_learns_and_matches_torch():
    example = load("nn_classifier")
    tg.manual_seed(0)
    start = example.make_model(tg).state_dict()
    weights = {k: v.detach().numpy().copy() for k, v in start.items()}
    epochs = 1 if NO_JIT else 2
    ours = example.main(tg, epochs=epochs, weights=weights, verbose=False)
    assert ours["history"][-1][2] > 0.3              # 10 classes: chance is 0.1
    torch = torch_or_skip()
    theirs = example.main(torch, epochs=epochs, weights=weights, verbose=False)
    np.testing.assert_allclose(np.array(ours["history"]), np.array(theirs["history"]),
                               rtol=2e-4, atol=1e-5)
    for k in weights:
        np.testing.assert_allclose(ours["weights"][k], theirs["weights"][k], rtol=1e-3,
                                   atol=1e-5)
