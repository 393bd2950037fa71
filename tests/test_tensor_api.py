"""The Tensor API a PyTorch user reaches for (issue #16): return types, ties, dtypes,
non-differentiability, in-place rules, errors and the Python protocol, against PyTorch;
and the 80 everyday idioms, each run once with ``import torch`` and once with tapegrad.

The gradients of the differentiable ops are checked in the op table
(tests/table_tensor_api.py); this file covers what a table row cannot.
"""
import copy
import pickle
import warnings

import numpy as np
import pytest

import tapegrad as tg
from helpers import torch_or_skip

_A = [[3.0, 1.0, 2.0, 1.0], [0.5, 0.5, -1.0, 4.0], [2.0, 2.0, 2.0, -3.0]]   # with ties


# ---- comparing a tapegrad result with a torch one ------------------------------------------------
def _dtype_name(d):
    return str(d).replace("torch.", "").replace("tapegrad.", "")


def _is_tensor(v):
    return type(v).__name__ in ("Tensor", "Parameter")


def assert_same(ours, theirs, path="result", rtol=1e-6, atol=1e-7):
    """Values, shapes and dtypes of tensors; lengths of sequences; equality of the rest."""
    if _is_tensor(theirs):
        assert _is_tensor(ours), f"{path}: torch gives a tensor, tapegrad {type(ours).__name__}"
        a = np.asarray(ours.detach().numpy())
        b = theirs.detach().numpy()
        assert a.shape == b.shape, f"{path}: shape {a.shape} != torch's {b.shape}"
        assert _dtype_name(ours.dtype) == _dtype_name(theirs.dtype), \
            f"{path}: dtype {ours.dtype} != torch's {theirs.dtype}"
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=path)
        else:
            np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(theirs, dict):
        assert isinstance(ours, dict) and ours.keys() == theirs.keys(), path
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{path}[{k!r}]", rtol, atol)
    elif isinstance(theirs, (tuple, list)) and not type(theirs).__name__ == "Size":
        assert isinstance(ours, (tuple, list)), f"{path}: {type(ours).__name__}"
        assert len(ours) == len(theirs), f"{path}: {len(ours)} items, torch {len(theirs)}"
        for k, (o, t) in enumerate(zip(ours, theirs)):
            assert_same(o, t, f"{path}[{k}]", rtol, atol)
    elif type(theirs).__name__ == "Size":
        assert tuple(ours) == tuple(theirs), f"{path}: {tuple(ours)} != {tuple(theirs)}"
    elif isinstance(theirs, float):
        assert isinstance(ours, float), f"{path}: {type(ours).__name__}, torch float"
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=path)
    else:
        assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} vs " \
                                           f"{type(theirs).__name__}"
        assert ours == theirs, f"{path}: {ours!r} != torch's {theirs!r}"


def both(fn):
    torch = torch_or_skip()
    return fn(tg), fn(torch)


def test_assert_same_can_fail():
    torch = torch_or_skip()
    for ours, theirs in [(tg.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5])),
                         (tg.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64)),
                         (tg.tensor([1, 2]), torch.tensor([[1, 2]])),
                         ((tg.tensor(1.0),), (torch.tensor(1.0), torch.tensor(1.0))),
                         (1, 1.0), (True, 1), ("1.000", "1.0")]:
        with pytest.raises(AssertionError):
            assert_same(ours, theirs)


# ---- the 80 idioms -------------------------------------------------------------------------------
def _grad_of(T, f, data):
    x = T.tensor(data, requires_grad=True)
    f(T, x).backward()
    return x.grad


def _sgd_steps(T):
    w = T.tensor([1.0, -2.0], requires_grad=True)
    opt = T.optim.SGD([w], lr=0.1, momentum=0.9)
    for _ in range(3):
        opt.zero_grad()
        loss = ((w - T.tensor([0.5, 0.5])) ** 2).sum()
        loss.backward()
        opt.step()
    return w.detach()


def _loop_sum(T):
    total = 0.0
    for row in T.tensor([[1.0, 2.0], [3.0, 4.0]]):
        total += float(row.sum())
    return total


def _in_place_no_grad(T):
    w = T.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with T.no_grad():
        w -= 0.5 * w.grad
    w.grad.zero_()
    return w.detach(), w.grad, w.requires_grad


def _pickled(T):
    x = T.tensor([1.0, 2.0], requires_grad=True)
    y = pickle.loads(pickle.dumps(x))
    return y.detach(), y.requires_grad, y.is_leaf


def _dict_by_tensor(T):
    a, b = T.tensor([1.0]), T.tensor([1.0])
    d = {a: "a", b: "b"}
    return len(d), d[a], d[b], hash(a) == hash(a)


