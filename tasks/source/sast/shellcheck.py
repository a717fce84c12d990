"""Shell: shellcheck over every shell script in scope (by extension or shebang: bootstrap.sh, .ci/run).

shellcheck has no SARIF; its json1 report is mapped once into findings (error -> high,
warning -> medium, info -> low, style -> info) and written back out as out/sast/shellcheck.sarif.
`--norc`: no .shellcheckrc in the tree is read; SHELLCHECK_OPTS is dropped by the runner; and
it reads a copy without `# shellcheck disable=` directives (suppressions.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.policy.findings import Finding, Severity
from tasks.source.sast.converted import as_sarif, keep_report
from tasks.source.sast.suppressions import SHELLCHECK, neutralized_copy

LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "info": Severity.LOW, "style": Severity.INFO}


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    copy = ctx.stage_dir("sast") / "shellcheck-src"
    rec.details.setdefault("inline_suppressions_ignored", {})["shellcheck"] = neutralized_copy(
        ctx.root, files, copy, SHELLCHECK
    )
    tool = ctx.tool("shellcheck")
    done = runner.run(rec, tool, ["--norc", "--format", "json1", *files], cwd=copy, check=False)
    if done.returncode not in (0, 1):  # 1: issues found; 2: a file could not be read; 3/4: usage
        raise InputError(f"shellcheck exited {done.returncode}: {done.tail()}")
    keep_report(ctx, rec, "shellcheck.json", done.stdout)
    try:
        comments = json.loads(done.stdout)["comments"]
        findings = [
            Finding(
                tool="shellcheck",
                rule=f"SC{c['code']}",
                severity=LEVELS.get(str(c["level"]), Severity.MEDIUM),
                location=f"{c['file']}:{c['line']}",
                message=str(c["message"]),
                path=str(c["file"]),
            )
            for c in comments
        ]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"shellcheck's json1 report does not parse ({type(exc).__name__}: {exc})") from None
    return as_sarif(ctx, rec, tool, findings)
