"""One pass/fail row type for every stage that decides by checks, and one way to conclude.

verify, policy (admission), demo and workflows each produce a list of Check rows; conclude()
prints the table, writes the rows as JSON into the stage's evidence, names every failed check
in the stage's reason and returns the verdict. No checks at all is a failure, never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from tasks.core import atomic
from tasks.core.console import checks_table, console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import REPORT_MEDIA_TYPE


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str  # what was found
    expected: str = ""  # what had to happen, where the check compares against an expectation

    @property
    def shown(self) -> str:
        return f"expected: {self.expected} — got: {self.detail}" if self.expected else self.detail


def conclude(
    rec: StageRecord,
    title: str,
    checks: Sequence[Check],
    *,
    report: Path,
    document: Mapping[str, Any] | None = None,
) -> Verdict:
    """Table, JSON report (``document`` plus the rows), evidence, reason, verdict."""
    checks_table(title, [(c.name, c.passed, c.shown) for c in checks])
    failed = [c for c in checks if not c.passed]
    atomic.write_json(
        report, {**(document or {}), "passed": bool(checks) and not failed, "checks": [asdict(c) for c in checks]}
    )
    rec.add_output(report, REPORT_MEDIA_TYPE)
    rec.details["checks"] = {c.name: "pass" if c.passed else "fail" for c in checks}
    if not checks:
        rec.reason = f"{title}: no check ran, so nothing was shown to hold"
    elif failed:
        rec.reason = f"{len(failed)} of {len(checks)} check(s) failed: " + "; ".join(
            f"{c.name}: {c.detail}" for c in failed
        )
    else:
        console.print(f"[green]{escape(title)}: pass[/] — {len(checks)} checks")
        return "pass"
    console.print(f"[red]{escape(title)}: fail[/] — {escape(rec.reason)}", soft_wrap=True)
    return "fail"
