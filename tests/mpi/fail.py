"""One rank raises while the others wait in a collective: the job must end, showing the
error (tests/test_distributed.py runs this under mpiexec with a timeout)."""
import tapegrad as torch
import tapegrad.distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == dist.get_world_size() - 1:
    raise ValueError("the last rank failed on purpose")
t = torch.ones(3)
dist.all_reduce(t)            # the other ranks wait here for the failed one
print("unreachable: the collective finished without the failed rank", flush=True)
