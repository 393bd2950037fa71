"""Key Numba's on-disk cache of the kernels on all their sources, not on one file each.

Numba keys a cached function on the contents of its own file only, so a cached sweep in
reverse.py would keep running after an edit of a rule it inlines from elementwise.py (a
stale compiled sweep, measured: it returns the old result). Every kernel module is
compiled with a locator whose source stamp is a hash of every ``.py`` file of this
package: editing any of them invalidates the cache of all of them.

The locator wraps whichever of Numba's own locators would have served the function (so
the cache stays where Numba puts it: ``__pycache__`` beside the file, or NUMBA_CACHE_DIR)
and changes only the stamp. It is consulted only for files of this package; every other
function in the process is cached as Numba always does. (``NUMBA_CACHE_LOCATOR_CLASSES``,
if set, replaces Numba's list, and this one with it.)
"""
import glob
import hashlib
import os

from numba.core import caching

_DIR = os.path.dirname(os.path.abspath(__file__))
_STAMP = []   # computed on first use: the kernel files do not change under a running process


def sources_hash():
    """A hash of the bytes of every kernel source file, in name order."""
    if not _STAMP:
        h = hashlib.sha256()
        for path in sorted(glob.glob(os.path.join(_DIR, "*.py"))):
            h.update(os.path.basename(path).encode())
            with open(path, "rb") as f:
                h.update(f.read())
        _STAMP.append(h.hexdigest())
    return _STAMP[0]


class KernelSourcesLocator(caching._CacheLocator):
    """A Numba cache locator for the kernels: another locator's place, this package's stamp."""

    def __init__(self, inner):
        self._inner = inner

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    def get_source_stamp(self):
        return ("tapegrad.kernels", sources_hash(), self._inner.get_source_stamp())

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _DIR:
            return None
        for other in caching.CacheImpl._locator_classes:
            if other is cls:
                continue
            inner = other.from_function(py_func, py_file)
            if inner is not None:
                return cls(inner)
        return None


def install():
    """Put the locator first in Numba's list (once), before any kernel is decorated."""
    classes = caching.CacheImpl._locator_classes
    if KernelSourcesLocator not in classes:
        classes.insert(0, KernelSourcesLocator)
