"""nox -s demo"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks.cluster import built_image, ready, step_signed, step_unprotected, step_unsigned, unsigned_image
from tasks.context import Context
from tasks.core.checks import conclude
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(prog="nox -s demo", description="the talk's admission demo, step by step").parse_args(argv)
    kube, _ = ready(ctx, rec)
    repository, digest = built_image(ctx, rec)
    signed = f"{repository}@{digest}"
    unsigned = unsigned_image(ctx, signed)
    steps = [step_signed(kube, signed), step_unsigned(kube, unsigned), step_unprotected(kube, signed)]
    for number, step in enumerate(steps, 1):
        mark = "[green]PASS[/]" if step.passed else "[red]FAIL[/]"
        console.print(f"{mark}  {number}/{len(steps)} {escape(step.name)} — {escape(step.detail)}")
    return conclude(rec, "demo", steps, report=ctx.stage_dir("demo") / "steps.json")
