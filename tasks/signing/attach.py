"""Talk 02 — sign the image by digest and attach its attestations; bundle every blob.

Attestations (cosign attest --type): spdxjson and cyclonedx (the SBOMs), slsaprovenance1
(the provenance predicate), vuln (the grype result in cosign's vuln predicate), openvex
(the reviewed VEX statements) and, when `nox -s compliance` ran, compliance (the OpenSCAP
result, the project's own predicate type). They live next to the image in the same repository, under
cosign's tag scheme (sha256-<digest>.sig / .att): the local registry has no referrers API.
Blob artifacts get a Sigstore bundle (<file>.sigstore.json) beside them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord, command_for
from tasks.core.image_ref import ATTESTATION_SUFFIX, SIGNATURE_SUFFIX, ImageRef
from tasks.core.media_types import (
    COMPLIANCE_RESULT_MEDIA_TYPE,
    CYCLONEDX_MEDIA_TYPE,
    FIT_MEDIA_TYPE,
    GRYPE_JSON_MEDIA_TYPE,
    OPENVEX_MEDIA_TYPE,
    PREDICATE_MEDIA_TYPE,
    SPDX_MEDIA_TYPE,
    SYFT_JSON_MEDIA_TYPE,
)
from tasks.core.recorded import BuiltImage, Scanned
from tasks.core.runner import Tool
from tasks.core.subject import IMAGE_NAMES, SubjectNames
from tasks.policy import rego
from tasks.signing import verified
from tasks.signing.signer import Signer, registry_flags

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
BUNDLE_SUFFIX = ".sigstore.json"


@dataclass(frozen=True)
class Attestation:
    type: str  # cosign --type
    predicate: Path


def vuln_predicate(ctx: Context, subject: SubjectNames = IMAGE_NAMES) -> dict[str, Any]:
    """cosign's vuln predicate around the grype result the scan stage gated on."""
    scan = Scanned.read(ctx.evidence, subject.record("scan"))
    result = json.loads(recorded(ctx, subject.record("scan"), GRYPE_JSON_MEDIA_TYPE).read_text(encoding="utf-8"))
    return vuln_predicate_of(result, scan.grype, scan.db_source, scan.db_built, scan.started, scan.finished)


def vuln_predicate_of(
    result: dict[str, Any], grype_version: str, db_source: str, db_built: str, started: str, finished: str
) -> dict[str, Any]:
    """cosign's vuln predicate around a grype result; ``finished`` (scanFinishedOn) orders the
    statements of this time-dependent type (gates.verify.evaluation)."""
    return {
        "invocation": {"parameters": [], "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": "pkg:golang/github.com/anchore/grype",
            "version": grype_version,
            "db": {"uri": f"grype-db:{db_source}", "version": db_built},
            "result": {k: result.get(k) for k in ("matches", "ignoredMatches", "source", "distro") if k in result},
        },
        "metadata": {"scanStartedOn": started, "scanFinishedOn": finished},
    }


def openvex_document(ctx: Context, subject: SubjectNames = IMAGE_NAMES, digest: str = "") -> dict[str, Any]:
    """The VEX statements the scan applied, merged into one OpenVEX document."""
    scan = ctx.evidence.stage(subject.record("scan"))
    documents = [
        ctx.unchanged(art["name"], art["digest"])
        for art in scan.get("inputs", [])
        if art["media_type"] == OPENVEX_MEDIA_TYPE
    ]
    return openvex_of(documents, digest or BuiltImage.read(ctx.evidence).image.digest, scan["finished"])


def openvex_of(documents: list[Path], image_digest: str, timestamp: str) -> dict[str, Any]:
    """VEX documents merged into one OpenVEX document; ``timestamp`` orders the statements of
    this time-dependent type."""
    statements: list[Any] = []
    for document in documents:
        statements += json.loads(document.read_text(encoding="utf-8")).get("statements", [])
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": "urn:secure-iot:vex:" + image_digest,
        "author": "secure-iot pipeline (merged from vex/)",
        "timestamp": timestamp,
        "version": 1,
        "statements": statements,
    }


