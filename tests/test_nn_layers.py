"""nn layers, containers, activations and nn.init, against PyTorch: weights are copied from
torch's module through state_dict (the generators differ), then outputs and the
gradients of inputs and parameters are compared in float64."""
import doctest
import importlib
import math
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import nn
from helpers import torch_or_skip

TOL = dict(rtol=1e-10, atol=1e-12)


def _copy_from_torch(ours, theirs):
    sd = {k: tg.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()}
    assert list(sd) == list(ours.state_dict())
    ours.load_state_dict(sd)


def _compare(torch, ours, theirs, *inputs, seed=0, grad_inputs=True, tol=TOL):
    """Run both modules on the same float64 (or integer) inputs with a random output
    cotangent; compare outputs, input gradients and parameter gradients."""
    rng = np.random.default_rng(seed)
    t_in = [torch.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f")
            for a in inputs]
    o_in = [tg.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f") for a in inputs]
    t_out = theirs(*t_in)
    o_out = ours(*o_in)
    np.testing.assert_allclose(o_out.detach().numpy(), t_out.detach().numpy(), **TOL)
    u = rng.standard_normal(tuple(t_out.shape))
    t_out.backward(torch.tensor(u))
    o_out.backward(tg.tensor(u))
    for t, o in zip(t_in, o_in):
        if t.requires_grad:
            np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), **tol)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        tg_ = t_params[name].grad
        if tg_ is None:
            assert p.grad is None or not np.any(p.grad.numpy())
        else:
            np.testing.assert_allclose(p.grad.numpy(), tg_.numpy(), **tol, err_msg=name)
    return o_out, t_out


# ---- Linear, Sequential MLPs, Bilinear -----------------------------------------------------
def test_sequential_mlp_matches_torch():
    torch = torch_or_skip()
    tn = torch.nn
    theirs = tn.Sequential(tn.Linear(5, 8), tn.ReLU(), tn.Linear(8, 6), tn.Tanh(),
                           tn.Linear(6, 3, bias=False)).double()
    ours = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(),
                         nn.Linear(6, 3, bias=False)).double()
    assert repr(ours) == repr(theirs)
    _copy_from_torch(ours, theirs)
    x = np.random.default_rng(1).standard_normal((7, 5))
    _compare(torch, ours, theirs, x)
    # a batch of batches and a single vector go through Linear too
    _compare(torch, ours[0], theirs[0], np.random.default_rng(2).standard_normal((2, 3, 5)))
    _compare(torch, ours[0], theirs[0], np.random.default_rng(3).standard_normal(5))


def test_linear_init_and_options():
    tg.manual_seed(0)
    lin = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert lin.weight.shape == (40, 50) and lin.bias.shape == (40,)
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.abs(w).max() > 0.9 * bound                  # spread over the whole range
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01
    assert lin.weight.dtype == tg.float32 and lin.weight.requires_grad
    tg.manual_seed(0)
    again = nn.Linear(50, 40)
    np.testing.assert_array_equal(again.weight.detach().numpy(), w)   # same seed, same draw
    lin2 = nn.Linear(3, 2, bias=False, dtype=tg.float64)
    assert lin2.bias is None and lin2.weight.dtype == tg.float64
    assert list(lin2.state_dict()) == ["weight"]
    assert repr(lin2) == "Linear(in_features=3, out_features=2, bias=False)"
    with pytest.raises(TypeError):
        nn.Linear(2.5, 3)


