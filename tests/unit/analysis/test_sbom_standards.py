"""Which SBOM standards the gate may name, and sbomcheck reports as findings (issue #21, ADR 0014)."""

from __future__ import annotations

import pytest

from tasks.analysis import sbom_conformance
from tasks.core.errors import PolicyError
from tasks.policy.security_policy import load
from tests.support.project import REPO


def test_each_standard_is_checked_on_the_document_sbomcheck_can_judge() -> None:
    assert sbom_conformance.standard("ntia-2021").spec == "spdx2"
    assert sbom_conformance.standard("bsi-tr-03183-2").spec == "spdx3"  # the SPDX 3.0.1 twin
    assert sbom_conformance.standard("cisa-2024-min").spec == "spdx3"  # the SBOM type is SPDX 3 only
    with pytest.raises(PolicyError, match="unknown standard"):
        sbom_conformance.standard("iso-5962")


def test_the_gate_names_only_standards_each_sbom_meets() -> None:
    settings = load(REPO / "security-policy.yaml").gate("sbom").settings
    # BSI on the image only: it needs the deployables' SHA-512 the build records (ADR 0019)
    assert [s.name for s in sbom_conformance.standards_for(settings, "image")] == ["ntia-2021", "bsi-tr-03183-2"]
    assert [s.name for s in sbom_conformance.standards_for(settings, "source")] == ["ntia-2021"]
    assert [s.name for s in sbom_conformance.standards_for(settings, "firmware")] == ["ntia-2021"]
    assert [s.name for s in sbom_conformance.standards_for({"conformance": ["ntia-2021"]}, "source")] == ["ntia-2021"]
    with pytest.raises(PolicyError, match="no standards for the source SBOM"):
        sbom_conformance.standards_for({"conformance": {"image": ["ntia-2021"]}}, "source")


def test_bsi_gaps_become_findings_per_component_and_element() -> None:
    # the shape BSI_DETAIL writes from sbomcheck's BSIChecker
    report = {
        "isConformant": False,
        "creator": False,
        "timestamp": True,
        "sbomUri": True,
        "dependencyCompleteness": True,
        "componentsEvaluated": True,
        "missing": {"sha512_hash": ["libc6"], "distribution_licenses": ["libcrypt1", "libc6"]},
    }
    std = sbom_conformance.standard("bsi-tr-03183-2")
    found = sorted((f.rule, f.package) for f in sbom_conformance.bsi_findings(report, std, "image.spdx3.json"))
    assert found == [
        ("bsi-tr-03183-2/author", ""),
        ("bsi-tr-03183-2/distribution-licence", "libc6"),
        ("bsi-tr-03183-2/distribution-licence", "libcrypt1"),
        ("bsi-tr-03183-2/sha512", "libc6"),
    ]
    # not conformant with no element named: still a finding, never a pass
    silent = sbom_conformance.bsi_findings({"isConformant": False}, std, "image.spdx3.json")
    assert [f.rule for f in silent] == ["bsi-tr-03183-2/conformant"]


def test_cisa_gaps_become_findings_per_component() -> None:
    # the shape of `sbomcheck -c fsct3-min -r json` on the image SBOM (ADR 0014)
    report = {
        "isConformant": False,
        "authorNameProvided": True,
        "timestampProvided": True,
        "dependencyRelationshipsProvided": True,
        "componentSuppliers": {"nonconformantComponents": [], "allProvided": True},
        "componentConcludedLicenses": {"nonconformantComponents": ["libc6", "zlib1g"], "allProvided": False},
        "componentCopyrightTexts": {"nonconformantComponents": ["libc6"], "allProvided": False},
    }
    std = sbom_conformance.standard("cisa-2024-min")
    found = sorted((f.rule, f.package) for f in sbom_conformance.findings(report, std, "image.spdx.json"))
    assert found == [
        ("cisa-2024-min/concluded-license", "libc6"),
        ("cisa-2024-min/concluded-license", "zlib1g"),
        ("cisa-2024-min/copyright", "libc6"),
    ]
