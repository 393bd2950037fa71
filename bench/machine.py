"""Machine facts, library versions and thread settings, shared by the pytest suite and
the report. ``configure_threads()`` gives PyTorch as many intra-op threads as numpy's BLAS
has, so that no system gets more cores than another."""
import importlib
import os
import platform


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    return {"cpu": cpu_name(), "cores": os.cpu_count(),
            "platform": platform.platform(terse=True)}


def versions():
    out = {"python": platform.python_version()}
    for name in ("tapegrad", "numpy", "numba", "torch", "jax", "jaxlib", "autograd"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            out[name] = "not installed"
            continue
        v = getattr(mod, "__version__", None)
        if v is None:
            from importlib.metadata import version
            v = version(name)
        out[name] = v
    if "tapegrad" in out and out["tapegrad"] != "not installed":
        out["tapegrad"] += f" (git {tapegrad_commit()})"
    return out


def blas_threads():
    """Thread count of numpy's BLAS (what every system's matrix products should get)."""
    import numpy  # noqa: F401 - loads numpy's BLAS so threadpoolctl sees it
    from threadpoolctl import threadpool_info
    for pool in threadpool_info():
        if pool["user_api"] == "blas" and "numpy" in pool["filepath"]:
            return pool["num_threads"]
    return os.cpu_count()


def configure_threads():
    """Match torch's intra-op threads to numpy's BLAS threads; return a description."""
    n = blas_threads()
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
    return thread_settings()


def thread_settings():
    from threadpoolctl import threadpool_info
    s = {"numpy BLAS": blas_threads()}
    try:
        import torch
        s["torch intra-op"] = torch.get_num_threads()
        s["torch inter-op"] = torch.get_num_interop_threads()
    except ImportError:
        pass
    try:
        import numba
        s["numba"] = numba.config.NUMBA_NUM_THREADS
    except ImportError:
        pass
    s["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "(unset: XLA picks its own CPU threads)")
    s["pools"] = ", ".join(f"{p['internal_api']}:{p['prefix']}={p['num_threads']}"
                           for p in threadpool_info())
    return s


def tapegrad_commit():
    """The git commit tapegrad was measured at ('+' if tapegrad/ has uncommitted edits)."""
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tapegrad"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def openblas_kernel():
    """numpy's OpenBLAS kernel (its 'architecture'), and the override in force, if any."""
    from threadpoolctl import threadpool_info
    arch = [p.get("architecture") for p in threadpool_info() if p["internal_api"] == "openblas"]
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return (arch[0] if arch and arch[0] else "unknown") + (
        f" (forced by OPENBLAS_CORETYPE={forced}: not this CPU's best kernel)" if forced else "")


def blas():
    """Which library does each system's matrix products."""
    from tapegrad.kernels import GEMM
    how = "called from compiled code" if GEMM.any() else "through numpy (no bundled OpenBLAS)"
    out = [f"numpy, autograd: numpy's OpenBLAS, kernel {openblas_kernel()}; "
           f"tapegrad: the same library, {how}"]
    try:
        import torch
        out.append("torch: " + ("MKL" if torch.backends.mkl.is_available() else "its own BLAS")
                   + " on OpenMP threads")
    except ImportError:
        pass
    out.append("jax: XLA's CPU kernels (Eigen threads)")
    return "; ".join(out)


def describe():
    """One block of text: machine, versions, threads."""
    m = machine()
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
             "threads: " + "; ".join(f"{k} {v}" for k, v in thread_settings().items()),
             "matrix products: " + blas()]
    return "\n".join(lines)
