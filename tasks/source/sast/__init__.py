"""Talk 01 — SAST: every first-party file, by language, each language with its scanner, gated by policy.

Scope (scope.py): every file git knows, minus `gates.sast.exclude` (each with a reason).
Scanners, all pinned in tools.lock, all ending as SARIF in out/sast/ and as findings through
the one gate (tasks/policy/gate.py) and its waivers:

| language   | scanners                                     | module        |
|------------|----------------------------------------------|---------------|
| python     | bandit; semgrep with .semgrep/rules          | python, semgrep |
| go         | gosec                                        | gosec         |
| shell      | shellcheck                                   | shellcheck    |
| rego       | opa check --strict; Regal                    | rego          |
| dockerfile | semgrep with .semgrep/rules                  | semgrep       |
| yaml       | semgrep with .semgrep/rules                  | semgrep       |

A code language the repository holds that no scanner reads is reported as "not covered"
(evidence and summary). Inline suppressions are ignored by every scanner (suppressions.py):
the only way to accept a finding is a waiver in security-policy.yaml, with a justification,
an owner and an expiry date, so every accepted risk is reviewed in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.policy.findings import Finding
from tasks.source.sast import gosec, python, rego, semgrep, shellcheck
from tasks.source.sast.scope import Exclusion, Scope, collect

ScanFn = Callable[[Context, StageRecord, Sequence[str]], list[Finding]]


@dataclass(frozen=True)
class Scanner:
    name: str  # as pinned in tools.lock
    languages: tuple[str, ...]
    scan: ScanFn


SCANNERS: tuple[Scanner, ...] = (
    Scanner("bandit", ("python",), python.bandit),
    Scanner("semgrep", ("python", "dockerfile", "yaml"), semgrep.scan),
    Scanner("gosec", ("go",), gosec.scan),
    Scanner("shellcheck", ("shell",), shellcheck.scan),
    Scanner("opa", ("rego",), rego.opa_check),
    Scanner("regal", ("rego",), rego.regal),
)


def scanners_by_language() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for scanner in SCANNERS:
        for language in scanner.languages:
            out.setdefault(language, []).append(scanner.name)
    return out


def scan(ctx: Context, rec: StageRecord, scope: Scope) -> list[Finding]:
    """Run every scanner that has files in scope; a scanner with nothing to read does not run."""
    findings: list[Finding] = []
    for scanner in SCANNERS:
        files = scope.files(scanner.languages)
        if files:
            findings += scanner.scan(ctx, rec, files)
    return findings


__all__ = ["SCANNERS", "Exclusion", "Scanner", "Scope", "collect", "scan", "scanners_by_language"]