IDIOMS = {
    # ---- the ones the issue found failing
    "exp_": lambda T: T.tensor([0.0, 1.0, -1.0]).exp_(),
    "pow_": lambda T: T.tensor([1.0, 2.0, 3.0]).pow_(2),
    "sqrt_-returns-self": lambda T: (lambda x: (x.sqrt_() is x, x))(T.tensor([4.0, 9.0])),
    "allclose": lambda T: T.allclose(T.tensor([1.0, 2.0]), T.tensor([1.0, 2.0 + 1e-7])),
    "isnan-any": lambda T: T.isnan(T.tensor([1.0, float("nan")])).any(),
    "isfinite-all": lambda T: T.isfinite(T.tensor([1.0, float("inf")])).all().item(),
    "equal": lambda T: (T.equal(T.tensor([1, 2]), T.tensor([1, 2])),
                        T.equal(T.tensor([1, 2]), T.tensor([1, 3]))),
    "new_zeros": lambda T: T.tensor([1.0], dtype=T.float64).new_zeros(2, 3),
    "new_tensor": lambda T: T.tensor([1.0]).new_tensor([[1, 2], [3, 4]]),
    "empty_like-shape-dtype": lambda T: (lambda e: (e.shape, e.dtype == T.int64))(
        T.empty_like(T.tensor([[1, 2]]))),
    "sort": lambda T: T.sort(T.tensor([3.0, 1.0, 2.0])),
    "sort-unpack-descending": lambda T: (lambda v, i: (v, i))(
        *T.tensor([[3.0, 1.0], [0.0, 2.0]]).sort(dim=1, descending=True)),
    "topk-values-indices": lambda T: (lambda r: (r.values, r.indices))(
        T.topk(T.tensor([1.0, 5.0, 3.0, 4.0]), 2)),
    "argsort": lambda T: T.tensor([[2.0, 0.5, 1.0]]).argsort(dim=-1, descending=True),
    "nonzero": lambda T: T.tensor([[0, 1], [2, 0]]).nonzero(),
    "nonzero-as_tuple-index": lambda T: (lambda x: x[x.nonzero(as_tuple=True)])(
        T.tensor([[0.0, 1.5], [2.5, 0.0]])),
    "randperm-is-a-permutation": lambda T: T.sort(T.randperm(6)).values,
    "bmm": lambda T: T.bmm(T.ones(2, 3, 4), T.arange(24.0).reshape(2, 4, 3)),
    "chunk": lambda T: T.arange(10).chunk(3),
    "split-sizes": lambda T: T.arange(10.0).split([3, 7]),
    "split-int-dim": lambda T: T.arange(12).reshape(3, 4).split(3, dim=1),
    "unbind": lambda T: T.arange(6).reshape(2, 3).unbind(1),
    "narrow": lambda T: T.arange(10).reshape(2, 5).narrow(1, 1, 3),
    "repeat": lambda T: T.tensor([1, 2]).repeat(2, 2),
    "expand_as": lambda T: T.tensor([[1.0], [2.0]]).expand_as(T.zeros(2, 3)),
    "view_as": lambda T: T.arange(6).view_as(T.zeros(2, 3)),
    "reshape_as": lambda T: T.arange(6).reshape_as(T.zeros(3, 2)),
    "t-contiguous-view": lambda T: T.arange(6).reshape(2, 3).t().contiguous().view(-1),
    "where-one-argument": lambda T: T.where(T.tensor([[1.0, 0.0], [0.0, 3.0]]) > 0),
    "any-all-dim": lambda T: (T.tensor([[True, False], [False, False]]).any(dim=1),
                              T.tensor([[1, 0], [1, 1]]).all(dim=0)),
    "floordiv": lambda T: (T.tensor([5, -5, 7]) // 2, T.tensor([5.5, -5.5]) // 2),
    "mod": lambda T: (T.tensor([5, -5, 7]) % 2, T.tensor([5.5, -5.5]) % 2),
    "is_floating_point": lambda T: (T.ones(2).is_floating_point(),
                                    T.is_floating_point(T.arange(3))),
    "format-0d-loss": lambda T: f"loss {((T.tensor([1.0, 2.0]) - 0.25) ** 2).mean():.3f}",
    "diag": lambda T: (T.diag(T.tensor([1.0, 2.0])), T.arange(9).reshape(3, 3).diag()),
    "diag_embed": lambda T: T.diag_embed(T.tensor([[1.0, 2.0], [3.0, 4.0]])),
    "meshgrid": lambda T: T.meshgrid(T.arange(3), T.arange(2), indexing="ij"),
    # ---- sorting and selection
    "max-dim-named": lambda T: (lambda r: (r.values, r.indices))(
        T.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)),
    "min-dim-keepdim": lambda T: T.min(T.tensor([[1.0, 5.0], [7.0, 2.0]]), 0, keepdim=True),
    "median": lambda T: T.tensor([4.0, 1.0, 3.0, 2.0]).median(),
    "kthvalue": lambda T: T.kthvalue(T.tensor([4.0, 1.0, 3.0, 2.0]), 2),
    "unique-counts": lambda T: T.unique(T.tensor([3, 1, 3, 2, 1, 3]), return_counts=True),
    "searchsorted": lambda T: T.searchsorted(T.tensor([1.0, 2.0, 4.0]), T.tensor([0.5, 2.0, 5.0])),
    "cat-stack": lambda T: (T.cat([T.ones(2), T.zeros(1)]), T.stack([T.ones(2), T.zeros(2)], 1)),
    "view-permute": lambda T: T.arange(24).view(2, 3, 4).permute(2, 0, 1).shape,
    "transpose-T": lambda T: (T.arange(6).reshape(2, 3).T, T.arange(6).reshape(2, 3).mT),
    "addmm": lambda T: T.addmm(T.ones(2), T.eye(2), T.tensor([[1.0, 2.0], [3.0, 4.0]]), beta=0.5),
    "repeat_interleave": lambda T: T.tensor([1, 2]).repeat_interleave(2),
    "cross": lambda T: T.cross(T.tensor([1.0, 0.0, 0.0]), T.tensor([0.0, 1.0, 0.0]), dim=0),
    "cdist": lambda T: T.cdist(T.tensor([[0.0, 0.0], [3.0, 4.0]]), T.tensor([[0.0, 0.0]])),
    "einsum": lambda T: T.einsum("ij,jk->ik", T.eye(2), T.tensor([[1.0, 2.0], [3.0, 4.0]])),
    "bool-mask-index": lambda T: (lambda x: x[x > 1.5])(T.tensor([1.0, 2.0, 3.0])),
    "masked_fill": lambda T: T.zeros(3).masked_fill(T.tensor([True, False, True]), -1.0),
    "gather": lambda T: T.tensor([[1, 2], [3, 4]]).gather(1, T.tensor([[0], [1]])),
    # ---- arithmetic and reductions
    "broadcast-arith": lambda T: T.arange(3.0).reshape(3, 1) * T.arange(2.0) + 1,
    "sum-dim-keepdim": lambda T: T.arange(6.0).reshape(2, 3).sum(dim=1, keepdim=True),
    "clamp-clip": lambda T: (T.tensor([-2.0, 0.5, 3.0]).clamp(min=0, max=1),
                             T.clip(T.tensor([-2.0, 3.0]), -1, 1)),
    "cumsum-method": lambda T: T.tensor([1, 2, 3]).cumsum(0),
    "sign-abs": lambda T: (T.tensor([-2.0, 0.0, 3.0]).sign(), T.tensor([-2, 3]).abs()),
    "nan_to_num": lambda T: T.nan_to_num(T.tensor([float("nan"), 1.0]), nan=0.0),
    "diff": lambda T: T.tensor([1, 4, 9, 16]).diff(),
    "softmax": lambda T: T.softmax(T.tensor([1.0, 2.0, 3.0]), dim=0),
    "item-tolist": lambda T: (T.tensor([[1.5]]).item(), T.tensor([[1, 2]]).tolist()),
    "dtype-conversions": lambda T: (T.tensor([1.7, -1.2]).long(), T.tensor([1, 0]).bool(),
                                    T.tensor([1, 2]).to(T.float64)),
    # ---- autograd
    "backward-grad": lambda T: _grad_of(T, lambda T, x: (x ** 2).sum(), [1.0, -2.0, 3.0]),
    "grad-through-sort": lambda T: _grad_of(
        T, lambda T, x: (x.sort().values * T.tensor([1.0, 2.0, 3.0])).sum(), [0.3, -1.0, 2.0]),
    "grad-through-topk": lambda T: _grad_of(
        T, lambda T, x: x.topk(2).values.sum(), [0.3, -1.0, 2.0, 1.5]),
    "grad-through-max-dim": lambda T: _grad_of(
        T, lambda T, x: x.max(dim=1).values.sum(), [[0.3, -1.0], [2.0, 1.5]]),
    "grad-through-chunk": lambda T: _grad_of(
        T, lambda T, x: (lambda a, b: (a * 2 + b).sum())(*x.chunk(2)), [1.0, 2.0, 3.0, 4.0]),
    "no_grad": lambda T: (lambda x: _no_grad_flag(T, x))(T.ones(2, requires_grad=True)),
    "detach-numpy": lambda T: float((T.ones(2, requires_grad=True) * 2).detach().numpy().sum()),
    "sgd-steps": _sgd_steps,
    "inplace-update-under-no_grad": _in_place_no_grad,
    "mse-loss": lambda T: T.nn.functional.mse_loss(T.tensor([1.0, 2.0]), T.tensor([0.0, 0.0])),
    "cross-entropy": lambda T: T.nn.functional.cross_entropy(
        T.tensor([[2.0, 0.5, -1.0]]), T.tensor([0])),
    # ---- the Python protocol
    "len-iterate": _loop_sum,
    "index-with-0d": lambda T: list(range(10))[T.tensor(3)],
    "pickle-leaf": _pickled,
    "deepcopy": lambda T: (lambda y: (y.detach(), y.requires_grad))(
        copy.deepcopy(T.tensor([1.0], requires_grad=True))),
    "hash-by-identity": _dict_by_tensor,
}


def _no_grad_flag(T, x):
    with T.no_grad():
        y = x * 2
    return y.requires_grad, (x * 2).requires_grad


def test_there_are_80_idioms():
    assert len(IDIOMS) == 80


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(IDIOMS))
def test_idiom_matches_torch(name):
    torch = torch_or_skip()
    theirs = IDIOMS[name](torch)
    ours = IDIOMS[name](tg)
    assert_same(ours, theirs, name)


# ---- return types --------------------------------------------------------------------------------
@pytest.mark.parametrize("op,call", [
    ("sort", lambda T, x: T.sort(x, 1)), ("topk", lambda T, x: T.topk(x, 2)),
    ("kthvalue", lambda T, x: T.kthvalue(x, 2)), ("median", lambda T, x: T.median(x, 0)),
    ("mode", lambda T, x: T.mode(x, 1)), ("max", lambda T, x: T.max(x, 1)),
    ("min", lambda T, x: x.min(0))])
def test_named_tuples_have_values_and_indices(op, call):
    torch = torch_or_skip()
    ours, theirs = call(tg, tg.tensor(_A)), call(torch, torch.tensor(_A))
    assert isinstance(ours, tuple) and len(ours) == 2
    assert ours.values is ours[0] and ours.indices is ours[1]
    assert ours.indices.dtype == tg.int64 and not ours.indices.requires_grad
    values, indices = ours
    assert_same(values, theirs.values)
    if op in ("sort", "median", "mode", "max", "min"):      # torch's tie rule is ours there
        assert_same(indices, theirs.indices)
    assert repr(ours).startswith(f"tapegrad.return_types.{op}(\nvalues=tensor(")
    assert type(ours) is getattr(tg.return_types, op)


def test_ties_sort_and_argsort_like_torch():
    torch = torch_or_skip()
    data = [2.0, 1.0, 2.0, float("nan"), 1.0, -0.0, 0.0, 2.0]
    for kw in (dict(), dict(descending=True), dict(stable=True), dict(descending=True,
                                                                      stable=True)):
        assert_same(tg.sort(tg.tensor(data), **kw), torch.sort(torch.tensor(data), **kw))
        assert_same(tg.argsort(tg.tensor(data), **kw), torch.argsort(torch.tensor(data), **kw))
    assert_same(*both(lambda T: T.sort(T.tensor([[1, 3, 1], [2, 2, 0]]), 0, descending=True)))


def test_ties_selection_values_like_torch():
    torch = torch_or_skip()
    for fn in (lambda T, x: T.topk(x, 3, dim=1).values,
               lambda T, x: T.topk(x, 2, dim=0, largest=False).values,
               lambda T, x: T.kthvalue(x, 2, dim=1).values,
               lambda T, x: T.median(x),
               lambda T, x: T.median(T.tensor([1.0, float("nan"), 0.0]), 0),
               lambda T, x: T.mode(T.tensor([[1.0, 2.0, 2.0, 1.0, 3.0],
                                             [3.0, 1.0, 1.0, 3.0, 0.0]])),
               lambda T, x: T.max(x, 1),
               lambda T, x: T.unique(x, return_inverse=True, return_counts=True),
               lambda T, x: T.unique(x.long(), dim=1),
               lambda T, x: T.median(x.long(), dim=1)):
        assert_same(fn(tg, tg.tensor(_A)), fn(torch, torch.tensor(_A)))


def test_sort_gradient_goes_to_the_positions_it_came_from():
    x = tg.tensor([3.0, 1.0, 2.0], requires_grad=True)
    v, i = x.sort()
    (v * tg.tensor([1.0, 10.0, 100.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [100.0, 1.0, 10.0])
    assert i.tolist() == [1, 2, 0]
    y = tg.tensor([[1.0, 4.0], [3.0, 2.0]], requires_grad=True)
    y.median(dim=1).values.sum().backward()        # the lower median of two: the smaller
    np.testing.assert_array_equal(y.grad.numpy(), [[1.0, 0.0], [0.0, 1.0]])


@pytest.mark.parametrize("call", [
    lambda T, x: x.sort(dim=0).values, lambda T, x: x.topk(2).values,
    lambda T, x: x.kthvalue(2, 1, keepdim=True).values, lambda T, x: x.median(),
    lambda T, x: T.median(x, 0).values, lambda T, x: x.mode(1).values,
    lambda T, x: T.take_along_dim(x, T.tensor([[0], [2]]), 1),
    lambda T, x: x.masked_select(x > 0), lambda T, x: T.sort(x[0, 0]).values,
    lambda T, x: x.repeat(2, 1), lambda T, x: x.tile(2), lambda T, x: T.diag(x[0]),
    lambda T, x: T.diag_embed(x), lambda T, x: T.bmm(x[None], x.t()[None])])
def test_single_record_ops_have_torchs_grad_fn_name(call):
    names = []
    for T in (tg, torch_or_skip()):
        out = call(T, T.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -2.0]], requires_grad=True))
        names.append(out.grad_fn.name())
    assert names[0] == names[1]


