"""Talk 01/03 - the source itself: SAST over the tree, signed commits, the GitHub workflows gate."""

from __future__ import annotations

from tasks.source.commits import STATUS, CommitCheck, check_range, default_range
from tasks.source.sast import RULE_PREFIX, run_bandit, run_semgrep, semgrep_rule_id, targets

__all__ = [
    "RULE_PREFIX",
    "STATUS",
    "CommitCheck",
    "check_range",
    "default_range",
    "run_bandit",
    "run_semgrep",
    "semgrep_rule_id",
    "targets",
]
