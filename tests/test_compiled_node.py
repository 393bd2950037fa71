"""A compiled call is one node of the caller's graph (tapegrad/compiled_call.py).

The outputs of a replayed call hang off one record (CompiledFunctionBackward) whatever the
program's size; backward() through it runs the program's own reverse sweep and hands the
inputs' gradients on into the caller's graph. Each test compares with the same function
run eagerly, in float32 and float64, on the first call (which records) and on replays.
"""
import gc
import threading
import warnings

import numpy as np
import pytest

import tapegrad as tg
import tapegrad.tape
from helpers import assert_steady, in_fresh_thread

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=3e-6, atol=3e-6)}


def chain(x, w):
    """A program of a few hundred records: a scalar chain after a matrix product."""
    v = (x @ w).tanh()
    for _ in range(60):
        v = (v * 1.01 + 0.1).tanh()
    return v.sum()


def leaves(dtype, seed=0):
    r = np.random.default_rng(seed)
    x = tg.tensor(r.standard_normal((3, 4)).astype(dtype), requires_grad=True)
    w = tg.tensor(r.standard_normal((4, 2)).astype(dtype), requires_grad=True)
    return x, w


def eager_grads(fn, dtype, seed, *, seed_grad=None):
    x, w = leaves(dtype, seed)
    out = fn(x, w)
    out.backward(seed_grad)
    return out.detach().numpy(), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_call_is_one_record_and_its_gradients_match_eager(dtype):
    fc = tg.compile(chain)
    tp = tapegrad.tape.current()
    for seed in range(4):          # records on the first call, replays after it
        x, w = leaves(dtype, seed)
        before = len(tp)
        out = fc(x, w)
        # the two leaves' INPUT records and the node's one record, not the program's ~180
        assert len(tp) - before == 3
        assert out.grad_fn.name() == "CompiledFunctionBackward"
        assert [type(n).__name__ for n, _ in out.grad_fn.next_functions] == \
            ["AccumulateGrad", "AccumulateGrad"]
        out.backward()
        v, gx, gw = eager_grads(chain, dtype, seed)
        np.testing.assert_allclose(out.detach().numpy(), v, **TOL[dtype])
        np.testing.assert_allclose(x.grad.numpy(), gx, **TOL[dtype])
        np.testing.assert_allclose(w.grad.numpy(), gw, **TOL[dtype])
        assert x.grad.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_flow_on_into_the_graph_the_inputs_came_from(dtype):
    def f(x, w):
        return (x.sin() @ w).square().mean()
    fc = tg.compile(f)
    for seed in range(3):
        x, w = leaves(dtype, seed)
        a = x * 2 + 1                        # eager history before the call
        out = fc(a, w.exp()) * 3             # and after it
        out.backward()
        x2, w2 = leaves(dtype, seed)
        (f(x2 * 2 + 1, w2.exp()) * 3).backward()
        np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), **TOL[dtype])
        np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), **TOL[dtype])


def test_gradients_accumulate_into_grad_across_calls():
    fc = tg.compile(chain)
    x, w = leaves(np.float64)
    fc(x, w).backward()
    fc(x, w).backward()
    _, gx, gw = eager_grads(chain, np.float64, 0)
    np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), 2 * gw, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_outputs_each_alone_and_together(dtype):
    def f(x, w):
        h = x @ w
        return h.tanh().sum(), h.exp().mean(), (h * h)
    fc = tg.compile(f)
    for which in ([0], [1], [2], [0, 2], [0, 1, 2]):
        for seed in range(2):
            x, w = leaves(dtype, seed)
            outs = fc(x, w)
            assert all(o.grad_fn.name() == "CompiledFunctionBackward" for o in outs)
            assert outs[0].grad_fn is outs[2].grad_fn
            sum(outs[i].sum() * (i + 1) for i in which).backward()
            x2, w2 = leaves(dtype, seed)
            e = f(x2, w2)
            sum(e[i].sum() * (i + 1) for i in which).backward()
            np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), **TOL[dtype])
            np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), **TOL[dtype])


