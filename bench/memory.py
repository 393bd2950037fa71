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


if __name__ == "__main__":
    key, system = sys.argv[1], sys.argv[2]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(json.dumps(_measure(key, system, steps)))