def test_bilinear_matches_torch():
    torch = torch_or_skip()
    theirs = torch.nn.Bilinear(3, 4, 5).double()
    ours = nn.Bilinear(3, 4, 5).double()
    assert repr(ours) == repr(theirs)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(4)
    _compare(torch, ours, theirs, rng.standard_normal((6, 3)), rng.standard_normal((6, 4)))
    nb_t, nb_o = torch.nn.Bilinear(2, 3, 2, bias=False).double(), nn.Bilinear(2, 3, 2, False)
    nb_o.double()
    _copy_from_torch(nb_o, nb_t)
    _compare(torch, nb_o, nb_t, rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 5, 3)))
    bound = 1 / math.sqrt(3)
    assert np.all(np.abs(nn.Bilinear(3, 4, 5).weight.detach().numpy()) <= bound)
    with pytest.raises(RuntimeError):
        ours(tg.ones(6, 3, dtype=tg.float64), tg.ones(5, 4, dtype=tg.float64))
    with pytest.raises(RuntimeError):
        theirs(torch.ones(6, 3, dtype=torch.float64), torch.ones(5, 4, dtype=torch.float64))


# ---- activations ----------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", (), {}), ("Tanh", (), {}), ("Sigmoid", (), {}), ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}), ("SiLU", (), {}), ("LeakyReLU", (), {}),
    ("LeakyReLU", (0.2,), {}), ("ELU", (), {}), ("ELU", (0.5,), {}), ("Softplus", (), {}),
    ("Softplus", (2.0, 1.0), {}), ("Softmax", (), {"dim": 1}), ("Softmax", (0,), {}),
    ("LogSoftmax", (), {"dim": -1}), ("SELU", (), {}), ("CELU", (0.7,), {}),
    ("Hardtanh", (-0.5, 0.5), {}), ("ReLU6", (), {}), ("LogSigmoid", (), {}),
    ("Softsign", (), {}), ("Tanhshrink", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", ACTIVATIONS)
def test_activation_modules_match_torch(name, args, kwargs):
    torch = torch_or_skip()
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    ours = getattr(nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    x = np.random.default_rng(5).standard_normal((4, 6)) * 3
    x[0, :3] = [0.25, -0.25, 30.0]
    # torch's CELU backward is off by ~1e-8 relative in float64 (ours is exp(x / alpha))
    _compare(torch, ours, theirs, x, tol=dict(rtol=1e-6) if name == "CELU" else TOL)
    assert list(ours.parameters()) == []


def test_softmax_without_dim_warns_and_picks_torchs_dim():
    torch = torch_or_skip()
    x = np.random.default_rng(6).standard_normal((2, 3, 4))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        ours = nn.Softmax()(tg.tensor(x)).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.nn.Softmax()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_softmax_bad_dim_matches_torch():
    torch = torch_or_skip()
    for lib, mod in ((tg, nn), (torch, torch.nn)):
        for cls in (mod.Softmax, mod.LogSoftmax):
            with pytest.raises(IndexError, match="Dimension out of range"):
                cls(dim=2)(lib.ones(2, 3))


def test_inplace_activation_modules():
    x = tg.tensor([-1.0, 2.0])
    y = nn.ReLU(inplace=True)(x)
    assert y is x or np.array_equal(x.numpy(), [0.0, 2.0])
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"
    assert repr(nn.LeakyReLU(0.1, True)) == "LeakyReLU(negative_slope=0.1, inplace=True)"


# ---- LayerNorm ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,normalized,affine", [((4, 5), 5, True), ((2, 3, 4), (3, 4),
                                                     True), ((3, 6), [6], False)])
def test_layernorm_matches_torch(shape, normalized, affine):
    torch = torch_or_skip()
    theirs = torch.nn.LayerNorm(normalized, elementwise_affine=affine).double()
    ours = nn.LayerNorm(normalized, elementwise_affine=affine).double()
    assert repr(ours) == repr(theirs)
    rng = np.random.default_rng(7)
    if affine:   # non-trivial weights, so their gradients are tested
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    _copy_from_torch(ours, theirs)
    _compare(torch, ours, theirs, rng.standard_normal(shape) * 2 + 1)


def test_layernorm_bad_shape_matches_torch():
    torch = torch_or_skip()
    with pytest.raises(RuntimeError) as t_err:
        torch.nn.LayerNorm(4)(torch.ones(2, 3))
    with pytest.raises(RuntimeError) as o_err:
        nn.LayerNorm(4)(tg.ones(2, 3))
    assert str(o_err.value) == str(t_err.value)


