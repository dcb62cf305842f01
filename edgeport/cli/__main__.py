"""``python -m edgeport.cli ...``: the same entry point as the ``edgeport`` script."""

import sys

from edgeport.cli import main

if __name__ == "__main__":  # not again in a spawned child process (quantize/strategy/ahead.py)
    sys.exit(main())
