"""Custom autograd.Function: PyTorch's definition, one record on the tape.

Values and gradients are checked against closed forms and against torch.autograd.Function
running the same class body; errors against PyTorch's texts.
"""
import warnings

import numpy as np
import pytest

import tapegrad as tg
from helpers import assert_steady, gradcheck, in_fresh_thread, torch_or_skip


def legendre(T):
    """PyTorch's 'Learning PyTorch with Examples' Function, written against system T."""
    class LegendrePolynomial3(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x ** 3 - 3 * x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * x ** 2 - 1)
    return LegendrePolynomial3


def mul_add(T):
    """Several inputs (one of them not a tensor), two outputs, None for the constant."""
    class MulAdd(T.autograd.Function):
        @staticmethod
        def forward(ctx, x, k, y):
            ctx.k = k
            ctx.save_for_backward(x, y)
            return x * y * k, x + y

        @staticmethod
        def backward(ctx, g_prod, g_sum):
            x, y = ctx.saved_tensors
            return g_prod * y * ctx.k + g_sum, None, g_prod * x * ctx.k + g_sum
    return MulAdd


def split_form(T):
    class Square(T.autograd.Function):
        @staticmethod
        def forward(x, scale):
            return x * x * scale

        @staticmethod
        def setup_context(ctx, inputs, output):
            x, scale = inputs
            ctx.scale = scale
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g * ctx.scale, None
    return Square


def test_legendre_values_gradient_and_grad_fn_name():
    P3 = legendre(tg)
    a = np.array([-0.7, 0.1, 0.9])
    x = tg.tensor(a, requires_grad=True)
    y = P3.apply(x)
    np.testing.assert_allclose(y.detach().numpy(), 0.5 * (5 * a ** 3 - 3 * a))
    assert type(y.grad_fn).__name__ == "LegendrePolynomial3Backward"
    assert "LegendrePolynomial3Backward" in repr(y)
    assert y.grad_fn.name() == "LegendrePolynomial3Backward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.5 * (5 * a ** 2 - 1))
    gradcheck(lambda x: P3.apply(x) * 2, [a])


@pytest.mark.parametrize("make", [legendre, mul_add, split_form], ids=lambda f: f.__name__)
def test_matches_torch(make):
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal(4), rng.standard_normal(4)
    res = []
    for T in (tg, torch):
        fn = make(T)
        x, y = T.tensor(xs, requires_grad=True), T.tensor(ys, requires_grad=True)
        if make is legendre:
            outs = (fn.apply(x),)
        elif make is mul_add:
            outs = fn.apply(x, 3.0, y)
        else:
            outs = (fn.apply(x, 0.5),)
        loss = sum((o.sin() * (i + 1)).sum() for i, o in enumerate(outs))
        loss.backward()
        res.append([o.detach().numpy() for o in outs] +
                   [np.zeros(4) if t.grad is None else t.grad.detach().numpy() for t in (x, y)])
        assert type(outs[0].grad_fn).__name__ == fn.__name__ + "Backward"
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_one_python_call_and_compiled_sweep_either_side(monkeypatch):
    from tapegrad import kernels as K
    from tapegrad.autograd import engine
    P3 = legendre(tg)
    calls = {"backward": 0, "sweep": 0}
    real_backward = P3.backward

    def counted_backward(ctx, g):
        calls["backward"] += 1
        return real_backward(ctx, g)

    monkeypatch.setattr(P3, "backward", staticmethod(counted_backward))
    real_sweep = K.sweep

    def counted_sweep(*a):
        calls["sweep"] += 1
        return real_sweep(*a)

    monkeypatch.setattr(engine.K, "sweep", counted_sweep)
    grads = []

    def body():      # a fresh thread's tape: other tests' hooked graphs add no segments
        x = tg.tensor(np.linspace(-1, 1, 8), requires_grad=True)
        h = x
        for _ in range(100):
            h = tg.tanh(h) * 0.9
        h = P3.apply(h)
        for _ in range(100):
            h = tg.sin(h) + 0.1
        h.sum().backward()
        grads.append(x.grad.numpy())
    in_fresh_thread(body)
    # the 200 recorded ops around the Function: one compiled segment above it, one below
    assert calls == {"backward": 1, "sweep": 2}
    assert np.isfinite(grads[0]).all()


