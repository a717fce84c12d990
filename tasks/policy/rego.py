"""The content policy over attestations: one Rego source for `nox -s verify` and the cluster.

infra/policies/sigstore/rego/<kind>.rego holds the logic (package sigstore, isCompliant,
violations); security-policy.yaml gates.verify holds the parameters. ``render`` joins the
two into the module both OPA evaluates here (`opa eval`) and inside policy-controller at admission.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tasks.core import atomic, memo, runner
from tasks.core.errors import InputError, PolicyError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import COMPLIANCE_PREDICATE_TYPE
from tasks.core.repository import source_repository
from tasks.core.runner import Tool
from tasks.policy import compliance_gate
from tasks.policy.security_policy import Policy

REGO_DIR = Path("infra/policies/sigstore/rego")
# cosign --type -> (predicateType URI, Rego module or None when only presence is required)
KINDS: dict[str, tuple[str, str | None]] = {
    "slsaprovenance1": ("https://slsa.dev/provenance/v1", "provenance.rego"),
    "spdxjson": ("https://spdx.dev/Document", "sbom.rego"),
    "cyclonedx": ("https://cyclonedx.org/bom", None),
    "vuln": ("https://cosign.sigstore.dev/attestation/vuln/v1", "vuln.rego"),
    "openvex": ("https://openvex.dev/ns", "openvex.rego"),
    "compliance": (COMPLIANCE_PREDICATE_TYPE, "compliance.rego"),
}
# The project's own types: cosign knows no short name for them, so `cosign attest` and
# `cosign verify-attestation` are given the predicate type URI itself as --type.
PROJECT_KINDS = frozenset({"compliance"})
# Appended to the module of every time-dependent type (gates.verify.evaluation).
FRESHNESS = "freshness.rego"
# How verify decides over all the statements of one type (newest, or any compliant).
DECISION = "decision.rego"


def evaluation(policy: Policy) -> tuple[list[str], int]:
    """The time-dependent attestation types and their maximum age (gates.verify.evaluation).

    Every required type must be classified, and in one class only: a type nobody decided on
    would silently get "any compliant statement" semantics.
    """
    verify = policy.gate("verify")
    settings = verify.settings.get("evaluation") or {}
    timed = sorted(settings.get("time_dependent") or {})
    static = set(settings.get("static") or {})
    both = sorted(static.intersection(timed))
    if both:
        raise PolicyError(f"{policy.path}: gates.verify.evaluation: {', '.join(both)} both static and time-dependent")
    unclassified = [str(k) for k in verify.settings.get("required_attestations", []) if k not in static | set(timed)]
    if unclassified:
        raise PolicyError(
            f"{policy.path}: gates.verify.evaluation does not say whether {', '.join(unclassified)} "
            "is time-dependent (the newest statement decides) or static (any compliant statement)"
        )
    return timed, int(settings.get("max_age_hours", 48))


def cosign_type(kind: str) -> str:
    """cosign's --type for ``kind``: its short name, or the predicate type URI of a project kind;
    a predicate type URI itself (the firmware's reference values: signed, not Rego-evaluated) as is."""
    if kind in KINDS:
        return KINDS[kind][0] if kind in PROJECT_KINDS else kind
    if ":" in kind:
        return kind
    raise PolicyError(f"attestation type {kind!r} is not one of {', '.join(KINDS)}, nor a predicate type URI")


def params(policy: Policy, image_digest: str = "") -> dict[str, Any]:
    verify = policy.gate("verify")
    timed, max_age = evaluation(policy)
    compliance = dict(policy.gates["compliance"].settings) if "compliance" in policy.gates else {}
    return {
        "compliance_profile": str(compliance.get("profile", "")),
        "required_rules": sorted(str(r) for r in compliance.get("required_rules", [])),
        # the waivers a signed OpenSCAP statement may cite: only the image is attested
        "compliance_waivers": compliance_gate.held_waivers(policy, "image") if compliance else {},
        "time_dependent": timed,
        "max_age_hours": max_age,
        "image_digest": image_digest,
        "allowed_builders": builders(list(verify.settings.get("allowed_builders", []))),
        "allow_demo_db": bool(verify.settings.get("allow_demo_db", False)),
        "source_repository": str(verify.settings.get("source_repository", "")),
        "fail_on": str(verify.fail_on),
        "max_db_age_hours": int(verify.settings.get("max_db_age_hours", 120)),
    }


def builders(patterns: list[str]) -> list[str]:
    """{repository} in a builder pattern is this repository (GITHUB_REPOSITORY); without one
    known, such patterns are dropped — a fork's workflow must not match."""
    repository = source_repository()
    out = []
    for pattern in patterns:
        if "{repository}" in pattern:
            if repository:
                out.append(pattern.replace("{repository}", repository))
            continue
        out.append(pattern)
    return out


def render(root: Path, kind: str, values: dict[str, Any]) -> str | None:
    """The Rego module for ``kind`` with its parameters, or None if ``kind`` has no content policy."""
    if kind not in KINDS:
        raise PolicyError(f"attestation type {kind!r} is not one of {', '.join(KINDS)}")
    module = KINDS[kind][1]
    if module is None:
        return None
    path = root / REGO_DIR / module
    if not path.is_file():
        raise InputError(f"{path}: attestation policy module is missing")
    text = path.read_text(encoding="utf-8")
    if kind in values.get("time_dependent", []):
        header = f"\n# {FRESHNESS}: {kind} is time-dependent (gates.verify.evaluation)\n"
        text += header + rules(root / REGO_DIR / FRESHNESS)
    return (
        text
        + "\n# parameters from security-policy.yaml gates.verify\nparams := "
        + (json.dumps({**values, "kind": kind}, sort_keys=True) + "\n")
    )


def rules(path: Path) -> str:
    """A module's rules without its package and import lines, to join another module of package sigstore."""
    if not path.is_file():
        raise InputError(f"{path}: attestation policy module is missing")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(("package ", "import ")))


