"""Talk 01/03 - the source itself: SAST over the tree, signed commits, the GitHub workflows gate."""

from __future__ import annotations

from tasks.source import sast  # the SAST package: scope, one module per scanner, SCANNERS
from tasks.source.commits import STATUS, CommitCheck, check_range, default_range

__all__ = [
    "STATUS",
    "CommitCheck",
    "check_range",
    "default_range",
    "sast",
]