def test_an_integer_output_is_not_part_of_the_node():
    fc = tg.compile(lambda x: ((x * x).sum(), x.argmax()))
    for _ in range(2):
        x = tg.tensor([1.0, 3.0, 2.0], requires_grad=True)
        s, i = fc(x)
        assert i.grad_fn is None and not i.requires_grad and i.item() == 1
        s.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [2.0, 6.0, 4.0])


def test_vector_jacobian_product_and_autograd_grad():
    fc = tg.compile(lambda x, w: (x @ w).tanh())
    for seed in range(3):
        x, w = leaves(np.float64, seed)
        u = np.random.default_rng(seed + 10).standard_normal((3, 2))
        out = fc(x, w)
        gx, gw = tg.autograd.grad(out, (x, w), tg.tensor(u))
        _, ex, ew = eager_grads(lambda a, b: (a @ b).tanh(), np.float64, seed,
                                seed_grad=tg.tensor(u))
        np.testing.assert_allclose(gx.numpy(), ex, rtol=1e-12)
        np.testing.assert_allclose(gw.numpy(), ew, rtol=1e-12)
        assert x.grad is None and w.grad is None     # autograd.grad leaves .grad alone


def test_retain_graph_and_the_second_backward_error():
    fc = tg.compile(chain)
    for _ in range(2):
        x, w = leaves(np.float64)
        out = fc(x, w)
        out.backward(retain_graph=True)
        out.backward()
        _, gx, _ = eager_grads(chain, np.float64, 0)
        np.testing.assert_allclose(x.grad.numpy(), 2 * gx, rtol=1e-12)
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            out.backward()
    # and the library stays usable: the next call's backward works
    x, w = leaves(np.float64)
    fc(x, w).backward()
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)


def test_several_calls_of_one_program_in_one_graph():
    fc = tg.compile(lambda x, w: (x @ w).tanh().sum())
    x, w = leaves(np.float64)
    total = fc(x, w) * fc(x * 2, w) + fc(x, w * 3)
    total.backward()
    x2, w2 = leaves(np.float64)
    g = lambda a, b: (a @ b).tanh().sum()     # noqa: E731
    (g(x2, w2) * g(x2 * 2, w2) + g(x2, w2 * 3)).backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), rtol=1e-12)


def test_outputs_keep_their_values_after_later_calls():
    fc = tg.compile(lambda x: (x * x).tanh())
    x1 = tg.tensor([0.3, -0.2], dtype=tg.float64, requires_grad=True)
    x2 = tg.tensor([1.5, 0.7], dtype=tg.float64, requires_grad=True)
    y1 = fc(x1)
    y2 = fc(x2)
    for _ in range(5):                 # calls that reuse the program's buffers
        fc(tg.tensor([9.0, 9.0], dtype=tg.float64, requires_grad=True)).sum().backward()
    np.testing.assert_allclose(y1.detach().numpy(), np.tanh([0.09, 0.04]), rtol=1e-14)
    y1.sum().backward()
    y2.sum().backward()
    for x, v in ((x1, np.array([0.3, -0.2])), (x2, np.array([1.5, 0.7]))):
        np.testing.assert_allclose(x.grad.numpy(), 2 * v * (1 - np.tanh(v * v) ** 2),
                                   rtol=1e-13)


def test_tensor_hooks_and_node_hooks_see_the_node():
    fc = tg.compile(lambda x: (x * x).sum() * 1.0)
    seen = []
    for k in range(2):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        out = fc(x)
        out.register_hook(lambda g: g * 10)                 # on the output's gradient
        out.grad_fn.register_prehook(lambda gos: seen.append(("pre", gos[0].item())))
        out.grad_fn.register_hook(lambda gin, gout: (gin[0] + 1,))
        x.register_hook(lambda g: seen.append(("leaf", g.numpy().tolist())))
        out.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [21.0, 41.0])
    assert seen == [("pre", 10.0), ("leaf", [21.0, 41.0])] * 2


