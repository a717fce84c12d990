"""The SAST gate against the real bandit and semgrep, with code planted in a throwaway project."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.policy import sarif
from tasks.policy.findings import Severity
from tasks.source.sast import semgrep_rule_id
from tests.conftest import REPO, pinned, run_tasks

PLANTED = '''\
"""Planted by the test: two real SAST findings."""
import subprocess


def reboot(cmd: str) -> int:
    return subprocess.call(cmd, shell=True)


password = "hunter2-correct-horse-battery"
'''


def plant(project: Path) -> Path:
    target = project / "app" / "src" / "demo" / "planted.py"
    target.write_text(PLANTED)
    return target


def add_waivers(project: Path, text: str) -> None:
    policy = project / "security-policy.yaml"
    policy.write_text(policy.read_text().replace("waivers:\n", text))


def hardcoded_secret_rule(result_output: str) -> str:
    rules = [w for w in result_output.split() if w.startswith("secure-iot.") and "secret" in w]
    assert rules, result_output
    return rules[0]


def test_bandit_sarif_normalizes(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "planted.py").write_text(PLANTED)
    out = tmp_path / "bandit.sarif"
    subprocess.run([pinned("bandit"), "-r", "code", "-f", "sarif", "-o", out, "--quiet"], cwd=tmp_path, check=False)
    findings = {f.rule: f for f in sarif.normalize(out, tmp_path)}
    assert findings["B602"].severity is Severity.HIGH
    assert findings["B602"].location == "code/planted.py:6"
    assert findings["B105"].severity is Severity.LOW


def test_semgrep_sarif_normalizes(tmp_path: Path) -> None:
    (tmp_path / "planted.py").write_text(PLANTED)
    out = tmp_path / "semgrep.sarif"
    subprocess.run(
        [
            pinned("semgrep"),
            "scan",
            "--config",
            REPO / ".semgrep",
            "--metrics=off",
            "--disable-version-check",
            "--quiet",
            "--sarif",
            "--output",
            out,
            "planted.py",
        ],
        cwd=tmp_path,
        check=True,
    )
    findings = sarif.normalize(out, tmp_path, rule_id=semgrep_rule_id)
    rules = {f.rule for f in findings}
    assert any(r.startswith("secure-iot.") and "shell" in r for r in rules), rules
    assert any(r.startswith("secure-iot.") and "secret" in r for r in rules), rules
    assert all(f.location.startswith("planted.py:") for f in findings)
    assert max(f.severity for f in findings) >= Severity.HIGH


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not valid JSON"),
        ('{"version": "2.0.0", "runs": []}', "not a SARIF 2.1.0"),
        ('{"version": "2.1.0", "runs": [{"tool": {}}]}', "malformed SARIF run"),
    ],
)
def test_unparsable_sarif_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.sarif"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        sarif.normalize(path, tmp_path)


def test_clean_project_passes(project: Path) -> None:
    result = run_tasks("sast", root=project)
    assert result.returncode == 0, result.output
    evidence = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]
    assert evidence["verdict"] == "pass"
    assert set(evidence["tools"]) == {"bandit", "semgrep"}
    assert {o["name"] for o in evidence["outputs"]} >= {"out/sast/bandit.sarif", "out/sast/semgrep.sarif"}


def test_planted_findings_block_then_waiver_then_expiry(project: Path) -> None:
    planted = plant(project)
    blocked = run_tasks("sast", root=project)
    assert blocked.returncode == 1, blocked.output
    assert "B602" in blocked.output
    secret_rule = hardcoded_secret_rule(blocked.output)

    add_waivers(
        project,
        f"""waivers:
  - id: {secret_rule}
    gate: sast
    scope: {{path: "app/src/demo/planted.py"}}
    justification: "test fixture credential, never deployed; rotated by the test itself"
    owner: security-team
    expires: 2099-01-01
""",
    )
    waived = run_tasks("sast", root=project)
    assert waived.returncode == 1, waived.output
    assert "B602" in waived.output
    assert f"waived: {secret_rule}" in waived.output
    reason = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]["reason"]
    assert secret_rule not in reason and "B602" in reason

    policy = project / "security-policy.yaml"
    policy.write_text(policy.read_text().replace("2099-01-01", "2020-01-01"))
    expired = run_tasks("sast", root=project)
    assert expired.returncode == 2
    assert "expired on 2020-01-01" in expired.output

    planted.unlink()
    policy.write_text(policy.read_text().replace("2020-01-01", "2099-01-01"))
    assert run_tasks("sast", root=project).returncode == 0


def test_missing_sast_path_fails_closed(project: Path) -> None:
    (project / "noxfile.py").unlink()
    result = run_tasks("sast", root=project)
    assert result.returncode == 2
    assert "gates.sast.paths: noxfile.py not found" in result.output


def test_path_outside_repo_is_refused(project: Path) -> None:
    policy = project / "security-policy.yaml"
    policy.write_text(policy.read_text().replace("paths: [tasks, app/src, noxfile.py]", "paths: [../../etc]"))
    result = run_tasks("sast", root=project)
    assert result.returncode == 2
    assert "outside the repository" in result.output


def test_a_bandit_config_in_the_tree_cannot_skip_rules(project: Path) -> None:
    plant(project)
    (project / "app" / "src" / ".bandit").write_text("[bandit]\nskips: B602,B105\n")
    (project / "app" / "src" / "demo" / ".bandit").write_text("[bandit]\nskips: B602,B105\n")
    result = run_tasks("sast", root=project, env={"BANDIT_SKIPS": "B602"})
    assert result.returncode == 1
    findings = json.loads((project / "out" / "sast" / "findings.json").read_text())["findings"]
    assert any(f["tool"] == "bandit" and f["rule"] == "B602" for f in findings)
