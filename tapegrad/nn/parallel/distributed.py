"""DistributedDataParallel: one model replica per MPI rank, gradients averaged.

Each rank runs the same module on its own part of the batch; after ``backward()`` every
parameter's ``.grad`` is the average of the ranks' gradients, so an optimizer step keeps
the replicas identical. With equal per-rank batches and a loss that is a mean over the
batch, that average is exactly the gradient of the whole global batch.
"""
import contextlib

from ... import grad_mode, tape as T
from ...distributed import collectives as _coll
from ...distributed.process_group import _group
from ..modules.module import Module
from .reducer import Reducer

_UNSUPPORTED = ("mixed_precision", "device_mesh", "delay_all_reduce_named_params",
                "param_to_hook_all_reduce", "bucket_cap_mb_list")


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the default process group.

    At construction rank 0's parameters and buffers are copied to every rank (and the ranks
    are checked to hold the same architecture). Each forward with grad mode on arms the
    reducer; the following ``backward()`` averages the gradients in buckets of about
    ``bucket_cap_mb`` MiB (default 25), overlapping the reduction with the rest of the
    backward sweep. Inside ``no_sync()`` gradients only accumulate locally; the first
    backward after it averages the accumulated ones. The wrapped module is ``.module``,
    and ``state_dict()`` keys start with ``module.`` as in PyTorch. ``tapegrad.compile``
    of a function that calls it runs that function eagerly, with compile's warning.

    Parameters that get no gradient in a backward are handled without
    ``find_unused_parameters`` (accepted, not needed): they take part with zeros and keep
    ``.grad = None`` if no rank used them. ``device_ids`` and ``output_device`` must be
    None or CPU: tapegrad runs on the CPU. ``gradient_as_bucket_view``, ``static_graph``
    and ``check_reduction`` are accepted and change nothing (a ``.grad`` that was None is
    always handed a view of its bucket).
    """

    def __init__(self, module, device_ids=None, output_device=None, dim=0,
                 broadcast_buffers=True, init_sync=True, process_group=None,
                 bucket_cap_mb=None, find_unused_parameters=False, check_reduction=False,
                 gradient_as_bucket_view=False, static_graph=False, **unsupported):
        super().__init__()
        bad = [k for k, v in unsupported.items() if k not in _UNSUPPORTED or v is not None]
        if bad:
            raise TypeError(f"DistributedDataParallel: unsupported argument(s) {bad}")
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps an nn.Module, not "
                            f"{type(module).__name__}")
        for name, val in (("device_ids", device_ids), ("output_device", output_device)):
            if val not in (None, [], "cpu") and val != ["cpu"]:
                raise ValueError(f"DistributedDataParallel: {name}={val!r}, but tapegrad runs "
                                 f"on the CPU; leave {name} out")
        if dim != 0:
            raise ValueError("DistributedDataParallel: only dim=0 is supported")
        g = _group(process_group)
        self.module = module
        d = self.__dict__
        d["_group_"] = g
        d["broadcast_buffers"] = bool(broadcast_buffers)
        d["require_backward_grad_sync"] = True
        d["find_unused_parameters"] = find_unused_parameters
        d["gradient_as_bucket_view"] = gradient_as_bucket_view
        d["static_graph"] = static_graph
        named = list(module.named_parameters())
        _coll._agree(g, "DistributedDataParallel: the module's parameters",
                     [(n, tuple(p.shape), p._data.dtype.str, p.requires_grad)
                      for n, p in named])
        params = [p for _, p in named if p.requires_grad]
        bufs = list(module.named_buffers())
        _coll._agree(g, "DistributedDataParallel: the module's buffers",
                     [(n, tuple(b.shape), b._data.dtype.str) for n, b in bufs])
        cap = 25 if bucket_cap_mb is None else bucket_cap_mb
        if not cap > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        if init_sync and g.size > 1:      # (shapes agreed just above: no check per tensor)
            with grad_mode.no_grad():
                for _, p in named:
                    _coll._broadcast(g, p, 0)
                for _, b in bufs:
                    _coll._broadcast(g, b, 0)
        d["reducer"] = Reducer(params, g, int(cap * (1 << 20)))

    def forward(self, *inputs, **kwargs):
        # a compiled replay would skip this method, and with it the arming: compile falls
        # back to running the function eagerly (with its warning) instead
        T.refuse_in_trace("DistributedDataParallel's forward (it arms the gradient "
                          "averaging, which a replay would skip)")
        g = self.__dict__["_group_"]
        if self.broadcast_buffers and g.size > 1:
            bufs = [b for _, b in self.module.named_buffers()]
            if bufs:       # (their shapes were checked to agree at construction)
                with grad_mode.no_grad():
                    for b in bufs:
                        _coll._broadcast(g, b, 0)
        if grad_mode.is_grad_enabled() and self.require_backward_grad_sync:
            self.reducer.arm()
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward only accumulates gradients locally (no communication); the
        first synced backward after it averages what has accumulated."""
        d = self.__dict__
        old = d["require_backward_grad_sync"]
        d["require_backward_grad_sync"] = False
        try:
            yield
        finally:
            d["require_backward_grad_sync"] = old

    def extra_repr(self):
        return ""
