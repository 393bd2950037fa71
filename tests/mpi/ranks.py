"""Checks that need real MPI ranks; tests/test_distributed.py runs this file under
``mpiexec -n 2`` (and ``-n 3``) and reads one ``PASS <case>`` line per case from rank 0.

Usage: mpiexec -n N python tests/mpi/ranks.py CASE [CASE ...]   (or ``all``)

Every case runs on every rank in the same order, since collectives must match up. A
failing check prints its traceback and aborts the job (the abort hook that
``init_process_group`` installs), so a broken case can never leave ranks waiting.
"""
import copy
import sys
import warnings

import numpy as np

import tapegrad as torch
import tapegrad.distributed as dist
from tapegrad import nn
from tapegrad.nn.parallel import DistributedDataParallel as DDP
from tapegrad.utils.data import DataLoader, TensorDataset
from tapegrad.utils.data.distributed import DistributedSampler

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def ranks():
    return dist.get_rank(), dist.get_world_size()


def same_on_every_rank(a, what):
    """a (an array) is bitwise the same on every rank."""
    got = [None] * dist.get_world_size()
    dist.all_gather_object(got, np.asarray(a))
    for r, b in enumerate(got):
        assert b.shape == got[0].shape and np.array_equal(b, got[0]), \
            f"{what}: rank {r} differs from rank 0"


# ---- collectives against numpy ----------------------------------------------------------------
def _contribution(r, dtype, shape=(3, 4)):
    base = np.arange(np.prod(shape)).reshape(shape) % 5 - 2
    return (base * (r + 1) + r).astype(dtype)


@case
def collectives_match_numpy():
    r, n = ranks()
    for dtype in (np.float32, np.float64, np.int64):
        parts = [_contribution(k, dtype) for k in range(n)]
        want = {dist.ReduceOp.SUM: np.sum(parts, axis=0), dist.ReduceOp.MAX: np.max(parts, 0),
                dist.ReduceOp.MIN: np.min(parts, 0),
                dist.ReduceOp.PRODUCT: np.prod(parts, axis=0)}
        if dtype != np.int64:
            want[dist.ReduceOp.AVG] = np.mean(parts, axis=0)
        for op, expect in want.items():
            for async_op in (False, True):
                t = torch.from_numpy(parts[r].copy())
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if async_op:
                    assert work.wait() is True and work.is_completed()
                else:
                    assert work is None
                np.testing.assert_allclose(t.numpy(), expect.astype(dtype), rtol=1e-6,
                                           err_msg=f"all_reduce {op} {dtype}")
            t = torch.from_numpy(parts[r].copy())
            dist.reduce(t, dst=n - 1, op=op)
            np.testing.assert_allclose(t.numpy(), expect.astype(dtype) if r == n - 1
                                       else parts[r], rtol=1e-6, err_msg=f"reduce {op}")
    for src in range(n):
        t = torch.from_numpy(_contribution(r, np.float64))
        dist.broadcast(t, src=src)
        np.testing.assert_array_equal(t.numpy(), _contribution(src, np.float64))
    # a non-contiguous tensor is reduced through a copy and written back in place
    big = torch.from_numpy(_contribution(r, np.float64, (4, 6)))
    view = big.t()
    dist.all_reduce(view)
    total = np.sum([_contribution(k, np.float64, (4, 6)) for k in range(n)], axis=0)
    np.testing.assert_array_equal(big.numpy(), total)
    # all_gather / gather / scatter
    mine = torch.from_numpy(_contribution(r, np.float32))
    out = [torch.zeros(3, 4) for _ in range(n)]
    dist.all_gather(out, mine)
    for k in range(n):
        np.testing.assert_array_equal(out[k].numpy(), _contribution(k, np.float32))
    out = [torch.zeros(3, 4) for _ in range(n)]
    dist.all_gather(out, mine, async_op=True).wait()
    np.testing.assert_array_equal(out[-1].numpy(), _contribution(n - 1, np.float32))
    dst = n - 1
    got = [torch.zeros(3, 4) for _ in range(n)] if r == dst else None
    dist.gather(mine, got, dst=dst)
    if r == dst:
        for k in range(n):
            np.testing.assert_array_equal(got[k].numpy(), _contribution(k, np.float32))
    t = torch.zeros(3, 4)
    pieces = [torch.full((3, 4), 10.0 + k) for k in range(n)] if r == 0 else None
    dist.scatter(t, pieces, src=0)
    np.testing.assert_array_equal(t.numpy(), np.full((3, 4), 10.0 + r, np.float32))
    objs = [None] * n
    dist.all_gather_object(objs, {"rank": r})
    assert objs == [{"rank": k} for k in range(n)]
    lst = [r, "x"] if r == 0 else [None, None]
    dist.broadcast_object_list(lst, src=0)
    assert lst == [0, "x"]
    dist.barrier()
    dist.barrier(async_op=True).wait()
    # the version counter moves, as for any in-place write
    t = torch.ones(2)
    v = t._version
    dist.all_reduce(t)
    assert t._version == v + 1


