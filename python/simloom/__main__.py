"""``python -m simloom``: the command line (see :mod:`simloom.cli`)."""

import sys

from .cli import main

sys.exit(main())
