"""The sbom gate with the real checker (sbomcheck): conformant passes, a removed supplier fails
by name, and a waiver with owner and expiry accepts exactly that gap."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tasks.analysis.sbom_complete import Producer, complete_spdx, suppliers
from tasks.analysis.sbom_conformance import check, standard
from tasks.analysis.sbom_spdx3 import write_spdx3
from tasks.analysis.sbom_subject import Root, RootArtifact, oci_purl
from tasks.container import deployables
from tasks.core.errors import PolicyError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy import gate
from tasks.policy.findings import Finding
from tasks.policy.security_policy import Policy, load
from tests.support.project import REPO, pinned
from tests.support.sbom_documents import REF, write


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


def bsi_ready(tmp_path: Path) -> tuple[Path, Path, dict[tuple[str, str, str], deployables.Deployable]]:
    """The fixture SBOM completed, with what the image build and its copyright files give: a
    declared licence per component and each component's deployable file, really hashed."""
    docs = write(tmp_path)
    root = Root(version=REF.split("@")[1], purl=oci_purl(REF), license="Apache-2.0")
    complete_spdx(docs.spdx, Producer("secure-iot project"), suppliers(docs.native), root)
    doc = json.loads(docs.spdx.read_text())
    for package in doc["packages"]:
        if package["licenseDeclared"] == "NOASSERTION":
            package["licenseDeclared"] = "GPL-2.0-or-later"
        if package["name"] == "base-files":  # syft's own supplier for it names no e-mail
            package["supplier"] = "Person: Santiago Vila (sanvila@debian.org)"
    docs.spdx.write_text(json.dumps(doc))
    files = tmp_path / "files"
    files.mkdir()
    for name in ("base-files_12.4_amd64.deb", "libc6_2.36_amd64.deb", "click-8.5.1-py3-none-any.whl"):
        (files / name).write_bytes(name.encode())
    built = {d.key: d for d in (*deployables.scan(files, "*.deb"), *deployables.scan(files, "*.whl"))}
    return docs.spdx, docs.native, built


def bsi_gaps(tmp_path: Path, tool: Tool, spdx3: Path) -> list[Finding]:
    rec = StageRecord(stage="sbom", root=tmp_path)
    return check(rec, tool, spdx3, standard("bsi-tr-03183-2"), tmp_path / "image.bsi-tr-03183-2.json")


MANIFEST = RootArtifact("secure-iot-server@" + REF.split("@")[1], "ab" * 64, "container")


def test_the_spdx3_twin_is_bsi_conformant_and_a_removed_sha512_fails_by_name(tmp_path: Path, sbomcheck: Tool) -> None:
    spdx, native, built = bsi_ready(tmp_path)
    spdx3 = tmp_path / "image.spdx3.json"
    producer = Producer("secure-iot project", url="https://secure-iot.invalid/contact")
    done = write_spdx3(
        spdx, native, spdx3, producer, built, suppliers(native), MANIFEST, distribution_licence="declared"
    )
    assert done.summary()["sha512"] == 4 and done.summary()["without_deployable"] == 0
    assert bsi_gaps(tmp_path, sbomcheck, spdx3) == []
    assert json.loads((tmp_path / "image.bsi-tr-03183-2.json").read_text())["isConformant"] is True

    graph = json.loads(spdx3.read_text())
    libc6 = next(o for o in graph["@graph"] if o.get("name") == "libc6_2.36_amd64.deb")
    del libc6["verifiedUsing"]  # the SHA-512 of one component's deployable file
    spdx3.write_text(json.dumps(graph))
    found = bsi_gaps(tmp_path, sbomcheck, spdx3)
    assert [(f.rule, f.package) for f in found] == [("bsi-tr-03183-2/sha512", "libc6")]
    assert not gate.evaluate("sbom", found, policy_with(tmp_path)).passed


def test_without_the_builds_files_or_a_contact_bsi_names_each_gap(tmp_path: Path, sbomcheck: Tool) -> None:
    spdx, native, built = bsi_ready(tmp_path)
    spdx3 = tmp_path / "image.spdx3.json"
    del built[("deb", "libc6", "2.36")]  # a component whose file the build did not see: no hash, counted
    done = write_spdx3(spdx, native, spdx3, Producer("secure-iot project"), built, suppliers(native), MANIFEST)
    assert done.summary()["without_deployable_examples"] == ["libc6"]
    found = sorted((f.rule, f.package) for f in bsi_gaps(tmp_path, sbomcheck, spdx3))
    root = REF.split("@")[0]
    assert found == [
        ("bsi-tr-03183-2/author", ""),  # the producer has no e-mail or URL
        ("bsi-tr-03183-2/creator", root),
        *(("bsi-tr-03183-2/distribution-licence", p) for p in sorted([root, "base-files", "click", "libc6"])),
        ("bsi-tr-03183-2/filename", "libc6"),
    ]
