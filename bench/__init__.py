"""Benchmarks (pytest-benchmark) and the report; see bench/conftest.py and bench/report.py."""
import os

# benchmarks time compiled kernels: they compile in this process at first use rather than
# running interpreted while a warm-up process compiles (tapegrad/kernels/tiers.py);
# bench/latency.py measures that cold start in fresh processes of its own
os.environ["TAPEGRAD_BACKGROUND_COMPILE"] = "0"
