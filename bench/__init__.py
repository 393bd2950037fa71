"""Benchmarks (pytest-benchmark) and the report; see bench/conftest.py and bench/report.py."""
import os

# benchmarks time compiled kernels: unless told otherwise, they compile in this process at
# first use rather than running interpreted while a warm-up process compiles
# (tapegrad/kernels/tiers.py); bench/latency.py asks its fresh processes for that cold start
os.environ.setdefault("TAPEGRAD_BACKGROUND_COMPILE", "0")