def test_anomaly_mode_names_the_compiled_node():
    fc = tg.compile(lambda x: x.sqrt().sum())
    fc(tg.tensor([1.0, 4.0], requires_grad=True)).backward()      # records, replays
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tg.autograd.detect_anomaly():
            out = fc(tg.tensor([-1.0, 4.0], requires_grad=True))   # sqrt(-1): NaN inside
            with pytest.raises(RuntimeError, match="'CompiledFunctionBackward' returned nan"):
                out.backward()
    x = tg.tensor([1.0, 9.0], requires_grad=True)                 # still usable
    fc(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 1 / 6], rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_create_graph_differentiates_the_gradient_again(dtype):
    def f(x):
        return (x * x * x).sum() + x.sin().sum()
    fc = tg.compile(f)
    for v in ([0.5, -1.0, 2.0], [0.1, 0.2, 0.3]):
        x = tg.tensor(np.array(v, dtype), requires_grad=True)
        (g,) = tg.autograd.grad(fc(x), x, create_graph=True)
        assert g.requires_grad
        np.testing.assert_allclose(g.detach().numpy(), 3 * np.square(v) + np.cos(v),
                                   **TOL[dtype])
        g.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 6 * np.array(v) - np.sin(v),
                                   **TOL[dtype])


def test_create_graph_with_closure_weights_and_an_eager_input():
    w = tg.tensor([[0.5, -1.0], [2.0, 0.3]], requires_grad=True)
    fc = tg.compile(lambda x: ((x @ w).tanh() ** 2).sum())
    for _ in range(2):
        w.grad = None
        x0 = tg.tensor([[0.2, 0.4]], requires_grad=True)
        (gx,) = tg.autograd.grad(fc(x0 * 1.5), x0, create_graph=True)
        gx.square().sum().backward()
        we = tg.tensor(w.detach().numpy(), requires_grad=True)
        xe = tg.tensor([[0.2, 0.4]], requires_grad=True)
        (ge,) = tg.autograd.grad(((xe * 1.5 @ we).tanh() ** 2).sum(), xe, create_graph=True)
        ge.square().sum().backward()
        np.testing.assert_allclose(gx.detach().numpy(), ge.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), we.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(x0.grad.numpy(), xe.grad.numpy(), rtol=1e-12)


