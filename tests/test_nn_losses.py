"""The losses of tapegrad.nn.functional added for issue #14 (smooth_l1_loss, huber_loss,
kl_div, cross_entropy's label smoothing and class probabilities, nll_loss's weight and
ignore_index over extra dimensions, pos_weight) and the loss modules of tapegrad.nn.

Every case is compared with torch 2.13 (values, first and second derivatives, float64 and
float32); the new functionals are also checked against central differences.
"""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from helpers import gradcheck, torch_or_skip

F = tg.nn.functional


def _rng(seed=0):
    return np.random.default_rng(seed)


def _probs(shape, dim=1, seed=3):
    p = _rng(seed).random(shape) + 0.05
    return p / p.sum(axis=dim, keepdims=True)


X = _rng(1).standard_normal((4, 5))
Y = _rng(2).standard_normal((4, 5))
P = _probs((4, 5))
T = np.array([0, 2, -100, 4])                 # one ignored target (the default ignore_index)
W = _rng(4).random(5) + 0.5
X4 = _rng(5).standard_normal((2, 5, 3, 2))
T4 = _rng(6).integers(0, 5, (2, 3, 2))
T4[0, 1, 1] = 1                                # ignored below with ignore_index=1
P4 = _probs((2, 5, 3, 2), seed=7)
Z = _rng(8).standard_normal((3, 4)) * 2
B = (_rng(9).random((3, 4)) > 0.5).astype(float)
PW = np.array([0.5, 1.0, 2.0, 3.0])
S = 1 / (1 + np.exp(-Z))


def _w(T, a, like):
    return None if a is None else T.tensor(a, dtype=like.dtype)


# name -> (f(functional, tensor module, *tensors), arrays, positions of integer arrays)
CASES = {}
for red in ("mean", "sum", "none"):
    CASES[f"smooth_l1-{red}"] = (
        lambda F, T, x, y, r=red: F.smooth_l1_loss(x, y, reduction=r), (X, Y), ())
    CASES[f"smooth_l1-beta0.7-{red}"] = (
        lambda F, T, x, y, r=red: F.smooth_l1_loss(x, y, reduction=r, beta=0.7), (X, Y), ())
    CASES[f"smooth_l1-beta0-{red}"] = (
        lambda F, T, x, y, r=red: F.smooth_l1_loss(x, y, reduction=r, beta=0.0), (X, Y), ())
    CASES[f"huber-{red}"] = (
        lambda F, T, x, y, r=red: F.huber_loss(x, y, reduction=r), (X, Y), ())
    CASES[f"huber-delta0.6-{red}"] = (
        lambda F, T, x, y, r=red: F.huber_loss(x, y, reduction=r, delta=0.6), (X, Y), ())
    CASES[f"kl_div-{red}"] = (
        lambda F, T, x, y, r=red: F.kl_div(x, y, reduction=r), (X, P), ())
    CASES[f"kl_div-log_target-{red}"] = (
        lambda F, T, x, y, r=red: F.kl_div(x, y, reduction=r, log_target=True), (X, Y), ())
    for wname, wa in (("", None), ("-weight", W)):
        CASES[f"ce-index{wname}-{red}"] = (
            lambda F, T, x, t, r=red, wa=wa: F.cross_entropy(x, t, _w(T, wa, x), reduction=r),
            (X, T), (1,))
        CASES[f"ce-index-smooth0.2{wname}-{red}"] = (
            lambda F, T, x, t, r=red, wa=wa: F.cross_entropy(
                x, t, _w(T, wa, x), reduction=r, label_smoothing=0.2), (X, T), (1,))
        CASES[f"ce-probs{wname}-{red}"] = (
            lambda F, T, x, p, r=red, wa=wa: F.cross_entropy(x, p, _w(T, wa, x), reduction=r),
            (X, P), ())
        CASES[f"ce-probs-smooth0.2{wname}-{red}"] = (
            lambda F, T, x, p, r=red, wa=wa: F.cross_entropy(
                x, p, _w(T, wa, x), reduction=r, label_smoothing=0.2), (X, P), ())
        CASES[f"ce-4d-smooth0.3{wname}-{red}"] = (
            lambda F, T, x, t, r=red, wa=wa: F.cross_entropy(
                x, t, _w(T, wa, x), ignore_index=1, reduction=r, label_smoothing=0.3),
            (X4, T4), (1,))
        CASES[f"ce-4d-probs{wname}-{red}"] = (
            lambda F, T, x, p, r=red, wa=wa: F.cross_entropy(
                x, p, _w(T, wa, x), reduction=r, label_smoothing=0.3), (X4, P4), ())
        CASES[f"nll-4d{wname}-{red}"] = (
            lambda F, T, x, t, r=red, wa=wa: F.nll_loss(
                F.log_softmax(x, dim=1), t, _w(T, wa, x), ignore_index=1, reduction=r),
            (X4, T4), (1,))
        CASES[f"nll{wname}-{red}"] = (
            lambda F, T, x, t, r=red, wa=wa: F.nll_loss(x, t, _w(T, wa, x), reduction=r),
            (X, T), (1,))
    CASES[f"bcewl-pos_weight-{red}"] = (
        lambda F, T, z, y, r=red: F.binary_cross_entropy_with_logits(
            z, y, reduction=r, pos_weight=T.tensor(PW, dtype=z.dtype)), (Z, B), ())
    CASES[f"bcewl-pos_weight-weight-{red}"] = (
        lambda F, T, z, y, r=red: F.binary_cross_entropy_with_logits(
            z, y, T.tensor(PW[::-1].copy(), dtype=z.dtype), reduction=r, pos_weight=T.tensor(PW, dtype=z.dtype)), (Z, B), ())
    for fn in ("mse_loss", "l1_loss", "huber_loss"):
        CASES[f"{fn}-weight-{red}"] = (
            lambda F, T, x, y, w, r=red, fn=fn: getattr(F, fn)(x, y, reduction=r, weight=w),
            (X, Y, _rng(10).random((4, 5)) + 0.1), ())
