"""Markdown from out/evidence.json: the job summary GitHub Actions shows for each run.

    python -m tasks summary >> "$GITHUB_STEP_SUMMARY"

Reads the evidence only; records nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.core.evidence import not_covered_notes

VERDICT_ICON = {"pass": "✅", "fail": "❌", "error": "❌", "skipped": "⚠️"}


def markdown(evidence: Mapping[str, Any]) -> str:
    stages = evidence.get("stages", {})
    lines = [
        "### secure-iot pipeline",
        "",
        "| stage | verdict | duration | tools | outputs | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, rec in stages.items():
        verdict = str(rec.get("verdict", "?"))
        tools = ", ".join(f"{tool} {version}" for tool, version in sorted(rec.get("tools", {}).items()))
        outputs = "<br>".join(
            f"`{o['name']}`" + (f" `{o['digest'][:19]}…`" if o.get("kind") == "oci" else "")
            for o in rec.get("outputs", [])[:6]
        )
        notes = "; ".join(
            [
                *(f"opt-out: {o.split(':', 1)[0]}" for o in rec.get("opt_outs", [])),
                *not_covered_notes(rec),
                *([str(rec["reason"])] if rec.get("reason") else []),
            ]
        )
        lines.append(
            f"| {name} | {VERDICT_ICON.get(verdict, '')} {verdict} | {rec.get('duration_s', 0):.1f}s | "
            f"{tools} | {outputs} | {notes.replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
