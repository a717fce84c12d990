"""The compliance gate: every rule of the OpenSCAP profile is judged; none is "not gated".

- ``gates.compliance.required_rules`` must pass (not fail, not be notapplicable), and are never
  waived: the one loader (security_policy.load) refuses a waiver that names one.
- Every other rule whose result is fail, error or unknown is a finding (the rule's full XCCDF
  id, at its XCCDF severity) judged by the gate every findings stage shares (gate.evaluate):
  it blocks unless a waiver of gate ``compliance`` names that id, scoped to the root
  filesystem evaluated (``scope.path``: ``image`` or ``device-rootfs``, which the schema
  requires: a waiver for the image is not one for the device). The waiver's
  owner, justification and expiry go into the evidence, the report and the signed predicate.
- A waiver that could cover this root filesystem but covers no failing rule (the rule passes,
  does not apply, or is not in the profile) is stale: warned and recorded, as a SAST exclusion
  that matches no file is. It waives nothing, so it cannot hide anything; removing it is the
  reviewed change that keeps the list honest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.core.console import console, error_line
from tasks.core.errors import PolicyError
from tasks.core.evidence import StageRecord, Verdict
from tasks.policy import gate
from tasks.policy.findings import Finding, Severity
from tasks.policy.security_policy import SSG_RULE_PREFIX, Policy, Waiver

GATE = "compliance"
FAILING = frozenset({"fail", "error", "unknown"})  # XCCDF results that say the rule does not hold
SUBJECTS = ("image", "device-rootfs")  # what scope.path of a compliance waiver may name


@dataclass(frozen=True)
class Judgement:
    subject: str
    required: tuple[str, ...]
    required_failed: tuple[str, ...]  # "rule (result)"
    outcome: gate.GateOutcome  # the rules outside required_rules that fail
    stale: tuple[tuple[Waiver, str], ...]  # waiver, what its rule gave

    @property
    def passed(self) -> bool:
        return self.outcome.passed and not self.required_failed

    def unmet(self) -> str:
        """Required rules that did not pass, as one clause ("" when all did)."""
        return "required rules not passed: " + ", ".join(self.required_failed) if self.required_failed else ""

    def unwaived(self) -> str:
        """Failing rules no waiver accepts, as one clause ("" when none)."""
        return (
            "unwaived failing rules: " + ", ".join(f.rule for f in self.outcome.blocking)
            if self.outcome.blocking
            else ""
        )

    def waived(self) -> dict[str, dict[str, str]]:
        """rule (as the predicate's results name it) -> the waiver that accepted its failure."""
        return {
            finding.rule.removeprefix(SSG_RULE_PREFIX): {
                "waiver": waiver.id,
                "owner": waiver.owner,
                "justification": " ".join(waiver.justification.split()),
                "expires": waiver.expires.isoformat(),
            }
            for finding, waiver in self.outcome.waived
        }

    def summary(self) -> dict[str, Any]:
        """The evidence: what blocks, what is waived and why, until when, and what is stale."""
        return {
            "rootfs": self.subject,
            "required": len(self.required),
            "required_failed": list(self.required_failed),
            **self.outcome.summary(),
            "blocking_rules": sorted(f.rule for f in self.outcome.blocking),
            "stale_waivers": [
                {"waiver": w.id, "owner": w.owner, "expires": w.expires.isoformat(), "result": result}
                for w, result in self.stale
            ],
        }


def held_waivers(policy: Policy, subject: str) -> dict[str, dict[str, str]]:
    """rule (as the predicate's results name it) -> the waiver the policy holds for it on ``subject``:
    its full id and expiry. compliance.rego accepts a statement's waiver only if it is one of these,
    and judges it by this expiry, so a waiver the policy drops or lets lapse stops counting at verify
    and admission, whatever the signed statement says. The first that covers, as the gate takes it."""
    held: dict[str, dict[str, str]] = {}
    for waiver in policy.waivers:
        if waiver.covers_path(GATE, subject):
            held.setdefault(
                waiver.id.removeprefix(SSG_RULE_PREFIX), {"waiver": waiver.id, "expires": waiver.expires.isoformat()}
            )
    return held


def judge(
    policy: Policy, subject: str, outcome: Mapping[str, str], severity: Mapping[str, str] | None = None
) -> Judgement:
    """``outcome``: rule (without the SSG prefix) -> XCCDF result, as oscap gave it for ``subject``."""
    if subject not in SUBJECTS:
        raise ValueError(f"compliance subject {subject!r} is not one of {SUBJECTS}")
    settings = policy.gate(GATE).settings
    required = tuple(str(r) for r in settings.get("required_rules", []))
    if not required:
        raise PolicyError(f"{policy.path}: gates.compliance.required_rules: list the rules that must pass")
    if unknown := [r for r in required if r not in outcome]:
        profile = settings.get("profile", "")
        raise PolicyError(f"gates.compliance.required_rules: not in profile {profile}: {', '.join(unknown)}")
    findings = [
        Finding(
            tool="oscap",
            rule=SSG_RULE_PREFIX + rule,
            severity=Severity.parse((severity or {}).get(rule, "unknown")),
            location=f"{subject}: {result}",
            message=f"{result} on the {subject}",
            path=subject,
        )
        for rule, result in sorted(outcome.items())
        if result in FAILING and rule not in required
    ]
    judged = gate.evaluate(GATE, findings, policy)
    used = {id(w) for _, w in judged.waived}
    stale = tuple(
        (w, outcome.get(w.id.removeprefix(SSG_RULE_PREFIX), "not in the profile"))
        for w in policy.waivers
        if w.covers_path(GATE, subject) and id(w) not in used
    )
    return Judgement(
        subject=subject,
        required=required,
        required_failed=tuple(f"{r} ({outcome[r]})" for r in required if outcome[r] != "pass"),
        outcome=judged,
        stale=stale,
    )


def conclude(rec: StageRecord, judgement: Judgement) -> Verdict:
    """Print and record the judgement; the verdict, with one reason line when it fails."""
    for waiver, result in judgement.stale:
        console.print(
            f"  [yellow]waiver {waiver.id} (gate compliance): the rule gave {result} on the "
            f"{judgement.subject}; it waives nothing, remove it[/]"
        )
    passed = (
        f"{len(judgement.required)} required rules pass; {len(judgement.outcome.waived)} failing rules waived, "
        f"none unwaived, on the {judgement.subject}"
    )
    what = f"compliance rule(s) on the {judgement.subject}"
    verdict = gate.conclude(rec, judgement.outcome, what, passed, judgement.unmet())
    if verdict == "fail":
        hint = (
            " (fix each, or waive it by its XCCDF id under waivers: gate compliance, "
            f"scope {{path: {judgement.subject}}}, owner, justification, expires)"
            if judgement.outcome.blocking
            else ""
        )
        error_line(f"compliance: {rec.reason}{hint}")
    return verdict
