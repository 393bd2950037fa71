"""nn.Module and nn.Parameter: registration, traversal, modes, dtype conversion, state
dicts, hooks, repr and errors, compared with PyTorch where it is installed."""
import copy

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn
from helpers import torch_or_skip


class Affine(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.scale = nn.Parameter(tg.ones(n))
        self.bias = nn.Parameter(tg.zeros(n))
        self.register_buffer("count", tg.zeros((), dtype=tg.int64))
        self.register_buffer("scratch", tg.zeros(n), persistent=False)

    def forward(self, x):
        return x * self.scale + self.bias


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Affine()
        self.b = Affine()
        self.w = nn.Parameter(tg.ones(3))

    def forward(self, x):
        return self.b(self.a(x)) * self.w


def test_parameter_is_a_leaf_and_ops_give_plain_tensors():
    p = nn.Parameter(tg.tensor([1.0, 2.0]))
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    y = p * 2
    assert type(y) is tg.Tensor and type(p + p) is tg.Tensor and type(p.sum()) is tg.Tensor
    y.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0])
    assert not nn.Parameter(tg.ones(2), requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q.requires_grad
    q.data[0] = 5.0
    assert p.data[0] == 1.0


def test_parameter_shares_data_and_repr():
    torch = torch_or_skip()
    t = tg.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    t.data[0] = 7.0
    assert p.data[0] == 7.0
    ref = repr(torch.nn.Parameter(torch.tensor([1.0, 2.0])))
    assert repr(nn.Parameter(tg.tensor([1.0, 2.0]))) == ref
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(tg.tensor([1, 2]))
    with pytest.raises(RuntimeError):
        torch.nn.Parameter(torch.tensor([1, 2]))


def test_registration_and_traversal():
    n = Net()
    assert [k for k, _ in n.named_parameters()] == ["w", "a.scale", "a.bias", "b.scale",
                                                    "b.bias"]
    assert len(list(n.parameters())) == 5 and len(list(n.parameters(recurse=False))) == 1
    assert [k for k, _ in n.named_buffers()] == ["a.count", "a.scratch", "b.count",
                                                 "b.scratch"]
    assert len(list(n.buffers())) == 4
    assert [k for k, _ in n.named_children()] == ["a", "b"]
    assert list(n.children()) == [n.a, n.b]
    assert [k for k, _ in n.named_modules()] == ["", "a", "b"]
    assert list(n.modules()) == [n, n.a, n.b]
    assert n.get_submodule("a") is n.a and n.get_parameter("a.bias") is n.a.bias
    # shared modules and parameters are listed once
    n.b = n.a
    assert [k for k, _ in n.named_modules()] == ["", "a"]
    assert len(list(n.parameters())) == 3
    assert len(list(n.named_parameters(remove_duplicate=False))) == 5
    # reassigning / deleting
    n.w = None
    assert "w" in n._parameters and n.w is None
    del n.a
    assert not hasattr(n, "a")
    n.add_module("c", Affine())
    n.register_module("d", None)
    assert [k for k, _ in n.named_children()] == ["b", "c"]
    n.register_parameter("extra", nn.Parameter(tg.ones(1)))
    assert "extra" in dict(n.named_parameters())


def test_forward_through_call_and_gradients():
    n = Net()
    x = tg.tensor([1.0, 2.0, 3.0])
    n(x).sum().backward()
    np.testing.assert_allclose(n.a.scale.grad.numpy(), [1, 2, 3])
    np.testing.assert_allclose(n.w.grad.numpy(), [1, 2, 3])
    n.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(n.w.grad.numpy(), 0)
    n.zero_grad()
    assert all(p.grad is None for p in n.parameters())
    n.requires_grad_(False)
    assert not any(p.requires_grad for p in n.parameters())
    assert n.requires_grad_() is n and all(p.requires_grad for p in n.parameters())
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(x)


def test_train_eval_apply():
    n = Net()
    assert n.training and n.a.training
    assert n.eval() is n
    assert not n.training and not n.a.training and not n.b.training
    n.train()
    assert n.b.training
    n.a.train(False)
    assert n.training and not n.a.training
    with pytest.raises(ValueError, match="boolean"):
        n.train("yes")

    class Frozen(Affine):           # an override of train() is honoured below the root
        def train(self, mode=True):
            return super().train(False)
    n.c = Frozen()
    n.train()
    assert n.training and n.a.training and not n.c.training
    del n.c
    seen = []
    assert n.apply(lambda m: seen.append(type(m).__name__)) is n
    assert seen == ["Affine", "Affine", "Net"]


def test_dtype_conversion_keeps_parameter_objects():
    n = Net()
    p = n.a.scale
    n(tg.ones(3)).sum().backward()
    assert n.double() is n
    assert n.a.scale is p and p.dtype == tg.float64 and p.grad.dtype == tg.float64
    assert n.a.count.dtype == tg.int64          # integer buffers keep their dtype
    assert n.a.scratch.dtype == tg.float64
    n.zero_grad()
    n(tg.ones(3, dtype=tg.float64)).sum().backward()
    assert n.a.scale.grad.dtype == tg.float64
    n.float()
    assert p.dtype == tg.float32
    n.to(tg.float64)
    assert p.dtype == tg.float64
    n.to("cpu")
    n.to(tg.zeros(1, dtype=tg.float32))
    assert p.dtype == tg.float32
    with pytest.raises(TypeError, match="floating point"):
        n.to(tg.int64)
    with pytest.raises(RuntimeError):
        n.to("cuda")


def test_dtype_conversion_with_a_live_graph():
    # the old float32 graph still holds the parameter; new records must see float64
    n = Affine()
    x32 = tg.tensor([1.0, 2.0, 3.0])
    old = n(x32)
    n.double()
    x = tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)
    (n(x) * n.scale).sum().backward()
    np.testing.assert_array_equal(n.scale.grad.numpy(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(n.bias.grad.numpy(), [1.0, 1.0, 1.0])
    assert old.dtype == tg.float32


def test_state_dict_keys_match_torch():
    torch = torch_or_skip()

    class TAffine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))
            self.bias = torch.nn.Parameter(torch.zeros(3))
            self.register_buffer("count", torch.zeros((), dtype=torch.int64))
            self.register_buffer("scratch", torch.zeros(3), persistent=False)

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = TAffine()
            self.b = TAffine()
            self.w = torch.nn.Parameter(torch.ones(3))

    ref = TNet().state_dict()
    ours = Net().state_dict()
    assert list(ours) == list(ref)
    sd = {k: tg.tensor(v.numpy() + 1) for k, v in ref.items()}
    n = Net()
    p = n.a.bias
    res = n.load_state_dict(sd)
    assert repr(res) == repr(TNet().load_state_dict(ref)) == "<All keys matched successfully>"
    assert n.a.bias is p
    np.testing.assert_array_equal(n.a.bias.data, [1, 1, 1])
    assert n.a.count.item() == 1
    # round trip; state_dict values are detached and share memory
    sd2 = n.state_dict()
    assert not sd2["w"].requires_grad and not isinstance(sd2["w"], nn.Parameter)
    sd2["w"].data[0] = 9.0
    assert n.w.data[0] == 9.0
    assert n.state_dict(keep_vars=True)["w"] is n.w
    m = Net()
    m.load_state_dict(n.state_dict())
    for (k1, v1), (k2, v2) in zip(m.state_dict().items(), n.state_dict().items()):
        assert k1 == k2
        np.testing.assert_array_equal(v1.numpy(), v2.numpy())


