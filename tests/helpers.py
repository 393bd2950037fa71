"""The one gradient checker every op test goes through.

gradcheck(f, inputs) compares the tape's vector-Jacobian product against central finite
differences in float64, along a random output direction u and for every input element:
(f(x + h e_i) - f(x - h e_i)) . u / 2h  ==  (u^T J)_i.
"""
import threading

import numpy as np

import tapegrad as tg


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, seed=0):
    """Check f's gradients w.r.t. every float64 array in `inputs` (a list of arrays).

    f receives tapegrad tensors and returns a tensor of any shape. Returns the analytic
    gradients (numpy arrays) so callers can compare them with other oracles too.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    leaves = [tg.tensor(a, requires_grad=True) for a in arrays]
    out = f(*leaves)
    u = rng.standard_normal(out.shape)
    out.backward(tg.tensor(u))
    analytic = [np.zeros_like(a) if t.grad is None else t.grad.numpy().copy()
                for a, t in zip(arrays, leaves)]

    def value(vals):
        with tg.no_grad():
            return float(np.sum(f(*[tg.tensor(v) for v in vals]).numpy() * u))

    for k, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k][i] += eps
            minus[k][i] -= eps
            numeric[i] = (value(plus) - value(minus)) / (2 * eps)
        np.testing.assert_allclose(analytic[k], numeric, atol=atol, rtol=rtol,
                                   err_msg=f"gradient of input {k} disagrees with "
                                           f"central differences")
    return analytic


def torch_or_skip():
    import pytest
    return pytest.importorskip("torch")


def in_threads(work, n):
    """Run work(i) for i in range(n), each on its own thread, all at once; wait for all."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def in_fresh_thread(body):
    """Run body() on a new thread (a new, empty tape) and re-raise whatever it raised."""
    box = []

    def target():
        try:
            body()
        except BaseException as e:    # noqa: BLE001 - handed back to the test thread
            box.append(e)
    t = threading.Thread(target=target)
    t.start()
    t.join()
    if box:
        raise box[0]


def tape_footprint(tp):
    """What a tape holds allocated, whether in use or not: (bytes of every buffer at its
    capacity, entries in its side tables). A leak in buffer growth or in a side dictionary
    shows here; Tape.nbytes() counts only the bytes the current records use."""
    arrays = [*tp.arena, tp.iar, tp.freed, tp.kept, *getattr(tp, "_gbufs", ())]
    nbytes = sum(a.nbytes for a in arrays) + len(tp.buf) + len(tp.rc) * tp.rc.itemsize
    entries = (len(tp.leaves) + len(tp.retained) + len(tp.dirty) + len(tp.pyrefs)
               + len(tp.pyfns) + len(tp.hooks) + len(tp.traces))
    return nbytes, entries


def assert_steady(step, warm=50, steps=200, per_step=256):
    """Run step() `warm` times, then `steps` more, and check that neither the process's
    Python-visible memory (tracemalloc sees numpy's buffers too) nor the current tape's
    capacity and side tables grew by more than `per_step` bytes a step on average."""
    import gc
    import tracemalloc

    from tapegrad.tape import current
    tracemalloc.start()     # before the warm-up: blocks made earlier are never counted,
    try:                    # so their frees would not be either
        for _ in range(warm):
            step()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tape_before = tape_footprint(current())
        for _ in range(steps):
            step()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    tape_after = tape_footprint(current())
    assert grown <= per_step * steps, f"memory grew {grown} bytes over {steps} steps"
    assert tape_after[0] <= tape_before[0], f"tape capacity grew: {tape_before} -> {tape_after}"
    assert tape_after[1] <= tape_before[1] + 1, f"side tables grew: {tape_before} -> {tape_after}"
