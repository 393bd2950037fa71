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