def test_mixed_dtype_program_goes_through_the_segmented_sweep():
    fc = tg.compile(lambda x, w: ((x.double() @ w).tanh().sum()))
    prog_calls = []
    for seed in range(3):
        r = np.random.default_rng(seed)
        x = tg.tensor(r.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
        w = tg.tensor(r.standard_normal((3, 2)), requires_grad=True)
        fc(x, w).backward()
        xe = tg.tensor(x.detach().numpy(), requires_grad=True)
        we = tg.tensor(w.detach().numpy(), requires_grad=True)
        (xe.double() @ we).tanh().sum().backward()
        assert x.grad.dtype == np.float32
        np.testing.assert_allclose(x.grad.numpy(), xe.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(w.grad.numpy(), we.grad.numpy(), rtol=1e-12)
        prog_calls.append(next(iter(fc.programs.values()))[0].single_call)
    assert prog_calls == [False] * 3


def test_concurrent_threads_get_their_own_buffers():
    fc = tg.compile(chain)
    errors = []
    _, gx, gw = eager_grads(chain, np.float64, 0)

    def work():
        try:
            for _ in range(30):
                x, w = leaves(np.float64)
                fc(x, w).backward()
                np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
                np.testing.assert_allclose(w.grad.numpy(), gw, rtol=1e-12)
        except BaseException as e:       # noqa: BLE001 - reported below
            errors.append(e)
    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


def test_memory_is_reclaimed_when_outputs_die_without_backward():
    fc = tg.compile(chain)
    x, w = leaves(np.float64)

    def step():
        out = fc(x, w)      # graph built, never differentiated, dropped
        del out
    in_fresh_thread(lambda: assert_steady(step, warm=20, steps=200, per_step=256))

    def train():
        x.grad = w.grad = None
        fc(x, w).backward()
    in_fresh_thread(lambda: assert_steady(train, warm=20, steps=200, per_step=256))
    prog = next(iter(fc.programs.values()))[0]
    gc.collect()
    assert len(prog._pool) <= 4


def test_a_compiled_call_inside_a_compiled_function_joins_its_program():
    inner = tg.compile(lambda x: (x * 2).tanh())
    outer = tg.compile(lambda x: inner(x).sum() * 3)
    tp = tapegrad.tape.current()
    for _ in range(3):
        x = tg.tensor([0.1, 0.5], dtype=tg.float64, requires_grad=True)
        before = len(tp)
        out = outer(x)
        assert len(tp) - before == 2      # the leaf and outer's one node
        out.backward()
        np.testing.assert_allclose(x.grad.numpy(),
                                   6 * (1 - np.tanh([0.2, 1.0]) ** 2), rtol=1e-13)
    assert next(iter(outer.programs.values()))[0] is not None   # it replays, not eager


def test_frames_of_unreachable_calls_are_reclaimed_before_they_pile_up():
    """Each call's node holds a frame (the program's values: 2.4 MB here). A loop that
    keeps only its last output never lets the tape's live count reach zero, so reclaiming
    waits for a collection; the frames' bytes must trigger one long before 4,096 records."""
    import tracemalloc
    x = tg.tensor(np.linspace(-1, 1, 100_000), requires_grad=True)
    fc = tg.compile(lambda x: (x.tanh() * x).exp().sum())
    out = fc(x)
    frame = next(iter(fc.programs.values()))[0].frame_nbytes
    assert frame > 2_000_000
    tp = tapegrad.tape.current()
    tracemalloc.start()
    try:
        for _ in range(120):          # without the bound: 120 frames, about 290 MB
            out = fc(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tp.held <= tp.held_limit + frame
    assert peak < 110 * 2 ** 20, f"peak {peak / 2 ** 20:.0f} MB"
    out.backward()
    np.testing.assert_allclose(x.grad.numpy()[:3], (lambda v: np.exp(np.tanh(v) * v) * (
        np.tanh(v) + v * (1 - np.tanh(v) ** 2)))(np.linspace(-1, 1, 100_000)[:3]), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_leaf_gradients_become_grad_without_a_copy_and_stay_their_own(dtype):
    """A call whose leaves' gradients fill most of its program's buffer (a weight) hands
    the regions to .grad and the program takes a new buffer: a .grad kept from one step
    never changes at the next, and without zero_grad gradients add."""
    r = np.random.default_rng(5)
    x = tg.tensor(r.standard_normal((4, 300)).astype(dtype))
    w = tg.tensor(r.standard_normal((300, 300)).astype(dtype) / 20, requires_grad=True)
    fc = tg.compile(lambda x, w: ((x @ w).tanh() ** 2).sum())

    def want():
        h = np.tanh(x.data.astype(np.float64) @ w.data.astype(np.float64))
        return x.data.T.astype(np.float64) @ (2 * h * (1 - h ** 2))
    tol = TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)   # 300-term sums
    kept = []
    for step in range(4):
        w.grad = None
        fc(x, w).backward()
        np.testing.assert_allclose(w.grad.numpy(), want(), **tol)
        if step:                                  # (the first call records, eagerly)
            assert w.grad.data.base is not None   # the program buffer's region
        for old, value in kept:
            np.testing.assert_array_equal(old.numpy(), value)
        kept.append((w.grad, w.grad.numpy().copy()))
        with tg.no_grad():
            w -= 0.1 * w.grad
    first = w.grad.numpy().copy()
    fc(x, w).backward()
    np.testing.assert_allclose(w.grad.numpy(), first + want(), **tol)
