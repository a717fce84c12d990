"""policy-controller's tester over the rendered ClusterImagePolicy.

Signed, unsigned and mis-attested fixture images, each with the decision it must get.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.markup import escape

from tasks import signing
from tasks.admission.cluster_image_policy import AUTHORITIES_POLICY, OUTPUTS, TEMPLATES, render, required_kinds, write
from tasks.admission.subject import STAGE, expect, rel
from tasks.container import oci_registry
from tasks.container.build import buildah_args
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.checks import Check
from tasks.core.console import console
from tasks.core.errors import EvidenceError, PolicyError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import (
    CIP_MEDIA_TYPE,
    COMPLIANCE_RESULT_MEDIA_TYPE,
    CYCLONEDX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    PREDICATE_MEDIA_TYPE,
    SPDX_MEDIA_TYPE,
)
from tasks.core.recorded import BuiltImage
from tasks.core.repository import source_repository
from tasks.core.runner import Tool
from tasks.policy import rego
from tasks.signing.attach import attest_replacing, openvex_document, vuln_predicate

FIXTURES = "fixtures"


FIXTURE_REPOSITORY = "secure-iot-admission-fixtures"


FIXTURE_EPOCH = 0  # fixtures are rebuilt to the same digest every run


UNLISTED_BUILDER = "urn:secure-iot:builder:not-on-the-allowed-list"


# A glob no image matches: the keyless policy is validated without any Fulcio/Rekor lookup.
NOTHING = "policy-tester.invalid/nothing/**"


@dataclass(frozen=True)
class Decision:
    """policy-tester's answer: admitted, or denied with policy-controller's errors."""

    admitted: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def policy_tester(ctx: Context, rec: StageRecord, tester: Tool, cip: Path, image: str) -> Decision:
    """`policy-tester --policy CIP --image REF`: exit 0 admits; exit 1 prints {"errors": [...]}."""
    done = runner.run(
        rec,
        tester,
        ["--policy", rel(ctx, cip), "--image", image, "--log-level", "error"],
        cwd=ctx.root,
        check=False,
        timeout=300,
    )
    if done.returncode == 0:
        return Decision(True)
    verdict = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("{")), "")
    try:
        result = json.loads(verdict)
    except json.JSONDecodeError:
        result = None
    if done.returncode == 1 and "CIP is invalid" in done.stderr:  # policy-tester's log.Fatalf, no JSON
        invalid = done.stderr[done.stderr.index("CIP is invalid") :]
        return Decision(False, [" ".join(invalid.split())])
    if done.returncode != 1 or not isinstance(result, dict) or not result.get("errors"):
        raise ToolError(f"policy-tester exited {done.returncode} without a verdict on {image}: {done.tail()}")
    errors = [str(e).strip().removesuffix(":").strip() for e in result["errors"]]
    return Decision(False, errors, [str(w) for w in result.get("warnings") or []])


@dataclass(frozen=True)
class Case:
    """An image and what policy-controller must decide about it (and why, when it denies)."""

    name: str
    image: str
    admit: bool
    reason: str = ""  # regular expression over the first error when denied

    @property
    def expected(self) -> str:
        return "admitted" if self.admit else f"denied, /{self.reason}/"


def judge(case: Case, decision: Decision) -> Check:
    if case.admit:
        outcome = "admitted" if decision.admitted else f"denied: {decision.errors[0]}"
        return expect(f"policy-tester: {case.name}", case.expected, outcome, decision.admitted)
    if decision.admitted:
        return expect(f"policy-tester: {case.name}", case.expected, "NOT denied: admitted", False)
    first = decision.errors[0]
    matched = re.search(case.reason, first) is not None
    outcome = f"denied: {first}" if matched else f"denied, but not for the expected reason: {first}"
    return expect(f"policy-tester: {case.name}", case.expected, outcome, matched)


def fixture(ctx: Context, rec: StageRecord, reg: oci_registry.Registry, name: str) -> str:
    """A distinct, tiny image (one file, fixed timestamps) pushed to the local oci_registry."""
    work = ctx.stage_dir(STAGE) / FIXTURES
    work.mkdir(parents=True, exist_ok=True)
    payload = work / f"{name}.txt"
    atomic.write_text(payload, f"secure-iot admission fixture: {name}\n")
    os.utime(payload, (FIXTURE_EPOCH, FIXTURE_EPOCH))
    buildah, store = ctx.tool("buildah"), buildah_args()
    local = f"localhost/{FIXTURE_REPOSITORY}:{name}"
    container = runner.run(rec, buildah, [*store, "from", "scratch"], timeout=300).stdout.strip()
    try:
        runner.run(rec, buildah, [*store, "copy", container, payload, "/fixture.txt"], timeout=300)
        runner.run(
            rec,
            buildah,
            [*store, "commit", "--quiet", "--timestamp", str(FIXTURE_EPOCH), container, local],
            timeout=300,
        )
    finally:
        runner.run(rec, buildah, [*store, "rm", container], check=False, timeout=300)
    digest_file = work / f"{name}.digest"
    digest_file.unlink(missing_ok=True)
    target = reg.repository(FIXTURE_REPOSITORY)
    runner.run(
        rec,
        buildah,
        [
            *store,
            "push",
            "--quiet",
            "--tls-verify=false",
            "--digestfile",
            digest_file,
            local,
            f"docker://{target}:{name}",
        ],
        timeout=600,
    )
    digest = digest_file.read_text(encoding="utf-8").strip()
    if not digest.startswith("sha256:"):
        raise ToolError(f"buildah push {target}:{name} gave no digest")
    return f"{target}@{digest}"


def predicates(ctx: Context, kinds: Sequence[str]) -> dict[str, Path]:
    """The predicates the sign stage attaches, found through the evidence (vuln and OpenVEX are
    computed from it the way the sign stage computes them)."""
    work = ctx.stage_dir(STAGE) / FIXTURES
    found: dict[str, Path] = {}
    for kind in kinds:
        if kind == "spdxjson":
            found[kind] = ctx.artifact(ctx.evidence.output("sbom", SPDX_MEDIA_TYPE).name)
        elif kind == "cyclonedx":
            found[kind] = ctx.artifact(ctx.evidence.output("sbom", CYCLONEDX_MEDIA_TYPE).name)
        elif kind == "slsaprovenance1":
            found[kind] = ctx.artifact(ctx.evidence.output("provenance", PREDICATE_MEDIA_TYPE).name)
        elif kind == "compliance":
            found[kind] = ctx.artifact(ctx.evidence.output("compliance", COMPLIANCE_RESULT_MEDIA_TYPE).name)
        elif kind in ("vuln", "openvex"):
            document = vuln_predicate(ctx) if kind == "vuln" else openvex_document(ctx)
            found[kind] = work / f"{kind}.predicate.json"
            atomic.write_json(found[kind], document)
        else:
            raise PolicyError(f"attestation type {kind!r}: no predicate source for the admission fixtures")
    return found


def unlisted_builder(ctx: Context, provenance: Path) -> Path:
    data = json.loads(provenance.read_text(encoding="utf-8"))
    data.setdefault("runDetails", {}).setdefault("builder", {})["id"] = UNLISTED_BUILDER
    path = ctx.stage_dir(STAGE) / FIXTURES / "unlisted-builder.provenance.json"
    atomic.write_json(path, data)
    return path


def failed_rule(ctx: Context, result: Path, rule: str) -> Path:
    """The OpenSCAP result with one required rule failed (as a re-evaluation would report it)."""
    data = json.loads(result.read_text(encoding="utf-8"))
    data.setdefault("results", {})[rule] = "fail"
    path = ctx.stage_dir(STAGE) / FIXTURES / "failed-rule.compliance.json"
    atomic.write_json(path, data)
    return path


def sign_image(rec: StageRecord, cosign: Tool, signer: signing.Signer, ref: str) -> None:
    runner.run(
        rec, cosign, ["sign", *signer.sign_flags(), *signing.registry_flags(ref), ref], env=signer.env(), timeout=300
    )


def attest(rec: StageRecord, cosign: Tool, signer: signing.Signer, ref: str, kinds: Mapping[str, Path]) -> None:
    for kind, predicate in kinds.items():  # --replace: a rerun replaces the fixture's attestation
        attest_replacing(rec, cosign, signer, ref, kind, predicate, timeout=300)


def cases(ctx: Context, rec: StageRecord, reg: oci_registry.Registry, signer: signing.Signer, image: str) -> list[Case]:
    """The signed build image plus the fixtures, each made to fail for one reason only."""
    policy = ctx.policy
    kinds = required_kinds(policy)
    found = predicates(ctx, kinds)
    cosign = ctx.tool("cosign")
    out = [Case("signed and attested image (build evidence)", image, admit=True)]

    # Both authorities fail here and policy-controller checks them concurrently, so the
    # first error it reports is either one: no signature, or no attestation.
    unsigned = fixture(ctx, rec, reg, "unsigned")
    out.append(Case("unsigned image", unsigned, admit=False, reason=r"no signatures found|no matching attestations"))

    attested_only = fixture(ctx, rec, reg, "attested-not-signed")
    attest(rec, cosign, signer, attested_only, found)
    out.append(
        Case(
            "attested but not signed",
            attested_only,
            admit=False,
            reason=r"signature key validation failed for authority signature .*no signatures found",
        )
    )

    missing = "spdxjson" if "spdxjson" in kinds else kinds[0]
    partial = fixture(ctx, rec, reg, f"no-{missing}")
    sign_image(rec, cosign, signer, partial)
    attest(rec, cosign, signer, partial, {k: p for k, p in found.items() if k != missing})
    predicate_type = rego.KINDS[missing][0]
    out.append(
        Case(
            f"signed, no {missing} attestation",
            partial,
            admit=False,
            reason=rf"no matching attestations with type {re.escape(predicate_type)}",
        )
    )

    if "slsaprovenance1" in found:
        builder = fixture(ctx, rec, reg, "unlisted-builder")
        sign_image(rec, cosign, signer, builder)
        attest(
            rec, cosign, signer, builder, {**found, "slsaprovenance1": unlisted_builder(ctx, found["slsaprovenance1"])}
        )
        out.append(
            Case(
                "signed, provenance from an unlisted builder",
                builder,
                admit=False,
                reason=r"failed evaluating rego policy for type slsaprovenance1: policy is not compliant",
            )
        )
    rules = (
        [str(r) for r in policy.gate("compliance").settings.get("required_rules", [])] if "compliance" in found else []
    )
    if rules:
        noncompliant = fixture(ctx, rec, reg, "failed-rule")
        sign_image(rec, cosign, signer, noncompliant)
        attest(
            rec, cosign, signer, noncompliant, {**found, "compliance": failed_rule(ctx, found["compliance"], rules[0])}
        )
        out.append(
            Case(
                f"signed, required OpenSCAP rule {rules[0]} failed",
                noncompliant,
                admit=False,
                reason=rf"rego policy for type compliance: .*required rule {re.escape(rules[0])}: fail",
            )
        )
    return out


def signed_build(ctx: Context) -> tuple[str | None, str]:
    """The build's image if the evidence says it was built and signed here in key mode."""
    if os.environ.get("SECURE_IOT_SIGNING", "key") != "key":
        return None, "keyless signing: the offline checks need key-mode signatures (the project key pair)"
    try:
        image = str(BuiltImage.read(ctx.evidence).image)
    except EvidenceError as exc:
        return None, f"no built image to test ({exc})"
    if "sign" not in ctx.evidence.load()["stages"]:
        return None, f"{image} was never signed (no sign stage in the evidence): run `nox -s keys provenance sign`"
    reg = oci_registry.configured()
    if not image.startswith(f"{reg.address}/"):
        return None, f"{image} is not in the local registry {reg.address}"
    return image, ""