@case
def mismatched_tensors_raise_on_every_rank():
    r, n = ranks()
    for t, words in ((torch.ones(2 + r), "shape"), (torch.ones(3, dtype=torch.float64 if r
                                                                else torch.float32), "dtype")):
        for fn in (dist.all_reduce, lambda x: dist.broadcast(x, src=0)):
            try:
                fn(t)
            except ValueError as e:
                assert "the ranks passed different tensors" in str(e) and "rank 1" in str(e), e
            else:
                raise AssertionError(f"no error for tensors of different {words}")
    # and the group still works afterwards
    t = torch.ones(2)
    dist.all_reduce(t)
    assert t.tolist() == [float(n)] * 2


# ---- DistributedDataParallel -------------------------------------------------------------------
def _model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16, dtype=torch.float64), nn.Tanh(),
                         nn.Linear(16, 16, dtype=torch.float64), nn.ReLU(),
                         nn.Linear(16, 3, dtype=torch.float64))


def _data(rows):
    rng = np.random.default_rng(7)
    return (torch.tensor(rng.standard_normal((rows, 6))),
            torch.tensor(rng.standard_normal((rows, 3))))


@case
def ddp_gradient_equals_full_batch():
    r, n = ranks()
    model = _model(seed=100 + r)          # different on every rank until DDP broadcasts
    ddp = DDP(model, bucket_cap_mb=0.0005)
    assert [len(b.params) for b in ddp.reducer.buckets] == [3, 1, 2]
    ref = copy.deepcopy(model)
    X, Y = _data(12 * n)
    nn.functional.mse_loss(ref(X), Y).backward()
    per = X.shape[0] // n
    mine = slice(r * per, (r + 1) * per)
    nn.functional.mse_loss(ddp(X[mine]), Y[mine]).backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=0, atol=1e-12,
                                   err_msg=name)
        same_on_every_rank(p.grad.numpy(), f"grad of {name}")
    assert list(ddp.state_dict())[0] == "module.0.weight"
    assert ddp.module is model


@case
def ddp_training_keeps_replicas_identical():
    r, n = ranks()
    X, Y = _data(48)
    model = _model(seed=1)
    ref = copy.deepcopy(model)
    ddp = DDP(model, bucket_cap_mb=0.002)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    sampler = DistributedSampler(TensorDataset(X, Y), shuffle=True, seed=3)
    loader = DataLoader(TensorDataset(X, Y), batch_size=48 // (4 * n), sampler=sampler)
    whole = DistributedSampler(TensorDataset(X, Y), num_replicas=1, rank=0, shuffle=True,
                               seed=3)
    ref_loader = DataLoader(TensorDataset(X, Y), batch_size=48 // 4, sampler=whole)
    kept = None
    for epoch in range(5):
        sampler.set_epoch(epoch)
        whole.set_epoch(epoch)
        for (xb, yb), (xa, ya) in zip(loader, ref_loader):
            opt.zero_grad()
            nn.functional.mse_loss(ddp(xb), yb).backward()
            opt.step()
            if kept is None:    # a .grad kept from a step is never written by later ones
                kept = [(p.grad, p.grad.numpy().copy()) for p in model.parameters()]
            ref_opt.zero_grad()
            nn.functional.mse_loss(ref(xa), ya).backward()
            ref_opt.step()
    assert ddp.reducer.steps == (20 if n > 1 else 0)     # (a world of one has nothing to do)
    for g, was in kept:
        np.testing.assert_array_equal(g.numpy(), was)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        same_on_every_rank(p.detach().numpy(), f"parameter {name}")
        # the ranks' batches together are the one-process batch: same training, to rounding
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=0, atol=1e-10,
                                   err_msg=name)


@case
def ddp_no_sync_accumulates_locally():
    r, n = ranks()
    X, Y = _data(8 * n)
    model = _model(seed=2)
    ref = copy.deepcopy(model)
    ddp = DDP(model)
    halves = [slice(0, 4 * n), slice(4 * n, 8 * n)]
    for h in halves:        # one process: two accumulated mean-loss gradients
        nn.functional.mse_loss(ref(X[h]), Y[h]).backward()
    mine = [slice(h.start + r * 4, h.start + (r + 1) * 4) for h in halves]
    with ddp.no_sync():
        nn.functional.mse_loss(ddp(X[mine[0]]), Y[mine[0]]).backward()
    local = model[0].weight.grad.numpy().copy()
    if n > 1:               # nothing was communicated: the ranks still differ
        got = [None] * n
        dist.all_gather_object(got, local)
        assert not np.allclose(got[0], got[1])
    nn.functional.mse_loss(ddp(X[mine[1]]), Y[mine[1]]).backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=0, atol=1e-12,
                                   err_msg=name)


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 4, dtype=torch.float64)
        self.used_on_rank0 = nn.Linear(4, 1, dtype=torch.float64)
        self.never_used = nn.Linear(4, 1, dtype=torch.float64)
        self.other = nn.Linear(4, 1, dtype=torch.float64)

    def forward(self, x, rank):
        h = self.body(x)
        return (self.used_on_rank0 if rank == 0 else self.other)(h)