# ---- BatchNorm1d ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shape", [({}, (8, 3)), ({}, (4, 3, 5)),
                                          ({"momentum": None}, (6, 3)),
                                          ({"affine": False}, (5, 3)), ({"bias": False}, (5, 3)),
                                          ({"track_running_stats": False}, (5, 3, 2))])
def test_batchnorm1d_train_and_eval_match_torch(kwargs, shape):
    torch = torch_or_skip()
    theirs = torch.nn.BatchNorm1d(3, **kwargs).double()
    ours = nn.BatchNorm1d(3, **kwargs).double()
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        for p in theirs.parameters():
            p.normal_()
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(8)
    for step in range(3):
        x = rng.standard_normal(shape) * 3 + 2
        ours.zero_grad()
        theirs.zero_grad()
        _compare(torch, ours, theirs, x, seed=step)
        for (k, v), (tk, tv) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            assert k == tk
            np.testing.assert_allclose(v.numpy(), tv.numpy(), **TOL, err_msg=k)
    ours.eval()
    theirs.eval()
    ours.zero_grad()
    theirs.zero_grad()
    _compare(torch, ours, theirs, rng.standard_normal(shape), seed=9)
    if theirs.track_running_stats:   # eval leaves the statistics alone
        assert ours.num_batches_tracked.item() == 3


def test_batchnorm1d_errors_match_torch():
    torch = torch_or_skip()
    for lib, mod in ((tg, nn), (torch, torch.nn)):
        bn = mod.BatchNorm1d(3)
        with pytest.raises(ValueError, match="expected 2D or 3D input"):
            bn(lib.ones(2, 3, 4, 5))
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            bn(lib.ones(1, 3))
        with pytest.raises(RuntimeError):
            bn(lib.ones(4, 2))
        bn.eval()
        assert bn(lib.ones(1, 3)).shape == (1, 3)      # eval needs no batch statistics


# ---- Embedding ------------------------------------------------------------------------------
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(padding_idx):
    torch = torch_or_skip()
    theirs = torch.nn.Embedding(6, 4, padding_idx=padding_idx).double()
    ours = nn.Embedding(6, 4, padding_idx=padding_idx).double()
    assert repr(ours) == repr(theirs) and ours.padding_idx == theirs.padding_idx
    if padding_idx is not None:
        assert not np.any(ours.weight.detach().numpy()[ours.padding_idx])
    with torch.no_grad():
        theirs.weight.normal_()      # padding row nonzero: its value passes, its grad doesn't
    _copy_from_torch(ours, theirs)
    idx = np.array([[0, 2, 5], [2, 1, 5]])
    out, _ = _compare(torch, ours, theirs, idx)
    assert out.shape == (2, 3, 4)
    if padding_idx is not None:
        assert not np.any(ours.weight.grad.numpy()[ours.padding_idx])


def test_embedding_errors_and_from_pretrained():
    torch = torch_or_skip()
    for lib, mod in ((tg, nn), (torch, torch.nn)):
        emb = mod.Embedding(5, 2)
        with pytest.raises(IndexError, match="index out of range"):
            emb(lib.tensor([5]))
        with pytest.raises(RuntimeError, match="Expected tensor for argument #1"):
            emb(lib.tensor([1.0]))
        with pytest.raises(AssertionError):
            mod.Embedding(5, 2, padding_idx=5)
        pre = mod.Embedding.from_pretrained(lib.ones(3, 2))
        assert not pre.weight.requires_grad and pre(lib.tensor([1])).shape == (1, 2)
    idx = tg.tensor([1, 1], dtype=tg.int32)
    assert nn.Embedding(3, 2)(idx).shape == (2, 2)