CASES["kl_div-batchmean"] = (lambda F, T, x, y: F.kl_div(x, y, reduction="batchmean"),
                             (X, P), ())
CASES["kl_div-batchmean-log_target"] = (
    lambda F, T, x, y: F.kl_div(x, y, reduction="batchmean", log_target=True), (X, Y), ())
CASES["kl_div-zero-target"] = (lambda F, T, x, y: F.kl_div(x, y, reduction="sum"),
                               (X, np.where(P > 0.2, 0.0, P)), (1,))   # no target grad at 0
CASES["ce-1d-smooth"] = (lambda F, T, x, t: F.cross_entropy(x, t, label_smoothing=0.4),
                         (X[0], np.array(3)), (1,))
CASES["ce-1d-probs-smooth"] = (lambda F, T, x, p: F.cross_entropy(x, p, label_smoothing=0.4),
                               (X[0], P[0]), ())
CASES["ce-smooth1"] = (lambda F, T, x, t: F.cross_entropy(x, t, label_smoothing=1.0),
                       (X, T), (1,))
CASES["ce-soft-targets-not-normalised"] = (
    lambda F, T, x, p: F.cross_entropy(x, p * 3.0 - 0.5), (X, P), ())


def _leaves(M, arrays, ints, dtype):
    out = []
    for i, a in enumerate(arrays):
        if i in ints:
            out.append(M.tensor(a, dtype=dtype if a.dtype.kind == "f" else M.int64))
        else:
            out.append(M.tensor(a, dtype=dtype, requires_grad=True))
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name, dtype):
    torch = torch_or_skip()
    f, arrays, ints = CASES[name]
    a = _leaves(tg, arrays, ints, getattr(tg, dtype))
    b = _leaves(torch, arrays, ints, getattr(torch, dtype))
    out = f(F, tg, *a)
    ref = f(torch.nn.functional, torch, *b)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert out.dtype == getattr(tg, dtype) and tuple(out.shape) == tuple(ref.shape)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), **tol)
    u = _rng(11).standard_normal(tuple(ref.shape))
    out.backward(tg.tensor(u, dtype=out.dtype))
    ref.backward(torch.tensor(u, dtype=ref.dtype))
    for i, (x, y) in enumerate(zip(a, b)):
        if i not in ints:
            np.testing.assert_allclose(x.grad.numpy(), y.grad.numpy(), **tol,
                                       err_msg=f"gradient of input {i}")


# the inputs' and float targets' second derivatives (a Hessian-vector product each)
_SECOND = ["smooth_l1-beta0.7-sum", "huber-delta0.6-mean", "kl_div-batchmean",
           "kl_div-log_target-none", "ce-index-smooth0.2-weight-mean", "ce-probs-smooth0.2-sum",
           "ce-4d-smooth0.3-weight-none", "ce-4d-probs-weight-mean", "ce-1d-smooth",
           "nll-4d-weight-mean", "bcewl-pos_weight-weight-mean"]


