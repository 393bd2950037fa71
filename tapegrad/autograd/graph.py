"""tapegrad.autograd.graph: the graph's node types and hook handles, by torch's names."""
from ..node import AccumulateGrad, Node  # noqa: F401
from .hooks import RemovableHandle  # noqa: F401
