"""tapegrad.utils.data, tapegrad.Generator and randperm: against torch where the order
does not depend on the generator, and self-consistency (same seed, same order) where it
does."""
import collections
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad.creation import Generator, randperm
from tapegrad.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset,
                                 IterableDataset, RandomSampler, SequentialSampler, Subset,
                                 SubsetRandomSampler, TensorDataset, default_collate,
                                 random_split)
from helpers import torch_or_skip


def _np(x):
    if isinstance(x, (list, tuple)):
        return [_np(v) for v in x]
    if isinstance(x, dict):
        return {k: _np(v) for k, v in x.items()}
    return np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)


def _same(a, b):
    """tapegrad batch a has the structure, dtypes and values of torch batch b."""
    if isinstance(b, dict):
        assert type(a) is type(b) and list(a) == list(b)
        for k in b:
            _same(a[k], b[k])
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif hasattr(b, "numpy"):
        assert isinstance(a, tg.Tensor)
        y = b.numpy()
        assert a.numpy().dtype == y.dtype and a.shape == y.shape
        np.testing.assert_array_equal(a.numpy(), y)
    else:
        assert a == b


# ---- Generator and randperm ----------------------------------------------------------------
def test_generator_seeds_and_states():
    g = Generator()
    assert g.initial_seed() == 67280421310721 == torch_or_skip().Generator().initial_seed()
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    assert g.device == tg.device("cpu")
    a = tg.rand(4, generator=g).tolist()
    g.manual_seed(5)
    assert tg.rand(4, generator=g).tolist() == a
    state = g.get_state()
    assert state.dtype == np.uint8
    b = tg.randn(3, generator=g).tolist()
    c = tg.randint(0, 100, (5,), generator=g).tolist()
    assert g.set_state(state) is g
    assert tg.randn(3, generator=g).tolist() == b
    assert tg.randint(0, 100, (5,), generator=g).tolist() == c
    s = g.seed()
    assert g.initial_seed() == s and 0 <= s < 2**64
    assert Generator().manual_seed(-1).initial_seed() == 2**64 - 1


def test_generator_is_independent_of_the_global_stream():
    tg.manual_seed(3)
    want = tg.rand(3).tolist()
    tg.manual_seed(3)
    tg.randn(10, generator=Generator().manual_seed(9))
    assert tg.rand(3).tolist() == want
    assert tg.creation.initial_seed() == 3


def test_generator_bad_input():
    g = Generator()
    with pytest.raises(TypeError, match="uint8"):
        g.set_state(tg.zeros(48))
    with pytest.raises(RuntimeError, match="size"):
        g.set_state(tg.zeros(3, dtype=tg.creation.np.uint8))
    with pytest.raises(RuntimeError, match="Overflow"):
        g.manual_seed(2**64)
    with pytest.raises(RuntimeError, match="CPU only"):
        Generator("cuda")
    with pytest.raises(TypeError, match="tapegrad.Generator"):
        tg.rand(2, generator=np.random.default_rng(0))


def test_randperm():
    torch = torch_or_skip()
    for n in (0, 1, 7):
        p = randperm(n)
        assert p.dtype == tg.int64 == torch.randperm(n).numpy().dtype
        assert sorted(p.tolist()) == list(range(n))
    assert randperm(5, dtype=tg.float32).dtype == tg.float32
    assert randperm(5, dtype=tg.float32, requires_grad=True).requires_grad
    tg.manual_seed(1)
    a = randperm(50).tolist()
    tg.manual_seed(1)
    assert randperm(50).tolist() == a
    assert randperm(50, generator=Generator().manual_seed(2)).tolist() == \
        randperm(50, generator=Generator().manual_seed(2)).tolist()
    with pytest.raises(RuntimeError, match="negative dimension"):
        randperm(-1)
    with pytest.raises(TypeError):
        randperm(2.0)
    with pytest.raises(RuntimeError):
        randperm(3, requires_grad=True)          # int64 cannot require grad


