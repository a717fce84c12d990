"""nox -s policy"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

from rich.markup import escape

from tasks.admission.gatekeeper import STAGE, gatekeeper_checks
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import checks_table, console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s policy", description="Gatekeeper suites, chart rendering and admission checks with gator"
    ).parse_args(argv)
    checks = gatekeeper_checks(ctx, rec)
    # The sigstore policy-controller checks (policy-tester) join here, as another list.
    from tasks.admission import (
        cluster_image_policy as sigstore_policy,  # local import: sigstore_policy builds on this module
    )

    checks += sigstore_policy.policy_controller_checks(ctx, rec)
    checks_table("admission checks", [(c.name, c.passed, f"expected: {c.expected} — got: {c.outcome}") for c in checks])
    out = ctx.stage_dir(STAGE) / "checks.json"
    atomic.write_json(out, {"image": rec.details["image"], "checks": [asdict(c) for c in checks]})
    rec.add_output(out, "application/json")
    rec.details["checks"] = {c.name: "pass" if c.passed else "fail" for c in checks}
    failed = [c for c in checks if not c.passed]
    if failed:
        rec.reason = f"{len(failed)} admission check(s) failed: " + ", ".join(c.name for c in failed)
        console.print(f"[red]policy: fail[/] — {escape(rec.reason)}")
        return "fail"
    console.print(f"[green]policy: pass[/] — {len(checks)} checks; image {rec.details['image']['ref']}")
    return "pass"
