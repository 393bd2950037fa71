"""tapegrad.utils.checkpoint: the gradients of a recomputed function are the recorded ones,
the tape keeps less, and the interface is torch.utils.checkpoint's."""
import contextlib
import itertools
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.utils.checkpoint import (CheckpointError, checkpoint, checkpoint_sequential,
                                       set_checkpoint_debug_enabled)
from helpers import assert_steady, in_fresh_thread, torch_or_skip

MODES = [False, True]


def _params(rng, n=4):
    W = tg.tensor(rng.standard_normal((n, n)), requires_grad=True)
    b = tg.tensor(rng.standard_normal(n), requires_grad=True)
    return W, b


def _grads(ts):
    out = [None if t.grad is None else t.grad.detach().numpy().copy() for t in ts]
    for t in ts:
        t.grad = None
    return out


def _same(a, b, tol=0.0):
    assert len(a) == len(b)
    for i, (p, q) in enumerate(zip(a, b)):
        assert (p is None) == (q is None), f"gradient {i}: {p} vs {q}"
        if p is not None:
            np.testing.assert_allclose(p, q, rtol=tol, atol=tol, err_msg=f"gradient {i}")


# ---- gradients ---------------------------------------------------------------------------
@pytest.mark.parametrize("reentrant", MODES)
def test_gradients_reach_inputs_and_closed_over_parameters(rng, reentrant):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)

    def block(h):
        return tg.tanh(h @ W + b) * tg.sigmoid(h)

    checkpoint(block, x, use_reentrant=reentrant).pow(2).sum().backward()
    got = _grads([W, b, x])
    block(x).pow(2).sum().backward()
    _same(got, _grads([W, b, x]))          # same ops, same order: the same bits


def test_several_outputs_non_tensor_arguments_and_keywords(rng):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    c = tg.tensor(rng.standard_normal(4))                     # a constant argument

    def block(h, k, *, scale, const):
        z = h @ W + const
        return {"act": tg.tanh(z) * scale, "sum": z.sum() + b.sum() * k,
                "arg": z.argmax(dim=1), "tag": "block"}, k

    def loss(out):
        d, k = out
        assert d["tag"] == "block" and k == 3 and d["arg"].dtype == tg.int64
        return (d["act"] ** 2).sum() + d["sum"] * 0.5

    out = checkpoint(block, x * 2, 3, scale=0.25, const=c, use_reentrant=False)
    assert out[0]["arg"].requires_grad is False
    loss(out).backward()
    got = _grads([W, b, x])
    loss(block(x * 2, 3, scale=0.25, const=c)).backward()
    _same(got, _grads([W, b, x]))


def test_tensors_inside_argument_lists_are_inputs(rng):
    W, _ = _params(rng)
    xs = [tg.tensor(rng.standard_normal(4), requires_grad=True) for _ in range(2)]
    h = [x * 1.5 for x in xs]                   # with history: must arrive as arguments

    def block(pair):
        return tg.sin(pair[0] @ W) * pair[1]

    checkpoint(block, h, use_reentrant=False).sum().backward()
    got = _grads([W, *xs])
    block([x * 1.5 for x in xs]).sum().backward()
    _same(got, _grads([W, *xs]))


@pytest.mark.parametrize("reentrant", MODES)
def test_nested_in_a_larger_graph(rng, reentrant):
    """A parameter used before, inside and after the checkpoint; the checkpoint's input
    has history; its output feeds more ops."""
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)

    def block(h):
        return tg.tanh(h @ W) + b

    def model(part):
        h = tg.relu(x @ W.t()) + 0.1
        h = part(h)
        return ((h @ W) * b).mean() + (b ** 2).sum()

    model(lambda h: checkpoint(block, h, use_reentrant=reentrant)).backward()
    got = _grads([W, b, x])
    model(block).backward()
    _same(got, _grads([W, b, x]), tol=1e-12)