# ---- data sets -------------------------------------------------------------------------------
def test_tensor_dataset_and_subset_match_torch():
    torch = torch_or_skip()
    x, y = np.arange(12.0).reshape(6, 2).astype(np.float32), np.arange(6)
    ds = TensorDataset(tg.tensor(x), tg.tensor(y))
    tds = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    assert len(ds) == len(tds) == 6
    for i in (0, 5, -1):
        _same(list(ds[i]), list(tds[i]))
    sub, tsub = Subset(ds, [4, 0, 2]), torch.utils.data.Subset(tds, [4, 0, 2])
    assert len(sub) == len(tsub) == 3
    _same(list(sub[0]), list(tsub[0]))
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        TensorDataset(tg.zeros(3), tg.zeros(4))
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        torch.utils.data.TensorDataset(torch.zeros(3), torch.zeros(4))


def test_dataset_base_and_concat():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(TypeError):
        len(Dataset())

    class Squares(Dataset):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return i * i

    both = Squares(3) + Squares(2)
    assert isinstance(both, ConcatDataset) and len(both) == 5
    assert [both[i] for i in range(5)] == [0, 1, 4, 0, 1]
    assert both[-1] == 1
    with pytest.raises(IndexError):
        both[5]


def test_random_split_lengths_and_errors():
    torch = torch_or_skip()
    for lengths in ([3, 7], [0.3, 0.7], [0.33, 0.33, 0.34], [0.5, 0.5], [10]):
        ours = random_split(range(10), lengths)
        theirs = torch.utils.data.random_split(range(10), lengths)
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        assert sorted(i for s in ours for i in s) == list(range(10))
    for bad in ([3, 3], [0.5, 0.6], [1.5, -0.5]):
        with pytest.raises(ValueError) as ours:
            random_split(range(10), bad)
        with pytest.raises(ValueError) as theirs:
            torch.utils.data.random_split(range(10), bad)
        assert str(ours.value).startswith(str(theirs.value))
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [1.0, 0.0])
    with pytest.raises(ValueError, match="non-negative integer"):
        random_split(range(4), [5, -1])
    a = [list(s) for s in random_split(range(20), [5, 15], generator=Generator().manual_seed(4))]
    b = [list(s) for s in random_split(range(20), [5, 15], generator=Generator().manual_seed(4))]
    assert a == b and a[0] != list(range(5))


