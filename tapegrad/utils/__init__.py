"""tapegrad.utils: helpers with torch.utils' names.

- ``checkpoint``: activation checkpointing (``checkpoint``, ``checkpoint_sequential``).
"""
from . import checkpoint

__all__ = ["checkpoint"]
