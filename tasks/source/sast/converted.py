"""Tools without usable SARIF: their machine report is kept, their findings written out as SARIF.

The findings were mapped once into the project's terms (each scanner module says how); the
SARIF written here carries them, with repo-relative paths, to code scanning like the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.evidence import StageRecord
from tasks.core.media_types import SARIF_MEDIA_TYPE
from tasks.core.runner import Tool
from tasks.policy import sarif
from tasks.policy.findings import Finding


def keep_report(ctx: Context, rec: StageRecord, name: str, text: str) -> None:
    """The tool's own report, as it printed it, beside the SARIF made from it."""
    report = ctx.stage_dir("sast") / name
    atomic.write_text(report, text)
    rec.add_output(report, "application/json")


def as_sarif(ctx: Context, rec: StageRecord, tool: Tool, findings: Sequence[Finding]) -> list[Finding]:
    out = ctx.stage_dir("sast") / f"{tool.name}.sarif"
    atomic.write_json(out, sarif.from_findings(tool.name, tool.version, findings))
    rec.add_output(out, SARIF_MEDIA_TYPE)
    return list(findings)
