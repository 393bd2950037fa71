"""tapegrad.utils.data: data sets and loaders with torch.utils.data's names.

- ``Dataset``, ``IterableDataset``, ``TensorDataset``, ``ConcatDataset``, ``Subset``,
  ``random_split``: what to read;
- ``Sampler``, ``SequentialSampler``, ``RandomSampler``, ``SubsetRandomSampler``,
  ``BatchSampler``, ``DistributedSampler`` (``distributed``: one rank's share): in which
  order;
- ``DataLoader``, ``default_collate``, ``default_convert``: reading it in batches.

Random orders come from a ``tapegrad.Generator`` passed as ``generator=``, or else from
the process-wide generator ``tapegrad.manual_seed`` seeds; either way a seed fixes them,
but they are not the orders PyTorch draws for the same seed.
"""
from .dataloader import DataLoader, default_collate, default_convert
from .dataset import (ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
                      random_split)
from . import distributed
from .distributed import DistributedSampler
from .sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,
                      SubsetRandomSampler)

__all__ = ["BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
           "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "default_collate", "default_convert", "random_split"]