def test_grad_of_parameters_when_no_argument_requires_grad(rng):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)))
    y = checkpoint(lambda h: (tg.tanh(h @ W) + b).sum(), x, use_reentrant=False)
    assert y.requires_grad                        # as PyTorch's non-reentrant variant
    y.backward()
    got = _grads([W, b])
    (tg.tanh(x @ W) + b).sum().backward()
    _same(got, _grads([W, b]))
    # the reentrant variant keeps PyTorch's rule: no argument requires grad, no gradients
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        y = checkpoint(lambda h: (h @ W).sum(), x, use_reentrant=True)
    assert not y.requires_grad


@pytest.mark.parametrize("reentrant", MODES)
def test_autograd_grad_and_backward_inputs(rng, reentrant):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)

    def block(h):
        return tg.cos(h @ W + b)

    y = checkpoint(block, x, use_reentrant=reentrant).sum()
    gx, gW = tg.autograd.grad(y, [x, W])
    assert W.grad is None and b.grad is None and x.grad is None      # .grad untouched
    ex, eW = tg.autograd.grad(block(x).sum(), [x, W])
    _same([gx.numpy(), gW.numpy()], [ex.numpy(), eW.numpy()])
    checkpoint(block, x, use_reentrant=reentrant).sum().backward(inputs=[b])
    assert W.grad is None and x.grad is None
    got = _grads([b])
    block(x).sum().backward(inputs=[b])
    _same(got, _grads([b]))


@pytest.mark.parametrize("reentrant", MODES)
def test_create_graph_through_a_checkpoint(rng, reentrant):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    v = tg.tensor(rng.standard_normal((2, 4)))

    def block(h):
        return (tg.tanh(h @ W) * b) ** 2

    def hvp(f):
        h = x * 1.0 + 0.0                       # an input with history below the checkpoint
        y = f(h).sum()
        gx, gW = tg.autograd.grad(y, [x, W], create_graph=True)
        assert gx.grad_fn is not None
        return [g.numpy() for g in tg.autograd.grad((gx * v).sum() + (gW ** 2).sum(),
                                                     [x, W, b])]

    got = hvp(lambda h: checkpoint(block, h, use_reentrant=reentrant))
    _same(got, hvp(block), tol=1e-12)

    y = checkpoint(block, x, use_reentrant=reentrant).sum()       # .backward form
    y.backward(create_graph=True)
    assert W.grad.grad_fn is not None
    second = tg.autograd.grad((W.grad * x.grad.sum()).sum(), [W, b])
    _grads([W, b, x])
    block(x).sum().backward(create_graph=True)
    expect = tg.autograd.grad((W.grad * x.grad.sum()).sum(), [W, b])
    _grads([W, b, x])
    _same([g.numpy() for g in second], [g.numpy() for g in expect], tol=1e-12)


def test_nested_checkpoints_and_sequential(rng):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)

    def inner(h):
        return tg.tanh(h @ W)

    def outer(h):
        h = checkpoint(inner, h, use_reentrant=False)
        return checkpoint(lambda u: tg.sin(u * b), h, use_reentrant=True)

    checkpoint(outer, x, use_reentrant=False).sum().backward()
    got = _grads([W, b, x])
    tg.sin(inner(x) * b).sum().backward()
    _same(got, _grads([W, b, x]))

    fns = [inner, lambda h: h * b, tg.sin, lambda h: h + 1.0, tg.cos, inner, tg.exp]
    for segments in (1, 2, 3, 7):
        checkpoint_sequential(fns, segments, x, use_reentrant=False).sum().backward()
        got = _grads([W, b, x])
        h = x
        for f in fns:
            h = f(h)
        h.sum().backward()
        _same(got, _grads([W, b, x]), tol=1e-12)    # W's two uses may add in another order


