"""nox -s sbom"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from dataclasses import replace

from tasks import toolchain
from tasks.analysis.sbom import SOURCE_EXCLUDES, Documents, generate
from tasks.analysis.sbom_complete import (
    Producer,
    Root,
    Subject,
    Supplier,
    complete_cyclonedx,
    complete_spdx,
    declared_license,
    oci_purl,
    suppliers,
)
from tasks.analysis.sbom_conformance import SPDX3, check, standards_for
from tasks.analysis.sbom_spdx3 import RootArtifact, write_spdx3
from tasks.container import deployables, oci_registry
from tasks.container.build import source_url
from tasks.container.deployables import Deployable
from tasks.context import Context, git_revision
from tasks.core import atomic, runner
from tasks.core.console import console
from tasks.core.errors import EvidenceError, VerificationError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import (
    DEPLOYABLES_MEDIA_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REPORT_MEDIA_TYPE,
    SPDX3_MEDIA_TYPE,
)
from tasks.core.recorded import BuiltFirmware, BuiltImage
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
    if not producer.contact and source_url().startswith("https://"):
        producer = replace(producer, url=source_url())  # in CI: the repository the image is built from
    rec.details["producer_contact"] = producer.contact or "none (gates.sbom.producer: email, url)"
    distribution_licence = str(settings.get("distribution_licence", ""))
    sbomcheck = ctx.tool("sbomcheck")
    if args.subject == "firmware":
        ref, subjects = firmware_subject(ctx, rec)
    else:
        image = BuiltImage.read(ctx.evidence).image  # pushed by digest, never a tag
        ref = str(image)
        oci_registry.ensure_for(ctx, rec, ref)
        rec.add_oci(ref, image.digest, MANIFEST_MEDIA_TYPE, output=False)
        excludes = [arg for path in SOURCE_EXCLUDES for arg in ("--exclude", path)]
        # Every SBOM the pipeline makes is one Subject; the firmware is one more (--subject firmware).
        subjects = [
            Subject("image", f"registry:{ref}", (), Root(version=image.digest, purl=oci_purl(ref))),
            Subject(
                "source", f"dir:{ctx.root}", (*excludes, "--source-name", "secure-iot"), Root(git_revision(ctx, rec))
            ),
        ]
    packages, completed, spdx3_done, found = {}, {}, {}, []
    built: dict[tuple[str, str, str], Deployable] | None = None
    for subject in subjects:
        docs = generate(ctx, rec, subject.source, subject.stem, subject.extra)
        if built is None:  # read once syft has seen the subject: a missing image fails in syft, first
            built = {} if args.subject == "firmware" else build_deployables(ctx, rec)
        root = replace(subject.root, license=subject.root.license or declared_license(docs.native))
        by_id = suppliers(docs.native)
        completed[subject.stem] = complete(docs, producer, root, by_id)
        packages[subject.stem] = docs.record(rec)
        spdx3 = docs.spdx.with_name(f"{subject.stem}.spdx3.json")
        spdx3_done[subject.stem] = write_spdx3(
            docs.spdx,
            docs.native,
            spdx3,
            producer,
            built,
            by_id,
            root_artifact(ctx, rec, subject.stem, ref),
            distribution_licence=distribution_licence,
        ).summary()
        rec.add_output(spdx3, SPDX3_MEDIA_TYPE)
        for std in standards_for(settings, subject.stem):
            document = spdx3 if std.spec == SPDX3 else docs.spdx
            found += check(rec, sbomcheck, document, std, docs.spdx.with_name(f"{subject.stem}.{std.name}.json"))
    report = "firmware.conformance.json" if args.subject == "firmware" else "conformance.json"
    details = {"packages": packages, "completed": completed, "spdx3": spdx3_done}
    return conclude(ctx, rec, ref, found, details, report)


def build_deployables(ctx: Context, rec: StageRecord) -> dict[tuple[str, str, str], Deployable]:
    """The files the build installed, by SHA-512 (its deployables manifest, read by digest)."""
    try:
        manifest = ctx.evidence.output("build", DEPLOYABLES_MEDIA_TYPE)
    except EvidenceError as exc:
        raise EvidenceError(f"{exc}; rerun `nox -s build` (it records each installed file's SHA-512)") from exc
    rec.add_input(ctx.unchanged(manifest.name, manifest.digest), DEPLOYABLES_MEDIA_TYPE)
    return deployables.read(ctx.artifact(manifest.name))


def root_artifact(ctx: Context, rec: StageRecord, stem: str, ref: str) -> RootArtifact | None:
    """The deployable form of what an SBOM describes: the image's manifest, the firmware's FIT;
    the source tree has none."""
    if stem == "image":
        return image_artifact(ctx, rec, ref)
    return firmware_artifact(ctx) if stem == "firmware" else None


def image_artifact(ctx: Context, rec: StageRecord, ref: str) -> RootArtifact:
    """The image's deployable form: its manifest as the registry serves it, checked against the digest."""
    image = ImageRef.parse(ref)
    repository, digest = image.repository, image.digest
    done = runner.run(
        rec, ctx.tool("skopeo"), ["inspect", "--raw", *oci_registry.tls_flags(ref), f"docker://{ref}"], timeout=120
    )
    body = done.stdout.encode()
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise VerificationError(f"{ref}: the registry served a manifest that is not {digest}")
    return RootArtifact(f"{repository.rsplit('/', 1)[-1]}@{digest}", hashlib.sha512(body).hexdigest(), "container")


def firmware_artifact(ctx: Context) -> RootArtifact:
    """The firmware's deployable form: the signed FIT the firmware stage recorded."""
    fit = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
    path = ctx.unchanged(fit.name, fit.digest)
    return RootArtifact(path.name, hashlib.sha512(path.read_bytes()).hexdigest(), "firmware")


def firmware_subject(ctx: Context, rec: StageRecord) -> tuple[str, list[Subject]]:
    """The firmware stage's initramfs unpacked, plus its pinned Debian components (firmware.sbom_tree)."""
    initramfs = ctx.evidence.output("firmware", INITRAMFS_MEDIA_TYPE)
    fit = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
    rec.add_input(ctx.unchanged(initramfs.name, initramfs.digest), INITRAMFS_MEDIA_TYPE)
    rec.add_input(ctx.unchanged(fit.name, fit.digest), FIT_MEDIA_TYPE)
    inputs = load_inputs(toolchain.lock_path(ctx.root))
    tree = ctx.stage_dir("sbom") / "firmware-tree"
    sbom_tree(ctx.artifact(initramfs.name).read_bytes(), inputs, tree)
    version = BuiltFirmware.read(ctx.evidence).firmware_version
    name = "secure-iot-firmware"
    extra = ("--source-name", name, "--source-version", version)
    root = Root(version=version, purl=f"pkg:generic/{name}@{version}?checksum={fit.digest}")
    return f"{name}@{fit.digest}", [Subject("firmware", f"dir:{tree}", extra, root)]


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
