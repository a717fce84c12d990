"""Markdown from out/evidence.json: the job summary GitHub Actions shows for each run.

    python -m tasks summary >> "$GITHUB_STEP_SUMMARY"

The report's markdown twin (tasks/report/markdown.py), rendered from the evidence only;
records nothing itself (`nox -s report -- --format markdown` also writes out/report.md).
"""

from __future__ import annotations

from tasks import report
from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context


def markdown(ctx: Context) -> str:
    evidence = ctx.evidence.load()
    evidence["stages"].pop("report", None)
    runs = report.history.load(ctx.out / "history.json")
    return report.markdown.render(report.build(ctx, evidence, [*PIPELINE, *CATALOGUE], runs))