def test_hooks_run_once_on_the_whole_gradient(rng):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    seen = []
    handles = [W.register_hook(lambda g: (seen.append("W"), g * 2)[1]),
               x.register_hook(lambda g: (seen.append("x"), g.clamp(-0.1, 0.1))[1])]

    def block(h):
        return tg.tanh(h @ W + b)

    y = checkpoint(block, x, use_reentrant=False)
    (y.sum() + (W * 3).sum()).backward()
    assert sorted(seen) == ["W", "x"]
    got = _grads([W, b, x])
    (block(x).sum() + (W * 3).sum()).backward()
    _same(got, _grads([W, b, x]), tol=1e-12)     # W's two parts may add in another order
    for h in handles:
        h.remove()


# ---- recomputation --------------------------------------------------------------------------
def _dropout(h, p=0.5):
    keep = (tg.rand_like(h) > p).double()
    return h * keep / (1 - p)


@pytest.mark.parametrize("reentrant", MODES)
def test_random_masks_are_recomputed_identically(rng, reentrant):
    W, _ = _params(rng)
    x = tg.tensor(rng.standard_normal((8, 4)), requires_grad=True)

    def block(h):
        return _dropout(tg.tanh(h @ W))

    tg.manual_seed(7)
    y = checkpoint(block, x, use_reentrant=reentrant)
    after_forward = tg.rand(3).tolist()
    y.sum().backward()
    after_backward = tg.rand(3).tolist()        # the recomputation left the generator alone
    got = _grads([W, x])
    tg.manual_seed(7)
    z = block(x)
    assert np.array_equal(y.detach().numpy(), z.detach().numpy())
    assert tg.rand(3).tolist() == after_forward
    assert tg.rand(3).tolist() == after_backward
    z.sum().backward()
    _same(got, _grads([W, x]))


def test_without_preserve_rng_state_the_mask_is_drawn_again(rng):
    W, _ = _params(rng)
    x = tg.tensor(rng.standard_normal((64, 4)), requires_grad=True)
    tg.manual_seed(7)
    y = checkpoint(lambda h: _dropout(h @ W), x, use_reentrant=False,
                   preserve_rng_state=False)
    y.sum().backward()
    got = _grads([W])
    tg.manual_seed(7)
    _dropout(x @ W).sum().backward()
    assert not np.array_equal(got[0], _grads([W])[0])


def test_determinism_check_names_what_changed(rng):
    _, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)

    calls = itertools.count()

    def shrinking(h):                # one column fewer every time it runs
        k = next(calls)
        return h[:, :4 - k] * b[:4 - k]

    y = checkpoint(shrinking, x, use_reentrant=False)
    with pytest.raises(CheckpointError, match=r"output tensor 0: shape \[2, 4\] float64 in "
                                              r"the forward pass, \[2, 3\] float64 recomputed"):
        y.sum().backward()

    flip = itertools.cycle([True, False])

    def branchy(h):                  # same output shape, different work when run again
        return tg.tanh(h) * 2 if next(flip) else h * 2

    y = checkpoint(branchy, x, use_reentrant=False, debug=True)
    with pytest.raises(CheckpointError, match="recorded 2 operations, the recomputation 1") \
            as e:
        y.sum().backward()
    assert "forward pass (debug=True):" in str(e.value) and "tanh(" in str(e.value)
    with set_checkpoint_debug_enabled(False):
        y = checkpoint(branchy, x, use_reentrant=False, debug=True)
        with pytest.raises(CheckpointError) as e:
            y.sum().backward()
        assert "debug=True" in str(e.value) and "tanh(" not in str(e.value)
    # determinism_check="none" and the reentrant variant do not check
    for kw in ({"use_reentrant": False, "determinism_check": "none"}, {"use_reentrant": True}):
        checkpoint(branchy, x, **kw).sum().backward()


def test_context_fn_wraps_forward_and_recomputation(rng):
    log = []

    @contextlib.contextmanager
    def note(what):
        log.append(what + " in")
        yield
        log.append(what + " out")

    x = tg.tensor(rng.standard_normal(3), requires_grad=True)
    y = checkpoint(lambda h: (log.append("run"), tg.sin(h))[1], x, use_reentrant=False,
                   context_fn=lambda: (note("forward"), note("recompute")))
    y.sum().backward()
    assert log == ["forward in", "run", "forward out", "recompute in", "run", "recompute out"]


