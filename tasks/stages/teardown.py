"""nox -s teardown"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.cluster import engines, load, state_path
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s teardown", description="stop the cluster (local processes by PID, or kind and its registry)"
    ).parse_args(argv)
    state = load(ctx)
    engine = engines.recorded(state) if state is not None else engines.chosen(rec, None)
    removed = engine.down(ctx, rec, state)  # local with nothing recorded: nothing could be running here
    state_path(ctx).unlink(missing_ok=True)
    rec.details["removed"] = removed
    console.print(f"[green]teardown: PASS[/] — {', '.join(removed) or 'nothing was running'}")
    return "pass"
