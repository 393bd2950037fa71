"""``tapegrad.accelerator``: no accelerator; tapegrad computes on the CPU."""


def is_available():
    """False: tapegrad has no accelerator backend."""
    return False


def current_accelerator():
    """None, as PyTorch returns when no accelerator is available."""
    return None
