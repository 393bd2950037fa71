"""compile with modules (issue #14 item 7): a compiled model, and a compiled training step,
replay with the parameters read afresh at every call, and match eager training."""
import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn


def _model():
    tg.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _data():
    rng = np.random.default_rng(0)
    return tg.tensor(rng.standard_normal((6, 4)).astype(np.float32)), \
        tg.tensor(rng.standard_normal((6, 3)).astype(np.float32))


def test_compiled_model_matches_the_eager_model():
    model = _model()
    cm = tg.compile(model)
    x, _ = _data()
    np.testing.assert_allclose(cm(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    cm(x).sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for a, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-5, atol=1e-7)


def _train(compiled, steps=15, lr=0.1):
    model = _model()
    loss_fn = nn.MSELoss()

    def step(x, t):
        return loss_fn(model(x), t)

    f = tg.compile(step) if compiled else step
    x, t = _data()
    losses = []
    for _ in range(steps):
        model.zero_grad()
        loss = f(x, t)
        loss.backward()
        losses.append(loss.item())
        with tg.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return np.array(losses), [p.detach().numpy().copy() for p in model.parameters()], f


def test_compiled_training_step_reads_the_updated_parameters_each_call():
    eager_losses, eager_w, _ = _train(False)
    comp_losses, comp_w, f = _train(True)
    assert len(f.programs) == 1                   # recorded once, replayed after
    assert np.all(np.diff(eager_losses) < 0)      # the updates were seen: the loss falls
    np.testing.assert_allclose(comp_losses, eager_losses, rtol=1e-5)
    for a, b in zip(comp_w, eager_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_compiled_model_in_eval_mode_uses_running_statistics():
    tg.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = tg.randn(8, 3)
    model.train()
    model(x)                                      # one batch of running statistics
    model.eval()
    cm = tg.compile(model)
    np.testing.assert_allclose(cm(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_changing_a_parameters_shape_is_a_clear_error_or_a_new_recording():
    model = nn.Linear(3, 2)
    cm = tg.compile(model)
    x = tg.randn(4, 3)
    cm(x)
    model.weight = nn.Parameter(tg.randn(5, 3))
    model.bias = nn.Parameter(tg.randn(5))
    try:
        out = cm(x)
    except RuntimeError as e:
        assert "shape" in str(e)
    else:
        assert tuple(out.shape) == (4, 5)
        np.testing.assert_allclose(out.detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
    with pytest.raises(Exception):
        cm(tg.randn(4, 7))


def test_train_mode_batchnorm_and_rebound_parameters_are_not_replayed_stale():
    tg.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = tg.randn(8, 3)
    cm = tg.compile(model)
    ref = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ref.load_state_dict(model.state_dict())
    with pytest.warns(RuntimeWarning, match="in place outside the recording"):
        cm(x)              # the running statistics change in place: runs eagerly, once
    ref(x)
    cm(x)
    ref(x)
    np.testing.assert_allclose(model[1].running_mean.numpy(), ref[1].running_mean.numpy(),
                               rtol=1e-6)
    model.eval()           # another mode: recorded again, and replayed
    ref.eval()
    np.testing.assert_allclose(cm(x).detach().numpy(), ref(x).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_dropout_under_compile_draws_new_masks():
    tg.manual_seed(4)
    model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    cm = tg.compile(model)
    x = tg.randn(5, 6)
    with pytest.warns(RuntimeWarning, match="drew random numbers"):
        a = cm(x).detach().numpy()
    b = cm(x).detach().numpy()
    assert not np.array_equal(a == 0, b == 0)     # a replay would repeat the first mask
    model.eval()
    np.testing.assert_allclose(cm(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-6)