@pytest.mark.parametrize("name", _SECOND)
def test_second_derivatives_match_torch(name):
    torch = torch_or_skip()
    f, arrays, ints = CASES[name]
    results = []
    for M, FM in ((tg, F), (torch, torch.nn.functional)):
        xs = _leaves(M, arrays, ints, M.float64)
        diff = [x for i, x in enumerate(xs) if i not in ints]
        out = f(FM, M, *xs)
        u = M.tensor(_rng(12).standard_normal(tuple(out.shape)))
        gs = M.autograd.grad((out * u).sum(), diff, create_graph=True)
        v = [M.tensor(_rng(13 + k).standard_normal(tuple(g.shape))) for k, g in enumerate(gs)]
        s = sum((g * vk).sum() for g, vk in zip(gs, v))
        hv = M.autograd.grad(s, diff, allow_unused=True)
        results.append([np.zeros(tuple(x.shape)) if h is None else h.detach().numpy()
                        for h, x in zip(hv, diff)])
    for mine, ref in zip(*results):
        np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-12)


# ---- central differences (float64) for the new functionals ---------------------------------
_GRADCHECK = ["mse_loss-weight-mean", "l1_loss-weight-sum", "huber_loss-weight-mean",
              "smooth_l1-beta0.7-mean", "smooth_l1-beta0-none", "huber-delta0.6-none",
              "kl_div-none", "kl_div-log_target-sum", "kl_div-batchmean",
              "ce-index-smooth0.2-weight-mean", "ce-index-smooth0.2-sum",
              "ce-probs-smooth0.2-weight-none", "ce-probs-mean", "ce-4d-smooth0.3-weight-mean",
              "ce-4d-probs-weight-sum", "ce-1d-probs-smooth", "nll-4d-weight-mean",
              "bcewl-pos_weight-weight-none"]


@pytest.mark.parametrize("name", _GRADCHECK)
def test_gradcheck(name):
    f, arrays, ints = CASES[name]
    fixed = {i: tg.tensor(arrays[i]) if arrays[i].dtype.kind == "f"
             else tg.tensor(arrays[i], dtype=tg.int64) for i in ints}
    free = [a for i, a in enumerate(arrays) if i not in ints]

    def g(*xs):
        it = iter(xs)
        return f(F, tg, *[fixed[i] if i in fixed else next(it) for i in range(len(arrays))])
    gradcheck(g, free)


def test_smooth_l1_and_huber_at_the_kinks():
    # at |d| = beta the gradient is sign(d) (PyTorch's), at d = 0 it is 0, and the second
    # derivative at 0 is 1 / beta
    torch = torch_or_skip()
    d = np.array([-0.5, 0.0, 0.5, 0.25, -2.0])
    for name, kw in (("smooth_l1_loss", {"beta": 0.5}), ("huber_loss", {"delta": 0.5})):
        grads = []
        for M, FM in ((tg, F), (torch, torch.nn.functional)):
            x = M.tensor(d, requires_grad=True)
            out = getattr(FM, name)(x, M.zeros(5, dtype=M.float64), reduction="sum", **kw)
            (g,) = M.autograd.grad(out, x, create_graph=True)
            (h,) = M.autograd.grad(g.sum(), x)
            grads.append((out.item(), g.detach().numpy(), h.numpy()))
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-14)
        np.testing.assert_array_equal(grads[0][1], grads[1][1])
        np.testing.assert_array_equal(grads[0][2], grads[1][2])


def test_hand_values():
    x = tg.tensor([0.0, 0.5, 3.0], dtype=tg.float64)
    y = tg.zeros(3, dtype=tg.float64)
    # smooth L1, beta 1: 0, 0.5 * 0.25, 3 - 0.5; huber, delta 2: 0, 0.125, 2 * (3 - 1)
    assert F.smooth_l1_loss(x, y, reduction="none").tolist() == [0.0, 0.125, 2.5]
    assert F.huber_loss(x, y, reduction="none", delta=2.0).tolist() == [0.0, 0.125, 4.0]
    # kl_div: y (log y - x), 0 where y = 0
    p = tg.tensor([0.0, 0.5, 0.5], dtype=tg.float64)
    lq = tg.tensor([-1.0, np.log(0.25), np.log(0.75)], dtype=tg.float64)
    expect = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert abs(F.kl_div(lq, p, reduction="sum").item() - expect) < 1e-15
    # uniform scores: every class has log p = -log C, whatever the smoothing
    c = F.cross_entropy(tg.zeros(2, 4), tg.tensor([1, 3]), label_smoothing=0.7)
    assert abs(c.item() - np.log(4)) < 1e-6