def _torch_load_error(torch, fn):
    with pytest.raises(Exception) as e:
        fn()
    return e


def test_load_state_dict_errors_match_torch():
    torch = torch_or_skip()
    tm = torch.nn.Module()
    tm.lin = torch.nn.Module()
    tm.lin.weight = torch.nn.Parameter(torch.ones(2))
    tm.lin.bias = torch.nn.Parameter(torch.ones(2))
    m = nn.Module()
    m.lin = nn.Module()
    m.lin.weight = nn.Parameter(tg.ones(2))
    m.lin.bias = nn.Parameter(tg.ones(2))

    def both(sd_np, **kw):
        with pytest.raises(RuntimeError) as t_err:
            tm.load_state_dict({k: torch.tensor(v) for k, v in sd_np.items()}, **kw)
        with pytest.raises(RuntimeError) as our_err:
            m.load_state_dict({k: tg.tensor(v) for k, v in sd_np.items()}, **kw)
        return str(t_err.value), str(our_err.value)

    t_msg, msg = both({"lin.weight": np.ones(2), "lin.extra": np.ones(2), "foo": np.ones(1)})
    assert msg == t_msg      # missing and unexpected keys, PyTorch's exact message
    t_msg, msg = both({"lin.weight": np.ones(3), "lin.bias": np.ones(2)})
    assert msg.replace("tapegrad.Size", "torch.Size") == t_msg
    res = m.load_state_dict({"lin.weight": tg.zeros(2), "x.y": tg.zeros(1)}, strict=False)
    t_res = tm.load_state_dict({"lin.weight": torch.zeros(2), "x.y": torch.zeros(1)},
                               strict=False)
    assert res == t_res and res.missing_keys == ["lin.bias"]
    assert res.unexpected_keys == ["x.y"]
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_assignment_errors_match_torch_types():
    torch = torch_or_skip()
    for mod, P, T in ((nn.Module(), nn.Parameter, tg.ones),
                      (torch.nn.Module(), torch.nn.Parameter, torch.ones)):
        mod.p = P(T(2))
        with pytest.raises(TypeError, match="as parameter 'p'"):
            mod.p = T(2)
        mod.c = type(mod)()
        with pytest.raises(TypeError, match="as child module 'c'"):
            mod.c = 3
        mod.register_buffer("b", T(2))
        with pytest.raises(TypeError, match="as buffer 'b'"):
            mod.b = 3
        mod.b = T(3)
        with pytest.raises(KeyError, match="already exists"):
            mod.register_buffer("p", T(1))
        with pytest.raises(KeyError, match="contain"):
            mod.register_buffer("x.y", T(1))
        with pytest.raises(KeyError, match="empty string"):
            mod.register_parameter("", None)
        with pytest.raises(TypeError):
            mod.register_parameter("q", T(1))
        with pytest.raises(TypeError):
            mod.register_buffer("q", 3)
        with pytest.raises(TypeError, match="is not a Module subclass"):
            mod.add_module("q", 3)
        with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
            mod.nothing

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(tg.ones(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_non_leaf_parameter_is_refused():
    p = nn.Parameter(tg.ones(2)) * 2
    p.__class__ = nn.Parameter       # a Parameter with history (torch forbids it too)
    with pytest.raises(ValueError, match="non-leaf"):
        nn.Module().register_parameter("r", p)


def test_hooks_order_and_removal():
    m = Affine()
    calls = []

    def pre1(mod, args):
        calls.append("pre1")

    def pre2(mod, args):
        calls.append("pre2")
        return args[0] * 2          # a non-tuple is wrapped

    def post(mod, args, out):
        calls.append("post")
        return out + 1

    h1 = m.register_forward_pre_hook(pre1)
    h2 = m.register_forward_pre_hook(pre2)
    h0 = m.register_forward_pre_hook(lambda mod, a: calls.append("first"), prepend=True)
    h3 = m.register_forward_hook(post)
    out = m(tg.ones(3))
    assert calls == ["first", "pre1", "pre2", "post"]
    np.testing.assert_array_equal(out.detach().numpy(), 3.0)
    h2.remove()
    h3.remove()
    h0.remove()
    calls.clear()
    np.testing.assert_array_equal(m(tg.ones(3)).detach().numpy(), 1.0)
    assert calls == ["pre1"]
    h1.remove()
    h1.remove()           # twice is harmless

    def kw_pre(mod, args, kwargs):
        return (args[0] + 1,), kwargs
    with m.register_forward_pre_hook(kw_pre, with_kwargs=True):
        np.testing.assert_array_equal(m(tg.ones(3)).detach().numpy(), 2.0)
    np.testing.assert_array_equal(m(tg.ones(3)).detach().numpy(), 1.0)
    seen = []
    m.register_forward_hook(lambda mod, a, kw, o: seen.append(kw), with_kwargs=True)
    m(x=tg.ones(3))
    assert list(seen[0]) == ["x"]


def test_repr_matches_torch():
    torch = torch_or_skip()

    class Leaf(torch.nn.Module):
        def extra_repr(self):
            return "n=3"
    TLeaf = Leaf

    class Leaf(nn.Module):
        def extra_repr(self):
            return "n=3"

    def build(lib, leaf):
        outer = lib.Module()
        inner = lib.Module()
        inner.x = leaf()
        inner.y = lib.Module()
        outer.first = inner
        outer.second = leaf()
        return outer

    assert repr(build(nn, Leaf)) == repr(build(torch.nn, TLeaf))
    assert repr(nn.Module()) == repr(torch.nn.Module()) == "Module()"
