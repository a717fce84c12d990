"""Minimum-elements conformance of each SBOM, checked by the real checker (sbomcheck).

security-policy.yaml ``gates.sbom.conformance`` names the standards every SBOM must meet;
``sbomcheck`` (ntia-conformance-checker, pinned in tools.lock) checks the SPDX document
against each one and writes a JSON report. Every missing element becomes a Finding — one per
component and field, or one per document-level element — so the usual gate and waivers
(owner, expiry, scope) decide, like for any other finding.

sbomcheck 6.0.0 checks SPDX only: NTIA 2021 and CISA's 2024 minimum on SPDX 2.x and 3.0,
BSI TR-03183-2 on SPDX 3.0.1 only. So NTIA is checked on the SPDX 2.3 document, CISA and BSI
on its SPDX 3.0.1 twin (sbom_spdx3). The CycloneDX twin of each document carries the same
completed data and is checked against its schema instead (sbom_complete).

sbomcheck's JSON report leaves out the BSI-specific elements (creator contact, filename,
SHA-512, distribution licence, structured property); for BSI the same checker is asked
through its own Python API (``BSIChecker``, run by the interpreter of sbomcheck's pinned
venv), which names every component each element is missing from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
    specs: tuple[str, ...]  # the SBOM specifications sbomcheck checks it on; the first is used
    components: tuple[str, ...]  # the per-component elements it requires (sbomcheck report keys)

    @property
    def spec(self) -> str:
        return self.specs[0]


NTIA_COMPONENT = ("componentNames", "componentVersions", "componentIdentifiers", "componentSuppliers")
CISA_COMPONENT = (*NTIA_COMPONENT, "componentConcludedLicenses", "componentCopyrightTexts")
STANDARDS = {
    s.name: s
    for s in (
        Standard("ntia-2021", "ntia", ("spdx2", "spdx3"), NTIA_COMPONENT),
        # the SBOM type (generation context) is read from SPDX 3 only
        Standard("cisa-2024-min", "fsct3-min", ("spdx3",), CISA_COMPONENT),
        Standard("bsi-tr-03183-2", "bsi", ("spdx3",), ()),
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
# BSI TR-03183-2 element (BSIChecker.MIN_ELEMENTS) -> its name in findings
BSI_COMPONENT_ELEMENTS = {
    "creator": "creator",
    "name": "name",
    "version": "version",
    "filename": "filename",
    "distribution_licenses": "distribution-licence",
    "sha512_hash": "sha512",
    "executable_property": "executable",
    "archive_property": "archive",
    "structured_property": "structured",
}
BSI_DOCUMENT_ELEMENTS = {
    "creator": "author",  # the SBOM's creator, with an e-mail or URL
    "timestamp": "timestamp",
    "sbomUri": "sbom-uri",
    "dependencyCompleteness": "dependency-completeness",
}
# Run by the python of sbomcheck's own venv: the checker's BSI verdict, element by element.
BSI_DETAIL = """\
import json, sys
from ntia_conformance_checker.bsi_checker import BSIChecker
c = BSIChecker(sys.argv[1], compliance="bsi", sbom_spec="spdx3")
g = lambda name, default=False: getattr(c, name, default)
json.dump({"isConformant": bool(c.compliant), "parsingError": [str(m) for m in c.parsing_errors],
           "validationMessages": [str(m) for m in c.validation_messages],
           "creator": g("doc_creator"), "timestamp": g("doc_timestamp"), "sbomUri": g("doc_uri"),
           "dependencyCompleteness": g("dependency_completeness"), "componentsEvaluated": g("components_evaluated"),
           "missing": {k: sorted({n for n, _ in v}) for k, v in g("all_components_without_info", [])}},
          open(sys.argv[2], "w", encoding="utf-8"), indent=2)
"""
SPDX2 = "spdx2"  # syft's SPDX 2.3 document
SPDX3 = "spdx3"  # its SPDX 3.0.1 twin (sbom_spdx3)


def standard(name: str) -> Standard:
    """The standard ``name``; an unknown one is a policy error."""
    if name not in STANDARDS:
        raise PolicyError(f"gates.sbom.conformance: unknown standard {name!r} (known: {', '.join(STANDARDS)})")
    return STANDARDS[name]


def standards_for(settings: Mapping[str, Any], stem: str) -> list[Standard]:
    """``gates.sbom.conformance``: one list for every SBOM, or a list per subject (image, source, firmware)."""
    named = settings.get("conformance", [])
    if isinstance(named, dict):
        if stem not in named:
            raise PolicyError(f"gates.sbom.conformance names no standards for the {stem} SBOM")
        named = named[stem]
    return [standard(str(name)) for name in named] if isinstance(named, list) else []


def findings(report: dict[str, object], std: Standard, document: str) -> list[Finding]:
    """Every missing element of one sbomcheck JSON report, as findings on ``document``."""
    out: list[Finding] = []

    def gap(element: str, what: str, package: str = "") -> None:
        out.append(_gap(std, document, element, what, package))

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


def bsi_findings(report: dict[str, object], std: Standard, document: str) -> list[Finding]:
    """Every missing BSI TR-03183-2 element of one BSIChecker report, as findings on ``document``."""
    out: list[Finding] = []

    def gap(element: str, what: str, package: str = "") -> None:
        out.append(_gap(std, document, element, what, package))

    for key, element in BSI_DOCUMENT_ELEMENTS.items():
        if report.get(key) is False:
            gap(element, f"{std.name}: the document has no {element.replace('-', ' ')}")
    if report.get("componentsEvaluated") is False:
        gap("components-reachable", f"{std.name}: no component is reachable from the SBOM's root")
    missing = report.get("missing")
    for key, names in missing.items() if isinstance(missing, dict) else []:
        element = BSI_COMPONENT_ELEMENTS.get(str(key), str(key))
        for name in sorted(set(map(str, _list(names)))):
            gap(element, f"{std.name}: component {name} has no {element.replace('-', ' ')}", name)
    for message in _list(report.get("validationMessages")):
        gap("valid", f"{std.name}: not valid SPDX 3.0.1: {message}")
    for message in _list(report.get("parsingError")):
        gap("parse", f"{std.name}: sbomcheck cannot parse it: {message}")
    if report.get("isConformant") is not True and not out:
        gap("conformant", f"{std.name}: sbomcheck reports the document not conformant")
    return out


def _gap(std: Standard, document: str, element: str, what: str, package: str = "") -> Finding:
    """One missing element, on the document or on one of its components (``package``)."""
    location = f"{document}:{package}" if package else document
    return Finding("sbomcheck", f"{std.name}/{element}", Severity.HIGH, location, what, path=document, package=package)


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def check(rec: StageRecord, sbomcheck: Tool, spdx: Path, std: Standard, report: Path) -> list[Finding]:
    """Run sbomcheck for one standard on one SPDX document (of ``std.spec``); its JSON report is an output."""
    report.unlink(missing_ok=True)
    if std.comply == "bsi":
        python = replace(sbomcheck, path=sbomcheck.path.resolve().with_name("python"))
        done = runner.run(rec, python, ["-c", BSI_DETAIL, spdx, report], check=False, timeout=600)
    else:
        done = runner.run(
            rec,
            sbomcheck,
            ["--comply", std.comply, "--sbom-spec", std.spec, "--output", "json", "--output-file", report, spdx],
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
    return bsi_findings(data, std, spdx.name) if std.comply == "bsi" else findings(data, std, spdx.name)
