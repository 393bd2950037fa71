"""DataLoader: reads a data set in batches, in the order a sampler gives, collating each
batch into tensors (``default_collate``)."""
import collections.abc as cabc
import math
import numbers

import numpy as np

from ... import ops as _ops
from ...tensor import Tensor
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

_COLLATE_ERR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts "
                "or lists; found {}")


def _array_tensor(a):
    if a.dtype.kind not in "fiub":
        raise TypeError(_COLLATE_ERR.format(a.dtype))
    return _ops.as_tensor(np.array(a))


def default_collate(batch):
    """Put a list of samples together into one batch, as PyTorch's ``default_collate`` does.

    Tensors (and numpy arrays) are stacked along a new first dimension; Python floats become
    a float64 tensor, ints an int64 tensor, bools a bool tensor; strings stay a list;
    dicts, named tuples, tuples and lists are collated field by field (tuples and lists
    give lists, dicts keep their keys and type). Samples of another type raise TypeError.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import default_collate
    >>> default_collate([(tg.zeros(3), 1), (tg.ones(3), 0)])
    [tensor([[0., 0., 0.],
            [1., 1., 1.]]), tensor([1, 0])]
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _ops.stack(list(batch), 0)
    if isinstance(elem, np.ndarray):
        return _ops.stack([_array_tensor(b) for b in batch], 0)
    if isinstance(elem, np.generic) and not isinstance(elem, (np.str_, np.bytes_)):
        return _array_tensor(np.array(batch))
    if isinstance(elem, float):
        return _ops.as_tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, bool):
        return _ops.as_tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return _ops.as_tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, cabc.Mapping):
        fields = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):      # a named tuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, cabc.Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(s)) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_COLLATE_ERR.format(type(elem)))


def default_convert(data):
    """What a DataLoader with ``batch_size=None`` applies to each sample: numpy arrays
    become tensors, containers are converted element by element, the rest is kept."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
        return _ops.as_tensor(np.array(data))
    if isinstance(data, np.generic) and data.dtype.kind in "fiub":
        return _ops.as_tensor(np.array(data))
    if isinstance(data, (str, bytes, Tensor)):
        return data
    if isinstance(data, cabc.Mapping):
        fields = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(fields)
        except TypeError:
            return fields
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, cabc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


class _Unset:
    def __repr__(self):
        return "unset"


_UNSET = _Unset()
_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset")


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Each pass (``for batch in loader``) reads the indices the sampler gives, groups them
    ``batch_size`` at a time (the last short batch is dropped when ``drop_last``) and
    collates each group with ``collate_fn`` (``default_collate``: tensors stacked along a new
    dim 0). ``shuffle=True`` reads in a new random order each epoch, drawn from
    ``generator`` if given, else from the process-wide generator, so that
    ``tapegrad.manual_seed(s)`` before the first epoch makes every epoch's order the same
    on every run. The orders are tapegrad's own, not the ones PyTorch gives for a seed.
    ``sampler`` and ``batch_sampler`` replace the default order as in PyTorch, and the
    same combinations are refused. ``batch_size=None`` turns batching off.

    ``num_workers > 0`` is accepted but the samples are still loaded in this process, one
    after the other (no worker processes; ``worker_init_fn`` is not called).

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(tg.arange(10.0).reshape(5, 2), tg.arange(5))
    >>> loader = DataLoader(ds, batch_size=2)
    >>> len(loader), [tuple(x.shape) for x, y in loader]
    (3, [(2, 2), (2, 2), (1, 2)])
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False,
                 timeout=0, worker_init_fn=None, generator=None, *, prefetch_factor=None,
                 persistent_workers=False):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             "to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing.let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if isinstance(dataset, IterableDataset):
            for name, value in (("shuffle", shuffle), ("sampler", sampler),
                                ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                     f"{name} option, but got {name}={value!r}")
        elif shuffle not in (None, False) and sampler is not None:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle not in (None, False) or sampler is not None or \
                    drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        iterable = isinstance(dataset, IterableDataset)
        if sampler is None and not iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else \
                SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        elif batch_size is not None and iterable and \
                (not isinstance(batch_size, numbers.Integral) or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if collate_fn is None:
            collate_fn = default_collate if batch_size is not None or \
                batch_sampler is not None else default_convert
        d = self.__dict__
        d.update(dataset=dataset, batch_size=batch_size, drop_last=drop_last,
                 sampler=sampler, batch_sampler=batch_sampler, num_workers=num_workers,
                 collate_fn=collate_fn, pin_memory=pin_memory, timeout=timeout,
                 worker_init_fn=worker_init_fn, generator=generator,
                 prefetch_factor=prefetch_factor, persistent_workers=persistent_workers)

    def __setattr__(self, name, value):
        if name in _FROZEN:
            raise ValueError(f"{name} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def _fetch(self, indices):
        ds = self.dataset
        getitems = getattr(ds, "__getitems__", None)
        return getitems(indices) if getitems is not None else [ds[i] for i in indices]

    def __iter__(self):
        collate = self.collate_fn
        if isinstance(self.dataset, IterableDataset):
            if self.batch_size is None:
                for sample in self.dataset:
                    yield collate(sample)
                return
            batch = []
            for sample in self.dataset:
                batch.append(sample)
                if len(batch) == self.batch_size:
                    yield collate(batch)
                    batch = []
            if batch and not self.drop_last:
                yield collate(batch)
            return
        if self.batch_sampler is not None:
            for indices in self.batch_sampler:
                yield collate(self._fetch(list(indices)))
        else:
            for i in self.sampler:
                yield collate(self.dataset[i])

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)