def attestations(ctx: Context, subject: SubjectNames = IMAGE_NAMES, digest: str = "") -> list[Attestation]:
    """The predicates to attach to ``subject`` (the image, or the firmware artifact ``digest``)."""
    out = ctx.stage_dir("sign")
    vuln, openvex = out / subject.file("vuln.predicate.json"), out / subject.file("openvex.json")
    atomic.write_json(vuln, vuln_predicate(ctx, subject))
    atomic.write_json(openvex, openvex_document(ctx, subject, digest))
    sbom, provenance = subject.record("sbom"), subject.record("provenance")
    todo = [
        Attestation("spdxjson", recorded(ctx, sbom, SPDX_MEDIA_TYPE)),
        Attestation("cyclonedx", recorded(ctx, sbom, CYCLONEDX_MEDIA_TYPE)),
        Attestation("slsaprovenance1", recorded(ctx, provenance, PREDICATE_MEDIA_TYPE)),
        Attestation("vuln", vuln),
        Attestation("openvex", openvex),
    ]
    # the OpenSCAP result is about the image's root filesystem; not run: verify names the missing attestation
    if subject.rootfs and "compliance" in ctx.evidence.load()["stages"]:
        todo.append(Attestation("compliance", recorded(ctx, "compliance", COMPLIANCE_RESULT_MEDIA_TYPE)))
    return todo


def blobs(ctx: Context, subject: SubjectNames = IMAGE_NAMES) -> list[Path]:
    """Every file artifact of the earlier stages (by the evidence), to be bundled."""
    paths = []
    for stage in ("sbom", "scan", "provenance", "compliance"):
        if stage == "compliance" and (not subject.rootfs or stage not in ctx.evidence.load()["stages"]):
            continue  # not run (it is not required to sign); run but failed is refused below
        outputs = ctx.evidence.stage(subject.record(stage))["outputs"]
        paths += [ctx.unchanged(o["name"], o["digest"]) for o in outputs if o.get("kind") == "file"]
    return [p for p in paths if not p.name.endswith(BUNDLE_SUFFIX)]


def recorded(ctx: Context, stage: str, media_type: str) -> Path:
    """A stage's output file, as recorded (re-hashed against the evidence)."""
    art = ctx.evidence.output(stage, media_type)
    return ctx.unchanged(art.name, art.digest)


def bound_to_image(ctx: Context, digest: str) -> None:
    """Everything to be attested was made from this image: the chain of custody, by digest."""
    ran = ctx.evidence.load()["stages"]
    for stage in ("sbom", "provenance", *(["compliance"] if "compliance" in ran else [])):
        subjects = {i["digest"] for i in ctx.evidence.stage(stage)["inputs"] if i.get("kind") == "oci"}
        if digest not in subjects:
            raise SigningError(
                f"the {stage} stage recorded {', '.join(sorted(subjects)) or 'no image'}, not the image being "
                f"signed ({digest}); rerun `nox -s {stage}` after the build"
            )
    image_sbom = ctx.evidence.output("sbom", SYFT_JSON_MEDIA_TYPE).digest
    scanned = {i["digest"] for i in ctx.evidence.stage("scan")["inputs"] if i["media_type"] == SYFT_JSON_MEDIA_TYPE}
    if scanned != {image_sbom}:
        raise SigningError(
            "the scan stage did not scan the image SBOM of the sbom stage (a `--sbom` scan, or an older "
            "one); rerun `nox -s scan` before signing"
        )


_INSTANT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def _folded(value: Any) -> Any:
    """Keys case-folded: cosign re-serialises some predicates through Go structs whose JSON tags
    spell keys differently (SLSA v1 runDetails.metadata.invocationId becomes invocationID); and
    RFC 3339 instants without the trailing zeros of their fraction, as Go's time.Time writes them
    (.196540Z comes back as .19654Z: one statement in ten was attached again)."""
    if isinstance(value, dict):
        return {str(k).casefold(): _folded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_folded(v) for v in value]
    if isinstance(value, str) and (instant := _INSTANT.fullmatch(value)):
        fraction = (instant.group(2) or "").rstrip("0")
        return instant.group(1) + (f".{fraction}" if fraction else "") + instant.group(3)
    return value


def already_attached(
    rec: StageRecord, cosign: Tool, signer: Signer, ref: str, kind: str, predicate: Path, memo_dir: Path | None = None
) -> bool:
    """A statement of ``kind`` with exactly this predicate, about this digest, signed by this signer,
    is on the image already (`cosign verify-attestation` with the signer's own verify flags; with
    ``memo_dir``, its answer reused while the registry serves the same .att manifest, verified.py)."""
    argv = ["verify-attestation", *signer.verify_flags(), *registry_flags(ref), "--type", rego.cosign_type(kind), ref]
    if memo_dir is not None:
        done = verified.cosign_verify(rec, cosign, signer, argv, ref, ATTESTATION_SUFFIX, memo_dir, timeout=300)
    else:
        done = runner.run(rec, cosign, argv, env=signer.env(), check=False, timeout=300)
    if done.returncode != 0:
        return False  # nothing of this type verifies: attach
    wanted = _folded(json.loads(predicate.read_text(encoding="utf-8")))
    digest = ImageRef.parse(ref).hex
    for line in done.stdout.splitlines():
        if not line.strip().startswith("{"):
            continue
        try:
            statement = json.loads(base64.b64decode(json.loads(line)["payload"]))
        except (ValueError, KeyError, TypeError):
            continue
        subjects = {str(d.get("digest", {}).get("sha256", "")) for d in statement.get("subject", [])}
        if digest in subjects and _folded(statement.get("predicate")) == wanted:
            return True
    return False


