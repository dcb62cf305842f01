"""``python -m edgeport.cli ...``: the same entry point as the ``edgeport`` script."""

import sys

from edgeport.cli import main

sys.exit(main())
