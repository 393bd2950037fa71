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
if set, replaces Numba's list, and this one with it.) When no locator of Numba's can write
(a read-only install and no writable user cache folder), ``TempDirLocator`` uses a folder
of the system's temporary directory and says so once.
"""
import glob
import hashlib
import os
import tempfile
import warnings

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
        for other in caching.CacheImpl._locator_classes + [TempDirLocator]:
            if other is cls:
                continue
            inner = other.from_function(py_func, py_file)
            if inner is not None:
                if other is TempDirLocator:
                    _say_where(inner.get_cache_path())
                return cls(inner)
        return None


class TempDirLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """The last resort: a folder of the system's temporary directory, when neither the
    package's own folder (a read-only install) nor Numba's user-wide cache folder is
    writable. Numba would otherwise refuse to decorate the kernels at all."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        self._cache_path = os.path.join(tempfile.gettempdir(), f"tapegrad-numba-cache-{uid}",
                                        self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


_SAID = []


def _say_where(path):
    if not _SAID:
        _SAID.append(path)
        warnings.warn(f"tapegrad: neither its install folder nor Numba's user cache folder is "
                      f"writable, so compiled kernels are cached in {os.path.dirname(path)} "
                      f"(set NUMBA_CACHE_DIR to choose a folder)", RuntimeWarning, stacklevel=2)


def cache_location(dispatcher):
    """The folder where Numba caches `dispatcher` (a kernel compiled with cache=True)."""
    impl = getattr(getattr(dispatcher, "_cache", None), "_impl", None)
    return None if impl is None else impl.locator.get_cache_path()


def install():
    """Put the locator first in Numba's list (once), before any kernel is decorated."""
    classes = caching.CacheImpl._locator_classes
    if KernelSourcesLocator not in classes:
        classes.insert(0, KernelSourcesLocator)
