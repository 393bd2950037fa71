"""Devices and gradient assignment as PyTorch code writes them (tapegrad runs on the CPU):
tapegrad.device, device= on creation functions, Tensor.to/cpu/cuda/device, cuda and
accelerator availability, and the checks on assigning .grad. Compared with PyTorch where
it is installed."""
import numpy as np
import pytest

import tapegrad as tg

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("args", [("cpu",), ("cpu", 0), ("cpu:0",), ("cuda",), ("cuda", 1),
                                  ("mps",)])
def test_device_objects_match_torch(args):
    ours, theirs = tg.device(*args), torch.device(*args)
    assert repr(ours) == repr(theirs) and str(ours) == str(theirs)
    assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert tg.device(ours) == ours and hash(tg.device(ours)) == hash(ours)
    assert (ours == tg.device("cpu")) == (theirs == torch.device("cpu"))


@pytest.mark.parametrize("args,exc", [(("gpu",), RuntimeError), (("cpu", -1), RuntimeError),
                                      ((5,), RuntimeError), (("cpu:x",), RuntimeError),
                                      ((2.5,), TypeError)])
def test_bad_device_names_raise_like_torch(args, exc):
    with pytest.raises(exc):
        torch.device(*args)
    with pytest.raises(exc):
        tg.device(*args)


MAKERS = [("tensor", lambda m, **k: m.tensor([1.0, 2.0], **k)),
          ("zeros", lambda m, **k: m.zeros(2, 3, **k)), ("ones", lambda m, **k: m.ones(2, **k)),
          ("full", lambda m, **k: m.full((2,), 1.5, **k)), ("empty", lambda m, **k: m.empty(2, **k)),
          ("eye", lambda m, **k: m.eye(2, **k)), ("arange", lambda m, **k: m.arange(3, **k)),
          ("linspace", lambda m, **k: m.linspace(0, 1, 3, **k)),
          ("rand", lambda m, **k: m.rand(2, **k)), ("randn", lambda m, **k: m.randn(2, **k)),
          ("randint", lambda m, **k: m.randint(0, 5, (2,), **k)),
          ("ones_like", lambda m, **k: m.ones_like(m.zeros(2), **k)),
          ("zeros_like", lambda m, **k: m.zeros_like(m.zeros(2), **k)),
          ("full_like", lambda m, **k: m.full_like(m.zeros(2), 3.0, **k)),
          ("rand_like", lambda m, **k: m.rand_like(m.zeros(2), **k)),
          ("randn_like", lambda m, **k: m.randn_like(m.zeros(2), **k))]


@pytest.mark.parametrize("name,make", MAKERS, ids=[n for n, _ in MAKERS])
def test_creation_functions_take_device(name, make):
    for dev in ("cpu", tg.device("cpu"), "cpu:0", None):
        t = make(tg, device=dev)
        assert t.device == tg.device("cpu") and str(t.device) == "cpu"
        assert make(torch, device=None if dev is None else str(dev)).device.type == "cpu"
    with pytest.raises(AssertionError, match="CPU only"):
        make(tg, device="cuda")
    with pytest.raises(RuntimeError, match="CPU only"):
        make(tg, device=tg.device("cuda", 0))
    assert tg.ones(2).sum().item() == 2.0          # still usable


def test_to_cpu_and_cuda_follow_torch():
    for m in (tg, torch):
        x = m.ones(2, requires_grad=True)
        assert x.cpu() is x and x.to("cpu") is x and x.to(m.device("cpu")) is x
        assert x.to("cpu", copy=True) is not x
        assert x.to(m.float64).dtype == m.float64
        assert x.to("cpu", m.float64).dtype == m.float64
        assert x.to(device="cpu", dtype=m.float64).dtype == m.float64
        assert x.to(m.zeros(1, dtype=m.float64)).dtype == m.float64
        assert not x.is_cuda
        with pytest.raises(AssertionError):
            x.to("cuda")
        with pytest.raises(AssertionError):
            x.cuda()
        with pytest.raises(RuntimeError):
            x.to("float32")          # a string is a device, not a dtype
    # the conversion is differentiable, as any dtype change
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x.to("cpu", tg.float64) * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert x.grad.dtype == tg.float32


def test_no_cuda_and_no_accelerator():
    assert tg.cuda.is_available() is torch.cuda.is_available() is False
    assert tg.cuda.device_count() == torch.cuda.device_count() == 0
    assert tg.accelerator.is_available() is False
    assert tg.accelerator.current_accelerator() is None


def test_assigning_grad_checks_like_torch():
    for m in (tg, torch):
        y = m.ones(2, requires_grad=True)
        y.grad = m.full((2,), 5.0)
        assert y.grad.tolist() == [5.0, 5.0]
        (y * 2).sum().backward()
        assert y.grad.tolist() == [7.0, 7.0]       # accumulates into the assigned tensor
        y.grad = None
        (y * 2).sum().backward()
        assert y.grad.tolist() == [2.0, 2.0]
        with pytest.raises(RuntimeError, match="size"):
            y.grad = m.ones(3)
        with pytest.raises(RuntimeError, match="dtype"):
            y.grad = m.ones(2, dtype=m.float64)
        with pytest.raises(TypeError, match="Tensor or None"):
            y.grad = [1.0, 2.0]
        assert y.grad.tolist() == [2.0, 2.0]        # a refused assignment changes nothing


def test_assigning_data_then_using_the_tensor():
    for m in (tg, torch):
        w = m.tensor([1.0, 2.0], requires_grad=True)
        (w * w).sum().backward()
        w.data = m.tensor([3.0, -1.0]).data if m is torch else np.array([3.0, -1.0], np.float32)
        w.grad = None
        loss = (w * w).sum()        # the new value, in the value and in the gradient
        loss.backward()
        assert loss.item() == 10.0 and w.grad.tolist() == [6.0, -2.0]


def test_tensor_type_names_and_conversions_match_torch():
    torch = pytest.importorskip("torch")
    for T in (tg, torch):
        x = T.tensor([[0.5, -1.0], [2.0, 3.0]])
        assert x.type() == "torch.FloatTensor"
        assert x.type(T.float64).dtype == T.float64
        assert x.type("torch.LongTensor").dtype == T.int64
        assert x.double().type() == "torch.DoubleTensor"
        assert (x.argmax(1) == T.tensor([0, 1])).type(T.float).sum().item() == 2.0
    with pytest.raises(ValueError, match="invalid type"):
        tg.ones(2).type("torch.NopeTensor")
