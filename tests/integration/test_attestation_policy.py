"""The shared Rego content policy, evaluated by the real (pinned) OPA, case by case."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy import compliance_gate, rego
from tasks.policy.security_policy import SSG_RULE_PREFIX, load
from tests.support.project import REPO, pinned

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


def vuln(built: str, matches: list[dict[str, Any]] | None = None, scanned: str | None = "") -> dict[str, Any]:
    """A vuln statement; ``scanned`` is its scanFinishedOn ("": an hour ago, None: absent)."""
    return {
        "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
        "predicate": {
            "scanner": {"db": {"version": built}, "result": {"matches": matches or []}},
            "metadata": {} if scanned is None else {"scanFinishedOn": scanned or hours_ago(1)},
        },
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


# --- continuous evaluation: the newest statement of a time-dependent type decides ---------

CRITICAL = {"vulnerability": {"id": "CVE-2099-0001", "severity": "Critical"}, "artifact": {"name": "z", "version": "1"}}


def decide(opa: Tool, tmp_path: Path, kind: str, statements: list[dict[str, Any]]) -> list[str]:
    values = rego.params(load(REPO / "security-policy.yaml"), DIGEST)
    return rego.decide(StageRecord(stage="verify", root=REPO), REPO, kind, statements, values, opa, tmp_path)[0]


def test_the_newest_scan_decides(opa: Tool, tmp_path: Path) -> None:
    clean, blocking = vuln(hours_ago(1), scanned=hours_ago(3)), vuln(hours_ago(1), [CRITICAL], scanned=hours_ago(2))
    assert decide(opa, tmp_path, "vuln", [clean]) == []
    assert decide(opa, tmp_path, "vuln", [clean, blocking]) == [
        "vuln: CVE-2099-0001 (Critical) in z@1 is at or above high and not covered by VEX"
    ]
    cleared = vuln(hours_ago(1), scanned=hours_ago(1))  # rescanned with a VEX: the match is ignored
    cleared["predicate"]["scanner"]["result"]["ignoredMatches"] = [CRITICAL]
    assert decide(opa, tmp_path, "vuln", [blocking, clean, cleared]) == []


def test_an_old_scan_alone_is_stale(opa: Tool, tmp_path: Path) -> None:
    problems = decide(opa, tmp_path, "vuln", [vuln(hours_ago(1), scanned=hours_ago(49))])
    assert len(problems) == 1 and "older than the maximum age of 48h" in problems[0], problems


def test_a_scan_from_the_future_or_without_a_timestamp_fails(opa: Tool, tmp_path: Path) -> None:
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    clean = vuln(hours_ago(1))
    assert "is in the future" in decide(opa, tmp_path, "vuln", [clean, vuln(hours_ago(1), scanned=future)])[0]
    problems = decide(opa, tmp_path, "vuln", [clean, vuln(hours_ago(1), scanned=None)])
    assert problems == ["vuln: 1 of 2 signed statement(s) have no readable timestamp, so the newest cannot be told"]


def test_static_types_keep_any_compliant_statement(opa: Tool, tmp_path: Path) -> None:
    good = {"predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.3", "packages": [{}]}}
    bad = {"predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.2", "packages": []}}
    assert decide(opa, tmp_path, "spdxjson", [bad, good]) == []
    assert len(decide(opa, tmp_path, "spdxjson", [bad])) == 2


def test_openvex_is_time_dependent_and_needs_justifications(opa: Tool, tmp_path: Path) -> None:
    def vex(timestamp: str, justification: str) -> dict[str, Any]:
        statement = {"vulnerability": {"name": "CVE-2099-0001"}, "status": "not_affected"}
        if justification:
            statement["justification"] = justification
        doc = {"timestamp": timestamp, "statements": [statement]}
        return {"predicateType": "https://openvex.dev/ns", "predicate": doc}

    older, newer = vex(hours_ago(2), ""), vex(hours_ago(1), "vulnerable_code_not_present")
    assert decide(opa, tmp_path, "openvex", [older, newer]) == []
    assert decide(opa, tmp_path, "openvex", [newer, vex(hours_ago(0), "")]) == [
        "openvex: CVE-2099-0001 is not_affected without a justification"
    ]


# --- the OpenSCAP result (the project's own predicate type): time-dependent, gated rules ---


def compliance(evaluated: str | None = "", **results: str) -> dict[str, Any]:
    """A compliance statement: every required rule passes unless ``results`` says otherwise;
    ``evaluated`` is its evaluationFinishedOn ("": an hour ago, None: absent)."""
    settings = load(REPO / "security-policy.yaml").gate("compliance").settings
    outcome = {str(r): "pass" for r in settings["required_rules"]} | {
        k.replace("__", "-"): v for k, v in results.items()
    }
    finished = {} if evaluated is None else {"evaluationFinishedOn": evaluated or hours_ago(1)}
    return {
        "predicateType": "urn:secure-iot:attestation:openscap-result:v1",
        "predicate": {"benchmark": {"profile": settings["profile"]}, "results": outcome, "metadata": finished},
    }


def test_compliance_required_rules_must_pass(opa: Tool, tmp_path: Path) -> None:
    assert evaluate(opa, tmp_path, "compliance", compliance()) == []
    assert evaluate(opa, tmp_path, "compliance", compliance(file_owner_etc_shadow="fail")) == [
        "compliance: required rule file_owner_etc_shadow: fail"
    ]
    missing = compliance()
    del missing["predicate"]["results"]["package_nis_removed"]
    assert evaluate(opa, tmp_path, "compliance", missing) == [
        "compliance: required rule package_nis_removed: notevaluated"
    ]
    other = compliance()
    other["predicate"]["benchmark"]["profile"] = "xccdf_org.ssgproject.content_profile_nothing"
    assert (
        "the policy requires xccdf_org.ssgproject.content_profile_standard"
        in evaluate(opa, tmp_path, "compliance", other)[0]
    )


def test_compliance_a_failing_rule_needs_an_unexpired_waiver_in_the_statement(opa: Tool, tmp_path: Path) -> None:
    unwaived = compliance(partition_for_tmp="fail")
    assert evaluate(opa, tmp_path, "compliance", unwaived) == [
        "compliance: rule partition_for_tmp: fail, and no waiver in the statement accepts it"
    ]
    waiver = {
        "waiver": "xccdf_org.ssgproject.content_rule_partition_for_tmp",
        "owner": "platform-team",
        "justification": "an image has no partitions; the node's are the node's",
        "expires": (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%d"),
    }
    waived = compliance(partition_for_tmp="fail")
    waived["predicate"]["waived"] = {"partition_for_tmp": waiver}
    assert evaluate(opa, tmp_path, "compliance", waived) == []
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    waived["predicate"]["waived"] = {"partition_for_tmp": {**waiver, "expires": today}}
    assert evaluate(opa, tmp_path, "compliance", waived) == []  # valid through its last day, as in the policy file
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    waived["predicate"]["waived"] = {"partition_for_tmp": {**waiver, "expires": yesterday}}
    assert evaluate(opa, tmp_path, "compliance", waived) == [
        f"compliance: the waiver for partition_for_tmp expired (expires: {yesterday})"
    ]


def test_compliance_newest_decides_and_must_be_fresh(opa: Tool, tmp_path: Path) -> None:
    passed, failed = compliance(hours_ago(3)), compliance(hours_ago(2), file_permissions_etc_passwd="fail")
    assert decide(opa, tmp_path, "compliance", [passed, failed]) == [
        "compliance: required rule file_permissions_etc_passwd: fail"
    ]
    assert decide(opa, tmp_path, "compliance", [failed, compliance(hours_ago(1))]) == []  # re-evaluated, passes
    stale = decide(opa, tmp_path, "compliance", [compliance(hours_ago(49))])
    assert len(stale) == 1 and "older than the maximum age of 48h" in stale[0], stale
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "is in the future" in decide(opa, tmp_path, "compliance", [compliance(future)])[0]
    assert "no readable timestamp" in decide(opa, tmp_path, "compliance", [passed, compliance(None)])[0]


# --- the statement's waivers: well-formed, and the policy's own (P8, P9) ---

WAIVED_BY_THE_POLICY = "partition_for_tmp"  # security-policy.yaml waives it for the image
WAIVED_BY_NOBODY = "accounts_password_minlen_login_defs"  # in the profile, neither required nor waived


def genuine(**results: str) -> dict[str, Any]:
    """A statement whose waivers are what the compliance stage signs (compliance_gate.judge over the policy)."""
    statement = compliance(**results)
    judged = compliance_gate.judge(load(REPO / "security-policy.yaml"), "image", statement["predicate"]["results"])
    statement["predicate"]["waived"] = judged.waived()
    return statement


def with_waiver(rule: str, expires: str = "2099-01-01", waiver: str = "") -> dict[str, Any]:
    """A statement in which ``rule`` fails and the statement itself waives it until ``expires``."""
    statement = compliance(**{rule: "fail"})
    statement["predicate"]["waived"] = {
        rule: {
            "waiver": waiver or SSG_RULE_PREFIX + rule,
            "owner": "platform-team",
            "justification": "says who",
            "expires": expires,
        }
    }
    return statement


def test_compliance_the_genuine_statement_passes(opa: Tool, tmp_path: Path) -> None:
    statement = genuine(partition_for_tmp="fail", partition_for_var="error")
    assert set(statement["predicate"]["waived"]) == {"partition_for_tmp", "partition_for_var"}
    assert evaluate(opa, tmp_path, "compliance", statement) == []


@pytest.mark.parametrize(
    ("waived", "problem"),
    [
        ([], "the statement's waived must be an object (rule -> waiver), not array"),
        ("", "the statement's waived must be an object (rule -> waiver), not string"),
        ({WAIVED_BY_THE_POLICY: 1}, f"the waiver for {WAIVED_BY_THE_POLICY} is 1, not an object"),
        ({WAIVED_BY_THE_POLICY: {}}, f"the waiver for {WAIVED_BY_THE_POLICY} has no expires"),
        (
            {WAIVED_BY_THE_POLICY: {"expires": "2099-13-40"}},
            "has no valid expiry date, YYYY-MM-DD (expires: 2099-13-40)",
        ),
        (
            {WAIVED_BY_THE_POLICY: {"expires": "9999-12-31"}},
            "has no valid expiry date, YYYY-MM-DD (expires: 9999-12-31)",
        ),
        ({WAIVED_BY_THE_POLICY: {"expires": 20990101}}, "has no valid expiry date, YYYY-MM-DD (expires: 20990101)"),
    ],
    ids=["list", "string", "entry-not-object", "no-expires", "no-such-date", "beyond-ns-range", "not-a-string"],
)
def test_compliance_a_malformed_waiver_is_refused(opa: Tool, tmp_path: Path, waived: Any, problem: str) -> None:
    """A builtin error inside `not …` made the whole rule undefined: each of these passed."""
    statement = genuine(**{WAIVED_BY_THE_POLICY: "fail"})
    genuine_waiver = statement["predicate"]["waived"][WAIVED_BY_THE_POLICY]
    statement["predicate"]["waived"] = (
        {k: v if not isinstance(v, dict) or not v else {**genuine_waiver, **v} for k, v in waived.items()}
        if isinstance(waived, dict)
        else waived
    )
    problems = evaluate(opa, tmp_path, "compliance", statement)
    assert any(problem in p for p in problems), problems


def test_compliance_a_rule_the_policy_does_not_waive_is_refused(opa: Tool, tmp_path: Path) -> None:
    policy = load(REPO / "security-policy.yaml")
    assert WAIVED_BY_NOBODY not in policy.gate("compliance").settings["required_rules"]
    assert SSG_RULE_PREFIX + WAIVED_BY_NOBODY not in {w.id for w in policy.waivers}
    assert evaluate(opa, tmp_path, "compliance", with_waiver(WAIVED_BY_NOBODY)) == [
        f"compliance: rule {WAIVED_BY_NOBODY}: fail, waived by the statement as "
        f"{SSG_RULE_PREFIX}{WAIVED_BY_NOBODY}, a waiver security-policy.yaml does not hold for the image"
    ]
    # nor by another rule's waiver the policy does hold
    borrowed = with_waiver(WAIVED_BY_NOBODY, waiver=SSG_RULE_PREFIX + WAIVED_BY_THE_POLICY)
    assert "a waiver security-policy.yaml does not hold" in evaluate(opa, tmp_path, "compliance", borrowed)[0]


def judged_under(opa: Tool, tmp_path: Path, values: dict[str, Any], statement: dict[str, Any]) -> list[str]:
    """The compliance violations of ``statement`` under these rendered parameters."""
    return rego.evaluate(StageRecord(stage="verify", root=REPO), REPO, "compliance", statement, values, opa, tmp_path)


def test_compliance_a_waiver_the_policy_dropped_is_refused(opa: Tool, tmp_path: Path) -> None:
    """Removing a waiver from security-policy.yaml changes admission: the signed statement still has it."""
    policy = load(REPO / "security-policy.yaml")
    dropped = dataclasses.replace(
        policy, waivers=[w for w in policy.waivers if w.id != SSG_RULE_PREFIX + WAIVED_BY_THE_POLICY]
    )
    statement = genuine(**{WAIVED_BY_THE_POLICY: "fail"})  # signed while the policy still held it
    assert judged_under(opa, tmp_path, rego.params(policy, DIGEST), statement) == []
    assert judged_under(opa, tmp_path, rego.params(dropped, DIGEST), statement) == [
        f"compliance: rule {WAIVED_BY_THE_POLICY}: fail, waived by the statement as "
        f"{SSG_RULE_PREFIX}{WAIVED_BY_THE_POLICY}, a waiver security-policy.yaml does not hold for the image"
    ]


def test_compliance_the_policys_expiry_decides_not_the_statements(opa: Tool, tmp_path: Path) -> None:
    """The rendered policy outlives the waiver's date (a ClusterImagePolicy applied before it); the
    statement claims 2099."""
    values = rego.params(load(REPO / "security-policy.yaml"), DIGEST)
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    values["compliance_waivers"][WAIVED_BY_THE_POLICY]["expires"] = yesterday
    statement = with_waiver(WAIVED_BY_THE_POLICY, expires="2099-01-01")
    assert judged_under(opa, tmp_path, values, statement) == [
        f"compliance: rule {WAIVED_BY_THE_POLICY}: fail, and the policy's waiver "
        f"{SSG_RULE_PREFIX}{WAIVED_BY_THE_POLICY} expired (expires: {yesterday})"
    ]
