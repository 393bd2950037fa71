"""The compiled side of the engine: everything Numba compiles, one job per module.

    schema       the record's fields and bit layout, and their accessors
    opcodes      opcodes, what each VJP reads, the sweeps' status codes
    elementwise  the elementwise rules as compiled scalar functions (generated from
                 tapegrad/rules.py by tapegrad/codegen.py)
    maps         broadcast and reduction index maps
    fused        kernels of softmax and the cross entropies
    blas         matrix products: plain loops, or numpy's own BLAS called from compiled code
    reverse      the reverse sweep (backward)
    chains       decoded scalar chains for replayed programs
    forward      replay's forward sweep
    tangent      forward mode's tangent sweep
    program      a compiled program's reverse sweep, and its forward and backward in one
                 call
    memory       gradient layout, liveness, compaction and relocation of tapes
    cachekey     keys Numba's cache on all of these files at once
    tiers        a cold start's interpreted kernels while a warm-up process compiles

Python code uses this package's names (``from . import kernels as K``); the modules import
each other directly. Nothing here imports the rest of tapegrad.
"""
import sys

from . import cachekey

cachekey.install()   # before any kernel is decorated: their caches are made then

from . import opcodes, schema  # noqa: E402
from .schema import *  # noqa: E402,F401,F403 - the record layout, re-exported
from .opcodes import *  # noqa: E402,F401,F403 - the opcodes, re-exported
from .elementwise import _bin, _db, _du, _du1, _un, unary_values, vjp_values  # noqa: E402,F401
from .blas import GEMM, MM_BLAS, MM_LOOPS, MM_NUMPY, SMALL_MM, _mm_dims  # noqa: E402,F401
from .reverse import sweep  # noqa: E402,F401
from .chains import NPLAN, plan_chains  # noqa: E402,F401
from .forward import NUMPY_UFUNC, forward, to_numpy  # noqa: E402,F401
from .tangent import tangent  # noqa: E402,F401
from .program import program_reverse, value_and_grad  # noqa: E402,F401
from .memory import compact, grad_offsets, mark_live, relocate  # noqa: E402,F401

__all__ = schema.__all__ + opcodes.__all__ + [
    "_bin", "_db", "_du", "_du1", "_un", "unary_values", "vjp_values", "GEMM", "MM_BLAS",
    "MM_LOOPS", "MM_NUMPY",
    "SMALL_MM", "_mm_dims", "sweep", "NPLAN", "plan_chains", "NUMPY_UFUNC", "forward", "to_numpy",
    "tangent", "program_reverse", "value_and_grad", "compact", "grad_offsets", "mark_live", "relocate"]

from . import tiers  # noqa: E402

tiers.install(sys.modules[__name__])   # stubs in place of the entry points on a cold cache
