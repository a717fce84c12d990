"""`python -m tasks <stage> [args]`: the one entry point the nox sessions call."""

from __future__ import annotations

import sys

from tasks.cli import main

sys.exit(main(sys.argv[1:]))
