"""Grad mode: whether operations are recorded on the tape. Thread-local, like PyTorch."""
import functools
import threading

class _State(threading.local):
    enabled = True   # class default: each new thread starts with grad mode on


_state = _State()


def is_grad_enabled():
    """True when operations on tensors that require grad are being recorded (this thread)."""
    return _state.enabled


def _set(mode):
    _state.enabled = bool(mode)


class _Mode:
    """Base for the grad-mode switches: a context manager and a function decorator."""
    mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self.mode)
        return self

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(*self._args()):
                return fn(*args, **kwargs)
        return wrapper

    def _args(self):
        return ()


class no_grad(_Mode):
    """Stop recording operations in this thread while the block (or decorated call) runs.

    Results computed inside have ``requires_grad=False``; use it for evaluation and for
    optimizer updates such as ``w -= lr * w.grad``. Other threads are not affected.

    >>> import tapegrad as tg
    >>> w = tg.ones(3, requires_grad=True)
    >>> with tg.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """
    mode = False


class enable_grad(_Mode):
    """Turn recording back on inside a ``no_grad`` block (context manager or decorator).

    >>> import tapegrad as tg
    >>> w = tg.ones(3, requires_grad=True)
    >>> with tg.no_grad():
    ...     with tg.enable_grad():
    ...         y = w * 2
    >>> y.requires_grad
    True
    """
    mode = True


class set_grad_enabled(_Mode):
    """Set grad mode to ``mode`` for this thread; as a context manager it restores the
    previous mode on exit, and as a plain call it simply switches.

    >>> import tapegrad as tg
    >>> with tg.set_grad_enabled(False):
    ...     tg.is_grad_enabled()
    False
    """

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set(self.mode)

    def __enter__(self):
        return self

    def _args(self):
        return (self.mode,)

    def __call__(self, fn):
        _set(self._prev)  # used as a decorator: the switch applies only inside calls
        return super().__call__(fn)
