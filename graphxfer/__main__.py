"""``python -m graphxfer``: the ``graphxfer`` command line."""

import sys

from graphxfer.cli import main

sys.exit(main())
