"""A cold start without the wait: interpreted kernels while another process compiles them.

With an empty Numba cache the first backward used to compile the whole reverse sweep in
the user's process (about 20 s here), and the first replay the forward and program kernels
too. Instead, when the cache has not been filled yet, the package's entry points (the
kernels Python calls: ``ENTRIES``) start as stubs that

- start, once, a warm-up process (``python -m tapegrad.warmup``) which compiles the
  kernels into the same cache, stage by stage (``STAGES``: the eager sweep in float32 and
  in float64, then the replay kernels), and leaves a marker file in the cache folder after
  each stage;
- run each call on the same kernels' Python code (the source modules imported a second
  time with ``NUMBA_DISABLE_JIT``'s switch on: the path the pure-Python test run checks,
  so the results are the compiled ones to rounding) until the stage of that call is
  marked done, then load the compiled kernel from the cache and put it in the stub's place,
  so a warm process calls Numba's dispatcher directly;
- wait for the stage instead when the call is too large to interpret (its estimated Python
  time exceeds ``INTERPRET_BUDGET`` seconds): a large network's step runs compiled.

A warm cache (every stage marked) costs one file test per entry point at its first call.
One warm-up runs at a time per cache folder (a lock file holds its pid); it keeps going
after the process that started it exits, so the next run starts warm. If it fails, the
stubs compile in this process as before, with a warning naming its log.

``TAPEGRAD_BACKGROUND_COMPILE=0`` turns all of this off (the first call compiles, in this
process); ``tapegrad warmup`` runs the warm-up in the foreground. This module imports
nothing of tapegrad outside the kernels.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
import time
import warnings

import numba
import numpy as np

from . import cachekey
from .schema import SIZE

STAGES = ("eager32", "eager64", "replay32", "replay64")
INTERPRET_BUDGET = 1.0   # s: a call estimated to take longer in Python waits for the compiler
# the Python kernels' cost, measured here: about 150 us a record and 5 us an element
_PER_RECORD, _PER_ELEMENT = 1.5e-4, 5e-6


def _dt_at(i):
    return lambda args: int(args[i])


def _dt_of_array(i):
    return lambda args: 0 if args[i].dtype == np.float32 else 1


def _none(args):
    return 0


def _sweep_rows(args):       # sweep(R, ..., start, stop, ...): records stop..start
    return args[0][args[11]:args[10] + 1]


def _all_rows(args):
    return args[0]


def _no_rows(args):
    return None


# entry point -> (family, dtype code of a call, the records a call walks: its cost)
ENTRIES = {
    "sweep": ("eager", _dt_at(12), _sweep_rows),
    "grad_offsets": ("eager", _none, _no_rows),
    "mark_live": ("eager", _none, _no_rows),
    "compact": ("eager", _none, _no_rows),
    "relocate": ("eager", _none, _no_rows),
    "_mm_dims": ("eager", _none, _no_rows),
    "unary_values": ("eager", _dt_of_array(1), _no_rows),
    "vjp_values": ("eager", _dt_of_array(1), _no_rows),
    "to_numpy": ("replay", _dt_at(2), _no_rows),
    "forward": ("replay", _dt_at(6), _all_rows),
    "tangent": ("replay", _dt_at(7), _all_rows),
    "program_reverse": ("replay", _dt_at(12), _all_rows),
    "value_and_grad": ("replay", _dt_at(13), _all_rows),
    "plan_chains": ("replay", _dt_at(4), _all_rows),
}


def enabled():
    # POSIX only: the liveness test of the lock's holder is os.kill(pid, 0), which on
    # Windows would end that process
    return (not numba.config.DISABLE_JIT and os.name == "posix"
            and os.environ.get("TAPEGRAD_BACKGROUND_COMPILE", "1") != "0"
            and os.environ.get("TAPEGRAD_WARMUP_CHILD") != "1")


def _key():
    """What the cache's contents depend on: the kernel sources, Numba, Python, the CPU."""
    import hashlib

    from numba.core.registry import cpu_target
    magic = cpu_target.target_context.codegen().magic_tuple()
    text = repr((cachekey.sources_hash(), numba.__version__, sys.version_info[:2], magic))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Warmup:
    """The state of this process's view of the warm-up: markers, lock, child process."""

    def __init__(self, folder):
        self.folder = folder
        self._key = None
        self.child = None          # the warm-up process this one started
        self.owner = os.getpid()   # the process that started it (a fork cannot reap it)
        self.failed = False
        self.started = False
        self._lock = threading.Lock()
        self._ready = set()

    def path(self, what):
        if self._key is None:
            self._key = _key()
        return os.path.join(self.folder, f"tapegrad-warm-{self._key}-{what}")

    def ready(self, stage):
        if stage in self._ready:
            return True
        if os.path.exists(self.path(stage)):
            self._ready.add(stage)
            return True
        return False

    def holder(self):
        """pid of the live process holding the warm-up lock, or None."""
        try:
            with open(self.path("lock")) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        if pid <= 0:
            return None
        if self.child is not None and pid == self.child.pid and os.getpid() == self.owner:
            return pid if self._child_running() else None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except OSError:      # alive, another user's (or no permission to ask)
            return pid
        return pid

    def start(self, first):
        """Start the warm-up process (once), with stage `first` first."""
        with self._lock:
            if self.started:
                return
            self.started = True
            if self.holder() is not None:
                return          # another process's warm-up is filling this cache
            order = [first] + [s for s in STAGES if s != first]
            env = dict(os.environ, TAPEGRAD_WARMUP_CHILD="1")
            # run from the folder holding this tapegrad, so `-m` imports this one (a
            # checkout, a copy on sys.path) and not another; an installed one is found
            # from anywhere, and site-packages is not put before the standard library
            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            site = os.path.basename(root) in ("site-packages", "dist-packages")
            try:
                log = open(self.path("log"), "w")
                self.child = subprocess.Popen(
                    [sys.executable, "-m", "tapegrad.warmup", *order], env=env,
                    cwd=self.folder if site else root, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                log.close()
            except OSError as e:
                self._fail(f"could not start the warm-up process ({e})")

    def alive(self):
        """Is a warm-up still working on this cache (ours, or another process's)?"""
        if self.failed:
            return False
        if self.holder() is not None:
            return True
        return self._child_running()     # started, not yet holding the lock

    def _child_running(self):
        """Is the warm-up this process started still running? (poll reaps it when done;
        a forked process cannot, and asks the lock's pid instead)"""
        return self.child is not None and os.getpid() == self.owner and self.child.poll() is None

    def settled(self, stage):
        """Is stage compiled (or will this process have to compile it itself)?"""
        if self.ready(stage):
            return True
        if not self.started:
            return False
        if self.alive():
            return False
        if self.ready(stage):    # finished between the two tests
            return True
        self._fail(f"the warm-up process stopped before compiling {stage!r} "
                   f"(its log: {self.path('log')})")
        return True

    def wait(self, stage):
        while not self.settled(stage):
            time.sleep(0.05)

    def _fail(self, why):
        if not self.failed:
            self.failed = True
            warnings.warn(f"tapegrad: {why}; compiling the kernels in this process instead",
                          RuntimeWarning, stacklevel=4)


_STATE = []          # [Warmup]: made at the first stub call
_TWIN = {}           # entry name -> its Python function


def state():
    if not _STATE:
        from . import reverse
        _STATE.append(Warmup(cachekey.cache_location(reverse.sweep)))
    return _STATE[0]


def _interpreted(name):
    """The Python function of entry `name`: the kernel modules imported again, as plain
    Python (Numba's DISABLE_JIT switch on while they execute), into a package of their own."""
    with _TWIN_LOCK:
        if not _TWIN:
            _import_interpreted()
    return _TWIN[name]


_TWIN_LOCK = threading.Lock()


def _import_interpreted():
    """Import the kernel modules again as tapegrad._interpreted_kernels.*, as plain Python."""
    here = os.path.dirname(os.path.abspath(__file__))
    pkg = "tapegrad._interpreted_kernels"
    spec = importlib.util.spec_from_file_location(
        pkg, os.path.join(here, "opcodes.py"), submodule_search_locations=[here])
    sys.modules[pkg] = importlib.util.module_from_spec(spec)   # empty: no __init__ runs
    was = numba.config.DISABLE_JIT
    numba.config.DISABLE_JIT = True
    try:
        mods = [importlib.import_module(f"{pkg}.{m}")
                for m in ("reverse", "memory", "blas", "elementwise", "forward", "tangent",
                          "program", "chains")]
    finally:
        numba.config.DISABLE_JIT = was
    for entry in ENTRIES:
        _TWIN[entry] = next(getattr(m, entry) for m in mods if hasattr(m, entry))


def _stage(family, dt):
    return f"{family}{32 if dt == 0 else 64}"


def _cost(rows):
    if rows is None:
        return 0.0
    return _PER_RECORD * rows.shape[0] + _PER_ELEMENT * float(rows[:, SIZE].sum())


def _stub(package, name, compiled):
    family, dt_of, rows_of = ENTRIES[name]
    stages = {_stage(family, 0), _stage(family, 1)} if dt_of is not _none \
        else {_stage(family, 0)}

    def call(*args):
        w = state()
        stage = _stage(family, dt_of(args))
        if not w.settled(stage):
            w.start(stage)
            if _cost(rows_of(args)) > INTERPRET_BUDGET:
                w.wait(stage)
            elif not w.settled(stage):
                return _interpreted(name)(*args)
        if all(w.settled(s) for s in stages):
            setattr(package, name, compiled)    # every later call goes straight to Numba
        return compiled(*args)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = compiled.__doc__
    call.compiled = compiled
    return call


def uninstall(package):
    """Put the compiled entry points back (the warm-up process compiles them itself)."""
    for name in ENTRIES:
        compiled = getattr(getattr(package, name), "compiled", None)
        if compiled is not None:
            setattr(package, name, compiled)


def install(package):
    """Put a stub in place of each entry point of `package` (tapegrad.kernels), if enabled."""
    if not enabled():
        return
    for name in ENTRIES:
        setattr(package, name, _stub(package, name, getattr(package, name)))
