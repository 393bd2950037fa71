"""Backward hooks and anomaly mode, checked against PyTorch's values and order."""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from helpers import in_fresh_thread, torch_or_skip


def _np(t):
    return t.detach().numpy()


def _run_hooks(T):
    """A graph with every kind of hook; returns (calls in order, grads, hooked values)."""
    calls = []
    x = T.tensor([1.0, -2.0, 3.0], dtype=T.float64, requires_grad=True)
    w = T.tensor([0.5, 0.25, 2.0], dtype=T.float64, requires_grad=True)
    h = x * w
    h.register_hook(lambda g: calls.append(("h", _np(g).tolist())) or g * 2)
    t = T.tanh(h)
    t.retain_grad()
    t.register_hook(lambda g: calls.append(("t", _np(g).tolist())))
    t.grad_fn.register_prehook(lambda go: calls.append(("pre", _np(go[0]).tolist())))
    t.grad_fn.register_hook(lambda gi, go: calls.append(("post", _np(gi[0]).tolist())))
    x.register_hook(lambda g: calls.append(("x", _np(g).tolist())))
    x.register_post_accumulate_grad_hook(lambda p: calls.append(("xacc", _np(p.grad).tolist())))
    (t * t).sum().backward()
    return calls, [_np(x.grad), _np(w.grad), _np(t.grad)]


def test_hooks_run_in_torchs_order_with_torchs_values():
    torch = torch_or_skip()
    ours, og = _run_hooks(tg)
    theirs, tgr = _run_hooks(torch)
    assert [c[0] for c in ours] == [c[0] for c in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a[1], b[1], rtol=1e-12, err_msg=a[0])
    for a, b in zip(og, tgr):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_hook_replaces_the_gradient_and_handle_removes_it():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    handle = h.register_hook(lambda g: g * 10)
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [30.0, 30.0])
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    lh = x.register_hook(lambda g: g * 0)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0])
    lh.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_gradient_clipping_hook_and_grad_sees_leaf_hooks():
    w = tg.tensor([1.0, -4.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: g.clamp(-1.0, 1.0))
    (w * tg.tensor([5.0, -0.5, 3.0])).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, -0.5, 1.0])
    (g,) = tg.autograd.grad((w * 5).sum(), w)
    np.testing.assert_allclose(g.numpy(), [1.0, 1.0, 1.0])


def test_hook_errors():
    x = tg.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't "
                                           "require gradient"):
        x.register_hook(lambda g: g)
    y = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="post accumulate grad hooks cannot be registered "
                                           "on non-leaf tensors"):
        (y * 2).register_post_accumulate_grad_hook(lambda t: None)
    z = y * 2
    z.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        z.sum().backward()
    (y * 2).sum().backward()           # the library stays usable
    np.testing.assert_allclose(y.grad.numpy(), [2.0, 2.0])


def test_hooks_under_create_graph_and_on_function_nodes():
    calls = []

    class Sq(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = tg.tensor([1.0, 3.0], dtype=tg.float64, requires_grad=True)
    y = Sq.apply(x)
    y.grad_fn.register_prehook(lambda go: calls.append("pre") or (go[0] * 2,))
    y.grad_fn.register_hook(lambda gi, go: calls.append("post"))
    h = y * 1
    h.register_hook(lambda g: calls.append("h"))
    (g,) = tg.autograd.grad(h.sum(), x, create_graph=True)
    assert calls == ["h", "pre", "post"]
    np.testing.assert_allclose(g.detach().numpy(), [4.0, 12.0])
    (g2,) = tg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g2.numpy(), [4.0, 4.0])


def test_unused_hooks_leave_backward_one_call(monkeypatch):
    from tapegrad.autograd import engine
    n = {"sweep": 0}
    real = engine.K.sweep

    def counted(*a):
        n["sweep"] += 1
        return real(*a)

    monkeypatch.setattr(engine.K, "sweep", counted)

    def body():        # a fresh thread's tape: hooked records of other tests' live graphs
        x = tg.tensor(np.ones(4), requires_grad=True)     # would each add a segment
        y = x
        for _ in range(50):
            y = tg.sin(y) + 1
        handle = y.register_hook(lambda g: None)
        handle.remove()
        y.sum().backward()
    in_fresh_thread(body)
    assert n["sweep"] == 1


def test_anomaly_mode_names_the_op_and_shows_the_forward_line():
    x = tg.tensor([-1.0, 4.0], requires_grad=True)
    with pytest.warns(UserWarning, match="Anomaly Detection has been enabled"):
        mode = tg.autograd.detect_anomaly()
    with mode:
        y = tg.sqrt(x * 0.0 + x)      # the sqrt of -1 is NaN, and so its gradient
        z = y.sum()
        with pytest.warns(UserWarning, match="Error detected in SqrtBackward0. Traceback of "
                                             "forward call that caused the error:(.|\n)*"
                                             "test_hooks.py"):
            with pytest.raises(RuntimeError, match="Function 'SqrtBackward0' returned nan "
                                                   "values in its 0th output."):
                z.backward()
    assert not tg.autograd.is_anomaly_enabled()
    (tg.sqrt(x * 0.0 + x)).sum().backward()      # off again: NaN passes silently
    assert np.isnan(x.grad.numpy()[0])


def test_anomaly_matches_torchs_message():
    torch = torch_or_skip()
    msgs = []
    for T in (tg, torch):
        x = T.tensor([0.0, 2.0], requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with T.autograd.detect_anomaly():
                y = (T.log(x) * 0.0).sum()       # 0 * inf
                with pytest.raises(RuntimeError) as e:
                    y.backward()
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_set_detect_anomaly_and_results_unchanged():
    x = tg.tensor([0.5, 1.5, 2.5], dtype=tg.float64, requires_grad=True)
    y = (tg.exp(x) @ tg.tensor([[1.0], [2.0], [3.0]], dtype=tg.float64)).sum()
    tg.autograd.set_detect_anomaly(True)
    try:
        assert tg.autograd.is_anomaly_enabled()
        z = (tg.exp(x) @ tg.tensor([[1.0], [2.0], [3.0]], dtype=tg.float64)).sum()
        (g_on,) = tg.autograd.grad(z, x)
    finally:
        tg.autograd.set_detect_anomaly(False)
    (g_off,) = tg.autograd.grad(y, x)
    np.testing.assert_allclose(g_on.numpy(), g_off.numpy(), rtol=1e-15)
    np.testing.assert_allclose(g_on.numpy(), np.exp(x.data) * [1, 2, 3], rtol=1e-15)
    with tg.autograd.set_detect_anomaly(True):
        assert tg.autograd.is_anomaly_enabled()
    assert not tg.autograd.is_anomaly_enabled()