def test_kl_div_warnings():
    x, p = tg.tensor(X), tg.tensor(P)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(x, p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for r in ("batchmean", "sum", "none"):
            F.kl_div(x, p, reduction=r)
    assert F.kl_div(tg.tensor(0.5), tg.tensor(0.25), reduction="batchmean").shape == ()


def test_size_warnings():
    x, y = tg.tensor(X), tg.tensor(Y[:1])
    for fn in (F.smooth_l1_loss, F.huber_loss, F.mse_loss, F.l1_loss):
        with pytest.warns(UserWarning, match=r"Using a target size \(\(1, 5\)\) that is "
                                             r"different to the input size \(\(4, 5\)\)"):
            fn(x, y)


@pytest.mark.parametrize("size_average,reduce", [(None, False), (False, None), (True, True),
                                                 (False, True)])
@pytest.mark.parametrize("name", ["smooth_l1_loss", "kl_div"])
def test_legacy_arguments_follow_torch(name, size_average, reduce):
    torch = torch_or_skip()
    res = []
    for M, FM in ((tg, F), (torch, torch.nn.functional)):
        x = M.tensor(X, requires_grad=True)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            out = getattr(FM, name)(x, M.tensor(P), size_average=size_average, reduce=reduce,
                                    reduction="batchmean" if name == "kl_div" else "sum")
        out.sum().backward()
        res.append((out.detach().numpy(), x.grad.numpy(), sorted(str(w.message) for w in seen)))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)
    assert res[0][2] == res[1][2]


def _raises(exc, match, fn, *args, **kw):
    with pytest.raises(exc, match=match):
        fn(*args, **kw)


def test_errors():
    x, y, t, p = tg.tensor(X), tg.tensor(Y), tg.tensor(T), tg.tensor(P)
    for fn, args in ((F.smooth_l1_loss, (x, y)), (F.huber_loss, (x, y)), (F.kl_div, (x, p)),
                     (F.cross_entropy, (x, t)), (F.cross_entropy, (x, p)),
                     (F.nll_loss, (x, t))):
        _raises(ValueError, "'bad' is not a valid value for reduction", fn, *args,
                reduction="bad")
    _raises(ValueError, "not a valid value for reduction", F.kl_div, x, p, reduction="Mean")
    _raises(ValueError, "not a valid value for reduction", F.cross_entropy, x, t,
            reduction="batchmean")
    _raises(RuntimeError, "negative values for beta", F.smooth_l1_loss, x, y, beta=-0.1)
    for d in (0.0, -1.0, float("nan")):
        _raises(RuntimeError, "non-positive values for delta", F.huber_loss, x, y, delta=d)
    _raises(TypeError, "'beta'.* must be Number", F.smooth_l1_loss, x, y, beta="1")
    # label smoothing
    for e in (1.5, -0.1):
        _raises(RuntimeError, f"label_smoothing must be between 0.0 and 1.0. Got: {e}",
                F.cross_entropy, x, t, label_smoothing=e)
    _raises(TypeError, "'label_smoothing'.* must be Number", F.cross_entropy, x, t,
            label_smoothing=None)
    # targets
    _raises(RuntimeError, "Expected floating point type for target with class probabilities, "
            "got Long", F.cross_entropy, x, tg.tensor(np.zeros((4, 5), np.int64)))
    _raises(RuntimeError, "ignore_index is not supported for floating point target",
            F.cross_entropy, x, p, ignore_index=2)
    _raises(RuntimeError, "integer dtype", F.cross_entropy, x, tg.tensor([0.0, 1.0, 2.0, 3.0]))
    _raises(ValueError, r"Expected input batch_size \(4\) to match target batch_size \(3\)",
            F.cross_entropy, x, tg.tensor([0, 1, 2]))
    _raises(RuntimeError, "needs a target of shape", F.cross_entropy, tg.tensor(X4),
            tg.tensor(np.zeros((2, 3), np.int64)))
    _raises(IndexError, "Target 5 is out of bounds", F.cross_entropy, x,
            tg.tensor([0, 1, 5, 2]), label_smoothing=0.1)
    _raises(RuntimeError, "cross_entropy: input must have at least 1 dimension",
            F.cross_entropy, tg.tensor(1.0), tg.tensor(0))
    # weights
    msg = (r"weight tensor should be defined either for all 5 classes or no classes but got "
           r"weight tensor of shape: \[3\]")
    _raises(RuntimeError, msg, F.cross_entropy, x, t, weight=tg.ones(3))
    _raises(RuntimeError, msg, F.cross_entropy, x, p, weight=tg.ones(3))
    _raises(RuntimeError, msg, F.nll_loss, x, t, weight=tg.ones(3))
    _raises(ValueError, "Target size", F.binary_cross_entropy_with_logits, x, y[:1])
    for fn in (F.mse_loss, F.l1_loss, F.huber_loss):
        _raises(ValueError, "Weights and input must have the same size.", fn, x, y,
                weight=tg.ones(5))


