from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tasks.core.errors import PolicyError
from tasks.policy import gate
from tasks.policy import security_policy as policy
from tasks.policy.findings import Finding, Severity

REPO = Path(__file__).resolve().parents[3]
TODAY = dt.date(2026, 11, 24)

BASE = """\
version: 1
gates:
  sast:
    fail_on: medium
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "security-policy.yaml"
    path.write_text(text)
    return path


def waiver(
    expires: str = "2027-01-31", justification: str = "reviewed: only runs on build hosts, argv is constant"
) -> str:
    return f"""\
waivers:
  - id: B602
    gate: sast
    scope: {{path: "app/*"}}
    justification: "{justification}"
    owner: platform-team
    expires: {expires}
"""


def test_repo_policy_is_valid() -> None:
    loaded = policy.load(REPO / "security-policy.yaml")
    assert loaded.gate("sast").fail_on is Severity.MEDIUM


def test_valid_policy_with_waiver(tmp_path: Path) -> None:
    loaded = policy.load(write(tmp_path, BASE + waiver()), today=TODAY)
    assert loaded.waivers[0].expires == dt.date(2027, 1, 31)
    assert loaded.waivers[0].path == "app/*"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="security policy not found"):
        policy.load(tmp_path / "nope.yaml")


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"not valid YAML at line \d"):
        policy.load(write(tmp_path, "version: 1\ngates: [\n"))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version: 1\ngates:\n  sast:\n    fail_on: severe\n", r"gates\.sast\.fail_on"),
        ("version: 2\ngates:\n  sast:\n    fail_on: high\n", r"version"),
        ("version: 1\ngates: {}\n", r"gates"),
        (BASE + "waivers:\n  - id: B602\n    gate: sast\n    owner: x\n    expires: 2027-01-01\n", r"waivers\[0\]"),
        (BASE + "surprise: true\n", r"surprise"),
    ],
)
def test_invalid_policy_names_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(PolicyError, match=field):
        policy.load(write(tmp_path, text), today=TODAY)


def test_expired_waiver_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"waivers\[0\] \(B602\): expired on 2026-01-01"):
        policy.load(write(tmp_path, BASE + waiver(expires="2026-01-01")), today=TODAY)


def test_blank_justification_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="justification"):
        policy.load(write(tmp_path, BASE + waiver(justification=" " * 25)), today=TODAY)


def test_gate_threshold_and_waiver_scope(tmp_path: Path) -> None:
    loaded = policy.load(write(tmp_path, BASE + waiver()), today=TODAY)
    shell = Finding("bandit", "B602", Severity.HIGH, "app/x.py:3", "shell=True", path="app/x.py")
    shell_elsewhere = Finding("bandit", "B602", Severity.HIGH, "tasks/y.py:3", "shell=True", path="tasks/y.py")
    low = Finding("bandit", "B404", Severity.LOW, "app/x.py:1", "import subprocess", path="app/x.py")
    outcome = gate.evaluate("sast", [shell, shell_elsewhere, low], loaded)
    assert outcome.blocking == (shell_elsewhere,)
    assert [f for f, _ in outcome.waived] == [shell]
    assert outcome.below_threshold == (low,)
    assert not outcome.passed


def test_an_impossible_expiry_date_names_the_waiver(tmp_path: Path) -> None:
    from tasks.policy.security_policy import load as load_policy

    text = (
        (REPO / "security-policy.yaml")
        .read_text()
        .replace(  # first in the list, before the policy's own waivers
            "\nwaivers:\n",
            "\nwaivers:\n  - id: B602\n    gate: sast\n    justification: a long enough reason for the test\n"
            "    owner: me\n    expires: '2099-02-30'\n",
            1,
        )
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=r"waivers\[0\] \(B602\): expires: '2099-02-30' is not a calendar date"):
        load_policy(path)


def test_a_policy_remembered_as_valid_does_not_let_an_edited_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write(tmp_path, BASE)
    policy.load(path, today=TODAY)
    assert len(list((tmp_path / "cache").rglob("*"))) > 0  # remembered by digest
    policy.load(path, today=TODAY)  # the same bytes: valid again, from the marker
    path.write_text(BASE.replace("fail_on: medium", "fail_on: catastrophic"))
    with pytest.raises(PolicyError, match=r"gates\.sast\.fail_on"):
        policy.load(path, today=TODAY)
