"""The compliance gate over a real OpenSCAP result of the image and the repository's own policy.

tests/fixtures/openscap/image-results.xml is the XCCDF TestResult `nox -s compliance` wrote for
the image (21 of the profile's 44 rules fail). Every rule is judged: required rules pass,
every other failing rule is waived by name with its reason and expiry, or it blocks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.container.openscap import rule_results
from tasks.core.errors import PolicyError
from tasks.core.evidence import StageRecord
from tasks.policy import compliance_gate
from tasks.policy import security_policy as policy_mod
from tasks.policy.security_policy import SSG_RULE_PREFIX, Policy
from tests.support.project import REPO

RESULTS = REPO / "tests" / "fixtures" / "openscap" / "image-results.xml"
TODAY = dt.date(2026, 12, 7)
TMP = SSG_RULE_PREFIX + "partition_for_tmp"


def policy_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "security-policy.yaml").read_text())
    return data


def load(tmp_path: Path, data: dict[str, Any], today: dt.date = TODAY) -> Policy:
    path = tmp_path / "security-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return policy_mod.load(path, today=today)


def compliance_waivers(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for w in data["waivers"] if w["gate"] == "compliance"]


def judge(policy: Policy, subject: str = "image") -> compliance_gate.Judgement:
    outcome, severity = rule_results(RESULTS)
    return compliance_gate.judge(policy, subject, outcome, severity)


def test_every_failing_rule_of_the_image_is_waived_by_name_with_its_reason_and_expiry() -> None:
    judgement = judge(policy_mod.load(REPO / "security-policy.yaml", today=TODAY))
    outcome, _ = rule_results(RESULTS)
    failing = {r for r, v in outcome.items() if v == "fail"}
    assert len(failing) == 21 and judgement.passed and not judgement.stale
    waived = judgement.waived()
    assert set(waived) == failing  # each failing rule by its own waiver: nothing is "not gated"
    assert waived["partition_for_tmp"]["waiver"] == TMP
    assert all(w["owner"] and len(w["justification"]) >= 20 and w["expires"] <= "2027-12-07" for w in waived.values())
    recorded = judgement.summary()
    assert {w["finding"] for w in recorded["waived"]} == {SSG_RULE_PREFIX + r for r in failing}
    assert recorded["blocking_rules"] == [] and recorded["required_failed"] == []


def test_a_failing_rule_outside_required_rules_without_a_waiver_blocks(tmp_path: Path) -> None:
    data = policy_data()
    data["waivers"] = [w for w in data["waivers"] if w["id"] != TMP]
    judgement = judge(load(tmp_path, data))
    assert not judgement.passed and [f.rule for f in judgement.outcome.blocking] == [TMP]
    rec = StageRecord(stage="compliance", root=tmp_path)
    assert compliance_gate.conclude(rec, judgement) == "fail"
    assert rec.reason == f"1 blocking compliance rule(s) on the image: {TMP} (image: fail)"


def test_waivers_scoped_to_the_image_do_not_cover_the_device_rootfs(tmp_path: Path) -> None:
    judgement = judge(policy_mod.load(REPO / "security-policy.yaml", today=TODAY), "device-rootfs")
    assert not judgement.passed and len(judgement.outcome.blocking) == 21 and not judgement.outcome.waived
    data = policy_data()
    for w in compliance_waivers(data):
        w["scope"] = {"path": "device-rootfs"}
    assert judge(load(tmp_path, data), "device-rootfs").passed


def test_a_waiver_for_a_required_rule_is_refused(tmp_path: Path) -> None:
    data = policy_data()
    shadow = {**compliance_waivers(data)[0], "id": SSG_RULE_PREFIX + "file_owner_etc_shadow"}
    data["waivers"].append(shadow)
    index = len(data["waivers"]) - 1
    with pytest.raises(PolicyError) as refused:
        load(tmp_path, data)
    assert str(refused.value).startswith(f"{tmp_path / 'security-policy.yaml'}: waivers[{index}] ({shadow['id']}): ")
    assert "required_rules names this rule, and a required rule is never waived" in str(refused.value)


def test_a_compliance_waiver_names_the_full_xccdf_rule_id(tmp_path: Path) -> None:
    data = policy_data()
    compliance_waivers(data)[0]["id"] = "partition_for_home"
    with pytest.raises(PolicyError, match=r"waivers\[\d+\]\.id: 'partition_for_home' does not match"):
        load(tmp_path, data)


def test_an_expired_compliance_waiver_blocks_with_one_line_naming_it(tmp_path: Path) -> None:
    data = policy_data()
    first = compliance_waivers(data)[0]
    first["expires"] = "2026-12-06"
    with pytest.raises(PolicyError) as expired:
        load(tmp_path, data)
    index = data["waivers"].index(first)
    assert str(expired.value) == (
        f"{tmp_path / 'security-policy.yaml'}: waivers[{index}] ({first['id']}): expired on 2026-12-06; "
        "review it and set a new expiry, or remove it"
    )


def test_a_waiver_for_a_passing_rule_or_one_not_in_the_profile_is_stale(tmp_path: Path) -> None:
    data = policy_data()
    template = compliance_waivers(data)[0]
    passing, absent = SSG_RULE_PREFIX + "sshd_disable_root_login", SSG_RULE_PREFIX + "no_such_rule"
    data["waivers"] += [{**template, "id": passing}, {**template, "id": absent}]
    judgement = judge(load(tmp_path, data))
    assert judgement.passed  # a stale waiver waives nothing: it is named, not a failure
    assert [(w.id, result) for w, result in judgement.stale] == [(passing, "pass"), (absent, "not in the profile")]
    assert [w["waiver"] for w in judgement.summary()["stale_waivers"]] == [passing, absent]


def test_a_compliance_waiver_says_which_root_filesystem_it_is_for(tmp_path: Path) -> None:
    data = policy_data()
    del compliance_waivers(data)[0]["scope"]
    with pytest.raises(PolicyError, match=r"waivers\[\d+\]: 'scope' is a required property"):
        load(tmp_path, data)


def test_no_threshold_lets_a_failing_rule_through_unwaived(tmp_path: Path) -> None:
    data = policy_data()
    data["gates"]["compliance"]["fail_on"] = "high"  # 19 of the 21 rules failing on the image are below high
    with pytest.raises(PolicyError, match=r"gates\.compliance\.fail_on: 'info' was expected"):
        load(tmp_path, data)