# ---- not differentiable --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [
    lambda x: x.argsort(), lambda x: x.nonzero(), lambda x: tg.unique(x), lambda x: x.isnan(),
    lambda x: tg.isinf(x), lambda x: x.isfinite(), lambda x: tg.isclose(x, x),
    lambda x: (x > 0).any(), lambda x: tg.all(x > 0, dim=0), lambda x: x.count_nonzero(),
    lambda x: tg.searchsorted(tg.tensor([0.0, 1.0]), x), lambda x: tg.bucketize(x, x[0]),
    lambda x: x // 2, lambda x: tg.floor_divide(x, x), lambda x: tg.where(x > 0)[0],
    lambda x: tg.bernoulli(tg.sigmoid(x)), lambda x: tg.multinomial(x.exp()[0], 1),
    lambda x: tg.normal(x, 1.0), lambda x: x.sort().indices, lambda x: x.topk(1).indices,
    lambda x: tg.randint_like(x, 3), lambda x: x.new_zeros(2), lambda x: tg.empty_like(x)],
    ids=lambda f: "")
def test_non_differentiable_results_do_not_require_grad(fn):
    x = tg.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    out = fn(x)
    assert not out.requires_grad and out.grad_fn is None


def test_value_dependent_shapes_run_eagerly_under_compile():
    def f(x):
        idx = x.nonzero(as_tuple=True)
        return (x[idx].sum() + tg.unique(x).sum() + x[tg.where(x > 1.0)].sum()
                + x.masked_select(x < 2.5).sum())
    cf = tg.compile(f)
    for k, data in enumerate(([0.0, 1.5, 2.0, 0.0], [3.0, 0.0, 0.0, 0.0], [3.0, 2.0, 2.0, 5.0])):
        x = tg.tensor(data, requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = cf(x)
        # warned once (the first call, which traced it), then run eagerly without a word
        assert [str(w.message).startswith("compile") for w in caught] == ([True] if k == 0
                                                                           else [])
        assert got.item() == pytest.approx(f(tg.tensor(data)).item())
        got.backward()
        want = tg.tensor(data, requires_grad=True)
        f(want).backward()
        np.testing.assert_array_equal(x.grad.numpy(), want.grad.numpy())
    assert next(iter(cf.programs.values()))[0] is None


def test_sort_under_compile_follows_new_values():
    cf = tg.compile(lambda x: (x.sort().values * tg.tensor([1.0, 2.0, 3.0])).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert cf(tg.tensor([3.0, 1.0, 2.0])).item() == 1 + 4 + 9
        assert cf(tg.tensor([1.0, 3.0, 2.0])).item() == 1 + 4 + 9
        assert cf(tg.tensor([5.0, 0.0, 1.0])).item() == 0 + 2 + 15


# ---- in-place forms ------------------------------------------------------------------------------
_INPLACE = [("exp_", ()), ("log_", ()), ("sqrt_", ()), ("abs_", ()), ("neg_", ()),
            ("sin_", ()), ("cos_", ()), ("tanh_", ()), ("sigmoid_", ()), ("relu_", ()),
            ("square_", ()), ("log1p_", ()), ("expm1_", ()), ("log2_", ()), ("log10_", ()),
            ("exp2_", ()), ("tan_", ()), ("asin_", ()), ("acos_", ()), ("atan_", ()),
            ("sinh_", ()), ("cosh_", ()), ("asinh_", ()), ("atanh_", ()), ("erf_", ()),
            ("erfc_", ()), ("rsqrt_", ()), ("reciprocal_", ()), ("sign_", ()),
            ("floor_", ()), ("ceil_", ()), ("round_", ()), ("trunc_", ()),
            ("pow_", (3,)), ("clamp_", (-0.2, 0.3)), ("clip_", (0.0,)),
            ("atan2_", ("T([0.5, -1.0, 2.0, 0.1])",)), ("hypot_", ("T([0.5, -1.0, 2.0, 0.1])",)),
            ("fmod_", (0.3,)), ("remainder_", (0.3,)), ("copysign_", (-1.0,)),
            ("lerp_", ("T([1.0, 2.0, 3.0, 4.0])", 0.25)),
            ("addcmul_", ("T([1.0, 2.0, 3.0, 4.0])", "T([0.5, 0.5, 2.0, 1.0])")),
            ("addcdiv_", ("T([1.0, 2.0, 3.0, 4.0])", "T([0.5, 0.5, 2.0, 1.0])")),
            ("add_", ("T([1.0, 2.0, 3.0, 4.0])",)), ("sub_", (1.5,)), ("mul_", (2.0,)),
            ("div_", (4.0,)), ("nan_to_num_", ()), ("true_divide_", (2.0,)),
            ("masked_fill_", ("T([True, False, True, False])", 9.0))]


def _args(T, args):
    def T_(v):
        return T.tensor(v)
    return [eval(a, {"T": T_}) if isinstance(a, str) else a for a in args]   # noqa: S307


@pytest.mark.parametrize("name,args", _INPLACE, ids=[n for n, _ in _INPLACE])
def test_inplace_forms_match_torch_and_return_self(name, args):
    torch = torch_or_skip()
    results = []
    for T in (tg, torch):
        x = T.tensor([0.25, -0.5, 0.75, 0.1])
        v0 = x._version
        out = getattr(x, name)(*_args(T, args))
        assert out is x and x._version > v0
        results.append(x)
    assert_same(*results, path=name, rtol=1e-6, atol=1e-7)


def test_add_sub_alpha_on_a_graph_match_torch():
    def f(T):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        y = x * 1.0
        y.add_(T.tensor([3.0, 4.0]), alpha=2).sub_(x, alpha=0.5)
        y.sum().backward()
        return y.detach(), x.grad
    assert_same(*both(f))


def test_inplace_on_a_value_saved_for_backward_raises():
    # exp saves its output; changing it in place, by any in-place op, spoils the backward
    for op in (lambda y: y.exp_(), lambda y: y.sigmoid_(), lambda y: y.pow_(2),
               lambda y: y.addcmul_(y, y), lambda y: y.mul_(2)):
        x = tg.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        op(y)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
    torch = torch_or_skip()
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.sigmoid_()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_a_leaf_that_requires_grad_raises_as_torch():
    torch = torch_or_skip()
    for T in (tg, torch):
        for name, args in (("exp_", ()), ("pow_", (2,)), ("lerp_", (T.ones(2), 0.5)),
                           ("addcdiv_", (T.ones(2), T.ones(2)))):
            x = T.ones(2, requires_grad=True)
            with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
                getattr(x, name)(*args)
            with T.no_grad():
                getattr(x, name)(*args)           # allowed under no_grad


def test_inplace_float_result_into_integer_tensor_raises_as_torch():
    torch = torch_or_skip()
    for T in (tg, torch):
        for name in ("exp_", "sqrt_", "sigmoid_"):
            with pytest.raises(RuntimeError, match="can't be cast"):
                getattr(T.tensor([1, 2]), name)()


def test_inplace_gradient_through_chain_matches_torch():
    def f(T):
        x = T.tensor([0.5, -1.0, 2.0], requires_grad=True)
        y = x * 2
        y.sin_().exp_()
        z = y.clone().lerp_(y * 0.5, 0.3).tanh_()
        z.sum().backward()
        return z.detach(), x.grad, y.grad_fn is not None
    assert_same(*both(f))


# ---- predicates ----------------------------------------------------------------------------------
def test_predicates_match_torch():
    nan, inf = float("nan"), float("inf")
    a = [1.0, nan, inf, -inf, 1e-9, 2.0]
    b = [1.0 + 1e-7, nan, inf, inf, 0.0, 2.1]
    for fn in (lambda T: T.isnan(T.tensor(a)), lambda T: T.isinf(T.tensor(a)),
               lambda T: T.isfinite(T.tensor(a)), lambda T: T.isposinf(T.tensor(a)),
               lambda T: T.isneginf(T.tensor(a)),
               lambda T: T.isnan(T.tensor([1, 2])), lambda T: T.isfinite(T.tensor([1, 2])),
               lambda T: T.isclose(T.tensor(a), T.tensor(b)),
               lambda T: T.isclose(T.tensor(a), T.tensor(b), equal_nan=True),
               lambda T: T.isclose(T.tensor(a), T.tensor(b), rtol=0.1, atol=0.0),
               lambda T: T.tensor(a).isclose(T.tensor(b)),
               lambda T: T.allclose(T.tensor(a), T.tensor(b)),
               lambda T: T.allclose(T.tensor(a[:1]), T.tensor(b[:1])),
               lambda T: T.tensor(a[4:]).allclose(T.tensor(b[4:]), atol=0.2),
               lambda T: T.equal(T.tensor(a), T.tensor(a)),
               lambda T: T.equal(T.tensor([1.0, 2.0]), T.tensor([1.0, 2.0])),
               lambda T: T.tensor([1, 2]).equal(T.tensor([[1, 2]])),
               lambda T: T.any(T.tensor([[0, 1], [0, 0]]), dim=1, keepdim=True),
               lambda T: T.all(T.tensor([[0.5, 1.0], [0.0, 2.0]]), 0),
               lambda T: T.tensor([[0, 1], [0, 0]]).any(),
               lambda T: T.tensor([[True, True], [False, True]]).all(dim=-1),
               lambda T: T.tensor([[[1, 0]], [[1, 1]]]).all(dim=(0, 2)),
               lambda T: T.tensor([1, 0], dtype=T.uint8).any(),
               lambda T: T.count_nonzero(T.tensor([[0, 1.5], [2.0, 3.0]])),
               lambda T: T.tensor([[0, 1], [2, 3]]).count_nonzero(dim=0),
               lambda T: T.count_nonzero(T.tensor([[[0, 1]], [[2, 0]]]), dim=(0, 2)),
               lambda T: (T.is_nonzero(T.tensor([2.0])), T.tensor(0).is_nonzero()),
               lambda T: (T.is_floating_point(T.ones(1, dtype=T.float64)),
                          T.tensor([True]).is_floating_point()),
               lambda T: (T.logical_not(T.tensor([0, 2])),
                          T.logical_and(T.tensor([1, 0]), T.tensor([1, 1])),
                          T.logical_or(T.tensor([0.0, 0.0]), T.tensor([1.0, 0.0])),
                          T.logical_xor(T.tensor([True, True]), T.tensor([True, False]))),
               lambda T: (~T.tensor([True, False]),
                          T.tensor([True, False]) & T.tensor([True, True]),
                          T.tensor([1, 4]) | 2, T.tensor([True, False]) ^ True, ~T.tensor([3]))):
        assert_same(*both(fn))


# ---- creation ------------------------------------------------------------------------------------
def test_new_constructors_take_self_dtype_like_torch():
    for fn in (lambda T: T.ones(1, dtype=T.float64).new_zeros((2, 3)),
               lambda T: T.ones(1, dtype=T.int64).new_ones(2),
               lambda T: T.ones(1).new_full((2, 2), 7),
               lambda T: T.ones(1, dtype=T.float64).new_full([3], 1.5, dtype=T.float32),
               lambda T: T.ones(1, dtype=T.int64).new_tensor([1.7, 2.2]),
               lambda T: T.ones(1, dtype=T.float64).new_tensor([1, 2]),
               lambda T: T.ones(1).new_empty(2, 3).shape,
               lambda T: T.ones(1).new_zeros(2, requires_grad=True).requires_grad,
               lambda T: T.empty_like(T.ones(2, 3, dtype=T.float64)).shape,
               lambda T: T.empty_like(T.ones(2), dtype=T.int64).dtype == T.int64,
               lambda T: T.randint_like(T.ones(100), 3, 5).dtype == T.float32,
               lambda T: T.normal(T.zeros(2, 3), T.ones(3)).shape,
               lambda T: T.normal(0.0, 1.0, size=(4,)).shape,
               lambda T: T.normal(T.zeros(3, dtype=T.float64), 2.0).dtype == T.float64,
               lambda T: T.bernoulli(T.tensor([0.0, 1.0, 1.0, 0.0])),
               lambda T: T.tensor([0.0, 1.0]).bernoulli(),
               lambda T: T.multinomial(T.tensor([0.0, 0.0, 3.0]), 1),
               lambda T: T.multinomial(T.tensor([0.0, 1.0]), 2),     # the zero weight last
               lambda T: T.multinomial(T.tensor([[1.0, 0.0], [0.0, 2.0]]), 3, replacement=True),
               lambda T: T.sort(T.multinomial(T.tensor([1.0, 2.0, 3.0]), 3)).values):
        assert_same(*both(fn))


def test_samplers_draw_what_they_should():
    tg.manual_seed(0)
    r = tg.randint_like(tg.ones(1000, dtype=tg.int64), 3, 7)
    assert r.dtype == tg.int64 and 3 <= r.min().item() and r.max().item() == 6
    n = tg.normal(tg.full((20000,), 2.0), tg.full((20000,), 3.0))
    assert abs(n.mean().item() - 2.0) < 0.1 and abs(n.std().item() - 3.0) < 0.1
    b = tg.bernoulli(tg.full((20000,), 0.25))
    assert set(b.unique().tolist()) == {0.0, 1.0} and abs(b.mean().item() - 0.25) < 0.02
    b2 = tg.ones(20000).bernoulli(0.75)
    assert abs(b2.mean().item() - 0.75) < 0.02
    m = tg.multinomial(tg.tensor([1.0, 3.0]), 20000, replacement=True)
    assert m.dtype == tg.int64 and abs(m.double().mean().item() - 0.75) < 0.02
    picks = tg.multinomial(tg.ones(2, 10), 10)
    assert all(sorted(row) == list(range(10)) for row in picks.tolist())
    g = tg.Generator().manual_seed(3)
    first = tg.normal(0.0, 1.0, (5,), generator=g)
    g.manual_seed(3)
    assert tg.equal(first, tg.normal(0.0, 1.0, (5,), generator=g))
    w = tg.zeros(1000)
    assert w.uniform_(-1.0, 1.0) is w and -1.0 <= w.min().item() and w.max().item() < 1.0
    assert abs(tg.zeros(20000).normal_(1.0, 2.0).std().item() - 2.0) < 0.1


def test_samplers_refuse_bad_input_as_torch():
    torch = torch_or_skip()
    for fn in (lambda T: T.multinomial(T.tensor([-1.0, 1.0]), 1),
               lambda T: T.multinomial(T.ones(2, 2, 2), 1),
               lambda T: T.bernoulli(T.tensor([1.5])),
               lambda T: T.normal(T.zeros(2), -1.0),
               lambda T: T.randint_like(T.ones(2), 5, 5)):
        with pytest.raises(RuntimeError) as ours:
            fn(tg)
        with pytest.raises(RuntimeError):
            fn(torch)
        assert "Traceback" not in str(ours.value)


# ---- shapes and arithmetic beyond the table ------------------------------------------------------
def test_shapes_and_arithmetic_match_torch():
    for fn in (lambda T: T.arange(7).chunk(3), lambda T: T.arange(6).chunk(4),
               lambda T: T.arange(5).split(2), lambda T: T.zeros(0, 2).split(2),
               lambda T: T.arange(12).reshape(3, 4).chunk(2, dim=-1),
               lambda T: T.arange(6).reshape(2, 3).narrow(-1, -2, 2),
               lambda T: T.arange(6).reshape(2, 3).select(0, -1),
               lambda T: T.arange(4).reshape(2, 2).repeat(1, 2, 1),
               lambda T: T.tile(T.arange(4).reshape(2, 2), (2, 1, 1)),
               lambda T: T.repeat_interleave(T.tensor([2, 0, 3])),
               lambda T: T.arange(6).reshape(2, 3).repeat_interleave(T.tensor([1, 2]), dim=0),
               lambda T: T.arange(6).reshape(2, 3).movedim(-1, 0),
               lambda T: T.block_diag(T.tensor([[1, 2]]), T.tensor(3), T.tensor([[4], [5]])),
               lambda T: T.block_diag(T.ones(2, 2), T.ones(1, 1, dtype=T.float64)),
               lambda T: T.diag(T.arange(6).reshape(2, 3), 1),
               lambda T: T.diag_embed(T.arange(6).reshape(2, 3), -1, 2, 0),
               lambda T: T.diagflat(T.tensor([[1, 2], [3, 4]]), -1),
               lambda T: T.meshgrid(T.tensor([1, 2]), T.tensor([3, 4, 5]), indexing="xy"),
               lambda T: T.broadcast_tensors(T.ones(2, 1), T.zeros(3)),
               lambda T: T.broadcast_shapes((2, 1), (1, 3), (3,)),
               lambda T: T.kron(T.tensor([[1, 2], [3, 4]]), T.eye(2, dtype=T.int64)),
               lambda T: T.tensordot(T.arange(6.0).reshape(2, 3), T.arange(6.0).reshape(3, 2),
                                     dims=([1], [0])),
               lambda T: T.cdist(T.tensor([[0.0, 1.0], [2.0, 2.0]]),
                                 T.tensor([[1.0, 1.0], [0.0, 1.0]]), p=float("inf")),
               lambda T: T.cdist(T.tensor([[0.0, 1.0]]), T.tensor([[1.0, 1.0]]), p=0),
               lambda T: T.take_along_dim(T.tensor([[10, 30, 20]]), T.tensor([[2, 0]]), dim=1),
               lambda T: T.swapaxes(T.ones(2, 3, 4), 0, -1).shape,
               lambda T: T.ones(2, 3).t().is_contiguous(),
               lambda T: T.ones(2, 3).is_contiguous(),
               lambda T: (T.tensor([7, -7]) // T.tensor([2, 2]), 7 // T.tensor([2, -3]),
                          T.floor_divide(T.tensor([7.5, -7.5]), 2),
                          T.tensor([-7.0]) // 0.0, T.tensor([1.0]) // 0.0),
               lambda T: (T.tensor([5, 6], dtype=T.int32) // 2, 7 // T.tensor([2], dtype=T.int32),
                          T.tensor([5, 6]) // 2.5, T.tensor([True, False]) // T.tensor([1, 2]),
                          T.tensor([5, 6]) // T.tensor([2.0]),
                          T.tensor([5.0], dtype=T.float64) // T.tensor(2.0)),
               lambda T: T.true_divide(T.tensor([1, 2]), 4),
               lambda T: T.copysign(T.tensor([1.0, -2.0, 3.0]), T.tensor([-0.0, 0.0, -1.0])),
               lambda T: T.copysign(T.tensor([1, -2]), -1),
               lambda T: T.copysign(T.tensor([1.0]), T.tensor([-1.0], dtype=T.float64)),
               lambda T: (T.sign(T.tensor([-2, 0, 3])), T.floor(T.tensor([-2, 3])),
                          T.tensor([-2, 3]).ceil(), T.round(T.tensor([5], dtype=T.int32)),
                          T.trunc(T.tensor([-2, 3]))),
               lambda T: (T.tensor([-2, 3]).sign_(), T.tensor([-2, 3]).relu_(),
                          T.tensor([-2, 3]).floor_(), T.tensor([-2, 3]).abs_(),
                          T.tensor([-2, 3]).neg_(), T.tensor([-2, 3]).square_(),
                          T.tensor([2, 3]).pow_(2), T.tensor([-2, 3]).clamp_(0, 1)),
               lambda T: T.nan_to_num(T.tensor([float("nan"), float("inf"), -float("inf"), 1.0])),
               lambda T: T.nan_to_num(T.tensor([float("inf")], dtype=T.float64), posinf=7.0),
               lambda T: T.nansum(T.tensor([[1.0, float("nan")], [2.0, 3.0]]), 0),
               lambda T: T.nanmean(T.tensor([[1.0, float("nan")], [float("nan"), float("nan")]]),
                                   dim=1),
               lambda T: T.diff(T.tensor([True, False, False, True])),
               lambda T: T.diff(T.tensor([1, 3, 6, 10]), n=2, prepend=T.tensor([0])),
               lambda T: T.addcmul(T.ones(2), T.tensor([1.0, 2.0]), T.tensor([3.0, 4.0]),
                                   value=0.5),
               lambda T: T.addcdiv(T.ones(2), T.tensor([1.0, 2.0]), T.tensor([4.0, 8.0])),
               lambda T: T.baddbmm(T.ones(2, 1, 1), T.ones(2, 1, 3), T.ones(2, 3, 1),
                                   beta=0.0, alpha=2.0),
               lambda T: T.searchsorted(T.tensor([[1, 3, 5], [2, 4, 6]]),
                                        T.tensor([[3, 6], [1, 4]]), right=True),
               lambda T: T.searchsorted(T.tensor([1.0, 3.0]), 3.0, side="right"),
               lambda T: T.searchsorted(T.tensor([3.0, 1.0]), T.tensor([2.0]),
                                        sorter=T.tensor([1, 0]), out_int32=True),
               lambda T: T.bucketize(T.tensor([[0.5, 3.0], [5.0, 9.0]]), T.tensor([1.0, 3.0, 5.0])),
               lambda T: T.bucketize(3.0, T.tensor([1.0, 3.0, 5.0]), right=True),
               lambda T: T.argwhere(T.tensor([[0, 2], [3, 0]])),
               lambda T: T.masked_select(T.tensor([[1, 2], [3, 4]]), T.tensor([False, True])),
               lambda T: T.arange(3.0).masked_select(T.tensor([[True], [False]])),
               lambda T: T.nonzero(T.tensor(5), as_tuple=True),
               lambda T: T.where(T.tensor([0, 1, 2])),
               lambda T: T.ones(2, 3).mH.shape):
        assert_same(*both(fn))


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, float("inf")])
def test_cdist_gradients_match_torch(p):
    # the op table's cdist rows skip torch (it has no second derivative of cdist)
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)) + 3.0
    u = rng.standard_normal((2, 3, 5))

    def f(T):
        x, y = T.tensor(a, requires_grad=True), T.tensor(b, requires_grad=True)
        d = T.cdist(x, y, p=p)
        (d * T.tensor(u)).sum().backward()
        return d.detach(), x.grad, y.grad
    assert_same(*both(f), rtol=1e-10, atol=1e-12)


