"""Placeholder resolver (being replaced by the tools.lock implementation)."""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

from tasks.errors import ToolError
from tasks.runner import Tool

PYPI = {"bandit": "bandit", "semgrep": "semgrep"}


def resolve(name: str, root: Path) -> Tool:
    if name in PYPI:
        path = Path(sys.prefix) / "bin" / name
        if not path.exists():
            raise ToolError(f"{name}: not installed in this environment; run it through nox")
        return Tool(name, metadata.version(PYPI[name]), path, route="pypi")
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"{name}: not found on PATH")
    return Tool(name, "system", Path(found), route="system")
