"""The gradient checks the benchmarks run in setup can fail (behaviour only, no times)."""
import dataclasses

import numpy as np
import pytest

from bench import workloads as W


@pytest.fixture
def zero_float32_gradients(monkeypatch):
    """numpy's float32 systems return all-zero gradients (the float64 reference is not
    touched: it is a float64 case)."""
    result = W.Numpy.result

    def broken(self):
        loss, got = result(self)
        if next(iter(self.p.values())).dtype == np.float32:
            got = {k: np.zeros_like(v) for k, v in got.items()}
        return loss, got
    monkeypatch.setattr(W.Numpy, "result", broken)


@pytest.mark.parametrize("key", ["W2", "W2n", "W3", "W3n"])
def test_chain_checks_pass(key):
    W.verify(key, "numpy-f32")
    W.verify(key, "numpy-f64")


@pytest.mark.parametrize("key,failing", [("W2", r"W2\[:100\]"), ("W2n", "W2n"),
                                         ("W3", r"W3\[:100\]"), ("W3n", "W3n")])
def test_zero_float32_gradient_fails(key, failing, zero_float32_gradients):
    """W2/W3's whole-chain float32 gradient is subnormal, so zeros pass that comparison
    (they passed verify before the prefix check); the prefix check catches them."""
    with pytest.raises(AssertionError, match=f"numpy-f32 {failing} v"):
        W.verify(key, "numpy-f32")
    W.verify(key, "numpy-f64")         # float64 untouched


def test_a_check_zeros_would_pass_is_refused(monkeypatch):
    """W2 without its float32 prefix check: its float32 check could not fail."""
    monkeypatch.setitem(W.WORKLOADS, "W2", dataclasses.replace(W.WORKLOADS["W2"], prefix=0))
    with pytest.raises(AssertionError, match="below float32's range, so this check cannot"):
        W.verify("W2", "numpy-f32")


def test_prefix_gradient_is_inside_float32s_range():
    for key in ("W2", "W3"):
        g = W._reference(W.prefix_of(key))[1]["v"]
        assert np.min(np.abs(g)) > 1e10 * np.finfo(np.float32).tiny


def test_normal_variants_keep_a_normal_float32_gradient():
    """W2n/W3n: no partial product of the float32 reverse sweep is subnormal."""
    for key in ("W2n", "W3n"):
        wl = W.WORKLOADS[key]
        case = W.Numpy(wl, np.float32)
        _, outs = case.forward()
        g = np.ones_like(outs[-1])
        for v in reversed(outs):
            g = g * (1 - v * v) * np.float32(wl.chain[1])
            assert np.min(np.abs(g)) > 1e20 * np.finfo(np.float32).tiny, key


def test_timed_leaves_out_the_phases_a_system_does_not_time():
    pairs = W.timed("W2")
    for s in ("compiled-f32", "node-f64"):
        assert (s, "fb") in pairs and (s, "backward") not in pairs
    assert all(ph in W.SYSTEMS[s].phases for s, ph in pairs)
    replayed = [s for s in W.SYSTEMS if s.startswith(("compiled", "node"))]
    assert len(replayed) == 4
    assert len(pairs) == 3 * len(W.SYSTEMS) - 2 * len(replayed)