def test_more_everyday_functions_match_torch():
    for fn in (lambda T: T.isin(T.tensor([1, 2, 3, 2]), T.tensor([2, 5])),
               lambda T: T.isin(T.tensor([[1.0, 2.0]]), 2.0, invert=True),
               lambda T: T.bincount(T.tensor([0, 1, 1, 4])),
               lambda T: T.tensor([2, 2]).bincount(minlength=4),
               lambda T: T.bincount(T.tensor([0, 1, 1]), weights=T.tensor([0.5, 1.0, 2.0])),
               lambda T: T.histc(T.tensor([1.0, 2.0, 1.0, 2.5, 9.0]), bins=4, min=0, max=3),
               lambda T: T.tensor([1.0, 2.0, 1.0]).histc(bins=3),
               lambda T: T.triu_indices(3, 4, 1), lambda T: T.tril_indices(3, 3, -1),
               lambda T: T.logspace(0, 2, 3), lambda T: T.logspace(0, 3, 4, base=2.0),
               lambda T: T.numel(T.ones(2, 3)), lambda T: T.ones(2, dtype=T.float64).nelement(),
               lambda T: (T.ones(2, dtype=T.float64).element_size(),
                          T.ones(2, dtype=T.int32).element_size()),
               lambda T: (T.ones(2, 3, 4).stride(), T.ones(2, 3).stride(0),
                          T.ones(2, 3).t().stride(), T.ones(3, 1).expand(3, 4).stride()),
               lambda T: T.aminmax(T.tensor([[3, 1], [2, 5]]), dim=0),
               lambda T: T.tensor([[3.0, 1.0], [2.0, 5.0]]).aminmax(keepdim=False),
               lambda T: T.atleast_1d(T.tensor(1.0)), lambda T: T.atleast_2d(T.ones(3)).shape,
               lambda T: T.atleast_3d(T.ones(3)).shape, lambda T: T.atleast_3d(T.ones(2, 3)).shape,
               lambda T: [t.shape for t in T.atleast_2d(T.tensor(1.0), T.ones(2, 2, 2))],
               lambda T: T.vstack([T.tensor([1, 2]), T.tensor([3, 4])]),
               lambda T: T.hstack([T.tensor([1]), T.tensor([2, 3])]),
               lambda T: T.column_stack([T.tensor([1, 2]), T.tensor([[3], [4]])]),
               lambda T: T.dstack([T.tensor([1, 2]), T.tensor([3, 4])]),
               lambda T: T.arange(6).unflatten(0, (-1, 2)),
               lambda T: T.arange(7).tensor_split(3),
               lambda T: T.arange(7).tensor_split([2, -2, 10]),
               lambda T: T.arange(6).reshape(2, 3).hsplit([1]),
               lambda T: T.arange(8).hsplit(4),
               lambda T: T.vsplit(T.arange(8).reshape(4, 2), 2),
               lambda T: T.fliplr(T.arange(6).reshape(2, 3)),
               lambda T: T.flipud(T.arange(3)),
               lambda T: (T.clamp_min(T.tensor([-1, 2]), 0), T.tensor([-1.0, 2.0]).clamp_max(0.5)),
               lambda T: (T.frac(T.tensor([-1.5, 2.25])), T.deg2rad(T.tensor([180.0])),
                          T.rad2deg(T.tensor([1.0]))),
               lambda T: (T.dist(T.tensor([0.0, 0.0]), T.tensor([3.0, 4.0])),
                          T.dist(T.tensor([0.0, 0.0]), T.tensor([3.0, 4.0]), p=float("inf"))),
               lambda T: (T.var_mean(T.tensor([1.0, 2.0, 4.0])),
                          T.std_mean(T.tensor([[1.0, 2.0], [4.0, 0.0]]), dim=1, unbiased=False)),
               lambda T: (T.zeros(3).clamp_min_(1.0), T.tensor([1.5, -0.5]).frac_()),
               lambda T: T.tensor([1.5]).deg2rad_()):
        assert_same(*both(fn))
    for T in (tg, torch_or_skip()):
        r = T.aminmax(T.tensor([3.0, -1.0]))
        assert r.min.item() == -1.0 and r.max.item() == 3.0 and r[0] is r.min


