"""The vulnerability gate with real grype against the offline DB built from committed advisories.

The SBOM plants real known-vulnerable versions (PyYAML 5.3.1: GHSA-8q59-q68h-6hv4 /
CVE-2020-14343, critical). VEX statements and waivers are the only ways past the gate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.project import REPO, run_tasks

SBOM = "tests/fixtures/grype/sbom/python-app.spdx.json"
PYYAML = "GHSA-8q59-q68h-6hv4"


@pytest.fixture
def scan_project(project: Path) -> Path:
    (project / "tests" / "fixtures" / "grype").mkdir(parents=True)
    shutil.copytree(REPO / "tests/fixtures/grype/workspace", project / "tests/fixtures/grype/workspace")
    shutil.copytree(REPO / "tests/fixtures/grype/sbom", project / "tests/fixtures/grype/sbom")
    shutil.copytree(REPO / "tools/grype-db-builder", project / "tools/grype-db-builder")
    (project / "vex").mkdir()
    return project


def vex(product: str, vuln: str = PYYAML, status: str = "not_affected") -> dict[str, object]:
    statement: dict[str, object] = {
        "vulnerability": {"name": vuln},
        "products": [{"@id": product}],
        "status": status,
    }
    if status == "not_affected":
        statement["justification"] = "vulnerable_code_not_in_execute_path"
        statement["impact_statement"] = "yaml.load is never called; only yaml.safe_load (reviewed in #42)"
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "urn:secure-iot:test:vex",
        "author": "secure-iot tests",
        "timestamp": "2026-11-25T00:00:00Z",
        "version": 1,
        "statements": [statement],
    }


def scan(project: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, dict[str, object]]:
    result = run_tasks("scan", "--sbom", SBOM, *extra, root=project, env=env)
    summary = project / "out" / "scan" / "summary.json"
    return result.returncode, result.output, json.loads(summary.read_text()) if summary.exists() else {}


def test_known_vulnerable_dependency_blocks(scan_project: Path) -> None:
    code, output, summary = scan(scan_project)
    assert code == 1, output
    assert PYYAML in output and "PyYAML@5.3.1" in output
    assert summary["gate"]["blocking"] == 1  # type: ignore[index]
    assert summary["db"]["source"] == "demo" and summary["db"]["valid"] is True  # type: ignore[index]
    evidence = json.loads((scan_project / "out" / "evidence.json").read_text())["stages"]["scan"]
    assert evidence["verdict"] == "fail" and evidence["details"]["db"]["built"]
    assert any(o["name"] == "out/scan/grype.sarif" for o in evidence["outputs"])


def test_vex_statement_clears_the_gate(scan_project: Path) -> None:
    (scan_project / "vex" / "pyyaml.openvex.json").write_text(json.dumps(vex("pkg:pypi/pyyaml@5.3.1")))
    code, output, summary = scan(scan_project)
    assert code == 0, output
    assert f"covered by VEX: {PYYAML}" in output
    assert summary["vex_ignored"][0]["id"] == PYYAML  # type: ignore[index]


def test_vex_for_another_product_does_not(scan_project: Path) -> None:
    (scan_project / "vex" / "other.openvex.json").write_text(json.dumps(vex("pkg:pypi/pyyaml@6.0.1")))
    code, output, _ = scan(scan_project)
    assert code == 1 and PYYAML in output


def test_affected_status_does_not_clear(scan_project: Path) -> None:
    doc = vex("pkg:pypi/pyyaml@5.3.1", status="affected")
    doc["statements"][0]["action_statement"] = "upgrade to 5.4 in the next release"  # type: ignore[index]
    (scan_project / "vex" / "affected.openvex.json").write_text(json.dumps(doc))
    code, output, _ = scan(scan_project)
    assert code == 1 and PYYAML in output


def test_waiver_clears_and_expired_waiver_is_an_error(scan_project: Path) -> None:
    policy = scan_project / "security-policy.yaml"
    waiver = """waivers:
  - id: {id}
    gate: dependencies
    scope: {{package: PyYAML}}
    justification: test-only fixture; the real image does not ship PyYAML at all
    owner: platform-team
    expires: {expires}
"""
    original = policy.read_text()
    policy.write_text(original.replace("\nwaivers:\n", "\n" + waiver.format(id=PYYAML, expires="2099-01-01"), 1))
    code, output, _ = scan(scan_project)
    assert code == 0, output
    policy.write_text(original.replace("\nwaivers:\n", "\n" + waiver.format(id=PYYAML, expires="2020-01-01"), 1))
    code, output, _ = scan(scan_project)
    assert code == 2 and "expired" in output


def test_malformed_vex_is_one_clear_line(scan_project: Path) -> None:
    (scan_project / "vex" / "broken.openvex.json").write_text("{not json")
    code, output, _ = scan(scan_project)
    assert code == 2
    assert "vex/broken.openvex.json: not valid JSON" in output
    assert "Traceback" not in output


def test_no_database_fails_closed_unless_opted_out(scan_project: Path, tmp_path: Path) -> None:
    code, output, _ = scan(scan_project, env={"SECURE_IOT_VULNDB": str(tmp_path / "no-such-db.tar.gz")})
    assert code == 2 and "no such database archive" in output
    offline = {  # "online" with an empty DB cache and the update URL on a closed loopback port
        "SECURE_IOT_VULNDB": "online",
        "SECURE_IOT_GRYPE_DB_ROOT": str(tmp_path / "empty-db-cache"),
        "GRYPE_DB_UPDATE_URL": "http://127.0.0.1:9/databases/v6/latest.json",
    }
    code, output, _ = scan(scan_project, env=offline)
    assert code == 2 and "no usable vulnerability DB" in output and "--allow-missing-db" in output
    code, output, _ = scan(scan_project, "--allow-missing-db", env=offline)
    assert code == 0, output
    evidence = json.loads((scan_project / "out" / "evidence.json").read_text())["stages"]["scan"]
    assert evidence["verdict"] == "skipped"
    assert evidence["opt_outs"] and evidence["opt_outs"][0].startswith("--allow-missing-db")


def test_grype_config_and_environment_cannot_accept_a_vulnerability(scan_project: Path) -> None:
    (scan_project / ".grype.yaml").write_text(f"ignore:\n  - vulnerability: {PYYAML}\n")
    code, output, _ = scan(scan_project, env={"GRYPE_ONLY_NOTFIXED": "true", "GRYPE_IGNORE": PYYAML})
    assert code == 1 and PYYAML in output


def test_vex_that_is_not_an_object_is_one_clear_line(scan_project: Path) -> None:
    (scan_project / "vex" / "list.openvex.json").write_text("[]")
    code, output, _ = scan(scan_project)
    assert code == 2 and "expected an OpenVEX document" in output and "Traceback" not in output
