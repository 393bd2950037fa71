"""Datasets: indexable collections of samples, and ways to combine and split them."""
import bisect
import math
import numbers
import warnings

from ... import creation as _creation
from ...tensor import Tensor


class Dataset:
    """A map-style data set: ``dataset[i]`` is sample ``i``, ``len(dataset)`` how many.

    Subclasses define ``__getitem__`` (and ``__len__``, which ``DataLoader``'s default
    samplers need). ``a + b`` is the ``ConcatDataset`` of the two.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import Dataset
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return tg.tensor(float(i * i))
    >>> [float(Squares()[i]) for i in range(len(Squares()))]
    [0.0, 1.0, 4.0, 9.0]
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"Subclasses of Dataset should implement __getitem__ "
                                  f"({type(self).__name__} does not).")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A data set read as a stream: subclasses define ``__iter__``; it has no indices, so
    ``DataLoader`` reads it in order and refuses ``shuffle`` and samplers."""

    def __iter__(self):
        raise NotImplementedError(f"Subclasses of IterableDataset should implement __iter__ "
                                  f"({type(self).__name__} does not).")

    def __add__(self, other):
        raise TypeError("IterableDataset does not support + (ConcatDataset needs indices)")


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``; every tensor has the same size along
    its first dimension (the number of samples).

    >>> import tapegrad as tg
    >>> ds = tg.utils.data.TensorDataset(tg.zeros(5, 3), tg.arange(5))
    >>> len(ds), ds[2][1].item()
    (5, 2)
    """

    def __init__(self, *tensors):
        for k, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset(): argument {k} must be a Tensor, not "
                                f"{type(t).__name__}")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset(): tensor {k} is 0-d; each tensor needs a "
                                 f"first dimension indexing the samples")
        if any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise AssertionError(f"Size mismatch between tensors: first dimensions "
                                 f"{[t.shape[0] for t in tensors]} must all be equal")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0] if self.tensors else 0


class ConcatDataset(Dataset):
    """The samples of several data sets one after the other (what ``a + b`` makes)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            idx += len(self)
        k = bisect.bisect_right(self.cumulative_sizes, idx)
        if k == len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of "
                             f"{len(self)} samples")
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][idx - start]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order: ``Subset(d, [3, 1])[0]`` is
    ``d[3]``.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import Subset
    >>> s = Subset([10, 11, 12, 13], [3, 1])
    >>> len(s), s[0], s[1]
    (2, 13, 11)
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return [self.dataset[self.indices[i]] for i in idx]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping ``Subset``\\ s of the given lengths, drawn in a
    random order.

    ``lengths`` are sample counts that add up to ``len(dataset)``, or fractions that add up
    to 1 (each subset then gets ``floor(fraction * len)`` samples and the samples left over
    go one each to the first subsets, as PyTorch does). The order comes from ``generator``
    when given, else from the process-wide generator (``tapegrad.manual_seed``); it is
    tapegrad's own, not the one PyTorch draws for the same seed.

    >>> from tapegrad.creation import Generator
    >>> from tapegrad.utils.data import random_split
    >>> a, b = random_split(range(10), [0.7, 0.3], generator=Generator().manual_seed(0))
    >>> len(a), len(b), sorted(list(a) + list(b)) == list(range(10))
    (7, 3, True)
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * frac)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, c in enumerate(counts):
            if c == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an "
                              f"empty dataset.", stacklevel=2)
        lengths = counts
    if sum(lengths) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input "
                         f"dataset! (lengths {lengths} add up to {sum(lengths)}, the data set "
                         f"has {n} samples; give sample counts adding up to {n} or fractions "
                         f"adding up to 1)")
    for i, c in enumerate(lengths):
        if not isinstance(c, numbers.Integral) or isinstance(c, bool) or c < 0:
            raise ValueError(f"random_split(): length at index {i} must be a non-negative "
                             f"integer (or all lengths fractions adding up to 1), not {c!r}")
    order = _creation.randperm(n, generator=generator).tolist()
    out, start = [], 0
    for c in lengths:
        out.append(Subset(dataset, order[start:start + c]))
        start += c
    return out
