"""Anomaly mode: find the op whose backward produced NaN, and where its forward ran.

While it is on, every record appended to any tape also keeps the stack of the code that
made it (``Tape.traces``), and backward runs each record's VJP on its own and checks the
gradients it produced: the first NaN raises ``Function 'LogBackward0' returned nan values
in its 0th output.`` after a warning that shows the forward's traceback. Off by default;
when off, ``Tape.append`` is the plain method and backward is unchanged (the engine tests
one flag).

Like PyTorch's, the flag is process-wide (not per thread).
"""
import traceback
import warnings

from .. import tape as T

_plain_append = T.Tape.append


class _State:
    enabled = False
    check_nan = True


state = _State()


def _append_traced(self, *args, **kwargs):
    gid = _plain_append(self, *args, **kwargs)
    self.traces[gid] = traceback.extract_stack()[:-2]
    return gid


def _set(mode, check_nan=True):
    state.enabled = bool(mode)
    state.check_nan = bool(check_nan)
    T.Tape.append = _append_traced if state.enabled else _plain_append


def is_anomaly_enabled():
    """True while anomaly detection is on."""
    return state.enabled


def is_anomaly_check_nan_enabled():
    return state.enabled and state.check_nan


class set_detect_anomaly:
    """Turn anomaly detection on or off: as a call (``set_detect_anomaly(True)``) or as a
    context manager that restores the previous setting on exit."""

    def __init__(self, mode, check_nan=True):
        self.prev = (state.enabled, state.check_nan)
        _set(mode, check_nan)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set(*self.prev)
        return False


class detect_anomaly:
    """Context manager (or decorator) that turns anomaly detection on for its block.

    >>> import tapegrad as tg
    >>> x = tg.tensor([-1.0], requires_grad=True)
    >>> with tg.autograd.detect_anomaly():           # doctest: +SKIP
    ...     tg.sqrt(x).sum().backward()
    RuntimeError: Function 'SqrtBackward0' returned nan values in its 0th output.
    """

    def __init__(self, check_nan=True):
        self.check_nan = check_nan
        warnings.warn("Anomaly Detection has been enabled. This mode will increase the "
                      "runtime and should only be enabled for debugging.", UserWarning,
                      stacklevel=2)

    def __enter__(self):
        self.prev = (state.enabled, state.check_nan)
        _set(True, self.check_nan)
        return self

    def __exit__(self, *exc):
        _set(*self.prev)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(self.check_nan):
                return fn(*args, **kwargs)
        return wrapper


def nan_error(tp, gid, name, index):
    """The error for record `gid`'s VJP producing NaN in its input `index`, after warning
    with the traceback of the forward call that recorded it."""
    stack = tp.traces.get(gid)
    where = "".join(traceback.format_list(stack)) if stack else \
        "  (recorded before anomaly detection was enabled)\n"
    warnings.warn(f"Error detected in {name}. Traceback of forward call that caused the "
                  f"error:\n{where}", UserWarning, stacklevel=4)
    return RuntimeError(f"Function '{name}' returned nan values in its {index}th output.")
