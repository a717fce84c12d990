"""What the sbom stage adds to syft's documents, and what it refuses to invent."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema

from tasks.analysis.sbom_complete import (
    Producer,
    complete_cyclonedx,
    complete_spdx,
    declared_license,
    suppliers,
)
from tasks.analysis.sbom_subject import Root, oci_purl
from tests.support.project import REPO
from tests.support.sbom_documents import REF, ROOT_ID, write

PRODUCER = Producer("secure-iot project")
ROOT = Root(version=REF.split("@")[1], purl=oci_purl(REF))


def test_suppliers_come_from_dpkg_maintainer_and_python_metadata(tmp_path: Path) -> None:
    found = suppliers(write(tmp_path).native)
    assert found["2222222222222222"].spdx == "Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)"
    assert found["3333333333333333"].spdx == "Organization: Pallets (contact@palletsprojects.com)"
    assert "1111111111111111" not in found  # no metadata: nothing is made up


def test_a_python_supplier_without_e_mail_is_reached_at_its_projects_contact_url(tmp_path: Path) -> None:
    native = tmp_path / "image.syft.json"
    metadata = "\n".join(
        (
            "Metadata-Version: 2.4",
            "Name: cffi",
            "Author: Armin Rigo, Maciej Fijalkowski",
            "Project-URL: Documentation, https://cffi.readthedocs.io/",
            "Project-URL: Contact, https://groups.google.com/forum/#!forum/python-cffi",
        )
    )
    path = "/site-packages/cffi.dist-info/METADATA"
    native.write_text(
        json.dumps(
            {
                "artifacts": [{"id": "c", "name": "cffi", "metadata": {}, "locations": [{"path": path}]}],
                "files": [{"location": {"path": path}, "contents": base64.b64encode(metadata.encode()).decode()}],
            }
        )
    )
    found = suppliers(native)["c"]
    assert found.email == ""
    assert found.contact == "https://groups.google.com/forum/#!forum/python-cffi"  # its own Contact, not a guess


def test_spdx_gets_producer_root_and_suppliers_and_stays_valid(tmp_path: Path) -> None:
    docs = write(tmp_path)
    done = complete_spdx(docs.spdx, PRODUCER, suppliers(docs.native), ROOT)
    assert done.summary() == {"suppliers_added": 3, "suppliers_unknown": 0, "examples": []}
    doc = json.loads(docs.spdx.read_text())
    assert doc["creationInfo"]["creators"][0] == "Organization: secure-iot project"
    assert "SBOM type (CISA, 2023): build" in doc["creationInfo"]["comment"]
    by_name = {p["name"]: p for p in doc["packages"]}
    root = next(p for p in doc["packages"] if p["SPDXID"] == ROOT_ID)
    assert root["supplier"] == "Organization: secure-iot project"
    assert [r["referenceLocator"] for r in root["externalRefs"]] == [ROOT.purl]
    assert ROOT.purl.startswith("pkg:oci/secure-iot-server@sha256%3A") and "repository_url=127.0.0.1:5000/" in ROOT.purl
    assert by_name["base-files"]["supplier"] == "Person: Santiago Vila"  # syft's own value is kept
    assert by_name["libc6"]["supplier"].startswith("Organization: GNU Libc Maintainers")


def test_an_unknown_supplier_stays_noassertion_and_is_counted(tmp_path: Path) -> None:
    docs = write(tmp_path)
    native = json.loads(docs.native.read_text())
    native["files"] = []  # click's METADATA text not carried: its maintainer is unknown
    docs.native.write_text(json.dumps(native))
    done = complete_spdx(docs.spdx, PRODUCER, suppliers(docs.native), ROOT)
    assert done.summary()["suppliers_unknown"] == 1 and done.summary()["examples"] == ["click"]
    click = next(p for p in json.loads(docs.spdx.read_text())["packages"] if p["name"] == "click")
    assert click["supplier"] == "NOASSERTION"


def test_cyclonedx_gets_lifecycle_manufacturer_suppliers_and_stays_schema_valid(tmp_path: Path) -> None:
    docs = write(tmp_path)
    done = complete_cyclonedx(docs.cyclonedx, PRODUCER, suppliers(docs.native), ROOT)
    bom = json.loads(docs.cyclonedx.read_text())
    assert bom["metadata"]["lifecycles"] == [{"phase": "build"}]
    assert bom["metadata"]["manufacturer"] == {"name": "secure-iot project"}
    assert bom["metadata"]["component"]["purl"] == ROOT.purl
    assert {c["name"]: c.get("supplier", {}).get("name") for c in bom["components"]} == {
        "base-files": None,
        "libc6": "GNU Libc Maintainers",
        "click": "Pallets",
    }
    assert done.summary()["examples"] == ["base-files"]  # syft-json has no maintainer for it here


def test_completed_spdx_is_valid_against_the_spdx_2_3_json_schema(tmp_path: Path) -> None:
    """spdx-tools validates the model; the published JSON schema checks the bytes we write."""
    docs = write(tmp_path)
    complete_spdx(docs.spdx, PRODUCER, suppliers(docs.native), ROOT)
    schema = json.loads((REPO / "tests" / "fixtures" / "spdx" / "spdx-schema-2.3.json").read_text())
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(json.loads(docs.spdx.read_text()))]
    assert errors == []


def test_the_root_declares_the_licence_its_image_label_states(tmp_path: Path) -> None:
    docs = write(tmp_path)
    root = Root(version=ROOT.version, purl=ROOT.purl, license=declared_license(docs.native))
    complete_spdx(docs.spdx, PRODUCER, suppliers(docs.native), root)
    complete_cyclonedx(docs.cyclonedx, PRODUCER, suppliers(docs.native), root)
    spdx_root = next(p for p in json.loads(docs.spdx.read_text())["packages"] if p["SPDXID"] == ROOT_ID)
    assert spdx_root["licenseDeclared"] == "Apache-2.0"
    assert spdx_root["licenseConcluded"] == "NOASSERTION"  # concluding is a review, not a label
    assert json.loads(docs.cyclonedx.read_text())["metadata"]["component"]["licenses"] == [{"expression": "Apache-2.0"}]
