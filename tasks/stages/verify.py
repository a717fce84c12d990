"""nox -s verify"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks import signing
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import MANIFEST_MEDIA_TYPE, REFERENCE_VALUES_PREDICATE_TYPE
from tasks.core.recorded import ImageBuild, SignedFirmware
from tasks.policy import rego
from tasks.signing.verify import (
    signed_statement_present,
    tag_still_points_at,
    verify_attestation,
    verify_signature,
)

IMAGE_ONLY = ("compliance",)  # attestation types that describe an image's root filesystem


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s verify", description="verify signature, attestations and policy")
    parser.add_argument("--image", help="verify this image (name@sha256:...) instead of the build stage's")
    parser.add_argument(
        "--subject",
        choices=("image", "firmware"),
        default="image",
        help="firmware: the OCI artifact `sign -- --subject firmware` pushed; the same checks and policy",
    )
    args = parser.parse_args(argv)
    extra: list[str] = []
    if args.subject == "firmware":
        signed = SignedFirmware.read(ctx.evidence)
        image, tag = signed.artifact, signed.tag
        extra = [REFERENCE_VALUES_PREDICATE_TYPE]  # the golden values ride on the artifact too
    elif args.image:
        image, tag = ImageRef.parse(args.image, what="--image"), ""
    else:
        built = ImageBuild.read(ctx.evidence)
        image, tag = built.image, built.tag
    ref, repository, digest = str(image), image.repository, image.digest
    signer = signing.configured(ctx)
    oci_registry.ensure_for(ctx, rec, ref)
    rec.add_oci(ref, digest, MANIFEST_MEDIA_TYPE, output=False)
    checks: list[Check] = []
    if tag:
        checks.append(tag_still_points_at(ctx, rec, repository, tag, digest))
    signature = verify_signature(ctx, rec, ref, signer)
    checks.append(
        Check(
            "signature",
            signature.returncode == 0,
            f"signed by {signer.describe().get('public_key') or signer.identity_regexp}"
            if signature.returncode == 0
            else f"not verified: {signature.tail(1)}",
        )
    )
    values = rego.params(ctx.policy, digest)
    required = [str(k) for k in ctx.policy.gate("verify").settings.get("required_attestations", [])]
    if args.subject == "firmware":  # OpenSCAP evaluates the image's root filesystem; the firmware has none signed
        rec.details["not_required"] = {k: "image only (an OpenSCAP result)" for k in required if k in IMAGE_ONLY}
        required = [k for k in required if k not in IMAGE_ONLY]
    for kind in required:
        checks.append(verify_attestation(ctx, rec, ref, kind, signer, values))
    checks += [signed_statement_present(ctx, rec, ref, kind, signer) for kind in extra]
    rec.details["image" if args.subject == "image" else "artifact"] = ref
    document = {"image": ref, "signer": signer.describe()}
    return conclude(
        rec,
        f"verify {ref}",
        checks,
        report=ctx.stage_dir("verify") / ("report.json" if args.subject == "image" else "firmware.report.json"),
        document=document,
    )
