"""The gradient reducer behind DistributedDataParallel: buckets, hooks, MPI.

The parameters are laid out, in reverse order of ``parameters()`` (about the order in
which backward produces their gradients), in a few flat buffers ("buckets") of one dtype
each: the first holds about 1 MiB, the rest up to ``bucket_cap_mb``. A hook on every
parameter puts its gradient into its bucket the moment the sweep has finished it (the
engine delivers such leaves mid-sweep); when a bucket is full it starts a non-blocking
``Iallreduce`` on it and the sweep goes on, so communication overlaps the rest of
backward. Buckets start in index order on every rank, whatever order the hooks fire in,
because MPI requires every rank to start collectives in the same order.

The hook is a gradient taker (see engine._deliver): when it is a parameter's only hook, the
engine hands it the gradient straight from the sweep's buffers, and it writes
(gradient + ``.grad``) / world_size into the bucket in one pass, instead of the engine
copying the gradient into ``.grad`` and the hook copying ``.grad`` into the bucket; the
sum over ranks is then already the average. When backward ends (a callback queued from
the first hook), buckets whose parameters got no gradient this time are started too, and
every reduction is waited for. A parameter whose ``.grad`` was None gets a view of its
bucket as its ``.grad`` (no copy); a bucket whose memory has been handed out so is not
written again: the next backward fills a new one, so a ``.grad`` kept from an earlier step
never changes under its holder. A parameter that had a ``.grad`` gets the average written
into it, in place, as accumulation would. Each bucket carries one extra element per
parameter, 1 where this rank produced or holds a gradient for it: after the sum it says
whether any rank did, and a parameter no rank used keeps ``.grad = None``, as in PyTorch.
"""
import time

import numpy as np

from ...autograd import engine
from ...tensor import Tensor

FIRST_BUCKET_BYTES = 1 << 20


class _Bucket:
    def __init__(self, params, dtype):
        self.params = params
        self.sizes = [p._data.size for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        self.numel = n
        self.flat = np.zeros(n + len(params), dtype)      # values, then the used flags
        self.lent = False             # some .grad is a view of flat
        self.ready = [False] * len(params)
        self.left = len(params)
        self.request = None

    def view(self, i):
        o = int(self.offsets[i])
        return self.flat[o:o + self.sizes[i]]

    def reset(self):
        if self.lent:
            self.flat = np.empty_like(self.flat)
            self.lent = False
        self.ready = [False] * len(self.params)
        self.left = len(self.params)
        self.request = None


def assign_buckets(params, cap_bytes, first_bytes=FIRST_BUCKET_BYTES):
    """Group params (already in reverse order) into buckets of one dtype, each closed once
    it holds at least its cap in bytes (the first bucket's: the smaller of first_bytes
    and cap_bytes); returns lists of parameters."""
    first_bytes = min(first_bytes, cap_bytes)
    buckets, open_by_dtype = [], {}
    for p in params:
        dt = p._data.dtype
        cur = open_by_dtype.get(dt)
        if cur is None:
            cur = open_by_dtype[dt] = [[], 0, first_bytes if not buckets else cap_bytes]
            buckets.append(cur)
        cur[0].append(p)
        cur[1] += p._data.nbytes
        if cur[1] >= cur[2]:
            del open_by_dtype[dt]
    return [b[0] for b in buckets]


class _Hook:
    """The reducer's hook on one parameter: a post-accumulate-grad hook that is also a
    gradient taker."""
    __slots__ = ("reducer",)

    def __init__(self, reducer):
        self.reducer = reducer

    def __call__(self, p):
        self.reducer.arrived(p, None)

    def take_gradient(self, p, g):
        r = self.reducer
        if not r.armed or isinstance(g, Tensor):     # (a Tensor: create_graph's gradient)
            return False
        r.arrived(p, g)
        return True


class Reducer:
    """Averages the gradients of `params` over the ranks of `group` after each backward.
    In a world of one process there is nothing to average: no hooks are registered."""

    def __init__(self, params, group, cap_bytes):
        from mpi4py import MPI
        self._MPI = MPI
        self.group = group
        self.buckets = [_Bucket(ps, ps[0]._data.dtype)
                        for ps in assign_buckets(list(reversed(params)), cap_bytes)]
        self.where = {}               # id(param) -> (bucket index, index in bucket)
        for b, bucket in enumerate(self.buckets):
            for i, p in enumerate(bucket.params):
                self.where[id(p)] = (b, i)
        self.armed = False
        self.queued = False
        self.next = 0                 # the next bucket to start
        self.comm_seconds = 0.0       # time spent in MPI calls and bucket copies
        self.steps = 0
        self.inv = 1.0 / group.size
        hook = _Hook(self)
        self.handles = ([p.register_post_accumulate_grad_hook(hook) for p in params]
                        if group.size > 1 else [])

    # ---- during backward --------------------------------------------------------------------
    def arm(self):
        """Forward ran with gradient sync on: the next backward reduces."""
        if not self.handles:
            return
        self.armed = True
        self.queued = False
        self.next = 0
        for b in self.buckets:
            b.reset()

    def arrived(self, p, g):
        """p's gradient for this backward is complete: g (taken from the engine, not yet
        in .grad), or None (already accumulated into .grad)."""
        if not self.armed:
            return
        if not self.queued:
            self.queued = True
            engine.queue_callback(self._finish)
        b, i = self.where[id(p)]
        bucket = self.buckets[b]
        if bucket.ready[i]:
            return
        t0 = time.perf_counter()
        view = bucket.view(i).reshape(p._data.shape)
        if g is None:
            np.multiply(p._grad._data, self.inv, out=view)
        elif p._grad is None:
            np.multiply(g, self.inv, out=view)
        else:
            np.add(p._grad._data, g, out=view)
            view *= self.inv
        bucket.flat[bucket.numel + i] = 1
        bucket.ready[i] = True
        bucket.left -= 1
        self._start_ready()
        self.comm_seconds += time.perf_counter() - t0

    def _start_ready(self, force=False):
        MPI, comm = self._MPI, self.group.comm
        while self.next < len(self.buckets):
            bucket = self.buckets[self.next]
            if bucket.left and not force:
                break
            for i, p in enumerate(bucket.params):
                if not bucket.ready[i]:       # no gradient from this backward
                    g = p._grad
                    if g is not None:         # (one accumulated under no_sync, say)
                        np.multiply(g._data.reshape(-1), self.inv, out=bucket.view(i))
                    else:
                        bucket.view(i)[...] = 0
                    bucket.flat[bucket.numel + i] = 1 if g is not None else 0
            bucket.request = comm.Iallreduce(MPI.IN_PLACE, bucket.flat, op=MPI.SUM)
            self.next += 1
        for bucket in self.buckets[:self.next]:   # let MPI make progress on started ones
            bucket.request.Test()

    def _finish(self):
        """End of backward: start what is left, wait, and write the averages into .grad."""
        if not self.armed:
            return
        t0 = time.perf_counter()
        self.armed = False
        self._start_ready(force=True)
        for bucket in self.buckets:
            bucket.request.Wait()
            used = bucket.flat[bucket.numel:]
            for i, p in enumerate(bucket.params):
                if not used[i]:
                    continue
                avg = bucket.view(i).reshape(p._data.shape)
                if p._grad is None:
                    p._grad = Tensor(avg)
                    bucket.lent = True
                else:
                    np.copyto(p._grad._data, avg)
        self.steps += 1
        self.comm_seconds += time.perf_counter() - t0