def decide(
    rec: StageRecord,
    root: Path,
    kind: str,
    statements: list[dict[str, Any]],
    values: dict[str, Any],
    opa: Tool,
    workdir: Path,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Violations of ``kind``'s policy by its signed ``statements`` taken together (empty:
    compliant) and, for a time-dependent type, the statement(s) that decided — by OPA, with
    decision.rego over the rendered module."""
    module = render(root, kind, values)
    if module is None:
        return ([] if statements else [f"{kind}: no signed statement"]), []
    workdir.mkdir(parents=True, exist_ok=True)
    policy_file, input_file = workdir / f"{kind}.rego", workdir / f"{kind}.input.json"
    document = json.dumps({"kind": kind, "statements": statements}, sort_keys=True).encode()
    decision = root / REGO_DIR / DECISION
    key = _decision_key(module, decision, document, opa)
    memo_file = workdir / "memo" / f"{kind}.json"  # the last passing decision for this kind, and what it was about
    stored = memo.recall(memo_file, key)
    if stored is not None and isinstance(stored.get("violations"), list) and isinstance(stored.get("decided_by"), list):
        rec.details.setdefault("reused", []).append({"command": f"opa eval ({kind})", "decision": key})
        return list(stored["violations"]), list(stored["decided_by"])
    atomic.write_text(policy_file, module)
    atomic.write_bytes(input_file, document)
    done = runner.run(
        rec,
        opa,
        ["eval", "--format", "json", "--data", policy_file, "--data", decision, "--input", input_file, "data.decision"],
        check=False,
        timeout=120,
    )
    try:
        result = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PolicyError(f"{REGO_DIR / str(KINDS[kind][1])}: opa eval failed: {done.tail()}") from exc
    violations = sorted(str(v) for v in result.get("violations", []))
    if result.get("compliant") is not True and not violations:
        violations = [f"{kind}: not compliant with {KINDS[kind][1]}"]
    decided_by = list(result.get("decided_by", []))
    if key is not None and not violations:
        memo.remember(memo_file, key, {"violations": violations, "decided_by": decided_by})
    return violations, decided_by


# Builtins whose answer is not a function of the module and input alone: a module that calls one
# is evaluated every time (the time-dependent types' freshness rules call time.now_ns).
NONDETERMINISTIC = ("time.now_ns", "http.send", "rand.", "opa.runtime", "uuid.rfc4122", "crypto.x509")


def _decision_key(module: str, decision: Path, document: bytes, opa: Tool) -> str | None:
    """The digest of exactly this module, decision.rego, input and opa, when their decision may be
    reused: a clock-free module's answer is the same next time (``SECURE_IOT_FORCE=1``: never)."""
    rules_text = decision.read_text(encoding="utf-8")
    if any(name in module + rules_text for name in NONDETERMINISTIC) or os.environ.get("SECURE_IOT_FORCE") == "1":
        return None
    stat = opa.path.stat()
    digest = hashlib.sha256()
    for part in (str(opa.path), opa.version, f"{stat.st_size}:{stat.st_mtime_ns}", module, rules_text):
        digest.update(part.encode() + b"\0")
    digest.update(document)
    return digest.hexdigest()


def evaluate(
    rec: StageRecord,
    root: Path,
    kind: str,
    statement: dict[str, Any],
    values: dict[str, Any],
    opa: Tool,
    workdir: Path,
) -> list[str]:
    """Violations of ``kind``'s policy by one ``statement`` (empty list: compliant)."""
    return decide(rec, root, kind, [statement], values, opa, workdir)[0]
