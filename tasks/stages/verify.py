"""nox -s verify"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks import signing
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.policy import rego
from tasks.signing.verify import (
    signed_statement_present,
    tag_still_points_at,
    verify_attestation,
    verify_signature,
)
from tasks.subjects import IMAGE, SUBJECTS

IMAGE_ONLY = ("compliance",)  # attestation types that describe an image's root filesystem


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s verify", description="verify signature, attestations and policy")
    parser.add_argument("--image", help="verify this image (name@sha256:...) instead of the build stage's")
    parser.add_argument(
        "--subject",
        choices=tuple(SUBJECTS),
        default=IMAGE.names.name,
        help="firmware: the OCI artifact `sign -- --subject firmware` pushed; the same checks and policy",
    )
    args = parser.parse_args(argv)
    subject = SUBJECTS[args.subject]
    image, tag, extra = subject.signed(ctx, args.image)
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
    if not subject.names.rootfs:  # OpenSCAP evaluates the image's root filesystem; the firmware has none signed
        rec.details["not_required"] = {k: "image only (an OpenSCAP result)" for k in required if k in IMAGE_ONLY}
        required = [k for k in required if k not in IMAGE_ONLY]
    for kind in required:
        checks.append(verify_attestation(ctx, rec, ref, kind, signer, values))
    checks += [signed_statement_present(ctx, rec, ref, kind, signer) for kind in extra]
    rec.details[subject.verified_as] = ref
    document = {"image": ref, "signer": signer.describe()}
    return conclude(
        rec,
        f"verify {ref}",
        checks,
        report=ctx.stage_dir("verify") / subject.names.file("report.json"),
        document=document,
    )
