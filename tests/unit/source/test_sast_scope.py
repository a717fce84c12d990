"""The SAST stage's own logic, no tool: what a file's language is, what an exclusion matches,
how inline suppressions are taken out, and SARIF written from findings reading back the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.policy import sarif
from tasks.policy.findings import Finding, Severity
from tasks.source.sast import SCANNERS, scanners_by_language
from tasks.source.sast.languages import classify
from tasks.source.sast.scope import Exclusion, Scope
from tasks.source.sast.suppressions import REGAL, SHELLCHECK, neutralized_copy


@pytest.mark.parametrize(
    ("name", "content", "language", "code"),
    [
        ("app/helpers.py", "", "python", True),
        ("tools/x/main.go", "", "go", True),
        ("bootstrap.sh", "", "shell", True),
        (".ci/run", "#!/usr/bin/env bash\n", "shell", True),
        ("bin/task", "#!/usr/bin/python3.11 -u\n", "python", True),
        ("bin/deploy", "#!/bin/zsh\n", "zsh", True),
        ("infra/p.rego", "", "rego", True),
        ("app/Containerfile", "", "dockerfile", True),
        ("build/Dockerfile.arm64", "", "dockerfile", True),
        ("infra/kind/cluster.yaml", "", "yaml", True),
        ("web/app.ts", "", "typescript", True),
        ("README.md", "", "markdown", False),
        ("tools/x/go.sum", "", "go-module", False),
        (".github/CODEOWNERS", "", "config", False),
        ("notes/blob", "no shebang here\n", "unrecognised", False),
    ],
)
def test_language_by_name_extension_or_shebang(
    tmp_path: Path, name: str, content: str, language: str, code: bool
) -> None:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(content)
    kind = classify(tmp_path, name)
    assert (kind.name, kind.code) == (language, code)


def test_exclusion_is_a_directory_a_file_or_a_glob() -> None:
    directory, file, glob = (Exclusion(p, "a reason of twenty chars") for p in ("tests/", "a/b.py", "x/*/bad-*.yaml"))
    assert directory.matches("tests/unit/x.py") and not directory.matches("tests.py")
    assert not directory.matches("src/tests/x.py")  # repo-relative: from the root only
    assert file.matches("a/b.py") and not file.matches("a/b.pyc")
    assert glob.matches("x/suite/bad-pod.yaml") and not glob.matches("x/suite/good-pod.yaml")


def test_every_language_a_scanner_names_is_one_the_classifier_gives() -> None:
    assert set(scanners_by_language()) == {"python", "go", "shell", "rego", "dockerfile", "yaml"}
    assert all(scanner.languages for scanner in SCANNERS)
    scope = Scope(code={"python": ("a.py",), "javascript": ("b.js", "c.js")}, data={}, unrecognised=())
    assert scope.not_covered(scanners_by_language()) == {"javascript": 2}


def test_inline_suppressions_are_taken_out_lines_in_place(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.sh").write_text(
        '#!/bin/sh\n# shellcheck disable=SC2115 shell=sh\nrm -rf "$p/"*\n#shellcheck disable=all\necho disable=x\n'
    )
    removed = neutralized_copy(tmp_path, ["s/x.sh"], tmp_path / "copy", SHELLCHECK)
    assert removed == 2
    assert (tmp_path / "copy" / "s" / "x.sh").read_text().splitlines() == [
        "#!/bin/sh",
        "# shellcheck  shell=sh",
        'rm -rf "$p/"*',
        "#",  # a bare `# shellcheck` would itself be a shellcheck error
        "echo disable=x",  # not a directive: code is never touched
    ]
    assert REGAL.remove_from("\t# regal ignore:not-equals-in-loop,line-length\n") == ("\t#\n", 1)
    assert REGAL.remove_from('x := "# regal"\n') == ('x := "# regal"\n', 0)


def test_sarif_written_from_findings_reads_back_the_same(tmp_path: Path) -> None:
    findings = [
        Finding("shellcheck", "SC2115", Severity.MEDIUM, "ops/wipe:4", "Use ${var:?}", path="ops/wipe"),
        Finding("shellcheck", "SC2086", Severity.LOW, "ops/wipe:9", "Double quote", path="ops/wipe"),
        Finding("opa", "opa-check/rego_parse_error", Severity.HIGH, "p.rego:1", "bad", path="p.rego"),
        Finding("regal", "regal/idiomatic/no-defined-entrypoint", Severity.INFO, ":0", "aggregate", path=""),
    ]
    out = tmp_path / "x.sarif"
    out.write_text(json.dumps(sarif.from_findings("shellcheck", "0.9.0", findings)))
    back = sarif.normalize(out, tmp_path)
    assert [(f.rule, f.severity, f.location, f.path) for f in back] == [
        (f.rule, f.severity, f.location, f.path) for f in findings
    ]