def test_needs_input_grad_none_returns_and_non_tensor_arguments():
    seen = {}

    class F(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, n, y):
            seen["needs"] = ctx.needs_input_grad
            return x * n + y

        @staticmethod
        def backward(ctx, g):
            return g * 2 if ctx.needs_input_grad[0] else None, None, None

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0, 4.0])
    F.apply(x, 2, y).sum().backward()
    assert seen["needs"] == (True, False, False)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    assert y.grad is None
    out = F.apply(y, 2, y)                 # nothing requires grad: not recorded
    assert not out.requires_grad and out.grad_fn is None
    with tg.no_grad():
        assert not F.apply(x, 2, y).requires_grad


def test_only_the_second_output_used():
    MulAdd = mul_add(tg)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = tg.tensor([3.0, -1.0], requires_grad=True)
    _, s = MulAdd.apply(x, 2.0, y)
    s.sum().backward()            # the product got no gradient: it is materialized as zeros
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
    np.testing.assert_allclose(y.grad.numpy(), [1.0, 1.0])


def test_materialize_grads_off_passes_none():
    got = []

    class Two(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            got.append((ga is None, gb is None))
            return (ga * 2 if ga is not None else 0) + (gb * 3 if gb is not None else 0)

    x = tg.tensor([1.0], requires_grad=True)
    a, b = Two.apply(x)
    b.sum().backward()
    assert got == [(True, False)]
    np.testing.assert_allclose(x.grad.numpy(), [3.0])


def test_mark_non_differentiable_and_integer_outputs():
    got = []

    class SortLike(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            idx = np.argsort(x.detach().numpy())
            mask = tg.tensor(x.detach().numpy() > 0)
            vals = x[tg.tensor(idx)]
            ctx.mark_non_differentiable(mask)
            ctx.idx = idx
            return vals, tg.tensor(idx), mask

        @staticmethod
        def backward(ctx, g, gi, gm):
            got.append((tuple(gi.shape), tuple(gm.shape)))
            out = np.zeros(g.shape)
            out[ctx.idx] = g.numpy()
            return tg.tensor(out)

    x = tg.tensor([0.3, -1.0, 2.0], requires_grad=True)
    vals, idx, mask = SortLike.apply(x)
    assert vals.requires_grad and not idx.requires_grad and not mask.requires_grad
    (vals * tg.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0, 3.0])
    assert got == [((3,), (3,))]


def test_mark_dirty_moves_the_history():
    class Double_(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    a = tg.tensor([1.0, 2.0], requires_grad=True)
    z = a * 1
    v = z._version
    w = Double_.apply(z)
    assert w is z and z._version == v + 1
    assert type(z.grad_fn).__name__ == "Double_Backward"
    np.testing.assert_allclose(z.detach().numpy(), [2.0, 4.0])
    (z * z).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [8.0, 16.0])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad has been used in "
                                           "an in-place operation"):
        Double_.apply(a)


def test_saved_tensor_modified_in_place_raises():
    P3 = legendre(tg)
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = P3.apply(h)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation: "
                                           r"\[torch.FloatTensor \[2\]\], which is output 0 of "
                                           "AddBackward0, is at version 1; expected version 0"):
        y.sum().backward()


def test_saved_output_and_freeing():
    class Exp(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    x = tg.tensor([0.0, 1.0], dtype=tg.float64, requires_grad=True)
    y = Exp.apply(x)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.0, 1.0]))
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="access saved tensors after they have already "
                                           "been freed"):
        y.grad_fn.saved_tensors


def _bad(ret):
    class Bad(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k, y):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return ret(g)
    return Bad


@pytest.mark.parametrize("ret, msg", [
    (lambda g: (g,), "function BadBackward returned an incorrect number of gradients "
                     r"\(expected 3, got 1\)"),
    (lambda g: (g, None, None, g), r"incorrect number of gradients \(expected 3, got 4\)"),
    (lambda g: (g, g, None), "function BadBackward returned a gradient different than None at "
                             "position 2, but the corresponding forward input was not a "
                             "Variable"),
    (lambda g: (g[:2], None, None), "Function BadBackward returned an invalid gradient at index "
                                    r"0 - got \[2\] but expected shape compatible with \[3\]"),
    (lambda g: (1.0, None, None), r"expected Variable or None \(got float\)"),
], ids=["few", "many", "non-tensor", "shape", "float"])
def test_wrong_returns_raise_torchs_errors(ret, msg):
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=msg):
        _bad(ret).apply(x, 2.0, tg.tensor([1.0, 1.0, 1.0])).sum().backward()
    # the library stays usable
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_wrong_returns_match_torch_texts():
    torch = torch_or_skip()
    for ret in (lambda g: (g,), lambda g: (g, g, None), lambda g: (g[:2], None, None)):
        msgs = []
        for T in (tg, torch):
            class Bad(T.autograd.Function):
                @staticmethod
                def forward(ctx, x, k, y):
                    return x * k

                @staticmethod
                def backward(ctx, g):
                    return ret(g)
            x = T.tensor([1.0, 2.0, 3.0], requires_grad=True)
            with pytest.raises(RuntimeError) as e:
                Bad.apply(x, 2.0, T.tensor([1.0, 1.0, 1.0])).sum().backward()
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1]


