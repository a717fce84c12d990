"""nox -s workflows"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.source.workflows import check, reason


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
    if not problems:
        console.print(
            f"[green]workflows: pass[/] — {len(summary['workflows'])} workflows: actionlint and zizmor clean, "
            "every session exists, ci.yml runs every required stage, every action pinned",
            soft_wrap=True,
        )
        return "pass"
    for problem in problems:
        console.print(f"  [red]{escape(str(problem))}[/]", soft_wrap=True)
    rec.reason = f"{len(problems)} workflow problem(s): {reason(problems)}"
    return "fail"
