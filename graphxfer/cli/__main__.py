"""``python -m graphxfer.cli``: the ``graphxfer`` command line."""

import sys

from graphxfer.cli import main

sys.exit(main())