def keyless_check(ctx: Context, rec: StageRecord, tester: Tool, image: str) -> Check | None:
    """Render the keyless policy and have policy-tester validate it, with no network."""
    settings = ctx.policy.gate("verify").settings
    identity = str(settings.get("keyless_identity", ""))
    missing = "gates.verify.keyless_identity is not set" if not identity else ""
    if signing.REPOSITORY_PLACEHOLDER in identity and not source_repository():
        missing = "the repository is unknown here (GITHUB_REPOSITORY is set in CI)"
    if missing:
        rec.details["policy_controller"]["keyless"] = f"not rendered: {missing}"
        console.print(f"  keyless ClusterImagePolicy not rendered: {missing}")
        return None
    glob = f"{os.environ['SECURE_IOT_REGISTRY']}/**" if os.environ.get("SECURE_IOT_REGISTRY") else "**"
    doc = render(ctx.root, ctx.policy, "keyless", image_glob=glob)
    out = ctx.stage_dir(STAGE) / "cip-keyless.yaml"
    write(out, doc, TEMPLATES["keyless"])
    rec.add_output(out, CIP_MEDIA_TYPE)
    # policy-tester validates a policy before it verifies anything; a copy whose glob
    # matches nothing stops right there, so no Fulcio, Rekor or TUF root is fetched.
    probe = ctx.stage_dir(STAGE) / FIXTURES / "cip-keyless-validate.yaml"
    probe_doc = json.loads(json.dumps(doc))
    probe_doc["spec"]["images"] = [{"glob": NOTHING}]
    write(probe, probe_doc, TEMPLATES["keyless"])
    decision = policy_tester(ctx, rec, tester, probe, image)
    valid = not decision.admitted and any("is uncovered by policy" in e for e in decision.errors)
    outcome = "valid (policy-tester accepts it)" if valid else "; ".join(decision.errors) or "admitted"
    return expect("keyless ClusterImagePolicy is valid", "policy-tester validates it offline", outcome, valid)


