"""Talk 02/04 — known vulnerabilities: grype over the image SBOM, OpenVEX applied, gated.

The VEX documents in vex/ are the reviewed answer to each accepted vulnerability; grype
applies them (--vex) and moves covered matches to ignoredMatches. What remains is gated
against gates.dependencies.fail_on, with package-scoped waivers from security-policy.yaml.
No usable database fails the stage unless --allow-missing-db is given, which is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tasks.analysis import vulndb
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import OPENVEX_MEDIA_TYPE
from tasks.core.runner import Tool
from tasks.policy.findings import Finding, Severity


def vex_documents(ctx: Context, rec: StageRecord) -> list[Path]:
    directory = ctx.inside(ctx.policy.gate("dependencies").settings.get("vex_dir", "vex"))
    docs = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for doc in docs:
        try:
            data = json.loads(doc.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{doc}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{doc}: unreadable ({exc})") from exc
        if not isinstance(data, dict):
            raise InputError(f"{doc}: expected an OpenVEX document (a JSON object)")
        if not str(data.get("@context", "")).startswith("https://openvex.dev/ns/"):
            raise InputError(f"{doc}: @context is not an OpenVEX namespace (https://openvex.dev/ns/...)")
        if not isinstance(data.get("statements"), list):
            raise InputError(f"{doc}: statements: expected a list of OpenVEX statements")
        rec.add_input(doc, OPENVEX_MEDIA_TYPE)
    return docs


def grype_config(out: Path) -> Path:
    """An explicit, empty grype config: a .grype.yaml in the repository must not add ignore rules.
    VEX documents and policy waivers are the only ways to accept a vulnerability."""
    path = out / "grype-config.yaml"
    atomic.write_text(
        path, "# written by tasks/scan.py: no ignore rules; VEX and waivers only\ncheck-for-app-update: false\n"
    )
    return path


def run_grype(
    ctx: Context,
    rec: StageRecord,
    grype: Tool,
    sbom: Path,
    vex: list[Path],
    outputs: dict[str, Path],
    db_source: str,
    max_age_hours: int,
) -> dict[str, Any]:
    """grype over ``sbom`` (a file grype reads: syft JSON, SPDX, CycloneDX) with the VEX
    documents applied; writes each ``outputs`` format (json, sarif) and returns the JSON result."""
    out = outputs["json"].parent
    vex_args = [arg for doc in vex for arg in ("--vex", str(doc))]
    formats = [arg for fmt, path in outputs.items() for arg in ("-o", f"{fmt}={path}")]
    runner.run(
        rec,
        grype,
        ["--config", grype_config(out), f"sbom:{sbom}", *vex_args, *formats],
        env=vulndb.grype_env(db_source, max_age_hours),
        cwd=ctx.root,
        timeout=1800,
    )
    result: dict[str, Any] = json.loads(outputs["json"].read_text(encoding="utf-8"))
    return result


def findings(report_json: dict[str, Any]) -> tuple[list[Finding], list[dict[str, Any]]]:
    """grype matches as Findings; ignored (VEX-covered) matches summarised separately."""
    out = []
    for match in report_json.get("matches", []):
        vuln, art = match["vulnerability"], match["artifact"]
        related = tuple(r["id"] for r in match.get("relatedVulnerabilities", []) if r.get("id"))
        fixes = vuln.get("fix", {}).get("versions", [])
        out.append(
            Finding(
                tool="grype",
                rule=vuln["id"],
                severity=Severity.parse(vuln.get("severity") or "unknown"),
                location=f"{art['name']}@{art['version']}",
                message=f"{art.get('type', '')} {art['name']} {art['version']}; "
                f"fixed in {', '.join(fixes) or 'no fix'}",
                package=art["name"],
                aliases=related,
            )
        )
    ignored = []
    for m in report_json.get("ignoredMatches", []):
        rules = m.get("appliedIgnoreRules", [])
        entry = {
            "id": m["vulnerability"]["id"],
            "package": f"{m['artifact']['name']}@{m['artifact']['version']}",
            "rules": rules,
        }
        if not rules or not all(r.get("vex-status") or _grype_default(r) for r in rules):
            raise InputError(
                f"grype ignored {entry['id']} in {entry['package']} by a rule that is not a VEX statement; "
                "only vex/ and security-policy.yaml waivers may accept a vulnerability"
            )
        ignored.append(entry)
    return out, ignored


# grype's built-in ignore rules: kernel header packages matched only indirectly.
GRYPE_DEFAULT_IGNORES = {"kernel-headers", "linux(-.*)?-headers-.*", "linux-libc-dev"}


def _grype_default(rule: dict[str, Any]) -> bool:
    package = rule.get("package") or {}
    return rule.get("match-type") == "exact-indirect-match" and package.get("name") in GRYPE_DEFAULT_IGNORES
