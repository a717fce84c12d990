"""Talk 02/10 — verify before trust: signature, attestations, and a policy over their contents.

For the image by digest: the tag the build pushed still names that digest; cosign verifies
the signature by the expected key (or keyless identity); each required attestation is
present and signed by it; and its contents satisfy infra/policies/sigstore/rego — the
same modules the cluster's policy-controller enforces. Prints a table and writes
out/verify/report.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import runner
from tasks.core.checks import Check
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ATTESTATION_SUFFIX, SIGNATURE_SUFFIX, ImageRef
from tasks.policy import rego
from tasks.signing import verified
from tasks.signing.signer import Signer, registry_flags


def tag_still_points_at(ctx: Context, rec: StageRecord, repository: str, tag: str, digest: str) -> Check:
    """Someone pushing other content under the build's tag must not go unnoticed. The loopback
    registry is asked directly (one GET, the manifest hashed here); another one through skopeo."""
    if oci_registry.is_local(repository):
        served = oci_registry.manifest_digest(repository, tag)
        if served is None:
            return Check(f"tag {tag}", False, f"cannot read {repository}:{tag}: the registry serves no such manifest")
        if served != digest:
            return Check(f"tag {tag}", False, f"{repository}:{tag} now names {served}, the build recorded {digest}")
        return Check(f"tag {tag}", True, f"still names {digest[:19]}…")
    done = runner.run(
        rec,
        ctx.tool("skopeo"),
        [
            "inspect",
            "--raw",
            *oci_registry.tls_flags(repository),
            f"docker://{repository}:{tag}",
        ],
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        return Check(f"tag {tag}", False, f"cannot read {repository}:{tag}: {done.tail(2)}")
    actual = "sha256:" + hashlib.sha256(done.stdout.encode()).hexdigest()
    if actual != digest:
        return Check(f"tag {tag}", False, f"{repository}:{tag} now names {actual}, the build recorded {digest}")
    return Check(f"tag {tag}", True, f"still names {digest[:19]}…")


def statements(output: str) -> list[dict[str, Any]]:
    """cosign verify-attestation prints one DSSE envelope per line; decode their payloads."""
    found = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        envelope = json.loads(line)
        found.append(json.loads(base64.b64decode(envelope["payload"])))
    return found


def diagnose(ctx: Context, rec: StageRecord, ref: str, predicate_type: str) -> str:
    """Why verification found nothing: read what is attached (unverified, for the message only)."""
    done = runner.run(
        rec,
        ctx.tool("cosign"),
        ["download", "attestation", *registry_flags(ref), ref],
        check=False,
        timeout=300,
    )
    attached = [s for s in statements(done.stdout) if str(s.get("predicateType", "")).startswith(predicate_type)]
    if not attached:
        return f"missing: no {predicate_type} attestation is attached to the image"
    digest = ImageRef.parse(ref).hex
    subjects = sorted({str(d.get("digest", {}).get("sha256", "")) for s in attached for d in s.get("subject", [])})
    if digest not in subjects:
        return (
            f"attached statement's subject is sha256:{', sha256:'.join(subjects)}, not the image digest sha256:{digest}"
        )
    return "attached, but its signature does not verify with the expected key or identity (altered or other signer)"


def verify_statements(ctx: Context, rec: StageRecord, ref: str, kind: str, signer: Signer) -> runner.Completed:
    """`cosign verify-attestation --type kind`: the signed statements on stdout (exit 0), or why not
    (cosign's earlier answer when the registry serves the same attestations: tasks/signing/verified.py)."""
    argv = ["verify-attestation", *signer.verify_flags(), *registry_flags(ref), "--type", rego.cosign_type(kind), ref]
    return verified.cosign_verify(rec, ctx.tool("cosign"), signer, argv, ref, ATTESTATION_SUFFIX, memo_dir(ctx))


def verify_signature(ctx: Context, rec: StageRecord, ref: str, signer: Signer) -> runner.Completed:
    """`cosign verify`: the image's signature by the expected key or identity (remembered like the above)."""
    argv = ["verify", *signer.verify_flags(), *registry_flags(ref), ref]
    return verified.cosign_verify(rec, ctx.tool("cosign"), signer, argv, ref, SIGNATURE_SUFFIX, memo_dir(ctx))


def memo_dir(ctx: Context) -> Path:
    return ctx.stage_dir("verify") / "memo"


def signed_statement_present(ctx: Context, rec: StageRecord, ref: str, predicate_type: str, signer: Signer) -> Check:
    """A statement of a type the Rego policy has no module for (the reference values): signed by the
    expected key or identity, about this digest (cosign binds it), of exactly that predicateType."""
    done = verify_statements(ctx, rec, ref, predicate_type, signer)
    if done.returncode != 0:
        return Check(f"attestation {predicate_type}", False, diagnose(ctx, rec, ref, predicate_type) or done.tail(1))
    matching = [s for s in statements(done.stdout) if s.get("predicateType") == predicate_type]
    if not matching:
        return Check(f"attestation {predicate_type}", False, f"no statement with predicateType {predicate_type}")
    return Check(f"attestation {predicate_type}", True, f"{len(matching)} signed statement(s)")


def verify_attestation(
    ctx: Context, rec: StageRecord, ref: str, kind: str, signer: Signer, values: dict[str, Any]
) -> Check:
    done = verify_statements(ctx, rec, ref, kind, signer)
    predicate_type = rego.KINDS[kind][0]
    if done.returncode != 0:
        return Check(f"attestation {kind}", False, diagnose(ctx, rec, ref, predicate_type) or done.tail(1))
    found = statements(done.stdout)
    matching = [s for s in found if str(s.get("predicateType", "")).startswith(predicate_type)]
    if not matching:
        return Check(f"attestation {kind}", False, f"no statement with predicateType {predicate_type}")
    workdir = ctx.stage_dir("verify") / "policy"
    problems, decided_by = rego.decide(rec, ctx.root, kind, matching, values, ctx.tool("opa"), workdir)
    if problems:
        return Check(f"attestation {kind}", False, "; ".join(problems))
    if decided_by:  # time-dependent: the newest statement decided
        newest = ", ".join(str(d["issued"]) for d in decided_by)
        return Check(f"attestation {kind}", True, f"newest of {len(matching)} signed statement(s) ({newest}) holds")
    return Check(f"attestation {kind}", True, f"{len(matching)} signed statement(s); content policy holds")
