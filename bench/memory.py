"""Memory: tapegrad's tape bytes per record, and each system's peak memory on W5.

``tape_per_record`` builds W2's (or W3's) graph and reads ``tapegrad.tape_size()``
before backward. ``peak`` runs one system in a fresh process: it builds the case (data,
parameters) and runs the measured step once, the same for every system (compiled code
loaded, JAX compiled, the first step's allocations made: tapegrad's arena and PyTorch's
and JAX's allocator caches grown, ``.grad`` filled), so the resident set size after that
is the baseline; then the kernel's high-water mark is reset (``/proc/self/clear_refs``)
and a few more forward+backward steps run. It reports the peak above the baseline (what
a step needs beyond what a warmed-up process already holds) and what stayed resident
afterwards (MB).

    python -m bench.memory W5 tapegrad-f32

``checkpoint_chain`` compares a deep chain of ``tanh(h * w + 0.1)`` layers recorded as
usual with the same chain under ``tapegrad.utils.checkpoint.checkpoint_sequential``: the
tape after forward, the peak of tape bytes over the whole forward+backward (the thread's
tape plus the scratch tape a checkpoint runs on while it recomputes, sampled at every
layer), and each variant's peak resident memory in a fresh process.

    python -m bench.memory checkpoint [depth width segments]
"""
import json
import subprocess
import sys

from bench import machine, workloads as W

MB = 1 << 20


def tape_per_record(key="W2"):
    """{system: (records, bytes)} of tapegrad's tape holding `key`'s graph."""
    import tapegrad
    out = {}
    for system in ("tapegrad-f32", "tapegrad-f64"):
        case = W.build(key, system)
        case.warm("fb")
        loss = case.forward()
        out[system] = tapegrad.tape_size()
        case.backward(loss)
        del loss
    return out


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _measure(key, system, steps):
    machine.configure_threads()
    case = W.build(key, system)
    case.warm("fb")           # every system: the measured step once, before the baseline
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                          # reset VmHWM to the current RSS
    for _ in range(steps):
        case.run()
    return {"peak_mb": (_status_kb("VmHWM") - base) * 1024 / MB,
            "retained_mb": (_status_kb("VmRSS") - base) * 1024 / MB,
            "baseline_mb": base * 1024 / MB}


def peak(key, system, steps=3):
    """Peak and retained memory of `steps` runs of `key` by `system`, in a new process."""
    out = subprocess.run([sys.executable, "-m", "bench.memory", key, system, str(steps)],
                         capture_output=True, text=True, check=True,
                         cwd=_root())
    return json.loads(out.stdout.splitlines()[-1])


def _root():
    import os
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- checkpointing: a deep chain recorded as usual and under checkpoint_sequential ----
def _chain_step(depth, width, segments, sample=None):
    """One forward+backward of the chain (segments=0: no checkpoints); returns the tape's
    (records, bytes) after the forward."""
    import numpy as np
    import tapegrad as tg
    from tapegrad.utils.checkpoint import checkpoint_sequential
    rng = np.random.default_rng(W.SEED)
    x = tg.tensor(rng.standard_normal(width).astype(np.float32), requires_grad=True)
    ws = [tg.tensor((0.5 * rng.standard_normal(width)).astype(np.float32),
                    requires_grad=True) for _ in range(depth)]

    def layer(w):
        def run(h):
            h = tg.tanh(h * w + 0.1)
            if sample is not None:
                sample()
            return h
        return run
    fns = [layer(w) for w in ws]
    if segments:
        loss = checkpoint_sequential(fns, segments, x, use_reentrant=False).sum()
    else:
        h = x
        for f in fns:
            h = f(h)
        loss = h.sum()
    after = tg.tape_size()
    loss.backward()
    return after


def _chain_tape(depth, width, segments):
    """{records, bytes after forward, peak tape bytes} of one step, on a fresh thread's tape."""
    import threading
    from tapegrad import tape as T
    res = {}

    def body():
        home = T.current()
        peak = [0]

        def sample():       # inside a checkpoint the current tape is its scratch tape
            cur = T.current()
            peak[0] = max(peak[0], home.nbytes() + (cur.nbytes() if cur is not home else 0))
        records, nbytes = _chain_step(depth, width, segments, sample)
        res.update(records_after_forward=records, bytes_after_forward=nbytes,
                   peak_tape_bytes=max(peak[0], nbytes))
    t = threading.Thread(target=body)
    t.start()
    t.join()
    return res


def _chain_rss(depth, width, segments):
    """Peak resident memory of one step above the process before it (MB); the compiled
    code is loaded first by a small step."""
    machine.configure_threads()
    _chain_step(4, 16, 2 if segments else 0)
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    _chain_step(depth, width, segments)
    return {"peak_rss_mb": (_status_kb("VmHWM") - base) * 1024 / MB}


def checkpoint_chain(depth=400, width=4096, segments=20):
    """{"recorded": ..., "checkpointed": ...} for a chain of `depth` float32 layers of
    `width` elements, checkpointed in `segments` parts: tape records and bytes after the
    forward, peak tape bytes, and peak RSS (MB) of a fresh process."""
    out = {}
    for name, segs in (("recorded", 0), ("checkpointed", segments)):
        r = _chain_tape(depth, width, segs)
        p = subprocess.run([sys.executable, "-m", "bench.memory", "checkpoint-rss",
                            str(depth), str(width), str(segs)],
                           capture_output=True, text=True, check=True, cwd=_root())
        r.update(json.loads(p.stdout.splitlines()[-1]))
        out[name] = r
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["checkpoint-rss"]:
    print(json.dumps(_chain_rss(*(int(v) for v in sys.argv[2:5]))))
elif __name__ == "__main__" and sys.argv[1:2] == ["checkpoint"]:
    print(json.dumps(checkpoint_chain(*(int(v) for v in sys.argv[2:5])), indent=1))
elif __name__ == "__main__":
    key, system = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(json.dumps(_measure(key, system, steps)))