def policy_controller_checks(ctx: Context, rec: StageRecord) -> list[Check]:
    """policy-tester against the rendered key-mode policy; [] (said and recorded) without a signed build."""
    stage_dir = ctx.stage_dir(STAGE)
    for stale in OUTPUTS:
        (stage_dir / stale).unlink(missing_ok=True)
    image, why_not = signed_build(ctx)
    if image is None:
        console.print(f"  [yellow]policy-controller checks not run: {escape(why_not)}[/]")
        rec.details["policy_controller"] = {"run": False, "reason": why_not}
        return []
    signer = signing.configured(ctx)
    reg = oci_registry.ensure_running(ctx, rec)
    kinds = required_kinds(ctx.policy)
    modules = [rego.REGO_DIR / m for k in kinds if (m := rego.KINDS[k][1])]
    for source in (TEMPLATES["key"], AUTHORITIES_POLICY, *modules):
        rec.add_input(ctx.inside(source), CIP_MEDIA_TYPE if source.suffix == ".yaml" else "text/plain")
    cip = stage_dir / "cip-key.yaml"
    doc = render(ctx.root, ctx.policy, "key", image_glob=f"{reg.address}/**", public_key=signer.public_key)
    write(cip, doc, TEMPLATES["key"])
    rec.add_output(cip, CIP_MEDIA_TYPE)
    rec.details["policy_controller"] = {"run": True, "policy": rel(ctx, cip)}
    tester = ctx.tool("policy-tester")
    checks, results = [], []
    for case in cases(ctx, rec, reg, signer, image):
        if case.image != image:  # the fixtures this run pushed
            rec.add_oci(case.image, ImageRef.parse(case.image).digest, MANIFEST_MEDIA_TYPE)
        decision = policy_tester(ctx, rec, tester, cip, case.image)
        check = judge(case, decision)
        checks.append(check)
        results.append({**asdict(case), "decision": asdict(decision), "passed": check.passed})
    keyless = keyless_check(ctx, rec, tester, image)
    if keyless is not None:
        checks.append(keyless)
    out = stage_dir / "policy-tester.json"
    atomic.write_json(out, {"policy": rel(ctx, cip), "cases": results})
    rec.add_output(out, "application/json")
    return checks
