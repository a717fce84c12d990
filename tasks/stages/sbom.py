"""nox -s sbom"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from tasks.analysis.sbom import SOURCE_EXCLUDES, Documents, generate, image_ref
from tasks.analysis.sbom_complete import (
    Producer,
    Root,
    Subject,
    complete_cyclonedx,
    complete_spdx,
    declared_license,
    oci_purl,
    suppliers,
)
from tasks.analysis.sbom_conformance import check, standard
from tasks.container import oci_registry
from tasks.context import Context, git_revision
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE, REPORT_MEDIA_TYPE
from tasks.policy import Finding, gate
from tasks.policy.findings import findings_table


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sbom", description="SPDX + CycloneDX SBOMs of image and source")
    parser.parse_args(argv)
    settings = ctx.policy.gate("sbom").settings
    producer = Producer.from_policy(ctx.policy)
    standards = [standard(str(name)) for name in settings.get("conformance", [])]
    sbomcheck = ctx.tool("sbomcheck")
    ref = image_ref(ctx)
    oci_registry.ensure_for(ctx, rec, ref)
    rec.add_oci(ref, ref.split("@", 1)[1], MANIFEST_MEDIA_TYPE, output=False)
    excludes = [arg for path in SOURCE_EXCLUDES for arg in ("--exclude", path)]
    # Every SBOM the pipeline makes is one Subject; firmware images plug in as one more.
    subjects = [
        Subject("image", f"registry:{ref}", (), Root(version=ref.split("@", 1)[1], purl=oci_purl(ref))),
        Subject("source", f"dir:{ctx.root}", (*excludes, "--source-name", "secure-iot"), Root(git_revision(ctx, rec))),
    ]
    packages, completed, found = {}, {}, []
    for subject in subjects:
        docs = generate(ctx, rec, subject.source, subject.stem, subject.extra)
        root = replace(subject.root, license=subject.root.license or declared_license(docs.native))
        completed[subject.stem] = complete(docs, producer, root)
        packages[subject.stem] = docs.record(rec)
        for std in standards:
            found += check(rec, sbomcheck, docs.spdx, std, docs.spdx.with_name(f"{subject.stem}.{std.name}.json"))
    return conclude(ctx, rec, ref, found, {"packages": packages, "completed": completed})


def complete(docs: Documents, producer: Producer, root: Root) -> dict[str, object]:
    by_id = suppliers(docs.native)
    return {
        "spdx": complete_spdx(docs.spdx, producer, by_id, root).summary(),
        "cyclonedx": complete_cyclonedx(docs.cyclonedx, producer, by_id, root).summary(),
    }


def conclude(ctx: Context, rec: StageRecord, ref: str, found: list[Finding], details: dict[str, object]) -> Verdict:
    outcome = gate.evaluate("sbom", found, ctx.policy)
    summary = {"image": ref, **details, "gate": outcome.summary()}
    report = ctx.stage_dir("sbom") / "conformance.json"
    atomic.write_json(report, {**summary, "blocking": [f.location + " " + f.rule for f in outcome.blocking]})
    rec.add_output(report, REPORT_MEDIA_TYPE)
    rec.details.update(summary)
    findings_table("sbom: minimum elements missing", outcome.blocking)
    counts = details["packages"]
    if outcome.blocking:
        rec.reason = f"{len(outcome.blocking)} missing minimum element(s): " + "; ".join(
            f"{f.rule} {f.package or f.path}" for f in outcome.blocking[:10]
        )
        console.print(f"[red]sbom: fail[/] — {rec.reason}", soft_wrap=True)
        return "fail"
    console.print(f"[green]sbom: pass[/] — {counts}, {len(outcome.waived)} gap(s) waived")
    return "pass"
