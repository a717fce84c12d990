"""tasks/ in layers: every module imports on its own (no cycle hidden by import order), and
no import sits inside a function unless a comment says why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.project import REPO

MODULES = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
    for p in (REPO / "tasks").rglob("*.py")
    if p.name != "__main__.py"  # importing it runs the CLI
)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


# What only the sbom stage needs: spdx-tools and cyclonedx's JSON-schema validator cost seconds of
# import (jsonschema builds a grammar at import), paid on every stage run that loads them.
SBOM_LIBRARIES = ("spdx_tools", "cyclonedx", "jsonschema", "spdx_python_model")


@pytest.mark.parametrize("stage", ["sign", "verify", "scan", "provenance", "boot", "attest", "update"])
def test_a_stage_that_only_names_an_sbom_does_not_load_the_sbom_libraries(stage: str) -> None:
    code = f"import sys, tasks.stages.{stage}; print(' '.join(n for n in {SBOM_LIBRARIES!r} if n in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert loaded == [], f"tasks.stages.{stage} loads {loaded}: name SBOMs through tasks/analysis/sbom_subject.py"


def test_no_import_inside_a_function_without_a_reason() -> None:
    unexplained = []
    for path in sorted((REPO / "tasks").rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom) and "#" not in lines[inner.lineno - 1]:
                        unexplained.append(f"{path.relative_to(REPO)}:{inner.lineno}")
    assert unexplained == []


def test_import_contracts_hold() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_no_two_test_files_share_a_basename() -> None:
    """pytest imports test files by basename (the test folders are not packages): a second file of the
    same name stops the whole suite at collection, which only a full run shows."""
    names: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
