"""Minimum-elements conformance of each SBOM, checked by the real checker (sbomcheck).

security-policy.yaml ``gates.sbom.conformance`` names the standards every SBOM must meet;
``sbomcheck`` (ntia-conformance-checker, pinned in tools.lock) checks the SPDX document
against each one and writes a JSON report. Every missing element becomes a Finding — one per
component and field, or one per document-level element — so the usual gate and waivers
(owner, expiry, scope) decide, like for any other finding.

sbomcheck 6.0.0 checks SPDX only: NTIA 2021 and CISA's 2024 minimum on SPDX 2.x and 3.0,
BSI TR-03183-2 on SPDX 3.0 only. The CycloneDX twin of each document carries the same
completed data and is checked against its schema instead (sbom_complete).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import PolicyError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import REPORT_MEDIA_TYPE
from tasks.core.runner import Tool
from tasks.policy.findings import Finding, Severity


@dataclass(frozen=True)
class Standard:
    name: str  # the policy's name for it
    comply: str  # sbomcheck --comply
    specs: tuple[str, ...]  # the SBOM specifications sbomcheck checks it on
    components: tuple[str, ...]  # the per-component elements it requires (sbomcheck report keys)


NTIA_COMPONENT = ("componentNames", "componentVersions", "componentIdentifiers", "componentSuppliers")
CISA_COMPONENT = (*NTIA_COMPONENT, "componentConcludedLicenses", "componentCopyrightTexts")
STANDARDS = {
    s.name: s
    for s in (
        Standard("ntia-2021", "ntia", ("spdx2", "spdx3"), NTIA_COMPONENT),
        Standard("cisa-2024-min", "fsct3-min", ("spdx2", "spdx3"), CISA_COMPONENT),
        Standard("bsi-tr-03183-2", "bsi", ("spdx3",), ("componentNames", "componentVersions")),
    )
}
# report key -> the element's name in findings (and so in waiver ids: "<standard>/<element>")
COMPONENT_ELEMENTS = {
    "componentNames": "name",
    "componentVersions": "version",
    "componentIdentifiers": "identifier",
    "componentSuppliers": "supplier",
    "componentConcludedLicenses": "concluded-license",
    "componentCopyrightTexts": "copyright",
}
DOCUMENT_ELEMENTS = {
    "authorNameProvided": "author",
    "timestampProvided": "timestamp",
    "dependencyRelationshipsProvided": "dependency-relationships",
    "componentsEvaluated": "components-reachable",
}
SPDX2 = "spdx2"  # the pipeline writes SPDX 2.3 (syft spdx-json@2.3)


def standard(name: str, spec: str = SPDX2) -> Standard:
    """The standard ``name``, refused when sbomcheck cannot check it on ``spec`` documents."""
    if name not in STANDARDS:
        raise PolicyError(f"gates.sbom.conformance: unknown standard {name!r} (known: {', '.join(STANDARDS)})")
    found = STANDARDS[name]
    if spec not in found.specs:
        raise PolicyError(
            f"gates.sbom.conformance: {name} is checked by sbomcheck on {'/'.join(found.specs)} only, "
            f"and the pipeline writes {spec} SBOMs"
        )
    return found


def findings(report: dict[str, object], std: Standard, document: str) -> list[Finding]:
    """Every missing element of one sbomcheck JSON report, as findings on ``document``."""
    out: list[Finding] = []

    def gap(element: str, what: str, package: str = "") -> None:
        location = f"{document}:{package}" if package else document
        out.append(
            Finding("sbomcheck", f"{std.name}/{element}", Severity.HIGH, location, what, path=document, package=package)
        )

    for key, element in DOCUMENT_ELEMENTS.items():
        if report.get(key) is False:
            gap(element, f"{std.name}: the document has no {element.replace('-', ' ')}")
    for key in std.components:
        element, section = COMPONENT_ELEMENTS[key], report.get(key)
        if isinstance(section, dict):
            for name in sorted(set(map(str, section.get("nonconformantComponents") or []))):
                gap(element, f"{std.name}: component {name} has no {element.replace('-', ' ')}", name)
    for message in _list(report.get("validationMessages")):
        gap("valid", f"{std.name}: not valid SPDX: {message}")
    for message in _list(report.get("parsingError")):
        gap("parse", f"{std.name}: sbomcheck cannot parse it: {message}")
    if report.get("isConformant") is False and not out:
        gap("conformant", f"{std.name}: sbomcheck reports the document not conformant")
    return out


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def check(rec: StageRecord, sbomcheck: Tool, spdx: Path, std: Standard, report: Path) -> list[Finding]:
    """Run sbomcheck for one standard on one SPDX document; its JSON report is an output."""
    report.unlink(missing_ok=True)
    done = runner.run(
        rec,
        sbomcheck,
        ["--comply", std.comply, "--sbom-spec", SPDX2, "--output", "json", "--output-file", report, spdx],
        check=False,
        timeout=600,
    )
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ToolError(
            f"sbomcheck wrote no readable report for {spdx.name} (exit {done.returncode}): {done.tail()}"
        ) from exc
    if not isinstance(data, dict):
        raise ToolError(f"{report}: sbomcheck's report is not a JSON object")
    rec.add_output(report, REPORT_MEDIA_TYPE)
    return findings(data, std, spdx.name)
