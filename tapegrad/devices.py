"""Devices as PyTorch code names them. tapegrad computes on the CPU only: ``device("cpu")``
is the one device a tensor can live on; other device types PyTorch knows can be named (as
``torch.device("cuda")`` can on a machine without CUDA) but not used."""
import numpy as np

# the device types torch.device accepts, in its order
_KNOWN = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
          "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia",
          "privateuseone")


class DeviceUnavailable(RuntimeError, AssertionError):
    """A device other than the CPU was asked for. (PyTorch built without CUDA raises
    AssertionError here; this is both, so code catching either keeps working.)"""


class device:
    """``device("cpu")``, ``device("cpu", 0)``, ``device("cpu:0")``: where a tensor lives.

    >>> import tapegrad as tg
    >>> tg.device("cpu")
    device(type='cpu')
    >>> tg.ones(2).device == tg.device("cpu")
    True
    """
    __slots__ = ("_type", "_index")

    def __init__(self, type, index=None):  # noqa: A002 - PyTorch's argument name
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device")
            type, index = type._type, type._index
        elif isinstance(type, int) and not isinstance(type, bool):
            raise RuntimeError("Cannot access accelerator device when none is available.")
        elif not isinstance(type, str):
            raise TypeError(f"device(): argument 'type' must be str, not "
                            f"{type.__class__.__name__}")
        else:
            name, sep, num = type.partition(":")
            if sep:
                if index is not None or not num.isdigit():
                    raise RuntimeError(f"Invalid device string: '{type}'")
                index = int(num)
            if name not in _KNOWN:
                raise RuntimeError(f"Expected one of {', '.join(_KNOWN)} device type at start "
                                   f"of device string: {type}")
            type = name
        if index is not None:
            if not isinstance(index, int) or isinstance(index, bool):
                raise TypeError(f"device(): argument 'index' must be int, not "
                                f"{index.__class__.__name__}")
            if index < 0:
                raise RuntimeError("Device index must not be negative")
        self._type, self._index = type, index

    @property
    def type(self):
        return self._type

    @property
    def index(self):
        return self._index

    def __eq__(self, other):
        return isinstance(other, device) and (self._type, self._index) == \
            (other._type, other._index)

    def __hash__(self):
        return hash((self._type, self._index))

    def __str__(self):
        return self._type if self._index is None else f"{self._type}:{self._index}"

    def __repr__(self):
        if self._index is None:
            return f"device(type='{self._type}')"
        return f"device(type='{self._type}', index={self._index})"


CPU = device("cpu")


def check(dev, fn="this call"):
    """None or a CPU device (a device, "cpu", "cpu:0"): fine; any other device raises."""
    if dev is None:
        return
    d = dev if isinstance(dev, device) else device(dev)
    if d._type != "cpu":
        raise DeviceUnavailable(
            f"{fn}: tapegrad runs on the CPU only, so device '{d}' is not available; "
            f"use device='cpu' (or leave device out)")
    if d._index not in (None, 0):
        raise RuntimeError(f"{fn}: there is one CPU device (index 0), not '{d}'")


def to_arguments(args, dtype, dev, what):
    """(dtype, device) from ``to()``'s positional arguments (a dtype, a device or its name,
    a tensor: its dtype), over the keyword values; PyTorch's errors for anything else.
    Checks that the device is the CPU."""
    from .tensor import Tensor
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments ({len(args)} given)")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype if dtype is None else dtype
        elif isinstance(a, (str, device)):
            dev = a
        elif isinstance(a, (np.dtype, type)):
            dtype = a
        else:
            raise TypeError(f"to() received an invalid combination of arguments: "
                            f"{type(a).__name__} is neither a dtype, a device nor a tensor")
    check(dev, what)
    return dtype, dev