# ---- the graph's lifetime ---------------------------------------------------------------
def test_second_backward_and_inplace_change_raise(rng):
    W, _ = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    y = checkpoint(lambda h: (h @ W).sum(), x, use_reentrant=False)
    y.backward(retain_graph=True)
    y.backward()
    twice = _grads([W])[0]
    (x @ W).sum().backward()
    np.testing.assert_array_equal(twice, 2 * _grads([W])[0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    a = x * 1.0
    y = checkpoint(lambda h: (h @ W).sum(), a, use_reentrant=False)
    with tg.no_grad():
        a.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def _chain(x, params, depth, segments):
    """depth x tanh(h * w_i + 0.1), cut into `segments` checkpoints (0: none)."""
    def part(lo, hi):
        def run(h):
            for w in params[lo:hi]:
                h = tg.tanh(h * w + 0.1)
            return h
        return run
    if not segments:
        return part(0, depth)(x).sum()
    fns = [part(i, i + 1) for i in range(depth)]
    return checkpoint_sequential(fns, segments, x, use_reentrant=False).sum()


def test_a_checkpointed_chain_keeps_fewer_bytes_on_the_tape(rng):
    depth, width = 64, 512
    x = tg.tensor(rng.standard_normal(width), requires_grad=True)
    params = [tg.tensor(rng.standard_normal(width) * 0.5, requires_grad=True)
              for _ in range(depth)]
    sizes, grads = {}, {}

    def body():                          # a new thread: a tape of its own, empty
        for segments in (0, 8):
            loss = _chain(x, params, depth, segments)
            sizes[segments] = tg.tape_size()
            loss.backward()
            del loss
            assert tg.tape_size() == (0, 0)           # everything reclaimed after backward
            grads[segments] = _grads([x, *params])
    in_fresh_thread(body)
    _same(grads[8], grads[0])
    (plain_records, plain_bytes), (ck_records, ck_bytes) = sizes[0], sizes[8]
    assert plain_records > 3 * depth                  # 3 ops per layer, plus the inputs
    # 7 checkpoints of 8 layers keep one record each (plus their parameters' INPUT
    # records); only the last, unchecked segment keeps its values
    assert ck_records < plain_records / 2
    assert ck_bytes < plain_bytes / 4


def test_memory_stays_flat_over_many_steps(rng):
    W, b = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)))

    def step():
        y = checkpoint(lambda h: tg.tanh(h @ W + b), x, use_reentrant=False)
        checkpoint(lambda h: h * 2, y, use_reentrant=False).sum().backward()
        W.grad = b.grad = None

    assert_steady(step, warm=10, steps=40, per_step=512)
    assert tg.tape_size() == (0, 0)


def test_runs_in_a_fresh_thread_and_under_compile(rng):
    W, _ = _params(rng)
    x = tg.tensor(rng.standard_normal((2, 4)), requires_grad=True)

    def body():
        checkpoint(lambda h: tg.sin(h @ W), x, use_reentrant=False).sum().backward()
    in_fresh_thread(body)
    got = _grads([W, x])
    tg.sin(x @ W).sum().backward()
    _same(got, _grads([W, x]))

    @tg.compile
    def f(h):
        return checkpoint(lambda u: tg.sin(u @ W), h, use_reentrant=False).sum()
    with pytest.warns(RuntimeWarning, match="Function Checkpoint"):
        f(x).backward()
    _same(_grads([W, x]), got)