def test_errors_match_torch_types():
    torch = torch_or_skip()
    TF = torch.nn.functional
    cases = [
        lambda F, M: F.smooth_l1_loss(M.zeros(2), M.zeros(2), reduction="bad"),
        lambda F, M: F.smooth_l1_loss(M.zeros(2), M.zeros(2), beta=-1.0),
        lambda F, M: F.huber_loss(M.zeros(2), M.zeros(2), delta=0.0),
        lambda F, M: F.kl_div(M.zeros(2), M.zeros(2), reduction="bad"),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.tensor([0, 1]), label_smoothing=1.5),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.zeros(2, 3), ignore_index=0),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.zeros((2, 3), dtype=M.int64)),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.tensor([0.0, 1.0])),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.tensor([0, 1, 2])),
        lambda F, M: F.cross_entropy(M.zeros(2, 3), M.tensor([0, 1]), weight=M.ones(2)),
        lambda F, M: F.nll_loss(M.zeros(2, 3), M.tensor([0, 1]), weight=M.ones(4)),
        lambda F, M: F.binary_cross_entropy_with_logits(M.zeros(2, 3), M.zeros(1, 3)),
    ]
    for k, case in enumerate(cases):
        with pytest.raises(Exception) as ref:
            case(TF, torch)
        with pytest.raises(Exception) as mine:
            case(F, tg)
        assert type(mine.value) is type(ref.value), (k, mine.value, ref.value)


def test_probabilities_promote_as_torch_and_grad_to_the_target():
    torch = torch_or_skip()
    res = []
    for M, FM in ((tg, F), (torch, torch.nn.functional)):
        x = M.tensor(X, dtype=M.float32, requires_grad=True)
        p = M.tensor(P, requires_grad=True)              # float64 target
        out = FM.cross_entropy(x, p, label_smoothing=0.1)
        out.backward()
        assert x.grad.dtype == M.float32 and p.grad.dtype == M.float64
        res.append((str(out.dtype).split(".")[-1], out.item(), p.grad.numpy()))
    assert res[0][0] == res[1][0] == "float64"
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-6)
    np.testing.assert_allclose(res[0][2], res[1][2], rtol=1e-6, atol=1e-7)


def test_all_targets_ignored_with_smoothing_is_nan_like_torch():
    torch = torch_or_skip()
    t = np.full(4, -100)
    mine = F.cross_entropy(tg.tensor(X), tg.tensor(t), label_smoothing=0.2).item()
    ref = torch.nn.functional.cross_entropy(torch.tensor(X), torch.tensor(t),
                                            label_smoothing=0.2).item()
    assert np.isnan(mine) and np.isnan(ref)


# ---- the loss modules ------------------------------------------------------------------------
from tapegrad.nn.modules import loss as L        # noqa: E402


def _opt(T, dtype, **kw):
    """Constructor options, with arrays made tensors of `dtype` in the module T."""
    return {k: T.tensor(v, dtype=dtype) if isinstance(v, np.ndarray) else v
            for k, v in kw.items()}