# ---- samplers --------------------------------------------------------------------------------
def test_sequential_and_batch_samplers_match_torch():
    torch = torch_or_skip()
    T = torch.utils.data
    for n, bs, drop in ((10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                        (2, 5, True), (0, 2, False)):
        ours = BatchSampler(SequentialSampler(range(n)), bs, drop)
        theirs = T.BatchSampler(T.SequentialSampler(range(n)), bs, drop)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
    for args in ((range(3), 0, False), (range(3), 2, 1), (range(3), True, False)):
        with pytest.raises(ValueError) as ours:
            BatchSampler(*args)
        with pytest.raises(ValueError) as theirs:
            T.BatchSampler(*args)
        assert str(ours.value) == str(theirs.value)


def test_random_samplers():
    torch = torch_or_skip()
    T = torch.utils.data
    s = RandomSampler(range(10), generator=Generator().manual_seed(0))
    e1, e2 = list(s), list(s)
    assert sorted(e1) == sorted(e2) == list(range(10)) and e1 != e2 and len(s) == 10
    s2 = RandomSampler(range(10), generator=Generator().manual_seed(0))
    assert list(s2) == e1 and list(s2) == e2
    long = RandomSampler(range(4), num_samples=10)
    got = list(long)
    assert len(got) == len(long) == 10 and sorted(got[:8]) == [0, 0, 1, 1, 2, 2, 3, 3]
    rep = list(RandomSampler(range(3), replacement=True, num_samples=100))
    assert len(rep) == 100 and set(rep) <= {0, 1, 2}
    sub = SubsetRandomSampler([5, 7, 9], generator=Generator().manual_seed(1))
    assert sorted(sub) == [5, 7, 9] and len(sub) == 3
    for kw, err in ((dict(replacement=1), TypeError), (dict(num_samples=0), ValueError)):
        with pytest.raises(err) as ours:
            RandomSampler(range(3), **kw)
        with pytest.raises(err) as theirs:
            T.RandomSampler(range(3), **kw)
        assert str(ours.value) == str(theirs.value)


# ---- collation -------------------------------------------------------------------------------
Point = collections.namedtuple("Point", "x y")


@pytest.mark.parametrize("batch", [
    [(1, 2.0, True), (3, 4.0, False)],
    [{"a": 1, "b": [1.5, 2]}, {"a": 2, "b": [2.5, 3]}],
    [collections.OrderedDict(w=np.ones(2)), collections.OrderedDict(w=np.zeros(2))],
    [[1, 2], [3, 4]],
    ["a", "b"],
    [Point(1, 2.0), Point(3, 4.0)],
    [np.float32(1), np.float32(2)],
    [np.arange(3, dtype=np.int32), np.arange(3, dtype=np.int32)],
], ids=["tuple", "dict", "odict", "list", "str", "namedtuple", "npscalar", "ndarray"])
def test_default_collate_matches_torch(batch):
    torch = torch_or_skip()
    _same(default_collate(batch), torch.utils.data.default_collate(batch))


def test_default_collate_tensors_and_errors():
    torch = torch_or_skip()
    rows = [np.arange(6.0, dtype=np.float32).reshape(2, 3) + k for k in range(4)]
    _same(default_collate([(tg.tensor(r), k) for k, r in enumerate(rows)]),
          torch.utils.data.default_collate([(torch.tensor(r), k) for k, r in enumerate(rows)]))
    for bad, err in (([object()], TypeError), ([[1, 2], [3]], RuntimeError)):
        with pytest.raises(err) as ours:
            default_collate(bad)
        with pytest.raises(err) as theirs:
            torch.utils.data.default_collate(bad)
        assert str(ours.value).split(" <")[0] == str(theirs.value).split(" <")[0]


# ---- DataLoader ------------------------------------------------------------------------------
def _datasets(torch):
    x = np.arange(14.0).reshape(7, 2).astype(np.float32)
    y = np.arange(7) % 3
    return (TensorDataset(tg.tensor(x), tg.tensor(y)),
            torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)))


@pytest.mark.parametrize("kw", [dict(), dict(batch_size=3), dict(batch_size=3, drop_last=True),
                                dict(batch_size=10), dict(batch_size=None),
                                dict(batch_size=2, num_workers=0)],
                         ids=str)
def test_sequential_loading_matches_torch(kw):
    torch = torch_or_skip()
    ds, tds = _datasets(torch)
    ours, theirs = DataLoader(ds, **kw), torch.utils.data.DataLoader(tds, **kw)
    assert len(ours) == len(theirs) and ours.dataset is ds
    got, want = list(ours), list(theirs)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        _same(list(a), list(b))


def test_loader_with_samplers_and_collate_fn_matches_torch():
    torch = torch_or_skip()
    ds, tds = _datasets(torch)
    T = torch.utils.data
    batches = [[6, 0], [3], [1, 2, 4]]
    ours, theirs = DataLoader(ds, batch_sampler=batches), T.DataLoader(tds, batch_sampler=batches)
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        _same(list(a), list(b))
    order = [5, 1, 3]
    ours = DataLoader(ds, sampler=order, batch_size=2)
    theirs = T.DataLoader(tds, sampler=order, batch_size=2)
    for a, b in zip(ours, theirs):
        _same(list(a), list(b))
    assert [len(b) for b in DataLoader(ds, batch_size=3, collate_fn=lambda b: b)] == [3, 3, 1]


def test_shuffling_is_reproducible_and_changes_each_epoch():
    ds = TensorDataset(tg.arange(50))
    loader = DataLoader(ds, batch_size=8, shuffle=True, generator=Generator().manual_seed(3))
    e1 = [i for (b,) in loader for i in b.tolist()]
    e2 = [i for (b,) in loader for i in b.tolist()]
    assert sorted(e1) == sorted(e2) == list(range(50)) and e1 != e2
    again = DataLoader(ds, batch_size=8, shuffle=True, generator=Generator().manual_seed(3))
    assert [i for (b,) in again for i in b.tolist()] == e1

    def epochs():                         # no generator: the global seed decides
        tg.manual_seed(11)
        dl = DataLoader(ds, batch_size=8, shuffle=True)
        return [[i for (b,) in dl for i in b.tolist()] for _ in range(2)]

    first = epochs()
    assert first == epochs() and first[0] != first[1]


