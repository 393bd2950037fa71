"""tapegrad.optim and optim.lr_scheduler against PyTorch's: the same parameters and the same
gradients (drawn with numpy each step) for 60 steps, compared after every step."""
import math
import warnings

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.optim as optim
from tapegrad.optim import _kernels, lr_scheduler

from helpers import torch_or_skip

STEPS = 60
SHAPES = [(3, 4), (5,), (), (2, 1, 3)]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=1e-6, atol=1e-6)}

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.001, alpha=0.9, momentum=0.7, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.001, centered=True, momentum=0.5, maximize=True)),
    ("RMSprop", dict(lr=0.003, centered=True, eps=1e-3)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1,
                     initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, maximize=True, eps=1e-6)),
]


def _params(torch, rng, dtype, shapes=SHAPES):
    vals = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [tg.tensor(v.copy(), requires_grad=True) for v in vals]
    theirs = [torch.tensor(v.copy(), requires_grad=True) for v in vals]
    return ours, theirs


def _set_grads(rng, ours, theirs, skip=()):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if i in skip:
            a.grad = b.grad = None
            continue
        g = rng.standard_normal(a.shape).astype(a.data.dtype)
        a.grad = tg.tensor(g.copy())
        b.grad = torch_from(b, g)


def torch_from(like, g):
    import torch
    return torch.tensor(g.copy(), dtype=like.dtype)


def _compare(ours, theirs, dtype, msg=""):
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), err_msg=msg, **TOL[dtype])