def test_broadcast_gradient_is_summed_and_dtype_cast():
    class F(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return tg.ones(2, 3, dtype=tg.float32)     # broadcasts from x's (3,), float32

    x = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64, requires_grad=True)
    F.apply(x).sum().backward()
    assert x.grad.dtype == tg.float64
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_missing_backward_and_legacy_use():
    class NoBackward(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    x = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="You must implement either the backward"):
        NoBackward.apply(x).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(RuntimeError, match="Legacy autograd function"):
            NoBackward()(x)


def test_backward_built_from_ops_is_differentiable():
    torch = torch_or_skip()
    res = []
    for T in (tg, torch):
        P3 = legendre(T)
        x = T.tensor([0.3, -0.8, 1.2], dtype=T.float64, requires_grad=True)
        (g,) = T.autograd.grad(P3.apply(x).sum(), x, create_graph=True)
        (h,) = T.autograd.grad(g.sum(), x)
        res.append((g.detach().numpy(), h.detach().numpy()))
    np.testing.assert_allclose(res[0][0], res[1][0], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-12)
    np.testing.assert_allclose(res[0][1], 15 * np.array([0.3, -0.8, 1.2]), rtol=1e-12)


def test_once_differentiable():
    from tapegrad.autograd.function import once_differentiable

    class Cube(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert not tg.is_grad_enabled()
            return 3 * x ** 2 * g

    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    # as in PyTorch, the results are wrapped only when a grad_output requires grad
    (g,) = tg.autograd.grad(Cube.apply(x).sum(), x, create_graph=True)
    assert not g.requires_grad
    v = tg.ones(2, dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(Cube.apply(x), x, grad_outputs=v, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [3.0, 12.0])
    with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was "
                                           "marked with @once_differentiable"):
        g.sum().backward()


def test_compile_falls_back_to_eager_with_a_warning_and_func_refuses():
    P3 = legendre(tg)

    def f(x):
        return (P3.apply(x * 2) ** 2).sum()

    fc = tg.compile(f)
    a = np.array([0.1, 0.5, -0.3])
    ref = tg.tensor(a, requires_grad=True)
    f(ref).backward()
    x = tg.tensor(a, requires_grad=True)
    with pytest.warns(RuntimeWarning, match="custom autograd.Function LegendrePolynomial3, "
                                            "whose backward is Python code.*runs eagerly"):
        loss = fc(x)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-6)
    x = tg.tensor(a, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # warned once per signature, then eager
        fc(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="custom autograd.Function LegendrePolynomial3"):
        tg.func.grad(f)(tg.tensor(a))


def test_memory_stays_flat_in_a_loop():
    P3 = legendre(tg)
    w = tg.tensor(np.linspace(-1, 1, 32), requires_grad=True)

    def step():
        y = P3.apply(tg.tanh(w))
        (y * y).sum().backward()
        w.grad = None

    assert_steady(step)


def test_graphs_never_backwarded_are_reclaimed():
    P3 = legendre(tg)
    w = tg.tensor(np.linspace(-1, 1, 32), requires_grad=True)
    from tapegrad.tape import current
    for _ in range(3000):
        P3.apply(w * 2).sum()
    tp = current()
    assert len(tp) < 10000 and len(tp.pyfns) < 5000


def test_backward_inside_a_functions_backward():
    # torch's reentrant checkpoint pattern: the inner backward must not disturb the outer
    # sweep's gradients (shared buffers) or move its records (collection)
    rng = np.random.default_rng(0)
    W = tg.tensor(rng.standard_normal(3), requires_grad=True)
    x = tg.tensor(rng.standard_normal(3), requires_grad=True)

    class Reentrant(tg.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            ctx.save_for_backward(v)
            return v * W

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            with tg.enable_grad():
                v2 = v.detach().requires_grad_(True)
                tg.autograd.backward(v2 * W, g)
            return v2.grad

    big = tg.ones(100000, dtype=tg.float64, requires_grad=True)
    (big * 2).sum().backward()                  # large reusable gradient buffers
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no stale-view warning either
        (Reentrant.apply(x).sum() + (W * 5).sum()).backward()
    np.testing.assert_allclose(W.grad.numpy(), x.detach().numpy() + 5, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), W.detach().numpy(), rtol=1e-6)
