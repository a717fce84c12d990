"""nox -s compliance"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.container.openscap import evaluate, predicate
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console, error_line
from tasks.core.errors import PolicyError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import COMPLIANCE_RESULT_MEDIA_TYPE, MANIFEST_MEDIA_TYPE

PREDICATE_FILE = "openscap-result.predicate.json"


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s compliance", description="OpenSCAP over the image rootfs")
    parser.parse_args(argv)
    settings = dict(ctx.policy.gate("compliance").settings)
    required = [str(r) for r in settings.get("required_rules", [])]
    if not required:
        raise PolicyError(f"{ctx.policy_path}: gates.compliance.required_rules: list the rules that must pass")
    profile = str(settings.get("profile", ""))
    # Resolve first: resolution installs the packages (ssg-debian) whose files are read next.
    oscap = ctx.tool("oscap-chroot")
    if settings.get("datastream"):  # the SCAP content its packages ship: missing is said before anything else
        oscap.data_file(str(settings["datastream"]))
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    out = ctx.stage_dir("compliance")
    evaluation = evaluate(ctx, rec, oscap, image.name, out)
    results, html = evaluation.results, evaluation.report
    rec.add_output(results, "application/xml")
    rec.add_output(html, "text/html")
    outcome = evaluation.outcome
    # The result as the signed attestation's predicate (`nox -s sign` attaches it).
    atomic.write_json(out / PREDICATE_FILE, predicate(ctx.root, evaluation, oscap.version))
    rec.add_output(out / PREDICATE_FILE, COMPLIANCE_RESULT_MEDIA_TYPE)
    unknown = [r for r in required if r not in outcome]
    if unknown:
        raise PolicyError(f"gates.compliance.required_rules: not in profile {profile}: {', '.join(unknown)}")
    failed = [r for r in required if outcome[r] != "pass"]
    counts = evaluation.counts()
    rec.details.update(
        {
            "profile": profile,
            "results": counts,
            "required": len(required),
            "required_failed": failed,
            "not_gated_failures": sorted(r for r, v in outcome.items() if v == "fail" and r not in required),
        }
    )
    atomic.write_json(out / "summary.json", rec.details)
    rec.add_output(out / "summary.json", "application/json")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if failed:
        rec.reason = "required rules failed: " + ", ".join(failed)
        error_line(f"compliance: {rec.reason}")
        return "fail"
    console.print(f"[green]compliance: pass[/] — {len(required)} required rules pass ({summary}); report {html}")
    return "pass"