# ---- the interface --------------------------------------------------------------------
def test_use_reentrant_must_be_passed_explicitly(rng):
    x = tg.tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.warns(UserWarning, match="pass use_reentrant explicitly"):
        y = checkpoint(tg.sin, x)
    assert y.grad_fn.name() == "CheckpointFunctionBackward"    # PyTorch's default: reentrant
    with pytest.warns(UserWarning, match="checkpoint_sequential: pass use_reentrant"):
        checkpoint_sequential([tg.sin, tg.cos], 2, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checkpoint(tg.sin, x, use_reentrant=False).grad_fn.name() == \
            "CheckpointBackward"


def test_argument_errors(rng):
    x = tg.tensor(rng.standard_normal(3), requires_grad=True)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: scale"):
        checkpoint(lambda h, scale: h * scale, x, scale=2, use_reentrant=True)
    with pytest.raises(ValueError, match="only supported when use_reentrant=False"):
        checkpoint(tg.sin, x, use_reentrant=True, debug=True)
    with pytest.raises(ValueError, match="determinism_check should be one of"):
        checkpoint(tg.sin, x, use_reentrant=False, determinism_check="strict")
    with pytest.raises(TypeError, match="function must be callable"):
        checkpoint(3, x, use_reentrant=False)
    h = x * 2
    with pytest.raises(RuntimeError, match="pass that tensor as an argument"):
        checkpoint(lambda v: v * h, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match="pass that tensor as an argument"):
        checkpoint(lambda v: h, x, use_reentrant=False)
    for segments in (0, 3, 1.5):
        with pytest.raises(ValueError, match="segments must be an int from 1"):
            checkpoint_sequential([tg.sin, tg.cos], segments, x, use_reentrant=False)
    with pytest.raises(ValueError, match="Unexpected keyword arguments: foo"):
        checkpoint_sequential([tg.sin], 1, x, use_reentrant=False, foo=1)
    assert checkpoint_sequential([tg.sin], 1, x, use_reentrant=False,
                                 preserve_rng_state=False).grad_fn.name() == "SinBackward0"


def test_no_grad_runs_the_function_as_is(rng):
    x = tg.tensor(rng.standard_normal(3), requires_grad=True)
    with tg.no_grad():
        y = checkpoint(tg.sin, x, use_reentrant=False)
    assert not y.requires_grad and tg.tape_size() == (0, 0)
    np.testing.assert_array_equal(y.numpy(), np.sin(x.detach().numpy()))


# ---- PyTorch ------------------------------------------------------------------------------
@pytest.mark.parametrize("reentrant", MODES)
def test_matches_torch_utils_checkpoint(rng, reentrant):
    torch = torch_or_skip()
    import torch.utils.checkpoint as tcp
    Wn, bn = rng.standard_normal((4, 4)), rng.standard_normal(4)
    xn = rng.standard_normal((3, 4))

    def run(lib, ck):
        W = lib.tensor(Wn, requires_grad=True)
        b = lib.tensor(bn, requires_grad=True)
        x = lib.tensor(xn, requires_grad=True)

        def block(h, k):
            z = h @ W + b
            return lib.tanh(z) * k, (z * z).sum()

        h = lib.sin(x)
        a, s = ck(block, h, 0.5, use_reentrant=reentrant)
        loss = (a ** 3).sum() + s
        loss.backward()
        return a.grad_fn.name(), [t.grad.detach().numpy() for t in (W, b, x)]

    name, got = run(tg, checkpoint)
    tname, expect = run(torch, tcp.checkpoint)
    _same(got, expect, tol=1e-12)
    if reentrant:
        assert name == tname == "CheckpointFunctionBackward"


def test_the_benchmark_case_shows_a_lower_peak():
    """bench/memory.py's checkpoint case, small: the peak of tape bytes over a whole
    forward+backward (scratch tapes included) drops with checkpointing."""
    memory = pytest.importorskip("bench.memory")
    recorded = memory._chain_tape(depth=32, width=256, segments=0)
    checkpointed = memory._chain_tape(depth=32, width=256, segments=8)
    assert checkpointed["peak_tape_bytes"] < recorded["peak_tape_bytes"] / 2
    assert checkpointed["bytes_after_forward"] < checkpointed["peak_tape_bytes"]


def test_docstring_examples_run():
    import doctest
    import tapegrad.utils.checkpoint as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0