def _run(ours_opt, theirs_opt, ours, theirs, rng, dtype, steps=STEPS, skip_every=0):
    for k in range(steps):
        skip = {k % len(ours)} if skip_every and k % skip_every == 0 else ()
        _set_grads(rng, ours, theirs, skip)
        ours_opt.step()
        theirs_opt.step()
        _compare(ours, theirs, dtype, f"step {k}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,opts", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch(name, opts, dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    ours, theirs = _params(torch, rng, dtype)
    a = getattr(optim, name)(ours, **opts)
    b = getattr(torch.optim, name)(theirs, **opts)
    _run(a, b, ours, theirs, rng, dtype, skip_every=7)   # some steps leave a grad unset
    for p, q in zip(ours, theirs):
        sa, sb = a.state[p], b.state[q]
        assert sorted(sa) == sorted(k for k, v in sb.items() if v is not None)
        for key in sa:
            np.testing.assert_allclose(sa[key].data, sb[key].numpy(), **TOL[dtype])
            if key != "step":
                assert sa[key].data.dtype == dtype


def test_groups_and_mixed_dtypes():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    o64, t64 = _params(torch, rng, np.float64, [(4, 3), (2,)])
    o32, t32 = _params(torch, rng, np.float32, [(3,), (2, 2)])
    mk = lambda lib, a, b: lib.Adam([{"params": a}, {"params": b, "lr": 0.05, "amsgrad": True,
                                                      "betas": (0.5, 0.9)}],
                                    lr=0.01, weight_decay=0.01)
    a = mk(optim, [o64[0], o32[0]], [o64[1], o32[1]])
    b = mk(torch.optim, [t64[0], t32[0]], [t64[1], t32[1]])
    for k in range(STEPS):
        _set_grads(rng, o64 + o32, t64 + t32)
        a.step()
        b.step()
        _compare(o64, t64, np.float64)
        _compare(o32, t32, np.float32)


def test_sgd_groups_different_momentum():
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    ours, theirs = _params(torch, rng, np.float64)
    mk = lambda lib, p: lib.SGD([{"params": p[:2], "momentum": 0.9, "nesterov": True},
                                 {"params": p[2:], "lr": 0.3}], lr=0.1)
    _run(mk(optim, ours), mk(torch.optim, theirs), ours, theirs, rng, np.float64)


@pytest.mark.parametrize("name,opts", [("SGD", dict(lr=0.1, momentum=0.9)),
                                       ("Adam", dict(lr=0.01, amsgrad=True)),
                                       ("RMSprop", dict(momentum=0.5, centered=True)),
                                       ("Adagrad", dict(lr_decay=0.1))])
def test_state_dict_round_trip(name, opts):
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    ours, theirs = _params(torch, rng, np.float64)
    a = getattr(optim, name)(ours, **opts)
    b = getattr(torch.optim, name)(theirs, **opts)
    _run(a, b, ours, theirs, rng, np.float64, steps=20)
    sd = a.state_dict()
    ref = b.state_dict()
    assert sorted(sd["state"]) == sorted(ref["state"])
    assert [g["params"] for g in sd["param_groups"]] == [g["params"] for g in ref["param_groups"]]
    assert set(ref["param_groups"][0]) - set(sd["param_groups"][0]) == set()
    # a fresh optimizer over copies of the parameters continues where the first left off
    copies = [tg.tensor(p.data.copy(), requires_grad=True) for p in ours]
    a2 = getattr(optim, name)(copies, lr=123.0)
    a2.load_state_dict(sd)
    assert a2.param_groups[0]["lr"] == a.param_groups[0]["lr"]
    _run(a2, b, copies, theirs, rng, np.float64, steps=20)
    assert not np.shares_memory(a2.state[copies[0]][list(sd["state"][0])[0]].data,
                                sd["state"][0][list(sd["state"][0])[0]].data)
    # PyTorch's own state_dict loads too (its tensors become ours)
    copies = [tg.tensor(p.detach().numpy().copy(), requires_grad=True) for p in theirs]
    a3 = getattr(optim, name)(copies)
    a3.load_state_dict(b.state_dict())
    _run(a3, b, copies, theirs, rng, np.float64, steps=10)


def test_load_state_dict_errors():
    p = [tg.zeros(2, requires_grad=True), tg.zeros(3, requires_grad=True)]
    a = optim.SGD(p, lr=0.1)
    sd = a.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": p[:1]}, {"params": p[1:]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD(p[:1], lr=0.1).load_state_dict(sd)


def test_zero_grad():
    torch = torch_or_skip()
    w = tg.ones(3, requires_grad=True)
    tw = torch.ones(3, requires_grad=True)
    opt, topt = optim.SGD([w], lr=0.1), torch.optim.SGD([tw], lr=0.1)
    (w * w).sum().backward()
    (tw * tw).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    topt.zero_grad(set_to_none=False)
    assert w.grad is g and not w.grad.requires_grad
    np.testing.assert_array_equal(w.grad.data, tw.grad.numpy())
    (w * w).sum().backward()
    (tw * tw).sum().backward()
    np.testing.assert_array_equal(w.grad.data, tw.grad.numpy())
    opt.zero_grad()
    topt.zero_grad()
    assert w.grad is None and tw.grad is None
    before = w.data.copy()
    opt.step()                    # no grad: the parameter is skipped
    np.testing.assert_array_equal(w.data, before)
    w.grad, tw.grad = tg.ones(3), torch.ones(3)
    opt.step()
    topt.step()
    assert opt.state_dict()["state"] == topt.state_dict()["state"] == {}
    np.testing.assert_array_equal(w.data, tw.detach().numpy())


def test_one_kernel_call_per_dtype(monkeypatch):
    calls = []
    real = _kernels.adam_step

    def counting(*args):
        calls.append(args[0].shape[0])
        return real(*args)
    monkeypatch.setattr(_kernels, "adam_step", counting)
    rng = np.random.default_rng(4)
    p64 = [tg.tensor(rng.standard_normal(s), requires_grad=True) for s in [(3,), (2, 2)] * 10]
    p32 = [tg.tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
           for _ in range(7)]
    opt = optim.Adam([{"params": p64[:5] + p32[:3]}, {"params": p64[5:] + p32[3:], "lr": 0.1}])
    for p in p64 + p32:
        p.grad = tg.tensor(np.ones_like(p.data))
    opt.step()
    assert sorted(calls) == [7, 20]
    p64[0].grad = None
    calls.clear()
    opt.step()
    assert sorted(calls) == [7, 19]


def test_step_invalidates_saved_graph_and_closure():
    torch = torch_or_skip()
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    tx = torch.tensor([1.0, 2.0], requires_grad=True)
    y, ty = (x * x).sum(), (tx * tx).sum()
    x.grad, tx.grad = tg.ones(2), torch.ones(2)
    optim.SGD([x], lr=0.1).step()
    torch.optim.SGD([tx], lr=0.1).step()
    assert x._version == tx._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()

    opt = optim.SGD([x], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (x * x).sum()
        loss.backward()
        return loss
    with tg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(0.81 + 3.61, rel=1e-6)
    np.testing.assert_allclose(x.data, [0.0, 0.0], atol=1e-7)


def test_non_contiguous_parameter():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    v = rng.standard_normal((4, 3))
    w = tg.tensor(v.copy(), requires_grad=True)
    w.data = w.data.T          # a transposed view as the parameter's storage
    tw = torch.tensor(v.T.copy(), requires_grad=True)
    a, b = optim.Adam([w], lr=0.1), torch.optim.Adam([tw], lr=0.1)
    for _ in range(5):
        g = rng.standard_normal((3, 4))
        w.grad, tw.grad = tg.tensor(g.copy()), torch.tensor(g)
        a.step()
        b.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)
    g = tg.tensor(rng.standard_normal((4, 3)))
    for _ in range(3):          # a transposed gradient, the same one on every step
        w.grad, tw.grad = g.t(), torch.tensor(g.data.T.copy())
        a.step()
        b.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam"])
def test_zero_over_zero_is_nan_as_in_torch(name):
    torch = torch_or_skip()
    w, tw = tg.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    a, b = getattr(optim, name)([w], eps=0.0), getattr(torch.optim, name)([tw], eps=0.0)
    w.grad, tw.grad = tg.zeros(3), torch.zeros(3)
    a.step()         # 0 / 0: no ZeroDivisionError from compiled code, nan as in PyTorch
    b.step()
    np.testing.assert_array_equal(w.data, tw.detach().numpy())
    assert np.isnan(w.data).all()


def test_replaced_parameter_data_is_caught():
    w = tg.zeros(4, requires_grad=True)
    opt = optim.Adam([w])
    w.grad = tg.ones(4)
    opt.step()
    w.data = np.zeros(40, dtype=np.float32)
    w.grad = tg.ones(40)
    with pytest.raises(RuntimeError, match="optimizer state 'exp_avg'.*must match"):
        opt.step()


def test_failed_step_changes_nothing():
    torch = torch_or_skip()
    rng = np.random.default_rng(8)
    ours, theirs = _params(torch, rng, np.float64, [(3,), (4,)])
    bad = tg.zeros(2, requires_grad=True)
    a = optim.SGD([{"params": ours}, {"params": [bad], "lr": 0.5}], lr=0.1, momentum=0.9)
    b = torch.optim.SGD(theirs, lr=0.1, momentum=0.9)
    bad.grad = tg.ones(2)
    a.step()
    bad.data = np.zeros(5, dtype=np.float32)     # its momentum buffer no longer fits
    bad.grad = tg.ones(5)
    _set_grads(rng, ours, theirs)
    before = [p.data.copy() for p in ours]
    with pytest.raises(RuntimeError, match="momentum_buffer"):
        a.step()
    for p, v in zip(ours, before):
        np.testing.assert_array_equal(p.data, v)
        assert p not in a.state
    bad.grad = None
    a.step()                  # the first real step: the buffers start as the gradient
    b.step()
    _compare(ours, theirs, np.float64)


ERRORS = [
    ("SGD", dict(lr=-1.0)), ("SGD", dict(momentum=-0.5)), ("SGD", dict(weight_decay=-1)),
    ("SGD", dict(nesterov=True)), ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=-1.0)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
    ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-0.1)),
    ("AdamW", dict(lr=-0.1)), ("RMSprop", dict(alpha=-0.1)), ("RMSprop", dict(momentum=-1)),
    ("RMSprop", dict(eps=-1)), ("Adagrad", dict(lr_decay=-1)),
    ("Adagrad", dict(initial_accumulator_value=-1)), ("Adagrad", dict(eps=-1)),
]


