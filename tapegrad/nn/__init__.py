"""Neural-network helpers. ``tapegrad.nn.functional`` holds the losses and activations."""
from . import functional  # noqa: F401
