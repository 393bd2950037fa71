"""``python -m tapegrad``: the command line (see ``tapegrad --help``)."""
import sys

from tapegrad.cli import main

sys.exit(main())
