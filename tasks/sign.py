"""Talk 02 — sign the image by digest and attach its attestations; bundle every blob.

Attestations (cosign attest --type): spdxjson and cyclonedx (the SBOMs), slsaprovenance1
(the provenance predicate), vuln (the grype result in cosign's vuln predicate) and openvex
(the reviewed VEX statements). They live next to the image in the same repository, under
cosign's tag scheme (sha256-<digest>.sig / .att): the local registry has no referrers API.
Blob artifacts get a Sigstore bundle (<file>.sigstore.json) beside them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks import atomic, registry, report, runner, signing
from tasks.build import MANIFEST_MEDIA_TYPE
from tasks.context import Context
from tasks.errors import EvidenceError, SigningError
from tasks.evidence import StageRecord, Verdict
from tasks.provenance import PREDICATE_MEDIA_TYPE
from tasks.sbom import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE
from tasks.scan import GRYPE_JSON_MEDIA_TYPE, OPENVEX_MEDIA_TYPE

VULN_PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"
OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
BUNDLE_SUFFIX = ".sigstore.json"


@dataclass(frozen=True)
class Attestation:
    type: str  # cosign --type
    predicate: Path


def vuln_predicate(ctx: Context) -> dict[str, Any]:
    """cosign's vuln predicate around the grype result the scan stage gated on."""
    scan = ctx.evidence.stage("scan")
    result_path = ctx.artifact(ctx.evidence.output("scan", GRYPE_JSON_MEDIA_TYPE).name)
    result = json.loads(result_path.read_text(encoding="utf-8"))
    db = scan["details"].get("db", {})
    return {
        "invocation": {"parameters": [], "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:golang/github.com/anchore/grype",
            "version": scan["tools"].get("grype", ""),
            "db": {"uri": f"grype-db:{db.get('source', '')}", "version": db.get("built", "")},
            "result": {k: result.get(k) for k in ("matches", "ignoredMatches", "source", "distro") if k in result},
        },
        "metadata": {"scanStartedOn": scan["started"], "scanFinishedOn": scan["finished"]},
    }


def openvex_document(ctx: Context) -> dict[str, Any]:
    """The VEX statements the scan applied, merged into one OpenVEX document."""
    statements: list[Any] = []
    for art in ctx.evidence.stage("scan").get("inputs", []):
        if art["media_type"] == OPENVEX_MEDIA_TYPE:
            statements += json.loads(ctx.artifact(art["name"]).read_text(encoding="utf-8")).get("statements", [])
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": "urn:secure-iot:vex:" + ctx.evidence.output("build", MANIFEST_MEDIA_TYPE).digest,
        "author": "secure-iot pipeline (merged from vex/)",
        "timestamp": ctx.evidence.stage("scan")["finished"],
        "version": 1,
        "statements": statements,
    }


def attestations(ctx: Context) -> list[Attestation]:
    out = ctx.stage_dir("sign")
    atomic.write_json(out / "vuln.predicate.json", vuln_predicate(ctx))
    atomic.write_json(out / "openvex.json", openvex_document(ctx))
    return [
        Attestation("spdxjson", ctx.artifact(ctx.evidence.output("sbom", SPDX_MEDIA_TYPE).name)),
        Attestation("cyclonedx", ctx.artifact(ctx.evidence.output("sbom", CYCLONEDX_MEDIA_TYPE).name)),
        Attestation("slsaprovenance1", ctx.artifact(ctx.evidence.output("provenance", PREDICATE_MEDIA_TYPE).name)),
        Attestation("vuln", out / "vuln.predicate.json"),
        Attestation("openvex", out / "openvex.json"),
    ]


def blobs(ctx: Context) -> list[Path]:
    """Every file artifact of the earlier stages (by the evidence), to be bundled."""
    paths = []
    for stage in ("sbom", "scan", "provenance", "compliance"):
        try:
            outputs = ctx.evidence.stage(stage)["outputs"]
        except EvidenceError:
            if stage == "compliance":  # optional in the chain; the rest are required
                continue
            raise
        paths += [ctx.artifact(o["name"]) for o in outputs if o.get("kind") == "file"]
    return [p for p in paths if not p.name.endswith(BUNDLE_SUFFIX)]


def sign_blob(ctx: Context, rec: StageRecord, signer: signing.Signer, path: Path) -> Path:
    bundle = path.with_name(path.name + BUNDLE_SUFFIX)
    bundle.unlink(missing_ok=True)
    if signer.mode == "keyless":  # sigstore-python: keyless bundles (GitHub OIDC ambient credential)
        runner.run(rec, ctx.tool("sigstore"), ["sign", "--bundle", bundle, path], timeout=300)
    else:
        runner.run(
            rec,
            ctx.tool("cosign"),
            ["sign-blob", *signer.sign_flags(), "--new-bundle-format", "--bundle", bundle, path],
            env=signer.env(),
            timeout=300,
        )
    return bundle


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s sign", description="cosign signature, attestations, blob bundles")
    parser.parse_args(argv)
    signer = signing.configured(ctx)
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    if "@sha256:" not in image.name:
        raise SigningError(f"{image.name}: refusing to sign anything but an image by digest")
    todo = attestations(ctx)
    registry.ensure_for(ctx, rec, image.name)
    cosign = ctx.tool("cosign")
    reg = signing.registry_flags(image.name)
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    runner.run(rec, cosign, ["sign", *signer.sign_flags(), *reg, image.name], env=signer.env(), timeout=600)
    for att in todo:
        rec.add_input(att.predicate, "application/json")
        runner.run(
            rec,
            cosign,
            ["attest", *signer.sign_flags(), *reg, "--type", att.type, "--predicate", att.predicate, image.name],
            env=signer.env(),
            timeout=600,
        )
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
    report.console.print(
        f"[green]sign: pass[/] — signature + {len(todo)} attestations on {image.name}; {len(bundles)} blob bundles"
    )
    return "pass"