def test_embedding_max_norm_matches_torch():
    torch = torch_or_skip()
    theirs = torch.nn.Embedding(4, 3, max_norm=1.0).double()
    ours = nn.Embedding(4, 3, max_norm=1.0).double()
    _copy_from_torch(ours, theirs)
    idx = np.array([0, 2])
    with torch.no_grad():
        t_out = theirs(torch.tensor(idx))
    np.testing.assert_allclose(ours(tg.tensor(idx)).detach().numpy(), t_out.numpy(),
                               rtol=1e-7)
    np.testing.assert_allclose(ours.weight.detach().numpy(), theirs.weight.detach().numpy(),
                               rtol=1e-7)


# ---- Dropout --------------------------------------------------------------------------------
def test_dropout_train_eval_and_gradient():
    torch = torch_or_skip()
    tg.manual_seed(3)
    drop = nn.Dropout(0.25)
    assert repr(drop) == repr(torch.nn.Dropout(0.25))
    x = tg.ones(20000, dtype=tg.float64, requires_grad=True)
    y = drop(x)
    vals = y.detach().numpy()
    assert set(np.unique(vals)) == {0.0, 1 / 0.75}
    assert abs((vals == 0).mean() - 0.25) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), vals)      # the mask times the scale
    tg.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout(0.25)(tg.ones(20000, dtype=tg.float64)).numpy(),
                                  vals)
    drop.eval()
    assert drop(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert not np.any(nn.Dropout(1.0)(tg.ones(5)).numpy())
    for mod in (nn, torch.nn):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
            mod.Dropout(1.5)


# ---- containers -----------------------------------------------------------------------------
def test_sequential_indexing_slicing_append():
    torch = torch_or_skip()
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and s[0] is a and s[-1] is c and s[-3] is a
    assert list(s) == [a, b, c]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]          # slicing keeps names, as torch
    with pytest.raises(IndexError):
        s[3]
    with pytest.raises(IndexError):
        torch.nn.Sequential(torch.nn.ReLU())[1]
    assert s.append(nn.Tanh()) is s and len(s) == 4
    assert list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    del s[1]
    assert list(s._modules) == ["0", "1", "2"] and s[1] is c
    s[2] = nn.Sigmoid()
    assert isinstance(s[2], nn.Sigmoid)
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    t_named = torch.nn.Sequential(OrderedDict([("fc", torch.nn.Linear(2, 2)),
                                               ("act", torch.nn.ReLU())]))
    assert list(named.state_dict()) == list(t_named.state_dict()) == ["fc.weight", "fc.bias"]
    assert repr(named) == repr(t_named)
    assert named.fc is named[0]
    np.testing.assert_array_equal(nn.Sequential()(tg.ones(2)).numpy(), [1, 1])


