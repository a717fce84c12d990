"""What a stage is, and how one is run: evidence opened, verdict recorded, exit code returned."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tasks.context import Context
from tasks.core.evidence import StageRecord, Verdict

Body = Callable[[Context, StageRecord, Sequence[str]], Verdict]


@dataclass(frozen=True)
class Stage:
    name: str
    talk_section: str
    proves: str
    body: Body


def run(ctx: Context, stage: Stage, argv: Sequence[str]) -> int:
    """Run one stage; return 0 on pass, 1 on a failed gate. PipelineErrors propagate."""
    with ctx.evidence.open_stage(stage.name, ctx.root) as rec:
        rec.details["talk_section"] = stage.talk_section
        rec.verdict = stage.body(ctx, rec, argv)
    return 0 if rec.verdict in ("pass", "skipped") else 1