def already_signed(rec: StageRecord, cosign: Tool, signer: Signer, ref: str, memo_dir: Path) -> bool:
    """A signature by this signer over exactly the payload `cosign sign` would make for ``ref`` (its
    repository and digest, no annotations) is attached already: `cosign verify` with the signer's own
    verify flags (its answer reused while the registry serves the same .sig manifest, verified.py)."""
    argv = ["verify", *signer.verify_flags(), *registry_flags(ref), ref]
    done = verified.cosign_verify(rec, cosign, signer, argv, ref, SIGNATURE_SUFFIX, memo_dir, timeout=300)
    if done.returncode != 0:
        return False  # none verifies: sign
    image = ImageRef.parse(ref)
    try:
        payloads = json.loads(done.stdout)
    except ValueError:
        return False
    for payload in payloads if isinstance(payloads, list) else []:
        critical = payload.get("critical", {}) if isinstance(payload, dict) else {}
        if (
            critical.get("image", {}).get("docker-manifest-digest") == image.digest
            and critical.get("identity", {}).get("docker-reference") == image.repository
            and not payload.get("optional")
        ):
            return True
    return False


def sign(rec: StageRecord, cosign: Tool, signer: Signer, ref: str, memo_dir: Path, timeout: int = 600) -> bool:
    """`cosign sign` of ``ref`` by digest, unless this signer's identical signature is attached already
    (recorded as ``already_signed``): a re-run leaves one signature. Returns whether it signed."""
    if already_signed(rec, cosign, signer, ref, memo_dir):
        rec.details["already_signed"] = ref
        return False
    runner.run(
        rec, cosign, ["sign", *signer.sign_flags(), *registry_flags(ref), ref], env=signer.env(), timeout=timeout
    )
    return True


def bound_to_firmware(ctx: Context, fit_digest: str) -> None:
    """The firmware's SBOM, scan and provenance were made from this build (its FIT, by digest)."""
    for stage in ("sbom:firmware", "provenance:firmware"):
        made_from = {i["digest"] for i in ctx.evidence.stage(stage)["inputs"] if i["media_type"] == FIT_MEDIA_TYPE}
        if made_from != {fit_digest}:
            raise SigningError(
                f"the {stage} record is about FIT {', '.join(sorted(made_from)) or 'none'}, not the firmware being "
                f"signed ({fit_digest}); rerun `{command_for(stage)}` after `nox -s firmware`"
            )
    sbom = ctx.evidence.output("sbom:firmware", SYFT_JSON_MEDIA_TYPE).digest
    scanned = {
        i["digest"] for i in ctx.evidence.stage("scan:firmware")["inputs"] if i["media_type"] == SYFT_JSON_MEDIA_TYPE
    }
    if scanned != {sbom}:
        raise SigningError(
            "the scan:firmware record did not scan the firmware SBOM; rerun `nox -s scan -- --subject firmware`"
        )


def attest(
    rec: StageRecord,
    cosign: Tool,
    signer: Signer,
    ref: str,
    kind: str,
    predicate: Path,
    *,
    replace: bool,
    timeout: int = 600,
    memo_dir: Path | None = None,
) -> bool:
    """`cosign attest` of one predicate to ``ref``; with ``replace`` the new statement replaces the
    image's statements of this type (a time-dependent type's newest, a test fixture's rerun).

    Idempotent: a statement identical to one this signer already attached is not attached again
    (re-runs used to pile up copies). Returns whether a statement was attached."""
    if already_attached(rec, cosign, signer, ref, kind, predicate, memo_dir):
        rec.details.setdefault("already_attached", []).append(kind)
        return False
    runner.run(
        rec,
        cosign,
        [
            "attest",
            *signer.sign_flags(),
            *registry_flags(ref),
            *(["--replace"] if replace else []),
            "--type",
            rego.cosign_type(kind),
            "--predicate",
            predicate,
            ref,
        ],
        env=signer.env(),
        timeout=timeout,
    )
    return True


def sign_blob(ctx: Context, rec: StageRecord, signer: Signer, path: Path) -> Path:
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


def attest_replacing(
    rec: StageRecord, cosign: Tool, signer: Signer, ref: str, kind: str, predicate: Path, timeout: int = 600
) -> None:
    """`cosign attest --replace` (see attest)."""
    attest(rec, cosign, signer, ref, kind, predicate, replace=True, timeout=timeout)