def test_module_list_dict_and_parameter_list_match_torch():
    torch = torch_or_skip()

    def build(mod, lib):
        m = mod.Module()
        m.layers = mod.ModuleList([mod.Linear(2, 2) for _ in range(3)])
        m.layers.append(mod.Tanh())
        m.heads = mod.ModuleDict({"a": mod.Linear(2, 1), "b": mod.Identity()})
        m.heads["c"] = mod.Linear(2, 3, bias=False)
        m.extra = mod.ParameterList([mod.Parameter(lib.ones(2)), lib.zeros(3)])
        m.named = mod.ParameterDict({"p": lib.ones(2), "q": mod.Parameter(lib.zeros(1, 3))})
        return m

    ours, theirs = build(nn, tg), build(torch.nn, torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert (repr(ours).replace("tapegrad.float32", "torch.float32")
            .replace("in_features=2, out_features=2, bias=True", "X")
            == repr(theirs).replace("in_features=2, out_features=2, bias=True", "X")
            .replace("torch.FloatTensor", "torch.float32"))   # ParameterDict's type name
    assert len(ours.layers) == 4 and isinstance(ours.layers[1:], nn.ModuleList)
    assert isinstance(ours.extra[1], nn.Parameter) and isinstance(ours.named["p"], nn.Parameter)
    assert list(ours.named) == ["p", "q"] and len(ours.named) == 2 and "q" in ours.named
    assert list(ours.heads) == ["a", "b", "c"] and "b" in ours.heads
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    with pytest.raises(NotImplementedError):
        ours.layers(tg.ones(2))
    ml = nn.ModuleList([nn.ReLU()])
    ml.insert(0, nn.Tanh())
    ml += [nn.Sigmoid()]
    assert [type(m).__name__ for m in ml] == ["Tanh", "ReLU", "Sigmoid"]
    del ml[0]
    assert list(ml._modules) == ["0", "1"]
    assert isinstance(ml.pop(0), nn.ReLU) and len(ml) == 1
    with pytest.raises(TypeError):
        nn.ModuleList([3])
    assert nn.ModuleDict([("x", nn.ReLU())]).pop("x").__class__ is nn.ReLU


def test_identity_flatten_unflatten_match_torch():
    torch = torch_or_skip()
    x = np.random.default_rng(10).standard_normal((2, 3, 4, 5))
    for args in [(), (0,), (1, 2), (0, -2), (2, 3)]:
        theirs, ours = torch.nn.Flatten(*args), nn.Flatten(*args)
        assert repr(ours) == repr(theirs)
        _compare(torch, ours, theirs, x)
    for dim, size in [(1, (3, 1)), (-1, (5, 1)), (2, (2, -1)), (0, [1, 2])]:
        theirs, ours = torch.nn.Unflatten(dim, size), nn.Unflatten(dim, size)
        assert repr(ours) == repr(theirs)
        _compare(torch, ours, theirs, x)
    with pytest.raises(RuntimeError, match="don't multiply up"):
        nn.Unflatten(1, (2, 2))(tg.ones(2, 3))
    with pytest.raises(RuntimeError, match="don't multiply up"):
        torch.nn.Unflatten(1, (2, 2))(torch.ones(2, 3))
    for mod in (nn, torch.nn):
        with pytest.raises(TypeError):
            mod.Unflatten(1, (2.0, 2))
    with pytest.raises(IndexError):
        nn.Flatten(3)(tg.ones(2, 3))
    _compare(torch, nn.Identity(54, unused=1), torch.nn.Identity(54, unused=1), x)


# ---- nn.init --------------------------------------------------------------------------------
def test_init_uniform_family_bounds():
    init = nn.init
    tg.manual_seed(0)
    w = tg.empty(200, 300)
    assert init.uniform_(w, -0.5, 2.0) is w
    a = w.numpy()
    assert a.min() >= -0.5 and a.max() < 2.0 and abs(a.mean() - 0.75) < 0.02
    b = math.sqrt(6 / 500)
    assert np.abs(init.xavier_uniform_(w).numpy()).max() <= b
    assert np.abs(init.xavier_uniform_(w, gain=2.0).numpy()).max() > 1.9 * b * 0.99
    kb = math.sqrt(2) * math.sqrt(3 / 300)
    assert np.abs(init.kaiming_uniform_(w, nonlinearity="relu").numpy()).max() <= kb
    assert np.abs(init.kaiming_uniform_(w, mode="fan_out",
                                        nonlinearity="relu").numpy()).max() <= kb * math.sqrt(
        300 / 200)
    c = tg.empty(4, 3, 5)      # fans count the receptive field
    assert np.abs(init.xavier_uniform_(c).numpy()).max() <= math.sqrt(6 / (15 + 20))


def test_init_normal_family_std():
    init = nn.init
    tg.manual_seed(1)
    w = tg.empty(400, 500, dtype=tg.float64)
    a = init.normal_(w, 1.0, 2.0).numpy()
    assert abs(a.mean() - 1.0) < 0.02 and abs(a.std() - 2.0) < 0.02
    assert abs(init.xavier_normal_(w).numpy().std() - math.sqrt(2 / 900)) < 1e-3
    assert abs(init.kaiming_normal_(w).numpy().std() - math.sqrt(2 / 500)) < 1e-3
    assert abs(init.kaiming_normal_(w, mode="fan_out", nonlinearity="tanh").numpy().std()
               - 5 / 3 / math.sqrt(400)) < 1e-3
    t = init.trunc_normal_(w, 0.0, 1.0, -1.0, 1.5).numpy()
    assert t.min() >= -1.0 and t.max() <= 1.5
    np.testing.assert_array_equal(init.zeros_(w).numpy(), 0)
    np.testing.assert_array_equal(init.ones_(w).numpy(), 1)
    np.testing.assert_array_equal(init.constant_(w, 0.5).numpy(), 0.5)
    np.testing.assert_array_equal(init.eye_(tg.empty(3, 4)).numpy(), np.eye(3, 4))


def test_init_orthogonal():
    init = nn.init
    for shape in [(5, 5), (3, 7), (8, 2), (4, 2, 3)]:
        w = init.orthogonal_(tg.empty(*shape, dtype=tg.float64), gain=2.0).numpy()
        m = w.reshape(shape[0], -1)
        small = min(m.shape)
        gram = m @ m.T if m.shape[0] == small else m.T @ m
        np.testing.assert_allclose(gram, 4 * np.eye(small), atol=1e-12)


def test_init_on_parameters_under_autograd():
    lin = nn.Linear(4, 3)
    out = lin(tg.ones(2, 4))
    nn.init.zeros_(lin.weight)              # a leaf that requires grad: allowed in init
    assert lin.weight.requires_grad and lin.weight.is_leaf
    assert not np.any(lin.weight.detach().numpy())
    del out
    lin(tg.ones(2, 4)).sum().backward()
    np.testing.assert_array_equal(lin.weight.grad.numpy(), 2)
    g = tg.Generator().manual_seed(5) if hasattr(tg, "Generator") else None
    if g is not None:
        a = nn.init.normal_(tg.empty(3), generator=g).numpy().copy()
        g.manual_seed(5)
        np.testing.assert_array_equal(nn.init.normal_(tg.empty(3), generator=g).numpy(), a)


def test_init_gain_and_errors_match_torch():
    torch = torch_or_skip()
    ti = torch.nn.init
    for args in [("linear",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",),
                 ("leaky_relu", 0.2), ("selu",), ("conv2d",)]:
        assert nn.init.calculate_gain(*args) == pytest.approx(ti.calculate_gain(*args))
    for lib, init in ((tg, nn.init), (torch, ti)):
        with pytest.raises(ValueError, match="Unsupported nonlinearity"):
            init.calculate_gain("swish")
        with pytest.raises(ValueError, match="not a valid number"):
            init.calculate_gain("leaky_relu", "x")
        with pytest.raises(ValueError, match="fewer than 2 dimensions"):
            init.xavier_uniform_(lib.empty(3))
        with pytest.raises(ValueError, match="Mode fan_avg not supported"):
            init.kaiming_normal_(lib.empty(3, 3), mode="fan_avg")
        with pytest.raises(ValueError, match="Only tensors with 2 or more dimensions"):
            init.orthogonal_(lib.empty(3))
        with pytest.warns(UserWarning, match="zero-element"):
            init.kaiming_uniform_(lib.empty(0, 3))


@pytest.mark.parametrize("module", ["tapegrad.nn.parameter", "tapegrad.nn.init",
                                    "tapegrad.nn.modules.module",
                                    "tapegrad.nn.modules.container",
                                    "tapegrad.nn.modules.linear",
                                    "tapegrad.nn.modules.activation",
                                    "tapegrad.nn.modules.flatten",
                                    "tapegrad.nn.modules.dropout",
                                    "tapegrad.nn.modules.sparse",
                                    "tapegrad.nn.modules.normalization"])
def test_docstring_examples(module):
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0
