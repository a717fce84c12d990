"""Inline suppressions do not silence the gate: the policy's waivers are the one way to accept a finding.

bandit (`--ignore-nosec`), semgrep (`--disable-nosem`) and gosec (`-nosec`, which also covers
`//gosec:disable`) have a switch for that. shellcheck (`# shellcheck disable=`) and Regal
(`# regal ignore:`) have none, so they read a copy of the files with those directives taken
out of the comment, every line kept in place (a finding's file:line is the original's).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.core import atomic


@dataclass(frozen=True)
class InlineSuppression:
    comment: re.Pattern[str]  # where the tool's directive comment starts
    directive: re.Pattern[str]  # the part of it that silences a finding

    def remove_from(self, line: str) -> tuple[str, int]:
        start = self.comment.search(line)
        if start is None:
            return line, 0
        head, tail = line[: start.start()], line[start.start() :]
        kept, removed = self.directive.subn("", tail)
        if removed and not kept[start.end() - start.start() :].strip():
            # nothing left but `# shellcheck`: a directive with no key is itself an error
            kept = "#" + kept[len(kept.rstrip("\r\n")) :]
        return head + kept, removed


SHELLCHECK = InlineSuppression(re.compile(r"#\s*shellcheck\s"), re.compile(r"\bdisable=\S*"))
REGAL = InlineSuppression(re.compile(r"#\s*regal\s"), re.compile(r"\bignore:\S*"))


def neutralized_copy(root: Path, files: Sequence[str], dest: Path, suppression: InlineSuppression) -> int:
    """Copy ``files`` (repo-relative) under ``dest`` without ``suppression``'s directives.

    Returns how many directives were taken out (recorded in the evidence).
    """
    shutil.rmtree(dest, ignore_errors=True)
    removed = 0
    for name in files:
        text = (root / name).read_text(encoding="utf-8", errors="surrogateescape")
        lines = []
        for line in text.splitlines(keepends=True):
            kept, count = suppression.remove_from(line)
            lines.append(kept)
            removed += count
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(target, "".join(lines).encode("utf-8", errors="surrogateescape"))
    return removed
