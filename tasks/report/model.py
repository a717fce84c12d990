"""What the report shows, read from out/evidence.json and the files it names by digest.

Nothing here runs a tool or re-decides a gate: every number is a field of the evidence or of
a file whose sha256 the evidence recorded (re-hashed before it is read; a changed file is
named in ``integrity`` and left out, never shown as if it were the recorded one).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core.errors import EvidenceError, InputError
from tasks.core.evidence import not_covered_notes
from tasks.core.media_types import GRYPE_JSON_MEDIA_TYPE
from tasks.policy.findings import Severity

SEVERITIES = ("critical", "high", "medium", "low", "info")
# the stages whose artifacts make the chain of custody, from source to where it is admitted or booted
CUSTODY = (
    "build",
    "firmware",
    "sbom",
    "scan",
    "compliance",
    "provenance",
    "sign",
    "verify",
    "rescan",
    "policy",
    "deploy",
    "demo",
    "boot",
)


@dataclass(frozen=True)
class StageRow:
    name: str
    verdict: str
    duration_s: float
    started: str
    tools: dict[str, str]
    notes: list[str]
    outputs: list[dict[str, str]]
    up_to_date: bool = False


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    digest: str
    verdict: str
    depth: int
    row: int


@dataclass
class Report:
    run: dict[str, str]
    stages: list[StageRow]
    nodes: list[Node]
    edges: list[tuple[str, str]]
    sast: list[dict[str, str]] = field(default_factory=list)
    sast_counts: dict[str, Any] = field(default_factory=dict)
    vulns: list[dict[str, str]] = field(default_factory=list)
    severity_counts: dict[str, int] = field(default_factory=dict)
    compliance: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    devices: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)


def short(digest: str) -> str:
    return digest[:19] + "…" if digest.startswith("sha256:") and len(digest) > 19 else digest


def _recorded_json(ctx: Context, report: Report, art: Mapping[str, Any]) -> Any:
    """A file the evidence names, re-hashed against its recorded digest; None (and noted) if not."""
    try:
        path = ctx.unchanged(str(art["name"]), str(art["digest"]))
        return json.loads(path.read_text(encoding="utf-8"))
    except (EvidenceError, InputError, OSError, ValueError, KeyError) as exc:
        report.integrity.append(str(exc))
        return None


def _outputs(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [o for o in rec.get("outputs", []) if isinstance(o, dict)]


def _run(stages: Mapping[str, Mapping[str, Any]], evidence: Mapping[str, Any], root: Path) -> dict[str, str]:
    build = (stages.get("build") or {}).get("details", {})
    sign = (stages.get("sign") or {}).get("details", {})
    run = dict(evidence.get("run") or {})
    return {
        "commit": str(build.get("revision") or run.get("commit") or "not recorded (no build stage)"),
        "when": str(evidence.get("updated", "")),
        "where": str(run.get("where") or ("CI" if os.environ.get("GITHUB_ACTIONS") == "true" else "local")),
        "signer": _signer(sign.get("signer"), root),
        "image": str(build.get("image", "")),
    }


def _signer(signer: Any, root: Path) -> str:
    """The signer as the evidence names it; a key file inside the checkout by its project path (portable)."""
    if isinstance(signer, dict):
        return ", ".join(f"{k}: {_project_path(v, root)}" for k, v in sorted(signer.items()))
    return str(signer or "not signed in this run")


def _project_path(value: Any, root: Path) -> str:
    path = Path(str(value))
    return str(path.relative_to(root)) if path.is_absolute() and path.is_relative_to(root) else str(value)


def _stage_rows(stages: Mapping[str, Mapping[str, Any]], order: Sequence[str]) -> list[StageRow]:
    names = list(dict.fromkeys([*(n for n in order if n in stages), *stages]))
    rows = []
    for name in names:
        rec = stages[name]
        notes = [
            *(f"opt-out: {o}" for o in rec.get("opt_outs", [])),
            *not_covered_notes(rec),
            *([str(rec["reason"])] if rec.get("reason") else []),
        ]
        rows.append(
            StageRow(
                name=name,
                verdict=str(rec.get("verdict", "?")),
                duration_s=float(rec.get("duration_s", 0.0)),
                started=str(rec.get("started", "")),
                tools={str(k): str(v) for k, v in sorted((rec.get("tools") or {}).items())},
                notes=notes,
                outputs=[{k: str(v) for k, v in o.items()} for o in _outputs(rec)],
                up_to_date=bool((rec.get("details") or {}).get("up_to_date")),
            )
        )
    return rows


def _main_digest(rec: Mapping[str, Any]) -> str:
    outs = _outputs(rec)
    for out in outs:
        if out.get("kind") == "oci":
            return str(out.get("digest", ""))
    for inp in rec.get("inputs", []):
        if isinstance(inp, dict) and inp.get("kind") == "oci":
            return str(inp.get("digest", ""))
    return str(outs[0].get("digest", "")) if outs else ""


def custody(stages: Mapping[str, Mapping[str, Any]]) -> tuple[list[Node], list[tuple[str, str]]]:
    """Stages of the chain as nodes; an edge wherever one stage's input is another's output, by digest."""
    present = [n for n in CUSTODY if n in stages]
    produced: dict[str, str] = {}
    for name in present:
        for out in _outputs(stages[name]):
            produced.setdefault(str(out.get("digest")), name)
    edges: set[tuple[str, str]] = set()
    for name in present:
        for inp in stages[name].get("inputs", []):
            source = produced.get(str(inp.get("digest"))) if isinstance(inp, dict) else None
            if source and source != name:
                edges.add((source, name))
    roots = [n for n in ("build", "firmware") if n in stages]
    commit = str((stages.get("build") or {}).get("details", {}).get("revision", ""))
    if roots:
        edges |= {("commit", r) for r in roots}
    depth = {"commit": 0}
    for name in present:  # CUSTODY is in pipeline order, so a source's depth is known first
        parents = [s for s, t in edges if t == name and s in depth]
        depth[name] = 1 + max((depth[p] for p in parents), default=0)
    rows: dict[int, int] = {}
    nodes = []
    for name in (["commit"] if roots else []) + present:
        d = depth[name]
        row = rows.get(d, 0)
        rows[d] = row + 1
        if name == "commit":
            nodes.append(Node("commit", "commit", commit or "not recorded", "pass", d, row))
            continue
        rec = stages[name]
        nodes.append(Node(name, name, _main_digest(rec), str(rec.get("verdict", "?")), d, row))
    return nodes, sorted(edges)


def _sast(ctx: Context, report: Report, rec: Mapping[str, Any]) -> None:
    details = rec.get("details") or {}
    waived = {(w.get("finding"), w.get("location")): w for w in details.get("waived", [])}
    report.sast_counts = {
        "threshold": details.get("threshold", ""),
        "blocking": details.get("blocking", 0),
        "waived": len(waived),
        "below_threshold": details.get("below_threshold", 0),
    }
    for art in _outputs(rec):
        if not str(art.get("name", "")).endswith("findings.json"):
            continue
        doc = _recorded_json(ctx, report, art)
        if not isinstance(doc, dict):
            continue
        threshold = Severity.parse(str(details.get("threshold") or "info"))
        for f in doc.get("findings", []):
            severity = Severity.parse(str(f.get("severity", "info")))
            waiver = waived.get((f.get("rule"), f.get("location")))
            if severity < threshold:
                continue  # below the gate: counted, not listed (the SARIF has them)
            report.sast.append(
                {
                    "rule": str(f.get("rule", "")),
                    "location": str(f.get("location", "")),
                    "severity": str(severity),
                    "tool": str(f.get("tool", "")),
                    "message": str(f.get("message", "")),
                    "decision": (
                        f"waived by {waiver.get('owner')} until {waiver.get('expires')}" if waiver else "blocks"
                    ),
                }
            )


def _vulns(ctx: Context, report: Report, rec: Mapping[str, Any]) -> None:
    details = rec.get("details") or {}
    gate = details.get("gate") or {}
    waived = {(w.get("finding"), w.get("location")): w for w in gate.get("waived", [])}
    threshold = Severity.parse(str(gate.get("threshold") or "info"))
    counts = dict.fromkeys(SEVERITIES, 0)
    for art in _outputs(rec):
        if art.get("media_type") != GRYPE_JSON_MEDIA_TYPE:
            continue
        doc = _recorded_json(ctx, report, art)
        if not isinstance(doc, dict):
            continue
        for match, vex in [(m, "") for m in doc.get("matches", [])] + [
            (m, "not_affected") for m in doc.get("ignoredMatches", [])
        ]:
            vuln, pkg = match.get("vulnerability", {}), match.get("artifact", {})
            severity = Severity.parse(str(vuln.get("severity") or "unknown"))
            location = f"{pkg.get('name', '')}@{pkg.get('version', '')}"
            rules = match.get("appliedIgnoreRules", [])
            status = next((str(r.get("vex-status")) for r in rules if r.get("vex-status")), vex)
            waiver = waived.get((vuln.get("id"), location))
            if status:
                decision = f"accepted by VEX ({status})"
            elif waiver:
                decision = f"waived by {waiver.get('owner')} until {waiver.get('expires')}"
            elif severity >= threshold:
                decision = "blocks"
            else:
                decision = f"below threshold ({threshold})"
            if not status:
                counts[str(severity)] += 1
            report.vulns.append(
                {
                    "id": str(vuln.get("id", "")),
                    "package": location,
                    "severity": str(severity),
                    "fix": ", ".join(map(str, (vuln.get("fix") or {}).get("versions", []))) or "no fix",
                    "vex": status or "—",
                    "decision": decision,
                }
            )
    report.vulns.sort(key=lambda v: (-Severity.parse(v["severity"]), v["id"], v["package"]))
    report.severity_counts = counts


def _checks(ctx: Context, report: Report, name: str, rec: Mapping[str, Any]) -> None:
    """Any stage that concluded by Check rows (verify, policy, demo, boot, workflows ...)."""
    recorded = (rec.get("details") or {}).get("checks")
    if not isinstance(recorded, dict) or not recorded:
        return
    rows: list[dict[str, Any]] = [{"name": k, "passed": v == "pass", "detail": ""} for k, v in recorded.items()]
    for art in _outputs(rec):
        if art.get("media_type") != "application/json" or not str(art.get("name", "")).endswith(".json"):
            continue
        doc = _recorded_json(ctx, report, art) if str(art["name"]).endswith("report.json") else None
        if isinstance(doc, dict) and isinstance(doc.get("checks"), list):
            rows = [
                {
                    "name": str(c.get("name", "")),
                    "passed": bool(c.get("passed")),
                    "detail": (f"expected: {c['expected']} — got: " if c.get("expected") else "")
                    + str(c.get("detail", "")),
                }
                for c in doc["checks"]
                if isinstance(c, dict)
            ]
            break
    report.checks[name] = rows


def _devices(stages: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Each device the evidence knows, with its attestation verdict: the reference device's measured
    boot against the signed reference values (boot), the devices the factory made (their EK
    certificate check), a device attached to the network (802.1X with its certificate)."""
    firmware = (stages.get("firmware") or {}).get("details", {})
    version = str(firmware.get("firmware_version", "not recorded"))
    rows = []
    boot = stages.get("boot")
    if boot:
        details = boot.get("details") or {}
        rows.append(
            {
                "device": "reference device (QEMU virt + swtpm)",
                "mode": str(details.get("mode", "")),
                "firmware": version,
                "attestation": "measured boot: PCRs vs the signed reference values",
                "verdict": str(boot.get("verdict", "?")),
                "pcrs": ", ".join(f"PCR{k}" for k in (details.get("pcrs") or {})),
            }
        )
    factory = stages.get("factory")
    if factory:
        details = factory.get("details") or {}
        checks = details.get("checks") or {}
        for device in details.get("devices") or []:
            ek = next((str(v) for k, v in checks.items() if str(k).startswith(f"{device}: EK certificate")), "?")
            rows.append(
                {
                    "device": str(device),
                    "mode": "manufactured (factory)",
                    "firmware": "-",
                    "attestation": "EK certificate in the TPM, issued by the manufacturer CA",
                    "verdict": ek,
                    "pcrs": "",
                }
            )
    attached = ((stages.get("network") or {}).get("details") or {}).get("device")
    if isinstance(attached, dict):
        rows.append(
            {
                "device": str(attached.get("name", "?")),
                "mode": "network attach",
                "firmware": "-",
                "attestation": "802.1X EAP-TLS with its device certificate",
                "verdict": "pass" if attached.get("admitted") else "fail",
                "pcrs": "",
            }
        )
    return rows


def build(ctx: Context, evidence: Mapping[str, Any], order: Sequence[str], history: list[dict[str, Any]]) -> Report:
    stages: Mapping[str, Mapping[str, Any]] = evidence.get("stages") or {}
    nodes, edges = custody(stages)
    report = Report(_run(stages, evidence, ctx.root), _stage_rows(stages, order), nodes, edges, history=history)
    if "sast" in stages:
        _sast(ctx, report, stages["sast"])
    if "scan" in stages:
        _vulns(ctx, report, stages["scan"])
    if "compliance" in stages:
        report.compliance = dict(stages["compliance"].get("details") or {})
    for name, rec in stages.items():
        _checks(ctx, report, name, rec)
    report.devices = _devices(stages)
    return report
