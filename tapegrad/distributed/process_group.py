"""The process group: which MPI processes take part, and who this one is.

tapegrad's only backend is MPI, through mpi4py. mpi4py is imported when a group is
initialised (importing it starts MPI), never when tapegrad is imported, so a program that
never calls ``init_process_group`` pays nothing and needs no MPI. A script started without
``mpiexec`` is a world of one process: every collective then is a copy or a no-op.

Once a group exists with more than one process, an exception that nobody catches on one
rank ends the whole job (``MPI_Abort``) after printing its traceback, so the other ranks
are not left waiting in a collective forever: the same policy as ``python -m mpi4py``.
"""
import importlib.util
import sys
import time

_BACKENDS = ("mpi",)


class _Group:
    """The default (world) group: the MPI communicator and its size and rank."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def __repr__(self):
        return f"ProcessGroup(backend='mpi', rank={self.rank}, world_size={self.size})"


class _GroupMember:
    """``tapegrad.distributed.group.WORLD``: stands for the default group."""
    WORLD = None


group = _GroupMember
GroupMember = _GroupMember
_default = None
_previous_hook = None


def is_available():
    """True when the MPI backend can be used (mpi4py is installed); MPI is not started."""
    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_available():
    return is_available()


def is_initialized():
    """True between ``init_process_group`` and ``destroy_process_group``."""
    return _default is not None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(
            f"tapegrad.distributed needs mpi4py and an MPI library ({e}). Install them with "
            f"pip install 'tapegrad[distributed]' (mpi4py and the mpich wheel), or build "
            f"mpi4py against your cluster's MPI: see docs/distributed.md") from None
    return MPI


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    """Join the default process group: every process ``mpiexec`` started.

    ``backend`` must be ``"mpi"`` (or None, which means it); rank and world size come from
    MPI, so ``rank``/``world_size``, if given, must agree with it. ``init_method``,
    ``timeout`` and ``store`` are accepted for PyTorch's signature and not used: MPI has
    its own rendezvous.
    """
    global _default
    if backend is not None:
        name = str(backend).lower()
        if name not in _BACKENDS:
            raise ValueError(
                f"tapegrad.distributed supports backend='mpi' only, not {backend!r}: launch "
                f"the script with mpiexec (mpiexec -n 2 python train.py) and call "
                f"init_process_group('mpi')")
    if _default is not None:
        raise ValueError("trying to initialize the default process group twice; call "
                         "destroy_process_group() first")
    MPI = _mpi()
    g = _Group(MPI.COMM_WORLD)
    if world_size not in (-1, None) and int(world_size) != g.size:
        raise ValueError(f"init_process_group(world_size={world_size}) but MPI started "
                         f"{g.size} process(es); pass mpiexec -n {world_size}, or leave "
                         f"world_size out")
    if rank not in (-1, None) and int(rank) != g.rank:
        raise ValueError(f"init_process_group(rank={rank}) but MPI gave this process rank "
                         f"{g.rank}; leave rank out, MPI assigns it")
    _default = g
    _GroupMember.WORLD = g
    if g.size > 1:
        _install_abort_hook(MPI)


def destroy_process_group(group=None):
    """Leave the default group. MPI itself stays up until the process exits (mpi4py
    finalises it then), so a later ``init_process_group`` works again."""
    global _default
    _group(group)
    _default = None
    _GroupMember.WORLD = None
    _remove_abort_hook()


def _group(group=None):
    if _default is None:
        raise ValueError("Default process group has not been initialized, please make sure "
                         "to call init_process_group.")
    if group is not None and group is not _default:
        raise ValueError("tapegrad.distributed has one process group, the default one; pass "
                         "group=None (new_group is not supported)")
    return _default


def get_rank(group=None):
    """This process's rank in the group, 0 .. world_size - 1."""
    return _group(group).rank


def get_world_size(group=None):
    """The number of processes in the group."""
    return _group(group).size


def get_backend(group=None):
    _group(group)
    return "mpi"


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank has reached this call."""
    g = _group(group)
    if async_op:
        from .collectives import Work
        return Work(g.comm.Ibarrier())
    g.comm.Barrier()
    return None


# ---- failure policy ---------------------------------------------------------------------------
def _install_abort_hook(MPI):
    global _previous_hook
    if _previous_hook is not None:
        return
    _previous_hook = sys.excepthook

    def abort_on_uncaught(kind, value, tb):
        try:
            _previous_hook(kind, value, tb)
            sys.stderr.write(f"tapegrad.distributed: rank {MPI.COMM_WORLD.Get_rank()} raised "
                             f"{kind.__name__}; aborting the job so that the other ranks do "
                             f"not wait for it\n")
            sys.stderr.flush()
            sys.stdout.flush()
            # let mpiexec forward what was just written: MPI_Abort tears the job down at
            # once, and on a busy machine the traceback was sometimes lost on the way
            time.sleep(0.5)
        finally:     # (a SystemExit never reaches an excepthook: sys.exit(1) ends one
            MPI.COMM_WORLD.Abort(1)     # rank, and mpiexec then ends the job)

    sys.excepthook = abort_on_uncaught


def _remove_abort_hook():
    global _previous_hook
    if _previous_hook is not None:
        sys.excepthook = _previous_hook
        _previous_hook = None
