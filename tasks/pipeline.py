"""What a stage is, and how stages run: one by name, or the whole pipeline in order.

A stage body lives in tasks/stages/<session>.py and is named only by the catalogue; it is
imported when it runs, so importing the pipeline loads no tool wrapper.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core.console import console, summary_table
from tasks.core.evidence import StageRecord, Verdict

Body = Callable[[Context, StageRecord, Sequence[str]], Verdict]


@dataclass(frozen=True)
class Stage:
    name: str
    talk_section: str
    proves: str
    body: Body


def stage(name: str) -> Stage:
    target, section, proves = CATALOGUE[name]
    module, func = target.split(":")

    def body(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
        fn: Body = getattr(importlib.import_module(module), func)
        return fn(ctx, rec, argv)

    return Stage(name, section, proves, body)


def record_name(name: str, argv: Sequence[str]) -> str:
    """The evidence key of a run: the stage name, or ``<stage>:<subject>`` for `--subject <subject>`
    other than the image (the image pipeline's keys never change; firmware runs sit beside them)."""
    args = list(argv)
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--subject" and i + 1 < len(args) else arg.removeprefix("--subject=")
        if (arg == "--subject" or arg.startswith("--subject=")) and value not in ("", "image"):
            return f"{name}:{value}"
    return name


def step_record(step: str) -> str:
    name, *argv = step.split()
    return record_name(name, argv)


def run_stage(ctx: Context, stage: Stage, argv: Sequence[str]) -> int:
    """Run one stage; return 0 on pass, 1 on a failed gate. PipelineErrors propagate."""
    with ctx.evidence.open_stage(record_name(stage.name, argv), ctx.root) as rec:
        rec.details["talk_section"] = stage.talk_section
        rec.verdict = stage.body(ctx.bind(rec), rec, argv)
    return 0 if rec.verdict in ("pass", "skipped") else 1


def run_pipeline(ctx: Context, steps: Sequence[str] = PIPELINE) -> int:
    """Each step is a stage name, optionally with its arguments ("sign --subject firmware")."""
    code = 0
    try:
        for step in steps:
            name, *argv = step.split()
            console.rule(f"[bold]{step}[/] (talk section {CATALOGUE[name][1]})")
            code = run_stage(ctx, stage(name), argv)
            if code != 0:
                break
    finally:
        summary_table(ctx.evidence.load()["stages"], [step_record(step) for step in steps])
    return code