@pytest.mark.parametrize("name,opts", ERRORS)
def test_bad_options_match_torch(name, opts):
    torch = torch_or_skip()
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)], **opts)
    with pytest.raises(ValueError) as ours:
        getattr(optim, name)([tg.zeros(1, requires_grad=True)], **opts)
    assert str(ours.value) == str(theirs.value)


def test_bad_params_match_torch():
    torch = torch_or_skip()

    def both(make_ours, make_theirs, exc):
        with pytest.raises(exc) as t:
            make_theirs()
        with pytest.raises(exc) as o:
            make_ours()
        return str(o.value), str(t.value)
    o, t = both(lambda: optim.SGD([], lr=0.1), lambda: torch.optim.SGD([], lr=0.1), ValueError)
    assert o == t == "optimizer got an empty parameter list"
    x, tx = tg.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    o, t = both(lambda: optim.SGD([x * 2]), lambda: torch.optim.SGD([tx * 2]), ValueError)
    assert o == t == "can't optimize a non-leaf Tensor"
    o, t = both(lambda: optim.SGD(x), lambda: torch.optim.SGD(tx), TypeError)
    assert o.startswith("params argument given to the optimizer should be an iterable")
    o, t = both(lambda: optim.SGD([{"params": [x]}, {"params": [x]}]),
                lambda: torch.optim.SGD([{"params": [tx]}, {"params": [tx]}]), ValueError)
    assert o == t == "some parameters appear in more than one parameter group"
    o, t = both(lambda: optim.SGD([x, 1.0]), lambda: torch.optim.SGD([tx, 1.0]), TypeError)
    assert o == t == "optimizer can only optimize Tensors, but one of the params is float"
    o, t = both(lambda: optim.SGD([{"params": {x}}]),
                lambda: torch.optim.SGD([{"params": {tx}}]), TypeError)
    assert o == t
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([x, x])
    opt = optim.SGD([x], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one"):
        opt.add_param_group({"params": x})
    opt.add_param_group({"params": tg.zeros(1, requires_grad=True), "momentum": 0.9})
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["momentum"] == 0.9
    assert "Parameter Group 1" in repr(opt) and repr(opt).startswith("SGD (")


# ---- schedulers ----------------------------------------------------------------------------

SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=13, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e) + 0.1 * (e % 3))),
]


