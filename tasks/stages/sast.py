"""nox -s sast"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.policy import gate
from tasks.policy.findings import findings_table
from tasks.source.sast import _as_json, run_bandit, run_semgrep, targets


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(prog="nox -s sast", description="bandit + semgrep, gated by policy").parse_args(argv)
    ctx.policy  # noqa: B018 - load and validate the policy before any tool runs
    rec.add_input(ctx.policy_path, "application/yaml")
    paths = targets(ctx)
    findings = run_bandit(ctx, rec, paths) + run_semgrep(ctx, rec, paths)
    outcome = gate.evaluate("sast", findings, ctx.policy)
    normalized = ctx.stage_dir("sast") / "findings.json"
    atomic.write_json(
        normalized,
        {"findings": [_as_json(f) for f in findings], "gate": outcome.summary()},
    )
    rec.add_output(normalized, "application/json")
    rec.details.update(outcome.summary())
    findings_table(f"blocking SAST findings (threshold: {outcome.threshold})", outcome.blocking)
    for finding, waiver in outcome.waived:
        console.print(f"  waived: {finding.rule} at {finding.location} by {waiver.owner} until {waiver.expires}")
    if outcome.passed:
        console.print(f"[green]sast: pass[/] — {len(findings)} findings, none blocking at >= {outcome.threshold}")
        return "pass"
    rec.reason = f"{len(outcome.blocking)} blocking finding(s): " + ", ".join(
        sorted({f"{f.rule} ({f.location})" for f in outcome.blocking})
    )
    return "fail"
