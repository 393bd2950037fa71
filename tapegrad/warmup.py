"""Compile the kernels into Numba's cache, stage by stage, and mark each stage done.

    python -m tapegrad.warmup [stage ...]      (what ``tapegrad warmup`` runs)

Started in the background by the first call into the kernels on a cold cache
(kernels/tiers.py explains how the two processes meet); run in the foreground, it fills
the cache ahead of time (a container build, a cluster's shared install). Each stage runs
small programs through the public API, so the kernels compile for exactly the argument
types real calls use, then writes its marker file. With no arguments every stage runs.
"""
import os
import sys
import time

import numpy as np

import tapegrad as tg
from tapegrad import kernels
from tapegrad.kernels import tiers

_DTYPES = {"32": tg.float32, "64": tg.float64}


def _net(dt, create_graph=False):
    """An eager step touching every family of the sweep and the tape's memory kernels."""
    x = tg.randn(8, 6, dtype=dt)
    w = tg.randn(6, 5, dtype=dt, requires_grad=True)
    b = tg.randn(5, dtype=dt, requires_grad=True)
    h = (x @ w + b).tanh()
    loss = tg.nn.functional.cross_entropy(h, tg.arange(8) % 5) + (h * h).sum() \
        + tg.nn.functional.binary_cross_entropy_with_logits(h, tg.zeros(8, 5, dtype=dt)) \
        + h.reshape(40)[:7].exp().mean() + h.t().sigmoid().max() + h.erf().sum()
    if create_graph:
        g, = tg.autograd.grad(loss, w, create_graph=True)
        (g * g).sum().backward()
    else:
        loss.backward()
    return loss


def _eager(dt):
    for _ in range(3):
        _net(dt)
    _net(dt, create_graph=True)
    v = tg.ones(1, dtype=dt, requires_grad=True)
    for _ in range(4):          # a scalar chain
        v = (v * 1.01 + 0.1).tanh()
    v.sum().backward()
    # a tape past its collection threshold, with a graph still alive: liveness, compaction
    s = tg.ones(3, dtype=dt, requires_grad=True)
    keep = s * 2
    for _ in range(2100):
        (s * 1.5).sin()
    keep.sum().backward()


def _replay(dt):
    def f(w, x):
        return ((x @ w).tanh() * 1.01 + 0.1).sum()

    def chain(v):
        for _ in range(8):
            v = (v * 1.01 + 0.1).tanh()
        return v.sum()

    w = tg.randn(6, 5, dtype=dt, requires_grad=True)
    x = tg.randn(8, 6, dtype=dt)
    fc = tg.compile(f)
    for _ in range(2):
        tg.func.value_and_grad(fc)(w, x)
        fc(w, x).backward()
    v = tg.randn(1, dtype=dt, requires_grad=True)
    cc = tg.compile(chain)
    for _ in range(2):
        tg.func.value_and_grad(cc)(v)
        cc(v).backward()
    big = tg.randn(4096, dtype=dt, requires_grad=True)
    gc = tg.compile(lambda u: u.exp().sin().sum())
    tg.func.value_and_grad(gc)(big)
    gc(big).backward()
    tg.func.jvp(lambda u: (u * u).tanh().sum(), (x,), (tg.ones_like(x),))
    outer = tg.compile(lambda w, x: fc(w, x) * 2)     # a compiled call inlined in a trace
    tg.func.value_and_grad(outer)(w, x)


def run_stage(stage):
    family, bits = stage[:-2], stage[-2:]
    {"eager": _eager, "replay": _replay}[family](_DTYPES[bits])


def main(stages=None):
    """Compile `stages` (default: all, or the command line's) and mark each done; returns
    the exit status (2 for an unknown stage)."""
    stages = list(stages if stages is not None else sys.argv[1:]) or list(tiers.STAGES)
    bad = [s for s in stages if s not in tiers.STAGES]
    if bad:
        print(f"unknown stage(s) {', '.join(bad)}; the stages are {', '.join(tiers.STAGES)}",
              file=sys.stderr)
        return 2
    tiers.uninstall(kernels)        # compile here, whatever the stubs would do
    w = tiers.state()
    lock = w.path("lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if w.holder() is not None:
            print(f"another warm-up (pid {w.holder()}) is filling {w.folder}")
            return 0
        os.unlink(lock)            # its process is gone
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        for stage in stages:
            t = time.perf_counter()
            if not w.ready(stage):
                run_stage(stage)
                with open(w.path(stage), "w") as f:
                    f.write("compiled\n")
            print(f"{stage}: compiled ({time.perf_counter() - t:.1f} s)", flush=True)
    finally:
        os.unlink(lock)
    return 0


if __name__ == "__main__":
    try:
        os.nice(10)        # the user's own process comes first
    except (AttributeError, OSError):
        pass
    np.seterr(all="ignore")
    sys.exit(main())
