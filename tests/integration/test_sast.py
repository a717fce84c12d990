"""The SAST gate against the real scanners (bandit, semgrep, gosec, shellcheck, opa, Regal),
with code planted in a throwaway project that is a git work tree."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.policy import sarif
from tasks.policy.findings import Severity
from tasks.source.sast.semgrep import rule_id
from tests.support.project import REPO, Result, pinned, run_tasks

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
    """Prepend waivers (YAML list items) to the policy's waivers."""
    policy = project / "security-policy.yaml"
    policy.write_text(policy.read_text().replace("\nwaivers:\n", "\nwaivers:\n" + text, 1))


def add_exclusion(project: Path, path: str, reason: str) -> None:
    policy = project / "security-policy.yaml"
    entry = f"      - path: {json.dumps(path)}\n        reason: {json.dumps(reason)}\n"
    policy.write_text(policy.read_text().replace("    exclude:\n", "    exclude:\n" + entry, 1))


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
            REPO / ".semgrep" / "rules",
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
    findings = sarif.normalize(out, tmp_path, rule_id=rule_id)
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
    assert set(evidence["tools"]) == {"git", "bandit", "semgrep"}  # no Go, shell or Rego here: not run
    assert {o["name"] for o in evidence["outputs"]} >= {"out/sast/bandit.sarif", "out/sast/semgrep.sarif"}
    scanned = evidence["details"]["coverage"]["scanned"]
    assert scanned["python"] == {"files": 3, "scanners": ["bandit", "semgrep"]}
    assert "not_covered" not in evidence["details"]


