"""nox -s policy"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.admission.gatekeeper import gatekeeper_checks
from tasks.admission.manifests import gitops_checks
from tasks.admission.policy_tester import policy_controller_checks
from tasks.admission.subject import STAGE
from tasks.context import Context
from tasks.core.checks import conclude
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s policy", description="Gatekeeper suites, chart rendering and admission checks with gator"
    ).parse_args(argv)
    checks = gatekeeper_checks(ctx, rec)
    checks += policy_controller_checks(ctx, rec)  # sigstore policy-controller (policy-tester)
    checks += gitops_checks(ctx, rec)  # infra/gitops/ against the pinned Argo CD CRDs (kubeconform)
    console.print(f"  image under test: {rec.details['image']['ref']}")
    report = ctx.stage_dir(STAGE) / "checks.json"
    return conclude(rec, "admission checks", checks, report=report, document={"image": rec.details["image"]})
