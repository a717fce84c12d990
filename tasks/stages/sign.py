"""nox -s sign"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks import signing
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.policy import rego
from tasks.signing.attach import attest, attestations, blobs, bound_to_image, sign_blob


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sign", description="cosign signature, attestations, blob bundles")
    parser.parse_args(argv)
    signer = signing.configured(ctx)
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    if "@sha256:" not in image.name:
        raise SigningError(f"{image.name}: refusing to sign anything but an image by digest")
    bound_to_image(ctx, image.digest)
    todo = attestations(ctx)
    timed = rego.evaluation(ctx.policy)[0]
    oci_registry.ensure_for(ctx, rec, image.name)
    cosign = ctx.tool("cosign")
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    runner.run(
        rec,
        cosign,
        ["sign", *signer.sign_flags(), *signing.registry_flags(image.name), image.name],
        env=signer.env(),
        timeout=600,
    )
    for att in todo:
        rec.add_input(att.predicate, "application/json")
        # a time-dependent type's newer statement replaces the older (authorities-policy.rego)
        attest(rec, cosign, signer, image.name, att.type, att.predicate, replace=att.type in timed)
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
        f"[green]sign: pass[/] — signature + {len(todo)} attestations on {image.name}; {len(bundles)} blob bundles"
    )
    return "pass"
