"""nox -s workflows"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks.context import Context
from tasks.core.checks import conclude
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.source.workflows import check, checks


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s workflows",
        description="actionlint + zizmor (offline, auditor) + session parity + SHA pins over .github/",
    ).parse_args(argv)
    problems, summary = check(ctx, rec)
    rec.details.update(
        {
            "workflows": summary["workflows"],
            "sessions_run": summary["sessions_run"],
            "suppressions": summary["suppressions"],
            "problems": len(problems),
        }
    )
    console.print(
        "  [dim]actionlint: shellcheck and pyflakes integrations off (not pinned in tools.lock)[/]", soft_wrap=True
    )
    for item in summary["suppressions"]:
        console.print(
            escape(f"  suppressed: zizmor {item['rules']} at {item['file']}:{item['line']}: {item['reason']}"),
            soft_wrap=True,
        )
    for problem in problems:
        console.print(f"  [red]{escape(str(problem))}[/]", soft_wrap=True)
    report = ctx.stage_dir("workflows") / "checks.json"
    return conclude(rec, f"workflows ({len(summary['workflows'])} files)", checks(problems), report=report)
