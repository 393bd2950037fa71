"""tapegrad.distributed: torch.distributed's names over MPI (mpi4py).

- the process group: ``init_process_group("mpi")``, ``is_available``, ``is_initialized``,
  ``get_rank``, ``get_world_size``, ``barrier``, ``destroy_process_group``;
- collectives on tensors, in place: ``all_reduce``, ``reduce``, ``broadcast``,
  ``all_gather``, ``gather``, ``scatter`` (``async_op=True`` returns a ``Work``), and
  ``all_gather_object``, ``broadcast_object_list`` for picklable objects;
- ``ReduceOp``: SUM, AVG, PRODUCT, MIN, MAX (and BAND, BOR, BXOR on integers).

Data-parallel training is ``tapegrad.nn.parallel.DistributedDataParallel`` with
``tapegrad.utils.data.distributed.DistributedSampler``; docs/distributed.md shows a whole
script and how to launch it (``mpiexec -n 2 python train.py``).
"""
from .collectives import (ReduceOp, Work, all_gather, all_gather_object, all_reduce,
                          broadcast, broadcast_object_list, gather, reduce, scatter)
from .process_group import (GroupMember, barrier, destroy_process_group, get_backend,
                            get_rank, get_world_size, group, init_process_group, is_available,
                            is_initialized, is_mpi_available)

__all__ = ["GroupMember", "ReduceOp", "Work", "all_gather", "all_gather_object", "all_reduce",
           "barrier", "broadcast", "broadcast_object_list", "destroy_process_group", "gather",
           "get_backend", "get_rank", "get_world_size", "group", "init_process_group",
           "is_available", "is_initialized", "is_mpi_available", "reduce", "scatter"]