# name -> (class name, constructor options, arrays, positions of target arrays without grad)
MODULES = {}
for red in ("mean", "sum", "none"):
    MODULES[f"MSELoss-{red}"] = ("MSELoss", dict(reduction=red), (X, Y), ())
    MODULES[f"L1Loss-{red}"] = ("L1Loss", dict(reduction=red), (X, Y), ())
    MODULES[f"SmoothL1Loss-{red}"] = ("SmoothL1Loss", dict(reduction=red, beta=0.6), (X, Y), ())
    MODULES[f"HuberLoss-{red}"] = ("HuberLoss", dict(reduction=red, delta=0.6), (X, Y), ())
    MODULES[f"CrossEntropyLoss-{red}"] = (
        "CrossEntropyLoss", dict(reduction=red), (X, T), (1,))
    MODULES[f"CrossEntropyLoss-all-{red}"] = (
        "CrossEntropyLoss", dict(weight=W, ignore_index=2, reduction=red, label_smoothing=0.15),
        (X, np.array([0, 2, 1, 4])), (1,))
    MODULES[f"CrossEntropyLoss-probs-{red}"] = (
        "CrossEntropyLoss", dict(weight=W, reduction=red, label_smoothing=0.15), (X4, P4), ())
    MODULES[f"NLLLoss-{red}"] = ("NLLLoss", dict(weight=W, ignore_index=1, reduction=red),
                                 (X4, T4), (1,))
    MODULES[f"BCELoss-{red}"] = ("BCELoss", dict(weight=PW, reduction=red), (S, B), (1,))
    MODULES[f"BCEWithLogitsLoss-{red}"] = (
        "BCEWithLogitsLoss", dict(weight=PW[::-1].copy(), reduction=red, pos_weight=PW),
        (Z, B), ())
    MODULES[f"KLDivLoss-{red}"] = ("KLDivLoss", dict(reduction=red), (X, P), ())
    MODULES[f"KLDivLoss-log_target-{red}"] = (
        "KLDivLoss", dict(reduction=red, log_target=True), (X, Y), ())
