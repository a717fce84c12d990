"""nox -s sbom"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from tasks import toolchain
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
from tasks.core.media_types import FIT_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REPORT_MEDIA_TYPE
from tasks.firmware.sbom_tree import sbom_tree
from tasks.policy import Finding, gate
from tasks.policy.findings import findings_table
from tasks.toolchain.inputs import load_inputs


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sbom", description="SPDX + CycloneDX SBOMs of image and source")
    parser.add_argument("--subject", choices=("image", "firmware"), default="image", help="what to describe")
    args = parser.parse_args(argv)
    settings = ctx.policy.gate("sbom").settings
    producer = Producer.from_policy(ctx.policy)
    standards = [standard(str(name)) for name in settings.get("conformance", [])]
    sbomcheck = ctx.tool("sbomcheck")
    if args.subject == "firmware":
        ref, subjects = firmware_subject(ctx, rec)
    else:
        ref = image_ref(ctx)
        oci_registry.ensure_for(ctx, rec, ref)
        rec.add_oci(ref, ref.split("@", 1)[1], MANIFEST_MEDIA_TYPE, output=False)
        excludes = [arg for path in SOURCE_EXCLUDES for arg in ("--exclude", path)]
        # Every SBOM the pipeline makes is one Subject; the firmware is one more (--subject firmware).
        subjects = [
            Subject("image", f"registry:{ref}", (), Root(version=ref.split("@", 1)[1], purl=oci_purl(ref))),
            Subject("source", f"dir:{ctx.root}", (*excludes, "--source-name", "secure-iot"),
                    Root(git_revision(ctx, rec))),
        ]  # fmt: skip
    packages, completed, found = {}, {}, []
    for subject in subjects:
        docs = generate(ctx, rec, subject.source, subject.stem, subject.extra)
        root = replace(subject.root, license=subject.root.license or declared_license(docs.native))
        completed[subject.stem] = complete(docs, producer, root)
        packages[subject.stem] = docs.record(rec)
        for std in standards:
            found += check(rec, sbomcheck, docs.spdx, std, docs.spdx.with_name(f"{subject.stem}.{std.name}.json"))
    report = "firmware.conformance.json" if args.subject == "firmware" else "conformance.json"
    return conclude(ctx, rec, ref, found, {"packages": packages, "completed": completed}, report)


def firmware_subject(ctx: Context, rec: StageRecord) -> tuple[str, list[Subject]]:
    """The firmware stage's initramfs unpacked, plus its pinned Debian components (firmware.sbom_tree)."""
    build = ctx.evidence.stage("firmware")["details"]
    initramfs = ctx.evidence.output("firmware", INITRAMFS_MEDIA_TYPE)
    fit = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
    rec.add_input(ctx.unchanged(initramfs.name, initramfs.digest), INITRAMFS_MEDIA_TYPE)
    rec.add_input(ctx.unchanged(fit.name, fit.digest), FIT_MEDIA_TYPE)
    inputs = load_inputs(toolchain.lock_path(ctx.root))
    tree = ctx.stage_dir("sbom") / "firmware-tree"
    sbom_tree(ctx.artifact(initramfs.name).read_bytes(), inputs, tree)
    version = str(build["firmware_version"])
    name = "secure-iot-firmware"
    extra = ("--source-name", name, "--source-version", version)
    root = Root(version=version, purl=f"pkg:generic/{name}@{version}?checksum={fit.digest}")
    return f"{name}@{fit.digest}", [Subject("firmware", f"dir:{tree}", extra, root)]


def complete(docs: Documents, producer: Producer, root: Root) -> dict[str, object]:
    by_id = suppliers(docs.native)
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