def test_scatter_index_ops_and_functional_match_torch():
    for fn in (lambda T: T.zeros(2, 3).scatter(1, T.tensor([[0], [2]]), 1.0),
               lambda T: T.zeros(3, dtype=T.int64).scatter_(0, T.tensor([2, 0]),
                                                           T.tensor([5, 6])),
               lambda T: T.zeros(2, 2).scatter(0, T.tensor([[1, 0]]), T.ones(2, 2) * 3),
               lambda T: T.zeros(3).scatter(0, T.tensor([2, 0, 2]), T.tensor([1.0, 2.0, 3.0])),
               lambda T: T.zeros(3).index_add(0, T.tensor([0, 0, 2]), T.ones(3)),
               lambda T: T.ones(2, 3, dtype=T.int64).index_add_(1, T.tensor([0]),
                                                                T.ones(2, 1, dtype=T.int64)),
               lambda T: T.zeros(2, 3).index_fill(1, T.tensor([2]), 7.0),
               lambda T: T.zeros(3, dtype=T.int64).index_fill_(0, T.tensor([-1]), 4),
               lambda T: T.zeros(3, 3).fill_diagonal_(1.0),
               lambda T: T.zeros(2, 2, 2).fill_diagonal_(5.0),
               lambda T: T.zeros(7, 3).fill_diagonal_(1.0, wrap=True),
               lambda T: T.nn.functional.one_hot(T.tensor([0, 2, 1])),
               lambda T: T.nn.functional.one_hot(T.tensor([[1], [0]]), num_classes=4),
               lambda T: T.nn.functional.pad(T.arange(6).reshape(2, 3), (1, 1), value=-1),
               lambda T: T.nn.functional.pad(T.arange(4.0).reshape(1, 1, 4), (3, 3),
                                             mode="reflect"),
               lambda T: T.nn.functional.pad(T.arange(3.0).reshape(1, 3), (2, 3),
                                             mode="circular"),
               lambda T: T.nn.functional.pad(T.arange(6.0).reshape(1, 2, 3), (1, 1, 1, 1),
                                             mode="replicate"),
               lambda T: T.nn.functional.pad(T.ones(2, 3), (0, 0, -1, 2)),
               lambda T: T.nn.functional.normalize(T.tensor([[3.0, 4.0], [0.0, 0.0]])),
               lambda T: T.nn.functional.normalize(T.tensor([[3.0, 4.0]]), p=1, dim=-1)):
        assert_same(*both(fn))


