"""The README stays true: every session, every pinned tool and the CI command are in it."""

from __future__ import annotations

import re
import tomllib

from tasks.catalogue import CATALOGUE, PIPELINE
from tests.support.project import REPO

README = (REPO / "README.md").read_text()


def test_every_session_is_in_a_stage_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([a-z-]+)`", row.split("|")[1])}
    assert set(CATALOGUE) <= listed, set(CATALOGUE) - listed


def test_default_pipeline_table_is_in_pipeline_order() -> None:
    section = README.split("## Stages", 1)[1].split("Further sessions", 1)[0]
    order = re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE)
    assert tuple(order) == PIPELINE


def test_every_pinned_tool_and_version_is_documented() -> None:
    pins = tomllib.loads((REPO / "tools.lock").read_text())["tools"]
    section = README.split("## Tools", 1)[1].split("\n## ", 1)[0]
    for name, pin in pins.items():
        assert re.search(rf"^\| {re.escape(name)} \| {re.escape(pin['version'])} \|", section, re.MULTILINE), name


def test_quickstart_has_two_commands_and_ci_runs_the_test_one() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quickstart.strip().splitlines()]
    assert commands == ["./bootstrap.sh", "./bootstrap.sh nox -s tests"]
    assert "./bootstrap.sh nox -s tests" in (REPO / ".ci" / "run").read_text()
