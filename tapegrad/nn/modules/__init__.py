"""The nn layers, one file per family; each module class is exported by tapegrad.nn."""
from .module import Module  # noqa: F401
