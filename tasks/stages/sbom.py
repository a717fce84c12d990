"""nox -s sbom"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from tasks.analysis.sbom import Documents, generate
from tasks.analysis.sbom_complete import (
    Producer,
    Supplier,
    complete_cyclonedx,
    complete_spdx,
    declared_license,
    suppliers,
)
from tasks.analysis.sbom_conformance import SPDX3, check, standards_for
from tasks.analysis.sbom_spdx3 import write_spdx3
from tasks.analysis.sbom_subject import Root
from tasks.container.build import source_url
from tasks.container.deployables import Deployable
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import (
    REPORT_MEDIA_TYPE,
    SPDX3_MEDIA_TYPE,
)
from tasks.policy import Finding, gate
from tasks.policy.findings import findings_table
from tasks.subjects import IMAGE, SUBJECTS


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sbom", description="SPDX + CycloneDX SBOMs of image and source")
    parser.add_argument("--subject", choices=tuple(SUBJECTS), default=IMAGE.names.name, help="what to describe")
    subject = SUBJECTS[parser.parse_args(argv).subject]
    settings = ctx.policy.gate("sbom").settings
    producer = Producer.from_policy(ctx.policy)
    if not producer.contact and source_url().startswith("https://"):
        producer = replace(producer, url=source_url())  # in CI: the repository the image is built from
    rec.details["producer_contact"] = producer.contact or "none (gates.sbom.producer: email, url)"
    distribution_licence = str(settings.get("distribution_licence", ""))
    sbomcheck = ctx.tool("sbomcheck")
    ref, sources = subject.sbom_sources(ctx, rec)
    packages, completed, spdx3_done, found = {}, {}, {}, []
    built: dict[tuple[str, str, str], Deployable] | None = None
    for source in sources:
        docs = generate(ctx, rec, source.source, source.stem, source.extra)
        if built is None:  # read once syft has seen the subject: a missing image fails in syft, first
            built = subject.deployables(ctx, rec)
        root = replace(source.root, license=source.root.license or declared_license(docs.native))
        by_id = suppliers(docs.native)
        completed[source.stem] = complete(docs, producer, root, by_id)
        packages[source.stem] = docs.record(rec)
        spdx3 = docs.spdx.with_name(f"{source.stem}.spdx3.json")
        spdx3_done[source.stem] = write_spdx3(
            docs.spdx,
            docs.native,
            spdx3,
            producer,
            built,
            by_id,
            subject.root_artifact(ctx, rec, source.stem, ref),
            distribution_licence=distribution_licence,
        ).summary()
        rec.add_output(spdx3, SPDX3_MEDIA_TYPE)
        for std in standards_for(settings, source.stem):
            document = spdx3 if std.spec == SPDX3 else docs.spdx
            found += check(rec, sbomcheck, document, std, docs.spdx.with_name(f"{source.stem}.{std.name}.json"))
    report = subject.names.file("conformance.json")
    details = {"packages": packages, "completed": completed, "spdx3": spdx3_done}
    return conclude(ctx, rec, ref, found, details, report)


def complete(docs: Documents, producer: Producer, root: Root, by_id: dict[str, Supplier]) -> dict[str, object]:
    return {
        "spdx": complete_spdx(docs.spdx, producer, by_id, root).summary(),
        "cyclonedx": complete_cyclonedx(docs.cyclonedx, producer, by_id, root).summary(),
    }


def conclude(
    ctx: Context,
    rec: StageRecord,
    ref: str,
    found: list[Finding],
    details: dict[str, object],
    report_name: str = "conformance.json",
) -> Verdict:
    outcome = gate.evaluate("sbom", found, ctx.policy)
    summary = {"image": ref, **details, "gate": outcome.summary()}
    report = ctx.stage_dir("sbom") / report_name
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