# edge cases (empty and 0-d tensors, ties, integer and bool dtypes, NaN): the same results as
# torch, or the same exception type
_EDGES = {
    "chunk-empty": lambda T: T.zeros(0).chunk(3),
    "chunk-more": lambda T: T.arange(2).chunk(5),
    "split-0size": lambda T: T.arange(5).split(5),
    "sort-int": lambda T: T.tensor([3, 1, 2]).sort(descending=True),
    "sort-bool": lambda T: T.tensor([True, False, True]).sort(),
    "sort-0d": lambda T: T.sort(T.tensor(2.0)),
    "argsort-0d": lambda T: T.argsort(T.tensor(2.0)),
    "topk-0": lambda T: T.topk(T.ones(3), 0),
    "topk-unsorted": lambda T: T.topk(T.tensor([1., 5., 3.]), 2, sorted=False).values.sort().values,
    "median-empty": lambda T: T.median(T.tensor([])),
    "median-int": lambda T: T.median(T.tensor([3, 1, 2, 4])),
    "median-nan-all": lambda T: T.median(T.tensor([1., float('nan'), 0.])),
    "mode-0d": lambda T: T.mode(T.tensor(2.0)),
    "unique-float": lambda T: T.unique(T.tensor([2., 1., 2.])),
    "unique-2d": lambda T: T.unique(T.tensor([[2, 1], [2, 1], [0, 3]]), dim=0, return_inverse=True),
    "nonzero-empty": lambda T: T.nonzero(T.zeros(2, 3)),
    "nonzero-bool": lambda T: T.nonzero(T.tensor([[True, False]]), as_tuple=True),
    "where-0d": lambda T: T.where(T.tensor(True)),
    "searchsorted-int": lambda T: T.searchsorted(T.tensor([1, 3, 5]), T.tensor([[3, 4]])),
    "bucketize-int32": lambda T: T.bucketize(T.tensor([1, 4]), T.tensor([1, 3, 5]), out_int32=True),
    "repeat-0": lambda T: T.ones(2).repeat(0, 2),
    "tile-more": lambda T: T.tile(T.arange(3), (2, 2)),
    "tile-int": lambda T: T.arange(3).tile(2),
    "ri-0d": lambda T: T.repeat_interleave(T.tensor(3.0), 2),
    "narrow-0": lambda T: T.arange(5).narrow(0, 5, 0),
    "diag-empty": lambda T: T.diag(T.ones(0)),
    "diag-k-big": lambda T: T.diag(T.ones(2, 2), 3),
    "diag_embed-0d": lambda T: T.diag_embed(T.tensor([[1.0]])),
    "block-empty": lambda T: T.block_diag(),
    "block-int": lambda T: T.block_diag(T.tensor([[1]]), T.tensor([[2, 3]])),
    "meshgrid-one": lambda T: T.meshgrid(T.arange(3), indexing="xy"),
    "meshgrid-0d": lambda T: T.meshgrid(T.tensor(1), T.arange(2), indexing="ij"),
    "cross-nodim": lambda T: T.cross(T.ones(3, 2), T.ones(3, 2) * 2),
    "kron-0d": lambda T: T.kron(T.tensor(2.0), T.ones(2)),
    "tensordot-0": lambda T: T.tensordot(T.ones(2), T.ones(3), 0),
    "cdist-p0": lambda T: T.cdist(T.tensor([[0.0, 1.0]]), T.tensor([[0.0, 2.0]]), p=0),
    "cdist-3d": lambda T: T.cdist(T.ones(2, 3, 2), T.zeros(1, 4, 2)),
    "floordiv-bool": lambda T: T.tensor([True, False]) // T.tensor([1, 2]),
    "floordiv-mixed": lambda T: T.tensor([5, 6]) // 2.5,
    "floordiv-int32": lambda T: T.tensor([5, 6], dtype=T.int32) // 2,
    "floordiv-int-float-t": lambda T: T.tensor([5, 6]) // T.tensor([2.0]),
    "copysign-int": lambda T: T.copysign(T.tensor([1, 2]), T.tensor([-1, 1])),
    "copysign-f64": lambda T: T.copysign(T.tensor([1.0]), T.tensor([-1.0], dtype=T.float64)),
    "nan_to_num-int": lambda T: T.nan_to_num(T.tensor([1, 2])),
    "nansum-int": lambda T: T.nansum(T.tensor([1, 2])),
    "nansum-keep": lambda T: T.nansum(T.tensor([[1.0, float('nan')]]), dim=1, keepdim=True),
    "nanmean-all": lambda T: T.nanmean(T.tensor([float('nan')])),
    "diff-n0": lambda T: T.diff(T.tensor([1, 2]), n=0),
    "diff-big-n": lambda T: T.diff(T.tensor([1, 2]), n=3),
    "diff-bool-2": lambda T: T.diff(T.tensor([True, False, True]), n=2),
    "addcdiv-int": lambda T: T.addcdiv(T.ones(2), T.tensor([1, 2]), T.tensor([2, 2])),
    "any-empty": lambda T: T.zeros(0).any(),
    "all-empty": lambda T: T.zeros(0).all(),
    "all-0d-dim": lambda T: T.tensor(1.0).all(dim=0),
    "count-0d": lambda T: T.count_nonzero(T.tensor(3)),
    "isclose-int": lambda T: T.isclose(T.tensor([1, 2]), T.tensor([1, 3])),
    "isclose-scalar": lambda T: T.isclose(T.tensor([1.0, 2.0]), T.tensor(1.0)),
    "equal-dtype": lambda T: T.equal(T.ones(2), T.ones(2, dtype=T.float64)),
    "isnan-bool": lambda T: T.isnan(T.tensor([True])),
    "logical-not-float": lambda T: T.logical_not(T.tensor([0.0, 0.5])),
    "invert-int": lambda T: ~T.tensor([0, 5]),
    "and-int-bool": lambda T: T.tensor([1, 3]) & T.tensor([True, True]),
    "or-scalar": lambda T: True | T.tensor([False, True]),
    "new_full-bool": lambda T: T.ones(2).new_full((2,), True),
    "new_tensor-tensor": lambda T: T.ones(2).new_tensor(T.tensor([1, 2])),
    "empty_like-rg": lambda T: T.empty_like(T.ones(2), requires_grad=True).requires_grad,
    "normal-f64-scalar": lambda T: T.normal(2.0, 3.0, size=(2,)).dtype == T.float32,
    "normal-tensor-std": lambda T: T.normal(1.0, T.zeros(2)),
    "bernoulli-p": lambda T: T.bernoulli(T.ones(3), 0.0),
    "take_along-0d": lambda T: T.take_along_dim(T.tensor(5.0), T.tensor(0), dim=0),
    "mH-1d": lambda T: T.arange(3.0).reshape(1, 3).mH,
    "movedim-0d": lambda T: T.movedim(T.tensor(1.0), 0, 0),
    "select-neg": lambda T: T.arange(6).reshape(2, 3).select(-1, 0),
    "swap-same": lambda T: T.ones(2, 3).swapaxes(1, 1).shape,
    "broadcast_to-neg1": lambda T: T.ones(3, 1).broadcast_to((-1, 4)),
    "format-int0d": lambda T: f"{T.tensor(7)}",
    "format-empty-spec-1d": lambda T: f"{T.tensor([7])}",
    "mul-return": lambda T: T.multiply(T.ones(2), 3),
    "divide-mode": lambda T: T.divide(T.tensor([5.]), 2),
    "subtract": lambda T: T.subtract(T.ones(2), T.ones(2), alpha=2),
    "pow_-int": lambda T: T.tensor([2, 3]).pow_(2),
    "abs_-int": lambda T: T.tensor([-2, 3]).abs_(),
    "neg_-int": lambda T: T.tensor([-2, 3]).neg_(),
    "sign_-int": lambda T: T.tensor([-2, 3]).sign_(),
    "clamp_-int": lambda T: T.tensor([-2, 3]).clamp_(0, 1),
    "relu_-int": lambda T: T.tensor([-2, 3]).relu_(),
    "square_-int": lambda T: T.tensor([-2, 3]).square_(),
    "floor_-int": lambda T: T.tensor([-2, 3]).floor_(),
    "round_": lambda T: T.tensor([0.5, 1.5, 2.5]).round_(),
    "lerp_-tensor-weight": lambda T: T.zeros(2).lerp_(T.ones(2), T.tensor([0.25, 0.75])),
    "masked_fill_-tensor-value": lambda T: T.zeros(2).masked_fill_(T.tensor([True, False]),
                                                                  T.tensor(3.0)),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(_EDGES))
def test_edge_cases_match_torch(name):
    torch = torch_or_skip()
    try:
        theirs = _EDGES[name](torch)
    except Exception as e:               # noqa: BLE001 - then ours must raise the same type
        with pytest.raises(type(e)):
            _EDGES[name](tg)
        return
    assert_same(_EDGES[name](tg), theirs, name)


