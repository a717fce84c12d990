"""nox -s sign"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from tasks import signing
from tasks.container import oci_artifact, oci_registry
from tasks.context import Context
from tasks.core.console import console
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIRMWARE_ARTIFACT_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.policy import rego
from tasks.signing.attach import attest, attestations, blobs, bound_to_image, sign, sign_blob


def stale(ctx: Context, record: Mapping[str, Any]) -> str | None:
    """For the pipeline's up-to-date check: the firmware artifact `--subject firmware` pushed must
    still be in the registry, by digest and tag (the image's run pushes nothing: no OCI output)."""
    return oci_registry.unserved(record)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sign", description="cosign signature, attestations, blob bundles")
    parser.add_argument("--subject", choices=("image", "firmware"), default="image", help="what to sign")
    args = parser.parse_args(argv)
    signer = signing.configured(ctx)
    if args.subject == "firmware":
        return sign_firmware(ctx, rec, signer)
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    if "@sha256:" not in image.name:
        raise SigningError(f"{image.name}: refusing to sign anything but an image by digest")
    bound_to_image(ctx, image.digest)
    todo = attestations(ctx)
    timed = rego.evaluation(ctx.policy)[0]
    oci_registry.ensure_for(ctx, rec, image.name)
    cosign = ctx.tool("cosign")
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    memo = ctx.stage_dir("sign") / "memo"
    signed = sign(rec, cosign, signer, image.name, memo)
    for att in todo:
        rec.add_input(att.predicate, "application/json")
        # a time-dependent type's newer statement replaces the older (authorities-policy.rego)
        attest(rec, cosign, signer, image.name, att.type, att.predicate, replace=att.type in timed, memo_dir=memo)
    bundles = [sign_blob(ctx, rec, signer, path) for path in blobs(ctx)]
    for bundle in bundles:
        rec.add_output(bundle, "application/vnd.dev.sigstore.bundle.v0.3+json")
    repository, digest = image.name.split("@", 1)
    tags = {
        "signature": f"{repository}:{digest.replace(':', '-')}.sig",
        "attestations": f"{repository}:{digest.replace(':', '-')}.att",
    }
    rec.details.update(
        {
            "image": image.name,
            "signer": signer.describe(),
            "attached": [a.type for a in todo],
            "where": tags,
            "bundles": len(bundles),
        }
    )
    console.print(
        f"[green]sign: pass[/] — signature{'' if signed else ' (already signed)'} + {len(todo)} attestations on "
        f"{image.name}; {len(bundles)} blob bundles"
    )
    return "pass"


# The firmware artifact's layers, in order: deterministic files only, so the same build pushes the same
# digest (the reference values' signed bundle is not a layer: its statement is attached instead).
FIRMWARE_LAYERS = (
    FIT_MEDIA_TYPE,
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
)
FIRMWARE_REPOSITORY = "secure-iot-firmware"


def sign_firmware(ctx: Context, rec: StageRecord, signer: signing.Signer) -> Verdict:
    """The firmware stage's blobs (re-hashed) pushed as one OCI artifact by digest, signed by digest,
    and carrying the reference-values statement — only after its bundle verified."""
    paths = {}
    for media in FIRMWARE_LAYERS:
        art = ctx.evidence.output("firmware", media)
        paths[media] = ctx.unchanged(art.name, art.digest)
        rec.add_input(paths[media], media)
    # its signature decides, not the evidence digest
    paths[SIGSTORE_BUNDLE_MEDIA_TYPE] = ctx.artifact(ctx.evidence.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE).name)
    signing.verified_predicate(
        ctx,
        rec,
        signer,
        paths[FIT_MEDIA_TYPE],
        REFERENCE_VALUES_PREDICATE_TYPE,
        paths[SIGSTORE_BUNDLE_MEDIA_TYPE],
        remedy="rerun `nox -s firmware`",
    )
    signing.bound_to_firmware(ctx, ctx.evidence.output("firmware", FIT_MEDIA_TYPE).digest)
    timed = rego.evaluation(ctx.policy)[0]
    details = ctx.evidence.stage("firmware")["details"]
    version, epoch = str(details["firmware_version"]), int(details["source_date_epoch"])
    pushed = oci_artifact.push(
        ctx,
        rec,
        f"{oci_registry.destination(ctx, rec)}/{FIRMWARE_REPOSITORY}",
        version,
        FIRMWARE_ARTIFACT_TYPE,
        [(paths[m], m) for m in FIRMWARE_LAYERS],
        epoch=epoch,
        annotations={
            "org.opencontainers.image.version": version,
            "vnd.secure-iot.firmware.security-version": str(details["security_version"]),
        },
        manifest=ctx.stage_dir("sign") / "firmware.manifest.json",
    )
    rec.add_oci(pushed.ref, pushed.digest, MANIFEST_MEDIA_TYPE)
    cosign = ctx.tool("cosign")
    signed = sign(rec, cosign, signer, pushed.ref, ctx.stage_dir("sign") / "memo")
    todo = signing.attestations(ctx, "firmware", pushed.digest)
    for att in todo:
        rec.add_input(att.predicate, "application/json")
        attest(rec, cosign, signer, pushed.ref, att.type, att.predicate, replace=att.type in timed)
    # The same predicate the bundle signs, now about the artifact (its subject: the manifest digest,
    # whose layers name the FIT by sha256). --replace: a rerun leaves one statement.
    attest(
        rec,
        cosign,
        signer,
        pushed.ref,
        REFERENCE_VALUES_PREDICATE_TYPE,
        paths[REFERENCE_VALUES_MEDIA_TYPE],
        replace=True,
    )
    bundles = [sign_blob(ctx, rec, signer, path) for path in signing.blobs(ctx, "firmware")]
    for bundle in bundles:
        rec.add_output(bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)
    attached = [a.type for a in todo] + [REFERENCE_VALUES_PREDICATE_TYPE]
    rec.details.update(
        {
            "subject": "firmware",
            "artifact": pushed.ref,
            "artifact_type": FIRMWARE_ARTIFACT_TYPE,
            "tag": version,
            "firmware_version": version,
            "signer": signer.describe(),
            "attached": attached,
            "bundles": len(bundles),
        }
    )
    console.print(
        f"[green]sign: pass[/] — firmware {version} as {pushed.ref}: signature{'' if signed else ' (already signed)'}"
        f" + {len(attached)} attestations; "
        f"{len(bundles)} blob bundles"
    )
    return "pass"
