"""nox -s scan"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.analysis import vulndb
from tasks.analysis.scan import findings, run_grype, vex_documents
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import GRYPE_JSON_MEDIA_TYPE, SARIF_MEDIA_TYPE, SYFT_JSON_MEDIA_TYPE
from tasks.policy import gate
from tasks.subjects import IMAGE, SUBJECTS


def stale(ctx: Context, record: Mapping[str, Any]) -> str | None:
    """For the pipeline's up-to-date check: the DB the scan used must still be young enough."""
    return vulndb.outdated(ctx.policy, record)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s scan", description="grype over the image SBOM, VEX, gate")
    parser.add_argument("--sbom", type=Path, help="scan this SBOM instead of the sbom stage's image SBOM")
    parser.add_argument("--subject", choices=tuple(SUBJECTS), default=IMAGE.names.name, help="whose SBOM to scan")
    parser.add_argument(
        "--allow-missing-db",
        action="store_true",
        help="opt out: skip the scan when no usable vulnerability DB exists (recorded)",
    )
    args = parser.parse_args(argv)
    subject = SUBJECTS[args.subject].names
    max_age = vulndb.max_age_hours(ctx.policy)
    sbom_stage = subject.record("sbom")
    sbom = (
        ctx.inside(args.sbom) if args.sbom else ctx.artifact(ctx.evidence.output(sbom_stage, SYFT_JSON_MEDIA_TYPE).name)
    )
    if not sbom.is_file():
        raise InputError(f"{sbom}: SBOM not found; run `nox -s sbom` first")
    rec.add_input(sbom, SYFT_JSON_MEDIA_TYPE)
    grype = ctx.tool("grype")
    db = vulndb.prepare(ctx, rec, grype, max_age)
    rec.details["db"] = db.as_json()
    if not db.valid:
        reason = (
            f"no usable vulnerability DB ({db.source}: {db.error or 'invalid or older than ' + str(max_age) + 'h'})"
        )
        if not args.allow_missing_db:
            raise ToolError(
                f"{reason}; set {vulndb.SOURCE_ENV}=demo|online|<archive>, or opt out with "
                "`nox -s scan -- --allow-missing-db` (recorded in the evidence)"
            )
        rec.opt_out("--allow-missing-db", reason)
        console.print(f"[yellow]scan: skipped[/] — {reason} (opt-out recorded)")
        return "skipped"
    out = ctx.stage_dir("scan")
    stem = subject.file("grype")
    json_out, sarif_out = out / f"{stem}.json", out / f"{stem}.sarif"
    outputs = {"json": json_out, "sarif": sarif_out}
    result = run_grype(ctx, rec, grype, sbom, vex_documents(ctx, rec), outputs, db.source, max_age)
    rec.add_output(json_out, GRYPE_JSON_MEDIA_TYPE)
    rec.add_output(sarif_out, SARIF_MEDIA_TYPE)
    found, ignored = findings(result)
    outcome = gate.evaluate("dependencies", found, ctx.policy)
    summary = {"db": db.as_json(), "gate": outcome.summary(), "vex_ignored": ignored, "matches": len(found)}
    summary_path = out / subject.file("summary.json")
    atomic.write_json(summary_path, summary)
    rec.add_output(summary_path, "application/json")
    rec.details.update(summary)
    if db.source == "demo":
        console.print("  [yellow]note: demo DB — knows only the advisories in tests/fixtures/grype[/]")
    for item in ignored:
        console.print(f"  covered by VEX: {item['id']} in {item['package']}")
    return gate.conclude(rec, outcome, "vulnerabilities", f"{len(found)} matches, none blocking; DB built {db.built}")
