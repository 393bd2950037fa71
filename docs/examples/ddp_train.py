"""Data-parallel training with DistributedDataParallel, written as for PyTorch.

    mpiexec -n 2 python docs/examples/ddp_train.py      # two ranks on this machine
    python docs/examples/ddp_train.py                   # one process: the same training

``main(torch)`` takes the library: with tapegrad the backend is MPI; PyTorch runs the same
code with ``backend="gloo"`` (tests/test_distributed.py runs both under mpiexec).

Every rank builds the same data set and model (same seed); DistributedDataParallel copies
rank 0's weights to the others and, after every backward, averages the gradients, so
all ranks take the same optimizer steps. DistributedSampler gives each rank its share
of every epoch's order, and the per-rank batch is the global batch divided by the number
of ranks: the ranks' batches together are the one-process batch, and the run trains the
same model as one process does.
"""
GLOBAL_BATCH = 64


def main(torch, backend="mpi", verbose=True):
    dist, nn = torch.distributed, torch.nn
    DDP = torch.nn.parallel.DistributedDataParallel
    DataLoader, TensorDataset = torch.utils.data.DataLoader, torch.utils.data.TensorDataset
    DistributedSampler = torch.utils.data.DistributedSampler

    dist.init_process_group(backend=backend)
    rank, world = dist.get_rank(), dist.get_world_size()

    torch.manual_seed(0)                       # the same data on every rank
    X = torch.randn(1024, 8)
    y = torch.tanh(X @ torch.randn(8, 1) / 2) + 0.05 * torch.randn(1024, 1)
    data = TensorDataset(X, y)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=GLOBAL_BATCH // world, sampler=sampler)

    model = DDP(nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1)))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.MSELoss()

    losses = []
    for epoch in range(8):
        sampler.set_epoch(epoch)               # a new order each epoch, alike on all ranks
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()                    # gradients averaged over the ranks here
            opt.step()
        with torch.no_grad():
            full = loss_fn(model.module(X), y).item()
        losses.append(full)
        if verbose and rank == 0:
            print(f"epoch {epoch}: loss on all data {full:.6f}")
    if verbose and rank == 0:
        print(f"trained on {world} rank(s), {GLOBAL_BATCH // world} rows each per step")
    dist.destroy_process_group()
    return losses


if __name__ == "__main__":
    import tapegrad
    main(tapegrad)
