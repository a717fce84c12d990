"""Apply a policy gate to normalized findings: threshold first, then waivers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.policy.findings import Finding, findings_table
from tasks.policy.security_policy import Policy, Waiver


@dataclass(frozen=True)
class GateOutcome:
    gate: str
    threshold: str
    blocking: tuple[Finding, ...]
    waived: tuple[tuple[Finding, Waiver], ...]
    below_threshold: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return not self.blocking

    def blocking_names(self) -> list[str]:
        """Each distinct blocking finding once, as `rule (location)`."""
        return sorted({f"{f.rule} ({f.location})" for f in self.blocking})

    def summary(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "threshold": self.threshold,
            "blocking": len(self.blocking),
            "waived": [
                {
                    "finding": f.rule,
                    "location": f.location,
                    "waiver": w.id,
                    "owner": w.owner,
                    "justification": " ".join(w.justification.split()),
                    "expires": w.expires.isoformat(),
                }
                for f, w in self.waived
            ],
            "below_threshold": len(self.below_threshold),
        }


def evaluate(gate_name: str, findings: Iterable[Finding], policy: Policy) -> GateOutcome:
    gate = policy.gate(gate_name)
    blocking: list[Finding] = []
    waived: list[tuple[Finding, Waiver]] = []
    below: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (-f.severity, f.location, f.rule)):
        if finding.severity < gate.fail_on:
            below.append(finding)
        elif (waiver := policy.waiver_for(gate_name, finding)) is not None:
            waived.append((finding, waiver))
        else:
            blocking.append(finding)
    return GateOutcome(gate_name, str(gate.fail_on), tuple(blocking), tuple(waived), tuple(below))


def conclude(rec: StageRecord, outcome: GateOutcome, what: str, passed: str, unmet: str = "") -> Verdict:
    """The ending every findings gate shares: blocking table, waivers used, reason, verdict.

    ``unmet``: what fails the gate whatever the findings (a required compliance rule that did not
    pass), said first in the reason."""
    findings_table(f"blocking {what} (threshold: {outcome.threshold})", outcome.blocking)
    for finding, waiver in outcome.waived:
        console.print(f"  waived: {finding.rule} at {finding.location} by {waiver.owner} until {waiver.expires}")
    if outcome.passed and not unmet:
        console.print(f"[green]{rec.stage}: pass[/] — {passed}")
        return "pass"
    blocking = f"{len(outcome.blocking)} blocking {what}: " + ", ".join(outcome.blocking_names())
    rec.reason = "; ".join(([unmet] if unmet else []) + ([blocking] if outcome.blocking else []))
    return "fail"