@case
def ddp_unused_parameters():
    r, n = ranks()
    torch.manual_seed(5)
    model = _TwoHeads()
    ddp = DDP(model, bucket_cap_mb=0.0001)
    x = torch.ones(2, 4, dtype=torch.float64) * (r + 1)
    ddp(x, r).sum().backward()
    assert model.never_used.weight.grad is None and model.never_used.bias.grad is None
    g = model.used_on_rank0.weight.grad
    assert g is not None       # set on every rank: rank 0's gradient averaged with zeros
    same_on_every_rank(g.numpy(), "a parameter only rank 0 used")
    same_on_every_rank(model.body.weight.grad.numpy(), "body")


@case
def ddp_broadcasts_buffers_and_starts_buckets_early():
    r, n = ranks()
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(3, 8, dtype=torch.float64),
                          nn.BatchNorm1d(8, dtype=torch.float64),
                          nn.Linear(8, 8, dtype=torch.float64), nn.Tanh(),
                          nn.Linear(8, 2, dtype=torch.float64))
    started = []            # registered before DDP's hooks, so it runs first
    first = model[0].weight
    ddp = None
    first.register_post_accumulate_grad_hook(lambda p: started.append(ddp.reducer.next))
    ddp = DDP(model, bucket_cap_mb=0.0001)
    x = torch.tensor(np.random.default_rng(r).standard_normal((5, 3)))
    ddp(x).sum().backward()
    # the first layer's weight is the last gradient backward finishes; by then the buckets
    # of the later layers are already being reduced
    assert started and started[0] >= 2, started
    # forward broadcast rank 0's running statistics before it ran (each rank's batch then
    # moved them); the next forward makes them rank 0's again
    with torch.no_grad():
        ddp(x)
    rm = model[1].running_mean.numpy().copy()
    got = [None] * n
    dist.all_gather_object(got, rm)
    assert not np.allclose(got[0], got[-1])       # this step's batches differed
    ddp.eval()
    ddp(x)
    same_on_every_rank(model[1].running_mean.numpy(), "running_mean after broadcast")


@case
def ddp_under_compile_runs_eagerly_and_still_averages():
    r, n = ranks()
    model = _model(seed=4)
    ref = copy.deepcopy(model)
    ddp = DDP(model)
    X, Y = _data(4 * n)
    nn.functional.mse_loss(ref(X), Y).backward()
    step = torch.compile(lambda x, y: nn.functional.mse_loss(ddp(x), y))
    mine = slice(4 * r, 4 * (r + 1))
    for i in range(2):                  # the first call traces, the second would replay
        model.zero_grad()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step(X[mine], Y[mine]).backward()
        if i == 0:                      # compile says once that it runs the function eagerly
            assert any("DistributedDataParallel" in str(w.message) for w in caught), \
                [str(w.message) for w in caught]
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=0, atol=1e-12,
                                       err_msg=name)


@case
def sampler_shards_are_disjoint_and_cover():
    r, n = ranks()
    for size in (10 * n, 10 * n + 1):
        s = DistributedSampler(range(size), shuffle=True, seed=11)
        s.set_epoch(2)
        shards = [None] * n
        dist.all_gather_object(shards, list(s))
        flat = [i for sh in shards for i in sh]
        assert len({len(sh) for sh in shards}) == 1
        assert set(flat) == set(range(size))
        if size % n == 0:
            assert len(flat) == size          # disjoint
        else:
            assert len(flat) - len(set(flat)) == n - size % n     # only the padding repeats


def main(argv):
    dist.init_process_group("mpi")
    names = list(CASES) if argv == ["all"] else argv
    for name in names:
        if name not in CASES:
            raise SystemExit(f"unknown case {name!r}; cases: {', '.join(CASES)}")
        CASES[name]()
        dist.barrier()
        if dist.get_rank() == 0:
            print(f"PASS {name}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
