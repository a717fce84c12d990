"""The sbom gate with the real checker (sbomcheck): conformant passes, a removed supplier fails
by name, and a waiver with owner and expiry accepts exactly that gap."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tasks.analysis.sbom_complete import Producer, Root, complete_spdx, oci_purl, suppliers
from tasks.analysis.sbom_conformance import check, standard
from tasks.core.errors import PolicyError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy import gate
from tasks.policy.findings import Finding
from tasks.policy.security_policy import Policy, load
from tests.conftest import REPO, pinned
from tests.sbom_documents import REF, write


@pytest.fixture(scope="module")
def sbomcheck() -> Tool:
    return Tool("sbomcheck", "6.0.0", pinned("sbomcheck"))


def completed(tmp_path: Path) -> Path:
    docs = write(tmp_path)
    root = Root(version=REF.split("@")[1], purl=oci_purl(REF))
    complete_spdx(docs.spdx, Producer("secure-iot project"), suppliers(docs.native), root)
    return docs.spdx


def gaps(tmp_path: Path, tool: Tool, spdx: Path) -> list[Finding]:
    rec = StageRecord(stage="sbom", root=tmp_path)
    return check(rec, tool, spdx, standard("ntia-2021"), tmp_path / "image.ntia-2021.json")


def policy_with(tmp_path: Path, waivers: str = "[]") -> Policy:
    text = (REPO / "security-policy.yaml").read_text().split("\nwaivers:")[0] + f"\nwaivers: {waivers}\n"
    path = tmp_path / "security-policy.yaml"
    path.write_text(text)
    return load(path)


def test_completed_sbom_is_ntia_conformant(tmp_path: Path, sbomcheck: Tool) -> None:
    found = gaps(tmp_path, sbomcheck, completed(tmp_path))
    assert found == []
    assert json.loads((tmp_path / "image.ntia-2021.json").read_text())["isConformant"] is True
    assert gate.evaluate("sbom", found, policy_with(tmp_path)).passed


def test_a_removed_supplier_fails_the_gate_naming_the_component(tmp_path: Path, sbomcheck: Tool) -> None:
    spdx = completed(tmp_path)
    doc = json.loads(spdx.read_text())
    next(p for p in doc["packages"] if p["name"] == "libc6")["supplier"] = "NOASSERTION"
    spdx.write_text(json.dumps(doc))
    found = gaps(tmp_path, sbomcheck, spdx)
    assert [(f.rule, f.package) for f in found] == [("ntia-2021/supplier", "libc6")]
    outcome = gate.evaluate("sbom", found, policy_with(tmp_path))
    assert not outcome.passed and outcome.blocking[0].location == "image.spdx.json:libc6"

    expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    waiver = (
        "[{id: ntia-2021/supplier, gate: sbom, scope: {package: libc6}, owner: '@secure-iot/security', "
        f"expires: '{expires}', justification: 'supplier confirmed with the vendor, recorded in ticket 21'}}]"
    )
    waived = gate.evaluate("sbom", found, policy_with(tmp_path, waiver))
    assert waived.passed and waived.waived[0][1].owner == "@secure-iot/security"


def test_an_unknown_standard_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown standard"):
        standard("iso-5962")