def _sched_pair(torch, name, opts, lr=0.3):
    a = optim.SGD([{"params": [tg.zeros(1, requires_grad=True)]},
                   {"params": [tg.zeros(1, requires_grad=True)], "lr": 0.05}], lr=lr)
    b = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                         {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05}], lr=lr)
    return a, b, getattr(lr_scheduler, name)(a, **opts), \
        getattr(torch.optim.lr_scheduler, name)(b, **opts)


@pytest.mark.parametrize("name,opts", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_matches_torch(name, opts):
    torch = torch_or_skip()
    a, b, sa, sb = _sched_pair(torch, name, opts)
    assert sa.get_last_lr() == sb.get_last_lr() and sa.last_epoch == sb.last_epoch == 0
    for k in range(60):
        a.step()
        b.step()
        sa.step()
        sb.step()
        assert sa.last_epoch == sb.last_epoch
        assert sa.get_last_lr() == pytest.approx(sb.get_last_lr(), rel=1e-15, abs=1e-18)
        assert [g["lr"] for g in a.param_groups] == sa.get_last_lr()
        if k == 30:    # resume from a state_dict into new schedulers over the same optimizers
            sd = sa.state_dict()
            assert set(sd) >= {"last_epoch", "base_lrs", "_last_lr"}
            sa = getattr(lr_scheduler, name)(a, **opts)
            sa.load_state_dict(sd)
            sb2 = getattr(torch.optim.lr_scheduler, name)(b, **opts)
            sb2.load_state_dict(sb.state_dict())
            sb = sb2
    if name != "LambdaLR":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in (3, 17, 40):
                sa.step(e)
                sb.step(e)
                assert sa.get_last_lr() == pytest.approx(sb.get_last_lr(), rel=1e-15)


def test_scheduler_resume_and_errors():
    torch = torch_or_skip()
    a = optim.SGD([tg.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(a, 3, last_epoch=5)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), 3)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        lr_scheduler.LambdaLR(a, [lambda e: 1, lambda e: 2])
    a.param_groups[0]["initial_lr"] = 1.0
    b = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    b.param_groups[0]["initial_lr"] = 1.0
    sa = lr_scheduler.CosineAnnealingLR(a, T_max=8, last_epoch=3)
    sb = torch.optim.lr_scheduler.CosineAnnealingLR(b, T_max=8, last_epoch=3)
    for _ in range(20):
        sa.step()
        sb.step()
        assert sa.get_last_lr() == pytest.approx(sb.get_last_lr(), rel=1e-15)
    assert sa.get_last_lr()[0] != pytest.approx(0.5 * (1 + math.cos(math.pi * 23 / 8)))


def test_scheduler_stepped_before_optimizer_warns():
    torch = torch_or_skip()
    for lib, lib_sched in ((optim, lr_scheduler), (torch.optim, torch.optim.lr_scheduler)):
        zeros = tg.zeros if lib is optim else torch.zeros
        opt = lib.SGD([zeros(1, requires_grad=True)], lr=0.1)
        sched = lib_sched.StepLR(opt, 2)
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            sched.step()
        opt = lib.SGD([zeros(1, requires_grad=True)], lr=0.1)
        sched = lib_sched.StepLR(opt, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            opt.step()
            sched.step()
            sched.step()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_training_loop_with_backward_matches_torch(dtype):
    torch = torch_or_skip()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.standard_normal((16, 2)).astype(dtype)
    ours, theirs = _params(torch, rng, dtype, [(5, 8), (8,), (8, 2)])
    a = optim.AdamW([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.003}], lr=0.01)
    b = torch.optim.AdamW([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.003}],
                          lr=0.01)
    sa = lr_scheduler.StepLR(a, 10, 0.5)
    sb = torch.optim.lr_scheduler.StepLR(b, 10, 0.5)

    def loss(lib, p, xs, ys):
        return ((lib.tanh(xs @ p[0] + p[1]) @ p[2] - ys) ** 2).mean()
    for k in range(50):
        for lib, opt, p in ((tg, a, ours), (torch, b, theirs)):
            opt.zero_grad()
            loss(lib, p, lib.tensor(x), lib.tensor(y)).backward()
            opt.step()
        sa.step()
        sb.step()
        tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), err_msg=f"step {k}", **tol)
