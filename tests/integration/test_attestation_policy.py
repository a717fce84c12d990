"""The shared Rego content policy, evaluated by the real (pinned) OPA, case by case."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy import rego
from tasks.policy.security_policy import load
from tests.conftest import REPO, pinned

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def opa() -> Tool:
    return Tool("opa", "pinned", pinned("opa"))


def evaluate(opa: Tool, tmp_path: Path, kind: str, statement: dict[str, Any]) -> list[str]:
    values = rego.params(load(REPO / "security-policy.yaml"), DIGEST)
    return rego.evaluate(StageRecord(stage="verify", root=REPO), REPO, kind, statement, values, opa, tmp_path)


def provenance(builder: str, digest: str = DIGEST) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "x", "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"externalParameters": {}}, "runDetails": {"builder": {"id": builder}}},
    }


def vuln(built: str, matches: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
        "predicate": {"scanner": {"db": {"version": built}, "result": {"matches": matches or []}}},
    }


def hours_ago(hours: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    "builder",
    [
        "urn:secure-iot:builder:local-nox",
        "https://github.com/acme/iot/.github/workflows/ci.yml@refs/heads/main",
        "https://github.com/acme/iot/.github/workflows/ci.yml@refs/pull/7/merge",
        "https://github.com/acme/iot/.github/workflows/release.yml@refs/tags/v1.2.0",
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0",
    ],
)
def test_allowed_builders(opa: Tool, tmp_path: Path, builder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/iot")
    assert evaluate(opa, tmp_path, "slsaprovenance1", provenance(builder)) == []


@pytest.mark.parametrize(
    "builder",
    [
        "https://github.com/acme/iot/.github/workflows/evil.yml@refs/heads/main",
        "https://github.com/attacker/fork/.github/workflows/ci.yml@refs/heads/main",
        "https://github.com/acme/iot/.github/workflows/release.yml@refs/heads/v1",
        "https://github.com/acme/iot/x/.github/workflows/ci.yml@refs/heads/main",
        "urn:secure-iot:builder:laptop",
        "",
    ],
)
def test_other_builders_are_refused(opa: Tool, tmp_path: Path, builder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/iot")
    problems = evaluate(opa, tmp_path, "slsaprovenance1", provenance(builder))
    assert any("is not on the allowed list" in p for p in problems), problems


def test_subject_must_be_the_image(opa: Tool, tmp_path: Path) -> None:
    statement = provenance("urn:secure-iot:builder:local-nox", "sha256:" + "cd" * 32)
    assert evaluate(opa, tmp_path, "slsaprovenance1", statement) == [
        f"provenance: subject {'cd' * 32} is not the image digest {DIGEST}"
    ]


def test_vuln_threshold_and_database_age(opa: Tool, tmp_path: Path) -> None:
    assert evaluate(opa, tmp_path, "vuln", vuln(hours_ago(1))) == []
    high = {"vulnerability": {"id": "CVE-1", "severity": "High"}, "artifact": {"name": "a", "version": "1"}}
    medium = {"vulnerability": {"id": "CVE-2", "severity": "Medium"}, "artifact": {"name": "b", "version": "2"}}
    problems = evaluate(opa, tmp_path, "vuln", vuln(hours_ago(1), [high, medium]))
    assert problems == ["vuln: CVE-1 (High) in a@1 is at or above high and not covered by VEX"]
    assert "older than 120h" in evaluate(opa, tmp_path, "vuln", vuln(hours_ago(121)))[0]
    assert "missing or unreadable" in evaluate(opa, tmp_path, "vuln", vuln("yesterday"))[0]


def test_sbom_must_be_spdx_23_with_packages(opa: Tool, tmp_path: Path) -> None:
    good = {"predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.3", "packages": [{}]}}
    assert evaluate(opa, tmp_path, "spdxjson", good) == []
    empty = {"predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.2", "packages": []}}
    assert len(evaluate(opa, tmp_path, "spdxjson", empty)) == 2


def test_ci_builders_need_the_repository(opa: Tool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    monkeypatch.delenv("SECURE_IOT_SOURCE_REPOSITORY", raising=False)
    ci = provenance("https://github.com/acme/iot/.github/workflows/ci.yml@refs/heads/main")
    assert any("not on the allowed list" in p for p in evaluate(opa, tmp_path, "slsaprovenance1", ci))


def test_vuln_result_must_be_complete_and_honest(opa: Tool, tmp_path: Path) -> None:
    no_severity = {"vulnerability": {"id": "CVE-3"}, "artifact": {"name": "c", "version": "3"}}
    assert "has no known severity" in evaluate(opa, tmp_path, "vuln", vuln(hours_ago(1), [no_severity]))[0]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "in the future" in evaluate(opa, tmp_path, "vuln", vuln(future))[0]
    hollow = vuln(hours_ago(1))
    hollow["predicate"]["scanner"]["result"] = {}
    assert "no matches list" in evaluate(opa, tmp_path, "vuln", hollow)[0]


def test_demo_database_only_where_the_policy_allows_it(opa: Tool, tmp_path: Path) -> None:
    demo = vuln(hours_ago(1))
    demo["predicate"]["scanner"]["db"]["uri"] = "grype-db:demo"
    assert evaluate(opa, tmp_path, "vuln", demo) == []  # security-policy.yaml: allow_demo_db: true
    values = rego.params(load(REPO / "security-policy.yaml"), DIGEST)
    values["allow_demo_db"] = False
    problems = rego.evaluate(StageRecord(stage="verify", root=REPO), REPO, "vuln", demo, values, opa, tmp_path)
    assert problems == [
        "vuln: the scan used the demo database (SECURE_IOT_VULNDB=demo), which gates.verify does not allow"
    ]
