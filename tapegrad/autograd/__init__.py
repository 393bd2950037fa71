"""tapegrad.autograd: reverse-mode differentiation with torch.autograd's names.

One module per job:

- ``engine``: ``backward()`` and ``grad()``; seeds the roots, runs the compiled reverse
  sweep, and reads gradients out (the sweep stops only at records whose VJP runs in Python).
- ``function``: custom ``Function`` subclasses (a user's forward and backward, one record).
- ``recorded``: the reverse pass written as ops, for ``create_graph=True``.
- ``hooks``: tensor and node hooks and their removable handles.
- ``anomaly_mode``: ``detect_anomaly`` / ``set_detect_anomaly``.
- ``gradcheck``: ``gradcheck`` / ``gradgradcheck`` against central differences.
- ``functional``: ``jacobian``, ``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``.
"""
from .engine import AccumulateGrad, Node, backward, grad  # noqa: F401
