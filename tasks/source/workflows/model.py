"""A workflow as the gate reads it: its YAML with line numbers, and a problem found at a place in it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.core.errors import InputError

WORKFLOW_DIR = ".github/workflows"


CI_WORKFLOW = "ci.yml"


RULESET = ".github/rulesets/main.json"


JSON = "application/json"


YAML = "application/yaml"


@dataclass(frozen=True)
class Problem:
    check: str  # actionlint | zizmor | parity | pin | hardening | suppression | ruleset
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: [{self.check}] {self.message}"


@dataclass(frozen=True)
class Scalar:
    """A `run:` or `uses:` value of a workflow, with the line it starts on (1-based)."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class Workflow:
    path: Path
    name: str  # path relative to the repository root
    text: str
    data: dict[str, Any]
    scalars: tuple[Scalar, ...]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


@dataclass(frozen=True)
class NoxCall:
    sessions: tuple[str, ...]
    line: int
    via: str  # "nox" or "python -m tasks"


def _walk(node: yaml.Node) -> Iterator[Scalar]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value in ("run", "uses") and isinstance(value, yaml.ScalarNode):
                # a block scalar (`run: |`) starts on the line after its indicator
                first = value.start_mark.line + (2 if value.style in ("|", ">") else 1)
                yield Scalar(key.value, value.value, first)
            else:
                yield from _walk(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item)


def load_workflow(path: Path, root: Path) -> Workflow:
    text = path.read_text(encoding="utf-8")
    rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{rel}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or node is None:
        raise InputError(f"{rel}: not a GitHub Actions workflow (expected a mapping)")
    return Workflow(path, rel, text, data, tuple(_walk(node)))


def load_workflows(root: Path) -> list[Workflow]:
    directory = root / WORKFLOW_DIR
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    if not files:
        raise InputError(f"{directory}: no workflow files found")
    return [load_workflow(path, root) for path in files]
