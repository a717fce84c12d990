"""nox -s demo"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.markup import escape

from tasks.cluster import (
    built_image,
    engines,
    image_cases,
    step_by_tag,
    step_case,
    step_failed_create,
    step_privileged,
    step_signed,
    step_unprotected,
    step_unsigned,
    unsigned_image,
)
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(prog="nox -s demo", description="the talk's admission demo, step by step").parse_args(argv)
    engine, kube, state = engines.ready(ctx, rec)
    image = built_image(ctx, rec)
    repository, signed = image.repository, str(image)
    unsigned = unsigned_image(ctx, signed)
    steps: list[Check] = [step_signed(kube, signed), step_unsigned(kube, unsigned)]
    if engine.reads_pipeline_registry:  # the policy-tester's images are in that registry
        cases = [c for c in image_cases(ctx, rec, signed) if not c.admit and c.name != "unsigned image"]  # step 2
        steps += [step_case(kube, n, case) for n, case in enumerate(cases)]
    steps += [
        step_unprotected(kube, signed),
        step_privileged(kube, signed),
        step_by_tag(kube, repository),
        step_failed_create(kube, signed),
    ]
    for number, step in enumerate(steps, 1):
        mark = "[green]PASS[/]" if step.passed else "[red]FAIL[/]"
        console.print(f"{mark}  {number}/{len(steps)} {escape(step.name)} — {escape(step.detail)}")
    rec.details["engine"] = state.engine
    return conclude(rec, "demo", steps, report=ctx.stage_dir("demo") / "steps.json")