def test_loader_argument_errors_match_torch():
    torch = torch_or_skip()
    T = torch.utils.data
    for kw in (dict(shuffle=True, sampler=[0]), dict(batch_sampler=[[0]], batch_size=2),
               dict(batch_sampler=[[0]], shuffle=True), dict(batch_sampler=[[0]], drop_last=True),
               dict(batch_size=None, drop_last=True), dict(num_workers=-1),
               dict(batch_size=0), dict(prefetch_factor=2), dict(persistent_workers=True)):
        with pytest.raises(ValueError) as ours:
            DataLoader(range(3), **kw)
        with pytest.raises(ValueError) as theirs:
            T.DataLoader(range(3), **kw)
        assert str(ours.value) == str(theirs.value), kw
    dl = DataLoader(range(3))
    with pytest.raises(ValueError, match="should not be set after"):
        dl.batch_size = 4


def test_num_workers_loads_in_process():
    ds = TensorDataset(tg.arange(5))
    assert [b.tolist() for (b,) in DataLoader(ds, batch_size=2, num_workers=2)] == \
        [[0, 1], [2, 3], [4]]


def test_iterable_dataset():
    torch = torch_or_skip()

    class Count(IterableDataset):
        def __iter__(self):
            return iter(range(5))

    class TCount(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    for kw in (dict(batch_size=2), dict(batch_size=2, drop_last=True), dict(batch_size=None)):
        _same(list(DataLoader(Count(), **kw)), list(torch.utils.data.DataLoader(TCount(), **kw)))
    with pytest.raises(ValueError, match="expected unspecified shuffle"):
        DataLoader(Count(), shuffle=True)


def test_training_loop_shapes():
    """The tutorial's loop: batches of 64 images and labels, the last one short."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = TensorDataset(tg.rand(130, 28, 28), tg.randint(0, 10, (130,)))
        train, test = random_split(ds, [100, 30], generator=Generator().manual_seed(0))
        loader = DataLoader(train, batch_size=64, shuffle=True)
        shapes = [(tuple(X.shape), tuple(y.shape)) for X, y in loader]
    assert shapes == [((64, 28, 28), (64,)), ((36, 28, 28), (36,))]
    assert len(DataLoader(test, batch_size=64)) == 1


@pytest.mark.parametrize("module", ["tapegrad.utils.data.dataset", "tapegrad.utils.data.sampler",
                                    "tapegrad.utils.data.dataloader"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_process_wide_generator_helpers_and_like_functions():
    from tapegrad import creation as C
    C.manual_seed(8)
    state = C.get_rng_state()
    a = C.randn(4).tolist()
    C.set_rng_state(state)
    assert C.randn(4).tolist() == a and C.initial_seed() == 8
    s = C.seed()
    assert C.initial_seed() == s == C.default_generator.initial_seed()
    t = tg.zeros(2, 3, dtype=tg.float64)
    g1, g2 = Generator().manual_seed(1), Generator().manual_seed(1)
    x, y = C.randn_like(t, generator=g1), C.randn_like(t, generator=g2)
    assert x.dtype == tg.float64 and x.tolist() == y.tolist()
    assert C.rand_like(t, generator=g1).tolist() == C.rand_like(t, generator=g2).tolist()


def test_generators_copy_and_pickle_with_their_state():
    import copy
    import pickle
    g = Generator().manual_seed(12)
    tg.rand(3, generator=g)
    for h in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert h is not g and h.initial_seed() == 12
        assert tg.rand(5, generator=h).tolist() == tg.rand(5, generator=copy.copy(g)).tolist()
    loader = DataLoader(range(6), batch_size=2, shuffle=True, generator=g)
    twin = copy.deepcopy(loader.generator)
    first = [b.tolist() for b in loader]
    assert first == [b.tolist() for b in DataLoader(range(6), batch_size=2, shuffle=True,
                                                    generator=twin)]
