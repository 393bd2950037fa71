"""tapegrad.nn.parallel: ``DistributedDataParallel`` (data-parallel training over MPI)."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
