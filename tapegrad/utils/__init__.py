"""tapegrad.utils: helpers with torch.utils' names.

- ``checkpoint``: activation checkpointing (``checkpoint``, ``checkpoint_sequential``).
"""
from . import checkpoint
from . import data

__all__ = ["checkpoint"]