def test_planted_findings_block_then_waiver_then_expiry(project: Path) -> None:
    planted = plant(project)
    blocked = run_tasks("sast", root=project)
    assert blocked.returncode == 1, blocked.output
    assert "B602" in blocked.output
    secret_rule = hardcoded_secret_rule(blocked.output)

    add_waivers(
        project,
        f"""  - id: {secret_rule}
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


def test_not_a_git_work_tree_fails_closed(project: Path) -> None:
    shutil.rmtree(project / ".git")
    result = run_tasks("sast", root=project)
    assert result.returncode == 2
    assert "not a git work tree" in result.output


def test_exclusion_outside_repo_is_refused(project: Path) -> None:
    add_exclusion(project, "../../etc/", "an attempt to reach outside the repository")
    result = run_tasks("sast", root=project)
    assert result.returncode == 2
    assert "must be repo-relative" in result.output


def test_exclusion_without_a_reason_is_refused(project: Path) -> None:
    add_exclusion(project, "app/", "short")
    result = run_tasks("sast", root=project)
    assert result.returncode == 2
    assert "gates.sast.exclude" in result.output and "reason" in result.output


def test_a_bandit_config_in_the_tree_cannot_skip_rules(project: Path) -> None:
    plant(project)
    (project / "app" / "src" / ".bandit").write_text("[bandit]\nskips: B602,B105\n")
    (project / "app" / "src" / "demo" / ".bandit").write_text("[bandit]\nskips: B602,B105\n")
    result = run_tasks("sast", root=project, env={"BANDIT_SKIPS": "B602"})
    assert result.returncode == 1
    findings = json.loads((project / "out" / "sast" / "findings.json").read_text())["findings"]
    assert any(f["tool"] == "bandit" and f["rule"] == "B602" for f in findings)


# One planted finding per language, each in a new top-level folder the policy never names,
# each behind the inline suppression its scanner knows (which must not count).
PLANTED_BY_LANGUAGE: dict[str, tuple[str, str]] = {
    "python": (
        "helpers/run.py",
        '''"""Planted: shell=True and yaml.load, behind inline suppressions."""
import subprocess

import yaml


def run(cmd: str) -> int:
    return subprocess.call(cmd, shell=True)  # nosec B602 # nosemgrep


def parse(s: str) -> object:
    return yaml.load(s)  # nosec # nosemgrep
''',
    ),
    "go": (
        "gadget/main.go",
        """package main

import (
	"os"
	"os/exec"
)

func main() {
	//gosec:disable G204 -- planted by the test
	_ = exec.Command("sh", "-c", os.Args[1]).Run() // #nosec G204
}
""",
    ),
    "shell": (
        "ops/wipe",  # no extension: a shell script by its shebang
        """#!/bin/sh
prefix=$1
# shellcheck disable=SC2115
rm -rf "$prefix/"*
""",
    ),
    "rego": (
        "guard/admission.rego",
        """package guard

import rego.v1

# regal ignore:not-equals-in-loop
deny if {
	input.images[_] != "registry.local/app"
}
""",
    ),
}
EXPECTED = {  # language -> (rule, file:line) the gate must name
    "python": [("B602", "helpers/run.py:8"), ("secure-iot.yaml-unsafe-load", "helpers/run.py:12")],
    "go": [("G204", "gadget/main.go:10")],
    "shell": [("SC2115", "ops/wipe:4")],
    "rego": [("regal/bugs/not-equals-in-loop", "guard/admission.rego:7")],
}


def plant_every_language(project: Path) -> None:
    for path, text in PLANTED_BY_LANGUAGE.values():
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (project / "ops" / "wipe").chmod(0o755)
    (project / "gadget" / "go.mod").write_text("module example.com/gadget\n\ngo 1.24\n")
    # configuration in the tree that would silence each scanner if it were read
    (project / ".semgrepignore").write_text("helpers/\n")
    (project / ".shellcheckrc").write_text("disable=SC2115\n")
    (project / ".regal").mkdir()
    (project / ".regal" / "config.yaml").write_text("rules:\n  bugs:\n    not-equals-in-loop:\n      level: ignore\n")


def test_a_finding_in_every_language_blocks_by_file_and_line(project: Path) -> None:
    plant_every_language(project)
    result = run_tasks("sast", root=project, env={"SHELLCHECK_OPTS": "--exclude=SC2115"})
    assert result.returncode == 1, result.output
    record = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]
    for language, expected in EXPECTED.items():
        for rule, location in expected:
            assert f"{rule} ({location})" in record["reason"], (language, record["reason"])
    scanned = record["details"]["coverage"]["scanned"]
    assert {lang: row["files"] for lang, row in scanned.items() if lang != "yaml"} == {
        "python": 4,
        "go": 1,
        "shell": 1,
        "rego": 1,
    }
    assert scanned["go"]["scanners"] == ["gosec"] and scanned["rego"]["scanners"] == ["opa", "regal"]
    assert record["details"]["inline_suppressions_ignored"] == {"shellcheck": 1, "regal": 1}
    assert {"gosec", "shellcheck", "opa", "regal"} <= set(record["tools"])
    sarif_logs = {p.name for p in (project / "out" / "sast").glob("*.sarif")}
    assert sarif_logs == {f"{t}.sarif" for t in ("bandit", "semgrep", "gosec", "shellcheck", "opa", "regal")}
    shellcheck = sarif.normalize(project / "out" / "sast" / "shellcheck.sarif", project)
    assert [(f.rule, f.location, f.severity) for f in shellcheck] == [("SC2115", "ops/wipe:4", Severity.MEDIUM)]


def sast_with(project: Path, name: str, text: str) -> Result:
    """Run the stage with one new file ``name`` (a new folder) in the project."""
    (project / name).parent.mkdir(parents=True, exist_ok=True)
    (project / name).write_text(text)
    return run_tasks("sast", root=project)


def test_opa_check_strict_fails_a_policy_that_does_not_compile_cleanly(project: Path) -> None:
    unused = 'package guard\n\nimport rego.v1\n\nallow if {\n\tx := 1\n\tinput.user == "admin"\n}\n'
    result = sast_with(project, "guard/unused.rego", unused)
    assert result.returncode == 1, result.output
    reason = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]["reason"]
    assert "opa-check/rego_compile_error (guard/unused.rego:6)" in reason


def test_an_exclusion_takes_files_out_with_its_reason(project: Path) -> None:
    plant_every_language(project)
    for folder in ("helpers/", "gadget/", "ops/", "guard/"):
        add_exclusion(project, folder, "planted by the test: deliberate findings, not product code")
    result = run_tasks("sast", root=project)
    assert result.returncode == 0, result.output
    coverage = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]["details"]["coverage"]
    taken = {e["path"]: e["files"] for e in coverage["excluded"]}
    assert taken["helpers/"] == 1 and taken["gadget/"] == 2 and taken["ops/"] == 1 and taken["guard/"] == 1
    assert "gates.sast.exclude: tests/fixtures/ matches no file" in result.output  # stale: said, not fatal


def test_a_language_without_a_scanner_is_shown_not_covered(project: Path) -> None:
    result = sast_with(project, "web/app.js", "document.body.innerHTML = location.hash;\n")
    assert result.returncode == 0, result.output
    assert "not covered" in result.output and "javascript (1 files)" in result.output
    record = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]
    assert record["details"]["not_covered"] == ["javascript (1 files)"]
    assert record["details"]["coverage"]["not_covered"] == {"javascript": 1}
    summary = run_tasks("summary", root=project)
    assert "not covered: javascript (1 files)" in summary.output


def test_a_file_semgrep_cannot_parse_fails_closed(project: Path) -> None:
    result = sast_with(project, "deploy/pod.yaml", "spec:\n  {{- if .Values.x }}\n  hostNetwork: true\n")
    assert result.returncode == 2, result.output
    assert "semgrep could not scan" in result.output and "deploy/pod.yaml" in result.output


PLANTED_GO = """package main

import (
	"crypto/md5"
	"fmt"
	"os"
	"os/exec"
)

func main() {
	fmt.Println(md5.Sum([]byte(os.Args[1])))
	_ = exec.Command("sh", "-c", os.Args[2]).Run()
}
"""


def test_weak_go_in_a_new_folder_without_a_module_blocks(project: Path) -> None:
    """ADR 0021: gosec reads a copy of the first-party Go; a new folder with no go.mod is still scanned."""
    result = sast_with(project, "newtool/main.go", PLANTED_GO)
    assert result.returncode == 1, result.output
    record = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]
    for rule, line in (("G501", 4), ("G401", 11), ("G204", 12)):
        assert f"{rule} (newtool/main.go:{line})" in record["reason"], record["reason"]
    assert record["details"]["gosec_coverage"] == {"newtool/main.go": "types"}
    read = json.loads((project / "out" / "sast" / "coverage.json").read_text())["files"]
    assert read["newtool/main.go"] == {"language": "go", "scanners": ["gosec"], "gosec": "types"}
    assert read["noxfile.py"] == {"language": "python", "scanners": ["bandit", "semgrep"]}


def test_go_with_third_party_imports_is_scanned_without_compiling_them(project: Path) -> None:
    """A wrapper module's Go (tools/*) is scanned by gosec's AST rules with its third-party imports
    unresolved: nothing is downloaded (GOPROXY=off), the weakness is still found, the evidence says how."""
    wrapper = PLANTED_GO.replace('"os/exec"\n', '"os/exec"\n\n\t"github.com/spf13/cobra"\n').replace(
        "func main() {\n", "func main() {\n\t_ = cobra.Command{}\n"
    )
    (project / "tools" / "wrapper").mkdir(parents=True)
    (project / "tools" / "wrapper" / "go.mod").write_text(
        "module secure-iot/tools/wrapper\n\ngo 1.24\n\nrequire github.com/spf13/cobra v1.10.1\n"
    )
    (project / "tools" / "wrapper" / "sibling.go").write_text("package main\n\nfunc sibling() {}\n")
    result = sast_with(project, "tools/wrapper/main.go", wrapper)
    assert result.returncode == 1, result.output
    record = json.loads((project / "out" / "evidence.json").read_text())["stages"]["sast"]
    assert (
        "G501 (tools/wrapper/main.go:4)" in record["reason"] and "G204 (tools/wrapper/main.go:15)" in record["reason"]
    ), record["reason"]
    # decided per package: the sibling type-checks alone, but the package's SSA analysers did not run
    assert record["details"]["gosec_coverage"] == {
        "tools/wrapper/main.go": "syntax (third-party imports not compiled: github.com/spf13/cobra)",
        "tools/wrapper/sibling.go": "syntax (third-party imports not compiled: github.com/spf13/cobra)",
    }
    assert "go mod download" not in result.output


def test_third_party_imports_outside_the_wrapper_modules_fail_closed(project: Path) -> None:
    """Only tools/'s wrapper modules are scanned with their imports unresolved (ADR 0021): elsewhere an
    import would switch gosec's SSA analysers off for the package."""
    (project / "gadget").mkdir()
    (project / "gadget" / "go.mod").write_text(
        "module example.com/gadget\n\ngo 1.24\n\nrequire github.com/spf13/cobra v1.10.1\n"
    )
    planted = PLANTED_GO.replace('"os/exec"\n', '"os/exec"\n\n\t_ "github.com/spf13/cobra"\n')
    result = sast_with(project, "gadget/main.go", planted)
    assert result.returncode == 2, result.output
    assert "gadget/main.go: imports third-party packages (github.com/spf13/cobra)" in result.output


def test_go_no_package_of_this_platform_builds_fails_closed(project: Path) -> None:
    """A file a build constraint or a GOOS/GOARCH suffix leaves out would not be read: refused."""
    (project / "gadget").mkdir()
    (project / "gadget" / "main.go").write_text("package main\n\nfunc main() {}\n")
    result = sast_with(project, "gadget/weak_s390x.go", PLANTED_GO.replace("func main()", "func other()"))
    assert result.returncode == 2, result.output
    assert "no package of this platform builds" in result.output and "gadget/weak_s390x.go" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("package main\n\nfunc main() {\n\tx :=\n}\n", "do not parse"),
        ('package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println(undefinedName)\n}\n', "could not type-check"),
    ],
)
def test_go_that_cannot_be_checked_fails_closed(project: Path, text: str, message: str) -> None:
    result = sast_with(project, "broken/main.go", text)
    assert result.returncode == 2, result.output
    assert message in result.output and "broken/main.go" in result.output


def test_an_import_the_module_does_not_require_fails_closed(project: Path) -> None:
    """An import no go.mod requires cannot build, and would leave its package untyped (no SSA
    analysers) without a word: refused, not scanned in syntax mode."""
    (project / "tools" / "wrapper").mkdir(parents=True)
    (project / "tools" / "wrapper" / "go.mod").write_text("module secure-iot/tools/wrapper\n\ngo 1.24\n")
    planted = PLANTED_GO.replace('"os/exec"\n', '"os/exec"\n\n\t_ "example.com/unlisted"\n')
    result = sast_with(project, "tools/wrapper/main.go", planted)
    assert result.returncode == 2, result.output
    assert "tools/wrapper/main.go: imports example.com/unlisted, which its go.mod does not require" in result.output
