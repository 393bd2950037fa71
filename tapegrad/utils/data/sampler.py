"""Samplers: the order in which a DataLoader reads a data set's indices.

A sampler without a ``generator`` draws a fresh seed from the process-wide generator each
time it is iterated (each epoch), as PyTorch's do: after ``tapegrad.manual_seed(s)`` the
sequence of epochs is the same on every run, and each epoch's order differs from the last.
With a ``generator`` the orders come from it instead.
"""
import numbers

from ... import creation as _creation


def _epoch_generator(generator):
    if generator is not None:
        if not isinstance(generator, _creation.Generator):
            raise TypeError(f"generator must be a tapegrad.Generator, not "
                            f"{type(generator).__name__}")
        return generator
    seed = int(_creation.draw("integers", 0, 2**63))
    return _creation.Generator().manual_seed(seed)


class Sampler:
    """Base class: subclasses define ``__iter__`` (indices, or lists of indices for a batch
    sampler) and usually ``__len__``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """The indices of ``data_source`` in a random order (a new one each epoch).

    Without replacement every index comes once per epoch (``num_samples`` larger than the
    data set repeats whole permutations); with ``replacement=True`` ``num_samples`` indices
    are drawn independently.

    >>> from tapegrad.creation import Generator
    >>> from tapegrad.utils.data import RandomSampler
    >>> sorted(RandomSampler(range(5), generator=Generator().manual_seed(1)))
    [0, 1, 2, 3, 4]
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        n = self.num_samples
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={n}")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, count = len(self.data_source), self.num_samples
        g = _epoch_generator(self.generator)
        if self.replacement:
            for start in range(0, count, 32):
                yield from _creation.randint(0, n, (min(32, count - start),),
                                             generator=g).tolist()
            return
        for _ in range(count // n):
            yield from _creation.randperm(n, generator=g).tolist()
        yield from _creation.randperm(n, generator=g).tolist()[:count % n]

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a new one each epoch), without replacement."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        g = _epoch_generator(self.generator)
        for i in _creation.randperm(len(self.indices), generator=g).tolist():
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; the last, shorter one
    is kept unless ``drop_last``.

    >>> from tapegrad.utils.data import BatchSampler, SequentialSampler
    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or \
                batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got "
                             f"drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
