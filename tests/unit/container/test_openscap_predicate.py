"""The OpenSCAP result predicate (urn:secure-iot:attestation:openscap-result:v1) and its schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.container.openscap import Evaluation, predicate
from tasks.core.errors import ToolError
from tasks.policy import rego
from tests.support.project import REPO


def evaluation(tmp_path: Path, **outcome: str) -> Evaluation:
    content = tmp_path / "ssg-debian11-ds.xml"
    content.write_text("<ds/>")
    return Evaluation(
        profile="xccdf_org.ssgproject.content_profile_standard",
        content=content,
        results=tmp_path / "results.xml",
        report=tmp_path / "report.html",
        outcome=outcome,
        started="2026-11-30T10:00:00Z",
        finished="2026-11-30T10:00:09Z",
        patch="'^11' -> '^1[12]'",
    )


def test_predicate_carries_the_evaluated_rules_and_matches_its_schema(tmp_path: Path) -> None:
    found = predicate(REPO, evaluation(tmp_path, a="pass", b="fail", c="notselected"), "1.3.7")
    assert found["results"] == {"a": "pass", "b": "fail"}  # not selected: counted, not listed
    assert found["summary"] == {"fail": 1, "notselected": 1, "pass": 1}
    assert found["benchmark"]["datastream"]["digest"]["sha256"] == hashlib.sha256(b"<ds/>").hexdigest()
    assert found["benchmark"]["contentPatch"] == "'^11' -> '^1[12]'"
    assert found["metadata"]["evaluationFinishedOn"] == "2026-11-30T10:00:09Z"


def test_a_result_oscap_does_not_define_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"openscap-result-v1\.schema\.json: results/a"):
        predicate(REPO, evaluation(tmp_path, a="passed"), "1.3.7")


def test_project_types_are_attested_by_their_uri() -> None:
    assert rego.cosign_type("vuln") == "vuln"
    assert rego.cosign_type("compliance") == "urn:secure-iot:attestation:openscap-result:v1"


def test_the_waived_rules_are_signed_with_their_owner_reason_and_expiry(tmp_path: Path) -> None:
    waiver = {
        "waiver": "xccdf_org.ssgproject.content_rule_b",
        "owner": "platform-team",
        "justification": "an image has no partitions; the node's are the node's",
        "expires": "2027-06-30",
    }
    found = predicate(REPO, evaluation(tmp_path, a="pass", b="fail"), "1.3.7", {"b": waiver})
    assert found["waived"] == {"b": waiver}
    with pytest.raises(ToolError, match=r"openscap-result-v1\.schema\.json: waived/b"):
        predicate(REPO, evaluation(tmp_path, b="fail"), "1.3.7", {"b": {**waiver, "expires": "June"}})