MODULES["KLDivLoss-batchmean"] = ("KLDivLoss", dict(reduction="batchmean"), (X, P), ())
MODULES["BCEWithLogitsLoss-default"] = ("BCEWithLogitsLoss", {}, (Z, B), ())
MODULES["CrossEntropyLoss-default-probs"] = ("CrossEntropyLoss", {}, (X, P), ())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_match_torch(name, dtype):
    torch = torch_or_skip()
    cls, kw, arrays, ints = MODULES[name]
    outs, grads = [], []
    for M, NN in ((tg, L), (torch, torch.nn)):
        dt = getattr(M, dtype)
        mod = getattr(NN, cls)(**_opt(M, dt, **kw))
        xs = _leaves(M, arrays, ints, dt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # KLDivLoss's 'mean'
            out = mod(*xs)
        u = _rng(21).standard_normal(tuple(out.shape))
        out.backward(M.tensor(u, dtype=out.dtype))
        outs.append(out.detach().numpy())
        grads.append([x.grad.numpy() for i, x in enumerate(xs) if i not in ints])
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert outs[0].dtype == outs[1].dtype and outs[0].shape == outs[1].shape
    np.testing.assert_allclose(outs[0], outs[1], **tol)
    for g, h in zip(*grads):
        np.testing.assert_allclose(g, h, **tol)


def test_module_reprs_attributes_and_buffers():
    torch = torch_or_skip()
    for cls, kw in (("MSELoss", {}), ("L1Loss", {}), ("SmoothL1Loss", {"beta": 0.5}),
                    ("HuberLoss", {"delta": 2.0}), ("KLDivLoss", {"log_target": True}),
                    ("NLLLoss", {"weight": W, "ignore_index": 3}),
                    ("CrossEntropyLoss", {}),
                    ("CrossEntropyLoss", {"weight": W, "label_smoothing": 0.1}),
                    ("BCELoss", {"weight": PW}), ("BCELoss", {}),
                    ("BCEWithLogitsLoss", {"pos_weight": PW}),
                    ("BCEWithLogitsLoss", {"weight": PW, "pos_weight": PW}),
                    ("BCEWithLogitsLoss", {})):
        mine = getattr(L, cls)(**_opt(tg, tg.float32, **kw))
        ref = getattr(torch.nn, cls)(**_opt(torch, torch.float32, **kw))
        assert isinstance(mine, tg.nn.Module)
        assert repr(mine) == repr(ref) == f"{cls}()"
        assert list(mine.state_dict()) == list(ref.state_dict()), cls
        assert [k for k, _ in mine.named_buffers()] == [k for k, _ in ref.named_buffers()]
        assert list(mine.parameters()) == []
        for attr in ("reduction", "ignore_index", "label_smoothing", "beta", "delta",
                     "log_target", "weight", "pos_weight"):
            assert hasattr(mine, attr) == hasattr(ref, attr), (cls, attr)
            if hasattr(ref, attr) and not isinstance(getattr(ref, attr), torch.Tensor):
                assert getattr(mine, attr) == getattr(ref, attr), (cls, attr)
    m = L.CrossEntropyLoss(weight=tg.tensor(W, dtype=tg.float32)).double()
    assert m.weight.dtype == tg.float64
    assert m(tg.tensor(X), tg.tensor(T)).dtype == tg.float64
    w = tg.tensor(W)
    assert L.NLLLoss(weight=w).weight is w
    with pytest.raises(TypeError):
        L.CrossEntropyLoss(weight=[1.0, 2.0])


def test_module_bad_reduction_raises_when_called_as_in_torch():
    torch = torch_or_skip()
    for cls, args in (("MSELoss", (X, Y)), ("L1Loss", (X, Y)), ("SmoothL1Loss", (X, Y)),
                      ("HuberLoss", (X, Y)), ("KLDivLoss", (X, P)),
                      ("CrossEntropyLoss", (X, T)), ("NLLLoss", (X, T)), ("BCELoss", (S, B)),
                      ("BCEWithLogitsLoss", (Z, B))):
        for M, NN in ((tg, L), (torch, torch.nn)):
            mod = getattr(NN, cls)(reduction="avg")       # constructing is fine
            with pytest.raises(ValueError, match="avg'? is not a valid value for reduction"):
                mod(*[M.tensor(a) for a in args])


def test_module_legacy_arguments():
    torch = torch_or_skip()
    for kw, red in (({"size_average": False}, "sum"), ({"reduce": False}, "none"),
                    ({"size_average": True, "reduce": True}, "mean")):
        for cls in ("MSELoss", "L1Loss", "SmoothL1Loss", "KLDivLoss", "CrossEntropyLoss",
                    "NLLLoss", "BCELoss", "BCEWithLogitsLoss"):
            with pytest.warns(UserWarning, match=f"please use reduction='{red}' instead"):
                mine = getattr(L, cls)(**kw)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert mine.reduction == getattr(torch.nn, cls)(**kw).reduction == red


def test_module_errors_pass_through():
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        L.CrossEntropyLoss(label_smoothing=2.0)(tg.tensor(X), tg.tensor(T))
    with pytest.raises(RuntimeError, match="non-positive values for delta"):
        L.HuberLoss(delta=0.0)(tg.tensor(X), tg.tensor(Y))
    with pytest.raises(RuntimeError, match="Expected floating point type for target"):
        L.CrossEntropyLoss()(tg.tensor(X), tg.tensor(np.zeros((4, 5), np.int64)))
    with pytest.raises(ValueError, match="Target size"):
        L.BCEWithLogitsLoss()(tg.tensor(Z), tg.tensor(B[:1]))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        L.BCELoss()(tg.tensor(Z), tg.tensor(B))
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        L.KLDivLoss()(tg.tensor(X), tg.tensor(P))


def test_module_in_a_training_step():
    # a loss module's output backpropagates into a model's parameters, hooks see it
    torch = torch_or_skip()
    w0 = _rng(30).standard_normal((5, 5))
    res = []
    for M, NN in ((tg, L), (torch, torch.nn)):
        w = M.tensor(w0, requires_grad=True)
        loss = NN.CrossEntropyLoss(label_smoothing=0.1)
        seen = []
        loss.register_forward_hook(lambda m, args, out: seen.append(out.item()))
        out = loss(M.tensor(X) @ w, M.tensor(T))
        out.backward()
        assert seen == [out.item()]
        res.append((out.item(), w.grad.numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-13)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12, atol=1e-14)


def test_label_smoothing_under_compile_sees_each_calls_targets():
    def f(x, t):
        return F.cross_entropy(x, t, label_smoothing=0.2)
    c = tg.compile(f)
    x = tg.tensor(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # it reads the targets: compile runs it eagerly
        for t in ([0, 1, 2, 3], [4, 4, -100, 0], [1, 1, 1, 1]):
            assert c(x, tg.tensor(t)).item() == f(x, tg.tensor(t)).item()
