"""Which SBOM standards the gate may name, and sbomcheck reports as findings (issue #21, ADR 0014)."""

from __future__ import annotations

import pytest

from tasks.analysis import sbom_conformance
from tasks.core.errors import PolicyError
from tasks.policy.security_policy import load
from tests.conftest import REPO


def test_bsi_is_refused_on_the_spdx_2_3_documents_the_pipeline_writes() -> None:
    with pytest.raises(PolicyError, match=r"bsi-tr-03183-2 is checked by sbomcheck on spdx3 only"):
        sbom_conformance.standard("bsi-tr-03183-2")
    assert sbom_conformance.standard("bsi-tr-03183-2", "spdx3").comply == "bsi"


def test_the_gate_names_only_standards_the_image_sbom_meets() -> None:
    named = load(REPO / "security-policy.yaml").gate("sbom").settings["conformance"]
    assert named == ["ntia-2021"]  # cisa-2024-min and bsi-tr-03183-2: ADR 0014 says why not


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
