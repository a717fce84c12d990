"""The stages, their order, and the talk section each one delivers."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from tasks.catalogue import CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core.console import console, summary_table
from tasks.core.evidence import StageRecord, Verdict
from tasks.stage import Body, Stage


def stage(name: str) -> Stage:
    target, section, proves = CATALOGUE[name]
    module, func = target.split(":")

    def body(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
        fn: Body = getattr(importlib.import_module(module), func)
        return fn(ctx, rec, argv)

    return Stage(name, section, proves, body)


def run_pipeline(ctx: Context, names: Sequence[str] = PIPELINE) -> int:
    from tasks import stage as stage_mod

    code = 0
    try:
        for name in names:
            console.rule(f"[bold]{name}[/] (talk section {CATALOGUE[name][1]})")
            code = stage_mod.run(ctx, stage(name), [])
            if code != 0:
                break
    finally:
        summary_table(ctx.evidence.load()["stages"], names)
    return code
