"""SARIF 2.1.0 ↔ normalized findings. Tools' machine output only; never their human text."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core import atomic
from tasks.core.errors import InputError
from tasks.policy.findings import Finding, Severity

LEVELS = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "note": Severity.LOW, "none": Severity.INFO}


def _security_severity(score: float) -> Severity:
    """GitHub code scanning's bands for the numeric ``security-severity`` property."""
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW if score > 0 else Severity.INFO


def _severity(result: dict[str, Any], rule: dict[str, Any]) -> Severity:
    props = result.get("properties") or {}
    if "issue_severity" in props:  # bandit
        return Severity.parse(str(props["issue_severity"]))
    rule_props = rule.get("properties") or {}
    if "security-severity" in rule_props:
        return _security_severity(float(rule_props["security-severity"]))
    level = result.get("level") or (rule.get("defaultConfiguration") or {}).get("level") or "warning"
    return LEVELS.get(level, Severity.MEDIUM)


def _relpath(uri: str, root: Path) -> str:
    path = uri.removeprefix("file://")
    try:
        return str(Path(path).resolve().relative_to(root.resolve())) if Path(path).is_absolute() else path
    except ValueError:
        return path


def load(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: SARIF file was not written by the tool") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON, cannot read SARIF ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != "2.1.0" or not isinstance(doc.get("runs"), list):
        raise InputError(f"{path}: not a SARIF 2.1.0 log (version/runs missing)")
    return doc


def normalize(path: Path, root: Path, rule_id: Callable[[str], str] = str) -> list[Finding]:
    """Findings from every run of the SARIF log at ``path``; ``rule_id`` maps tool rule ids."""
    doc = load(path)
    findings: list[Finding] = []
    for run in doc["runs"]:
        try:
            driver = run["tool"]["driver"]
            tool = str(driver["name"])
            rules = {r["id"]: r for r in driver.get("rules", []) if "id" in r}
            for result in run.get("results", []):
                rid = str(result.get("ruleId") or result.get("rule", {}).get("id", "unknown"))
                loc = (result.get("locations") or [{}])[0].get("physicalLocation", {})
                file = _relpath(loc.get("artifactLocation", {}).get("uri", ""), root)
                line = int(loc.get("region", {}).get("startLine", 0))
                findings.append(
                    Finding(
                        tool=tool.lower(),
                        rule=rule_id(rid),
                        severity=_severity(result, rules.get(rid, {})),
                        location=f"{file}:{line}",
                        message=str(result.get("message", {}).get("text", "")).strip(),
                        path=file,
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path}: malformed SARIF run ({type(exc).__name__}: {exc})") from None
    return findings


def notifications(doc: dict[str, Any]) -> list[str]:
    """The error-level notifications of every run: files a tool could not read (parse errors)."""
    out = []
    for run in doc.get("runs", []):
        for invocation in run.get("invocations") or []:
            for kind in ("toolExecutionNotifications", "toolConfigurationNotifications"):
                for note in invocation.get(kind) or []:
                    if note.get("level", "warning") != "error":
                        continue
                    locations = note.get("locations") or [{}]
                    uri = locations[0].get("physicalLocation", {}).get("artifactLocation", {}).get("uri", "")
                    text = str(note.get("message", {}).get("text", "")).strip()
                    out.append(f"{uri}: {text}" if uri else text)
    return out


# Severity -> SARIF level and GitHub's numeric security-severity (read back by _severity above).
SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "none",
}
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "2.0",
    Severity.INFO: "0.0",
}


def from_findings(tool: str, version: str, findings: Sequence[Finding]) -> dict[str, Any]:
    """A SARIF 2.1.0 log for a tool whose own output is not SARIF (or not usable as such).

    Its findings were mapped once into the project's terms; this writes them back out for code
    scanning, with repo-relative URIs. ``normalize`` of the result gives the same findings.
    """
    worst: dict[str, Severity] = {}
    for f in findings:
        worst[f.rule] = max(worst.get(f.rule, Severity.INFO), f.severity)
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f.message or f.rule},
            "properties": {"issue_severity": str(f.severity).upper()},
        }
        if f.path:
            line = f.location.rsplit(":", 1)[-1]
            region = {"startLine": int(line)} if line.isdigit() and int(line) > 0 else {}
            result["locations"] = [
                {"physicalLocation": {"artifactLocation": {"uri": f.path}, **({"region": region} if region else {})}}
            ]
        results.append(result)
    rules = [
        {"id": rule, "properties": {"security-severity": SECURITY_SEVERITY[severity]}}
        for rule, severity in sorted(worst.items())
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": tool, "version": version, "rules": rules}}, "results": results}],
    }


def relocate(path: Path, uris: Mapping[str, str]) -> None:
    """Rewrite result locations in the SARIF log at ``path``: a tool read a copy, the finding is the original's."""
    doc = load(path)
    for run in doc["runs"]:
        for result in run.get("results") or []:
            for location in result.get("locations") or []:
                artifact = location.get("physicalLocation", {}).get("artifactLocation", {})
                if artifact.get("uri") in uris:
                    artifact["uri"] = uris[artifact["uri"]]
    atomic.write_text(path, json.dumps(doc, indent=2) + "\n")
