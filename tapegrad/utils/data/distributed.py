"""DistributedSampler: each rank of a data-parallel job reads its own share of a data set."""
import math
import numbers

from ... import creation as _creation
from .sampler import Sampler


class DistributedSampler(Sampler):
    """Give rank ``rank`` of ``num_replicas`` every ``num_replicas``-th index of one order.

    All ranks draw the same order (a permutation seeded by ``seed + epoch`` when
    ``shuffle``, else 0, 1, ...), so their shares are disjoint and together cover the data
    set. When its length does not divide evenly, the order is padded with its own first
    indices so that every rank gets ``ceil(len / num_replicas)`` of them (a few samples
    then appear twice in an epoch), or with ``drop_last`` cut to
    ``floor(len / num_replicas)`` each. Call ``set_epoch(epoch)`` before each epoch for a
    new order. ``num_replicas`` and ``rank`` default to the process group's.

    >>> from tapegrad.utils.data.distributed import DistributedSampler
    >>> list(DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False))
    [1, 3, 0]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist
            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or call "
                                   "tapegrad.distributed.init_process_group() first")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        for name, v in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                raise TypeError(f"DistributedSampler: {name} must be an int, got {v!r}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got "
                             f"{num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            g = _creation.Generator().manual_seed(self.seed + self.epoch)
            order = _creation.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        if self.drop_last:
            order = order[:self.total_size]
        elif order:
            pad = self.total_size - n
            order += (order * math.ceil(pad / n))[:pad] if pad else []
        return iter(order[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Use the order of this epoch (with ``shuffle``); call it before each epoch."""
        self.epoch = int(epoch)
