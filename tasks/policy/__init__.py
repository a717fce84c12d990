"""The project's security policy and how findings meet it.

security-policy.yaml (schema-validated thresholds and waivers), normalized findings, the
gate, SARIF reading and Rego evaluation with OPA. Knows no stage.
"""

from __future__ import annotations

from tasks.policy.findings import Finding, Severity
from tasks.policy.gate import GateOutcome
from tasks.policy.security_policy import Gate, Policy, Waiver, load

__all__ = ["Finding", "Gate", "GateOutcome", "Policy", "Severity", "Waiver", "load"]