# ---- errors: PyTorch's exception types, and its words where ours are the same -------------------
_ERRORS = [
    (lambda T: T.ones(2, 3).chunk(0), RuntimeError, "chunk expects `chunks` to be greater than 0"),
    (lambda T: T.ones(5).split([2, 2]), RuntimeError, "split_with_sizes expects split_sizes to "
                                                      "sum exactly to 5"),
    (lambda T: T.ones(5).narrow(0, 4, 2), RuntimeError, r"start \(4\) \+ length \(2\) exceeds"),
    (lambda T: T.ones(2, 3).repeat(2), RuntimeError, "Number of dimensions of repeat dims"),
    (lambda T: T.bmm(T.ones(2, 3), T.ones(2, 3)), RuntimeError, "batch1 must be a 3D tensor"),
    (lambda T: T.bmm(T.ones(2, 2, 3), T.ones(2, 2, 3)), RuntimeError,
     "Expected size for first two dimensions of batch2"),
    (lambda T: T.topk(T.ones(3), 4), RuntimeError, "selected index k out of range"),
    (lambda T: T.kthvalue(T.ones(3), 4), RuntimeError, "kthvalue"),
    (lambda T: T.sort(T.ones(3), 1), IndexError, "Dimension out of range"),
    (lambda T: T.ones(2, 3).view_as(T.ones(4)), RuntimeError, r"shape '\[4\]' is invalid"),
    (lambda T: T.ones(2, 3).expand_as(T.ones(4)), RuntimeError, ""),
    (lambda T: T.is_nonzero(T.ones(2)), RuntimeError,
     "Boolean value of Tensor with more than one value is ambiguous"),
    (lambda T: T.is_nonzero(T.ones(0)), RuntimeError,
     "Boolean value of Tensor with no values is ambiguous"),
    (lambda T: bool(T.ones(2)), RuntimeError,
     "Boolean value of Tensor with more than one value is ambiguous"),
    (lambda T: bool(T.ones(0)), RuntimeError,
     "Boolean value of Tensor with no values is ambiguous"),
    (lambda T: T.isclose(T.ones(1), T.ones(1, dtype=T.float64)), RuntimeError, ""),
    (lambda T: T.allclose(T.ones(2), T.ones(3)), RuntimeError, ""),
    (lambda T: T.isnan([1.0]), TypeError, ""),
    (lambda T: T.diag(T.ones(2, 2, 2)), RuntimeError, ""),
    (lambda T: T.diag_embed(T.ones(2), 0, 1, 1), RuntimeError, "diagonal dimensions cannot be "
                                                              "identical"),
    (lambda T: T.block_diag(T.ones(2, 2, 2)), RuntimeError, ""),
    (lambda T: T.meshgrid(T.ones(2, 2), indexing="ij"), RuntimeError, ""),
    (lambda T: T.meshgrid(T.ones(2), indexing="ji"), RuntimeError, "indexing must be one of"),
    (lambda T: T.broadcast_tensors(T.ones(2), T.ones(3)), RuntimeError, ""),
    (lambda T: T.cross(T.ones(2, 2), T.ones(2, 2), dim=1), RuntimeError, ""),
    (lambda T: T.tensordot(T.ones(2, 3), T.ones(2, 3), dims=1), RuntimeError,
     "contracted dimensions need to match"),
    (lambda T: T.cdist(T.ones(2, 3), T.ones(2, 2)), RuntimeError, ""),
    (lambda T: T.cdist(T.ones(3), T.ones(2, 3)), RuntimeError, "cdist only supports at least 2D"),
    (lambda T: T.movedim(T.ones(2, 3), (0, 1), (1,)), RuntimeError, "movedim: Invalid source"),
    (lambda T: T.movedim(T.ones(2, 3), (0, 0), (1, 0)), RuntimeError, "repeated dim"),
    (lambda T: T.tensor([5]) // 0, RuntimeError, "ZeroDivisionError"),
    (lambda T: T.searchsorted(T.ones(2, 3), T.ones(3, 1)), RuntimeError, ""),
    (lambda T: T.searchsorted(T.ones(3), T.ones(1), side="middle"), RuntimeError, ""),
    (lambda T: T.bucketize(T.ones(1), T.ones(2, 2)), RuntimeError, "boundaries tensor must be 1 "
                                                                  "dimension"),
    (lambda T: T.take_along_dim(T.ones(2, 3), T.tensor([[0]]).float(), 1), RuntimeError, ""),
    (lambda T: T.take_along_dim(T.ones(2, 3), T.tensor([0]), 1), RuntimeError, ""),
    (lambda T: T.take_along_dim(T.tensor(5.0), T.tensor(0), dim=0), IndexError,
     "Dimension specified as 0 but tensor has no dimensions"),
    (lambda T: T.diff(T.tensor(1.0)), RuntimeError, ""),
    (lambda T: T.nanmean(T.tensor([1, 2])), RuntimeError, ""),
    (lambda T: T.unbind(T.tensor(1.0)), IndexError, ""),
    (lambda T: T.ones(2).new_zeros(-1), RuntimeError, ""),
    (lambda T: format(T.ones(2), ".3f"), TypeError, "unsupported format string passed to "
                                                     "Tensor.__format__"),
    (lambda T: T.ones(2, dtype=T.float32)[T.tensor([0.5])], IndexError, ""),
    (lambda T: T.tensor([1.0, 2.0]).__index__(), TypeError, ""),
    (lambda T: len(T.tensor(1.0)), TypeError, "len"),
    (lambda T: iter(T.tensor(1.0)), TypeError, "iteration over a 0-d tensor"),
    (lambda T: T.tensor([1.0]) & T.tensor([True]), RuntimeError, ""),
    (lambda T: T.ones(1).mT, RuntimeError, "tensor.mT is only supported on matrices"),
    (lambda T: T.masked_select(T.ones(2), T.tensor([1, 0])), RuntimeError, ""),
    (lambda T: T.masked_select(T.ones(2), T.tensor([True, False, True])), RuntimeError, ""),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("k", range(len(_ERRORS)))
def test_errors_have_torchs_type(k):
    torch = torch_or_skip()
    fn, exc, words = _ERRORS[k]
    with pytest.raises(exc) as theirs:
        fn(torch)
    with pytest.raises(exc, match=words) as ours:
        fn(tg)
    if words:
        assert theirs.match(words)           # the words are PyTorch's own
    assert type(ours.value).__module__ == "builtins"     # never numpy's or numba's


# bad arguments of every kind: tapegrad raises the exception type torch raises, never a numpy
# or numba error
def _X(T):
    return T.ones(2, 3)


_BAD_CALLS = {
    "sort-str": lambda T: T.sort("a"),
    "sort-dim-float": lambda T: T.sort(_X(T), 0.5),
    "topk-float-k": lambda T: T.topk(_X(T), 1.5),
    "topk-neg": lambda T: T.topk(_X(T), -1),
    "kth-0": lambda T: T.kthvalue(_X(T), 0),
    "median-dim-bad": lambda T: T.median(_X(T), 5),
    "mode-dim-bad": lambda T: T.mode(_X(T), 5),
    "unique-dim-bad": lambda T: T.unique(_X(T), dim=3),
    "nonzero-list": lambda T: T.nonzero([1, 0]),
    "chunk-str": lambda T: _X(T).chunk("a"),
    "split-float": lambda T: _X(T).split(1.5),
    "split-neg": lambda T: _X(T).split([-1, 3]),
    "narrow-float": lambda T: _X(T).narrow(0, 0.5, 1),
    "narrow-start": lambda T: _X(T).narrow(0, 5, 1),
    "narrow-neglen": lambda T: _X(T).narrow(0, 0, -1),
    "narrow-0d": lambda T: T.tensor(1.0).narrow(0, 0, 1),
    "select-oob": lambda T: _X(T).select(0, 5),
    "repeat-float": lambda T: _X(T).repeat(1.5, 2),
    "repeat-neg": lambda T: _X(T).repeat(-1, 2),
    "tile-float": lambda T: T.tile(_X(T), (1.5,)),
    "ri-neg": lambda T: T.repeat_interleave(_X(T), -1),
    "ri-len": lambda T: T.repeat_interleave(_X(T), T.tensor([1, 2]), dim=1),
    "diag-float": lambda T: T.diag(T.ones(3), 0.5),
    "diag-0d": lambda T: T.diag(T.tensor(1.0)),
    "diag_embed-dim": lambda T: T.diag_embed(T.ones(3), 0, 0, 5),
    "block-list": lambda T: T.block_diag([1, 2]),
    "meshgrid-list": lambda T: T.meshgrid([1, 2], indexing="ij"),
    "meshgrid-dtypes": lambda T: T.meshgrid(T.ones(2), T.arange(2), indexing="ij"),
    "broadcast_to-bad": lambda T: T.broadcast_to(_X(T), (4, 3)),
    "broadcast_to-fewer": lambda T: T.broadcast_to(_X(T), (3,)),
    "cross-nothree": lambda T: T.cross(T.ones(2, 2), T.ones(2, 2)),
    "cross-ndim": lambda T: T.cross(T.ones(3), T.ones(2, 3), dim=0),
    "kron-list": lambda T: T.kron([1.0], T.ones(2)),
    "tensordot-neg": lambda T: T.tensordot(_X(T), _X(T), -1),
    "tensordot-big": lambda T: T.tensordot(_X(T), _X(T), 3),
    "tensordot-len": lambda T: T.tensordot(_X(T), _X(T), ([0, 1], [0])),
    "cdist-neg-p": lambda T: T.cdist(_X(T), _X(T), p=-1.0),
    "cdist-int": lambda T: T.cdist(T.ones(2, 3, dtype=T.int64), T.ones(2, 3, dtype=T.int64)),
    "bmm-float-int": lambda T: T.bmm(T.ones(1, 2, 2), T.ones(1, 2, 2, dtype=T.int64)),
    "addmm-bad-input": lambda T: T.addmm(T.ones(3, 3), T.ones(2, 2), T.ones(2, 2)),
    "addmm-input-bigger": lambda T: T.addmm(T.ones(2, 2, 2), T.ones(2, 2), T.ones(2, 2)),
    "baddbmm-input-bigger": lambda T: T.baddbmm(T.ones(3, 1, 2, 2), T.ones(1, 2, 2),
                                                T.ones(1, 2, 2)),
    "floordiv-str": lambda T: _X(T) // "a",
    "floordiv-none": lambda T: T.floor_divide(_X(T), None),
    "copysign-str": lambda T: T.copysign(_X(T), "a"),
    "nan_to_num-str": lambda T: T.nan_to_num("a"),
    "nansum-dim-bad": lambda T: T.nansum(_X(T), 5),
    "diff-neg": lambda T: T.diff(_X(T), n=-1),
    "diff-dim-bad": lambda T: T.diff(_X(T), dim=4),
    "isclose-list": lambda T: T.isclose(_X(T), [1.0]),
    "allclose-neg": lambda T: T.allclose(_X(T), _X(T), rtol=-1),
    "equal-list": lambda T: T.equal(_X(T), [1.0]),
    "any-dim-bad": lambda T: _X(T).any(dim=3),
    "count-dim-bad": lambda T: T.count_nonzero(_X(T), dim=3),
    "is_nonzero-list": lambda T: T.is_nonzero([1]),
    "new_zeros-float": lambda T: _X(T).new_zeros(1.5),
    "new_full-str": lambda T: _X(T).new_full((2,), "a"),
    "new_tensor-str": lambda T: _X(T).new_tensor("abc"),
    "empty_like-list": lambda T: T.empty_like([1]),
    "randint_like-float": lambda T: T.randint_like(_X(T), 1.5),
    "normal-nothing": lambda T: T.normal(0.0, 1.0),
    "bernoulli-list": lambda T: T.bernoulli([0.5]),
    "multinomial-int": lambda T: T.multinomial(T.tensor([1, 2]), 1),
    "multinomial-0": lambda T: T.multinomial(T.ones(2), 0),
    "searchsorted-list": lambda T: T.searchsorted([1, 2], T.ones(2)),
    "searchsorted-opp": lambda T: T.searchsorted(T.ones(2), T.ones(2), right=True, side="left"),
    "bucketize-list": lambda T: T.bucketize(T.ones(2), [1.0]),
    "take_along-list": lambda T: T.take_along_dim(_X(T), [[0]], 1),
    "exp_-list": lambda T: T.Tensor.exp_([1.0]),
    "pow_-str": lambda T: _X(T).pow_("a"),
    "lerp_-shape": lambda T: _X(T).lerp_(T.ones(4), 0.5),
    "addcmul_-bcast": lambda T: T.ones(3).addcmul_(T.ones(2, 3), T.ones(3)),
    "format-bad": lambda T: format(T.tensor(1.0), "q"),
    "index-float": lambda T: [1, 2][T.tensor(1.0)],
    "movedim-oob": lambda T: T.movedim(_X(T), 0, 5),
    "swapaxes-oob": lambda T: T.swapaxes(_X(T), 0, 5),
    "mH-1d": lambda T: T.ones(3).mH,
    "view_as-list": lambda T: _X(T).view_as([1]),
    "chunk-0d": lambda T: T.tensor(1.0).chunk(2),
    "split-0d": lambda T: T.tensor(1.0).split(1),
    "unbind-dim": lambda T: _X(T).unbind(4),
    "split-size0": lambda T: _X(T).split(0),
    "invert-float": lambda T: ~_X(T),
    "logical_not-list": lambda T: T.logical_not([1]),
    "bincount-neg": lambda T: T.bincount(T.tensor([-1, 2])),
    "bincount-2d": lambda T: T.bincount(T.ones(2, 2, dtype=T.int64)),
    "histc-bins0": lambda T: T.histc(T.ones(2), bins=0),
    "unflatten-bad": lambda T: T.arange(6).unflatten(0, (4, 2)),
    "tensor_split-0": lambda T: T.arange(6).tensor_split(0),
    "hsplit-indivisible": lambda T: T.arange(6).hsplit(4),
    "vsplit-1d": lambda T: T.arange(6).vsplit(2),
    "fliplr-1d": lambda T: T.arange(3).fliplr(),
    "aminmax-empty": lambda T: T.aminmax(T.ones(0)),
    "isin-lists": lambda T: T.isin([1], [1]),
    "vstack-tensor": lambda T: T.vstack(T.ones(2)),
    "scatter-dtype": lambda T: T.zeros(2).scatter(0, T.tensor([0]), T.ones(1, dtype=T.float64)),
    "scatter-range": lambda T: T.zeros(2).scatter(0, T.tensor([2]), T.ones(1)),
    "scatter-float-index": lambda T: T.zeros(2).scatter(0, T.tensor([0.0]), 1.0),
    "scatter-ndim": lambda T: T.zeros(2, 2).scatter(0, T.tensor([0]), T.ones(2, 2)),
    "index_add-shape": lambda T: T.zeros(3).index_add(0, T.tensor([0, 1]), T.ones(3)),
    "index_add-range": lambda T: T.zeros(3).index_add(0, T.tensor([3]), T.ones(1)),
    "index_fill-2d": lambda T: T.zeros(3).index_fill(0, T.tensor([[0]]), 1.0),
    "fill_diagonal-1d": lambda T: T.zeros(3).fill_diagonal_(1.0),
    "fill_diagonal-uneven": lambda T: T.zeros(2, 2, 3).fill_diagonal_(1.0),
    "one_hot-float": lambda T: T.nn.functional.one_hot(T.tensor([0.0])),
    "one_hot-neg": lambda T: T.nn.functional.one_hot(T.tensor([-1])),
    "one_hot-big": lambda T: T.nn.functional.one_hot(T.tensor([3]), 2),
    "pad-odd": lambda T: T.nn.functional.pad(T.ones(2), (1,)),
    "pad-too-long": lambda T: T.nn.functional.pad(T.ones(2), (1, 1, 1, 1)),
    "pad-mode": lambda T: T.nn.functional.pad(T.ones(1, 2), (1, 1), mode="foo"),
    "pad-circular-big": lambda T: T.nn.functional.pad(T.ones(1, 3), (0, 4), mode="circular"),
    "pad-reflect-big": lambda T: T.nn.functional.pad(T.ones(1, 2), (2, 2), mode="reflect"),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(_BAD_CALLS))
def test_bad_arguments_raise_torchs_exception_type(name):
    torch = torch_or_skip()
    with pytest.raises(Exception) as theirs:
        _BAD_CALLS[name](torch)
    with pytest.raises(type(theirs.value)) as ours:
        _BAD_CALLS[name](tg)
    assert type(ours.value).__module__ == "builtins", type(ours.value)
    assert tg.ones(2).sum().item() == 2.0


# ---- the Python protocol -------------------------------------------------------------------------
def test_format_index_len_iteration_hash():
    loss = tg.tensor(0.123456)
    assert f"{loss:.4f}" == "0.1235" and f"{loss:>8.2e}" == "1.23e-01"
    assert f"{tg.tensor(3):03d}" == "003"
    assert format(tg.tensor([1.0, 2.0])) == str(tg.tensor([1.0, 2.0]))
    assert [10, 20, 30][tg.tensor(2)] == 30 and list(range(10))[tg.tensor(1):tg.tensor(3)] == [1, 2]
    assert "abc"[tg.tensor([1])] == "b" and [1, 2][tg.tensor(True)] == 2
    with pytest.raises(TypeError):
        [1, 2][tg.tensor(1.0)]
    x = tg.arange(6).reshape(3, 2)
    assert len(x) == 3 and [r.tolist() for r in x] == [[0, 1], [2, 3], [4, 5]]
    a, b = tg.ones(2), tg.ones(2)
    assert hash(a) == id(a) and len({a, b, a}) == 2


def test_pickle_and_deepcopy_keep_leaves_and_grads():
    torch = torch_or_skip()
    for T in (tg, torch):
        x = T.tensor([1.0, 2.0], requires_grad=True)
        (x * 3).sum().backward()
        for y, grad in ((pickle.loads(pickle.dumps(x)), None), (copy.deepcopy(x), [3.0, 3.0])):
            # both keep requires_grad; deepcopy copies .grad, pickle (as torch's) does not
            assert y is not x and y.is_leaf and y.requires_grad
            assert y.detach().tolist() == [1.0, 2.0]
            assert (y.grad.tolist() if y.grad is not None else None) == grad
            (y * 2).sum().backward()            # a graph of its own
            assert y.grad.tolist() == [2.0 + (grad or [0.0])[0]] * 2
            assert x.grad.tolist() == [3.0, 3.0]
        z = pickle.loads(pickle.dumps(x * 2))   # a recorded tensor comes back as a leaf
        assert z.is_leaf and z.requires_grad and z.tolist() == [2.0, 4.0]
        n = pickle.loads(pickle.dumps(T.tensor([1, 2])))
        assert not n.requires_grad and n.dtype == T.int64
        with pytest.raises(RuntimeError):
            copy.deepcopy(x * 2)                # torch: only leaves support deepcopy
    holder = {"w": tg.ones(2, 2, requires_grad=True), "step": 3}
    back = pickle.loads(pickle.dumps(holder))
    assert back["w"].requires_grad and back["w"].shape == (2, 2) and back["step"] == 3


def test_every_public_tensor_method_is_torchs():
    # the Tensor API follows PyTorch's: no public method torch.Tensor lacks
    torch = torch_or_skip()
    ours = {n for n in dir(tg.Tensor) if not n.startswith("_")}
    assert not sorted(ours - set(dir(torch.Tensor)))
