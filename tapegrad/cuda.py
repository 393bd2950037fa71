"""``tapegrad.cuda``: there is no CUDA here; tapegrad computes on the CPU."""


def is_available():
    """False: tapegrad has no GPU backend."""
    return False


def device_count():
    return 0
