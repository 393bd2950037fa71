"""python -m bench [--quick] [--write docs/performance.md]: see bench/report.py."""
import sys

from bench.report import main

sys.exit(main())
