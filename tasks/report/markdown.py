"""The report's markdown twin: the CI job summary (`nox -s summary`, `nox -s report -- --format markdown`).

Markdown renders HTML, so every value from the evidence is escaped here too (and `|` kept out of cells).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from tasks.report.model import Report

VERDICT_ICON = {"pass": "✅", "fail": "❌", "error": "❌", "skipped": "⚠️"}


def cell(value: object) -> str:
    return escape(str(value), quote=False).replace("|", "&#124;").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def render(report: Report) -> str:
    run = report.run
    lines = [
        "### secure-iot pipeline",
        "",
        f"commit `{cell(run['commit'])}` · {cell(run['when'])} · {cell(run['where'])} · signer: {cell(run['signer'])}",
        "",
    ]
    lines += _table(
        ("stage", "verdict", "duration", "tools", "notes"),
        (
            [
                cell(s.name),
                f"{VERDICT_ICON.get(s.verdict, '')} {cell(s.verdict)}" + (" (up to date)" if s.up_to_date else ""),
                f"{s.duration_s:.1f}s",
                cell(", ".join(f"{t} {v}" for t, v in s.tools.items())),
                cell("; ".join(s.notes)),
            ]
            for s in report.stages
        ),
    )
    if report.sast_counts:
        c = report.sast_counts
        lines += [
            "",
            f"**SAST** (threshold {cell(c['threshold'])}): {c['blocking']} blocking, {c['waived']} waived, "
            f"{c['below_threshold']} below the threshold",
        ]
        if report.sast:
            lines += [
                "",
                *_table(
                    ("rule", "file:line", "severity", "decision"),
                    (
                        [cell(f["rule"]), cell(f["location"]), cell(f["severity"]), cell(f["decision"])]
                        for f in report.sast
                    ),
                ),
            ]
    if report.severity_counts:
        counts = ", ".join(f"{n} {s}" for s, n in report.severity_counts.items())
        lines += ["", f"**Vulnerabilities** (open, by severity): {counts}"]
        shown = report.vulns[:20]
        if shown:
            lines += [
                "",
                *_table(
                    ("vulnerability", "package", "severity", "VEX", "gate decision"),
                    (
                        [cell(v["id"]), cell(v["package"]), cell(v["severity"]), cell(v["vex"]), cell(v["decision"])]
                        for v in shown
                    ),
                ),
            ]
    if report.compliance:
        failed = report.compliance.get("required_failed") or []
        blocking = report.compliance.get("blocking_rules") or []
        waived = report.compliance.get("waived") or []
        lines += [
            "",
            f"**Compliance**: {len(failed)} required rule(s) not passed"
            + (": " + cell(", ".join(failed)) if failed else "")
            + f"; {len(blocking)} failing rule(s) unwaived"
            + (": " + cell(", ".join(blocking)) if blocking else "")
            + f"; {len(waived)} waived",
        ]
        if waived:
            lines += [
                "",
                *_table(
                    ("waived rule", "owner", "reason", "expires"),
                    (
                        [
                            cell(w.get("finding", "")),
                            cell(w.get("owner", "")),
                            cell(w.get("justification", "")),
                            cell(w.get("expires", "")),
                        ]
                        for w in waived
                    ),
                ),
            ]
    for stage, rows in report.checks.items():
        passed = sum(1 for r in rows if r["passed"])
        lines += ["", f"**{cell(stage)} checks**: {passed}/{len(rows)} pass", ""]
        lines += _table(
            ("check", "outcome", "detail"),
            ([cell(r["name"]), "PASS" if r["passed"] else "FAIL", cell(r["detail"])] for r in rows),
        )
    for problem in report.integrity:
        lines += ["", f"❌ integrity: {cell(problem)}"]
    return "\n".join(lines) + "\n"
