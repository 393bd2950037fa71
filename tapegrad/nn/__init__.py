"""Neural networks: ``Module`` and its layers, ``Parameter``, ``init``; the functional
forms of the layers, activations and losses are in ``tapegrad.nn.functional``."""
from . import functional  # noqa: F401
from . import init  # noqa: F401
from .parameter import Parameter  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import Module  # noqa: F401
