"""nox -s report — the evidence as one page a person reads (out/report.html) or its markdown twin."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks import report
from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s report", description="out/report.html from out/evidence.json")
    parser.add_argument("--format", choices=("html", "markdown"), default="html")
    args = parser.parse_args(argv)
    evidence = ctx.evidence.load()
    evidence["stages"].pop("report", None)  # the report describes the run, not itself
    runs = report.history.append(ctx.out / "history.json", evidence)
    model = report.build(ctx, evidence, [*PIPELINE, *CATALOGUE], runs)
    if args.format == "markdown":
        target, text = ctx.out / "report.md", report.markdown.render(model)
        atomic.write_text(target, text)
        rec.add_output(target, "text/markdown")
        print(text, end="")
    else:
        target = ctx.out / "report.html"
        atomic.write_text(target, report.page.render(model))
        rec.add_output(target, "text/html")
    rec.details.update(
        {"stages": len(model.stages), "integrity": model.integrity, "vulnerabilities": model.severity_counts}
    )
    if model.integrity:
        rec.reason = f"{len(model.integrity)} recorded file(s) changed since their stage: " + "; ".join(model.integrity)
        console.print(f"[red]report: fail[/] — {rec.reason}", soft_wrap=True)
        return "fail"
    console.print(f"[green]report: pass[/] — {ctx.rel(target)} ({len(model.stages)} stages)")
    return "pass"
