"""tapegrad.autograd: reverse-mode differentiation with torch.autograd's names.

One module per job:

- ``engine``: ``backward()`` and ``grad()``; seeds the roots, runs the compiled reverse
  sweep, and reads gradients out (the sweep stops only at records whose VJP runs in Python).
- ``recorded``: the reverse pass run as recorded ops, for ``create_graph=True``.
- ``function``: custom ``Function`` subclasses (a user's forward and backward, one record).
- ``hooks``: tensor and node hooks and their removable handles.
- ``anomaly_mode``: ``detect_anomaly`` / ``set_detect_anomaly``.
- ``gradcheck``: ``gradcheck`` / ``gradgradcheck`` against central differences.
- ``functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``.
"""
from .engine import AccumulateGrad, Node, backward, grad  # noqa: F401
from . import function  # noqa: F401
from .function import Function, FunctionCtx, InplaceFunction, once_differentiable  # noqa: F401
from .anomaly_mode import detect_anomaly, set_detect_anomaly  # noqa: F401
from .anomaly_mode import is_anomaly_enabled, is_anomaly_check_nan_enabled  # noqa: F401
from . import graph  # noqa: F401
from . import functional  # noqa: F401
from .gradcheck import gradcheck, gradgradcheck  # noqa: F401
