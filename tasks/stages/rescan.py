"""nox -s rescan — talk 04 — continuous evaluation: re-scan what was signed, attest what is true today.

An image signed last month carries the vuln scan of last month. `nox -s rescan` takes the
SBOM the image is *attested* with (cosign verify-attestation with the project's key or
identity — not a fresh syft run: the signed record of what shipped is what is judged),
scans it with the current vulnerability database and the current vex/, and attests the new
result and the VEX it applied. Both types are time-dependent (gates.verify.evaluation):
`cosign attest --replace` leaves one statement of each, and verify and admission judge the
newest, so a newly published blocking vulnerability bites and a newer VEX answer clears it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tasks import signing
from tasks.analysis import vulndb
from tasks.analysis.scan import findings, run_grype, vex_documents
from tasks.container import oci_registry, openscap
from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check, conclude
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord, Verdict, now
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import COMPLIANCE_RESULT_MEDIA_TYPE, GRYPE_JSON_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from tasks.core.recorded import SignedImage
from tasks.policy import compliance_gate, gate
from tasks.signing.attach import attest_replacing, openvex_of, vuln_predicate_of
from tasks.signing.attested_sbom import attested_sbom


def signed_images(ctx: Context, extra: Sequence[str]) -> list[str]:
    """The images to re-scan: --image ones, else the one the sign stage signed (by digest)."""
    if extra:
        return list(dict.fromkeys(str(ImageRef.parse(ref, what="--image")) for ref in extra))
    if "sign" not in ctx.evidence.load()["stages"]:
        raise InputError("no signed image in the evidence: run `nox -s sign`, or pass --image name@sha256:...")
    return [str(SignedImage.read(ctx.evidence).image)]


def reevaluate(ctx: Context, rec: StageRecord, signer: signing.Signer, ref: str, work: Path) -> Check:
    """OpenSCAP over the signed image's root filesystem again, judged as `nox -s compliance`
    judges it (compliance_gate); the new result is attested with the waivers it used (replacing
    the older: the newest decides) whether or not it passes."""
    oscap = ctx.tool("oscap-chroot")
    evaluation = openscap.evaluate(ctx, rec, oscap, ref, work / "compliance")
    rec.add_output(evaluation.results, "application/xml")
    judgement = compliance_gate.judge(ctx.policy, "image", evaluation.outcome, evaluation.severity)
    path = work / "compliance.predicate.json"
    atomic.write_json(path, openscap.predicate(ctx.root, evaluation, oscap.version, judgement.waived()))
    rec.add_output(path, COMPLIANCE_RESULT_MEDIA_TYPE)
    attest_replacing(rec, ctx.tool("cosign"), signer, ref, "compliance", path)
    detail = (
        f"{len(judgement.required)} required rules pass, {len(judgement.outcome.waived)} failing rules waived; "
        "result attested"
    )
    if not judgement.passed:
        detail = "; ".join(filter(None, [judgement.unmet(), judgement.unwaived()])) + "; result attested"
    return Check(f"compliance {ref.split('/')[-1][:36]}", judgement.passed, detail)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(
        prog="nox -s rescan",
        description="re-scan signed images' attested SBOMs with today's DB and VEX, re-run OpenSCAP; attest",
    )
    parser.add_argument("--image", action="append", default=[], help="name@sha256:... (repeatable)")
    args = parser.parse_args(argv)
    images = signed_images(ctx, args.image)
    signer = signing.configured(ctx)
    max_age = vulndb.max_age_hours(ctx.policy)
    grype = ctx.tool("grype")
    db = vulndb.prepare(ctx, rec, grype, max_age)
    rec.details["db"] = db.as_json()
    if not db.valid:
        raise ToolError(
            f"no usable vulnerability DB ({db.source}: {db.error or 'invalid or too old'}); nothing re-scanned"
        )
    vex = vex_documents(ctx, rec)
    checks: list[Check] = []
    for ref in images:
        digest = ImageRef.parse(ref).digest
        work = ctx.stage_dir("rescan") / digest.replace(":", "-")[:19]
        work.mkdir(parents=True, exist_ok=True)
        oci_registry.ensure_for(ctx, rec, ref)
        rec.add_oci(ref, digest, MANIFEST_MEDIA_TYPE, output=False)
        sbom, sbom_kind = attested_sbom(ctx, rec, signer, ref, work)
        started = now()
        result = run_grype(ctx, rec, grype, sbom, vex, {"json": work / "grype.json"}, db.source, max_age)
        finished = now()
        rec.add_output(work / "grype.json", GRYPE_JSON_MEDIA_TYPE)
        predicate = vuln_predicate_of(result, grype.version, db.source, db.built, started, finished)
        predicates = {"vuln": work / "vuln.predicate.json", "openvex": work / "openvex.json"}
        atomic.write_json(predicates["vuln"], predicate)
        atomic.write_json(predicates["openvex"], openvex_of(vex, digest, finished))
        for kind, path in predicates.items():
            attest_replacing(rec, ctx.tool("cosign"), signer, ref, kind, path)
        found, ignored = findings(result)
        outcome = gate.evaluate("dependencies", found, ctx.policy)
        blocking = outcome.blocking_names()
        covered = f"; {len(ignored)} covered by VEX" if ignored else ""
        detail = (
            f"attested SBOM ({sbom_kind}) re-scanned, {len(found)} matches, none blocking{covered}; result attested"
            if outcome.passed
            else f"{len(blocking)} blocking: {', '.join(blocking)}{covered}; result attested"
        )
        checks.append(Check(f"rescan {ref.split('/')[-1][:40]}", outcome.passed, detail))
        if "compliance" in ctx.policy.gates:  # OpenSCAP too: re-evaluated, attested, newest wins
            checks.append(reevaluate(ctx, rec, signer, ref, work))
    rec.details["images"] = images
    document = {"images": images, "db": db.as_json(), "signer": signer.describe()}
    return conclude(rec, "rescan", checks, report=ctx.stage_dir("rescan") / "report.json", document=document)
